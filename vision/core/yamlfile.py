"""YAML files people write (configs, mixes, data.yaml), read with one set of clear errors.

PyYAML only: training and the GPU relay's leg read mixes on hosts that have it but not pydantic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from vision.core.files import read_regular_file


class ConfigError(ValueError):
    """A file people wrote (a config, a mix, a grid layout) that cannot be used; the message names
    the file and the field: the whole story, which every command shows as one line."""


def read_text(path: Path, error: type[ValueError] = ValueError, max_bytes: int | None = None) -> str:
    """A UTF-8 text file people wrote; unreadable, not UTF-8, not a regular file (a pipe would block
    its reader) or over `max_bytes` as it is read (a cap checked on the stated size alone let a file
    that grows, is swapped or is a pipe through) is `error` naming the file."""
    try:
        return read_regular_file(path, max_bytes).decode("utf-8")
    except OSError as err:
        raise error(f"{path}: cannot read: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise error(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from err


class UniqueKeys(yaml.constructor.SafeConstructor):
    """PyYAML's safe constructor, refusing a key written twice in one mapping: YAML lets the last one
    win, so a camera given a second `stream:` or `zones:` (a block pasted and half edited) silently
    lost the first. Keys brought in by a merge (`<<: *defaults`) may still be overridden."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):  # unhashable: the safe loader refuses it itself
                continue
            if key in first:
                said = f"key {key!r} written twice (first on line {first[key] + 1})"
                raise yaml.constructor.ConstructorError(None, None, said, key_node.start_mark)
            first[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


class UniqueKeyLoader(UniqueKeys, yaml.SafeLoader):
    """The pure-Python safe loader with `UniqueKeys`: exact messages for a file that does not parse."""


# libyaml's parser (C) with the same constructor: a 1 MB cameras file (1000 cameras) parses 4x
# faster, which is most of a reload. Its messages are vaguer and it stops at 1000 nested levels, so
# a file it refuses is read again by `UniqueKeyLoader` for the message people see.
FastLoader: type[Any] = (
    type("FastLoader", (UniqueKeys, yaml.CSafeLoader), {}) if yaml.__with_libyaml__ else UniqueKeyLoader
)


def _timestamp(loader: Any, node: yaml.ScalarNode) -> Any:
    """A date that does not exist (2026-02-30) with its line: PyYAML raised a bare ValueError, which
    came out of every command as a traceback."""
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError) as err:
        said = f"{node.value!r} is not a date ({err}); write a day that exists"
        raise yaml.constructor.ConstructorError(None, None, said, node.start_mark) from err


for _loader in (UniqueKeyLoader, FastLoader):
    _loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def read_yaml(path: Path, error: type[ValueError] = ValueError, max_bytes: int | None = None) -> Any:
    """The parsed YAML of a file; unreadable, not UTF-8, over `max_bytes`, malformed or a key written
    twice is `error` naming the file."""
    text = read_text(path, error, max_bytes)
    try:
        return yaml.load(text, Loader=FastLoader)  # safe loaders: no Python objects
    except (yaml.YAMLError, RecursionError):
        pass
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
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
