"""What a running service holds between requests: database, model, domain rules, keys, metrics.

Built once by the app's lifespan and reached by routers only through the dependencies in
serve/api/deps.py, so a test builds a whole service from Settings and nothing is global.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from serve.api.redaction import Renders
from serve.cases.auth import KeyVerifier, Principal, key_rate_per_min
from serve.cases.domain import Domain
from serve.cases.errors import Busy
from serve.cases.notify import NotifyConfig
from serve.cases.orm import Case
from serve.cases.settings import Settings
from vision.core.detector import Detector
from vision.detect.flyers import FlyerFinder, detection_floor

T = TypeVar("T")


class InferenceGate:
    """At most `threads` images in the model at once, at most `queue` more waiting; beyond that 503.

    Inference and decoding run in worker threads, never on the event loop, so health checks and
    case reads stay quick while uploads queue.
    """

    def __init__(self, threads: int, queue: int) -> None:
        self.limiter = anyio.CapacityLimiter(max(1, threads))
        self.capacity = max(1, threads) + max(0, queue)
        self.in_flight = 0

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        if self.in_flight >= self.capacity:
            raise Busy(f"{self.in_flight} images are being analysed or waiting; retry shortly")
        self.in_flight += 1
        try:
            return await anyio.to_thread.run_sync(function, *args, limiter=self.limiter)
        finally:
            self.in_flight -= 1

    def run_blocking(self, function: Callable[..., T], *args: Any) -> T:
        """The same from a sync route (a worker thread): waits for a slot without holding the loop."""
        return anyio.from_thread.run(self.run, function, *args)


class CasesByState(Collector):
    """`streetorder_cases{state}` counted in the database at scrape time (always current)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Any:
        family = GaugeMetricFamily("streetorder_cases", "cases by workflow state", labels=["state"])
        with self.sessions() as session:
            for state, count in session.execute(select(Case.state, func.count()).group_by(Case.state)):
                family.add_metric([state], count)
        yield family


