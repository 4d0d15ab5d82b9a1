"""`streetorder data queue` over a real case database: what the workflow and the model know decides
what annotators see first, pre-annotated, as Label Studio tasks and a CVAT YOLO zip.

Findings are filed by the real intake (record_finding) and reviewed through the real HTTP workflow
(reject, correct, confirm); photos and camera frames are images the test writes.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from configured import TAXONOMY
from conftest import SERVICE_START, Service
from PIL import Image
from test_annotations import frozen_holdout, scene
from test_api_lifecycle import act

from serve.cases.db import transaction
from serve.cases.findings import Finding, load_case_rules, record_finding
from serve.cases.orm import Photo
from serve.cli.data_queue import left_out_line
from serve.cli.main import main
from vision.core.boxes import Box
from vision.core.files import file_sha256
from vision.core.imageio import exif_for
from vision.data.activelearning import disagreement, uncertainty
from vision.data.annotations.coords import to_percent
from vision.data.annotations.dataset import Dataset
from vision.data.annotations.records import Label

MODEL = "street-v1@0123456789ab"
PLACES = {"a": (34.72265, 113.62762), "b": (34.730, 113.635), "c": (34.740, 113.645), "d": (34.750, 113.655)}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cases.db'}"


@pytest.mark.parametrize(
    ("boxes", "expected"),
    [
        ([], 0.0),
        ([("garbage", 0.35)], 1.0),  # exactly at the class's threshold
        ([("garbage", 0.95)], 0.0),  # far above it
        ([("car", 0.9), ("garbage", 0.45)], 0.5),  # the least sure box counts
    ],
)
def test_uncertainty_is_closeness_to_the_class_threshold(
    boxes: list[tuple[str, float]], expected: float
) -> None:
    labels = [Label(name, (0, 0, 1, 1), score) for name, score in boxes]
    assert uncertainty(labels, TAXONOMY) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        ([("garbage", 0.8)], 0.0),
        ([("garbage", 0.8), ("garbage", 0.8)], 0.0),
        ([("garbage", 0.8), ("overflow", 0.8)], 0.5),
        ([("garbage", 0.9), ("garbage", 0.5), ("garbage", 0.7)], 0.4),
        ([("garbage", 0.9), ("overflow", 0.2)], 1.0),  # capped
    ],
)
def test_disagreement_of_camera_frames(frames: list[tuple[str, float]], expected: float) -> None:
    assert disagreement(frames) == pytest.approx(expected)


def photo(path: Path, seed: int, orientation: int = 1) -> tuple[Path, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    image = Image.fromarray(rgb)
    if orientation == 6:  # stored turned left, shown upright: 320 x 240 to a person
        image = image.transpose(Image.Transpose.ROTATE_90)
    image.save(path, format="JPEG", exif=exif_for(orientation=orientation))
    return path, file_sha256(path)


def file_finding(
    service: Service, path: Path, sha: str, event: str, boxes: list[Box], place: str, **extra: Any
) -> int:
    state = service.client.app.state.service  # type: ignore[attr-defined]
    finding = Finding(
        event=event,
        lat=PLACES[place][0],
        lon=PLACES[place][1],
        seen_at=extra.pop("at", SERVICE_START - timedelta(hours=3)),
        photo_path=str(path),
        photo_sha256=sha,
        boxes=tuple(boxes),
        model_version=extra.pop("model", MODEL),
        **extra,
    )
    with transaction(state.sessions) as session:
        return int(record_finding(session, finding, load_case_rules(service.settings)).case.id)


def review(service: Service, case_id: int, action: str, **fields: Any) -> None:
    """A person's review through the HTTP workflow (the lifecycle tests' own helper)."""
    act(service, case_id, service.clock.at, action, **fields)


def test_queue_ranks_the_workflows_corrections_first_and_pre_annotates(
    service: Service, tmp_path: Path, db_url: str, cli_cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "archive"
    rejected, rejected_sha = photo(photos / "rejected.jpg", 1)
    corrected, corrected_sha = photo(photos / "corrected.jpg", 2, orientation=6)
    confirmed, confirmed_sha = photo(photos / "confirmed.jpg", 3)
    stall, stall_sha = photo(photos / "stall.jpg", 4)
    crop, _ = photo(tmp_path / "evidence" / "crops" / "stall-crop.jpg", 5)
    garbage = [Box((20.0, 30.0, 120.0, 140.0), 0.62, "garbage")]

    review(
        service,
        file_finding(service, rejected, rejected_sha, "exposed_garbage", garbage, "a"),
        "reject",
        note="a shadow",
    )
    overflow = [Box((200.0, 20.0, 300.0, 200.0), 0.7, "overflow")]
    corrected_case = file_finding(service, corrected, corrected_sha, "overflowing_bin", overflow, "b")
    review(service, corrected_case, "correct", event="exposed_garbage", note="no bin: a pile")
    review(
        service, file_finding(service, confirmed, confirmed_sha, "exposed_garbage", garbage, "c"), "confirm"
    )
    occupied = lambda event, xyxy, zone: file_finding(  # noqa: E731  a class-free camera finding
        service,
        stall,
        stall_sha,
        event,
        [Box(xyxy, 1.0, "occupancy")],
        "a",
        model="occupancy-v1",
        source="video",
        camera_id="cam-1",
        extra={"source": "occupancy", "zone": zone},
        at=SERVICE_START - timedelta(hours=2),
    )
    stall_case = occupied("shop_overflow", (40.0, 60.0, 200.0, 220.0), "shopfront")
    state = service.client.app.state.service  # type: ignore[attr-defined]
    with transaction(state.sessions) as session:
        from serve.cases.orm import Evidence

        session.query(Evidence).filter(Evidence.case_id == stall_case).update({"crop_path": str(crop)})
    review(service, stall_case, "confirm")
    # the same frame shows piled materials in another zone: a second case, its own region
    materials_case = occupied("piled_materials", (220.0, 30.0, 300.0, 120.0), "doorway")
    review(service, materials_case, "confirm")

    # a camera case whose frames disagree: garbage, overflow, garbage at one spot
    frames = []
    for index, (name, score) in enumerate((("garbage", 0.8), ("overflow", 0.45), ("garbage", 0.75))):
        path, sha = photo(tmp_path / "frames" / f"frame{index}.jpg", 10 + index)
        frames.append(path)
        file_finding(
            service,
            path,
            sha,
            "exposed_garbage",
            [Box((10.0, 10.0, 90.0, 90.0), score, name)],
            "d",
            source="video",
            camera_id="cam-2",
            at=SERVICE_START - timedelta(hours=1, minutes=10 - index),
        )
    # scanned photos: one with a box near its threshold, one sure, one already labelled
    unsure, unsure_sha = photo(photos / "unsure.jpg", 20)
    sure, sure_sha = photo(photos / "sure.jpg", 21)
    known, known_sha = photo(photos / "known.jpg", 22)
    with transaction(state.sessions) as session:
        for path, sha, score in (
            (unsure, unsure_sha, 0.37),
            (sure, sure_sha, 0.93),
            (known, known_sha, 0.36),
        ):
            session.add(
                Photo(
                    sha256=sha,
                    path=str(path),
                    source="patrol",
                    status="done",
                    width=320,
                    height=240,
                    model_version=MODEL,
                    detections=[{"xyxy": [5, 5, 60, 60], "confidence": score, "class": "garbage"}],
                    processed_at=datetime.now(SERVICE_START.tzinfo),
                )
            )
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    dataset.images[known_sha] = {
        "sha256": known_sha,
        "file": str(known),
        "labels": [],
        "labelled": [],
        "version": 1,
    }
    dataset.save()

    out = tmp_path / "queue"
    argv = ["data", "queue", "--from-db", db_url, "--out", str(out), "--document-root", str(tmp_path),
            "--skip-dataset", "bureau", "--datasets-dir", str(tmp_path / "datasets")]  # fmt: skip
    assert main([*argv, "--limit", "10"]) == 0
    assert [p.parent.name for p in cli_cache_dir.rglob("*.json")] == ["holdout-looks"]  # decoded once
    tasks = json.loads((out / "tasks.json").read_text())
    by_source = {t["data"]["source_path"]: t for t in tasks}
    reasons = [t["data"]["reasons"].split(", ")[0] for t in tasks]
    assert set(by_source) == {str(rejected), str(corrected), str(stall), str(unsure), str(frames[1])}
    assert reasons[:2] == ["corrected", "rejected"] or reasons[:2] == ["rejected", "corrected"]
    assert reasons[2:] == ["occupancy", "disagreement", "uncertain"]  # then the rest, by priority
    priorities = [t["data"]["priority"] for t in tasks]
    assert priorities == sorted(priorities, reverse=True)

    corrected_task = by_source[str(corrected)]
    [prediction] = corrected_task["predictions"]
    assert prediction["model_version"] == MODEL
    region = prediction["result"][0]
    assert region["value"]["rectanglelabels"] == ["garbage"]  # the class a person chose, not overflow
    assert (region["original_width"], region["original_height"]) == (320, 240)  # the upright photo
    expected = to_percent((200.0, 20.0, 300.0, 200.0), 320, 240)
    assert [region["value"][k] for k in ("x", "y", "width", "height")] == pytest.approx(
        list(expected.values()), abs=1e-3
    )
    copied = out / "images" / Path(corrected_task["data"]["image"].split("d=queue/images/")[1])
    assert cv2.imread(str(copied)).shape[:2] == (240, 320)  # written upright for the annotators

    stall_task = by_source[str(stall)]
    assert stall_task["data"]["crop"].startswith("/data/local-files/?d=queue/crops/")
    # both cases' regions, each as a box of its event's class to confirm (goods: a shop's overflow)
    assert stall_task["data"]["region"] == "40, 60, 200, 220 | 220, 30, 300, 120"
    assert stall_task["data"]["event"] == "shop_overflow"
    [proposal] = stall_task["predictions"]
    assert proposal["model_version"] == "occupancy-v1"
    proposed = {r["value"]["rectanglelabels"][0]: r["value"] for r in proposal["result"]}
    assert set(proposed) == {"goods", "materials"}
    expected_box = to_percent((220.0, 30.0, 300.0, 120.0), 320, 240)
    assert [proposed["materials"][k] for k in ("x", "y", "width", "height")] == pytest.approx(
        list(expected_box.values()), abs=1e-3
    )
    assert by_source[str(frames[1])]["data"]["frames"] == 3  # the odd frame out of three
    for task in tasks:
        assert (tmp_path / task["data"]["image"].split("d=")[1]).is_file()

    with zipfile.ZipFile(out / "cvat-yolo.zip") as zipped:
        names = zipped.namelist()
    assert "data.yaml" in names and "train.txt" in names
    assert len([n for n in names if n.startswith("images/train/")]) == len(tasks)
    assert hashlib.sha256((out / "label_config.xml").read_bytes()).hexdigest()  # written beside the tasks

    # a second queue into the same folder: images/ keeps the first's (Label Studio's tasks name
    # them), so a CVAT task made from images/ would hold photos no annotation of this queue covers
    capsys.readouterr()
    assert main([*argv, "--limit", "1"]) == 0
    assert len(json.loads((out / "tasks.json").read_text())) == 1
    assert f"note: {out / 'images'} also holds {len(tasks) - 1} image(s) of an earlier queue" in (
        capsys.readouterr().out
    )


def test_a_heic_photo_goes_to_the_annotators_as_jpeg_and_a_webp_as_it_is(tmp_path: Path) -> None:
    """Browsers (Label Studio, CVAT) do not show HEIC, iPhones' default: the queue writes it as JPEG;
    JPEG, PNG and WebP photos are copied as they are."""
    from vision.data.activelearning import Candidate, write_queue

    picture = Image.new("RGB", (320, 240), (120, 90, 40))
    picture.paste((20, 160, 200), (40, 40, 160, 140))
    heic, webp = tmp_path / "archive" / "phone.heic", tmp_path / "archive" / "app.webp"
    heic.parent.mkdir()
    picture.save(heic, "HEIF", quality=90)
    picture.save(webp, "WEBP", quality=90)
    selected = [(Candidate(path, "uncertain", 0.5, (), None), file_sha256(path)) for path in (heic, webp)]
    queued = write_queue(selected, tmp_path / "queue", tmp_path, TAXONOMY)
    paths = {item.path.suffix: item.path for item in queued}
    assert set(paths) == {".jpg", ".webp"}
    assert paths[".jpg"].read_bytes().startswith(b"\xff\xd8")  # a JPEG a browser shows
    assert paths[".webp"].read_bytes() == webp.read_bytes()
    shown = cv2.imread(str(paths[".jpg"]))
    assert shown.shape == (240, 320, 3) and abs(int(shown[90, 100, 0]) - 200) < 20  # the same picture, BGR


def test_a_scene_is_queued_once_however_it_was_saved_and_a_holdout_copy_never(
    tmp_path: Path, db_url: str
) -> None:
    """`data queue` told images apart by sha256 alone: one scene saved at half size and JPEG
    quality 60, and stored turned with an EXIF orientation, became three tasks, and a re-saved
    photo of the frozen holdout was queued (and its annotation would be refused at import)."""
    from serve.cases.db import open_database
    from serve.cases.labelling import build_queue
    from vision.core.imageio import read_photo
    from vision.core.phash import perceptual_hash

    archive = tmp_path / "archive"
    archive.mkdir()
    scene(1).resize((800, 480)).save(archive / "big.jpg", quality=92)
    scene(1).save(archive / "smaller.jpg", quality=60)
    scene(1).transpose(Image.Transpose.ROTATE_90).save(archive / "turned.jpg", exif=exif_for(orientation=6))
    scene(2).save(archive / "other.jpg", quality=90)
    scene(3).save(archive / "from-holdout.jpg", quality=70)
    skip = frozen_holdout(tmp_path, scene(3))
    sessions = open_database(db_url)
    scores = {"smaller": 0.36, "other": 0.38, "big": 0.40, "turned": 0.45, "from-holdout": 0.35}
    with transaction(sessions) as session:
        for name, score in scores.items():
            path = archive / f"{name}.jpg"
            upright = read_photo(path)
            session.add(
                Photo(
                    sha256=file_sha256(path),
                    path=str(path),
                    source="patrol",
                    status="done",
                    width=upright.width,
                    height=upright.height,
                    model_version=MODEL,
                    detections=[{"xyxy": [5, 5, 60, 60], "confidence": score, "class": "garbage"}],
                    phash=perceptual_hash(upright.image),  # as the scan keeps it
                    processed_at=datetime.now(SERVICE_START.tzinfo),
                )
            )
    out = tmp_path / "queue"
    left_out: dict[str, str] = {}
    queued = build_queue(
        sessions,
        out,
        limit=10,
        base=tmp_path,
        document_root=tmp_path,
        skip=skip,
        taxonomy=TAXONOMY,
        left_out=left_out,
    )
    assert [item.meta["source_path"] for item in queued] == [
        str(archive / "smaller.jpg"),
        str(archive / "other.jpg"),
    ]
    # the holdout copy is left out and said so (a queue of validation photos was "nothing to label")
    [why] = left_out.values()
    assert (
        left_out_line(left_out)
        == ("left out: 1 of the frozen holdout or copies of its photos (never trained on)")
        and "frozen holdout" in why
    )
    assert queued[0].meta["copies"] == f"{archive / 'big.jpg'} | {archive / 'turned.jpg'}"
    assert "copies" not in queued[1].meta
    [box] = queued[0].predictions  # its own boxes only: the copies' are in other pixels
    assert box.confidence == 0.36
    tasks = json.loads((out / "tasks.json").read_text())
    assert len(tasks) == 2 and len(list((out / "images").iterdir())) == 2


@pytest.mark.parametrize("stored_look", [True, False], ids=["look-in-manifest", "older-manifest"])
def test_a_copy_of_a_labelled_image_is_known_by_its_look(tmp_path: Path, stored_look: bool) -> None:
    """`--skip-dataset` knew a dataset's images by their bytes alone: the same patrol photo sent
    again at another quality was queued for labelling a second time. A manifest written before
    looks were stored gets them from its files."""
    from vision.core.imageio import read_photo
    from vision.core.phash import perceptual_hash
    from vision.data.activelearning import known_images

    labelled, again, other = tmp_path / "labelled.jpg", tmp_path / "again.jpg", tmp_path / "other.jpg"
    scene(1).save(labelled, quality=92)
    scene(1).resize((480, 288)).save(again, quality=55)
    scene(2).save(other, quality=92)
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    sha = file_sha256(labelled)
    dataset.images[sha] = {"sha256": sha, "file": str(labelled), "labels": [], "labelled": [], "version": 1}
    if stored_look:
        dataset.images[sha]["phash"] = perceptual_hash(read_photo(labelled).image)
    dataset.save()

    known = known_images(["bureau"], tmp_path / "datasets")
    look = {path: perceptual_hash(read_photo(path).image) for path in (again, other)}
    assert known.why(sha) == "in dataset bureau"
    assert (known.why(file_sha256(again), look[again]) or "").startswith(
        "a copy of an image in dataset bureau"
    )
    assert known.why(file_sha256(other), look[other]) is None
