"""`streetorder scan PATH...`: a patrol-photo archive becomes grid cases, and a report.

One photo at a time, streamed (memory stays flat over any archive): read the bytes, key them by
sha256, decode safely, detect, apply the patrol rule of the taxonomy, put the findings on their
unit grid and file them as cases (or as evidence of open duplicates). Each photo is committed
with its cases in one transaction, so a scan killed at any point and started again resumes where
it stopped and creates nothing twice; scanning a folder again only picks up new photos.

Photos are never given a made-up position or time: without EXIF GPS (or a sidecar row) a photo is
`unlocated`, without a capture time `undated`; both are listed in the report with what the model
saw on them, so that someone can supply the missing data (sidecar CSV) and scan again. Unreadable
files are listed with the reason, and the scan goes on.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from tqdm import tqdm

from serve.cases import CaseRules, Finding, boxes_of, load_case_rules, patrol_findings, record_finding
from serve.db import open_database, transaction
from serve.grids import GridError, load_grids
from serve.orm import Photo
from serve.report import write_report
from serve.settings import get_settings
from vision.detector import Detector
from vision.imageio import DEFAULT_TIMEZONE, MAX_PIXELS, ImageError, Position, decode_photo

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
log = logging.getLogger("streetorder.scan")


class ScanInputError(ValueError):
    """A scan argument or sidecar file that cannot be used; the message names the file and line."""


# --------------------------------------------------------------------------------------- inputs


def iter_photos(inputs: Sequence[Path]) -> Iterator[Path]:
    """JPEG/PNG files under folders (recursively, in name order) and in file lists (one path a line).

    Streams: never holds a listing of the archive, only one folder's entries at a time.
    """
    for source in inputs:
        if source.is_dir():
            for folder, dirs, files in os.walk(source):
                dirs.sort()
                for name in sorted(files):
                    if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                        yield Path(folder) / name
        elif source.suffix.lower() in IMAGE_SUFFIXES:
            yield source
        elif source.is_file():
            yield from _listed(source)
        else:
            raise ScanInputError(f"{source}: no such file or folder")


def _listed(list_file: Path) -> Iterator[Path]:
    """Paths in a list file, relative to the list's folder unless absolute; blank and # lines skipped."""
    with list_file.open(encoding="utf-8") as lines:
        for line in lines:
            entry = line.strip()
            if entry and not entry.startswith("#"):
                path = Path(entry)
                yield path if path.is_absolute() else list_file.parent / path


@dataclass(frozen=True)
class SidecarRow:
    position: Position | None
    taken_at: datetime | None


def read_sidecar(path: Path, local_tz: tzinfo) -> dict[Path, SidecarRow]:
    """`file,lat,lon,taken_at` rows for photos without EXIF GPS or time, keyed by resolved path.

    `file` is relative to the CSV's folder (or absolute); lat/lon WGS-84 degrees, both or neither;
    taken_at ISO 8601, in `local_tz` when it has no offset. Any bad row stops the scan before it
    starts, naming the line: a half-applied sidecar would file cases at wrong places.
    """
    rows: dict[Path, SidecarRow] = {}
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as err:
        raise ScanInputError(f"{path}: cannot read sidecar CSV: {err.strerror or err}") from err
    with handle:
        reader = csv.DictReader(handle)
        missing = {"file", "lat", "lon", "taken_at"} - set(reader.fieldnames or [])
        if missing:
            raise ScanInputError(
                f"{path}: header needs file,lat,lon,taken_at (missing {', '.join(sorted(missing))})"
            )
        for row in reader:
            where = f"{path}:{reader.line_num}"
            name = (row["file"] or "").strip()
            if not name:
                raise ScanInputError(f"{where}: file: empty")
            key = (path.parent / name).resolve()
            if key in rows:
                raise ScanInputError(f"{where}: file: {name} is listed twice")
            rows[key] = SidecarRow(_sidecar_position(row, where), _sidecar_time(row, where, local_tz))
    return rows


def _sidecar_position(row: dict[str, str], where: str) -> Position | None:
    lat_text, lon_text = (row["lat"] or "").strip(), (row["lon"] or "").strip()
    if not lat_text and not lon_text:
        return None
    try:
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise ScanInputError(f"{where}: lat/lon: {lat_text!r}, {lon_text!r} are not both numbers") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat, lon) == (0.0, 0.0):
        raise ScanInputError(f"{where}: lat/lon: ({lat}, {lon}) is not a WGS-84 position")
    return Position(lat, lon)


