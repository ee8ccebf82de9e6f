"""`scheduler db init` and `db status`: Alembic's revisions of sql/migrations/ own the schema.

Alembic is configured here, in code (no alembic.ini needed). A database the old hand-written
runner made (a `schema_migrations` table, no `alembic_version`) is first stamped at the old
revision its tables show, then upgraded like any other. Concurrent `db init`s take turns.
"""
from __future__ import annotations

import functools
import io
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from app.config import Settings
from app.errors import ConfigError, SchemaMissing

DIALECTS = ("mysql", "postgresql")  # the engines sql/schema.<dialect>.sql is rendered for
LOCK_NAME = "scheduler_db_init"
PG_LOCK_KEY = 7355608  # any fixed bigint: the advisory lock `db init` holds on PostgreSQL

# What each revision of the old runner left in the tables, in order. The tables, not the
# runner's `schema_migrations` rows, decide: on SQLite it recorded 0003 and 0004 without
# adding their columns (it ran create_all, which never alters a table).
OLD_RUNNER_MARKS: tuple[tuple[str, Callable[[set[str], Callable[[str], set[str]]], bool]], ...] = (
    ("0001_initial", lambda tables, columns: "post_schedule" in tables),
    ("0002_api", lambda tables, columns: "idempotency_keys" in tables),
    ("0003_publishers", lambda tables, columns: "deferred_since" in columns("post_schedule")),
    ("0004_company_timezone", lambda tables, columns: "timezone" in columns("companies")),
)


def sql_dir() -> Path:
    """sql/ beside the code (a checkout or an editable install), else where `pip install .` put it."""
    given = Settings.only_from_env("sql_dir").sql_dir  # read alone: `db init` may come first
    candidates = [Path(given)] if given else []
    candidates += [Path(__file__).resolve().parent.parent / "sql",
                   Path(sys.prefix) / "share" / "post-scheduler" / "sql"]
    for path in candidates:
        if (path / "migrations" / "env.py").is_file():
            return path
    raise ConfigError("cannot find the sql/ folder: set SCHEDULER_SQL_DIR to the project's sql/")


def alembic_config(connection: Connection | None = None, dialect_name: str | None = None,
                   output: io.StringIO | None = None) -> Config:
    config = Config(output_buffer=output)
    config.set_main_option("script_location", str(sql_dir() / "migrations"))
    if dialect_name:
        config.set_main_option("dialect_name", dialect_name)
    config.attributes["connection"] = connection
    return config


@functools.lru_cache(maxsize=None)
def script_directory() -> ScriptDirectory:
    """The revisions, read once per process (every worker run checks the schema against them)."""
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = script_directory().get_current_head()
    assert head is not None, "sql/migrations/versions holds no revision"
    return head


@dataclass(frozen=True)
class SchemaState:
    current: str | None   # the database's revision; None when it has none
    head: str             # the newest revision this code knows
    old_runner: str | None = None  # the old runner's revision its tables show, if it made them
    known: bool = True    # False: the database is at a revision newer than this code

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def schema_state(engine: Engine) -> SchemaState:
    with engine.connect() as conn:
        return _state(conn)


def _state(conn: Connection) -> SchemaState:
    scripts = script_directory()
    current = MigrationContext.configure(conn).get_current_revision()
    old = None if current else _old_runner_revision(conn)
    known = current is None or _is_known(scripts, current)
    conn.rollback()  # the reads above began a transaction: leave the connection clean
    return SchemaState(current, head_revision(), old, known)


def _is_known(scripts: ScriptDirectory, revision: str) -> bool:
    try:
        return scripts.get_revision(revision) is not None
    except Exception:  # alembic raises its own ResolutionError/CommandError for an unknown id
        return False


def _old_runner_revision(conn: Connection) -> str | None:
    inspector = inspect(conn)
    tables = set(inspector.get_table_names())
    if "schema_migrations" not in tables:
        return None
    found = None
    for revision, present in OLD_RUNNER_MARKS:
        if not present(tables, lambda table: {c["name"] for c in inspector.get_columns(table)}):
            break
        found = revision
    return found


