"""What both sides agree on: the protocol's version, its headers and problem types, its limits.

The messages themselves are written down in PROTOCOL.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal.errors import PortalError
from portal.sync import hlc

PROTOCOL_VERSION = 2  # what a device speaks
SUPPORTED_PROTOCOLS = frozenset({1, 2})  # what the server answers

PROTOCOL_HEADER = "X-Sync-Protocol"  # every call of a device says which protocol it speaks
SERVER_TIME_HEADER = "X-Server-Time"  # every answer says the server's time, in milliseconds

# The problem a server answers to a pull whose cursor it never issued.
UNKNOWN_CURSOR = "urn:campus-portal:sync:unknown-cursor"
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
        raise ProtocolRefused("The request does not say which sync protocol it speaks.") from None
    if number not in SUPPORTED_PROTOCOLS:
        newest = max(SUPPORTED_PROTOCOLS)
        if number > newest:
            raise ProtocolRefused(
                f"This copy of Campus Portal speaks sync protocol {number}, newer than the "
                f"campus server's ({newest}). Ask IT to update the server; your changes are "
                "kept on this computer meanwhile."
            )
        raise ProtocolRefused(
            f"This copy of Campus Portal is too old for the campus server (protocol {number}; "
            f"the server speaks {', '.join(map(str, sorted(SUPPORTED_PROTOCOLS)))}). Install the "
            "current version; your changes are kept on this computer and sync after the update."
        )
    return number


CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud over the phone


def normalise_code(code: str) -> str:
    """An enrolment code as both sides read it: letters and digits only, in capitals."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def server_time_ms(now: datetime) -> int:
    return hlc.millis_of(now)
