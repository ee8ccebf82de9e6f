"""Turning what a user wrote into the UTC instant the queue runs on.

An instant needs an offset or an IANA zone; a local time that a zone skips (spring forward)
or repeats (fall back) is refused with a message saying so, instead of guessed.
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.errors import InvalidInput


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris") from None


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
        return parsed.astimezone(timezone.utc)
    if not tz_name:
        raise InvalidInput(f"{value!r} has no UTC offset: add one (e.g. +01:00) or give a timezone")
    return localize(parsed, zone(tz_name)).astimezone(timezone.utc)


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
