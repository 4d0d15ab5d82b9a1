"""Metrics against hand-computed values: eight cases in two streets driven through the API, then
/v1/stats, the 10-day street ranking and the worst spots; plus the pure pieces as tables."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from configured import CONFIGS
from conftest import Service, on_site
from shapely.geometry import box

from serve.cases.grids import area_km2
from serve.cases.stats import CaseFacts, composite_score, rates, ten_day_period

TZ = ZoneInfo("Asia/Shanghai")
MONDAY = datetime(2025, 9, 29, 8, 0, tzinfo=TZ)
# a report of 08:30 confirmed, filed, dispatched at 09:00 (4 working hours for garbage: due 15:00), started
TO_HANDLING = ((8.6, "confirm", {}), (8.7, "file", {}), (9, "dispatch", {}), (9.5, "start", {}))
# Street 甲 has two unit grids, the second three times the size of the others; street 乙 has one:
# 乙's two problems weigh four times as much per km² as 甲's two.
GRIDS = {
    "410103001001001": ("甲街道", box(113.600, 34.700, 113.601, 34.701)),
    "410103001001002": ("甲街道", box(113.601, 34.700, 113.602, 34.703)),
    "410103002001001": ("乙街道", box(113.602, 34.700, 113.603, 34.701)),
}


def centre(code: str) -> dict[str, float]:
    point = GRIDS[code][1].centroid
    return {"lat": round(point.y, 6), "long": round(point.x, 6)}


@pytest.fixture
def service_overrides(tmp_path: Path) -> dict[str, object]:
    features = [
        {
            "type": "Feature",
            "properties": {"code": code, "street": street, "community": "测试社区"},
            "geometry": {"type": "Polygon", "coordinates": [list(map(list, shape.exterior.coords))]},
        }
        for code, (street, shape) in GRIDS.items()
    ]
    path = tmp_path / "grids.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    # the shipped cameras stand in the example layout's grids, outside these: a service refuses them
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs, ignore=shutil.ignore_patterns("datasets", "cameras.yaml"))
    return {"grids": path, "configs_dir": configs}


class Driver:
    """Moves cases through the API with the service clock at the given bureau times."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.places: dict[int, dict[str, float]] = {}  # case id -> where it was reported

    def report(self, code: str, grid: str, hour: float) -> int:
        self.service.clock.at = MONDAY.replace(hour=int(hour), minute=int(hour % 1 * 60))
        posted = self.service.client.post(
            "/open311/v2/requests.json",
            data={"service_code": code, **centre(grid)},
            headers=self.service.auth("report"),
        )
        assert posted.status_code == 201, posted.text
        number = posted.json()[0]["service_request_id"]
        items = self.service.client.get("/v1/cases", headers=self.service.auth("cases:read")).json()["items"]
        case_id = next(int(c["id"]) for c in items if c["number"] == number)
        self.places[case_id] = centre(grid)
        return case_id

    def steps(self, case_id: int, *moves: tuple[float, str, dict[str, Any]]) -> None:
        for hour, action, fields in moves:
            self.service.clock.at = MONDAY.replace(hour=int(hour), minute=round(hour % 1 * 60))
            if action == "handle":
                place = self.places[case_id]
                after = on_site(fields.pop("jpeg"), place["lat"], place["long"], self.service.clock())
                photo = self.service.client.post(
                    f"/v1/cases/{case_id}/evidence",
                    files={"file": ("after.jpg", after, "image/jpeg")},
                    headers=self.service.auth("cases:write"),
                )
                fields = {"evidence_id": photo.json()["id"]}
            read = self.service.client.get(f"/v1/cases/{case_id}", headers=self.service.auth("cases:read"))
            done = self.service.client.post(
                f"/v1/cases/{case_id}/transitions",
                json={"action": action, **fields},
                headers={**self.service.auth("cases:write"), "If-Match": read.headers["ETag"]},
            )
            assert done.status_code == 200, done.text


