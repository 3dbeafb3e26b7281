"""Admin pages for user accounts."""

import uuid

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from portal.accounts import services
from portal.accounts.forms import NewUserForm, PasswordResetForm, UserForm
from portal.audit.services import record
from portal.auth.policy import roles
from portal.errors import ValidationError
from portal.extensions import db
from portal.models import ROLES

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
    page = db.paginate(
        services.search_users_query(text, role),
        per_page=current_app.config["PAGE_SIZE"],
        error_out=False,
    )
    return render_template("accounts/users.html", page=page, q=text, role=role, roles=ROLES)


@bp.route("/new", methods=["GET", "POST"])
@roles("admin")
def create() -> str | Response:
    form = NewUserForm()
    if form.validate_on_submit():
        try:
            user = services.create_account(
                db.session,
                _details(form),
                form.password.data or "",
                actor=current_user,  # type: ignore[arg-type]
            )
        except ValidationError as error:
            db.session.rollback()
            form.form_errors.append(str(error))
        else:
            db.session.commit()
            flash(f"Account {user.username} created.", "success")
            return redirect(url_for("accounts.users"))
    return render_template("accounts/user_form.html", form=form, user=None)


@bp.route("/<uuid:user_id>/edit", methods=["GET", "POST"])
@roles("admin")
def edit(user_id: uuid.UUID) -> str | Response:
    user = services.get_user(db.session, user_id)
    form = UserForm(obj=user)
    if form.validate_on_submit():
        try:
            services.update_account(
                db.session,
                user,
                _details(form),
                actor=current_user,  # type: ignore[arg-type]
            )
        except ValidationError as error:
            db.session.rollback()
            form.form_errors.append(str(error))
        else:
            db.session.commit()
            flash(f"Account {user.username} saved.", "success")
            return redirect(url_for("accounts.users"))
    return render_template("accounts/user_form.html", form=form, user=user)


@bp.post("/<uuid:user_id>/active")
@roles("admin")
def set_active(user_id: uuid.UUID) -> Response:
    user = services.get_user(db.session, user_id)
    make_active = request.form.get("active") == "1"
    try:
        state = services.set_account_active(
            db.session,
            user,
            make_active,
            actor=current_user,  # type: ignore[arg-type]
        )
    except ValidationError as error:
        db.session.rollback()
        flash(str(error), "danger")
    else:
        db.session.commit()
        flash(f"Account {user.username} {state}.", "success")
    return redirect(url_for("accounts.users"))


@bp.route("/<uuid:user_id>/password", methods=["GET", "POST"])
@roles("admin")
def reset_password(user_id: uuid.UUID) -> str | Response:
    user = services.get_user(db.session, user_id)
    form = PasswordResetForm()
    if form.validate_on_submit():
        services.reset_password(db.session, user, form.password.data or "")
        record(
            db.session,
            current_user,  # type: ignore[arg-type]
            "account.password_reset",
            entity_type="user",
            entity_id=user.id,
            summary=f"Password of {user.username} reset by an administrator",
        )
        db.session.commit()
        flash(f"Password for {user.username} was reset.", "success")
        return redirect(url_for("accounts.users"))
    return render_template("accounts/password.html", form=form, user=user)
