"""The console for people (issue 30, point 6), in a real headless Chromium against the real service:
each role signs in with a password (the session cookie is HttpOnly: the page's script never sees
it), sees only the buttons its role may press, a handler only their department's cases; an extension
asked by the handler is approved by the dispatcher; a worst spot is flagged by the dispatcher, an
inspector's check is refused while cases are open, and a leader reads the supervision page, the
monthly district ranking and the inspectors' metrics and downloads the ledger. Chinese throughout.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from selenium.webdriver.support.select import Select
from test_console import (
    GRID_LIFE,
    START,
    TZ,
    Live,
    act,
    browser,  # noqa: F401  (fixture)
    css,
    live,  # noqa: F401  (fixture)
    one,
    open311,
    screenshot,
    step,
    street_photo,
    visit,
    wait,
)

from serve.cases.db import transaction
from serve.cases.people import create_user

PASSWORD = "correct horse battery"
SANITATION = "二七区环境卫生服务中心"
PEOPLE = {  # username -> (role, department, display name)
    "wangfang": ("operator", None, "王芳"),
    "liqiang": ("dispatcher", None, "李强"),
    "zhangwei": ("handler", SANITATION, "张伟"),
    "liuyang": ("handler", "二七区交通警察大队", "刘洋"),
    "chenjing": ("inspector", None, "陈静"),
    "zhoumin": ("leader", None, "周敏"),
}
made: set[int] = set()  # the live services whose accounts exist


def accounts(server: Live) -> None:
    """The people of PEOPLE in the module's service (once)."""
    if id(server.service) in made:
        return
    state = server.service
    with transaction(state.sessions) as session:
        for username, (role, department, name) in PEOPLE.items():
            create_user(
                session,
                username=username,
                password=PASSWORD,
                role=role,
                pepper=state.verifier.pepper,
                now=START,
                display_name=name,
                department=department,
                grids=[GRID_LIFE[0]] if role == "inspector" else [],
                departments=tuple(state.domain.routing.departments),
                layout=state.domain.rules.grids,
            )
    made.add(id(server.service))


def sign_in_as(driver: Any, server: Live, username: str) -> None:
    """Sign out whoever is signed in, then sign in with the password form; waits for the case list."""
    accounts(server)
    driver.get(f"{server.base}/")
    if css(driver, "#signout") and one(driver, "#signout").is_displayed():
        one(driver, "#signout").click()
    one(driver, "#username").send_keys(username)
    one(driver, "#password").send_keys(PASSWORD)
    one(driver, "#signin-person button[type=submit]").click()
    one(driver, '#view[data-page="cases"][data-state="ready"]')
    role, _, name = PEOPLE[username]
    assert one(driver, "#who").get_attribute("data-role") == role and name in one(driver, "#who").text


def buttons(driver: Any) -> list[str]:
    return [b.get_attribute("data-action") for b in css(driver, "#actions button")]


