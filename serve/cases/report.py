"""The scan report, written from the database: what was filed, where, and what could not be used.

Files in the output folder:
- `report.html` (Chinese, with an English toggle like the console's): counts per event class and
  per grid (with cases per km²), the newest cases (a bounded number: a page of 20,000 cards opens
  in no browser) with their state as it is (awaiting review is not filed) and a deadline only once
  the case is filed, its WGS-84 position with links opening it in AMap, Baidu (each in its own system)
  and the phone's maps, with evidence thumbnails (boxes drawn) and crops, the first of the unreadable,
  unlocated, undated and outside photos with reasons, and the folders the run could not list;
  each bounded list says how many it shows and which file holds them all;
- `cases.geojson` (points, for any GIS; WGS-84, or GCJ-02 / BD-09 for a GIS on AMap or Baidu, its
  `crs` member then naming it) and `cases.csv` (for spreadsheets; WGS-84): every case;
- `problem_photos.csv`: every photo that could not be filed, with its reason;
- `crops/`: each evidence box cut out with a margin; `thumbs/`: the drawn thumbnails.

Everything is streamed from the database (cases and photos are never all held in memory); images
already written by an earlier report are kept, so reporting after each scan stays cheap. A
picture is drawn only from the bytes that were scanned (their sha256): a photo replaced or removed
at its path since is said, not drawn under boxes found on another.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from serve.cases.coords import CoordSystem, crs_member, from_wgs84
from serve.cases.enums import Action, PhotoStatus, State
from serve.cases.errors import NotFound
from serve.cases.evidence import evidence_bytes
from serve.cases.findings import CaseRules
from serve.cases.intake import patrol_events
from serve.cases.navigation import navigation_links
from serve.cases.orm import Case, Evidence, FlowEntry, Photo
from serve.cases.spreadsheet import inert
from serve.cases.times import local_iso
from vision.core.boxes import parse_boxes
from vision.core.draw import crop_box, draw_boxes, fit_width
from vision.core.files import file_href
from vision.core.imageio import MAX_PHOTO_BYTES, ImageError, decode_photo

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
CASE_COLUMNS = (
    "number",
    "event",
    "event_name",
    "event_name_zh",
    "cjt214",
    "gbt47678",
    "state",
    "ai_review",
    "source",
    "grid_code",
    "street",
    "community",
    "lat",
    "lon",
    "filed_at",
    "deadline_at",
    "first_seen_at",
    "last_seen_at",
    "evidence",
)
PROBLEM_COLUMNS = ("path", "status", "reason_zh", "reason", "findings", "detections", "taken_at")


# Words of the report, Chinese first and English for the toggle (the console's names of the same things)
STATES = {
    "reported": ("待核实", "awaiting review"),
    "verified": ("已核实，待立案", "verified, to be filed"),
    "not_filed": ("不予立案", "not filed"),
    "filed": ("已立案", "filed"),
    "dispatched": ("已派遣", "dispatched"),
    "handling": ("处理中", "handling"),
    "handled": ("已处置，待核查", "handled, to be checked"),
    "check_passed": ("核查通过", "check passed"),
    "closed": ("已结案", "closed"),
    "suspended": ("挂账", "suspended"),
    "cancelled": ("作废", "cancelled"),
    "force_closed": ("强制结案", "force closed"),
}
REVIEWS = {
    "pending": ("待审核", "pending"),
    "confirmed": ("已确认", "confirmed"),
    "corrected": ("已更正", "corrected"),
    "rejected": ("已驳回", "rejected"),
}
UNITS = {
    "minutes": ("分钟", "minutes"),
    "hours": ("小时", "hours"),
    "days": ("天", "days"),
    "working_hours": ("工作小时", "working hours"),
    "working_days": ("工作日", "working days"),
}
UNFILED = (State.REPORTED, State.VERIFIED, State.NOT_FILED)  # no disposal clock runs before filing
PHOTO_STATUSES = {
    PhotoStatus.UNREADABLE: ("无法读取", "unreadable"),
    PhotoStatus.UNLOCATED: ("无位置", "unlocated"),
    PhotoStatus.UNDATED: ("无拍摄时间", "undated"),
    PhotoStatus.OUTSIDE: ("不在网格内", "outside"),
}
# An unreadable file's reason is written in English by the decoder and the walk (vision.core.imageio,
# serve.cases.scan); the Chinese page leads it with these words, the English kept for its details
UNREADABLE_ZH = (
    ("cannot read file", "无法读取文件"),
    ("empty file", "空文件"),
    ("truncated file", "文件不完整（被截断）"),
    ("not an image", "不是图片"),
    ("corrupt image data", "图片数据损坏"),
    ("unsupported format", "不支持的图片格式"),
    ("decompression bomb", "像素数超过上限（疑似解压炸弹）"),
    ("invalid size", "图片尺寸无效"),
    ("too small", "图片太小，无法判断"),
    ("cannot apply EXIF orientation", "无法按 EXIF 方向转正"),
    ("the file name is not UTF-8", "文件名不是 UTF-8 编码"),
)
REASONS = {
    PhotoStatus.UNLOCATED: (
        "无位置：照片无 GPS 信息或信息不合理；可在 sidecar CSV 中补充 lat/lon",
        "no position: EXIF GPS missing or absurd; give lat/lon in a sidecar CSV",
    ),
    PhotoStatus.UNDATED: (
        "无拍摄时间：照片无 DateTimeOriginal；可在 sidecar CSV 中补充 taken_at",
        "no capture time: EXIF DateTimeOriginal missing; give taken_at in a sidecar CSV",
    ),
    PhotoStatus.OUTSIDE: (
        "拍摄地点不在本辖区任何单元网格内，未建案",
        "outside every unit grid of the layout: no case filed",
    ),
}


@dataclass(frozen=True)
class ReportOptions:
    html_cases: int = 500  # newest cases shown in report.html; all are in cases.csv / cases.geojson
    html_photos: int = 500  # photos not filed (and folders not listed) named in report.html; all in files
    thumbs_per_case: int = 3
    thumb_width: int = 360
    jpeg_quality: int = 85
    geojson_crs: CoordSystem = "wgs84"  # cases.geojson's positions; cases.csv and report.html stay WGS-84
    max_photo_bytes: int = MAX_PHOTO_BYTES  # the scan's limit: a larger file is no photo it recorded


def write_report(
    factory: sessionmaker[Session],
    out: Path,
    rules: CaseRules,
    options: ReportOptions | None = None,
    *,
    evidence_dir: Path | None = None,
    unlisted_folders: Sequence[str] = (),
) -> Path:
    """Write report.html, cases.geojson, cases.csv, problem_photos.csv, crops/ and thumbs/ under
    `out`; returns report.html. `evidence_dir`: the service's evidence store, whose files are shown
    as they are (kept by content); `unlisted_folders`: what the run that wrote it could not list
    (known to the run, not to the database)."""
    options = options or ReportOptions()
    out.mkdir(parents=True, exist_ok=True)
    (out / "crops").mkdir(exist_ok=True)
    (out / "thumbs").mkdir(exist_ok=True)
    tz = rules.calendar.timezone
    with factory() as session:
        with (out / "cases.csv").open("w", encoding="utf-8-sig", newline="") as handle:
            write_cases_csv(session, rules, handle)
        with (out / "cases.geojson").open("w", encoding="utf-8") as handle:
            write_cases_geojson(session, rules, handle, options.geojson_crs)
        with (out / "problem_photos.csv").open("w", encoding="utf-8-sig", newline="") as handle:
            unfiled = write_problem_photos_csv(session, rules, handle)
        totals = _totals(session)
        context = {
            "generated": _newest_time(session, tz),
            "totals": totals,
            "events": _event_counts(session, rules),
            "grids": _grid_counts(session, rules),
            "cases": _html_cases(session, rules, out, options, evidence_dir),
            "cases_shown": min(options.html_cases, totals["cases"]),
            "problems": _problem_photos(session, rules, options.html_photos),
            "problems_total": unfiled,
            "problems_shown": min(options.html_photos, unfiled),
            "unlisted": unlisted_folders[: options.html_photos],
            "unlisted_total": len(unlisted_folders),
            "options": options,
            "states": STATES,
            "reviews": REVIEWS,
            "units": UNITS,
            "unfiled": UNFILED,
        }
        env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
        path = out / "report.html"
        with path.open("w", encoding="utf-8") as handle:
            for chunk in env.get_template("report.html").generate(**context):
                handle.write(chunk)
    return path


def _local(moment: datetime | None, tz: tzinfo) -> str:
    return local_iso(moment, tz) if moment else ""


def _evidence_counts() -> Any:
    return (
        select(Evidence.case_id, func.count(Evidence.id).label("n"))
        .group_by(Evidence.case_id)
        .subquery("counts")
    )


def _filings() -> Any:
    """Each filed case's 立案 time, its latest `file` step (`closing.filed_at`), in one query."""
    return (
        select(FlowEntry.case_id, func.max(FlowEntry.at).label("at"))
        .where(FlowEntry.action == Action.FILE)
        .group_by(FlowEntry.case_id)
        .subquery("filings")
    )


