"""Personal API tokens: made, listed and revoked by their owner, checked on every API call.

A token is `cpt_` followed by 43 random URL-safe characters (256 bits). Only its SHA-256 is
stored: a token this random needs no slow hash (nothing to guess), and a fast hash keeps every API
call from paying an argon2 verification. The secret is returned once, by `create_token`.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.audit.services import record
from portal.errors import NotFound, ValidationError
from portal.languages import LANGUAGES
from portal.models import ApiToken, User

TOKEN_PREFIX = "cpt_"  # noqa: S105 - a prefix that names the kind of secret, not a secret
MAX_TOKENS_PER_USER = 20
MAX_LIFETIME_DAYS = 366
# last_used_at is written at most this often per token: a script calling the API in a loop
# would otherwise turn every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # shown to the user once, never stored


def create_token(
    db: Session, user: User, name: str, *, expires_in_days: int | None, now: datetime
) -> NewToken:
    """Make a token for `user`; `expires_in_days` None means it never expires."""
    name = name.strip()
    if not name:
        raise ValidationError(_("Give the token a name, e.g. the script that will use it."))
    if len(name) > 100:
        raise ValidationError(_("Token names are at most 100 characters."))
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_LIFETIME_DAYS:
        raise ValidationError(
            _("A token expires after 1 to %(days)s days (or never).", days=MAX_LIFETIME_DAYS)
        )
    active = [t for t in tokens_of(db, user) if t.usable(now)]
    if len(active) >= MAX_TOKENS_PER_USER:
        raise ValidationError(
            ngettext(
                "You already have %(num)d active token; revoke it first.",
                "You already have %(num)d active tokens; revoke one first.",
                MAX_TOKENS_PER_USER,
            )
        )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=token_digest(secret),
        prefix=secret[:10],
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
        created_at=now,
    )
    db.add(token)
    db.flush()
    record(
        db,
        user,
        "api_token.create",
        entity_type="api_token",
        entity_id=token.id,
        summary=f"{user.username} made the API token {name!r} ({token.prefix}…)",
        after={
            "name": name,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return NewToken(token, secret)


def tokens_of(db: Session, user: User) -> list[ApiToken]:
    return list(
        db.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc())
        )
    )


def revoke_token(db: Session, user: User, token_id: uuid.UUID, *, now: datetime) -> ApiToken:
    """Revoke one of the user's own tokens (someone else's is 'not found')."""
    token = db.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise NotFound(_("There is no such token."))
    if token.revoked_at is None:
        token.revoked_at = now
        db.flush()
        record(
            db,
            user,
            "api_token.revoke",
            entity_type="api_token",
            entity_id=token.id,
            summary=f"{user.username} revoked the API token {token.name!r} ({token.prefix}…)",
        )
    return token


def authenticate_token(db: Session, secret: str, *, now: datetime) -> User | None:
    """The active owner of a usable token, or None. Records when the token was last used (the
    caller commits)."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 100:
        return None
    token = db.scalar(select(ApiToken).where(ApiToken.token_hash == token_digest(secret)))
    if token is None or not token.usable(now):
        return None
    user = db.get(User, token.user_id)
    if user is None or not user.is_active:
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        # A plain UPDATE, not a change of the loaded row: it does not lock the user out of the
        # request's own transaction and costs one statement.
        db.execute(
            update(ApiToken)
            .where(ApiToken.id == token.id)
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
    return user


def set_language(db: Session, user: User, language: str | None) -> User:
    """The language the person chose for the portal; None: their browser's (else the default)."""
    if language is not None and language not in LANGUAGES:
        raise ValidationError(_("The portal has no language %(code)s.", code=repr(language)))
    user.language = language
    db.flush()
    return user
