"""`streetorder serve`: run the case service with uvicorn."""

from __future__ import annotations

import argparse
import sys

from serve.cases.auth import SecretError
from serve.cases.settings import get_settings
from serve.cli.args import port


def cli(argv: list[str]) -> int:
    """Serve the API (OpenAPI at /docs) until interrupted."""
    import uvicorn

    from serve.api.app import create_app
    from serve.api.problems import ProblemH11Protocol
    from serve.cases.db import open_database
    from serve.cases.domain import load_domain
    from serve.cases.notify import load_notify_config
    from serve.cases.scan import load_flyer_finder
    from serve.cases.watch import load_service_cameras

    parser = argparse.ArgumentParser(prog="streetorder serve", description=cli.__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=port, default=8000, help="port (default 8000)")
    parser.add_argument("--db", help="database URL (default STREETORDER_DB_URL or sqlite:///streetorder.db)")
    parser.add_argument("--model", help="model name under models/ or a weights path (default settings)")
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    args = parser.parse_args(argv)
    updates = {k: v for k, v in (("db_url", args.db), ("model", args.model)) if v}
    settings = get_settings().model_copy(update=updates)
    try:
        app = create_app(settings)
    except SecretError as err:
        print(f"streetorder serve: {err}", file=sys.stderr)
        return 1
    # the app's lifespan loads these again (configs cached, database migrated): a config file, a
    # webhook secret or a database that cannot be used is then one line from the CLI, not a traceback
    # from uvicorn's start-up
    domain = load_domain(settings)
    load_notify_config(settings.notifications_file(), departments=domain.routing.departments)
    load_flyer_finder(settings)
    cameras = settings.configs_dir / "cameras.yaml"
    if cameras.exists():
        load_service_cameras(cameras, domain.rules, settings.cameras_max_mb)
    open_database(settings.db_url)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, http=ProblemH11Protocol)
    return 0
