"""Signed releases for the desktop copies: the repository tools (`campus-portal-server release`)
and its files, served read-only at /updates/ by the central server."""
