"""Bad input, generated: the image loader, absurd EXIF GPS, every upload endpoint, oversized and
streamed bodies, and mutated configuration files. The contract under test:

- a broken or hostile image is an `ImageError` with a reason (400 over HTTP), never a crash;
- an endpoint answers 2xx or a 4xx/503 problem, never 500, and garbage files no case;
- a body over the limit is refused with 413 before it is read whole, streamed or not;
- a broken config raises its loader's error naming the file, never a KeyError or TypeError.

Example counts are fixed (derandomised, so a failure reproduces) and listed in docs/reliability.md.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import math
import os
import socket
import time
import zlib
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from configured import CONFIGS, TAXONOMY
from conftest import SERVICE_START, Service
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import func, select
from test_api_lifecycle import act, report

from serve.cases.deadlines import CalendarError, load_calendar
from serve.cases.grids import GridError, load_grids
from serve.cases.orm import Case
from serve.cli.bench_load import running_service
from vision.core.imageio import ImageError, Position, decode_photo, exif_for, gps_position, photo_format
from vision.core.taxonomy import TaxonomyError, load_taxonomy
from vision.live.cameras import CameraConfigError, load_cameras

FUZZ = settings(max_examples=300, deadline=None, derandomize=True)
HTTP_FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def encoded(kind: str, seed: int = 0, size: tuple[int, int] = (64, 48)) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    ok, data = cv2.imencode(f".{kind}", image)
    assert ok
    return data.tobytes()


JPEG, PNG = encoded("jpg"), encoded("png")


def bomb_png(width: int = 40_000, height: int = 40_000) -> bytes:
    """A valid PNG header declaring a huge image, followed by a tiny compressed stream."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real JPEG or PNG cut short, with bytes overwritten, inserted or a chunk repeated."""
    data = bytearray(draw(st.sampled_from([JPEG, PNG])))
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(["flip", "insert", "cut", "repeat"]))
        if how == "flip":
            data[at] = draw(st.integers(0, 255))
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif how == "cut":
            del data[at:]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 200))]
    return bytes(data)


hostile_bytes = st.one_of(
    st.binary(max_size=4096),
    mutated(),
    st.just(b""),
    st.just(bomb_png()),
    st.binary(max_size=64).map(lambda tail: b"\xff\xd8\xff\xe0" + tail),  # a JPEG start, then garbage
)


def check_loaded(data: bytes) -> None:
    try:
        photo = decode_photo(data, source="fuzz.jpg", max_pixels=4_000_000)
    except ImageError as err:
        assert err.source == "fuzz.jpg" and err.reason and str(err).startswith("fuzz.jpg: ")
        return
    assert photo.image.dtype == np.uint8 and photo.image.ndim == 3 and photo.image.shape[2] == 3
    assert photo.width * photo.height <= 4_000_000 and photo.format in ("JPEG", "MPO", "PNG")


@FUZZ
@given(hostile_bytes)
def test_the_image_loader_never_crashes(data: bytes) -> None:
    check_loaded(data)


def test_the_image_loader_with_atheris(tmp_path: Path) -> None:
    """Coverage-guided: atheris (libFuzzer) mutates a JPEG and a PNG for a fixed number of runs."""
    pytest.importorskip("atheris")
    import subprocess
    import sys

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "seed.jpg").write_bytes(JPEG)
    (corpus / "seed.png").write_bytes(PNG)
    # libFuzzer's memory limits do not work here: without a sanitizer it sees no malloc
    # (-malloc_limit_mb does nothing), and its RSS limit reads getrusage's ru_maxrss, which Linux
    # carries over from the parent (this pytest process, gigabytes late in the suite). So the
    # target checks its own peak RSS (VmHWM) after every input: the input that first pushes it over
    # the limit is the one reported and saved, deterministically.
    script = f"""
import sys, atheris
from serve.cli.memory import peak_rss_mb
with atheris.instrument_imports():
    from vision.core.imageio import ImageError, decode_photo
def one(data):
    try:
        decode_photo(data, source="atheris", max_pixels=4_000_000)
    except ImageError:
        pass
    if peak_rss_mb() > {ATHERIS_PEAK_RSS_MB}:
        raise RuntimeError(f"peak RSS {{peak_rss_mb():.0f}} MB after a {{len(data)}}-byte input")
atheris.Setup(sys.argv, one)
atheris.Fuzz()
"""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            f"-runs={ATHERIS_RUNS}",
            "-seed=1",
            "-max_len=16384",
            "-rss_limit_mb=0",  # off: it would judge the parent's high-water mark (see above)
            f"-artifact_prefix={tmp_path}/",  # a failing input is saved there, not in the checkout
            str(corpus),
        ],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # libFuzzer reports on stderr; atheris prints the target's Python traceback on stdout
    said = done.stderr[-2000:] + done.stdout[-2000:]
    assert done.returncode == 0 and f"Done {ATHERIS_RUNS} runs" in done.stderr, said


ATHERIS_RUNS = 3000
ATHERIS_PEAK_RSS_MB = 512  # the fuzz process stays near 200 MB; a 4-Mpixel image needs 12 MB


# --- absurd EXIF GPS ---------------------------------------------------------------------------

component = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**40), 2**40),
    st.text(max_size=5),
    st.none(),
    st.tuples(st.integers(-5, 5), st.integers(-5, 5)),
)
coordinate = st.one_of(component, st.lists(component, max_size=4).map(tuple))
reference = st.one_of(
    st.sampled_from(["N", "S", "E", "W", "n", "", "X", "NE"]), st.binary(max_size=3), st.none()
)


@FUZZ
@given(st.dictionaries(st.sampled_from([1, 2, 3, 4]), st.one_of(coordinate, reference), max_size=4))
def test_absurd_gps_gives_a_position_in_range_or_none_with_a_reason(gps: dict[int, Any]) -> None:
    position, warnings = gps_position(gps)
    if position is None:
        assert warnings or (2 not in gps and 4 not in gps)
        assert all(w.startswith("GPS ignored: ") for w in warnings)
    else:
        assert -90 <= position.lat <= 90 and -180 <= position.lon <= 180
        assert (position.lat, position.lon) != (0.0, 0.0) and math.isfinite(position.lat + position.lon)


