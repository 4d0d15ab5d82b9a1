"""Settings of the service and the CLI, read from the environment (`STREETORDER_*`) or a .env file.

Typed defaults live here and only here; configs/*.yaml hold the domain configuration they point to.
The entry (a CLI mode, `create_app`) makes one `Settings` and passes what each part needs down:
nothing else reads the environment or finds a folder from its own location.

Where the folders are by default: `configs/` and `models/` travel inside the package
(`serve/packaged/` holds links to the checkout's folders; a wheel holds copies: every config, the
registry and the model cards, not the weights), so a plain `pip install .` finds them, and in a
checkout they are the checkout's own. Folders of data the service writes are relative to the
working directory, like `evidence` and `annotations`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from serve.cases.coords import CoordSystem
from serve.cases.enums import SCOPES
from vision.core.imageio import MIN_PHOTO_SIDE
from vision.core.taxonomy import TAXONOMY, Taxonomy, load_taxonomy

PACKAGED = Path(str(files("serve") / "packaged"))  # configs/ and models/ (links in a checkout)
PACKAGED_CONFIGS = (PACKAGED / "configs").resolve()
PACKAGED_MODELS = (PACKAGED / "models").resolve()
# a camera frame's write is tried again on a transient conflict for at most this long (a pushed frame is
# a request someone waits for: on SQLite one more try after its 30 s busy_timeout, not five)
FRAME_BUSY_BUDGET_S = 45.0
MAX_WAITING_EVENTS = 1000  # a camera's events kept while the database stays busy (serve/cases/cameras.py)
# cameras.yaml is refused above this size: about 1 KB a camera as the shipped file writes them (comments
# and 3 zones), so some 8000 cameras; it loads in about 1 s a MB (libyaml), outside the cameras' lock
CAMERAS_MAX_MB = 8.0


class Settings(BaseSettings):
    # NaN or infinity is no setting: NaN compares false with everything (a radius no case is within)
    model_config = SettingsConfigDict(
        env_prefix="STREETORDER_", env_file=".env", extra="ignore", allow_inf_nan=False
    )

    db_url: str = Field(default="sqlite:///streetorder.db", description="SQLAlchemy URL of the case database")
    model: str = Field(
        default="current",
        description="model name under models/, a path to weights, or `current`: the model that "
        "models/registry.yaml names, followed when it is promoted or rolled back",
    )
    model_reload_s: float = Field(
        default=2.0, ge=0, description="how often the service looks for a promoted model"
    )
    cameras_reload_s: float = Field(
        default=5.0,
        ge=0,
        description="how often the service looks for an edited cameras.yaml (0: never; "
        "POST /v1/cameras/reload applies it on demand)",
    )
    cameras_max_mb: float = Field(
        default=CAMERAS_MAX_MB,
        gt=0,
        description="cameras.yaml over this size is refused (at start, and on reload: 422, the file in "
        "force stays); it loads in about 1 s a MB",
    )
    camera_busy_budget_s: float = Field(
        default=FRAME_BUSY_BUDGET_S,
        gt=0,
        description="how long a camera frame's write is tried again while the database is busy; then its "
        "events wait with the camera, written first with its next frame (the frame is answered 503)",
    )
    camera_waiting_events: int = Field(
        default=MAX_WAITING_EVENTS,
        ge=1,
        description="the most events one camera keeps waiting for a busy database: beyond it the oldest "
        "'still there' evidence goes first, then the newest changes (a case's start is never dropped for "
        "later news)",
    )
    configs_dir: Path = Field(
        default=PACKAGED_CONFIGS,
        description="folder of the domain configuration: taxonomy, calendar, routing, workflow, stats, "
        "promotion, relay, cameras, flyers, notifications (YAML) and dataset mixes; the detector and "
        "the cases read the same taxonomy from it",
    )
    grids: Path = Field(
        default=PACKAGED_CONFIGS / "grids.example.geojson", description="GeoJSON of unit grids"
    )
    grids_crs: CoordSystem | None = Field(
        default=None,
        description="coordinate system of the grids file: wgs84, gcj02 (drawn on AMap or Tencent maps) or "
        "bd09 (Baidu); unset: the file's own crs member, else wgs84. Grids are kept as WGS-84",
    )
    geojson_crs: CoordSystem = Field(
        default="wgs84",
        description="coordinate system of the scan report's cases.geojson: wgs84, gcj02 (for a GIS on AMap "
        "or Tencent maps) or bd09 (Baidu), named in its crs member; cases.csv and report.html stay WGS-84",
    )
    models_dir: Path = Field(
        default=PACKAGED_MODELS,
        description="model folders (card.yaml and weights) and registry.yaml, which names the current "
        "model; promotions and rollbacks rewrite it",
    )
    data_dir: Path = Field(
        default=Path("datasets"),
        description="the project's own data: reviewed negatives (reviews/) and versioned datasets of "
        "imported annotations",
    )
    shared_datasets_dir: Path = Field(
        default=Path("../shared/datasets"),
        description="the labelled public datasets (garbage-cn, ...) that the demo and the benchmarks read",
    )
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "streetorder",
        description="what can be made again: built training mixes, images fetched for import, the "
        "measured runtime choice, the frozen holdout's looks, wheels for the GPU relay",
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
        default=50.0, gt=0, description="a finding this close to an open case joins it"
    )
    duplicate_window_h: float = Field(
        default=24.0, gt=0, description="... if the case was last seen this recently"
    )
    after_photo_radius_m: float = Field(
        default=50.0,
        gt=0,
        description="an after-photo's EXIF GPS must be this close to the case (verified closing)",
    )
    case_prefix: str = Field(default="SO", description="case number prefix: PREFIX + yyyyMMdd + sequence")
    secret: str = Field(default="", description="secret mixed into API-key hashes; required outside dev mode")
    dev: bool = Field(default=False, description="dev mode: allows an empty secret (never in production)")
    notifications: Path | None = Field(
        default=None,
        description="webhook and adapter targets of dispatch and deadline messages; unset: the "
        "notifications.yaml of STREETORDER_CONFIGS_DIR",
    )
    notify_s: float = Field(
        default=10.0, ge=0, description="how often queued notifications are sent (0: never)"
    )
    session_hours: float = Field(
        default=12.0, gt=0, description="a console session lasts this long (one shift)"
    )
    cookie_secure: bool = Field(
        default=False,
        description="mark the session cookie Secure (behind a TLS proxy); requests that arrive over https "
        "get it anyway",
    )
    key_rate_per_min: int = Field(
        default=600,
        ge=1,
        description="requests a minute one API key may make (10 a second), then 429 with Retry-After; "
        "people's sessions are not counted, failed keys are counted per address",
    )
    key_rate_per_min_by_scope: dict[str, int] = Field(
        default={"report": 2400, "detect": 1200},
        description="higher rates for keys of these scopes (a key gets the highest of its scopes): "
        "`report` keys push camera frames (2400: 20 cameras at 2 fps) and citizens' reports, "
        "`detect` keys send photos to the model; JSON in the variable",
    )
    key_burst_s: float = Field(
        default=10.0,
        gt=0,
        description="a key may send this many seconds' worth of its rate at once (a bridge catching up "
        "after a network outage), on top of the steady rate",
    )
    public_url: str = Field(
        default="",
        pattern=r"^(https?://[^/?#\s]+(/[^?#\s]*)?)?$",
        description="the service's address as its clients reach it (e.g. https://cases.bureau.example): "
        "absolute links (Open311 discovery and media_url, ledger evidence links) are made from it; "
        "empty: from each request's Host header, which any client can forge (development only)",
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
    max_upload_mb: float = Field(
        default=20.0, gt=0, description="largest image upload accepted, MiB (413 above)"
    )
    min_photo_side: int = Field(
        default=MIN_PHOTO_SIDE,
        ge=1,
        description="a photo whose shorter side is under this many pixels shows nothing to judge: "
        "refused by every door (422), listed too small by a scan",
    )
    inference_threads: int = Field(
        default=2, ge=1, le=1024, description="images inferred at once; more wait in the queue"
    )
    render_threads: int = Field(
        default=1, ge=1, description="evidence images blurred or annotated at once (not the detector's)"
    )
    inference_queue: int = Field(
        default=16, ge=0, le=1_000_000, description="uploads that may wait for inference (then 503)"
    )
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
        ge=0,
        description="the service pulls annotations from Label Studio's API this often, seconds (0: never; "
        "the webhook alone can lose an annotation)",
    )
    annotations_dir: Path = Field(
        default=Path("annotations"), description="annotations received by webhook, and queued retraining jobs"
    )
    annotation_import_max_mb: float = Field(
        default=256.0,
        gt=0,
        description="largest file `data import` reads whole (an export's JSON, a label file, an image), MiB",
    )
    annotation_import_max_items: int = Field(
        default=100_000,
        ge=1,
        description="most tasks, rows, COCO images or annotations, label-file lines or zip members "
        "in one export",
    )
    retrain_after: int = Field(
        default=0,
        ge=0,
        description="queue retraining after this many new annotations (0: only on START_TRAINING)",
    )

    @field_validator("key_rate_per_min_by_scope")
    @classmethod
    def _known_scopes(cls, rates: dict[str, int]) -> dict[str, int]:
        """A misspelt scope would silently give its keys the default rate."""
        for scope, rate in rates.items():
            if scope not in SCOPES or rate < 1:
                raise ValueError(f"{scope}: {rate}: expected a scope of {', '.join(SCOPES)} and a rate >= 1")
        return rates

    def notifications_file(self) -> Path:
        """The notifications file: a bureau's own configs folder holds its own (the package's was read
        whatever STREETORDER_CONFIGS_DIR said, so the bureau's webhooks were silently never called)."""
        return self.notifications or self.configs_dir / "notifications.yaml"

    def taxonomy(self) -> Taxonomy:
        """The one taxonomy of this configuration: the detector, the intake and the cameras all read it."""
        return load_taxonomy(self.configs_dir / TAXONOMY)


