"""Reading ultralytics checkpoints (.pt) that people hand over: one place says what is wrong with
a file that is missing, broken or something else, instead of a pickle traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vision.detect.errors import ModelError
from vision.detect.weights import inspect_weights


def load_checkpoint(path: Path, named: Path | None = None) -> tuple[dict[str, Any], torch.nn.Module]:
    """A checkpoint and its model (the EMA where it keeps one). `named` is the file to name in
    errors when `path` is a copy of it (a running training rewrites its last.pt every epoch)."""
    from ultralytics.nn.tasks import torch_safe_load

    shown = named or path
    try:
        inspect_weights(path)
    except ModelError as err:
        raise ModelError(str(err).replace(str(path), str(shown), 1)) from err
    try:
        checkpoint, _ = torch_safe_load(str(path), safe_only=True)  # weights_only: vision/__init__.py
    except Exception as err:  # a broken file raises pickle, zip, torch or EOF errors alike
        raise ModelError(f"{shown}: not a checkpoint torch can read ({type(err).__name__})") from err
    module = (checkpoint.get("ema") or checkpoint.get("model")) if isinstance(checkpoint, dict) else None
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"{shown}: not an ultralytics checkpoint")
    return checkpoint, module
