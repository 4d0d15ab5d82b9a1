"""Live cameras in the service: each camera's rule engine and health, and its events turned into cases.

One `CameraHub` per process (the service, or a `streetorder watch` process) holds, per configured
camera, the engine of vision/live/rules.py and the health counters. A frame goes:

    image + capture time -> detector -> tracks, dwell, occupancy -> incident events -> cases

Events and the case they touch (all through serve.cases.findings' intake, so duplicates merge the same way
as patrol photos):
- started: the frame becomes a finding (`source: video`, AI review pending) -> a new case, or
  evidence of the open case it repeats; every occupancy finding frame (rework ones too) also
  stores its crop for annotators;
- evidence: the frame is appended, at most every `evidence_every_s`;
- cleared: an after-photo is attached to the incident's case with a proposal (`check_pass` when the
  case is handled, else `resolved`) for the person at the check desk (核查);
- rework: the frame is attached with the proposal `check_fail` (back at the place, or never gone).

Frames of one camera are applied one at a time, in arrival order, under the camera's lock. A frame
more than the camera's `dwell.jump_s` ahead of the last applied one is held until the next frame
settles it (vision/live/timeline.py): applied first when that one follows it (a real gap), dropped
when that one goes on from the last applied frame (the camera's clock jumped), so one frame with a
glitched clock cannot make every true frame after it late. The held frame (`LiveCamera.held`) is in
memory only: the saved state is that of the last applied frame, and a restart or a restore forgets
the held frame (a reload of the camera's settings carries it over).

Each camera's engine state (clocks, incidents with their cases, occupancy models) is saved in the
database (`camera_states`) after every frame that made an event and at least every
`SAVE_EVERY_S` of capture time, and restored when a hub starts (`restore`): a restart in the
middle of a violation neither hides it nor leaves a ghost of it. The service and a `watch` may both
hold a camera's state: the newest capture time wins. A frame first takes a newer state another
process saved (`_take_newer`), and a save never replaces a newer stored state (`_store`). A view
accepted as the camera's reference (`accept_view`, the service's POST .../view) is counted in the
stored row: a process holding the camera takes its own newest frame as the reference when it sees the
count grow (a `watch` judged nothing on, and saved its old reference over the accepted one).

A frame's events and the camera's state are written in one transaction, tried again on a transient
conflict for the hub's `busy_budget_s`. When the database stays busy past it, the events are not lost
(the engine has moved on: its incident is open, so no later frame starts it again): they wait with
the camera (`LiveCamera.waiting`, saved with its state, so a restart keeps them), each with its frame's
capture time and photo, and are written first, in order, with the next frame (a late one too), whose
answer lists what they did; the frame itself is answered `EventsKept` (503). At most `max_waiting`
events wait per camera: beyond it the oldest `evidence` ("still there") go first, then the newest
changes, so a case's start is never dropped for later news.
A process that stops while the database still does not take them keeps the camera's state, with
them, in a file of the evidence store (`save`, `spill_path`); the next start of the camera writes
it before its first frame when it is newer than the stored state, and only then removes the file
(`take_spilled`).

`reload` applies a new cameras file without a restart: an unchanged camera goes on as it is, a
changed one gets a new engine that takes over the old one's state (what belongs to zones of the
same id and kind), a new one starts from its saved state if it has one, a removed one is saved.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import supervision as sv
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, StateSetMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from serve.cases.db import BUSY_TRIES, database_said, is_busy, is_read_only, retry_busy, transaction
from serve.cases.enums import Action, CaseSource, EvidenceRole, State
from serve.cases.errors import EventsKept
from serve.cases.evidence import store_image
from serve.cases.findings import CaseRules, Finding, lock_intake, record_finding
from serve.cases.orm import CameraState, Case, Evidence, FlowEntry
from serve.cases.settings import FRAME_BUSY_BUDGET_S, MAX_WAITING_EVENTS
from serve.cases.times import local_iso
from serve.cases.workflow import is_open
from vision.core.boxes import Box
from vision.core.draw import crop_box
from vision.core.files import write_atomically
from vision.core.imageio import encode_jpeg, read_bgr
from vision.core.taxonomy import Taxonomy
from vision.live.cameras import Camera, CameraRegistry, UnknownCameraError
from vision.live.incidents import Incident, RuleEvent, incident_from
from vision.live.rules import CameraRules, FrameOutcome, capture_seconds
from vision.live.state import decode, encode
from vision.live.stream import STREAM_STATES
from vision.live.timeline import judge

log = logging.getLogger("streetorder.cameras")

OCCUPANCY_MODEL = "occupancy-v1"  # model_version of class-free findings: they wait for a person too
FPS_SMOOTHING = 0.2  # weight of the newest frame interval in the fps estimate
HANDLED_STATES = (State.HANDLED, State.CHECK_PASSED)
SAVE_EVERY_S = 60.0  # capture seconds between saves of a camera's state (and after every event)
WAITING_KEY = "waiting"  # the saved state's member with the events the database did not take yet
VIEW_ACCEPTS_KEY = (
    "view_accepts"  # the saved state's member: the acceptances of a view its reference reflects
)
SPILL_FOLDER = "camera-states"  # under the evidence store: states the database did not take at stop
OUTAGE_LOG_S = 60.0  # capture seconds between a camera's lines while the database takes none of its writes


@dataclass
class CameraHealth:
    """What GET /v1/cameras and /metrics say about one camera."""

    frames: int = 0
    late_frames: int = 0
    held_frames: int = 0  # more than dwell.jump_s ahead of the last applied frame: held for the next one
    clock_jumps_dropped: int = 0  # held frames dropped: the next frame went on from the last applied one
    events: int = 0
    waiting_dropped: int = 0  # waiting events dropped beyond the hub's max_waiting
    reconnects: int = 0  # set by a stream reader (watch), 0 for cameras that push frames
    dropped_frames: int = 0  # frames a stream reader overwrote before analysis could take them
    skipped_frames: int = 0  # frames taken and left on purpose: sooner than 1 / analyse_fps after the last
    last_capture: datetime | None = None
    last_received: datetime | None = None
    fps: float = 0.0  # analysed frames per second of capture time, smoothed
    size: tuple[int, int] | None = None
    stream_state: str | None = None  # one of vision.live.stream.STREAM_STATES; None: frames are pushed

    def count(self, received_at: datetime, size: tuple[int, int]) -> None:
        """A frame received, whatever becomes of it."""
        self.frames += 1
        self.last_received = received_at
        self.size = size

    def applied(self, captured_at: datetime) -> None:
        """A frame applied to the camera's rules (its own, or a held one the next frame confirmed)."""
        if self.last_capture is not None:
            interval = (captured_at - self.last_capture).total_seconds()
            if interval > 0:
                rate = 1.0 / interval
                self.fps = rate if self.fps == 0 else (1 - FPS_SMOOTHING) * self.fps + FPS_SMOOTHING * rate
        self.last_capture = captured_at


def stream_state(live: LiveCamera) -> str | None:
    """The stream's state as told: `no_picture` where it is connected and sends frames without one,
    `view_moved` where its frames show another view than its reference (vision/live/view.py)."""
    state = live.health.stream_state
    if state == "connected" and live.rules.no_picture is not None:
        return "no_picture"
    return "view_moved" if state == "connected" and live.rules.view_moved_since is not None else state


