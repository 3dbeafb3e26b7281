"""Sync on a desktop copy as a person meets it: connecting on the first run, the first sign-in
through the server, the status area, its JSON poll, Sync now, the background loop and the
export of unsent changes. The server is a real server app reached over HTTP (httpx's WSGI
transport); "offline" is a real refused connection to a closed port on 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import threading
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update

from portal.extensions import db as _db
from portal.models import Mark, OutboxEntry, SyncState, User
from portal.sync import protocol
from portal.sync.device import client as sync_client
from portal.sync.device import runner as device
from portal.sync.device import runner as sync_runner
from tests import factories
from tests.benchmarks.harness import QueryCounter
from tests.conftest import csrf_token, make_app, post_form
from tests.sync.conftest import (
    SERVER_URL,
    Device,
    as_user,
    assert_replica_matches,
    enrolment_code,
    wsgi_client,
)


def _closed_port() -> str:
    """An address on this machine where nothing listens: a real "connection refused"."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _reach_server_through(app, http) -> device.SyncRunner:
    app.extensions[device.HTTP_CLIENT_KEY] = http
    return device.runner_for(app)


def _go_offline(app) -> device.SyncRunner:
    """The server stops answering: the device's address points at a closed port."""
    runner = device.runner_for(app)
    runner.http = httpx.Client(timeout=5)
    with app.app_context():
        _db.session.execute(update(SyncState).values(server_url=_closed_port()))
        _db.session.commit()
    return runner


def _log_in(app, username, password=factories.PASSWORD):
    client = app.test_client()
    response = post_form(client, "/login", {"username": username, "password": password})
    return client, response


def _mark_offline(app, campus, points="64"):
    from portal.grading.services import parse_points, set_mark
    from portal.models import Assessment

    with app.app_context():
        as_user(app, campus.instructor)
        set_mark(
            _db.session,
            _db.session.get(User, campus.instructor),
            _db.session.get(Assessment, campus.assessment),
            campus.students[0],
            parse_points(points),
        )
        _db.session.commit()


@pytest.fixture
def laptop(campus, make_device, server):
    """An instructor's laptop, enrolled and synced, reaching the server over HTTP."""
    made = make_device("teach1")
    _reach_server_through(made.app, made.http)
    yield made
    device.runner_for(made.app).stop()


# --- The first run: connecting -----------------------------------------------------------------


def _fresh_copy(tmp_path, **settings):
    return make_app(tmp_path / "fresh", f"sqlite:///{tmp_path / 'fresh.db'}", **settings)


def test_the_first_run_page_names_the_copy_as_the_person_chooses(campus, server, tmp_path):
    import getpass
    import platform

    from portal.models import Device as DeviceRow
    from tests.forms import rendered_form

    code = enrolment_code(server, "teach1")
    app = _fresh_copy(tmp_path, SERVER_URL=SERVER_URL, ENROLMENT_CODE=code)
    runner = _reach_server_through(app, wsgi_client(server))
    client = app.test_client()
    form = rendered_form(client.get("/setup/"), action="/setup/connect")
    assert form.values["device_name"] == [f"{getpass.getuser()}@{platform.node()}"]
    response = form.submit(client, device_name="Lab B PC 4, Terry")
    assert response.status_code == 302
    assert runner.wait(30)
    runner.stop()
    with server.app_context():
        device = _db.session.scalar(select(DeviceRow))
        assert device.name == "Lab B PC 4, Terry"
        assert device.os_name == sync_client.operating_system()


