"""Streams: a video file the test writes, an MJPEG server on 127.0.0.1 that drops the connection and
changes the frame size, a real RTSP server (GStreamer's) that is killed and started again, an
address nobody answers, and `streetorder watch` on a file end to end."""

from __future__ import annotations

import base64
import codecs
import copy
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from select import select as wait_readable
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest
import yaml
from configured import CONFIGS, MODELS, ROOT, TAXONOMY
from sqlalchemy import select
from streets import NO_PICTURE, Scene, parked_car_frames
from unwritable import held_open, read_only

from vision.live.stream import (
    STREAM_STATES,
    Frame,
    NewestFrame,
    StreamReader,
    file_exists,
    frame_position,
    frame_rate,
    redact_url,
)

START = datetime(2026, 5, 6, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def write_video(path: Path, frames: list[np.ndarray], fps: float, fourcc: str = "MJPG") -> Path:
    """A video of `frames`: MJPEG (.avi) by default; "mp4v" writes an MP4 as cameras and phones do
    (MPEG-4 part 2 here), its index (moov) at the end."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def numbered(count: int, size: tuple[int, int] = (160, 90)) -> list[np.ndarray]:
    """Frames whose brightness encodes their index (JPEG keeps it to within a few levels)."""
    return [np.full((size[1], size[0], 3), 10 + 6 * k, dtype=np.uint8) for k in range(count)]


def take_all(reader: StreamReader, seconds: float) -> list[Frame]:
    frames, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        frame = reader.take(timeout=0.1)
        if frame is not None:
            frames.append(frame)
        elif not reader.running:
            break
    return frames


def test_newest_frame_buffer_drops_the_oldest() -> None:
    buffer = NewestFrame()
    image = np.zeros((2, 2, 3), np.uint8)
    assert buffer.put(Frame(image, START, 1)) is False
    assert buffer.put(Frame(image, START, 2)) is True  # frame 1 was never taken: dropped
    taken = buffer.take(0)
    assert taken is not None and taken.index == 2
    assert buffer.take(0.01) is None


def test_a_video_file_plays_with_its_own_clock(tmp_path: Path) -> None:
    video = write_video(tmp_path / "street.avi", numbered(30), fps=10)
    reader = StreamReader(str(video), file_start=START, file_speed=5).start()
    frames = take_all(reader, 10)
    assert reader.stats.state == "ended" and reader.stats.frames_read == 30
    assert len(frames) + reader.stats.dropped == 30
    offsets = [(f.captured_at - START).total_seconds() for f in frames]
    assert offsets == sorted(offsets) and offsets[-1] == pytest.approx(2.9)
    for frame in frames:  # the capture time is the frame's own position in the file
        index = round((frame.captured_at - START).total_seconds() * 10)
        assert abs(float(frame.image.mean()) - (10 + 6 * index)) < 4


def test_a_file_without_a_start_time_plays_on_its_own_clock_too(tmp_path: Path) -> None:
    """Without `file_start` a file's frames were stamped with the wall clock: played at `--speed 0`
    (or 10) a 3 s video lasted a few milliseconds of capture time, and every dwell with it. Now its
    frames lie at their position after the time reading began."""
    video = write_video(tmp_path / "street.avi", numbered(30), fps=10)
    reader = StreamReader(str(video), file_speed=0, clock=lambda: START).start()
    frames = take_all(reader, 10)
    assert reader.stats.state == "ended" and frames
    for frame in frames:
        index = round((frame.captured_at - START).total_seconds() * 10)
        assert abs(float(frame.image.mean()) - (10 + 6 * index)) < 4
    assert frames[-1].captured_at == START + timedelta(seconds=2.9)


def test_a_looped_file_reconnects_and_time_goes_on(tmp_path: Path) -> None:
    video = write_video(tmp_path / "loop.avi", numbered(10), fps=10)
    reader = StreamReader(str(video), file_start=START, file_speed=5, loop_file=True, backoff_s=(0.05, 0.1))
    reader.start()
    frames = take_all(reader, 1.5)
    reader.stop()
    assert reader.stats.reconnects >= 1 and reader.stats.frames_read >= 20
    times = [f.captured_at for f in frames]
    assert times == sorted(times) and times[-1] - START > timedelta(seconds=1)


class MjpegServer:
    """multipart/x-mixed-replace on 127.0.0.1: each connection sends `per_connection` frames and
    then drops (or, with `stall`, keeps the connection open and sends nothing more: a camera whose
    encoder hung); the second connection onwards sends larger frames (a camera switching streams).
    With `password`, a request without HTTP Basic credentials admin:password is answered 401; with
    `garbage`, each part is random bytes announced as a JPEG (a camera sending another format than it
    says, or a port that is no camera's)."""

    def __init__(
        self,
        per_connection: int = 15,
        *,
        stall: bool = False,
        password: str | None = None,
        garbage: bool = False,
    ) -> None:
        self.connections = 0
        self.refused = 0  # requests answered 401
        self.opened: list[float] = []  # monotonic time of each connection
        self.closing = threading.Event()
        self.password = password
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                expected = "Basic " + base64.b64encode(f"admin:{server.password}".encode()).decode()
                if server.password is not None and self.headers.get("Authorization") != expected:
                    server.refused += 1
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="camera"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                server.connections += 1
                server.opened.append(time.monotonic())
                size = (160, 90) if server.connections == 1 else (320, 180)
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for k in range(per_connection):
                        image = np.full((size[1], size[0], 3), (k * 15) % 255, np.uint8)
                        ok, data = cv2.imencode(".jpg", image)
                        assert ok
                        data = np.frombuffer(os.urandom(3000), np.uint8) if garbage else data
                        part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(
                            data
                        )
                        self.wfile.write(part + data.tobytes() + b"\r\n")
                        time.sleep(0.02)
                    if stall:
                        self.wfile.flush()
                        server.closing.wait(60)  # connected, silent
                except (BrokenPipeError, ConnectionResetError):
                    return
                self.close_connection = True  # forced disconnect mid-stream

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"

    def __enter__(self) -> MjpegServer:
        self.thread.start()
        return self

    def __exit__(self, *args: object) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mjpeg() -> Iterator[MjpegServer]:
    with MjpegServer() as server:
        yield server


def test_mjpeg_stream_survives_a_forced_disconnect_and_a_new_frame_size(mjpeg: MjpegServer) -> None:
    reader = StreamReader(mjpeg.url, backoff_s=(0.05, 0.2), timeout_s=3).start()
    sizes: set[tuple[int, ...]] = set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (reader.stats.reconnects < 2 or len(sizes) < 2):
        frame = reader.take(timeout=0.1)
        if frame is not None:
            sizes.add(frame.image.shape)
    reader.stop()
    assert reader.stats.reconnects >= 2 and mjpeg.connections >= 3
    assert sizes == {(90, 160, 3), (180, 320, 3)} and reader.stats.size_changes >= 1
    assert reader.stats.state == "stopped" and not reader.running


def test_a_stream_of_garbage_is_told_apart_from_a_closed_connection(mjpeg: MjpegServer) -> None:
    """A stream that answers and sends bytes that decode to no picture was told "the connection was
    closed", as one that sent pictures and hung up (the MJPEG server dropping after 15 frames)."""
    with MjpegServer(per_connection=2000, garbage=True) as garbage:
        readers = {
            "garbage": StreamReader(garbage.url, backoff_s=(0.05, 0.2), timeout_s=2).start(),
            "closed": StreamReader(mjpeg.url, backoff_s=(0.05, 0.2), timeout_s=2).start(),
        }
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(r.stats.last_error is None for r in readers.values()):
            readers["closed"].take(timeout=0.05)
        for reader in readers.values():
            reader.stop()
    assert readers["garbage"].stats.frames_read == 0
    assert readers["garbage"].stats.last_error == (
        "the stream answers but sends no picture that decodes as MJPG: not the format it announces, "
        "or no video at all"
    )
    assert readers["closed"].stats.frames_read > 0
    assert readers["closed"].stats.last_error == "the stream ended (the connection was closed)"


def test_a_flapping_camera_is_reconnected_ever_more_slowly(mjpeg: MjpegServer) -> None:
    """Each connection drops after 15 frames (about 0.3 s): short of stable_s, so the wait before the
    next one doubles (0.1, 0.2, 0.4, 0.8 s) instead of starting over at the shortest."""
    reader = StreamReader(mjpeg.url, backoff_s=(0.1, 0.8), stable_s=10, timeout_s=3).start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(mjpeg.opened) < 5:
        time.sleep(0.05)
    reader.stop()
    gaps = np.diff(mjpeg.opened[:5])
    assert len(gaps) == 4 and reader.stats.reconnects >= 4
    assert gaps[3] - gaps[0] >= 0.4  # 0.8 - 0.1 s of waiting more, whatever a connection takes


def test_a_camera_that_stalls_is_told_as_stalled_and_reconnected() -> None:
    """A camera that keeps the connection open and sends nothing more (a hung encoder): FFmpeg's read
    timeout ends the read after `timeout_s`, the stream is told `stalled` (it said `reconnecting`,
    as for a closed connection, and "ended or stalled"), and it is opened again. A read that blocked
    for good would fail the deadline here, not hang the suite (the reader is a daemon thread)."""
    with MjpegServer(per_connection=3, stall=True) as server:
        reader = StreamReader(server.url, backoff_s=(0.05, 0.1), timeout_s=1).start()
        states, deadline = set(), time.monotonic() + 15
        while time.monotonic() < deadline and not ("stalled" in states and reader.stats.reconnects >= 1):
            reader.take(timeout=0.05)
            states.add(reader.stats.state)
        reader.stop()
    assert "stalled" in states and reader.stats.reconnects >= 1 and server.connections >= 2
    assert reader.stats.last_error == "no frame for 1 s: the stream stalled"
    assert not reader.running


def silent_server() -> tuple[socket.socket, list[socket.socket]]:
    """A TCP port that accepts connections and never says a word (a camera whose firmware hung)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return listener, accepted


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_a_camera_that_accepts_and_says_nothing_is_unreachable_in_bounded_time(scheme: str) -> None:
    listener, accepted = silent_server()
    port = listener.getsockname()[1]
    url = f"{scheme}://admin:S3cret@127.0.0.1:{port}/Streaming/Channels/101"
    reader = StreamReader(url, backoff_s=(0.05, 0.1), timeout_s=1).start()
    try:
        deadline = time.monotonic() + 10
        while reader.stats.failed_opens < 2:  # each open given up after timeout_s, then tried again
            assert time.monotonic() < deadline, f"the open did not give up: {reader.stats}"
            time.sleep(0.05)
        assert reader.stats.state == "unreachable" and len(accepted) >= 2
        assert reader.stats.last_error == (
            f"cannot open {scheme}://admin:***@127.0.0.1:{port}/Streaming/Channels/101: no answer within 1 s"
        )
        assert "S3cret" not in reader._thread.name
    finally:
        started = time.monotonic()
        reader.stop()
        listener.close()
    assert time.monotonic() - started < 3 and not reader.running


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "rtsp://admin:S3cret@10.0.0.9/Streaming/Channels/101",
            "rtsp://admin:***@10.0.0.9/Streaming/Channels/101",
        ),
        (
            "rtsp://admin:S3c@r:et@10.0.0.9:554/cam/realmonitor?channel=1&subtype=0",
            "rtsp://admin:***@10.0.0.9:554/cam/realmonitor?channel=1&subtype=0",
        ),
        (
            "http://10.0.0.9/videostream.cgi?user=admin&pwd=S3cret&r=1",
            "http://10.0.0.9/videostream.cgi?user=admin&pwd=***&r=1",
        ),
        ("http://10.0.0.9/mjpg?PASSWORD=S3cret", "http://10.0.0.9/mjpg?PASSWORD=***"),
        ("rtsp://admin@10.0.0.9/live", "rtsp://admin@10.0.0.9/live"),
        ("rtsp://[fe80::1]:554/live", "rtsp://[fe80::1]:554/live"),
        ("/videos/a:b@c.avi", "/videos/a:b@c.avi"),
        (
            "cannot open rtsp://admin:S3cret@10.0.0.9/1 (was rtsp://root:S3cret@10.0.0.8/2)",
            "cannot open rtsp://admin:***@10.0.0.9/1 (was rtsp://root:***@10.0.0.8/2)",
        ),
    ],
)
def test_a_stream_address_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_password_comes_from_the_environment_and_reaches_the_camera(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`${CAM_PASS}` in an address is the environment variable: the camera (HTTP Basic, as
    Hikvision's MJPEG) answers only with it. An unset one is refused naming it."""
    monkeypatch.setenv("CAM_PASS", "S3cret")
    with MjpegServer(password="S3cret") as server:
        url = server.url.replace("http://", "http://admin:${CAM_PASS}@")
        reader = StreamReader(url, timeout_s=3).start()
        frames = take_frames(reader, 3, 15)
        reader.stop()
    assert len(frames) == 3 and server.refused >= 1  # asked for credentials, then given them
    monkeypatch.delenv("CAM_PASS")
    with pytest.raises(
        ValueError, match=r"environment variable CAM_PASS \(named as \$\{CAM_PASS\}\) is not set"
    ):
        StreamReader(url)


def test_a_camera_file_takes_its_stream_password_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from configured import TAXONOMY

    from vision.live.cameras import CameraConfigError, parse_cameras

    config = yaml.safe_load((CONFIGS / "cameras.yaml").read_text(encoding="utf-8"))
    config["cameras"][0]["stream"] = "rtsp://admin:${CAM_PASS}@10.0.0.9/Streaming/Channels/101"
    monkeypatch.setenv("CAM_PASS", "S3cret")
    camera = next(iter(parse_cameras(config, TAXONOMY, Path("cameras.yaml"))))
    assert camera.stream == "rtsp://admin:S3cret@10.0.0.9/Streaming/Channels/101"
    monkeypatch.delenv("CAM_PASS")
    with pytest.raises(CameraConfigError) as refused:
        parse_cameras(config, TAXONOMY, Path("cameras.yaml"))
    assert str(refused.value) == (
        "cameras.yaml: cameras[0].stream: environment variable CAM_PASS (named as ${CAM_PASS}) is not set"
    )


# --- a real RTSP server -------------------------------------------------------------------------

DEBIAN_PYTHON = Path("/usr/bin/python3")  # GStreamer's Python bindings are Debian packages (make rtsp)
RTSP_SERVER = Path(__file__).with_name("rtsp_server.py")


def rtsp_unavailable() -> str | None:
    """Why GStreamer's RTSP server cannot run here, or None when it can."""
    if not DEBIAN_PYTHON.exists():
        return f"no {DEBIAN_PYTHON} for GStreamer's Python bindings"
    probe = subprocess.run(
        [str(DEBIAN_PYTHON), "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
        capture_output=True,
        text=True,
        env=debian_env(),
    )
    if probe.returncode:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return f"GStreamer's RTSP server is not installed (`make rtsp` installs it): {last}"
    return None


def debian_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


class RtspServer:
    """tests/rtsp_server.py in its own process: serves `video` at rtsp://127.0.0.1:port/street."""

    def __init__(self, video: Path, port: int) -> None:
        self.url = f"rtsp://127.0.0.1:{port}/street"
        self.process = subprocess.Popen(
            [str(DEBIAN_PYTHON), str(RTSP_SERVER), str(video), str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=debian_env(),
        )
        assert self.process.stdout is not None
        ready, _, _ = wait_readable([self.process.stdout], [], [], 30)
        if not ready or self.process.stdout.readline().strip() != "ready":
            self.kill()
            raise RuntimeError(
                f"the RTSP server did not start: {self.process.stderr.read() if self.process.stderr else ''}"
            )

    def kill(self) -> None:
        """A forced disconnect: the server is gone at once, mid-stream."""
        self.process.kill()
        self.process.wait(10)


def take_frames(reader: StreamReader, count: int, seconds: float) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + seconds
    while len(frames) < count and time.monotonic() < deadline:
        frame = reader.take(timeout=0.1)
        if frame is not None:
            frames.append(frame)
    return frames


def rtsp_test_video(tmp_path: Path) -> tuple[Path, int, RtspServer]:
    """A real RTSP server streaming 30 s of frames whose brightness (20 + 6 k, k < 35) says which
    frame of the file each is, on a free port (skipped where GStreamer's server is missing)."""
    reason = rtsp_unavailable()
    if reason:
        pytest.skip(reason)
    frames = [np.full((176, 320, 3), 20 + 6 * (k % 35), np.uint8) for k in range(300)]
    video = write_video(tmp_path / "street.avi", frames, fps=10)
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as probe:
        port = probe.server_address[1]
    return video, port, RtspServer(video, port)


def test_a_real_rtsp_server_streams_a_file_and_is_found_again_after_a_forced_disconnect(
    tmp_path: Path,
) -> None:
    video, port, server = rtsp_test_video(tmp_path)
    reader = StreamReader(server.url, backoff_s=(0.2, 1.0), timeout_s=3).start()
    try:
        before = take_frames(reader, 20, 30)
        assert len(before) == 20 and reader.stats.state == "connected"
        for frame in before:  # whole frames of the file, decoded at their size
            assert frame.image.shape == (176, 320, 3)
            assert abs((frame.image.mean() - 20) / 6 - round((frame.image.mean() - 20) / 6)) < 0.5
        server.kill()
        deadline = time.monotonic() + 20
        while reader.stats.state == "connected":  # stalled, reconnecting or unreachable
            assert time.monotonic() < deadline, "the reader did not notice the server was gone"
            reader.take(timeout=0.1)
        while reader.stats.failed_opens == 0:  # nobody answers at the address for a while
            assert time.monotonic() < deadline, "the reader did not try again"
            time.sleep(0.1)
        server = RtspServer(video, port)
        after = take_frames(reader, 20, 30)
        assert len(after) == 20 and reader.stats.reconnects >= 1 and reader.stats.state == "connected"
        assert after[0].captured_at > before[-1].captured_at  # stamped on arrival: time goes on
    finally:
        reader.stop()
        server.kill()


def test_a_real_rtsp_server_that_freezes_is_told_as_stalled_and_found_again(tmp_path: Path) -> None:
    """The RTSP server stopped (SIGSTOP: its sockets open, nothing sent, as a camera whose firmware
    hung): the read gives up after `timeout_s`, the stream is `stalled`, then `unreachable` while
    the frozen server does not answer a new session; resumed, it is read again."""
    _, _, server = rtsp_test_video(tmp_path)
    reader = StreamReader(server.url, backoff_s=(0.2, 0.5), timeout_s=2).start()
    try:
        assert len(take_frames(reader, 5, 30)) == 5
        os.kill(server.process.pid, signal.SIGSTOP)
        states, deadline = set(), time.monotonic() + 20
        while not {"stalled", "unreachable"} <= states:
            assert time.monotonic() < deadline, f"a frozen server was not told: {states}"
            reader.take(timeout=0.05)
            states.add(reader.stats.state)
        os.kill(server.process.pid, signal.SIGCONT)
        assert len(take_frames(reader, 5, 30)) == 5 and reader.stats.reconnects >= 1
    finally:
        reader.stop()
        os.kill(server.process.pid, signal.SIGCONT)
        server.kill()


def test_a_camera_rebooted_mid_violation_keeps_its_case_open(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A real RTSP camera with a car parked at the kerb is killed once the car's case is filed and
    started again after longer than `clear_after_s`: the gap was counted as the place clear, and the
    first frame after the reconnect proposed the case `resolved` with the car in its after-photo (a
    camera reboot of a minute or two, with the defaults). The reader says so once each way (OpenCV
    printed a warning at each failed retry), the reconnect is counted, and the case goes on: no
    after-photo, no second case."""
    from serve.cases.cameras import CameraHub
    from serve.cases.db import open_database
    from serve.cases.findings import load_case_rules
    from serve.cases.orm import Case, Evidence
    from serve.cases.settings import get_settings
    from serve.cases.watch import CameraWatcher, load_service_cameras
    from vision.detect.backends import load_detector
    from vision.detect.registry import CURRENT

    pictures = parked_car_frames()
    if pictures is None:
        pytest.skip("no traffic-cams and vehicles-in datasets beside the checkout")
    reason = rtsp_unavailable()
    if reason:
        pytest.skip(reason)
    try:
        detector = load_detector(CURRENT, models_dir=MODELS, taxonomy=TAXONOMY)
    except Exception as err:
        pytest.skip(f"the registry's current model is not installed ({err})")
    video = write_video(tmp_path / "kerb.avi", [pictures[0]] * 240, fps=4)  # 60 s of the parked car
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as probe:
        port = probe.server_address[1]
    zone = {"id": "kerb", "rule": "no_parking", "polygon": [[0.2, 0.5], [0.6, 0.5], [0.6, 0.95], [0.2, 0.95]]}
    cameras = {
        "rules": {"no_parking": {"detect": "objects", "classes": ["car"], "min_dwell_s": 2}},
        "cameras": [
            {
                "id": "kerb-cam",
                "lat": 34.72265,
                "lon": 113.62762,
                "cases": {"clear_after_s": 3, "verify": "any"},
                "dwell": {"refind_s": 3},
                "zones": [zone],
            }
        ],
    }
    config = tmp_path / "cameras.yaml"
    config.write_text(yaml.safe_dump(cameras), encoding="utf-8")
    monkeypatch.setenv("STREETORDER_EVIDENCE_DIR", str(tmp_path / "evidence"))
    get_settings.cache_clear()
    rules = load_case_rules(get_settings())
    hub = CameraHub(load_service_cameras(config, rules), rules.taxonomy, tmp_path / "evidence")
    sessions = open_database(f"sqlite:///{tmp_path / 'watch.db'}")
    caplog.set_level(logging.WARNING, logger="streetorder.stream")

    def cases() -> list[Any]:
        with sessions() as session:
            return [
                (
                    case.id,
                    [e.role for e in session.scalars(select(Evidence).where(Evidence.case_id == case.id))],
                )
                for case in session.scalars(select(Case))
            ]

    server = RtspServer(video, port)
    reader = StreamReader(server.url, backoff_s=(0.2, 1.0), timeout_s=3)
    watcher = CameraWatcher(hub, "kerb-cam", detector, sessions, rules, reader).start()
    try:
        deadline = time.monotonic() + 60
        while not cases():
            assert time.monotonic() < deadline and watcher.running, "the parked car was not filed"
            time.sleep(0.2)
        server.kill()
        while reader.stats.state == "connected":
            assert time.monotonic() < deadline, "the reader did not notice the camera was gone"
            time.sleep(0.1)
        time.sleep(4)  # down for longer than clear_after_s
        server = RtspServer(video, port)
        analysed = watcher.analysed
        while watcher.analysed < analysed + 4:  # 2 s of frames after the reconnect
            assert time.monotonic() < deadline + 30, "the camera was not read again"
            time.sleep(0.1)
    finally:
        watcher.stop()
        server.kill()
        get_settings.cache_clear()
    assert [(case_id, roles[:1]) for case_id, roles in cases()] == [(1, ["finding"])]
    assert "after" not in cases()[0][1]  # not proposed resolved with the car still there
    assert hub.get("kerb-cam").health.reconnects == 1
    told = [r.getMessage() for r in caplog.records if r.name == "streetorder.stream"]
    assert len(told) == 2 and " lost: " in told[0] and ": back after " in told[1], told
    assert reader.stats.failed_opens >= 1 and "WARN" not in capfd.readouterr().err


def test_an_unreachable_camera_is_retried_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    """Retried ever more slowly, and told once (it was told by nothing but the stream state)."""
    caplog.set_level(logging.WARNING, logger="streetorder.stream")
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as probe:
        port = probe.server_address[1]  # a port that is closed once the probe is gone
    reader = StreamReader(f"http://127.0.0.1:{port}/x.mjpg", backoff_s=(0.05, 0.4), timeout_s=1).start()
    time.sleep(1.5)
    reader.stop()
    # delays 0.05, 0.1, 0.2, 0.4, 0.4 ...: a handful of tries, not a busy loop
    assert 3 <= reader.stats.failed_opens <= 12
    assert reader.stats.frames_read == 0 and reader.stats.last_error is not None
    (told,) = [r.getMessage() for r in caplog.records if r.name == "streetorder.stream"]
    assert told.startswith(f"stream http://127.0.0.1:{port}/x.mjpg lost: cannot open ") and "retrying" in told


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "no such file"),
        (b"", "the file is empty (0 bytes)"),
        (b"hello, not a video", "no frame could be decoded"),
    ],
)
def test_a_file_that_is_no_video_ends_at_once_with_the_reason(
    tmp_path: Path, content: bytes | None, error: str
) -> None:
    """A camera that cannot be reached is retried; a file does not come back, so it ends."""
    video = tmp_path / "clip.jpg"  # a name OpenCV's FFmpeg opens as MJPEG, whatever is in it
    if content is not None:
        video.write_bytes(content)
    reader = StreamReader(str(video), backoff_s=(0.05, 0.1)).start()
    deadline = time.monotonic() + 5
    while reader.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not reader.running and reader.stats.state == "ended"
    assert reader.stats.failed_opens <= 1 and reader.stats.frames_read == 0
    assert error in (reader.stats.last_error or "")


@pytest.mark.parametrize(
    "name",
    [
        b"street.avi",
        "街道 东门.avi".encode(),  # UTF-8, with a space
        "街道摄像头.avi".encode("gbk"),  # copied from a Windows recorder: not UTF-8 (crashed OpenCV)
    ],
)
def test_a_video_file_plays_whatever_its_name(tmp_path: Path, name: bytes) -> None:
    video = os.fsencode(tmp_path) + b"/" + name
    os.rename(write_video(tmp_path / "clip.avi", numbered(5), fps=5), video)
    reader = StreamReader(os.fsdecode(video), file_start=START, file_speed=0).start()  # as argv gives it
    frames = take_all(reader, 10)
    assert reader.stats.state == "ended" and reader.stats.frames_read == 5
    assert len(frames) + reader.stats.dropped == 5 and reader.stats.last_error is None


def write_raw_mjpeg(path: Path, frames: list[np.ndarray]) -> Path:
    """JPEGs one after another, as a DVR export or `ffmpeg -f mjpeg` writes them: no container, no rate."""
    path.write_bytes(b"".join(cv2.imencode(".jpg", frame)[1].tobytes() for frame in frames))
    return path


def test_a_raw_mjpeg_file_plays_at_the_rate_it_is_given(tmp_path: Path) -> None:
    """A raw MJPEG stream stores no rate and OpenCV plays it at 25 frames a second: a camera's
    2-fps export lasted a twelfth of its real time, and so did every dwell in it."""
    video = write_raw_mjpeg(tmp_path / "export.mjpeg", numbered(10))
    guessing = StreamReader(str(video), file_start=START, file_speed=0).start()
    assumed = take_all(guessing, 10)
    assert assumed[-1].captured_at == START + timedelta(seconds=9 / 25)  # what OpenCV assumes
    assert guessing.stats.rate_assumed == 25  # told by `watch`, which printed nothing of it
    reader = StreamReader(str(video), file_start=START, file_speed=0, file_fps=2).start()
    frames = take_all(reader, 10)
    assert reader.stats.state == "ended" and reader.stats.frames_read == 10
    assert reader.stats.rate_assumed is None
    contained = write_video(tmp_path / "export.avi", numbered(10), fps=2)  # a container stores its rate
    kept = StreamReader(str(contained), file_start=START, file_speed=0)
    take_all(kept.start(), 10)
    assert kept.stats.rate_assumed is None
    for frame in frames:  # frame n lies n / 2 seconds in
        index = round((frame.captured_at - START).total_seconds() * 2)
        assert abs(float(frame.image.mean()) - (10 + 6 * index)) < 4
    assert frames[-1].captured_at == START + timedelta(seconds=4.5)


@pytest.mark.parametrize("rate", [0.0, -2.0, float("nan"), float("inf")])
def test_a_file_rate_that_is_no_rate_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="positive number"):
        StreamReader("clip.mjpeg", file_fps=rate)


@pytest.mark.parametrize("url", ["rtsp://192.0.2.1/\udcbd\udcd6", "http://192.0.2.1/\udcff.mjpg"])
def test_an_address_that_is_not_utf8_is_refused_with_the_reason(url: str) -> None:
    with pytest.raises(ValueError, match="not UTF-8"):
        StreamReader(url)


@pytest.mark.parametrize(
    ("reported", "rate"), [(30.0, 30.0), (0.0, 25.0), (float("nan"), 25.0), (90000.0, 25.0), (-5.0, 25.0)]
)
def test_a_frame_rate_that_means_nothing_is_taken_as_25(reported: float, rate: float) -> None:
    assert frame_rate(reported) == rate


@pytest.mark.parametrize(
    ("reported_ms", "previous_s", "position_s"),
    [
        (10500.0, 10, 10.5),
        (0.0, None, 0.0),  # the first frame
        (float("nan"), None, 0.04),
        (float("nan"), 10, 10.04),
        (-40.0, 10, 10.04),
        (float("inf"), 10, 10.04),
        (1500.0, 10, 10.04),  # back in time: a joined recording starting at 0 again
        (10000.0, 10, 10.04),  # the same position again
    ],
)
def test_a_frame_without_a_position_lies_one_frame_after_the_last(
    reported_ms: float, previous_s: float | None, position_s: float
) -> None:
    previous = None if previous_s is None else timedelta(seconds=previous_s)
    position = frame_position(reported_ms, previous, 25.0)
    assert position.total_seconds() == pytest.approx(position_s)


def test_segments_joined_into_one_file_go_on_in_time(tmp_path: Path) -> None:
    """Two MPEG-TS recordings joined into one file (a DVR's export, `cat a.ts b.ts`), the second of
    another frame size: its timestamps start at 0 again. Its frames were stamped from the file's
    start again, before the last one: late, every one, until the first segment's length had passed.
    Now they go on one frame after another."""
    parts = []
    for name, size in (("a.ts", (160, 90)), ("b.ts", (120, 90))):
        writer = cv2.VideoWriter(
            str(tmp_path / name), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"mpg2"), 10, size
        )
        assert writer.isOpened()
        for frame in numbered(20, size):
            writer.write(frame)
        writer.release()
        parts.append((tmp_path / name).read_bytes())
    video = tmp_path / "export.ts"
    video.write_bytes(b"".join(parts))
    reader = StreamReader(str(video), file_start=START, file_speed=0).start()
    frames = take_all(reader, 20)
    assert reader.stats.state == "ended" and len(frames) + reader.stats.dropped >= 38
    times = [f.captured_at for f in frames]
    assert times == sorted(set(times))  # each after the one before
    assert times[-1] - START >= timedelta(seconds=3.7)


# --- footage a bureau hands in -------------------------------------------------------------------

TRAFFIC_CAMS = ROOT.parent / "shared" / "datasets" / "traffic-cams" / "images" / "val"


def street_photos(count: int, size: tuple[int, int] = (160, 96)) -> list[np.ndarray]:
    """Real traffic-camera frames (the synthetic street where the data set is not there), each its
    own picture so a frame can be told from its neighbours."""
    photos = sorted(TRAFFIC_CAMS.glob("*.jpg"))[:count] if TRAFFIC_CAMS.is_dir() else []
    images = [cv2.imread(str(path)) for path in photos] or [Scene(60).frame(k)[0] for k in range(count)]
    return [cv2.resize(images[k % len(images)], size) for k in range(count)]


def rotate_on_display(path: Path) -> Path:
    """Mark an MP4's video as shown turned 90 degrees clockwise, as a phone held upright stores its
    picture: landscape pixels and a display matrix in the track header (ffprobe: rotation -90)."""
    data = bytearray(path.read_bytes())
    header = data.index(b"tkhd") + 4
    assert data[header] == 0  # version 0: the matrix lies 40 bytes in
    matrix = (0, 0x10000, 0, -0x10000, 0, 0, data[header + 80 : header + 84], 0, 0x40000000)
    height = int.from_bytes(matrix[6], "big")  # the track's height (16.16) moves the origin
    data[header + 40 : header + 76] = b"".join(
        v.to_bytes(4, "big", signed=True) for v in (*matrix[:6], height, *matrix[7:])
    )
    path.write_bytes(bytes(data))
    return path


def test_a_phone_video_held_upright_is_read_upright(tmp_path: Path) -> None:
    """A portrait phone video is landscape pixels with a rotation in its header: the frames (and so
    the zones, normalised to the frame, and the evidence, cropped from it) are the picture the
    person saw, not the stored one lying on its side."""
    stored = street_photos(6, (160, 96))
    video = rotate_on_display(write_video(tmp_path / "phone.mp4", stored, fps=5, fourcc="mp4v"))
    reader = StreamReader(str(video), file_start=START, file_speed=0).start()
    frames = take_all(reader, 10)
    assert reader.stats.state == "ended" and len(frames) == 6 and reader.stats.size == (96, 160)
    for frame, picture in zip(frames, stored, strict=True):
        upright = cv2.rotate(picture, cv2.ROTATE_90_CLOCKWISE)
        assert np.abs(frame.image.astype(int) - upright).mean() < 12  # MPEG-4 at its default quality
        assert (
            np.abs(frame.image.astype(int) - cv2.rotate(picture, cv2.ROTATE_90_COUNTERCLOCKWISE)).mean() > 25
        )


def test_a_file_read_as_fast_as_it_is_analysed_drops_no_frame(tmp_path: Path) -> None:
    """`--speed 0` reads a file as fast as it can: the reader decoded far ahead of the analysis and
    replaced frame after frame in the newest-frame buffer (18 of these 20), so which frames were
    judged, and how far apart, hung on the machine's speed. Now each frame waits until the one before
    it was taken."""
    video = write_video(tmp_path / "street.avi", numbered(20), fps=10)
    reader = StreamReader(str(video), file_start=START, file_speed=0).start()
    frames = []
    while (frame := reader.take(timeout=2)) is not None:
        frames.append(frame)
        time.sleep(0.03)  # an analysis slower than the decoder
    assert reader.stats.dropped == 0 and reader.stats.frames_read == 20
    assert [f.captured_at for f in frames] == [START + timedelta(seconds=k / 10) for k in range(20)]
    for k, frame in enumerate(frames):
        assert abs(float(frame.image.mean()) - (10 + 6 * k)) < 4


def encoded(path: Path, frames: list[np.ndarray], codec: str, pix_fmt: str, pts_ms: list[int]) -> Path:
    """A video FFmpeg encodes (PyAV) with the frame times given in milliseconds: a phone's variable
    frame rate, a recorder's clock-based timestamps, HEVC or 10 bits that OpenCV does not write."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for image, pts in zip(frames, pts_ms, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format=pix_fmt)
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.mark.parametrize(
    ("codec", "pix_fmt", "pts_ms", "size", "seconds"),
    [  # frame times as the file has them, the size it has, where each frame lies in it
        ("libx264", "yuv420p", [0, 100, 150, 1150, 1200, 3200], (160, 96), [0, 0.1, 0.15, 1.15, 1.2, 3.2]),
        ("libx265", "yuv420p10le", [0, 100, 200, 300], (160, 96), [0, 0.1, 0.2, 0.3]),
        ("libx264", "yuv420p", [36_000_000 + 500 * k for k in range(4)], (160, 96), [0, 0.5, 1, 1.5]),
        ("libx264", "yuv420p", [0, 1000], (3840, 2160), [0, 1]),
    ],
    ids=["variable frame rate", "HEVC 10 bit", "timestamps from 10 h", "4K"],
)
def test_footage_is_judged_by_where_each_frame_lies_in_it(
    tmp_path: Path,
    codec: str,
    pix_fmt: str,
    pts_ms: list[int],
    size: tuple[int, int],
    seconds: list[float],
) -> None:
    """A phone's variable frame rate keeps its gaps (a dwell counts the seconds that passed, not
    frames); HEVC in 10 bits arrives as the 8-bit BGR the rules take; a recorder whose timestamps
    start at its clock (10 hours in) starts at --file-start; a 4K frame passes whole."""
    photos = street_photos(len(pts_ms), size)
    video = encoded(tmp_path / "clip.mp4", photos, codec, pix_fmt, pts_ms)
    reader = StreamReader(str(video), file_start=START, file_speed=0).start()
    frames = take_all(reader, 30)
    assert reader.stats.state == "ended" and reader.stats.last_error is None and reader.stats.dropped == 0
    assert [f.captured_at for f in frames] == [START + timedelta(seconds=s) for s in seconds]
    for frame, photo in zip(frames, photos, strict=True):
        assert frame.image.dtype == np.uint8 and frame.image.shape == photo.shape
        assert np.abs(frame.image.astype(int) - photo).mean() < 12


def image_sequence(folder: Path, count: int) -> str:
    """Numbered images as `ffmpeg -i clip.mp4 frames/img%04d.jpg` writes them."""
    folder.mkdir()
    for k, image in enumerate(numbered(count)):
        cv2.imwrite(str(folder / f"img{k + 1:04d}.jpg"), image)
    return str(folder / "img%04d.jpg")


def empty_file(folder: Path) -> Path:
    (folder / "clip.mp4").write_bytes(b"")
    return folder / "clip.mp4"


def cut_mp4(folder: Path) -> Path:
    """The camera lost power, the copy stopped: an MP4 writes its index (moov) last, and it is gone."""
    whole = write_video(folder / "whole.mp4", street_photos(20), fps=10, fourcc="mp4v").read_bytes()
    (folder / "clip.mp4").write_bytes(whole[: len(whole) // 2])
    return folder / "clip.mp4"


def sound_only(folder: Path) -> Path:
    """An MP4 holding an AAC track and no picture (a recorder's voice memo), written by FFmpeg."""
    av = pytest.importorskip("av")  # PyAV: OpenCV writes no sound
    with av.open(str(folder / "clip.m4a"), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        for k in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, k * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return folder / "clip.m4a"


@pytest.mark.parametrize(
    ("made", "error"),
    [
        (empty_file, "the file is empty (0 bytes)"),
        (
            cut_mp4,
            "an MP4/MOV without its index (no moov box): the recording was cut off before it was finished",
        ),
        (sound_only, "an MP4/MOV with no video track (sound only)"),
        (lambda folder: folder / "gone.mp4", "no such file"),
        (lambda folder: folder / "img%04d.jpg", "no such file"),
    ],
    ids=["zero bytes", "cut before its index", "sound only", "missing", "no image of a sequence"],
)
def test_a_file_that_is_no_video_says_what_it_is(
    tmp_path: Path, made: Callable[[Path], Path], error: str
) -> None:
    """Each said `not a video it can decode`: nothing a person could act on."""
    video = str(made(tmp_path))
    reader = StreamReader(video, file_start=START, file_speed=0).start()
    take_all(reader, 10)
    assert reader.stats.state == "ended" and reader.stats.frames_read == 0
    assert reader.stats.last_error == f"cannot open {video}: {error}"


def test_a_file_cut_short_is_read_to_the_cut_and_told(tmp_path: Path) -> None:
    """A copy that stopped: its header still counts every frame. The frames up to the cut are
    judged; it ended as if whole, and nobody learnt the footage was incomplete."""
    whole = write_video(tmp_path / "whole.avi", street_photos(20), fps=10).read_bytes()
    video = tmp_path / "copy.avi"
    video.write_bytes(whole[: len(whole) * 2 // 3])
    reader = StreamReader(str(video), file_start=START, file_speed=0).start()
    frames = take_all(reader, 10)
    assert reader.stats.state == "ended" and 0 < len(frames) < 20
    assert reader.stats.last_error == (
        f"{video} ended after {len(frames)} of its 20 frames: "
        "the file is cut short (a copy or a recording that stopped)"
    )


def test_a_recording_whose_clock_jumps_a_day_ahead_is_not_told_cut_short(tmp_path: Path) -> None:
    """A recorder's clock set a day on mid-recording: FFmpeg estimates the frame count from the file's
    length (a day), and the whole file was told `ended after 8 of its 172808 frames: the file is cut
    short`. Its frames lie at their positions, the jump kept (the rules hold and judge it)."""
    ffmpeg = pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe()
    plain = write_video(tmp_path / "plain.avi", street_photos(8), fps=2)
    video = tmp_path / "jump.mkv"
    jump = "setpts='if(gte(N,4),PTS+86400/TB,PTS)'"  # from the 5th frame on, a day later
    subprocess.run(
        [ffmpeg, "-loglevel", "error", "-i", str(plain), "-vf", jump, "-c:v", "mjpeg", str(video)], check=True
    )
    reader = StreamReader(str(video), file_start=START, file_speed=0).start()
    frames = take_all(reader, 10)
    assert reader.stats.state == "ended" and len(frames) == 8
    assert frames[4].captured_at - frames[3].captured_at == timedelta(days=1, seconds=0.5)
    assert reader.stats.last_error is None


def test_an_image_sequence_plays_at_the_rate_it_is_given(tmp_path: Path) -> None:
    sequence = image_sequence(tmp_path / "frames", 6)
    assert file_exists(sequence) and not file_exists(sequence.replace("img", "pic"))
    reader = StreamReader(sequence, file_start=START, file_speed=0, file_fps=1).start()
    frames = take_all(reader, 10)
    assert reader.stats.state == "ended" and reader.stats.frames_read == 6 and reader.stats.dropped == 0
    assert [f.captured_at for f in frames] == [START + timedelta(seconds=k) for k in range(6)]


# --- streetorder watch, end to end ---------------------------------------------------------------


def stall_cameras(video: Path) -> dict[str, Any]:
    """A cameras file with one camera on `video` (a `Scene` with a stall), whose sidewalk zone's
    occupancy rule files a street-vending case once the stall has stood 40 s."""
    return {
        "rules": {
            "sidewalk": {
                "detect": "occupancy",
                "event": "street_vending",
                "min_area": 0.04,
                "min_dwell_s": 40,
            }
        },
        "cameras": [
            {
                "id": "file-cam",
                "lat": 34.72265,
                "lon": 113.62762,
                "analyse_fps": 1,
                "stream": str(video),
                "cases": {"clear_after_s": 20, "verify": "any"},
                "dwell": {"refind_s": 20},
                "occupancy": {
                    "long_sample_s": 10,
                    "long_samples": 5,
                    "short_tau_s": 2,
                    "mask_classes": [],
                },
                "zones": [
                    {
                        "id": "walk",
                        "rule": "sidewalk",
                        "polygon": [[0.05, 0.6], [0.95, 0.6], [0.95, 0.98], [0.05, 0.98]],
                    }
                ],
            }
        ],
    }


def test_watch_turns_a_stall_in_a_video_into_one_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from serve.cases.cameras import CameraHub
    from serve.cases.db import open_database
    from serve.cases.findings import load_case_rules
    from serve.cases.orm import CameraState, Case, Evidence
    from serve.cases.settings import get_settings
    from serve.cases.watch import load_service_cameras
    from serve.cli.main import main
    from vision.detect.registry import CURRENT, find_model

    try:
        find_model(CURRENT, models_dir=MODELS)
    except Exception as err:
        pytest.skip(f"the registry's current model is not installed ({err})")
    scene = Scene(100, fps=1, stall=(35, 200), cars=False)
    # 2 frames a second in the file, analysed at 1 fps: every other frame is skipped
    video = write_video(tmp_path / "stall.avi", [scene.frame(k / 2)[0] for k in range(200)], fps=2)
    cameras = stall_cameras(video)
    other = {k: v for k, v in copy.deepcopy(cameras["cameras"][0]).items() if k != "stream"}
    other["id"] = "other-cam"
    cameras["cameras"].append(other)  # watched by another process: its saved state is not this one's
    config = tmp_path / "cameras.yaml"
    config.write_text(yaml.safe_dump(cameras), encoding="utf-8")
    db_url = f"sqlite:///{tmp_path / 'watch.db'}"
    monkeypatch.setenv("STREETORDER_EVIDENCE_DIR", str(tmp_path / "evidence"))
    get_settings.cache_clear()
    rules = load_case_rules(get_settings())
    others = CameraHub(load_service_cameras(config, rules), rules.taxonomy, tmp_path)
    others.get("other-cam").rules.last_at = (START + timedelta(hours=2)).timestamp()
    others.save(open_database(db_url))
    with open_database(db_url)() as session:
        saved_before = session.get(CameraState, "other-cam").saved_at
    try:
        code = main(
            [
                "watch",
                "--camera",
                "file-cam",
                "--cameras",
                str(config),
                "--db",
                db_url,
                "--file-start",
                START.isoformat(),
                "--speed",
                "10",
                "--seconds",
                "60",
            ]
        )
    finally:
        get_settings.cache_clear()
    assert code == 0
    summary = capsys.readouterr().out
    analysed, skipped, dropped = (
        int(summary.split(f" {word}")[0].rsplit(" ", 1)[1]) for word in ("frames", "skipped", "dropped")
    )
    # each frame analysed, skipped (2 a second in the file, analysed at 1) or dropped (analysis slower
    # than the file plays); never counted twice
    assert analysed + skipped + dropped == 200 and 40 <= analysed <= 101
    with open_database(db_url)() as session:
        (case,) = session.scalars(select(Case)).all()
        assert (case.event, case.source, case.camera_id) == ("street_vending", "video", "file-cam")
        # the camera learns its background for 30 s (3 of 5 samples 10 s apart); in the video the stall
        # stands from 35 s: a few seconds to settle, then 40 s of dwell
        assert START + timedelta(seconds=75) <= case.first_seen_at <= START + timedelta(seconds=87)
        evidence = session.scalars(select(Evidence).where(Evidence.case_id == case.id)).all()
        assert evidence[0].crop_path and Path(evidence[0].crop_path).is_file()
        assert session.get(CameraState, "other-cam").saved_at == saved_before  # not overwritten at exit


def test_watch_stopped_while_the_database_cannot_be_written_keeps_the_waiting_case_in_a_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stall stands from 35 s; the database cannot be written (its file and folder read-only) from
    60 s, when the watch of the first minute has stopped and saved, until the second watch ends at
    100 s: the stall's case (started about 80 s) waits with the camera, and the watch's last save
    fails too. Its state with the waiting event is kept in a file named in one line (lost before:
    the save raised and the next start went on from the state of 60 s, the stall's incident unknown
    to it); the next start with the database back files the case once, with its own capture time
    and photo, and removes the file. A file cut short, or another camera's, is refused in one line
    and left in place."""
    from serve.cases.cameras import CameraHub, spill_path
    from serve.cases.db import open_database
    from serve.cases.evidence import evidence_file
    from serve.cases.findings import load_case_rules
    from serve.cases.orm import CameraState, Case, Evidence
    from serve.cases.settings import get_settings
    from serve.cases.watch import load_service_cameras
    from serve.cli.main import main
    from vision.core.files import file_sha256
    from vision.detect.registry import CURRENT, find_model

    try:
        find_model(CURRENT, models_dir=MODELS)
    except Exception as err:
        pytest.skip(f"the registry's current model is not installed ({err})")
    home = Path(tempfile.mkdtemp(prefix="streetorder-spill-"))  # /tmp: nobody reaches it
    home.chmod(0o755)
    try:
        scene = Scene(110, fps=1, stall=(35, 200), cars=False)
        videos = {  # 2 frames a second: the first minute, to 100 s, and 10 s more
            span: write_video(home / f"{span[0]}.avi", [scene.frame(k / 2)[0] for k in range(*span)], fps=2)
            for span in ((0, 120), (120, 200), (200, 220))
        }
        config = home / "cameras.yaml"
        config.write_text(yaml.safe_dump(stall_cameras(videos[(0, 120)])), encoding="utf-8")
        (home / "db").mkdir()
        db_url = f"sqlite:///{home / 'db' / 'watch.db'}"
        for writable in ("evidence", "cache"):  # all but the database, to `nobody` too
            (home / writable).mkdir(mode=0o777)
            (home / writable).chmod(0o777)
        monkeypatch.setenv("STREETORDER_EVIDENCE_DIR", str(home / "evidence"))
        monkeypatch.setenv("STREETORDER_CACHE_DIR", str(home / "cache"))
        get_settings.cache_clear()

        def watch(span: tuple[int, int]) -> tuple[int, str]:
            started = START + timedelta(seconds=span[0] / 2)
            played = ["--stream", str(videos[span]), "--file-start", started.isoformat(), "--speed", "0"]
            code = main(["watch", "--camera", "file-cam", "--cameras", str(config), "--db", db_url, *played])
            return code, capsys.readouterr().err

        assert watch((0, 120))[0] == 0
        codecs.lookup(
            "cp437"
        )  # zipfile's, read as the saved state is: `nobody` cannot import the stdlib here
        spill = spill_path(home / "evidence", "file-cam")
        with held_open(home / "db" / "watch.db"), read_only(home / "db"):
            code, said = watch((120, 200))
        assert spill.is_file(), said  # the state with its waiting event: kept
        lines = [line for line in said.splitlines() if str(spill) in line]
        assert len(lines) == 1 and "waiting events in" in lines[0] and "Traceback" not in said, said
        kept = spill.read_bytes()
        sessions = open_database(db_url)
        with sessions() as session:
            assert session.scalars(select(Case)).all() == []
            assert session.get(CameraState, "file-cam").captured_at < START + timedelta(seconds=60)

        code, said = watch((200, 220))  # the database back
        assert code == 0 and "waiting events written" in said, said
        assert not spill.exists()
        with sessions() as session:
            (case,) = session.scalars(select(Case)).all()  # once: the next frames knew its incident
            assert (case.event, case.camera_id) == ("street_vending", "file-cam")
            assert START + timedelta(seconds=75) <= case.first_seen_at <= START + timedelta(seconds=87)
            first = session.scalars(
                select(Evidence).where(Evidence.case_id == case.id).order_by(Evidence.id)
            ).first()
            assert first is not None and first.captured_at == case.first_seen_at
            photo = evidence_file(home / "evidence", first.path, first.sha256)
            assert file_sha256(photo) == first.sha256

        spill.write_bytes(kept[: len(kept) // 2])  # cut short
        code, said = watch((200, 220))
        assert spill.read_bytes() == kept[: len(kept) // 2] and "Traceback" not in said, said
        (line,) = [line for line in said.splitlines() if str(spill) in line]
        assert "not taken, left in place, it cannot be read (not a camera state" in line
        other_spill = spill_path(home / "evidence", "other-cam")
        other_spill.write_bytes(kept)  # file-cam's state under another camera's name
        cameras = stall_cameras(videos[(0, 120)])
        cameras["cameras"].append({**cameras["cameras"][0], "id": "other-cam"})
        config.write_text(yaml.safe_dump(cameras), encoding="utf-8")
        rules = load_case_rules(get_settings())
        other = CameraHub(
            load_service_cameras(config, rules).only("other-cam"), rules.taxonomy, home / "evidence"
        )
        other.restore(sessions)
        (line,) = other.take_spilled(sessions, rules)
        assert (
            "not taken, left in place: camera file-cam's state" in line and other_spill.read_bytes() == kept
        )
        with sessions() as session:
            assert len(session.scalars(select(Case)).all()) == 1
    finally:
        get_settings.cache_clear()
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("kind", list(NO_PICTURE))
def test_watch_clears_no_parked_car_while_the_picture_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """A recording: a car parked 0-40 s, the picture lost 40-100 s (black, a "no signal" screen, a
    washed-out or blurred lens), then the street without the car. The lost picture read as the place
    cleared at 60 s, with an after-photo of it; now the place clears 20 s after the picture is back."""
    from serve.cases.db import open_database
    from serve.cases.evidence import evidence_file
    from serve.cases.orm import Case, Evidence
    from serve.cases.settings import get_settings
    from serve.cli.main import main
    from vision.detect.registry import CURRENT, find_model
    from vision.live.cameras import PictureSettings
    from vision.live.picture import picture_fault

    try:
        find_model(CURRENT, models_dir=MODELS)
    except Exception as err:
        pytest.skip(f"the registry's current model is not installed ({err})")
    pictures = parked_car_frames()
    if pictures is None:
        pytest.skip("no traffic-cams and vehicles-in datasets beside the checkout")
    parked, empty = pictures
    frames = [parked if t < 40 else empty for t in range(160)]
    frames = [NO_PICTURE[kind](f) if 40 <= t < 100 else f for t, f in enumerate(frames)]
    video = write_video(tmp_path / "kerb.avi", frames, fps=1)
    cameras = {
        "rules": {"no_parking": {"detect": "objects", "classes": ["car"], "min_dwell_s": 20}},
        "cameras": [
            {
                "id": "kerb-cam",
                "lat": 34.72265,
                "lon": 113.62762,
                "analyse_fps": 1,
                "stream": str(video),
                "cases": {"clear_after_s": 20, "verify": "any"},
                "dwell": {"refind_s": 20},
                "zones": [
                    {
                        "id": "kerb",
                        "rule": "no_parking",
                        "polygon": [[0.2, 0.5], [0.6, 0.5], [0.6, 0.95], [0.2, 0.95]],
                    }
                ],
            }
        ],
    }
    config = tmp_path / "cameras.yaml"
    config.write_text(yaml.safe_dump(cameras), encoding="utf-8")
    db_url = f"sqlite:///{tmp_path / 'watch.db'}"
    monkeypatch.setenv("STREETORDER_EVIDENCE_DIR", str(tmp_path / "evidence"))
    get_settings.cache_clear()
    try:
        played = ["--file-start", START.isoformat(), "--speed", "0", "--seconds", "120"]
        code = main(["watch", "--camera", "kerb-cam", "--cameras", str(config), "--db", db_url, *played])
    finally:
        get_settings.cache_clear()
    assert code == 0
    with open_database(db_url)() as session:
        (case,) = session.scalars(select(Case)).all()
        after = session.scalars(
            select(Evidence).where(Evidence.case_id == case.id, Evidence.role == "after")
        ).all()
        assert [(e.captured_at, (e.extra or {}).get("proposal")) for e in after] == [
            (START + timedelta(seconds=120), "resolved")
        ]
        photo = cv2.imread(str(evidence_file(tmp_path / "evidence", after[0].path, after[0].sha256)))
        assert picture_fault(photo, PictureSettings()) is None


def test_watch_stopped_with_sigterm_saves_the_camera_and_files_nothing_twice(tmp_path: Path) -> None:
    """`streetorder watch` sent SIGTERM (systemd, docker stop) while a parked car's case is open: it
    stops as on Ctrl-C, saving the camera's state to its last frame and printing its summary (it died
    at once: the state since the case's frame lost, nothing said). Started again on the rest of the
    recording, the car goes on in its case: one case."""
    from serve.cases.db import open_database
    from serve.cases.orm import CameraState, Case
    from vision.detect.registry import CURRENT, find_model

    try:
        find_model(CURRENT, models_dir=MODELS)
    except Exception as err:
        pytest.skip(f"the registry's current model is not installed ({err})")
    pictures = parked_car_frames()
    if pictures is None:
        pytest.skip("no traffic-cams and vehicles-in datasets beside the checkout")
    video = write_video(tmp_path / "kerb.avi", [pictures[0]] * 120, fps=2)  # 60 s of the parked car
    zone = {"id": "kerb", "rule": "no_parking", "polygon": [[0.2, 0.5], [0.6, 0.5], [0.6, 0.95], [0.2, 0.95]]}
    cameras = {
        "rules": {"no_parking": {"detect": "objects", "classes": ["car"], "min_dwell_s": 2}},
        "cameras": [{"id": "kerb-cam", "lat": 34.72265, "lon": 113.62762, "zones": [zone]}],
    }
    config = tmp_path / "cameras.yaml"
    config.write_text(yaml.safe_dump(cameras), encoding="utf-8")
    db_url = f"sqlite:///{tmp_path / 'watch.db'}"
    sessions = open_database(db_url)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STREETORDER_EVIDENCE_DIR": str(tmp_path / "evidence")}

    def watch(start: datetime, clip: Path = video, speed: str = "1") -> subprocess.Popen[str]:
        played = ["--stream", str(clip), "--file-start", start.isoformat(), "--speed", speed]
        command = ["watch", "--camera", "kerb-cam", "--cameras", str(config), "--db", db_url, *played]
        return subprocess.Popen(
            [sys.executable, "-m", "serve.cli.main", *command],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def cases() -> list[Case]:
        with sessions() as session:
            return list(session.scalars(select(Case)))

    running = watch(START)  # played in real time
    deadline = time.monotonic() + 90
    while not cases():
        assert time.monotonic() < deadline and running.poll() is None, "the parked car was not filed"
        time.sleep(0.2)
    time.sleep(3)  # frames after the case's
    running.send_signal(signal.SIGTERM)
    out, err = running.communicate(timeout=60)
    assert running.returncode == 0 and "frames analysed" in out, err[-2000:]
    (case,) = cases()
    with sessions() as session:
        saved = session.get(CameraState, "kerb-cam")
        assert saved is not None and saved.captured_at > case.first_seen_at + timedelta(seconds=1)
    rest = write_video(tmp_path / "rest.avi", [pictures[0]] * 20, fps=2)  # the car still there
    again = watch(START + timedelta(minutes=1), rest, "0")
    out, err = again.communicate(timeout=180)
    assert again.returncode == 0, err[-2000:]
    assert [c.id for c in cases()] == [case.id]


def test_watch_refuses_an_unknown_camera_or_a_missing_file_and_fails_on_a_file_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from serve.cli.main import main

    camera = yaml.safe_load((CONFIGS / "cameras.yaml").read_text(encoding="utf-8"))["cameras"][0]["id"]
    db = ["--db", f"sqlite:///{tmp_path / 'watch.db'}", "--seconds", "5"]
    with pytest.raises(SystemExit) as refused:
        main(["watch", "--camera", "no-such-camera", *db])
    assert refused.value.code == 2 and "unknown camera 'no-such-camera'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        main(["watch", "--camera", camera, "--stream", str(tmp_path / "gone.mp4"), *db])
    assert refused.value.code == 2 and "gone.mp4: no such file" in capsys.readouterr().err
    video = str(write_video(tmp_path / "street.avi", numbered(3), fps=1))
    refusals = {  # a time no case can have crashed the reader (9999) or the intake (year 1) before
        ("--speed", "10"): "--speed 10 needs --file-start",
        ("--file-start", "9999-12-31T23:59:59+08:00"): "--file-start: capture time 9999-12-31",
        ("--file-start", "0001-01-01T00:00:00+00:00"): "outside the years",
        ("--file-start", "2099-01-01T00:00:00+08:00"): "ahead of the server clock",
    }
    refusals[("--file-fps", "0")] = "--file-fps: must be a finite number above 0"
    for given, words in refusals.items():
        with pytest.raises(SystemExit) as refused:
            main(["watch", "--camera", camera, "--stream", video, *given, *db])
        assert refused.value.code == 2 and words in capsys.readouterr().err, given
    with pytest.raises(SystemExit) as refused:
        main(["watch", "--camera", camera, "--stream", "rtsp://192.0.2.1/live", "--file-fps", "2", *db])
    assert refused.value.code == 2 and "--file-fps is for a video file" in capsys.readouterr().err
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 4096)
    assert main(["watch", "--camera", camera, "--stream", str(junk), *db]) == 1
    out = capsys.readouterr()
    assert "0 frames analysed" in out.out and f"watch: cannot open {junk}" in out.err


def test_watch_reads_an_image_sequence_every_frame_at_full_speed_and_tells_a_file_cut_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Frames taken out of a clip (`ffmpeg -i clip.mp4 -r 1 frames/img%04d.jpg`) were refused as `no
    such file` although OpenCV reads them as a video; and at `--speed 0` the analysis saw the frames
    the reader had not yet replaced, a share that hung on the machine's speed."""
    from serve.cases.settings import get_settings
    from serve.cli.main import main

    camera = yaml.safe_load((CONFIGS / "cameras.yaml").read_text(encoding="utf-8"))["cameras"][0]
    sequence = image_sequence(tmp_path / "frames", 8)
    whole = write_video(tmp_path / "whole.avi", street_photos(20), fps=2).read_bytes()
    (tmp_path / "copy.avi").write_bytes(whole[: len(whole) * 2 // 3])  # a copy cut short
    db = ["--db", f"sqlite:///{tmp_path / 'watch.db'}", "--seconds", "60"]
    played = ["--file-start", START.isoformat(), "--speed", "0"]
    monkeypatch.setenv("STREETORDER_EVIDENCE_DIR", str(tmp_path / "evidence"))
    get_settings.cache_clear()
    try:
        code = main(
            ["watch", "--camera", camera["id"], "--stream", sequence, "--file-fps", "1", *played, *db]
        )
        out = capsys.readouterr()
        assert code == 0, out.err
        assert f"camera {camera['id']}: 8 frames analysed, 0 skipped, 0 dropped" in out.out
        assert "stores no frame rate" not in out.err
        # without its rate it is read at 25 frames a second: said, as the docs say to give --file-fps
        unrated = ["--db", f"sqlite:///{tmp_path / 'unrated.db'}", "--seconds", "60"]
        assert main(["watch", "--camera", camera["id"], "--stream", sequence, *played, *unrated]) == 0
        assert (
            "stores no frame rate (a raw stream or numbered images): it was read at 25 frames a second"
            in (capsys.readouterr().err)
        )
        # what the cut copy holds is judged (exit 0); the summary is followed by why it ended
        code = main(["watch", "--camera", camera["id"], "--stream", str(tmp_path / "copy.avi"), *played, *db])
        out = capsys.readouterr()
        assert code == 0 and "stream ended" in out.out
        assert "of its 20 frames: the file is cut short" in out.err
    finally:
        get_settings.cache_clear()


def test_watch_says_why_a_file_played_again_judged_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file played again with the same --file-start is late frame for frame (the camera's saved state
    is past it): the watch printed `0 events` and exit 0, and an operator saw a clip judged clean."""
    from serve.cases.settings import get_settings
    from serve.cli.main import main

    camera = yaml.safe_load((CONFIGS / "cameras.yaml").read_text(encoding="utf-8"))["cameras"][0]
    sequence = image_sequence(tmp_path / "frames", 4)
    args = ["watch", "--camera", camera["id"], "--stream", sequence, "--file-fps", "1", "--speed", "0"]
    args += ["--file-start", START.isoformat(), "--db", f"sqlite:///{tmp_path / 'watch.db'}"]
    monkeypatch.setenv("STREETORDER_EVIDENCE_DIR", str(tmp_path / "evidence"))
    get_settings.cache_clear()
    try:
        assert main(args) == 0
        assert "late" not in capsys.readouterr().err
        assert main(args) == 0
        err = capsys.readouterr().err
        last = (START + timedelta(seconds=3)).astimezone(ZoneInfo("Asia/Shanghai")).isoformat()
        assert (
            f"4 of the 4 frames analysed were late: captured at or before the camera's last frame ({last}"
            in err
        )
        assert "a file played again needs a --file-start after that time" in err
    finally:
        get_settings.cache_clear()


def test_watch_never_shows_a_camera_password(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A Hikvision address with its password, given to `watch`: refused (another scheme, a rate for a
    file), or read from a camera nobody answers at. Neither its messages, nor its summary, nor what
    OpenCV and FFmpeg print show the password (the refusals printed the address as given)."""
    from serve.cli.main import main

    camera = yaml.safe_load((CONFIGS / "cameras.yaml").read_text(encoding="utf-8"))["cameras"][0]["id"]
    db = ["--db", f"sqlite:///{tmp_path / 'watch.db'}", "--seconds", "2"]
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as probe:
        port = probe.server_address[1]  # closed once the probe is gone
    url = f"rtsp://admin:S3cret@127.0.0.1:{port}/Streaming/Channels/101"
    for given in (["--stream", url.replace("rtsp:", "rtmp:")], ["--stream", url, "--file-fps", "2"]):
        with pytest.raises(SystemExit) as refused:
            main(["watch", "--camera", camera, *given, *db])
        out = capfd.readouterr()
        assert refused.value.code == 2 and "rtsp://admin:***@127.0.0.1" in out.err.replace("rtmp:", "rtsp:")
        assert "S3cret" not in out.out + out.err
    assert main(["watch", "--camera", camera, "--stream", url, *db]) == 1
    out = capfd.readouterr()
    assert f"watch: cannot open rtsp://admin:***@127.0.0.1:{port}/Streaming/Channels/101" in out.err
    assert "S3cret" not in out.out + out.err


def test_watch_on_an_address_that_never_speaks_exits_1_not_aborted(tmp_path: Path) -> None:
    """A camera that accepts the connection and never answers: `watch --seconds 2` left the reader's
    thread inside OpenCV's 10 s open, and the exiting interpreter aborted it (`terminate called
    without an active exception`, exit 134) instead of printing why and exiting 1."""
    camera = yaml.safe_load((CONFIGS / "cameras.yaml").read_text(encoding="utf-8"))["cameras"][0]["id"]
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts; nobody ever speaks
        url = f"rtsp://admin:S3cret@127.0.0.1:{silent.getsockname()[1]}/Streaming/Channels/101"
        db = ["--db", f"sqlite:///{tmp_path / 'watch.db'}", "--seconds", "2"]
        done = subprocess.run(
            [sys.executable, "-m", "serve.cli.main", "watch", "--camera", camera, "--stream", url, *db],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "no answer within 10 s" in done.stderr and "terminate called" not in done.stderr
    assert "S3cret" not in done.stdout + done.stderr


def test_watch_on_a_stream_of_garbage_says_so_in_one_line(tmp_path: Path) -> None:
    """A camera that sends bytes no decoder reads: FFmpeg printed its own lines to stderr (`[mjpeg @
    0x...] No JPEG data found in image`, some 6 a second, for as long as the watch ran), and `watch`
    ended with "the connection was closed". Its stderr is now the one line that says what happened."""
    camera = yaml.safe_load((CONFIGS / "cameras.yaml").read_text(encoding="utf-8"))["cameras"][0]["id"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OPENCV_FFMPEG_LOGLEVEL", None)
    with MjpegServer(per_connection=2000, garbage=True) as garbage:
        db = ["--db", f"sqlite:///{tmp_path / 'watch.db'}", "--seconds", "12"]
        watch = ["watch", "--camera", camera, "--stream", garbage.url, *db]
        done = subprocess.run(
            [sys.executable, "-m", "serve.cli.main", *watch],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "mjpeg @" not in done.stderr and "No JPEG data" not in done.stderr, done.stderr[-2000:]
    assert "watch: the stream answers but sends no picture that decodes as MJPG" in done.stderr
    assert len(done.stderr.splitlines()) <= 3, done.stderr[-2000:]


# --- the service's own pool of watchers (`pull: true`) --------------------------------------------


@pytest.fixture
def service_overrides(
    tmp_path: Path, mjpeg: MjpegServer, monkeypatch: pytest.MonkeyPatch
) -> dict[str, object]:
    """The service's cameras file names one camera, pulled from the MJPEG server that drops and asks
    for a password: the file names it as `${CAM_PASS}`, the environment holds it."""
    import shutil

    mjpeg.password = "S3cret"
    monkeypatch.setenv("CAM_PASS", "S3cret")

    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs, ignore=shutil.ignore_patterns("datasets"))
    cameras = {
        "rules": {
            "sidewalk": {
                "detect": "occupancy",
                "event": "street_vending",
                "min_area": 0.04,
                "min_dwell_s": 60,
            }
        },
        "cameras": [
            {
                "id": "pulled",
                "lat": 34.72265,
                "lon": 113.62762,
                "stream": mjpeg.url.replace("http://", "http://admin:${CAM_PASS}@"),
                "pull": True,
                "zones": [
                    {"id": "walk", "rule": "sidewalk", "polygon": [[0, 0.6], [1, 0.6], [1, 1], [0, 1]]}
                ],
            }
        ],
    }
    (configs / "cameras.yaml").write_text(yaml.safe_dump(cameras), encoding="utf-8")
    return {"configs_dir": configs, "cameras_reload_s": 0}  # reloaded by the test itself


def test_the_service_pulls_a_camera_and_reports_its_health(
    service: Any, mjpeg: MjpegServer, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """The pool reads the MJPEG server (about 50 frames/s, a forced disconnect every 15 frames, a
    bigger frame from the second connection on, a password asked each time) and analyses the newest
    frame at 2 fps. The password is shown nowhere: not in the API, the metrics or any log line."""
    caplog.set_level(logging.DEBUG)
    if service.client.get("/readyz").status_code != 200:
        pytest.skip("no model loaded (the registry's current model is not installed)")
    deadline = time.monotonic() + 30
    health: dict[str, Any] = {}
    while time.monotonic() < deadline:
        (camera,) = service.client.get("/v1/cameras", headers=service.auth("cases:read")).json()
        health = camera["health"]
        if health["reconnects"] >= 2 and health["frames"] >= 4 and health["width"] == 320:
            break
        time.sleep(0.3)
    assert health["reconnects"] >= 2 and mjpeg.connections >= 3
    # connected, its frames each one even grey: no picture (vision/live/picture.py)
    assert health["stream_state"] in ("no_picture", "reconnecting") and health["no_picture"] == "blank"
    assert (health["width"], health["height"]) == (320, 180)  # the size changed after the first drop
    # about 50 frames a second in, 2 analysed: the rest left on purpose, or dropped while analysing
    assert health["frames"] >= 4 and health["skipped_frames"] + health["dropped_frames"] > health["frames"]
    assert 0 < health["fps"] <= 2.2  # never above the camera's analyse_fps (2), whatever the machine's load
    metrics = service.client.get("/metrics", headers=service.auth("cases:read")).text
    values = {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("streetorder_camera_") and 'camera="pulled"' in line
    }
    assert values["streetorder_camera_reconnects_total"] >= 2
    assert (
        values["streetorder_camera_skipped_frames_total"] + values["streetorder_camera_dropped_frames_total"]
        > 0
    )
    assert values["streetorder_camera_frames_total"] >= 4
    assert values["streetorder_camera_last_frame_timestamp_seconds"] > 0
    states = {  # the stream's state as a state set: exactly one of them is 1
        line.split('streetorder_camera_stream="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith('streetorder_camera_stream{camera="pulled"')
    }
    assert set(states) == set(STREAM_STATES) and sum(states.values()) == 1
    # its frames are each one even grey: no picture while connected
    assert max(states, key=lambda state: states[state]) in ("no_picture", "reconnecting", "stalled")
    assert mjpeg.refused >= 1  # asked for the password, and given it
    (camera,) = service.client.get("/v1/cameras", headers=service.auth("cases:read")).json()
    assert camera["stream"] == mjpeg.url.replace("http://", "http://admin:***@")
    assert camera["health"]["no_picture"] == "blank"
    config = service.client.get("/v1/cameras/config", headers=service.auth("cases:read")).text
    console = service.client.get("/").text
    shown = [str(camera), metrics, config, console, caplog.text, *capfd.readouterr()]
    assert not [text for text in shown if "S3cret" in text]

    # the cameras file edited (1 frame a second now): the pool stops the old watcher, starts a new one
    path = service.settings.configs_dir / "cameras.yaml"
    edited = yaml.safe_load(path.read_text(encoding="utf-8"))
    edited["cameras"][0]["analyse_fps"] = 1
    path.write_text(yaml.safe_dump(edited), encoding="utf-8")
    reloaded = service.client.post("/v1/cameras/reload", headers=service.auth("admin"))
    assert reloaded.status_code == 200 and reloaded.json()["changed"] == ["pulled"], reloaded.text
    pool = service.client.app.state.camera_pool
    (watcher,) = pool.watchers.values()
    assert watcher.live is service.client.app.state.cameras.get("pulled") and watcher.running
    frames = health["frames"]
    while time.monotonic() < deadline + 30 and watcher.analysed < 3:
        time.sleep(0.2)
    (camera,) = service.client.get("/v1/cameras", headers=service.auth("cases:read")).json()
    assert camera["analyse_fps"] == 1 and camera["health"]["frames"] >= frames + 3  # counters go on
