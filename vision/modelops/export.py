"""`streetorder export`: package a checkpoint as models/<name>/ and export it for serving.

ONNX is what the scan server runs (ONNX Runtime, CPU, no torch); OpenVINO is written where the
`openvino` extra is installed. INT8 is only written together with a measured accuracy check
against FP32 on a validation set, because static quantization can silently cost recall.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vision.core.files import file_sha256
from vision.core.imageio import read_bgr
from vision.core.taxonomy import Taxonomy
from vision.data.datamix import image_files, read_data_yaml, split_dirs
from vision.detect.backends import letterbox, load_detector, to_input_tensor
from vision.detect.registry import (
    WEIGHTS,
    ModelError,
    check_model_name,
    find_model,
    read_card,
    recorded_weights,
    update_card,
    write_card,
)

ONNX_OPSET = 17  # ONNX Runtime 1.31 runs it fully on CPU, and its static INT8 quantizer accepts it
INT8_FILE = "model.int8.onnx"
DYNAMIC_FILE = "model.dynamic.onnx"  # any input size: the scan letterboxes to the photo's aspect
PARITY_IMAGES = 16  # validation images on which ONNX output is compared with PyTorch
OPENVINO_FOLDER = "model_openvino_model"  # the name ultralytics gives the IR folder of model.pt


def package(checkpoint: Path, name: str, models_dir: Path, status: str | None = None) -> Path:
    """Copy a training checkpoint into models/<name>/model.pt (optimizer stripped) with a card.

    The checkpoint is copied first: a running training rewrites last.pt every epoch.
    """
    from ultralytics.utils.torch_utils import strip_optimizer

    from vision.modelops.checkpoints import load_checkpoint
    from vision.modelops.train import training_card

    folder = models_dir / check_model_name(name)
    if not checkpoint.is_file():
        raise ModelError(f"{checkpoint}: no such checkpoint")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / checkpoint.name
        shutil.copy2(checkpoint, copy)
        loaded = load_checkpoint(copy, named=checkpoint)[0]
        epoch = int(loaded.get("epoch", -1))
        run_card_path = checkpoint.parent / "card.yaml"
        run_card = yaml.safe_load(run_card_path.read_text(encoding="utf-8")) if run_card_path.exists() else {}
        data = (loaded.get("train_args") or {}).get("data")
        if not (data and Path(data).exists()) and not run_card.get("training"):
            raise ModelError(  # before the folder is made: a refused checkpoint leaves nothing
                f"{checkpoint}: its training data {data or '(none recorded)'} is not here and no card.yaml "
                f"is beside it: export packages what `streetorder train` made; train from this file first "
                f"(`streetorder train --model {checkpoint}`)"
            )
        folder.mkdir(parents=True, exist_ok=True)  # only for a checkpoint that loads: no empty folders
        previous = read_card(folder)
        stripped = strip_optimizer(copy, s=str(folder / WEIGHTS["ultralytics"]))
    if not stripped:
        raise ModelError(f"{checkpoint}: not an ultralytics checkpoint")
    args = stripped["train_args"]
    results = stripped.get("train_results") or {}
    epochs_done = int((results.get("epoch") or [epoch + 1])[-1])
    seconds = float((results.get("time") or [0.0])[-1])
    if status is None:
        host = "CPU " if str(args.get("device")) == "cpu" else ""
        running = f"provisional (epoch {epochs_done} of the running {host}training)"
        status = "final" if epoch == -1 else running
    settings = (run_card.get("training") or {}).get("settings") or {
        k: args.get(k) for k in ("model", "data", "epochs", "time", "imgsz", "batch", "device", "seed")
    }
    if args.get("data") and Path(args["data"]).exists():
        card = training_card(Path(args["data"]), settings, seconds)
        card["training"]["recipe"] = recipe(args, run_name=checkpoint.parent.parent.name)
    else:  # trained elsewhere (a GPU relay leg): its card made there holds
        card = {k: run_card[k] for k in ("classes", "input_size", "training", "licences") if k in run_card}
    if run_card.get("training"):  # the run's own record (and an average's inputs and recipe) wins
        kept = ("hardware", "seconds", "torch", "averaged_from", "recipe", "relay")
        card["training"].update({k: v for k, v in run_card["training"].items() if k in kept})
    card["training"]["epochs_completed"] = epochs_done
    card["training"]["checkpoint"] = str(checkpoint)
    card["training"]["last_epoch_val"] = {  # ultralytics' own val over the whole mix, for reference
        k.removeprefix("metrics/").removesuffix("(B)"): v[-1]
        for k, v in results.items()
        if k.startswith("metrics/")
    }
    write_card(folder, {"name": name, "status": status, **card, **_carried_over(folder, previous)})
    return folder


def recipe(train_args: dict[str, Any], run_name: str) -> str:
    """The command that trains this model again: the mix file in configs/ and the run's settings."""
    data = Path(train_args["data"])
    mix = read_data_yaml(data).get("mix") if data.exists() else None
    source = Path("configs/datasets") / f"{mix}.yaml" if mix else data  # a built mix names its mix file
    budget = f"--hours {train_args['time']}" if train_args.get("time") else f"--epochs {train_args['epochs']}"
    options = " ".join(f"--{k} {train_args.get(k)}" for k in ("model", "imgsz", "batch", "device", "seed"))
    return f"streetorder train --data {source} {budget} {options} --name {run_name}"


