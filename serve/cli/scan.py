"""`streetorder scan PATH...`: a patrol-photo archive becomes grid cases, and a report (serve.cases.scan)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from tqdm import tqdm

from serve.cases.coords import COORD_SYSTEMS
from serve.cases.db import BUSY_TRIES, database_said, is_busy, is_read_only, open_database, unwritable
from serve.cases.enums import PhotoStatus
from serve.cases.findings import (
    load_case_rules,
)
from serve.cases.grids import GridError, GridIndex, load_grids
from serve.cases.report import ReportOptions, write_report
from serve.cases.scan import (
    ScanInputError,
    Scanner,
    ScanStats,
    check_list_file,
    load_flyer_finder,
    load_scan_detector,
    log,
    read_sidecar,
)
from serve.cases.settings import Settings, get_settings
from serve.cli.args import non_negative_float, positive_int
from vision.core.imageio import MAX_PHOTO_BYTES, MAX_PIXELS, PHOTO_SUFFIXES
from vision.core.taxonomy import TAXONOMY
from vision.detect.pipeline import (
    Candidate,
    WorkerStalled,
    cpu_count,
)

CONSOLE_WARNINGS = 20  # a scan's warnings shown on the console; scan.log keeps every one


class _TqdmHandler(logging.Handler):
    """Log lines above the progress bar instead of through it; after the first CONSOLE_WARNINGS
    warnings, one line saying where the rest are (an archive of phone photos without GPS warned once
    a photo on the console, the progress bar lost among them). Errors are always shown."""

    def __init__(self, level: int, log_file: Path) -> None:
        super().__init__(level)
        self.log_file, self.warnings = log_file, 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.WARNING:
            self.warnings += 1
            if self.warnings > CONSOLE_WARNINGS:
                if self.warnings == CONSOLE_WARNINGS + 1:
                    tqdm.write(f"WARNING ... further warnings in {self.log_file} only", file=sys.stderr)
                return
        tqdm.write(self.format(record), file=sys.stderr)


def cli(argv: list[str]) -> int:
    settings = get_settings()
    args = parser(settings).parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    _log_to(args.out / "scan.log")
    try:
        rules = load_case_rules(settings, grids=load_grids(args.grids, args.grids_crs))
        local_tz = ZoneInfo(args.timezone) if args.timezone else rules.calendar.timezone
        sidecar = read_sidecar(args.sidecar, local_tz, args.sidecar_crs) if args.sidecar else {}
        inputs = [p.expanduser() for p in args.paths]
        for source in inputs:
            if not source.exists():
                raise ScanInputError(f"{source}: no such file or folder")
            if source.is_dir() and source.resolve() == args.out.resolve():  # never walked (`iter_photos`)
                raise ScanInputError(
                    f"{source}: is the report's folder (--out {args.out}): give the report one of its own"
                )
            if source.is_file() and source.suffix.lower() not in PHOTO_SUFFIXES:
                check_list_file(source)
        flyers = load_flyer_finder(settings, args.flyers)
    except (ScanInputError, GridError, ZoneInfoNotFoundError, ValueError) as err:
        print(f"streetorder scan: {err}", file=sys.stderr)
        return 2
    try:
        factory = open_database(args.db)
    except SQLAlchemyError as err:
        print(f"streetorder scan: cannot open the database {args.db}: {err}", file=sys.stderr)
        return 1
    if (why := unwritable(args.db)) is not None:  # before the model loads and a batch is inspected
        print(f"streetorder scan: {why}; nothing was scanned", file=sys.stderr)
        return 1
    from vision.detect.registry import ModelError

    simple = args.engine == "simple"
    workers = 1 if simple else max(1, args.workers)
    try:
        detector, candidate, runtime = load_scan_detector(
            args.model, args.backend, args.precision, workers, settings, args.remeasure, flyers
        )
    except ModelError as err:  # --model names no usable model
        print(f"streetorder scan: {err}", file=sys.stderr)
        return 2
    if candidate is None:
        workers = 1  # torch runs one model call at a time, on all cores
        if args.engine == "ray":
            print("streetorder scan: --engine ray runs ONNX models, not .pt", file=sys.stderr)
            return 2
    scanner = Scanner(
        detector,
        factory,
        rules,
        sidecar,
        local_tz,
        args.max_pixels,
        max_bytes=args.max_mb * 2**20,
        min_side=settings.min_photo_side,
        reduced_decode=not args.full_decode,
        workers=workers,
        batch=1 if simple else max(1, args.batch),
        flyers=flyers,
        stall_s=args.stall_s or None,
        skip_folders=(args.out,),
    )
    log.info(
        "scanning %s with %s (%s), %s engine, %d worker(s), flyer reader %s, into %s",
        ", ".join(map(str, inputs)),
        detector.version,
        runtime,
        args.engine,
        workers,
        "off" if flyers is None else flyers.rules.scan,
        args.db,
    )
    try:
        if args.engine == "ray" and candidate is not None:
            stats = scan_on_ray(scanner, inputs, candidate, args, settings)
        else:
            stats = scanner.scan(inputs, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(
            "streetorder scan: interrupted; every photo done so far is saved, run again to resume",
            file=sys.stderr,
        )
        return 130
    except ScanInputError as err:  # a list file whose text breaks past its checked start
        print(f"streetorder scan: {err}; every photo done before it is saved", file=sys.stderr)
        return 2
    except DBAPIError as err:  # a conflict that outlasted the retries (Scanner.commit)
        if is_read_only(err):  # a server that takes no writes (a standby), or a file made read-only since
            shown = make_url(args.db).render_as_string(hide_password=True)
            why = unwritable(args.db) or (
                f"{shown}: the database cannot be written ({database_said(err)}): point --db at one that "
                "takes writes (the primary, not a standby) or make it writable"
            )
            print(f"streetorder scan: {why}; every photo done before it is saved", file=sys.stderr)
            return 1
        if not is_busy(err):
            raise
        print(
            f"streetorder scan: the database stayed busy ({database_said(err)}) through {BUSY_TRIES} tries "
            "of one write: another writer holds it (a long transaction, a lock); every photo done "
            "before it is saved, run again to resume",
            file=sys.stderr,
        )
        return 1
    except WorkerStalled as err:  # the stuck thread would keep the process from exiting: leave now
        print(f"streetorder scan: {err}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(1)
    report = write_report(
        factory,
        args.out,
        rules,
        ReportOptions(geojson_crs=args.geojson_crs, max_photo_bytes=int(args.max_mb * 2**20)),
        evidence_dir=settings.evidence_dir,
        unlisted_folders=stats.unlisted_folders,
    )
    for line in summary(stats, report, args.out):
        print(line)
    if stats.outside and rules.grids is not None:
        placed = stats.new - stats.unreadable - stats.unlocated - stats.undated  # new photos given a place
        print(outside_hint(rules.grids, args.grids, stats.outside >= placed))
    return 0


def scan_on_ray(
    scanner: Scanner,
    inputs: Sequence[Path | str],
    candidate: Candidate,
    args: argparse.Namespace,
    settings: Settings,
) -> ScanStats:
    """The scan with its inspection on Ray Data actors and its one writer here."""
    import ray

    from serve.cases.scan_ray import RaySettings, ray_inspections, start_ray

    inspector = scanner.inspector
    ray_settings = RaySettings(
        args.ray_address,
        args.db,
        scanner.workers,
        candidate.weights,
        candidate.runtime,
        settings.configs_dir / TAXONOMY,
        inspector.decoding,
        scanner.rules,
        scanner.flyers.rules if scanner.flyers is not None else None,
        scanner.sidecar,
    )
    started = start_ray(ray_settings)
    try:
        inspections = ray_inspections(ray_settings)
        return scanner.scan(inputs, progress=not args.no_progress, inspections=inspections)
    finally:
        if started:
            ray.shutdown()


def outside_hint(grids: GridIndex, path: Path, all_outside: bool) -> str:
    """Which layout the photos fell outside of: a bureau that set its own configs folder but not its
    grids scanned against the example layout of another city and saw only "outside the grids: 8"."""
    lon_min, lat_min, lon_max, lat_max = grids.bounds
    said = (
        f"  the grids are {path} ({len(grids)} grid(s), lat {lat_min:.5f}..{lat_max:.5f}, "
        f"lon {lon_min:.5f}..{lon_max:.5f}, WGS-84)"
    )
    if all_outside:
        said += (
            "; every new photo located fell outside them: is that this bureau's layout (--grids, "
            "STREETORDER_GRIDS) in the system it was drawn in (--grids-crs)?"
        )
    return said


def summary(stats: ScanStats, report: Path, out: Path) -> Iterable[str]:
    rate = stats.photos / stats.seconds if stats.seconds else 0.0
    yield (
        f"scanned {stats.photos} photo(s) in {stats.seconds:.1f} s ({rate:.1f} img/s): "
        f"{stats.new} new, {stats.known} already recorded (an earlier scan, or the same bytes twice)"
    )
    yield (
        f"  findings: {stats.findings} -> {stats.cases_created} new case(s), "
        f"{stats.evidence_added} added to open cases"
    )
    yield (
        f"  unreadable: {stats.unreadable}, unlocated: {stats.unlocated}, undated: {stats.undated}, "
        f"outside the grids: {stats.outside} (reasons in {out / 'scan.log'} and the report)"
    )
    if stats.unreadable_before:
        yield (
            f"  still unreadable: {stats.unreadable_before} file(s) listed by an earlier scan, read again "
            f"(in the report and {out / 'problem_photos.csv'})"
        )
    if stats.copies_joined:
        yield (
            f"  copies joined: {stats.copies_joined} photo(s) kept unlocated, undated or outside joined "
            f"the case(s) of the original they copy, scanned only now (which in {out / 'scan.log'})"
        )
    yield from still_unfiled(stats, out)
    if stats.retries:
        yield (
            f"  database busy: {stats.retries} write(s) rolled back on a conflict with another writer "
            f"and done again (which in {out / 'scan.log'})"
        )
    if stats.other_files:
        kinds = [f"{count} {suffix}" for suffix, count in stats.other_files.most_common(8)]
        if len(stats.other_files) > 8:
            kinds.append(f"{len(stats.other_files) - 8} other kinds")
        yield (
            f"  not read (not photos the scan takes): {', '.join(kinds)}; "
            f"it reads {', '.join(sorted(PHOTO_SUFFIXES))}"
        )
    if stats.sidecar_unmatched:
        shown = ", ".join(stats.sidecar_unmatched[:3]) + (", ..." if len(stats.sidecar_unmatched) > 3 else "")
        yield (
            f"  sidecar rows that located nothing: {len(stats.sidecar_unmatched)} ({shown}): no photo "
            f"scanned is at their file (misspelt, or outside the paths scanned; all in {out / 'scan.log'})"
        )
    if stats.unlisted_folders:
        shown = ", ".join(stats.unlisted_folders[:3]) + (", ..." if len(stats.unlisted_folders) > 3 else "")
        yield (
            f"  folders not listed: {len(stats.unlisted_folders)} ({shown}); their photos are not scanned "
            f"(reasons in {out / 'scan.log'})"
        )
    yield (
        f"report: {report}  (also {out / 'cases.geojson'}, {out / 'cases.csv'}, "
        f"{out / 'problem_photos.csv'}, {out / 'crops'}/)"
    )


def still_unfiled(stats: ScanStats, out: Path) -> Iterable[str]:
    """Photos recorded before without a position, a time or a grid and given nothing new: counted
    "already recorded" alone, a rescan said "unlocated: 0" of an archive still waiting for a sidecar."""
    listed = f"listed in {out / 'problem_photos.csv'}"
    remedies = {
        PhotoStatus.UNLOCATED: (
            "without a position",
            f"give each its lat/lon in a --sidecar CSV (file,lat,lon,taken_at) and scan again; {listed}",
        ),
        PhotoStatus.UNDATED: (
            "without a capture time",
            f"give each its taken_at in a --sidecar CSV (file,lat,lon,taken_at) and scan again; {listed}",
        ),
        PhotoStatus.OUTSIDE: (
            "at a place no unit grid of --grids holds",
            f"a grid layout (--grids) that holds them files them; {listed}",
        ),
    }
    for status, (lacking, remedy) in remedies.items():
        if count := getattr(stats, f"{status}_before"):
            shown = "outside the grids" if status == PhotoStatus.OUTSIDE else status
            yield (
                f"  still {shown}: {count} photo(s) recorded before {lacking} (an earlier scan, or the "
                f"same bytes twice), their findings in no case: {remedy}"
            )


# what str.splitlines breaks a line at: a file name holding one (Linux allows all but / and NUL)
# wrote the rest of its entry as a line of its own, with no time and no level, as if another entry
_LINE_BREAKS = {ord(c): ascii(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


class _OneLine(logging.Formatter):
    """One entry, one line: line breaks in a message (a file's name) written as escapes."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(record).translate(_LINE_BREAKS)


def _log_to(path: Path) -> None:
    log.setLevel(logging.INFO)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    console = _TqdmHandler(logging.WARNING, path)
    console.setFormatter(_OneLine("%(levelname)s %(message)s"))
    file = logging.FileHandler(path, encoding="utf-8")
    file.setFormatter(_OneLine("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(console)
    log.addHandler(file)


def parser(settings: Settings) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="streetorder scan",
        description="Scan patrol photos (folders, JPEG/PNG/WebP/HEIC, lists of paths) into grid cases.",
    )
    p.add_argument(
        "paths", nargs="+", type=Path, help="folders (recursive), photos, or text files listing photos"
    )
    p.add_argument("--model", default=settings.model, help="model name under models/, or .onnx/.pt path")
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "onnx", "openvino", "ultralytics"),
        help="model runtime; auto: the fastest installed one, measured once per machine and model",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "int8"),
        help="auto: FP32, or the model's INT8 file where its export measured no real accuracy loss "
        "and it is faster here",
    )
    p.add_argument(
        "--remeasure",
        action="store_true",
        help="time the runtimes again and keep the new choice (it is measured once per machine and "
        "model; a choice measured while the machine was busy can be the slower one)",
    )
    p.add_argument(
        "--engine",
        default="local",
        choices=("local", "simple", "ray"),
        help="local: parallel workers on this machine; simple: one photo at a time, one transaction "
        "each (the reference); ray: workers on Ray Data (a local Ray, or --ray-address)",
    )
    p.add_argument(
        "--workers", type=positive_int, default=cpu_count(), help="parallel workers (default: one per core)"
    )
    p.add_argument(
        "--stall-s",
        type=non_negative_float,
        default=600.0,
        help="watchdog: a photo not inspected within this many seconds stops the scan with an error "
        "(resumable; 0: wait forever)",
    )
    p.add_argument(
        "--batch", type=positive_int, default=64, help="photos per database transaction (at most 0.5 s)"
    )
    p.add_argument(
        "--full-decode",
        action="store_true",
        help="decode JPEGs in full (default: only as large as the model needs)",
    )
    p.add_argument(
        "--ray-address", help="Ray cluster to join (auto, ray://HEAD:10001); default: start a local Ray"
    )
    p.add_argument("--db", default=settings.db_url, help="SQLAlchemy URL of the case database")
    p.add_argument("--grids", type=Path, default=settings.grids, help="GeoJSON of unit grids")
    p.add_argument("--out", type=Path, default=Path("out"), help="folder for report.html, cases.* and crops")
    p.add_argument(
        "--grids-crs",
        choices=COORD_SYSTEMS,
        default=settings.grids_crs,
        help="coordinate system of --grids (gcj02: AMap/Tencent, bd09: Baidu); default: grids_crs, "
        "else the file's crs member, else wgs84",
    )
    p.add_argument(
        "--geojson-crs",
        choices=COORD_SYSTEMS,
        default=settings.geojson_crs,
        help="coordinate system of the report's cases.geojson (gcj02: a GIS on AMap/Tencent, bd09: Baidu), "
        "named in its crs member; default: geojson_crs, else wgs84. cases.csv stays WGS-84",
    )
    p.add_argument("--sidecar", type=Path, help="CSV file,lat,lon,taken_at for photos without EXIF GPS/time")
    p.add_argument(
        "--sidecar-crs",
        choices=COORD_SYSTEMS,
        default="wgs84",
        help="coordinate system of the sidecar's lat/lon (gcj02: read off AMap/Tencent, bd09: Baidu)",
    )
    p.add_argument(
        "--timezone", help="timezone of EXIF times without offset (default: configs/calendar.yaml)"
    )
    p.add_argument(
        "--max-pixels", type=positive_int, default=MAX_PIXELS, help="larger images are refused as bombs"
    )
    p.add_argument(
        "--max-mb",
        type=positive_int,
        default=MAX_PHOTO_BYTES // 2**20,
        help="larger files (MiB) are listed unreadable by their size, never read into memory",
    )
    p.add_argument(
        "--flyers",
        choices=("off", "detector", "all"),
        help="which photos the flyer reader reads (default: configs/flyers.yaml `scan`): off; detector: "
        "where the detector proposes a flyer; all: every photo (OCR, slow on a CPU: docs/flyers.md)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    return p
