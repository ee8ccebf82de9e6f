"""What a worker run does with each class of the error taxonomy, and what it reports."""
from __future__ import annotations

import json
import logging
from datetime import timedelta

from sqlalchemy import select

from app import logs
from app.models import PublishAttempt, SocialAccount, WorkerRun
from worker.cycle import MAX_DEFERRALS, Worker
from worker.publishers.base import AuthError, PermanentError, RateLimitedError, RetryableError
from worker.publishers.sandbox import SandboxPublisher

from conftest import T0, add_due_posts, make_tenant
from test_queue import Scripted, attempts_of, schedule_rows


def run(db, publisher, now=T0, **settings):
    configured = db.settings.__class__(**{**db.settings.__dict__, **settings})
    return Worker(configured, db.sessions, {"sandbox": publisher}, clock=lambda: now).run()


def account_status(db, account_id):
    with db.sessions() as session:
        return session.get(SocialAccount, account_id).status


def test_an_auth_error_fails_at_once_and_marks_the_account_for_reconnection(db, tenant):
    first, second = add_due_posts(db, tenant, 2, run_at=T0)
    publisher = Scripted(AuthError("token expired", http_status=401, error_code="190"))
    summary = run(db, publisher, concurrency=1)
    assert (summary.failed, summary.published, summary.retried) == (2, 0, 0)
    assert publisher.calls == 1          # the second post never reached the platform
    assert account_status(db, tenant.account_id) == "needs_reconnect"
    a, b = schedule_rows(db, [first, second])
    assert (a["status"], a["attempts"], a["post_status"]) == ("failed", 1, "failed")
    assert "Reconnect the sandbox account" in a["error_message"]
    assert "needs to be reconnected" in b["error_message"]
    attempt = attempts_of(db, first)[0]
    assert attempt["outcome"] == "failed"
    with db.sessions() as session:
        codes = session.execute(select(PublishAttempt.http_status, PublishAttempt.error_code)
                                .order_by(PublishAttempt.id)).all()
    assert codes[0] == (401, "190")
    assert codes[1] == (None, "needs_reconnect")


def test_a_rate_limit_defers_to_the_reset_time_without_spending_an_attempt(db, tenant):
    (sid,) = add_due_posts(db, tenant, 1, run_at=T0)
    reset = T0 + timedelta(minutes=15)
    publisher = Scripted(RateLimitedError("429 too many", retry_at=reset, http_status=429))
    summary = run(db, publisher)
    assert summary.deferred == 1
    row = schedule_rows(db, [sid])[0]
    assert (row["status"], row["attempts"], row["run_at"]) == ("pending", 0, reset)
    assert row["lock_token"] is None and row["post_status"] == "pending"
    assert [(a["attempt"], a["outcome"]) for a in attempts_of(db, sid)] == [(1, "deferred")]

    assert run(db, publisher, now=reset - timedelta(seconds=1)).claimed == 0
    assert run(db, publisher, now=reset).published == 1
    row = schedule_rows(db, [sid])[0]
    assert (row["status"], row["attempts"]) == ("done", 1)


def test_a_rate_limit_without_a_reset_time_waits_a_minute(db, tenant):
    (sid,) = add_due_posts(db, tenant, 1, run_at=T0)
    run(db, Scripted(RateLimitedError("429")))
    assert schedule_rows(db, [sid])[0]["run_at"] == T0 + timedelta(minutes=1)


def test_deferrals_are_bounded(db, tenant):
    (sid,) = add_due_posts(db, tenant, 1, run_at=T0)
    now = T0
    for _ in range(MAX_DEFERRALS):
        assert run(db, Scripted(RateLimitedError("429")), now=now).deferred == 1
        now += timedelta(minutes=1)
    assert run(db, Scripted(RateLimitedError("429")), now=now).failed == 1
    row = schedule_rows(db, [sid])[0]
    assert (row["status"], row["post_status"]) == ("failed", "failed")
    assert f"after {MAX_DEFERRALS} deferrals" in row["error_message"]


