"""A central server as IT deploys it, on loopback: N gunicorn instances (`campus-portal-server
serve` with installers/server/gunicorn.conf.py), an RQ worker (`campus-portal-server worker`),
and Debian's nginx in front, configured from installers/server/nginx-campus-portal.conf itself
(ports, certificate and upstream lines replaced). They share PostgreSQL, Redis and the shared
directory. Used by tests/server/test_two_instances.py and the load benchmark.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
SITE_FILE = ROOT / "installers/server/nginx-campus-portal.conf"
GUNICORN_CONF = ROOT / "installers/server/gunicorn.conf.py"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
PGBOUNCER_INI = ROOT / "installers/server/pgbouncer.ini"
SECRET_KEY = "cluster-test-secret-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "portal.server", *args]


def insecure_context() -> ssl.SSLContext:
    """The test's self-signed certificate: encryption without verification (loopback only)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "portal.pem", folder / "portal.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def nginx_config(
    folder: Path,
    *,
    https_port: int,
    http_port: int,
    upstreams: list[str],
    certificate: tuple[Path, Path],
    show_upstream: bool = True,
    worker_processes: int = 1,
) -> Path:
    """nginx.conf for this folder, whose http{} block includes the deployment's site file with
    only what differs on loopback replaced. `show_upstream` adds an X-Upstream response header
    (test only) naming the instance that answered. With one nginx worker process, the upstream
    round robin strictly takes turns (each process keeps its own turn)."""
    site = SITE_FILE.read_text()
    servers = "".join(f"    server {address};\n" for address in upstreams)
    site, count = re.subn(r"    server 127\.0\.0\.1:8000;\n", servers, site)
    assert count == 1, "the upstream line of the site file changed: update tests/server/cluster.py"
    replacements = {
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "/etc/ssl/certs/portal.campus.example.edu.pem": str(certificate[0]),
        "/etc/ssl/private/portal.campus.example.edu.key": str(certificate[1]),
        "/var/log/nginx/campus-portal.access.log": str(folder / "access.log"),
    }
    for old, new in replacements.items():
        assert old in site, f"{old!r} is no longer in the site file: update tests/server/cluster.py"
        site = site.replace(old, new)
    if show_upstream:
        site = site.replace(
            "    location / {\n",
            "    location / {\n        add_header X-Upstream $upstream_addr always;\n",
        )
    (folder / "site.conf").write_text(site)
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / name).mkdir(exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = f"""{user}daemon off;
worker_processes {worker_processes};
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    include /etc/nginx/mime.types;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/site.conf;
}}
"""
    path = folder / "nginx.conf"
    path.write_text(main)
    return path


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    context = insecure_context() if url.startswith("https") else None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args} exited {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5, context=context):
                return
        except urllib.error.HTTPError:
            return  # it answers (e.g. 503 while not ready): the port is open
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)  # polling for the port to open, not waiting a fixed time
    raise AssertionError(f"{url} did not answer in {timeout} s:\n{log.read_text()}")


def pgbouncer_config(folder: Path, database_url: str, port: int) -> Path:
    """pgbouncer.ini for this folder: the deployment's own file (installers/server/pgbouncer.ini)
    with only the database line, the listening address and the files replaced."""
    url = make_url(database_url)
    ini = PGBOUNCER_INI.read_text()
    replacements = {
        "campus_portal = host=db.campus.example.edu port=5432 dbname=campus_portal": (
            f"{url.database} = host={url.host} port={url.port or 5432} dbname={url.database}"
            f" user={url.username}"
        ),
        "listen_addr = 10.0.5.20": "listen_addr = 127.0.0.1",
        "listen_port = 6432": f"listen_port = {port}",
        "auth_type = scram-sha-256": "auth_type = any",
        "auth_file = /etc/pgbouncer/userlist.txt\n": "",
        "logfile = /var/log/postgresql/pgbouncer.log": f"logfile = {folder / 'pgbouncer.log'}",
        "pidfile = /var/run/postgresql/pgbouncer.pid": f"pidfile = {folder / 'pgbouncer.pid'}",
        "unix_socket_dir = /var/run/postgresql": "unix_socket_dir =",
    }
    for old, new in replacements.items():
        assert old in ini, f"{old!r} is no longer in pgbouncer.ini: update tests/server/cluster.py"
        ini = ini.replace(old, new)
    path = folder / "pgbouncer.ini"
    path.write_text(ini)
    return path


