"""双十 over HTTP (SQLite and PostgreSQL): a street-vending report filed at Saturday 01:22 must have
someone on site by 01:32 and be enforced by 01:42, nights and weekends included; dispatch does not
restart a clock counted in minutes; a late arrival (`start`) is marked overdue in the flow log."""

from __future__ import annotations

from datetime import datetime

from conftest import Service
from test_api_lifecycle import PLACE, act, local

from serve.cases.deadlines import time_used
from serve.cases.workflow import FILED_OPEN_STATES

SATURDAY = datetime.fromisoformat("2025-09-27T01:18:00+08:00")  # a weekend night, no working time


def at(minute: int) -> datetime:
    return SATURDAY.replace(minute=minute)


def vending_report(service: Service) -> int:
    service.clock.at = SATURDAY
    posted = service.client.post(
        "/open311/v2/requests.json",
        data={"service_code": "09006", **PLACE, "description": "人行道上流动摊贩"},
        headers=service.auth("report"),
    )
    assert posted.status_code == 201, posted.text
    number = posted.json()[0]["service_request_id"]
    cases = service.client.get("/v1/cases", headers=service.auth("cases:read")).json()["items"]
    return int(next(c["id"] for c in cases if c["number"] == number))


def test_street_vending_runs_the_double_ten_clocks_at_night(service: Service) -> None:
    events = service.client.get("/v1/events", headers=service.auth("cases:read")).json()
    vending = next(e for e in events if e["key"] == "street_vending")
    assert (vending["on_site_minutes"], vending["limit"], vending["unit"]) == (10, 20, "minutes")

    case_id = vending_report(service)
    reported = act(service, case_id, at(20), "confirm")
    assert reported["deadline_at"] is None and reported["on_site_due_at"] is None  # in review: no clock
    filed = act(service, case_id, at(22), "file")
    assert local(filed["on_site_due_at"]) == at(32) and local(filed["deadline_at"]) == at(42)
    dispatched = act(service, case_id, at(25), "dispatch")
    assert local(dispatched["deadline_at"]) == at(42)  # minutes run from filing: dispatch keeps them
    started = act(service, case_id, at(35), "start")  # on site 3 minutes late
    assert started["flow"][-1]["action"] == "start" and started["flow"][-1]["overdue"] is True
    assert started["state"] in FILED_OPEN_STATES

    service.clock.at = at(45)
    overdue = service.client.get("/v1/cases", params={"overdue": "true"}, headers=service.auth("cases:read"))
    assert [c["id"] for c in overdue.json()["items"]] == [case_id]


def test_minutes_are_continuous_time() -> None:
    from configured import CONFIGS

    from serve.cases.deadlines import deadline, load_calendar
    from vision.core.taxonomy import Deadline

    calendar = load_calendar(CONFIGS / "calendar.yaml")
    assert deadline(at(22), Deadline(20, "minutes"), calendar) == at(42)
    assert time_used(at(22), at(52), "minutes", calendar) == 30
