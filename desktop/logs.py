"""Logging: a rotating file in the user's log directory, and stderr with --verbose."""

from __future__ import annotations

import logging
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s [%(process)d %(threadName)s] %(name)s: %(message)s"
MAX_BYTES = 2 * 1024 * 1024
BACKUP_COUNT = 5


def setup_logging(log_file: Path, *, verbose: bool = False, level: str = "INFO") -> Path | None:
    """Send every log record to `log_file` (rotated at 2 MB, 5 kept); return the file used.

    When the file cannot be opened (read-only or full disk) records go to stderr instead and
    None is returned, so that the launcher can still say what is wrong.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level.upper())
    formatter = logging.Formatter(FORMAT)
    used: Path | None = log_file
    try:
        from desktop.paths import make_owner_only

        log_file.parent.mkdir(parents=True, exist_ok=True)
        make_owner_only(log_file.parent)
        file_handler = RotatingFileHandler(
            log_file, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8"
        )
    except OSError as exc:
        used = None
        print(
            f"Campus Portal: cannot write the log file {log_file} ({exc.strerror}); "
            "logging to the terminal instead.",
            file=sys.stderr,
        )
    else:
        file_handler.setFormatter(formatter)
        root.addHandler(file_handler)
    if verbose or used is None:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(formatter)
        stream.setLevel(logging.DEBUG if verbose else logging.WARNING)
        root.addHandler(stream)
    logging.captureWarnings(True)
    return used
