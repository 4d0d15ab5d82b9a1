"""The domain document (/work/shared/domain/cases.md, "cases.md" below) rule by rule, against the
product's own functions and configuration: each row names the section it checks. Rules already
tested elsewhere (the transition table, shared grid edges, duplicates at 49/51 m and 23.9/24.1 h,
the 10-day periods) are not repeated; these rows are the codes and defaults, the edges of the
calendar, the thresholds exactly, zero denominators and Open311's mapping."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from configured import CONFIGS, ROOT, TAXONOMY
from sqlalchemy.orm import Session, sessionmaker

from serve.api.open311 import as_request, check_range
from serve.cases.db import open_database, transaction
from serve.cases.deadlines import deadline, load_calendar, on_site_due, parse_calendar, time_used
from serve.cases.domain import Domain, load_domain
from serve.cases.errors import InvalidInput
from serve.cases.findings import CaseRules, Finding, load_case_rules, record_finding
from serve.cases.grids import load_grids
from serve.cases.orm import Case, FlowEntry
from serve.cases.settings import Settings
from serve.cases.stats import CaseFacts, composite_score, facts_of, overtime_multiple, rates
from serve.cases.workflow import Action, Command, is_overdue, load_stage_limits
from vision.core.taxonomy import Deadline

TZ = ZoneInfo("Asia/Shanghai")
CALENDAR = load_calendar(CONFIGS / "calendar.yaml")  # the shipped one: its 2025 and 2026 notices
GRIDS = load_grids(CONFIGS / "grids.example.geojson")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


@pytest.fixture(scope="module")
def domain() -> Domain:
    return load_domain(Settings())


# --- cases.md "Event classes": the code table, both systems, from configuration ------------------


@pytest.mark.parametrize(
    ("event", "name_zh", "cjt214", "gbt47678"),
    [
        ("motor_vehicle_parking", "机动车乱停放", "0505", "09009"),
        ("non_motor_vehicle_parking", "非机动车乱停放", "0506", "09010"),
        ("shop_overflow", "店外经营", "0504", "09005"),
        ("street_vending", "占道经营", "local", "09006"),
        ("exposed_garbage", "暴露垃圾", "0102", "06010"),
        ("accumulated_garbage", "积存垃圾渣土", "0103", "06011"),
        ("overflowing_bin", "垃圾满溢", "local", "06042"),
        ("piled_materials", "乱堆物料", "0507", "06036"),
        ("illegal_small_ad", "非法小广告", "0201", "07001"),
        ("illegal_poster", "违章张贴悬挂广告", "0202", "07003"),
    ],
)
def test_event_codes_of_the_table(event: str, name_zh: str, cjt214: str, gbt47678: str) -> None:
    """cases.md § Event classes, the table (CJ/T 214 `MMSS`, GB/T 47678.5 `MMsss`), and "Major classes":
    a CJ/T 214 code's first two digits are its major class (01 市容环境, 02 宣传广告, 05 街面秩序)."""
    known = TAXONOMY.events[event]
    assert (known.name_zh, known.cjt214, known.gbt47678) == (name_zh, cjt214, gbt47678)
    assert len(known.gbt47678) == 5 and known.gbt47678.isdigit()
    assert known.cjt214 == "local" or (len(known.cjt214) == 4 and known.cjt214[:2] == known.major)
    assert known.major in {"01", "02", "03", "04", "05", "06"}


