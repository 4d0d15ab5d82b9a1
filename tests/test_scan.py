"""`streetorder scan` end to end with the real model on real street photos the test places on grids."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import pytest
from alembic.script import ScriptDirectory
from configured import CONFIGS, MODELS
from conftest import another_writer_holding, give_up_lock_waits_after, postgresql_read_only
from PIL import ExifTags, Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from unwritable import read_only

from serve.cases.coords import wgs84_to_gcj02
from serve.cases.db import MIGRATIONS, open_database
from serve.cases.grids import haversine_m, load_grids
from serve.cases.orm import Case, Evidence, Photo
from serve.cases.scan import Listing, ScanInputError, iter_photos, read_sidecar
from serve.cases.settings import get_settings
from serve.cli.demo import pick_sample_photos
from serve.cli.scan import CONSOLE_WARNINGS, cli
from vision.core.imageio import Position, exif_for
from vision.core.taxonomy import load_taxonomy
from vision.detect.pipeline import read_source
from vision.detect.registry import CURRENT, find_model

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "datasets" / "garbage-cn"
TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 20, 9, 0, tzinfo=TZ)
GRIDS = list(load_grids(CONFIGS / "grids.example.geojson"))
TAXONOMY = load_taxonomy(get_settings().configs_dir / "taxonomy.yaml")  # the one the scan applies


LISTINGS: list[list[str]] = []  # while a test counts them: the folders os.scandir listed (os.walk uses it)


def _count_listings(event: str, args: tuple[object, ...]) -> None:
    if event == "os.scandir" and LISTINGS:
        LISTINGS[-1].append(os.fspath(args[0]))  # type: ignore[arg-type]  # the folder listed


sys.addaudithook(_count_listings)  # the interpreter's own audit events: no stand-in for os.walk


def spot(i: int) -> Position:
    """Inside the i-th example grid: grids are ~100 m apart, more than the 50 m duplicate radius."""
    point = GRIDS[i % len(GRIDS)].geometry.representative_point()
    return Position(point.y, point.x)


def place(
    source: Path, target: Path, position: Position | None, taken_at: datetime | None, size: int = 0
) -> str:
    """Copy a dataset photo as a patrol photo with EXIF GPS and time; returns its sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        picture = image.resize((size, size)) if size else image.copy()
    picture.save(target, "JPEG", quality=90, exif=exif_for(position=position, taken_at=taken_at))
    return hashlib.sha256(target.read_bytes()).hexdigest()


def counts(factory: sessionmaker[Session]) -> tuple[int, int, int]:
    with factory() as session:
        return tuple(  # type: ignore[return-value]
            int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in (Photo, Case, Evidence)
        )


def case_signature(factory: sessionmaker[Session]) -> list[tuple[str, str, str | None, tuple[str, ...]]]:
    with factory() as session:
        return [
            (case.number, case.event, case.grid_code, tuple(sorted(e.sha256 for e in case.evidence)))
            for case in session.scalars(select(Case).order_by(Case.number))
        ]


# ------------------------------------------------------------------------ inputs (no model needed)


def test_walks_folders_files_and_lists(tmp_path: Path) -> None:
    names = ("a/2.jpg", "a/1.JPEG", "a/sub/3.png", "a/skip.txt", "a/4.gif", "a/6.HEIC", "a/7.webp", "b/5.jpg")
    for name in (*names, "loose.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    listing = tmp_path / "b" / "list.txt"
    listing.write_text("# patrol 2026-11-20\n5.jpg\n\n/elsewhere/6.jpg\n", encoding="utf-8")
    found = list(iter_photos([tmp_path / "a", tmp_path / "loose.png", listing]))
    assert found == [
        tmp_path / "a" / "1.JPEG",
        tmp_path / "a" / "2.jpg",
        tmp_path / "a" / "6.HEIC",
        tmp_path / "a" / "7.webp",
        tmp_path / "a" / "sub" / "3.png",
        tmp_path / "loose.png",
        tmp_path / "b" / "5.jpg",
        Path("/elsewhere/6.jpg"),
    ]
    with pytest.raises(ScanInputError, match="no such file"):
        list(iter_photos([tmp_path / "missing"]))


def test_a_linked_folder_is_walked_once_and_a_link_round_a_loop_ends(tmp_path: Path) -> None:
    """An archive spread over disks by links to folders (2025 -> /mnt/disk2/2025): the scan skipped
    the linked folders without a word. They are walked, each real folder once, so a link back up
    the tree (a loop) or to a folder walked anyway adds nothing."""
    disk2 = tmp_path / "disk2" / "2025"
    archive = tmp_path / "archive"
    for name in (disk2 / "11" / "a.jpg", archive / "2026" / "b.jpg"):
        name.parent.mkdir(parents=True, exist_ok=True)
        name.write_bytes(b"x")
    (archive / "2025").symlink_to(disk2)
    (archive / "2026" / "again").symlink_to(archive / "2026")  # a loop
    (archive / "zz-same").symlink_to(archive / "2026")  # walked already
    others: Counter[str] = Counter()
    assert list(iter_photos([archive], others)) == [
        archive / "2025" / "11" / "a.jpg",
        archive / "2026" / "b.jpg",
    ]
    assert not others


def test_the_listing_runs_ahead_of_the_work_by_a_bounded_number_of_photos(tmp_path: Path) -> None:
    """One walk feeds the work as it goes, counting what it found; it never holds more than `ahead`
    photos the work has not taken, however large the archive."""
    for n in range(10):
        (tmp_path / f"{n:02d}.jpg").write_bytes(b"x")
    with Listing([tmp_path], ahead=3) as listing:
        deadline = time.monotonic() + 30
        while listing.found < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        assert (listing.found, listing.complete) == (4, False)  # 3 waiting, the 4th waiting for room
        assert list(listing) == sorted(tmp_path.glob("*.jpg"))
        assert (listing.found, listing.complete) == (10, True)
    with Listing([tmp_path / "missing"]) as listing, pytest.raises(ScanInputError, match="no such file"):
        list(listing)


def test_sidecar_rows(tmp_path: Path) -> None:
    sidecar = tmp_path / "positions.csv"
    sidecar.write_text(
        "file,lat,lon,taken_at\n"
        "a.jpg,34.7235,113.6265,2026-11-20T09:15:00+08:00\n"
        "sub/b.jpg,34.72,113.63,2026-11-20 09:20:00\n"
        "c.jpg,,,2026-11-20T01:00:00Z\n"
        "d.jpg,34.72,113.63,\n",
        encoding="utf-8",
    )
    rows = read_sidecar(sidecar, TZ)
    assert rows[(tmp_path / "a.jpg").resolve()].position == Position(34.7235, 113.6265)
    assert rows[(tmp_path / "sub" / "b.jpg").resolve()].taken_at == datetime(2026, 11, 20, 9, 20, tzinfo=TZ)
    assert rows[(tmp_path / "c.jpg").resolve()].position is None
    assert rows[(tmp_path / "c.jpg").resolve()].taken_at == datetime(2026, 11, 20, 9, 0, tzinfo=TZ)
    assert rows[(tmp_path / "d.jpg").resolve()].taken_at is None


def test_sidecar_positions_read_off_amap_are_kept_as_wgs84(tmp_path: Path) -> None:
    """`scan --sidecar-crs gcj02`: positions a clerk read off AMap are some 500 m off WGS-84."""
    lon, lat = 113.6265, 34.7235
    gx, gy = (float(v) for v in wgs84_to_gcj02(lon, lat))
    sidecar = tmp_path / "positions.csv"
    sidecar.write_text(f"file,lat,lon,taken_at\na.jpg,{gy!r},{gx!r},\n", encoding="utf-8")
    kept = read_sidecar(sidecar, TZ, "gcj02")[(tmp_path / "a.jpg").resolve()].position
    assert kept is not None
    assert haversine_m(kept.lat, kept.lon, lat, lon) < 0.01
    assert haversine_m(gy, gx, lat, lon) > 300


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("file,lat,lon\na.jpg,34,113\n", "missing taken_at"),
        ("file,lat,lon,taken_at\na.jpg,34.7,,\n", ":2: lat/lon"),
        ("file,lat,lon,taken_at\na.jpg,north,113.6,\n", ":2: lat/lon"),
        ("file,lat,lon,taken_at\na.jpg,0,0,\n", ":2: lat/lon"),
        ("file,lat,lon,taken_at\na.jpg,34.7,113.6,\nb.jpg,134.7,113.6,\n", ":3: lat/lon"),
        ("file,lat,lon,taken_at\na.jpg,34.7,113.6,yesterday\n", ":2: taken_at"),
        ("file,lat,lon,taken_at\na.jpg,34.7,113.6,\na.jpg,34.7,113.6,\n", ":3: file: a.jpg is listed twice"),
        ("file,lat,lon,taken_at\n,34.7,113.6,\n", ":2: file: empty"),
    ],
)
def test_bad_sidecars_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    sidecar = tmp_path / "positions.csv"
    sidecar.write_text(content, encoding="utf-8")
    with pytest.raises(ScanInputError, match=message) as caught:
        read_sidecar(sidecar, TZ)
    assert str(sidecar) in str(caught.value)


