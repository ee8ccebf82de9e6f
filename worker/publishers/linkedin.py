"""LinkedIn: `POST /rest/posts` (the versioned Posts API) as a member or an organization.

external_id is the author URN (urn:li:person:... or urn:li:organization:...); the post id
is the `x-restli-id` header of the 201 answer (urn:li:share:... or urn:li:ugcPost:...).
Metrics: likes and comments from `GET /rest/socialActions?ids=List(...)` (BATCH_GET), and for
an organization's posts impressions, clicks and reposts from
`GET /rest/organizationalEntityShareStatistics` (a member's posts have no such statistics).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import requests

from app.services.metrics import Measured
from app.statuses import Platform
from worker.publishers.base import (
    Account, PermanentError, PostToPublish, PublishError, PublishResult, RetryableError,
)
from worker.publishers.http import (
    HttpClient, by_status, describe, find_in_pages, json_body, lookup_failure, retry_after,
    same_text,
)

PLATFORM = "LinkedIn"
PAGE_SIZE = 100  # the posts finder's largest `count`
AUTHOR = re.compile(r"urn:li:(person|organization):[A-Za-z0-9_-]+")
# "little" text format: these are markup unless escaped with a backslash. A '#' that starts a
# word stays a hashtag, and links are left whole so they still link.
_RESERVED = re.compile(r"[\\|{}@\[\]()<>*_~]|#(?!\w)")
_LINK = re.compile(r"https?://\S+")


def escape_little(text: str) -> str:
    """`text` as plain text in LinkedIn's little format (commentary)."""
    parts, at = [], 0
    for link in _LINK.finditer(text):
        parts.append(_RESERVED.sub(lambda m: "\\" + m.group(), text[at:link.start()]))
        parts.append(link.group())
        at = link.end()
    parts.append(_RESERVED.sub(lambda m: "\\" + m.group(), text[at:]))
    return "".join(parts)


