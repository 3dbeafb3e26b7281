"""Languages: a page in Arabic costs about what the same page costs in English.

The gradebook of a 300-student section (bench_teaching's, over a thousand formatted numbers and
percentages) and a student's grades, opened by the same person with English and then Arabic
chosen on their profile (the person's language, as the portal picks it). Rounds alternate the
two languages so that a change of the machine's load falls on both; the ratio is of the
medians of the rounds' p50. Goal: Arabic within 10% of English. The Arabic page goes through
the compiled catalogue (`make catalogues`), the right-to-left stylesheet and Babel's Arabic
formats; the catalogue and the formats are loaded once per process and cached.

    make bench BENCH_ARGS="--only languages --databases sqlite --sizes small"
"""

from __future__ import annotations

import statistics
from typing import Any

from sqlalchemy import update

from tests.benchmarks.bench_teaching import gradebook_path
from tests.benchmarks.harness import Page

TITLE = "Languages: the same page in Arabic and in English"
GOAL_RATIO = 1.10
ROUNDS = 4
PAGES = [
    Page("Gradebook, 300-student section", "instructor", gradebook_path),
    Page("My grades", "student", lambda db: "/grades"),
]


def _choose(served: Any, username: str, language: str | None) -> None:
    from portal.models import User

    with served.session() as db:
        db.execute(update(User).where(User.username == username).values(language=language))
        db.commit()


def run(context: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    requests = max(5, context.requests // ROUNDS)
    for database in context.databases:
        for size in context.sizes:
            served = context.portal(database, size)
            for page in PAGES:
                with served.session() as db:
                    path = page.path(db)
                client = served.client(page.username)
                p50: dict[str, list[float]] = {"en": [], "ar": []}
                p95: dict[str, list[float]] = {"en": [], "ar": []}
                try:
                    for _round in range(ROUNDS):
                        for language in ("en", "ar"):
                            _choose(served, page.username, language)
                            result = served.measure(client, path, requests)
                            p50[language].append(result.p50)
                            p95[language].append(result.p95)
                finally:
                    _choose(served, page.username, None)
                    client.close()
                english = statistics.median(p50["en"])
                arabic = statistics.median(p50["ar"])
                ratio = arabic / english if english else float("inf")
                verdict = context.goal(
                    f"{page.name} on {database}, {size} data: Arabic / English",
                    met=ratio <= GOAL_RATIO,
                    target=f"at most {GOAL_RATIO:.2f} (within 10%)",
                    measured=f"{ratio:.3f} ({arabic:.1f} ms / {english:.1f} ms p50)",
                )
                rows.append(
                    {
                        "Page": page.name,
                        "Database": database,
                        "Data": size,
                        "Requests per language": requests * ROUNDS,
                        "English p50 ms": english,
                        "Arabic p50 ms": arabic,
                        "English p95 ms": statistics.median(p95["en"]),
                        "Arabic p95 ms": statistics.median(p95["ar"]),
                        "Ratio (p50)": f"{ratio:.3f}",
                        "Within 10%": verdict,
                    }
                )
    return rows
