"""Per-frame cost of a live camera, split into decode, inference, tracking, rules and occupancy.

    .venv/bin/python benchmarks/cameras.py [--model current] [--frames 200] [--size 1280x720]

Frames: a real fixed-camera frame from ../shared/datasets/traffic-cams, scaled to --size, with
fresh sensor noise each time, encoded as JPEG (what POST /v1/cameras/{id}/frames receives). The
camera is the committed example `erqi-huaihe-01` (two object zones and one occupancy zone).

Printed: wall and CPU milliseconds per frame for each stage (CPU time counts every thread of the
process, so a detector using both cores shows twice its wall time), frames per second one camera
can take, how many cameras at 2 fps one 2-core machine serves (2 CPU-seconds per second divided by
the CPU time of 2 frames), and the memory the occupancy models of one camera hold.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serve.cases.settings import get_settings  # noqa: E402
from vision.core.imageio import decode_photo  # noqa: E402
from vision.detect.backends import load_detector  # noqa: E402
from vision.live.cameras import load_cameras  # noqa: E402
from vision.live.occupancy import StaticForeground, ZoneMeter  # noqa: E402
from vision.live.rules import CameraRules  # noqa: E402
from vision.live.tracking import CaptureTimeTracker  # noqa: E402

T0 = datetime(2026, 5, 6, 1, 0, tzinfo=UTC)
STAGES = ("decode", "inference", "tracking", "rules", "occupancy")


class Stopwatch:
    """Wall and CPU seconds per named stage."""

    def __init__(self) -> None:
        self.wall = {s: 0.0 for s in STAGES}
        self.cpu = {s: 0.0 for s in STAGES}

    def time(self, stage: str, function: Callable[..., Any], *args: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        result = function(*args)
        self.wall[stage] += time.perf_counter() - wall
        self.cpu[stage] += time.process_time() - cpu
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="current")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", default="1280x720", help="frame size WIDTHxHEIGHT")
    parser.add_argument("--camera", default="erqi-huaihe-01")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    photos = sorted((args.shared / "datasets/traffic-cams/images/val").glob("*.jpg"))
    if not photos:
        print(f"no traffic-cams photos under {args.shared}", file=sys.stderr)
        return 2
    photo = cv2.imread(str(photos[0]))
    assert photo is not None, photos[0]
    base = cv2.resize(photo, (width, height), interpolation=cv2.INTER_LINEAR)
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(min(args.frames, 50)):  # 50 distinct JPEGs, cycled
        noisy = np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)
        frames.append(cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())

    settings = get_settings()
    taxonomy = settings.taxonomy()
    detector = load_detector(args.model, models_dir=settings.models_dir, taxonomy=taxonomy)
    camera = load_cameras(settings.configs_dir / "cameras.yaml", taxonomy).get(args.camera)
    rules = CameraRules(camera, taxonomy)  # tracking, object zones, dwell, incidents (occupancy timed apart)
    tracker = CaptureTimeTracker(camera.tracker, camera.analyse_fps, rules.tracker.thresholds)
    foreground = StaticForeground(camera.occupancy)
    meters = [ZoneMeter(z, camera.ground) for z in camera.zones if z.rule.detect == "occupancy"]

    def occupancy(at: float, image: np.ndarray, boxes: np.ndarray) -> list[Any]:
        foreground.update(at, image, boxes, boxes)
        return [meter.measure(foreground) for meter in meters]

    watch = Stopwatch()
    warmup = 5
    for index in tqdm(range(args.frames + warmup), desc="frames"):
        if index == warmup:
            watch = Stopwatch()
        at = T0 + timedelta(seconds=index / camera.analyse_fps)
        photo = watch.time("decode", decode_photo, frames[index % len(frames)])
        image = photo.image
        detections = watch.time("inference", detector, image)
        watch.time("tracking", tracker.update, detections, at.timestamp())
        watch.time("rules", rules.process, at, detections, (width, height))  # includes its own tracking
        watch.time("occupancy", occupancy, at.timestamp(), image, detections.xyxy)
    n = args.frames
    watch.wall["rules"] -= watch.wall["tracking"]  # rules.process tracked too: count tracking once
    watch.cpu["rules"] -= watch.cpu["tracking"]
    total_wall = sum(watch.wall.values()) / n
    total_cpu = sum(watch.cpu.values()) / n
    print(f"\ncamera {camera.id}, {width}x{height} JPEG, model {detector.version}, {n} frames")
    print(f"{'stage':<10} {'wall ms':>9} {'CPU ms':>9}")
    for stage in STAGES:
        print(f"{stage:<10} {1000 * watch.wall[stage] / n:9.2f} {1000 * watch.cpu[stage] / n:9.2f}")
    print(f"{'total':<10} {1000 * total_wall:9.2f} {1000 * total_cpu:9.2f}")
    print(f"frames/s for one camera (sequential, wall): {1 / total_wall:.1f}")
    cameras = 2 / (camera.analyse_fps * total_cpu)
    print(f"cameras at {camera.analyse_fps:g} fps on a 2-core machine (CPU-bound): {cameras:.1f}")
    print(
        f"occupancy models: {foreground.nbytes / 2**20:.2f} MiB per camera at width {camera.occupancy.width} "
        f"({foreground.size}), fixed; dwell clocks at most {camera.dwell.max_objects}, "
        f"incidents at most 64 per zone"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
