"""POST /v1/detect: one image in, detections out; nothing is stored."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import tzinfo

import supervision as sv
from fastapi import APIRouter

from serve.api.deps import Detecting, DetectorDep, ImageUpload, ServiceDep
from serve.api.schemas import DetectionOut, DetectResponse, Timing
from serve.cases.intake import patrol_findings
from vision.core.boxes import boxes_of
from vision.core.detector import Detector
from vision.core.imageio import FORMATS, VIEW_SIDE, LoadedPhoto, decode_photo
from vision.core.taxonomy import Taxonomy
from vision.detect.pipeline import detect_full

router = APIRouter(tags=["detect"])


@dataclass(frozen=True)
class Analysis:
    photo: LoadedPhoto
    detections: sv.Detections
    decode_s: float
    inference_s: float


def analyse(
    detector: Detector,
    data: bytes,
    source: str,
    local_tz: tzinfo,
    min_side: int,
    formats: frozenset[str] = FORMATS,
) -> Analysis:
    """Decode (EXIF orientation applied) and detect; runs in a worker thread behind the gate. A photo
    with a side under `min_side` (the `min_photo_side` setting) is refused before the model sees it:
    the model boxes even a 1x1 photo whole. `formats`: those the door takes (camera frames: JPEG, PNG)."""
    started = time.perf_counter()
    photo = decode_photo(
        data, source=source, local_tz=local_tz, reduce_to=VIEW_SIDE, min_side=min_side, formats=formats
    )
    decoded = time.perf_counter()
    detections = detect_full(detector, photo)
    return Analysis(photo, detections, decoded - started, time.perf_counter() - decoded)


def detections_out(detections: sv.Detections, taxonomy: Taxonomy) -> list[DetectionOut]:
    """Every detection, best first, marked where the patrol rule (serve.cases.intake) makes it a finding."""
    findings = {box for boxes in patrol_findings(detections, taxonomy).values() for box in boxes}
    classes = {c.name: c for c in taxonomy.classes}
    return [
        DetectionOut(
            xyxy=[round(v, 1) for v in box.xyxy],
            class_id=classes[box.class_name].index,
            class_name=box.class_name,
            confidence=round(box.confidence, 4),
            event=classes[box.class_name].event,
            finding=box in findings,
        )
        for box in boxes_of(detections, taxonomy.names)
    ]


@router.post("/v1/detect", response_model=DetectResponse, summary="Detect on one image (scope detect)")
async def detect(
    _: Detecting,
    upload: ImageUpload,
    service: ServiceDep,
    detector: DetectorDep,
) -> DetectResponse:
    started = time.perf_counter()
    tz = service.domain.rules.calendar.timezone
    min_side = service.settings.min_photo_side
    result = await service.gate.run(analyse, detector, upload.data, upload.filename, tz, min_side)
    service.metrics.inference.observe(result.inference_s)
    return DetectResponse(
        width=result.photo.width,
        height=result.photo.height,
        model_version=detector.version,
        detections=detections_out(result.detections, service.domain.rules.taxonomy),
        timing=Timing(
            decode_ms=round(result.decode_s * 1000, 2),
            inference_ms=round(result.inference_s * 1000, 2),
            total_ms=round((time.perf_counter() - started) * 1000, 2),
        ),
    )
