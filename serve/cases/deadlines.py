"""Case deadlines from a class's disposal limit and the working calendar (pure functions).

Limits come in five units (configs/taxonomy.yaml, per event):
- `minutes`: continuous minutes (双十: on site within 10, enforced within the next 10), nights and
  holidays included; such a clock runs from filing and dispatch does not restart it.
- `hours`: continuous hours; nights, weekends and holidays count.
- `working_hours`: only the working periods (default 08:00-12:00 and 14:00-18:00) of working days
  count. A case found at 11:30 with 1 working hour is due at 14:30; one found on a Saturday night
  starts counting at the next working day's 08:00. A limit used up exactly at 12:00 is due at 12:00.
- `working_days`: whole working days of working time, i.e. N x the working hours of a day: found on
  Monday 10:00 with 2 working days, due on Wednesday 10:00.
- `days`: natural days of 24 hours, nights and holidays included.

A suspended case (挂账) stops its clock: on resumption the deadline moves on by the time the clock
would have run meanwhile, in the limit's unit (`resumed_deadline`).

A working day is a weekday that is not a holiday, or a make-up working day (调休). The calendar
(configs/calendar.yaml) is in the bureau's timezone; inputs may be in any timezone but must be
timezone-aware. Nothing here reads the clock: times come from photos, frames and flow-log entries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, field_validator

from vision.core.config import ConfigError, ConfigModel, validate_config
from vision.core.taxonomy import Deadline
from vision.core.yamlfile import read_yaml

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_SEARCH_DAYS = 3660  # a calendar with no working time in ten years is a configuration error


class CalendarError(ConfigError):
    """A calendar file that cannot be used, or a time the calendar cannot answer for."""


@dataclass(frozen=True)
class WorkCalendar:
    timezone: ZoneInfo
    periods: tuple[tuple[time, time], ...]  # working periods of a working day, sorted, disjoint
    weekend: frozenset[int]  # date.weekday() numbers: Monday = 0
    holidays: frozenset[date]
    make_up_workdays: frozenset[date]

    @property
    def last_year(self) -> int | None:
        """The last year whose holidays or make-up days are listed: the calendar knows no later year."""
        return max((day.year for day in self.holidays | self.make_up_workdays), default=None)

    def is_working_day(self, day: date) -> bool:
        if day in self.make_up_workdays:
            return True
        return day not in self.holidays and day.weekday() not in self.weekend

    @property
    def seconds_per_day(self) -> float:
        """Working seconds of one working day."""
        return sum(
            (datetime.combine(date.min, end) - datetime.combine(date.min, start)).total_seconds()
            for start, end in self.periods
        )

    def working_periods(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working periods as aware datetimes, from the local day of `start` on, without end."""
        day = _aware(start, "start").astimezone(self.timezone).date()
        idle_days = 0
        while True:
            if self.is_working_day(day):
                idle_days = 0
                for begin, end in self.periods:
                    yield (
                        datetime.combine(day, begin, tzinfo=self.timezone),
                        datetime.combine(day, end, tzinfo=self.timezone),
                    )
            else:
                idle_days += 1
                if idle_days > MAX_SEARCH_DAYS:
                    raise CalendarError(f"no working day within {MAX_SEARCH_DAYS} days after {day}")
            day += timedelta(days=1)


@dataclass(frozen=True)
class Coverage:
    """Whether the calendar lists the holidays of every day a deadline set today may reach."""

    last_year: int | None
    reach_until: date  # today plus the furthest a deadline may run (limit and extensions)
    # the years from today's to reach_until's with no holiday listed: a year left out between listed
    # ones (2025 and 2027 listed, 2026 not) counted as covered, its holidays as working days
    missing_years: tuple[int, ...] = ()

    @property
    def covered(self) -> bool:
        return not self.missing_years

    def warning(self, source: str = "configs/calendar.yaml") -> str | None:
        """What a person must do, or None when covered."""
        if self.covered:
            return None
        missing = self.missing_years[0]
        years = ", ".join(map(str, self.missing_years))
        listed = f"lists holidays up to {self.last_year}" if self.last_year else "lists no holidays"
        if self.last_year is not None and missing < self.last_year:
            listed = f"lists no holidays in {years}"
        return (
            f"{source} {listed}, but deadlines may run to {self.reach_until}: in {years} "
            f"holidays count as working days. Add {missing}'s holidays and make-up working days from "
            f"the State Council's notice (国务院办公厅关于{missing}年部分节假日安排的通知)"
        )


