"""/updates/...: the release repository's files (`<shared dir>/updates`), read-only.

Anyone may read them: the metadata is signed and the installers are verified against it by the
desktop copy, so the web server needs no secret. nginx may serve the same folder instead."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, send_from_directory
from werkzeug.wrappers import Response

from portal.auth.policy import public

bp = Blueprint("updates", __name__)

# timestamp.json changes daily and must be seen at once; every other file is never changed
# once written (versioned metadata, installers named by their hash).
UNVERSIONED = {"metadata/timestamp.json"}


@bp.get("/updates/<path:name>")
@public
def repository_file(name: str) -> Response:
    settings = current_app.config["PORTAL"]
    if settings["MODE"] != "server":
        abort(404)
    folder = Path(settings["SHARED_DIR"]) / "updates"
    if not name.startswith(("metadata/", "targets/")) or Path(name).name.startswith("."):
        abort(404)
    max_age = 0 if name in UNVERSIONED else 3600
    return send_from_directory(folder, name, max_age=max_age)
