"""One worker run: recover -> claim -> publish on a bounded thread pool -> record, until nothing
is due (or, with --loop, until the time budget is spent). It only loops, dispatches and
reports; the queue's SQL lives in worker/queue.py.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app import crypto
from app.config import Settings
from app.db import engine_of
from app.errors import ConfigError
from app.logs import event
from app.models import PostDetail, SocialAccount
from app.oauth.refresh import REFRESH_REFUSED, fresh_token, replace_expired
from app.oauth.schedule import JUST_IN_TIME
from app.services.accounts import mark_needs_reconnect, waiting_reason
from app.statuses import AccountStatus, QueueStatus
from app.timeutil import utcnow
from worker import queue
from worker.jobs import JobContext, JobRunner
from worker.publishers import default_publishers
from worker.lease import Leases
from worker.publishers.base import (
    Account, AuthError, ClaimExpired, LookupUnavailable, NotReadyError, PermanentError,
    PostToPublish, Publisher, RateLimitedError, guarded,
)
from worker.queue import Claimed, Failure
from worker.retry import Decision, Event, Happened, RetryPolicy, Verdict

log = logging.getLogger("worker")
LOOKUP_SLACK = timedelta(minutes=5)      # look this far before a lost attempt (clock skew)
RECORD_WINDOW = 0.05  # seconds a published outcome may wait to be written with others
RECORD_GROUP = 100    # published outcomes written in one transaction, at most
# MySQL client/server codes meaning the server is gone: can't connect (2002, 2003), gone away
# (2006), lost during a query (2013), read/write error (2055), shutting down (1053), killed (1927)
CONNECTION_LOST = {2002, 2003, 2006, 2013, 2055, 1053, 1927}


@dataclass
class RunSummary:
    worker_id: str
    recovered: int = 0
    claimed: int = 0
    published: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0
    waiting: int = 0       # held until their account is reconnected
    missed: int = 0
    lost: int = 0          # outcomes not written because the claim was no longer ours
    jobs: int = 0          # jobs other than publishing done (worker/jobs.py)
    jobs_failed: int = 0   # jobs that failed or will be tried again
    released: int = 0      # claims given back unsent: too old to act on, or the run stopped
    unrecorded: int = 0    # outcomes not written because the database could not be reached
    seconds: float = 0.0
    outcomes: dict = field(default_factory=dict, repr=False)
    outage: str | None = field(default=None, repr=False)  # why the database stopped the run

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def as_log(self) -> dict:
        data = asdict(self)
        data.pop("outcomes")
        data.pop("outage")
        return data


class Worker:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session],
                 publishers: dict[str, Publisher] | None = None,
                 clock: Callable[[], datetime] = utcnow):
        self.settings = settings
        self.sessions = sessions
        self.publishers = default_publishers(settings) if publishers is None else publishers
        self.clock = clock
        self.policy = RetryPolicy.of(settings)
        self._run = _RunState(settings)
        self.jobs = JobRunner(JobContext(settings, sessions, clock, self.publishers))
        self._providers = self.jobs.ctx.providers()  # for just-in-time token refreshes
        self._leases = Leases(settings, sessions, clock)

    def run(self, loop: bool = False) -> RunSummary:
        """One run. Without `loop` it ends when nothing is due; with it, when the budget is spent."""
        s = self.settings
        summary = RunSummary(worker_id=s.worker_id)
        self._run = _RunState(s)
        self._leases = Leases(s, self.sessions, self.clock)
        started = time.monotonic()
        run_id = queue.start_run(self.sessions, s.worker_id, self.clock())
        try:
            summary.recovered = queue.recover_stale(self.sessions, self.clock(), s.lock_timeout)
            self.jobs.prepare()  # stale job locks recovered, today's prune enqueued
            with self._leases, ThreadPoolExecutor(max_workers=s.concurrency,
                                                  thread_name_prefix="publish") as pool:
                self._drain(pool, summary, started, loop)
        except queue.LockConflict as exc:
            event(log, "run_stopped", logging.WARNING, reason=str(exc))
        except DBAPIError as exc:
            if not _unreachable(exc):
                raise
            summary.outage = str(exc.orig).splitlines()[0]
            event(log, "run_stopped", logging.WARNING,
                  reason=f"database unreachable: {summary.outage}")
        finally:
            summary.seconds = round(time.monotonic() - started, 3)
            self._finish(run_id, summary)
        return summary

    def _finish(self, run_id: int, summary: RunSummary) -> None:
        try:
            queue.finish_run(self.sessions, run_id, self.clock(), recovered=summary.recovered,
                             claimed=summary.claimed, published=summary.published,
                             retried=summary.retried, failed=summary.failed + summary.missed,
                             deferred=summary.deferred + summary.waiting + summary.released)
        except DBAPIError as exc:
            if not _unreachable(exc):
                raise
            event(log, "run_not_recorded", logging.WARNING,
                  error="database unreachable: this run's worker_runs row was not completed")
        event(log, "worker_run", **summary.as_log())

    def _drain(self, pool: Executor, summary: RunSummary, started: float,
               loop: bool) -> None:
        """Claim whole batches ahead into `ready`, keep the pool busy from it, and write the
        published outcomes in groups (up to RECORD_GROUP, or what finished within
        RECORD_WINDOW)."""
        s = self.settings
        in_flight: set[Future] = set()
        ready: deque = deque()
        recorder = _Recorder(self, summary)
        nothing_due = False
        try:
            while True:
                left = (s.loop_budget if loop else s.run_budget) - (time.monotonic() - started)
                if left > 0 and len(ready) < s.concurrency and (loop or not nothing_due):
                    since = time.monotonic()  # before the claim: the lease's age is never short
                    jobs = queue.claim_due(self.sessions, self.clock(), s.batch_size, s.worker_id)
                    self._leases.add(jobs, since)
                    summary.claimed += len(jobs)
                    nothing_due = len(jobs) < s.batch_size
                    ready.extend(self._load_or_stop(jobs, ready, summary))
                while ready and len(in_flight) < s.concurrency:
                    in_flight.add(pool.submit(self._process, *ready.popleft()))
                if nothing_due and not ready and left > 0:  # jobs get what publishing leaves
                    in_flight |= self.jobs.submit(pool, s.concurrency - len(in_flight))
                if not nothing_due and left > 0 and len(ready) < s.concurrency:
                    continue  # more may be due and the buffer is low: claim again at once
                if not in_flight:
                    recorder.flush()
                    if left <= 0 or not loop:
                        return
                    time.sleep(min(s.poll_interval, left))
                    continue
                # Wait for a publish to finish; in --loop mode also wake to look for newly due
                # posts, and wake in time to write the published ones waiting to be recorded.
                timeout = recorder.due_in(s.poll_interval if loop else None)
                done, in_flight = wait(in_flight, timeout=timeout, return_when=FIRST_COMPLETED)
                recorder.add([future.result() for future in done], RECORD_GROUP)
        finally:  # whatever ended the loop, what was published is written
            recorder.add([future.result() for future in wait(in_flight).done], 0)

    def _load_or_stop(self, jobs: list[Claimed], ready: deque,
                      summary: RunSummary) -> list[tuple[Claimed, PostToPublish, "_AccountRow"]]:
        """The claimed rows, loaded with their accounts' tokens decrypted. A token that cannot be
        decrypted means the wrong SCHEDULER_SECRET_KEY: every post would fail, so the run stops
        and gives back what it holds unsent (no attempt spent); posts in flight finish."""
        try:
            return self._load(jobs)
        except ConfigError as exc:
            unsent = jobs + [job for job, _, _ in ready]
            ready.clear()
            summary.released += len(queue.release_unsent(self.sessions, unsent, Failure(
                f"not sent: {exc}", error_code="secret_key"), self.clock()))
            for job in unsent:
                self._leases.discard(job)
            raise ConfigError(f"{exc}; set it to the key the API sealed the tokens with. "
                              f"{len(unsent)} claimed posts were released unsent, no attempt "
                              "spent") from None

    def _load(self, jobs: list[Claimed]) -> list[tuple[Claimed, PostToPublish, "_AccountRow"]]:
        """The post and account behind each claimed row, in one read (Core: plain rows)."""
        if not jobs:
            return []
        d, a = PostDetail.__table__.c, SocialAccount.__table__.c
        with engine_of(self.sessions).connect() as conn:
            rows = conn.execute(
                select(d.id, d.content, d.media_urls, a.id.label("account_id"), a.platform,
                       a.external_id, a.display_name, a.status, a.access_token_encrypted,
                       a.token_expires_at, a.auth_meta,
                       a.refresh_token_encrypted.is_not(None).label("refreshable"))
                .join_from(PostDetail.__table__, SocialAccount.__table__,
                           a.id == d.social_account_id)
                .where(d.id.in_([j.post_detail_id for j in jobs]))).all()
        by_id = {row.id: row for row in rows}
        loaded = []
        for job in jobs:
            row = by_id[job.post_detail_id]
            loaded.append((job, PostToPublish(row.id, row.content, list(row.media_urls or []),
                                              job.schedule_id, job.attempt),
                           _AccountRow(row.account_id, row.platform, row.external_id,
                                       row.display_name, row.status,
                                       row.access_token_encrypted, row.token_expires_at,
                                       dict(row.auth_meta or {}), bool(row.refreshable))))
        for _, _, account in loaded:
            self._run.credentials(account)  # decrypted once per account, before any request
        return loaded

    def _process(self, job: Claimed, post: PostToPublish,
                 account: "_AccountRow") -> "str | _Published":
        """Publish one claimed post and record the outcome; return the outcome's name, or the
        success for the run's loop to record."""
        try:
            return self._publish(job, post, account)
        except Exception as exc:  # neither a bug nor an outage takes the other posts down
            if isinstance(exc, DBAPIError) and _unreachable(exc):
                self._log(job, account, "unrecorded", level=logging.WARNING, error=(
                    "database unreachable while recording this post's outcome; the row stays "
                    "claimed and is recovered after SCHEDULER_LOCK_TIMEOUT, then looked for on "
                    "the platform before any repost"))
                return "unrecorded"
            log.exception("unexpected error while publishing schedule %s", job.schedule_id)
            return "lost"
        finally:
            self._leases.discard(job)

    def _publish(self, job: Claimed, post: PostToPublish, account: "_AccountRow") -> "str | _Published":
        now = self.clock()
        decision = self.policy.decide(self._happened(job, Event.DUE, now))
        if decision.verdict is Verdict.MISSED:
            return self._apply(job, account, decision, Failure(decision.reason, error_code="missed"))
        if account.status != AccountStatus.ACTIVE or account.id in self._run.needs_reconnect:
            return self._after(job, account, Event.NEEDS_RECONNECT, Failure(
                waiting_reason(account), error_code="needs_reconnect"), now=now)
        limited = self._run.limited_until(account.id, now)
        if limited is not None:  # another post of this account was just refused: no request
            return self._after(job, account, Event.RATE_LIMITED, Failure(
                limited.message, error_code="rate_limited_account"), now=now, retry_at=limited.until)
        publisher = self.publishers.get(account.platform)
        if publisher is None:
            return self._after(job, account, Event.PERMANENT, Failure(
                f"no publisher for platform {account.platform!r} in this worker",
                error_code="no_publisher"), now=now)
        post = replace(post, draft_id=job.draft_id, keep_draft=lambda draft: queue.save_draft(
            self.sessions, job, draft, self.clock()))
        return self._send(job, post, account, publisher)

    def _send(self, job: Claimed, post: PostToPublish, account: "_AccountRow",
              publisher: Publisher) -> "str | _Published":
        """Look first if an earlier attempt may have got through, then publish; every error
        class of the taxonomy ends here in its queue outcome."""
        note = None
        try:
            credentials = self._credentials(account)
            with guarded(lambda: self._leases.check(job)):  # before each request it makes
                self._leases.check(job)
                if job.unknown_since is not None:
                    found, note = self._look(job, post, credentials, publisher)
                    if found is not None:
                        return self._published(job, account, found, Failure(
                            f"found on {account.platform} as {found}, published by an earlier "
                            "attempt whose answer was lost: not posted again",
                            error_code="found_existing"))
                result = publisher.publish(post, credentials)
        except ClaimExpired as exc:
            return self._drop(job, account, _failure(exc, note=note))
        except NotReadyError as exc:  # still processing on the platform's side: not the account's fault
            return self._rate_limited(job, account, exc, _failure(exc, note=note))
        except RateLimitedError as exc:
            self._run.limit(account.id, self.policy.resume_at(self.clock(), exc.retry_at,
                                                              exc.retry_after))
            return self._rate_limited(job, account, exc, _failure(exc, note=note))
        except AuthError as exc:
            self._run.needs_reconnect.add(account.id)
            if exc.error_code in REFRESH_REFUSED:  # the token, not this post: it waits too
                return self._after(job, account, Event.NEEDS_RECONNECT, _failure(exc, note=note))
            mark_needs_reconnect(self.sessions, account.id, self.clock())
            return self._after(job, account, Event.PERMANENT, _failure(
                exc, f"{exc.message}. Reconnect the {account.platform} account to publish again; "
                "its other posts wait until then", note))
        except PermanentError as exc:
            return self._after(job, account, Event.PERMANENT, _failure(exc, note=note))
        except Exception as exc:  # RetryableError, and anything unforeseen, is worth a retry
            return self._after(job, account, Event.RETRYABLE, _failure(exc, note=note),
                               maybe_published=getattr(exc, "maybe_published", False))
        if note or result.note:
            remark = Failure("; ".join(filter(None, (note, result.note))),
                             error_code="lookup_unavailable" if note else "published_with_note")
        else:
            remark = None
        return self._published(job, account, result.platform_post_id, remark)

    def _credentials(self, account: "_AccountRow") -> Account:
        """The account's token; refreshed first (under its row lock, app/oauth/refresh.py) when it
        expires within JUST_IN_TIME."""
        expires = account.token_expires_at
        if expires is not None and expires <= self.clock() + JUST_IN_TIME:
            credentials = account.to_publisher(fresh_token(self._providers, account.id))
        else:
            credentials = self._run.credentials(account)
        if not account.refreshable:
            return credentials
        # A token the platform calls expired before its time (Bluesky's ExpiredToken)
        stale = credentials.access_token
        return replace(credentials, refresh=lambda: replace_expired(self._providers, account.id,
                                                                     stale))

    def _look(self, job: Claimed, post: PostToPublish, credentials: Account,
              publisher: Publisher) -> tuple[str | None, str | None]:
        """An earlier attempt may have published this post: the platform's id of it if it is
        there, and a note for the attempt record when the platform cannot be asked."""
        assert job.unknown_since is not None  # the caller looks only after an unknown attempt
        since = job.unknown_since - LOOKUP_SLACK
        find = getattr(publisher, "find_existing", None)
        note: str | None
        try:
            if find is None:
                raise LookupUnavailable(f"{credentials.platform} gives no way to read back "
                                        "the account's posts")
            found = find(post, credentials, since)
        except LookupUnavailable as exc:
            found, note = None, (f"could not look for a copy from the earlier attempt whose "
                                 f"answer was lost ({exc.message}); posted again")
        else:
            note = None
        if found is None:
            queue.looked_up(self.sessions, job, self.clock())
        return found, note

    def _published(self, job: Claimed, account: "_AccountRow", platform_post_id: str,
                   note: Failure | None) -> "_Published":
        """Success is written by the run's loop, batched with the others that finish with it."""
        return _Published(queue.Published(job, platform_post_id, note), account)

    def _happened(self, job: Claimed, event: Event, now: datetime, **fields) -> Happened:
        return Happened(event, now, job.run_at, job.attempt, job.max_attempts, job.deferrals,
                        job.deferred_since, **fields)

    def _rate_limited(self, job: Claimed, account: "_AccountRow", exc: RateLimitedError,
                      failure: Failure) -> str:
        return self._after(job, account, Event.RATE_LIMITED, failure, retry_at=exc.retry_at,
                           retry_after=exc.retry_after)

    def _after(self, job: Claimed, account: "_AccountRow", event: Event, failure: Failure,
               now: datetime | None = None, maybe_published: bool = False, **fields) -> str:
        """Ask the retry policy what `event` means for this post, and apply its decision."""
        now = self.clock() if now is None else now
        decision = self.policy.decide(self._happened(job, event, now, **fields))
        return self._apply(job, account, decision, failure, now, maybe_published)

    def _apply(self, job: Claimed, account: "_AccountRow", decision: Decision, failure: Failure,
               now: datetime | None = None, maybe_published: bool = False) -> str:
        """Write the policy's decision through the queue's fenced writes."""
        now = self.clock() if now is None else now
        verdict = decision.verdict
        if verdict is Verdict.RETRY:
            return self._record(job, account, verdict, queue.schedule_retry, failure, now=now,
                                run_at=decision.at, maybe_published=maybe_published)
        if verdict is Verdict.DEFER:
            return self._record(job, account, verdict, queue.defer, failure, until=decision.at,
                                now=now)
        if verdict is Verdict.WAIT:
            return self._record(job, account, verdict, queue.hold_for_reconnect, failure, now=now)
        if verdict is Verdict.MISSED:
            return self._record(job, account, verdict, queue.mark_failed, failure, now=now,
                                status=QueueStatus.MISSED)
        if decision.reason is not None:
            failure = replace(failure, message=f"{failure.message} ({decision.reason})")
        if maybe_published:
            failure = replace(failure, message=f"{failure.message}; the request may have reached "
                              f"{account.platform}: a retry looks for the post there first")
        return self._record(job, account, Verdict.FAIL, queue.mark_failed, failure, now=now,
                            maybe_published=maybe_published)

    def _drop(self, job: Claimed, account: "_AccountRow", failure: Failure) -> str:
        """A claim too old to act on: nothing is sent; the row goes back to pending (attempt
        given back) if it is still ours, else it is already someone else's."""
        if not queue.release_unsent(self.sessions, [job], failure, self.clock()):
            failure = replace(failure, message=f"{failure.message}; it was recovered already")
        self._log(job, account, "released", level=logging.WARNING, error=failure.message,
                  error_code=failure.error_code)
        return "released"

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
class _Published:
    item: queue.Published
    account: "_AccountRow"