def view_moved_since(live: LiveCamera) -> datetime | None:
    """Capture time since which the camera's frames show another view than its reference, once they
    have for its `view.moved_after_s` (vision/live/rules.py)."""
    since = live.rules.view_moved_since
    return None if since is None else datetime.fromtimestamp(since, UTC)


def view_reference_at(live: LiveCamera) -> datetime | None:
    """Capture time of the frame the camera's reference view was taken from (None: not settled yet)."""
    at = live.rules.view.reference_at
    return None if at is None else datetime.fromtimestamp(at, UTC)


def no_picture_since(live: LiveCamera) -> datetime | None:
    """Capture time since which the camera's frames show no picture (vision/live/picture.py)."""
    since = live.rules.no_picture_since if live.rules.no_picture is not None else None
    return None if since is None else datetime.fromtimestamp(since, UTC)


def picture_unchanged_since(live: LiveCamera) -> datetime | None:
    """When the picture froze, once the frames have shown the very same pixels for the camera's
    `picture.frozen_s` (vision/live/picture.py); else None."""
    since = live.rules.picture_since
    if since is None or live.rules.unchanged_s < live.camera.picture.frozen_s:
        return None
    return datetime.fromtimestamp(since, UTC)


@dataclass(frozen=True)
class CaseAction:
    """What one event did to a case."""

    kind: str  # started | evidence | cleared | rework
    incident_id: int
    zone_id: str
    event: str
    source: str  # detector | occupancy
    case_id: int | None
    case_number: str | None
    case_state: str | None
    created: bool
    evidence_id: int | None
    proposal: str | None = None  # check_pass | resolved | check_fail
    reason: str = ""
    captured_at: datetime | None = None  # of the frame whose event it is (an earlier one's, if it waited)


@dataclass(frozen=True)
class ReloadSummary:
    """Which cameras a reload of the cameras file added, changed, removed or left as they were."""

    source: Path
    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: list[str]


@dataclass
class ConfigStatus:
    """The cameras file in force, and the last attempt to load another one that failed."""

    source: Path
    loaded_at: datetime
    error: str | None = None  # the message of the last failed reload (the old file stays in force)
    error_at: datetime | None = None


@dataclass
class Timings:
    decode_s: float = 0.0
    inference_s: float = 0.0
    rules_s: float = 0.0  # tracking, zones, dwell, occupancy
    cases_s: float = 0.0  # database and evidence files


@dataclass(frozen=True)
class Frame:
    """One analysed frame; `LiveCamera.held` keeps one back until the next shows whether the clock jumped."""

    image: np.ndarray
    captured_at: datetime
    detections: sv.Detections


@dataclass(frozen=True)
class Settled:
    """What a frame made of the frame held before it: applied first, or dropped as a clock glitch."""

    captured_at: datetime
    applied: bool
    reason: str


@dataclass
class Waiting:
    """A frame's events the database did not take within the hub's budget, kept with its camera and
    written first with a later frame: its capture time, its photo (stored before the transaction),
    and the events, each with a copy of its incident as it was on that frame (its box, its dwell)."""

    captured_at: datetime
    path: str
    sha256: str
    events: list[RuleEvent]
    image: np.ndarray | None = None  # the frame's pixels while it is the frame being applied; else read

    def export(self) -> dict[str, Any]:
        """Plain values for the camera's saved state (vision/live/state.py)."""
        return {
            "captured_at": self.captured_at.isoformat(),
            "path": self.path,
            "sha256": self.sha256,
            "events": [
                {"kind": e.kind, "at": e.at, "reason": e.reason, "incident": asdict(e.incident)}
                for e in self.events
            ],
        }

    @classmethod
    def restored(cls, saved: dict[str, Any]) -> Waiting:
        events = [
            RuleEvent(e["kind"], incident_from(e["incident"]), float(e["at"]), e["reason"])
            for e in saved["events"]
        ]
        return cls(datetime.fromisoformat(saved["captured_at"]), saved["path"], saved["sha256"], events)


def spill_path(evidence_dir: Path, camera_id: str) -> Path:
    """Where a camera's state waits when the database did not take it at stop: in the evidence
    store, beside the photos its waiting events refer to (a camera id is a plain file name)."""
    return evidence_dir / SPILL_FOLDER / f"{camera_id}.state"


def waiting_events(live: LiveCamera) -> int:
    """Events of the camera waiting for the database (`LiveCamera.waiting`)."""
    return sum(len(waiting.events) for waiting in live.waiting)


def waiting_since(live: LiveCamera) -> datetime | None:
    """Capture time of the oldest frame whose events wait; None when none do. The list is read
    once: a frame may replace it meanwhile (health is read without the camera's lock)."""
    waiting = live.waiting
    return waiting[0].captured_at if waiting else None


@dataclass
class FrameResult:
    camera_id: str
    captured_at: datetime
    size: tuple[int, int]
    outcome: FrameOutcome
    actions: list[CaseAction] = field(default_factory=list)  # the held frame's first, when it was applied
    timings: Timings = field(default_factory=Timings)
    held: bool = False
    hold_reason: str | None = None
    settled: Settled | None = None


@dataclass
class Outage:
    """A camera's frames whose writes the database did not take, since the first (capture times).
    Logged once as it starts, then at most once per OUTAGE_LOG_S of capture time with a count, and
    once as it ends: a line per frame flooded the log for as long as the database was read-only."""

    since: float
    logged_at: float
    frames: int = 1  # frames not written, all told
    unsaid: int = 0  # of them since the last line
    dropped: int = 0  # waiting events dropped over the limit meanwhile


class LiveCamera:
    """One camera's engine, health and lock."""

    def __init__(self, camera: Camera, taxonomy: Taxonomy) -> None:
        self.camera = camera
        self.rules = CameraRules(camera, taxonomy)
        self.health = CameraHealth()
        self.lock = threading.Lock()
        self.last_frame: np.ndarray | None = None  # for drawing zones over (web console)
        self.saved_at: float | None = None  # capture time of the state saved last
        self.held: Frame | None = None  # waiting for the next frame (vision/live/timeline.py)
        self.waiting: list[Waiting] = []  # events the database did not take yet, oldest first
        self.view_accepts = 0  # views accepted (camera_states.view_accepts) that its reference reflects
        self.spill: Path | None = None  # its spilled state, taken back: removed once the database takes it
        self.model_version: str | None = None  # of its last frame: its waiting events' findings, when spilled
        self.outage: Outage | None = None  # the database taking none of its writes since a frame

    def clock(self, moment: datetime) -> str:
        """A time as the camera's log lines tell it: on its clock, to the second, as the rules' lines
        and the API tell times (a state saved at 10:31:40+08:00 was logged at 02:31:40.5+00:00)."""
        return local_iso(moment, self.camera.tz)


