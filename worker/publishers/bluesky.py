"""Bluesky (the AT Protocol, on the account's PDS: BLUESKY_PDS_URL unless connect learned
another): `com.atproto.repo.createRecord` with an `app.bsky.feed.post` record whose links,
mentions (resolved to DIDs) and hashtags are facets over UTF-8 byte offsets.

external_id is the account's DID; the post id is the record's `at://` URI. The access token
is the session's accessJwt: on `ExpiredToken` the session is refreshed once (refreshSession,
through `account.refresh`) and the request sent again; `createSession` is never called here.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import regex
import requests

from app.statuses import Platform
from worker.publishers.base import (
    Account, AuthError, PermanentError, PostToPublish, PublishError, PublishResult, RetryableError,
)
from worker.publishers.http import (
    HttpClient, bearer, by_status, describe, epoch, find_in_pages, json_body, lookup_failure,
    same_text,
)

PLATFORM = "Bluesky"
POST = "app.bsky.feed.post"
AUTH_ERRORS = {"AuthenticationRequired", "InvalidToken", "AccountTakedown", "AccountDeactivated",
               "AuthMissing"}

# Facet syntax as Bluesky's own clients detect it (@atproto/api RichText), simplified.
_LINK = regex.compile(r"https?://[^\s]+")
_MENTION = regex.compile(r"(?:^|(?<=[\s(]))@([a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+)")
_TAG = regex.compile(r"(?:^|(?<=\s))[#＃]((?!\ufe0f)[^\s\u00ad\u2060\u200a-\u200d\u20e2]*"
                     r"[^\d\s\p{P}\u00ad\u2060\u200a-\u200d\u20e2][^\s\u00ad\u2060\u200a-\u200d\u20e2]*)")
_TRAILING = ".,;:!?\"'"


class Xrpc:
    """XRPC calls on an account's PDS, errors mapped into the taxonomy."""

    def __init__(self, settings, http: HttpClient):
        self.default_pds = settings.bluesky_pds_url.rstrip("/")
        self.http = http

    def pds(self, account_meta: dict | None) -> str:
        return str((account_meta or {}).get("pds") or self.default_pds).rstrip("/")

    def call(self, method: str, nsid: str, token: str | None, *, pds: str,
             creates: bool = False, **kwargs) -> requests.Response:
        return self.http.send(PLATFORM, method, f"{pds}/xrpc/{nsid}", creates=creates,
                              headers=bearer(token) if token else {}, **kwargs)

    def error(self, response: requests.Response, secret: str = "") -> PublishError:
        body = json_body(response)
        code = body.get("error") if isinstance(body.get("error"), str) else None
        message = describe(PLATFORM, response, str(body.get("message") or ""), code, secret)
        kwargs: dict[str, Any] = {"http_status": response.status_code, "error_code": code}
        if code in AUTH_ERRORS or code == "ExpiredToken":
            return AuthError(message, **kwargs)
        # ratelimit-reset: Unix seconds when the window (or createRecord's daily points) frees
        return by_status(response, message, code,
                         retry_at=epoch(response.headers.get("ratelimit-reset")))


def expired(response: requests.Response) -> bool:
    return response.status_code in (400, 401) and json_body(response).get("error") == "ExpiredToken"


