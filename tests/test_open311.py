"""Open311 GeoReport v2 over HTTP, checked with a client written from the specification alone
(tests/open311_client.py): discovery, services and a service's definition, a citizen's request
followed to closed, public reads in XML and JSON with the citizen's own words and a public blurred
photo, dates with and without an offset, addresses without coordinates (placed by a grid name,
or held with a token until a person places them), jurisdiction, error lists, idempotent retries."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic import command
from configured import TAXONOMY
from conftest import Service
from open311_client import GeoReport, GeoReportError
from test_api_storage import alembic_config
from test_intake_lookups import query_plans

from serve.api.open311 import same_held
from serve.cases.db import open_database
from serve.cases.fingerprints import held_request_key
from serve.cases.orm import CitizenRequest

TZ = ZoneInfo("Asia/Shanghai")
DISCOVERY = "http://testserver/open311/discovery"
REQUEST = {
    "service_code": "07001",
    "lat": 34.72355,
    "long": 113.63091,
    "address_string": "淮河路与大学路交叉口东北角",
    "description": "电线杆上贴满办证小广告",
}


def client(service: Service, fmt: str = "xml", scope: str | None = "report") -> GeoReport:
    """The spec client, pointed at this service by its discovery document (in `fmt`)."""
    found = GeoReport.discover(service.client, f"{DISCOVERY}.{fmt}", service.keys[scope] if scope else None)
    found.fmt = fmt
    return found


def step(service: Service, case_id: int, action: str, **fields: object) -> None:
    response = service.transition(case_id, action, **fields)
    assert response.status_code == 200, response.text


def case_id_of(service: Service, number: str) -> int:
    items = service.client.get("/v1/cases", headers=service.auth("cases:read")).json()["items"]
    return next(int(c["id"]) for c in items if c["number"] == number)


def test_discovery_services_and_definitions_in_both_formats(service: Service) -> None:
    xml, json = client(service, "xml"), client(service, "json")
    assert xml.endpoint == json.endpoint == "http://testserver/open311/v2" and xml.fmt == "xml"
    events = TAXONOMY.events.values()
    services = xml.services()
    assert services == json.services()
    assert {s["service_code"] for s in services} == {e.gbt47678 for e in events}
    small_ads = next(s for s in services if s["service_code"] == "07001")
    assert small_ads["service_name"].startswith("非法小广告") and small_ads["group"] == "ads"
    assert small_ads["metadata"] is False and small_ads["type"] == "realtime"
    assert xml.definition("07001") == json.definition("07001") == {"service_code": "07001", "attributes": []}
    for fmt in ("xml", "json"):
        with pytest.raises(GeoReportError) as missing:
            client(service, fmt).definition("99999")
        assert missing.value.status == 404 and "99999" in missing.value.description


def test_a_request_followed_to_closed_reads_as_the_citizen_wrote_it(service: Service) -> None:
    citizen = client(service)  # XML, as the specification requires of every server
    created = citizen.create(**REQUEST)
    number = created["service_request_id"]
    assert number.startswith("SO20250930") and "token" not in created
    assert created["service_notice"] == "已受理，新建案卷"

    public = GeoReport(service.client, citizen.endpoint, "xml")  # no key at all: reads are public
    opened = public.request(number)
    assert opened == client(service, "json", scope=None).request(number)  # the same in JSON
    assert opened["description"] == REQUEST["description"]  # the citizen's words, not generated text
    assert opened["address"] == REQUEST["address_string"]
    assert (opened["service_code"], opened["lat"], opened["long"]) == (
        "07001",
        REQUEST["lat"],
        REQUEST["long"],
    )
    assert opened["address_id"] == "410103001002002" and opened["status"] == "open"
    assert opened["status_notes"] == "已收到，待核实" and opened["agency_responsible"] is None
    assert datetime.fromisoformat(opened["requested_datetime"]) == service.clock.at

    case_id = case_id_of(service, number)
    for minutes, action in ((5, "confirm"), (10, "file"), (15, "dispatch")):
        service.clock.at += timedelta(minutes=minutes)
        step(service, case_id, action)
    dispatched = public.request(number)
    assert dispatched["agency_responsible"] == "淮河路街道办事处"  # small ads in street 410103001
    # 4 working hours from 11:00 on the last day before the holiday: 12:00-14:00 lunch skipped
    assert datetime.fromisoformat(dispatched["expected_datetime"]) == datetime(2025, 9, 30, 17, 0, tzinfo=TZ)
    assert dispatched["status"] == "open" and dispatched["status_notes"] == "已派遣至处置部门"
    assert datetime.fromisoformat(dispatched["updated_datetime"]) == service.clock.at

    service.clock.at += timedelta(minutes=5)  # an approved extension's note names the staff who asked
    step(service, case_id, "extend", extend_by=1, note="延期申请 #1 (张伟): 等待联合执法")
    extended = public.request(number)
    assert extended["status_notes"] == "已派遣至处置部门：处置期限已延长", extended["status_notes"]
    assert datetime.fromisoformat(extended["expected_datetime"]) == datetime(2025, 9, 30, 18, 0, tzinfo=TZ)

    service.clock.at += timedelta(minutes=5)
    step(service, case_id, "force_close", note="广告已由社区清除")
    [closed] = public.requests(status="closed")
    assert closed["service_request_id"] == number and closed["status"] == "closed"
    assert closed["status_notes"] == "已结案（强制结案）：广告已由社区清除"
    assert public.requests(status="open") == []


def test_an_after_photo_override_stays_out_of_status_notes(service: Service, jpeg) -> None:  # type: ignore[no-untyped-def]
    """A person who accepts an after-photo that failed its check writes why; the flow log keeps the
    failed checks and that reason with their note, the public reads their note alone."""
    number = client(service).create(**REQUEST)["service_request_id"]
    case_id = case_id_of(service, number)
    for action in ("confirm", "file", "dispatch", "start"):
        service.clock.at += timedelta(minutes=5)
        step(service, case_id, action)
    service.clock.at += timedelta(minutes=5)
    after = service.client.post(  # no GPS: it fails `at_place`
        f"/v1/cases/{case_id}/evidence",
        files={"file": ("after.jpg", jpeg(320, 240, 5), "image/jpeg")},
        data={"role": "after", "taken_at": service.clock.at.isoformat()},
        headers=service.auth("cases:write"),
    )
    assert after.status_code == 201 and after.json()["extra"]["after_check"]["passed"] is False, after.text
    reason = "内部：照片无定位，处置人王五电话确认"
    handled = {"evidence_id": after.json()["id"], "note": "小广告已清除", "override_reason": reason}
    step(service, case_id, "handle", **handled)
    public = client(service, "json", scope=None)
    for fmt in ("json", "xml"):
        notes = client(service, fmt, scope=None).request(number)["status_notes"]
        assert notes == "已处置，待核查：小广告已清除", (fmt, notes)
    service.clock.at += timedelta(minutes=5)
    step(service, case_id, "check_pass", override_reason=reason)  # no note of their own at all
    assert public.request(number)["status_notes"] == "核查通过，待结案"
    flow = service.client.get(f"/v1/cases/{case_id}", headers=service.auth("cases:read")).json()["flow"]
    assert all("after-photo check overridden" in f["note"] and reason in f["note"] for f in flow[-2:])


def test_media_url_is_public_and_blurred(service: Service, jpeg) -> None:  # type: ignore[no-untyped-def]
    number = client(service).create(**REQUEST)["service_request_id"]
    photo = jpeg(320, 240, 3)
    added = service.client.post(
        f"/v1/cases/{case_id_of(service, number)}/evidence",
        files={"file": ("near.jpg", photo, "image/jpeg")},
        data={"role": "near"},
        headers=service.auth("cases:write"),
    )
    assert added.status_code == 201, added.text
    media_url = client(service, scope=None).request(number)["media_url"]
    assert media_url.startswith("http://testserver/") and "key" not in media_url
    served = service.client.get(media_url)  # no key
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert served.headers["X-Privacy"] == "redacted" and served.content != photo


def test_dates_with_or_without_an_offset_are_the_bureaus(service: Service) -> None:
    """Requested at 10:30 in Zhengzhou (02:30 UTC): what a client writes without an offset is local."""
    citizen = client(service)
    number = citizen.create(**REQUEST)["service_request_id"]
    found = {
        "2025-09-30T10:00:00": True,  # local 10:00, before 10:30
        "2025-09-30T11:00:00": False,
        "2025-09-30T02:00:00Z": True,
        "2025-09-30T03:00:00+00:00": False,
        "2025-09-30": True,  # a date alone: from the start of its day
        "2025-10-01": False,
    }
    for start, listed in found.items():
        numbers = [r["service_request_id"] for r in citizen.requests(start_date=start)]
        assert (number in numbers) == listed, start
    assert [r["service_request_id"] for r in citizen.requests(end_date="2025-09-30")] == [
        number
    ]  # its whole day
    assert citizen.requests(end_date="2025-09-30T10:00:00") == []
    assert citizen.requests(start_date="2025-09-29", end_date="2025-09-29") == []
    with pytest.raises(GeoReportError) as bad:
        citizen.requests(start_date="30/09/2025")
    assert bad.value.status == 400 and "start_date" in bad.value.description
    with pytest.raises(GeoReportError) as too_long:
        citizen.requests(start_date="2025-06-01", end_date="2025-09-30")
    assert too_long.value.status == 400 and "90 days" in too_long.value.description


def test_an_address_without_coordinates_is_placed_by_its_grid_or_held_with_a_token(service: Service) -> None:
    citizen = client(service)
    by_grid = citizen.create(
        service_code="06010", address_string="汝河社区第6网格，垃圾桶旁", description="垃圾"
    )
    placed = citizen.request(by_grid["service_request_id"])
    assert placed["address_id"] == "410103001001006" and placed["address"] == "汝河社区第6网格，垃圾桶旁"

    held = citizen.create(service_code="06010", address_string="淮河路 12 号门口", description="一堆建筑垃圾")
    assert "service_request_id" not in held and held["token"]
    assert held["service_notice"].startswith("已收到")
    assert citizen.token(held["token"]) == {"service_request_id": None, "token": held["token"]}
    assert [r["service_request_id"] for r in citizen.requests()] == [by_grid["service_request_id"]]

    waiting = service.client.get("/v1/citizen-requests", headers=service.auth("cases:read")).json()
    assert [(w["token"], w["fields"]["address_string"]) for w in waiting] == [
        (held["token"], "淮河路 12 号门口")
    ]
    where = {"lat": 34.72355, "lon": 113.63091}
    outside = service.client.post(
        f"/v1/citizen-requests/{held['token']}/place",
        json={"lat": 39.9, "lon": 116.4},
        headers=service.auth("cases:write"),
    )
    assert outside.status_code == 422 and outside.json()["title"] == "outside the jurisdiction"
    service.clock.at += timedelta(hours=1)
    placing = service.client.post(
        f"/v1/citizen-requests/{held['token']}/place", json=where, headers=service.auth("cases:write")
    )
    assert placing.status_code == 200, placing.text
    number = citizen.token(held["token"])["service_request_id"]
    assert (
        number == placing.json()["service_request_id"] and placing.json()["placed_by"] == "cases:write-user"
    )
    case = citizen.request(number)
    assert (case["lat"], case["long"], case["address"]) == (34.72355, 113.63091, "淮河路 12 号门口")
    assert datetime.fromisoformat(case["requested_datetime"]) == service.clock.at - timedelta(
        hours=1
    )  # received
    again = service.client.post(
        f"/v1/citizen-requests/{held['token']}/place", json=where, headers=service.auth("cases:write")
    )
    assert again.status_code == 409 and again.json()["title"] == "conflict", again.text  # state, not input
    assert again.json()["case"] == number and number in again.json()["detail"]
    assert service.client.get("/v1/citizen-requests", headers=service.auth("cases:read")).json() == []


def test_a_held_request_sent_again_is_held_once(service: Service) -> None:
    """A retry without an Idempotency-Key of a request held for a person made a second held request:
    two tokens, two rows for the desk to place, the second placed as a second report of the problem."""
    citizen, reader = client(service, "json"), service.auth("cases:read")
    held = {"service_code": "06010", "address_string": "淮河路 12 号门口", "description": "一堆建筑垃圾"}
    first = citizen.create(**held)
    service.clock.at += timedelta(minutes=1)
    assert client(service, "xml").create(**held) == first and first["token"]
    other = citizen.create(**{**held, "description": "另一堆"})  # another request: held on its own
    waiting = service.client.get("/v1/citizen-requests", headers=reader).json()
    assert [w["token"] for w in waiting] == [first["token"], other["token"]]
    placing = service.client.post(
        f"/v1/citizen-requests/{first['token']}/place",
        json={"lat": 34.72355, "lon": 113.63091},
        headers=service.auth("cases:write"),
    )
    assert placing.status_code == 200, placing.text
    number = placing.json()["service_request_id"]
    again = citizen.create(**held)  # once placed: its case, as a request sent again with its place
    assert again["service_request_id"] == number and "token" not in again
    assert again["service_notice"] == "同一问题已有在办案卷，已并入该案卷"
    [case] = service.client.get("/v1/cases", headers=reader).json()["items"]
    assert len(service.client.get(f"/v1/cases/{case['id']}", headers=reader).json()["evidence"]) == 1


def test_requests_held_before_0017_are_found_when_sent_again(db_url: str) -> None:
    """A held request sent again was found by loading every request of its event and comparing
    fields in Python; it is one lookup by the fields' key now, and 0017 keys the requests held before."""
    config = alembic_config(db_url)
    command.upgrade(config, "0016")
    held = {
        "service_code": "06010",
        "lat": None,
        "long": None,
        "address_string": "淮河路 12 号门口",
        "address_id": None,
        "description": "一堆建筑垃圾",
        "media_url": None,
        "contact": {"phone": "13800000000"},
    }
    sent = [held, {**held, "description": "另一堆"}, {**held, "contact": {"phone": "13900000000"}}]
    engine = sa.create_engine(db_url)
    requests = sa.table(
        "citizen_requests", *(sa.column(c) for c in ("token", "event", "reporter", "received_at")),
        sa.column("fields", sa.JSON),
    )  # fmt: skip
    with engine.begin() as connection:
        for n, fields in enumerate(sent):
            connection.execute(
                sa.insert(requests).values(
                    token=f"{n:032x}", event="exposed_garbage", fields=fields, reporter="hotline",
                    received_at=datetime(2026, 11, 2, 8, n),
                )
            )  # fmt: skip
    engine.dispose()
    command.upgrade(config, "head")
    factory = open_database(db_url)
    event = TAXONOMY.events["exposed_garbage"]
    with factory() as session:
        keys = session.execute(sa.select(CitizenRequest.token, CitizenRequest.fields_sha256)).all()
        assert sorted(keys) == [(f"{n:032x}", held_request_key(event.key, f)) for n, f in enumerate(sent)]
        for n, fields in enumerate(sent):
            found = same_held(session, event, dict(reversed(fields.items())))  # key order is no difference
            assert found is not None and found.token == f"{n:032x}"
        assert same_held(session, event, {**held, "address_id": "x"}) is None
        assert same_held(session, TAXONOMY.events["illegal_small_ad"], held) is None  # another event
        if db_url.startswith("sqlite"):
            plans = query_plans(
                factory.kw["bind"], lambda: same_held(session, event, held), "citizen_requests"
            )
            assert plans == [
                "SEARCH citizen_requests USING INDEX ix_citizen_requests_fields_sha256 (fields_sha256=?)"
            ], plans
    factory.kw["bind"].dispose()


