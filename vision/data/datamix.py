"""Training mixes: several partially labelled datasets mapped onto the one taxonomy.

Each source labels only its own classes (garbage-cn never labels the cars in its street scenes).
A mix therefore records, per source, which taxonomy classes it labels; training masks the class
loss of all other classes on that source's images instead of teaching them as background.

A built mix is a folder of symlinked images and remapped YOLO labels:
    <out>/images/<source>/<split>/<file>   -> the original image
    <out>/labels/<source>/<split>/<stem>.txt  (taxonomy class ids)
    <out>/images/<source>/train/<stem>.repeatN<suffix>  extra links of an oversampled image
    <out>/data.yaml       ultralytics data file, names = taxonomy classes
    <out>/sources.json    {source: {"labelled": [class ids], "images": {split: n}, "sha256": {split: ..},
                             "labels_sha256": {split: ..}, "licence": the data.yaml's source comment,
                             "unmasked": {"<split>/<file>": [class ids]}, "reviewed": {split: counts}}}

A source may carry `reviews:` (datasets/reviews/<source>.jsonl, vision.data.reviews): on each photo
where people confirmed a class absent or labelled it with `real` boxes, that class is labelled too:
its boxes are added to the photo's label file (YOLO lines, written here, at the edge), and
`unmasked` lists the classes the photo labels beyond its source's, for the training loss.

`sha256` is over the image file names, `labels_sha256` over the names and their label files as the
source has them: a regenerated set (synthetic flyers drawn with other fonts) keeps the first and
changes the second, so two cards show whether their scores were measured on the same boxes.

Kept to PyYAML and the standard library (runs on a bare GPU host).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vision.core.files import file_sha256
from vision.core.taxonomy import Taxonomy, TaxonomyError
from vision.core.yamlfile import read_yaml
from vision.data.annotations.coords import to_yolo
from vision.data.reviews import PhotoReview, ReviewError, photo_counts, read_reviews, resolve

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
SPLITS = ("train", "val")


@dataclass(frozen=True)
class Source:
    name: str
    data_yaml: Path
    class_map: dict[int, int]  # dataset class id -> taxonomy class id
    unknown: tuple[str, ...]  # dataset classes that are not in the taxonomy (dropped)
    train_fraction: float = 1.0  # share of the train split kept (val always whole, for honest scores)
    # taxonomy id -> times each train photo holding it is listed
    oversample: dict[int, int] = field(default_factory=dict)
    reviews: Path | None = None  # decisions on boxes of classes it does not label (vision.data.reviews)
    # taxonomy id -> times each train photo where its reviews confirm that class absent is listed
    oversample_absent: dict[int, int] = field(default_factory=dict)

    @property
    def labelled(self) -> list[int]:
        return sorted(set(self.class_map.values()))

    def oversample_by_name(self, names: list[str], absent: bool = False) -> dict[str, int]:
        """`oversample` (or `oversample_absent`) as a mix file and sources.json write it:
        {class name: times}."""
        times = self.oversample_absent if absent else self.oversample
        return {names[index]: count for index, count in times.items()}

    def spec(self, names: list[str], data: str, reviews: str | None = None) -> dict[str, Any]:
        """This source as a mix file's entry, reading `data` (and `reviews`) from other places: how
        the retraining job and the GPU relay pass a source on with its sampling and reviews."""
        entry: dict[str, Any] = {
            "name": self.name,
            "data": data,
            "train_fraction": self.train_fraction,
            "oversample": self.oversample_by_name(names),
        }
        if reviews or self.reviews:
            entry["reviews"] = reviews or str(self.reviews)
        if self.oversample_absent:
            entry["oversample_absent"] = self.oversample_by_name(names, absent=True)
        return entry


def read_data_yaml(path: Path) -> dict[str, Any]:
    """Read an ultralytics data.yaml; its split folders resolve against the yaml's folder."""
    data = read_yaml(path, TaxonomyError)
    if not isinstance(data, dict) or not isinstance(data.get("names"), list | dict) or not data["names"]:
        raise TaxonomyError(f"{path}: a data file needs 'names', a list or a mapping of class names")
    return data


def class_names(data: dict[str, Any]) -> list[str]:
    """A data.yaml's class names in id order (`names` is a list or an {id: name} mapping)."""
    names = data["names"]
    return [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)


