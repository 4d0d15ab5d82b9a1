"""YAML files people write (configs, mixes, data.yaml), read with one set of clear errors.

PyYAML only: training and the GPU relay's leg read mixes on hosts that have it but not pydantic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A file people wrote (a config, a mix, a grid layout) that cannot be used; the message names
    the file and the field: the whole story, which every command shows as one line."""


def read_text(path: Path, error: type[ValueError] = ValueError) -> str:
    """A UTF-8 text file people wrote; unreadable or not UTF-8 is `error` naming the file."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise error(f"{path}: cannot read: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise error(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from err


def read_yaml(path: Path, error: type[ValueError] = ValueError) -> Any:
    """The parsed YAML of a file; unreadable, not UTF-8 or malformed is `error` naming the file."""
    text = read_text(path, error)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise error(f"{path}: not valid YAML: {yaml_problem(err)}") from err
    except RecursionError:  # PyYAML recurses per level: `[[[[...` thousands deep was a traceback (a 500)
        raise error(f"{path}: not valid YAML: nested too deeply") from None


def yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's error on one line with the file's own line and column (its text spans five lines,
    quotes the source as "<unicode string>" and draws a caret)."""
    if not isinstance(err, yaml.MarkedYAMLError) or err.problem_mark is None:
        return " ".join(str(err).split())
    mark = err.problem_mark
    return f"line {mark.line + 1}, column {mark.column + 1}: {err.problem or 'cannot be parsed'}"
