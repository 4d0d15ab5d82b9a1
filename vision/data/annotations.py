"""Annotations at the edge: what annotators export comes in here, what they should label goes out.

In: Label Studio JSON, JSON-MIN and YOLO exports, CVAT "Ultralytics YOLO Detection" and "COCO 1.0"
exports (a file, a folder or a zip). Every box is checked (inside its image, a label the taxonomy
knows by name or alias, no rotation) and every image is read; a problem names the file and the line
or field. An image without boxes is kept as a negative only when asked (`--negatives`): an empty
label file is more often a forgotten image than a clean street.

Stored: a versioned dataset `datasets/<name>/manifest.json`, one entry per image keyed by its
sha256, with pixel boxes and the classes its annotators labelled (partial labels stay partial in
training). Images are not copied into the repository: the manifest records where they are, and
images that exist only inside an export archive go to a content-addressed store outside it.

Out: Label Studio tasks with pre-annotations (`predictions`) and a labelling config, and an
Ultralytics YOLO zip that CVAT imports. Percent, normalised and COCO coordinates exist only in
this module; everything else works in pixel xyxy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import quoteattr

import yaml
from tqdm import tqdm

from vision.core.imageio import ImageError, read_photo
from vision.core.taxonomy import Taxonomy, load_taxonomy
from vision.data.datamix import IMAGE_SUFFIXES, SPLITS
from vision.detect.registry import file_sha256

DATASETS_DIR = Path(__file__).resolve().parents[2] / "datasets"
DEFAULT_STORE = Path(os.environ.get("STREETORDER_CACHE", Path.home() / ".cache" / "streetorder")) / "images"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "streetorder-dataset/1"
FORMATS = ("auto", "labelstudio-json", "labelstudio-min", "labelstudio-yolo", "cvat-yolo", "coco")
EDGE_TOLERANCE = 0.005  # boxes may overshoot the image by 0.5 % of its side (rounding in exports)
ASPECT_TOLERANCE = 0.02
VAL_SHARE = 10  # one image in VAL_SHARE goes to val, chosen by its sha256: stable across versions
LS_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio prefixes uploaded file names
LOCAL_FILES = "/data/local-files/"
MAX_ARCHIVE_BYTES = 20 * 2**30


class AnnotationError(ValueError):
    """An export or a task image that cannot be used: `where` (file and line or field) and why."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message

    def problem(self) -> Problem:
        return Problem(self.where, self.message)


# --- coordinates: the only place they are not pixel xyxy ------------------------------------------


def to_percent(xyxy: Sequence[float], width: int, height: int) -> dict[str, float]:
    """Pixel xyxy -> Label Studio's top-left x, y, width, height in percent of the image."""
    x1, y1, x2, y2 = xyxy
    return {
        "x": 100.0 * x1 / width,
        "y": 100.0 * y1 / height,
        "width": 100.0 * (x2 - x1) / width,
        "height": 100.0 * (y2 - y1) / height,
    }


def from_percent(x: float, y: float, w: float, h: float, width: int, height: int) -> tuple[float, ...]:
    return (x * width / 100, y * height / 100, (x + w) * width / 100, (y + h) * height / 100)


def from_yolo(cx: float, cy: float, w: float, h: float, width: int, height: int) -> tuple[float, ...]:
    return ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)


def to_yolo(xyxy: Sequence[float], width: int, height: int) -> str:
    x1, y1, x2, y2 = xyxy
    values = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)
    return " ".join(f"{v:.6f}" for v in values)


def from_coco(x: float, y: float, w: float, h: float) -> tuple[float, ...]:
    return (x, y, x + w, y + h)


# --- what readers produce ----------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    where: str  # file, and line or field
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class RawBox:
    """One box as an export writes it; `unit` says how to read `coords`."""

    label: str
    coords: tuple[float, float, float, float]
    unit: str  # percent (x, y, w, h) | yolo (cx, cy, w, h normalised) | coco (x, y, w, h pixels)
    where: str
    rotation: float = 0.0


@dataclass
class RawSample:
    """One image of an export: its reference as written there, and its boxes."""

    image: str
    boxes: list[RawBox]
    where: str
    base: Path  # folder that relative image references are read against
    declared_size: tuple[int, int] | None = None  # (width, height) the export says the image has
    labelled: tuple[str, ...] | None = None  # label names this export's annotators could choose from


@dataclass(frozen=True)
class Label:
    name: str  # taxonomy class name
    xyxy: tuple[float, float, float, float]  # pixels of the upright image
    confidence: float | None = None  # set on predictions only

    def to_json(self) -> list[Any]:
        return [self.name, *(round(v, 1) for v in self.xyxy)]


@dataclass
class Sample:
    """One validated image: file, size, pixel boxes with taxonomy names."""

    path: Path
    sha256: str
    width: int
    height: int
    labels: list[Label]
    labelled: tuple[str, ...]  # taxonomy classes its annotators labelled (the others are unknown)
    origin: str


@dataclass
class ReadExport:
    format: str
    samples: list[RawSample]
    problems: list[Problem] = field(default_factory=list)
    unlabelled: int = 0  # images of the export nobody annotated (skipped, not negatives)


# --- task images: local files under a root, Label Studio's URLs -----------------------------------