@contextlib.contextmanager
def running_pgbouncer(folder: Path, database_url: str) -> Iterator[str]:
    """Debian's PgBouncer in transaction pooling in front of `database_url`; yields the URL that
    goes through it."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = pgbouncer_config(folder, database_url, port)
    command = [PGBOUNCER, str(config)]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        shutil.chown(folder, "nobody")
        for path in folder.iterdir():
            shutil.chown(path, "nobody")
        folder.chmod(0o755)
        for parent in folder.parents:  # pytest's folders are private to their owner
            if parent == Path(tempfile.gettempdir()) or parent == parent.parent:
                break
            parent.chmod(parent.stat().st_mode | 0o005)
        command[1:1] = ["-u", "nobody"]
    process = _start("pgbouncer-process", command, dict(os.environ), folder)
    url = make_url(database_url).set(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            log = folder / "pgbouncer.log"
            raise AssertionError(
                f"pgbouncer exited {process.returncode}:\n"
                + (folder / "pgbouncer-process.log").read_text()
                + (log.read_text() if log.exists() else "")
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError("pgbouncer did not open its port in 30 s") from None
            time.sleep(0.05)  # polling for the port to open, not waiting a fixed time
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        _stop(process)


CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass
class CpuLimit:
    """A CPU quota for the app instances (cgroup v1 `cpu` and `cpuacct` controllers, root only):
    `cores` of CPU time per wall second, shared by each instance's master and workers."""

    cores: float
    name: str = field(default_factory=lambda: f"campus-portal-{os.getpid()}-{time.time_ns()}")

    @staticmethod
    def available() -> str | None:
        """None where a quota can be set, else why not."""
        if os.geteuid() != 0:
            return "setting a CPU quota needs root"
        for controller in ("cpu", "cpuacct"):
            if not (CGROUP_ROOT / controller / "cgroup.procs").exists():
                return f"no cgroup v1 `{controller}` controller at {CGROUP_ROOT / controller}"
        return None

    def folder(self, controller: str) -> Path:
        return CGROUP_ROOT / controller / self.name

    def create(self) -> None:
        for controller in ("cpu", "cpuacct"):
            self.folder(controller).mkdir()
        period = int((self.folder("cpu") / "cpu.cfs_period_us").read_text())
        (self.folder("cpu") / "cpu.cfs_quota_us").write_text(str(int(period * self.cores)))

    def wrap(self, command: list[str]) -> list[str]:
        """`command`, started inside the group (so every process it forks is in it too)."""
        join = " && ".join(
            f'echo $$ > "{self.folder(controller) / "cgroup.procs"}"'
            for controller in ("cpu", "cpuacct")
        )
        return ["sh", "-c", f'{join} && exec "$@"', "sh", *command]

    def cpu_seconds(self) -> float:
        """CPU time used by the group's processes so far."""
        return int((self.folder("cpuacct") / "cpuacct.usage").read_text()) / 1e9

    def remove(self) -> None:
        for controller in ("cpu", "cpuacct"):
            with contextlib.suppress(FileNotFoundError):
                self.folder(controller).rmdir()


@dataclass
class Cluster:
    url: str  # nginx, https
    upstreams: list[str]
    env: dict[str, str]
    folder: Path
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")


