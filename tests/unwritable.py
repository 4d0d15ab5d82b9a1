"""A SQLite database nobody may write while a test runs: its file and folder read-only as a service
not run as root meets a chmod or a read-only mount (tests/test_abuse.py, tests/test_stream.py)."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOLD_OPEN = (
    "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('SELECT count(*) FROM cases'); "
    "print('open', flush=True); sys.stdin.read()"
)


@contextmanager
def held_open(database: Path) -> Iterator[None]:
    """The SQLite file kept open by another process (as a running service keeps it): its WAL files
    stay, which a reader of a WAL database in a folder it may not write needs."""
    command = [sys.executable, "-c", HOLD_OPEN, str(database)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as holder:
        assert holder.stdout is not None and holder.stdout.readline() == b"open\n"
        yield


@contextmanager
def read_only(folder: Path, *, folder_writable: bool = False) -> Iterator[None]:
    """`folder` and its files read-only to the kernel: mode 0555 and 0444, and, where the tests run
    as root (whom modes do not stop), this process's effective user `nobody` meanwhile (seteuid
    changes every thread of the process, the app's included). Nothing here is mocked: SQLite meets
    the file and folder as a service not run as root meets a chmod or a read-only mount.
    `folder_writable`: the files alone read-only, the folder writable by anyone (0777)."""
    modes = {path: path.stat().st_mode for path in [folder, *folder.rglob("*")]}
    for path in modes:
        path.chmod((0o777 if folder_writable else 0o555) if path.is_dir() else 0o444)
    root = os.geteuid() == 0
    if root:
        os.seteuid(pwd.getpwnam("nobody").pw_uid)
    try:
        yield
    finally:
        if root:
            os.seteuid(0)
        for path, mode in modes.items():
            path.chmod(mode)