@pytest.mark.parametrize(
    ("detected", "event"),
    [
        # cases.md § the four disorders, "what a camera sees" -> § Event classes
        ("garbage", "exposed_garbage"),  # 暴露垃圾: loose garbage, no container
        ("overflow", "overflowing_bin"),  # 垃圾满溢: container present and overflowing
        ("garbage_bin", None),  # a bin alone is no violation
        ("car", "motor_vehicle_parking"),
        ("truck", "motor_vehicle_parking"),
        ("bicycle", "non_motor_vehicle_parking"),  # shared bikes file 0506 (taxonomy.yaml says why)
        ("motorcycle", "non_motor_vehicle_parking"),  # e-bikes: interpretation in taxonomy.yaml
        ("stall", "street_vending"),  # stall or vendor with no shop
        ("goods", "shop_overflow"),  # goods of a fixed shop outside it
        ("materials", "piled_materials"),
        ("flyer", "illegal_small_ad"),
        ("poster", "illegal_poster"),
        ("signboard", None),  # shop signs are legal
    ],
)
def test_detected_classes_become_events(detected: str, event: str | None) -> None:
    """cases.md § Event classes: what a detection becomes; "never hard-coded in logic" (configuration)."""
    assert next(c.event for c in TAXONOMY.classes if c.name == detected) == event


# --- cases.md "Deadlines": defaults, stage limits, working hours ----------------------------------


@pytest.mark.parametrize(
    ("event", "amount", "unit"),
    [
        ("exposed_garbage", 4, "working_hours"),  # "exposed garbage 4 working hours"
        ("accumulated_garbage", 2, "working_days"),  # "debris heap 2 working days"
        ("overflowing_bin", 2, "working_hours"),  # "road cleaning 2 working hours"
        ("illegal_small_ad", 4, "working_hours"),  # "small ads 4 working hours"
        ("illegal_poster", 4, "working_hours"),
        ("motor_vehicle_parking", 1, "working_hours"),  # "street-order classes 0.5-2 working hours"
        ("non_motor_vehicle_parking", 1, "working_hours"),
        ("piled_materials", 1, "working_days"),  # garbage piles: between a bin (2 h) and debris (2 days)
        ("street_vending", 20, "minutes"),  # 双十: 10 min on site + 10 min enforcement, continuous
        ("shop_overflow", 60, "minutes"),
    ],
)
def test_disposal_limits_per_class(event: str, amount: float, unit: str) -> None:
    """cases.md § Deadlines: "make every limit configurable per class" with the limits it names."""
    assert TAXONOMY.events[event].deadline == Deadline(amount, unit)


def test_stage_limits_and_working_hours() -> None:
    """cases.md § Deadlines: "accept 15 min, dispatch 15 min, verify 30 min, check 30 min"; working
    hours "08-12 and 14-18 on working days"."""
    limits = load_stage_limits(CONFIGS / "workflow.yaml")
    assert limits.minutes == {"verify": 30, "file": 15, "dispatch": 15, "check": 30}
    assert [(a.isoformat("minutes"), b.isoformat("minutes")) for a, b in CALENDAR.periods] == [
        ("08:00", "12:00"),
        ("14:00", "18:00"),
    ]


# cases.md § Deadlines: "working hours ... with a holiday calendar", "working days", "continuous hours
# (nights and holidays count)"; on the shipped calendar (State Council notices 2025 and 2026).
@pytest.mark.parametrize(
    ("start", "amount", "unit", "due"),
    [
        # year end: 2025-12-31 (Wed) 17:30, 2026-01-01..03 off, Sunday 01-04 worked (调休)
        (at("2025-12-31T17:30"), 4, "working_hours", at("2026-01-04T11:30")),
        # Spring Festival: Friday 02-13 17:00, Saturday 02-14 worked, 02-15..23 off
        (at("2026-02-13T17:00"), 2, "working_days", at("2026-02-24T17:00")),
        # Mid-Autumn: Thursday 09-24 17:00, 09-25..27 off
        (at("2026-09-24T17:00"), 4, "working_hours", at("2026-09-28T11:00")),
        # found exactly at the end of a Friday: the clock starts on Monday
        (at("2026-11-20T18:00"), 1, "working_hours", at("2026-11-23T09:00")),
        # found exactly at noon: the clock starts at 14:00
        (at("2026-11-20T12:00"), 0.5, "working_hours", at("2026-11-20T14:30")),
        # 双十 on a holiday night: continuous minutes run through it
        (at("2026-10-01T23:50"), 20, "minutes", at("2026-10-02T00:10")),
        # a start in a DST timezone (New York's spring change night) is the same moment in Zhengzhou
        (
            datetime(2026, 3, 8, 1, 30, tzinfo=ZoneInfo("America/New_York")),
            1,
            "hours",
            at("2026-03-08T15:30"),
        ),
    ],
)
def test_deadlines_across_calendar_edges(start: datetime, amount: float, unit: str, due: datetime) -> None:
    assert deadline(start, Deadline(amount, unit), CALENDAR) == due


