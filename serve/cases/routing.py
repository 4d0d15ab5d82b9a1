"""Which department answers for a case: configured rules over event class, grid and street.

Bureaus re-draw responsibilities often; keeping them in configs/routing.yaml lets a dispatcher's
default follow the bureau's current order without a release. First matching rule wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vision.core.taxonomy import Taxonomy


class RoutingError(ValueError):
    """A routing file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Rule:
    department: str
    events: frozenset[str] | None = None
    grids: tuple[str, ...] | None = None  # unit grid code prefixes
    streets: frozenset[str] | None = None

    def matches(self, event: str, grid_code: str | None, street: str | None) -> bool:
        if self.events is not None and event not in self.events:
            return False
        if self.grids is not None and not (grid_code and grid_code.startswith(self.grids)):
            return False
        return self.streets is None or street in self.streets


@dataclass(frozen=True)
class Routing:
    rules: tuple[Rule, ...]
    default: str
    departments: tuple[str, ...]

    def department_for(self, event: str, grid_code: str | None, street: str | None) -> str:
        return next((r.department for r in self.rules if r.matches(event, grid_code, street)), self.default)


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str | int) for v in value):
        raise RoutingError(f"{where}: a non-empty list of names expected")
    return [str(v) for v in value]


def parse_routing(data: Any, source: str, taxonomy: Taxonomy) -> Routing:
    if not isinstance(data, dict):
        raise RoutingError(f"{source}: a mapping with 'departments', 'default' and 'rules' expected")
    departments = tuple(_strings(data.get("departments"), f"{source}: departments"))
    default = data.get("default")
    if default not in departments:
        raise RoutingError(f"{source}: default: '{default}' is not in departments")
    rules = []
    for i, entry in enumerate(data.get("rules") or []):
        where = f"{source}: rules[{i}]"
        if not isinstance(entry, dict):
            raise RoutingError(f"{where}: a mapping expected")
        if entry.get("department") not in departments:
            raise RoutingError(f"{where}.department: '{entry.get('department')}' is not in departments")
        unknown = set(entry) - {"department", "events", "grids", "streets"}
        if unknown:
            raise RoutingError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        events = _strings(entry["events"], f"{where}.events") if "events" in entry else None
        for event in events or []:
            if event not in taxonomy.events:
                raise RoutingError(f"{where}.events: '{event}' is not an event of {taxonomy.source}")
        grids = _strings(entry["grids"], f"{where}.grids") if "grids" in entry else None
        for prefix in grids or []:
            if not prefix.isdigit() or len(prefix) > 15:
                raise RoutingError(
                    f"{where}.grids: '{prefix}' is not a grid code prefix (digits, at most 15)"
                )
        streets = _strings(entry["streets"], f"{where}.streets") if "streets" in entry else None
        rules.append(
            Rule(
                department=entry["department"],
                events=frozenset(events) if events else None,
                grids=tuple(grids) if grids else None,
                streets=frozenset(streets) if streets else None,
            )
        )
    return Routing(tuple(rules), default, departments)


def load_routing(path: Path | str, taxonomy: Taxonomy) -> Routing:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise RoutingError(f"{path}: cannot read routing rules: {err}") from err
    return parse_routing(data, str(path), taxonomy)