def check_schema_is_current(engine: Engine) -> None:
    """Raise SchemaMissing unless the database is at head (the worker and the CLI check first)."""
    state = schema_state(engine)
    where = engine.url.render_as_string(hide_password=True)
    if not state.known:
        raise SchemaMissing(_newer_message(state, where))
    if state.current is None and state.old_runner is None:
        raise SchemaMissing(f"the schema is missing on {where}: run `scheduler db init`")
    if not state.up_to_date:
        raise SchemaMissing(f"the schema on {where} is out of date (at "
                            f"{state.current or state.old_runner}, code needs {state.head}): "
                            "run `scheduler db init`")


def _newer_message(state: SchemaState, where: str) -> str:
    return (f"the schema on {where} is at revision {state.current}, newer than this code "
            f"(which knows up to {state.head}): run the release that upgraded it; "
            "downgrades are not supported")


def init_schema(engine: Engine) -> list[str]:
    """Upgrade to head (stamping an old runner's database first); return the revisions applied."""
    with _exclusive(engine), engine.connect() as conn, _foreign_keys_off(conn):
        state = _state(conn)
        if not state.known:
            raise SchemaMissing(_newer_message(state, engine.url.render_as_string(hide_password=True)))
        start = state.current or state.old_runner
        if state.current is None and state.old_runner:
            command.stamp(alembic_config(conn), state.old_runner)
            conn.commit()
        command.upgrade(alembic_config(conn), "head")
        conn.commit()
    return revisions_between(start, state.head)


def revisions_between(start: str | None, head: str) -> list[str]:
    """The revisions after `start` up to `head`, oldest first."""
    chain = [s.revision for s in script_directory().iterate_revisions(head, start)]
    return list(reversed(chain))


@contextmanager
def _exclusive(engine: Engine) -> Iterator[None]:
    """Two `db init` at once (say, two deploys) take turns instead of racing the DDL."""
    name = engine.dialect.name
    if name == "sqlite":  # BEGIN IMMEDIATE around the upgrade already makes them take turns
        yield
        return
    take, release = {
        "postgresql": (f"SELECT pg_advisory_lock({PG_LOCK_KEY})",
                       f"SELECT pg_advisory_unlock({PG_LOCK_KEY})"),
    }.get(name, (f"SELECT GET_LOCK('{LOCK_NAME}', 60)", f"SELECT RELEASE_LOCK('{LOCK_NAME}')"))
    with engine.connect() as lock:
        lock.execute(text(take))
        try:
            yield
        finally:
            lock.execute(text(release))


@contextmanager
def _foreign_keys_off(conn: Connection) -> Iterator[None]:
    """On SQLite, batch mode copies a table and drops the old one: with foreign keys on, that
    drop would cascade into the child tables. The pragma works only outside a transaction."""
    if conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.driver_connection
    assert raw is not None  # an open connection has its driver's
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def with_connection(work: Callable[[Connection], None]) -> None:
    """For the `alembic` command (sql/alembic.ini): run `work` on a connection to DATABASE_URL."""
    from app.config import Settings
    from app.db import make_engine

    engine = make_engine(Settings.from_env())
    try:
        with engine.connect() as conn:
            work(conn)
            conn.commit()
    finally:
        engine.dispose()


def render_schema(dialect_name: str) -> str:
    """The DDL the revisions produce on `dialect_name`, as Alembic's offline mode writes it."""
    output = io.StringIO()
    output.write(f"-- The whole schema for {dialect_name}, rendered from sql/migrations/ by "
                 "`python sql/render_schema.py`:\n-- do not edit (a test fails when it differs "
                 "from the revisions). For an EMPTY database; it\n-- records its revision in "
                 "alembic_version, so `scheduler db init` upgrades it later.\n\n")
    command.upgrade(alembic_config(dialect_name=dialect_name, output=output), "head", sql=True)
    return output.getvalue()
