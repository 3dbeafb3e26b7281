"""Two gunicorn instances behind Debian's nginx (configured from the deployment's own site file),
sharing PostgreSQL (through Debian's PgBouncer in transaction pooling, configured from the
deployment's pgbouncer.ini), Redis and the shared directory, with an RQ worker: one user's session
goes through both instances in turn, a CSV import is started on one and finished on the other,
and lab reports of real size are uploaded (and refused over the limits) through nginx."""

from __future__ import annotations

import contextlib
import html
import http.client
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import URL, make_url

from tests import factories, realfiles
from tests.server.cluster import insecure_context, running_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class Browser:
    """One person's browser: a cookie jar, HTTPS to nginx, and which instance answered."""

    base: str
    cookies: dict[str, str] = field(default_factory=dict)
    served_by: list[str] = field(default_factory=list)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> Answer:
        parts = urlsplit(self.base)
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port, context=insecure_context(), timeout=60
        )
        sent = {"Host": f"{parts.hostname}:{parts.port}", **(headers or {})}
        if method != "GET":  # as a browser does: CSRF over HTTPS also checks the referrer
            sent.setdefault("Referer", f"{self.base}{path}")
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            connection.request(method, path, body=body, headers=sent)
            raw = connection.getresponse()
            data = raw.read()
            for value in raw.headers.get_all("Set-Cookie") or []:
                jar: SimpleCookie = SimpleCookie()
                jar.load(value)
                for name, morsel in jar.items():
                    self.cookies[name] = morsel.value
            answer = Answer(raw.status, {k.lower(): v for k, v in raw.getheaders()}, data)
        finally:
            connection.close()
        if "x-upstream" in answer.headers:
            self.served_by.append(answer.headers["x-upstream"])
        return answer

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post_form(self, path: str, fields: dict[str, str]) -> Answer:
        return self.request(
            "POST",
            path,
            urlencode(fields).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )

    def post_file(
        self,
        path: str,
        fields: dict[str, str],
        name: str,
        content: bytes,
        field: str = "file",
        content_type: str = "text/csv",
    ) -> Answer:
        boundary = uuid.uuid4().hex
        chunks: list[bytes] = []
        for key, value in fields.items():
            head = f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
            chunks.append(f"{head}{value}\r\n".encode())
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n".encode()
            + content
            + b"\r\n"
        )
        chunks.append(f"--{boundary}--\r\n".encode())
        return self.request(
            "POST",
            path,
            b"".join(chunks),
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )

    def csrf(self, path: str) -> str:
        page = self.get(path)
        match = CSRF.search(page.text)
        assert match, f"no CSRF token on {path}: {page.status}"
        return match.group(1)


def _make_admin(database_url: str) -> str:
    """An administrator in the cluster's database, made with the portal's own models."""
    from sqlalchemy.orm import Session

    engine = create_engine(database_url)
    try:
        with Session(engine) as db:
            admin = factories.make_user(db, "admin")
            db.commit()
            return admin.username
    finally:
        engine.dispose()


def _make_lab(database_url: str) -> tuple[str, str]:
    """A student enrolled in a section with a lab assessment: (username, assessment id)."""
    from sqlalchemy.orm import Session

    engine = create_engine(database_url)
    try:
        with Session(engine) as db:
            staff = factories.make_user(db, "lab_staff")
            section = factories.make_section(db, lab_staff_id=staff.id)
            assessment = factories.make_assessment(db, section, kind="lab", name="Lab 3")
            student = factories.make_user(db, "student")
            factories.enrol(db, student, section)
            db.commit()
            return student.username, str(assessment.id)
    finally:
        engine.dispose()


