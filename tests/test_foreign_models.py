"""Model files streetorder did not make, passed where a model is taken: each refused in one line
naming the file and what it is, before any runtime unpickles it; a detector of another taxonomy
(COCO) runs on the classes that map. The files are real: ultralytics models built from its own
yaml files, exported to ONNX, a pickle that runs code when loaded, broken and empty files."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import ultralytics
import yaml
from configured import MODELS, TAXONOMY
from onnx import TensorProto, helper
from ultralytics import YOLO
from ultralytics.nn.tasks import ClassificationModel, DetectionModel, PoseModel, SegmentationModel

from serve.cli.main import main
from vision.detect.backends import load_detector, to_detections
from vision.detect.registry import UNMAPPED, ModelError, taxonomy_class_map

COCO = yaml.safe_load((Path(ultralytics.__file__).parent / "cfg/datasets/coco.yaml").read_text())["names"]


class RunsCode:
    """Pickles as a call of os.system: loading it with torch.load(weights_only=False) runs the command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def checkpoint(path: Path, model: torch.nn.Module, names: list[str] | None = None) -> Path:
    if names is not None:
        model.names = dict(enumerate(names))  # type: ignore[assignment]
    torch.save({"model": model, "epoch": -1}, path)
    return path


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("foreign")
    checkpoint(root / "coco.pt", DetectionModel("yolo11n.yaml", nc=80, verbose=False), list(COCO.values()))
    checkpoint(root / "cls.pt", ClassificationModel("yolo11n-cls.yaml", nc=10, verbose=False))
    checkpoint(root / "seg.pt", SegmentationModel("yolo11n-seg.yaml", nc=80, verbose=False))
    checkpoint(root / "pose.pt", PoseModel("yolo11n-pose.yaml", verbose=False))
    checkpoint(root / "pets.pt", DetectionModel("yolo11n.yaml", nc=2, verbose=False), ["cat", "dog"])
    whole = (root / "coco.pt").read_bytes()
    (root / "truncated.pt").write_bytes(whole[: len(whole) // 2])
    (root / "empty.pt").write_bytes(b"")
    (root / "plain.pt").write_bytes(pickle.dumps({"model": 1}))
    with zipfile.ZipFile(root / "archive.pt", "w") as archive:
        archive.writestr("notes.txt", "a zip, not a checkpoint")
    torch.save({"model": RunsCode(root / "RAN")}, root / "hostile.pt")
    (root / "folder.pt").mkdir()
    for name in ("coco", "seg"):
        YOLO(str(root / f"{name}.pt")).export(format="onnx", imgsz=64, simplify=False, verbose=False)
    grey = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 1, 64, 64])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, 64, 64])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "g", [grey], [out])
    onnx.save(helper.make_model(graph), root / "grey.onnx")
    (root / "text.onnx").write_text("not an ONNX file")
    return root


REFUSED = [
    (
        "cls.pt",
        "cls.pt: a classification model (ClassificationModel); streetorder needs a YOLO detection model",
    ),
    ("seg.pt", "seg.pt: a segmentation model (SegmentationModel)"),
    ("pose.pt", "pose.pt: a pose model (PoseModel)"),
    ("seg.onnx", "seg.onnx: a segmentation model (ONNX task 'segment')"),
    ("pets.pt", "pets.pt: none of its classes (cat, dog) is a taxonomy class or an alias"),
    ("truncated.pt", "truncated.pt: not a torch checkpoint (not a complete zip archive"),
    ("empty.pt", "empty.pt: the file is empty"),
    ("plain.pt", "plain.pt: not a torch checkpoint"),
    ("archive.pt", "archive.pt: a zip archive, but not a torch checkpoint (no data.pkl in it)"),
    ("hostile.pt", "hostile.pt: refused unloaded: it imports posix.system"),
    ("folder.pt", "folder.pt: holds neither model.onnx nor model.pt"),
    ("grey.onnx", "grey.onnx: input 1x1x64x64; a YOLO detector takes 1x3xHxW images"),
    ("text.onnx", "text.onnx: not an ONNX model"),
]


@pytest.mark.parametrize(("file", "message"), REFUSED)
def test_a_model_file_that_is_not_a_detector_of_ours_is_refused_in_one_line(
    foreign: Path, file: str, message: str
) -> None:
    """The door of scan, the service and its reload, evaluate, watch and promote: load_detector."""
    with pytest.raises(ModelError) as refused:
        load_detector(foreign / file, models_dir=MODELS, taxonomy=TAXONOMY)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert not (foreign / "RAN").exists()  # the hostile pickle was never unpickled


