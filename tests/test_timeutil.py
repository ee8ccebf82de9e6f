"""parse_instant: what a user writes -> the aware UTC instant the queue runs on, or a clear refusal."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from app.errors import InvalidInput
from app.timeutil import localize, parse_instant, utcnow, zone

UTC = timezone.utc


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026-12-01T09:00:00Z", "2026-12-01T09:00:00z",
                                  "2026-12-01T09:00:00+00:00", "2026-12-01 09:00:00Z",
                                  "  2026-12-01T09:00:00Z  ", "2026-12-01T09:00Z"])
def test_z_and_zero_offset_are_utc(text):
    result = parse_instant(text)
    assert result == utc(2026, 12, 1, 9, 0)
    assert result.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text,expected", [
    ("2026-12-01T09:00:00+01:00", utc(2026, 12, 1, 8, 0)),
    ("2026-12-01T09:00:00-05:00", utc(2026, 12, 1, 14, 0)),
    ("2026-12-01T09:00:00+05:30", utc(2026, 12, 1, 3, 30)),
    ("2026-12-01T00:30:00+02:00", utc(2026, 11, 30, 22, 30)),  # crosses midnight backwards
    ("2026-12-01T09:00:00.250000+01:00", utc(2026, 12, 1, 8, 0, 0, 250000)),
])
def test_an_offset_decides_the_instant(text, expected):
    result = parse_instant(text)
    assert result == expected
    assert result.tzinfo is UTC


def test_an_offset_wins_over_the_zone_but_the_zone_is_still_checked():
    # The offset says which instant; the zone name is only validated.
    assert parse_instant("2026-07-01T09:00:00+00:00", "Europe/Paris") == utc(2026, 7, 1, 9, 0)
    with pytest.raises(InvalidInput, match="unknown time zone 'Mars/Olympus'"):
        parse_instant("2026-07-01T09:00:00+00:00", "Mars/Olympus")


@pytest.mark.parametrize("text,tz,expected", [
    ("2026-12-01T09:00:00", "Europe/Paris", utc(2026, 12, 1, 8, 0)),     # CET, +01:00
    ("2026-07-01T09:00:00", "Europe/Paris", utc(2026, 7, 1, 7, 0)),      # CEST, +02:00
    ("2026-07-01T09:00:00", "America/New_York", utc(2026, 7, 1, 13, 0)),  # EDT, -04:00
    ("2026-12-01T09:00:00", "America/New_York", utc(2026, 12, 1, 14, 0)),  # EST, -05:00
    ("2026-12-01T09:00:00", "Asia/Kolkata", utc(2026, 12, 1, 3, 30)),
    ("2026-12-01T09:00:00", "UTC", utc(2026, 12, 1, 9, 0)),
    ("2026-12-01", "Europe/Paris", utc(2026, 11, 30, 23, 0)),            # a date is midnight
])
def test_naive_time_plus_iana_zone(text, tz, expected):
    result = parse_instant(text, tz)
    assert result == expected
    assert result.tzinfo is UTC


def test_times_right_next_to_a_transition_are_fine():
    # 2026-03-29 Paris: 02:00 -> 03:00. 01:59 is still CET, 03:00 is already CEST.
    assert parse_instant("2026-03-29T01:59:00", "Europe/Paris") == utc(2026, 3, 29, 0, 59)
    assert parse_instant("2026-03-29T03:00:00", "Europe/Paris") == utc(2026, 3, 29, 1, 0)
    # 2026-10-25 Paris: 03:00 -> 02:00. 01:59 is CEST, 03:00 is CET.
    assert parse_instant("2026-10-25T01:59:00", "Europe/Paris") == utc(2026, 10, 24, 23, 59)
    assert parse_instant("2026-10-25T03:00:00", "Europe/Paris") == utc(2026, 10, 25, 2, 0)


@pytest.mark.parametrize("name", ["Mars/Olympus", "Europe/Pariss", "not a zone", "../etc/passwd"])
def test_unknown_zone_is_rejected(name):
    with pytest.raises(InvalidInput) as info:
        parse_instant("2026-12-01T09:00:00", name)
    message = str(info.value)
    assert f"unknown time zone {name!r}" in message
    assert "IANA" in message


def test_an_empty_zone_name_is_not_a_zone():
    with pytest.raises(InvalidInput, match="unknown time zone ''"):
        zone("")


@pytest.mark.parametrize("text", ["2026-12-01T09:00:00", "2026-12-01 09:00", "2026-12-01"])
@pytest.mark.parametrize("tz", [None, ""])
def test_naive_time_without_a_zone_is_rejected(text, tz):
    with pytest.raises(InvalidInput) as info:
        parse_instant(text, tz)
    message = str(info.value)
    assert repr(text) in message
    assert "no UTC offset" in message
    assert "timezone" in message


@pytest.mark.parametrize("text", ["tomorrow", "2026-13-01T09:00:00Z", "2026-12-01T25:00:00Z",
                                  "12/01/2026 09:00", "", "2026-12-01T09:00:00+25:00"])
def test_not_an_iso_date_time(text):
    with pytest.raises(InvalidInput) as info:
        parse_instant(text, "Europe/Paris")
    message = str(info.value)
    assert "is not an ISO 8601 date-time" in message
    assert repr(text) in message


@pytest.mark.parametrize("text", ["2026-03-29T02:30:00", "2026-03-29T02:00:00",
                                  "2026-03-29T02:59:59"])
def test_spring_forward_gap_is_rejected(text):
    with pytest.raises(InvalidInput) as info:
        parse_instant(text, "Europe/Paris")
    message = str(info.value)
    assert "does not exist in Europe/Paris" in message
    assert "jump forward" in message
    assert "happens twice" not in message


def test_spring_forward_gap_in_another_zone():
    # America/New_York, 2026-03-08: 02:00 -> 03:00
    with pytest.raises(InvalidInput, match="does not exist in America/New_York"):
        parse_instant("2026-03-08T02:30:00", "America/New_York")


@pytest.mark.parametrize("text", ["2026-10-25T02:30:00", "2026-10-25T02:00:00",
                                  "2026-10-25T02:59:59"])
def test_fall_back_ambiguity_is_rejected(text):
    with pytest.raises(InvalidInput) as info:
        parse_instant(text, "Europe/Paris")
    message = str(info.value)
    assert "happens twice in Europe/Paris" in message
    assert "clocks go back" in message
    assert "UTC offset" in message
    assert "does not exist" not in message


def test_an_ambiguous_time_with_an_offset_is_accepted():
    # The offset is exactly how a user says which of the two 02:30s.
    assert parse_instant("2026-10-25T02:30:00+02:00", "Europe/Paris") == utc(2026, 10, 25, 0, 30)
    assert parse_instant("2026-10-25T02:30:00+01:00", "Europe/Paris") == utc(2026, 10, 25, 1, 30)


def test_localize_returns_the_zone_aware_time():
    paris = ZoneInfo("Europe/Paris")
    result = localize(datetime(2026, 12, 1, 9, 0), paris)
    assert result.tzinfo is paris
    assert result.utcoffset() == timedelta(hours=1)


def test_utcnow_is_aware_utc():
    now = utcnow()
    assert now.tzinfo is UTC
    assert abs((datetime.now(UTC) - now).total_seconds()) < 5


def test_invalid_input_is_exit_code_6():
    assert InvalidInput.exit_code == 6
