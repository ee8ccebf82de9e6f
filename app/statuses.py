"""Every state a row can be in, and every platform, named once (as rq's JobStatus is).

They are `StrEnum`s: a member equals its string, so the database, JSON and the CLI see plain
strings while the code compares and writes through the names. The order of each is the order
of its database ENUM (sql/migrations/versions/), and the order listings show.
"""
from __future__ import annotations

from enum import StrEnum


class Platform(StrEnum):
    X = "x"
    FACEBOOK = "facebook"
    INSTAGRAM = "instagram"
    LINKEDIN = "linkedin"
    SANDBOX = "sandbox"
    # In the database since 0008; an account can be added once the platform has its limits
    # (app/services/limits.py LIMITS) and a publisher.
    BLUESKY = "bluesky"
    MASTODON = "mastodon"
    THREADS = "threads"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    NEEDS_RECONNECT = "needs_reconnect"  # a platform refused its token: posts wait for a reconnect


class PostStatus(StrEnum):
    """What became of a post (post_details.status), as its owner sees it."""

    PENDING = "pending"
    PUBLISHED = "published"
    FAILED = "failed"
    CANCELLED = "cancelled"
    MISSED = "missed"
    DRAFT = "draft"  # saved without a time: no schedule row until it is scheduled


class QueueStatus(StrEnum):
    """Where a post is in the queue (post_schedule.status)."""

    PENDING = "pending"
    PROCESSING = "processing"  # claimed by a worker, under its lock_token
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    MISSED = "missed"          # due longer ago than SCHEDULER_MISSED_AFTER when a worker reached it
    WAITING = "waiting"        # held until its account is reconnected


class JobStatus(StrEnum):
    """Where a background job is (jobs.status): the queue's claim states, and how it ended."""

    PENDING = "pending"
    PROCESSING = "processing"  # claimed by a worker, under its lock_token
    DONE = "done"
    FAILED = "failed"          # its handler gave up, or its last attempt went wrong


class Outcome(StrEnum):
    """How one publish attempt ended (publish_attempts.outcome); NULL while in flight."""

    PUBLISHED = "published"
    RETRY = "retry"
    FAILED = "failed"
    DEFERRED = "deferred"
    UNKNOWN = "unknown"  # its worker vanished mid-attempt: it may or may not have gone out


class PartKind(StrEnum):
    """One step of a post in parts (post_parts): the post, a reply of its thread, the first comment."""

    POST = "post"
    REPLY = "reply"
    COMMENT = "comment"


# A user may still change or cancel a post in these: no worker has claimed it.
EDITABLE = (QueueStatus.PENDING, QueueStatus.WAITING)
RETRYABLE = (QueueStatus.FAILED, QueueStatus.MISSED)


class DeliveryStatus(StrEnum):
    """Where a webhook delivery stands (webhook_deliveries.status)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    RETRYING = "retrying"  # an attempt failed; its deliver_webhook job tries again later
    FAILED = "failed"      # given up (24 h of retries, the webhook deleted, its URL refused)
