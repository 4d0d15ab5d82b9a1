"""Model folders: `models/<name>/` with card.yaml and the weights (model.onnx and/or model.pt).

The card says what the model is (classes in output order, input size, training data, metrics,
licence credits); the weights' sha256 names the exact version stored on every finding. The card's
`weights` section records each weights file's sha256 and, for a file not kept beside the card,
where it is: a `url` it is fetched from on first use (verified by its sha256), or a `git` commit
of this repository that still holds it. Nothing here imports torch: the ONNX path loads without it.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import re
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from tqdm import tqdm

from vision.core.files import file_sha256
from vision.core.taxonomy import Taxonomy
from vision.core.yamlfile import yaml_problem
from vision.detect.errors import ModelError
from vision.detect.weights import inspect_weights

CARD = "card.yaml"
REGISTRY = (
    "registry.yaml"  # which model is current, and every promotion and rollback (vision/modelops/promote.py)
)
CURRENT = "current"  # the model name that follows the registry: `load_detector("current")`
WEIGHTS = {"onnx": "model.onnx", "ultralytics": "model.pt"}
WEIGHT_SUFFIXES = {".onnx": "onnx", ".pt": "ultralytics"}
FETCH_SCHEMES = ("http", "https", "file")
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
FETCH_TIMEOUT_S = 60  # per network read, not for the whole file
UNMAPPED = -1  # taxonomy_class_map: a model class the taxonomy has no name or alias for
log = logging.getLogger("streetorder.models")


@dataclass(frozen=True)
class ModelFiles:
    """Where one model's files are. `folder` is None for a bare weights file without a card."""

    name: str
    folder: Path | None
    weights: dict[str, Path]  # backend -> weights file that exists
    card: dict[str, Any]

    def weights_for(self, backend: str) -> Path:
        if backend not in self.weights:
            have = ", ".join(f"{b} ({p.name})" for b, p in self.weights.items()) or "none"
            where = self.folder or next(iter(self.weights.values()), Path(self.name))
            hint = ""
            if self.folder is not None and backend in WEIGHTS:
                hint = where_weights_are(
                    self.folder, [WEIGHTS[backend]], recorded_weights(self.card, self.folder)
                )
            raise ModelError(f"{where}: no weights for backend '{backend}' (have: {have}){hint}")
        inspect_weights(self.weights[backend])  # before any runtime unpickles or parses it
        return self.weights[backend]


class RecordedWeights(BaseModel):
    """One weights file as the card records it. In card.yaml a bare sha256 is the short form of
    `{sha256: ...}`; `url` (http, https or file) is fetched on first use when the file is not in the
    model folder; `git` names a commit of this repository whose tree still holds the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    url: str | None = None
    git: str | None = Field(default=None, pattern=r"^[0-9a-f]{7,40}$")

    @field_validator("url")
    @classmethod
    def _fetchable(cls, url: str | None) -> str | None:
        if url is not None and urlsplit(url).scheme not in FETCH_SCHEMES:
            raise ValueError(f"'{url}' is not a {', '.join(FETCH_SCHEMES)} URL")
        return url


def recorded_weights(card: dict[str, Any], folder: Path) -> dict[str, RecordedWeights]:
    """The card's `weights` section: file name -> what is recorded about it."""
    section = card.get("weights") or {}
    where = folder / CARD
    if not isinstance(section, dict):
        raise ModelError(
            f"{where}: weights: expected a mapping of file name to sha256 or {{sha256, url, git}}"
        )
    records = {}
    for name, entry in section.items():
        file = str(name)
        if Path(file).name != file or Path(file).suffix not in WEIGHT_SUFFIXES:
            raise ModelError(
                f"{where}: weights: '{file}' is not a weights file name (*.onnx or *.pt, no folder)"
            )
        try:
            records[file] = RecordedWeights.model_validate(
                {"sha256": entry} if isinstance(entry, str) else entry
            )
        except ValidationError as err:
            problem = err.errors()[0]
            field = ".".join(str(part) for part in problem["loc"])
            raise ModelError(f"{where}: weights.{file}.{field}: {problem['msg']}") from err
    return records


