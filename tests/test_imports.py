"""Bulk import (POST /imports, `scheduler post import`) on every engine: rows checked as POST
/schedule-post checks a body, all or nothing, bad lines named by number and field, BOM or not,
a wrong header, an oversized file refused before it is all read, formula cells kept as text,
and 10,000 rows in one request."""
from __future__ import annotations

import io
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from app.models import PostDetail, PostSchedule
from app.services.accounts import mark_needs_reconnect

from conftest import ApiClient, CountingStream, Db, make_tenant
from test_api import FUTURE, WHEN, assert_error, rows

HEADER = "socialAccountIds,content,scheduledAt,timezone,mediaUrls\n"


def send(api: ApiClient, text: str | bytes, as_file: bool = False, **kw):
    data = text.encode() if isinstance(text, str) else text
    if as_file:
        return api.post("/imports", data={"file": (io.BytesIO(data), "posts.csv")},
                        content_type="multipart/form-data", **kw)
    return api.post("/imports", data=data, content_type="text/csv", **kw)


def counts(db: Db) -> tuple[int, int]:
    with db.sessions() as session:
        return (session.scalar(select(func.count()).select_from(PostDetail)),
                session.scalar(select(func.count()).select_from(PostSchedule)))


@pytest.mark.parametrize("as_file", [False, True], ids=["text/csv", "multipart"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["no-bom", "bom"])
def test_import_rows_posts_and_drafts(db, tenant, api, as_file, bom):
    other = api.post("/social-accounts", json={"platform": "sandbox", "externalId": "two",
                                               "accessToken": "t"}).get_json()["id"]
    text = (HEADER
            + f"{tenant.account_id},Hello,{WHEN},,\n"
            + f"{tenant.account_id}|{other},\"Two, accounts\nand two lines\",{WHEN},,"
              "https://e.com/a.png|https://e.com/b.png\n"
            + "\n"  # a blank line is skipped
            + f"{tenant.account_id},Later,,,\n"
            + f"{tenant.account_id},Local,2099-07-01T09:00:00,Europe/Paris,\n")
    response = send(api, bom + text.encode(), as_file=as_file)
    assert response.status_code == 201, response.get_json()
    assert response.get_json() == {"rows": 4, "posts": 4, "drafts": 1}
    assert counts(db) == (5, 4)
    by_content = {p.content: p for p in rows(db, PostDetail)}
    assert by_content["Two, accounts\nand two lines"].media_urls == ["https://e.com/a.png",
                                                                   "https://e.com/b.png"]
    assert by_content["Later"].status == "draft"
    local = [s for s in rows(db, PostSchedule) if s.post_detail_id == by_content["Local"].id][0]
    assert local.run_at == datetime(2099, 7, 1, 7, 0, tzinfo=timezone.utc)


def test_a_bad_row_in_the_middle_imports_nothing_and_names_each_line(db, tenant, api):
    x = api.post("/social-accounts", json={"platform": "x", "externalId": "x1",
                                           "accessToken": "t"}).get_json()["id"]
    past = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
    good = f"{tenant.account_id},fine,{WHEN},,\n"
    text = (HEADER + good                                   # line 2
            + f"{tenant.account_id},old,{past},,\n"         # line 3: in the past
            + good                                          # line 4
            + f"{x},{'a' * 281},{WHEN},,\n"                 # line 5: too long for X
            + f"{uuid.uuid4()},nobody,{WHEN},,\n"           # line 6: unknown account
            + f"{tenant.account_id},,{WHEN},,\n"            # line 7: no content
            + f"{tenant.account_id},bad zone,2099-01-01T09:00:00,Mars/Base,\n"  # line 8
            + f"{tenant.account_id},media,{WHEN},,ftp://e.com/a\n"            # line 9
            + f"{tenant.account_id},too,many,cells,,\n"     # line 10
            + good)
    error = assert_error(send(api, text), 422, "validation_failed", "nothing was imported")
    fields = error["fields"]
    assert "line 3.scheduledAt" in fields and "future" in fields["line 3.scheduledAt"]
    assert "line 5.content" in fields
    assert "line 6.socialAccountIds" in fields and "no social account" in fields["line 6.socialAccountIds"]
    assert "line 7.content" in fields
    assert "line 8.timezone" in fields
    assert "line 9.mediaUrls[0]" in fields
    assert fields["line 10"] == "has 6 cells; the header has 5"
    assert not any(k.startswith(("line 2", "line 4", "line 11")) for k in fields)
    assert counts(db) == (0, 0)


def test_an_account_to_reconnect_or_of_another_company_is_a_bad_line(db, tenant, api):
    other = make_tenant(db, name="Other")
    mark_needs_reconnect(db.sessions, tenant.account_id, datetime.now(timezone.utc))
    error = assert_error(send(api, HEADER + f"{tenant.account_id},a,{WHEN},,\n"
                                 + f"{other.account_id},b,{WHEN},,\n"), 422, "validation_failed")
    assert "reconnected" in error["fields"]["line 2.socialAccountIds"]
    assert "no social account" in error["fields"]["line 3.socialAccountIds"]
    assert counts(db) == (0, 0)


@pytest.mark.parametrize("text,field,fragment", [
    ("accounts,content,when\nx,y,z\n", "line 1", "header"),
    ("", "file", "empty"),
    (b"\xff\xfe" + HEADER.encode("utf-16-le"), "file", "UTF-8"),
    (HEADER + 'a,"unterminated,b,,\n', "line 2", "not CSV"),
])
def test_files_refused_whole(db, tenant, api, text, field, fragment):
    assert_error(send(api, text), 422, "validation_failed", fragment, field=field)
    assert counts(db) == (0, 0)


def test_a_header_alone_imports_nothing(db, tenant, api):
    response = send(api, HEADER)
    assert response.status_code == 201 and response.get_json() == {"rows": 0, "posts": 0,
                                                                   "drafts": 0}


def test_the_header_may_come_in_any_order(db, tenant, api):
    response = send(api, f"content,mediaUrls,timezone,scheduledAt,socialAccountIds\n"
                         f"Hi,,,{WHEN},{tenant.account_id}\n")
    assert response.status_code == 201, response.get_json()


def test_formula_cells_are_stored_as_text(db, tenant, api):
    cells = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1:A2)", "=HYPERLINK(\"http://e.vil\")"]
    text = HEADER + "".join(f'{tenant.account_id},"{c.replace(chr(34), chr(34) * 2)}",{WHEN},,\n'
                            for c in cells)
    assert send(api, text).status_code == 201
    assert sorted(p.content for p in rows(db, PostDetail)) == sorted(cells)


