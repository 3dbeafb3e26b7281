"""The signed release repository the desktop copies update from (TUF, python `tuf`).

    campus-portal-server release keygen FILE
    campus-portal-server release init --root-key A --root-key B --targets-key T --online-key O
    campus-portal-server release add INSTALLER --version V [--channel stable|beta] [--os OS]
                                     --targets-key T [--online-key O]
    campus-portal-server release timestamp --online-key O
    campus-portal-server release renew-root --root-key A --root-key B
    campus-portal-server release list

Every command takes `--repository DIR` (default `$PORTAL_SHARED_DIR/updates`, which the central
server serves read-only at /updates/). The layout is TUF's with consistent snapshots:

    DIR/metadata/N.root.json, N.targets.json, N.snapshot.json, timestamp.json
    DIR/targets/<sha256>.<installer file name>

Roles and keys: root is signed by two keys (threshold 2), targets by one; both stay offline
(files named on the command line, e.g. on a USB stick kept in a safe). Snapshot and timestamp
share the online key, which the server keeps for the daily re-signing (`release timestamp`,
run by installers/server/campus-portal-release-timestamp.timer): the timestamp expires after
TIMESTAMP_DAYS, so a mirror that freezes the repository is noticed within days.

Each installer is a target whose custom metadata names its version, OS and channel:
`{"campus_portal": {"version": "0.2.0", "os": "windows", "channel": "stable"}}`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

CUSTOM = "campus_portal"  # the key of a target's custom metadata
CHANNELS = ("stable", "beta")
SYSTEMS = ("windows", "macos", "linux")
ROOT_THRESHOLD = 2
ROOT_DAYS = 365 * 2
TARGETS_DAYS = 365
SNAPSHOT_DAYS = 7
TIMESTAMP_DAYS = 2

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class ReleaseError(Exception):
    """A release command cannot do what it was asked; the message says why."""


def system_of(installer: Path) -> str:
    """The OS an installer is for, from its name (as the builds name them)."""
    name = installer.name
    if name.endswith(".exe") or name.endswith(".msi"):
        return "windows"
    if name.endswith(".pkg"):
        return "macos"
    if name.endswith(".deb") or name.endswith(".tar.xz"):
        return "linux"
    raise ReleaseError(f"{name}: cannot tell its OS from the name; give --os {'|'.join(SYSTEMS)}")


# --- keys --------------------------------------------------------------------------------------


def generate_key(path: Path) -> str:
    """A new Ed25519 key in `path` (PEM, PKCS#8, owner-only); returns its key id."""
    from securesystemslib.signer import CryptoSigner

    signer = CryptoSigner.generate_ed25519()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ReleaseError(f"{path} exists: a key file is never overwritten") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(signer.private_bytes)
    return str(signer.public_key.keyid)


def load_key(path: Path) -> Any:
    """The signer of a key file written by generate_key."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from securesystemslib.signer import CryptoSigner

    try:
        private = load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ReleaseError(f"cannot read the key file {path}: {exc.strerror or exc}") from exc
    except (ValueError, TypeError) as exc:
        raise ReleaseError(f"{path} is not a key file made by `release keygen`") from exc
    return CryptoSigner(private)


# --- the repository on disk ---------------------------------------------------------------------


@dataclass
class Repository:
    """The newest metadata of each role, read from and written to `path`."""

    path: Path
    now: Clock = utcnow

    @property
    def metadata_dir(self) -> Path:
        return self.path / "metadata"

    @property
    def targets_dir(self) -> Path:
        return self.path / "targets"

    def _write(self, path: Path, data: bytes) -> None:
        """Readable by all (the web server serves it), replaced atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _publish(self, metadata: Any, *, versioned: bool) -> None:
        from tuf.api.serialization.json import JSONSerializer

        data = metadata.to_bytes(JSONSerializer(compact=False))
        role = metadata.signed.type
        if versioned:
            self._write(self.metadata_dir / f"{metadata.signed.version}.{role}.json", data)
        self._write(self.metadata_dir / f"{role}.json", data)  # the newest, unversioned

    def load(self, role: str) -> Any:
        from tuf.api.metadata import Metadata

        path = self.metadata_dir / f"{role}.json"
        if not path.exists():
            raise ReleaseError(f"{self.path} is not a release repository: run `release init` first")
        return Metadata.from_file(str(path))

    def _expires(self, days: int) -> datetime:
        return (self.now() + timedelta(days=days)).replace(microsecond=0)

    def _check_signer(self, role: str, signer: Any) -> None:
        root = self.load("root").signed
        if signer.public_key.keyid not in root.roles[role].keyids:
            raise ReleaseError(f"that key is not the {role} key of this repository")

    def init(self, root_signers: list[Any], targets_signer: Any, online_signer: Any) -> None:
        from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

        if (self.metadata_dir / "root.json").exists():
            raise ReleaseError(f"{self.path} already holds a release repository")
        keyids = {signer.public_key.keyid for signer in root_signers}
        if len(keyids) < ROOT_THRESHOLD:
            raise ReleaseError(f"root needs {ROOT_THRESHOLD} different keys (--root-key twice)")
        root = Root(expires=self._expires(ROOT_DAYS), consistent_snapshot=True)
        for signer in root_signers:
            root.add_key(signer.public_key, Root.type)
        root.roles[Root.type].threshold = ROOT_THRESHOLD
        root.add_key(targets_signer.public_key, Targets.type)
        root.add_key(online_signer.public_key, Snapshot.type)
        root.add_key(online_signer.public_key, Timestamp.type)
        signed_root = Metadata(root)
        for signer in root_signers:
            signed_root.sign(signer, append=True)
        self._publish(signed_root, versioned=True)
        targets = Metadata(Targets(expires=self._expires(TARGETS_DAYS)))
        targets.sign(targets_signer)
        self._publish(targets, versioned=True)
        self.resign(online_signer)

    def add(
        self,
        installer: Path,
        *,
        version: str,
        channel: str,
        system: str,
        targets_signer: Any,
        online_signer: Any | None,
    ) -> str:
        """Copy the installer in as a target and sign new targets metadata; returns its path."""
        from packaging.version import InvalidVersion, Version
        from tuf.api.metadata import TargetFile

        self._check_signer("targets", targets_signer)
        if online_signer is not None:
            self._check_signer("timestamp", online_signer)
        try:
            Version(version)
        except InvalidVersion:
            raise ReleaseError(f"{version!r} is not a version number (like 0.2.0)") from None
        if not installer.is_file():
            raise ReleaseError(f"{installer}: no such file")
        target = TargetFile.from_file(installer.name, str(installer), ["sha256"])
        target.unrecognized_fields["custom"] = {
            CUSTOM: {"version": version, "os": system, "channel": channel}
        }
        metadata = self.load("targets")
        existing = metadata.signed.targets.get(installer.name)
        if existing is not None and existing.hashes != target.hashes:
            raise ReleaseError(
                f"{installer.name} is already released with other contents: a released file is "
                "never replaced (build the next version instead)"
            )
        digest = target.hashes["sha256"]
        blob = self.targets_dir / f"{digest}.{installer.name}"
        if not blob.exists():
            self.targets_dir.mkdir(parents=True, exist_ok=True)
            partial = blob.with_name(f".part-{blob.name}")
            shutil.copyfile(installer, partial)
            os.chmod(partial, 0o644)
            os.replace(partial, blob)
        metadata.signed.targets[installer.name] = target
        metadata.signed.version += 1
        metadata.signed.expires = self._expires(TARGETS_DAYS)
        metadata.sign(targets_signer)
        self._publish(metadata, versioned=True)
        if online_signer is not None:
            self.resign(online_signer)
        return installer.name

    def resign(self, online_signer: Any) -> tuple[datetime, int]:
        """New snapshot (naming the newest targets) and timestamp, signed with the online key:
        the daily step. Returns when the timestamp expires and its version."""
        from tuf.api.metadata import Metadata, MetaFile, Snapshot, Timestamp

        self._check_signer("timestamp", online_signer)
        targets_version = self.load("targets").signed.version
        try:
            snapshot = self.load("snapshot")
            snapshot.signed.version += 1
        except ReleaseError:
            snapshot = Metadata(Snapshot())
        snapshot.signed.meta["targets.json"] = MetaFile(version=targets_version)
        snapshot.signed.expires = self._expires(SNAPSHOT_DAYS)
        snapshot.sign(online_signer)
        self._publish(snapshot, versioned=True)
        try:
            timestamp = self.load("timestamp")
            timestamp.signed.version += 1
        except ReleaseError:
            timestamp = Metadata(Timestamp())
        timestamp.signed.snapshot_meta = MetaFile(version=snapshot.signed.version)
        timestamp.signed.expires = self._expires(TIMESTAMP_DAYS)
        timestamp.sign(online_signer)
        self._publish(timestamp, versioned=False)
        return timestamp.signed.expires, timestamp.signed.version

    def renew_root(self, root_signers: list[Any]) -> datetime:
        """A new root version, the same keys, expiring ROOT_DAYS from now (both root keys)."""
        root = self.load("root")
        for signer in root_signers:
            if signer.public_key.keyid not in root.signed.roles["root"].keyids:
                raise ReleaseError("that key is not a root key of this repository")
        if len({signer.public_key.keyid for signer in root_signers}) < ROOT_THRESHOLD:
            raise ReleaseError(f"root needs {ROOT_THRESHOLD} different keys (--root-key twice)")
        root.signed.version += 1
        root.signed.expires = self._expires(ROOT_DAYS)
        root.signatures.clear()
        for signer in root_signers:
            root.sign(signer, append=True)
        self._publish(root, versioned=True)
        return root.signed.expires

    def releases(self) -> list[tuple[str, dict[str, str], int]]:
        """(target path, its custom metadata, length) of every release."""
        targets = self.load("targets").signed.targets
        return [
            (path, (target.custom or {}).get(CUSTOM, {}), target.length)
            for path, target in sorted(targets.items())
        ]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- the command line ---------------------------------------------------------------------------


def _default_repository() -> Path | None:
    shared = os.environ.get("PORTAL_SHARED_DIR") or os.environ.get("PORTAL_DATA_DIR")
    return Path(shared) / "updates" if shared else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="campus-portal-server release",
        description="The signed release repository the desktop copies update from.",
    )
    parser.add_argument(
        "--repository",
        type=Path,
        default=_default_repository(),
        metavar="DIR",
        help="the repository (default: $PORTAL_SHARED_DIR/updates, served at /updates/)",
    )
    commands = parser.add_subparsers(dest="action", required=True, metavar="COMMAND")
    keygen = commands.add_parser("keygen", help="write a new signing key to FILE (owner-only)")
    keygen.add_argument("file", type=Path, metavar="FILE")
    init = commands.add_parser("init", help="create the repository: root, targets, online keys")
    init.add_argument("--root-key", type=Path, action="append", required=True, metavar="FILE")
    init.add_argument("--targets-key", type=Path, required=True, metavar="FILE")
    init.add_argument("--online-key", type=Path, required=True, metavar="FILE")
    add = commands.add_parser("add", help="release an installer")
    add.add_argument("installer", type=Path, metavar="INSTALLER")
    add.add_argument("--version", required=True, metavar="V")
    add.add_argument("--channel", choices=CHANNELS, default="stable")
    add.add_argument("--os", choices=SYSTEMS, default=None, help="default: from the file name")
    add.add_argument("--targets-key", type=Path, required=True, metavar="FILE")
    add.add_argument(
        "--online-key",
        type=Path,
        default=None,
        metavar="FILE",
        help="publish at once (else the next `release timestamp` publishes it)",
    )
    timestamp = commands.add_parser(
        "timestamp", help="re-sign snapshot and timestamp with the online key (daily)"
    )
    timestamp.add_argument("--online-key", type=Path, required=True, metavar="FILE")
    renew = commands.add_parser(
        "renew-root", help="a new root version expiring in two years (both root keys)"
    )
    renew.add_argument("--root-key", type=Path, action="append", required=True, metavar="FILE")
    commands.add_parser("list", help="the released installers")
    return parser


