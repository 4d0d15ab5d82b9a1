"""Imports of annotators' exports (Label Studio JSON / JSON-MIN / YOLO, CVAT YOLO / COCO) into
versioned datasets, with broken files named by file and line or field; the queue's exports read
back through the same importers.

Every export here is written by the test in the tool's documented layout, over real images the
test writes (non-square, so a swapped width and height shows).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import warnings
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from io import BytesIO
from itertools import combinations
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from configured import TAXONOMY
from PIL import Image

from serve.cli.main import main
from vision.core.files import file_sha256
from vision.core.imageio import exif_for
from vision.core.phash import NEAR_IDENTICAL_BITS, KnownImages, hash_distance, perceptual_hash
from vision.data.annotations.coords import from_coco, from_percent, from_yolo, to_percent, to_yolo
from vision.data.annotations.dataset import Dataset, split_of
from vision.data.annotations.images import ImageFinder, TaskImages, inside
from vision.data.annotations.importer import import_export as import_any
from vision.data.annotations.label_config import rectangle_control
from vision.data.annotations.readers import read_export
from vision.data.annotations.records import AnnotationError, Label
from vision.data.annotations.writers import QueuedImage, write_labelstudio_tasks, write_yolo_zip

WIDTH, HEIGHT = 200, 120
AT = datetime(2025, 10, 1, 9, 0, tzinfo=UTC)
# two boxes per image in pixels: garbage (left), car (right)
BOXES = [("garbage", (10.0, 20.0, 70.0, 100.0)), ("car", (110.0, 30.0, 190.0, 90.0))]


def write_image(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)
    return path


@pytest.mark.parametrize(
    ("xyxy", "size"),
    [((0, 0, 10, 10), (100, 50)), ((12.5, 3, 99, 49.5), (100, 50)), ((0, 0, 640, 480), (640, 480))],
)
def test_coordinates_round_trip_at_the_edges(xyxy: tuple[float, ...], size: tuple[int, int]) -> None:
    width, height = size
    percent = to_percent(xyxy, width, height)
    assert from_percent(
        percent["x"], percent["y"], percent["width"], percent["height"], width, height
    ) == pytest.approx(xyxy)
    cx, cy, w, h = (float(v) for v in to_yolo(xyxy, width, height).split())
    assert from_yolo(cx, cy, w, h, width, height) == pytest.approx(xyxy, abs=1e-3)
    x1, y1, x2, y2 = xyxy
    assert from_coco(x1, y1, x2 - x1, y2 - y1) == pytest.approx(xyxy)
    assert percent["x"] + percent["width"] <= 100 + 1e-9 and percent["y"] + percent["height"] <= 100 + 1e-9


# --- exports, written in each tool's layout ---------------------------------------------------------


def ls_region(name: str, xyxy: tuple[float, ...], **value: Any) -> dict[str, Any]:
    return {
        "id": f"r-{name}",
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "original_width": WIDTH,
        "original_height": HEIGHT,
        "image_rotation": 0,
        "value": {**to_percent(xyxy, WIDTH, HEIGHT), "rotation": 0, "rectanglelabels": [name], **value},
    }


def labelstudio_json(root: Path, regions: list[dict[str, Any]] | None = None) -> tuple[Path, list[Path]]:
    """An export of 3 tasks: an uploaded image, a local-files image, and one nobody annotated."""
    upload = write_image(root / "media" / "upload" / "1" / "1a2b3c4d-street.jpg", 1)
    local = write_image(root / "files" / "photos" / "corner.png", 2)
    write_image(root / "media" / "upload" / "1" / "9f8e7d6c-unlabelled.jpg", 3)
    result = regions if regions is not None else [ls_region(n, b) for n, b in BOXES]
    tasks = [
        {
            "id": 11,
            "project": 1,
            "data": {"image": "/data/upload/1/1a2b3c4d-street.jpg"},
            "annotations": [
                {"id": 1, "result": [], "was_cancelled": True, "updated_at": "2025-09-30T10:00:00Z"},
                {"id": 2, "result": result, "was_cancelled": False, "updated_at": "2025-09-30T11:00:00Z"},
            ],
            "predictions": [],
        },
        {
            "id": 12,
            "project": 1,
            "data": {"image": "/data/local-files/?d=photos/corner.png"},
            "annotations": [{"id": 3, "result": [ls_region("overflowing_bin", (20, 10, 60, 50))]}],
        },
        {"id": 13, "data": {"image": "/data/upload/1/9f8e7d6c-unlabelled.jpg"}, "annotations": []},
    ]
    path = root / "export.json"
    path.write_text(json.dumps(tasks, indent=1), encoding="utf-8")
    return path, [upload, local]


def labelstudio_min(root: Path) -> tuple[Path, list[Path]]:
    image = write_image(root / "media" / "upload" / "2" / "0a0b0c0d-min.jpg", 4)
    rows = [
        {
            "image": "/data/upload/2/0a0b0c0d-min.jpg",
            "id": 21,
            "label": [
                {**ls_region(n, b)["value"], "original_width": WIDTH, "original_height": HEIGHT}
                for n, b in BOXES
            ],
            "annotator": 1,
            "annotation_id": 7,
            "created_at": "2025-09-30T10:00:00Z",
            "updated_at": "2025-09-30T10:00:00Z",
            "lead_time": 12.5,
        }
    ]
    path = root / "export-min.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path, [image]


def yolo_lines(names: list[str]) -> str:
    return "".join(f"{names.index(n)} {to_yolo(b, WIDTH, HEIGHT)}\n" for n, b in BOXES)


def cvat_yolo_zip(root: Path, label_text: str | None = None) -> tuple[Path, list[Path]]:
    """CVAT's Ultralytics YOLO Detection export: data.yaml, train.txt, images/train, labels/train."""
    names = ["garbage", "automobile", "tree"]
    image = write_image(root / "src" / "frame_000001.jpg", 5)
    path = root / "cvat.zip"
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr(
            "data.yaml", yaml.safe_dump({"path": "./", "train": "train.txt", "names": dict(enumerate(names))})
        )
        zipped.writestr("train.txt", "images/train/frame_000001.jpg\n")
        zipped.write(image, "images/train/frame_000001.jpg")
        text = yolo_lines(["garbage", "car", "tree"]) if label_text is None else label_text
        zipped.writestr("labels/train/frame_000001.txt", text)
    return path, [image]


def labelstudio_yolo_zip(root: Path, label_text: str | None = None) -> tuple[Path, list[Path]]:
    """Label Studio's YOLO export: classes.txt, notes.json, images/, labels/."""
    names = ["car", "garbage"]
    image = write_image(root / "src" / "abcd1234-lsyolo.jpg", 6)
    path = root / "ls-yolo.zip"
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr("classes.txt", "\n".join(names) + "\n")
        zipped.writestr(
            "notes.json", json.dumps({"categories": [{"id": i, "name": n} for i, n in enumerate(names)]})
        )
        zipped.write(image, "images/abcd1234-lsyolo.jpg")
        zipped.writestr("labels/abcd1234-lsyolo.txt", yolo_lines(names) if label_text is None else label_text)
    return path, [image]


def coco_zip(
    root: Path,
    bbox_of: Callable[[tuple[float, ...]], list[float]] | None = None,
    edit: Callable[[dict[str, Any]], object] | None = None,
) -> tuple[Path, list[Path]]:
    """CVAT's COCO 1.0 export with images: annotations/instances_default.json and images/;
    `edit` changes the COCO object before it is written."""
    image = write_image(root / "src" / "coco_frame.jpg", 7)
    bbox_of = bbox_of or (lambda b: [b[0], b[1], b[2] - b[0], b[3] - b[1]])
    coco = {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"description": "", "version": ""},
        "categories": [
            {"id": 1, "name": "garbage", "supercategory": ""},
            {"id": 2, "name": "car", "supercategory": ""},
        ],
        "images": [{"id": 1, "width": WIDTH, "height": HEIGHT, "file_name": "coco_frame.jpg"}],
        "annotations": [
            {
                "id": i + 1,
                "image_id": 1,
                "category_id": 1 + [n for n, _ in BOXES].index(n),
                "segmentation": [],
                "area": 1.0,
                "bbox": bbox_of(b),
                "iscrowd": 0,
                "attributes": {"occluded": False, "rotation": 0.0},
            }
            for i, (n, b) in enumerate(BOXES)
        ],
    }
    if edit is not None:
        edit(coco)
    path = root / "coco.zip"
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr("annotations/instances_default.json", json.dumps(coco))
        zipped.write(image, "images/coco_frame.jpg")
    return path, [image]


EXPORTS = {
    "labelstudio-json": labelstudio_json,
    "labelstudio-min": labelstudio_min,
    "cvat-yolo": cvat_yolo_zip,
    "labelstudio-yolo": labelstudio_yolo_zip,
    "coco": coco_zip,
}


# The labelling config of the exports' Label Studio project: four labels, one not ours (a tree).
PROJECT_CONFIG = (
    '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
    '<Label value="garbage"/><Label value="car"/><Label value="overflowing_bin"/><Label value="tree"/>'
    "</RectangleLabels></View>"
)


def project_config(project: str | None) -> str | None:
    """What Label Studio's API (or --label-config) gives for the exports' project 1."""
    return PROJECT_CONFIG if project in ("1", None) else None


def import_export(*args: Any, **kwargs: Any) -> Any:
    """Imports as the CLI does with the project's labelling config at hand."""
    return import_any(*args, label_config_of=project_config, taxonomy=TAXONOMY, **kwargs)


def finder_for(root: Path) -> ImageFinder:
    return ImageFinder([root / "media" / "upload"], root / "store", TaskImages(files_root=root / "files"))


@pytest.mark.parametrize("kind", list(EXPORTS))
def test_each_format_lands_in_a_versioned_dataset_in_pixels(kind: str, tmp_path: Path) -> None:
    export, images = EXPORTS[kind](tmp_path)
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    counts, problems = import_export(export, dataset, finder_for(tmp_path), at=AT)
    assert problems == [] and counts["added"] == len(images)
    saved = Dataset.open("bureau", tmp_path / "datasets")
    assert saved.version == 1 and len(saved.versions) == 1 and saved.versions[0]["format"] == kind
    entry = saved.images[file_sha256(images[0])]  # keyed by content: the same bytes wherever they are
    assert (entry["width"], entry["height"]) == (WIDTH, HEIGHT)
    boxes = {name: xyxy for name, *xyxy in entry["labels"]}
    for name, xyxy in BOXES:
        assert boxes[name] == pytest.approx(xyxy, abs=0.15)  # exports round to 4-6 digits
    assert file_sha256(saved.file(entry)) == entry["sha256"]
    if kind == "cvat-yolo":  # the export's label list says what its annotators could label
        assert entry["labelled"] == ["garbage", "car"]
    if kind.startswith("labelstudio-") and kind != "labelstudio-yolo":  # the project's config does
        assert entry["labelled"] == ["garbage", "overflow", "car"]
    if kind == "labelstudio-json":
        assert counts["unlabelled"] == 1  # a task nobody annotated is not a negative
        second = saved.images[file_sha256(images[1])]
        assert second["labels"][0][0] == "overflow"  # an alias, read as its taxonomy class


