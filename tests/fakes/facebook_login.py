"""Facebook Login as the Graph fake speaks it: the Login dialog (`/{version}/dialog/oauth`),
code -> user token and `fb_exchange_token` -> long-lived user token at `/oauth/access_token`,
`/me/permissions`, `/me/accounts` (paged, page tokens, `instagram_business_account{id,username}`
by field expansion) and `debug_token` (app token `APP_ID|APP_SECRET`)."""
from __future__ import annotations

import secrets
import time

from tests.fakes.consent import ConsentDialog
from tests.fakes.server import Answer, Received

SHORT_LIVED = 2 * 3600      # seconds: a user token from a code
LONG_LIVED = 5_183_944      # seconds: ~60 days, as Graph answers an fb_exchange_token
DEFAULT_PAGES = (
    {"id": "1501", "name": "Acme Bakery", "instagram": {"id": "17841400001", "username": "acmebakery"}},
    {"id": "1502", "name": "Acme Deli", "instagram": None},
)


def _oauth_error(message: str, code: int = 100, subcode: int | None = None,
                 status: int = 400) -> Answer:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AxYzFbTr"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return Answer(status, {"error": error})


class FacebookLogin:
    """Mixed into FakeGraph. `app_id`/`app_secret` are the app's credentials (None: any);
    `pages` the Pages the signed-in user manages, each with its Instagram account or None."""

    app_id = "fake-meta-app"
    app_secret = "fake-meta-secret"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dialog = ConsentDialog("Log in With Facebook", denial={
            "error_code": "200", "error_description": "Permissions error",
            "error_reason": "user_denied"})
        self.pages: list[dict] = [dict(p) for p in DEFAULT_PAGES]
        self.issued: dict[str, dict] = {}  # token -> {"kind", "scopes", "expires_at", "page"}
        self.page_tokens_expire = False  # True: page tokens share their user token's expiry

    @property
    def public_paths(self) -> tuple[str, ...]:
        return tuple(f"/{self.version}{path}" for path in (
            "/dialog/oauth", "/oauth/access_token", "/debug_token"))

    def login_route(self, request: Received) -> Answer | None:
        """The answer to a Login request; None for the rest of the Graph API."""
        path = request.path[len(f"/{self.version}"):]
        if path == "/dialog/oauth":
            return self.dialog.page(request) if request.method == "GET" else \
                self.dialog.decide(request)
        handler = {"/oauth/access_token": self._access_token, "/debug_token": self._debug_token,
                   "/me/permissions": self._permissions, "/me/accounts": self._accounts}.get(path)
        return handler(request) if handler is not None and request.method == "GET" else None

    # -- tokens ---------------------------------------------------------------------------

    def _access_token(self, request: Received) -> Answer:
        query = request.query
        if self.app_id is not None and query.get("client_id") != self.app_id:
            return _oauth_error("Error validating application. Invalid application ID.", 101)
        if self.app_secret is not None and query.get("client_secret") != self.app_secret:
            return _oauth_error("Error validating client secret.", 1)
        if query.get("grant_type") == "fb_exchange_token":
            old = self.issued.get(query.get("fb_exchange_token", ""))
            if old is None or old["kind"] != "user" or old["expires_at"] < time.time():
                return _oauth_error("Error validating access token: The session is invalid.", 190)
            return self._mint_user(old["scopes"], LONG_LIVED)
        grant = self.dialog.redeem(query.get("code", ""), query.get("client_id", ""),
                                   query.get("redirect_uri", ""))
        if isinstance(grant, str):
            return _oauth_error(grant, 100, 36009 if "used" in grant else None)
        return self._mint_user(grant.scopes, SHORT_LIVED)

    def _mint_user(self, scopes: list[str], lifetime: int) -> Answer:
        token = "EAAU" + secrets.token_urlsafe(24)
        self.issued[token] = {"kind": "user", "scopes": list(scopes),
                              "expires_at": time.time() + lifetime, "lifetime": lifetime}
        return Answer(200, {"access_token": token, "token_type": "bearer", "expires_in": lifetime})

    def _user(self, request: Received) -> dict | None:
        user = self.issued.get(request.token() or "")
        if user is None or user["kind"] != "user" or user["expires_at"] < time.time():
            return None
        return user

    def _debug_token(self, request: Received) -> Answer:
        app = request.token() or ""
        if self.app_id is not None and app != f"{self.app_id}|{self.app_secret}":
            return _oauth_error("Invalid OAuth access token signature.", 190)
        token = self.issued.get(request.query.get("input_token", ""))
        if token is None:
            return Answer(200, {"data": {"is_valid": False, "error": {
                "code": 190, "message": "Invalid OAuth access token."}}})
        expires = 0 if token["expires_at"] is None else int(token["expires_at"])
        return Answer(200, {"data": {
            "app_id": self.app_id or "0", "type": token["kind"].upper(), "application": "App",
            "expires_at": expires, "data_access_expires_at": int(time.time()) + 90 * 86400,
            "is_valid": token["expires_at"] is None or token["expires_at"] > time.time(),
            "scopes": token["scopes"], "user_id": "9001",
            **({"profile_id": token["page"]} if token.get("page") else {})}})

    # -- the user's grants and Pages --------------------------------------------------------

    def _permissions(self, request: Received) -> Answer:
        user = self._user(request)
        if user is None:
            return self.failure("auth", request)
        granted = [{"permission": s, "status": "granted"} for s in ["public_profile", *user["scopes"]]]
        return Answer(200, {"data": granted})

    def _accounts(self, request: Received) -> Answer:
        user = self._user(request)
        if user is None:
            return self.failure("auth", request)
        if "pages_show_list" not in user["scopes"]:
            return self._no_permission("pages_show_list")
        fields = request.query.get("fields", "id,name")
        items = []
        for page in self.pages:
            item = {"id": page["id"]}
            if "name" in fields:
                item["name"] = page["name"]
            if "access_token" in fields:
                item["access_token"] = self._page_token(page["id"], user)
            if "instagram_business_account" in fields and page.get("instagram"):
                item["instagram_business_account"] = dict(page["instagram"])
            items.append(item)
        return self._list(request, items)

    def _page_token(self, page_id: str, user: dict) -> str:
        token = "EAAP" + secrets.token_urlsafe(24)
        # A Page token from a long-lived user token does not expire; from a short-lived one it
        # lives as long as the user token.
        expires = None
        if user["lifetime"] != LONG_LIVED or self.page_tokens_expire:
            expires = user["expires_at"]
        self.issued[token] = {"kind": "page", "scopes": user["scopes"], "expires_at": expires,
                              "page": page_id}
        return token
