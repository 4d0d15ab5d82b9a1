"""The parts of a fast batch scan that know nothing of cases: read, decode reduced, detect, in parallel.

Where the time of a scan goes on a CPU, per 12 MP photo: a full JPEG decode (80-120 ms) costs
more than the detector (15-25 ms at 320 px); a decode at 1/8 scale by libjpeg's DCT scaling costs
25-40 ms and gives the detector the same picture it would get after resizing. So a photo is
decoded only as large as the model needs (`decode_photo(reduce_to=)`), boxes are mapped back to
the photo's own pixels (`to_full_pixels`), and N workers (one per core, each inference on one
thread of its own) do read + hash + decode + detect side by side while the caller writes the
results in input order (`ordered_map`). Which runtime and precision runs the model is measured
once per machine and model (`choose_runtime`): ONNX Runtime or OpenVINO, FP32 or an INT8 file
whose accuracy was checked against FP32 at export.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
import re
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import tzinfo
from importlib.util import find_spec
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import supervision as sv

from vision.core.detector import Detector
from vision.core.files import read_regular_file
from vision.core.imageio import (
    DEFAULT_TIMEZONE,
    MAX_PHOTO_BYTES,
    MAX_PIXELS,
    MIN_PHOTO_SIDE,
    LoadedPhoto,
    decode_photo,
)
from vision.core.taxonomy import Taxonomy
from vision.detect.backends import load_detector
from vision.detect.registry import ModelError, find_model

URL_SCHEMES = ("s3://", "gs://", "az://", "abfs://", "http://", "https://", "file://")
INT8_FILE = "model.int8.onnx"
DYNAMIC_FILE = "model.dynamic.onnx"  # `streetorder export --dynamic`: letterboxed to the photo's aspect
MAX_INT8_MAP50_DROP = 0.01  # an INT8 file is only a candidate when its checked mAP50 lost at most this
RUNTIMES = ("onnx", "openvino")

Item = TypeVar("Item")
Result = TypeVar("Result")


def cpu_count() -> int:
    """Cores this process may run on (a container's or taskset's limit, not the host's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# ------------------------------------------------------------------------------------ reading


def is_url(source: str) -> bool:
    return source.startswith(URL_SCHEMES)


def is_other_url(source: str) -> bool:
    """A URL of a scheme not read here (ftp://, smb:// ...): refused as such, not looked up as a path."""
    return not is_url(source) and re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", source) is not None


def read_source(source: str, max_bytes: int = MAX_PHOTO_BYTES) -> bytes:
    """The bytes of a local path or of a URL (s3://, gs://, http(s)://, file://) through fsspec,
    refused (OSError) over `max_bytes`: a local file by its size before it is read.

    S3-compatible stores take their endpoint and keys from the usual AWS variables
    (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...) and need `s3fs` installed. Any failure to fetch
    one URL is an OSError naming it, as for a local file: a missing package (`aiohttp` for
    http(s)://), missing credentials or a host that refuses make that photo unreadable, not the
    scan stop.
    """
    if is_other_url(source):
        schemes = ", ".join(scheme.removesuffix("://") for scheme in URL_SCHEMES)
        raise OSError(f"URLs of this scheme are not read (only {schemes})")
    if not is_url(source):
        return read_regular_file(source, max_bytes)
    import fsspec

    try:
        with fsspec.open(source, "rb") as stream:
            data = bytes(stream.read(max_bytes + 1))
    except OSError:
        raise
    except Exception as err:  # fsspec's backends raise their own types (ImportError, botocore, aiohttp)
        raise OSError(f"{type(err).__name__}: {err}") from err
    if len(data) > max_bytes:
        raise OSError(errno.EFBIG, f"over the limit of {max_bytes:,} bytes: not read", source)
    return data


# ----------------------------------------------------------------------------------- decoding


def to_full_pixels(detections: sv.Detections, photo: LoadedPhoto) -> sv.Detections:
    """Boxes found on a reduced decode, in the pixels of the photo itself.

    libjpeg's reduced size is the full size divided and rounded up, so each axis has its own factor.
    """
    height, width = photo.image.shape[:2]
    if (photo.width, photo.height) == (width, height) or len(detections) == 0:
        return detections
    factors = np.array([photo.width / width, photo.height / height] * 2, dtype=np.float32)
    xyxy = detections.xyxy * factors
    xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, photo.width)
    xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, photo.height)
    return sv.Detections(
        xyxy=xyxy.astype(np.float32),
        confidence=detections.confidence,
        class_id=detections.class_id,
        tracker_id=detections.tracker_id,
        data=detections.data,
    )


