"""Updates from a real TUF repository over real HTTP: found, verified, handed to the installer;
refused when any check fails; no request at all when IT turned updates off or pinned them."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from desktop.updates import (
    DISABLED,
    FAILED,
    NOT_SET_UP,
    PINNED,
    READY,
    REFUSED,
    UP_TO_DATE,
    UpdateCheck,
    UpdateSettings,
)
from portal.updates.repository import Repository, load_key, utcnow

STAND_IN = """\
import hashlib, json, sys
from pathlib import Path
file = Path(sys.argv[2])
Path(sys.argv[1]).write_text(json.dumps({
    "argv": sys.argv[2:], "sha256": hashlib.sha256(file.read_bytes()).hexdigest()}))
"""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _blob(release, installer: Path) -> Path:
    (blob,) = (release.root / "targets").glob(f"*.{installer.name}")
    return blob


def test_an_update_is_found_verified_and_handed_to_the_installer(release, tmp_path):
    release.add("0.1.0")
    installer = release.add("0.2.0")
    release.add("0.3.0b1", channel="beta")
    release.add("0.2.0", name="campus-portal-0.2.0-windows-x64-setup.exe")
    check = release.check(tmp_path)

    status = check.run()

    assert status.state == READY, status
    assert status.version == "0.2.0"  # the newest stable for Linux; beta and Windows left
    assert Path(status.file).read_bytes() == installer.read_bytes()
    assert check.page()["title"] == "Version 0.2.0 is ready: install on exit"
    assert check.page()["command"] == f"sudo apt-get install {status.file}"
    record = tmp_path / "installer-ran.json"
    stand_in = tmp_path / "stand_in_installer.py"
    stand_in.write_text(STAND_IN)

    assert check.install_at_exit(
        lambda file: [sys.executable, str(stand_in), str(record), str(file)]
    )
    assert check.installer_process is not None and check.installer_process.wait(60) == 0
    ran = json.loads(record.read_text())
    assert ran == {"argv": [status.file], "sha256": _sha256(installer)}


def test_the_beta_channel_and_a_pin_choose_their_version(release, tmp_path):
    release.add("0.2.0")
    release.add("0.3.0")
    release.add("0.4.0b1", channel="beta")
    assert release.check(tmp_path / "beta", channel="beta").run().version == "0.4.0b1"
    assert release.check(tmp_path / "pin", pin="0.2.0").run().version == "0.2.0"


def test_a_newer_release_replaces_the_download_of_an_older_one(release, tmp_path):
    release.add("0.2.0")
    check = release.check(tmp_path)
    first = check.run()
    release.add("0.3.0")
    second = check.run()
    assert (first.version, second.version) == ("0.2.0", "0.3.0")
    downloads = tmp_path / "data" / "updates" / "downloads"
    assert [path.name for path in downloads.iterdir()] == [Path(second.file).name]


def test_a_pin_not_released_says_so(release, tmp_path):
    release.add("0.2.0")
    status = release.check(tmp_path, pin="0.5.0").run()
    assert status.state == UP_TO_DATE
    assert status.detail == "update_pin 0.5.0 is not released for linux"


def test_never_a_downgrade_nor_the_same_version_again(release, tmp_path):
    release.add("0.1.0")
    release.add("0.0.9")  # released last: the newest targets metadata names it
    check = release.check(tmp_path)
    status = check.run()
    assert status.state == UP_TO_DATE
    assert check.page()["title"].startswith("Up to date (last checked ")
    assert not any(path.startswith("/targets/") for path in release.mirror.requests)


def test_at_most_once_a_day(release, tmp_path):
    release.add("0.1.0")
    check = release.check(tmp_path)
    assert check.due()
    check.run()
    assert not check.due()
    check.now = lambda: utcnow() + timedelta(hours=25)
    assert check.due()


# --- refusals -----------------------------------------------------------------------------------


def test_a_target_changed_after_signing_is_refused(release, tmp_path):
    installer = release.add("0.2.0")
    blob = _blob(release, installer)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte, same length
    blob.write_bytes(bytes(data))
    check = release.check(tmp_path)
    status = check.run()
    assert (status.state, status.reason) == (REFUSED, "wrong hash")
    assert check.page()["title"] == "Update refused: wrong hash"
    assert not check.install_at_exit(lambda file: ["false"])
    assert not list((tmp_path / "data" / "updates" / "downloads").glob("*.deb"))


def test_a_target_larger_than_its_metadata_says_is_refused(release, tmp_path):
    installer = release.add("0.2.0")
    release.mirror.endless = "/targets/"  # data without end
    status = release.check(tmp_path).run()
    assert (status.state, status.reason) == (REFUSED, "too large")
    assert installer.stat().st_size < 4 * 1024 * 1024


@pytest.mark.parametrize(("signers", "state"), [(["root1"], REFUSED), (["root1", "root2"], READY)])
def test_root_metadata_signed_by_one_key_of_two_is_refused(release, tmp_path, signers, state):
    """A new root version takes both root keys: signed by one, it is refused (and with it
    every later metadata); signed by both, it is followed."""
    from tuf.api.metadata import Metadata

    release.add("0.2.0")
    root = Metadata.from_file(str(release.root / "metadata" / "root.json"))
    root.signed.version = 2
    root.signed.expires += timedelta(days=30)
    for name in signers:
        root.sign(load_key(release.keys[name]), append=True)
    root.to_file(str(release.root / "metadata" / "2.root.json"))
    status = release.check(tmp_path).run()
    assert status.state == state
    if state == REFUSED:
        assert status.reason == "bad signature"
        assert "root was signed by 1/2 keys" in status.detail


def test_a_renewed_root_is_followed_and_list_names_the_releases(release, tmp_path, capsys):
    release.add("0.2.0")
    argv = ["renew-root", "--root-key", str(release.keys["root1"])]
    assert release.release(argv) == 2  # one key is not enough
    assert release.release([*argv, "--root-key", str(release.keys["root2"])]) == 0
    assert (release.root / "metadata" / "2.root.json").is_file()
    assert release.check(tmp_path).run().state == READY
    capsys.readouterr()
    assert release.release(["list"]) == 0
    assert "0.2.0        stable  linux" in capsys.readouterr().out


def test_an_older_timestamp_replayed_is_refused_as_a_rollback(release, tmp_path):
    timestamp = release.root / "metadata" / "timestamp.json"
    older = timestamp.read_bytes()
    release.add("0.1.0")
    check = release.check(tmp_path)
    assert check.run().state == UP_TO_DATE
    release.add("0.2.0")
    timestamp.write_bytes(older)  # a mirror serves yesterday's repository
    status = check.run()
    assert (status.state, status.reason) == (REFUSED, "rollback")


def test_an_expired_timestamp_is_refused(release, tmp_path):
    release.add("0.2.0")
    signed_days_ago = Repository(release.root, now=lambda: utcnow() - timedelta(days=5))
    signed_days_ago.resign(load_key(release.keys["online"]))  # expired three days ago
    status = release.check(tmp_path).run()
    assert (status.state, status.reason) == (REFUSED, "expired metadata")


def test_a_mirror_that_does_not_answer_does_not_hold_the_app(release, tmp_path):
    release.add("0.2.0")
    release.mirror.hold = "/metadata/timestamp.json"
    check = release.check(tmp_path)
    check.timeout = 0.5

    assert check.start_background(lambda: True, poll=0.01)  # returns at once
    assert release.mirror.arrived.wait(30)
    assert check.finished.wait(60)  # the check gives up by itself, while the mirror holds
    assert not release.mirror.released.is_set()
    status = check.status()
    assert status.state == FAILED
    assert status.reason.startswith("the update server answered too slowly")
    check.stop()
    check.thread.join(60)
    assert not check.thread.is_alive()


def test_a_mirror_that_drips_is_given_up_at_the_deadline(release, tmp_path):
    release.add("0.2.0")
    release.mirror.drip = "/targets/"
    check = release.check(tmp_path)
    check.deadline = 1.0
    status = check.run()
    assert status.state == FAILED
    assert "took longer than 1s" in status.reason
    assert not check.due()  # tried again in an hour, not at once


# --- no request at all --------------------------------------------------------------------------


def test_update_check_false_makes_no_request(release, tmp_path):
    release.add("0.2.0")
    check = release.check(tmp_path, check=False)
    assert not check.start_background(lambda: True, poll=0.01)
    assert check.run().state == DISABLED
    assert not check.due()
    assert check.page()["title"].startswith("Updates are turned off")
    assert release.mirror.requests == []


def test_a_pin_on_the_running_version_makes_no_request(release, tmp_path):
    release.add("0.2.0")
    pinned = release.check(tmp_path, pin="0.1.0")
    assert not pinned.start_background(lambda: True, poll=0.01)
    assert pinned.run().state == PINNED
    older = release.check(tmp_path / "older", pin="0.0.9")
    status = older.run()
    assert status.state == REFUSED and status.reason.startswith("rollback")
    assert release.mirror.requests == []


def test_no_trusted_root_makes_no_request(release, tmp_path):
    release.add("0.2.0")
    check = release.check(tmp_path)
    check.trust_root = tmp_path / "nowhere" / "update-root.json"
    status = check.run()
    assert status.state == NOT_SET_UP and "no trusted release root" in status.reason
    assert release.mirror.requests == []


def test_it_locks_update_check_off_whatever_the_person_sets(release, tmp_path, monkeypatch):
    """The IT guide's own file (update_check = false, locked) beats the person's file and the
    environment: the copy makes no update request."""
    import re

    from portal.config import load_settings

    guide = (Path(__file__).parents[2] / "installers" / "README.md").read_text(encoding="utf-8")
    example = re.findall(r"```toml\n(.*?)```", guide, re.S)[0]
    machine, user = tmp_path / "machine.toml", tmp_path / "user.toml"
    machine.write_text(example, encoding="utf-8")
    user.write_text(f'update_check = true\nupdate_url = "{release.url}"\n', encoding="utf-8")
    monkeypatch.setenv("PORTAL_MACHINE_CONFIG", str(machine))
    monkeypatch.setenv("PORTAL_USER_CONFIG", str(user))
    monkeypatch.setenv("PORTAL_UPDATE_CHECK", "true")
    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path / "data"))
    release.add("0.2.0")
    settings = UpdateSettings.from_portal(load_settings())
    assert settings.check is False and settings.url == release.url
    check = UpdateCheck(
        settings,
        data_dir=tmp_path / "data",
        running_version="0.1.0",
        trust_root=release.trust_root,
        system="linux",
    )
    assert not check.start_background(lambda: True, poll=0.01)
    assert check.run().state == DISABLED
    assert release.mirror.requests == []


def test_an_installed_update_is_not_offered_again(release, tmp_path):
    release.add("0.2.0")
    check = release.check(tmp_path)
    assert check.run().state == READY
    check.running_version = "0.2.0"  # the installer ran; the app restarted as 0.2.0
    assert check.status().state == UP_TO_DATE
    assert not check.install_at_exit(lambda file: ["false"])


def test_release_add_refuses_what_it_cannot_sign_honestly(release, tmp_path, capsys):
    installer = release.add("0.2.0")
    installer.write_bytes(b"rebuilt" + installer.read_bytes())  # same name, other contents
    common = ["--version", "0.2.0", "--targets-key"]
    assert release.release(["add", str(installer), *common, str(release.keys["targets"])]) == 2
    assert "never replaced" in capsys.readouterr().err
    other = release.installer("0.3.0")
    assert release.release(["add", str(other), *common, str(release.keys["online"])]) == 2
    assert "not the targets key" in capsys.readouterr().err
    odd = release.installer("0.3.0", name="campus-portal-0.3.0.zip")
    assert release.release(["add", str(odd), *common, str(release.keys["targets"])]) == 2
    assert "cannot tell its OS" in capsys.readouterr().err
    assert release.check(tmp_path).run().version == "0.2.0"  # the repository is as it was


def test_no_request_while_a_sync_runs_or_a_person_works(release, tmp_path):
    """The background check asks `quiet` first, and makes its first request only once it is."""
    release.add("0.2.0")
    check = release.check(tmp_path)
    answers = iter([False, False, False, True])
    requests_seen_while_busy: list[int] = []

    def quiet() -> bool:
        answer = next(answers, True)
        if not answer:
            requests_seen_while_busy.append(len(release.mirror.requests))
        return answer

    assert check.start_background(quiet, poll=0.01)
    assert check.finished.wait(60)
    check.stop()
    assert requests_seen_while_busy == [0, 0, 0]
    assert check.status().state == READY


def test_the_central_server_serves_the_repository_read_only(release, tmp_path):
    """The portal in server mode, under waitress, is the mirror: a copy updates from it."""
    from desktop.server import EmbeddedServer
    from tests.conftest import make_app

    release.add("0.2.0")
    shared = tmp_path / "shared"
    shutil.copytree(release.root, shared / "updates")
    database = f"sqlite:///{tmp_path / 'server.db'}"
    app = make_app(tmp_path, database, MODE="server", SHARED_DIR=str(shared))
    server = EmbeddedServer(app)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/updates/"
        assert release.check(tmp_path, url=url).run().state == READY
        client = app.test_client()
        assert client.get("/updates/metadata/1.root.json").status_code == 200
        assert client.put("/updates/metadata/timestamp.json", data=b"{}").status_code == 405
        assert client.get("/updates/../secret_key").status_code == 404
        assert client.get("/updates/metadata/.part-x").status_code == 404
    finally:
        server.stop()
    assert release.mirror.requests == []  # everything came from the portal


def test_a_campus_certificate_authority_in_ca_file_is_trusted(release, tmp_path):
    """The update check trusts what sync trusts: the OS's store, and IT's `ca_file`."""
    import functools
    import ssl
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    import trustme

    installer = release.add("0.2.0")
    authority = trustme.CA(organization_name="Campus IT test authority")
    ca_file = tmp_path / "campus-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    quiet = type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *args: None})
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(quiet, directory=str(release.root))
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}/"
    try:
        untrusted = release.check(tmp_path / "untrusted", url=url).run()
        trusted = release.check(tmp_path / "trusted", url=url, ca_file=str(ca_file)).run()
    finally:
        server.shutdown()
        server.server_close()

    assert untrusted.state == FAILED, untrusted
    assert "certificate" in f"{untrusted.reason} {untrusted.detail}".lower(), untrusted
    assert trusted.state == READY, trusted
    assert Path(trusted.file).read_bytes() == installer.read_bytes()
