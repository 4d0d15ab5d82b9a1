from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from configured import CONFIGS, MODELS, TAXONOMY
from synthetic import SOURCES, draw, random_boxes, tiny_model

from vision.detect.backends import decode_yolo, letterbox, load_detector, unletterbox
from vision.detect.registry import ModelError, find_model, model_version, taxonomy_class_map

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("shape", "size", "scale", "pad"),
    [
        ((640, 640), 320, 0.5, (0, 0)),
        ((480, 720), 320, 320 / 720, (0, 53)),  # landscape: padded top and bottom
        ((720, 480), 320, 320 / 720, (53, 0)),  # portrait: padded left and right
        ((100, 50), 320, 3.2, (80, 0)),  # small images are scaled up
    ],
)
def test_letterbox_and_back(shape: tuple[int, int], size: int, scale: float, pad: tuple[int, int]) -> None:
    image = np.full((*shape, 3), 200, np.uint8)
    padded, got_scale, got_pad = letterbox(image, size)
    assert padded.shape == (size, size, 3)
    assert got_scale == pytest.approx(scale) and got_pad == pad
    assert padded[size // 2, size // 2, 0] == 200  # the image sits in the middle, padding is grey
    box = np.array([[10.0, 20.0, 40.0, 45.0]], np.float32)
    in_input = box * got_scale + np.array([pad[0], pad[1], pad[0], pad[1]])
    assert unletterbox(in_input, got_scale, got_pad, shape) == pytest.approx(box, abs=1e-3)


def head_output(rows: list[tuple[float, float, float, float, int, float]], classes: int = 3) -> np.ndarray:
    """A YOLO head output (4 + classes, anchors) from (cx, cy, w, h, class, score) rows."""
    out = np.zeros((4 + classes, len(rows)), np.float32)
    for i, (cx, cy, w, h, cls, score) in enumerate(rows):
        out[:4, i] = cx, cy, w, h
        out[4 + cls, i] = score
    return out


@pytest.mark.parametrize(
    ("rows", "kept"),
    [
        ([(50, 50, 20, 20, 0, 0.9), (51, 50, 20, 20, 0, 0.8)], [0]),  # same class, overlapping: NMS
        ([(50, 50, 20, 20, 0, 0.9), (51, 50, 20, 20, 1, 0.8)], [0, 1]),  # other class: class-aware
        ([(50, 50, 20, 20, 0, 0.9), (90, 90, 10, 10, 0, 0.2)], [0]),  # under the confidence
        ([(50, 50, 20, 20, 2, 0.3), (90, 90, 10, 10, 1, 0.6)], [1, 0]),  # best first
    ],
)
def test_decode_yolo(rows: list[tuple[float, float, float, float, int, float]], kept: list[int]) -> None:
    xyxy, scores, classes = decode_yolo(head_output(rows), confidence=0.25, iou=0.7, max_detections=300)
    assert scores.tolist() == pytest.approx([rows[i][5] for i in kept])
    assert classes.tolist() == [rows[i][4] for i in kept]
    cx, cy, w, h = rows[kept[0]][:4]
    assert xyxy[0].tolist() == pytest.approx([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def test_class_map_refuses_an_unknown_class_or_drops_one_of_a_file_without_a_card(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert taxonomy_class_map(["bike", "garbage"], "m", taxonomy=TAXONOMY).tolist() == [6, 0]
    with pytest.raises(ModelError, match="model class 1 'pothole'"):
        taxonomy_class_map(["garbage", "pothole"], "m.onnx", taxonomy=TAXONOMY)
    assert taxonomy_class_map(["garbage", "pothole"], "m.onnx", TAXONOMY, drop_unknown=True).tolist() == [
        0,
        -1,
    ]
    assert "m.onnx: 1 of its 2 classes are not in" in caplog.text
    assert "(pothole); used: garbage->garbage" in caplog.text
    with pytest.raises(ModelError, match=r"none of its classes \(pothole, tree\) is a taxonomy class"):
        taxonomy_class_map(["pothole", "tree"], "m.onnx", TAXONOMY, drop_unknown=True)


def test_an_unknown_model_name_lists_the_models(tmp_path: Path) -> None:
    (tmp_path / "street-v0").mkdir()
    with pytest.raises(ModelError, match=r"no model 'nope'.*street-v0"):
        find_model("nope", models_dir=tmp_path)


@pytest.mark.parametrize(
    ("name", "backend", "message"),
    [
        ("junk.onnx", "onnx", "junk.onnx: not an ONNX model (DecodeError)"),
        ("junk.onnx", "openvino", "junk.onnx: not an ONNX model"),
        ("junk.pt", "ultralytics", "junk.pt: not a torch checkpoint"),
        ("empty.onnx", "onnx", "empty.onnx: the file is empty"),
    ],
)
def test_a_weights_file_no_runtime_can_read_is_a_model_error_naming_it(
    tmp_path: Path, name: str, backend: str, message: str
) -> None:
    """A scan, the service or `evaluate` given a broken file says so in one line, not a traceback."""
    (tmp_path / name).write_bytes(b"" if name.startswith("empty") else b"junk, not weights\n" * 10)
    with pytest.raises(ModelError) as refused:
        load_detector(tmp_path / name, backend, models_dir=tmp_path, taxonomy=TAXONOMY)
    assert message in str(refused.value)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(3)
    return draw(64, random_boxes(rng, 64, SOURCES["bins"]["draws"], 3), seed=3)


@pytest.mark.slow
def test_onnx_path_does_not_import_torch(model_dir: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "from pathlib import Path\n"
        "from vision.core.taxonomy import load_taxonomy\n"
        "from vision.detect.backends import load_detector\n"
        f"taxonomy = load_taxonomy(Path({str(CONFIGS / 'taxonomy.yaml')!r}))\n"
        f"detector = load_detector({str(model_dir)!r}, models_dir=Path({str(MODELS)!r}), taxonomy=taxonomy)\n"
        "detections = detector(np.zeros((48, 80, 3), np.uint8))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(type(detector).__name__, detector.version, len(detections))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OnnxDetector tiny@")


@pytest.mark.slow
def test_backends_agree(model_dir: Path, image: np.ndarray) -> None:
    """The ONNX export and the .pt give the same detections on the same image (square: same input).

    A one-epoch model scores below 0.001 everywhere, hence the low threshold. Its many boxes of
    near-equal scores may survive NMS differently, so the comparison keeps the clearly leading ones
    (at least half the best score); export itself compares the raw outputs (vision/modelops/export.py)."""
    onnx = load_detector(model_dir, backend="onnx", confidence=1e-5, models_dir=MODELS, taxonomy=TAXONOMY)
    torch_model = load_detector(
        model_dir, backend="ultralytics", confidence=1e-5, models_dir=MODELS, taxonomy=TAXONOMY
    )
    a, b = onnx(image), torch_model(image)
    assert len(a) > 0 and len(b) > 0
    a, b = (d[d.confidence >= a.confidence.max() / 2] for d in (a, b))
    assert len(a) == len(b)
    assert np.abs(a.xyxy - b.xyxy).max() < 0.05
    assert np.abs(a.confidence - b.confidence).max() < 1e-3
    assert a.class_id.tolist() == b.class_id.tolist()
    assert set(a.class_id) <= set(range(len(TAXONOMY.names)))
    assert a.data["class_name"].tolist() == [TAXONOMY.names[i] for i in a.class_id]


@pytest.mark.slow
def test_version_names_the_weights(model_dir: Path) -> None:
    detector = load_detector(model_dir, models_dir=MODELS, taxonomy=TAXONOMY)
    assert detector.version == model_version("tiny", model_dir / "model.onnx")
    assert detector.input_size == 64 and detector.names == TAXONOMY.names


@pytest.mark.slow
def test_a_card_with_a_foreign_class_is_refused(model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "foreign"
    shutil.copytree(model_dir, copy)
    card = yaml.safe_load((copy / "card.yaml").read_text(encoding="utf-8"))
    card["classes"][2] = "pothole"
    (copy / "card.yaml").write_text(yaml.safe_dump(card), encoding="utf-8")
    with pytest.raises(ModelError, match="'pothole'"):
        load_detector(copy, models_dir=MODELS, taxonomy=TAXONOMY)


@pytest.mark.slow
def test_bad_input_is_named(model_dir: Path) -> None:
    detector = load_detector(model_dir, models_dir=MODELS, taxonomy=TAXONOMY)
    with pytest.raises(ValueError, match=r"BGR uint8 image of shape \(H, W, 3\), got float64"):
        detector(np.zeros((10, 10, 3)))
    with pytest.raises(ModelError, match="no weights for backend 'ultralytics'"):
        load_detector(model_dir / "model.onnx", backend="ultralytics", models_dir=MODELS, taxonomy=TAXONOMY)
