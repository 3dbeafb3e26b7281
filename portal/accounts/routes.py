"""Admin pages for user accounts."""

import uuid

from flask import Blueprint, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from portal.accounts import services
from portal.accounts.forms import NewUserForm, PasswordResetForm, UserForm
from portal.auth.policy import roles
from portal.models import ROLES
from portal.web import Undo, commit_form, commit_or_show, db_session, one_page, signed_in_user

bp = Blueprint("accounts", __name__, url_prefix="/admin/users")


def _details(form: UserForm) -> services.UserDetails:
    return services.UserDetails(
        username=form.username.data or "",
        full_name=form.full_name.data or "",
        role=form.role.data or "",
        email=form.email.data or "",
        student_number=(form.student_number.data or "").strip() or None,
    )


@bp.get("/")
@roles("admin")
def users() -> str:
    text = request.args.get("q", "")
    role = request.args.get("role", "")
    if role not in ROLES:
        role = ""
    page = one_page(services.search_users_query(text, role))
    return render_template("accounts/users.html", page=page, q=text, role=role, roles=ROLES)


@bp.route("/new", methods=["GET", "POST"])
@roles("admin")
def create() -> str | Response:
    form = NewUserForm()
    if done := commit_form(
        form,
        lambda: services.create_user(
            db_session(), _details(form), form.password.data or "", actor=signed_in_user()
        ),
        message=lambda user: _("Account %(username)s created.", username=user.username),
        redirect_to=url_for("accounts.users"),
    ):
        return done
    return render_template("accounts/user_form.html", form=form, user=None)


@bp.route("/<uuid:user_id>/edit", methods=["GET", "POST"])
@roles("admin")
def edit(user_id: uuid.UUID) -> str | Response:
    user = services.get_user(db_session(), user_id)
    form = UserForm(obj=user)
    if done := commit_form(
        form,
        lambda: services.update_user(db_session(), user, _details(form), actor=signed_in_user()),
        message=lambda saved: _("Account %(username)s saved.", username=saved.username),
        redirect_to=url_for("accounts.users"),
    ):
        return done
    return render_template("accounts/user_form.html", form=form, user=user)


@bp.post("/<uuid:user_id>/active")
@roles("admin")
def set_active(user_id: uuid.UUID) -> Response:
    user = services.get_user(db_session(), user_id)
    make_active = request.form.get("active") == "1"
    return commit_or_show(
        lambda: services.set_active(
            db_session(),
            user,
            make_active,
            actor=signed_in_user(),
            undo=request.form.get("undo") == "1",
        ),
        message=lambda state: (
            _("Account %(username)s reactivated.", username=user.username)
            if state == "reactivated"
            else _("Account %(username)s deactivated.", username=user.username)
        ),
        redirect_to=url_for("accounts.users"),
        # A deactivation offers Undo: the same route, reactivating.
        undo=None if make_active else Undo(request.path, {"active": "1", "undo": "1"}),
    )


@bp.route("/<uuid:user_id>/password", methods=["GET", "POST"])
@roles("admin")
def reset_password(user_id: uuid.UUID) -> str | Response:
    user = services.get_user(db_session(), user_id)
    form = PasswordResetForm()
    if form.validate_on_submit() and (
        done := commit_or_show(
            lambda: services.reset_password(
                db_session(), user, form.password.data or "", actor=signed_in_user()
            ),
            message=(
                _(
                    "Password for %(username)s was reset. It works once: %(username)s must "
                    "choose a new password at the next log-in, and was logged out everywhere.",
                    username=user.username,
                )
            ),
            redirect_to=url_for("accounts.users"),
            form=form,
        )
    ):
        return done
    return render_template("accounts/password.html", form=form, user=user)