def inside(root: Path, relative: str) -> Path:
    """`root/relative`, refused when it would leave root (`..`, absolute paths, symlinks out)."""
    if "\x00" in relative:
        raise AnnotationError(f"{relative!r}", "a NUL byte in a path")
    base = root.resolve()
    target = (base / relative.lstrip("/")).resolve()
    if not target.is_relative_to(base):
        raise AnnotationError(repr(relative), f"leaves the allowed folder {base}")
    return target


def local_files_path(url: str) -> str | None:
    """The `d=` path of a Label Studio local-files URL (`/data/local-files/?d=photos/a.jpg`)."""
    parts = urlsplit(url)
    if not parts.path.endswith(LOCAL_FILES.rstrip("/")) and not parts.path.endswith(LOCAL_FILES):
        return None
    values = parse_qs(parts.query).get("d")
    if not values:
        raise AnnotationError(f"{url!r}", "a local-files URL without d=")
    return values[0]


@dataclass(frozen=True)
class TaskImages:
    """Reads the image of a Label Studio task from where it may be read, and nowhere else.

    - `/data/local-files/?d=rel` and plain relative paths: under `files_root` only;
    - `/data/upload/...` and other Label Studio paths, and absolute URLs that start with
      `base_url`: fetched from Label Studio with `token`, only when `base_url` is configured.
    """

    files_root: Path | None = None
    base_url: str = ""
    token: str = ""
    max_bytes: int = 20 * 2**20
    timeout_s: float = 15.0

    def local(self, ref: str) -> Path | None:
        """The local file a reference names, or None when it must be fetched."""
        relative = local_files_path(ref)
        scheme = urlsplit(ref).scheme
        if relative is None and (scheme or ref.startswith("/data/")):
            return None
        if self.files_root is None:
            raise AnnotationError(f"{ref!r}", "local task files are not enabled (no files root configured)")
        return inside(self.files_root, unquote(relative if relative is not None else ref))

    def read(self, ref: str) -> bytes:
        path = self.local(ref)
        if path is not None:
            if not path.is_file():
                raise AnnotationError(f"{ref!r}", "no such file under the files root")
            if path.stat().st_size > self.max_bytes:
                raise AnnotationError(f"{ref!r}", f"over {self.max_bytes} bytes")
            return path.read_bytes()
        return self.fetch(ref)

    def fetch(self, ref: str) -> bytes:
        if not self.base_url:
            raise AnnotationError(
                f"{ref!r}", "fetching task images is not enabled (no Label Studio URL configured)"
            )
        base = self.base_url.rstrip("/")
        url = base + ref if ref.startswith("/") else ref
        if not (url == base or url.startswith(base + "/")):
            raise AnnotationError(f"{ref!r}", f"only images from {base} are fetched")
        request = urllib.request.Request(
            url, headers={"Authorization": f"Token {self.token}"} if self.token else {}
        )
        try:
            # the URL was checked above: Label Studio's own, never one a task chose
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                data: bytes = response.read(self.max_bytes + 1)
        except OSError as err:
            raise AnnotationError(f"{url}", f"cannot fetch: {err}") from err
        if len(data) > self.max_bytes:
            raise AnnotationError(f"{url}", f"over {self.max_bytes} bytes")
        return data


