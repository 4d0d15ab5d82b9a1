"""One loader for the YAML files of the configs folder: read, validated by a pydantic model, and every
problem raised as one error naming the file and the field (`routing.yaml: rules[2].events: ...`).

The taxonomy and the dataset mixes keep their own checks in the same form (vision/core/taxonomy.py,
vision/data/datamix.py): the GPU relay's leg reads both on a host that may lack pydantic.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from vision.core.yamlfile import ConfigError, read_yaml

Model = TypeVar("Model", bound=BaseModel)

__all__ = ["ConfigError", "ConfigModel", "load_config_file", "validate_config"]


class ConfigModel(BaseModel):
    """A configuration file's form: unknown fields are refused (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def field_path(location: Sequence[int | str]) -> str:
    """pydantic's error location as the file's own path: `rules[2].events` (empty: the whole file,
    whose checks across fields name the fields in their message)."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def load_config_file(
    path: Path,
    model: type[Model],
    *,
    error: type[ValueError] = ConfigError,
    context: dict[str, Any] | None = None,
) -> Model:
    """Read `path` and validate it as `model`; an empty file is an empty mapping. Any problem is
    raised as `error` (a module's own ConfigError subclass or ValueError) naming file and field."""
    return validate_config(read_yaml(path, error), model, str(path), error=error, context=context)


def validate_config(
    data: Any,
    model: type[Model],
    source: str,
    *,
    error: type[ValueError] = ConfigError,
    context: dict[str, Any] | None = None,
) -> Model:
    """Parsed YAML (None: an empty file) validated as `model`; a problem is `error` naming `source`
    and the field."""
    if data is not None and not isinstance(data, dict):
        raise error(f"{source}: expected a mapping, got {type(data).__name__}")
    try:
        return model.model_validate({} if data is None else data, context=context)
    except ValidationError as err:
        problem = err.errors()[0]
        message = str(problem["msg"]).removeprefix("Value error, ")
        where = field_path(problem["loc"])
        raise error(f"{source}: {where}: {message}" if where else f"{source}: {message}") from err
