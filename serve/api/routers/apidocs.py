"""The interactive API docs (/docs, Swagger UI) served whole by the service itself.

FastAPI's own /docs and /redoc load their scripts and styles from cdn.jsdelivr.net: on a bureau's
closed network (no internet) both pages stayed blank. Swagger UI 5 (swagger-ui-dist, Apache-2.0;
its version and how to update it: the README's API section) is kept in serve/static/apidocs/ and
started by init.js there, so that the page runs no inline script and its Content-Security-Policy
allows scripts and styles from this server only. ReDoc is not shipped: /redoc is off (`create_app`).
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from serve.cases.errors import NotFound, as_sent

FOLDER = Path(__file__).resolve().parents[2] / "static" / "apidocs"
MEDIA_TYPES = {  # named, not guessed: with nosniff a script served as text/plain would not run
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}
ASSETS = {
    name: FOLDER / name for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "init.js")
}
PREFIX = "/docs/assets"
# Swagger UI fetches the document and tries requests on this server; it shows photos answered as blob:
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title} - API</title>
<link rel="stylesheet" href="{prefix}/swagger-ui.css">
<link rel="icon" type="image/png" href="{prefix}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-openapi="{openapi}"></div>
<script src="{prefix}/swagger-ui-bundle.js"></script>
<script src="{prefix}/init.js"></script>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    page = PAGE.format(
        title=escape(request.app.title), prefix=PREFIX, openapi=escape(request.app.openapi_url)
    )
    return HTMLResponse(page, headers={"Content-Security-Policy": POLICY})


@router.get(PREFIX + "/{name}")
def asset(name: str) -> FileResponse:
    path = ASSETS.get(name)
    if path is None:
        raise NotFound("API docs file", as_sent(name))
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})
