"""The checkout's configuration, passed down by the tests as an entry passes its Settings' values."""

from __future__ import annotations

from pathlib import Path

from vision.core.taxonomy import TAXONOMY as TAXONOMY_FILE
from vision.core.taxonomy import load_taxonomy
from vision.detect.flyers import detection_floor, load_flyer_rules

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
MODELS = ROOT / "models"
TAXONOMY = load_taxonomy(CONFIGS / TAXONOMY_FILE)
# The lowest score the scan and the service keep: where the default flyer reader proposes from.
KEEP = detection_floor(load_flyer_rules(CONFIGS / "flyers.yaml"))
