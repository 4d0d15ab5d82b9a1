"""configs/relay.yaml through the one configuration loader. Apart from vision/modelops/relay.py because
the GPU relay's leg imports that module on a host that may lack pydantic; `pack` and `land` read this."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, StrictFloat, StrictInt

from vision.core.config import ConfigModel, load_config_file
from vision.modelops.relay import RelayConfig, RelayError

CONFIG = "relay.yaml"  # in the configs folder (the configs_dir setting)


class RelayFile(ConfigModel):
    name: str = Field(min_length=1)
    mix: str = Field(min_length=1)  # a mix file, relative to relay.yaml
    start: str = Field(min_length=1)  # the model the first leg starts from
    imgsz: StrictInt = Field(ge=32, le=2048)
    epochs: StrictInt = Field(ge=1, le=10_000)  # the whole relay's schedule
    batch: StrictInt = Field(ge=1, le=1024)
    monitor_fraction: StrictFloat = Field(ge=0.0, le=0.5)
    webp_quality: StrictInt = Field(ge=1, le=100)
    part_mib: StrictFloat = Field(ge=0.01, le=4096)


def load_config(path: Path) -> RelayConfig:
    """`<configs_dir>/relay.yaml`; RelayError names a bad field."""
    spec = load_config_file(path, RelayFile, error=RelayError)
    return RelayConfig(**{**spec.model_dump(), "mix": (path.parent / spec.mix).resolve()})