class CameraHub:
    """The cameras of one process and what their frames do to cases."""

    def __init__(
        self,
        registry: CameraRegistry,
        taxonomy: Taxonomy,
        evidence_dir: Path,
        *,
        busy_budget_s: float = FRAME_BUSY_BUDGET_S,
        max_waiting: int = MAX_WAITING_EVENTS,
    ) -> None:
        self.registry = registry
        self.taxonomy = taxonomy
        self.evidence_dir = evidence_dir
        self.busy_budget_s = busy_budget_s  # settings.camera_busy_budget_s
        self.max_waiting = max_waiting  # settings.camera_waiting_events
        # replaced whole, never changed in place: readers iterate it while a reload runs
        self.cameras = {camera.id: LiveCamera(camera, taxonomy) for camera in registry}
        self.config = ConfigStatus(registry.source, datetime.now(UTC))
        self._reload_lock = threading.Lock()

    def get(self, camera_id: str) -> LiveCamera:
        try:
            return self.cameras[camera_id]
        except KeyError:
            raise UnknownCameraError(camera_id, list(self.cameras)) from None

    def __iter__(self) -> Iterator[LiveCamera]:
        return iter(self.cameras.values())

    # -------------------------------------------------------------------------------- the frame

    def process(
        self,
        camera_id: str,
        image: np.ndarray,
        captured_at: datetime,
        detections: sv.Detections,
        *,
        sessions: sessionmaker[Session],
        case_rules: CaseRules,
        model_version: str,
        received_at: datetime | None = None,
        timings: Timings | None = None,
    ) -> FrameResult:
        """Apply one analysed frame of `camera_id`: rules, then its events as case changes; or hold it,
        or settle the frame held before it first (see the module's docstring)."""
        timings = timings or Timings()
        size = (int(image.shape[1]), int(image.shape[0]))
        at = capture_seconds(captured_at)  # a time without a timezone is refused before anything counts
        live = self._locked(camera_id)
        live.model_version = model_version
        try:
            with sessions() as session:
                self._take_newer(live, session)
                self._sync_handled(live, session)
            live.health.count(received_at or datetime.now(UTC), size)
            held = live.held
            held_at = None if held is None else capture_seconds(held.captured_at)
            verdict = judge(at, live.rules.last_at, held_at, live.camera.dwell.jump_s)
            late = verdict.frame == "late"
            outcome = FrameOutcome.unapplied(at, detections, late=late)
            result = FrameResult(camera_id, captured_at, size, outcome, timings=timings)
            if held is not None and verdict.held is not None:
                live.held = None
                result.settled = Settled(held.captured_at, verdict.held == "apply", verdict.settled)
                if verdict.held == "apply":
                    _, result.actions = self._frame(live, held, sessions, case_rules, model_version, timings)
                else:
                    live.health.clock_jumps_dropped += 1
                    log.warning(
                        "camera %s: the frame held at %s is dropped (%s)",
                        camera_id,
                        live.clock(held.captured_at),
                        verdict.settled,
                    )
            if late:
                live.health.late_frames += 1
            elif verdict.frame == "hold":
                live.health.held_frames += 1
                live.held = Frame(image, captured_at, detections)
                result.held, result.hold_reason = True, verdict.reason
                log.info(
                    "camera %s: frame at %s held: %s", camera_id, live.clock(captured_at), verdict.reason
                )
            else:
                frame = Frame(image, captured_at, detections)
                result.outcome, actions = self._frame(
                    live, frame, sessions, case_rules, model_version, timings
                )
                result.actions += actions
            if live.waiting:  # a late or held frame: the events waiting are written with it
                result.actions += self._apply(live, None, [], sessions, case_rules, model_version)
            return result
        finally:
            live.lock.release()

    def _frame(
        self,
        live: LiveCamera,
        frame: Frame,
        sessions: sessionmaker[Session],
        case_rules: CaseRules,
        model_version: str,
        timings: Timings,
    ) -> tuple[FrameOutcome, list[CaseAction]]:
        """One frame through the camera's rules, its events into cases, the state saved when due."""
        image, captured_at = frame.image, frame.captured_at
        size = (int(image.shape[1]), int(image.shape[0]))
        started = time.perf_counter()
        outcome = live.rules.process(captured_at, frame.detections, size, image)
        timings.rules_s += time.perf_counter() - started
        if outcome.late:
            live.health.late_frames += 1
            return outcome, []
        live.health.applied(captured_at)
        live.last_frame = image
        started = time.perf_counter()
        actions = []
        if outcome.events or live.waiting:  # saved with its events (and those waiting), in their transaction
            live.health.events += len(outcome.events)
            actions = self._apply(live, frame, outcome.events, sessions, case_rules, model_version)
        elif live.saved_at is None or outcome.at - live.saved_at >= SAVE_EVERY_S:
            self._save_due(live, sessions)
        timings.cases_s += time.perf_counter() - started
        return outcome, actions

    def _save_due(self, live: LiveCamera, sessions: sessionmaker[Session]) -> None:
        """The state saved as due on a frame without events. The frame is applied whatever the
        database says: one that does not take the state (busy past the budget, gone, read-only) fails
        no frame, the state is kept in memory (spilled at stop) and saved with a later frame. It
        failed the frame: a 503 saying nothing was changed, though the camera's engine had moved on
        (sent again, the frame was late), for every frame while the database could not be written."""
        try:
            self._save(live, sessions)
        except DBAPIError as error:
            if not not_taken_now(error):
                raise
            self._not_taken(
                live,
                error,
                "camera %s: state to %s not saved (%s): it is kept, saved with a later frame",
                live.camera.id,
                live.clock(datetime.fromtimestamp(live.rules.last_at or 0.0, UTC)),
                database_said(error),
            )

    def accept_view(self, camera_id: str, sessions: sessionmaker[Session]) -> float | None:
        """An operator re-aimed the camera on purpose: the view it shows now becomes its reference
        (vision/live/view.py), saved at once. Returns the capture time of the frame taken (None:
        taken once the frames settle)."""
        live = self._locked(camera_id)
        try:
            with sessions() as session:
                self._take_newer(live, session)
            taken = live.rules.accept_view()

            def once() -> None:
                with transaction(sessions) as session:
                    counted = session.execute(
                        update(CameraState)
                        .where(CameraState.camera_id == live.camera.id)
                        .values(view_accepts=CameraState.view_accepts + 1)
                    )
                    if cast(CursorResult[Any], counted).rowcount:
                        live.view_accepts = session.scalars(
                            select(CameraState.view_accepts).where(CameraState.camera_id == live.camera.id)
                        ).one()
                    if live.rules.last_at is not None:  # refused where another process saved a newer one
                        self._store(session, live, live.waiting)

            # counted even where the state is not written: the process running ahead takes it up
            retry_busy(once, partial(_written_again, live, "its accepted view"), self.busy_budget_s)
            return taken
        finally:
            live.lock.release()

    def stream_lost(self, camera_id: str) -> None:
        """The camera's stream was lost and is read again (`vision/live/rules.py: stream_lost`): its
        next frame goes on from the last as after a picture lost, the gap not counted as absence."""
        live = self._locked(camera_id)
        try:
            live.rules.stream_lost()
        finally:
            live.lock.release()

    def _locked(self, camera_id: str) -> LiveCamera:
        """The camera's engine with its lock held; a reload may replace it while a frame waits."""
        while True:
            live = self.get(camera_id)
            live.lock.acquire()
            if self.cameras.get(camera_id) is live:
                return live
            live.lock.release()

    # -------------------------------------------------------------------------------- state

    def restore(self, sessions: sessionmaker[Session], camera_ids: list[str] | None = None) -> None:
        """Take back the saved engine state of each camera (or of `camera_ids`); one that cannot be
        used (another layout, a damaged blob) is logged and the camera starts afresh, learning."""
        wanted = list(self.cameras) if camera_ids is None else camera_ids
        with sessions() as session:
            rows = session.scalars(select(CameraState).where(CameraState.camera_id.in_(wanted))).all()
        for row in rows:
            live = self.cameras[row.camera_id]
            with live.lock:
                live.waiting = self._take(live, row)

    def _take(self, live: LiveCamera, row: CameraState) -> list[Waiting]:
        """Go on from a saved state (call with the camera's lock held); returns the events that
        were waiting for the database in it (`restore` takes them; another process's stay its own)."""
        live.held = None  # held against the timeline being replaced
        try:
            waiting, live.view_accepts = self._read_state(row, live.rules)
        except (ValueError, KeyError, TypeError) as err:
            log.warning("camera %s: saved state not used (%s); it starts afresh", row.camera_id, err)
            live.rules, waiting = CameraRules(live.camera, self.taxonomy), []
            live.view_accepts = row.view_accepts  # a state saved before they were counted: all of them
        live.saved_at = row.captured_at.timestamp()  # this row is known: not taken again
        return waiting

    def _read_state(self, row: CameraState, rules: CameraRules) -> tuple[list[Waiting], int]:
        """A saved state into `rules`; returns the events waiting in it and the views accepted its
        reference reflects (one accepted after it was saved is yet to be taken). ValueError, KeyError
        or TypeError where it cannot be used (`rules` may be partly restored then)."""
        state = decode(row.state)
        waiting = [Waiting.restored(saved) for saved in state.pop(WAITING_KEY, [])]
        view_accepts = int(state.pop(VIEW_ACCEPTS_KEY, row.view_accepts))
        rules.restore(state)
        return waiting, view_accepts

    def _take_newer(self, live: LiveCamera, session: Session) -> None:
        """Another process saved a newer state of this camera (a `streetorder watch` of it, or the
        service it pushes frames to): go on from that one, not from this process's older copy, whose
        gap and incidents would be judged as if nobody else had watched meanwhile. A view accepted
        since (counted in the row by `accept_view` of another process: the service's POST .../view)
        is taken up here: this process's newest frame with a picture becomes the reference, saved
        with the next frame applied."""
        stored = session.execute(
            select(CameraState.captured_at, CameraState.view_accepts).where(
                CameraState.camera_id == live.camera.id
            )
        ).one_or_none()
        if stored is None:
            return
        known = max(live.rules.last_at or -math.inf, live.saved_at or -math.inf)
        if known == -math.inf or stored.captured_at > datetime.fromtimestamp(known, UTC):
            row = session.get(CameraState, live.camera.id)
            assert row is not None
            log.warning(
                "camera %s: a newer state (to %s) was saved by another process; this one goes on from it",
                live.camera.id,
                live.clock(row.captured_at),
            )
            self._take(live, row)
        if stored.view_accepts > live.view_accepts:
            log.warning("camera %s: a view was accepted as its reference by another process", live.camera.id)
            live.rules.accept_view()
            live.view_accepts = stored.view_accepts
            live.saved_at = None  # saved with the next frame applied: the accepted reference is stored

    def reload(self, registry: CameraRegistry, sessions: sessionmaker[Session]) -> ReloadSummary:
        """Apply another cameras file while frames keep coming (see the module's docstring)."""
        with self._reload_lock:
            added, changed, unchanged = [], [], []
            for camera in registry:
                old = self.cameras.get(camera.id)
                if old is not None and old.camera == camera:
                    unchanged.append(camera.id)
                    continue
                live = LiveCamera(camera, self.taxonomy)
                if old is None:
                    self.cameras = {**self.cameras, camera.id: live}
                    self.restore(sessions, [camera.id])
                    added.append(camera.id)
                    continue
                with old.lock:  # no frame of this camera runs meanwhile; the next one waits for `live`
                    live.rules.restore(old.rules.export())
                    live.health, live.last_frame, live.saved_at = old.health, old.last_frame, old.saved_at
                    live.held, live.waiting, live.view_accepts = old.held, old.waiting, old.view_accepts
                    live.spill, live.model_version = old.spill, old.model_version
                    self.cameras = {**self.cameras, camera.id: live}
                changed.append(camera.id)
            removed = [camera_id for camera_id in self.cameras if camera_id not in registry.cameras]
            for camera_id in removed:
                with self.cameras[camera_id].lock:
                    self._save(self.cameras[camera_id], sessions)  # taken back if it is configured again
            self.cameras = {camera.id: self.cameras[camera.id] for camera in registry}
            self.registry = registry
            self.config = ConfigStatus(registry.source, datetime.now(UTC))
            return ReloadSummary(registry.source, added, changed, removed, unchanged)

    def reload_failed(self, error: str) -> None:
        """A cameras file that could not be loaded: the one in force stays, the error is shown."""
        self.config.error, self.config.error_at = error, datetime.now(UTC)

    def save(self, sessions: sessionmaker[Session]) -> list[str]:
        """Save every camera's engine state now (on shutdown). A state the database does not take (it
        cannot be reached or written) is spilled to the camera's file (`spill_path`) with the events
        waiting in it, whose photos are on disk already; the next start takes it back (`take_spilled`).
        Returns a line per camera spilled, naming the file."""
        said = []
        for live in self:
            with live.lock:
                try:
                    self._save(live, sessions)
                except DBAPIError as error:
                    said.append(self._spill(live, error))
        return said

    def _spill(self, live: LiveCamera, error: DBAPIError) -> str:
        """The camera's state as `_store` would write it, with the row's own columns, written atomically."""
        path = spill_path(self.evidence_dir, live.camera.id)
        values = self._state_values(live, live.waiting)
        spilled = {
            "camera_id": live.camera.id,
            "captured_at": values["captured_at"].isoformat(),
            "view_accepts": live.view_accepts,
            "model_version": live.model_version,
            "state": np.frombuffer(values["state"], dtype=np.uint8),
        }
        to, events = live.clock(values["captured_at"]), waiting_events(live)
        try:
            write_atomically(path, encode(spilled))
        except OSError as err:
            return (
                f"camera {live.camera.id}: the database did not take its state to {to} "
                f"({database_said(error)}), nor could it be kept in {path} ({err.strerror}): "
                f"{events} waiting events are lost"
            )
        live.spill = path
        return (
            f"camera {live.camera.id}: the database did not take its state to {to} ({database_said(error)}): "
            f"it is kept with its {events} waiting events in {path}, taken back by the next start"
        )

    def take_spilled(self, sessions: sessionmaker[Session], case_rules: CaseRules) -> list[str]:
        """Before the first frame: take back each camera's spilled state (`save`) that is newer than the
        one stored, write its waiting events in order (each with its frame's capture time and photo,
        found by the model of the camera's last frame) with the state in one transaction, and only
        then remove the file; one the database does not take yet stays, its events waiting with the
        camera (written with its next frame, the file removed then). A file that cannot be read, is
        another camera's, or is not newer than the stored state (taken already, or the camera went
        on elsewhere) is left in place. Returns a line per file."""
        said = []
        for live in self:
            path = spill_path(self.evidence_dir, live.camera.id)
            if path.exists():
                with live.lock:
                    said.append(self._take_spilled(live, path, sessions, case_rules))
        return said

    def _take_spilled(
        self,
        live: LiveCamera,
        path: Path,
        sessions: sessionmaker[Session],
        case_rules: CaseRules,
    ) -> str:
        camera_id = live.camera.id
        try:
            spilled = decode(path.read_bytes())
            row = CameraState(
                camera_id=str(spilled["camera_id"]),
                captured_at=datetime.fromisoformat(spilled["captured_at"]),
                view_accepts=int(spilled["view_accepts"]),
                state=np.asarray(spilled["state"], dtype=np.uint8).tobytes(),
            )
            model_version = str(spilled["model_version"] or "unknown")  # none: no frame since a restore
            if row.captured_at.tzinfo is None:
                raise ValueError(f"capture time {row.captured_at} without a timezone")
            if row.camera_id != camera_id:
                return f"camera {camera_id}: {path} not taken, left in place: camera {row.camera_id}'s state"
            rules = CameraRules(live.camera, self.taxonomy)  # a file that cannot be used leaves the camera's
            waiting, view_accepts = self._read_state(row, rules)
        except (OSError, ValueError, KeyError, TypeError) as err:
            return f"camera {camera_id}: {path} not taken, left in place, it cannot be read ({err})"
        to = live.clock(row.captured_at)
        try:
            with sessions() as session:
                stored = session.scalar(
                    select(CameraState.captured_at).where(CameraState.camera_id == camera_id)
                )
        except DBAPIError as err:
            return (
                f"camera {camera_id}: {path} (state to {to}) not taken yet, left in place: "
                f"{database_said(err)}"
            )
        if stored is not None and stored >= row.captured_at:
            return (
                f"camera {camera_id}: {path} (state to {to}) not taken, left in place: the database holds "
                f"one as new (to {live.clock(stored)})"
            )
        live.held, live.rules, live.view_accepts, live.waiting = None, rules, view_accepts, waiting
        live.saved_at, live.spill = None, path
        events = waiting_events(live)
        try:
            if live.waiting:
                self._apply(live, None, [], sessions, case_rules, model_version)
            else:
                self._save(live, sessions)
        except (EventsKept, DBAPIError) as err:
            error = err.__cause__ if isinstance(err, EventsKept) else err
            said = database_said(error) if isinstance(error, DBAPIError) else str(err)
            return (
                f"camera {camera_id}: state to {to} taken back from {path}, but the database did not take it "
                f"yet ({said}): its {waiting_events(live)} events wait with the camera, and the file stays"
            )
        return f"camera {camera_id}: state to {to} taken back from {path}: {events} waiting events written"

    def _spill_taken(self, live: LiveCamera) -> None:
        """The database took what the camera's spilled state held (and newer): its file goes."""
        if live.spill is not None:
            live.spill.unlink(missing_ok=True)
            live.spill = None

    def _save(self, live: LiveCamera, sessions: sessionmaker[Session]) -> None:
        if live.rules.last_at is None:
            return

        def once() -> None:
            with transaction(sessions) as session:
                self._store(session, live, live.waiting)

        retry_busy(once, partial(_written_again, live, "its state"), self.busy_budget_s)
        self._taken(live)
        self._spill_taken(live)

    def _store(self, session: Session, live: LiveCamera, waiting: list[Waiting]) -> bool:
        """Write the camera's state, unless the stored one is newer: two writers of one camera (the
        service and a `watch`, or a stale copy saved on shutdown) never roll each other's state back
        to an older frame time. The write is one conditional UPDATE (it takes the write lock on
        SQLite, the row lock on PostgreSQL), so two writers cannot interleave between check and write.
        `waiting`: the camera's events still waiting for the database, saved with it."""
        values = self._state_values(live, waiting)
        captured_at = values["captured_at"]
        written = session.execute(
            update(CameraState)
            .where(CameraState.camera_id == live.camera.id, CameraState.captured_at <= captured_at)
            .values(**values)
        )
        if not cast(CursorResult[Any], written).rowcount:
            stored = session.get(CameraState, live.camera.id)
            if stored is not None:
                log.warning(
                    "camera %s: state to %s not saved: a newer one (to %s) is stored, by another process",
                    live.camera.id,
                    live.clock(captured_at),
                    live.clock(stored.captured_at),
                )
                return False
            session.add(CameraState(camera_id=live.camera.id, view_accepts=live.view_accepts, **values))
        live.saved_at = live.rules.last_at
        return True

    def _state_values(self, live: LiveCamera, waiting: list[Waiting]) -> dict[str, Any]:
        """The camera's `camera_states` row as `_store` writes it (and `_spill` keeps it)."""
        last_at = live.rules.last_at
        assert last_at is not None
        captured_at = datetime.fromtimestamp(last_at, UTC)
        # what its violations were last seen on: frames without a picture (vision/live/picture.py) see nothing
        seen_at = datetime.fromtimestamp(live.rules.usable_at or last_at, UTC).isoformat()
        return {
            "captured_at": captured_at,
            "saved_at": datetime.now(UTC),
            "state": encode(
                {
                    **live.rules.export(),
                    WAITING_KEY: [w.export() for w in waiting],
                    VIEW_ACCEPTS_KEY: live.view_accepts,
                }
            ),
            "standing": [
                {"incident": i.id, "case_id": i.case_id, "seen_at": seen_at}
                for i in open_incidents(live)
                if i.case_id is not None
            ],
        }

    def _sync_handled(self, live: LiveCamera, session: Session) -> None:
        """Tell the engine which incidents' cases were reported handled (and when), or reworked.

        Several incidents may share a case (the intake merges findings of one class within 50 m:
        all of a camera's), and a handling report answers only those that had started before it: a
        car that parks after the case was handled is news on it, not a case still there after
        handling.
        """
        watched = [
            (incident, incident.case_id)
            for incident in live.rules.incidents
            if incident.case_id is not None and incident.status != "closed"
        ]
        if not watched:
            return
        cases = {case_id for _, case_id in watched}
        states = dict(session.execute(select(Case.id, Case.state).where(Case.id.in_(cases))).all())
        handled = dict(
            session.execute(
                select(FlowEntry.case_id, FlowEntry.at)
                .where(FlowEntry.case_id.in_(cases), FlowEntry.action == Action.HANDLE)
                .order_by(FlowEntry.id)
            ).all()
        )  # the latest handling report of each case wins
        for incident, case_id in watched:
            state = states.get(case_id)
            report = handled.get(case_id)
            if state is None or not is_open(state):
                live.rules.close(incident)
            elif state in HANDLED_STATES and report is not None and report.timestamp() >= incident.started_at:
                live.rules.set_handled(incident, report)
            elif incident.handled_at is not None:
                live.rules.set_handled(incident, None)

    def _apply(
        self,
        live: LiveCamera,
        frame: Frame | None,
        events: list[RuleEvent],
        sessions: sessionmaker[Session],
        case_rules: CaseRules,
        model_version: str,
    ) -> list[CaseAction]:
        """The events waiting (oldest first), then `frame`'s, and the camera's state, in one
        transaction; tried again for `busy_budget_s` on a transient conflict, after which the frame's
        events wait with the camera (`_keep`) and `EventsKept` is raised."""
        batch = None
        if events:
            assert frame is not None
            encoded = encode_jpeg(frame.image)
            sha256 = hashlib.sha256(encoded).hexdigest()
            path = store_image(self.evidence_dir, encoded, sha256, "JPEG")
            batch = Waiting(frame.captured_at, str(path), sha256, events, frame.image)
        batches = [*live.waiting, *([batch] if batch is not None else [])]
        # what a try changes in memory before its commit, undone when it is rolled back: an
        # incident linked to a case that was never committed, the state taken as saved
        touched = [*live.rules.incidents, *(event.incident for each in batches for event in each.events)]
        linked = [(incident, incident.case_id) for incident in touched]
        saved_at = live.saved_at

        def undo() -> None:
            for incident, case_id in linked:
                incident.case_id = case_id
            live.saved_at = saved_at

        def once() -> list[CaseAction]:
            undo()
            return self._apply_once(live, batches, sessions, case_rules, model_version)

        what = f"frame at {live.clock(frame.captured_at)}" if frame is not None else "the events waiting"
        try:  # a transient conflict (another writer's lock, a deadlock) must not lose the events
            actions = retry_busy(once, partial(_written_again, live, what), self.busy_budget_s)
        except DBAPIError as error:  # busy past the budget, the database gone or read-only: they wait
            undo()
            if not not_taken_now(error):
                raise
            dropped = 0 if batch is None else self._keep(live, batch)
            self._not_taken(
                live,
                error,
                "camera %s: %s: the database did not take %s %s (%s): %s wait with the camera (%d "
                "waiting%s), written first with its next frame",
                live.camera.id,
                what,
                "them" if batch is None else "it",
                f"within {self.busy_budget_s:g} s" if is_busy(error) else "now",  # read-only: refused at once
                database_said(error),
                "they" if batch is None else f"its {len(batch.events)} events",
                waiting_events(live),
                f"; {dropped} dropped over the limit of {self.max_waiting}" if dropped > 0 else "",
                dropped=dropped,
            )
            raise EventsKept(
                f"camera {live.camera.id}: the database did not take them ({database_said(error)}); "
                f"nothing is lost: {waiting_events(live)} events are kept, and will be written with the next "
                "frame (this frame sent again is late, and its answer lists them)",
                camera_id=live.camera.id,
                events_waiting=waiting_events(live),
            ) from error
        except Exception:
            undo()
            raise
        self._taken(live)
        if live.waiting:
            log.info(
                "camera %s: %d events that waited for the database (frames from %s) are written",
                live.camera.id,
                waiting_events(live),
                live.clock(live.waiting[0].captured_at),
            )
            live.waiting = []
        self._spill_taken(live)
        return actions

    def _keep(self, live: LiveCamera, batch: Waiting) -> int:
        """`batch`'s events wait with the camera, each with a copy of its incident as it is now (the
        engine's own moves on). Beyond `max_waiting` the oldest `evidence` events go first, then the
        newest of the batch: the oldest changes (a case's start) stay. Returns how many went."""
        kept = [
            RuleEvent(e.kind, replace(e.incident, box=e.incident.box.copy()), e.at, e.reason)
            for e in batch.events
        ]
        live.waiting.append(Waiting(batch.captured_at, batch.path, batch.sha256, kept))
        over, dropped = waiting_events(live) - self.max_waiting, 0
        for waiting in live.waiting:
            left = []
            for event in waiting.events:
                if dropped < over and event.kind == "evidence":
                    dropped += 1
                else:
                    left.append(event)
            waiting.events = left
        if dropped < over:  # only changes left: the newest go
            last = live.waiting[-1]
            last.events = last.events[: max(0, len(last.events) - (over - dropped))]
            dropped = over
        live.waiting = [waiting for waiting in live.waiting if waiting.events]
        live.health.waiting_dropped += dropped
        return dropped

    def _not_taken(
        self, live: LiveCamera, error: DBAPIError, said: str, *args: object, dropped: int = 0
    ) -> None:
        """A frame whose writes the database did not take: `said` (with `args`) as the first of an
        outage; later ones counted, and told at most once per OUTAGE_LOG_S of capture time."""
        at = live.rules.last_at or 0.0
        outage = live.outage
        if outage is None:
            live.outage = Outage(at, at, dropped=dropped)
            log.warning(said, *args)
            return
        outage.frames += 1
        outage.unsaid += 1
        outage.dropped += dropped
        if at - outage.logged_at < OUTAGE_LOG_S:
            return
        log.warning(
            "camera %s: the database still takes none of its writes (%s): %d more frames not written, "
            "%d since %s; its state is kept and %d events wait%s",
            live.camera.id,
            database_said(error),
            outage.unsaid,
            outage.frames,
            live.clock(datetime.fromtimestamp(outage.since, UTC)),
            waiting_events(live),
            f" ({outage.dropped} dropped over the limit of {self.max_waiting})" if outage.dropped else "",
        )
        outage.logged_at, outage.unsaid = at, 0

    def _taken(self, live: LiveCamera) -> None:
        """The database took the camera's writes again: the outage's one closing line."""
        outage, live.outage = live.outage, None
        if outage is not None:
            log.warning(
                "camera %s: saved again after %d frames / %.0f s of capture time the database did not take "
                "(from %s)",
                live.camera.id,
                outage.frames,
                (live.rules.last_at or 0.0) - outage.since,
                live.clock(datetime.fromtimestamp(outage.since, UTC)),
            )

    def _apply_once(
        self,
        live: LiveCamera,
        batches: list[Waiting],
        sessions: sessionmaker[Session],
        case_rules: CaseRules,
        model_version: str,
    ) -> list[CaseAction]:
        """The frames' events, in order, and the camera's state, in one transaction."""
        actions = []
        engine = {incident.id: incident for incident in live.rules.incidents}
        cases: dict[int, int | None] = {}  # incident -> its case as the events before left it
        with transaction(sessions) as session:
            # every camera's events one after another, the state with them: a clear reads the other
            # cameras' standing violations as their last events left them (`standing_elsewhere`)
            lock_intake(session)
            for batch in batches:
                path, sha256, captured_at = Path(batch.path), batch.sha256, batch.captured_at
                image = batch.image if batch.image is not None else read_bgr(path)
                for k, event in enumerate(batch.events):
                    # a waiting event holds a copy of its incident: linked to the case as the engine's
                    # own incident is (or as an earlier waiting event of it left it), and back
                    incident = event.incident
                    own = engine.get(incident.id)
                    if incident.id in cases:
                        incident.case_id = cases[incident.id]
                    elif own is not None:
                        incident.case_id = own.case_id
                    case = session.get(Case, incident.case_id) if incident.case_id is not None else None
                    if event.kind in ("cleared", "rework") and case is not None and is_open(case.state):
                        later = clearing_later(batch.events[k + 1 :], incident)
                        action = self._attach(
                            session,
                            live,
                            event,
                            case,
                            path,
                            sha256,
                            captured_at,
                            image,
                            case_rules.calendar.timezone,
                            later,
                        )
                    elif event.kind == "cleared":  # its case closed meanwhile: nothing to verify
                        action = case_action(event, case, captured_at, reason="case no longer open")
                    else:
                        action = self._finding(
                            session, live, event, image, path, sha256, captured_at, case_rules, model_version
                        )
                    actions.append(action)
                    cases[incident.id] = incident.case_id
                    if own is not None:
                        own.case_id = incident.case_id
            self._store(session, live, [])
        return actions

    def _finding(
        self,
        session: Session,
        live: LiveCamera,
        event: RuleEvent,
        image: np.ndarray | None,
        path: Path,
        sha256: str,
        captured_at: datetime,
        case_rules: CaseRules,
        model_version: str,
    ) -> CaseAction:
        """The frame as a finding: a new case, or evidence of the open case it repeats."""
        incident = event.incident
        camera = live.camera
        occupancy = incident.source == "occupancy"
        box = self._box(incident)
        extra = {
            "camera_id": camera.id,
            "zone": incident.zone_id,
            "incident": incident.id,
            "source": incident.source,
            "dwell_s": round(event.at - incident.since, 1),
            "reason": event.reason or event.kind,
        }
        update = record_finding(
            session,
            Finding(
                event=incident.event,
                lat=camera.lat,
                lon=camera.lon,
                seen_at=captured_at,
                photo_path=str(path),
                photo_sha256=sha256,
                boxes=(box,),
                model_version=OCCUPANCY_MODEL if occupancy else model_version,
                source=CaseSource.VIDEO,
                reporter=f"camera:{camera.id}",
                camera_id=camera.id,
                extra=extra,
            ),
            case_rules,
        )
        if occupancy and update.evidence.crop_path is None:  # the annotators' queue starts from crops
            update.evidence.crop_path = self._crop(image, incident)
        incident.case_id = update.case.id
        proposal = "check_fail" if event.kind == "rework" else None
        return case_action(
            event, update.case, captured_at, update.evidence.id, created=update.created, proposal=proposal
        )

    def _crop(self, image: np.ndarray | None, incident: Incident) -> str | None:
        """The incident's region of the frame, stored for annotators (class-free occupancy); None
        when a waiting frame's photo can no longer be read."""
        if image is None:
            return None
        crop = encode_jpeg(crop_box(image, incident.box.tolist()))
        return str(store_image(self.evidence_dir, crop, hashlib.sha256(crop).hexdigest(), "JPEG"))

    def _attach(
        self,
        session: Session,
        live: LiveCamera,
        event: RuleEvent,
        case: Case,
        path: Path,
        sha256: str,
        captured_at: datetime,
        image: np.ndarray | None,
        local_tz: tzinfo,
        later: Incident | None = None,
    ) -> CaseAction:
        """An after-photo with a check proposal, or a rework flag, on the incident's own case;
        `later`: another incident of the case that clears on the same frame, after this one. Times
        written into the evidence's JSON are on `local_tz`, the bureau's clock, as the API answers times."""
        incident = event.incident
        proposal: str | None
        reason = event.reason or ("place clear" if event.kind == "cleared" else event.kind)
        said: str | None = None  # the action's reason where it differs from the event's
        if event.kind == "cleared":
            role, boxes = EvidenceRole.AFTER, []
            proposal = "check_pass" if case.state == State.HANDLED else "resolved"
            # one case may hold several incidents (the intake merges a class's findings within 50 m,
            # of this camera and of the others there): while another still stands, this place is
            # clear but the case is not; the last one to clear proposes
            standing = still_standing(live, case.id, incident)
            if standing is not None:
                proposal = None
                reason = f"place clear; incident {standing.id} of this case still present"
            elif later is not None:  # two cars gone on one frame made two proposals: the last one makes it
                proposal = None
                reason = (
                    f"place clear; incident {later.id} of this case clears on this frame too and proposes"
                )
            else:
                bridges = {known.camera.id: known.camera.dwell.restart_bridge_s for known in self}
                elsewhere, unseen = standing_elsewhere(
                    session,
                    live.camera.id,
                    case.id,
                    captured_at,
                    bridges,
                    live.camera.dwell.restart_bridge_s,
                    local_tz,
                )
                if elsewhere is not None:
                    other, incident_id = elsewhere
                    proposal = None
                    reason = (
                        f"place clear; incident {incident_id} of camera {other} on this case still present"
                    )
                reason = "; ".join([reason, *unseen])
                said = reason if unseen else None
        else:  # back, or never gone: rework of a handled case; for one nobody handled, news only
            role = EvidenceRole.FINDING
            boxes = [self._box(incident).to_json()]
            proposal = "check_fail" if case.state in HANDLED_STATES else None
        rework = role == EvidenceRole.FINDING
        evidence = Evidence(
            case=case,
            role=role,
            path=str(path),
            sha256=sha256,
            captured_at=captured_at,
            boxes=boxes,
            extra={
                "camera_id": live.camera.id,
                "zone": incident.zone_id,
                "incident": incident.id,
                "proposal": proposal,
                "reason": reason,
                "absent_since": (
                    local_iso(datetime.fromtimestamp(incident.last_seen, UTC), local_tz)
                    if event.kind == "cleared"
                    else None
                ),
            },
            # every occupancy frame that shows the thing again carries its own crop, not only the first
            crop_path=self._crop(image, incident) if rework and incident.source == "occupancy" else None,
        )
        session.add(evidence)
        session.flush()
        return case_action(
            event,
            case,
            captured_at,
            evidence.id,
            proposal=proposal,
            reason=reason if proposal is None else said,
        )

    def _box(self, incident: Incident) -> Box:
        """The incident's box as evidence stores it; class-free occupancy is labelled `occupancy`."""
        x1, y1, x2, y2 = (float(v) for v in incident.box)
        name = "occupancy" if incident.class_id is None else self.taxonomy.names[incident.class_id]
        return Box((x1, y1, x2, y2), float(incident.confidence or 1.0), name)


