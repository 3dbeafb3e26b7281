"""Administration pages: the dashboard for the current term and for all terms.

The dashboard's grade distribution counts the final grades of every enrolled registration in
the term (or in all terms); the covering index ix_registrations_section_status_grade answers it
from the index alone. Its attendance rates count records per lab session and status from the
covering index ix_attendance_records_lab_session_status. PAGES is also used by
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
