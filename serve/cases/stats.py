"""Performance metrics of the case workflow (综合评价), the 10-day street ranking and the worst spots.

Each case is first reduced to `CaseFacts` from its flow log (what happened, and whether on time);
rates are then plain counts over facts, so the numbers can be checked by hand. Definitions follow
the domain document:

Only filed cases (立案: confirmed by a person and filed, or auto-filed for a trusted class) count as
problems, in disposal, on-time, overdue, rankings and worst spots; an AI finding or citizen report
awaiting review is a report, counted apart:

- reports, pending review, valid (confirmed, corrected or auto-filed), rejected (as false, at review:
  a valid report the filing desk then declines, 不予立案, stays valid and unfiled)
- 有效上报率 valid report rate = valid / reviewed (valid + rejected)
- 漏报率 miss rate = filed problems first reported by people outside the patrol (public, hotline,
  leader, media) / all filed problems: what the patrol and the cameras did not find first
- 立案率 filing rate = filed / valid reports
- 处置率 disposal rate = handled / due (dispatched and not cancelled)
- 按期处置率 on-time disposal = due cases whose standing handling (the last `handle`, with no failed
  check after it: a case in rework has none) met the deadline / due
- 结案率 / 按期结案率 closing and on-time closing = closed (by the deadline) / due; a forced close
  (强制结案) counts as closed: it ends the case as a closing does (the domain names no other reading)
- 返工率 rework rate = cases with a failed check / handled
- 超时倍数 overtime multiple of a late standing handling (none for a case in rework) =
  (used − allowed) / allowed, from the start of the disposal clock (the
  last dispatch; filing for a class counted in continuous minutes, which dispatch does not restart)
  to the last handling, both measured in the unit of the class's limit (working hours count only
  working time) and without the time the case was suspended (挂账 stops the clock)
- problems per km² = filed cases that were not cancelled / area of the unit grids (of the group's
  grids; of the whole layout for the total)
- by department: the department holding the case; one sent back (回退) and not yet dispatched again
  is due with no department, not with the one that returned it
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol

from pydantic import StrictFloat, field_validator
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from serve.cases.db import with_children
from serve.cases.deadlines import WorkCalendar, restarts_at_dispatch, time_used
from serve.cases.enums import CaseSource
from serve.cases.grids import GridIndex
from serve.cases.orm import Case, FlowEntry
from serve.cases.routing import Routing
from serve.cases.workflow import FILED_OPEN_STATES, Action, State
from vision.core.config import ConfigModel, load_config_file

MISSED_SOURCES = (CaseSource.PUBLIC, CaseSource.HOTLINE, CaseSource.LEADER, CaseSource.MEDIA)

GROUPS = ("grid", "street", "department", "event")
RATE_NAMES = (
    "valid_report_rate",
    "miss_rate",
    "filing_rate",
    "disposal_rate",
    "on_time_disposal_rate",
    "closing_rate",
    "on_time_closing_rate",
    "rework_rate",
)


@dataclass(frozen=True)
class CaseFacts:
    """What the metrics need to know about one case."""

    event: str
    grid_code: str | None
    street: str | None
    department: str | None  # the department holding it: none once it was sent back (回退) undispatched
    problem: bool  # filed and not cancelled: counts per km²
    pending_review: bool  # a report nobody has confirmed or rejected yet
    valid: bool
    rejected: bool
    filed: bool
    missed: bool  # filed, first reported by someone outside the patrol (漏报)
    due: bool
    handled: bool
    handled_on_time: bool
    closed: bool
    closed_on_time: bool
    reworked: bool
    overtime_multiple: float | None  # only for handling later than allowed

    def key(self, group: str) -> str | None:
        return {
            "grid": self.grid_code,
            "street": self.street,
            "department": self.department,
            "event": self.event,
        }[group]


class Step(Protocol):
    """What the facts read of a flow-log step: a `FlowEntry`, or a plain row of these columns."""

    @property
    def action(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def overdue(self) -> bool: ...


class Reviewed(Protocol):
    @property
    def auto_filed(self) -> bool: ...


class CaseFields(Reviewed, Protocol):
    """What the facts read of a case: a `Case`, or a plain row of these columns (FACT_COLUMNS)."""

    @property
    def event(self) -> str: ...
    @property
    def grid_code(self) -> str | None: ...
    @property
    def street(self) -> str | None: ...
    @property
    def department(self) -> str | None: ...
    @property
    def state(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def deadline_at(self) -> datetime | None: ...


def facts_of(
    case: CaseFields, flow: Sequence[Step], calendar: WorkCalendar, unit_of: Callable[[str], str]
) -> CaseFacts:
    """Reduce a case and its flow log (in the order it was written) to the facts the rates count.
    One pass over the steps: a year of a city's cases has 600,000 of them."""
    actions: set[str] = set()
    handled: Step | None = None  # the last handling
    closing: Step | None = None  # the last close or forced close
    accepted = False  # handled, and no failed check since the last handle
    held_by_department = False  # dispatched, and not sent back (回退) since
    for entry in flow:
        action = entry.action
        actions.add(action)
        if action == Action.HANDLE:
            handled, accepted = entry, True
        elif action == Action.CHECK_FAIL:
            accepted = False
        elif action == Action.CLOSE or action == Action.FORCE_CLOSE:
            closing = entry
        elif action == Action.DISPATCH or action == Action.SEND_BACK:
            held_by_department = action == Action.DISPATCH
    dispatched = Action.DISPATCH in actions
    valid, rejected = review_outcome(case, actions)
    filed = Action.FILE in actions
    overtime = None
    if accepted and handled is not None and handled.overdue and case.deadline_at is not None:
        overtime = overtime_multiple(flow, handled.at, case.deadline_at, unit_of(case.event), calendar)
    return CaseFacts(
        event=case.event,
        grid_code=case.grid_code,
        street=case.street,
        department=case.department if held_by_department else None,
        problem=filed and case.state != State.CANCELLED,
        pending_review=case.state == State.REPORTED,
        valid=valid,
        rejected=rejected,
        filed=filed,
        missed=filed and case.source in MISSED_SOURCES,
        due=dispatched and case.state != State.CANCELLED,
        handled=handled is not None,
        handled_on_time=accepted and handled is not None and not handled.overdue,
        closed=closing is not None and case.state in (State.CLOSED, State.FORCE_CLOSED),
        closed_on_time=closing is not None
        and case.state in (State.CLOSED, State.FORCE_CLOSED)
        and not closing.overdue,
        reworked=Action.CHECK_FAIL in actions,
        overtime_multiple=overtime,
    )


