"""What annotators should label goes out: Label Studio tasks with pre-annotations (`predictions`)
and the labelling config, and an Ultralytics YOLO zip that CVAT imports."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vision.core.taxonomy import Taxonomy
from vision.data.annotations.coords import to_percent, to_yolo
from vision.data.annotations.label_config import label_config
from vision.data.annotations.records import Label


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
    items: Sequence[QueuedImage], out: Path, image_url: Callable[[QueuedImage], str], taxonomy: Taxonomy
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
    (out / "label_config.xml").write_text(label_config(taxonomy), encoding="utf-8")
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