class _Recorder:
    """Counts a run's outcomes and writes its published ones together: each group is one
    transaction (queue.mark_published_many) instead of one per post."""

    def __init__(self, worker: "Worker", summary: RunSummary):
        self.worker, self.summary = worker, summary
        self.waiting: list[_Published] = []
        self.since = 0.0

    def add(self, results: list, flush_at: int) -> None:
        for result in results:
            if isinstance(result, _Published):
                if not self.waiting:
                    self.since = time.monotonic()
                self.waiting.append(result)
            else:
                self.summary.count(result)
        if self.waiting and (len(self.waiting) >= flush_at or self.due_in(None) == 0):
            self.flush()

    def due_in(self, timeout: float | None) -> float | None:
        """How long the run may wait before the waiting group must be written."""
        if not self.waiting:
            return timeout
        left = max(0.0, RECORD_WINDOW - (time.monotonic() - self.since))
        return left if timeout is None else min(timeout, left)

    def flush(self) -> None:
        group, self.waiting = self.waiting, []
        if not group:
            return
        worker = self.worker
        try:
            written = queue.mark_published_many(worker.sessions, [p.item for p in group],
                                                worker.clock())
        except Exception as exc:  # the run goes on: the rows stay claimed, recovery sees them
            if not (isinstance(exc, DBAPIError) and _unreachable(exc)):
                log.exception("could not record %d published posts", len(group))
                for p in group:
                    self.summary.count(worker._lost(p.item.job, p.account))
                return
            for p in group:
                self.summary.count("unrecorded")
                worker._log(p.item.job, p.account, "unrecorded", level=logging.WARNING,
                            platform_post_id=p.item.platform_post_id, error=(
                                "database unreachable while recording; the post was published "
                                "and will be found by the lookup"))
            return
        for p in group:
            job = p.item.job
            if job.schedule_id in written:
                self.summary.count("published")
                worker._log(job, p.account, "published", platform_post_id=p.item.platform_post_id,
                            note=p.item.note.message if p.item.note else None)
            else:
                self.summary.count(worker._lost(job, p.account))


