"""The web console (issue 9): the reads it needs from the API over HTTP on SQLite and PostgreSQL, and
the console itself in a real headless Chromium (Debian's chromium + chromedriver, `make test`
installs them) against the real service on uvicorn at 127.0.0.1.

The browser tests share one service and one browser (starting them is most of the time); each test
makes its own cases in its own grid or class, so the order of the tests does not matter. The
service's clock is a test clock (as in the API tests): the day replayed is Tuesday 2025-09-23,
in the 10-day period 2025-09-3. Screenshots of the main pages go to docs/screenshots/.
"""

from __future__ import annotations

import hashlib
import io
import math
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import httpx
import numpy as np
import pytest
from conftest import Clock, Service, _jpeg, on_site, serving
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait
from streets import DATASETS

from serve.api.routers import console
from serve.cases.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"
TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2025, 9, 23, 9, 0, tzinfo=TZ)  # a Tuesday, in the 旬 2025-09-3
GRID_LIFE = ("410103001001005", 34.72265, 113.62762)  # (grid, lat, lon) of the whole-life test
GRID_FLYER = ("410103001002005", 34.72273, 113.63081)
GRID_PAGING = ("410103001002001", 34.72365, 113.62976)
GRID_QUIET = ("410103001002003", 34.7235, 113.6320)  # the read-only and map tests'
GRID_REGROUP = ("410103001001001", 34.72359, 113.62654)  # detach, split and merge
GRID_OVERRIDE = ("410103001001003", 34.72361, 113.62879)  # a failed after-photo accepted with a reason
GRID_NAVIGATE = ("410103001002006", 34.72262, 113.63204)  # links to AMap and Baidu
STREET = "淮河路街道"  # every example grid's street
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_S = 15


# --- the API reads the console uses -------------------------------------------------------------


