"""The request-cost benchmark's mix is the locust mix, and its capacity arithmetic."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.benchmarks.bench_request_cost import FLOOR, LOGIN_REQUESTS, MIX, capacity, goals

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def _locust_weights() -> dict[str, tuple[int, dict[str, int]]]:
    """{user class: (its weight, {task method: its @task weight})}, read from locustfile.py
    (importing it would start gevent's monkey-patching)."""
    found: dict[str, tuple[int, dict[str, int]]] = {}
    for node in ast.parse(LOCUSTFILE.read_text()).body:
        if not isinstance(node, ast.ClassDef):
            continue
        weight = 0
        tasks: dict[str, int] = {}
        for item in node.body:
            if isinstance(item, ast.Assign) and getattr(item.targets[0], "id", "") == "weight":
                weight = ast.literal_eval(item.value)
            if isinstance(item, ast.FunctionDef):
                for decorator in item.decorator_list:
                    if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", "") == (
                        "task"
                    ):
                        tasks[item.name] = ast.literal_eval(decorator.args[0])
        if weight:
            found[node.name] = (weight, tasks)
    return found


def test_the_mix_follows_the_locust_users_and_task_weights():
    users = _locust_weights()
    assert set(users) == {"Student", "Instructor", "Admin"}
    total_users = sum(weight for weight, _ in users.values())

    def share(user: str, task: str, fraction: float = 1.0) -> float:
        weight, tasks = users[user]
        return weight / total_users * tasks[task] / sum(tasks.values()) * fraction

    assert MIX["catalogue page"] == pytest.approx(share("Student", "catalogue_page"))
    assert MIX["my registrations page"] == pytest.approx(share("Student", "registrations"))
    assert MIX["my grades page"] == pytest.approx(share("Student", "grades", 0.5))
    assert MIX["API my grades"] == pytest.approx(share("Student", "grades", 0.5))
    # Register-or-drop alternates: half its turns search and register, half drop.
    assert MIX["API catalogue search"] == pytest.approx(
        share("Student", "catalogue_api") + share("Student", "register_or_drop", 0.5)
    )
    assert MIX["API register"] == pytest.approx(share("Student", "register_or_drop", 0.5))
    assert MIX["API drop"] == pytest.approx(share("Student", "register_or_drop", 0.5))
    assert MIX["gradebook page"] == pytest.approx(share("Instructor", "gradebook_page"))
    assert MIX["API gradebook"] == pytest.approx(share("Instructor", "gradebook_api_and_mark"))
    assert MIX["API save mark"] == pytest.approx(share("Instructor", "gradebook_api_and_mark"))
    assert MIX["admin dashboard"] == pytest.approx(share("Admin", "dashboard"))
    assert MIX["admin users"] == pytest.approx(share("Admin", "users"))


def test_capacity_from_the_cost_per_request():
    rows = {name: {"cpu_mean_ms": 10.0} for name in MIX}
    rows.update({name: {"cpu_mean_ms": 20.0} for name in LOGIN_REQUESTS})
    figures = capacity(rows)
    # 5,000 users acting every 30 s, ~1.07 requests per action, 10 ms each.
    assert figures["requests_per_second"] == pytest.approx(5000 / 30 * sum(MIX.values()))
    assert figures["cores_steady"] == pytest.approx(figures["requests_per_second"] / 100)
    assert figures["login_ms"] == 60.0
    assert figures["cores_with_logins"] == pytest.approx(figures["cores_steady"] + 8.3 * 0.06)


def test_each_goal_of_the_budget_is_reported_met_or_not():
    rows = {name: {"cpu_mean_ms": 4.0, "postgres_ms": 1.0} for name in MIX}
    rows["API register"] = {"cpu_mean_ms": 12.0, "postgres_ms": 3.0}  # one type over 10 ms
    rows[FLOOR] = {"cpu_mean_ms": 1.2, "postgres_ms": 0.2}
    rows.update({name: {"cpu_mean_ms": 12.0, "postgres_ms": 1.0} for name in LOGIN_REQUESTS})
    lines = goals(rows)
    assert len(lines) == 5
    mix, postgres, each, floor, login = lines
    assert mix.startswith("Goal: the mix's app CPU per request ≤ 5 ms: 4.3 ms") and mix.endswith(
        ", met."
    )
    assert postgres.endswith(", met.") and "≤ 2 ms: 1.1 ms" in postgres
    assert "(the costliest: API register) ≤ 10 ms: 12.0 ms, NOT MET." in each
    assert floor.endswith("≤ 1.5 ms: 1.2 ms, met.")
    assert login.endswith("≤ 35 ms: 36.0 ms, NOT MET.")
