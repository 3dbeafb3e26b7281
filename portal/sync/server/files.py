"""Files a device sends or fetches, chunk by chunk."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from portal.errors import ValidationError
from portal.models import (
    Device,
    StoredFile,
)
from portal.sync import scopes
from portal.sync.server.enrolment import device_accounts


def file_visible(db: Session, device: Device, sha256: str) -> bool:
    accounts = device_accounts(db, device)
    return (
        db.scalar(
            select(StoredFile.id).where(
                StoredFile.sha256 == sha256, scopes.condition("stored_files", accounts)
            )
        )
        is not None
    )


def partial_path(upload_dir: Path, device_id: uuid.UUID, sha256: str) -> Path:
    return upload_dir / "incoming" / str(device_id) / f"{sha256}.part"


def receive_chunk(
    upload_dir: Path,
    device_id: uuid.UUID,
    sha256: str,
    offset: int,
    data: bytes,
    *,
    max_bytes: int,
) -> dict[str, Any]:
    """Append one chunk of a file at `offset` (resumable); when `data` is the last chunk the
    caller says so by the file reaching its announced size. Returns the received size and
    whether the whole file is stored."""
    from portal.submissions import storage

    if not _is_sha256(sha256):
        raise ValidationError(_("A file is named by its sha256 (64 hexadecimal digits)."))
    if storage.blob_path(upload_dir, sha256).is_file():
        return {"received": None, "complete": True}
    part = partial_path(upload_dir, device_id, sha256)
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if offset != have:
        return {"received": have, "complete": False, "detail": f"expected offset {have}"}
    if have + len(data) > max_bytes:
        part.unlink(missing_ok=True)
        raise ValidationError(_("The file is larger than the largest accepted upload."))
    with part.open("ab") as handle:
        handle.write(data)
    return {"received": have + len(data), "complete": False}


def finish_file(upload_dir: Path, device_id: uuid.UUID, sha256: str) -> bool:
    """Check the received file against its name; store it when the hash matches. A file that
    does not match is removed (it will be sent again from the start)."""
    from portal.submissions import storage

    if storage.blob_path(upload_dir, sha256).is_file():
        return True
    part = partial_path(upload_dir, device_id, sha256)
    if not part.exists():
        return False
    if not storage.store_if_whole(upload_dir, part, sha256):
        raise ValidationError(_("The file received does not match its sha256; send it again."))
    return True


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(ch in "0123456789abcdef" for ch in text)
