"""Checking a read export: every image found and decoded, every box inside its image, upright, with
a label the taxonomy knows by name or alias; an image without boxes only as an asked-for negative."""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vision.core.files import file_sha256
from vision.core.imageio import ImageError, read_photo
from vision.core.phash import perceptual_hash
from vision.core.taxonomy import Taxonomy
from vision.data.annotations.coords import from_coco, from_percent, from_yolo
from vision.data.annotations.images import ImageFinder, foreign_url
from vision.data.annotations.readers import (
    DEFAULT_LIMITS,
    Limits,
    beside_boxes,
    image_of_task,
    is_object_kind,
    not_an_id,
    result_boxes,
)
from vision.data.annotations.records import (
    AnnotationError,
    Label,
    Problem,
    RawBox,
    ReadExport,
    Sample,
    is_id,
    lone_surrogate,
    shown,
)

EDGE_TOLERANCE = 0.005  # boxes may overshoot the image by 0.5 % of its side (rounding in exports)
ASPECT_TOLERANCE = 0.02


def size_and_look(path: Path, max_bytes: int | None = None) -> tuple[int, int, str]:
    """Width and height of the upright photo (EXIF orientation applied), decoding it fully so
    that a corrupt file is caught here, not in training; and its perceptual hash (a copy of a
    holdout photo is known by it). A file over `max_bytes` is refused unread."""
    photo = read_photo(path, max_bytes=max_bytes)
    return photo.width, photo.height, perceptual_hash(photo.image)


def read_image(
    ref: str, base: Path | None, finder: ImageFinder, max_bytes: int | None
) -> tuple[Path, int, int, str]:
    """The file an image reference names, found as an import finds it, with its size and look
    (`size_and_look`): one function for every door (an import, the retraining job, the webhook,
    `/train`, a pull), so that an annotation of a photo missing, deleted since or no image is refused
    where it comes in, never kept as a label of no photo for the job to fail on."""
    path = finder.find(ref, base)
    return (path, *size_and_look(path, max_bytes))


def to_pixels(box: RawBox, width: int, height: int, declared: tuple[int, int] | None) -> tuple[float, ...]:
    x, y, w, h = box.coords
    if box.unit == "percent":
        return from_percent(x, y, w, h, width, height)
    if box.unit == "yolo":
        return from_yolo(x, y, w, h, width, height)
    sx, sy = (width / declared[0], height / declared[1]) if declared else (1.0, 1.0)
    return tuple(v * s for v, s in zip(from_coco(x, y, w, h), (sx, sy, sx, sy), strict=True))


def check_box(
    xyxy: Sequence[float], width: int, height: int, min_side: float = 1.0
) -> tuple[tuple[float, float, float, float] | None, str | None]:
    """A box clipped to the image when it overshoots by rounding only; else why it is refused.
    A side under `min_side` is empty: 1 px; 0 where the image's pixels are not known yet (only a
    box of no area is empty then)."""
    x1, y1, x2, y2 = xyxy
    if not all(math.isfinite(v) for v in xyxy):  # NaN compares false with everything below
        return None, f"box ({x1}, {y1}, {x2}, {y2}) is not finite"
    if min(x2 - x1, y2 - y1) < min_side or x2 <= x1 or y2 <= y1:
        return None, f"empty box ({x2 - x1:.1f} x {y2 - y1:.1f} px)"
    slack_x, slack_y = EDGE_TOLERANCE * width, EDGE_TOLERANCE * height
    if x1 < -slack_x or y1 < -slack_y or x2 > width + slack_x or y2 > height + slack_y:
        return None, f"box ({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}) is outside the {width}x{height} image"
    clipped = (max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2))
    return clipped, None


def checked_box(
    box: RawBox,
    taxonomy: Taxonomy,
    width: int,
    height: int,
    declared: tuple[int, int] | None,
    min_side: float = 1.0,
) -> tuple[Label | None, str]:
    """One box as a pixel label with its taxonomy name, or why it is refused (unknown label, rotated,
    not finite, empty, outside the image)."""
    cls = taxonomy.resolve(box.label)
    if cls is None:
        return (
            None,
            f"label {box.label!r} is neither a taxonomy class nor an alias ({', '.join(taxonomy.names)})",
        )
    if box.rotation % 360:
        return None, f"rotated box ({box.rotation:g} degrees): the detector takes upright boxes"
    if box.points:
        xyxy, why = check_polygon(box, width, height, declared, min_side)
    else:
        xyxy, why = check_box(to_pixels(box, width, height, declared), width, height, min_side)
    if xyxy is None:
        return None, str(why) + pixels_hint(box)
    return Label(cls.name, xyxy), ""


