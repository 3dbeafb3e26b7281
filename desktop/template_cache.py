"""Compiled templates kept between starts, in the OS user's own data folder.

The first page of a start (the log-in page) would otherwise compile its templates each time
(parse, generate Python, compile it: 20-45 ms on a 2-core laptop, more while the window is
still starting). Jinja's bytecode cache keeps the compiled code of each template in a file and
loads it again when the template's source is unchanged (its checksum is stored with the code,
and the Jinja and Python versions in each file's header; anything else is compiled again).

Loading that code runs it, so where it lives decides who could make the portal run their code.
The cache is in `<data dir>/cache/templates`: the data folder is the OS user's alone (700, see
desktop.paths.make_owner_only), and the cache folder is made 700 too. Before using it the
launcher checks (POSIX) that the folder is a real directory (no symbolic link), owned by this OS
user and writable by nobody else; otherwise templates are compiled as before and a warning is
logged. No other location is ever used (Jinja's default is a folder in the shared temporary
directory), and the central server has no cache (it compiles each template once per process).

Compiling ahead of time into a read-only bundle was the alternative: it would also serve the
first start, but only in a PyInstaller build (not from source or a wheel), and with a second
template loader to keep in step with Flask's.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

from jinja2 import FileSystemBytecodeCache
from jinja2.bccache import Bucket

log = logging.getLogger(__name__)


class TolerantCache(FileSystemBytecodeCache):  # type: ignore[misc]
    """A compiled template that cannot be written (a full disk) is simply not kept: the page
    is shown all the same (the full-disk page among them)."""

    def dump_bytecode(self, bucket: Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError as exc:
            log.warning("compiled template not kept: %s", exc.strerror or exc)


def private_folder_problem(folder: Path) -> str | None:
    """Why `folder` is not safe to load compiled code from, or None when it is (POSIX)."""
    if os.name != "posix":  # Windows: the per-user application-data folders are private
        return None
    try:
        info = os.lstat(folder)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a folder"
    if info.st_uid != os.getuid():
        return "belongs to another OS user"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "can be written by other OS users"
    return None


def cache_compiled_templates(app: Any, folder: Path) -> bool:
    """Keep `app`'s compiled templates in `folder` (made owner-only); False (and templates
    compiled at each start) when that folder cannot be made or is not private."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("compiled templates not kept: %s: %s", folder, exc.strerror or exc)
        return False
    problem = private_folder_problem(folder)
    if problem is not None:
        log.warning("compiled templates not kept: %s %s", folder, problem)
        return False
    app.jinja_env.bytecode_cache = TolerantCache(str(folder))
    return True
