"""Safe loading of photos: hostile or broken files become an `ImageError`, never a crash of a scan.

A patrol archive holds millions of files from many phones and cameras. Some are truncated by a
failed copy, some are not images at all, and a few declare gigantic sizes (decompression bombs).
Every such file must be reported with a reason while the scan goes on. Photos also carry what a
case needs: where (EXIF GPS, degrees/minutes/seconds with N/S/E/W references) and when
(DateTimeOriginal, with OffsetTimeOriginal or else the bureau's local timezone). Absurd values
(out of range, the (0, 0) of a phone without a fix) are dropped with a warning rather than trusted:
a case must never be put at a made-up place.

The image handed on is BGR uint8 with the EXIF orientation applied, so pixel boxes refer to the
photo as a person sees it.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from io import BytesIO
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pillow_heif
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from vision.core.files import read_regular_file

# 100 MP: above any phone or DSLR patrol photo, far below what would exhaust memory while decoding.
MAX_PIXELS = 100_000_000
# 32 px: a photo whose shorter side is under this shows no street, only a few blotches that the
# model still boxed whole (a 1x1 photo was `garbage_bin` 0.96); the doors refuse it (the service's
# `min_photo_side` setting), a scan lists it with the reason.
MIN_PHOTO_SIDE = 32
# 256 MiB: over any photo of MAX_PIXELS (a 100 MP JPEG is some 50 MB); a file larger than this (a
# sparse or runaway `big.jpg`) is refused by its size before it is read into memory.
MAX_PHOTO_BYTES = 256 * 2**20
# A photo whose long side is twice this or more is decoded reduced where the full pixels serve no
# purpose (detection, which resizes anyway; blurred and annotated copies for viewing): an
# 8000x8000 JPEG then takes 48 MB of pixels instead of 192 MB. Phone photos (4032 px) decode in full.
VIEW_SIDE = 4000
DEFAULT_TIMEZONE = ZoneInfo("Asia/Shanghai")
# The photo formats every door takes, with their media types and file suffixes: JPEG (MPO: the
# JPEG variant of some phone cameras), PNG, WebP, and HEIF/HEIC (iPhones' default; pillow-heif
# decodes it with its own rotation applied and the EXIF orientation it reports reset to 1).
MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "HEIF": "image/heic",
}
FORMATS = frozenset(MEDIA_TYPES)
_NAMED = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "HEIF": "HEIC"}  # as people say them
SUFFIXES = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "HEIF": ".heic"}
# the names a photo file goes by: .jfif is how Windows saves a JPEG downloaded from a browser
PHOTO_SUFFIXES = frozenset({*SUFFIXES.values(), ".jpeg", ".jpe", ".jfif", ".heif"})
# EXIF's '+08:00'; also '+0800', '+08' and 'Z' as some phones and editing tools write them
_OFFSET = re.compile(r"(?P<utc>Z)|(?P<sign>[+-])(?P<hours>\d{2})(?::?(?P<minutes>\d{2}))?")
pillow_heif.register_heif_opener()
# Pillow's own bomb check, one limit for the process (an error at 178,956,970 pixels), is replaced by
# `decode_photo`'s, made from the same header before a pixel is decoded, at each door's `max_pixels`
# (scan --max-pixels): Pillow's refused what a larger --max-pixels allowed, naming its own limit
Image.MAX_IMAGE_PIXELS = None
_T = TypeVar("_T")


def pillow_open(data: bytes) -> Image.Image:
    """Pillow's own `Image.open` on the bytes, even where a library has replaced it: ultralytics
    (imported by the torch backend, training and export) patches it process-wide to check for and
    pip-install pi-heif at the first file Pillow cannot identify, so a non-image upload became "not
    an image (No module named 'pi_heif')" (and, online, a pip install inside the service). HEIC is
    pillow_heif's here, registered above; the patch keeps Pillow's function as `_image_open`."""
    opener = Image.open
    while getattr(opener, "__module__", "PIL.Image") != "PIL.Image":
        inner = getattr(opener, "__globals__", {}).get("_image_open")
        if inner is None:  # a patch we do not know: use it as it is
            break
        opener = inner
    return opener(BytesIO(data))

_ORIENTATION = 0x0112
_DATETIME_ORIGINAL = 0x9003
_DATETIME_DIGITIZED = 0x9004
_OFFSET_TIME_ORIGINAL = 0x9011
_OFFSET_TIME_DIGITIZED = 0x9012
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON = 1, 2, 3, 4


class ImageError(ValueError):
    """A file that cannot be used as a photo; `reason` says why in words a person can act on."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class PhotoTooSmall(ImageError):
    """A photo too small to show any disorder: an image, but nothing to judge on it."""

    def __init__(self, source: str, size: tuple[int, int], min_side: int):
        width, height = size
        super().__init__(
            source,
            f"too small: {width}x{height} pixels, under the minimum of {min_side} px on its shorter "
            "side (nothing to judge on it)",
        )
        self.size = size
        self.min_side = min_side