def detect_full(detector: Detector, photo: LoadedPhoto) -> sv.Detections:
    """Run the detector on a (possibly reduced) decode; boxes in the photo's own pixels."""
    return to_full_pixels(detector(photo.image), photo)


@dataclass(frozen=True)
class DecodeOptions:
    """How photos are read and decoded: `reduce_to` None decodes in full (the reference path)."""

    reduce_to: int | None = None
    max_pixels: int = MAX_PIXELS
    local_tz: tzinfo = DEFAULT_TIMEZONE
    max_bytes: int = MAX_PHOTO_BYTES  # larger files are refused unread (`read_source`)
    min_side: int = MIN_PHOTO_SIDE  # a photo with a shorter side is refused (`PhotoTooSmall`)

    def decode(self, data: bytes, source: str) -> LoadedPhoto:
        return decode_photo(
            data,
            source=source,
            max_pixels=self.max_pixels,
            local_tz=self.local_tz,
            reduce_to=self.reduce_to,
            min_side=self.min_side,
        )


# ----------------------------------------------------------------------------------- parallel


class WorkerStalled(RuntimeError):
    """A worker made no progress for longer than the watchdog allows: the work stops, resumably."""


def ordered_map(
    work: Callable[[Item], Result],
    items: Iterable[Item],
    workers: int,
    window: int | None = None,
    stall_s: float | None = None,
) -> Iterator[Result]:
    """`map(work, items)` on `workers` threads, results in input order, at most `window` in flight.

    Order matters: cases are numbered and merged in the order photos are recorded, so a parallel
    scan must record exactly as a sequential one. The window bounds memory over any archive.
    `work` must release the GIL for its heavy parts (file reads, hashing, libjpeg, the inference
    runtimes and OpenCV all do).

    `stall_s` is the watchdog: when the oldest item has not finished that long after the one
    before it, WorkerStalled is raised (naming the item) instead of waiting forever; the stuck
    thread is left behind, so the caller should end the process once it has reported.
    """
    if workers <= 1 and stall_s is None:
        yield from map(work, items)
        return
    window = window or 4 * max(1, workers)
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="scan-worker")
    pending: deque[tuple[Item, Future[Result]]] = deque()
    stalled = False

    def oldest() -> Result:
        nonlocal stalled
        item, future = pending.popleft()
        try:
            return future.result(timeout=stall_s)
        except TimeoutError:
            stalled = True
            raise WorkerStalled(
                f"a worker made no progress for {stall_s:.0f} s on {item}: stopped instead of waiting "
                "forever; everything recorded so far is kept, run the same command again to resume"
            ) from None

    try:
        for item in items:
            pending.append((item, pool.submit(work, item)))
            if len(pending) >= window:
                yield oldest()
        while pending:
            yield oldest()
    finally:
        pool.shutdown(wait=not stalled, cancel_futures=True)


# ------------------------------------------------------------------------------------ runtime


@dataclass(frozen=True)
class Candidate:
    """One way to run a model: a runtime and a weights file (FP32, or INT8 checked at export)."""

    runtime: str
    weights: Path
    precision: str

    @property
    def label(self) -> str:
        return f"{self.runtime}-{self.precision}"


