"""GPU relay: one 640-px training run that short-lived GPU hosts carry on in turns.

A GPU host here lives for minutes (its start-up, transfers and idle time all count), takes a few
tens of MiB per transfer, and has torch but neither ultralytics nor a network. So:

    streetorder relay pack                 here: the mix's photos as WebP in parts of `part_mib`, the
                                           ultralytics wheels and the checkpoint to start from
    python3 -m serve.cli relay leg ...        there: unpack the parts carried so far; once all are in,
                                           train (or resume) until the deadline, checkpointing every epoch
    streetorder relay land DIR             here: keep the resumable checkpoint and the leg's record in
                                           models/relay/NAME/, and a run folder for evaluate / export

The next leg packs models/relay/NAME/state.pt (weights, EMA, optimizer state, epoch) and resumes
the same schedule instead of starting again. configs/relay.yaml holds the settings.

Up to the training itself this module needs only the standard library, PyYAML, numpy and OpenCV,
so `leg` unpacks on a bare host; ultralytics comes from the wheels the bundle carried. Nothing the
leg imports needs pydantic or the settings (tests/test_relay.py runs it with pydantic blocked): the
taxonomy travels in the bundle, and the model registry (pydantic) is imported by `pack` alone.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from vision.core.files import file_sha256
from vision.core.taxonomy import TAXONOMY, Taxonomy, load_taxonomy
from vision.data.datamix import (
    Source,
    build_mix,
    image_files,
    keeps,
    label_path,
    load_mix,
    read_data_yaml,
    split_dirs,
)
from vision.data.reviews import ReviewError, read_reviews

BUNDLE = Path(".relay")  # git-ignored; the device tool carries repository paths only
STATE = "state.pt"  # the resumable checkpoint kept in models/relay/NAME/
LEGS = "legs.yaml"
MANIFEST = "relay.json"
PART_INFO = "part.json"
FINISH_S = 45.0  # kept free at the end of a leg: final validation of best.pt and copying the results
WHEEL_PACKAGES = ("ultralytics", "ultralytics-thop")  # what a torch-only host lacks for training
WEIGHT_SUFFIXES = (".pt", ".pth", ".safetensors", ".onnx", ".ckpt", ".bin", ".h5", ".msgpack", ".engine")


class RelayError(ValueError):
    """A relay step that cannot go on; the message says what to do."""


@dataclass(frozen=True)
class RelayConfig:
    """configs/relay.yaml, checked (vision/modelops/relay_config.py: read here, never on the leg's host)."""

    name: str
    mix: Path
    start: str
    imgsz: int
    epochs: int
    batch: int
    monitor_fraction: float
    webp_quality: int
    part_mib: float


def read_legs(relay_dir: Path) -> list[dict[str, Any]]:
    path = relay_dir / LEGS
    if not path.exists():
        return []
    legs = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    if not isinstance(legs, list):
        raise RelayError(f"{path}: expected a list of legs")
    return legs


# --- pack (here) -------------------------------------------------------------------------------


def start_checkpoint(config: RelayConfig, models_dir: Path) -> tuple[Path, bool]:
    """The relay's resumable checkpoint if a leg has run, else the start model's weights."""
    relay_dir = models_dir / "relay" / config.name
    state = relay_dir / STATE
    if state.exists():
        legs = read_legs(relay_dir)
        if legs and legs[-1]["epochs"]["to"] >= legs[-1]["epochs"]["of"]:
            raise RelayError(
                f"relay {config.name} finished its {legs[-1]['epochs']['of']} epochs: "
                "give configs/relay.yaml a new name to start another"
            )
        return state, True
    from vision.detect.registry import find_model  # pydantic: here only, never on the leg's host

    return find_model(config.start, models_dir).weights_for("ultralytics"), False


def source_data_yaml(original: Path) -> str:
    """A packed source's data.yaml: the original's comments (source, licence) and its class names,
    with the splits at images/train and images/val."""
    text = original.read_text(encoding="utf-8")
    comments = "".join(line + "\n" for line in text.splitlines() if line.lstrip().startswith("#"))
    body = {"train": "images/train", "val": "images/val", "names": read_data_yaml(original)["names"]}
    return comments + yaml.safe_dump(body, allow_unicode=True, sort_keys=False)


def fresh_reviews(source: Source, reviews: Path, taxonomy: Taxonomy) -> bytes:
    """The source's review file less the decisions on photos that changed since (checked here,
    against the originals: the host gets re-encoded copies whose sha256 cannot match)."""
    data = read_data_yaml(source.data_yaml)
    current = {
        image.name: file_sha256(image)
        for split in ("train", "val")
        for folder in split_dirs(source.data_yaml, data, split)
        for image in image_files(folder)
    }
    try:
        proposals = read_reviews(reviews, taxonomy)
    except ReviewError as err:
        raise RelayError(str(err)) from err
    kept = [p for p in proposals if current.get(p.image) == p.sha256]
    return "".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in kept).encode()