class MisspeltSetting(ValueError):
    """A STREETORDER_* variable that is no setting but reads like one: a typo, ignored until now."""


def misspelt_settings(environ: Mapping[str, str]) -> list[str]:
    """`STREETORDER_NAME=value: ...; did you mean ...` for each variable that is no setting but a
    setting's name cut short (STREETORDER_DB) or one slip from it (STREETORDER_DUPLICATE_RADIUS):
    pydantic ignores unknown variables, so the setting stayed at its default and nobody was told.
    Other STREETORDER_* names (webhook secrets a notifications.yaml names) are left alone."""
    fields = list(Settings.model_fields)
    said = []
    for variable, value in sorted(environ.items()):
        name = variable.upper().removeprefix("STREETORDER_").lower()
        if not variable.upper().startswith("STREETORDER_") or name in fields:
            continue
        near = [f for f in fields if f.startswith(name)] or difflib.get_close_matches(name, fields, 1, 0.86)
        if near:
            shown = "***" if "secret" in name or "token" in name else value[:40]
            said.append(f"{variable}={shown}: no such setting; did you mean STREETORDER_{near[0].upper()}?")
    return said


@cache
def get_settings() -> Settings:
    """The settings of this process, read once, when an entry first asks (never at import)."""
    if said := misspelt_settings(os.environ):
        raise MisspeltSetting("; ".join(said))
    return Settings()


