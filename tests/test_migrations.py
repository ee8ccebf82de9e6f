"""Upgrades: a database the old hand-written runner made, in each of its states and with rows
in it, is stamped and upgraded to head by `scheduler db init` with every row kept, on SQLite
and on MariaDB; a schema newer than the code, and servers too old for SKIP LOCKED, are
refused in one line with nothing changed.

The old states are built from the old runner's own files, kept in tests/fixtures/old_runner/:
its MySQL migrations, and for SQLite the create_all DDL of each old release's models.
"""
from __future__ import annotations

import re
import sqlite3
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import inspect, text

from app import db as app_db
from app.cli import cli
from app.config import Settings
from app.db import check_server_version, make_engine, make_session_factory
from app.errors import DatabaseUnavailable
from app.migrations import alembic_config, head_revision, init_schema, schema_state
from app.services.accounts import create_company
from worker import queue

from conftest import create_database, drop_database, reachable_server

OLD = Path(__file__).parent / "fixtures" / "old_runner"
# Each state the old runner could leave, as the files it had applied, in the order it applied them.
STATES = {
    "0001": ["0001_initial"],
    "0001-0002": ["0001_initial", "0002_api"],
    "0001-0002-0004": ["0001_initial", "0002_api", "0004_company_timezone"],
    "0001-0004": ["0001_initial", "0002_api", "0003_publishers", "0004_company_timezone"],
}
STAMPED_AT = {"0001": "0001_initial", "0001-0002": "0002_api", "0001-0002-0004": "0002_api",
              "0001-0004": "0004_company_timezone"}
TS = "2026-01-02 03:04:05.678901"
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
COMPANY, CLIENT, ACCOUNT, POST = (str(uuid.UUID(int=i)) for i in (1, 2, 3, 4))
LONG_CONTENT = "héllo 你好 🎉 " * 50


def old_rows(applied: list[str]) -> list[tuple[str, dict]]:
    """Rows in every table the state has, using only the columns it has."""
    company = {"id": COMPANY, "name": "Acme", "created_at": TS}
    schedule = {"id": 41, "post_detail_id": POST, "run_at": TS, "status": "pending", "locked_at": None,
                "worker_id": None, "lock_token": None, "attempts": 1, "max_attempts": 3,
                "deferrals": 0, "last_error": "timeout", "created_at": TS, "updated_at": TS}
    if "0004_company_timezone" in applied:
        company["timezone"] = "Europe/Paris"
    if "0003_publishers" in applied:
        schedule.update(platform_draft_id="container-9", deferred_since=None, unknown_since=None)
    rows = [
        ("companies", company),
        ("api_keys", {"id": str(uuid.UUID(int=5)), "company_id": COMPANY, "prefix": "sk_abcd",
                      "key_hash": "a" * 64, "created_at": TS, "revoked_at": None}),
        ("clients", {"id": CLIENT, "company_id": COMPANY, "name": "Client", "created_at": TS}),
        ("social_accounts", {"id": ACCOUNT, "company_id": COMPANY, "client_id": CLIENT,
                             "platform": "sandbox", "external_id": "page-1", "display_name": "Page",
                             "access_token_encrypted": "not-decrypted-here", "token_expires_at": None,
                             "status": "active", "created_at": TS, "updated_at": TS}),
        ("post_details", {"id": POST, "company_id": COMPANY, "client_id": CLIENT,
                          "social_account_id": ACCOUNT, "group_id": str(uuid.UUID(int=6)),
                          "content": LONG_CONTENT, "media_urls": '["https://example.com/a.png"]',
                          "timezone": "Europe/Paris", "status": "pending", "platform_post_id": None,
                          "error_message": None, "published_at": None, "idempotency_key": "k1",
                          "created_at": TS, "updated_at": TS}),
        ("post_schedule", schedule),
        ("publish_attempts", {"id": 7, "post_schedule_id": 41, "attempt": 1, "worker_id": "host-1",
                              "started_at": TS, "finished_at": TS, "outcome": "retry",
                              "http_status": 503, "error_code": "unavailable", "error_message": "try later"}),
        ("worker_runs", {"id": 3, "worker_id": "host-1", "started_at": TS, "finished_at": TS,
                         "recovered": 0, "claimed": 1, "published": 0, "retried": 1, "failed": 0,
                         "deferred": 0}),
    ]
    if "0002_api" in applied:
        rows.append(("idempotency_keys", {"id": 2, "company_id": COMPANY, "key_hash": "b" * 64,
                                          "request_hash": "c" * 64, "status_code": 201,
                                          "response_body": '{"posts": []}', "created_at": TS}))
    return rows


