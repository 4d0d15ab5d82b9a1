"""How long `streetorder scan` takes to list an archive, before and after it listed it only once.

    .venv/bin/python benchmarks/scan_walk.py [--files 50000] [--per-folder 100] [--repeat 3] [--root DIR]

Makes a tree of `--files` small files (`--per-folder` to a folder, folders two levels deep, one file
in ten not a photo), then times, alternately and `--repeat` times each:

- before: what the scan did up to 2026-12-07, a walk to count the photos for the progress bar and
  a second walk to work (`iter_photos` twice);
- after: the scan's one walk now (`Listing`: a thread lists while the work takes the photos).

and prints the best and median seconds, the folders listed (os.scandir calls, counted through the
interpreter's audit events) and when the first photo reached the work. The files are listed, not
read: on a local disk the second walk is served from the page cache, so the gain measured here is
the least there is; on a network drive every listing is a round trip to the server.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from serve.cases.scan import Listing, iter_photos

LISTED = [0]


def _count(event: str, _args: tuple[object, ...]) -> None:
    if event == "os.scandir":
        LISTED[0] += 1


def make_tree(root: Path, files: int, per_folder: int) -> None:
    for n in range(files):
        folder = root / f"{n // (per_folder * 100):03d}" / f"{n // per_folder % 100:02d}"
        if n % per_folder == 0:
            folder.mkdir(parents=True, exist_ok=True)
        name = f"IMG_{n:07d}.jpg" if n % 10 else f"IMG_{n:07d}.txt"
        (folder / name).write_bytes(b"\xff\xd8\xff\xd9")


def before(root: Path) -> Iterable[Path | str]:
    sum(1 for _ in iter_photos([root], Counter()))  # the progress bar's total
    yield from iter_photos([root])


def after(root: Path) -> Iterable[Path | str]:
    with Listing([root], Counter()) as listing:
        yield from listing


def timed(walk: Callable[[Path], Iterable[Path | str]], root: Path) -> tuple[float, float, int, int]:
    """Seconds to the last photo and to the first, photos, folders listed."""
    LISTED[0] = 0
    started = time.perf_counter()
    first = 0.0
    photos = 0
    for _ in walk(root):
        photos += 1
        if photos == 1:
            first = time.perf_counter() - started
    return time.perf_counter() - started, first, photos, LISTED[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--per-folder", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--root", type=Path, help="where to make the tree (default: a temporary folder)")
    args = parser.parse_args()
    sys.addaudithook(_count)
    with tempfile.TemporaryDirectory(dir=args.root) as tmp:
        root = Path(tmp) / "archive"
        started = time.perf_counter()
        make_tree(root, args.files, args.per_folder)
        print(f"{args.files} files in {root} made in {time.perf_counter() - started:.1f} s")
        runs: dict[str, list[tuple[float, float, int, int]]] = {"before": [], "after": []}
        for _ in range(args.repeat):
            for name, walk in (("before", before), ("after", after)):
                runs[name].append(timed(walk, root))
        for name, results in runs.items():
            seconds = [r[0] for r in results]
            _, _, photos, listed = results[0]
            print(
                f"{name:6}: best {min(seconds):.3f} s, median {statistics.median(seconds):.3f} s "
                f"for {photos} photos; {listed} folder listings; first photo to the work after "
                f"{1000 * statistics.median(r[1] for r in results):.1f} ms"
            )


if __name__ == "__main__":
    main()