# --- upload endpoints over HTTP ---------------------------------------------------------------

CONTENT_TYPES = ["image/jpeg", "image/png", "text/plain", "application/octet-stream", "image/gif", ""]
ALLOWED_STATUS = {200, 201, 400, 404, 413, 415, 422, 503}


def case_count(service: Service) -> int:
    sessions = service.client.app.state.service.sessions  # type: ignore[attr-defined]
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Case)) or 0)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_upload_endpoint_answers_garbage_with_a_clear_4xx(service: Service) -> None:
    posted = service.client.post(
        "/open311/v2/requests.json",
        data={"service_code": "06010", "lat": "34.72265", "long": "113.62762"},
        headers=service.auth("report"),
    )
    case_id = service.client.get("/v1/cases", headers=service.auth("cases:read")).json()["items"][0]["id"]
    assert posted.status_code == 201
    camera = next(iter(load_cameras(service.settings.configs_dir / "cameras.yaml", taxonomy=TAXONOMY))).id
    capture = {"X-Capture-Time": "2025-09-30T10:30:00+08:00"}
    targets: list[tuple[str, str, dict[str, str]]] = [
        ("/v1/detect", "detect", {}),
        ("/v1/reports", "report", {"lat": "34.72265", "lon": "113.62762"}),
        (f"/v1/cases/{case_id}/evidence", "cases:write", {"role": "after"}),
        (f"/v1/cameras/{camera}/frames", "report", {"captured_at": "2025-09-30T10:30:00+08:00"}),
    ]
    seen: dict[int, int] = {}

    @HTTP_FUZZ
    @given(st.sampled_from(targets), hostile_bytes, st.sampled_from(CONTENT_TYPES), st.text(max_size=40))
    def upload(target: tuple[str, str, dict[str, str]], data: bytes, kind: str, name: str) -> None:
        path, scope, form = target
        files = {"file": (name or "x", data, kind)} if kind else {"file": (name or "x", data)}
        response = service.client.post(
            path, files=files, data=form, headers={**service.auth(scope), **capture}
        )
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code in ALLOWED_STATUS, f"{path}: {response.status_code} {response.text[:300]}"
        if response.status_code >= 400:
            body = response.json()
            assert body["detail"] if isinstance(body, dict) else body
        untyped = kind in ("application/octet-stream", "")  # the bytes decide: a photo's header, or 415
        if kind not in ("image/jpeg", "image/png") and not (untyped and (not data or photo_format(data))):
            assert response.status_code in (415, 413, 422), f"{path} accepted {kind!r}"

    upload()
    assert case_count(service) == 1  # no garbage became a case
    assert seen.get(400, 0) > 0 and seen.get(415, 0) > 0, seen

    @HTTP_FUZZ
    @given(
        st.text(max_size=8),
        st.one_of(st.text(max_size=12), st.floats().map(str)),
        st.one_of(st.text(max_size=12), st.floats().map(str)),
        st.text(max_size=5000),
        st.text(max_size=3000),
    )
    def open311(code: str, lat: str, lon: str, description: str, media: str) -> None:
        form = {"service_code": code, "lat": lat, "long": lon, "description": description, "media_url": media}
        response = service.client.post("/open311/v2/requests.json", data=form, headers=service.auth("report"))
        assert response.status_code in (201, 400), response.text[:300]
        if response.status_code == 400:
            assert response.json()[0]["code"] == 400 and response.json()[0]["description"]

    open311()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_several_photos_in_one_upload_are_refused_not_all_but_one_dropped(service: Service) -> None:
    """Only the last part named `file` was read: the others were lost while the answer said 200."""
    case_id = report(service)
    camera = next(iter(load_cameras(service.settings.configs_dir / "cameras.yaml", taxonomy=TAXONOMY))).id
    doors = [
        ("/v1/detect", "detect", {}),
        ("/v1/reports", "report", {"lat": "34.72", "lon": "113.63", "taken_at": "2025-09-30T10:00:00+08:00"}),
        (f"/v1/cases/{case_id}/evidence", "cases:write", {"role": "near"}),
        (f"/v1/cameras/{camera}/frames", "report", {}),
    ]
    photos = [("file", (f"{n}.jpg", encoded("jpg", n, (320, 240)), "image/jpeg")) for n in (1, 2)]
    before = service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read")).json()
    for path, scope, form in doors:
        response = service.client.post(
            path,
            files=photos,
            data=form,
            headers={**service.auth(scope), "X-Capture-Time": "2025-09-30T10:30:00+08:00"},
        )
        assert "2 parts named 'file'" in assert_problem(response, 422)["detail"], path
    after = service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read")).json()
    assert after["evidence"] == before["evidence"] and case_count(service) == 1 and uploads(service) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_absurd_exif_gps_in_an_upload_leaves_the_photo_unlocated(service: Service) -> None:
    """(95 N), (0, 0) and a missing reference: no case is placed at a made-up spot."""
    from PIL import ExifTags

    street = encoded("jpg", 3, (320, 240))
    cases = []
    for gps, why in (
        ({1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (113.0, 0.0, 0.0)}, "out of range"),
        ({1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)}, "(0, 0)"),
        ({2: (34.0, 43.0, 12.0), 3: "E", 4: (113.0, 37.0, 48.0)}, "latitude"),
    ):
        exif = exif_for(position=Position(34.72, 113.62))
        exif.get_ifd(ExifTags.IFD.GPSInfo).clear()
        exif.get_ifd(ExifTags.IFD.GPSInfo).update(gps)
        out = io.BytesIO()
        Image.open(io.BytesIO(street)).save(out, "JPEG", exif=exif)
        response = service.client.post(
            "/v1/reports",
            files={"file": ("gps.jpg", out.getvalue(), "image/jpeg")},
            headers=service.auth("report"),
        )
        if response.status_code == 503:
            pytest.skip("no model loaded: " + response.text)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["unlocated"] is True and body["lat"] is None and body["cases"] == []
        assert [w for w in body["warnings"] if w.startswith("GPS") and why in w], body["warnings"]  # says why
        cases.append(case_count(service))
    assert cases == [0, 0, 0]


