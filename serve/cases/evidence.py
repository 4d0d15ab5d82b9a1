"""The evidence store: photos and crops kept by content under the evidence folder, and which file
an evidence row may be shown from."""

from __future__ import annotations

import hashlib
from pathlib import Path

from serve.cases.errors import NotFound
from vision.core.files import file_sha256, read_regular_file, write_atomically
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


def _resolved(stored: str, sha256: str) -> Path:
    """The regular file a stored path names now, links resolved; NotFound when there is none."""
    try:
        resolved = Path(stored).resolve(strict=True)
    except (OSError, RuntimeError):
        raise NotFound("image file of evidence", sha256[:12]) from None
    if not resolved.is_file():
        raise NotFound("image file of evidence", sha256[:12])
    return resolved


def _in_store(path: Path, evidence_dir: Path | None) -> bool:
    return evidence_dir is not None and path.is_relative_to(evidence_dir.resolve())


def evidence_file(evidence_dir: Path | None, stored: str, sha256: str) -> Path:
    """The file of an evidence row, confined: inside the evidence store (links resolved), or else
    only a file whose bytes hash to the recorded sha256 (a scanned archive photo). Without a store
    (`None`: a scan report written apart from the service) only the hash admits a file.

    Anything else (a path written by a citizen's media_url, a link out of the store, a photo
    changed since it was recorded) is refused as not found, without saying what is there.
    """
    resolved = _resolved(stored, sha256)
    if _in_store(resolved, evidence_dir) or file_sha256(resolved) == sha256:
        return resolved
    raise NotFound("image file of evidence", sha256[:12])


def evidence_bytes(
    evidence_dir: Path | None, stored: str, sha256: str, max_bytes: int | None = None
) -> tuple[Path, bytes]:
    """The file of an evidence row (confined as `evidence_file` says) and its bytes, read once: the
    bytes hashed are the bytes returned, so an archive photo is read once, not hashed and then read
    again, and one replaced between the check and the read cannot be drawn under the old boxes.
    A file that cannot be read, or is over `max_bytes` (larger than any photo recorded: it changed,
    and is not read whole into memory to say so), is not found either."""
    resolved = _resolved(stored, sha256)
    try:
        data = read_regular_file(resolved, max_bytes)
    except OSError:
        raise NotFound("image file of evidence", sha256[:12]) from None
    if _in_store(resolved, evidence_dir) or hashlib.sha256(data).hexdigest() == sha256:
        return resolved, data
    raise NotFound("image file of evidence", sha256[:12])
