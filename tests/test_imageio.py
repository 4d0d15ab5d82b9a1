"""Photo loading: EXIF orientation, GPS and time, and every way a file can be unusable."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from datetime import UTC, datetime, timedelta, timezone
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational

from vision.core.imageio import (
    MAX_PIXELS,
    ImageError,
    Position,
    decode_photo,
    exif_for,
    image_format,
    read_bgr,
    read_photo,
    write_bgr,
)

SHANGHAI = timezone(timedelta(hours=8))


def quadrants() -> np.ndarray:
    """A 64x48 RGB image with four solid quadrants, so any flip or turn is visible."""
    image = np.zeros((48, 64, 3), np.uint8)
    image[:24, :32] = (220, 30, 30)
    image[:24, 32:] = (30, 200, 30)
    image[24:, :32] = (30, 30, 220)
    image[24:, 32:] = (240, 240, 40)
    return image


def jpeg_bytes(rgb: np.ndarray, exif: Image.Exif | None = None) -> bytes:
    out = BytesIO()
    Image.fromarray(rgb).save(
        out, "JPEG", quality=100, subsampling=0, exif=exif if exif is not None else Image.Exif()
    )
    return out.getvalue()


# What a viewer shows for each EXIF orientation of a stored image A (EXIF 2.3, tag 0x0112).
UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: np.rot90(a, k=-1)[::-1],  # transverse: mirrored across the anti-diagonal
    8: lambda a: np.rot90(a, k=1),
}


@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
def test_exif_orientation_is_applied(orientation: int) -> None:
    stored = quadrants()
    exif = Image.Exif()
    exif[0x0112] = orientation
    photo = decode_photo(jpeg_bytes(stored, exif))
    expected_bgr = UPRIGHT[orientation](stored)[:, :, ::-1]
    assert photo.image.shape == expected_bgr.shape
    assert np.abs(photo.image.astype(int) - expected_bgr.astype(int)).mean() < 4
    assert photo.meta.orientation == orientation
    assert (photo.width, photo.height) == (expected_bgr.shape[1], expected_bgr.shape[0])


def gps_exif(gps: dict[int, Any]) -> Image.Exif:
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(gps)
    return exif


R = IFDRational


@pytest.mark.parametrize(
    ("gps", "expected", "warning"),
    [
        (
            {1: "N", 2: (R(34), R(43), R(1234, 100)), 3: "E", 4: (R(113), R(37), R(485, 10))},
            (34 + 43 / 60 + 12.34 / 3600, 113 + 37 / 60 + 48.5 / 3600),
            None,
        ),
        (
            {1: "S", 2: (33.0, 51.0, 54.0), 3: "W", 4: (151.0, 12.0, 36.0)},
            (-(33 + 51 / 60 + 54 / 3600), -(151 + 12 / 60 + 36 / 3600)),
            None,
        ),
        ({1: "n", 2: (34.72, 0.0, 0.0), 3: "e", 4: (113.63, 0.0, 0.0)}, (34.72, 113.63), None),
        (
            {2: (34.0, 43.0, 12.0), 3: "E", 4: (113.0, 37.0, 48.0)},
            None,
            "latitude reference (N or S) missing",
        ),
        ({1: "", 2: (34.0, 43.0, 12.0), 3: "E", 4: (113.0, 37.0, 48.0)}, None, "reference (N or S) missing"),
        (
            {1: "X", 2: (34.0, 43.0, 12.0), 3: "E", 4: (113.0, 37.0, 48.0)},
            None,
            "reference 'X' is not N or S",
        ),
        ({1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (113.0, 0.0, 0.0)}, None, "out of range"),
        ({1: "N", 2: (34.0, 0.0, 0.0), 3: "E", 4: (181.0, 0.0, 0.0)}, None, "out of range"),
        ({1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)}, None, "(0, 0)"),
        ({1: "N", 2: (34.0, 75.0, 0.0), 3: "E", 4: (113.0, 0.0, 0.0)}, None, "60 or more"),
        (
            {1: "N", 2: (R(34), R(43, 0), R(0, 0)), 3: "E", 4: (113.0, 0.0, 0.0)},
            None,
            "34/1 43/0 0/0 divides by zero",
        ),
        (
            {1: "N", 2: (34.0, 0.0, 0.0), 3: "E", 4: (R(0, 0), R(0, 0), R(0, 0))},
            None,
            "longitude 0/0 0/0 0/0 divides",
        ),
        ({1: "N", 3: "E", 4: (113.0, 0.0, 0.0)}, None, "latitude missing"),
        ({}, None, None),
    ],
)
def test_gps_parsing(gps: dict[int, Any], expected: tuple[float, float] | None, warning: str | None) -> None:
    meta = decode_photo(jpeg_bytes(quadrants(), gps_exif(gps))).meta
    if expected is None:
        assert meta.position is None
    else:
        assert meta.position is not None
        assert meta.position.lat == pytest.approx(expected[0], abs=1e-7)
        assert meta.position.lon == pytest.approx(expected[1], abs=1e-7)
    gps_warnings = [w for w in meta.warnings if w.startswith("GPS")]
    if warning is None:
        assert gps_warnings == []
    else:
        assert len(gps_warnings) == 1 and warning in gps_warnings[0]


@pytest.mark.parametrize(
    ("tags", "local_tz", "expected"),
    [
        ({0x9003: "2026:11:20 09:15:00"}, None, datetime(2026, 11, 20, 9, 15, tzinfo=SHANGHAI)),
        ({0x9003: "2026:11:20 09:15:00", 0x9011: "+09:00"}, None, datetime(2026, 11, 20, 0, 15, tzinfo=UTC)),
        ({0x9003: "2026:11:20 09:15:00", 0x9011: "-03:30"}, None, datetime(2026, 11, 20, 12, 45, tzinfo=UTC)),
        ({0x9003: "2026:11:20 09:15:00"}, UTC, datetime(2026, 11, 20, 9, 15, tzinfo=UTC)),
        ({0x9004: "2026:11:20 10:00:00"}, None, datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)),
        ({0x9003: "0000:00:00 00:00:00"}, None, None),
        ({0x9003: "    :  :     :  :  "}, None, None),
        ({0x9003: "2026:11:20 09:15:00", 0x9011: "+0900"}, None, datetime(2026, 11, 20, 0, 15, tzinfo=UTC)),
        ({0x9003: "2026:11:20 09:15:00", 0x9011: "+09"}, None, datetime(2026, 11, 20, 0, 15, tzinfo=UTC)),
        ({0x9003: "2026:11:20 09:15:00", 0x9011: "Z"}, None, datetime(2026, 11, 20, 9, 15, tzinfo=UTC)),
        ({0x9003: "2026:11:20 09:15:00", 0x9011: "Z8"}, None, None),
        ({0x9003: "2026:11:20 09:15:00", 0x9011: "+09:"}, None, None),
        ({0x9003: "2026:11:20 09:15:00", 0x9011: "+15:00"}, None, None),
        ({0x9003: "2026:11:20 09:15:00", 0x9011: "+08:60"}, None, None),
        ({}, None, None),
    ],
)
def test_taken_at(tags: dict[int, str], local_tz: Any, expected: datetime | None) -> None:
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif).update(tags)
    data = jpeg_bytes(quadrants(), exif)
    meta = decode_photo(data, local_tz=local_tz).meta if local_tz else decode_photo(data).meta
    assert meta.taken_at == expected
    if expected is not None:
        assert meta.taken_at is not None and meta.taken_at.utcoffset() is not None
    elif tags:
        assert any("EXIF time ignored" in w for w in meta.warnings)


def test_exif_written_for_samples_reads_back() -> None:
    taken = datetime(2026, 11, 20, 9, 15, 30, tzinfo=SHANGHAI)
    exif = exif_for(position=Position(34.723456, 113.628765), taken_at=taken, orientation=6)
    meta = decode_photo(jpeg_bytes(quadrants(), exif)).meta
    assert meta.position is not None
    assert (meta.position.lat, meta.position.lon) == pytest.approx((34.723456, 113.628765), abs=1e-7)
    assert meta.taken_at == taken
    assert meta.orientation == 6 and meta.warnings == ()


def damaged_exif(where: str) -> bytes:
    """EXIF with GPS and a capture time, one block of it damaged as a failed copy or a buggy
    editor leaves it: the GPS pointer past the end, or a block claiming 65535 entries."""
    taken = datetime(2026, 11, 20, 9, 15, tzinfo=SHANGHAI)
    raw = bytearray(exif_for(position=Position(34.7236, 113.6275), taken_at=taken).tobytes())
    tiff = 6  # after b"Exif\0\0"
    order = ">" if raw[tiff : tiff + 2] == b"MM" else "<"
    ifd0 = tiff + struct.unpack_from(order + "I", raw, tiff + 4)[0]
    if where == "main block":
        struct.pack_into(order + "H", raw, ifd0, 0xFFFF)
        return bytes(raw)
    for k in range(struct.unpack_from(order + "H", raw, ifd0)[0]):
        entry = ifd0 + 2 + 12 * k
        if struct.unpack_from(order + "H", raw, entry)[0] == ExifTags.IFD.GPSInfo:
            if where == "GPS pointer":
                struct.pack_into(order + "I", raw, entry + 8, 0x7FFFFFF0)
            else:
                struct.pack_into(
                    order + "H", raw, tiff + struct.unpack_from(order + "I", raw, entry + 8)[0], 0xFFFF
                )
    return bytes(raw)


@pytest.mark.parametrize(
    ("where", "warning", "located"),
    [
        ("GPS pointer", "EXIF GPS block damaged", False),
        ("GPS entries", "EXIF GPS block damaged", True),  # the entries before the damage still read
        ("main block", "EXIF block damaged", True),
    ],
)
def test_damaged_exif_is_a_warning_of_the_photo_not_a_bare_one(
    where: str, warning: str, located: bool
) -> None:
    """Pillow reads a damaged EXIF block as empty or partial with a bare UserWarning on stderr that
    names no file: the photo was unlocated with no reason in the scan's log or report."""
    out = BytesIO()
    Image.fromarray(quadrants()).save(out, "JPEG", exif=damaged_exif(where))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may reach stderr past the photo's own warnings
        photo = decode_photo(out.getvalue())
    assert (photo.meta.position is not None) == located and photo.image.shape == (48, 64, 3)
    assert photo.meta.taken_at == datetime(2026, 11, 20, 9, 15, tzinfo=SHANGHAI)
    damage = [w for w in photo.meta.warnings if w.startswith(warning)]
    assert damage and any("Corrupt EXIF data" in w for w in damage), photo.meta.warnings
    assert len(set(photo.meta.warnings)) == len(photo.meta.warnings)  # each said once


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a size in its header, with one tiny IDAT: what a bomb looks like."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


