"""Campus sign-in against the university's directory (LDAP, Active Directory).

The person's own username and password are checked by binding as them (never by reading a
password). TLS is always verified: `ldaps://`, or `ldap://` with StartTLS (portal/config.py
accepts a plain `ldap://` only for a directory on the same host). The first
sign-in creates the portal account (its `account_source` is "ldap"), every later one brings
the name, e-mail and role up to date from the directory. The account keeps a slow verifier of
the password for the person's desktop copies (offline sign-in); the server never accepts it.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask_babel import gettext as _
from ldap3 import BASE, NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException, LDAPSocketOpenError, LDAPStartTLSError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts import campus
from portal.accounts.campus import highest_role
from portal.accounts.services import hash_password, password_matches
from portal.errors import PortalError
from portal.languages import N_
from portal.models import User

log = logging.getLogger(__name__)

LDAP = campus.LDAP
TIMEOUT_SECONDS = 5
INVALID_CREDENTIALS = 49


class DirectoryUnavailable(PortalError):
    """The directory could not be asked (down, unreachable, or its certificate not trusted)."""

    status_code = 503


DirectoryRefused = campus.CampusRefused  # the directory knows the person, the portal refuses

UNREACHABLE = N_(
    "The campus directory cannot be reached right now, so campus accounts cannot sign in. "
    "Try again in a few minutes; if it lasts, tell the IT service desk."
)
UNTRUSTED = N_(
    "The campus directory's certificate is not trusted by the portal, so campus accounts "
    "cannot sign in. Tell the IT service desk (the portal's ldap_ca_file setting)."
)


@dataclass(frozen=True)
class DirectorySettings:
    """What the portal's settings say about the directory (portal/config.py)."""

    url: str
    starttls: bool
    ca_file: str
    user_dn_template: str
    search_base: str
    search_filter: str
    bind_dn: str
    bind_password: str
    name_attribute: str
    email_attribute: str
    group_roles: dict[str, str]

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> DirectorySettings:
        return cls(
            url=settings["LDAP_URL"],
            starttls=settings["LDAP_STARTTLS"],
            ca_file=settings["LDAP_CA_FILE"],
            user_dn_template=settings["LDAP_USER_DN_TEMPLATE"],
            search_base=settings["LDAP_SEARCH_BASE"],
            search_filter=settings["LDAP_SEARCH_FILTER"],
            bind_dn=settings["LDAP_BIND_DN"],
            bind_password=settings["LDAP_BIND_PASSWORD"],
            name_attribute=settings["LDAP_NAME_ATTRIBUTE"],
            email_attribute=settings["LDAP_EMAIL_ATTRIBUTE"],
            group_roles=dict(settings["LDAP_GROUP_ROLES"]),
        )

    def __repr__(self) -> str:  # never the service account's password
        return f"DirectorySettings(url={self.url!r})"


@dataclass(frozen=True)
class DirectoryPerson(campus.CampusPerson):
    """What the directory says about a person who signed in, and where its entry is."""

    dn: str = ""


def _server(settings: DirectorySettings) -> tuple[Server, bool]:
    """The directory's server, and whether StartTLS must follow the connection."""
    parts = urlsplit(settings.url)
    secure = parts.scheme.lower() == "ldaps"
    host = parts.hostname or ""
    starttls = not secure and settings.starttls  # else loopback only (portal/config.py)
    tls = Tls(
        validate=ssl.CERT_REQUIRED,
        ca_certs_file=settings.ca_file or None,
        valid_names=[host],
    )
    server = Server(
        host,
        port=parts.port,
        use_ssl=secure,
        tls=tls,
        get_info=NONE,
        connect_timeout=TIMEOUT_SECONDS,
    )
    return server, starttls


def _unavailable(error: Exception) -> DirectoryUnavailable:
    text = str(error)
    untrusted = "CERTIFICATE_VERIFY_FAILED" in text or "certificate" in text.lower()
    log.warning("campus directory: %s", text)
    return DirectoryUnavailable(_(UNTRUSTED if untrusted else UNREACHABLE))


def _connect(settings: DirectorySettings, user: str | None, password: str | None) -> Connection:
    """A connection, TLS established and verified, bound as `user` (None: anonymous). Raises
    DirectoryUnavailable when the directory cannot be asked; a refused bind is returned
    unbound (`connection.bound` is False, `connection.result` says why)."""
    server, starttls = _server(settings)
    connection = Connection(
        server, user=user, password=password, receive_timeout=TIMEOUT_SECONDS, read_only=True
    )
    try:
        connection.open()
        if starttls and not connection.start_tls():
            raise LDAPStartTLSError(str(connection.result))
        connection.bind()
    except (LDAPSocketOpenError, LDAPStartTLSError) as error:
        raise _unavailable(error) from error
    except (LDAPException, OSError) as error:
        raise _unavailable(error) from error
    return connection


