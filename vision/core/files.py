"""Files known by their content: the sha256 that versions models, datasets, mixes and reviewed photos.

Standard library only: the GPU relay's leg hashes with it on a host that has torch and little else.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
from pathlib import Path
from urllib.parse import quote


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_regular_file(path: Path | str, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file. A pipe, socket or device named like a photo (a FIFO `x.jpg`
    in an archive) would block its reader for ever: OSError at once instead, no read attempted.
    A file over `max_bytes` (a sparse `big.jpg` of 6 GB, read whole into memory in 28 s) is an
    OSError by its size, before a byte is read; one that grows while read stops at the limit."""
    if not stat.S_ISREG(os.stat(path).st_mode):  # a socket cannot even be opened: say what it is
        raise _not_regular(path)
    handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO opens without a writer
    with open(handle, "rb") as stream:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):  # replaced between the two looks
            raise _not_regular(path)
        if max_bytes is not None and info.st_size > max_bytes:
            raise OSError(
                errno.EFBIG, f"{info.st_size:,} bytes, over the limit of {max_bytes:,}: not read", str(path)
            )
        data = stream.read() if max_bytes is None else stream.read(max_bytes + 1)
        if max_bytes is not None and len(data) > max_bytes:  # it grew while read
            raise OSError(errno.EFBIG, f"grew past the limit of {max_bytes:,} bytes while read", str(path))
        return data


def _not_regular(path: Path | str) -> OSError:
    return OSError(errno.EINVAL, "not a regular file (a pipe, socket, device or folder)", str(path))


def write_atomically(path: Path, data: bytes) -> None:
    """Write through a temporary file beside it and rename: a killed process leaves no half file,
    and a reader sees the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def is_utf8_path(path: Path | str) -> bool:
    """Whether a path's name is UTF-8 text, which databases, manifests and pages need."""
    return shown_path(path) == str(path)


def shown_path(path: Path | str) -> str:
    """A path as text any database, page or terminal takes: a name that is not UTF-8 (GBK names from
    a zip made on a Chinese Windows) shows its odd bytes as \\xNN instead of failing to encode."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def file_href(path: Path | str, page: Path) -> str:
    """A link to `path` from the HTML file `page`: relative when beside it, else a file:// URI; both
    percent-encoded, so names with '#', '?', '%', quotes or bytes that are not UTF-8 still link
    (and a name can never end the attribute it is written in)."""
    target = Path(path).resolve()
    try:
        return quote(os.fsencode(target.relative_to(page.parent.resolve()).as_posix()))
    except ValueError:
        return target.as_uri()
