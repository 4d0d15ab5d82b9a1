"""Hot reload: a running service follows promotions and rollbacks without a restart.

When the service's model is `current` (or a path to a registry.yaml), a small thread looks at
the registry file every few seconds. When it changed and names another model version, the new
model is loaded beside the old one and swapped in under a lock: `service.detector` is one
reference, replaced in one assignment. A request takes the detector once (serve/api/deps.py) and
uses that same object for its inference and for the version it records, so a request in flight
finishes on the old model, the next one starts on the new, and none fails. A model that does not
load leaves the old one serving (the error is logged and shown by /readyz only if none is loaded).

Camera watchers run for hours, so they get a `FollowingDetector`, which takes the service's
detector anew for every frame and reports, in the watcher's thread, the version that analysed it.

The cameras file is followed the same way (`CamerasReloader`): an edited `cameras.yaml` is applied
to the running cameras (serve.cases.watch.reload_cameras); one that does not load is logged, shown
by GET /v1/cameras/config, and the one in force stays.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import supervision as sv
from sqlalchemy.orm import Session, sessionmaker

from serve.api.state import Service
from serve.cases.cameras import CameraHub
from serve.cases.findings import CaseRules
from serve.cases.settings import CAMERAS_MAX_MB
from serve.cases.watch import WatchPool, reload_cameras
from vision.core.detector import Detector
from vision.detect.registry import CURRENT, REGISTRY, ModelError, current_in
from vision.live.cameras import CameraConfigError

log = logging.getLogger("streetorder.reload")


def followed_registry(model: str, models_dir: Path) -> Path | None:
    """The registry file a model setting follows, or None for a fixed model."""
    if model == CURRENT:
        return models_dir / REGISTRY
    path = Path(model)
    return path if path.name == REGISTRY else None


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


class FileFollower:
    """A thread that looks at one file every `interval_s` and acts when it changed (its inode,
    modification time or size); no file (None): it does nothing."""

    def __init__(self, path: Path | None, interval_s: float, name: str) -> None:
        self.path = path
        self.interval_s = max(0.1, interval_s)
        self._stamp = _stamp(path) if path else None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> FileFollower:
        if self.path is not None:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # a broken file must never end the watch
                log.exception("%s: check failed", self._thread.name)

    def check(self) -> bool:
        """Act on the file if it changed since the last look; True when that changed something."""
        if self.path is None:
            return False
        with self._lock:
            stamp = _stamp(self.path)
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            return self.changed(self.path)

    def changed(self, path: Path) -> bool:
        raise NotImplementedError


class ModelReloader(FileFollower):
    """Watches the registry a service follows and swaps in the model it names."""

    def __init__(self, service: Service, interval_s: float) -> None:
        settings = service.settings
        super().__init__(followed_registry(settings.model, settings.models_dir), interval_s, "model reload")
        self.service = service

    def changed(self, path: Path) -> bool:
        """Load and swap in the registry's current model; True when swapped."""
        from vision.detect.backends import load_detector
        from vision.modelops.promote import version_of

        name = current_in(path)
        folder = path.parent / name
        old = self.service.detector
        try:
            if old is not None and version_of(folder, path.parent) == old.version:
                return False
            new = load_detector(
                folder,
                models_dir=path.parent,
                taxonomy=self.service.domain.rules.taxonomy,
                confidence=self.service.detection_floor(),
            )
        except Exception as err:  # any backend failure (ONNX Runtime has its own types): keep serving
            log.error(
                "registry names %s, which does not load; keeping %s: %s", name, old and old.version, err
            )
            return False
        self.service.detector = new  # the swap: one reference, taken once per request
        self.service.model_error = None
        metrics = self.service.metrics.model
        if old is not None:
            metrics.remove(old.version)
        metrics.labels(new.version).set(1)
        log.info("model swapped: %s -> %s", old and old.version, new.version)
        return True


class CamerasReloader(FileFollower):
    """Watches the service's cameras file and applies it to the running cameras when it changes."""

    def __init__(
        self,
        hub: CameraHub,
        sessions: sessionmaker[Session],
        case_rules: CaseRules,
        pool: WatchPool | None,
        interval_s: float,
        max_mb: float = CAMERAS_MAX_MB,
    ) -> None:
        super().__init__(hub.registry.source if interval_s > 0 else None, interval_s, "cameras reload")
        self.hub, self.sessions, self.case_rules, self.pool = hub, sessions, case_rules, pool
        self.max_mb = max_mb

    def changed(self, path: Path) -> bool:
        try:
            reload_cameras(self.hub, self.sessions, self.case_rules, self.pool, self.max_mb)
        except CameraConfigError as err:
            log.error("cameras file not applied, the one in force stays: %s", err)
            return False
        return True


class FollowingDetector:
    """A Detector for long-running loops: each call uses the service's current model, and
    `version` (read in the same thread after the call) names the model that made the result."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._local = threading.local()

    def _detector(self) -> Detector:
        detector = self.service.detector
        if detector is None:
            raise ModelError(f"no model is loaded: {self.service.model_error}")
        return detector

    def __call__(self, image: np.ndarray) -> sv.Detections:
        detector = self._detector()
        self._local.version = detector.version
        return detector(image)

    @property
    def version(self) -> str:
        version: str | None = getattr(self._local, "version", None)
        return version or self._detector().version

    @version.setter
    def version(self, _: str) -> None:
        raise AttributeError("a following detector takes its version from the service's model")

    @property
    def names(self) -> list[str]:
        return self._detector().names

    @names.setter
    def names(self, _: list[str]) -> None:
        raise AttributeError("a following detector takes its names from the service's model")

    @property
    def input_size(self) -> int:
        return self._detector().input_size

    @input_size.setter
    def input_size(self, _: int) -> None:
        raise AttributeError("a following detector takes its input size from the service's model")
