"""`streetorder scan PATH...`: a patrol-photo archive becomes grid cases, and a report.

Streamed (memory stays flat over any archive): workers, one per core (`Inspector`), read the
bytes, key them by sha256, skip photos recorded before, decode safely and only as large as the
model needs, and detect; one writer (`Scanner`) takes their results in input order, applies the
patrol rule of the taxonomy, puts the findings on their unit grid and files them as cases (or as
evidence of open duplicates), a batch of photos per transaction. Each photo is committed with its
cases, so a scan killed at any point and started again resumes where it stopped and creates
nothing twice, with the cases a one-photo-at-a-time scan makes; scanning a folder again only
picks up new photos. `--engine ray` moves the workers to Ray Data (serve/cases/scan_ray.py); the fast
path and its measurements are described in docs/scanning.md.

What a photo becomes is the photo intake's rule (serve/cases/intake.py), the same as for an upload
to `POST /v1/reports`: photos are never given a made-up position or time; without EXIF GPS (or a
sidecar row) a photo is `unlocated`, taken where no unit grid is `outside`, without a capture
time `undated`; all are listed in the report with what the model saw on them, so that someone can
supply the missing data (sidecar CSV) and scan again. Unreadable files are listed with the reason,
and the scan goes on.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from types import TracebackType

import supervision as sv
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from tqdm import tqdm

from serve.cases.coords import CoordSystem, position_to_wgs84
from serve.cases.db import BUSY_TRIES, database_said, retry_busy, transaction
from serve.cases.enums import PhotoSource, PhotoStatus
from serve.cases.findings import CaseRules, CaseUpdate
from serve.cases.intake import (
    Given,
    IncomingPhoto,
    reads_in_full,
    retaken,
    supersede_unreadable,
    take_photo,
    take_unreadable,
)
from serve.cases.orm import Evidence, Photo
from serve.cases.settings import Settings
from serve.cases.times import ImplausibleTime
from vision.core.detector import Detector
from vision.core.files import is_utf8_path, shown_path
from vision.core.imageio import (
    DEFAULT_TIMEZONE,
    MAX_PHOTO_BYTES,
    MAX_PIXELS,
    MIN_PHOTO_SIDE,
    PHOTO_SUFFIXES,
    ImageError,
    PhotoMeta,
    Position,
)
from vision.core.phash import perceptual_hash
from vision.detect.flyers import FlyerFinder, ScanMode, detection_floor, load_flyer_rules
from vision.detect.pipeline import (
    Candidate,
    DecodeOptions,
    detect_full,
    is_other_url,
    is_url,
    ordered_map,
    read_source,
)

log = logging.getLogger("streetorder.scan")


class ScanInputError(ValueError):
    """A scan argument or sidecar file that cannot be used; the message names the file and line."""


# --------------------------------------------------------------------------------------- inputs


def iter_photos(
    inputs: Sequence[Path | str],
    others: Counter[str] | None = None,
    unlisted: list[str] | None = None,
    skip: Sequence[Path] = (),
) -> Iterator[Path | str]:
    """Photos (JPEG, PNG, WebP, HEIC by suffix) under folders (recursively, in name order) and in
    file lists (one path a line). `others` counts the other files of the folders by suffix, so a
    scan says what it left unread (a .gif, a .tif, a video) instead of dropping it unsaid.
    `unlisted` gets the folders that could not be listed (no permission, a path over PATH_MAX):
    os.walk skipped them silently, and their photos with them.

    Links to folders are followed (an archive spread over disks by links was dropped unsaid), each
    real folder once, so a link round a loop ends there.

    `skip`: folders not walked, the scan's own output. `cd archive; streetorder scan .` writes its
    report into archive/out/, and the next scan took the report's thumbnails (boxes drawn) and crops
    in as patrol photos: copies of the evidence, each joined to its case, the rest unlocated.

    Streams: never holds a listing of the archive, only one folder's entries at a time (and the
    real paths of the folders walked). A list may hold URLs (s3://bucket/key.jpg, https://...): they
    stay strings, read through fsspec.
    """
    for entry in inputs:
        if isinstance(entry, str) and is_url(entry):
            yield entry
            continue
        source = Path(entry)
        if source.is_dir():
            walked: set[str] = set()  # real paths: a folder reached twice through links is walked once
            skipped = {os.path.realpath(folder) for folder in skip}
            for folder, dirs, files in os.walk(source, onerror=_unlisted(unlisted), followlinks=True):
                real = os.path.realpath(folder)
                if real in skipped:
                    log.info("%s: the scan's output folder, not scanned", shown_path(folder))
                    dirs.clear()
                    continue
                if real in walked:  # a link round a loop, or to a folder walked already
                    dirs.clear()
                    continue
                walked.add(real)
                dirs.sort()
                for name in sorted(files):
                    suffix = Path(name).suffix.lower()
                    if suffix in PHOTO_SUFFIXES:
                        yield Path(folder) / name
                    elif others is not None:
                        others[suffix or "(no suffix)"] += 1
        elif source.suffix.lower() in PHOTO_SUFFIXES:
            yield source
        elif source.is_file():
            yield from _listed(source)
        else:
            raise ScanInputError(f"{source}: no such file or folder")


def _unlisted(folders: list[str] | None) -> Callable[[OSError], None]:
    """os.walk's error handler: a folder it cannot list is said (scan.log) and kept in `folders`."""

    def said(err: OSError) -> None:
        folder = shown_path(err.filename)
        log.warning("%s: folder not listed, its photos are not scanned: %s", folder, err.strerror or err)
        if folders is not None:
            folders.append(folder)

    return said


LISTING_AHEAD = 50_000  # photos the listing may run ahead of the work: some 15 MB of paths


class Listing:
    """The photos under a scan's inputs (`iter_photos`), walked once, by a thread of its own, while
    the work takes them in order from a queue: the listing runs up to `ahead` photos ahead of the
    work, so memory stays bounded over any archive, and `found` counts the photos found so far
    (the total, once `complete`). A scan walked the archive twice, once to count for the progress
    bar and once to work: on a network drive of millions of photos, listing is what takes the time.

    A listing error (a folder gone, a list file whose text breaks past its checked start) is raised
    to the work at its next photo: the photos recorded before it stay recorded. Leaving the `with`
    block (the end, an error, Ctrl-C) stops the walk; the thread is a daemon, so a walk hung on a
    network drive never keeps the process from exiting.
    """

    def __init__(
        self,
        inputs: Sequence[Path | str],
        others: Counter[str] | None = None,
        ahead: int = LISTING_AHEAD,
        unlisted: list[str] | None = None,
        skip: Sequence[Path] = (),
    ) -> None:
        self.found = 0
        self.complete = False
        self._inputs, self._others, self._unlisted, self._skip = inputs, others, unlisted, skip
        self._queue: queue.Queue[Path | str | None] = queue.Queue(maxsize=ahead)  # None: the end
        self._stop = threading.Event()
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._walk, name="scan-listing", daemon=True)

    def __enter__(self) -> Listing:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()

    def __iter__(self) -> Iterator[Path | str]:
        while True:
            entry = self._queue.get()
            if self._error is not None:
                raise self._error
            if entry is None:
                return
            yield entry

    def _walk(self) -> None:
        try:
            for item in iter_photos(self._inputs, self._others, self._unlisted, self._skip):
                self.found += 1
                if not self._put(item):
                    return
            self.complete = True
        except Exception as err:  # handed to the work, which raises it at its next photo
            self._error = err
        self._put(None)

    def _put(self, entry: Path | str | None) -> bool:
        """Wait for room in the queue, unless the work has stopped (then False)."""
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False


