"""What an evidence image may be served as: which file (never one outside the evidence store unless
it is byte for byte the recorded photo), and in what form (faces and plates blurred unless the key
holds `evidence:raw`).

Blurred copies are made once per photo and kept under `<evidence store>/redacted/`, so that a
case viewed by many citizens costs one detection.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from serve.cases.auth import Principal
from serve.cases.errors import NotFound, Unavailable
from serve.cases.evidence import write_atomically
from vision.core.imageio import decode_photo
from vision.detect.privacy import PrivacyUnavailable, default_redactor

RAW_SCOPE = "evidence:raw"
PRIVACY_HEADER = "X-Privacy"  # raw | redacted: which form the body is


def sees_raw(principal: Principal) -> bool:
    return principal.allows(RAW_SCOPE)


def evidence_file(evidence_dir: Path, stored: str, sha256: str) -> Path:
    """The file of an evidence row, confined: inside the evidence store (links resolved), or else
    only a file whose bytes hash to the recorded sha256 (a scanned archive photo).

    Anything else (a path written by a citizen's media_url, a link out of the store, a photo
    changed since it was recorded) is refused as not found, without saying what is there.
    """
    store = evidence_dir.resolve()
    path = Path(stored)
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise NotFound("image file of evidence", sha256[:12]) from None
    if resolved.is_file() and resolved.is_relative_to(store):
        return resolved
    if resolved.is_file() and hashlib.sha256(resolved.read_bytes()).hexdigest() == sha256:
        return resolved
    raise NotFound("image file of evidence", sha256[:12])


def redact_image(image: np.ndarray) -> np.ndarray:
    """Faces and plates blurred (503 when the detectors are not installed: fail closed)."""
    try:
        redactor = default_redactor()
    except PrivacyUnavailable as err:
        raise Unavailable(f"privacy filter unavailable, images are withheld: {err}") from err
    blurred, _ = redactor.redact(image)
    return blurred


def redacted_jpeg(evidence_dir: Path, path: Path, sha256: str) -> bytes:
    """The blurred JPEG of a stored photo, made on first use and kept by content hash."""
    cached = evidence_dir / "redacted" / sha256[:2] / f"{sha256}.jpg"
    if cached.is_file():
        return cached.read_bytes()
    photo = decode_photo(path.read_bytes(), source=f"evidence {sha256[:12]}")
    data = encode_jpeg(redact_image(photo.image))
    write_atomically(cached, data)
    return data


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise Unavailable("cannot encode the image")
    return bytes(encoded.tobytes())
