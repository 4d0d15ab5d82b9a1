"""`streetorder evaluate --unlabelled DIR`: what a model finds on a bureau's own photos, before
anyone trusts its scans there.

A new city has photos but no labels. Every detection at the scan thresholds (each class's
min_confidence, configs/taxonomy.yaml) goes on a contact sheet, grouped by class, with the photo
it came from (vision.core.sheets), and is counted per class and per photo, so a person sees the
false findings a scan would file. Photos are decoded as the scan decodes them (EXIF orientation
applied); a file that cannot be read is listed with the reason and the look goes on.
"""

from __future__ import annotations

import html
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vision.core.detector import Detector
from vision.core.files import shown_path
from vision.core.imageio import PHOTO_SUFFIXES, ImageError, read_photo
from vision.core.sheets import SheetItem, table, write_contact_sheets
from vision.core.taxonomy import Taxonomy


@dataclass
class UnlabelledLook:
    model: str
    folder: Path
    photos: int = 0
    unreadable: dict[str, str] = field(default_factory=dict)  # photo (relative) -> why
    per_photo: dict[str, dict[str, int]] = field(default_factory=dict)  # photo -> class -> detections
    items: list[SheetItem] = field(default_factory=list)

    @property
    def per_class(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for classes in self.per_photo.values():
            counts.update(classes)
        return dict(sorted(counts.items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "folder": str(self.folder),
            "photos": self.photos,
            "detections": sum(self.per_class.values()),
            "per_class": self.per_class,
            "photos_with_detections": {
                name: sum(1 for classes in self.per_photo.values() if name in classes)
                for name in self.per_class
            },
            "per_photo": self.per_photo,
            "unreadable": self.unreadable,
        }


def photo_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)


def upright(path: Path) -> np.ndarray | None:
    """The photo as the detector saw it (EXIF orientation applied), for the sheets."""
    try:
        return read_photo(path).image
    except ImageError:
        return None


def look_over(
    detector: Detector, folder: Path, taxonomy: Taxonomy, limit: int | None = None
) -> UnlabelledLook:
    """Run the detector over every photo under `folder` (the first `limit` in name order: a first
    look at a large archive); keep what reaches each class's threshold."""
    floors = np.array([c.min_confidence for c in taxonomy.classes])
    look = UnlabelledLook(getattr(detector, "version", "unknown"), folder)
    for path in tqdm(
        photo_files(folder)[:limit], desc=f"look over {folder.name}", unit="photo", file=sys.stderr
    ):
        name = shown_path(path.relative_to(folder).as_posix())
        try:
            image = read_photo(path).image
        except ImageError as err:
            look.unreadable[name] = err.reason
            continue
        look.photos += 1
        detections = detector(image)
        classes = np.asarray(detections.class_id if detections.class_id is not None else [], dtype=int)
        scores = np.asarray(detections.confidence if detections.confidence is not None else [], dtype=float)
        kept = np.flatnonzero(scores >= floors[classes]) if len(classes) else np.empty(0, int)
        if len(kept) == 0:
            continue
        look.per_photo[name] = dict(sorted(Counter(taxonomy.names[classes[i]] for i in kept).items()))
        for i in kept[np.argsort(-scores[kept])]:
            x1, y1, x2, y2 = (float(v) for v in detections.xyxy[i])
            label, caption = str(len(look.items) + 1), f"{scores[i]:.2f} {name}"
            look.items.append(SheetItem(label, taxonomy.names[classes[i]], path, (x1, y1, x2, y2), caption))
    return look


def write_look(look: UnlabelledLook, out: Path, taxonomy: Taxonomy) -> Path:
    """index.html (counts, unreadable photos, sheets), sheets/*.png and summary.json in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    summary = look.to_json()
    (out / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
    photos = max(look.photos, 1)
    patrol = {c.name for c in taxonomy.classes if c.patrol and c.event}
    preamble = [
        f"<p>{html.escape(look.model)} on {look.photos} photos of {html.escape(str(look.folder))}: "
        f"{summary['detections']} detections at the scan thresholds. Each one of a class marked "
        "'files a case' becomes a case when a patrol photo is scanned; the others count in camera zones. "
        "Look at them before trusting scans of these streets.</p>",
        "<h2>Per class</h2>",
        table(
            ("class", "files a case", "detections", "per photo", "photos with it"),
            (
                (
                    name,
                    "yes" if name in patrol else "",
                    count,
                    f"{count / photos:.3f}",
                    summary["photos_with_detections"][name],
                )
                for name, count in look.per_class.items()
            ),
        ),
        "<h2>Per photo</h2>",
        table(
            ("photo", *look.per_class),
            (
                (name, *(classes.get(c, "") for c in look.per_class))
                for name, classes in look.per_photo.items()
            ),
        ),
    ]
    if look.unreadable:
        preamble += ["<h2>Unreadable photos</h2>", table(("photo", "why"), look.unreadable.items())]
    title = f"{look.model} on {look.folder.name}: what a scan would find"
    in_order = sorted(look.items, key=lambda item: taxonomy.names.index(item.group))  # patrol classes first
    index, _ = write_contact_sheets(in_order, out, title, "\n".join(preamble), load=upright)
    return index
