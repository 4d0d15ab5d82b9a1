"""The console on a phone (390 x 844 CSS px, device scale 3, touch), in a real headless Chromium under
chromedriver's mobile emulation, against the real service: inspectors and handlers in the street
open a case, take the after-photo with the phone's camera, report it handled and check it with a new
photo. The page never scrolls sideways, the buttons a thumb presses are 44 px tall at least, the
photo inputs open the back camera (or the gallery), a 4000 x 3000 phone JPEG turned by its EXIF
(orientation 6) arrives upright with a progress bar on a slow link, and a refused photo says why.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from test_console import (
    GRID_LIFE,
    SCREENSHOTS,
    START,
    Live,
    chrome,
    css,
    live,  # noqa: F401  (fixture)
    one,
    open311,
    step,
    visit,
    wait,
)
from test_console_people import SANITATION, sign_in_as

from vision.core.imageio import Position, exif_for

WIDTH, HEIGHT = 390, 844
TAP = 44  # CSS px: the common guidance for a target pressed with a thumb
PAGES = ["cases", "map", "rankings", "supervision", "cameras", "requests"]


# chromedriver's mobile emulation of a phone: 390 x 844, device scale 3, touch, a phone's user agent
PHONE = {
    "deviceMetrics": {"width": WIDTH, "height": HEIGHT, "pixelRatio": 3.0, "touch": True},
    "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
}


@pytest.fixture(scope="module")
def phone() -> Iterator[Any]:
    """Headless Chromium emulating a phone."""
    with chrome(emulation=PHONE) as driver:
        yield driver


def overflow(driver: Any) -> int:
    """How far the whole page is wider than the phone's 390 px, CSS px (0: it is not). A phone's
    browser widens its layout viewport (innerWidth) to a page too wide and shrinks it all to fit, so
    scrollWidth <= innerWidth alone holds for any page: both are measured against the screen."""
    script = "return Math.max(document.scrollingElement.scrollWidth, window.innerWidth) - arguments[0]"
    return int(driver.execute_script(script, WIDTH))


def too_small(driver: Any, selector: str) -> list[str]:
    """The visible elements matching whose box is under 44 px tall, as 'text: height'."""
    script = """
      return [...document.querySelectorAll(arguments[0])]
        .filter(e => e.getClientRects().length)
        .map(e => [e.textContent.trim() || e.id || e.name, e.getBoundingClientRect().height])
        .filter(([, height]) => height < arguments[1]).map(([name, height]) => `${name}: ${height}`);
    """
    return list(driver.execute_script(script, selector, TAP))


def phone_photo(path: Path, lat: float, lon: float, taken_at: datetime) -> Path:
    """A phone's after-photo: 4000 x 3000 pixels as the sensor reads them (the phone held upright, so
    EXIF orientation 6: turn 90° clockwise to show), about 5 MB of JPEG with GPS and capture time. A
    red block in the stored top-left corner shows at the top-right once turned."""
    rng = np.random.default_rng(6)
    image = np.empty((3000, 4000, 3), np.uint8)
    image[:1500] = (120, 130, 140)  # grey road and pavement, with the grain of a real sensor
    image[1500:] = (160, 165, 150)
    image += rng.integers(0, 56, image.shape, dtype=np.uint8)
    image[:600, :600] = (230, 20, 20)
    out = io.BytesIO()
    exif = exif_for(position=Position(lat, lon), taken_at=taken_at, orientation=6)
    Image.fromarray(image).save(out, "JPEG", quality=90, exif=exif)
    path.write_bytes(out.getvalue())
    return path


def phone_screenshot(driver: Any, name: str) -> Path:
    """The phone's screen at 390 px (one CSS px a pixel, 256 colours: small) for docs/screenshots/."""
    png = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    small = png.resize((WIDTH, round(png.height * WIDTH / png.width)), Image.Resampling.LANCZOS)
    path = SCREENSHOTS / f"{name}.png"
    small.quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    return path


def dispatched_case(live: Live, code: str, description: str, at: datetime) -> int:  # noqa: F811
    """A citizen's report (event class `code`: one per test, or it joins the other test's case) in
    the inspector's grid, filed and dispatched to sanitation."""
    _, lat, lon = GRID_LIFE
    live.clock.at = at
    case_id = open311(live, code, lat, lon, description)
    for action, fields in (("confirm", {}), ("file", {}), ("dispatch", {"department": SANITATION})):
        step(live, case_id, action, **fields)
    return case_id


