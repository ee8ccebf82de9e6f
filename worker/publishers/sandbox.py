"""The `sandbox` platform: publishes nowhere, needs no network, so the whole flow runs anywhere.

A post whose content contains `#sandbox-retry`, `#sandbox-fail`, `#sandbox-auth` or
`#sandbox-ratelimit` raises that error class instead, to try the error paths by hand.
Its metrics are synthetic: the same numbers for the same post id every time.
"""
from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta, timezone

from app.services.metrics import Measured
from app.statuses import Platform
from worker.publishers.base import (
    Account, AuthError, PermanentError, PostToPublish, PublishResult, RateLimitedError,
    RetryableError,
)


class SandboxPublisher:
    platform = Platform.SANDBOX

    def publish(self, post: PostToPublish, account: Account) -> PublishResult:
        if "#sandbox-retry" in post.content:
            raise RetryableError("sandbox: simulated timeout", error_code="timeout")
        if "#sandbox-fail" in post.content:
            raise PermanentError("sandbox: simulated rejection of the content",
                                 http_status=400, error_code="rejected")
        if "#sandbox-auth" in post.content:
            raise AuthError("sandbox: simulated expired token", http_status=401,
                            error_code="auth")
        if "#sandbox-ratelimit" in post.content:
            raise RateLimitedError(
                "sandbox: simulated rate limit", http_status=429, error_code="rate_limited",
                retry_at=datetime.now(timezone.utc) + timedelta(seconds=60))
        return PublishResult(platform_post_id=f"sandbox-{uuid.uuid4().hex[:16]}")

    metrics_batch = 100

    def fetch_metrics(self, post_ids: list[str], account: Account) -> dict[str, Measured]:
        """Made-up counts, derived from the id: 500-1,500 impressions, 1-6 % engagement."""
        out = {}
        for post_id in post_ids:
            seed = int.from_bytes(hashlib.sha256(post_id.encode()).digest()[:8], "big")
            impressions = 500 + seed % 1001
            engaged = impressions * (1 + (seed >> 12) % 6) // 100
            likes, comments = engaged * 6 // 10, engaged // 10
            shares, saves = engaged // 10, engaged // 10
            out[post_id] = Measured(impressions=impressions, likes=likes, comments=comments,
                                    shares=shares, saves=saves,
                                    clicks=engaged - likes - comments - shares - saves,
                                    raw={"synthetic": True})
        return out
