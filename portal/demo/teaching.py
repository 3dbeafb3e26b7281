"""Demo teaching data: assessments, marks, final grades, lab sessions, attendance and lab reports.

Built from the rows that `portal.demo.services.generate` made (plain dicts), with the same
random generator, so the whole demo stays deterministic for a seed. Sections of the previous
term are marked and finalised (all but one of the demo instructor's, left for trying
"Finalise grades"); sections of the current term have their first labs marked, attendance taken
in the weeks gone by, and lab reports handed in (a few late). Large demo data gets this for
one section in `every`, which keeps its build near a minute.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from portal.grading.calculation import WeightedItem, course_percentage
from portal.grading.scale import STANDARD_SCALE, letter_for
from portal.models import (
    Assessment,
    AttendanceRecord,
    GradeFinalisation,
    LabSession,
    Mark,
    StoredFile,
    Submission,
)
from portal.submissions import storage

# (name, kind, weight %, maximum points, due: days after the term starts; None: its last day)
ASSESSMENTS = (
    ("Lab 1", "lab", 15.0, 20.0, 7),
    ("Lab 2", "lab", 15.0, 20.0, 21),
    ("Assignment 1", "assignment", 20.0, 50.0, 35),
    ("Final exam", "exam", 50.0, 100.0, None),
)
SUBMITTED_KINDS = ("lab", "assignment")
LAB_SESSIONS_PER_TERM = 8
LAB_START, LAB_END = time(14, 0), time(16, 0)
ATTENDANCE_WEIGHTS = (("present", 82), ("late", 8), ("absent", 7), ("excused", 3))
LATE_SHARE = 0.06
REPORT_TEXTS = (
    "# Lab report\n\nAim, method, results and a short discussion of the measurement errors.\n",
    "# Lab report\n\nWe repeated the experiment three times; the table lists the mean values.\n",
    "# Report\n\nThe results agree with the expected values within the uncertainty.\n",
    "Lab report\n\nMethod: as in the handout. Results: see the attached table. Discussion: ...\n",
    "# Assignment\n\nAnswers to questions 1 to 5, with the working shown for each.\n",
    "# Notes and results\n\nOur group's measurements and the plots described in words.\n",
)


@dataclass
class TeachingRows:
    assessments: list[dict[str, Any]] = field(default_factory=list)
    marks: list[dict[str, Any]] = field(default_factory=list)
    finalisations: list[dict[str, Any]] = field(default_factory=list)
    lab_sessions: list[dict[str, Any]] = field(default_factory=list)
    attendance: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    submissions: list[dict[str, Any]] = field(default_factory=list)


def _at(day: date, moment: time) -> datetime:
    return datetime.combine(day, moment, tzinfo=UTC)


def _score(rng: random.Random, ability: float, maximum: float) -> float:
    """Points near the student's ability, in half points."""
    share = min(max(rng.gauss(ability, 0.09), 0.0), 1.0)
    return round(share * maximum * 2) / 2


