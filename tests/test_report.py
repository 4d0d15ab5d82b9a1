"""The scan report from database rows: HTML, GeoJSON, CSV, thumbnails with boxes, crops."""

from __future__ import annotations

import csv
import ctypes
import ctypes.util
import hashlib
import json
import os
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest
from configured import CONFIGS
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from serve.api.open311 import file_request
from serve.cases.coords import CoordSystem, to_wgs84
from serve.cases.db import open_database, transaction
from serve.cases.deadlines import load_calendar
from serve.cases.enums import PhotoStatus
from serve.cases.findings import CaseRules, Finding, record_finding
from serve.cases.grids import haversine_m, load_grids
from serve.cases.intake import Placement, join_as_copy
from serve.cases.orm import Case, Evidence, FlowEntry, Photo
from serve.cases.report import ReportOptions, write_report
from vision.core.boxes import Box
from vision.core.imageio import ImageError, Position, decode_photo
from vision.core.taxonomy import load_taxonomy

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=TZ)
GRIDS = load_grids(CONFIGS / "grids.example.geojson")
RULES = CaseRules(
    taxonomy=load_taxonomy(CONFIGS / "taxonomy.yaml"),
    calendar=load_calendar(CONFIGS / "calendar.yaml"),
    grids=GRIDS,
)
GREY = 128
BOX = (200.0, 100.0, 400.0, 260.0)  # in the 640x480 photos below


def photo(path: Path) -> str:
    """A plain grey 640x480 JPEG: anything coloured on its thumbnail was drawn by the report."""
    cv2.imwrite(str(path), np.full((480, 640, 3), GREY, np.uint8))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def database(tmp_path: Path) -> sessionmaker[Session]:
    factory = open_database(f"sqlite:///{tmp_path / 'report.db'}")
    grids = list(GRIDS)
    with transaction(factory) as session:
        for i, (grid, event, cls) in enumerate(
            [
                (grids[0], "exposed_garbage", "garbage"),
                (grids[0], "overflowing_bin", "overflow"),
                (grids[5], "exposed_garbage", "garbage"),
            ]
        ):
            path = tmp_path / f"p{i}.jpg"
            centre = grid.geometry.representative_point()
            record_finding(
                session,
                Finding(
                    event=event,
                    lat=centre.y,
                    lon=centre.x,
                    seen_at=T0 + timedelta(minutes=10 * i),
                    photo_path=str(path),
                    photo_sha256=photo(path),
                    boxes=(Box(BOX, 0.9, cls),),
                    model_version="street-v1@000000000000",
                ),
                RULES,
            )
        now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
        session.add(
            Photo(
                sha256="a" * 64,
                path="/archive/cut.jpg",
                source="patrol",
                status="unreadable",
                error="truncated file (OSError)",
                processed_at=now,
            )
        )
        session.add(
            Photo(
                sha256="b" * 64,
                path="/archive/nogps.jpg",
                source="patrol",
                status="unlocated",
                detections=[{"xyxy": [1, 2, 3, 4], "confidence": 0.9, "class": "garbage"}],
                processed_at=now,
            )
        )
    return factory


def test_report_files(database: sessionmaker[Session], tmp_path: Path) -> None:
    out = tmp_path / "out"
    html_path = write_report(database, out, RULES)
    html = html_path.read_text(encoding="utf-8")
    for number in ("SO202611200001", "SO202611200002", "SO202611200003"):
        assert number in html
    assert "/archive/cut.jpg" in html and "truncated file" in html
    assert "/archive/nogps.jpg" in html and "unlocated" in html
    grids = list(GRIDS)
    assert grids[0].code in html and grids[5].code in html
    assert f"{2 / grids[0].area_km2:.0f}" in html  # two cases in the first grid, per km²
    assert "暴露垃圾" in html and "垃圾满溢" in html

    with (out / "cases.csv").open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["number"] for r in rows] == ["SO202611200001", "SO202611200002", "SO202611200003"]
    assert rows[0]["grid_code"] == grids[0].code and rows[2]["grid_code"] == grids[5].code
    assert rows[0]["cjt214"] == "0102" and rows[1]["gbt47678"] == "06042"
    assert rows[0]["filed_at"] == "" and rows[0]["first_seen_at"] == "2026-11-20T09:00:00+08:00"
    assert rows[0]["evidence"] == "1"

    collection = json.loads((out / "cases.geojson").read_text(encoding="utf-8"))
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == 3
    assert "crs" not in collection  # WGS-84, GeoJSON's own
    first = collection["features"][0]
    centre = grids[0].geometry.representative_point()
    assert first["geometry"]["coordinates"] == pytest.approx([centre.x, centre.y], abs=1e-6)
    assert first["properties"]["number"] == "SO202611200001"


