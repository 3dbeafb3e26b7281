"""Content-addressed file storage under UPLOAD_DIR, and the checks on what may be stored.

A file's place on disk derives from its sha256 only (`sha256/ab/cd/abcd...`); the name the user
gave is metadata in the database and never touches a path. Uploads arrive through
`IncomingFile`, a writable sink that hashes, counts and spools each chunk to a temporary file in
`UPLOAD_DIR/incoming` and stops the moment the size limit is passed.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import tempfile
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

from portal.errors import FileTooLarge, ValidationError

CHUNK_SIZE = 64 * 1024
HEAD_SIZE = 8 * 1024
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class FileKind:
    """One accepted kind of file: what it is called, its content type, and its extensions
    (the first is the one to suggest)."""

    label: str | LazyString  # in the list of accepted types
    name: str | LazyString  # in a sentence: "its content is a PDF document"
    content_type: str
    extensions: tuple[str, ...]


# Every accepted kind of upload, declared once; the tables below are derived from it.
FILE_KINDS = {
    "pdf": FileKind("PDF", _l("a PDF document"), "application/pdf", (".pdf",)),
    "png": FileKind("PNG", _l("a PNG image"), "image/png", (".png",)),
    "jpeg": FileKind("JPEG", _l("a JPEG image"), "image/jpeg", (".jpg", ".jpeg")),
    "docx": FileKind(
        _l("Word (.docx)"),
        _l("a Word document"),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        (".docx",),
    ),
    "zip": FileKind("ZIP", _l("a ZIP archive"), "application/zip", (".zip",)),
    "text": FileKind(
        _l("plain text (.txt, .md)"), _l("plain text"), "text/plain; charset=utf-8", (".txt", ".md")
    ),
}
# Extension -> the kind its content must be.
ALLOWED_EXTENSIONS = {ext: kind for kind, spec in FILE_KINDS.items() for ext in spec.extensions}
CONTENT_TYPES = {kind: spec.content_type for kind, spec in FILE_KINDS.items()}
KIND_NAMES = {kind: spec.name for kind, spec in FILE_KINDS.items()}
CANONICAL_EXTENSIONS = {kind: spec.extensions[0] for kind, spec in FILE_KINDS.items()}


def accepted_description() -> str:
    """The accepted kinds, as a list in a sentence: "PDF, PNG, ... or plain text"."""
    labels = [str(spec.label) for spec in FILE_KINDS.values()]
    return _("%(first)s or %(last)s", first=", ".join(labels[:-1]), last=labels[-1])


class IncomingFile:
    """One uploaded file on its way in. Werkzeug's form parser writes each chunk here as it
    arrives; `write` raises FileTooLarge as soon as the limit is passed."""

    def __init__(self, upload_dir: Path, max_bytes: int) -> None:
        incoming = Path(upload_dir) / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=incoming, suffix=".part")
        self.path = Path(name)
        self._file: BinaryIO | None = os.fdopen(handle, "wb")
        self.max_bytes = max_bytes
        self.size = 0
        self.head = b""
        self._hash = hashlib.sha256()

    # The parts of the file protocol that werkzeug's parser uses.
    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.max_bytes:
            self.discard()
            raise FileTooLarge.over(self.max_bytes)
        if len(self.head) < HEAD_SIZE:
            self.head += data[: HEAD_SIZE - len(self.head)]
        self._hash.update(data)
        assert self._file is not None
        self._file.write(data)
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        if self._file is not None:
            self._file.flush()
        return 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def finish(self) -> str:
        """Close the file and return its sha256."""
        self.close()
        return self._hash.hexdigest()

    def discard(self) -> None:
        """Remove the temporary file (safe to call more than once)."""
        self.close()
        self.path.unlink(missing_ok=True)


def receive(stream: BinaryIO, upload_dir: Path, max_bytes: int) -> IncomingFile:
    """Copy a readable stream into an IncomingFile in chunks (API, sync, tests)."""
    incoming = IncomingFile(upload_dir, max_bytes)
    while chunk := stream.read(CHUNK_SIZE):
        incoming.write(chunk)
    return incoming


def blob_path(upload_dir: Path, sha256: str) -> Path:
    """Where the content with this hash lives; refuses anything that is not a sha256."""
    if not SHA256_PATTERN.match(sha256):
        raise ValueError("not a sha256 hex digest")
    return Path(upload_dir) / "sha256" / sha256[:2] / sha256[2:4] / sha256


def store(upload_dir: Path, incoming: IncomingFile, sha256: str) -> Path:
    """Move a finished IncomingFile to its content address (a no-op if already there)."""
    incoming.close()
    return _move_into_store(upload_dir, incoming.path, sha256)


def store_if_whole(upload_dir: Path, part: Path, sha256: str) -> bool:
    """Store a file received in parts (sync: resumed uploads and downloads) under its hash when
    its content has that hash; a file that does not match is removed, to be sent again."""
    digest = hashlib.sha256()
    with part.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(block)
    if digest.hexdigest() != sha256:
        part.unlink(missing_ok=True)
        return False
    _move_into_store(upload_dir, part, sha256)
    return True


def _move_into_store(upload_dir: Path, path: Path, sha256: str) -> Path:
    """The one way a file enters the store: moved to its content address (removed instead when
    the same content is there already)."""
    target = blob_path(upload_dir, sha256)
    if target.exists():
        path.unlink(missing_ok=True)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)
    return target


def read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


# --- Names and types ------------------------------------------------------------------------------


def display_name(raw: str | None) -> str:
    """The user's file name reduced to something safe to show: the last path part, no control
    characters, at most 200 characters. Metadata only: it never becomes a path."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    name = name.lstrip(".").strip() or "upload"
    if len(name) > 200:
        stem, dot, extension = name.rpartition(".")
        name = (stem[: 200 - len(extension) - 1] + dot + extension) if dot else name[:200]
    return name


def _is_plain_text(path: Path) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    allowed_controls = {"\t", "\n", "\r", "\f"}
    try:
        for chunk in read_chunks(path):
            text = decoder.decode(chunk)
            if any(unicodedata.category(ch) == "Cc" and ch not in allowed_controls for ch in text):
                return False
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def sniff(path: Path, head: bytes) -> str | None:
    """The kind of file by its content (magic bytes), or None when it is none we accept."""
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError):
            return None
        if "[Content_Types].xml" in names and "word/document.xml" in names:
            return "docx"
        return "zip"
    if _is_plain_text(path):
        return "text"
    return None


def check_type(name: str, path: Path, head: bytes) -> str:
    """The file's kind when its extension is allowed and its content matches it."""
    extension = os.path.splitext(name)[1].lower()
    expected = ALLOWED_EXTENSIONS.get(extension)
    if expected is None:
        raise ValidationError(
            _(
                "%(name)s cannot be uploaded: only %(accepted)s files are accepted.",
                name=repr(name),
                accepted=accepted_description(),
            )
        )
    found = sniff(path, head)
    if found is None:
        raise ValidationError(
            _(
                "%(name)s is named %(extension)s but its content is not %(kind)s (nor any other "
                "accepted type: %(accepted)s).",
                name=repr(name),
                extension=extension,
                kind=str(KIND_NAMES[expected]),
                accepted=accepted_description(),
            )
        )
    if found == expected or (expected == "zip" and found == "docx"):
        return expected
    raise ValidationError(
        _(
            "%(name)s is named %(extension)s but its content is %(kind)s. Give it the right "
            "extension (%(right)s) or export it again.",
            name=repr(name),
            extension=extension,
            kind=str(KIND_NAMES[found]),
            right=CANONICAL_EXTENSIONS[found],
        )
    )