@dataclass
class ImageFinder:
    """Finds the file of an image an export names: by path under allowed folders, or by file name.

    Label Studio writes `/data/upload/<project>/<8 hex>-<name>`, `/data/local-files/?d=<path>` or a
    URL; CVAT and YOLO exports carry the images beside their labels. Only files under `folders`
    (and the local-files root) are ever read; `fetch` (Label Studio, when configured) gets the rest
    into `store`.
    """

    folders: list[Path]
    tasks: TaskImages = field(default_factory=TaskImages)
    store: Path = DEFAULT_STORE
    _names: dict[str, list[Path]] | None = None

    def find(self, ref: str, base: Path) -> Path:
        relative = local_files_path(ref)
        if relative is not None and self.tasks.files_root is not None:
            return self.tasks.local(ref) or Path(ref)
        remote = bool(urlsplit(ref).scheme) or ref.startswith("/data/")
        path = unquote(relative if relative is not None else urlsplit(ref).path if remote else ref)
        for folder in [] if remote else [base, *self.folders]:
            try:
                found = inside(folder, path)
            except AnnotationError:
                continue
            if found.is_file():
                return found
        name = Path(path).name
        for wanted in dict.fromkeys((name, LS_UPLOAD_PREFIX.sub("", name))):
            matches = self.by_name().get(wanted, [])
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise AnnotationError(
                    repr(ref), f"{len(matches)} files are named {wanted} ({matches[0]}, ...)"
                )
        if remote and relative is None and self.tasks.base_url:
            return self.keep(self.tasks.fetch(ref), Path(name).suffix)
        folders = ", ".join(map(str, self.folders)) or "no folder"
        raise AnnotationError(repr(ref), f"image not found (looked in {folders})")

    def by_name(self) -> dict[str, list[Path]]:
        if self._names is None:
            self._names = {}
            for folder in self.folders:
                for file in folder.rglob("*"):
                    if file.suffix.lower() in IMAGE_SUFFIXES:
                        self._names.setdefault(file.name, []).append(file.resolve())
        return self._names

    def keep(self, data: bytes, suffix: str) -> Path:
        """Put bytes into the content-addressed store (images that live only inside an export)."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.store / sha[:2] / f"{sha}{suffix.lower() or '.jpg'}"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(path.suffix + ".part")
            temporary.write_bytes(data)
            temporary.replace(path)
        return path


# --- readers ----------------------------------------------------------------------------------


def load_json(path: Path) -> Any:
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise AnnotationError(f"{path}", "empty file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise AnnotationError(
            f"{path}:{err.lineno}", f"not valid JSON: {err.msg} (column {err.colno})"
        ) from err


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AnnotationError(f"{where}", f"expected a number, got {value!r}")
    return float(value)


def _rectangle(
    region: dict[str, Any], where: str
) -> tuple[list[str], tuple[float, float, float, float], float]:
    """Labels, percent box and rotation of one Label Studio rectangle value."""
    labels = region.get("rectanglelabels")
    if not isinstance(labels, list) or not labels or not all(isinstance(v, str) for v in labels):
        raise AnnotationError(f"{where}.rectanglelabels", f"expected a list of label names, got {labels!r}")
    coords = tuple(_number(region.get(k), f"{where}.{k}") for k in ("x", "y", "width", "height"))
    rotation = _number(region.get("rotation", 0), f"{where}.rotation")
    return labels, (coords[0], coords[1], coords[2], coords[3]), rotation


def _size(region: dict[str, Any]) -> tuple[int, int] | None:
    width, height = region.get("original_width"), region.get("original_height")
    return (
        (int(width), int(height))
        if isinstance(width, int | float) and isinstance(height, int | float)
        else None
    )


def _task_image(data: dict[str, Any], where: str) -> str:
    for key in ("image", "img", "photo", "url"):
        if isinstance(data.get(key), str):
            return str(data[key])
    for value in data.values():
        if isinstance(value, str) and (
            value.startswith("/data/") or Path(urlsplit(value).path).suffix.lower() in IMAGE_SUFFIXES
        ):
            return value
    raise AnnotationError(f"{where}", f"no image URL in the task data (keys: {', '.join(data) or 'none'})")


def _boxes(
    regions: list[Any], where: str, problems: list[Problem], declared: list[tuple[int, int]]
) -> list[RawBox]:
    boxes: list[RawBox] = []
    for index, region in enumerate(regions):
        at = f"{where}[{index}]"
        if not isinstance(region, dict):
            problems.append(Problem(at, f"expected an object, got {type(region).__name__}"))
            continue
        value = region.get("value", region)  # full JSON nests it in value, JSON-MIN does not
        if region.get("type", "rectanglelabels") != "rectanglelabels" or "rectanglelabels" not in value:
            continue  # other controls (choices, text) are no boxes
        size = _size(region) or _size(value)
        if size:
            declared.append(size)
        try:
            labels, coords, rotation = _rectangle(value, at + (".value" if "value" in region else ""))
        except AnnotationError as err:
            problems.append(err.problem())
            continue
        boxes.extend(RawBox(label, coords, "percent", at, rotation) for label in labels)
    return boxes


def read_labelstudio_json(path: Path) -> ReadExport:
    """Label Studio's JSON export: tasks with `data` and `annotations[].result[]`; the latest
    annotation that was not cancelled counts."""
    tasks = load_json(path)
    if not isinstance(tasks, list):
        raise AnnotationError(f"{path}", "a Label Studio JSON export is a list of tasks")
    export = ReadExport("labelstudio-json", [])
    for index, task in enumerate(
        tqdm(tasks, desc=f"read {path.name}", file=sys.stderr, disable=len(tasks) < 500)
    ):
        where = f"{path}: tasks[{index}]" + (
            f" (id {task.get('id')})" if isinstance(task, dict) and "id" in task else ""
        )
        try:
            if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
                raise AnnotationError(f"{where}.data", "a task needs a data object")
            image = _task_image(task["data"], f"{where}.data")
            annotations = task.get("annotations") or task.get("completions") or []
            if not isinstance(annotations, list):
                raise AnnotationError(f"{where}.annotations", "expected a list")
        except AnnotationError as err:
            export.problems.append(err.problem())
            continue
        kept = [
            (i, a) for i, a in enumerate(annotations) if isinstance(a, dict) and not a.get("was_cancelled")
        ]
        if not kept:
            export.unlabelled += 1
            continue
        number, annotation = max(kept, key=lambda item: (str(item[1].get("updated_at") or ""), item[0]))
        result = annotation.get("result")
        at = f"{where}.annotations[{number}].result"
        if not isinstance(result, list):
            export.problems.append(Problem(at, "expected a list of regions"))
            continue
        declared: list[tuple[int, int]] = []
        boxes = _boxes(result, at, export.problems, declared)
        export.samples.append(RawSample(image, boxes, where, path.parent, declared[0] if declared else None))
    return export


def read_labelstudio_min(path: Path) -> ReadExport:
    """Label Studio's JSON-MIN export: one flat object per annotated task, boxes under the
    control's name (usually `label`), image under the data key (usually `image`)."""
    rows = load_json(path)
    if not isinstance(rows, list):
        raise AnnotationError(f"{path}", "a JSON-MIN export is a list of objects")
    export = ReadExport("labelstudio-min", [])
    meta = {"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time"}
    for index, row in enumerate(rows):
        where = f"{path}: [{index}]" + (
            f" (id {row.get('id')})" if isinstance(row, dict) and "id" in row else ""
        )
        if not isinstance(row, dict):
            export.problems.append(Problem(where, "expected an object"))
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
            image = _task_image({k: v for k, v in row.items() if k not in meta}, where)
        except AnnotationError as err:
            export.problems.append(err.problem())
            continue
        if regions_key is None:
            if "annotation_id" in row or "annotator" in row:  # annotated, with no box drawn
                export.samples.append(RawSample(image, [], where, path.parent))
            else:
                export.unlabelled += 1
            continue
        declared: list[tuple[int, int]] = []
        boxes = _boxes(row[regions_key], f"{where}.{regions_key}", export.problems, declared)
        export.samples.append(RawSample(image, boxes, where, path.parent, declared[0] if declared else None))
    return export