def _case_rows(session: Session, rules: CaseRules, newest_first: bool = False) -> Iterator[dict[str, Any]]:
    """`filed_at` is when the case was filed (立案), empty while it awaits review: the case row's own
    `filed_at` (the API's) is when the photo that opened it was taken, which a spreadsheet's reader
    took for a filing that had not happened."""
    counts = _evidence_counts()
    filings = _filings()
    order = Case.id.desc() if newest_first else Case.id
    query = (
        select(Case, func.coalesce(counts.c.n, 0), filings.c.at)
        .outerjoin(counts, counts.c.case_id == Case.id)
        .outerjoin(filings, filings.c.case_id == Case.id)
        .order_by(order)
    )
    tz = rules.calendar.timezone
    for case, evidence_count, filed in session.execute(query.execution_options(yield_per=500)):
        event = rules.taxonomy.events.get(case.event)
        yield {
            "id": case.id,
            "number": case.number,
            "event": case.event,
            "event_name": event.name if event else case.event,
            "event_name_zh": event.name_zh if event else "",
            "cjt214": case.cjt214,
            "gbt47678": case.gbt47678,
            "state": case.state,
            "ai_review": case.ai_review or "",
            "source": case.source,
            "grid_code": case.grid_code or "",
            "street": case.street or "",
            "community": case.community or "",
            "lat": round(case.lat, 7),
            "lon": round(case.lon, 7),
            "description": case.description,  # for report.html's map links; not a column
            "address": case.address or "",
            "filed_at": _local(filed, tz),
            "deadline_at": _local(case.deadline_at, tz),
            "first_seen_at": _local(case.first_seen_at, tz),
            "last_seen_at": _local(case.last_seen_at, tz),
            "evidence": int(evidence_count),
        }


