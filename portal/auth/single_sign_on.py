"""Campus single sign-on (OpenID Connect) on the central server, with Authlib.

`/login/oidc` sends the person to the campus provider: the authorization-code flow with PKCE
(S256), a fresh state and nonce kept in the person's session. The provider sends them back to
`/login/oidc/callback`, where the state must be the one this browser started, the code is
exchanged once (with the PKCE verifier), and the ID token is verified: its signature against
the provider's published keys (JWKS), its issuer, audience (the portal's client ID), expiry and
nonce. The person's account is then created or brought up to date by portal/accounts/campus.py
(the same rules as the directory's). Every way this can go wrong is a `SignInProblem` with a
page in plain words (portal/templates/auth/oidc_problem.html); none is a stack trace.

The client secret is never logged: Authlib sends it in the token request's Authorization header
only, and the portal logs the provider's error codes, never its requests.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import requests
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.flask_client import OAuth
from authlib.integrations.requests_client import OAuth2Session
from flask import Flask, current_app, request, session, url_for
from flask_babel import lazy_gettext as _l
from joserfc.errors import InvalidClaimError, JoseError, MissingClaimError

from portal.accounts.campus import OIDC, CampusPerson, role_from_groups
from portal.accounts.services import USERNAME_PATTERN

log = logging.getLogger(__name__)


class _NoVerifier(logging.Filter):
    """Authlib logs each PKCE verifier at DEBUG; with the code it would finish a sign-in."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "code_verifier" not in record.getMessage()


logging.getLogger("authlib.integrations.base_client.sync_app").addFilter(_NoVerifier())

EXTENSION = "portal_single_sign_on"
CLIENT = "campus"  # the name Authlib keeps the pending sign-ins under in the session
TIMEOUT_SECONDS = 5
PENDING_MINUTES = 10  # a sign-in started longer ago than this is refused at the callback
LEEWAY_SECONDS = 60  # clock difference allowed for the ID token's times


@dataclass(frozen=True)
class Problem:
    """One way a single sign-on can fail: the page's title, what it says, its status, and
    whether starting again may help."""

    code: str
    title: Any
    message: Any
    status: int
    again: bool = True


UNREACHABLE = Problem(
    "unreachable",
    _l("The campus sign-in service cannot be reached"),
    _l(
        "The portal cannot reach the campus sign-in service right now, so campus accounts "
        "cannot sign in this way. Try again in a few minutes; if it lasts, tell the IT service "
        "desk. Portal accounts of your own still sign in with their username and password."
    ),
    503,
)
WRONG_STATE = Problem(
    "state",
    _l("This sign-in was not started here"),
    _l(
        "The answer from the campus sign-in service does not belong to a sign-in started in "
        "this browser, or that sign-in is more than 10 minutes old or was finished already. "
        "Nothing was changed. Start the sign-in again from the log-in page."
    ),
    400,
)
CODE_USED = Problem(
    "code",
    _l("This sign-in answer was already used"),
    _l(
        "The campus sign-in service did not accept this answer: it was used before (for "
        "example a page reloaded or opened twice) or it has expired. Nothing was changed. "
        "Start the sign-in again."
    ),
    400,
)
WRONG_NONCE = Problem(
    "nonce",
    _l("This sign-in answer does not match"),
    _l(
        "The campus sign-in service's answer was made for another sign-in than the one this "
        "browser started (its one-time value does not match), so the portal does not trust it. "
        "Nothing was changed. Start the sign-in again."
    ),
    400,
)
NOT_VERIFIED = Problem(
    "token",
    _l("This sign-in answer could not be verified"),
    _l(
        "The campus sign-in service's answer could not be verified (its signature, issuer, "
        "audience or expiry time is not right), so the portal does not trust it. Nothing was "
        "changed. Start the sign-in again; if it happens again, tell the IT service desk."
    ),
    400,
)
CANCELLED = Problem(
    "cancelled",
    _l("Sign-in cancelled"),
    _l("You cancelled the sign-in at the campus sign-in service. You are not signed in."),
    401,
)
PROVIDER_REFUSED = Problem(
    "refused",
    _l("The campus sign-in service did not sign you in"),
    _l(
        "The campus sign-in service did not sign you in. Start again; if it happens again, "
        "tell the IT service desk."
    ),
    401,
)
NO_USERNAME = Problem(
    "username",
    _l("Your campus account cannot be used here"),
    _l(
        "The campus sign-in service did not give a username the portal can use for your "
        "account. Tell the IT service desk (the portal's oidc_username_claim setting)."
    ),
    403,
    again=False,
)