def test_console_page_and_the_reads_it_uses(service: Service, jpeg: Callable[..., bytes]) -> None:
    client, reader = service.client, service.auth("cases:read")
    page = client.get("/")  # the page needs no key; every read behind it does
    assert page.status_code == 200 and 'content="Asia/Shanghai"' in page.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    script = client.get("/console/console.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    for missing in ("/console/nope.js", "/console/..%2Fapp.py", "/console/%2E%2E%2Fapp.py"):
        assert client.get(missing).status_code == 404, missing
    worker = client.get("/sw.js")  # at the console's path: its scope is the console's
    assert "javascript" in worker.headers["content-type"] and worker.headers["Cache-Control"] == "no-cache"
    assert f'"{console.VERSION}"' in worker.text and '"i18n.js"' in worker.text and "{{" not in worker.text
    assert client.get("/v1/grids.geojson").status_code == 401

    events = client.get("/v1/events", headers=reader).json()
    garbage = next(e for e in events if e["key"] == "exposed_garbage")
    assert (garbage["cjt214"], garbage["gbt47678"], garbage["unit"]) == ("0102", "06010", "working_hours")

    # garbage and a bin in one grid, and garbage in another grid 100 m east
    for code, lat, lon in (
        ("06010", 34.72265, 113.62762),
        ("06042", 34.72265, 113.62762),
        ("06010", 34.7231, 113.6291),
    ):
        service.clock.at += timedelta(minutes=1)
        client.post(
            "/open311/v2/requests.json",
            data={"service_code": code, "lat": lat, "long": lon},
            headers=service.auth("report"),
        ).raise_for_status()
    first = client.get("/v1/cases", params={"limit": 1}, headers=reader).json()
    assert first["total"] == 3 and first["by_state"] == {"reported": 3} and len(first["items"]) == 1
    rest = client.get("/v1/cases", params={"limit": 1, "cursor": first["next_cursor"]}, headers=reader).json()
    assert rest["total"] == 3 and rest["items"][0]["id"] < first["items"][0]["id"]  # counts ignore paging
    garbage_only = client.get("/v1/cases", params={"event": "exposed_garbage"}, headers=reader).json()
    assert garbage_only["total"] == 2

    grids = client.get("/v1/grids.geojson", headers=reader).json()
    assert sum(f["properties"]["open_cases"] for f in grids["features"]) == 0  # reports awaiting review
    for case in client.get("/v1/cases", headers=reader).json()["items"]:
        for action in ("confirm", "file"):
            etag = client.get(f"/v1/cases/{case['id']}", headers=reader).headers["ETag"]
            client.post(
                f"/v1/cases/{case['id']}/transitions",
                json={"action": action},
                headers={**service.auth("cases:write"), "If-Match": etag},
            ).raise_for_status()
    grids = client.get("/v1/grids.geojson", headers=reader).json()
    by_code = {f["properties"]["code"]: f for f in grids["features"]}
    assert len(by_code) == 12 and by_code[GRID_LIFE[0]]["geometry"]["type"] == "Polygon"
    spot = by_code[GRID_LIFE[0]]["properties"]  # the bin and the garbage nearby are filed and open in it
    assert spot["open_cases"] == 2 and spot["open_per_km2"] == pytest.approx(2 / spot["area_km2"])
    assert sum(f["properties"]["open_cases"] for f in grids["features"]) == 3

    daily = client.get(
        "/v1/stats/daily", params={"since": "2025-09-29", "until": "2025-10-02"}, headers=reader
    ).json()
    assert daily["days"] == ["2025-09-29", "2025-09-30", "2025-10-01"]
    assert {s["event"]: s["counts"] for s in daily["events"]} == {
        "exposed_garbage": [0, 2, 0],
        "overflowing_bin": [0, 1, 0],
    }
    default = client.get("/v1/stats/daily", headers=reader).json()  # 30 days up to the clock's today
    assert default["until"] == "2025-10-01" and len(default["days"]) == 30
    for bad in (
        {"since": "2025-10-02", "until": "2025-10-01"},
        {"since": "2020-01-01", "until": "2025-01-01"},
    ):
        refused = client.get("/v1/stats/daily", params=bad, headers=reader)
        assert refused.status_code == 422 and refused.json()["field"] == "since/until"


# --- the console in a browser --------------------------------------------------------------------


@dataclass
class Live:
    base: str
    clock: Clock
    keys: dict[str, str]  # console (cases:read + cases:write), report, detect (no cases:read)
    service: Any  # serve.api.state.Service of the running app

    def api(
        self,
        method: str,
        path: str,
        key: str = "console",
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """A request with one of the test keys; asserts it succeeded."""
        headers = {"X-API-Key": self.keys[key], **(headers or {})}
        response = httpx.request(method, f"{self.base}{path}", headers=headers, **kwargs)
        assert response.is_success, response.text
        return response


def open311(live: Live, code: str, lat: float, lon: float, description: str) -> int:
    """File a citizen report through the API (scope report); returns the id of its case."""
    posted = live.api(
        "POST",
        "/open311/v2/requests.json",
        key="report",
        data={"service_code": code, "lat": lat, "long": lon, "description": description},
    )
    number = posted.json()[0]["service_request_id"]
    items = live.api("GET", "/v1/cases", params={"limit": 1000}).json()["items"]
    return next(int(c["id"]) for c in items if c["number"] == number)


def step(live: Live, case_id: int, action: str, **fields: Any) -> None:
    """One workflow step through the API (the console key), with the case's current version."""
    etag = live.api("GET", f"/v1/cases/{case_id}").headers["ETag"]
    live.api(
        "POST",
        f"/v1/cases/{case_id}/transitions",
        json={"action": action, **fields},
        headers={"If-Match": etag},
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The service on a real uvicorn at 127.0.0.1 (in a thread, with a test clock), SQLite, current model."""
    from serve.api.app import create_app
    from serve.cases.auth import create_key
    from serve.cases.db import transaction

    folder = tmp_path_factory.mktemp("console")
    settings = Settings(
        secret="console-test-secret-0123456789",
        db_url=f"sqlite:///{folder / 'cases.db'}",
        evidence_dir=folder / "evidence",
        key_rate_per_min=100_000_000,  # the tests' own calls and the browser's share one key, at full speed
    )
    clock = Clock(START)
    app = create_app(settings, clock=clock)
    with serving(app) as url:
        state = app.state.service
        keys = {}
        with transaction(state.sessions) as session:
            for name, scopes in {
                "console": ["cases:read", "cases:write"],
                "report": ["report"],
                "detect": ["detect"],
                "admin": ["admin"],  # sees evidence as it was sent (evidence:raw)
            }.items():
                keys[name], _ = create_key(
                    session, name=name, scopes=scopes, pepper=state.verifier.pepper, now=START
                )
        yield Live(url, clock, keys, state)


@contextmanager
def chrome(*arguments: str, emulation: dict[str, Any] | None = None) -> Iterator[Any]:
    """Headless Chromium through chromedriver (both from Debian: `make test` installs them), with
    `arguments` besides the common ones and, for a phone, chromedriver's `mobileEmulation`."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "no chromium/chromedriver on PATH: install Debian's `chromium chromium-driver` "
            "(make test does, as root) to run the browser tests"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    common = (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--lang=zh-CN",
        "--hide-scrollbars",
    )
    for argument in (*common, *arguments):  # --no-sandbox: root in a container
        options.add_argument(argument)
    if emulation is not None:
        options.add_experimental_option("mobileEmulation", emulation)
    driver = webdriver.Chrome(options=options, service=DriverService(executable_path=CHROMEDRIVER))
    driver.set_script_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A desktop's window: 1280 x 900 at scale 1."""
    with chrome("--window-size=1280,900", "--force-device-scale-factor=1") as driver:
        yield driver


def wait(driver: Any, condition: Callable[[Any], Any], message: str = "") -> Any:
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(condition, message)


def css(driver: Any, selector: str) -> list[Any]:
    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def attributes(driver: Any, selector: str, name: str) -> list[str]:
    """An attribute of every element matching, read in one step (the page may be redrawn meanwhile)."""
    script = "return [...document.querySelectorAll(arguments[0])].map(e => e.getAttribute(arguments[1]))"
    return list(driver.execute_script(script, selector, name))


def one(driver: Any, selector: str) -> Any:
    """The element once it is there (waits)."""
    return wait(driver, lambda d: (css(d, selector) or [None])[0], f"no {selector}")


def visit(driver: Any, live: Live, hash_path: str, page: str) -> None:
    """Open a page of the console by its address and wait until it is drawn."""
    driver.get(f"{live.base}/#/{hash_path}")
    one(driver, f'#view[data-page="{page}"][data-state="ready"]')
    assert live.keys["console"] not in driver.current_url


def sign_in(driver: Any, live: Live) -> None:
    driver.get(f"{live.base}/")
    if driver.execute_script("return sessionStorage.getItem('streetorder.key')") != live.keys["console"]:
        field = one(driver, "#key")
        field.clear()
        field.send_keys(live.keys["console"])
        one(driver, "#signin button[type=submit]").click()
    one(driver, '#view[data-page="cases"][data-state="ready"]')


def images_loaded(driver: Any, selector: str) -> bool:
    return bool(
        driver.execute_script(
            "const all = [...document.querySelectorAll(arguments[0])];"
            "return all.length > 0 && all.every(i => i.complete && i.naturalWidth > 0);",
            selector,
        )
    )


def screenshot(driver: Any, name: str, height: int | None = None) -> Path:
    """A PNG of the page at 1280 px wide and its full height (at most 1600 px) for docs/screenshots/."""
    full = height or min(1600, int(driver.execute_script("return document.documentElement.scrollHeight")))
    metrics = {"width": 1280, "height": full, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        png = driver.get_screenshot_as_png()
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    flat = Image.open(io.BytesIO(png)).convert("RGB").quantize(256, dither=Image.Dither.NONE)
    flat.save(path, optimize=True)  # 256 colours: a page is mostly flat, a third of the bytes
    return path


def act(driver: Any, live: Live, action: str, at: datetime, photo: Path | None = None) -> None:
    """Press the action's button on the case page, fill its form, submit, and wait for the new step."""
    live.clock.at = at
    steps = len(css(driver, "#flow tbody tr"))
    one(driver, f'#actions button[data-action="{action}"]').click()
    one(driver, f'#action-form[data-action="{action}"]')
    if photo is not None:
        one(driver, "#after-photo").send_keys(str(photo))
    one(driver, "#action-submit").click()
    wait(driver, lambda d: len(css(d, "#flow tbody tr")) == steps + 1, f"{action} did not land")
    assert css(driver, "#flow tbody tr")[-1].get_attribute("data-action") == action


def ranking_row(driver: Any, live: Live) -> tuple[int, str]:
    visit(driver, live, "rankings", "rankings")
    row = one(driver, f'#ranking tr[data-street="{STREET}"]')
    return int(row.get_attribute("data-problems")), row.find_element("css selector", "td.ontime").text


def street_photo(path: Path, seed: int) -> Path:
    """A small street-like JPEG: road, pavement, kerb and a box on it (written here, never committed)."""
    image = np.full((360, 640, 3), (92, 90, 88), np.uint8)
    image[200:] = (150, 160, 165)
    cv2.line(image, (0, 200), (640, 200), (225, 225, 225), 6)
    for x in range(40, 640, 120):
        cv2.line(image, (x, 110), (x + 60, 110), (230, 230, 230), 4)
    cv2.rectangle(image, (250 + seed * 30, 220), (380, 300), (40, 170, 220), -1)
    cv2.imwrite(str(path), image)
    return path


def test_case_life_from_sign_in_to_closing_and_the_ranking(live: Live, browser: Any, tmp_path: Path) -> None:
    driver = browser
    driver.get(f"{live.base}/")
    driver.execute_script("sessionStorage.clear(); localStorage.clear();")
    driver.get(f"{live.base}/")
    one(driver, "#key").send_keys("so_000000000000_not-a-key")
    one(driver, "#signin button[type=submit]").click()
    wait(driver, lambda d: "密钥无效" in one(d, "#signin-error").text, "bad key not refused")
    assert not one(driver, "#nav").is_displayed() and not one(driver, "#signout").is_displayed()
    screenshot(driver, "signin", height=640)
    one(driver, "#key").clear()
    one(driver, "#key").send_keys(live.keys["detect"])  # valid, but may not read cases
    one(driver, "#signin button[type=submit]").click()
    wait(driver, lambda d: "cases:read" in one(d, "#signin-error").text, "key without scope not refused")
    sign_in(driver, live)
    stored = driver.execute_script("return sessionStorage.getItem('streetorder.key')")
    assert stored == live.keys["console"] and stored not in driver.current_url

    problems_before, _ = ranking_row(driver, live)
    grid, lat, lon = GRID_LIFE
    live.clock.at = START
    case_id = open311(live, "06010", lat, lon, "路口一堆装修垃圾")
    live.api(  # the inspector's photo on arrival
        "POST",
        f"/v1/cases/{case_id}/evidence",
        files={"file": ("before.jpg", street_photo(tmp_path / "before.jpg", 0).read_bytes(), "image/jpeg")},
        data={"role": "before"},
    )
    number = live.api("GET", f"/v1/cases/{case_id}").json()["number"]

    visit(driver, live, "cases", "cases")
    link = one(driver, f'#cases tr[data-case="{case_id}"] a.case-link')
    assert link.text == number

    # A report awaiting review is no open problem of its grid yet: the map leaves the grid uncoloured.
    visit(driver, live, "map", "map")
    cell = one(driver, f'#map g.grid[data-code="{grid}"]')
    assert cell.get_attribute("data-open") == "0"
    assert cell.find_element("css selector", "path").get_attribute("fill") == "#e6ece4"
    one(driver, f'#map a.marker[data-case="{case_id}"]').click()
    one(driver, f'#view[data-page="case"][data-state="ready"] section[data-case="{case_id}"]')

    allowed = live.api("GET", f"/v1/cases/{case_id}").json()["allowed_actions"]
    shown = [b.get_attribute("data-action") for b in css(driver, "#actions button")]
    assert shown == allowed == ["confirm", "correct", "reject", "cancel", "force_close"]

    act(driver, live, "confirm", START + timedelta(minutes=5))
    act(driver, live, "file", START + timedelta(minutes=10))

    # Filed (立案), the map shows the case's grid (one open case in it) and the marker opens the case.
    visit(driver, live, "map", "map")
    cell = one(driver, f'#map g.grid[data-code="{grid}"]')
    assert cell.get_attribute("data-open") == "1"
    assert cell.find_element("css selector", "path").get_attribute("fill") != "#e6ece4"  # coloured
    screenshot(driver, "map")
    one(driver, f'#map a.marker[data-case="{case_id}"]').click()
    one(driver, f'#view[data-page="case"][data-state="ready"] section[data-case="{case_id}"]')
    act(driver, live, "dispatch", START + timedelta(minutes=30))  # 20 min after filing: the limit is 15
    assert [b.get_attribute("data-action") for b in css(driver, "#actions button")] == live.api(
        "GET", f"/v1/cases/{case_id}"
    ).json()["allowed_actions"]
    act(driver, live, "start", START + timedelta(minutes=40))
    # taken at the place after filing (passes its check), on an iPhone: HEIC, which browsers do not show
    after = tmp_path / "after.heic"
    plain = street_photo(tmp_path / "after.jpg", 3).read_bytes()
    after.write_bytes(on_site(plain, lat, lon, START + timedelta(minutes=85), "HEIF"))
    act(driver, live, "handle", START + timedelta(minutes=90), photo=after)
    act(driver, live, "check_pass", START + timedelta(minutes=100))
    act(driver, live, "close", START + timedelta(minutes=105))

    case = live.api("GET", f"/v1/cases/{case_id}").json()
    assert case["state"] == "closed" and case["department"] == "二七区环境卫生服务中心"
    assert [e["role"] for e in case["evidence"]] == ["reference", "before", "after"]
    assert css(driver, "#actions button") == []
    rows = css(driver, "#flow tbody tr")
    assert [r.get_attribute("data-action") for r in rows] == [f["action"] for f in case["flow"]]
    late = [r.get_attribute("data-action") for r in rows if r.find_elements("css selector", ".overdue")]
    assert late == [f["action"] for f in case["flow"] if f["overdue"]] == ["dispatch"]
    wait(driver, lambda d: images_loaded(d, "#before img, #after img"), "before/after photos not shown")
    after_id = case["evidence"][2]["id"]
    assert live.api("GET", f"/v1/evidence/{after_id}", "admin").headers["content-type"] == "image/heic"
    assert len(css(driver, "#before img")) == 1 and len(css(driver, "#after img")) == 1
    assert live.keys["console"] not in driver.page_source  # images came as blobs, fetched with the header
    assert {src.split(":")[0] for src in attributes(driver, "#evidence img", "src")} == {"blob"}
    screenshot(driver, "case")

    problems_after, on_time = ranking_row(driver, live)
    assert problems_after == problems_before + 1 and on_time.endswith("100%")
    assert not css(driver, f'#worst tr[data-grid="{grid}"]')  # closed: no longer a worst spot
    street = one(driver, f'#ontime-street tr[data-key="{STREET}"]')
    assert street.find_element("css selector", "td.ontime").text.endswith("100%")
    assert one(driver, '#ontime-department tr[data-key="二七区环境卫生服务中心"]')
    bar = one(driver, '#class-chart rect[data-event="exposed_garbage"][data-day="2025-09-23"]')
    assert int(bar.get_attribute("data-count")) >= 1
    screenshot(driver, "rankings")

    visit(driver, live, "map", "map")
    assert one(driver, f'#map g.grid[data-code="{grid}"]').get_attribute("data-open") == "0"
    assert not css(driver, f'#map a.marker[data-case="{case_id}"]')  # final cases only on request
    one(driver, "#show-all").click()
    one(driver, f'#map a.marker.final[data-case="{case_id}"]')


def flyer_wall(path: Path) -> tuple[float, float, float, float]:
    """A wall with a white flyer and a phone number on it; returns the flyer's box (xyxy pixels)."""
    image = np.full((360, 640, 3), (120, 135, 150), np.uint8)
    box = (260, 90, 420, 260)
    cv2.rectangle(image, box[:2], box[2:], (245, 245, 245), -1)
    cv2.putText(image, "138 1234 5678", (268, 180), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (20, 20, 20), 2)
    cv2.imwrite(str(path), image)
    return tuple(float(v) for v in box)  # type: ignore[return-value]


def test_flyer_case_shows_its_boxes_and_the_text_and_phone_numbers_read(live: Live, browser: Any) -> None:
    """A flyer found by the model with its OCR reading (the intake the scan, reports and cameras use)."""
    from serve.cases.db import transaction
    from serve.cases.findings import Finding, record_finding
    from vision.core.boxes import Box
    from vision.detect.ocr import OcrReading

    _, lat, lon = GRID_FLYER
    path = live.service.settings.evidence_dir / "flyer-wall.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    box = flyer_wall(path)
    reading = OcrReading("疏通下水道\n138 1234 5678", ("13812345678",), 0.93, 0.2)
    qr = '<img src=x onerror="document.title=1">weixin://wxpay/bizpayurl?pr=Ab1&x=<b>'  # markup in a payload
    with transaction(live.service.sessions) as session:
        case_id = record_finding(
            session,
            Finding(
                event="illegal_small_ad",
                lat=lat,
                lon=lon,
                seen_at=START,
                photo_path=str(path),
                photo_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                boxes=(Box(box, 0.81, "flyer"),),
                model_version="street-v1@test",
                extra={**reading.as_evidence(), "flyers": [{"qr": [qr], "phones": ["13812345678"]}]},
            ),
            live.service.domain.rules,
        ).case.id

    sign_in(browser, live)
    visit(browser, live, f"case/{case_id}", "case")
    assert one(browser, ".ocr .ocr-text").text == "疏通下水道\n138 1234 5678"
    assert [p.text for p in css(browser, ".ocr .phone")] == ["13812345678"]
    assert [p.text for p in css(browser, ".ocr .qr")] == [qr]  # the QR payload, as text
    assert not css(browser, ".ocr img, .ocr b")  # escaped: no markup from a payload
    finding = one(browser, '#before figure[data-role="finding"]')
    assert "1 个目标框" in finding.text and "0.81" in finding.text
    report_step = one(browser, '#flow tr[data-action="report"]').find_elements(By.TAG_NAME, "td")[-1]
    assert report_step.text == "巡查照片 · 模型识别 1 处，最高置信度 0.81（street-v1@test）"
    wait(browser, lambda d: images_loaded(d, "#before img"), "evidence image not shown")
    drawn = browser.execute_script(
        "const i = document.querySelector('#before img'); const c = document.createElement('canvas');"
        "c.width = i.naturalWidth; c.height = i.naturalHeight; const g = c.getContext('2d');"
        "g.drawImage(i, 0, 0); return [c.width, ...g.getImageData(260, 90, 1, 1).data.slice(0, 3)];"
    )
    assert drawn[0] == 640 and drawn[1:] != [245, 245, 245]  # the box's outline is drawn on the corner
    screenshot(browser, "case-flyer")

    # Correct the class with the form's event list: the case becomes an illegal poster.
    live.clock.at = START + timedelta(minutes=3)
    one(browser, '#actions button[data-action="correct"]').click()
    Select(one(browser, '#action-form select[name="event"]')).select_by_value("illegal_poster")
    one(browser, "#action-submit").click()
    wait(browser, lambda d: css(d, '#flow tr[data-action="correct"]'), "correct did not land")
    case = live.api("GET", f"/v1/cases/{case_id}").json()
    assert (case["event"], case["ai_review"], case["state"]) == ("illegal_poster", "corrected", "verified")


def test_case_list_filters_counts_and_pages_like_the_api(live: Live, browser: Any) -> None:
    grid, lat, lon = GRID_PAGING
    live.clock.at = START + timedelta(hours=1)
    made = [open311(live, code, lat, lon, "淮河社区巡查") for code in ("06010", "06042", "07001")]
    sign_in(browser, live)
    visit(browser, live, f"cases?grid={grid}&limit=2", "cases")
    assert one(browser, "#total").get_attribute("data-total") == "3"
    assert one(browser, '#counts .chip[data-state="reported"]').text.endswith("3")
    api_first = live.api("GET", "/v1/cases", params={"grid": grid, "limit": 2}).json()

    def shown() -> list[int]:
        return [int(v) for v in attributes(browser, "#cases tbody tr[data-case]", "data-case")]

    assert shown() == [c["id"] for c in api_first["items"]] == made[:0:-1]
    one(browser, "#next").click()
    wait(browser, lambda d: shown() == [made[0]], "second page not shown")
    assert "cursor=" in browser.current_url and live.keys["console"] not in browser.current_url
    one(browser, "#prev").click()
    wait(browser, lambda d: shown() == made[:0:-1], "first page not shown again")
    # one case a page: next, next, the browser's back button, then previous: the first page, not
    # the second again (previous went back along the next presses, whatever the back button did)
    visit(browser, live, f"cases?grid={grid}&limit=1", "cases")
    for page in (made[1], made[0]):
        one(browser, "#next").click()
        wait(browser, lambda d, page=page: shown() == [page], "next page not shown")
    browser.back()
    wait(browser, lambda d: shown() == [made[1]], "back to the second page")
    one(browser, "#prev").click()
    wait(browser, lambda d: shown() == [made[2]], "previous did not reach the first page")
    assert not one(browser, "#prev").is_enabled()
    visit(browser, live, f"cases?grid={grid}&limit=2", "cases")

    Select(one(browser, "#filter-event")).select_by_value("overflowing_bin")
    wait(browser, lambda d: shown() == [made[1]], "class filter not applied")
    Select(one(browser, "#filter-overdue")).select_by_value("true")
    overdue = live.api(
        "GET", "/v1/cases", params={"grid": grid, "event": "overflowing_bin", "overdue": "true"}
    ).json()
    wait(browser, lambda d: "overdue=true" in d.current_url and one(d, '#view[data-state="ready"]'))
    wait(browser, lambda d: shown() == [c["id"] for c in overdue["items"]], "overdue filter not applied")

    visit(browser, live, "cases", "cases")
    screenshot(browser, "cases")


def test_a_filter_is_chosen_with_the_arrow_keys(live: Live, browser: Any) -> None:
    """Each arrow key on a filter redraws the list; the focus stays on the filter, so the next key
    moves on (it fell to the page: a keyboard could reach only the first state after 全部)."""
    sign_in(browser, live)
    visit(browser, live, "cases", "cases")
    browser.execute_script("document.getElementById('filter-state').focus()")
    for state in ("reported", "verified"):
        ActionChains(browser).send_keys(Keys.DOWN).perform()
        wait(browser, lambda d, state=state: f"state={state}" in d.current_url, f"{state} not chosen")
        one(browser, '#view[data-page="cases"][data-state="ready"]')
        wait(browser, lambda d: d.execute_script("return document.activeElement.id") == "filter-state")
    assert Select(one(browser, "#filter-state")).first_selected_option.get_attribute("value") == "verified"


def test_cameras_show_health_and_zones_over_the_last_frame(live: Live, browser: Any, tmp_path: Path) -> None:
    """The camera sends a minute of one street (its reference view settles), then turns to another
    street for longer than `view.moved_after_s` (30 s): its card says since when its view moved,
    nothing being judged."""
    streets = sorted((DATASETS / "traffic-cams" / "images" / "val").glob("*.jpg"))
    if not streets:
        pytest.skip(f"no traffic-cams frames under {DATASETS}")
    noise = np.random.default_rng(2)
    for t in range(0, 112, 8):
        street = cv2.imread(str(streets[0 if t < 72 else 25]))
        live_frame = np.clip(street.astype(np.int16) + noise.integers(-3, 4, street.shape), 0, 255)
        ok, frame = cv2.imencode(".jpg", live_frame.astype(np.uint8))
        assert ok
        at = START + timedelta(seconds=t)
        live.api(
            "POST",
            "/v1/cameras/erqi-huaihe-01/frames",
            key="report",
            content=frame.tobytes(),
            headers={"Content-Type": "image/jpeg", "X-Capture-Time": at.isoformat()},
        )
    cameras = {c["id"]: c for c in live.api("GET", "/v1/cameras").json()}
    sign_in(browser, live)
    visit(browser, live, "cameras", "cameras")
    cards = {c.get_attribute("data-camera"): c for c in css(browser, "article.camera")}
    assert set(cards) == set(cameras)
    assert cards["erqi-huaihe-01"].get_attribute("data-frames") == "14"
    assert cards["erqi-huaihe-01"].get_attribute("data-view-moved") == "true"
    assert cards["erqi-ruhe-02"].get_attribute("data-view-moved") == "false"
    assert "视角已偏移" in cards["erqi-huaihe-01"].find_element("css selector", "dl.health").text
    wait(browser, lambda d: images_loaded(d, 'img[data-camera="erqi-huaihe-01"]'), "frame not shown")
    sketch = one(browser, 'svg.zones[data-camera="erqi-ruhe-02"]')  # no frame yet: zones drawn alone
    assert len(sketch.find_elements("css selector", "polygon")) == len(cameras["erqi-ruhe-02"]["zones"])
    zone_rows = cards["erqi-huaihe-01"].find_elements("css selector", ".zones-table tbody tr")
    assert [r.find_element("css selector", "td").text for r in zone_rows] == [
        z["id"] for z in cameras["erqi-huaihe-01"]["zones"]
    ]
    screenshot(browser, "cameras")


def test_english_as_the_other_language_and_signing_out(live: Live, browser: Any) -> None:
    sign_in(browser, live)
    nav = '#nav a[data-page="cases"]'
    assert one(browser, nav).text == "案卷"
    one(browser, "#lang").click()
    wait(browser, lambda d: one(d, nav).text == "Cases", "language not switched")
    browser.refresh()
    one(browser, '#view[data-page="cases"][data-state="ready"]')
    assert (
        one(browser, nav).text == "Cases"
        and browser.execute_script("return document.documentElement.lang") == "en"
    )
    assert one(browser, "#cases th").text == "Case number"
    one(browser, "#lang").click()
    wait(browser, lambda d: one(d, nav).text == "案卷", "language not switched back")

    one(browser, "#signout").click()
    one(browser, '#view[data-page="signin"] #key')
    assert browser.execute_script("return sessionStorage.getItem('streetorder.key')") is None
    assert not one(browser, "#nav").is_displayed()


def test_every_name_the_domain_can_answer_reads_in_both_languages(live: Live, browser: Any) -> None:
    """A state, step, source, role, review or limit unit the API can answer has the console's words
    in Chinese and in English, never its key: a street-vending case's limit read '20 minutes' on
    the Chinese page, and a case from the media or a leader showed 'media' / 'leader'."""
    from serve.cases import enums
    from vision.core.taxonomy import DEADLINE_UNITS

    sign_in(browser, live)
    strings = browser.execute_async_script(
        "import('/console/i18n.js').then((m) => arguments[arguments.length - 1](m.STRINGS))"
    )
    names = {
        "state": list(enums.State),
        "action": [*enums.Action, *enums.EvidenceStep, "report"],  # the flow log's steps
        "source": list(enums.CaseSource),
        "review": list(enums.AiReview),
        "role": [*enums.EvidenceRole, *enums.Role],
        "extension": list(enums.ExtensionState),
        "limit": list(DEADLINE_UNITS),
    }
    needed = {f"{prefix}.{value}" for prefix, values in names.items() for value in values}
    for lang in ("zh", "en"):
        assert sorted(needed - set(strings[lang])) == [], lang
    assert set(strings["zh"]) == set(strings["en"])
    visit(browser, live, f"case/{open311(live, '09006', *GRID_QUIET[1:], '占道经营')}", "case")
    assert "20 分钟" in one(browser, "dl.facts").text  # 双十: the limit in minutes, in Chinese


def serve_tiles(requested: list[tuple[int, int, int]]) -> ThreadingHTTPServer:
    """A local XYZ tile server that notes each (z, x, y) asked of it; shut it down after."""
    tile = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 220, 200)).save(tile, "PNG")

    class Tiles(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            z, x, y = (int(part) for part in self.path.removesuffix(".png").strip("/").split("/"))
            requested.append((z, x, y))
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(tile.getvalue())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def tile_of(lat: float, lon: float, z: int) -> tuple[int, int, int]:
    x = int((lon + 180) / 360 * 2**z)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**z)
    return z, x, y


def set_tiles(browser: Any, server: ThreadingHTTPServer, crs: str | None = None) -> None:
    field = one(browser, "#tile-url")
    field.clear()
    field.send_keys(f"http://127.0.0.1:{server.server_port}/{{z}}/{{x}}/{{y}}.png")
    if crs is not None:
        Select(one(browser, "#tile-crs")).select_by_value(crs)
    one(browser, "#tile-form button[type=submit]").click()
    one(browser, "#map.with-tiles g.tiles image")


def test_map_draws_tiles_of_a_configured_tile_server_under_the_grids(live: Live, browser: Any) -> None:
    """The optional background: XYZ tiles from the URL set on the map page (here a local server)."""
    requested: list[tuple[int, int, int]] = []
    server = serve_tiles(requested)
    try:
        sign_in(browser, live)
        visit(browser, live, "map", "map")
        set_tiles(browser, server)
        wait(browser, lambda d: len(requested) == len(css(d, "#map g.tiles image")), "tiles not fetched")
    finally:
        browser.execute_script("localStorage.removeItem('streetorder.tiles')")
        server.shutdown()
    _, lat, lon = GRID_LIFE  # the tile under a grid's centre is among those drawn
    z = requested[0][0]
    assert 15 <= z <= 19 and tile_of(lat, lon, z) in requested and {r[0] for r in requested} == {z}


def test_map_on_amap_tiles_draws_the_grids_where_amap_shows_their_streets(live: Live, browser: Any) -> None:
    """Tiles of AMap or Tencent are GCJ-02: with that system chosen, the map asks the server for its
    GeoJSON in GCJ-02 (no formula in the browser), so the tiles drawn are those under the grids'
    GCJ-02 places, some 500 m from their WGS-84 ones."""
    from serve.cases.coords import wgs84_to_gcj02

    requested: list[tuple[int, int, int]] = []
    server = serve_tiles(requested)
    try:
        sign_in(browser, live)
        visit(browser, live, "map", "map")
        set_tiles(browser, server, "gcj02")
        wait(browser, lambda d: len(requested) == len(css(d, "#map g.tiles image")), "tiles not fetched")
        assert Select(one(browser, "#tile-crs")).first_selected_option.get_attribute("value") == "gcj02"
        asked = browser.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
        assert any(url.endswith("/v1/grids.geojson?crs=gcj02") for url in asked)
        assert any("/v1/cases.geojson?" in url and "crs=gcj02" in url for url in asked)
    finally:
        browser.execute_script("localStorage.removeItem('streetorder.tiles')")
        browser.execute_script("localStorage.removeItem('streetorder.tiles.crs')")
        server.shutdown()
    _, lat, lon = GRID_LIFE
    gx, gy = (float(v) for v in wgs84_to_gcj02(lon, lat))
    assert tile_of(gy, gx, requested[0][0]) in requested


def test_the_map_keeps_the_grid_layout_and_a_chosen_day_ends_the_chart(live: Live, browser: Any) -> None:
    """A case far from every grid (made before jurisdiction was checked, or by a misplaced camera)
    does not shrink the grids to a dot: the map's extent is the layout's. The chart of a chosen day
    ends with that day (the API reads `until` as exclusive)."""
    from serve.cases.db import transaction
    from serve.cases.findings import Finding, record_finding

    with transaction(live.service.sessions) as session:
        stray = record_finding(
            session,
            Finding(
                event="street_vending",
                lat=39.9,
                lon=116.4,  # Beijing, 620 km from the grids
                seen_at=START,
                photo_path="stray",
                photo_sha256=hashlib.sha256(b"stray").hexdigest(),
            ),
            live.service.domain.rules,
        )
    live.clock.at = START + timedelta(hours=2)
    open311(live, "06010", *GRID_QUIET[1:], "路边垃圾")
    sign_in(browser, live)
    visit(browser, live, "map", "map")
    widths = browser.execute_script(
        "return [...document.querySelectorAll('#map g.grid path')].map(p => p.getBoundingClientRect().width)"
    )
    assert len(widths) == 12 and min(widths) > 50, widths  # ~110 m grids over ~650 m of layout
    # the stray case is not drawn off the map unsaid: it is listed under it, with a link
    assert stray.case.number in one(browser, "#map-outside").text
    assert one(browser, f'#map-outside a[href="#/case/{stray.case.id}"]')
    assert not css(browser, f'#map .marker[data-case="{stray.case.id}"]')

    visit(browser, live, "rankings?day=2025-09-23", "rankings")
    days = attributes(browser, "#class-chart rect", "data-day")
    assert "2025-09-23" in days and max(days) == "2025-09-23"
    assert "2025-09-23" in one(browser, "#chart-title").text


def test_a_read_only_key_sees_no_actions_and_errors_read_in_the_consoles_language(
    live: Live, browser: Any
) -> None:
    """Buttons only for what the key may do (GET /v1/sessions/current); problems in Chinese, the
    service's English detail only in the title."""
    from serve.cases.auth import create_key
    from serve.cases.db import transaction

    with transaction(live.service.sessions) as session:
        reader, _ = create_key(
            session, name="reader", scopes=["cases:read"], pepper=live.service.verifier.pepper, now=START
        )
    live.clock.at = START + timedelta(hours=3)
    case_id = open311(live, "07001", *GRID_QUIET[1:], "电箱上的小广告")
    browser.get(f"{live.base}/")
    browser.execute_script("sessionStorage.setItem('streetorder.key', arguments[0])", reader)
    visit(browser, live, f"case/{case_id}", "case")
    assert css(browser, "#actions button") == []
    assert one(browser, "#actions-hint").text == "当前密钥只能查看，不能办理案卷"
    assert one(browser, ".facts .deadline-none").text == "立案后开始计时"  # awaiting review: no clock yet
    report_step = one(browser, '#flow tr[data-action="report"]').find_elements(By.TAG_NAME, "td")[-1]
    assert report_step.text == "市民上报"  # not the service's English bookkeeping

    live.api(  # an item to check: the read-only key is shown neither the check nor the flag form
        "POST",
        "/v1/supervision",
        json={
            "grids": [GRID_QUIET[0]],
            "department": "二七区环境卫生服务中心",
            "deadline_at": (START + timedelta(days=3)).isoformat(),
            "reason": "只读密钥不能核查销号",
        },
    )
    visit(browser, live, "supervision", "supervision")
    one(browser, "#supervision tr[data-item]")
    assert not css(browser, "#flag-form") and not css(browser, "#supervision .close-form")  # were shown

    visit(browser, live, "case/987654", "case")
    problem = one(browser, "#view .problem p")
    assert problem.text == "找不到该案卷或资料" and "does not exist" in problem.get_attribute("title")

    browser.execute_script("sessionStorage.clear()")  # signed out
    sign_in(browser, live)  # the console key may act: the state's actions are there again
    visit(browser, live, f"case/{case_id}", "case")
    allowed = live.api("GET", f"/v1/cases/{case_id}").json()["allowed_actions"]
    assert [b.get_attribute("data-action") for b in css(browser, "#actions button")] == allowed
    etag = live.api("GET", f"/v1/cases/{case_id}").headers["ETag"]
    live.api(  # someone else confirms it meanwhile: the page's version is stale
        "POST", f"/v1/cases/{case_id}/transitions", json={"action": "confirm"}, headers={"If-Match": etag}
    )
    one(browser, '#actions button[data-action="reject"]').click()
    one(browser, "#action-form textarea").send_keys("误报")
    one(browser, "#action-submit").click()
    wait(
        browser, lambda d: one(d, "#action-error").text == "案卷已被他人修改，请刷新后重试", "no Chinese 412"
    )


def test_the_scan_report_reads_in_chinese_and_turns_to_english_like_the_console(
    browser: Any, tmp_path: Path
) -> None:
    """report.html opened from disk: Chinese first, the toggle shows English and back; an AI finding
    awaiting review reads as such, without a deadline."""
    from serve.cases.db import open_database, transaction
    from serve.cases.findings import Finding, load_case_rules, record_finding
    from serve.cases.report import write_report
    from vision.core.boxes import Box

    rules = load_case_rules(Settings())
    factory = open_database(f"sqlite:///{tmp_path / 'scan.db'}")
    photo = street_photo(tmp_path / "p0.jpg", 0)
    with transaction(factory) as session:
        record_finding(
            session,
            Finding(
                event="exposed_garbage",
                lat=GRID_QUIET[1],
                lon=GRID_QUIET[2],
                seen_at=START,
                photo_path=str(photo),
                photo_sha256=hashlib.sha256(photo.read_bytes()).hexdigest(),
                boxes=(Box((250, 220, 380, 300), 0.8, "garbage"),),
                model_version="street-v1@000000000000",
            ),
            rules,
        )
    page = write_report(factory, tmp_path / "report", rules)
    browser.get(page.as_uri())
    browser.execute_script("localStorage.removeItem('streetorder.lang')")
    browser.refresh()
    # each check waits for its text: under load the page's script may still be turning it
    wait(browser, lambda d: one(d, "h1").text == "巡查照片扫描报告", "report not in Chinese")
    wait(browser, lambda d: one(d, ".case .state").text == "待核实", "finding not awaiting review")
    assert (
        "立案后开始计时" in one(browser, ".case .meta").text
        and "awaiting" not in browser.find_element(By.TAG_NAME, "body").text
    )
    one(browser, "#lang").click()
    wait(browser, lambda d: one(d, "h1").text == "Scan report", "report not in English")
    wait(browser, lambda d: one(d, ".case .state").text == "awaiting review", "state not in English")
    assert "no deadline until filed" in one(browser, ".case .meta").text
    assert "待核实" not in browser.find_element(By.TAG_NAME, "body").text
    browser.refresh()  # the choice is kept, as in the console
    wait(browser, lambda d: one(d, "h1").text == "Scan report", "the English choice not kept")
    one(browser, "#lang").click()
    wait(browser, lambda d: one(d, "h1").text == "巡查照片扫描报告", "report not back in Chinese")


def test_a_citizen_request_without_a_place_is_placed_by_a_person(live: Live, browser: Any) -> None:
    """Open311 without lat/long and an address naming no grid: held with a token; placed on the
    console's page, it becomes a case and the token answers its number."""
    live.clock.at = START + timedelta(hours=4)
    posted = live.api(
        "POST",
        "/open311/v2/requests.json",
        key="report",
        data={"service_code": "06036", "address_string": "大学路 88 号门口", "description": "一堆沙子"},
    ).json()[0]
    token = posted["token"]
    sign_in(browser, live)
    visit(browser, live, "requests", "requests")
    row = one(browser, f'#held tr[data-token="{token}"]')
    assert "大学路 88 号门口" in row.text and "一堆沙子" in row.text
    form = row.find_element(By.CSS_SELECTOR, "form.place-form")
    form.find_element(By.NAME, "lat").send_keys("39.9")  # Beijing: not this bureau's
    form.find_element(By.NAME, "lon").send_keys("116.4")
    form.find_element(By.CSS_SELECTOR, "button").click()
    refusal = "该位置不在本辖区任何单元网格内，不能建案"
    wait(browser, lambda d: one(d, f'#held tr[data-token="{token}"] .error').text == refusal, "no refusal")
    _, lat, lon = GRID_QUIET
    row = one(browser, f'#held tr[data-token="{token}"]')
    for name, value in (("lat", lat), ("lon", lon)):
        field = row.find_element(By.NAME, name)
        field.clear()
        field.send_keys(str(value))
    row.find_element(By.CSS_SELECTOR, "form.place-form button").click()
    placed = one(browser, f'#placed tr[data-token="{token}"]')
    assert not css(browser, f'#held tr[data-token="{token}"]')
    number = httpx.get(f"{live.base}/open311/v2/tokens/{token}.json").json()[0]["service_request_id"]
    link = placed.find_element(By.CSS_SELECTOR, "a.mono")
    assert link.text == number
    link.click()
    one(browser, '#view[data-page="case"][data-state="ready"]')
    case = httpx.get(f"{live.base}/open311/v2/requests/{number}.json").json()[0]
    assert (case["lat"], case["long"], case["address"]) == (lat, lon, "大学路 88 号门口")


def test_a_request_placed_off_the_bureaus_amap_is_filed_at_its_wgs84_place(live: Live, browser: Any) -> None:
    """Where the console map is on GCJ-02 tiles, the place form reads positions as GCJ-02 (what
    AMap's coordinate picker shows) unless told otherwise: the case stands at the WGS-84 place, not
    some 500 m away (here outside every grid, refused)."""
    from serve.cases.coords import wgs84_to_gcj02
    from serve.cases.grids import haversine_m

    posted = live.api(
        "POST",
        "/open311/v2/requests.json",
        key="report",
        data={"service_code": "06036", "address_string": "大学路 90 号门口", "description": "一堆砖头"},
    ).json()[0]
    token = posted["token"]
    sign_in(browser, live)
    browser.execute_script(
        "localStorage.setItem('streetorder.tiles', 'http://127.0.0.1:9/{z}/{x}/{y}.png');"
        "localStorage.setItem('streetorder.tiles.crs', 'gcj02')"
    )
    try:
        visit(browser, live, "requests", "requests")
        form = one(browser, f'#held tr[data-token="{token}"] form.place-form')
        system = Select(form.find_element(By.NAME, "coord_system"))
        assert system.first_selected_option.get_attribute("value") == "gcj02"
        assert [o.get_attribute("value") for o in system.options] == ["wgs84", "gcj02", "bd09"]
        _, lat, lon = GRID_QUIET
        shown_lon, shown_lat = (float(v) for v in wgs84_to_gcj02(lon, lat))
        form.find_element(By.NAME, "lat").send_keys(repr(shown_lat))
        form.find_element(By.NAME, "lon").send_keys(repr(shown_lon))
        form.find_element(By.CSS_SELECTOR, "button").click()
        one(browser, f'#placed tr[data-token="{token}"]')
    finally:
        browser.execute_script("localStorage.removeItem('streetorder.tiles')")
        browser.execute_script("localStorage.removeItem('streetorder.tiles.crs')")
    number = httpx.get(f"{live.base}/open311/v2/tokens/{token}.json").json()[0]["service_request_id"]
    case = httpx.get(f"{live.base}/open311/v2/requests/{number}.json").json()[0]
    assert haversine_m(case["lat"], case["long"], lat, lon) < 0.01


HOSTILE_TITLE = "\"><script>window.__xss=4</script> A&B #top ?name=x&coordinate=wgs84 '单引号'"


def test_the_case_page_opens_the_place_in_amap_and_baidu_in_their_own_systems(
    live: Live, browser: Any
) -> None:
    """The WGS-84 numbers stay (said WGS-84); AMap's link carries the place in GCJ-02 and Baidu's in
    BD-09, each naming its system, geo: in WGS-84, all opening a new tab without a referrer; the
    case's words (quotes, markup, & and #) stay inside their own parameter."""
    from urllib.parse import parse_qs, urlsplit

    from serve.cases.coords import from_wgs84, to_wgs84
    from serve.cases.db import transaction
    from serve.cases.grids import haversine_m
    from serve.cases.orm import Case

    _, lat, lon = GRID_NAVIGATE
    live.clock.at = START + timedelta(hours=6)
    case_id = open311(live, "06010", lat, lon, "井盖旁的垃圾")
    with transaction(live.service.sessions) as session:  # words a grid file or a person may hold
        case = session.get(Case, case_id)
        assert case is not None
        case.description, case.address, number = HOSTILE_TITLE, f"{HOSTILE_TITLE} 门口", case.number
    sign_in(browser, live)
    visit(browser, live, f"case/{case_id}", "case")
    assert one(browser, "#position").text == f"{lat:.5f}, {lon:.5f}"
    assert "WGS-84" in one(browser, "#position").find_element(By.XPATH, "../preceding-sibling::dt[1]").text
    links = css(browser, "#navigate a")
    assert [a.get_attribute("data-app") for a in links] == ["amap", "baidu", "geo"]
    assert [a.text for a in links] == ["高德地图", "百度地图", "手机地图"]
    assert all(a.get_attribute("target") == "_blank" for a in links)
    assert all(a.get_attribute("rel") == "noopener noreferrer" for a in links)
    hrefs = {a.get_attribute("data-app"): a.get_attribute("href") for a in links}
    title = f"{number} {HOSTILE_TITLE}"

    amap = urlsplit(hrefs["amap"])
    assert (amap.scheme, amap.netloc, amap.path, amap.fragment) == ("https", "uri.amap.com", "/marker", "")
    query = parse_qs(amap.query, keep_blank_values=True)
    assert {k: v for k, v in query.items() if k != "position"} == {
        "name": [title],
        "src": ["webapp.streetorder.cases"],
        "coordinate": ["gaode"],
        "callnative": ["1"],
    }
    amap_lon, amap_lat = (float(v) for v in query["position"][0].split(","))
    gcj_lon, gcj_lat = (float(v) for v in from_wgs84(lon, lat, "gcj02"))
    assert (amap_lon, amap_lat) == pytest.approx((gcj_lon, gcj_lat), abs=1e-6)
    assert haversine_m(amap_lat, amap_lon, lat, lon) > 300  # really moved: AMap's own system
    back_lon, back_lat = (float(v) for v in to_wgs84(amap_lon, amap_lat, "gcj02"))
    assert haversine_m(back_lat, back_lon, lat, lon) < 0.5  # where AMap draws it is the case's place

    baidu = urlsplit(hrefs["baidu"])
    assert (baidu.scheme, baidu.netloc, baidu.path, baidu.fragment) == (
        "https",
        "api.map.baidu.com",
        "/marker",
        "",
    )
    query = parse_qs(baidu.query, keep_blank_values=True)
    assert {k: v for k, v in query.items() if k != "location"} == {
        "coord_type": ["bd09ll"],
        "title": [title],
        "content": [f"{HOSTILE_TITLE} 门口"],
        "output": ["html"],
        "src": ["webapp.streetorder.cases"],
    }
    baidu_lat, baidu_lon = (float(v) for v in query["location"][0].split(","))
    bd_lon, bd_lat = (float(v) for v in from_wgs84(lon, lat, "bd09"))
    assert (baidu_lon, baidu_lat) == pytest.approx((bd_lon, bd_lat), abs=1e-6)
    back_lon, back_lat = (float(v) for v in to_wgs84(baidu_lon, baidu_lat, "bd09"))
    assert haversine_m(back_lat, back_lon, lat, lon) < 0.5

    assert hrefs["geo"] == f"geo:{lat:.6f},{lon:.6f}"
    assert browser.execute_script(
        "return [window.__xss, document.querySelectorAll('#view script').length]"
    ) == [None, 0]
    api = live.api("GET", f"/v1/cases/{case_id}").json()["navigation"]
    assert api == hrefs  # the links are the service's: the page builds none


def test_a_street_vending_case_counts_down_its_double_ten_clocks(live: Live, browser: Any) -> None:
    """Filed, a 双十 case shows when someone must be on site and when it must be cleared, each with a
    countdown that ticks (the browser's clock: today, so the 2025 case is long late)."""
    _, lat, lon = GRID_FLYER
    live.clock.at = START + timedelta(days=2)
    case_id = open311(live, "09006", lat, lon, "人行道流动摊贩")
    for minutes, action in ((2, "confirm"), (4, "file")):
        live.clock.at = START + timedelta(days=2, minutes=minutes)
        step(live, case_id, action)
    case = live.api("GET", f"/v1/cases/{case_id}").json()
    filed = datetime.fromisoformat(case["flow"][-1]["at"])
    assert datetime.fromisoformat(case["on_site_due_at"]) == filed + timedelta(minutes=10)
    assert datetime.fromisoformat(case["deadline_at"]) == filed + timedelta(minutes=20)

    sign_in(browser, live)
    visit(browser, live, f"case/{case_id}", "case")
    on_site = one(browser, "#countdown-on-site")
    assert on_site.get_attribute("data-due") == case["on_site_due_at"]
    assert one(browser, "#countdown-deadline").get_attribute("data-due") == case["deadline_at"]
    first = on_site.text
    assert first.startswith("已超时") and "overdue" in on_site.get_attribute("class")
    wait(browser, lambda d: one(d, "#countdown-on-site").text != first, "the countdown does not tick")
    # suspended (挂账), its clock stands still: no countdown runs on
    for minutes, action, fields in ((6, "dispatch", {}), (8, "suspend", {"note": "等待执法"})):
        live.clock.at = START + timedelta(days=2, minutes=minutes)
        step(live, case_id, action, **fields)
    browser.refresh()
    one(browser, '#view[data-page="case"][data-state="ready"] .state-suspended')
    assert not css(browser, ".countdown")


def test_photos_are_detached_split_off_and_merged_back_on_the_case_page(live: Live, browser: Any) -> None:
    """Detach under each photo, split and merge above them, each with a reason the flow log keeps;
    the page follows the new case of a split."""
    live.clock.at = START + timedelta(days=3)
    case_id = open311(live, "06010", *GRID_REGROUP[1:], "墙根一堆垃圾")
    photos = [
        live.api(
            "POST",
            f"/v1/cases/{case_id}/evidence",
            files={"file": (f"p{seed}.jpg", _jpeg(seed=seed), "image/jpeg")},
            data={"role": "before"},
        ).json()["id"]
        for seed in (41, 42, 43)
    ]
    sign_in(browser, live)
    visit(browser, live, f"case/{case_id}", "case")
    assert attributes(browser, "#evidence button.detach", "data-evidence")[-3:] == [str(i) for i in photos]
    assert one(browser, "#evidence button.detach").text == "移除此照片"

    steps = len(css(browser, "#flow tbody tr"))
    one(browser, f'#evidence button.detach[data-evidence="{photos[0]}"]').click()
    one(browser, f"#detach-{photos[0]} textarea").send_keys("拍到的是隔壁店门口")
    one(browser, f"#detach-{photos[0]} .regroup-submit").click()
    wait(browser, lambda d: len(css(d, "#flow tbody tr")) == steps + 1, "detach did not land")
    assert css(browser, "#flow tbody tr")[-1].get_attribute("data-action") == "detach"
    assert one(browser, '#flow tr[data-action="detach"] td:nth-child(2)').text == "移除照片"
    assert not css(browser, f'#evidence button.detach[data-evidence="{photos[0]}"]')

    one(browser, '#regroup button[data-step="split"]').click()
    one(browser, f'#split-form input[value="{photos[1]}"]').click()
    one(browser, "#split-form textarea").send_keys("另一堆垃圾")
    screenshot(browser, "case-regroup")
    one(browser, "#split-form .regroup-submit").click()
    section = one(browser, f'#view[data-state="ready"] section[data-case]:not([data-case="{case_id}"])')
    new_id = int(section.get_attribute("data-case"))
    assert one(browser, "#flow tbody tr").get_attribute("data-action") == "split"
    new = live.api("GET", f"/v1/cases/{new_id}").json()
    assert [e["id"] for e in new["evidence"]] == [photos[1]] and new["state"] == "reported"

    visit(browser, live, f"case/{case_id}", "case")
    one(browser, '#regroup button[data-step="merge"]').click()
    Select(one(browser, "#merge-case")).select_by_value(str(new_id))
    one(browser, "#merge-form textarea").send_keys("其实是同一堆")
    one(browser, "#merge-form .regroup-submit").click()
    wait(browser, lambda d: attributes(d, "#flow tbody tr", "data-action")[-1:] == ["merge"], "no merge")
    case = live.api("GET", f"/v1/cases/{case_id}").json()
    assert photos[1] in [e["id"] for e in case["evidence"]] and photos[0] not in [
        e["id"] for e in case["evidence"]
    ]
    merged = live.api("GET", f"/v1/cases/{new_id}").json()
    assert merged["state"] == "cancelled" and case["number"] in merged["flow"][-1]["note"]
    reasons = ("拍到的是隔壁店门口", "另一堆垃圾", "其实是同一堆")
    assert [f["action"] for f in case["flow"][-3:]] == ["detach", "split", "merge"]
    assert all(f["note"].endswith(r) for f, r in zip(case["flow"][-3:], reasons, strict=True))


def test_a_failed_after_photo_is_accepted_with_a_persons_reason(
    live: Live, browser: Any, tmp_path: Path
) -> None:
    """handle on an after-photo that failed its check is refused in Chinese naming the checks; the
    form then asks a reason (override_reason) and the same photo passes with it."""
    _, lat, lon = GRID_OVERRIDE
    live.clock.at = START + timedelta(days=4)
    case_id = open311(live, "06010", lat, lon, "绿化带里的垃圾")
    for minutes, action in ((2, "confirm"), (4, "file"), (6, "dispatch"), (8, "start")):
        live.clock.at = START + timedelta(days=4, minutes=minutes)
        step(live, case_id, action)
    live.clock.at = START + timedelta(days=4, minutes=30)
    sign_in(browser, live)
    visit(browser, live, f"case/{case_id}", "case")
    one(browser, '#actions button[data-action="handle"]').click()
    photo = street_photo(tmp_path / "no-gps.jpg", 4)  # no EXIF: neither where nor when it was taken
    one(browser, "#after-photo").send_keys(str(photo))
    one(browser, "#action-submit").click()
    wait(browser, lambda d: one(d, "#action-error").text.startswith("处置后照片核验未通过"), "no Chinese 409")
    assert "不在案发位置" in one(browser, "#action-error").text
    assert "不在案发位置" in one(browser, "label.override").text
    one(browser, "#override-reason").send_keys("现场核实已清理，手机定位失灵")
    one(browser, "#action-submit").click()
    wait(browser, lambda d: attributes(d, "#flow tbody tr", "data-action")[-1:] == ["handle"], "no handle")
    case = live.api("GET", f"/v1/cases/{case_id}").json()
    assert case["state"] == "handled" and [e["role"] for e in case["evidence"]].count("after") == 1
    assert case["flow"][-1]["note"].endswith("现场核实已清理，手机定位失灵")
    assert "at_place" in case["flow"][-1]["note"]


HOSTILE_WORDS = (
    '"><img src=x onerror="window.__xss=1"><script>window.__xss=2</script>',
    "</pre><svg onload=window.__xss=3>&lt;b&gt;",
)


@pytest.mark.parametrize("words", HOSTILE_WORDS)
def test_a_citizens_markup_shows_as_text_and_runs_nothing(live: Live, browser: Any, words: str) -> None:
    """A citizen's description and address are anyone's text: on the case page and the held
    requests page they read literally, no element comes from them and no script of theirs runs."""
    _, lat, lon = GRID_QUIET
    live.clock.at = START + timedelta(hours=5)
    case_id = open311(live, "06010", lat, lon, words)
    held = live.api(
        "POST",
        "/open311/v2/requests.json",
        key="report",
        data={"service_code": "06036", "address_string": words, "description": words},
    ).json()[0]["token"]
    sign_in(browser, live)
    found = (
        "return [window.__xss, document.querySelectorAll("
        "'#view img[src=x], #view svg[onload], #view b, #view script').length]"
    )
    visit(browser, live, f"case/{case_id}", "case")  # the second request joins the first's case
    one(browser, "p.citizen")
    assert any(words in p.text for p in css(browser, "p.citizen"))
    assert browser.execute_script(found) == [None, 0]
    visit(browser, live, "requests", "requests")
    assert one(browser, f'#held tr[data-token="{held}"]').text.count(words) == 2
    assert browser.execute_script(found) == [None, 0]
