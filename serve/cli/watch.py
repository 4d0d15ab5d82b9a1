"""`streetorder watch`: pull one camera's stream and turn what stays into cases (serve.cases.watch)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from serve.cases.cameras import CameraHub
from serve.cases.times import ImplausibleTime, local_iso
from serve.cases.watch import CameraWatcher, load_service_cameras
from serve.cli.args import non_negative_float, positive_float
from vision.live.cameras import UnknownCameraError
from vision.live.stream import (
    StreamReader,
    check_stream_url,
    file_exists,
    is_file,
    local_path,
    redact_url,
)


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="streetorder watch", description=__doc__.splitlines()[0])
    parser.add_argument("--camera", required=True, help="camera id in the cameras file")
    parser.add_argument("--cameras", type=Path, help="cameras file (default: configs/cameras.yaml)")
    parser.add_argument(
        "--stream",
        help="read this URL or file instead of the camera's configured stream "
        "(${NAME} is the environment variable NAME: keep a password out of the process list)",
    )
    parser.add_argument("--db", help="database URL (default: STREETORDER_DB_URL)")
    parser.add_argument("--model", help="model name or weights (default: STREETORDER_MODEL)")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    parser.add_argument(
        "--seconds", type=positive_float, help="stop after this many seconds (default: run until ended)"
    )
    parser.add_argument(
        "--file-start",
        type=datetime.fromisoformat,
        help="capture time of a file's first frame (ISO 8601 with offset)",
    )
    parser.add_argument(
        "--speed",
        type=non_negative_float,
        default=1.0,
        help="play a file at this multiple of real time (0: as fast as it is analysed, no frame dropped)",
    )
    parser.add_argument(
        "--file-fps",
        type=positive_float,
        help="frame rate of a file that stores none (a raw .mjpeg or .h264 stream, numbered images "
        "frames/img%%04d.jpg: 25 without it)",
    )
    args = parser.parse_args(argv)

    from serve.cases.db import open_database
    from serve.cases.findings import load_case_rules
    from serve.cases.settings import get_settings
    from vision.detect.backends import load_detector

    if args.stream is not None:  # a configured stream was checked with the cameras file
        try:
            args.stream = check_stream_url(args.stream)
        except ValueError as err:
            parser.error(f"--stream {redact_url(args.stream)}: {err}")
        if is_file(args.stream) and not file_exists(local_path(args.stream)):
            parser.error(f"--stream {args.stream}: no such file")
    if args.file_start is not None and args.file_start.tzinfo is None:
        parser.error("--file-start needs a timezone offset, e.g. 2026-05-06T09:00:00+08:00")
    if args.file_start is None and args.speed != 1:
        parser.error(
            f"--speed {args.speed:g} needs --file-start: a file played faster than real time from now "
            "would stamp its frames ahead of the clock"
        )
    settings = get_settings()
    taxonomy = settings.taxonomy()
    case_rules = load_case_rules(settings)
    if args.file_start is not None:  # the times of its frames become cases: the intake's rule
        try:
            case_rules.times.check("--file-start", args.file_start, datetime.now(UTC))
        except ImplausibleTime as err:
            parser.error(err.detail)
    registry = load_service_cameras(
        args.cameras or settings.configs_dir / "cameras.yaml", case_rules, settings.cameras_max_mb
    )
    try:
        camera = registry.get(args.camera)
    except UnknownCameraError as err:
        parser.error(str(err))
    stream = args.stream or camera.stream
    if not stream:
        parser.error(f"camera '{camera.id}' has no stream in {registry.source}; give --stream")
    if args.file_fps is not None and not is_file(stream):
        parser.error(
            f"--file-fps is for a video file, not {redact_url(stream)}: "
            "a live stream's frames carry their time"
        )
    hub = CameraHub(  # its state only
        registry.only(camera.id),
        case_rules.taxonomy,
        settings.evidence_dir,
        busy_budget_s=settings.camera_busy_budget_s,
        max_waiting=settings.camera_waiting_events,
    )
    sessions = open_database(args.db or settings.db_url)
    hub.restore(sessions)
    saved_at = hub.get(camera.id).rules.last_at  # the camera's last frame before this run, if any
    detector = load_detector(args.model or settings.model, models_dir=settings.models_dir, taxonomy=taxonomy)
    for line in hub.take_spilled(sessions, case_rules):  # a state the database did not take at a stop
        print(f"watch: {line}", file=sys.stderr)
    if args.metrics_port:
        from prometheus_client import REGISTRY, start_http_server

        from serve.cases.cameras import CameraCollector

        REGISTRY.register(CameraCollector(hub))
        start_http_server(args.metrics_port)
    reader = StreamReader(stream, file_start=args.file_start, file_speed=args.speed, file_fps=args.file_fps)
    watcher = CameraWatcher(hub, camera.id, detector, sessions, case_rules, reader).start()
    deadline = time.monotonic() + args.seconds if args.seconds else None
    stopping = threading.Event()
    with terminated_sets(stopping):
        try:
            while watcher.running and (deadline is None or time.monotonic() < deadline):
                stopping.wait(0.5)
                if stopping.is_set():
                    break
        except KeyboardInterrupt:
            pass
    watcher.stop()
    for line in hub.save(sessions):  # the database did not take it: kept in a file, taken back next start
        print(f"watch: {line}", file=sys.stderr)
    health = watcher.live.health
    print(
        f"camera {camera.id}: {watcher.analysed} frames analysed, {health.skipped_frames} skipped, "
        f"{health.dropped_frames} dropped, "
        f"{health.reconnects} reconnects, {health.events} events, {watcher.errors} errors, "
        f"stream {health.stream_state}"
    )
    if reader.stats.rate_assumed:
        print(
            f"watch: {redact_url(stream)} stores no frame rate (a raw stream or numbered images): it was "
            f"read at {reader.stats.rate_assumed:g} frames a second, whatever the camera took, and every "
            "dwell in it with that clock; give the camera's rate with --file-fps",
            file=sys.stderr,
        )
    if health.late_frames:
        print(
            f"watch: {late_frames(health.late_frames, watcher.analysed, saved_at, camera.tz)}",
            file=sys.stderr,
        )
    if reader.stats.last_error and (watcher.analysed == 0 or reader.stats.state == "ended"):
        print(f"watch: {reader.stats.last_error}", file=sys.stderr)  # a file cut short: what was there counts
    if watcher.analysed == 0 and reader.stats.last_error:
        return 1
    return 0 if watcher.errors == 0 else 1


@contextmanager
def terminated_sets(stopping: threading.Event) -> Iterator[None]:
    """SIGTERM (systemd, docker stop, kill) stops the watch as Ctrl-C does: the camera's state saved,
    the summary printed. Python's default ended the process at once: the state since its last save
    (up to 60 s) and the events waiting for a busy database were lost, and nothing was said."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def late_frames(late: int, analysed: int, saved_at: float | None, tz: ZoneInfo) -> str:
    """Why frames were judged by no rule: a file played again with the same --file-start read as 0 events."""
    told = (
        f"{late} of the {analysed} frames analysed were late: captured at or before the camera's last frame"
    )
    if saved_at is not None:
        last = local_iso(datetime.fromtimestamp(saved_at, UTC), tz)
        told += f" ({last}, saved before this run)"
    return f"{told}, so no rule judged them; a file played again needs a --file-start after that time"
