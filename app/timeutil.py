"""Turning what a user wrote into the UTC instant the queue runs on.

An instant needs an offset or an IANA zone; a local time that a zone skips (spring forward)
or repeats (fall back) is refused with a message saying so, instead of guessed.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.errors import InvalidInput


# A day inside each end of the calendar, so every zone (offsets up to +-24 h) can show an instant.
EARLIEST = datetime.min.replace(tzinfo=timezone.utc) + timedelta(days=1)
LATEST = datetime.max.replace(tzinfo=timezone.utc) - timedelta(days=1)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """An aware `value` in UTC, refused when it falls within a day of the calendar's ends
    (years 1 and 9999), where converting it to UTC or to a time zone would overflow."""
    try:
        utc = value.astimezone(timezone.utc)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise InvalidInput(f"{value.isoformat()} is out of range: give a date-time between "
                           f"{EARLIEST.date()} and {LATEST.date()} (UTC)")
    return utc


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris") from None


def at_most(n: int) -> str:
    """A regular expression (no anchors) matching the decimal numbers 0..n, so a document can
    say exactly which numbers a field takes."""
    digits = str(n)
    parts = [f"[0-9]{{1,{len(digits) - 1}}}"] if len(digits) > 1 else []
    for i, d in enumerate(digits):
        low = 1 if i == 0 and len(digits) > 1 else 0
        if int(d) > low:
            parts.append(f"{digits[:i]}[{low}-{int(d) - 1}][0-9]{{{len(digits) - i - 1}}}")
    parts.append(digits)
    return "|".join(parts)


def parse_instant(value: str, tz_name: str | None = None) -> datetime:
    """ISO 8601 with an offset, or a local ISO 8601 time plus `tz_name`; returns aware UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{value!r} is not an ISO 8601 date-time "
                           "(e.g. 2026-12-01T09:00:00+01:00)") from None
    if parsed.tzinfo is not None:
        if tz_name:
            zone(tz_name)  # still reject an unknown zone, even if the offset decides the instant
        return as_utc(parsed)
    if not tz_name:
        raise InvalidInput(f"{value!r} has no UTC offset: add one (e.g. +01:00) or give a timezone")
    tz = zone(tz_name)
    if not EARLIEST.date() < parsed.date() < LATEST.date():
        raise InvalidInput(f"{value!r} is out of range: give a date-time between "
                           f"{EARLIEST.date()} and {LATEST.date()}")
    return as_utc(localize(parsed, tz))


def localize(local: datetime, tz: ZoneInfo) -> datetime:
    """Attach `tz` to a wall-clock time that exists exactly once in it."""
    early, late = local.replace(tzinfo=tz, fold=0), local.replace(tzinfo=tz, fold=1)
    if early.utcoffset() != late.utcoffset():
        # fold disambiguates only when the wall time is repeated or skipped: tell which.
        round_trip = early.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None)
        if round_trip != local:
            raise InvalidInput(f"{local.isoformat()} does not exist in {tz.key} (the clocks "
                               "jump forward then): choose another time or give a UTC offset")
        raise InvalidInput(f"{local.isoformat()} happens twice in {tz.key} (the clocks go "
                           "back then): give a UTC offset to say which one")
    return early
