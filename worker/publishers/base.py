"""What every publisher is: `publish(post, account)` returns a result or raises one error class
of the taxonomy in DESIGN.md, and the queue decides what each class means."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class PostToPublish:
    id: str
    content: str
    media_urls: list[str]
    schedule_id: int
    attempt: int


@dataclass(frozen=True)
class Account:
    id: str
    platform: str
    external_id: str
    display_name: str | None
    access_token: str = field(repr=False)  # never in a repr, so never in a log line


@dataclass(frozen=True)
class PublishResult:
    platform_post_id: str


class PublishError(Exception):
    """Base of the taxonomy; `message` is what the operator reads, never a token."""

    def __init__(self, message: str, *, http_status: int | None = None,
                 error_code: str | None = None):
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.error_code = error_code


class RetryableError(PublishError):
    """Timeouts, connection errors, 5xx: try again later, within the attempts left."""


class PermanentError(PublishError):
    """The platform said no for good (validation, duplicate, media rejected)."""


class AuthError(PublishError):
    """The token is expired or revoked: the account must be reconnected."""


class RateLimitedError(PublishError):
    """Too many requests: wait until `retry_at` without spending an attempt."""

    def __init__(self, message: str, *, retry_at: datetime | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_at = retry_at


class Publisher(Protocol):
    platform: str

    def publish(self, post: PostToPublish, account: Account) -> PublishResult: ...
