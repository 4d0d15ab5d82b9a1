"""Readers of what annotators export: Label Studio JSON, JSON-MIN and YOLO, CVAT "Ultralytics YOLO
Detection" and "COCO 1.0" (a file, a folder or a zip). They keep boxes as written (`RawBox`) and
collect problems; checking against images and the taxonomy is vision/data/annotations/validate.py."""

from __future__ import annotations

import codecs
import errno
import json
import math
import re
import stat
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from tqdm import tqdm

from vision.core.files import read_regular_file
from vision.core.yamlfile import yaml_problem
from vision.data.annotations.images import inside
from vision.data.annotations.label_config import box_labels
from vision.data.annotations.records import (
    AnnotationError,
    Problem,
    RawBox,
    RawSample,
    ReadExport,
    is_id,
    lone_surrogate,
    shown,
)
from vision.data.datamix import IMAGE_SUFFIXES

FORMATS = ("auto", "labelstudio-json", "labelstudio-min", "labelstudio-yolo", "cvat-yolo", "coco")
MAX_ARCHIVE_BYTES = 20 * 2**30
BOX_KINDS = ("rectanglelabels", "polygonlabels")  # Label Studio results read as boxes
LONE_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # only such an escape gives one: a cheap first look


@dataclass(frozen=True)
class Limits:
    """How much one import reads (the settings `annotation_import_max_mb` and `_max_items`, the
    flags `--max-mb` and `--max-items`): every file it reads whole (an export's JSON, a label file,
    an image) has at most `max_bytes`, every list of an export (tasks, rows, COCO images and
    annotations, a label file's lines, a folder's images) at most `max_items`. Without them a 5 GB
    export or /dev/zero was read whole into memory, and a list of a million tasks printed a million
    problems."""

    max_bytes: int = 256 * 2**20
    max_items: int = 100_000

    def count(self, items: Sized, what: str, where: str) -> None:
        if len(items) > self.max_items:
            raise AnnotationError(
                where, f"{len(items):,} {what}, over the limit of {self.max_items:,} (--max-items)"
            )


DEFAULT_LIMITS = Limits()


