"""Threads' login as graph.threads.net speaks it: the Authorization Window (`/oauth/authorize`,
which redirects back with `#_` after the code), `POST /oauth/access_token` (code -> short-lived
token and user id), `GET /access_token?grant_type=th_exchange_token` (-> 60-day token),
`GET /refresh_access_token?grant_type=th_refresh_token` and `GET /v1.0/me?fields=id,username`.

`ThreadsLogin` is a mixin, so the Threads publishing fake can speak it on the same host;
`FakeThreadsLogin` is it on a server of its own.
"""
from __future__ import annotations

import secrets
import time

from tests.fakes.consent import ConsentDialog
from tests.fakes.server import Answer, FakePlatform, Received

SHORT_LIVED = 3600        # seconds: a token from a code
LONG_LIVED = 5_184_000    # seconds: 60 days


def _graph_error(message: str, code: int = 190, status: int = 400) -> Answer:
    return Answer(status, {"error": {"message": message, "type": "OAuthException", "code": code,
                                     "fbtrace_id": "AThReAdS"}})


class ThreadsLogin:
    """`app_id`/`app_secret`: the Threads app's credentials (None: any); `user`: who signs in;
    `refresh_min_age`: seconds a long-lived token must have lived before it may be refreshed
    (Threads says 24 hours; 0 here unless a test sets it)."""

    version = "v1.0"
    app_id = "fake-threads-app"
    app_secret = "fake-threads-secret"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dialog = ConsentDialog("Threads: allow access", fragment="#_", denial={
            "error_reason": "user_denied", "error_description": "The user denied your request."})
        self.user = {"id": "25001", "username": "acme.threads"}
        self.issued: dict[str, dict] = {}  # token -> {"kind", "expires_at", "issued_at"}
        self.refresh_min_age = 0

    public_paths = ("/oauth/authorize", "/oauth/access_token")

    def login_route(self, request: Received) -> Answer | None:
        """The answer to a login request; None for the rest of the Threads API."""
        if request.path == "/oauth/authorize":
            return self.dialog.page(request) if request.method == "GET" else \
                self.dialog.decide(request)
        if request.path == "/oauth/access_token" and request.method == "POST":
            return self._code(request)
        handler = {"/access_token": self._exchange, "/refresh_access_token": self._refresh,
                   f"/{self.version}/me": self._me}.get(request.path)
        return handler(request) if handler is not None and request.method == "GET" else None

    def _code(self, request: Received) -> Answer:
        form = request.form
        if (self.app_id is not None and form.get("client_id") != self.app_id) or (
                self.app_secret is not None and form.get("client_secret") != self.app_secret):
            return Answer(400, {"error_type": "OAuthException", "code": 400,
                                "error_message": "Invalid platform app"})
        if form.get("grant_type") != "authorization_code":
            return Answer(400, {"error_type": "OAuthException", "code": 400,
                                "error_message": "Unsupported grant_type"})
        grant = self.dialog.redeem(form.get("code", ""), form.get("client_id", ""),
                                   form.get("redirect_uri", ""))
        if isinstance(grant, str):
            return Answer(400, {"error_type": "OAuthException", "code": 400,
                                "error_message": grant})
        token = self._mint("short", SHORT_LIVED, grant.scopes)
        return Answer(200, {"access_token": token, "user_id": int(self.user["id"])})

    def _exchange(self, request: Received) -> Answer:
        query = request.query
        if query.get("grant_type") != "th_exchange_token":
            return _graph_error("Unsupported grant_type", 100)
        if self.app_secret is not None and query.get("client_secret") != self.app_secret:
            return _graph_error("Error validating client secret.", 1)
        old = self._live(request.token())
        if old is None or old["kind"] != "short":
            return _graph_error("Error validating access token: Session has expired.")
        return self._long_lived(old["scopes"])

    def _refresh(self, request: Received) -> Answer:
        if request.query.get("grant_type") != "th_refresh_token":
            return _graph_error("Unsupported grant_type", 100)
        old = self._live(request.token())
        if old is None or old["kind"] != "long":
            return _graph_error("Error validating access token: Session has expired.")
        if time.time() - old["issued_at"] < self.refresh_min_age:
            return _graph_error("The access token is too young to be refreshed.", 100)
        return self._long_lived(old["scopes"])

    def _long_lived(self, scopes: list[str]) -> Answer:
        token = self._mint("long", LONG_LIVED, scopes)
        return Answer(200, {"access_token": token, "token_type": "bearer",
                            "expires_in": LONG_LIVED})

    def _me(self, request: Received) -> Answer:
        token = self._live(request.token())
        if token is None:
            return _graph_error("Error validating access token: Session has expired.")
        fields = request.query.get("fields", "id").split(",")
        return Answer(200, {k: v for k, v in self.user.items() if k in fields})

    def _mint(self, kind: str, lifetime: int, scopes: list[str]) -> str:
        token = "THAA" + secrets.token_urlsafe(24)
        self.issued[token] = {"kind": kind, "expires_at": time.time() + lifetime,
                              "issued_at": time.time(), "scopes": list(scopes)}
        return token

    def _live(self, token: str | None) -> dict | None:
        found = self.issued.get(token or "")
        return found if found is not None and found["expires_at"] > time.time() else None

    def expire(self, token: str) -> None:
        """The platform lets `token` lapse (a test of what a refused refresh does)."""
        self.issued[token]["expires_at"] = 0


class FakeThreadsLogin(ThreadsLogin, FakePlatform):
    name = "threads"

    def route(self, request: Received) -> Answer:
        answer = self.login_route(request)
        return answer if answer is not None else _graph_error(
            f"Unsupported request: {request.method} {request.path}", 100)

    def failure(self, kind: str, request: Received, **options) -> Answer:
        if kind == "auth":
            return _graph_error("Error validating access token: Session has expired.")
        if kind == "retryable":
            return _graph_error("An unexpected error has occurred. Please retry your request "
                                "later.", 2, 500)
        if kind == "rate_limited":
            return _graph_error("Application request limit reached", 4)
        return _graph_error("(#100) Invalid parameter", 100)
