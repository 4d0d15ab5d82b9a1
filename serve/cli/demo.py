"""`make demo`: scan a few real street photos as if they were a patrol's archive, and show the report.

The photos are garbage-cn validation images from ../shared (never copied into the repository).
They carry no position or time, so the demo writes EXIF GPS and DateTimeOriginal into copies
under out/demo/photos, placing them on the example unit grids of Zhengzhou's Erqi district along
a patrol's route on one Friday morning; two photos are taken 15 m and 25 minutes apart at one spot
(one case, two pieces of evidence when both show garbage). One copy gets no GPS (listed as
unlocated) and one is cut short (listed as unreadable), as happens in real archives.

Photos are picked by the size of their labelled garbage and overflowing bins, so that the demo
shows cases; the labels only choose the photos, the model alone finds what it finds.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image

from serve.cases.coords import CoordSystem
from serve.cases.grids import EARTH_RADIUS_M, load_grids
from serve.cases.settings import get_settings
from serve.cli import scan
from vision.core.imageio import DEFAULT_TIMEZONE, Position, exif_for

DATASET = "garbage-cn"  # in the shared_datasets_dir setting
FILED_CLASSES = {0: "garbage", 2: "overflow"}  # garbage-cn ids whose classes file events on patrol
START = datetime(2026, 11, 20, 9, 0, tzinfo=DEFAULT_TIMEZONE)  # a Friday morning patrol


def pick_sample_photos(dataset: Path, count: int) -> list[Path]:
    """Validation photos with the largest labelled garbage / overflow area, in a stable order."""
    scored = []
    for label in sorted((dataset / "labels" / "val").glob("*.txt")):
        area = 0.0
        for line in label.read_text().splitlines():
            parts = line.split()
            if len(parts) == 5 and int(parts[0]) in FILED_CLASSES:
                area += float(parts[3]) * float(parts[4])
        image = dataset / "images" / "val" / f"{label.stem}.jpg"
        if area > 0 and image.exists():
            scored.append((-area, image.name, image))
    if len(scored) < count:
        raise FileNotFoundError(f"{dataset}: fewer than {count} labelled validation photos")
    return [image for _, _, image in sorted(scored)[:count]]


def offset(position: Position, north_m: float, east_m: float) -> Position:
    lat = position.lat + math.degrees(north_m / EARTH_RADIUS_M)
    lon = position.lon + math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(position.lat))))
    return Position(lat, lon)


def prepare(
    photos: list[Path], out: Path, grids_path: Path, grids_crs: CoordSystem | None = None
) -> list[Path]:
    """Copies of `photos` with EXIF GPS on the grids and patrol times; the last two are made bad."""
    out.mkdir(parents=True, exist_ok=True)
    grids = list(load_grids(grids_path, grids_crs))
    written = []
    for i, source in enumerate(photos):
        grid = grids[(i if i < 2 else i - 1) % len(grids)]  # photos 1 and 2: the same grid
        centre = grid.geometry.representative_point()
        place = Position(centre.y, centre.x)
        if i == 2:
            place = offset(place, 15, 0)  # 15 m from photo 1, 25 minutes later: one case
        taken = START + timedelta(minutes=37 if i == 2 else 12 * i)
        no_gps = i == len(photos) - 2
        target = out / f"patrol-{i + 1:03d}.jpg"
        with Image.open(source) as image:
            exif = exif_for(position=None if no_gps else place, taken_at=taken)
            image.save(target, "JPEG", quality=92, exif=exif)
        written.append(target)
    broken = written[-1]
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 3])  # a copy cut short
    return written


def cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m serve.cli.demo", description=__doc__.splitlines()[0])
    settings = get_settings()
    p.add_argument(
        "--dataset",
        type=Path,
        default=settings.shared_datasets_dir / DATASET,
        help="garbage-cn folder (default: in the shared_datasets_dir setting)",
    )
    p.add_argument("--photos", type=int, default=12, help="how many sample photos")
    p.add_argument("--out", type=Path, default=Path("out") / "demo", help="demo folder (recreated)")
    p.add_argument("--model", default=None, help="model name or path (default: the configured model)")
    args = p.parse_args(argv)
    if not (args.dataset / "labels" / "val").is_dir():
        print(
            f"demo: {args.dataset} not found; give --dataset or STREETORDER_SHARED_DATASETS_DIR",
            file=sys.stderr,
        )
        return 1
    shutil.rmtree(args.out, ignore_errors=True)
    grids = settings.grids
    photos = prepare(
        pick_sample_photos(args.dataset, args.photos), args.out / "photos", grids, settings.grids_crs
    )
    print(
        f"demo: {len(photos)} patrol photos in {args.out / 'photos'}: real garbage-cn validation photos "
        f"from {args.dataset}, with EXIF GPS on the example grids ({grids.name}) and times written by "
        "the demo (one without GPS, one cut short)"
    )
    argv_scan = [str(args.out / "photos"), "--db", f"sqlite:///{args.out / 'streetorder.db'}"]
    argv_scan += ["--out", str(args.out / "report"), "--grids", str(grids)]
    if args.model:
        argv_scan += ["--model", args.model]
    started = time.perf_counter()
    code = scan.cli(argv_scan)
    if code == 0:
        print(
            f"demo: done in {time.perf_counter() - started:.1f} s. Open {args.out / 'report' / 'report.html'}"
            " (cases, evidence with boxes, counts per class and grid, unreadable and unlocated photos)"
        )
    return code


if __name__ == "__main__":
    sys.exit(cli())
