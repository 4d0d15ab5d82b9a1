"""The GPU relay, dry-run on the CPU: pack, carry part by part, train a leg, land, resume a second leg.

The commands are the ones a person runs (`streetorder relay ...` here, `python3 -m serve.cli relay leg`
on the host), in subprocesses, on a synthetic mix at 64 px.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from synthetic import review_roads, tiny_model, write_mix

from vision.modelops.relay import Deadline, PartWriter, RelayError, survey_pretrained
from vision.modelops.relay_config import load_config

ROOT = Path(__file__).resolve().parent.parent


def relay(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "serve.cli", "relay", *args]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)


def carry(bundle: Path, host_bundle: Path, parts: list[str]) -> None:
    """What one transfer to the host does: copy these part folders beside the ones already there."""
    for part in parts:
        shutil.copytree(bundle / part, host_bundle / part)


@pytest.mark.slow
def test_two_legs_resume_one_schedule(tmp_path: Path) -> None:
    models = tmp_path / "models"
    first_start = tiny_model(models) / "model.pt"
    mix = write_mix(tmp_path / "data", size=64, train=6, val=2)
    reviews = review_roads(tmp_path / "data", lambda image: ("garbage", "false"))  # absent everywhere
    spec = yaml.safe_load(mix.read_text())
    spec["sources"][1]["reviews"] = str(reviews)  # roads
    mix.write_text(yaml.safe_dump(spec))
    config = tmp_path / "relay.yaml"
    settings = {
        "name": "tiny-relay",
        "mix": str(mix),
        "start": "tiny",
        "imgsz": 64,
        "epochs": 2,
        "batch": 4,
        "monitor_fraction": 0.2,
        "webp_quality": 90,
    }
    env = {**os.environ, "STREETORDER_MODELS_DIR": str(models)}
    no_wheels = tmp_path / "no-wheels"
    no_wheels.mkdir()
    bundle, runs = tmp_path / "bundle", tmp_path / "runs"
    pack = ["pack", "--config", str(config), "--out", str(bundle), "--wheels", str(no_wheels)]
    legs_out = []

    for leg, start in ((1, first_start), (2, models / "relay" / "tiny-relay" / "state.pt")):
        settings["part_mib"] = (start.stat().st_size + 20_000) / (1 << 20)  # the data spills into part02
        config.write_text(yaml.safe_dump(settings), encoding="utf-8")
        packed = relay(pack, env)
        assert packed.returncode == 0, packed.stderr
        manifest = json.loads((bundle / "part01" / "relay.json").read_text())
        assert manifest["leg"] == leg and manifest["start"]["resume"] is (leg == 2)
        assert len(manifest["parts"]) >= 2
        assert manifest["images"] == 2 * 6  # train photos only; 1 of each source monitors

        host_bundle = tmp_path / f"host{leg}" / ".relay"
        work, out = tmp_path / f"work{leg}", tmp_path / f"out{leg}"
        carry(bundle, host_bundle, manifest["parts"][:1])
        first = relay(["leg", "--bundle", str(host_bundle), "--work", str(work), "--out", str(out),
                       "--unpack-only"], env)  # fmt: skip
        assert first.returncode == 0, first.stderr
        assert "parts still to carry: part02" in first.stdout
        train = ["leg", "--bundle", str(host_bundle), "--work", str(work), "--out", str(out),
                 "--minutes", "20", "--device", "cpu", "--workers", "0"]  # fmt: skip
        early = relay(train, env)
        assert early.returncode == 1 and "parts not carried yet: part02" in early.stderr

        shutil.rmtree(host_bundle / "part01")  # the host keeps what it unpacked, not the transfer
        carry(bundle, host_bundle, manifest["parts"][1:])
        trained = relay([*train, "--epochs", "1"], env)
        assert trained.returncode == 0, trained.stderr[-3000:]
        record = json.loads((out / "leg.json").read_text())
        assert record["epochs"] == {"from": leg - 1, "to": leg, "of": 2}
        assert record["stopped_by"] == ("epoch limit" if leg == 1 else "schedule end")
        assert {p.name for p in out.iterdir()} >= {"state.pt", "best.pt", "card.yaml", "leg.json"}
        leg_card = yaml.safe_load((out / "card.yaml").read_text())
        reviewed = leg_card["training"]["data"]["roads"]["reviewed"]  # carried, applied to re-encoded copies
        assert reviewed == {"train": {"garbage": {"absent": 6, "pseudo_labelled": 0, "boxes": 0}}}  # no val
        legs_out.append(out)

        landed = relay(["land", str(out), "--config", str(config), "--runs", str(runs)], env)
        assert landed.returncode == 0, landed.stderr

    again = relay(["land", str(legs_out[0]), "--config", str(config), "--runs", str(runs)], env)
    assert again.returncode == 1 and "has landed already" in again.stderr
    finished = relay(pack, env)
    assert finished.returncode == 1 and "finished its 2 epochs" in finished.stderr

    import torch
    from ultralytics.utils.patches import torch_load

    from vision.modelops.export import package

    state = torch_load(models / "relay" / "tiny-relay" / "state.pt", map_location="cpu")
    assert state["epoch"] == 1 and state["optimizer"] is not None  # resumable, not stripped
    assert isinstance(state["ema"], torch.nn.Module)
    legs = yaml.safe_load((models / "relay" / "tiny-relay" / "legs.yaml").read_text())
    assert [leg["epochs"]["to"] for leg in legs] == [1, 2]
    folder = package(runs / "tiny-relay" / "leg2" / "weights" / "best.pt", "relayed", models_dir=models)
    card = yaml.safe_load((folder / "card.yaml").read_text())
    assert [leg["leg"] for leg in card["training"]["relay"]["legs"]] == [1, 2]
    assert card["input_size"] == 64 and card["training"]["data"]["bins"]["images"] == {"train": 5, "val": 1}


def test_deadline_stops_when_the_next_epoch_would_not_fit(tmp_path: Path) -> None:
    clock = [100.0]
    guard = Deadline(end=200.0, state=tmp_path / "state.pt")
    trainer = SimpleNamespace(stop=False)
    import vision.modelops.relay as relay_module

    real = relay_module.time.monotonic
    relay_module.time.monotonic = lambda: clock[0]  # type: ignore[assignment]
    try:
        for epoch_seconds, expect_stop in ((30.0, False), (30.0, False), (30.0, True)):
            guard.on_train_epoch_start(trainer)
            clock[0] += epoch_seconds
            guard.on_fit_epoch_end(trainer)
            assert trainer.stop is expect_stop  # at 190 s a 30 s epoch would end past 200 s
        trainer.stop = False
        clock[0] = 201.0
        guard.on_train_batch_end(trainer)
        assert trainer.stop and guard.stopped_by == "deadline (mid-epoch)"
    finally:
        relay_module.time.monotonic = real  # type: ignore[assignment]


def test_parts_never_exceed_their_size(tmp_path: Path) -> None:
    writer = PartWriter(tmp_path / "bundle", limit=10_000, bundle_id="b")
    for index in range(20):
        writer.add_bytes(f"datasets/s/images/train/{index}.jpg.webp", b"x" * 2_000)
    writer.close()
    assert len(writer.parts) >= 4
    assert all((part / "data.tar").stat().st_size <= 10_000 + 1024 for part in writer.parts)
    big = tmp_path / "big.pt"
    big.write_bytes(b"x" * 20_000)
    with pytest.raises(RelayError, match="larger than a part"):
        writer.add_file(big, "start.pt")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epochs": 0}, "epochs: Input should be greater than or equal to 1"),
        ({"imgsz": "640"}, "imgsz: Input should be a valid integer"),
        ({"monitor_fraction": 0.9}, "monitor_fraction: Input should be less than or equal to 0.5"),
        ({"name": ""}, "name: String should have at least 1 character"),
        ({"part_mb": 58}, "part_mb: Extra inputs are not permitted"),
    ],
)
def test_bad_relay_settings_are_named(tmp_path: Path, change: dict[str, object], message: str) -> None:
    settings = yaml.safe_load((ROOT / "configs" / "relay.yaml").read_text())
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump({**settings, **change}), encoding="utf-8")
    with pytest.raises(RelayError, match=message):
        load_config(path)


def test_survey_lists_weight_files_over_the_size(tmp_path: Path) -> None:
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "resnet50.pth").write_bytes(b"\0" * (2 << 20))
    (tmp_path / "small.pt").write_bytes(b"\0" * 100)
    (tmp_path / "notes.txt").write_bytes(b"\0" * (3 << 20))
    found = survey_pretrained([tmp_path])
    assert len(found) == 1 and found[0].endswith("hub/checkpoints/resnet50.pth")


# What a GPU host with torch alone has: the leg must import neither pydantic nor the settings.
WITHOUT_PYDANTIC = """
import sys


class NoPydantic:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pydantic", "pydantic_core", "pydantic_settings"):
            raise ImportError(f"no {name} on this host")


sys.meta_path.insert(0, NoPydantic())
import vision.modelops.train  # what train_leg imports once the parts are in
from serve.cli.main import main

code = main(sys.argv[1:])
assert "pydantic" not in sys.modules and "serve.cases.settings" not in sys.modules
sys.exit(code)
"""


def test_the_leg_needs_no_pydantic(tmp_path: Path) -> None:
    """`relay leg` on a host without pydantic gets as far as the bundle (here: none carried yet)."""
    argv = ["relay", "leg", "--bundle", str(tmp_path / "bundle"), "--work", str(tmp_path / "work")]
    argv += ["--out", str(tmp_path / "out"), "--unpack-only"]
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PYDANTIC, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "no part with relay.json has been carried yet" in done.stderr