def test_bad_arguments_stop_before_scanning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'scan.db'}"
    assert cli([str(tmp_path / "nowhere"), "--db", db, "--out", str(tmp_path / "out")]) == 2
    assert "nowhere: no such file or folder" in capsys.readouterr().err
    sidecar = tmp_path / "bad.csv"
    sidecar.write_text("file,lat,lon,taken_at\nx.jpg,95,113,\n", encoding="utf-8")
    assert cli([str(tmp_path), "--sidecar", str(sidecar), "--db", db, "--out", str(tmp_path / "out")]) == 2
    assert f"{sidecar}:2: lat/lon" in capsys.readouterr().err
    layout = json.loads((CONFIGS / "grids.example.geojson").read_text(encoding="utf-8"))
    for name, declared, words in (
        ("EPSG:3857", [], "'EPSG:3857' is not lon/lat degrees"),
        ("gcj02", ["--grids-crs", "bd09"], "which is it"),
    ):
        grids = tmp_path / "grids.geojson"
        grids.write_text(json.dumps({**layout, "crs": {"type": "name", "properties": {"name": name}}}))
        assert (
            cli([str(tmp_path), "--grids", str(grids), *declared, "--db", db, "--out", str(tmp_path / "out")])
            == 2
        )
        assert words in capsys.readouterr().err
    assert cli([str(tmp_path), "--model", "no-such-model", "--db", db, "--out", str(tmp_path / "out")]) == 2
    assert "no model 'no-such-model'" in capsys.readouterr().err
    # a photo of a type not taken, given by name, is no list of paths: refused before anything starts
    tiff = tmp_path / "patrol.tif"
    Image.new("RGB", (64, 48), (90, 120, 30)).save(tiff)
    assert cli([str(tiff), "--db", db, "--out", str(tmp_path / "out")]) == 2
    taken = ".heic, .heif, .jfif, .jpe, .jpeg, .jpg, .png, .webp"
    assert f"{tiff}: neither a photo ({taken})" in capsys.readouterr().err