@pytest.mark.parametrize(
    "shape", [(5000, 1), (1, 5000), (2, 3000), (1, 1), (9, 4000), (32, 12000), (12000, 32)]
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_sliver_or_a_dot_of_a_photo_is_answered_not_a_500(service: Service, shape: tuple[int, int]) -> None:
    """A 1 x 5000 PNG letterboxed to 320 px is 0 pixels wide: OpenCV's resize raised, a 500. A photo
    whose shorter side is under `min_photo_side` (32 px) is now a 422 naming its size before the
    model sees it (the model boxed a 1x1 photo whole); a 32 x 12000 one, letterboxed to under a
    pixel as well, is judged."""
    height, width = shape
    image = np.zeros((height, width, 3), np.uint8)  # mostly flat: under the 1 MiB upload limit
    image[:32, :32] = np.random.default_rng(0).integers(0, 255, image[:32, :32].shape, dtype=np.uint8)
    png = cv2.imencode(".png", image)[1]
    files = {"file": ("sliver.png", png.tobytes(), "image/png")}
    judged = min(shape) >= 32
    detected = service.client.post("/v1/detect", files=files, headers=service.auth("detect"))
    if detected.status_code == 503:
        pytest.skip("no model loaded: " + detected.text)
    assert detected.status_code == (200 if judged else 422), detected.text
    assert detected.json()["width"] == width if judged else f"{width}x{height} pixels" in detected.text
    reported = service.client.post(
        "/v1/reports",
        files=files,
        data={"lat": "34.72265", "lon": "113.62762", "taken_at": "2025-09-30T10:30:00+08:00"},
        headers=service.auth("report"),
    )
    assert reported.status_code == (200 if judged else 422), reported.text


# --- bodies over the limit, on a real server -----------------------------------------------------


def raw_exchange(
    base: str, head: bytes, chunks: Callable[[], bytes | None], budget_s: float = 60
) -> tuple[bytes, int]:
    """Send `head`, then body pieces while watching for the server's answer; (answer, bytes sent)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=budget_s) as conn:
        conn.sendall(head)
        conn.settimeout(0.05)
        sent, answer = 0, b""
        deadline = time.monotonic() + budget_s
        while time.monotonic() < deadline and b"\r\n\r\n" not in answer:
            try:
                answer += conn.recv(65536)
                continue
            except TimeoutError:
                pass
            piece = chunks()
            if piece is not None:
                try:
                    conn.sendall(piece)
                except (BrokenPipeError, ConnectionResetError, TimeoutError):  # it stopped reading
                    continue
                sent += len(piece)
        return answer, sent


def test_oversized_bodies_are_refused_before_they_are_read(tmp_path: Path) -> None:
    limit_mb = 1
    with running_service(
        f"sqlite:///{tmp_path / 'big.db'}",
        tmp_path,
        env={"STREETORDER_MAX_UPLOAD_MB": str(limit_mb), "STREETORDER_MODEL": "none"},
    ) as live:
        key = live.keys["detect"]
        head = (
            "POST /v1/detect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n{length}\r\n"
        )
        # declared: 10 GB; the answer comes before any byte of the body is sent
        declared = head.format(key=key, length="Content-Length: 10000000000\r\n").encode()
        answer, sent = raw_exchange(live.base, declared, lambda: None)
        assert answer.startswith(b"HTTP/1.1 413") and sent == 0, answer[:200]

        # streamed without a length: the server stops it a little past the limit
        chunked = head.format(key=key, length="Transfer-Encoding: chunked\r\n").encode()
        opening = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        opening += b"Content-Type: image/jpeg\r\n\r\n"
        pieces = itertools.chain([opening], itertools.repeat(b"\xff" * 65536, 10 * 16))

        def next_chunk() -> bytes | None:
            piece = next(pieces, None)
            return None if piece is None else f"{len(piece):x}\r\n".encode() + piece + b"\r\n"

        answer, sent = raw_exchange(live.base, chunked, next_chunk)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
        assert sent < 3 * limit_mb * 2**20 + 2**20, f"{sent} bytes went in before the refusal"
        assert b"limit" in answer or b"413" in answer
        assert live.process.poll() is None


# --- malformed configuration files ---------------------------------------------------------------

JUNK = st.one_of(
    st.none(),
    st.integers(-(10**12), 10**12),
    st.floats(),
    st.text(max_size=12),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def paths_of(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths_of(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += paths_of(value, (*prefix, i))
    return found


@st.composite
def mutated_config(draw: st.DrawFn, original: Any) -> Any:
    """The config with 1-3 values replaced by junk or removed."""
    data = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 3))):
        paths = paths_of(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JUNK)
    return data


LOADERS: dict[str, tuple[Path, Callable[[Path], Any], type[Exception]]] = {
    "taxonomy": (CONFIGS / "taxonomy.yaml", load_taxonomy, TaxonomyError),
    "calendar": (CONFIGS / "calendar.yaml", load_calendar, CalendarError),
    "cameras": (CONFIGS / "cameras.yaml", lambda path: load_cameras(path, TAXONOMY), CameraConfigError),
    "grids": (CONFIGS / "grids.example.geojson", load_grids, GridError),
}
CONFIG_FUZZ = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
written = itertools.count()


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_mutated_configs_fail_with_the_loaders_error_naming_the_file(name: str, tmp_path: Path) -> None:
    source, load, error = LOADERS[name]
    text = source.read_text(encoding="utf-8")
    original = json.loads(text) if source.suffix == ".geojson" else yaml.safe_load(text)
    outcomes = {"loaded": 0, "refused": 0}

    @CONFIG_FUZZ
    @given(mutated_config(original))
    def check(data: Any) -> None:
        path = tmp_path / f"{next(written)}-{source.name}"  # loaders cache by path: a new name each time
        path.write_text(
            json.dumps(data) if source.suffix == ".geojson" else yaml.safe_dump(data, allow_unicode=True)
        )
        try:
            load(path)
        except error as err:
            assert str(err).startswith(f"{path}: ") or str(path) in str(err), str(err)
            outcomes["refused"] += 1
            return
        outcomes["loaded"] += 1

    check()
    assert outcomes["refused"] > 0


# --- the input policy: extreme times, NaN, huge numbers, future EXIF (issue 31) ----------------

# Each of these answered 500 before the input policy (issue 31): now a 4xx problem, nothing stored.
EXTREME_QUERIES = [
    ("/v1/cases", {"since": "0001-01-01T00:00:00+14:00"}),
    ("/v1/cases", {"as_of": "9999-12-31T23:59:59-14:00", "overdue": "true"}),
    ("/v1/cases", {"until": "9999-12-31T23:59:59-14:00"}),
    ("/v1/cases.geojson", {"since": "0001-01-01T00:00:00+14:00"}),
    ("/v1/stats", {"since": "0001-01-01T00:00:00+14:00"}),
    ("/v1/stats", {"until": "9999-12-31T23:59:59-14:00"}),
    ("/v1/stats", {"since": "2025-10-02", "until": "2025-10-01"}),  # no period: once a report of zeros
    ("/v1/stats/ranking", {"day": "9999-12-31"}),
    ("/v1/stats/ranking", {"day": "0001-01-01"}),
    ("/v1/stats/daily", {"since": "0001-01-01", "until": "0001-01-05"}),
    ("/v1/stats/daily", {"since": "9999-12-30"}),
    ("/open311/v2/requests.json", {"start_date": "9999-12-31T23:59:59-14:00"}),
    ("/open311/v2/requests.json", {"start_date": "0001-01-01T00:00:00+14:00"}),
]
NOT_FINITE_BODIES = [
    ("/v1/keys", "admin", '{"name": "x", "scopes": NaN}'),
    ("/v1/keys", "admin", '{"name": Infinity, "scopes": ["detect"]}'),
    ("/v1/keys", "admin", "NaN"),
    ("/labelstudio/predict", "annotate", '{"tasks": NaN}'),
    ("/labelstudio/predict", "annotate", '{"tasks": [{"id": -Infinity, "data": {"image": NaN}}]}'),
]
BAD_CAPTURE_TIMES = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "2999-06-01T09:00:00+08:00",
    "0001-01-02T09:00:00+08:00",
    "1999-12-31T09:00:00+08:00",
    "2025-09-30T10:40:00+08:00",  # 10 minutes ahead of the service's clock (SERVICE_START)
]


def assert_problem(response: Any, *statuses: int) -> dict[str, Any]:
    """A 4xx RFC 9457 problem document (GeoReport v2's error list under /open311)."""
    assert response.status_code in statuses, (response.status_code, response.text[:400])
    body = response.json()
    if response.request.url.path.startswith("/open311/"):
        assert body[0]["code"] == response.status_code and body[0]["description"]
        return {"detail": body[0]["description"]}
    assert response.headers["content-type"] == "application/problem+json"
    assert body["status"] == response.status_code and body["title"] and body["detail"]
    return dict(body)


def uploads(service: Service) -> list[Path]:
    return sorted((service.settings.evidence_dir / "uploads").rglob("*.*"))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_extreme_times_in_queries_are_a_problem_naming_the_field(service: Service) -> None:
    for path, params in EXTREME_QUERIES:
        response = service.client.get(path, params=params, headers=service.auth("admin"))
        detail = assert_problem(response, 400, 422)["detail"]
        assert any(name in detail for name in params), detail
    # a parameter that means a day takes a day (issue 27, point 9), in the bureau's timezone
    for params in ({"since": "2025-09-29"}, {"since": "2025-09-29", "until": "2025-10-01"}):
        for path in ("/v1/stats", "/v1/cases"):
            response = service.client.get(path, params=params, headers=service.auth("cases:read"))
            assert response.status_code == 200, response.text
    stats = service.client.get(
        "/v1/stats", params={"since": "2025-09-29"}, headers=service.auth("cases:read")
    )
    assert stats.json()["since"] == "2025-09-29T00:00:00+08:00"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_nan_infinity_and_huge_numbers_in_json_are_a_422_problem(service: Service) -> None:
    for path, scope, body in NOT_FINITE_BODIES:
        response = service.client.post(
            path, content=body, headers={**service.auth(scope), "Content-Type": "application/json"}
        )
        assert_problem(response, 422)
    case_id = report(service)
    for action in ("confirm", "file", "dispatch", "start"):
        act(service, case_id, SERVICE_START, action)
    for body, field in (
        ('{"action": "extend", "extend_by": NaN}', "NaN"),
        ('{"action": "extend", "extend_by": Infinity}', "Infinity"),
        ('{"action": "extend", "extend_by": 1e308}', "extend_by"),
        ('{"action": "extend", "extend_by": 1e7}', "extend_by"),
        ('{"action": "extend", "extend_by": 241}', "extend_by"),  # 30 working days are 240 working hours
        ('{"action": "handle", "evidence_id": 1180591620717411303424}', "evidence_id"),
        ('{"action": "handle", "evidence_id": 9223372036854775808}', "evidence_id"),
        ('{"action": "start", "at": "9999-12-31T23:59:59-14:00"}', "at"),
    ):
        etag = service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read")).headers["ETag"]
        started = time.perf_counter()
        response = service.client.post(
            f"/v1/cases/{case_id}/transitions",
            content=body,
            headers={**service.auth("cases:write"), "If-Match": etag, "Content-Type": "application/json"},
        )
        assert time.perf_counter() - started < 2, f"{body} took {time.perf_counter() - started:.1f} s"
        assert field in assert_problem(response, 422)["detail"], response.text
    case = service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read")).json()
    assert case["state"] == "handling" and case["deadline_at"] < "2026"  # nothing moved the deadline
    extended = act(service, case_id, SERVICE_START, "extend", extend_by=240, note="节后")
    assert extended["deadline_at"] < "2026"


JSON = "application/json"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("transition", "transition_refused", "key", "key_refused"),
    [
        # Python's json keeps the last of two `action`s: this confirmed a case that read as rejected
        (
            '{"action": "reject", "note": "不属实", "action": "confirm"}',
            '"action" appears twice',
            '{"name": "bureau", "scopes": ["detect"], "meta": {"a": 1, "a": 2}}',
            '"a" appears twice',
        ),
        # a member no field has was ignored: `dept` for `department` went to the routing rules' one
        (
            '{"action": "confirm", "notes": "属实"}',
            "notes",
            '{"name": "bureau", "scopes": ["detect"], "expires": "2027"}',
            "expires",
        ),
    ],
)
def test_a_json_body_that_says_two_things_is_a_422_problem_that_changes_nothing(
    service: Service, transition: str, transition_refused: str, key: str, key_refused: str
) -> None:
    case_id = report(service)
    read = service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read"))
    writer = {**service.auth("cases:write"), "If-Match": read.headers["ETag"], "Content-Type": JSON}
    refused = service.client.post(f"/v1/cases/{case_id}/transitions", content=transition, headers=writer)
    assert transition_refused in assert_problem(refused, 422)["detail"]
    after = service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read"))
    assert after.headers["ETag"] == read.headers["ETag"] and after.json()["state"] == "reported"
    keys = service.client.get("/v1/keys", headers=service.auth("admin")).json()
    admin = {**service.auth("admin"), "Content-Type": JSON}
    assert (
        key_refused
        in assert_problem(service.client.post("/v1/keys", content=key, headers=admin), 422)["detail"]
    )
    assert service.client.get("/v1/keys", headers=service.auth("admin")).json() == keys
    confirmed = service.client.post(
        f"/v1/cases/{case_id}/transitions", json={"action": "confirm", "note": "属实"}, headers=writer
    )
    assert confirmed.status_code == 200, confirmed.text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "bogus"}, "state"),
        ({"event": "nope"}, "event"),
        ({"event": ["garbage", "x" * 500]}, "event"),
    ],
)
def test_a_state_or_event_no_case_can_have_is_a_422_not_an_empty_page(
    service: Service, params: dict[str, Any], field: str
) -> None:
    """A typo answered 200 with no cases, which reads as a street without that problem."""
    report(service)
    reader = service.auth("cases:read")
    for path in ("/v1/cases", "/v1/cases.geojson"):
        problem = assert_problem(service.client.get(path, params=params, headers=reader), 422)
        assert field in problem["detail"] and len(problem["detail"]) < 2000, problem
    event = service.client.get("/v1/events", headers=reader).json()[0]["key"]
    page = service.client.get("/v1/cases", params={"state": "reported", "event": event}, headers=reader)
    assert page.status_code == 200 and page.json()["total"] >= 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_compressed_body_is_a_415_naming_the_encoding(service: Service) -> None:
    """A gzip body was read as is: a 400 'error parsing the body' that named no cause."""
    case_id = report(service)
    read = service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read"))
    body = zlib.compress(json.dumps({"action": "confirm", "note": "属实"}).encode())
    headers = {**service.auth("cases:write"), "If-Match": read.headers["ETag"], "Content-Type": JSON}
    for coding in ("gzip", "br", "deflate, gzip"):
        refused = service.client.post(
            f"/v1/cases/{case_id}/transitions", content=body, headers={**headers, "Content-Encoding": coding}
        )
        assert coding in assert_problem(refused, 415)["detail"]
    after = service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read"))
    assert after.headers["ETag"] == read.headers["ETag"]
    plain = {**headers, "Content-Encoding": "identity"}
    done = service.client.post(
        f"/v1/cases/{case_id}/transitions", json={"action": "confirm", "note": "属实"}, headers=plain
    )
    assert done.status_code == 200, done.text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_head_is_answered_as_get_without_its_body(service: Service) -> None:
    """RFC 9110: HEAD is supported wherever GET is (a monitor's `HEAD /healthz` got 405)."""
    case_id = report(service)
    reader = service.auth("cases:read")
    for path, headers in (("/healthz", {}), ("/v1/cases", reader), (f"/v1/cases/{case_id}", reader)):
        got, head = service.client.get(path, headers=headers), service.client.head(path, headers=headers)
        assert head.status_code == got.status_code == 200 and head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers.get("etag") == got.headers.get("etag")
    assert service.client.head("/v1/cases").status_code == 401  # the same checks as the GET
    assert service.client.head("/v1/keys", headers=service.auth("admin")).status_code == 200
    assert service.client.head("/v1/reports", headers=service.auth("report")).status_code == 405