def _not_a_list(list_file: Path) -> ScanInputError:
    taken = ", ".join(sorted(PHOTO_SUFFIXES))
    return ScanInputError(
        f"{list_file}: neither a photo ({taken}) nor a text list of photo paths, one a line"
    )


def check_list_file(list_file: Path) -> None:
    """Refuse a file given as a list that is no UTF-8 text (a photo of a type not taken, a .tif, a
    video) by its first 64 KiB, so that the scan stops before it starts instead of midway."""
    with list_file.open("rb") as raw:
        head = raw.read(65536)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        raise _not_a_list(list_file) from None
    if b"\0" in head:
        raise _not_a_list(list_file)


def _listed(list_file: Path) -> Iterator[Path | str]:
    """Paths in a list file, relative to the list's folder unless absolute, or URLs; blank and #
    lines skipped. Text that breaks past the checked start stops the scan there."""
    check_list_file(list_file)
    with list_file.open(encoding="utf-8-sig") as lines:  # -sig: Windows Notepad starts with a BOM
        try:
            for line in lines:
                entry = line.strip()
                if is_url(entry) or is_other_url(entry):
                    yield entry
                elif entry and not entry.startswith("#"):
                    path = Path(entry)
                    yield path if path.is_absolute() else list_file.parent / path
        except UnicodeDecodeError:
            raise _not_a_list(list_file) from None


