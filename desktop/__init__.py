"""The desktop launcher: local data, the embedded waitress server and the native window.

`desktop` knows `portal`; the portal never imports anything from here.
"""

APP_NAME = "campus-portal"
APP_TITLE = "Campus Portal"
