"""Threads: the authorization window at THREADS_AUTHORIZE_URL; at THREADS_API_BASE_URL, code ->
short-lived token (`POST /oauth/access_token`), `th_exchange_token` -> 60-day token, the user
from `/v1.0/me`. A long-lived token is its own refresh credential: `th_refresh_token` gives a
new 60-day one (once it is a day old, while it is still valid), so refresh jobs keep it alive.
"""
from __future__ import annotations

from functools import cached_property
from urllib.parse import urlencode

from app.oauth.base import Grant, OAuthProvider, Refreshed, Tokens
from app.oauth.http import expires, token_request
from app.statuses import Platform
from app.oauth.meta import APP_CODES, graph_account, refusal
from worker.publishers.base import PublishError, RetryableError
from worker.publishers.graph import GraphClient

PLATFORM = "Threads"
VERSION = "v1.0"
SCOPES = ("threads_basic", "threads_content_publish")


class ThreadsProvider(OAuthProvider):
    platform = Platform.THREADS
    required_settings = ("THREADS_APP_ID", "THREADS_APP_SECRET", "SCHEDULER_PUBLIC_URL")
    required_scopes = SCOPES

    @property
    def base(self) -> str:
        return self.settings.threads_api_base_url.rstrip("/")

    @cached_property
    def api(self) -> GraphClient:
        """Threads answers errors as Graph does: the Graph client's mapping, on Threads' host."""
        client = GraphClient(self.settings, self.http, PLATFORM)
        client.base = self.base
        return client

    def authorize_url(self, state: str, challenge: str | None, redirect_uri: str,
                      extras: dict) -> str:
        return f"{self.settings.threads_authorize_url}?" + urlencode({
            "client_id": self.settings.threads_app_id, "redirect_uri": redirect_uri,
            "scope": ",".join(SCOPES), "response_type": "code", "state": state})

    def finish(self, code: str, verifier: str | None, redirect_uri: str,
               extras: dict) -> list[Grant]:
        try:
            short = token_request(self.http, PLATFORM, f"{self.base}/oauth/access_token", {
                "client_id": self.settings.threads_app_id,
                "client_secret": self.settings.threads_app_secret,
                "grant_type": "authorization_code", "redirect_uri": redirect_uri,
                "code": code.removesuffix("#_")}, secret=self.settings.threads_app_secret)
            now = self.ctx.clock()
            body = self._long_lived("access_token", short["access_token"], {
                "grant_type": "th_exchange_token",
                "client_secret": self.settings.threads_app_secret})
        except PublishError as exc:
            if exc.http_status != 400:
                raise
            raise refusal(exc, APP_CODES, "THREADS_APP_ID and THREADS_APP_SECRET") from None
        user = self.api.get(f"{VERSION}/me", graph_account(body["access_token"]),
                            {"fields": "id,username"})
        if not user.get("id"):
            raise RetryableError("Threads: /me answered without the user's id", http_status=200,
                                 error_code="garbage")
        name = f"@{user['username']}" if user.get("username") else None
        return [Grant(Platform.THREADS, str(user["id"]), name, body["access_token"],
                      expires(body, now))]

    def refreshable(self, tokens: Tokens) -> bool:
        return tokens.expires_at is not None  # the token itself is what is refreshed

    def refresh(self, tokens: Tokens) -> Refreshed:
        now = self.ctx.clock()
        body = self._long_lived("refresh_access_token", tokens.access_token,
                                {"grant_type": "th_refresh_token"})
        return Refreshed(body["access_token"], expires(body, now))

    def _long_lived(self, path: str, token: str, params: dict) -> dict:
        body = self.api.get(path, graph_account(token), params)
        if not isinstance(body.get("access_token"), str) or not body["access_token"]:
            raise RetryableError(f"Threads: /{path} answered without an access token",
                                 http_status=200, error_code="garbage")
        return body

