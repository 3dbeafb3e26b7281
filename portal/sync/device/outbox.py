"""The device's outbox going to the server: changes in batches, then the files they name."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path

from flask_babel import gettext as _
from sqlalchemy import (
    Engine,
    delete,
    select,
    true,
)

from portal.models import OutboxEntry, SyncState
from portal.sync.device.client import (
    Progress,
    Summary,
    SyncError,
    Transport,
    pending_count,
)
from portal.sync.protocol import CHUNK_BYTES

log = logging.getLogger(__name__)

PUSH_BATCH = 200


def push(
    engine: Engine,
    transport: Transport,
    upload_dir: Path,
    summary: Summary,
    progress: Progress | None,
) -> None:
    total = pending_count(engine)
    done = 0
    skipped: set[uuid.UUID] = set()
    while True:
        with engine.connect() as connection:
            entries = connection.execute(
                select(OutboxEntry)
                .where(OutboxEntry.change_id.not_in(skipped) if skipped else true())
                .order_by(OutboxEntry.seq)
                .limit(PUSH_BATCH)
            ).all()
        if not entries:
            return
        for entry in entries:
            if entry.table_name == "stored_files" and entry.op == "insert":
                _upload_file(transport, upload_dir, str(entry.fields.get("sha256", "")))
                summary.files += 1
            elif entry.table_name == "submissions" and entry.op == "insert":
                # The file may have travelled under an earlier change, or not whole: the server
                # answers "waiting" until it has it, so make sure it does (a status call when
                # it is already there).
                _upload_file(transport, upload_dir, str(entry.fields.get("file_sha256", "")))
        body = {
            "changes": [
                {
                    "change_id": str(entry.change_id),
                    "table": entry.table_name,
                    "row_id": str(entry.row_id),
                    "op": entry.op,
                    "fields": entry.fields,
                    "hlc": entry.hlc,
                    "base_cursor": entry.base_cursor,
                    "actor_id": str(entry.actor_id) if entry.actor_id else None,
                }
                for entry in entries
            ],
            "pending": max(total - done - len(entries), 0),  # once this batch is through
        }
        answer = transport.json("POST", "/push", body)
        handled = []
        for result in answer.get("results", []):
            try:
                change_id = uuid.UUID(str(result.get("change_id")))
            except ValueError:
                continue
            status = result.get("status")
            # A refusal, malformed changes included, is kept by the server for its author
            # (My sync conflicts): the change leaves the outbox like any answered one.
            if status in ("applied", "ignored", "superseded", "refused"):
                handled.append(change_id)
                summary.pushed += 1
                summary.conflicts += status == "superseded"
                summary.refused += status == "refused"
            else:
                skipped.add(change_id)
        sent = {entry.change_id for entry in entries}
        skipped.update(sent - set(handled))
        if handled:
            with engine.begin() as connection:
                connection.execute(delete(OutboxEntry).where(OutboxEntry.change_id.in_(handled)))
        done += len(entries)
        if progress:
            progress("push", min(done, total), total)


def _upload_file(transport: Transport, upload_dir: Path, sha256: str) -> None:
    from portal.submissions import storage

    path = storage.blob_path(upload_dir, sha256)
    if not path.is_file():
        return  # not on this computer: nothing to send (the server answers "waiting")
    state = transport.json("GET", f"/files/{sha256}/status")
    if state.get("complete"):
        return
    offset = int(state.get("received") or 0)
    size = path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(offset)
        while True:
            chunk = handle.read(CHUNK_BYTES)
            last = offset + len(chunk) >= size
            headers = {"X-File-Complete": "1"} if last else {}
            response = transport.call(
                "PUT",
                f"/files/{sha256}?offset={offset}",
                None,
                content=chunk,
                headers={
                    **transport.headers(),
                    **headers,
                    "Content-Type": "application/octet-stream",
                },
            )
            answer = response.json()
            if last:
                if not answer.get("complete"):
                    raise SyncError(
                        _("The server did not accept the file %(file)s.", file=sha256[:12])
                    )
                return
            offset = int(answer.get("received") or 0)


def export_outbox(engine: Engine, target: Path) -> int:
    """Write every change waiting on this device to a JSON file; returns how many."""
    with engine.connect() as connection:
        entries = connection.execute(select(OutboxEntry).order_by(OutboxEntry.seq)).all()
        state = connection.execute(select(SyncState.device_id, SyncState.server_url)).first()
    document = {
        "device_id": str(state.device_id) if state else None,
        "server_url": state.server_url if state else None,
        "exported_at": datetime.now(UTC).isoformat(),
        "changes": [
            {
                "change_id": str(e.change_id),
                "table": e.table_name,
                "row_id": str(e.row_id),
                "op": e.op,
                "fields": e.fields,
                "hlc": e.hlc,
                "actor_id": str(e.actor_id) if e.actor_id else None,
                "created_at": e.created_at.isoformat(),
            }
            for e in entries
        ],
    }
    target.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return len(entries)