def read_yolo_folder(root: Path, names: list[str], format_name: str) -> ReadExport:
    """Images with YOLO label files beside them (`labels/` mirrors `images/`): CVAT's Ultralytics
    YOLO and Label Studio's YOLO exports. An image without a label file is unlabelled."""
    export = ReadExport(format_name, [])
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
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
        for number, line in enumerate(label.read_text(encoding="utf-8").splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            at = f"{label}:{number}"
            if len(fields) != 5:
                export.problems.append(
                    Problem(at, f"expected 'class cx cy w h' (5 fields), got {len(fields)}: {line!r}")
                )
                continue
            try:
                class_id = int(fields[0])
                cx, cy, w, h = (float(v) for v in fields[1:])
            except ValueError:
                export.problems.append(Problem(at, f"not numbers: {line!r}"))
                continue
            if not 0 <= class_id < len(names):
                export.problems.append(
                    Problem(at, f"class {class_id} is not in the export's {len(names)} class names")
                )
                continue
            boxes.append(RawBox(names[class_id], (cx, cy, w, h), "yolo", at))
        export.samples.append(RawSample(relative.as_posix(), boxes, str(label), root, labelled=tuple(names)))
    for orphan in sorted(label_files - used):
        export.problems.append(Problem(str(orphan), "label file without an image"))
    return export


def read_cvat_yolo(root: Path) -> ReadExport:
    data_yaml = root / "data.yaml"
    try:
        data = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise AnnotationError(f"{data_yaml}", f"not valid YAML: {err}") from err
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        names = [str(names[k]) for k in sorted(names, key=int)]
    if not isinstance(names, list) or not names:
        raise AnnotationError(f"{data_yaml}", "names: expected the class names")
    return read_yolo_folder(root, [str(n) for n in names], "cvat-yolo")


def read_labelstudio_yolo(root: Path) -> ReadExport:
    classes = root / "classes.txt"
    names = [line.strip() for line in classes.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise AnnotationError(f"{classes}", "empty file (no class names)")
    return read_yolo_folder(root, names, "labelstudio-yolo")


def read_coco(path: Path) -> ReadExport:
    """COCO 1.0 (CVAT's COCO export): `images`, `categories`, `annotations` with pixel `bbox`."""
    coco = load_json(path)
    if not isinstance(coco, dict) or not all(
        isinstance(coco.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise AnnotationError(f"{path}", "a COCO file needs lists 'images', 'annotations' and 'categories'")
    export = ReadExport("coco", [])
    categories = {c.get("id"): str(c.get("name")) for c in coco["categories"] if isinstance(c, dict)}
    root = path.parent.parent if path.parent.name == "annotations" else path.parent
    root = root / "images" if (root / "images").is_dir() else root  # CVAT puts images beside annotations/
    images: dict[Any, RawSample] = {}
    for index, image in enumerate(coco["images"]):
        where = f"{path}: images[{index}]"
        if not isinstance(image, dict) or not isinstance(image.get("file_name"), str):
            export.problems.append(Problem(where, "an image needs a file_name"))
            continue
        size = _size({"original_width": image.get("width"), "original_height": image.get("height")})
        images[image.get("id")] = RawSample(
            image["file_name"], [], where, root, size, tuple(categories.values())
        )
    for index, annotation in enumerate(coco["annotations"]):
        where = f"{path}: annotations[{index}]"
        if not isinstance(annotation, dict):
            export.problems.append(Problem(where, "expected an object"))
            continue
        sample = images.get(annotation.get("image_id"))
        if sample is None:
            export.problems.append(
                Problem(f"{where}.image_id", f"no image with id {annotation.get('image_id')!r}")
            )
            continue
        name = categories.get(annotation.get("category_id"))
        if name is None:
            export.problems.append(
                Problem(f"{where}.category_id", f"no category {annotation.get('category_id')!r}")
            )
            continue
        bbox = annotation.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            export.problems.append(Problem(f"{where}.bbox", f"expected [x, y, width, height], got {bbox!r}"))
            continue
        try:
            coords = tuple(_number(v, f"{where}.bbox") for v in bbox)
        except AnnotationError as err:
            export.problems.append(err.problem())
            continue
        rotation = (annotation.get("attributes") or {}).get("rotation", 0)
        sample.boxes.append(
            RawBox(name, (coords[0], coords[1], coords[2], coords[3]), "coco", where, float(rotation or 0))
        )
    export.samples = list(images.values())
    return export


def detect_format(path: Path) -> str:
    """Which reader an export needs, from its layout (a folder or an extracted zip) or its JSON."""
    if path.is_dir():
        if (path / "data.yaml").exists():
            return "cvat-yolo"
        if (path / "classes.txt").exists():
            return "labelstudio-yolo"
        if list(path.glob("annotations/*.json")):
            return "coco"
        raise AnnotationError(
            f"{path}",
            "neither data.yaml (CVAT YOLO), classes.txt (Label Studio YOLO) nor annotations/*.json (COCO)",
        )
    data = load_json(path)
    if isinstance(data, dict) and "annotations" in data and "images" in data:
        return "coco"
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return "labelstudio-json" if "data" in data[0] else "labelstudio-min"
    raise AnnotationError(f"{path}", "not a Label Studio, JSON-MIN or COCO export")


def extract(archive: Path, into: Path) -> Path:
    """Unpack a zip export safely (no member outside the folder, bounded size)."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = zipped.infolist()
            total = sum(m.file_size for m in members)
            if total > MAX_ARCHIVE_BYTES:
                raise AnnotationError(f"{archive}", f"unpacks to {total} bytes, over {MAX_ARCHIVE_BYTES}")
            for member in members:
                try:
                    inside(into, member.filename)
                except AnnotationError as err:
                    raise AnnotationError(f"{archive}: {err.where}", err.message) from None
            zipped.extractall(into)
    except zipfile.BadZipFile as err:
        raise AnnotationError(f"{archive}", f"not a zip archive: {err}") from err
    return into


def read_export(path: Path, format_name: str = "auto", unpack_to: Path | None = None) -> ReadExport:
    """Read any supported export: a JSON file, a folder, or a zip (unpacked into `unpack_to`)."""
    if not path.exists():
        raise AnnotationError(f"{path}", "no such file or folder")
    if path.is_file() and path.stat().st_size == 0:
        raise AnnotationError(f"{path}", "empty file")
    if path.suffix.lower() == ".zip":
        path = extract(path, unpack_to or Path(tempfile.mkdtemp(prefix="streetorder-export-")))
    kind = detect_format(path) if format_name == "auto" else format_name
    if kind == "labelstudio-json":
        return read_labelstudio_json(path)
    if kind == "labelstudio-min":
        return read_labelstudio_min(path)
    if kind == "labelstudio-yolo":
        return read_labelstudio_yolo(path)
    if kind == "cvat-yolo":
        return read_cvat_yolo(path)
    if kind == "coco":
        files = sorted(path.glob("annotations/*.json")) if path.is_dir() else [path]
        if not files:
            raise AnnotationError(f"{path}", "no annotations/*.json")
        merged = ReadExport("coco", [])
        for file in files:
            part = read_coco(file)
            merged.samples += part.samples
            merged.problems += part.problems
        return merged
    raise AnnotationError(str(path), f"unknown format {kind!r} (one of {', '.join(FORMATS)})")


# --- validation -------------------------------------------------------------------------------


def oriented_size(path: Path) -> tuple[int, int]:
    """Width and height of the upright photo (EXIF orientation applied), decoding it fully so
    that a corrupt file is caught here, not in training."""
    photo = read_photo(path)
    return photo.width, photo.height


def to_pixels(box: RawBox, width: int, height: int, declared: tuple[int, int] | None) -> tuple[float, ...]:
    x, y, w, h = box.coords
    if box.unit == "percent":
        return from_percent(x, y, w, h, width, height)
    if box.unit == "yolo":
        return from_yolo(x, y, w, h, width, height)
    sx, sy = (width / declared[0], height / declared[1]) if declared else (1.0, 1.0)
    return tuple(v * s for v, s in zip(from_coco(x, y, w, h), (sx, sy, sx, sy), strict=True))


def check_box(
    xyxy: Sequence[float], width: int, height: int
) -> tuple[tuple[float, float, float, float] | None, str | None]:
    """A box clipped to the image when it overshoots by rounding only; else why it is refused."""
    x1, y1, x2, y2 = xyxy
    if x2 - x1 < 1 or y2 - y1 < 1:
        return None, f"empty box ({x2 - x1:.1f} x {y2 - y1:.1f} px)"
    slack_x, slack_y = EDGE_TOLERANCE * width, EDGE_TOLERANCE * height
    if x1 < -slack_x or y1 < -slack_y or x2 > width + slack_x or y2 > height + slack_y:
        return None, f"box ({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}) is outside the {width}x{height} image"
    clipped = (max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2))
    return clipped, None


def validate(
    export: ReadExport,
    finder: ImageFinder,
    taxonomy: Taxonomy,
    *,
    negatives: bool = False,
    labelled: Sequence[str] | None = None,
) -> tuple[list[Sample], list[Problem]]:
    """Resolve images and turn raw boxes into pixel labels with taxonomy names; collect problems.

    `labelled`: the taxonomy classes the annotators labelled (default: the export's own label list,
    else every taxonomy class).
    """
    problems = list(export.problems)
    samples: list[Sample] = []
    seen: dict[str, str] = {}
    for raw in tqdm(export.samples, desc="check images", file=sys.stderr, disable=len(export.samples) < 200):
        try:
            path = finder.find(raw.image, raw.base)
            width, height = oriented_size(path)
        except (AnnotationError, ImageError) as err:
            problems.append(Problem(raw.where, str(err)))
            continue
        if (
            raw.declared_size
            and abs(raw.declared_size[0] / raw.declared_size[1] - width / height)
            > ASPECT_TOLERANCE * width / height
        ):
            dw, dh = raw.declared_size
            problems.append(
                Problem(
                    raw.where, f"the export says {dw}x{dh}, {path} is {width}x{height} (rotated or cropped?)"
                )
            )
            continue
        labels, bad = [], False
        for box in raw.boxes:
            cls = taxonomy.resolve(box.label)
            if cls is None:
                problems.append(
                    Problem(
                        box.where,
                        f"label {box.label!r} is neither a taxonomy class nor an alias "
                        f"({', '.join(taxonomy.names)})",
                    )
                )
                bad = True
                continue
            if box.rotation % 360:
                problems.append(
                    Problem(
                        box.where, f"rotated box ({box.rotation:g} degrees): the detector takes upright boxes"
                    )
                )
                bad = True
                continue
            xyxy, why = check_box(to_pixels(box, width, height, raw.declared_size), width, height)
            if xyxy is None:
                problems.append(Problem(box.where, str(why)))
                bad = True
                continue
            labels.append(Label(cls.name, xyxy))
        if bad:
            continue
        if not labels and not negatives:
            problems.append(
                Problem(raw.where, "no boxes: not taken as a negative image unless --negatives is given")
            )
            continue
        sha = file_sha256(path)
        if sha in seen:
            problems.append(Problem(raw.where, f"the same image as {seen[sha]}"))
            continue
        seen[sha] = raw.where
        names = labelled if labelled is not None else raw.labelled
        chosen = {c.name for c in map(taxonomy.resolve, names or taxonomy.names) if c}
        covered = [n for n in taxonomy.names if n in chosen]  # taxonomy order
        samples.append(Sample(path.resolve(), sha, width, height, labels, tuple(covered), raw.where))
    return samples, problems


# --- datasets/<name>/manifest.json --------------------------------------------------------------


def split_of(sha256: str) -> str:
    return "val" if int(sha256[:8], 16) % VAL_SHARE == 0 else "train"


@dataclass
class Dataset:
    """A versioned set of labelled images: `datasets/<name>/manifest.json`.

    Every import is a new version; an image is keyed by its sha256, so a corrected annotation of
    the same photo replaces the older one. `verify` checks that every file still has its hash.
    """

    folder: Path
    name: str
    version: int = 0
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def open(cls, name: str, datasets_dir: Path | None = None) -> Dataset:
        folder = (datasets_dir or DATASETS_DIR) / name
        path = folder / MANIFEST
        if not path.exists():
            return cls(folder, name)
        data = load_json(path)
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise AnnotationError(f"{path}", f"not a {MANIFEST_FORMAT} manifest")
        images = {entry["sha256"]: entry for entry in data.get("images", [])}
        return cls(folder, str(data["name"]), int(data["version"]), images, list(data.get("versions", [])))

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST

    def add(self, samples: Iterable[Sample], source: dict[str, Any], at: datetime) -> dict[str, int]:
        """Add or replace images as a new version; unchanged images keep their version."""
        counts = {"added": 0, "updated": 0, "unchanged": 0}
        version = self.version + 1
        for sample in samples:
            entry = {
                "sha256": sample.sha256,
                "file": self._stored_path(sample.path),
                "width": sample.width,
                "height": sample.height,
                "split": split_of(sample.sha256),
                "labelled": list(sample.labelled),
                "labels": [label.to_json() for label in sample.labels],
                "origin": sample.origin,
            }
            previous = self.images.get(sample.sha256)
            if previous is not None and {k: v for k, v in previous.items() if k != "version"} == entry:
                counts["unchanged"] += 1
                continue
            counts["updated" if previous else "added"] += 1
            self.images[sample.sha256] = {**entry, "version": version}
        if counts["added"] or counts["updated"]:
            self.version = version
            self.versions.append({"version": version, "at": at.isoformat(), **source, **counts})
        return counts

    def _stored_path(self, path: Path) -> str:
        """Inside the repository: relative to the manifest; elsewhere: absolute."""
        try:
            return (
                os.path.relpath(path, self.folder)
                if path.is_relative_to(self.folder.parent.parent)
                else str(path)
            )
        except ValueError:
            return str(path)

    def file(self, entry: dict[str, Any]) -> Path:
        return (self.folder / entry["file"]).resolve()

    def save(self) -> Path:
        """Write the manifest atomically, one image per line (diffs stay readable)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        head = {
            "format": MANIFEST_FORMAT,
            "name": self.name,
            "version": self.version,
            "versions": self.versions,
        }
        lines = [json.dumps(e, ensure_ascii=False, sort_keys=True) for _, e in sorted(self.images.items())]
        text = (
            json.dumps(head, ensure_ascii=False, indent=1)[:-2]
            + ',\n "images": [\n  '
            + ",\n  ".join(lines)
            + "\n ]\n}\n"
        )
        temporary = self.path.with_suffix(".json.part")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(self.path)
        return self.path

    def verify(self) -> list[Problem]:
        problems = []
        for sha, entry in tqdm(
            sorted(self.images.items()),
            desc=f"verify {self.name}",
            file=sys.stderr,
            disable=len(self.images) < 200,
        ):
            path = self.file(entry)
            if not path.is_file():
                problems.append(Problem(str(self.path), f"image {sha[:12]}: {path} is missing"))
            elif file_sha256(path) != sha:
                problems.append(
                    Problem(str(self.path), f"image {sha[:12]}: {path} has changed (sha256 differs)")
                )
        return problems

    def build(self, out: Path, taxonomy: Taxonomy | None = None) -> list[tuple[str, Path]]:
        """Ultralytics data sets of this version, one per set of labelled classes (a mix source each).

        Each data.yaml names only the classes its images' annotators labelled, so training masks
        the others (vision/data/datamix.py) instead of teaching them as background.
        """
        taxonomy = taxonomy or load_taxonomy()
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for entry in self.images.values():
            groups.setdefault(tuple(entry["labelled"]), []).append(entry)
        built = []
        for index, (labelled, entries) in enumerate(sorted(groups.items())):
            name = self.name if len(groups) == 1 else f"{self.name}-{index + 1}"
            root = out / name
            shutil.rmtree(root, ignore_errors=True)
            names = [n for n in taxonomy.names if n in labelled]
            for entry in entries:
                image = (
                    root
                    / "images"
                    / entry["split"]
                    / f"{entry['sha256']}{Path(entry['file']).suffix.lower()}"
                )
                image.parent.mkdir(parents=True, exist_ok=True)
                image.symlink_to(self.file(entry))
                label = root / "labels" / entry["split"] / f"{entry['sha256']}.txt"
                label.parent.mkdir(parents=True, exist_ok=True)
                lines = [
                    f"{names.index(n)} {to_yolo(xyxy, entry['width'], entry['height'])}"
                    for n, *xyxy in entry["labels"]
                ]
                label.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
            splits = {s: f"images/{s}" for s in SPLITS if (root / "images" / s).is_dir()}
            if "val" not in splits:  # ultralytics needs a val split; a tiny set validates on train
                splits["val"] = "images/train"
            data_yaml = root / "data.yaml"
            header = (
                f"# Source: dataset {self.name} v{self.version} ({self.path}), the bureau's annotations.\n"
            )
            data_yaml.write_text(
                header + yaml.safe_dump({**splits, "names": names}, allow_unicode=True), encoding="utf-8"
            )
            built.append((name, data_yaml))
        return built


# --- Label Studio labelling configs -----------------------------------------------------------


@dataclass(frozen=True)
class RectangleControl:
    """The box control of a labelling config: its names, the task data key of its image, and the
    project's label for each taxonomy class it can express."""

    from_name: str
    to_name: str
    data_key: str
    labels: dict[str, str]  # taxonomy class -> the config's label value


MAX_CONFIG_CHARS = 200_000


def rectangle_control(config: str | None, taxonomy: Taxonomy | None = None) -> RectangleControl:
    """Read the first RectangleLabels of a labelling config (the default one when none is given)."""
    taxonomy = taxonomy or load_taxonomy()
    if not config:
        return RectangleControl("label", "image", "image", {n: n for n in taxonomy.names})
    if len(config) > MAX_CONFIG_CHARS:
        raise AnnotationError("label_config", f"over {MAX_CONFIG_CHARS} characters")
    if "<!DOCTYPE" in config or "<!ENTITY" in config:
        raise AnnotationError("label_config", "document type declarations are not accepted")
    try:
        root = ElementTree.fromstring(config)
    except ElementTree.ParseError as err:
        raise AnnotationError("label_config", f"not valid XML: {err}") from err
    control = next((e for e in root.iter() if e.tag == "RectangleLabels"), None)
    if control is None:
        raise AnnotationError("label_config", "no <RectangleLabels> control: this backend predicts boxes")
    from_name, to_name = control.get("name", ""), control.get("toName", "")
    image = next((e for e in root.iter() if e.get("name") == to_name), None)
    value = image.get("value", "") if image is not None else ""
    if not value.startswith("$"):
        raise AnnotationError(
            "label_config", f'RectangleLabels toName={to_name!r} names no <Image value="$...">'
        )
    labels: dict[str, str] = {}
    for label in control.iter("Label"):
        name = label.get("value", "")
        cls = taxonomy.resolve(name)
        if cls is not None and cls.name not in labels:
            labels[cls.name] = name
    if not labels:
        raise AnnotationError(
            "label_config", f"none of its labels is a taxonomy class or alias ({', '.join(taxonomy.names)})"
        )
    return RectangleControl(from_name, to_name, value[1:], labels)


# --- exports for annotators -------------------------------------------------------------------


def label_config(taxonomy: Taxonomy | None = None) -> str:
    """The Label Studio labelling config these tasks and the ML backend expect."""
    taxonomy = taxonomy or load_taxonomy()
    labels = "\n".join(f"    <Label value={quoteattr(name)}/>" for name in taxonomy.names)
    return (
        '<View>\n  <Image name="image" value="$image" zoom="true"/>\n'
        f'  <RectangleLabels name="label" toName="image">\n{labels}\n  </RectangleLabels>\n</View>\n'
    )


def rectangle_results(
    labels: Iterable[Label], width: int, height: int, from_name: str = "label", to_name: str = "image"
) -> list[dict[str, Any]]:
    """Boxes as Label Studio `rectanglelabels` results (percent coordinates, scores kept)."""
    results = []
    for index, label in enumerate(labels):
        result: dict[str, Any] = {
            "id": f"r{index}",
            "from_name": from_name,
            "to_name": to_name,
            "type": "rectanglelabels",
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
            "value": {
                **{k: round(v, 4) for k, v in to_percent(label.xyxy, width, height).items()},
                "rotation": 0,
                "rectanglelabels": [label.name],
            },
        }
        if label.confidence is not None:
            result["score"] = round(float(label.confidence), 4)
        results.append(result)
    return results


def prediction(
    labels: Sequence[Label], width: int, height: int, model_version: str, **names: str
) -> dict[str, Any]:
    """One Label Studio prediction: results, a task score (mean box score) and the model version."""
    scores = [label.confidence for label in labels if label.confidence is not None]
    return {
        "model_version": model_version,
        "score": round(sum(scores) / len(scores), 4) if scores else 0.0,
        "result": rectangle_results(labels, width, height, **names),
    }


@dataclass(frozen=True)
class QueuedImage:
    """An image worth labelling, with what the model saw on it and why it was chosen."""

    path: Path
    width: int
    height: int
    predictions: tuple[Label, ...]
    model_version: str | None
    reasons: tuple[str, ...]
    priority: float
    meta: dict[str, Any] = field(default_factory=dict)


def write_labelstudio_tasks(
    items: Sequence[QueuedImage], out: Path, image_url: Callable[[QueuedImage], str]
) -> Path:
    """tasks.json for Label Studio's import, pre-annotated where a model version is known."""
    tasks = []
    for item in items:
        task: dict[str, Any] = {
            "data": {
                "image": image_url(item),
                "priority": round(item.priority, 4),
                "reasons": ", ".join(item.reasons),
                **item.meta,
            },
        }
        if item.model_version:
            task["predictions"] = [prediction(item.predictions, item.width, item.height, item.model_version)]
        tasks.append(task)
    path = out / "tasks.json"
    path.write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
    (out / "label_config.xml").write_text(label_config(), encoding="utf-8")
    return path


def write_yolo_zip(
    items: Sequence[QueuedImage], path: Path, names: list[str], image_name: Callable[[QueuedImage], str]
) -> Path:
    """CVAT's "Ultralytics YOLO Detection 1.0" layout: data.yaml, train.txt, images/ and labels/."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr(
            "data.yaml", yaml.safe_dump({"path": "./", "train": "train.txt", "names": dict(enumerate(names))})
        )
        listed = []
        for item in items:
            name = image_name(item)
            zipped.write(item.path, f"images/train/{name}")
            lines = [
                f"{names.index(p.name)} {to_yolo(p.xyxy, item.width, item.height)}\n"
                for p in item.predictions
            ]
            zipped.writestr(f"labels/train/{Path(name).with_suffix('.txt')}", "".join(lines))
            listed.append(f"images/train/{name}")
        zipped.writestr("train.txt", "".join(f"{line}\n" for line in listed))
    return path


# --- streetorder data import ----------------------------------------------------------------------


def import_export(
    path: Path,
    dataset: Dataset,
    finder: ImageFinder,
    *,
    format_name: str = "auto",
    negatives: bool = False,
    labelled: Sequence[str] | None = None,
    skip_invalid: bool = False,
    refused: dict[str, str] | None = None,
    at: datetime | None = None,
    taxonomy: Taxonomy | None = None,
) -> tuple[dict[str, int], list[Problem]]:
    """Read, validate and add an export to a dataset as one new version.

    With problems and without `skip_invalid` nothing is added (the dataset is left as it was).
    `refused`: image sha256 -> why it may not be added (the frozen holdout).
    """
    taxonomy = taxonomy or load_taxonomy()
    with tempfile.TemporaryDirectory(prefix="streetorder-import-") as unpacked:
        export = read_export(path, format_name, Path(unpacked))
        if path.suffix.lower() == ".zip":  # the images exist only in the archive: keep them
            finder.folders.insert(0, Path(unpacked))
        samples, problems = validate(export, finder, taxonomy, negatives=negatives, labelled=labelled)
        if path.suffix.lower() == ".zip":  # name files inside an archive as archive/member
            problems = [Problem(p.where.replace(unpacked, str(path)), p.message) for p in problems]
        refused = refused or {}
        for sample in [s for s in samples if s.sha256 in refused]:
            problems.append(Problem(sample.origin, refused[sample.sha256]))
            samples.remove(sample)
        if problems and not skip_invalid:
            return {"added": 0, "updated": 0, "unchanged": 0, "unlabelled": export.unlabelled}, problems
        if path.suffix.lower() == ".zip":
            samples = [_kept(s, finder, Path(unpacked), path) for s in samples]
        source = {
            "source": str(path.resolve()),
            "format": export.format,
            "sha256": file_sha256(path) if path.is_file() else None,
            "problems": [str(p) for p in problems],
        }
        counts = dataset.add(samples, source, at or datetime.now(UTC))
    dataset.save()
    return {**counts, "unlabelled": export.unlabelled}, problems


def _kept(sample: Sample, finder: ImageFinder, unpacked: Path, archive: Path) -> Sample:
    if not sample.path.is_relative_to(unpacked.resolve()):
        return sample
    stored = finder.keep(sample.path.read_bytes(), sample.path.suffix)
    origin = sample.origin.replace(str(unpacked), str(archive))
    return Sample(stored, sample.sha256, sample.width, sample.height, sample.labels, sample.labelled, origin)