# The systems a position may be written in: WGS-84 (GPS, EXIF), GCJ-02 (AMap, Tencent, WeChat), BD-09
# (Baidu). Here for the camera file, which vision reads; serve/cases/coords.py converts them.
CoordSystem = Literal["wgs84", "gcj02", "bd09"]


@dataclass(frozen=True)
class Position:
    """WGS-84 degrees, as EXIF GPS records them."""

    lat: float
    lon: float


@dataclass(frozen=True)
class PhotoMeta:
    position: Position | None
    taken_at: datetime | None  # timezone-aware
    orientation: int  # the EXIF orientation that was applied (1 = none)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadedPhoto:
    image: np.ndarray  # BGR uint8 (H, W, 3), orientation applied; smaller than the photo if reduced
    meta: PhotoMeta
    format: str
    full_size: tuple[int, int] | None = None  # upright (width, height) of the photo when `image` is reduced

    @property
    def width(self) -> int:
        """Width of the photo itself (not of a reduced decode): what boxes are stored against."""
        return self.full_size[0] if self.full_size else int(self.image.shape[1])

    @property
    def height(self) -> int:
        return self.full_size[1] if self.full_size else int(self.image.shape[0])


def read_photo(
    path: Path | str,
    *,
    max_pixels: int = MAX_PIXELS,
    local_tz: tzinfo = DEFAULT_TIMEZONE,
    max_bytes: int | None = None,
) -> LoadedPhoto:
    """Read and decode one photo file (see `decode_photo`); one over `max_bytes` is not read."""
    try:
        data = read_regular_file(path, max_bytes)
    except OSError as err:
        raise ImageError(str(path), f"cannot read file: {err.strerror or err}") from err
    return decode_photo(data, source=str(path), max_pixels=max_pixels, local_tz=local_tz)


def read_bgr(path: Path | str) -> np.ndarray | None:
    """A file as cv2.imread reads it (BGR, EXIF orientation applied), or None when it is no image.
    Read as bytes: cv2.imread and cv2.imwrite crash the process (a segfault) on a path whose name is
    not UTF-8 (GBK names from a zip made on a Chinese Windows)."""
    try:
        data = read_regular_file(path)
    except OSError:
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def write_bgr(path: Path | str, image: np.ndarray, params: Sequence[int] = ()) -> bool:
    """cv2.imwrite by bytes (see read_bgr); the format from the suffix. False when OpenCV cannot
    encode it."""
    ok, encoded = cv2.imencode(Path(path).suffix or ".png", image, list(params))
    if ok:
        Path(path).write_bytes(encoded.tobytes())
    return bool(ok)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a BGR image (evidence frames and crops, served copies); ValueError if OpenCV
    cannot encode it."""
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode an image of shape {image.shape} as JPEG")
    return encoded.tobytes()


def formats_in_words(formats: frozenset[str] = FORMATS) -> str:
    """`JPEG, PNG, WebP or HEIC`: what a door takes (a subset of FORMATS), as its refusals say it."""
    named = list(dict.fromkeys(_NAMED[name] for name in MEDIA_TYPES if name in formats))
    return " or ".join(named) if len(named) < 3 else f"{', '.join(named[:-1])} or {named[-1]}"


def image_format(data: bytes) -> str | None:
    """The image format Pillow reads from the bytes' header alone (no pixel decoded), taken or not
    (GIF, TIFF, BMP ...); None when the header is no image Pillow knows."""
    try:
        with pillow_open(data) as pil:
            return str(pil.format)
    except Exception:  # Pillow raises many types on hostile headers; not a photo either way
        return None


def photo_format(data: bytes) -> str | None:
    """The format of a photo's bytes from its header alone (no pixel decoded), if one we take."""
    found = image_format(data)
    return found if found in FORMATS else None


