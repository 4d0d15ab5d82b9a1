"""Model backends behind the one `Detector` contract: ONNX Runtime on CPU, ultralytics for .pt.

`load_detector("street-v10")` picks model.onnx from models/street-v10/ and never imports torch, so a
scan server needs neither torch nor a GPU. `backend="openvino"` runs the same ONNX file with
OpenVINO (often faster on Intel and AMD CPUs; the optional `openvino` extra). `backend="ultralytics"`
loads model.pt (GPU hosts, and the reference the ONNX export is checked against); torch objects
never leave that class. All return `sv.Detections` in the pixels of the image given, class_id =
taxonomy index.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import supervision as sv

from vision.core.boxes import scaled_size
from vision.core.detector import KEEP_CONFIDENCE, Detector
from vision.core.taxonomy import Taxonomy
from vision.detect.registry import (
    UNMAPPED,
    ModelError,
    ModelFiles,
    find_model,
    model_version,
    taxonomy_class_map,
)
from vision.detect.weights import inspect_weights, parse_names

BACKENDS = ("auto", "onnx", "openvino", "ultralytics")
STRIDE = 32  # YOLO's largest stride: a dynamic-shape input must be a multiple of it
PAD_VALUE = 114  # ultralytics' letterbox grey: the border the model saw in training


def letterbox(
    image: np.ndarray, size: int, stride: int | None = None
) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping aspect ratio and pad to size x size, as ultralytics does in training.

    With `stride` (models with a dynamic input shape) the padding only reaches the next multiple
    of it: a 4:3 photo becomes 320x256 rather than 320x320, a fifth less to compute.
    Returns the padded image, the scale applied, and the (left, top) padding in pixels.
    """
    height, width = image.shape[:2]
    scale = min(size / height, size / width)
    new_w, new_h = scaled_size(width, height, scale)
    if (new_w, new_h) != (width, height):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    out_w, out_h = (size, size)
    if stride:
        out_w, out_h = math.ceil(new_w / stride) * stride, math.ceil(new_h / stride) * stride
    pad_w, pad_h = (out_w - new_w) / 2, (out_h - new_h) / 2
    top, bottom = round(pad_h - 0.1), round(pad_h + 0.1)
    left, right = round(pad_w - 0.1), round(pad_w + 0.1)
    padded = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return padded, scale, (left, top)


def to_input_tensor(padded_bgr: np.ndarray) -> np.ndarray:
    """BGR uint8 HWC -> RGB float32 NCHW in 0..1, the layout YOLO models take."""
    rgb = padded_bgr[:, :, ::-1].transpose(2, 0, 1)
    return np.ascontiguousarray(rgb, dtype=np.float32)[None] / 255.0


def decode_yolo(
    output: np.ndarray, confidence: float, iou: float, max_detections: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw YOLO head output (4 + classes, anchors) -> xyxy, score, class after class-aware NMS.

    Boxes stay in the model input's pixels. One class per box (the best), as ultralytics does.
    """
    rows = output.T  # (anchors, 4 + classes)
    scores = rows[:, 4:]
    class_ids = scores.argmax(1)
    best = scores[np.arange(len(rows)), class_ids]
    keep = best > confidence
    rows, best, class_ids = rows[keep], best[keep], class_ids[keep]
    if len(rows) == 0:
        return np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty(0, int)
    centre, size = rows[:, :2], rows[:, 2:4]
    xyxy = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    xywh = np.concatenate([xyxy[:, :2], size], axis=1)
    kept = cv2.dnn.NMSBoxesBatched(
        xywh.astype(np.float64),  # type: ignore[arg-type]  # the stubs want lists; arrays are faster
        best.astype(np.float64),
        class_ids.astype(np.int32),
        confidence,
        iou,
    )
    picked = np.asarray(kept, dtype=int).reshape(-1)[:max_detections]
    return xyxy[picked], best[picked], class_ids[picked]


def unletterbox(xyxy: np.ndarray, scale: float, pad: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Boxes from letterboxed input pixels back to the original image's pixels, clipped to it."""
    boxes = (xyxy - np.array([pad[0], pad[1], pad[0], pad[1]], dtype=np.float32)) / scale
    height, width = shape
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    return boxes


def check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"a detector takes a BGR uint8 image of shape (H, W, 3), got {got}")


