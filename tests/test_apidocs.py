"""The interactive API docs (/docs) work on a closed network: every file the page loads comes from
the service itself (before: Swagger UI's script and style came from cdn.jsdelivr.net and its icon
from fastapi.tiangolo.com, so on a bureau's network without internet the page stayed blank).

Over HTTP: each script, style and icon the page names is local and answers 200 with its type, the
page runs no inline script and its Content-Security-Policy allows nothing from elsewhere. In a real
headless Chromium that can resolve no host but 127.0.0.1: the page draws every operation and the
security schemes (the session's CSRFToken with them).
"""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from conftest import Service, serving
from test_console import chrome, css, one, wait

from serve.api.routers.apidocs import ASSETS
from serve.cases.settings import Settings

TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
# Chromium resolves no host but the service's: what a bureau's closed network gives a browser
CLOSED_NETWORK = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


class Loads(HTMLParser):
    """Every URL a page loads (scripts, styles, icons) and the text of each inline script."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script":
            if named.get("src"):
                self.urls.append(str(named["src"]))
            else:
                self._in_script = True
                self.inline.append("")
        elif tag == "link" and named.get("href"):
            self.urls.append(str(named["href"]))
        elif tag in ("img", "iframe") and named.get("src"):
            self.urls.append(str(named["src"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline[-1] += data


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_file_of_the_docs_page_is_served_by_the_service(service: Service) -> None:
    page = service.client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    loads = Loads()
    loads.feed(page.text)
    suffixes = {Path(urlsplit(url).path).suffix for url in loads.urls}
    assert suffixes == {".js", ".css", ".png"}, loads.urls  # Swagger UI's script, its style, the icon
    for url in loads.urls:
        absolute = urljoin(str(page.url), url)
        assert urlsplit(absolute).netloc == urlsplit(str(page.url)).netloc, f"{url} is not the service's"
        answer = service.client.get(absolute)
        assert answer.status_code == 200, url
        assert answer.headers["content-type"].startswith(TYPES[Path(urlsplit(url).path).suffix]), url
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert not [text for text in loads.inline if text.strip()]  # started by a file: no inline script
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy and "unsafe" not in policy
    assert "frame-ancestors 'none'" in policy
    assert service.client.get("/openapi.json").status_code == 200  # what the page fetches


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_only_the_pages_own_files_are_served_and_redoc_is_off(service: Service) -> None:
    """The files come from a fixed list (not the folder: its LICENSE is not a page's); /redoc,
    whose ReDoc is not shipped, is not served rather than served blank."""
    for name in ("LICENSE", "..%2Fapidocs.py", "swagger-ui-bundle.js.map"):
        assert service.client.get(f"/docs/assets/{name}").status_code == 404, name
    assert service.client.get("/redoc").status_code == 404
    assert all(path.is_file() for path in ASSETS.values())


@pytest.fixture(scope="module")
def docs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service on a real uvicorn (SQLite, no keys: the page needs none); yields /docs's URL."""
    from serve.api.app import create_app

    folder = tmp_path_factory.mktemp("apidocs")
    settings = Settings(
        secret="apidocs-test-secret-0123456789",
        db_url=f"sqlite:///{folder / 'cases.db'}",
        evidence_dir=folder / "evidence",
    )
    with serving(create_app(settings)) as url:
        yield f"{url}/docs"


def test_the_docs_page_draws_the_api_with_no_host_but_the_service(docs_url: str) -> None:
    with chrome("--window-size=1280,900", CLOSED_NETWORK) as driver:
        driver.get(docs_url)
        one(driver, "#operations-reports-report")  # POST /v1/reports, drawn from /openapi.json
        post = one(driver, "#operations-reports-report .opblock-summary").text
        assert "POST" in post and "/v1/reports" in post
        assert len(css(driver, ".opblock")) > 50  # every operation, not one
        styled = "return getComputedStyle(document.querySelector('.opblock-post')).backgroundColor"
        assert driver.execute_script(styled) not in ("rgba(0, 0, 0, 0)", "transparent")  # its style loaded
        loaded = "return performance.getEntriesByType('resource').map(e => e.name)"
        assert all(url.startswith(docs_url.removesuffix("/docs")) for url in driver.execute_script(loaded))
        one(driver, "button.authorize").click()  # the security schemes, the session's CSRFToken among them
        wait(driver, lambda d: "CSRFToken" in one(d, ".dialog-ux").text, "no CSRFToken scheme shown")
        schemes = one(driver, ".dialog-ux").text
        assert "X-CSRF-Token" in schemes and "X-API-Key" in schemes
