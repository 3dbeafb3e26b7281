"""The deployment files in installers/server say the same as the code and the tests: the same
commands, settings that exist, one gunicorn configuration. (The container files cannot be run
here; this keeps them in step with what runs on a host.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

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
