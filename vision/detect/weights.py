"""What a weights file is, read before any runtime loads it: every door that takes a model file
(scan, the service and its reload, evaluate, export, promote, watch, train) asks `inspect_weights`.

A .pt is a pickle inside a zip, and unpickling it runs whatever callables it names: torch and
ultralytics load checkpoints with `weights_only=False`, so a hostile .pt runs its code on the
first load. Here the pickle is read with a stand-in for every global it names (nothing of it is
called), which gives what it imports, the model class and its class names. A file that imports
anything outside what ultralytics checkpoints are made of is refused before torch sees it; the
list is a screen against files that are not checkpoints, not a sandbox, so a .pt is still only
to be taken from someone trusted. An .onnx holds no code. Nothing here imports torch.
"""

from __future__ import annotations

import ast
import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vision.detect.errors import ModelError

DETECTION = "DetectionModel"  # the ultralytics model class of a YOLO detector
OTHER_TASKS = {  # ultralytics model class (or ONNX `task` metadata) -> what the file is
    "ClassificationModel": "a classification model",
    "SegmentationModel": "a segmentation model",
    "PoseModel": "a pose model",
    "OBBModel": "an oriented-box (OBB) model",
    "WorldModel": "an open-vocabulary (YOLO-World) model",
    "RTDETRDetectionModel": "an RT-DETR model",
    "classify": "a classification model",
    "segment": "a segmentation model",
    "pose": "a pose model",
    "obb": "an oriented-box (OBB) model",
}
ONNX_HEADS = {"Segment": "segment", "Pose": "pose", "Classify": "classify", "OBB": "obb"}  # `head` metadata
# What ultralytics checkpoints are made of: module prefix -> the names allowed from it ("*": any).
ALLOWED_GLOBALS: dict[str, frozenset[str] | str] = {  # "*": any name, "*Model": a name ending so
    "ultralytics.nn.modules.": "*",  # the layers
    "ultralytics.nn.tasks": "*Model",  # the model classes, never its loading functions
    "ultralytics.utils.loss": "*",
    "ultralytics.utils.tal": "*",
    "ultralytics.utils": frozenset({"IterableSimpleNamespace"}),
    "torch.nn.modules.": "*",
    "torch.nn.parameter": frozenset({"Parameter"}),
    "torch._utils": frozenset({"_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state"}),
    "torch._tensor": frozenset({"_rebuild_from_type_v2"}),
    "torch": frozenset(
        {
            "Size",
            "device",
            *(f"{kind}Storage" for kind in ("Float", "Half", "Double", "BFloat16", "Long", "Int", "Short")),
            *("ByteStorage", "CharStorage", "BoolStorage"),
            *(
                "float16",
                "float32",
                "float64",
                "bfloat16",
                "int8",
                "int16",
                "int32",
                "int64",
                "uint8",
                "bool",
            ),
        }
    ),
    "collections": frozenset({"OrderedDict"}),
    "builtins": frozenset({"set", "frozenset", "slice", "complex"}),
    "__builtin__": frozenset({"set", "frozenset", "slice", "complex"}),
    "copyreg": frozenset({"_reconstructor"}),
    "pathlib": frozenset({"PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath"}),
    "types": frozenset({"SimpleNamespace"}),
    "argparse": frozenset({"Namespace"}),
    "numpy.core.multiarray": frozenset({"_reconstruct", "scalar"}),
    "numpy._core.multiarray": frozenset({"_reconstruct", "scalar"}),
    "numpy": frozenset({"ndarray", "dtype"}),
}


@dataclass(frozen=True)
class WeightsInfo:
    """What a weights file says of itself: its class names in output order where it records them."""

    names: list[str] | None


def allowed_global(module: str, name: str) -> bool:
    for prefix, names in ALLOWED_GLOBALS.items():
        if module == prefix or (prefix.endswith(".") and module.startswith(prefix)):
            if isinstance(names, str):
                return names == "*" or name.endswith("Model")
            return name in names
    return False