def review_outcome(case: Reviewed, actions: set[str]) -> tuple[bool, bool]:
    """(valid, rejected) of a report: valid when a person confirmed or corrected it or its class is
    auto-filed; rejected only as false at review (one confirmed and then not filed stays valid)."""
    valid = bool(actions & {Action.CONFIRM, Action.CORRECT}) or case.auto_filed
    return valid, Action.REJECT in actions and not valid


def overtime_multiple(
    flow: Sequence[Step], handled_at: datetime, due: datetime, unit: str, calendar: WorkCalendar
) -> float | None:
    """(used − allowed) / allowed of a late handling, from the start of the disposal clock (the last
    dispatch, or filing for a clock dispatch does not restart), without the time suspended."""
    clock_steps = (Action.FILE, Action.DISPATCH) if restarts_at_dispatch(unit) else (Action.FILE,)
    starts = [e.at for e in flow if e.action in clock_steps and e.at <= handled_at]
    if not starts:
        return None
    paused = suspended_time(flow, starts[-1], handled_at, unit, calendar)
    allowed = time_used(starts[-1], due, unit, calendar) - paused
    used = time_used(starts[-1], handled_at, unit, calendar) - paused
    return (used - allowed) / allowed if allowed > 0 else None


def suspended_time(
    flow: Sequence[Step], since: datetime, until: datetime, unit: str, calendar: WorkCalendar
) -> float:
    """Time in `unit` that the case spent suspended (挂账, its clock stopped) between `since` and `until`."""
    total, suspended_at = 0.0, None
    for entry in flow:
        if entry.action == Action.SUSPEND and since <= entry.at:
            suspended_at = entry.at
        elif entry.action == Action.RESUME and suspended_at is not None and entry.at <= until:
            total += time_used(suspended_at, entry.at, unit, calendar)
            suspended_at = None
    return total


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def rates(
    facts: Iterable[CaseFacts], *, area_km2: float | None = None, weights: dict[str, float] | None = None
) -> dict[str, Any]:
    """Counts and rates of a group of cases (see the module docstring for the definitions)."""
    items = list(facts)
    due = [f for f in items if f.due]
    handled = [f for f in due if f.handled]
    late = [f.overtime_multiple for f in items if f.overtime_multiple is not None]
    counts = {
        "reports": len(items),
        "pending_review": sum(f.pending_review for f in items),
        "valid": sum(f.valid for f in items),
        "rejected": sum(f.rejected for f in items),
        "filed": sum(f.filed for f in items),
        "missed": sum(f.missed for f in items),
        "due": len(due),
        "handled": len(handled),
        "handled_on_time": sum(f.handled_on_time for f in due),
        "closed": sum(f.closed for f in due),
        "closed_on_time": sum(f.closed_on_time for f in due),
        "reworked": sum(f.reworked for f in handled),
    }
    result: dict[str, Any] = {
        **counts,
        "valid_report_rate": ratio(counts["valid"], counts["valid"] + counts["rejected"]),
        "miss_rate": ratio(counts["missed"], counts["filed"]),
        "filing_rate": ratio(counts["filed"], counts["valid"]),
        "disposal_rate": ratio(counts["handled"], counts["due"]),
        "on_time_disposal_rate": ratio(counts["handled_on_time"], counts["due"]),
        "closing_rate": ratio(counts["closed"], counts["due"]),
        "on_time_closing_rate": ratio(counts["closed_on_time"], counts["due"]),
        "rework_rate": ratio(counts["reworked"], counts["handled"]),
        "overtime_cases": len(late),
        "overtime_multiple_mean": sum(late) / len(late) if late else None,
        "overtime_multiple_max": max(late) if late else None,
        "area_km2": area_km2,
        "problems_per_km2": sum(f.problem for f in items) / area_km2 if area_km2 else None,
    }
    result["score"] = composite_score(result, weights or {})
    return result