def to_webp(job: tuple[str, int]) -> bytes:
    path, quality = job
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise RelayError(f"{path}: not a readable image")
    ok, encoded = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, quality])
    if not ok:
        raise RelayError(f"{path}: WebP encoding failed")
    return encoded.tobytes()


class PartWriter:
    """Tar parts of at most `limit` bytes, each in its own folder partNN/ (one per transfer)."""

    def __init__(self, out: Path, limit: int, bundle_id: str):
        self.out, self.limit, self.bundle_id = out, limit, bundle_id
        self.parts: list[Path] = []
        self.tar: tarfile.TarFile | None = None
        self.size = 0

    def new_part(self) -> Path:
        self.close()
        folder = self.out / f"part{len(self.parts) + 1:02d}"
        folder.mkdir(parents=True)
        (folder / PART_INFO).write_text(json.dumps({"bundle": self.bundle_id, "part": folder.name}))
        self.parts.append(folder)
        self.size = 0
        return folder

    def add_file(self, source: Path, name: str) -> None:
        """A file beside the tar (the start checkpoint, the wheels), in the current part."""
        size = source.stat().st_size
        if size > self.limit:
            mib = self.limit / (1 << 20)
            raise RelayError(f"{source}: larger than a part of {mib:.1f} MiB (raise part_mib)")
        folder = self.parts[-1] if self.parts and self.size + size <= self.limit else self.new_part()
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        self.size += size

    def add_bytes(self, name: str, data: bytes) -> None:
        needed = len(data) + 1024  # tar header and padding
        if self.tar is not None and self.size + needed > self.limit:
            self.new_part()
        if self.tar is None:
            folder = self.parts[-1] if self.parts else self.new_part()
            self.tar = tarfile.open(folder / "data.tar", "w")  # noqa: SIM115 (closed by close())
        info = tarfile.TarInfo(name)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))
        self.size += needed

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()
            self.tar = None


def monitor_images(images: list[Path], fraction: float) -> set[Path]:
    """The train photos a relay holds out of its training to watch the run and pick best.pt: the
    val splits are the frozen holdout (configs/promotion.yaml), never used to pick anything.
    At least one a source, chosen by a hash of the file name (the same on every machine)."""
    if not images:
        return set()
    ranked = sorted(images, key=lambda image: hashlib.sha256(f"monitor/{image.name}".encode()).digest())
    return set(ranked[: max(1, round(fraction * len(images)))])


def packed_files(config: RelayConfig, taxonomy: Taxonomy) -> Iterator[tuple[str, Path, str]]:
    """(source, image, split) for every image a leg needs: the mix's train selection, a
    `monitor_fraction` of it moved to the leg's val split. No val-split photo travels."""
    _, sources = load_mix(config.mix, taxonomy)
    for source in sources:
        data = read_data_yaml(source.data_yaml)
        train = [
            image
            for folder in split_dirs(source.data_yaml, data, "train")
            for image in image_files(folder)
            if keeps(image, source.train_fraction)
        ]
        monitor = monitor_images(train, config.monitor_fraction)
        for image in train:
            yield source.name, image, "val" if image in monitor else "train"


