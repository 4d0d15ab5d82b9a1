"""`streetorder evaluate --unlabelled DIR` on real photos: every detection at the scan thresholds on
contact sheets and in counts, photos decoded upright as a scan decodes them, broken files listed."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest
from configured import MODELS, TAXONOMY
from PIL import Image
from supervision import box_iou_batch
from test_hostile_text import Page

from serve.cli.main import main
from vision.core.imageio import read_photo
from vision.detect.backends import load_detector
from vision.detect.registry import CURRENT

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
# a daytime traffic frame with a dozen cars (street-v28 boxes 12 at 0.46-0.86, v27 14), two night frames
FRAMES = ("A317.jpg", "10260070026111111.jpg", "10260070026111112.jpg")
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/datasets is not beside the checkout")


def bureau_folder(root: Path) -> Path:
    """Traffic frames (day and night), a facade in a sub-folder, one frame stored sideways with an
    EXIF orientation, a truncated photo and a note that is not a photo."""
    (root / "walls").mkdir(parents=True)
    for name in FRAMES:
        shutil.copy(SHARED / "traffic-cams" / "images" / "val" / name, root / name)
    shutil.copy(SHARED / "facades-spb" / "images" / "val" / "img_198.jpg", root / "walls" / "img_198.jpg")
    upright = Image.open(root / FRAMES[0])
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: stored turned the other way
    upright.transpose(Image.Transpose.ROTATE_90).save(root / "walls" / "sideways.jpg", exif=exif)
    (root / "walls" / "truncated.jpg").write_bytes((root / FRAMES[1]).read_bytes()[:4000])
    (root / "note.jpg").write_text("not a photo")
    return root


def test_every_detection_at_the_scan_thresholds_is_counted_and_on_a_sheet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = bureau_folder(tmp_path / "bureau")
    out = tmp_path / "look"
    assert (
        main(["evaluate", "--unlabelled", str(folder), "--model", CURRENT, "--out", str(out), "--json"]) == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["photos"] == 5
    assert set(summary["unreadable"]) == {"note.jpg", "walls/truncated.jpg"}
    assert "truncated" in summary["unreadable"]["walls/truncated.jpg"]

    detector = load_detector(CURRENT, confidence=0.01, models_dir=MODELS, taxonomy=TAXONOMY)
    expected: dict[str, dict[str, int]] = {}
    for path in sorted(p for p in folder.rglob("*.jpg") if p.name not in ("note.jpg", "truncated.jpg")):
        found = detector(read_photo(path).image)
        kept = Counter(
            TAXONOMY.names[c]
            for c, s in zip(found.class_id, found.confidence, strict=True)
            if s >= TAXONOMY.classes[c].min_confidence
        )
        if kept:
            expected[path.relative_to(folder).as_posix()] = dict(sorted(kept.items()))
    assert summary["per_photo"] == expected and summary["per_photo"][FRAMES[0]]  # cars at least
    # decoded upright: the sideways copy is the same picture to the detector, its most confident
    # box where the frame's is (its counts can differ by a box near a threshold, a re-encoded JPEG)
    frame, sideways = (read_photo(p).image for p in (folder / FRAMES[0], folder / "walls" / "sideways.jpg"))
    assert sideways.shape == frame.shape
    best = [found.xyxy[found.confidence.argmax()] for found in (detector(frame), detector(sideways))]
    assert box_iou_batch(best[0][None], best[1][None])[0, 0] > 0.8
    assert summary["per_class"] == dict(
        sorted(sum((Counter(c) for c in expected.values()), Counter()).items())
    )

    html = (out / "index.html").read_text()
    pages = sorted((out / "sheets").glob("*.png"))
    assert {p.name.rsplit("-", 1)[0] for p in pages} == set(summary["per_class"])
    assert all(f"sheets/{p.name}" in html for p in pages)
    assert "Unreadable photos" in html and "walls/truncated.jpg" in html
    shown = [html.index(f"sheets/{name}-01.png") for name in TAXONOMY.names if name in summary["per_class"]]
    assert len(shown) >= 2 and shown == sorted(shown)  # in taxonomy order


def test_a_first_look_at_a_large_archive_takes_the_first_photos_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = bureau_folder(tmp_path / "bureau")
    argv = ["evaluate", "--unlabelled", str(folder), "--model", CURRENT, "--out", str(tmp_path / "look")]
    assert main([*argv, "--json", "--limit", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["photos"] == 2 and set(summary["per_photo"]) <= set(sorted(FRAMES)[:2])  # in name order


def test_a_folder_that_is_not_there_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["evaluate", "--unlabelled", str(tmp_path / "missing"), "--model", CURRENT]) == 2


def test_photos_named_in_gbk_or_with_a_hash_are_looked_at_and_linked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A GBK file name (a zip made on a Chinese Windows) stopped the look with a UnicodeEncodeError
    while writing summary.json; a '#' in a name made its link a fragment. Both photos are counted,
    shown (odd bytes as \\xNN) and linked percent-encoded."""
    folder = tmp_path / "bureau"
    folder.mkdir()
    gbk_name = os.fsdecode("夜间#1.jpg".encode("gbk"))
    shutil.copy(SHARED / "traffic-cams" / "images" / "val" / FRAMES[0], folder / gbk_name)
    shutil.copy(SHARED / "traffic-cams" / "images" / "val" / FRAMES[0], folder / "night #2.jpg")
    out = tmp_path / "look"
    argv = ["evaluate", "--unlabelled", str(folder), "--model", CURRENT, "--out", str(out), "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    shown = os.fsencode(gbk_name).decode("utf-8", "backslashreplace")
    assert summary["photos"] == 2 and set(summary["per_photo"]) == {shown, "night #2.jpg"}  # cars on both
    html = (out / "index.html").read_text(encoding="utf-8")
    assert quote(os.fsencode(gbk_name)) in html and "night%20%232.jpg" in html


@pytest.mark.parametrize(
    "name",
    [
        "<img src=x onerror=alert(1)>.jpg",
        "a\"b'c<svg onload=alert(1)>&amp;.jpg",
        "<script>alert(1)<\\script>.jpg",
    ],
)
def test_a_photo_named_as_markup_reads_as_its_name_on_the_contact_sheet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """A file name is anyone's text: in index.html (the per-photo table, the box list's link and the
    unreadable list) it shows as the name it is and adds no element or event handler of its own."""
    folder = tmp_path / "bureau"
    folder.mkdir()
    shutil.copy(SHARED / "traffic-cams" / "images" / "val" / FRAMES[0], folder / name)
    (folder / ("cut " + name)).write_bytes((folder / name).read_bytes()[:4000])
    out = tmp_path / "look"
    assert main(["evaluate", "--unlabelled", str(folder), "--model", CURRENT, "--out", str(out)]) == 0
    capsys.readouterr()
    page = Page()
    page.feed((out / "index.html").read_text(encoding="utf-8"))
    assert {"script", "svg"}.isdisjoint(page.tags)
    assert not [attr for attr, _ in page.attrs if attr.startswith("on")]
    assert all(src.startswith("sheets/") for src in page.images)
    text = "".join(page.text)
    assert name in text and "cut " + name in text
    assert (folder / name).resolve().as_uri() in page.hrefs
