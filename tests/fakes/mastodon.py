"""A Mastodon instance as the scheduler uses it: `/api/v2/instance` (its limits), app
registration (`POST /api/v1/apps`), the authorization dialog and `POST /oauth/token`,
`verify_credentials`, `POST /api/v1/statuses` honouring `Idempotency-Key` (kept an hour, as
Mastodon keeps it) and the account's statuses newest first; errors as `{"error"}` with the
X-RateLimit-* headers (the reset an ISO 8601 time).
"""
from __future__ import annotations

import html
import secrets
import time
from datetime import datetime, timedelta, timezone

from tests.fakes.consent import ConsentDialog
from tests.fakes.server import Answer, FakePlatform, Received

IDEMPOTENCY_SECONDS = 3600
OPEN = ("/api/v2/instance", "/api/v1/apps", "/oauth/authorize", "/oauth/token")


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class FakeMastodon(FakePlatform):
    name = "mastodon"
    reset_in = 300  # seconds until X-RateLimit-Reset in a 429
    public_paths = OPEN

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_characters = 500
        self.compatible = True  # False: not a Mastodon server (404 on its API)
        self.dialog = ConsentDialog("Authorize Post Scheduler")
        self.apps: dict[str, dict] = {}     # client_id -> {"secret", "redirect_uris", "scopes"}
        self.tokens_issued: dict[str, str] = {}  # token -> scopes
        self.user = {"id": "109384", "username": "acme", "acct": "acme",
                     "display_name": "Acme Inc."}
        self.statuses: list[dict] = []
        self._keys: dict[tuple[str, str], tuple[float, dict]] = {}  # (token, key) -> status

    @property
    def domain(self) -> str:
        return self.base_url.split("://", 1)[1]

    def route(self, request: Received) -> Answer:
        if not self.compatible:
            return Answer(404, html="<!doctype html><title>Not Found</title><p>Not Found")
        path, method = request.path, request.method
        if path == "/api/v2/instance" and method == "GET":
            return Answer(200, self._instance())
        if path == "/api/v1/apps" and method == "POST":
            return self._register(request)
        if path == "/oauth/authorize":
            return self.dialog.page(request) if method == "GET" else self.dialog.decide(request)
        if path == "/oauth/token" and method == "POST":
            return self._token(request)
        if path == "/api/v1/accounts/verify_credentials" and method == "GET":
            return Answer(200, {**self.user, "url": f"{self.base_url}/@acme"})
        if path == "/api/v1/statuses" and method == "POST":
            return self._post(request)
        if path == f"/api/v1/accounts/{self.user['id']}/statuses" and method == "GET":
            return self._timeline(request)
        return Answer(404, {"error": "Record not found"})

    def _instance(self) -> dict:
        return {"domain": self.domain, "title": "Fake Mastodon", "version": "4.3.2",
                "configuration": {
                    "urls": {"streaming": "wss://" + self.domain},
                    "statuses": {"max_characters": self.max_characters,
                                 "max_media_attachments": 4, "characters_reserved_per_url": 23},
                    "media_attachments": {"image_size_limit": 16777216}}}

    def _register(self, request: Received) -> Answer:
        body = request.json if request.headers.get("content-type", "").startswith(
            "application/json") else request.form
        body = body or {}
        if not body.get("client_name") or not body.get("redirect_uris"):
            return Answer(422, {"error": "Validation failed: Application name can't be blank, "
                                         "Redirect URI can't be blank"})
        client_id, secret = secrets.token_urlsafe(16), secrets.token_urlsafe(24)
        self.apps[client_id] = {"secret": secret, "redirect_uris": body["redirect_uris"],
                                "scopes": body.get("scopes", "read")}
        return Answer(200, {"id": str(len(self.apps)), "name": body["client_name"],
                            "client_id": client_id, "client_secret": secret,
                            "redirect_uri": body["redirect_uris"]})

    def _token(self, request: Received) -> Answer:
        form = request.form
        app = self.apps.get(form.get("client_id", ""))
        if app is None or app["secret"] != form.get("client_secret"):
            return Answer(401, {"error": "invalid_client", "error_description": "Client "
                                "authentication failed due to unknown client, no client "
                                "authentication included, or unsupported authentication method."})
        grant = self.dialog.redeem(form.get("code", ""), form["client_id"],
                                   form.get("redirect_uri", ""))
        if isinstance(grant, str):
            return Answer(400, {"error": "invalid_grant", "error_description": grant})
        token = secrets.token_urlsafe(32)
        self.tokens_issued[token] = " ".join(grant.scopes)
        return Answer(200, {"access_token": token, "token_type": "Bearer",
                            "scope": " ".join(grant.scopes), "created_at": int(time.time())})

    def _post(self, request: Received) -> Answer:
        body = request.json or {}
        text = body.get("status")
        if not isinstance(text, str) or not text.strip():
            return Answer(422, {"error": "Validation failed: Text can't be blank"})
        if len(text) > self.max_characters:
            return Answer(422, {"error": f"Validation failed: Text character limit of "
                                         f"{self.max_characters} exceeded"})
        key = (request.token() or "", request.headers.get("idempotency-key", ""))
        now = time.time()
        with self._lock:
            if key[1] and key in self._keys and now - self._keys[key][0] < IDEMPOTENCY_SECONDS:
                return Answer(200, self._keys[key][1])
            status = {"id": self.new_id(), "created_at": _iso(datetime.now(timezone.utc)),
                      "visibility": body.get("visibility", "public"),
                      "in_reply_to_id": body.get("in_reply_to_id"),
                      "content": "<p>" + html.escape(text).replace("\n", "<br />") + "</p>",
                      "url": f"{self.base_url}/@acme/{len(self.statuses) + 1}",
                      "account": self.user}
            self.statuses.append(status)
            if key[1]:
                self._keys[key] = (now, status)
        return Answer(200, status, self._ratelimit(299))

    def forget_idempotency_keys(self) -> None:
        """The instance's hour has passed: every key it kept is forgotten."""
        with self._lock:
            self._keys.clear()

    def add_posts(self, texts: list[str]) -> None:
        """Statuses posted by someone else on the account, newest last."""
        now = _iso(datetime.now(timezone.utc))
        with self._lock:
            self.statuses.extend({"id": self.new_id(), "created_at": now, "visibility": "public",
                                  "content": f"<p>{html.escape(t)}</p>", "account": self.user}
                                 for t in texts)

    def _timeline(self, request: Received) -> Answer:
        if not self.reads_allowed:
            return Answer(403, {"error": "This action is outside the authorized scopes"})
        newest_first = list(reversed(self.statuses))
        max_id = request.query.get("max_id")
        if max_id:
            newest_first = [s for s in newest_first if int(s["id"]) < int(max_id)]
        return Answer(200, newest_first[:int(request.query.get("limit", 20))])

    def _ratelimit(self, remaining: int, reset_in: int | None = None) -> dict:
        reset = datetime.now(timezone.utc) + timedelta(seconds=reset_in or self.reset_in)
        return {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": _iso(reset)}

    def failure(self, kind: str, request: Received, **options) -> Answer:
        if kind == "auth":
            return Answer(401, {"error": "The access token is invalid"})
        if kind == "rate_limited":
            return Answer(429, {"error": "Too many requests"},
                          self._ratelimit(0, options.get("reset_in")))
        if kind == "retryable":
            return Answer(503, {"error": "Service Unavailable"})
        return Answer(422, {"error": "Validation failed: Text character limit of 500 exceeded"})
