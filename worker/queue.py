"""The SQL of the queue: recover, claim, and the fenced outcome writes. The only module that
writes post_schedule's lock columns.

Every function runs one short transaction, takes `now` from its caller (an injectable clock),
and retries deadlocks and lock-wait timeouts (MySQL 1213/1205, PostgreSQL 40P01/40001/55P03)
a few times before giving up.
Outcome writes match on `lock_token`: a worker whose claim was recovered and re-claimed
elsewhere changes nothing, because its token no longer matches.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, case, func, insert, select, tuple_, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from app.db import new_id, rowcount
from app.models import PostDetail, PostSchedule, PublishAttempt, WorkerRun
from app.queue.locked import LockedTable
from app.queue.tx import LockConflict, in_transaction  # noqa: F401  (re-exported: the queue's API)
from app.services.metrics import schedule_collection
from app.services.webhooks import post_events
from app.statuses import RETRYABLE, Outcome, PostStatus, QueueStatus
from worker.retry import may_try_again

RECOVER_LIMIT = 500
POSTS = LockedTable(PostSchedule.__table__)  # the shared claim/recover/release, on post_schedule


@dataclass(frozen=True)
class Claimed:
    """A row this worker owns until it records an outcome, proven by `lock_token`."""

    schedule_id: int
    post_detail_id: str
    lock_token: str
    attempt: int        # this attempt's number, 1-based, already counted
    max_attempts: int
    run_at: datetime
    deferrals: int = 0  # rate-limit deferrals so far, which spent no attempt
    claimed_at: datetime | None = None
    deferred_since: datetime | None = None  # run_at before the first deferral
    # An earlier attempt's outcome is unknown (it started then): look before posting again.
    unknown_since: datetime | None = None
    draft_id: str | None = None             # e.g. an Instagram container an attempt made


@dataclass(frozen=True)
class Failure:
    message: str | None
    http_status: int | None = None
    error_code: str | None = None


# -- the queue's steps --------------------------------------------------------------------

def recover_stale(sessions: sessionmaker[Session], now: datetime, lock_timeout: float) -> int:
    """Put back rows whose worker has held them past the lock timeout; return how many.

    The read locks what it reads (SKIP LOCKED), so overlapping runs recover disjoint rows
    and none writes on what it saw without holding it. The attempt that was in flight is
    recorded `unknown`: it may or may not have reached the platform. A row that was on its
    last attempt fails instead of going round again.
    """
    cutoff = now - timedelta(seconds=lock_timeout)

    def work(conn: Connection) -> int:
        rows = POSTS.stale(conn, cutoff, RECOVER_LIMIT, (
            PostSchedule.id, PostSchedule.post_detail_id, PostSchedule.attempts,
            PostSchedule.max_attempts))
        if not rows:
            return 0
        lost = "the worker stopped answering during this attempt; it was recovered after the lock timeout"
        retry = [r.id for r in rows if may_try_again(r.attempts, r.max_attempts)]
        spent = [r for r in rows if not may_try_again(r.attempts, r.max_attempts)]
        if retry:
            conn.execute(update(PostSchedule).where(PostSchedule.id.in_(retry)).ordered_values(
                _remember_unknown(), (PostSchedule.status, QueueStatus.PENDING), (PostSchedule.locked_at, None),
                (PostSchedule.worker_id, None), (PostSchedule.lock_token, None),
                (PostSchedule.last_error, lost), (PostSchedule.updated_at, now)))
        if spent:
            message = (f"{lost}, and it was the last attempt: check the platform for the post, "
                       "then retry it if it is not there")
            conn.execute(update(PostSchedule).where(PostSchedule.id.in_([r.id for r in spent]))
                            .ordered_values(_remember_unknown(), (PostSchedule.status, QueueStatus.FAILED),
                                            (PostSchedule.last_error, message),
                                            (PostSchedule.updated_at, now)))
            conn.execute(update(PostDetail)
                            .where(PostDetail.id.in_([r.post_detail_id for r in spent]))
                            .values(status=PostStatus.FAILED, error_message=message, updated_at=now))
            post_events(conn, "post.failed", [r.post_detail_id for r in spent], now)
        conn.execute(update(PublishAttempt).where(
            PublishAttempt.post_schedule_id.in_([r.id for r in rows]),
            PublishAttempt.outcome.is_(None)).values(
            outcome=Outcome.UNKNOWN, finished_at=now, error_code="lock_timeout", error_message=lost))
        return len(rows)

    return in_transaction(sessions, work)


def _remember_unknown():
    """unknown_since keeps the earliest unknown attempt's start (the claim's locked_at). It comes
    first in the SET list: MySQL reads later assignments' columns after earlier ones changed."""
    return (PostSchedule.unknown_since,
            func.coalesce(PostSchedule.unknown_since, PostSchedule.locked_at))


