"""One worker run: recover -> claim -> publish on a bounded thread pool -> record, until nothing
is due (or, with --loop, until the time budget is spent). It only loops, dispatches and
reports; the queue's SQL lives in worker/queue.py.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import crypto
from app.config import Settings
from app.logs import event
from app.models import PostDetail, SocialAccount
from app.services.accounts import mark_needs_reconnect
from worker import queue
from worker.publishers import default_publishers
from worker.publishers.base import (
    Account, AuthError, PermanentError, PostToPublish, Publisher, RateLimitedError,
)
from worker.queue import Claimed, Failure

log = logging.getLogger("worker")
MAX_DEFERRALS = 5
DEFAULT_RATE_LIMIT_WAIT = timedelta(minutes=1)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class RunSummary:
    worker_id: str
    recovered: int = 0
    claimed: int = 0
    published: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0
    missed: int = 0
    lost: int = 0          # outcomes not written because the claim was no longer ours
    seconds: float = 0.0
    outcomes: dict = field(default_factory=dict, repr=False)

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def as_log(self) -> dict:
        data = asdict(self)
        data.pop("outcomes")
        return data


class Worker:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session],
                 publishers: dict[str, Publisher] | None = None,
                 clock: Callable[[], datetime] = utcnow):
        self.settings = settings
        self.sessions = sessions
        self.publishers = default_publishers() if publishers is None else publishers
        self.clock = clock

    def run(self, loop: bool = False) -> RunSummary:
        """One run. Without `loop` it ends when nothing is due; with it, when the budget is spent."""
        s = self.settings
        summary = RunSummary(worker_id=s.worker_id)
        started = time.monotonic()
        run_id = queue.start_run(self.sessions, s.worker_id, self.clock())
        try:
            summary.recovered = queue.recover_stale(self.sessions, self.clock(), s.lock_timeout)
            with ThreadPoolExecutor(max_workers=s.concurrency, thread_name_prefix="publish") as pool:
                self._drain(pool, summary, started, loop)
        except queue.LockConflict as exc:
            event(log, "run_stopped", logging.WARNING, reason=str(exc))
        finally:
            summary.seconds = round(time.monotonic() - started, 3)
            queue.finish_run(self.sessions, run_id, self.clock(), recovered=summary.recovered,
                             claimed=summary.claimed, published=summary.published,
                             retried=summary.retried, failed=summary.failed + summary.missed,
                             deferred=summary.deferred)
            event(log, "worker_run", **summary.as_log())
        return summary

    def _drain(self, pool: ThreadPoolExecutor, summary: RunSummary, started: float,
               loop: bool) -> None:
        s = self.settings
        in_flight: set[Future] = set()
        nothing_due = False
        while True:
            left = s.run_budget - (time.monotonic() - started)
            free = s.concurrency - len(in_flight)
            if left > 0 and free > 0 and (loop or not nothing_due):
                wanted = min(s.batch_size, free)
                jobs = queue.claim_due(self.sessions, self.clock(), wanted, s.worker_id)
                summary.claimed += len(jobs)
                nothing_due = len(jobs) < wanted
                in_flight |= {pool.submit(self._process, job, post, account)
                              for job, post, account in self._load(jobs)}
                if not nothing_due and len(in_flight) < s.concurrency:
                    continue  # more may be due and there is room: claim again at once
            if not in_flight:
                if left <= 0 or not loop:
                    return
                time.sleep(min(s.poll_interval, left))
                continue
            # Wait for a publish to finish; in --loop mode also wake to look for newly due posts.
            done, in_flight = wait(in_flight, timeout=s.poll_interval if loop else None,
                                   return_when=FIRST_COMPLETED)
            for future in done:
                summary.count(future.result())

    def _load(self, jobs: list[Claimed]) -> list[tuple[Claimed, PostToPublish, "_AccountRow"]]:
        """The post and account behind each claimed row, in one read."""
        if not jobs:
            return []
        with self.sessions() as session:
            rows = session.execute(
                select(PostDetail, SocialAccount)
                .join(SocialAccount, SocialAccount.id == PostDetail.social_account_id)
                .where(PostDetail.id.in_([j.post_detail_id for j in jobs]))).all()
        by_id = {post.id: (post, account) for post, account in rows}
        loaded = []
        for job in jobs:
            post, account = by_id[job.post_detail_id]
            loaded.append((job, PostToPublish(post.id, post.content, list(post.media_urls or []),
                                              job.schedule_id, job.attempt),
                           _account_view(account)))
        return loaded

    def _process(self, job: Claimed, post: PostToPublish, account: "_AccountRow") -> str:
        """Publish one claimed post and record the outcome; return the outcome's name."""
        try:
            return self._publish(job, post, account)
        except Exception:  # a bug or a DB outage must not take the other posts down with it
            log.exception("unexpected error while publishing schedule %s", job.schedule_id)
            return "lost"

    def _publish(self, job: Claimed, post: PostToPublish, account: "_AccountRow") -> str:
        s, now = self.settings, self.clock()
        if job.run_at < now - timedelta(seconds=s.missed_after):
            return self._record(job, account, "missed", queue.mark_failed, Failure(
                f"not published: it was due at {job.run_at.isoformat()}, more than "
                f"{s.missed_after} s (SCHEDULER_MISSED_AFTER) before the worker reached it",
                error_code="missed"), now=now, status="missed")
        if account.status != "active":
            return self._record(job, account, "failed", queue.mark_failed, Failure(
                f"the {account.platform} account {account.display_name or account.external_id} "
                "needs to be reconnected before it can publish", error_code="needs_reconnect"),
                now=now)
        publisher = self.publishers.get(account.platform)
        if publisher is None:
            return self._record(job, account, "failed", queue.mark_failed, Failure(
                f"no publisher for platform {account.platform!r} in this worker",
                error_code="no_publisher"), now=now)
        try:
            result = publisher.publish(post, account.to_publisher())
        except RateLimitedError as exc:
            return self._rate_limited(job, account, exc)
        except AuthError as exc:
            mark_needs_reconnect(self.sessions, account.id, self.clock())
            return self._record(job, account, "failed", queue.mark_failed, _failure(
                exc, f"{exc.message}. Reconnect the {account.platform} account to publish again"),
                now=self.clock())
        except PermanentError as exc:
            return self._record(job, account, "failed", queue.mark_failed, _failure(exc),
                                now=self.clock())
        except Exception as exc:  # RetryableError, and anything unforeseen, is worth a retry
            return self._retry_or_fail(job, account, _failure(exc))
        if not queue.mark_published(self.sessions, job, result.platform_post_id, self.clock()):
            return self._lost(job, account)
        self._log(job, account, "published", platform_post_id=result.platform_post_id)
        return "published"

    def _retry_or_fail(self, job: Claimed, account: "_AccountRow", failure: Failure) -> str:
        if job.attempt < job.max_attempts:
            return self._record(job, account, "retried", queue.schedule_retry, failure,
                                now=self.clock(), backoff=self.settings.retry_backoff)
        return self._record(job, account, "failed", queue.mark_failed, failure, now=self.clock())

    def _rate_limited(self, job: Claimed, account: "_AccountRow", exc: RateLimitedError) -> str:
        now = self.clock()
        if job.deferrals >= MAX_DEFERRALS:
            return self._record(job, account, "failed", queue.mark_failed, _failure(
                exc, f"{exc.message} (still rate limited after {MAX_DEFERRALS} deferrals)"), now=now)
        until = exc.retry_at if exc.retry_at and exc.retry_at > now else now + DEFAULT_RATE_LIMIT_WAIT
        return self._record(job, account, "deferred", queue.defer, _failure(exc),
                            until=until, now=now)

    def _record(self, job: Claimed, account: "_AccountRow", outcome: str, write, failure: Failure,
                **kwargs) -> str:
        if not write(self.sessions, job, failure=failure, **kwargs):
            return self._lost(job, account)
        self._log(job, account, outcome, level=logging.WARNING, error=failure.message,
                  error_code=failure.error_code, http_status=failure.http_status)
        return outcome

    def _lost(self, job: Claimed, account: "_AccountRow") -> str:
        self._log(job, account, "lost", level=logging.WARNING,
                  error="the claim was recovered by another worker; this outcome was not written")
        return "lost"

    def _log(self, job: Claimed, account: "_AccountRow", outcome: str, level=logging.INFO, **fields):
        event(log, "post", level, outcome=outcome, schedule_id=job.schedule_id,
              post_id=job.post_detail_id, platform=account.platform, attempt=job.attempt,
              worker_id=self.settings.worker_id, **{k: v for k, v in fields.items() if v is not None})


@dataclass(frozen=True)
class _AccountRow:
    id: str
    platform: str
    external_id: str
    display_name: str | None
    status: str
    sealed_token: str = field(repr=False)

    def to_publisher(self) -> Account:
        return Account(self.id, self.platform, self.external_id, self.display_name,
                       crypto.unseal(self.sealed_token))


def _account_view(account: SocialAccount) -> _AccountRow:
    return _AccountRow(account.id, account.platform, account.external_id, account.display_name,
                       account.status, account.access_token_encrypted)


def _failure(exc: Exception, message: str | None = None) -> Failure:
    return Failure(message=message or getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}",
                   http_status=getattr(exc, "http_status", None),
                   error_code=getattr(exc, "error_code", None))