def test_rates_ranking_and_worst_spots_match_hand_counts(service: Service, jpeg: Any) -> None:
    drive = Driver(service)
    a1, a2, b1 = GRIDS
    # 1: handled and closed on time. Dispatched 09:00, 4 working hours: due 15:00 (lunch 12-14).
    one = drive.report("06010", a1, 8.5)
    drive.steps(
        one,
        (8.6, "confirm", {}),
        (8.7, "file", {}),
        (9, "dispatch", {}),
        (9.5, "start", {}),
        (11, "handle", {"jpeg": jpeg(seed=1)}),
        (11.2, "check_pass", {}),
        (11.4, "close", {}),
    )
    # 2: a false report, rejected: counts as a report, not as a valid one nor as a problem.
    two = drive.report("07001", a1, 8.5)
    drive.steps(two, (8.6, "reject", {"note": "误报"}))
    # 3: handled late twice (rework), closed late. Due 15:00; handled 15:30 and 16:00.
    three = drive.report("06010", a2, 8.5)
    drive.steps(
        three,
        (8.6, "confirm", {}),
        (8.7, "file", {}),
        (9, "dispatch", {}),
        (9.5, "start", {}),
        (15.5, "handle", {"jpeg": jpeg(seed=2)}),
        (15.6, "check_fail", {"note": "返工"}),
        (16, "handle", {"jpeg": jpeg(seed=3)}),
        (16.2, "check_pass", {}),
        (16.4, "close", {}),
    )
    # 4: verified, never filed; 5: dispatched then cancelled; 6: still reported.
    four = drive.report("06042", b1, 8.5)
    drive.steps(four, (8.6, "confirm", {}))
    five = drive.report("06010", b1, 8.5)
    drive.steps(
        five, (8.6, "confirm", {}), (8.7, "file", {}), (9, "dispatch", {}), (9.2, "cancel", {"note": "重复"})
    )
    drive.report("09009", b1, 8.5)
    # 7: shop overflow filed at 08:42 and left: due 60 minutes later, the only one overdue at noon.
    seven = drive.report("09005", b1, 8.5)
    drive.steps(seven, (8.6, "confirm", {}), (8.7, "file", {}))
    # 8: a debris heap filed at 08:42: a problem, due in 2 working days, not overdue at noon.
    eight = drive.report("06011", b1, 8.5)
    drive.steps(eight, (8.6, "confirm", {}), (8.7, "file", {}))

    reader = service.auth("cases:read")
    total = service.client.get("/v1/stats", headers=reader).json()["total"]
    counts = {
        k: total[k]
        for k in (
            "reports",
            "pending_review",
            "valid",
            "rejected",
            "filed",
            "missed",
            "due",
            "handled",
            "handled_on_time",
            "closed",
            "closed_on_time",
            "reworked",
            "overtime_cases",
        )
    }
    assert counts == {
        "reports": 8,
        "pending_review": 1,
        "valid": 6,
        "rejected": 1,
        "filed": 5,
        "missed": 5,  # every case came from a citizen (Open311): none was found by the patrol first
        "due": 2,
        "handled": 2,
        "handled_on_time": 1,
        "closed": 2,
        "closed_on_time": 1,
        "reworked": 1,
        "overtime_cases": 1,
    }
    assert total["filing_rate"] == 5 / 6 and total["disposal_rate"] == 1.0
    assert total["valid_report_rate"] == 6 / 7 and total["miss_rate"] == 1.0
    assert total["on_time_disposal_rate"] == total["on_time_closing_rate"] == 1 / 2
    assert total["closing_rate"] == 1.0 and total["rework_rate"] == 1 / 2
    # case 3: allowed 4 working hours, used 09:00-16:00 minus lunch = 5: (5 - 4) / 4
    assert total["overtime_multiple_mean"] == pytest.approx(0.25) == total["overtime_multiple_max"]

    by_street = service.client.get("/v1/stats", params={"group_by": "street"}, headers=reader).json()[
        "groups"
    ]
    streets = {g["key"]: g for g in by_street}
    area_a, area_b = area_km2(GRIDS[a1][1]) + area_km2(GRIDS[a2][1]), area_km2(GRIDS[b1][1])
    assert streets["甲街道"]["area_km2"] == pytest.approx(area_a)
    assert streets["甲街道"]["problems_per_km2"] == pytest.approx(2 / area_a)
    # 乙: case 4 was never filed, 5 was cancelled, 6 awaits review: only cases 7 and 8 are problems.
    assert streets["乙街道"]["problems_per_km2"] == pytest.approx(2 / area_b)
    # the total over the whole layout: its four problems (1, 3, 7, 8) per km² of the three grids;
    # it gave no area and no problems per km², the one figure the domain counts problems by
    assert total["area_km2"] == pytest.approx(area_a + area_b)
    assert total["problems_per_km2"] == pytest.approx(4 / (area_a + area_b))
    assert (
        streets["乙街道"]["filing_rate"],
        streets["乙街道"]["due"],
        streets["乙街道"]["disposal_rate"],
    ) == (3 / 4, 0, None)
    by_grid = service.client.get("/v1/stats", params={"group_by": "grid"}, headers=reader).json()["groups"]
    assert [(g["key"], g["reports"]) for g in by_grid] == [(a1, 2), (a2, 1), (b1, 5)]
    by_department = service.client.get("/v1/stats", params={"group_by": "department"}, headers=reader).json()
    assert {g["key"]: g["due"] for g in by_department["groups"]} == {"二七区环境卫生服务中心": 2, None: 0}

    ranking = service.client.get("/v1/stats/ranking", params={"day": "2025-09-29"}, headers=reader).json()
    assert ranking["period"] == "2025-09-3"
    assert [(r["rank"], r["street"], r["problems"]) for r in ranking["streets"]] == [
        (1, "乙街道", 2),
        (2, "甲街道", 2),
    ]
    assert ranking["streets"][1]["on_time_closing_rate"] == 1 / 2
    earlier = service.client.get("/v1/stats/ranking", params={"day": "2025-09-15"}, headers=reader).json()
    assert [r["problems"] for r in earlier["streets"]] == [0, 0]

    spots = service.client.get("/v1/stats/worst-spots", headers=reader).json()["spots"]
    assert [(s["grid_code"], s["open_cases"]) for s in spots] == [
        (b1, 2)
    ]  # cases 7 and 8; 4 and 6 are in review
    assert spots[0]["open_per_km2"] == pytest.approx(2 / area_b)
    noon = MONDAY.replace(hour=12).isoformat()
    overdue = service.client.get(
        "/v1/cases", params={"overdue": "true", "as_of": noon}, headers=reader
    ).json()
    assert [c["id"] for c in overdue["items"]] == [seven]
    in_review = service.client.get("/v1/cases", params={"state": ["reported", "verified"]}, headers=reader)
    assert {c["deadline_at"] for c in in_review.json()["items"]} == {None}  # no clock before filing

    since = service.client.get(
        "/v1/stats", params={"since": (MONDAY + timedelta(days=1)).isoformat()}, headers=reader
    ).json()
    assert since["total"]["reports"] == 0

    metrics = service.client.get("/metrics", headers=reader).text
    assert 'streetorder_cases{state="closed"} 2.0' in metrics
    assert 'streetorder_cases{state="reported"} 1.0' in metrics
    transitions = 'method="POST",route="/v1/cases/{case_id}/transitions"'
    assert f'streetorder_http_requests_total{{{transitions},status="200"}} 26.0' in metrics  # 7+1+9+1+4+2+2
    assert f"streetorder_http_request_seconds_count{{{transitions}}} 26.0" in metrics