def test_continuous_hours_count_elapsed_time_in_a_dst_timezone() -> None:
    """cases.md § Deadlines: "continuous hours (nights and holidays count)" are elapsed hours. A bureau
    whose calendar is in a DST timezone lost an hour over the spring change: Python adds a timedelta
    to a zoned time on the wall clock (24 h from Saturday 12:00 CET read Sunday 12:00 CEST, 23 h)."""
    berlin = ZoneInfo("Europe/Berlin")
    calendar = parse_calendar({"timezone": "Europe/Berlin"})
    start = datetime(2026, 3, 28, 12, 0, tzinfo=berlin)  # clocks go forward on 2026-03-29 at 02:00
    due = deadline(start, Deadline(24, "hours"), calendar)
    assert due == datetime(2026, 3, 29, 13, 0, tzinfo=berlin)
    assert due.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=24)
    assert time_used(start, due, "hours", calendar) == 24
    assert time_used(start, deadline(start, Deadline(90, "minutes"), calendar), "minutes", calendar) == 90


def test_the_on_site_clock_counts_elapsed_minutes_over_a_dst_change() -> None:
    """cases.md § Deadlines, 双十: someone on site within the minutes, elapsed. Filing and dispatch
    added them on the wall clock (at 02:45 CEST on the autumn change, 30 min read 03:15 CET: 90 min)."""
    berlin = ZoneInfo("Europe/Berlin")
    calendar = parse_calendar({"timezone": "Europe/Berlin"})
    start = datetime(2026, 10, 25, 2, 45, tzinfo=berlin)  # the first 02:45 (CEST): clocks go back at 03:00
    due = on_site_due(start, 30, calendar)
    assert due is not None and due.astimezone(UTC) - start.astimezone(UTC) == timedelta(minutes=30)
    assert on_site_due(start, None, calendar) is None


@pytest.mark.parametrize(
    ("handled_after", "overdue"),
    [(timedelta(0), False), (timedelta(seconds=1), True)],
)
def test_handled_exactly_at_the_deadline_is_on_time(
    domain: Domain, handled_after: timedelta, overdue: bool
) -> None:
    """cases.md § Deadlines / § Performance metrics "handled by deadline": the deadline itself is on
    time, a second later is overdue, for the flow log and for the open-case view alike."""
    filed = at("2026-11-23T09:00")  # Monday
    case = Case(number="SO202611230001", source="patrol_photo", state="reported", lat=34.7, lon=113.6)
    case.first_seen_at = case.last_seen_at = case.filed_at = filed
    for name, value in domain.event_fields("exposed_garbage").items():
        setattr(case, name, value)
    case.flow = [FlowEntry(action="report", to_state="reported", operator="scan", at=filed, overdue=False)]
    for action, fields in [
        (Action.CONFIRM, {}),
        (Action.FILE, {}),
        (Action.DISPATCH, {"department": "环卫"}),
        (Action.START, {}),
    ]:
        domain.move(case, Command(action=action, operator="t", at=filed, **fields))  # type: ignore[arg-type]
    assert case.deadline_at == at("2026-11-23T15:00")  # 4 working hours: 09-12, 14-15
    when = case.deadline_at + handled_after
    assert is_overdue(case, when) is overdue
    domain.move(case, Command(action=Action.HANDLE, operator="t", at=when, evidence_id=1))
    assert case.flow[-1].overdue is overdue


# --- cases.md "Unit grid code" ------------------------------------------------------------------------


