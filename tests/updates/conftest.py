"""A real TUF release repository, made with `campus-portal-server release`, served by a real
HTTP server on 127.0.0.1 that counts the requests it sees and can misbehave on demand."""

from __future__ import annotations

import functools
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from desktop.updates import UpdateCheck, UpdateSettings
from portal.server import main as server_main

INSTALLER_SIZE = 3 * 1024 * 1024 + 17  # about the size of a small installer, not a round number


@dataclass
class Mirror:
    """What the HTTP server does: serve the folder, or hold, drip or stream without end."""

    root: Path
    requests: list[str] = field(default_factory=list)
    hold: str | None = None  # a path prefix answered only once `released` is set
    drip: str | None = None  # a path prefix answered one byte at a time, without end
    endless: str | None = None  # a path prefix answered with data without end, at full speed
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


class _Handler(SimpleHTTPRequestHandler):
    mirror: Mirror

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        mirror = self.mirror
        mirror.requests.append(self.path)
        mirror.arrived.set()
        try:
            if mirror.hold and self.path.startswith(mirror.hold):
                mirror.released.wait(30)
                return
            if mirror.drip and self.path.startswith(mirror.drip):
                self._stream(b"x", lambda: mirror.released.wait(0.05))
                return
            if mirror.endless and self.path.startswith(mirror.endless):
                self._stream(b"\0" * 65536, lambda: mirror.released.is_set())
                return
            super().do_GET()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _stream(self, chunk: bytes, stop: object) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        while not stop():  # type: ignore[operator]
            self.wfile.write(chunk)
            self.wfile.flush()


@pytest.fixture
def mirror(tmp_path) -> Iterator[tuple[Mirror, str]]:
    root = tmp_path / "repository"
    root.mkdir()
    state = Mirror(root)
    handler = type("Handler", (_Handler,), {"mirror": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        state.released.set()
        server.shutdown()
        server.server_close()


@dataclass
class Release:
    """The repository, its keys, and what a desktop copy needs to use it."""

    root: Path
    keys: dict[str, Path]
    url: str
    mirror: Mirror
    trust_root: Path
    installers: Path

    def release(self, argv: list[str]) -> int:
        return server_main(["release", "--repository", str(self.root), *argv])

    def installer(self, version: str, name: str | None = None, size: int = INSTALLER_SIZE) -> Path:
        path = self.installers / (name or f"campus-portal_{version}_amd64.deb")
        path.write_bytes(os.urandom(size))
        return path

    def add(self, version: str, *, channel: str = "stable", name: str | None = None) -> Path:
        installer = self.installer(version, name)
        code = self.release(
            [
                "add",
                str(installer),
                "--version",
                version,
                "--channel",
                channel,
                "--targets-key",
                str(self.keys["targets"]),
                "--online-key",
                str(self.keys["online"]),
            ]
        )
        assert code == 0
        return installer

    def check(self, tmp_path: Path, **settings: object) -> UpdateCheck:
        values = {"check": True, "url": self.url, "channel": "stable", "pin": ""} | settings
        return UpdateCheck(
            UpdateSettings(**values),  # type: ignore[arg-type]
            data_dir=tmp_path / "data",
            running_version="0.1.0",
            trust_root=self.trust_root,
            system="linux",
            from_deb=True,
            timeout=2.0,
            deadline=20.0,
        )


@pytest.fixture
def release(tmp_path, mirror) -> Release:
    state, url = mirror
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    keys = {name: keys_dir / f"{name}.pem" for name in ("root1", "root2", "targets", "online")}
    repository = state.root
    for path in keys.values():
        assert server_main(["release", "keygen", str(path)]) == 0
    assert (
        server_main(
            [
                "release",
                "--repository",
                str(repository),
                "init",
                "--root-key",
                str(keys["root1"]),
                "--root-key",
                str(keys["root2"]),
                "--targets-key",
                str(keys["targets"]),
                "--online-key",
                str(keys["online"]),
            ]
        )
        == 0
    )
    machine = tmp_path / "machine"
    machine.mkdir()
    trust_root = machine / "update-root.json"
    shutil.copyfile(repository / "metadata" / "1.root.json", trust_root)
    installers = tmp_path / "installers"
    installers.mkdir()
    return Release(repository, keys, url, state, trust_root, installers)
