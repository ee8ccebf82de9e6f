"""Engagement metrics: collect_metrics jobs raised with the publish, run at +1 h, +24 h and +7 d,
batched per account (X: 100 ids a call), deferred by rate limits without spending an attempt,
stored in post_metrics and served by GET /scheduled-posts/{id}/metrics and the post page."""
from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from app.models import Job, PostDetail, PostMetrics, PostSchedule
from app.services import metrics
from app.services.accounts import add_account
from tests.fakes import running_fakes
from worker.cycle import Worker

from conftest import T0, ApiClient, add_due_posts

TOKEN = {"x": "x-user-token-metrics", "facebook": "EAAGpage-metrics", "instagram": "EAAGig-metrics",
         "linkedin": "AQVlinkedin-metrics"}
EXTERNAL_ID = {"x": "2244994945", "facebook": "104532118866342", "instagram": "17841405822304914",
               "linkedin": "urn:li:organization:5515715"}


def run(db, at: datetime, settings=None):
    return Worker(settings or db.settings, db.sessions, clock=lambda: at).run()


def collect_jobs(db) -> list[Job]:
    with db.sessions() as session:
        return list(session.scalars(select(Job).where(Job.kind == metrics.COLLECT_KIND)
                                    .order_by(Job.run_at, Job.id)))


def stored(db) -> list[PostMetrics]:
    with db.sessions() as session:
        return list(session.scalars(select(PostMetrics).order_by(PostMetrics.checkpoint,
                                                                 PostMetrics.post_detail_id)))


# -- the schedule of collections, on each engine ---------------------------------------------

def test_collections_run_1h_24h_and_7d_after_the_publish(db, tenant):
    add_due_posts(db, tenant, 3)
    assert run(db, T0).published == 3
    jobs = collect_jobs(db)
    with db.sessions() as session:
        published = set(session.scalars(select(PostDetail.published_at)))
    # Raised in the transaction that recorded the publish: the same `now`, one job per
    # checkpoint for the account's three posts.
    assert published == {T0} and {j.created_at for j in jobs} == {T0}
    assert [(j.payload["checkpoint"], j.run_at) for j in jobs] == [
        ("1h", T0 + timedelta(hours=1)), ("24h", T0 + timedelta(hours=24)),
        ("7d", T0 + timedelta(days=7))]

    run(db, T0 + timedelta(minutes=59))
    assert stored(db) == []
    run(db, T0 + timedelta(hours=1))
    first = stored(db)
    assert [m.checkpoint for m in first] == ["1h"] * 3
    assert all(m.impressions and m.likes is not None and m.raw == {"synthetic": True} for m in first)
    run(db, T0 + timedelta(days=8))
    assert sorted(m.checkpoint for m in stored(db)) == ["1h"] * 3 + ["24h"] * 3 + ["7d"] * 3
    assert {j.status for j in collect_jobs(db)} == {"done"}


def test_a_post_that_is_not_published_is_not_measured(db, tenant):
    """A job whose posts are gone or not published finishes with nothing measured."""
    with db.sessions.begin() as session:
        metrics.schedule_collection(session, [], T0)
    add_due_posts(db, tenant, 1)
    with db.sessions.begin() as session:
        post_id = session.scalar(select(PostDetail.id))
        assert metrics.schedule_collection(session, [post_id], T0) == 3
    run(db, T0 + timedelta(days=8))  # publishes it now, and runs the three (pending post) jobs
    assert [m.checkpoint for m in stored(db)] == []


# -- the platforms, against the fakes ---------------------------------------------------------

@pytest.fixture
def fakes():
    with running_fakes() as running:
        yield running


def fake_settings(db, fakes):
    return replace(db.settings, x_api_base_url=fakes.x.base_url,
                   graph_api_base_url=fakes.graph.base_url,
                   linkedin_api_base_url=fakes.linkedin.base_url, http_read_timeout=2.0,
                   instagram_poll_interval=0.01, concurrency=4)


def due_post(db, tenant, account: str, content: str, now: datetime,
             media: list[str] | None = None) -> str:
    """A post of `account` due now; its id."""
    post_id = str(uuid.uuid4())
    with db.sessions.begin() as session:
        session.execute(insert(PostDetail).values(
            id=post_id, company_id=tenant.company_id, social_account_id=account, group_id=post_id,
            content=content, media_urls=media or [], status="pending", created_at=now,
            updated_at=now))
        session.execute(insert(PostSchedule).values(
            post_detail_id=post_id, run_at=now - timedelta(seconds=1), status="pending",
            attempts=0, max_attempts=3, deferrals=0, created_at=now, updated_at=now))
    return post_id


def published_on(db, tenant, platform: str, content: str, now: datetime,
                 media: list[str] | None = None, settings=None) -> str:
    """A post published on `platform` through the worker; its id."""
    account = add_account(db.sessions, tenant.company_id, platform, EXTERNAL_ID[platform],
                          TOKEN[platform], T0, display_name=f"metrics {platform}").id
    post_id = due_post(db, tenant, account, content, now, media)
    assert run(db, now, settings).published == 1
    return post_id


