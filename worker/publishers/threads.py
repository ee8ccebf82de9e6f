"""Threads (THREADS_API_BASE_URL, Graph-style errors): a container (`POST /{user-id}/threads`,
TEXT for now), its `status` polled until FINISHED, then `POST /{user-id}/threads_publish` with
`creation_id`; the container is kept in the queue row across attempts, as Instagram's is.

Threads allows 250 API posts in a moving 24 hours: `threads_publishing_limit` is read before a
new container is made, and a spent quota defers the post to when its oldest post leaves the
window. external_id is the Threads user id; the post id is what threads_publish returns.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from app.statuses import Platform
from worker.publishers.base import (
    Account, PermanentError, PostToPublish, PublishResult, RateLimitedError,
)
from worker.publishers.instagram import InstagramPublisher
from worker.publishers.graph import GraphClient
from worker.publishers.http import LOOKUP_PAGES

VERSION = "v1.0"
QUOTA_WAIT = timedelta(hours=1)  # when the window's oldest post cannot be read


class ThreadsPublisher(InstagramPublisher):
    platform = Platform.THREADS
    name = "Threads"
    publish_edge = "threads_publish"
    status_field, status_fields = "status", "status,error_message"

    def __init__(self, settings, http, sleep=time.sleep,
                 clock=lambda: datetime.now(timezone.utc)):
        super().__init__(settings, http, sleep)
        self.graph = threads_client(settings, http)
        self.clock = clock

    def publish(self, post: PostToPublish, account: Account):
        if not post.draft_id:
            self._check_quota(account)
        return super().publish(post, account)

    def reply(self, post: PostToPublish, account: Account, part) -> PublishResult:
        """A part of a thread, or the first comment: a TEXT container `reply_to_id` the
        previous, published as a post is (its container is not kept: unpublished ones expire)."""
        self._check_quota(account)
        container = self.graph.created_id(self.graph.post(
            f"{account.external_id}/threads", account,
            fields={"media_type": "TEXT", "text": part.text, "reply_to_id": part.to}), "id")
        return self._publish_container(container, account)

    def find_reply(self, post: PostToPublish, account: Account, part,
                   since: datetime) -> str | None:
        """The account's replies with the part's text (GET /{user-id}/replies)."""
        return self.graph.find(f"{account.external_id}/replies", account, since, "text",
                               part.text)

    def find_existing(self, post: PostToPublish, account: Account, since: datetime) -> str | None:
        """The account's threads since `since` with the same text (GET /{user-id}/threads)."""
        return self.graph.find(f"{account.external_id}/threads", account, since, "text",
                               post.content)

    def _create(self, post: PostToPublish, account: Account) -> str:
        if post.media_urls:
            raise PermanentError("Threads: this worker cannot attach images or videos to a "
                                 "Threads post yet; schedule it without media",
                                 error_code="media_unsupported")
        container = self.graph.created_id(self.graph.post(
            f"{account.external_id}/threads", account,
            fields={"media_type": "TEXT", "text": post.content}), "id")
        post.keep_draft(container)
        return container

    def _check_quota(self, account: Account) -> None:
        usage = (self.graph.get(f"{account.external_id}/threads_publishing_limit", account,
                                {"fields": "quota_usage,config"}).get("data") or [{}])[0]
        config = usage.get("config") or {}
        total, used = config.get("quota_total"), usage.get("quota_usage")
        if not isinstance(total, int) or not isinstance(used, int) or used < total:
            return
        window = timedelta(seconds=int(config.get("quota_duration") or 86400))
        raise RateLimitedError(
            f"Threads: the account has published {used} of its {total} posts allowed in "
            f"{window.total_seconds() / 3600:g} h through the API; the post waits until the "
            "oldest leaves that window", retry_at=self._frees_at(account, window),
            retry_after=QUOTA_WAIT, error_code="threads_publishing_limit")

    def _frees_at(self, account: Account, window: timedelta) -> datetime | None:
        """When the oldest post of the moving window leaves it (the window's posts read page by
        page, newest first), or None when they cannot all be read."""
        since = self.clock() - window
        params = {"fields": "id,timestamp", "since": int(since.timestamp()), "limit": 100}
        oldest = None
        for _ in range(LOOKUP_PAGES):
            body = self.graph.get(f"{account.external_id}/threads", account, params)
            stamps = [w for item in body.get("data") or []
                      if (w := _when(item.get("timestamp"))) is not None and w >= since]
            oldest = min([*stamps, *([oldest] if oldest else [])], default=None)
            paging = body.get("paging") or {}
            after = paging.get("next") and (paging.get("cursors") or {}).get("after")
            if not after:
                return oldest + window if oldest else None
            params = {**params, "after": after}
        return None


def threads_client(settings, http) -> GraphClient:
    """Threads answers errors as Graph does: the Graph client's mapping, on Threads' host."""
    client = GraphClient(settings, http, "Threads")
    client.base = f"{settings.threads_api_base_url.rstrip('/')}/{VERSION}"
    return client


def _when(raw) -> datetime | None:
    try:  # Threads writes 2026-11-23T20:01:02+0000
        return datetime.strptime(str(raw), "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None
