"""The desktop launcher: local data, the embedded waitress server and the native window."""