def decode_photo(
    data: bytes,
    *,
    source: str = "<bytes>",
    max_pixels: int = MAX_PIXELS,
    local_tz: tzinfo = DEFAULT_TIMEZONE,
    reduce_to: int | None = None,
    min_side: int = 0,
    formats: frozenset[str] = FORMATS,
) -> LoadedPhoto:
    """Decode JPEG, PNG, WebP or HEIC bytes into a BGR image with orientation applied, plus its metadata.

    The pixel count is checked from the header before any pixel is decoded, and so is `min_side`
    (`PhotoTooSmall` for a shorter side under it: the doors a photo comes in by pass
    MIN_PHOTO_SIDE or their setting; stored evidence, already taken, is decoded without it).
    `reduce_to`: a JPEG may be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, several
    times cheaper than a full decode) as long as its long side stays at or above this many pixels;
    a detector that resizes to its input size anyway sees the same picture. Other formats decode in
    full and are shrunk by the same rule (box averaging). `full_size` then keeps the photo's size.
    `formats`: those the door takes (camera frames: JPEG and PNG), the ones its refusals name.
    """
    if not data:
        raise ImageError(source, "empty file (0 bytes)")
    meta_warnings: list[str] = []
    try:  # a JPEG's EXIF is read here already (its DPI)
        pil = _noting_damage(lambda: pillow_open(data), "EXIF", meta_warnings)
    except UnidentifiedImageError as err:  # its text names a BytesIO at a memory address
        raise ImageError(source, f"not an image (no {formats_in_words(formats)} data)") from err
    except Exception as err:  # Pillow raises many types on hostile headers
        _reraise_memory(err)
        raise ImageError(source, _failure_reason(err, "not an image")) from err
    image_format = str(pil.format)
    if image_format not in formats:
        expected = formats_in_words(formats)
        raise ImageError(source, f"unsupported format {image_format} ({expected} expected)")
    if image_format in ("WEBP", "PNG") and getattr(pil, "is_animated", False):
        # a clip, not a photo: say which picture was looked at (MPO JPEGs' extra frames are
        # a phone's depth or preview images of the same photo, nothing to say there)
        frames = getattr(pil, "n_frames", "several")
        meta_warnings.append(f"animated {image_format} of {frames} frames: only the first is read")
    width, height = pil.size
    if width <= 0 or height <= 0:
        raise ImageError(source, f"invalid size {width}x{height}")
    if width * height > max_pixels:
        raise ImageError(
            source,
            f"decompression bomb: {width}x{height} = {width * height} pixels is over the limit of "
            f"{max_pixels}",
        )
    if min(width, height) < min_side:
        raise PhotoTooSmall(source, (width, height), min_side)
    if image_format in ("JPEG", "MPO") and (short := jpeg_data_shortfall(data)) is not None:
        have, need = short
        raise ImageError(
            source,
            f"truncated file (at least {100 * (need - have) // need} % of the picture missing: "
            f"{have:,} bytes of picture data where its {width}x{height} pixels take {need:,} or more)",
        )
    if reduce_to and max(width, height) > reduce_to:
        keep = reduce_to / max(width, height)
        pil.draft("RGB", (math.ceil(width * keep), math.ceil(height * keep)))
    try:
        pil.load()
    except Exception as err:  # truncated data, broken chunks, bad Huffman tables, ...
        _reraise_memory(err)
        raise ImageError(source, _failure_reason(err, "corrupt image data")) from err
    try:
        exif = _noting_damage(pil.getexif, "EXIF", meta_warnings)
    except Exception as err:  # a broken EXIF block does not spoil the pixels
        _reraise_memory(err)
        exif = Image.Exif()
        meta_warnings.append(f"EXIF unreadable ({_describe(err)})")
    meta = read_exif_meta(exif, local_tz=local_tz)
    upright: Image.Image = pil
    if meta.orientation != 1:
        try:
            upright = ImageOps.exif_transpose(pil)
        except Exception as err:
            _reraise_memory(err)
            raise ImageError(source, f"cannot apply EXIF orientation ({_describe(err)})") from err
    upright = reducible(upright)
    shrink = max(width, height) // reduce_to if reduce_to and pil.size == (width, height) else 1
    if shrink >= 2:  # no DCT scaling here (PNG, WebP, HEIC): shrink the decoded pixels alike
        upright = upright.reduce(min(shrink, 8))
    rgb = np.asarray(upright.convert("RGB"))
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if meta_warnings:
        meta = PhotoMeta(meta.position, meta.taken_at, meta.orientation, (*meta_warnings, *meta.warnings))
    full_size = None
    if pil.size != (width, height) or shrink >= 2:  # decoded reduced: the upright size of the photo itself
        full_size = (height, width) if meta.orientation in (5, 6, 7, 8) else (width, height)
    return LoadedPhoto(image=image, meta=meta, format=image_format, full_size=full_size)