def _sidecar_time(row: dict[str, str], where: str, local_tz: tzinfo) -> datetime | None:
    text = (row["taken_at"] or "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ScanInputError(
            f"{where}: taken_at: {text!r} is not ISO 8601 (2026-11-20T09:15:00+08:00)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=local_tz)


# ----------------------------------------------------------------------------------------- scan


@dataclass
class ScanStats:
    """Counters only: a scan keeps no per-photo results in memory."""

    photos: int = 0
    new: int = 0
    known: int = 0  # already in the database (an earlier scan, or the same bytes twice)
    unreadable: int = 0
    unlocated: int = 0
    undated: int = 0
    findings: int = 0
    cases_created: int = 0
    evidence_added: int = 0
    seconds: float = 0.0

    def postfix(self) -> dict[str, int]:
        return {"cases": self.cases_created, "joined": self.evidence_added, "bad": self.unreadable}


@dataclass(frozen=True)
class Scanner:
    """What one scan needs; `scan_photo` and `scan` are its one verb, on one photo or many."""

    detector: Detector
    factory: sessionmaker[Session]
    rules: CaseRules
    sidecar: dict[Path, SidecarRow] = field(default_factory=dict)
    local_tz: tzinfo = DEFAULT_TIMEZONE
    max_pixels: int = MAX_PIXELS

    def scan(self, inputs: Sequence[Path], *, progress: bool = True) -> ScanStats:
        stats = ScanStats()
        started = time.perf_counter()
        total = sum(1 for _ in iter_photos(inputs))
        with tqdm(total=total, unit="img", desc="scan", disable=not progress, dynamic_ncols=True) as bar:
            for path in iter_photos(inputs):
                self.scan_photo(path, stats)
                bar.update(1)
                bar.set_postfix(stats.postfix(), refresh=False)
        stats.seconds = time.perf_counter() - started
        return stats

    def scan_photo(self, path: Path, stats: ScanStats) -> str:
        """Scan one file and commit it with its cases; returns the photo's status."""
        stats.photos += 1
        resolved = path.resolve()
        try:
            data = resolved.read_bytes()
        except OSError as err:
            # no bytes, no content key: the path stands in, so a re-scan does not list it twice
            key = hashlib.sha256(f"unreadable-path:{resolved}".encode()).hexdigest()
            return self._unreadable(stats, resolved, key, f"cannot read file: {err.strerror or err}")
        sha256 = hashlib.sha256(data).hexdigest()
        extra = self.sidecar.get(resolved)
        with self.factory() as session:
            known = session.scalar(select(Photo).where(Photo.sha256 == sha256))
        if known is not None and not _completes(known, extra):
            stats.known += 1
            return known.status
        try:
            photo = decode_photo(
                data, source=str(resolved), max_pixels=self.max_pixels, local_tz=self.local_tz
            )
        except ImageError as err:
            return self._unreadable(stats, resolved, sha256, err.reason)
        for warning in photo.meta.warnings:
            log.warning("%s: %s", resolved, warning)
        position = photo.meta.position or (extra.position if extra else None)
        taken_at = photo.meta.taken_at or (extra.taken_at if extra else None)
        status = "unlocated" if position is None else "undated" if taken_at is None else "done"
        detections = self.detector(photo.image)
        events = patrol_findings(detections, self.rules.taxonomy)
        grid = self.rules.grids.locate(position.lat, position.lon) if position and self.rules.grids else None
        record = {
            "path": str(resolved),
            "source": "patrol",
            "status": status,
            "error": None,
            "width": photo.width,
            "height": photo.height,
            "taken_at": taken_at,
            "lat": position.lat if position else None,
            "lon": position.lon if position else None,
            "grid_code": grid.code if grid else None,
            "model_version": self.detector.version,
            "detections": [b.to_json() for b in boxes_of(detections, self.rules.taxonomy.names)],
            "processed_at": datetime.now(UTC),  # bookkeeping of the scan itself, not a rule's time
        }
        try:
            with transaction(self.factory) as session:
                row = session.scalar(select(Photo).where(Photo.sha256 == sha256)) or Photo(sha256=sha256)
                for name, value in record.items():
                    setattr(row, name, value)
                session.add(row)
                session.flush()
                if status == "done" and position is not None and taken_at is not None:
                    for event, boxes in events.items():
                        update = record_finding(
                            session,
                            Finding(
                                event=event,
                                lat=position.lat,
                                lon=position.lon,
                                seen_at=taken_at,
                                photo_path=str(resolved),
                                photo_sha256=sha256,
                                boxes=boxes,
                                model_version=self.detector.version,
                                photo_id=row.id,
                            ),
                            self.rules,
                        )
                        stats.findings += 1
                        stats.cases_created += update.created
                        stats.evidence_added += not update.created
        except IntegrityError:  # another scanner committed the same photo first
            stats.known += 1
            return "known"
        stats.new += 1
        if status != "done":
            setattr(stats, status, getattr(stats, status) + 1)
            missing = "position (EXIF GPS or sidecar lat/lon)" if status == "unlocated" else "capture time"
            log.warning(
                "%s: %s: no %s; no case filed (%d finding(s) seen)", resolved, status, missing, len(events)
            )
        return status

    def _unreadable(self, stats: ScanStats, path: Path, key: str, reason: str) -> str:
        log.warning("%s: unreadable: %s", path, reason)
        with transaction(self.factory) as session:
            if session.scalar(select(Photo.id).where(Photo.sha256 == key)) is not None:
                stats.known += 1
                return "unreadable"
            session.add(
                Photo(
                    sha256=key,
                    path=str(path),
                    source="patrol",
                    status="unreadable",
                    error=reason,
                    processed_at=datetime.now(UTC),
                )
            )
        stats.unreadable += 1
        stats.new += 1
        return "unreadable"


def _completes(known: Photo, extra: SidecarRow | None) -> bool:
    """Whether a sidecar row now gives an earlier unlocated or undated photo what it lacked."""
    if extra is None:
        return False
    return (known.status == "unlocated" and extra.position is not None) or (
        known.status == "undated" and extra.taken_at is not None
    )


# ------------------------------------------------------------------------------------------ CLI


def parser() -> argparse.ArgumentParser:
    settings = get_settings()
    p = argparse.ArgumentParser(
        prog="streetorder scan",
        description="Scan patrol photos (folders, JPEG/PNG files, or lists of paths) into grid cases.",
    )
    p.add_argument(
        "paths", nargs="+", type=Path, help="folders (recursive), photos, or text files listing photos"
    )
    p.add_argument("--model", default=settings.model, help="model name under models/, or .onnx/.pt path")
    p.add_argument("--backend", default="auto", choices=("auto", "onnx", "ultralytics"))
    p.add_argument("--db", default=settings.db_url, help="SQLAlchemy URL of the case database")
    p.add_argument("--grids", type=Path, default=settings.grids, help="GeoJSON of unit grids")
    p.add_argument("--out", type=Path, default=Path("out"), help="folder for report.html, cases.* and crops")
    p.add_argument("--sidecar", type=Path, help="CSV file,lat,lon,taken_at for photos without EXIF GPS/time")
    p.add_argument(
        "--timezone", help="timezone of EXIF times without offset (default: configs/calendar.yaml)"
    )
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS, help="larger images are refused as bombs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    return p


class _TqdmHandler(logging.Handler):
    """Log lines above the progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


def cli(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    _log_to(args.out / "scan.log")
    try:
        rules = load_case_rules(grids=load_grids(args.grids))
        local_tz = ZoneInfo(args.timezone) if args.timezone else rules.calendar.timezone
        sidecar = read_sidecar(args.sidecar, local_tz) if args.sidecar else {}
        inputs = [p.expanduser() for p in args.paths]
        for source in inputs:
            if not source.exists():
                raise ScanInputError(f"{source}: no such file or folder")
    except (ScanInputError, GridError, ZoneInfoNotFoundError, ValueError) as err:
        print(f"streetorder scan: {err}", file=sys.stderr)
        return 2
    try:
        factory = open_database(args.db)
    except SQLAlchemyError as err:
        print(f"streetorder scan: cannot open the database {args.db}: {err}", file=sys.stderr)
        return 2
    from vision.backends import load_detector  # imported here: `--help` needs no model runtime
    from vision.registry import ModelError

    try:
        detector = load_detector(args.model, args.backend)
    except ModelError as err:
        print(f"streetorder scan: {err}", file=sys.stderr)
        return 2
    scanner = Scanner(detector, factory, rules, sidecar, local_tz, args.max_pixels)
    log.info("scanning %s with %s into %s", ", ".join(map(str, inputs)), detector.version, args.db)
    try:
        stats = scanner.scan(inputs, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(
            "streetorder scan: interrupted; every photo done so far is saved, run again to resume",
            file=sys.stderr,
        )
        return 130
    report = write_report(factory, args.out, rules)
    for line in summary(stats, report, args.out):
        print(line)
    return 0


def summary(stats: ScanStats, report: Path, out: Path) -> Iterable[str]:
    rate = stats.photos / stats.seconds if stats.seconds else 0.0
    yield (
        f"scanned {stats.photos} photo(s) in {stats.seconds:.1f} s ({rate:.1f} img/s): "
        f"{stats.new} new, {stats.known} already in the database"
    )
    yield (
        f"  findings: {stats.findings} -> {stats.cases_created} new case(s), "
        f"{stats.evidence_added} added to open cases"
    )
    yield (
        f"  unreadable: {stats.unreadable}, unlocated: {stats.unlocated}, undated: {stats.undated} "
        f"(reasons in {out / 'scan.log'} and the report)"
    )
    yield f"report: {report}  (also {out / 'cases.geojson'}, {out / 'cases.csv'}, {out / 'crops'}/)"


def _log_to(path: Path) -> None:
    log.setLevel(logging.INFO)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    console = _TqdmHandler(logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    file = logging.FileHandler(path, encoding="utf-8")
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(console)
    log.addHandler(file)