def test_each_role_signs_in_and_acts_only_as_its_role(
    live: Live,  # noqa: F811
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    driver = browser
    _, lat, lon = GRID_LIFE
    live.clock.at = START + timedelta(hours=2)
    case_id = open311(live, "06010", lat, lon, "人行道上一堆生活垃圾")
    accounts(live)

    driver.get(f"{live.base}/")
    driver.execute_script("sessionStorage.clear();")
    driver.delete_all_cookies()
    driver.get(f"{live.base}/")
    one(driver, "#username").send_keys("wangfang")
    one(driver, "#password").send_keys("wrong password!")
    one(driver, "#signin-person button[type=submit]").click()
    wait(driver, lambda d: "用户名或密码错误" in one(d, "#signin-error").text, "wrong password not refused")
    screenshot(driver, "signin-password", height=640)

    sign_in_as(driver, live, "wangfang")
    assert "受理员" in one(driver, "#who").text
    assert "streetorder_session" not in driver.execute_script("return document.cookie")  # HttpOnly
    assert driver.get_cookie("streetorder_session")["httpOnly"] is True
    visit(driver, live, f"case/{case_id}", "case")
    assert buttons(driver) == ["confirm", "correct", "reject", "cancel"]
    act(driver, live, "confirm", START + timedelta(hours=2, minutes=5))
    act(driver, live, "file", START + timedelta(hours=2, minutes=10))
    assert css(driver, "#flow tbody tr")[-1].find_elements("css selector", "td")[3].text == "王芳"

    sign_in_as(driver, live, "liuyang")  # traffic police: the garbage case is not theirs
    visit(driver, live, f"case/{case_id}", "case")
    assert buttons(driver) == []

    sign_in_as(driver, live, "liqiang")
    visit(driver, live, f"case/{case_id}", "case")
    assert "dispatch" in buttons(driver) and "confirm" not in buttons(driver)
    act(driver, live, "dispatch", START + timedelta(hours=2, minutes=20))

    sign_in_as(driver, live, "zhangwei")
    visit(driver, live, "cases", "cases")
    shown = {
        int(v) for v in [r.get_attribute("data-case") for r in css(driver, "#cases tbody tr[data-case]")]
    }
    assert case_id in shown
    assert shown <= {
        c["id"] for c in live.api("GET", "/v1/cases", params={"department": SANITATION}).json()["items"]
    }
    visit(driver, live, f"case/{case_id}", "case")
    assert buttons(driver) == ["send_back", "start"]
    act(driver, live, "start", START + timedelta(hours=2, minutes=30))
    live.clock.at = START + timedelta(hours=2, minutes=40)
    one(driver, "#ask-extension").click()
    one(driver, '#extension-form textarea[name="note"]').send_keys("清运车辆故障")
    assert "延期时长（工作小时）" in one(driver, "#extension-form").text  # read "（4 工作小时）"
    one(driver, "#extension-submit").click()
    row = one(driver, '#extensions tr[data-state="pending"]')
    assert "待审批" in row.text and not row.find_elements("css selector", "button.approve")  # not their own
    asked = row.find_elements("css selector", "td")[2].text  # extend_by counts the limit's unit
    assert asked == "1 工作小时", asked  # read "1 4 工作小时", the class's limit beside it
    deadline = live.api("GET", f"/v1/cases/{case_id}").json()["deadline_at"]

    sign_in_as(driver, live, "liqiang")
    visit(driver, live, f"case/{case_id}", "case")
    live.clock.at = START + timedelta(hours=2, minutes=45)
    one(driver, "#extensions button.approve").click()
    one(driver, '#extensions tr[data-state="approved"]')
    wait(driver, lambda d: css(d, '#flow tr[data-action="extend"]'), "extend step not shown")
    case = live.api("GET", f"/v1/cases/{case_id}").json()
    assert case["deadline_at"] > deadline and case["flow"][-1]["operator"] == "李强"
    screenshot(driver, "case-extension")

    sign_in_as(driver, live, "zhoumin")  # the leader reads everything and changes nothing
    visit(driver, live, f"case/{case_id}", "case")
    assert buttons(driver) == [] and "无可办理" in one(driver, "#actions-hint").text
    assert not css(driver, "#ask-extension")

    # The handler's page goes stale (the bureau system moves the deadline meanwhile): the handling
    # is refused as changed by someone else, and its after-photo is not left on the case.
    sign_in_as(driver, live, "zhangwei")
    visit(driver, live, f"case/{case_id}", "case")
    one(driver, '#actions button[data-action="handle"]').click()
    one(driver, "#after-photo").send_keys(str(street_photo(tmp_path / "after.jpg", seed=1)))
    step(live, case_id, "extend", extend_by=1, note="系统顺延")
    one(driver, "#action-submit").click()
    wait(driver, lambda d: "已被他人修改" in one(d, "#action-error").text, "stale handling not refused")
    roles = [e["role"] for e in live.api("GET", f"/v1/cases/{case_id}").json()["evidence"]]
    assert "after" not in roles  # it was kept: an after-photo no handling stood on


def test_supervision_page_flag_check_ranking_metrics_and_ledger(live: Live, browser: Any) -> None:  # noqa: F811
    driver = browser
    grid, lat, lon = GRID_LIFE
    live.clock.at = START + timedelta(hours=4)
    open_case = open311(live, "06042", lat, lon, "垃圾桶满溢")
    piled = open311(live, "06036", lat, lon, "人行道上堆放的建材")  # a second open case in the spot
    for case_id in (open_case, piled):
        for action in ("confirm", "file"):  # a ranking counts filed cases only (issue 27, review gating)
            step(live, case_id, action)
    number = live.api("GET", f"/v1/cases/{open_case}").json()["number"]
    routed = [live.api("GET", f"/v1/cases/{c}").json()["suggested_department"] for c in (open_case, piled)]
    assert routed[0] == SANITATION != routed[1]  # a bin to sanitation, building materials to the squad
    assert live.api("GET", "/v1/departments").json()["departments"][0] != SANITATION

    sign_in_as(driver, live, "liqiang")
    chosen = []
    for dispatched in (False, True):  # its cases go to two departments; then both to sanitation
        if dispatched:
            step(live, piled, "dispatch", department=SANITATION)
            driver.refresh()  # the same address: drawn anew
        visit(driver, live, "supervision", "supervision")
        Select(one(driver, '#flag-form select[name="grid"]')).select_by_value(grid)
        department = Select(one(driver, '#flag-form select[name="department"]'))
        chosen.append(department.first_selected_option.get_attribute("value"))
    assert chosen == ["", SANITATION]  # a person chooses; then the department its cases go to (not the first)
    one(driver, '#flag-form textarea[name="reason"]').send_keys("2025-09-3 最差乱点")
    one(driver, "#flag-submit").click()
    item = one(driver, '#supervision tr[data-state="open"][data-kind="spot"]')
    assert grid in item.text and SANITATION in item.text and int(item.get_attribute("data-open")) >= 1
    section = Select(one(driver, '#flag-form select[name="grid"]'))  # a road section: two grids, a name
    section.deselect_all()
    neighbours = [o.get_attribute("value") for o in section.options][-2:]
    for code in neighbours:
        section.select_by_value(code)
    department = Select(one(driver, '#flag-form select[name="department"]'))
    assert department.first_selected_option.get_attribute("value") == ""  # no cases routed: a person chooses
    department.select_by_value(SANITATION)
    one(driver, "#flag-name").send_keys("汝河路东段")
    one(driver, '#flag-form textarea[name="reason"]').send_keys("2025-09-3 最差路段")
    # the deadline is typed on the bureau's clock, whatever the PC's timezone (here New York's)
    driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "America/New_York"})
    try:
        deadline = one(driver, '#flag-form input[name="deadline"]')
        driver.execute_script("arguments[0].value = '2025-09-26T18:00'", deadline)
        one(driver, "#flag-submit").click()
        road = one(driver, '#supervision tr[data-kind="section"]')
    finally:
        driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": ""})
    assert "汝河路东段" in road.text and "最差路段" in road.text and all(c in road.text for c in neighbours)
    assert "2025-09-26 18:00" in road.text
    flagged = live.api("GET", "/v1/supervision").json()
    due = next(item["deadline_at"] for item in flagged if item["kind"] == "section")
    assert datetime.fromisoformat(due) == datetime(2025, 9, 26, 18, 0, tzinfo=TZ)  # was 2025-09-27 06:00

    sign_in_as(driver, live, "wangfang")  # an operator neither flags nor checks
    visit(driver, live, "supervision", "supervision")
    assert not css(driver, "#flag-form") and not css(driver, "#supervision .close-form")

    sign_in_as(driver, live, "chenjing")
    visit(driver, live, "supervision", "supervision")
    assert not css(driver, "#flag-form")
    section = '#supervision tr[data-kind="section"]'  # nothing open in its grids: the check closes it
    one(driver, f'{section} .close-form input[name="note"]').send_keys("路段已整治")
    one(driver, f"{section} .close-submit").click()
    one(driver, '#supervision tr[data-kind="section"][data-state="closed"]')
    spot = '#supervision tr[data-kind="spot"]'
    one(driver, f'{spot} .close-form input[name="note"]').send_keys("现场仍有垃圾桶满溢")
    one(driver, f"{spot} .close-submit").click()
    wait(driver, lambda d: number in one(d, "#supervision-error").text, "open case not named")
    assert "仍有未结案卷" in one(driver, "#supervision-error").text
    one(driver, "#lang").click()  # in English the open cases are listed the English way
    visit(driver, live, "supervision", "supervision")
    one(driver, f'{spot} .close-form input[name="note"]').send_keys("bins still overflowing")
    one(driver, f"{spot} .close-submit").click()
    refused = wait(
        driver, lambda d: number in one(d, "#supervision-error").text and one(d, "#supervision-error").text
    )
    assert refused.startswith("Cases are still open there: ") and "、" not in refused  # was 'SO1、SO2'
    one(driver, "#lang").click()
    inspector = one(driver, '#inspectors tr[data-inspector="chenjing"]')
    assert grid in inspector.text

    sign_in_as(driver, live, "zhoumin")
    visit(driver, live, "supervision", "supervision")
    assert not css(driver, "#flag-form") and not css(driver, "#supervision .close-form")
    district = one(driver, '#districts tr[data-district="二七区"]')
    api = live.api("GET", "/v1/stats/monthly-ranking", params={"month": "2025-09"}).json()["districts"][0]
    assert int(district.get_attribute("data-problems")) == api["problems"] >= 1
    one(driver, "#ledger-csv").click()
    status = one(driver, '#ledger-status[data-format="csv"]')
    assert int(status.get_attribute("data-bytes")) > 100 and "ledger-2025-09.csv" in status.text
    screenshot(driver, "supervision")


