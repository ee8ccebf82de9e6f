"""Bluesky, Mastodon and Threads beyond the outcomes every publisher shares (tests/test_publishers
.py): connecting Bluesky and Mastodon through `POST /connect/{platform}`, Bluesky's facets and
session refresh, Mastodon's idempotency key, Threads' container and publishing quota; each
through the worker against the fakes."""
from __future__ import annotations

import re
import time
from dataclasses import replace
from types import SimpleNamespace
from uuid import uuid4
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from click.testing import CliRunner

from app import crypto
from app.cli import cli
from app.models import OAuthApp, PostDetail, PostSchedule, PublishAttempt, SocialAccount
from app.services.accounts import add_account
from app.statuses import Platform
from conftest import T0, ApiClient, add_due_post
from tests.fakes.consent import authorize
from tests.fakes.oauth import oauth_settings
from worker.cycle import Worker
from worker.publishers.base import Account, PostToPublish

PASSWORD = "abcd-efgh-ijkl-mnop"  # the fake's app password for acme.bsky.social
DID = "did:plc:acme7x2k4q"


class Clock:
    def __init__(self):
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset


@pytest.fixture
def client(request, fakes, tenant):
    db = next(request.getfixturevalue(n) for n in ("sqlite", "db") if n in request.fixturenames)
    settings = replace(db.settings, **oauth_settings(fakes), http_read_timeout=0.5,
                       instagram_poll_interval=0.01, retry_backoff=60)
    api = ApiClient(replace(db, settings=settings), tenant.api_key)
    api.clock = Clock()
    yield api
    api.close()


def run(client):
    return Worker(client.db.settings, client.db.sessions, clock=client.clock).run()


def post(client, account_id: str, content: str) -> int:
    """A post due now; its schedule id."""
    return add_due_post(client.db, company_of(client, account_id), account_id, content,
                        client.clock())


def company_of(client, account_id: str) -> str:
    with client.db.sessions() as session:
        return session.get(SocialAccount, account_id).company_id


def state(client, schedule_id: int) -> dict:
    with client.db.sessions() as session:
        schedule = session.get(PostSchedule, schedule_id)
        detail = session.get(PostDetail, schedule.post_detail_id)
        account = session.get(SocialAccount, detail.social_account_id)
        attempts = session.scalars(select(PublishAttempt).where(
            PublishAttempt.post_schedule_id == schedule_id).order_by(PublishAttempt.id)).all()
        return {"status": schedule.status, "attempts": schedule.attempts,
                "run_at": schedule.run_at, "draft": schedule.platform_draft_id,
                "post_id": detail.platform_post_id, "error": detail.error_message,
                "account_status": account.status,
                "made": [(a.outcome, a.error_code, a.error_message) for a in attempts]}


def account_count(client, platform: str) -> int:
    with client.db.sessions() as session:
        return session.scalar(select(func.count()).select_from(SocialAccount)
                              .where(SocialAccount.platform == platform))


# -- Bluesky: connect ----------------------------------------------------------------------

def connect_bluesky(client, identifier="acme.bsky.social", password=PASSWORD):
    return client.post("/connect/bluesky", json={"identifier": identifier,
                                                "appPassword": password})


def test_bluesky_connects_with_an_app_password_and_keeps_the_session(sqlite, client, fakes):
    response = connect_bluesky(client)
    assert response.status_code == 200, response.get_json()
    (account,) = response.get_json()["accounts"]
    assert (account["platform"], account["externalId"]) == ("bluesky", DID)
    assert account["displayName"] == "@acme.bsky.social"
    resolve, create = fakes.bluesky.received
    assert resolve.path == "/xrpc/com.atproto.identity.resolveHandle"
    assert create.json == {"identifier": "acme.bsky.social", "password": PASSWORD}
    row = account_row(client, account["id"])
    assert crypto.unseal(row.access_token_encrypted) in fakes.bluesky.access
    assert crypto.unseal(row.refresh_token_encrypted) in fakes.bluesky.refresh
    assert row.token_expires_at > datetime.now(timezone.utc) + timedelta(hours=1)
    assert row.auth_meta["pds"] == fakes.bluesky.base_url


@pytest.mark.parametrize("identifier,password,field,words", [
    ("acme.bsky.social", "wrong-pass-word-0000", "appPassword", "refused this identifier"),
    ("nobody.bsky.social", PASSWORD, "identifier", "no Bluesky account has the handle"),
    ("acme.bsky.social", None, "appPassword", "app password"),
])
def test_bluesky_connect_refusals_name_the_field_and_store_nothing(sqlite, client, fakes,
                                                                  identifier, password, field,
                                                                  words):
    body = {"identifier": identifier, **({"appPassword": password} if password else {})}
    response = client.post("/connect/bluesky", json=body)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert words in error["message"] and field in error["fields"]
    assert account_count(client, "bluesky") == 0
    if field == "identifier":  # a handle that does not resolve is never tried as a password
        assert fakes.bluesky.requests("POST") == []


