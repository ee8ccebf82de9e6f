"""The retry policy: given what happened to a claimed post, what the worker does with it next.

A value, and pure: it reads no database and no clock (`now` is given). Backoff, the attempt
limit, the deferral limits and the missed window live here and nowhere else; worker/cycle.py
applies its decisions through worker/queue.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

MAX_ATTEMPTS = 3                         # attempts per post (SCHEDULER_MAX_ATTEMPTS), by default
MAX_DEFERRALS = 5                        # rate-limit deferrals of one post, then it fails
MAX_DEFERRAL_SPAN = timedelta(hours=24)  # nor is it deferred past this after its first run_at
DEFAULT_RATE_LIMIT_WAIT = timedelta(minutes=1)  # when the platform does not say how long


class Event(StrEnum):
    """What happened to the post."""

    DUE = "due"                        # claimed, nothing sent yet
    PUBLISHED = "published"            # the platform took it
    RETRYABLE = "retryable"            # a transient error (or anything unforeseen)
    PERMANENT = "permanent"            # the platform refused it for good
    RATE_LIMITED = "rate_limited"      # refused for now (or not ready yet): try at a later time
    NEEDS_RECONNECT = "needs_reconnect"  # the account must be reconnected first


class Verdict(StrEnum):
    """What the worker does; every value but `publish` is a run summary's counter."""

    PUBLISH = "publish"      # go ahead and send it
    PUBLISHED = "published"  # done
    RETRY = "retried"        # due again at `at`, the attempt spent
    DEFER = "deferred"       # due again at `at`, no attempt spent
    FAIL = "failed"          # give up
    MISSED = "missed"        # too late to send at all
    WAIT = "waiting"         # until the account is reconnected, no attempt spent


@dataclass(frozen=True)
class Happened:
    event: Event
    now: datetime
    run_at: datetime                     # when the post was due
    attempt: int = 1                     # this attempt's number, 1-based
    max_attempts: int = MAX_ATTEMPTS
    deferrals: int = 0                   # rate-limit deferrals so far
    deferred_since: datetime | None = None  # run_at before the first deferral
    retry_at: datetime | None = None     # a rate limit's reset time, if the platform said
    retry_after: timedelta | None = None  # or how long to wait


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    at: datetime | None = None   # RETRY, DEFER: when the post is due again
    reason: str | None = None    # MISSED, or a FAIL the policy chose: why, for the error message


@dataclass(frozen=True)
class RetryPolicy:
    backoff: float = 60.0            # seconds before attempt 2; doubles for each attempt after
    missed_after: float = 48 * 3600  # a post overdue by more than this is missed, not sent late
    max_deferrals: int = MAX_DEFERRALS
    max_deferral_span: timedelta = MAX_DEFERRAL_SPAN
    default_wait: timedelta = DEFAULT_RATE_LIMIT_WAIT

    @classmethod
    def of(cls, settings) -> "RetryPolicy":
        return cls(backoff=settings.retry_backoff, missed_after=settings.missed_after)

    def decide(self, h: Happened) -> Decision:
        if h.event is Event.DUE:
            return self._due(h)
        if h.event is Event.PUBLISHED:
            return Decision(Verdict.PUBLISHED)
        if h.event is Event.NEEDS_RECONNECT:
            return Decision(Verdict.WAIT)
        if h.event is Event.RATE_LIMITED:
            return self._rate_limited(h)
        if h.event is Event.RETRYABLE and may_try_again(h.attempt, h.max_attempts):
            return Decision(Verdict.RETRY, h.now + timedelta(
                seconds=self.backoff * 2 ** (h.attempt - 1)))
        return Decision(Verdict.FAIL)

    def resume_at(self, now: datetime, retry_at: datetime | None,
                  retry_after: timedelta | None) -> datetime:
        """When a rate-limited account may be asked again."""
        if retry_at is not None and retry_at > now:
            return retry_at
        return now + (retry_after or self.default_wait)

    def _due(self, h: Happened) -> Decision:
        if h.run_at < h.now - timedelta(seconds=self.missed_after):
            return Decision(Verdict.MISSED, reason=(
                f"not published: it was due at {h.run_at.isoformat()}, more than "
                f"{self.missed_after} s (SCHEDULER_MISSED_AFTER) before the worker reached it"))
        return Decision(Verdict.PUBLISH)

    def _rate_limited(self, h: Happened) -> Decision:
        until = self.resume_at(h.now, h.retry_at, h.retry_after)
        first = h.deferred_since or h.run_at
        if h.deferrals >= self.max_deferrals or until > first + self.max_deferral_span:
            return Decision(Verdict.FAIL, until, reason=(
                f"not published: after {h.deferrals} deferrals it would go out more than "
                f"{self.max_deferral_span.total_seconds() / 3600:g} h after its time, or be "
                f"deferred more than {self.max_deferrals} times"))
        return Decision(Verdict.DEFER, until)


def may_try_again(attempts: int, max_attempts: int) -> bool:
    """The attempt limit: after `attempts` spent, is there another?"""
    return attempts < max_attempts
