"""Evidence management: detach a photo from a case, split a case in two, merge two cases.

A false first photo poisons a case (a facade photo absorbs real finds within the duplicate radius),
and rejecting the case would throw the real evidence away. A person who verifies and files cases
(serve/cases/people.py `FILING_ROLES`) regroups the evidence instead. Each change is a flow-log
step of its own (`EvidenceStep`, the state stays) that names the photos, the other case and the
person's reason. No photo row and no file is ever deleted: a detached photo leaves only the case.
Evidence of a finished case (closed, cancelled, not filed) is its record and is not regrouped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlalchemy.orm import Session

from serve.cases.domain import Domain
from serve.cases.enums import Action, AiReview, EvidenceRole, EvidenceStep
from serve.cases.errors import InvalidInput, LastEvidence
from serve.cases.findings import lock_intake, next_case_number, placed_case_fields
from serve.cases.intake import in_jurisdiction
from serve.cases.orm import Case, Evidence, FlowEntry, Photo
from serve.cases.times import local_iso
from serve.cases.workflow import INITIAL_STATE, Command, check_evidence_open, next_state
from vision.core.imageio import Position

SAME_PLACE_DEG = 1e-7  # about 1 cm: the case stands where that photo was taken (the same float)
# The note of the `cancel` step that merging writes on the case merged away: written by
# `merged_note`, read back by `merged_into` (Open311 tells the citizen where the problem went)
_MERGED_NOTE = re.compile(r"merged into case (\S+) \(\d+ photo\(s\) moved there\): (.*)", re.DOTALL)


@dataclass(frozen=True)
class Step:
    """Who regroups, when, and why (the reason every flow-log entry of the change keeps)."""

    operator: str
    user_id: int | None
    at: datetime
    reason: str


def describe(evidence: Evidence, local_tz: tzinfo) -> str:
    """Enough to find the photo again once it left the case: ids, role, content and capture time
    (on the bureau's clock, as the API answers every time: the note is read as it is written)."""
    photo = f"photo {evidence.photo_id}, " if evidence.photo_id is not None else ""
    return (
        f"evidence {evidence.id} ({evidence.role}, {photo}sha256 {evidence.sha256[:12]}, "
        f"taken {local_iso(evidence.captured_at, local_tz)})"
    )


def _described(moving: Iterable[Evidence], local_tz: tzinfo) -> str:
    return "; ".join(describe(e, local_tz) for e in moving)


def _log(case: Case, kind: EvidenceStep, step: Step, note: str) -> None:
    entry = FlowEntry(
        action=kind.value,
        from_state=case.state,
        to_state=case.state,
        operator=step.operator,
        user_id=step.user_id,
        at=step.at,
        note=note[:4000],
    )
    case.flow.append(entry)


def _picked(case: Case, evidence_ids: list[int], field: str) -> list[Evidence]:
    """The named evidence rows of `case`; a case keeps at least one photo, and an after-photo that
    a handling step stood on stays with that step's case."""
    by_id = {e.id: e for e in case.evidence}
    wanted = list(dict.fromkeys(evidence_ids))
    if unknown := [i for i in wanted if i not in by_id]:
        raise InvalidInput(field, f"{', '.join(map(str, unknown))}: not evidence of case {case.number}")
    if used := [i for i in wanted if (by_id[i].extra or {}).get("handled_at")]:
        raise InvalidInput(
            field, f"after-photo {', '.join(map(str, used))} supported a handling step of case {case.number}"
        )
    if len(wanted) >= len(by_id):
        raise LastEvidence(case.number, wanted)
    return [by_id[i] for i in wanted]


def detach(session: Session, case: Case, evidence_id: int, step: Step, domain: Domain) -> None:
    """Take one photo off `case`: the evidence row goes, its photo row and file stay, and the flow
    log keeps what it was (ids, role, sha256, capture time, file) with the reason. A case placed by
    that photo moves to its earliest remaining located photo."""
    check_evidence_open(case)
    (evidence,) = _picked(case, [evidence_id], "evidence_id")
    moved_place = _replaced(session, case, [evidence], domain)
    described = describe(evidence, domain.rules.calendar.timezone)
    note = f"detached {described}, file {evidence.path}: {step.reason}{moved_place}"
    _log(case, EvidenceStep.DETACH, step, note)
    case.evidence.remove(evidence)
    session.delete(evidence)


def _located(session: Session, evidence: list[Evidence]) -> tuple[Evidence, float, float] | None:
    """The earliest photo among `evidence` whose photo row knows where it was taken (camera frames
    and photos added to a case by hand carry no position of their own)."""
    for row in sorted(evidence, key=lambda e: (e.captured_at, e.id)):
        photo = session.get(Photo, row.photo_id) if row.photo_id is not None else None
        if photo is not None and photo.lat is not None and photo.lon is not None:
            return row, photo.lat, photo.lon
    return None


PLACE_FIELDS = ("lat", "lon", "address", "grid_code", "street", "community")


def _replaced(session: Session, case: Case, leaving: list[Evidence], domain: Domain) -> str:
    """Where a photo that placed the case leaves it (a facade photo that opened a case of real finds),
    the case moves to where its earliest remaining located photo was taken, in the grid holding that
    place; the flow-log note says so. Otherwise the case stays put ("")."""
    placed = _located(session, leaving)
    if placed is None or max(abs(placed[1] - case.lat), abs(placed[2] - case.lon)) > SAME_PLACE_DEG:
        return ""
    staying = _located(session, [e for e in case.evidence if e not in leaving])
    if staying is None:
        return ""
    evidence, lat, lon = staying
    in_jurisdiction(Position(lat, lon), domain.rules)
    fields = placed_case_fields(case.event, lat, lon, domain.rules)
    for name in PLACE_FIELDS:
        setattr(case, name, fields[name])
    return (
        f"; the case now stands where evidence {evidence.id} was taken "
        f"({lat:.6f}, {lon:.6f}, grid {case.grid_code})"
    )


def split(session: Session, case: Case, evidence_ids: list[int], step: Step, domain: Domain) -> Case:
    """Move the named photos to a new case of the same event, placed where they were taken and in
    the grid that holds that place (the intake's rule). The new case waits for review (reported):
    whatever was decided about the old case was decided on other photos."""
    check_evidence_open(case)
    moving = _picked(case, evidence_ids, "evidence_ids")
    if after := [e.id for e in moving if e.role == EvidenceRole.AFTER]:
        raise InvalidInput(
            "evidence_ids",
            f"after-photo {', '.join(map(str, after))} belongs to the handling of case {case.number}",
        )
    rules = domain.rules
    located = _located(session, moving)
    lat, lon = (located[1], located[2]) if located is not None else (case.lat, case.lon)
    in_jurisdiction(Position(lat, lon), rules)
    seen = sorted(e.captured_at for e in moving)
    lock_intake(session)
    new = Case(
        number=next_case_number(session, seen[0].astimezone(rules.calendar.timezone).date(), rules.prefix),
        source=case.source,
        **placed_case_fields(case.event, lat, lon, rules),
        state=INITIAL_STATE,
        ai_review=AiReview.PENDING if case.ai_review is not None else None,
        camera_id=case.camera_id,
        filed_at=seen[0],
        first_seen_at=seen[0],
        last_seen_at=seen[-1],
    )
    session.add(new)
    moved = _described(moving, rules.calendar.timezone)
    for evidence in moving:
        evidence.case = new
    new.flow.append(
        FlowEntry(
            action=EvidenceStep.SPLIT.value,
            from_state=None,
            to_state=INITIAL_STATE,
            operator=step.operator,
            user_id=step.user_id,
            at=step.at,
            note=f"split from case {case.number}: {moved}: {step.reason}"[:4000],
        )
    )
    moved_place = _replaced(session, case, moving, domain)
    _log(case, EvidenceStep.SPLIT, step, f"split into case {new.number}: {moved}: {step.reason}{moved_place}")
    return new


def merged_note(number: str, moved: int, reason: str) -> str:
    return f"merged into case {number} ({moved} photo(s) moved there): {reason}"[:4000]


def merged_into(entry: FlowEntry) -> tuple[str, str] | None:
    """The case number and the person's reason of a `cancel` step that merging wrote, else None: a
    citizen following the merged case reads where the problem went, not the photo bookkeeping."""
    found = _MERGED_NOTE.fullmatch(entry.note or "") if entry.action == Action.CANCEL else None
    return (found[1], found[2]) if found else None


def merge(into: Case, other: Case, step: Step, domain: Domain) -> None:
    """Move every photo of `other` (same event) to `into` and cancel `other` as merged (作废, the
    workflow's own step, so it counts nowhere); both flow logs name the other case."""
    if other.id == into.id:
        raise InvalidInput("case_id", f"case {into.number} cannot be merged into itself")
    check_evidence_open(into)
    if other.event != into.event:
        raise InvalidInput(
            "case_id",
            f"case {other.number} is '{other.event}', case {into.number} '{into.event}': only cases of "
            "the same event merge (correct the event first)",
        )
    next_state(other.state, Action.CANCEL)  # refuses (409, allowed actions named) before anything moves
    moving = list(other.evidence)
    cancel = Command(
        action=Action.CANCEL,
        operator=step.operator,
        user_id=step.user_id,
        at=step.at,
        note=merged_note(into.number, len(moving), step.reason),
    )
    domain.move(other, cancel)
    for evidence in moving:
        evidence.case = into
    into.last_seen_at = max(into.last_seen_at, other.last_seen_at)
    _log(
        into,
        EvidenceStep.MERGE,
        step,
        f"merged case {other.number} in: {_described(moving, domain.rules.calendar.timezone)}: {step.reason}",
    )
