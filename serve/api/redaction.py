"""What an evidence image may be served as: which file (`serve.cases.evidence.evidence_file`: never
one outside the evidence store unless it is byte for byte the recorded photo), and in what form
(faces and plates blurred unless the key holds `evidence:raw`).

Blurred copies and copies with boxes are made once (`Renders`) and kept under
`<evidence store>/rendered/`, so that a case viewed by many citizens costs one detection.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from serve.cases.auth import Principal
from serve.cases.errors import Unavailable
from serve.cases.orm import Evidence
from vision.core.boxes import parse_boxes
from vision.core.draw import draw_boxes
from vision.core.files import write_atomically
from vision.core.imageio import decode_photo, encode_jpeg
from vision.detect.privacy import PrivacyUnavailable, default_redactor

RAW_SCOPE = "evidence:raw"
PRIVACY_HEADER = "X-Privacy"  # raw | redacted: which form the body is
# Served copies are decoded reduced while their long side stays at least this (a 4032 px phone photo
# at 1/2, an 8000 px one at 1/4): enough to see the case, and a huge photo costs ~16 MB of pixels.
SHOWN_SIDE = 2000
PRIVACY_VERSION = "centerface-ppocr-1"  # change with the redactor: kept blurred images are made again


def sees_raw(principal: Principal) -> bool:
    return principal.allows(RAW_SCOPE)


def redact_image(image: np.ndarray) -> np.ndarray:
    """Faces and plates blurred (503 when the detectors are not installed: fail closed)."""
    try:
        redactor = default_redactor()
    except PrivacyUnavailable as err:
        raise Unavailable(f"privacy filter unavailable, images are withheld: {err}") from err
    blurred, _ = redactor.redact(image)
    return blurred


class Renders:
    """Evidence images as served (blurred, boxes drawn): made once and kept on disk.

    A blurred photo is kept by content and privacy version; one with boxes by evidence id, the
    model that found them and the privacy version, so that a new redactor or model makes them
    again and nothing else does. Making one runs on `threads` slots of its own, never on the
    detector's: eight readers of a case's photos must not starve detection. Readers of the same
    image wait for the one that makes it. Photos are decoded reduced (SHOWN_SIDE).
    """

    def __init__(self, evidence_dir: Path, threads: int = 1) -> None:
        self.evidence_dir = evidence_dir
        self._slots = threading.BoundedSemaphore(threads)
        self._making: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def redacted(self, path: Path, sha256: str) -> bytes:
        """The blurred JPEG of a stored photo."""
        return self._kept(
            f"redacted/{sha256[:2]}/{sha256}-{PRIVACY_VERSION}", lambda: self._redact(path, sha256)
        )

    def with_boxes(self, path: Path, evidence: Evidence, raw: bool, names: Sequence[str]) -> bytes:
        """The photo with its evidence boxes drawn (blurred first unless `raw`)."""
        form = "raw" if raw else PRIVACY_VERSION
        model = hashlib.sha256(str(evidence.model_version).encode()).hexdigest()[:12]
        name = f"boxes/{evidence.id % 256:02x}/{evidence.id}-{evidence.sha256[:16]}-{model}-{form}"
        return self._kept(name, lambda: self._draw(path, evidence, raw, names))

    def blurred(self, image: np.ndarray) -> np.ndarray:
        """A live image (a camera's last frame) blurred on these slots: nothing to keep."""
        with self._slots:
            return redact_image(image)

    def _kept(self, name: str, make: Callable[[], bytes]) -> bytes:
        cached = self.evidence_dir / "rendered" / f"{name}.jpg"
        if cached.is_file():
            return cached.read_bytes()
        with self._guard:
            lock = self._making.setdefault(name, threading.Lock())
        with lock:
            if not cached.is_file():
                with self._slots:
                    write_atomically(cached, make())
        with self._guard:
            self._making.pop(name, None)
        return cached.read_bytes()

    @staticmethod
    def _redact(path: Path, sha256: str) -> bytes:
        photo = decode_photo(path.read_bytes(), source=f"evidence {sha256[:12]}", reduce_to=SHOWN_SIDE)
        return served_jpeg(redact_image(photo.image))

    @staticmethod
    def _draw(path: Path, evidence: Evidence, raw: bool, names: Sequence[str]) -> bytes:
        photo = decode_photo(path.read_bytes(), source=f"evidence {evidence.id}", reduce_to=SHOWN_SIDE)
        image = photo.image if raw else redact_image(photo.image)
        scale = image.shape[1] / photo.width  # boxes are stored in the photo's own pixels
        stored = parse_boxes(evidence.boxes, f"evidence {evidence.id}").boxes
        shown = [
            replace(b, xyxy=(b.xyxy[0] * scale, b.xyxy[1] * scale, b.xyxy[2] * scale, b.xyxy[3] * scale))
            for b in stored
        ]
        return served_jpeg(draw_boxes(image, shown, names))


def served_jpeg(image: np.ndarray) -> bytes:
    """The JPEG of a served copy; one OpenCV cannot encode is Unavailable (503), not a crash."""
    try:
        return encode_jpeg(image)
    except ValueError:
        raise Unavailable("cannot encode the image") from None
