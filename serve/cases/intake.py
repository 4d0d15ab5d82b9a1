"""One intake for a photo: whatever door a patrol photo comes in by, the same photo gives the same
photo row and the same cases.

Doors: `streetorder scan` (its one writer, serve/cases/scan.py, records what the simple, batched
and Ray engines inspected) and `POST /v1/reports`. Each hands over the photo's content key, where
it is kept, its EXIF, what the detector found on it and what the sender said besides (a sidecar
row, form fields); `take_photo` decides the rest, here only:

- position: EXIF GPS; the given position only where the photo has none. The photo's own record was
  made where it was taken; a form field or a sidecar row may say where it was sent or listed from.
- capture time: EXIF DateTimeOriginal; the given time only where the photo has none. Never the
  clock of the server or of the scan ("time comes from the frame or EXIF"): deadlines, the
  duplicate window and the case number all hang on it.
- status: `unlocated` without a position, else `outside` where no unit grid of the layout holds
  the position, else `undated` without a time, else `done`. Such a photo is kept with what the
  model saw on it and files nothing; the scan report lists it, the API refuses an `outside` one
  (422, `OutsideJurisdiction`) and says what the others lack (`unlocated`, `undated`); sent again
  with what it lacked (sidecar, form fields), the same bytes are taken in again and file their
  cases.
- grid: the unit grid holding the position (`CaseRules.grid_at`). Jurisdiction is the grid
  layout: a place no grid holds is no bureau's, so it never becomes a case without a grid
  (`jurisdiction`, which the Open311 door calls too, before it records anything).
- the photo row: one per content (sha256). The same bytes again are `known` and change nothing,
  unless they bring what the row lacked or were unreadable and decode now. A scan's later read of
  a path supersedes its earlier unreadable rows (`supersede_unreadable`).
- findings: the patrol rule of the taxonomy (`patrol_findings`), one finding per event in event
  order, each filed by `record_finding` (serve/cases/findings.py: duplicates, numbering, deadline).

Camera frames and Open311 requests do not come through here: a frame is evidence of a camera
rule's event (its dwell clocks need the frame's capture time: sent with it, else its EXIF time read
by `capture_time` here; and its place is the camera's), and a citizen's request carries no photo,
only an optional link. Both go to `record_finding` directly, with the same duplicate rule,
numbering and checks.

- plausible capture time (`capture_time`, by `CaseRules.times`): within the configured years and
  no later than a few minutes ahead of the caller's `now`, whether EXIF or the sender says it; a
  time the sender gives stands in for an implausible EXIF one. An implausible time is
  `ImplausibleTime` (422 naming the field and why) and nothing is written; a scan keeps such a
  photo `undated` with that reason, so that a sidecar's time files it on the next scan.

- reuse: a photo whose bytes (sha256) or look (perceptual hash within
  `vision.core.phash.NEAR_IDENTICAL_BITS`) are already evidence of a case is a copy of that
  evidence, whatever position and time it claims now: it joins those cases as evidence (marked
  `copy_of`, with what it claimed) while they are open, and never opens a case of its own. In the
  other order, a copy recorded first that could file nothing (unlocated, undated, outside) joins
  the cases its original files when the original comes (`waiting_copies`), by the same rule.


The caller owns the transaction; `take_photo` adds no query of its own besides the photo lookup by
content and the indexed copy lookups (`copies_of`, `waiting_copies`: a few ms however large the
database), so a scan still records a batch of photos per transaction at the same speed. On SQLite,
a door that may race other writers takes `lock_intake` first (a transaction that read first
cannot write later).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import supervision as sv
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from serve.cases.enums import CaseSource, EvidenceRole, PhotoSource, PhotoStatus
from serve.cases.errors import OutsideJurisdiction
from serve.cases.findings import CaseRules, CaseUpdate, Finding, lock_case, record_finding
from serve.cases.grids import Grid
from serve.cases.orm import UNFILED_ROW, Case, Evidence, Photo
from serve.cases.times import CaptureTimes, ImplausibleTime
from serve.cases.workflow import is_open
from vision.core.boxes import Box, boxes_json, boxes_of, parse_boxes
from vision.core.imageio import PhotoMeta, Position
from vision.core.phash import band_neighbours, near_identical
from vision.core.taxonomy import Taxonomy
from vision.detect.flyers import FlyerFinder


@dataclass(frozen=True)
class Given:
    """What the sender says besides the bytes (form fields, a sidecar row): used where EXIF is silent
    or its time implausible."""

    position: Position | None = None
    taken_at: datetime | None = None  # timezone-aware


@dataclass(frozen=True)
class IncomingPhoto:
    """A decoded, analysed photo at a door."""

    sha256: str
    path: str  # where its bytes are kept: the scanned file or URL, or the evidence store
    source: PhotoSource
    meta: PhotoMeta  # what its EXIF says
    size: tuple[int, int]  # upright (width, height) of the photo itself
    detections: sv.Detections  # in the photo's own pixels
    model_version: str
    given: Given = field(default_factory=Given)
    reporter: str = "scan"  # operator of the first flow-log entry of the cases it opens
    reporter_id: int | None = None  # the signed-in person, where one reported it
    phash: str | None = None  # vision.core.phash of the decoded image


@dataclass(frozen=True)
class Placement:
    """Where and when a photo was taken, as far as anyone knows, and what follows from that."""

    position: Position | None
    taken_at: datetime | None
    grid: Grid | None
    status: PhotoStatus


@dataclass(frozen=True)
class Intake:
    """What one photo did: its row, the findings seen on it, and the cases they opened or joined."""

    photo: Photo
    known: bool  # the same bytes came before and brought nothing new: nothing was written
    events: dict[str, tuple[Box, ...]] = field(default_factory=dict)  # what the patrol rule finds
    updates: list[CaseUpdate] = field(default_factory=list)  # none unless `done` or a copy (`copy_of`)
    copy_of: list[Evidence] = field(default_factory=list)  # evidence elsewhere this photo is a copy of
    # earlier copies of this photo, filed in no case for want of a place or time, joined now to its
    # cases (`waiting_copies`): one update each copy and case
    copies_joined: list[CaseUpdate] = field(default_factory=list)


def capture_time(meta: PhotoMeta, given: Given, times: CaptureTimes, now: datetime) -> datetime | None:
    """EXIF capture time, else the given one; None when neither says (never a clock's time).

    A given time stands in for an implausible EXIF one: a camera whose clock was wrong writes 2999
    or 1970 into every photo, and the time its sender or a scan's sidecar gives is the word of
    someone who knows. Raises ImplausibleTime when the one used is out of the configured years or
    ahead of `now`, naming its source.
    """
    if meta.taken_at is not None:
        try:
            return times.check("EXIF DateTimeOriginal", meta.taken_at, now)
        except ImplausibleTime:
            if given.taken_at is None:
                raise
    if given.taken_at is not None:
        return times.check("taken_at", given.taken_at, now)
    return None


def in_jurisdiction(position: Position, rules: CaseRules) -> Grid | None:
    """The unit grid answering for `position` (None only without a grid layout).

    Raises OutsideJurisdiction where the layout has no grid there: what a door answers.
    """
    grid = rules.grid_at(position.lat, position.lon)
    if grid is None and rules.grids is not None:
        raise OutsideJurisdiction(position.lat, position.lon, rules.grids.bounds)
    return grid


def refuse_outside(photo: Photo, rules: CaseRules) -> None:
    """For a door that answers at once: an `outside` photo is refused, naming the layout's extent."""
    if photo.status == PhotoStatus.OUTSIDE and photo.lat is not None and photo.lon is not None:
        in_jurisdiction(Position(photo.lat, photo.lon), rules)


def place(meta: PhotoMeta, given: Given, rules: CaseRules, now: datetime) -> Placement:
    """Position, capture time, grid and status of a photo, by the rule of this module's docstring."""
    position = meta.position or given.position
    taken_at = capture_time(meta, given, rules.times, now)
    grid = rules.grid_at(position.lat, position.lon) if position is not None else None
    if position is None:
        status = PhotoStatus.UNLOCATED
    elif grid is None and rules.grids is not None:
        status = PhotoStatus.OUTSIDE
    elif taken_at is None:
        status = PhotoStatus.UNDATED
    else:
        status = PhotoStatus.DONE
    return Placement(position, taken_at, grid, status)


# EXIF warnings (vision.core.imageio.read_exif_meta) that explain a missing position or time
_EXPLAINS = {
    PhotoStatus.UNLOCATED: ("GPS ignored", "EXIF GPS block", "EXIF unreadable", "EXIF block"),
    PhotoStatus.UNDATED: ("EXIF time", "EXIF unreadable", "EXIF block"),
}
_SUPPLY = {PhotoStatus.UNLOCATED: "lat/lon", PhotoStatus.UNDATED: "taken_at"}


def explaining(status: PhotoStatus, meta: PhotoMeta) -> list[str]:
    """The EXIF warnings of `meta` that explain its lacking what `status` says it lacks."""
    return [w for w in meta.warnings if w.startswith(_EXPLAINS.get(status, ()))]


def why_missing(status: PhotoStatus, meta: PhotoMeta) -> str | None:
    """The photo's own reason for lacking a position or time, where its EXIF had one it could not
    use (a garbled date, GPS without a fix, a damaged block): without it the report said "EXIF
    DateTimeOriginal missing" of a photo that has one, and nobody knew what to correct."""
    said = explaining(status, meta)
    if not said:
        return None
    # one row per photo whatever the door, so the remedy names both: a scan's sidecar, an upload's form
    return f"{'; '.join(said)}; give {_SUPPLY[status]} in a scan's sidecar CSV or the upload's form fields"


def completes(status: PhotoStatus, given: Given | None) -> bool:
    """Whether `given` now brings an earlier unlocated or undated photo what it lacked."""
    if given is None:
        return False
    return (status in (PhotoStatus.UNLOCATED, PhotoStatus.OUTSIDE) and given.position is not None) or (
        status == PhotoStatus.UNDATED and given.taken_at is not None
    )


def retaken(status: PhotoStatus, given: Given | None) -> bool:
    """Whether bytes recorded before with `status` are taken in again: they failed to decode (a
    bomb under a lower --max-pixels, a type not read then) and have now been read, or `given` now
    brings what they lacked. Without the first, bytes once unreadable stayed so forever."""
    return status == PhotoStatus.UNREADABLE or completes(status, given)


def flyer_extra(readings: list[dict[str, Any]]) -> dict[str, Any]:
    """A flyer finding's Evidence.extra: each flyer's reading, and the text and numbers of all of
    them in the keys the console shows (`ocr_text`, `phones`)."""
    phones = [phone for reading in readings for phone in reading.get("phones", [])]
    return {
        "flyers": readings,
        "ocr_text": "\n\n".join(r["text"] for r in readings if r.get("text")),
        "phones": list(dict.fromkeys(phones)),
    }


def reads_in_full(finder: FlyerFinder, rules: CaseRules, position: Position | None) -> bool:
    """Whether the flyer reader searches a photo whole: in `all` mode, or taken in a flyer zone
    (a unit grid configs/flyers.yaml lists). The same gate for every door."""
    grid = rules.grid_at(position.lat, position.lon) if position is not None else None
    return finder.rules.reads_in_full(grid.code if grid is not None else None)


def patrol_findings(detections: sv.Detections, taxonomy: Taxonomy) -> dict[str, tuple[Box, ...]]:
    """The boxes of each event a patrol photo shows, by the taxonomy's rule, in event order.

    A class files its event from a photo alone only where it is marked `patrol: true` (a parked car
    is no violation without a no-parking zone) and only at or above its own `min_confidence`.
    """
    return patrol_events(boxes_of(detections, taxonomy.names), taxonomy)


def patrol_events(boxes: Sequence[Box], taxonomy: Taxonomy) -> dict[str, tuple[Box, ...]]:
    """`patrol_findings` of boxes already read (a photo row's stored detections): the report counts
    an unlocated photo's findings by the rule that files them once it is located."""
    classes = {c.name: c for c in taxonomy.classes}
    found: dict[str, list[Box]] = {}
    for box in boxes:
        cls = classes.get(box.class_name)
        if cls is None:  # a class the taxonomy no longer has (stored by an older model)
            continue
        if cls.event is not None and cls.patrol and box.confidence >= cls.min_confidence:
            found.setdefault(cls.event, []).append(box)
    return {event: tuple(found[event]) for event in sorted(found)}


def readings_by_event(detections: sv.Detections, taxonomy: Taxonomy) -> dict[str, list[dict[str, Any]]]:
    """What the flyer reader read on each finding (data["flyer"], vision/detect/flyers.py), by event:
    the text, phone numbers, QR payloads and boxes a flyer case's evidence keeps."""
    readings = detections.data.get("flyer")
    if readings is None or detections.class_id is None or detections.confidence is None:
        return {}
    found: dict[str, list[dict[str, Any]]] = {}
    for reading, class_id, confidence in zip(
        readings, detections.class_id, detections.confidence, strict=True
    ):
        cls = taxonomy.classes[int(class_id)]
        if reading is not None and cls.event is not None and cls.patrol and confidence >= cls.min_confidence:
            found.setdefault(cls.event, []).append(reading)
    return found


def take_photo(session: Session, photo: IncomingPhoto, rules: CaseRules, *, now: datetime) -> Intake:
    """Record `photo` and file its findings, in the caller's transaction.

    `now` is the bookkeeping time of the row (`processed_at`) and the clock a capture time may not
    run ahead of, never a capture time itself.
    """
    row = session.scalar(select(Photo).where(Photo.sha256 == photo.sha256))
    if row is not None and not retaken(row.status, photo.given):
        return Intake(row, known=True)
    placement = place(photo.meta, photo.given, rules, now)
    if row is not None and placement.status == row.status:
        # what was given changed nothing: a sidecar position for a photo outside the grids by its
        # own EXIF GPS (EXIF wins) was taken in again, counted new and warned of, on every scan
        return Intake(row, known=True)
    events = patrol_findings(photo.detections, rules.taxonomy)
    readings = readings_by_event(photo.detections, rules.taxonomy)
    if row is None:
        row = Photo(sha256=photo.sha256, source=photo.source)
        session.add(row)
    position = placement.position
    row.path = photo.path
    row.status = placement.status
    row.error = why_missing(placement.status, photo.meta)
    row.width, row.height = photo.size
    row.taken_at = placement.taken_at
    row.lat, row.lon = (position.lat, position.lon) if position is not None else (None, None)
    row.grid_code = placement.grid.code if placement.grid is not None else None
    row.model_version = photo.model_version
    row.detections = boxes_json(boxes_of(photo.detections, rules.taxonomy.names))
    row.processed_at = now
    row.phash = photo.phash
    session.flush()
    originals = copies_of(session, photo.sha256, photo.phash, exclude_photo=row.id)
    if originals:
        updates = join_as_copy(session, originals, row, placement, events)
        return Intake(row, known=False, events=events, updates=updates, copy_of=originals)
    if placement.status != PhotoStatus.DONE or position is None or placement.taken_at is None:
        return Intake(row, known=False, events=events)
    updates = [
        record_finding(
            session,
            Finding(
                event=event,
                lat=position.lat,
                lon=position.lon,
                seen_at=placement.taken_at,
                photo_path=photo.path,
                photo_sha256=photo.sha256,
                photo_phash=photo.phash,
                boxes=boxes,
                model_version=photo.model_version,
                source=CaseSource.PATROL_PHOTO,
                reporter=photo.reporter,
                reporter_id=photo.reporter_id,
                photo_id=row.id,
                extra=flyer_extra(readings[event]) if event in readings else None,
            ),
            rules,
        )
        for event, boxes in events.items()
    ]
    joined: list[CaseUpdate] = []
    if updates and photo.phash is not None:  # this photo's evidence is the original of earlier copies
        filed = [update.evidence for update in updates]
        for copy in waiting_copies(session, photo.phash, exclude_photo=row.id):
            seen = parse_boxes(copy.detections, f"photo {copy.id}").boxes
            placed = recorded_placement(copy, rules)
            joined += join_as_copy(session, filed, copy, placed, patrol_events(seen, rules.taxonomy))
    return Intake(row, known=False, events=events, updates=updates, copies_joined=joined)


def copies_of(
    session: Session, sha256: str, phash: str | None, *, exclude_photo: int | None = None
) -> list[Evidence]:
    """Evidence of any case that is this photo: the same bytes, or a near-identical image.

    Indexed lookups (sha256, and the phash's bands: vision.core.phash.band_neighbours) find the
    candidates without reading every stored hash, so a scan's cost a photo does not grow with the
    evidence it has filed; the candidates' whole hashes are then compared.
    """
    found = Evidence.sha256 == sha256
    if phash is not None:
        bands = (Evidence.phash_band0, Evidence.phash_band1, Evidence.phash_band2)
        near = band_neighbours(phash)
        found = or_(found, *(band.in_(values) for band, values in zip(bands, near, strict=True)))
    # candidates by their hashes first, whole rows for the copies only: at a million evidence rows
    # some 300 random candidates share a band, and loading them whole costs 10 ms a photo, not 4
    query = select(Evidence.id, Evidence.sha256, Evidence.phash).where(found)
    if exclude_photo is not None:
        query = query.where(or_(Evidence.photo_id.is_(None), Evidence.photo_id != exclude_photo))
    ids = [
        row_id
        for row_id, row_sha256, row_phash in session.execute(query)
        if row_sha256 == sha256
        or (phash is not None and row_phash is not None and near_identical(phash, row_phash))
    ]
    if not ids:
        return []
    return list(session.scalars(select(Evidence).where(Evidence.id.in_(ids)).order_by(Evidence.id)))


def waiting_copies(session: Session, phash: str, *, exclude_photo: int) -> list[Photo]:
    """Photos recorded unlocated, undated or outside, in no case, that look like this one.

    The other order of `copies_of`: a copy re-saved without its EXIF and scanned before its original
    could file nothing, and when the original filed its cases the copy stayed unlocated for ever,
    where the copy scanned after joins them. Indexed (the bands of the unfiled photos alone,
    migration 0022), as `copies_of` is: one lookup for each photo that files something.
    """
    bands = (Photo.phash_band0, Photo.phash_band1, Photo.phash_band2)
    near = band_neighbours(phash)
    in_a_case = select(Evidence.id).where(Evidence.photo_id == Photo.id).exists()
    candidates = session.scalars(
        select(Photo)
        .where(
            # the partial indexes' own condition in each arm: SQLite uses them only so
            or_(*(and_(UNFILED_ROW, band.in_(values)) for band, values in zip(bands, near, strict=True))),
            Photo.id != exclude_photo,
            ~in_a_case,
        )
        .order_by(Photo.id)
    )
    return [row for row in candidates if row.phash is not None and near_identical(phash, row.phash)]


def recorded_placement(row: Photo, rules: CaseRules) -> Placement:
    """The placement a recorded photo was given: what a copy of it claimed, in `join_as_copy`."""
    position = Position(row.lat, row.lon) if row.lat is not None and row.lon is not None else None
    grid = rules.grid_at(position.lat, position.lon) if position is not None else None
    return Placement(position, row.taken_at, grid, row.status)


def join_as_copy(
    session: Session,
    originals: list[Evidence],
    row: Photo,
    placement: Placement,
    events: dict[str, tuple[Box, ...]],
) -> list[CaseUpdate]:
    """The copy becomes evidence of each open case its originals belong to, with what it claimed and
    the boxes of that case's event (a garbage case is shown no overflow boxes); the cases' place and
    seen period stay as they were (the copy's claims are not evidence of them). A finished case's
    evidence is its record (`check_evidence_open`): the copy joins it not, and opens no case either."""
    updates = []
    for case_id in dict.fromkeys(original.case_id for original in originals):
        first = next(o for o in originals if o.case_id == case_id)
        lock_case(session, first.case)
        if not is_open(first.case.state):
            continue
        claimed = placement.position
        evidence = Evidence(
            case=first.case,
            photo_id=row.id,
            role=EvidenceRole.FINDING,
            path=row.path,
            sha256=row.sha256,
            phash=row.phash,
            captured_at=placement.taken_at or first.captured_at,
            boxes=boxes_json(events.get(first.case.event, ())),  # that case's problem, as a finding's
            model_version=row.model_version,
            extra={
                "copy_of": {"evidence": first.id, "case": first.case.number},
                "claimed": {
                    "lat": claimed.lat if claimed else None,
                    "lon": claimed.lon if claimed else None,
                    "taken_at": placement.taken_at.isoformat() if placement.taken_at else None,
                },
            },
        )
        session.add(evidence)
        flag_modified(first.case, "last_seen_at")  # new evidence is a new version of the case (ETag)
        updates.append(CaseUpdate(case=first.case, created=False, evidence=evidence))
    session.flush()
    return updates


def take_unreadable(
    session: Session, *, key: str, path: str, source: PhotoSource, reason: str, now: datetime
) -> bool:
    """Record a file that is no usable photo, with the reason; False if it was recorded before."""
    if session.scalar(select(Photo.id).where(Photo.sha256 == key)) is not None:
        return False
    session.add(
        Photo(
            sha256=key,
            path=path,
            source=source,
            status=PhotoStatus.UNREADABLE,
            error=reason,
            processed_at=now,
        )
    )
    session.flush()  # the same bad bytes later in this batch find this row
    return True


def supersede_unreadable(session: Session, *, path: str, key: str) -> list[Photo]:
    """Drop the unreadable rows of `path` under another key than `key`, what its latest read gave,
    and return them: the file was replaced (a good copy, other bad bytes) or the path reads now,
    and the report lists only current problems. An indexed lookup (ix_photos_unreadable_path, only
    unreadable rows), run for every photo a scan records."""
    stale = list(
        session.scalars(
            select(Photo).where(
                Photo.path == path, Photo.status == PhotoStatus.UNREADABLE, Photo.sha256 != key
            )
        )
    )
    for row in stale:
        session.delete(row)
    return stale


def photo_cases(session: Session, photo: Photo) -> Sequence[Case]:
    """The cases a recorded photo is evidence of, oldest first (what a repeated photo answers)."""
    return (
        session.scalars(
            select(Case)
            .join(Evidence, Evidence.case_id == Case.id)
            .where(Evidence.photo_id == photo.id)
            .order_by(Case.id)
        )
        .unique()
        .all()
    )


def copied_cases(session: Session, photo: Photo) -> list[str]:
    """The numbers of the cases a recorded photo joined as a copy (`join_as_copy`), oldest first:
    what its answer's `copy_of` said when it came, said again when the same bytes come back."""
    extras = session.scalars(
        select(Evidence.extra).where(Evidence.photo_id == photo.id).order_by(Evidence.case_id)
    )
    return list(dict.fromkeys(extra["copy_of"]["case"] for extra in extras if extra and "copy_of" in extra))
