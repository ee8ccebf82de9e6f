"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright, over a
seeded MariaDB and the app served on a real socket. Screenshots go to test-output/screenshots/."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect
from sqlalchemy import update

from app.models import Company, PostDetail, PostSchedule, SocialAccount, WorkerRun
from app.statuses import QueueStatus
from app.services.posts import NewPost, schedule_post
from worker.cycle import Worker
from worker.publishers.base import PermanentError

from conftest import SHOTS, add_due_posts, make_tenant, sign_in
from test_queue import Scripted

CALENDAR_UTC = datetime(2030, 1, 15, 3, 30, tzinfo=timezone.utc)  # 22:30 on the 14th in New York
BUSY_DAY_UTC = datetime(2030, 1, 16, 14, 0, tzinfo=timezone.utc)  # the 16th in New York
BUSY_POSTS = 40
LONG_LABEL = "Winter sale starts Friday: everything in the shop at half price until Sunday night"

pytestmark = pytest.mark.mariadb


@pytest.fixture
def seeded(mariadb):
    """Acme (New York) with published, failed, pending, stuck and future posts, an account to
    reconnect; Other with posts of its own."""
    db = mariadb
    acme, other = make_tenant(db, name="Acme"), make_tenant(db, name="Other")
    with db.sessions.begin() as session:
        session.execute(update(Company).where(Company.id == acme.company_id)
                        .values(timezone="America/New_York"))
    now = datetime.now(timezone.utc)
    add_due_posts(db, acme, 4, run_at=now - timedelta(minutes=1), content="acme due")
    Worker(db.settings, db.sessions, {"sandbox": Scripted(None, None, PermanentError(
        "the platform refused this text"))}).run()          # 3 published, 1 failed
    add_due_posts(db, acme, 2, run_at=now - timedelta(seconds=120), content="acme waiting")
    future = schedule_post(db.sessions, acme.company_id, NewPost(
        [acme.account_id], "acme calendar post", CALENDAR_UTC), now).posts[0]
    pending = schedule_post(db.sessions, acme.company_id, NewPost(
        [acme.account_id], "acme cancel me", now + timedelta(days=3)), now).posts[0]
    add_due_posts(db, other, 3, run_at=now - timedelta(minutes=1), content="OTHER SECRET")
    broken = make_tenant(db, platform="x", name="Acme-x")
    [held] = add_due_posts(db, acme, 1, run_at=now + timedelta(days=1), content="acme held")
    long_post = schedule_post(db.sessions, acme.company_id, NewPost(
        [acme.account_id], LONG_LABEL, BUSY_DAY_UTC), now).posts[0]
    add_due_posts(db, acme, BUSY_POSTS - 1, run_at=BUSY_DAY_UTC + timedelta(hours=2),
                  content="busy day post with a label of some length")
    with db.sessions.begin() as session:
        session.execute(update(SocialAccount).where(SocialAccount.id == broken.account_id)
                        .values(company_id=acme.company_id, status="needs_reconnect"))
        session.execute(update(PostSchedule).where(PostSchedule.id == held)
                        .values(status="waiting"))
        session.add_all([  # a run killed long ago, and one still going
            WorkerRun(worker_id="host-dead", started_at=now - timedelta(minutes=30)),
            WorkerRun(worker_id="host-live", started_at=now - timedelta(seconds=5))])
    return {"acme": acme, "other": other, "future": future.id, "pending": pending.id, "now": now,
            "long": long_post.id}


