"""Frames from RTSP, HTTP (MJPEG) or video-file streams with OpenCV: newest frame only, reconnects.

A reader thread grabs frames as fast as the stream delivers them and keeps only the newest
(drop-oldest): analysis at 2 fps never works on a backlog of stale frames. A dropped connection,
a stream that stops delivering, or a camera that cannot be reached is retried with exponential
backoff; a stream that connects and then sends nothing is given up after `timeout_s` (FFmpeg's
open and read timeouts) and told `stalled`, one that cannot be opened `unreachable`. Each frame
is stamped with its capture time at this edge: the grab time (the service's clock) for live streams,
never the stream's timestamps (an RTSP camera's PTS start at 0 again on each session), or the file's
start (`file_start`, else when reading began) + the frame's position for a file, so a replayed video
is judged by its own clock whatever its speed and however fast it decodes; a position that goes back
(joined recordings) goes on from the last one instead. A change of frame size (sub-stream to main
stream) passes through; the rules rescale. Addresses are shown only through `redact_url`.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np

from vision.core.files import is_utf8_path

Clock = Callable[[], datetime]
log = logging.getLogger("streetorder.stream")

# FFmpeg's own log, process-wide, read by OpenCV when it first opens a stream: quiet (AV_LOG_QUIET). A stream
# of garbage had FFmpeg print "[mjpeg @ 0x...] No JPEG data found in image" (logged as fatal: level 8 lets
# it through) some 6 times a second; the reader says what happened in one line (`StreamStats.last_error`).
# Set before anything here opens a stream; an operator's own OPENCV_FFMPEG_LOGLEVEL is kept.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
# OpenCV's own log likewise: each failed open of a camera that is down (a reboot, every retry of the
# backoff) printed `[ WARN:1@24.423] global cap.cpp:212 open VIDEOIO(FFMPEG): backend is generally
# available but can't be used to capture by name`; its errors still show. OPENCV_LOG_LEVEL is kept.
if "OPENCV_LOG_LEVEL" not in os.environ:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR uint8
    captured_at: datetime
    index: int  # frames read since the reader started
    connection: int = 0  # the reconnects before it: a frame of a later connection follows a gap in the stream


# starting | connected | stalled (the last connection sent nothing for timeout_s) | reconnecting
# (it was closed) | unreachable (the last open failed) | ended (a file) | stopped; no_picture: connected,
# its frames show no picture (vision/live/picture.py); view_moved: connected, its frames have shown
# another view than the camera's reference for view.moved_after_s (vision/live/view.py, rules.py);
# both told by the service, not by the reader
STREAM_STATES = (
    "starting",
    "connected",
    "no_picture",
    "view_moved",
    "stalled",
    "reconnecting",
    "unreachable",
    "ended",
    "stopped",
)


@dataclass
class StreamStats:
    frames_read: int = 0
    dropped: int = 0  # frames replaced in the buffer before anyone took them
    reconnects: int = 0  # successful re-openings after a drop
    failed_opens: int = 0
    size_changes: int = 0
    state: str = "starting"  # one of STREAM_STATES
    size: tuple[int, int] | None = None
    last_frame_at: datetime | None = None
    last_error: str | None = None  # the address in it redacted (redact_url)
    rate_assumed: float | None = (
        None  # a file that stores no frame rate, played at OpenCV's (25): no file_fps
    )


class NewestFrame:
    """A one-slot buffer: `put` replaces what is there, `take` waits for something new."""

    def __init__(self) -> None:
        self._frame: Frame | None = None
        self._ready = threading.Condition()

    def put(self, frame: Frame) -> bool:
        """Store `frame`; True when it replaced a frame nobody took (a drop)."""
        with self._ready:
            dropped = self._frame is not None
            self._frame = frame
            self._ready.notify_all()
            return dropped

    def take(self, timeout: float | None = None) -> Frame | None:
        with self._ready:
            if self._frame is None:
                self._ready.wait(timeout)
            frame, self._frame = self._frame, None
            self._ready.notify_all()  # a file read as fast as it is taken waits for this (wait_taken)
            return frame

    def wait_taken(self, stop: threading.Event) -> None:
        """Wait until the frame put last was taken (or `stop` is set): a file read as fast as it is
        analysed drops nothing, so what is judged does not hang on how fast this machine is."""
        with self._ready:
            while self._frame is not None and not stop.is_set():
                self._ready.wait(0.1)


STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https", "file")


USERINFO_PASSWORD = re.compile(r"(?<=://)([^:/?#@\s]*):[^/?#\n]*@")  # up to the last @ before the path
QUERY_SECRET = re.compile(
    r"([?&;](?:password|passwd|pass|pwd|token|access_token|api_key|apikey|key|auth|secret)=)[^&#\s]*",
    re.IGNORECASE,
)
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def redact_url(text: str) -> str:
    """`text` (a stream URL, or a message naming one) with every password shown as `***`: the
    user:password of an RTSP or HTTP address (`rtsp://admin:***@10.0.0.9/...`, as Hikvision and Dahua
    cameras are addressed) and secrets in its query (`?user=admin&pwd=***`). The one redaction every
    door uses before a stream address reaches a log, an error, the console or the API."""
    return QUERY_SECRET.sub(r"\1***", USERINFO_PASSWORD.sub(r"\1:***@", text))


def expand_env(url: str) -> str:
    """`${NAME}` in a stream address replaced by the environment variable NAME, so that a camera's
    password stays out of cameras.yaml (`rtsp://admin:${CAM_PASS}@10.0.0.9/...`); an unset variable
    is an error naming it, not an address with a hole."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ValueError(f"environment variable {name} (named as ${{{name}}}) is not set")
        return os.environ[name]

    return ENV_REFERENCE.sub(value, url)