CLAIMED_COLUMNS = (PostSchedule.id, PostSchedule.post_detail_id, PostSchedule.attempts,
                   PostSchedule.max_attempts, PostSchedule.run_at, PostSchedule.deferrals,
                   PostSchedule.deferred_since, PostSchedule.unknown_since,
                   PostSchedule.platform_draft_id)


def due_query(now: datetime, batch: int) -> Select:
    """The claim's locking read, in the order of ix_post_schedule_due so no sort is needed;
    it reads what the claim returns, so no second read is needed either."""
    return POSTS.due(now, batch, CLAIMED_COLUMNS)


def claim_due(sessions: sessionmaker[Session], now: datetime, batch: int,
              worker_id: str) -> list[Claimed]:
    """Claim up to `batch` due rows for this worker, committed before anything is published.

    The SELECT walks ix_post_schedule_due in order (status, run_at, id) and skips rows other
    workers hold; the UPDATE then marks them by primary key and counts the attempt, so a crash
    after this point still spends it. One in-flight `publish_attempts` row per claim.
    """
    token = uuid.uuid4().hex

    def work(conn: Connection) -> list[Claimed]:
        rows = POSTS.claim(conn, now, batch, worker_id, token, CLAIMED_COLUMNS)
        if not rows:
            return []
        # The rows are locked since the read: their attempt is the one read, plus this one.
        conn.execute(insert(PublishAttempt), [
            {"post_schedule_id": r.id, "attempt": r.attempts + 1, "worker_id": worker_id,
             "started_at": now} for r in rows])
        return [Claimed(r.id, r.post_detail_id, token, r.attempts + 1, r.max_attempts, r.run_at,
                        r.deferrals, now, r.deferred_since, r.unknown_since, r.platform_draft_id)
                for r in rows]

    return in_transaction(sessions, work)


@dataclass(frozen=True)
class Published:
    """A post the platform took: the claim, the platform's id, a note for the attempt record."""
    job: Claimed
    platform_post_id: str
    note: Failure | None = None


def mark_published(sessions: sessionmaker[Session], job: Claimed, platform_post_id: str,
                   now: datetime, note: Failure | None = None) -> bool:
    """Both rows say published, or neither does. False when this worker no longer owns the row.
    `note` goes on the attempt (e.g. it was found on the platform, not posted again)."""
    return job.schedule_id in mark_published_many(sessions, [Published(job, platform_post_id, note)],
                                                   now)


def mark_published_many(sessions: sessionmaker[Session], published: list[Published],
                        now: datetime) -> set[int]:
    """mark_published for many posts in one transaction, set-based: the fenced UPDATE matches
    only the rows still ours under their claim's lock_token, and only those rows' post_details
    and attempts are written, with their post.published events and collect_metrics jobs.
    Returns the schedule ids written."""
    if not published:
        return set()
    by_token: dict[str, list[int]] = {}
    for item in published:
        by_token.setdefault(item.job.lock_token, []).append(item.job.schedule_id)

    def work(conn: Connection) -> set[int]:
        ours = _release_done(conn, by_token, now)
        mine = [item for item in published if item.job.schedule_id in ours]
        if mine:
            _finish_published(conn, mine, now)
            post_events(conn, "post.published", [i.job.post_detail_id for i in mine], now)
            schedule_collection(conn, [i.job.post_detail_id for i in mine], now)
        return ours

    return in_transaction(sessions, work)


