"""Locked, damaged, read-only and full: a clear message, nothing lost, a backup offered."""

from __future__ import annotations

import os
import resource
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tests.conftest import unavailable
from tests.desktop.conftest import ADMIN_USERNAME, create_user, log_in
from tests.desktop.launcher_process import Launcher, run_cli
from tests.desktop.test_launcher import dump


def _usernames(database: Path) -> set[str]:
    with closing(sqlite3.connect(database)) as connection:
        return {row[0] for row in connection.execute("SELECT username FROM users")}


def _integrity(database: Path) -> str:
    with closing(sqlite3.connect(database)) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def test_locked_database(admin_data_dir):
    database = admin_data_dir / "portal.db"
    before = dump(database)
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("SELECT count(*) FROM users").fetchone()
    try:
        result = run_cli("--headless", "--data-dir", str(admin_data_dir))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 3
    assert "locked by another program" in result.stderr
    assert "Nothing was changed" in result.stderr
    assert result.stdout == ""
    assert dump(database) == before
    # once the other program lets go, the launcher starts on the same data
    launcher = Launcher(admin_data_dir).start()
    try:
        log_in(launcher.client())
    finally:
        launcher.stop()


def test_damaged_database_offers_the_backup_and_restore_works(admin_data_dir, tmp_path):
    made = run_cli("--data-dir", str(admin_data_dir), "backup")
    assert made.returncode == 0, made.stderr
    backup = Path(made.stdout.strip().removeprefix("Backup written to "))
    assert backup.is_file()

    database = admin_data_dir / "portal.db"
    garbage = os.urandom(64 * 1024)
    database.write_bytes(garbage)
    result = run_cli("--headless", "--data-dir", str(admin_data_dir))
    assert result.returncode == 3
    assert "The database file is damaged" in result.stderr
    assert str(backup) in result.stderr
    assert f'campus-portal restore "{backup}"' in result.stderr
    assert database.read_bytes() == garbage  # untouched

    restored = run_cli("--data-dir", str(admin_data_dir), "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    kept = list((admin_data_dir / "backups" / "damaged").glob("*/portal.db"))
    assert [path.read_bytes() for path in kept] == [garbage]  # the damaged file is kept
    assert ADMIN_USERNAME in _usernames(database)
    launcher = Launcher(admin_data_dir).start()
    try:
        log_in(launcher.client())
    finally:
        launcher.stop()


def test_restore_refuses_a_file_that_is_not_a_backup(admin_data_dir, tmp_path):
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"not a database at all" * 100)
    before = dump(admin_data_dir / "portal.db")
    result = run_cli("--data-dir", str(admin_data_dir), "restore", str(bogus))
    assert result.returncode == 3
    assert "Not a database file" in result.stderr
    assert dump(admin_data_dir / "portal.db") == before


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    """read_only(folder): make a folder read-only for real, even for root.

    As root (who may write anywhere) the folder is bind-mounted read-only onto itself, as a
    read-only network share or a locked-down profile folder would be; otherwise chmod does.
    """
    mounted: list[Path] = []
    changed: list[Path] = []

    def make(folder: Path) -> None:
        if os.geteuid() == 0:
            subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], check=True)
            mounted.append(folder)
        else:
            for path in [folder, *folder.rglob("*")]:
                path.chmod(0o555 if path.is_dir() else 0o444)
                changed.append(path)

    yield make
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=True)
    for path in changed:
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_read_only_data_dir(admin_data_dir, tmp_path, read_only):
    made = run_cli("--data-dir", str(admin_data_dir), "backup")
    assert made.returncode == 0, made.stderr
    database = admin_data_dir / "portal.db"
    before = dump(database)
    read_only(admin_data_dir)
    with pytest.raises(OSError):
        (admin_data_dir / "probe").write_bytes(b"x")

    result = run_cli("--headless", "--data-dir", str(admin_data_dir))
    assert result.returncode == 2, result.stderr
    assert "data folder is read-only" in result.stderr
    assert "Your data is unchanged" in result.stderr
    assert "campus-portal restore" in result.stderr  # the backup is offered
    assert result.stdout == ""
    assert dump(database, immutable=True) == before

    # the data can still be copied out to a writable place
    rescue = tmp_path / "rescue.db"
    copied = run_cli("--data-dir", str(admin_data_dir), "backup", "--to", str(rescue))
    assert copied.returncode == 0, copied.stderr
    assert ADMIN_USERNAME in _usernames(rescue)


