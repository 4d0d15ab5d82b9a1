"""`streetorder bench load`: the service on loopback under rising concurrency.

    streetorder bench load [--levels 1,4,16,64] [--requests 64] [--db URL] [--json]
    streetorder bench load --random-keys 100 [--levels 4] [--requests 200]

Starts `streetorder serve` in a child process (a fresh SQLite database unless --db), then for each
endpoint (POST /v1/detect, POST /v1/reports, GET /v1/cases) and each concurrency level sends
--requests requests from that many concurrent clients (asyncio + httpx) and prints p50/p99
latency, throughput, the share refused with 503 + Retry-After (the inference gate shedding load,
which is how the service is meant to degrade) and the error rate (anything else that is not 2xx,
transport errors included), with the server's resident memory. The service must still answer
/healthz at the end: a crash fails the command.

With --random-keys N, GET /v1/cases is measured twice: unloaded, then while N connections (each
from its own loopback address, 127.0.1.x) send well-formed random API keys as fast as they are
answered; the table gives both p50s and the server's resident memory, and what the garbage got
(401, or 429 once its address failed too often). Garbage must cost nothing: the target is a
p50 within 2x of unloaded and RSS within 100 MB of idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from serve.cases.auth import SCOPES, create_key
from serve.cases.db import open_database, transaction
from serve.cases.settings import get_settings
from serve.cli.memory import proc_memory_mb

SECRET = "bench-load-secret-0123456789"
# Inside an example unit grid; the sample photo has no EXIF, and without a capture time the intake
# would keep it undated and file nothing.
PLACE = {"lat": "34.72265", "lon": "113.62762", "taken_at": "2025-09-30T09:15:00+08:00"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveService:
    """A `streetorder serve` child process on 127.0.0.1 and one key per scope."""

    base: str
    process: subprocess.Popen[bytes]
    keys: dict[str, str]
    db_url: str

    def auth(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}"}

    def rss_mb(self) -> float:
        """Resident memory of the server process now (Linux /proc)."""
        try:
            resident = proc_memory_mb("VmRSS", self.process.pid)
        except OSError:
            return float("nan")
        return resident or 0.0


def wait_until_up(base: str, process: subprocess.Popen[Any], timeout_s: float) -> bool:
    """Poll /healthz until it answers 200; False when the process ended or time ran out."""
    deadline = time.monotonic() + timeout_s
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False


@contextmanager
def running_service(
    db_url: str,
    workdir: Path,
    *,
    env: dict[str, str] | None = None,
    keys: dict[str, str] | None = None,
    start_timeout_s: float = 120,
) -> Iterator[LiveService]:
    """Migrate `db_url`, make one key per scope (or reuse `keys` of an earlier run), start uvicorn
    on a free port and wait until it answers.

    The process is terminated on exit unless it is gone already (a test may have killed it).
    """
    sessions = open_database(db_url)
    if keys is None:
        keys = {}
        with transaction(sessions) as session:
            for scope in SCOPES:
                keys[scope], _ = create_key(
                    session,
                    name=f"{scope}-load",
                    scopes=[scope],
                    pepper=SECRET.encode(),
                    now=datetime.now(UTC),
                )
    sessions.kw["bind"].dispose()
    environment = {
        **os.environ,
        "STREETORDER_SECRET": SECRET,
        "STREETORDER_EVIDENCE_DIR": str(workdir / "evidence"),
        "STREETORDER_ANNOTATIONS_DIR": str(workdir / "annotations"),
        "STREETORDER_KEY_RATE_PER_MIN": "100000000",  # the service's capacity is measured, not a key's
        **(env or {}),
    }
    port = free_port()
    log = (workdir / f"serve-{port}.log").open("wb")
    command = [sys.executable, "-m", "serve.cli.main", "serve", "--port", str(port), "--db", db_url]
    process = subprocess.Popen([*command, "--log-level", "warning"], env=environment, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_up(base, process, start_timeout_s):
            raise RuntimeError(f"the service did not start; see {log.name}")
        yield LiveService(base, process, keys, db_url)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def sample_photo() -> bytes:
    """A real street photo from ../shared when present (the model then finds something), else noise."""
    import cv2

    from vision.core.imageio import read_bgr

    photos = get_settings().shared_datasets_dir / "garbage-cn" / "images" / "val"
    found = sorted(photos.glob("*.jpg"))[:1] if photos.is_dir() else []
    image = read_bgr(found[0]) if found else None
    if image is None:
        image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return bytes(data.tobytes())


@dataclass(frozen=True)
class Outcome:
    status: int  # 0: transport error
    seconds: float
    retry_after: bool


async def one_request(client: httpx.AsyncClient, endpoint: str, live: LiveService, photo: bytes) -> Outcome:
    started = time.perf_counter()
    try:
        if endpoint == "detect":
            response = await client.post(
                "/v1/detect", files={"file": ("p.jpg", photo, "image/jpeg")}, headers=live.auth("detect")
            )
        elif endpoint == "reports":
            response = await client.post(
                "/v1/reports",
                files={"file": ("p.jpg", photo, "image/jpeg")},
                data=PLACE,
                headers=live.auth("report"),
            )
        else:
            response = await client.get("/v1/cases", params={"limit": 50}, headers=live.auth("cases:read"))
    except httpx.HTTPError:
        return Outcome(0, time.perf_counter() - started, False)
    return Outcome(response.status_code, time.perf_counter() - started, "retry-after" in response.headers)


async def level(
    live: LiveService, endpoint: str, clients: int, requests: int, photo: bytes
) -> dict[str, Any]:
    """`requests` requests from `clients` concurrent clients; latency of each, and what came back."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    gate = asyncio.Semaphore(clients)
    async with httpx.AsyncClient(base_url=live.base, limits=limits, timeout=120) as client:

        async def limited() -> Outcome:
            async with gate:
                return await one_request(client, endpoint, live, photo)

        started = time.perf_counter()
        outcomes = await asyncio.gather(*(limited() for _ in range(requests)))
        wall = time.perf_counter() - started
    latencies = np.array([o.seconds for o in outcomes]) * 1000
    ok = sum(200 <= o.status < 300 for o in outcomes)
    shed = sum(o.status == 503 and o.retry_after for o in outcomes)
    return {
        "endpoint": endpoint,
        "clients": clients,
        "requests": requests,
        "ok": ok,
        "shed_503": shed,
        "errors": requests - ok - shed,
        "error_rate": round((requests - ok - shed) / requests, 4),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p99_ms": round(float(np.percentile(latencies, 99)), 1),
        "per_s": round(requests / wall, 2),
        "server_rss_mb": round(live.rss_mb(), 1),
    }