# JPEG frame headers of Huffman-coded pictures (baseline, extended, progressive) and the fewest bits
# an 8x8 block takes in them: a DC and an AC code of at least one bit each; a progressive picture
# codes each block's DC in its first scan at least. Arithmetic coding can take less: not judged.
_HUFFMAN_FRAMES = {0xC0: 2, 0xC1: 2, 0xC2: 1}
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")  # a marker ends a scan; FF00 and restarts do not


def jpeg_data_shortfall(data: bytes) -> tuple[int, int] | None:
    """(bytes of entropy-coded data, the fewest its blocks take) of a JPEG whose data is too short
    for the picture its header declares; None when it is not, or cannot be told. A file cut short
    and closed with an end marker (a failed copy, a broken camera) decodes without error: libjpeg
    says "Premature end of JPEG file" on stderr only and paints the blocks it lacks grey, and a scan
    took a grey picture with a strip of photo on top for a photo. A bound, never a guess: a whole
    picture holds at least this many bytes however plain it is (a grey "no signal" screen too)."""
    need = have = 0
    pos = 2
    try:
        while pos + 4 <= len(data) and data[pos] == 0xFF:
            marker = data[pos + 1]
            if marker == 0xD9:  # the end of the (first) picture
                break
            if marker == 0xFF or 0xD0 <= marker <= 0xD7:  # fill byte, stray restart marker
                pos += 1 if marker == 0xFF else 2
                continue
            length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a frame header
                if marker not in _HUFFMAN_FRAMES:
                    return None
                need = _HUFFMAN_FRAMES[marker] * _blocks(data[pos + 4 : pos + 2 + length])
            pos += 2 + length
            if marker == 0xDA:  # a scan: its entropy-coded data runs to the next marker
                end = _SCAN_END.search(data, pos)
                stop = end.start() if end else len(data)
                have, pos = have + stop - pos, stop
    except (IndexError, ZeroDivisionError):  # a header this reading cannot follow: Pillow judges it
        return None
    need_bytes = need // 8
    return (have, need_bytes) if have < need_bytes else None


def _blocks(frame: bytes) -> int:
    """The 8x8 blocks of a JPEG frame header's components (each at its own sampling)."""
    height, width, count = int.from_bytes(frame[1:3], "big"), int.from_bytes(frame[3:5], "big"), frame[5]
    factors = [(frame[7 + 3 * i] >> 4, frame[7 + 3 * i] & 15) for i in range(count)]
    wide, tall = max(h for h, _ in factors), max(v for _, v in factors)
    return sum(
        math.ceil(math.ceil(width * h / wide) / 8) * math.ceil(math.ceil(height * v / tall) / 8)
        for h, v in factors
    )


