"""Meta (Facebook Pages and their Instagram accounts): the Facebook Login dialog at
FACEBOOK_DIALOG_URL; then, at the Graph API, code -> user token, `fb_exchange_token` ->
long-lived user token, `/me/permissions` (a missing one is named), `/me/accounts` (paged: each
Page's token and its `instagram_business_account`) and `debug_token` for each Page token's
expiry. One connect adds every Page granted and each Page's Instagram account.

A Page token made from a long-lived user token does not expire, and nothing refreshes it but
the user signing in again: these accounts have no refresh. Where Graph does give a Page token
an expiry, it is stored, and the account is warned about 7 days ahead (account.token_expiring).
"""
from __future__ import annotations

from datetime import datetime, timezone
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from app.errors import InvalidInput
from app.oauth.base import Grant, OAuthProvider, scopes_missing
from app.statuses import Platform
from worker.publishers.base import Account, AuthError, PublishError, RetryableError
from worker.publishers.graph import GraphClient

PLATFORM = "Facebook"
# What the Facebook and Instagram publishers need (README, "Facebook Pages" and "Instagram").
SCOPES = ("pages_show_list", "pages_manage_posts", "pages_read_engagement", "instagram_basic",
          "instagram_content_publish")
OPTIONAL_SCOPES = ("business_management",)  # lists the Pages a Business Manager owns
PAGE_FIELDS = "id,name,access_token,instagram_business_account{id,username}"
# Graph's codes for a token request refused because of the app itself (its id, its secret);
# code 1 is also Graph's "unknown error", but from /oauth/access_token with a 400 it is this.
APP_CODES = ("1", "101")
PAGE_SIZE = 100
MAX_PAGES = 20  # pages of /me/accounts read, at most: 2,000 Facebook Pages


