"""What a worker run does with each class of the error taxonomy, and what it reports."""
from __future__ import annotations

import json
import logging

import pytest
from datetime import timedelta

from sqlalchemy import select

from app import logs
from app.models import PublishAttempt, SocialAccount, WorkerRun
from worker.cycle import Worker
from worker.retry import MAX_DEFERRALS
from app.errors import InvalidInput, NotFound
from app.services.accounts import reconnect_account
from worker.publishers.base import (
    AuthError, NotReadyError, PermanentError, RateLimitedError, RetryableError,
)
from worker.publishers.sandbox import SandboxPublisher

from conftest import T0, add_due_posts, make_tenant
from test_queue import Scripted, attempts_of, schedule_rows


def run(db, publisher, now=T0, **settings):
    configured = db.settings.__class__(**{**db.settings.__dict__, **settings})
    return Worker(configured, db.sessions, {"sandbox": publisher}, clock=lambda: now).run()


def account_status(db, account_id):
    with db.sessions() as session:
        return session.get(SocialAccount, account_id).status


def test_an_auth_error_fails_at_once_and_the_accounts_other_posts_wait(db, tenant):
    first, second = add_due_posts(db, tenant, 2, run_at=T0)
    later = add_due_posts(db, tenant, 1, run_at=T0 + timedelta(hours=1))[0]
    publisher = Scripted(AuthError("token expired", http_status=401, error_code="190"))
    summary = run(db, publisher, concurrency=1)
    # Both due posts are claimed in one batch; the second is held without reaching the platform.
    assert (summary.failed, summary.waiting, summary.claimed, summary.published) == (1, 1, 2, 0)
    assert publisher.calls == 1          # the second post never reached the platform
    assert account_status(db, tenant.account_id) == "needs_reconnect"
    a, b, c = schedule_rows(db, [first, second, later])
    assert (a["status"], a["attempts"], a["post_status"]) == ("failed", 1, "failed")
    assert "Reconnect the sandbox account" in a["error_message"]
    # The others wait, attempts untouched, visible as such; the post itself is still pending.
    assert (b["status"], b["attempts"], b["post_status"]) == ("waiting", 0, "pending")
    assert (c["status"], c["attempts"], c["post_status"]) == ("waiting", 0, "pending")
    assert "must be reconnected" in b["last_error"] and "must be reconnected" in c["last_error"]
    assert attempts_of(db, first)[0]["outcome"] == "failed"
    with db.sessions() as session:
        codes = session.execute(select(PublishAttempt.outcome, PublishAttempt.http_status,
                                       PublishAttempt.error_code)
                                .order_by(PublishAttempt.id)).all()
    assert codes == [("failed", 401, "190"), ("deferred", None, "needs_reconnect")]
    # A waiting post is never claimed, however late it gets (until the account is reconnected).
    assert run(db, Scripted(), now=T0 + timedelta(hours=2)).claimed == 0


def test_a_claimed_post_of_an_account_to_reconnect_waits_without_a_request(db, tenant):
    with db.sessions.begin() as session:
        session.get(SocialAccount, tenant.account_id).status = "needs_reconnect"
    (sid,) = add_due_posts(db, tenant, 1, run_at=T0)  # e.g. retried by hand before reconnecting
    publisher = Scripted()
    summary = run(db, publisher)
    assert (summary.waiting, publisher.calls) == (1, 0)
    row = schedule_rows(db, [sid])[0]
    assert (row["status"], row["attempts"], row["lock_token"]) == ("waiting", 0, None)
    attempt = attempts_of(db, sid)[0]
    assert attempt["outcome"] == "deferred" and "must be reconnected" in attempt["error_message"]
    with db.sessions() as session:
        run_row = session.execute(select(WorkerRun)).scalar_one()
    assert run_row.deferred == 1


def test_reconnecting_the_account_releases_its_waiting_posts(db, tenant):
    first, second = add_due_posts(db, tenant, 2, run_at=T0)
    run(db, Scripted(AuthError("token expired", http_status=401)), concurrency=1)
    account, released = reconnect_account(db.sessions, tenant.company_id, tenant.account_id,
                                          "a-new-token", T0 + timedelta(minutes=5))
    assert (account.status, released) == ("active", 1)
    assert schedule_rows(db, [second])[0]["status"] == "pending"
    summary = run(db, Scripted(), now=T0 + timedelta(minutes=5))
    assert summary.published == 1
    assert schedule_rows(db, [first])[0]["status"] == "failed"  # its own failure stays; retry by hand


def test_reconnect_checks_the_token_and_the_company(db, tenant):
    other = make_tenant(db, name="Other")
    with pytest.raises(NotFound):
        reconnect_account(db.sessions, other.company_id, tenant.account_id, "token", T0)
    with pytest.raises(InvalidInput, match="must not be empty"):
        reconnect_account(db.sessions, tenant.company_id, tenant.account_id, "  ", T0)


def test_a_post_released_after_its_missed_window_is_missed_not_sent(db, tenant):
    first, second = add_due_posts(db, tenant, 2, run_at=T0)
    run(db, Scripted(AuthError("token expired", http_status=401)), concurrency=1)
    days_later = T0 + timedelta(days=3)
    reconnect_account(db.sessions, tenant.company_id, tenant.account_id, "new", days_later)
    publisher = Scripted()
    assert run(db, publisher, now=days_later).missed == 1
    assert publisher.calls == 0
    assert schedule_rows(db, [second])[0]["status"] == "missed"


def test_a_rate_limit_defers_the_accounts_other_posts_without_a_request(db, tenant):
    ids = add_due_posts(db, tenant, 3, run_at=T0)
    other = make_tenant(db, name="Other")
    (elsewhere,) = add_due_posts(db, other, 1, run_at=T0)
    reset = T0 + timedelta(minutes=15)
    publisher = Scripted(RateLimitedError("429 too many", retry_at=reset, http_status=429))
    summary = run(db, publisher, concurrency=1)
    assert (summary.deferred, summary.published) == (3, 1)
    assert publisher.calls == 2           # the limited account's first post, and the other account's
    rows = schedule_rows(db, ids)
    assert {(r["status"], r["attempts"], r["run_at"]) for r in rows} == {("pending", 0, reset)}
    outcomes = [attempts_of(db, sid)[0] for sid in ids]
    assert [a["outcome"] for a in outcomes] == ["deferred"] * 3
    assert "without a request" in outcomes[1]["error_message"]
    assert schedule_rows(db, [elsewhere])[0]["status"] == "done"


def test_deferrals_stop_24_hours_after_the_posts_time(db, tenant):
    (sid,) = add_due_posts(db, tenant, 1, run_at=T0)
    run(db, Scripted(RateLimitedError("daily cap", retry_at=T0 + timedelta(hours=20))))
    assert schedule_rows(db, [sid])[0]["status"] == "pending"
    now = T0 + timedelta(hours=20)
    assert run(db, Scripted(RateLimitedError("daily cap again", retry_at=now + timedelta(hours=5))),
               now=now).failed == 1
    row = schedule_rows(db, [sid])[0]
    assert (row["status"], row["post_status"]) == ("failed", "failed")
    assert "more than 24 h after its time" in row["error_message"]


def test_not_ready_defers_only_that_post(db, tenant):
    first, second = add_due_posts(db, tenant, 2, run_at=T0)
    summary = run(db, Scripted(NotReadyError("still processing", retry_after=timedelta(minutes=1))),
                  concurrency=1)
    assert (summary.deferred, summary.published) == (1, 1)
    assert schedule_rows(db, [first])[0]["run_at"] == T0 + timedelta(minutes=1)


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
