"""Open311 GeoReport v2 round trip over HTTP: services, a citizen's request, its status as the case
moves, GeoReport error lists, and idempotent retries."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import Service

from vision.core.taxonomy import load_taxonomy

TZ = ZoneInfo("Asia/Shanghai")
REQUEST = {
    "service_code": "07001",
    "lat": 34.72355,
    "long": 113.63091,
    "description": "电线杆上贴满办证小广告",
}


def step(service: Service, case_id: int, action: str, **fields: object) -> None:
    etag = service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read")).headers["ETag"]
    response = service.client.post(
        f"/v1/cases/{case_id}/transitions",
        json={"action": action, **fields},
        headers={**service.auth("cases:write"), "If-Match": etag},
    )
    assert response.status_code == 200, response.text


def test_services_list_every_event_with_its_code(service: Service) -> None:
    services = service.client.get("/open311/v2/services.json", headers=service.auth("cases:read")).json()
    events = load_taxonomy().events.values()
    assert {s["service_code"] for s in services} == {e.gbt47678 for e in events}
    small_ads = next(s for s in services if s["service_code"] == "07001")
    assert small_ads["service_name"].startswith("非法小广告") and small_ads["group"] == "ads"
    assert small_ads["metadata"] is False and small_ads["type"] == "realtime"


def test_request_round_trip_follows_the_case_to_closed(service: Service) -> None:
    reader = service.auth("cases:read")
    posted = service.client.post("/open311/v2/requests.json", data=REQUEST, headers=service.auth("report"))
    assert posted.status_code == 201
    request_id = posted.json()[0]["service_request_id"]
    assert request_id.startswith("SO20250930") and posted.json()[0]["service_notice"] == "new case"

    [opened] = service.client.get(f"/open311/v2/requests/{request_id}.json", headers=reader).json()
    assert opened["status"] == "open" and opened["agency_responsible"] is None
    assert (opened["service_code"], opened["lat"], opened["long"]) == (
        "07001",
        REQUEST["lat"],
        REQUEST["long"],
    )
    assert opened["address_id"] == "410103001002002"
    assert datetime.fromisoformat(opened["requested_datetime"]) == service.clock.at

    case_id = service.client.get("/v1/cases", headers=reader).json()["items"][0]["id"]
    citizen = service.client.get(f"/v1/cases/{case_id}", headers=reader).json()["evidence"][0]
    assert (
        citizen["role"] == "reference"
        and citizen["extra"]["open311"]["description"] == REQUEST["description"]
    )
    for minutes, action in ((5, "confirm"), (10, "file"), (15, "dispatch")):
        service.clock.at += timedelta(minutes=minutes)
        step(service, case_id, action)
    [dispatched] = service.client.get(f"/open311/v2/requests/{request_id}.json", headers=reader).json()
    assert dispatched["agency_responsible"] == "淮河路街道办事处"  # small ads in street 410103001
    # 4 working hours from 11:00 on the last day before the holiday: 12:00-14:00 lunch skipped
    assert datetime.fromisoformat(dispatched["expected_datetime"]) == datetime(2025, 9, 30, 17, 0, tzinfo=TZ)
    assert dispatched["status"] == "open" and dispatched["status_notes"].startswith("dispatched")

    service.clock.at += timedelta(minutes=5)
    step(service, case_id, "force_close", note="广告已由社区清除")
    [closed] = service.client.get(
        "/open311/v2/requests.json", params={"status": "closed"}, headers=reader
    ).json()
    assert closed["service_request_id"] == request_id and closed["status"] == "closed"
    assert closed["status_notes"] == "force_closed: 广告已由社区清除"
    assert (
        service.client.get("/open311/v2/requests.json", params={"status": "open"}, headers=reader).json()
        == []
    )


def test_request_filters_and_the_90_day_limit(service: Service) -> None:
    reporter, reader = service.auth("report"), service.auth("cases:read")
    first = service.client.post("/open311/v2/requests.json", data=REQUEST, headers=reporter).json()[0]
    garbage = {**REQUEST, "service_code": "06010", "description": "垃圾"}
    second = service.client.post("/open311/v2/requests.json", data=garbage, headers=reporter).json()[0]
    both = f"{first['service_request_id']},{second['service_request_id']}"
    listed = service.client.get(
        "/open311/v2/requests.json", params={"service_request_id": both}, headers=reader
    )
    assert sorted(r["service_request_id"] for r in listed.json()) == sorted(both.split(","))
    by_code = service.client.get(
        "/open311/v2/requests.json", params={"service_code": "06010"}, headers=reader
    )
    assert [r["service_request_id"] for r in by_code.json()] == [second["service_request_id"]]
    start = service.clock.at - timedelta(days=91)
    too_long = service.client.get(
        "/open311/v2/requests.json",
        params={"start_date": start.isoformat(), "end_date": service.clock.at.isoformat()},
        headers=reader,
    )
    assert too_long.status_code == 400 and too_long.json()[0]["code"] == 400
    assert "90 days" in too_long.json()[0]["description"]
    window = {"start_date": (service.clock.at - timedelta(days=1)).isoformat()}
    assert len(service.client.get("/open311/v2/requests.json", params=window, headers=reader).json()) == 2
    earlier = {"end_date": (service.clock.at - timedelta(days=1)).isoformat()}
    assert service.client.get("/open311/v2/requests.json", params=earlier, headers=reader).json() == []
    missing = service.client.get("/open311/v2/requests/SO000.json", headers=reader)
    assert missing.status_code == 404 and missing.json()[0]["code"] == 404


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"service_code": "99999", "lat": 34.7235, "long": 113.6265}, "service_code"),
        ({"service_code": "06010", "address_string": "淮河路 12 号"}, "geocode"),
        ({"service_code": "06010", "lat": 95, "long": 113.6}, "lat"),
        ({"service_code": "06010", "lat": 39.9, "long": 116.4}, "outside every unit grid"),  # Beijing
        ({"lat": 34.7235, "long": 113.6265}, "service_code"),
        (
            {"service_code": "06010", "lat": 34.7235, "long": 113.6265, "description": "x" * 4001},
            "description",
        ),
    ],
)
def test_bad_requests_get_georeport_errors(service: Service, fields: dict[str, object], words: str) -> None:
    response = service.client.post("/open311/v2/requests.json", data=fields, headers=service.auth("report"))
    assert response.status_code == 400
    [error] = response.json()
    assert error["code"] == 400 and words in error["description"]
    assert service.client.get("/v1/cases", headers=service.auth("cases:read")).json()["items"] == []


def test_retries_with_an_idempotency_key_replay_the_first_answer(service: Service) -> None:
    reporter, reader = service.auth("report"), service.auth("cases:read")
    url = "/open311/v2/requests.json"
    headers = {**reporter, "Idempotency-Key": "hotline-call-4711"}
    first = service.client.post(url, data=REQUEST, headers=headers)
    service.clock.at += timedelta(minutes=1)
    retry = service.client.post(url, data=REQUEST, headers=headers)
    assert retry.status_code == 201 and retry.json() == first.json()
    assert retry.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    other = service.client.post(url, data={**REQUEST, "description": "另一处"}, headers=headers)
    assert other.status_code == 400 and "hotline-call-4711" in other.json()[0]["description"]
    [case] = service.client.get("/v1/cases", headers=reader).json()["items"]
    detail = service.client.get(f"/v1/cases/{case['id']}", headers=reader).json()
    assert len(detail["evidence"]) == 1 and [f["action"] for f in detail["flow"]] == ["report"]
    # the same report again without a key joins the open case and adds nothing new
    again = service.client.post(url, data=REQUEST, headers=reporter).json()[0]
    assert again["service_request_id"] == case["number"] and again["service_notice"].startswith("joined")
    assert len(service.client.get(f"/v1/cases/{case['id']}", headers=reader).json()["evidence"]) == 1
