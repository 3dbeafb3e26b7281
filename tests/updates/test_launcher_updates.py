"""The real launcher (headless, in a subprocess): the About page shows what IT locked and the
update state, a locked `update_check = false` keeps every update request away, and an update
ready at exit is handed on (on Linux: the command is logged)."""

from __future__ import annotations

import shutil

from tests.desktop.launcher_process import Launcher, launcher_env


def _machine_files(tmp_path, release, text: str) -> dict[str, str]:
    machine = tmp_path / "etc" / "config.toml"
    machine.parent.mkdir()
    machine.write_text(text, encoding="utf-8")
    shutil.copyfile(release.trust_root, machine.parent / "update-root.json")
    user = tmp_path / "user.toml"
    user.write_text("update_check = true\n", encoding="utf-8")
    return {"PORTAL_MACHINE_CONFIG": str(machine), "PORTAL_USER_CONFIG": str(user)}


def test_a_locked_update_check_off_makes_no_request_and_the_about_page_says_why(release, tmp_path):
    release.add("0.2.0")
    env = launcher_env(
        PORTAL_UPDATE_CHECK="true",
        **_machine_files(
            tmp_path,
            release,
            f'update_check = false\nupdate_url = "{release.url}"\n'
            '[policy]\nlocked = ["update_check"]\n',
        ),
    )
    launcher = Launcher(tmp_path / "data", env=env).start()
    try:
        page = launcher.client().get("/about").text
    finally:
        code, _, stderr = launcher.stop()
    assert code == 0, stderr
    assert "Updates are turned off on this computer" in page
    assert "Set and locked by IT." in page
    assert "IT locked these settings on this computer: <code>update_check</code>" in page
    assert "the value from the settings file" in page
    assert "the value from the environment variable PORTAL_UPDATE_CHECK is ignored" in page
    log = (tmp_path / "data" / "logs" / "campus-portal.log").read_text(encoding="utf-8")
    assert "update_check is locked by IT" in log
    assert release.mirror.requests == []


def test_an_update_ready_is_shown_and_handed_on_at_exit(release, tmp_path):
    release.add("0.2.0")
    files = _machine_files(tmp_path, release, f'update_url = "{release.url}"\n')
    # The check itself ran earlier (it waits for a quiet moment in a running app).
    check = release.check(tmp_path)
    status = check.run()
    assert status.version == "0.2.0"
    launcher = Launcher(tmp_path / "data", env=launcher_env(**files)).start()
    try:
        page = launcher.client().get("/about").text
    finally:
        code, _, stderr = launcher.stop()
    assert code == 0, stderr
    assert 'data-update-state="ready"' in page
    assert "Version 0.2.0 is ready: install on exit" in page
    assert f"sudo apt-get install {status.file}" in page
    log = (tmp_path / "data" / "logs" / "campus-portal.log").read_text(encoding="utf-8")
    assert f"version 0.2.0 is ready: install it with: sudo apt-get install {status.file}" in log
