"""Mastodon, any instance: the instance is checked first (`GET /api/v2/instance`: is it
Mastodon-compatible, what are its limits), this scheduler registered there once
(`POST /api/v1/apps`, kept in oauth_apps), then the authorization code flow at the instance's
`/oauth/authorize` and `/oauth/token`, and `verify_credentials` names the account
(`@user@domain`). Mastodon tokens do not expire: nothing to refresh.
"""
from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from app.errors import InvalidInput
from app.oauth.apps import registered_app
from app.oauth.base import ConnectRequest, Grant, OAuthProvider
from app.oauth.http import scopes, token_request
from app.services.connect import redirect_uri
from app.statuses import Platform
from worker.publishers.base import PublishError, RetryableError
from worker.publishers.http import bearer, json_body

PLATFORM = "Mastodon"
SCOPES = ("read:accounts", "read:statuses", "write:statuses", "write:media")


class MastodonProvider(OAuthProvider):
    platform = Platform.MASTODON
    required_scopes = SCOPES
    connect_fields = ("instance",)

    def start(self, request: ConnectRequest) -> dict:
        instance = instance_url(request.instance)
        limits = self._instance(instance)
        redirect = redirect_uri(self.ctx, Platform.MASTODON)
        client_id, _ = registered_app(self.ctx.sessions, Platform.MASTODON, instance,
                                      lambda: self._register(instance, redirect), self.ctx.clock())
        return {"instance": instance, "mastodonClientId": client_id, **limits}

    def authorize_url(self, state: str, challenge: str | None, redirect_uri: str,
                      extras: dict) -> str:
        return f"{extras['instance']}/oauth/authorize?" + urlencode({
            "response_type": "code", "client_id": extras["mastodonClientId"],
            "redirect_uri": redirect_uri, "scope": " ".join(SCOPES), "state": state})

    def finish(self, code: str, verifier: str | None, redirect_uri: str,
               extras: dict) -> list[Grant]:
        instance = extras["instance"]
        client_id, secret = registered_app(self.ctx.sessions, Platform.MASTODON, instance,
                                           _unregistered, self.ctx.clock())
        body = token_request(self.http, PLATFORM, f"{instance}/oauth/token", {
            "grant_type": "authorization_code", "code": code, "client_id": client_id,
            "client_secret": secret, "redirect_uri": redirect_uri, "scope": " ".join(SCOPES)},
            secret=secret)
        me = self._me(instance, body["access_token"])
        meta = {"instance": instance, "account_id": str(me["id"]), "visibility": "public",
                **{k: extras[k] for k in LIMIT_KEYS if k in extras}}
        return [Grant(Platform.MASTODON, f"@{me['username']}@{extras['domain']}",
                      me.get("display_name") or f"@{me['username']}", body["access_token"],
                      scopes=scopes(body), meta=meta)]

    def _instance(self, instance: str) -> dict:
        """The instance's domain and limits; InvalidInput when it is not Mastodon or not there."""
        try:
            response = self.http.send(PLATFORM, "GET", f"{instance}/api/v2/instance")
        except PublishError as exc:
            raise InvalidInput(f"{instance} could not be reached ({exc.message}): check the "
                               "address; nothing was connected",
                               {"instance": "unreachable"}) from None
        body = json_body(response)
        statuses = (body.get("configuration") or {}).get("statuses") or {}
        if response.status_code != 200 or not body.get("domain") or not statuses:
            raise InvalidInput(f"{instance} does not look like a Mastodon server (GET "
                               f"/api/v2/instance answered HTTP {response.status_code}"
                               f"{'' if response.status_code != 200 else ' without its domain and limits'}); "
                               "give the address of a Mastodon (4.0 or later) instance; nothing "
                               "was connected", {"instance": "not a Mastodon server"})
        limits = {"domain": str(body["domain"])}
        for key in ("max_characters", "max_media_attachments", "characters_reserved_per_url"):
            if isinstance(statuses.get(key), int):
                limits[key] = statuses[key]
        return limits

    def _register(self, instance: str, redirect: str) -> tuple[str, str]:
        response = self.http.send(PLATFORM, "POST", f"{instance}/api/v1/apps", json={
            "client_name": self.settings.mastodon_app_name, "redirect_uris": redirect,
            "scopes": " ".join(SCOPES), "website": self.settings.public_url})
        body = json_body(response)
        if response.status_code != 200 or not body.get("client_id") or not body.get("client_secret"):
            raise RetryableError(f"{PLATFORM}: {instance} would not register this scheduler "
                                 f"(POST /api/v1/apps answered HTTP {response.status_code}: "
                                 f"{body.get('error') or response.reason})",
                                 http_status=response.status_code, error_code="app_registration")
        return str(body["client_id"]), str(body["client_secret"])

    def _me(self, instance: str, token: str) -> dict:
        response = self.http.send(PLATFORM, "GET", f"{instance}/api/v1/accounts/verify_credentials",
                                  headers=bearer(token))
        me = json_body(response)
        if response.status_code != 200 or not me.get("id") or not me.get("username"):
            raise RetryableError(f"{PLATFORM}: could not read the connected account "
                                 f"(verify_credentials answered HTTP {response.status_code})",
                                 http_status=response.status_code, error_code="verify_credentials")
        return me


LIMIT_KEYS = ("domain", "max_characters", "max_media_attachments", "characters_reserved_per_url")


def instance_url(raw: str | None) -> str:
    """`mastodon.social`, `https://mastodon.social/` -> https://mastodon.social; InvalidInput
    naming the field when it is not an http(s) address."""
    raw = (raw or "").strip()
    if not raw:
        raise InvalidInput("connecting Mastodon needs the instance's address, e.g. "
                           "https://mastodon.social", {"instance": "required"})
    parts = urlsplit(raw if "://" in raw else f"https://{raw}")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username \
            or parts.password:
        raise InvalidInput(f"{raw!r} is not an instance address such as https://mastodon.social",
                           {"instance": "must be an http(s) address"})
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _unregistered() -> tuple[str, str]:
    raise InvalidInput("this scheduler is no longer registered on that instance: start the "
                       "connection again", {"instance": "app not registered"})