def test_a_permanent_error_fails_at_once_with_the_platforms_message(db, tenant):
    (sid,) = add_due_posts(db, tenant, 1, run_at=T0)
    publisher = Scripted(PermanentError("duplicate content", http_status=403, error_code="187"))
    assert run(db, publisher).failed == 1
    row = schedule_rows(db, [sid])[0]
    assert (row["status"], row["attempts"], row["error_message"]) == ("failed", 1, "duplicate content")
    assert account_status(db, tenant.account_id) == "active"


def test_an_unexpected_exception_is_retried_and_does_not_stop_the_other_posts(db, tenant):
    first, second = add_due_posts(db, tenant, 2, run_at=T0)
    summary = run(db, Scripted(ValueError("bug in a publisher")), concurrency=1)
    assert (summary.retried, summary.published) == (1, 1)
    a, b = schedule_rows(db, [first, second])
    assert (a["status"], a["last_error"]) == ("pending", "ValueError: bug in a publisher")
    assert b["status"] == "done"


def test_a_platform_without_a_publisher_fails_with_a_clear_message(db, tenant):
    (sid,) = add_due_posts(db, tenant, 1, run_at=T0)
    configured = db.settings
    summary = Worker(configured, db.sessions, {}, clock=lambda: T0).run()
    assert summary.failed == 1
    assert "no publisher for platform 'sandbox'" in schedule_rows(db, [sid])[0]["error_message"]


def test_the_sandbox_markers_reach_each_error_class(db):
    tenant = make_tenant(db)
    add_due_posts(db, tenant, 1, run_at=T0, content="ok")
    add_due_posts(db, tenant, 1, run_at=T0, content="#sandbox-retry")
    add_due_posts(db, tenant, 1, run_at=T0, content="#sandbox-fail")
    add_due_posts(db, tenant, 1, run_at=T0, content="#sandbox-ratelimit")
    summary = run(db, SandboxPublisher())
    assert (summary.published, summary.retried, summary.failed, summary.deferred) == (1, 1, 1, 1)
    other = make_tenant(db, name="Other")
    add_due_posts(db, other, 1, run_at=T0, content="#sandbox-auth")
    assert run(db, SandboxPublisher()).failed == 1
    assert account_status(db, other.account_id) == "needs_reconnect"


def test_each_run_writes_a_worker_runs_row_and_one_json_summary_line(db, tenant, capsys):
    add_due_posts(db, tenant, 3, run_at=T0)
    add_due_posts(db, tenant, 1, run_at=T0, content="x #sandbox-retry")
    logs.configure()
    try:
        summary = run(db, SandboxPublisher())
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    runs = [line for line in lines if line.get("event") == "worker_run"]
    assert len(runs) == 1
    assert {k: runs[0][k] for k in ("claimed", "published", "retried", "failed", "deferred",
                                    "recovered", "worker_id")} == {
        "claimed": 4, "published": 3, "retried": 1, "failed": 0, "deferred": 0, "recovered": 0,
        "worker_id": "test-worker"}
    assert runs[0]["seconds"] == summary.seconds
    posts = [line for line in lines if line.get("event") == "post"]
    assert sorted(p["outcome"] for p in posts) == ["published"] * 3 + ["retried"]
    assert all("secret-token-value" not in json.dumps(line) for line in lines)
    with db.sessions() as session:
        (row,) = session.scalars(select(WorkerRun)).all()
    assert (row.claimed, row.published, row.retried, row.failed, row.finished_at) == (
        4, 3, 1, 0, T0)


def test_a_run_with_nothing_due_claims_nothing_and_still_reports(db, tenant):
    add_due_posts(db, tenant, 1, run_at=T0 + timedelta(hours=1))
    summary = run(db, Scripted())
    assert (summary.claimed, summary.published) == (0, 0)
    with db.sessions() as session:
        assert len(session.scalars(select(WorkerRun)).all()) == 1


def test_retryable_errors_use_the_configured_backoff(db, tenant):
    (sid,) = add_due_posts(db, tenant, 1, run_at=T0)
    run(db, Scripted(RetryableError("503")), retry_backoff=5)
    assert schedule_rows(db, [sid])[0]["run_at"] == T0 + timedelta(seconds=5)
