"""The central server's pages of a sign-in on a copy (portal/sync/server/sign_in.py): the
authorize page the copy opens in the system browser (RFC 8252), and `/device`, where a person
types the code a copy shows (RFC 8628). Both need the person signed in here, by any method:
the log-in page brings them back."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, abort, current_app, make_response, redirect, render_template, request
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from portal.auth.policy import signed_in
from portal.errors import ValidationError
from portal.extensions import db, limiter
from portal.models import Device, User
from portal.sync.forms import ConfirmSignInForm, UserCodeForm
from portal.sync.server import sign_in
from portal.web import db_session, signed_in_user

bp = Blueprint("device_sign_in", __name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _server_only() -> None:
    if current_app.config["PORTAL"]["MODE"] != "server":
        abort(404)


def _back_to_copy(redirect_uri: str, **values: str) -> Response:
    separator = "&" if "?" in redirect_uri else "?"
    return redirect(redirect_uri + separator + urlencode(values), code=303)


def _refused(message: str, status: int = 400) -> tuple[str, int]:
    return render_template("sync/sign_in_refused.html", message=message), status


@bp.route("/sync/sign-in/authorize", methods=["GET", "POST"])
@signed_in
def authorize() -> Response | str | tuple[str, int]:
    """ "Sign in on <device>?": the person confirms, and the copy's loopback address receives
    a one-time code (or `error=access_denied` when they cancel)."""
    _server_only()
    args = request.args
    try:
        device = sign_in.check_authorize_request(
            db_session(),
            device_id=args.get("client_id", ""),
            redirect_uri=args.get("redirect_uri", ""),
            code_challenge=args.get("code_challenge", ""),
            code_challenge_method=args.get("code_challenge_method", ""),
            state=args.get("state", ""),
        )
    except ValidationError as error:
        return _refused(str(error))
    if args.get("response_type", "code") != "code":
        return _refused(_("This sign-in link asks for something the server does not give."))
    user = signed_in_user()
    redirect_uri, state = args["redirect_uri"], args["state"]
    form = ConfirmSignInForm()
    if form.validate_on_submit():
        if form.cancel.data:
            return _back_to_copy(redirect_uri, error="access_denied", state=state)
        refusal = sign_in.join_refusal(db_session(), device, user)
        if refusal:
            return _back_to_copy(
                redirect_uri, error="access_denied", error_description=refusal, state=state
            )
        code = sign_in.issue_loopback_code(
            db_session(),
            device,
            user,
            code_challenge=args["code_challenge"],
            redirect_uri=redirect_uri,
            now=_now(),
        )
        db.session.commit()
        return _back_to_copy(redirect_uri, code=code, state=state)
    response = make_response(_confirm_page(form, device, user, action=request.full_path))
    # The confirmation's answer is a redirect to the copy's own address: the page's
    # form-action must allow it (browsers apply form-action to a form's redirects too).
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(redirect_uri))
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        f"form-action 'self' {origin}; frame-ancestors 'none'"
    )
    return response


def _confirm_page(form: ConfirmSignInForm, device: Device, user: User, *, action: str) -> str:
    """ "Sign in on <device>?", posted to `action`, saying beforehand why the account may not
    join the device where it may not."""
    return render_template(
        "sync/sign_in_confirm.html",
        form=form,
        device=device,
        user=user,
        action=action,
        refusal=sign_in.join_refusal(db_session(), device, user),
    )


def _guess_limit() -> str:
    return str(current_app.config["PORTAL"]["LOGIN_RATE_LIMIT"])


@bp.route("/device", methods=["GET", "POST"])
@signed_in
@limiter.limit(_guess_limit, methods=["POST"])
def device_page() -> Response | str | tuple[str, int]:
    """RFC 8628's verification page: the code a copy shows, then "Sign in on <device>?"."""
    _server_only()
    user = signed_in_user()
    confirm = ConfirmSignInForm()
    if request.method == "POST" and ("confirm" in request.form or "cancel" in request.form):
        if not confirm.validate_on_submit():
            abort(400)
        try:
            grant = sign_in.pending_device_grant(
                db_session(), confirm.user_code.data or "", now=_now()
            )
            approve = bool(confirm.confirm.data)
            device = sign_in.sign_in_device(db_session(), str(grant.device_id))
            if approve and (refusal := sign_in.join_refusal(db_session(), device, user)):
                return _refused(refusal, 403)
            sign_in.decide_device_grant(db_session(), grant, user, approve=approve, now=_now())
        except ValidationError as error:
            db.session.rollback()
            return _refused(str(error))
        db.session.commit()
        return render_template("sync/sign_in_done.html", approved=approve, device=device)
    form = UserCodeForm()
    if request.method == "GET" and request.args.get("user_code"):
        form.user_code.data = request.args["user_code"][:20]
    if form.validate_on_submit():
        try:
            grant = sign_in.pending_device_grant(
                db_session(), form.user_code.data or "", now=_now()
            )
            device = sign_in.sign_in_device(db_session(), str(grant.device_id))
        except ValidationError as error:
            form.user_code.errors = [str(error)]
            return render_template("sync/sign_in_code.html", form=form), 422
        confirm.user_code.data = sign_in.normalise_user_code(form.user_code.data or "")
        return _confirm_page(confirm, device, user, action=request.path)
    status = 422 if request.method == "POST" else 200
    return render_template("sync/sign_in_code.html", form=form), status