def _start(
    name: str, command: list[str], env: dict[str, str], folder: Path
) -> subprocess.Popen[bytes]:
    log = (folder / f"{name}.log").open("wb")
    return subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)  # graceful: gunicorn, the RQ worker and nginx
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def running_cluster(
    folder: Path,
    database_url: str,
    redis_url: str,
    *,
    instances: int = 2,
    workers: int = 2,
    threads: int = 4,
    job_worker: bool = True,
    extra_env: dict[str, str] | None = None,
    nginx_workers: int = 1,
    pooled: bool = False,
    cpu_limit: CpuLimit | None = None,
) -> Iterator[Cluster]:
    """Migrate the database, then start the instances, the job worker and nginx; stop all after.
    `pooled`: the instances and the worker reach PostgreSQL through PgBouncer in transaction
    pooling (as a deployment of several hosts does), with prepared statements off. `cpu_limit`:
    the app instances (not the worker, nginx or the databases) run under that CPU quota."""
    shared = folder / "shared"
    shared.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        PORTAL_MODE="server",
        PORTAL_DATABASE_URL=database_url,
        PORTAL_SECRET_KEY=SECRET_KEY,
        PORTAL_RATELIMIT_STORAGE_URI=redis_url,
        PORTAL_JOB_QUEUE_URL=redis_url,
        PORTAL_SHARED_DIR=str(shared),
        PORTAL_TRUSTED_PROXIES="1",
        PORTAL_LOG_LEVEL="WARNING",
        PORTAL_THREADS=str(threads),
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each instance prepares its own
    env.update(extra_env or {})
    migrated = subprocess.run(
        server_command("migrate"), env=env, capture_output=True, text=True, timeout=300
    )
    assert migrated.returncode == 0, migrated.stderr
    with contextlib.ExitStack() as stack:  # PgBouncer and the CPU quota, closed last
        if cpu_limit is not None:
            cpu_limit.create()
            stack.callback(cpu_limit.remove)
        if pooled:
            pooled_url = stack.enter_context(running_pgbouncer(folder / "pgbouncer", database_url))
            env.update(PORTAL_DATABASE_URL=pooled_url, PORTAL_DATABASE_PREPARED_STATEMENTS="false")
        ports = [free_port() for _ in range(instances)]
        upstreams = [f"127.0.0.1:{port}" for port in ports]
        https_port, http_port = free_port(), free_port()
        cluster = Cluster(f"https://127.0.0.1:{https_port}", upstreams, env, folder)
        try:
            for index, port in enumerate(ports):
                instance_env = {
                    **env,
                    "PROMETHEUS_MULTIPROC_DIR": str(folder / f"metrics-{index}"),
                }
                command = server_command(
                    "serve",
                    "--config",
                    str(GUNICORN_CONF),
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    str(workers),
                )
                if cpu_limit is not None:
                    command = cpu_limit.wrap(command)
                cluster.processes.append(
                    (
                        f"gunicorn-{index}",
                        _start(f"gunicorn-{index}", command, instance_env, folder),
                    )
                )
            if job_worker:
                cluster.processes.append(
                    ("worker", _start("worker", server_command("worker"), env, folder))
                )
            for (name, process), port in zip(cluster.processes, ports, strict=False):
                wait_for(f"http://127.0.0.1:{port}/healthz", process, folder / f"{name}.log")
            config = nginx_config(
                folder,
                https_port=https_port,
                http_port=http_port,
                upstreams=upstreams,
                certificate=self_signed_certificate(folder),
                worker_processes=nginx_workers,
            )
            checked = subprocess.run(
                [NGINX, "-t", "-c", str(config)], capture_output=True, text=True, timeout=30
            )
            assert checked.returncode == 0, checked.stderr
            nginx = _start("nginx", [NGINX, "-c", str(config)], env, folder)
            cluster.processes.append(("nginx", nginx))
            wait_for(f"{cluster.url}/healthz", nginx, folder / "nginx.log")
            yield cluster
        finally:
            for _, process in reversed(cluster.processes):
                _stop(process)
