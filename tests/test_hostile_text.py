"""Text from outside written into what a person opens: the scan report (HTML and CSV), the ledger.

File names of photos, OCR text read from flyers and the names in a grid layout file are anyone's
text: in the report they must read as the text they are (no tag, no script, no broken link) and
in a spreadsheet never run as a formula.
"""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest
from configured import CONFIGS
from sqlalchemy.orm import Session, sessionmaker

from serve.cases.db import open_database, transaction
from serve.cases.deadlines import load_calendar
from serve.cases.findings import CaseRules, Finding, record_finding
from serve.cases.grids import load_grids
from serve.cases.orm import Photo
from serve.cases.report import write_report
from serve.cases.spreadsheet import FORMULA_STARTS, inert
from vision.core.boxes import Box
from vision.core.taxonomy import load_taxonomy

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"

# (photo file name, OCR text, grid name, street, community): each row one hostile set
HOSTILE = [
    pytest.param(
        f"{IMG}.jpg", SCRIPT, f'"><{IMG}', '=HYPERLINK("http://x.test","点")', "@SUM(1+1)", id="tags"
    ),
    pytest.param(
        "a\"b'c<svg onload=alert(1)>.jpg", "</pre>" + SCRIPT, "网格 <b>", "+1+1", "-2+3", id="quotes"
    ),
    pytest.param("p#1?x=%41 &amp;.jpg", "&lt;script&gt;", "&amp;", "\t=1+1", "\r=1+1", id="url-and-entities"),
]


class Page(HTMLParser):
    """The tags, attributes and text of a page as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []
        self.hrefs: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(name, value or "") for name, value in attrs]
        self.hrefs += [value or "" for name, value in attrs if tag == "a" and name == "href"]
        self.images += [value or "" for name, value in attrs if tag == "img" and name == "src"]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def hostile_report(tmp_path: Path, name: str, ocr: str, grid_name: str, street: str, community: str) -> Path:
    """A real grid file with hostile names, a case from a hostile-named photo with OCR text, and an
    unreadable photo of the same name; the report written from the database."""
    layout = json.loads((CONFIGS / "grids.example.geojson").read_text(encoding="utf-8"))
    for feature in layout["features"]:
        feature["properties"].update(name=grid_name, street=street, community=community)
    (tmp_path / "grids.geojson").write_text(json.dumps(layout, ensure_ascii=False), encoding="utf-8")
    grids = load_grids(tmp_path / "grids.geojson")
    rules = CaseRules(
        taxonomy=load_taxonomy(CONFIGS / "taxonomy.yaml"),
        calendar=load_calendar(CONFIGS / "calendar.yaml"),
        grids=grids,
    )
    photos = tmp_path / "photos"
    photos.mkdir()
    photo = photos / name
    cv2.imwrite(str(tmp_path / "grey.jpg"), np.full((480, 640, 3), 128, np.uint8))
    photo.write_bytes((tmp_path / "grey.jpg").read_bytes())
    factory: sessionmaker[Session] = open_database(f"sqlite:///{tmp_path / 'report.db'}")
    centre = next(iter(grids)).geometry.representative_point()
    with transaction(factory) as session:
        record_finding(
            session,
            Finding(
                event="exposed_garbage",
                lat=centre.y,
                lon=centre.x,
                seen_at=T0,
                photo_path=str(photo),
                photo_sha256=hashlib.sha256(photo.read_bytes()).hexdigest(),
                boxes=(Box((200.0, 100.0, 400.0, 260.0), 0.9, "garbage"),),
                model_version="street-v1@000000000000",
                extra={"ocr_text": ocr, "phones": [ocr[:20]]},
            ),
            rules,
        )
        session.add(
            Photo(
                sha256="a" * 64,
                path=str(photos / ("cut-" + name)),
                source="patrol",
                status="unreadable",
                error=ocr,
                processed_at=T0,
            )
        )
    return write_report(factory, tmp_path / "out", rules)


@pytest.mark.parametrize(("name", "ocr", "grid_name", "street", "community"), HOSTILE)
def test_hostile_names_and_ocr_text_read_as_text_in_the_report(
    tmp_path: Path, name: str, ocr: str, grid_name: str, street: str, community: str
) -> None:
    """No tag or event handler comes from the data; each value shows as it was; the photo's link
    leads to the photo (before: its raw path as href, cut at '#' or '?', '%41' read as 'A')."""
    report = hostile_report(tmp_path, name, ocr, grid_name, street, community)
    page = Page()
    page.feed(report.read_text(encoding="utf-8"))
    assert page.tags.count("script") == 1 and "b" not in page.tags  # the template's language toggle
    assert all(src.startswith(("thumbs/", "crops/")) for src in page.images)
    assert not [attr for attr, _ in page.attrs if attr.startswith("on")]
    text = "".join(page.text).replace("\r\n", "\n").replace("\r", "\n")  # as HTML reads line ends
    for value in (name, street, community, grid_name, ocr[:20]):
        assert value.replace("\r", "\n") in text
    photo = (tmp_path / "photos" / name).resolve()
    links = [unquote(urlparse(urljoin(report.as_uri(), href)).path) for href in page.hrefs]
    assert str(photo) in links


@pytest.mark.parametrize(("name", "ocr", "grid_name", "street", "community"), HOSTILE)
def test_hostile_text_never_starts_a_formula_in_the_report_csv(
    tmp_path: Path, name: str, ocr: str, grid_name: str, street: str, community: str
) -> None:
    """cases.csv is opened in Excel or WPS: a grid layout's street '=HYPERLINK(...)' is written
    '\\'=HYPERLINK(...)' (before: as is, a live formula); GeoJSON keeps the text as it was."""
    report = hostile_report(tmp_path, name, ocr, grid_name, street, community)
    with (report.parent / "cases.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["street"], r["community"]) for r in rows] == [(inert(street), inert(community))]
    assert not [cell for r in rows for cell in r.values() if cell.startswith(FORMULA_STARTS)]
    assert rows[0]["street"] == "'" + street
    features = json.loads((report.parent / "cases.geojson").read_text(encoding="utf-8"))["features"]
    assert features[0]["properties"]["street"] == street


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+86 138", "'+86 138"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("a=1", "a=1"),
        (" =1", " =1"),
        ("", ""),
        (-1.5, -1.5),
        (None, None),
    ],
)
def test_the_one_spreadsheet_rule(value: object, written: object) -> None:
    assert inert(value) == written
