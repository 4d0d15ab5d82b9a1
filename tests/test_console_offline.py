"""The console's outbox on a phone whose link comes and goes, in a real headless Chromium (mobile
emulation, chromedriver's network conditions) against the real service: a photo step submitted
offline is kept in IndexedDB and said so, survives a reload, is sent once the browser is online and
lands once; a step the service refuses (4xx) shows why and is not sent again; the same step sent
twice (its answer lost) files once; a phone whose storage refuses says nothing was saved.
"""

from __future__ import annotations

import contextlib
import io
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from selenium.common.exceptions import TimeoutException
from test_console import (
    GRID_LIFE,
    START,
    Live,
    chrome,
    css,
    live,  # noqa: F401  (fixture)
    one,
    step,
    visit,
    wait,
)
from test_console_people import sign_in_as
from test_console_phone import PHONE, dispatched_case, overflow, phone, phone_screenshot  # noqa: F401  (fixture)

from serve.api.routers import console
from vision.core.imageio import Position, exif_for

SAVED = "已保存，联网后自动发送 ({n} 条待发送)"
SENDING = ["*/evidence", "*/transitions"]  # the outbox's requests: blocked, the page itself loads


def street_photo(path: Path, lat: float, lon: float, taken_at: datetime) -> Path:
    """A small after-photo (about 300 kB: a street's grain) with the phone's GPS and capture time
    (the service checks both)."""
    out = io.BytesIO()
    exif = exif_for(position=Position(lat, lon), taken_at=taken_at)
    # grain of its own: the service refuses a photo already evidence of another case
    grain = np.random.default_rng(int(taken_at.timestamp())).integers(90, 170, (600, 800, 3), dtype=np.uint8)
    Image.fromarray(grain).save(out, "JPEG", quality=85, exif=exif)
    path.write_bytes(out.getvalue())
    return path


def link(driver: Any, *, offline: bool = False, blocked: list[str] | None = None) -> None:
    """The phone's link: offline (the browser says so: navigator.onLine, `offline`/`online`), or up
    with the outbox's requests failing as a dropped link does (the page itself still loads)."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": blocked or []})
    driver.set_network_conditions(offline=offline, latency=0, download_throughput=-1, upload_throughput=-1)


def handling_case(live: Live, code: str, description: str, hours: int) -> int:  # noqa: F811
    case_id = dispatched_case(live, code, description, START + timedelta(hours=hours))
    step(live, case_id, "start")
    return case_id


def open_handle_form(driver: Any, live: Live, case_id: int, photo: Path) -> None:  # noqa: F811
    visit(driver, live, f"case/{case_id}", "case")
    reload_page(driver)  # a new document: its IndexedDB connection opened now
    one(driver, '#actions button[data-action="handle"]').click()
    one(driver, "#after-photo").send_keys(str(photo))


def reload_page(driver: Any) -> None:
    """Load the page again (a new document: what a reload, or a tab opened again, starts from)."""
    driver.refresh()
    one(driver, '#view[data-state="ready"]')


def outbox(driver: Any) -> tuple[int, int]:
    """(waiting, refused) as the outbox shows them; (0, 0) when it is hidden."""
    shown = driver.execute_script(
        "const b = document.querySelector('#outbox'); const c = document.querySelector('#outbox-count');"
        "return b.hidden || !c ? [0, 0] : [Number(c.dataset.waiting), Number(c.dataset.refused)]"
    )
    return int(shown[0]), int(shown[1])


def until_outbox(driver: Any, expected: tuple[int, int], message: str) -> None:
    """Wait until the outbox shows (waiting, refused); else fail saying what it shows."""
    try:
        wait(driver, lambda d: outbox(d) == expected)
    except TimeoutException:
        raise AssertionError(f"{message}: {outbox(driver)} {text(driver, '#outbox')!r}") from None


def text(driver: Any, selector: str) -> str:
    """An element's text read in one step (the outbox is redrawn as its steps go); '' if none."""
    return str(
        driver.execute_script("return document.querySelector(arguments[0])?.textContent || ''", selector)
    )


