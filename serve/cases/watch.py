"""`streetorder watch --camera ID`: pull a camera's stream and turn what it sees into cases.

A `CameraWatcher` takes the newest frame of a `StreamReader` at most `analyse_fps` times per
second of capture time, runs the detector and hands the frame to the camera hub (serve/cases/cameras.py),
the same path as `POST /v1/cameras/{id}/frames`. The service runs a `WatchPool` of watchers for the
cameras marked `pull: true`; the `watch` mode runs one camera as its own process, with its health
on a Prometheus endpoint (`--metrics-port`). `load_service_cameras` reads the cameras file as every
door uses it (each camera inside the grid layout); `reload_cameras` applies an edited one to a
running hub and its pool.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from serve.cases.cameras import CameraHub, LiveCamera, ReloadSummary, Timings
from serve.cases.coords import position_to_wgs84
from serve.cases.errors import EventsKept, OutsideJurisdiction
from serve.cases.findings import CaseRules
from serve.cases.intake import in_jurisdiction
from serve.cases.settings import CAMERAS_MAX_MB
from vision.core.detector import Detector
from vision.core.imageio import Position
from vision.live.cameras import Camera, CameraConfigError, CameraRegistry, load_cameras
from vision.live.stream import StreamReader

log = logging.getLogger("streetorder.watch")


class CameraWatcher:
    """One camera: stream reader + analysis loop in a thread; health copied into the hub."""

    def __init__(
        self,
        hub: CameraHub,
        camera_id: str,
        detector: Detector,
        sessions: sessionmaker[Session],
        case_rules: CaseRules,
        reader: StreamReader | None = None,
    ) -> None:
        self.live: LiveCamera = hub.get(camera_id)
        if reader is None and not self.live.camera.stream:
            raise ValueError(f"camera '{camera_id}' has no stream URL in its configuration")
        self.hub = hub
        self.detector = detector
        self.sessions = sessions
        self.case_rules = case_rules
        self.reader = reader or StreamReader(str(self.live.camera.stream))
        self.analysed = 0
        self.skipped = 0  # frames taken but not analysed: sooner than 1 / analyse_fps after the last
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch {camera_id}", daemon=True)

    def start(self) -> CameraWatcher:
        self.reader.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.reader.stop()
        self._thread.join(10)
        self._copy_health()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _copy_health(self) -> None:
        health, stats = self.live.health, self.reader.stats
        health.reconnects = stats.reconnects
        health.dropped_frames = stats.dropped
        health.skipped_frames = self.skipped
        health.stream_state = stats.state

    def _run(self) -> None:
        interval = 1.0 / self.live.camera.analyse_fps
        last: datetime | None = None
        connection = 0  # of the last frame analysed: a frame of a later one follows a gap in the stream
        while not self._stop.is_set():
            frame = self.reader.take(timeout=0.5)
            self._copy_health()
            if frame is None:
                if not self.reader.running:
                    return  # a file that ended
                continue
            if last is not None and (frame.captured_at - last).total_seconds() < interval:
                self.skipped += 1
                continue
            last = frame.captured_at
            started = time.perf_counter()
            try:
                if frame.connection != connection:
                    self.hub.stream_lost(self.live.camera.id)
                    connection = frame.connection
                detections = self.detector(frame.image)
                timings = Timings(inference_s=time.perf_counter() - started)
                self.hub.process(
                    self.live.camera.id,
                    frame.image,
                    frame.captured_at,
                    detections,
                    sessions=self.sessions,
                    case_rules=self.case_rules,
                    model_version=self.detector.version,
                    received_at=frame.captured_at,
                    timings=timings,
                )
                self.analysed += 1
            except EventsKept:  # judged; its events wait with the camera (the hub logged it once)
                self.analysed += 1
            except Exception:  # one bad frame or a database hiccup must not end the watch
                self.errors += 1
                log.exception("camera %s: frame at %s failed", self.live.camera.id, frame.captured_at)


class WatchPool:
    """The service's watchers: one per camera marked `pull: true` that has a stream."""

    def __init__(
        self, hub: CameraHub, detector: Detector, sessions: sessionmaker[Session], case_rules: CaseRules
    ) -> None:
        self.hub = hub
        self.detector = detector
        self.sessions = sessions
        self.case_rules = case_rules
        self.watchers: dict[str, CameraWatcher] = {}

    def start(self) -> WatchPool:
        self.sync()
        return self

    def sync(self) -> None:
        """Follow the hub after a reload: a camera removed or changed (a new engine, maybe another
        stream) loses its watcher, a pulled camera without one gets one."""
        wanted = {live.camera.id: live for live in self.hub if live.camera.pull and live.camera.stream}
        for camera_id, watcher in list(self.watchers.items()):
            if wanted.get(camera_id) is not watcher.live:
                watcher.stop()
                del self.watchers[camera_id]
        for camera_id in wanted.keys() - self.watchers.keys():
            watcher = CameraWatcher(self.hub, camera_id, self.detector, self.sessions, self.case_rules)
            self.watchers[camera_id] = watcher.start()

    def stop(self) -> None:
        """Every reader is asked first, so that the service's exit waits for one blocked open at most
        rather than one per camera that does not answer."""
        for watcher in self.watchers.values():
            watcher.reader.request_stop()
        for watcher in self.watchers.values():
            watcher.stop()