class MetaProvider(OAuthProvider):
    platform = Platform.FACEBOOK
    required_settings = ("META_APP_ID", "META_APP_SECRET", "SCHEDULER_PUBLIC_URL")
    required_scopes = SCOPES

    @cached_property
    def graph(self) -> GraphClient:
        return GraphClient(self.settings, self.http, PLATFORM)

    @property
    def _app_token(self) -> str:
        return f"{self.settings.meta_app_id}|{self.settings.meta_app_secret}"

    def authorize_url(self, state: str, challenge: str | None, redirect_uri: str,
                      extras: dict) -> str:
        return f"{self.settings.facebook_dialog_url}?" + urlencode({
            "client_id": self.settings.meta_app_id, "redirect_uri": redirect_uri,
            "state": state, "response_type": "code",
            "scope": ",".join(SCOPES + OPTIONAL_SCOPES)})

    def finish(self, code: str, verifier: str | None, redirect_uri: str,
               extras: dict) -> list[Grant]:
        client = {"client_id": self.settings.meta_app_id,
                  "client_secret": self.settings.meta_app_secret}
        short = self._token({**client, "redirect_uri": redirect_uri, "code": code})
        user = self._token({**client, "grant_type": "fb_exchange_token",
                            "fb_exchange_token": short})
        granted = self._granted(user)
        missing = [s for s in SCOPES if s not in granted]
        if missing:  # before /me/accounts, which without pages_show_list is refused outright
            raise scopes_missing(self.platform, missing)
        grants = []
        for page in self._pages(user):
            expires_at, data_access = self._expiry(page["access_token"])
            # Not an expiry: past it Meta wants the user to sign in again before the app may
            # read their data; kept for the operator to see.
            meta = {"page_id": str(page["id"]), "data_access_expires_at": data_access}
            grants.append(Grant(Platform.FACEBOOK, str(page["id"]), page.get("name"),
                                page["access_token"], expires_at, scopes=granted, meta=meta))
            instagram = page.get("instagram_business_account") or {}
            if instagram.get("id"):
                name = f"@{instagram['username']}" if instagram.get("username") else None
                grants.append(Grant(Platform.INSTAGRAM, str(instagram["id"]), name,
                                    page["access_token"], expires_at, scopes=granted, meta=meta))
        if not grants:
            raise InvalidInput("Facebook: the login granted no Page: nothing was connected; "
                               "connect again and choose the Pages (and with them their "
                               "Instagram accounts) to publish to", {"accounts": "no Page granted"})
        return grants

    def _token(self, params: dict) -> str:
        """An access token from /oauth/access_token (a code, or fb_exchange_token)."""
        try:
            body = self.graph.get("oauth/access_token", graph_account(self._app_token), params)
        except PublishError as exc:
            if exc.http_status != 400:
                raise
            raise refusal(exc, APP_CODES, "META_APP_ID and META_APP_SECRET") from None
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise RetryableError("Facebook: /oauth/access_token answered without an access "
                                 "token", http_status=200, error_code="garbage")
        return token

    def _granted(self, user_token: str) -> tuple[str, ...]:
        body = self.graph.get("me/permissions", graph_account(user_token), {})
        return tuple(str(p.get("permission")) for p in _data(body, "me/permissions")
                     if isinstance(p, dict) and p.get("status") == "granted")

    def _pages(self, user_token: str) -> list[dict]:
        """Every Page the user granted, with its token, following the `after` cursor."""
        pages, params = [], {"fields": PAGE_FIELDS, "limit": PAGE_SIZE}
        for _ in range(MAX_PAGES):
            body = self.graph.get("me/accounts", graph_account(user_token), params)
            pages += [p for p in _data(body, "me/accounts")
                      if isinstance(p, dict) and p.get("id") and p.get("access_token")]
            paging = body.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("next") or not after:
                return pages
            params = {**params, "after": after}
        raise InvalidInput(f"Facebook: the login granted more than {MAX_PAGES * PAGE_SIZE:,} "
                           "Pages, more than one connect takes: nothing was connected; connect "
                           "again choosing fewer", {"accounts": "too many Pages"})

    def _expiry(self, page_token: str) -> tuple[datetime | None, str | None]:
        """When the Page token expires, by debug_token: None when it does not (expires_at 0);
        and when the app's access to the user's data does (ISO 8601), if Graph says."""
        body = self.graph.get("debug_token", graph_account(self._app_token),
                              {"input_token": page_token})
        data: Any = body.get("data")  # None: TypeError, caught below
        try:
            expires = int(data["expires_at"])
        except (TypeError, ValueError, KeyError):
            raise RetryableError("Facebook: debug_token answered without the token's expiry",
                                 http_status=200, error_code="garbage") from None
        data_access = data.get("data_access_expires_at")
        if isinstance(data_access, int) and data_access > 0:
            data_access = datetime.fromtimestamp(data_access, timezone.utc).isoformat()
        else:
            data_access = None
        return (datetime.fromtimestamp(expires, timezone.utc) if expires > 0 else None,
                data_access)


def refusal(error: PublishError, app_codes: tuple[str, ...], settings: str) -> AuthError:
    """A token endpoint's 400, as the connect flow tells it: the app's credentials (the operator
    must fix a setting), or the code (the user starts again)."""
    if (error.error_code or "").split(".")[0] in app_codes:
        return AuthError(f"{error.message} (check {settings})", http_status=401,
                         error_code=error.error_code)
    return AuthError(error.message, http_status=400, error_code=error.error_code)


def _data(body: dict, edge: str) -> list:
    """A list edge's `data`; an answer without one is not Graph's (a proxy's page, say)."""
    if not isinstance(body.get("data"), list):
        raise RetryableError(f"Facebook: /{edge} answered without its data", http_status=200,
                             error_code="garbage")
    return body["data"]


def graph_account(token: str) -> Account:
    """A token as the Graph client takes one (Facebook's, or Threads' on its Graph-like host):
    it sends it as a Bearer header and blanks it out of every message."""
    return Account(id="", platform="", external_id="", display_name=None, access_token=token)
