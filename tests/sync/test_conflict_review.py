"""A kept conflict or refusal as people read it and act on it, end to end: an instructor's
mark entered offline on their laptop (a desktop app over its own SQLite file) is refused by the
central server because the grades were finalised meanwhile; what the author reads on "My sync
conflicts" and in the gradebook of the laptop, what the administrator reads on the Conflicts
page, and the actions (apply after the lock is lifted by an administrator, ask, dismiss), by
whom they may be taken."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from portal.extensions import db as _db
from portal.models import (
    Assessment,
    AuditEntry,
    LabSession,
    Mark,
    Registration,
    Section,
    SyncConflict,
    SyncState,
    User,
)
from portal.sync import review
from tests import factories
from tests.conftest import csrf_token, post_form
from tests.forms import rendered_forms
from tests.sync.conftest import as_user, assert_replica_matches


def _signed_in(app, username):
    client = app.test_client()
    response = post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def _text(markup: str) -> str:
    """What a person reads: the tags gone, the spaces collapsed."""
    without_tags = re.sub(r"<[^>]+>", " ", markup)
    return " ".join(html.unescape(without_tags).split())


def _conflict_row(page: str, conflict_id) -> str:
    found = re.search(rf'<tr data-conflict="{conflict_id}">(.*?)</tr>', page, re.S)
    assert found, f"no row for conflict {conflict_id}"
    return found.group(1)


def _action_form(page, conflict_id, action: str):
    forms = [
        form
        for form in rendered_forms(page)
        if form.action.endswith(f"/conflicts/{conflict_id}/resolve")
        and form.values.get("action") == [action]
    ]
    assert len(forms) == 1, f"{len(forms)} {action!r} buttons for {conflict_id}"
    return forms[0]


def _has_action(page, conflict_id, action: str) -> bool:
    return any(
        form.action.endswith(f"/conflicts/{conflict_id}/resolve")
        and form.values.get("action") == [action]
        for form in rendered_forms(page)
    )


def _offline_mark(laptop, actor_id, assessment_id, student_id, raw):
    from portal.grading.services import set_mark

    with laptop.app.app_context():
        as_user(laptop.app, actor_id)
        db = _db.session
        points = None if raw in (None, "") else Decimal(raw)
        set_mark(db, db.get(User, actor_id), db.get(Assessment, assessment_id), student_id, points)
        db.commit()


def _server_mark(server, actor_id, assessment_id, student_id, raw):
    _offline_mark_on(server, actor_id, assessment_id, student_id, raw)


def _offline_mark_on(app, actor_id, assessment_id, student_id, raw):
    from portal.grading.services import set_mark

    with app.app_context():
        as_user(app, actor_id)
        db = _db.session
        points = None if raw in (None, "") else Decimal(raw)
        set_mark(db, db.get(User, actor_id), db.get(Assessment, assessment_id), student_id, points)
        db.commit()


@pytest.fixture
def term_with_two_lab_twos(campus, server):
    """Real names, a "Lab 2" in the campus section (out of 50) and another "Lab 2" in a second
    section of the same course, so that only the section tells them apart; weights at 100%."""
    with server.app_context():
        db = _db.session
        db.execute(
            update(User).where(User.id == campus.students[0]).values(full_name="Sam Student")
        )
        db.execute(
            update(User).where(User.id == campus.instructor).values(full_name="Terry Teacher")
        )
        db.execute(update(User).where(User.id == campus.admin).values(full_name="Ada Admin"))
        section = db.get(Section, campus.section)
        twin = factories.make_section(db, course=section.course, term=section.term)
        lab2 = Assessment(section_id=section.id, name="Lab 2", kind="lab", weight=10, max_points=50)
        final = Assessment(
            section_id=section.id, name="Final", kind="exam", weight=40, max_points=100
        )
        twin_lab2 = Assessment(
            section_id=twin.id, name="Lab 2", kind="lab", weight=10, max_points=50
        )
        db.add_all([lab2, final, twin_lab2])
        db.commit()
        return {"lab2": lab2.id, "label": section.label, "twin": twin.label}


def _finalise(server, instructor_id, section_id):
    from portal.grading.services import finalise_section

    with server.app_context():
        as_user(server, instructor_id)
        db = _db.session
        finalise_section(
            db, db.get(User, instructor_id), db.get(Section, section_id), now=datetime.now(UTC)
        )
        db.commit()


@pytest.fixture
def refused_mark(campus, server, term_with_two_lab_twos, make_device):
    """Terry Teacher enters 45 for Sam Student's Lab 2 on the laptop, offline; meanwhile the
    grades of the section are finalised on the server; the laptop syncs."""
    laptop = make_device("teach1")
    _offline_mark(
        laptop, campus.instructor, term_with_two_lab_twos["lab2"], campus.students[0], "45"
    )
    _finalise(server, campus.instructor, campus.section)
    summary = laptop.sync()
    assert summary.refused == 1
    with server.app_context():
        conflict_id = _db.session.scalar(select(SyncConflict.id))
    return laptop, conflict_id


def test_the_author_reads_what_was_refused_on_the_laptop(
    campus, refused_mark, term_with_two_lab_twos
):
    laptop, conflict_id = refused_mark
    label = term_with_two_lab_twos["label"]
    client = _signed_in(laptop.app, "teach1")
    page = client.get("/sync/my-conflicts").get_data(as_text=True)
    row = _text(_conflict_row(page, conflict_id))
    assert f"Sam Student's Lab 2 mark in {label}" in row
    assert "Student: Sam Student (stud1)" in row and "Assessment: Lab 2" in row
    assert f"Section: {label}" in row and term_with_two_lab_twos["twin"] not in row
    assert "Refused by the server's rules" in row and f"Grades for {label} are final" in row
    assert "45 (points)" in row  # what Terry entered
    assert "no mark" in row  # what is in place
    # What can be done: said on the laptop (applying happens on the campus server), and a
    # button to dismiss it.
    assert f"Grades of {label} are final: ask an administrator to apply 45" in row
    assert _has_action(page, conflict_id, "keep") and not _has_action(page, conflict_id, "apply")
    assert "record d" not in row and "points: 45" not in row
    assert "http://campus.test/sync/my-conflicts" in page
    # The gradebook says it by the cell, not only "no mark (locked)".
    gradebook = client.get(f"/sections/{campus.section}/gradebook").get_data(as_text=True)
    note = re.search(r"<div class=\"gb-sync-note[^>]*>(.*?)</div>", gradebook, re.S)
    assert note, "the refused mark is not shown in the gradebook"
    said = _text(note.group(1))
    assert said.startswith("45 entered offline by Terry Teacher was refused: Grades for")
    assert 'href="/sync/my-conflicts"' in note.group(1)


ON_BOTH = pytest.mark.parametrize("server_database", ["sqlite", "postgresql"], indirect=True)


@ON_BOTH
def test_the_admin_reads_it_and_applies_it_with_a_reason(
    campus, server, refused_mark, term_with_two_lab_twos
):
    laptop, conflict_id = refused_mark
    label = term_with_two_lab_twos["label"]
    admin = _signed_in(server, "admin1")
    page = admin.get("/admin/sync/conflicts").get_data(as_text=True)
    row = _text(_conflict_row(page, conflict_id))
    assert f"Sam Student's Lab 2 mark in {label}" in row
    assert "45 (points)" in row and "no mark" in row
    assert "Terry Teacher (teach1)" in row and "dev0" in row
    assert "Apply 45" in row and "Dismiss" in row and "Reason (final grades)" in row
    apply = _action_form(page, conflict_id, "apply")
    # Without a reason a final mark does not change.
    refused = apply.submit(admin, reason="")
    assert refused.status_code == 302
    assert "give the reason" in admin.get("/admin/sync/conflicts").get_data(as_text=True)
    done = apply.submit(admin, reason="Lab 2 was marked before the deadline; entered offline.")
    assert done.status_code == 302
    with server.app_context():
        db = _db.session
        mark = db.scalar(select(Mark).filter_by(assessment_id=term_with_two_lab_twos["lab2"]))
        assert mark.points == 45 and mark.id == db.get(SyncConflict, conflict_id).row_id
        conflict = db.get(SyncConflict, conflict_id)
        assert (conflict.resolution, conflict.resolved_by_id) == ("applied", campus.admin)
        grade = db.scalar(
            select(Registration.final_grade).filter_by(
                student_id=campus.students[0], section_id=campus.section
            )
        )
        assert grade is not None
        entry = db.scalar(select(AuditEntry).filter_by(action="sync.conflict_resolved"))
        assert f"points of Sam Student's Lab 2 mark in {label}" in entry.summary
        assert "applied 45 (was no mark)" in entry.summary
        assert "marks.points" not in entry.summary
    # The laptop learns it at its next pull, and says so.
    laptop.sync()
    client = _signed_in(laptop.app, "teach1")
    mine = client.get("/sync/my-conflicts").get_data(as_text=True)
    applied = re.search(r"<li data-applied>(.*?)</li>", mine, re.S)
    assert applied, "the laptop does not say the value is now in place"
    assert _text(applied.group(1)).startswith(
        f"45 for Sam Student's Lab 2 mark in {label}: now in place"
    )
    assert "No sync conflicts" in mine
    assert 'data-sync-field="conflicts" href="/sync/my-conflicts" hidden' in client.get(
        "/"
    ).get_data(as_text=True)
    gradebook = client.get(f"/sections/{campus.section}/gradebook").get_data(as_text=True)
    assert "gb-sync-note" not in gradebook
    with laptop.app.app_context():
        assert _db.session.scalar(select(Mark.points)) == 45


@ON_BOTH
def test_the_instructor_of_the_section_is_told_to_ask_and_may_dismiss(
    campus, server, refused_mark, term_with_two_lab_twos
):
    _laptop, conflict_id = refused_mark
    label = term_with_two_lab_twos["label"]
    teacher = _signed_in(server, "teach1")
    page = teacher.get("/sync/section-conflicts").get_data(as_text=True)
    row = _text(_conflict_row(page, conflict_id))
    assert f"Sam Student's Lab 2 mark in {label}" in row
    assert f"Grades of {label} are final: ask an administrator to apply 45" in row
    assert not _has_action(page, conflict_id, "apply")
    # An apply sent anyway is refused with the reason; the conflict stays open.
    dismiss = _action_form(page, conflict_id, "keep")
    forged = dismiss.fill(action="apply").submit(teacher)
    assert forged.status_code == 403
    assert "only an administrator can apply it" in forged.get_data(as_text=True)
    with server.app_context():
        assert _db.session.get(SyncConflict, conflict_id).resolved_at is None
    # Another instructor neither sees it nor may act on it.
    with server.app_context():
        factories.make_user(_db.session, "instructor", username="teach2")
        _db.session.commit()
    other = _signed_in(server, "teach2")
    assert str(conflict_id) not in other.get("/sync/section-conflicts").get_data(as_text=True)
    response = dismiss.fill(action="keep", csrf_token=csrf_token(other, "/")).submit(other)
    assert response.status_code == 403
    assert "Only an administrator, its author or the section's instructor can." in _text(
        response.get_data(as_text=True)
    )
    with server.app_context():
        assert _db.session.get(SyncConflict, conflict_id).resolved_at is None
    # Students and lab staff have no section page.
    assert _signed_in(server, "stud1").get("/sync/section-conflicts").status_code == 403
    assert _signed_in(server, "lab1").get("/sync/section-conflicts").status_code == 403
    # The section's instructor dismisses it.
    done = _action_form(page, conflict_id, "keep").submit(teacher)
    assert done.status_code == 302
    with server.app_context():
        conflict = _db.session.get(SyncConflict, conflict_id)
        assert (conflict.resolution, conflict.resolved_by_id) == ("kept", campus.instructor)
        entry = _db.session.scalar(select(AuditEntry).filter_by(action="sync.conflict_resolved"))
        assert entry.summary == (
            f"Sync conflict on the points of Sam Student's Lab 2 mark in {label}: "
            "kept no mark, dismissed 45"
        )


def test_the_instructor_applies_a_lab_staff_mark_that_lost(
    campus, server, term_with_two_lab_twos, make_device
):
    """Grades not final: the lab staff's offline 40 lost to an earlier-synced 30; the section's
    instructor puts 40 in place from the section's conflicts."""
    laptop = make_device("lab1")
    lab2 = term_with_two_lab_twos["lab2"]
    _offline_mark(laptop, campus.lab_staff, lab2, campus.students[0], "20")
    laptop.sync()
    with laptop.app.app_context():  # the laptop's clock is a minute behind: its edit is older
        _db.session.execute(
            update(SyncState).values(
                clock_offset_ms=-60_000,
                boot_offset_ms=SyncState.boot_offset_ms - 60_000,
                last_hlc="",
            )
        )
        _db.session.commit()
    _offline_mark(laptop, campus.lab_staff, lab2, campus.students[0], "40")
    _server_mark(server, campus.instructor, lab2, campus.students[0], "30")
    assert laptop.sync().conflicts == 1
    with server.app_context():
        conflict_id = _db.session.scalar(select(SyncConflict.id))
    teacher = _signed_in(server, "teach1")
    page = teacher.get("/sync/section-conflicts").get_data(as_text=True)
    row = _text(_conflict_row(page, conflict_id))
    assert "Lost to a newer edit" in row and "40 (points)" in row and "30" in row
    # The server's gradebook says it under the cell, with where the instructor can act on it.
    gradebook = teacher.get(f"/sections/{campus.section}/gradebook").get_data(as_text=True)
    note = re.search(r"<div class=\"gb-sync-note[^>]*>(.*?)</div>", gradebook, re.S)
    assert note and _text(note.group(1)).startswith("40 entered offline by ")
    assert "lost to a newer edit" in note.group(1)
    assert 'href="/sync/section-conflicts"' in note.group(1)
    assert _action_form(page, conflict_id, "apply").submit(teacher).status_code == 302
    with server.app_context():
        assert _db.session.scalar(select(Mark.points).filter_by(assessment_id=lab2)) == 40
    # The lab staff's laptop: the mark and the word that it is in place.
    laptop.sync()
    mine = _signed_in(laptop.app, "lab1").get("/sync/my-conflicts").get_data(as_text=True)
    assert "40 for Sam Student&#39;s Lab 2 mark in" in mine and "now in place" in mine