@pytest.mark.parametrize(
    ("day", "start", "end", "label"),
    [
        (date(2025, 9, 1), date(2025, 9, 1), date(2025, 9, 11), "2025-09-1"),
        (date(2025, 9, 10), date(2025, 9, 1), date(2025, 9, 11), "2025-09-1"),
        (date(2025, 9, 11), date(2025, 9, 11), date(2025, 9, 21), "2025-09-2"),
        (date(2025, 9, 30), date(2025, 9, 21), date(2025, 10, 1), "2025-09-3"),
        (date(2024, 2, 29), date(2024, 2, 21), date(2024, 3, 1), "2024-02-3"),
        (date(2025, 12, 31), date(2025, 12, 21), date(2026, 1, 1), "2025-12-3"),
    ],
)
def test_ten_day_periods(day: date, start: date, end: date, label: str) -> None:
    assert ten_day_period(day) == (start, end, label)


def facts(**changes: Any) -> CaseFacts:
    base = dict(
        event="exposed_garbage",
        grid_code="g",
        street="s",
        department="d",
        problem=True,
        pending_review=False,
        valid=True,
        rejected=False,
        filed=True,
        missed=False,
        due=True,
        handled=True,
        handled_on_time=True,
        closed=True,
        closed_on_time=True,
        reworked=False,
        overtime_multiple=None,
    )
    return CaseFacts(**{**base, **changes})  # type: ignore[arg-type]


