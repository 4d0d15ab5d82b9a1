"""The checkout's configuration, passed down by the tests as an entry passes its Settings' values."""

from __future__ import annotations

from pathlib import Path

from vision.core.taxonomy import TAXONOMY as TAXONOMY_FILE
from vision.core.taxonomy import load_taxonomy

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
MODELS = ROOT / "models"
TAXONOMY = load_taxonomy(CONFIGS / TAXONOMY_FILE)