def fetch_wheels(cache: Path) -> list[Path]:
    """Python 3.12 wheels of the ultralytics installed here, for a host that has only torch."""
    from importlib.metadata import version

    pins = [f"{name}=={version(name)}" for name in WHEEL_PACKAGES]
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.12", "--implementation", "cp", "-d", str(cache), *pins],
        check=True,
    )  # fmt: skip
    wanted = {pin.split("==")[0].replace("-", "_").lower(): pin.split("==")[1] for pin in pins}
    return sorted(
        wheel
        for wheel in cache.glob("*.whl")
        if wanted.get(wheel.name.split("-")[0].lower()) == wheel.name.split("-")[1]
    )


def pack(
    config: RelayConfig,
    taxonomy: Taxonomy,
    models_dir: Path,
    out: Path = BUNDLE,
    wheels: list[Path] | None = None,
    progress: Callable[[Iterator[Any], int], Iterator[Any]] | None = None,
) -> dict[str, Any]:
    """Write the bundle for the next leg into `out` (emptied first) and return its manifest. The
    bundle carries the taxonomy too: the leg maps the mix's classes with the one packed here."""
    start, resume = start_checkpoint(config, models_dir)
    mix_name, sources = load_mix(config.mix, taxonomy)
    files = list(packed_files(config, taxonomy))
    shutil.rmtree(out, ignore_errors=True)
    bundle_id = hashlib.sha256(f"{time.time_ns()}{config}".encode()).hexdigest()[:12]
    writer = PartWriter(out, int(config.part_mib * (1 << 20)), bundle_id)
    writer.new_part()
    writer.add_file(start, "start.pt")
    writer.add_file(taxonomy.source, TAXONOMY)
    for wheel in wheels or []:
        writer.add_file(wheel, f"wheels/{wheel.name}")
    for source in sources:
        writer.add_bytes(f"datasets/{source.name}/data.yaml", source_data_yaml(source.data_yaml).encode())
        if source.reviews is not None:
            writer.add_bytes(
                f"datasets/{source.name}/reviews.jsonl", fresh_reviews(source, source.reviews, taxonomy)
            )
    jobs = [(str(image), config.webp_quality) for _, image, _ in files]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        encoded = pool.map(to_webp, jobs, chunksize=16)
        if progress:
            encoded = progress(encoded, len(jobs))
        for (source_name, image, split), webp in zip(files, encoded, strict=True):
            folder = f"datasets/{source_name}"
            writer.add_bytes(f"{folder}/images/{split}/{image.name}.webp", webp)
            label = label_path(image)
            text = label.read_bytes() if label.exists() else b""
            writer.add_bytes(f"{folder}/labels/{split}/{image.stem}.txt", text)
    writer.close()
    legs = read_legs(models_dir / "relay" / config.name)
    manifest = {
        "bundle": bundle_id,
        "relay": config.name,
        "leg": len(legs) + 1,
        "parts": [part.name for part in writer.parts],
        "start": {"resume": resume, "from": str(start), "sha256": file_sha256(start)},
        "mix": {
            "name": mix_name,
            "sources": [
                s.spec(
                    taxonomy.names,
                    f"datasets/{s.name}/data.yaml",
                    f"datasets/{s.name}/reviews.jsonl" if s.reviews else None,
                )
                for s in sources
            ],
        },
        "images": len(files),
        "imgsz": config.imgsz,
        "epochs": config.epochs,
        "batch": config.batch,
        "monitor_fraction": config.monitor_fraction,
        "webp_quality": config.webp_quality,
        "wheels": [wheel.name for wheel in wheels or []],
    }
    (writer.parts[0] / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


# --- leg (on the GPU host) -----------------------------------------------------------------------


def write_jpeg(job: tuple[bytes, str]) -> None:
    """A carried WebP written back as a JPEG under its original name (the mix's digests are over names)."""
    data, target = job
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise RelayError(f"{target}: carried image does not decode")
    if not cv2.imwrite(target, image, [cv2.IMWRITE_JPEG_QUALITY, 95]):
        raise RelayError(f"{target}: cannot write")


def unpack(bundle: Path, work: Path) -> tuple[dict[str, Any], list[str]]:
    """Unpack the parts present in `bundle` into `work` (parts of earlier calls stay there).

    Returns the manifest and the parts still missing. A bundle other than the one `work` holds
    starts `work` afresh.
    """
    work.mkdir(parents=True, exist_ok=True)
    for info_file in sorted(bundle.glob(f"part*/{PART_INFO}")):
        part = info_file.parent
        info = json.loads(info_file.read_text(encoding="utf-8"))
        held = work / MANIFEST
        if held.exists() and json.loads(held.read_text(encoding="utf-8"))["bundle"] != info["bundle"]:
            shutil.rmtree(work)
            work.mkdir(parents=True)
        done = work / ".unpacked" / part.name
        if done.exists():
            continue
        for extra in part.rglob("*"):
            if extra.is_file() and extra.name not in (PART_INFO, "data.tar"):
                target = work / extra.relative_to(part)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(extra, target)
        jobs: list[tuple[bytes, str]] = []
        tar_path = part / "data.tar"
        if tar_path.exists():
            with tarfile.open(tar_path) as tar:
                for member in tar:
                    target = work / member.name
                    if not target.resolve().is_relative_to(work.resolve()) or not member.isfile():
                        raise RelayError(f"{tar_path}: unexpected member {member.name!r}")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]
                    if member.name.endswith(".webp"):
                        jobs.append((data, str(target.with_suffix(""))))
                    else:
                        target.write_bytes(data)
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(write_jpeg, jobs, chunksize=32))
        done.parent.mkdir(parents=True, exist_ok=True)
        done.write_text(f"{len(jobs)} images\n", encoding="utf-8")
        print(f"relay: unpacked {part.name} ({len(jobs)} images)", flush=True)
    held = work / MANIFEST
    if not held.exists():
        raise RelayError(f"{bundle}: no part with {MANIFEST} has been carried yet (carry part01 first)")
    manifest = json.loads(held.read_text(encoding="utf-8"))
    missing = [p for p in manifest["parts"] if not (work / ".unpacked" / p).exists()]
    return manifest, missing