async def flood(base: str, connections: int, started: Event, stop: Event) -> dict[int, int]:
    """`connections` clients, each from its own loopback address, sending random well-formed keys
    until `stop`; how often each status came back. `started` once a hundred answers came."""
    answers: dict[int, int] = {}

    async def attacker(index: int) -> None:
        transport = httpx.AsyncHTTPTransport(local_address=f"127.0.1.{index % 250 + 1}")
        async with httpx.AsyncClient(base_url=base, transport=transport, timeout=60) as client:
            while not stop.is_set():
                key = f"so_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
                try:
                    response = await client.get("/v1/cases", headers={"Authorization": f"Bearer {key}"})
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0
                answers[status] = answers.get(status, 0) + 1
                if sum(answers.values()) >= 100:
                    started.set()

    await asyncio.gather(*(attacker(i) for i in range(connections)))
    return answers


def flood_process(
    base: str, connections: int, started: Event, stop: Event, results: Queue[dict[int, int]]
) -> None:
    results.put(asyncio.run(flood(base, connections, started, stop)))


def random_key_rows(live: LiveService, connections: int, clients: int, requests: int) -> list[dict[str, Any]]:
    """GET /v1/cases unloaded (RSS idle), then while a separate process floods random keys (its own
    event loop: the readers' latencies are the server's, not the load generator's)."""
    idle = asyncio.run(level(live, "cases", clients, requests, b""))
    print(format_row(idle), file=sys.stderr, flush=True)
    spawn = multiprocessing.get_context("spawn")
    started, stop, results = spawn.Event(), spawn.Event(), spawn.Queue()
    attackers = spawn.Process(target=flood_process, args=(live.base, connections, started, stop, results))
    attackers.start()
    if not started.wait(120):
        raise RuntimeError("the random-key flood did not get going within 120 s")
    time.sleep(2)  # every connection past its first answers
    flooded = asyncio.run(level(live, "cases", clients, requests, b""))
    rss = live.rss_mb()
    stop.set()
    flooded["endpoint"] = f"cases+{connections}rk"
    flooded["garbage_answers"] = results.get(timeout=120)
    flooded["server_rss_mb"] = round(max(rss, flooded["server_rss_mb"]), 1)
    attackers.join()
    print(format_row(flooded), f"garbage answered {flooded['garbage_answers']}", file=sys.stderr, flush=True)
    return [idle, flooded]


