"""POST /v1/detect and /v1/reports with the current model (models/registry.yaml), on SQLite and PostgreSQL.

No detection count is written down here: the model is provisional and will be replaced. The tests
compare the API with the same model run directly, and follow whatever it finds into cases.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import cv2
import numpy as np
import pytest
from configured import CONFIGS, KEEP, MODELS, TAXONOMY
from conftest import SERVICE_START, Service
from PIL import Image
from sqlalchemy import func, select

from serve.api.state import InferenceGate
from serve.cases.errors import Busy
from serve.cases.intake import patrol_findings
from serve.cases.orm import Evidence, Photo
from vision.core.imageio import Position, decode_photo, exif_for
from vision.core.taxonomy import load_taxonomy
from vision.detect.registry import CURRENT, find_model

TZ = ZoneInfo("Asia/Shanghai")
VAL_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "garbage-cn" / "images" / "val"
PLACE = {"lat": "34.72265", "lon": "113.62762"}  # unit grid 410103001001005


@dataclass(frozen=True)
class Photo311:
    jpeg: bytes
    width: int
    height: int
    detections: int
    events: list[str]


@pytest.fixture(scope="module")
def street_photo() -> Photo311:
    """A real garbage photo, re-encoded here, on which the model finds at least one patrol finding."""
    try:
        find_model(CURRENT, models_dir=MODELS)
    except Exception as err:
        pytest.skip(f"no current model in models/ ({err}); the train/evaluate work provides it")
    if not VAL_IMAGES.is_dir():
        pytest.skip(f"{VAL_IMAGES} not found (../shared beside the project)")
    from vision.detect.backends import load_detector

    detector, taxonomy = (
        load_detector(CURRENT, models_dir=MODELS, taxonomy=TAXONOMY, confidence=KEEP),  # as the service
        load_taxonomy(CONFIGS / "taxonomy.yaml"),
    )
    for path in sorted(VAL_IMAGES.glob("*.jpg"))[:80]:
        ok, encoded = cv2.imencode(".jpg", cv2.imread(str(path)), [cv2.IMWRITE_JPEG_QUALITY, 92])
        assert ok
        image = decode_photo(encoded.tobytes()).image
        detections = detector(image)
        events = sorted(patrol_findings(detections, taxonomy))
        if events:
            height, width = image.shape[:2]
            return Photo311(encoded.tobytes(), width, height, len(detections), events)
    pytest.skip("the provisional model finds no patrol finding on the first 80 validation photos")


def upload(data: bytes, name: str = "patrol.jpg", kind: str = "image/jpeg") -> dict[str, Any]:
    return {"file": (name, data, kind)}


def test_detect_matches_the_model_run_directly(service: Service, street_photo: Photo311) -> None:
    response = service.client.post(
        "/v1/detect", files=upload(street_photo.jpeg), headers=service.auth("detect")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (street_photo.width, street_photo.height)
    assert (
        body["model_version"].startswith(f"{find_model(CURRENT, models_dir=MODELS).name}@")
        and len(body["detections"]) == street_photo.detections
    )
    taxonomy = load_taxonomy(CONFIGS / "taxonomy.yaml")
    for d in body["detections"]:
        x1, y1, x2, y2 = d["xyxy"]
        assert 0 <= x1 < x2 <= body["width"] and 0 <= y1 < y2 <= body["height"]
        cls = taxonomy.classes[d["class_id"]]
        assert (d["class_name"], d["event"]) == (cls.name, cls.event)
        assert d["finding"] == (
            cls.patrol and cls.event is not None and d["confidence"] >= cls.min_confidence
        )
    assert sorted({d["event"] for d in body["detections"] if d["finding"]}) == street_photo.events
    assert body["timing"]["inference_ms"] > 0
    metrics = service.client.get("/metrics", headers=service.auth("cases:read")).text
    assert "streetorder_inference_seconds_count 1.0" in metrics
    assert f'streetorder_model_info{{version="{body["model_version"]}"}} 1.0' in metrics
    ready = service.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["model_version"] == body["model_version"]


def test_report_files_its_findings_once_and_retries_replay(service: Service, street_photo: Photo311) -> None:
    reporter = service.auth("report")
    form = {**PLACE, "taken_at": "2025-09-30T09:15:00+08:00"}
    first = service.client.post(
        "/v1/reports",
        files=upload(street_photo.jpeg),
        data=form,
        headers={**reporter, "Idempotency-Key": "k1"},
    )
    assert first.status_code == 200, first.text
    body = first.json()
    assert [c["event"] for c in body["cases"]] == street_photo.events
    assert all(c["created"] and c["state"] == "reported" for c in body["cases"])
    assert body["grid_code"] == "410103001001005" and body["unlocated"] is False

    retry = service.client.post(
        "/v1/reports",
        files=upload(street_photo.jpeg),
        data=form,
        headers={**reporter, "Idempotency-Key": "k1"},
    )
    assert retry.json() == body and retry.headers["Idempotent-Replayed"] == "true"
    changed = service.client.post(
        "/v1/reports",
        files=upload(street_photo.jpeg),
        data={**form, "lat": "34.7240"},
        headers={**reporter, "Idempotency-Key": "k1"},
    )
    assert changed.status_code == 422
    again = service.client.post("/v1/reports", files=upload(street_photo.jpeg), data=form, headers=reporter)
    assert [(c["id"], c["created"]) for c in again.json()["cases"]] == [
        (c["id"], False) for c in body["cases"]
    ]

    sessions = service.client.app.state.service.sessions  # type: ignore[attr-defined]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Photo)) == 1
        assert session.scalar(select(func.count()).select_from(Evidence)) == len(street_photo.events)
    reader = service.auth("cases:read")
    case = service.client.get(f"/v1/cases/{body['cases'][0]['id']}", headers=reader).json()
    assert case["ai_review"] == "pending" and case["source"] == "patrol_photo"
    assert datetime.fromisoformat(case["filed_at"]) == datetime(2025, 9, 30, 9, 15, tzinfo=TZ)
    evidence = case["evidence"][0]
    assert evidence["boxes"] and evidence["model_version"] == body["model_version"]
    drawn = service.client.get(evidence["url"], params={"boxes": "true"}, headers=reader)
    assert drawn.status_code == 200 and drawn.content[:2] == b"\xff\xd8"


def test_report_position_and_time_from_exif_or_unlocated(service: Service, street_photo: Photo311) -> None:
    taken = SERVICE_START - timedelta(hours=2)
    image = Image.open(io.BytesIO(street_photo.jpeg))
    with_exif = io.BytesIO()
    image.save(with_exif, "JPEG", exif=exif_for(position=Position(34.72265, 113.62762), taken_at=taken))
    located = service.client.post(
        "/v1/reports", files=upload(with_exif.getvalue()), headers=service.auth("report")
    ).json()
    assert (round(located["lat"], 5), round(located["lon"], 5)) == (34.72265, 113.62762)
    assert datetime.fromisoformat(located["taken_at"]) == taken
    found = sorted({d["event"] for d in located["detections"] if d["finding"]})
    assert [c["event"] for c in located["cases"]] == found  # re-encoding with EXIF may change scores
    bare = service.client.post("/v1/reports", files=upload(street_photo.jpeg), headers=service.auth("report"))
    assert bare.json()["unlocated"] is True and bare.json()["detections"]
    # the same picture without EXIF is a copy of the located photo: it joins its cases, opens none
    numbers = [c["number"] for c in located["cases"]]
    assert bare.json()["copy_of"] == numbers and [c["number"] for c in bare.json()["cases"]] == numbers
    assert not any(c["created"] for c in bare.json()["cases"])


def test_a_photo_sent_without_a_type_of_its_own_is_taken_by_its_bytes(
    service: Service, street_photo: Photo311
) -> None:
    """curl -F and browsers that know no type for .heic send application/octet-stream."""
    for kind in ("application/octet-stream", ""):
        files = upload(street_photo.jpeg, "patrol", kind) if kind else {"file": ("patrol", street_photo.jpeg)}
        response = service.client.post("/v1/detect", files=files, headers=service.auth("detect"))
        assert response.status_code == 200, response.text
        assert len(response.json()["detections"]) == street_photo.detections


@pytest.mark.parametrize(("pillow_format", "kind"), [("HEIF", "image/heic"), ("WEBP", "image/webp")])
def test_a_heic_or_webp_photo_is_taken_like_a_jpeg(
    service: Service, street_photo: Photo311, pillow_format: str, kind: str
) -> None:
    """iPhones save HEIC by default, some apps WebP: the report reads its EXIF position and time,
    files what the model finds, keeps the bytes as they came and serves them with their type."""
    taken = SERVICE_START - timedelta(hours=1)
    encoded = io.BytesIO()
    Image.open(io.BytesIO(street_photo.jpeg)).save(
        encoded,
        pillow_format,
        quality=90,
        exif=exif_for(position=Position(34.72265, 113.62762), taken_at=taken),
    )
    response = service.client.post(
        "/v1/reports", files=upload(encoded.getvalue(), "patrol.photo", kind), headers=service.auth("report")
    )
    assert response.status_code in (200, 201), response.text
    report = response.json()
    assert (round(report["lat"], 5), round(report["lon"], 5)) == (34.72265, 113.62762)
    assert datetime.fromisoformat(report["taken_at"]) == taken
    found = sorted({d["event"] for d in report["detections"] if d["finding"]})
    assert found and [c["event"] for c in report["cases"]] == found
    case = service.client.get(
        f"/v1/cases/{report['cases'][0]['id']}", headers=service.auth("cases:read")
    ).json()
    evidence_id = case["evidence"][0]["id"]
    raw = service.client.get(f"/v1/evidence/{evidence_id}", headers=service.auth("admin"))
    assert raw.headers["content-type"] == kind and raw.content == encoded.getvalue()
    drawn = service.client.get(f"/v1/evidence/{evidence_id}?boxes=true", headers=service.auth("admin"))
    assert drawn.headers["content-type"] == "image/jpeg" and drawn.content.startswith(b"\xff\xd8")


def encoded(image_format: str) -> bytes:
    """A small real image in a format the service does not take."""
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(out, image_format)
    return out.getvalue()


@pytest.mark.parametrize(
    ("files", "status", "words"),
    [
        (upload(b"plain text", "notes.txt", "text/plain"), 415, "content type"),
        # the bytes decide, not the type they were sent as: the same GIF is 415 typed or untyped
        (upload(encoded("GIF"), "anim.jpg", "image/jpeg"), 415, "its bytes are a GIF image"),
        (upload(encoded("GIF"), "anim.gif", "application/octet-stream"), 415, "its bytes are a GIF image"),
        (upload(encoded("TIFF"), "scan.png", "image/png"), 415, "its bytes are a TIFF image"),
        (upload(b"plain text", "notes.jpg", "application/octet-stream"), 415, "no JPEG, PNG, WebP or HEIC"),
        (upload(b"\xff\xd8\xff\xe0" + b"\x00" * 64, "broken.jpg"), 400, "broken.jpg"),
        (upload(b"", "empty.jpg"), 400, "empty"),
        (upload(b"\xff" * (2 * 2**20), "huge.jpg"), 413, "over"),
    ],
)
def test_bad_uploads_are_refused_clearly(
    service: Service, street_photo: Photo311, files: dict[str, Any], status: int, words: str
) -> None:
    for path, scope in (("/v1/detect", "detect"), ("/v1/reports", "report")):
        response = service.client.post(path, files=files, data=PLACE, headers=service.auth(scope))
        assert response.status_code == status, response.text
        assert words in response.json()["detail"]
    assert service.client.get("/v1/cases", headers=service.auth("cases:read")).json()["items"] == []


@pytest.mark.parametrize("size", [(1, 1), (31, 400)])
def test_a_photo_too_small_to_show_anything_is_refused_at_every_door(
    service: Service, street_photo: Photo311, size: tuple[int, int]
) -> None:
    """A 1x1 photo was boxed whole by the model (`garbage_bin` 0.96) and filed as a case. A photo
    whose shorter side is under `min_photo_side` (32 px) is a 422 problem document naming its size
    and the minimum, at the detect, report and evidence doors alike, and nothing is stored; one
    of the minimum is taken."""
    street = cv2.imdecode(np.frombuffer(street_photo.jpeg, np.uint8), cv2.IMREAD_COLOR)
    tiny = cv2.imencode(".jpg", cv2.resize(street, size))[1].tobytes()
    case = service.client.post(
        "/open311/v2/requests.json",
        data={"service_code": "06010", "lat": PLACE["lat"], "long": PLACE["lon"], "description": "垃圾"},
        headers=service.auth("report"),
    )
    assert case.status_code == 201, case.text
    (case_id,) = [
        c["id"] for c in service.client.get("/v1/cases", headers=service.auth("cases:read")).json()["items"]
    ]
    sessions = service.client.app.state.service.sessions  # type: ignore[attr-defined]

    def stored() -> tuple[int, int]:
        with sessions() as session:
            counted = [session.scalar(select(func.count()).select_from(t)) for t in (Photo, Evidence)]
        return counted[0] or 0, counted[1] or 0

    before = stored()
    doors = [("/v1/detect", "detect", {}), ("/v1/reports", "report", PLACE)]
    doors.append((f"/v1/cases/{case_id}/evidence", "cases:write", {"role": "near"}))
    for path, scope, form in doors:
        refused = service.client.post(path, files=upload(tiny), data=form, headers=service.auth(scope))
        assert refused.status_code == 422, (path, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        body = refused.json()
        assert body["title"] == "photo too small" and (body["width"], body["height"], body["min_side"]) == (
            *size,
            32,
        )
        assert f"{size[0]}x{size[1]} pixels, under the minimum of 32 px" in body["detail"], path
    assert stored() == before
    smallest = cv2.imencode(".jpg", cv2.resize(street, (32, 32)))[1].tobytes()
    taken = service.client.post("/v1/detect", files=upload(smallest), headers=service.auth("detect"))
    assert taken.status_code == 200, taken.text


@pytest.fixture
def service_overrides(request: pytest.FixtureRequest) -> dict[str, object]:
    return {"model": "no-such-model"} if "without_model" in request.node.name else {}


def test_without_model_cases_work_and_detection_is_503(service: Service, jpeg: Any) -> None:
    response = service.client.post("/v1/detect", files=upload(jpeg()), headers=service.auth("detect"))
    assert response.status_code == 503 and "no-such-model" in response.json()["detail"]
    assert "no-such-model: no model" not in response.json()["detail"]  # the file named once, not twice
    ready = service.client.get("/readyz")
    assert ready.status_code == 503 and "model not loaded" in ready.json()["status"]
    assert service.client.get("/v1/cases", headers=service.auth("cases:read")).status_code == 200


def test_inference_gate_runs_one_at_a_time_queues_then_refuses() -> None:
    """threads=1, queue=1: a second image waits, a third is refused with 503 Busy at once."""
    running, peak, release = [0], [0], threading.Event()

    def infer() -> int:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        release.wait(10)
        running[0] -= 1
        return 1

    async def main() -> list[int]:
        gate, results = InferenceGate(threads=1, queue=1), []

        async def run() -> None:
            results.append(await gate.run(infer))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(run)
            tasks.start_soon(run)
            while gate.in_flight < 2:
                await anyio.sleep(0.01)
            with pytest.raises(Busy) as refused:
                await gate.run(infer)
            assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "1"}
            release.set()
        return results

    assert anyio.run(main) == [1, 1] and peak[0] == 1