def test_main_views_fit_a_phone_and_their_buttons_take_a_thumb(live: Live, phone: Any) -> None:  # noqa: F811
    driver = phone
    case_id = dispatched_case(live, "06010", "人行道上一堆建筑垃圾，已经好几天了", START + timedelta(hours=1))
    live.clock.at = START + timedelta(days=3)  # past the deadline: the list marks it overdue
    driver.get(f"{live.base}/")
    driver.execute_script("sessionStorage.clear(); localStorage.clear();")
    driver.delete_all_cookies()
    driver.get(f"{live.base}/")
    one(driver, "#username")
    assert driver.execute_script("return window.innerWidth") == WIDTH
    assert overflow(driver) <= 0, "the sign-in page scrolls sideways"
    assert too_small(driver, "#signin-person button, #signin-person input") == []

    sign_in_as(driver, live, "chenjing")  # the inspector of GRID_LIFE
    for lang in ("en", "zh"):  # English words break less than Chinese: wider
        driver.execute_script("localStorage.setItem('streetorder.lang', arguments[0])", lang)
        for page in [*PAGES, f"case/{case_id}"]:
            visit(driver, live, page, page.split("/")[0])
            assert overflow(driver) <= 0, f"{lang} {page} is wider than the phone by {overflow(driver)} px"
    assert too_small(driver, "#nav a, #signout, #lang") == []
    visit(driver, live, "map", "map")  # the 960-unit drawing shrunk to 370 px: a marker a thumb can hit
    marker = one(driver, f'#map a.marker[data-case="{case_id}"]').rect
    assert min(marker["width"], marker["height"]) >= 22, marker

    # the inspector's list: each case a card, its deadline and overdue mark on the screen
    visit(driver, live, "cases", "cases")
    assert overflow(driver) <= 0
    row = f'#cases tr[data-case="{case_id}"]'
    box = driver.execute_script(
        "const r = document.querySelector(arguments[0]).getBoundingClientRect(); return [r.left, r.right]",
        row,
    )
    assert box[0] >= 0 and box[1] <= WIDTH
    deadline = one(driver, f'{row} td[data-label="处置期限"]')  # the column's name beside the value
    assert deadline.is_displayed() and deadline.text.startswith("2025-09-")
    label = driver.execute_script("return getComputedStyle(arguments[0], '::before').content", deadline)
    assert label == '"处置期限"'
    assert "超时" in one(driver, f"{row} .overdue").text
    assert too_small(driver, "#filters select, #prev, #next, a.case-link, #counts .chip") == []
    phone_screenshot(driver, "phone-cases")

    sign_in_as(driver, live, "zhangwei")  # the handler the case went to: his buttons
    visit(driver, live, f"case/{case_id}", "case")
    assert overflow(driver) <= 0
    assert [b.get_attribute("data-action") for b in css(driver, "#actions button")] == ["send_back", "start"]
    assert too_small(driver, "#actions button") == []


