"""Tiny synthetic detection data sets and one tiny trained model, written at test time.

Images are noise (values below 100) with solid, saturated rectangles, one colour per class, so a
colour threshold finds every box exactly. Two sources label different classes (through aliases)
to exercise the partial-label training path.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from configured import CONFIGS, TAXONOMY

# taxonomy class name -> BGR colour of its rectangles
COLOURS = {
    "garbage": (0, 0, 255),
    "overflow": (0, 255, 0),
    "car": (255, 0, 0),
    "motorcycle": (0, 255, 255),
    "poster": (255, 0, 255),
}
# two sources: their own class names (aliases of the taxonomy's), and an unknown class "tree"
SOURCES = {
    "bins": {"names": ["garbage", "full_bin", "tree"], "draws": ["garbage", "overflow", "car"]},
    "roads": {"names": ["automobile", "bike"], "draws": ["car", "motorcycle", "garbage"]},
}


@dataclass(frozen=True)
class Box:
    name: str  # taxonomy class name (decides the colour)
    xyxy: tuple[int, int, int, int]


def draw(size: int, boxes: list[Box], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 100, (size, size, 3), dtype=np.uint8)
    for box in boxes:
        x1, y1, x2, y2 = box.xyxy
        image[y1:y2, x1:x2] = COLOURS[box.name]
    return image


def random_boxes(rng: np.random.Generator, size: int, names: list[str], count: int) -> list[Box]:
    """Non-overlapping boxes: one per quadrant, so no rectangle hides another."""
    half = size // 2
    corners = [(0, 0), (half, 0), (0, half), (half, half)]
    boxes = []
    for (cx, cy), name in zip(rng.permutation(corners)[:count], rng.choice(names, count), strict=True):
        w, h = rng.integers(half // 2, half - 2, 2)
        x, y = cx + rng.integers(1, half - w), cy + rng.integers(1, half - h)
        boxes.append(Box(str(name), (int(x), int(y), int(x + w), int(y + h))))
    return boxes


def yolo_box(xyxy: tuple[int, int, int, int], size: int) -> str:
    """Pixel xyxy -> YOLO's normalised 'cx cy w h' (only at this export edge)."""
    x1, y1, x2, y2 = xyxy
    return " ".join(f"{v / size:.6f}" for v in ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1))


def write_set(root: Path, dataset_names: list[str], images: dict[str, list[list[Box]]], size: int) -> Path:
    """Write an ultralytics data set (PNG images, YOLO labels) and return its data.yaml.

    A box is labelled with the data set's id of its class name (taxonomy name or alias given in
    `dataset_names` by position); boxes of classes the set does not name stay unlabelled.
    """
    from vision.core.taxonomy import load_taxonomy

    taxonomy = load_taxonomy(CONFIGS / "taxonomy.yaml")
    label_of = {taxonomy.resolve(n).name: i for i, n in enumerate(dataset_names) if taxonomy.resolve(n)}
    for split, scenes in images.items():
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for index, boxes in enumerate(scenes):
            stem = f"{root.name}_{split}_{index:03d}"
            cv2.imwrite(str(root / "images" / split / f"{stem}.png"), draw(size, boxes, seed=index))
            lines = [f"{label_of[b.name]} {yolo_box(b.xyxy, size)}" for b in boxes if b.name in label_of]
            (root / "labels" / split / f"{stem}.txt").write_text("\n".join(lines), encoding="utf-8")
    data_yaml = root / "data.yaml"
    data_yaml.write_text(
        "# Source: synthetic rectangles written by tests/synthetic.py, licence CC0.\n"
        + yaml.safe_dump({"train": "images/train", "val": "images/val", "names": dataset_names}),
        encoding="utf-8",
    )
    return data_yaml


def write_mix(root: Path, size: int = 64, train: int = 8, val: int = 4) -> Path:
    """Two synthetic sources and a mix file over them; returns the mix file."""
    rng = np.random.default_rng(0)
    entries = []
    for name, spec in SOURCES.items():
        scenes = {
            split: [random_boxes(rng, size, spec["draws"], int(rng.integers(1, 4))) for _ in range(n)]
            for split, n in (("train", train), ("val", val))
        }
        data_yaml = write_set(root / name, spec["names"], scenes, size)
        entries.append({"name": name, "data": str(data_yaml)})
    mix = root / "mix.yaml"
    mix.write_text(yaml.safe_dump({"name": "synthetic-mix", "sources": entries}), encoding="utf-8")
    return mix


def has_colour(image_path: Path, name: str) -> bool:
    image = cv2.imread(str(image_path))
    return bool(np.all(image == COLOURS[name], axis=2).any())


def review_roads(data_root: Path, decide_image: Callable[[Path], tuple[str, str] | None]) -> Path:
    """A review file for the synthetic `roads` source: per photo, (class, decision) of one box."""
    from vision.core.files import file_sha256
    from vision.data.reviews import Proposal, write_reviews

    proposals = []
    for split in ("train", "val"):
        for image in sorted((data_root / "roads" / "images" / split).glob("*.png")):
            decided = decide_image(image)
            if decided is None:
                continue
            cls, decision = decided
            proposals.append(
                Proposal(len(proposals) + 1, "roads", split, image.name, file_sha256(image), 64, 64, cls,
                         (4.0, 4.0, 20.0, 20.0), 0.5, "m@1", "2026-12-04", decision, "tester", "2026-12-04")
            )  # fmt: skip
    return write_reviews(data_root / "roads.jsonl", proposals)


_TINY_RUN: dict[str, Path] = {}


def train_tiny(root: Path, name: str, **settings: Any) -> Path:
    """Train 1 epoch at 64 px on a synthetic mix written under root; the run folder."""
    from vision.modelops.train import train

    return train(
        data=write_mix(root / "data"),
        epochs=1,
        imgsz=64,
        batch=4,
        project=root / "runs",
        name=name,
        cache_dir=root / "cache",
        workers=0,
        taxonomy=TAXONOMY,
        **settings,
    )


def tiny_run() -> Path:
    """The tiny run from scratch, trained once per test process."""
    if "run" not in _TINY_RUN:
        _TINY_RUN["run"] = train_tiny(Path(tempfile.mkdtemp(prefix="streetorder-tiny-")), "tiny")
    return _TINY_RUN["run"]


def tiny_model(models_dir: Path) -> Path:
    """The tiny run packaged as models_dir/tiny with model.pt, model.onnx and card.yaml."""
    from vision.modelops.export import export_model, package

    folder = package(tiny_run() / "weights" / "best.pt", "tiny", models_dir=models_dir)
    export_model(folder, "onnx")
    return folder