def composite_score(values: dict[str, Any], weights: dict[str, float]) -> float | None:
    """Weighted sum of the rates that exist, normalised by the weights used (None if none exist).
    A weight of 0 leaves its rate out (configs/stats.yaml: not part of this city's score); weights
    all 0 make no score, not a division by zero."""
    used = {name: w for name, w in weights.items() if w and values.get(name) is not None}
    if not used:
        return None
    return sum(w * values[name] for name, w in used.items()) / sum(abs(w) for w in used.values())


class StatsFile(ConfigModel):
    """configs/stats.yaml: the composite score's weight per rate (negative for rates that are bad)."""

    score_weights: dict[str, StrictFloat] = {}

    @field_validator("score_weights")
    @classmethod
    def _known_rates(cls, weights: dict[str, float]) -> dict[str, float]:
        if unknown := sorted(set(weights) - set(RATE_NAMES)):
            raise ValueError(f"{', '.join(unknown)}: not a rate (rates: {', '.join(RATE_NAMES)})")
        return weights


def load_score_weights(path: Path) -> dict[str, float]:
    """`<configs_dir>/stats.yaml` `score_weights`: rate name -> weight; ConfigError names a bad field."""
    return {name: float(w) for name, w in load_config_file(path, StatsFile).score_weights.items()}