def read_exif_meta(exif: Mapping[int, Any], *, local_tz: tzinfo = DEFAULT_TIMEZONE) -> PhotoMeta:
    """Position, time and orientation from a Pillow `Image.Exif`; bad values become warnings."""
    notes: list[str] = []
    orientation = _as_int(exif.get(_ORIENTATION, 1))
    if orientation not in range(1, 9):
        notes.append(f"EXIF orientation {exif.get(_ORIENTATION)!r} is invalid; ignored")
        orientation = 1
    gps = _sub_ifd(exif, ExifTags.IFD.GPSInfo, "EXIF GPS", notes)
    details = _sub_ifd(exif, ExifTags.IFD.Exif, "EXIF time", notes)
    position, gps_notes = gps_position(gps)
    notes.extend(gps_notes)
    taken_at = None
    for tag, offset_tag in (
        (_DATETIME_ORIGINAL, _OFFSET_TIME_ORIGINAL),
        (_DATETIME_DIGITIZED, _OFFSET_TIME_DIGITIZED),
    ):
        if tag in details:
            try:
                taken_at = exif_datetime(details[tag], details.get(offset_tag), local_tz=local_tz)
                break
            except ValueError as err:
                notes.append(f"EXIF time ignored: {err}")
    return PhotoMeta(position=position, taken_at=taken_at, orientation=orientation, warnings=tuple(notes))


def _sub_ifd(exif: Mapping[int, Any], ifd: ExifTags.IFD, name: str, notes: list[str]) -> Mapping[int, Any]:
    get_ifd = getattr(exif, "get_ifd", None)
    return _noting_damage(lambda: get_ifd(ifd), name, notes) if get_ifd is not None else {}