def survey_pretrained(roots: list[Path] | None = None, min_mib: float = 1.0) -> list[str]:
    """Weight files (over `min_mib`) a host already holds: caches of torch hub, Hugging Face and timm,
    and anything under the Python environment. A pretrained backbone there changes the training plan."""
    if roots is None:
        home = Path.home()
        roots = [home / ".cache", home, Path(sys.prefix), Path("/opt"), Path("/models"), Path("/data")]
        roots += [Path(p) for p in sys.path if p.endswith("-packages")]
    seen: set[Path] = set()
    found: list[tuple[int, str]] = []
    for root in roots:
        for folder, _, names in os.walk(root, followlinks=False):
            for name in names:
                path = Path(folder) / name
                if path.suffix.lower() not in WEIGHT_SUFFIXES or path in seen:
                    continue
                seen.add(path)
                try:
                    size = path.stat().st_size
                except OSError:
                    continue
                if size >= min_mib * (1 << 20):
                    found.append((size, str(path)))
    return [f"{size / (1 << 20):9.1f} MiB  {path}" for size, path in sorted(found, reverse=True)]


def ultralytics_from(wheels: Path, site: Path) -> str:
    """Make ultralytics importable: the host's own if it has one, else the carried wheels."""
    if importlib.util.find_spec("ultralytics") is None:
        carried = sorted(wheels.glob("*.whl"))
        if not carried:
            raise RelayError("ultralytics is not installed here and the bundle carried no wheels")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
             "--upgrade", "--target", str(site), *map(str, carried)],
            check=True,
        )  # fmt: skip
        sys.path.insert(0, str(site))
        importlib.invalidate_caches()
    from importlib.metadata import version

    return version("ultralytics")


