"""`streetorder data synth-flyers`: backgrounds in, an ultralytics dataset of synthetic flyer images
out (labels, flyers.jsonl, a contact sheet, synth.json)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from vision.core.imageio import read_bgr, write_bgr
from vision.core.taxonomy import Taxonomy, normalise_name
from vision.data.annotations.coords import to_yolo
from vision.data.datamix import image_files, label_path, read_data_yaml
from vision.data.flyers.compositing import example_rng, render_example
from vision.data.flyers.fonts import find_cjk_fonts
from vision.data.flyers.scene import scene_from_labels, unlabelled_scene

FLYER_CLASS = "flyer"


@dataclass(frozen=True)
class Background:
    image: Path
    names: tuple[str, ...]  # normalised class names of its dataset
    dataset: str  # the data.yaml it belongs to, or "" for an unlabelled folder


def dataset_names(folder: Path) -> tuple[str, tuple[str, ...]]:
    """The data.yaml above a folder of images and its class names (normalised); none if unlabelled."""
    for parent in [folder, *folder.parents][:4]:
        data_yaml = parent / "data.yaml"
        if data_yaml.is_file():
            names = read_data_yaml(data_yaml)["names"]
            values = names.values() if isinstance(names, dict) else names
            return str(data_yaml.resolve()), tuple(normalise_name(str(n)) for n in values)
    return "", ()


def list_backgrounds(folders: Sequence[Path]) -> list[Background]:
    backgrounds = []
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"--backgrounds: {folder} is not a folder")
        dataset, names = dataset_names(folder)
        files = image_files(folder)
        if not files:
            raise FileNotFoundError(f"--backgrounds: no images in {folder}")
        backgrounds += [Background(f, names, dataset) for f in files]
    return backgrounds


def labelled_classes(backgrounds: Sequence[Background], taxonomy: Taxonomy) -> list[str]:
    """Output classes: the flyer class, then the taxonomy classes EVERY background dataset labels.

    A class only some backgrounds label would be unlabelled on the others, and the per-source
    class mask of a mix (vision/data/datamix.py) covers a whole source: so it is dropped instead.
    """
    common: set[str] | None = None
    for dataset in {b.dataset: b.names for b in backgrounds}.values():
        mapped = {c.name for c in (taxonomy.resolve(n) for n in dataset) if c is not None}
        common = mapped if common is None else common & mapped
    order = [name for name in taxonomy.names if name in (common or set()) and name != FLYER_CLASS]
    return [FLYER_CLASS, *order]


def read_rows(image: Path) -> np.ndarray:
    path = label_path(image)
    if not path.exists():
        return np.zeros((0, 5))
    rows = [
        line.split()[:5] for line in path.read_text(encoding="utf-8").splitlines() if len(line.split()) >= 5
    ]
    return np.array(rows, dtype=float).reshape(-1, 5)


def output_rows(
    background: Background, rows: np.ndarray, classes: Sequence[str], taxonomy: Taxonomy
) -> list[str]:
    """The background's own labels of the output classes, renumbered."""
    lines = []
    for row in rows:
        cls = taxonomy.resolve(background.names[int(row[0])]) if background.names else None
        if cls is not None and cls.name in classes:
            lines.append(f"{classes.index(cls.name)} " + " ".join(f"{v:.6f}" for v in row[1:5]))
    return lines