def group_areas(grids: GridIndex | None, group: str) -> dict[str, float]:
    """km² per grid code or per street; other groupings have no area."""
    areas: dict[str, float] = defaultdict(float)
    for grid in grids or ():
        if group == "grid":
            areas[grid.code] += grid.area_km2
        elif group == "street" and grid.street:
            areas[grid.street] += grid.area_km2
    return dict(areas)


def layout_area(grids: GridIndex | None) -> float | None:
    """km² of the whole grid layout (the bureau's jurisdiction): what the total's problems per km²
    are counted over (None without a layout)."""
    return sum(grid.area_km2 for grid in grids or ()) or None


def grouped(
    facts: list[CaseFacts], group: str, grids: GridIndex | None, weights: dict[str, float]
) -> list[dict[str, Any]]:
    """Rates per group key, sorted by key (cases without the key last)."""
    areas = group_areas(grids, group)
    buckets: dict[str | None, list[CaseFacts]] = defaultdict(list)
    for f in facts:
        buckets[f.key(group)].append(f)
    return [
        {"key": key, **rates(items, area_km2=areas.get(key) if key else None, weights=weights)}
        for key, items in sorted(buckets.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
    ]


def ten_day_period(day: date) -> tuple[date, date, str]:
    """The 旬 holding `day`: days 1-10, 11-20 or 21 to the month's end; end exclusive, and its label."""
    part = min((day.day - 1) // 10, 2)
    start = day.replace(day=1 + 10 * part)
    end = start + timedelta(days=10) if part < 2 else (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start, end, f"{day:%Y-%m}-{part + 1}"


def ranking(
    facts: list[CaseFacts], grids: GridIndex | None, weights: dict[str, float]
) -> list[dict[str, Any]]:
    """Streets of the grid layout, worst first: most problems per km², then most problems.

    Every street of the layout is ranked, also those without a single problem (they rank best).
    """
    areas = group_areas(grids, "street")
    return ranked("street", areas, ((f.street, f) for f in facts), weights)


def ranked(
    label: str,
    areas: dict[str, float],
    keyed: Iterable[tuple[str | None, CaseFacts]],
    weights: dict[str, float],
) -> list[dict[str, Any]]:
    """Areas (streets, districts) worst first: most problems per km², then most problems, then name.
    Every area is ranked, also those without a single problem; facts of no area are left out."""
    buckets: dict[str, list[CaseFacts]] = {key: [] for key in areas}
    for key, f in keyed:
        if key in buckets:
            buckets[key].append(f)
    rows = []
    for key, items in buckets.items():
        r = rates(items, area_km2=areas[key], weights=weights)
        problems = sum(f.problem for f in items)
        rows.append(
            {
                label: key,
                "problems": problems,
                "area_km2": areas[key],
                "problems_per_km2": problems / areas[key],
                "on_time_closing_rate": r["on_time_closing_rate"],
                "score": r["score"],
            }
        )
    rows.sort(key=lambda r: (-r["problems_per_km2"], -r["problems"], r[label]))
    return [{"rank": i + 1, **row} for i, row in enumerate(rows)]


def reports_per_day(
    reported: Iterable[tuple[str, datetime]], calendar: WorkCalendar, start: date, end: date
) -> dict[str, list[int]]:
    """Cases per event class and bureau day in [start, end) from (event, first seen): the class chart."""
    days = (end - start).days
    counts: dict[str, list[int]] = {}
    for event, seen in reported:
        index = (seen.astimezone(calendar.timezone).date() - start).days
        if 0 <= index < days:
            counts.setdefault(event, [0] * days)[index] += 1
    return dict(sorted(counts.items()))


# --- queries ------------------------------------------------------------------------------------


def between(
    query: Select[*tuple[Any, ...]], since: datetime | None, until: datetime | None
) -> Select[*tuple[Any, ...]]:
    """`query` narrowed to the cases first reported in [since, until) (either end open)."""
    if since is not None:
        query = query.where(Case.first_seen_at >= since)
    if until is not None:
        query = query.where(Case.first_seen_at < until)
    return query


# the columns the facts read (CaseFields, Step): a case's id first, a step's case first
FACT_COLUMNS = (Case.id, Case.event, Case.grid_code, Case.street, Case.department, Case.state, Case.source,
                Case.auto_filed, Case.deadline_at)  # fmt: skip
STEP_COLUMNS = (FlowEntry.case_id, FlowEntry.action, FlowEntry.at, FlowEntry.overdue)


def facts_between(
    session: Session,
    since: datetime | None,
    until: datetime | None,
    calendar: WorkCalendar,
    unit_of: Callable[[str], str],
) -> Iterator[CaseFacts]:
    """The facts of the cases first reported in [since, until), from plain rows of only the columns
    they read, a batch of cases with their flow steps at a time: a year's figures keep each case's
    facts, not a year of cases and flow logs (nor an ORM object per row: a year took 36 s so)."""
    cases = between(select(*FACT_COLUMNS).order_by(Case.id), since, until)
    steps = select(*STEP_COLUMNS).order_by(FlowEntry.id)
    for case, (flow,) in with_children(session, cases, steps):
        yield facts_of(case, flow, calendar, unit_of)


def reported_between(session: Session, since: datetime, until: datetime) -> Iterator[tuple[str, datetime]]:
    """(event, first seen) of the cases first reported in [since, until): all the daily counts read."""
    query = select(Case.event, Case.first_seen_at).where(
        Case.first_seen_at >= since, Case.first_seen_at < until
    )
    return ((event, seen) for event, seen in session.execute(query))


def local_day_bounds(start: date, end: date, calendar: WorkCalendar) -> tuple[datetime, datetime]:
    """Local midnights of the bureau's timezone: a 旬 is counted in the bureau's days."""
    return (
        datetime.combine(start, time(), tzinfo=calendar.timezone),
        datetime.combine(end, time(), tzinfo=calendar.timezone),
    )


# The rule "only filed cases count" as a query filter: open problems a person filed (立案). A report
# awaiting review (reported, verified; an AI finding with ai_review pending) is in none of the figures.
FILED_OPEN = Case.state.in_([s.value for s in FILED_OPEN_STATES])


def worst_spots(
    session: Session, grids: GridIndex | None, limit: int, routing: Routing | None = None
) -> list[dict[str, Any]]:
    """Grids with the most open filed cases per km² now, worst first, then the most open cases; grids
    of no known area (not in the layout) after them (reports in review do not count). Problems are
    counted per unit area: a grid twice the size with one more case is not the worse spot. With
    `routing`, a spot's `department` is the one all its open cases go to (the one dispatched to,
    else the one `routing` suggests, as dispatch does; None where they differ): the department a
    supervisor flags it to."""
    rows = session.execute(
        select(Case.grid_code, Case.street, Case.event, Case.department, func.count())
        .where(FILED_OPEN, Case.grid_code.is_not(None))
        .group_by(Case.grid_code, Case.street, Case.event, Case.department)
    ).all()
    counts: dict[str, int] = defaultdict(int)
    departments: dict[str, set[str]] = defaultdict(set)
    for grid_code, street, event, department, count in rows:
        code = str(grid_code)  # never None: the query keeps cases with a grid
        counts[code] += count
        if routing is not None:
            departments[code].add(department or routing.department_for(event, code, street))
    spots: list[dict[str, Any]] = []
    for code, count in counts.items():
        grid = grids.get(code) if grids is not None else None
        area = grid.area_km2 if grid else None
        spots.append(
            {
                "grid_code": code,
                "street": grid.street if grid else None,
                "open_cases": int(count),
                "area_km2": area,
                "open_per_km2": count / area if area else None,
                "department": next(iter(departments[code])) if len(departments[code]) == 1 else None,
            }
        )
    spots.sort(
        key=lambda s: (
            s["open_per_km2"] is None,
            -(s["open_per_km2"] or 0.0),
            -s["open_cases"],
            s["grid_code"],
        )
    )
    return spots[:limit]


# --- `streetorder stats` --------------------------------------------------------------------------
