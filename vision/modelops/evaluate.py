"""`streetorder evaluate`: per-class precision, recall, AP50, AP50-95 of a model on a labelled set.

Any ultralytics data.yaml whose class names are taxonomy names or aliases can be used. Data sets
here are partially labelled (garbage-cn never labels cars), so only the classes a set labels are
scored on it: a detected car on a garbage-cn image is not a false positive. Matching, AP and the
confusion matrix are ultralytics' own functions, so numbers compare with `yolo val`.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv
from tqdm import tqdm

from vision.core.detector import Detector
from vision.core.imageio import read_bgr
from vision.core.taxonomy import Taxonomy, TaxonomyError
from vision.data.annotations.coords import from_yolo
from vision.data.datamix import image_files, label_path, labels_sha256, read_data_yaml, split_dirs

EVAL_CONFIDENCE = 0.001  # keep low scores: AP integrates over the whole precision-recall curve
CONFUSION_CONFIDENCE = 0.25  # the confusion matrix counts what a user would see


@dataclass(frozen=True)
class ClassMetrics:
    instances: int
    precision: float | None  # None: the split has no instance of the class
    recall: float | None
    ap50: float | None
    ap50_95: float | None


@dataclass
class Evaluation:
    model: str
    data: Path
    split: str
    images: int
    classes: dict[str, ClassMetrics]
    ignored_classes: list[str] = field(default_factory=list)  # data set classes outside the taxonomy
    plots: list[Path] = field(default_factory=list)
    # detections per image, at the class's min_confidence, of classes the set does not label: on a
    # set that has none of them (flyers on vehicle photos) this is the false-positive rate
    unlabelled_per_image: dict[str, float] = field(default_factory=dict)
    labels_sha256: str = ""  # of the split's file names and label texts (vision.data.datamix.labels_sha256)
    # per class, on the photos where reviews confirmed it absent: {"photos": n, "detections": k} at the
    # class's min_confidence; every one of them is a false finding
    false_detections: dict[str, dict[str, int]] = field(default_factory=dict)

    def _scored(self) -> list[ClassMetrics]:
        return [m for m in self.classes.values() if m.instances]

    @property
    def map50(self) -> float:
        scored = self._scored()
        return float(np.mean([m.ap50 for m in scored])) if scored else 0.0

    @property
    def map50_95(self) -> float:
        scored = self._scored()
        return float(np.mean([m.ap50_95 for m in scored])) if scored else 0.0

    def to_json(self) -> dict[str, Any]:
        """The object `evaluate --json` prints (issue 3's schema; `confirmed_absent` with --reviews)."""
        payload = {
            "model": self.model,
            "map50": round(self.map50, 4),
            "map50_95": round(self.map50_95, 4),
            "classes": {
                name: {
                    "ap50": _round(m.ap50),
                    "ap50_95": _round(m.ap50_95),
                    "precision": _round(m.precision),
                    "recall": _round(m.recall),
                    "instances": m.instances,
                }
                for name, m in self.classes.items()
            },
            "unlabelled_per_image": {name: round(v, 4) for name, v in self.unlabelled_per_image.items()},
        }
        if self.false_detections:
            payload["confirmed_absent"] = {
                name: {**counts, "per_photo": round(counts["detections"] / counts["photos"], 4)}
                for name, counts in self.false_detections.items()
            }
        return payload


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def read_labels(
    image: Path, shape: tuple[int, int], class_map: dict[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """YOLO labels of an image (boxes or polygons, normalised) -> taxonomy ids and pixel xyxy.

    Classes outside the taxonomy are dropped; a malformed line names the file and line.
    """
    path = label_path(image)
    height, width = shape
    classes, boxes = [], []
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            dataset_class, coords = int(float(fields[0])), np.array(fields[1:], dtype=float)
        except ValueError as err:
            raise TaxonomyError(f"{path}:{number}: not a YOLO label line: {line!r}") from err
        if len(coords) == 4:
            cx, cy, w, h = coords
            box = from_yolo(cx, cy, w, h, width, height)
        elif len(coords) >= 6 and len(coords) % 2 == 0:  # a polygon: its bounding box
            xs, ys = coords[0::2], coords[1::2]
            box = (xs.min() * width, ys.min() * height, xs.max() * width, ys.max() * height)
        else:
            raise TaxonomyError(f"{path}:{number}: expected 'class cx cy w h' or a polygon, got {line!r}")
        if dataset_class in class_map:
            classes.append(class_map[dataset_class])
            boxes.append(box)
    return np.array(classes, dtype=int), np.array(boxes, dtype=np.float32).reshape(-1, 4)


def evaluate(
    detector: Detector,
    data_yaml: Path,
    taxonomy: Taxonomy,
    split: str = "val",
    out: Path | None = None,
    limit: int | None = None,
    rename: dict[str, str] | None = None,
    absent: dict[str, frozenset[str]] | None = None,
) -> Evaluation:
    """Run the detector over a split and score the classes the data set labels.

    `rename` reads a data set class as another taxonomy class (`win_ad` as `flyer`): how a set
    labelled for something close is used to measure the recall of a class nobody labelled.
    `absent` (photo file name -> classes reviews confirmed absent there,
    vision.data.reviews.confirmed_absent) counts the detections of those classes on those photos.
    """
    import torch
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.utils.metrics import ConfusionMatrix, ap_per_class

    data = read_data_yaml(data_yaml)
    dataset_names = data["names"].items() if isinstance(data["names"], dict) else enumerate(data["names"])
    renamed = {int(i): (rename or {}).get(str(name), str(name)) for i, name in dataset_names}
    class_map, ignored = taxonomy.map_names(renamed)
    scored = sorted(set(class_map.values()))
    if not scored:
        listed = list(renamed.values())
        raise TaxonomyError(f"{data_yaml}: none of its classes {listed} is a taxonomy class or alias")
    images = [f for folder in split_dirs(data_yaml, data, split) for f in image_files(folder)][:limit]
    if not images:
        raise TaxonomyError(f"{data_yaml}: split '{split}' has no images")
    compact = {taxonomy_id: i for i, taxonomy_id in enumerate(scored)}  # confusion matrix wants 0..k-1
    confusion = ConfusionMatrix(names={i: taxonomy.names[t] for t, i in compact.items()})
    matcher = DetectionValidator(save_dir=out or Path(tempfile.gettempdir()))  # for its matching only
    to_compact = np.vectorize(compact.__getitem__, otypes=[np.float32])
    correct, confidences, predicted, targets = [], [], [], []
    unscored = [c for c in taxonomy.classes if c.index not in scored]
    unlabelled_seen = dict.fromkeys((c.name for c in unscored), 0)
    # only the photos looked at (`limit`): a class confirmed absent on none of them has no rate
    looked_at = {image.name for image in images}
    absent = {photo: classes for photo, classes in (absent or {}).items() if photo in looked_at}
    false_seen = {name: {"photos": 0, "detections": 0} for name in sorted(set().union(*absent.values()))}
    for image_path in tqdm(images, desc=f"evaluate {data_yaml.parent.name}/{split}", file=sys.stderr):
        image = read_bgr(image_path)
        if image is None:
            raise TaxonomyError(f"{image_path}: cannot be read as an image")
        detections = detector(image)
        for cls in unscored:
            _, scores, _ = scored_arrays(detections, [cls.index])
            unlabelled_seen[cls.name] += int((scores >= cls.min_confidence).sum())
        for name in absent.get(image_path.name, ()):
            cls = taxonomy.classes[taxonomy.names.index(name)]
            _, scores, _ = scored_arrays(detections, [cls.index])
            false_seen[name]["photos"] += 1
            false_seen[name]["detections"] += int((scores >= cls.min_confidence).sum())
        pred_boxes, pred_scores, pred_classes = scored_arrays(detections, scored)
        gt_classes, gt_boxes = read_labels(image_path, image.shape[:2], class_map)
        preds = {
            "bboxes": torch.from_numpy(pred_boxes),
            "cls": torch.from_numpy(pred_classes.astype(np.float32)),
            "conf": torch.from_numpy(pred_scores),
        }
        truth = {"bboxes": torch.from_numpy(gt_boxes), "cls": torch.from_numpy(gt_classes.astype(np.float32))}
        correct.append(matcher._process_batch(preds, truth)["tp"])
        confidences.append(pred_scores)
        predicted.append(pred_classes)
        targets.append(gt_classes)
        confusion.process_batch(
            {**preds, "cls": torch.from_numpy(to_compact(pred_classes))},
            {**truth, "cls": torch.from_numpy(to_compact(gt_classes))},
            conf=CONFUSION_CONFIDENCE,
        )
    target_cls = np.concatenate(targets)
    names = {t: taxonomy.names[t] for t in scored}
    stats = ap_per_class(
        np.concatenate(correct),
        np.concatenate(confidences),
        np.concatenate(predicted),
        target_cls,
        plot=out is not None,
        save_dir=out or Path("."),
        names=names,
    )
    precision, recall, ap, present = stats[2], stats[3], stats[5], stats[6]
    row = {int(c): i for i, c in enumerate(present)}
    classes = {}
    for taxonomy_id in scored:
        count = int((target_cls == taxonomy_id).sum())
        i = row.get(taxonomy_id)
        classes[taxonomy.names[taxonomy_id]] = (
            ClassMetrics(count, float(precision[i]), float(recall[i]), float(ap[i, 0]), float(ap[i].mean()))
            if i is not None
            else ClassMetrics(count, None, None, None, None)
        )
    plots: list[Path] = []
    if out is not None:
        confusion.plot(normalize=True, save_dir=out)
        confusion.plot(normalize=False, save_dir=out)
        plots = sorted(out.glob("*.png"))
    version = getattr(detector, "version", "unknown")
    per_image = {name: count / len(images) for name, count in unlabelled_seen.items()}
    return Evaluation(
        version,
        data_yaml,
        split,
        len(images),
        classes,
        ignored,
        plots,
        per_image,
        labels_sha256(images),
        false_seen,
    )


def scored_arrays(
    detections: sv.Detections, class_ids: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes, scores, classes of the detections a partially labelled set can judge, best first.

    Only the classes the set labels count: it cannot say whether a car on a garbage photo is right.
    """
    classes = np.asarray(detections.class_id if detections.class_id is not None else [], dtype=int)
    scores = np.asarray(detections.confidence if detections.confidence is not None else [], dtype=np.float32)
    keep = np.isin(classes, class_ids)
    order = np.argsort(-scores[keep], kind="stable")
    return detections.xyxy[keep][order].astype(np.float32), scores[keep][order], classes[keep][order]


def print_table(result: Evaluation, stream: Any = None) -> None:
    stream = stream or sys.stdout
    header = f"{'class':<14}{'instances':>10}{'P':>8}{'R':>8}{'AP50':>8}{'AP50-95':>9}"
    print(header, file=stream)

    def cell(value: float | None, width: int) -> str:
        return f"{'-' if value is None else f'{value:.3f}':>{width}}"

    for name, m in result.classes.items():
        print(
            f"{name:<14}{m.instances:>10}{cell(m.precision, 8)}{cell(m.recall, 8)}{cell(m.ap50, 8)}"
            f"{cell(m.ap50_95, 9)}",
            file=stream,
        )
    total = sum(m.instances for m in result.classes.values())
    print(f"{'all':<14}{total:>10}{'':>16}{result.map50:>8.3f}{result.map50_95:>9.3f}", file=stream)
    seen = ", ".join(f"{name} {count:.2f}" for name, count in result.unlabelled_per_image.items() if count)
    if seen:
        print(f"detections per image of classes this set does not label: {seen}", file=stream)
    for name, counts in result.to_json().get("confirmed_absent", {}).items():
        print(
            f"false {name}: {counts['detections']} on {counts['photos']} photos where reviews confirmed it "
            f"absent ({counts['per_photo']:.2f} per photo)",
            file=stream,
        )


def card_entry(result: Evaluation) -> dict[str, Any]:
    """What a model card keeps of one evaluation (per data set)."""
    return {
        "data": str(result.data),
        "split": result.split,
        "images": result.images,
        "labels_sha256": result.labels_sha256,
        "model": result.model,
        "ignored_classes": result.ignored_classes,
        **{k: v for k, v in result.to_json().items() if k != "model"},
    }
