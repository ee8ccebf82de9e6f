"""Token refresh against the fake X token endpoint, which rotates refresh tokens and refuses a
spent one: the new pair is committed before it is used, concurrent workers (8 processes, on
MariaDB and PostgreSQL) make exactly one refresh request, a refusal or a lost answer ends in
needs_reconnect saying so (never a loop), an unrefreshable token is warned about 7 days ahead,
and an X post scheduled 3 hours ahead publishes after exactly one refresh."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from app import crypto
from app.models import Job, SocialAccount, WebhookDelivery
from app.oauth.base import ProviderContext
from app.oauth.refresh import fresh_token, refresh_ahead
from app.services.webhooks import create_webhook
from app.statuses import AccountStatus
from app.timeutil import utcnow
from conftest import ApiClient, add_due_posts, make_tenant
from tests.fakes.consent import authorize
from tests.fakes.oauth import oauth_settings
from worker.cycle import Worker
from worker.publishers.base import AuthError, RateLimitedError, RetryableError
from worker.publishers.http import HttpClient

ROOT = Path(__file__).resolve().parent.parent


def settings_for(db, fakes, **overrides):
    return replace(db.settings, **oauth_settings(fakes), **overrides)


def context(db, fakes, **overrides) -> ProviderContext:
    settings = settings_for(db, fakes, **overrides)
    return ProviderContext(settings, HttpClient.from_settings(settings), db.sessions, utcnow)


def x_account(db, fakes, expires_in: timedelta, refresh: bool = True, platform: str = "x",
              tenant=None) -> tuple[str, str]:
    """A connected X account of a new company whose token expires in `expires_in`; its id and
    the company's API key."""
    tenant = tenant or make_tenant(db, name="Refresh")
    access, refresh_token = fakes.x.give_tokens(int(expires_in.total_seconds()) or None)
    now = utcnow()
    with db.sessions.begin() as session:
        account = SocialAccount(
            company_id=tenant.company_id, platform=platform, external_id=fakes.x.user.id,
            display_name="@acme", access_token_encrypted=crypto.seal(access),
            refresh_token_encrypted=crypto.seal(refresh_token) if refresh else None,
            token_expires_at=now + expires_in, status=AccountStatus.ACTIVE,
            created_at=now, updated_at=now)
        session.add(account)
    return account.id, tenant.api_key


def account(db, account_id) -> SocialAccount:
    with db.sessions() as session:
        return session.get(SocialAccount, account_id)


def test_a_refresh_stores_the_new_pair_and_then_uses_it(db, fakes):
    account_id, _ = x_account(db, fakes, timedelta(minutes=2))
    old_refresh = crypto.unseal(account(db, account_id).refresh_token_encrypted)
    token = fresh_token(context(db, fakes), account_id)
    assert fakes.x.refreshes() == [old_refresh]
    row = account(db, account_id)
    assert crypto.unseal(row.access_token_encrypted) == token
    new_refresh = crypto.unseal(row.refresh_token_encrypted)
    assert new_refresh != old_refresh and not fakes.x.refresh_tokens[new_refresh].used
    assert row.token_expires_at > utcnow() + timedelta(hours=1, minutes=59)
    assert row.refreshed_at is not None and row.status == AccountStatus.ACTIVE
    assert fresh_token(context(db, fakes), account_id) == token  # fresh now: no second request
    assert len(fakes.x.refreshes()) == 1
    with db.sessions() as session:  # the next refresh is queued for the new token
        keys = set(session.scalars(select(Job.dedupe_key).where(Job.kind == "refresh_token")))
    assert f"refresh:{account_id}:{row.token_expires_at.isoformat()}" in keys


def test_a_refused_refresh_needs_reconnect_once_and_says_so(db, fakes):
    account_id, _ = x_account(db, fakes, timedelta(minutes=2))
    tenant_company = account(db, account_id).company_id
    create_webhook(db.sessions, tenant_company, "http://127.0.0.1:9/hook",
                   ["account.needs_reconnect"], utcnow(), allow_private=True)
    fakes.x.refresh_tokens.clear()  # revoked on X's side
    with pytest.raises(AuthError) as refused:
        fresh_token(context(db, fakes), account_id)
    assert "could not be refreshed" in refused.value.message
    assert "reconnect the account" in refused.value.message
    row = account(db, account_id)
    assert row.status == AccountStatus.NEEDS_RECONNECT and row.status_reason == refused.value.message
    with pytest.raises(AuthError):  # no loop: the next caller does not ask X again
        fresh_token(context(db, fakes), account_id)
    assert len(fakes.x.refreshes()) == 1
    with db.sessions() as session:
        events = list(session.scalars(select(WebhookDelivery.event)))
    assert events == ["account.needs_reconnect"]