def test_text_no_database_can_take_is_a_problem_on_both_databases(service: Service) -> None:
    """A NUL in any text (PostgreSQL refuses it) and a grid prefix too long for SQLite's LIKE were
    500s; each is a 4xx problem now, on both databases, and nothing is written."""
    case_id = report(service)
    reader = service.auth("cases:read")
    for params in ({"grid": "4" * 60000}, {"grid": "4101030010010051"}, {"grid": "x"}):
        response = service.client.get("/v1/cases", params=params, headers=reader)
        assert "grid" in assert_problem(response, 422)["detail"]
    assert service.client.get("/v1/cases", params={"grid": ""}, headers=reader).json()["total"] == 1
    for name in ("street", "department"):  # state and event: no such state or event, also a 422
        response = service.client.get("/v1/cases", params={name: "a\x00b"}, headers=reader)
        assert "NUL" in assert_problem(response, 422)["detail"]
    ledger = service.client.get("/v1/ledger.csv", params={"street": "\x00"}, headers=service.auth("admin"))
    assert "NUL" in assert_problem(ledger, 422)["detail"]
    version = service.client.get(f"/v1/cases/{case_id}", headers=reader).headers["ETag"]
    # an operator is a name: the rule for names (serve/cases/auth.py: check_name) refuses it first
    for fields, named in (({"operator": "巡查员\x00"}, "U+0000"), ({"note": "核实\x00"}, "NUL")):
        assert named in assert_problem(service.transition(case_id, "confirm", **fields), 422)["detail"]
    assert service.client.get(f"/v1/cases/{case_id}", headers=reader).headers["ETag"] == version
    for path in ("/open311/v2/requests/SO%00.json", "/open311/v2/tokens/a%00.json"):  # as a client writes it
        assert "NUL" in assert_problem(service.client.get(path), 400)["detail"]
    # a changing request is audited with its path: a NUL there made the answer (a 404) a 500
    at = SERVICE_START.isoformat()
    frame = {**service.auth("report"), "Content-Type": "image/jpeg", "X-Capture-Time": at}
    for path in ("/v1/cameras/cam%00/frames", "/v1/cameras/%00/frames"):
        response = service.client.post(path, content=b"\xff\xd8", headers=frame)
        assert "camera" in assert_problem(response, 404)["detail"]
    assert service.client.get("/v1/cases", headers=reader).json()["total"] == 1


