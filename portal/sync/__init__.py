"""Offline sync: devices enrol with the central server, push their outbox, pull their scope.

The protocol is written down in PROTOCOL.md; the rows each role may hold in scopes.py.
"""