def test_archive_images_go_to_the_store_not_the_repository(tmp_path: Path) -> None:
    export, images = cvat_yolo_zip(tmp_path)
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    import_export(export, dataset, finder_for(tmp_path), at=AT)
    entry = next(iter(dataset.images.values()))
    stored = dataset.file(entry)
    assert stored.is_relative_to(tmp_path / "store") and stored.read_bytes() == images[0].read_bytes()


def test_a_folder_export_with_gbk_file_names_is_imported_through_the_store(tmp_path: Path) -> None:
    """A Label Studio YOLO folder whose image is named in GBK (a zip made on a Chinese Windows,
    unpacked here): the manifest cannot name it, and the import stopped with a UnicodeEncodeError,
    leaving a half-written manifest.json.part. The image is kept in the store by content instead."""
    names = ["car", "garbage"]
    export = tmp_path / "ls-yolo"
    stem = os.fsdecode("巡查01".encode("gbk"))
    image = write_image(export / "images" / "first.jpg", 7)  # cv2.imwrite crashes on a GBK path
    image = image.rename(image.with_name(f"{stem}.jpg"))
    (export / "classes.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    (export / "labels").mkdir()
    (export / "labels" / f"{stem}.txt").write_text(yolo_lines(names), encoding="utf-8")
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    counts, problems = import_export(export, dataset, finder_for(tmp_path), at=AT)
    assert problems == [] and counts["added"] == 1
    saved = Dataset.open("bureau", tmp_path / "datasets")
    entry = saved.images[file_sha256(image)]
    assert saved.file(entry).is_relative_to(tmp_path / "store")
    assert saved.file(entry).read_bytes() == image.read_bytes()
    assert not list((tmp_path / "datasets").rglob("*.part"))


def test_reimport_is_unchanged_and_a_correction_is_a_new_version(tmp_path: Path) -> None:
    export, images = labelstudio_json(tmp_path)
    finder = finder_for(tmp_path)
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    import_export(export, dataset, finder, at=AT)
    counts, _ = import_export(export, dataset, finder, at=AT)
    assert {k: counts[k] for k in ("added", "updated", "unchanged", "unlabelled")} == {
        "added": 0,
        "updated": 0,
        "unchanged": 2,
        "unlabelled": 1,
    } and dataset.version == 1
    # Label Studio's next export holds every task again, under another name: nothing changed (its
    # origin, the file and task it came from, made each image "updated" in a new version)
    tasks = json.loads(export.read_text())
    again = _text(tmp_path / "project-3-at-2025-10-09.json", json.dumps([tasks[-1], *tasks[:-1]]))
    counts, _ = import_export(again, dataset, finder, at=AT)
    assert (counts["updated"], counts["unchanged"], dataset.version) == (0, 2, 1)
    corrected, _ = labelstudio_json(tmp_path, [ls_region("garbage", (10, 20, 70, 100))])  # the car was wrong
    counts, _ = import_export(corrected, dataset, finder, at=AT)
    assert counts["updated"] == 1 and dataset.version == 2
    entry = dataset.images[file_sha256(images[0])]
    assert [label[0] for label in entry["labels"]] == ["garbage"] and entry["version"] == 2


BROKEN: list[tuple[str, Callable[[Path], Path], str]] = [
    (
        "json syntax",
        lambda r: _text(r / "bad.json", '[{"data": {"image": "a.jpg"},\n  "annotations": [}]'),
        "bad.json:2: not valid JSON",
    ),
    (
        "json cut short",
        lambda r: _text(r / "cut.json", '[{"data": {"image": "a.jpg"},\n  "annotations": [{"id": 1, "res'),
        "cut.json:2: not valid JSON: Unterminated string starting at (column 29); the file ends before "
        "its JSON does (cut short?)",
    ),
    (
        "json cut short between values",
        lambda r: _text(r / "cut2.json", '[{"data": {"image": "a.jpg"},\n  '),
        "cut2.json:2: not valid JSON: Expecting property name enclosed in double quotes (column 3); the "
        "file ends before its JSON does (cut short?)",
    ),
    ("empty export file", lambda r: _text(r / "empty.json", ""), "empty.json: empty file"),
    ("no tasks", lambda r: _text(r / "none.json", "[]"), "none.json: no tasks: an empty export"),
    (
        "first task without data",
        lambda r: _first_task_without_data(r),
        "tasks[0] (id 11).data: a task needs a data object",
    ),
    (
        "box outside",
        lambda r: labelstudio_json(r, [ls_region("car", (150, 30, 230, 90))])[0],
        "tasks[0] (id 11).annotations[1].result[0]: box (150, 30, 230, 90) is outside the 200x120 image",
    ),
    (
        "unknown label",
        lambda r: labelstudio_json(r, [ls_region("tree", (10, 10, 50, 50))])[0],
        "result[0]: label 'tree' is neither a taxonomy class nor an alias",
    ),
    (
        "rotated box",
        lambda r: labelstudio_json(r, [ls_region("car", (10, 10, 50, 50), rotation=30)])[0],
        "result[0]: rotated box (30 degrees)",
    ),
    (
        "no number",
        lambda r: labelstudio_json(r, [ls_region("car", (10, 10, 50, 50), x="12")])[0],
        "result[0].value.x: expected a finite number, got '12'",
    ),
    (
        "yolo fields",
        lambda r: cvat_yolo_zip(r, "0 0.5 0.5 0.2\n")[0],
        "labels/train/frame_000001.txt:1: expected 'class cx cy w h' (5 fields) or a polygon "
        "'class x1 y1 x2 y2 x3 y3 ...', got 4",
    ),
    (
        "yolo class id",
        lambda r: cvat_yolo_zip(r, "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n")[0],
        "frame_000001.txt:2: class 7 is not in the export's 3 class names",
    ),
    (
        "empty label file",
        lambda r: cvat_yolo_zip(r, "")[0],
        "frame_000001.txt: no boxes: not taken as a negative image unless --negatives",
    ),
    (
        "the same box twice",  # a label file pasted twice over taught each box twice, unsaid
        lambda r: cvat_yolo_zip(r, "0 0.5 0.5 0.2 0.2\n1 0.2 0.2 0.1 0.1\n0 0.5 0.5 0.2 0.2\n")[0],
        "frame_000001.txt:3: the same garbage box as",
    ),
    (
        "unknown class used",
        lambda r: cvat_yolo_zip(r, "2 0.5 0.5 0.2 0.2\n")[0],
        "frame_000001.txt:1: label 'tree' is neither",
    ),
    ("coco empty box", lambda r: coco_zip(r, lambda b: [b[0], b[1], 0, 10])[0], "annotations[0]: empty box"),
    (
        "coco not numbers",
        lambda r: coco_zip(r, lambda b: [b[0], "top", 5, 5])[0],
        "annotations[0].bbox: expected a finite number, got 'top'",
    ),
    (
        "not a finite number",
        lambda r: labelstudio_json(r, [ls_region("car", (10, 10, 50, 50), x=float("inf"))])[0],
        "result[0].value.x: expected a finite number, got inf",
    ),
    (
        "coco NaN",  # Python's json reads NaN; every comparison with it is false, so no check saw it
        lambda r: coco_zip(r, lambda b: [float("nan"), b[1], b[2], b[3]])[0],
        "annotations[0].bbox: expected a finite number, got nan",
    ),
    (
        "yolo NaN",
        lambda r: cvat_yolo_zip(r, "0 nan 0.5 0.2 0.2\n")[0],
        "frame_000001.txt:1: not finite numbers",
    ),
    (
        "JSON nested thousands deep",  # Python's reader gave up with a RecursionError traceback
        lambda r: _text(r / "deep.json", "[" * 100_000 + "]" * 100_000),
        "deep.json: JSON nested too deeply to be an export",
    ),
    (
        "box region without its box",  # `"rectanglelabels" in None` crashed the reader
        lambda r: labelstudio_json(r, [{**ls_region("car", (10, 10, 50, 50)), "value": None}])[0],
        "result[0].value: expected the box object, got None",
    ),
    (
        "box region without labels",  # was skipped as if another control: the box vanished unsaid
        lambda r: labelstudio_json(r, [_without_labels(ls_region("car", (10, 10, 50, 50)))])[0],
        "result[0].value.rectanglelabels: expected a list of label names, got None",
    ),
    (
        "image size zero",  # the aspect check divided by it
        lambda r: labelstudio_json(r, [{**ls_region("car", (10, 10, 50, 50)), "original_height": 0}])[0],
        "result[0]: image size 200 x 0: not a size an image has",
    ),
    (
        "image size NaN",  # int(nan) crashed the reader
        lambda r: labelstudio_json(
            r, [{**ls_region("car", (10, 10, 50, 50)), "original_width": float("nan")}]
        )[0],
        "result[0].original_width: expected a finite number, got nan",
    ),
    (
        "coco image width NaN",
        lambda r: coco_zip(r, edit=lambda c: c["images"][0].update(width=float("nan")))[0],
        "images[0].width: expected a finite number, got nan",
    ),
    (
        "coco image id a list",  # unhashable: a TypeError traceback
        lambda r: coco_zip(r, edit=lambda c: c["images"][0].update(id=[1]))[0],
        "images[0].id: expected a number or a string, got [1]",
    ),
    (
        "coco category id an object",
        lambda r: coco_zip(r, edit=lambda c: c["categories"][0].update(id={"n": 1}))[0],
        "categories[0].id: expected a number or a string, got {'n': 1}",
    ),
    (
        "coco annotation image id a list",
        lambda r: coco_zip(r, edit=lambda c: c["annotations"][0].update(image_id=[1]))[0],
        "annotations[0].image_id: no image with id [1]",
    ),
    (
        "coco image id twice",  # the second took the first one's place, and its boxes, unsaid
        lambda r: coco_zip(
            r, edit=lambda c: c["images"].append({**c["images"][0], "file_name": "other.jpg"})
        )[0],
        "images[1].id: id 1 is given twice",
    ),
    (
        "a number of 5000 digits",  # Python's reader refused to convert it: a ValueError traceback
        lambda r: _text(r / "ids.json", '[{"id": ' + "9" * 5000 + ', "data": {"image": "a.jpg"}}]'),
        "ids.json: a number of more than 4300 digits",
    ),
    (
        "half a character",  # JSON's `\\ud800` escape passed every check, then failed the manifest's write
        lambda r: _text(r / "tasks.json", json.dumps([{"id": "\ud800"}])),
        "tasks.json: [0].id: a \\uD800-\\uDFFF escape that is half a character",
    ),
    (
        "half a character in an image name",
        lambda r: _task(r, "/data/upload/1/\udc80.jpg"),
        "tasks.json: [0].data.image: a \\uD800-\\uDFFF escape",
    ),
    (
        "classes.txt not UTF-8",  # was named in the temporary folder the archive was unpacked to
        lambda r: _zip(r / "ls.zip", {"classes.txt": "garbag\xe9\n".encode("latin-1")}),
        "ls.zip/classes.txt: not UTF-8 text",
    ),
    (
        "not UTF-8",
        lambda r: _bytes(r / "tasks.json", b"\xff\xfe[{}]"),
        "tasks.json: not UTF-8 text (byte 0",
    ),
    (
        "zip slip",
        lambda r: _zip(r / "slip.zip", {"../../evil.txt": "x", "classes.txt": "car"}),
        "'../../evil.txt': leaves the allowed folder",
    ),
    (
        "traversal in a task",
        lambda r: _task(r, "/data/local-files/?d=../../etc/passwd"),
        "tasks.json: tasks[0] (id 1): '../../etc/passwd': leaves the allowed folder",
    ),
    (
        "Pascal VOC xml",
        lambda r: _text(r / "a.xml", "<annotation><object><name>garbage</name></object></annotation>"),
        "a.xml: XML, not JSON: Pascal VOC and CVAT XML are not read",
    ),
    (
        "a task id twice",  # two exports pasted together: which annotation is the task's?
        lambda r: _text(r / "twice.json", json.dumps([json.loads(_task(r, "a.jpg").read_text())[0]] * 2)),
        "twice.json: tasks[1] (id 1): task id 1 is given twice (also tasks[0])",
    ),
    (
        "box left of the image",
        lambda r: labelstudio_json(r, [ls_region("car", (10, 10, 50, 50), x=-20)])[0],
        "result[0]: box (-40, 10, 0, 50) is outside the 200x120 image",
    ),
    (
        "pixels instead of percent",  # the refusal shows pixels the annotator never wrote: say why
        lambda r: labelstudio_json(r, [ls_region("car", (10, 10, 50, 50), x=150, width=60)])[0],
        "result[0]: box (300, 10, 420, 50) is outside the 200x120 image (given as x 150, y 8.33333, "
        "width 60, height 33.3333: these are percent of the image (0-100), not pixels)",
    ),
    (
        "yolo in pixels",
        lambda r: cvat_yolo_zip(r, "0 100 60 40 20\n")[0],
        "(given as 100 60 40 20: these are fractions of the image (0-1), not pixels)",
    ),
    (
        "negative width",
        lambda r: labelstudio_json(r, [ls_region("car", (10, 10, 50, 50), width=-5)])[0],
        "result[0]: empty box",
    ),
    ("yolo 6 columns", lambda r: cvat_yolo_zip(r, "0 0.5 0.5 0.2 0.2 0.9\n")[0], "x3 y3 ...', got 6"),
    ("yolo negative", lambda r: cvat_yolo_zip(r, "0 -0.5 0.5 0.2 0.2\n")[0], "is outside the 200x120 image"),
    ("yolo over 1", lambda r: cvat_yolo_zip(r, "0 0.5 0.5 1.6 0.2\n")[0], "is outside the 200x120 image"),
    (
        "coco image without id",
        lambda r: coco_zip(r, edit=lambda c: c["images"][0].pop("id"))[0],
        "images[0].id: expected a number or a string, got None",
    ),
    (
        "coco unknown category",
        lambda r: coco_zip(r, edit=lambda c: c["annotations"][0].update(category_id=9))[0],
        "annotations[0].category_id: no category 9",
    ),
    (
        "coco box without its category",  # was "no category None", as if one were named None
        lambda r: coco_zip(r, edit=lambda c: c["annotations"][0].pop("category_id"))[0],
        "annotations[0].category_id: no category_id: the box names no category",
    ),
    (
        "coco box without its image",
        lambda r: coco_zip(r, edit=lambda c: c["annotations"][0].pop("image_id"))[0],
        "annotations[0].image_id: no image_id: the box names no image",
    ),
    (
        "UTF-16 without its byte order mark",  # was "not valid JSON: Expecting value (column 1)"
        lambda r: _bytes(r / "tasks.json", json.dumps([{"id": 1}]).encode("utf-16-be")),
        "tasks.json: NUL characters: UTF-16 text without a byte order mark? save it as UTF-8",
    ),
    (
        "a label file in an archive twice",  # the last one was taken unsaid
        lambda r: _twice(cvat_yolo_zip(r)[0], "labels/train/frame_000001.txt", "0 0.1 0.1 0.1 0.1\n"),
        "cvat.zip: 'labels/train/frame_000001.txt': in the archive twice (also as 'labels/train/",
    ),
    (
        "an image in an archive twice",  # the labels went onto the other photo of that name
        lambda r: _twice(cvat_yolo_zip(r)[0], "images/train/frame_000001.jpg", jpeg(street(7))),
        "cvat.zip: 'images/train/frame_000001.jpg': in the archive twice",
    ),
    (
        "an archive zipped with backslashes",  # found nothing: "1 unlabelled skipped", exit 0
        lambda r: _zip(r / "cvat.zip", {"data.yaml": "names: [garbage]\n", "images\\train\\a.jpg": b"x"}),
        "cvat.zip: 'images\\\\train\\\\a.jpg': a name with backslashes (zipped on Windows by an old tool?)",
    ),
    (
        "UTF-16, Notepad's Unicode",  # was "not UTF-8 text (byte 0: invalid start byte)" alone
        lambda r: _bytes(r / "tasks.json", json.dumps([{"id": 1}]).encode("utf-16")),
        """tasks.json: not UTF-8 text (byte 0: a UTF-16 byte order mark, as Notepad's "Unicode" """
        "writes: save it as UTF-8)",
    ),
    (
        "missing image",
        lambda r: _task(r, "/data/upload/1/deadbeef-gone.jpg"),
        "'/data/upload/1/deadbeef-gone.jpg': image not found",
    ),
    (
        "corrupt image",
        lambda r: _task(r, "/data/upload/1/cafebabe-cut.jpg", truncate=True),
        "cafebabe-cut.jpg",
    ),
]


def _without_labels(region: dict[str, Any]) -> dict[str, Any]:
    value = {k: v for k, v in region["value"].items() if k != "rectanglelabels"}
    return {**region, "value": value}


def _text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _first_task_without_data(root: Path) -> Path:
    """A JSON export whose first task lost its data: read as JSON-MIN, it was named as no export."""
    path = labelstudio_json(root)[0]
    tasks = json.loads(path.read_text(encoding="utf-8"))
    del tasks[0]["data"]
    return _text(path, json.dumps(tasks))


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _zip(path: Path, members: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zipped:
        for name, text in members.items():
            zipped.writestr(name, text)
    return path


def _twice(archive: Path, name: str, data: str | bytes) -> Path:
    """The archive with a second member of that name (zip lets one be written)."""
    with warnings.catch_warnings(), zipfile.ZipFile(archive, "a") as zipped:
        warnings.simplefilter("ignore")  # zipfile's "Duplicate name"
        zipped.writestr(name, data)
    return archive


def _task(root: Path, image: str, truncate: bool = False) -> Path:
    if truncate:
        path = write_image(root / "media" / "upload" / "1" / "cafebabe-cut.jpg", 9)
        path.write_bytes(path.read_bytes()[:300])
    tasks = [
        {"id": 1, "data": {"image": image}, "annotations": [{"result": [ls_region("car", (10, 10, 50, 50))]}]}
    ]
    return _text(root / "tasks.json", json.dumps(tasks))


@pytest.mark.parametrize(("case", "make", "expected"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_exports_are_named_by_file_and_line_or_field_and_change_nothing(
    case: str, make: Callable[[Path], Path], expected: str, tmp_path: Path
) -> None:
    export = make(tmp_path)
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    try:
        _, problems = import_export(export, dataset, finder_for(tmp_path), at=AT)
        messages = [str(p) for p in problems]
    except AnnotationError as err:
        messages = [str(err)]
    assert any(expected in m for m in messages), messages
    assert any(export.name in m or "tasks[" in m for m in messages)  # every problem says where
    assert not (tmp_path / "datasets" / "bureau").exists()  # nothing was written


def test_a_problem_inside_an_archive_names_the_archive_not_the_folder_it_was_unpacked_to(
    tmp_path: Path,
) -> None:
    export, _ = coco_zip(tmp_path, edit=lambda c: c["images"][0].update(file_name="gone.jpg"))
    _, problems = import_export(export, Dataset.open("bureau", tmp_path / "datasets"), finder_for(tmp_path))
    messages = [str(p) for p in problems]
    assert any(f"image not found (looked in {export}" in m for m in messages), messages
    assert not any("streetorder-import-" in m for m in messages), messages  # a folder gone by now


def test_an_image_missing_from_a_folder_export_names_the_folder_looked_in(tmp_path: Path) -> None:
    """CVAT's COCO export unpacked to a folder, one image gone: it said "looked in no folder"."""
    archive, _ = coco_zip(tmp_path, edit=lambda c: c["images"][0].update(file_name="gone.jpg"))
    export = tmp_path / "coco"
    zipfile.ZipFile(archive).extractall(export)
    _, problems = import_export(export, Dataset.open("bureau", tmp_path / "datasets"), finder_for(tmp_path))
    assert [str(p) for p in problems] == [
        f"{export}/annotations/instances_default.json: images[0]: 'gone.jpg': image not found "
        f"(looked in {export / 'images'}, {tmp_path / 'media' / 'upload'}, "
        "the allowed folder (the local-files root))"  # by its name: where a task's plain path is read
    ]


def test_a_holdout_photo_inside_an_archive_is_named_by_the_archive(tmp_path: Path) -> None:
    """A COCO zip holding a holdout photo was refused naming /tmp/streetorder-import-.../annotations/
    instances_default.json, a folder deleted by the time the user read it."""
    export, images = coco_zip(tmp_path)
    why = "in the frozen holdout test-holdout (set/val): never trained on"
    refused = KnownImages(by_sha256={file_sha256(images[0]): why})
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    _, problems = import_export(export, dataset, finder_for(tmp_path), refused=refused, at=AT)
    assert [(p.where, p.message) for p in problems] == [
        (f"{export}/annotations/instances_default.json: images[0]", why)
    ]


def test_empty_label_file_is_a_negative_only_when_asked(tmp_path: Path) -> None:
    export, _ = cvat_yolo_zip(tmp_path, "")
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    counts, problems = import_export(export, dataset, finder_for(tmp_path), negatives=True, at=AT)
    assert problems == [] and counts["added"] == 1
    assert next(iter(dataset.images.values()))["labels"] == []


def test_skip_invalid_adds_the_good_images_and_records_the_problems(tmp_path: Path) -> None:
    export, images = labelstudio_json(tmp_path, [ls_region("tree", (10, 10, 50, 50))])  # task 11 broken
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    counts, problems = import_export(export, dataset, finder_for(tmp_path), skip_invalid=True, at=AT)
    assert counts["added"] == 1 and len(problems) == 1
    assert list(dataset.images) == [file_sha256(images[1])]
    assert "tree" in dataset.versions[0]["problems"][0]


def test_holdout_images_are_refused(tmp_path: Path) -> None:
    export, images = labelstudio_json(tmp_path)
    why = "in the frozen holdout test-holdout (set/val): never trained on"
    refused = KnownImages(by_sha256={file_sha256(images[0]): why})
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    _, problems = import_export(export, dataset, finder_for(tmp_path), refused=refused, at=AT)
    assert [p.message for p in problems] == [why]


def street(seed: int) -> np.ndarray:
    """A street-like picture, 400x240 (a gradient and a few blocks): its look survives re-encoding,
    resizing and a brighter exposure."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(40, 200, 240, dtype=np.float32)[:, None, None]
    picture = np.broadcast_to(rows * rng.uniform(0.5, 1.0, 3), (240, 400, 3)).astype(np.uint8).copy()
    for _ in range(6):
        x, y = int(rng.integers(0, 320)), int(rng.integers(0, 180))
        picture[y : y + 60, x : x + 80] = rng.integers(0, 255, 3)
    return picture


def scene(seed: int) -> Image.Image:
    return Image.fromarray(street(seed))


def holdout_config(root: Path, picture: Image.Image) -> Path:
    """promotion.yaml of a holdout `h1` of one photo (`holdout/images/val/kept.jpg`)."""
    holdout = root / "holdout"
    (holdout / "images" / "val").mkdir(parents=True)
    picture.save(holdout / "images" / "val" / "kept.jpg", quality=95)
    (holdout / "data.yaml").write_text(yaml.safe_dump({"val": "images/val", "names": ["garbage"]}))
    config = root / "promotion.yaml"
    config.write_text(yaml.safe_dump({"holdout": {"name": "h1", "sets": [{"data": "holdout/data.yaml"}]}}))
    return config


def frozen_holdout(root: Path, picture: Image.Image) -> KnownImages:
    """A frozen holdout `h1` of one photo (`holdout/val/kept.jpg`), as training data must refuse it."""
    from vision.modelops.promote import holdout_refusals

    return holdout_refusals(holdout_config(root, picture), TAXONOMY)


def test_a_holdout_photo_saved_again_resized_or_turned_is_refused_too(tmp_path: Path) -> None:
    """The holdout was checked by sha256 alone: a holdout photo re-saved at JPEG quality 60 and half
    size, or stored turned with an EXIF orientation, had other bytes and went into training."""
    refused = frozen_holdout(tmp_path, scene(1))

    photos = tmp_path / "files" / "photos"
    photos.mkdir(parents=True)
    scene(1).resize((200, 120)).save(photos / "smaller.jpg", quality=60)
    scene(1).transpose(Image.Transpose.ROTATE_90).save(photos / "turned.jpg", exif=exif_for(orientation=6))
    scene(2).save(photos / "other.jpg", quality=90)
    tasks = [
        {
            "id": index,
            "project": 1,
            "data": {"image": f"/data/local-files/?d=photos/{name}"},
            "annotations": [{"id": index, "result": [ls_region("garbage", (10, 20, 70, 100))]}],
        }
        for index, name in enumerate(("smaller.jpg", "turned.jpg", "other.jpg"))
    ]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks), encoding="utf-8")
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    counts, problems = import_export(
        export, dataset, finder_for(tmp_path), refused=refused, skip_invalid=True, at=AT
    )
    assert counts["added"] == 1
    assert [Path(entry["file"]).name for entry in dataset.images.values()] == ["other.jpg"]
    assert [p.where.split(": ")[-1] for p in problems] == ["tasks[0] (id 0)", "tasks[1] (id 1)"]
    for problem in problems:
        assert problem.message.startswith("a copy of holdout/val/kept.jpg of the frozen holdout h1: never")


# --- splits: near-copies of a photo share one ---------------------------------------------------------


def jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


def turned_by_exif(image: np.ndarray, quality: int) -> bytes:
    """The photo stored turned a quarter, with the EXIF orientation that turns it upright again."""
    out = BytesIO()
    picture = Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).transpose(Image.Transpose.ROTATE_90)
    picture.save(out, format="JPEG", quality=quality, exif=exif_for(orientation=6))
    return out.getvalue()


def sha_split(data: bytes) -> str:
    return split_of(hashlib.sha256(data).hexdigest())


def photo_in(split: str) -> tuple[int, bytes]:
    """The first street photo (its seed and bytes) whose sha256 alone puts it in `split`."""
    return next((seed, data) for seed in range(1000) if sha_split(data := jpeg(street(seed))) == split)


def apart(original: bytes, copy: Callable[[int], bytes]) -> bytes:
    """The first variant of a copy (its k-th) whose sha256 alone puts it in the other split."""
    return next(data for k in range(100) if sha_split(data := copy(k)) != sha_split(original))


def import_photos(root: Path, dataset: Dataset, photos: dict[str, bytes], box: tuple[float, ...]) -> None:
    """An export of one task per photo (local files), each with one garbage box, as one version."""
    folder = root / "files" / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    tasks = []
    for index, (name, data) in enumerate(photos.items()):
        (folder / name).write_bytes(data)
        tasks.append(
            {
                "id": index,
                "project": 1,
                "data": {"image": f"/data/local-files/?d=photos/{name}"},
                "annotations": [{"id": index, "result": [ls_region("garbage", box)]}],
            }
        )
    export = root / f"export-{dataset.version + 1}.json"
    export.write_text(json.dumps(tasks), encoding="utf-8")
    counts, problems = import_export(export, dataset, finder_for(root), at=AT)
    assert problems == [] and counts["added"] + counts["updated"] == len(photos)


COPIES: dict[str, Callable[[np.ndarray, int], bytes]] = {
    "saved again at a lower JPEG quality": lambda image, k: jpeg(image, 80 - k),
    "resized to half": lambda image, k: jpeg(
        cv2.resize(image, (200, 120), interpolation=cv2.INTER_AREA), 90 - k
    ),
    "brighter": lambda image, k: jpeg(cv2.add(image, np.full_like(image, 12 + k))),
    "turned by its EXIF": lambda image, k: turned_by_exif(image, 90 - k),
}


@pytest.mark.parametrize("when", ["same batch", "same batch, the copy first", "a later version"])
@pytest.mark.parametrize("kind", list(COPIES))
def test_a_photo_and_its_copy_share_a_split_though_their_sha256_would_part_them(
    kind: str, when: str, tmp_path: Path
) -> None:
    """By sha256 alone a val photo's re-saved copy went to train (9 times in 10): val then scored
    photos the model had learnt. The first of the two to come in decides the split of both."""
    seed, original = photo_in("val")
    copy = apart(original, lambda k: COPIES[kind](street(seed), k))
    assert sha_split(copy) == "train"
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    box = (10.0, 20.0, 70.0, 100.0)
    if when == "same batch":
        import_photos(tmp_path, dataset, {"original.jpg": original, "copy.jpg": copy}, box)
    elif when == "same batch, the copy first":
        import_photos(tmp_path, dataset, {"copy.jpg": copy, "original.jpg": original}, box)
    else:
        import_photos(tmp_path, dataset, {"original.jpg": original}, box)
        import_photos(tmp_path, dataset, {"copy.jpg": copy}, box)
    expected = "train" if when == "same batch, the copy first" else "val"
    shas = [hashlib.sha256(data).hexdigest() for data in (original, copy)]
    saved = Dataset.open("bureau", tmp_path / "datasets")
    assert [saved.images[sha]["split"] for sha in shas] == [expected, expected]
    import_photos(tmp_path, saved, {"copy.jpg": copy}, (20.0, 20.0, 80.0, 100.0))  # a correction
    assert saved.images[shas[1]]["version"] == saved.version and saved.split(shas[1]) == expected
    [(_, data_yaml)] = saved.build(tmp_path / "built", TAXONOMY)
    built = {p.stem for p in (data_yaml.parent / "images" / expected).iterdir()}
    assert built == set(shas)  # what retraining validates on (or trains on) holds both


def test_unrelated_photos_still_split_by_sha256(tmp_path: Path) -> None:
    photos = {f"street-{seed}.jpg": jpeg(street(seed)) for seed in range(30)}
    looks = [perceptual_hash(street(seed)) for seed in range(30)]
    assert min(hash_distance(a, b) for a, b in combinations(looks, 2)) > NEAR_IDENTICAL_BITS
    assert {sha_split(data) for data in photos.values()} == {"train", "val"}
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    import_photos(tmp_path, dataset, dict(list(photos.items())[:20]), (10.0, 20.0, 70.0, 100.0))
    import_photos(tmp_path, dataset, dict(list(photos.items())[20:]), (10.0, 20.0, 70.0, 100.0))
    saved = Dataset.open("bureau", tmp_path / "datasets")
    assert {sha: entry["split"] for sha, entry in saved.images.items()} == {
        sha: split_of(sha) for sha in (hashlib.sha256(data).hexdigest() for data in photos.values())
    }


def test_a_manifest_without_stored_splits_or_looks_keeps_its_splits(tmp_path: Path) -> None:
    """A manifest written before splits and looks were stored: its images keep the split their
    sha256 gave them, and a later copy of one of them is known by the look read from its file."""
    seed, original = photo_in("val")
    others = {f"street-{s}.jpg": jpeg(street(s)) for s in range(seed + 1, seed + 11)}
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    import_photos(tmp_path, dataset, {"original.jpg": original, **others}, (10.0, 20.0, 70.0, 100.0))
    manifest = json.loads(dataset.path.read_text(encoding="utf-8"))
    for entry in manifest["images"]:
        del entry["split"], entry["phash"]
    dataset.path.write_text(json.dumps(manifest), encoding="utf-8")

    old = Dataset.open("bureau", tmp_path / "datasets")
    assert {sha: old.split(sha) for sha in old.images} == {sha: split_of(sha) for sha in old.images}
    assert "val" in {old.split(sha) for sha in old.images}
    copy = apart(original, lambda k: jpeg(street(seed), 80 - k))
    import_photos(tmp_path, old, {"copy.jpg": copy}, (10.0, 20.0, 70.0, 100.0))
    saved = Dataset.open("bureau", tmp_path / "datasets")
    assert saved.version == 2 and saved.versions[-1]["added"] == 1 and saved.versions[-1]["updated"] == 0
    assert saved.images[hashlib.sha256(copy).hexdigest()]["split"] == "val"
    assert {sha: e["split"] for sha, e in saved.images.items() if e["version"] == 1} == {
        sha: split_of(sha) for sha in old.images if sha != hashlib.sha256(copy).hexdigest()
    }


def look_of(path: Path) -> str:
    from vision.core.imageio import read_photo
    from vision.core.phash import perceptual_hash

    return perceptual_hash(read_photo(path).image)


def cached_looks(cache: Path) -> dict[str, Any]:
    [looks_file] = (cache / "holdout-looks").iterdir()
    return dict(json.loads(looks_file.read_text(encoding="utf-8"))["looks"])


def test_the_holdouts_looks_are_decoded_once_and_then_read_from_the_cache(tmp_path: Path) -> None:
    """Every annotation import decoded all 582 holdout photos again (4 s) for their looks: they are
    cached by each file's sha256 in a file named by the frozen digest, and read from there."""
    from vision.modelops.promote import holdout_digest, holdout_refusals, load_policy

    config = holdout_config(tmp_path, scene(1))
    kept, broken = tmp_path / "holdout/images/val/kept.jpg", tmp_path / "holdout/images/val/broken.jpg"
    broken.write_bytes(b"not a photo")
    spec = yaml.safe_load(config.read_text())
    digest, _ = holdout_digest(load_policy(config, TAXONOMY))
    config.write_text(yaml.safe_dump({"holdout": {**spec["holdout"], "sha256": digest}}))
    cache = tmp_path / "cache"

    first = holdout_refusals(config, TAXONOMY, cache)
    assert set(first.by_sha256) == {file_sha256(kept), file_sha256(broken)}
    assert list(first.copy_reasons) == [look_of(kept)]
    assert [p.name for p in (cache / "holdout-looks").iterdir()] == [f"{digest}.json"]
    # an undecodable photo is cached as such (known by its bytes), not decoded at every call
    assert cached_looks(cache) == {file_sha256(kept): look_of(kept), file_sha256(broken): None}

    # the second call takes the look the cache holds for kept.jpg's bytes: it does not decode
    other = tmp_path / "other.jpg"
    scene(2).save(other, quality=90)
    looks_file = cache / "holdout-looks" / f"{digest}.json"
    stored = json.loads(looks_file.read_text(encoding="utf-8"))
    stored["looks"][file_sha256(kept)] = look_of(other)
    looks_file.write_text(json.dumps(stored), encoding="utf-8")
    second = holdout_refusals(config, TAXONOMY, cache)
    assert second.by_sha256 == first.by_sha256
    assert list(second.copy_reasons) == [look_of(other)]
    assert second.why("0" * 64, look_of(other)) is not None
    assert second.why("0" * 64, look_of(kept)) is None


def test_a_changed_holdout_photo_misses_the_cache(tmp_path: Path) -> None:
    from vision.modelops.promote import holdout_refusals

    config = holdout_config(tmp_path, scene(1))
    kept, cache = tmp_path / "holdout/images/val/kept.jpg", tmp_path / "cache"
    before = holdout_refusals(config, TAXONOMY, cache)
    scene(2).save(kept, quality=95)  # other bytes under the same name

    after = holdout_refusals(config, TAXONOMY, cache)
    assert list(after.by_sha256) == [file_sha256(kept)] != list(before.by_sha256)
    assert list(after.copy_reasons) == [look_of(kept)] != list(before.copy_reasons)
    assert cached_looks(cache) == {file_sha256(kept): look_of(kept)}  # the old entry is dropped


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe",
        b"[1, 2]",
        json.dumps({"format": "another program's", "looks": {}}).encode(),
        b'{"format": "streetorder holdout looks", "looks": []}',
    ],
)
def test_a_corrupt_or_foreign_looks_cache_is_ignored_and_written_again(
    tmp_path: Path, content: bytes
) -> None:
    from vision.modelops.promote import holdout_refusals

    config = holdout_config(tmp_path, scene(1))
    kept, cache = tmp_path / "holdout/images/val/kept.jpg", tmp_path / "cache"
    (cache / "holdout-looks").mkdir(parents=True)
    (cache / "holdout-looks" / "unfrozen.json").write_bytes(content)

    refused = holdout_refusals(config, TAXONOMY, cache)
    assert list(refused.copy_reasons) == [look_of(kept)]
    assert cached_looks(cache) == {file_sha256(kept): look_of(kept)}


def test_a_cache_entry_that_is_not_a_look_is_decoded_again(tmp_path: Path) -> None:
    from vision.modelops.promote import LOOKS_FORMAT, holdout_refusals

    config = holdout_config(tmp_path, scene(1))
    kept, cache = tmp_path / "holdout/images/val/kept.jpg", tmp_path / "cache"
    (cache / "holdout-looks").mkdir(parents=True)
    stored = {"format": LOOKS_FORMAT, "looks": {file_sha256(kept): "not a hash"}}
    (cache / "holdout-looks" / "unfrozen.json").write_text(json.dumps(stored), encoding="utf-8")

    assert list(holdout_refusals(config, TAXONOMY, cache).copy_reasons) == [look_of(kept)]
    assert cached_looks(cache) == {file_sha256(kept): look_of(kept)}


def test_an_unwritable_cache_only_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vision.modelops.promote import holdout_refusals

    config = holdout_config(tmp_path, scene(1))
    kept, cache = tmp_path / "holdout/images/val/kept.jpg", tmp_path / "cache"
    cache.write_text("a file where the cache folder should be")

    refused = holdout_refusals(config, TAXONOMY, cache)
    assert list(refused.copy_reasons) == [look_of(kept)]
    assert "warning: holdout looks not cached" in capsys.readouterr().err


def test_verify_notices_a_changed_image_and_build_keeps_partial_labels(tmp_path: Path) -> None:
    export, _ = cvat_yolo_zip(tmp_path)
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    import_export(export, dataset, finder_for(tmp_path), at=AT)
    built = dataset.build(tmp_path / "built", taxonomy=TAXONOMY)
    assert len(built) == 1
    data = yaml.safe_load(built[0][1].read_text())
    assert data["names"] == ["garbage", "car"]  # only what CVAT's label list held: the rest is masked
    labels = next((built[0][1].parent / "labels").rglob("*.txt")).read_text().split("\n")
    assert [line.split()[0] for line in labels if line] == ["0", "1"]
    assert dataset.verify() == []
    stored = dataset.file(next(iter(dataset.images.values())))
    stored.write_bytes(stored.read_bytes()[:-10] + b"0123456789")
    assert "has changed" in str(dataset.verify()[0])


@pytest.mark.parametrize(
    ("ref", "allowed"),
    [
        ("photos/a.jpg", True),
        ("/photos/a.jpg", True),
        ("../a.jpg", False),
        ("photos/../../a.jpg", False),
        ("a\x00.jpg", False),
    ],
)
def test_paths_never_leave_their_root(ref: str, allowed: bool, tmp_path: Path) -> None:
    if allowed:
        assert inside(tmp_path, ref).is_relative_to(tmp_path.resolve())
    else:
        with pytest.raises(AnnotationError):
            inside(tmp_path, ref)


def test_links_round_a_loop_or_to_nothing_among_the_images_are_passed_over(tmp_path: Path) -> None:
    """`--images` given a photo archive with a link round a loop named like a photo: resolving it
    raised RuntimeError and the import stopped with a traceback."""
    export, images = labelstudio_json(tmp_path)
    uploads = tmp_path / "media" / "upload" / "1"
    (uploads / "loop.jpg").symlink_to("loop.jpg")
    (uploads / "gone.jpg").symlink_to("nowhere.jpg")
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    counts, problems = import_export(export, dataset, finder_for(tmp_path), at=AT)
    assert problems == [] and counts["added"] == len(images)


def test_a_symlink_out_of_the_files_root_is_refused(tmp_path: Path) -> None:
    secret = write_image(tmp_path / "outside" / "secret.jpg", 1)
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "link.jpg").symlink_to(secret)
    with pytest.raises(AnnotationError, match="leaves the allowed folder"):
        TaskImages(files_root=tmp_path / "files").read("/data/local-files/?d=link.jpg")


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ("http://example.com/a.jpg", "not enabled"),
        ("/data/upload/1/a.jpg", "not enabled"),
        ("file:///etc/passwd", "not enabled"),
    ],
)
def test_task_images_are_fetched_only_from_the_configured_label_studio(
    ref: str, reason: str, tmp_path: Path
) -> None:
    with pytest.raises(AnnotationError, match=reason):
        TaskImages(files_root=tmp_path).read(ref)
    with pytest.raises(AnnotationError, match=r"only images from http://ls\.internal:8080"):
        TaskImages(files_root=tmp_path, base_url="http://ls.internal:8080").read(
            "http://ls.internal:8080.evil.com/a.jpg"
        )


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (None, {n: n for n in TAXONOMY.names}),
        (
            '<View><Image name="photo" value="$img"/><RectangleLabels name="box" toName="photo">'
            '<Label value="Garbage"/><Label value="full_bin"/><Label value="tree"/></RectangleLabels></View>',
            {"garbage": "Garbage", "overflow": "full_bin"},
        ),
    ],
)
def test_labelling_config_maps_project_labels_to_classes(
    config: str | None, expected: dict[str, str]
) -> None:
    control = rectangle_control(config, TAXONOMY)
    assert control.labels == expected
    if config:
        assert (control.from_name, control.to_name, control.data_key) == ("box", "photo", "img")


