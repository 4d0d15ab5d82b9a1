"""`streetorder scan --engine ray`: the scan's workers as Ray Data actors, on one machine or a cluster.

Only the inspection (read, hash, decode reduced, detect, the flyer reader) is spread out: each
actor loads the model (and the reader, gated as in a local scan) once and takes batches of photo
paths or URLs. The results come back to the driver in input order
(`preserve_order`), where the one writer of `serve.cases.scan` records them exactly as a local scan
does, so case numbers and duplicate merging are the same. Photos are fed in chunks, so the driver
never holds the listing of an archive.

Workers on other nodes need the project installed at the same path (the model file is loaded by
its path) and must be able to read the photos: shared storage, or URLs in a list file (s3://...).
They check the database for photos recorded earlier only where they can reach it (PostgreSQL, or
the SQLite file on the same machine); elsewhere a resumed scan decodes such photos again and the
writer skips them.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from serve.cases.db import make_engine
from serve.cases.findings import CaseRules
from serve.cases.intake import Given, reads_in_full
from serve.cases.scan import Inspection, Inspector, source_of
from vision.core.imageio import Position
from vision.core.taxonomy import load_taxonomy
from vision.detect.backends import load_detector
from vision.detect.flyers import FlyerFinder, FlyerRules, detection_floor
from vision.detect.pipeline import DecodeOptions


@dataclass(frozen=True)
class RaySettings:
    """What every actor needs to rebuild the scan's inspector (plain, picklable data)."""

    address: str | None  # None: start a local Ray on this machine
    db_url: str
    workers: int
    weights: Path
    runtime: str
    taxonomy: Path  # the taxonomy file of the scan's configuration: actors map classes with it
    decoding: DecodeOptions
    case_rules: CaseRules  # the grids decide where the flyer reader reads a photo whole
    flyers: FlyerRules | None = None  # None: the scan runs no flyer reader
    sidecar: dict[Path, Given] = field(default_factory=dict)
    photos_per_call: int = 8
    chunk: int = 4096  # photos per Ray dataset: bounds what the driver holds


def reachable_database(url: str) -> sessionmaker[Session] | None:
    """A read session factory where this process can reach the database; never creates a file."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if not path or path == ":memory:" or not Path(path).exists():
            return None
    return sessionmaker(make_engine(url), expire_on_commit=False)


class RayInspector:
    """A Ray Data actor: loads the model once, inspects batches of photos."""

    def __init__(self, settings: RaySettings):
        taxonomy = load_taxonomy(settings.taxonomy)
        detector = load_detector(
            settings.weights,
            settings.runtime,
            models_dir=settings.weights.parent.parent,
            taxonomy=taxonomy,
            confidence=detection_floor(settings.flyers),
            threads=1,
        )
        factory = reachable_database(settings.db_url)
        finder = FlyerFinder(settings.flyers, taxonomy) if settings.flyers is not None else None

        def read_in_full(position: Position | None) -> bool:
            return finder is not None and reads_in_full(finder, settings.case_rules, position)

        self.inspect = Inspector(detector, factory, settings.decoding, settings.sidecar, finder, read_in_full)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        found = [pickle.dumps(self.inspect(str(item))) for item in batch["item"]]
        return {"inspection": np.array(found, dtype=object)}


def start_ray(settings: RaySettings) -> bool:
    """Connect to the cluster, or start a local Ray with one CPU per worker; True if started here."""
    import ray

    if ray.is_initialized():
        return False
    if settings.address:
        ray.init(address=settings.address, log_to_driver=False)
    else:
        ray.init(num_cpus=settings.workers + 1, include_dashboard=False, log_to_driver=False)
    context = ray.data.DataContext.get_current()  # configures Ray Data's logging first
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its lines per dataset are noise here
    context.execution_options.preserve_order = True  # the writer must see photos in input order
    context.enable_progress_bars = False  # the scan's own bar counts committed photos
    return True


def ray_inspections(settings: RaySettings) -> Any:
    """An inspection source for `Scanner.scan`: photos in, inspections out, in order, on Ray."""
    import ray

    def run(items: Iterable[Path | str]) -> Iterator[Inspection]:
        photos = iter(items)
        while chunk := [source_of(p) for p in islice(photos, settings.chunk)]:
            dataset = ray.data.from_items(
                [{"item": source} for source in chunk],
                override_num_blocks=min(len(chunk), 4 * settings.workers),
            ).map_batches(
                RayInspector,
                fn_constructor_kwargs={"settings": settings},
                batch_size=settings.photos_per_call,
                concurrency=settings.workers,
                num_cpus=1,
                batch_format="numpy",
            )
            for row in dataset.iter_rows():
                yield pickle.loads(row["inspection"])

    return run
