"""Offline sync: devices enrol with the central server, push their outbox, pull their scope.

The protocol is written down in PROTOCOL.md; the rows each role may hold in scopes.py.
A device's side is in device/, the server's in server/: they never import each other.
"""