def licence_credits(data_yaml: Path) -> str:
    """The comment block of a data.yaml that starts at `# Source:`: who made the data, under which licence."""
    block: list[str] = []
    for line in data_yaml.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if block and not text.startswith("#"):
            break
        if block or text.lstrip("# ").lower().startswith("source:"):
            block.append(text.lstrip("# ").strip())
    return " ".join(block)


def split_dirs(data_yaml: Path, data: dict[str, Any], split: str) -> list[Path]:
    """Image folders of one split of a data.yaml (`path:` honoured, else the yaml's folder)."""
    entry = data.get(split)
    if entry is None:
        return []
    data_yaml = data_yaml.resolve()  # a relative yaml path would otherwise be joined twice
    root = Path(data.get("path") or data_yaml.parent)
    if not root.is_absolute():
        root = (data_yaml.parent / root).resolve()
    return [(root / e).resolve() for e in (entry if isinstance(entry, list) else [entry])]


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def labels_sha256(images: list[Path]) -> str:
    """sha256 over each image's file name and its YOLO label text: which boxes a score is on."""
    digest = hashlib.sha256()
    for image in images:
        label = label_path(image)
        text = label.read_text(encoding="utf-8") if label.exists() else ""
        digest.update(f"{image.name}\n{text}\n".encode())
    return digest.hexdigest()


def label_path(image: Path) -> Path:
    """The YOLO label file of an image: the last `/images/` in its path read as `/labels/`."""
    parts = list(image.parts)
    index = len(parts) - 1 - parts[::-1].index("images")
    parts[index] = "labels"
    return Path(*parts).with_suffix(".txt")


def keeps(image: Path, fraction: float) -> bool:
    """Whether a train image stays in a subsampled source: decided by a hash of its file name, so
    the same images stay on every machine and a larger fraction keeps a superset."""
    if fraction >= 1.0:
        return True
    bucket = int.from_bytes(hashlib.sha256(image.name.encode()).digest()[:8], "big") / 2**64
    return bucket < fraction


def read_oversample(
    entry: dict[str, Any], labelled: set[int], taxonomy: Taxonomy, where: str, key: str = "oversample"
) -> dict[int, int]:
    """A source's `oversample` ({class name: times}) as taxonomy ids: only classes it labels. Its
    `oversample_absent` (key): only classes it does not label, whose absence its reviews confirm."""
    spec = entry.get(key) or {}
    if not isinstance(spec, dict):
        raise TaxonomyError(f"{where}.{key} must map class names to times, got {spec!r}")
    if spec and key == "oversample_absent" and not entry.get("reviews"):
        raise TaxonomyError(f"{where}.{key} needs 'reviews': they say where a class is confirmed absent")
    times: dict[int, int] = {}
    for name, count in spec.items():
        cls = taxonomy.resolve(str(name))
        if cls is None or (cls.index in labelled) != (key == "oversample"):
            kind = "labels" if key == "oversample" else "leaves unlabelled"
            raise TaxonomyError(f"{where}.{key}: {name!r} is not a class this source {kind}")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10:
            raise TaxonomyError(f"{where}.{key}.{name} must be a whole number from 1 to 10, got {count!r}")
        times[cls.index] = count
    return times


