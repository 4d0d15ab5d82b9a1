"""The one taxonomy: detector classes, their aliases in datasets, and the events they become.

Kept to PyYAML and the standard library so that `streetorder train` runs on a bare GPU host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from vision.core.yamlfile import ConfigError, read_yaml

TAXONOMY = "taxonomy.yaml"  # its file name in the configs folder (the configs_dir setting)
DEADLINE_UNITS = ("minutes", "hours", "working_hours", "working_days", "days")
# The most a limit may be, a year in each unit (working hours: a year of 8-hour days): disposal limits
# run from minutes to days, and 1e9 hours was accepted, then ran a deadline past the year 9999 (a
# traceback on the first case filed) or counted a million working days one by one.
MAX_DEADLINE = {"minutes": 525_600, "hours": 8_760, "working_hours": 2_920, "working_days": 365, "days": 365}
# The fields each part may have: anything else is a typo (`on_site_minute`) that was silently ignored.
FIELDS = {
    "taxonomy": ("classes", "events"),
    "event": (
        "name",
        "name_zh",
        "disorder",
        "record_type",
        "major",
        "cjt214",
        "gbt47678",
        "deadline",
        "on_site_minutes",
    ),
    "deadline": ("amount", "unit"),
    "class": ("name", "aliases", "event", "min_confidence", "patrol"),
}


class TaxonomyError(ConfigError):
    """A taxonomy file that cannot be used; the message names the file and the field."""


def normalise_name(name: str) -> str:
    """How dataset class names are compared: case-insensitive, `-` and spaces read as `_`."""
    return name.strip().lower().replace("-", "_").replace(" ", "_")


@dataclass(frozen=True)
class DetectorClass:
    index: int
    name: str
    aliases: tuple[str, ...]
    event: str | None
    min_confidence: float
    patrol: bool


@dataclass(frozen=True)
class Deadline:
    amount: float
    unit: str


@dataclass(frozen=True)
class Event:
    key: str
    name: str
    name_zh: str
    disorder: str
    record_type: str
    major: str
    cjt214: str
    gbt47678: str
    deadline: Deadline
    on_site_minutes: float | None = None  # 双十: someone on site within this many minutes of filing


@dataclass(frozen=True)
class Taxonomy:
    classes: tuple[DetectorClass, ...]
    events: dict[str, Event]
    source: Path = field(default=Path("<memory>"), compare=False)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def first(self, count: int) -> Taxonomy:
        """The taxonomy as it was when it had `count` classes (classes are only ever appended): what
        a model trained then, or a run resumed from its checkpoint, knows."""
        return Taxonomy(self.classes[:count], self.events, self.source)

    def resolve(self, dataset_name: str) -> DetectorClass | None:
        """The taxonomy class a dataset's class name stands for, or None if it is not ours."""
        wanted = normalise_name(dataset_name)
        for cls in self.classes:
            if wanted == normalise_name(cls.name) or wanted in (normalise_name(a) for a in cls.aliases):
                return cls
        return None

    def map_names(self, dataset_names: dict[int, str] | list[str]) -> tuple[dict[int, int], list[str]]:
        """Map a dataset's class ids to taxonomy ids; also return the names that are not ours."""
        items = dataset_names.items() if isinstance(dataset_names, dict) else enumerate(dataset_names)
        mapping: dict[int, int] = {}
        unknown: list[str] = []
        for dataset_id, name in items:
            cls = self.resolve(str(name))
            if cls is None:
                unknown.append(str(name))
            else:
                mapping[int(dataset_id)] = cls.index
        return mapping, unknown


def _require(entry: Any, key: str, where: str) -> Any:
    if not isinstance(entry, dict):
        raise TaxonomyError(f"{where}: a mapping expected, got {entry!r}")
    if key not in entry:
        raise TaxonomyError(f"{where}: missing field '{key}'")
    return entry[key]


def _known_fields(entry: Any, part: str, where: str) -> None:
    """Refuse a field `part` does not have, naming the ones it has."""
    if isinstance(entry, dict) and (unknown := [str(k) for k in entry if k not in FIELDS[part]]):
        raise TaxonomyError(f"{where}.{unknown[0]}: unknown field; the fields are {', '.join(FIELDS[part])}")


