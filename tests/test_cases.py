"""Case intake on a real database: new cases, duplicates by distance and time, numbering, locking."""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from configured import CONFIGS
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from serve.cases.db import open_database, transaction
from serve.cases.deadlines import load_calendar
from serve.cases.errors import InvalidInput
from serve.cases.findings import CaseRules, Finding, record_finding
from serve.cases.grids import EARTH_RADIUS_M, load_grids
from serve.cases.orm import Case, CaseCounter, Evidence, FlowEntry
from serve.cases.workflow import AutoFiling
from vision.core.boxes import Box
from vision.core.taxonomy import load_taxonomy

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 20, 11, 30, tzinfo=TZ)  # a Friday
GRIDS = load_grids(CONFIGS / "grids.example.geojson")
GRID = GRIDS.get("410103001001005")
assert GRID is not None
HOME = GRID.geometry.representative_point()
LAT, LON = HOME.y, HOME.x


@pytest.fixture(scope="module")
def rules() -> CaseRules:
    return CaseRules(
        taxonomy=load_taxonomy(CONFIGS / "taxonomy.yaml"),
        calendar=load_calendar(CONFIGS / "calendar.yaml"),
        grids=GRIDS,
        prefix="SO",
    )


@pytest.fixture
def factory(tmp_path) -> sessionmaker[Session]:
    """SQLite only: for the long tables."""
    return open_database(f"sqlite:///{tmp_path / 'cases.db'}")


@pytest.fixture
def both(db_url: str) -> sessionmaker[Session]:
    """SQLite and PostgreSQL: intake must behave the same on both."""
    return open_database(db_url)


def moved(metres_north: float, metres_east: float = 0.0) -> tuple[float, float]:
    lat = LAT + math.degrees(metres_north / EARTH_RADIUS_M)
    lon = LON + math.degrees(metres_east / (EARTH_RADIUS_M * math.cos(math.radians(LAT))))
    return lat, lon


def finding(
    name: str,
    *,
    at: datetime = T0,
    place: tuple[float, float] = (LAT, LON),
    event: str = "exposed_garbage",
    model: str | None = "street-v1@0123456789ab",
) -> Finding:
    return Finding(
        event=event,
        lat=place[0],
        lon=place[1],
        seen_at=at,
        photo_path=f"/archive/{name}.jpg",
        photo_sha256=hashlib.sha256(name.encode()).hexdigest(),
        boxes=(
            Box((10.0, 20.0, 110.0, 220.0), 0.8, "garbage"),
            Box((300.0, 40.0, 380.0, 90.0), 0.6, "garbage"),
        ),
        model_version=model,
    )


def record(factory: sessionmaker[Session], rules: CaseRules, item: Finding) -> tuple[int, bool]:
    with transaction(factory) as session:
        update = record_finding(session, item, rules)
        return update.case.id, update.created


def count(factory: sessionmaker[Session], what: type) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(what)) or 0)


@pytest.mark.parametrize(
    ("north_m", "east_m", "hours", "event", "first_state", "merged"),
    [
        (0, 0, 0, "exposed_garbage", "reported", True),
        (30, 0, 2, "exposed_garbage", "reported", True),
        (0, 49, 23.9, "exposed_garbage", "reported", True),
        (35, 35, 1, "exposed_garbage", "dispatched", True),  # 49.5 m diagonally, case being handled
        (0, 51, 1, "exposed_garbage", "reported", False),  # just outside the radius
        (36, 36, 1, "exposed_garbage", "reported", False),  # 50.9 m diagonally
        (10, 0, 24.1, "exposed_garbage", "reported", False),  # just after the window
        (10, 0, -23, "exposed_garbage", "reported", True),  # an older photo scanned later
        (10, 0, -25, "exposed_garbage", "reported", False),
        (10, 0, 1, "overflowing_bin", "reported", False),  # another event at the same spot
        (10, 0, 1, "exposed_garbage", "closed", False),  # closed cases take no new evidence
        (10, 0, 1, "exposed_garbage", "cancelled", False),
        (10, 0, 1, "exposed_garbage", "not_filed", False),  # rejected AI finding
        (10, 0, 1, "exposed_garbage", "suspended", True),  # 挂账 is still open
    ],
)
def test_duplicates_by_distance_time_event_and_state(
    factory: sessionmaker[Session],
    rules: CaseRules,
    north_m: float,
    east_m: float,
    hours: float,
    event: str,
    first_state: str,
    merged: bool,
) -> None:
    first_id, created = record(factory, rules, finding("first"))
    assert created
    if first_state != "reported":
        with transaction(factory) as session:
            session.get_one(Case, first_id).state = first_state
    second_id, created = record(
        factory,
        rules,
        finding("second", at=T0 + timedelta(hours=hours), place=moved(north_m, east_m), event=event),
    )
    assert created is not merged
    assert (second_id == first_id) is merged
    assert count(factory, Case) == (1 if merged else 2)
    assert count(factory, Evidence) == 2