def exif_photo(taken_at: datetime, seed: int = 5) -> bytes:
    out = io.BytesIO()
    exif = exif_for(position=Position(34.72265, 113.62762), taken_at=taken_at)
    Image.open(io.BytesIO(encoded("jpg", seed, (320, 240)))).save(out, "JPEG", exif=exif)
    return out.getvalue()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_implausible_capture_times_are_refused_at_every_door_leaving_no_file(service: Service) -> None:
    case_id = report(service)
    before = case_count(service)
    doors = [("/v1/reports", "report", {"lat": "34.72265", "lon": "113.62762"})]
    doors.append((f"/v1/cases/{case_id}/evidence", "cases:write", {"role": "after"}))
    for i, text in enumerate(BAD_CAPTURE_TIMES):
        for path, scope, form in doors:  # the form's taken_at, on a photo without EXIF time
            response = service.client.post(
                path,
                files={"file": ("t.jpg", encoded("jpg", 100 + i, (320, 240)), "image/jpeg")},
                data={**form, "taken_at": text},
                headers=service.auth(scope),
            )
            if response.status_code == 503:
                pytest.skip("no model loaded: " + response.text)
            assert "taken_at" in assert_problem(response, 422)["detail"]
        when = datetime.fromisoformat(text)
        exif_doors = doors if when.year >= 1000 else []  # strftime cannot write year 1 as EXIF wants it
        for path, scope, form in exif_doors:  # EXIF DateTimeOriginal with OffsetTimeOriginal
            response = service.client.post(
                path,
                files={"file": ("e.jpg", exif_photo(when, 200 + i), "image/jpeg")},
                data=form,
                headers=service.auth(scope),
            )
            detail = assert_problem(response, 422)["detail"]
            assert "EXIF" in detail and ("years" in detail or "ahead" in detail), detail
    assert case_count(service) == before and uploads(service) == []
    camera = next(iter(load_cameras(service.settings.configs_dir / "cameras.yaml", TAXONOMY))).id
    frame = service.client.post(
        f"/v1/cameras/{camera}/frames",
        content=encoded("jpg", 7, (320, 240)),
        headers={
            **service.auth("report"),
            "Content-Type": "image/jpeg",
            "X-Capture-Time": BAD_CAPTURE_TIMES[2],
        },
    )
    assert "X-Capture-Time" in assert_problem(frame, 422)["detail"]


