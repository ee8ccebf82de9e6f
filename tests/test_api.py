"""The HTTP API on SQLite and on MariaDB: scheduling, validation, time zones, idempotency,
listing, edit, cancel, retry, accounts and clients, and the error body of every failure."""
from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from app import create_app, crypto
from app.config import Settings
from app.errors import ConfigError
from app.models import Company, PostDetail, PostSchedule, SocialAccount
from app.services.accounts import add_account, create_client, revoke_api_key
from app.services.limits import weighted_length
from worker.cycle import Worker
from worker.publishers.base import PermanentError, RetryableError

from conftest import ApiClient, Db, Tenant, make_tenant
from test_queue import Scripted

NOW = datetime.now(timezone.utc)
FUTURE = NOW + timedelta(days=30)
WHEN = FUTURE.isoformat()


def schedule(api: ApiClient, account_id: str, content: str = "Hello", headers=None, **extra):
    body = {"socialAccountId": account_id, "content": content, "scheduledAt": WHEN, **extra}
    return api.post("/schedule-post", json=body, headers=headers)


def account_of(db: Db, tenant: Tenant, platform: str, **kw) -> str:
    return add_account(db.sessions, tenant.company_id, platform, f"{platform}-{uuid.uuid4().hex[:6]}",
                       "tok", NOW, display_name=f"{platform} account", **kw).id


def rows(db: Db, model) -> list:
    with db.sessions() as session:
        return list(session.scalars(select(model)))


def assert_error(response, status: int, code: str, *fragments: str, field: str | None = None):
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code
    assert set(error) == {"code", "message", "fields", "requestId"}
    assert error["requestId"] == response.headers["X-Request-Id"]
    for fragment in fragments:
        assert fragment in error["message"], error["message"]
    if field is not None:
        assert field in error["fields"], error["fields"]
    assert "Traceback" not in response.get_data(as_text=True)
    return error


# -- POST /schedule-post ----------------------------------------------------------------------

def test_schedule_one_post_writes_both_rows(db, tenant, api):
    response = schedule(api, tenant.account_id, "Launch day")
    assert response.status_code == 201
    body = response.get_json()
    (post,) = body["posts"]
    assert post["groupId"] == body["groupId"]
    assert post["status"] == post["queueStatus"] == "pending"
    assert post["socialAccountId"] == tenant.account_id and post["platform"] == "sandbox"
    assert datetime.fromisoformat(post["scheduledAt"]) == FUTURE
    assert post["scheduledAt"].endswith("Z") and post["timezone"] is None
    (detail,) = rows(db, PostDetail)
    (schedule_row,) = rows(db, PostSchedule)
    assert detail.id == post["id"] and detail.company_id == tenant.company_id
    assert schedule_row.post_detail_id == detail.id and schedule_row.run_at == FUTURE
    assert (schedule_row.status, schedule_row.attempts, schedule_row.max_attempts) == ("pending", 0, 3)


def test_several_accounts_share_one_group(db, tenant, api):
    others = [account_of(db, tenant, "linkedin"), account_of(db, tenant, "facebook")]
    response = api.post("/schedule-post", json={
        "socialAccountIds": [tenant.account_id, *others], "content": "Everywhere", "scheduledAt": WHEN})
    assert response.status_code == 201
    posts = response.get_json()["posts"]
    assert [p["socialAccountId"] for p in posts] == [tenant.account_id, *others]
    assert len({p["groupId"] for p in posts}) == 1
    assert len({p["id"] for p in posts}) == 3
    assert {d.group_id for d in rows(db, PostDetail)} == {posts[0]["groupId"]}
    assert len(rows(db, PostSchedule)) == 3


@pytest.mark.parametrize("spoiler", ["other_company", "needs_reconnect", "instagram_no_media"])
def test_one_bad_account_creates_nothing(db, tenant, api, spoiler):
    if spoiler == "other_company":
        bad, status = make_tenant(db, name="Other").account_id, 404
    elif spoiler == "needs_reconnect":
        bad, status = account_of(db, tenant, "x"), 409
        with db.sessions.begin() as session:
            session.get(SocialAccount, bad).status = "needs_reconnect"
    else:
        bad, status = account_of(db, tenant, "instagram"), 422
    response = api.post("/schedule-post", json={
        "socialAccountIds": [tenant.account_id, bad], "content": "All or none", "scheduledAt": WHEN})
    assert response.status_code == status
    assert rows(db, PostDetail) == [] and rows(db, PostSchedule) == []


