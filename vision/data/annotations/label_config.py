"""Label Studio labelling configs: the one these tasks and the ML backend expect, and reading the
box control of a project's own config (which label names it uses for which taxonomy class) and
the labels its box and polygon controls offer (what its annotators could draw)."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree import ElementTree
from xml.sax.saxutils import quoteattr

from vision.core.taxonomy import Taxonomy
from vision.data.annotations.records import AnnotationError


@dataclass(frozen=True)
class RectangleControl:
    """The box control of a labelling config: its names, the task data key of its image, and the
    project's label for each taxonomy class it can express."""

    from_name: str
    to_name: str
    data_key: str
    labels: dict[str, str]  # taxonomy class -> the config's label value


MAX_CONFIG_CHARS = 200_000
BOX_CONTROLS = ("RectangleLabels", "PolygonLabels")  # what the import reads as boxes


def _parsed(config: str) -> ElementTree.Element:
    """The config's root, refusing what is not a labelling config."""
    if len(config) > MAX_CONFIG_CHARS:
        raise AnnotationError("label_config", f"over {MAX_CONFIG_CHARS} characters")
    if "<!DOCTYPE" in config or "<!ENTITY" in config:
        raise AnnotationError("label_config", "document type declarations are not accepted")
    try:
        root = ElementTree.fromstring(config)
    except ElementTree.ParseError as err:
        raise AnnotationError("label_config", f"not valid XML: {err}") from err
    return root


def _box_control(config: str) -> tuple[ElementTree.Element, ElementTree.Element]:
    """The config's root and its first RectangleLabels (what predictions are given as)."""
    root = _parsed(config)
    control = next((e for e in root.iter() if e.tag == "RectangleLabels"), None)
    if control is None:
        raise AnnotationError("label_config", "no <RectangleLabels> control: this backend predicts boxes")
    return root, control


def box_labels(config: str) -> tuple[str, ...]:
    """The label values a config's box and polygon controls offer: what its annotators could draw
    (a polygon is imported as its enclosing box)."""
    controls = [e for e in _parsed(config).iter() if e.tag in BOX_CONTROLS]
    if not controls:
        raise AnnotationError(
            "label_config", "no <RectangleLabels> or <PolygonLabels> control: nothing drawn"
        )
    values = (label.get("value", "") for control in controls for label in control.iter("Label"))
    return tuple(dict.fromkeys(values))


def taxonomy_labels(names: tuple[str, ...], taxonomy: Taxonomy) -> dict[str, str]:
    """The config's label for each taxonomy class its labels name (the first of a class's aliases);
    none at all is refused: nothing drawn there is a class of ours."""
    labels: dict[str, str] = {}
    for name in names:
        cls = taxonomy.resolve(name)
        if cls is not None and cls.name not in labels:
            labels[cls.name] = name
    if not labels:
        raise AnnotationError(
            "label_config", f"none of its labels is a taxonomy class or alias ({', '.join(taxonomy.names)})"
        )
    return labels


def rectangle_control(config: str | None, taxonomy: Taxonomy) -> RectangleControl:
    """Read the first RectangleLabels of a labelling config (the default one when none is given)."""
    if not config:
        return RectangleControl("label", "image", "image", {n: n for n in taxonomy.names})
    root, control = _box_control(config)
    from_name, to_name = control.get("name", ""), control.get("toName", "")
    image = next((e for e in root.iter() if e.get("name") == to_name), None)
    value = image.get("value", "") if image is not None else ""
    if not value.startswith("$"):
        raise AnnotationError(
            "label_config", f'RectangleLabels toName={to_name!r} names no <Image value="$...">'
        )
    labels = taxonomy_labels(tuple(label.get("value", "") for label in control.iter("Label")), taxonomy)
    return RectangleControl(from_name, to_name, value[1:], labels)


def label_config(taxonomy: Taxonomy) -> str:
    """The Label Studio labelling config these tasks and the ML backend expect."""
    labels = "\n".join(f"    <Label value={quoteattr(name)}/>" for name in taxonomy.names)
    return (
        '<View>\n  <Image name="image" value="$image" zoom="true"/>\n'
        f'  <RectangleLabels name="label" toName="image">\n{labels}\n  </RectangleLabels>\n</View>\n'
    )