def read_sidecar(path: Path, local_tz: tzinfo, crs: CoordSystem = "wgs84") -> dict[Path, Given]:
    """`file,lat,lon,taken_at` rows for photos without EXIF GPS or time, keyed by resolved path.

    `file` is relative to the CSV's folder (or absolute); lat/lon degrees in `crs` (positions taken
    off AMap are gcj02), kept as WGS-84, both or neither;
    taken_at ISO 8601, in `local_tz` when it has no offset. Any bad row stops the scan before it
    starts, naming the line: a half-applied sidecar would file cases at wrong places.
    """
    rows: dict[Path, Given] = {}
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
            rows[key] = Given(_sidecar_position(row, where, crs), _sidecar_time(row, where, local_tz))
    return rows


def _sidecar_position(row: dict[str, str], where: str, crs: CoordSystem) -> Position | None:
    lat_text, lon_text = (row["lat"] or "").strip(), (row["lon"] or "").strip()
    if not lat_text and not lon_text:
        return None
    try:
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise ScanInputError(f"{where}: lat/lon: {lat_text!r}, {lon_text!r} are not both numbers") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat, lon) == (0.0, 0.0):
        raise ScanInputError(f"{where}: lat/lon: ({lat}, {lon}) is not a position in degrees")
    return Position(*position_to_wgs84(lat, lon, crs))


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


# what a photo recorded but filed in no case lacks, by its status
UNFILED = {
    PhotoStatus.UNLOCATED: "no position (EXIF GPS or sidecar lat/lon)",
    PhotoStatus.UNDATED: "no capture time",
    PhotoStatus.OUTSIDE: "taken outside every unit grid of the layout",
}


@dataclass
class ScanStats:
    """Counters only: a scan keeps no per-photo results in memory."""

    photos: int = 0
    new: int = 0
    known: int = 0  # already in the database (an earlier scan, or the same bytes twice)
    unreadable: int = 0
    unreadable_before: int = 0  # listed unreadable by an earlier scan, read again and still so (in `known`)
    unlocated: int = 0
    undated: int = 0
    outside: int = 0  # located in no unit grid of the layout
    # recorded so before (an earlier scan, or the same bytes twice), given nothing new, filed in no
    # case (in `known`): a rescan said "unlocated: 0" of an archive whose photos were all still so
    unlocated_before: int = 0
    undated_before: int = 0
    outside_before: int = 0
    findings: int = 0
    cases_created: int = 0
    evidence_added: int = 0
    copies_joined: int = 0  # photos recorded unfiled, joined to the cases of their original found now
    retries: int = 0  # writes rolled back on a transient conflict (`is_busy`) and done again
    seconds: float = 0.0
    other_files: Counter[str] = field(default_factory=Counter)  # in the folders, by suffix: not read
    unlisted_folders: list[str] = field(default_factory=list)  # could not be listed: photos not seen
    sidecar_unmatched: list[str] = field(default_factory=list)  # sidecar rows naming no photo scanned

    def postfix(self) -> dict[str, int]:
        return {"cases": self.cases_created, "joined": self.evidence_added, "bad": self.unreadable}

    def restore(self, earlier: ScanStats) -> None:
        """Back to the counts before a transaction that was rolled back; its retries stay counted."""
        for counter in dataclass_fields(self):
            if counter.name != "retries":
                setattr(self, counter.name, getattr(earlier, counter.name))


