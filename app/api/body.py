"""Reading a request's JSON body and query without trusting it: the size is bounded before the
bytes are read (chunked bodies too), nesting is bounded before the parser recurses, and every
string is checked for what no database column can hold (NUL, lone surrogates)."""
from __future__ import annotations

import json
import math
import re

from flask import current_app, request

from app.errors import InvalidInput

MAX_DEPTH = 32
_READ = 64 * 1024
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class HttpError(Exception):
    """An answer about the HTTP request itself (not JSON, wrong type, too large, too deep)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def too_large(limit: int, setting: str = "SCHEDULER_MAX_BODY_BYTES") -> HttpError:
    return HttpError(413, "payload_too_large",
                     f"the request body is too large: at most {limit} bytes ({setting}); "
                     "send less")


def read_body(limit: int | None = None, setting: str = "SCHEDULER_MAX_BODY_BYTES") -> bytes:
    """The body's bytes, at most `limit` (default: the configured maximum). A Content-Length
    over it is refused before anything is read; without one (chunked), at most limit + 1 bytes
    are read from the stream: one byte past the limit is proof enough."""
    if limit is None:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None:
        if request.content_length > limit:
            raise too_large(limit, setting)
        return request.get_data()  # werkzeug bounds it by request.max_content_length too
    if not request.environ.get("wsgi.input_terminated"):
        return b""  # a server that cannot end a chunked stream: werkzeug's safe default
    stream = request.environ["wsgi.input"]
    return read_limited(stream, limit, setting)


def read_limited(stream, limit: int, setting: str) -> bytes:
    """Read `stream` to its end, refusing it (413) as soon as it passes `limit` bytes."""
    chunks, size = [], 0
    while size <= limit:
        chunk = stream.read(min(_READ, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise too_large(limit, setting)
    return b"".join(chunks)


def parse_json(raw: bytes):
    """Strict JSON (UTF-8, no NaN/Infinity, finite numbers), nested at most MAX_DEPTH deep."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpError(400, "malformed_json", f"the body is not UTF-8: {exc.reason} at byte "
                                               f"{exc.start}") from None
    if nesting_depth(text) > MAX_DEPTH:
        raise HttpError(400, "too_deep", f"the body nests arrays/objects more than {MAX_DEPTH} "
                                         "levels deep: flatten it")
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError) as exc:
        raise HttpError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest, counted without recursion (strings skipped); counting
    stops just past MAX_DEPTH."""
    depth = deepest = 0
    for bracket in _BRACKET.finditer(_STRING.sub("", text)):
        if bracket.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
        else:
            depth -= 1
    return deepest


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a number")
    return value


def check_strings(data, path: str = "") -> None:
    """Refuse NUL characters and lone surrogates anywhere in `data` (keys too), naming where."""
    problems: dict[str, str] = {}
    stack = [(path, data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str) and _UNSTORABLE.search(value):
            problems[where or "body"] = ("must not contain NUL characters or unpaired surrogates "
                                         "(\\u0000, \\ud800-\\udfff)")
        elif isinstance(value, dict):
            for key, item in value.items():
                name = f"{where}.{key}" if where else str(key)
                if _UNSTORABLE.search(key):
                    problems[where or "body"] = "a key contains NUL or an unpaired surrogate"
                    continue
                stack.append((name, item))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
    if problems:
        summary = "; ".join(f"{k}: {v}" for k, v in sorted(problems.items()))
        raise InvalidInput(f"the request is not valid: {summary}", fields=problems)