def test_every_figure_equals_the_database(browser, site, seeded, mariadb):
    page = browser.new_page()
    sign_in(page, site, seeded["acme"].api_key)
    company = seeded["acme"].company_id
    counts = {r["status"]: r["n"] for r in mariadb.rows(
        "SELECT s.status, COUNT(*) AS n FROM post_schedule s JOIN post_details d "
        "ON d.id = s.post_detail_id WHERE d.company_id = :c GROUP BY s.status", c=company)}
    assert counts["waiting"] == 1
    for status in QueueStatus:
        expect(page.get_by_test_id(f"depth-{status}")).to_have_text(str(counts.get(status, 0)))
    published_hour = mariadb.scalar(
        "SELECT COUNT(*) FROM publish_attempts a JOIN post_schedule s ON s.id = a.post_schedule_id "
        "JOIN post_details d ON d.id = s.post_detail_id WHERE d.company_id = :c "
        "AND a.outcome = 'published' AND a.finished_at >= :since", c=company,
        since=(datetime.now(timezone.utc) - timedelta(hours=1)).replace(tzinfo=None))
    assert published_hour == 3
    expect(page.get_by_test_id("published-hour")).to_have_text(str(published_hour))
    expect(page.get_by_test_id("success-rate")).to_have_text("75.0%")  # 3 of 4 attempts
    bars = page.locator("[data-testid=throughput] rect")
    assert sum(int(v) for v in bars.evaluate_all("rs => rs.map(r => r.dataset.value)")) == 3
    expect(page.get_by_test_id("issues").locator("tr")).to_have_count(2)  # header + the failure
    expect(page.get_by_test_id("issues")).to_contain_text("the platform refused this text")
    runs = mariadb.scalar("SELECT COUNT(*) FROM worker_runs")
    expect(page.get_by_test_id("runs").locator("tr")).to_have_count(runs + 1)
    runs_table = page.get_by_test_id("runs")
    expect(runs_table.locator("tr[data-state=abandoned]")).to_have_count(1)
    expect(runs_table.locator("tr[data-state=abandoned]")).to_contain_text("host-dead")
    expect(runs_table.locator("tr[data-state=abandoned]")).to_contain_text("abandoned")
    expect(runs_table.locator("tr[data-state=running]")).to_contain_text("host-live")
    expect(runs_table.locator("tr[data-state=finished]")).to_have_count(runs - 2)
    expect(page.get_by_test_id("reconnect")).to_contain_text("Acme-x x")
    expect(page.get_by_test_id("health")).to_have_text("degraded")  # waited 2 min, no run since
    expect(page.get_by_test_id("rule-lateness")).to_contain_text("degraded")
    expect(page.get_by_test_id("rule-worker")).to_contain_text("healthy")
    assert "OTHER SECRET" not in page.content()
    page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)


def test_the_throughput_chart_has_a_time_axis_in_the_companys_clock(browser, site, seeded):
    page = browser.new_page()
    sign_in(page, site, seeded["acme"].api_key)
    ticks = page.get_by_test_id("time-axis").locator("span")
    expect(ticks).to_have_count(5)  # every 15 minutes over the hour, now included
    labels = ticks.all_text_contents()
    assert [int(a) for a in ticks.evaluate_all("ts => ts.map(t => t.dataset.ago)")] == [60, 45, 30, 15, 0]
    new_york = ZoneInfo("America/New_York")
    shown = datetime.now(new_york)
    nows = {(shown - timedelta(minutes=m)).strftime("%H:%M") for m in range(3)}  # page is fresh
    assert labels[-1] in nows, (labels, nows)
    hour_ago = datetime.strptime(labels[0], "%H:%M") + timedelta(hours=1)
    assert hour_ago.strftime("%H:%M") == labels[-1]
    # in order along the axis, from left to right, under the chart and inside its width
    chart = page.get_by_test_id("throughput").bounding_box()
    boxes = [ticks.nth(i).bounding_box() for i in range(5)]
    assert [b["x"] for b in boxes] == sorted(b["x"] for b in boxes)
    assert boxes[0]["x"] >= chart["x"] - 1 and boxes[-1]["x"] + boxes[-1]["width"] <= chart["x"] + chart["width"] + 1
    assert all(b["y"] >= chart["y"] + chart["height"] - 1 for b in boxes)


