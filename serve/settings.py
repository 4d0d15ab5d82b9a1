"""Settings of the service and the CLI, read from the environment (`STREETORDER_*`) or a .env file.

Typed defaults live here and only here; configs/*.yaml hold the domain configuration they point to.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREETORDER_", env_file=".env", extra="ignore")

    db_url: str = Field(default="sqlite:///streetorder.db", description="SQLAlchemy URL of the case database")
    model: str = Field(default="street-v1", description="model name under models/, or a path to weights")
    configs_dir: Path = Field(
        default=ROOT / "configs", description="folder of taxonomy, calendar, grids, cameras"
    )
    grids: Path = Field(
        default=ROOT / "configs" / "grids.example.geojson", description="GeoJSON of unit grids"
    )
    evidence_dir: Path = Field(
        default=Path("evidence"), description="where evidence images and crops are stored"
    )
    duplicate_radius_m: float = Field(
        default=50.0, description="a finding this close to an open case joins it"
    )
    duplicate_window_h: float = Field(default=24.0, description="... if the case was last seen this recently")
    case_prefix: str = Field(default="SO", description="case number prefix: PREFIX + yyyyMMdd + sequence")
    secret: str = Field(default="", description="secret mixed into API-key hashes; required outside dev mode")
    dev: bool = Field(default=False, description="dev mode: allows an empty secret (never in production)")
    max_upload_mb: float = Field(default=20.0, description="largest image upload accepted, MiB (413 above)")
    inference_threads: int = Field(default=2, description="images inferred at once; more wait in the queue")
    inference_queue: int = Field(default=16, description="uploads that may wait for inference (then 503)")


@cache
def get_settings() -> Settings:
    return Settings()
