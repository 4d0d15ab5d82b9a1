"""A versioned dataset `datasets/<name>/manifest.json`: one entry per image keyed by its sha256,
with pixel boxes, the classes its annotators labelled (partial labels stay partial in training),
its look (perceptual hash) and its split. Images are not copied into the repository: the manifest
records where they are."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from vision.core.files import file_sha256
from vision.core.imageio import ImageError
from vision.core.phash import LookIndex
from vision.core.taxonomy import Taxonomy
from vision.data.annotations.coords import to_yolo
from vision.data.annotations.readers import load_json
from vision.data.annotations.records import AnnotationError, Problem, Sample
from vision.data.annotations.validate import size_and_look
from vision.data.datamix import SPLITS

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "streetorder-dataset/1"
VAL_SHARE = 10  # one image in VAL_SHARE goes to val, chosen by its sha256 (unless a near-copy's)


def split_of(sha256: str) -> str:
    """The split an image gets by its bytes alone: one image in `VAL_SHARE` goes to val."""
    return "val" if int(sha256[:8], 16) % VAL_SHARE == 0 else "train"


@dataclass
class Dataset:
    """A versioned set of labelled images: `datasets/<name>/manifest.json`.

    Every import is a new version; an image is keyed by its sha256, so a corrected annotation of
    the same photo replaces the older one. `verify` checks that every file still has its hash.

    Splits: each entry stores its split, which never changes once given (`add`). A manifest
    written before looks were stored has no `phash`: it is read from the file when an import
    needs it, once. One written before splits were stored gets `split_of` of each image, the
    split it was given then.
    """

    folder: Path
    name: str
    version: int = 0
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def open(cls, name: str, datasets_dir: Path) -> Dataset:
        """`datasets_dir/<name>`: the data_dir setting's folder, or one given for a test or a job."""
        folder = datasets_dir / name
        path = folder / MANIFEST
        if not path.exists():
            return cls(folder, name)
        data = load_json(path)
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise AnnotationError(f"{path}", f"not a {MANIFEST_FORMAT} manifest")
        images = {entry["sha256"]: entry for entry in data.get("images", [])}
        for sha, entry in images.items():
            entry.setdefault("split", split_of(sha))
        return cls(folder, str(data["name"]), int(data["version"]), images, list(data.get("versions", [])))

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST

    def add(self, samples: Iterable[Sample], source: dict[str, Any], at: datetime) -> dict[str, int]:
        """Add or replace images as a new version; unchanged images keep their version.

        The split of a new image: that of the image already in the dataset (or earlier in this
        batch) that is a near-copy of it (`near_identical` looks: a frame of a fixed camera, the
        same photo saved again at another quality or size, or turned by its EXIF), the nearest
        when there are several; else `split_of` its sha256. Near-copies on both sides would make
        val measure photos the model learnt by heart. A replaced image keeps its split.

        Frames of one camera close in time are not grouped beyond their looks: a `Sample` records
        neither a camera nor a capture time (an export gives a file and its boxes), so there is no
        such group to keep together.
        """
        counts = {"added": 0, "updated": 0, "unchanged": 0}
        version = self.version + 1
        looks: LookIndex | None = None  # built when the first new image needs a split
        for sample in samples:
            previous = self.images.get(sample.sha256)
            if previous is not None:
                split = self.split(sample.sha256)
            else:
                looks = looks if looks is not None else self.looks()
                split = self._split_by_look(sample, looks)
            entry = {
                "sha256": sample.sha256,
                "file": self._stored_path(sample.path),
                "width": sample.width,
                "height": sample.height,
                "split": split,
                "labelled": list(sample.labelled),
                "labels": [label.to_json() for label in sample.labels],
                "origin": sample.origin,
            }
            phash = sample.phash or (previous or {}).get("phash")
            if phash:
                entry["phash"] = phash
                if looks is not None and previous is None:
                    looks.add(sample.sha256, phash)
            # where it came from is no change: Label Studio's every export holds every task again
            kept = _without(previous or {}, "version", "phash", "origin")
            if previous is not None and kept == _without(entry, "phash", "origin"):
                if phash and "phash" not in previous:  # the same bytes: the same look, no new version
                    previous["phash"] = phash
                counts["unchanged"] += 1
                continue
            counts["updated" if previous else "added"] += 1
            self.images[sample.sha256] = {**entry, "version": version}
        if counts["added"] or counts["updated"]:
            self.version = version
            self.versions.append({"version": version, "at": at.isoformat(), **source, **counts})
        return counts

    def looks(self) -> LookIndex:
        """The looks of the dataset's images; an entry of an older manifest without its look gets it
        from its file (a missing or unreadable file has none: `verify` names it)."""
        looks = LookIndex()
        for sha, entry in tqdm(
            sorted(self.images.items()),
            desc=f"looks of {self.name}",
            file=sys.stderr,
            disable=sum("phash" not in e for e in self.images.values()) < 200,
        ):
            if "phash" not in entry:
                try:
                    entry["phash"] = size_and_look(self.file(entry))[2]
                except (AnnotationError, ImageError):
                    continue
            looks.add(sha, str(entry["phash"]))
        return looks

    def _split_by_look(self, sample: Sample, looks: LookIndex) -> str:
        """A near-copy's split (the nearest, then the lowest sha256), else the split by sha256."""
        near = looks.near(sample.phash) if sample.phash else []
        return self.split(near[0][1]) if near else split_of(sample.sha256)

    def split(self, sha256: str) -> str:
        """The image's stored split (an entry written before splits were stored: `split_of`)."""
        return str(self.images[sha256].get("split") or split_of(sha256))

    def _stored_path(self, path: Path) -> str:
        """Inside the repository: relative to the manifest; elsewhere: absolute."""
        try:
            return (
                os.path.relpath(path, self.folder)
                if path.is_relative_to(self.folder.parent.parent)
                else str(path)
            )
        except ValueError:
            return str(path)

    def file(self, entry: dict[str, Any]) -> Path:
        return (self.folder / entry["file"]).resolve()

    def save(self) -> Path:
        """Write the manifest atomically, one image per line (diffs stay readable)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        head = {
            "format": MANIFEST_FORMAT,
            "name": self.name,
            "version": self.version,
            "versions": self.versions,
        }
        lines = [json.dumps(e, ensure_ascii=False, sort_keys=True) for _, e in sorted(self.images.items())]
        text = (
            json.dumps(head, ensure_ascii=False, indent=1)[:-2]
            + ',\n "images": [\n  '
            + ",\n  ".join(lines)
            + "\n ]\n}\n"
        )
        temporary = self.path.with_suffix(".json.part")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(self.path)
        return self.path

    def verify(self) -> list[Problem]:
        problems = []
        for sha, entry in tqdm(
            sorted(self.images.items()),
            desc=f"verify {self.name}",
            file=sys.stderr,
            disable=len(self.images) < 200,
        ):
            path = self.file(entry)
            if not path.is_file():
                problems.append(Problem(str(self.path), f"image {sha[:12]}: {path} is missing"))
            elif file_sha256(path) != sha:
                problems.append(
                    Problem(str(self.path), f"image {sha[:12]}: {path} has changed (sha256 differs)")
                )
        return problems

    def build(self, out: Path, taxonomy: Taxonomy) -> list[tuple[str, Path]]:
        """Ultralytics data sets of this version, one per set of labelled classes (a mix source each).

        Each data.yaml names only the classes its images' annotators labelled, so training masks
        the others (vision/data/datamix.py) instead of teaching them as background.
        """
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for entry in self.images.values():
            groups.setdefault(tuple(entry["labelled"]), []).append(entry)
        built = []
        for index, (labelled, entries) in enumerate(sorted(groups.items())):
            name = self.name if len(groups) == 1 else f"{self.name}-{index + 1}"
            root = out / name
            shutil.rmtree(root, ignore_errors=True)
            names = [n for n in taxonomy.names if n in labelled]
            for entry in entries:
                image = (
                    root
                    / "images"
                    / self.split(entry["sha256"])
                    / f"{entry['sha256']}{Path(entry['file']).suffix.lower()}"
                )
                image.parent.mkdir(parents=True, exist_ok=True)
                image.symlink_to(self.file(entry))
                label = root / "labels" / self.split(entry["sha256"]) / f"{entry['sha256']}.txt"
                label.parent.mkdir(parents=True, exist_ok=True)
                lines = [
                    f"{names.index(n)} {to_yolo(xyxy, entry['width'], entry['height'])}"
                    for n, *xyxy in entry["labels"]
                ]
                label.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
            # no val images, no `val`: training refuses such a set rather than validate on train photos
            splits = {s: f"images/{s}" for s in SPLITS if (root / "images" / s).is_dir()}
            data_yaml = root / "data.yaml"
            header = (
                f"# Source: dataset {self.name} v{self.version} ({self.path}), the bureau's annotations.\n"
            )
            data_yaml.write_text(
                header + yaml.safe_dump({**splits, "names": names}, allow_unicode=True), encoding="utf-8"
            )
            built.append((name, data_yaml))
        return built


def _without(entry: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in keys}