class Deadline:
    """Stops training before the host is taken back: between epochs when the next one would not fit
    (judged by the last three epochs: the first also fills the image cache), mid-epoch at the
    deadline itself. Copies every saved last.pt (optimizer included) to `state`,
    since ultralytics strips the optimizer from last.pt when training ends."""

    def __init__(self, end: float, state: Path, max_epochs: int | None = None):
        self.end, self.state, self.max_epochs = end, state, max_epochs
        self.epoch_started = time.monotonic()
        self.epoch_seconds: list[float] = []
        self.stopped_by = "schedule end"

    def on_train_epoch_start(self, trainer: Any) -> None:
        self.epoch_started = time.monotonic()

    def on_train_batch_end(self, trainer: Any) -> None:
        if time.monotonic() > self.end:
            trainer.stop, self.stopped_by = True, "deadline (mid-epoch)"

    def on_model_save(self, trainer: Any) -> None:
        shutil.copy2(trainer.last, self.state)

    def on_fit_epoch_end(self, trainer: Any) -> None:
        self.epoch_seconds.append(time.monotonic() - self.epoch_started)
        if trainer.stop:
            return
        if self.max_epochs is not None and len(self.epoch_seconds) >= self.max_epochs:
            trainer.stop, self.stopped_by = True, "epoch limit"
        elif time.monotonic() + 1.15 * max(self.epoch_seconds[-3:]) > self.end:
            trainer.stop, self.stopped_by = True, "deadline"

    def callbacks(self) -> dict[str, Callable[[Any], None]]:
        names = ("on_train_epoch_start", "on_train_batch_end", "on_model_save", "on_fit_epoch_end")
        return {name: getattr(self, name) for name in names}


def train_leg(
    manifest: dict[str, Any],
    work: Path,
    out: Path,
    end: float,
    device: str,
    workers: int,
    max_epochs: int | None = None,
) -> dict[str, Any]:
    """Train or resume until `end` (time.monotonic()); write the leg's files to `out`."""
    started_at, started = datetime.now(UTC), time.monotonic()
    os.environ.setdefault("YOLO_OFFLINE", "1")  # no weight downloads, no network probes
    ultralytics_version = ultralytics_from(work / "wheels", work / "site")
    import torch
    from ultralytics import YOLO
    from ultralytics.utils.patches import torch_load

    from vision.modelops.train import PartialLabelTrainer, hardware, start_weights, write_training_card

    start = work / "start.pt"
    resume = bool(manifest["start"]["resume"])
    state = torch_load(start, map_location="cpu") if resume else {}
    taxonomy = load_taxonomy(work / TAXONOMY)  # the one the bundle was packed with
    if resume:  # a resumed run keeps its classes (and optimizer) whatever the taxonomy gained since
        taxonomy = taxonomy.first(len((state.get("ema") or state["model"]).names))
    mix_yaml = work / "mix.yaml"
    mix_yaml.write_text(yaml.safe_dump(manifest["mix"], sort_keys=False), encoding="utf-8")
    # the photos are re-encoded copies; their originals' sha256 were checked where they were packed
    data_yaml = build_mix(mix_yaml, work / "mix", taxonomy, verify_photos=False)
    run_dir = work / "runs" / manifest["relay"]
    first_epoch = int(state.get("epoch", -1)) + 1 if resume else 0
    guard = Deadline(end - FINISH_S, work / STATE, max_epochs)
    model = YOLO(str(start) if resume else start_weights(str(start), work / "cache", taxonomy.names))
    for event, callback in guard.callbacks().items():
        model.add_callback(event, callback)
    common = {
        "data": str(data_yaml),
        "device": device,
        "workers": workers,
        "cache": "ram",
        "plots": False,  # plots fetch a font from the network
        "save_dir": str(run_dir),
    }
    if resume:
        model.train(trainer=PartialLabelTrainer, resume=True, **common)
    else:
        model.train(
            trainer=PartialLabelTrainer,
            epochs=manifest["epochs"],
            imgsz=manifest["imgsz"],
            batch=manifest["batch"],
            optimizer="SGD",  # fine-tuning a trained model: ultralytics' own choice for long runs
            lr0=0.01,
            amp="bf16" if device != "cpu" else False,  # bf16 needs no AMP check (which downloads weights)
            mixup=0.0,  # mixing two sources' images would break the per-source class mask
            cutmix=0.0,
            pretrained=True,
            seed=0,
            **common,
        )
    state = torch_load(work / STATE, map_location="cpu")
    last_epoch = int(state["epoch"])
    results = state.get("train_results") or {}
    leg = {
        "relay": manifest["relay"],
        "leg": manifest["leg"],
        "bundle": manifest["bundle"],
        "host": hardware(),
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "ultralytics": ultralytics_version,
        "started": started_at.isoformat(timespec="seconds"),
        "minutes": round((time.monotonic() - started) / 60, 2),
        "epochs": {"from": first_epoch, "to": last_epoch + 1, "of": int(state["train_args"]["epochs"])},
        "stopped_by": guard.stopped_by,
        "epoch_seconds_median": round(statistics.median(guard.epoch_seconds or [0.0]), 1),
        "imgsz": int(state["train_args"]["imgsz"]),
        "batch": int(state["train_args"]["batch"]),
        "start": manifest["start"],
        "last_val": {k: v[-1] for k, v in results.items() if k.startswith("metrics/") and v},
    }
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: state["train_args"][k] for k in ("model", "epochs", "imgsz", "batch", "device", "seed")}
    write_training_card(run_dir, data_yaml, settings, time.monotonic() - started)
    shutil.copy2(run_dir / "weights" / "card.yaml", out / "card.yaml")
    shutil.copy2(work / STATE, out / STATE)
    if (run_dir / "weights" / "best.pt").exists():
        shutil.copy2(run_dir / "weights" / "best.pt", out / "best.pt")
    if (run_dir / "results.csv").exists():
        shutil.copy2(run_dir / "results.csv", out / "results.csv")
    (out / "leg.json").write_text(json.dumps(leg, indent=2), encoding="utf-8")
    return leg


