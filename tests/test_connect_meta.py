"""Meta (Facebook Pages + Instagram) and Threads connect flows: the providers against the fakes
of Facebook Login and Threads' login, each step and each refusal of the protocol."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from app import crypto
from app.config import Settings
from app.oauth.base import ProviderContext, Tokens
from app.oauth.refresh import refresh_ahead
from app.oauth.registry import provider_for
from app.statuses import Platform
from app.errors import InvalidInput
from app.models import Job, SocialAccount
from worker.publishers.base import AuthError, PermanentError, RetryableError
from worker.cycle import Worker
from worker.publishers.http import HttpClient

from conftest import ApiClient
from tests.fakes import running_fakes
from tests.fakes.consent import authorize
from tests.fakes.graph import FakeGraph
from tests.fakes.oauth import oauth_settings
from tests.fakes.threads_login import FakeThreadsLogin

REDIRECT = "http://127.0.0.1:1/connect/facebook/callback"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def _running(fake, app_id: str, secret: str):
    fake.app_id, fake.app_secret = app_id, secret
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def graph():
    yield from _running(FakeGraph(), "4242", "meta-secret")


@pytest.fixture
def threads():
    yield from _running(FakeThreadsLogin(), "5353", "threads-secret")


def provider(platform: str, graph=None, threads=None, **overrides):
    env = {"SCHEDULER_PUBLIC_URL": "http://127.0.0.1:1", "SCHEDULER_HTTP_READ_TIMEOUT": "2"}
    if graph is not None:
        env |= {"GRAPH_API_BASE_URL": graph.base_url, "META_APP_ID": "4242",
                "META_APP_SECRET": "meta-secret",
                "FACEBOOK_DIALOG_URL": f"{graph.base_url}/{graph.version}/dialog/oauth"}
    if threads is not None:
        env |= {"THREADS_API_BASE_URL": threads.base_url, "THREADS_APP_ID": "5353",
                "THREADS_APP_SECRET": "threads-secret",
                "THREADS_AUTHORIZE_URL": f"{threads.base_url}/oauth/authorize"}
    settings = Settings.from_env(env | overrides)
    return provider_for(platform, ProviderContext(settings, HttpClient.from_settings(settings),
                                                  None, lambda: NOW))


def code_from(callback: str, state: str = "st-1") -> str:
    query = parse_qs(urlsplit(callback).query)
    assert query["state"] == [state]
    return query["code"][0]


def meta_code(graph, scopes=None) -> tuple:
    meta = provider("facebook", graph)
    url = meta.authorize_url("st-1", None, REDIRECT, {})
    return meta, code_from(authorize(url, scopes=scopes))


# -- Facebook Login ---------------------------------------------------------------------------

def test_the_dialog_url_asks_for_every_permission_the_publishers_need(graph):
    url = provider("facebook", graph).authorize_url("st-1", None, REDIRECT, {})
    assert url.startswith(f"{graph.base_url}/v25.0/dialog/oauth?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["client_id"] == "4242" and query["redirect_uri"] == REDIRECT
    assert query["state"] == "st-1" and query["response_type"] == "code"
    assert set(query["scope"].split(",")) >= {"pages_show_list", "pages_manage_posts",
                                              "pages_read_engagement", "instagram_basic",
                                              "instagram_content_publish"}


def test_a_login_adds_every_page_and_each_pages_instagram_account(graph):
    graph.pages.append({"id": "1503", "name": "Acme Cafe",
                        "instagram": {"id": "17841400003", "username": "acmecafe"}})
    meta, code = meta_code(graph)
    grants = meta.finish(code, None, REDIRECT, {})
    assert [(g.platform, g.external_id, g.display_name) for g in grants] == [
        (Platform.FACEBOOK, "1501", "Acme Bakery"), (Platform.INSTAGRAM, "17841400001", "@acmebakery"),
        (Platform.FACEBOOK, "1502", "Acme Deli"),
        (Platform.FACEBOOK, "1503", "Acme Cafe"), (Platform.INSTAGRAM, "17841400003", "@acmecafe")]
    # Each account holds its Page's token: a Page token, made from the long-lived user token.
    for grant in grants:
        issued = graph.issued[grant.access_token]
        assert issued["kind"] == "page" and issued["page"] == grant.meta["page_id"]
        assert grant.expires_at is None and grant.refresh_token is None  # never expires
        assert datetime.fromisoformat(grant.meta["data_access_expires_at"]) > datetime.now(
            timezone.utc) + timedelta(days=89)
    assert grants[0].access_token == grants[1].access_token
    exchange = graph.requests("GET", "/oauth/access_token")
    assert [r.query.get("grant_type") for r in exchange] == [None, "fb_exchange_token"]
    assert exchange[0].query["client_secret"] == "meta-secret"
    assert exchange[0].query["redirect_uri"] == REDIRECT


def test_the_pages_are_read_page_by_page(graph):
    graph.pages = [{"id": str(2000 + i), "name": f"Page {i}", "instagram": None}
                   for i in range(230)]
    meta, code = meta_code(graph)
    grants = meta.finish(code, None, REDIRECT, {})
    assert [g.external_id for g in grants] == [str(2000 + i) for i in range(230)]
    assert len(graph.requests("GET", "/me/accounts")) == 3  # 100 + 100 + 30


def test_more_pages_than_one_connect_takes_are_refused_not_cut(graph, monkeypatch):
    monkeypatch.setattr("app.oauth.meta.MAX_PAGES", 2)
    graph.pages = [{"id": str(2000 + i), "name": f"Page {i}", "instagram": None}
                   for i in range(201)]
    meta, code = meta_code(graph)
    with pytest.raises(InvalidInput, match="more than 200 Pages"):
        meta.finish(code, None, REDIRECT, {})


def test_a_page_token_that_expires_keeps_its_expiry(graph):
    graph.page_tokens_expire = True
    meta, code = meta_code(graph)
    grants = meta.finish(code, None, REDIRECT, {})
    expiry = graph.issued[grants[0].access_token]["expires_at"]
    assert grants[0].expires_at == datetime.fromtimestamp(int(expiry), timezone.utc)
    assert not meta.refreshable(_tokens(grants[0]))  # no way to refresh: warned ahead instead


def test_missing_permissions_are_named_and_nothing_is_granted(graph):
    meta, code = meta_code(graph, scopes=["pages_show_list", "pages_manage_posts",
                                          "pages_read_engagement", "instagram_basic"])
    with pytest.raises(InvalidInput, match=r"missing: instagram_content_publish\): nothing was"):
        meta.finish(code, None, REDIRECT, {})
    assert not graph.requests("GET", "/me/accounts")


def test_a_user_with_no_page_is_told_to_choose_one(graph):
    graph.pages = []
    meta, code = meta_code(graph)
    with pytest.raises(InvalidInput, match="granted no Page"):
        meta.finish(code, None, REDIRECT, {})


def test_a_spent_or_unknown_code_is_refused_with_graphs_message(graph):
    meta, code = meta_code(graph)
    meta.finish(code, None, REDIRECT, {})
    with pytest.raises(AuthError, match="This authorization code has been used") as caught:
        meta.finish(code, None, REDIRECT, {})
    assert caught.value.http_status == 400  # the user's to redo: 422 "start again"
    with pytest.raises(AuthError, match="Invalid verification code format"):
        meta.finish("nonsense", None, REDIRECT, {})


def test_a_wrong_app_secret_is_named_and_never_echoed(graph):
    meta, code = meta_code(graph)
    meta = provider("facebook", graph, META_APP_SECRET="not-the-secret")
    with pytest.raises(AuthError, match="Error validating client secret.*check META_APP_ID "
                       "and META_APP_SECRET") as caught:
        meta.finish(code, None, REDIRECT, {})
    assert caught.value.http_status == 401  # the operator's to fix: 502 "check the settings"
    assert "not-the-secret" not in str(caught.value)


@pytest.mark.parametrize("kind, status, error", [
    ("permanent", 400, None), ("auth", 401, AuthError),
    ("retryable", 500, RetryableError), ("retryable", 503, RetryableError),
    ("garbage", 200, RetryableError), ("garbage", 502, RetryableError)])
@pytest.mark.parametrize("step", ["oauth/access_token", "me/accounts", "debug_token"])
def test_each_graph_step_answering_badly_is_an_error_of_its_class(graph, kind, status, error, step):
    # A 400 refusing the code is the user's to redo; elsewhere it is the platform's answer.
    error = error or (AuthError if step == "oauth/access_token" else PermanentError)
    meta, code = meta_code(graph)
    graph.fail_next(kind, match=f"GET /v25.0/{step}", status=status)
    with pytest.raises(error):
        meta.finish(code, None, REDIRECT, {})


def test_a_timeout_is_retryable(graph):
    meta, code = meta_code(graph)
    graph.fail_next("timeout", match="GET /v25.0/me/accounts", hang=3)
    with pytest.raises(RetryableError, match="no answer"):
        meta.finish(code, None, REDIRECT, {})


def test_a_cancelled_dialog_comes_back_as_access_denied(graph):
    url = provider("facebook", graph).authorize_url("st-1", None, REDIRECT, {})
    query = parse_qs(urlsplit(authorize(url, allow=False)).query)
    assert query["error"] == ["access_denied"] and query["state"] == ["st-1"]
    assert query["error_reason"] == ["user_denied"]


# -- Threads ------------------------------------------------------------------------------------

def threads_code(threads) -> tuple:
    login = provider("threads", threads=threads)
    url = login.authorize_url("st-1", None, REDIRECT, {})
    callback = authorize(url)
    assert callback.endswith("#_")  # Threads' own suffix; a browser never sends it
    return login, code_from(callback.removesuffix("#_"))


def test_threads_connects_with_a_60_day_token(threads):
    login, code = threads_code(threads)
    [grant] = login.finish(code, None, REDIRECT, {})
    assert (grant.platform, grant.external_id, grant.display_name) == (
        Platform.THREADS, "25001", "@acme.threads")
    assert threads.issued[grant.access_token]["kind"] == "long"
    assert grant.expires_at == NOW + timedelta(seconds=5_184_000)
    [code_request] = threads.requests("POST", "/oauth/access_token")
    assert code_request.form == {"client_id": "5353", "client_secret": "threads-secret",
                                 "grant_type": "authorization_code", "redirect_uri": REDIRECT,
                                 "code": code}
    [exchange] = threads.requests("GET", "/access_token")
    assert exchange.query == {"grant_type": "th_exchange_token", "client_secret": "threads-secret"}
    assert "access_token" not in exchange.query  # the token goes in a header, never a URL


def test_threads_asks_for_basic_and_publishing(threads):
    url = provider("threads", threads=threads).authorize_url("st-1", None, REDIRECT, {})
    assert url.startswith(f"{threads.base_url}/oauth/authorize?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["scope"] == "threads_basic,threads_content_publish"
    assert query["client_id"] == "5353" and query["response_type"] == "code"


def test_a_threads_token_refreshes_into_a_new_60_day_one(threads):
    login, code = threads_code(threads)
    [grant] = login.finish(code, None, REDIRECT, {})
    tokens = _tokens(grant)
    assert login.refreshable(tokens)
    refreshed = login.refresh(tokens)
    assert refreshed.access_token != grant.access_token
    assert threads.issued[refreshed.access_token]["kind"] == "long"
    assert refreshed.expires_at == NOW + timedelta(seconds=5_184_000)
    [request] = threads.requests("GET", "/refresh_access_token")
    assert request.query == {"grant_type": "th_refresh_token"}


def test_a_threads_refresh_of_a_lapsed_token_is_an_auth_error(threads):
    login, code = threads_code(threads)
    [grant] = login.finish(code, None, REDIRECT, {})
    threads.expire(grant.access_token)
    with pytest.raises(AuthError, match="Session has expired"):
        login.refresh(_tokens(grant))


def test_a_threads_code_refused_says_why(threads):
    login, code = threads_code(threads)
    login.finish(code, None, REDIRECT, {})
    with pytest.raises(AuthError, match="This authorization code has been used"):
        login.finish(code, None, REDIRECT, {})


@pytest.mark.parametrize("kind, status, error", [
    ("permanent", 400, None), ("auth", 401, AuthError),
    ("retryable", 500, RetryableError), ("garbage", 200, RetryableError)])
@pytest.mark.parametrize("step", ["POST /oauth/access_token", "GET /access_token", "GET /v1.0/me"])
def test_each_threads_step_answering_badly_is_an_error_of_its_class(threads, kind, status, error,
                                                                    step):
    error = error or (PermanentError if "/me" in step else AuthError)
    login, code = threads_code(threads)
    threads.fail_next(kind, match=step, status=status)
    with pytest.raises(error):
        login.finish(code, None, REDIRECT, {})


def _tokens(grant) -> Tokens:
    return Tokens("acc-1", grant.platform, grant.external_id, grant.access_token,
                  grant.refresh_token, grant.expires_at, grant.refresh_expires_at, grant.meta)



# -- through POST /connect/{platform} and its callback ---------------------------------------

PUBLIC = "https://scheduler.example.com"


@pytest.fixture
def api(request, graph, threads, tenant):
    db = next(request.getfixturevalue(n) for n in ("sqlite", "mariadb", "postgresql", "db")
              if n in request.fixturenames)
    settings = provider("facebook", graph, threads, SCHEDULER_PUBLIC_URL=PUBLIC).settings
    client = ApiClient(replace(db, settings=replace(db.settings, **{
        name: getattr(settings, name) for name in Settings.ENV
        if name.startswith(("graph_", "facebook_", "meta_", "threads_", "public_url"))})),
        tenant.api_key)
    yield client
    client.close()


def begin(api, platform: str) -> dict:
    response = api.post(f"/connect/{platform}", json={})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def come_back(api, location: str):
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}" == PUBLIC, location
    return api.get(f"{parts.path}?{parts.query}")


def stored(api) -> list[tuple]:
    with api.db.sessions() as session:
        return sorted((a.platform, a.external_id, a.display_name, crypto.unseal(
            a.access_token_encrypted), a.token_expires_at, a.refresh_token_encrypted)
            for a in session.scalars(select(SocialAccount).where(
                SocialAccount.platform.in_(["facebook", "instagram", "threads"]))))


def test_connecting_facebook_adds_the_pages_and_their_instagram_accounts(db, api, graph):
    started = begin(api, "facebook")
    assert started["authorizeUrl"].startswith(f"{graph.base_url}/v25.0/dialog/oauth?")
    assert parse_qs(urlsplit(started["authorizeUrl"]).query)["redirect_uri"] == [
        f"{PUBLIC}/connect/facebook/callback"]
    response = come_back(api, authorize(started["authorizeUrl"]))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["created"] == 3
    assert sorted((a["platform"], a["externalId"], a["displayName"], a["refreshable"])
                  for a in body["accounts"]) == [
        ("facebook", "1501", "Acme Bakery", False), ("facebook", "1502", "Acme Deli", False),
        ("instagram", "17841400001", "@acmebakery", False)]
    rows = stored(api)
    for platform, external_id, _, token, expires_at, refresh in rows:
        assert graph.issued[token]["kind"] == "page" and expires_at is None and refresh is None
    assert rows[0][3] == rows[2][3]  # the Bakery Page and its Instagram: the Page's token
    # Connecting again reconnects the same accounts (200), none added.
    again = come_back(api, authorize(begin(api, "instagram")["authorizeUrl"]))
    assert again.status_code == 200 and again.get_json()["created"] == 0
    assert len(stored(api)) == 3


def test_connecting_threads_keeps_a_refreshable_60_day_token(db, api, threads):
    started = begin(api, "threads")
    assert started["authorizeUrl"].startswith(f"{threads.base_url}/oauth/authorize?")
    response = come_back(api, authorize(started["authorizeUrl"]).removesuffix("#_"))
    assert response.status_code == 201, response.get_json()
    [account] = response.get_json()["accounts"]
    assert (account["platform"], account["externalId"], account["displayName"]) == (
        "threads", "25001", "@acme.threads")
    [(_, _, _, token, expires_at, _)] = stored(api)
    assert threads.issued[token]["kind"] == "long"
    assert timedelta(days=59) < expires_at - datetime.now(timezone.utc) <= timedelta(days=60)
    # A refresh job is queued 7 days ahead of the 60; when it runs, th_refresh_token gives
    # 60 days more, and the next job is queued for the new token.
    [job] = refresh_jobs(api)
    assert expires_at - job.run_at == timedelta(days=7)
    later = expires_at - timedelta(days=7)
    settings = api.db.settings
    ctx = ProviderContext(settings, HttpClient.from_settings(settings), api.db.sessions,
                          lambda: later)
    outcome = refresh_ahead(ctx, account["id"], expires_at)
    assert outcome.done == "refreshed" and threads.issued[outcome.access_token]["kind"] == "long"
    [(_, _, _, token, renewed, _)] = stored(api)
    assert token == outcome.access_token and renewed == later + timedelta(days=60)
    assert [r.query for r in threads.requests("GET", "/refresh_access_token")] == [
        {"grant_type": "th_refresh_token"}]
    assert [j.payload["expiresAt"] for j in refresh_jobs(api)] == [
        expires_at.isoformat(), renewed.isoformat()]


def test_threads_refusing_a_refresh_asks_for_a_reconnect(sqlite, api, threads):
    back = authorize(begin(api, "threads")["authorizeUrl"]).removesuffix("#_")
    [account] = come_back(api, back).get_json()["accounts"]
    [(_, _, _, token, expires_at, _)] = stored(api)
    threads.expire(token)
    settings = api.db.settings
    ctx = ProviderContext(settings, HttpClient.from_settings(settings), api.db.sessions,
                          lambda: expires_at - timedelta(days=7))
    with pytest.raises(AuthError, match="could not be refreshed .*Session has expired"):
        refresh_ahead(ctx, account["id"], expires_at)
    [row] = api.db.rows("SELECT status, status_reason FROM social_accounts WHERE id = :i",
                        i=account["id"])
    assert row["status"] == "needs_reconnect" and "reconnect the account" in row["status_reason"]


def refresh_jobs(api) -> list[Job]:
    with api.db.sessions() as session:
        return list(session.scalars(select(Job).where(Job.kind == "refresh_token")
                                    .order_by(Job.id)))


def refused(response, status: int, says: str, field: str | None = None) -> dict:
    body = response.get_json()
    assert response.status_code == status, body
    assert says in body["error"]["message"], body
    if field:
        assert field in body["error"]["fields"], body
    return body


@pytest.mark.parametrize("platform", ["facebook", "threads"])
def test_access_denied_connects_nothing(sqlite, api, platform):
    started = begin(api, platform)
    back = authorize(started["authorizeUrl"], allow=False).removesuffix("#_")
    refused(come_back(api, back), 422, "did not grant access", "error")
    assert stored(api) == []


def test_a_permission_left_unticked_is_named(sqlite, api):
    started = begin(api, "facebook")
    back = authorize(started["authorizeUrl"], scopes=[
        "pages_show_list", "pages_read_engagement", "instagram_basic"])
    refused(come_back(api, back), 422,
            "missing: pages_manage_posts instagram_content_publish", "scope")
    assert stored(api) == []


@pytest.mark.parametrize("platform, match", [
    ("facebook", "GET /v25.0/oauth/access_token"), ("threads", "POST /oauth/access_token")])
@pytest.mark.parametrize("kind, status, code, says", [
    ("permanent", 400, 422, "start the connection again"),
    ("auth", 401, 502, "client id and secret"),
    ("retryable", 500, 502, "try again shortly"),
    ("garbage", 200, 502, "try again shortly"),
    ("garbage", 502, 502, "try again shortly")])
def test_a_token_endpoint_failing_connects_nothing(sqlite, api, graph, threads, platform, match,
                                                   kind, status, code, says):
    back = authorize(begin(api, platform)["authorizeUrl"]).removesuffix("#_")
    (graph if platform == "facebook" else threads).fail_next(kind, match=match, status=status)
    refused(come_back(api, back), code, says)
    assert stored(api) == []


def test_a_page_list_failing_midway_connects_nothing(sqlite, api, graph, monkeypatch):
    graph.pages = [{"id": str(3000 + i), "name": f"P{i}", "instagram": None} for i in range(150)]
    back = authorize(begin(api, "facebook")["authorizeUrl"])
    first_page = graph._accounts
    monkeypatch.setattr(graph, "_accounts", lambda request: graph.failure("retryable", request)
                        if "after" in request.query else first_page(request))
    refused(come_back(api, back), 502, "try again shortly")
    assert len(graph.requests("GET", "/me/accounts")) == 2  # it failed on the second page
    assert stored(api) == []


def test_a_wrong_meta_app_secret_is_the_operators_to_fix(sqlite, api, graph):
    graph.app_secret = "rotated-on-meta's-side"
    back = authorize(begin(api, "facebook")["authorizeUrl"])
    body = refused(come_back(api, back), 502, "check META_APP_ID and META_APP_SECRET")
    assert "meta-secret" not in body["error"]["message"]


@pytest.mark.parametrize("platform, unset, named", [
    ("facebook", {"meta_app_secret": ""}, {"META_APP_SECRET"}),
    ("instagram", {"meta_app_id": "", "public_url": ""}, {"META_APP_ID", "SCHEDULER_PUBLIC_URL"}),
    ("threads", {"threads_app_id": "", "threads_app_secret": ""},
     {"THREADS_APP_ID", "THREADS_APP_SECRET"})])
def test_unset_app_credentials_are_named_not_a_500(sqlite, api, platform, unset, named):
    client = ApiClient(replace(api.db, settings=replace(api.db.settings, **unset)), api.key)
    try:
        body = refused(client.post(f"/connect/{platform}", json={}), 409, sorted(named)[0])
        assert set(body["error"]["fields"]) == named
    finally:
        client.close()


def test_a_page_token_that_expires_is_warned_about_7_days_ahead(sqlite, api, graph):
    graph.page_tokens_expire = True  # Graph gives these Page tokens their user token's expiry
    back = authorize(begin(api, "facebook")["authorizeUrl"])
    accounts = come_back(api, back).get_json()["accounts"]
    bakery = next(a for a in accounts if a["externalId"] == "1501")
    expires_at = datetime.fromisoformat(bakery["tokenExpiresAt"])
    jobs = {j.payload["accountId"]: j for j in refresh_jobs(api)}
    assert expires_at - jobs[bakery["id"]].run_at == timedelta(days=7)
    settings = api.db.settings
    ctx = ProviderContext(settings, HttpClient.from_settings(settings), api.db.sessions,
                          lambda: expires_at - timedelta(days=7))
    outcome = refresh_ahead(ctx, bakery["id"], expires_at)
    assert (outcome.done, outcome.warned) == ("cannot_refresh", True)  # account.token_expiring
    assert refresh_ahead(ctx, bakery["id"], expires_at).warned is False  # once
    # nothing was asked of Graph: the connect's code and exchange requests only
    assert len(graph.requests("GET", "/oauth/access_token")) == 2


def test_connected_accounts_publish_with_the_tokens_their_connect_stored(sqlite, tenant):
    with running_fakes() as fakes:
        db = replace(sqlite, settings=replace(sqlite.settings, **oauth_settings(fakes)))
        api = ApiClient(db, tenant.api_key)
        try:
            ids = {}
            for platform in ("facebook", "threads"):
                back = authorize(begin(api, platform)["authorizeUrl"]).removesuffix("#_")
                for account in come_back(api, back).get_json()["accounts"]:
                    ids[account["externalId"]] = account["id"]
            # From here on the fakes take only the tokens they issued to these connects.
            fakes.graph.tokens = {t for t, i in fakes.graph.issued.items() if i["kind"] == "page"}
            fakes.threads.tokens = {t for t, i in fakes.threads.issued.items() if i["kind"] == "long"}
            at = datetime.now(timezone.utc) + timedelta(minutes=1)
            response = api.post("/schedule-post", json={
                "socialAccountIds": [ids["1501"], ids["25001"]], "content": "Fresh bread at 7",
                "scheduledAt": at.isoformat()})
            assert response.status_code == 201, response.get_json()
            summary = Worker(db.settings, db.sessions, clock=lambda: at + timedelta(seconds=1)).run()
            assert summary.published == 2, summary
            [feed] = fakes.graph.requests("POST", "/v25.0/1501/feed")
            assert fakes.graph.issued[feed.token()]["page"] == "1501"
            assert [p["message"] for p in fakes.graph.posts] == ["Fresh bread at 7"]
            assert [t["text"] for t in fakes.threads.threads] == ["Fresh bread at 7"]
        finally:
            api.close()
