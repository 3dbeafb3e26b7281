"""Campus users for the load benchmark (bench_load.py), run by locust against nginx.

Students (most users) log in, browse and search the catalogue (pages and API), look at their
registrations and grades, and now and then register for a section of the current term and drop
it again (API, with the session's CSRF token). Instructors open their gradebook (page and API)
and save a mark. A few admins open the dashboard and the user list. Everyone thinks about
LOAD_THINK_SECONDS (default 30) between actions.

Business refusals (a full section, a time clash: 409) are answers, not errors; anything else that
is not 2xx/3xx, or a time-out, counts as an error. Accounts come from the large demo data:
student00001..., instructor0001..., admin; password demo-pass.
"""

from __future__ import annotations

import itertools
import os
import random
import re

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser

THINK = float(os.environ.get("LOAD_THINK_SECONDS", "30"))
STUDENTS = int(os.environ.get("LOAD_STUDENTS", "20000"))
INSTRUCTORS = int(os.environ.get("LOAD_INSTRUCTORS", "400"))
TERM = os.environ.get("LOAD_TERM", "")
PASSWORD = os.environ.get("LOAD_PASSWORD", "demo-pass")
CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
GRADEBOOK = re.compile(r"/sections/([0-9a-f-]{36})/gradebook")
WORDS = ["intro", "advanced", "lab", "theory", "systems", "history", "data", "101", "2", "methods"]

_students = itertools.count(1)
_instructors = itertools.count(1)


class PortalUser(FastHttpUser):
    abstract = True
    wait_time = between(THINK * 0.5, THINK * 1.5)
    connection_timeout = 60.0
    network_timeout = 60.0
    csrf = ""

    def log_in(self, username: str) -> bool:
        page = self.client.get("/login", name="log-in page")
        match = CSRF.search(page.text or "")
        if not match:
            return False
        with self.client.post(
            "/login",
            data={"csrf_token": match.group(1), "username": username, "password": PASSWORD},
            headers={"Referer": f"{self.host}/login"},
            allow_redirects=False,
            name="log in",
            catch_response=True,
        ) as answer:
            if answer.status_code != 302:
                answer.failure(f"log-in answered {answer.status_code}")
                return False
            answer.success()
        home = self.client.get("/", name="home")
        match = CSRF.search(home.text or "")
        self.csrf = match.group(1) if match else ""
        return True

    def api_write(self, method: str, path: str, name: str, **kwargs):  # type: ignore[no-untyped-def]
        headers = {"X-CSRFToken": self.csrf, "Referer": f"{self.host}/"}
        with self.client.request(
            method, path, headers=headers, name=name, catch_response=True, **kwargs
        ) as answer:
            if answer.status_code in (200, 201, 409, 422):
                answer.success()  # a rule said no: an answer, not an error
            else:
                answer.failure(f"{answer.status_code}")
            return answer


class Student(PortalUser):
    weight = 90

    def on_start(self) -> None:
        self.username = f"student{(next(_students) - 1) % STUDENTS + 1:05d}"
        self.log_in(self.username)
        self.registration: str | None = None

    @task(4)
    def catalogue_page(self) -> None:
        self.client.get(f"/courses?q={random.choice(WORDS)}&term={TERM}", name="catalogue page")

    @task(3)
    def catalogue_api(self) -> None:
        self.client.get(
            f"/api/v1/courses?q={random.choice(WORDS)}&term={TERM}&per_page=10",
            name="API catalogue search",
        )

    @task(3)
    def registrations(self) -> None:
        self.client.get("/registrations", name="my registrations page")

    @task(2)
    def grades(self) -> None:
        if random.random() < 0.5:
            self.client.get("/grades", name="my grades page")
        else:
            self.client.get("/api/v1/me/grades", name="API my grades")

    @task(1)
    def register_or_drop(self) -> None:
        if self.registration:
            self.api_write(
                "DELETE", f"/api/v1/me/registrations/{self.registration}", name="API drop"
            )
            self.registration = None
            return
        found = self.client.get(
            f"/api/v1/courses?q={random.choice(WORDS)}&term={TERM}&per_page=5",
            name="API catalogue search",
        )
        try:
            sections = [s["id"] for c in found.json()["items"] for s in c["sections"]]
        except (ValueError, KeyError, TypeError):
            return
        if not sections:
            return
        answer = self.api_write(
            "POST",
            "/api/v1/me/registrations",
            name="API register",
            json={"section_id": random.choice(sections)},
        )
        if answer.status_code == 201:
            self.registration = answer.json()["id"]


class Instructor(PortalUser):
    weight = 8

    def on_start(self) -> None:
        self.username = f"instructor{(next(_instructors) - 1) % INSTRUCTORS + 1:04d}"
        self.sections: list[str] = []
        if self.log_in(self.username):
            home = self.client.get("/", name="home")
            self.sections = sorted(set(GRADEBOOK.findall(home.text or "")))

    @task(3)
    def gradebook_page(self) -> None:
        if self.sections:
            section = random.choice(self.sections)
            self.client.get(f"/sections/{section}/gradebook", name="gradebook page")

    @task(2)
    def gradebook_api_and_mark(self) -> None:
        if not self.sections:
            return
        section = random.choice(self.sections)
        book = self.client.get(f"/api/v1/sections/{section}/gradebook", name="API gradebook")
        try:
            data = book.json()
            assessment = random.choice(data["assessments"])
            row = random.choice(data["rows"])
        except (ValueError, KeyError, IndexError, TypeError):
            return
        points = round(random.uniform(0, assessment["max_points"]), 1)
        self.api_write(
            "PUT",
            f"/api/v1/assessments/{assessment['id']}/marks/{row['student']['id']}",
            name="API save mark",
            json={"points": points},
        )


class Admin(PortalUser):
    weight = 2

    def on_start(self) -> None:
        self.log_in("admin")

    @task(2)
    def dashboard(self) -> None:
        self.client.get("/admin/", name="admin dashboard")

    @task(1)
    def users(self) -> None:
        self.client.get(
            f"/admin/users/?q={random.choice(['stu', 'ins', 'lab'])}", name="admin users"
        )
