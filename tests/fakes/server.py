"""The part every fake platform shares: a real HTTP server on a local port (a thread per
request), a record of every request it received, scripted failures, and a delay.

A subclass implements `route(request)` and the answers of the failure kinds it speaks.
"""
from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import cast
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# What a scripted failure can be; each fake answers each of them the way its platform does.
KINDS = ("auth", "rate_limited", "retryable", "permanent", "duplicate", "timeout", "garbage")


@dataclass
class Received:
    """One request as the fake saw it."""
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float = field(default_factory=time.time)  # when it arrived (Unix seconds)

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    @property
    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode()).items()}

    def token(self) -> str | None:
        """The access token, wherever this request carried it."""
        auth = self.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            return auth[len("Bearer "):]
        if self.method == "POST" and self.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            return self.form.get("access_token")
        return self.query.get("access_token")


@dataclass
class Answer:
    status: int
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0  # seconds to wait before answering (a timeout on the client's side)
    html: str | None = None  # a page for a browser (an authorization dialog) instead of JSON


@dataclass
class Scripted:
    kind: str
    match: str | None  # substring of "METHOD /path"; None: the next POST
    options: dict


class FakePlatform:
    """A platform on 127.0.0.1. `delay` slows every answer (for benchmarks)."""

    name = "fake"
    hang_seconds = 3.0  # a "timeout" answer comes this late: past the tests' read timeout
    public_paths: tuple[str, ...] = ()  # served without an access token (OAuth's own endpoints)

    def __init__(self, delay: float = 0.0, host: str = "127.0.0.1", port: int = 0):
        self.delay = delay
        self.received: list[Received] = []
        self.tokens: set[str] | None = None  # None: any non-empty token is valid
        self.reads_allowed = True             # False: reading the account's posts is refused
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1000)
        self._server = _Server((host, port), _handler(self))
        self._thread: threading.Thread | None = None

    # -- control ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = cast(tuple[str, int], self._server.server_address[:2])  # AF_INET
        return f"http://{host}:{port}"

    def start(self) -> "FakePlatform":
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True,
                                        name=f"fake-{self.name}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, kind: str, times: int = 1, match: str | None = None, **options) -> None:
        """The next `times` requests matching `match` (default: any POST) get a `kind` answer
        (`status=` overrides its HTTP status)."""
        if kind not in KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; one of {KINDS}")
        with self._lock:
            self._script.extend(Scripted(kind, match, options) for _ in range(times))

    def requests(self, method: str | None = None, path_contains: str = "") -> list[Received]:
        with self._lock:
            return [r for r in self.received
                    if (method is None or r.method == method) and path_contains in r.path]

    def new_id(self) -> str:
        return str(next(self._ids))

    # -- serving ------------------------------------------------------------------------

    def answer(self, request: Received) -> Answer:
        with self._lock:
            self.received.append(request)
            scripted = self._take_scripted(request)
        if self.delay:
            time.sleep(self.delay)
        if scripted is not None:
            if scripted.kind == "timeout":
                # The request did reach the platform: it acts on it, the answer is just late.
                answer = self.route(request)
                answer.hang = scripted.options.get("hang", self.hang_seconds)
                return answer
            if scripted.kind == "garbage":  # a proxy's error page where JSON was due
                return Answer(scripted.options.get("status", 200),
                              html="<html><body>Bad Gateway</body></html>")
            answer = (request.path in self.public_paths and self.token_failure(scripted.kind)) \
                or self.failure(scripted.kind, request, **scripted.options)
            answer.status = scripted.options.get("status", answer.status)
            if scripted.options.get("echo_token"):
                _echo_token(answer.body, request.token())
            return answer
        if request.path in self.public_paths:
            return self.route(request)
        token = request.token()
        if not token or not self.token_valid(token):
            return self.failure("auth", request)
        return self.route(request)

    def token_valid(self, token: str) -> bool:
        return self.tokens is None or token in self.tokens

    def token_failure(self, kind: str) -> Answer | None:
        """A scripted failure of an OAuth endpoint (tests/fakes/oauth.py); None: none."""
        return None

    def _take_scripted(self, request: Received) -> Scripted | None:
        line = f"{request.method} {request.path}"
        for scripted in self._script:
            if (scripted.match is None and request.method == "POST") or (
                    scripted.match is not None and scripted.match in line):
                self._script.remove(scripted)
                return scripted
        return None

    def route(self, request: Received) -> Answer:
        raise NotImplementedError

    def failure(self, kind: str, request: Received, **options) -> Answer:
        raise NotImplementedError


class _Server(ThreadingHTTPServer):
    # A worker opens up to SCHEDULER_CONCURRENCY (96) connections at once: the default backlog
    # of 5 refused some of them, a fault of the fake that no platform has.
    request_queue_size = 128
    daemon_threads = True


def page_of(items: list, offset: int, size: int) -> tuple[list, int | None]:
    """Items [offset, offset + size) and the next page's offset (None on the last page)."""
    end = offset + size
    return items[offset:end], (end if end < len(items) else None)


def cursor(offset: int) -> str:
    """An opaque cursor, as platforms give them."""
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def offset_of(token: str | None) -> int:
    if not token:
        return 0
    return int(base64.urlsafe_b64decode(token.encode()).decode().partition(":")[2])


def _echo_token(body: dict | None, token: str | None) -> None:
    """What a careless platform does: quote the credential back in its error message."""
    for part in (body or {}, (body or {}).get("error") or {}):
        if not isinstance(part, dict):
            continue
        for key in ("message", "detail", "error"):
            if isinstance(part.get(key), str):
                part[key] += f" (access_token={token})"


def _handler(platform: FakePlatform) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without this, Nagle and delayed ACKs hold the
        # body back ~40 ms, which real platforms do not do.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if len(body) < length:  # the client hung up mid-request: a platform ignores it
                self.close_connection = True
                return
            request = Received(
                method=self.command, path=parts.path,
                query={k: v[-1] for k, v in parse_qs(parts.query).items()},
                headers={k.lower(): v for k, v in self.headers.items()}, body=body)
            answer = platform.answer(request)
            if answer.hang:
                time.sleep(answer.hang)
            if answer.html is not None:
                body = answer.html.encode()
            else:
                body = b"" if answer.body is None else json.dumps(answer.body).encode()
            try:
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if answer.html is not None:
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                elif answer.body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format, *args):  # quiet: the test output is the record
            pass

    return Handler