def _release_done(conn: Connection, by_token: dict[str, list[int]], now: datetime) -> set[int]:
    """The fenced write of mark_published_many: the ids (of those given, by claim token) that
    were still ours and are now done."""
    s, ours = PostSchedule, set()
    for token, ids in by_token.items():
        conn.execute(update(s.__table__).where(
            s.id.in_(ids), s.lock_token == token, s.status == QueueStatus.PROCESSING).values(
            status=QueueStatus.DONE, locked_at=None, last_error=None, platform_draft_id=None,
            unknown_since=None, updated_at=now))
        # A finished row keeps its lock_token, so these are exactly the rows just released.
        ours |= set(conn.scalars(select(s.id).where(
            s.id.in_(ids), s.lock_token == token, s.status == QueueStatus.DONE)))
    return ours


def _finish_published(conn: Connection, mine: list[Published], now: datetime) -> None:
    """post_details and the attempt rows of posts whose schedule rows were just released:
    one statement each for the whole batch (attempts with a note get theirs row by row)."""
    d, a = PostDetail.__table__, PublishAttempt.__table__
    conn.execute(update(d).where(d.c.id.in_([i.job.post_detail_id for i in mine])).values(
        status=PostStatus.PUBLISHED, published_at=now, error_message=None, updated_at=now,
        platform_post_id=case({i.job.post_detail_id: i.platform_post_id for i in mine},
                              value=d.c.id)))
    plain = [(i.job.schedule_id, i.job.attempt) for i in mine if i.note is None]
    done = {"outcome": Outcome.PUBLISHED, "finished_at": now, "http_status": None}
    if plain:
        conn.execute(update(a).where(tuple_(a.c.post_schedule_id, a.c.attempt).in_(plain),
                                        a.c.outcome.is_(None))
                        .values(error_code=None, error_message=None, **done))
    for item in mine:
        if item.note is None:
            continue
        conn.execute(update(a).where(
            a.c.post_schedule_id == item.job.schedule_id, a.c.attempt == item.job.attempt,
            a.c.outcome.is_(None)).values(error_code=item.note.error_code,
                                          error_message=item.note.message, **done))


def schedule_retry(sessions: sessionmaker[Session], job: Claimed, failure: Failure,
                   now: datetime, run_at: datetime, maybe_published: bool = False) -> bool:
    """Back to pending, due again at `run_at` (the retry policy's backoff). `maybe_published`:
    the request may have gone through (no answer), so the next attempt looks first."""

    def work(conn: Connection) -> bool:
        if not _release(conn, job, now, status=QueueStatus.PENDING, run_at=run_at,
                        last_error=failure.message, **_unknown(job, maybe_published)):
            return False
        _record_attempt(conn, job, now, Outcome.RETRY, failure)
        return True

    return in_transaction(sessions, work)


def mark_failed(sessions: sessionmaker[Session], job: Claimed, failure: Failure, now: datetime,
                status: QueueStatus = QueueStatus.FAILED, maybe_published: bool = False) -> bool:
    """Failed (or `missed`) for good, with the reason on both rows. `maybe_published`: a retry
    by hand looks for the post on the platform first."""

    def work(conn: Connection) -> bool:
        if not _release(conn, job, now, status=status, last_error=failure.message,
                        **_unknown(job, maybe_published)):
            return False
        _finish_post(conn, job, now, status=PostStatus(status), error_message=failure.message)
        _record_attempt(conn, job, now, Outcome.FAILED, failure)
        post_events(conn, f"post.{status}", [job.post_detail_id], now)
        return True

    return in_transaction(sessions, work)


def _unknown(job: Claimed, maybe_published: bool) -> dict:
    """The request may have reached the platform: remember since when, so the next attempt looks."""
    return {"unknown_since": job.unknown_since or job.claimed_at} if maybe_published else {}


def defer(sessions: sessionmaker[Session], job: Claimed, until: datetime, failure: Failure,
          now: datetime) -> bool:
    """Due again at `until` (a platform's rate-limit reset), giving back the attempt it counted."""

    def work(conn: Connection) -> bool:
        if not _release(conn, job, now, status=QueueStatus.PENDING, run_at=until,
                        attempts=PostSchedule.attempts - 1, deferrals=PostSchedule.deferrals + 1,
                        deferred_since=job.deferred_since or job.run_at,
                        last_error=failure.message):
            return False
        _record_attempt(conn, job, now, Outcome.DEFERRED, failure)
        return True

    return in_transaction(sessions, work)