class BlueskyPublisher:
    platform = Platform.BLUESKY

    def __init__(self, settings, http: HttpClient, clock=lambda: datetime.now(timezone.utc)):
        self.xrpc = Xrpc(settings, http)
        self.clock = clock

    def publish(self, post: PostToPublish, account: Account) -> PublishResult:
        if post.media_urls:
            raise PermanentError("Bluesky: this worker cannot attach images to a Bluesky post "
                                 "yet; schedule it without media", error_code="media_unsupported")
        return self._post(post.content, account)

    def reply(self, post: PostToPublish, account: Account, part) -> PublishResult:
        """A part of a thread (or the first comment): a post whose `reply` names the thread's
        first post (`part.root`) and the one it answers (`part.to`), each as uri and cid."""
        pds = self.xrpc.pds(account.meta)
        return self._post(part.text, account, reply={
            "root": self._strong_ref(part.root, account, pds),
            "parent": self._strong_ref(part.to, account, pds)})

    def find_reply(self, post: PostToPublish, account: Account, part,
                   since: datetime) -> str | None:
        return self._find(account, since, lambda value: same_text(value.get("text"), part.text)
                          and ((value.get("reply") or {}).get("parent") or {}).get("uri") == part.to)

    def _post(self, text: str, account: Account, reply: dict | None = None) -> PublishResult:
        pds = self.xrpc.pds(account.meta)
        facets, unknown = self._facets(text, account, pds)
        record = {"$type": POST, "text": text,
                  "createdAt": self.clock().astimezone(timezone.utc).isoformat(
                      timespec="milliseconds").replace("+00:00", "Z")}
        if facets:
            record["facets"] = facets
        if reply:
            record["reply"] = reply
        response = self._send(account, "POST", "com.atproto.repo.createRecord", pds=pds,
                              creates=True, json={"repo": account.external_id,
                                                  "collection": POST, "record": record})
        uri = json_body(response).get("uri") if response.status_code == 200 else None
        if response.status_code != 200:
            raise self.xrpc.error(response, account.access_token)
        if not uri:
            raise RetryableError("Bluesky accepted the post but sent no uri back",
                                 maybe_published=True, http_status=200, error_code="no_uri")
        note = None
        if unknown:
            note = ("posted with " + ", ".join(f"@{h}" for h in unknown) + " as plain text: "
                    "no Bluesky account has that handle")
        return PublishResult(str(uri), note=note)

    def find_existing(self, post: PostToPublish, account: Account, since: datetime) -> str | None:
        return self._find(account, since, lambda value: same_text(value.get("text"), post.content))

    def _find(self, account: Account, since: datetime, ours) -> str | None:
        """The account's posts newest first (com.atproto.repo.listRecords), back to `since`:
        the uri of the first whose record is `ours`."""
        pds = self.xrpc.pds(account.meta)

        def page(cursor: str | None) -> tuple[str | None, str | None]:
            params = {"repo": account.external_id, "collection": POST, "limit": 100}
            response = self._send(account, "GET", "com.atproto.repo.listRecords", pds=pds,
                                  params={**params, "cursor": cursor} if cursor else params)
            if response.status_code != 200:
                raise lookup_failure(PLATFORM, response,
                                     self.xrpc.error(response, account.access_token))
            body = json_body(response)
            records = body.get("records") or []
            found = next((str(r["uri"]) for r in records if ours(r.get("value") or {})), None)
            older = any((c := _created(r)) is not None and c < since for r in records)
            return found, None if older or not records else body.get("cursor")

        return find_in_pages(PLATFORM, page)

    def _send(self, account: Account, method: str, nsid: str, *, pds: str,
              creates: bool = False, **kwargs) -> requests.Response:
        """One call with the session's token; once more with a refreshed one if it expired."""
        response = self.xrpc.call(method, nsid, account.access_token, pds=pds, creates=creates,
                                  **kwargs)
        if not expired(response):
            return response
        if account.refresh is None:
            raise AuthError("Bluesky: the session expired and this account has no refresh "
                            "token (it was added with a pasted token): connect it again",
                            http_status=response.status_code, error_code="ExpiredToken")
        return self.xrpc.call(method, nsid, account.refresh(), pds=pds, creates=creates, **kwargs)

    def _facets(self, text: str, account: Account, pds: str) -> tuple[list[dict], list[str]]:
        """Links, mentions and tags of `text` as facets, and the handles that resolve to no
        account (left as plain text)."""
        facets, unknown = [], []
        for match in _LINK.finditer(text):
            uri = _trim_link(match.group())
            facets.append(_facet(text, match.start(), match.start() + len(uri),
                                 {"$type": "app.bsky.richtext.facet#link", "uri": uri}))
        for match in _MENTION.finditer(text):
            handle = match.group(1).rstrip(".")
            did = self._resolve(handle, account, pds)
            if did is None:
                unknown.append(handle)
                continue
            facets.append(_facet(text, match.start(), match.start() + 1 + len(handle),
                                 {"$type": "app.bsky.richtext.facet#mention", "did": did}))
        for match in _TAG.finditer(text):
            tag = match.group(1).rstrip(_TRAILING)
            if tag and len(regex.findall(r"\X", tag)) <= 64:
                facets.append(_facet(text, match.start(), match.start(1) + len(tag),
                                     {"$type": "app.bsky.richtext.facet#tag", "tag": tag}))
        facets.sort(key=lambda f: f["index"]["byteStart"])
        return facets, unknown

    def _strong_ref(self, uri: str, account: Account, pds: str) -> dict:
        """{uri, cid} of one of the account's posts (com.atproto.repo.getRecord)."""
        repo, _, rkey = uri.removeprefix("at://").partition(f"/{POST}/")
        response = self._send(account, "GET", "com.atproto.repo.getRecord", pds=pds,
                              params={"repo": repo, "collection": POST, "rkey": rkey})
        cid = json_body(response).get("cid") if response.status_code == 200 else None
        if response.status_code != 200:
            raise self.xrpc.error(response, account.access_token)
        if not cid:
            raise RetryableError(f"Bluesky: no cid for {uri}", http_status=200, error_code="no_cid")
        return {"uri": uri, "cid": str(cid)}

    def _resolve(self, handle: str, account: Account, pds: str) -> str | None:
        response = self._send(account, "GET", "com.atproto.identity.resolveHandle", pds=pds,
                              params={"handle": handle})
        if response.status_code == 200:
            return json_body(response).get("did") or None
        if response.status_code == 400:  # InvalidRequest: "Unable to resolve handle"
            return None
        raise self.xrpc.error(response, account.access_token)


def _facet(text: str, start: int, end: int, feature: dict) -> dict:
    """A facet over text[start:end], its index in UTF-8 bytes as the protocol counts."""
    byte_start = len(text[:start].encode())
    return {"index": {"byteStart": byte_start,
                      "byteEnd": byte_start + len(text[start:end].encode())},
            "features": [feature]}


def _trim_link(uri: str) -> str:
    """A link without the punctuation that ends its sentence (and an unopened ')')."""
    uri = uri.rstrip(_TRAILING)
    if uri.endswith(")") and "(" not in uri:
        uri = uri[:-1]
    return uri


def _created(record: dict) -> datetime | None:
    raw = (record.get("value") or {}).get("createdAt")
    try:
        when = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