@dataclass(frozen=True)
class Inspection:
    """What a worker learnt of one photo, for the writer: plain data (it crosses to Ray's driver).

    status: `known` (recorded before, not decoded again), `unreadable` (with `error`) or `decoded`.
    Boxes are in the pixels of the photo itself, however reduced it was decoded.
    """

    source: str  # resolved path or URL
    sha256: str
    status: str
    error: str | None = None
    known_status: str | None = None
    meta: PhotoMeta | None = None
    size: tuple[int, int] | None = None  # upright (width, height)
    detections: sv.Detections | None = None
    phash: str | None = None  # vision.core.phash of the decoded image


def unrecordable_name(source: str) -> str | None:
    """Why a photo's path cannot be recorded, or None. A name that is not UTF-8 (a zip made on a
    Chinese Windows unpacks with GBK names) fits no database text column, report or terminal: it
    stopped the whole scan with a traceback. Such a photo is listed as unreadable instead."""
    if is_utf8_path(source):
        return None
    try:
        as_gbk = f" (read as GBK: {Path(os.fsencode(source).decode('gb18030')).name})"
    except UnicodeDecodeError:
        as_gbk = ""
    return (
        f"the file name is not UTF-8{as_gbk}: rename the files to UTF-8 "
        "(e.g. `convmv -f gbk -t utf-8 -r --notest FOLDER`) and scan again"
    )


def source_of(item: Path | str) -> str:
    """A photo's identity in the database: the resolved local path, or the URL as listed. A link
    to nothing, to itself round a loop, or to no file (`zero.jpg -> /dev/zero`, listed as
    `/dev/zero`, which no one finds in the archive) keeps its own name, so the scan's list of
    unreadable files names what is there."""
    if isinstance(item, str):
        return item
    try:
        resolved = item.resolve()
    except (OSError, RuntimeError):  # a symlink loop: RuntimeError until Python 3.13, OSError since
        return str(item.absolute())
    return str(resolved if not item.is_symlink() or resolved.is_file() else item.absolute())


def unreadable_key(source: str, sha256: str | None = None) -> str:
    """The key of an unreadable file's row: its path, with its bytes' sha256 where it has bytes.

    Per path, because each unreadable file is one a person must look at: keyed by its bytes
    alone, three identical broken copies (`bad1.jpg`, `bad2.jpg`, `bad3.jpg`) were one row naming
    the first, and the other two were counted "already recorded" and listed nowhere. With its
    bytes, so that other bytes at the same path (a different broken copy) are a new entry that
    supersedes the old one (`supersede_unreadable`).
    """
    content = f":{sha256}" if sha256 is not None else ""  # none: the key such rows always had
    return hashlib.sha256(f"unreadable-path:{source}{content}".encode()).hexdigest()


