"""X (formerly Twitter): `POST /2/tweets` with the account's OAuth 2.0 user token.

external_id is the X user id (numeric); the post id is the answer's `data.id`. Metrics:
`GET /2/tweets?ids=` (up to 100) with `tweet.fields=public_metrics`.
"""
from __future__ import annotations

from datetime import datetime, timezone

import requests

from app.services.metrics import Measured
from app.statuses import Platform
from worker.publishers.base import (
    Account, PermanentError, PostToPublish, PublishError, PublishResult, RetryableError,
)
from worker.publishers.http import (
    HttpClient, bearer, by_status, describe, epoch, find_in_pages, json_body, lookup_failure,
    same_text,
)

PLATFORM = "X"


class XPublisher:
    platform = Platform.X

    def __init__(self, settings, http: HttpClient):
        self.base = settings.x_api_base_url.rstrip("/")
        self.http = http

    def publish(self, post: PostToPublish, account: Account) -> PublishResult:
        if post.media_urls:
            raise PermanentError("X: this worker cannot attach media to an X post yet (X wants "
                                 "the file uploaded first); schedule it without media or put "
                                 "the link in the text", error_code="media_unsupported")
        response = self.http.send(PLATFORM, "POST", f"{self.base}/2/tweets", creates=True,
                                  json={"text": post.content}, headers=bearer(account.access_token))
        if response.status_code in (200, 201):
            post_id = (json_body(response).get("data") or {}).get("id")
            if post_id:
                return PublishResult(str(post_id))
            raise RetryableError("X accepted the post but sent no id back", maybe_published=True,
                                 http_status=response.status_code, error_code="no_id")
        raise self._error(response, account)

    def find_existing(self, post: PostToPublish, account: Account, since: datetime) -> str | None:
        """The account's posts since `since` (GET /2/users/:id/tweets, needs tweet.read), page
        by page (`pagination_token` from `meta.next_token`)."""
        params = {"start_time": since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "max_results": 100, "tweet.fields": "created_at"}

        def page(cursor: str | None) -> tuple[str | None, str | None]:
            response = self.http.send(
                PLATFORM, "GET", f"{self.base}/2/users/{account.external_id}/tweets",
                headers=bearer(account.access_token),
                params={**params, "pagination_token": cursor} if cursor else params)
            if response.status_code != 200:
                raise lookup_failure(PLATFORM, response, self._error(response, account))
            body = json_body(response)
            found = next((str(t["id"]) for t in body.get("data") or []
                          if same_text(t.get("text"), post.content)), None)
            return found, (body.get("meta") or {}).get("next_token")

        return find_in_pages(PLATFORM, page)

    metrics_batch = 100  # ids per GET /2/tweets

    def fetch_metrics(self, post_ids: list[str], account: Account) -> dict[str, Measured]:
        """public_metrics of the posts; a deleted post is in `errors`, not `data`, and is left
        out. Retweets and quotes count as shares, bookmarks as saves; X gives clicks only in
        non_public_metrics (30 days, owner only), which is not read."""
        response = self.http.send(PLATFORM, "GET", f"{self.base}/2/tweets",
                                  params={"ids": ",".join(post_ids),
                                          "tweet.fields": "public_metrics"},
                                  headers=bearer(account.access_token))
        if response.status_code != 200:
            raise self._error(response, account)
        out = {}
        for tweet in json_body(response).get("data") or []:
            m = tweet.get("public_metrics") or {}
            shares = [m[k] for k in ("retweet_count", "quote_count") if k in m]
            out[str(tweet["id"])] = Measured(
                impressions=m.get("impression_count"), likes=m.get("like_count"),
                comments=m.get("reply_count"), shares=sum(shares) if shares else None,
                saves=m.get("bookmark_count"), raw=tweet)
        return out

    def _error(self, response: requests.Response, account: Account) -> PublishError:
        body = json_body(response)
        errors = body.get("errors") or [{}]
        detail = body.get("detail") or errors[0].get("message") or body.get("title") or ""
        code = str(errors[0].get("code") or body.get("title") or "") or None
        message = describe(PLATFORM, response, detail, code, account.access_token)
        if response.status_code == 403 and "duplicate" in detail.lower():
            return PermanentError(message, http_status=403, error_code="duplicate")
        return by_status(response, message, code, retry_at=_reset(response))


def _reset(response: requests.Response) -> datetime | None:
    """When X lets the account post again: the window's reset, or the 24-hour cap's when spent."""
    reset = epoch(response.headers.get("x-rate-limit-reset"))
    if response.headers.get("x-user-limit-24hour-remaining") == "0":
        daily = epoch(response.headers.get("x-user-limit-24hour-reset"))
        reset = max(filter(None, (reset, daily)), default=None)
    return reset
