"""Jobs other than publishing, run with the capacity publishing leaves: the handlers by kind,
the daily prune enqueued once per UTC day, and the outcome of each job (done, retry with
backoff, failed), fenced on its lock_token like a post's."""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.logs import event
from app.oauth.base import ProviderContext
from app.oauth.schedule import REFRESH_KIND
from app.queue import jobs as job_queue
from app.queue.jobs import ClaimedJob
from app.services import evergreen
from app.services.retention import prune
from worker.publishers.base import AuthError
from worker.publishers.http import HttpClient

log = logging.getLogger("worker")
JOB_BACKOFF = 60.0  # seconds before a failed job's second attempt; doubles after
# Jobs running at once in one run, at most. A refresh holds a database connection (and its
# account row) while the platform answers: 8 leave most of the run's 12 connections, and its
# threads, to the posts that fall due meanwhile (bench/jobs_lateness.py measures it).
JOB_SLOTS = 8


class JobFailed(Exception):
    """A handler's way to say: do not try again, this will not work (the message says why)."""


class RetryAt(Exception):
    """A handler's way to say: try again at `when` (its own schedule, not the default backoff)."""

    def __init__(self, when: datetime, message: str):
        super().__init__(message)
        self.when = when


class Defer(RetryAt):
    """A handler's way to say: not now (a rate limit), try again at `when` without spending an
    attempt. The handler bounds how long it defers."""


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    sessions: sessionmaker[Session]
    clock: Callable[[], datetime]
    publishers: dict = field(default_factory=dict)  # platform -> publisher, as the worker's

    def providers(self) -> ProviderContext:
        """What the OAuth providers are built with (a refresh_token job's refresh)."""
        return ProviderContext(self.settings, HttpClient.from_settings(self.settings),
                               self.sessions, self.clock)


def run_prune(ctx: JobContext, job: ClaimedJob) -> dict:
    days = int(job.payload.get("older_than_days", ctx.settings.retention_days))
    report = prune(ctx.sessions, ctx.clock(), timedelta(days=days))
    return report.as_dict()


def run_deliver_webhook(ctx: JobContext, job: ClaimedJob) -> dict:
    from worker.webhooks import deliver  # imported here: it raises this module's exceptions

    return deliver(ctx, job)


def run_collect_metrics(ctx: JobContext, job: ClaimedJob) -> dict:
    from worker.metrics import collect  # imported here: it raises this module's exceptions

    return collect(ctx, job)


def run_evergreen(ctx: JobContext, job: ClaimedJob) -> dict:
    """One week of a company's evergreen rule (app/services/evergreen.py)."""
    s = ctx.settings
    result = evergreen.run_rule(ctx.sessions, str(job.payload["rule_id"]), ctx.clock(),
                                s.evergreen_min_gap, s.max_attempts)
    if result is None:
        return {"skipped": "the rule was deleted"}
    return {"scheduled": [p.id for p in result.scheduled], "skipped": len(result.skipped)}


def run_refresh_token(ctx: JobContext, job: ClaimedJob) -> dict:
    """Refresh the token the job was queued for (or warn that it will expire); a refusal leaves
    the account needs_reconnect and ends the job, a platform that cannot answer is retried."""
    from app.oauth.refresh import refresh_ahead

    try:
        outcome = refresh_ahead(ctx.providers(), job.payload["accountId"],
                                datetime.fromisoformat(job.payload["expiresAt"]))
    except AuthError as exc:
        raise JobFailed(exc.message) from None
    return {"account_id": job.payload["accountId"], "done": outcome.done, "warned": outcome.warned}


HANDLERS: dict[str, Callable[[JobContext, ClaimedJob], dict | None]] = {
    "prune": run_prune, "deliver_webhook": run_deliver_webhook, REFRESH_KIND: run_refresh_token,
    "collect_metrics": run_collect_metrics, evergreen.ROTATE_KIND: run_evergreen}