@dataclass
class Metrics:
    """Prometheus metrics of one service instance (its own registry: tests run several apps)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "streetorder_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "streetorder_http_request_seconds", "HTTP request latency", ["method", "route"], registry=r
        )
        self.inference = Histogram(
            "streetorder_inference_seconds",
            "detector time per image (decode excluded)",
            registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.in_flight = Gauge(
            "streetorder_inference_in_flight", "images being analysed or waiting", registry=r
        )
        self.model = Gauge("streetorder_model_info", "loaded model (value 1)", ["version"], registry=r)
        self.key_limited = Counter(
            "streetorder_key_rate_limited",
            "requests refused 429 because their API key was over its rate",
            ["key_id"],
            registry=r,
        )


def remember(table: dict[str, T], name: str, value: T, kept: int) -> None:
    """Put `name` last (newest) in `table` and forget the oldest names beyond `kept`: memory stays
    bounded however many names (addresses, account names, keys) a flood makes up."""
    table.pop(name, None)
    table[name] = value
    while len(table) > kept:
        del table[next(iter(table))]


class SignInThrottle:
    """At most `attempts` failures per name (an address, an account name) in `window_s`, then 429
    until the oldest failure ages out."""

    def __init__(self, attempts: int = 5, window_s: float = 300.0, names_kept: int = 10_000) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self.names_kept = names_kept  # bounded memory: the names failed longest ago are forgotten first
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, username: str) -> int:
        """Seconds until `username` may try again (0: now)."""
        with self._lock:
            recent = [
                t for t in self._failures.get(username.lower(), []) if t > time.monotonic() - self.window_s
            ]
            if recent:
                self._failures[username.lower()] = recent
            else:  # a name (an address) that never failed takes no memory: asked about on every request
                self._failures.pop(username.lower(), None)
        if len(recent) < self.attempts:
            return 0
        # until fewer than `attempts` are left: more may be recorded (a known address goes on past
        # `SignInGuard`'s name brake), so the oldest ageing out may still leave too many
        return int(recent[-self.attempts] + self.window_s - time.monotonic()) + 1

    def failed(self, username: str) -> None:
        with self._lock:
            name = username.lower()
            remember(self._failures, name, [*self._failures.get(name, []), time.monotonic()], self.names_kept)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username.lower(), None)


class SignInGuard:
    """Failed sign-ins counted per (account name, address), so that whoever guesses locks out their
    own address, not the person: five in 5 minutes, then 429 for that pair only. A person who
    mistypes waits a few minutes; the same person elsewhere (or a colleague) signs in at once.

    Guessing from many addresses meets a slower brake per name: `name_attempts` failures in
    `name_window_s` from all addresses together, then 429 for the name, except from an address the
    name signed in from before (remembered in memory, bounded): a botnet can then hold a name shut
    for new addresses, never for the office its person works from. The per-address limit of the
    service (`Service.client_failures`) counts the same failures across names.
    """

    def __init__(
        self,
        attempts: int = 5,
        window_s: float = 300.0,
        name_attempts: int = 30,
        name_window_s: float = 900.0,
        kept: int = 10_000,
    ) -> None:
        self.pairs = SignInThrottle(attempts, window_s, kept)
        self.names = SignInThrottle(name_attempts, name_window_s, kept)
        self.kept = kept
        self._known: dict[str, None] = {}  # "address name" that signed in, newest last
        self._lock = threading.Lock()

    def wait_s(self, username: str, client: str) -> int:
        """Seconds until `username` may try again from `client` (0: now)."""
        pair = f"{client} {username.lower()}"
        if wait := self.pairs.wait_s(pair):
            return wait
        with self._lock:
            known = pair in self._known
        return 0 if known else self.names.wait_s(username)

    def failed(self, username: str, client: str) -> None:
        self.pairs.failed(f"{client} {username.lower()}")
        self.names.failed(username)

    def succeeded(self, username: str, client: str) -> None:
        pair = f"{client} {username.lower()}"
        self.pairs.succeeded(pair)
        with self._lock:
            remember(self._known, pair, None, self.kept)


class KeyRates:
    """Requests per API key: a token bucket of `per_min` requests a minute (the key's own rate,
    else by its scopes, `Settings.key_rate_per_min*`) holding up to `burst_s` seconds of them, so
    a leaked key or a bridge stuck in a loop gets 429 with Retry-After instead of the service's
    whole capacity. Only verified keys are counted, in the bounded memory the failure counters
    use. A key's bucket follows a changed rate from its next request: a lowered one is cut to its
    new burst at once."""

    def __init__(self, settings: Settings, kept: int = 10_000) -> None:
        self.settings = settings
        self.burst_s = settings.key_burst_s
        self.kept = kept
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, when), newest last
        self._lock = threading.Lock()

    def per_min(self, principal: Principal) -> int:
        return key_rate_per_min(self.settings, principal.scopes, principal.rate_per_min)

    def wait_s(self, principal: Principal) -> int:
        """Take one request from the key's bucket: 0, or the seconds until one is there again."""
        key_id = principal.key_id
        per_s = self.per_min(principal) / 60.0
        capacity = max(1.0, per_s * self.burst_s)
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(key_id, (capacity, now))
            tokens = min(capacity, tokens + (now - then) * per_s)
            if tokens >= 1.0:
                remember(self._buckets, key_id, (tokens - 1.0, now), self.kept)
                return 0
            remember(self._buckets, key_id, (tokens, now), self.kept)
        return math.ceil((1.0 - tokens) / per_s)


@dataclass
class Service:
    settings: Settings
    domain: Domain
    sessions: sessionmaker[Session]
    verifier: KeyVerifier
    gate: InferenceGate
    metrics: Metrics
    renders: Renders  # blurred and annotated evidence, on slots of their own
    key_rates: KeyRates  # requests per API key (429 past its rate)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))  # routers' `now`, never rules'
    detector: Detector | None = None
    flyers: FlyerFinder | None = None  # the flyer reader (None: off); its OCR model loads on first use
    model_error: str | None = None  # why no model is loaded (the case API still works)
    sign_ins: SignInGuard = field(default_factory=SignInGuard)
    # failed API keys and sign-ins per client address: a key guesser, a password sprayer trying one
    # password on many names (which the per-name limits above never see) or a flood of garbage gets 429s
    client_failures: SignInThrottle = field(
        default_factory=lambda: SignInThrottle(attempts=20, window_s=60.0)
    )
    notify: NotifyConfig = field(default_factory=NotifyConfig)  # configs/notifications.yaml

    def detection_floor(self) -> float:
        """The lowest score the service's detector keeps: what its flyer reader proposes from."""
        return detection_floor(self.flyers.rules if self.flyers is not None else None)