@pytest.mark.parametrize("fmt", ["xml", "json"])
@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"service_code": "99999", "lat": 34.7235, "long": 113.6265}, "service_code"),
        ({"service_code": "06010"}, "address_string"),  # no place at all
        ({"service_code": "06010", "lat": 34.7235}, "lat/long"),
        ({"service_code": "06010", "lat": 95, "long": 113.6}, "lat"),
        ({"service_code": "06010", "lat": 39.9, "long": 116.4}, "outside every unit grid"),  # Beijing
        ({"lat": 34.7235, "long": 113.6265}, "service_code"),
        (
            {"service_code": "06010", "lat": 34.7235, "long": 113.6265, "description": "x" * 4001},
            "description",
        ),
        (
            {"service_code": "06010", "lat": 34.7235, "long": 113.6265, "media_url": "javascript:x"},
            "media_url",
        ),
    ],
)
def test_bad_requests_get_georeport_errors(
    service: Service, fmt: str, fields: dict[str, object], words: str
) -> None:
    with pytest.raises(GeoReportError) as refused:
        client(service, fmt).create(**fields)
    assert refused.value.status == 400 and refused.value.errors[0][0] == 400
    assert words in refused.value.description
    assert service.client.get("/v1/cases", headers=service.auth("cases:read")).json()["items"] == []


