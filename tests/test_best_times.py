"""Best posting times: a planted best slot ranks first (also across a DST change), one outlier
post does not win, the slots are in the company's zone, the priors stand in for thin history,
and next_free_best_time skips a slot a pending post has taken."""
from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert

from app.models import PostDetail, PostMetrics, PostSchedule
from app.services import best_times
from app.services.accounts import add_account, create_company
from app.services.posts import NewPost, schedule_post

from conftest import T0, ApiClient

PARIS = ZoneInfo("Europe/Paris")
# Europe/Paris leaves summer time on Sunday 2026-10-25: 10:00 local is 08:00Z before, 09:00Z after.
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def company(db, tz: str = "Europe/Paris", platform: str = "sandbox"):
    company, key = create_company(db.sessions, "Planner", T0, timezone=tz)
    account = add_account(db.sessions, company.id, platform, f"ext-{uuid.uuid4().hex[:8]}",
                          "token", T0, display_name="planner")
    return company.id, account.id, key


def plant(db, company_id: str, account_id: str, posts: list[tuple[datetime, int, int]]) -> None:
    """Published posts at the given instants with (impressions, interactions) as their metrics."""
    details, metrics = [], []
    for at, impressions, interactions in posts:
        post_id = str(uuid.uuid4())
        details.append(dict(id=post_id, company_id=company_id, social_account_id=account_id,
                            group_id=post_id, content=f"post {post_id}", media_urls=[],
                            status="published", published_at=at, platform_post_id=post_id,
                            created_at=at, updated_at=at))
        metrics.append(dict(post_detail_id=post_id, checkpoint="24h", collected_at=at + timedelta(days=1),
                            impressions=impressions, likes=interactions, comments=None, shares=0,
                            saves=None, clicks=None, raw={}))
    with db.sessions.begin() as session:
        session.execute(insert(PostDetail), details)
        session.execute(insert(PostMetrics), metrics)


def history(tz: ZoneInfo, best: tuple[int, int], start: datetime, weeks: int, seed: int = 7,
            outlier: tuple[int, int] | None = None) -> list[tuple[datetime, int, int]]:
    """`weeks` of posts at several local (weekday, hour) slots with rates around 2 %; the
    `best` slot's posts engage around 5 %; an `outlier` slot gets one post at 60 %."""
    rng = random.Random(seed)
    slots = [(0, 9), (1, 14), (2, 11), (3, 16), (4, 10), (5, 12), best]
    out = []
    for week in range(weeks):
        monday = (start + timedelta(weeks=week)).date()
        monday -= timedelta(days=monday.weekday())
        for weekday, hour in slots:
            local = datetime(monday.year, monday.month, monday.day, hour, 5, tzinfo=tz) + \
                timedelta(days=weekday)
            rate = 0.05 if (weekday, hour) == best else 0.02
            impressions = rng.randint(800, 1200)
            out.append((local.astimezone(timezone.utc), impressions,
                        round(impressions * rate * rng.uniform(0.8, 1.2))))
    if outlier is not None:
        weekday, hour = outlier
        monday = start.date() - timedelta(days=start.date().weekday())
        local = datetime(monday.year, monday.month, monday.day, hour, 5, tzinfo=tz) + \
            timedelta(days=weekday)
        out.append((local.astimezone(timezone.utc), 1000, 600))
    return out


# -- the ranking alone ----------------------------------------------------------------------

def test_a_planted_best_slot_ranks_first_and_one_outlier_does_not_win():
    planted = history(PARIS, best=(1, 10), start=NOW - timedelta(weeks=10), weeks=10,
                      outlier=(6, 20))
    slots = best_times.history_slots([(at.astimezone(PARIS), i / n) for at, n, i in planted])
    assert (slots[0].weekday, slots[0].hour) == (1, 10)
    assert slots[0].score == 100 and slots[0].posts == 10 and slots[0].basis == "history"
    outlier = next(s for s in slots if (s.weekday, s.hour) == (6, 20))
    assert outlier.posts == 1 and outlier.score < 100
    assert len(slots) == 168 and all(0 <= s.score <= 100 for s in slots)