def test_a_tab_whose_sign_in_another_tab_replaced_names_the_new_person(live: Live, browser: Any) -> None:  # noqa: F811
    """Two people in one browser: the second sign-in replaces the session cookie the first tab's
    page still names. A step taken with the old session's CSRF token is refused and says so, not
    'this key lacks the scope ()'; the tab's next page names the person the service now sees (it
    went on naming the first while answering as the second) and says why."""
    driver = browser
    _, lat, lon = GRID_LIFE
    live.clock.at = START + timedelta(hours=5)
    case_id = open311(live, "06011", lat, lon, "渣土堆了一周")  # no other case of its class here
    sign_in_as(driver, live, "wangfang")
    visit(driver, live, f"case/{case_id}", "case")
    operator_buttons = buttons(driver)
    stale = "const p = JSON.parse(sessionStorage.getItem('streetorder.person')); p.csrf_token = 'replaced';"
    driver.execute_script(stale + " sessionStorage.setItem('streetorder.person', JSON.stringify(p));")
    one(driver, '#actions button[data-action="confirm"]').click()
    one(driver, "#action-submit").click()
    wait(driver, lambda d: "另一账号" in one(d, "#action-error").text, "the replaced session not told")
    assert live.api("GET", f"/v1/cases/{case_id}").json()["state"] == "reported"  # nothing changed

    first = driver.current_window_handle
    driver.switch_to.new_window("tab")
    try:
        sign_in_as(driver, live, "liqiang")  # same cookie jar: wangfang's session cookie is replaced
        visit(driver, live, f"case/{case_id}", "case")
        dispatcher_buttons = buttons(driver)
    finally:
        driver.close()
        driver.switch_to.window(first)
    visit(driver, live, "cases", "cases")
    visit(driver, live, f"case/{case_id}", "case")
    wait(driver, lambda d: "李强" in one(d, "#who").text, "the tab still names the first person")
    assert one(driver, "#who").get_attribute("data-role") == "dispatcher"
    assert buttons(driver) == dispatcher_buttons != operator_buttons
    assert "李强" in one(driver, "#session-notice").text
    visit(driver, live, "cases", "cases")
    assert "李强" in one(driver, "#session-notice").text  # on every page until read
    one(driver, "#session-notice button").click()
    wait(driver, lambda d: not css(d, "#session-notice"), "the notice stays after it was read")
    visit(driver, live, "map", "map")
    assert not css(driver, "#session-notice")
