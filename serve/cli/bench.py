"""`streetorder bench scan`: how fast the scan is, against stock `yolo predict` and against the hardware.

    streetorder bench scan [--images N] [--size 4000x3000] [--json]

One run prepares a folder of large JPEGs (real garbage-cn photos from ../shared upscaled to
--size, so a decode costs what a patrol photo's does; each file gets its own EXIF GPS and time,
so every file is a distinct photo to the scan), then measures, each in a child process:

- `yolo predict FOLDER stream=True` (ultralytics' Python API, no saving) on the same model.onnx
  the scan runs, and `streetorder scan` on the same folder into a fresh database with that same
  file on ONNX Runtime: images/s of both and their ratio; then the scan with the runtime its
  self-benchmark picks (`--backend auto`); the scan with the flyer reader in its default mode, off
  and reading every photo (`all`): images/s, the ratio to yolo predict and the reader's CPU ms a photo;
- the cost of each stage alone on one core (read + hash, reduced decode, preprocess, inference,
  post-processing, writing photos and cases), the ideal throughput they imply on this machine's
  cores, and efficiency = achieved / ideal, achieved by the scan that runs exactly those stages
  (ONNX Runtime, flyer reader off: the reader is no stage of the ideal);
- peak memory (max RSS) of the scan at N and at 10 x N photos.

The load average is recorded before and after: on a machine shared with other work (a training
run) every throughput is lower than the machine can give, and the ideal is computed from CPU
time, so the efficiency shows how much of the machine the scan got as well as how well it used it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from io import BytesIO
from pathlib import Path
from typing import Any, cast

from PIL import Image

from serve.cases.grids import load_grids
from serve.cases.settings import get_settings
from serve.cli.args import positive_int
from serve.cli.demo import START, pick_sample_photos
from serve.cli.memory import peak_rss_mb
from vision.core.imageio import MAX_PIXELS, Position, exif_for
from vision.detect.pipeline import cpu_count

DATASET = "garbage-cn"  # in the shared_datasets_dir setting
BENCH_DIR = Path(tempfile.gettempdir()) / "streetorder-bench"
BASE_PHOTOS = 24  # distinct real photos; the rest are the same pixels with other EXIF
STAGE_PHOTOS = 40
JPEG_MAX_SIDE = 65_535  # the most pixels a JPEG side can hold


# ------------------------------------------------------------------------------------ photos


def prepare_photos(root: Path, count: int, size: tuple[int, int], dataset: Path) -> Path:
    """`count` JPEGs of `size` under root/WxH/ (kept for the next run); returns the folder.

    Each base photo is upscaled and encoded once; copies differ only in their EXIF segment
    (position on the example grids, a patrol time), which costs nothing to write.
    """
    folder = root / f"{size[0]}x{size[1]}" / "photos"
    manifest = folder.parent / "manifest.json"
    wanted = {"count": count, "size": list(size), "dataset": str(dataset)}
    if manifest.exists() and json.loads(manifest.read_text()) == wanted:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    settings = get_settings()
    grids = list(load_grids(settings.grids, settings.grids_crs))
    bases = []
    for source in pick_sample_photos(dataset, min(count, BASE_PHOTOS)):
        with Image.open(source) as image:
            big = image.convert("RGB").resize(size, Image.Resampling.BICUBIC)
        encoded = BytesIO()
        big.save(encoded, "JPEG", quality=90)
        bases.append(encoded.getvalue())
    for i in range(count):
        point = grids[i % len(grids)].geometry.representative_point()
        exif = exif_for(
            position=Position(point.y, point.x), taken_at=START + timedelta(minutes=30 * i)
        ).tobytes()
        base = bases[i % len(bases)]
        segment = b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif  # APP1 right after SOI
        (folder / f"patrol-{i:06d}.jpg").write_bytes(base[:2] + segment + base[2:])
    manifest.write_text(json.dumps(wanted))
    return folder


def first_photos(folder: Path, count: int) -> Path:
    """A sibling folder with hard links to the first `count` photos (no copies on disk)."""
    subset = folder.parent / f"first-{count}"
    if not subset.exists() or len(list(subset.iterdir())) != count:
        shutil.rmtree(subset, ignore_errors=True)
        subset.mkdir()
        for path in sorted(folder.iterdir())[:count]:
            os.link(path, subset / path.name)
    return subset


# ------------------------------------------------------------------------- child measurements


def child_scan(folder: Path, backend: str, precision: str, workers: int, flyers: str) -> dict[str, Any]:
    """The scan as `streetorder scan` runs it (without the report), into a fresh database, with the
    flyer reader in mode `flyers` (off, detector, all; `default`: configs/flyers.yaml's)."""
    from serve.cases.db import open_database
    from serve.cases.findings import load_case_rules
    from serve.cases.scan import Scanner, load_flyer_finder, load_scan_detector

    with tempfile.TemporaryDirectory() as tmp:
        factory = open_database(f"sqlite:///{tmp}/bench.db")
        settings = get_settings()
        finder = load_flyer_finder(settings, None if flyers == "default" else cast(Any, flyers))
        detector, _, runtime = load_scan_detector(
            settings.model, backend, precision, workers, settings, flyers=finder
        )
        rules = load_case_rules(settings)
        scanner = Scanner(detector, factory, rules, workers=workers, batch=64, flyers=finder)
        cpu = os.times()
        stats = scanner.scan([folder], progress=False)
        used = os.times()
    cpu_seconds = (used.user + used.system) - (cpu.user + cpu.system)
    return {
        "runtime": runtime.split(" ")[0],
        "model": detector.version,
        "flyers": "off" if finder is None else finder.rules.scan,
        "images": stats.photos,
        "cases": stats.cases_created,
        "seconds": round(stats.seconds, 2),
        "images_per_s": round(stats.photos / stats.seconds, 2),
        "cpu_cores_used": round(cpu_seconds / stats.seconds, 2),
        "cpu_ms_per_photo": round(1000 * cpu_seconds / max(1, stats.photos), 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def child_yolo(folder: Path, model: Path, imgsz: int) -> dict[str, Any]:
    """Stock ultralytics: `yolo predict source=FOLDER stream=True` through its Python API."""
    from ultralytics import YOLO

    yolo = YOLO(str(model), task="detect")
    started = time.perf_counter()
    count = sum(1 for _ in yolo.predict(str(folder), stream=True, imgsz=imgsz, verbose=False, save=False))
    seconds = time.perf_counter() - started
    return {
        "images": count,
        "seconds": round(seconds, 2),
        "images_per_s": round(count / seconds, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def child_stages(folder: Path, model: Path, count: int) -> dict[str, Any]:
    """Each stage alone, one photo at a time, on one core: wall and CPU milliseconds per photo."""
    from serve.cases.db import open_database
    from serve.cases.findings import load_case_rules
    from serve.cases.intake import patrol_findings
    from serve.cases.scan import Inspection, Scanner, ScanStats
    from vision.core.imageio import decode_photo
    from vision.detect.backends import (
        OnnxDetector,
        decode_yolo,
        letterbox,
        load_detector,
        to_detections,
        to_input_tensor,
        unletterbox,
    )
    from vision.detect.pipeline import to_full_pixels

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    settings = get_settings()
    rules = load_case_rules(settings)
    detector = cast(
        OnnxDetector,
        load_detector(model, "onnx", models_dir=settings.models_dir, taxonomy=rules.taxonomy, threads=1),
    )
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}

    @contextmanager
    def timed(stage: str) -> Iterator[None]:
        started, started_cpu = time.perf_counter(), time.thread_time()
        yield
        wall[stage] = wall.get(stage, 0.0) + time.perf_counter() - started
        cpu[stage] = cpu.get(stage, 0.0) + time.thread_time() - started_cpu

    inspections = []
    photos = sorted(folder.iterdir())[:count]
    keep = detector.thresholds
    for path in photos:
        with timed("read_hash"):
            data = path.read_bytes()
            sha256 = hashlib.sha256(data).hexdigest()
        with timed("full_decode_for_reference"):
            decode_photo(data)
        with timed("decode"):
            photo = decode_photo(data, reduce_to=detector.input_size)
        with timed("preprocess"):
            padded, scale, pad = letterbox(photo.image, detector.input_size, detector.stride)
            tensor = to_input_tensor(padded)
        with timed("inference"):
            output = detector.run_model(tensor)[0]
        with timed("postprocess"):
            xyxy, scores, classes = decode_yolo(output, keep.confidence, keep.iou, keep.max_detections)
            boxes = unletterbox(xyxy, scale, pad, photo.image.shape[:2])
            found = to_detections(boxes, scores, classes, detector.class_map, detector.names)
            patrol_findings(found, rules.taxonomy)
            detections = to_full_pixels(found, photo)
        size = (photo.width, photo.height)
        inspections.append(
            Inspection(str(path), sha256, "decoded", meta=photo.meta, size=size, detections=detections)
        )
    with tempfile.TemporaryDirectory() as tmp:
        scanner = Scanner(detector, open_database(f"sqlite:///{tmp}/stages.db"), rules, batch=64)
        stats = ScanStats()
        for start in range(0, len(inspections), 64):
            with timed("write"):
                scanner.commit(inspections[start : start + 64], stats)
    return {
        "photos": len(photos),
        "reduced_to": list(photo.image.shape[1::-1]),
        "input": list(padded.shape[1::-1]),
        "wall_ms": {k: round(v / len(photos) * 1000, 2) for k, v in wall.items()},
        "cpu_ms": {k: round(v / len(photos) * 1000, 2) for k, v in cpu.items()},
    }


def run_child(*argv: str) -> dict[str, Any]:
    """One measurement in a fresh process: its own memory peak, no warm caches of the others.

    The load average before and after goes with it: other work on the machine lowers every number.
    """
    before = os.getloadavg()[0]
    done = subprocess.run(
        [sys.executable, "-m", "serve.cli.bench", *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench {' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    result = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    return {**result, "loadavg_1min": [round(before, 2), round(os.getloadavg()[0], 2)]}


# ---------------------------------------------------------------------------------------- CLI


def photo_size(text: str) -> tuple[int, int]:
    """WxH of the photos made: 'abc' and 0x0 were tracebacks, and 100000x100000 ran the machine out
    of memory making photos the scan refuses as bombs (over MAX_PIXELS) anyway."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 4000x3000, got {text!r}") from None
    if width < 1 or height < 1 or width * height > MAX_PIXELS or max(width, height) > JPEG_MAX_SIDE:
        raise argparse.ArgumentTypeError(
            f"{width}x{height}: each side 1 to {JPEG_MAX_SIDE} px and at most {MAX_PIXELS:,} pixels "
            "(the scan refuses larger photos as bombs)"
        )
    return width, height


def bench_scan(args: argparse.Namespace) -> dict[str, Any]:
    from vision.detect.registry import find_model

    width, height = args.size
    settings = get_settings()
    files = find_model(settings.model, settings.models_dir)
    onnx = files.weights_for("onnx")
    imgsz = int(files.card.get("input_size") or 640)
    cores = cpu_count()
    workers = str(args.workers or cores)
    progress = (lambda text: print(text, file=sys.stderr, flush=True)) if not args.json else (lambda _: None)
    load_before = os.getloadavg()
    progress(f"bench: preparing {10 * args.images} photos of {width}x{height} in {args.folder} ...")
    dataset = settings.shared_datasets_dir / DATASET
    everything = prepare_photos(args.folder, 10 * args.images, (width, height), dataset)
    photos = first_photos(everything, args.images)

    progress("bench: yolo predict (stream=True) on model.onnx ...")
    yolo = run_child("_yolo", str(photos), str(onnx), str(imgsz))
    progress(
        f"  {yolo['images_per_s']} img/s\nbench: streetorder scan, ONNX Runtime FP32 (the same file) ..."
    )
    scan = run_child("_scan", str(photos), "onnx", "fp32", workers, "default")
    progress(f"  {scan['images_per_s']} img/s (flyer reader: {scan['flyers']})")
    flyers = {}
    for mode in ("off", "all"):
        progress(f"bench: streetorder scan, ONNX Runtime FP32, flyer reader {mode} ...")
        flyers[mode] = run_child("_scan", str(photos), "onnx", "fp32", workers, mode)
        progress(f"  {flyers[mode]['images_per_s']} img/s")
    progress("bench: streetorder scan, runtime picked by its self-benchmark ...")
    scan_auto = run_child("_scan", str(photos), "auto", "auto", workers, "default")
    progress(
        f"  {scan_auto['images_per_s']} img/s ({scan_auto['runtime']})\nbench: stages alone on one core ..."
    )
    stages = run_child("_stages", str(photos), str(onnx), str(min(args.images, STAGE_PHOTOS)))
    progress(f"bench: streetorder scan on {10 * args.images} photos (memory) ...")
    scan_10n = run_child("_scan", str(everything), "onnx", "fp32", workers, "default")
    load_after = os.getloadavg()

    pipeline = ("read_hash", "decode", "preprocess", "inference", "postprocess", "write")
    cpu_ms = sum(stages["cpu_ms"][s] for s in pipeline)
    ideal = cores * 1000 / cpu_ms
    return {
        "command": f"streetorder bench scan --images {args.images} --size {width}x{height}",
        "machine": {
            "cores": cores,
            "processor": platform.processor() or platform.machine(),
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in load_after],
        },
        "images": args.images,
        "size": f"{width}x{height}",
        "workers": int(workers),
        "yolo_predict": yolo,
        "scan": scan,
        "scan_auto": scan_auto,
        "scan_flyers": {
            mode: {
                **run,
                "ratio": round(run["images_per_s"] / yolo["images_per_s"], 2),
                "reader_cpu_ms_per_photo": round(
                    run["cpu_ms_per_photo"] - flyers["off"]["cpu_ms_per_photo"], 1
                ),
            }
            for mode, run in {**flyers, scan["flyers"]: scan}.items()
        },
        "ratio": round(scan["images_per_s"] / yolo["images_per_s"], 2),
        "ratio_auto": round(scan_auto["images_per_s"] / yolo["images_per_s"], 2),
        "stages": stages,
        "ideal_images_per_s": round(ideal, 2),
        "efficiency": round(flyers["off"]["images_per_s"] / ideal, 2),
        # the share of the cores that scan obtained, and how well it used what it got
        "efficiency_of_cpu_obtained": round(
            flyers["off"]["images_per_s"] / (flyers["off"]["cpu_cores_used"] * 1000 / cpu_ms), 2
        ),
        "memory_mb": {f"{args.images}": scan["peak_rss_mb"], f"{10 * args.images}": scan_10n["peak_rss_mb"]},
        "scan_10n": scan_10n,
    }


def print_table(result: dict[str, Any]) -> None:
    machine, stages = result["machine"], result["stages"]
    print(
        f"{result['command']}  ({machine['cores']} cores, {machine['processor']}; load average "
        f"{machine['loadavg_before'][0]} before, {machine['loadavg_after'][0]} after)"
    )
    print(f"  yolo predict stream=True   {result['yolo_predict']['images_per_s']:7.2f} img/s")
    print(f"  streetorder scan (onnx)    {result['scan']['images_per_s']:7.2f} img/s   x{result['ratio']}")
    auto = result["scan_auto"]
    print(
        f"  streetorder scan ({auto['runtime']}) {auto['images_per_s']:7.2f} img/s   x{result['ratio_auto']}"
    )
    for mode, run in result["scan_flyers"].items():
        print(
            f"  scan, flyer reader {mode:<8} {run['images_per_s']:7.2f} img/s   x{run['ratio']}  "
            f"(reader {run['reader_cpu_ms_per_photo']:.1f} ms CPU a photo)"
        )
    print(
        f"  per photo alone on one core ({stages['photos']} photos; decoded {stages['reduced_to']}, "
        f"input {stages['input']}):"
    )
    for stage, wall in stages["wall_ms"].items():
        print(f"    {stage:<26} {wall:7.2f} ms wall {stages['cpu_ms'][stage]:7.2f} ms CPU")
    print(
        f"  ideal on {machine['cores']} cores {result['ideal_images_per_s']:.2f} img/s; efficiency of the "
        f"scan with the reader off {result['efficiency']:.2f} "
        f"(it got {result['scan_flyers']['off']['cpu_cores_used']} cores; "
        f"of those, {result['efficiency_of_cpu_obtained']:.2f})"
    )
    memory = ", ".join(f"{mb:.0f} MB at {n} photos" for n, mb in result["memory_mb"].items())
    print(f"  peak memory of the scan: {memory}")


def cli(argv: list[str]) -> int:
    if argv[:1] == ["load"]:  # the service under concurrent clients: serve/cli/bench_load.py
        from serve.cli.bench_load import cli as load_cli

        return load_cli(argv[1:])
    if argv[:1] == ["flyers"]:  # the flyer reader's targets: serve/cli/bench_flyers.py
        from serve.cli.bench_flyers import cli as flyers_cli

        return flyers_cli(argv[1:])
    if argv[:1] in (["_scan"], ["_yolo"], ["_stages"]):  # the child processes
        what, folder, *rest = argv
        if what == "_scan":
            result = child_scan(Path(folder), rest[0], rest[1], int(rest[2]), rest[3])
        elif what == "_yolo":
            result = child_yolo(Path(folder), Path(rest[0]), int(rest[1]))
        else:
            result = child_stages(Path(folder), Path(rest[0]), int(rest[1]))
        print(json.dumps(result))
        return 0
    p = argparse.ArgumentParser(prog="streetorder bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "what",
        choices=("scan", "load", "flyers"),
        help="what to measure (load, flyers: see bench load|flyers --help)",
    )
    p.add_argument(
        "--images", type=positive_int, default=100, help="photos in the measured folder (10x for memory)"
    )
    p.add_argument(
        "--size", type=photo_size, default="4000x3000", help="photo size WxH (real photos upscaled to it)"
    )
    p.add_argument("--workers", type=positive_int, help="scan workers (default: one per core)")
    p.add_argument("--folder", type=Path, default=BENCH_DIR, help="where the photos are made (kept)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = p.parse_args(argv)
    dataset = get_settings().shared_datasets_dir / DATASET
    if not (dataset / "images" / "val").is_dir():
        print(f"bench: {dataset} not found; set STREETORDER_SHARED_DATASETS_DIR", file=sys.stderr)
        return 1
    result = bench_scan(args)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
