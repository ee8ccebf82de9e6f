"""Meta's Graph API, shared by the Facebook Page and Instagram publishers: versioned URLs,
the token (in the form body of a POST, in the Authorization header of a GET, never in a URL),
and the mapping of Graph's error `code`s into the taxonomy.
"""
from __future__ import annotations

import json
from typing import Any
from datetime import datetime, timedelta

import requests

from worker.publishers.base import (
    Account, AuthError, PermanentError, PublishError, RateLimitedError, RetryableError,
)
from worker.publishers.http import (
    HttpClient, bearer, describe, find_in_pages, json_body, lookup_failure, same_text,
)

AUTH_CODES = {102, 190}                      # session/token expired, revoked or invalid
PERMISSION_CODES = {10, *range(200, 300)}    # a permission the token was not granted
THROTTLING_CODES = {4, 17, 32, 613, *range(80001, 80015)}
TRANSIENT_CODES = {1, 2}
DUPLICATE_CODE = 506
IG_PUBLISHING_LIMIT = (9, 2207042)           # Instagram's 24-hour content publishing limit


class GraphClient:
    def __init__(self, settings, http: HttpClient, platform: str):
        self.base = f"{settings.graph_api_base_url.rstrip('/')}/{settings.graph_api_version}"
        self.http = http
        self.platform = platform

    def post(self, path: str, account: Account, fields: dict, *, creates: bool = False) -> dict:
        response = self.http.send(self.platform, "POST", f"{self.base}/{path}", creates=creates,
                                  data={**fields, "access_token": account.access_token})
        return self._answer(response, account)

    def get(self, path: str, account: Account, params: dict) -> dict:
        response = self.http.send(self.platform, "GET", f"{self.base}/{path}", params=params,
                                  headers=bearer(account.access_token))
        return self._answer(response, account)

    def find(self, path: str, account: Account, since: datetime, text_field: str,
             content: str) -> str | None:
        """The id of the item of a list edge (newest first, since `since`) whose `text_field`
        is `content`, page by page (the `after` cursor while `paging.next` says there is more);
        a refused read means 'cannot look'."""
        params = {"fields": f"id,{text_field}", "since": int(since.timestamp()), "limit": 100}

        def page(cursor: str | None) -> tuple[str | None, str | None]:
            response = self.http.send(self.platform, "GET", f"{self.base}/{path}",
                                      params={**params, "after": cursor} if cursor else params,
                                      headers=bearer(account.access_token))
            if response.status_code != 200:
                raise lookup_failure(self.platform, response, self.error(response, account))
            body = json_body(response)
            found = next((str(item["id"]) for item in body.get("data") or []
                          if same_text(item.get(text_field), content)), None)
            paging = body.get("paging") or {}
            more = paging.get("next") and (paging.get("cursors") or {}).get("after")
            return found, more or None

        return find_in_pages(self.platform, page)

    def many(self, ids: list[str], account: Account, fields: str) -> dict[str, dict]:
        """`fields` of several objects in one call (GET /?ids=a,b,...), by id."""
        answer = self.get("", account, {"ids": ",".join(ids), "fields": fields})
        return {str(k): v for k, v in answer.items() if isinstance(v, dict)}

    def created_id(self, answer: dict, *keys: str) -> str:
        """The id of what a POST created; none in a success means it may exist unnamed."""
        for key in keys:
            if answer.get(key):
                return str(answer[key])
        raise RetryableError(f"{self.platform} answered without an id", maybe_published=True,
                             error_code="no_id")

    def _answer(self, response: requests.Response, account: Account) -> dict:
        body = json_body(response)
        if response.status_code == 200 and "error" not in body:
            return body
        raise self.error(response, account)

    def error(self, response: requests.Response, account: Account) -> PublishError:
        error = json_body(response).get("error") or {}
        code, subcode = error.get("code"), error.get("error_subcode")
        error_code = None if code is None else f"{code}" + (f".{subcode}" if subcode else "")
        detail = error.get("error_user_msg") or error.get("message") or ""
        message = describe(self.platform, response, detail, error_code, account.access_token)
        kwargs: dict[str, Any] = {"http_status": response.status_code, "error_code": error_code}
        if code in AUTH_CODES or (code is None and response.status_code == 401):
            return AuthError(message, **kwargs)
        if code in PERMISSION_CODES:
            return AuthError(f"{message} (the token lacks a permission: reconnect granting it)",
                             missing_permission=True, **kwargs)
        if (code in THROTTLING_CODES or (code, subcode) == IG_PUBLISHING_LIMIT
                or response.status_code == 429):
            return RateLimitedError(message, retry_after=regain_access(response), **kwargs)
        if error.get("is_transient") or code in TRANSIENT_CODES or response.status_code >= 500:
            return RetryableError(message, **kwargs)
        if code == DUPLICATE_CODE:
            return PermanentError(message, http_status=response.status_code, error_code="506")
        return PermanentError(message, **kwargs)


def regain_access(response: requests.Response) -> timedelta | None:
    """The longest `estimated_time_to_regain_access` (minutes) of the usage headers, if any."""
    minutes = 0
    for header in ("X-Business-Use-Case-Usage", "X-Page-Usage", "X-App-Usage"):
        try:
            usage = json.loads(response.headers.get(header) or "{}")
        except ValueError:
            continue
        for entry in _entries(usage):
            try:
                minutes = max(minutes, int(entry.get("estimated_time_to_regain_access") or 0))
            except (TypeError, ValueError):
                continue
    return timedelta(minutes=minutes) if minutes else None


def _entries(usage) -> list[dict]:
    """X-Business-Use-Case-Usage is {business_id: [entry, ...]}; the others are one entry."""
    if not isinstance(usage, dict):
        return []
    if all(isinstance(v, list) for v in usage.values()) and usage:
        return [e for entries in usage.values() for e in entries if isinstance(e, dict)]
    return [usage]


METRICS_BATCH = 50  # ids per multi-id read (Graph's own limit)


def insight_values(node: dict) -> dict[str, int]:
    """{metric name: value} of a node's `insights` edge (a lifetime metric has one value)."""
    out = {}
    for metric in (node.get("insights") or {}).get("data") or []:
        values = metric.get("values") or [{}]
        value = values[-1].get("value", metric.get("value"))
        if isinstance(value, int):
            out[metric.get("name")] = value
    return out
