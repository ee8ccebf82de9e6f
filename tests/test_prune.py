"""Retention: `scheduler queue prune` and the daily prune job. Old history goes in batches of
bounded size; posts and each post's last attempt stay; a dry run changes nothing; two
workers on one day prune once."""
from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from click.testing import CliRunner
from freezegun import freeze_time
from sqlalchemy import event, insert

from app.cli import cli
from app.errors import InvalidInput
from app.models import IdempotencyKey, Job, OAuthState, PublishAttempt, WorkerRun
from app.services.retention import parse_duration, prune
from worker.cycle import Worker

from conftest import T0, add_due_posts

OLD = T0 - timedelta(days=91)
RECENT = T0 - timedelta(days=89)
WINDOW = timedelta(days=90)
TABLES = ("post_details", "post_schedule", "publish_attempts", "worker_runs",
          "idempotency_keys", "jobs", "oauth_states")


def counts(db) -> dict[str, int]:
    return {t: db.scalar(f"SELECT COUNT(*) FROM {t}") for t in TABLES}


def attempt(schedule_id, n, at, outcome="failed"):
    return {"post_schedule_id": schedule_id, "attempt": n, "worker_id": "w", "started_at": at,
            "finished_at": None if outcome is None else at + timedelta(seconds=1),
            "outcome": outcome}


def seed(db, tenant) -> dict:
    """History on both sides of the window; returns the ids of the attempts that must stay."""
    three, one, recent, in_flight = add_due_posts(db, tenant, 4, run_at=OLD)
    rows = [attempt(three, 1, OLD), attempt(three, 2, OLD), attempt(three, 3, OLD, "published"),
            attempt(one, 1, OLD, "published"),                 # its only attempt: kept
            attempt(recent, 1, OLD), attempt(recent, 2, RECENT, "published"),
            attempt(in_flight, 1, OLD), attempt(in_flight, 2, OLD, None)]  # in flight: kept
    job = {"kind": "probe", "payload": {}, "attempts": 1, "max_attempts": 3,
           "created_at": OLD, "run_at": OLD}
    with db.engine.begin() as conn:
        conn.execute(insert(PublishAttempt), rows)
        conn.execute(insert(WorkerRun), [{"worker_id": "w", "started_at": at, "finished_at": at}
                                         for at in (OLD, OLD, RECENT)])
        conn.execute(insert(IdempotencyKey), [
            {"company_id": tenant.company_id, "key_hash": f"{i:064d}", "request_hash": "h",
             "status_code": 201, "response_body": {}, "created_at": at}
            for i, at in enumerate((OLD, RECENT))])
        conn.execute(insert(Job), [
            {**job, "status": "done", "updated_at": OLD},
            {**job, "status": "failed", "updated_at": OLD},
            {**job, "status": "done", "updated_at": RECENT},
            {**job, "status": "pending", "updated_at": OLD},      # not finished: kept
            {**job, "status": "processing", "updated_at": OLD}])  # not finished: kept
        conn.execute(insert(OAuthState), [  # connect flows: expired 10 minutes after they began
            {"state_hash": f"{i:064d}", "company_id": tenant.company_id, "platform": "x",
             "extras": {}, "created_at": at, "expires_at": at + timedelta(minutes=10)}
            for i, at in enumerate((OLD, RECENT))])
    kept = db.rows("SELECT id FROM publish_attempts WHERE NOT (post_schedule_id = :a AND attempt "
                   "< 3) AND NOT (post_schedule_id = :b AND attempt = 1) AND NOT "
                   "(post_schedule_id = :c AND attempt = 1)", a=three, b=recent, c=in_flight)
    return {"attempts": sorted(r["id"] for r in kept)}


def test_prune_deletes_old_history_and_keeps_posts_and_each_posts_last_attempt(db, tenant):
    kept = seed(db, tenant)
    before = counts(db)
    report = prune(db.sessions, T0, WINDOW)
    assert (report.publish_attempts, report.worker_runs, report.idempotency_keys, report.jobs,
            report.oauth_states) == (4, 2, 1, 2, 1)
    after = counts(db)
    assert after == {**before, "publish_attempts": 4, "worker_runs": 1, "idempotency_keys": 1,
                     "jobs": 3, "oauth_states": 1}
    assert sorted(r["id"] for r in db.rows("SELECT id FROM publish_attempts")) == kept["attempts"]
    assert sorted(r["status"] for r in db.rows("SELECT status FROM jobs")) == [
        "done", "pending", "processing"]
    assert prune(db.sessions, T0, WINDOW).as_dict()["publish_attempts"] == 0  # nothing twice