def write_cases_csv(session: Session, rules: CaseRules, handle: TextIO) -> int:
    writer = csv.DictWriter(handle, fieldnames=CASE_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    rows = 0
    for row in _case_rows(session, rules):
        writer.writerow({key: inert(value) for key, value in row.items()})
        rows += 1
    return rows


def write_cases_geojson(
    session: Session, rules: CaseRules, handle: TextIO, crs: CoordSystem = "wgs84"
) -> int:
    """A FeatureCollection of case points ([lon, lat]), written feature by feature: WGS-84, or in
    `crs` (converted here, the file's `crs` member naming it) for a GIS whose basemap is AMap or Baidu."""
    header = {"type": "FeatureCollection", **crs_member(crs)}
    handle.write(json.dumps(header)[:-1] + ', "features": [\n')
    rows = 0
    for row in _case_rows(session, rules):
        x, y = from_wgs84(row["lon"], row["lat"], crs)
        feature = {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [round(float(x), 7), round(float(y), 7)]},
            "properties": {k: row[k] for k in CASE_COLUMNS if k not in ("lat", "lon")},
        }
        handle.write((",\n" if rows else "") + json.dumps(feature, ensure_ascii=False))
        rows += 1
    handle.write("\n]}\n")
    return rows


def _newest_time(session: Session, tz: tzinfo) -> str:
    newest = session.scalar(select(func.max(Photo.processed_at)))
    return _local(newest, tz)


