"""The jobs table as a queue: enqueue (at most once per dedupe_key), claim, recover, and the
fenced outcomes done / retry / failed. The claim and the fencing are post_schedule's own
(app.queue.locked); only what a job carries differs."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Executable, insert, select, update
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.db import new_id
from app.models import Job
from app.queue.locked import LockedTable
from app.queue.tx import in_transaction
from app.statuses import JobStatus

JOBS = LockedTable(Job.__table__)
RECOVER_LIMIT = 100
CLAIMED_COLUMNS = (Job.id, Job.kind, Job.company_id, Job.payload, Job.attempts,
                   Job.max_attempts, Job.run_at)


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker owns until it records an outcome, proven by `lock_token`."""
    id: int
    kind: str
    company_id: str | None
    payload: dict
    lock_token: str
    attempt: int  # this attempt's number, 1-based, already counted
    max_attempts: int
    claimed_at: datetime


def enqueue(sessions: sessionmaker[Session], kind: str, payload: dict, run_at: datetime,
            now: datetime, dedupe_key: str | None = None, company_id: str | None = None,
            max_attempts: int = 3) -> int | None:
    """Add a job; its id, or None when a job with this dedupe_key already exists (whatever its
    status): the unique key, not a read before the write, decides who enqueues it."""
    if dedupe_key is not None and _exists(sessions, dedupe_key):
        return None  # the common case once a day's job is there: a read, no failed insert
    try:
        return in_transaction(sessions, lambda conn: insert_job(
            conn, kind, payload, run_at, now, dedupe_key, company_id, max_attempts))
    except IntegrityError:
        if dedupe_key is not None and _exists(sessions, dedupe_key):
            return None  # another worker enqueued it between our read and our insert
        raise


def _job_row(kind: str, payload: dict, run_at: datetime, now: datetime, dedupe_key: str | None,
             company_id: str | None, max_attempts: int) -> dict:
    return dict(kind=kind, payload=payload, run_at=run_at, dedupe_key=dedupe_key,
                company_id=company_id, max_attempts=max_attempts, status=JobStatus.PENDING,
                attempts=0, created_at=now, updated_at=now)


def insert_job(conn: Connection | Session, kind: str, payload: dict, run_at: datetime,
               now: datetime, dedupe_key: str | None = None, company_id: str | None = None,
               max_attempts: int = 3) -> int:
    """Add a job inside the caller's transaction (so it commits, or not, with what caused it)."""
    return new_id(conn.execute(insert(Job).values(**_job_row(
        kind, payload, run_at, now, dedupe_key, company_id, max_attempts))))


def insert_jobs(conn: Connection | Session, kind: str, jobs: list[tuple[dict, str | None]],
                run_at: datetime, now: datetime, max_attempts: int = 3) -> None:
    """Many jobs of one kind, (payload, company_id) each, in one multi-row INSERT inside the
    caller's transaction."""
    if jobs:
        conn.execute(insert(Job), [_job_row(kind, payload, run_at, now, None, company_id,
                                            max_attempts) for payload, company_id in jobs])


def insert_jobs_once(conn: Connection | Session, kind: str,
                     jobs: list[tuple[dict, str | None, datetime, str]], now: datetime,
                     max_attempts: int = 3) -> None:
    """Jobs of one kind, (payload, company_id, run_at, dedupe_key) each, in one multi-row INSERT
    inside the caller's transaction, skipping those whose dedupe_key exists: the caller's
    transaction goes on either way (ON DUPLICATE KEY UPDATE as a no-op / ON CONFLICT DO
    NOTHING). Keys are inserted
    in sorted order, so two such transactions wait for each other rather than deadlock."""
    if not jobs:
        return
    rows = [_job_row(kind, payload, run_at, now, key, company_id, max_attempts)
            for payload, company_id, run_at, key in sorted(jobs, key=lambda j: j[3])]
    dialect = (conn.connection() if isinstance(conn, Session) else conn).dialect.name
    statement: Executable
    if dialect in ("mysql", "mariadb"):  # a no-op update: unlike INSERT IGNORE, other errors stay errors
        upsert = mysql.insert(Job)
        statement = upsert.on_duplicate_key_update(dedupe_key=upsert.inserted.dedupe_key)
    elif dialect == "postgresql":
        statement = postgresql.insert(Job).on_conflict_do_nothing(index_elements=["dedupe_key"])
    else:
        statement = sqlite.insert(Job).on_conflict_do_nothing(index_elements=["dedupe_key"])
    conn.execute(statement, rows)


