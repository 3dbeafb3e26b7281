"""A real OpenID Connect provider: npm's `oidc-provider` under the machine's Node, started from
tests/auth/oidc_provider/provider.js on 127.0.0.1 and a free port (issuer
http://127.0.0.1:<port>), with static test accounts whose groups a test may change. Its
node_modules come from `npm ci` (the Makefile's `$(OIDC_PROVIDER)` rule, a prerequisite of
`make test`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unavailable

HERE = Path(__file__).parent / "oidc_provider"
SCRIPT = HERE / "provider.js"
MODULE = HERE / "node_modules" / "oidc-provider" / "package.json"
CLIENT_ID = "campus-portal"
OTHER_CLIENT_ID = "campus-library"  # another application of the campus (provider.js)
STARTUP_TIMEOUT = 30.0

ACCOUNTS: dict[str, dict[str, Any]] = {
    "ada": {
        "password": "Analytical-Engine-1843",
        "name": "Ada Lovelace",
        "email": "ada@campus.example",
        "groups": ["students"],
    },
    "grace": {
        "password": "Compiler-A0-1952",
        "name": "Grace Hopper",
        "email": "grace@campus.example",
        "groups": ["portal-admins", "teaching-staff"],
    },
    "alan": {
        "password": "Enigma-Bombe-1940",
        "name": "Alan Turing",
        "email": "alan@campus.example",
        "groups": ["teaching-staff"],
    },
    "linus": {
        "password": "Kernel-Release-1991",
        "name": "Linus Torvalds",
        "email": "linus@campus.example",
        "groups": ["visitors"],
    },
}
GROUP_ROLES = {"admin": "portal-admins", "instructor": "teaching-staff"}


@dataclass
class IdentityProvider:
    """The running provider: its issuer, and its accounts as the campus IT would change them."""

    issuer: str
    accounts_file: Path
    process: subprocess.Popen[str]

    def set_groups(self, username: str, groups: list[str]) -> None:
        accounts = json.loads(self.accounts_file.read_text())
        accounts[username]["groups"] = groups
        self.accounts_file.write_text(json.dumps(accounts))


def start_provider(
    folder: Path,
    redirect_uris: list[str],
    client_secret: str = "",
    tls: tuple[Path, Path] | None = None,
) -> Iterator[IdentityProvider]:
    """Run the provider for the portal whose callbacks are `redirect_uris` (a confidential
    client with `client_secret`, else a public one); with `tls` (certificate and key PEM
    files), over https. Yields it."""
    node = shutil.which("node")
    if node is None:
        unavailable("Node.js is not installed (Debian package nodejs: make system-deps)")
    if not MODULE.exists():
        unavailable(f"oidc-provider is not installed: run `make test` (npm ci in {HERE})")
    folder.mkdir(parents=True, exist_ok=True)
    accounts_file = folder / "accounts.json"
    accounts_file.write_text(json.dumps(ACCOUNTS))
    log = (folder / "provider.log").open("w")
    process = subprocess.Popen(
        [node, str(SCRIPT), str(accounts_file), CLIENT_ID, *redirect_uris],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={
            **os.environ,
            "NODE_ENV": "test",
            "OIDC_TEST_CLIENT_SECRET": client_secret,
            **(
                {"OIDC_TEST_TLS_CERT": str(tls[0]), "OIDC_TEST_TLS_KEY": str(tls[1])} if tls else {}
            ),
        },
    )
    try:
        issuer = _issuer(process, folder / "provider.log")
        yield IdentityProvider(issuer=issuer, accounts_file=accounts_file, process=process)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _issuer(process: subprocess.Popen[str], log: Path) -> str:
    """The first line the provider prints once it listens: {"issuer": ...}."""
    assert process.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(STARTUP_TIMEOUT)
    if not lines or not lines[0].strip():
        process.kill()
        pytest.fail(f"oidc-provider did not start in {STARTUP_TIMEOUT} s: {log.read_text()}")
    return str(json.loads(lines[0])["issuer"])
