"""A finding becomes a new grid case, or new evidence of the open case it repeats.

Every finding ends here, inside its door's transaction: patrol photos (scan, `POST /v1/reports`)
through the photo intake (serve/cases/intake.py), camera rule events and Open311 requests
directly. So all of them apply the same rule and the same numbering:

- An open case of the same event within `radius_m` (haversine, default 50 m) whose seen period
  (first_seen_at .. last_seen_at) is within `window` (default 24 h) of the finding takes it as
  evidence; a camera seeing the same pile frame after frame, or two inspectors photographing it,
  make one case. Photos of an archive may come in any order, hence the window on both sides.
- Otherwise a new case: number PREFIX + yyyyMMdd (local date of the finding) + a daily sequence,
  codes from the taxonomy, grid by point-in-polygon, deadline from the event's limit and the working
  calendar, state `reported`; AI findings wait for a person (`ai_review = pending`). Its flow log
  starts with a `report` entry at the time the problem was seen. A report awaiting review has no
  deadline and counts in no rate but the report counts: filing (立案) starts its clocks. An AI
  finding of a class the bureau trusts (configs/workflow.yaml `auto_file`) is filed at once, at
  the time it was seen, by `auto-filing` (recorded: `auto_filed`).

Intake is serialised by a lock row in `case_counters` (taken first, by an UPDATE, on SQLite and
PostgreSQL alike), so two concurrent reports of one violation cannot both miss each other.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from serve.cases.deadlines import WorkCalendar, deadline, load_calendar, on_site_due
from serve.cases.enums import REPORT_STEP, Action, AiReview, CaseSource, EvidenceRole, RecordType, State
from serve.cases.errors import InvalidInput
from serve.cases.grids import EARTH_RADIUS_M, Grid, GridIndex, haversine_m, load_grids
from serve.cases.orm import Case, CaseCounter, Evidence, FlowEntry
from serve.cases.settings import Settings
from serve.cases.times import CaptureTimes
from serve.cases.workflow import (
    AUTO_FILER,
    INITIAL_STATE,
    NO_AUTO_FILING,
    OPEN_STATES,
    AutoFiling,
    load_auto_filing,
)
from vision.core.boxes import Box, boxes_json
from vision.core.taxonomy import Taxonomy

INTAKE_LOCK = "intake"  # the case_counters row whose lock serialises intake (days are yyyyMMdd)
SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Finding:
    """One event seen at one place and time, with the photo that shows it."""

    event: str  # taxonomy event key
    lat: float  # WGS-84
    lon: float
    seen_at: datetime  # timezone-aware: from EXIF, the frame, or the reporter
    photo_path: str
    photo_sha256: str
    boxes: tuple[Box, ...] = ()
    photo_phash: str | None = None  # vision.core.phash: how a copy of the photo is recognised
    model_version: str | None = None  # set for AI findings, which then wait for a person's review
    source: CaseSource = CaseSource.PATROL_PHOTO
    reporter: str = "scan"  # operator of the case's first flow-log entry
    reporter_id: int | None = None  # the signed-in person who reported it (inspector metrics)
    photo_id: int | None = None
    camera_id: str | None = None
    role: EvidenceRole = EvidenceRole.FINDING
    extra: dict[str, Any] | None = None

    @property
    def confidence(self) -> float | None:
        return max((b.confidence for b in self.boxes), default=None)


@dataclass(frozen=True)
class CaseRules:
    """What intake needs besides the database; build once per process with `load_case_rules`."""

    taxonomy: Taxonomy
    calendar: WorkCalendar
    grids: GridIndex | None
    radius_m: float = 50.0
    window: timedelta = timedelta(hours=24)
    prefix: str = "SO"
    times: CaptureTimes = field(default_factory=CaptureTimes)  # plausible capture times (times.py)
    auto_filing: AutoFiling = NO_AUTO_FILING

    def grid_at(self, lat: float, lon: float) -> Grid | None:
        """The unit grid holding a position; None outside every grid or without a grid layout."""
        return self.grids.locate(lat, lon) if self.grids is not None else None


def load_case_rules(settings: Settings, *, grids: GridIndex | None = None) -> CaseRules:
    """Taxonomy, calendar and grids from the configured files; duplicate rule and prefix from settings."""
    taxonomy = settings.taxonomy()
    return CaseRules(
        taxonomy=taxonomy,
        calendar=load_calendar(settings.configs_dir / "calendar.yaml"),
        grids=grids if grids is not None else load_grids(settings.grids, settings.grids_crs),
        radius_m=settings.duplicate_radius_m,
        window=timedelta(hours=settings.duplicate_window_h),
        prefix=settings.case_prefix,
        times=CaptureTimes(
            settings.first_year, settings.last_year, timedelta(seconds=settings.capture_ahead_s)
        ),
        auto_filing=load_auto_filing(settings.configs_dir / "workflow.yaml", taxonomy.events),
    )


@dataclass(frozen=True)
class CaseUpdate:
    case: Case
    created: bool  # a new case, rather than evidence appended to an open one
    evidence: Evidence


def record_finding(session: Session, finding: Finding, rules: CaseRules) -> CaseUpdate:
    """File `finding` as a new case or append it to its open duplicate, in the caller's transaction.

    Recording the same photo for the same case twice returns the first evidence and adds nothing.
    """
    _check(finding, rules)
    lock_intake(session)
    case = find_duplicate(session, finding, rules)
    if case is None:
        case = _new_case(session, finding, rules)
        created = True
    else:
        created = False
        known = session.scalars(
            select(Evidence).where(
                Evidence.case_id == case.id,
                Evidence.sha256 == finding.photo_sha256,
                Evidence.role == finding.role,
            )
        ).first()
        if known is not None:
            return CaseUpdate(case=case, created=False, evidence=known)
        case.first_seen_at = min(case.first_seen_at, finding.seen_at)
        case.last_seen_at = max(case.last_seen_at, finding.seen_at)
        flag_modified(case, "last_seen_at")  # new evidence is a new version of the case (ETag)
    evidence = Evidence(
        case=case,
        photo_id=finding.photo_id,
        role=finding.role,
        path=finding.photo_path,
        sha256=finding.photo_sha256,
        phash=finding.photo_phash,
        captured_at=finding.seen_at,
        boxes=boxes_json(finding.boxes),
        confidence=finding.confidence,
        model_version=finding.model_version,
        extra=finding.extra,
    )
    session.add(evidence)
    session.flush()
    return CaseUpdate(case=case, created=created, evidence=evidence)


def find_duplicate(session: Session, finding: Finding, rules: CaseRules) -> Case | None:
    """The nearest open case of the finding's event within the radius and time window, if any."""
    pad_lat = math.degrees(rules.radius_m / EARTH_RADIUS_M)
    pad_lon = pad_lat / max(math.cos(math.radians(finding.lat)), 1e-6)
    candidates = session.scalars(
        select(Case)
        .where(
            Case.event == finding.event,
            Case.state.in_([s.value for s in OPEN_STATES]),
            Case.first_seen_at <= finding.seen_at + rules.window,
            Case.last_seen_at >= finding.seen_at - rules.window,
            Case.lat.between(finding.lat - pad_lat, finding.lat + pad_lat),
            Case.lon.between(finding.lon - pad_lon, finding.lon + pad_lon),
        )
        .order_by(Case.id)
        # held and read as they are (PostgreSQL: a step committed since the lookup made the append
        # a StaleDataError, a citizen's report refused 412 "changed by someone else")
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    best: tuple[float, Case] | None = None
    for case in candidates:
        distance = haversine_m(finding.lat, finding.lon, case.lat, case.lon)
        if distance <= rules.radius_m and (best is None or distance < best[0]):
            best = (distance, case)
    return None if best is None else best[1]


def lock_intake(session: Session) -> None:
    """Serialise intake until the transaction ends (a row lock on PostgreSQL, the write lock on SQLite).

    Taken before the duplicate lookup: on SQLite a transaction that read first could not write later
    once another writer committed, and on PostgreSQL two lookups could both miss each other's case.
    """
    dialect = session.get_bind().dialect.name
    row = {"day": INTAKE_LOCK, "last": 0}
    if dialect == "postgresql":
        session.execute(postgresql.insert(CaseCounter).values(row).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(CaseCounter).values(row).on_conflict_do_nothing())
    else:
        raise NotImplementedError(f"case intake supports SQLite and PostgreSQL, not {dialect}")
    session.execute(update(CaseCounter).where(CaseCounter.day == INTAKE_LOCK).values(last=CaseCounter.last))


def lock_case(session: Session, case: Case) -> None:
    """Hold `case` against concurrent steps until the transaction ends and read its state and
    version again.

    For a change decided on a case read earlier without an ETag (a photo added while the model
    looked at it, a copy joining its original's case): a case cancelled or closed meanwhile is seen
    as such, and a step taken meanwhile does not make the append a "changed by someone else" (412).
    A no-op UPDATE of its row is the row lock on PostgreSQL and the write lock on SQLite, on both
    before the read.
    """
    no_change = update(Case).where(Case.id == case.id).values(version=Case.version)
    session.execute(no_change.execution_options(synchronize_session=False))
    session.refresh(case, ["state", "version"])


def next_case_number(session: Session, day: date, prefix: str) -> str:
    """PREFIX + yyyyMMdd + a 4-digit (or longer) daily sequence; call with the intake lock held."""
    key = day.strftime("%Y%m%d")
    counter = session.get(CaseCounter, key)
    if counter is None:
        counter = CaseCounter(day=key, last=0)
        session.add(counter)
    counter.last += 1
    return f"{prefix}{key}{counter.last:04d}"


def placed_case_fields(event_key: str, lat: float, lon: float, rules: CaseRules) -> dict[str, Any]:
    """The columns of a new case that follow from its event and position: the codes, and the unit
    grid holding the position with its street, community and address (also a split's new case)."""
    event = rules.taxonomy.events[event_key]
    grid = rules.grid_at(lat, lon)
    address = " ".join(p for p in (grid.street, grid.community, grid.name) if p) if grid else None
    return {
        "record_type": RecordType(event.record_type),
        "event": event.key,
        "major": event.major,
        "cjt214": event.cjt214,
        "gbt47678": event.gbt47678,
        "description": f"{event.name_zh} ({event.name})" + (f", {address}" if address else ""),
        "lat": lat,
        "lon": lon,
        "address": address,
        "grid_code": grid.code if grid else None,
        "street": grid.street if grid else None,
        "community": grid.community if grid else None,
    }


def _new_case(session: Session, finding: Finding, rules: CaseRules) -> Case:
    event = rules.taxonomy.events[finding.event]
    local_day = finding.seen_at.astimezone(rules.calendar.timezone).date()
    auto_filed = finding.model_version is not None and rules.auto_filing.files(event.key, finding.confidence)
    case = Case(
        number=next_case_number(session, local_day, rules.prefix),
        source=finding.source,
        **placed_case_fields(event.key, finding.lat, finding.lon, rules),
        state=State.FILED if auto_filed else INITIAL_STATE,
        ai_review=AiReview.PENDING if finding.model_version else None,
        auto_filed=auto_filed,
        camera_id=finding.camera_id,
        filed_at=finding.seen_at,
        deadline_at=deadline(finding.seen_at, event.deadline, rules.calendar) if auto_filed else None,
        on_site_due_at=(
            on_site_due(finding.seen_at, event.on_site_minutes, rules.calendar) if auto_filed else None
        ),
        first_seen_at=finding.seen_at,
        last_seen_at=finding.seen_at,
    )
    session.add(case)
    note = f"{finding.source}: {len(finding.boxes)} box(es)"
    if finding.model_version:
        note += f", best {finding.confidence or 0:.2f} by {finding.model_version}"
    session.add(
        FlowEntry(
            case=case,
            action=REPORT_STEP,
            from_state=None,
            to_state=INITIAL_STATE,
            operator=finding.reporter,
            user_id=finding.reporter_id,
            at=finding.seen_at,
            note=note,
        )
    )
    if auto_filed:
        session.add(
            FlowEntry(
                case=case,
                action=Action.FILE.value,
                from_state=INITIAL_STATE,
                to_state=State.FILED,
                operator=AUTO_FILER,
                at=finding.seen_at,
                seconds_used=0.0,
                note=f"auto-filed: {event.key} at {finding.confidence or 0:.2f} "
                f">= {rules.auto_filing.min_confidence[event.key]:.2f} (configs/workflow.yaml auto_file)",
            )
        )
    return case


def _check(finding: Finding, rules: CaseRules) -> None:
    if finding.event not in rules.taxonomy.events:
        raise InvalidInput("event", f"'{finding.event}' is not an event of {rules.taxonomy.source}")
    if not (-90 <= finding.lat <= 90 and -180 <= finding.lon <= 180) or (finding.lat, finding.lon) == (0, 0):
        raise InvalidInput("lat/lon", f"({finding.lat}, {finding.lon}) is not a WGS-84 position")
    if finding.seen_at.tzinfo is None or finding.seen_at.utcoffset() is None:
        raise InvalidInput("seen_at", f"{finding.seen_at.isoformat()} has no timezone")
    if not SHA256.fullmatch(finding.photo_sha256):
        raise InvalidInput("photo_sha256", "must be 64 lowercase hex digits")
