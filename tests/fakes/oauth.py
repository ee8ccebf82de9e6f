"""An OAuth 2.0 authorization server for a fake platform (RFC 6749, PKCE S256 of RFC 7636): an
authorize page that redirects back at once (as if the user clicked Allow), a token endpoint
that issues expiring access tokens and refresh tokens, rotating them when the platform does
(a spent refresh token is refused), and the access tokens it issued checked on every call.

A fake mixes `OAuthServer` in before FakePlatform and calls `oauth_route` first in `route`.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from tests.fakes.server import Answer, Received


@dataclass
class User:
    id: str
    username: str
    name: str


@dataclass
class Issued:
    user: User
    expires: float | None  # Unix seconds (time.time(), so freezegun moves it)
    scopes: tuple[str, ...] = ()


@dataclass
class Refresh:
    user: User
    scopes: tuple[str, ...]
    used: bool = False
    expires: float | None = None


@dataclass
class Code:
    user: User
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    challenge: str | None
    used: bool = False


class OAuthServer:
    authorize_path = "/oauth/authorize"
    token_path = "/oauth/token"
    client_id = "fake-client-id"
    client_secret = "fake-client-secret"
    client_auth = "basic"      # "basic": HTTP Basic; "body": client_id/client_secret in the form
    pkce = True
    access_ttl: int | None = 7200
    refresh_ttl: int | None = None
    rotate_refresh = True      # a refresh spends the refresh token and issues a new one
    issue_refresh = True
    scope_separator = " "
    token_delay = 0.0          # seconds the token endpoint takes (a race's window)

    def oauth_init(self) -> None:
        self.user = User("2244994945", "acme", "Acme Inc.")
        self.codes: dict[str, Code] = {}
        self.issued: dict[str, Issued] = {}
        self.refresh_tokens: dict[str, Refresh] = {}
        self.deny_next = False               # the user clicks Cancel on the authorize page
        self.grant_scopes: tuple[str, ...] | None = None  # the user unticks some scopes

    @property
    def public_paths(self) -> tuple[str, ...]:
        return (self.authorize_path, self.token_path)

    def refreshes(self) -> list[str]:
        """The refresh token of every refresh request received (scripted failures included)."""
        return [r.form.get("refresh_token", "") for r in self.requests("POST", self.token_path)
                if r.form.get("grant_type") == "refresh_token"]

    def token_valid(self, token: str) -> bool:
        issued = self.issued.get(token)
        if issued is None:
            return super().token_valid(token)
        return issued.expires is None or issued.expires > time.time()

    def user_of(self, token: str | None) -> User:
        issued = self.issued.get(token or "")
        return issued.user if issued else self.user

    def oauth_route(self, request: Received) -> Answer | None:
        if request.path == self.authorize_path and request.method == "GET":
            return self._authorize(request)
        if request.path == self.token_path and request.method == "POST":
            return self._token(request)
        return None

    def give_tokens(self, access_ttl: int | None = None) -> tuple[str, str]:
        """An access and refresh token for the fake's user, as if connected earlier."""
        with self._lock:
            body = self._issue(self.user, (), access_ttl if access_ttl is not None else self.access_ttl)
        return body["access_token"], body["refresh_token"]

    # -- the endpoints ------------------------------------------------------------------

    def _authorize(self, request: Received) -> Answer:
        q = request.query
        if q.get("client_id") != self.client_id or not q.get("redirect_uri"):
            return Answer(400, {"error": "invalid_request", "error_description": "unknown client"})
        if self.deny_next:
            self.deny_next = False
            return _redirect(q["redirect_uri"], error="access_denied", state=q.get("state"),
                             error_description="The user denied the request")
        if self.pkce and q.get("code_challenge_method") != "S256":
            return Answer(400, {"error": "invalid_request", "error_description": "PKCE S256 required"})
        scopes = tuple(q.get("scope", "").split())
        code = secrets.token_urlsafe(24)
        with self._lock:
            self.codes[code] = Code(self.user, q["client_id"], q["redirect_uri"],
                                    self.grant_scopes if self.grant_scopes is not None else scopes,
                                    q.get("code_challenge"))
        return _redirect(q["redirect_uri"], code=code, state=q.get("state"))

    def _token(self, request: Received) -> Answer:
        form = request.form
        if self.token_delay:
            time.sleep(self.token_delay)
        if not self._client_ok(request, form):
            return Answer(401, {"error": "invalid_client", "error_description":
                                "Client authentication failed"})
        with self._lock:
            if form.get("grant_type") == "authorization_code":
                return self._exchange(form)
            if form.get("grant_type") == "refresh_token":
                return self._refresh(form)
        return Answer(400, {"error": "unsupported_grant_type"})

    def _exchange(self, form: dict) -> Answer:
        code = self.codes.get(form.get("code", ""))
        if code is None or code.used or code.redirect_uri != form.get("redirect_uri"):
            return _invalid_grant("Value passed for the authorization code was invalid.")
        if self.pkce and _s256(form.get("code_verifier", "")) != code.challenge:
            return _invalid_grant("Value passed for the code_verifier was invalid.")
        code.used = True
        return Answer(200, self._issue(code.user, code.scopes, self.access_ttl))

    def _refresh(self, form: dict) -> Answer:
        held = self.refresh_tokens.get(form.get("refresh_token", ""))
        if held is None or held.used or (held.expires is not None and held.expires <= time.time()):
            return _invalid_grant("Value passed for the token was invalid.")
        if self.rotate_refresh:
            held.used = True
            return Answer(200, self._issue(held.user, held.scopes, self.access_ttl))
        body = self._issue(held.user, held.scopes, self.access_ttl, refresh=False)
        body["refresh_token"] = form["refresh_token"]
        return Answer(200, body)

    def _issue(self, user: User, scopes: tuple[str, ...], ttl: int | None,
               refresh: bool = True) -> dict:
        access = "at-" + secrets.token_urlsafe(16)
        self.issued[access] = Issued(user, time.time() + ttl if ttl else None, scopes)
        body = {"token_type": "bearer", "access_token": access,
                "scope": self.scope_separator.join(scopes)}
        if ttl:
            body["expires_in"] = ttl
        if self.issue_refresh and refresh:
            token = "rt-" + secrets.token_urlsafe(16)
            self.refresh_tokens[token] = Refresh(
                user, scopes, expires=time.time() + self.refresh_ttl if self.refresh_ttl else None)
            body["refresh_token"] = token
            if self.refresh_ttl:
                body["refresh_token_expires_in"] = self.refresh_ttl
        return body

    def _client_ok(self, request: Received, form: dict) -> bool:
        if self.client_auth == "basic":
            raw = request.headers.get("authorization", "")
            if not raw.startswith("Basic "):
                return False
            given = base64.b64decode(raw[6:]).decode()
            return given == f"{self.client_id}:{self.client_secret}"
        return (form.get("client_id"), form.get("client_secret")) == (self.client_id,
                                                                      self.client_secret)

    def token_failure(self, kind: str) -> Answer | None:
        """A scripted failure of the token endpoint, as OAuth servers answer it."""
        return {"auth": Answer(401, {"error": "invalid_client"}),
                "permanent": _invalid_grant("Value passed for the token was invalid."),
                "retryable": Answer(503, {"error": "temporarily_unavailable"}),
                "garbage": Answer(200, {"unexpected": "an HTML page, a proxy's answer"}),
                "rate_limited": Answer(429, {"error": "rate_limited"}, {"Retry-After": "60"}),
                }.get(kind)


def _invalid_grant(why: str) -> Answer:
    return Answer(400, {"error": "invalid_grant", "error_description": why})


def _redirect(uri: str, **params) -> Answer:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return Answer(302, None, {"Location": f"{uri}{'&' if '?' in uri else '?'}{query}"})


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def oauth_settings(fakes, public_url: str = "https://scheduler.example.com") -> dict:
    """Settings (field names) that point the connect flows at the fakes."""
    from app.config import Settings

    by_env = {env: name for name, env in Settings.ENV.items()}
    return {by_env[k]: v for k, v in fakes.env().items()} | {"public_url": public_url}