LONG_URL = "https://example.com/" + "a" * 100
BAD_BODIES = [
    # (change to a valid body, status, error code, message fragment, field)
    ({"content": None}, 422, "validation_failed", "content", "content"),
    ({"content": "   "}, 422, "validation_failed", "must not be empty", "content"),
    ({"content": ""}, 422, "validation_failed", "at least 1 character", "content"),
    ({"scheduledAt": "tomorrow"}, 422, "validation_failed", "is not an ISO 8601 date-time",
     "scheduledAt"),
    ({"scheduledAt": (NOW - timedelta(minutes=1)).isoformat()}, 422, "validation_failed",
     "must be in the future", "scheduledAt"),
    ({"scheduledAt": (NOW - timedelta(minutes=1)).replace(tzinfo=None).isoformat()}, 422,
     "validation_failed", "must be in the future", "scheduledAt"),  # local, in the company's UTC
    ({"scheduledAt": "2030-03-31T02:30:00", "timezone": "Europe/Paris"}, 422, "validation_failed",
     "does not exist in Europe/Paris (the clocks jump forward then)", "scheduledAt"),
    ({"scheduledAt": "2030-10-27T02:30:00", "timezone": "Europe/Paris"}, 422, "validation_failed",
     "happens twice in Europe/Paris (the clocks go back then)", "scheduledAt"),
    ({"timezone": "Mars/Olympus"}, 422, "validation_failed", "unknown time zone", "timezone"),
    ({"socialAccountId": "not-a-uuid"}, 422, "validation_failed", "UUID", "socialAccountId"),
    ({"socialAccountId": None}, 422, "validation_failed", "exactly one", "socialAccountId"),
    ({"socialAccountIds": []}, 422, "validation_failed", "at least 1 item", "socialAccountIds"),
    ({"mediaUrls": ["ftp://example.com/a.png"]}, 422, "validation_failed", "http:// or https://",
     "mediaUrls[0]"),
    ({"mediaUrls": ["javascript:alert(1)"]}, 422, "validation_failed", "", "mediaUrls[0]"),
    ({"mediaUrls": ["https://example.com/x.png"] * 21}, 422, "validation_failed", "at most 20",
     "mediaUrls"),
    ({"color": "blue"}, 422, "validation_failed", "color: unknown field", "color"),
    ({"clientId": str(uuid.uuid4())}, 404, "not_found", "no client", None),
    ({"socialAccountId": str(uuid.uuid4())}, 404, "not_found", "no social account", None),
]


@pytest.mark.parametrize("change,status,code,fragment,field", BAD_BODIES,
                         ids=[str(sorted(c))[:40] + "-" + fragment[:20] for c, *_, fragment, _f in BAD_BODIES])
def test_bad_bodies_are_refused_with_the_reason(db, tenant, api, change, status, code, fragment,
                                                field):
    body = {"socialAccountId": tenant.account_id, "content": "Hello", "scheduledAt": WHEN}
    for key, value in change.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    if "socialAccountIds" in change:
        body.pop("socialAccountId")
    assert_error(api.post("/schedule-post", json=body), status, code, fragment, field=field)
    assert rows(db, PostDetail) == []


@pytest.mark.parametrize("platform,content,media,problem", [
    ("x", "a" * 281, [], "is 281 characters"),
    ("x", "界" * 141, [], "is 282 characters"),
    ("x", "😀" * 141, [], "is 282 characters"),
    ("linkedin", "a" * 3001, [], "LinkedIn allows at most 3000"),
    ("facebook", "a" * 63207, [], "Facebook allows at most 63206"),
    ("instagram", "a" * 2201, ["https://example.com/a.jpg"], "Instagram allows at most 2200"),
    ("instagram", "no picture", [], "Instagram needs at least one image or video"),
    # Bluesky counts graphemes: a family emoji is one, an accented letter with its mark is one
    ("bluesky", "👨‍👩‍👧‍👦" * 301, [], "is 301 characters (graphemes"),
    ("bluesky", "e\u0301" * 301, [], "Bluesky allows at most 300"),
    ("bluesky", "👨‍👩‍👧‍👦" * 121, [], "is 3025 bytes in UTF-8; Bluesky allows at most 3000"),
    ("bluesky", "hi", [f"https://example.com/{i}.jpg" for i in range(5)], "at most 4 images"),
    ("mastodon", "a" * 501, [], "Mastodon allows at most 500"),
    ("mastodon", "see " + LONG_URL + " " + "a" * 473, [], "is 501 characters (URLs count 23)"),
    ("threads", "a" * 501, [], "Threads allows at most 500"),
    ("threads", "😀" * 126, [], "is 504 characters (an emoji counts its UTF-8 bytes)"),
])
def test_platform_limits(db, tenant, api, platform, content, media, problem):
    account = account_of(db, tenant, platform)
    response = schedule(api, account, content, mediaUrls=media)
    assert_error(response, 422, "validation_failed", problem)