def test_new_case_fields(both: sessionmaker[Session], rules: CaseRules) -> None:
    case_id, _ = record(both, rules, finding("p1"))
    with both() as session:
        case = session.get_one(Case, case_id)
        assert case.number == "SO202611200001"
        assert (case.event, case.major, case.cjt214, case.gbt47678) == (
            "exposed_garbage",
            "01",
            "0102",
            "06010",
        )
        assert case.record_type == "event" and case.source == "patrol_photo"
        assert (case.grid_code, case.street, case.community) == (GRID.code, GRID.street, GRID.community)
        assert case.address is not None and GRID.name in case.address
        assert (case.lat, case.lon) == (LAT, LON)
        assert case.state == "reported" and case.ai_review == "pending"
        assert case.filed_at == case.first_seen_at == case.last_seen_at == T0
        assert case.deadline_at is None and case.auto_filed is False  # no clock before filing (立案)
        [evidence] = case.evidence
        assert evidence.sha256 == hashlib.sha256(b"p1").hexdigest() and evidence.path == "/archive/p1.jpg"
        assert evidence.confidence == pytest.approx(0.8)
        assert evidence.boxes[0] == {
            "xyxy": [10.0, 20.0, 110.0, 220.0],
            "confidence": 0.8,
            "class": "garbage",
        }
        assert evidence.model_version == "street-v1@0123456789ab" and evidence.role == "finding"
        [entry] = case.flow
        assert (entry.action, entry.from_state, entry.to_state, entry.at) == ("report", None, "reported", T0)
        assert entry.operator == "scan"


def test_a_trusted_class_is_filed_when_seen(both: sessionmaker[Session], rules: CaseRules) -> None:
    trusting = replace(rules, auto_filing=AutoFiling({"exposed_garbage": 0.8}))
    case_id, _ = record(both, trusting, finding("p1"))  # confidence 0.8
    with both() as session:
        case = session.get_one(Case, case_id)
        assert (case.state, case.auto_filed, case.ai_review) == ("filed", True, "pending")
        assert [(e.action, e.to_state, e.operator, e.at) for e in case.flow] == [
            ("report", "reported", "scan", T0),
            ("file", "filed", "auto-filing", T0),
        ]
        # 4 working hours from Friday 11:30: 0.5 h before lunch, 3.5 h after it
        assert case.deadline_at == datetime(2026, 11, 20, 17, 30, tzinfo=TZ)
    sceptical = replace(rules, auto_filing=AutoFiling({"exposed_garbage": 0.81}))
    case_id, _ = record(both, sceptical, finding("p2", at=T0 + timedelta(days=3)))
    with both() as session:
        assert session.get_one(Case, case_id).state == "reported"


def test_inspector_findings_need_no_ai_review(factory: sessionmaker[Session], rules: CaseRules) -> None:
    case_id, _ = record(factory, rules, finding("by-hand", model=None))
    with factory() as session:
        assert session.get_one(Case, case_id).ai_review is None


