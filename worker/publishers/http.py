"""The HTTP side every platform client shares: one pooled `requests.Session` per thread,
connect and read timeouts, a User-Agent naming the project, transport failures as
RetryableError, and the helpers that turn a platform's answer into a taxonomy error whose
message is the platform's own, trimmed, and never carries a token.
"""
from __future__ import annotations

import re
import threading
from typing import Any
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from importlib import metadata
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from worker.publishers.base import (
    AuthError, LookupUnavailable, PermanentError, PublishError, RateLimitedError, RetryableError,
    before_request,
)

MESSAGE_LIMIT = 300
LOOKUP_PAGES = 10  # pages of an account's posts read, at most, looking for a lost attempt's post


def _user_agent() -> str:
    try:
        version = metadata.version("post-scheduler")
    except metadata.PackageNotFoundError:
        version = "dev"
    return f"post-scheduler/{version} (social media post scheduler; python-requests)"


USER_AGENT = _user_agent()


class HttpClient:
    """Sends the platforms' requests; each worker thread gets a pooled Session of its own."""

    def __init__(self, connect_timeout: float, read_timeout: float):
        self.timeout = (connect_timeout, read_timeout)
        self._local = threading.local()

    @classmethod
    def from_settings(cls, settings) -> "HttpClient":
        return cls(settings.http_connect_timeout, settings.http_read_timeout)

    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            adapter = _CheckedAdapter(pool_connections=4, pool_maxsize=4, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self._local.session = session
        return session

    def send(self, platform: str, method: str, url: str, *, creates: bool = False,
             **kwargs) -> requests.Response:
        """One request. `creates`: it may publish something, so a read timeout means the
        post may be out there (the next attempt looks before posting again)."""
        host = urlsplit(url).netloc
        before_request()  # the claim is still this worker's: checked as late as possible
        try:
            return self.session().request(method, url, timeout=self.timeout,
                                          allow_redirects=False, **kwargs)
        except requests.ReadTimeout:
            error = RetryableError(f"{platform}: no answer from {host} within {self.timeout[1]:g} s",
                                   error_code="timeout", maybe_published=creates)
        except requests.ConnectTimeout:
            error = RetryableError(f"{platform}: could not connect to {host} within "
                                   f"{self.timeout[0]:g} s", error_code="connect_timeout")
        except requests.RequestException as exc:
            # The exception's own text may hold the URL; only its class name is kept.
            error = RetryableError(f"{platform}: request to {host} failed ({type(exc).__name__})",
                                   error_code="connection")
        raise error


# The claim is checked again right before each write of the request's bytes (headers, then
# body), once the connection is open: a worker frozen while connecting, building the request or
# waiting for the GIL sends nothing stale when it resumes. A request cut after its headers is
# not acted on by the platform.

class _CheckedHTTPConnection(HTTPConnection):
    def send(self, data) -> None:
        if self.sock is None:
            self.connect()
        before_request()
        super().send(data)


class _CheckedHTTPSConnection(_CheckedHTTPConnection, HTTPSConnection):
    pass


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class _CheckedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _CheckedHTTPPool,
                                                   "https": _CheckedHTTPSPool}


# -- reading answers ------------------------------------------------------------------------

def json_body(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def scrub(text: str, secret: str) -> str:
    """`text` trimmed, with the token replaced wherever a platform echoed it back."""
    text = " ".join(str(text).split())
    if secret and len(secret) >= 4:
        text = text.replace(secret, "[redacted]")
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT - 1] + "…"


def describe(platform: str, response: requests.Response, detail: str, code: str | None,
             secret: str) -> str:
    where = f"HTTP {response.status_code}" + (f", code {code}" if code else "")
    return scrub(f"{platform} refused the request ({where}): {detail or response.reason}", secret)


def retry_after(value: str | None) -> timedelta | None:
    """A Retry-After header: seconds, or an HTTP date (relative to the answer's own clock)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when - datetime.now(timezone.utc), timedelta(0))


def epoch(value: str | None) -> datetime | None:
    """A header holding Unix seconds (X's x-rate-limit-reset)."""
    try:
        return datetime.fromtimestamp(int(value), timezone.utc) if value else None
    except (TypeError, ValueError, OverflowError):
        return None


def by_status(response: requests.Response, message: str, code: str | None, *,
              retry_at: datetime | None = None, wait: timedelta | None = None) -> PublishError:
    """The taxonomy by HTTP status alone: what every platform agrees on."""
    status = response.status_code
    kwargs: dict[str, Any] = {"http_status": status, "error_code": code}
    if status == 401:
        return AuthError(message, **kwargs)
    if status == 429:
        return RateLimitedError(message, retry_at=retry_at, retry_after=wait, **kwargs)
    if status >= 500:
        return RetryableError(message, **kwargs)
    return PermanentError(message, **kwargs)


def lookup_failure(platform: str, response: requests.Response,
                   error: PublishError) -> PublishError:
    """What a failed look for an existing post means: auth, rate limits and outages keep their
    class; any other refusal (a missing read permission, say) means this account cannot look."""
    status = response.status_code
    refused_token = isinstance(error, AuthError) and not error.missing_permission
    if status in (401, 429) or status >= 500 or refused_token or isinstance(error, RateLimitedError):
        return error
    return LookupUnavailable(f"{platform} would not let this token read the account's recent "
                             f"posts: {error.message}", http_status=status,
                             error_code=error.error_code)


def find_in_pages(platform: str, read_page) -> str | None:
    """Walk an account's posts newest first, back to the lost attempt's start: `read_page(cursor)`
    returns (the id of our post on that page or None, the next page's cursor or None when the
    page was the last or reached the start). Bounded by LOOKUP_PAGES."""
    cursor = None
    for _ in range(LOOKUP_PAGES):
        found, cursor = read_page(cursor)
        if found is not None or cursor is None:
            return found
    raise LookupUnavailable(f"{platform}: the account published more than {LOOKUP_PAGES} pages "
                            "of posts since the lost attempt; not all of them were read")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def same_text(published: str | None, wanted: str) -> bool:
    """Whether a post read back from a platform is ours: whitespace and links normalized,
    since platforms shorten links (t.co) and trim spaces."""
    return _normalized(published or "") == _normalized(wanted)


def _normalized(text: str) -> str:
    return " ".join(re.sub(r"https?://\S+", "<link>", text).split())