@pytest.mark.parametrize("platform,content,media", [
    ("x", "a" * 280, []),
    ("x", "界" * 140, []),
    ("x", "see " + LONG_URL + " " + "a" * 252, []),  # the URL counts 23 whatever its length
    ("linkedin", "a" * 3000, []),
    ("facebook", "a" * 63206, []),
    ("instagram", "a" * 2200, ["https://example.com/a.jpg"]),
    ("bluesky", "😀" * 300, []),  # 300 graphemes, 1,200 bytes
    ("bluesky", "👨‍👩‍👧‍👦" * 120, []),  # 120 graphemes, 3,000 bytes
    ("bluesky", "e\u0301" * 300, []),
    ("mastodon", "see " + LONG_URL + " " + "a" * 472, []),
    ("mastodon", "@someone@mastodon.example.org " + "a" * 490, []),  # the domain is not counted
    ("threads", "😀" * 125, []),
    ("threads", "a" * 500, []),
])
def test_content_at_the_limit_is_accepted(db, tenant, api, platform, content, media):
    assert schedule(api, account_of(db, tenant, platform), content, mediaUrls=media).status_code == 201


def test_a_mastodon_instance_s_own_limit_applies(db, tenant, api):
    account = account_of(db, tenant, "mastodon")
    with db.sessions.begin() as session:  # what connect read from its /api/v2/instance
        session.get(SocialAccount, account).auth_meta = {"max_characters": 1000,
                                                         "max_media_attachments": 2}
    assert schedule(api, account, "a" * 1000).status_code == 201
    assert_error(schedule(api, account, "a" * 1001), 422, "validation_failed",
                 "Mastodon allows at most 1000")
    assert_error(schedule(api, account, "hi", mediaUrls=[f"https://example.com/{i}.jpg"
                                                         for i in range(3)]),
                 422, "validation_failed", "at most 2 images")


@pytest.mark.parametrize("text,weight", [
    ("hello", 5), ("界", 2), ("é", 1), ("👍🏽", 2), ("👨‍👩‍👧‍👦", 2), ("🇫🇷", 2),
    ("https://example.com/a/very/long/path?query=1", 23), ("go to example.com now", 6 + 23 + 4),
])
def test_x_weighted_length(text, weight):
    assert weighted_length(text) == weight


def test_local_time_with_a_zone_is_stored_in_utc(db, tenant, api):
    response = schedule(api, tenant.account_id, scheduledAt="2030-07-01T09:00:00",
                        timezone="America/New_York")
    post = response.get_json()["posts"][0]
    assert post["scheduledAt"] == "2030-07-01T13:00:00Z"
    assert post["timezone"] == "America/New_York"
    assert post["scheduledAtLocal"] == "2030-07-01T09:00:00-04:00"
    assert rows(db, PostSchedule)[0].run_at == datetime(2030, 7, 1, 13, tzinfo=timezone.utc)


def test_an_offset_decides_the_instant_even_with_a_zone(db, tenant, api):
    response = schedule(api, tenant.account_id, scheduledAt="2030-10-27T02:30:00+01:00",
                        timezone="Europe/Paris")  # the ambiguous hour, disambiguated by offset
    assert response.get_json()["posts"][0]["scheduledAt"] == "2030-10-27T01:30:00Z"


@pytest.mark.parametrize("key_header", [None, "order-1"])
def test_schedule_post_checks_the_key_and_creates_in_one_connection(db, tenant, api, key_header):
    """The hot path takes one pooled connection a request: the key is checked in the
    transaction that creates the post (and claims the Idempotency-Key, when one is given)."""
    from sqlalchemy import event

    engine = api.app.extensions["scheduler"]["engine"]
    checkouts = []

    def count(*_args):
        checkouts.append(1)

    event.listen(engine, "checkout", count)
    try:
        for n in range(2):
            headers = {"Idempotency-Key": f"{key_header}-{n}"} if key_header else None
            assert schedule(api, tenant.account_id, headers=headers).status_code == 201
            assert len(checkouts) == n + 1
    finally:
        event.remove(engine, "checkout", count)
    assert len(rows(db, PostDetail)) == 2


def _company_zone(db: Db, tenant: Tenant, name: str) -> None:
    with db.sessions.begin() as session:
        session.execute(update(Company).where(Company.id == tenant.company_id)
                        .values(timezone=name))


