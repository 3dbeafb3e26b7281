"""Admin pages: dashboard, terms/courses/sections/meetings, CSV import and roster export."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.globals import app_ctx
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from portal import jobs
from portal.admin import csv_import, dashboard, exports, import_jobs, services, tasks
from portal.admin.forms import CourseForm, ImportForm, MeetingForm, SectionForm, TermForm
from portal.auth.policy import passive, roles
from portal.catalogue.services import departments, get_section
from portal.models import Course, Meeting, Section, Term, utcnow
from portal.sync import review
from portal.web import (
    Undo,
    commit_form,
    commit_or_show,
    db_session,
    filled,
    one_page,
    signed_in_user,
)

bp = Blueprint("admin", __name__, url_prefix="/admin")

ADMIN = "admin"
REPORT_ROWS_SHOWN = 100


def _archive_flag() -> bool:
    return request.form.get("archive") == "1"


def _show_archived() -> bool:
    return request.args.get("archived") == "1"


Item = TypeVar("Item", Term, Course, Section)
Form = TypeVar("Form", bound=FlaskForm)


@dataclass(frozen=True)
class _Editor(Generic[Item, Form]):
    """The create and edit pages of one kind of catalogue item, around `commit_form`."""

    name: str  # "term": its template is admin/term_form.html
    created: LazyString  # said once a new one is saved: "Term %(label)s created."
    saved: LazyString  # said once an existing one is saved
    make_form: Callable[[Item | None], Form]  # for a new item (None) or to edit one
    save: Callable[[Form, Item | None], tuple[Item, str]]  # the item, and more to say
    label: Callable[[Item], str]
    shown_after: Callable[[Item], str]  # where the browser goes once it is saved
    context: Callable[[], dict[str, Any]] = dict  # more values for the template

    def page(self, found: Item | None) -> str | Response:
        form = self.make_form(found)
        said = self.saved if found is not None else self.created
        if response := commit_form(
            form,
            lambda: self.save(form, found),
            message=lambda saved: str(said) % {"label": self.label(saved[0])} + saved[1],
            redirect_to=lambda saved: self.shown_after(saved[0]),
        ):
            return response
        name = self.name
        return render_template(
            f"admin/{name}_form.html", form=form, **{name: found}, **self.context()
        )


def _saved(
    found: Item | None,
    details: Any,
    create: Callable[..., Item],
    update: Callable[..., Item],
) -> tuple[Item, str]:
    """A new item made from `details` (`create`), or `found` changed to them (`update`), by the
    signed-in administrator; nothing more to say."""
    if found is None:
        return create(db_session(), details, actor=signed_in_user()), ""
    return update(db_session(), found, details, actor=signed_in_user()), ""


# --- Dashboard -----------------------------------------------------------------------------------


@bp.get("/", endpoint="dashboard")
@roles(ADMIN)
def dashboard_page() -> str:
    try:
        under = int(request.args.get("under", "25"))
    except ValueError:
        under = 25
    figures = dashboard.build(
        db_session(),
        term_code=request.args.get("term", "")[:20],
        course_code=request.args.get("course", "")[:20],
        under_percent=under,
        today=utcnow().date(),
    )
    open_conflicts = None
    if current_app.config["PORTAL"]["MODE"] == "server":  # devices sync with the server only
        open_conflicts = review.open_conflict_count(db_session())
    return render_template("admin/dashboard.html", d=figures, open_conflicts=open_conflicts)


# --- Terms ---------------------------------------------------------------------------------------


def _term_details(form: TermForm) -> services.TermDetails:
    return services.TermDetails(
        code=form.code.data or "",
        name=form.name.data or "",
        starts_on=form.starts_on.data,
        ends_on=form.ends_on.data,
        registration_opens_at=form.registration_opens_at.data,
        registration_closes_at=form.registration_closes_at.data,
        add_drop_deadline=form.add_drop_deadline.data,
        max_credits=form.max_credits.data,
    )


@bp.get("/terms")
@roles(ADMIN)
def terms() -> str:
    archived = _show_archived()
    rows = services.list_terms(db_session(), include_archived=archived)
    return render_template("admin/terms.html", rows=rows, archived=archived)


TERMS = _Editor(
    "term",
    created=_l("Term %(label)s created."),
    saved=_l("Term %(label)s saved."),
    make_form=lambda found: TermForm(obj=found),
    save=lambda form, found: _saved(
        found, _term_details(form), services.create_term, services.update_term
    ),
    label=lambda term: term.code,
    shown_after=lambda term: url_for("admin.term", term_id=term.id),
)


@bp.route("/terms/new", methods=["GET", "POST"])
@roles(ADMIN)
def term_create() -> str | Response:
    return TERMS.page(None)


@bp.get("/terms/<uuid:term_id>")
@roles(ADMIN)
def term(term_id: uuid.UUID) -> str:
    found = services.get_term(db_session(), term_id)
    text = request.args.get("q", "")  # searched as typed, whole
    archived = _show_archived()
    page = one_page(services.sections_query(found, text, include_archived=archived))
    return render_template("admin/term.html", term=found, page=page, q=text, archived=archived)


@bp.route("/terms/<uuid:term_id>/edit", methods=["GET", "POST"])
@roles(ADMIN)
def term_edit(term_id: uuid.UUID) -> str | Response:
    return TERMS.page(services.get_term(db_session(), term_id))


@bp.post("/terms/<uuid:term_id>/archive")
@roles(ADMIN)
def term_archive(term_id: uuid.UUID) -> Response:
    found = services.get_term(db_session(), term_id)
    return _archive(found, url_for("admin.terms"))


def _archive(item: Term | Course | Section | Meeting, back: str) -> Response:
    """Archive or restore. An archive just made offers Undo: the same route, restoring."""
    archiving = _archive_flag() and not item.is_deleted
    return commit_or_show(
        lambda: services.set_archived(
            db_session(),
            item,
            _archive_flag(),
            actor=signed_in_user(),
            now=utcnow(),
            undo=request.form.get("undo") == "1",
        ),
        message=lambda text: text,
        redirect_to=back,
        undo=Undo(request.path, {"archive": "0", "undo": "1"}) if archiving else None,
    )


# --- Courses -------------------------------------------------------------------------------------


def _course_details(form: CourseForm) -> services.CourseDetails:
    return services.CourseDetails(
        code=form.code.data or "",
        title=form.title.data or "",
        credits=form.credits.data or 0,
        department=form.department.data or "",
        description=form.description.data or "",
    )


@bp.get("/courses")
@roles(ADMIN)
def courses() -> str:
    text = request.args.get("q", "")  # searched as typed, whole
    archived = _show_archived()
    page = one_page(services.courses_query(text, include_archived=archived))
    return render_template("admin/courses.html", page=page, q=text, archived=archived)


COURSES = _Editor(
    "course",
    created=_l("Course %(label)s created."),
    saved=_l("Course %(label)s saved."),
    make_form=lambda found: CourseForm(obj=found),
    save=lambda form, found: _saved(
        found, _course_details(form), services.create_course, services.update_course
    ),
    label=lambda course: course.code,
    shown_after=lambda course: url_for("admin.courses", q=course.code),
    context=lambda: {"departments": departments(db_session())},
)


@bp.route("/courses/new", methods=["GET", "POST"])
@roles(ADMIN)
def course_create() -> str | Response:
    return COURSES.page(None)


@bp.route("/courses/<uuid:course_id>/edit", methods=["GET", "POST"])
@roles(ADMIN)
def course_edit(course_id: uuid.UUID) -> str | Response:
    return COURSES.page(services.get_course(db_session(), course_id))


@bp.post("/courses/<uuid:course_id>/archive")
@roles(ADMIN)
def course_archive(course_id: uuid.UUID) -> Response:
    found = services.get_course(db_session(), course_id)
    return _archive(found, url_for("admin.courses", q=found.code, archived="1"))


# --- Sections, staff and meetings ----------------------------------------------------------------


def _section_form(section: Section | None) -> SectionForm:
    form = SectionForm(obj=section) if section is not None else SectionForm()
    if section is not None:
        del form.term_code
        del form.course_code
        if request.method == "GET":
            form.instructor_username.data = (
                section.instructor.username if section.instructor else ""
            )
            form.lab_staff_username.data = section.lab_staff.username if section.lab_staff else ""
    else:
        form.term_code.choices = [
            (t.code, f"{t.name} ({t.code})") for t in services.term_choices(db_session())
        ]
        if request.method == "GET" and request.args.get("term"):
            form.term_code.data = request.args["term"]

    def people(role: str) -> list[tuple[str, str]]:
        return [("", _("Nobody yet"))] + [
            (u.username, f"{u.full_name} ({u.username})")
            for u in services.staff_choices(db_session(), role)
        ]

    form.instructor_username.choices = people("instructor")
    form.lab_staff_username.choices = people("lab_staff")
    return form


def _section_details(form: SectionForm, section: Section | None) -> services.SectionDetails:
    return services.SectionDetails(
        term_code=section.term.code if section else (form.term_code.data or ""),
        course_code=section.course.code if section else (form.course_code.data or ""),
        number=form.number.data or "",
        capacity=form.capacity.data or 0,
        waitlist_capacity=form.waitlist_capacity.data or 0,
        room=form.room.data or "",
        instructor_username=form.instructor_username.data or "",
        lab_staff_username=form.lab_staff_username.data or "",
    )


def _save_section(form: SectionForm, found: Section | None) -> tuple[Section, str]:
    details, actor = _section_details(form, found), signed_in_user()
    if found is None:
        return services.create_section(db_session(), details, actor=actor), ""
    promoted = services.update_section(db_session(), found, details, actor=actor, now=utcnow())
    if not promoted:
        return found, ""
    return found, " " + ngettext(
        "%(num)d waitlisted student got a seat.",
        "%(num)d waitlisted students got a seat.",
        promoted,
    )


SECTIONS = _Editor(
    "section",
    created=_l("Section %(label)s created."),
    saved=_l("Section %(label)s saved."),
    make_form=_section_form,
    save=_save_section,
    label=lambda section: section.label,
    shown_after=lambda section: url_for("admin.section", section_id=section.id),
)


@bp.route("/sections/new", methods=["GET", "POST"])
@roles(ADMIN)
def section_create() -> str | Response:
    return SECTIONS.page(None)


@bp.get("/sections/<uuid:section_id>")
@roles(ADMIN)
def section(section_id: uuid.UUID) -> str:
    found = get_section(db_session(), section_id, include_archived=True, full=True)
    return _section_page(found, MeetingForm(formdata=None))


def _section_page(found: Section, meeting_form: MeetingForm) -> str:
    archived = _show_archived()
    meetings = services.section_meetings(db_session(), found, include_archived=archived)
    return render_template(
        "admin/section.html",
        section=found,
        meetings=meetings,
        meeting_form=meeting_form,
        archived=archived,
    )


@bp.route("/sections/<uuid:section_id>/edit", methods=["GET", "POST"])
@roles(ADMIN)
def section_edit(section_id: uuid.UUID) -> str | Response:
    return SECTIONS.page(get_section(db_session(), section_id, include_archived=True, full=True))


@bp.post("/sections/<uuid:section_id>/archive")
@roles(ADMIN)
def section_archive(section_id: uuid.UUID) -> Response:
    found = get_section(db_session(), section_id, include_archived=True)
    return _archive(found, url_for("admin.section", section_id=found.id))


def _meeting_details(form: MeetingForm) -> services.MeetingDetails:
    return services.MeetingDetails(
        weekday=int(form.weekday.data or 0),
        starts_at=filled(form.starts_at.data),
        ends_at=filled(form.ends_at.data),
        kind=form.kind.data or "lecture",
    )


@bp.post("/sections/<uuid:section_id>/meetings")
@roles(ADMIN)
def meeting_create(section_id: uuid.UUID) -> str | Response:
    found = get_section(db_session(), section_id, include_archived=True, full=True)
    form = MeetingForm()
    if form.validate_on_submit() and (
        done := commit_or_show(
            lambda: services.add_meeting(
                db_session(), found, _meeting_details(form), actor=signed_in_user()
            ),
            message=lambda meeting: _("Meeting %(label)s added.", label=meeting.label),
            redirect_to=url_for("admin.section", section_id=found.id),
            form=form,
        )
    ):
        return done
    return _section_page(found, form)


@bp.route("/meetings/<uuid:meeting_id>/edit", methods=["GET", "POST"])
@roles(ADMIN)
def meeting_edit(meeting_id: uuid.UUID) -> str | Response:
    meeting = services.get_meeting(db_session(), meeting_id)
    form = MeetingForm(obj=meeting)
    if request.method == "GET":
        form.weekday.data = str(meeting.weekday)
    if form.validate_on_submit() and (
        done := commit_or_show(
            lambda: services.update_meeting(
                db_session(), meeting, _meeting_details(form), actor=signed_in_user()
            ),
            message=lambda _saved: _("Meeting saved: %(label)s.", label=meeting.label),
            redirect_to=url_for("admin.section", section_id=meeting.section_id),
            form=form,
        )
    ):
        return done
    return render_template("admin/meeting_form.html", form=form, meeting=meeting)


@bp.post("/meetings/<uuid:meeting_id>/archive")
@roles(ADMIN)
def meeting_archive(meeting_id: uuid.UUID) -> Response:
    meeting: Meeting = services.get_meeting(db_session(), meeting_id)
    return _archive(meeting, url_for("admin.section", section_id=meeting.section_id))


def _csv_response(text: str, filename: str) -> Response:
    safe_name = re.sub(r"[^A-Za-z0-9._-]+", "_", filename).strip("._") or "export.csv"
    response = make_response(text)
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{safe_name}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/sections/<uuid:section_id>/roster.csv")
@roles(ADMIN, "instructor", "lab_staff")
def roster_export(section_id: uuid.UUID) -> Response:
    found = get_section(db_session(), section_id, include_archived=True)
    text = exports.roster_csv(db_session(), found, signed_in_user())
    return _csv_response(text, exports.roster_filename(found))


@bp.get("/sections/<uuid:section_id>/gradebook.csv")
@roles(ADMIN, "instructor", "lab_staff")
def gradebook_export(section_id: uuid.UUID) -> Response:
    found = get_section(db_session(), section_id, include_archived=True)
    text = exports.gradebook_csv(db_session(), found, signed_in_user())
    return _csv_response(text, exports.section_filename("gradebook", found))


@bp.get("/sections/<uuid:section_id>/attendance.csv")
@roles(ADMIN, "instructor", "lab_staff")
def attendance_export(section_id: uuid.UUID) -> Response:
    found = get_section(db_session(), section_id, include_archived=True)
    text = exports.attendance_csv(db_session(), found, signed_in_user())
    return _csv_response(text, exports.section_filename("attendance", found))


# --- CSV import ----------------------------------------------------------------------------------


def _store() -> import_jobs.JobStore:
    return tasks.import_store()


def _run_in_background(job_id: str, mode: str) -> None:
    import_jobs.mark_queued(_store(), job_id, mode)
    jobs.enqueue(
        app_ctx.app,  # the application itself, not the proxy: the job outlives the request
        tasks.run_import,
        job_id,
        mode,
        str(current_user.id),
        str(get_locale() or ""),  # the job's messages are said in the person's language
        key=job_id,
    )


@bp.route("/imports", methods=["GET", "POST"])
@roles(ADMIN)
def imports() -> str | Response:
    form = ImportForm()
    if form.validate_on_submit():
        upload = form.file.data
        data = upload.read()
        job = _store().create(
            form.kind.data or "", upload.filename or "", data, current_user.username
        )
        _run_in_background(job.id, "check")
        return redirect(url_for("admin.import_job", job_id=job.id))
    return render_template(
        "admin/imports.html", form=form, jobs=_store().recent(), kinds=csv_import.KINDS
    )


@bp.get("/imports/<job_id>")
@roles(ADMIN)
def import_job(job_id: str) -> str:
    store = _store()
    job = store.get(job_id)
    report = None if job.running else store.report(job_id)
    return render_template(
        "admin/import_job.html",
        job=job,
        report=report,
        kind=csv_import.KINDS[job.kind],
        shown=REPORT_ROWS_SHOWN,
    )


@bp.get("/imports/<job_id>/progress")
@roles(ADMIN)
@passive
def import_progress(job_id: str) -> Response:
    """Polled by the job's page every second: not the admin's activity (idle log-out)."""
    job = _store().get(job_id)
    response = make_response(render_template("admin/_import_progress.html", job=job))
    if not job.running:
        response.headers["HX-Refresh"] = "true"  # the finished report replaces the progress bar
    return response


@bp.post("/imports/<job_id>/run")
@roles(ADMIN)
def import_run(job_id: str) -> Response:
    store = _store()
    job = store.get(job_id)
    if not job.can_import:
        flash(_("This file cannot be imported: check it first and fix every problem."), "danger")
    elif not store.claim(job_id, "import"):
        flash(_("This import has already been started."), "info")
    else:
        _run_in_background(job_id, "import")
    return redirect(url_for("admin.import_job", job_id=job_id))


@bp.get("/imports/<job_id>/report.csv")
@roles(ADMIN)
def import_report(job_id: str) -> Response:
    store = _store()
    job = store.get(job_id)
    report = store.report(job_id)
    if report is None:
        abort(404)
    rows = [(p.line or "", p.column, p.severity, p.message) for p in report.problems]
    text = exports.to_csv(("line", "column", "severity", "problem"), rows)
    return _csv_response(text, f"report-{Path(job.filename).stem}.csv")


@bp.post("/imports/<job_id>/passwords.csv")
@roles(ADMIN)
def import_passwords(job_id: str) -> Response:
    text = _store().take_passwords(job_id)
    if text is None:
        flash(_("The one-time passwords were already downloaded; they are not kept."), "warning")
        return redirect(url_for("admin.import_job", job_id=job_id))
    return _csv_response(text, f"one-time-passwords-{job_id[:8]}.csv")


@bp.get("/imports/templates/<kind>.csv")
@roles(ADMIN)
def import_template(kind: str) -> Response:
    if kind not in csv_import.KINDS:
        abort(404)
    return _csv_response(csv_import.template_csv(kind), f"{kind}-template.csv")