def not_taken_now(error: DBAPIError) -> bool:
    """A write the database does not take now, through no fault of what was written: busy past the
    budget or gone (OperationalError), or read-only; a camera's events and state wait it out."""
    return isinstance(error, OperationalError) or is_read_only(error)


def _written_again(live: LiveCamera, what: str, attempt: int, error: DBAPIError) -> None:
    """`retry_busy`'s word on a camera's write rolled back on a transient conflict."""
    log.warning(
        "camera %s: %s: the database was busy (%s); written again (try %d of %d)",
        live.camera.id,
        what,
        database_said(error),
        attempt + 1,
        BUSY_TRIES,
    )


def case_action(
    event: RuleEvent,
    case: Case | None,
    captured_at: datetime,
    evidence_id: int | None = None,
    *,
    created: bool = False,
    proposal: str | None = None,
    reason: str | None = None,
) -> CaseAction:
    """What the endpoint reports for one rule event: the incident, and the case it touched if any."""
    incident = event.incident
    return CaseAction(
        kind=event.kind,
        incident_id=incident.id,
        zone_id=incident.zone_id,
        event=incident.event,
        source=incident.source,
        case_id=case.id if case else None,
        case_number=case.number if case else None,
        case_state=case.state if case else None,
        created=created,
        evidence_id=evidence_id,
        proposal=proposal,
        reason=event.reason if reason is None else reason,
        captured_at=captured_at,
    )


