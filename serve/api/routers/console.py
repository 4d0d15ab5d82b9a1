"""The web console: one page and its static files (plain JS modules, no build step).

The console is a client of the JSON API and nothing else: every number it shows comes from the
same endpoints bureau systems call, with the API key the person signed in with (kept in the
browser's sessionStorage and sent as a header, never put in a URL). The page itself needs no key.
A service worker (`/sw.js`, scope `/`) keeps the page and its files for a phone that reloads with no
signal; its text carries the version of what it keeps, so a new release replaces it.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from serve.api.deps import ServiceDep
from serve.cases.errors import NotFound, as_sent

PACKAGE = Path(__file__).resolve().parents[2]
STATIC = PACKAGE / "static"
ASSETS = {path.name: path for path in STATIC.iterdir() if path.is_file()}
TEMPLATES = Environment(
    loader=FileSystemLoader(PACKAGE / "templates"), autoescape=select_autoescape(["html"])
)
# Scripts and styles from this server only; images also from blob: (evidence fetched with the key)
# and from any tile server the person configures for the map.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' blob: data: http: https:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
NO_STORE = {"Cache-Control": "no-cache"}


def shell_version(assets: dict[str, Path]) -> str:
    """The console's release: the package's version and a hash of the page, the service worker and
    every static file. Any change gives the worker new text, which the browser installs in place of
    the old one (and the old one's files are dropped): a phone never keeps a stale console."""
    digest = hashlib.sha256()
    pages = [PACKAGE / "templates" / "console.html", PACKAGE / "templates" / "sw.js"]
    for path in [*pages, *sorted(assets.values())]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"{version('streetorder')}-{digest.hexdigest()[:16]}"


VERSION = shell_version(ASSETS)

router = APIRouter(include_in_schema=False)


@router.get("/")
def console(service: ServiceDep) -> HTMLResponse:
    """The console page; the bureau's timezone goes in so that times read as the bureau's clock, and
    the upload limit so that a phone photo over it is refused before it is sent on a slow link."""
    page = TEMPLATES.get_template("console.html").render(
        timezone=str(service.domain.rules.calendar.timezone), max_upload_mb=service.settings.max_upload_mb
    )
    return HTMLResponse(page, headers={"Content-Security-Policy": POLICY, **NO_STORE})


@router.get("/sw.js")
def service_worker() -> Response:
    """The service worker, served from the console's own path so that its scope is the console's."""
    text = TEMPLATES.get_template("sw.js").render(version=VERSION, files=sorted(ASSETS))
    return Response(text, media_type="text/javascript", headers=NO_STORE)


@router.get("/console/{name}")
def asset(name: str) -> FileResponse:
    path = ASSETS.get(name)
    if path is None:
        raise NotFound("console file", as_sent(name))
    return FileResponse(path, headers=NO_STORE)
