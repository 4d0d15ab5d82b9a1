from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from configured import TAXONOMY

from vision.core.taxonomy import TaxonomyError, load_taxonomy, parse_taxonomy

RAW = yaml.safe_load(TAXONOMY.source.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("dataset_name", "taxonomy_name"),
    [
        ("garbage", "garbage"),
        ("overflow", "overflow"),  # garbage-cn
        ("garbage_bin", "garbage_bin"),
        ("bike", "motorcycle"),  # vehicles-in: motorcycle or scooter
        ("Bike", "motorcycle"),  # case-insensitive
        ("e-bike", "motorcycle"),  # '-' read as '_'
        ("full bin", "overflow"),  # ' ' read as '_'
        ("win_ad", "poster"),  # facades-spb
        ("signboard", "signboard"),
        ("automobile", "car"),
        ("truck", "truck"),  # traffic-cams
        ("lorry", "truck"),
        ("window", None),  # facades-spb building parts are not ours
        ("door", None),
        ("cantilever", None),
        ("person", None),
        ("bicycle", "bicycle"),  # ../shared/datasets/bicycles
        ("shared bike", "bicycle"),
        ("scooter", "motorcycle"),  # powered two-wheelers stay one group
    ],
)
def test_alias_mapping(dataset_name: str, taxonomy_name: str | None) -> None:
    cls = TAXONOMY.resolve(dataset_name)
    assert (cls.name if cls else None) == taxonomy_name


def test_map_names_of_a_dataset_reports_unknown_classes() -> None:
    mapping, unknown = TAXONOMY.map_names({0: "window", 1: "cantilever", 3: "signboard", 4: "win_ad"})
    assert mapping == {3: TAXONOMY.names.index("signboard"), 4: TAXONOMY.names.index("poster")}
    assert unknown == ["window", "cantilever"]


def broken(path: list[Any], value: Any) -> dict[str, Any]:
    """The real taxonomy with one field set (or, for value ..., removed)."""
    data = copy.deepcopy(RAW)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (["classes", 2, "name"], ..., "classes[2]: missing field 'name'"),
        (["classes", 0, "event"], "littering", "classes[0].event: unknown event 'littering'"),
        (["classes", 3, "min_confidence"], 1.5, "classes[3].min_confidence"),
        (["classes", 1, "aliases"], ["trash"], "alias 'trash' is used twice"),
        (["events", "exposed_garbage", "deadline", "unit"], "weeks", "events.exposed_garbage.deadline.unit"),
        (["events", "overflowing_bin", "deadline", "amount"], 0, "events.overflowing_bin.deadline.amount"),
        (["events", "illegal_poster", "gbt47678"], ..., "events.illegal_poster: missing field 'gbt47678'"),
        (["events"], ..., "missing field 'events'"),
        # a typo of an optional field was silently ignored: 双十 went unenforced
        (["events", "street_vending", "on_site_minute"], 10, "events.street_vending.on_site_minute: unknown"),
        (["events", "exposed_garbage", "deadline", "amout"], 3, "exposed_garbage.deadline.amout: unknown"),
        (["classes", 0, "min_confidense"], 0.5, "classes[0].min_confidense: unknown field"),
        (["colours"], {}, "colours: unknown field"),
        # 1e9 hours ran a deadline past the year 9999: a traceback at the first case filed
        (["events", "exposed_garbage", "deadline"], {"amount": 10**9, "unit": "hours"}, "more than a year"),
        (["events", "accumulated_garbage", "deadline", "amount"], 10**6, "at most 365 working_days"),
        (["events", "street_vending", "on_site_minutes"], 1e12, "street_vending.on_site_minutes: must be"),
        # YAML 1.1 reads 1e9 (no dot) as text: "a number expected, got '1e9'" puzzled whoever wrote it
        (["events", "exposed_garbage", "deadline", "amount"], "1e9", "'1e9' is text to YAML"),
    ],
)
def test_a_broken_taxonomy_names_the_field(path: list[Any], value: Any, named: str) -> None:
    with pytest.raises(TaxonomyError, match=re.escape(named)):
        parse_taxonomy(broken(path, value), Path("broken.yaml"))


def test_a_broken_taxonomy_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "taxonomy.yaml"
    path.write_text("classes: [\n  - name: garbage\n", encoding="utf-8")
    with pytest.raises(TaxonomyError, match=str(path)):
        load_taxonomy(path)


def test_bicycles_and_powered_two_wheelers_file_the_same_non_motor_vehicle_parking_event() -> None:
    bicycle, motorcycle = TAXONOMY.resolve("bicycle"), TAXONOMY.resolve("motorcycle")
    assert bicycle is not None and motorcycle is not None
    assert bicycle.event == motorcycle.event == "non_motor_vehicle_parking"
    assert (TAXONOMY.events[bicycle.event].cjt214, TAXONOMY.events[bicycle.event].gbt47678) == (
        "0506",
        "09010",
    )
    assert not bicycle.patrol  # parking needs a camera zone, as for cars


def test_every_model_card_lists_a_prefix_of_the_taxonomy() -> None:
    """Classes are only ever appended: a shipped model's head stays tied to the same indexes."""
    cards = sorted((Path(__file__).resolve().parents[1] / "models").glob("*/card.yaml"))
    assert cards
    for card in cards:
        classes = yaml.safe_load(card.read_text(encoding="utf-8"))["classes"]
        assert classes == TAXONOMY.names[: len(classes)], card
