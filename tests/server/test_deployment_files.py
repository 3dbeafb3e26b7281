"""The deployment files in installers/server say the same as the code and the tests: the same
commands, settings that exist, one gunicorn configuration. (The container files cannot be run
here; this keeps them in step with what runs on a host.)"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from portal.config import ENV_PREFIX, SETTINGS
from portal.server import parse_args

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "installers/server"
DECLARED = {ENV_PREFIX + setting.key for setting in SETTINGS}
# Read by the server's own files rather than the settings: the gunicorn settings and wsgi.py.
DEPLOYMENT_ONLY = set(
    re.findall(
        r"PORTAL_[A-Z_]+",
        (SERVER / "gunicorn.conf.py").read_text()
        + (ROOT / "portal/gunicorn_conf.py").read_text()
        + (ROOT / "portal/wsgi.py").read_text(),
    )
)


def _variables(text: str) -> set[str]:
    return set(re.findall(r"\b(PORTAL_[A-Z_]+)\b", text))


def test_every_variable_the_files_set_is_read_by_the_server():
    texts = {
        "server.env.example": (SERVER / "server.env.example").read_text(),
        "compose.yaml": (SERVER / "compose.yaml").read_text(),
        "Dockerfile": (SERVER / "Dockerfile").read_text(),
        "campus-portal.service": (SERVER / "campus-portal.service").read_text(),
    }
    for name, text in texts.items():
        unknown = _variables(text) - DECLARED - DEPLOYMENT_ONLY
        assert unknown == set(), f"{name} sets variables nothing reads: {sorted(unknown)}"


def _portal_commands(text: str) -> list[list[str]]:
    commands = []
    for line in text.splitlines():
        if "campus-portal-server" in line and line.startswith(("ExecStart", "ExecStartPre")):
            words = shlex.split(line.split("=", 1)[1])
            commands.append(words[1:])
    return commands


def test_the_systemd_units_run_commands_the_server_accepts():
    web = _portal_commands((SERVER / "campus-portal.service").read_text())
    worker = _portal_commands((SERVER / "campus-portal-worker.service").read_text())
    assert web == [["migrate"], ["serve", "--config", "/etc/campus-portal/gunicorn.conf.py"]]
    assert worker == [["worker"]]
    for arguments in web + worker:
        parse_args(arguments)  # exits (SystemExit) on anything the command does not take


def test_the_release_timer_re_signs_the_repository_it_serves(tmp_path, monkeypatch):
    """The daily unit's own command, run against a repository: a new timestamp is signed."""
    from portal.server import main as server_main

    unit = (SERVER / "campus-portal-release-timestamp.service").read_text()
    (command,) = _portal_commands(unit)
    assert command[:2] == ["release", "timestamp"]
    assert "OnCalendar=daily" in (SERVER / "campus-portal-release-timestamp.timer").read_text()
    keys = {name: tmp_path / f"{name}.pem" for name in ("a", "b", "targets", "online")}
    for path in keys.values():
        assert server_main(["release", "keygen", str(path)]) == 0
    monkeypatch.setenv("PORTAL_SHARED_DIR", str(tmp_path / "shared"))
    assert (
        server_main(
            [
                "release",
                "init",
                "--root-key",
                str(keys["a"]),
                "--root-key",
                str(keys["b"]),
                "--targets-key",
                str(keys["targets"]),
                "--online-key",
                str(keys["online"]),
            ]
        )
        == 0
    )
    timestamp = tmp_path / "shared" / "updates" / "metadata" / "timestamp.json"
    before = json.loads(timestamp.read_text())["signed"]["version"]
    command[command.index("--online-key") + 1] = str(keys["online"])  # IT's key file, here
    assert server_main(command) == 0
    assert json.loads(timestamp.read_text())["signed"]["version"] == before + 1


def test_the_container_files_run_the_same_commands_and_configuration():
    dockerfile = (SERVER / "Dockerfile").read_text()
    assert (
        'CMD ["campus-portal-server", "serve", "--config", "/etc/campus-portal/gunicorn.conf.py"]'
        in dockerfile
    )
    assert (
        "COPY installers/server/gunicorn.conf.py /etc/campus-portal/gunicorn.conf.py" in dockerfile
    )
    assert "portal/assets/" in dockerfile and "vendor.txt" in dockerfile  # no CDN, as make assets
    compose = yaml.safe_load((SERVER / "compose.yaml").read_text())
    services = compose["services"]
    assert services["migrate"]["command"] == ["campus-portal-server", "migrate"]
    assert services["worker"]["command"] == ["campus-portal-server", "worker"]
    assert services["web"]["depends_on"]["migrate"] == {
        "condition": "service_completed_successfully"
    }
    assert services["web"]["deploy"]["replicas"] >= 2
    for name in ("migrate", "web", "worker"):
        parse_args(services[name].get("command", ["campus-portal-server", "serve"])[1:])
    nginx = " ".join(services["nginx"]["command"])
    site = (SERVER / "nginx-campus-portal.conf").read_text()
    # What compose's nginx replaces in the site file must still be there to replace.
    for searched in (
        "server 127.0.0.1:8000;",
        "/etc/ssl/certs/portal.campus.example.edu.pem",
        "/etc/ssl/private/portal.campus.example.edu.key",
    ):
        assert searched in site and searched in nginx, searched


