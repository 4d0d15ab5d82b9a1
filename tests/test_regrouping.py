"""Evidence management over HTTP with the real model and real street photos (SQLite and PostgreSQL):
a photo is detached from a case with a reason (the flow log keeps it, the photo row and file stay), a
case is split (the chosen photos make a new case placed where they were taken) and two cases of the
same event are merged (the second cancelled as merged); a case never loses its last photo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import Service
from sqlalchemy import select
from test_review import garbage_photos, get, post_report
from test_scan import spot

from serve.cases.db import transaction
from serve.cases.grids import load_grids
from serve.cases.orm import Photo
from vision.core.imageio import Position

HERE = spot(0)
NORTH = Position(HERE.lat + 0.00018, HERE.lon)  # 20 m away: the duplicate rule joins it to HERE's case
EAST = Position(HERE.lat, HERE.lon + 0.0002)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    return garbage_photos(tmp_path_factory.mktemp("regroup"), 3, [HERE, NORTH, EAST])


def change(
    service: Service, case_id: int, path: str, body: dict[str, Any], scope: str = "cases:write"
) -> Any:
    etag = service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read")).headers["ETag"]
    return service.client.post(path, json=body, headers={**service.auth(scope), "If-Match": etag})


def one_case_of_three(service: Service, photos: list[bytes]) -> dict[str, Any]:
    """The three photos, 20 m apart, are one case of the event found on all of them."""
    for photo in photos:
        post_report(service, photo)
    cases = [get(service, f"/v1/cases/{c['id']}") for c in get(service, "/v1/cases", limit=100)["items"]]
    case = max(cases, key=lambda c: len(c["evidence"]))
    assert len(case["evidence"]) == 3, [(c["event"], len(c["evidence"])) for c in cases]
    return case


def photo_rows(service: Service) -> dict[str, tuple[float | None, float | None, str]]:
    state = service.client.app.state.service  # type: ignore[attr-defined]
    with transaction(state.sessions) as session:
        return {p.sha256: (p.lat, p.lon, p.path) for p in session.scalars(select(Photo))}


def test_detach_split_and_merge(service: Service, photos: list[bytes], tmp_path: Path) -> None:
    case = one_case_of_three(service, photos)
    case_id, number = case["id"], case["number"]
    first, second, third = case["evidence"]
    assert case["evidence_actions"] == []  # a read-only key is offered no change
    as_admin = service.client.get(f"/v1/cases/{case_id}", headers=service.auth("admin")).json()
    assert as_admin["evidence_actions"] == ["detach", "split", "merge"]

    # detach: needs If-Match and a reason; the flow log keeps the photo; photo row and file stay
    url = f"/v1/cases/{case_id}/evidence/{third['id']}/detach"
    assert (
        service.client.post(url, json={"reason": "x"}, headers=service.auth("cases:write")).status_code == 428
    )
    refused = change(service, case_id, url, {"reason": ""})
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    answer = change(service, case_id, url, {"reason": "立面照片，不是垃圾"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [e["id"] for e in body["evidence"]] == [first["id"], second["id"]]
    assert (body["lat"], body["lon"]) == (case["lat"], case["lon"])  # not the photo that placed it
    step = body["flow"][-1]
    assert (step["action"], step["from_state"], step["to_state"]) == ("detach", "reported", "reported")
    assert "now stands" not in step["note"]
    public = service.client.get(f"/open311/v2/requests/{number}.json").json()[0]
    assert public["status_notes"] == "已收到，待核实"  # the bureau's photo bookkeeping is not the public's
    assert f"evidence {third['id']}" in step["note"] and third["sha256"][:12] in step["note"]
    assert f"taken {third['captured_at']})" in step["note"]  # the bureau's clock, as the API answers it
    assert step["note"].endswith("立面照片，不是垃圾") and step["operator"] == "cases:write-user"
    rows = photo_rows(service)
    assert third["sha256"] in rows and Path(rows[third["sha256"]][2]).is_file()
    gone = service.client.get(f"/v1/evidence/{third['id']}", headers=service.auth("cases:read"))
    assert gone.status_code == 404

    # the photo is free again: evidence of no case, it may be reported anew
    again = change(service, case_id, url, {"reason": "twice"})
    assert again.status_code == 422 and again.json()["field"] == "evidence_id"

    # split: the second photo becomes a new case of the same event, placed where it was taken
    split_url = f"/v1/cases/{case_id}/split"
    foreign = change(service, case_id, split_url, {"evidence_ids": [third["id"]], "reason": "另一处"})
    assert foreign.status_code == 422 and "not evidence of case" in foreign.json()["detail"]
    everything = change(
        service, case_id, split_url, {"evidence_ids": [first["id"], second["id"]], "reason": "r"}
    )
    assert everything.status_code == 409 and everything.json()["title"] == "a case keeps its evidence"
    answer = change(service, case_id, split_url, {"evidence_ids": [second["id"]], "reason": "另一处垃圾"})
    assert answer.status_code == 201, answer.text
    new = answer.json()
    assert answer.headers["Location"] == f"/v1/cases/{new['id']}"
    assert [e["id"] for e in new["evidence"]] == [second["id"]]
    assert (new["event"], new["state"], new["ai_review"]) == (case["event"], "reported", "pending")
    lat, lon, _ = rows[second["sha256"]]
    assert (new["lat"], new["lon"]) == pytest.approx((NORTH.lat, NORTH.lon)) == (lat, lon)
    grid = load_grids(service.settings.grids).locate(NORTH.lat, NORTH.lon)
    assert grid is not None and new["grid_code"] == grid.code and new["number"] != number
    assert new["flow"][0]["action"] == "split" and number in new["flow"][0]["note"]
    old = get(service, f"/v1/cases/{case_id}")
    assert [e["id"] for e in old["evidence"]] == [first["id"]]
    assert old["flow"][-1]["action"] == "split" and new["number"] in old["flow"][-1]["note"]

    # the last photo stays
    last = change(service, case_id, f"/v1/cases/{case_id}/evidence/{first['id']}/detach", {"reason": "r"})
    assert last.status_code == 409 and last.json()["evidence_ids"] == [first["id"]]

    # merge: the new case's photo comes back, the new case is cancelled as merged
    merge_url = f"/v1/cases/{case_id}/merge"
    itself = change(service, case_id, merge_url, {"case_id": case_id, "reason": "r"})
    assert itself.status_code == 422
    answer = change(service, case_id, merge_url, {"case_id": new["id"], "reason": "同一堆垃圾"})
    assert answer.status_code == 200, answer.text
    merged = answer.json()
    assert [e["id"] for e in merged["evidence"]] == [first["id"], second["id"]]
    assert merged["flow"][-1]["action"] == "merge" and new["number"] in merged["flow"][-1]["note"]
    cancelled = get(service, f"/v1/cases/{new['id']}")
    assert cancelled["state"] == "cancelled" and cancelled["evidence"] == []
    as_admin = service.client.get(f"/v1/cases/{new['id']}", headers=service.auth("admin")).json()
    assert as_admin["evidence_actions"] == []  # a finished case's evidence is its record
    step = cancelled["flow"][-1]
    assert (
        step["action"] == "cancel"
        and step["note"] == f"merged into case {number} (1 photo(s) moved there): 同一堆垃圾"
    )
    public = service.client.get(f"/open311/v2/requests/{new['number']}.json").json()[0]
    # the public reads where the problem went, in Chinese, not the photo bookkeeping
    assert (
        public["status"] == "closed" and public["status_notes"] == f"已作废：已并入案卷 {number}：同一堆垃圾"
    )

    # a finished case is neither merged nor merged into
    twice = change(service, case_id, merge_url, {"case_id": new["id"], "reason": "r"})
    assert twice.status_code == 409 and "cancel" not in twice.json()["allowed_actions"]
    into_finished = change(
        service, new["id"], f"/v1/cases/{new['id']}/merge", {"case_id": case_id, "reason": "r"}
    )
    assert into_finished.status_code == 409 and into_finished.json()["title"] == "case not open"


def test_a_case_leaves_the_place_of_a_photo_taken_off_it(service: Service, photos: list[bytes]) -> None:
    """The photo that placed the case (the first) detached: the case stands where the next located
    photo was taken, in that place's grid; split off in turn, the case moves on to the third."""
    case = one_case_of_three(service, photos)
    first, second, third = case["evidence"]
    assert (case["lat"], case["lon"]) == pytest.approx((HERE.lat, HERE.lon), abs=1e-7)
    url = f"/v1/cases/{case['id']}/evidence/{first['id']}/detach"
    moved = change(service, case["id"], url, {"reason": "立面照片"}).json()
    assert (moved["lat"], moved["lon"]) == pytest.approx((NORTH.lat, NORTH.lon), abs=1e-7)
    grids = load_grids(service.settings.grids)
    assert moved["grid_code"] == grids.locate(NORTH.lat, NORTH.lon).code  # type: ignore[union-attr]
    assert f"now stands where evidence {second['id']} was taken" in moved["flow"][-1]["note"]
    split = f"/v1/cases/{case['id']}/split"
    assert (
        change(service, case["id"], split, {"evidence_ids": [second["id"]], "reason": "另一处"}).status_code
        == 201
    )
    after = get(service, f"/v1/cases/{case['id']}")
    assert (after["lat"], after["lon"]) == pytest.approx((EAST.lat, EAST.lon), abs=1e-7)
    assert f"now stands where evidence {third['id']} was taken" in after["flow"][-1]["note"]


def test_merge_needs_the_same_event(service: Service, photos: list[bytes]) -> None:
    case = one_case_of_three(service, photos)
    others = [c for c in get(service, "/v1/cases", limit=100)["items"] if c["event"] != case["event"]]
    if not others:
        pytest.skip("the model found one event only on these photos")
    answer = change(
        service, case["id"], f"/v1/cases/{case['id']}/merge", {"case_id": others[0]["id"], "reason": "r"}
    )
    assert answer.status_code == 422 and answer.json()["field"] == "case_id"
    assert len(get(service, f"/v1/cases/{case['id']}")["evidence"]) == 3  # nothing moved