def test_the_author_dismisses_their_own_on_the_server(campus, server, refused_mark):
    _laptop, conflict_id = refused_mark
    teacher = _signed_in(server, "teach1")
    page = teacher.get("/sync/my-conflicts").get_data(as_text=True)
    assert not _has_action(page, conflict_id, "apply")  # grades are final
    assert _action_form(page, conflict_id, "keep").submit(teacher).status_code == 302
    with server.app_context():
        assert _db.session.get(SyncConflict, conflict_id).resolution == "kept"
    resolved = teacher.get("/sync/my-conflicts?state=resolved").get_data(as_text=True)
    assert "Dismissed" in _text(_conflict_row(resolved, conflict_id))


def test_a_refused_registration_and_attendance_name_their_student_and_section(
    campus, server, make_device
):
    """Every synced table is described: a student's offline registration into a section that
    filled meanwhile, and attendance on a deleted lab session."""
    from portal.registration.services import register

    with server.app_context():
        db = _db.session
        db.execute(update(User).where(User.id == campus.students[2]).values(full_name="Kim Late"))
        small = factories.make_section(db, capacity=1, waitlist_capacity=0)
        rival = factories.make_user(db, "student", username="rival")
        small_id, small_label, rival_id = small.id, small.label, rival.id
        db.commit()
    laptop = make_device("stud3")
    with server.app_context():
        as_user(server, rival_id)
        register(
            _db.session,
            _db.session.get(User, rival_id),
            _db.session.get(Section, small_id),
            now=datetime.now(UTC),
        )
        _db.session.commit()
    with laptop.app.app_context():
        as_user(laptop.app, campus.students[2])
        register(
            _db.session,
            _db.session.get(User, campus.students[2]),
            _db.session.get(Section, small_id),
            now=datetime.now(UTC),
        )
        _db.session.commit()
    assert laptop.sync().refused == 1
    with server.app_context():
        db = _db.session
        conflict = db.scalar(select(SyncConflict))
        view = review.describe(db, [conflict])[0]
        assert view.what == f"Kim Late's registration in {small_label}"
        assert (view.student, view.section) == ("Kim Late (stud3)", small_label)
        assert view.entered == "enrolled" and view.in_place == "not registered"
    # Attendance taken offline by the lab staff in a lab session deleted on the server.
    from portal.attendance.services import delete_lab_session, record_attendance

    with server.app_context():
        db = _db.session
        lab_session = LabSession(
            section_id=campus.section,
            held_on=datetime(2026, 12, 1).date(),
            starts_at=datetime(2026, 12, 1, 10).time(),
            ends_at=datetime(2026, 12, 1, 12).time(),
        )
        db.add(lab_session)
        db.commit()
        session_id, section_label = lab_session.id, db.get(Section, campus.section).label
    lab_laptop = make_device("lab1")
    with lab_laptop.app.app_context():
        as_user(lab_laptop.app, campus.lab_staff)
        db = _db.session
        record_attendance(
            db, db.get(User, campus.lab_staff), db.get(LabSession, session_id),
            campus.students[0], "late",
        )  # fmt: skip
        db.commit()
    with server.app_context():
        as_user(server, campus.instructor)
        db = _db.session
        delete_lab_session(
            db, db.get(User, campus.instructor), db.get(LabSession, session_id),
            now=datetime.now(UTC),
        )  # fmt: skip
        db.commit()
    assert lab_laptop.sync().refused == 1
    with server.app_context():
        db = _db.session
        kept = db.scalar(select(SyncConflict).filter_by(table_name="attendance_records"))
        view = review.describe(db, [kept])[0]
        assert view.what.endswith(
            f"attendance at the lab of Tue 01 Dec 2026 10:00–12:00 in {section_label}"
        )
        assert view.entered == "Late" and view.in_place == "not taken"