@dataclass(frozen=True)
class Inspector:
    """Worker side of a scan: read, hash, skip what is recorded, decode (reduced), detect.

    Safe to call from many threads at once; it only reads the database (`factory` may be None
    where the workers cannot reach it, e.g. Ray nodes without the SQLite file: then recorded
    photos are decoded again and the writer still skips them).
    """

    detector: Detector
    factory: sessionmaker[Session] | None
    decoding: DecodeOptions = field(default_factory=DecodeOptions)
    sidecar: dict[Path, Given] = field(default_factory=dict)
    flyers: FlyerFinder | None = None  # the flyer reader (configs/flyers.yaml says which photos)
    read_in_full: Callable[[Position | None], bool] = lambda _: False  # a photo in a flyer zone

    def __call__(self, item: Path | str) -> Inspection:
        source = source_of(item)
        if (reason := unrecordable_name(source)) is not None:
            shown = shown_path(source)
            return Inspection(shown, unreadable_key(shown), "unreadable", error=reason)
        try:
            data = read_source(source, self.decoding.max_bytes)
        except OSError as err:  # no bytes: the path alone is the key
            return Inspection(
                source, unreadable_key(source), "unreadable", error=f"cannot read file: {err.strerror or err}"
            )
        sha256 = hashlib.sha256(data).hexdigest()
        if self.factory is not None:
            with self.factory() as session:
                known = session.scalar(select(Photo.status).where(Photo.sha256 == sha256))
            if known is not None and not retaken(known, sidecar_row(self.sidecar, source)):
                return Inspection(source, sha256, "known", known_status=known)
        try:
            photo = self.decoding.decode(data, source)
        except ImageError as err:
            return Inspection(source, unreadable_key(source, sha256), "unreadable", error=err.reason)
        detections = detect_full(self.detector, photo)
        if self.flyers is not None:
            given = sidecar_row(self.sidecar, source)
            position = photo.meta.position or (given.position if given else None)
            detections = self.flyers.scan_photo(
                detections,
                (photo.width, photo.height),
                lambda side: replace(self.decoding, reduce_to=side).decode(data, source).image,
                full=self.read_in_full(position),
            )
        return Inspection(
            source,
            sha256,
            "decoded",
            meta=photo.meta,
            size=(photo.width, photo.height),
            detections=detections,
            phash=perceptual_hash(photo.image),
        )


def sidecar_row(sidecar: dict[Path, Given], source: str) -> Given | None:
    return None if is_url(source) else sidecar.get(Path(source))


