"""The queue's promises, on SQLite and on a real MariaDB: one owner per row, retries with
backoff, recovery after the lock timeout, fenced outcomes, atomic records, an indexed claim."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from freezegun import freeze_time
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from app.models import PostDetail, PostSchedule
from app.queue import tx
from worker import queue
from worker.cycle import Worker
from worker.publishers.base import PublishResult, RetryableError
from worker.queue import Failure, LockConflict

from conftest import T0, add_due_posts

ROOT = Path(__file__).resolve().parent.parent


def schedule_rows(db, ids=None):
    """Both rows of each post, typed by the models (aware UTC datetimes on both databases)."""
    s, d = PostSchedule, PostDetail
    query = (select(s.id, s.status, s.attempts, s.run_at, s.lock_token, s.locked_at, s.worker_id,
                    s.last_error, d.status.label("post_status"), d.error_message,
                    d.platform_post_id, d.published_at)
             .join(d, d.id == s.post_detail_id).order_by(s.id))
    if ids is not None:
        query = query.where(s.id.in_(ids))
    with db.sessions() as session:
        return [row._asdict() for row in session.execute(query)]


def attempts_of(db, schedule_id):
    return db.rows("SELECT attempt, outcome, worker_id, error_message FROM publish_attempts "
                   "WHERE post_schedule_id = :id ORDER BY attempt, id", id=schedule_id)


class Scripted:
    """A sandbox-platform publisher that follows a script: an exception to raise, or success."""

    platform = "sandbox"

    def __init__(self, *script):
        self.script = list(script)
        self.calls = 0

    def publish(self, post, account):
        self.calls += 1
        step = self.script.pop(0) if self.script else None
        if isinstance(step, Exception):
            raise step
        return PublishResult(f"id-{post.schedule_id}-{self.calls}")


# -- claim exclusivity: real OS processes ----------------------------------------------------

def test_four_trigger_processes_publish_2000_posts_exactly_once(db, tenant):
    """Four `python worker_trigger.py` processes at once over 2,000 due rows: each row is
    claimed by exactly one of them, once, and published on its first attempt."""
    due = datetime.now(timezone.utc) - timedelta(minutes=1)
    ids = add_due_posts(db, tenant, 2000, run_at=due)
    env = {**os.environ, "DATABASE_URL": db.url}
    started = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "worker_trigger.py"], cwd=ROOT,
                              env={**env, "SCHEDULER_WORKER_ID": f"proc-{n}"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in range(4)]
    outputs = [p.communicate(timeout=240) for p in procs]
    elapsed = time.monotonic() - started
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err

    rows = schedule_rows(db)
    assert len(rows) == 2000
    assert {(r["status"], r["attempts"], r["post_status"]) for r in rows} == {("done", 1, "published")}
    assert len({r["platform_post_id"] for r in rows}) == 2000
    per_row = db.rows("SELECT post_schedule_id, COUNT(*) AS n, MIN(outcome) AS outcome "
                      "FROM publish_attempts GROUP BY post_schedule_id")
    assert len(per_row) == len(ids)
    assert {(r["n"], r["outcome"]) for r in per_row} == {(1, "published")}
    # The runs really overlapped: more than one process published, and their summaries add up.
    summaries = [json.loads(line) for out, err in outputs for line in (out + err).splitlines()
                 if '"worker_run"' in line]
    assert len(summaries) == 4
    assert sum(s["published"] for s in summaries) == 2000
    assert sum(1 for s in summaries if s["published"]) >= 2
    by_worker = db.rows("SELECT worker_id, COUNT(*) AS n FROM publish_attempts GROUP BY worker_id")
    assert sum(r["n"] for r in by_worker) == 2000
    print(f"\n{db.kind}: 4 processes drained 2,000 posts in {elapsed:.1f} s "
          f"({', '.join(str(s['published']) for s in summaries)})")


def test_skip_locked_claims_around_a_row_another_transaction_holds(server_db, tenant):
    ids = add_due_posts(server_db, tenant, 3, run_at=T0)
    with server_db.engine.connect() as holder:
        holder.execute(text("SELECT id FROM post_schedule WHERE id = :id FOR UPDATE"), {"id": ids[0]})
        started = time.monotonic()
        claimed = queue.claim_due(server_db.sessions, T0, 10, "w1")
        assert time.monotonic() - started < 2  # it skipped the locked row instead of waiting
        holder.rollback()
    assert [c.schedule_id for c in claimed] == ids[1:]
    assert queue.claim_due(server_db.sessions, T0, 10, "w2")[0].schedule_id == ids[0]


def test_claim_takes_due_rows_oldest_first_and_commits_before_publishing(db, tenant):
    late = add_due_posts(db, tenant, 1, run_at=T0 + timedelta(seconds=5))
    early = add_due_posts(db, tenant, 2, run_at=T0 - timedelta(seconds=5))
    future = add_due_posts(db, tenant, 1, run_at=T0 + timedelta(minutes=5))
    seen = {}

    class Peek(Scripted):
        def publish(self, post, account):
            # A separate connection sees the claim: it was committed before this call.
            seen[post.schedule_id] = db.rows(
                "SELECT status, lock_token FROM post_schedule WHERE id = :id",
                id=post.schedule_id)[0]
            return super().publish(post, account)

    claimed = queue.claim_due(db.sessions, T0 + timedelta(seconds=10), 10, "w1")
    assert [c.schedule_id for c in claimed] == early + late
    assert {c.attempt for c in claimed} == {1}
    assert len({c.lock_token for c in claimed}) == 1
    assert schedule_rows(db, future)[0]["status"] == "pending"
    # Put them back and let a worker claim and publish them, peeking from outside meanwhile.
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE post_schedule SET status='pending', attempts=0, lock_token=NULL"))
        conn.execute(text("DELETE FROM publish_attempts"))
    worker = Worker(db.settings, db.sessions, {"sandbox": Peek()}, clock=lambda: T0 + timedelta(seconds=10))
    assert worker.run().published == 3
    assert {v["status"] for v in seen.values()} == {"processing"}
    assert all(v["lock_token"] for v in seen.values())


# -- retry with backoff ------------------------------------------------------------------------

def test_failing_twice_then_succeeding_publishes_on_attempt_3_after_the_backoff(db, tenant):
    (sid,) = add_due_posts(db, tenant, 1, run_at=T0)
    publisher = Scripted(RetryableError("timeout"), RetryableError("502 from the platform"))
    settings = db.settings.__class__(**{**db.settings.__dict__, "retry_backoff": 60})

    def run():
        return Worker(settings, db.sessions, {"sandbox": publisher}).run()

    with freeze_time(T0) as frozen:
        assert run().retried == 1
        row = schedule_rows(db, [sid])[0]
        assert (row["status"], row["attempts"], row["post_status"]) == ("pending", 1, "pending")
        assert row["run_at"] == T0 + timedelta(seconds=60)          # backoff x 2^0
        assert row["last_error"] == "timeout"

        frozen.tick(timedelta(seconds=59))
        assert run().claimed == 0                                     # not due yet
        frozen.tick(timedelta(seconds=1))
        assert run().retried == 1
        row = schedule_rows(db, [sid])[0]
        assert row["run_at"] == T0 + timedelta(seconds=60 + 120)    # backoff x 2^1

        frozen.tick(timedelta(seconds=119))
        assert run().claimed == 0
        frozen.tick(timedelta(seconds=1))
        assert run().published == 1
    row = schedule_rows(db, [sid])[0]
    assert (row["status"], row["attempts"], row["post_status"]) == ("done", 3, "published")
    assert row["platform_post_id"] == f"id-{sid}-3"
    assert row["published_at"] == T0 + timedelta(seconds=180)
    assert row["lock_token"] and row["locked_at"] is None
    assert [(a["attempt"], a["outcome"]) for a in attempts_of(db, sid)] == [
        (1, "retry"), (2, "retry"), (3, "published")]


def test_failing_three_times_fails_with_the_message_on_both_rows(db, tenant):
    (sid,) = add_due_posts(db, tenant, 1, run_at=T0)
    publisher = Scripted(*[RetryableError(f"timeout #{n}") for n in (1, 2, 3)])
    with freeze_time(T0) as frozen:
        for _ in range(3):
            Worker(db.settings, db.sessions, {"sandbox": publisher}).run()
            frozen.tick(timedelta(hours=1))
        assert Worker(db.settings, db.sessions, {"sandbox": publisher}).run().claimed == 0
    row = schedule_rows(db, [sid])[0]
    assert (row["status"], row["attempts"], row["post_status"]) == ("failed", 3, "failed")
    assert row["last_error"] == row["error_message"] == "timeout #3"
    assert publisher.calls == 3
    assert [(a["attempt"], a["outcome"]) for a in attempts_of(db, sid)] == [
        (1, "retry"), (2, "retry"), (3, "failed")]


def test_retry_of_a_failed_post_makes_it_due_again_with_attempts_reset(db, tenant):
    (sid,) = add_due_posts(db, tenant, 1, run_at=T0)
    job = queue.claim_due(db.sessions, T0, 1, "w1")[0]
    assert queue.mark_failed(db.sessions, job, Failure("rejected"), T0)
    assert not queue.requeue_failed(db.sessions, sid + 1000, T0)
    later = T0 + timedelta(hours=2)
    assert queue.requeue_failed(db.sessions, sid, later)
    row = schedule_rows(db, [sid])[0]
    assert (row["status"], row["attempts"], row["run_at"], row["post_status"]) == (
        "pending", 0, later, "pending")
    assert row["error_message"] is None and row["last_error"] is None
    assert not queue.requeue_failed(db.sessions, sid, later)  # pending now: nothing to retry
    assert queue.claim_due(db.sessions, later, 1, "w2")[0].attempt == 1


# -- recovery ----------------------------------------------------------------------------------

def test_recovery_takes_back_a_lock_older_than_the_timeout_and_no_younger(db, tenant):
    old, young = add_due_posts(db, tenant, 2, run_at=T0)
    queue.claim_due(db.sessions, T0, 1, "dead-worker")
    queue.claim_due(db.sessions, T0 + timedelta(minutes=1), 1, "busy-worker")
    now = T0 + timedelta(minutes=10, seconds=1)

    assert queue.recover_stale(db.sessions, now, lock_timeout=600) == 1
    o, y = schedule_rows(db, [old, young])
    assert (o["status"], o["lock_token"], o["locked_at"], o["worker_id"]) == ("pending", None, None, None)
    assert o["attempts"] == 1 and "recovered" in o["last_error"]
    assert [(a["attempt"], a["outcome"]) for a in attempts_of(db, old)] == [(1, "unknown")]
    assert (y["status"], y["worker_id"]) == ("processing", "busy-worker")   # locked 9 min ago
    assert [(a["attempt"], a["outcome"]) for a in attempts_of(db, young)] == [(1, None)]

    again = queue.claim_due(db.sessions, now, 5, "next-worker")
    assert [(c.schedule_id, c.attempt) for c in again] == [(old, 2)]


def test_recovering_the_last_attempt_fails_the_post_instead_of_posting_it_again(db, tenant):
    (sid,) = add_due_posts(db, tenant, 1, run_at=T0)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE post_schedule SET attempts = 2"))
    assert queue.claim_due(db.sessions, T0, 1, "dead-worker")[0].attempt == 3
    assert queue.recover_stale(db.sessions, T0 + timedelta(minutes=11), 600) == 1
    row = schedule_rows(db, [sid])[0]
    assert (row["status"], row["post_status"]) == ("failed", "failed")
    assert "last attempt" in row["error_message"]
    assert attempts_of(db, sid)[-1]["outcome"] == "unknown"


def test_a_worker_run_recovers_before_it_claims(db, tenant):
    (sid,) = add_due_posts(db, tenant, 1, run_at=T0)
    queue.claim_due(db.sessions, T0, 1, "dead-worker")
    later = T0 + timedelta(minutes=15)
    summary = Worker(db.settings, db.sessions, {"sandbox": Scripted()}, clock=lambda: later).run()
    assert (summary.recovered, summary.claimed, summary.published) == (1, 1, 1)
    assert [(a["attempt"], a["outcome"]) for a in attempts_of(db, sid)] == [
        (1, "unknown"), (2, "published")]


# -- fencing -----------------------------------------------------------------------------------

@pytest.mark.parametrize("late", ["published", "retry", "failed", "deferred"])
def test_a_recovered_workers_late_outcome_changes_nothing(db, tenant, late):
    (sid,) = add_due_posts(db, tenant, 1, run_at=T0)
    a = queue.claim_due(db.sessions, T0, 1, "worker-a")[0]
    now = T0 + timedelta(minutes=11)
    assert queue.recover_stale(db.sessions, now, 600) == 1
    b = queue.claim_due(db.sessions, now, 1, "worker-b")[0]
    assert b.lock_token != a.lock_token and b.attempt == 2

    def a_reports():
        return {
            "published": lambda: queue.mark_published(db.sessions, a, "from-a", now),
            "retry": lambda: queue.schedule_retry(db.sessions, a, Failure("a: timeout"), now,
                                                  now + timedelta(seconds=60)),
            "failed": lambda: queue.mark_failed(db.sessions, a, Failure("a: rejected"), now),
            "deferred": lambda: queue.defer(db.sessions, a, now + timedelta(hours=1),
                                            Failure("a: 429"), now),
        }[late]()

    before = schedule_rows(db, [sid])
    assert a_reports() is False            # while B holds the row
    assert schedule_rows(db, [sid]) == before
    assert queue.mark_published(db.sessions, b, "from-b", now)
    after = schedule_rows(db, [sid])
    assert a_reports() is False            # and after B has finished
    assert schedule_rows(db, [sid]) == after
    row = after[0]
    assert (row["status"], row["post_status"], row["platform_post_id"], row["worker_id"]) == (
        "done", "published", "from-b", "worker-b")
    assert [(x["attempt"], x["outcome"]) for x in attempts_of(db, sid)] == [
        (1, "unknown"), (2, "published")]


def test_published_in_one_batch_writes_only_the_rows_still_ours(db, tenant):
    """mark_published_many over claims of two tokens, one row of which was recovered and
    re-claimed by another worker meanwhile: only the rows still ours change, each with its id."""
    first, second, third = add_due_posts(db, tenant, 3, run_at=T0)
    a1, a2 = queue.claim_due(db.sessions, T0, 2, "worker-a")      # one claim, one token
    now = T0 + timedelta(minutes=11)
    queue.recover_stale(db.sessions, now, 600)                      # both back to pending
    b1, b2 = queue.claim_due(db.sessions, now, 2, "worker-b")      # B holds first and second
    (c3,) = queue.claim_due(db.sessions, now, 1, "worker-b")       # a second claim of B's
    assert {b1.schedule_id, b2.schedule_id, c3.schedule_id} == {first, second, third}
    assert b1.lock_token != c3.lock_token
    stale = queue.Published(a1, "from-a")
    written = queue.mark_published_many(db.sessions, [
        stale, queue.Published(b1, "p-b1"), queue.Published(c3, "p-c3", Failure("found it", None,
                                                                                "found_existing"))],
        now)
    assert written == {b1.schedule_id, c3.schedule_id}
    rows = {r["id"]: r for r in schedule_rows(db)}
    assert (rows[b1.schedule_id]["status"], rows[b1.schedule_id]["platform_post_id"]) == ("done", "p-b1")
    assert (rows[c3.schedule_id]["status"], rows[c3.schedule_id]["platform_post_id"]) == ("done", "p-c3")
    assert rows[b2.schedule_id]["status"] == "processing"               # not in the batch
    assert rows[b2.schedule_id]["post_status"] == "pending"
    assert attempts_of(db, c3.schedule_id)[-1]["outcome"] == "published"
    assert attempts_of(db, c3.schedule_id)[-1]["error_message"] == "found it"
    assert [x["outcome"] for x in attempts_of(db, b2.schedule_id)] == ["unknown", None]
    assert queue.mark_published_many(db.sessions, [], now) == set()


# -- atomicity ---------------------------------------------------------------------------------

def test_an_error_between_the_two_writes_of_mark_published_leaves_both_rows_as_they_were(
        db, tenant, monkeypatch):
    (sid,) = add_due_posts(db, tenant, 1, run_at=T0)
    job = queue.claim_due(db.sessions, T0, 1, "w1")[0]
    before = schedule_rows(db, [sid])
    released = []
    real_release = queue._release_done

    def release_then_note(*args, **kwargs):
        released.append(real_release(*args, **kwargs))
        return released[-1]

    def crash(*args, **kwargs):
        raise RuntimeError("the process died here")

    monkeypatch.setattr(queue, "_release_done", release_then_note)
    monkeypatch.setattr(queue, "_finish_published", crash)
    with pytest.raises(RuntimeError):
        queue.mark_published(db.sessions, job, "p-1", T0 + timedelta(seconds=1))
    assert released == [{sid}]  # the schedule row had been written when it failed
    assert schedule_rows(db, [sid]) == before
    assert before[0]["status"] == "processing" and before[0]["post_status"] == "pending"
    assert attempts_of(db, sid)[0]["outcome"] is None

    monkeypatch.undo()
    assert queue.mark_published(db.sessions, job, "p-1", T0 + timedelta(seconds=2))
    assert schedule_rows(db, [sid])[0]["post_status"] == "published"


# -- the missed window and --loop ----------------------------------------------------------------

def test_a_post_overdue_beyond_the_missed_window_is_missed_not_published(db, tenant):
    stale, fresh = add_due_posts(db, tenant, 2, run_at=T0)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE post_schedule SET run_at = :t WHERE id = :id"),
                     {"t": (T0 - timedelta(hours=49)).replace(tzinfo=None), "id": stale})
    publisher = Scripted()
    summary = Worker(db.settings, db.sessions, {"sandbox": publisher}, clock=lambda: T0).run()
    assert (summary.missed, summary.published, publisher.calls) == (1, 1, 1)
    s, f = schedule_rows(db, [stale, fresh])
    assert (s["status"], s["post_status"]) == ("missed", "missed")
    assert "SCHEDULER_MISSED_AFTER" in s["error_message"]
    assert f["post_status"] == "published"


def test_loop_mode_publishes_a_post_within_about_a_second_of_its_run_at(db, tenant):
    settings = db.settings.__class__(**{**db.settings.__dict__, "loop_budget": 4.0,
                                        "poll_interval": 0.2})
    worker = Worker(settings, db.sessions, {"sandbox": Scripted()})
    result = {}
    thread = threading.Thread(target=lambda: result.update(summary=worker.run(loop=True)))
    thread.start()
    time.sleep(0.5)                                   # the run is already polling
    run_at = datetime.now(timezone.utc) + timedelta(seconds=1)
    (sid,) = add_due_posts(db, tenant, 1, run_at=run_at)
    thread.join(timeout=30)
    assert result["summary"].published == 1
    row = schedule_rows(db, [sid])[0]
    lateness = (row["published_at"] - row["run_at"]).total_seconds()
    assert 0 <= lateness < 1.0
    assert result["summary"].seconds >= 4.0          # it kept polling for its whole budget


# -- transactions and the index ----------------------------------------------------------------

class FakeDriverError(Exception):
    pass


class FakePgError(Exception):
    """What psycopg raises: the SQLSTATE in `.sqlstate`, no numeric code in args."""

    def __init__(self, sqlstate):
        super().__init__(f"ERROR: {sqlstate}")
        self.sqlstate = sqlstate


def lock_error(code):
    return OperationalError("UPDATE post_schedule ...", {}, FakeDriverError(code, "Deadlock found"))


@pytest.mark.parametrize("sqlstate", ["40P01", "40001", "55P03"])
def test_postgresql_deadlock_serialization_and_lock_not_available_are_retried(sqlite, sqlstate):
    calls = []

    def conflict_once(connection):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("UPDATE post_schedule ...", {}, FakePgError(sqlstate))
        return "done"

    assert queue.in_transaction(sqlite.sessions, conflict_once) == "done"
    assert len(calls) == 2
    with pytest.raises(OperationalError):  # another SQLSTATE (here: undefined column) is not
        queue.in_transaction(sqlite.sessions, lambda c: (_ for _ in ()).throw(
            OperationalError("SELECT 1", {}, FakePgError("42703"))))


def test_a_real_postgresql_deadlock_is_seen_as_a_lock_conflict(postgresql, tenant):
    a, b = add_due_posts(postgresql, tenant, 2, run_at=T0)
    with postgresql.engine.connect() as one, postgresql.engine.connect() as two:
        one.execute(text("UPDATE post_schedule SET attempts = 1 WHERE id = :id"), {"id": a})
        two.execute(text("UPDATE post_schedule SET attempts = 1 WHERE id = :id"), {"id": b})
        two.execute(text("SET deadlock_timeout = '50ms'"))
        failures = []

        def cross():
            try:
                one.execute(text("UPDATE post_schedule SET attempts = 2 WHERE id = :id"), {"id": b})
            except OperationalError as exc:
                failures.append(exc)
                one.rollback()
        thread = threading.Thread(target=cross)
        thread.start()
        time.sleep(0.3)
        try:
            two.execute(text("UPDATE post_schedule SET attempts = 2 WHERE id = :id"), {"id": a})
        except OperationalError as exc:
            failures.append(exc)
            two.rollback()
        thread.join(10)
        one.rollback()
        two.rollback()
    assert len(failures) == 1 and tx._is_lock_conflict(failures[0]), failures


def test_deadlocks_and_lock_waits_are_retried_then_reported_cleanly(db, monkeypatch):
    monkeypatch.setattr(tx.time, "sleep", lambda s: None)
    calls = []

    def flaky(session):
        calls.append(1)
        if len(calls) <= 2:
            raise lock_error(1213 if len(calls) == 1 else 1205)
        return "ok"

    assert queue.in_transaction(db.sessions, flaky) == "ok"
    assert len(calls) == 3

    def always(session):
        raise lock_error(1213)

    with pytest.raises(LockConflict, match="gave up after 6 lock conflicts"):
        queue.in_transaction(db.sessions, always)

    def other(session):
        raise OperationalError("SELECT 1", {}, FakeDriverError(2013, "Lost connection"))

    with pytest.raises(OperationalError):  # not a lock conflict: not retried
        queue.in_transaction(db.sessions, other)


def test_the_due_query_is_an_index_range_scan_without_filesort(mariadb, tenant):
    add_due_posts(mariadb, tenant, 3000, run_at=T0 - timedelta(days=1))
    with mariadb.engine.begin() as conn:
        conn.execute(text("UPDATE post_schedule SET status = 'done' WHERE id % 10 <> 0"))
        conn.execute(text("ANALYZE TABLE post_schedule"))
    sql = str(queue.due_query(T0, 20).compile(mariadb.engine, compile_kwargs={"literal_binds": True}))
    assert "FOR UPDATE SKIP LOCKED" in sql
    plan = mariadb.rows("EXPLAIN " + sql)
    assert len(plan) == 1, plan
    step = plan[0]
    assert step["key"] == "ix_post_schedule_due", plan
    assert step["type"] == "range", plan
    assert "filesort" not in (step["Extra"] or ""), plan


def test_the_due_query_is_an_index_scan_without_a_sort_on_postgresql(postgresql, tenant):
    add_due_posts(postgresql, tenant, 3000, run_at=T0 - timedelta(days=1))
    with postgresql.engine.begin() as conn:
        conn.execute(text("UPDATE post_schedule SET status = 'done' WHERE id % 10 <> 0"))
    with postgresql.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE post_schedule"))
    sql = str(queue.due_query(T0, 20).compile(postgresql.engine, compile_kwargs={"literal_binds": True}))
    assert "FOR UPDATE SKIP LOCKED" in sql
    plan = json.dumps(postgresql.scalar("EXPLAIN (FORMAT JSON) " + sql))
    nodes = re.findall(r'"Node Type": "([^"]+)"', plan)
    assert "Index Scan" in nodes or "Index Only Scan" in nodes, plan
    assert '"Index Name": "ix_post_schedule_due"' in plan, plan
    assert "Sort" not in nodes and "Seq Scan" not in nodes, plan


def test_the_postgresql_session_runs_read_committed_in_utc(postgresql, tenant):
    assert postgresql.scalar("SHOW transaction_isolation") == "read committed"
    assert postgresql.scalar("SHOW timezone") == "UTC"
    ids = add_due_posts(postgresql, tenant, 1, run_at=T0)
    # The column holds naive UTC: read back as text on the server, it is the UTC wall time.
    assert postgresql.scalar("SELECT run_at::text FROM post_schedule WHERE id = :i", i=ids[0]) \
        == "2026-12-01 09:00:00"
    assert postgresql.scalar("SELECT now()::text").endswith("+00")


def test_the_session_runs_read_committed_in_utc(mariadb):
    assert mariadb.scalar("SELECT @@session.tx_isolation") == "READ-COMMITTED"
    assert mariadb.scalar("SELECT @@session.time_zone") == "+00:00"
    with mariadb.sessions() as session:
        assert session.scalar(text("SELECT @@session.tx_isolation")) == "READ-COMMITTED"
    assert PostSchedule.__table__.c.run_at.type.load_dialect_impl(mariadb.engine.dialect).fsp == 6
