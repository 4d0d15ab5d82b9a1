"""Verified closing (问题台账销号): the after-photo of a handling is checked before it can close a case.

An after-photo passes when all four hold; the verdict is stored with the photo (`extra.after_check`)
and shown to whoever handles or checks the case:

- new image: neither the same bytes (sha256) nor a near-identical image (perceptual hash within
  `NEAR_IDENTICAL_BITS`) of any earlier photo of the case: the before-photo sent again closes nothing;
- taken after filing: its capture time (EXIF or given; never the upload time) is after the case's
  `file` step;
- at the place: its EXIF GPS within `radius_m` of the case, or a frame of the case's own camera;
- gone: the detector finds no box of a class of the case's event on it (for the case's own camera,
  none over the place where the finding's boxes were), and for a flyer case the flyer reader reads
  none of the flyer's phone numbers (`flyer_check`). Without a loaded model this is undecided: fails.

A failed check blocks `handle` and `check_pass` unless a person overrides it with a reason, which
the flow log keeps (serve/api/routers/cases.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

import supervision as sv

from serve.cases.enums import Action, EvidenceRole
from serve.cases.grids import haversine_m
from serve.cases.orm import Case, Evidence
from serve.cases.times import local_iso
from vision.core.boxes import Box, boxes_of, parse_boxes
from vision.core.imageio import Position
from vision.core.phash import hash_distance, near_identical
from vision.core.taxonomy import Taxonomy

AFTER_CHECK = "after_check"  # the key of the verdict in Evidence.extra
OVERRIDDEN = "after-photo check overridden"  # how a flow-log note marks a person's override


@dataclass(frozen=True)
class AfterPhoto:
    """What is known of an after-photo when it arrives."""

    sha256: str
    phash: str | None
    taken_at: datetime | None  # EXIF or given; None when only the upload time is known
    position: Position | None  # EXIF GPS
    camera_id: str | None  # the camera whose frame it is
    found: list[Box] | None  # detections of the case's event classes on it; None: no model loaded
    flyer_check: dict[str, Any] | None = None


def event_boxes(detections: sv.Detections, event: str, taxonomy: Taxonomy) -> list[Box]:
    """Boxes of the classes that become `event`, each at or above its class's confidence."""
    classes = {c.name: c for c in taxonomy.classes}
    return [
        box
        for box in boxes_of(detections, taxonomy.names)
        if classes[box.class_name].event == event and box.confidence >= classes[box.class_name].min_confidence
    ]


def filed_at(case: Case) -> datetime | None:
    """When the case was filed (立案): its latest `file` step."""
    return max((entry.at for entry in case.flow if entry.action == Action.FILE), default=None)


def _overlaps(box: Box, spots: Iterable[Box]) -> bool:
    x1, y1, x2, y2 = box.xyxy
    return any(
        min(x2, s.xyxy[2]) > max(x1, s.xyxy[0]) and min(y2, s.xyxy[3]) > max(y1, s.xyxy[1]) for s in spots
    )


def check_after_photo(case: Case, photo: AfterPhoto, radius_m: float, local_tz: tzinfo) -> dict[str, Any]:
    """The verdict of `photo` as the after-photo of `case` (see the module docstring); its times
    on the bureau's clock `local_tz`, as the API gives every time."""
    earlier = [e for e in case.evidence if e.role != EvidenceRole.AFTER]
    same = next((e for e in earlier if e.sha256 == photo.sha256), None)
    if same is None and photo.phash is not None:
        same = next((e for e in earlier if e.phash and near_identical(photo.phash, e.phash)), None)
    new_image = {
        "ok": same is None,
        "same_as_evidence": same.id if same else None,
        "bits": hash_distance(photo.phash, same.phash) if same and same.phash and photo.phash else None,
    }

    filed = filed_at(case)
    after_filing = {
        "ok": photo.taken_at is not None and filed is not None and photo.taken_at > filed,
        "taken_at": local_iso(photo.taken_at, local_tz) if photo.taken_at else None,
        "filed_at": local_iso(filed, local_tz) if filed else None,
    }

    own_camera = case.camera_id is not None and photo.camera_id == case.camera_id
    distance = (
        haversine_m(photo.position.lat, photo.position.lon, case.lat, case.lon) if photo.position else None
    )
    at_place = {
        "ok": own_camera or (distance is not None and distance <= radius_m),
        "distance_m": round(distance, 1) if distance is not None else None,
        "radius_m": radius_m,
        "same_camera": own_camera,
    }

    if photo.found is None:
        gone: dict[str, Any] = {"ok": False, "reason": "no model loaded: the place was not looked at"}
    else:
        spots = (
            [b for e in earlier for b in parse_boxes(e.boxes, f"evidence {e.id}").boxes] if own_camera else []
        )
        still = [b for b in photo.found if not spots or _overlaps(b, spots)]
        gone = {"ok": not still, "still_found": [b.to_json() for b in still]}
    if photo.flyer_check is not None:
        gone["flyer_check"] = photo.flyer_check["verdict"]
        gone["ok"] = gone["ok"] and photo.flyer_check["verdict"] != "number_still_readable"

    checks: dict[str, dict[str, Any]] = {
        "new_image": new_image,
        "after_filing": after_filing,
        "at_place": at_place,
        "gone": gone,
    }
    failed = [name for name, check in checks.items() if not check["ok"]]
    return {"passed": not failed, "failed": failed, **checks}


def standing_after_photo(case: Case) -> Evidence | None:
    """The after-photo that supported the case's latest handling."""
    handles = [entry.at for entry in case.flow if entry.action == Action.HANDLE]
    if not handles:
        return None
    for evidence in reversed(case.evidence):  # the newest photo marked at that handling's time
        mark = (evidence.extra or {}).get("handled_at")
        if isinstance(mark, str) and datetime.fromisoformat(mark) == handles[-1]:
            return evidence
    return None


def failed_checks(evidence: Evidence | None) -> list[str]:
    """The checks an after-photo failed; none for a photo that passed (or predates the check)."""
    verdict = (evidence.extra or {}).get(AFTER_CHECK) if evidence is not None else None
    return [str(name) for name in verdict["failed"]] if isinstance(verdict, dict) else []


def override_note(note: str | None, failed: list[str], reason: str) -> str:
    """The note of a step a person took on an after-photo that failed: their note, then the override."""
    override = f"{OVERRIDDEN} ({', '.join(failed)} failed): {reason}"
    return f"{note}; {override}" if note else override


def own_remark(note: str | None) -> str | None:
    """A step's note without the override `override_note` added: the failed checks and the reason
    for accepting them are the bureau's record of its own work, not a remark for the public."""
    if not note or note.startswith(OVERRIDDEN):
        return None
    return note.split(f"; {OVERRIDDEN} (", 1)[0]