def _lab_reports_through_nginx(cluster_url: str, database_url: str, files: Path) -> None:
    """A real 2 MB PDF is stored; a file a little over 20 MB is refused by the portal and one of
    30 MB by nginx, each with the portal's words for it (nginx's error_page 413)."""
    username, assessment_id = _make_lab(database_url)
    student = Browser(cluster_url)
    token = student.csrf("/login")
    logged_in = student.post_form(
        "/login", {"csrf_token": token, "username": username, "password": factories.PASSWORD}
    )
    assert logged_in.status == 302, logged_in.text[:500]
    path = f"/assessments/{assessment_id}/submissions"

    def upload(name: str, content: bytes) -> Answer:
        token = student.csrf("/lab-reports")
        return student.post_file(
            path, {"csrf_token": token}, name, content, "report", "application/pdf"
        )

    name, report = realfiles.make(files, "pdf", 2 * realfiles.MB, seed=3)
    stored = upload(name, report)
    assert stored.status == 303, stored.text[:500]
    page = html.unescape(student.get("/lab-reports").text)
    assert f"{name} uploaded for Lab 3" in page

    a_little_over = realfiles.random_pdf(20 * realfiles.MB + 300 * 1024)
    refused = upload("scan.pdf", a_little_over)
    assert refused.status == 303, refused.text[:500]
    page = html.unescape(student.get("/lab-reports").text)
    assert "“scan.pdf” is larger than the 20 MB limit for a file." in page

    far_over = realfiles.random_pdf(30 * realfiles.MB)
    refused = upload("video.pdf", far_over)
    assert refused.status == 413
    page = html.unescape(refused.text)
    assert "The file is larger than the 20 MB limit for a file. Make it smaller" in page
    assert "<h1" in page and "Lab reports" in page  # the portal's page, with its navigation
    assert "nginx" not in page
    # The API answers it as a problem (JSON), in the portal's words too.
    refused = student.request(
        "POST", "/api/v1/me/registrations", far_over, {"Content-Type": "application/json"}
    )
    assert refused.status == 413
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "larger than the 20 MB limit for a file" in refused.text
    # The page nginx fetched for it is not reachable from outside.
    assert student.get("/upload-too-large").status == 404


