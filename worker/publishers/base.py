"""What every publisher is: `publish(post, account)` returns a result or raises one error class
of the taxonomy in docs/architecture.md, and the queue decides what each class means.

A publisher may also offer `find_existing(post, account, since)`: the id of the post if it is
already on the platform (published by an attempt whose outcome is unknown), else None; it raises
LookupUnavailable where the platform gives no way to look.

A publisher may also offer `fetch_metrics(platform_post_ids, account) -> {platform_post_id:
app.services.metrics.Measured}` with `metrics_batch` (ids a call): worker/metrics.py measures its
posts 1 h, 24 h and 7 d after publishing through it (a platform without it is not measured).
It raises the same taxonomy (a rate limit defers the collection).
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterator, Protocol


def _forget(draft_id: str | None) -> None:
    """The default `keep_draft`: nowhere to keep it (a post published outside the queue)."""


@dataclass(frozen=True)
class PostToPublish:
    id: str
    content: str
    media_urls: list[str]
    schedule_id: int
    attempt: int
    # An unpublished object an earlier attempt made on the platform (an Instagram container).
    draft_id: str | None = None
    # Remember a new draft at once (in the queue row), so a retry after a crash reuses it.
    keep_draft: Callable[[str | None], object] = field(default=_forget, repr=False, compare=False)


@dataclass(frozen=True)
class Account:
    id: str
    platform: str
    external_id: str
    display_name: str | None
    access_token: str = field(repr=False)  # never in a repr, so never in a log line
    # social_accounts.auth_meta: what connect learned (a Mastodon instance, a Bluesky PDS).
    meta: dict = field(default_factory=dict, compare=False)
    # A new access token when the platform says this one expired (Bluesky's ExpiredToken):
    # refreshes the stored session once for every worker; raises AuthError when refused.
    # None where the account has nothing to refresh with.
    refresh: Callable[[], str] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class PublishResult:
    platform_post_id: str
    # Something the owner should know about a post that did go out (a mention left as plain
    # text): kept in the attempt's record.
    note: str | None = None


class PublishError(Exception):
    """Base of the taxonomy; `message` is what the operator reads, never a token."""

    def __init__(self, message: str, *, http_status: int | None = None,
                 error_code: str | None = None, maybe_published: bool = False):
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.error_code = error_code
        # The request may have reached the platform (no answer came back): look before reposting.
        self.maybe_published = maybe_published


class RetryableError(PublishError):
    """Timeouts, connection errors, 5xx: try again later, within the attempts left."""


class PermanentError(PublishError):
    """The platform said no for good (validation, duplicate, media rejected)."""


class AuthError(PublishError):
    """The token is expired or revoked, or lacks a permission: the account must be reconnected.
    `missing_permission`: the token is valid but not allowed this call (a read scope, say)."""

    def __init__(self, message: str, *, missing_permission: bool = False, **kwargs):
        super().__init__(message, **kwargs)
        self.missing_permission = missing_permission


class RateLimitedError(PublishError):
    """Too many requests: wait until `retry_at` (or `retry_after` from now) without spending
    an attempt. The account's other posts wait too."""

    def __init__(self, message: str, *, retry_at: datetime | None = None,
                 retry_after: timedelta | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_at = retry_at
        self.retry_after = retry_after


class NotReadyError(RateLimitedError):
    """The platform is still processing (an Instagram container): come back after
    `retry_after` without spending an attempt; the account's other posts are not held."""


class ClaimExpired(PublishError):
    """The claim may no longer be this worker's (it is older than the lock timeout minus a
    margin, or another worker recovered it): no request was sent for it."""


# What must hold before each request to a platform: set by the worker around a publish, checked
# by the HTTP client, so every request of a multi-request publish (and of a lookup) is checked.
_guard: ContextVar[Callable[[], None] | None] = ContextVar("request_guard", default=None)


@contextmanager
def guarded(check: Callable[[], None]) -> Iterator[None]:
    """`check()` runs before every request made inside this block (in this thread); it raises
    ClaimExpired to stop the request."""
    token = _guard.set(check)
    try:
        yield
    finally:
        _guard.reset(token)


def before_request() -> None:
    check = _guard.get()
    if check is not None:
        check()


class LookupUnavailable(PublishError):
    """The platform (or this token's scopes) gives no way to look for an existing post."""


class Publisher(Protocol):
    @property
    def platform(self) -> str: ...  # read-only, so a publisher may declare it as a Platform

    def publish(self, post: PostToPublish, account: Account) -> PublishResult: ...
