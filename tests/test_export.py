from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from configured import MODELS, TAXONOMY
from synthetic import SOURCES, draw, random_boxes, tiny_model, tiny_run, write_set
from ultralytics import YOLO

from serve.cli.main import main
from vision.core.files import file_sha256
from vision.detect.backends import OnnxDetector, letterbox, load_detector, to_input_tensor
from vision.detect.registry import read_card, update_card
from vision.modelops.export import export_model, package

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("models"))


@pytest.mark.parametrize("seed", [1, 2])
def test_onnx_output_matches_pytorch(model_dir: Path, seed: int) -> None:
    """Raw head outputs of ONNX Runtime and PyTorch on the same letterboxed image."""
    rng = np.random.default_rng(seed)
    image = draw(64, random_boxes(rng, 64, SOURCES["roads"]["draws"], 3), seed=seed)
    detector = load_detector(model_dir, backend="onnx", models_dir=MODELS, taxonomy=TAXONOMY)
    assert isinstance(detector, OnnxDetector)
    onnx_out, _, _ = detector.raw(image)
    network = YOLO(str(model_dir / "model.pt")).model.float().eval()  # type: ignore[union-attr]
    with torch.no_grad():
        torch_out = network(torch.from_numpy(to_input_tensor(letterbox(image, 64)[0])))
    torch_out = (torch_out[0] if isinstance(torch_out, tuple | list) else torch_out)[0].numpy()
    assert onnx_out.shape == torch_out.shape == (4 + len(detector.names), 84)  # 8x8 + 4x4 + 2x2 anchors
    assert np.abs(onnx_out[:4] - torch_out[:4]).max() < 1e-2  # box pixels
    assert np.abs(onnx_out[4:] - torch_out[4:]).max() < 1e-4  # class scores


def test_package_strips_and_writes_the_card(model_dir: Path) -> None:
    card = read_card(model_dir)
    checkpoint = torch.load(model_dir / "model.pt", map_location="cpu", weights_only=False)
    assert checkpoint["optimizer"] is None and checkpoint["ema"] is None
    assert card["status"] == "final"  # the tiny run finished; a running one is "provisional (epoch N ...)"
    assert card["input_size"] == 64
    assert set(card["training"]["data"]) == {"bins", "roads"}
    assert card["training"]["data"]["bins"]["labelled_names"] == ["garbage", "overflow"]
    assert card["training"]["data"]["bins"]["ignored_classes"] == ["tree"]
    assert card["licences"]["roads"].startswith("Source: synthetic rectangles")
    settings = "--epochs 1 --model yolo11n.yaml --imgsz 64 --batch 4 --device cpu --seed 0 --name tiny"
    assert card["training"]["recipe"].startswith("streetorder train --data ")
    assert card["training"]["recipe"].endswith(settings)
    assert card["weights"] == {
        "model.pt": file_sha256(model_dir / "model.pt"),
        "model.onnx": file_sha256(model_dir / "model.onnx"),
    }
    onnx = card["exports"]["onnx"]
    assert (onnx["file"], onnx["opset"], onnx["imgsz"]) == ("model.onnx", 17, 64)
    assert onnx["parity"]["images"] == 1  # no data given: one noise image
    assert onnx["parity"]["max_box_px"] < 1e-2 and onnx["parity"]["max_score"] < 1e-4


def test_repackaging_keeps_metrics_and_exports_only_for_the_same_weights(tmp_path: Path) -> None:
    best = tiny_run() / "weights" / "best.pt"
    folder = package(best, "again", models_dir=tmp_path)
    export_model(folder)
    update_card(folder, metrics={"bins": {"map50": 0.5}})
    package(best, "again", models_dir=tmp_path)
    assert read_card(folder)["metrics"] == {"bins": {"map50": 0.5}}
    assert (folder / "model.onnx").exists() and "model.onnx" in read_card(folder)["weights"]

    changed = torch.load(best, map_location="cpu", weights_only=False)
    next(changed["model"].parameters()).data += 0.01  # other weights, same run
    torch.save(changed, tmp_path / "changed.pt")
    package(tmp_path / "changed.pt", "again", models_dir=tmp_path, status="test")
    card = read_card(folder)
    assert "metrics" not in card and "exports" not in card and card["status"] == "test"
    assert not (folder / "model.onnx").exists()  # a stale export would be served under the new card
    assert card["weights"] == {"model.pt": file_sha256(folder / "model.pt")}