def _carried_over(folder: Path, previous: dict[str, Any]) -> dict[str, Any]:
    """Card sections that still hold for the newly packaged weights.

    Re-packaging the same weights keeps their metrics and exports. New weights make both stale,
    and their old exports are deleted: `load_detector` would otherwise serve the old ONNX under
    the new card.
    """
    sha = file_sha256(folder / WEIGHTS["ultralytics"])
    recorded = recorded_weights(previous, folder).get(WEIGHTS["ultralytics"])
    if recorded is not None and recorded.sha256 == sha:
        return {k: previous[k] for k in ("weights", "metrics", "exports") if k in previous}
    for stale in (folder / WEIGHTS["onnx"], folder / INT8_FILE, folder / DYNAMIC_FILE):
        stale.unlink(missing_ok=True)
    shutil.rmtree(folder / OPENVINO_FOLDER, ignore_errors=True)
    return {"weights": {WEIGHTS["ultralytics"]: sha}}


def export_onnx(weights: Path, imgsz: int, opset: int = ONNX_OPSET, dynamic: bool = False) -> Path:
    """YOLO .pt -> .onnx beside it: fixed 1x3ximgszximgsz input, raw head output, slimmed.

    `dynamic`: any input height and width instead (model.dynamic.onnx), exported from a copy so
    that the fixed model.onnx beside it stays as it is.
    """
    from ultralytics import YOLO

    if not dynamic:
        written = YOLO(str(weights), task="detect").export(
            format="onnx", imgsz=imgsz, opset=opset, simplify=True, dynamic=False, nms=False, device="cpu"
        )
        return Path(written)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / weights.name
        shutil.copy2(weights, copy)
        written = YOLO(str(copy), task="detect").export(
            format="onnx", imgsz=imgsz, opset=opset, simplify=True, dynamic=True, nms=False, device="cpu"
        )
        return Path(shutil.move(written, weights.with_name(DYNAMIC_FILE)))


def export_openvino(weights: Path, imgsz: int) -> Path | None:
    """OpenVINO IR folder beside the weights, or None (with a message) where openvino is absent."""
    if importlib.util.find_spec("openvino") is None:
        print(
            "export: OpenVINO skipped: the 'openvino' package is not installed "
            "(pip install 'streetorder[openvino]' to enable it)",
            file=sys.stderr,
        )
        return None
    from ultralytics import YOLO

    return Path(YOLO(str(weights), task="detect").export(format="openvino", imgsz=imgsz, device="cpu"))