@pytest.mark.parametrize("crs", ["gcj02", "bd09"])
def test_the_geojson_for_a_gis_on_amap_or_baidu_is_in_its_system_and_says_so(
    database: sessionmaker[Session], tmp_path: Path, crs: CoordSystem
) -> None:
    """Cases drawn as WGS-84 on AMap's or Baidu's basemap lie 300-700 m off their street; the CSV
    and the cases themselves stay WGS-84."""
    out = tmp_path / "out"
    write_report(database, out, RULES, ReportOptions(geojson_crs=crs))
    collection = json.loads((out / "cases.geojson").read_text(encoding="utf-8"))
    assert collection["crs"] == {"type": "name", "properties": {"name": crs}}
    with (out / "cases.csv").open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    centre = next(iter(GRIDS)).geometry.representative_point()
    assert (float(rows[0]["lon"]), float(rows[0]["lat"])) == pytest.approx((centre.x, centre.y), abs=1e-6)
    x, y = collection["features"][0]["geometry"]["coordinates"]
    assert haversine_m(y, x, centre.y, centre.x) > 300
    back = [float(v) for v in to_wgs84(x, y, crs)]
    assert back == pytest.approx([centre.x, centre.y], abs=1e-6)


class Links(HTMLParser):
    """The map links of report.html by case card: {case number: {app: attributes}}."""

    def __init__(self) -> None:
        super().__init__()
        self.case = ""
        self.links: dict[str, dict[str, dict[str, str | None]]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "div" and named.get("class") == "case":
            self.case = named["id"] or ""
        elif tag == "a" and named.get("data-app"):
            self.links.setdefault(self.case, {})[named["data-app"] or ""] = named


HOSTILE = "\"><script>alert(1)</script> A&B #top ?name=x&coord_type=wgs84 '单引号'"


def test_each_case_opens_in_amap_and_baidu_in_their_own_systems(
    database: sessionmaker[Session], tmp_path: Path
) -> None:
    """A handler copying the WGS-84 numbers into AMap or Baidu walks 300-700 m off: each case card
    links AMap with its GCJ-02 place and Baidu with its BD-09 place, each naming its system, and
    geo: with WGS-84; the case's words stay inside their parameter."""
    with transaction(database) as session:
        case = session.scalars(select(Case).where(Case.number == "SO202611200002")).one()
        case.description, case.address = HOSTILE, None
    html = write_report(database, tmp_path / "out", RULES).read_text(encoding="utf-8")
    assert "<script>alert" not in html
    parser = Links()
    parser.feed(html)
    assert sorted(parser.links) == ["SO202611200001", "SO202611200002", "SO202611200003"]
    centre = next(iter(GRIDS)).geometry.representative_point()
    for links in parser.links.values():
        assert list(links) == ["amap", "baidu", "geo"]
        assert all(a["target"] == "_blank" and a["rel"] == "noopener noreferrer" for a in links.values())
    links = parser.links["SO202611200002"]  # in the first grid, with the hostile words
    amap = urlsplit(links["amap"]["href"] or "")
    assert (amap.netloc, amap.path, amap.fragment) == ("uri.amap.com", "/marker", "")
    query = parse_qs(amap.query)
    assert (query["name"], query["coordinate"], query["callnative"]) == (
        [f"SO202611200002 {HOSTILE}"],
        ["gaode"],
        ["1"],
    )
    assert sorted(query) == ["callnative", "coordinate", "name", "position", "src"]
    x, y = (float(v) for v in query["position"][0].split(","))
    assert haversine_m(y, x, centre.y, centre.x) > 300
    assert [float(v) for v in to_wgs84(x, y, "gcj02")] == pytest.approx([centre.x, centre.y], abs=1e-5)
    baidu = urlsplit(links["baidu"]["href"] or "")
    assert (baidu.netloc, baidu.path, baidu.fragment) == ("api.map.baidu.com", "/marker", "")
    query = parse_qs(baidu.query)
    assert (query["title"], query["content"], query["coord_type"], query["output"]) == (
        [f"SO202611200002 {HOSTILE}"],
        [HOSTILE],
        ["bd09ll"],
        ["html"],
    )
    assert sorted(query) == ["content", "coord_type", "location", "output", "src", "title"]
    y, x = (float(v) for v in query["location"][0].split(","))
    assert [float(v) for v in to_wgs84(x, y, "bd09")] == pytest.approx([centre.x, centre.y], abs=1e-5)
    geo = (links["geo"]["href"] or "").removeprefix("geo:").split(",")
    assert [float(v) for v in geo] == pytest.approx([centre.y, centre.x], abs=1e-6)  # WGS-84, lat first


def test_thumbnails_show_boxes_and_crops_cut_them(database: sessionmaker[Session], tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_report(database, out, RULES, ReportOptions(thumb_width=320))
    thumbs = sorted((out / "thumbs").glob("*.jpg"))
    crops = sorted((out / "crops").glob("*.jpg"))
    assert len(thumbs) == 3 and len(crops) == 3
    thumb = cv2.imread(str(thumbs[0]))
    assert thumb.shape[1] == 320
    scale = 320 / 640
    x1, y1, x2, y2 = (round(v * scale) for v in BOX)
    coloured = np.abs(thumb.astype(int) - GREY).max(axis=2) > 40
    assert coloured[(y1 + y2) // 2, x1 - 1 : x1 + 2].any()  # the box's left and right edges are drawn
    assert coloured[(y1 + y2) // 2, x2 - 2 : x2 + 1].any()
    assert not coloured[5:40, 5:40].any()  # far from the box the photo is untouched
    crop = cv2.imread(str(crops[0]))
    assert crop.shape[:2] == (round(160 * 1.2), round(200 * 1.2))  # the box plus a 10 % margin each side


def test_missing_photos_and_limits(database: sessionmaker[Session], tmp_path: Path) -> None:
    for image in tmp_path.glob("p*.jpg"):
        image.unlink()
    out = tmp_path / "out"
    html = write_report(database, out, RULES, ReportOptions(html_cases=2)).read_text(encoding="utf-8")
    assert html.count('class="case"') == 2
    assert "SO202611200003" in html and "SO202611200001" not in html  # newest first
    assert html.count("is gone since it was scanned") == 2
    with (out / "cases.csv").open(encoding="utf-8-sig") as handle:
        assert len(list(csv.DictReader(handle))) == 3  # files hold every case whatever the page shows


def test_a_second_report_keeps_images_and_rewrites_tables(
    database: sessionmaker[Session], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    write_report(database, out, RULES)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "crops").glob("*.jpg")}
    first = (out / "cases.csv").read_text(encoding="utf-8-sig")
    write_report(database, out, RULES)
    assert {p: p.stat().st_mtime_ns for p in (out / "crops").glob("*.jpg")} == stamps
    assert (out / "cases.csv").read_text(encoding="utf-8-sig") == first


def test_an_empty_database(tmp_path: Path) -> None:
    factory = open_database(f"sqlite:///{tmp_path / 'empty.db'}")
    html = write_report(factory, tmp_path / "out", RULES).read_text(encoding="utf-8")
    assert "No cases." in html
    assert json.loads((tmp_path / "out" / "cases.geojson").read_text())["features"] == []


def test_the_report_reads_in_chinese_with_english_beside_and_states_as_they_are(
    database: sessionmaker[Session], tmp_path: Path
) -> None:
    """AI findings awaiting review are neither called filed nor given a deadline."""
    html = write_report(database, tmp_path / "out", RULES).read_text(encoding="utf-8")
    assert '<html lang="zh-CN">' in html and 'id="lang"' in html
    case = html[html.index('id="SO202611200001"') :]
    case = case[: case.index('<div class="pictures">')]
    assert 'data-state="reported"' in case
    assert '<span class="zh">待核实</span><span class="en">awaiting review</span>' in case
    assert (
        "立案后开始计时" in case and "处置期限" not in case and "filed" not in case.replace("until filed", "")
    )
    assert '<span class="zh">无位置</span><span class="en">unlocated</span>' in html
    assert "案卷 3 件（其中待核实 3 件）" in html


def test_a_copy_shows_its_boxes_best_score_and_which_evidence_it_copies(
    database: sessionmaker[Session], tmp_path: Path
) -> None:
    """A re-encoded copy joins its original's case with no confidence of its own: the page said
    'best 0.00' under boxes of 0.85 and never said it was a copy."""
    copy = tmp_path / "copy.jpg"
    sha = photo(copy)
    with transaction(database) as session:
        original = session.scalars(select(Evidence).order_by(Evidence.id)).first()
        assert original is not None
        row = Photo(sha256=sha, path=str(copy), source="patrol", status="unlocated", processed_at=T0)
        session.add(row)
        session.flush()
        placement = Placement(position=None, taken_at=T0, grid=None, status=PhotoStatus.UNLOCATED)
        boxes: dict[str, tuple[Box, ...]] = {"exposed_garbage": (Box(BOX, 0.85, "garbage"),)}
        (update,) = join_as_copy(session, [original], row, placement, boxes)
        assert update.evidence.confidence is None
    html = write_report(database, tmp_path / "out", RULES).read_text(encoding="utf-8")
    picture = html[html.index(str(copy)) :]
    picture = picture[: picture.index("</div>")]
    assert "1 box(es), best 0.85" in picture and "best 0.00" not in picture
    assert "a copy of a photo already evidence (SO202611200001, evidence 1)" in picture


def test_the_page_shows_a_bounded_part_and_says_where_the_rest_is(
    database: sessionmaker[Session], tmp_path: Path
) -> None:
    """An archive of 20,000 cases made a page of 20,000 cards nobody could open, and only the first
    500 photos that could not be filed were named anywhere: the page shows a bounded part, says so,
    and the files hold everything."""
    out = tmp_path / "out"
    options = ReportOptions(html_cases=2, html_photos=1)
    html = write_report(database, out, RULES, options).read_text(encoding="utf-8")
    assert html.count('class="case"') == 2
    assert "2 of 3 cases shown (newest first); all are in" in html and "显示 2 / 3 件" in html
    assert html.count("<tr data-status=") == 1
    assert "1 of 2 photos shown; all are in" in html and 'href="problem_photos.csv"' in html
    with (out / "cases.csv").open(encoding="utf-8-sig") as handle:
        assert len(list(csv.DictReader(handle))) == 3
    with (out / "problem_photos.csv").open(encoding="utf-8-sig") as handle:
        rows = {row["path"]: row for row in csv.DictReader(handle)}
    assert rows["/archive/cut.jpg"]["status"] == "unreadable"
    assert rows["/archive/cut.jpg"]["reason"] == "truncated file (OSError)"
    assert rows["/archive/cut.jpg"]["reason_zh"] == "文件不完整（被截断）：truncated file (OSError)"
    assert rows["/archive/nogps.jpg"]["status"] == "unlocated"
    nogps = rows["/archive/nogps.jpg"]
    assert "sidecar" in nogps["reason"] and "sidecar" in nogps["reason_zh"] and nogps["detections"] == "1"


def test_filed_at_is_the_filing_and_empty_while_the_case_awaits_review(
    database: sessionmaker[Session], tmp_path: Path
) -> None:
    """cases.csv gave every case awaiting review a `filed_at` (the time of the photo that opened it),
    and a case filed on 7 December kept its photo's 20 November there: a reader took the first for
    filed and the second for filed weeks before its deadline. `filed_at` is the 立案 step's time."""
    filed = datetime(2026, 12, 7, 22, 29, 34, tzinfo=TZ)
    with transaction(database) as session:
        case = session.scalars(select(Case).order_by(Case.id)).first()
        assert case is not None
        case.state = "filed"
        for action, to_state in (("confirm", "verified"), ("file", "filed")):
            session.add(
                FlowEntry(
                    case_id=case.id, action=action, to_state=to_state, operator="ops", at=filed, overdue=False
                )
            )
    out = tmp_path / "out"
    write_report(database, out, RULES)
    with (out / "cases.csv").open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["state"], r["filed_at"]) for r in rows] == [
        ("filed", "2026-12-07T22:29:34+08:00"),
        ("reported", ""),
        ("reported", ""),
    ]
    collection = json.loads((out / "cases.geojson").read_text(encoding="utf-8"))
    assert [f["properties"]["filed_at"] for f in collection["features"]] == [r["filed_at"] for r in rows]


def test_an_unlocated_photo_counts_its_findings_as_scan_log_does(
    database: sessionmaker[Session], tmp_path: Path
) -> None:
    """scan.log said "no case filed (0 finding(s) seen)" for a street photo the report listed with 4
    detections (parked cars, a bicycle): the report counted every box, the log the events the patrol
    rule files. The report gives both, the findings counted as the log counts them."""
    boxes = [
        {"xyxy": [1, 2, 30, 40], "confidence": 0.9, "class": "car"},
        {"xyxy": [5, 2, 30, 40], "confidence": 0.8, "class": "bicycle"},
        {"xyxy": [9, 2, 30, 40], "confidence": 0.9, "class": "garbage"},
        {"xyxy": [9, 9, 30, 40], "confidence": 0.7, "class": "garbage"},
        {"xyxy": [1, 9, 30, 40], "confidence": 0.2, "class": "overflow"},  # under its min_confidence
    ]
    with transaction(database) as session:
        session.add(
            Photo(
                sha256="c" * 64,
                path="/archive/street.jpg",
                source="patrol",
                status="unlocated",
                detections=boxes,
                processed_at=T0,
            )
        )
    out = tmp_path / "out"
    html = write_report(database, out, RULES).read_text(encoding="utf-8")
    with (out / "problem_photos.csv").open(encoding="utf-8-sig") as handle:
        rows = {row["path"]: row for row in csv.DictReader(handle)}
    street = rows["/archive/street.jpg"]
    assert (street["findings"], street["detections"]) == ("1", "5")  # exposed garbage, twice boxed
    assert (rows["/archive/cut.jpg"]["findings"], rows["/archive/cut.jpg"]["detections"]) == ("0", "0")
    row = html[html.index("/archive/street.jpg") :]
    assert '<td class="n">1 / 5</td>' in row[: row.index("</tr>")]


def test_a_photo_replaced_or_removed_after_the_scan_is_not_drawn_under_its_old_boxes(
    database: sessionmaker[Session], tmp_path: Path
) -> None:
    """The picture was drawn from whatever file was at the path now: another photo under the boxes
    found on the one scanned. The bytes are checked against the recorded sha256 first."""
    cv2.imwrite(str(tmp_path / "p0.jpg"), np.full((480, 640, 3), 255, np.uint8))  # another photo, same path
    (tmp_path / "p1.jpg").unlink()
    out = tmp_path / "out"
    html = write_report(database, out, RULES).read_text(encoding="utf-8")
    first = html[html.index('id="SO202611200001"') : html.index("</h2>", html.index('id="SO202611200001"'))]
    second = html[html.index('id="SO202611200002"') : html.index('id="SO202611200001"')]  # newest first
    assert f"the photo at {tmp_path / 'p0.jpg'} has changed since it was scanned" in first
    assert f"the photo at {tmp_path / 'p1.jpg'} is gone" in second
    assert "<img" not in first and "<img" not in second
    assert [p.name.split("-")[0] for p in (out / "thumbs").glob("*.jpg")] == ["SO202611200003"]
    assert len(list((out / "crops").glob("*.jpg"))) == 1


def bytes_read() -> int:
    """What this process has read so far (Linux's rchar: every read() call, from disk or cache)."""
    return next(
        int(line.split()[1]) for line in Path("/proc/self/io").read_text().splitlines() if "rchar" in line
    )


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="Linux counts the bytes read")
def test_a_photo_replaced_by_a_huge_file_is_not_read_into_memory(
    database: sessionmaker[Session], tmp_path: Path
) -> None:
    """The pictures read each archive photo whole to check it against the scan; a file larger than
    a scan reads (a photo replaced since by a 300 MB one) was read whole into memory too."""
    with (tmp_path / "p0.jpg").open("wb") as huge:  # sparse: no disk used
        huge.truncate(300 * 2**20)
    before = bytes_read()
    html = write_report(database, tmp_path / "out", RULES).read_text(encoding="utf-8")
    assert f"the photo at {tmp_path / 'p0.jpg'} has changed since it was scanned" in html
    assert bytes_read() - before < 50 * 2**20, f"{bytes_read() - before:,} bytes read"


