"""What both sides agree on: the protocol's version, its headers and problem types, its limits.

The messages themselves are written down in PROTOCOL.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import gettext as _

from portal.errors import PortalError
from portal.sync import hlc

PROTOCOL_VERSION = 2  # what a device speaks
SUPPORTED_PROTOCOLS = frozenset({1, 2})  # what the server answers

PROTOCOL_HEADER = "X-Sync-Protocol"  # every call of a device says which protocol it speaks
SERVER_TIME_HEADER = "X-Server-Time"  # every answer says the server's time, in milliseconds

# The problem a server answers to a pull whose cursor it never issued.
UNKNOWN_CURSOR = "urn:campus-portal:sync:unknown-cursor"
# The problem a server answers a revoked device: the device tells it by this, not by the
# detail's words (said in the server's language).
DEVICE_REVOKED = "urn:campus-portal:sync:device-revoked"

# The problem a server answers to a pull of a device none of whose accounts is active any more:
# its `deactivated` member lists them, and the device keeps them deactivated, without verifiers.
NO_ACTIVE_ACCOUNT = "urn:campus-portal:sync:no-active-account"

CHUNK_BYTES = 1024 * 1024  # a file travels in chunks of at most this size
MOST_PENDING = 2**31 - 1  # what a device reports waiting is kept in an integer column


class ProtocolRefused(PortalError):
    status_code = 426


def check_protocol(version: Any) -> int:
    try:
        number = int(version)
    except (TypeError, ValueError):
        raise ProtocolRefused(
            _("The request does not say which sync protocol it speaks.")
        ) from None
    if number not in SUPPORTED_PROTOCOLS:
        newest = max(SUPPORTED_PROTOCOLS)
        # Whether changes wait on the device is for the device to say (client.protocol_refused).
        if number > newest:
            raise ProtocolRefused(
                _(
                    "This copy of Campus Portal speaks sync protocol %(number)s, newer than the "
                    "campus server's (%(newest)s). Ask IT to update the server.",
                    number=number,
                    newest=newest,
                )
            )
        raise ProtocolRefused(
            _(
                "This copy of Campus Portal is too old for the campus server (protocol "
                "%(number)s; the server speaks %(supported)s). Install the current version.",
                number=number,
                supported=", ".join(map(str, sorted(SUPPORTED_PROTOCOLS))),
            )
        )
    return number


CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud over the phone


def normalise_code(code: str) -> str:
    """An enrolment code as both sides read it: letters and digits only, in capitals."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def server_time_ms(now: datetime) -> int:
    return hlc.millis_of(now)