def export_model(
    folder: Path,
    fmt: str = "onnx",
    imgsz: int | None = None,
    check_images: list[Path] | None = None,
    dynamic: bool = False,
) -> Path | None:
    """Export a model folder's model.pt and record the export (and the ONNX sha256) in its card.

    An ONNX export is checked against PyTorch on `check_images` (or one noise image) first.
    One the card already records for these weights and size is kept: a new export is not
    byte-identical, so it would be a new model version and orphan the card's metrics and the
    registry's record of this one.
    A dynamic export is only checked and printed: it is a local speed-up (`streetorder scan` uses
    it where it is faster), made from the same weights, not another version of the model.
    """
    weights = find_model(folder, folder.parent).weights_for("ultralytics")
    imgsz = imgsz or int(read_card(folder).get("input_size") or 640)
    if fmt == "openvino":
        written = export_openvino(weights, imgsz)
        if written is not None:
            update_card(folder, exports={"openvino": {"folder": written.name, "imgsz": imgsz}})
        return written
    kept = None if dynamic else current_onnx(folder, imgsz)
    if kept is not None:
        print(f"reusing {kept}: the export the card records for these weights (same sha256)")
        return kept
    written = export_onnx(weights, imgsz, dynamic=dynamic)
    parity = onnx_parity(weights, written, check_images or [], imgsz)
    print(
        f"ONNX vs PyTorch on {parity['images']} image(s): max |diff| {parity['max_box_px']:.2e} px "
        f"(boxes), {parity['max_score']:.2e} (scores)"
    )
    if dynamic:
        return written
    update_card(
        folder,
        weights={WEIGHTS["onnx"]: file_sha256(written)},
        exports={"onnx": {"file": written.name, "opset": ONNX_OPSET, "imgsz": imgsz, "parity": parity}},
    )
    return written


def current_onnx(folder: Path, imgsz: int) -> Path | None:
    """The folder's model.onnx if the card records it, and the model.pt it came from, as the files
    now there (same sha256) at `imgsz`; else None."""
    card = read_card(folder)
    recorded = {file: record.sha256 for file, record in recorded_weights(card, folder).items()}
    size = ((card.get("exports") or {}).get("onnx") or {}).get("imgsz")
    files = [folder / WEIGHTS["ultralytics"], folder / WEIGHTS["onnx"]]
    if size != imgsz or not all(f.exists() and recorded.get(f.name) == file_sha256(f) for f in files):
        return None
    return files[1]


def onnx_parity(weights: Path, onnx_path: Path, images: list[Path], imgsz: int = 640) -> dict[str, Any]:
    """Largest difference of the raw head outputs, ONNX Runtime vs PyTorch, on the same inputs
    (at the ONNX file's input size, or `imgsz` square where its input size is dynamic)."""
    import onnxruntime as ort
    import torch
    from ultralytics import YOLO

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    model_input = session.get_inputs()[0]
    size = model_input.shape[2] if isinstance(model_input.shape[2], int) else imgsz
    network: Any = YOLO(str(weights), task="detect").model
    network = network.float().eval()
    loaded = [read_bgr(p) for p in images]
    inputs = [i for i in loaded if i is not None] or [
        np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    ]
    box_diff = score_diff = 0.0
    for image in inputs:
        tensor = to_input_tensor(letterbox(image, size)[0])
        onnx_out = session.run(None, {model_input.name: tensor})[0][0]
        with torch.no_grad():
            torch_out = network(torch.from_numpy(tensor))
        reference = (torch_out[0] if isinstance(torch_out, tuple | list) else torch_out)[0].numpy()
        box_diff = max(box_diff, float(np.abs(onnx_out[:4] - reference[:4]).max()))
        score_diff = max(score_diff, float(np.abs(onnx_out[4:] - reference[4:]).max()))
    return {"images": len(inputs), "max_box_px": box_diff, "max_score": score_diff}