def test_int8_needs_a_measured_check(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["export", "--model", str(model_dir), "--int8"])
    assert "--int8 needs --data" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"junk, not a checkpoint", "probe", "not a torch checkpoint"),
        (None, "probe", "no such checkpoint"),
        (b"junk", "../../outside", "model name '../../outside'"),
        (b"junk", ".hidden", "model name '.hidden'"),
    ],
)
def test_export_refuses_a_bad_checkpoint_or_name_and_leaves_no_folder(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: bytes | None,
    name: str,
    message: str,
) -> None:
    from serve.cases.settings import get_settings

    models = tmp_path / "work" / "models"
    models.mkdir(parents=True)
    checkpoint = tmp_path / "given.pt"
    if content is not None:
        checkpoint.write_bytes(content)
    monkeypatch.setenv("STREETORDER_MODELS_DIR", str(models))
    get_settings.cache_clear()
    try:
        assert main(["export", "--model", str(checkpoint), "--name", name]) == 1
    finally:
        get_settings.cache_clear()
    assert message in capsys.readouterr().err
    assert list(models.iterdir()) == [] and not (tmp_path / "outside").exists()


def bins_set(root: Path) -> Path:
    """A 4 + 4 image garbage-cn-like set for the INT8 calibration and check."""
    rng = np.random.default_rng(5)
    draws = SOURCES["bins"]["draws"]
    scenes = {split: [random_boxes(rng, 64, draws, 2) for _ in range(4)] for split in ("train", "val")}
    return write_set(root / "bins", ["garbage", "full_bin"], scenes, 64)


def test_int8_check_covers_each_set_given(model_dir: Path, tmp_path: Path) -> None:
    """A set vouches only for the classes it labels: each --data is checked, the worst loss decides."""
    first, second = bins_set(tmp_path / "a"), bins_set(tmp_path / "b")
    argv = ["--model", str(model_dir), "--int8", "--data", str(first), "--data", str(second)]
    assert main(["export", *argv, "--calibration", "8"]) == 0
    check = read_card(model_dir)["exports"]["int8"]["check"]
    assert [one["data"] for one in check["sets"]] == [str(first), str(second)]
    assert check["calibration_images"] == 8  # 4 train images of each set
    drops = [one["map50_fp32"] - one["map50_int8"] for one in check["sets"]]
    assert check["max_map50_drop"] == pytest.approx(max(drops), abs=1e-3)


def test_int8_export_prints_the_check(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bins_set(tmp_path)
    argv = ["--model", str(model_dir), "--int8", "--data", str(data), "--calibration", "4"]
    assert main(["export", *argv]) == 0
    out = capsys.readouterr().out
    assert "fp32 (model.onnx)" in out and "int8 (model.int8.onnx)" in out
    assert "INT8 vs FP32" in out
    check = read_card(model_dir)["exports"]["int8"]["check"]
    assert check["images"] == 4 and check["calibration_images"] == 4
    assert 0 <= check["map50_int8"] <= 1
    assert [one["data"] for one in check["sets"]] == [str(data)]
    assert check["max_map50_drop"] == pytest.approx(check["map50_fp32"] - check["map50_int8"], abs=1e-3)
    int8 = load_detector(model_dir / "model.int8.onnx", models_dir=MODELS, taxonomy=TAXONOMY)
    assert (
        int8.version.startswith("tiny@")
        and int8.version != load_detector(model_dir, models_dir=MODELS, taxonomy=TAXONOMY).version
    )


@pytest.mark.parametrize(
    ("stale_onnx", "int8", "keeps_version"),
    [
        (False, True, True),  # the ONNX the card records is kept: metrics and registry stay valid
        (False, False, True),  # a plain export again too
        (True, True, False),  # an ONNX the card does not record is exported again from model.pt
    ],
)
def test_export_keeps_the_onnx_the_card_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stale_onnx: bool, int8: bool, keeps_version: bool
) -> None:
    folder = tiny_model(tmp_path / "models")
    onnx_path = folder / "model.onnx"
    if stale_onnx:
        onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")
    before = file_sha256(onnx_path)
    argv = ["--model", str(folder), "--data", str(bins_set(tmp_path))]
    argv += ["--int8", "--calibration", "4"] if int8 else []
    assert main(["export", *argv]) == 0
    assert ("reusing" in capsys.readouterr().out) == keeps_version
    after = file_sha256(onnx_path)
    assert read_card(folder)["weights"]["model.onnx"] == after
    assert (after == before) == keeps_version


def test_openvino_is_skipped_with_a_message_when_absent(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        import openvino  # noqa: F401
    except ImportError:
        assert main(["export", "--model", str(model_dir), "--format", "openvino"]) == 1
        assert "OpenVINO skipped" in capsys.readouterr().err
    else:
        assert main(["export", "--model", str(model_dir), "--format", "openvino"]) == 0