def good_jpeg() -> bytes:
    return jpeg_bytes(quadrants())


def big_jpeg() -> bytes:
    """Noise of 640x480: the header is a small part, so a cut lands in the pixel data."""
    return jpeg_bytes(np.random.default_rng(3).integers(0, 255, (480, 640, 3), np.uint8))


def good_png() -> bytes:
    out = BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)).save(out, "PNG")
    return out.getvalue()


def gif() -> bytes:
    out = BytesIO()
    Image.fromarray(quadrants()).save(out, "GIF")
    return out.getvalue()


def corrupt_png() -> bytes:
    data = bytearray(good_png())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    return bytes(data)


@pytest.mark.parametrize(
    ("make", "reason", "max_pixels"),
    [
        (lambda: good_jpeg()[: len(good_jpeg()) // 2], "truncated", None),
        (lambda: big_jpeg()[: len(big_jpeg()) * 2 // 3], "truncated", None),
        (lambda: b"", "empty file", None),
        (lambda: b"this is a text file, not a photo\n" * 20, "not an image", None),
        (lambda: np.random.default_rng(1).bytes(4096), "not an image", None),
        (lambda: b"\xff\xd8\xff\xe0" + np.random.default_rng(2).bytes(2048), None, None),
        (corrupt_png, None, None),
        (gif, "unsupported format GIF", None),
        (lambda: png_header_only(100_000, 100_000), "decompression bomb", None),
        (lambda: png_header_only(12_000, 10_000), "decompression bomb", None),
        (good_jpeg, "decompression bomb", 1000),
    ],
)
def test_unusable_files_raise_image_error_with_reason(
    make: Any, reason: str | None, max_pixels: int | None
) -> None:
    kwargs = {"max_pixels": max_pixels} if max_pixels else {}
    with pytest.raises(ImageError) as caught:
        decode_photo(make(), source="archive/p001.jpg", **kwargs)
    assert caught.value.source == "archive/p001.jpg"
    assert str(caught.value).startswith("archive/p001.jpg: ")
    assert caught.value.reason
    if reason is not None:
        assert reason in caught.value.reason
    assert " at 0x" not in caught.value.reason  # no object's memory address: the same reason every run


def test_the_pixel_limit_is_the_one_given_not_pillow_s() -> None:
    """A JPEG declaring 20000x10000 (200 MP, a panorama): Pillow's own process-wide check refused
    it at its open ("exceeds limit of 178956970 pixels") whatever `max_pixels` (scan --max-pixels)
    allowed, and named its own limit, not the one the user can change. The given limit decides
    and is the one named. Above it, this file is what it is: 64x48 pixels' data under a 200 MP
    header, the rest of which libjpeg painted grey (test_a_jpeg_whose_data_ends_long_before_...)."""
    data = bytearray(good_jpeg())
    sof = data.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
    data[sof + 5 : sof + 9] = struct.pack(">HH", 10_000, 20_000)
    with pytest.raises(ImageError) as refused:
        decode_photo(bytes(data), reduce_to=320)
    assert refused.value.reason == (
        f"decompression bomb: 20000x10000 = 200000000 pixels is over the limit of {MAX_PIXELS}"
    )
    with pytest.raises(ImageError) as allowed:
        decode_photo(bytes(data), reduce_to=320, max_pixels=300_000_000)
    assert allowed.value.reason.startswith("truncated file (at least 99 % of the picture missing")


def test_ultralytics_patch_of_pillow_does_not_reach_the_photo_doors() -> None:
    """ultralytics, once imported (the torch backend, training, export), replaces `Image.open`
    process-wide with one that checks for pi-heif (a pip install when online) at the first bytes
    Pillow cannot identify: a text file sent as a photo was then refused as "not an image (No module
    named 'pi_heif')" after that check. The doors open with Pillow's own function: the usual reason,
    and ultralytics' HEIF plugin never asked for."""
    from ultralytics.utils import patches

    assert Image.open is patches.image_open  # the patch is in force in this process
    with pytest.raises(ImageError) as refused:
        decode_photo(b"just some text, no picture" * 10)
    assert refused.value.reason == "not an image (no JPEG, PNG, WebP or HEIC data)"
    assert image_format(b"just some text, no picture") is None
    assert not patches._pil_plugins_registered  # its pi-heif path never ran
    assert decode_photo(good_jpeg()).image.shape[:2] == (48, 64)


def test_png_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    path.write_bytes(good_png())
    photo = read_photo(path)
    assert photo.format == "PNG" and photo.image.shape == (48, 64, 3) and photo.image.dtype == np.uint8
    assert photo.meta.position is None and photo.meta.taken_at is None
    with pytest.raises(ImageError, match="cannot read file"):
        read_photo(tmp_path / "missing.jpg")


def _saved(image: Image.Image, kind: str) -> bytes:
    out = BytesIO()
    image.save(out, kind)
    return out.getvalue()


@pytest.mark.parametrize("kind", ["WEBP", "PNG"])
def test_an_animation_reads_its_first_frame_and_says_so(kind: str) -> None:
    frames = [Image.new("RGB", (64, 48), colour) for colour in ((200, 30, 30), (30, 200, 30), (30, 30, 200))]
    out = BytesIO()
    frames[0].save(out, kind, save_all=True, append_images=frames[1:], lossless=True)
    photo = decode_photo(out.getvalue())
    assert tuple(int(v) for v in photo.image[24, 32]) == (30, 30, 200)  # BGR of the first frame's red
    assert f"animated {kind} of 3 frames: only the first is read" in photo.meta.warnings
    assert not any("animated" in w for w in decode_photo(_saved(frames[0], kind)).meta.warnings)


GREY = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (48, 1))  # a left-to-right ramp, 48 x 64
BILEVEL = np.where(GREY > 127, 255, 0).astype(np.uint8)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("16-bit grey PNG", _saved(Image.fromarray(GREY.astype(np.uint16) * 257), "PNG")),  # PIL: "I;16"
        ("8-bit grey JPEG", _saved(Image.fromarray(GREY), "JPEG")),
        ("CMYK JPEG", _saved(Image.fromarray(GREY).convert("CMYK"), "JPEG")),
        ("grey with alpha PNG", _saved(Image.fromarray(GREY).convert("LA"), "PNG")),
        ("palette PNG", _saved(Image.fromarray(GREY).convert("P"), "PNG")),
        ("1-bit PNG", _saved(Image.fromarray(BILEVEL).convert("1"), "PNG")),
        ("transparent RGBA PNG", _saved(Image.fromarray(np.dstack([GREY, GREY, GREY, GREY * 0])), "PNG")),
        ("transparent grey PNG", _saved(Image.fromarray(np.dstack([GREY, GREY // 2])), "PNG")),  # "LA"
    ],
)
@pytest.mark.parametrize("reduce_to", [None, 32])
def test_every_pixel_mode_a_camera_or_an_editor_writes_decodes_to_its_own_brightness(
    name: str, data: bytes, reduce_to: int | None
) -> None:
    """A 16-bit greyscale PNG came out white (PIL's RGB conversion clips at 255); it, palette and
    1-bit PNGs could not be reduced at all; a transparent one came out black when reduced (the scan)
    and as itself in full (an upload); every mode keeps its brightness ramp, reduced or not."""
    photo = decode_photo(data, reduce_to=reduce_to)
    grey = photo.image.mean(axis=(0, 2))
    source = BILEVEL if name.startswith("1-bit") else GREY
    ramp = source[0].reshape(len(grey), -1).mean(axis=1)  # the ramp at the decoded width
    assert photo.image.dtype == np.uint8 and photo.image.shape[1] == (64 if reduce_to is None else 32)
    assert np.abs(grey - ramp).max() < 12, name


def test_opencv_reads_and_writes_by_bytes_so_a_gbk_name_does_not_crash_the_process(tmp_path: Path) -> None:
    """cv2.imread and cv2.imwrite segfault on a path str that is not UTF-8 (GBK names from a zip made
    on a Chinese Windows): the contact sheets, reviews, evaluation and calibration read through these."""
    folder = tmp_path / os.fsdecode("巡查".encode("gbk"))
    folder.mkdir()
    image = np.random.default_rng(3).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    assert write_bgr(folder / "sheet.png", image)
    assert np.array_equal(read_bgr(folder / "sheet.png"), image)
    assert read_bgr(folder / "missing.png") is None
    (folder / "note.png").write_text("not an image")
    assert read_bgr(folder / "note.png") is None


DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def street_like(height: int, width: int) -> np.ndarray:
    """Smooth colour fields with some texture: what a street photo compresses like."""
    rng = np.random.default_rng(5)
    small = rng.integers(0, 255, (height // 64 + 1, width // 64 + 1, 3), np.uint8)
    fields = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR))
    return (fields.astype(np.int16) + rng.integers(-6, 7, (height, width, 3))).clip(0, 255).astype(np.uint8)


def closed_early(data: bytes, kept: int) -> bytes:
    """`kept` bytes of a JPEG's picture data and then its end marker, as a failed copy or a broken
    camera leaves it: libjpeg decodes it, paints what is missing grey, and says so on stderr only."""
    return data[: data.index(b"\xff\xda") + kept] + b"\xff\xd9"


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_a_jpeg_whose_data_ends_long_before_its_picture_is_truncated(progressive: bool) -> None:
    """A 6000x4000 JPEG (24 MP, under the pixel limit) holding 4 KB of its picture and then its end
    marker decoded without an error into a grey picture with a strip of photo on top, and a scan
    took it for a photo. Refused before a pixel is decoded, saying how much is missing at least."""
    out = BytesIO()
    Image.fromarray(street_like(4000, 6000)).save(out, "JPEG", quality=85, progressive=progressive)
    whole = out.getvalue()
    assert decode_photo(whole, reduce_to=1000).full_size == (6000, 4000)  # the whole file is a photo
    with pytest.raises(ImageError) as caught:
        decode_photo(closed_early(whole, 4096), source="dcim/IMG_0001.jpg")
    reason = caught.value.reason
    assert reason.startswith("truncated file (at least 9") and "% of the picture missing" in reason, reason
    assert "where its 6000x4000 pixels take" in reason


@pytest.mark.parametrize(
    ("colour", "subsampling", "progressive"),
    [
        ((128, 128, 128), 2, False),
        ((128, 128, 128), 0, True),
        ((0, 0, 0), 2, True),
        ((255, 255, 255), 1, False),
    ],
)
def test_a_plain_picture_written_whole_is_no_truncated_one(
    colour: tuple[int, int, int], subsampling: int, progressive: bool
) -> None:
    """A grey "no signal" screen, a black or white frame: the fewest bytes a picture can take,
    whole; the bound the truncation check holds files to is below them."""
    out = BytesIO()
    Image.new("RGB", (4000, 3000), colour).save(
        out, "JPEG", quality=75, subsampling=subsampling, progressive=progressive, optimize=True
    )
    assert decode_photo(out.getvalue(), reduce_to=500).full_size == (4000, 3000)


def test_no_photo_of_the_shared_datasets_is_taken_for_a_truncated_one() -> None:
    """Every JPEG of the shared datasets (4,397 phone, camera and web photos here) holds at least
    7.5 times the picture data the truncation check asks of it."""
    from vision.core.imageio import jpeg_data_shortfall

    photos = [p for p in DATASETS.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg")]
    if not photos:
        pytest.skip(f"no shared datasets under {DATASETS}")
    assert [p for p in photos if jpeg_data_shortfall(p.read_bytes()) is not None] == []