def test_a_local_time_is_read_in_the_companys_zone_across_a_dst_change(db, tenant, api):
    _company_zone(db, tenant, "Europe/Paris")  # +01:00 until 2030-03-31 02:00, then +02:00
    winter = schedule(api, tenant.account_id, scheduledAt="2030-03-30T09:00:00").get_json()
    summer = schedule(api, tenant.account_id, scheduledAt="2030-04-01T09:00:00").get_json()
    assert winter["posts"][0]["scheduledAt"] == "2030-03-30T08:00:00Z"
    assert summer["posts"][0]["scheduledAt"] == "2030-04-01T07:00:00Z"
    assert summer["posts"][0]["timezone"] == "Europe/Paris"
    assert summer["posts"][0]["scheduledAtLocal"] == "2030-04-01T09:00:00+02:00"
    for local, fragment in [("2030-03-31T02:30:00", "does not exist in Europe/Paris"),
                            ("2030-10-27T02:30:00", "happens twice in Europe/Paris")]:
        assert_error(schedule(api, tenant.account_id, scheduledAt=local), 422,
                     "validation_failed", fragment, field="scheduledAt")
    # an offset decides by itself (no zone recorded); a given zone wins over the company's
    utc = schedule(api, tenant.account_id, scheduledAt="2030-04-01T09:00:00Z").get_json()
    assert utc["posts"][0]["scheduledAt"] == "2030-04-01T09:00:00Z"
    assert utc["posts"][0]["timezone"] is None
    tokyo = schedule(api, tenant.account_id, scheduledAt="2030-04-01T09:00:00",
                     timezone="Asia/Tokyo").get_json()
    assert tokyo["posts"][0]["scheduledAt"] == "2030-04-01T00:00:00Z"
    # an edit reads a local time the same way
    edited = api.patch(f"/scheduled-posts/{winter['posts'][0]['id']}",
                       json={"scheduledAt": "2030-04-02T10:00:00"}).get_json()
    assert edited["scheduledAt"] == "2030-04-02T08:00:00Z"
    assert edited["scheduledAtLocal"] == "2030-04-02T10:00:00+02:00"
    assert len(rows(db, PostSchedule)) == 4


# -- Idempotency-Key -------------------------------------------------------------------------

def test_the_same_key_returns_the_first_response_and_creates_nothing(db, tenant, api):
    headers = {"Idempotency-Key": "order-42"}
    first = schedule(api, tenant.account_id, "Once", headers=headers)
    body = {"content": "Once", "scheduledAt": WHEN, "socialAccountId": tenant.account_id}
    again = api.post("/schedule-post", headers=headers, data=json.dumps(body, indent=2),
                     content_type="application/json")  # same JSON, other key order and spacing
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(rows(db, PostDetail)) == 1
    assert rows(db, PostDetail)[0].idempotency_key == "order-42"


def test_the_same_key_with_another_body_is_422(db, tenant, api):
    headers = {"Idempotency-Key": "order-43"}
    assert schedule(api, tenant.account_id, "First", headers=headers).status_code == 201
    assert_error(schedule(api, tenant.account_id, "Second", headers=headers), 422,
                 "validation_failed", "already used with a different request body",
                 field="Idempotency-Key")
    assert [p.content for p in rows(db, PostDetail)] == ["First"]


def test_a_refused_request_does_not_use_up_its_key(db, tenant, api):
    headers = {"Idempotency-Key": "order-44"}
    assert schedule(api, tenant.account_id, "  ", headers=headers).status_code == 422
    assert schedule(api, tenant.account_id, "Fixed", headers=headers).status_code == 201


def test_keys_are_per_company_and_case_sensitive(db, tenant, api):
    other = make_tenant(db, name="Other")
    assert schedule(api, tenant.account_id, headers={"Idempotency-Key": "k"}).status_code == 201
    assert schedule(api, tenant.account_id, headers={"Idempotency-Key": "K"}).status_code == 201
    response = api.post("/schedule-post", key=other.api_key, headers={"Idempotency-Key": "k"},
                        json={"socialAccountId": other.account_id, "content": "Hello",
                              "scheduledAt": WHEN})
    assert response.status_code == 201
    assert len(rows(db, PostDetail)) == 3


# -- the request itself ------------------------------------------------------------------------

def test_malformed_json_is_400(db, tenant, api):
    response = api.post("/schedule-post", data="{not json", content_type="application/json")
    assert_error(response, 400, "malformed_json", "not valid JSON")


def test_wrong_content_type_is_415(db, tenant, api):
    response = api.post("/schedule-post", data="content=hi", content_type="application/x-www-form-urlencoded")
    assert_error(response, 415, "unsupported_media_type", "Content-Type: application/json")


def test_a_body_that_is_not_an_object_is_422(db, tenant, api):
    assert_error(api.post("/schedule-post", json=["a"]), 422, "validation_failed", "JSON object")