def test_merging_widens_the_seen_period_and_bumps_the_version(
    both: sessionmaker[Session], rules: CaseRules
) -> None:
    case_id, _ = record(both, rules, finding("a"))
    record(both, rules, finding("b", at=T0 + timedelta(hours=2), place=moved(20)))
    record(both, rules, finding("c", at=T0 - timedelta(hours=1), place=moved(-20)))
    with both() as session:
        case = session.get_one(Case, case_id)
        assert case.first_seen_at == T0 - timedelta(hours=1)
        assert case.last_seen_at == T0 + timedelta(hours=2)
        assert case.filed_at == T0 and (case.lat, case.lon) == (LAT, LON)
        assert [e.path for e in case.evidence] == ["/archive/a.jpg", "/archive/b.jpg", "/archive/c.jpg"]
        assert case.version == 3
        assert len(case.flow) == 1


def test_the_same_photo_twice_adds_nothing(both: sessionmaker[Session], rules: CaseRules) -> None:
    first = record(both, rules, finding("same"))
    again = record(both, rules, finding("same"))
    assert again == (first[0], False)
    assert count(both, Evidence) == 1


def test_numbers_follow_the_local_day(both: sessionmaker[Session], rules: CaseRules) -> None:
    far = [moved(0, 200 * i) for i in range(4)]
    numbers = []
    for i, (at, place) in enumerate(
        [
            (T0, far[0]),
            (T0, far[1]),
            (T0 + timedelta(hours=1), far[2]),
            # 07:00 on the 21st in Zhengzhou is still the 20th in UTC: numbered by the local day
            (datetime(2026, 11, 21, 7, 0, tzinfo=TZ), far[3]),
        ]
    ):
        case_id, _ = record(both, rules, finding(f"n{i}", at=at, place=place))
        with both() as session:
            numbers.append(session.get_one(Case, case_id).number)
    assert numbers == ["SO202611200001", "SO202611200002", "SO202611200003", "SO202611210001"]


def test_outside_the_grid_layout(factory: sessionmaker[Session], rules: CaseRules) -> None:
    case_id, created = record(factory, rules, finding("far", place=(34.80, 113.70)))
    with factory() as session:
        case = session.get_one(Case, case_id)
        assert created and case.grid_code is None and case.street is None and case.address is None


def test_a_rolled_back_transaction_leaves_nothing(both: sessionmaker[Session], rules: CaseRules) -> None:
    with pytest.raises(RuntimeError), transaction(both) as session:
        record_finding(session, finding("lost"), rules)
        raise RuntimeError("crash after the finding, before commit")
    assert count(both, Case) == count(both, Evidence) == count(both, FlowEntry) == 0
    with both() as session:
        assert session.get(CaseCounter, "20261120") is None
    case_id, _ = record(both, rules, finding("kept"))
    with both() as session:
        assert session.get_one(Case, case_id).number == "SO202611200001"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event": "alien_landing"}, "event"),
        ({"lat": 95.0}, "lat/lon"),
        ({"lat": 0.0, "lon": 0.0}, "lat/lon"),
        ({"seen_at": datetime(2026, 11, 20, 9, 0)}, "seen_at"),
        ({"photo_sha256": "not-a-hash"}, "photo_sha256"),
    ],
)
def test_bad_findings_are_refused_naming_the_field(
    factory: sessionmaker[Session], rules: CaseRules, change: dict[str, object], field: str
) -> None:
    base = finding("bad")
    bad = Finding(**{**base.__dict__, **change})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as caught, transaction(factory) as session:
        record_finding(session, bad, rules)
    assert caught.value.extra["field"] == field
    assert count(factory, Case) == 0


def test_concurrent_reports_of_one_violation_make_one_case(db_url: str, rules: CaseRules) -> None:
    """Eight reporters at once, on SQLite and on PostgreSQL: one case, eight pieces of evidence."""
    factory = open_database(db_url)
    workers = 8
    start = threading.Barrier(workers)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def report(i: int) -> None:
        try:
            start.wait()
            results.append(
                record(factory, rules, finding(f"c{i}", place=moved(i * 3), at=T0 + timedelta(minutes=i)))
            )
        except BaseException as err:  # collected, so the test fails with the worker's error
            errors.append(err)

    threads = [threading.Thread(target=report, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(created for _, created in results) == 1
    assert len({case_id for case_id, _ in results}) == 1
    assert count(factory, Case) == 1 and count(factory, Evidence) == workers
    with factory() as session:
        assert session.scalar(select(Case.number)) == "SO202611200001"