def test_the_api_key_is_only_read_from_a_post_form_or_a_header(service: Service) -> None:
    """Reads need no key, so no client has a reason to put one in a URL; one there is never read."""
    endpoint = client(service).endpoint
    key = service.keys["report"]
    in_url = service.client.post(f"{endpoint}/requests.json?api_key={key}", data=REQUEST)
    assert in_url.status_code == 401 and in_url.json()[0]["code"] == 401
    assert (
        "`api_key`" in in_url.json()[0]["description"]
        and "URL is not read" in in_url.json()[0]["description"]
    )
    with pytest.raises(GeoReportError) as no_key:
        GeoReport(service.client, endpoint, "xml").create(**REQUEST)
    assert no_key.value.status == 401 and "form field `api_key`" in no_key.value.description
    with pytest.raises(GeoReportError) as reader:
        client(service, scope="cases:read").create(**REQUEST)
    assert reader.value.status == 403 and "report" in reader.value.description
    assert client(service).create(**REQUEST)["service_request_id"]
    assert service.client.get(f"{endpoint}/requests.json?api_key=not-a-key").status_code == 200


def test_retries_with_an_idempotency_key_replay_the_first_answer(service: Service) -> None:
    reporter, reader = service.auth("report"), service.auth("cases:read")
    url = "/open311/v2/requests.json"
    headers = {**reporter, "Idempotency-Key": "hotline-call-4711"}
    first = service.client.post(url, data=REQUEST, headers=headers)
    service.clock.at += timedelta(minutes=1)
    retry = service.client.post(url.replace(".json", ".xml"), data=REQUEST, headers=headers)
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert f"<service_request_id>{first.json()[0]['service_request_id']}</service_request_id>" in retry.text
    assert "Idempotent-Replayed" not in first.headers
    other = service.client.post(url, data={**REQUEST, "description": "另一处"}, headers=headers)
    assert other.status_code == 400 and "hotline-call-4711" in other.json()[0]["description"]
    [case] = service.client.get("/v1/cases", headers=reader).json()["items"]
    detail = service.client.get(f"/v1/cases/{case['id']}", headers=reader).json()
    assert len(detail["evidence"]) == 1 and [f["action"] for f in detail["flow"]] == ["report"]
    # the same report again without a key joins the open case and adds nothing new
    again = service.client.post(url, data=REQUEST, headers=reporter).json()[0]
    assert again["service_request_id"] == case["number"] and again["service_notice"].startswith("同一问题")
    assert len(service.client.get(f"/v1/cases/{case['id']}", headers=reader).json()["evidence"]) == 1


