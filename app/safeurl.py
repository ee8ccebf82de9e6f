"""Where the scheduler may send a request it did not choose (a webhook, a mediaUrl): every
address the host resolves to must be public unless the operator allows private ones, and a
download is streamed, capped in size and time, with each redirect checked again by hand.

One implementation for webhooks (app/services/webhooks.py, worker/webhooks.py) and media.
"""
from __future__ import annotations

import ipaddress
import socket
import time
from typing import BinaryIO, Callable
from urllib.parse import urljoin, urlsplit

import requests

Resolver = Callable[[str], list[str]]
MAX_REDIRECTS = 5
_CHUNK = 256 * 1024


def refused_url(url: str, allow_private: bool, resolve: Resolver | None = None,
                setting: str = "SCHEDULER_WEBHOOK_ALLOW_PRIVATE") -> str | None:
    """Why `url` may not be requested, or None. Every address the host resolves to must be
    public (not private, loopback, link-local, metadata, ...) unless private ones are allowed
    (`setting` names the switch in the message): the addresses are checked, not the name, which
    anyone can point anywhere."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. a bracketed host that is no IPv6 address
        return "it must be an http:// or https:// URL with a host"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "it must be an http:// or https:// URL with a host"
    if parts.username or parts.password:
        return "it must not carry a user name or password"
    try:
        parts.port
    except ValueError:
        return "its port is not a number from 0 to 65535"
    if allow_private:
        return None
    try:
        addresses = (resolve or _resolve)(parts.hostname)
    except OSError:
        return f"its host {parts.hostname} does not resolve"
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        ip = getattr(ip, "ipv4_mapped", None) or ip
        if not ip.is_global or ip.is_multicast:
            return (f"{parts.hostname} resolves to {ip}, a private, loopback, link-local or "
                    f"reserved address ({setting}=1 allows it)")
    return None


def _resolve(host: str) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)})


class FetchRefused(Exception):
    """The URL may not be fetched (address, scheme, size): fetching again will not help."""


class FetchFailed(Exception):
    """The URL could not be fetched now (timeout, 404, 5xx, connection): worth a later try."""


def fetch(url: str, out: BinaryIO, *, max_bytes: int, timeout: float, allow_private: bool,
          resolve: Resolver | None = None, setting: str = "SCHEDULER_MEDIA_ALLOW_PRIVATE") -> int:
    """Stream `url` into `out`; the number of bytes. Redirects are followed here (at most
    MAX_REDIRECTS), each target checked like the first; the body is refused as soon as it passes
    `max_bytes`; `timeout` bounds the connection, each read, and the whole download (x10).
    Messages name the URL, never a credential (the URL is the user's own)."""
    deadline = time.monotonic() + timeout * 10
    with requests.Session() as session:
        session.trust_env = False  # no proxy from the environment: the URL checked is the one used
        for _ in range(MAX_REDIRECTS + 1):
            why = refused_url(url, allow_private, resolve, setting)
            if why:
                raise FetchRefused(f"media URL {url} refused: {why}")
            try:
                response = session.get(url, stream=True, allow_redirects=False,
                                       timeout=(timeout, timeout))
            except requests.RequestException as exc:
                raise FetchFailed(f"media URL {url} could not be fetched "
                                  f"({type(exc).__name__})") from None
            with response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("Location", ""))
                    continue
                if response.status_code != 200:
                    raise FetchFailed(f"media URL {url} answered HTTP {response.status_code}")
                return _copy(response, out, url, max_bytes, deadline)
    raise FetchRefused(f"media URL {url} redirects more than {MAX_REDIRECTS} times")


def _copy(response: requests.Response, out: BinaryIO, url: str, max_bytes: int,
          deadline: float) -> int:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchRefused(f"media URL {url} is {declared} bytes, more than "
                           f"SCHEDULER_MEDIA_MAX_BYTES ({max_bytes})")
    size = 0
    try:
        for chunk in response.iter_content(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise FetchRefused(f"media URL {url} is larger than SCHEDULER_MEDIA_MAX_BYTES "
                                   f"({max_bytes} bytes)")
            if time.monotonic() > deadline:
                raise FetchFailed(f"media URL {url} took too long to download")
            out.write(chunk)
    except requests.RequestException as exc:
        raise FetchFailed(f"media URL {url} could not be fetched ({type(exc).__name__})") from None
    return size