def coverage(calendar: WorkCalendar, today: date, reach: timedelta) -> Coverage:
    """The calendar's coverage of deadlines set `today` that may run `reach` ahead."""
    until = today + reach
    listed = {day.year for day in calendar.holidays}
    missing = tuple(year for year in range(today.year, until.year + 1) if year not in listed)
    return Coverage(calendar.last_year, until, missing)


def restarts_at_dispatch(unit: str) -> bool:
    """Whether dispatch restarts a clock in `unit`: a continuous-minute clock (双十) runs from filing."""
    return unit != "minutes"


def deadline(start: datetime, limit: Deadline, calendar: WorkCalendar) -> datetime:
    """When a case found at `start` is due under `limit`, in the calendar's timezone."""
    start = _aware(start, "start").astimezone(calendar.timezone)
    if limit.amount <= 0:
        raise CalendarError(f"a limit must be positive, got {limit.amount} {limit.unit}")
    if limit.unit in ("minutes", "hours"):  # elapsed time: added in UTC, so a DST change cannot bend it
        elapsed = (
            timedelta(minutes=limit.amount) if limit.unit == "minutes" else timedelta(hours=limit.amount)
        )
        return (start.astimezone(UTC) + elapsed).astimezone(calendar.timezone)
    if limit.unit == "days":
        return (start + timedelta(days=limit.amount)).astimezone(calendar.timezone)
    if limit.unit == "working_hours":
        return add_working_seconds(start, limit.amount * 3600, calendar)
    if limit.unit == "working_days":
        return add_working_seconds(start, limit.amount * calendar.seconds_per_day, calendar)
    raise CalendarError(f"unknown deadline unit '{limit.unit}'")


def resumed_deadline(
    due: datetime, suspended_at: datetime, resumed_at: datetime, unit: str, calendar: WorkCalendar
) -> datetime:
    """`due` moved on by the time a clock in `unit` ran between a suspension (挂账) and its resumption:
    a suspended case's clock stands still (a working-hour clock loses only the working time)."""
    paused = time_used(suspended_at, resumed_at, unit, calendar)
    return deadline(due, Deadline(paused, unit), calendar) if paused > 0 else due


def add_working_seconds(start: datetime, seconds: float, calendar: WorkCalendar) -> datetime:
    """The moment `seconds` of working time after `start` have passed."""
    start = _aware(start, "start")
    remaining = seconds
    for begin, end in calendar.working_periods(start):
        if end <= start:
            continue
        begin = max(begin, start)
        available = (end - begin).total_seconds()
        if remaining <= available:
            return (begin + timedelta(seconds=remaining)).astimezone(calendar.timezone)
        remaining -= available
    raise AssertionError("working_periods never ends")  # pragma: no cover


def working_seconds_between(start: datetime, end: datetime, calendar: WorkCalendar) -> float:
    """Working time between two moments (negative when `end` is before `start`)."""
    start, end = _aware(start, "start"), _aware(end, "end")
    if end < start:
        return -working_seconds_between(end, start, calendar)
    total = 0.0
    for begin, finish in calendar.working_periods(start):
        if begin >= end:
            break
        overlap = (min(finish, end) - max(begin, start)).total_seconds()
        total += max(0.0, overlap)
    return total


def on_site_due(start: datetime, minutes: float | None, calendar: WorkCalendar) -> datetime | None:
    """When someone must be on site (双十) for a case filed at `start`: `minutes` of elapsed time,
    as any continuous limit (None: the event has no such limit)."""
    return deadline(start, Deadline(minutes, "minutes"), calendar) if minutes else None


def time_used(start: datetime, end: datetime, unit: str, calendar: WorkCalendar) -> float:
    """Time from `start` to `end` in a limit's unit: the measure of on-time rates and overtime multiples."""
    # elapsed seconds in UTC: Python subtracts two times of one zone by their wall clocks, DST or not
    elapsed = (_aware(end, "end").astimezone(UTC) - _aware(start, "start").astimezone(UTC)).total_seconds()
    if unit == "minutes":
        return elapsed / 60
    if unit == "hours":
        return elapsed / 3600
    if unit == "days":
        return elapsed / 86400
    if unit == "working_hours":
        return working_seconds_between(start, end, calendar) / 3600
    if unit == "working_days":
        return working_seconds_between(start, end, calendar) / calendar.seconds_per_day
    raise CalendarError(f"unknown deadline unit '{unit}'")


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CalendarError(f"{name} {moment.isoformat()} has no timezone; attach one (EXIF offset or local)")
    return moment