def contact_sheet(
    samples: Sequence[tuple[np.ndarray, list[tuple[int, int, int, int]]]], columns: int = 4, tile: int = 360
) -> np.ndarray:
    """Sample images with their flyer boxes (magenta), then a row of flyer close-ups."""
    tiles: list[np.ndarray] = []
    crops: list[np.ndarray] = []
    for image, boxes in samples:
        for x1, y1, x2, y2 in boxes:
            if y2 - y1 >= 10 and len(crops) < 2 * columns:
                side = max(x2 - x1, y2 - y1)
                cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
                crop = image[max(0, cy - side) : cy + side, max(0, cx - side) : cx + side]
                crops.append(cv2.resize(crop, (tile // 2, tile // 2), interpolation=cv2.INTER_NEAREST))
        scale = tile / max(image.shape[:2])
        small = cv2.resize(
            image,
            (round(image.shape[1] * scale), round(image.shape[0] * scale)),
            interpolation=cv2.INTER_AREA,
        )
        for x1, y1, x2, y2 in boxes:
            cv2.rectangle(
                small,
                (int(x1 * scale) - 1, int(y1 * scale) - 1),
                (int(x2 * scale) + 1, int(y2 * scale) + 1),
                (255, 0, 255),
                1,
            )
        framed = np.full((tile, tile, 3), 40, np.uint8)
        framed[: small.shape[0], : small.shape[1]] = small
        tiles.append(framed)
    while len(tiles) % columns:
        tiles.append(np.full((tile, tile, 3), 40, np.uint8))
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    if crops:
        while len(crops) < 2 * columns:
            crops.append(np.full((tile // 2, tile // 2, 3), 40, np.uint8))
        rows.append(np.hstack(crops[: 2 * columns]))
    return np.vstack(rows)


@dataclass(frozen=True)
class Summary:
    out: str
    images: int
    flyers: int
    classes: list[str]
    seconds: float
    images_per_second: float
    flyer_height_px: dict[str, float]  # quantiles p10 / p50 / p90


def synthesize(
    backgrounds: Sequence[Path],
    out: Path,
    count: int,
    taxonomy: Taxonomy,
    seed: int = 0,
    val_share: float = 0.1,
    overwrite: bool = False,
    progress: bool = True,
    upscale: int = 1,
) -> Summary:
    """Write `count` synthetic images with flyers as an ultralytics dataset under `out`.

    A background is used in one split only (its split is drawn once from the seed), so val
    images never share a photo with train images. `upscale` writes the same set (same seed, same
    flyers) at that many times the pixels (render_example).
    """
    if upscale < 1:
        raise ValueError(f"--upscale must be at least 1, got {upscale}")
    fonts = find_cjk_fonts()
    if count < 1:
        raise ValueError(f"--count must be at least 1, got {count}")
    pool = list_backgrounds(backgrounds)
    if out.exists() and any(out.iterdir()):
        if not (out / "synth.json").exists():  # not ours: nothing in it is deleted
            raise FileExistsError(
                f"{out} is not empty and holds no synthetic flyer set; choose an empty folder"
            )
        if not overwrite:
            made = json.loads((out / "synth.json").read_text(encoding="utf-8") or "{}")
            which = "an unfinished (interrupted)" if made.get("unfinished") else "a"
            raise FileExistsError(
                f"{out} already holds {which} synthetic flyer set; pass --overwrite to replace it"
            )
    for sub in ("images", "labels"):
        shutil.rmtree(out / sub, ignore_errors=True)
    # ours from the first image on, so that a run stopped half-way (Ctrl-C, an unreadable background)
    # can be replaced with --overwrite; its data.yaml comes last: a half set is no dataset
    out.mkdir(parents=True, exist_ok=True)
    (out / "data.yaml").unlink(missing_ok=True)
    (out / "synth.json").write_text(json.dumps({"unfinished": True}), encoding="utf-8")
    classes = labelled_classes(pool, taxonomy)
    order_rng = np.random.default_rng(seed)
    order = order_rng.permutation(len(pool))
    in_val = order_rng.random(len(pool)) < val_share
    started = time.perf_counter()
    samples: list[tuple[np.ndarray, list[tuple[int, int, int, int]]]] = []
    heights: list[int] = []
    records = []
    for index in tqdm(range(count), desc="synth-flyers", unit="img", disable=not progress):
        pick = int(order[index % len(pool)])
        background = pool[pick]
        image = read_bgr(background.image)
        if image is None:
            raise ValueError(f"{background.image}: not a readable image")
        rows = read_rows(background.image)
        scene = (
            scene_from_labels(image, rows, background.names) if background.names else unlabelled_scene(image)
        )
        example = render_example(scene, example_rng(seed, index), fonts, upscale=upscale)
        split = "val" if in_val[pick] else "train"
        name = f"flyers_{seed}_{index:06d}"
        _, encoded = cv2.imencode(".jpg", example.image, [cv2.IMWRITE_JPEG_QUALITY, example.jpeg_quality])
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        (out / "images" / split / f"{name}.jpg").write_bytes(encoded.tobytes())
        height, width = example.image.shape[:2]
        lines = output_rows(background, rows, classes, taxonomy)
        lines += [f"0 {to_yolo(p.xyxy, width, height)}" for p in example.flyers]
        (out / "labels" / split / f"{name}.txt").write_text(
            "".join(f"{line}\n" for line in lines), encoding="utf-8"
        )
        heights += [p.xyxy[3] - p.xyxy[1] for p in example.flyers]
        records.append(
            {
                "image": f"images/{split}/{name}.jpg",
                "background": str(background.image),
                "flyers": [
                    {"xyxy": list(p.xyxy), "style": p.style, "text": asdict(p.text)} for p in example.flyers
                ],
            }
        )
        if len(samples) < 16 and example.flyers:
            written = cv2.imdecode(
                encoded, cv2.IMREAD_COLOR
            )  # the sheet shows what was written, JPEG and all
            samples.append((np.asarray(written), [p.xyxy for p in example.flyers]))
    seconds = time.perf_counter() - started
    with (out / "flyers.jsonl").open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    write_bgr(out / "contact_sheet.png", contact_sheet(samples))
    header = (
        "# Synthetic posted flyers on real backgrounds (vision/data/flyers/); no real flyer labels.\n"
        f"# streetorder data synth-flyers --backgrounds {' '.join(str(b) for b in backgrounds)} "
        f"--out {out} --count {count} --seed {seed}" + (f" --upscale {upscale}" if upscale > 1 else "") + "\n"
        f"# fonts: {', '.join(fonts)}\n"
        "# Classes other than flyer are the background datasets' own labels that all of them share.\n"
    )
    body = yaml.safe_dump(
        {
            "path": str(out.resolve()),
            "train": "images/train",
            "val": "images/val",
            "names": dict(enumerate(classes)),
        },
        allow_unicode=True,
        sort_keys=False,
    )
    (out / "data.yaml").write_text(header + body, encoding="utf-8")
    quantiles = np.percentile(heights, [10, 50, 90]) if heights else np.zeros(3)
    summary = Summary(
        str(out),
        count,
        len(heights),
        classes,
        round(seconds, 1),
        round(count / seconds, 2),
        {f"p{q}": float(v) for q, v in zip((10, 50, 90), quantiles, strict=True)},
    )
    (out / "synth.json").write_text(
        json.dumps(
            {
                **asdict(summary),
                "seed": seed,
                "upscale": upscale,
                "fonts": list(fonts),
                "backgrounds": [str(b) for b in backgrounds],
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return summary
