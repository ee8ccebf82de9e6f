"""Tenant isolation: every endpoint, given another company's post, account, client or company
id, answers 404. Never 200, never a 403 that confirms the thing exists, never a 500; and the
other company's data is exactly as it was afterwards."""
from __future__ import annotations

import hashlib
import tempfile
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from app.models import OAuthState
from app.services.accounts import create_client
from app.services.evergreen import create_rule
from app.services.media import store as store_media
from app.services.posts import NewPost, schedule_post
from app.services.webhooks import create_webhook

from conftest import ApiClient, Db, make_tenant
from fakes.media import image

WHEN = (datetime.now(timezone.utc) + timedelta(days=30)).isoformat()
NOW = datetime.now(timezone.utc)


def seeded(db: Db, name: str) -> dict:
    """A company with an account, a client, a pending post and a failed post."""
    tenant = make_tenant(db, name=name)
    client = create_client(db.sessions, tenant.company_id, f"{name} client", NOW).id
    run_at = NOW + timedelta(days=30)
    pending, failed = (schedule_post(db.sessions, tenant.company_id,
                                     NewPost([tenant.account_id], f"{name} {what}", run_at), NOW).posts[0]
                       for what in ("pending", "failed"))
    with db.sessions.begin() as session:
        session.execute(text("UPDATE post_schedule SET status = 'failed' WHERE post_detail_id = :p"),
                        {"p": failed.id})
        session.execute(text("UPDATE post_details SET status = 'failed' WHERE id = :p"), {"p": failed.id})
    webhook = create_webhook(db.sessions, tenant.company_id, "https://93.184.215.14/hook",
                             ["post.published"], NOW)[0].id
    rule = create_rule(db.sessions, tenant.company_id, [tenant.account_id], 3, NOW).id
    draft = schedule_post(db.sessions, tenant.company_id,
                          NewPost([tenant.account_id], f"{name} draft", None), NOW).posts[0].id
    state = f"{name}-state"  # a connect flow of theirs, under way
    with db.sessions.begin() as session:
        session.add(OAuthState(state_hash=hashlib.sha256(state.encode()).hexdigest(),
                               company_id=tenant.company_id, platform="x", created_at=NOW,
                               expires_at=NOW + timedelta(minutes=10),
                               extras={"redirectUri": "https://s.example/connect/x/callback"}))
    media = store_media(db.sessions, tempfile.mkdtemp(prefix="isolation-media-"), 10 ** 6,
                        tenant.company_id, [image()], "photo.png", NOW).id
    return {"tenant": tenant, "company": tenant.company_id, "account": tenant.account_id,
            "client": client, "post": pending.id, "failed": failed.id, "webhook": webhook,
            "state": state, "media": media, "rule": rule, "draft": draft}


def body(mine: dict, **theirs) -> dict:
    return {"socialAccountId": mine["account"], "content": "hi", "scheduledAt": WHEN, **theirs}