@pytest.mark.parametrize("file", ["hostile.pt", "cls.pt", "truncated.pt", "seg.onnx"])
def test_scan_refuses_a_foreign_model_before_reading_photos(
    foreign: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], file: str
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    argv = ["scan", str(photos), "--model", str(foreign / file), "--db", f"sqlite:///{tmp_path}/c.db"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2  # scan's code for a --model it cannot use
    assert dict(REFUSED)[file] in capsys.readouterr().err
    assert not (foreign / "RAN").exists()


@pytest.mark.parametrize(
    ("file", "door", "message"),
    [
        ("hostile.pt", "export", dict(REFUSED)["hostile.pt"]),
        ("seg.pt", "export", dict(REFUSED)["seg.pt"]),
        ("coco.pt", "export", "coco.pt: its training data (none recorded) is not here and no card.yaml"),
        ("hostile.pt", "train", dict(REFUSED)["hostile.pt"]),
        ("coco.onnx", "train", "coco.onnx: an ONNX export cannot be trained from; start from the .pt"),
    ],
)
def test_export_and_train_refuse_a_foreign_checkpoint(
    foreign: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    file: str,
    door: str,
    message: str,
) -> None:
    from serve.cases.settings import get_settings

    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("STREETORDER_MODELS_DIR", str(models))
    if door == "export":
        argv = ["export", "--model", str(foreign / file), "--name", "foreign"]
    else:
        data = tmp_path / "data.yaml"
        data.write_text(
            yaml.safe_dump({"path": str(tmp_path), "train": "images", "val": "images", "names": ["car"]})
        )
        argv = ["train", "--data", str(data), "--model", str(foreign / file), "--epochs", "1"]
        argv += ["--cache-dir", str(tmp_path / "cache"), "--project", str(tmp_path / "runs")]
    get_settings.cache_clear()
    try:
        assert main(argv) == 1
    finally:
        get_settings.cache_clear()
    assert message in capsys.readouterr().err
    assert list(models.iterdir()) == [] and not (tmp_path / "runs").exists()  # nothing half-made
    assert not (foreign / "RAN").exists()


def test_a_coco_detector_runs_on_the_classes_that_map(
    foreign: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """car, bus, truck, motorcycle, bicycle are ours; person and the 74 others are dropped, said once."""
    for file in ("coco.pt", "coco.onnx"):
        detector = load_detector(foreign / file, models_dir=MODELS, taxonomy=TAXONOMY)
        assert detector.names == TAXONOMY.names
        assert f"{file}: 75 of its 80 classes are not in" in caplog.text
    class_map = taxonomy_class_map(list(COCO.values()), "coco", TAXONOMY, drop_unknown=True)
    assert [TAXONOMY.names[i] for i in class_map if i != UNMAPPED] == [
        "bicycle",
        "car",
        "motorcycle",
        "bus",
        "truck",
    ]
    person, car = 0, 2
    boxes = np.array([[0, 0, 10, 10], [5, 5, 20, 20]], dtype=np.float32)
    found = to_detections(boxes, np.array([0.9, 0.8]), np.array([person, car]), class_map, TAXONOMY.names)
    assert list(found.data["class_name"]) == ["car"] and found.xyxy.tolist() == [[5, 5, 20, 20]]


@pytest.mark.parametrize("names", [list(COCO.values()), ["car", "garbage"]])
def test_training_starts_from_a_foreign_detector_with_a_new_head(tmp_path: Path, names: list[str]) -> None:
    """A COCO detector, or one of a few of our classes in another order: ultralytics transfers the
    layers whose shapes match and starts the class layer for the taxonomy anew."""
    from synthetic import train_tiny
    from ultralytics.utils.patches import torch_load

    start = checkpoint(
        tmp_path / "start.pt", DetectionModel("yolo11n.yaml", nc=len(names), verbose=False), names
    )
    run = train_tiny(tmp_path, "foreign", model=str(start))
    trained = torch_load(run / "weights" / "last.pt", map_location="cpu")
    model = trained["ema"] or trained["model"]
    assert list(model.names.values()) == TAXONOMY.names and model.model[-1].nc == len(TAXONOMY.names)
    assert trained["train_args"]["model"] == str(start)


def test_checkpoints_are_unpickled_weights_only_in_every_process(tmp_path: Path) -> None:
    """The screen above is not a sandbox; ultralytics' restricted loading (weights_only against its
    allow-list) is the guard, switched on by importing vision before ultralytics reads its flag."""
    import ultralytics.utils

    assert ultralytics.utils.SAFE_LOAD  # this test process, whatever imported ultralytics first
    script = (
        "import sys; from pathlib import Path; from vision.modelops.checkpoints import load_checkpoint; "
        "import ultralytics.utils as u; load_checkpoint(Path(sys.argv[1])); print(u.SAFE_LOAD)"
    )
    env = {k: v for k, v in os.environ.items() if k != "ULTRALYTICS_SAFE_LOAD"}
    current = yaml.safe_load((MODELS / "registry.yaml").read_text(encoding="utf-8"))["current"]
    shipped = MODELS / current / "model.pt"
    run = subprocess.run(
        [sys.executable, "-c", script, str(shipped)], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith("True")