def test_queue_exports_read_back_through_the_importers(tmp_path: Path) -> None:
    """What the queue writes (Label Studio tasks, a CVAT YOLO zip) imports back box for box."""
    image = write_image(tmp_path / "out" / "images" / "q.jpg", 3)
    labels = tuple(Label(name, xyxy, 0.5) for name, xyxy in BOXES)
    item = QueuedImage(image, WIDTH, HEIGHT, labels, "street-v1@000000000000", ("uncertain",), 0.4)
    tasks = write_labelstudio_tasks(
        [item], tmp_path / "out", lambda i: "/data/local-files/?d=images/q.jpg", taxonomy=TAXONOMY
    )
    prediction = json.loads(tasks.read_text())[0]["predictions"][0]
    assert prediction["model_version"] == "street-v1@000000000000" and prediction["score"] == 0.5
    # predictions are what an annotator then submits: read them as an annotation
    submitted = [
        {
            "data": {"image": "/data/local-files/?d=images/q.jpg"},
            "annotations": [{"result": prediction["result"]}],
        }
    ]
    _text(tmp_path / "submitted.json", json.dumps(submitted))
    zip_path = write_yolo_zip([item], tmp_path / "cvat.zip", TAXONOMY.names, lambda i: i.path.name)
    finder = ImageFinder([], tmp_path / "store", TaskImages(files_root=tmp_path / "out"))
    for export in (tmp_path / "submitted.json", zip_path):
        raw = read_export(export, unpack_to=tmp_path / f"unpacked-{export.stem}")
        dataset = Dataset.open(export.stem, tmp_path / "datasets")
        counts, problems = import_export(export, dataset, finder, at=AT)
        assert problems == [] and counts["added"] == 1, raw.format
        entry = next(iter(dataset.images.values()))
        boxes = {name: xyxy for name, *xyxy in entry["labels"]}
        assert boxes == {n: pytest.approx(list(b), abs=0.1) for n, b in BOXES}