def read_text(path: Path, max_bytes: int | None = None) -> str:
    """An export's text file; one that is not UTF-8, over `max_bytes`, or no regular file (a pipe,
    a device: read for ever) is a problem of the export, not a crash or a hang."""
    try:
        data = read_regular_file(path, max_bytes)
    except OSError as err:
        limit = " (--max-mb)" if err.errno == errno.EFBIG else ""
        raise AnnotationError(f"{path}", f"{err.strerror or err}{limit}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Notepad's "Unicode"
            why = 'a UTF-16 byte order mark, as Notepad\'s "Unicode" writes: save it as UTF-8'
        else:
            why = str(err.reason)
        raise AnnotationError(f"{path}", f"not UTF-8 text (byte {err.start}: {why})") from err
    if "\x00" in text:  # valid UTF-8, but no export's: UTF-16 without its byte order mark
        why = "NUL characters: UTF-16 text without a byte order mark? save it as UTF-8"
        raise AnnotationError(f"{path}", why)
    return text


def load_json(path: Path, max_bytes: int | None = None) -> Any:
    text = read_text(path, max_bytes)
    if not text.strip():
        raise AnnotationError(f"{path}", "empty file")
    if text.lstrip().startswith("<"):
        raise AnnotationError(
            f"{path}",
            "XML, not JSON: Pascal VOC and CVAT XML are not read (export COCO 1.0 or Ultralytics YOLO "
            "Detection from CVAT, JSON from Label Studio)",
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        # a download or copy not finished: a syntax error at its end, or a string never closed
        ended = err.pos >= len(text.rstrip()) or err.msg.startswith("Unterminated string")
        cut = "; the file ends before its JSON does (cut short?)" if ended else ""
        raise AnnotationError(
            f"{path}:{err.lineno}", f"not valid JSON: {err.msg} (column {err.colno}){cut}"
        ) from err
    except RecursionError:  # `[[[[...` thousands deep: Python's reader gives up, no export nests so
        raise AnnotationError(f"{path}", "JSON nested too deeply to be an export") from None
    except ValueError:  # a number of over 4300 digits (an id): Python refuses to convert it
        limit = sys.get_int_max_str_digits()
        raise AnnotationError(f"{path}", f"a number of more than {limit} digits") from None
    if LONE_SURROGATE_ESCAPE.search(text) and (field := lone_surrogate(data)):
        raise AnnotationError(f"{path}: {field}", "a \\uD800-\\uDFFF escape that is half a character")
    return data


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AnnotationError(f"{where}", f"expected a finite number, got {shown(value)}")
    return float(value)


def _region_boxes(value: dict[str, Any], kind: str, at: str, where: str) -> list[RawBox]:
    """The percent boxes of one Label Studio rectangle or polygon value (at `where`) of the result
    at `at`, one per label."""
    labels = value.get(kind)
    if not isinstance(labels, list) or not labels or not all(isinstance(v, str) for v in labels):
        message = f"expected a list of label names, got {shown(labels)}"
        raise AnnotationError(f"{where}.{kind}", message)
    if kind == "polygonlabels":
        points = polygon_points(value.get("points"), f"{where}.points")
        return [polygon_box(label, points, "percent", at) for label in labels]
    coords = tuple(_number(value.get(k), f"{where}.{k}") for k in ("x", "y", "width", "height"))
    rotation = _number(value.get("rotation", 0), f"{where}.rotation")
    box = (coords[0], coords[1], coords[2], coords[3])
    return [RawBox(label, box, "percent", at, rotation) for label in labels]


MIN_POLYGON_POINTS = 3


def polygon_points(values: Any, where: str) -> tuple[tuple[float, float], ...]:
    """A polygon's points, written `[[x, y], ...]` (Label Studio) or `[x1, y1, x2, y2, ...]` (YOLO,
    COCO). Fewer than 3 points enclose no object, and a NaN point no box: both are refused."""
    if isinstance(values, list) and values and all(isinstance(p, list) for p in values):
        if any(len(p) != 2 for p in values):
            raise AnnotationError(where, f"expected points as [x, y] pairs, got {shown(values)}")
        pairs = [(p[0], p[1]) for p in values]
    elif isinstance(values, list) and len(values) % 2 == 0:
        pairs = list(zip(values[::2], values[1::2], strict=True))
    else:
        raise AnnotationError(where, f"expected the polygon's points, got {shown(values)}")
    points = tuple((_number(x, where), _number(y, where)) for x, y in pairs)
    if len(points) < MIN_POLYGON_POINTS:
        raise AnnotationError(
            where, f"a polygon of {len(points)} point(s): at least {MIN_POLYGON_POINTS} enclose an object"
        )
    return points


def polygon_box(label: str, points: tuple[tuple[float, float], ...], unit: str, where: str) -> RawBox:
    """A polygon as the box that encloses it, in the export's own unit (the detector takes boxes,
    as ultralytics makes a segment's box); its points stay for clipping to the photo."""
    xs, ys = [x for x, _ in points], [y for _, y in points]
    x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
    if unit == "yolo":
        coords = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    else:
        coords = (x1, y1, x2 - x1, y2 - y1)
    return RawBox(label, coords, unit, where, points=points)


def _size(
    region: dict[str, Any], where: str, keys: tuple[str, str] = ("original_width", "original_height")
) -> tuple[int, int] | None:
    """The image size an export declares, or None where it declares none; a size that no image
    has (0, negative, NaN: one the aspect check would divide by or cannot round) is refused."""
    width, height = region.get(keys[0]), region.get(keys[1])
    if width is None and height is None:
        return None
    size = (_number(width, f"{where}.{keys[0]}"), _number(height, f"{where}.{keys[1]}"))
    if min(size) < 1:
        raise AnnotationError(where, f"image size {shown(width)} x {shown(height)}: not a size an image has")
    return round(size[0]), round(size[1])


def image_of_task(data: dict[str, Any], where: str) -> str:
    for key in ("image", "img", "photo", "url"):
        if isinstance(data.get(key), str):
            return str(data[key])
    for value in data.values():
        if isinstance(value, str) and (
            value.startswith("/data/") or Path(urlsplit(value).path).suffix.lower() in IMAGE_SUFFIXES
        ):
            return value
    raise AnnotationError(f"{where}", f"no image URL in the task data (keys: {', '.join(data) or 'none'})")


def _result_type(region: dict[str, Any], value: Any) -> str:
    """The kind of a result that is no box: Label Studio's `type`, or for JSON-MIN (which drops it)
    the key its value is under (`keypointlabels`, `polygonlabels`, `choices`, ...)."""
    if isinstance(region.get("type"), str):
        return str(region["type"])
    keys = list(value) if isinstance(value, dict) else []
    labels = [k for k in keys if k.endswith("labels")]  # `polygonlabels` says more than its `points`
    return next(iter(labels + [k for k in keys if k in ("choices", "text", "points")]), "unknown")


def result_boxes(
    regions: list[Any],
    where: str,
    problems: list[Problem],
    declared: list[tuple[int, int]],
    unsupported: Counter[str],
) -> list[RawBox]:
    """The boxes of one annotation's results, a polygon's being the box that encloses it; results
    of other controls (choices, text, keypoints, brushes, ellipses) are counted in `unsupported` by
    type, never read as "no box here"."""
    boxes: list[RawBox] = []
    for index, region in enumerate(regions):
        at = f"{where}[{index}]"
        if not isinstance(region, dict):
            problems.append(Problem(at, f"expected an object, got {type(region).__name__}"))
            continue
        value = region.get("value", region)  # full JSON nests it in value, JSON-MIN does not
        kind = region.get("type")
        if kind is None and isinstance(value, dict):  # JSON-MIN drops the type: known by its key
            kind = next((k for k in BOX_KINDS if k in value), None)
        if kind not in BOX_KINDS:
            unsupported[_result_type(region, value)] += 1
            continue
        if not isinstance(value, dict):  # a region of boxes whose box is missing: never dropped unsaid
            problems.append(Problem(f"{at}.value", f"expected the box object, got {shown(value)}"))
            continue
        try:
            size = _size(region, at) or _size(value, at + (".value" if "value" in region else ""))
            boxes += _region_boxes(value, str(kind), at, at + (".value" if "value" in region else ""))
        except AnnotationError as err:
            problems.append(err.problem())
            continue
        if size:
            declared.append(size)
    return boxes


def _annotated(
    export: ReadExport, regions: list[Any], at: str, declared: list[tuple[int, int]]
) -> tuple[list[RawBox], bool] | None:
    """The boxes of one annotation and whether a region was refused; None when its results are all
    of other controls (a "rejected" choice, a keypoint): such an image is skipped and counted,
    never taken as one with nothing on it."""
    before, other = len(export.problems), Counter[str]()
    boxes = result_boxes(regions, at, export.problems, declared, other)
    export.unsupported.update(other)
    if boxes and (objects := sorted(kind for kind in other if is_object_kind(kind))):
        export.problems.append(Problem(at, beside_boxes(objects)))
    broken = len(export.problems) > before
    if not boxes and other and not broken:
        export.unsupported_only += 1
        return None
    return boxes, broken


def is_object_kind(kind: str) -> bool:
    """Whether results of this kind mark objects (polygons, keypoints, masks), not say something
    of the whole image (choices, text)."""
    return kind.endswith("labels") or kind in ("segmentation", "polygon", "keypoint", "brush", "points")


def beside_boxes(kinds: list[str]) -> str:
    return (
        f"objects drawn as {', '.join(kinds)} beside its boxes: only boxes are read, and the image's "
        "boxes alone would teach those objects as background (draw them as rectangles)"
    )


def read_labelstudio_json(path: Path, limits: Limits = DEFAULT_LIMITS) -> ReadExport:
    """Label Studio's JSON export: tasks with `data` and `annotations[].result[]`; the latest
    annotation that was not cancelled counts. A task that carries its project's `label_config`
    (the annotations inbox keeps it) says what its annotators could label; else its `project`
    lets the importer find that config."""
    tasks = load_json(path, limits.max_bytes)
    if not isinstance(tasks, list):
        raise AnnotationError(f"{path}", "a Label Studio JSON export is a list of tasks")
    limits.count(tasks, "tasks", f"{path}")
    export = ReadExport("labelstudio-json", [])
    seen: dict[tuple[str, str], str] = {}
    for index, task in enumerate(
        tqdm(tasks, desc=f"read {path.name}", file=sys.stderr, disable=len(tasks) < 500)
    ):
        where = f"{path}: tasks[{index}]" + (
            f" (id {task.get('id')})" if isinstance(task, dict) and "id" in task else ""
        )
        try:
            if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
                raise AnnotationError(f"{where}.data", "a task needs a data object")
            image = image_of_task(task["data"], f"{where}.data")
            if "id" in task and not is_id(task["id"]):
                raise AnnotationError(f"{where}.id", not_an_id(task["id"]))
            annotations = task.get("annotations") or task.get("completions") or []
            if not isinstance(annotations, list):
                raise AnnotationError(f"{where}.annotations", "expected a list")
        except AnnotationError as err:
            export.problems.append(err.problem())
            continue
        if "id" in task:  # two exports pasted together: which of the two is the task's annotation?
            key = (str(task.get("project")), str(task["id"]))
            if key in seen:
                export.problems.append(
                    Problem(where, f"task id {shown(task['id'])} is given twice (also {seen[key]})")
                )
                continue
            seen[key] = f"tasks[{index}]"
        kept = [
            (i, a) for i, a in enumerate(annotations) if isinstance(a, dict) and not a.get("was_cancelled")
        ]
        if not kept:
            export.unlabelled += 1
            continue
        # two annotators on one task: the annotation saved last counts, the others are counted
        number, annotation = max(kept, key=lambda item: (str(item[1].get("updated_at") or ""), item[0]))
        export.superseded += len(kept) - 1
        result = annotation.get("result")
        at = f"{where}.annotations[{number}].result"
        if not isinstance(result, list):
            export.problems.append(Problem(at, "expected a list of regions"))
            continue
        declared: list[tuple[int, int]] = []
        read = _annotated(export, result, at, declared)
        if read is None:
            continue
        boxes, broken = read
        config = task.get("label_config")
        try:
            offered = box_labels(config) if isinstance(config, str) else None
        except AnnotationError as err:
            export.problems.append(Problem(f"{where}.label_config", err.message))
            continue
        project = task.get("project")
        export.samples.append(
            RawSample(
                image,
                boxes,
                where,
                path.parent,
                declared[0] if declared else None,
                offered,
                None if project is None else str(project),
                confirmed_empty=not result,
                broken=broken,
            )
        )
    return export


def read_labelstudio_min(path: Path, limits: Limits = DEFAULT_LIMITS) -> ReadExport:
    """Label Studio's JSON-MIN export: one flat object per annotated task, boxes under the
    control's name (usually `label`), image under the data key (usually `image`)."""
    rows = load_json(path, limits.max_bytes)
    if not isinstance(rows, list):
        raise AnnotationError(f"{path}", "a JSON-MIN export is a list of objects")
    limits.count(rows, "rows", f"{path}")
    export = ReadExport("labelstudio-min", [])
    meta = {"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time"}
    latest: dict[str, int] = {}  # one row per annotation: two annotators' rows of one task
    for index, row in enumerate(rows):
        if isinstance(row, dict) and "id" in row and "annotation_id" in row:
            key = str(row["id"])
            if key not in latest or str(row.get("updated_at") or "") >= str(
                rows[latest[key]].get("updated_at") or ""
            ):
                latest[key] = index
    for index, row in enumerate(rows):
        where = f"{path}: [{index}]" + (
            f" (id {row.get('id')})" if isinstance(row, dict) and "id" in row else ""
        )
        if not isinstance(row, dict):
            export.problems.append(Problem(where, "expected an object"))
            continue
        if "id" in row and "annotation_id" in row and latest[str(row["id"])] != index:
            export.superseded += 1  # the task's annotation saved last counts
            continue
        regions_key = next(
            (
                k
                for k, v in row.items()
                if isinstance(v, list) and any(isinstance(r, dict) and "rectanglelabels" in r for r in v)
            ),
            None,
        )
        try:
            image = image_of_task({k: v for k, v in row.items() if k not in meta}, where)
        except AnnotationError as err:
            export.problems.append(err.problem())
            continue
        # other controls' results JSON-MIN writes as objects (keypoints, polygons, `{"choices": [...]}`);
        # a single choice or text is plain text there, like the task's data, and cannot be told apart
        others = [
            (key, value)
            for key, value in row.items()
            if key != regions_key and key not in meta and _result_shaped(value)
        ]
        results: list[Any] = [r for _, v in others for r in (v if isinstance(v, list) else [v])]
        if regions_key is None and not results:
            if "annotation_id" in row or "annotator" in row:  # annotated, with no box drawn
                export.samples.append(RawSample(image, [], where, path.parent))
            else:
                export.unlabelled += 1
            continue
        declared: list[tuple[int, int]] = []
        regions_at = f"{where}.{regions_key or others[0][0]}"
        read = _annotated(
            export, [*(row[regions_key] if regions_key else []), *results], regions_at, declared
        )
        if read is not None:
            boxes, broken = read
            export.samples.append(
                RawSample(image, boxes, where, path.parent, declared[0] if declared else None, broken=broken)
            )
    return export


def _result_shaped(value: Any) -> bool:
    """Whether a JSON-MIN value is a result of a control (objects with a `...labels`, `choices`,
    `text` or `points` key), not task data."""
    items = value if isinstance(value, list) else [value]
    return bool(items) and all(
        isinstance(item, dict)
        and any(k.endswith("labels") or k in ("choices", "text", "points") for k in item)
        for item in items
    )


def read_yolo_folder(
    root: Path, names: list[str], format_name: str, limits: Limits = DEFAULT_LIMITS
) -> ReadExport:
    """Images with YOLO label files beside them (`labels/` mirrors `images/`): CVAT's Ultralytics
    YOLO and Label Studio's YOLO exports. An image without a label file is unlabelled."""
    export = ReadExport(format_name, [])
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    limits.count(images, "images", f"{root}")
    label_files = {p.resolve() for p in root.rglob("*.txt") if "labels" in p.relative_to(root).parts}
    used: set[Path] = set()
    for image in images:
        relative = image.relative_to(root)
        parts = list(relative.parts)
        if "images" in parts:
            parts[parts.index("images")] = "labels"
        else:
            parts.insert(0, "labels")
        label = (root / Path(*parts)).with_suffix(".txt")
        if not label.exists():
            export.unlabelled += 1
            continue
        used.add(label.resolve())
        boxes = []
        try:
            text = read_text(label, limits.max_bytes)
            lines = text.splitlines()
            limits.count(lines, "lines", f"{label}")
        except AnnotationError as err:
            export.problems.append(err.problem())
            continue
        before = len(export.problems)
        for number, line in enumerate(lines, 1):
            fields = line.split()
            if not fields:
                continue
            at = f"{label}:{number}"
            if len(fields) % 2 == 0:  # a box has 5 fields, a polygon (a segmentation export) 1 + 2n
                why = (
                    "expected 'class cx cy w h' (5 fields) or a polygon 'class x1 y1 x2 y2 x3 y3 ...', "
                    f"got {len(fields)}: {shown(line)}"
                )
                export.problems.append(Problem(at, why))
                continue
            try:
                class_id = int(fields[0])
                values = [float(v) for v in fields[1:]]
            except ValueError:
                export.problems.append(Problem(at, f"not numbers: {shown(line)}"))
                continue
            if not all(math.isfinite(v) for v in values):
                export.problems.append(Problem(at, f"not finite numbers: {shown(line)}"))
                continue
            if not 0 <= class_id < len(names):
                export.problems.append(
                    Problem(at, f"class {class_id} is not in the export's {len(names)} class names")
                )
                continue
            if len(values) == 4:
                boxes.append(
                    RawBox(names[class_id], (values[0], values[1], values[2], values[3]), "yolo", at)
                )
                continue
            try:
                boxes.append(polygon_box(names[class_id], polygon_points(values, at), "yolo", at))
            except AnnotationError as err:
                export.problems.append(err.problem())
        export.samples.append(
            RawSample(
                relative.as_posix(),
                boxes,
                str(label),
                root,
                labelled=tuple(names),
                broken=len(export.problems) > before,  # a line refused: its box would be taught as background
            )
        )
    for orphan in sorted(label_files - used):
        export.problems.append(Problem(str(orphan), "label file without an image"))
    return export


def read_cvat_yolo(root: Path, limits: Limits = DEFAULT_LIMITS) -> ReadExport:
    data_yaml = root / "data.yaml"
    try:
        data = yaml.safe_load(read_text(data_yaml, limits.max_bytes))
    except yaml.YAMLError as err:
        raise AnnotationError(f"{data_yaml}", f"not valid YAML: {yaml_problem(err)}") from err
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        try:
            names = [str(names[k]) for k in sorted(names, key=int)]
        except (TypeError, ValueError):
            message = f"names: keys must be class numbers, got {shown(names)}"
            raise AnnotationError(f"{data_yaml}", message) from None
    if not isinstance(names, list) or not names:
        raise AnnotationError(f"{data_yaml}", "names: expected the class names")
    return read_yolo_folder(root, [str(n) for n in names], "cvat-yolo", limits)


def read_labelstudio_yolo(root: Path, limits: Limits = DEFAULT_LIMITS) -> ReadExport:
    classes = root / "classes.txt"
    names = [line.strip() for line in read_text(classes, limits.max_bytes).splitlines() if line.strip()]
    if not names:
        raise AnnotationError(f"{classes}", "empty file (no class names)")
    return read_yolo_folder(root, names, "labelstudio-yolo", limits)


def read_coco(path: Path, limits: Limits = DEFAULT_LIMITS) -> ReadExport:
    """COCO 1.0 (CVAT's and Label Studio's COCO exports): `images`, `categories`, `annotations`
    with pixel `bbox`, or `segmentation` polygons (read as the boxes that enclose them)."""
    coco = load_json(path, limits.max_bytes)
    if not isinstance(coco, dict) or not all(
        isinstance(coco.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise AnnotationError(f"{path}", "a COCO file needs lists 'images', 'annotations' and 'categories'")
    for part in ("images", "annotations", "categories"):
        limits.count(coco[part], part, f"{path}: {part}")
    export = ReadExport("coco", [])
    categories: dict[int | str, str] = {}
    for index, category in enumerate(coco["categories"]):
        if isinstance(category, dict):
            try:
                key = _coco_id(category.get("id"), f"{path}: categories[{index}].id", categories)
            except AnnotationError as err:
                export.problems.append(err.problem())
                continue
            categories[key] = str(category.get("name"))
    root = path.parent.parent if path.parent.name == "annotations" else path.parent
    root = root / "images" if (root / "images").is_dir() else root  # CVAT puts images beside annotations/
    images: dict[int | str, RawSample] = {}
    refused: set[int | str] = set()  # images named as a problem already: their boxes say no more
    for index, image in enumerate(coco["images"]):
        where = f"{path}: images[{index}]"
        if not isinstance(image, dict) or not isinstance(image.get("file_name"), str):
            export.problems.append(Problem(where, "an image needs a file_name"))
            continue
        try:
            key = _coco_id(image.get("id"), f"{where}.id", images)
        except AnnotationError as err:
            export.problems.append(err.problem())
            continue
        try:
            size = _size(image, where, ("width", "height"))
        except AnnotationError as err:
            export.problems.append(err.problem())
            refused.add(key)
            continue
        images[key] = RawSample(image["file_name"], [], where, root, size, tuple(categories.values()))
    segmented: set[str] = set()  # images (by where) with a segmentation-only annotation
    for index, annotation in enumerate(coco["annotations"]):
        where = f"{path}: annotations[{index}]"
        if not isinstance(annotation, dict):
            export.problems.append(Problem(where, "expected an object"))
            continue
        image_id, category_id = annotation.get("image_id"), annotation.get("category_id")
        if not isinstance(image_id, int | str):  # a list or an object is no id: no image has it
            image_id = None
        elif image_id in refused:
            continue
        sample = images.get(image_id) if image_id is not None else None
        if sample is None:
            export.problems.append(Problem(f"{where}.image_id", _unknown(annotation, "image_id")))
            continue
        name = categories.get(category_id) if isinstance(category_id, int | str) else None
        if name is None:
            export.problems.append(Problem(f"{where}.category_id", _unknown(annotation, "category_id")))
            sample.broken = True  # its other boxes are no whole annotation of the image
            continue
        bbox = annotation.get("bbox")
        segmentation = annotation.get("segmentation")
        # polygons: their box, clipped to the photo (Label Studio writes the bbox of a polygon that
        # runs past the edge unclipped, x up to 704 of a 640 px photo: refused as outside the image)
        if isinstance(segmentation, list) and segmentation:
            parts = segmentation if all(isinstance(p, list) for p in segmentation) else [segmentation]
            try:
                points = tuple(
                    p
                    for i, part in enumerate(parts)
                    for p in polygon_points(part, f"{where}.segmentation[{i}]")
                )
            except AnnotationError as err:
                export.problems.append(err.problem())
                sample.broken = True
                continue
            sample.boxes.append(polygon_box(name, points, "coco", where))
            continue
        if bbox in (None, []) and segmentation:  # a mask (run-length encoded) without its box
            export.unsupported["segmentation"] += 1
            segmented.add(sample.where)
            continue
        if not isinstance(bbox, list) or len(bbox) != 4:
            message = f"expected [x, y, width, height], got {shown(bbox)}"
            export.problems.append(Problem(f"{where}.bbox", message))
            sample.broken = True
            continue
        try:
            coords = tuple(_number(v, f"{where}.bbox") for v in bbox)
        except AnnotationError as err:
            export.problems.append(err.problem())
            sample.broken = True
            continue
        attributes = annotation.get("attributes")
        try:
            rotation = _number(
                attributes.get("rotation", 0) if isinstance(attributes, dict) else 0,
                f"{where}.attributes.rotation",
            )
        except AnnotationError as err:
            export.problems.append(err.problem())
            sample.broken = True
            continue
        box = (coords[0], coords[1], coords[2], coords[3])
        sample.boxes.append(RawBox(name, box, "coco", where, rotation))
    export.samples = []
    for sample in images.values():
        if sample.where in segmented and sample.boxes:
            export.problems.append(Problem(sample.where, beside_boxes(["segmentation"])))
            sample.broken = True
        if sample.where in segmented and not sample.boxes and not sample.broken:  # never "nothing here"
            export.unsupported_only += 1
        else:
            export.samples.append(sample)
    return export


def _unknown(annotation: dict[str, Any], key: str) -> str:
    """Why a COCO annotation's image or category is none of the file's: a box without the key was
    told "no category None", as if a category were named None."""
    noun = key.removesuffix("_id")
    if key not in annotation:
        return f"no {key}: the box names no {noun}"
    return f"no {'image with id' if noun == 'image' else noun} {shown(annotation[key])}"


def _coco_id(value: Any, where: str, taken: dict[int | str, Any]) -> int | str:
    """A COCO image or category id: a number or a string, given once (a second image with the
    same id would silently take the first one's place, and its boxes)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise AnnotationError(where, f"expected a number or a string, got {shown(value)}")
    if not is_id(value):
        raise AnnotationError(where, not_an_id(value))
    if value in taken:
        raise AnnotationError(where, f"id {shown(value)} is given twice")
    return value


def not_an_id(value: Any) -> str:
    return f"{shown(value)} is no id (a number below 2**63, or a text of at most 100 characters)"


def coco_files(folder: Path) -> list[Path]:
    """The COCO files of an export folder: CVAT's `annotations/instances_*.json`, or Label Studio's
    `result.json` (its COCO export, with the images under `images/`)."""
    files = sorted(folder.glob("annotations/*.json"))
    return files or [f for f in [folder / "result.json"] if f.is_file()]


def detect_format(path: Path, limits: Limits = DEFAULT_LIMITS) -> str:
    """Which reader an export needs, from its layout (a folder or an extracted zip) or its JSON."""
    if path.is_dir():
        if (path / "data.yaml").exists():
            return "cvat-yolo"
        if (path / "classes.txt").exists():
            return "labelstudio-yolo"
        if coco_files(path):
            return "coco"
        raise AnnotationError(
            f"{path}",
            "neither data.yaml (CVAT YOLO), classes.txt (Label Studio YOLO) nor annotations/*.json or "
            "result.json (COCO)",
        )
    data = load_json(path, limits.max_bytes)
    if isinstance(data, dict) and "annotations" in data and "images" in data:
        return "coco"
    if data == []:
        raise AnnotationError(f"{path}", "no tasks: an empty export (nothing was annotated or exported)")
    if isinstance(data, list) and data and isinstance(data[0], dict):
        # any task with a data object makes it a JSON export (its tasks without one are named as
        # such); judged by the first task alone, a broken first task read the file as JSON-MIN
        json_export = any(isinstance(task, dict) and "data" in task for task in data)
        return "labelstudio-json" if json_export else "labelstudio-min"
    raise AnnotationError(f"{path}", "not a Label Studio, JSON-MIN or COCO export")


def extract(archive: Path, into: Path, limits: Limits = DEFAULT_LIMITS) -> Path:
    """Unpack a zip export safely (no member outside the folder, bounded size and count). A file
    in the archive twice is refused: unpacked, the last one won unsaid, and an image's labels went
    onto another photo of the same name. So is a name with backslashes (zipped on Windows by an old
    tool): unpacked here as one file named `images\\a.jpg`, its image and labels were never found and
    the import said only "1 unlabelled skipped"."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = zipped.infolist()
            limits.count(members, "files", f"{archive}")
            total = sum(m.file_size for m in members)
            if total > MAX_ARCHIVE_BYTES:
                raise AnnotationError(f"{archive}", f"unpacks to {total} bytes, over {MAX_ARCHIVE_BYTES}")
            unpacked: dict[Path, str] = {}
            for member in members:
                if "\\" in member.filename:
                    why = "a name with backslashes (zipped on Windows by an old tool?): zip it again"
                    raise AnnotationError(f"{archive}: {member.filename!r}", why)
                try:
                    target = inside(into, member.filename)
                except AnnotationError as err:
                    raise AnnotationError(f"{archive}: {err.where}", err.message) from None
                if target in unpacked and not member.is_dir():
                    twice = f"in the archive twice (also as {unpacked[target]!r}): which one is meant?"
                    raise AnnotationError(f"{archive}: {member.filename!r}", twice)
                unpacked[target] = member.filename
            zipped.extractall(into)
    except zipfile.BadZipFile as err:
        raise AnnotationError(f"{archive}", f"not a zip archive: {err}") from err
    return into


def read_export(
    path: Path, format_name: str = "auto", unpack_to: Path | None = None, limits: Limits = DEFAULT_LIMITS
) -> ReadExport:
    """Read any supported export: a JSON file, a folder, or a zip (unpacked into `unpack_to`)."""
    if not path.exists():
        raise AnnotationError(f"{path}", "no such file or folder")
    if not (path.is_dir() or stat.S_ISREG(path.stat().st_mode)):  # /dev/zero, a FIFO: read for ever
        raise AnnotationError(f"{path}", "not a regular file (a pipe, socket, device): not read")
    if path.is_file() and path.stat().st_size == 0:
        raise AnnotationError(f"{path}", "empty file")
    if path.suffix.lower() == ".zip":
        path = extract(path, unpack_to or Path(tempfile.mkdtemp(prefix="streetorder-export-")), limits)
    kind = detect_format(path, limits) if format_name == "auto" else format_name
    if kind == "labelstudio-json":
        return read_labelstudio_json(path, limits)
    if kind == "labelstudio-min":
        return read_labelstudio_min(path, limits)
    if kind == "labelstudio-yolo":
        return read_labelstudio_yolo(path, limits)
    if kind == "cvat-yolo":
        return read_cvat_yolo(path, limits)
    if kind == "coco":
        files = coco_files(path) if path.is_dir() else [path]
        if not files:
            raise AnnotationError(f"{path}", "no annotations/*.json or result.json")
        merged = ReadExport("coco", [])
        for file in files:
            part = read_coco(file, limits)
            merged.samples += part.samples
            merged.problems += part.problems
            merged.unsupported.update(part.unsupported)
            merged.unsupported_only += part.unsupported_only
        return merged
    raise AnnotationError(str(path), f"unknown format {kind!r} (one of {', '.join(FORMATS)})")
