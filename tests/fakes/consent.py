"""An OAuth 2.0 authorization dialog as the platforms show one: `GET` renders the app's request
(each scope a ticked checkbox the user may untick, an Allow and a Cancel button); the form's
`POST` redirects back to `redirect_uri` with a single-use code and the `state`, or with
`error=access_denied`. `authorize(url)` is the user clicking through it, for tests that have no
browser (and `python -m tests.fakes.allow URL` from a shell).
"""
from __future__ import annotations

import html
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from tests.fakes.server import Answer, Received

CODE_LIFETIME = 600  # seconds a code may wait to be redeemed


@dataclass
class Grant:
    """What the user agreed to, behind one authorization code."""
    client_id: str
    redirect_uri: str
    scopes: list[str]
    issued: float
    used: bool = False


class ConsentDialog:
    """The dialog of one fake platform (scopes may come comma- or space-separated); `denial` is
    what a Cancel adds to the redirect besides `error=access_denied` (the platform's own error_reason, error_description)."""

    def __init__(self, title: str, denial: dict | None = None, fragment: str = ""):
        self.title = title
        self.denial = denial or {}
        self.fragment = fragment  # what the platform tacks on the redirect (Threads: "#_")
        self.client_id: str | None = None  # None: any app id is known
        self._grants: dict[str, Grant] = {}
        self._lock = threading.Lock()

    def page(self, request: Received) -> Answer:
        query = request.query
        problem = self._check(query)
        if problem:
            return Answer(400, html=f"<!doctype html><title>Error</title><p>{html.escape(problem)}")
        scopes = [s for s in query.get("scope", "").replace(",", " ").split() if s]
        hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                         for k, v in query.items() if k != "scope")
        boxes = "".join(
            f'<label><input type="checkbox" name="scope" value="{html.escape(s)}" checked> '
            f"{html.escape(s)}</label><br>" for s in scopes)
        return Answer(200, html=(
            f"<!doctype html><title>{html.escape(self.title)}</title>"
            f"<h1>{html.escape(self.title)}</h1><p>App {html.escape(query['client_id'])} asks "
            f'for:</p><form method="post" action="{html.escape(request.path)}">{hidden}{boxes}'
            '<button name="decision" value="allow" data-testid="allow">Allow</button> '
            '<button name="decision" value="deny" data-testid="deny">Cancel</button></form>'))

    def decide(self, request: Received) -> Answer:
        """The form's POST: back to the app with a code, or with access_denied."""
        form = parse_qs(request.body.decode())
        query = {k: v[-1] for k, v in form.items() if k != "scope"}
        problem = self._check(query)
        if problem:
            return Answer(400, html=f"<!doctype html><p>{html.escape(problem)}")
        back = {"state": query["state"]} if "state" in query else {}
        if query.get("decision") != "allow":
            back = {"error": "access_denied", **self.denial, **back}
        else:
            code = secrets.token_urlsafe(24)
            with self._lock:
                self._grants[code] = Grant(query["client_id"], query["redirect_uri"],
                                           form.get("scope", []), time.time())
            back = {"code": code, **back}
        joiner = "&" if "?" in query["redirect_uri"] else "?"
        return Answer(302, headers={"Location": query["redirect_uri"] + joiner + urlencode(back)
                                    + self.fragment})

    def redeem(self, code: str, client_id: str, redirect_uri: str) -> Grant | str:
        """The grant behind `code`, spent; or why it cannot be had."""
        with self._lock:
            grant = self._grants.get(code)
            if grant is None or grant.used:
                return "This authorization code has been used." if grant else \
                    "Invalid verification code format."
            if time.time() - grant.issued > CODE_LIFETIME:
                return "This authorization code has expired."
            if grant.client_id != client_id or grant.redirect_uri != redirect_uri:
                return "Error validating verification code. Please make sure your redirect_uri " \
                       "is identical to the one you used in the OAuth dialog request"
            grant.used = True
            return grant

    def _check(self, query: dict[str, str]) -> str | None:
        for name in ("client_id", "redirect_uri"):
            if not query.get(name):
                return f"The parameter {name} is required"
        if self.client_id is not None and query["client_id"] != self.client_id:
            return "Invalid App ID: the app id is not known"
        if query.get("response_type", "code") != "code":
            return "response_type must be code"
        return None


def authorize(url: str, allow: bool = True, scopes: list[str] | None = None) -> str:
    """A user clicking through the dialog at `url`: the URL the platform redirects back to.
    `scopes`: the ones left ticked (default: every one asked for). A platform that redirects
    at once (tests/fakes/oauth.py, as for a user who allowed the app before) is followed."""
    page = requests.get(url, timeout=5, allow_redirects=False)
    if page.status_code == 302:
        return page.headers["Location"]
    assert page.status_code == 200, (page.status_code, page.text)
    query = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
    asked = [s for s in query.pop("scope", "").replace(",", " ").split() if s]
    form = [*query.items(), *(("scope", s) for s in (asked if scopes is None else scopes)),
            ("decision", "allow" if allow else "deny")]
    answer = requests.post(url.split("?")[0], data=form, timeout=5, allow_redirects=False)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]