def test_actions_are_shown_only_where_they_can_succeed(browser, site, seeded, mariadb):
    page = browser.new_page()
    sign_in(page, site, seeded["acme"].api_key)
    for post_status, cancel, retry in [("published", 0, 0), ("failed", 0, 1), ("pending", 1, 0)]:
        post_id = mariadb.scalar("SELECT d.id FROM post_details d JOIN post_schedule s "
                                 "ON s.post_detail_id = d.id WHERE d.company_id = :c AND "
                                 "d.status = :s LIMIT 1", c=seeded["acme"].company_id,
                                 s=post_status)
        page.goto(f"{site}/dashboard/posts/{post_id}")
        expect(page.get_by_test_id("post-status")).to_have_text(post_status)
        expect(page.get_by_test_id("cancel")).to_have_count(cancel)
        expect(page.get_by_test_id("retry")).to_have_count(retry)
    held = mariadb.scalar("SELECT post_detail_id FROM post_schedule WHERE status = 'waiting'")
    page.goto(f"{site}/dashboard/posts/{held}")
    expect(page.get_by_test_id("cancel")).to_have_count(1)  # a waiting post can be cancelled
    expect(page.get_by_test_id("retry")).to_have_count(0)


def test_the_calendar_puts_a_post_on_its_local_day_and_hour(browser, site, seeded):
    page = browser.new_page()
    sign_in(page, site, seeded["acme"].api_key)
    for view in ("week", "month"):
        page.goto(f"{site}/dashboard/calendar?view={view}&date=2030-01-14")
        post = page.locator(f"[data-date='2030-01-14'] a[data-post='{seeded['future']}']")
        expect(post).to_have_count(1)
        expect(post).to_have_attribute("data-time", "22:30")
        expect(post).to_have_class("post pending")
        expect(page.locator(f"[data-date='2030-01-15'] a[data-post='{seeded['future']}']")).to_have_count(0)
        page.screenshot(path=str(SHOTS / f"calendar-{view}.png"), full_page=True)
    page.locator(f"a[data-post='{seeded['future']}']").click()
    expect(page.get_by_test_id("post-status")).to_have_text("pending")
    expect(page.locator("pre.content")).to_have_text("acme calendar post")


@pytest.mark.parametrize("view", ["week", "month"])
def test_calendar_labels_fit_and_a_busy_day_scrolls(browser, site, seeded, view):
    page = browser.new_page()
    sign_in(page, site, seeded["acme"].api_key)
    page.goto(f"{site}/dashboard/calendar?view={view}&date=2030-01-16")
    busy, quiet = page.locator("[data-date='2030-01-16']"), page.locator("[data-date='2030-01-17']")
    expect(busy.locator("a[data-post]")).to_have_count(BUSY_POSTS)
    # the whole text is there, wrapped inside the day's width: nothing cut sideways
    label = busy.locator(f"a[data-post='{seeded['long']}']")
    expect(label.locator(".text")).to_have_text(LONG_LABEL)
    assert label.evaluate("a => a.scrollWidth <= a.clientWidth")
    line = float(label.evaluate("a => parseFloat(getComputedStyle(a).lineHeight)"))
    assert label.bounding_box()["height"] > 1.5 * line  # it wraps instead of being cut
    assert LONG_LABEL in label.get_attribute("title")
    # forty posts scroll inside the day, which keeps the height of a quiet day
    posts = busy.locator(".posts")
    assert posts.evaluate("p => p.scrollHeight > p.clientHeight + 100")
    assert posts.evaluate("p => getComputedStyle(p).overflowY") == "auto"
    assert abs(busy.bounding_box()["height"] - quiet.bounding_box()["height"]) < 2
    assert page.evaluate("document.documentElement.scrollHeight") < 1400
    last = busy.locator("a[data-post]").last
    last.scroll_into_view_if_needed()
    expect(last).to_be_in_viewport()
    page.screenshot(path=str(SHOTS / f"calendar-busy-{view}.png"), full_page=True)


def test_cancel_works_on_pending_and_is_refused_on_published(browser, site, seeded, mariadb):
    page = browser.new_page()
    sign_in(page, site, seeded["acme"].api_key)
    page.goto(f"{site}/dashboard/posts/{seeded['pending']}")
    page.get_by_test_id("cancel").click()
    expect(page.get_by_test_id("message")).to_contain_text("Done: the post is cancelled")
    expect(page.get_by_test_id("post-status")).to_have_text("cancelled")  # after the reload
    assert mariadb.scalar("SELECT status FROM post_details WHERE id = :p",
                          p=seeded["pending"]) == "cancelled"

    # the page was loaded while the post was pending; a worker published it meanwhile
    page.goto(f"{site}/dashboard/posts/{seeded['future']}")
    with mariadb.sessions.begin() as session:
        session.execute(update(PostSchedule).where(PostSchedule.post_detail_id == seeded["future"])
                        .values(status="done"))
        session.execute(update(PostDetail).where(PostDetail.id == seeded["future"])
                        .values(status="published"))
    page.get_by_test_id("cancel").click()
    expect(page.get_by_test_id("message")).to_contain_text("Refused: the post is already published")
    page.screenshot(path=str(SHOTS / "post-refused.png"), full_page=True)
    assert mariadb.scalar("SELECT status FROM post_details WHERE id = :p",
                          p=seeded["future"]) == "published"


