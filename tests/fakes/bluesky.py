"""A Bluesky PDS as the scheduler uses it, over XRPC: createSession (handle or email + app
password), refreshSession (the refresh JWT is single use), resolveHandle, createRecord and
listRecords and getRecord of app.bsky.feed.post; errors as `{"error", "message"}` with the ratelimit-*
headers. Access tokens expire when a test says so (`expire_access`).
"""
from __future__ import annotations

import base64
import json
import secrets
import time
from datetime import datetime, timezone
from typing import Any

from tests.fakes.server import Answer, FakePlatform, Received

X = "/xrpc/"
OPEN = {"com.atproto.server.createSession", "com.atproto.identity.resolveHandle",
        "com.atproto.server.refreshSession", "com.atproto.repo.listRecords",
        "com.atproto.repo.getRecord"}


def _error(status: int, error: str, message: str, headers: dict | None = None) -> Answer:
    return Answer(status, {"error": error, "message": message}, headers or {})


def _jwt(scope: str, lifetime: int) -> str:
    """A token shaped like the PDS's (header.payload.signature) with an `exp` to read."""
    part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
    return ".".join((part({"typ": "at+jwt", "alg": "ES256K"}),
                     part({"scope": scope, "exp": int(time.time()) + lifetime,
                           "jti": secrets.token_hex(6)}), secrets.token_urlsafe(16)))