def test_example_grids_are_numbered_west_to_east_then_north_to_south() -> None:
    """cases.md § Unit grid code: "3 grid sequence (numbered west→east, then north→south inside a
    community)", 15 digits = county 6 + street 3 + community 3 + sequence 3, in the shipped example."""
    communities: dict[str, list[Any]] = {}
    for grid in GRIDS:
        assert len(grid.code) == 15 and grid.code.isdigit()
        communities.setdefault(grid.code[:12], []).append(grid)
    assert len(communities) == 2
    for grids in communities.values():
        middles = [grid.geometry.centroid for grid in sorted(grids, key=lambda g: g.code)]
        for before, after in pairwise(middles):
            same_row = abs(after.y - before.y) < 0.0004  # rows are 0.001° (about 110 m) apart
            assert (after.x > before.x) if same_row else (after.y < before.y)


# --- cases.md "Duplicates": about 50 m and 24 h, inclusive ----------------------------------------


@pytest.fixture
def factory(tmp_path: Any) -> sessionmaker[Session]:
    return open_database(f"sqlite:///{tmp_path / 'cases.db'}")


@pytest.fixture(scope="module")
def rules() -> CaseRules:
    return load_case_rules(Settings(), grids=GRIDS)


def garbage(name: str, when: datetime, lat: float, lon: float) -> Finding:
    return Finding(
        event="exposed_garbage",
        lat=lat,
        lon=lon,
        seen_at=when,
        photo_path=f"/archive/{name}.jpg",
        photo_sha256=hashlib.sha256(name.encode()).hexdigest(),
        reporter="王网格员",
    )


@pytest.mark.parametrize(
    ("later", "joins"),
    [
        (timedelta(hours=24), True),  # "within 24 h": exactly 24 h is within
        (timedelta(hours=-24), True),  # an older photo scanned later, exactly 24 h before
        (timedelta(hours=24, seconds=1), False),
        (timedelta(hours=-24, seconds=-1), False),
    ],
)
def test_duplicate_window_is_inclusive(
    factory: sessionmaker[Session], rules: CaseRules, later: timedelta, joins: bool
) -> None:
    """cases.md § Duplicates: "an open case of the same class within about 50 m and 24 h"."""
    t0, (lat, lon) = at("2026-11-20T11:30"), (34.7227, 113.6276)
    with transaction(factory) as session:
        first = record_finding(session, garbage("a", t0, lat, lon), rules).case.id
    with transaction(factory) as session:
        update = record_finding(session, garbage("b", t0 + later, lat, lon), rules)
        assert (update.case.id == first) is joins and update.created is not joins


def test_a_duplicate_across_a_grid_edge_joins_the_case_in_its_first_grid(
    factory: sessionmaker[Session], rules: CaseRules
) -> None:
    """cases.md § Duplicates (by distance, not by grid) and § Unit grid code (grids tile with no
    overlap): one pile photographed from both sides of the edge between grids 004 and 005 (lon
    113.62701, about 5 m either side) is one case, kept in the grid it was first found in."""
    t0, lat = at("2026-11-20T11:30"), 34.7227
    west, east = rules.grid_at(lat, 113.62696), rules.grid_at(lat, 113.62706)
    assert (west and west.code, east and east.code) == ("410103001001004", "410103001001005")
    with transaction(factory) as session:
        first = record_finding(session, garbage("a", t0, lat, 113.62706), rules).case
        first_id, first_grid = first.id, first.grid_code
    with transaction(factory) as session:
        update = record_finding(session, garbage("b", t0 + timedelta(hours=1), lat, 113.62696), rules)
        assert update.case.id == first_id and not update.created
        assert update.case.grid_code == first_grid == "410103001001005"


# --- cases.md "Performance metrics (综合评价)" -----------------------------------------------------


