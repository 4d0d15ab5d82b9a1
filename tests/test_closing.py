"""Verified closing over HTTP with the real model (SQLite and PostgreSQL): the after-photo is checked
when it arrives (new image, taken after filing, at the place, the event gone) and a failed check
blocks `handle` and `check_pass` unless a person gives a reason, which the flow log keeps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from conftest import Service, on_site
from test_review import act, garbage_photos, get, post_report
from test_scan import START, spot


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    return garbage_photos(tmp_path_factory.mktemp("closing"), 1)


def upload_after(service: Service, case_id: int, data: bytes) -> dict[str, Any]:
    response = service.client.post(
        f"/v1/cases/{case_id}/evidence",
        files={"file": ("after.jpg", data, "image/jpeg")},
        data={"role": "after"},
        headers=service.auth("cases:write"),
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_after_photos_are_checked_and_a_failed_check_needs_a_reason(
    service: Service, photos: list[bytes], jpeg: Any
) -> None:
    [case, *_] = post_report(service, photos[0])
    case_id = case["id"]
    act(service, case_id, START + timedelta(minutes=10), "confirm")
    act(service, case_id, START + timedelta(minutes=20), "file")
    act(service, case_id, START + timedelta(minutes=30), "dispatch")
    act(service, case_id, START + timedelta(minutes=40), "start")
    service.clock.at = START + timedelta(hours=2)

    # The case's own photo again: the same image, taken before filing, the garbage still there.
    same = upload_after(service, case_id, photos[0])["extra"]["after_check"]
    assert same["passed"] is False and same["failed"] == ["new_image", "after_filing", "gone"]
    assert same["at_place"]["ok"] is True and same["gone"]["still_found"]
    refused = service.transition(case_id, "handle", evidence_id=same_id(service, case_id))
    assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["failed"] == ["new_image", "after_filing", "gone"]
    assert get(service, f"/v1/cases/{case_id}")["state"] == "handling"

    # A clean photo taken after filing but 1.1 km away: not at the place.
    far = spot(0)
    away = upload_after(
        service, case_id, on_site(jpeg(seed=7), far.lat + 0.01, far.lon, START + timedelta(hours=1))
    )
    assert away["extra"]["after_check"]["failed"] == ["at_place"]
    # its times as the API gives every time: they were UTC (2026-11-20T01:20:00+00:00), to the microsecond
    assert away["extra"]["after_check"]["after_filing"] == {
        "ok": True,
        "taken_at": (START + timedelta(hours=1)).isoformat(),
        "filed_at": (START + timedelta(minutes=20)).isoformat(),
    }
    assert away["extra"]["after_check"]["at_place"]["distance_m"] > 1000

    # A person overrides with a reason: handled, and the reason is in the flow log; checking it
    # passes only with a reason too (the photo still failed).
    handled = service.transition(
        case_id, "handle", evidence_id=away["id"], override_reason="GPS漂移, 现场已核实"
    )
    assert handled.status_code == 200, handled.text
    note = handled.json()["flow"][-1]["note"]
    assert "at_place" in note and "GPS漂移, 现场已核实" in note
    assert service.transition(case_id, "check_pass").status_code == 409
    assert service.transition(case_id, "check_fail", note="照片不在现场").status_code == 200

    # A clean photo at the place, taken after filing: passes; handle and check need no reason.
    service.clock.at = START + timedelta(hours=3)
    here = spot(0)
    good = upload_after(
        service, case_id, on_site(jpeg(seed=8), here.lat, here.lon, START + timedelta(hours=1, minutes=30))
    )
    verdict = good["extra"]["after_check"]
    assert verdict["passed"] is True and verdict["failed"] == [], verdict
    assert service.transition(case_id, "handle", evidence_id=good["id"]).status_code == 200
    passed = service.transition(case_id, "check_pass")
    assert passed.status_code == 200, passed.text
    assert passed.json()["state"] == "check_passed"


@pytest.mark.parametrize(("final", "note"), [("close", None), ("cancel", "重复上报"), ("reject", "误报")])
def test_a_finished_case_takes_no_evidence(
    service: Service, photos: list[bytes], jpeg: Any, final: str, note: str | None
) -> None:
    """A photo sent to a closed, cancelled or not-filed case was kept as its evidence: an after-photo
    after the verification that closed it. Now 409 naming the state, and nothing is stored."""
    [case, *_] = post_report(service, photos[0])
    case_id, here = case["id"], spot(0)
    steps = ["confirm", "file", "dispatch", "start"] if final == "close" else []
    for minutes, action in enumerate(steps, start=1):
        act(service, case_id, START + timedelta(minutes=10 * minutes), action)
    service.clock.at = START + timedelta(hours=3)
    if final == "close":
        good = upload_after(
            service,
            case_id,
            on_site(jpeg(seed=8), here.lat, here.lon, START + timedelta(hours=1, minutes=30)),
        )
        for action in ("handle", "check_pass"):
            assert service.transition(case_id, action, evidence_id=good["id"]).status_code == 200
    finished = service.transition(case_id, final, **({"note": note} if note else {}))
    assert finished.status_code == 200, finished.text
    state = finished.json()["state"]
    kept = get(service, f"/v1/cases/{case_id}")["evidence"]
    files = sorted(service.settings.evidence_dir.rglob("*.*"))

    late = on_site(jpeg(seed=9), here.lat, here.lon, START + timedelta(hours=2))
    for role in ("after", "near", "before"):
        refused = service.client.post(
            f"/v1/cases/{case_id}/evidence",
            files={"file": ("late.jpg", late, "image/jpeg")},
            data={"role": role},
            headers=service.auth("cases:write"),
        )
        assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
        assert (refused.json()["state"], refused.json()["case"]) == (state, case["number"]), refused.text
        assert state in refused.json()["detail"]
    assert get(service, f"/v1/cases/{case_id}")["evidence"] == kept
    assert sorted(service.settings.evidence_dir.rglob("*.*")) == files  # refused before it was stored


def same_id(service: Service, case_id: int) -> int:
    """The id of the case's newest after-photo."""
    after = [e for e in get(service, f"/v1/cases/{case_id}")["evidence"] if e["role"] == "after"]
    return int(after[-1]["id"])
