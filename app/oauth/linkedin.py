"""LinkedIn: 3-legged OAuth 2.0 at LINKEDIN_OAUTH_BASE_URL, the member from OpenID Connect's
userinfo (urn:li:person:<sub>). Access tokens live 60 days; an app with programmatic refresh
also gets a refresh token (about a year, not rotated); without one the account is told
7 days ahead that it must be reconnected (account.token_expiring)."""
from __future__ import annotations

from urllib.parse import urlencode

from app.oauth.base import Grant, OAuthProvider, Refreshed, Tokens
from app.oauth.http import expires, scopes, token_request
from app.statuses import Platform
from worker.publishers.base import RetryableError
from worker.publishers.http import bearer, json_body

PLATFORM = "LinkedIn"
SCOPES = ("openid", "profile", "w_member_social")


class LinkedInProvider(OAuthProvider):
    platform = Platform.LINKEDIN
    required_settings = ("LINKEDIN_CLIENT_ID", "LINKEDIN_CLIENT_SECRET", "SCHEDULER_PUBLIC_URL")
    required_scopes = SCOPES

    @property
    def _base(self) -> str:
        return self.settings.linkedin_oauth_base_url.rstrip("/")

    def _client(self) -> dict:
        return {"client_id": self.settings.linkedin_client_id,
                "client_secret": self.settings.linkedin_client_secret}

    def authorize_url(self, state: str, challenge: str | None, redirect_uri: str,
                      extras: dict) -> str:
        return f"{self._base}/authorization?" + urlencode({
            "response_type": "code", "client_id": self.settings.linkedin_client_id,
            "redirect_uri": redirect_uri, "state": state, "scope": " ".join(SCOPES)})

    def finish(self, code: str, verifier: str | None, redirect_uri: str,
               extras: dict) -> list[Grant]:
        now = self.ctx.clock()
        body = token_request(self.http, PLATFORM, f"{self._base}/accessToken", {
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            **self._client()}, secret=self.settings.linkedin_client_secret)
        member = self._userinfo(body["access_token"])
        return [Grant(Platform.LINKEDIN, f"urn:li:person:{member['sub']}",
                      member.get("name") or member["sub"], body["access_token"],
                      expires(body, now), body.get("refresh_token"),
                      expires(body, now, "refresh_token_expires_in"), scopes(body))]

    def refresh(self, tokens: Tokens) -> Refreshed:
        now = self.ctx.clock()
        body = token_request(self.http, PLATFORM, f"{self._base}/accessToken", {
            "grant_type": "refresh_token", "refresh_token": tokens.refresh_token,
            **self._client()}, secret=tokens.refresh_token or "")
        return Refreshed(body["access_token"], expires(body, now), body.get("refresh_token"),
                         expires(body, now, "refresh_token_expires_in"))

    def _userinfo(self, token: str) -> dict:
        response = self.http.send(
            PLATFORM, "GET", f"{self.settings.linkedin_api_base_url.rstrip('/')}/v2/userinfo",
            headers=bearer(token))
        body = json_body(response)
        if response.status_code != 200 or not body.get("sub"):
            raise RetryableError(f"LinkedIn: could not read the member (GET /v2/userinfo "
                                 f"answered HTTP {response.status_code})",
                                 http_status=response.status_code, error_code="userinfo")
        return body