def test_another_companys_key_sees_none_of_it(browser, site, seeded, mariadb):
    page = browser.new_page()
    sign_in(page, site, seeded["other"].api_key)
    content = page.content()
    expect(page.get_by_test_id("company")).to_have_text("Other · UTC")
    assert "acme due" not in content and "the platform refused this text" not in content
    expect(page.get_by_test_id("depth-done")).to_have_text("0")
    expect(page.get_by_test_id("depth-pending")).to_have_text("3")
    assert page.get_by_test_id("reconnect").count() == 0
    page.goto(f"{site}/dashboard/calendar?view=week&date=2030-01-14")
    expect(page.locator("a[data-post]")).to_have_count(0)
    response = page.goto(f"{site}/dashboard/posts/{seeded['pending']}")
    assert response.status == 404
    # and the API behind the buttons refuses Acme's post to Other's session too
    status = page.evaluate("""async (id) => {
        const token = document.querySelector('meta[name="csrf-token"]')?.content || '';
        const r = await fetch('/scheduled-posts/' + id, {method: 'DELETE',
                                                         headers: {'X-CSRF-Token': token}});
        return r.status; }""", seeded["pending"])
    assert status in (401, 404)
    assert mariadb.scalar("SELECT status FROM post_details WHERE id = :p",
                          p=seeded["pending"]) == "pending"


def test_sign_out_and_bad_keys(browser, site, seeded):
    page = browser.new_page()
    page.goto(f"{site}/dashboard")
    page.fill("#api_key", "sk_not_a_key")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("unknown or revoked")
    sign_in(page, site, seeded["acme"].api_key)
    cookie = next(c for c in browser.cookies() if c["name"] == "session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert seeded["acme"].api_key not in cookie["value"]
    page.click("text=Sign out")
    expect(page.locator("#api_key")).to_be_visible()


def test_the_best_times_heatmap_and_a_posts_engagement(browser, site, seeded, mariadb):
    """Under the CSP, without a console error: the 7 x 24 heatmap (the sandbox account has no
    engagement yet: the priors, whose best window starts Tuesday 9:00), then the post page's
    engagement table once the +1 h collection has run."""
    page = browser.new_page()
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    sign_in(page, site, seeded["acme"].api_key)
    page.get_by_role("link", name="Best times").click()
    page.select_option("#account", seeded["acme"].account_id)
    page.click("form[method=get] button[type=submit]")
    heatmap = page.get_by_test_id("heatmap")
    expect(heatmap.locator("td")).to_have_count(168)
    expect(heatmap.locator("td.top")).to_have_count(20)
    expect(heatmap.locator("td[data-weekday='1'][data-hour='9']")).to_have_attribute("data-score", "100")
    expect(page.get_by_test_id("basis")).to_contain_text("priors")
    page.screenshot(path=str(SHOTS / "best-times.png"), full_page=True)
    Worker(mariadb.settings, mariadb.sessions, clock=lambda: seeded["now"] + timedelta(hours=2)).run()
    with mariadb.sessions() as session:
        published = session.scalar(PostDetail.__table__.select().with_only_columns(PostDetail.id)
                                   .where(PostDetail.company_id == seeded["acme"].company_id,
                                          PostDetail.status == "published")
                                   .order_by(PostDetail.published_at).limit(1))  # the seed's
    page.goto(f"{site}/dashboard/posts/{published}")
    expect(page.get_by_test_id("metrics").locator("tr[data-checkpoint='1h']")).to_have_count(1)
    assert errors == []