@dataclass(frozen=True)
class Scanner:
    """What one scan needs; `scan` is its one verb.

    Photos are inspected by `workers` threads and recorded by this thread alone, in input order,
    `batch` photos per transaction (or what `batch_seconds` gathered): each photo is committed
    together with its cases, so a scan killed at any point resumes with the same result.
    """

    detector: Detector
    factory: sessionmaker[Session]
    rules: CaseRules
    sidecar: dict[Path, Given] = field(default_factory=dict)
    local_tz: tzinfo = DEFAULT_TIMEZONE
    max_pixels: int = MAX_PIXELS
    max_bytes: int = MAX_PHOTO_BYTES  # larger files are listed unreadable, never read
    min_side: int = MIN_PHOTO_SIDE  # smaller photos are listed too small, never judged
    reduced_decode: bool = True
    workers: int = 1
    batch: int = 1
    batch_seconds: float = 0.5
    flyers: FlyerFinder | None = None
    stall_s: float | None = 600.0  # watchdog: a photo taking longer stops the scan (WorkerStalled)
    skip_folders: tuple[Path, ...] = ()  # not walked: the scan's output (`iter_photos`)

    @property
    def inspector(self) -> Inspector:
        reduce_to = self.detector.input_size if self.reduced_decode else None
        return Inspector(
            self.detector,
            self.factory,
            DecodeOptions(reduce_to, self.max_pixels, self.local_tz, self.max_bytes, self.min_side),
            self.sidecar,
            self.flyers,
            self.in_flyer_zone,
        )

    def in_flyer_zone(self, position: Position | None) -> bool:
        return self.flyers is not None and reads_in_full(self.flyers, self.rules, position)

    def scan(
        self,
        inputs: Sequence[Path | str],
        *,
        progress: bool = True,
        inspections: InspectionSource | None = None,
    ) -> ScanStats:
        """Scan every photo under `inputs`; `inspections` replaces the local workers (the Ray engine).

        The archive is listed once (`Listing`), as the work goes: the progress bar counts the
        photos done and those found so far, and shows the share done and the time left once the
        listing is complete (at once for an archive the listing can run ahead of whole).
        """
        stats = ScanStats()
        started = time.perf_counter()
        inspect = inspections or (
            lambda items: ordered_map(self.inspector, items, self.workers, stall_s=self.stall_s)
        )
        bar = tqdm(unit="img", desc="scan, listing", disable=not progress, dynamic_ncols=True)
        listing = Listing(inputs, stats.other_files, unlisted=stats.unlisted_folders, skip=self.skip_folders)
        with listing, bar:

            def committed(count: int) -> None:
                if listing.complete and bar.total is None:
                    bar.total = listing.found
                    bar.set_description("scan", refresh=False)
                found = {} if listing.complete else {"found": listing.found}
                bar.set_postfix({**found, **stats.postfix()}, refresh=False)
                bar.update(count)

            unmatched = set(self.sidecar)

            def matched(inspections: Iterable[Inspection]) -> Iterator[Inspection]:
                for inspection in inspections:
                    if unmatched and not is_url(inspection.source):
                        unmatched.discard(Path(inspection.source))
                    yield inspection

            self.write(matched(inspect(iter(listing))), stats, committed)
        # a row whose `file` is misspelt (C.JPG for c.jpg) or outside the paths scanned located
        # nothing, and its photos stayed unlocated with no word of the row
        stats.sidecar_unmatched = sorted(map(str, unmatched))
        for path in stats.sidecar_unmatched:
            log.warning("%s: in the sidecar, but no photo scanned is there", path)
        stats.seconds = time.perf_counter() - started
        return stats

    def write(
        self, inspections: Iterable[Inspection], stats: ScanStats, committed: Callable[[int], None]
    ) -> None:
        """Record inspections in order, in transactions of up to `batch` photos or `batch_seconds`.

        Transactions start at one photo and double up to `batch`: the first results are saved
        (and shown) at once, and a scan stopped early loses little; long scans get the full batch.
        """
        pending: list[Inspection] = []
        opened = 0.0
        size = 1
        for inspection in inspections:
            if not pending:
                opened = time.monotonic()
            pending.append(inspection)
            if len(pending) >= size or time.monotonic() - opened >= self.batch_seconds:
                self.commit(pending, stats)
                committed(len(pending))
                pending = []
                size = min(2 * size, self.batch)
        if pending:
            self.commit(pending, stats)
            committed(len(pending))

    def commit(self, batch: list[Inspection], stats: ScanStats) -> list[str]:
        """One transaction for the batch; if another scanner committed one of its photos meanwhile,
        the batch is done again photo by photo and that photo counts as known.

        A transaction rolled back on a transient conflict (a deadlock with another scan or the
        service, a lock wait given up, SQLite's lock held past busy_timeout) is done again, up to
        BUSY_TRIES times (`retry_busy`), each retry counted and logged: a night's scan does not stop
        for a moment's contention, and the rollback leaves nothing to write twice. A conflict that
        persists raises the database's error (the CLI says so; a rerun resumes)."""
        before = replace(stats)

        def once() -> list[str]:
            with transaction(self.factory) as session:
                return [self.record(session, inspection, stats) for inspection in batch]

        def retried(attempt: int, error: DBAPIError) -> None:
            stats.restore(before)
            stats.retries += 1
            log.warning(
                "%s%s: the database was busy (%s); written again (try %d of %d)",
                batch[0].source,
                f" and {len(batch) - 1} photo(s) after it" if len(batch) > 1 else "",
                database_said(error),
                attempt + 1,
                BUSY_TRIES,
            )

        try:
            return retry_busy(once, retried)
        except IntegrityError:
            if len(batch) == 1:
                stats.restore(before)
                stats.photos += 1
                stats.known += 1
                return ["known"]
        stats.restore(before)
        return [status for inspection in batch for status in self.commit([inspection], stats)]

    def record(self, session: Session, inspection: Inspection, stats: ScanStats) -> str:
        """Write one inspected photo and its cases in the caller's transaction; returns its status.

        The path's latest read supersedes what earlier scans recorded unreadable there under other
        bytes (a truncated copy since replaced by a good one), so the report lists only current
        problems; scan.log keeps what was superseded."""
        status = self._take(session, inspection, stats)
        for stale in supersede_unreadable(session, path=inspection.source, key=inspection.sha256):
            log.info(
                "%s: scanned again (now %s); its earlier unreadable entry is superseded: %s",
                stale.path,
                status,
                stale.error,
            )
        return status

    def _take(self, session: Session, inspection: Inspection, stats: ScanStats) -> str:
        stats.photos += 1
        source, sha256 = inspection.source, inspection.sha256
        if inspection.status == "known":
            stats.known += 1
            if inspection.known_status in UNFILED:
                self._still_unfiled(session, stats, source, sha256, PhotoStatus(inspection.known_status))
            return inspection.known_status or "known"
        if inspection.status == "unreadable":
            return self._unreadable(session, stats, source, sha256, inspection.error or "unreadable")
        assert (
            inspection.meta is not None and inspection.size is not None and inspection.detections is not None
        )
        incoming = IncomingPhoto(
            sha256=sha256,
            path=source,
            source=PhotoSource.PATROL,
            meta=inspection.meta,
            size=inspection.size,
            detections=inspection.detections,
            model_version=self.detector.version,
            given=sidecar_row(self.sidecar, source) or Given(),
            phash=inspection.phash,
        )
        now = datetime.now(UTC)  # bookkeeping, and the clock no capture time may run ahead of
        try:
            intake = take_photo(session, incoming, self.rules, now=now)
        except ImplausibleTime as err:  # a photo from 2999 or year 1: kept undated with the reason,
            # no case; its bytes are its key, so only an undated row lets a sidecar's time file it later
            untimed = replace(incoming.given, taken_at=None)
            undated = replace(incoming, meta=replace(incoming.meta, taken_at=None), given=untimed)
            intake = take_photo(session, undated, self.rules, now=now)
            reason = f"{err.detail}; give taken_at in a sidecar CSV"
            log.warning("%s: %s", source, reason)
            if intake.photo.status == PhotoStatus.UNDATED:  # the report's reason, not "EXIF missing"
                intake.photo.error = reason
        status = intake.photo.status
        if intake.known:  # the same bytes earlier in this scan (or of an earlier one, on Ray)
            stats.known += 1
            if status in UNFILED:
                self._still_unfiled(session, stats, source, sha256, status)
            return status
        for warning in inspection.meta.warnings:
            log.warning("%s: %s", source, warning)
        stats.new += 1
        stats.findings += len(intake.updates)
        stats.cases_created += sum(update.created for update in intake.updates)
        stats.evidence_added += sum(not update.created for update in intake.updates)
        for path, numbers in _by_copy(intake.copies_joined).items():
            stats.copies_joined += 1
            log.info(
                "%s: recorded before without a place or time, a copy of %s: added to %s as evidence",
                path,
                source,
                ", ".join(numbers),
            )
        if status != PhotoStatus.DONE:
            setattr(stats, status, getattr(stats, status) + 1)
            why = UNFILED[status]
            if intake.updates:  # a copy of a case's evidence: it joined that case, whatever it lacks
                joined = ", ".join(dict.fromkeys(update.case.number for update in intake.updates))
                log.info(
                    "%s: %s: %s; a copy of evidence of %s: added to it as evidence",
                    source,
                    status,
                    why,
                    joined,
                )
            else:
                log.warning(
                    "%s: %s: %s; no case filed (%d finding(s) seen)", source, status, why, len(intake.events)
                )
        return status

    def _still_unfiled(
        self, session: Session, stats: ScanStats, source: str, sha256: str, status: PhotoStatus
    ) -> None:
        """Count a photo recorded before as unlocated, undated or outside, given nothing new now, if
        its findings are still in no case (a copy joined its original's case: nothing to give it)."""
        joined = select(Evidence.id).where(Evidence.photo_id == Photo.id).exists()
        if session.scalar(select(Photo.id).where(Photo.sha256 == sha256, ~joined)) is None:
            return
        counter = f"{status}_before"  # plain counters: `restore` undoes a rolled-back batch's
        setattr(stats, counter, getattr(stats, counter) + 1)
        log.info("%s: still %s (recorded so before): %s; no case filed", source, status, UNFILED[status])

    def _unreadable(self, session: Session, stats: ScanStats, source: str, key: str, reason: str) -> str:
        new = take_unreadable(
            session, key=key, path=source, source=PhotoSource.PATROL, reason=reason, now=datetime.now(UTC)
        )
        if new:
            log.warning("%s: unreadable: %s", source, reason)
        else:  # a warning each scan, under a summary that counted none, read as a new problem
            log.info("%s: still unreadable (listed since an earlier scan): %s", source, reason)
        stats.known += not new
        stats.unreadable += new
        stats.unreadable_before += not new
        stats.new += new
        return PhotoStatus.UNREADABLE


