"""Mastodon (any instance): `POST /api/v1/statuses` with the account's token and an
`Idempotency-Key` derived from the post and its part, the same on every attempt, so a retry
after a lost answer gets the first status back instead of a second one (instances keep a key
for an hour; past that, the lookup of the account's statuses applies).

external_id is `@user@instance`; the instance's URL and the account's numeric id are in
auth_meta (from connect); the post id is the status id.
"""
from __future__ import annotations

import html
import re
from datetime import datetime, timezone

import requests

from app.statuses import Platform
from worker.publishers.base import (
    Account, AuthError, PermanentError, PostToPublish, PublishError, PublishResult, RetryableError,
)
from worker.publishers.http import (
    HttpClient, bearer, by_status, describe, find_in_pages, json_body, lookup_failure, same_text,
)

PLATFORM = "Mastodon"
VISIBILITIES = ("public", "unlisted", "private", "direct")
PAGE = 40  # statuses per page, Mastodon's maximum


def instance_url(account: Account) -> str:
    """The instance's API base: as connect stored it, else the domain of `@user@domain`."""
    stored = account.meta.get("instance")
    if stored:
        return str(stored).rstrip("/")
    return f"https://{account.external_id.rsplit('@', 1)[-1]}"


def idempotency_key(post_id: str, part: int = 0) -> str:
    """The same for every attempt at one part of one post (never the claim's token)."""
    return f"post-scheduler:{post_id}:{part}"


class MastodonPublisher:
    platform = Platform.MASTODON

    def __init__(self, settings, http: HttpClient):
        self.http = http

    def publish(self, post: PostToPublish, account: Account) -> PublishResult:
        if post.media_urls:
            raise PermanentError("Mastodon: this worker cannot attach media to a Mastodon post "
                                 "yet; schedule it without media", error_code="media_unsupported")
        return self._status({"status": post.content}, account, idempotency_key(post.id))

    def reply(self, post: PostToPublish, account: Account, part) -> PublishResult:
        """A part of a thread, or the first comment: a status `in_reply_to_id` the previous."""
        return self._status({"status": part.text, "in_reply_to_id": part.to}, account,
                            idempotency_key(post.id, part.position))

    def find_reply(self, post: PostToPublish, account: Account, part,
                   since: datetime) -> str | None:
        return self._find(account, since, lambda s: same_text(plain_text(s.get("content")),
                                                               part.text)
                          and str(s.get("in_reply_to_id")) == part.to)

    def _status(self, body: dict, account: Account, key: str) -> PublishResult:
        visibility = account.meta.get("visibility")
        body = {**body, "visibility": visibility if visibility in VISIBILITIES else "public"}
        headers = {**bearer(account.access_token), "Idempotency-Key": key}
        response = self.http.send(PLATFORM, "POST", f"{instance_url(account)}/api/v1/statuses",
                                  creates=True, json=body, headers=headers)
        if response.status_code != 200:
            raise error(response, account.access_token)
        status_id = json_body(response).get("id")
        if not status_id:
            raise RetryableError("Mastodon accepted the post but sent no id back", http_status=200,
                                 maybe_published=True, error_code="no_id")
        return PublishResult(str(status_id))

    def find_existing(self, post: PostToPublish, account: Account, since: datetime) -> str | None:
        return self._find(account, since,
                          lambda s: same_text(plain_text(s.get("content")), post.content))

    def _find(self, account: Account, since: datetime, ours) -> str | None:
        """The account's statuses newest first (GET /api/v1/accounts/:id/statuses), back to
        `since`: the id of the first that is `ours` (their HTML read as text)."""
        base, account_id = instance_url(account), self._account_id(account)

        def page(max_id: str | None) -> tuple[str | None, str | None]:
            params = {"limit": PAGE, **({"max_id": max_id} if max_id else {})}
            response = self.http.send(PLATFORM, "GET",
                                      f"{base}/api/v1/accounts/{account_id}/statuses",
                                      params=params, headers=bearer(account.access_token))
            if response.status_code != 200:
                raise lookup_failure(PLATFORM, response, error(response, account.access_token))
            statuses = _list(response)
            found = next((str(s["id"]) for s in statuses if ours(s)), None)
            older = any(_created(s) < since for s in statuses)
            return found, None if older or len(statuses) < PAGE else str(statuses[-1]["id"])

        return find_in_pages(PLATFORM, page)

    def _account_id(self, account: Account) -> str:
        if account.meta.get("account_id"):
            return str(account.meta["account_id"])
        response = self.http.send(PLATFORM, "GET",
                                  f"{instance_url(account)}/api/v1/accounts/verify_credentials",
                                  headers=bearer(account.access_token))
        if response.status_code != 200 or not json_body(response).get("id"):
            raise lookup_failure(PLATFORM, response, error(response, account.access_token))
        return str(json_body(response)["id"])


def error(response: requests.Response, secret: str = "") -> PublishError:
    """Mastodon's `{"error": ..., "error_description"?: ...}` by status: 401 and 403 are the
    token's (403: a scope it lacks, or a suspended account), 422 the post's, 429 the rate limit
    until `X-RateLimit-Reset` (an ISO 8601 time)."""
    body = json_body(response)
    detail = str(body.get("error_description") or body.get("error") or "")
    message = describe(PLATFORM, response, detail, None, secret)
    if response.status_code == 403:
        return AuthError(f"{message} (the token lacks a permission, or the account is limited: "
                         "reconnect it)", http_status=403, missing_permission=True)
    if response.status_code == 422:
        return PermanentError(message, http_status=422, error_code="validation")
    return by_status(response, message, None, retry_at=_iso(
        response.headers.get("X-RateLimit-Reset")))


def plain_text(content) -> str:
    """A status's HTML as its text: paragraphs and line breaks as newlines, tags dropped."""
    text = re.sub(r"<br\s*/?>|</p>\s*<p>", "\n", str(content or ""))
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def _iso(value: str | None) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None
    return when if when is None or when.tzinfo else when.replace(tzinfo=timezone.utc)


def _list(response: requests.Response) -> list[dict]:
    try:
        body = response.json()
    except ValueError:
        return []
    return [s for s in body if isinstance(s, dict) and s.get("id")] if isinstance(body, list) else []


def _created(status: dict) -> datetime:
    return _iso(status.get("created_at")) or datetime.max.replace(tzinfo=timezone.utc)
