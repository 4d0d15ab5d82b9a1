"""The evidence store: photos and crops kept by content under the evidence folder."""

from __future__ import annotations

from pathlib import Path

from vision.core.files import write_atomically
from vision.core.imageio import SUFFIXES


def image_path(evidence_dir: Path, sha256: str, image_format: str) -> Path:
    """Where an upload is kept by content: known before it is written, so that a door can record the
    photo first and write the file only once nothing can refuse it (no orphan files)."""
    return evidence_dir / "uploads" / sha256[:2] / f"{sha256}{SUFFIXES.get(image_format, '.jpg')}"


def store_image(evidence_dir: Path, data: bytes, sha256: str, image_format: str) -> Path:
    """Keep an upload under the evidence store by content (same bytes, same file), written atomically."""
    path = image_path(evidence_dir, sha256, image_format)
    if not path.exists():
        write_atomically(path, data)
    return path