# --- land (here) ---------------------------------------------------------------------------------


def land(files: Path, config: RelayConfig, models_dir: Path, runs: Path = Path("runs")) -> Path:
    """Keep a finished leg: models/relay/NAME/{state.pt, legs.yaml} and runs/NAME/legN/weights/ with
    best.pt, last.pt (the state) and a card listing every leg so far. Returns the weights folder."""
    try:
        leg = json.loads((files / "leg.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RelayError(f"{files}: no readable leg.json: {err}") from err
    if leg.get("relay") != config.name:
        raise RelayError(f"{files}: a leg of relay {leg.get('relay')!r}, not {config.name!r}")
    for needed in (STATE, "card.yaml"):
        if not (files / needed).is_file():
            raise RelayError(f"{files}: {needed} is missing")
    relay_dir = models_dir / "relay" / config.name
    legs = read_legs(relay_dir)
    if any(earlier.get("bundle") == leg["bundle"] for earlier in legs):
        raise RelayError(f"{files}: leg {leg['leg']} (bundle {leg['bundle']}) has landed already")
    if legs and leg["epochs"]["from"] != legs[-1]["epochs"]["to"]:
        raise RelayError(
            f"{files}: starts at epoch {leg['epochs']['from']}, "
            f"but the relay stands at {legs[-1]['epochs']['to']}"
        )
    relay_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(files / STATE, relay_dir / STATE)
    leg["state_sha256"] = file_sha256(relay_dir / STATE)
    legs.append(leg)
    (relay_dir / LEGS).write_text(yaml.safe_dump(legs, allow_unicode=True, sort_keys=False), encoding="utf-8")
    weights = runs / config.name / f"leg{leg['leg']}" / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(files / STATE, weights / "last.pt")
    for name in ("best.pt", "results.csv"):
        if (files / name).exists():
            shutil.copyfile(files / name, weights / name)
    card = yaml.safe_load((files / "card.yaml").read_text(encoding="utf-8"))
    card["training"]["relay"] = {"name": config.name, "legs": legs}
    card["training"]["hardware"] = "; ".join(sorted({str(earlier["host"]) for earlier in legs}))
    card["training"]["seconds"] = round(sum(earlier["minutes"] for earlier in legs) * 60)
    card["training"]["recipe"] = (
        f"GPU relay {config.name} (configs/relay.yaml), {len(legs)} leg(s): "
        "streetorder relay pack; python3 -m serve.cli relay leg (GPU host); streetorder relay land"
    )
    card_text = yaml.safe_dump(card, allow_unicode=True, sort_keys=False)
    (weights / "card.yaml").write_text(card_text, encoding="utf-8")
    return weights


# --- command line --------------------------------------------------------------------------------