def import_argv(export: Path, root: Path) -> list[str]:
    """`streetorder data import` of an export written by the helpers above, into root/datasets."""
    return [
        "data",
        "import",
        str(export),
        "--dataset",
        "bureau",
        "--images",
        str(root / "media" / "upload"),
        "--files-root",
        str(root / "files"),
        "--datasets-dir",
        str(root / "datasets"),
        "--store",
        str(root / "store"),
        "--no-holdout-check",
    ]


def test_cli_import_reports_problems_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export, _ = labelstudio_json(tmp_path, [ls_region("tree", (10, 10, 50, 50))])
    argv = [*import_argv(export, tmp_path), "--labelled", "garbage,car,overflow"]
    assert main(argv) == 1
    assert "export.json: tasks[0] (id 11).annotations[1].result[0]: label 'tree'" in capsys.readouterr().err
    assert main([*argv, "--skip-invalid"]) == 0
    assert "bureau v1: 1 added" in capsys.readouterr().out


def test_labelled_classes_come_from_the_projects_config_never_the_whole_taxonomy(tmp_path: Path) -> None:
    """Issue 29: a Label Studio export says nothing of its labels; without its project's config an
    import refuses to guess, with the config it records exactly the classes annotators could draw."""
    export, _ = labelstudio_json(tmp_path)
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    counts, problems = import_any(export, dataset, finder_for(tmp_path), at=AT, taxonomy=TAXONOMY)
    assert counts["added"] == 0 and len(problems) == 2
    assert all("which classes could its annotators label?" in p.message for p in problems)
    assert "labelling config of project 1" in problems[0].message
    assert not (tmp_path / "datasets" / "bureau").exists()
    asked: list[str | None] = []
    counts, problems = import_any(
        export,
        dataset,
        finder_for(tmp_path),
        at=AT,
        label_config_of=lambda p: asked.append(p) or PROJECT_CONFIG,
        taxonomy=TAXONOMY,
    )
    assert problems == [] and counts["added"] == 2 and asked == ["1"]  # read once per project
    assert {tuple(e["labelled"]) for e in dataset.images.values()} == {("garbage", "overflow", "car")}


