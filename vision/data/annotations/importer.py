"""`streetorder data import`: read, check and add an export to a dataset as one new version, or
add nothing when it has problems (unless asked to skip the invalid images)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vision.core.files import file_sha256, is_utf8_path, read_regular_file, shown_path
from vision.core.phash import KnownImages
from vision.core.taxonomy import Taxonomy
from vision.data.annotations.dataset import Dataset
from vision.data.annotations.images import ImageFinder
from vision.data.annotations.label_config import box_labels
from vision.data.annotations.readers import DEFAULT_LIMITS, Limits, read_export
from vision.data.annotations.records import AnnotationError, Problem, Sample
from vision.data.annotations.validate import validate


def import_export(
    path: Path,
    dataset: Dataset,
    finder: ImageFinder,
    *,
    format_name: str = "auto",
    negatives: bool = False,
    labelled: Sequence[str] | None = None,
    label_config_of: Callable[[str | None], str | None] | None = None,
    skip_invalid: bool = False,
    refused: KnownImages | None = None,
    limits: Limits = DEFAULT_LIMITS,
    at: datetime | None = None,
    taxonomy: Taxonomy,
) -> tuple[dict[str, Any], list[Problem]]:
    """Read, validate and add an export to a dataset as one new version.

    With problems and without `skip_invalid` nothing is added (the dataset is left as it was).
    `label_config_of(project)`: the labelling config of a Label Studio project (None: all projects)
    for the images whose export does not say which classes its annotators could label.
    `refused`: images that may not be added, by bytes or by look (the frozen holdout).
    `limits`: the most bytes of one file and items of one list read (a hostile export is refused
    by its size, never read whole).
    """
    with tempfile.TemporaryDirectory(prefix="streetorder-import-") as unpacked:
        try:
            export = read_export(path, format_name, Path(unpacked), limits)
        except AnnotationError as err:  # a broken classes.txt or data.yaml of an archive: named in it
            raise AnnotationError(err.where.replace(unpacked, str(path)), err.message) from None
        if labelled is None and label_config_of is not None:
            configs: dict[str | None, tuple[str, ...] | None] = {}
            for raw in export.samples:
                if raw.labelled is None:
                    if raw.project not in configs:
                        config = label_config_of(raw.project)
                        configs[raw.project] = box_labels(config) if config else None
                    raw.labelled = configs[raw.project]
        if path.suffix.lower() == ".zip":  # the images exist only in the archive: keep them
            finder.folders.insert(0, Path(unpacked))
        samples, problems = validate(
            export, finder, taxonomy, negatives=negatives, labelled=labelled, limits=limits
        )
        for sample in list(samples):
            if refused is not None and (why := refused.why(sample.sha256, sample.phash)) is not None:
                problems.append(Problem(sample.origin, why))
                samples.remove(sample)
        if path.suffix.lower() == ".zip":  # name files inside an archive as archive/member, never the
            # temporary folder it was unpacked to (gone when the problems are read), holdout refusals too
            problems = [
                Problem(p.where.replace(unpacked, str(path)), p.message.replace(unpacked, str(path)))
                for p in problems
            ]
        if problems and not skip_invalid:
            return {"added": 0, "updated": 0, "unchanged": 0, **export.skipped()}, problems
        if path.suffix.lower() == ".zip":
            samples = [_kept(s, finder, Path(unpacked), path) for s in samples]
        samples = [_named_in_utf8(s, finder) for s in samples]
        problems = [Problem(shown_path(p.where), shown_path(p.message)) for p in problems]
        source = {
            "source": shown_path(path.resolve()),
            "format": export.format,
            "sha256": file_sha256(path) if path.is_file() else None,
            "problems": [str(p) for p in problems],
        }
        counts = dataset.add(samples, source, at or datetime.now(UTC))
    dataset.save()
    return {**counts, **export.skipped()}, problems


def _kept(sample: Sample, finder: ImageFinder, unpacked: Path, archive: Path) -> Sample:
    if not sample.path.is_relative_to(unpacked.resolve()):
        return sample
    stored = finder.keep(sample.path.read_bytes(), sample.path.suffix)
    return replace(sample, path=stored, origin=sample.origin.replace(str(unpacked), str(archive)))


def _named_in_utf8(sample: Sample, finder: ImageFinder) -> Sample:
    """An image whose path is not UTF-8 (GBK names: a folder from a zip made on a Chinese Windows)
    cannot be named in the manifest, which stopped the import with a UnicodeEncodeError: it is kept
    in the store by content, as an archive's images are, and its origin shows the odd bytes as \\xNN."""
    if is_utf8_path(sample.path):
        return sample
    stored = finder.keep(read_regular_file(sample.path), sample.path.suffix)
    return replace(sample, path=stored, origin=shown_path(sample.origin))