def test_a_lost_answer_after_rotation_needs_reconnect_and_is_not_retried(db, fakes):
    account_id, _ = x_account(db, fakes, timedelta(minutes=2))
    fakes.x.fail_next("timeout", match="/2/oauth2/token", hang=2.0)  # X rotates, the answer is late
    ctx = context(db, fakes, http_read_timeout=0.5)
    with pytest.raises(AuthError) as lost:
        fresh_token(ctx, account_id)
    assert "may have replaced the refresh token before its answer was lost" in lost.value.message
    row = account(db, account_id)
    assert row.status == AccountStatus.NEEDS_RECONNECT and "answer was lost" in row.status_reason
    with pytest.raises(AuthError):
        fresh_token(ctx, account_id)
    assert len(fakes.x.refreshes()) == 1
    assert fakes.x.refresh_tokens[fakes.x.refreshes()[0]].used  # X did rotate it


@pytest.mark.parametrize("kind,error", [("retryable", RetryableError),
                                        ("rate_limited", RateLimitedError)])
def test_a_refresh_the_platform_could_not_answer_is_tried_again(sqlite, fakes, kind, error):
    account_id, _ = x_account(sqlite, fakes, timedelta(minutes=2))
    fakes.x.fail_next(kind, match="/2/oauth2/token")
    with pytest.raises(error) as failed:
        fresh_token(context(sqlite, fakes), account_id)
    assert not failed.value.maybe_published  # the post was not sent: nothing to look for
    assert account(sqlite, account_id).status == AccountStatus.ACTIVE
    fresh_token(context(sqlite, fakes), account_id)  # the refresh token was not spent
    assert len(fakes.x.refreshes()) == 2


def test_the_refresh_job_refreshes_ahead_and_skips_a_token_already_replaced(sqlite, fakes):
    account_id, _ = x_account(sqlite, fakes, timedelta(minutes=20))
    expires = account(sqlite, account_id).token_expires_at
    assert refresh_ahead(context(sqlite, fakes), account_id, expires).done == "refreshed"
    assert refresh_ahead(context(sqlite, fakes), account_id, expires).done == "fresh"
    assert len(fakes.x.refreshes()) == 1


def test_a_token_that_cannot_be_refreshed_is_warned_about_once(sqlite, fakes):
    """LinkedIn without programmatic refresh: account.token_expiring 7 days ahead, once; the
    dashboard shows it."""
    account_id, key = x_account(sqlite, fakes, timedelta(days=60), refresh=False,
                                platform="linkedin")
    row = account(sqlite, account_id)
    create_webhook(sqlite.sessions, row.company_id, "http://127.0.0.1:9/hook",
                   ["account.token_expiring"], utcnow(), allow_private=True)
    settings = settings_for(sqlite, fakes)
    with sqlite.sessions.begin() as session:  # what the connect stored: the warning's job
        from app.oauth.schedule import schedule_refresh
        schedule_refresh(session, session.get(SocialAccount, account_id), utcnow())
    with sqlite.sessions() as session:
        job = session.scalars(select(Job).where(Job.kind == "refresh_token")).one()
    assert job.run_at == row.token_expires_at - timedelta(days=7)
    with freeze_time(job.run_at + timedelta(seconds=1)):
        Worker(settings, sqlite.sessions, publishers={}).run()
        with sqlite.sessions() as session:
            assert session.get(Job, job.id).status == "done"
        first = refresh_ahead(context(sqlite, fakes), account_id, row.token_expires_at)
        assert (first.done, first.warned) == ("cannot_refresh", False)  # once, not twice
        client = ApiClient(replace(sqlite, settings=settings), key)
        page = client.client
        html = page.get("/dashboard").get_data(as_text=True)
        csrf = html.split('name="csrf" value="')[1].split('"')[0]
        page.post("/dashboard/login", data={"api_key": key, "csrf": csrf},
                  headers={"Origin": "http://localhost"})
        assert 'data-testid="expiring"' in page.get("/dashboard/accounts").get_data(as_text=True)
        client.close()
    with sqlite.sessions() as session:
        assert list(session.scalars(select(WebhookDelivery.event))) == ["account.token_expiring"]
    assert account(sqlite, account_id).expiring_notified_at is not None
    assert fakes.x.refreshes() == [] and fakes.linkedin.refreshes() == []