def test_without_the_cap_and_shrinkage_the_outlier_would_win():
    """The test above is not vacuous: by plain per-slot means, the outlier's slot comes first."""
    planted = history(PARIS, best=(1, 10), start=NOW - timedelta(weeks=10), weeks=10,
                      outlier=(6, 20))
    means: dict[tuple[int, int], list[float]] = {}
    for at, n, i in planted:
        local = at.astimezone(PARIS)
        means.setdefault((local.weekday(), local.hour), []).append(i / n)
    assert max(means, key=lambda k: sum(means[k]) / len(means[k])) == (6, 20)


def test_the_priors_name_the_published_windows():
    slots = best_times.prior_slots("linkedin")
    assert {(s.weekday, s.hour) for s in slots[:4]} == {(1, 10), (1, 11), (2, 10), (2, 11)}
    assert all(s.basis == "prior" and s.posts == 0 for s in slots)
    assert best_times.prior_slots("sandbox")[0].score == 100


# -- on each engine -------------------------------------------------------------------------

def test_the_planted_slot_ranks_first_across_a_dst_change(db):
    company_id, account_id, _ = company(db)
    # Five weeks either side of 2026-10-25: the slot's UTC hour moves, its local hour does not.
    planted = history(PARIS, best=(1, 10), start=datetime(2026, 9, 21, tzinfo=timezone.utc), weeks=9)
    utc_hours = {at.hour for at, _, i in planted if at.astimezone(PARIS).hour == 10}
    assert utc_hours == {8, 9}
    plant(db, company_id, account_id, planted)
    tz, slots = best_times.optimal_times(db.sessions, company_id, NOW, account_id=account_id)
    assert tz == "Europe/Paris"
    assert (slots[0].weekday, slots[0].hour, slots[0].score, slots[0].posts) == (1, 10, 100, 9)
    assert len(slots) == best_times.TOP


def test_the_slots_are_in_the_company_zone(db):
    """The same history read by a company in New York: the best slot is its local 04:00 (10:00
    in Paris is 04:00 in New York in November), not 10:00 and not the UTC hour."""
    planted = history(PARIS, best=(1, 10), start=NOW - timedelta(weeks=3), weeks=3)
    for tz, expected in (("Europe/Paris", (1, 10)), ("America/New_York", (1, 4)), ("UTC", (1, 9))):
        company_id, account_id, _ = company(db, tz)
        plant(db, company_id, account_id, planted)
        zone_name, slots = best_times.optimal_times(db.sessions, company_id, NOW,
                                                    account_id=account_id)
        assert zone_name == tz and (slots[0].weekday, slots[0].hour) == expected, tz


def test_thin_history_falls_back_to_the_priors(db):
    company_id, account_id, _ = company(db, platform="facebook")
    plant(db, company_id, account_id, history(PARIS, (1, 10), NOW - timedelta(weeks=1), 1))
    _, slots = best_times.optimal_times(db.sessions, company_id, NOW, account_id=account_id)
    assert len(slots) == 20 and {s.basis for s in slots} == {"prior"}
    assert (slots[0].weekday, slots[0].hour, slots[0].score) == (0, 8, 100)


def test_posts_published_together_count_one_by_one(sqlite):
    """A worker records a batch of publishes with one published_at: ten such posts are ten."""
    company_id, account_id, _ = company(sqlite)
    at = datetime(2026, 11, 17, 14, 0, tzinfo=timezone.utc)  # a Tuesday, 15:00 in Paris
    plant(sqlite, company_id, account_id, [(at, 1000, 30)] * 10)
    _, slots = best_times.optimal_times(sqlite.sessions, company_id, NOW, account_id=account_id)
    assert (slots[0].weekday, slots[0].hour, slots[0].posts, slots[0].basis) == (1, 15, 10, "history")


