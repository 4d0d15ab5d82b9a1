"""Photo reuse over HTTP with the real model (SQLite and PostgreSQL): a photo already evidence of a
case, sent again as the same bytes or as a near-identical copy (re-encoded, scaled, EXIF stripped)
with another position and time, joins that case and never opens one; sent as evidence of another
case it is refused with a problem document naming the case it belongs to."""

from __future__ import annotations

import io
from datetime import timedelta

import cv2
import numpy as np
import pytest
from configured import TAXONOMY
from conftest import Service
from PIL import Image
from test_review import garbage_photos, get, post_report
from test_scan import START, spot

from vision.core.phash import NEAR_IDENTICAL_BITS, hash_distance, perceptual_hash


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    return garbage_photos(tmp_path_factory.mktemp("reuse"), 2)


def copy_of(photo: bytes) -> bytes:
    """The photo scaled to 80 %, saved at JPEG quality 70, without EXIF: other bytes, same picture."""
    with Image.open(io.BytesIO(photo)) as image:
        smaller = image.resize((480, 480))
    out = io.BytesIO()
    smaller.save(out, "JPEG", quality=70)
    return out.getvalue()


def decoded(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def test_a_copy_is_near_and_another_photo_far(photos: list[bytes]) -> None:
    original, other = (perceptual_hash(decoded(p)) for p in photos)
    assert hash_distance(original, perceptual_hash(decoded(copy_of(photos[0])))) <= NEAR_IDENTICAL_BITS
    assert hash_distance(original, other) > 2 * NEAR_IDENTICAL_BITS


def test_a_reused_photo_joins_its_case_and_opens_none(service: Service, photos: list[bytes]) -> None:
    first = post_report(service, photos[0])
    assert first and all(c["created"] for c in first)
    numbers = sorted(c["number"] for c in first)
    before = get(service, "/v1/cases")["total"]

    elsewhere, later = spot(6), START - timedelta(days=2)  # another grid, two days earlier
    copy = copy_of(photos[0])
    response = service.client.post(
        "/v1/reports",
        files={"file": ("copy.jpg", copy, "image/jpeg")},
        data={"lat": repr(elsewhere.lat), "lon": repr(elsewhere.lon), "taken_at": later.isoformat()},
        headers=service.auth("report"),
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert sorted(answer["copy_of"]) == numbers
    assert sorted(c["number"] for c in answer["cases"]) == numbers and not any(
        c["created"] for c in answer["cases"]
    )
    assert get(service, "/v1/cases")["total"] == before  # no new case
    case = get(service, f"/v1/cases/{first[0]['id']}")
    joined = case["evidence"][-1]
    assert joined["extra"]["copy_of"]["case"] == case["number"]
    assert joined["extra"]["claimed"]["lat"] == pytest.approx(elsewhere.lat)
    assert joined["extra"]["claimed"]["taken_at"] == later.isoformat()
    assert case["last_seen_at"] == case["first_seen_at"]  # the copy's claimed time is no sighting
    for filed in first:  # each case is shown the boxes of its own problem only
        boxes = get(service, f"/v1/cases/{filed['id']}")["evidence"][-1]["boxes"]
        assert {TAXONOMY.classes[TAXONOMY.names.index(b["class"])].event for b in boxes} == {filed["event"]}

    # The same bytes sent again with another position answer the first cases, as before.
    again = service.client.post(
        "/v1/reports",
        files={"file": ("again.jpg", photos[0], "image/jpeg")},
        data={"lat": repr(elsewhere.lat), "lon": repr(elsewhere.lon)},
        headers=service.auth("report"),
    )
    assert sorted(c["number"] for c in again.json()["cases"]) == numbers
    assert again.json()["copy_of"] == []  # the original is no copy
    # The copy sent again says again whose copy it is (its answer said copy_of: [] before).
    copy_again = service.client.post(
        "/v1/reports", files={"file": ("copy.jpg", copy, "image/jpeg")}, headers=service.auth("report")
    )
    assert copy_again.status_code == 200, copy_again.text
    assert sorted(copy_again.json()["copy_of"]) == numbers
    assert sorted(c["number"] for c in copy_again.json()["cases"]) == numbers
    assert get(service, "/v1/cases")["total"] == before


def test_a_photo_of_one_case_is_refused_as_evidence_of_another(service: Service, photos: list[bytes]) -> None:
    [mine, *_] = post_report(service, photos[0])
    [other, *_] = post_report(service, photos[1])
    writer = service.auth("cases:write")
    refused = service.client.post(
        f"/v1/cases/{other['id']}/evidence",
        files={"file": ("after.jpg", copy_of(photos[0]), "image/jpeg")},
        data={"role": "after"},
        headers=writer,
    )
    assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["case"] == mine["number"] and mine["number"] in refused.json()["detail"]
    assert [e["role"] for e in get(service, f"/v1/cases/{other['id']}")["evidence"]] == ["finding"]
    kept = service.client.post(
        f"/v1/cases/{mine['id']}/evidence",
        files={"file": ("near.jpg", copy_of(photos[0]), "image/jpeg")},
        data={"role": "near"},
        headers=writer,
    )
    assert kept.status_code == 201, kept.text  # its own case may have it (a close-up, a copy)


def test_a_copy_of_a_finished_case_s_photo_joins_it_not(service: Service, photos: list[bytes]) -> None:
    """A copy of a photo of a case no longer open was added to that case as evidence: its record
    changed after it was finished. Now the answer names the case in `copy_of`, it joins none and
    opens none."""
    first = post_report(service, photos[0])
    for case in first:
        assert service.transition(case["id"], "reject", note="误报").status_code == 200
    kept = {case["id"]: get(service, f"/v1/cases/{case['id']}")["evidence"] for case in first}
    response = service.client.post(
        "/v1/reports",
        files={"file": ("copy.jpg", copy_of(photos[0]), "image/jpeg")},
        data={"lat": repr(spot(6).lat), "lon": repr(spot(6).lon), "taken_at": START.isoformat()},
        headers=service.auth("report"),
    )
    assert response.status_code == 200, response.text
    assert sorted(response.json()["copy_of"]) == sorted(c["number"] for c in first)
    assert response.json()["cases"] == [] and get(service, "/v1/cases")["total"] == len(first)
    assert {case["id"]: get(service, f"/v1/cases/{case['id']}")["evidence"] for case in first} == kept