def enqueue_daily_prune(settings: Settings, sessions: sessionmaker[Session],
                        now: datetime) -> int | None:
    """Today's prune job (UTC), unless it exists or retention is off. Every run asks; the
    unique dedupe_key makes exactly one of them enqueue it, and the claim one run it."""
    if settings.retention_days == 0:
        return None
    return job_queue.enqueue(sessions, "prune", {"older_than_days": settings.retention_days},
                             run_at=now, now=now, dedupe_key=f"prune:{now.date().isoformat()}")


class JobRunner:
    """Claims due jobs only into publishing's spare capacity, at most JOB_SLOTS at a time, and
    runs them on the run's pool; when none is due it looks again after a poll interval, not on
    every wake of the loop."""

    def __init__(self, ctx: JobContext):
        self.ctx = ctx
        self.next_look = 0.0
        self.running = 0
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """At the start of a run: stale job locks back to pending, today's prune and this
        week's evergreen rotations enqueued."""
        ctx = self.ctx
        recovered = job_queue.recover_stale_jobs(ctx.sessions, ctx.clock(), ctx.settings.lock_timeout)
        if recovered:
            event(log, "jobs_recovered", logging.WARNING, count=recovered)
        enqueue_daily_prune(ctx.settings, ctx.sessions, ctx.clock())
        evergreen.enqueue_weekly_rotations(ctx.sessions, ctx.clock())

    def submit(self, pool: Executor, spare: int) -> set[Future]:
        with self._lock:
            slots = min(spare, JOB_SLOTS - self.running)
        if slots <= 0 or time.monotonic() < self.next_look:
            return set()
        s = self.ctx.settings
        claimed = job_queue.claim_jobs(self.ctx.sessions, self.ctx.clock(), min(slots, s.batch_size),
                                       s.worker_id)
        if not claimed:
            self.next_look = time.monotonic() + s.poll_interval
        with self._lock:
            self.running += len(claimed)
        return {pool.submit(self._run_counted, job) for job in claimed}

    def _run_counted(self, job: ClaimedJob) -> str:
        try:
            return self.run_one(job)
        finally:
            with self._lock:
                self.running -= 1

    def run_one(self, job: ClaimedJob) -> str:
        """Run one job and write its outcome; the outcome's name for the run's summary."""
        ctx, handler = self.ctx, HANDLERS.get(job.kind)
        try:
            if handler is None:
                raise JobFailed(f"no handler for job kind {job.kind!r} in this worker")
            result = handler(ctx, job)
        except Defer as exc:
            return self._outcome(job, "deferred", job_queue.defer_job(
                ctx.sessions, job, str(exc), ctx.clock(), exc.when), error=str(exc))
        except RetryAt as exc:
            return self._outcome(job, "retry", job_queue.retry_job(
                ctx.sessions, job, str(exc), ctx.clock(), JOB_BACKOFF, run_at=exc.when),
                error=str(exc))
        except JobFailed as exc:
            return self._outcome(job, "failed", job_queue.fail_job(
                ctx.sessions, job, str(exc), ctx.clock()), error=str(exc))
        except Exception as exc:  # anything else is worth another attempt, later
            log.exception("job %s (%s) raised", job.id, job.kind)
            error = f"{type(exc).__name__}: {exc}"
            outcome = "retry" if job.attempt < job.max_attempts else "failed"
            return self._outcome(job, outcome, job_queue.retry_job(
                ctx.sessions, job, error, ctx.clock(), JOB_BACKOFF), error=error)
        return self._outcome(job, "done", job_queue.finish_job(ctx.sessions, job, ctx.clock()),
                             result=result)

    def _outcome(self, job: ClaimedJob, outcome: str, written: bool, **fields) -> str:
        """Log the outcome; return the run summary's counter for it."""
        if not written:
            outcome, fields = "lost", {"error": "the job was recovered by another worker; "
                                                "this outcome was not written"}
        event(log, "job", logging.INFO if outcome == "done" else logging.WARNING,
              outcome=outcome, job_id=job.id, kind=job.kind, attempt=job.attempt,
              worker_id=self.ctx.settings.worker_id, **fields)
        return {"done": "jobs", "lost": "lost"}.get(outcome, "jobs_failed")