def check_stream_url(url: str) -> str:
    """The address to open, its `${NAME}` references expanded (`expand_env`). Streams are read over
    these schemes only, whoever names them (cameras.yaml, `watch --stream`): OpenCV's FFmpeg would
    otherwise open ftp:, gopher:, data: and more on a configured URL."""
    url = expand_env(url)
    scheme = urlparse(url).scheme.lower()
    if scheme and len(scheme) > 1 and scheme not in STREAM_SCHEMES:  # len 1: a Windows drive letter
        raise ValueError(f"scheme '{scheme}' is not allowed (use one of {', '.join(STREAM_SCHEMES)})")
    if not is_file(url) and not is_utf8_path(url):  # OpenCV crashed the process (SIGSEGV) on such a str
        raise ValueError("the address is not UTF-8 text: percent-encode its non-ASCII bytes (%E8%A1%97)")
    return url


def is_file(url: str) -> bool:
    scheme = urlparse(url).scheme.lower()
    return scheme in ("", "file") or len(scheme) == 1  # len 1: a Windows drive letter


def local_path(url: str) -> str:
    return urlparse(url).path if urlparse(url).scheme.lower() == "file" else url


SECOND = timedelta(seconds=1)
IMAGE_SEQUENCE = re.compile(r"%0?\d*d")  # img%04d.jpg: OpenCV reads the numbered images as a video


def file_exists(path: str) -> bool:
    """Whether a video file, or at least one image of a numbered sequence (`frames/img%04d.jpg`, as
    `ffmpeg -i clip.mp4 frames/img%04d.jpg` writes them), is there."""
    name = Path(path)
    if name.is_file():
        return True
    pattern = IMAGE_SEQUENCE.sub("[0-9]*", glob.escape(name.name))
    return IMAGE_SEQUENCE.search(name.name) is not None and any(name.parent.glob(pattern))


MP4_VIDEO_TRACK = re.compile(rb"hdlr.{8}vide", re.DOTALL)  # a track whose handler is video