def main(argv: list[str], *, now: Clock = utcnow) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args, now)
    except ReleaseError as error:
        print(f"campus-portal-server release: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, now: Clock) -> int:
    if args.action == "keygen":
        keyid = generate_key(args.file)
        print(f"Key {keyid} written to {args.file}. Keep it offline unless it is the online key.")
        return 0
    if args.repository is None:
        raise ReleaseError("no repository: give --repository DIR (or set PORTAL_SHARED_DIR)")
    repository = Repository(args.repository, now=now)
    if args.action == "init":
        repository.init(
            [load_key(path) for path in args.root_key],
            load_key(args.targets_key),
            load_key(args.online_key),
        )
        print(f"Release repository created in {args.repository}.")
        print(
            f"Copy {repository.metadata_dir / '1.root.json'} to every desktop as "
            "update-root.json next to its machine-wide config.toml (installers/README.md)."
        )
        return 0
    if args.action == "add":
        name = repository.add(
            args.installer,
            version=args.version,
            channel=args.channel,
            system=args.os or system_of(args.installer),
            targets_signer=load_key(args.targets_key),
            online_signer=load_key(args.online_key) if args.online_key else None,
        )
        published = "published" if args.online_key else "signed; published by the next timestamp"
        print(f"{name} {args.version} ({args.channel}) {published}.")
        return 0
    if args.action == "timestamp":
        expires, version = repository.resign(load_key(args.online_key))
        print(f"Timestamp {version} signed; it expires {expires.isoformat()}.")
        return 0
    if args.action == "renew-root":
        expires = repository.renew_root([load_key(path) for path in args.root_key])
        print(f"Root renewed; it expires {expires.date().isoformat()}.")
        return 0
    for path, custom, length in repository.releases():
        print(
            f"{custom.get('version', '?'):<12} {custom.get('channel', '?'):<7} "
            f"{custom.get('os', '?'):<8} {length:>12} {path}"
        )
    return 0