def test_a_list_whose_text_breaks_midway_stops_the_scan_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"a.jpg\n" * 20000 + b"\xff\xfe broken\n")  # past the 64 KiB checked up front
    with pytest.raises(ScanInputError, match="neither a photo"):
        list(iter_photos([listing]))
    db = f"sqlite:///{tmp_path / 'scan.db'}"
    assert cli([str(listing), "--db", db, "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "list.txt: neither a photo" in capsys.readouterr().err


# ------------------------------------------------------------------------------- with the model


def test_a_file_over_the_byte_limit_is_refused_unread_by_path_and_by_url(tmp_path: Path) -> None:
    """The scan read any file whole before deciding it was no photo: a 6 GB one took 6 GB of memory.
    Over the limit, a local file is refused by its size and a URL after limit + 1 bytes."""
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"\xff" * 2000)
    assert read_source(str(photo), 2000) == read_source(photo.as_uri(), 2000) == b"\xff" * 2000
    with pytest.raises(OSError, match="2,000 bytes, over the limit of 1,999: not read"):
        read_source(str(photo), 1999)
    with pytest.raises(OSError, match="over the limit of 1,999 bytes: not read"):
        read_source(photo.as_uri(), 1999)


@pytest.fixture(scope="module")
def samples() -> list[Path]:
    """Real garbage-cn validation photos with the most labelled garbage (labels only pick them)."""
    return pick_sample_photos(DATASET, 8)


def test_scan_files_cases_on_their_grids_and_a_rescan_adds_nothing(
    tmp_path: Path, samples: list[Path], capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    """On SQLite and PostgreSQL."""
    photos = tmp_path / "archive"
    grid_of_photo: dict[str, str] = {}
    for i, source in enumerate(samples[:6]):
        folder = photos / ("day1" if i < 3 else "day2")
        sha = place(source, folder / f"p{i:02d}.jpg", spot(i), START + timedelta(minutes=7 * i))
        grid_of_photo[sha] = GRIDS[i].code
    # trouble in the middle of the archive: the scan must list it and go on
    (photos / "day1" / "p01b.jpg").write_bytes((photos / "day1" / "p01.jpg").read_bytes()[:4000])
    (photos / "day1" / "p01c.jpg").write_text("not a photo", encoding="utf-8")
    nogps_sha = place(samples[6], photos / "day2" / "p09.jpg", None, START)

    db = db_url
    out = tmp_path / "report"
    assert cli([str(photos), "--db", db, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "scanned 9 photo(s)" in printed and "9 new" in printed

    factory = open_database(db)
    with factory() as session:
        statuses = {Path(p.path).name: (p.status, p.error) for p in session.scalars(select(Photo))}
        assert statuses["p01b.jpg"][0] == "unreadable" and "truncated" in (statuses["p01b.jpg"][1] or "")
        assert statuses["p01c.jpg"][0] == "unreadable" and "not an image" in (statuses["p01c.jpg"][1] or "")
        assert statuses["p09.jpg"][0] == "unlocated"
        assert all(statuses[f"p{i:02d}.jpg"][0] == "done" for i in range(6))  # before and after the bad files

        cases = list(session.scalars(select(Case)))
        assert cases, "the model found nothing to file on the sample photos"
        for case in cases:
            event = TAXONOMY.events[case.event]
            assert (case.cjt214, case.gbt47678) == (event.cjt214, event.gbt47678)
            assert case.state == "reported" and case.ai_review == "pending"
            assert case.number.startswith("SO20261120")
            assert case.evidence
            for evidence in case.evidence:
                assert evidence.sha256 != nogps_sha
                assert case.grid_code == grid_of_photo[evidence.sha256]  # the grid the photo was taken in
                assert (
                    evidence.boxes
                    and evidence.model_version
                    and evidence.model_version.startswith(f"{find_model(CURRENT, models_dir=MODELS).name}@")
                )
                for box in evidence.boxes:
                    cls = next(c for c in TAXONOMY.classes if c.name == box["class"])
                    assert cls.patrol and cls.event == case.event and box["confidence"] >= cls.min_confidence
                    x1, y1, x2, y2 = box["xyxy"]
                    assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 640
    before = counts(factory)

    html = (out / "report.html").read_text(encoding="utf-8")
    assert all(case.number in html for case in cases)
    assert "p01b.jpg" in html and "p09.jpg" in html
    with (out / "cases.csv").open(encoding="utf-8-sig") as handle:
        assert len(list(csv.DictReader(handle))) == len(cases)
    assert sorted((out / "thumbs").glob("*.jpg")) and sorted((out / "crops").glob("*.jpg"))
    assert "unreadable" in (out / "scan.log").read_text(encoding="utf-8")

    assert "crs" not in json.loads((out / "cases.geojson").read_text(encoding="utf-8"))

    # again, its report's GeoJSON for a GIS on AMap: GCJ-02, said in its crs member
    assert cli([str(photos), "--db", db, "--out", str(out), "--no-progress", "--geojson-crs", "gcj02"]) == 0
    assert "0 new, 9 already recorded" in capsys.readouterr().out
    assert counts(factory) == before
    amap = json.loads((out / "cases.geojson").read_text(encoding="utf-8"))
    assert amap["crs"] == {"type": "name", "properties": {"name": "gcj02"}}
    by_number = {case.number: case for case in cases}
    for feature in amap["features"]:
        case = by_number[feature["properties"]["number"]]
        shown = [float(v) for v in wgs84_to_gcj02(case.lon, case.lat)]
        assert feature["geometry"]["coordinates"] == pytest.approx(shown, abs=1e-6)


def test_a_scan_lists_each_folder_once_and_its_progress_ends_at_all_it_found(
    tmp_path: Path, samples: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The scan walked the archive twice, once to count photos for the progress bar and once to
    scan them: on a network drive of millions of photos, twice the listing time. Each folder is
    listed once now, and the bar still counts the photos done of all the scan found."""
    archive = tmp_path / "archive"
    for day in range(3):
        for n in range(3):
            place(
                samples[n],
                archive / f"day{day}" / f"p{n}.jpg",
                spot(n),
                START + timedelta(days=day, minutes=n),
            )
        (archive / f"day{day}" / "notes.txt").write_text("patrol", encoding="utf-8")
    LISTINGS.append([])
    try:
        assert (
            cli([str(archive), "--db", f"sqlite:///{tmp_path / 'scan.db'}", "--out", str(tmp_path / "out")])
            == 0
        )
    finally:
        listed = LISTINGS.pop()
    folders = [archive, *(archive / f"day{day}" for day in range(3))]
    assert sorted(f for f in listed if f.startswith(str(archive))) == sorted(map(str, folders))
    captured = capsys.readouterr()
    assert (
        "scanned 9 photo(s)" in captured.out
        and "not read (not photos the scan takes): 3 .txt" in captured.out
    )
    assert "9/9" in captured.err  # the bar: photos done of those found


def test_a_path_that_reads_now_leaves_the_report_of_unreadable_files(
    tmp_path: Path, samples: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A truncated copy replaced by the good photo, and a photo refused as too large that a later scan
    with a larger --max-pixels reads: both stayed listed unreadable beside the photos that now read
    (the second never read at all: its bytes were `known`). A file still broken stays listed, once."""
    photos = tmp_path / "archive"
    place(samples[0], photos / "a.jpg", spot(0), START)
    good = (photos / "a.jpg").read_bytes()
    (photos / "a.jpg").write_bytes(good[:4000])  # an upload cut short
    place(samples[1], photos / "b.jpg", spot(1), START + timedelta(minutes=7), 1600)  # 2.56 MP
    (photos / "c.jpg").write_text("not a photo", encoding="utf-8")
    db, out = f"sqlite:///{tmp_path / 'scan.db'}", tmp_path / "out"

    def unreadable() -> dict[str, str]:
        with open_database(db)() as session:
            rows = session.scalars(select(Photo).where(Photo.status == "unreadable"))
            return {Path(row.path).name: row.error or "" for row in rows}

    def listed() -> list[str]:
        html = (out / "report.html").read_text(encoding="utf-8")
        return sorted(name for name in ("a.jpg", "b.jpg", "c.jpg") if f"{name}</td>" in html)

    assert cli([str(photos), "--db", db, "--out", str(out), "--no-progress", "--max-pixels", "1000000"]) == 0
    first = unreadable()
    assert "truncated" in first["a.jpg"] and "1000000" in first["b.jpg"] and "not an image" in first["c.jpg"]
    assert listed() == ["a.jpg", "b.jpg", "c.jpg"]
    capsys.readouterr()

    (photos / "a.jpg").write_bytes(good)
    assert cli([str(photos), "--db", db, "--out", str(out), "--no-progress"]) == 0
    assert "unreadable: 0," in capsys.readouterr().out
    assert list(unreadable()) == ["c.jpg"]
    assert listed() == ["c.jpg"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count('data-status="unreadable"') == 1 and "无法读取 1 张" in html
    with open_database(db)() as session:
        rows = {Path(row.path).name: row.status for row in session.scalars(select(Photo))}
    assert rows == {"a.jpg": "done", "b.jpg": "done", "c.jpg": "unreadable"}
    said = (out / "scan.log").read_text(encoding="utf-8")
    assert "a.jpg: scanned again (now done); its earlier unreadable entry is superseded: " in said


def test_a_photo_too_small_to_show_anything_is_listed_with_its_size_not_filed(
    tmp_path: Path, samples: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A 1x1 patrol photo (GPS and time in its EXIF) was boxed whole by the model (`garbage_bin`
    0.96) and filed as a case. A photo whose shorter side is under `min_photo_side` is listed as
    unreadable, the report naming it with its size and the minimum; the scan goes on and the photo
    beside it files its cases."""
    photos = tmp_path / "archive"
    tiny = place(samples[0], photos / "tiny.jpg", spot(0), START, size=1)
    place(samples[1], photos / "whole.jpg", spot(1), START + timedelta(minutes=7))
    db, out = f"sqlite:///{tmp_path / 'scan.db'}", tmp_path / "out"
    assert cli([str(photos), "--db", db, "--out", str(out), "--no-progress"]) == 0
    assert "unreadable: 1," in capsys.readouterr().out
    with open_database(db)() as session:
        rows = {Path(row.path).name: (row.status, row.error) for row in session.scalars(select(Photo))}
        pieces = session.scalars(select(Evidence.sha256)).all()
    assert rows["tiny.jpg"] == (
        "unreadable",
        "too small: 1x1 pixels, under the minimum of 32 px on its shorter side (nothing to judge on it)",
    )
    assert rows["whole.jpg"][0] == "done" and pieces and tiny not in pieces
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "tiny.jpg</td>" in html and "under the minimum of 32 px" in html


def test_scans_started_at_once_on_a_new_database_both_open_it(tmp_path: Path) -> None:
    """Two scans started together on a new SQLite file (two inspectors' folders from one cron line)
    ran the migrations interleaved, DDL committed statement by statement: one stopped with "table
    ... already exists", "Circular dependency" or "a newer release migrated it" (it had not)."""
    opener = (
        "import sys; from serve.cases.db import open_database, DatabaseUnavailable\n"
        "try:\n    open_database(sys.argv[1])\n"
        "except DatabaseUnavailable as err:\n    sys.exit(str(err))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for attempt in range(3):
        db = tmp_path / f"new-{attempt}.db"
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", opener, f"sqlite:///{db}"], env=env, stderr=subprocess.PIPE, text=True
            )
            for _ in range(3)
        ]
        said = [run.communicate(timeout=120)[1] for run in runs]
        assert [run.returncode for run in runs] == [0, 0, 0], said
        with sqlite3.connect(db) as connection:
            (version,) = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        assert version == (ScriptDirectory(str(MIGRATIONS)).get_current_head(),)


def test_a_link_to_a_moved_photo_is_listed_by_its_own_name(tmp_path: Path) -> None:
    """The scan's list of unreadable files named the link's missing target, which is not in the folder."""
    photos = tmp_path / "archive"
    photos.mkdir()
    (photos / "gone.jpg").symlink_to(tmp_path / "moved-away" / "IMG_0001.jpg")
    out = tmp_path / "report"
    db = f"sqlite:///{tmp_path / 'scan.db'}"
    assert cli([str(photos), "--db", db, "--out", str(out), "--no-progress"]) == 0
    log = (out / "scan.log").read_text(encoding="utf-8")
    assert str(photos / "gone.jpg") in log and "IMG_0001" not in log


def test_a_photo_named_in_gbk_is_listed_and_the_scan_goes_on(tmp_path: Path, samples: list[Path]) -> None:
    """A zip made on a Chinese Windows unpacks with GBK file names: writing such a path (not UTF-8)
    to the database stopped the whole scan with a traceback. It is listed as unreadable, with what
    it reads as and how to rename it, and the photos after it are scanned."""
    photos = tmp_path / "archive"
    photos.mkdir()
    gbk_name = os.fsdecode("巡查照片.jpg".encode("gbk"))
    (photos / gbk_name).write_bytes(samples[0].read_bytes())
    (photos / "z-after.jpg").write_bytes(samples[1].read_bytes())
    out = tmp_path / "report"
    db = f"sqlite:///{tmp_path / 'scan.db'}"
    assert cli([str(photos), "--db", db, "--out", str(out), "--no-progress"]) == 0
    with open_database(db)() as session:
        rows = {Path(p.path).name: p for p in session.scalars(select(Photo))}
    assert rows["z-after.jpg"].status != "unreadable"
    (listed,) = (row for name, row in rows.items() if name != "z-after.jpg")
    assert listed.status == "unreadable" and "not UTF-8 (read as GBK: 巡查照片.jpg)" in (listed.error or "")
    assert "convmv" in (listed.error or "")
    assert "巡查照片.jpg" in (out / "scan.log").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "logged"),
    [("trunc\nated.jpg", "trunc\\nated.jpg"), ("a\rb.jpg", "a\\rb.jpg"), ("x\u2028y.jpg", "x\\u2028y.jpg")],
)
def test_a_line_break_in_a_file_name_stays_in_its_one_log_entry(
    tmp_path: Path, name: str, logged: str
) -> None:
    """A name with a line break wrote the rest of its entry on a line of its own, with no time or
    level: a line anyone could forge by naming a file. The break is written as an escape."""
    photos = tmp_path / "archive"
    photos.mkdir()
    (photos / name).write_bytes(b"\xff\xd8\xff\xe0 a JPEG cut short")
    out = tmp_path / "report"
    assert (
        cli([str(photos), "--db", f"sqlite:///{tmp_path / 'scan.db'}", "--out", str(out), "--no-progress"])
        == 0
    )
    lines = (out / "scan.log").read_text(encoding="utf-8").splitlines()
    entry = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING) ")
    assert all(entry.match(line) for line in lines), lines  # each line an entry of its own
    assert any(f"{photos / logged}: unreadable" in line for line in lines), lines


def test_files_that_are_no_photos_are_listed_by_their_own_names_not_waited_on_or_read_whole(
    tmp_path: Path, samples: list[Path]
) -> None:
    """An archive's hostile files named like photos, scanned by the real CLI in a process of its own
    under a timeout, so that a scan that hangs fails the test instead of hanging it. Before: a FIFO
    blocked its reader for ever (the scan stalled until the watchdog) and a symlink loop stopped the
    scan with a RuntimeError; a socket said only "No such device or address"; a link to /dev/zero
    was listed as /dev/zero, a path no one finds in the archive; a sparse 6 GB big.jpg was read
    whole into memory (6.7 GB peak, 28 s) to be found no image."""
    photos = tmp_path / "archive"
    photos.mkdir()
    os.mkfifo(photos / "a-pipe.jpg")
    (photos / "b-loop.jpg").symlink_to(photos / "c-loop.jpg")
    (photos / "c-loop.jpg").symlink_to(photos / "b-loop.jpg")
    (photos / "d-photo.jpg").write_bytes(samples[0].read_bytes())
    (photos / "e-zero.jpg").symlink_to("/dev/zero")
    with (photos / "f-big.jpg").open("wb") as sparse:  # no disk taken: a hole of 6 GB
        sparse.truncate(6 * 2**30)
    listening = socket.socket(socket.AF_UNIX)
    try:
        listening.bind(str(photos / "g-socket.jpg"))
        db = f"sqlite:///{tmp_path / 'scan.db'}"
        command = [sys.executable, "-m", "serve.cli.main", "scan", str(photos), "--db", db]
        done = subprocess.run(
            [*command, "--out", str(tmp_path / "out"), "--no-progress", "--max-mb", "64"],
            capture_output=True,
            text=True,
            timeout=180,
            env=os.environ.copy(),
        )
    finally:
        listening.close()
    assert done.returncode == 0, done.stderr[-2000:]
    with open_database(db)() as session:
        rows = {Path(p.path).name: p for p in session.scalars(select(Photo))}
    not_regular = "not a regular file (a pipe, socket, device or folder)"
    assert not_regular in (rows["a-pipe.jpg"].error or "")
    assert "symbolic links" in (rows["b-loop.jpg"].error or "") and rows["c-loop.jpg"].status == "unreadable"
    assert not_regular in (rows["e-zero.jpg"].error or "") and "zero" not in rows
    assert "6,442,450,944 bytes, over the limit of 67,108,864: not read" in (rows["f-big.jpg"].error or "")
    assert not_regular in (rows["g-socket.jpg"].error or "")
    assert rows["d-photo.jpg"].status != "unreadable"


def test_a_folder_that_cannot_be_listed_is_said_not_skipped_unsaid(
    tmp_path: Path, samples: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """os.walk skips a folder it cannot list (no permission, a path over PATH_MAX) without a word:
    a photo 4,600 characters deep was not scanned and the scan said "scanned 1 photo(s)" as if that
    were all. The folder is named in scan.log, in the summary and in report.html."""
    photos = tmp_path / "archive"
    photos.mkdir()
    (photos / "top.jpg").write_bytes(samples[0].read_bytes())
    folder = os.open(photos, os.O_RDONLY)
    for depth in range(45):  # each step relative to the last: no path given is over PATH_MAX
        name = f"{'d' * 100}{depth}"
        os.mkdir(name, dir_fd=folder)
        inner = os.open(name, os.O_RDONLY, dir_fd=folder)
        os.close(folder)
        folder = inner
    deep = os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, dir_fd=folder)
    os.write(deep, samples[1].read_bytes())
    os.close(deep)
    os.close(folder)
    unlisted: list[str] = []
    assert list(iter_photos([photos], unlisted=unlisted)) == [photos / "top.jpg"]
    assert len(unlisted) == 1 and len(unlisted[0]) > 4096

    out = tmp_path / "out"
    assert (
        cli([str(photos), "--db", f"sqlite:///{tmp_path / 'scan.db'}", "--out", str(out), "--no-progress"])
        == 0
    )
    said = capsys.readouterr().out
    assert "scanned 1 photo(s)" in said and "folders not listed: 1 (" in said
    assert "their photos are not scanned" in said
    assert "folder not listed, its photos are not scanned: File name too long" in (
        out / "scan.log"
    ).read_text(encoding="utf-8")
    assert f"<li>{unlisted[0]}</li>" in (out / "report.html").read_text(encoding="utf-8")  # and on the page


def test_each_copy_of_a_broken_file_is_listed_for_someone_to_look_at(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Identical broken files at three paths were one row, keyed by their bytes, naming the first:
    the other two were counted "already recorded" and listed nowhere, so no one looked at them."""
    photos = tmp_path / "archive"
    (photos / "sub").mkdir(parents=True)
    broken = b"\xff\xd8\xff\xe0 a JPEG cut short"
    names = ["bad1.jpg", "bad2.jpg", "sub/bad3.jpg"]
    for name in names:
        (photos / name).write_bytes(broken)
    (photos / "empty1.jpg").write_bytes(b"")
    (photos / "empty2.jpg").write_bytes(b"")
    db, out = f"sqlite:///{tmp_path / 'scan.db'}", tmp_path / "out"
    assert cli([str(photos), "--db", db, "--out", str(out), "--no-progress"]) == 0
    assert "unreadable: 5," in capsys.readouterr().out
    with open_database(db)() as session:
        listed = {
            row.path: row.error for row in session.scalars(select(Photo).where(Photo.status == "unreadable"))
        }
    assert sorted(listed) == sorted(str(photos / name) for name in [*names, "empty1.jpg", "empty2.jpg"])
    html = (out / "report.html").read_text(encoding="utf-8")
    assert all(f"{Path(name).name}</td>" in html for name in names)

    assert cli([str(photos), "--db", db, "--out", str(out), "--no-progress"]) == 0
    again = capsys.readouterr()
    assert "0 new, 5 already recorded" in again.out  # listed once each, not again
    # said as what they are: five warnings "unreadable: ..." came under "unreadable: 0," as if new
    assert (
        "unreadable: 0," in again.out and "still unreadable: 5 file(s) listed by an earlier scan" in again.out
    )
    assert "unreadable" not in again.err
    said = (out / "scan.log").read_text(encoding="utf-8")
    assert said.count("still unreadable (listed since an earlier scan): ") == 5
    (photos / "bad2.jpg").write_bytes(broken + b" and cut differently")
    assert cli([str(photos), "--db", db, "--out", str(out), "--no-progress"]) == 0
    with open_database(db)() as session:
        assert session.scalar(select(func.count()).where(Photo.status == "unreadable")) == 5
    said = (out / "scan.log").read_text(encoding="utf-8")
    assert "bad2.jpg: scanned again (now unreadable); its earlier unreadable entry is superseded" in said


def test_a_notepad_list_with_urls_that_cannot_be_read_scans_the_rest(
    tmp_path: Path, samples: list[Path]
) -> None:
    """A list saved by Windows Notepad (BOM, CRLF): its first line, a comment, was read as the path
    "\ufeff# ..."; an http:// URL without aiohttp stopped the scan with fsspec's ImportError; an
    ftp:// URL was looked up as a relative path. Each is now one unreadable line, and the photo is
    scanned."""
    (tmp_path / "p.jpg").write_bytes(samples[0].read_bytes())
    listing = tmp_path / "list.txt"
    listing.write_bytes(
        "\ufeff# 巡查 2026-11-20\r\np.jpg\r\nhttp://127.0.0.1:9/x.jpg\r\nftp://host/y.jpg\r\n".encode()
    )
    assert list(iter_photos([listing])) == [
        tmp_path / "p.jpg",
        "http://127.0.0.1:9/x.jpg",
        "ftp://host/y.jpg",
    ]
    db = f"sqlite:///{tmp_path / 'scan.db'}"
    assert cli([str(listing), "--db", db, "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    with open_database(db)() as session:
        rows = {p.path: p for p in session.scalars(select(Photo))}
    assert set(rows) == {str(tmp_path / "p.jpg"), "http://127.0.0.1:9/x.jpg", "ftp://host/y.jpg"}
    assert rows[str(tmp_path / "p.jpg")].status != "unreadable"
    assert rows["http://127.0.0.1:9/x.jpg"].status == "unreadable"
    assert "URLs of this scheme are not read" in (rows["ftp://host/y.jpg"].error or "")


def test_heic_and_webp_photos_are_scanned_like_jpegs(tmp_path: Path, samples: list[Path]) -> None:
    """The same patrol photos as JPEG, HEIC (iPhones' default) and WebP: each is located, dated and
    read by the model; the HEIC and WebP ones on the grids their EXIF says."""
    photos = tmp_path / "archive"
    for i, (source, pillow_format, suffix) in enumerate(
        zip(samples[:3], ("JPEG", "HEIF", "WEBP"), (".jpg", ".heic", ".webp"), strict=True)
    ):
        photos.mkdir(exist_ok=True)
        taken = START + timedelta(minutes=5 * i)
        with Image.open(source) as image:
            image.save(
                photos / f"p{i}{suffix}",
                pillow_format,
                quality=90,
                exif=exif_for(position=spot(i), taken_at=taken),
            )
    db = f"sqlite:///{tmp_path / 'scan.db'}"
    assert cli([str(photos), "--db", db, "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    with open_database(db)() as session:
        rows = {Path(p.path).suffix: p for p in session.scalars(select(Photo))}
        assert set(rows) == {".jpg", ".heic", ".webp"}
        for i, suffix in enumerate((".jpg", ".heic", ".webp")):
            row = rows[suffix]
            assert row.status == "done", (suffix, row.error)
            assert row.grid_code == GRIDS[i].code and row.taken_at is not None
            assert row.detections, f"{suffix}: the model saw nothing on a garbage photo"


def test_a_jfif_is_scanned_as_the_jpeg_it_is_and_other_files_are_named_not_dropped_unsaid(
    tmp_path: Path, samples: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Windows saves a JPEG downloaded from a browser as .jfif: it was skipped with the .gif, the
    .tif and the camera's Thumbs.db beside it, and the summary counted none of them."""
    photos = tmp_path / "archive"
    (photos / "sub").mkdir(parents=True)
    with Image.open(samples[0]) as image:
        image.save(photos / "sub" / "download.jfif", "JPEG", exif=exif_for(position=spot(0), taken_at=START))
        image.save(photos / "scan.tif", "TIFF")
        image.save(photos / "a.gif", "GIF")
        image.save(photos / "sub" / "b.gif", "GIF")
    (photos / "Thumbs.db").write_bytes(b"\0" * 64)
    (photos / "README").write_text("patrol 2026-11-20", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'scan.db'}"
    assert cli([str(photos), "--db", db, "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    with open_database(db)() as session:
        [row] = session.scalars(select(Photo))
        assert (Path(row.path).name, row.status, row.grid_code) == ("download.jfif", "done", GRIDS[0].code)
    printed = capsys.readouterr().out
    assert "not read (not photos the scan takes): 2 .gif, 1 (no suffix), 1 .db, 1 .tif;" in printed


def test_a_killed_scan_resumes_to_the_same_cases(tmp_path: Path, samples: list[Path]) -> None:
    """SIGKILL a scan in another process mid-way; scanning again gives what one clean scan gives."""
    photos = tmp_path / "archive"
    total = 24
    for i in range(total):  # upscaled so that the scan takes long enough to be killed in the middle
        place(
            samples[i % len(samples)],
            photos / f"p{i:02d}.jpg",
            spot(i // 2),
            START + timedelta(minutes=i),
            1600,
        )
    killed_db = tmp_path / "killed.db"
    open_database(f"sqlite:///{killed_db}")  # migrated up front, so the count below can be polled at once
    command = [sys.executable, "-m", "serve.cli.main", "scan", str(photos), "--db", f"sqlite:///{killed_db}"]
    log = tmp_path / "killed-scan.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [*command, "--out", str(tmp_path / "out-killed"), "--no-progress"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=os.environ.copy(),
        )
    done_before_kill = 0
    killed_mid_scan = False
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            with sqlite3.connect(killed_db) as connection:
                done_before_kill = connection.execute("select count(*) from photos").fetchone()[0]
            if done_before_kill >= 3:
                process.send_signal(signal.SIGKILL)
                killed_mid_scan = True
                break
            time.sleep(0.005)
    finally:
        if process.poll() is None:
            process.kill()  # past the deadline: never leave a scan behind the test
        process.wait(timeout=30)
    said = log.read_text(errors="replace")[-2000:]
    assert killed_mid_scan, f"{done_before_kill} photo(s) in 120 s, exit {process.returncode}: {said}"
    assert process.returncode == -signal.SIGKILL, "the scan ended before it could be killed"
    assert 3 <= done_before_kill < total

    assert (
        cli(
            [str(photos), "--db", f"sqlite:///{killed_db}", "--out", str(tmp_path / "out-1"), "--no-progress"]
        )
        == 0
    )
    clean_db = f"sqlite:///{tmp_path / 'clean.db'}"
    assert cli([str(photos), "--db", clean_db, "--out", str(tmp_path / "out-2"), "--no-progress"]) == 0
    resumed, clean = open_database(f"sqlite:///{killed_db}"), open_database(clean_db)
    assert counts(resumed) == counts(clean)
    assert counts(resumed)[0] == total
    assert case_signature(resumed) == case_signature(clean)


def test_a_sidecar_locates_photos_without_gps(
    tmp_path: Path, samples: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "archive"
    place(samples[0], photos / "p00.jpg", None, START)
    cv2.imwrite(str(photos / "p01.png"), cv2.imread(str(samples[1])))  # a PNG with no EXIF at all
    db = f"sqlite:///{tmp_path / 'scan.db'}"
    out = str(tmp_path / "out")
    assert cli([str(photos), "--db", db, "--out", out, "--no-progress"]) == 0
    factory = open_database(db)
    with factory() as session:
        assert sorted(p.status for p in session.scalars(select(Photo))) == ["unlocated", "unlocated"]
        assert session.scalar(select(func.count(Case.id))) == 0

    target = spot(3)
    sidecar = tmp_path / "archive" / "positions.csv"
    sidecar.write_text(
        f"file,lat,lon,taken_at\np00.jpg,{target.lat},{target.lon},\np01.png,{target.lat},{target.lon},"
        f"2026-11-20T10:00:00\nP02.JPG,{target.lat},{target.lon},\n",
        encoding="utf-8",
    )
    capsys.readouterr()
    assert cli([str(photos), "--db", db, "--out", out, "--sidecar", str(sidecar), "--no-progress"]) == 0
    # a row naming no photo (a typo, another folder) located nothing, and nothing said so
    missing = photos.resolve() / "P02.JPG"
    assert f"sidecar rows that located nothing: 1 ({missing})" in capsys.readouterr().out
    assert f"{missing}: in the sidecar, but no photo scanned is there" in Path(out, "scan.log").read_text()
    with factory() as session:
        rows = {Path(p.path).name: p for p in session.scalars(select(Photo))}
        assert rows["p00.jpg"].status == "done" and rows["p00.jpg"].taken_at == START  # EXIF time kept
        assert rows["p01.png"].status == "done"
        assert rows["p01.png"].taken_at == datetime(2026, 11, 20, 10, 0, tzinfo=TZ)  # sidecar time, local
        for row in rows.values():
            assert (row.lat, row.lon) == (target.lat, target.lon) and row.grid_code == GRIDS[3].code
        for case in session.scalars(select(Case)):
            assert case.grid_code == GRIDS[3].code


def test_a_scan_from_inside_the_archive_does_not_take_in_its_own_report(
    tmp_path: Path, samples: list[Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cd archive; streetorder scan .` writes the report into archive/out/ (the default --out):
    the next scan took its thumbnails (boxes drawn) and crops in as patrol photos, joined them to
    their cases as copies and listed the rest unlocated, and counted scan.log and the report among
    the files it does not read."""
    photos = tmp_path / "archive"
    for i, source in enumerate(samples[:3]):
        place(source, photos / f"p{i}.jpg", spot(i), START + timedelta(minutes=i))
    monkeypatch.chdir(photos)
    db = f"sqlite:///{tmp_path / 'scan.db'}"
    assert cli([".", "--db", db, "--no-progress"]) == 0
    assert sorted((photos / "out" / "thumbs").glob("*.jpg"))  # the report is in the archive
    first = capsys.readouterr().out
    assert "not read" not in first
    with open_database(db)() as session:
        before = session.scalar(select(func.count(Evidence.id)))
    assert cli([".", "--db", db, "--no-progress"]) == 0
    again = capsys.readouterr().out
    assert "scanned 3 photo(s)" in again and "0 new, 3 already recorded" in again and "not read" not in again
    with open_database(db)() as session:
        assert session.scalar(select(func.count(Evidence.id))) == before
        assert session.scalar(select(func.count(Photo.id))) == 3
    assert "out: the scan's output folder, not scanned" in (photos / "out" / "scan.log").read_text()
    # the report's folder scanned itself: nothing would be walked, and a zero-photo scan said nothing
    assert cli([".", "--out", ".", "--db", db, "--no-progress"]) == 2
    assert "is the report's folder (--out .)" in capsys.readouterr().err


def test_the_console_shows_the_first_warnings_and_scan_log_keeps_them_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An archive of many problem files (here 25 that are no image; in the field, phone photos
    without GPS) warned once a file on the console, the progress bar lost among the lines: the
    console shows CONSOLE_WARNINGS of them and where the rest are, scan.log every one."""
    photos = tmp_path / "archive"
    photos.mkdir()
    for i in range(CONSOLE_WARNINGS + 5):
        (photos / f"{i:02d}.jpg").write_text(f"no photo {i}")
    out = tmp_path / "out"
    assert (
        cli([str(photos), "--db", f"sqlite:///{tmp_path / 'scan.db'}", "--out", str(out), "--no-progress"])
        == 0
    )
    err = capsys.readouterr().err
    shown = [line for line in err.splitlines() if line.startswith("WARNING") and ": unreadable:" in line]
    assert len(shown) == CONSOLE_WARNINGS and "19.jpg: unreadable" in shown[-1]
    assert f"WARNING ... further warnings in {out / 'scan.log'} only" in err
    logged = (out / "scan.log").read_text(encoding="utf-8")
    assert sum(": unreadable:" in line for line in logged.splitlines()) == CONSOLE_WARNINGS + 5


@pytest.mark.parametrize("folder_writable", [False, True], ids=["read-only-folder", "read-only-file"])
def test_a_database_that_cannot_be_written_is_one_line_naming_it_and_what_to_do(
    samples: list[Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    folder_writable: bool,
) -> None:
    """A WAL database in a folder this user may not write, no process holding it (its -wal and -shm
    gone with the last connection): the scan said "cannot open the database (attempt to write a
    readonly database)", and `streetorder serve` the same, naming neither the folder nor the
    files SQLite must make there. A read-only file in a writable folder was found only at the
    first write, after the model had loaded and a batch was inspected. Both are one line naming
    the path and what to do, before anything is scanned; nothing is written."""
    import uvicorn.config  # noqa: F401  # as `nobody` below the interpreter's own modules are out of reach

    import serve.api.app
    import serve.cli.serve  # noqa: F401
    from serve.cli.main import main

    monkeypatch.setenv("STREETORDER_DEV", "1")  # `serve` without a secret of its own
    get_settings.cache_clear()
    home = Path(tempfile.mkdtemp(prefix="streetorder-scan-ro-"))  # nobody must reach it: not tmp_path
    try:
        home.chmod(0o777)
        database, photos = home / "db" / "cases.db", home / "photos"
        place(samples[0], photos / "p.jpg", spot(1), START)
        os.chmod(photos, 0o777)
        database.parent.mkdir()
        open_database(f"sqlite:///{database}").kw["bind"].dispose()
        assert sorted(p.name for p in database.parent.iterdir()) == ["cases.db"]  # no -wal, -shm left
        out = home / "out"
        out.mkdir(mode=0o777)
        out.chmod(0o777)
        url = f"sqlite:///{database}"
        with read_only(database.parent, folder_writable=folder_writable):
            assert main(["scan", str(photos), "--db", url, "--out", str(out), "--no-progress"]) == 1
            said = capsys.readouterr().err.strip()
            if not folder_writable:
                assert main(["serve", "--db", url, "--port", "1"]) == 1  # refused before it listens
                said_too = capsys.readouterr().err.strip()
                assert said_too.startswith(f"streetorder serve: {database}: the database cannot be written")
                assert "its folder may not be written, where SQLite must make cases.db-wal" in said_too
        assert said.startswith(f"streetorder scan: {database}: the database cannot be written: "), said
        assert "Traceback" not in said and len(said.splitlines()) == 1, said
        assert (
            f"make cases.db, cases.db-wal, cases.db-shm and their folder {database.parent} writable "
            "for this user (or use a copy in a writable folder), then run again"
        ) in said
        if folder_writable:
            assert "cases.db, cases.db-wal, cases.db-shm may not be written by this user" in said
            assert said.endswith("nothing was scanned")
        else:
            assert "its folder may not be written, where SQLite must make cases.db-wal, cases.db-shm" in said
        assert counts(open_database(url)) == (0, 0, 0)
    finally:
        get_settings.cache_clear()
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_scan_into_a_postgresql_that_takes_no_writes_is_one_line(
    tmp_path: Path, samples: list[Path], capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    """A PostgreSQL standby after a failover (`default_transaction_read_only`) refuses the first
    write with SQLSTATE 25006: the scan said "make its file and its folder writable", advice for a
    SQLite file, naming no database. It names the database and what to do."""
    photos = tmp_path / "archive"
    place(samples[0], photos / "p.jpg", spot(1), START)
    open_database(db_url).kw["bind"].dispose()
    postgresql_read_only(db_url, True)
    try:
        assert cli([str(photos), "--db", db_url, "--out", str(tmp_path / "out"), "--no-progress"]) == 1
    finally:
        postgresql_read_only(db_url, False)
    said = capsys.readouterr().err.strip()
    assert said.startswith(f"streetorder scan: {db_url}: the database cannot be written (") and (
        "read-only transaction" in said
    ), said
    assert "point --db at one that takes writes (the primary, not a standby)" in said
    assert "Traceback" not in said and len(said.splitlines()) == 1
    assert counts(open_database(db_url)) == (0, 0, 0)


def test_a_copy_without_gps_says_it_joined_the_case_of_its_original(
    tmp_path: Path, samples: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A photo re-saved at quality 70 (EXIF gone) joined its original's case as a copy, yet scan.log
    warned "unlocated ...; no case filed" and the report listed it to be given a place in a sidecar,
    which would change nothing. Both say which case it joined."""
    photos = tmp_path / "archive"
    place(samples[0], photos / "a" / "original.jpg", spot(2), START)
    copy = photos / "b" / "copy.jpg"
    copy.parent.mkdir()
    cv2.imwrite(str(copy), cv2.imread(str(photos / "a" / "original.jpg")), [cv2.IMWRITE_JPEG_QUALITY, 70])
    db = f"sqlite:///{tmp_path / 'scan.db'}"
    out = tmp_path / "out"
    assert cli([str(photos), "--db", db, "--out", str(out), "--no-progress"]) == 0
    with open_database(db)() as session:
        numbers = sorted(session.scalars(select(Case.number)))
        (row,) = session.scalars(select(Photo).where(Photo.path == str(copy.resolve())))
        assert row.status == "unlocated" and numbers
    captured = capsys.readouterr()
    assert str(copy.resolve()) not in captured.err + captured.out  # no warning: nothing to do
    (line,) = [line for line in (out / "scan.log").read_text().splitlines() if "copy.jpg" in line]
    assert f"a copy of evidence of {', '.join(numbers)}: added to it as evidence" in line
    with (out / "problem_photos.csv").open(encoding="utf-8-sig") as handle:
        (listed,) = [r for r in csv.DictReader(handle) if r["path"] == str(copy.resolve())]
    assert (
        listed["reason"]
        == f"a copy of evidence of {numbers[0]}: added to that case as evidence, no case of its own"
    )
    assert numbers[0] in listed["reason_zh"] and "sidecar" not in listed["reason_zh"]


def test_a_rescan_says_how_many_photos_still_wait_for_a_place_or_a_time(
    tmp_path: Path, samples: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Scanned again (or a second archive into the same database), photos recorded unlocated or
    undated the first time were counted "already recorded" alone, under "unlocated: 0": nothing said
    that their findings were still in no case, nor how to give them a place. A copy that joined
    its original's case has nothing to be given and is not counted."""
    photos = tmp_path / "archive"
    place(samples[0], photos / "nogps.jpg", None, START)
    place(samples[1], photos / "notime.jpg", spot(1), None)
    place(samples[2], photos / "original.jpg", spot(2), START)
    cv2.imwrite(
        str(photos / "z-copy.jpg"), cv2.imread(str(photos / "original.jpg")), [cv2.IMWRITE_JPEG_QUALITY, 70]
    )
    db = f"sqlite:///{tmp_path / 'scan.db'}"
    out = tmp_path / "out"
    args = [str(photos), "--db", db, "--out", str(out), "--no-progress"]
    assert cli(args) == 0
    assert "unlocated: 2, undated: 1" in capsys.readouterr().out  # the copy's row is unlocated too
    assert cli(args) == 0
    again = capsys.readouterr().out
    assert "0 new, 4 already recorded" in again and "unlocated: 0, undated: 0" in again
    assert (
        "  still unlocated: 1 photo(s) recorded before without a position (an earlier scan, or the same "
        "bytes twice), their findings in no case: give each its lat/lon in a --sidecar CSV "
        f"(file,lat,lon,taken_at) and scan again; listed in {out / 'problem_photos.csv'}"
    ) in again
    assert "  still undated: 1 photo(s) recorded before without a capture time" in again
    assert "still outside" not in again
    logged = (out / "scan.log").read_text(encoding="utf-8")
    assert f"{(photos / 'nogps.jpg').resolve()}: still unlocated (recorded so before)" in logged
    assert "z-copy.jpg: still" not in logged


def test_a_copy_scanned_before_its_original_joins_the_original_s_case(
    tmp_path: Path, samples: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A copy re-saved smaller without its EXIF and scanned before its original (an earlier scan, or
    earlier in name order) was kept unlocated; the original then filed its cases and the copy stayed
    unlocated for ever, listed to be given a place in a sidecar. It joins the original's cases, as a
    copy scanned after its original does, and the summary, scan.log and the report say so."""
    originals = tmp_path / "originals"
    place(samples[0], originals / "first.jpg", spot(2), START)
    place(samples[1], originals / "second.jpg", spot(4), START + timedelta(hours=1))

    def resaved(original: Path, copy: Path) -> None:
        copy.parent.mkdir(parents=True, exist_ok=True)
        picture = cv2.imread(str(original))
        smaller = cv2.resize(picture, (picture.shape[1] * 3 // 4, picture.shape[0] * 3 // 4))
        cv2.imwrite(str(copy), smaller, [cv2.IMWRITE_JPEG_QUALITY, 70])

    day1, day2 = tmp_path / "day1", tmp_path / "day2"
    resaved(originals / "first.jpg", day1 / "wechat-copy.jpg")  # the copy comes a scan before
    resaved(originals / "second.jpg", day2 / "a-copy.jpg")  # the copy comes first in the same scan
    (day2 / "b-original.jpg").write_bytes((originals / "second.jpg").read_bytes())
    (day2 / "first.jpg").write_bytes((originals / "first.jpg").read_bytes())
    db = f"sqlite:///{tmp_path / 'scan.db'}"
    out = tmp_path / "out"
    assert cli([str(day1), "--db", db, "--out", str(out), "--no-progress"]) == 0
    assert "unlocated: 1" in capsys.readouterr().out
    assert cli([str(day2), "--db", db, "--out", str(out), "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert (
        "  copies joined: 2 photo(s) kept unlocated, undated or outside joined the case(s) of the original "
        f"they copy, scanned only now (which in {out / 'scan.log'})"
    ) in said
    factory = open_database(db)
    with factory() as session:
        rows = {Path(p.path).name: p for p in session.scalars(select(Photo))}
        for copy, original in (("wechat-copy.jpg", "first.jpg"), ("a-copy.jpg", "b-original.jpg")):
            assert rows[copy].status == "unlocated"  # its own record: it has no place of its own
            filed = set(
                session.scalars(select(Evidence.case_id).where(Evidence.photo_id == rows[original].id))
            )
            joined = list(session.scalars(select(Evidence).where(Evidence.photo_id == rows[copy].id)))
            assert filed and {e.case_id for e in joined} == filed, copy
            assert all(e.extra and e.extra["copy_of"] and e.extra["claimed"]["lat"] is None for e in joined)
        numbers = sorted(session.scalars(select(Case.number)))
        assert len(numbers) == len(set(numbers))  # no case of the copies' own
    logged = (out / "scan.log").read_text(encoding="utf-8")
    copy_path, original_path = (day1 / "wechat-copy.jpg").resolve(), (day2 / "first.jpg").resolve()
    assert (
        f"{copy_path}: recorded before without a place or time, a copy of {original_path}: added to" in logged
    )
    with (out / "problem_photos.csv").open(encoding="utf-8-sig") as handle:
        reasons = {Path(r["path"]).name: r["reason"] for r in csv.DictReader(handle)}
    assert reasons["wechat-copy.jpg"].startswith("a copy of evidence of SO")
    assert reasons["a-copy.jpg"].startswith("a copy of evidence of SO")
    assert cli([str(day1), str(day2), "--db", db, "--out", str(out), "--no-progress"]) == 0
    assert "still unlocated" not in capsys.readouterr().out  # nothing left to give a place


def test_a_photo_with_an_implausible_exif_time_waits_undated_for_a_sidecar_time(
    tmp_path: Path, samples: list[Path]
) -> None:
    """A camera whose clock was wrong writes 2999 (or a time days ahead) into every photo. Such a
    photo is kept undated with the reason, never filed, and a sidecar's time files it later; it was
    recorded unreadable under its bytes, so no later scan could ever file it."""
    photos = tmp_path / "archive"
    place(samples[0], photos / "far.jpg", spot(3), START.replace(year=2999))
    place(samples[1], photos / "ahead.jpg", spot(3), datetime.now(TZ) + timedelta(days=3))
    db = f"sqlite:///{tmp_path / 'scan.db'}"
    out = str(tmp_path / "out")
    assert cli([str(photos), "--db", db, "--out", out, "--no-progress"]) == 0
    factory = open_database(db)
    with factory() as session:
        rows = {Path(p.path).name: p for p in session.scalars(select(Photo))}
        assert {name: row.status for name, row in rows.items()} == {
            "far.jpg": "undated",
            "ahead.jpg": "undated",
        }
        assert "EXIF DateTimeOriginal" in (rows["far.jpg"].error or "") and "years" in (
            rows["far.jpg"].error or ""
        )
        assert "ahead of the server clock" in (rows["ahead.jpg"].error or "")
        assert all(row.taken_at is None and row.grid_code == GRIDS[3].code for row in rows.values())
        assert session.scalar(select(func.count(Case.id))) == 0
    assert "2999" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")  # the reason, shown

    sidecar = photos / "times.csv"
    sidecar.write_text(
        "file,lat,lon,taken_at\nfar.jpg,,,2026-11-20T10:00:00\nahead.jpg,,,2026-11-20T10:05:00\n"
    )
    assert cli([str(photos), "--db", db, "--out", out, "--sidecar", str(sidecar), "--no-progress"]) == 0
    with factory() as session:
        rows = {Path(p.path).name: p for p in session.scalars(select(Photo))}
        assert {row.status for row in rows.values()} == {"done"}
        assert (
            rows["far.jpg"].taken_at == datetime(2026, 11, 20, 10, 0, tzinfo=TZ)
            and rows["far.jpg"].error is None
        )
        filed = session.scalar(select(func.count(Case.id)))
    assert filed, "the sample photos' garbage was filed once their time was given"


def test_a_photo_with_a_garbled_exif_time_or_gps_says_so_in_the_report(
    tmp_path: Path, samples: list[Path]
) -> None:
    """A DateTimeOriginal of '2026:13:45 99:00:00' (a camera that never had its clock set) left the
    photo undated with the report's stock reason "EXIF DateTimeOriginal missing", which it is not;
    GPS written without a fix, (0, 0), is the same for a position. The reason is the EXIF's."""
    photos = tmp_path / "archive"
    photos.mkdir()
    garbled = exif_for(position=spot(2))
    garbled.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2026:13:45 99:00:00"
    nofix = exif_for(position=Position(0.0, 0.0), taken_at=START)
    for name, exif, source in (("garbled.jpg", garbled, samples[0]), ("nofix.jpg", nofix, samples[1])):
        with Image.open(source) as image:
            image.save(photos / name, "JPEG", quality=90, exif=exif)
    db = f"sqlite:///{tmp_path / 'scan.db'}"
    out = tmp_path / "out"
    assert cli([str(photos), "--db", db, "--out", str(out), "--no-progress"]) == 0
    with open_database(db)() as session:
        rows = {Path(p.path).name: p for p in session.scalars(select(Photo))}
    assert (rows["garbled.jpg"].status, rows["nofix.jpg"].status) == ("undated", "unlocated")
    assert "'2026:13:45 99:00:00' is not an EXIF date" in (rows["garbled.jpg"].error or "")
    assert "taken_at in a scan's sidecar CSV or the upload's form fields" in (rows["garbled.jpg"].error or "")
    assert "(0, 0)" in (rows["nofix.jpg"].error or "") and "lat/lon" in (rows["nofix.jpg"].error or "")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "2026:13:45 99:00:00" in html and "DateTimeOriginal missing" not in html


def test_a_sidecar_position_for_a_photo_outside_by_its_own_gps_is_not_new_on_every_scan(
    tmp_path: Path, samples: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A GPS logger's sidecar lists every photo; EXIF wins, so one taken outside the grids stays
    outside. It was taken in again on every later scan: "1 new" and its warning each time."""
    photos = tmp_path / "archive"
    place(samples[0], photos / "beijing.jpg", Position(39.9, 116.4), START)
    sidecar = photos / "logger.csv"
    sidecar.write_text(f"file,lat,lon,taken_at\nbeijing.jpg,{spot(0).lat},{spot(0).lon},\n", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'scan.db'}"
    args = [
        str(photos),
        "--db",
        db,
        "--out",
        str(tmp_path / "out"),
        "--sidecar",
        str(sidecar),
        "--no-progress",
    ]
    assert cli(args) == 0
    assert "1 new, 0 already recorded" in capsys.readouterr().out
    assert cli(args) == 0
    assert "0 new, 1 already recorded" in capsys.readouterr().out
    with open_database(db)() as session:
        (row,) = session.scalars(select(Photo))
    assert (row.status, row.lat, row.lon) == ("outside", 39.9, 116.4)


def test_photos_all_outside_the_grids_name_the_layout_they_missed(
    tmp_path: Path, samples: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A bureau in Chengdu that set its own configs folder but not its grids scanned against the
    example layout of Zhengzhou: "outside the grids: 2" and nothing said which grids those were."""
    photos = tmp_path / "成都"
    place(samples[0], photos / "a.jpg", Position(30.6425, 104.0485), START)
    place(samples[1], photos / "b.jpg", Position(30.6430, 104.0490), START)
    args = [str(photos), "--db", f"sqlite:///{tmp_path / 'scan.db'}", "--out", str(tmp_path / "out")]
    assert cli([*args, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "outside the grids: 2" in out
    assert f"  the grids are {get_settings().grids} (12 grid(s), lat 34.72220..34.72400" in out, out
    assert "every new photo located fell outside them" in out and "--grids-crs" in out


def scan_twice(db: str, photos: Path, out: Path, *, held: bool = False) -> int:
    """The first photo alone (its case), then the whole folder, with another writer holding its
    lock (`another_writer_holding`) until the scan has written again where `held`; the second
    scan's exit code."""
    args = ["--db", db, "--no-progress"]
    assert cli([str(photos / "p00.jpg"), *args, "--out", str(out / "first")]) == 0
    if not held:
        return cli([str(photos), *args, "--out", str(out / "second")])
    log = out / "second" / "scan.log"

    def retried() -> bool:
        return log.is_file() and "written again" in log.read_text(encoding="utf-8")

    with another_writer_holding(db, retried):
        return cli([str(photos), *args, "--out", str(out / "second")])


def test_a_scan_that_finds_the_database_busy_writes_again_and_records_every_photo_once(
    tmp_path: Path, samples: list[Path], capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    """Another writer (a second scan, an operator, the service's duplicate rule) holds the case a
    scan's photo joins: PostgreSQL gives up the wait (lock_timeout, as a deadlock or serialization
    failure would), SQLite after its 30 s busy_timeout. The scan stopped with a traceback there.
    Now the photo's transaction is rolled back and written again once the lock is released: the
    scan ends with exit 0, the retry counted in its summary and scan.log, and the cases are those
    of a scan nobody disturbed, each photo and each piece of evidence once."""
    give_up_lock_waits_after(db_url, "300ms")
    photos = tmp_path / "archive"
    place(samples[0], photos / "p00.jpg", spot(0), START)
    place(samples[0], photos / "p01.jpg", spot(0), START + timedelta(minutes=10))  # its copy: joins
    place(samples[1], photos / "p02.jpg", spot(1), START + timedelta(minutes=20))
    out = tmp_path / "out"
    assert scan_twice(db_url, photos, out, held=True) == 0
    printed = capsys.readouterr().out
    assert "2 new, 1 already recorded" in printed
    retries = re.search(r"database busy: (\d+) write\(s\) rolled back", printed)
    assert retries is not None and int(retries[1]) >= 1, printed
    said = (out / "second" / "scan.log").read_text(encoding="utf-8")
    assert said.count("written again") == int(retries[1]) and "(try 2 of 6)" in said
    factory = open_database(db_url)
    with factory() as session:
        paths = sorted(Path(p).name for p in session.scalars(select(Photo.path)))
        pieces = session.execute(select(Evidence.case_id, Evidence.sha256, Evidence.role)).all()
    assert paths == ["p00.jpg", "p01.jpg", "p02.jpg"]
    assert len(set(pieces)) == len(pieces)
    calm = f"sqlite:///{tmp_path / 'calm.db'}"
    assert scan_twice(calm, photos, tmp_path / "calm") == 0
    found = case_signature(factory)
    assert found == case_signature(open_database(calm)) and found
    copied = hashlib.sha256((photos / "p01.jpg").read_bytes()).hexdigest()
    assert any(copied in evidence for *_, evidence in found)  # the copy joined its original's case


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite: 30 s a try
def test_a_conflict_that_outlasts_the_retries_stops_the_scan_with_a_clear_message_and_a_rerun_resumes(
    tmp_path: Path, samples: list[Path], capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    """The other writer keeps its lock: the scan gives up after its tries, says why and what to do
    (exit 1, no traceback), keeps the photos done before, and a rerun once the lock is gone resumes."""
    give_up_lock_waits_after(db_url, "100ms")
    photos = tmp_path / "archive"
    place(samples[0], photos / "p00.jpg", spot(0), START)
    place(samples[0], photos / "p01.jpg", spot(0), START + timedelta(minutes=10))
    args = [str(photos), "--db", db_url, "--out", str(tmp_path / "out"), "--no-progress", "--batch", "1"]
    assert cli([str(photos / "p00.jpg"), *args[1:]]) == 0
    with another_writer_holding(db_url, lambda: False):
        assert cli(args) == 1
    said = capsys.readouterr().err
    assert (
        "streetorder scan: the database stayed busy (canceling statement due to lock timeout) through 6 "
        "tries of one write"
        in said
        and "run again to resume" in said
        and "Traceback" not in said
    )
    assert "(try 6 of 6)" in (tmp_path / "out" / "scan.log").read_text(encoding="utf-8")
    assert cli(args) == 0
    assert "1 new, 1 already recorded" in capsys.readouterr().out