def one_metrics_row(db, post_id: str) -> PostMetrics:
    (row,) = [m for m in stored(db) if m.post_detail_id == post_id]
    return row


def test_x_reads_public_metrics_100_ids_a_call(sqlite, tenant, fakes):
    settings, now = fake_settings(sqlite, fakes), datetime.now(timezone.utc)
    first = published_on(sqlite, tenant, "x", "metrics on X", now, settings=settings)
    # 149 more posts of the account, published by the worker one transaction at a time would
    # make many jobs: plant them published, then raise one collection for all 150.
    fakes.x.add_posts(TOKEN["x"], [f"older {i}" for i in range(149)])
    with sqlite.sessions() as session:
        account = session.scalar(select(PostDetail.social_account_id).where(PostDetail.id == first))
    planted = [dict(id=str(uuid.uuid4()), company_id=tenant.company_id, social_account_id=account,
                    group_id=str(uuid.uuid4()), content=t["text"], media_urls=[], status="published",
                    platform_post_id=t["id"], published_at=now, created_at=now, updated_at=now)
               for t in fakes.x.tweets if t["text"].startswith("older")]
    fakes.x.metrics[fakes.x.tweets[0]["id"]] = {
        "retweet_count": 3, "reply_count": 4, "like_count": 50, "quote_count": 2,
        "bookmark_count": 6, "impression_count": 2000}
    with sqlite.sessions.begin() as session:
        session.execute(insert(PostDetail), planted)
        session.execute(Job.__table__.delete())
        metrics.schedule_collection(session, [first] + [p["id"] for p in planted], now)
    run(sqlite, metrics.bucket_end(now + timedelta(hours=1)), settings)
    calls = fakes.x.requests("GET", "/2/tweets")
    calls = [c for c in calls if c.path == "/2/tweets"]
    assert sorted(len(c.query["ids"].split(",")) for c in calls) == [50, 100]
    assert {c.query["tweet.fields"] for c in calls} == {"public_metrics"}
    assert {c.headers["authorization"] for c in calls} == {f"Bearer {TOKEN['x']}"}
    assert len([m for m in stored(sqlite) if m.checkpoint == "1h"]) == 150
    assert counts_of(one_metrics_row(sqlite, first)) == (2000, 50, 4, 5, 6, None)


def test_posts_published_minutes_apart_share_one_call(db, tenant, fakes):
    """Three posts of one account published in three runs over four minutes of one bucket: one
    job per checkpoint (the dedupe key; the publishes' transactions went on), one call for the
    three at +1 h."""
    settings = fake_settings(db, fakes)
    start = metrics.bucket_end(datetime.now(timezone.utc)) + timedelta(minutes=1)
    account = add_account(db.sessions, tenant.company_id, "x", EXTERNAL_ID["x"],
                          TOKEN["x"], T0).id
    posts = []
    for minutes in (0, 2, 4):
        now = start + timedelta(minutes=minutes)
        posts.append(due_post(db, tenant, account, f"minute {minutes}", now))
        assert run(db, now, settings).published == 1
    jobs = collect_jobs(db)
    assert sorted(j.payload["checkpoint"] for j in jobs) == ["1h", "24h", "7d"]
    run(db, metrics.bucket_end(start + timedelta(hours=1)), settings)
    (call,) = [c for c in fakes.x.requests("GET", "/2/tweets") if c.path == "/2/tweets"]
    assert len(call.query["ids"].split(",")) == 3
    assert {m.post_detail_id for m in stored(db)} == set(posts)


def test_a_rate_limit_defers_the_collection_without_spending_an_attempt(sqlite, tenant, fakes):
    settings, now = fake_settings(sqlite, fakes), datetime.now(timezone.utc)
    post_id = published_on(sqlite, tenant, "x", "rate limited metrics", now, settings=settings)
    fakes.x.fail_next("rate_limited", match="GET /2/tweets", reset_in=7200)  # past the run's clock
    run(sqlite, metrics.bucket_end(now + timedelta(hours=1)), settings)
    job = next(j for j in collect_jobs(sqlite) if j.payload["checkpoint"] == "1h")
    assert job.status == "pending" and job.attempts == 0 and "Too Many Requests" in job.last_error
    # Deferred to X's x-rate-limit-reset (2 h on the fake's clock), not by a backoff.
    assert abs(job.run_at - (now + timedelta(seconds=7200))) < timedelta(seconds=15)
    assert stored(sqlite) == []
    run(sqlite, job.run_at + timedelta(seconds=1), settings)
    assert one_metrics_row(sqlite, post_id).checkpoint == "1h"


def test_a_collection_still_rate_limited_a_day_after_it_was_due_is_given_up(sqlite, tenant, fakes):
    settings, now = fake_settings(sqlite, fakes), datetime.now(timezone.utc)
    published_on(sqlite, tenant, "x", "never measured", now, settings=settings)
    fakes.x.fail_next("rate_limited", match="GET /2/tweets", reset_in=26 * 3600)
    run(sqlite, metrics.bucket_end(now + timedelta(hours=1)), settings)
    job = next(j for j in collect_jobs(sqlite) if j.payload["checkpoint"] == "1h")
    assert job.status == "failed" and "given up" in job.last_error


