"""Model folders: `models/<name>/` with card.yaml and the weights (model.onnx and/or model.pt).

The card says what the model is (classes in output order, input size, training data, metrics,
licence credits); the weights' sha256 names the exact version stored on every finding. Only the
standard library, PyYAML and numpy here: the ONNX path must load without torch.
"""

from __future__ import annotations

import ast
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vision.core.taxonomy import Taxonomy, load_taxonomy

MODELS_DIR = Path(os.environ.get("STREETORDER_MODELS", Path(__file__).resolve().parents[2] / "models"))
CARD = "card.yaml"
REGISTRY = (
    "registry.yaml"  # which model is current, and every promotion and rollback (vision/modelops/promote.py)
)
CURRENT = "current"  # the model name that follows the registry: `load_detector("current")`
WEIGHTS = {"onnx": "model.onnx", "ultralytics": "model.pt"}
WEIGHT_SUFFIXES = {".onnx": "onnx", ".pt": "ultralytics"}


class ModelError(ValueError):
    """A model that cannot be found or used; the message names the file or folder and why."""


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
            raise ModelError(f"{where}: no weights for backend '{backend}' (have: {have})")
        return self.weights[backend]


def read_card(folder: Path) -> dict[str, Any]:
    path = folder / CARD
    if not path.exists():
        return {}
    try:
        card = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ModelError(f"{path}: not valid YAML: {err}") from err
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


def find_model(model: str | Path, models_dir: Path | None = None) -> ModelFiles:
    """Resolve a model name (a folder under models/), a model folder, or a .onnx/.pt file.

    `current` (or a path to a registry.yaml) is the model the registry names as current.
    """
    models_dir = models_dir or MODELS_DIR
    path = Path(model)
    if str(model) == CURRENT or (path.name == REGISTRY and path.is_file()):
        registry = models_dir / REGISTRY if str(model) == CURRENT else path
        return find_model(current_in(registry), registry.parent)
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
    weights = {backend: folder / f for backend, f in WEIGHTS.items() if (folder / f).exists()}
    if not weights:
        raise ModelError(f"{folder}: holds neither {WEIGHTS['onnx']} nor {WEIGHTS['ultralytics']}")
    return ModelFiles(name=folder.name, folder=folder, weights=weights, card=read_card(folder))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_version(name: str, weights: Path) -> str:
    """`<name>@<first 12 hex of the weights' sha256>`: stored on every finding."""
    return f"{name}@{file_sha256(weights)[:12]}"


def parse_names(value: Any, where: str) -> list[str]:
    """Class names in output order from a list, an {index: name} dict or its str() (ONNX metadata)."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError) as err:
            raise ModelError(f"{where}: cannot read class names from {value!r}") from err
    if isinstance(value, dict):
        return [str(value[k]) for k in sorted(value, key=int)]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    raise ModelError(f"{where}: class names must be a list or index->name map, not {type(value).__name__}")


def taxonomy_class_map(model_names: list[str], where: str, taxonomy: Taxonomy | None = None) -> np.ndarray:
    """Model output index -> taxonomy index; refuses a model with a class the taxonomy lacks."""
    taxonomy = taxonomy or load_taxonomy()
    mapped = []
    for index, name in enumerate(model_names):
        cls = taxonomy.resolve(name)
        if cls is None:
            raise ModelError(
                f"{where}: model class {index} '{name}' is neither a taxonomy class nor an alias in "
                f"{taxonomy.source} (classes: {', '.join(taxonomy.names)}); add an alias or retrain"
            )
        mapped.append(cls.index)
    if len(set(mapped)) != len(mapped):
        raise ModelError(f"{where}: two model classes map onto one taxonomy class: {model_names}")
    return np.array(mapped, dtype=int)