def outbox_says(driver: Any) -> str:
    return text(driver, "#outbox-count")


def after_photos(live: Live, case_id: int) -> list[dict[str, Any]]:  # noqa: F811
    return [e for e in live.api("GET", f"/v1/cases/{case_id}").json()["evidence"] if e["role"] == "after"]


def handled_steps(live: Live, case_id: int) -> int:  # noqa: F811
    return [s["action"] for s in live.api("GET", f"/v1/cases/{case_id}").json()["flow"]].count("handle")


ADDRESS = "127.0.0.1"  # the browser's, and the test's, address as the service sees it
# The phone's clock past every kept step's due time: each step due now (committed).
DUE_NOW = """const done = arguments[arguments.length - 1];
  indexedDB.open("streetorder").onsuccess = (e) => {
    const transaction = e.target.result.transaction("outbox", "readwrite");
    const store = transaction.objectStore("outbox");
    transaction.oncomplete = () => done();
    store.getAll().onsuccess = (r) => r.target.result.forEach((item) => store.put({ ...item, due: 0 }));
  };"""


def kept_steps(driver: Any) -> list[tuple[int, int]]:
    """(tries, ms until due) of each step kept in the phone's IndexedDB."""
    script = """const done = arguments[arguments.length - 1];
      indexedDB.open("streetorder").onsuccess = (e) => {
        const store = e.target.result.transaction("outbox").objectStore("outbox");
        store.getAll().onsuccess = (r) => done(r.target.result.map((i) => [i.tries, i.due - Date.now()]));
      };"""
    return [(int(tries), int(due_in)) for tries, due_in in driver.execute_async_script(script)]


def uploads_sent(driver: Any) -> int:
    """Photo uploads this page has made (resource timing: refused or not)."""
    script = (
        "return performance.getEntriesByType('resource')"
        ".filter(e => e.initiatorType === 'xmlhttprequest' && e.name.endsWith('/evidence')).length"
    )
    return int(driver.execute_script(script))