class SignInProblem(Exception):
    """A single sign-on that did not succeed: `problem` says what to tell the person,
    `detail` what the audit log and the server's log keep (never a secret)."""

    def __init__(self, problem: Problem, detail: str = "") -> None:
        super().__init__(problem.code)
        self.problem = problem
        self.detail = detail or problem.code


def init_app(app: Flask) -> None:
    """Register the provider with Authlib; nothing is asked of it until the first sign-in."""
    settings = app.config["PORTAL"]
    oauth = OAuth(app)
    client_kwargs: dict[str, Any] = {
        "scope": " ".join(settings["OIDC_SCOPES"]),
        "code_challenge_method": "S256",
        "default_timeout": TIMEOUT_SECONDS,
        # A public client (no secret) proves itself by PKCE only.
        "token_endpoint_auth_method": (
            "client_secret_basic" if settings["OIDC_CLIENT_SECRET"] else "none"
        ),
    }
    if settings["OIDC_CA_FILE"]:  # the campus CA, for every request to the provider
        client_kwargs["verify"] = settings["OIDC_CA_FILE"]
    oauth.register(
        CLIENT,
        client_id=settings["OIDC_CLIENT_ID"],
        client_secret=settings["OIDC_CLIENT_SECRET"] or None,
        server_metadata_url=discovery_url(settings["OIDC_ISSUER"]),
        client_kwargs=client_kwargs,
    )
    client = oauth.create_client(CLIENT)
    client.client_cls = _Session
    client.framework.expires_in = PENDING_MINUTES * 60
    app.extensions[EXTENSION] = _Provider(client, settings["OIDC_ISSUER"])


class _Session(OAuth2Session):
    """Authlib's HTTP session, whose `verify` (oidc_ca_file) holds for each request: Requests
    would otherwise prefer REQUESTS_CA_BUNDLE from the environment to a session's own."""

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("verify", self.verify)
        return super().request(method, url, *args, **kwargs)


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


class _Provider:
    def __init__(self, client: Any, issuer: str) -> None:
        self.client = client
        self.issuer = issuer

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once; again after a failure), checked
        to be the configured issuer's. Two first sign-ins at once may both fetch it."""
        try:
            metadata = dict(self.client.load_server_metadata())
        except (requests.RequestException, ValueError) as error:
            self.client.server_metadata.clear()
            log.warning("campus sign-in: the provider's discovery document: %s", error)
            raise SignInProblem(UNREACHABLE, f"discovery: {type(error).__name__}") from error
        if metadata.get("issuer") != self.issuer:
            self.client.server_metadata.clear()
            log.error(
                "campus sign-in: the discovery document names the issuer %r, not %r (oidc_issuer)",
                metadata.get("issuer"),
                self.issuer,
            )
            raise SignInProblem(UNREACHABLE, "discovery: another issuer")
        return metadata


def _provider() -> _Provider:
    provider: _Provider = current_app.extensions[EXTENSION]
    return provider


def start() -> Any:
    """The redirect to the provider's authorization endpoint (a new state, nonce and PKCE
    verifier kept in the session). Raises SignInProblem when the provider cannot be reached."""
    provider = _provider()
    provider.metadata()
    redirect_uri = url_for("auth.oidc_callback", _external=True)
    try:
        return provider.client.authorize_redirect(redirect_uri)
    except (requests.RequestException, ValueError) as error:
        raise SignInProblem(UNREACHABLE, f"authorize: {type(error).__name__}") from error