def test_rates_of_no_cases_are_none_not_zero() -> None:
    empty = rates([])
    assert empty["reports"] == 0 and all(
        empty[k] is None for k in ("filing_rate", "disposal_rate", "rework_rate")
    )


def test_rates_count_only_due_cases_for_disposal() -> None:
    items = [
        facts(),
        facts(due=False, handled=True),
        facts(handled=False, handled_on_time=False, closed=False, closed_on_time=False),
    ]
    result = rates(items, area_km2=0.5)
    assert (result["due"], result["handled"], result["disposal_rate"]) == (2, 1, 0.5)
    assert result["problems_per_km2"] == 6.0


@pytest.mark.parametrize(
    ("values", "weights", "score"),
    [
        ({"filing_rate": 1.0, "rework_rate": 0.5}, {"filing_rate": 0.5, "rework_rate": -0.5}, 0.25),
        ({"filing_rate": 0.8, "rework_rate": None}, {"filing_rate": 0.5, "rework_rate": -0.5}, 0.8),
        ({"filing_rate": None}, {"filing_rate": 1.0}, None),
    ],
)
def test_composite_score(values: dict[str, Any], weights: dict[str, float], score: float | None) -> None:
    assert composite_score(values, weights) == score


def test_overtime_of_a_double_ten_case_counts_from_filing(service: Service, jpeg: Any) -> None:
    """A street-vending clock (20 continuous minutes) runs from filing and dispatch does not restart
    it: its overtime multiple is (used since filing − 20) / 20, not measured from the dispatch."""
    drive = Driver(service)
    vending = drive.report("09006", next(iter(GRIDS)), 8.5)
    drive.steps(
        vending,
        (8.6, "confirm", {}),
        (8.7, "file", {}),  # 08:42: due 09:02
        (9, "dispatch", {}),
        (9.1, "start", {}),
        (9.2, "handle", {"jpeg": jpeg(seed=4)}),  # 09:12: 30 minutes after filing
    )
    total = service.client.get("/v1/stats", headers=service.auth("cases:read")).json()["total"]
    assert (total["handled"], total["handled_on_time"], total["overtime_cases"]) == (1, 0, 1)
    assert total["overtime_multiple_max"] == pytest.approx((30 - 20) / 20)


def test_worst_spots_count_open_cases_per_km2(service: Service) -> None:
    """Two open cases in a grid three times the size weigh less than one in a small grid."""
    drive = Driver(service)
    small, large, _ = GRIDS
    for code, grid in (
        ("06010", large),
        ("07001", large),
        ("06010", small),
    ):  # one class a place: no duplicate
        drive.steps(drive.report(code, grid, 8.5), (8.6, "confirm", {}), (8.7, "file", {}))
    spots = service.client.get("/v1/stats/worst-spots", headers=service.auth("cases:read")).json()["spots"]
    assert [(s["grid_code"], s["open_cases"]) for s in spots] == [(small, 1), (large, 2)]
    assert spots[0]["open_per_km2"] == pytest.approx(1 / area_km2(GRIDS[small][1]))
    assert spots[1]["open_per_km2"] == pytest.approx(2 / area_km2(GRIDS[large][1]))


