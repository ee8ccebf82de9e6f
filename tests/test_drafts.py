"""Drafts on every engine: a post without scheduledAt has no schedule row (the worker never sees
it), is listed and filtered, edited freely, cancelled, and queued by POST .../schedule at a
time (read as POST /schedule-post reads it) or at "best"; scheduling one draft twice at once
makes exactly one schedule row."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from app.models import Company, PostDetail, PostSchedule
from app.services import posts
from app.services.accounts import mark_needs_reconnect
from worker.cycle import Worker

from conftest import ApiClient, Db, Tenant
from test_api import FUTURE, WHEN, assert_error, rows
from test_queue import Scripted


def draft(api: ApiClient, account_id: str, content: str = "Draft", **extra) -> dict:
    response = api.post("/schedule-post", json={"socialAccountId": account_id,
                                                "content": content, **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["posts"][0]


def test_a_post_without_a_time_is_a_draft_with_no_schedule_row(db, tenant, api):
    post = draft(api, tenant.account_id)
    assert (post["status"], post["queueStatus"], post["scheduledAt"]) == ("draft", None, None)
    assert (post["attempts"], post["maxAttempts"], post["scheduledAtLocal"]) == (0, None, None)
    assert rows(db, PostSchedule) == []
    assert [p.status for p in rows(db, PostDetail)] == ["draft"]
    detail = api.get(f"/scheduled-posts/{post['id']}").get_json()
    assert detail["status"] == "draft" and detail["attemptHistory"] == []


def test_a_draft_is_checked_like_any_post(db, tenant, api):
    assert_error(api.post("/schedule-post", json={"socialAccountId": tenant.account_id,
                                                  "content": "x", "timezone": "Europe/Paris"}),
                 422, "validation_failed", "send both", field="timezone")
    x = api.post("/social-accounts", json={"platform": "x", "externalId": "x1",
                                           "accessToken": "t"}).get_json()["id"]
    assert_error(api.post("/schedule-post", json={"socialAccountId": x, "content": "a" * 281}),
                 422, "validation_failed", "281 characters")
    assert rows(db, PostDetail) == []


def test_the_worker_never_sees_a_draft(db, tenant, api):
    post = draft(api, tenant.account_id)
    publisher = Scripted()
    summary = Worker(db.settings, db.sessions, {"sandbox": publisher},
                     clock=lambda: FUTURE + timedelta(days=400)).run()
    assert summary.claimed == 0 and publisher.calls == 0
    assert api.get(f"/scheduled-posts/{post['id']}").get_json()["status"] == "draft"


def test_drafts_are_listed_after_scheduled_posts_and_filtered(db, tenant, api):
    drafts = {draft(api, tenant.account_id, f"draft {i}")["id"] for i in range(3)}
    scheduled = api.post("/schedule-post", json={"socialAccountId": tenant.account_id,
                                                 "content": "timed", "scheduledAt": WHEN})
    timed = scheduled.get_json()["posts"][0]["id"]
    seen, cursor = [], None
    while True:  # pages of 2 cross from the scheduled post into the drafts
        page = api.get("/scheduled-posts?limit=2" + (f"&cursor={cursor}" if cursor else "")).get_json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen[0] == timed and set(seen[1:]) == drafts and len(seen) == 4
    only = api.get("/scheduled-posts?status=draft").get_json()["items"]
    assert {p["id"] for p in only} == drafts
    window = api.get("/scheduled-posts", query_string={
        "from": (FUTURE - timedelta(days=1)).isoformat(),
        "to": (FUTURE + timedelta(days=1)).isoformat()}).get_json()["items"]
    assert [p["id"] for p in window] == [timed]  # a draft has no time to fall in a window


def test_a_draft_is_edited_freely_but_not_given_a_time_by_patch(db, tenant, api):
    post = draft(api, tenant.account_id)
    for n in range(3):
        response = api.patch(f"/scheduled-posts/{post['id']}",
                             json={"content": f"version {n}", "mediaUrls": ["https://e.com/a.png"]})
        assert response.status_code == 200, response.get_json()
        assert (response.get_json()["content"], response.get_json()["status"]) == (f"version {n}", "draft")
    assert_error(api.patch(f"/scheduled-posts/{post['id']}", json={"scheduledAt": WHEN}),
                 422, "validation_failed", "/schedule", field="scheduledAt")
    assert rows(db, PostSchedule) == []


def test_cancel_a_draft(db, tenant, api):
    post = draft(api, tenant.account_id)
    response = api.delete(f"/scheduled-posts/{post['id']}")
    assert response.status_code == 200
    assert (response.get_json()["status"], response.get_json()["queueStatus"]) == ("cancelled", None)
    assert_error(api.post(f"/scheduled-posts/{post['id']}/schedule", json={"scheduledAt": WHEN}),
                 409, "conflict", "not a draft")
    assert_error(api.patch(f"/scheduled-posts/{post['id']}", json={"content": "again"}),
                 409, "conflict")
    assert_error(api.post(f"/scheduled-posts/{post['id']}/retry"), 409, "conflict")


def test_schedule_a_draft_at_a_time_then_it_is_published(db, tenant, api):
    post = draft(api, tenant.account_id, "goes out")
    response = api.post(f"/scheduled-posts/{post['id']}/schedule", json={"scheduledAt": WHEN})
    assert response.status_code == 200, response.get_json()
    queued = response.get_json()
    assert (queued["status"], queued["queueStatus"]) == ("pending", "pending")
    assert datetime.fromisoformat(queued["scheduledAt"]) == FUTURE
    assert_error(api.post(f"/scheduled-posts/{post['id']}/schedule", json={"scheduledAt": WHEN}),
                 409, "conflict", "not a draft")
    publisher = Scripted()
    Worker(db.settings, db.sessions, {"sandbox": publisher},
           clock=lambda: FUTURE + timedelta(minutes=1)).run()
    assert publisher.calls == 1
    assert api.get(f"/scheduled-posts/{post['id']}").get_json()["status"] == "published"


def test_a_local_time_is_read_in_the_companys_zone(db, tenant, api):
    with db.sessions.begin() as session:
        session.get(Company, tenant.company_id).timezone = "America/New_York"
    post = draft(api, tenant.account_id)
    local = (FUTURE.replace(month=7, day=1) + timedelta(days=366)).strftime("%Y-%m-%dT09:00:00")
    queued = api.post(f"/scheduled-posts/{post['id']}/schedule",
                      json={"scheduledAt": local}).get_json()
    assert queued["timezone"] == "America/New_York"
    assert queued["scheduledAt"].endswith("T13:00:00Z")  # EDT, UTC-4
    assert queued["scheduledAtLocal"].endswith("T09:00:00-04:00")


@pytest.mark.parametrize("body,status,fragment,field", [
    ({"scheduledAt": "2020-01-01T09:00:00Z"}, 422, "in the future", "scheduledAt"),
    ({"scheduledAt": "tomorrow"}, 422, "ISO 8601", "scheduledAt"),
    ({"scheduledAt": "best", "timezone": "Europe/Paris"}, 422, "best", "timezone"),
    ({}, 422, "required", "scheduledAt"),
    ({"scheduledAt": WHEN, "content": "x"}, 422, "unknown field", "content"),
])
def test_bad_schedule_requests_leave_the_draft(db, tenant, api, body, status, fragment, field):
    post = draft(api, tenant.account_id)
    assert_error(api.post(f"/scheduled-posts/{post['id']}/schedule", json=body), status,
                 "validation_failed", fragment, field=field)
    assert rows(db, PostSchedule) == [] and rows(db, PostDetail)[0].status == "draft"


def test_a_draft_of_a_disconnected_account_is_not_queued(db, tenant, api):
    post = draft(api, tenant.account_id)
    mark_needs_reconnect(db.sessions, tenant.account_id, datetime.now(timezone.utc))
    assert_error(api.post(f"/scheduled-posts/{post['id']}/schedule", json={"scheduledAt": WHEN}),
                 409, "conflict", "reconnected")
    assert rows(db, PostSchedule) == []


def test_schedule_at_best_takes_the_next_free_best_time(db, tenant, api):
    first = draft(api, tenant.account_id, "one")
    second = draft(api, tenant.account_id, "two")
    a = api.post(f"/scheduled-posts/{first['id']}/schedule", json={"scheduledAt": "best"})
    b = api.post(f"/scheduled-posts/{second['id']}/schedule", json={"scheduledAt": "best"})
    assert a.status_code == b.status_code == 200, (a.get_json(), b.get_json())
    at_a = datetime.fromisoformat(a.get_json()["scheduledAt"])
    at_b = datetime.fromisoformat(b.get_json()["scheduledAt"])
    now = datetime.now(timezone.utc)
    assert now < at_a < now + timedelta(days=8) and at_a.minute == 0
    assert at_b != at_a  # the first took its slot: the second gets the next free one
    assert a.get_json()["timezone"] == "UTC"


def test_another_companys_draft_is_404(db, tenant, api):
    from conftest import make_tenant
    other = make_tenant(db, name="Other")
    theirs = ApiClient(db, other.api_key)
    try:
        post = draft(theirs, other.account_id)
    finally:
        theirs.close()
    for call in (lambda: api.post(f"/scheduled-posts/{post['id']}/schedule", json={"scheduledAt": WHEN}),
                 lambda: api.patch(f"/scheduled-posts/{post['id']}", json={"content": "mine"}),
                 lambda: api.delete(f"/scheduled-posts/{post['id']}")):
        assert_error(call(), 404, "not_found")


def test_scheduling_one_draft_twice_at_once_queues_it_once(db: Db, tenant: Tenant, api):
    """Two requests (and a cancel) race on one draft: the conditional draft -> pending update
    lets exactly one of them win; there is one schedule row or none."""
    for attempt in range(3):
        post = draft(api, tenant.account_id, f"race {attempt}")
        results, barrier = [], threading.Barrier(3)

        def schedule():
            barrier.wait()
            try:
                posts.schedule_draft(db.sessions, tenant.company_id, post["id"], WHEN, None,
                                     datetime.now(timezone.utc))
                results.append("scheduled")
            except Exception as exc:  # noqa: BLE001 - the loser's error is the point
                results.append(type(exc).__name__)

        def cancel():
            barrier.wait()
            try:
                posts.cancel_post(db.sessions, tenant.company_id, post["id"],
                                  datetime.now(timezone.utc))
                results.append("cancelled")
            except Exception as exc:  # noqa: BLE001
                results.append(type(exc).__name__)

        threads = [threading.Thread(target=schedule), threading.Thread(target=schedule),
                   threading.Thread(target=cancel)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count("scheduled") <= 1, results
        assert set(results) <= {"scheduled", "cancelled", "Conflict", "OperationalError"}, results
        with db.sessions() as session:
            status = session.scalar(select(PostDetail.status).where(PostDetail.id == post["id"]))
            schedules = list(session.scalars(select(PostSchedule).where(
                PostSchedule.post_detail_id == post["id"])))
        if "scheduled" in results:
            # Either it stayed scheduled, or the cancel came after it and cancelled the queue row.
            assert len(schedules) == 1 and status in ("pending", "cancelled"), (results, status)
            assert (status == "cancelled") == (schedules[0].status == "cancelled")
        else:
            assert schedules == [] and status == "cancelled", results


def test_limits_check_answers_as_schedule_post_would(db, tenant, api):
    """The composer's counters: the length and problems POST /schedule-post would find."""
    text = "👨‍👩‍👧 https://example.com/ " + "界" * 130
    response = api.post("/limits/check", json={"content": text, "platforms": ["x", "linkedin", "x"]})
    assert response.status_code == 200, response.get_json()
    by_platform = {item["platform"]: item for item in response.get_json()["items"]}
    assert list(by_platform) == ["x", "linkedin"]
    assert by_platform["x"]["length"] == 2 + 1 + 23 + 1 + 260
    assert by_platform["x"]["counting"] == "weighted"
    assert by_platform["linkedin"]["length"] == len(text) and by_platform["linkedin"]["problems"] == {}
    x = api.post("/social-accounts", json={"platform": "x", "externalId": "x9",
                                           "accessToken": "t"}).get_json()["id"]
    refused = api.post("/schedule-post", json={"socialAccountId": x, "content": text})
    assert_error(refused, 422, "validation_failed", field="content")
    assert refused.get_json()["error"]["fields"]["content"] == by_platform["x"]["problems"]["content"]
    assert_error(api.post("/limits/check", json={"content": "x", "platforms": ["myspace"]}), 422,
                 "validation_failed", field="platforms[0]")
