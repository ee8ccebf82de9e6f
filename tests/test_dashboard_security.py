"""The dashboard's sign-in cannot be forged from another site (login CSRF), and every response
carries the security headers: CSP without inline script, no framing, nosniff, a referrer policy,
no-store on anything carrying data, and HSTS only when the request came over HTTPS.
The same pages in a real browser under this CSP: tests/test_dashboard_browser.py."""
from __future__ import annotations

import re
from dataclasses import replace

import pytest

from app import create_app

from conftest import ApiClient

SITE = "http://localhost"


@pytest.fixture
def browser_client(sqlite):
    """A test client with a cookie jar, as a browser on the dashboard."""
    app = create_app({"SETTINGS": sqlite.settings, "TESTING": True})
    yield app.test_client()
    app.extensions["scheduler"]["engine"].dispose()


def form_token(client) -> str:
    page = client.get("/dashboard").get_data(as_text=True)
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def signed_in(client) -> bool:
    return 'data-testid="company"' in client.get("/dashboard").get_data(as_text=True)


def test_sign_in_from_the_page_itself_works(browser_client, tenant):
    token = form_token(browser_client)
    response = browser_client.post("/dashboard/login", data={"api_key": tenant.api_key, "csrf": token},
                                   headers={"Origin": SITE})
    assert response.status_code == 302 and signed_in(browser_client)
    assert form_token(browser_client) != token  # a new token for the signed-in session


@pytest.mark.parametrize("case", ["no token", "wrong token", "other site's origin", "null origin",
                                  "other site's referer", "no origin nor referer", "no cookie"])
def test_a_forged_sign_in_is_refused(browser_client, tenant, case):
    token = form_token(browser_client)
    form = {"api_key": tenant.api_key, "csrf": token}
    headers = {"Origin": SITE}
    if case == "no token":
        del form["csrf"]
    elif case == "wrong token":
        form["csrf"] = token[:-2] + "xx"
    elif case == "other site's origin":
        headers = {"Origin": "https://evil.example"}
    elif case == "null origin":
        headers = {"Origin": "null"}
    elif case == "other site's referer":
        headers = {"Referer": "https://evil.example/dashboard"}
    elif case == "no origin nor referer":
        headers = {}
    elif case == "no cookie":  # the attacker's own token, posted from a browser without its cookie
        browser_client.delete_cookie("session")
    response = browser_client.post("/dashboard/login", data=form, headers=headers)
    assert response.status_code == 403
    assert "came from another site" in response.get_data(as_text=True)
    assert not signed_in(browser_client)


def test_a_same_origin_referer_is_enough_without_origin(browser_client, tenant):
    form = {"api_key": tenant.api_key, "csrf": form_token(browser_client)}
    response = browser_client.post("/dashboard/login", data=form,
                                   headers={"Referer": f"{SITE}/dashboard"})
    assert response.status_code == 302 and signed_in(browser_client)


def test_sign_out_from_another_site_does_nothing(browser_client, tenant):
    token = form_token(browser_client)
    browser_client.post("/dashboard/login", data={"api_key": tenant.api_key, "csrf": token},
                        headers={"Origin": SITE})
    token = form_token(browser_client)
    browser_client.post("/dashboard/logout", data={"csrf": token},
                        headers={"Origin": "https://evil.example"})
    assert signed_in(browser_client)
    browser_client.post("/dashboard/logout", data={"csrf": token}, headers={"Origin": SITE})
    assert not signed_in(browser_client)


PAGES = [("GET", "/dashboard"), ("GET", "/healthz"), ("GET", "/openapi.json"),
         ("GET", "/scheduled-posts"), ("GET", "/social-accounts"), ("GET", "/api/queue/health"),
         ("GET", "/no-such-page"), ("POST", "/clients"), ("GET", "/static/dashboard.css"),
         ("GET", "/metrics"), ("POST", "/dashboard/login")]


@pytest.mark.parametrize("method,path", PAGES)
def test_every_response_carries_the_security_headers(sqlite, tenant, api: ApiClient, method, path):
    response = api.call(method, path)
    headers = response.headers
    csp = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    assert csp["frame-ancestors"] == "'none'" and csp["script-src"] == "'self'"
    assert "unsafe-inline" not in csp["default-src"] + csp["script-src"] + csp["style-src"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in headers  # plain HTTP: HSTS would mean nothing
    if path in ("/static/dashboard.css", "/openapi.json"):
        assert "no-store" not in headers.get("Cache-Control", "")
    else:
        assert headers["Cache-Control"] == "no-store"


def test_the_dashboard_pages_signed_in_are_not_stored(browser_client, tenant):
    token = form_token(browser_client)
    browser_client.post("/dashboard/login", data={"api_key": tenant.api_key, "csrf": token},
                        headers={"Origin": SITE})
    for path in ("/dashboard", "/dashboard/calendar"):
        response = browser_client.get(path)
        assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"


def test_hsts_over_https_and_behind_a_trusted_proxy_only(sqlite, tenant):
    direct = create_app({"SETTINGS": sqlite.settings, "TESTING": True}).test_client()
    assert "Strict-Transport-Security" in direct.get("/healthz", base_url="https://localhost").headers
    forwarded = {"X-Forwarded-Proto": "https"}
    assert "Strict-Transport-Security" not in direct.get("/healthz", headers=forwarded).headers
    proxied = create_app({"SETTINGS": replace(sqlite.settings, trusted_proxies=1),
                          "TESTING": True}).test_client()
    hsts = proxied.get("/healthz", headers=forwarded).headers["Strict-Transport-Security"]
    assert hsts.startswith("max-age=31536000")
    assert "Strict-Transport-Security" not in proxied.get("/healthz").headers