def open_incidents(live: LiveCamera) -> list[Incident]:
    return [i for i in live.rules.incidents if i.status == "present"]


def clearing_later(events: Sequence[RuleEvent], cleared: Incident) -> Incident | None:
    """Another incident of `cleared`'s case among the frame's later `events` that clears too: of
    the incidents of one case that clear on one frame, the last proposes, as if one after another."""
    return next(
        (e.incident for e in events if e.kind == "cleared" and e.incident.case_id == cleared.case_id),
        None,
    )


def still_standing(live: LiveCamera, case_id: int, cleared: Incident) -> Incident | None:
    """Another incident of the camera on the same case still present, if any: the case's place is
    not clear while it stands, so a clear proposes nothing yet."""
    return next(
        (i for i in open_incidents(live) if i.case_id == case_id and i.id != cleared.id),
        None,
    )


def standing_elsewhere(
    session: Session,
    camera_id: str,
    case_id: int,
    at: datetime,
    bridges: dict[str, float],
    default_bridge: float,
    local_tz: tzinfo,
) -> tuple[tuple[str, int] | None, list[str]]:
    """(camera, incident) of another live camera whose violation of the case stood on its last saved frame,
    if any; and a note for each camera whose standing violation is not counted: dark (no frame, or frames
    without a picture) for longer than its `dwell.restart_bridge_s` (`bridges`, else `default_bridge`)
    before the clearing frame at `at`, so its own rules would no longer carry that violation either, and a
    camera that stopped sending would otherwise hold the case from its `resolved` proposal for ever. A
    state is saved at least every SAVE_EVERY_S of capture time while frames come, so its time may lag the
    camera's last frame by that much: only a gap longer than both is stale, and a live camera is never
    taken for a dark one. Read under the intake lock (`CameraHub._apply`): every camera's events and state
    are written under it, so of two cameras clearing one case at once the second sees the first's clear,
    and exactly one proposes. Times are capture times, never the clock's."""
    rows = session.execute(
        select(CameraState.camera_id, CameraState.captured_at, CameraState.standing).where(
            CameraState.camera_id != camera_id
        )
    ).all()
    unseen: list[str] = []
    for other, last, standing in sorted(rows):
        entries = [entry for entry in standing if entry.get("case_id") == case_id]
        if not entries:
            continue
        incidents = [int(entry["incident"]) for entry in entries]
        if "seen_at" in entries[0]:  # its last frame with a picture (older rows: its last frame)
            last = datetime.fromisoformat(entries[0]["seen_at"])
        bridge = bridges.get(other, default_bridge)
        gap = (at - last).total_seconds()
        if gap <= bridge + SAVE_EVERY_S:
            return (other, incidents[0]), unseen
        unseen.append(
            f"camera {other} last seen {local_iso(last, local_tz)}, {gap / 60:.0f} min before: not counted "
            f"(dark for over its dwell.restart_bridge_s {bridge:g} s)"
        )
    return None, unseen