@dataclass(frozen=True)
class _Limit:
    """An account a platform rate limited in this run, and until when."""
    until: datetime
    message: str


class _RunState:
    """What one run learned about accounts, shared by its publishing threads: which are rate
    limited (their other posts are deferred without a request) and which need reconnecting."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.needs_reconnect: set[str] = set()
        self._limits: dict[str, datetime] = {}
        self._tokens: dict[str, str] = {}  # sealed -> plain: one decryption per account per run
        self._lock = threading.Lock()

    def credentials(self, account: "_AccountRow") -> Account:
        token = self._tokens.get(account.sealed_token)
        if token is None:
            token = self._tokens[account.sealed_token] = crypto.unseal(
                account.sealed_token, keys=crypto.KeyRing.of(self.settings))
        return account.to_publisher(token)

    def limit(self, account_id: str, until: datetime) -> None:
        with self._lock:
            self._limits[account_id] = max(until, self._limits.get(account_id, until))

    def limited_until(self, account_id: str, now: datetime) -> _Limit | None:
        with self._lock:
            until = self._limits.get(account_id)
        if until is None or until <= now:
            return None
        return _Limit(until, f"deferred without a request: the platform rate limited this "
                      f"account in this run until {until.isoformat(timespec='seconds')}")


@dataclass(frozen=True)
class _AccountRow:
    id: str
    platform: str
    external_id: str
    display_name: str | None
    status: str
    sealed_token: str = field(repr=False)
    token_expires_at: datetime | None = None
    meta: dict = field(default_factory=dict)  # social_accounts.auth_meta
    refreshable: bool = False  # a refresh token is stored

    def to_publisher(self, token: str) -> Account:
        return Account(self.id, self.platform, self.external_id, self.display_name, token,
                       self.meta)


def _unreachable(exc: DBAPIError) -> bool:
    """The database went away (connection refused or lost, server gone), not a bug in a query."""
    code = (getattr(exc.orig, "args", None) or (None,))[0]
    return exc.connection_invalidated or code in CONNECTION_LOST or (
        isinstance(exc, OperationalError) and "unable to open database" in str(exc.orig))


def _failure(exc: Exception, message: str | None = None, note: str | None = None) -> Failure:
    message = message or getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    return Failure(message=f"{message} [{note}]" if note else message,
                   http_status=getattr(exc, "http_status", None),
                   error_code=getattr(exc, "error_code", None))
