"""Browser-facing protections for every response: the security headers, the reverse-proxy trust
that decides whether a request came over HTTPS, and the same-origin check of the dashboard's forms.

A small after_request hook rather than Flask-Talisman: six fixed headers and one origin check
do not justify a dependency, and the policy stays readable in one place.
"""
from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

# The dashboard's own script and stylesheet only; no inline script. Inline style *attributes*
# (the queue-depth bars' widths) are allowed: they run nothing, and Jinja escapes what goes in.
CSP = "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "style-src-attr 'unsafe-inline'",
    "img-src 'self' data:", "connect-src 'self'", "object-src 'none'", "base-uri 'none'",
    "form-action 'self'", "frame-ancestors 'none'",
])
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
HSTS = "max-age=31536000; includeSubDomains"
CACHEABLE = {"static", "health.openapi"}  # public, unchanging for a deployment: may be cached


def register(app: Flask, trusted_proxies: int) -> None:
    if trusted_proxies:
        # Only then is X-Forwarded-Proto believed (request.is_secure), from that many hops.
        # Flask's documented way to add a middleware; mypy sees a method replaced.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=trusted_proxies,  # type: ignore[method-assign]
                                x_proto=trusted_proxies, x_host=trusted_proxies,
                                x_port=trusted_proxies)
    app.after_request(_secure_headers)


def _secure_headers(response):
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    if request.endpoint not in CACHEABLE:
        # Every other answer is a company's data or depends on who asks: never stored.
        response.headers["Cache-Control"] = "no-store"
    return response


def same_origin() -> bool:
    """The request was sent by a page of this site: its Origin (or, without one, its Referer)
    names this host. A request with neither is refused: every browser sends one on a POST."""
    source = request.headers.get("Origin") or request.headers.get("Referer") or ""
    return urlsplit(source).netloc == request.host and source != "null"


def tokens_match(given: str | None, expected: str | None) -> bool:
    if not given or not expected:
        return False
    return hmac.compare_digest(given, expected)