class FakeBluesky(FakePlatform):
    name = "bluesky"
    reset_in = 300  # seconds until ratelimit-reset in a 429
    public_paths = tuple(X + nsid for nsid in OPEN)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # handle -> {"did", "password" (an app password), "email"}
        self.users: dict[str, dict[str, Any]] = {"acme.bsky.social": {"did": "did:plc:acme7x2k4q", "email": "ops@acme.test",
                                           "password": "abcd-efgh-ijkl-mnop"},
                      "alice.bsky.social": {"did": "did:plc:alice9m3v", "email": None,
                                            "password": None}}
        self.access: dict[str, str] = {}    # live access JWT -> did
        self.refresh: dict[str, str] = {}   # unspent refresh JWT -> did
        self.records: list[dict] = []       # {"uri", "cid", "did", "value"}

    def route(self, request: Received) -> Answer:
        nsid = request.path.removeprefix(X)
        handler = {"com.atproto.server.createSession": self._create_session,
                   "com.atproto.server.refreshSession": self._refresh_session,
                   "com.atproto.identity.resolveHandle": self._resolve,
                   "com.atproto.repo.createRecord": self._create_record,
                   "com.atproto.repo.listRecords": self._list,
                   "com.atproto.repo.getRecord": self._get}.get(nsid)
        if handler is None or not request.path.startswith(X):
            return _error(501, "MethodNotImplemented", f"Method Not Implemented: {nsid}")
        return handler(request)

    # -- sessions ------------------------------------------------------------------------

    def _create_session(self, request: Received) -> Answer:
        body = request.json or {}
        identifier, password = body.get("identifier"), body.get("password")
        user = next((dict(u, handle=h) for h, u in self.users.items()
                     if identifier in (h, u["did"], u["email"])), None)
        if user is None or not password or password != user["password"]:
            return _error(401, "AuthenticationRequired", "Invalid identifier or password")
        return Answer(200, self._session(user["did"], user["handle"]))

    def _refresh_session(self, request: Received) -> Answer:
        did = self.refresh.pop(request.token() or "", None)
        if did is None:
            return _error(400, "ExpiredToken", "Token has been revoked")
        handle = next(h for h, u in self.users.items() if u["did"] == did)
        return Answer(200, self._session(did, handle))

    def _session(self, did: str, handle: str) -> dict:
        access, refresh = _jwt("com.atproto.access", 7200), _jwt("com.atproto.refresh", 7776000)
        with self._lock:
            self.access[access], self.refresh[refresh] = did, did
        return {"did": did, "handle": handle, "accessJwt": access, "refreshJwt": refresh,
                "active": True, "didDoc": {"id": did, "service": [{
                    "id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
                    "serviceEndpoint": self.base_url}]}}

    def expire_access(self) -> None:
        """Every access JWT issued so far expires (they live about two hours)."""
        with self._lock:
            self.access.clear()

    def _did_of(self, request: Received) -> str | None:
        return self.access.get(request.token() or "")

    # -- identity and records ----------------------------------------------------------------

    def _resolve(self, request: Received) -> Answer:
        user = self.users.get(request.query.get("handle", "").lower())
        if user is None:
            return _error(400, "InvalidRequest", "Unable to resolve handle")
        return Answer(200, {"did": user["did"]})

    def _create_record(self, request: Received) -> Answer:
        did = self._did_of(request)
        if did is None:
            return _error(400, "ExpiredToken", "Token has expired")
        body = request.json or {}
        record = body.get("record") or {}
        if body.get("repo") != did:
            return _error(400, "InvalidRequest", "Invalid repo: not the session's DID")
        if body.get("collection") != "app.bsky.feed.post" or not isinstance(record.get("text"), str):
            return _error(400, "InvalidRequest", "Invalid app.bsky.feed.post record")
        if len(record["text"].encode()) > 3000:
            return _error(400, "InvalidRequest", "Invalid app.bsky.feed.post record: Record/text "
                          "must not be longer than 300 graphemes")
        rkey = f"3l{secrets.token_hex(6)}"
        entry = {"uri": f"at://{did}/app.bsky.feed.post/{rkey}", "cid": "bafyrei" + rkey,
                 "did": did, "value": record}
        with self._lock:
            self.records.append(entry)
        return Answer(200, {"uri": entry["uri"], "cid": entry["cid"],
                            "commit": {"cid": "bafyreicommit", "rev": rkey},
                            "validationStatus": "valid"}, self._ratelimit(remaining=1000))

    def _list(self, request: Received) -> Answer:
        repo, query = request.query.get("repo"), request.query
        mine = [r for r in reversed(self.records) if r["did"] == repo]  # newest first
        start = int(query.get("cursor") or 0)
        size = min(int(query.get("limit", 50)), 100)
        page = mine[start:start + size]
        body: dict[str, Any] = {"records": [{"uri": r["uri"], "cid": r["cid"], "value": r["value"]}
                            for r in page]}
        if start + size < len(mine):
            body["cursor"] = str(start + size)
        return Answer(200, body)

    def _get(self, request: Received) -> Answer:
        query = request.query
        uri = f"at://{query.get('repo')}/{query.get('collection')}/{query.get('rkey')}"
        found = next((r for r in self.records if r["uri"] == uri), None)
        if found is None:
            return _error(400, "RecordNotFound", f"Could not locate record: {uri}")
        return Answer(200, {"uri": uri, "cid": found["cid"], "value": found["value"]})

    def add_posts(self, did: str, texts: list[str]) -> None:
        """Posts made by someone else on the account, newest last."""
        now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        with self._lock:
            self.records.extend({"uri": f"at://{did}/app.bsky.feed.post/x{self.new_id()}",
                                 "cid": "bafyother", "did": did,
                                 "value": {"$type": "app.bsky.feed.post", "text": t,
                                           "createdAt": now}} for t in texts)

    def _ratelimit(self, remaining: int, reset_in: int | None = None) -> dict:
        return {"ratelimit-limit": "5000", "ratelimit-remaining": str(remaining),
                "ratelimit-reset": str(int(time.time()) + (reset_in or self.reset_in)),
                "ratelimit-policy": "5000;w=3600"}

    def failure(self, kind: str, request: Received, **options) -> Answer:
        if kind == "auth":
            return _error(401, "AuthenticationRequired", "Authentication Required")
        if kind == "rate_limited":
            return _error(429, "RateLimitExceeded", "Rate Limit Exceeded",
                          self._ratelimit(0, options.get("reset_in")))
        if kind == "retryable":
            return _error(502, "UpstreamFailure", "Upstream Failure")
        return _error(400, "InvalidRequest", "Invalid app.bsky.feed.post record")