def to_detections(
    xyxy: np.ndarray, scores: np.ndarray, model_classes: np.ndarray, class_map: np.ndarray, names: list[str]
) -> sv.Detections:
    """Model class ids -> taxonomy ids, with class names in `data` for labels on evidence images;
    a box of a class the taxonomy lacks (UNMAPPED) is dropped."""
    class_id = class_map[model_classes.astype(int)] if len(model_classes) else np.empty(0, int)
    keep = class_id != UNMAPPED
    xyxy, scores, class_id = xyxy.reshape(-1, 4)[keep], scores[keep], class_id[keep]
    return sv.Detections(
        xyxy=xyxy.astype(np.float32).reshape(-1, 4),
        confidence=scores.astype(np.float32),
        class_id=class_id.astype(int),
        data={"class_name": np.array([names[i] for i in class_id], dtype=str)},
    )


@dataclass(frozen=True)
class Thresholds:
    """What a backend keeps: scores above `confidence`, NMS at `iou`, at most `max_detections`."""

    confidence: float = KEEP_CONFIDENCE
    iou: float = 0.7
    max_detections: int = 300


class OrtRunner:
    """ONNX Runtime session; `threads` caps its intra-op threads (1 = the call runs on the caller's
    thread, so N scan workers use exactly N cores). One session serves concurrent callers."""

    def __init__(self, path: Path, threads: int | None = None, concurrency: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_shape: Sequence[int | str] = model_input.shape
        self.output_shape: Sequence[int | str] = self.session.get_outputs()[0].shape

    def __call__(self, tensor: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: tensor})[0])


WARM_UP_SIDE = 640  # a dynamic axis of the warm-up inference: any size the model accepts


class OpenVinoRunner:
    """OpenVINO on the CPU, reading the ONNX file directly. One stream per concurrent caller (a
    stream runs one request at a time) and an infer request per calling thread.

    The constructor imports, compiles and runs one inference on the thread that builds the runner
    (the main thread, before any worker starts): two workers making their first call at once could
    deadlock forever, `_pyopenvino`'s static initialisation and pybind11's numpy set-up each
    waiting for the other's lock (1 start in about 17 of `streetorder scan` hung so).
    """

    def __init__(self, path: Path, threads: int | None = None, concurrency: int = 1):
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(path))
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": concurrency}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads * concurrency
        self.compiled = core.compile_model(model, "CPU", config)
        self.input_shape = _dims(model.inputs[0].get_partial_shape())
        self.output_shape = _dims(model.outputs[0].get_partial_shape())
        self.requests = threading.local()
        warm_up = [d if isinstance(d, int) else WARM_UP_SIDE for d in self.input_shape]
        warm_up[0] = 1  # a batch axis, dynamic or not
        self(np.zeros(warm_up, dtype=np.float32))  # every lazy static set up here, single-threaded

    def __call__(self, tensor: np.ndarray) -> np.ndarray:
        request = getattr(self.requests, "request", None)
        if request is None:
            request = self.requests.request = self.compiled.create_infer_request()
        return np.asarray(request.infer({0: tensor})[0])


def _dims(shape: Any) -> list[int | str]:
    """An OpenVINO partial shape as ONNX Runtime lists it: ints, and a name for each dynamic axis."""
    return [d.get_length() if d.is_static else "?" for d in shape]


RUNNERS: dict[str, type[OrtRunner] | type[OpenVinoRunner]] = {"onnx": OrtRunner, "openvino": OpenVinoRunner}


class OnnxDetector:
    """YOLO exported to ONNX, run on the CPU by ONNX Runtime or OpenVINO (letterbox, decode and NMS
    in numpy/cv2). A model exported with a dynamic input shape gets a letterbox of the photo's
    aspect instead of a square."""

    def __init__(
        self,
        path: Path,
        *,
        model_names: list[str],
        version: str,
        taxonomy: Taxonomy,
        thresholds: Thresholds,
        input_size: int | None = None,
        runtime: str = "onnx",
        threads: int | None = None,
        concurrency: int = 1,
        drop_unknown: bool = False,
    ):
        self.run_model = RUNNERS[runtime](path, threads, concurrency)
        self.runtime = runtime
        fixed = [d for d in self.run_model.input_shape[2:] if isinstance(d, int)]
        if fixed and input_size and fixed[0] != input_size:
            raise ModelError(f"{path}: exported for {fixed[0]} px input, cannot run at {input_size} px")
        self.input_size = fixed[0] if fixed else int(input_size or 640)
        self.stride = None if fixed else STRIDE
        outputs = self.run_model.output_shape
        if isinstance(outputs[1], int) and outputs[1] - 4 != len(model_names):
            raise ModelError(f"{path}: outputs {outputs[1] - 4} classes, its card names {len(model_names)}")
        self.class_map = taxonomy_class_map(model_names, str(path), taxonomy, drop_unknown)
        self.names = taxonomy.names
        self.version = version
        self.thresholds = thresholds

    def raw(self, image: np.ndarray) -> tuple[np.ndarray, float, tuple[int, int]]:
        """The head's output (4 + classes, anchors) on one image, with the letterbox used."""
        padded, scale, pad = letterbox(image, self.input_size, self.stride)
        return self.run_model(to_input_tensor(padded))[0], scale, pad

    def __call__(self, image: np.ndarray) -> sv.Detections:
        check_image(image)
        output, scale, pad = self.raw(image)
        keep = self.thresholds
        xyxy, scores, classes = decode_yolo(output, keep.confidence, keep.iou, keep.max_detections)
        boxes = unletterbox(xyxy, scale, pad, image.shape[:2])
        return to_detections(boxes, scores, classes, self.class_map, self.names)