# Found by the camera walk-through: pydantic reads a number, or a string of digits, as Unix seconds
# (milliseconds beyond 2e10), so a client sending the wrong unit got a date days or decades off,
# silently; the docs promise ISO 8601 with an offset. Years 1 and 9999 parse, and are refused as
# implausible (or not computable); the naive time is on nobody's clock.
NOT_ISO_TIMES: list[int | str] = [
    1733500000,
    "1733500000",
    1733500000000,
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "NaN",
    "",
    "2025-09-30T10:00:00",
]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("value", NOT_ISO_TIMES, ids=repr)
def test_a_time_that_is_not_iso_8601_with_an_offset_is_a_422_naming_the_field(
    service: Service, value: int | str
) -> None:
    camera = next(iter(load_cameras(service.settings.configs_dir / "cameras.yaml", TAXONOMY))).id
    frame = encoded("jpg", 7, (320, 240))
    path = f"/v1/cameras/{camera}/frames"
    header = service.client.post(
        path,
        content=frame,
        headers={**service.auth("report"), "Content-Type": "image/jpeg", "X-Capture-Time": str(value)},
    )
    if header.status_code == 503:
        pytest.skip("no model loaded: " + header.text)
    form = service.client.post(
        path,
        files={"file": ("f.jpg", frame, "image/jpeg")},
        data={"captured_at": str(value)},
        headers=service.auth("report"),
    )
    assert "X-Capture-Time" in assert_problem(header, 422)["detail"]
    assert "captured_at" in assert_problem(form, 422)["detail"]
    health = service.client.get("/v1/cameras", headers=service.auth("cases:read")).json()
    assert all(c["health"]["frames"] == 0 for c in health)  # nothing refused was counted or applied

    case_id = report(service)
    before = case_count(service)
    read = service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read"))
    transition = service.client.post(
        f"/v1/cases/{case_id}/transitions",
        json={"action": "confirm", "at": value},
        headers={**service.auth("cases:write"), "If-Match": read.headers["ETag"]},
    )
    assert "at" in assert_problem(transition, 422)["detail"]
    for query, name in (("/v1/cases", "since"), ("/v1/cases", "as_of"), ("/v1/stats", "until")):
        answer = service.client.get(query, params={name: str(value)}, headers=service.auth("cases:read"))
        assert name in assert_problem(answer, 422)["detail"], (query, name)
    if value != "":  # an empty optional form field is no field at all: the photo has no time then
        for door, scope, fields in (
            ("/v1/reports", "report", {"lat": "34.72265", "lon": "113.62762"}),
            (f"/v1/cases/{case_id}/evidence", "cases:write", {"role": "after"}),
        ):
            response = service.client.post(
                door,
                files={"file": ("t.jpg", encoded("jpg", 300, (320, 240)), "image/jpeg")},
                data={**fields, "taken_at": str(value)},
                headers=service.auth(scope),
            )
            assert "taken_at" in assert_problem(response, 422)["detail"], door
    assert case_count(service) == before and uploads(service) == []
    assert (
        service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read")).headers["ETag"]
        == read.headers["ETag"]
    )


