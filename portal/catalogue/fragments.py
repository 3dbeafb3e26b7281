"""The catalogue's result list, rendered once per course and kept between requests.

A quarter of the central server's requests are catalogue searches, and rendering each course
with its sections (links, terms, meeting times) was a third of the page's work, though a term's
sections change a few times a term. So each course's entry is kept as rendered, keyed by
everything it shows: the course's code, title, department and credits, each section's id,
number, term and meetings, and the request's language, time zone and URL root. A change to any
of them makes a new key, so an entry is never shown after what it shows has changed, on every
process and host, with nothing to invalidate. The seat counts change with every registration:
they are not in the entry but put into it on every request, from the four numbers read fresh
(each badge, a pure function of those numbers and the language, is itself kept: forty badges
with two formatted numbers each were a sixth of the page's work).

The cache is per process and bounded: when full it starts again (a new term's searches).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Hashable, Sequence
from typing import Any

from flask import get_template_attribute, render_template, request
from flask_babel import get_locale, get_timezone
from markupsafe import Markup

from portal.catalogue.summaries import SectionSummary

MAX_ENTRIES = 5000  # about 2 KB each: a campus catalogue, in a few megabytes per process
# Where a seat count goes; unguessable, so no text shown in an entry can contain it.
SEATS_MARK = f"\x00seats-{secrets.token_hex(8)}\x00"

_entries: dict[Hashable, tuple[str, ...]] = {}
_badges: dict[Hashable, str] = {}  # a seat-count badge by its numbers and the request's context
_lock = threading.Lock()


def _render(
    course: Any, sections: Sequence[SectionSummary], term_filtered: bool
) -> tuple[str, ...]:
    html = render_template(
        "catalogue/_entry.html",
        course=course,
        sections=sections,
        term_filtered=term_filtered,
        seats=lambda _section: Markup(SEATS_MARK),  # noqa: S704 (a constant of ours)
    )
    return tuple(html.split(SEATS_MARK))


def request_key() -> Hashable:
    """What an entry depends on besides its course: the language, time zone and URL root."""
    return (str(get_locale()), str(get_timezone()), request.script_root)


def entry_key(
    context: Hashable, course: Any, sections: Sequence[SectionSummary], term_filtered: bool
) -> Hashable:
    """Everything a course's entry shows, seat counts apart."""
    return (
        context,
        term_filtered,
        course.id,
        course.code,
        course.title,
        course.department,
        course.credits,
        tuple((s.id, s.number, s.term, tuple(s.meetings)) for s in sections),
    )


def course_entries(
    courses: Sequence[Any], sections: dict[Any, list[SectionSummary]], term_filtered: bool
) -> Markup:
    """The result list's entries of `courses` (with `sections` by course id), each with its
    sections' seats as they are now."""
    context = request_key()
    seats = get_template_attribute("macros.html", "seats")
    pieces: list[str] = []
    for course in courses:
        listed = sections.get(course.id, [])
        key = entry_key(context, course, listed, term_filtered)
        parts = _entries.get(key)
        if parts is None:
            parts = _render(course, listed, term_filtered)
            with _lock:
                if len(_entries) >= MAX_ENTRIES:
                    _entries.clear()  # a new term's catalogue: start again
                _entries[key] = parts
        pieces.append(parts[0])
        for section, after in zip(listed, parts[1:], strict=True):
            pieces.append(_seats_badge(seats, context, section))
            pieces.append(after)
    # Pieces of the autoescaped templates' output, joined as they were rendered.
    return Markup("".join(pieces))  # noqa: S704


def _seats_badge(seats: Any, context: Hashable, section: SectionSummary) -> str:
    """`macros.seats` of `section`: what it shows depends on these four numbers only."""
    key = (
        context,
        section.capacity,
        section.enrolled_count,
        section.waitlist_capacity,
        section.waitlist_count,
    )
    badge = _badges.get(key)
    if badge is None:
        badge = str(seats(section))
        with _lock:
            if len(_badges) >= MAX_ENTRIES:
                _badges.clear()
            _badges[key] = badge
    return badge


def clear() -> None:
    """Forget every kept entry and badge (the tests' way to start from nothing)."""
    with _lock:
        _entries.clear()
        _badges.clear()