def test_wrong_content_type_is_415_and_a_multipart_without_file_is_422(db, tenant, api):
    assert_error(api.post("/imports", json={"a": 1}), 415, "unsupported_media_type")
    assert_error(api.post("/imports", data={"other": "x"}, content_type="multipart/form-data"),
                 422, "validation_failed", field="file")


@pytest.mark.parametrize("as_file", [False, True], ids=["text/csv", "multipart"])
def test_an_oversized_file_is_413_before_it_is_all_read(db, tenant, as_file):
    limited = Db(db.kind, db.settings.__class__(**{**vars(db.settings), "import_max_bytes": 1000}),
                 db.engine, db.sessions)
    client = ApiClient(limited, tenant.api_key)
    try:
        big = HEADER + f"{tenant.account_id},{'x' * 100},{WHEN},,\n" * 20
        assert_error(send(client, big, as_file=as_file), 413, "payload_too_large",
                     "SCHEDULER_IMPORT_MAX_BYTES")

        if not as_file:  # a chunked body of 5 MB: no Content-Length, only counting stops it
            body = CountingStream(big.encode() * 2500)
            response = client.client.open(
                "/imports", method="POST", input_stream=body,
                headers={"Content-Type": "text/csv", "Authorization": f"Bearer {tenant.api_key}",
                         "Transfer-Encoding": "chunked"},
                environ_overrides={"wsgi.input_terminated": True})
            assert_error(response, 413, "payload_too_large")
            assert body.read_bytes == 1001
    finally:
        client.close()
    assert counts(db) == (0, 0)


def test_fifty_megabytes_is_413(db, tenant, api):
    big = (HEADER + f"{tenant.account_id},{'y' * 1000},{WHEN},,\n" * 52_000).encode()
    assert len(big) > 50 * 1000 * 1000
    assert_error(send(api, big), 413, "payload_too_large")


def test_ten_thousand_rows_in_one_request(db, tenant, api):
    lines = [f"{tenant.account_id},Post number {i},{(FUTURE + timedelta(minutes=i)).isoformat()},,"
             for i in range(10_000)]
    started = time.monotonic()
    response = send(api, HEADER + "\n".join(lines) + "\n")
    elapsed = time.monotonic() - started
    assert response.status_code == 201, response.get_json()
    assert response.get_json() == {"rows": 10_000, "posts": 10_000, "drafts": 0}
    assert counts(db) == (10_000, 10_000)
    assert elapsed < 60, f"{elapsed:.1f} s"  # bench/imports.py measures it properly


def test_cli_post_import(db, tenant, tmp_path):
    from click.testing import CliRunner

    from app.cli import cli

    good = tmp_path / "posts.csv"
    good.write_text(HEADER + f"{tenant.account_id},From the CLI,{WHEN},,\n", encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + f"{tenant.account_id},,{WHEN},,\n", encoding="utf-8")
    env = {"DATABASE_URL": db.url}
    runner = CliRunner()
    result = runner.invoke(cli, ["post", "import", str(bad), "--company", tenant.company_id], env=env)
    assert result.exit_code == 6 and "line 2.content" in result.output, result.output
    result = runner.invoke(cli, ["--json", "post", "import", str(good), "--company",
                                 tenant.company_id], env=env)
    assert result.exit_code == 0, result.output
    assert '"posts": 1' in result.output
    assert counts(db) == (1, 1)


def test_a_chunked_multipart_over_the_limit_is_413(sqlite, tenant):
    limited = Db(sqlite.kind, sqlite.settings.__class__(**{**vars(sqlite.settings),
                                                          "import_max_bytes": 1000}),
                 sqlite.engine, sqlite.sessions)
    client = ApiClient(limited, tenant.api_key)
    boundary = "b0undary"
    part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.csv\"\r\n"
            f"Content-Type: text/csv\r\n\r\n{HEADER}").encode()
    body = CountingStream(part + b"x" * 5_000_000 + f"\r\n--{boundary}--\r\n".encode())
    try:
        response = client.client.open(
            "/imports", method="POST", input_stream=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                     "Authorization": f"Bearer {tenant.api_key}", "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True})
        assert_error(response, 413, "payload_too_large")
        assert body.read_bytes < 100_000
    finally:
        client.close()
    assert counts(sqlite) == (0, 0)
