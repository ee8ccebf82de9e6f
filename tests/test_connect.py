"""Connecting accounts through the platforms' OAuth flows, against the fakes' authorize pages
and token endpoints: X (PKCE) and LinkedIn; a reconnect keeps the account and its posts; every
bad input of issue 14 answers a 4xx or 502/503 naming what to do, and creates nothing."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from freezegun import freeze_time
from sqlalchemy import select, text

from app import crypto
from app.models import Job, SocialAccount
from conftest import ApiClient, make_tenant
from tests.fakes.consent import authorize
from tests.fakes.oauth import oauth_settings
from app.timeutil import utcnow


@pytest.fixture
def client(request, fakes, tenant):
    db = next(request.getfixturevalue(n) for n in ("sqlite", "mariadb", "postgresql", "db")
              if n in request.fixturenames)
    db = replace(db, settings=replace(db.settings, **oauth_settings(fakes)))
    api = ApiClient(db, tenant.api_key)
    yield api
    api.close()


def start(client, platform="x", **body):
    response = client.post(f"/connect/{platform}", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def callback_path(location: str) -> str:
    parts = urlsplit(location)
    assert parts.netloc == "scheduler.example.com", location
    return f"{parts.path}?{parts.query}"


def connect(client, platform="x", **body):
    started = start(client, platform, **body)
    return client.get(callback_path(authorize(started["authorizeUrl"])))


def account_row(client, account_id) -> SocialAccount:
    with client.db.sessions() as session:
        return session.get(SocialAccount, account_id)


def refresh_job(client) -> Job:
    with client.db.sessions() as session:
        return session.scalars(select(Job).where(Job.kind == "refresh_token")).one()


def accounts(client) -> int:
    return client.db.scalar("SELECT COUNT(*) FROM social_accounts WHERE platform IN ('x', 'linkedin')")


def test_x_connect_creates_the_account_with_its_tokens(db, client, fakes):
    started = start(client)
    query = parse_qs(urlsplit(started["authorizeUrl"]).query)
    assert started["authorizeUrl"].startswith(fakes.x.authorize_url)
    assert query["code_challenge_method"] == ["S256"] and query["state"] == [started["state"]]
    assert query["scope"] == ["tweet.read tweet.write users.read offline.access media.write"]
    assert query["redirect_uri"] == ["https://scheduler.example.com/connect/x/callback"]
    response = client.get(callback_path(authorize(started["authorizeUrl"])))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["created"] == 1
    [account] = body["accounts"]
    assert (account["platform"], account["externalId"], account["displayName"]) == (
        "x", "2244994945", "@acme")
    assert account["status"] == "active" and account["refreshable"] is True
    row = account_row(client, account["id"])
    assert crypto.unseal(row.access_token_encrypted) in fakes.x.issued
    assert crypto.unseal(row.refresh_token_encrypted) in fakes.x.refresh_tokens
    assert "offline.access" in row.scopes.split()
    # X's 2 hours: the refresh job is due 30 minutes before the token expires
    job = refresh_job(client)
    assert timedelta(minutes=29) < row.token_expires_at - job.run_at <= timedelta(minutes=30)
    assert job.payload == {"accountId": account["id"], "expiresAt": row.token_expires_at.isoformat()}
    # the PKCE verifier never left the server: the fake checked it against the challenge
    assert fakes.x.codes and all(c.used for c in fakes.x.codes.values())


def test_reconnect_keeps_the_account_its_posts_and_a_refresh_token_not_replaced(db, client, fakes):
    first = connect(client).get_json()["accounts"][0]
    post = client.post("/schedule-post", json={
        "socialAccountId": first["id"], "content": "kept",
        "scheduledAt": (utcnow() + timedelta(days=1)).isoformat()})
    assert post.status_code == 201, post.get_json()
    with client.db.engine.begin() as conn:
        conn.execute(text("UPDATE social_accounts SET status = 'needs_reconnect', "
                          "status_reason = 'refused' WHERE id = :i"), {"i": first["id"]})
        conn.execute(text("UPDATE post_schedule SET status = 'waiting'"))
    refresh_before = account_row(client, first["id"]).refresh_token_encrypted
    fakes.x.issue_refresh = False  # this time the platform sends no refresh token
    response = connect(client)
    assert response.status_code == 200, response.get_json()
    again = response.get_json()["accounts"][0]
    assert again["id"] == first["id"] and again["status"] == "active"
    assert again["statusReason"] is None
    row = account_row(client, first["id"])
    assert crypto.unseal(row.refresh_token_encrypted) == crypto.unseal(refresh_before)
    assert client.db.scalar("SELECT status FROM post_schedule") == "pending"
    assert accounts(client) == 1


def test_linkedin_connect_reads_the_member_and_keeps_its_refresh_token(sqlite, client, fakes):
    response = connect(client, "linkedin")
    assert response.status_code == 201, response.get_json()
    [account] = response.get_json()["accounts"]
    assert account["externalId"] == "urn:li:person:abc123XYZ"
    assert account["displayName"] == "Acme Inc."
    row = account_row(client, account["id"])
    assert row.refresh_token_encrypted is not None and row.refresh_expires_at is not None
    form = fakes.linkedin.requests("POST", "/oauth/v2/accessToken")[0].form
    assert form["client_secret"] == fakes.linkedin.client_secret  # credentials in the form
    assert row.scopes == "openid profile w_member_social"


# -- bad input --------------------------------------------------------------------------------

def refused(response, status, field=None, says=""):
    body = response.get_json()
    assert response.status_code == status, body
    if field:
        assert field in body["error"]["fields"], body
    assert says in body["error"]["message"], body
    return body


def test_a_state_is_single_use(sqlite, client, fakes):
    started = start(client)
    path = callback_path(authorize(started["authorizeUrl"]))
    assert client.get(path).status_code == 201
    refused(client.get(path), 409, says="already finished")
    assert accounts(client) == 1


def test_unknown_and_other_companys_states_are_refused(sqlite, client, fakes):
    refused(client.get("/connect/x/callback?code=abc&state=made-up"), 404, says="unknown state")
    started = start(client)
    path = callback_path(authorize(started["authorizeUrl"]))
    other = make_tenant(client.db, name="Other")
    refused(client.get(path, key=other.api_key), 404, says="unknown state")
    refused(client.get(path.replace("/connect/x/", "/connect/linkedin/")), 404, says="unknown state")
    assert accounts(client) == 0


def test_a_state_expires_after_ten_minutes(sqlite, client, fakes):
    with freeze_time(utcnow()) as clock:
        started = start(client)
        path = callback_path(authorize(started["authorizeUrl"]))
        clock.tick(timedelta(minutes=10, seconds=1))
        refused(client.get(path), 409, says="expired")
    assert accounts(client) == 0


def test_access_denied_connects_nothing(sqlite, client, fakes):
    fakes.x.deny_next = True
    body = refused(connect(client), 422, "error", "did not grant access")
    assert "access_denied" in body["error"]["message"] or "denied" in body["error"]["message"]
    assert accounts(client) == 0


@pytest.mark.parametrize("kind,status,says", [
    ("permanent", 422, "start the connection again"),   # 400 invalid_grant: the code is no good
    ("auth", 502, "client id and secret"),               # 401: the app's credentials are wrong
    ("retryable", 502, "try again shortly"),             # 503
    ("garbage", 502, "without an access token"),         # 200 that is not a token
])
def test_token_endpoint_failures_connect_nothing(sqlite, client, fakes, kind, status, says):
    started = start(client)
    path = callback_path(authorize(started["authorizeUrl"]))
    fakes.x.fail_next(kind, match="/2/oauth2/token")
    refused(client.get(path), status, says=says)
    assert accounts(client) == 0


def test_fewer_scopes_than_needed_are_named(sqlite, client, fakes):
    fakes.x.grant_scopes = ("tweet.read", "users.read")
    body = refused(connect(client), 422, "scope", "missing: tweet.write offline.access media.write")
    assert accounts(client) == 0


def test_missing_app_credentials_are_named_not_a_500(sqlite, fakes, tenant):
    db = replace(sqlite, settings=replace(sqlite.settings, **{**oauth_settings(fakes),
                                                              "x_client_secret": "",
                                                              "public_url": ""}))
    client = ApiClient(db, tenant.api_key)
    try:
        body = refused(client.post("/connect/x", json={}), 409, says="X_CLIENT_SECRET")
        assert set(body["error"]["fields"]) == {"X_CLIENT_SECRET", "SCHEDULER_PUBLIC_URL"}
        body = refused(client.post("/connect/linkedin", json={}), 409, says="SCHEDULER_PUBLIC_URL")
        assert set(body["error"]["fields"]) == {"SCHEDULER_PUBLIC_URL"}
    finally:
        client.close()


def test_a_platform_without_a_flow_is_not_found(sqlite, client):
    refused(client.post("/connect/sandbox", json={}), 404, says="cannot be connected")
    refused(client.post("/connect/nope", json={}), 404)


# -- browsers ---------------------------------------------------------------------------------

def test_a_browser_is_sent_back_to_the_dashboard(sqlite, client, fakes):
    started = start(client)
    path = callback_path(authorize(started["authorizeUrl"]))
    response = client.get(path, key=None)  # the platform's redirect carries no API key
    assert response.status_code == 302
    assert "/dashboard/accounts?connected=" in response.headers["Location"]
    assert accounts(client) == 1
    again = client.get(path, key=None)
    assert again.status_code == 302 and "connect_error=" in again.headers["Location"]


def test_a_flow_started_in_the_dashboard_is_bound_to_that_browser(sqlite, client, fakes):
    web = client.client
    page = web.get("/dashboard")
    csrf = page.get_data(as_text=True).split('name="csrf" value="')[1].split('"')[0]
    web.post("/dashboard/login", data={"api_key": client.key, "csrf": csrf},
             headers={"Origin": "http://localhost"})
    accounts_page = web.get("/dashboard/accounts").get_data(as_text=True)
    assert 'data-testid="connect-x"' in accounts_page
    token = accounts_page.split('name="csrf-token" content="')[1].split('"')[0]
    response = web.post("/connect/x", json={}, headers={"X-CSRF-Token": token})
    assert response.status_code == 200, response.get_json()
    assert "scheduler_connect=" in response.headers["Set-Cookie"]
    path = callback_path(authorize(response.get_json()["authorizeUrl"]))
    stranger = client.app.test_client()  # another browser, without the cookie
    assert "connect_error=" in stranger.get(path).headers["Location"]
    assert accounts(client) == 0