def account_row(client, account_id) -> SocialAccount:
    with client.db.sessions() as session:
        return session.get(SocialAccount, account_id)


def bluesky_account(client) -> str:
    response = connect_bluesky(client)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["accounts"][0]["id"]


# -- Bluesky: publishing -------------------------------------------------------------------

def test_bluesky_facets_count_utf8_bytes_and_an_unknown_mention_stays_text(sqlite, client, fakes):
    account = bluesky_account(client)
    text = ("Café ☕ launch with @alice.bsky.social and @ghost.bsky.social: "
            "https://example.com/launch?x=1. #Launch2026 #42 !")
    sid = post(client, account, text)
    assert run(client).published == 1
    (create,) = fakes.bluesky.requests("POST", "createRecord")
    body = create.json
    assert (body["repo"], body["collection"]) == (DID, "app.bsky.feed.post")
    record = body["record"]
    assert record["$type"] == "app.bsky.feed.post" and record["text"] == text
    assert record["createdAt"].endswith("Z")
    raw = text.encode()

    def spans(kind):
        return [(raw[f["index"]["byteStart"]:f["index"]["byteEnd"]].decode(), f["features"][0])
                for f in record["facets"] if f["features"][0]["$type"].endswith(kind)]

    assert spans("#mention") == [("@alice.bsky.social", {
        "$type": "app.bsky.richtext.facet#mention", "did": "did:plc:alice9m3v"})]
    assert spans("#link") == [("https://example.com/launch?x=1", {
        "$type": "app.bsky.richtext.facet#link", "uri": "https://example.com/launch?x=1"})]
    assert spans("#tag") == [("#Launch2026", {"$type": "app.bsky.richtext.facet#tag",
                                              "tag": "Launch2026"})]  # "#42" is no tag
    outcome = state(client, sid)
    assert outcome["status"] == "done" and outcome["post_id"].startswith(f"at://{DID}/")
    (made,) = outcome["made"]
    assert made[0] == "published" and made[1] == "published_with_note"
    assert "@ghost.bsky.social as plain text" in made[2]


def test_an_expired_bluesky_session_is_refreshed_once_and_the_post_sent(db, client, fakes):
    account = bluesky_account(client)
    first, second = post(client, account, "one"), post(client, account, "two")
    old_refresh = crypto.unseal(account_row(client, account).refresh_token_encrypted)
    fakes.bluesky.expire_access()  # ahead of the expiry the token says: a revoked session
    assert run(client).published == 2
    assert len(fakes.bluesky.requests("POST", "refreshSession")) == 1
    assert len(fakes.bluesky.requests("POST", "createSession")) == 1  # the connect's only
    (refresh,) = fakes.bluesky.requests("POST", "refreshSession")
    assert refresh.token() == old_refresh
    row = account_row(client, account)
    assert crypto.unseal(row.access_token_encrypted) in fakes.bluesky.access
    assert crypto.unseal(row.refresh_token_encrypted) != old_refresh
    assert state(client, first)["status"] == state(client, second)["status"] == "done"


def test_a_refused_bluesky_refresh_leaves_the_account_needing_a_reconnect(db, client, fakes):
    account = bluesky_account(client)
    sid = post(client, account, "hello")
    fakes.bluesky.expire_access()
    fakes.bluesky.refresh.clear()  # the app password was revoked: its sessions die
    run(client)
    outcome = state(client, sid)
    assert outcome["account_status"] == "needs_reconnect"
    assert outcome["status"] == "waiting"
    assert "reconnect" in outcome["made"][0][2]
    assert fakes.bluesky.requests("POST", "createSession")[1:] == []  # never a new session


def test_a_pasted_bluesky_token_that_expired_asks_for_a_reconnect(sqlite, client, fakes,
                                                                 tenant):
    account = add_account(client.db.sessions, tenant.company_id, "bluesky", DID, "stale-jwt",
                          T0).id
    sid = post(client, account, "hello")
    run(client)
    outcome = state(client, sid)
    assert (outcome["status"], outcome["account_status"]) == ("failed", "needs_reconnect")
    assert "no refresh token" in outcome["error"]


# -- Mastodon: connect ---------------------------------------------------------------------

