"""Bluesky: no OAuth redirect here; an identifier (handle, email or DID) and an app password
become a session at BLUESKY_PDS_URL (`com.atproto.server.createSession`, rate limited to a few
dozen a day, so called only to connect). A handle is resolved first, so a typo is named as
such rather than as a wrong password. The session's refresh JWT renews it
(`refreshSession`, single use: it rotates).
"""
from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

from app.errors import InvalidInput
from app.oauth.base import ConnectRequest, Grant, OAuthProvider, Refreshed, Tokens
from app.statuses import Platform
from worker.publishers.base import RetryableError
from worker.publishers.bluesky import Xrpc
from worker.publishers.http import json_body


class BlueskyProvider(OAuthProvider):
    platform = Platform.BLUESKY
    required_settings = ("BLUESKY_PDS_URL",)
    redirects = False
    rotates_refresh_token = True
    connect_fields = ("identifier", "appPassword")

    @property
    def xrpc(self) -> Xrpc:
        return Xrpc(self.settings, self.http)

    def connect(self, request: ConnectRequest) -> list[Grant]:
        missing = {name: "required to connect Bluesky" for name, value in (
            ("identifier", request.identifier), ("appPassword", request.app_password))
            if not (value or "").strip()}
        if missing:
            raise InvalidInput("Bluesky is connected with a handle (or email) and an app "
                               "password made at Settings > App passwords", missing)
        xrpc, pds = self.xrpc, self.xrpc.default_pds
        identifier = (request.identifier or "").strip().removeprefix("@")  # not missing, above
        if "@" not in identifier and not identifier.startswith("did:"):
            self._resolve(xrpc, pds, identifier)
        response = xrpc.call("POST", "com.atproto.server.createSession", None, pds=pds,
                             json={"identifier": identifier, "password": request.app_password})
        if response.status_code == 401:
            raise InvalidInput("Bluesky refused this identifier and app password: check both "
                               "(an app password looks like xxxx-xxxx-xxxx-xxxx); nothing was "
                               "connected", {"appPassword": "refused by Bluesky"})
        session = self._session(response, request.app_password or "")
        return [Grant(Platform.BLUESKY, session["did"], f"@{session.get('handle') or session['did']}",
                      session["accessJwt"], expiry(session["accessJwt"]), session["refreshJwt"],
                      expiry(session["refreshJwt"]),
                      meta={"pds": _pds_of(session) or pds, "handle": session.get("handle")})]

    def refresh(self, tokens: Tokens) -> Refreshed:
        xrpc = self.xrpc
        response = xrpc.call("POST", "com.atproto.server.refreshSession", tokens.refresh_token,
                             pds=xrpc.pds(tokens.meta), creates=True)
        session = self._session(response, tokens.refresh_token or "")
        return Refreshed(session["accessJwt"], expiry(session["accessJwt"]),
                         session["refreshJwt"], expiry(session["refreshJwt"]))

    def _resolve(self, xrpc: Xrpc, pds: str, handle: str) -> None:
        response = xrpc.call("GET", "com.atproto.identity.resolveHandle", None, pds=pds,
                             params={"handle": handle})
        if response.status_code == 400:
            raise InvalidInput(f"no Bluesky account has the handle {handle!r} (it does not "
                               "resolve): check its spelling, e.g. name.bsky.social; nothing "
                               "was connected", {"identifier": "no such handle"})
        if response.status_code != 200:
            raise xrpc.error(response)

    def _session(self, response, secret: str) -> dict:
        body = json_body(response)
        if response.status_code != 200:
            raise self.xrpc.error(response, secret)
        if not all(isinstance(body.get(k), str) and body[k] for k in ("did", "accessJwt",
                                                                       "refreshJwt")):
            raise RetryableError("Bluesky answered the session request without its tokens",
                                 http_status=200, error_code="garbage", maybe_published=True)
        return body


def expiry(jwt: str) -> datetime | None:
    """The `exp` of a JWT's payload (not verified: the PDS is the one that checks it)."""
    try:
        payload = jwt.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return datetime.fromtimestamp(int(claims["exp"]), timezone.utc)
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def _pds_of(session: dict) -> str | None:
    """The account's own PDS, from its DID document (bsky.social hands out others)."""
    for service in (session.get("didDoc") or {}).get("service") or []:
        if isinstance(service, dict) and service.get("id") == "#atproto_pds":
            return str(service.get("serviceEndpoint") or "") or None
    return None
