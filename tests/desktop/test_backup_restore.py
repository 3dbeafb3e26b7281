"""`campus-portal backup` while the portal runs, and `restore` once it is closed."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from tests.desktop.conftest import ADMIN_PASSWORD, log_in
from tests.desktop.launcher_process import PortalClient, run_cli


def create_user(client: PortalClient, username: str) -> None:
    token = client.csrf_token("/admin/users/new")
    response = client.post(
        "/admin/users/new",
        {
            "csrf_token": token,
            "username": username,
            "full_name": f"User {username}",
            "role": "instructor",
            "password": ADMIN_PASSWORD,
        },
    )
    assert response.status == 302, response.text[:300]


def usernames(database: Path) -> set[str]:
    with closing(sqlite3.connect(database)) as connection:
        return {row[0] for row in connection.execute("SELECT username FROM users")}


def test_backup_while_running_then_restore(start_launcher, admin_data_dir, tmp_path):
    launcher = start_launcher(admin_data_dir)
    client = launcher.client()
    log_in(client)
    create_user(client, "before-backup")

    backup = tmp_path / "saved.db"
    made = run_cli("--data-dir", str(admin_data_dir), "backup", "--to", str(backup))
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == f"Backup written to {backup}"
    assert "before-backup" in usernames(backup)

    create_user(client, "after-backup")
    refused = run_cli("--data-dir", str(admin_data_dir), "restore", str(backup))
    assert refused.returncode == 1
    assert "Close Campus Portal first" in refused.stderr
    assert "after-backup" in usernames(admin_data_dir / "portal.db")

    code, _, stderr = launcher.stop()
    assert code == 0, stderr
    restored = run_cli("--data-dir", str(admin_data_dir), "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    names = usernames(admin_data_dir / "portal.db")
    assert "before-backup" in names and "after-backup" not in names
    kept = list((admin_data_dir / "backups" / "before-restore").glob("*.db"))
    assert len(kept) == 1 and "after-backup" in usernames(kept[0])
    assert str(kept[0]) in restored.stdout

    again = start_launcher(admin_data_dir)
    client = again.client()
    log_in(client)
    assert "User before-backup" in client.get("/admin/users/?q=before").text


def test_backup_to_a_folder_and_default_location(admin_data_dir, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    into_folder = run_cli("--data-dir", str(admin_data_dir), "backup", "--to", str(folder))
    assert into_folder.returncode == 0, into_folder.stderr
    assert len(list(folder.glob("portal-*.db"))) == 1
    default = run_cli("--data-dir", str(admin_data_dir), "backup")
    assert default.returncode == 0
    assert len(list((admin_data_dir / "backups" / "manual").glob("portal-*.db"))) == 1


def test_backup_of_a_missing_database(tmp_path):
    result = run_cli("--data-dir", str(tmp_path / "empty"), "backup")
    assert result.returncode == 3
    assert "There is no database to back up" in result.stderr


def test_data_options_may_follow_the_command(admin_data_dir, tmp_path):
    target = tmp_path / "after.db"
    result = run_cli("backup", "--data-dir", str(admin_data_dir), "--to", str(target))
    assert result.returncode == 0, result.stderr
    assert "chief" in usernames(target)
