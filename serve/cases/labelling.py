"""The case database as a source of images worth labelling: reviewed findings, camera frames that
disagree, photos scored near a threshold. vision.data.activelearning ranks and writes the queue."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from serve.cases.enums import AiReview, EvidenceRole
from serve.cases.orm import Case, Evidence, Photo
from vision.core.boxes import parse_boxes
from vision.core.phash import KnownImages
from vision.core.taxonomy import Taxonomy
from vision.data.activelearning import (
    OCCUPANCY,
    PRIORITY,
    Candidate,
    class_of_event,
    disagreement,
    labels_of,
    resolve_path,
    select_queue,
    uncertainty,
    write_queue,
)
from vision.data.annotations.records import Label
from vision.data.annotations.writers import QueuedImage


def from_cases(session: Session, taxonomy: Taxonomy, base: Path) -> Iterator[Candidate]:
    """Findings reviewed by a person: rejected and corrected AI findings, confirmed occupancy.

    Every finding frame of a case is a candidate of its own; an occupancy frame proposes its
    region as a box of the class its event names (a stall for street vending, goods for a shop's
    overflow, materials for piled materials) for the annotator to confirm or correct."""

    reviewed = (AiReview.REJECTED, AiReview.CORRECTED, AiReview.CONFIRMED)
    rows = session.execute(
        select(Case, Evidence)
        .join(Evidence, Evidence.case_id == Case.id)
        .where(Case.ai_review.in_(reviewed), Evidence.role == EvidenceRole.FINDING)
        .order_by(Evidence.id)
    )
    for case, evidence in rows:
        extra = evidence.extra or {}
        stored = parse_boxes(evidence.boxes, f"evidence {evidence.id}").boxes
        occupancy = extra.get("source") == OCCUPANCY or any(b.class_name == OCCUPANCY for b in stored)
        review = str(case.ai_review)
        if review == AiReview.CONFIRMED and not occupancy:
            continue  # the model was right: little to learn
        meta = {"case": case.number, "event": case.event, "review": review}
        boxes = labels_of(stored, taxonomy)
        if review == AiReview.CORRECTED:  # same boxes, the class a person chose
            corrected = class_of_event(case.event, taxonomy)
            boxes = tuple(replace(b, name=corrected) for b in boxes) if corrected else ()
        if occupancy:
            region = next((b.xyxy for b in stored if b.class_name == OCCUPANCY), None)
            meta["region"] = ", ".join(f"{v:.0f}" for v in region) if region else ""
            proposed = class_of_event(case.event, taxonomy)  # stall, goods, materials ...: to confirm
            if region and proposed:
                x1, y1, x2, y2 = (float(v) for v in region)
                boxes = (*boxes, Label(proposed, (x1, y1, x2, y2), 1.0))
            if evidence.crop_path:
                meta["crop_path"] = str(resolve_path(evidence.crop_path, base))
            reason, priority = OCCUPANCY, PRIORITY[OCCUPANCY]
        else:
            reason, priority = review, PRIORITY[review]
        path = resolve_path(evidence.path, base)
        yield Candidate(path, reason, priority, boxes, evidence.model_version, meta, evidence.phash)


def from_camera_frames(session: Session, taxonomy: Taxonomy, base: Path) -> Iterator[Candidate]:
    """Camera cases whose evidence frames disagree; the frame least like the others is queued."""

    cases = session.scalars(select(Case).where(Case.camera_id.is_not(None)).order_by(Case.id))
    for case in cases:
        frames = [
            (e, labels_of(parse_boxes(e.boxes, f"evidence {e.id}").boxes, taxonomy))
            for e in case.evidence
            if e.role == EvidenceRole.FINDING
        ]
        seen = [(boxes[0].name, boxes[0].confidence or 0.0) for _, boxes in frames if boxes]
        score = disagreement(seen)
        if score <= 0:
            continue
        common = Counter(name for name, _ in seen).most_common(1)[0][0]
        evidence, boxes = min(
            ((e, b) for e, b in frames if b),
            key=lambda item: (item[1][0].name == common, item[1][0].confidence or 0),
        )
        meta = {"case": case.number, "event": case.event, "frames": len(seen), "camera": case.camera_id}
        yield Candidate(
            resolve_path(evidence.path, base),
            "disagreement",
            PRIORITY["disagreement"] * (1 + score),
            boxes,
            evidence.model_version,
            meta,
        )


def from_photos(session: Session, taxonomy: Taxonomy, base: Path) -> Iterator[Candidate]:
    """Scanned and uploaded photos with boxes scored near their class's threshold."""

    for photo in session.scalars(select(Photo).where(Photo.detections.is_not(None)).order_by(Photo.id)):
        boxes = labels_of(parse_boxes(photo.detections, f"photo {photo.id}").boxes, taxonomy)
        score = uncertainty(boxes, taxonomy)
        if score > 0:
            meta = {"photo": photo.id, "uncertainty": round(score, 3)}
            yield Candidate(
                resolve_path(photo.path, base),
                "uncertain",
                PRIORITY["uncertain"] * score,
                boxes,
                photo.model_version,
                meta,
                photo.phash,
            )


def build_queue(
    sessions: sessionmaker[Session],
    out: Path,
    *,
    limit: int,
    base: Path,
    document_root: Path,
    skip: KnownImages,
    taxonomy: Taxonomy,
    left_out: dict[str, str] | None = None,
) -> list[QueuedImage]:
    """The queue written to `out`; the images `skip` knows are noted in `left_out` (sha256 -> why)."""
    with sessions() as session:
        candidates = [
            *from_cases(session, taxonomy, base),
            *from_camera_frames(session, taxonomy, base),
            *from_photos(session, taxonomy, base),
        ]
    return write_queue(select_queue(candidates, limit, skip, left_out), out, document_root, taxonomy)
