"""The school calendar a check-in is placed in: school days, school hours, closures, half terms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from enum import Enum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.checkins.detect import When, WhenKind
from bot.settings import CheckinSettings


class Choice(str, Enum):
    """When the teacher asked to be checked on."""

    AFTER_DAY = "after_day"
    FEW_DAYS = "few_days"
    NEXT_WEEK = "next_week"


def _ranges(values: list[str]) -> list[tuple[date, date]]:
    out = []
    for value in values:
        first, _, last = value.partition("..")
        try:
            start = date.fromisoformat(first.strip())
            end = date.fromisoformat(last.strip()) if last.strip() else start
        except ValueError:
            raise ValueError(f"checkins: {value!r} is not a date (YYYY-MM-DD) or a range (YYYY-MM-DD..YYYY-MM-DD)") from None
        out.append((start, end))
    return out


def _clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


@dataclass(frozen=True)
class SchoolCalendar:
    """School days and hours for one school; times in and out are UTC, reasoning is in local time."""

    default_zone: str
    day_start: time
    day_end: time
    send_time: time
    closures: tuple[tuple[date, date], ...]
    half_terms: tuple[tuple[date, date], ...]
    few_days: int = 3

    @classmethod
    def from_settings(cls, settings: CheckinSettings) -> SchoolCalendar:
        """Built once from `settings.checkins`; a bad date names itself."""
        zone(settings.timezone)  # fail at start-up, not at the first check-in
        start, end, send = _clock(settings.school_day_start), _clock(settings.school_day_end), _clock(settings.send_time)
        if not start < end:
            raise ValueError(f"checkins: school_day_start {settings.school_day_start} must be before "
                             f"school_day_end {settings.school_day_end}")
        send = min(max(send, start), end)
        half_terms = tuple(_ranges(settings.half_terms))
        return cls(settings.timezone, start, end, send, tuple(_ranges(settings.closures)) + half_terms, half_terms,
                   settings.few_days)

    def tz(self, name: str | None) -> ZoneInfo:
        """The teacher's zone when it is known and valid, else the school's."""
        if name:
            try:
                return zone(name)
            except ValueError:
                pass
        return zone(self.default_zone)

    def is_school_day(self, day: date) -> bool:
        """A weekday that is not a closure."""
        return day.weekday() < 5 and not any(a <= day <= b for a, b in self.closures)

    def in_hours(self, now: datetime, tz_name: str | None = None) -> bool:
        """Whether `now` is inside school hours on a school day, in the teacher's zone."""
        local = now.astimezone(self.tz(tz_name))
        return self.is_school_day(local.date()) and self.day_start <= local.time() < self.day_end

    def next_window(self, now: datetime, tz_name: str | None = None) -> datetime:
        """`now` if it is inside school hours, else the start of the next school day (UTC)."""
        if self.in_hours(now, tz_name):
            return now
        tz = self.tz(tz_name)
        local = now.astimezone(tz)
        day = local.date() if local.time() < self.day_start else local.date() + timedelta(days=1)
        while not self.is_school_day(day):
            day += timedelta(days=1)
        return datetime.combine(day, self.day_start, tz).astimezone(timezone.utc)

    def due_at(self, choice: Choice, when: When | None, now: datetime, tz_name: str | None = None) -> datetime:
        """When to check in (UTC): the chosen day at the send time, moved on past weekends and closures."""
        tz = self.tz(tz_name)
        local = now.astimezone(tz)
        today = local.date()
        if choice is Choice.AFTER_DAY and when is not None:
            day = self._named_day(when, local)
        elif choice is Choice.NEXT_WEEK:
            day = today + timedelta(days=7)
        else:
            day = today + timedelta(days=self.few_days)
        while True:
            candidate = datetime.combine(day, self.send_time, tz)
            if self.is_school_day(day) and candidate > local:
                return candidate.astimezone(timezone.utc)
            day += timedelta(days=1)

    def _named_day(self, when: When, local: datetime) -> date:
        today = local.date()
        if when.kind is WhenKind.TODAY:
            return today
        if when.kind is WhenKind.TOMORROW:
            return today + timedelta(days=1)
        if when.kind is WhenKind.NEXT_WEEK:
            return today + timedelta(days=7 - today.weekday() + 4)  # the Friday of next week
        if when.kind is WhenKind.AFTER_HALF_TERM:
            after = sorted(b for a, b in self.half_terms if b >= today)
            if not after:
                return today + timedelta(days=7)
            day = after[0] + timedelta(days=1)
            while not self.is_school_day(day):
                day += timedelta(days=1)
            return day
        assert when.weekday is not None
        ahead = (when.weekday - today.weekday()) % 7
        if ahead == 0 and local.time() >= self.send_time:
            ahead = 7  # "on Thursday" said on a Thursday afternoon means next week's
        if when.next_week and ahead + today.weekday() < 7:
            ahead += 7
        return today + timedelta(days=ahead)


def zone(name: str) -> ZoneInfo:
    """A time zone by IANA name; ValueError naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Europe/London") from None