def test_next_free_best_time_skips_a_taken_slot(db):
    company_id, account_id, _ = company(db)
    plant(db, company_id, account_id, history(PARIS, (1, 10), NOW - timedelta(weeks=10), 10))
    after = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)  # a Monday
    with db.sessions() as session:
        earliest = best_times.next_free_best_time(session, account_id, after, now=NOW)
        ranked = best_times.free_best_times(session, account_id, after, after + timedelta(days=7),
                                            now=NOW)
    best = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)  # Tuesday 10:00 in Paris
    assert ranked[0] == best and after < earliest <= best and earliest == min(ranked)
    schedule_post(db.sessions, company_id, NewPost([account_id], "taken", best + timedelta(minutes=20)),
                  T0)
    schedule_post(db.sessions, company_id, NewPost([account_id], "taken", earliest), T0)
    with db.sessions() as session:
        again = best_times.free_best_times(session, account_id, after, after + timedelta(days=7),
                                           now=NOW)
        next_one = best_times.next_free_best_time(session, account_id, after, now=NOW)
    assert best not in again and earliest not in again and again == [t for t in ranked
                                                                     if t not in (best, earliest)]
    assert next_one == min(again)


# -- the HTTP API ---------------------------------------------------------------------------

def test_optimal_times_over_http(sqlite):
    company_id, account_id, key = company(sqlite)
    now = datetime.now(timezone.utc)
    plant(sqlite, company_id, account_id, history(PARIS, (2, 15), now - timedelta(weeks=8), 7))
    other_id, other_account, _ = company(sqlite)
    api = ApiClient(sqlite, key)
    try:
        answer = api.get(f"/optimal-times?accountId={account_id}&days=90")
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        assert body["timezone"] == "Europe/Paris" and len(body["items"]) == 20
        assert body["items"][0] == {"weekday": 2, "hour": 15, "score": 100, "posts": 7,
                                    "basis": "history"}
        by_platform = api.get("/optimal-times?platform=sandbox").get_json()
        assert by_platform["items"][0] == body["items"][0]
        assert api.get(f"/optimal-times?accountId={other_account}").status_code == 404
        for days in ("0", "366", "-1", "x"):
            refused = api.get(f"/optimal-times?accountId={account_id}&days={days}")
            assert refused.status_code == 422 and "days" in refused.get_json()["error"]["fields"]
        assert api.get("/optimal-times").get_json()["items"][0] == body["items"][0]  # all accounts
        assert api.get(f"/optimal-times?accountId={account_id}&platform=x").status_code == 404
        assert api.get("/optimal-times?platform=x").get_json()["items"][0]["basis"] == "prior"
    finally:
        api.close()


def test_the_dashboard_heatmap(sqlite):
    import re

    from app import create_app

    company_id, account_id, key = company(sqlite)
    plant(sqlite, company_id, account_id,
          history(PARIS, (3, 17), datetime.now(timezone.utc) - timedelta(weeks=6), 5))
    _, other_account, _ = company(sqlite)
    app = create_app({"SETTINGS": sqlite.settings, "TESTING": True})
    client = app.test_client()
    try:
        token = re.search(r'name="csrf" value="([^"]+)"',
                          client.get("/dashboard").get_data(as_text=True)).group(1)
        client.post("/dashboard/login", data={"api_key": key, "csrf": token},
                    headers={"Origin": "http://localhost"})
        page = client.get(f"/dashboard/best-times?account={account_id}")
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and "<script>" not in html
        cells = re.findall(r'<td class="heat-(\d+)( top)?"\s+data-weekday="(\d)" data-hour="(\d+)" '
                           r'data-score="(\d+)"', html)
        assert len(cells) == 168 and sum(1 for c in cells if c[1]) == 20
        best = next(c for c in cells if (c[2], c[3]) == ("3", "17"))
        assert best == ("10", " top", "3", "17", "100")
        assert client.get(f"/dashboard/best-times?account={other_account}").status_code == 404
    finally:
        app.extensions["scheduler"]["engine"].dispose()
