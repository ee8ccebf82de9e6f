"""X: OAuth 2.0 authorization code with PKCE (a confidential client: Basic auth with
X_CLIENT_ID and X_CLIENT_SECRET), `offline.access` for a refresh token. Access tokens live two
hours; refresh tokens are single use and rotate on every refresh."""
from __future__ import annotations

from urllib.parse import urlencode

from app.oauth.base import Grant, OAuthProvider, Refreshed, Tokens
from app.oauth.http import expires, scopes, token_request
from app.statuses import Platform
from worker.publishers.base import RetryableError
from worker.publishers.http import bearer, json_body

PLATFORM = "X"
SCOPES = ("tweet.read", "tweet.write", "users.read", "offline.access", "media.write")


class XProvider(OAuthProvider):
    platform = Platform.X
    required_settings = ("X_CLIENT_ID", "X_CLIENT_SECRET", "SCHEDULER_PUBLIC_URL")
    required_scopes = SCOPES
    uses_pkce = True
    rotates_refresh_token = True

    @property
    def _token_url(self) -> str:
        return f"{self.settings.x_api_base_url.rstrip('/')}/2/oauth2/token"

    @property
    def _auth(self) -> tuple[str, str]:
        return self.settings.x_client_id, self.settings.x_client_secret

    def authorize_url(self, state: str, challenge: str | None, redirect_uri: str,
                      extras: dict) -> str:
        return f"{self.settings.x_authorize_url}?" + urlencode({
            "response_type": "code", "client_id": self.settings.x_client_id,
            "redirect_uri": redirect_uri, "scope": " ".join(SCOPES), "state": state,
            "code_challenge": challenge, "code_challenge_method": "S256"})

    def finish(self, code: str, verifier: str | None, redirect_uri: str,
               extras: dict) -> list[Grant]:
        now = self.ctx.clock()
        body = token_request(self.http, PLATFORM, self._token_url, {
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": verifier, "client_id": self.settings.x_client_id}, auth=self._auth)
        me = self._me(body["access_token"])
        return [Grant(Platform.X, str(me["id"]), f"@{me.get('username') or me['id']}",
                      body["access_token"], expires(body, now), body.get("refresh_token"),
                      scopes=scopes(body))]

    def refresh(self, tokens: Tokens) -> Refreshed:
        now = self.ctx.clock()
        body = token_request(self.http, PLATFORM, self._token_url, {
            "grant_type": "refresh_token", "refresh_token": tokens.refresh_token,
            "client_id": self.settings.x_client_id}, auth=self._auth, secret=tokens.refresh_token or "")
        return Refreshed(body["access_token"], expires(body, now), body.get("refresh_token"))

    def _me(self, token: str) -> dict:
        response = self.http.send(PLATFORM, "GET",
                                  f"{self.settings.x_api_base_url.rstrip('/')}/2/users/me",
                                  headers=bearer(token))
        data = json_body(response).get("data") or {}
        if response.status_code != 200 or not data.get("id"):
            raise RetryableError(f"X: could not read the connected user (GET /2/users/me answered "
                                 f"HTTP {response.status_code})", http_status=response.status_code,
                                 error_code="users_me")
        return data