def check_polygon(
    box: RawBox, width: int, height: int, declared: tuple[int, int] | None, min_side: float
) -> tuple[tuple[float, float, float, float] | None, str | None]:
    """A polygon's enclosing box clipped to the photo (an object drawn past its edge is still the
    photo's object), or why it is refused: no point of it inside the photo, or empty once clipped."""
    pixels = [
        to_pixels(replace(box, coords=(x, y, 0.0, 0.0)), width, height, declared)[:2] for x, y in box.points
    ]
    slack_x, slack_y = EDGE_TOLERANCE * width, EDGE_TOLERANCE * height
    if not any(-slack_x <= x <= width + slack_x and -slack_y <= y <= height + slack_y for x, y in pixels):
        x1, y1, x2, y2 = to_pixels(box, width, height, declared)
        return None, (
            f"polygon of {len(pixels)} points around ({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}) has no point "
            f"inside the {width}x{height} image"
        )
    x1, y1, x2, y2 = to_pixels(box, width, height, declared)
    clipped = (max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2))
    return check_box(clipped, width, height, min_side)


def pixels_hint(box: RawBox) -> str:
    """Why a box in relative units ends past the image, when it looks like pixels given instead:
    the refusal shows pixels converted from them, numbers the annotator never wrote."""
    a, b, w, h = box.coords
    if box.points:  # its numbers are points, not these
        return ""
    if box.unit == "percent":  # Label Studio: x, y of the top left corner
        full, right, bottom, names = 100.0, a + w, b + h, "x {:g}, y {:g}, width {:g}, height {:g}"
    elif box.unit == "yolo":  # centre, width, height
        full, right, bottom, names = 1.0, a + w / 2, b + h / 2, "{:g} {:g} {:g} {:g}"
    else:
        return ""
    if max(right, bottom) <= full * (1 + EDGE_TOLERANCE):
        return ""
    unit = "percent of the image (0-100)" if full == 100.0 else "fractions of the image (0-1)"
    return f" (given as {names.format(a, b, w, h)}: these are {unit}, not pixels)"


def annotation_problems(result: list[Any], where: str, taxonomy: Taxonomy) -> list[Problem]:
    """What an import would refuse in one Label Studio annotation, told before its image is read
    (the webhook answers it at once): regions without their box, labels that are no taxonomy class,
    rotated, NaN, empty or out-of-image boxes and polygons (of the size the result declares; percent
    without one, where a box is empty only without area: under 1 % of a side may be many pixels of
    the image the import reads), objects drawn as keypoints, brushes or ellipses beside boxes."""
    problems: list[Problem] = []
    declared: list[tuple[int, int]] = []
    other = Counter[str]()
    boxes = result_boxes(result, where, problems, declared, other)
    if boxes and (objects := sorted(kind for kind in other if is_object_kind(kind))):
        problems.append(Problem(where, beside_boxes(objects)))
    width, height = declared[0] if declared else (100, 100)
    for box in boxes:
        label, why = checked_box(box, taxonomy, width, height, None, 1.0 if declared else 0.0)
        if label is None:
            problems.append(Problem(box.where, why))
    return problems


def id_problem(holder: Any, at: str, kind: str) -> Problem:
    """A missing or impossible id of a task or annotation, saying what an id is (a 100-digit number
    was told "a task needs its id (a number, got 999...999)")."""
    if isinstance(holder, dict) and holder.get("id") is not None:
        return Problem(at, not_an_id(holder["id"]))
    article = "an" if kind[0] in "aeiou" else "a"
    got = "no id" if isinstance(holder, dict) else f"no {kind} object"
    return Problem(at, f"{article} {kind} needs its id (got {got})")