def _by_copy(updates: Iterable[CaseUpdate]) -> dict[str, list[str]]:
    """The case numbers each copy joined, by the copy's path."""
    joined: dict[str, list[str]] = {}
    for update in updates:
        joined.setdefault(update.evidence.path, []).append(update.case.number)
    return joined


InspectionSource = Callable[[Iterator[Path | str]], Iterable[Inspection]]


def load_scan_detector(
    model: str,
    backend: str,
    precision: str,
    workers: int,
    settings: Settings,
    remeasure: bool = False,
    flyers: FlyerFinder | None = None,
) -> tuple[Detector, Candidate | None, str]:
    """The detector a scan runs, on one inference thread per worker; the runtime and weights file
    chosen (None for a .pt on ultralytics), and a line saying which and why. `remeasure` times the
    runtimes again instead of the cached choice (one measured on a busy machine can be the slow one).
    It keeps boxes down to what the scan's flyer reader `flyers` proposes from."""
    from vision.detect.backends import load_detector  # imported here: `--help` needs no model runtime
    from vision.detect.pipeline import RUNTIMES, choose_runtime
    from vision.detect.registry import find_model

    models, taxonomy = settings.models_dir, settings.taxonomy()
    floor = detection_floor(flyers.rules if flyers is not None else None)
    if backend == "ultralytics" or (backend == "auto" and "onnx" not in find_model(model, models).weights):
        detector = load_detector(model, "ultralytics", models_dir=models, taxonomy=taxonomy, confidence=floor)
        return detector, None, "ultralytics"
    runtimes = RUNTIMES if backend == "auto" else (backend,)
    candidate, how = choose_runtime(
        model,
        precision,
        runtimes,
        models_dir=models,
        taxonomy=taxonomy,
        cache_dir=settings.cache_dir,
        refresh=remeasure,
    )
    detector = load_detector(
        candidate.weights,
        candidate.runtime,
        models_dir=models,
        taxonomy=taxonomy,
        confidence=floor,
        threads=1,
        concurrency=workers,
    )
    return detector, candidate, how


def load_flyer_finder(settings: Settings, mode: ScanMode | None = None) -> FlyerFinder | None:
    """The flyer reader a scan or the service runs (`<configs_dir>/flyers.yaml`; `mode`, else the
    STREETORDER_FLYERS setting, overrides its `scan`), or None where it would read nothing: `off`
    with no flyer zones (then no OCR model is loaded at all)."""
    rules = load_flyer_rules(settings.configs_dir / "flyers.yaml")
    mode = mode or settings.flyers
    rules = rules.with_scan(mode) if mode is not None else rules
    if rules.scan == "off" and not rules.grids:
        return None
    return FlyerFinder(rules, settings.taxonomy())