def check_cameras_size(path: Path, max_mb: float = CAMERAS_MAX_MB) -> None:
    """Refuse (CameraConfigError naming the size and the cap) a cameras file over `max_mb`
    (`STREETORDER_CAMERAS_MAX_MB`) before it is read: a 50 MB file took 28-44 s of PyYAML on each reload,
    some 50000 cameras where a bureau has a few thousand (about 1 KB each)."""
    try:
        size = path.stat().st_size
    except OSError:
        return  # reading it says why it cannot be read
    if size > max_mb * 2**20:
        raise CameraConfigError(
            f"{path}: {size / 2**20:.1f} MB is over the cap of {max_mb:g} MB for a cameras file "
            "(STREETORDER_CAMERAS_MAX_MB; some 1 KB a camera)"
        )


def load_service_cameras(path: Path, case_rules: CaseRules, max_mb: float = CAMERAS_MAX_MB) -> CameraRegistry:
    """The cameras file, refused (CameraConfigError naming the camera) where a camera stands outside
    every unit grid or names a grid_code other than the grid at its position: a camera's findings are
    cases of the grid at its position, and a case needs a grid (the intake's jurisdiction rule); and
    refused whole over `max_mb` (`check_cameras_size`, and the read itself stops there: the stated size
    of a file that grows, is swapped or is a pipe says nothing)."""
    check_cameras_size(path, max_mb)
    written = load_cameras(path, case_rules.taxonomy, int(max_mb * 2**20))
    registry = CameraRegistry({camera.id: in_wgs84(camera) for camera in written}, written.source)
    for written_camera in written:
        camera = registry.get(written_camera.id)
        try:
            grid = in_jurisdiction(Position(camera.lat, camera.lon), case_rules)
        except OutsideJurisdiction as err:  # the position as the file writes it, in its coord_system
            err.sent_as(("lat", "lon"), written_camera.lat, written_camera.lon, written_camera.coord_system)
            raise CameraConfigError(f"{path}: camera '{camera.id}': {err.detail}") from None
        if grid is not None and camera.grid_code is not None and camera.grid_code != grid.code:
            raise CameraConfigError(
                f"{path}: camera '{camera.id}': grid_code {camera.grid_code}, but its position "
                f"({camera.lat}, {camera.lon}) lies in grid {grid.code} ({grid.name})"
            )
    return registry


def in_wgs84(camera: Camera) -> Camera:
    """The camera at its WGS-84 position, the one every position inside has: its lat/lon may be
    written as read off AMap or Baidu (`coord_system`), some 500 m from the same numbers in WGS-84."""
    if camera.coord_system == "wgs84":
        return camera
    lat, lon = position_to_wgs84(camera.lat, camera.lon, camera.coord_system)
    return camera.model_copy(update={"lat": lat, "lon": lon, "coord_system": "wgs84"})


def reload_cameras(
    hub: CameraHub,
    sessions: sessionmaker[Session],
    case_rules: CaseRules,
    pool: WatchPool | None = None,
    max_mb: float = CAMERAS_MAX_MB,
) -> ReloadSummary:
    """Read the hub's cameras file again and apply it (watchers follow). A file that does not load
    (or is over `max_mb`) raises CameraConfigError naming the file and the field, and the one in force
    stays."""
    try:
        registry = load_service_cameras(hub.registry.source, case_rules, max_mb)
    except CameraConfigError as err:
        hub.reload_failed(str(err))
        raise
    summary = hub.reload(registry, sessions)
    if pool is not None:
        pool.sync()
    log.info(
        "cameras reloaded from %s: added %s, changed %s, removed %s",
        summary.source,
        summary.added,
        summary.changed,
        summary.removed,
    )
    return summary