def task_problems(
    task: Any,
    annotation: Any,
    taxonomy: Taxonomy,
    finder: ImageFinder,
    task_at: str = "task",
    where: str = "annotation",
) -> list[Problem]:
    """What refuses one task with its annotation wherever it comes in (the webhook, `/train`,
    `data pull`), so that what the inbox keeps is what an import takes: a task with its id and
    data, an annotation with an id and a list of regions, no half character anywhere (the inbox
    file could not be written), the task's image named inside the local-files root and never a
    `data:` URI or another server's URL, each box upright, finite, inside the image and of a
    taxonomy class, and then the image itself, found and decoded as the import will (`read_image`
    with the import's `finder`): the task's photo must be there. A cancelled annotation (a skipped
    task) is checked for its ids only: nothing of it is kept. Refusals name references as sent,
    never the server's folders."""
    images = finder.tasks
    if not isinstance(task, dict) or not is_id(task.get("id")):
        return [id_problem(task, f"{task_at}.id", "task")]
    if not isinstance(task.get("data"), dict):
        return [Problem(f"{task_at}.data", "a task needs its data (an object with the image)")]
    if not isinstance(annotation, dict) or not is_id(annotation.get("id")):
        return [id_problem(annotation, f"{where}.id", "annotation")]
    result = annotation.get("result", [])
    if not isinstance(result, list):
        return [Problem(f"{where}.result", f"expected a list of regions, got {shown(result)}")]
    if annotation.get("was_cancelled"):
        return []
    if (field := lone_surrogate({task_at: task, where: annotation})) is not None:
        return [Problem(field.lstrip("."), "text with half a character (a lone \\uD800-\\uDFFF escape)")]
    try:
        ref = image_of_task(task["data"], f"{task_at}.data")
    except AnnotationError as err:
        return [err.problem()]
    try:
        if (why := foreign_url(ref, images.base_url)) is not None:
            raise AnnotationError(shown(ref), why)
        images.local(ref)  # a local one without a files root, or out of it
    except AnnotationError as err:  # the reference as sent, and why: no server path
        return [Problem(f"{task_at}.data", str(err))]
    if problems := annotation_problems(result, f"{where}.result", taxonomy):
        return problems  # told before the image is read (or fetched from Label Studio)
    try:
        read_image(ref, None, finder, images.max_bytes)
    except AnnotationError as err:
        return [Problem(f"{task_at}.data", f"the photo of task {shown(task['id'])}, {err}")]
    except ImageError as err:  # its path is the server's: the reference as sent instead
        return [Problem(f"{task_at}.data", f"the photo of task {shown(task['id'])}, {ref!r}: {err.reason}")]
    return []


def validate(
    export: ReadExport,
    finder: ImageFinder,
    taxonomy: Taxonomy,
    *,
    negatives: bool = False,
    labelled: Sequence[str] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[list[Sample], list[Problem]]:
    """Resolve images and turn raw boxes into pixel labels with taxonomy names; collect problems.

    `labelled`: the taxonomy classes the annotators labelled (default: the export's own label list
    or its project's labelling config). Never the whole taxonomy by default: a class nobody could
    draw would be taught as background.
    """
    problems = list(export.problems)
    samples: list[Sample] = []
    seen: dict[str, str] = {}
    for raw in tqdm(export.samples, desc="check images", file=sys.stderr, disable=len(export.samples) < 200):
        if raw.broken:  # its refused region is named among the problems; the rest is no whole image
            continue
        names = labelled if labelled is not None else raw.labelled
        if names is None:
            project = f"project {raw.project}" if raw.project else "the project"
            problems.append(
                Problem(
                    raw.where,
                    f"which classes could its annotators label? the labelling config of {project} is "
                    "needed (--label-config FILE, --project with Label Studio's URL and token, "
                    "or --labelled)",
                )
            )
            continue
        try:
            path, width, height, phash = read_image(raw.image, raw.base, finder, limits.max_bytes)
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
        drawn: dict[tuple[str, tuple[float, ...]], str] = {}  # each box once, to the tenth of a pixel
        for box in raw.boxes:
            label, why = checked_box(box, taxonomy, width, height, raw.declared_size)
            if label is None:
                problems.append(Problem(box.where, why))
                bad = True
                continue
            key = (label.name, tuple(round(v, 1) for v in label.xyxy))  # as the manifest keeps it
            if key in drawn:  # pasted twice, or an export written twice over: taught twice as much
                problems.append(Problem(box.where, f"the same {label.name} box as {drawn[key]}"))
                bad = True
                continue
            drawn[key] = box.where
            labels.append(label)
        if bad:
            continue
        if not labels and not (negatives or raw.confirmed_empty):
            problems.append(
                Problem(raw.where, "no boxes: not taken as a negative image unless --negatives is given")
            )
            continue
        sha = file_sha256(path)
        if sha in seen:
            problems.append(Problem(raw.where, f"the same image as {seen[sha]}"))
            continue
        seen[sha] = raw.where
        chosen = {c.name for c in map(taxonomy.resolve, names) if c}
        covered = [n for n in taxonomy.names if n in chosen]  # taxonomy order
        samples.append(Sample(path.resolve(), sha, width, height, labels, tuple(covered), raw.where, phash))
    return samples, problems
