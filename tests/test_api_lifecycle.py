"""A whole case life over HTTP, on SQLite and PostgreSQL: report -> confirm -> file -> dispatch ->
start -> handle with after-photo -> check fail (rework) -> extend -> handle -> check pass -> close.

The day replayed (bureau time, configs/calendar.yaml): Tuesday 2025-09-30, the last working day
before the National Day holiday (2025-10-01..08). Exposed garbage has 4 working hours; dispatched
at 11:30 it is due at 17:30 (the 12:00-14:00 lunch break does not count). Extended by 2 working
hours it is due on Thursday 2025-10-09 at 09:30 (17:30-18:00, then eight holiday days, then
08:00-09:30).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import numpy as np
from conftest import Service, on_site
from sqlalchemy import select

from serve.cases.orm import AuditEntry

TZ = ZoneInfo("Asia/Shanghai")
PLACE = {"lat": 34.72265, "long": 113.62762}  # inside unit grid 410103001001005


def at(day: int, hour: int, minute: int = 0, month: int = 9) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=TZ)


def report(service: Service, description: str = "路边一堆垃圾") -> int:
    response = service.client.post(
        "/open311/v2/requests.json",
        data={"service_code": "06010", **PLACE, "description": description},
        headers=service.auth("report"),
    )
    assert response.status_code == 201, response.text
    number = response.json()[0]["service_request_id"]
    cases = service.client.get("/v1/cases", headers=service.auth("cases:read")).json()["items"]
    return next(c["id"] for c in cases if c["number"] == number)


def act(service: Service, case_id: int, when: datetime, action: str, **fields: Any) -> dict[str, Any]:
    """One transition at `when`, with the ETag just read; returns the case after it."""
    service.clock.at = when
    read = service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read"))
    response = service.client.post(
        f"/v1/cases/{case_id}/transitions",
        json={"action": action, **fields},
        headers={**service.auth("cases:write"), "If-Match": read.headers["ETag"]},
    )
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == f'"{response.json()["version"]}"' != read.headers["ETag"]
    return dict(response.json())


def after_photo(service: Service, case_id: int, seed: int, jpeg: Any) -> int:
    response = service.client.post(
        f"/v1/cases/{case_id}/evidence",
        files={
            "file": (
                "after.jpg",
                on_site(jpeg(seed=seed), PLACE["lat"], PLACE["long"], service.clock()),
                "image/jpeg",
            )
        },
        data={"role": "after"},
        headers=service.auth("cases:write"),
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(TZ)


def test_whole_case_life_with_rework_lunch_break_and_holiday(service: Service, jpeg: Any) -> None:
    case_id = report(service)
    case = act(service, case_id, at(30, 10, 40), "confirm")
    assert case["state"] == "verified" and case["allowed_actions"][0] == "file"
    act(service, case_id, at(30, 10, 50), "file")
    case = act(service, case_id, at(30, 11, 30), "dispatch")  # department from configs/routing.yaml
    assert case["department"] == "二七区环境卫生服务中心" == case["suggested_department"]
    assert local(case["deadline_at"]) == at(30, 17, 30)  # 0.5 h before lunch + 3.5 h after
    act(service, case_id, at(30, 14, 30), "start")

    first_photo = after_photo(service, case_id, seed=1, jpeg=jpeg)
    case = act(service, case_id, at(30, 16, 0), "handle", evidence_id=first_photo)
    assert case["state"] == "handled" and case["flow"][-1]["overdue"] is False
    case = act(service, case_id, at(30, 16, 20), "check_fail", note="垃圾未清运干净")
    assert case["state"] == "handling"
    case = act(service, case_id, at(30, 16, 30), "extend", extend_by=2, note="节前人手不足")
    assert local(case["deadline_at"]) == at(9, 9, 30, month=10)  # across the National Day holiday

    # Overdue is judged at the time asked: not yet at 09:00 on 10-09, yes at 09:50.
    service.clock.at = at(9, 9, 50, month=10)
    reader = service.auth("cases:read")
    overdue = service.client.get("/v1/cases", params={"overdue": "true"}, headers=reader).json()["items"]
    assert [c["id"] for c in overdue] == [case_id] and overdue[0]["overdue"] is True
    before = service.client.get(
        "/v1/cases", params={"overdue": "true", "as_of": at(9, 9, 0, month=10).isoformat()}, headers=reader
    ).json()
    assert before["items"] == []

    # Rework needs a new after-photo: the rejected one cannot support a second handling.
    service.clock.at = at(9, 10, 0, month=10)
    etag = service.client.get(f"/v1/cases/{case_id}", headers=reader).headers["ETag"]
    reused = service.client.post(
        f"/v1/cases/{case_id}/transitions",
        json={"action": "handle", "evidence_id": first_photo},
        headers={**service.auth("cases:write"), "If-Match": etag},
    )
    assert reused.status_code == 422 and reused.json()["field"] == "evidence_id"
    second_photo = after_photo(service, case_id, seed=2, jpeg=jpeg)
    case = act(service, case_id, at(9, 10, 0, month=10), "handle", evidence_id=second_photo)
    assert case["flow"][-1]["overdue"] is True  # 30 min past the extended deadline
    act(service, case_id, at(9, 10, 20, month=10), "check_pass")
    case = act(service, case_id, at(9, 10, 30, month=10), "close")

    assert case["state"] == "closed" and case["allowed_actions"] == []
    assert local(case["closed_at"]) == at(9, 10, 30, month=10)
    flow = case["flow"]
    assert [f["action"] for f in flow] == [
        "report",
        "confirm",
        "file",
        "dispatch",
        "start",
        "handle",
        "check_fail",
        "extend",
        "handle",
        "check_pass",
        "close",
    ]
    times = [
        at(30, 10, 30),
        at(30, 10, 40),
        at(30, 10, 50),
        at(30, 11, 30),
        at(30, 14, 30),
        at(30, 16, 0),
        at(30, 16, 20),
        at(30, 16, 30),
        at(9, 10, 0, month=10),
        at(9, 10, 20, month=10),
        at(9, 10, 30, month=10),
    ]
    assert [local(f["at"]) for f in flow] == times
    assert [f["seconds_used"] for f in flow[1:]] == [(b - a).total_seconds() for a, b in pairwise(times)]
    # stage limits (configs/workflow.yaml): verify 30, file 15, dispatch 15, check 30 minutes
    assert [f["overdue"] for f in flow] == [
        False,
        False,
        False,
        True,
        False,
        False,
        False,
        False,
        True,
        False,
        True,
    ]
    assert {f["operator"] for f in flow[1:]} == {"cases:write-user"}
    assert [e["role"] for e in case["evidence"]] == ["reference", "after", "after"]

    with service.client.app.state.service.sessions() as session:  # type: ignore[attr-defined]
        audited = session.scalars(select(AuditEntry).where(AuditEntry.case_id == case_id)).all()
    changes = [a for a in audited if a.path.endswith("/transitions") and a.status == 200]
    assert len(changes) == 10 and {a.principal for a in changes} == {service.keys["cases:write"][3:15]}


def test_stale_etag_is_refused_and_changes_nothing(service: Service) -> None:
    case_id = report(service)
    reader, writer = service.auth("cases:read"), service.auth("cases:write")
    etag = service.client.get(f"/v1/cases/{case_id}", headers=reader).headers["ETag"]
    url = f"/v1/cases/{case_id}/transitions"
    first = service.client.post(url, json={"action": "confirm"}, headers={**writer, "If-Match": etag})
    assert first.status_code == 200
    stale = service.client.post(
        url, json={"action": "reject", "note": "误报"}, headers={**writer, "If-Match": etag}
    )
    assert stale.status_code == 412 and stale.json()["current_etag"] == first.headers["ETag"]
    missing = service.client.post(url, json={"action": "file"}, headers=writer)
    assert missing.status_code == 428
    # the current version unquoted: it read "If-Match 2 does not match the case's current version 2"
    bare = service.client.post(
        url, json={"action": "file"}, headers={**writer, "If-Match": first.headers["ETag"].strip('"')}
    )
    assert bare.status_code == 412
    assert f"an ETag is quoted: send If-Match: {first.headers['ETag']}" in bare.json()["detail"]
    now = service.client.get(f"/v1/cases/{case_id}", headers=reader)
    assert now.json()["state"] == "verified" and now.headers["ETag"] == first.headers["ETag"]
    assert [f["action"] for f in now.json()["flow"]] == ["report", "confirm"]


def test_an_after_photo_sent_with_a_stale_etag_is_refused_and_not_kept(service: Service, jpeg: Any) -> None:
    """A handler's page went stale (a dispatcher approved an extension meanwhile): the console sent
    the after-photo, then the handle step was 412, and the photo stayed on the case as an
    after-photo no handling stood on (in the ledger's 销号 photos). With If-Match the photo is
    refused before it is stored; without it the upload is as before."""
    case_id = report(service)
    for minute, action in enumerate(("confirm", "file", "dispatch", "start")):
        act(service, case_id, at(30, 11, 10 * minute), action)
    reader = service.auth("cases:read")
    seen = service.client.get(f"/v1/cases/{case_id}", headers=reader).headers["ETag"]
    act(service, case_id, at(30, 11, 50), "extend", extend_by=1, note="车辆故障")
    service.clock.at = at(30, 14, 10)

    def send(seed: int, **headers: str) -> Any:
        photo = on_site(jpeg(seed=seed), PLACE["lat"], PLACE["long"], service.clock())
        return service.client.post(
            f"/v1/cases/{case_id}/evidence",
            files={"file": ("after.jpg", photo, "image/jpeg")},
            data={"role": "after"},
            headers={**service.auth("cases:write"), **headers},
        )

    stale = send(1, **{"If-Match": seen})
    assert stale.status_code == 412, stale.text
    case = service.client.get(f"/v1/cases/{case_id}", headers=reader)
    assert "after" not in [e["role"] for e in case.json()["evidence"]]
    assert send(2, **{"If-Match": case.headers["ETag"]}).status_code == 201
    assert send(3).status_code == 201  # no If-Match: a bureau system's upload, as before


def test_invalid_transition_lists_the_allowed_actions(service: Service) -> None:
    case_id = report(service)
    etag = service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read")).headers["ETag"]
    headers = {**service.auth("cases:write"), "If-Match": etag}
    url = f"/v1/cases/{case_id}/transitions"
    refused = service.client.post(url, json={"action": "close"}, headers=headers)
    assert refused.status_code == 409
    assert refused.json()["allowed_actions"] == ["confirm", "correct", "reject", "cancel", "force_close"]
    no_reason = service.client.post(url, json={"action": "reject"}, headers=headers)
    assert no_reason.status_code == 422 and no_reason.json()["fields"] == ["note"]
    wrong_event = service.client.post(
        url, json={"action": "correct", "event": "no_such_event"}, headers=headers
    )
    assert wrong_event.status_code == 422 and wrong_event.json()["field"] == "event"
    future = (service.clock.at + timedelta(hours=1)).isoformat()
    early = service.client.post(url, json={"action": "confirm", "at": future}, headers=headers)
    assert early.status_code == 422 and early.json()["field"] == "at"
    unknown = service.client.post(
        url, json={"action": "dispatch"}, headers=headers
    )  # not allowed before filing, whatever the department
    assert unknown.status_code == 409
    case = service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read")).json()
    assert case["state"] == "reported" and case["version"] == 1


def test_correcting_an_ai_class_changes_codes_and_routing(service: Service) -> None:
    case_id = report(service)
    case = act(service, case_id, at(30, 10, 35), "correct", event="illegal_small_ad")
    assert (case["event"], case["cjt214"], case["gbt47678"], case["major"]) == (
        "illegal_small_ad",
        "0201",
        "07001",
        "02",
    )
    assert case["suggested_department"] == "淮河路街道办事处"


def test_evidence_image_with_boxes_drawn_and_case_listing(service: Service, jpeg: Any) -> None:
    case_id = report(service)
    photo = after_photo(service, case_id, seed=3, jpeg=jpeg)
    reader = service.auth("cases:read")
    raw = service.client.get(f"/v1/evidence/{photo}", headers=service.auth("admin"))  # may see evidence:raw
    sent = on_site(jpeg(seed=3), PLACE["lat"], PLACE["long"], service.clock())
    assert raw.headers["content-type"] == "image/jpeg" and raw.content == sent
    assert service.client.get(f"/v1/evidence/{photo}", headers=reader).headers["X-Privacy"] == "redacted"
    drawn = service.client.get(f"/v1/evidence/{photo}", params={"boxes": "true"}, headers=reader)
    image = cv2.imdecode(np.frombuffer(drawn.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (240, 320, 3)
    assert service.client.get("/v1/evidence/999", headers=reader).status_code == 404
    geo = service.client.get("/v1/cases.geojson", headers=reader).json()
    assert geo["type"] == "FeatureCollection"
    assert geo["features"][0]["geometry"]["coordinates"] == [PLACE["long"], PLACE["lat"]]
    assert geo["features"][0]["properties"]["grid_code"] == "410103001001005"


def test_cursor_paging_and_filters(service: Service) -> None:
    ids = []
    for i in range(5):  # 128 m apart along the grids: five separate cases
        service.clock.at = at(30, 10, 30 + i)
        response = service.client.post(
            "/open311/v2/requests.json",
            data={"service_code": "06010", "lat": 34.7235, "long": 113.6262 + i * 0.0014},
            headers=service.auth("report"),
        )
        assert response.status_code == 201
    reader = service.auth("cases:read")
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = service.client.get("/v1/cases", params=params, headers=reader).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    ids = sorted(seen, reverse=True)
    assert seen == ids and len(ids) == 5
    in_grid = service.client.get("/v1/cases", params={"grid": "410103001001"}, headers=reader).json()["items"]
    assert 0 < len(in_grid) < 5 and all(c["grid_code"].startswith("410103001001") for c in in_grid)
    by_state = service.client.get("/v1/cases", params={"state": ["filed", "closed"]}, headers=reader).json()
    assert by_state["items"] == []
    bad = service.client.get("/v1/cases", params={"cursor": "!!"}, headers=reader)
    assert bad.status_code == 422


BUREAU_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?\+08:00")


def times_in(value: Any, path: str = "") -> dict[str, str]:
    """Every string of a JSON answer that reads as a time (`extra`, a stored record, left out)."""
    if isinstance(value, dict):
        return {
            k: v
            for key, item in value.items()
            if key != "extra"
            for k, v in times_in(item, f"{path}.{key}").items()
        }
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in times_in(item, f"{path}[{i}]").items()}
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}T.+", value):
        return {path: value}
    return {}


def test_every_time_the_api_answers_has_the_bureau_s_offset_to_the_second(
    service: Service, jpeg: Any
) -> None:
    """The v1 answers gave UTC with `Z` and microseconds (`2025-09-30T02:30:00.123456Z`), Open311 the
    bureau's `+08:00`, in one console. Now one convention: the calendar's offset, to the second (a
    camera frame's capture time to the millisecond). Inputs still take any offset."""
    service.clock.at = at(30, 9, 15) + timedelta(microseconds=123456)
    case_id = report(service)
    act(service, case_id, datetime(2025, 9, 30, 1, 20, tzinfo=ZoneInfo("UTC")), "confirm")  # given in UTC
    act(service, case_id, at(30, 9, 25) + timedelta(microseconds=654321), "file")
    after_photo(service, case_id, 3, jpeg)
    reader, number = service.auth("cases:read"), str(report_number(service, case_id))
    answers = {
        path: service.client.get(path, headers=reader if path.startswith("/v1/") else {}).json()
        for path in (
            f"/v1/cases/{case_id}",
            "/v1/cases",
            "/v1/cases.geojson",
            "/v1/stats",
            "/v1/stats/ranking",
            "/v1/stats/worst-spots",
            "/v1/stats/monthly-ranking",
            "/v1/cameras",
            f"/open311/v2/requests/{number}.json",
        )
    }
    answers["/v1/keys"] = service.client.get("/v1/keys", headers=service.auth("admin")).json()
    found = times_in(answers)
    for field in ("filed_at", "deadline_at", "first_seen_at", "flow[1].at", "evidence[1].captured_at"):
        assert any(path.endswith(field) for path in found), (field, sorted(found))
    assert any("requested_datetime" in path for path in found) and any("created_at" in path for path in found)
    assert {path: text for path, text in found.items() if not BUREAU_TIME.fullmatch(text)} == {}
    flow = answers[f"/v1/cases/{case_id}"]["flow"]
    assert [step["at"] for step in flow] == [
        "2025-09-30T09:15:00+08:00",
        "2025-09-30T09:20:00+08:00",
        "2025-09-30T09:25:00+08:00",
    ]
    xml = service.client.get(f"/open311/v2/requests/{number}.xml").text
    assert "<requested_datetime>2025-09-30T09:15:00+08:00</requested_datetime>" in xml


def test_a_refusal_names_its_times_on_the_bureau_s_clock(service: Service) -> None:
    """A step dated before the case's last one, or in the future, and a period ending before it
    starts are refused naming the times: those read `2025-09-30T01:15:00+00:00` (the database's
    UTC) and `2025-09-30T02:30:00+00:00` (the server's), hours off the bureau's clock every other
    time of the API answers on."""
    case_id = report(service)  # received 10:30 bureau time
    etag = service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read")).headers["ETag"]
    headers = {**service.auth("cases:write"), "If-Match": etag}
    url = f"/v1/cases/{case_id}/transitions"
    before = datetime(2025, 9, 30, 1, 0, tzinfo=ZoneInfo("UTC")).isoformat()  # 09:00 bureau time
    early = service.client.post(url, json={"action": "confirm", "at": before}, headers=headers)
    assert early.status_code == 409, early.text
    assert early.json()["detail"] == (
        "time 2025-09-30T09:00:00+08:00 is before the case's last step at 2025-09-30T10:30:00+08:00"
    )
    ahead = service.client.post(
        url, json={"action": "confirm", "at": "2025-09-30T12:00:00+08:00"}, headers=headers
    )
    assert ahead.status_code == 422, ahead.text
    assert ahead.json()["detail"] == (
        "at: 2025-09-30T12:00:00+08:00 is in the future (server time 2025-09-30T10:30:00+08:00)"
    )
    backwards = service.client.get(
        "/v1/stats",
        params={"since": "2025-09-30", "until": "2025-09-29T15:00:00Z"},
        headers=service.auth("cases:read"),
    )
    assert backwards.status_code == 422, backwards.text
    assert "2025-09-30T00:00:00+08:00 to 2025-09-29T23:00:00+08:00" in backwards.json()["detail"]


def report_number(service: Service, case_id: int) -> str:
    return str(
        service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read")).json()["number"]
    )