class _Stand:
    """Stands in for every object a pickle builds: records its arguments and state, runs nothing."""

    _global = ("", "")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _Reader(pickle.Unpickler):
    """Unpickles with stand-ins: `find_class` never returns a real callable."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.globals: list[tuple[str, str]] = []

    def find_class(self, module: str, name: str) -> Any:
        self.globals.append((module, name))
        return type(name, (_Stand,), {"_global": (module, name)})

    def persistent_load(self, pid: Any) -> None:  # tensor storages live outside the pickle
        return None


def inspect_weights(path: Path) -> WeightsInfo:
    """Refuse a file that is not a YOLO detection model, in one line naming it and what it is."""
    if path.is_dir():
        raise ModelError(f"{path}: a folder, not a weights file (give its model.pt or model.onnx)")
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ModelError(f"{path}: the file is empty")
    if path.suffix == ".pt":
        return _inspect_pt(path)
    if path.suffix == ".onnx":
        return _inspect_onnx(path)
    raise ModelError(f"{path}: not a model file (expected .onnx or .pt)")


def _inspect_pt(path: Path) -> WeightsInfo:
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            data = archive.read(pickles[0]) if pickles else None
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ModelError(
            f"{path}: not a torch checkpoint (not a complete zip archive: truncated, or another kind of file)"
        ) from err
    if data is None:
        raise ModelError(f"{path}: a zip archive, but not a torch checkpoint (no data.pkl in it)")
    reader = _Reader(data)
    try:
        checkpoint = reader.load()
    except Exception as err:  # a damaged pickle raises any of pickle's, struct's or our stand-ins' errors
        raise ModelError(f"{path}: its checkpoint pickle is damaged ({type(err).__name__})") from err
    foreign = sorted({f"{m}.{n}" for m, n in reader.globals if not allowed_global(m, n)})
    if foreign:
        raise ModelError(
            f"{path}: refused unloaded: it imports {', '.join(foreign[:5])}, which no ultralytics "
            f"checkpoint does (a .pt is a pickle: loading it would run that code)"
        )
    module = None
    if isinstance(checkpoint, dict):
        module = next(
            (m for m in (checkpoint.get("ema"), checkpoint.get("model")) if isinstance(m, _Stand)), None
        )
    if module is None or module._global[0] != "ultralytics.nn.tasks":
        raise ModelError(f"{path}: a torch file, but not an ultralytics checkpoint (it holds no model)")
    kind = module._global[1]
    if kind != DETECTION:
        what = f"{OTHER_TASKS[kind]} ({kind})" if kind in OTHER_TASKS else f"an ultralytics {kind}"
        raise ModelError(f"{path}: {what}; streetorder needs a YOLO detection model ({DETECTION})")
    state = module.state if isinstance(module.state, dict) else {}
    names = state.get("names")
    return WeightsInfo(parse_names(names, str(path)) if isinstance(names, dict | list) else None)


def _inspect_onnx(path: Path) -> WeightsInfo:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and onnx's own errors for a file it cannot parse
        raise ModelError(f"{path}: not an ONNX model ({type(err).__name__})") from err
    graph = model.graph
    if not graph.input or not graph.output:
        raise ModelError(f"{path}: an ONNX file without a graph input or output")
    meta = {p.key: p.value for p in model.metadata_props}
    task = ONNX_HEADS.get(meta.get("head", ""), meta.get("task", "detect"))  # the head tells, task may not
    if task != "detect":
        what = OTHER_TASKS.get(task, f"a '{task}' model")
        raise ModelError(f"{path}: {what} (ONNX task '{task}'); streetorder needs a YOLO detection model")
    dims = [d.dim_value or d.dim_param or "?" for d in graph.input[0].type.tensor_type.shape.dim]
    if (
        len(dims) != 4
        or dims[1] not in (3, "?")
        or any(isinstance(d, int) and d != 3 and d < 32 for d in dims[2:])
    ):
        shape = "x".join(str(d) for d in dims)
        raise ModelError(f"{path}: input {shape}; a YOLO detector takes 1x3xHxW images (H, W at least 32)")
    if len(graph.output) != 1:
        raise ModelError(f"{path}: {len(graph.output)} outputs; a YOLO detector's raw head has one")
    names = meta.get("names")
    return WeightsInfo(parse_names(names, str(path)) if names else None)


def parse_names(value: Any, where: str) -> list[str]:
    """Class names in output order from a list, an {index: name} dict or its str() (ONNX metadata)."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError) as err:
            raise ModelError(f"{where}: cannot read class names from {value!r}") from err
    if isinstance(value, dict):
        return [str(value[k]) for k in sorted(value, key=int)]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    raise ModelError(f"{where}: class names must be a list or index->name map, not {type(value).__name__}")