def load_calendar(path: Path | str) -> WorkCalendar:
    """Load `<configs_dir>/calendar.yaml` (or another file of the same form), once per path."""
    return _load_cached(Path(path))


@cache
def _load_cached(path: Path) -> WorkCalendar:
    return parse_calendar(read_yaml(path, CalendarError), str(path))


def parse_calendar(data: Any, source: str = "<memory>") -> WorkCalendar:
    """Build a WorkCalendar from parsed YAML, naming the file and field of any error."""
    spec = validate_config(data, CalendarFile, source, error=CalendarError)
    holidays = _days(spec.holidays, f"{source}: holidays")
    make_up = _days(spec.make_up_workdays, f"{source}: make_up_workdays")
    both = sorted(holidays & make_up)
    if both:
        raise CalendarError(f"{source}: {both[0]} is both a holiday and a make-up working day")
    periods = tuple(spec.working_hours)
    return WorkCalendar(ZoneInfo(spec.timezone), periods, frozenset(spec.weekend), holidays, make_up)


def _clock(value: Any) -> time:
    try:
        if isinstance(value, int):  # YAML 1.1 reads unquoted 08:00 as sexagesimal minutes
            return time(value // 60, value % 60)
        return time.fromisoformat(str(value))
    except (ValueError, OverflowError) as err:
        raise ValueError(f"{value!r} is not a time 'HH:MM'") from err


def _weekday(value: Any) -> int:
    name = str(value).strip().lower()[:3]
    if name in WEEKDAY_NAMES:
        return WEEKDAY_NAMES.index(name)
    if isinstance(value, int) and 1 <= value <= 7:
        return value - 1  # ISO numbering
    raise ValueError(f"{value!r} is not a weekday (mon..sun or 1..7)")


def _date_range(entry: Any) -> tuple[date, date]:
    """A date, or 'YYYY-MM-DD..YYYY-MM-DD' (both days included)."""
    if isinstance(entry, date):
        return entry, entry
    first, _, last = str(entry).partition("..")
    try:
        begin = date.fromisoformat(first.strip())
        end = date.fromisoformat(last.strip()) if last else begin
    except ValueError as err:
        raise ValueError(f"{str(entry)!r} is not a date or a date range") from err
    if end < begin:
        raise ValueError(f"range {str(entry)!r} ends before it starts")
    return begin, end


def _timezone(name: Any) -> str:
    try:
        ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(f"unknown timezone {name!r}") from err
    return str(name)


def _days(ranges: list[tuple[date, date]] | None, where: str) -> frozenset[date]:
    """Every day of the ranges; a day listed twice is refused: it is a line copied to add the next
    holiday and never changed (so the day meant was silently a working day)."""
    days: dict[date, int] = {}
    for i, (first, last) in enumerate(ranges or []):
        day = first
        while day <= last:
            if day in days:
                raise CalendarError(
                    f"{where}[{i}]: {day} is listed twice (also in [{days[day]}]); "
                    "list each day once: was one of them meant to be another day?"
                )
            days[day] = i
            day += timedelta(days=1)
    return frozenset(days)


Clock = Annotated[time, BeforeValidator(_clock)]
DateRange = Annotated[tuple[date, date], BeforeValidator(_date_range)]


class CalendarFile(ConfigModel):
    """configs/calendar.yaml (its comments explain each field)."""

    timezone: Annotated[str, BeforeValidator(_timezone)] = "Asia/Shanghai"
    working_hours: list[tuple[Clock, Clock]] = Field(
        default=[(time(8), time(12)), (time(14), time(18))], min_length=1
    )
    weekend: list[Annotated[int, BeforeValidator(_weekday)]] = [5, 6]
    holidays: list[DateRange] | None = None
    make_up_workdays: list[DateRange] | None = None

    @field_validator("working_hours")
    @classmethod
    def _ordered_disjoint(cls, periods: list[tuple[time, time]]) -> list[tuple[time, time]]:
        for i, (begin, end) in enumerate(periods):
            if begin >= end:
                raise ValueError(f"[{i}]: start {begin} is not before end {end}")
        ordered = sorted(periods)
        for (_, end), (begin, _) in pairwise(ordered):
            if begin < end:
                raise ValueError(f"periods overlap at {begin}")
        return ordered