def facts(**changes: Any) -> CaseFacts:
    base: dict[str, Any] = {
        "event": "exposed_garbage",
        "grid_code": "410103001001005",
        "street": "淮河路街道",
        "department": "环卫",
        "problem": True,
        "pending_review": False,
        "valid": True,
        "rejected": False,
        "filed": True,
        "missed": False,
        "due": True,
        "handled": True,
        "handled_on_time": True,
        "closed": True,
        "closed_on_time": True,
        "reworked": False,
        "overtime_multiple": None,
    }
    return CaseFacts(**{**base, **changes})


def test_rates_with_nothing_due_are_none_beside_those_that_have_a_denominator() -> None:
    """cases.md § Performance metrics: filing rate = filed / valid reports exists while nothing was
    dispatched yet; disposal, on-time and closing rates (/ due) and rework (/ handled) are then none
    (not 0 %: nothing was late)."""
    result = rates([facts(due=False, handled=False, closed=False), facts(filed=False, due=False)])
    assert (result["valid"], result["filed"], result["filing_rate"]) == (2, 1, 0.5)
    for name in ("disposal_rate", "on_time_disposal_rate", "closing_rate", "on_time_closing_rate"):
        assert result[name] is None, name
    assert result["rework_rate"] is None


def test_rates_are_exact_fractions() -> None:
    """cases.md § Performance metrics: rates are ratios; the product returns them unrounded (1/3 is
    1/3, not 0.33 or 33 %), so sums and rankings are computed before any display rounds them."""
    result = rates(
        [
            facts(),
            facts(handled_on_time=False, closed_on_time=False),
            facts(handled=False, handled_on_time=False, closed=False, closed_on_time=False),
        ]
    )
    assert result["disposal_rate"] == 2 / 3
    assert result["on_time_disposal_rate"] == result["on_time_closing_rate"] == 1 / 3


@pytest.mark.parametrize(
    ("weights", "score"),
    [
        ({"filing_rate": 0.0}, None),  # every weight 0: no score (was a ZeroDivisionError, a 500)
        ({"filing_rate": 0.0, "disposal_rate": 1.0}, 0.5),  # a 0 weight leaves its rate out
    ],
)
def test_a_zero_weight_leaves_its_rate_out(weights: dict[str, float], score: float | None) -> None:
    """cases.md § Performance metrics: "Weighted composite scores differ by city: keep weights
    configurable"; configs/stats.yaml accepts 0, which a city uses to leave a rate out."""
    assert composite_score({"filing_rate": 1.0, "disposal_rate": 0.5}, weights) == score


@pytest.mark.parametrize(
    ("last", "state", "due", "closed", "closed_on_time"),
    [
        ("close", "closed", True, True, True),
        ("force_close", "force_closed", True, True, True),  # interpretation: 强制结案 is a closing
        ("cancel", "cancelled", False, False, False),  # 作废 after dispatch: not due for closing
    ],
)
def test_what_counts_as_closed(last: str, state: str, due: bool, closed: bool, closed_on_time: bool) -> None:
    """cases.md § Performance metrics: 结案率 / 按期结案率 = closed (on time) / due for closing
    (dispatched, not cancelled); a forced close (§ Workflow and states) ends the case as closed."""
    filed = at("2026-11-23T09:00")
    case = Case(number="SO202611230001", source="patrol_photo", state=state, event="exposed_garbage")
    case.auto_filed, case.deadline_at = False, at("2026-11-23T15:00")
    case.flow = [
        FlowEntry(action=action, at=filed + timedelta(minutes=i), operator="t", overdue=False)
        for i, action in enumerate(["report", "confirm", "file", "dispatch", last])
    ]
    found = facts_of(case, case.flow, CALENDAR, lambda event: "working_hours")
    assert (found.due, found.closed, found.closed_on_time) == (due, closed, closed_on_time)