def test_connecting_on_the_first_run_enrols_syncs_and_lets_the_person_in(campus, server, tmp_path):
    code = enrolment_code(server, "teach1")
    app = _fresh_copy(tmp_path, SERVER_URL=SERVER_URL, ENROLMENT_CODE=code)
    runner = _reach_server_through(app, wsgi_client(server))
    client = app.test_client()
    page = client.get("/setup/").get_data(as_text=True)
    assert f'value="{SERVER_URL}"' in page and f'value="{code}"' in page  # preset by IT
    token = csrf_token(client, "/setup/")
    response = client.post(
        "/setup/connect", data={"csrf_token": token, "server_url": SERVER_URL, "code": code}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?username=teach1"
    assert runner.wait(30)
    login_page = client.get("/login?username=teach1").get_data(as_text=True)
    assert "connected to the campus server for teach1" in login_page
    assert 'value="teach1"' in login_page and "data-sync-status" in login_page
    assert client.get("/setup/").status_code == 404
    client, response = _log_in(app, "teach1")
    assert response.status_code == 302
    with app.app_context():
        assert _db.session.scalar(select(func.count(Mark.id))) == 0
        assert _db.session.scalar(select(SyncState.last_sync_at)) is not None
    runner.stop()


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("bad code", "That enrolment code is not known. Check it, or ask for a new one."),
        ("unreachable", "cannot be reached. Check the address and this computer"),
        ("old version", "This copy of Campus Portal is too old for the campus server"),
    ],
)
def test_connecting_says_what_went_wrong(campus, server, tmp_path, monkeypatch, problem, message):
    code = enrolment_code(server, "teach1")
    app = _fresh_copy(tmp_path)
    address = SERVER_URL
    if problem == "bad code":
        code = "WXYZ-WXYZ-WXYZ-WXYZ"
    if problem == "unreachable":
        address = _closed_port()
    else:
        _reach_server_through(app, wsgi_client(server))
    if problem == "old version":  # a server that no longer speaks this copy's protocol
        newer = protocol.PROTOCOL_VERSION + 1
        monkeypatch.setattr(protocol, "SUPPORTED_PROTOCOLS", frozenset({newer}))
    client = app.test_client()
    token = csrf_token(client, "/setup/")
    response = client.post(
        "/setup/connect", data={"csrf_token": token, "server_url": address, "code": code}
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert message in page.replace("&#39;", "'")
    assert "changes are kept" not in page  # a new copy has no changes waiting
    assert f'value="{code}"' in page  # what the person typed stays
    with app.app_context():
        assert _db.session.scalar(select(SyncState.id)) is None
    assert client.get("/setup/").status_code == 200  # still open: try again


def test_connect_is_refused_once_the_copy_is_set_up(laptop):
    client, _ = _log_in(laptop.app, "teach1")
    token = csrf_token(client, "/")
    response = client.post(
        "/setup/connect", data={"csrf_token": token, "server_url": SERVER_URL, "code": "X"}
    )
    assert response.status_code == 404


# --- Signing in on a connected copy ------------------------------------------------------------


def test_a_second_staff_member_signs_in_through_the_server_then_offline(laptop, campus):
    client, response = _log_in(laptop.app, "lab1")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert client.get("/").status_code == 200
    assert device.has_local_verifier(laptop.engine, "lab1")
    _go_offline(laptop.app)
    _, again = _log_in(laptop.app, "lab1")
    assert again.status_code == 302  # the verifier pulled with the account works offline


def test_offline_a_first_sign_in_needs_the_network(laptop):
    _go_offline(laptop.app)
    _, response = _log_in(laptop.app, "lab1")
    assert response.status_code == 401
    assert "The first sign-in on this computer needs the network" in response.get_data(as_text=True)
    # An account known here with a wrong password gets the ordinary answer.
    _, wrong = _log_in(laptop.app, "teach1", "not-the-password")
    assert wrong.status_code == 401
    assert "do not match an active account" in wrong.get_data(as_text=True)


def test_the_server_refuses_a_student_on_a_staff_device(laptop):
    _, response = _log_in(laptop.app, "stud1")
    assert response.status_code == 401
    text = response.get_data(as_text=True).replace("&#39;", "'")
    assert "A student's account can only be used on a device enrolled for that student." in text
    assert not device.has_local_verifier(laptop.engine, "stud1")


def test_a_wrong_password_online_is_refused_by_the_server(laptop):
    _, response = _log_in(laptop.app, "lab1", "not-the-password")
    assert response.status_code == 401
    assert "Wrong username or password." in response.get_data(as_text=True)


# --- The status area, its poll, Sync now -------------------------------------------------------


def test_the_status_area_shows_on_every_page_of_a_connected_copy(laptop, campus, tmp_path):
    client, _ = _log_in(laptop.app, "teach1")
    page = client.get("/").get_data(as_text=True)
    assert "data-sync-status" in page and "nothing waiting to be sent" in page
    assert "js/sync.js" in page and ">Sync now</button>" in page
    _mark_offline(laptop.app, campus)
    assert "1 change waiting" in client.get("/catalogue").get_data(as_text=True)
    plain = make_app(tmp_path / "plain")
    assert "data-sync-status" not in plain.test_client().get("/setup/").get_data(as_text=True)


def test_the_status_area_costs_one_statement_a_page(laptop, campus):
    """Every page of a connected copy shows the status area: the sync state, the changes
    waiting and the person's open conflicts are read in one statement (three before), once a
    request."""
    client, _ = _log_in(laptop.app, "teach1")
    _mark_offline(laptop.app, campus)
    with laptop.session():
        counter = QueryCounter(_db.engine)
    sync_tables = re.compile(r"\b(sync_state|sync_outbox|sync_conflicts)\b")
    # The sync page shows the status twice (its body and the header): read once as well.
    for path in ("/", "/sync/"):
        with counter:
            assert client.get(path).status_code == 200  # warm
            with counter.counting(keep_statements=True):
                page = client.get(path).get_data(as_text=True)
        assert "data-sync-status" in page and "1 change waiting" in page
        status_reads = [s for s in counter.statements if sync_tables.search(s)]
        assert len(status_reads) == 1, (path, counter.statements)


def test_the_status_json(laptop, campus, tmp_path):
    anonymous = laptop.app.test_client()
    response = anonymous.get("/sync/status.json")
    assert response.status_code == 200  # the log-in page shows it too
    body = response.get_json()
    assert body["pending"] == 0 and body["running"] is False
    assert body["last_sync_text"].startswith("today at ")
    assert body["state"] in ("idle", "online")
    _mark_offline(laptop.app, campus)
    assert anonymous.get("/sync/status.json").get_json()["pending_text"] == "1 change waiting"
    assert make_app(tmp_path / "plain").test_client().get("/sync/status.json").status_code == 404
    server_mode = make_app(
        tmp_path / "server-mode", f"sqlite:///{tmp_path / 'sm.db'}", MODE="server"
    )
    assert server_mode.test_client().get("/sync/status.json").status_code == 404


def test_polling_the_status_is_not_activity(laptop):
    client, _ = _log_in(laptop.app, "teach1")
    client.get("/")
    with client.session_transaction() as session:
        session["last_seen"] -= 600
        before = session["last_seen"]
    assert client.get("/sync/status.json").status_code == 200
    with client.session_transaction() as session:
        assert session["last_seen"] == before
    client.get("/catalogue")
    with client.session_transaction() as session:
        assert session["last_seen"] > before


def test_sync_now_runs_in_the_background_and_reports_the_result(laptop, campus, server):
    _mark_offline(laptop.app, campus, "77")
    client, _ = _log_in(laptop.app, "teach1")
    token = csrf_token(client, "/")
    response = client.post(
        "/sync/now", data={"csrf_token": token}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 202
    assert response.get_json()["started"] is True
    assert device.runner_for(laptop.app).wait(30)
    body = client.get("/sync/status.json").get_json()
    assert (body["state"], body["pending"]) == ("online", 0)
    assert re.fullmatch(r"Sync finished: pushed 1, pulled \d+, conflicts 0\.", body["message"])
    with server.app_context():
        assert _db.session.scalar(select(Mark.points)) == 77


def test_sync_now_without_javascript_redirects_back(laptop):
    client, _ = _log_in(laptop.app, "teach1")
    token = csrf_token(client, "/")
    response = client.post("/sync/now", data={"csrf_token": token, "next": "/catalogue"})
    assert response.status_code == 302 and response.headers["Location"] == "/catalogue"
    assert device.runner_for(laptop.app).wait(30)
    unsafe = client.post("/sync/now", data={"csrf_token": token, "next": "//evil.example/"})
    assert unsafe.headers["Location"] == "/sync/"
    assert device.runner_for(laptop.app).wait(30)
    assert client.post("/sync/now", data={}).status_code == 400  # no CSRF token


def test_only_one_sync_runs_at_a_time(laptop):
    client, _ = _log_in(laptop.app, "teach1")
    token = csrf_token(client, "/")
    headers = {"Accept": "application/json"}
    with sync_runner._running:  # a sync of this process (the background loop, say) runs
        first = client.post("/sync/now", data={"csrf_token": token}, headers=headers)
        second = client.post("/sync/now", data={"csrf_token": token}, headers=headers)
        assert first.status_code == 202
        assert second.status_code == 409
        assert second.get_json()["message"] == "A sync is already running."
        assert client.get("/sync/status.json").get_json()["running"] is True
    assert device.runner_for(laptop.app).wait(30)


def test_offline_the_status_says_so_and_keeps_the_changes(laptop, campus):
    _mark_offline(laptop.app, campus)
    runner = _go_offline(laptop.app)
    client, _ = _log_in(laptop.app, "teach1")
    token = csrf_token(client, "/")
    client.post("/sync/now", data={"csrf_token": token}, headers={"Accept": "application/json"})
    assert runner.wait(30)
    body = client.get("/sync/status.json").get_json()
    assert (body["state"], body["headline"], body["pending"]) == ("offline", "Offline", 1)
    assert "The campus server cannot be reached" in body["message"]
    page = client.get("/sync/").get_data(as_text=True)
    assert "The campus server cannot be reached" in page and "Export unsent changes" in page


def test_a_revoked_copy_says_so_and_exports_its_unsent_changes(laptop, campus, server):
    _mark_offline(laptop.app, campus, "59")
    with server.app_context():
        from portal.models import Device as DeviceRow

        _db.session.execute(update(DeviceRow).values(revoked_at=factories.now()))
        _db.session.commit()
    client, _ = _log_in(laptop.app, "teach1")
    token = csrf_token(client, "/")
    client.post("/sync/now", data={"csrf_token": token}, headers={"Accept": "application/json"})
    assert device.runner_for(laptop.app).wait(30)
    body = client.get("/sync/status.json").get_json()
    assert body["state"] == "revoked" and body["pending"] == 1
    page = client.get("/").get_data(as_text=True)
    assert "This computer was disconnected from the campus server" in page
    assert re.search(r'<a class="btn btn-sm btn-warning" data-sync-when="revoked" href=', page)
    refused = client.post(
        "/sync/now", data={"csrf_token": token}, headers={"Accept": "application/json"}
    )
    assert refused.status_code == 409
    export = client.get("/sync/unsent-changes.json")
    assert export.status_code == 200
    assert export.headers["Content-Disposition"].startswith(
        'attachment; filename="campus-portal-unsent-changes-'
    )
    document = json.loads(export.get_data())
    assert [change["fields"]["points"] for change in document["changes"]] == [59.0]
    with laptop.app.app_context():
        assert _db.session.scalar(select(func.count(OutboxEntry.seq))) == 1  # kept


def test_a_revoked_copy_enrols_again_from_its_sync_area_and_sends_what_waited(
    laptop, campus, server
):
    from portal.models import Device as DeviceRow
    from tests.forms import rendered_form

    _mark_offline(laptop.app, campus, "61")
    with server.app_context():
        _db.session.execute(update(DeviceRow).values(revoked_at=factories.now()))
        _db.session.commit()
    client, _ = _log_in(laptop.app, "teach1")
    with pytest.raises(sync_client.SyncError):
        laptop.sync()
    runner = device.runner_for(laptop.app)
    page = client.get("/").get_data(as_text=True)
    area = re.search(r'<div class="sync-bar.*?</div>\s*</div>', page, re.S)
    assert area is not None
    enrol_link = re.search(r'<a [^>]*href="/sync/enrol-again"[^>]*>Enrol again</a>', area[0])
    assert enrol_link is not None and "hidden" not in enrol_link[0]
    assert "Export unsent changes" in area[0]  # beside it
    assert "export the changes waiting here and give the file" not in page
    assert "enrol it again (Enrol again)" in page  # what the area's message says now
    assert 'href="/sync/enrol-again"' in client.get("/sync/").get_data(as_text=True)

    form_page = client.get("/sync/enrol-again")
    assert form_page.status_code == 200
    text = form_page.get_data(as_text=True)
    assert "1 change waiting here is sent once this computer is enrolled again." in text
    wrong = rendered_form(form_page, action="/sync/enrol-again").submit(
        client, code="WXYZ-WXYZ-WXYZ-WXYZ"
    )
    assert wrong.status_code == 200
    assert "That enrolment code is not known" in wrong.get_data(as_text=True)
    assert 'value="WXYZ-WXYZ-WXYZ-WXYZ"' in wrong.get_data(as_text=True)  # kept as typed
    assert sync_client.pending_count(laptop.engine) == 1

    code = enrolment_code(server, "teach1")
    done = rendered_form(client.get("/sync/enrol-again"), action="/sync/enrol-again").submit(
        client, code=code
    )
    assert done.status_code == 302 and done.headers["Location"].endswith("/sync/")
    assert runner.wait(30)
    assert sync_client.pending_count(laptop.engine) == 0
    with server.app_context():
        from portal.models import Mark as ServerMark

        sent = _db.session.scalar(
            select(ServerMark.points).filter_by(
                assessment_id=campus.assessment, student_id=campus.students[0]
            )
        )
        assert sent == 61
        assert _db.session.scalar(select(DeviceRow.revoked_at)) is None
    status = client.get("/sync/").get_data(as_text=True)
    assert "This computer is enrolled again (with the code for teach1)" in status
    # no longer revoked: the page sends the person back to the status page
    assert client.get("/sync/enrol-again").headers["Location"].endswith("/sync/")


# --- The background loop -----------------------------------------------------------------------


def wait_for_attempts(runner: device.SyncRunner, count: int, timeout: float) -> bool:
    """Wait until `count` syncs of `runner` have ended since its start; False on timeout."""
    with runner.ended:
        return runner.ended.wait_for(lambda: runner.attempts >= count, timeout)


def test_the_background_loop_syncs_by_itself_and_stops_cleanly(laptop, campus, server):
    runner = device.runner_for(laptop.app)
    _mark_offline(laptop.app, campus, "88")
    runner.start_background(interval=0.05, retry=0.05, first_delay=0)
    assert wait_for_attempts(runner, 2, timeout=30)  # by itself, and again after the interval
    assert sync_client.pending_count(laptop.engine) == 0
    runner.stop(timeout=30)
    assert not [t for t in runner._threads if t.is_alive()]
    assert runner.start() is False  # stopped for good: the portal is shutting down
    with server.app_context():
        assert _db.session.scalar(select(Mark.points)) == 88


def test_a_running_sync_stops_between_batches_at_shutdown(laptop, campus):
    runner = device.runner_for(laptop.app)
    runner.stop()
    _mark_offline(laptop.app, campus)
    with pytest.raises(device.SyncStopped):
        runner.run()  # stopped at its first progress report, after a whole batch
    with laptop.app.app_context():
        assert _db.session.scalar(select(func.count(OutboxEntry.seq))) == 0  # that batch went


class _SlowSecondPage:
    """The server, slow to answer a pull's second page: that request waits (at most a minute)
    until `release` is set; `held` is set once it waits."""

    def __init__(self, app) -> None:
        self.app = app
        self.pulls = 0
        self.held = threading.Event()
        self.release = threading.Event()

    def __call__(self, environ, start_response):
        if environ["PATH_INFO"].endswith("/sync/v1/pull"):
            self.pulls += 1
            if self.pulls == 2:
                self.held.set()
                self.release.wait(60)
        return self.app(environ, start_response)


def test_a_stop_at_shutdown_abandons_the_page_the_sync_waits_for(
    campus, server, tmp_path, monkeypatch
):
    """Closing the portal while the next page of a first sync is on its way does not wait
    for the server's answer: the sync's thread ends, the device stays as the last page written
    left it (a pull under way), and the next sync goes on from there."""
    monkeypatch.setitem(server.config["PORTAL"], "SYNC_SNAPSHOT_PAGE_ROWS", 4)
    slow = _SlowSecondPage(server)
    http = httpx.Client(transport=httpx.WSGITransport(app=slow), base_url=SERVER_URL)
    app = _fresh_copy(tmp_path)
    with app.app_context():
        engine = _db.engine
    sync_client.enrol(
        engine, SERVER_URL, enrolment_code(server, "teach1"), device_name="slow", client=http
    )
    runner = _reach_server_through(app, http)
    try:
        assert runner.start()
        assert slow.held.wait(30)  # the second page is asked for; the server sits on it
        runner.stop(timeout=20)  # a bound far above a prompt stop, far below the server's wait
        assert not [t.name for t in runner._threads if t.is_alive()]
        assert runner.attempts == 1 and runner.outcome is None  # stopped, not failed
        with app.app_context():
            state = _db.session.execute(select(SyncState)).scalar_one()
            assert state.pull_upto is not None and state.last_sync_at is None
            assert _db.session.scalar(select(func.count(User.id))) >= 1  # the first page's
    finally:
        slow.release.set()
    sync_runner.sync_once(engine, Path(app.config["PORTAL"]["UPLOAD_DIR"]), client=http)
    assert_replica_matches(server, Device(app, http, Path(app.config["PORTAL"]["UPLOAD_DIR"])))
    with app.app_context():
        _db.session.remove()
        _db.engine.dispose()


def test_the_launcher_starts_the_background_sync_and_stops_it_at_shutdown(tmp_path):
    from desktop.launcher import _start_background_sync, _stop_background_sync

    app = make_app(tmp_path / "copy")
    _start_background_sync(app)
    runner = device.runner_for(app)
    assert [t.name for t in runner._threads if t.is_alive()] == ["sync-background"]
    _stop_background_sync(app)
    assert [t.name for t in runner._threads if t.is_alive()] == []