def candidates(
    model: str | Path, precision: str = "auto", runtimes: Iterable[str] = RUNTIMES, *, models_dir: Path
) -> list[Candidate]:
    """The runtimes installed here x the model's FP32 files and, where allowed, its checked INT8 file.

    INT8 is offered only when the model card records an accuracy check where no checked set lost
    more than MAX_INT8_MAP50_DROP mAP50 (`streetorder export --int8 --data ...` writes it), or when
    asked for by name.
    A dynamic-shape export of the same weights beside the fixed one is an FP32 candidate too.
    """
    files = find_model(model, models_dir)
    fp32 = files.weights_for("onnx")
    weights = [] if precision == "int8" else [(fp32, "fp32")]
    dynamic = fp32.with_name(DYNAMIC_FILE)
    if precision != "int8" and dynamic.exists() and fp32 != dynamic:
        weights.append((dynamic, "fp32-rect"))
    int8 = fp32.with_name(INT8_FILE)
    check = ((files.card.get("exports") or {}).get("int8") or {}).get("check") or {}
    checked = (
        bool(check)
        and (
            check["max_map50_drop"]
            if "max_map50_drop" in check
            else check["map50_fp32"] - check["map50_int8"]
        )
        <= MAX_INT8_MAP50_DROP
    )
    if (
        int8.exists()
        and fp32.name != INT8_FILE
        and (precision == "int8" or (precision == "auto" and checked))
    ):
        weights.append((int8, "int8"))
    installed = [r for r in runtimes if r == "onnx" or find_spec(r) is not None]
    return [Candidate(runtime, path, label) for path, label in weights for runtime in installed]


def time_candidates(
    options: list[Candidate], taxonomy: Taxonomy, rounds: int = 8, shape: tuple[int, int] = (375, 500)
) -> dict[str, float]:
    """Median CPU seconds of one detection on one thread, per candidate, on noise the shape of a
    reduced 4:3 photo. CPU time of the whole process (a runtime's own threads count) rather than
    wall time, and candidates taken in turn each round: other work on the machine then skews
    the comparison far less."""
    detectors = {
        c.label: load_detector(
            c.weights, c.runtime, models_dir=c.weights.parent.parent, taxonomy=taxonomy, threads=1
        )
        for c in options
    }
    image = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)
    spent: dict[str, list[float]] = {label: [] for label in detectors}
    for round_ in range(rounds + 2):
        for label, detector in detectors.items():
            started = time.process_time()
            detector(image)
            if round_ >= 2:  # the first two are warm-up
                spent[label].append(time.process_time() - started)
    return {label: statistics.median(times) for label, times in spent.items()}


def choose_runtime(
    model: str | Path,
    precision: str = "auto",
    runtimes: Iterable[str] = RUNTIMES,
    *,
    models_dir: Path,
    taxonomy: Taxonomy,
    cache_dir: Path,
    refresh: bool = False,
) -> tuple[Candidate, str]:
    """The fastest candidate, measured once per machine, model files and candidates, then cached
    in `cache_dir` (the cache_dir setting).

    The cache keeps the choice stable: a scan resumed later must run the same model file as the
    scan it continues, and a self-benchmark on a busy machine could flip between close ones.
    Returns the choice and a line saying how it was made.
    """
    options = candidates(model, precision, runtimes, models_dir=models_dir)
    if not options:
        raise ModelError(f"{model}: none of the runtimes {', '.join(runtimes)} is installed")
    if len(options) == 1:
        return options[0], f"{options[0].label} (the only candidate)"
    fingerprint = [f"{c.label}:{c.weights.stat().st_size}:{c.weights.stat().st_mtime_ns}" for c in options]
    key = hashlib.sha256(
        json.dumps(
            ["cpu-time", platform.processor() or platform.machine(), cpu_count(), fingerprint]
        ).encode()
    )
    cache_file = cache_dir / "runtime-choice.json"
    cached: dict[str, Any] = {}
    if cache_file.exists():
        try:
            cached = json.loads(cache_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cached = {}
    entry = cached.get(key.hexdigest())
    if entry and not refresh:
        chosen = next(
            (c for c in options if c.label == entry["label"] and str(c.weights) == entry["weights"]), None
        )
        if chosen is not None:
            return chosen, f"{chosen.label} (measured earlier: {entry['timings']})"
    timings = {
        label: round(seconds * 1000, 2) for label, seconds in time_candidates(options, taxonomy).items()
    }
    chosen = min(options, key=lambda c: timings[c.label])
    cached[key.hexdigest()] = {"label": chosen.label, "weights": str(chosen.weights), "timings": timings}
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_file.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(cached, indent=1), encoding="utf-8")
    partial.replace(cache_file)  # atomic: concurrent scans never read half a file
    return chosen, f"{chosen.label} (measured now, CPU ms per image on one thread: {timings})"