def load_mix(mix_yaml: Path | str, taxonomy: Taxonomy) -> tuple[str, list[Source]]:
    """Read a mix file: `name` and `sources` (each `name` and `data`, relative to the mix file, an
    optional `train_fraction` in (0, 1] that spends less training time on a large source, an
    optional `oversample` {class: times} that lists train images holding a rare class more often,
    and optional `reviews`, a review file relative to the mix file)."""
    mix_yaml = Path(mix_yaml)
    spec = read_yaml(mix_yaml, TaxonomyError)
    if not isinstance(spec, dict) or not isinstance(spec.get("sources"), list) or not spec["sources"]:
        raise TaxonomyError(f"{mix_yaml}: a mix file needs 'sources', a list of datasets")
    sources = []
    for index, entry in enumerate(spec["sources"]):
        if not isinstance(entry, dict) or "name" not in entry or "data" not in entry:
            raise TaxonomyError(f"{mix_yaml}: sources[{index}] needs 'name' and 'data'")
        data_yaml = (mix_yaml.parent / os.path.expandvars(entry["data"])).resolve()
        names = read_data_yaml(data_yaml)["names"]
        class_map, unknown = taxonomy.map_names(names)
        fraction = entry.get("train_fraction", 1.0)
        if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise TaxonomyError(
                f"{mix_yaml}: sources[{index}].train_fraction must be in (0, 1], got {fraction!r}"
            )
        where = f"{mix_yaml}: sources[{index}]"
        oversample = read_oversample(entry, set(class_map.values()), taxonomy, where)
        oversample_absent = read_oversample(
            entry, set(class_map.values()), taxonomy, where, key="oversample_absent"
        )
        reviews = (
            (mix_yaml.parent / os.path.expandvars(entry["reviews"])).resolve()
            if entry.get("reviews")
            else None
        )
        if reviews is not None and not reviews.is_file():
            raise TaxonomyError(f"{where}.reviews: no such file {reviews}")
        sources.append(
            Source(
                entry["name"],
                data_yaml,
                class_map,
                tuple(unknown),
                float(fraction),
                oversample,
                reviews,
                oversample_absent,
            )
        )
    if not sources:
        raise TaxonomyError(f"{mix_yaml}: no sources")
    return str(spec.get("name") or mix_yaml.stem), sources


def remap_label_text(text: str, class_map: dict[int, int]) -> str:
    """Rewrite YOLO label lines into taxonomy ids, dropping classes outside the taxonomy."""
    lines = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        mapped = class_map.get(int(float(fields[0])))
        if mapped is not None:
            lines.append(" ".join([str(mapped), *fields[1:5]]))
    return "\n".join(lines) + ("\n" if lines else "")


def write_repeats(
    link: Path, image: Path, label_text: str, source: Source, unmasked: list[int]
) -> list[Path]:
    """Extra links `<stem>.repeatN<suffix>` (with the same labels) for a train image that holds an
    oversampled class, or where its review confirms absent a class of `oversample_absent`, up to the
    largest count among them; returns them."""
    classes = {int(line.split()[0]) for line in label_text.splitlines()}
    absent = set(unmasked) - classes  # unmasked without a pseudo-label: confirmed absent
    times = max(
        [source.oversample.get(c, 1) for c in classes] + [source.oversample_absent.get(c, 1) for c in absent],
        default=1,
    )
    copies = [link.with_name(f"{link.stem}.repeat{n}{link.suffix}") for n in range(1, times)]
    for copy in copies:
        copy.symlink_to(image)
        label_path(copy).write_text(label_text, encoding="utf-8")
    return copies


def source_reviews(source: Source, taxonomy: Taxonomy) -> dict[str, PhotoReview]:
    """The photos a source's review file settles, by file name (none without a file)."""
    if source.reviews is None:
        return {}
    try:
        return resolve(read_reviews(source.reviews, taxonomy))
    except ReviewError as err:
        raise TaxonomyError(str(err)) from err


def apply_review(review: PhotoReview, labelled: set[int], taxonomy: Taxonomy) -> tuple[list[int], list[str]]:
    """The classes a review adds to a photo beyond its source's, and the label lines of its boxes."""
    names = taxonomy.names
    added = sorted({names.index(cls) for cls in review.labelled} - labelled)
    lines = [
        f"{names.index(cls)} {to_yolo(xyxy, review.width, review.height)}"
        for cls, xyxy in review.boxes
        if names.index(cls) in added
    ]
    return added, lines