class CameraCollector(Collector):
    """Per-camera health for Prometheus (`/metrics` of the service, or of a watch process)."""

    def __init__(self, hub: CameraHub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Any]:
        frames = CounterMetricFamily("streetorder_camera_frames", "frames analysed", labels=["camera"])
        late = CounterMetricFamily(
            "streetorder_camera_late_frames", "frames older than the last", labels=["camera"]
        )
        held = CounterMetricFamily(
            "streetorder_camera_held_frames",
            "frames more than dwell.jump_s ahead of the last applied one, held until the next frame",
            labels=["camera"],
        )
        jumps = CounterMetricFamily(
            "streetorder_camera_clock_jumps_dropped",
            "held frames dropped as clock glitches: the next frame went on from the last applied one",
            labels=["camera"],
        )
        dropped = CounterMetricFamily(
            "streetorder_camera_dropped_frames",
            "stream frames replaced before analysis could take them (analysis too slow)",
            labels=["camera"],
        )
        skipped = CounterMetricFamily(
            "streetorder_camera_skipped_frames",
            "stream frames left on purpose to analyse at the camera's analyse_fps",
            labels=["camera"],
        )
        reconnects = CounterMetricFamily(
            "streetorder_camera_reconnects", "stream reconnects", labels=["camera"]
        )
        fps = GaugeMetricFamily("streetorder_camera_fps", "analysed frames per second", labels=["camera"])
        last = GaugeMetricFamily(
            "streetorder_camera_last_frame_timestamp_seconds",
            "capture time of the last frame",
            labels=["camera"],
        )
        incidents = GaugeMetricFamily(
            "streetorder_camera_open_incidents", "violations present now", labels=["camera"]
        )
        waiting = GaugeMetricFamily(
            "streetorder_camera_events_waiting",
            "events kept while the database stayed busy, written first with the camera's next frame",
            labels=["camera"],
        )
        waiting_dropped = CounterMetricFamily(
            "streetorder_camera_waiting_events_dropped",
            "waiting events dropped beyond the limit (camera_waiting_events): 'still there' evidence first",
            labels=["camera"],
        )
        unchanged = GaugeMetricFamily(
            "streetorder_camera_picture_unchanged_seconds",
            "capture seconds the applied frames have shown the very same pixels (a stuck encoder)",
            labels=["camera"],
        )
        no_picture = GaugeMetricFamily(
            "streetorder_camera_no_picture_seconds",
            "capture seconds the frames have shown no picture (black, a no-signal screen, a covered, "
            "washed-out or blurred lens): nothing is judged, and no case is cleared",
            labels=["camera"],
        )
        moved = GaugeMetricFamily(
            "streetorder_camera_view_moved_seconds",
            "capture seconds the frames have shown another view than the camera's reference (another "
            "preset, a camera knocked aside), once that has lasted its view.moved_after_s (0 before: a bus "
            "in front only pauses the rules): its zones lie elsewhere, nothing is judged",
            labels=["camera"],
        )
        stream = StateSetMetricFamily(
            "streetorder_camera_stream",
            "a pulled camera's stream: stalled and unreachable cameras send nothing to judge, no_picture "
            "ones frames without a picture, view_moved ones frames of another view",
            labels=["camera"],
        )
        for live in self.hub:
            labels = [live.camera.id]
            health = live.health
            state = stream_state(live)
            if state is not None:  # None: frames are pushed
                stream.add_metric(labels, {name: name == state for name in STREAM_STATES})
            blind = live.rules.no_picture_since if live.rules.no_picture is not None else None
            no_picture.add_metric(labels, 0.0 if blind is None else (live.rules.last_at or blind) - blind)
            turned = live.rules.view_moved_since
            moved.add_metric(labels, 0.0 if turned is None else (live.rules.last_at or turned) - turned)
            frames.add_metric(labels, health.frames)
            late.add_metric(labels, health.late_frames)
            held.add_metric(labels, health.held_frames)
            jumps.add_metric(labels, health.clock_jumps_dropped)
            dropped.add_metric(labels, health.dropped_frames)
            skipped.add_metric(labels, health.skipped_frames)
            reconnects.add_metric(labels, health.reconnects)
            fps.add_metric(labels, health.fps)
            last.add_metric(labels, health.last_capture.timestamp() if health.last_capture else 0.0)
            incidents.add_metric(labels, len(open_incidents(live)))
            waiting.add_metric(labels, waiting_events(live))
            waiting_dropped.add_metric(labels, health.waiting_dropped)
            unchanged.add_metric(labels, live.rules.unchanged_s)
        yield from (frames, late, held, jumps, dropped, skipped, reconnects, fps, last, incidents, unchanged)
        yield from (waiting, waiting_dropped, no_picture, moved, stream)