def test_a_suspended_case_stops_its_clock(service: Service, jpeg: Any) -> None:
    """挂账 stops the disposal clock: resumption moves the deadline on by the working time suspended,
    a suspended case is not overdue, and the overtime multiple leaves the suspension out."""
    drive = Driver(service)
    small, large, street_b = GRIDS
    # extended by 1 working hour (due 16:00), suspended 10:00-14:00 (2 working hours): due 18:00
    extended = drive.report("06010", small, 8.5)
    drive.steps(
        extended, *TO_HANDLING, (9.5, "extend", {"extend_by": 1}), (10, "suspend", {"note": "待审批"})
    )
    drive.steps(extended, (14, "resume", {}), (17.5, "handle", {"jpeg": jpeg(seed=5)}))
    # due 15:00, suspended 10:00-14:00: due 17:00; handled 17:30, 4.5 working hours of clock for 4
    late = drive.report("06010", large, 8.5)
    drive.steps(late, *TO_HANDLING, (10, "suspend", {"note": "待审批"}), (14, "resume", {}))
    drive.steps(late, (17.5, "handle", {"jpeg": jpeg(seed=6)}))
    # due 15:00, suspended at 10:00 and still suspended at 16:00: not overdue
    waiting = drive.report("06010", street_b, 8.5)
    drive.steps(waiting, *TO_HANDLING, (10, "suspend", {"note": "待审批"}))

    reader = service.auth("cases:read")
    deadlines = {
        case_id: datetime.fromisoformat(
            service.client.get(f"/v1/cases/{case_id}", headers=reader).json()["deadline_at"]
        )
        for case_id in (extended, late, waiting)
    }
    assert deadlines == {
        extended: MONDAY.replace(hour=18),
        late: MONDAY.replace(hour=17),
        waiting: MONDAY.replace(hour=15),
    }
    total = service.client.get("/v1/stats", headers=reader).json()["total"]
    assert (total["due"], total["handled"], total["handled_on_time"], total["overtime_cases"]) == (3, 2, 1, 1)
    assert total["overtime_multiple_max"] == pytest.approx((4.5 - 4) / 4)
    four_pm = MONDAY.replace(hour=16).isoformat()
    overdue = service.client.get("/v1/cases", params={"overdue": "true", "as_of": four_pm}, headers=reader)
    assert overdue.json()["items"] == []


def test_a_case_in_rework_has_no_handling_on_time(service: Service, jpeg: Any) -> None:
    """A handling that failed its check does not stand: until handled again the case counts as
    handled (reported once) and reworked, but not as handled on time."""
    drive = Driver(service)
    reworking = drive.report("06010", next(iter(GRIDS)), 8.5)
    drive.steps(
        reworking,
        *TO_HANDLING,
        (11, "handle", {"jpeg": jpeg(seed=7)}),
        (11.2, "check_fail", {"note": "未清理干净"}),
    )
    total = service.client.get("/v1/stats", headers=service.auth("cases:read")).json()["total"]
    assert (total["due"], total["handled"], total["handled_on_time"], total["reworked"]) == (1, 1, 0, 1)
    assert (total["on_time_disposal_rate"], total["rework_rate"]) == (0.0, 1.0)


def test_a_report_confirmed_then_not_filed_is_valid_not_rejected(service: Service) -> None:
    """Confirmed at review, then declined at the filing desk (不予立案): one valid report, unfiled, not
    also a false one, so the valid report rate is 1 and the filing rate 0 (not 1/2 and 0)."""
    drive = Driver(service)
    declined = drive.report("06010", next(iter(GRIDS)), 8.5)
    drive.steps(declined, (8.6, "confirm", {}), (8.7, "reject", {"note": "不属于城管职责"}))
    total = service.client.get("/v1/stats", headers=service.auth("cases:read")).json()["total"]
    assert (total["valid"], total["rejected"], total["filed"]) == (1, 0, 0)
    assert (total["valid_report_rate"], total["filing_rate"]) == (1.0, 0.0)