def test_a_dry_run_counts_the_same_rows_and_changes_nothing(db, tenant):
    seed(db, tenant)
    before = counts(db)
    dry = prune(db.sessions, T0, WINDOW, dry_run=True)
    assert counts(db) == before and dry.batches == 0
    real = prune(db.sessions, T0, WINDOW)
    fields = ("publish_attempts", "worker_runs", "idempotency_keys", "jobs", "oauth_states")
    assert [getattr(dry, f) for f in fields] == [getattr(real, f) for f in fields]


def test_deletes_go_in_batches_each_its_own_short_transaction(db):
    with db.engine.begin() as conn:
        conn.execute(insert(WorkerRun), [{"worker_id": "w", "started_at": OLD} for _ in range(25)])
    deletes, commits = [], []
    listen = [(db.engine, "after_cursor_execute",
               lambda conn, cur, statement, *a: statement.lstrip().upper().startswith("DELETE")
               and deletes.append(cur.rowcount)),
              (db.engine, "commit", lambda conn: commits.append(len(deletes)))]
    for target, name, fn in listen:
        event.listen(target, name, fn)
    try:
        report = prune(db.sessions, T0, WINDOW, batch=10)
    finally:
        for target, name, fn in listen:
            event.remove(target, name, fn)
    assert deletes == [10, 10, 5] and report.worker_runs == 25 and report.batches == 3
    # one DELETE per committed transaction: commits seen after the 1st, 2nd and 3rd DELETE
    assert [1, 2, 3] == sorted(set(c for c in commits if c))[:3]
    assert db.scalar("SELECT COUNT(*) FROM worker_runs") == 0


@pytest.mark.parametrize("text, expected", [("90d", timedelta(days=90)), ("12h", timedelta(hours=12)),
                                            ("30m", timedelta(minutes=30)), (" 45s ", timedelta(seconds=45))])
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "90", "d", "0d", "-1d", "1.5d", "90 days", "1w"])
def test_a_bad_duration_says_what_is_expected(text):
    with pytest.raises(InvalidInput, match="positive duration such as 90d, 12h or 30m"):
        parse_duration(text)


@freeze_time(T0)
def test_the_command_line_prunes_and_reports(sqlite, tenant):
    seed(sqlite, tenant)
    env = {"DATABASE_URL": sqlite.url, "SCHEDULER_WORKER_ID": "cli"}
    dry = CliRunner().invoke(cli, ["--json", "queue", "prune", "--older-than", "90d",
                                   "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["publish_attempts"] == 4 and json.loads(dry.output)["dry_run"]
    assert counts(sqlite)["publish_attempts"] == 8
    done = CliRunner().invoke(cli, ["queue", "prune", "--older-than", "2160h"], env=env)
    assert done.exit_code == 0, done.output
    assert "deleted, older than" in done.output and "publish_attempts" in done.output
    assert counts(sqlite)["publish_attempts"] == 4
    bad = CliRunner().invoke(cli, ["queue", "prune", "--older-than", "ninety"], env=env)
    assert bad.exit_code == 6
    assert "--older-than must be a positive duration such as 90d" in bad.output


def test_two_workers_on_one_day_prune_once(db, tenant):
    seed(db, tenant)
    with db.engine.begin() as conn:  # the seeded posts are history, not due work
        conn.exec_driver_sql("UPDATE post_schedule SET status = 'done'")
    barrier, summaries = threading.Barrier(2), []

    def run(name):
        settings = db.settings.__class__(**{**db.settings.__dict__, "worker_id": name})
        barrier.wait()
        summaries.append(Worker(settings, db.sessions, {}, clock=lambda: T0).run())

    threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    [job] = db.rows("SELECT kind, status, attempts, dedupe_key FROM jobs WHERE kind = 'prune'")
    assert (job["status"], job["attempts"], job["dedupe_key"]) == ("done", 1, "prune:2026-12-01")
    assert sorted(s.jobs for s in summaries) == [0, 1]
    assert counts(db)["publish_attempts"] == 4 and counts(db)["worker_runs"] == 3