def test_a_step_submitted_offline_is_kept_through_a_reload_and_a_sign_in_and_lands_once(
    live: Live,  # noqa: F811
    phone: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    driver = phone
    _, lat, lon = GRID_LIFE
    case_id = handling_case(live, "06010", "人行道上一堆建筑垃圾", 1)
    sign_in_as(driver, live, "zhangwei")
    live.clock.at = START + timedelta(hours=1, minutes=30)
    photo = street_photo(tmp_path / "IMG_0101.jpg", lat, lon, START + timedelta(hours=1, minutes=25))
    open_handle_form(driver, live, case_id, photo)
    try:
        link(driver, offline=True)
        wait(driver, lambda d: d.execute_script("return !navigator.onLine"), "the browser still says online")
        one(driver, "#action-submit").click()
        assert one(driver, "#action-saved").text == SAVED.format(n=1)
        until_outbox(driver, (1, 0), "the outbox does not show the step")
        assert SAVED.format(n=1) in outbox_says(driver)
        row = text(driver, '#outbox-list li[data-state="waiting"]')
        number = live.api("GET", f"/v1/cases/{case_id}").json()["number"]
        assert number in row and "处置反馈" in row  # when (the phone's clock), case, step
        assert one(driver, "#outbox-list img.thumbnail").get_attribute("src").startswith("blob:")
        assert overflow(driver) <= 0  # the list fits the phone
        driver.execute_script("window.scrollTo(0, 0)")
        phone_screenshot(driver, "phone-outbox")
        assert after_photos(live, case_id) == [] and handled_steps(live, case_id) == 0

        # reloaded (or the tab closed and opened again) while the link still drops the uploads
        link(driver, blocked=SENDING)
        reload_page(driver)
        until_outbox(driver, (1, 0), "the step was lost on reload")
        time.sleep(1)  # the page's own try (on load) fails on the dropped link: the step stays
        assert outbox(driver) == (1, 0) and after_photos(live, case_id) == []

        # the link comes back, but the session ended meanwhile (its cookie gone): the step waits
        driver.delete_all_cookies()
        link(driver, offline=True)
        link(driver)
        wait(driver, lambda d: "重新登录后自动发送" in outbox_says(d), "a 401 does not say why")
        assert outbox(driver) == (1, 0) and after_photos(live, case_id) == []

        # signed in again: the step goes, and the case page shows it
        driver.get(f"{live.base}/")
        one(driver, '#view[data-page="signin"]')  # the next page drawn finds the session ended
        assert outbox(driver) == (1, 0)
        sign_in_as(driver, live, "zhangwei")
        until_outbox(driver, (0, 0), "the step was not sent after the sign-in")
        visit(driver, live, f"case/{case_id}", "case")
        one(driver, '#flow tr[data-action="handle"]')
    finally:
        link(driver)
    assert live.api("GET", f"/v1/cases/{case_id}").json()["state"] == "handled"
    assert len(after_photos(live, case_id)) == 1 and handled_steps(live, case_id) == 1


def test_a_refused_step_shows_why_and_is_not_sent_again_and_a_busy_one_waits_its_retry_after(
    live: Live,  # noqa: F811
    phone: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    driver = phone
    _, lat, lon = GRID_LIFE
    throttle = live.service.client_failures  # failed keys and sign-ins per address
    case_id = handling_case(live, "06042", "垃圾桶满溢", 3)
    sign_in_as(driver, live, "zhangwei")
    note = tmp_path / "notes.txt"
    note.write_text("不是照片")  # the service refuses it (415): no retry makes it a photo
    open_handle_form(driver, live, case_id, note)
    try:
        link(driver, offline=True)
        one(driver, "#action-submit").click()
        assert one(driver, "#action-saved").text == SAVED.format(n=1)
        link(driver)
        one(driver, '#outbox-list li[data-state="refused"]')
        refused = text(driver, '#outbox-list li[data-state="refused"] .refusal')
        assert "只接受 JPEG" in refused and "unsupported media type" in refused
        assert outbox(driver) == (0, 1)
        sent = uploads_sent(driver)
        for _ in range(2):  # online again, twice: the refused step stays put
            driver.execute_script("window.dispatchEvent(new Event('online'))")
            time.sleep(0.5)
        assert uploads_sent(driver) == sent and outbox(driver) == (0, 1)
        reload_page(driver)  # a page loaded tries the waiting steps
        time.sleep(1)
        assert uploads_sent(driver) == 0 and outbox(driver) == (0, 1)
        one(driver, "#outbox-list button.discard").click()
        until_outbox(driver, (0, 0), "discarded, the step stays")
        assert after_photos(live, case_id) == [] and handled_steps(live, case_id) == 0

        # a photo this time, but the service is too busy for this address (429 at the door, with
        # Retry-After: a flood of bad keys from it): the step waits as long as it is told
        live.clock.at = START + timedelta(hours=3, minutes=30)
        photo = street_photo(tmp_path / "IMG_0301.jpg", lat, lon, START + timedelta(hours=3, minutes=25))
        one(driver, '#actions button[data-action="handle"]').click()
        one(driver, "#after-photo").send_keys(str(photo))
        link(driver, offline=True)
        one(driver, "#action-submit").click()
        assert one(driver, "#action-saved").text == SAVED.format(n=1)
        for _ in range(throttle.attempts):
            throttle.failed(ADDRESS)
        sent = uploads_sent(driver)
        link(driver)
        wait(driver, lambda d: uploads_sent(d) == sent + 1, "the step was not tried once online")
        time.sleep(0.5)
        for _ in range(2):  # online again, twice: within its Retry-After the step is not sent
            driver.execute_script("window.dispatchEvent(new Event('online'))")
            time.sleep(0.5)
        assert uploads_sent(driver) == sent + 1 and outbox(driver) == (1, 0)
        [(tries, due_in)] = kept_steps(driver)
        assert tries == 1 and 50_000 < due_in <= 62_000  # Retry-After (about 61 s), not the 5 s backoff
        throttle.succeeded(ADDRESS)
        # the minute passes (the kept step's due time brought to now, as the phone's clock would)
        driver.execute_async_script(DUE_NOW)
        driver.execute_script("window.dispatchEvent(new Event('online'))")
        until_outbox(driver, (0, 0), "the step was not sent after its Retry-After")
    finally:
        throttle.succeeded(ADDRESS)
        link(driver)
    assert len(after_photos(live, case_id)) == 1 and handled_steps(live, case_id) == 1


def test_a_full_phone_says_so_and_a_step_sent_twice_files_once(live: Live, tmp_path: Path) -> None:  # noqa: F811
    # a phone of its own: in a browser whose page had already written to IndexedDB, Chromium's quota
    # override did not reach the page (navigator.storage.estimate() kept the default quota)
    with chrome(emulation=PHONE) as driver:
        full_phone_and_a_step_sent_twice(live, driver, tmp_path)


def full_phone_and_a_step_sent_twice(live: Live, driver: Any, tmp_path: Path) -> None:  # noqa: F811
    _, lat, lon = GRID_LIFE
    case_id = handling_case(live, "06011", "道路扬尘", 5)
    sign_in_as(driver, live, "zhangwei")
    live.clock.at = START + timedelta(hours=5, minutes=30)
    photo = street_photo(tmp_path / "IMG_0201.jpg", lat, lon, START + timedelta(hours=5, minutes=25))
    origin = {"origin": live.base}
    try:
        # storage refused (a phone with no room): said so, nothing pretends to be saved
        open_handle_form(driver, live, case_id, photo)
        driver.execute_cdp_cmd("Storage.overrideQuotaForOrigin", {**origin, "quotaSize": 1024})
        link(driver, offline=True)
        one(driver, "#action-submit").click()
        settled = (
            "return document.querySelector('#action-saved')?.id"
            " || document.querySelector('#action-error').textContent"
        )
        wait(driver, lambda d: d.execute_script(settled), "the form says nothing")
        assert "未能保存" in one(driver, "#action-error").text
        assert not css(driver, "#action-saved") and outbox(driver) == (0, 0)
        driver.execute_cdp_cmd("Storage.overrideQuotaForOrigin", origin)  # room again
        one(driver, "#action-submit").click()
        assert one(driver, "#action-saved").text == SAVED.format(n=1)

        # the step's answer was lost after the service filed it: it is sent again (here, a copy of
        # the kept step with its Idempotency-Key stands for the retry) and files nothing twice
        driver.execute_async_script(
            """const done = arguments[arguments.length - 1];
            const opening = indexedDB.open("streetorder");
            opening.onsuccess = () => {
              const transaction = opening.result.transaction("outbox", "readwrite");
              const store = transaction.objectStore("outbox");
              transaction.oncomplete = () => done();  // committed: a reload cannot undo it
              store.getAll().onsuccess = (e) => {
                const copy = { ...e.target.result[0] }; delete copy.id;
                store.add(copy);
              };
            };"""
        )
        link(driver, blocked=SENDING)
        reload_page(driver)
        until_outbox(driver, (2, 0), "the copy is not shown")
        link(driver, offline=True)
        link(driver)
        until_outbox(driver, (0, 0), "the steps were not sent (or one was refused)")
    finally:
        driver.execute_cdp_cmd("Storage.overrideQuotaForOrigin", origin)
        link(driver)
    assert live.api("GET", f"/v1/cases/{case_id}").json()["state"] == "handled"
    assert len(after_photos(live, case_id)) == 1 and handled_steps(live, case_id) == 1


class Relay:
    """A TCP link between the phone and the service that the signal can leave: cut, every connection
    drops and each new one is closed unanswered, the service worker's requests too (chromedriver's
    network conditions reach the page only, not its worker)."""

    def __init__(self, service: str) -> None:
        self.service = ("127.0.0.1", int(service.rsplit(":", 1)[1]))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.up = True
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                phone_end, _ = self.listener.accept()
            except OSError:
                return  # closed
            if not self.up:
                phone_end.close()
                continue
            service_end = socket.create_connection(self.service)
            with self.lock:
                self.open |= {phone_end, service_end}
            for source, sink in ((phone_end, service_end), (service_end, phone_end)):
                threading.Thread(target=self.pipe, args=(source, sink), daemon=True).start()

    def pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass  # cut
        finally:
            self.drop(source, sink)

    def drop(self, *ends: socket.socket) -> None:
        with self.lock:
            for end in ends:
                self.open.discard(end)
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

    def cut(self) -> None:
        self.up = False
        self.drop(*list(self.open))

    def mend(self) -> None:
        self.up = True


@pytest.fixture
def relay(live: Live) -> Iterator[Relay]:  # noqa: F811
    """The link to the service the phone takes (an origin of its own: a worker of its own)."""
    relay = Relay(live.base)
    try:
        yield relay
    finally:
        relay.listener.close()
        relay.cut()


def no_signal(driver: Any, relay: Relay) -> None:
    """No signal at all: the browser says so, and nothing reaches the service."""
    link(driver, offline=True)
    relay.cut()


def signal(driver: Any, relay: Relay) -> None:
    relay.mend()
    link(driver)


# The service worker's caches as the page sees them: {name: [paths kept]}.
CACHES = """const done = arguments[arguments.length - 1];
  (async () => {
    const out = {};
    for (const name of await caches.keys()) {
      out[name] = (await (await caches.open(name)).keys()).map((r) => new URL(r.url).pathname);
    }
    done(out);
  })();"""
STALE = re.compile(r"^离线：显示的是 \d\d:\d\d 的数据$")


def kept(driver: Any) -> dict[str, list[str]]:
    return dict(driver.execute_async_script(CACHES))


def answers_kept(driver: Any) -> list[str]:
    """The API answers the service worker keeps (paths), all caches of answers together."""
    return [
        path for name, paths in kept(driver).items() if name.startswith("streetorder-api-") for path in paths
    ]


def controlled(driver: Any, live: Live, case_id: int) -> None:  # noqa: F811
    """The case page drawn under the service worker (installed by the first load, it controls the
    page once active; the page is loaded again so that its API reads go through it)."""
    visit(driver, live, f"case/{case_id}", "case")
    wait(
        driver, lambda d: d.execute_script("return Boolean(navigator.serviceWorker.controller)"), "no worker"
    )
    reload_page(driver)
    assert f"/v1/cases/{case_id}" in answers_kept(driver)


def test_a_reload_with_no_signal_shows_the_case_kept_with_a_stale_banner_and_the_outbox(
    live: Live,  # noqa: F811
    relay: Relay,
    phone: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    driver = phone
    reach = replace(live, base=relay.base)  # the service as the phone reaches it
    _, lat, lon = GRID_LIFE
    case_id = handling_case(live, "06036", "路边堆放杂物", 7)
    number = live.api("GET", f"/v1/cases/{case_id}").json()["number"]
    sign_in_as(driver, reach, "zhangwei")
    live.clock.at = START + timedelta(hours=7, minutes=30)
    photo = street_photo(tmp_path / "IMG_0701.jpg", lat, lon, START + timedelta(hours=7, minutes=25))
    controlled(driver, reach, case_id)
    assert not css(driver, "#stale-notice")  # online: the service's answers, no banner
    one(driver, '#actions button[data-action="handle"]').click()
    one(driver, "#after-photo").send_keys(str(photo))
    try:
        no_signal(driver, relay)
        one(driver, "#action-submit").click()
        assert one(driver, "#action-saved").text == SAVED.format(n=1)

        # no signal, the page loaded again: the console, the case and the waiting step, said stale
        reload_page(driver)
        assert one(driver, '#view[data-page="case"]').get_attribute("data-state") == "ready"
        assert number in one(driver, "#view").text
        assert STALE.match(one(driver, "#stale-notice").text), one(driver, "#stale-notice").text
        until_outbox(driver, (1, 0), "the outbox is not shown offline")
        assert number in text(driver, '#outbox-list li[data-state="waiting"]')
        assert handled_steps(live, case_id) == 0

        # a new tab, no signal: the console (its sign-in needs the signal) with the steps waiting
        first = driver.current_window_handle
        driver.switch_to.new_window("tab")
        driver.get(f"{reach.base}/#/case/{case_id}")
        one(driver, '#view[data-page="signin"][data-state="ready"]')
        until_outbox(driver, (1, 0), "the outbox is not shown in a new tab")
        driver.close()
        driver.switch_to.window(first)

        # the signal back: the step goes, once, and the page shows the service's answers again
        signal(driver, relay)
        until_outbox(driver, (0, 0), "the step was not sent once online")
        one(driver, '#flow tr[data-action="handle"]')
        wait(driver, lambda d: not css(d, "#stale-notice"), "the stale banner stays online")
        reload_page(driver)
        time.sleep(1)
    finally:
        signal(driver, relay)
    assert len(after_photos(live, case_id)) == 1 and handled_steps(live, case_id) == 1


def test_the_answers_kept_go_with_a_sign_out_and_a_401_and_a_keys_are_never_kept(
    live: Live,  # noqa: F811
    relay: Relay,
    phone: Any,  # noqa: F811
) -> None:
    driver = phone
    reach = replace(live, base=relay.base)  # the service as the phone reaches it
    case_id = handling_case(live, "09010", "共享单车堆在盲道上", 9)
    sign_in_as(driver, reach, "zhangwei")
    controlled(driver, reach, case_id)
    one(driver, "#signout").click()
    one(driver, '#view[data-page="signin"]')
    wait(driver, lambda d: answers_kept(d) == [], "the answers outlive the sign-out")
    try:  # nothing of the case for whoever reloads it with no signal after the sign-out
        no_signal(driver, relay)
        driver.get(f"{reach.base}/#/case/{case_id}")
        one(driver, '#view[data-page="signin"][data-state="ready"]')
    finally:
        signal(driver, relay)

    # the session ended elsewhere (its cookie gone): the next answer is a 401, the kept ones go
    sign_in_as(driver, reach, "zhangwei")
    controlled(driver, reach, case_id)
    driver.delete_all_cookies()
    reload_page(driver)
    one(driver, '#view[data-page="signin"]')
    assert answers_kept(driver) == []

    # signed in with an API key: its answers are not kept
    driver.get(f"{reach.base}/")
    one(driver, "#key").send_keys(live.keys["console"])
    one(driver, "#signin button[type=submit]").click()
    one(driver, '#view[data-page="cases"][data-state="ready"]')
    visit(driver, reach, f"case/{case_id}", "case")
    assert answers_kept(driver) == []
    one(driver, "#signout").click()


def test_a_new_release_replaces_the_console_kept(
    live: Live,  # noqa: F811
    relay: Relay,
    phone: Any,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    driver = phone
    reach = replace(live, base=relay.base)  # the service as the phone reaches it
    case_id = handling_case(live, "07003", "电线杆上张贴广告", 11)
    sign_in_as(driver, reach, "zhangwei")
    controlled(driver, reach, case_id)
    before = f"streetorder-shell-{console.VERSION}"
    assert "/console/i18n.js" in kept(driver)[before] and "/" in kept(driver)[before]

    # the release: a console whose brand reads otherwise (i18n.js changed) and so a new version
    changed = tmp_path / "i18n.js"
    changed.write_text(
        console.ASSETS["i18n.js"].read_text().replace("街面秩序 · 网格案卷", "街面秩序 · 新版")
    )
    assets = {**console.ASSETS, "i18n.js": changed}
    monkeypatch.setattr(console, "ASSETS", assets)
    monkeypatch.setattr(console, "VERSION", console.shell_version(assets))
    after = f"streetorder-shell-{console.VERSION}"
    reload_page(driver)  # online: the page as the service has it now (network first) ...
    assert "新版" in one(driver, ".brand").text
    # ... and the new worker installed in the old one's place, the old release's files dropped
    wait(driver, lambda d: [n for n in kept(d) if n.startswith("streetorder-shell-")] == [after], "old kept")
    try:
        no_signal(driver, relay)
        reload_page(driver)
        assert "新版" in one(driver, ".brand").text
    finally:
        signal(driver, relay)