def settings_problem(err: Exception) -> str | None:
    """A setting that cannot be used, said by its variable and value (`STREETORDER_NAME=value: why`),
    so that an operator sees which line of the environment to mend, not pydantic's traceback; None
    when `err` is no settings error."""
    if isinstance(err, MisspeltSetting):
        return str(err)
    if isinstance(err, SettingsError):  # a JSON setting that is no JSON; the message names the field
        field = re.search(r'field "(\w+)"', str(err))
        return f"STREETORDER_{field[1].upper()}: cannot be read: JSON expected" if field else str(err)
    if not isinstance(err, ValidationError) or err.title != Settings.__name__:
        return None
    said = []
    for error in err.errors():
        name = str(error["loc"][0])
        value = "***" if name in ("secret", "labelstudio_token") else str(error.get("input"))[:40]
        said.append(f"STREETORDER_{name.upper()}={value}: {error['msg']}")
    return "; ".join(said)


def settings_table() -> str:
    """The README's settings table: each field's variable, default and description, from the model."""
    rows = ["| variable | default | what it is |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, Path):
            default = _shown(default)
        shown = "(empty)" if default in ("", None) else f"`{default}`"
        rows.append(f"| `STREETORDER_{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(rows) + "\n"


def _shown(path: Path) -> str:
    """A default folder as a reader should see it: relative to the package or the home folder."""
    for base, name in ((PACKAGED_CONFIGS, "configs"), (PACKAGED_MODELS, "models"), (Path.home(), "~")):
        if path.is_relative_to(base):
            shown = Path("<package>") / name if base != Path.home() else Path(name)
            return str(shown / path.relative_to(base)).removesuffix("/.")
    return str(path)
