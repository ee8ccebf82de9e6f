"""Hostile input gets a 4xx JSON error naming what is wrong, never a 5xx: nesting thousands deep,
dates at the ends of the calendar, bodies too large with and without Content-Length, bytes
that are not UTF-8, NUL and lone surrogates, numbers too large, and a wrong type in each field.
Every body-taking endpoint and every field, on SQLite and MariaDB."""
from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from app.api.schemas import INSTANT_PATTERN

from conftest import ApiClient, CountingStream, Tenant

WHEN = (datetime.now(timezone.utc) + timedelta(days=30)).isoformat()
EXTREME_DATES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def post_id(api: ApiClient, tenant: Tenant) -> str:
    body = {"socialAccountId": tenant.account_id, "content": "Hello", "scheduledAt": WHEN}
    response = api.post("/schedule-post", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["posts"][0]["id"]


def valid_bodies(tenant: Tenant, post_id: str) -> dict[tuple[str, str], dict]:
    """A valid body for every body-taking endpoint; each test breaks one thing in it."""
    return {
        ("POST", "/schedule-post"): {"socialAccountId": tenant.account_id, "content": "Hi",
                                     "scheduledAt": WHEN},
        ("PATCH", f"/scheduled-posts/{post_id}"): {"content": "Edited", "scheduledAt": WHEN},
        ("POST", "/social-accounts"): {"platform": "sandbox", "externalId": "ext-hostile",
                                       "accessToken": "tok", "tokenExpiresAt": WHEN},
        ("POST", f"/social-accounts/{tenant.account_id}/reconnect"): {"accessToken": "tok",
                                                                      "tokenExpiresAt": WHEN},
        ("POST", "/clients"): {"name": "Client"},
    }


ENDPOINTS = ["schedule-post", "edit-post", "add-account", "reconnect", "add-client"]


def endpoint(tenant: Tenant, post_id: str, which: str) -> tuple[str, str, dict]:
    (method, path), body = list(valid_bodies(tenant, post_id).items())[ENDPOINTS.index(which)]
    return method, path, body


def assert_4xx(response, *statuses: int, field: str | None = None) -> dict:
    text = response.get_data(as_text=True)
    assert response.status_code in statuses, (response.status_code, text[:500])
    error = response.get_json()["error"]
    assert set(error) >= {"code", "message", "fields"} and error["message"]
    if field is not None:
        assert field in error["fields"], error
    assert "Traceback" not in text
    return error


# -- nesting ----------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ENDPOINTS)
def test_deeply_nested_json_is_refused_on_every_body_endpoint(sqlite, tenant, api, post_id, which):
    method, path, _ = endpoint(tenant, post_id, which)
    for depth in (33, 1_000, 100_000):
        for raw in ("[" * depth + "]" * depth, '{"content": ' + "[" * depth + "]" * depth + "}",
                    '{"a":' * depth + "1" + "}" * depth, '{"a": "]]]", "b": ' + "{" * depth):
            error = assert_4xx(api.call(method, path, data=raw, headers=JSON), 400)
            assert error["code"] == "too_deep" and "32" in error["message"], (depth, raw[:20])


def test_nesting_up_to_the_limit_is_parsed_and_judged_on_its_fields(sqlite, tenant, api):
    nested = "[" * 31 + "]" * 31
    raw = '{"socialAccountId": "%s", "content": %s, "scheduledAt": "%s"}' % (
        tenant.account_id, nested, WHEN)
    assert_4xx(api.post("/schedule-post", data=raw, headers=JSON), 422, field="content")


# -- dates at the ends of the calendar ----------------------------------------------------------

@pytest.mark.parametrize("which,field", [("schedule-post", "scheduledAt"), ("edit-post", "scheduledAt"),
                                         ("add-account", "tokenExpiresAt"),
                                         ("reconnect", "tokenExpiresAt")])
def test_extreme_dates_in_bodies_are_refused(db, tenant, api, post_id, which, field):
    method, path, body = endpoint(tenant, post_id, which)
    for value in EXTREME_DATES:
        assert_4xx(api.call(method, path, json={**body, field: value}), 422, field=field)


@pytest.mark.parametrize("field", ["from", "to"])
def test_extreme_dates_in_the_list_filters_are_refused(db, tenant, api, field):
    for value in EXTREME_DATES:
        assert_4xx(api.get("/scheduled-posts", query_string={field: value}), 422, field=field)


def test_a_crafted_cursor_is_refused(db, tenant, api):
    for value in EXTREME_DATES + ["0001-01-01T00:00:00", "not a date", 12, None]:
        cursor = base64.urlsafe_b64encode(json.dumps(
            [value, "00000000-0000-4000-8000-000000000000"]).encode()).decode().rstrip("=")
        response = api.get("/scheduled-posts", query_string={"cursor": cursor})
        assert_4xx(response, 422, field="cursor")


def test_every_year_from_0002_to_9998_is_a_date_and_no_other():
    for year in range(0, 10000):
        text = f"{year:04d}-06-15T12:00:00Z"
        assert bool(re.fullmatch(INSTANT_PATTERN, text)) == (2 <= year <= 9998), text


def test_29_february_is_a_date_in_leap_years_only():
    for year in range(2, 9999):
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        text = f"{year:04d}-02-29T12:00:00Z"
        assert bool(re.fullmatch(INSTANT_PATTERN, text)) == leap, text


def test_the_far_but_representable_future_is_accepted(db, tenant, api):
    body = {"socialAccountId": tenant.account_id, "content": "Later",
            "scheduledAt": "9998-12-31T23:59:59-14:00", "timezone": "Pacific/Kiritimati"}
    response = api.post("/schedule-post", json=body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["posts"][0]["scheduledAtLocal"] == "9999-01-02T03:59:59+14:00"
    listed = api.get("/scheduled-posts", query_string={"from": "9998-12-31T00:00:00Z"}).get_json()
    assert [p["content"] for p in listed["items"]] == ["Later"]


# -- bodies too large ---------------------------------------------------------------------------

def test_a_body_over_the_limit_with_content_length_gets_413(sqlite, tenant, api):
    body = json.dumps({"name": "x" * (2 * 1024 * 1024)})
    error = assert_4xx(api.post("/clients", data=body, headers=JSON), 413)
    assert error["code"] == "payload_too_large"


def test_a_chunked_body_over_the_limit_gets_413_after_reading_only_the_limit(sqlite, tenant, api):
    """As gunicorn and werkzeug's server present a chunked body: no CONTENT_LENGTH, the stream
    terminated. The stream counts what was read: past the limit nothing more is taken."""
    limit = api.app.config["MAX_CONTENT_LENGTH"]

    body = CountingStream(b"[" * 2 * 1024 * 1024)
    response = api.client.open("/clients", method="POST", input_stream=body,
                               headers={**JSON, "Authorization": f"Bearer {tenant.api_key}",
                                        "Transfer-Encoding": "chunked"},
                               environ_overrides={"wsgi.input_terminated": True})
    assert_4xx(response, 413)
    assert body.read_bytes == limit + 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_2mb_chunked_body_gets_413_from_gunicorn(sqlite, tenant, tmp_path):
    """The whole path a deployment takes: gunicorn, a chunked 2 MB body, no Content-Length."""
    port = _free_port()
    env = {"DATABASE_URL": sqlite.url, "SCHEDULER_ENV": "development", "PATH": "/usr/bin:/bin"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1",
         "app:create_app()"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "gunicorn did not start"
                time.sleep(0.2)
        chunk = b"[" * 65536
        head = (f"POST /clients HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.api_key}\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                "Connection: close\r\n\r\n").encode()
        with conn:
            conn.settimeout(30)
            conn.sendall(head)
            try:
                for _ in range(32):  # 2 MB
                    conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                conn.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # the server may answer and close before reading it all: fine
            answer = b""
            while piece := conn.recv(65536):
                answer += piece
        status_line, _, rest = answer.partition(b"\r\n")
        assert b" 413 " in status_line, answer[:300]
        assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"]["code"] == "payload_too_large"
    finally:
        server.terminate()
        server.wait(10)


# -- bytes and values ---------------------------------------------------------------------------

NOT_JSON = [b'{"name": "\xff\xfe"}', b"\xc3\x28", b'{"a": 1e400}', b'{"a": NaN}', b'{"a": Infinity}',
            b'{"a": -Infinity}', b'{"a": ' + b"9" * 5000 + b"}", b"", b"{", b'{"a": 1} x',
            b'\xef\xbb\xbf{"a": 1}']


@pytest.mark.parametrize("which", ENDPOINTS)
def test_bytes_that_are_not_json_get_400(sqlite, tenant, api, post_id, which):
    """Not UTF-8, NaN/Infinity, a float that overflows, an integer past Python's digit limit,
    empty, truncated, trailing garbage, a byte-order mark."""
    method, path, _ = endpoint(tenant, post_id, which)
    for raw in NOT_JSON:
        error = assert_4xx(api.call(method, path, data=raw, headers=JSON), 400)
        assert error["code"] == "malformed_json", raw[:20]


STRING_FIELDS = [("schedule-post", "content"), ("schedule-post", "scheduledAt"),
                 ("schedule-post", "timezone"), ("edit-post", "content"),
                 ("edit-post", "scheduledAt"), ("add-account", "externalId"),
                 ("add-account", "displayName"), ("add-account", "accessToken"),
                 ("reconnect", "accessToken"), ("add-client", "name")]


@pytest.mark.parametrize("which,field", STRING_FIELDS)
def test_nul_and_lone_surrogates_are_refused_in_every_string_field(db, tenant, api, post_id,
                                                                  which, field):
    method, path, body = endpoint(tenant, post_id, which)
    for bad in ("a\u0000b", "a\ud800b", "\udfff", "\udc00\ud800"):
        raw = json.dumps({**body, field: bad})  # ensure_ascii: the surrogate travels as \\ud800
        assert_4xx(api.call(method, path, data=raw, headers=JSON), 422, field=field)


@pytest.mark.parametrize("bad", ["\u0000", "\ud800"], ids=["nul", "surrogate"])
def test_nul_and_lone_surrogates_in_list_items_name_the_item(db, tenant, api, bad):
    body = {"socialAccountId": tenant.account_id, "content": "x", "scheduledAt": WHEN,
            "mediaUrls": ["https://example.com/a.png", f"https://example.com/{bad}.png"]}
    assert_4xx(api.post("/schedule-post", data=json.dumps(body), headers=JSON), 422,
               field="mediaUrls[1]")


FIELDS = {
    "schedule-post": ["companyId", "socialAccountId", "socialAccountIds", "content", "scheduledAt",
                      "timezone", "clientId", "mediaUrls"],
    "edit-post": ["content", "scheduledAt", "timezone", "mediaUrls"],
    "add-account": ["companyId", "platform", "externalId", "displayName", "accessToken",
                    "tokenExpiresAt", "clientId"],
    "reconnect": ["companyId", "accessToken", "tokenExpiresAt"],
    "add-client": ["companyId", "name"],
}
WRONG = {"number": 12, "float": 0.5, "huge": 10 ** 300, "bool": True, "object": {"a": 1},
         "list": [1], "nested-list": [[1]]}


@pytest.mark.parametrize("which,field", [(w, f) for w, fields in FIELDS.items() for f in fields])
def test_a_wrong_type_in_each_field_is_refused_naming_it(sqlite, tenant, api, post_id, which, field):
    method, path, body = endpoint(tenant, post_id, which)
    if field == "socialAccountIds":
        body = {k: v for k, v in body.items() if k != "socialAccountId"}
    for name, value in WRONG.items():
        item_type = field in ("socialAccountIds", "mediaUrls") and isinstance(value, list)
        response = api.call(method, path, json={**body, field: value})
        assert_4xx(response, 422, field=f"{field}[0]" if item_type else field)


@pytest.mark.parametrize("params,field", [
    ({"to": "0.5"}, "to"), ({"from": "1700000000"}, "from"), ({"to": "2026-12-01T09:00:00"}, "to"),
    ({"limit": "1e3"}, "limit"), ({"limit": "9" * 400}, "limit"), ({"limit": "0"}, "limit"),
    ({"status": "\u0000"}, "status"), ({"cursor": "a\u0000b"}, "cursor"),
    ({"clientId": "x"}, "clientId"), ("socialAccountId=%ED%A0%80", "socialAccountId"), ("to=%00", "to"),
])
def test_bad_query_values_are_refused_not_coerced(sqlite, tenant, api, params, field):
    assert_4xx(api.get("/scheduled-posts", query_string=params), 422, field=field)
