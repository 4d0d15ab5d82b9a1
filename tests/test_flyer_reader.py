"""The flyer reader (vision/detect/flyers.py) on real photos with real rendered Chinese text, the
decision rules, its work with the detector, the scan that files its cases, and bad input."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv
from configured import CONFIGS, TAXONOMY
from conftest import Service
from PIL import Image, ImageDraw
from sqlalchemy import select
from test_scan import START, spot

from serve.cases.db import open_database
from serve.cases.findings import load_case_rules
from serve.cases.orm import Case, Evidence
from serve.cases.report import write_report
from serve.cases.scan import Scanner
from serve.cases.settings import Settings
from vision.core.detector import Detector
from vision.core.imageio import decode_photo, exif_for
from vision.data.flyers.fonts import find_cjk_fonts, fit_font
from vision.data.flyers.layout import STYLES, render_layout
from vision.data.flyers.text import FlyerText
from vision.detect.flyers import FlyerFinder, FlyerRules, decide, group_lines, load_flyer_rules

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "garbage-cn" / "images" / "val"
NUMBER = "13912345678"
NAMES = TAXONOMY.names


@pytest.fixture(scope="module")
def finder() -> FlyerFinder:
    return FlyerFinder(load_flyer_rules(CONFIGS / "flyers.yaml"), TAXONOMY)


def street_photo(index: int = 0) -> np.ndarray:
    photos = sorted(DATASET.glob("*.jpg"))
    if len(photos) <= index:
        pytest.skip(f"needs the garbage-cn val photos in {DATASET}")
    image = cv2.imread(str(photos[index]))
    return cv2.resize(image, (960, 960), interpolation=cv2.INTER_CUBIC)


def paste(photo: np.ndarray, flyer: np.ndarray, at: tuple[int, int]) -> tuple[np.ndarray, tuple[int, ...]]:
    """A rendered RGBA flyer stuck on a photo; the photo and the flyer's box."""
    out = photo.astype(np.float32)
    x, y = at
    height, width = flyer.shape[:2]
    alpha = flyer[..., 3:]
    out[y : y + height, x : x + width] = (
        out[y : y + height, x : x + width] * (1 - alpha) + 255 * flyer[..., 2::-1] * alpha
    )
    return out.astype(np.uint8), (x, y, x + width, y + height)