def _find_dn(settings: DirectorySettings, username: str) -> str | None:
    """The person's entry: built from the template, or found by the search."""
    if settings.user_dn_template:
        return settings.user_dn_template.format(username=escape_rdn(username))
    connection = _connect(settings, settings.bind_dn or None, settings.bind_password or None)
    try:
        if not connection.bound:
            log.error("campus directory: the search account could not bind: %s", connection.result)
            raise DirectoryUnavailable(_(UNREACHABLE))
        query = settings.search_filter.format(username=escape_filter_chars(username))
        connection.search(settings.search_base, query, SUBTREE, attributes=[], size_limit=2)
        entries = [
            entry for entry in connection.response or [] if entry.get("type") == "searchResEntry"
        ]
        return entries[0]["dn"] if len(entries) == 1 else None
    except LDAPException as error:
        raise _unavailable(error) from error
    finally:
        connection.unbind()


def check_password(
    settings: DirectorySettings, username: str, password: str
) -> DirectoryPerson | None:
    """The person, when the directory accepts this username and password; None when it does
    not (unknown, wrong password, locked or disabled). Raises DirectoryUnavailable."""
    if not username or not password:  # an empty password would be an anonymous bind
        return None
    dn = _find_dn(settings, username)
    if dn is None:
        return None
    connection = _connect(settings, dn, password)
    try:
        if not connection.bound:
            if connection.result.get("result") != INVALID_CREDENTIALS:
                log.warning("campus directory refused %s: %s", dn, connection.result)
            return None
        return _person(settings, connection, username, dn)
    except LDAPException as error:
        raise _unavailable(error) from error
    finally:
        connection.unbind()


def _first(attributes: dict[str, Any], name: str) -> str:
    value = attributes.get(name)
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value or "").strip()


def _person(
    settings: DirectorySettings, connection: Connection, username: str, dn: str
) -> DirectoryPerson:
    names = [settings.name_attribute, settings.email_attribute, "cn"]
    connection.search(dn, "(objectClass=*)", BASE, attributes=names)
    entries = [e for e in connection.response or [] if e.get("type") == "searchResEntry"]
    attributes = entries[0]["attributes"] if entries else {}
    full_name = _first(attributes, settings.name_attribute) or _first(attributes, "cn")
    member = f"(|(member={escape_filter_chars(dn)})(uniqueMember={escape_filter_chars(dn)})" + (
        f"(memberUid={escape_filter_chars(username)}))"
    )
    held = []
    for role, group_dn in settings.group_roles.items():
        connection.search(group_dn, member, BASE, attributes=[])
        if any(e.get("type") == "searchResEntry" for e in connection.response or []):
            held.append(role)
    return DirectoryPerson(
        username=username,
        dn=dn,
        full_name=(full_name or username)[:200],
        email=_first(attributes, settings.email_attribute)[:254],
        role=highest_role(held, settings.group_roles),
    )


def sign_in_with_password(
    db: Session, settings: dict[str, Any], username: str, password: str, *, now: datetime
) -> User | None:
    """The account of a person whose username and password the directory accepts, when `ldap`
    is one of the sign-in methods and the name is not a local account's; else None. Raises
    DirectoryUnavailable or DirectoryRefused (what to tell the person)."""
    if LDAP not in settings["SIGN_IN_METHODS"]:
        return None
    source = db.scalar(select(User.account_source).where(User.username == username))
    if source is not None and source != LDAP:
        return None  # a local account: its own password only
    person = check_password(DirectorySettings.from_settings(settings), username, password)
    if person is None:
        return None
    return sign_in(db, person, password, now=now)


def sign_in(db: Session, person: DirectoryPerson, password: str, *, now: datetime) -> User:
    """The portal account of a person the directory accepted (created or brought up to date by
    portal/accounts/campus.py). The account keeps a slow verifier of the password, which
    reaches only the desktop copies the person uses, for their offline sign-in
    (offline_sign_in_days). Raises DirectoryRefused (campus.CampusRefused)."""
    user = campus.sign_in(db, person, LDAP, now=now)
    if not password_matches(user.password_hash, password):
        user.password_hash = hash_password(password)
    return user