LATEST = {"facebook": lambda f: (f.graph, f.graph.posts[-1]["id"]),
          "instagram": lambda f: (f.graph, f.graph.media[-1]["id"]),
          "linkedin": lambda f: (f.linkedin, f.linkedin.posts[-1]["id"])}


def collected(db, tenant, fakes, platform: str, counts: dict, media=None) -> PostMetrics:
    """A post published on `platform` whose counts on the fake are `counts`, measured at +1 h."""
    settings, now = fake_settings(db, fakes), datetime.now(timezone.utc)
    post_id = published_on(db, tenant, platform, f"metrics on {platform}", now, media=media,
                           settings=settings)
    fake, platform_id = LATEST[platform](fakes)
    fake.metrics[platform_id] = counts
    run(db, metrics.bucket_end(now + timedelta(hours=1)), settings)
    return one_metrics_row(db, post_id)


def counts_of(row: PostMetrics) -> tuple:
    return (row.impressions, row.likes, row.comments, row.shares, row.saves, row.clicks)


def test_facebook_reads_insights_reactions_comments_and_shares(sqlite, tenant, fakes):
    row = collected(sqlite, tenant, fakes, "facebook", {"impressions": 900, "likes": 30,
                                                        "comments": 5, "shares": 2, "saves": 0,
                                                        "clicks": 11})
    (call,) = [r for r in fakes.graph.requests("GET") if "ids" in r.query]
    assert call.query["ids"] == fakes.graph.posts[-1]["id"]
    assert "insights.metric(post_impressions" in call.query["fields"]
    assert counts_of(row) == (900, 30, 5, 2, None, 11)


def test_instagram_reads_media_counts_and_insights(sqlite, tenant, fakes):
    row = collected(sqlite, tenant, fakes, "instagram", {"impressions": 1200, "likes": 80,
                                                         "comments": 9, "shares": 4, "saves": 12,
                                                         "clicks": 0},
                    media=["https://cdn.example.com/m.jpg"])
    assert counts_of(row) == (1200, 80, 9, 4, 12, None)


def test_linkedin_reads_social_actions_and_the_organizations_share_statistics(sqlite, tenant, fakes):
    row = collected(sqlite, tenant, fakes, "linkedin", {"impressions": 700, "likes": 21,
                                                        "comments": 3, "shares": 1, "clicks": 14})
    urn = fakes.linkedin.posts[-1]["id"]
    actions = fakes.linkedin.requests("GET", "/rest/socialActions")
    stats = fakes.linkedin.requests("GET", "/rest/organizationalEntityShareStatistics")
    assert len(actions) == len(stats) == 1 and actions[0].query["ids"] == f"List({urn})"
    assert stats[0].query["shares"] == f"List({urn})"
    assert counts_of(row) == (700, 21, 3, 1, None, 14)


# -- reading them back ------------------------------------------------------------------------

def test_the_metrics_endpoint_and_the_post_page(sqlite, tenant, api):
    add_due_posts(sqlite, tenant, 1)
    run(sqlite, T0)
    run(sqlite, T0 + timedelta(hours=2))
    with sqlite.sessions() as session:
        post_id = session.scalar(select(PostDetail.id))
    answer = api.get(f"/scheduled-posts/{post_id}/metrics")
    assert answer.status_code == 200, answer.get_json()
    (item,) = answer.get_json()["items"]
    row = one_metrics_row(sqlite, post_id)
    assert item["checkpoint"] == "1h" and item["impressions"] == row.impressions
    rate = (row.likes + row.comments + row.shares + row.saves + row.clicks) / row.impressions
    assert item["engagementRate"] == pytest.approx(rate)

    other = ApiClient(sqlite, __import__("conftest").make_tenant(sqlite, name="Other").api_key)
    try:
        assert other.get(f"/scheduled-posts/{post_id}/metrics").status_code == 404
    finally:
        other.close()
    assert api.get(f"/scheduled-posts/{uuid.uuid4()}/metrics").status_code == 404

    import re
    client = api.app.test_client()
    token = re.search(r'name="csrf" value="([^"]+)"',
                      client.get("/dashboard").get_data(as_text=True)).group(1)
    client.post("/dashboard/login", data={"api_key": tenant.api_key, "csrf": token},
                headers={"Origin": "http://localhost"})
    page = client.get(f"/dashboard/posts/{post_id}").get_data(as_text=True)
    assert 'data-testid="metrics"' in page and 'data-checkpoint="1h"' in page
    assert f"<td>{row.impressions}</td>" in page


def test_the_api_names_the_same_checkpoints():
    from typing import get_args

    from app.api.planning import MetricsOut

    assert get_args(MetricsOut.model_fields["checkpoint"].annotation) == tuple(metrics.CHECKPOINTS)
