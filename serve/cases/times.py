"""Which times the service takes in: the input policy for every instant and day.

Two bounds, for two reasons:

- Computable: any time or day a request names (a filter, a ranking day, a transition's `at`) lies
  within `COMPUTABLE_YEARS`. Outside it, converting to UTC or adding a day overflows Python's
  datetime (year 1 at +14:00, year 9999 at -14:00): the caller gets a 422 naming the field, never
  a 500. Within it, a filter that matches nothing simply finds nothing.
- Plausible capture times (`CaptureTimes`, configurable): a photo or frame that opens or joins a
  case must have been taken within the configured years and no later than a few minutes ahead of
  the server clock. A photo from 2999 would open a case due in 2999; one from year 1 a malformed
  case number. Every intake applies it: EXIF and form times of reports and evidence, camera
  frames, scan sidecars and EXIF (a scan lists such a photo with the reason and files nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from serve.cases.errors import InvalidInput

COMPUTABLE_YEARS = (1900, 2199)
MAX_RANGE_DAYS = 366  # a since/until range of days (the ledger, daily counts): a year at most


def computable(when: datetime) -> datetime:
    """`when` if it lies within COMPUTABLE_YEARS in UTC; a ValueError (pydantic: 422) otherwise."""
    first, last = COMPUTABLE_YEARS
    try:
        year = when.astimezone(UTC).year if when.tzinfo is not None else when.year
    except OverflowError:
        year = when.year  # year 1 at +14:00 or 9999 at -14:00: no UTC equivalent at all
    if not first <= year <= last or not first <= when.year <= last:
        raise ValueError(f"{when.isoformat()} is outside the years {first}-{last}")
    return when


def computable_day(day: date) -> date:
    """`day` if within COMPUTABLE_YEARS (a 10-day period or the next day is then computable too)."""
    first, last = COMPUTABLE_YEARS
    if not first <= day.year <= last:
        raise ValueError(f"{day.isoformat()} is outside the years {first}-{last}")
    return day


class ImplausibleTime(InvalidInput):
    """A capture time no photo of a case can have: out of the configured years, or in the future."""


@dataclass(frozen=True)
class CaptureTimes:
    """The plausible capture times: years first_year..last_year, at most `ahead` past the clock."""

    first_year: int = 2000
    last_year: int = 2100
    ahead: timedelta = timedelta(minutes=5)

    def check(self, field: str, when: datetime, now: datetime) -> datetime:
        """`when` if plausible at `now`; ImplausibleTime naming `field` and the reason otherwise."""
        if not self.first_year <= when.year <= self.last_year:  # as written: no conversion can overflow
            raise ImplausibleTime(
                field,
                f"capture time {when.isoformat()} is outside the years {self.first_year}-{self.last_year} "
                "(STREETORDER_FIRST_YEAR / STREETORDER_LAST_YEAR)",
            )
        if when > now + self.ahead:
            gap = round((when - now).total_seconds())
            readable = f" ({timedelta(seconds=gap)})" if gap >= 3600 else ""  # 31488938 s alone: a year?
            clock = now.astimezone(when.tzinfo).isoformat(timespec="seconds")  # as the sender wrote it
            raise ImplausibleTime(
                field,
                f"capture time {when.isoformat()} is {gap} s{readable} ahead of the server clock ({clock}; "
                f"at most {self.ahead.total_seconds():.0f} s): set the device's clock",
            )
        return when


def local_iso(moment: datetime, local_tz: tzinfo) -> str:
    """`2025-09-30T10:30:00+08:00`: how a time leaves the service (the bureau's clock, to the second),
    also where it is written into stored JSON that the API answers as it is."""
    return moment.astimezone(local_tz).isoformat(timespec="seconds")


def instant(value: datetime | date | None, local_tz: tzinfo) -> datetime | None:
    """A time as given, or a day (a parameter that means a day) as its first instant in `local_tz`."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.combine(value, time(0), tzinfo=local_tz)


def check_day_range(start: date, end: date) -> None:
    """A since/until range of 1 to MAX_RANGE_DAYS days, `start` before `end`; InvalidInput otherwise."""
    if not 0 < (end - start).days <= MAX_RANGE_DAYS:
        raise InvalidInput(
            "since/until", f"{start} to {end}: give 1 to {MAX_RANGE_DAYS} days, since before until"
        )