def where_weights_are(folder: Path, files: list[str], recorded: dict[str, RecordedWeights]) -> str:
    """How to get weights files that are not in the folder, from what the card records (a sentence)."""
    known = {file: recorded[file] for file in files if file in recorded}
    if not known:
        return ""
    in_git: dict[str, list[str]] = {}
    for file, record in sorted(known.items()):
        if record.git:
            in_git.setdefault(record.git, []).append(file)
    if in_git:
        commands = " and ".join(
            f"`git -C {folder} restore --source={commit} -- {' '.join(files)}`"
            for commit, files in in_git.items()
        )
        return (
            f"; they are not kept in the tree: restore them from git history with {commands}, "
            f"or give them a url in {folder / CARD} (weights.<file>.url)"
        )
    shas = ", ".join(f"{file} sha256 {record.sha256[:12]}" for file, record in sorted(known.items()))
    return (
        f"; the card records them ({shas}) but neither a url nor a git commit that holds them (a "
        f"refused candidate keeps only its card): give them a url in {folder / CARD} "
        f"(weights.<file>.url), or place the files there"
    )


def fetch_weights(target: Path, record: RecordedWeights) -> None:
    """Download `record.url` to `target` through a temporary file beside it, kept only when its
    sha256 is the recorded one: a changed or truncated download never becomes a model version."""
    assert record.url is not None
    digest = hashlib.sha256()
    partial: Path | None = None
    try:
        with urllib.request.urlopen(record.url, timeout=FETCH_TIMEOUT_S) as response:
            size = int(response.headers.get("Content-Length") or 0) or None
            with (
                tempfile.NamedTemporaryFile(
                    dir=target.parent, prefix=f".{target.name}.", delete=False
                ) as out,
                tqdm(
                    total=size,
                    unit="B",
                    unit_scale=True,
                    desc=f"fetch {target.parent.name}/{target.name}",
                    file=sys.stderr,
                ) as progress,
            ):
                partial = Path(out.name)
                for block in iter(lambda: response.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
                    progress.update(len(block))
    except (OSError, ValueError, http.client.HTTPException) as err:
        if partial is not None:
            partial.unlink(missing_ok=True)
        raise ModelError(
            f"{target}: not here, and fetching it from {record.url} failed ({err}); retry when the "
            f"server is reachable, or place the file there (sha256 {record.sha256})"
        ) from err
    assert partial is not None
    if digest.hexdigest() != record.sha256:
        partial.unlink()
        raise ModelError(
            f"{target}: refused what {record.url} sent: its sha256 {digest.hexdigest()} is not the "
            f"{record.sha256} that {target.parent / CARD} records (nothing was kept)"
        )
    partial.chmod(0o644)  # a temporary file is private to its writer; the service may run as another user
    partial.replace(target)


def ensure_fetched(folder: Path, recorded: dict[str, RecordedWeights]) -> None:
    """Fetch the files the card gives a url for and the folder lacks; check those already there."""
    for file, record in recorded.items():
        if record.url is None:
            continue
        target = folder / file
        if not target.exists():
            fetch_weights(target, record)
        elif (found := file_sha256(target)) != record.sha256:
            raise ModelError(
                f"{target}: its sha256 {found} is not the {record.sha256} that {folder / CARD} records; "
                f"delete the file to fetch it again from {record.url}"
            )


def check_model_name(name: str) -> str:
    """A model's name is a folder of models/ and a word of the registry: letters, digits, '.', '_'
    and '-', starting with a letter or digit, at most 64 characters (so never `..` or a path)."""
    if not MODEL_NAME.fullmatch(name):
        rule = "letters, digits, '.', '_', '-' (first a letter or digit), 1-64"
        raise ModelError(f"model name {name!r}: {rule}")
    return name


def read_card(folder: Path) -> dict[str, Any]:
    path = folder / CARD
    if not path.exists():
        return {}
    try:
        card = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ModelError(f"{path}: not valid YAML: {yaml_problem(err)}") from err
    if not isinstance(card, dict):
        raise ModelError(f"{path}: a model card must be a mapping")
    return card


def write_card(folder: Path, card: dict[str, Any]) -> Path:
    path = folder / CARD
    path.write_text(yaml.safe_dump(card, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def update_card(folder: Path, **sections: Any) -> Path:
    """Set top-level card sections (dicts are merged one level deep, so metrics accumulate)."""
    card = read_card(folder)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(card.get(key), dict):
            card[key] = {**card[key], **value}
        else:
            card[key] = value
    return write_card(folder, card)


def current_in(registry: Path) -> str:
    """The model a registry file names as current."""
    try:
        data = yaml.safe_load(registry.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ModelError(f"{registry}: cannot read the model registry: {err}") from err
    if not isinstance(data, dict) or not data.get("current"):
        raise ModelError(f"{registry}: no 'current' model (set one with `streetorder models promote NAME`)")
    return str(data["current"])


def find_model(model: str | Path, models_dir: Path, fetch: bool = True) -> ModelFiles:
    """Resolve a model name (a folder under models/), a model folder, or a .onnx/.pt file.

    `current` (or a path to a registry.yaml) is the model the registry names as current. Weights
    the card gives a url for are fetched into the folder first, unless `fetch` is False (listing).
    """
    path = Path(model)
    if str(model) == CURRENT or (path.name == REGISTRY and path.is_file()):
        registry = models_dir / REGISTRY if str(model) == CURRENT else path
        return find_model(current_in(registry), registry.parent, fetch)
    if path.is_file():
        if path.suffix not in WEIGHT_SUFFIXES:
            raise ModelError(f"{path}: not a model file (expected .onnx or .pt)")
        has_card = (path.parent / CARD).exists()
        return ModelFiles(
            name=path.parent.name if has_card else path.stem,
            folder=path.parent if has_card else None,
            weights={WEIGHT_SUFFIXES[path.suffix]: path},
            card=read_card(path.parent) if has_card else {},
        )
    folder = path if path.is_dir() else models_dir / str(model)
    if not folder.is_dir():
        known = sorted(p.name for p in models_dir.glob("*") if p.is_dir()) if models_dir.is_dir() else []
        raise ModelError(
            f"no model '{model}': not a .onnx/.pt file and no folder {folder} "
            f"(models here: {', '.join(known) or 'none'})"
        )
    card = read_card(folder)
    recorded = recorded_weights(card, folder)
    if fetch:
        ensure_fetched(folder, recorded)
    weights = {backend: folder / f for backend, f in WEIGHTS.items() if (folder / f).exists()}
    if not weights:
        hint = where_weights_are(folder, [f for f in recorded if not (folder / f).exists()], recorded)
        raise ModelError(f"{folder}: holds neither {WEIGHTS['onnx']} nor {WEIGHTS['ultralytics']}{hint}")
    return ModelFiles(name=folder.name, folder=folder, weights=weights, card=card)


def model_version(name: str, weights: Path) -> str:
    """`<name>@<first 12 hex of the weights' sha256>`: stored on every finding."""
    return f"{name}@{file_sha256(weights)[:12]}"


def taxonomy_class_map(
    model_names: list[str], where: str, taxonomy: Taxonomy, drop_unknown: bool = False
) -> np.ndarray:
    """Model output index -> taxonomy index; a class the taxonomy has no name or alias for is refused.

    `drop_unknown` (names read from a weights file without a card: a model not made here, such as
    a COCO detector with car, bus, truck, motorcycle, bicycle among its 80): such a class maps to
    UNMAPPED and its boxes are dropped, said in a warning; a model none of whose classes map is
    refused. A card's classes are ours: one the taxonomy lacks is a mistake, never dropped unsaid.
    """
    resolved = [taxonomy.resolve(name) for name in model_names]
    mapped = [cls.index if cls is not None else UNMAPPED for cls in resolved]
    ours = f"{taxonomy.source} (classes: {', '.join(taxonomy.names)})"
    unmapped = [name for name, index in zip(model_names, mapped, strict=True) if index == UNMAPPED]
    if unmapped and not drop_unknown:
        index = mapped.index(UNMAPPED)
        raise ModelError(
            f"{where}: model class {index} '{model_names[index]}' is neither a taxonomy class nor an "
            f"alias in {ours}; add an alias or retrain"
        )
    if len(unmapped) == len(model_names):
        more = f", ... ({len(model_names)} in all)" if len(model_names) > 8 else ""
        raise ModelError(
            f"{where}: none of its classes ({', '.join(model_names[:8])}{more}) is a taxonomy class "
            f"or an alias in {ours}; add aliases or retrain"
        )
    kept = [index for index in mapped if index != UNMAPPED]
    if len(set(kept)) != len(kept):
        raise ModelError(f"{where}: two model classes map onto one taxonomy class: {model_names}")
    if unmapped:
        used = ", ".join(
            f"{name}->{cls.name}" for name, cls in zip(model_names, resolved, strict=True) if cls
        )
        log.warning(
            "%s: %d of its %d classes are not in %s and are dropped (%s%s); used: %s",
            where,
            len(unmapped),
            len(model_names),
            taxonomy.source,
            ", ".join(unmapped[:8]),
            ", ..." if len(unmapped) > 8 else "",
            used,
        )
    return np.array(mapped, dtype=int)