def test_an_event_with_a_limit_in_minutes(database: sessionmaker[Session], tmp_path: Path) -> None:
    """Street vending's limit is in minutes, a unit the page had no words for: the report failed."""
    centre = list(GRIDS)[1].geometry.representative_point()
    path = tmp_path / "vendor.jpg"
    with transaction(database) as session:
        record_finding(
            session,
            Finding(
                event="street_vending",
                lat=centre.y,
                lon=centre.x,
                seen_at=T0,
                photo_path=str(path),
                photo_sha256=photo(path),
                boxes=(Box(BOX, 0.9, "garbage"),),
            ),
            RULES,
        )
    html = write_report(database, tmp_path / "out", RULES).read_text(encoding="utf-8")
    assert '20 <span class="zh">分钟</span><span class="en">minutes</span>' in html


def test_folders_the_scan_could_not_list_are_named(database: sessionmaker[Session], tmp_path: Path) -> None:
    """Named in scan.log and the summary, but not on the page people read."""
    folders = ["/archive/locked", "/archive/deep"]
    page = write_report(database, tmp_path / "out", RULES, unlisted_folders=folders)
    html = page.read_text(encoding="utf-8")
    assert "Folders the scan could not list (2)" in html
    assert "<li>/archive/locked</li>" in html and "<li>/archive/deep</li>" in html
    again = write_report(database, tmp_path / "again", RULES).read_text(encoding="utf-8")
    assert "Folders the scan could not list" not in again