def test_full_disk_at_start(admin_data_dir):
    def tiny_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    before = dump(admin_data_dir / "portal.db")
    result = run_cli("--headless", "--data-dir", str(admin_data_dir), preexec_fn=tiny_files)
    assert result.returncode == 2
    assert "disk holding your Campus Portal data is full" in result.stderr
    assert dump(admin_data_dir / "portal.db") == before


def test_disk_full_while_writing_loses_nothing_that_was_saved(admin_data_dir, tmp_path):
    database = admin_data_dir / "portal.db"
    limit = database.stat().st_size + 96 * 1024

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    launcher = Launcher(admin_data_dir, preexec_fn=limited).start()
    saved: list[str] = []
    failure = None
    try:
        client = launcher.client()
        log_in(client)
        for number in range(200):
            username = f"full{number}"
            response = create_user(client, username)
            if response.status == 302:
                saved.append(username)
            else:
                failure = response
                break
    finally:
        code, _, _ = launcher.stop()
    assert code == 0
    assert saved, "no write succeeded before the disk was full"
    assert failure is not None and failure.status == 500
    assert "Something went wrong" in failure.text
    log_file = admin_data_dir / "logs" / "campus-portal.log"
    assert str(log_file) in failure.text  # the page says where the details are
    assert "Traceback" not in failure.text
    logged = log_file.read_text()
    assert "unhandled error on POST /admin/users/new" in logged

    assert _integrity(database) == "ok"
    assert set(saved) <= _usernames(database)
    again = Launcher(admin_data_dir).start()  # no limit: everything saved is there
    try:
        client = again.client()
        log_in(client)
        page = client.get(f"/admin/users/?q={saved[-1]}")
        assert saved[-1] in page.text
    finally:
        again.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 16 MB filesystem (tmpfs) that fills up: the kernel's ENOSPC, not a simulation."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        unavailable(
            "a small tmpfs cannot be mounted here (needs root with mount rights: "
            f"{mounted.stderr.strip()}); the RLIMIT_FSIZE tests cover the same code paths"
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(disk: Path, leave: int) -> Path:
    """Fill `disk` with one file until only about `leave` bytes are free."""
    filler = disk / "filler.bin"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(filler, "wb") as handle:
        handle.truncate(0)
        chunk = b"\0" * (1024 * 1024)
        remaining = max(0, free - leave)
        while remaining > 0:
            remaining -= handle.write(chunk[: min(len(chunk), remaining)])
    return filler


def test_a_really_full_disk_says_so_keeps_what_was_saved_and_recovers(admin_data_dir, small_disk):
    data = small_disk / "data"
    shutil.copytree(admin_data_dir, data)
    launcher = Launcher(data).start()
    saved: list[str] = []
    failure = None
    try:
        client = launcher.client()
        log_in(client)
        filler = _fill(small_disk, leave=256 * 1024)
        for number in range(2000):
            response = create_user(client, f"full{number}")
            if response.status != 302:
                failure = response
                break
            saved.append(f"full{number}")
        assert failure is not None, "the disk never filled up"
        assert failure.status == 507
        assert (
            "The disk is full" in failure.text and "Everything saved before is safe" in failure.text
        )
        assert "Traceback" not in failure.text

        filler.unlink()  # space again: the same running portal saves without a restart
        assert create_user(client, "after-space-was-freed").status == 302
        saved.append("after-space-was-freed")
    finally:
        code, _, stderr = launcher.stop()
    assert code == 0, stderr
    assert saved[:-1], "no write succeeded before the disk was full"
    assert _integrity(data / "portal.db") == "ok"
    assert set(saved) <= _usernames(data / "portal.db")