def test_words_sent_as_raw_utf8_in_a_form_are_kept_as_written(service: Service) -> None:
    """A client that does not percent-encode (`curl -d`, many app libraries) sends the citizen's words
    as raw UTF-8: they were stored as Latin-1 mojibake, and a grid name in the address went unseen."""
    words = "路边一堆垃圾😡，没人清理"
    body = "&".join(
        f"{name}={value}"
        for name, value in (
            ("service_code", "06010"),
            ("address_string", "汝河社区第6网格 垃圾桶旁"),
            ("description", words),
            ("first_name", "李四"),
        )
    ).encode()
    sent = service.client.post(
        "/open311/v2/requests.json",
        content=body,
        headers={**service.auth("report"), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert sent.status_code == 201, sent.text
    number = sent.json()[0]["service_request_id"]  # placed by the grid its address names, not held
    for fmt in ("json", "xml"):
        [read] = [client(service, fmt, scope=None).request(number)]
        assert (read["description"], read["address"]) == (words, "汝河社区第6网格 垃圾桶旁")
        assert read["address_id"] == "410103001001006" and "李四" not in str(read)
    encoded = client(service, "json").create(
        service_code="06010", lat=34.72355, long=113.63091, description=words
    )
    assert client(service, "json").request(encoded["service_request_id"])["description"] == words


def test_control_characters_a_citizen_typed_leave_the_xml_readable(service: Service) -> None:
    """XML 1.0 cannot hold most control characters: one request's description written as it came
    made requests.xml unreadable for every client. XML gets U+FFFD in their place; JSON keeps them."""
    typed = "路口\x00垃圾\x1b[31m\x07\ttab\nline"
    number = client(service, "json").create(**{**REQUEST, "description": typed})["service_request_id"]
    as_xml = client(service, "xml")
    [listed] = as_xml.requests()  # parses, or the client raises
    assert listed["description"] == "路口\ufffd垃圾\ufffd[31m\ufffd\ttab\nline"
    assert as_xml.request(number)["description"] == listed["description"]
    assert client(service, "json").request(number)["description"] == typed
    with pytest.raises(GeoReportError) as missing:  # an error list naming what the client sent
        as_xml.request("SO%07")  # as a client writes it in a URL
    assert missing.value.status == 404 and "'SO\\x07'" in missing.value.description  # shown escaped