OPEN = 0x20  # inotify's IN_OPEN


@contextmanager
def opens(paths: list[Path]) -> Iterator[dict[Path, int]]:
    """How many times each file is opened inside the block, as Linux sees it (inotify on the real
    files): a read of the photo, whoever does it. Closes are watched too: inotify merges an event
    into the same one just before it, and open, close, open, close stays four."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK)
    assert fd >= 0, os.strerror(ctypes.get_errno())
    watches = {libc.inotify_add_watch(fd, str(p).encode(), OPEN | 0x10): p for p in paths}  # CLOSE_NOWRITE
    counts = dict.fromkeys(paths, 0)
    try:
        yield counts
        events = b""
        while True:
            try:
                events += os.read(fd, 65536)
            except BlockingIOError:
                break
        while events:
            wd, mask, _cookie, size = struct.unpack_from("iIII", events)
            counts[watches[wd]] += bool(mask & OPEN)
            events = events[16 + size :]
    finally:
        os.close(fd)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify counts the opens")
def test_each_archive_photo_is_read_once_for_its_check_and_its_pictures(
    database: sessionmaker[Session], tmp_path: Path
) -> None:
    """Each shown photo was read twice: once to hash it (still the photo scanned?), then again to
    draw it, and a photo replaced between the two reads would be drawn under the old boxes. It is
    read once, and the bytes hashed are the bytes drawn; a second report (its pictures kept) reads
    each once for the check alone."""
    photos = [tmp_path / f"p{i}.jpg" for i in range(3)]
    with opens(photos) as first:
        write_report(database, tmp_path / "out", RULES)
    assert first == dict.fromkeys(photos, 1)
    assert len(list((tmp_path / "out" / "thumbs").glob("*.jpg"))) == 3
    with opens(photos) as second:
        write_report(database, tmp_path / "out", RULES)
    assert second == dict.fromkeys(photos, 1)


def test_a_citizen_request_without_a_photo_is_not_a_photo_gone(
    database: sessionmaker[Session], tmp_path: Path
) -> None:
    """A case from an Open311 request (the citizen's words, perhaps a link to their photo) read "the
    photo at open311 request is gone since it was scanned": there never was a photo of ours."""
    centre = list(GRIDS)[3].geometry.representative_point()
    with transaction(database) as session:
        requests = [("路边有一堆垃圾", "https://example.org/p.jpg"), ("桶满了", "javascript:alert(1)")]
        for description, link in requests:
            file_request(
                session,
                event=RULES.taxonomy.events["exposed_garbage"],
                fields={"service_code": "06010", "description": description, "media_url": link},
                position=Position(centre.y, centre.x + 0.0008 * len(description)),
                placed="lat/long",
                reporter="bridge",
                received_at=T0 + timedelta(hours=1),
                rules=RULES,
            )
    html = write_report(database, tmp_path / "out", RULES).read_text(encoding="utf-8")
    assert "is gone since it was scanned" not in html and "open311 request 处的照片" not in html
    assert "路边有一堆垃圾" in html and "桶满了" in html
    assert 'href="https://example.org/p.jpg"' in html and 'href="javascript:' not in html


def test_the_chinese_reason_of_an_unreadable_file_is_in_chinese(tmp_path: Path) -> None:
    """The page is in Chinese, yet an unreadable file's reason was the decoder's English alone in
    both columns ("cannot read file: Too many levels of symbolic links"). The reasons the decoder
    and the walk write lead with Chinese words there, the English kept for its details."""
    good = cv2.imencode(".jpg", np.full((480, 640, 3), GREY, np.uint8))[1].tobytes()
    broken = {"empty.jpg": b"", "x.jpg": b"this is not a photo\n", "cut.jpg": good[: len(good) // 2]}
    factory = open_database(f"sqlite:///{tmp_path / 'reasons.db'}")
    with transaction(factory) as session:
        for name, data in broken.items():
            with pytest.raises(ImageError) as refused:
                decode_photo(data, source=name)
            session.add(
                Photo(
                    sha256=hashlib.sha256(name.encode()).hexdigest(),
                    path=name,
                    source="patrol",
                    status="unreadable",
                    error=refused.value.reason,
                    processed_at=T0,
                )
            )
        session.add(
            Photo(
                sha256="d" * 64,
                path="loop.jpg",
                source="patrol",
                status="unreadable",
                error="cannot read file: Too many levels of symbolic links",  # the walk's words for a loop
                processed_at=T0,
            )
        )
    out = tmp_path / "out"
    html = write_report(factory, out, RULES).read_text(encoding="utf-8")
    with (out / "problem_photos.csv").open(encoding="utf-8-sig") as handle:
        zh = {row["path"]: (row["reason_zh"], row["reason"]) for row in csv.DictReader(handle)}
    for path, words in [
        ("empty.jpg", "空文件"),
        ("x.jpg", "不是图片"),
        ("cut.jpg", "文件不完整（被截断）"),
        ("loop.jpg", "无法读取文件"),
    ]:
        chinese, english = zh[path]
        assert chinese == f"{words}：{english}", path
        assert f'<span class="zh">{words}：' in html
