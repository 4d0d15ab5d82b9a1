"""Privacy: faces (CenterFace) and plates (PP-OCR) found and blurred in every image served to keys
without `evidence:raw` (Open311 clients included); raw images for staff; evidence files confined."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import Service
from matplotlib import cbook

from serve.cases.orm import Evidence
from vision.detect.privacy import blur_regions, default_redactor, looks_like_plate

PLACE = {"service_code": "06010", "lat": "34.72265", "long": "113.62762"}
DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(scope="module")
def redactor():  # type: ignore[no-untyped-def]
    return default_redactor()  # the detectors are package dependencies: missing ones fail here


def portrait() -> np.ndarray:
    """A real photo of a face that ships with matplotlib (Grace Hopper, 512x600)."""
    return cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))


PLATE_BOX = (150, 200, 350, 243)  # x1, y1, x2, y2 of the plate drawn below


def street_with_plate() -> np.ndarray:
    """A grey street scene with a white number plate (black border, black letters and digits)."""
    image = np.random.default_rng(0).integers(80, 110, (360, 480, 3), dtype=np.uint8)
    x1, y1, x2, y2 = PLATE_BOX
    cv2.rectangle(image, (x1, y1), (x2, y2), (235, 235, 235), -1)
    cv2.rectangle(image, (x1, y1), (x2, y2), (20, 20, 20), 2)
    cv2.putText(image, "A123BC", (x1 + 10, y2 - 9), cv2.FONT_HERSHEY_SIMPLEX, 1.18, (15, 15, 15), 3)
    cv2.putText(image, "77", (x2 - 40, y2 - 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (15, 15, 15), 1)
    return image


def inside(box: np.ndarray, point: tuple[float, float]) -> bool:
    return bool(box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3])


def test_the_face_of_a_real_photo_is_found_and_blurred(redactor) -> None:  # type: ignore[no-untyped-def]
    image = portrait()
    regions = redactor.regions(image)
    assert len(regions["faces"]) == 1
    face = regions["faces"][0]
    width, height = face[2] - face[0], face[3] - face[1]
    assert 120 < width < 320 and 0.8 < height / width < 1.25
    assert inside(face, (265, 215))  # between the eyes, measured on the photo
    blurred, counts = redactor.redact(image)
    assert counts["faces"] == 1
    x1, y1, x2, y2 = (int(v) for v in face)
    original_detail = cv2.Laplacian(cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    left_detail = cv2.Laplacian(cv2.cvtColor(blurred[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    assert left_detail < original_detail / 20  # no edges left to recognise
    assert np.array_equal(blurred[-40:], image[-40:])  # the rest of the photo untouched
    assert redactor.regions(blurred)["faces"].size == 0  # and no face to be found any more


def test_a_plate_is_found_and_blurred(redactor) -> None:  # type: ignore[no-untyped-def]
    image = street_with_plate()
    plates = redactor.regions(image)["plates"]
    x1, y1, x2, y2 = PLATE_BOX
    assert any(inside(p, ((x1 + x2) / 2, (y1 + y2) / 2)) for p in plates)
    blurred, counts = redactor.redact(image)
    assert counts["plates"] >= 1
    letters = cv2.cvtColor(blurred[y1 + 4 : y2 - 4, x1 + 4 : x2 - 4], cv2.COLOR_BGR2GRAY)
    assert (letters < 60).mean() < 0.01  # the black letters are gone


@pytest.mark.parametrize("fill", [0, 128, 255])
def test_flat_images_have_nothing_to_blur(redactor, fill: int) -> None:  # type: ignore[no-untyped-def]
    image = np.full((240, 320, 3), fill, np.uint8)
    blurred, counts = redactor.redact(image)
    assert counts == {"faces": 0, "plates": 0} and np.array_equal(blurred, image)


def real_photo(relative: str) -> np.ndarray:
    path = DATASETS / relative
    if not path.is_file():
        pytest.skip(f"{path} not found (../shared beside the checkout)")
    return cv2.imread(str(path))


def test_a_face_in_a_real_street_photo_is_found(redactor) -> None:  # type: ignore[no-untyped-def]
    """A man leaning over a motorbike, face turned down (the old frontal-face cascade missed him)."""
    image = real_photo(
        "vehicles-in/images/val/IMG-20240615-WA0021_jpg.rf.9ec1314f0ba80ab7e9ea7708632e86e4.jpg"
    )
    faces = redactor.regions(image)["faces"]
    assert any(inside(face, (318, 352)) for face in faces)  # between his glasses, measured on the photo
    blurred, _ = redactor.redact(image)
    assert not any(inside(face, (318, 352)) for face in redactor.regions(blurred)["faces"])


def test_a_plate_in_a_real_photo_is_found_and_blurred(redactor) -> None:  # type: ignore[no-untyped-def]
    """The rear plate AP31 0T 5511 of a parked car, 55 px wide."""
    image = real_photo(
        "vehicles-in/images/train/IMG20240615122051_jpg.rf.c7571e5935fb26815aff1449d729f790.jpg"
    )
    plates = redactor.regions(image)["plates"]
    assert any(inside(plate, (187, 369)) for plate in plates)  # the plate's centre, measured on the photo
    blurred, counts = redactor.redact(image)
    assert counts["plates"] >= 1 and redactor.regions(blurred)["plates"].size == 0


@pytest.mark.parametrize(
    "photo",
    [
        "garbage-cn/images/val/001004_jpg.rf.963ba5d7a6f9dd609b23305804bd98e4.jpg",  # bins by a wall
        "garbage-cn/images/val/001025_jpg.rf.9358d943d0c2fdaabfcbd1cf7c2dd562.jpg",  # a bin, a sign
    ],
)
def test_no_false_blur_on_a_street_without_people_or_plates(redactor, photo: str) -> None:  # type: ignore[no-untyped-def]
    """The old cascades put 3 and 1 faces on these; nothing here is a face or a plate."""
    image = real_photo(photo)
    blurred, counts = redactor.redact(image)
    assert counts == {"faces": 0, "plates": 0} and np.array_equal(blurred, image)


@pytest.mark.parametrize(
    ("text", "plate"),
    [
        ("粤B·12345", True),
        ("AP310T5511", True),
        ("A123BC 77", True),
        ("京AD12345", True),
        ("10:02", False),  # a camera's clock
        ("2019-09-20", False),
        ("13812345678", False),  # a flyer's phone number
        ("THANKSGIVING TRAVEL CRUNCH", False),
        ("京海环", False),
        ("", False),
    ],
)
def test_which_text_reads_as_a_plate(text: str, plate: bool) -> None:
    assert looks_like_plate(text) is plate


def test_blur_clips_boxes_at_the_border() -> None:
    image = np.random.default_rng(1).integers(0, 255, (50, 60, 3), dtype=np.uint8)
    out = blur_regions(image, [[-20, -20, 30, 25], [59, 49, 80, 90]])
    assert out.shape == image.shape and not np.array_equal(out[:20, :20], image[:20, :20])
    assert np.array_equal(out[35:45, 40:55], image[35:45, 40:55])


# --- over HTTP -------------------------------------------------------------------------------


def jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return data.tobytes()


def staff_key(service: Service) -> dict[str, str]:
    created = service.client.post(
        "/v1/keys",
        json={"name": "staff", "scopes": ["cases:read", "evidence:raw"]},
        headers=service.auth("admin"),
    )
    assert created.status_code == 201, created.text
    return {"X-API-Key": created.json()["key"]}


def open_case(service: Service, **fields: str) -> dict[str, object]:
    posted = service.client.post(
        "/open311/v2/requests.json", data={**PLACE, **fields}, headers=service.auth("report")
    )
    assert posted.status_code == 201, posted.text
    number = posted.json()[0]["service_request_id"]
    cases = service.client.get("/v1/cases", headers=service.auth("cases:read")).json()["items"]
    return next(c for c in cases if c["number"] == number)


def blurred_where_the_face_was(served: np.ndarray, redactor) -> bool:  # type: ignore[no-untyped-def]
    """The face box of the original holds almost no edges in the served image."""
    x1, y1, x2, y2 = (int(v) for v in redactor.regions(portrait())["faces"][0])
    detail = [
        cv2.Laplacian(cv2.cvtColor(i[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
        for i in (portrait(), served)
    ]
    return bool(detail[1] < detail[0] / 20)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_served_evidence_is_blurred_unless_the_key_may_see_raw(service: Service, redactor) -> None:  # type: ignore[no-untyped-def]
    photo = jpeg(portrait())
    case = open_case(service)
    added = service.client.post(
        f"/v1/cases/{case['id']}/evidence",
        files={"file": ("after.jpg", photo, "image/jpeg")},
        data={"role": "near"},
        headers=service.auth("cases:write"),
    )
    assert added.status_code == 201, added.text
    url = added.json()["url"]

    reader = service.client.get(url, headers=service.auth("cases:read"))
    assert reader.status_code == 200 and reader.headers["X-Privacy"] == "redacted"
    served = cv2.imdecode(np.frombuffer(reader.content, np.uint8), cv2.IMREAD_COLOR)
    assert served.shape == portrait().shape and reader.content != photo
    assert blurred_where_the_face_was(served, redactor)
    again = service.client.get(url, headers=service.auth("cases:read"))
    assert again.content == reader.content  # made once, kept
    assert len(list((service.settings.evidence_dir / "rendered" / "redacted").rglob("*.jpg"))) == 1

    drawn = service.client.get(url, params={"boxes": "true"}, headers=service.auth("cases:read"))
    assert drawn.headers["X-Privacy"] == "redacted"
    assert blurred_where_the_face_was(
        cv2.imdecode(np.frombuffer(drawn.content, np.uint8), cv2.IMREAD_COLOR), redactor
    )

    for headers in (staff_key(service), service.auth("admin")):
        raw = service.client.get(url, headers=headers)
        assert raw.status_code == 200 and raw.headers["X-Privacy"] == "raw" and raw.content == photo

    # an Open311 client follows media_url, public and without a key: blurred, the same blurred copy
    request = service.client.get(f"/open311/v2/requests/{case['number']}.json").json()[0]
    citizen = service.client.get(request["media_url"])
    assert citizen.status_code == 200 and citizen.headers["X-Privacy"] == "redacted"
    assert citizen.content == reader.content


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_evidence_paths_cannot_escape_the_store(service: Service, tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "secret.jpg"
    secret.parent.mkdir()
    secret.write_bytes(jpeg(portrait()))
    named = service.client.post(  # a citizen names a server path as media_url: refused at the door
        "/open311/v2/requests.json", data={**PLACE, "media_url": str(secret)}, headers=service.auth("report")
    )
    assert named.status_code == 400 and "media_url" in named.json()[0]["description"]
    case = open_case(service)
    sessions = service.client.app.state.service.sessions  # type: ignore[attr-defined]
    with sessions() as session:  # as a database from before that check may hold it
        reference = session.query(Evidence).filter(Evidence.case_id == case["id"]).one()
        reference.path = str(secret)
        session.commit()
    for headers in (service.auth("cases:read"), service.auth("admin")):
        refused = service.client.get(f"/v1/evidence/{reference.id}", headers=headers)
        assert refused.status_code == 404 and str(secret) not in refused.text

    # a scanned archive photo outside the store is served while its bytes are the recorded ones
    archive = tmp_path / "archive" / "p1.jpg"
    archive.parent.mkdir()
    archive.write_bytes(jpeg(np.full((48, 64, 3), 90, np.uint8)))
    link = service.settings.evidence_dir / "uploads" / "link.jpg"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(secret)
    with sessions() as session, session.begin():
        scanned = Evidence(
            case_id=case["id"],
            role="finding",
            path=str(archive),
            sha256=hashlib.sha256(archive.read_bytes()).hexdigest(),
            captured_at=reference.captured_at,
            boxes=[],
        )
        linked = Evidence(
            case_id=case["id"],
            role="finding",
            path=str(link),
            sha256="0" * 64,
            captured_at=reference.captured_at,
            boxes=[],
        )
        session.add_all([scanned, linked])
    admin = service.auth("admin")
    assert service.client.get(f"/v1/evidence/{scanned.id}", headers=admin).content == archive.read_bytes()
    assert service.client.get(f"/v1/evidence/{linked.id}", headers=admin).status_code == 404
    archive.write_bytes(secret.read_bytes())  # replaced after it was recorded
    assert service.client.get(f"/v1/evidence/{scanned.id}", headers=admin).status_code == 404