def connect_mastodon(client, fakes, instance=None):
    response = client.post("/connect/mastodon", json={"instance": instance or fakes.mastodon.base_url})
    assert response.status_code == 200, response.get_json()
    started = response.get_json()
    back = authorize(started["authorizeUrl"])
    parts = urlsplit(back)
    return client.get(f"{parts.path}?{parts.query}")


def test_mastodon_registers_once_per_instance_then_connects(sqlite, client, fakes):
    response = connect_mastodon(client, fakes)
    assert response.status_code == 201, response.get_json()
    (account,) = response.get_json()["accounts"]
    assert account["externalId"] == f"@acme@{fakes.mastodon.domain}"
    (app,) = fakes.mastodon.requests("POST", "/api/v1/apps")
    assert app.json["redirect_uris"] == "https://scheduler.example.com/connect/mastodon/callback"
    assert app.json["scopes"] == "read:accounts read:statuses write:statuses write:media"
    row = account_row(client, account["id"])
    assert row.auth_meta["instance"] == fakes.mastodon.base_url
    assert row.auth_meta["max_characters"] == 500 and row.auth_meta["account_id"] == "109384"
    # A second connect on the same instance reuses the registration.
    assert connect_mastodon(client, fakes).status_code == 200
    assert len(fakes.mastodon.requests("POST", "/api/v1/apps")) == 1
    with client.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(OAuthApp)) == 1


def test_an_instance_that_is_not_mastodon_or_not_there_is_refused(sqlite, client, fakes):
    fakes.mastodon.compatible = False
    response = client.post("/connect/mastodon", json={"instance": fakes.mastodon.base_url})
    assert response.status_code == 422
    assert "does not look like a Mastodon server" in response.get_json()["error"]["message"]
    assert "instance" in response.get_json()["error"]["fields"]
    response = client.post("/connect/mastodon", json={"instance": "http://127.0.0.1:9"})
    assert response.status_code == 422
    assert "could not be reached" in response.get_json()["error"]["message"]
    with client.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(OAuthApp)) == 0


def test_the_instance_s_own_character_limit_is_kept_for_scheduling(sqlite, client, fakes):
    fakes.mastodon.max_characters = 1000
    (account,) = connect_mastodon(client, fakes).get_json()["accounts"]
    when = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    ok = client.post("/schedule-post", json={"socialAccountId": account["id"],
                                             "content": "a" * 1000, "scheduledAt": when})
    assert ok.status_code == 201, ok.get_json()
    refused = client.post("/schedule-post", json={"socialAccountId": account["id"],
                                                  "content": "a" * 1001, "scheduledAt": when})
    assert refused.status_code == 422
    assert "Mastodon allows at most 1000" in refused.get_json()["error"]["message"]


# -- Mastodon: publishing ------------------------------------------------------------------

def test_mastodon_sends_the_same_idempotency_key_on_every_attempt(sqlite, client, fakes):
    (account,) = connect_mastodon(client, fakes).get_json()["accounts"]
    sid = post(client, account["id"], "Launch day")
    fakes.mastodon.fail_next("retryable", match="POST /api/v1/statuses")
    assert run(client).retried == 1
    client.clock.offset += timedelta(seconds=61)
    assert run(client).published == 1
    first, second = fakes.mastodon.requests("POST", "/api/v1/statuses")
    post_id = state(client, sid)
    key = first.headers["idempotency-key"]
    assert key == second.headers["idempotency-key"]
    with client.db.sessions() as session:
        detail_id = session.get(PostSchedule, sid).post_detail_id
    assert key == f"post-scheduler:{detail_id}:0"
    assert first.json == {"status": "Launch day", "visibility": "public"}
    assert post_id["post_id"] == fakes.mastodon.statuses[0]["id"]


def lost_answer(client, fakes, sid):
    """The status went out but its answer was lost (a read timeout)."""
    fakes.mastodon.fail_next("timeout", match="POST /api/v1/statuses", hang=1.0)
    assert run(client).retried == 1
    client.clock.offset += timedelta(seconds=61)


def test_a_lost_mastodon_answer_is_not_posted_twice_by_its_key(db, client, fakes):
    """Even when the account's statuses cannot be read back, the key brings the first back."""
    (account,) = connect_mastodon(client, fakes).get_json()["accounts"]
    sid = post(client, account["id"], "Only once")
    lost_answer(client, fakes, sid)
    fakes.mastodon.reads_allowed = False
    assert run(client).published == 1
    assert len(fakes.mastodon.statuses) == 1  # the instance answered the key with the first
    assert state(client, sid)["post_id"] == fakes.mastodon.statuses[0]["id"]