# (method, path, json body) built from (mine, theirs)
MATRIX = {
    "get post": lambda m, t: ("GET", f"/scheduled-posts/{t['post']}", None),
    "edit post": lambda m, t: ("PATCH", f"/scheduled-posts/{t['post']}", {"content": "pwned"}),
    "cancel post": lambda m, t: ("DELETE", f"/scheduled-posts/{t['post']}", None),
    "retry post": lambda m, t: ("POST", f"/scheduled-posts/{t['failed']}/retry", None),
    "schedule their post": lambda m, t: (
        "POST", f"/scheduled-posts/{t['post']}/schedule", {"scheduledAt": WHEN}),
    "schedule their draft at best": lambda m, t: (
        "POST", f"/scheduled-posts/{t['draft']}/schedule", {"scheduledAt": "best"}),
    "edit their draft": lambda m, t: ("PATCH", f"/scheduled-posts/{t['draft']}", {"content": "pwned"}),
    "cancel their draft": lambda m, t: ("DELETE", f"/scheduled-posts/{t['draft']}", None),
    "list by their client": lambda m, t: ("GET", f"/scheduled-posts?clientId={t['client']}", None),
    "list by their account": lambda m, t: (
        "GET", f"/scheduled-posts?socialAccountId={t['account']}", None),
    "list posts as their company": lambda m, t: (
        "GET", f"/scheduled-posts?companyId={t['company']}", None),
    "list accounts as their company": lambda m, t: (
        "GET", f"/social-accounts?companyId={t['company']}", None),
    "reconnect their account": lambda m, t: (
        "POST", f"/social-accounts/{t['account']}/reconnect", {"accessToken": "mine now"}),
    "reconnect my account as their company": lambda m, t: (
        "POST", f"/social-accounts/{m['account']}/reconnect", {"accessToken": "x",
                                                              "companyId": t["company"]}),
    "list clients as their company": lambda m, t: ("GET", f"/clients?companyId={t['company']}", None),
    "schedule on their account": lambda m, t: (
        "POST", "/schedule-post", body(m, socialAccountId=t["account"])),
    "schedule on mine and theirs": lambda m, t: (
        "POST", "/schedule-post", {**body(m), "socialAccountId": None,
                                   "socialAccountIds": [m["account"], t["account"]]}),
    "schedule for their client": lambda m, t: ("POST", "/schedule-post", body(m, clientId=t["client"])),
    "schedule as their company": lambda m, t: (
        "POST", "/schedule-post", body(m, companyId=t["company"])),
    "connect account for their client": lambda m, t: (
        "POST", "/social-accounts", {"platform": "x", "externalId": "1", "accessToken": "t",
                                     "clientId": t["client"]}),
    "connect account as their company": lambda m, t: (
        "POST", "/social-accounts", {"platform": "x", "externalId": "1", "accessToken": "t",
                                     "companyId": t["company"]}),
    "add client as their company": lambda m, t: (
        "POST", "/clients", {"name": "c", "companyId": t["company"]}),
    "add webhook as their company": lambda m, t: (
        "POST", "/webhooks", {"url": "https://93.184.215.14/x", "events": ["post.failed"],
                              "companyId": t["company"]}),
    "list webhooks as their company": lambda m, t: ("GET", f"/webhooks?companyId={t['company']}", None),
    "delete their webhook": lambda m, t: ("DELETE", f"/webhooks/{t['webhook']}", None),
    "their webhook's deliveries": lambda m, t: ("GET", f"/webhooks/{t['webhook']}/deliveries", None),
    "connect as their company": lambda m, t: ("POST", "/connect/x", {"companyId": t["company"]}),
    "connect for their client": lambda m, t: ("POST", "/connect/x", {"clientId": t["client"]}),
    "finish their connect flow": lambda m, t: (
        "GET", f"/connect/x/callback?code=c&state={t['state']}", None),
    "best times of their account": lambda m, t: ("GET", f"/optimal-times?accountId={t['account']}", None),
    "best times as their company": lambda m, t: ("GET", f"/optimal-times?companyId={t['company']}", None),
    "their post's metrics": lambda m, t: ("GET", f"/scheduled-posts/{t['post']}/metrics", None),
    "rotate their account": lambda m, t: (
        "POST", "/evergreen/rotate", {"count": 1, "accountIds": [t["account"]]}),
    "rotate as their company": lambda m, t: (
        "POST", "/evergreen/rotate", {"count": 1, "companyId": t["company"]}),
    "rule on their account": lambda m, t: (
        "POST", "/evergreen/rules", {"accountIds": [t["account"]], "postsPerWeek": 1}),
    "rule as their company": lambda m, t: (
        "POST", "/evergreen/rules", {"accountIds": [m["account"]], "postsPerWeek": 1,
                                     "companyId": t["company"]}),
    "list rules as their company": lambda m, t: ("GET", f"/evergreen/rules?companyId={t['company']}", None),
    "delete their rule": lambda m, t: ("DELETE", f"/evergreen/rules/{t['rule']}", None),
    "list media as their company": lambda m, t: ("GET", f"/media?companyId={t['company']}", None),
    "delete their media": lambda m, t: ("DELETE", f"/media/{t['media']}", None),
    "schedule with their media": lambda m, t: (
        "POST", "/schedule-post", body(m, mediaIds=[t["media"]])),
}


