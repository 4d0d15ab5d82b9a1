"""Which department answers for a case: configured rules over event class, grid and street.

Bureaus re-draw responsibilities often; keeping them in configs/routing.yaml lets a dispatcher's
default follow the bureau's current order without a release. First matching rule wins.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from vision.core.config import ConfigError, ConfigModel, load_config_file
from vision.core.taxonomy import Taxonomy


class RoutingError(ConfigError):
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

    def unmatched(self, codes: Collection[str], streets: Collection[str | None]) -> list[str]:
        """Rule conditions no unit grid of the layout meets (a street name misspelt, a prefix of the
        example's district): such a rule silently never routes a case, so the service says so at start."""
        said = []
        for i, rule in enumerate(self.rules):
            for prefix in rule.grids or ():
                if not any(code.startswith(prefix) for code in codes):
                    said.append(f"rules[{i}].grids: no unit grid's code starts with '{prefix}'")
            for street in sorted(rule.streets or ()):
                if street not in streets:
                    said.append(f"rules[{i}].streets: '{street}' is the street of no unit grid")
        return said


Names = Annotated[list[Annotated[str, BeforeValidator(str)]], Field(min_length=1)]  # YAML may write 410103001


class RoutingRule(ConfigModel):
    department: str
    events: Names | None = None
    grids: Names | None = None  # unit grid code prefixes
    streets: Names | None = None

    @field_validator("grids")
    @classmethod
    def _grid_prefixes(cls, grids: list[str] | None) -> list[str] | None:
        for prefix in grids or []:
            if not prefix.isdigit() or len(prefix) > 15:
                raise ValueError(f"'{prefix}' is not a grid code prefix (digits, at most 15)")
        return grids


class RoutingFile(ConfigModel):
    """configs/routing.yaml; departments and events are checked against each other and the taxonomy."""

    departments: Names
    default: str
    rules: list[RoutingRule] = []

    @model_validator(mode="after")
    def _known_names(self, info: ValidationInfo) -> RoutingFile:
        if self.default not in self.departments:
            raise ValueError(f"default: '{self.default}' is not in departments")
        taxonomy: Taxonomy = (info.context or {})["taxonomy"]
        for i, rule in enumerate(self.rules):
            if rule.department not in self.departments:
                raise ValueError(f"rules[{i}].department: '{rule.department}' is not in departments")
            for event in rule.events or []:
                if event not in taxonomy.events:
                    raise ValueError(f"rules[{i}].events: '{event}' is not an event of {taxonomy.source}")
        return self


def load_routing(path: Path | str, taxonomy: Taxonomy) -> Routing:
    """`<configs_dir>/routing.yaml`, its events checked against `taxonomy`; RoutingError names a bad field."""
    spec = load_config_file(Path(path), RoutingFile, error=RoutingError, context={"taxonomy": taxonomy})
    rules = tuple(
        Rule(
            department=rule.department,
            events=frozenset(rule.events) if rule.events else None,
            grids=tuple(rule.grids) if rule.grids else None,
            streets=frozenset(rule.streets) if rule.streets else None,
        )
        for rule in spec.rules
    )
    return Routing(rules, spec.default, tuple(spec.departments))