def unreadable_file(path: str) -> str:
    """Why a file OpenCV cannot open is no video, in words a person can act on: missing, empty, an
    MP4 or MOV cut off before its recording was finished (its index, the moov box, is written last),
    or one holding sound only; else that FFmpeg cannot decode it."""
    if not file_exists(path):
        return "no such file"
    name = Path(path)
    if name.is_file() and name.stat().st_size == 0:
        return "the file is empty (0 bytes)"
    boxes = mp4_boxes(name) if name.is_file() else {}
    if "ftyp" in boxes and "moov" not in boxes:
        return "an MP4/MOV without its index (no moov box): the recording was cut off before it was finished"
    if "moov" in boxes and not MP4_VIDEO_TRACK.search(boxes["moov"]):
        return "an MP4/MOV with no video track (sound only)"
    return "not a video it can decode"


def mp4_boxes(path: Path, keep: int = 64 << 20) -> dict[str, bytes]:
    """The top-level boxes of an MP4/MOV (an ISO base media file) by type, with the moov box's content
    (its first `keep` bytes), the others' left out; {} for a file of another kind."""
    boxes: dict[str, bytes] = {}
    with path.open("rb") as file:
        while len(header := file.read(8)) == 8:
            size, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if size == 1:  # a 64-bit size follows the type
                size = int.from_bytes(file.read(8), "big") - 8
            length = size - 8 if size else keep  # 0: the box runs to the end of the file
            if not (kind.isascii() and kind.isalnum()) or length < 0 or (not boxes and kind != b"ftyp"):
                break  # another kind of file, or no box
            content = file.read(min(length, keep)) if kind == b"moov" else b""
            boxes[kind.decode()] = content
            file.seek(length - len(content), os.SEEK_CUR)
    return boxes if "ftyp" in boxes else {}


def frame_rate(reported: float) -> float:
    """A stream's frame rate as OpenCV reports it, or 25 where the report means nothing: 0 or NaN
    (no rate in the container), 90000 (an RTSP clock rate taken for a frame rate)."""
    return reported if math.isfinite(reported) and 0 < reported <= 240 else 25.0


def frame_position(reported_ms: float, previous: timedelta | None, fps: float) -> timedelta:
    """Where a frame lies in its file: OpenCV's position, or one frame after the previous one
    (`None`: this is the first) where it reports none (NaN or negative: timedelta would raise and stop
    the reader thread) or one that goes back: segments joined into one file (a DVR's export, `cat
    a.ts b.ts`) start their timestamps at 0 again, and every frame of the next segment was stamped
    before the last one, late, until it passed the first segment's length."""
    if math.isfinite(reported_ms) and 0 <= reported_ms < 1e12:
        reported = timedelta(milliseconds=reported_ms)
        if previous is None or reported > previous:
            return reported
    return (previous or timedelta(0)) + timedelta(seconds=1 / fps)


def fourcc(code: float) -> str | None:
    """The codec OpenCV reports for a stream (`CAP_PROP_FOURCC`: `MJPG`, `H264`), None where it names none."""
    name = int(code).to_bytes(4, "little", signed=False) if math.isfinite(code) and 0 < code < 2**32 else b""
    text = name.decode("ascii", "replace").strip()
    return text if text.isascii() and text.isprintable() and text else None