def test_the_nginx_site_passes_request_ids_and_guards_metrics():
    site = (SERVER / "nginx-campus-portal.conf").read_text()
    assert site.count("proxy_set_header X-Request-ID $request_id;") >= 2
    metrics = site.split("location = /metrics {", 1)[1].split("}", 1)[0]
    assert "deny all;" in metrics and "allow 127.0.0.1;" in metrics


def test_a_worker_that_loaded_the_app_keeps_it_out_of_the_collectors_full_passes() -> None:
    """gunicorn calls the configuration's post_worker_init once a worker has loaded the app:
    what the app holds is frozen (gc.freeze), so a request's garbage collection does not walk
    it."""
    import gc
    import runpy

    hooks = runpy.run_path(str(SERVER / "gunicorn.conf.py"))
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        hooks["post_worker_init"](object())
        assert gc.get_freeze_count() > 10_000  # this process's modules and objects
    finally:
        gc.unfreeze()


def _as_systemd_reads(text: str) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile (and Compose's env_file) take them: comments
    skipped, a value in double quotes without its quotes."""
    values = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, value = line.split("=", 1)
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        values[key.strip()] = value
    return values


@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_a_shell_loads_server_env_as_systemd_does(tmp_path, shell):
    """`set -a; . server.env` (a start by hand, a cron job) gets every value whole, also those
    with spaces, and also the optional lines once IT uncomments them."""
    text = (SERVER / "server.env.example").read_text()
    uncommented = re.sub(r"^#(?=[A-Z_]+=)", "", text, flags=re.MULTILINE)
    assert uncommented != text  # the optional lines are there to be uncommented
    env_file = tmp_path / "server.env"
    env_file.write_text(uncommented)
    result = subprocess.run(
        [shell, "-euc", 'set -a; . "$1"; set +a; env -0', shell, str(env_file)],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    loaded = dict(item.split("=", 1) for item in result.stdout.split("\0") if "=" in item)
    expected = _as_systemd_reads(uncommented)
    assert expected["PORTAL_LOGIN_RATE_LIMIT"] == "10 per minute"
    assert {key: loaded.get(key) for key in expected} == expected


def test_serve_without_a_config_file_runs_the_shipped_settings(tmp_path, monkeypatch) -> None:
    """Not gunicorn's own defaults (sync workers, 30 s): the settings the deployment ships."""
    from portal.server import gunicorn_server

    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    plain = gunicorn_server(None, None, None).cfg
    assert plain.worker_class_str == "gthread" and plain.threads == 4
    assert (plain.timeout, plain.graceful_timeout, plain.max_requests) == (60, 30, 2000)
    assert plain.address == [("127.0.0.1", 8000)]
    assert plain.post_worker_init.__module__ == "portal.gunicorn_conf"
    assert plain.child_exit.__module__ == "portal.gunicorn_conf"
    # IT's file as shipped says the same; what it sets changes one setting, not the rest.
    shipped = gunicorn_server(None, None, str(SERVER / "gunicorn.conf.py")).cfg
    assert (shipped.worker_class_str, shipped.timeout) == ("gthread", 60)
    changed = tmp_path / "gunicorn.conf.py"
    changed.write_text("timeout = 120\n")
    edited = gunicorn_server("127.0.0.1:9100", 3, str(changed)).cfg
    assert (edited.worker_class_str, edited.threads, edited.timeout) == ("gthread", 4, 120)
    assert (edited.address, edited.workers) == ([("127.0.0.1", 9100)], 3)


def test_a_lock_wait_ends_well_before_a_worker_is_timed_out() -> None:
    from portal.config import BY_KEY
    from portal.server import gunicorn_server

    assert BY_KEY["LOCK_WAIT_SECONDS"].default * 2 <= gunicorn_server(None, None, None).cfg.timeout
