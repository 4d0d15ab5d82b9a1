"""`streetorder relay pack|leg|land`: the GPU relay (vision.modelops.relay).

On a GPU host without the installed script: `python3 -m serve.cli relay leg ...`. The leg imports
neither the settings nor pydantic (a host with torch alone has none): `pack` and `land`, which run
here, read the settings; the leg takes everything from its bundle and its arguments."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from vision.core.taxonomy import Taxonomy
from vision.modelops.relay import (
    BUNDLE,
    RelayConfig,
    RelayError,
    fetch_wheels,
    land,
    pack,
    survey_pretrained,
    train_leg,
    unpack,
)


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="streetorder relay", description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    pack_p = steps.add_parser("pack", help="write the next leg's bundle (here)")
    pack_p.add_argument("--config", type=Path, help="default: relay.yaml in the configs_dir setting")
    pack_p.add_argument("--out", type=Path, default=BUNDLE)
    pack_p.add_argument(
        "--wheels",
        type=Path,
        help="a folder of wheels to carry instead of downloading ultralytics' (an empty one: carry none)",
    )
    leg_p = steps.add_parser("leg", help="unpack, then train until the deadline (on the GPU host)")
    leg_p.add_argument("--bundle", type=Path, default=BUNDLE)
    leg_p.add_argument("--work", type=Path, default=Path("/tmp/streetorder-relay"))
    leg_p.add_argument("--out", type=Path, required=True, help="where the leg's files go (brought back)")
    leg_p.add_argument("--minutes", type=float, help="the leg's whole time, from this command's start")
    leg_p.add_argument("--unpack-only", action="store_true", help="unpack the parts carried, then stop")
    leg_p.add_argument("--survey", action="store_true", help="list pretrained weights on this host")
    leg_p.add_argument("--epochs", type=int, help="train at most this many epochs in this leg")
    leg_p.add_argument("--device", default="0")
    leg_p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    land_p = steps.add_parser("land", help="keep a leg's checkpoint and record (here)")
    land_p.add_argument("files", type=Path, help="the folder holding the leg's files")
    land_p.add_argument("--config", type=Path, help="default: relay.yaml in the configs_dir setting")
    land_p.add_argument("--runs", type=Path, default=Path("runs"))
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        if args.step in ("pack", "land"):
            return _here_cli(args)
        if args.survey:
            args.out.mkdir(parents=True, exist_ok=True)
            found = survey_pretrained()
            (args.out / "pretrained.txt").write_text("\n".join(found) + "\n", encoding="utf-8")
            print(f"relay: {len(found)} weight files over 1 MiB on this host (pretrained.txt)", flush=True)
        manifest, missing = unpack(args.bundle, args.work)
        if args.unpack_only:
            print(f"relay: parts still to carry: {', '.join(missing) or 'none'}")
            return 0
        if missing:
            raise RelayError(f"parts not carried yet: {', '.join(missing)} (carry them with --unpack-only)")
        if args.minutes is None:
            parser.error("--minutes is needed to train")
        end = started + args.minutes * 60
        leg = train_leg(manifest, args.work, args.out, end, args.device, args.workers, args.epochs)
    except RelayError as err:
        print(f"relay: {err}", file=sys.stderr)
        return 1
    print(json.dumps(leg, indent=2))
    return 0


def _here_cli(args: argparse.Namespace) -> int:
    """`pack` and `land`: the steps that run beside the models and configs, with the settings."""
    from serve.cases.settings import get_settings
    from vision.detect.registry import ModelError
    from vision.modelops.relay_config import CONFIG, load_config

    settings = get_settings()
    config = load_config(args.config or settings.configs_dir / CONFIG)
    try:
        if args.step == "land":
            weights = land(args.files, config, settings.models_dir, runs=args.runs)
            print(f"landed: {weights} (relay state in {settings.models_dir / 'relay'})")
            return 0
        return _pack(args, config, settings.taxonomy(), settings.models_dir, settings.cache_dir)
    except (RelayError, ModelError) as err:
        print(f"relay: {err}", file=sys.stderr)
        return 1


def _pack(
    args: argparse.Namespace, config: RelayConfig, taxonomy: Taxonomy, models: Path, cache: Path
) -> int:
    from tqdm import tqdm

    wheels = sorted(args.wheels.glob("*.whl")) if args.wheels else fetch_wheels(cache / "wheels")
    manifest = pack(
        config,
        taxonomy,
        models,
        args.out,
        wheels,
        progress=lambda it, n: tqdm(it, total=n, desc="pack", unit="img"),
    )
    sizes = {p: sum(f.stat().st_size for f in (args.out / p).rglob("*")) >> 20 for p in manifest["parts"]}
    print(f"packed leg {manifest['leg']} of relay {config.name}: {manifest['images']} images")
    print(f"  start: {manifest['start']['from']} ({'resume' if manifest['start']['resume'] else 'new run'})")
    for part, mib in sizes.items():
        print(f"  {args.out / part}: {mib} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