def _exists(sessions: sessionmaker[Session], dedupe_key: str) -> bool:
    with sessions() as session:
        return session.scalar(select(Job.id).where(Job.dedupe_key == dedupe_key)) is not None


def claim_jobs(sessions: sessionmaker[Session], now: datetime, batch: int,
               worker_id: str) -> list[ClaimedJob]:
    """Claim up to `batch` due jobs, committed before any of them runs."""
    token = uuid.uuid4().hex

    def work(conn: Connection) -> list[ClaimedJob]:
        rows = JOBS.claim(conn, now, batch, worker_id, token, CLAIMED_COLUMNS)
        return [ClaimedJob(r.id, r.kind, r.company_id, r.payload or {}, token, r.attempts + 1,
                           r.max_attempts, now) for r in rows]

    return in_transaction(sessions, work)


def finish_job(sessions: sessionmaker[Session], job: ClaimedJob, now: datetime) -> bool:
    """Done. False when this worker no longer owns the job (it was recovered meanwhile)."""
    return in_transaction(sessions, lambda conn: JOBS.release(
        conn, job.id, job.lock_token, now, status=JobStatus.DONE, last_error=None))


def retry_job(sessions: sessionmaker[Session], job: ClaimedJob, error: str, now: datetime,
              backoff: float, run_at: datetime | None = None) -> bool:
    """Pending again at `run_at` (default: after `backoff` x 2^(attempt-1) seconds), or failed
    when it was the last attempt."""
    if job.attempt >= job.max_attempts:
        return fail_job(sessions, job, f"{error} (attempt {job.attempt} of {job.max_attempts})", now)
    run_at = run_at or now + timedelta(seconds=backoff * 2 ** (job.attempt - 1))
    return in_transaction(sessions, lambda conn: JOBS.release(
        conn, job.id, job.lock_token, now, status=JobStatus.PENDING, run_at=run_at, last_error=error))


def defer_job(sessions: sessionmaker[Session], job: ClaimedJob, error: str, now: datetime,
              run_at: datetime) -> bool:
    """Pending again at `run_at`, the attempt given back: the platform said "not now" (a rate
    limit), which is no failure of the job. The caller bounds how long it keeps deferring."""
    return in_transaction(sessions, lambda conn: JOBS.release(
        conn, job.id, job.lock_token, now, status=JobStatus.PENDING, run_at=run_at,
        last_error=error, attempts=Job.attempts - 1))


def fail_job(sessions: sessionmaker[Session], job: ClaimedJob, error: str, now: datetime) -> bool:
    return in_transaction(sessions, lambda conn: JOBS.release(
        conn, job.id, job.lock_token, now, status=JobStatus.FAILED, last_error=error))


def recover_stale_jobs(sessions: sessionmaker[Session], now: datetime, lock_timeout: float) -> int:
    """Jobs held past the lock timeout go back to pending (their attempt was counted at claim),
    or fail when that was their last attempt. Returns how many."""
    cutoff = now - timedelta(seconds=lock_timeout)
    lost = "the worker stopped answering while running this job; recovered after the lock timeout"

    def work(conn: Connection) -> int:
        rows = JOBS.stale(conn, cutoff, RECOVER_LIMIT, (Job.id, Job.attempts, Job.max_attempts))
        again = [r.id for r in rows if r.attempts < r.max_attempts]
        spent = [r.id for r in rows if r.attempts >= r.max_attempts]
        for ids, status in ((again, JobStatus.PENDING), (spent, JobStatus.FAILED)):
            if ids:
                owner = {"worker_id": None, "lock_token": None} if status == JobStatus.PENDING else {}
                conn.execute(update(Job).where(Job.id.in_(ids)).values(
                    status=status, locked_at=None, last_error=lost, updated_at=now, **owner))
        return len(rows)

    return in_transaction(sessions, work)