def build(
    rng: random.Random,
    new_id: Callable[[], uuid.UUID],
    *,
    today: date,
    terms: list[dict[str, Any]],
    sections: list[dict[str, Any]],
    enrolled: dict[uuid.UUID, list[uuid.UUID]],
    usernames: dict[uuid.UUID, str],
    every: int,
    keep_open: set[uuid.UUID],
    with_files: bool,
) -> tuple[TeachingRows, dict[tuple[uuid.UUID, uuid.UUID], str]]:
    """The teaching rows, and the final grade of each (student, section) that was finalised."""
    rows = TeachingRows()
    grades: dict[tuple[uuid.UUID, uuid.UUID], str] = {}
    term_by_id = {t["id"]: t for t in terms}
    abilities: dict[uuid.UUID, float] = {}
    now = _at(today, time(12, 0))
    file_hashes: list[tuple[str, int]] = []
    for text in REPORT_TEXTS:
        data = text.encode()
        sha256 = hashlib.sha256(data).hexdigest()
        file_hashes.append((sha256, len(data)))
        file_row = {"id": new_id(), "sha256": sha256, "size": len(data)}
        if with_files:
            rows.files.append({**file_row, "content_type": "text/markdown"})

    for index, section in enumerate(sections):
        if index >= 6 and index % every:
            continue
        term = term_by_id[section["term_id"]]
        starts, ends = term["starts_on"], term["ends_on"]
        students = enrolled.get(section["id"], [])
        for student in students:
            abilities.setdefault(student, min(max(rng.gauss(0.76, 0.13), 0.3), 0.99))
        finalise = ends < today and section["id"] not in keep_open
        items: list[WeightedItem] = []
        points: dict[uuid.UUID, dict[uuid.UUID, float | None]] = {s: {} for s in students}
        for position, (name, kind, weight, maximum, due_days) in enumerate(ASSESSMENTS):
            due = _at(ends if due_days is None else starts + timedelta(days=due_days), time(17, 0))
            assessment_id = new_id()
            rows.assessments.append(
                {
                    "id": assessment_id,
                    "section_id": section["id"],
                    "name": name,
                    "kind": kind,
                    "weight": weight,
                    "max_points": maximum,
                    "due_at": due,
                    "position": position,
                }
            )
            items.append(WeightedItem(assessment_id, weight, maximum))
            slug = name.lower().replace(" ", "-")
            marked = due + timedelta(days=7) < now
            for student in students:
                handed_in = kind in SUBMITTED_KINDS and due < now and rng.random() < 0.93
                if handed_in:
                    late = rng.random() < LATE_SHARE
                    offset = timedelta(hours=rng.randint(1, 40))
                    sha256, size = file_hashes[rng.randrange(len(file_hashes))]
                if handed_in and with_files:
                    rows.submissions.append(
                        {
                            "id": new_id(),
                            "assessment_id": assessment_id,
                            "student_id": student,
                            "attempt": 1,
                            "file_sha256": sha256,
                            "original_name": f"{usernames[student]}-{slug}.md",
                            "size": size,
                            "content_type": "text/markdown",
                            "submitted_at": due + offset if late else due - offset,
                            "late": late,
                        }
                    )
                if not marked:
                    continue
                if kind in SUBMITTED_KINDS and not handed_in:
                    if not finalise:
                        continue  # nothing handed in yet: no mark
                    score = 0.0
                else:
                    score = _score(rng, abilities[student], maximum)
                points[student][assessment_id] = score
                rows.marks.append(
                    {
                        "id": new_id(),
                        "assessment_id": assessment_id,
                        "student_id": student,
                        "points": score,
                        "entered_by_id": section["lab_staff_id"]
                        if kind == "lab"
                        else section["instructor_id"],
                    }
                )
        if finalise:
            rows.finalisations.append(
                {
                    "id": new_id(),
                    "section_id": section["id"],
                    "finalised_by_id": section["instructor_id"],
                    "finalised_at": _at(ends + timedelta(days=3), time(10, 0)),
                    "grade_scale": [[letter, minimum] for letter, minimum in STANDARD_SCALE],
                }
            )
            for student in students:
                percentage = course_percentage(items, points[student]) or 0.0
                grades[(student, section["id"])] = letter_for(percentage)
        _lab_sessions(rng, new_id, rows, section, starts, ends, today, students, keep_open)
    return rows, grades


def _lab_sessions(
    rng: random.Random,
    new_id: Callable[[], uuid.UUID],
    rows: TeachingRows,
    section: dict[str, Any],
    starts: date,
    ends: date,
    today: date,
    students: list[uuid.UUID],
    keep_open: set[uuid.UUID],
) -> None:
    """Weekly lab sessions; attendance taken for those held, but the latest one of a demo
    section in the current term is left for the lab staff to take."""
    held: list[uuid.UUID] = []
    for week in range(LAB_SESSIONS_PER_TERM):
        day = starts + timedelta(days=2 + 7 * week)
        if day > ends:
            break
        session_id = new_id()
        rows.lab_sessions.append(
            {
                "id": session_id,
                "section_id": section["id"],
                "held_on": day,
                "starts_at": LAB_START,
                "ends_at": LAB_END,
                "room": section["room"],
            }
        )
        if day < today:
            held.append(session_id)
    if section["id"] in keep_open and ends >= today and held:
        held.pop()
    statuses = [status for status, _ in ATTENDANCE_WEIGHTS]
    weights = [weight for _, weight in ATTENDANCE_WEIGHTS]
    for session_id in held:
        for student in students:
            rows.attendance.append(
                {
                    "id": new_id(),
                    "lab_session_id": session_id,
                    "student_id": student,
                    "status": rng.choices(statuses, weights)[0],
                    "recorded_by_id": section["lab_staff_id"],
                }
            )


def write(db: Session, rows: TeachingRows, upload_dir: Path | None) -> dict[str, int]:
    """Insert the rows in batches, and put the report files in the content-addressed store."""
    if upload_dir is not None and rows.files:
        for text in REPORT_TEXTS:
            data = text.encode()
            target = storage.blob_path(upload_dir, hashlib.sha256(data).hexdigest())
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
    for model, batch in (
        (Assessment, rows.assessments),
        (Mark, rows.marks),
        (GradeFinalisation, rows.finalisations),
        (LabSession, rows.lab_sessions),
        (AttendanceRecord, rows.attendance),
        (StoredFile, rows.files),
        (Submission, rows.submissions),
    ):
        for start in range(0, len(batch), 10_000):
            db.execute(insert(model), batch[start : start + 10_000])
    return {
        "assessments": len(rows.assessments),
        "marks": len(rows.marks),
        "finalised sections": len(rows.finalisations),
        "lab sessions": len(rows.lab_sessions),
        "attendance records": len(rows.attendance),
        "submissions": len(rows.submissions),
    }