def hold_for_reconnect(sessions: sessionmaker[Session], job: Claimed, failure: Failure,
                       now: datetime) -> bool:
    """`waiting` until the account is reconnected, giving back the attempt it counted."""

    def work(conn: Connection) -> bool:
        if not _release(conn, job, now, status=QueueStatus.WAITING, attempts=PostSchedule.attempts - 1,
                        last_error=failure.message):
            return False
        _record_attempt(conn, job, now, Outcome.DEFERRED, failure)
        return True

    return in_transaction(sessions, work)


def extend_locks(sessions: sessionmaker[Session], held: list[Claimed],
                 now: datetime) -> set[tuple[int, str]]:
    """The heartbeat: move `locked_at` to `now` on the rows still ours under their claim's
    lock_token, set-based; return the (id, lock_token) pairs extended. A pair missing from the
    answer was recovered (and maybe claimed again) by another worker: it is no longer ours."""
    if not held:
        return set()
    s, pairs = PostSchedule, [(job.schedule_id, job.lock_token) for job in held]

    def work(conn: Connection) -> set[tuple[int, str]]:
        ours = {(r.id, r.lock_token) for r in conn.execute(
            select(s.id, s.lock_token).where(tuple_(s.id, s.lock_token).in_(pairs),
                                             s.status == QueueStatus.PROCESSING)
            .order_by(s.id).with_for_update())}
        if ours:
            conn.execute(update(s.__table__).where(s.id.in_([i for i, _ in ours]))
                         .values(locked_at=now))
        return ours

    return in_transaction(sessions, work)


def release_unsent(sessions: sessionmaker[Session], jobs: list[Claimed], failure: Failure,
                   now: datetime) -> set[int]:
    """Rows for which no request was sent go back to `pending`, due as they were, with their
    attempt given back and the reason on the attempt (`deferred`); set-based and fenced.
    Returns the schedule ids released (those still ours)."""
    if not jobs:
        return set()
    s, a = PostSchedule, PublishAttempt.__table__
    pairs = [(job.schedule_id, job.lock_token) for job in jobs]

    def work(conn: Connection) -> set[int]:
        ours = set(conn.scalars(select(s.id).where(tuple_(s.id, s.lock_token).in_(pairs),
                                                   s.status == QueueStatus.PROCESSING)
                                .order_by(s.id).with_for_update()))
        if not ours:
            return ours
        conn.execute(update(s.__table__).where(s.id.in_(sorted(ours))).values(
            status=QueueStatus.PENDING, locked_at=None, worker_id=None, lock_token=None,
            attempts=s.attempts - 1, last_error=failure.message, updated_at=now))
        conn.execute(update(a).where(
            tuple_(a.c.post_schedule_id, a.c.attempt).in_(
                [(j.schedule_id, j.attempt) for j in jobs if j.schedule_id in ours]),
            a.c.outcome.is_(None)).values(
            outcome=Outcome.DEFERRED, finished_at=now, http_status=None,
            error_code=failure.error_code, error_message=failure.message))
        return ours

    return in_transaction(sessions, work)


def save_draft(sessions: sessionmaker[Session], job: Claimed, draft_id: str | None,
               now: datetime) -> bool:
    """Remember (or forget) what this attempt made on the platform, while the row is ours."""
    return in_transaction(sessions, lambda conn: _keep(conn, job, now,
                                                          platform_draft_id=draft_id))


def looked_up(sessions: sessionmaker[Session], job: Claimed, now: datetime) -> bool:
    """The platform was searched after an unknown attempt and the post is not there."""
    return in_transaction(sessions, lambda conn: _keep(conn, job, now, unknown_since=None))


def _keep(conn: Connection, job: Claimed, now: datetime, **values) -> bool:
    """A fenced write that leaves the row claimed."""
    return conn.execute(update(PostSchedule).where(
        PostSchedule.id == job.schedule_id, PostSchedule.lock_token == job.lock_token,
        PostSchedule.status == QueueStatus.PROCESSING).values(updated_at=now, **values)).rowcount == 1


# -- an account that must be reconnected --------------------------------------------------

