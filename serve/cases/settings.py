"""Settings of the service and the CLI, read from the environment (`STREETORDER_*`) or a .env file.

Typed defaults live here and only here; configs/*.yaml hold the domain configuration they point to.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREETORDER_", env_file=".env", extra="ignore")

    db_url: str = Field(default="sqlite:///streetorder.db", description="SQLAlchemy URL of the case database")
    model: str = Field(
        default="current",
        description="model name under models/, a path to weights, or `current`: the model that "
        "models/registry.yaml names, followed when it is promoted or rolled back",
    )
    model_reload_s: float = Field(default=2.0, description="how often the service looks for a promoted model")
    cameras_reload_s: float = Field(
        default=5.0,
        description="how often the service looks for an edited cameras.yaml (0: never; "
        "POST /v1/cameras/reload applies it on demand)",
    )
    configs_dir: Path = Field(
        default=ROOT / "configs", description="folder of taxonomy, calendar, grids, cameras"
    )
    grids: Path = Field(
        default=ROOT / "configs" / "grids.example.geojson", description="GeoJSON of unit grids"
    )
    evidence_dir: Path = Field(
        default=Path("evidence"), description="where evidence images and crops are stored"
    )
    flyers: Literal["off", "detector", "all"] | None = Field(
        default=None,
        description="which photos the flyer reader reads (off, detector: where the detector proposes a "
        "flyer, all); default: `scan` of configs/flyers.yaml (docs/flyers.md)",
    )
    duplicate_radius_m: float = Field(
        default=50.0, description="a finding this close to an open case joins it"
    )
    duplicate_window_h: float = Field(default=24.0, description="... if the case was last seen this recently")
    case_prefix: str = Field(default="SO", description="case number prefix: PREFIX + yyyyMMdd + sequence")
    secret: str = Field(default="", description="secret mixed into API-key hashes; required outside dev mode")
    dev: bool = Field(default=False, description="dev mode: allows an empty secret (never in production)")
    notifications: Path = Field(
        default=ROOT / "configs" / "notifications.yaml",
        description="webhook and adapter targets of dispatch and deadline messages",
    )
    notify_s: float = Field(default=10.0, description="how often queued notifications are sent (0: never)")
    session_hours: float = Field(
        default=12.0, gt=0, description="a console session lasts this long (one shift)"
    )
    cookie_secure: bool = Field(
        default=False,
        description="mark the session cookie Secure (behind a TLS proxy); requests that arrive over https "
        "get it anyway",
    )
    first_year: int = Field(
        default=2000, ge=1900, le=2199, description="capture times before this year are refused (422)"
    )
    last_year: int = Field(
        default=2100, ge=1900, le=2199, description="capture times after this year are refused (422)"
    )
    capture_ahead_s: float = Field(
        default=300.0,
        ge=0,
        le=86400,
        description="a capture time this many seconds ahead of the server clock is still accepted",
    )
    max_extend_days: float = Field(
        default=30.0,
        gt=0,
        le=366,
        description="the most one `extend` transition may add, as days in the class's own unit",
    )
    max_upload_mb: float = Field(default=20.0, description="largest image upload accepted, MiB (413 above)")
    inference_threads: int = Field(default=2, description="images inferred at once; more wait in the queue")
    render_threads: int = Field(
        default=1, ge=1, description="evidence images blurred or annotated at once (not the detector's)"
    )
    inference_queue: int = Field(default=16, description="uploads that may wait for inference (then 503)")
    labelstudio_files_root: Path | None = Field(
        default=None,
        description="Label Studio's local-files document root: task images are read only under it",
    )
    labelstudio_url: str = Field(
        default="", description="Label Studio's base URL (task images are fetched from it)"
    )
    labelstudio_token: str = Field(
        default="", description="Label Studio access token: task images and `data pull` fetch with it"
    )
    labelstudio_pull_s: float = Field(
        default=0.0,
        description="the service pulls annotations from Label Studio's API this often, seconds (0: never; "
        "the webhook alone can lose an annotation)",
    )
    annotations_dir: Path = Field(
        default=Path("annotations"), description="annotations received by webhook, and queued retraining jobs"
    )
    retrain_after: int = Field(
        default=0, description="queue retraining after this many new annotations (0: only on START_TRAINING)"
    )


@cache
def get_settings() -> Settings:
    return Settings()