def _noting_damage(read: Callable[[], _T], name: str, notes: list[str]) -> _T:
    """`read()` of EXIF by Pillow, which reads a damaged block (a pointer past the end, junk entries)
    as empty or partial with a bare UserWarning on stderr, naming no file: the photo was then
    unlocated or undated with no reason given. The damage becomes a warning of the photo's."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)  # Pillow's category for them
        found = read()
    said = (" ".join(str(w.message).split()) for w in caught if issubclass(w.category, UserWarning))
    notes.extend(f"{name} block damaged ({message})" for message in dict.fromkeys(said))
    return found


def gps_position(gps: Mapping[int, Any]) -> tuple[Position | None, list[str]]:
    """Decimal WGS-84 position of an EXIF GPS IFD, or None with the reason as a warning."""
    if _GPS_LAT not in gps and _GPS_LON not in gps:
        return None, []
    try:
        lat = dms_to_degrees(gps.get(_GPS_LAT), gps.get(_GPS_LAT_REF), axis="latitude")
        lon = dms_to_degrees(gps.get(_GPS_LON), gps.get(_GPS_LON_REF), axis="longitude")
    except ValueError as err:
        return None, [f"GPS ignored: {err}"]
    if lat == 0.0 and lon == 0.0:
        return None, ["GPS ignored: position (0, 0) is what devices write without a fix"]
    return Position(lat=lat, lon=lon), []


def dms_to_degrees(value: Any, ref: Any, *, axis: str) -> float:
    """EXIF degrees/minutes/seconds and an N/S/E/W reference to signed decimal degrees."""
    limit, positive, negative = (90.0, "N", "S") if axis == "latitude" else (180.0, "E", "W")
    if value is None:
        raise ValueError(f"{axis} missing")
    parts: list[Any] = (
        [value] if not isinstance(value, Sequence) or isinstance(value, str | bytes) else list(value)
    )
    if not 1 <= len(parts) <= 3:
        raise ValueError(f"{axis} has {len(parts)} values (degrees, minutes, seconds expected)")
    if any(getattr(p, "denominator", 1) == 0 for p in parts):  # Pillow reads x/0 as nan: say what it is
        written = " ".join(
            f"{p.numerator}/{p.denominator}" if hasattr(p, "denominator") else str(p) for p in parts
        )
        raise ValueError(f"{axis} {written} divides by zero (a rational with denominator 0)")
    try:
        numbers = [float(p) for p in parts]
    except (TypeError, ValueError, ZeroDivisionError) as err:
        raise ValueError(f"{axis} {value!r} is not numeric") from err
    if not all(math.isfinite(n) and n >= 0 for n in numbers):
        raise ValueError(f"{axis} {value!r} has a negative or undefined value")
    if any(n >= 60 for n in numbers[1:]):
        raise ValueError(f"{axis} {value!r} has minutes or seconds of 60 or more")
    degrees = sum(n / 60**i for i, n in enumerate(numbers))
    if degrees > limit:
        raise ValueError(f"{axis} {degrees:.6f} is out of range (at most {limit:g})")
    reference = _text(ref).upper()
    if reference not in (positive, negative):
        raise ValueError(
            f"{axis} reference {ref!r} is not {positive} or {negative}"
            if reference
            else f"{axis} reference ({positive} or {negative}) missing"
        )
    return -degrees if reference == negative else degrees


def exif_datetime(value: Any, offset: Any = None, *, local_tz: tzinfo = DEFAULT_TIMEZONE) -> datetime:
    """An EXIF 'YYYY:MM:DD HH:MM:SS' as an aware datetime: its offset tag if any, else local_tz."""
    text = _text(value)
    try:
        naive = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError as err:
        raise ValueError(f"{text!r} is not an EXIF date 'YYYY:MM:DD HH:MM:SS'") from err
    offset_text = _text(offset)
    if not offset_text:
        return naive.replace(tzinfo=local_tz)
    written = _OFFSET.fullmatch(offset_text)
    if written is None or int(written["hours"] or 0) > 14 or int(written["minutes"] or 0) >= 60:
        raise ValueError(f"offset {offset_text!r} is not '+HH:MM'")
    if written["utc"]:
        return naive.replace(tzinfo=UTC)
    sign = 1 if written["sign"] == "+" else -1
    return naive.replace(
        tzinfo=timezone(sign * timedelta(hours=int(written["hours"]), minutes=int(written["minutes"] or 0)))
    )


def exif_for(
    *, position: Position | None = None, taken_at: datetime | None = None, orientation: int = 1
) -> Image.Exif:
    """EXIF with GPS (DMS + refs), DateTimeOriginal + OffsetTimeOriginal: for demo and sample photos."""
    exif = Image.Exif()
    exif[_ORIENTATION] = orientation
    if position is not None:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        gps[_GPS_LAT_REF] = "N" if position.lat >= 0 else "S"
        gps[_GPS_LAT] = _to_dms(abs(position.lat))
        gps[_GPS_LON_REF] = "E" if position.lon >= 0 else "W"
        gps[_GPS_LON] = _to_dms(abs(position.lon))
    if taken_at is not None:
        if taken_at.tzinfo is None:
            raise ValueError("taken_at must be timezone-aware")
        details = exif.get_ifd(ExifTags.IFD.Exif)
        details[_DATETIME_ORIGINAL] = taken_at.strftime("%Y:%m:%d %H:%M:%S")
        offset = taken_at.utcoffset() or timedelta(0)
        minutes = int(offset.total_seconds() // 60)
        details[_OFFSET_TIME_ORIGINAL] = (
            f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        )
    return exif


def _to_dms(degrees: float) -> tuple[float, float, float]:
    """Whole seconds counted first: 113.6 must give 113 36 0, not 113 35 60 (refused when read)."""
    whole, rest = divmod(round(degrees * 3600, 4), 3600)
    minutes, seconds = divmod(rest, 60)
    return float(whole), float(minutes), round(seconds, 4)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).replace("\x00", "").strip()


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _failure_reason(err: BaseException, otherwise: str) -> str:
    if "truncated" in str(err).lower() or isinstance(err, EOFError):
        return f"truncated file ({_describe(err)})"
    return f"{otherwise} ({_describe(err)})"


def reducible(image: Image.Image) -> Image.Image:
    """The image in a mode PIL can both `reduce` and convert to RGB faithfully: 16-bit greyscale
    (PNG modes "I;16" and "I", 0-65535) scaled to 8 bits, since the RGB conversion clips every
    value over 255 (a white photo); palette and 1-bit images expanded to RGB (`reduce` refuses
    them: any palette PNG twice the scan's size failed to decode); an alpha channel dropped, as the
    RGB conversion of a full decode drops it (`reduce` weighs colours by their alpha: a transparent
    PNG or WebP came out black from a scan and as the photo from an upload). Other modes as they are."""
    if image.mode.startswith("I"):
        return Image.fromarray((np.asarray(image).astype(np.int64) // 257).clip(0, 255).astype(np.uint8))
    if image.mode in ("1", "P", "RGBA", "LA", "PA"):
        return image.convert("RGB")
    return image


def _reraise_memory(err: BaseException) -> None:
    if isinstance(err, MemoryError):
        raise err
