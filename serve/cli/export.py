"""`streetorder export`: package a checkpoint as models/NAME and export it (vision.modelops.export)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from serve.cases.settings import get_settings
from serve.cli.args import positive_int
from vision.detect.registry import (
    WEIGHTS,
    ModelError,
    find_model,
    update_card,
)
from vision.modelops.export import (
    DYNAMIC_FILE,
    PARITY_IMAGES,
    calibration_images,
    export_model,
    int8_check,
    package,
    quantize_int8,
    split_images,
)


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="streetorder export", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model name under models/, a model folder, or a .pt")
    parser.add_argument("--name", help="package --model (a training checkpoint .pt) as models/NAME first")
    parser.add_argument("--status", help="card status (default: final, or provisional mid-training)")
    parser.add_argument("--format", choices=("onnx", "openvino"), default="onnx")
    parser.add_argument("--imgsz", type=positive_int, help="input size (default: the card's input_size)")
    parser.add_argument("--int8", action="store_true", help="also write model.int8.onnx, checked vs FP32")
    parser.add_argument(
        "--dynamic",
        action="store_true",
        help=f"write {DYNAMIC_FILE} (any input shape: rectangular letterbox)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        action="append",
        help="data.yaml: val images for the ONNX check (the first) and the INT8 check (each; repeat it "
        "for every set whose classes the model detects: INT8 is offered only if no set loses much)",
    )
    # 300: street-v10's INT8 lost 0.015 garbage AP50 calibrated on 100 train images, 0.008 on 300.
    parser.add_argument("--calibration", type=positive_int, default=300, help="INT8 calibration images")
    parser.add_argument(
        "--limit", type=positive_int, help="check INT8 on at most this many validation images"
    )
    args = parser.parse_args(argv)
    if args.int8 and args.data is None:
        parser.error("--int8 needs --data DATA_YAML: INT8 is only written with a measured check against FP32")
    if args.int8 and args.format != "onnx":
        parser.error("--int8 is made from the ONNX export: use --format onnx")
    if args.dynamic and (args.format != "onnx" or args.int8):
        parser.error("--dynamic is an ONNX export of its own: use --format onnx, without --int8")
    settings = get_settings()
    try:
        if args.name:
            folder = package(Path(args.model), args.name, settings.models_dir, status=args.status)
        else:
            files = find_model(args.model, settings.models_dir)
            if files.folder is None:
                parser.error("--model is a bare file: give --name to package it as models/NAME")
            folder = files.folder
        check = split_images(args.data[0], PARITY_IMAGES) if args.data else []
        written = export_model(folder, args.format, args.imgsz, check, dynamic=args.dynamic)
        if written is None:  # the runtime is not installed: said on stderr
            return 1
        print(f"exported: {written}")
        if args.int8:
            calibration = calibration_images(args.data, args.calibration)
            onnx_path = folder / WEIGHTS["onnx"]
            int8 = quantize_int8(onnx_path, calibration)
            measured = int8_check(
                onnx_path, int8, args.data, settings.taxonomy(), args.limit, len(calibration)
            )
            update_card(folder, exports={"int8": measured})
            print(f"exported: {int8}")
    except ModelError as err:
        print(f"export: {err}", file=sys.stderr)
        return 1
    return 0
