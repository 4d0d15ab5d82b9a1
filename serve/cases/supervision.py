"""Supervision (督查督办): 挂牌督办 items, the monthly district ranking and inspector metrics.

A 挂牌督办 item names a worst spot (one unit grid) or a worst road section (several grids, named),
a responsible department and a deadline. It stays open, shown to everyone, until a check closes it;
a check closes it only when none of its grids holds an open filed case any more (最差乱点 cleared).
Like every figure (serve/cases/stats.py), its open cases are filed ones: a report still awaiting a
person's review (an AI finding with ai_review pending) is no problem of the grid yet.

Formulas (docs/people.md, "Supervision"):
- district of a case = its grid's `county` property (else the grid code's first 6 digits);
  monthly ranking: problems per km² of the district's grids (problems as the 10-day ranking counts
  them: filed cases not cancelled), worst first; ties by problems, then name.
- inspector, over cases first reported in the period:
  valid report rate = their reports confirmed, corrected or auto-filed / their reports decided
  (those and the rejected as false; one confirmed and then not filed stays valid); pending reports
  are not counted;
  miss rate = missed / (missed + found), where, among valid cases in their responsibility grids,
  found = those they reported and missed = those a camera, a citizen, the hotline or the media
  reported instead;
  on-time verify rate = their verify steps (核实: confirm, correct, reject) within the verify stage
  limit / all their verify steps;
  on-time check rate = their check steps (check_pass, check_fail) within the check stage limit / all
  their check steps.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from serve.cases.auth import Principal
from serve.cases.db import with_children
from serve.cases.enums import Action, CaseSource, Role, SupervisionState
from serve.cases.errors import Conflict, InvalidInput, NotFound, NotPermitted
from serve.cases.grids import GridIndex
from serve.cases.orm import Case, FlowEntry, SupervisionItem, User
from serve.cases.people import VERIFYING, reporter_id
from serve.cases.stats import FILED_OPEN, CaseFacts, between, ranked, ratio, review_outcome
from serve.cases.times import computable_day

SUPERVISORS = frozenset({Role.DISPATCHER, Role.ADMIN})  # open and assign items
CHECKERS = frozenset({Role.INSPECTOR, Role.DISPATCHER, Role.ADMIN})  # close one with a check
FOUND_BY_OTHERS = (CaseSource.VIDEO, CaseSource.PUBLIC, CaseSource.HOTLINE, CaseSource.MEDIA)
CHECKS = (Action.CHECK_PASS, Action.CHECK_FAIL)
INSPECTOR_COUNTS = (
    *("reports", "valid", "rejected", "found", "missed"),
    *("verifies", "verifies_on_time", "checks", "checks_on_time"),
)


def _require(principal: Principal, roles: frozenset[Role], what: str) -> None:
    if principal.role is not None and Role(principal.role) not in roles:
        raise NotPermitted(principal.role, f"may not {what} ({', '.join(roles)} may)")


def open_cases_in(session: Session, grids: Iterable[str]) -> list[Case]:
    """The open filed cases in `grids`, as the worst spots count them (`FILED_OPEN`): a report still
    awaiting review counts in no supervision figure and keeps no item from being closed."""
    return list(
        session.scalars(select(Case).where(Case.grid_code.in_(list(grids)), FILED_OPEN).order_by(Case.id))
    )


def open_counts(session: Session, grids: Iterable[str]) -> dict[str, int]:
    """How many open filed cases (as `open_cases_in` counts them) each of `grids` holds, in one
    grouped query: a list of items asks once for all their grids, not once per item."""
    rows = session.execute(
        select(Case.grid_code, func.count())
        .where(Case.grid_code.in_(set(grids)), FILED_OPEN)
        .group_by(Case.grid_code)
    )
    return {str(code): int(count) for code, count in rows}


def open_item(
    session: Session,
    principal: Principal,
    *,
    grids: list[str],
    name: str | None,
    department: str,
    deadline_at: datetime,
    reason: str,
    layout: GridIndex | None,
    departments: tuple[str, ...],
    now: datetime,
) -> SupervisionItem:
    """挂牌: one grid is a spot, several a road section (which needs a name)."""
    _require(principal, SUPERVISORS, "open supervision items")
    unknown = [code for code in grids if layout is None or layout.get(code) is None]
    if not grids or unknown:
        raise InvalidInput("grids", f"unit grid codes of the layout expected; unknown: {', '.join(unknown)}")
    if len(set(grids)) > 1 and not name:
        raise InvalidInput("name", "a road section of several grids needs a name")
    if department not in departments:
        raise InvalidInput("department", f"'{department}' is not one of {', '.join(departments)}")
    if deadline_at <= now:
        raise InvalidInput("deadline_at", "must be later than now")
    first = layout.get(grids[0]) if layout else None
    item = SupervisionItem(
        kind="spot" if len(set(grids)) == 1 else "section",
        name=name or (first.name if first else grids[0]),
        grids=sorted(set(grids)),
        street=first.street if first else None,
        reason=reason,
        department=department,
        deadline_at=deadline_at,
        state=SupervisionState.OPEN,
        opened_by=principal.name,
        opened_by_id=principal.user_id,
        opened_at=now,
        open_cases_at_start=len(open_cases_in(session, grids)),
    )
    session.add(item)
    session.flush()
    return item


def find_item(session: Session, item_id: int) -> SupervisionItem:
    item = session.get(SupervisionItem, item_id)
    if item is None:
        raise NotFound("supervision item", item_id)
    return item


def assign_item(
    item: SupervisionItem,
    principal: Principal,
    *,
    department: str | None,
    deadline_at: datetime | None,
    departments: tuple[str, ...],
    now: datetime,
) -> None:
    """Change the responsible department or the deadline of an open item."""
    _require(principal, SUPERVISORS, "assign supervision items")
    if item.state is not SupervisionState.OPEN:
        raise Conflict(f"supervision item {item.id} is closed")
    if department is not None and department not in departments:
        raise InvalidInput("department", f"'{department}' is not one of {', '.join(departments)}")
    if deadline_at is not None and deadline_at <= now:
        raise InvalidInput("deadline_at", "must be later than now")
    item.department = department or item.department
    item.deadline_at = deadline_at or item.deadline_at


def close_item(
    session: Session, item: SupervisionItem, principal: Principal, *, note: str, now: datetime
) -> None:
    """销号 after a check: refused while any of its grids still holds an open case."""
    _require(principal, CHECKERS, "close supervision items")
    if item.state is not SupervisionState.OPEN:
        raise Conflict(f"supervision item {item.id} is already closed")
    still = open_cases_in(session, item.grids)
    if still:
        numbers = ", ".join(c.number for c in still[:20])
        raise Conflict(
            f"{len(still)} case(s) still open in its grids: {numbers}", open_cases=[c.number for c in still]
        )
    item.state = SupervisionState.CLOSED
    item.closed_by, item.closed_by_id, item.closed_at, item.check_note = (
        principal.name,
        principal.user_id,
        now,
        note,
    )


# --- the monthly district ranking ----------------------------------------------------------------


def month_bounds(month: str) -> tuple[date, date]:
    """`YYYY-MM` -> first day of the month, first day of the next one; a month outside the
    computable years (serve/cases/times.py) is InvalidInput, not an overflow."""
    try:
        start = computable_day(date.fromisoformat(f"{month}-01"))
    except ValueError as err:
        raise InvalidInput("month", f"'{month}': YYYY-MM expected ({err})") from None
    return start, (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def district_of(grid_code: str | None, layout: GridIndex | None) -> str | None:
    if not grid_code:
        return None
    grid = layout.get(grid_code) if layout else None
    county = grid.properties.get("county") if grid else None
    return str(county) if county else grid_code[:6]


def district_ranking(
    facts: list[CaseFacts], layout: GridIndex | None, weights: dict[str, float]
) -> list[dict[str, Any]]:
    """Districts of the layout, worst first (see the module docstring)."""
    areas: dict[str, float] = defaultdict(float)
    for grid in layout or ():
        district = district_of(grid.code, layout)
        if district:
            areas[district] += grid.area_km2
    keyed = ((district_of(f.grid_code, layout), f) for f in facts)
    return ranked("district", dict(areas), keyed, weights)


# --- inspector metrics ---------------------------------------------------------------------------


# what the inspectors' figures read, as plain rows: a case's id first, a step's case first
INSPECTOR_CASE_COLUMNS = (Case.id, Case.grid_code, Case.source, Case.auto_filed)
INSPECTOR_STEP_COLUMNS = (FlowEntry.case_id, FlowEntry.action, FlowEntry.user_id, FlowEntry.overdue)


def inspector_metrics(session: Session, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Per inspector account: valid report rate, miss rate, on-time verify and check rates (module
    docstring) over the cases first reported in [since, until). One pass over plain rows of the
    columns they read, each case counted for the inspectors it concerns: every case and flow step
    built as an ORM object and walked once per inspector took seconds a month."""
    inspectors = session.execute(
        select(User.id, User.username, User.display_name, User.grids)
        .where(User.role == Role.INSPECTOR)
        .order_by(User.username)
    ).all()
    counts = {person.id: dict.fromkeys(INSPECTOR_COUNTS, 0) for person in inspectors}
    responsible: defaultdict[str, list[int]] = defaultdict(list)  # grid -> inspectors it belongs to
    for person in inspectors:
        for code in set(person.grids):
            responsible[code].append(person.id)
    cases = between(select(*INSPECTOR_CASE_COLUMNS).order_by(Case.id), since, until)
    steps = select(*INSPECTOR_STEP_COLUMNS).order_by(FlowEntry.id)
    for case, (flow,) in with_children(session, cases, steps):
        valid, rejected = review_outcome(case, {step.action for step in flow})
        reporter = reporter_id(flow)
        if (theirs := counts.get(reporter)) is not None:
            theirs["reports"] += 1
            theirs["valid"] += valid
            theirs["rejected"] += rejected
        if valid and case.grid_code is not None:
            for person_id in responsible.get(case.grid_code, ()):
                counts[person_id]["found"] += reporter == person_id
                counts[person_id]["missed"] += reporter != person_id and case.source in FOUND_BY_OTHERS
        for step in flow:  # each step judged by its stage limit (verify, check) when taken
            if (theirs := counts.get(step.user_id)) is None:
                continue
            if step.action in VERIFYING:
                theirs["verifies"] += 1
                theirs["verifies_on_time"] += not step.overdue
            elif step.action in CHECKS:
                theirs["checks"] += 1
                theirs["checks_on_time"] += not step.overdue
    rows = []
    for person in inspectors:
        mine = counts[person.id]
        rows.append(
            {
                "username": person.username,
                "name": person.display_name,
                "grids": sorted(set(person.grids)),
                **mine,
                "valid_report_rate": ratio(mine["valid"], mine["valid"] + mine["rejected"]),
                "miss_rate": ratio(mine["missed"], mine["missed"] + mine["found"]),
                "on_time_verify_rate": ratio(mine["verifies_on_time"], mine["verifies"]),
                "on_time_check_rate": ratio(mine["checks_on_time"], mine["checks"]),
            }
        )
    return rows