def sheet_flyer(number: str = NUMBER, height: int = 300) -> np.ndarray:
    text = FlyerText("专业开锁", ("换锁芯 开汽车锁",), "电话:", number, (number,))
    sheet = next(s for s in STYLES if s.name == "sheet")
    flyer = render_layout(text, sheet, 0.7, np.random.default_rng(0), find_cjk_fonts()[:1])
    scale = height / flyer.shape[0]
    return cv2.resize(flyer, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def one_flyer(xyxy: tuple[float, ...], confidence: float) -> sv.Detections:
    """A detector that proposed one flyer there."""
    return sv.Detections(
        xyxy=np.array([xyxy], dtype=np.float32),
        confidence=np.array([confidence], dtype=np.float32),
        class_id=np.array([NAMES.index("flyer")]),
    )


def holding(box: tuple[int, ...], xyxy: tuple[float, ...] | list[float]) -> bool:
    cx, cy = (xyxy[0] + xyxy[2]) / 2, (xyxy[1] + xyxy[3]) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def test_a_flyer_stuck_on_a_real_street_photo_is_read(finder: FlyerFinder) -> None:
    photo, box = paste(street_photo(0), sheet_flyer(), (600, 120))
    reading = finder.read(photo)
    ads = [n for n in reading.small_ads if holding(box, n.xyxy)]
    assert ads, [n.as_evidence() for n in reading.notices]
    assert NUMBER in ads[0].phones and "开锁" in "".join(ads[0].lines)
    assert ads[0].confidence >= TAXONOMY.classes[NAMES.index("flyer")].min_confidence
    assert not [n for n in reading.small_ads if not holding(box, n.xyxy)]  # nothing else on the photo


def test_a_large_photo_is_read_from_the_scans_reduced_decode_and_boxed_in_its_own_pixels(
    finder: FlyerFinder,
) -> None:
    """A 2880 px photo is read from the decode the scan asks for (read_side), and the notice comes
    back in the photo's own pixels: the box the bench and the cases compare with the photo's."""
    photo, box = paste(street_photo(0), sheet_flyer(), (600, 120))
    large = cv2.resize(photo, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    data = jpeg_of(large)
    asked: list[int] = []

    def load(side: int) -> np.ndarray:
        asked.append(side)
        return decode_photo(data, reduce_to=side).image

    reader = FlyerFinder(finder.rules.with_scan("all"), TAXONOMY, engine=finder.engine)
    reading = reader.read_scanned(sv.Detections.empty(), (2880, 2880), load, full=True)
    assert reading is not None and asked == [reader.rules.read_side]
    assert max(load(asked[0]).shape) < 2880  # the read really was of a smaller decode
    large_box = tuple(3 * v for v in box)
    ads = [n for n in reading.small_ads if holding(large_box, n.xyxy)]
    assert ads and NUMBER in ads[0].phones, [n.as_evidence() for n in reading.notices]
    proposing = FlyerFinder(finder.rules.with_scan("detector"), TAXONOMY, engine=finder.engine)
    assert proposing.read_scanned(sv.Detections.empty(), (2880, 2880), load, full=False) is None
    assert len(asked) == 2  # nothing proposed: the photo is not decoded again


def test_a_phone_line_too_small_in_the_reduced_decode_is_read_from_the_full_pixels(
    finder: FlyerFinder,
) -> None:
    """A 4000 x 3000 photo is read from its 1/4-scale decode (1000 px), where a 180 px flyer's title
    is read (misread: no small-ad word) but its phone line is not: the notice, on a detector
    proposal, is read again from the full-resolution decode (decoded once, on demand) and its
    number found, in `all` mode (and a flyer zone: `full`), not in `detector` mode, where it found
    no more numbers on val-x6 for its cost. Text on no proposal and with no small-ad word is not
    read again, and a photo no larger than the decode the reader used never is."""
    street = cv2.resize(street_photo(0), (4000, 3000), interpolation=cv2.INTER_CUBIC)
    photo, box = paste(street, sheet_flyer(height=180), (1800, 600))
    data = jpeg_of(photo)
    asked: list[int] = []

    def load(side: int) -> np.ndarray:
        asked.append(side)
        return decode_photo(data, reduce_to=side).image

    def phones(rules: FlyerRules, proposed: sv.Detections, full: bool) -> set[str]:
        reader = FlyerFinder(rules, TAXONOMY, engine=finder.engine)
        reading = reader.read_scanned(proposed, (4000, 3000), load, full=full)
        assert reading is not None
        return {p for n in reading.small_ads if holding(box, n.xyxy) for p in n.phones}

    proposed = one_flyer(box, 0.5)
    rules = finder.rules.with_scan("all")
    asked.clear()
    assert NUMBER not in phones(rules.model_copy(update={"full_reads": 0}), proposed, True)
    assert asked == [rules.read_side]
    asked.clear()
    assert NUMBER in phones(rules, proposed, True)
    assert asked == [rules.read_side, 4000]  # the full decode once, for the notice that asked
    asked.clear()
    assert NUMBER not in phones(finder.rules.with_scan("detector"), proposed, False)
    assert asked == [rules.read_side]  # `detector` mode: no second read
    asked.clear()
    assert NUMBER not in phones(finder.rules.with_scan("all"), sv.Detections.empty(), True)
    assert asked == [finder.rules.read_side]
    data = jpeg_of(cv2.resize(photo, (1000, 750), interpolation=cv2.INTER_AREA))  # what `load` read
    asked.clear()
    reader = FlyerFinder(finder.rules.with_scan("all"), TAXONOMY, engine=finder.engine)
    quarter = tuple(v // 4 for v in box)
    reading = reader.read_scanned(one_flyer(quarter, 0.5), (1000, 750), load, full=True)
    assert reading is not None and asked == [reader.rules.read_side]
    assert [n for n in reading.notices if holding(quarter, n.xyxy) and n.lines and not n.phones]


def test_the_same_photo_without_the_flyer_has_no_small_ad(finder: FlyerFinder) -> None:
    assert finder.read(street_photo(0)).small_ads == ()


def test_no_text_at_all(finder: FlyerFinder) -> None:
    reading = finder.read(np.full((480, 640, 3), 128, np.uint8))
    assert reading.notices == () and reading.lines_found == 0
    assert finder.read(np.zeros((3, 3), np.uint8)).notices == ()  # grey and tiny


@pytest.mark.parametrize("shape", [(5000, 1, 3), (1, 5000, 3), (2, 3000, 3)])
def test_a_sliver_of_a_photo_reads_nothing_without_failing(
    finder: FlyerFinder, shape: tuple[int, ...]
) -> None:
    """Scaled to find_side, a 1 x 5000 image would be 0 pixels wide (OpenCV's resize raised)."""
    assert finder.read(np.full(shape, 128, np.uint8)).small_ads == ()


def test_vertical_text_on_a_pole_is_read(finder: FlyerFinder) -> None:
    """Stacked characters in one column (开锁 and the number), the way strips are printed for poles."""
    strip = Image.new("RGB", (70, 70 * 15), "white")
    draw = ImageDraw.Draw(strip)
    font = fit_font(find_cjk_fonts()[0], "锁", 56, 56)
    for row, char in enumerate("开锁" + NUMBER + "号"):
        draw.text((35, 35 + 70 * row), char, fill="black", font=font, anchor="mm")
    photo = street_photo(1)
    column = cv2.resize(cv2.cvtColor(np.asarray(strip), cv2.COLOR_RGB2BGR), (40, 600))
    photo[150:750, 700:740] = column
    ads = [n for n in finder.read(photo).small_ads if holding((690, 140, 750, 760), n.xyxy)]
    assert ads and NUMBER in ads[0].phones


def test_a_strip_of_digits_set_closer_than_its_column_is_wide_is_read(finder: FlyerFinder) -> None:
    """Strips are printed with the digits closer together than the column is wide; cut into cells
    as wide as the column, each digit was squeezed to a third and 3 read as a Cyrillic З."""
    text = "开锁" + NUMBER
    strip = Image.new("RGB", (80, 30 * (len(text) + 1)), (250, 250, 245))
    draw = ImageDraw.Draw(strip)
    font = fit_font(find_cjk_fonts()[0], "锁", 26, 26)
    for row, char in enumerate(text):
        draw.text((40, 30 * row + 30), char, fill=(200, 20, 20), font=font, anchor="mm")
    photo = street_photo(1)
    photo[100 : 100 + strip.height, 600:680] = cv2.cvtColor(np.asarray(strip), cv2.COLOR_RGB2BGR)
    ads = [n for n in finder.read(photo).small_ads if holding((590, 90, 690, 110 + strip.height), n.xyxy)]
    assert ads and NUMBER in ads[0].phones


def test_thousands_of_text_lines_cost_no_more_than_max_lines(finder: FlyerFinder) -> None:
    """A page of 2 400 small numbers: detection keeps max_lines, a wall of text is no small ad."""
    page = np.full((1200, 1600, 3), 255, np.uint8)
    for row in range(60):
        for col in range(40):
            cv2.putText(
                page, "1395", (col * 40 + 2, row * 20 + 15), cv2.FONT_HERSHEY_PLAIN, 0.9, (0, 0, 0), 1
            )
    reading = finder.read(page)
    assert 0 < reading.lines_found <= finder.rules.max_lines
    assert reading.small_ads == ()
    read = [n for n in reading.notices if n.lines]
    assert len(read) <= finder.rules.max_notices


def test_a_qr_code_with_binary_junk_is_kept_printable(finder: FlyerFinder) -> None:
    junk = "".join(chr(c) for c in range(1, 32)) + "\x7f\x80\xff" + "扫码"
    code = cv2.QRCodeEncoder.create().encode(junk)
    code = cv2.resize(code, None, fx=6, fy=6, interpolation=cv2.INTER_NEAREST)
    photo = street_photo(2)
    height, width = code.shape[:2]
    photo[100 : 100 + height, 100 : 100 + width] = cv2.cvtColor(code, cv2.COLOR_GRAY2BGR)
    region = np.array([[100, 100, 100 + width, 100 + height]], dtype=np.float32)
    reading = finder.read(photo, regions=region)
    (notice,) = [n for n in reading.notices if n.qr]
    assert notice.qr[0].isprintable() and notice.qr[0].endswith("扫码")  # control bytes replaced
    assert notice.is_small_ad and "QR code" in notice.reasons


@pytest.mark.parametrize(
    ("lines", "verdict", "reason"),
    [
        (["专业开锁", "电话 139 1234 5678"], "small_ad", "phone 13912345678"),
        (["高价回收", "空调 电脑"], "small_ad", "small-ad words 回收, 高价回收"),
        (["400-812-3456"], "small_ad", "phone 400-812-3456"),
        (["粤B12345"], "not_small_ad", "reads as a number plate"),
        (["中山路"], "not_small_ad", "reads as a street or traffic sign"),
        (["中山路", "回收"], "not_small_ad", "reads as a street or traffic sign"),
        (["限速 40", "维修"], "not_small_ad", "reads as a street or traffic sign"),
        (["老王开锁店", "13912345678"], "not_small_ad", "a shop sign (老王开锁店)"),
        (["Residual Waste"], "not_small_ad", "no phone number, QR code or small-ad word"),
        (["可回收物", "Recyclable"], "not_small_ad", "no phone number, QR code or small-ad word"),
        (
            ["电话:0731-89831886", "长沙环保设备有限公司"],
            "not_small_ad",
            "a shop sign or maker's label (长沙环保设备有限公司)",
        ),
        (["急招", "包吃包住"], "small_ad", "small-ad words 急招, 包吃包住"),
        (["管道疏道", "高压清洗"], "small_ad", "small-ad words 管道"),  # 管道疏通 misread: no road
        (["与所在社区联系", "联系电话：18954267896"], "not_small_ad", "an official notice (社区)"),
        (["社区通知", "关于出租房屋登记", "电话 13912345678"], "not_small_ad", "an official notice (社区)"),
        (["物业保洁", "急招", "13912345678"], "small_ad", "phone 13912345678"),  # a job ad naming 物业
    ],
)
def test_decision_rules(lines: list[str], verdict: str, reason: str) -> None:
    notice = decide(lines, (), load_flyer_rules(CONFIGS / "flyers.yaml"), [40.0] + [20.0] * (len(lines) - 1))
    assert (notice.verdict, notice.reasons[0]) == (verdict, reason)


def test_lines_group_into_notices() -> None:
    """Title, body and phone of one flyer join; a second flyer a hand away and a big sign do not."""
    boxes = np.array(
        [
            [100, 100, 200, 130],  # title
            [100, 140, 220, 155],  # body
            [100, 165, 230, 180],  # phone
            [400, 100, 480, 115],  # another flyer
            [100, 300, 600, 400],  # a sign's letters, 100 px tall
        ],
        dtype=np.float32,
    )
    groups = group_lines(boxes, 1.6, 2.6)
    assert groups == [[0, 1, 2], [3], [4]]


def test_detector_and_reader_agree_or_the_reader_vetoes(finder: FlyerFinder) -> None:
    photo, box = paste(street_photo(0), sheet_flyer(), (600, 120))
    flyer, car = NAMES.index("flyer"), NAMES.index("car")
    detections = sv.Detections(
        xyxy=np.array([box, (50, 600, 300, 800), (60, 700, 120, 730)], dtype=np.float32),
        confidence=np.array([0.3, 0.9, 0.4], dtype=np.float32),
        class_id=np.array([flyer, car, flyer]),
    )
    combined = finder.combine(detections, finder.read(photo, detections))
    assert combined.confidence[0] > 0.3 and combined.confidence[0] >= 1 - (1 - 0.6) * (1 - 0.3) - 1e-6
    assert NUMBER in combined.data["flyer"][0]["phones"]
    assert combined.data["flyer"][0]["source"] == "detector+reader"
    assert combined.confidence[2] == pytest.approx(0.4 * finder.rules.unconfirmed_factor)  # nothing to read
    assert combined.data["flyer"][1] is None  # the car itself keeps no reading
    assert len(combined) == 3  # the reader's ad is the detector's flyer, not a second box


def test_one_paper_boxed_twice_is_one_finding_read_once(finder: FlyerFinder) -> None:
    """The detector often draws two flyer boxes on one paper that NMS keeps (IoU under 0.7): the
    small ad confirms the surer one and the other goes, or a report files the number twice. Two
    papers side by side sharing one reading (their text grouped as one notice) stay two."""
    photo, (x1, y1, x2, y2) = paste(street_photo(0), sheet_flyer(), (600, 120))
    flyer = NAMES.index("flyer")
    shifted = (x1 + 2, y1 + 60, x2 + 30, y2 + 40)  # the same sheet, its box slid down (IoU ~0.6)
    twice = sv.Detections(
        xyxy=np.array([shifted, (x1, y1, x2, y2)], dtype=np.float32),
        confidence=np.array([0.29, 0.31], dtype=np.float32),
        class_id=np.array([flyer, flyer]),
    )
    combined = finder.combine(twice, finder.read(photo, twice))
    assert len(combined) == 1 and combined.xyxy[0].tolist() == [x1, y1, x2, y2]
    assert combined.data["flyer"][0]["phones"] == [NUMBER]
    beside = sv.Detections(  # two boxes that do not overlap, each holding part of the notice
        xyxy=np.array([(x1, y1, x2, (y1 + y2) / 2), (x1, (y1 + y2) / 2 + 1, x2, y2)], dtype=np.float32),
        confidence=np.array([0.5, 0.5], dtype=np.float32),
        class_id=np.array([flyer, flyer]),
    )
    assert len(finder.combine(beside, finder.read(photo, beside))) == 2


class NoFlyers:
    """A detector that sees nothing: the reader alone must find the flyer (`all` mode)."""

    input_size = 640
    version = "nothing-v0"
    names = NAMES

    def __call__(self, image: np.ndarray) -> sv.Detections:
        return sv.Detections.empty()


def test_a_scan_files_the_read_flyer_with_its_text_and_number(tmp_path: Path, finder: FlyerFinder) -> None:
    photo, box = paste(street_photo(0), sheet_flyer(), (600, 120))
    folder = tmp_path / "photos"
    folder.mkdir()
    picture = Image.fromarray(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB))
    picture.save(folder / "wall.jpg", "JPEG", quality=92, exif=exif_for(position=spot(0), taken_at=START))
    other, _ = paste(street_photo(3), sheet_flyer(), (600, 120))  # another wall elsewhere, the same ad
    Image.fromarray(cv2.cvtColor(other, cv2.COLOR_BGR2RGB)).save(
        folder / "other.jpg", "JPEG", quality=92, exif=exif_for(position=spot(2), taken_at=START)
    )
    factory = open_database(f"sqlite:///{tmp_path}/cases.db")
    detector: Detector = NoFlyers()  # type: ignore[assignment]
    rules = load_case_rules(Settings())
    off = FlyerFinder(finder.rules.with_scan("detector"), TAXONOMY, engine=finder.engine)
    assert Scanner(detector, factory, rules, flyers=off).scan([folder], progress=False).findings == 0
    factory = open_database(f"sqlite:///{tmp_path}/all.db")
    reader = FlyerFinder(finder.rules.with_scan("all"), TAXONOMY, engine=finder.engine)
    stats = Scanner(detector, factory, rules, flyers=reader, workers=2).scan([folder], progress=False)
    assert stats.cases_created == 2
    with factory() as session:
        cases = session.scalars(select(Case).order_by(Case.id)).all()
        assert {c.event for c in cases} == {"illegal_small_ad"}
        evidence = session.scalars(select(Evidence).where(Evidence.case_id == cases[0].id)).one()
        kept = evidence.extra["flyers"][0]
        assert kept["phones"] == [NUMBER] and "开锁" in kept["text"] and kept["source"] == "reader"
        assert holding(box, kept["xyxy"]) and holding(box, evidence.boxes[0]["xyxy"])
        assert evidence.extra["phones"] == [NUMBER]  # the keys the console shows
        assert "开锁" in evidence.extra["ocr_text"]
    page = write_report(factory, tmp_path / "out", rules).read_text(encoding="utf-8")
    assert f"</span>{NUMBER} · 专业开锁" in page  # the scan report shows the number read


@pytest.fixture
def service_overrides() -> dict[str, object]:
    return {"flyers": "all", "max_upload_mb": 4}


def jpeg_of(image: np.ndarray) -> bytes:
    return bytes(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes())


def test_a_reported_flyer_and_its_after_photos(service: Service) -> None:
    """POST /v1/reports reads the flyer (STREETORDER_FLYERS=all); an after-photo where the number
    can no longer be read, and one where it still can, say so in extra.flyer_check."""
    photo, box = paste(street_photo(0), sheet_flyer(), (60, 60))  # clear of the bin the detector sees
    form = {"lat": "34.72265", "lon": "113.62762", "taken_at": "2025-09-30T09:15:00+08:00"}
    answer = service.client.post(
        "/v1/reports",
        files={"file": ("wall.jpg", jpeg_of(photo), "image/jpeg")},
        data=form,
        headers=service.auth("report"),
    )
    assert answer.status_code == 200, answer.text
    (case_ref,) = [c for c in answer.json()["cases"] if c["event"] == "illegal_small_ad"]
    case = service.client.get(f"/v1/cases/{case_ref['id']}", headers=service.auth("cases:read")).json()
    (flyer,) = case["evidence"][0]["extra"]["flyers"]
    assert flyer["phones"] == [NUMBER] and holding(box, flyer["xyxy"])
    checks = {}
    for name, image in (("cleaned", street_photo(0)), ("still", photo)):
        after = service.client.post(
            f"/v1/cases/{case_ref['id']}/evidence",
            files={"file": (f"{name}.jpg", jpeg_of(image), "image/jpeg")},
            data={"role": "after", "taken_at": "2025-09-30T10:20:00+08:00"},
            headers=service.auth("cases:write"),
        )
        assert after.status_code == 201, after.text
        checks[name] = after.json()["extra"]["flyer_check"]
    assert checks["cleaned"]["verdict"] == "number_not_readable" and checks["cleaned"]["still_readable"] == []
    assert checks["still"]["verdict"] == "number_still_readable" and checks["still"]["still_readable"] == [
        NUMBER
    ]


def test_a_flyer_proposed_on_a_real_number_plate_is_vetoed(finder: FlyerFinder) -> None:
    """The demo's false small ads were car rears: a detector 'flyer' on the rear plate AP31 0T 5511
    (55 px wide, centre (187, 369) on this vehicles-in photo) is read as a plate and scaled down."""
    path = (
        DATASET.parents[2]
        / "vehicles-in/images/train/IMG20240615122051_jpg.rf.c7571e5935fb26815aff1449d729f790.jpg"
    )
    if not path.exists():
        pytest.skip(f"needs {path}")
    image = cv2.imread(str(path))
    detections = one_flyer((150, 350, 225, 390), 0.6)
    reading = finder.read(image, detections, regions=finder.proposals(detections))
    combined = finder.combine(detections, reading)
    assert combined.confidence[0] < TAXONOMY.classes[NAMES.index("flyer")].min_confidence
    assert combined.data["flyer"][0]["source"] == "detector, vetoed by reader"
    assert combined.data["flyer"][0]["reasons"] == ["reads as a number plate"] and reading.small_ads == ()


def test_bench_flyers_prints_the_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`streetorder bench flyers` on a 4-image synthetic set and two real photos, reader alone, all of
    each (`--limit 0`: it once read no synthetic photo at all and failed)."""
    from serve.cli.bench import cli as bench_cli
    from vision.data.flyers.synthesize import synthesize

    photos = sorted(DATASET.glob("*.jpg"))[:2]
    if len(photos) < 2:
        pytest.skip(f"needs the garbage-cn val photos in {DATASET}")
    negatives = tmp_path / "negatives"
    negatives.mkdir()
    for photo in photos:
        (negatives / photo.name).write_bytes(photo.read_bytes())
    synthesize([DATASET], tmp_path / "synthetic", 4, TAXONOMY, seed=3, val_share=1.0, progress=False)
    argv = ["flyers", "--synthetic", str(tmp_path / "synthetic"), "--negatives", str(negatives)]
    assert bench_cli([*argv, "--no-detector", "--limit", "0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["synthetic"]["photos"] == 4 and set(result["synthetic"]["recall"]) == {"reader"}
    assert result["negatives"][str(negatives)]["photos"] == 2
    assert result["negatives"][str(negatives)]["reader_cpu_ms_per_photo"]["mean"] > 0
    # every pasted flyer counts at 1 px (an --upscale set's heights differ from the 60 / 120)
    heights = ["--min-height", "1", "--read-height", "1"]
    assert bench_cli([*argv[:3], "--negatives", "--no-detector", *heights]) == 0
    every = json.loads(capsys.readouterr().out)["synthetic"]
    flyers = sum(len(json.loads(line)["flyers"]) for line in (tmp_path / "synthetic" / "flyers.jsonl").open())
    assert every["flyers_ge_1px"] == flyers >= result["synthetic"]["flyers_ge_60px"]
    assert every["phone_read_flyers_ge_1px"].split(" ")[0].endswith(f"/{flyers}")
    assert bench_cli(["flyers", "--negatives", str(tmp_path / "nowhere")]) == 1


@pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="ray not installed (pip install '.[cluster]')"
)
def test_the_ray_engine_reads_flyers_like_the_local_one(tmp_path: Path) -> None:
    from serve.cli.scan import cli as scan_cli

    photo, _ = paste(street_photo(0), sheet_flyer(), (600, 120))
    folder = tmp_path / "photos"
    folder.mkdir()
    picture = Image.fromarray(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB))
    picture.save(folder / "wall.jpg", "JPEG", quality=92, exif=exif_for(position=spot(0), taken_at=START))
    url = f"sqlite:///{tmp_path}/ray.db"
    argv = [str(folder), "--engine", "ray", "--workers", "1", "--flyers", "all", "--no-progress"]
    assert scan_cli([*argv, "--db", url, "--out", str(tmp_path / "out")]) == 0
    with open_database(url)() as session:
        case = session.scalars(select(Case).where(Case.event == "illegal_small_ad")).one()
        evidence = session.scalars(select(Evidence).where(Evidence.case_id == case.id)).one()
        assert evidence.extra["phones"] == [NUMBER]


def test_a_red_community_notice_by_the_bins_is_no_small_ad(finder: FlyerFinder) -> None:
    """garbage-cn val 002987: a red sign on the wall, 与所在社区联系 联系电话 189..., was a false small
    ad (a phone number); it names the community to contact, so it is an official notice, and a
    detector flyer on it is scaled down, not filed."""
    path = DATASET / "002987_jpg.rf.95bb851245cc3b1ae4fefa1215c7a45d.jpg"
    if not path.exists():
        pytest.skip(f"needs {path}")
    image = cv2.imread(str(path))
    detections = one_flyer((68, 0, 158, 50), 0.5)
    reading = finder.read(image, detections)
    assert reading.small_ads == ()
    (notice,) = [n for n in reading.notices if n.reasons == ("an official notice (社区)",)]
    assert "18954267896" in notice.phones and notice.ruled_out
    combined = finder.combine(detections, reading)
    assert combined.confidence[0] < TAXONOMY.classes[NAMES.index("flyer")].min_confidence
    assert combined.data["flyer"][0]["source"] == "detector, vetoed by reader"


def test_small_print_around_a_proposal_is_read_enlarged(finder: FlyerFinder) -> None:
    """A flyer 55 px tall on a real photo (characters of about 4 px): read enlarged around the
    detector's proposal, it is a small ad with its phone number; read at the photo's size, its
    lines are not even found."""
    photo, box = paste(street_photo(0), sheet_flyer(height=55), (600, 120))
    region = np.array([box], dtype=np.float32)
    plain = FlyerFinder(finder.rules.model_copy(update={"zoom_max": 1.0}), TAXONOMY, engine=finder.engine)
    (ad,) = finder.read(photo, regions=region).small_ads
    assert ad.phones and ad.phones[0].startswith("139") and holding(box, ad.xyxy)
    assert plain.read(photo, regions=region).notices == ()


def test_a_flyer_the_detector_also_calls_a_truck_is_not_vetoed_as_livery(finder: FlyerFinder) -> None:
    """The detector put a flyer (0.9) and a truck (0.7) on the same synthetic sheet; the truck box is
    the flyer seen twice, not a vehicle the text is printed on, so the reading confirms the flyer."""
    photo, (x1, y1, x2, y2) = paste(street_photo(0), sheet_flyer(), (600, 120))
    box = (x1 - 60, y1 - 60, x2 + 60, y2 + 60)  # the flyer covers at most half of it: livery by area
    detections = sv.Detections(
        xyxy=np.array([box, box], dtype=np.float32),
        confidence=np.array([0.9, 0.7], dtype=np.float32),
        class_id=np.array([NAMES.index("flyer"), NAMES.index("truck")]),
    )
    combined = finder.combine(
        detections, finder.read(photo, detections, regions=finder.proposals(detections))
    )
    assert combined.data["flyer"][0]["source"] == "detector+reader"
    assert NUMBER in combined.data["flyer"][0]["phones"] and combined.confidence[0] > 0.9
    surer = sv.Detections(
        xyxy=detections.xyxy, confidence=np.array([0.6, 0.9], dtype=np.float32), class_id=detections.class_id
    )
    vetoed = finder.combine(surer, finder.read(photo, surer, regions=finder.proposals(surer)))
    assert vetoed.data["flyer"][0]["reasons"] == ["not read: vehicle livery"]  # a surer truck: its livery
    assert vetoed.confidence[0] == pytest.approx(
        0.6 * finder.rules.unconfirmed_factor
    )  # unconfirmed, no veto


def test_a_paper_the_detector_calls_a_truck_twice_is_no_livery(finder: FlyerFinder) -> None:
    """street-v20 drew two "trucks" on the pasted sheet: a tight one the text fills, and a looser one
    around it that the text covers less than half of. The looser one alone vetoed the sheet as
    livery; the tight one says the detector took the paper for a truck, so the sheet is read."""
    photo, (x1, y1, x2, y2) = paste(street_photo(0), sheet_flyer(), (600, 120))
    tight = (x1 - 8, y1 - 8, x2 + 8, y2 + 8)
    loose = (x1 - 60, y1 - 100, x2 + 60, y2 + 40)  # the text covers less than half of it
    truck = NAMES.index("truck")
    both = sv.Detections(
        xyxy=np.array([loose, tight], dtype=np.float32),
        confidence=np.array([0.8, 0.7], dtype=np.float32),
        class_id=np.array([truck, truck]),
    )
    (ad,) = finder.read(photo, both).small_ads
    assert NUMBER in ad.phones
    loose_only = sv.Detections(
        xyxy=np.array([loose], dtype=np.float32),
        confidence=np.array([0.8], dtype=np.float32),
        class_id=np.array([truck]),
    )
    assert finder.read(photo, loose_only).small_ads == ()  # text on a truck it does not fill: livery


@pytest.mark.parametrize("propose", [0.2, 0.1])
def test_the_scan_and_the_service_keep_the_boxes_the_reader_proposes_from(
    tmp_path: Path, db_url: str, propose: float
) -> None:
    """The reader reads a detector flyer from propose_confidence up; the scan's and the service's
    detectors kept only 0.25 and up (the backends' usual floor), so a flyer box at 0.2-0.25 never
    reached it. Both now keep what the reader's configuration proposes from, and the usual floor
    where the reader is off."""
    from fastapi.testclient import TestClient

    from serve.api.app import create_app
    from serve.cases.scan import load_flyer_finder, load_scan_detector

    configs = tmp_path / "configs"
    configs.mkdir()
    for source in CONFIGS.iterdir():
        if source.is_file():
            (configs / source.name).write_bytes(source.read_bytes())
    rules_file = configs / "flyers.yaml"
    text = rules_file.read_text(encoding="utf-8")
    rules_file.write_text(
        re.sub(r"(?m)^propose_confidence: .*$", f"propose_confidence: {propose}", text), "utf-8"
    )
    settings = Settings(configs_dir=configs, secret="tests-only-secret-0123456789", db_url=db_url)
    finder = load_flyer_finder(settings, "detector")
    assert finder is not None and finder.rules.propose_confidence == propose
    scan_detector, _, _ = load_scan_detector(settings.model, "onnx", "fp32", 1, settings, flyers=finder)
    assert scan_detector.thresholds.confidence == propose  # type: ignore[attr-defined]
    off, _, _ = load_scan_detector(settings.model, "onnx", "fp32", 1, settings, flyers=None)
    assert off.thresholds.confidence == 0.25  # type: ignore[attr-defined]
    with TestClient(create_app(settings.model_copy(update={"flyers": "detector"}))) as client:
        served = client.app.state.service.detector  # type: ignore[attr-defined]
        assert served.thresholds.confidence == propose