def insert_rows(conn, applied: list[str]) -> None:
    for table, row in old_rows(applied):
        conn.execute(text(f"INSERT INTO {table} ({', '.join(row)}) VALUES "
                          f"({', '.join(':' + c for c in row)})"), row)
    for version in applied:
        conn.execute(text("INSERT INTO schema_migrations (version, applied_at) VALUES (:v, :t)"),
                     {"v": version, "t": TS})


def dump(engine) -> dict[str, list[dict]]:
    with engine.connect() as conn:
        tables = [t for t in inspect(conn).get_table_names()
                  if t not in ("schema_migrations", "alembic_version")]
        return {t: [dict(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY 1")).mappings()]
                for t in tables}


def mysql_statements(path: Path) -> list[str]:
    """The statements of one of the old runner's files (fixed fixtures: `;` ends a line)."""
    body = "\n".join(re.sub(r"--.*$", "", line) for line in path.read_text().splitlines())
    return [s.strip() for s in re.split(r";\s*\n", body + "\n") if s.strip()]


# -- building old states ----------------------------------------------------------------------

def build_sqlite(path: Path, state: str) -> str:
    """The old runner's SQLite database at `state`: create_all of that release's models."""
    with sqlite3.connect(path) as conn:
        conn.executescript((OLD / "sqlite" / f"{state}.sql").read_text())
    return f"sqlite:///{path}"


def build_sqlite_upgraded_by_old_runner(path: Path) -> str:
    """The issue's bug: made at 0001, then `db init` by the 0004 release, which ran create_all
    (new tables only, no new columns) and recorded every version as applied."""
    build_sqlite(path, "0001")
    ddl = (OLD / "sqlite" / "0001-0004.sql").read_text()
    ddl = ddl.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ").replace(
        "CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ").replace(
        "CREATE UNIQUE INDEX ", "CREATE UNIQUE INDEX IF NOT EXISTS ")
    with sqlite3.connect(path) as conn:
        conn.executescript(ddl)
    return f"sqlite:///{path}"


@pytest.fixture
def mariadb_server():
    server = reachable_server("mariadb")
    made = []

    def new_database() -> str:
        name = f"scheduler_old_{uuid.uuid4().hex[:10]}"
        made.append(name)
        return create_database(server, name)
    yield new_database
    for name in made:
        drop_database(server, name)
    server.dispose()


def build_mariadb(url: str, state: str) -> None:
    engine = make_engine(Settings(database_url=url))
    try:
        with engine.begin() as conn:
            for version in STATES[state]:
                for statement in mysql_statements(OLD / "mysql" / f"{version}.sql"):
                    conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def fill(url: str, applied: list[str]) -> None:
    engine = make_engine(Settings(database_url=url))
    try:
        with engine.begin() as conn:
            insert_rows(conn, applied)
    finally:
        engine.dispose()


# -- the upgrade ------------------------------------------------------------------------------

def assert_upgrades_keeping_every_row(url: str, state_name: str, applied: list[str]) -> None:
    engine = make_engine(Settings(database_url=url))
    try:
        before = dump(engine)
        state = schema_state(engine)
        assert (state.current, state.old_runner) == (None, STAMPED_AT.get(state_name, "0001_initial"))
        init_schema(engine)
        assert schema_state(engine).current == head_revision()
        after = dump(engine)
        assert set(after) >= set(before)
        for table, rows in before.items():
            assert len(after[table]) == len(rows), table
            for old, new in zip(rows, after[table]):
                assert {c: new[c] for c in old} == old, table
        if "0004_company_timezone" not in applied:
            assert after["companies"][0]["timezone"] == "UTC"  # the column's default
        assert "idempotency_keys" in after
        with engine.connect() as conn:
            command.check(alembic_config(conn))  # no drift between the models and this database
            assert "schema_migrations" not in inspect(conn).get_table_names()
        # The code of today works on it: the claim reads the columns 0003 added.
        sessions = make_session_factory(engine)
        (claimed,) = queue.claim_due(sessions, NOW, 10, "after-upgrade")
        assert (claimed.schedule_id, claimed.attempt) == (41, 2)
        company, _key = create_company(sessions, "New", NOW, timezone="Asia/Tokyo")
        assert company.timezone == "Asia/Tokyo"
        assert init_schema(engine) == []  # and a second run changes nothing
    finally:
        engine.dispose()


@pytest.mark.parametrize("state", list(STATES))
def test_an_old_sqlite_database_upgrades_keeping_every_row(tmp_path, state):
    url = build_sqlite(tmp_path / "old.db", state)
    fill(url, STATES[state])
    assert_upgrades_keeping_every_row(url, state, STATES[state])


def test_a_sqlite_database_the_old_runner_recorded_but_never_altered_upgrades(tmp_path):
    url = build_sqlite_upgraded_by_old_runner(tmp_path / "old.db")
    fill(url, ["0001_initial"])
    engine = make_engine(Settings(database_url=url))
    with engine.begin() as conn:  # the runner's records claim all four
        conn.execute(text("INSERT INTO schema_migrations VALUES ('0002_api', :t), "
                          "('0003_publishers', :t), ('0004_company_timezone', :t)"), {"t": TS})
    engine.dispose()
    # Stamped where the tables are (0002: idempotency_keys exists), not where the records say.
    assert_upgrades_keeping_every_row(url, "0001-0002", ["0001_initial"])


@pytest.mark.mariadb
@pytest.mark.parametrize("state", list(STATES))
def test_an_old_mariadb_database_upgrades_keeping_every_row(mariadb_server, state):
    url = mariadb_server()
    build_mariadb(url, state)
    fill(url, STATES[state])
    assert_upgrades_keeping_every_row(url, state, STATES[state])


# -- the CLI: db init / db status, and what it refuses ----------------------------------------

def invoke(url: str, *args: str):
    return CliRunner().invoke(cli, list(args), env={"DATABASE_URL": url})


def one_error_line(result, exit_code: int) -> str:
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_db_status_says_current_and_head(tmp_path):
    url = build_sqlite(tmp_path / "old.db", "0001-0002")
    result = invoke(url, "--json", "db", "status")
    assert result.exit_code == 0, result.stderr
    assert '"current": null' in result.stdout and '"old_runner": "0002_api"' in result.stdout
    human = invoke(url, "db", "status").stdout
    assert "0002_api (old runner, not yet stamped)" in human and "run `scheduler db init`" in human
    assert invoke(url, "db", "init").exit_code == 0
    human = invoke(url, "db", "status").stdout
    assert human.splitlines() == [f"current: {head_revision()}", f"head:    {head_revision()}",
                                  "up to date"]


def test_a_schema_newer_than_the_code_is_refused_and_left_alone(sqlite):
    with sqlite.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
    before = dump(sqlite.engine)
    for args in (("db", "init"), ("queue", "stats"), ("worker", "run")):
        line = one_error_line(invoke(sqlite.url, *args), 3)
        assert "at revision 0099_from_the_future, newer than this code" in line, line
        assert "downgrades are not supported" in line
    assert sqlite.scalar("SELECT version_num FROM alembic_version") == "0099_from_the_future"
    assert dump(sqlite.engine) == before
    assert "newer than this code" in invoke(sqlite.url, "db", "status").stdout


def test_an_unsupported_engine_is_refused_in_one_line(tmp_path):
    line = one_error_line(invoke("oracle://u:p@localhost/sched", "db", "init"), 4)
    assert "DATABASE_URL uses 'oracle'" in line and "postgresql+psycopg" in line


@pytest.mark.parametrize("version,dialect,refused", [
    ("10.5.27-MariaDB-1:10.5.27+maria~deb11", "mysql", "MariaDB 10.5.27 is too old"),
    ("10.6.0-MariaDB", "mysql", None),
    ("5.7.44-log", "mysql", "MySQL 5.7.44 is too old"),
    ("8.0.0", "mysql", "MySQL 8.0.0 is too old"),
    ("8.0.1", "mysql", None),
    ("PostgreSQL 9.4.26 on x86_64-pc-linux-gnu", "postgresql", "PostgreSQL 9.4.26 is too old"),
    ("PostgreSQL 9.5.0 on x86_64-pc-linux-gnu", "postgresql", None),
    ("PostgreSQL 15.20 (Debian 15.20-0+deb12u1) on x86_64", "postgresql", None),
])
def test_server_versions_without_skip_locked_are_refused(version, dialect, refused):
    if refused is None:
        check_server_version(version, dialect)
        return
    with pytest.raises(DatabaseUnavailable, match=re.escape(refused)) as info:
        check_server_version(version, dialect)
    assert "FOR UPDATE SKIP LOCKED" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("kind,old", [
    pytest.param("mariadb", "10.5.27-MariaDB", marks=pytest.mark.mariadb),
    pytest.param("postgresql", "PostgreSQL 9.4.26 on x86_64-pc-linux-gnu",
                 marks=pytest.mark.postgresql),
])
def test_db_init_on_a_server_too_old_changes_nothing(monkeypatch, kind, old):
    server = reachable_server(kind)
    name = f"scheduler_old_{uuid.uuid4().hex[:10]}"
    url = create_database(server, name)
    try:
        monkeypatch.setattr(app_db, "server_version", lambda engine: old)
        line = one_error_line(invoke(url, "db", "init"), 2)
        assert "is too old: FOR UPDATE SKIP LOCKED needs" in line
        engine = make_engine(Settings(database_url=url))
        with engine.connect() as conn:
            assert inspect(conn).get_table_names() == []
        engine.dispose()
    finally:
        drop_database(server, name)
        server.dispose()
