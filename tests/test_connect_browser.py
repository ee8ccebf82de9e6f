"""The README's connect walkthrough in a real browser (Debian's Chromium, headless, driven by
Playwright): sign in to the dashboard, click each platform's Connect button, go through the fake
platform's authorize page (X's redirects at once, as for a user who allowed the app before;
Facebook's, Mastodon's and Threads' dialogs are clicked through: Allow, or Cancel), and see the
accounts listed."""
from __future__ import annotations

import socket
from dataclasses import replace

import pytest
from playwright.sync_api import expect

from app import create_app
from conftest import SHOTS, make_tenant, serving
from tests.fakes import running_fakes
from tests.fakes.oauth import oauth_settings


pytestmark = pytest.mark.mariadb


@pytest.fixture
def fakes():
    with running_fakes() as running:
        yield running


@pytest.fixture
def site(mariadb, fakes):
    """The app on a real socket whose address is its SCHEDULER_PUBLIC_URL (the redirect URIs)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    settings = replace(mariadb.settings, **oauth_settings(fakes, public_url=url))
    with serving(create_app({"SETTINGS": settings}), port) as served:
        yield served


def accounts_page(browser, site: str, key: str):
    page = browser.new_page()
    page.goto(f"{site}/dashboard")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    expect(page.get_by_test_id("health")).to_be_visible()
    page.goto(f"{site}/dashboard/accounts")
    return page


def test_connect_x_facebook_instagram_mastodon_and_threads_in_a_browser(browser, site, mariadb, fakes):
    tenant = make_tenant(mariadb, name="Acme")
    page = accounts_page(browser, site, tenant.api_key)

    page.get_by_test_id("connect-x").get_by_role("button").click()
    expect(page.get_by_test_id("connected")).to_contain_text("x: @acme")

    page.get_by_test_id("connect-facebook").get_by_role("button").click()
    expect(page).to_have_title("Log in With Facebook")  # the fake's Login dialog
    expect(page.locator("input[name=scope][value=pages_manage_posts]")).to_be_checked()
    page.get_by_test_id("allow").click()
    expect(page.get_by_test_id("connected")).to_contain_text(
        "facebook: Acme Bakery, @acmebakery, Acme Deli")

    mastodon = page.get_by_test_id("connect-mastodon")
    mastodon.locator("input[name=instance]").fill(fakes.mastodon.base_url)
    mastodon.get_by_role("button").click()
    expect(page).to_have_title("Authorize Post Scheduler")  # the instance's own page
    page.get_by_test_id("allow").click()
    expect(page.get_by_test_id("connected")).to_contain_text("mastodon: ")

    page.get_by_test_id("connect-threads").get_by_role("button").click()
    page.get_by_test_id("allow").click()
    expect(page.get_by_test_id("connected")).to_contain_text("threads: @acme.threads")

    listed = page.get_by_test_id("accounts")
    for platform, name in [("x", "@acme"), ("facebook", "Acme Bakery"), ("facebook", "Acme Deli"),
                           ("instagram", "@acmebakery"), ("threads", "@acme.threads"),
                           ("mastodon", mastodon_name(mariadb, tenant))]:
        row = listed.locator("tr").filter(has=page.get_by_role("cell", name=name, exact=True))
        expect(row.locator("td").first).to_have_text(platform)
    page.screenshot(path=str(SHOTS / "connect-accounts.png"), full_page=True)
    assert mariadb.scalar("SELECT COUNT(*) FROM social_accounts WHERE company_id = :c AND "
                          "platform <> 'sandbox'", c=tenant.company_id) == 6
    # the browser went through the fakes' real pages, the dialogs' forms included
    assert fakes.x.requests("GET", fakes.x.authorize_path)
    assert fakes.graph.requests("POST", "/v25.0/dialog/oauth")
    assert fakes.mastodon.requests("POST", "/oauth/authorize")
    assert fakes.threads.requests("POST", "/oauth/authorize")


def mastodon_name(mariadb, tenant) -> str:
    return mariadb.scalar("SELECT display_name FROM social_accounts WHERE company_id = :c AND "
                          "platform = 'mastodon'", c=tenant.company_id)


def test_cancel_on_the_dialog_connects_nothing_and_says_so(browser, site, mariadb, fakes):
    tenant = make_tenant(mariadb, name="Acme")
    page = accounts_page(browser, site, tenant.api_key)
    page.get_by_test_id("connect-instagram").get_by_role("button").click()
    page.get_by_test_id("deny").click()
    expect(page.get_by_test_id("connect-error")).to_contain_text("did not grant access")
    assert mariadb.scalar("SELECT COUNT(*) FROM social_accounts WHERE company_id = :c AND "
                          "platform IN ('facebook', 'instagram')", c=tenant.company_id) == 0


def test_an_unticked_permission_is_named_on_the_page(browser, site, mariadb, fakes):
    tenant = make_tenant(mariadb, name="Acme")
    page = accounts_page(browser, site, tenant.api_key)
    page.get_by_test_id("connect-facebook").get_by_role("button").click()
    page.locator("input[name=scope][value=instagram_content_publish]").uncheck()
    page.get_by_test_id("allow").click()
    expect(page.get_by_test_id("connect-error")).to_contain_text(
        "missing: instagram_content_publish")
