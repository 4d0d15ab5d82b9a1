"""`streetorder evaluate` against hand-made labels where the right numbers are known.

The detector here is a real one of the classical kind: it finds the synthetic rectangles by their
exact colour, so its boxes equal the labels; then it misses, shifts or adds boxes on purpose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv
import yaml
from configured import TAXONOMY
from synthetic import COLOURS, Box, tiny_model, write_set

from serve.cli.main import main
from vision.core.taxonomy import TaxonomyError
from vision.detect.registry import read_card
from vision.modelops.evaluate import evaluate, read_labels
from vision.modelops.train import prepare_data

SIZE = 96
# one scene, drawn on several noise backgrounds: two garbage boxes (left and right), one
# overflowing bin, and one car that the data set does not label
SCENE = [
    Box("garbage", (4, 4, 40, 40)),
    Box("garbage", (54, 4, 90, 40)),
    Box("overflow", (4, 54, 40, 90)),
    Box("car", (54, 54, 90, 90)),
]


@dataclass
class ColourDetector:
    """Finds solid rectangles by colour; `shift` moves boxes right, `miss_right` drops right-half ones."""

    shift: int = 0
    miss_right: bool = False
    extra: tuple[str, float] | None = None  # one made-up box of this class and score per image
    version: str = "colour@0"
    input_size: int = SIZE

    def __post_init__(self) -> None:
        self.names = TAXONOMY.names

    def __call__(self, image: np.ndarray) -> sv.Detections:
        boxes, classes = [], []
        for name, colour in COLOURS.items():
            mask = cv2.inRange(image, np.array(colour), np.array(colour))
            count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
            for x, y, w, h, _area in stats[1:count]:
                if self.miss_right and x + w / 2 > SIZE / 2:
                    continue
                boxes.append([x + self.shift, y, x + w + self.shift, y + h])
                classes.append(TAXONOMY.names.index(name))
        scores = [0.9] * len(boxes)
        if self.extra:
            boxes.append([60, 60, 70, 70])
            classes.append(TAXONOMY.names.index(self.extra[0]))
            scores.append(self.extra[1])
        return sv.Detections(
            xyxy=np.array(boxes, dtype=np.float32).reshape(-1, 4),
            confidence=np.array(scores, dtype=np.float32),
            class_id=np.array(classes, dtype=int),
        )


@pytest.fixture(scope="module")
def bins_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """garbage-cn-like: labels garbage and full_bin (alias of overflow); 'tree' is not ours."""
    root = tmp_path_factory.mktemp("bins")
    return write_set(root, ["garbage", "full_bin", "tree"], {"val": [SCENE] * 3}, SIZE)


PERFECT = (1, 1, 0.995, 0.995)  # ultralytics' 101-point interpolated AP of a perfect ranking
SHIFTED = (1, 1, 0.995, 0.3)  # 8 px: IoU 28/44 = 0.64, a hit at IoU 0.50, 0.55, 0.60 only: 3/10


@pytest.mark.parametrize(
    ("detector", "garbage", "overflow"),  # expected (precision, recall, ap50, ap50_95) per class
    [
        pytest.param(ColourDetector(), PERFECT, PERFECT, id="boxes equal to the labels"),
        pytest.param(ColourDetector(miss_right=True), (1, 0.5, 0.5, 0.5), PERFECT, id="half garbage missed"),
        pytest.param(ColourDetector(shift=8), SHIFTED, SHIFTED, id="boxes shifted to IoU 0.64"),
        # a confident car is no false positive where cars are not labelled
        pytest.param(ColourDetector(extra=("car", 0.99)), PERFECT, PERFECT, id="a car, cars unlabelled"),
        # a false garbage box of low score ranks below every hit, so AP holds ...
        pytest.param(ColourDetector(extra=("garbage", 0.1)), PERFECT, PERFECT, id="a weak false garbage box"),
        # ... a confident one ranks first in each image: 3 false of 9, precision 2/3 at every recall
        pytest.param(ColourDetector(extra=("garbage", 0.99)), (0.67, 1, 0.67, 0.67), PERFECT, id="strong"),
    ],
)
def test_known_metrics(
    detector: ColourDetector, garbage: tuple[float, ...], overflow: tuple[float, ...], bins_set: Path
) -> None:
    result = evaluate(detector, bins_set, taxonomy=TAXONOMY)
    assert set(result.classes) == {"garbage", "overflow"}  # only what the set labels
    assert result.ignored_classes == ["tree"]
    assert result.classes["garbage"].instances == 6 and result.classes["overflow"].instances == 3
    for name, (precision, recall, ap50, ap50_95) in (("garbage", garbage), ("overflow", overflow)):
        got = result.classes[name]
        assert got.precision == pytest.approx(precision, abs=0.02), name
        assert got.recall == pytest.approx(recall, abs=0.02), name
        assert got.ap50 == pytest.approx(ap50, abs=0.02), name
        assert got.ap50_95 == pytest.approx(ap50_95, abs=0.02), name
    assert result.map50 == pytest.approx((garbage[2] + overflow[2]) / 2, abs=0.02)


def test_plots_are_written(bins_set: Path, tmp_path: Path) -> None:
    result = evaluate(ColourDetector(miss_right=True), bins_set, out=tmp_path, taxonomy=TAXONOMY)
    names = {p.name for p in result.plots}
    assert {"PR_curve.png", "confusion_matrix.png", "confusion_matrix_normalized.png"} <= names
    assert all(cv2.imread(str(p)) is not None for p in result.plots)


def test_json_object_shape(bins_set: Path) -> None:
    payload = evaluate(ColourDetector(), bins_set, taxonomy=TAXONOMY).to_json()
    assert set(payload) == {"model", "map50", "map50_95", "classes", "unlabelled_per_image"}
    assert payload["model"] == "colour@0"
    assert set(payload["classes"]["garbage"]) == {"ap50", "ap50_95", "precision", "recall", "instances"}
    json.dumps(payload)


@pytest.mark.parametrize(
    ("detector", "expected"),  # detections per image of classes the set does not label
    [
        pytest.param(ColourDetector(), {"car": 1.0}, id="the unlabelled car of each scene"),
        pytest.param(ColourDetector(extra=("flyer", 0.9)), {"car": 1.0, "flyer": 1.0}, id="a flyer each"),
        pytest.param(ColourDetector(extra=("flyer", 0.05)), {"car": 1.0}, id="below flyer min_confidence"),
    ],
)
def test_detections_of_unlabelled_classes_per_image(
    detector: ColourDetector, expected: dict[str, float], bins_set: Path
) -> None:
    seen = evaluate(detector, bins_set, taxonomy=TAXONOMY).unlabelled_per_image
    assert "garbage" not in seen and "overflow" not in seen  # scored classes are not counted here
    assert {name: count for name, count in seen.items() if count} == expected


@pytest.mark.parametrize(("score", "found"), [(0.9, 1), (0.05, 0)])  # flyer min_confidence is 0.35
def test_detections_where_reviews_confirmed_a_class_absent_are_counted_as_false(
    bins_set: Path, score: float, found: int
) -> None:
    photos = sorted(p.name for p in (bins_set.parent / "images" / "val").iterdir())
    absent = {photos[0]: frozenset({"flyer"}), photos[1]: frozenset({"flyer", "poster"})}
    result = evaluate(ColourDetector(extra=("flyer", score)), bins_set, absent=absent, taxonomy=TAXONOMY)
    assert result.false_detections == {
        "flyer": {"photos": 2, "detections": 2 * found},
        "poster": {"photos": 1, "detections": 0},
    }  # the third photo, not reviewed, is not counted
    assert result.to_json()["confirmed_absent"]["flyer"] == {
        "photos": 2,
        "detections": 2 * found,
        "per_photo": found,
    }


def test_a_limit_counts_only_the_confirmed_absent_classes_of_the_photos_it_looks_at(bins_set: Path) -> None:
    """`evaluate --limit N --reviews FILE` once divided by zero on a class confirmed absent only on
    photos past the limit (0 photos looked at); such a class has no rate to report."""
    photos = sorted(p.name for p in (bins_set.parent / "images" / "val").iterdir())
    absent = {photos[0]: frozenset({"flyer"}), photos[-1]: frozenset({"poster"})}
    result = evaluate(ColourDetector(), bins_set, limit=1, absent=absent, taxonomy=TAXONOMY)
    assert result.false_detections == {"flyer": {"photos": 1, "detections": 0}}
    assert result.to_json()["confirmed_absent"] == {"flyer": {"photos": 1, "detections": 0, "per_photo": 0}}


def test_rename_scores_a_set_class_as_another_taxonomy_class(tmp_path: Path) -> None:
    """win_ad (an alias of poster) read as flyer: the recall of flyers on real window adverts."""
    scene = [Box("poster", (4, 4, 40, 40))]
    data = write_set(tmp_path / "ads", ["win_ad"], {"val": [scene] * 2}, SIZE)
    as_poster = evaluate(ColourDetector(), data, taxonomy=TAXONOMY)
    assert set(as_poster.classes) == {"poster"} and as_poster.classes["poster"].recall == pytest.approx(1)
    as_flyer = evaluate(ColourDetector(), data, rename={"win_ad": "flyer"}, taxonomy=TAXONOMY)
    assert set(as_flyer.classes) == {"flyer"}
    assert as_flyer.classes["flyer"].instances == 2 and as_flyer.classes["flyer"].recall == pytest.approx(0)
    found = evaluate(
        ColourDetector(extra=("flyer", 0.9)), data, rename={"win_ad": "flyer"}, taxonomy=TAXONOMY
    )
    assert found.classes["flyer"].precision == pytest.approx(0)  # a flyer box elsewhere is no hit


def test_a_class_without_instances_is_not_averaged(tmp_path: Path) -> None:
    data = write_set(tmp_path / "set", ["garbage", "bus"], {"val": [SCENE]}, SIZE)
    result = evaluate(ColourDetector(), data, taxonomy=TAXONOMY)
    assert result.classes["bus"].instances == 0 and result.classes["bus"].ap50 is None
    assert result.map50 == pytest.approx(result.classes["garbage"].ap50)


def test_a_set_without_taxonomy_classes_is_refused(tmp_path: Path) -> None:
    data = write_set(tmp_path / "set", ["window", "door"], {"val": [SCENE]}, SIZE)
    with pytest.raises(TaxonomyError, match="none of its classes"):
        evaluate(ColourDetector(), data, taxonomy=TAXONOMY)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("0 0.5 0.5 0.5 0.25", [25, 37.5, 75, 62.5]),  # cx cy w h
        ("0 0.1 0.2 0.9 0.2 0.5 0.8", [10, 20, 90, 80]),  # a polygon: its bounding box
    ],
)
def test_read_labels(tmp_path: Path, line: str, expected: list[float]) -> None:
    image = tmp_path / "images" / "a.png"
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text(line + "\n", encoding="utf-8")
    classes, boxes = read_labels(image, (100, 100), {0: 3})
    assert classes.tolist() == [3]
    assert boxes[0].tolist() == pytest.approx(expected)


def test_a_malformed_label_line_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n0 0.5 0.5\n", encoding="utf-8")
    with pytest.raises(TaxonomyError, match=r"a\.txt:2"):
        read_labels(tmp_path / "images" / "a.png", (100, 100), {0: 0})


@pytest.mark.slow
def test_cli_json_and_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real command on a real (tiny) ONNX model: JSON alone on stdout, metrics in the card."""
    folder = tiny_model(tmp_path / "models")
    data = write_set(tmp_path / "bins", ["garbage", "full_bin", "tree"], {"val": [SCENE] * 2}, SIZE)
    capsys.readouterr()  # what training and export printed
    out = tmp_path / "plots"
    argv = ["--data", str(data), "--model", str(folder), "--json", "--card", "--out", str(out)]
    assert main(["evaluate", *argv]) == 0
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert payload["model"].startswith("tiny@") and set(payload["classes"]) == {"garbage", "overflow"}
    assert "tree" in captured.err  # the ignored class is reported
    card = read_card(folder)
    assert card["metrics"]["bins"]["classes"]["garbage"]["instances"] == 4
    assert card["metrics"]["bins"]["ignored_classes"] == ["tree"]
    # the same digest a training card records for the split: scores and training data can be matched
    mix = json.loads(
        (prepare_data(data, tmp_path / "cache", taxonomy=TAXONOMY).parent / "sources.json").read_text()
    )
    assert card["metrics"]["bins"]["labels_sha256"] == mix["bins"]["labels_sha256"]["val"]
    assert (out / "confusion_matrix.png").exists()
    yaml.safe_dump(card)  # the card stays plain YAML