def _posts_of(account_id: str):
    return select(PostDetail.id).where(PostDetail.social_account_id == account_id)


def hold_account_posts(conn: Connection | Session, account_id: str, now: datetime,
                       reason: str) -> int:
    """Every pending post of the account waits (inside the caller's transaction)."""
    return rowcount(conn.execute(update(PostSchedule).where(
        PostSchedule.status == QueueStatus.PENDING, PostSchedule.post_detail_id.in_(_posts_of(account_id)))
        .values(status=QueueStatus.WAITING, last_error=reason, updated_at=now)))


def release_account_posts(conn: Connection | Session, account_id: str, now: datetime) -> int:
    """The account's waiting posts are pending again, each at its own run_at (inside the
    caller's transaction). The worker marks one overdue past SCHEDULER_MISSED_AFTER `missed`."""
    return rowcount(conn.execute(update(PostSchedule).where(
        PostSchedule.status == QueueStatus.WAITING, PostSchedule.post_detail_id.in_(_posts_of(account_id)))
        .values(status=QueueStatus.PENDING, last_error=None, updated_at=now)))


def _release(conn: Connection, job: Claimed, now: datetime, **values) -> bool:
    """The fenced write: it matches only while the row is still ours under this claim."""
    return POSTS.release(conn, job.schedule_id, job.lock_token, now, **values)


def _finish_post(conn: Connection, job: Claimed, now: datetime, **values) -> None:
    conn.execute(update(PostDetail).where(PostDetail.id == job.post_detail_id)
                    .values(updated_at=now, **values))


def _record_attempt(conn: Connection, job: Claimed, now: datetime, outcome: Outcome,
                    failure: Failure | None = None) -> None:
    failure = failure or Failure(message=None)
    conn.execute(update(PublishAttempt).where(
        PublishAttempt.post_schedule_id == job.schedule_id,
        PublishAttempt.attempt == job.attempt, PublishAttempt.outcome.is_(None)).values(
        outcome=outcome, finished_at=now, http_status=failure.http_status,
        error_code=failure.error_code, error_message=failure.message))


# -- operator actions and run bookkeeping -------------------------------------------------

def requeue_failed(sessions: sessionmaker[Session], schedule_id: int, now: datetime) -> bool:
    """failed (or missed) -> pending, attempts reset, due now. False if the row is not failed."""
    return in_transaction(sessions, lambda conn: requeue(conn, schedule_id, now) in RETRYABLE)


def requeue(conn: Connection, schedule_id: int | None, now: datetime) -> str | None:
    """requeue_failed inside the caller's transaction: the status the row had (locked while
    read; None if there is no row). It was put back only if that status is in RETRYABLE."""
    row = conn.execute(select(PostSchedule.post_detail_id, PostSchedule.status)
                       .where(PostSchedule.id == schedule_id).with_for_update()).first()
    if row is None or row.status not in RETRYABLE:
        return None if row is None else row.status
    # unknown_since stays: a post whose last attempt was lost is looked for before reposting.
    conn.execute(update(PostSchedule).where(PostSchedule.id == schedule_id).values(
        status=QueueStatus.PENDING, run_at=now, attempts=0, deferrals=0, deferred_since=None,
        platform_draft_id=None, lock_token=None, locked_at=None, worker_id=None,
        last_error=None, updated_at=now))
    conn.execute(update(PostDetail).where(PostDetail.id == row.post_detail_id).values(
        status=PostStatus.PENDING, error_message=None, updated_at=now))
    return row.status


def count_by_status(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as conn:
        rows = conn.execute(select(PostSchedule.status, func.count())
                               .group_by(PostSchedule.status)).all()
    return {status: count for status, count in rows}


def start_run(sessions: sessionmaker[Session], worker_id: str, now: datetime) -> int:
    def work(conn: Connection) -> int:
        return new_id(conn.execute(insert(WorkerRun).values(worker_id=worker_id, started_at=now)))

    return in_transaction(sessions, work)


def finish_run(sessions: sessionmaker[Session], run_id: int, now: datetime, **counts: int) -> None:
    in_transaction(sessions, lambda conn: conn.execute(
        update(WorkerRun).where(WorkerRun.id == run_id).values(finished_at=now, **counts)))