def test_an_x_post_three_hours_ahead_publishes_after_exactly_one_refresh(sqlite, fakes, tenant):
    """Issue 14's 'done when': connect X, schedule 3 h ahead, move the clock, it publishes."""
    settings = settings_for(sqlite, fakes)
    client = ApiClient(replace(sqlite, settings=settings), tenant.api_key)
    try:
        with freeze_time(utcnow()) as clock:
            started = client.post("/connect/x", json={}).get_json()
            location = authorize(started["authorizeUrl"])
            connected = client.get(location.split("scheduler.example.com")[1])
            assert connected.status_code == 201, connected.get_json()
            account_id = connected.get_json()["accounts"][0]["id"]
            first_token = crypto.unseal(account(sqlite, account_id).access_token_encrypted)
            post = client.post("/schedule-post", json={
                "socialAccountId": account_id, "content": "three hours later",
                "scheduledAt": (utcnow() + timedelta(hours=3)).isoformat()})
            assert post.status_code == 201, post.get_json()
            clock.tick(timedelta(hours=3, seconds=30))
            summary = Worker(settings, sqlite.sessions).run()
        assert summary.published == 1, summary
        assert len(fakes.x.refreshes()) == 1
        [tweet] = fakes.x.tweets
        assert tweet["text"] == "three hours later" and tweet["token"] != first_token
        assert fakes.x.issued[tweet["token"]].expires > fakes.x.issued[first_token].expires
        assert account(sqlite, account_id).status == AccountStatus.ACTIVE
    finally:
        client.close()


def test_a_refresh_refused_at_publish_time_holds_the_post_until_a_reconnect(sqlite, fakes):
    """The post is not failed for its account's token: it waits, as the account's other posts
    do, and a reconnect through the connect flow releases it, same account, same post."""
    account_id, key = x_account(sqlite, fakes, timedelta(minutes=1))
    tenant = type("T", (), {"company_id": account(sqlite, account_id).company_id,
                            "account_id": account_id})
    [schedule_id] = add_due_posts(sqlite, tenant, 1, run_at=utcnow() - timedelta(seconds=5))
    fakes.x.refresh_tokens.clear()
    settings = settings_for(sqlite, fakes)
    summary = Worker(settings, sqlite.sessions).run()
    assert (summary.waiting, summary.failed, summary.published) == (1, 0, 0)
    assert account(sqlite, account_id).status == AccountStatus.NEEDS_RECONNECT
    assert fakes.x.tweets == [] and len(fakes.x.refreshes()) == 1
    client = ApiClient(replace(sqlite, settings=settings), key)
    try:
        started = client.post("/connect/x", json={}).get_json()
        back = authorize(started["authorizeUrl"]).split("scheduler.example.com")[1]
        response = client.get(back)
        assert response.status_code == 200, response.get_json()  # reconnected, not created
        assert response.get_json()["accounts"][0]["id"] == account_id
    finally:
        client.close()
    assert sqlite.scalar("SELECT status FROM post_schedule WHERE id = :i", i=schedule_id) == "pending"
    assert Worker(settings, sqlite.sessions).run().published == 1
    assert len(fakes.x.tweets) == 1 and len(fakes.x.refreshes()) == 1


# -- concurrency: real worker processes --------------------------------------------------------

def test_eight_worker_processes_make_exactly_one_refresh(server_db, fakes):
    """8 `worker_trigger.py` processes, each with one post of the same X account due and its
    token expiring in a minute: one refreshes (slowly: 1 s at the token endpoint), the others
    wait on the row lock and use the new token."""
    account_id, _ = x_account(server_db, fakes, timedelta(minutes=1))
    tenant = type("T", (), {"company_id": account(server_db, account_id).company_id,
                            "account_id": account_id})
    add_due_posts(server_db, tenant, 8, run_at=utcnow() - timedelta(seconds=5), content="race")
    fakes.x.token_delay = 1.0
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")
           and k != "DATABASE_URL"}
    env.update({"DATABASE_URL": server_db.url, "SCHEDULER_BATCH_SIZE": "1",
                "SCHEDULER_CONCURRENCY": "1", **fakes.env(),
                "SCHEDULER_PUBLIC_URL": "https://scheduler.example.com"})
    procs = [subprocess.Popen([sys.executable, str(ROOT / "worker_trigger.py")], cwd=ROOT,
                              env={**env, "SCHEDULER_WORKER_ID": f"w{i}"}, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(8)]
    published = 0
    for proc in procs:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        runs = [json.loads(line) for line in err.splitlines() if '"worker_run"' in line]
        published += runs[0]["published"]
    assert len(fakes.x.refreshes()) == 1
    assert published == 8 and len(fakes.x.tweets) == 8
    row = account(server_db, account_id)
    assert row.status == AccountStatus.ACTIVE
    assert {t["token"] for t in fakes.x.tweets} == {crypto.unseal(row.access_token_encrypted)}
