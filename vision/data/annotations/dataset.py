"""A versioned dataset `datasets/<name>/manifest.json`: one entry per image keyed by its sha256,
with pixel boxes and the classes its annotators labelled (partial labels stay partial in
training). Images are not copied into the repository: the manifest records where they are."""

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
from vision.core.taxonomy import Taxonomy
from vision.data.annotations.coords import to_yolo
from vision.data.annotations.readers import load_json
from vision.data.annotations.records import AnnotationError, Problem, Sample
from vision.data.datamix import SPLITS

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "streetorder-dataset/1"
VAL_SHARE = 10  # one image in VAL_SHARE goes to val, chosen by its sha256: stable across versions


def split_of(sha256: str) -> str:
    return "val" if int(sha256[:8], 16) % VAL_SHARE == 0 else "train"


@dataclass
class Dataset:
    """A versioned set of labelled images: `datasets/<name>/manifest.json`.

    Every import is a new version; an image is keyed by its sha256, so a corrected annotation of
    the same photo replaces the older one. `verify` checks that every file still has its hash.
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
        return cls(folder, str(data["name"]), int(data["version"]), images, list(data.get("versions", [])))

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST

    def add(self, samples: Iterable[Sample], source: dict[str, Any], at: datetime) -> dict[str, int]:
        """Add or replace images as a new version; unchanged images keep their version."""
        counts = {"added": 0, "updated": 0, "unchanged": 0}
        version = self.version + 1
        for sample in samples:
            entry = {
                "sha256": sample.sha256,
                "file": self._stored_path(sample.path),
                "width": sample.width,
                "height": sample.height,
                "split": split_of(sample.sha256),
                "labelled": list(sample.labelled),
                "labels": [label.to_json() for label in sample.labels],
                "origin": sample.origin,
            }
            previous = self.images.get(sample.sha256)
            if previous is not None and {k: v for k, v in previous.items() if k != "version"} == entry:
                counts["unchanged"] += 1
                continue
            counts["updated" if previous else "added"] += 1
            self.images[sample.sha256] = {**entry, "version": version}
        if counts["added"] or counts["updated"]:
            self.version = version
            self.versions.append({"version": version, "at": at.isoformat(), **source, **counts})
        return counts

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
                    / entry["split"]
                    / f"{entry['sha256']}{Path(entry['file']).suffix.lower()}"
                )
                image.parent.mkdir(parents=True, exist_ok=True)
                image.symlink_to(self.file(entry))
                label = root / "labels" / entry["split"] / f"{entry['sha256']}.txt"
                label.parent.mkdir(parents=True, exist_ok=True)
                lines = [
                    f"{names.index(n)} {to_yolo(xyxy, entry['width'], entry['height'])}"
                    for n, *xyxy in entry["labels"]
                ]
                label.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
            splits = {s: f"images/{s}" for s in SPLITS if (root / "images" / s).is_dir()}
            if "val" not in splits:  # ultralytics needs a val split; a tiny set validates on train
                splits["val"] = "images/train"
            data_yaml = root / "data.yaml"
            header = (
                f"# Source: dataset {self.name} v{self.version} ({self.path}), the bureau's annotations.\n"
            )
            data_yaml.write_text(
                header + yaml.safe_dump({**splits, "names": names}, allow_unicode=True), encoding="utf-8"
            )
            built.append((name, data_yaml))
        return built
