"""POST /v1/detect: one image in, detections out; nothing is stored."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import tzinfo

import supervision as sv
from fastapi import APIRouter

from serve.deps import Detecting, DetectorDep, ImageUpload, ServiceDep
from serve.schemas import DetectionOut, DetectResponse, Timing
from vision.detector import Detector
from vision.imageio import LoadedPhoto, decode_photo
from vision.taxonomy import Taxonomy

router = APIRouter(tags=["detect"])


@dataclass(frozen=True)
class Analysis:
    photo: LoadedPhoto
    detections: sv.Detections
    decode_s: float
    inference_s: float


def analyse(detector: Detector, data: bytes, source: str, local_tz: tzinfo) -> Analysis:
    """Decode (EXIF orientation applied) and detect; runs in a worker thread behind the gate."""
    started = time.perf_counter()
    photo = decode_photo(data, source=source, local_tz=local_tz)
    decoded = time.perf_counter()
    detections = detector(photo.image)
    return Analysis(photo, detections, decoded - started, time.perf_counter() - decoded)


def is_patrol_finding(taxonomy: Taxonomy, class_id: int, confidence: float) -> bool:
    """What a patrol-photo scan files from the class alone (configs/taxonomy.yaml `patrol`)."""
    cls = taxonomy.classes[class_id]
    return cls.patrol and cls.event is not None and confidence >= cls.min_confidence


def detections_out(detections: sv.Detections, taxonomy: Taxonomy) -> list[DetectionOut]:
    confidences = detections.confidence if detections.confidence is not None else [1.0] * len(detections)
    class_ids = detections.class_id if detections.class_id is not None else [0] * len(detections)
    out = []
    for xyxy, confidence, class_id in zip(detections.xyxy, confidences, class_ids, strict=True):
        cls = taxonomy.classes[int(class_id)]
        out.append(
            DetectionOut(
                xyxy=[round(float(v), 1) for v in xyxy],
                class_id=cls.index,
                class_name=cls.name,
                confidence=round(float(confidence), 4),
                event=cls.event,
                finding=is_patrol_finding(taxonomy, cls.index, float(confidence)),
            )
        )
    return out


@router.post("/v1/detect", response_model=DetectResponse, summary="Detect on one image (scope detect)")
async def detect(
    _: Detecting,
    upload: ImageUpload,
    service: ServiceDep,
    detector: DetectorDep,
) -> DetectResponse:
    started = time.perf_counter()
    tz = service.domain.rules.calendar.timezone
    result = await service.gate.run(analyse, detector, upload.data, upload.filename, tz)
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