class StreamReader:
    """Reads one stream in a background thread; `take()` gives the newest frame."""

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        stable_s: float = 10.0,
        timeout_s: float = 10.0,
        file_start: datetime | None = None,
        file_speed: float = 1.0,
        loop_file: bool = False,
        file_fps: float | None = None,
    ) -> None:
        """`backoff_s`: first and longest wait before reconnecting; the wait doubles after each failed
        open and each connection that dropped within `stable_s` (a flapping camera is not hammered);
        `file_speed`: a file plays at its frame rate x this (0: as fast as its frames are taken, none
        dropped: each waits for the one before it to be taken);
        `loop_file`: start a file again at its end (as if the camera reconnected) instead of ending;
        `file_fps`: the frame rate of a file that stores none (a raw MJPEG or H.264 stream, which
        OpenCV plays at 25 frames a second whatever the camera took): its n-th frame lies n / file_fps
        seconds after its start, whatever positions the decoder reports."""
        self.url = check_stream_url(url)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.backoff_s = backoff_s
        self.stable_s = stable_s
        self.timeout_s = timeout_s
        self.file_start = file_start
        self.file_speed = file_speed
        self.loop_file = loop_file
        if file_fps is not None and not (math.isfinite(file_fps) and file_fps > 0):
            raise ValueError(f"file_fps {file_fps}: a frame rate is a positive number")
        self.file_fps = file_fps
        self.stats = StreamStats()
        self._lost_at: float | None = None  # since when no frame came, told once (_tell_lost)
        self.buffer = NewestFrame()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"stream {redact_url(url)}", daemon=True)

    def start(self) -> StreamReader:
        self._thread.start()
        return self

    def stop(self, wait_s: float | None = None) -> None:
        """Waits (by default) as long as an open or a read may block in OpenCV: a process that exits
        while this thread is inside it aborts (`terminate called without an active exception`,
        SIGABRT: `watch` on an address that never answers exited 134, not 1)."""
        self.request_stop()
        self._thread.join(self.timeout_s + 2 if wait_s is None else wait_s)
        if self.stats.state != "ended":
            self.stats.state = "stopped"

    def request_stop(self) -> None:
        """Ask the thread to end after its current open or read, without waiting for it."""
        self._stop.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def take(self, timeout: float | None = None) -> Frame | None:
        return self.buffer.take(timeout)

    def _open(self) -> cv2.VideoCapture:
        milliseconds = int(self.timeout_s * 1000)
        if is_file(self.url):
            # as bytes: a name that is not UTF-8 (GBK from a Windows recorder) arrives from the command
            # line with surrogates, and OpenCV given such a str crashed the process (SIGSEGV)
            return cv2.VideoCapture(os.fsencode(local_path(self.url)))  # type: ignore[call-overload]
        return cv2.VideoCapture(
            self.url,
            cv2.CAP_FFMPEG,
            [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, milliseconds, cv2.CAP_PROP_READ_TIMEOUT_MSEC, milliseconds],
        )

    def _run(self) -> None:
        delay = self.backoff_s[0]
        connected_before = False
        file_offset = timedelta(0)  # a looped file goes on in time rather than starting over
        if self.file_start is None and is_file(self.url):
            self.file_start = self.clock()  # its frames are stamped by their position from here
        while not self._stop.is_set():
            opening = time.monotonic()
            capture = self._open()
            if not capture.isOpened():
                self.stats.failed_opens += 1
                self.stats.state = "unreachable"
                self.stats.last_error = f"cannot open {redact_url(self.url)}"
                if time.monotonic() - opening >= 0.9 * self.timeout_s:
                    self.stats.last_error += f": no answer within {self.timeout_s:g} s"
                if is_file(self.url):  # a file does not come back the way a camera does
                    self.stats.last_error += f": {unreadable_file(local_path(self.url))}"
                    self.stats.state = "ended"
                    return
                self._tell_lost(opening)
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff_s[1])
                continue
            if connected_before:
                self.stats.reconnects += 1
            connected_before = True
            self.stats.state = "connected"
            connected_at = time.monotonic()
            last_position, stalled, frames = self._read(capture, file_offset)
            codec = fourcc(capture.get(cv2.CAP_PROP_FOURCC))
            capture.release()
            if is_file(self.url):
                if self.stats.frames_read == 0:
                    self.stats.last_error = f"no frame could be decoded from {redact_url(self.url)}"
                if not self.loop_file or self.stats.frames_read == 0:
                    self.stats.state = "ended"
                    return
                file_offset += last_position
            if not self._stop.is_set():
                self.stats.state = "stalled" if stalled else "reconnecting"
                if stalled:
                    self.stats.last_error = f"no frame for {self.timeout_s:g} s: the stream stalled"
                elif frames == 0:  # it answered and sent bytes, none of them a picture
                    self.stats.last_error = (
                        "the stream answers but sends no picture that decodes"
                        + (f" as {codec}" if codec else "")
                        + ": not the format it announces, or no video at all"
                    )
                else:
                    self.stats.last_error = "the stream ended (the connection was closed)"
                self._tell_lost(time.monotonic() - (self.timeout_s if stalled else 0))
                stable = time.monotonic() - connected_at >= self.stable_s
                delay = self.backoff_s[0] if stable else delay
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff_s[1])

    def _tell_lost(self, since: float) -> None:
        """Say once that a camera sends no frames (closed, stalled, not answering, no picture), not at
        each retry of the backoff; its first frame again says it is back. A camera rebooting was told by
        nothing but the stream state, or by an OpenCV warning at every failed open."""
        if self._lost_at is None and not self._stop.is_set() and not is_file(self.url):
            self._lost_at = since
            log.warning(
                "stream %s lost: %s; retrying (backoff %g s to %g s)",
                redact_url(self.url),
                self.stats.last_error,
                *self.backoff_s,
            )

    def _read(self, capture: cv2.VideoCapture, file_offset: timedelta) -> tuple[timedelta, bool, int]:
        """Read until the stream ends or stalls; returns the last file position reached, whether
        the last read gave up after `timeout_s` of silence (FFmpeg's read timeout: a stalled camera)
        rather than at a closed connection or a file's end, and the frames decoded (0 on a connection
        that opened: it sends bytes that decode to no picture)."""
        fps = self.file_fps or frame_rate(capture.get(cv2.CAP_PROP_FPS))
        indexed = capture.get(cv2.CAP_PROP_FRAME_COUNT)  # a file's count from its index (or estimated)
        if not self.file_fps and is_file(self.url) and (indexed <= 0 or IMAGE_SEQUENCE.search(self.url)):
            self.stats.rate_assumed = fps  # a raw stream (no index) or numbered images: no rate of their own
        started = time.monotonic()
        position, frames = timedelta(0), 0
        while not self._stop.is_set():
            reading = time.monotonic()
            ok, image = capture.read()
            if not ok or image is None:
                # not 0 frames: "no frame could be decoded"; the count of a file whose timestamps jump ahead
                # (a recorder's clock set a day on) is estimated from its length: read to it, it is whole
                if (
                    is_file(self.url)
                    and 0 < frames < 0.9 * indexed
                    and position < 0.9 * indexed / fps * SECOND
                ):
                    self.stats.last_error = (
                        f"{redact_url(self.url)} ended after {frames} of its {indexed:.0f} frames: "
                        "the file is cut short (a copy or a recording that stopped)"
                    )
                stalled = not is_file(self.url) and time.monotonic() - reading >= 0.9 * self.timeout_s
                return position + timedelta(seconds=1 / fps), stalled, frames
            if self.file_fps and is_file(self.url):
                position = timedelta(seconds=frames / self.file_fps)
            else:
                previous = position if frames else None
                position = frame_position(capture.get(cv2.CAP_PROP_POS_MSEC), previous, fps)
            frames += 1
            if self._lost_at is not None:
                log.warning(
                    "stream %s: back after %.0f s without a frame (%d reconnects)",
                    redact_url(self.url),
                    time.monotonic() - self._lost_at,
                    self.stats.reconnects,
                )
                self._lost_at = None
            if is_file(self.url) and self.file_speed > 0:  # play a file in (scaled) real time
                ahead = position.total_seconds() / self.file_speed - (time.monotonic() - started)
                if ahead > 0:
                    self._stop.wait(ahead)
            if is_file(self.url) and self.file_start is not None:
                captured_at = self.file_start + file_offset + position
            else:
                captured_at = self.clock()
            size = (int(image.shape[1]), int(image.shape[0]))
            if self.stats.size is not None and size != self.stats.size:
                self.stats.size_changes += 1
            self.stats.size = size
            self.stats.frames_read += 1
            self.stats.last_frame_at = captured_at
            if is_file(self.url) and self.file_speed == 0:
                self.buffer.wait_taken(self._stop)
            if self.buffer.put(Frame(image, captured_at, self.stats.frames_read, self.stats.reconnects)):
                self.stats.dropped += 1
        return position, False, frames
