"""Files known by their content: the sha256 that versions models, datasets, mixes and reviewed photos.

Standard library only: the GPU relay's leg hashes with it on a host that has torch and little else.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