def test_overtime_multiple_in_working_hours() -> None:
    """cases.md § Performance metrics: 超时倍数 = (used − limit) / limit, counted from dispatch in the
    class's unit: 4 working hours allowed from Monday 09:00 (due 15:00), handled at 17:00 = 6 used."""
    dispatched, handled = at("2026-11-23T09:00"), at("2026-11-23T17:00")
    due = deadline(dispatched, Deadline(4, "working_hours"), CALENDAR)
    flow = [
        FlowEntry(action="file", at=dispatched, operator="t"),
        FlowEntry(action="dispatch", at=dispatched, operator="t"),
        FlowEntry(action="handle", at=handled, operator="t"),
    ]
    assert overtime_multiple(flow, handled, due, "working_hours", CALENDAR) == 0.5


# --- cases.md "Open311" -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "ok"),
    [
        (at("2026-01-01T00:00"), at("2026-04-01T00:00"), True),  # exactly 90 days
        (at("2026-01-01T00:00"), at("2026-04-01T00:00:01"), False),  # a second more
        (at("2026-01-01T10:00"), at("2026-04-01T22:00"), False),  # 90.5 days (passed: 91 were allowed)
        (at("2026-01-01T00:00"), at("2026-04-01T23:59:59.999999"), True),  # end_date=2026-04-01
        (at("2026-01-01T00:00"), at("2026-04-02T23:59:59.999999"), False),  # end_date=2026-04-02
    ],
)
def test_open311_range_is_at_most_90_days(start: datetime, end: datetime, ok: bool) -> None:
    """cases.md § Open311: "start_date, end_date ≤ 90 days apart" (a date alone as end_date is its
    whole day, so dates 90 days apart pass)."""
    now = at("2026-12-01T00:00")
    if ok:
        assert check_range(start, end, now) == (start, end)
    else:
        with pytest.raises(InvalidInput, match="90 days"):
            check_range(start, end, now)


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("reported", "open"),
        ("dispatched", "open"),
        ("handled", "open"),  # handled is not closed: the fix is not verified yet
        ("check_passed", "open"),  # verified, not yet closed
        ("suspended", "open"),
        ("closed", "closed"),
        ("force_closed", "closed"),
        # interpretation (docs/open311.md): a request that ended unfiled or cancelled is closed too
        ("cancelled", "closed"),
        ("not_filed", "closed"),
    ],
)
def test_open311_mapping(state: str, status: str) -> None:
    """cases.md § Open311: "service_code = event code, agency_responsible = department,
    expected_datetime = deadline, status closed only when the case is closed"."""
    due = at("2026-11-23T15:00")
    case = Case(
        number="SO202611230001",
        source="public",
        state=state,
        event="illegal_small_ad",
        gbt47678="07001",
        department="街道城管中队",
        deadline_at=due,
        lat=34.7227,
        lon=113.6276,
        description="非法小广告",
        first_seen_at=at("2026-11-23T09:00"),
        last_seen_at=at("2026-11-23T09:00"),
    )
    request = as_request(case, TAXONOMY, "http://testserver/")
    assert request.status == status
    assert (request.service_code, request.agency_responsible, request.expected_datetime) == (
        "07001",
        "街道城管中队",
        due,
    )
    assert request.service_request_id == "SO202611230001"


# --- cases.md "Performance metrics": rates as the console shows them ------------------------------


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the console's own module")
def test_the_console_never_rounds_a_shortfall_to_100_percent() -> None:
    """cases.md § Performance metrics and "streets are ranked ... with rewards and penalties": the
    console's percent (serve/static/dom.js) rounds to whole percent, but 299 of 300 on time is 99%,
    not 100% (a street shown as all on time that was not), and 1 in 300 is 1%, not 0%."""
    rates_shown = [0, 1 / 300, 0.5, 0.1234, 299 / 300, 0.9951, 1, None]
    script = (
        "globalThis.document = {querySelector: () => null};"  # dom.js reads the page's timezone meta
        f"const {{percent}} = await import({json.dumps((ROOT / 'serve/static/dom.js').as_uri())});"
        f"console.log(JSON.stringify({json.dumps(rates_shown)}.map(percent)));"
    )
    shown = subprocess.run(
        ["node", "--input-type=module", "-e", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert json.loads(shown) == ["0%", "1%", "50%", "12%", "99%", "99%", "100%", "—"]