def test_every_synced_table_is_described_once():
    from portal.sync.tables import SYNCED_TABLES

    assert set(review.RECORDS) == {entry.name for entry in SYNCED_TABLES}
    for name, kind in review.RECORDS.items():
        columns = set(
            SYNCED_TABLES[[e.name for e in SYNCED_TABLES].index(name)].table.columns.keys()
        )
        for field_name in (kind.person, kind.parent, kind.value, kind.own_name):
            assert not field_name or field_name in columns, (name, field_name)


def test_the_author_dismisses_on_the_laptop_and_the_server_learns_it(
    campus, server, refused_mark, term_with_two_lab_twos
):
    laptop, conflict_id = refused_mark
    label = term_with_two_lab_twos["label"]
    client = _signed_in(laptop.app, "teach1")
    page = client.get("/sync/my-conflicts")
    assert not _has_action(page, conflict_id, "apply")  # applying is the server's
    response = _action_form(page, conflict_id, "keep").submit(client)
    assert response.status_code == 302
    after = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Dismissed. The campus server learns it at the next sync." in after
    assert "No sync conflicts" in after
    assert laptop.sync().pushed == 1
    with server.app_context():
        conflict = _db.session.get(SyncConflict, conflict_id)
        assert (conflict.resolution, conflict.resolved_by_id) == ("kept", campus.instructor)
        entry = _db.session.scalar(select(AuditEntry).filter_by(action="sync.conflict_resolved"))
        assert entry.actor_id == campus.instructor
        assert f"Sam Student's Lab 2 mark in {label}: kept no mark, dismissed 45" in entry.summary
        assert _db.session.scalar(select(Mark.id)) is None
    laptop.sync()
    assert_replica_matches(server, laptop)


def test_a_device_cannot_change_a_conflict_record_otherwise(campus, server, refused_mark):
    """Only a dismissal of the author's own conflict travels from a device; an "applied"
    written on the device is refused and corrected, the conflict stays open on the server."""
    laptop, conflict_id = refused_mark
    with laptop.app.app_context():
        as_user(laptop.app, campus.instructor)
        conflict = _db.session.get(SyncConflict, conflict_id)
        conflict.resolution = "applied"
        conflict.resolved_at = datetime.now(UTC)
        _db.session.commit()
    assert laptop.sync().refused == 1
    with server.app_context():
        assert _db.session.get(SyncConflict, conflict_id).resolved_at is None
    assert_replica_matches(server, laptop)
