"""Administration pages: the dashboard for the current term and for all terms.

The dashboard's grade distribution and attendance rates, for the term or for all terms, are
read from counts that database triggers keep (section_grade_counts, one row per section and
final grade; lab_session_attendance_counts, one row per lab session). PAGES is also used by
tests/benchmarks/test_query_counts.py (same query count with more data); each page's p95 is a
goal (under 50 ms) on every database.
"""

from __future__ import annotations

from typing import Any

from tests.benchmarks.harness import Page

TITLE = "Administration pages"

PAGES = [
    Page("Admin dashboard, current term", "admin", lambda db: "/admin/"),
    Page("Admin dashboard, all terms", "admin", lambda db: "/admin/?term=all"),
]


def run(context: Any) -> list[dict[str, Any]]:
    return context.measure_pages(PAGES)