def _course_count(database_url: str, prefix: str) -> int:
    from portal.models import Course

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    select(func.count()).select_from(Course).where(Course.code.like(f"{prefix}%"))
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _wait_for_job(browser: Browser, job_id: str, timeout: float = 120) -> str:
    """Poll the job's progress fragment (as the page does) until the job is no longer running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fragment = browser.get(f"/admin/imports/{job_id}/progress")
        assert fragment.status == 200
        if fragment.headers.get("hx-refresh") == "true":
            return browser.get(f"/admin/imports/{job_id}").text
        time.sleep(0.2)  # the page itself polls every second
    raise AssertionError(f"import {job_id} did not finish in {timeout} s")


def _pgbouncer_show(url: URL, what: str) -> dict[str, dict[str, str]]:
    """PgBouncer's admin console (`SHOW STATS`, `SHOW POOLS`), one dict per database."""
    answer = subprocess.run(
        ["psql", "-h", str(url.host), "-p", str(url.port), "-U", str(url.username), "-d",
         "pgbouncer", "-A", "-F", "\t", "-c", f"SHOW {what}"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    header, *rows = answer.stdout.splitlines()
    names = header.split("\t")
    table = [dict(zip(names, row.split("\t"), strict=True)) for row in rows if "\t" in row]
    return {row["database"]: row for row in table}


def test_one_session_and_one_import_across_two_instances(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    with running_cluster(tmp_path, postgres_url, redis_url, pooled=True) as cluster:
        admin = _make_admin(postgres_url)
        browser = Browser(cluster.url)

        # Log in: the form comes from one instance, the post goes to the other.
        token = browser.csrf("/login")
        logged_in = browser.post_form(
            "/login", {"csrf_token": token, "username": admin, "password": factories.PASSWORD}
        )
        assert logged_in.status == 302, logged_in.text[:500]
        assert len(set(browser.served_by[-2:])) == 2, browser.served_by

        # The same session is recognised by both instances, request after request.
        for _ in range(4):
            page = browser.get("/admin/users/")
            assert page.status == 200
            assert admin in page.text
        assert set(browser.served_by[-4:]) == set(cluster.upstreams)

        # nginx's request id reaches the portal and comes back.
        answer = browser.get("/api/v1/me")
        assert answer.status == 200 and '"authenticated_by":"session"' in answer.text
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"])

        # A CSV import: uploaded (and checked by the worker) via one instance...
        prefix = f"N{uuid.uuid4().hex[:6].upper()}"
        csv = "code,title,credits,department\n" + "".join(
            f"{prefix}{n},Networks {n},3,Engineering\n" for n in range(30)
        )
        token = browser.csrf("/admin/imports")
        uploaded = browser.post_file(
            "/admin/imports",
            {"csrf_token": token, "kind": "courses"},
            "courses.csv",
            csv.encode(),
        )
        assert uploaded.status == 302, uploaded.text[:500]
        upload_instance = browser.served_by[-1]
        job_id = uploaded.headers["location"].rstrip("/").rsplit("/", 1)[1]
        report = _wait_for_job(browser, job_id)
        assert "30" in report and _course_count(postgres_url, prefix) == 0  # a dry run

        # ...and imported via the other one.
        token = browser.csrf(f"/admin/imports/{job_id}")
        if browser.served_by[-1] != upload_instance:
            browser.get("/api/v1/me")  # nginx takes turns: make the next one the other instance
        assert browser.served_by[-1] == upload_instance
        started = browser.post_form(f"/admin/imports/{job_id}/run", {"csrf_token": token})
        assert started.status == 302
        assert browser.served_by[-1] != upload_instance
        done = _wait_for_job(browser, job_id)
        assert _course_count(postgres_url, prefix) == 30
        assert "imported" in done.lower()

        # The worker did the work, not the web instances.
        worker_log = cluster.log("worker")
        assert "portal.admin.tasks.run_import" in worker_log, worker_log[-2000:]

        # Lab reports through nginx, of real size and over the limits.
        _lab_reports_through_nginx(cluster.url, postgres_url, tmp_path / "files")

        # Readiness through nginx; metrics only from addresses IT allows (here: loopback).
        ready = browser.get("/readyz")
        assert ready.status == 200
        assert '"redis_job_queue"' in ready.text and '"redis_rate_limits"' in ready.text
        metrics = browser.get("/metrics")
        assert metrics.status == 200
        assert "portal_http_requests_total" in metrics.text

        # Metrics add up over an instance's gunicorn workers (multiprocess mode): 30 requests on
        # 30 connections, spread over its 2 workers, are all counted.
        instance = cluster.upstreams[0]
        for _ in range(30):
            with contextlib.suppress(urllib.error.HTTPError):
                urllib.request.urlopen(f"http://{instance}/api/v1/terms", timeout=30).close()
        with urllib.request.urlopen(f"http://{instance}/metrics", timeout=30) as answer:
            exposition = answer.read().decode()
        line = (
            'portal_http_requests_total{endpoint="api_catalogue.terms",method="GET",status="401"}'
        )
        assert f"{line} 30.0" in exposition, [x for x in exposition.splitlines() if "terms" in x]
        writers = {path.name.rsplit("_", 1)[-1] for path in (tmp_path / "metrics-0").glob("*.db")}
        assert len(writers) >= 2, f"one process wrote metrics: {sorted(writers)}"

        # Every instance and the worker reached PostgreSQL through PgBouncer, many transactions
        # over few server connections, and none failed on a prepared statement.
        pooled = make_url(cluster.env["PORTAL_DATABASE_URL"])
        assert pooled.port != make_url(postgres_url).port
        stats = _pgbouncer_show(pooled, "STATS")
        assert int(stats[pooled.database]["total_xact_count"]) > 20, stats
        for name, _ in cluster.processes:
            if name != "nginx":
                assert "prepared statement" not in cluster.log(name), cluster.log(name)[-2000:]

    with create_engine(postgres_url).connect() as connection:  # the cluster left the data intact
        assert connection.execute(text("SELECT count(*) FROM users")).scalar_one() >= 1
