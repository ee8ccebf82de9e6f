"""The jobs table as a queue: the claim post_schedule uses (SKIP LOCKED, fenced on
lock_token), the outcomes done / retry with backoff / failed, recovery of stale locks, the
dedupe key, and a worker run that gives jobs only what publishing leaves."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.models import Job, PostSchedule
from app.queue import jobs as job_queue
from app.queue.locked import LockedTable
from worker import jobs as worker_jobs
from worker import queue
from worker.cycle import Worker
from worker.publishers.base import PublishResult

from conftest import T0, add_due_posts


class Instant:
    """A sandbox publisher that always succeeds at once."""

    platform = "sandbox"

    def publish(self, post, account):
        return PublishResult(f"id-{post.schedule_id}")


def job_row(db, job_id):
    with db.sessions() as session:
        return session.get(Job, job_id)


def enqueue(db, kind="probe", run_at=T0, **kw):
    return job_queue.enqueue(db.sessions, kind, {"n": 1}, run_at=run_at, now=T0, **kw)


def test_the_claim_and_the_fencing_are_one_implementation_for_both_tables():
    assert isinstance(queue.POSTS, LockedTable) and isinstance(job_queue.JOBS, LockedTable)
    assert type(queue.POSTS) is type(job_queue.JOBS)
    assert queue.POSTS.table.name == "post_schedule" and job_queue.JOBS.table.name == "jobs"


def test_a_due_job_is_claimed_once_counted_and_not_claimed_again(db):
    job_id = enqueue(db)
    enqueue(db, run_at=T0 + timedelta(minutes=5))  # not due yet
    [job] = job_queue.claim_jobs(db.sessions, T0, 10, "w1")
    assert (job.id, job.attempt, job.payload) == (job_id, 1, {"n": 1})
    assert job_queue.claim_jobs(db.sessions, T0, 10, "w2") == []
    row = job_row(db, job_id)
    assert (row.status, row.worker_id, row.lock_token, row.attempts) == (
        "processing", "w1", job.lock_token, 1)


def test_skip_locked_claims_around_a_job_another_transaction_holds(mariadb):
    first, second = enqueue(mariadb), enqueue(mariadb, run_at=T0 + timedelta(seconds=1))
    with mariadb.engine.connect() as holder, holder.begin():
        held = holder.execute(job_queue.JOBS.due(T0, 1, (Job.id,))).scalar_one()
        assert held == first
        claimed = job_queue.claim_jobs(mariadb.sessions, T0 + timedelta(seconds=1), 10, "w2")
    assert [j.id for j in claimed] == [second]


def test_outcomes_are_fenced_on_the_lock_token(db):
    enqueue(db)
    [job] = job_queue.claim_jobs(db.sessions, T0, 1, "w1")
    assert job_queue.recover_stale_jobs(db.sessions, T0 + timedelta(seconds=601), 600) == 1
    [again] = job_queue.claim_jobs(db.sessions, T0 + timedelta(seconds=602), 1, "w2")
    late = T0 + timedelta(seconds=603)
    assert not job_queue.finish_job(db.sessions, job, late)  # the first owner's late outcome
    assert not job_queue.fail_job(db.sessions, job, "late", late)
    assert not job_queue.retry_job(db.sessions, job, "late", late, 60)
    row = job_row(db, job.id)
    assert (row.status, row.lock_token, row.attempts) == ("processing", again.lock_token, 2)
    assert job_queue.finish_job(db.sessions, again, late)
    assert job_row(db, job.id).status == "done"


def test_retry_backs_off_and_the_last_attempt_fails(db):
    job_id = enqueue(db, max_attempts=2)
    [job] = job_queue.claim_jobs(db.sessions, T0, 1, "w1")
    assert job_queue.retry_job(db.sessions, job, "boom", T0, backoff=60)
    row = job_row(db, job_id)
    assert (row.status, row.run_at, row.last_error, row.lock_token) == (
        "pending", T0 + timedelta(seconds=60), "boom", None)
    assert job_queue.claim_jobs(db.sessions, T0 + timedelta(seconds=59), 1, "w1") == []
    [job] = job_queue.claim_jobs(db.sessions, T0 + timedelta(seconds=60), 1, "w1")
    assert job.attempt == 2
    assert job_queue.retry_job(db.sessions, job, "boom again", T0 + timedelta(seconds=61), 60)
    row = job_row(db, job_id)
    assert row.status == "failed" and "boom again (attempt 2 of 2)" == row.last_error


def test_recovery_takes_back_a_stale_job_and_fails_one_on_its_last_attempt(db):
    again, spent = enqueue(db), enqueue(db, max_attempts=1)
    job_queue.claim_jobs(db.sessions, T0, 10, "w1")
    assert job_queue.recover_stale_jobs(db.sessions, T0 + timedelta(seconds=599), 600) == 0
    assert job_queue.recover_stale_jobs(db.sessions, T0 + timedelta(seconds=601), 600) == 2
    a, b = job_row(db, again), job_row(db, spent)
    assert (a.status, a.lock_token, a.attempts) == ("pending", None, 1)
    assert b.status == "failed" and "recovered after the lock timeout" in b.last_error


def test_a_dedupe_key_enqueues_one_job_however_many_ask_at_once(mariadb):
    results, barrier = [], threading.Barrier(8)

    def ask():
        barrier.wait()
        results.append(enqueue(mariadb, kind="prune", dedupe_key="prune:2026-12-01"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([r for r in results if r is not None]) == 1 and len(results) == 8
    assert mariadb.scalar("SELECT COUNT(*) FROM jobs") == 1


def test_a_worker_run_claims_publishing_first_and_jobs_take_what_is_left(db, tenant, monkeypatch):
    add_due_posts(db, tenant, 120)
    for _ in range(10):
        enqueue(db)
    seen = []

    def probe(ctx, job):  # what publishing had left unclaimed when this job started
        with ctx.sessions() as session:
            seen.append(session.scalar(select(func.count()).select_from(PostSchedule).where(
                PostSchedule.status == "pending")))

    monkeypatch.setitem(worker_jobs.HANDLERS, "probe", probe)
    settings = db.settings.__class__(**{**db.settings.__dict__, "concurrency": 4, "batch_size": 20})
    summary = Worker(settings, db.sessions, {"sandbox": Instant()}, clock=lambda: T0).run()
    assert summary.published == 120 and seen == [0] * 10
    assert summary.jobs == 11  # the ten probes and the day's prune
    assert db.scalar("SELECT COUNT(*) FROM jobs WHERE status = 'done'") == 11


def test_a_job_that_raises_is_retried_later_and_one_without_a_handler_fails(db, monkeypatch):
    flaky, unknown = enqueue(db), enqueue(db, kind="no_such_kind")

    def boom(ctx, job):
        raise RuntimeError("the thing was down")

    monkeypatch.setitem(worker_jobs.HANDLERS, "probe", boom)
    summary = Worker(db.settings, db.sessions, {}, clock=lambda: T0).run()
    assert summary.jobs_failed == 2
    f, u = job_row(db, flaky), job_row(db, unknown)
    assert (f.status, f.run_at, f.last_error) == (
        "pending", T0 + timedelta(seconds=worker_jobs.JOB_BACKOFF),
        "RuntimeError: the thing was down")
    assert u.status == "failed" and "no handler for job kind 'no_such_kind'" in u.last_error


@pytest.mark.parametrize("days, expected", [(90, 1), (0, 0)])
def test_each_run_enqueues_the_days_prune_unless_retention_is_off(db, days, expected):
    settings = db.settings.__class__(**{**db.settings.__dict__, "retention_days": days})
    for _ in range(3):
        Worker(settings, db.sessions, {}, clock=lambda: T0).run()
    assert db.scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'prune'") == expected
    Worker(settings, db.sessions, {}, clock=lambda: T0 + timedelta(days=1)).run()
    assert db.scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'prune'") == 2 * expected
