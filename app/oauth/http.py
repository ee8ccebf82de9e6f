"""The token endpoint's answer, the same for every OAuth 2.0 platform (RFC 6749 section 5):
JSON with access_token, expires_in, refresh_token, scope; or an error object. Mapped into the
publisher taxonomy, the platform's own words kept and no token echoed."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import requests

from worker.publishers.base import AuthError, PublishError, RetryableError
from worker.publishers.http import HttpClient, by_status, json_body, scrub


def token_request(http: HttpClient, platform: str, url: str, data: dict,
                  auth: tuple[str, str] | None = None, secret: str = "") -> dict:
    """POST a form to a token endpoint; the JSON answer holding `access_token`. A read timeout
    or an unreadable 200 may mean the platform acted (a refresh token spent): such a
    RetryableError carries maybe_published=True."""
    response = http.send(platform, "POST", url, creates=True, data=data, auth=auth,
                         headers={"Accept": "application/json"})
    body = json_body(response)
    if response.status_code == 200:
        if isinstance(body.get("access_token"), str) and body["access_token"]:
            return body
        raise RetryableError(f"{platform}: the token endpoint answered 200 without an access "
                             "token", http_status=200, error_code="garbage", maybe_published=True)
    raise token_error(platform, response, body, secret)


def token_error(platform: str, response: requests.Response, body: dict,
                secret: str = "") -> PublishError:
    code = body.get("error") if isinstance(body.get("error"), str) else None
    # RFC 6749's error_description; Threads (as Instagram did) says error_message
    detail = (body.get("error_description") or body.get("error_message") or body.get("message")
              or code or response.reason)
    message = scrub(f"{platform} refused the token request (HTTP {response.status_code}"
                    f"{', ' + code if code else ''}): {detail}", secret)
    if response.status_code == 400 and code in ("invalid_grant", "invalid_request",
                                                 "unauthorized_client", "invalid_scope"):
        return AuthError(message, http_status=400, error_code=code)
    if response.status_code in (401, 403):
        return AuthError(message, http_status=response.status_code, error_code=code or "unauthorized")
    return by_status(response, message, code)


def expires(body: dict, now: datetime, key: str = "expires_in") -> datetime | None:
    """`expires_in` seconds from `now`, if the answer says."""
    try:
        value: Any = body.get(key)  # None: TypeError, caught below
        seconds = int(value)
    except (TypeError, ValueError):
        return None
    return now + timedelta(seconds=seconds) if seconds > 0 else None


def scopes(body: dict, separator: str = " ") -> tuple[str, ...]:
    raw = body.get("scope")
    if isinstance(raw, list):
        return tuple(str(s) for s in raw)
    return tuple(s for s in str(raw or "").replace(",", " ").split() if s)
