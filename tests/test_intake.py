"""The photo intake: the same photo through every door gives the same photo row and the same cases,
and a photo without a capture time files nothing on any door (SQLite and PostgreSQL, the real model)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from configured import KEEP, MODELS, TAXONOMY
from conftest import Service
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker
from test_scan import START, TZ, spot

from serve.cases.db import open_database
from serve.cases.enums import PhotoStatus
from serve.cases.findings import load_case_rules
from serve.cases.intake import Given, place
from serve.cases.orm import Case, Photo
from serve.cases.report import write_report
from serve.cases.scan import Scanner, load_flyer_finder, read_sidecar
from serve.cases.settings import Settings
from serve.cases.times import CaptureTimes, ImplausibleTime
from serve.cli.demo import pick_sample_photos
from vision.core.boxes import parse_boxes
from vision.core.detector import Detector
from vision.core.imageio import PhotoMeta, Position, exif_for
from vision.detect.registry import CURRENT, find_model

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "garbage-cn"
SIDE = 600  # under twice the model's 320 px input: the scan's reduced decode is the full decode
AWAY = Position(34.7301, 113.6102)  # a position a sender gives that the photo's own EXIF contradicts


@dataclass(frozen=True)
class Sent:
    """One photo of the table: what its EXIF says, and what the sender says besides."""

    name: str
    exif_position: Position | None
    exif_time: datetime | None
    given: Given


# A located, dated photo; a second one 5 minutes later at the same spot (joins the first one's case
# of an event both show); one with no EXIF at all, placed and dated by the sender; one undated; one
# with nothing; one whose EXIF contradicts what is sent with it (EXIF wins).
TABLE = (
    Sent("p0.jpg", spot(0), START, Given()),
    Sent("p1.jpg", spot(0), START + timedelta(minutes=5), Given()),
    Sent("p2.jpg", None, None, Given(spot(1), START + timedelta(minutes=20))),
    Sent("p3.jpg", spot(2), None, Given()),
    Sent("p4.jpg", None, None, Given()),
    Sent("p5.jpg", spot(3), START + timedelta(hours=1), Given(AWAY, START - timedelta(days=3))),
)
STATUSES = {"p0.jpg": "done", "p1.jpg": "done", "p2.jpg": "done", "p3.jpg": "undated", "p4.jpg": "unlocated"}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The table's photos (real street photos the model finds garbage on) and the scan's sidecar CSV."""
    try:
        find_model(CURRENT, models_dir=MODELS)
        samples = pick_sample_photos(DATASET, len(TABLE))
    except Exception as err:
        pytest.skip(f"needs the current model and ../shared/datasets/garbage-cn ({err})")
    folder = tmp_path_factory.mktemp("intake") / "photos"
    folder.mkdir()
    rows = ["file,lat,lon,taken_at"]
    for sent, source in zip(TABLE, samples, strict=True):
        with Image.open(source) as image:
            picture = image.convert("RGB").resize((SIDE, SIDE))
        exif = exif_for(position=sent.exif_position, taken_at=sent.exif_time)
        picture.save(folder / sent.name, "JPEG", quality=90, exif=exif)
        where, when = sent.given.position, sent.given.taken_at
        if where or when:
            lat, lon = (repr(where.lat), repr(where.lon)) if where else ("", "")
            rows.append(f"{sent.name},{lat},{lon},{when.isoformat() if when else ''}")
    (folder / "sidecar.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def detector() -> Detector:
    from vision.detect.backends import load_detector

    return load_detector(
        CURRENT, models_dir=MODELS, taxonomy=TAXONOMY, confidence=KEEP
    )  # as the service does


def scan(archive: Path, db_url: str, detector: Detector, workers: int, batch: int) -> sessionmaker[Session]:
    """As `streetorder scan` does it, the flyer reader of the default settings included."""
    factory = open_database(db_url)
    sidecar = read_sidecar(archive / "sidecar.csv", TZ)
    settings = Settings()
    Scanner(
        detector,
        factory,
        load_case_rules(settings),
        sidecar=sidecar,
        workers=workers,
        batch=batch,
        flyers=load_flyer_finder(settings),
    ).scan([archive], progress=False)
    return factory


def report(archive: Path, service: Service, sent: tuple[Sent, ...] = TABLE) -> list[dict[str, Any]]:
    """POST each photo to /v1/reports in the scan's order, its sender's fields as form fields."""
    answers = []
    service.clock.at = START + timedelta(days=1)  # the patrol's photos arrive the day after
    for photo in sent:
        form = {}
        if photo.given.position:
            form = {"lat": repr(photo.given.position.lat), "lon": repr(photo.given.position.lon)}
        if photo.given.taken_at:
            form["taken_at"] = photo.given.taken_at.isoformat()
        response = service.client.post(
            "/v1/reports",
            files={"file": (photo.name, (archive / photo.name).read_bytes(), "image/jpeg")},
            data=form,
            headers=service.auth("report"),
        )
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


PHOTO_FIELDS = ("status", "taken_at", "lat", "lon", "grid_code", "width", "height", "model_version")
CASE_FIELDS = ("number", "event", "grid_code", "lat", "lon", "filed_at", "deadline_at", "state", "ai_review")
CASE_FIELDS += ("source",)
Boxes = list[tuple[str, tuple[float, ...], float]]


def boxes(stored: Any, where: str) -> Boxes:
    found = parse_boxes(stored, where)
    assert not found.rejected
    return [(b.class_name, b.xyxy, b.confidence) for b in found.boxes]


@dataclass(frozen=True)
class Recorded:
    """Photo rows by content and cases in number order, without what differs by door on purpose
    (where the bytes are kept, which door, when processed, who reported)."""

    photos: dict[str, dict[str, Any]]
    photo_boxes: dict[str, Boxes]
    cases: list[dict[str, Any]]
    evidence: list[list[tuple[str, str, datetime]]]  # per case: sha256, role, captured_at
    evidence_boxes: list[list[Boxes]]


def recorded(factory: sessionmaker[Session]) -> Recorded:
    with factory() as session:
        photos = list(session.scalars(select(Photo)))
        query = select(Case).options(selectinload(Case.evidence)).order_by(Case.number)
        cases = list(session.scalars(query))
        return Recorded(
            photos={p.sha256: {f: getattr(p, f) for f in PHOTO_FIELDS} for p in photos},
            photo_boxes={p.sha256: boxes(p.detections, p.path) for p in photos},
            cases=[{f: getattr(c, f) for f in CASE_FIELDS} for c in cases],
            evidence=[[(e.sha256, e.role, e.captured_at) for e in c.evidence] for c in cases],
            evidence_boxes=[[boxes(e.boxes, e.path) for e in c.evidence] for c in cases],
        )


def assert_same(door: Recorded, reference: Recorded) -> None:
    """Equal; scores and pixels within what two runs of the same model on the same pixels may differ by."""
    assert door.photos == reference.photos
    assert door.cases == reference.cases
    assert door.evidence == reference.evidence
    for sha, found in door.photo_boxes.items():
        assert_boxes(found, reference.photo_boxes[sha])
    for case, expected in zip(door.evidence_boxes, reference.evidence_boxes, strict=True):
        for found, wanted in zip(case, expected, strict=True):
            assert_boxes(found, wanted)


def assert_boxes(found: Boxes, expected: Boxes) -> None:
    assert [b[0] for b in found] == [b[0] for b in expected]
    for (_, xyxy, score), (_, want_xyxy, want_score) in zip(found, expected, strict=True):
        assert xyxy == pytest.approx(want_xyxy, abs=0.5) and score == pytest.approx(want_score, abs=0.002)


@pytest.fixture(scope="module")
def reference(archive: Path, detector: Detector, tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """The simple scan (one photo per transaction) on SQLite: what every door must give."""
    folder = tmp_path_factory.mktemp("reference")
    return recorded(scan(archive, f"sqlite:///{folder / 'reference.db'}", detector, 1, 1))


SCANS = {"scan, simple": (1, 1), "scan, 2 workers, batches of 8": (2, 8)}  # workers, photos per transaction


def test_the_rule_decides_position_time_and_status() -> None:
    rules = load_case_rules(Settings())
    NOW = START + timedelta(days=30)
    exif = PhotoMeta(position=spot(0), taken_at=START, orientation=1)
    bare = PhotoMeta(position=None, taken_at=None, orientation=1)
    told = Given(AWAY, START - timedelta(days=1))
    exif_placed = place(exif, told, rules, NOW)
    assert exif_placed.position == spot(0) and exif_placed.taken_at == START
    assert (place(bare, told, rules, NOW).position, place(bare, told, rules, NOW).taken_at) == (
        told.position,
        told.taken_at,
    )
    assert place(bare, Given(), rules, NOW).status == PhotoStatus.UNLOCATED
    assert place(bare, Given(taken_at=START), rules, NOW).status == PhotoStatus.UNLOCATED
    undated = place(bare, Given(position=spot(2)), rules, NOW)
    assert undated.status == PhotoStatus.UNDATED and undated.grid is not None  # placed, not filed
    assert place(exif, Given(), rules, NOW).grid == rules.grid_at(spot(0).lat, spot(0).lon)
    away = place(bare, Given(AWAY, START), rules, NOW)  # located, dated, in no grid of the layout
    assert away.status == PhotoStatus.OUTSIDE and away.grid is None


@pytest.mark.parametrize(
    ("exif_time", "given_time", "field"),
    [
        (START.replace(year=2999), None, "EXIF DateTimeOriginal"),
        (START.replace(year=1999), None, "EXIF DateTimeOriginal"),
        (None, START.replace(year=2999), "taken_at"),
        (None, START.replace(year=1, month=1, day=2), "taken_at"),
        (None, START + timedelta(minutes=6), "taken_at"),  # ahead of the door's clock
        (START + timedelta(hours=1), None, "EXIF DateTimeOriginal"),  # ahead, and nothing stands in
        (START + timedelta(hours=1), START.replace(year=2999), "taken_at"),  # the stand-in is checked too
    ],
)
def test_an_implausible_capture_time_is_refused_naming_its_source(
    exif_time: datetime | None, given_time: datetime | None, field: str
) -> None:
    rules = load_case_rules(Settings())
    meta = PhotoMeta(position=spot(0), taken_at=exif_time, orientation=1)
    with pytest.raises(ImplausibleTime) as refused:
        place(meta, Given(taken_at=given_time), rules, START)
    assert refused.value.extra["field"] == field


def test_a_time_ahead_of_the_clock_is_told_on_the_senders_clock_and_readably() -> None:
    """A frame stamped a year ahead read `is 31488938 s ahead of the server clock
    (2026-12-07T15:04:21.642226+00:00; ...)`: a count nobody reads as a year, beside a UTC clock to the
    microsecond that a sender on +08:00 had to convert to compare with what it sent."""
    now = datetime(2026, 12, 7, 15, 4, 21, 642226, tzinfo=UTC)
    sent = datetime(2027, 12, 7, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    with pytest.raises(ImplausibleTime) as refused:
        CaptureTimes().check("X-Capture-Time", sent, now)
    assert refused.value.detail == (
        "X-Capture-Time: capture time 2027-12-07T10:00:00+08:00 is 31488938 s (364 days, 10:55:38) "
        "ahead of the server clock (2026-12-07T23:04:21+08:00; at most 300 s): set the device's clock"
    )


@pytest.mark.parametrize(
    "exif_time", [START.replace(year=2999), START.replace(year=1999), START + timedelta(hours=1)]
)
def test_a_given_time_stands_in_for_an_implausible_exif_one(exif_time: datetime) -> None:
    """A camera whose clock was wrong: the time its sender (or a scan's sidecar) gives is used."""
    rules = load_case_rules(Settings())
    meta = PhotoMeta(position=spot(0), taken_at=exif_time, orientation=1)
    placed = place(meta, Given(taken_at=START - timedelta(hours=2)), rules, START)
    assert placed.taken_at == START - timedelta(hours=2) and placed.status == PhotoStatus.DONE
    plausible = PhotoMeta(position=spot(0), taken_at=START - timedelta(hours=1), orientation=1)
    assert (
        place(plausible, Given(taken_at=START - timedelta(hours=2)), rules, START).taken_at
        == plausible.taken_at
    )


@pytest.mark.parametrize("door", [*SCANS, "POST /v1/reports"])
def test_the_same_photos_through_every_door_give_the_same_rows_and_cases(
    door: str,
    db_url: str,
    archive: Path,
    detector: Detector,
    reference: Recorded,
    request: pytest.FixtureRequest,
) -> None:
    """On SQLite and PostgreSQL; the reference is the simple scan on SQLite."""
    assert reference.cases, "the model found nothing to file on the sample photos"
    assert len(reference.photos) == len(TABLE)
    if door == "POST /v1/reports":
        service: Service = request.getfixturevalue("service")
        answers = report(archive, service)
        factory = service.client.app.state.service.sessions  # type: ignore[attr-defined]
        assert [a["status"] for a in answers[:5]] == [STATUSES[sent.name] for sent in TABLE[:5]]
        assert answers[3]["undated"] and answers[3]["taken_at"] is None and answers[3]["cases"] == []
        assert answers[4]["unlocated"] and answers[4]["cases"] == []
    else:
        factory = scan(archive, db_url, detector, *SCANS[door])
    assert_same(recorded(factory), reference)


def test_the_reference_follows_the_rule(archive: Path, reference: Recorded) -> None:
    rows = {
        sent.name: reference.photos[hashlib.sha256((archive / sent.name).read_bytes()).hexdigest()]
        for sent in TABLE
    }
    for name, status in STATUSES.items():
        assert rows[name]["status"] == status, name
    assert rows["p3.jpg"]["taken_at"] is None and rows["p4.jpg"]["taken_at"] is None  # no time made up
    given = TABLE[2].given
    assert rows["p2.jpg"]["taken_at"] == given.taken_at and given.position is not None
    assert (rows["p2.jpg"]["lat"], rows["p2.jpg"]["lon"]) == (given.position.lat, given.position.lon)
    p5 = rows["p5.jpg"]
    assert p5["status"] == "done" and p5["taken_at"] == START + timedelta(hours=1)  # EXIF beats the sender
    assert (p5["lat"], p5["lon"]) == pytest.approx((spot(3).lat, spot(3).lon), abs=1e-6)
    filed = {sha for evidence in reference.evidence for sha, _, _ in evidence}
    assert filed and not filed & {sha for sha, row in reference.photos.items() if row["status"] != "done"}


@pytest.mark.parametrize("door", ["scan", "POST /v1/reports"])
def test_an_undated_photo_files_nothing_until_it_is_sent_with_a_time(
    door: str, db_url: str, archive: Path, detector: Detector, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Never the clock: without EXIF time or a given one the photo is kept undated; with a time, it files."""
    undated = TABLE[3]
    later = Sent(undated.name, None, None, Given(taken_at=START + timedelta(hours=2)))
    if door == "scan":
        single = tmp_path / "photos"
        single.mkdir()
        (single / undated.name).write_bytes((archive / undated.name).read_bytes())
        (single / "sidecar.csv").write_text("file,lat,lon,taken_at\n", encoding="utf-8")
        factory = scan(single, db_url, detector, 1, 1)
        first = recorded(factory)
        (single / "sidecar.csv").write_text(
            f"file,lat,lon,taken_at\n{undated.name},,,{later.given.taken_at.isoformat()}\n",  # type: ignore[union-attr]
            encoding="utf-8",
        )
        scan(single, db_url, detector, 1, 1)
    else:
        service: Service = request.getfixturevalue("service")
        factory = service.client.app.state.service.sessions  # type: ignore[attr-defined]
        answer = report(archive, service, (undated,))[0]
        assert answer["undated"] and answer["taken_at"] is None and answer["cases"] == []
        first = recorded(factory)
        again = report(archive, service, (later,))[0]
        assert again["status"] == "done" and again["cases"] and all(c["created"] for c in again["cases"])
    [row] = first.photos.values()
    assert row["status"] == "undated" and row["taken_at"] is None and first.cases == []
    assert next(iter(first.photo_boxes.values())), "what the model saw is kept"
    final = recorded(factory)
    [row] = final.photos.values()
    assert row["status"] == "done" and row["taken_at"] == later.given.taken_at
    assert final.cases and all(case["filed_at"] == later.given.taken_at for case in final.cases)


@pytest.mark.parametrize("door", ["scan", "POST /v1/reports"])
def test_a_photo_taken_outside_every_grid_files_nothing(
    door: str, db_url: str, archive: Path, detector: Detector, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Jurisdiction is the grid layout: the scan keeps the photo as `outside` and its report lists it;
    the API refuses it with a 422 problem document and keeps nothing. Placed inside, it files."""
    bare = TABLE[4]  # no EXIF: the sender's position decides
    inside = Sent(bare.name, None, None, Given(spot(4), START))
    if door == "scan":
        single = tmp_path / "photos"
        single.mkdir()
        (single / bare.name).write_bytes((archive / bare.name).read_bytes())
        sidecar = "file,lat,lon,taken_at\n{},{!r},{!r},{}\n"
        (single / "sidecar.csv").write_text(
            sidecar.format(bare.name, AWAY.lat, AWAY.lon, START.isoformat()), encoding="utf-8"
        )
        factory = scan(single, db_url, detector, 1, 1)
        first = recorded(factory)
        [row] = first.photos.values()
        assert row["status"] == "outside" and row["grid_code"] is None and first.cases == []
        assert next(iter(first.photo_boxes.values())), "what the model saw is kept"
        page = write_report(factory, tmp_path / "report", load_case_rules(Settings())).read_text(
            encoding="utf-8"
        )
        assert bare.name in page and "outside every unit grid" in page
        (single / "sidecar.csv").write_text(
            sidecar.format(bare.name, spot(4).lat, spot(4).lon, START.isoformat()), encoding="utf-8"
        )
        scan(single, db_url, detector, 1, 1)
    else:
        service: Service = request.getfixturevalue("service")
        factory = service.client.app.state.service.sessions  # type: ignore[attr-defined]
        service.clock.at = START + timedelta(days=1)  # the photo arrives after it was taken
        refused = service.client.post(
            "/v1/reports",
            files={"file": (bare.name, (archive / bare.name).read_bytes(), "image/jpeg")},
            data={"lat": repr(AWAY.lat), "lon": repr(AWAY.lon), "taken_at": START.isoformat()},
            headers=service.auth("report"),
        )
        assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["title"] == "outside the jurisdiction" and problem["field"] == "lat/lon"
        assert (problem["lat"], problem["lon"]) == (
            AWAY.lat,
            AWAY.lon,
        ) and "outside every unit grid" in problem["detail"]
        assert recorded(factory).photos == {} and recorded(factory).cases == []
        report(archive, service, (inside,))
    final = recorded(factory)
    [row] = final.photos.values()
    assert (
        row["status"] == "done"
        and row["grid_code"] == load_case_rules(Settings()).grid_at(spot(4).lat, spot(4).lon).code
    )  # type: ignore[union-attr]
    assert final.cases and all(case["grid_code"] == row["grid_code"] for case in final.cases)
