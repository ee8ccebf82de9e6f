"""The composer and the week view's drag to reschedule, in headless Chromium (as
tests/test_dashboard_browser.py drives it) over MariaDB: counters as the server counts, limits'
errors inline, save as draft, at a time in the company's zone, at "best", edit and reschedule a
pending post, drag a post to another day and hour; every change through the CSRF-checked API."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect
from sqlalchemy import select, update

from app.models import Company, PostDetail, PostSchedule
from app.services.accounts import add_account
from app.services.limits import length_for
from app.services.posts import NewPost, schedule_post

from conftest import SHOTS, make_tenant, sign_in

pytestmark = pytest.mark.mariadb
NEW_YORK = ZoneInfo("America/New_York")
# Strings where counting goes wrong: ZWJ emoji sequences, flags, skin tones, a combining accent
# that X normalizes (NFC), CJK, a URL (X: 23), astral characters (two UTF-16 units in JS).
TRICKY = ["👨‍👩‍👧‍👦 family", "🇫🇷🇯🇵 flags", "👍🏽 ok", "e\u0301te\u0301", "界界界 日本語",
          "see https://example.com/a/very/long/path?with=query ok", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math",
          "a" * 279 + "😀"]


@pytest.fixture
def acme(mariadb):
    tenant = make_tenant(mariadb, name="Acme")
    with mariadb.sessions.begin() as session:
        session.execute(update(Company).where(Company.id == tenant.company_id)
                        .values(timezone="America/New_York"))
    x = add_account(mariadb.sessions, tenant.company_id, "x", "acme-x", "token",
                    datetime.now(timezone.utc), display_name="Acme on X")
    return tenant, x.id


def open_composer(browser, site, key, query=""):
    page = browser.new_page()
    sign_in(page, site, key)
    page.goto(f"{site}/dashboard/compose{query}")
    return page


def save_at(page, content: str, local: str, said: str = "Scheduled") -> None:
    """Write `content`, choose "At" `local` (the company's zone) and save."""
    page.fill("#content", content)
    page.check("[data-testid=when-time]")
    page.fill("#at", local)
    page.click("#save")
    expect(page.get_by_test_id("composer-message")).to_contain_text(said)


def test_counters_count_as_the_server_does(browser, site, acme, mariadb):
    tenant, x = acme
    page = open_composer(browser, site, tenant.api_key)
    page.check(f"input[value='{x}']")
    page.check(f"input[value='{tenant.account_id}']")
    for text in TRICKY:
        page.fill("#content", text)
        expected = {p: length_for(p, text) for p in ("x", "sandbox")}
        expect(page.locator("#counters li[data-platform='x']")).to_have_attribute(
            "data-length", str(expected["x"]))
        expect(page.locator("#counters li[data-platform='sandbox']")).to_have_attribute(
            "data-length", str(expected["sandbox"]))
    # the last string is 281 for X (the emoji weighs 2): over, said inline, before saving
    expect(page.locator("#counters li[data-platform='x']")).to_have_class("over")
    expect(page.locator("#counters li[data-platform='x']")).to_contain_text("at most 280")
    page.click("#save")
    expect(page.get_by_test_id("composer-message")).to_contain_text("Refused")
    expect(page.locator("#errors li[data-field='content']")).to_contain_text("X allows at most 280")
    page.screenshot(path=str(SHOTS / "composer-over.png"), full_page=True)
    assert mariadb.scalar("SELECT COUNT(*) FROM post_details") == 0


def test_save_as_draft_on_two_accounts(browser, site, acme, mariadb):
    tenant, x = acme
    page = open_composer(browser, site, tenant.api_key)
    page.check(f"input[value='{x}']")
    page.check(f"input[value='{tenant.account_id}']")
    page.fill("#content", "A draft for both")
    page.click("#save")
    expect(page.get_by_test_id("composer-message")).to_contain_text("Saved as draft")
    rows = mariadb.rows("SELECT status, social_account_id FROM post_details")
    assert sorted(r["social_account_id"] for r in rows) == sorted([x, tenant.account_id])
    assert {r["status"] for r in rows} == {"draft"}
    assert mariadb.scalar("SELECT COUNT(*) FROM post_schedule") == 0


def test_schedule_at_a_local_time_and_at_best(browser, site, acme, mariadb):
    tenant, x = acme
    page = open_composer(browser, site, tenant.api_key)
    page.check(f"input[value='{tenant.account_id}']")
    save_at(page, "At nine in New York", "2031-07-01T09:00")
    run_at = mariadb.scalar("SELECT s.run_at FROM post_schedule s JOIN post_details d "
                            "ON d.id = s.post_detail_id WHERE d.content = 'At nine in New York'")
    assert run_at == datetime(2031, 7, 1, 13, 0)  # EDT: UTC-4 (the column holds naive UTC)

    page.goto(f"{site}/dashboard/compose")
    page.check(f"input[value='{x}']")
    page.fill("#content", "Whenever it works best")
    page.check("[data-testid=when-best]")
    page.click("#save")
    expect(page.get_by_test_id("composer-message")).to_contain_text("Scheduled")
    row = mariadb.rows("SELECT d.status, s.run_at FROM post_schedule s JOIN post_details d "
                       "ON d.id = s.post_detail_id WHERE d.content = 'Whenever it works best'")[0]
    local = row["run_at"].replace(tzinfo=timezone.utc).astimezone(NEW_YORK)
    assert row["status"] == "pending" and local.minute == 0
    assert local > datetime.now(NEW_YORK)


def test_edit_and_reschedule_a_pending_post_and_schedule_a_draft(browser, site, acme, mariadb):
    tenant, _ = acme
    now = datetime.now(timezone.utc)
    pending = schedule_post(mariadb.sessions, tenant.company_id, NewPost(
        [tenant.account_id], "Old text", now + timedelta(days=5)), now).posts[0]
    draft = schedule_post(mariadb.sessions, tenant.company_id, NewPost(
        [tenant.account_id], "Draft text", None), now).posts[0]
    page = browser.new_page()
    sign_in(page, site, tenant.api_key)
    page.goto(f"{site}/dashboard/posts/{pending.id}")
    page.get_by_test_id("edit").click()
    expect(page.locator("#content")).to_have_value("Old text")
    expect(page.get_by_test_id("when-draft")).to_have_count(0)  # a pending post stays queued
    save_at(page, "New text", "2031-02-03T08:15", said="Saved")
    row = mariadb.rows("SELECT d.content, s.run_at FROM post_details d JOIN post_schedule s "
                       "ON s.post_detail_id = d.id WHERE d.id = :p", p=pending.id)[0]
    assert row["content"] == "New text" and row["run_at"] == datetime(2031, 2, 3, 13, 15)  # EST

    page.goto(f"{site}/dashboard/compose?post={draft.id}")
    save_at(page, "Draft text, finished", "2031-02-04T10:00")
    assert mariadb.scalar("SELECT status FROM post_details WHERE id = :p", p=draft.id) == "pending"
    assert mariadb.scalar("SELECT run_at FROM post_schedule WHERE post_detail_id = :p",
                          p=draft.id) == datetime(2031, 2, 4, 15, 0)


def test_drag_a_post_to_another_day_and_hour(browser, site, acme, mariadb):
    tenant, _ = acme
    now = datetime.now(timezone.utc)
    monday = date(2031, 3, 3)  # a Monday; New York on EST (DST starts on the 9th)
    start = datetime.combine(monday, time(9, 40), NEW_YORK)
    post = schedule_post(mariadb.sessions, tenant.company_id, NewPost(
        [tenant.account_id], "Move me", start), now).posts[0]
    page = browser.new_page()
    sign_in(page, site, tenant.api_key)
    page.goto(f"{site}/dashboard/calendar?view=week&date={monday.isoformat()}")
    card = page.locator(f"a[data-post='{post.id}']")
    expect(card).to_have_attribute("draggable", "true")
    card.drag_to(page.get_by_test_id("slot-2031-03-05-15"))
    expect(page.get_by_test_id("calendar-message")).to_contain_text("Moved to 2031-03-05 15:40")
    expect(page.locator(f"[data-date='2031-03-05'] a[data-post='{post.id}']")).to_have_count(1)
    assert mariadb.scalar("SELECT run_at FROM post_schedule WHERE post_detail_id = :p",
                          p=post.id) == datetime(2031, 3, 5, 20, 40)
    # onto a day without an hour: the same time that day
    page.locator(f"a[data-post='{post.id}']").drag_to(page.locator("[data-date='2031-03-07'] .posts"))
    expect(page.locator(f"[data-date='2031-03-07'] a[data-post='{post.id}']")).to_have_count(1)
    assert mariadb.scalar("SELECT run_at FROM post_schedule WHERE post_detail_id = :p",
                          p=post.id) == datetime(2031, 3, 7, 20, 40)
    page.screenshot(path=str(SHOTS / "calendar-dragged.png"), full_page=True)


def test_the_composer_api_calls_need_the_csrf_token(browser, site, acme, mariadb):
    tenant, _ = acme
    page = open_composer(browser, site, tenant.api_key)
    statuses = page.evaluate("""async (account) => {
        const post = (url, body, headers) => fetch(url, {method: 'POST', body: JSON.stringify(body),
            headers: {'Content-Type': 'application/json', ...headers}}).then(r => r.status);
        const token = document.querySelector('meta[name="csrf-token"]').content;
        return [await post('/schedule-post', {socialAccountId: account, content: 'x'}, {}),
                await post('/limits/check', {content: 'x', platforms: ['x']}, {}),
                await post('/limits/check', {content: 'x', platforms: ['x']}, {'X-CSRF-Token': token})];
    }""", tenant.account_id)
    assert statuses == [401, 401, 200]
    assert mariadb.scalar("SELECT COUNT(*) FROM post_details") == 0


def test_a_draft_composed_in_the_browser_goes_out_at_best_and_is_measured(browser, site, acme, mariadb):
    """The issue's end to end: composed as a draft in the browser, scheduled at "best" there,
    published by a worker when due, its metrics collected an hour later (clock moved)."""
    from app.services.metrics import BUCKET
    from worker.cycle import Worker

    tenant, _ = acme
    page = open_composer(browser, site, tenant.api_key)
    page.check(f"input[value='{tenant.account_id}']")
    page.fill("#content", "Composed, then best")
    page.click("#save")
    expect(page.get_by_test_id("composer-message")).to_contain_text("Saved as draft")
    post_id = page.locator("#composer-message a[data-post]").get_attribute("data-post")
    page.goto(f"{site}/dashboard/compose?post={post_id}")
    page.check("[data-testid=when-best]")
    page.click("#save")
    expect(page.get_by_test_id("composer-message")).to_contain_text("Scheduled")
    run_at = mariadb.scalar("SELECT run_at FROM post_schedule WHERE post_detail_id = :p",
                            p=post_id).replace(tzinfo=timezone.utc)
    assert Worker(mariadb.settings, mariadb.sessions,
                  clock=lambda: run_at + timedelta(minutes=1)).run().published == 1
    assert mariadb.scalar("SELECT status FROM post_details WHERE id = :p", p=post_id) == "published"
    # a collection runs at the end of its bucket (app/services/metrics.py)
    measured_at = run_at + timedelta(hours=1, minutes=1) + BUCKET
    Worker(mariadb.settings, mariadb.sessions, clock=lambda: measured_at).run()
    assert mariadb.scalar("SELECT checkpoint FROM post_metrics WHERE post_detail_id = :p",
                          p=post_id) == "1h"
    page.goto(f"{site}/dashboard/posts/{post_id}")
    expect(page.get_by_test_id("metrics").locator("tr[data-checkpoint='1h']")).to_have_count(1)