def test_after_photo_from_the_phone_camera_arrives_upright_and_the_check_adds_one(
    live: Live,  # noqa: F811
    phone: Any,
    tmp_path: Path,
) -> None:
    driver = phone
    _, lat, lon = GRID_LIFE
    case_id = dispatched_case(live, "06042", "垃圾桶满溢", START + timedelta(hours=3))
    sign_in_as(driver, live, "zhangwei")  # the sanitation handler, in the street
    visit(driver, live, f"case/{case_id}", "case")
    live.clock.at = START + timedelta(hours=3, minutes=20)
    one(driver, '#actions button[data-action="start"]').click()
    one(driver, "#action-submit").click()
    wait(driver, lambda d: css(d, '#actions button[data-action="handle"]'), "start did not land")

    one(driver, '#actions button[data-action="handle"]').click()
    camera, gallery = one(driver, "#after-photo"), one(driver, "#after-photo-gallery")
    assert camera.get_attribute("capture") == "environment" and gallery.get_attribute("capture") is None
    assert all("image/*" in i.get_attribute("accept") for i in (camera, gallery))
    assert (
        too_small(driver, "#action-submit, #action-form .buttons button, #action-form label.photo-pick") == []
    )
    assert overflow(driver) <= 0

    # refused photos say why, and nothing is added to the case
    one(driver, "#action-submit").click()
    wait(driver, lambda d: "请先拍照" in one(d, "#action-error").text, "no photo: no word")
    note = tmp_path / "notes.txt"
    note.write_text("不是照片")
    camera.send_keys(str(note))
    one(driver, "#action-submit").click()
    wait(driver, lambda d: "只接受" in one(d, "#action-error").text, "not an image: no word")
    big = tmp_path / "huge.jpg"
    big.write_bytes(b"\xff\xd8\xff" + bytes(21 * 2**20))  # over the default 20 MB
    gallery.send_keys(str(big))
    assert camera.get_attribute("value") == ""  # one photo at a time: the gallery's clears the camera's
    one(driver, "#action-submit").click()
    wait(driver, lambda d: "超过上限 20" in one(d, "#action-error").text, "too large: no word")
    assert len(live.api("GET", f"/v1/cases/{case_id}").json()["evidence"]) == 1

    # a 4000 x 3000 phone JPEG (about 5 MB), on a slow link: the form shows the upload going
    photo = phone_photo(tmp_path / "IMG_0001.jpg", lat, lon, START + timedelta(hours=3, minutes=40))
    assert 4 * 2**20 < photo.stat().st_size < 7 * 2**20
    live.clock.at = START + timedelta(hours=3, minutes=45)
    camera.send_keys(str(photo))
    assert one(driver, "#photo-chosen").text.startswith("IMG_0001.jpg · 4.")
    assert one(driver, "#action-error").text == ""  # the refusal of the photo before is gone
    driver.execute_script("document.querySelector('#action-form').scrollIntoView()")
    phone_screenshot(driver, "phone-handle")
    driver.execute_cdp_cmd("Network.enable", {})
    slow = {"offline": False, "latency": 100, "downloadThroughput": 2**20, "uploadThroughput": 2**20}
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", slow)
    try:
        one(driver, "#action-submit").click()
        seen = wait(
            driver,
            lambda d: d.execute_script(
                "const p = document.querySelector('#upload-progress');"
                "return p && !p.hidden && p.value > 0 && p.value < 1"
                " && document.querySelector('#action-submit').disabled"
                " && document.querySelector('#action-submit').textContent"
            ),
            "no progress shown while the photo uploads",
        )
        assert "正在上传照片" in seen and "%" in seen
        wait(driver, lambda d: css(d, '#flow tr[data-action="handle"]'), "handle did not land")
    finally:
        driver.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
    case = live.api("GET", f"/v1/cases/{case_id}").json()
    assert case["state"] == "handled"
    after = [e for e in case["evidence"] if e["role"] == "after"]
    assert len(after) == 1 and not after[0]["extra"]["after_check"]["failed"]  # at the place, in time

    # upright as the person saw it: portrait (3 wide to 4 tall), the red corner at the top right
    drawn = live.api("GET", f"/v1/evidence/{after[0]['id']}?boxes=true", timeout=60)  # 12 Mpx, 2 cores
    view = Image.open(io.BytesIO(drawn.content))
    width, height = view.size
    assert width * 4 == height * 3

    def red(x: int, y: int) -> int:  # how much redder than green: the block ~210, the street under 60
        r, g, _ = view.getpixel((x, y))
        return int(r) - int(g)

    assert red(width * 19 // 20, height // 40) > 120 > red(width // 20, height // 40)
    wait(
        driver,
        lambda d: d.execute_script(
            "const i = document.querySelector('#after img'); return i && i.complete && i.naturalWidth > 0"
        ),
        "after-photo not shown",
    )
    shown = driver.execute_script(
        "const i = document.querySelector('#after img'); const c = document.createElement('canvas');"
        "const [w, h] = [i.naturalWidth, i.naturalHeight]; c.width = w; c.height = h;"
        "const g = c.getContext('2d'); g.drawImage(i, 0, 0);"
        "const red = (x, y) => {"
        "  const p = g.getImageData(Math.floor(x), Math.floor(y), 1, 1).data; return p[0] - p[1]; };"
        "return [w, h, red(w * 0.95, h / 40), red(w * 0.05, h / 40)]"
    )
    assert shown[0] * 4 == shown[1] * 3 and shown[2] > 120 > shown[3]
    assert overflow(driver) <= 0

    # the inspector checks on the spot with a photo of their own (from the gallery) and passes it
    sign_in_as(driver, live, "chenjing")
    visit(driver, live, f"case/{case_id}", "case")
    live.clock.at = START + timedelta(hours=4)
    one(driver, '#actions button[data-action="check_pass"]').click()
    assert one(driver, "#after-photo").get_attribute("capture") == "environment"
    check = phone_photo(tmp_path / "IMG_0002.jpg", lat, lon, START + timedelta(hours=3, minutes=58))
    one(driver, "#after-photo-gallery").send_keys(str(check))
    one(driver, "#action-submit").click()
    wait(driver, lambda d: css(d, '#flow tr[data-action="check_pass"]'), "check_pass did not land")
    case = live.api("GET", f"/v1/cases/{case_id}").json()
    assert case["state"] == "check_passed" and [e["role"] for e in case["evidence"]].count("after") == 2
