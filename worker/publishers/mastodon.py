"""Mastodon (any instance): `POST /api/v1/statuses` with the account's token and an
`Idempotency-Key` derived from the post and its part, the same on every attempt, so a retry
after a lost answer gets the first status back instead of a second one (instances keep a key
for an hour; past that, the lookup of the account's statuses applies).

external_id is `@user@instance`; the instance's URL and the account's numeric id are in
auth_meta (from connect); the post id is the status id. Media go up first (`POST
/api/v2/media`, multipart `file` and `description` = alt text): 200 is ready, 202 is processed
in the background and `GET /api/v1/media/:id` is polled until its `url` is set; the status
names them in `media_ids`. An upload's id is kept on the post, so a retry reuses it.
Metrics: the statuses' counts, 20 a call by `GET /api/v1/statuses?id[]=` (Mastodon 4.3+), else
one `GET /api/v1/statuses/:id` each.
"""
from __future__ import annotations

import html
import re
import time
from datetime import datetime, timedelta, timezone

import requests

from app.services.metrics import Measured
from app.statuses import Platform
from worker import media as post_media
from worker.publishers.base import (
    Account, AuthError, NotReadyError, PermanentError, PostToPublish, PublishError, PublishResult,
    RetryableError,
)
from worker.publishers.http import (
    HttpClient, bearer, by_status, describe, find_in_pages, json_body, lookup_failure, same_text,
)

PLATFORM = "Mastodon"
VISIBILITIES = ("public", "unlisted", "private", "direct")
PAGE = 40  # statuses per page, Mastodon's maximum
# Mastodon removes media no status uses after a day: an earlier attempt's upload is reused
# within this margin, uploaded again after it.
REUSE_FOR = timedelta(hours=20)
NOT_READY_WAIT = timedelta(seconds=30)
MANY = 20  # ids per GET /api/v1/statuses?id[]=, Mastodon's maximum


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

    def __init__(self, settings, http: HttpClient, sleep=time.sleep):
        self.settings, self.http, self.sleep = settings, http, sleep
        self.poll_interval = settings.instagram_poll_interval
        self.poll_attempts = settings.instagram_poll_attempts
        self.one_by_one: set[str] = set()  # instances without GET /api/v1/statuses?id[]=

    def publish(self, post: PostToPublish, account: Account) -> PublishResult:
        body: dict[str, object] = {"status": post.content}
        if post.media:
            body["media_ids"] = [self._media(post, item, account) for item in post.media]
        return self._status(body, account, idempotency_key(post.id))

    def _media(self, post: PostToPublish, item: post_media.MediaItem, account: Account) -> str:
        """The id of one item uploaded and processed: an earlier attempt's, or uploaded now."""
        earlier = item.platform_media_id
        if earlier and item.uploaded_at and item.uploaded_at > datetime.now(timezone.utc) - REUSE_FOR:
            return self._wait(earlier, account)
        with post_media.opened(item, self.settings) as local, open(local.path, "rb") as file:
            response = self.http.send(
                PLATFORM, "POST", f"{instance_url(account)}/api/v2/media",
                headers=bearer(account.access_token),
                files={"file": (f"media-{item.position + 1}", file, local.mime_type)},
                data={"description": item.alt_text} if item.alt_text else {})
        if response.status_code not in (200, 202):
            raise error(response, account.access_token)
        media_id = json_body(response).get("id")
        if not media_id:
            raise RetryableError("Mastodon accepted the upload but sent no media id back",
                                 http_status=response.status_code, error_code="no_media_id")
        post.remember_media(item.position, str(media_id))
        if response.status_code == 200 and json_body(response).get("url"):
            return str(media_id)
        return self._wait(str(media_id), account)

    def _wait(self, media_id: str, account: Account) -> str:
        """Poll GET /api/v1/media/:id until its `url` is set (206 while processing);
        NotReadyError, the id kept, when it takes longer than this attempt may wait."""
        for check in range(self.poll_attempts):
            response = self.http.send(PLATFORM, "GET",
                                      f"{instance_url(account)}/api/v1/media/{media_id}",
                                      headers=bearer(account.access_token))
            if response.status_code == 200 and json_body(response).get("url"):
                return media_id
            if response.status_code not in (200, 206):
                raise error(response, account.access_token)
            if check + 1 < self.poll_attempts:
                self.sleep(self.poll_interval)
        raise NotReadyError(f"Mastodon is still processing media {media_id}; the post will be "
                            "tried again shortly", retry_after=NOT_READY_WAIT,
                            error_code="media_in_progress")

    def reply(self, post: PostToPublish, account: Account, part) -> PublishResult:
        """A part of a thread, or the first comment: a status `in_reply_to_id` the previous."""
        return self._status({"status": part.text, "in_reply_to_id": part.to}, account,
                            idempotency_key(post.id, part.position))

    def find_reply(self, post: PostToPublish, account: Account, part,
                   since: datetime) -> str | None:
        return self._find(account, since, lambda s: same_status(s, part.text)
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
        return self._find(account, since, lambda s: same_status(s, post.content))

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

    metrics_batch = MANY

    def fetch_metrics(self, post_ids: list[str], account: Account) -> dict[str, Measured]:
        """Favourites, replies and reblogs of the statuses (Mastodon gives no impressions):
        in one call where the instance has the batch read (4.3+), else one call each; an
        instance without it answers 404 and is remembered. A deleted status is left out."""
        base = instance_url(account)
        statuses = None if base in self.one_by_one else self._many(base, post_ids, account)
        if statuses is None:
            self.one_by_one.add(base)
            statuses = [s for pid in post_ids if (s := self._one(base, pid, account))]
        return {str(s["id"]): Measured(likes=s.get("favourites_count"),
                                       comments=s.get("replies_count"),
                                       shares=s.get("reblogs_count"), raw=s)
                for s in statuses if str(s["id"]) in post_ids}

    def _many(self, base: str, post_ids: list[str], account: Account) -> list[dict] | None:
        response = self.http.send(PLATFORM, "GET", f"{base}/api/v1/statuses",
                                  params={"id[]": post_ids}, headers=bearer(account.access_token))
        if response.status_code == 404:  # before 4.3: no such route
            return None
        if response.status_code != 200:
            raise error(response, account.access_token)
        return _list(response)

    def _one(self, base: str, post_id: str, account: Account) -> dict | None:
        response = self.http.send(PLATFORM, "GET", f"{base}/api/v1/statuses/{post_id}",
                                  headers=bearer(account.access_token))
        if response.status_code == 404:  # deleted, or no longer visible to the account
            return None
        body = json_body(response)
        if response.status_code != 200 or not body.get("id"):
            raise error(response, account.access_token)
        return body

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


def same_status(status: dict, text: str) -> bool:
    """Whether a status read back is `text`: Mastodon renders a remote mention `@user@domain`
    as `@user`, so both sides are compared without mentions' domains."""
    return same_text(_REMOTE.sub(r"\1", plain_text(status.get("content"))),
                     _REMOTE.sub(r"\1", text))


_REMOTE = re.compile(r"(@\w+)@[\w.-]+\w")


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
