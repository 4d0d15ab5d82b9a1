"""Deadlines in continuous hours, working hours, working days and natural days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from configured import CONFIGS
from hypothesis import given, settings
from hypothesis import strategies as st

from serve.cases.deadlines import (
    CalendarError,
    add_working_seconds,
    deadline,
    load_calendar,
    parse_calendar,
    time_used,
    working_seconds_between,
)
from vision.core.taxonomy import Deadline

TZ = ZoneInfo("Asia/Shanghai")
# A calendar of its own, so that the table does not depend on the shipped year lists:
# 2026-10-01..07 off (Thu..Wed), Saturday 2026-10-10 worked instead (调休).
CALENDAR = parse_calendar(
    {
        "timezone": "Asia/Shanghai",
        "working_hours": [["08:00", "12:00"], ["14:00", "18:00"]],
        "weekend": ["sat", "sun"],
        "holidays": ["2026-10-01..2026-10-07"],
        "make_up_workdays": [date(2026, 10, 10)],
    }
)


def at(day: str, clock: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=TZ)


@pytest.mark.parametrize(
    ("start", "amount", "unit", "due"),
    [
        # working hours (Friday 2026-11-20)
        (at("2026-11-20", "09:00"), 1, "working_hours", at("2026-11-20", "10:00")),
        (at("2026-11-20", "11:30"), 1, "working_hours", at("2026-11-20", "14:30")),  # over the lunch break
        (
            at("2026-11-20", "11:00"),
            1,
            "working_hours",
            at("2026-11-20", "12:00"),
        ),  # used up at 12:00 exactly
        (at("2026-11-20", "12:30"), 1, "working_hours", at("2026-11-20", "15:00")),  # found at lunch
        (at("2026-11-20", "06:10"), 0.5, "working_hours", at("2026-11-20", "08:30")),  # found before work
        (at("2026-11-20", "17:30"), 4, "working_hours", at("2026-11-23", "11:30")),  # over the weekend
        (at("2026-11-21", "20:00"), 0.5, "working_hours", at("2026-11-23", "08:30")),  # found on Saturday
        (at("2026-09-30", "17:30"), 4, "working_hours", at("2026-10-08", "11:30")),  # over the holiday
        (
            at("2026-10-09", "17:00"),
            2,
            "working_hours",
            at("2026-10-10", "09:00"),
        ),  # onto the make-up Saturday
        (at("2026-10-10", "17:00"), 2, "working_hours", at("2026-10-12", "09:00")),  # Sunday after it is off
        # working days
        (at("2026-11-23", "10:00"), 2, "working_days", at("2026-11-25", "10:00")),
        (at("2026-11-21", "10:00"), 1, "working_days", at("2026-11-23", "18:00")),
        (at("2026-09-30", "10:00"), 1, "working_days", at("2026-10-08", "10:00")),
        # continuous hours and natural days: nights and holidays count
        (at("2026-11-20", "23:00"), 4, "hours", at("2026-11-21", "03:00")),
        (at("2026-09-30", "17:30"), 48, "hours", at("2026-10-02", "17:30")),
        (at("2026-11-20", "23:00"), 2, "days", at("2026-11-22", "23:00")),
        # a start in another timezone is the same moment
        (datetime(2026, 11, 20, 3, 30, tzinfo=UTC), 1, "working_hours", at("2026-11-20", "14:30")),
    ],
)
def test_deadline(start: datetime, amount: float, unit: str, due: datetime) -> None:
    got = deadline(start, Deadline(amount, unit), CALENDAR)
    assert got == due
    assert got.tzinfo is not None and got.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize(
    ("start", "end", "hours"),
    [
        (at("2026-11-20", "11:00"), at("2026-11-20", "15:00"), 2),
        (at("2026-11-20", "17:00"), at("2026-11-23", "09:00"), 2),
        (at("2026-11-23", "09:00"), at("2026-11-20", "17:00"), -2),
        (at("2026-11-21", "09:00"), at("2026-11-21", "17:00"), 0),
        (at("2026-09-30", "08:00"), at("2026-10-10", "12:00"), 8 + 8 + 8 + 4),  # Sep 30, Oct 8, 9, 10
        (at("2026-11-20", "12:10"), at("2026-11-20", "13:50"), 0),
    ],
)
def test_working_time_between(start: datetime, end: datetime, hours: float) -> None:
    assert working_seconds_between(start, end, CALENDAR) == hours * 3600
    assert time_used(start, end, "working_hours", CALENDAR) == hours
    assert time_used(start, end, "working_days", CALENDAR) == hours / 8


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2026, 9, 1), max_value=datetime(2026, 12, 31)),
    hours=st.floats(min_value=0.01, max_value=40),
)
def test_working_time_until_deadline_is_the_limit(start: datetime, hours: float) -> None:
    start = start.replace(tzinfo=TZ)
    due = add_working_seconds(start, hours * 3600, CALENDAR)
    assert due > start
    assert working_seconds_between(start, due, CALENDAR) == pytest.approx(hours * 3600, abs=1e-3)
    assert CALENDAR.is_working_day(due.date())


def test_naive_times_are_refused() -> None:
    with pytest.raises(CalendarError, match="no timezone"):
        deadline(datetime(2026, 11, 20, 9), Deadline(1, "working_hours"), CALENDAR)
    with pytest.raises(CalendarError, match="no timezone"):
        working_seconds_between(at("2026-11-20", "09:00"), datetime(2026, 11, 20, 10), CALENDAR)


def test_shipped_calendar_knows_holidays_and_make_up_days() -> None:
    calendar = load_calendar(CONFIGS / "calendar.yaml")
    assert calendar.timezone == TZ
    assert calendar.seconds_per_day == 8 * 3600
    assert not calendar.is_working_day(date(2026, 10, 1))  # 国庆节
    assert calendar.is_working_day(date(2026, 10, 10))  # Saturday worked (调休)
    assert calendar.is_working_day(date(2026, 9, 20))  # Sunday worked
    assert not calendar.is_working_day(date(2026, 11, 22))  # an ordinary Sunday
    assert calendar.is_working_day(date(2026, 11, 23))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("not a mapping", "expected a mapping"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"working_hours": [["08:00", "12:00"], ["11:00", "18:00"]]}, "overlap"),
        ({"working_hours": [["12:00", "08:00"]]}, "not before"),
        ({"working_hours": [["8 o'clock", "12:00"]]}, r"working_hours\[0\]"),
        ({"working_hours": []}, "working_hours"),
        ({"weekend": ["caturday"]}, "weekend"),
        ({"holidays": ["2026-13-01"]}, r"holidays\[0\]"),
        ({"holidays": ["2026-10-07..2026-10-01"]}, "ends before"),
        ({"holidays": ["2026-10-01"], "make_up_workdays": ["2026-10-01"]}, "both"),
        # a line copied to add the next holiday and never changed: the day meant stayed a working day
        (
            {"holidays": ["2027-01-01", "2027-01-01"]},
            r"holidays\[1\]: 2027-01-01 is listed twice \(also in \[0\]\)",
        ),
        (
            {"holidays": ["2026-10-01..2026-10-08", "2026-10-08"]},
            r"holidays\[1\]: 2026-10-08 is listed twice",
        ),
        ({"make_up_workdays": ["2026-09-27", "2026-09-27"]}, r"make_up_workdays\[1\]: 2026-09-27 is listed"),
    ],
)
def test_bad_calendars_name_the_field(data: Any, message: str) -> None:
    with pytest.raises(CalendarError, match=message) as caught:
        parse_calendar(data, "configs/calendar.yaml")
    assert "configs/calendar.yaml" in str(caught.value)


def test_a_calendar_without_working_days_is_an_error() -> None:
    never = parse_calendar({"weekend": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]})
    with pytest.raises(CalendarError, match="no working day"):
        deadline(at("2026-11-20", "09:00"), Deadline(1, "working_hours"), never)