def _totals(session: Session) -> dict[str, int]:
    photos = dict(session.execute(select(Photo.status, func.count()).group_by(Photo.status)).all())
    return {
        "photos": sum(photos.values()),
        **{status.value: photos.get(status, 0) for status in PhotoStatus},
        "cases": session.scalar(select(func.count(Case.id))) or 0,
        "awaiting_review": session.scalar(select(func.count(Case.id)).where(Case.state == State.REPORTED))
        or 0,
        "evidence": session.scalar(select(func.count(Evidence.id))) or 0,
    }


def _event_counts(session: Session, rules: CaseRules) -> list[dict[str, Any]]:
    rows = session.execute(select(Case.event, func.count(Case.id)).group_by(Case.event)).all()
    counts = dict(rows)
    table = []
    for key, event in rules.taxonomy.events.items():
        if key in counts:
            table.append({"event": event, "cases": counts.pop(key)})
    table += [{"event": None, "key": key, "cases": n} for key, n in counts.items()]
    return sorted(table, key=lambda r: -r["cases"])


def _grid_counts(session: Session, rules: CaseRules) -> list[dict[str, Any]]:
    """Cases per grid and per km² (problems are compared per unit area); cases outside last."""
    rows = session.execute(select(Case.grid_code, func.count(Case.id)).group_by(Case.grid_code)).all()
    table = []
    for code, cases in rows:
        grid = rules.grids.get(code) if code and rules.grids is not None else None
        table.append(
            {
                "code": code,
                "grid": grid,
                "cases": cases,
                "per_km2": cases / grid.area_km2 if grid and grid.area_km2 > 0 else None,
            }
        )
    return sorted(table, key=lambda r: (r["code"] is None, -r["cases"], r["code"] or ""))


def _html_cases(
    session: Session, rules: CaseRules, out: Path, options: ReportOptions, evidence_dir: Path | None
) -> Iterator[dict[str, Any]]:
    """The newest cases with their evidence pictures; images are made as the page is written."""
    for shown, row in enumerate(_case_rows(session, rules, newest_first=True)):
        if shown >= options.html_cases:
            return
        evidence = session.scalars(
            select(Evidence)
            .where(Evidence.case_id == row["id"])
            .order_by(Evidence.id)
            .limit(options.thumbs_per_case)
        ).all()
        row["navigation"] = navigation_links(
            row["lat"],
            row["lon"],
            f"{row['number']} {row['description']}",
            row["address"] or row["description"],
        )
        row["pictures"] = [_pictures(e, row["number"], out, rules, options, evidence_dir) for e in evidence]
        yield row


def _pictures(
    evidence: Evidence,
    number: str,
    out: Path,
    rules: CaseRules,
    options: ReportOptions,
    evidence_dir: Path | None,
) -> dict[str, Any]:
    """Thumbnail with boxes and one crop per box, made once (kept if already there), and only while
    the file at the evidence's path is still the photo scanned: its boxes belong to those bytes."""
    thumb = Path("thumbs") / f"{number}-e{evidence.id}.jpg"
    boxes = parse_boxes(evidence.boxes, f"evidence {evidence.id}").boxes
    crops = [Path("crops") / f"{number}-e{evidence.id}-{k}.jpg" for k in range(len(boxes))]
    citizen = (evidence.extra or {}).get("open311")  # a citizen's request: their words, no photo of ours
    picture = {
        "evidence": evidence,
        # a copy of earlier evidence keeps no confidence of its own: its boxes' best, not "0.00"
        "best": evidence.confidence
        if evidence.confidence is not None
        else max((box.confidence for box in boxes), default=None),
        "copy_of": (evidence.extra or {}).get("copy_of"),
        "citizen": citizen,
        "captured_at": _local(evidence.captured_at, rules.calendar.timezone),
        "href": file_href(evidence.path, out / "report.html"),
        "thumb": thumb.as_posix(),
        "crops": [c.as_posix() for c in crops],
        "error": None,
        "changed": None,
    }
    if citizen is not None:  # nothing drawn, and no photo "gone since it was scanned"
        link = str(citizen.get("media_url") or "")
        picture.update(thumb=None, crops=[], link=link if re.match(r"https?://", link, re.I) else None)
        return picture
    try:  # read once: the bytes checked against the scan are the ones drawn
        path, data = evidence_bytes(evidence_dir, evidence.path, evidence.sha256, options.max_photo_bytes)
    except NotFound:
        picture.update(thumb=None, crops=[], changed="changed" if Path(evidence.path).exists() else "gone")
        return picture
    if all((out / p).exists() for p in (thumb, *crops)):
        return picture
    try:
        image = decode_photo(data, source=str(path)).image
    except ImageError as err:
        picture.update(thumb=None, crops=[], error=err.reason)
        return picture
    small = fit_width(image, options.thumb_width)
    factor = small.shape[1] / image.shape[1]  # boxes drawn at thumbnail size stay crisp and legible
    scaled = [box.scaled(factor) for box in boxes]
    _save(out / thumb, draw_boxes(small, scaled, rules.taxonomy.names), options)
    for crop, box in zip(crops, boxes, strict=True):
        _save(out / crop, crop_box(image, box.xyxy), options)
    return picture


