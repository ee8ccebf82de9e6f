"""The retry policy, without a database: each branch of RetryPolicy.decide."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from app.config import Settings
from worker.retry import (
    DEFAULT_RATE_LIMIT_WAIT, MAX_DEFERRAL_SPAN, MAX_DEFERRALS, Decision, Event, Happened,
    RetryPolicy, Verdict, may_try_again,
)

NOW = datetime(2030, 1, 1, 12, tzinfo=timezone.utc)
POLICY = RetryPolicy(backoff=60, missed_after=3600)


def happened(event: Event, **fields) -> Happened:
    return Happened(event, NOW, fields.pop("run_at", NOW - timedelta(minutes=1)), **fields)


def test_the_policy_comes_from_settings():
    policy = RetryPolicy.of(Settings(retry_backoff=5, missed_after=70))
    assert (policy.backoff, policy.missed_after) == (5, 70)
    assert (policy.max_deferrals, policy.max_deferral_span) == (MAX_DEFERRALS, MAX_DEFERRAL_SPAN)


def test_a_due_post_is_published():
    assert POLICY.decide(happened(Event.DUE)) == Decision(Verdict.PUBLISH)


def test_a_post_overdue_past_the_missed_window_is_missed():
    decision = POLICY.decide(happened(Event.DUE, run_at=NOW - timedelta(seconds=3601)))
    assert decision.verdict is Verdict.MISSED
    assert "more than 3600 s (SCHEDULER_MISSED_AFTER)" in decision.reason


def test_a_post_just_inside_the_missed_window_is_still_published():
    decision = POLICY.decide(happened(Event.DUE, run_at=NOW - timedelta(seconds=3600)))
    assert decision.verdict is Verdict.PUBLISH


def test_published_is_done():
    assert POLICY.decide(happened(Event.PUBLISHED)).verdict is Verdict.PUBLISHED


@pytest.mark.parametrize("attempt,delay", [(1, 60), (2, 120)])
def test_a_retryable_error_backs_off_doubling(attempt, delay):
    decision = POLICY.decide(happened(Event.RETRYABLE, attempt=attempt, max_attempts=3))
    assert decision == Decision(Verdict.RETRY, NOW + timedelta(seconds=delay))


def test_a_retryable_error_on_the_last_attempt_fails():
    decision = POLICY.decide(happened(Event.RETRYABLE, attempt=3, max_attempts=3))
    assert decision == Decision(Verdict.FAIL)


def test_a_permanent_error_fails_on_the_first_attempt():
    assert POLICY.decide(happened(Event.PERMANENT, attempt=1)) == Decision(Verdict.FAIL)


def test_an_account_to_reconnect_waits():
    assert POLICY.decide(happened(Event.NEEDS_RECONNECT)) == Decision(Verdict.WAIT)


def test_a_rate_limit_defers_to_its_reset_time():
    reset = NOW + timedelta(minutes=15)
    assert POLICY.decide(happened(Event.RATE_LIMITED, retry_at=reset)) == Decision(
        Verdict.DEFER, reset)


def test_a_rate_limit_reset_in_the_past_waits_retry_after_or_the_default():
    past = NOW - timedelta(seconds=1)
    assert POLICY.decide(happened(Event.RATE_LIMITED, retry_at=past,
                                  retry_after=timedelta(seconds=90))).at == NOW + timedelta(seconds=90)
    assert POLICY.decide(happened(Event.RATE_LIMITED)).at == NOW + DEFAULT_RATE_LIMIT_WAIT


def test_a_rate_limit_after_the_last_deferral_fails():
    decision = POLICY.decide(happened(Event.RATE_LIMITED, deferrals=MAX_DEFERRALS))
    assert decision.verdict is Verdict.FAIL
    assert f"after {MAX_DEFERRALS} deferrals" in decision.reason


def test_a_rate_limit_past_the_deferral_span_fails():
    first = NOW - timedelta(hours=23)
    late = POLICY.decide(happened(Event.RATE_LIMITED, run_at=NOW, deferred_since=first,
                                  retry_at=NOW + timedelta(hours=1, seconds=1)))
    inside = POLICY.decide(happened(Event.RATE_LIMITED, run_at=NOW, deferred_since=first,
                                    retry_at=NOW + timedelta(hours=1)))
    assert (late.verdict, inside.verdict) == (Verdict.FAIL, Verdict.DEFER)
    assert "24 h after its time" in late.reason


def test_the_attempt_limit():
    assert may_try_again(2, 3) and not may_try_again(3, 3) and not may_try_again(4, 3)