def build_mix(mix_yaml: Path | str, out: Path | str, taxonomy: Taxonomy, verify_photos: bool = True) -> Path:
    """Write the mix folder (idempotent) and return its data.yaml.

    A review applies to a photo only while the photo's sha256 is the one decided on (a changed
    photo keeps its class masked, counted as `reviews_stale`); `verify_photos=False` skips that
    check for re-encoded copies whose originals were checked where they were packed (GPU relay).
    """
    name, sources = load_mix(mix_yaml, taxonomy)
    out = Path(out)
    summary: dict[str, Any] = {}
    split_entries: dict[str, list[str]] = {s: [] for s in SPLITS}
    for source in sources:
        data = read_data_yaml(source.data_yaml)
        reviews = source_reviews(source, taxonomy)
        applied: list[PhotoReview] = []
        info: dict[str, Any] = {
            "data": str(source.data_yaml),
            "labelled": source.labelled,
            "labelled_names": [taxonomy.names[i] for i in source.labelled],
            "ignored_classes": list(source.unknown),
            "licence": licence_credits(source.data_yaml),
            "train_fraction": source.train_fraction,
            "oversample": source.oversample_by_name(taxonomy.names),
            "oversample_absent": source.oversample_by_name(taxonomy.names, absent=True),
            "repeats": 0,  # extra train links (`oversample`, `oversample_absent`); `images` counts each once
            "images": {},
            "sha256": {},
            "labels_sha256": {},
        }
        if source.reviews is not None:
            info |= {"reviews": str(source.reviews), "reviews_sha256": file_sha256(source.reviews)}
            info |= {"reviews_stale": 0, "unmasked": {}}
        for split in SPLITS:
            files = [f for d in split_dirs(source.data_yaml, data, split) for f in image_files(d)]
            if split == "train":
                files = [f for f in files if keeps(f, source.train_fraction)]
            rel = Path("images") / source.name / split
            for folder in (out / rel, out / "labels" / source.name / split):
                shutil.rmtree(folder, ignore_errors=True)  # a rebuilt mix keeps no image it no longer selects
            if not files:
                continue
            digest = hashlib.sha256()
            for image in files:
                link = out / rel / image.name
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.is_symlink():
                    link.symlink_to(image)
                original = label_path(image)
                text = original.read_text(encoding="utf-8") if original.exists() else ""
                remapped = remap_label_text(text, source.class_map)
                added: list[int] = []
                review = reviews.get(image.name)
                if review is not None and verify_photos and file_sha256(image) != review.sha256:
                    info["reviews_stale"] += 1
                elif review is not None:
                    added, lines = apply_review(review, set(source.labelled), taxonomy)
                    remapped += "".join(line + "\n" for line in lines)
                    applied.append(review)
                target = label_path(link)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(remapped, encoding="utf-8")
                digest.update(f"{image.name}\n".encode())
                links = [link]
                if split == "train":
                    links += write_repeats(link, image, remapped, source, added)
                    info["repeats"] += len(links) - 1
                if added:
                    info["unmasked"].update({f"{split}/{copy.name}": added for copy in links})
            split_entries[split].append(str(rel))
            info["images"][split] = len(files)
            info["sha256"][split] = digest.hexdigest()
            info["labels_sha256"][split] = labels_sha256(files)
        if source.reviews is not None:
            info["reviewed"] = photo_counts(applied)
        summary[source.name] = info
    data_yaml = out / "data.yaml"
    data_yaml.write_text(
        yaml.safe_dump(
            {
                "path": str(out.resolve()),
                **{split: entries for split, entries in split_entries.items() if entries},
                "names": dict(enumerate(taxonomy.names)),
                "mix": name,
            },
            allow_unicode=True,
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    (out / "sources.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    return data_yaml


def source_of(image_path: str | Path) -> str:
    """The source name of a mix image: the folder right under `images/`."""
    parts = Path(image_path).parts
    return parts[len(parts) - 1 - parts[::-1].index("images") + 1]


def photo_key(image_path: str | Path) -> str:
    """`<source>/<split>/<file>` of a mix image: how sources.json's `unmasked` finds it."""
    parts = Path(image_path).parts
    return "/".join(parts[len(parts) - parts[::-1].index("images") :])


def read_sources(mix_dir: Path) -> dict[str, Any]:
    path = mix_dir / "sources.json"
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else {}


def labelled_classes(mix_dir: Path) -> dict[str, list[int]]:
    """Per source, the taxonomy classes it labels (from sources.json); empty if not a mix."""
    return {name: info["labelled"] for name, info in read_sources(mix_dir).items()}


def photo_classes(mix_dir: Path) -> dict[str, list[int]]:
    """Per reviewed photo (`photo_key`), every class it labels: its source's and those reviews add."""
    return {
        f"{name}/{key}": sorted({*info["labelled"], *added})
        for name, info in read_sources(mix_dir).items()
        for key, added in (info.get("unmasked") or {}).items()
    }
