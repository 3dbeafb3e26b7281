"""The About page: the version, the keys IT locked, what a lock overrode, the update state."""

from __future__ import annotations

from tests.conftest import make_app


def test_the_about_page_names_the_locked_keys_and_the_ignored_values(tmp_path, monkeypatch):
    machine, user = tmp_path / "machine.toml", tmp_path / "user.toml"
    machine.write_text('[portal]\nupdate_check = false\n[policy]\nlocked = ["update_check"]\n')
    user.write_text("update_check = true\n")
    monkeypatch.setenv("PORTAL_MACHINE_CONFIG", str(machine))
    monkeypatch.setenv("PORTAL_USER_CONFIG", str(user))
    app = make_app(tmp_path)
    app.config["UPDATE_STATUS"] = lambda: {
        "state": "disabled",
        "title": "Updates are turned off by IT",
        "detail": "",
        "command": "",
    }
    page = app.test_client().get("/about").get_data(as_text=True)
    assert "IT locked these settings on this computer: <code>update_check</code>" in page
    assert f"update_check is locked by IT in the machine-wide file {machine}" in page
    assert f"the value from the settings file {user} is ignored" in page
    assert 'data-update-state="disabled"' in page
    assert "Updates are turned off by IT" in page


def test_without_locks_the_about_page_says_so(tmp_path):
    page = make_app(tmp_path).test_client().get("/about").get_data(as_text=True)
    assert "No setting is locked on this computer." in page
    assert "does not look for updates" in page