def _of_type(value: Any, kind: type, where: str) -> Any:
    if not isinstance(value, kind):
        raise TaxonomyError(f"{where}: a {'list' if kind is list else 'mapping'} expected, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, str) and _parses_as_float(value):  # YAML 1.1 reads 1e9 (no dot) as text
        raise TaxonomyError(f"{where}: {value!r} is text to YAML; write the number with digits only")
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise TaxonomyError(f"{where}: a number expected, got {value!r}")
    return float(value)


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_taxonomy(data: Any, source: Path = Path("<memory>")) -> Taxonomy:
    """Build a Taxonomy from parsed YAML, checking every field a rule relies on."""
    if not isinstance(data, dict):
        raise TaxonomyError(f"{source}: expected a mapping with 'classes' and 'events'")
    if unknown := [str(k) for k in data if k not in FIELDS["taxonomy"]]:
        raise TaxonomyError(f"{source}: {unknown[0]}: unknown field; the fields are classes, events")
    raw_events = _require(data, "events", str(source))
    events: dict[str, Event] = {}
    for key, entry in _of_type(raw_events, dict, f"{source}: events").items():
        where = f"{source}: events.{key}"
        deadline = _require(entry, "deadline", where)
        _known_fields(entry, "event", where)
        _known_fields(deadline, "deadline", where + ".deadline")
        unit = _require(deadline, "unit", where + ".deadline")
        if unit not in DEADLINE_UNITS:
            raise TaxonomyError(f"{where}.deadline.unit: '{unit}' is not one of {', '.join(DEADLINE_UNITS)}")
        amount = _number(_require(deadline, "amount", where + ".deadline"), where + ".deadline.amount")
        if amount <= 0:
            raise TaxonomyError(f"{where}.deadline.amount: must be positive, got {amount}")
        if amount > MAX_DEADLINE[unit]:
            raise TaxonomyError(
                f"{where}.deadline.amount: {amount:g} {unit} is more than a year; "
                f"give at most {MAX_DEADLINE[unit]} {unit}"
            )
        on_site = entry.get("on_site_minutes")
        if (
            on_site is not None
            and not 0 < _number(on_site, where + ".on_site_minutes") <= MAX_DEADLINE["minutes"]
        ):
            raise TaxonomyError(
                f"{where}.on_site_minutes: must be positive and at most {MAX_DEADLINE['minutes']}, "
                f"got {on_site}"
            )
        events[key] = Event(
            key=key,
            name=str(_require(entry, "name", where)),
            name_zh=str(_require(entry, "name_zh", where)),
            disorder=str(_require(entry, "disorder", where)),
            record_type=str(entry.get("record_type", "event")),
            major=str(_require(entry, "major", where)),
            cjt214=str(_require(entry, "cjt214", where)),
            gbt47678=str(_require(entry, "gbt47678", where)),
            deadline=Deadline(amount=amount, unit=str(unit)),
            on_site_minutes=float(on_site) if on_site is not None else None,
        )
    classes: list[DetectorClass] = []
    seen: set[str] = set()
    for index, entry in enumerate(
        _of_type(_require(data, "classes", str(source)), list, f"{source}: classes")
    ):
        where = f"{source}: classes[{index}]"
        name = str(_require(entry, "name", where))
        _known_fields(entry, "class", where)
        event = entry.get("event")
        if event is not None and (not isinstance(event, str) or event not in events):
            raise TaxonomyError(f"{where}.event: unknown event '{event}'")
        confidence = _number(entry.get("min_confidence", 0.25), f"{where}.min_confidence")
        if not 0.0 <= confidence <= 1.0:
            raise TaxonomyError(f"{where}.min_confidence: {confidence} is outside 0..1")
        aliases = tuple(str(a) for a in _of_type(entry.get("aliases", []), list, f"{where}.aliases"))
        for n in (name, *aliases):
            if normalise_name(n) in seen:
                raise TaxonomyError(f"{where}: name or alias '{n}' is used twice")
            seen.add(normalise_name(n))
        classes.append(
            DetectorClass(index, name, aliases, event, confidence, bool(entry.get("patrol", False)))
        )
    return Taxonomy(classes=tuple(classes), events=events, source=source)


def load_taxonomy(path: Path | str) -> Taxonomy:
    """Load `<configs_dir>/taxonomy.yaml` (or another file of the same form), once per path."""
    return _load_cached(Path(path))


@cache
def _load_cached(path: Path) -> Taxonomy:
    return parse_taxonomy(read_yaml(path, TaxonomyError), path)