def _save(path: Path, image: np.ndarray, options: ReportOptions) -> None:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality])
    if not ok:
        raise ValueError(f"{path}: cannot encode image of shape {image.shape}")
    path.write_bytes(encoded.tobytes())


def write_problem_photos_csv(session: Session, rules: CaseRules, handle: TextIO) -> int:
    """Every photo that could not be filed, with its reason (the page lists the first ones)."""
    writer = csv.DictWriter(handle, fieldnames=PROBLEM_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    rows = 0
    for row in _problem_photos(session, rules):
        record = {**row, "reason_zh": row["reason"][0], "reason": row["reason"][1]}
        writer.writerow({key: inert(record[key]) for key in PROBLEM_COLUMNS})
        rows += 1
    return rows


def _reason_zh(reason: str) -> str:
    """The Chinese column showed the English reason alone ("cannot read file: Too many levels of
    symbolic links") on a page in Chinese; a reason of no known kind stays as written."""
    words = next((zh for prefix, zh in UNREADABLE_ZH if reason.startswith(prefix)), None)
    return f"{words}：{reason}" if words else reason


def _problem_photos(session: Session, rules: CaseRules, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """`findings`: the events the patrol rule would file from the photo once it is located or dated,
    as scan.log counts them; `detections`: every box the model saw (parked cars, bicycles, ... too).

    A photo without a place or time of its own that is a copy of a case's evidence joined that case
    (`intake.join_as_copy`): its reason says so, where it said to give the place in a sidecar, which
    would change nothing."""
    joined = (
        select(Evidence.photo_id, func.min(Case.number).label("number"))
        .join(Case, Case.id == Evidence.case_id)
        .where(Evidence.photo_id.is_not(None))
        .group_by(Evidence.photo_id)
        .subquery("joined")
    )
    query = (
        select(Photo, joined.c.number)
        .outerjoin(joined, joined.c.photo_id == Photo.id)
        .where(Photo.status != PhotoStatus.DONE)
        .order_by(Photo.status, Photo.path)
        .limit(limit)
    )
    tz = rules.calendar.timezone
    for photo, case_number in session.execute(query.execution_options(yield_per=200)):
        boxes = parse_boxes(photo.detections, f"photo {photo.id}").boxes
        if case_number is not None:
            reason = (
                f"与案卷 {case_number} 已有的证据照片相同或几乎相同，已作为其证据并入，不另建案",
                f"a copy of evidence of {case_number}: added to that case as evidence, no case of its own",
            )
        elif photo.error:
            reason = (_reason_zh(photo.error), photo.error)
        else:
            reason = REASONS.get(photo.status, ("", ""))
        yield {
            "path": photo.path,
            "status": photo.status,
            "status_name": PHOTO_STATUSES.get(photo.status, (photo.status, photo.status)),
            "reason": reason,
            "findings": len(patrol_events(boxes, rules.taxonomy)),
            "detections": len(boxes),
            "taken_at": _local(photo.taken_at, tz),
        }