def test_an_oversized_body_is_413(db, tenant):
    small = Db(db.kind, Settings(**{**db.settings.__dict__, "max_body_bytes": 1000}),
               db.engine, db.sessions)
    api = ApiClient(small, tenant.api_key)
    try:
        response = schedule(api, tenant.account_id, "x" * 5000)
        assert_error(response, 413, "payload_too_large", "too large")
    finally:
        api.close()
    assert rows(db, PostDetail) == []


def test_unknown_route_and_method(db, tenant, api):
    assert_error(api.get("/no-such-thing"), 404, "not_found", "no such endpoint")
    response = api.call("PUT", "/schedule-post", json={})
    assert_error(response, 405, "method_not_allowed", "PUT is not allowed")
    assert "POST" in response.headers["Allow"]


def test_an_unexpected_error_is_500_with_a_request_id_and_no_trace(db, tenant, api, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("boom in the service")

    monkeypatch.setattr("app.services.posts.list_posts", broken)
    with caplog.at_level(logging.ERROR, logger="api"):
        response = api.get("/scheduled-posts", headers={"X-Request-Id": "req-123"})
    error = assert_error(response, 500, "internal_error", "req-123")
    assert "boom" not in json.dumps(error)
    logged = [r for r in caplog.records if r.name == "api" and r.levelno == logging.ERROR]
    assert logged and "req-123" in logged[0].getMessage() and logged[0].exc_info


def test_every_request_is_logged_once_with_its_id(db, tenant, api, caplog):
    with caplog.at_level(logging.INFO, logger="api"):
        api.get("/scheduled-posts", headers={"X-Request-Id": "abc-1"})
    (line,) = [r.fields for r in caplog.records if getattr(r, "fields", {}).get("event") == "request"]
    assert line["request_id"] == "abc-1" and line["status"] == 200
    assert line["company_id"] == tenant.company_id and line["path"] == "/scheduled-posts"


# -- API keys --------------------------------------------------------------------------------

@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic abc", "Bearer sk_nope",
                                    "Token sk_x"])
def test_requests_without_a_valid_key_are_401(db, tenant, api, header):
    headers = {} if header is None else {"Authorization": header}
    response = api.get("/scheduled-posts", key=None, headers=headers)
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_key_stops_working(db, tenant, api):
    assert api.get("/social-accounts").status_code == 200
    with db.sessions() as session:
        from app.models import ApiKey
        key_id = session.scalars(select(ApiKey.id).where(ApiKey.company_id == tenant.company_id)).one()
    revoke_api_key(db.sessions, key_id, NOW)
    assert_error(api.get("/social-accounts"), 401, "unauthorized", "unknown or revoked")


def test_health_and_openapi_need_no_key(db, tenant, api):
    assert api.get("/healthz", key=None).get_json() == {"status": "ok", "database": "reachable"}
    assert api.get("/openapi.json", key=None).get_json()["openapi"].startswith("3.")


def test_health_says_when_the_database_is_down(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path}/missing/dir/x.db")
    response = create_app({"SETTINGS": settings}).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unhealthy", "database": "unreachable"}


def test_a_matching_company_id_is_fine(db, tenant, api):
    assert api.get(f"/social-accounts?companyId={tenant.company_id}").status_code == 200


# -- GET /scheduled-posts ----------------------------------------------------------------------

def test_pages_walk_every_post_once_in_time_order(db, tenant, api):
    made = []
    for i in range(7):
        when = (FUTURE + timedelta(minutes=i % 3)).isoformat()  # ties on run_at too
        made += [p["id"] for p in schedule(api, tenant.account_id, f"post {i}",
                                           scheduledAt=when).get_json()["posts"]]
    seen, cursor, pages = [], None, 0
    while True:
        page = api.get("/scheduled-posts?limit=3" + (f"&cursor={cursor}" if cursor else "")).get_json()
        seen += page["items"]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(p["id"] for p in seen) == sorted(made) and len(seen) == 7
    keys = [(p["scheduledAt"], p["id"]) for p in seen]
    assert keys == sorted(keys)


def test_filters(db, tenant, api):
    client = create_client(db.sessions, tenant.company_id, "Client A", NOW).id
    linkedin = account_of(db, tenant, "linkedin", client_id=client)
    mine = schedule(api, linkedin, "for the client").get_json()["posts"][0]
    later = schedule(api, tenant.account_id, "later",
                     scheduledAt=(FUTURE + timedelta(days=2)).isoformat()).get_json()["posts"][0]
    cancelled = schedule(api, tenant.account_id, "gone").get_json()["posts"][0]
    api.delete(f"/scheduled-posts/{cancelled['id']}")

    def ids(query):
        response = api.get("/scheduled-posts?" + query)
        assert response.status_code == 200, response.get_json()
        return {p["id"] for p in response.get_json()["items"]}

    assert ids(f"clientId={client}") == {mine["id"]}
    assert mine["clientId"] == client  # the account's client owns the post
    assert ids(f"socialAccountId={tenant.account_id}") == {later["id"], cancelled["id"]}
    assert ids("status=cancelled") == {cancelled["id"]}
    assert ids("status=pending") == {mine["id"], later["id"]}
    day = FUTURE + timedelta(days=1)
    assert ids(f"from={day.isoformat().replace('+00:00', 'Z')}") == {later["id"]}
    assert ids(f"to={day.isoformat().replace('+00:00', 'Z')}") == {mine["id"], cancelled["id"]}