aware_times = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=st.timezones()
) | st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).flatmap(
    lambda naive: st.integers(-14 * 60, 14 * 60).map(
        lambda minutes: naive.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    )
)
TIME_PARAMETERS = [
    ("/v1/cases", "since"),
    ("/v1/cases", "until"),
    ("/v1/cases", "as_of"),
    ("/v1/stats", "since"),
    ("/v1/stats", "until"),
    ("/open311/v2/requests.json", "start_date"),
    ("/open311/v2/requests.json", "end_date"),
]
DAY_PARAMETERS = [("/v1/stats/ranking", "day"), ("/v1/stats/daily", "since"), ("/v1/stats/daily", "until")]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_any_time_or_day_in_a_query_answers_200_or_a_problem(service: Service) -> None:
    report(service)

    @HTTP_FUZZ
    @given(st.sampled_from(TIME_PARAMETERS), aware_times)
    def instant(target: tuple[str, str], when: datetime) -> None:
        path, name = target
        response = service.client.get(path, params={name: when.isoformat()}, headers=service.auth("admin"))
        if response.status_code != 200:
            assert_problem(response, 400, 422)

    @HTTP_FUZZ
    @given(st.sampled_from(DAY_PARAMETERS), st.dates())
    def day(target: tuple[str, str], when: date) -> None:
        path, name = target
        response = service.client.get(path, params={name: when.isoformat()}, headers=service.auth("admin"))
        if response.status_code != 200:
            assert_problem(response, 400, 422)

    instant()
    day()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats()
    | st.integers(-(2**80), 2**80)
    | st.text(max_size=8)
    | st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "NaN"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