def test_a_late_handling_sent_back_and_extended_has_no_overtime_multiple(service: Service, jpeg: Any) -> None:
    """Handled late at 16:00 (due 15:00), failed at the check and given 4 working hours more (due
    09:00 the next day): no handling stands, so no overtime multiple (it was (5 - 8) / 8, negative)."""
    drive = Driver(service)
    extended = drive.report("06010", next(iter(GRIDS)), 8.5)
    drive.steps(extended, *TO_HANDLING, (16, "handle", {"jpeg": jpeg(seed=8)}))
    drive.steps(extended, (16.2, "check_fail", {"note": "未清理干净"}), (16.4, "extend", {"extend_by": 4}))
    total = service.client.get("/v1/stats", headers=service.auth("cases:read")).json()["total"]
    assert (total["overtime_cases"], total["overtime_multiple_mean"], total["overtime_multiple_max"]) == (
        0,
        None,
        None,
    )


def test_a_class_removed_from_the_taxonomy_keeps_its_figures_and_asks_for_a_correction(
    service: Service, jpeg: Any
) -> None:
    """A bureau drops a class from configs/taxonomy.yaml; its old cases stay. A late handling of one
    made GET /v1/stats a 500 (KeyError), and a step that sets a deadline on another was a 500 too."""
    import sqlalchemy as sa

    drive = Driver(service)
    late = drive.report("06010", next(iter(GRIDS)), 8.5)
    drive.steps(late, *TO_HANDLING, (16, "handle", {"jpeg": jpeg(seed=9)}))  # due 15:00
    waiting = drive.report("06010", list(GRIDS)[2], 8.6)  # another street: not the first case's duplicate
    drive.steps(waiting, (8.7, "confirm", {}), (8.8, "file", {}))
    engine = sa.create_engine(service.settings.db_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE cases SET event = 'retired_class'"))
    engine.dispose()

    stats = service.client.get("/v1/stats", headers=service.auth("cases:read"))
    assert stats.status_code == 200, stats.text
    total = stats.json()["total"]
    # measured in continuous hours: 7 h used (09:00-16:00) against 6 h allowed (09:00-15:00)
    assert total["overtime_cases"] == 1 and total["overtime_multiple_max"] == pytest.approx(1 / 6, abs=0.01)
    assert service.client.get(f"/v1/cases/{waiting}", headers=service.auth("cases:read")).status_code == 200

    refused = service.transition(waiting, "dispatch")
    assert refused.status_code == 422, refused.text
    assert "'retired_class' is no longer an event of the taxonomy" in refused.json()["detail"]


def test_a_case_sent_back_is_no_longer_due_with_the_department_that_returned_it(service: Service) -> None:
    """回退: a department returns a case it cannot handle (not its job) to the dispatcher. It stayed
    due with that department in the figures by department until dispatched again, counting against
    its disposal rate a case it no longer held."""
    drive = Driver(service)
    returned = drive.report("06010", next(iter(GRIDS)), 8.5)
    drive.steps(returned, *TO_HANDLING[:3], (9.2, "send_back", {"note": "不属于本单位职责"}))
    reader = service.auth("cases:read")

    def due_by_department() -> dict[str | None, int]:
        groups = service.client.get("/v1/stats", params={"group_by": "department"}, headers=reader).json()
        return {g["key"]: g["due"] for g in groups["groups"]}

    assert due_by_department() == {None: 1}  # still due bureau-wide, held by no department
    drive.steps(returned, (9.5, "dispatch", {}))
    assert due_by_department() == {"二七区环境卫生服务中心": 1}


def test_the_cli_ranking_says_which_days_its_period_holds(
    service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    """`stats --ranking 2026-11-20` printed only `"period": "2026-11-2"`, which reads as 2 November;
    it gives the period's bounds, as GET /v1/stats/ranking does."""
    from serve.cli.stats import cli

    assert cli(["--db", service.settings.db_url, "--ranking", "2026-11-20"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["period"] == "2026-11-2"
    assert (printed["since"], printed["until"]) == ("2026-11-11T00:00:00+08:00", "2026-11-21T00:00:00+08:00")