def finish(settings: dict[str, Any]) -> CampusPerson:
    """The person the provider's answer (this request) vouches for, every check passed.
    Raises SignInProblem."""
    provider = _provider()
    if "error" not in request.args:  # Authlib keeps a pending sign-in's expiry, not checks it
        key = f"_state_{CLIENT}_{request.args.get('state', '')}"
        pending = session.get(key)
        if isinstance(pending, dict) and float(pending.get("exp") or 0) < time.time():
            session.pop(key, None)
            raise SignInProblem(WRONG_STATE, "state expired")
    metadata = provider.metadata()
    if "iss" in request.args and request.args["iss"] != metadata["issuer"]:
        raise SignInProblem(NOT_VERIFIED, "iss parameter")  # RFC 9207: another provider's
    claims_options = {
        "iss": {"essential": True, "values": [metadata["issuer"]]},
        "aud": {"essential": True, "values": [settings["OIDC_CLIENT_ID"]]},
    }
    try:
        token = provider.client.authorize_access_token(
            claims_options=claims_options, leeway=LEEWAY_SECONDS
        )
    except MismatchingStateError as error:
        raise SignInProblem(WRONG_STATE) from error
    except OAuthError as error:
        code = str(getattr(error, "error", "") or "")
        if code == "access_denied":
            raise SignInProblem(CANCELLED, "access_denied") from error
        if code == "invalid_grant":
            raise SignInProblem(CODE_USED, "invalid_grant") from error
        log.warning("campus sign-in: the provider answered %s", code)
        raise SignInProblem(PROVIDER_REFUSED, f"provider: {code}"[:100]) from error
    except (InvalidClaimError, MissingClaimError) as error:
        claim = str(getattr(error, "claim", "") or "")
        if claim == "nonce":
            raise SignInProblem(WRONG_NONCE, "nonce") from error
        log.warning("campus sign-in: the ID token's %s claim: %s", claim, error)
        raise SignInProblem(NOT_VERIFIED, f"id_token: {claim}") from error
    except JoseError as error:
        log.warning("campus sign-in: the ID token: %s", type(error).__name__)
        raise SignInProblem(NOT_VERIFIED, f"id_token: {type(error).__name__}") from error
    except (requests.RequestException, ValueError) as error:
        log.warning("campus sign-in: the token request: %s", type(error).__name__)
        raise SignInProblem(UNREACHABLE, f"token: {type(error).__name__}") from error
    claims = token.get("userinfo")
    if not claims:
        raise SignInProblem(NOT_VERIFIED, "no id_token")
    claims = dict(claims)
    wanted = (settings["OIDC_USERNAME_CLAIM"], settings["OIDC_GROUPS_CLAIM"], "name", "email")
    if any(name not in claims for name in wanted) and metadata.get("userinfo_endpoint"):
        claims = _with_userinfo(provider, token, claims)
    return person_from_claims(claims, settings)


def _with_userinfo(provider: _Provider, token: dict[str, Any], claims: dict[str, Any]) -> Any:
    """The ID token's claims and those of the userinfo endpoint (many providers put the
    profile, e-mail and groups there only); the ID token's win, and both must be about the
    same subject."""
    try:
        info = dict(provider.client.userinfo(token=token))
    except (requests.RequestException, ValueError) as error:
        log.warning("campus sign-in: the userinfo request: %s", type(error).__name__)
        raise SignInProblem(UNREACHABLE, f"userinfo: {type(error).__name__}") from error
    if info.get("sub") != claims.get("sub"):
        log.warning("campus sign-in: the userinfo endpoint answered about another subject")
        raise SignInProblem(NOT_VERIFIED, "userinfo: another subject")
    return info | claims


def person_from_claims(claims: dict[str, Any], settings: dict[str, Any]) -> CampusPerson:
    """The person an ID token's claims describe, by the portal's claim settings."""
    raw = claims.get(settings["OIDC_USERNAME_CLAIM"])
    username = str(raw or "").strip().lower()
    if not isinstance(raw, str) or not USERNAME_PATTERN.match(username):
        log.warning(
            "campus sign-in: the claim %s of subject %r is not a portal username: %r",
            settings["OIDC_USERNAME_CLAIM"],
            claims.get("sub"),
            raw,
        )
        raise SignInProblem(NO_USERNAME, f"username claim: {str(raw)[:64]!r}")
    groups = claims.get(settings["OIDC_GROUPS_CLAIM"]) or []
    if isinstance(groups, str):
        groups = [groups]
    named = " ".join(str(claims.get(k) or "") for k in ("given_name", "family_name")).strip()
    full_name = str(claims.get("name") or "").strip() or named or username
    return CampusPerson(
        username=username,
        full_name=full_name[:200],
        email=str(claims.get("email") or "").strip()[:254],
        role=role_from_groups(
            (str(group) for group in groups if isinstance(group, str | int)),
            dict(settings["OIDC_GROUP_ROLES"]),
        ),
    )


__all__ = ["OIDC", "SignInProblem", "finish", "init_app", "start"]