def test_past_the_key_s_hour_the_lookup_finds_the_lost_status(db, client, fakes):
    (account,) = connect_mastodon(client, fakes).get_json()["accounts"]
    sid = post(client, account["id"], "Once & <only> once")
    lost_answer(client, fakes, sid)
    fakes.mastodon.forget_idempotency_keys()
    assert run(client).published == 1
    assert len(fakes.mastodon.statuses) == 1
    assert len(fakes.mastodon.requests("POST", "/api/v1/statuses")) == 1
    assert state(client, sid)["made"][-1][1] == "found_existing"


def test_mastodon_posts_with_the_account_s_visibility(sqlite, client, fakes):
    (account,) = connect_mastodon(client, fakes).get_json()["accounts"]
    with client.db.sessions.begin() as session:
        row = session.get(SocialAccount, account["id"])
        row.auth_meta = {**row.auth_meta, "visibility": "unlisted"}
    post(client, account["id"], "quietly")
    assert run(client).published == 1
    assert fakes.mastodon.requests("POST", "/api/v1/statuses")[0].json["visibility"] == "unlisted"


# -- Threads -------------------------------------------------------------------------------

def threads_account(client, tenant) -> str:
    return add_account(client.db.sessions, tenant.company_id, "threads", "25001",
                       "THAAthreads-token", T0).id


def test_threads_makes_a_text_container_waits_for_it_and_publishes_it(sqlite, client, fakes,
                                                                     tenant):
    sid = post(client, threads_account(client, tenant), "Hello Threads")
    assert run(client).published == 1
    quota, create, check1, check2, publish = fakes.threads.received
    assert quota.path == "/v1.0/25001/threads_publishing_limit"
    assert (create.method, create.path) == ("POST", "/v1.0/25001/threads")
    assert create.form == {"media_type": "TEXT", "text": "Hello Threads",
                           "access_token": "THAAthreads-token"}
    (container,) = fakes.threads.containers
    assert check1.path == check2.path == f"/v1.0/{container}"
    assert check1.query == {"fields": "status,error_message"}
    assert publish.form == {"creation_id": container, "access_token": "THAAthreads-token"}
    assert state(client, sid)["post_id"] == fakes.threads.threads[0]["id"]


def test_a_threads_container_is_kept_across_attempts(db, client, fakes, tenant):
    sid = post(client, threads_account(client, tenant), "Kept")
    fakes.threads.fail_next("retryable", match="POST /v1.0/25001/threads_publish")
    assert run(client).retried == 1
    (container,) = fakes.threads.containers
    assert state(client, sid)["draft"] == container
    client.clock.offset += timedelta(seconds=61)
    assert run(client).published == 1
    assert len(fakes.threads.containers) == 1  # the same container, published
    assert state(client, sid)["draft"] is None


def test_a_spent_threads_quota_defers_to_when_its_oldest_post_leaves_the_window(
        sqlite, client, fakes, tenant):
    oldest = time.time() - 20 * 3600  # leaves the 24-hour window in 4 hours
    fakes.threads.add_threads("25001", 1, at=oldest)
    fakes.threads.add_threads("25001", 249)
    sid = post(client, threads_account(client, tenant), "Over quota")
    assert run(client).deferred == 1
    outcome = state(client, sid)
    assert (outcome["status"], outcome["attempts"]) == ("pending", 0)
    expected = datetime.fromtimestamp(oldest, timezone.utc) + timedelta(hours=24)
    assert abs(outcome["run_at"] - expected) < timedelta(seconds=2)
    assert outcome["made"][0][1] == "threads_publishing_limit"
    assert fakes.threads.containers == {}  # no container made for a post that must wait


# -- threads of posts: the replies branch `parts` calls (worker/parts.py) -----------------------

def publisher_for(client, platform: str):
    from worker.publishers import default_publishers
    return default_publishers(client.db.settings)[platform]


def credentials(client, account_id: str) -> Account:
    row = account_row(client, account_id)
    return Account(row.id, row.platform, row.external_id, row.display_name,
                   crypto.unseal(row.access_token_encrypted), dict(row.auth_meta or {}))