class LinkedInPublisher:
    platform = Platform.LINKEDIN

    def __init__(self, settings, http: HttpClient):
        self.base = settings.linkedin_api_base_url.rstrip("/")
        self.version = settings.linkedin_version
        self.http = http

    def headers(self, account: Account) -> dict[str, str]:
        return {"Authorization": f"Bearer {account.access_token}",
                "LinkedIn-Version": self.version, "X-Restli-Protocol-Version": "2.0.0"}

    def publish(self, post: PostToPublish, account: Account) -> PublishResult:
        if not AUTHOR.fullmatch(account.external_id):
            raise PermanentError(f"LinkedIn: the account's external id {account.external_id!r} is "
                                 "not a person or organization URN (urn:li:person:... or "
                                 "urn:li:organization:...); add the account again with its URN",
                                 error_code="bad_author")
        if post.media_urls:
            raise PermanentError("LinkedIn: this worker cannot attach media to a LinkedIn post yet "
                                 "(LinkedIn wants the file uploaded first); schedule it without "
                                 "media or put the link in the text", error_code="media_unsupported")
        body = {"author": account.external_id, "commentary": escape_little(post.content),
                "visibility": "PUBLIC",
                "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [],
                                 "thirdPartyDistributionChannels": []},
                "lifecycleState": "PUBLISHED", "isReshareDisabledByAuthor": False}
        response = self.http.send(PLATFORM, "POST", f"{self.base}/rest/posts", creates=True,
                                  json=body, headers=self.headers(account))
        if response.status_code in (200, 201):
            post_id = response.headers.get("x-restli-id")
            if post_id:
                return PublishResult(post_id)
            raise RetryableError("LinkedIn accepted the post but sent no x-restli-id back",
                                 maybe_published=True, http_status=response.status_code,
                                 error_code="no_id")
        raise self._error(response, account)

    def find_existing(self, post: PostToPublish, account: Account, since: datetime) -> str | None:
        """The author's recent posts (GET /rest/posts?q=author). Needs r_organization_social
        for a page, or r_member_social (granted to few apps) for a member. Newest first, page
        by page (`start`, `count`) until a page reaches back past `since` or is short."""
        since_ms, wanted = since.timestamp() * 1000, escape_little(post.content)

        def page(start: int | None) -> tuple[str | None, int | None]:
            start = start or 0
            response = self.http.send(
                PLATFORM, "GET", f"{self.base}/rest/posts",
                headers={**self.headers(account), "X-RestLi-Method": "FINDER"},
                params={"q": "author", "author": account.external_id, "start": start,
                        "count": PAGE_SIZE, "sortBy": "CREATED"})
            if response.status_code != 200:
                raise lookup_failure(PLATFORM, response, self._error(response, account))
            elements = json_body(response).get("elements") or []
            recent = [e for e in elements if (e.get("createdAt") or 0) >= since_ms]
            found = next((str(e["id"]) for e in recent
                          if same_text(e.get("commentary"), wanted)), None)
            more = len(elements) == PAGE_SIZE and len(recent) == len(elements)
            return found, start + PAGE_SIZE if more else None

        return find_in_pages(PLATFORM, page)

    metrics_batch = 50  # URNs per call

    def fetch_metrics(self, post_ids: list[str], account: Account) -> dict[str, Measured]:
        actions = self._read(account, "socialActions", f"ids={_urn_list(post_ids)}")
        results = actions.get("results") or {}
        stats = {}
        if account.external_id.startswith("urn:li:organization:"):
            shares = [i for i in post_ids if i.startswith("urn:li:share:")]
            ugc = [i for i in post_ids if not i.startswith("urn:li:share:")]
            query = (f"q=organizationalEntity&organizationalEntity={quote(account.external_id, safe='')}"
                     + (f"&shares={_urn_list(shares)}" if shares else "")
                     + (f"&ugcPosts={_urn_list(ugc)}" if ugc else ""))
            for element in self._read(account, "organizationalEntityShareStatistics",
                                      query).get("elements") or []:
                stats[element.get("share") or element.get("ugcPost")] = element
        out = {}
        for post_id in post_ids:
            action, stat = results.get(post_id), stats.get(post_id)
            if action is None and stat is None:
                continue  # deleted, or not readable with this token
            total = (stat or {}).get("totalShareStatistics") or {}
            out[post_id] = Measured(
                impressions=total.get("impressionCount"), clicks=total.get("clickCount"),
                shares=total.get("shareCount"),
                likes=((action or {}).get("likesSummary") or {}).get("totalLikes",
                                                                      total.get("likeCount")),
                comments=((action or {}).get("commentsSummary") or {}).get(
                    "aggregatedTotalComments", total.get("commentCount")),
                raw={"socialActions": action, "shareStatistics": stat})
        return out

    def _read(self, account: Account, resource: str, query: str) -> dict:
        """A GET whose query is written here: Rest.li wants List(...) unescaped around the
        escaped URNs, which `params=` would escape again."""
        response = self.http.send(PLATFORM, "GET", f"{self.base}/rest/{resource}?{query}",
                                  headers=self.headers(account))
        if response.status_code != 200:
            raise self._error(response, account)
        return json_body(response)

    def _error(self, response: requests.Response, account: Account) -> PublishError:
        body = json_body(response)
        detail = str(body.get("message") or "")
        code = str(body.get("serviceErrorCode") or body.get("code") or "") or None
        message = describe(PLATFORM, response, detail, code, account.access_token)
        if response.status_code == 422 and "duplicate" in detail.lower():
            return PermanentError(message, http_status=422, error_code="duplicate")
        return by_status(response, message, code, retry_at=_day_limit_reset(response, detail),
                         wait=retry_after(response.headers.get("Retry-After")))


def _urn_list(urns: list[str]) -> str:
    return "List(" + ",".join(quote(u, safe="") for u in urns) + ")"


def _day_limit_reset(response: requests.Response, detail: str) -> datetime | None:
    """LinkedIn's throttles are daily and reset at midnight UTC; its 429 rarely says when."""
    if response.status_code != 429 or response.headers.get("Retry-After") or \
            "DAY limit" not in detail:
        return None
    now = datetime.now(timezone.utc)
    return datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + timedelta(days=1)