class UltralyticsDetector:
    """A .pt checkpoint run by ultralytics (CPU or CUDA); the reference for exports."""

    def __init__(
        self,
        path: Path,
        *,
        model_names: list[str] | None,
        version: str,
        taxonomy: Taxonomy,
        thresholds: Thresholds,
        input_size: int | None = None,
        device: str = "cpu",
    ):
        from ultralytics import YOLO

        self.model = YOLO(str(path), task="detect")
        names = model_names or parse_names(self.model.names, str(path))
        if len(names) != len(self.model.names):
            raise ModelError(f"{path}: outputs {len(self.model.names)} classes, its card names {len(names)}")
        self.class_map = taxonomy_class_map(names, str(path), taxonomy, drop_unknown=model_names is None)
        self.names = taxonomy.names
        self.version = version
        train_args = getattr(self.model.model, "args", {}) or {}
        self.input_size = int(input_size or train_args.get("imgsz", 640))
        self.thresholds = thresholds
        self.device = device

    def __call__(self, image: np.ndarray) -> sv.Detections:
        check_image(image)
        results: Any = self.model.predict(
            image,
            imgsz=self.input_size,
            conf=self.thresholds.confidence,
            iou=self.thresholds.iou,
            max_det=self.thresholds.max_detections,
            device=self.device,
            verbose=False,
        )
        boxes = results[0].boxes
        return to_detections(
            boxes.xyxy.cpu().numpy(),
            boxes.conf.cpu().numpy(),
            boxes.cls.cpu().numpy().astype(int),
            self.class_map,
            self.names,
        )


def load_detector(
    model: str | Path,
    backend: str = "auto",
    *,
    models_dir: Path,
    taxonomy: Taxonomy,
    confidence: float = KEEP_CONFIDENCE,
    iou: float = 0.7,
    max_detections: int = 300,
    input_size: int | None = None,
    device: str = "cpu",
    threads: int | None = None,
    concurrency: int = 1,
) -> Detector:
    """Load a model by name (a folder under `models_dir`, or `current`), folder, or .onnx/.pt path;
    its classes are mapped onto `taxonomy`, the one the cases of this configuration use.

    backend: "onnx" (ONNX Runtime, CPU, no torch), "openvino" (the same ONNX file on OpenVINO),
    "ultralytics" (.pt, CPU or CUDA `device`), or "auto" (ONNX when the model has it, else .pt).
    `confidence` is the lowest score kept; rules apply each class's own min_confidence on top.
    `threads` per inference call and `concurrency` (calls at once) size the CPU runtimes: a
    scan with N workers asks for threads=1, concurrency=N.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
    files = find_model(model, models_dir)
    if backend == "auto":
        backend = "onnx" if "onnx" in files.weights else "ultralytics"
    weights = files.weights_for("onnx" if backend == "openvino" else backend)
    card_names = parse_names(files.card["classes"], str(files.folder)) if "classes" in files.card else None
    common: dict[str, Any] = {
        "version": model_version(files.name, weights),
        "taxonomy": taxonomy,
        "thresholds": Thresholds(confidence, iou, max_detections),
        "input_size": input_size or card_input_size(files),
    }
    try:
        if backend in RUNNERS:
            names = card_names or inspect_weights(weights).names  # ultralytics' ONNX metadata
            if names is None:
                raise ModelError(f"{weights}: no card.yaml beside it and no class names in its metadata")
            return OnnxDetector(
                weights,
                model_names=names,
                drop_unknown=card_names is None,  # names of the file's own, not of a card made here
                runtime=backend,
                threads=threads,
                concurrency=concurrency,
                **common,
            )
        return UltralyticsDetector(weights, model_names=card_names, device=device, **common)
    except ModelError:
        raise
    except Exception as err:  # each runtime raises types of its own for a file it cannot read
        reason = next((line.strip() for line in str(err).splitlines() if line.strip()), "")[:300]
        raise ModelError(f"{weights}: {backend} cannot load it ({type(err).__name__}: {reason})") from err


def card_input_size(files: ModelFiles) -> int | None:
    size = files.card.get("input_size")
    return int(size) if size else None
