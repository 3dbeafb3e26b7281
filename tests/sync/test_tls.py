"""A campus server whose certificate comes from the campus's own certificate authority: not
trusted, the device says so (the host and why) on the Connect page and from `campus-portal
enrol`; with the authority in the `ca_file` setting, the same copy connects."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from portal.extensions import db as _db
from portal.models import SyncState
from portal.sync.device import runner as device
from tests.conftest import csrf_token, make_app
from tests.desktop.launcher_process import launcher_env, run_cli
from tests.sync.conftest import enrolment_code

UNTRUSTED = "The campus server's certificate is not trusted by this computer (127.0.0.1: "


@pytest.fixture
def campus_ca(tmp_path: Path) -> tuple[trustme.CA, Path]:
    """A certificate authority made for this test, as a campus makes its own."""
    authority = trustme.CA(organization_name="Campus IT test authority")
    ca_file = tmp_path / "campus-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    return authority, ca_file


@pytest.fixture
def https_server(server: Flask, campus_ca: tuple[trustme.CA, Path]) -> Iterator[str]:
    """The central server's app over real HTTPS on 127.0.0.1, with a certificate from the
    campus authority."""
    authority, _ = campus_ca
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    listening = make_server("127.0.0.1", 0, server, threaded=True, ssl_context=context)
    thread = threading.Thread(target=listening.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{listening.server_port}"
    finally:
        listening.shutdown()
        thread.join(10)


def _connect(app: Flask, address: str, code: str) -> tuple[int, str]:
    client = app.test_client()
    token = csrf_token(client, "/setup/")
    response = client.post(
        "/setup/connect", data={"csrf_token": token, "server_url": address, "code": code}
    )
    return response.status_code, response.get_data(as_text=True).replace("&#39;", "'")


def _enrolled(app: Flask) -> bool:
    with app.app_context():
        return _db.session.scalar(select(SyncState.id)) is not None


def test_the_connect_page_says_the_certificate_is_not_trusted_then_ca_file_connects(
    campus, server, https_server, campus_ca, tmp_path
):
    _, ca_file = campus_ca
    code = enrolment_code(server, "teach1")
    untrusting = make_app(tmp_path / "copy1", f"sqlite:///{tmp_path / 'copy1.db'}")
    status, page = _connect(untrusting, https_server, code)
    assert status == 200
    assert UNTRUSTED in page
    assert "certificate" in page.split(UNTRUSTED, 1)[1].split(")", 1)[0]  # OpenSSL's reason
    assert "ca_file" in page
    assert "cannot be reached" not in page
    assert not _enrolled(untrusting)

    trusting = make_app(
        tmp_path / "copy2", f"sqlite:///{tmp_path / 'copy2.db'}", CA_FILE=str(ca_file)
    )
    status, page = _connect(trusting, https_server, code)  # the code was not used up
    assert status == 302, page
    runner = device.runner_for(trusting)
    assert runner.wait(60)
    assert _enrolled(trusting)
    with trusting.app_context():
        assert _db.session.scalar(select(SyncState.last_sync_at)) is not None
    runner.stop()


def test_a_ca_file_that_cannot_be_read_is_named(campus, server, https_server, tmp_path):
    code = enrolment_code(server, "teach1")
    missing = tmp_path / "no-such-ca.pem"
    app = make_app(tmp_path / "copy", f"sqlite:///{tmp_path / 'copy.db'}", CA_FILE=str(missing))
    status, page = _connect(app, https_server, code)
    assert status == 200
    assert f"The certificate file set as ca_file ({missing}) cannot be used" in page
    assert not _enrolled(app)


def test_enrol_from_a_shell_says_why_and_works_with_ca_file(
    campus, server, https_server, campus_ca, tmp_path
):
    _, ca_file = campus_ca
    code = enrolment_code(server, "teach1")
    data_dir = str(tmp_path / "shell-copy")
    refused = run_cli("enrol", "--data-dir", data_dir, "--server", https_server, "--code", code)
    assert refused.returncode == 17, refused.stderr
    assert UNTRUSTED in refused.stderr
    assert "cannot be reached" not in refused.stderr
    enrolled = run_cli(
        "enrol",
        "--data-dir",
        data_dir,
        "--server",
        https_server,
        "--code",
        code,
        env=launcher_env(PORTAL_CA_FILE=str(ca_file)),
    )
    assert enrolled.returncode == 0, enrolled.stderr
    assert f"Enrolled with {https_server} for teach1" in enrolled.stdout
    assert "Synced: pushed 0" in enrolled.stdout
