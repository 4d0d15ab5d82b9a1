"""OCR evidence: phone numbers from text, and PP-OCR on rendered flyers (a real model, no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv
from configured import TAXONOMY

from serve.cli.ocr import cli as ocr_cli
from vision.core.draw import crop_box
from vision.data.flyers.fonts import find_cjk_fonts
from vision.data.flyers.layout import STYLES, render_layout
from vision.data.flyers.text import FlyerText, display_phone, landline_number, mobile_number
from vision.detect.ocr import FlyerReader, extract_phones


@pytest.mark.parametrize(
    ("text", "phones"),
    [
        ("专业开锁 13812345678", ["13812345678"]),
        ("电话:138 1234 5678", ["13812345678"]),
        ("Tel:138-1234-5678 微信同号", ["13812345678"]),
        ("手机：１３９１２３４５６７８", ["13912345678"]),  # full-width digits and colon
        ("0371-12345678", ["0371-12345678"]),
        ("(0371)12345678", ["0371-12345678"]),
        ("（010）87654321", ["010-87654321"]),
        ("热线 021 62345678", ["021-62345678"]),
        ("02162345678", ["021-62345678"]),  # run together: 02x has a three-digit area code
        ("075562345678", ["0755-62345678"]),
        ("400-123-4567", ["400-123-4567"]),
        ("全国服务热线4008123456", ["400-812-3456"]),
        ("13812345678 / 0371-12345678", ["13812345678", "0371-12345678"]),
        ("13812345678 13812345678", ["13812345678"]),  # each number once
        ("12345678901", []),  # 12 is no mobile prefix
        ("138123456789", []),  # twelve digits: not a phone
        ("月薪6000-12000 包吃住", []),
        ("18-45岁", []),
        ("", []),
    ],
)
def test_extract_phones(text: str, phones: list[str]) -> None:
    assert extract_phones(text) == phones


@pytest.mark.parametrize("seed", range(12))
def test_printed_numbers_read_back(seed: int) -> None:
    rng = np.random.default_rng(seed)
    number = landline_number(rng) if seed % 3 == 0 else mobile_number(rng)
    assert extract_phones(f"电话:{display_phone(number, rng)}") == [number]


@pytest.fixture(scope="module")
def reader() -> FlyerReader:
    return FlyerReader()


def wall_with_flyer(
    seed: int, at: tuple[int, int] = (40, 30)
) -> tuple[np.ndarray, FlyerText, tuple[int, ...]]:
    """A grey wall with one rendered sheet flyer (about 300 px tall) stuck on it."""
    rng = np.random.default_rng(seed)
    text = FlyerText("专业开锁", ("换锁芯 开汽车锁",), "电话:", display_phone(mobile_number(rng), rng), ())
    number = extract_phones(text.number)
    text = FlyerText(text.title, text.lines, text.prefix, text.number, tuple(number))
    sheet = next(s for s in STYLES if s.name == "sheet")
    flyer = render_layout(text, sheet, 0.7, rng, find_cjk_fonts()[:1])
    flyer = cv2.resize(flyer, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    wall = np.clip(np.random.default_rng(seed).normal(150, 8, (420, 560, 3)), 0, 255).astype(np.float32)
    x, y = at
    height, width = flyer.shape[:2]
    alpha = flyer[..., 3:]
    wall[y : y + height, x : x + width] = (
        wall[y : y + height, x : x + width] * (1 - alpha) + 255 * flyer[..., 2::-1] * alpha
    )
    return wall.astype(np.uint8), text, (x, y, x + width, y + height)


@pytest.mark.parametrize("seed", [0, 1])
def test_ocr_reads_the_phone_number_of_a_rendered_flyer(reader: FlyerReader, seed: int) -> None:
    image, text, box = wall_with_flyer(seed)
    reading = reader.read(crop_box(image, box))
    assert text.phones[0] in reading.phones
    assert "开锁" in reading.text
    assert 0 < reading.confidence <= 1 and reading.seconds > 0
    assert reading.as_evidence()["phones"] == list(reading.phones)


def test_ocr_of_flyer_detections_only(reader: FlyerReader) -> None:
    image, text, box = wall_with_flyer(2)
    names = TAXONOMY.names
    detections = sv.Detections(
        xyxy=np.array([box, (300, 300, 380, 400)], dtype=np.float32),
        confidence=np.array([0.8, 0.7], dtype=np.float32),
        class_id=np.array([names.index("flyer"), names.index("garbage_bin")]),
    )
    read = reader.read_flyers(image, detections, taxonomy=TAXONOMY)
    assert text.phones[0] in read.data["ocr"][0].phones
    assert read.data["ocr"][1] is None


def test_cli_finds_the_small_ad_on_a_whole_photo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image, text, box = wall_with_flyer(3, at=(300, 40))
    photo = tmp_path / "wall.jpg"
    cv2.imwrite(str(photo), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ocr_cli([str(photo), "--find"]) == 0
    notices = json.loads(capsys.readouterr().out)["result"]
    ads = [n for n in notices if n["verdict"] == "small_ad"]
    assert ads and text.phones[0] in ads[0]["phones"]
    x1, y1, x2, y2 = ads[0]["xyxy"]
    assert box[0] <= (x1 + x2) / 2 <= box[2] and box[1] <= (y1 + y2) / 2 <= box[3]


def test_models_ship_in_the_wheel() -> None:
    import rapidocr_onnxruntime

    models = Path(rapidocr_onnxruntime.__file__).parent / "models"
    assert {p.suffix for p in models.iterdir()} == {".onnx"} and len(list(models.iterdir())) == 3


def test_cli_reads_a_box_and_refuses_a_broken_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, text, box = wall_with_flyer(4)
    photo = tmp_path / "wall.jpg"
    cv2.imwrite(str(photo), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ocr_cli([str(photo), "--box", ",".join(str(v) for v in box)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["result"]["phones"] == list(text.phones)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(photo.read_bytes()[:200])
    assert ocr_cli([str(broken)]) == 1
    assert "broken.jpg" in capsys.readouterr().err