@pytest.mark.parametrize("query,field", [
    ("limit=101", "limit"), ("limit=0", "limit"), ("limit=ten", "limit"),
    ("status=sent", "status"), ("cursor=garbage", "cursor"), ("from=yesterday", "from"),
    ("from=2030-01-01T00:00:00", "from"), ("clientId=42", "clientId"), ("sort=asc", "sort"),
    ("limit=1&limit=2", "limit"),
])
def test_bad_list_queries_are_422(db, tenant, api, query, field):
    assert_error(api.get(f"/scheduled-posts?{query}"), 422, "validation_failed", field=field)


# -- one post: read, edit, cancel, retry -------------------------------------------------------

def test_detail_has_the_attempt_history(db, tenant, api):
    post = schedule(api, tenant.account_id, "flaky").get_json()["posts"][0]
    publisher = Scripted(RetryableError("timed out"))
    Worker(db.settings, db.sessions, {"sandbox": publisher}, clock=lambda: FUTURE).run()
    Worker(db.settings, db.sessions, {"sandbox": publisher},
           clock=lambda: FUTURE + timedelta(hours=1)).run()
    detail = api.get(f"/scheduled-posts/{post['id']}").get_json()
    assert detail["status"] == "published" and detail["queueStatus"] == "done"
    assert detail["platformPostId"] and detail["attempts"] == 2
    history = detail["attemptHistory"]
    assert [(a["attempt"], a["outcome"]) for a in history] == [(1, "retry"), (2, "published")]
    assert history[0]["errorMessage"]