def split_images(data_yaml: Path, count: int, split: str = "val") -> list[Path]:
    """Up to `count` images of a split, spread evenly over it."""
    data = read_data_yaml(data_yaml)
    images = [f for d in split_dirs(data_yaml, data, split) for f in image_files(d)]
    step = max(1, len(images) // max(count, 1))
    return images[::step][:count]


class LetterboxCalibration:
    """ONNX Runtime calibration reader: validation images, letterboxed as at inference."""

    def __init__(self, images: list[Path], input_name: str, size: int):
        self.images, self.input_name, self.size = iter(images), input_name, size

    def get_next(self) -> dict[str, np.ndarray] | None:
        for path in self.images:
            image = read_bgr(path)
            if image is not None:
                return {self.input_name: to_input_tensor(letterbox(image, self.size)[0])}
        return None


def head_decode_nodes(onnx_path: Path) -> list[str]:
    """Nodes of the detection head's decoding (DFL, box maths, the concat of boxes with scores).

    They mix pixel coordinates (0..imgsz) with scores (0..1) in one tensor; one INT8 scale for
    both would flatten the scores, so they stay FP32. The head's conv branches are quantized.
    """
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    convs = [n.name.split("/") for n in graph.node if n.op_type == "Conv"]
    head = convs[-1][1] if convs and len(convs[-1]) > 2 else None  # "/model.23/cv3.2/..." -> model.23
    decoding = []
    for node in graph.node:
        parts = node.name.split("/")
        if head and len(parts) > 2 and parts[1] == head and (len(parts) == 3 or parts[2] == "dfl"):
            decoding.append(node.name)
    return decoding


def quantize_int8(onnx_path: Path, calibration: list[Path]) -> Path:
    """Static INT8 (QDQ, per-channel weights) calibrated on the given images; writes model.int8.onnx."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = onnx_path.with_name(INT8_FILE)
    model_input = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).get_inputs()[0]
    input_name, size = model_input.name, int(model_input.shape[2])
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            LetterboxCalibration(calibration, input_name, size),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=head_decode_nodes(prepared),
        )
    return out


def int8_check(
    fp32: Path,
    int8: Path,
    data_yamls: list[Path],
    taxonomy: Taxonomy,
    limit: int | None,
    calibration_count: int,
) -> dict[str, Any]:
    """Evaluate FP32 and INT8 ONNX on the same validation images of each set; print and return both.

    One set cannot vouch for the classes it does not label: street-v27's INT8 lost 0.007 mAP50 on
    garbage-cn and 0.165 AP50 on facades-spb's posters. `max_map50_drop` is the largest loss of any
    set, and is what decides whether the runtime choice may offer the file.
    """
    from vision.modelops.evaluate import evaluate, print_table

    detectors = {  # loaded once, evaluated on every set
        (label, path.name): load_detector(
            path, backend="onnx", models_dir=path.parent.parent, taxonomy=taxonomy, confidence=0.001
        )
        for label, path in (("fp32", fp32), ("int8", int8))
    }
    sets: list[dict[str, Any]] = []
    for data_yaml in data_yamls:
        results = {}
        for (label, file_name), detector in detectors.items():
            results[label] = evaluate(detector, data_yaml, taxonomy, limit=limit)
            print(f"\n{label} ({file_name}) on {data_yaml}:")
            print_table(results[label])
        delta = results["int8"].map50 - results["fp32"].map50
        print(
            f"\nINT8 vs FP32 on {data_yaml}: mAP50 {results['int8'].map50:.3f} vs "
            f"{results['fp32'].map50:.3f} ({delta:+.3f}), mAP50-95 {results['int8'].map50_95:.3f} vs "
            f"{results['fp32'].map50_95:.3f}"
        )
        sets.append(
            {
                "data": str(data_yaml),
                "images": results["fp32"].images,
                "map50_fp32": round(results["fp32"].map50, 4),
                "map50_int8": round(results["int8"].map50, 4),
                "map50_95_fp32": round(results["fp32"].map50_95, 4),
                "map50_95_int8": round(results["int8"].map50_95, 4),
            }
        )
    worst = max(sets, key=lambda one: one["map50_fp32"] - one["map50_int8"])
    return {
        "file": int8.name,
        "sha256": file_sha256(int8),
        "check": {
            **worst,  # the set that lost most: what a reader of the card needs first
            "calibration_images": calibration_count,
            "max_map50_drop": round(worst["map50_fp32"] - worst["map50_int8"], 4),
            "sets": sets,
        },
    }


def calibration_images(data_yamls: list[Path], count: int) -> list[Path]:
    """Up to `count` images, shared among the data sets' train splits (val stays for the check)."""
    share = max(1, count // len(data_yamls))
    images = [
        image
        for data_yaml in data_yamls
        for image in split_images(data_yaml, share, "train") or split_images(data_yaml, share, "val")
    ]
    if not images:
        raise ModelError(f"{', '.join(map(str, data_yamls))}: no images to calibrate INT8 with")
    return images