def test_an_inbox_task_carries_its_projects_config(tmp_path: Path) -> None:
    """The webhook and the pull keep the project's config with each task: stall, offered and unused,
    is labelled (an image without a stall is a negative for it); poster, not offered, stays masked."""
    export, images = labelstudio_json(tmp_path)
    tasks = json.loads(export.read_text())
    config = PROJECT_CONFIG.replace('<Label value="tree"/>', '<Label value="stall"/>')
    for task in tasks:
        task["label_config"] = config
    export.write_text(json.dumps(tasks))
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    counts, problems = import_any(export, dataset, finder_for(tmp_path), at=AT, taxonomy=TAXONOMY)
    assert problems == [] and counts["added"] == 2
    entry = dataset.images[file_sha256(images[0])]
    assert entry["labelled"] == ["garbage", "overflow", "car", "stall"]
    [(_, data_yaml)] = dataset.build(tmp_path / "built", taxonomy=TAXONOMY)
    assert yaml.safe_load(data_yaml.read_text())["names"] == ["garbage", "overflow", "car", "stall"]


def test_cli_import_reads_the_label_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export, _ = labelstudio_json(tmp_path)
    argv = import_argv(export, tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err  # the two tasks' same problem, said once with the other's place
    assert err.count("which classes could its annotators label?") == 1
    assert "(the same at 1 more: " in err and "export.json: tasks[1] (id 12))" in err
    assert "2 problem(s)" in err
    config = _text(tmp_path / "label_config.xml", PROJECT_CONFIG)
    assert main([*argv, "--label-config", str(config)]) == 0
    assert "bureau v1: 2 added" in capsys.readouterr().out
    entry = next(iter(Dataset.open("bureau", tmp_path / "datasets").images.values()))
    assert entry["labelled"] == ["garbage", "overflow", "car"]
    with pytest.raises(SystemExit) as usage:
        main([*argv, "--label-config", str(tmp_path / "missing.xml")])
    assert usage.value.code == 2
    assert "missing.xml: No such file or directory" in capsys.readouterr().err
    manifest = (tmp_path / "datasets" / "bureau" / "manifest.json").read_bytes()
    big = _sparse(tmp_path / "big.xml", 2 * 2**20)  # was read whole, as a config of 2 MB of NULs
    with pytest.raises(SystemExit) as usage:
        main([*argv, "--label-config", str(big), "--max-mb", "1"])
    assert usage.value.code == 2
    message = f"--label-config {big}: 2,097,152 bytes, over the limit of 1,048,576: not read (--max-mb)"
    assert message in capsys.readouterr().err
    assert (tmp_path / "datasets" / "bureau" / "manifest.json").read_bytes() == manifest


# --- results that are no boxes, empty annotations, skipped tasks ------------------------------------


CHOICE = {
    "id": "c",
    "type": "choices",
    "from_name": "verdict",
    "to_name": "image",
    "value": {"choices": ["rejected"]},
}
TEXT = {
    "id": "t",
    "type": "textarea",
    "from_name": "note",
    "to_name": "image",
    "value": {"text": ["blurred"]},
}
KEYPOINT = {
    "id": "k",
    "type": "keypointlabels",
    "from_name": "kp",
    "to_name": "image",
    "value": {"x": 10, "y": 10, "width": 1, "keypointlabels": ["garbage"]},
}
BRUSH = {
    "id": "b",
    "type": "brushlabels",
    "from_name": "brush",
    "to_name": "image",
    "original_width": WIDTH,
    "original_height": HEIGHT,
    "value": {"format": "rle", "rle": [0, 96, 3, 1, 0], "brushlabels": ["garbage"]},
}
ELLIPSE = {
    "id": "e",
    "type": "ellipselabels",
    "from_name": "ellipse",
    "to_name": "image",
    "value": {"x": 50, "y": 50, "radiusX": 10, "radiusY": 5, "rotation": 0, "ellipselabels": ["garbage"]},
}
RLE = {"counts": [120, 30, 170, 30, 23680], "size": [HEIGHT, WIDTH]}  # a COCO mask: no polygon


def _min_rows(root: Path, extra: dict[str, Any], boxes: bool) -> tuple[Path, list[Path]]:
    path, images = labelstudio_min(root)
    rows = json.loads(path.read_text(encoding="utf-8"))
    if not boxes:
        del rows[0]["label"]
    rows[0].update(extra)
    return _text(path, json.dumps(rows)), images


def _coco_masks_only(root: Path) -> Path:
    def edit(coco: dict[str, Any]) -> None:
        for annotation in coco["annotations"]:
            annotation.update(bbox=[], segmentation=RLE, iscrowd=1)

    return coco_zip(root, edit=edit)[0]


# (case, export, boxes the task with the results keeps (None: the image is not taken), skipped counts)
NOT_BOXES = [
    ("a rejected choice only", lambda r: labelstudio_json(r, [CHOICE])[0], None, {"choices": 1}),
    ("text only", lambda r: labelstudio_json(r, [TEXT])[0], None, {"textarea": 1}),
    (
        "keypoint, brush and ellipse only",
        lambda r: labelstudio_json(r, [KEYPOINT, BRUSH, ELLIPSE])[0],
        None,
        {"brushlabels": 1, "ellipselabels": 1, "keypointlabels": 1},
    ),
    (
        "boxes beside a choice and a text",
        lambda r: labelstudio_json(r, [*(ls_region(n, b) for n, b in BOXES), CHOICE, TEXT])[0],
        2,
        {"choices": 1, "textarea": 1},
    ),
    (
        "JSON-MIN choices only",
        lambda r: _min_rows(r, {"verdict": {"choices": ["rejected", "blurred"]}}, False)[0],
        None,
        {"choices": 1},
    ),
    (
        "JSON-MIN keypoints only",
        lambda r: _min_rows(r, {"kp": [KEYPOINT["value"]]}, False)[0],
        None,
        {"keypointlabels": 1},
    ),
    ("COCO masks only", _coco_masks_only, None, {"segmentation": 2}),
]


@pytest.mark.parametrize(("case", "make", "boxes", "unsupported"), NOT_BOXES, ids=[c[0] for c in NOT_BOXES])
def test_results_that_are_no_boxes_are_counted_for_what_they_are_and_never_a_negative(
    case: str, make: Callable[[Path], Path], boxes: int | None, unsupported: dict[str, int], tmp_path: Path
) -> None:
    """A task whose only result was a "rejected" choice was read as an image with nothing on it:
    with --negatives (or as a confirmed-empty annotation) every class was taught as absent there."""
    export = make(tmp_path)
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    counts, problems = import_export(export, dataset, finder_for(tmp_path), negatives=True, at=AT)
    assert problems == [] and counts["unsupported"] == unsupported
    assert counts["unsupported_only"] == (1 if boxes is None else 0)
    labels = sorted(len(entry["labels"]) for entry in dataset.images.values())
    assert 0 not in labels  # no image of these exports became a negative
    if boxes is not None:
        assert boxes in labels


def test_a_submitted_empty_annotation_is_a_negative_a_skipped_task_is_not(tmp_path: Path) -> None:
    """An annotator who submits no box says nothing is there: a true negative without --negatives
    (the retraining job imports without it, so such an annotation came back to the inbox for ever).
    A skipped (cancelled) task or one nobody annotated says nothing."""
    export, images = labelstudio_json(tmp_path, [])
    tasks = json.loads(export.read_text(encoding="utf-8"))
    tasks[1]["annotations"][0]["was_cancelled"] = True  # task 12 skipped
    _text(export, json.dumps(tasks))
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    counts, problems = import_export(export, dataset, finder_for(tmp_path), at=AT)
    assert problems == [] and counts["added"] == 1 and counts["unlabelled"] == 2
    assert dataset.images[file_sha256(images[0])]["labels"] == []


@pytest.mark.parametrize(
    "make",
    [
        lambda r: labelstudio_json(
            r, [ls_region("car", (10, 10, 50, 50)), {**ls_region("garbage", (60, 10, 90, 50)), "value": None}]
        ),
        lambda r: cvat_yolo_zip(r, "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2\n"),
        lambda r: coco_zip(r, edit=lambda c: c["annotations"][1].update(bbox=[1, 2, 3])),
    ],
    ids=["labelstudio region without its box", "yolo line of 4 fields", "coco bbox of 3 numbers"],
)
def test_an_image_with_a_refused_region_is_not_half_imported(
    make: Callable[[Path], tuple[Path, list[Path]]], tmp_path: Path
) -> None:
    """With --skip-invalid the image's other boxes were imported and the refused one taught as
    background; the retraining job (which skips invalid images) also put the task back in the inbox."""
    export, images = make(tmp_path)
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    _, problems = import_export(
        export, dataset, finder_for(tmp_path), skip_invalid=True, negatives=True, at=AT
    )
    assert len(problems) == 1
    assert file_sha256(images[0]) not in dataset.images  # the image with the refused region


def test_cli_import_reports_what_it_skipped_for_what_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export, _ = labelstudio_json(tmp_path, [CHOICE, TEXT, CHOICE])
    assert main([*import_argv(export, tmp_path), "--labelled", "garbage,car,overflow"]) == 0
    out = capsys.readouterr().out
    assert (
        "1 unlabelled skipped, 2 results of unsupported type choices skipped, "
        "1 result of unsupported type textarea skipped, "
        "1 image(s) with only unsupported results skipped (not negatives)" in out
    ), out


def test_a_path_out_of_the_files_root_is_refused_without_naming_the_servers_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The refusal said `leaves the allowed folder /srv/photos`: a webhook's sender learnt where the
    server keeps its photos. The CLI names the folder its user gave."""
    with pytest.raises(AnnotationError) as refused:
        TaskImages(files_root=tmp_path / "files").local("/data/local-files/?d=../../etc/passwd")
    assert str(tmp_path) not in str(refused.value)
    assert str(refused.value) == "'../../etc/passwd': leaves the allowed folder (the local-files root)"
    export = _task(tmp_path, "/data/local-files/?d=../../etc/passwd")
    code = main([*import_argv(export, tmp_path), "--labelled", "car"])
    assert code == 1
    assert f"leaves the allowed folder (--files-root {tmp_path / 'files'})" in capsys.readouterr().err


def test_two_annotators_on_one_task_the_annotation_saved_last_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Label Studio exports both annotations of a task (JSON: in its list; JSON-MIN: a row each);
    the JSON-MIN rows were "the same image twice" and refused the export."""
    export, images = labelstudio_min(tmp_path)
    rows = json.loads(export.read_text(encoding="utf-8"))
    later = {**rows[0], "annotator": 2, "annotation_id": 8, "updated_at": "2025-10-01T10:00:00Z"}
    later["label"] = later["label"][:1]  # the second annotator drew the garbage only
    _text(export, json.dumps([later, rows[0]]))
    assert main([*import_argv(export, tmp_path), "--labelled", "garbage,car"]) == 0
    assert "1 older annotation(s) of a task skipped (the one saved last counts)" in capsys.readouterr().out
    entry = Dataset.open("bureau", tmp_path / "datasets").images[file_sha256(images[0])]
    assert [name for name, *_ in entry["labels"]] == ["garbage"]


@pytest.mark.parametrize(
    ("make", "where"),
    [
        (
            lambda r: labelstudio_json(r, [*(ls_region(n, b) for n, b in BOXES), BRUSH, CHOICE]),
            "tasks[0] (id 11).annotations[1].result: objects drawn as brushlabels beside its boxes",
        ),
        (
            lambda r: _min_rows(r, {"kp": [KEYPOINT["value"]]}, True),
            "[0] (id 21).label: objects drawn as keypointlabels beside its boxes",
        ),
        (
            lambda r: coco_zip(r, edit=lambda c: c["annotations"][1].update(bbox=[], segmentation=RLE)),
            "images[0]: objects drawn as segmentation beside its boxes",
        ),
    ],
    ids=["labelstudio brush", "JSON-MIN keypoint", "coco mask without bbox"],
)
def test_an_object_drawn_as_other_than_a_box_beside_boxes_is_a_problem(
    make: Callable[[Path], tuple[Path, list[Path]]], where: str, tmp_path: Path
) -> None:
    """Imported with its boxes only, the image taught the brushed object as background of its class."""
    export, images = make(tmp_path)
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    _, problems = import_export(export, dataset, finder_for(tmp_path), skip_invalid=True, at=AT)
    assert [str(p) for p in problems if where in str(p)], problems
    assert file_sha256(images[0]) not in dataset.images  # not with its boxes and without the object


# --- polygons: annotators draw them; the detector takes their enclosing boxes ---------------------

# pixel points on the 200x120 photos: the car's polygon runs past the right edge (x 215)
POLYGONS = [
    ("garbage", [(10.0, 20.0), (70.0, 24.0), (65.0, 100.0), (15.0, 90.0)]),
    ("car", [(110.0, 30.0), (215.0, 40.0), (190.0, 90.0), (120.0, 85.0)]),
]
POLYGON_BOXES = [["garbage", 10.0, 20.0, 70.0, 100.0], ["car", 110.0, 30.0, 200.0, 90.0]]  # the car's clipped


def ls_polygon(name: str, points: list[tuple[float, float]]) -> dict[str, Any]:
    """A polygonlabels result as Label Studio 1.23.2 exports it (percent points)."""
    return {
        "original_width": WIDTH,
        "original_height": HEIGHT,
        "image_rotation": 0,
        "value": {
            "points": [[100 * x / WIDTH, 100 * y / HEIGHT] for x, y in points],
            "closed": True,
            "polygonlabels": [name],
        },
        "id": f"p-{name}",
        "from_name": "label",
        "to_name": "image",
        "type": "polygonlabels",
        "origin": "manual",
    }


def yolo_segments(names: list[str]) -> str:
    """YOLO segmentation lines (`class x1 y1 x2 y2 ...`, normalised), as Label Studio's YOLO export
    and CVAT's "Ultralytics YOLO Segmentation 1.0" write a polygon."""
    return "".join(
        " ".join([str(names.index(n)), *(f"{x / WIDTH:g} {y / HEIGHT:g}" for x, y in points)]) + "\n"
        for n, points in POLYGONS
    )


def _coco_polygons(coco: dict[str, Any]) -> None:
    """COCO annotations with only their polygons (`segmentation`), no `bbox`."""
    for annotation, (_, points) in zip(coco["annotations"], POLYGONS, strict=True):
        annotation.update(bbox=[], segmentation=[[v for point in points for v in point]])


def _min_polygons(root: Path) -> tuple[Path, list[Path]]:
    path, images = labelstudio_min(root)
    rows = json.loads(path.read_text(encoding="utf-8"))
    rows[0]["label"] = [  # JSON-MIN: the value with the image size, no type
        {"original_width": WIDTH, "original_height": HEIGHT, **ls_polygon(n, p)["value"]} for n, p in POLYGONS
    ]
    return _text(path, json.dumps(rows)), images


POLYGON_EXPORTS = {
    "labelstudio-json": lambda r: labelstudio_json(r, [ls_polygon(n, p) for n, p in POLYGONS]),
    "labelstudio-min": _min_polygons,
    "labelstudio-yolo": lambda r: labelstudio_yolo_zip(r, yolo_segments(["car", "garbage"])),
    "cvat-yolo": lambda r: cvat_yolo_zip(r, yolo_segments(["garbage", "car", "tree"])),
    "coco": lambda r: coco_zip(r, edit=_coco_polygons),
}


@pytest.mark.parametrize("kind", list(POLYGON_EXPORTS))
def test_polygons_come_in_as_their_enclosing_boxes_clipped_to_the_photo(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An export of polygons only was "1 image(s) with only unsupported results skipped" (exit 0):
    the annotators' work was lost, and through the webhook and the retraining job with only a count.
    A polygon is the box that encloses it, in pixels of the photo, clipped to it where it runs past."""
    export, images = POLYGON_EXPORTS[kind](tmp_path)
    config = _text(tmp_path / "label_config.xml", PROJECT_CONFIG.replace("RectangleLabels", "PolygonLabels"))
    argv = [*import_argv(export, tmp_path), "--label-config", str(config)]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"bureau v1: {len(images)} added" in out and "unsupported" not in out, out
    entry = Dataset.open("bureau", tmp_path / "datasets").images[file_sha256(images[0])]
    assert sorted(entry["labels"]) == sorted(POLYGON_BOXES)
    assert set(entry["labelled"]) >= {"garbage", "car"}


def test_label_studios_coco_zip_of_polygons_comes_in_clipped(tmp_path: Path) -> None:
    """Label Studio's COCO export (`result.json` beside `images/`) was "neither data.yaml ... nor
    annotations/*.json"; its bbox of a polygon that runs past the photo's edge is unclipped (x to 215
    of 200 px here) and was refused as outside the image: the polygon's box is clipped instead."""
    image = write_image(tmp_path / "src" / "street.jpg", 8)
    coco = {  # the layout label_studio_sdk's converter writes (Label Studio 1.23.2, COCO with images)
        "images": [{"width": WIDTH, "height": HEIGHT, "id": 0, "file_name": "images/a22a19c7__street.jpg"}],
        "categories": [{"id": 0, "name": "car"}, {"id": 1, "name": "garbage"}],
        "annotations": [
            {
                "id": i,
                "image_id": 0,
                "category_id": ["car", "garbage"].index(name),
                "segmentation": [[v for point in points for v in point]],
                "bbox": [
                    min(x for x, _ in points),
                    min(y for _, y in points),
                    max(x for x, _ in points) - min(x for x, _ in points),
                    max(y for _, y in points) - min(y for _, y in points),
                ],
                "ignore": 0,
                "iscrowd": 0,
                "area": 1000.0,
            }
            for i, (name, points) in enumerate(POLYGONS)
        ],
        "info": {"year": 2026, "version": "1.0", "description": "", "contributor": "Label Studio"},
    }
    export = tmp_path / "ls-coco.zip"
    with zipfile.ZipFile(export, "w") as zipped:
        zipped.writestr("result.json", json.dumps(coco))
        zipped.write(image, "images/a22a19c7__street.jpg")
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    counts, problems = import_export(export, dataset, finder_for(tmp_path), at=AT)
    assert problems == [] and counts["added"] == 1, problems
    assert sorted(dataset.images[file_sha256(image)]["labels"]) == sorted(POLYGON_BOXES)


def test_a_polygon_beside_boxes_is_a_box_among_them(tmp_path: Path) -> None:
    """A polygon beside boxes refused the image ("objects drawn as polygonlabels beside its boxes")."""
    export, images = labelstudio_json(tmp_path, [ls_region("car", BOXES[1][1]), ls_polygon(*POLYGONS[0])])
    dataset = Dataset.open("bureau", tmp_path / "datasets")
    counts, problems = import_export(export, dataset, finder_for(tmp_path), at=AT)
    assert problems == [] and counts["added"] == 2
    labels = dataset.images[file_sha256(images[0])]["labels"]
    assert sorted(labels) == sorted([POLYGON_BOXES[0], ["car", *BOXES[1][1]]])


def _ls_points(points: list[list[float]]) -> Callable[[Path], tuple[Path, list[Path]]]:
    region = ls_polygon("garbage", [])
    region["value"]["points"] = points
    return lambda r: labelstudio_json(r, [region])


POLYGON_REFUSALS = [
    (
        "labelstudio 2 points",
        _ls_points([[5, 5], [30, 30]]),
        "export.json: tasks[0] (id 11).annotations[1].result[0].value.points: a polygon of 2 point(s): "
        "at least 3 enclose an object",
    ),
    (
        "labelstudio NaN point",
        _ls_points([[5, 5], [30, float("nan")], [10, 30]]),
        "result[0].value.points: expected a finite number, got nan",
    ),
    (
        "labelstudio all points outside",
        _ls_points([[110, 10], [150, 10], [130, 50]]),
        "result[0]: polygon of 3 points around (220, 12, 300, 60) has no point inside the 200x120 image",
    ),
    (
        "yolo 1 point",
        lambda r: cvat_yolo_zip(r, "0 0.5 0.5\n"),
        "cvat.zip/labels/train/frame_000001.txt:1: a polygon of 1 point(s): at least 3 enclose an object",
    ),
    (
        "yolo NaN",
        lambda r: cvat_yolo_zip(r, "0 0.1 0.1 nan 0.2 0.3 0.3\n"),
        "labels/train/frame_000001.txt:1: not finite numbers",
    ),
    (
        "coco all points outside",
        lambda r: coco_zip(
            r, edit=lambda c: c["annotations"][0].update(bbox=[], segmentation=[[300, 10, 350, 10, 320, 60]])
        ),
        "annotations[0]: polygon of 3 points around (300, 10, 350, 60) has no point inside the 200x120 image",
    ),
    (
        "coco 2 points",
        lambda r: coco_zip(
            r, edit=lambda c: c["annotations"][0].update(bbox=[], segmentation=[[1, 1, 9, 9]])
        ),
        "annotations[0].segmentation[0]: a polygon of 2 point(s)",
    ),
]


@pytest.mark.parametrize(("case", "make", "why"), POLYGON_REFUSALS, ids=[c[0] for c in POLYGON_REFUSALS])
def test_a_polygon_that_encloses_nothing_of_the_photo_is_refused_by_name(
    case: str,
    make: Callable[[Path], tuple[Path, list[Path]]],
    why: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    export, _ = make(tmp_path)
    assert main([*import_argv(export, tmp_path), "--labelled", "garbage,car"]) == 1
    err = capsys.readouterr().err
    assert why in err, err
    assert not (tmp_path / "datasets" / "bureau" / "manifest.json").exists()


# --- hostile files at the CLI's door: refused in one line each, nothing written -----------------


def _sparse(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no disk (a 5 GB export, as far as a reader can tell)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.truncate(size)
    return path


def _one_task(root: Path, image: str, task_id: Any = 1) -> Path:
    """A JSON export of one annotated task naming `image`; a photo `a.jpg` lies in the --images
    folder, where a match by file name would find it."""
    write_image(root / "media" / "upload" / "a.jpg", 4)
    region = ls_region("car", (10, 10, 50, 50))
    tasks = [
        {
            "id": task_id,
            "project": 1,
            "data": {"image": image},
            "annotations": [{"id": 1, "result": [region]}],
        }
    ]
    return _text(root / "tasks.json", json.dumps(tasks))


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def _one_box(root: Path, **value: Any) -> Path:
    region = ls_region("car", (10, 10, 50, 50))
    region["value"].update(value)
    return labelstudio_json(root, [region])[0]


def _yolo_folder(root: Path, label: Callable[[Path], object]) -> Path:
    """A CVAT YOLO export as a folder: data.yaml, images/train/a.jpg and its label file."""
    folder = root / "cvat"
    write_image(folder / "images" / "train" / "a.jpg", 5)
    (folder / "labels" / "train").mkdir(parents=True)
    _text(folder / "data.yaml", yaml.safe_dump({"names": ["car"]}))
    label(folder / "labels" / "train" / "a.txt")
    return folder


def _coco(root: Path, file_name: str, image_id: Any = 1, annotations: int = 1) -> Path:
    coco = {
        "images": [{"id": image_id, "file_name": file_name, "width": WIDTH, "height": HEIGHT}],
        "annotations": [
            {"id": i + 1, "image_id": image_id, "category_id": 1, "bbox": [10 + i, 10, 40, 40]}
            for i in range(annotations)
        ],
        "categories": [{"id": 1, "name": "car"}],
    }
    return _text(root / "coco.json", json.dumps(coco))


def _link_out_of_the_images(root: Path) -> Path:
    """A photo outside every allowed folder, linked from inside --images under a photo's name."""
    outside = write_image(root / "outside" / "secret.jpg", 6)
    (root / "media" / "upload").mkdir(parents=True)
    (root / "media" / "upload" / "secret.jpg").symlink_to(outside)
    return _coco(root, "secret.jpg")


# (case, export written under tmp_path, extra argv, settings from the environment, expected in stderr)
HOSTILE_FILES: list[tuple[str, Callable[[Path], Path], list[str], dict[str, str], str]] = [
    (
        "a 5 GB export",  # was read whole into memory
        lambda r: _sparse(r / "big.json", 5 * 2**30),
        [],
        {},
        "big.json: 5,368,709,120 bytes, over the limit of 268,435,456: not read (--max-mb)",
    ),
    (
        "an export over the setting",
        lambda r: _sparse(r / "big.json", 2 * 2**20),
        [],
        {"STREETORDER_ANNOTATION_IMPORT_MAX_MB": "1"},
        "big.json: 2,097,152 bytes, over the limit of 1,048,576: not read",
    ),
    (
        "an export over --max-mb",
        lambda r: _sparse(r / "big.json", 2 * 2**20),
        ["--max-mb", "1.5"],
        {},
        "big.json: 2,097,152 bytes, over the limit of 1,572,864: not read",
    ),
    (
        "a hundred thousand and one tasks",  # each was read and named: 100,001 lines of problems
        lambda r: _text(r / "many.json", json.dumps([{"data": {}}] * 100_001)),
        [],
        {},
        "many.json: 100,001 tasks, over the limit of 100,000 (--max-items)",
    ),
    (
        "COCO annotations over the setting",
        lambda r: _coco(r, "a.jpg", annotations=6),
        [],
        {"STREETORDER_ANNOTATION_IMPORT_MAX_ITEMS": "5"},
        "coco.json: annotations: 6 annotations, over the limit of 5 (--max-items)",
    ),
    (
        "a box of a million numbers",  # the problem line wrote the whole list out
        lambda r: _one_box(r, x=[0] * 1_000_000),
        [],
        {},
        "result[0].value.x: expected a finite number, got [0, 0, 0, 0, 0, 0, ...]",
    ),
    (
        "a box nested 500 deep",
        lambda r: _one_box(r, y=_nested(500)),
        [],
        {},
        "result[0].value.y: expected a finite number, got [[[[...]]]]",
    ),
    (
        "a YOLO label file over the setting",  # was read whole, as one line of 2 MB
        lambda r: _yolo_folder(r, lambda p: _sparse(p, 2 * 2**20)),
        [],
        {"STREETORDER_ANNOTATION_IMPORT_MAX_MB": "1"},
        "a.txt: 2,097,152 bytes, over the limit of 1,048,576: not read (--max-mb)",
    ),
    (
        "a YOLO label file of more lines than the setting",
        lambda r: _yolo_folder(r, lambda p: _text(p, "0 0.5 0.5 0.1 0.1\n" * 11)),
        [],
        {"STREETORDER_ANNOTATION_IMPORT_MAX_ITEMS": "10"},
        "a.txt: 11 lines, over the limit of 10 (--max-items)",
    ),
    (
        "a COCO image out of the folders",  # was 'image not found', after a look by file name
        lambda r: _coco(r, "../../etc/passwd"),
        [],
        {},
        "coco.json: images[0]: '../../etc/passwd': leaves the allowed folder",
    ),
    (
        "a COCO image linked out of --images",  # the link's target outside was imported
        _link_out_of_the_images,
        [],
        {},
        "coco.json: images[0]: 'secret.jpg': image not found",
    ),
    (
        "a Label Studio image on another server",  # matched by file name to the local a.jpg: imported
        lambda r: _one_task(r, "http://elsewhere.example/photos/a.jpg"),
        [],
        {},
        "'http://elsewhere.example/photos/a.jpg': an image on another server (elsewhere.example)",
    ),
    (
        "a Label Studio image as a data: URI",
        lambda r: _one_task(r, "data:image/jpeg;base64,/9j/4AAQSkZJRg=="),
        [],
        {},
        "an image inside the export (a data: URI) is not read",
    ),
    (
        "a Label Studio image as a file: URL",  # matched by file name to the local a.jpg: imported
        lambda r: _one_task(r, "file:///srv/photos/a.jpg"),
        [],
        {},
        "'file:///srv/photos/a.jpg': a file: URL is no image of Label Studio's",
    ),
    (
        "a task id of 100 digits",  # no database holds it: imported
        lambda r: _one_task(r, "a.jpg", int("9" * 100)),
        [],
        {},
        "tasks.json: tasks[0] (id 9999",
    ),
    (
        "a COCO image id of 100 digits",
        lambda r: _coco(r, "a.jpg", image_id=int("9" * 100)),
        [],
        {},
        "coco.json: images[0].id: 9999",
    ),
]


@pytest.mark.parametrize(
    ("case", "make", "extra", "env", "expected"), HOSTILE_FILES, ids=[h[0] for h in HOSTILE_FILES]
)
def test_a_hostile_export_is_refused_in_short_lines_and_nothing_is_written(
    case: str,
    make: Callable[[Path], Path],
    extra: list[str],
    env: dict[str, str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from serve.cases.settings import get_settings

    export = make(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        code = main([*import_argv(export, tmp_path), "--labelled", "car", *extra])
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert code == 1 and expected in err, err[:2000]
    assert "Traceback" not in err and max(map(len, err.splitlines())) < 400  # short lines
    assert len(err.splitlines()) <= 3  # the problem, and for a per-item refusal the summary
    assert not (tmp_path / "datasets").exists()  # all or nothing: nothing written


def _write_to_pipe(fifo: Path) -> None:
    with contextlib.suppress(OSError):  # the test's reader opened it only to let this writer go
        fifo.write_text("[]")


def test_a_device_or_a_pipe_as_the_export_is_refused_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """/dev/zero was read for ever (memory until the machine gave up); a FIFO blocked the import
    until something wrote to it, and was then read as the export."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    argv = [sys.executable, "-m", "serve.cli", *import_argv(Path("/dev/zero"), tmp_path), "--labelled", "car"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 1, done.stderr[-2000:]
    assert (
        done.stderr.strip() == "data import: /dev/zero: not a regular file (a pipe, socket, device): not read"
    )

    fifo = tmp_path / "export.json"
    os.mkfifo(fifo)
    writer = threading.Thread(target=_write_to_pipe, args=(fifo,), daemon=True)
    writer.start()  # blocks until a reader opens the pipe: without one, it waits
    try:
        assert main([*import_argv(fifo, tmp_path), "--labelled", "car"]) == 1
        assert "export.json: not a regular file" in capsys.readouterr().err
    finally:
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # lets the writer go
        writer.join(10)
    assert not (tmp_path / "datasets").exists()