def thread_of_three(client, platform: str, account_id: str):
    """The post, then two replies each to the one before; the ids and a finder's answers."""
    publisher, account = publisher_for(client, platform), credentials(client, account_id)
    post = PostToPublish(str(uuid4()), "1/3 the start", [], 1, 1)
    root = publisher.publish(post, account).platform_post_id
    ids, since = [root], datetime.now(timezone.utc) - timedelta(minutes=1)
    for position, text in ((1, "2/3 the middle"), (2, "3/3 the end")):
        part = SimpleNamespace(position=position, text=text, to=ids[-1], root=root)
        ids.append(publisher.reply(post, account, part).platform_post_id)
    found = publisher.find_reply(post, account, SimpleNamespace(
        position=2, text="3/3 the end", to=ids[1], root=root), since)
    return ids, found


def test_a_bluesky_thread_names_its_root_and_parent(sqlite, client, fakes):
    ids, found = thread_of_three(client, "bluesky", bluesky_account(client))
    *_, second, third = fakes.bluesky.requests("POST", "createRecord")
    records = {r["uri"]: r for r in fakes.bluesky.records}
    assert second.json["record"]["reply"] == {
        "root": {"uri": ids[0], "cid": records[ids[0]]["cid"]},
        "parent": {"uri": ids[0], "cid": records[ids[0]]["cid"]}}
    assert third.json["record"]["reply"]["parent"] == {"uri": ids[1],
                                                       "cid": records[ids[1]]["cid"]}
    assert third.json["record"]["reply"]["root"]["uri"] == ids[0]
    assert found == ids[2]


def test_a_mastodon_thread_replies_with_a_key_per_part(sqlite, client, fakes):
    (account,) = connect_mastodon(client, fakes).get_json()["accounts"]
    ids, found = thread_of_three(client, "mastodon", account["id"])
    first, second, third = fakes.mastodon.requests("POST", "/api/v1/statuses")
    assert second.json["in_reply_to_id"] == ids[0] and third.json["in_reply_to_id"] == ids[1]
    keys = [r.headers["idempotency-key"] for r in (first, second, third)]
    assert keys[0].endswith(":0") and keys[1].endswith(":1") and keys[2].endswith(":2")
    assert len(set(k.rsplit(":", 1)[0] for k in keys)) == 1  # one post, three parts
    assert found == ids[2]


def test_a_threads_thread_replies_by_reply_to_id(sqlite, client, fakes, tenant):
    ids, found = thread_of_three(client, "threads", threads_account(client, tenant))
    creates = [r for r in fakes.threads.requests("POST") if r.path == "/v1.0/25001/threads"]
    assert [c.form.get("reply_to_id") for c in creates] == [None, ids[0], ids[1]]
    assert [t["reply_to"] for t in fakes.threads.threads] == [None, ids[0], ids[1]]
    assert found == ids[2]


# -- every platform everywhere: no KeyError in the API, the CLI, the dashboard or metrics ------

@pytest.mark.parametrize("platform", [p.value for p in Platform])
def test_every_platform_is_accepted_listed_shown_and_counted(sqlite, client, platform):
    created = client.post("/social-accounts", json={
        "platform": platform, "externalId": f"{platform}-account", "accessToken": "tok",
        "displayName": f"Acme on {platform}"})
    assert created.status_code == 201, created.get_json()
    account_id = created.get_json()["id"]
    when = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    media = ["https://example.com/a.jpg"] if platform == "instagram" else []
    scheduled = client.post("/schedule-post", json={"socialAccountId": account_id,
                                                    "content": "Hello", "scheduledAt": when,
                                                    "mediaUrls": media})
    assert scheduled.status_code == 201, scheduled.get_json()
    post_id = scheduled.get_json()["posts"][0]["id"]
    assert client.get("/scheduled-posts").status_code == 200
    assert client.get(f"/scheduled-posts/{post_id}").status_code == 200
    assert client.get("/metrics").status_code == 200
    with client.app.test_client() as browser:
        page = browser.get("/dashboard").get_data(as_text=True)
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        browser.post("/dashboard/login", data={"api_key": client.key, "csrf": token},
                     headers={"Origin": "http://localhost"})
        for path in ("/dashboard", "/dashboard/accounts", "/dashboard/calendar",
                     f"/dashboard/posts/{post_id}"):
            response = browser.get(path)
            assert response.status_code == 200, path
        assert platform in browser.get(f"/dashboard/posts/{post_id}").get_data(as_text=True)
        assert f"Acme on {platform}" in browser.get("/dashboard/accounts").get_data(as_text=True)
    company = company_of(client, account_id)
    env = {"DATABASE_URL": client.db.settings.database_url}
    result = CliRunner().invoke(cli, ["--json", "account", "add", "--company", company,
                                      "--platform", platform, "--external-id", "another",
                                      "--token", "tok"], env=env)
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["post", "list", "--company", company], env=env)
    assert result.exit_code == 0 and post_id in result.output, result.output