TRANSITION_FIELDS = ["action", "at", "operator", "note", "department", "event", "evidence_id", "extend_by"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_any_json_with_nan_or_huge_numbers_answers_without_a_server_error(service: Service) -> None:
    case_id = report(service)
    for action in ("confirm", "file", "dispatch", "start"):
        act(service, case_id, SERVICE_START, action)
    targets = [
        ("/v1/keys", "admin", ["name", "scopes", "rate_per_min"]),
        ("/labelstudio/predict", "annotate", ["tasks", "project", "label_config"]),
        (f"/v1/cases/{case_id}/transitions", "cases:write", TRANSITION_FIELDS),
    ]

    @HTTP_FUZZ
    @given(st.sampled_from(targets), st.data())
    def post(target: tuple[str, str, list[str]], data: st.DataObject) -> None:
        path, scope, fields = target
        body = data.draw(st.dictionaries(st.sampled_from(fields), json_values, max_size=4))
        if "transitions" in path:
            body["action"] = data.draw(st.sampled_from(["extend", "handle", "start", body.get("action")]))
        etag = service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read")).headers["ETag"]
        response = service.client.post(
            path,
            content=json.dumps(body),  # NaN and Infinity as Python's json writes them
            headers={**service.auth(scope), "If-Match": etag, "Content-Type": "application/json"},
        )
        assert response.status_code < 500 or response.status_code == 503, response.text[:300]
        if response.status_code >= 400:
            assert_problem(response, response.status_code)

    post()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_any_exif_capture_time_opens_a_case_only_when_plausible(service: Service) -> None:
    seen: dict[bool, int] = {}

    @settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(aware_times.filter(lambda t: t.year >= 1900), st.integers(0, 10**6))
    def upload(when: datetime, seed: int) -> None:
        response = service.client.post(
            "/v1/reports",
            files={"file": ("e.jpg", exif_photo(when, seed), "image/jpeg")},
            headers=service.auth("report"),
        )
        if response.status_code == 503:
            pytest.skip("no model loaded: " + response.text)
        plausible = 2000 <= when.year <= 2100 and when <= SERVICE_START + timedelta(minutes=5)
        seen[plausible] = seen.get(plausible, 0) + 1
        if plausible:
            assert response.status_code == 200, response.text
        else:
            assert "EXIF" in assert_problem(response, 422)["detail"]

    upload()
    assert seen.get(False, 0) > 5


# --- the command line: values no run can mean are refused before anything runs ---------------------

CLI_REFUSED = [
    (["scan", "photos", "--workers", "-2"], "--workers: must be 1 or more, got -2"),
    (["scan", "photos", "--batch", "0"], "--batch: must be 1 or more, got 0"),
    (["scan", "photos", "--max-pixels", "-1"], "--max-pixels: must be 1 or more"),  # was: every photo a bomb
    (["scan", "photos", "--stall-s", "nan"], "--stall-s: must be a finite number from 0, got nan"),
    (["scan", "photos", "--stall-s", "-1"], "--stall-s: must be a finite number from 0"),
    (["stats", "--since", "0001-01-01"], "--since: 0001-01-01 is outside the years"),  # was: a traceback
    (["stats", "--ranking", "9999-12-31"], "--ranking: 9999-12-31 is outside the years"),
    (["stats", "--since", "2027-01-01", "--until", "2026-01-01"], "--until 2026-01-01 must come after"),
    (["stats", "--worst", "-5"], "--worst: must be 1 or more, got -5"),
    (["stats", "--since", "yesterday"], "--since: expected a day YYYY-MM-DD, got 'yesterday'"),
    (["stats", "--until", "2026-02-30"], "--until: 2026-02-30: day is out of range for month"),
    (["calendar", "check", "--today", "9999-12-31"], "--today: 9999-12-31 is outside the years"),  # traceback
    (["calendar", "check", "--today", "0001-01-01"], "--today: 0001-01-01 is outside"),  # was: 'covered'
    (["serve", "--port", "99999"], "--port: must lie between 0 and 65535, got 99999"),
    (["ocr", "p.jpg", "--box", "a,b,c,d"], "--box: expected four numbers x1,y1,x2,y2"),  # was: a traceback
    (["ocr", "p.jpg", "--box", "nan,0,9,9"], "--box: expected four numbers"),  # was: a traceback
    (["ocr", "p.jpg", "--box", "10,10,5,5"], "--box: x2 must exceed x1"),  # was: an empty reading
    (["ocr", "--bench-rendered", "0"], "--bench-rendered: must be 1 or more, got 0"),  # OpenCV's assert
    (["ocr", "--bench-rendered", "48,x"], "--bench-rendered: expected a whole number, got 'x'"),
    (["ocr", "p.jpg", "--threads", "0"], "--threads: must be 1 or more, got 0"),
    (["stats", "--worst", "1" + "0" * 99 + "x"], "--worst: expected a whole number"),
    (["train", "--hours", "nan"], "--hours: must be a finite number above 0, got nan"),
    (["train", "--lr0", "-0.1"], "--lr0: must be a finite number above 0"),
    (["train", "--epochs", "0"], "--epochs: must be 1 or more, got 0"),
    (["watch", "--camera", "c", "--seconds", "inf"], "--seconds: must be a finite number above 0, got inf"),
    (["watch", "--camera", "c", "--speed", "-1"], "--speed: must be a finite number from 0"),
    (["data", "synth-flyers", "--out", "x", "--count", "0"], "--count: must be 1 or more"),
    (["data", "synth-flyers", "--out", "x", "--count", "5", "--val-share", "1.5"], "--val-share: must lie"),
    (["data", "synth-flyers", "--out", "x", "--count", "5", "--val-share", "nan"], "--val-share: must lie"),
    (["data", "synth-flyers", "--out", "x", "--count", "5", "--upscale", "0"], "--upscale: must be 1"),
    (["bench", "flyers", "--limit", "-1"], "--limit: must be 0 or more, got -1"),
    (["bench", "scan", "--size", "abc"], "--size: expected WxH, e.g. 4000x3000, got 'abc'"),  # traceback
    (["bench", "scan", "--size", "0x0"], "--size: 0x0: each side 1 to 65535 px"),  # a traceback
    (["bench", "scan", "--size", "100000x100000"], "at most 100,000,000 pixels"),  # ran out of memory
    (["evaluate", "--limit", "0"], "--limit: must be 1 or more"),
]


@pytest.mark.parametrize(("argv", "message"), CLI_REFUSED, ids=[" ".join(a)[:40] for a, _ in CLI_REFUSED])
def test_the_cli_refuses_values_no_run_can_mean(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from serve.cli.main import main

    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert refused.value.code == 2
    assert message in capsys.readouterr().err


CLI_FAILS = [
    (["stats", "--db", "sqlite:///{tmp}/typo.sqlite"], "no database file {tmp}/typo.sqlite"),
    (["data", "queue", "--from-db", "sqlite:///{tmp}/typo.sqlite", "--out", "{tmp}/q"], "no database file"),
    (["keys", "--db", "not a url", "list"], "'not a url' is not a database URL"),
    (["keys", "--db", "sqlite:///{tmp}/typo.sqlite", "list"], "no database file {tmp}/typo.sqlite"),
    (["keys", "--db", "sqlite:///{tmp}/typo.sqlite", "revoke", "abc"], "no database file"),
    (["users", "--db", "sqlite:///{tmp}/typo.sqlite", "list"], "no database file {tmp}/typo.sqlite"),
    (["users", "--db", "sqlite:///{tmp}/typo.sqlite", "disable", "ana"], "no database file"),
    (["keys", "--db", "sqlite:///{tmp}/\udcff.db", "list"], "not UTF-8 text; name the database"),  # GBK path
    (["keys", "--db", "postgresql://bureau:hunter2@127.0.0.1:1/cases", "list"], "bureau:***@127.0.0.1:1"),
    (["keys", "--db", "postgres://bureau:hunter2@db/cases", "list"], "no database driver here for it"),
    (["keys", "--db", "postgresql+nodriver://db/cases", "list"], "no database driver here for it"),
    (["keys", "--db", "postgresql://u@[::1/x", "list"], "is not a database URL"),  # port `:1/x`
    (["keys", "--db", "sqlite://", "list"], "an in-memory database keeps nothing"),
    (["stats", "--db", "sqlite:///:memory:"], "an in-memory database keeps nothing"),
    (["evaluate", "--unlabelled", "{tmp}", "--out", "/proc/no/look"], "streetorder evaluate: /proc/no"),
]


@pytest.mark.parametrize(("argv", "message"), CLI_FAILS, ids=[" ".join(a[:3])[:30] for a, _ in CLI_FAILS])
def test_a_database_or_folder_that_cannot_be_opened_is_one_line_and_no_new_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    from serve.cli.main import main

    assert main([a.format(tmp=tmp_path) for a in argv]) == 1
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err and "Traceback" not in err and "hunter2" not in err
    assert not (tmp_path / "typo.sqlite").exists()  # a reader never creates the database it looks for


@pytest.mark.parametrize("command", [["keys", "list"], ["stats"], ["serve", "--port", "0"]])
def test_a_file_that_is_no_database_is_one_line_and_left_as_it_was(
    tmp_path: Path, command: list[str]
) -> None:
    """A photo saved as cases.db, given as the database: SQLite's "file is not a database" was a
    traceback (from uvicorn's start-up for `serve`, which then exited); now one line, exit 1, and
    the file is not touched. A subprocess, so that a `serve` that does start cannot hang the suite."""
    import subprocess
    import sys

    not_a_database = tmp_path / "cases.db"
    not_a_database.write_bytes(JPEG)
    done = subprocess.run(
        [sys.executable, "-m", "serve.cli", command[0], "--db", f"sqlite:///{not_a_database}", *command[1:]],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        env={**os.environ, "STREETORDER_SECRET": "tests-only-secret-0123456789"},
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "cannot open the database (file is not a database)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not_a_database.read_bytes() == JPEG


def test_ctrl_c_is_one_line_and_exit_130(tmp_path: Path) -> None:
    """Ctrl-C in a long mode that has nothing to tidy (here the OCR benchmark) was a page of
    traceback ending in onnxruntime; now one line, exit 130, as scan and watch already did."""
    import signal
    import subprocess
    import sys
    import time

    running = subprocess.Popen(
        [sys.executable, "-m", "serve.cli", "ocr", "--bench-rendered", "48", "--per-height", "2000"],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a child started from a non-interactive shell ignores SIGINT: give it the default back
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(8)  # imports, the OCR model, and into the loop
    running.send_signal(signal.SIGINT)
    _, err = running.communicate(timeout=60)
    assert running.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "streetorder ocr: interrupted" and "Traceback" not in err


def test_output_cut_short_by_a_pipe_is_no_traceback() -> None:
    """`streetorder models list | head -1`: a reader that stops early closes the pipe; that was a
    BrokenPipeError traceback, now silence and exit 141 (128 + SIGPIPE), as shell tools give.
    The pipe is closed before the mode writes a byte, so the write fails every time."""
    import subprocess
    import sys

    running = subprocess.Popen(
        [sys.executable, "-m", "serve.cli", "models", "list"],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert running.stdout is not None
    running.stdout.close()
    err = running.stderr.read() if running.stderr else ""
    assert running.wait(timeout=120) == 141, err[-2000:]
    assert "Traceback" not in err and "BrokenPipe" not in err, err[-2000:]