# Operations that take no id at all: test_lists_show_only_the_callers_own covers them. An
# upload (POST /media) names no id either: its company is the key's. /limits/check reads no
# data; /imports takes ids only inside its CSV, where another company's account is a bad line
# (422) worded as an unknown one (tests/test_imports.py).
TAKES_NO_IDS = {("GET", "/api/queue/health"), ("POST", "/media"), ("POST", "/limits/check"),
                ("POST", "/imports")}


def snapshot(db: Db, company_id: str) -> dict:
    """Everything of a company, to prove a refused request changed none of it."""
    return {
        table: [dict(r) for r in db.rows(f"SELECT * FROM {table} WHERE {where} ORDER BY 1",
                                         c=company_id)]
        for table, where in [
            ("post_details", "company_id = :c"), ("social_accounts", "company_id = :c"),
            ("clients", "company_id = :c"), ("webhooks", "company_id = :c"),
            ("evergreen_rules", "company_id = :c"),
            ("oauth_states", "company_id = :c"),
            ("post_schedule", "post_detail_id IN (SELECT id FROM post_details WHERE company_id = :c)"),
        ]}


@pytest.fixture
def two(db) -> tuple[dict, dict, ApiClient]:
    mine, theirs = seeded(db, "Mine"), seeded(db, "Theirs")
    client = ApiClient(db, mine["tenant"].api_key)
    yield mine, theirs, client
    client.close()


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_another_companys_ids_are_404(db, two, case):
    mine, theirs, api = two
    before = snapshot(db, theirs["company"]), snapshot(db, mine["company"])
    method, path, payload = MATRIX[case](mine, theirs)
    if payload is not None:
        payload = {k: v for k, v in payload.items() if v is not None}
    response = api.call(method, path, json=payload)
    assert response.status_code == 404, (case, response.status_code, response.get_json())
    error = response.get_json()["error"]
    assert error["code"] == "not_found"
    # The answer names nothing of theirs but the id we sent.
    text_ = response.get_data(as_text=True)
    assert "Theirs" not in text_
    assert (snapshot(db, theirs["company"]), snapshot(db, mine["company"])) == before


def test_lists_show_only_the_callers_own(db, two):
    mine, theirs, api = two
    for path in ("/scheduled-posts", "/social-accounts", "/clients", "/webhooks", "/api/queue/health",
                 "/evergreen/rules", "/optimal-times"):
        response = api.get(path)
        assert response.status_code == 200
        text_ = response.get_data(as_text=True)
        for key in ("company", "account", "client", "post", "failed", "webhook", "rule", "draft"):
            assert theirs[key] not in text_, (path, key)
    assert {p["id"] for p in api.get("/scheduled-posts").get_json()["items"]} == {
        mine["post"], mine["failed"], mine["draft"]}


def test_the_matrix_covers_every_operation(db, two):
    """A new endpoint must join the matrix: every documented operation taking an id is in it."""
    _, _, api = two
    document = api.get("/openapi.json").get_json()
    covered = {(method, path.split("?")[0]) for method, path, _ in
               (MATRIX[c](_ids("m"), _ids("t")) for c in MATRIX)}
    as_template = {_ids("t")["post"]: "{post_id}", _ids("t")["failed"]: "{post_id}",
                   _ids("t")["draft"]: "{post_id}",
                   _ids("t")["account"]: "{account_id}", _ids("m")["account"]: "{account_id}",
                   _ids("t")["webhook"]: "{webhook_id}", _ids("t")["media"]: "{media_id}",
                   _ids("t")["rule"]: "{rule_id}",
                   "/connect/x": "/connect/{platform}"}
    for concrete, template in as_template.items():
        covered = {(m, p.replace(concrete, template)) for m, p in covered}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if operation["security"] and (method.upper(), path) not in TAKES_NO_IDS:
                assert (method.upper(), path) in covered, (method, path)


def _ids(side: str) -> dict:
    return {k: f"{side}-{k}" for k in ("company", "account", "client", "post", "failed", "webhook",
                                       "state", "media", "rule", "draft")}