def run(live: LiveService, levels: list[int], requests: int, endpoints: list[str]) -> list[dict[str, Any]]:
    photo = sample_photo()
    rows = []
    for endpoint in endpoints:
        for clients in levels:
            row = asyncio.run(level(live, endpoint, clients, max(requests, clients), photo))
            rows.append(row)
            print(format_row(row), file=sys.stderr, flush=True)
    return rows


HEADER = f"{'endpoint':<12} {'clients':>7} {'reqs':>5} {'ok':>5} {'503':>5} {'err':>4} {'err%':>6} "
HEADER += f"{'p50 ms':>8} {'p99 ms':>8} {'req/s':>7} {'RSS MB':>7}"


def format_row(row: dict[str, Any]) -> str:
    return (
        f"{row['endpoint']:<12} {row['clients']:>7} {row['requests']:>5} {row['ok']:>5} {row['shed_503']:>5} "
        f"{row['errors']:>4} {100 * row['error_rate']:>5.1f}% {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} "
        f"{row['per_s']:>7.2f} {row['server_rss_mb']:>7.1f}"
    )


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="streetorder bench load", description=__doc__.splitlines()[0])
    p.add_argument("--levels", default="1,4,16,64", help="concurrent clients, comma-separated")
    p.add_argument(
        "--requests", type=int, default=64, help="requests per endpoint and level (at least clients)"
    )
    p.add_argument("--endpoints", default="detect,reports,cases", help="which of detect, reports, cases")
    p.add_argument("--db", help="database URL (default: a fresh SQLite file in a temporary folder)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument(
        "--random-keys",
        type=int,
        default=0,
        metavar="N",
        help="measure GET /v1/cases unloaded and under N connections of random API keys (first level)",
    )
    args = p.parse_args(argv)
    levels = [int(v) for v in args.levels.split(",")]
    endpoints = [e.strip() for e in args.endpoints.split(",")]
    unknown = set(endpoints) - {"detect", "reports", "cases"}
    if unknown or not levels or min(levels) < 1:
        p.error(f"--endpoints {sorted(unknown)} unknown or --levels {args.levels} not positive")
    with tempfile.TemporaryDirectory(prefix="streetorder-load-") as tmp:
        db_url = args.db or f"sqlite:///{tmp}/load.db"
        print(f"bench load: starting the service on {db_url} ...", file=sys.stderr)
        with running_service(db_url, Path(tmp)) as live:
            print(HEADER, file=sys.stderr)
            if args.random_keys:
                rows = random_key_rows(live, args.random_keys, levels[0], args.requests)
            else:
                rows = run(live, levels, args.requests, endpoints)
            alive = live.process.poll() is None and httpx.get(f"{live.base}/healthz").status_code == 200
    load = os.getloadavg()
    if args.json:
        print(json.dumps({"rows": rows, "alive": alive, "loadavg": load}, indent=1))
    else:
        print(HEADER)
        for row in rows:
            print(
                format_row(row),
                *(["garbage answered", row["garbage_answers"]] if "garbage_answers" in row else []),
            )
        print(f"service alive after the run: {alive}; load average {load[0]:.2f} (2-core machine shared)")
    return 0 if alive else 1