def test_edit_content_media_and_time(db, tenant, api):
    post = schedule(api, tenant.account_id, "draft").get_json()["posts"][0]
    response = api.patch(f"/scheduled-posts/{post['id']}", json={
        "content": "final", "mediaUrls": ["https://example.com/a.png"],
        "scheduledAt": "2030-01-15T10:00:00", "timezone": "Asia/Tokyo"})
    assert response.status_code == 200, response.get_json()
    edited = response.get_json()
    assert edited["content"] == "final" and edited["mediaUrls"] == ["https://example.com/a.png"]
    assert edited["scheduledAt"] == "2030-01-15T01:00:00Z"
    assert edited["scheduledAtLocal"] == "2030-01-15T10:00:00+09:00"
    (detail,), (row,) = rows(db, PostDetail), rows(db, PostSchedule)
    assert detail.content == "final" and row.run_at == datetime(2030, 1, 15, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("body,fragment,field", [
    ({}, "nothing to change", "body"),
    ({"timezone": "Europe/Paris"}, "send both", "timezone"),
    ({"content": "x" * 3001}, "at most", "content"),
    ({"scheduledAt": "2000-01-01T00:00:00Z"}, "must be in the future", "scheduledAt"),
    ({"status": "published"}, "unknown field", "status"),
])
def test_bad_edits_change_nothing(db, tenant, api, body, fragment, field):
    post = schedule(api, account_of(db, tenant, "linkedin"), "draft").get_json()["posts"][0]
    assert_error(api.patch(f"/scheduled-posts/{post['id']}", json=body), 422, "validation_failed",
                 fragment, field=field)
    assert rows(db, PostDetail)[0].content == "draft"
    assert rows(db, PostSchedule)[0].run_at == FUTURE


def _set_status(db: Db, post_id: str, schedule_status: str, post_status: str) -> None:
    with db.sessions.begin() as session:
        row = session.scalars(select(PostSchedule).where(PostSchedule.post_detail_id == post_id)).one()
        row.status = schedule_status
        session.get(PostDetail, post_id).status = post_status


@pytest.mark.parametrize("schedule_status,post_status,fragment", [
    ("processing", "pending", "being published right now"),
    ("done", "published", "already published"),
    ("failed", "failed", "is failed"),
    ("cancelled", "cancelled", "is cancelled"),
])
def test_only_pending_posts_can_be_edited_or_cancelled(db, tenant, api, schedule_status,
                                                       post_status, fragment):
    post = schedule(api, tenant.account_id, "draft").get_json()["posts"][0]
    _set_status(db, post["id"], schedule_status, post_status)
    assert_error(api.patch(f"/scheduled-posts/{post['id']}", json={"content": "new"}), 409,
                 "conflict", fragment, "only a pending (or waiting) post can be edited")
    assert_error(api.delete(f"/scheduled-posts/{post['id']}"), 409, "conflict", fragment)
    (detail,), (row,) = rows(db, PostDetail), rows(db, PostSchedule)
    assert (detail.content, detail.status, row.status) == ("draft", post_status, schedule_status)


def test_a_waiting_post_shows_as_such_and_can_be_edited_or_cancelled(db, tenant, api):
    kept, dropped = (schedule(api, tenant.account_id, text).get_json()["posts"][0]
                     for text in ("kept", "dropped"))
    for post in (kept, dropped):
        _set_status(db, post["id"], "waiting", "pending")
    shown = api.get(f"/scheduled-posts/{kept['id']}").get_json()
    assert (shown["status"], shown["queueStatus"]) == ("pending", "waiting")
    edited = api.patch(f"/scheduled-posts/{kept['id']}", json={"content": "kept, edited"})
    assert edited.status_code == 200 and edited.get_json()["queueStatus"] == "waiting"
    cancelled = api.delete(f"/scheduled-posts/{dropped['id']}")
    assert cancelled.status_code == 200 and cancelled.get_json()["queueStatus"] == "cancelled"


def test_reconnect_an_account_releases_its_waiting_posts(db, tenant, api):
    post = schedule(api, tenant.account_id, "waits").get_json()["posts"][0]
    _set_status(db, post["id"], "waiting", "pending")
    with db.sessions.begin() as session:
        session.get(SocialAccount, tenant.account_id).status = "needs_reconnect"
    assert api.get("/social-accounts").get_json()["items"][0]["status"] == "needs_reconnect"
    response = api.post(f"/social-accounts/{tenant.account_id}/reconnect",
                        json={"accessToken": "brand-new-token"})
    assert response.status_code == 200, response.get_json()
    data = response.get_json()
    assert (data["account"]["status"], data["released"]) == ("active", 1)
    assert "brand-new-token" not in response.get_data(as_text=True)
    assert api.get(f"/scheduled-posts/{post['id']}").get_json()["queueStatus"] == "pending"
    with db.sessions() as session:
        sealed = session.get(SocialAccount, tenant.account_id).access_token_encrypted
    assert "brand-new-token" not in sealed and crypto.unseal(sealed) == "brand-new-token"


@pytest.mark.parametrize("body,status,field", [
    ({}, 422, "accessToken"),
    ({"accessToken": ""}, 422, "accessToken"),
    ({"accessToken": "t", "extra": 1}, 422, "extra"),
])
def test_bad_reconnects_are_refused(db, tenant, api, body, status, field):
    response = api.post(f"/social-accounts/{tenant.account_id}/reconnect", json=body)
    assert_error(response, status, "validation_failed", field=field)


def test_reconnect_an_unknown_account_is_404(db, tenant, api):
    assert_error(api.post(f"/social-accounts/{uuid.uuid4()}/reconnect", json={"accessToken": "t"}),
                 404, "not_found")


def test_a_cancelled_post_is_never_published(db, tenant, api):
    post = schedule(api, tenant.account_id, "never").get_json()["posts"][0]
    response = api.delete(f"/scheduled-posts/{post['id']}")
    assert response.status_code == 200
    assert response.get_json()["status"] == response.get_json()["queueStatus"] == "cancelled"
    publisher = Scripted()
    summary = Worker(db.settings, db.sessions, {"sandbox": publisher},
                     clock=lambda: FUTURE + timedelta(minutes=1)).run()
    assert summary.claimed == 0 and publisher.calls == 0
    assert rows(db, PostDetail)[0].status == "cancelled"


def test_retry_a_failed_post(db, tenant, api):
    post = schedule(api, tenant.account_id, "fails").get_json()["posts"][0]
    Worker(db.settings, db.sessions, {"sandbox": Scripted(PermanentError("refused"))},
           clock=lambda: FUTURE).run()
    assert api.get(f"/scheduled-posts/{post['id']}").get_json()["status"] == "failed"
    response = api.post(f"/scheduled-posts/{post['id']}/retry")
    assert response.status_code == 200, response.get_json()
    again = response.get_json()
    assert (again["status"], again["queueStatus"], again["attempts"]) == ("pending", "pending", 0)
    assert_error(api.post(f"/scheduled-posts/{post['id']}/retry"), 409, "conflict",
                 "is pending", "only those can be retried")


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.parametrize("post_id", ["not-a-uuid", str(uuid.uuid4())])
def test_unknown_post_ids_are_404(db, tenant, api, method, post_id):
    response = api.call(method, f"/scheduled-posts/{post_id}", json={"content": "x"})
    assert_error(response, 404, "not_found", "no post")


# -- accounts and clients -----------------------------------------------------------------------

def test_connect_an_account_the_token_is_write_only(db, tenant, api):
    response = api.post("/social-accounts", json={
        "platform": "linkedin", "externalId": "urn:li:organization:42", "displayName": "Acme",
        "accessToken": "AQX-linkedin-token-do-not-leak", "tokenExpiresAt": "2031-01-01T00:00:00Z"})
    assert response.status_code == 201
    account = response.get_json()
    assert "accessToken" not in account and "do-not-leak" not in response.get_data(as_text=True)
    assert account["tokenExpiresAt"] == "2031-01-01T00:00:00Z" and account["status"] == "active"
    listed = api.get("/social-accounts").get_data(as_text=True)
    assert account["id"] in listed and "do-not-leak" not in listed
    stored = db.scalar("SELECT access_token_encrypted FROM social_accounts WHERE id = :id",
                       id=account["id"])
    assert "do-not-leak" not in stored


@pytest.mark.parametrize("body,status,field", [
    ({"platform": "myspace"}, 422, "platform"),
    ({"accessToken": ""}, 422, "accessToken"),
    ({"externalId": " "}, 422, "externalId"),
    ({"tokenExpiresAt": "2031-01-01T00:00:00"}, 422, "tokenExpiresAt"),
    ({"clientId": str(uuid.uuid4())}, 404, None),
])
def test_bad_accounts_are_refused(db, tenant, api, body, status, field):
    full = {"platform": "x", "externalId": "123", "accessToken": "t", **body}
    code = "not_found" if status == 404 else "validation_failed"
    assert_error(api.post("/social-accounts", json=full), status, code, field=field)


def test_the_same_account_twice_is_409(db, tenant, api):
    body = {"platform": "x", "externalId": "123", "accessToken": "t"}
    assert api.post("/social-accounts", json=body).status_code == 201
    assert_error(api.post("/social-accounts", json=body), 409, "conflict", "already has")


def test_clients_list_their_accounts(db, tenant, api):
    created = api.post("/clients", json={"name": "Bakery"})
    assert created.status_code == 201
    client = created.get_json()
    assert client["socialAccounts"] == []
    account = api.post("/social-accounts", json={"platform": "facebook", "externalId": "99",
                                                 "accessToken": "t", "clientId": client["id"]})
    listed = api.get("/clients").get_json()["items"]
    assert [c["name"] for c in listed] == ["Bakery"]
    assert [a["id"] for a in listed[0]["socialAccounts"]] == [account.get_json()["id"]]
    assert_error(api.post("/clients", json={"name": ""}), 422, "validation_failed", field="name")


# -- start-up -----------------------------------------------------------------------------------

def test_outside_development_the_app_refuses_to_start_without_a_key(monkeypatch):
    monkeypatch.setenv("SCHEDULER_ENV", "production")
    monkeypatch.delenv("SCHEDULER_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="SCHEDULER_SECRET_KEY must be set"):
        create_app()


@pytest.mark.mariadb
def test_a_pooled_connection_killed_while_resting_is_replaced_not_a_503(mariadb, monkeypatch):
    """The pool tests a connection that rested IDLE_PING_AFTER seconds before using it again; a
    busy one is not tested (a round trip saved per request), so a server that drops it
    mid-burst costs one 503, after which the pool is renewed."""
    import app.db
    from conftest import reachable_server
    from sqlalchemy import text as sql

    tenant = make_tenant(mariadb)
    api = ApiClient(mariadb, tenant.api_key)
    server = reachable_server()

    def kill_the_apps_connections():
        name = mariadb.engine.url.database
        with server.connect() as conn:
            ids = conn.execute(sql("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = :d "
                                   "AND ID <> CONNECTION_ID()"), {"d": name}).scalars().all()
            for connection_id in ids:
                conn.execute(sql(f"KILL {int(connection_id)}"))

    try:
        assert api.get("/social-accounts").status_code == 200
        mariadb.engine.dispose()  # the test's own pool is not the app's
        kill_the_apps_connections()
        monkeypatch.setattr(app.db, "IDLE_PING_AFTER", 0.0)   # everything counts as rested
        assert api.get("/social-accounts").status_code == 200
        kill_the_apps_connections()
        monkeypatch.setattr(app.db, "IDLE_PING_AFTER", 3600.0)  # nothing counts as rested
        assert api.get("/social-accounts").status_code == 503
        assert api.get("/social-accounts").status_code == 200  # the pool was renewed
    finally:
        api.close()
        server.dispose()
