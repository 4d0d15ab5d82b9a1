"""A job a service repeats on a timer in a daemon thread (annotation pulls, notifications)."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("streetorder.periodic")


class Periodic:
    """Calls `tick` every `interval_s` seconds until stopped, only when `enabled`; a tick that fails
    (a server away for a moment) is logged and tried again next time."""

    def __init__(self, name: str, interval_s: float, enabled: bool) -> None:
        self.name = name
        self.interval_s = interval_s
        self.enabled = enabled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def tick(self) -> None:
        raise NotImplementedError

    def start(self) -> Periodic:
        if self.enabled:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception:  # anything a remote or the database throws: the next tick tries again
                log.exception("%s failed; trying again in %s s", self.name, self.interval_s)
