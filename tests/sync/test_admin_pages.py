"""The central server's Devices and Conflicts pages, the dashboard's count and the author's
own conflicts, with real devices syncing over HTTP (httpx's WSGI transport)."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import func, select, update

from portal.extensions import db as _db
from portal.i18n import format_datetime
from portal.models import (
    AuditEntry,
    Device,
    EnrolmentCode,
    Mark,
    SyncConflict,
    SyncState,
    User,
)
from portal.sync.device import client as sync_client
from portal.sync.device.client import SyncError
from tests import factories
from tests.conftest import csrf_token, make_app, post_form
from tests.forms import rendered_form
from tests.sync.conftest import SERVER_URL, as_user, wsgi_client

CODE = re.compile(r"data-enrolment-code>([A-Z0-9-]+)<")


def _empty_copy(folder):
    """The engine of a new, empty desktop database."""
    app = make_app(folder, f"sqlite:///{folder}.db")
    with app.app_context():
        return _db.engine


def _signed_in(app, username):
    client = app.test_client()
    response = post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def _set_mark(app, actor_id, assessment_id, student_id, points):
    from portal.grading.services import set_mark
    from portal.models import Assessment

    with app.app_context():
        as_user(app, actor_id)
        set_mark(
            _db.session,
            _db.session.get(User, actor_id),
            _db.session.get(Assessment, assessment_id),
            student_id,
            points,
        )
        _db.session.commit()


@pytest.fixture
def superseded(campus, make_device, server):
    """An instructor's offline mark (71) that lost to an admin's later one (80) on the server."""
    laptop = make_device("teach1")
    _set_mark(laptop.app, campus.instructor, campus.assessment, campus.students[0], 60)
    laptop.sync()
    # The offline edit is a minute older than the server's (clocks within a second of each
    # other are ordered by the clock offsets measured at the last sync, not by the call order).
    with laptop.app.app_context():
        _db.session.execute(
            update(SyncState).values(
                clock_offset_ms=-60_000,
                boot_offset_ms=SyncState.boot_offset_ms - 60_000,
                last_hlc="",
            )
        )
        _db.session.commit()
    _set_mark(laptop.app, campus.instructor, campus.assessment, campus.students[0], 71)
    _set_mark(server, campus.admin, campus.assessment, campus.students[0], 80)
    assert laptop.sync().conflicts == 1
    return laptop


# --- Who may open what -----------------------------------------------------------------------


PAGES = [
    ("GET", "/admin/sync/devices", {}),
    ("GET", "/admin/sync/conflicts", {}),
    ("POST", "/admin/sync/enrolment-codes", {"username": "stud1", "valid_days": "7"}),
    ("POST", f"/admin/sync/devices/{uuid.uuid4()}/revoke", {}),
    ("POST", f"/admin/sync/devices/{uuid.uuid4()}/name", {"name": "lab pc"}),
    ("POST", f"/admin/sync/conflicts/{uuid.uuid4()}/resolve", {"action": "keep"}),
]
ADMIN_STATUS = [200, 200, 200, 404, 404, 404]  # the three last name nothing that exists


@pytest.mark.parametrize("username", ["stud1", "teach1", "lab1"])
def test_other_roles_are_refused_the_admin_pages(campus, server, username):
    client = _signed_in(server, username)
    for method, path, data in PAGES:
        token = csrf_token(client, "/")
        response = client.open(path, method=method, data={"csrf_token": token, **data})
        assert response.status_code == 403, (method, path)


def test_anonymous_visitors_are_sent_to_log_in(campus, server):
    client = server.test_client()
    for method, path, data in PAGES:
        token = csrf_token(client, "/login")
        response = client.open(path, method=method, data={"csrf_token": token, **data})
        assert response.status_code == 302, (method, path)
        assert "/login" in response.headers["Location"]


def test_an_admin_opens_every_page(campus, server):
    client = _signed_in(server, "admin1")
    for (method, path, data), status in zip(PAGES, ADMIN_STATUS, strict=True):
        token = csrf_token(client, "/")
        response = client.open(path, method=method, data={"csrf_token": token, **data})
        assert response.status_code == status, (method, path)


def test_forms_without_a_csrf_token_are_refused(campus, server):
    client = _signed_in(server, "admin1")
    response = client.post("/admin/sync/enrolment-codes", data={"username": "stud1"})
    assert response.status_code == 400
    with server.app_context():
        assert (
            _db.session.scalar(select(AuditEntry).filter_by(action="sync.enrolment_code_created"))
            is None
        )


def test_a_desktop_copy_has_no_admin_sync_pages(tmp_path):
    app = make_app(tmp_path)
    with app.app_context():
        factories.make_user(_db.session, "admin", username="boss")
        _db.session.commit()
    client = _signed_in(app, "boss")
    assert client.get("/admin/sync/devices").status_code == 404
    assert client.get("/admin/sync/conflicts").status_code == 404
    page = client.get("/admin/").get_data(as_text=True)
    assert "/admin/sync/devices" not in page and "sync conflict" not in page


# --- Devices -----------------------------------------------------------------------------------


def _device_rows(page):
    """Each device row of the Devices page as a person reads it, by device name."""
    rows = {}
    for name, row in re.findall(
        r'<th scope="row"[^>]*data-device-name="([^"]*)"(.*?)</tr>', page, re.S
    ):
        rows[name] = " ".join(re.sub(r"<[^>]+>", " ", row).split())
    return rows


def test_devices_page_tells_devices_apart(campus, make_device, server):
    laptop = make_device("teach1")
    make_device("stud2")
    _set_mark(laptop.app, campus.instructor, campus.assessment, campus.students[0], 55)
    laptop.sync()
    with server.app_context():
        _db.session.execute(
            update(User).where(User.username == "stud2").values(full_name="Sam Student")
        )
        _db.session.commit()
    client = _signed_in(server, "admin1")
    page = client.get("/admin/sync/devices").get_data(as_text=True)
    assert page.count("Revoke<span") == 2
    rows = _device_rows(page)
    assert sorted(rows) == ["dev0", "dev1"]
    assert "Sam Student (stud2)" in rows["dev1"] and "teach1" in rows["dev0"]
    operating_system = sync_client.operating_system()
    for row in rows.values():
        assert operating_system in row  # as each copy reported it at enrolment
        assert "campus-portal/" in row  # the app version
    with server.app_context():
        enrolled = _db.session.scalar(select(Device.created_at).where(Device.name == "dev1"))
    with server.test_request_context(headers={"Accept-Language": "en"}):
        shown = " ".join(format_datetime(enrolled).split())  # CLDR spaces, read as the row is
    assert shown in rows["dev1"]  # when it was enrolled
    assert 'href="/admin/sync/devices"' in page  # in the admin navigation


def test_an_admin_renames_a_device(campus, make_device, server):
    make_device("teach1")
    make_device("teach1")  # a second copy for the same person: both were "devN" on enrolment
    client = _signed_in(server, "admin1")
    page = client.get("/admin/sync/devices")
    with server.app_context():
        device_id = _db.session.scalar(select(Device.id).where(Device.name == "dev1"))
    form = rendered_form(page, action=f"/admin/sync/devices/{device_id}/name")
    assert form.values["name"] == ["dev1"]
    response = form.submit(client, name="  Lab B   PC 4 (Terry)  ")
    assert response.status_code == 302
    rows = _device_rows(client.get("/admin/sync/devices").get_data(as_text=True))
    assert sorted(rows) == ["Lab B PC 4 (Terry)", "dev0"]
    with server.app_context():
        entry = _db.session.scalar(select(AuditEntry).filter_by(action="sync.device_renamed"))
        assert entry.summary == "Renamed device dev1 to Lab B PC 4 (Terry)"
    form = rendered_form(
        client.get("/admin/sync/devices"), action=f"/admin/sync/devices/{device_id}/name"
    )
    form.submit(client, name="   ")
    assert "Give the device a name." in client.get("/admin/sync/devices").get_data(as_text=True)
    with server.app_context():
        assert _db.session.get(Device, device_id).name == "Lab B PC 4 (Terry)"


def test_an_enrolment_code_is_shown_once_and_enrols_a_device(campus, server, tmp_path):
    client = _signed_in(server, "admin1")
    token = csrf_token(client, "/admin/sync/devices")
    response = client.post(
        "/admin/sync/enrolment-codes",
        data={"csrf_token": token, "username": "Lab1", "valid_days": "3"},
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    code = CODE.search(page).group(1)
    assert "shown only this once" in page and "Enrolment code for lab1" in page
    assert code not in client.get("/admin/sync/devices").get_data(as_text=True)
    with server.app_context():
        entry = _db.session.scalar(
            select(AuditEntry).filter_by(action="sync.enrolment_code_created")
        )
        assert entry.actor_name == "admin1" and code not in str(entry.after)
    http = wsgi_client(server)
    first, second = (_empty_copy(tmp_path / name) for name in ("new", "again"))
    assert sync_client.enrol(first, SERVER_URL, code, device_name="lab-pc", client=http) == "lab1"
    with pytest.raises(SyncError, match="already used"):
        sync_client.enrol(second, SERVER_URL, code, device_name="x", client=http)


@pytest.mark.parametrize(
    ("username", "days", "message"),
    [
        ("ghost", "7", "There is no account with the username &#39;ghost&#39;."),
        ("stud1", "91", "A code is valid for 1 to 90 days."),
        # 0 is a number out of range, not a missing one ("This field is required")
        ("stud1", "0", "A code is valid for 1 to 90 days."),
        ("stud1", "", "Say for how many days the code is valid (1 to 90)."),
        ("", "7", "This field is required."),
    ],
)
def test_a_bad_enrolment_code_request_says_why(campus, server, username, days, message):
    client = _signed_in(server, "admin1")
    token = csrf_token(client, "/admin/sync/devices")
    response = client.post(
        "/admin/sync/enrolment-codes",
        data={"csrf_token": token, "username": username, "valid_days": days},
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert message in page
    if username:
        assert "This field is required." not in page
    assert CODE.search(page) is None


def test_an_unknown_account_and_bad_days_are_said_together(campus, server):
    client = _signed_in(server, "admin1")
    page = client.get("/admin/sync/devices")
    form = rendered_form(page, action="/admin/sync/enrolment-codes")
    response = form.submit(client, username="ghost", valid_days="0")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "There is no account with the username &#39;ghost&#39;." in text
    assert "A code is valid for 1 to 90 days." in text
    assert CODE.search(text) is None
    with server.app_context():
        assert _db.session.scalar(select(func.count()).select_from(EnrolmentCode)) == 0
        assert (
            _db.session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .filter_by(action="sync.enrolment_code_created")
            )
            == 0
        )


def test_revoking_a_device_refuses_it_and_keeps_its_changes(campus, make_device, server):
    laptop = make_device("teach1")
    with server.app_context():
        device_id = _db.session.scalar(select(Device.id))
    client = _signed_in(server, "admin1")
    token = csrf_token(client, "/admin/sync/devices")
    page = client.get("/admin/sync/devices").get_data(as_text=True)
    assert 'data-confirm="Revoke dev0, enrolled for ' in page and "(teach1)? It will be" in page
    response = client.post(f"/admin/sync/devices/{device_id}/revoke", data={"csrf_token": token})
    assert response.status_code == 302
    page = " ".join(client.get("/admin/sync/devices").get_data(as_text=True).split())
    assert "exported" not in page  # a revoked copy sends its changes by enrolling again
    assert (
        "Device dev0 is revoked: it will be refused at its next sync. Changes it had not sent "
        "stay on it; to let it send them, create an enrolment code for one of its accounts, "
        "with which that computer enrols again." in page
    )
    assert (
        "Its unsent changes stay on it: to let it send them, create an enrolment code for one "
        "of its accounts, with which that computer enrols again" in page
    )
    again = client.post(f"/admin/sync/devices/{device_id}/revoke", data={"csrf_token": token})
    assert again.status_code == 302
    assert "already revoked" in client.get("/admin/sync/devices").get_data(as_text=True)
    with server.app_context():
        device = _db.session.get(Device, device_id)
        assert device.revoked_at is not None
        assert _db.session.scalar(select(AuditEntry).filter_by(action="sync.device_revoked"))
    _set_mark(laptop.app, campus.instructor, campus.assessment, campus.students[0], 42)
    with pytest.raises(SyncError) as refused:
        laptop.sync()
    assert refused.value.reason == "revoked"
    assert sync_client.pending_count(laptop.engine) == 1


# --- Conflicts ---------------------------------------------------------------------------------


def test_conflicts_page_shows_both_values_and_filters(superseded, campus, server):
    client = _signed_in(server, "admin1")
    page = client.get("/admin/sync/conflicts").get_data(as_text=True)
    assert "Lost to a newer edit" in page
    assert "Midterm mark in " in page and "Student: " in page and "(stud1)" in page
    entered = r'<td class="sync-value" data-label="Entered">71 <span[^>]*>\(points\)</span>'
    in_place = r'</td>\s*<td class="sync-value" data-label="In place now">80</td>'
    assert re.search(entered + in_place, page)
    assert "teach1" in page and "dev0" in page
    assert "Apply 71" in page and "Dismiss" in page
    assert "Lost to a newer edit" in client.get(
        "/admin/sync/conflicts?kind=superseded&table=marks"
    ).get_data(as_text=True)
    for other in ("?kind=refused", "?table=attendance_records", "?state=resolved"):
        assert "No conflicts here" in client.get("/admin/sync/conflicts" + other).get_data(
            as_text=True
        )
    dashboard = client.get("/admin/").get_data(as_text=True)
    assert 'data-open-conflicts="1"' in dashboard
    assert 'href="/admin/sync/conflicts"' in dashboard


def test_applying_the_other_value_puts_it_in_place(superseded, campus, server):
    client = _signed_in(server, "admin1")
    with server.app_context():
        conflict_id = _db.session.scalar(select(SyncConflict.id))
    token = csrf_token(client, "/admin/sync/conflicts")
    response = client.post(
        f"/admin/sync/conflicts/{conflict_id}/resolve",
        data={"csrf_token": token, "action": "apply", "back": "/admin/sync/conflicts?state=all"},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/sync/conflicts?state=all"
    with server.app_context():
        mark = _db.session.scalar(select(Mark).filter_by(assessment_id=campus.assessment))
        conflict = _db.session.get(SyncConflict, conflict_id)
        assert mark.points == 71
        assert (conflict.resolution, conflict.resolved_by_id) == ("applied", campus.admin)
        entry = _db.session.scalar(select(AuditEntry).filter_by(action="sync.conflict_resolved"))
        assert "Midterm mark in " in entry.summary and "applied 71 (was 80)" in entry.summary
    assert 'data-open-conflicts="0"' in client.get("/admin/").get_data(as_text=True)
    # The device learns both: the mark and the resolution.
    superseded.sync()
    with superseded.app.app_context():
        assert _db.session.scalar(select(Mark.points)) == 71
        assert _db.session.scalar(select(SyncConflict.resolution)) == "applied"


def test_marking_resolved_keeps_the_current_value(superseded, campus, server):
    client = _signed_in(server, "admin1")
    with server.app_context():
        conflict_id = _db.session.scalar(select(SyncConflict.id))
    token = csrf_token(client, "/admin/sync/conflicts")
    data = {"csrf_token": token, "action": "keep", "back": "https://elsewhere.example/"}
    response = client.post(f"/admin/sync/conflicts/{conflict_id}/resolve", data=data)
    assert response.headers["Location"] == "/admin/sync/conflicts"  # never off the site
    with server.app_context():
        assert _db.session.scalar(select(Mark.points)) == 80
        assert _db.session.get(SyncConflict, conflict_id).resolution == "kept"
    again = client.post(f"/admin/sync/conflicts/{conflict_id}/resolve", data=data)
    assert again.status_code == 302
    assert "already resolved" in client.get("/admin/sync/conflicts").get_data(as_text=True)


def test_authors_see_their_own_conflicts_only(superseded, campus, server):
    own = _signed_in(server, "teach1").get("/sync/my-conflicts")
    assert own.status_code == 200
    text = own.get_data(as_text=True)
    assert "Lost to a newer edit" in text and "Midterm mark in " in text
    other = _signed_in(server, "lab1").get("/sync/my-conflicts").get_data(as_text=True)
    assert "No sync conflicts" in other
    # On the device too, after its sync brought the record.
    device_client = _signed_in(superseded.app, "teach1")
    on_device = device_client.get("/sync/my-conflicts").get_data(as_text=True)
    assert "Lost to a newer edit" in on_device
    assert 'My sync conflicts (<span data-sync-field="open_conflicts">1</span>)' in (
        device_client.get("/").get_data(as_text=True)
    )
