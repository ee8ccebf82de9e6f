"""Engine and session factory, shared by the API and the worker, and the start-up checks.

MySQL/MariaDB and PostgreSQL sessions run under READ COMMITTED with the time zone pinned to
UTC. SQLite (the embedded default) runs in WAL mode and opens every transaction with BEGIN
IMMEDIATE: one writer at a time takes the place of SKIP LOCKED there.
"""
from __future__ import annotations

import re
import time
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, Result, create_engine, event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.errors import DatabaseUnavailable

# MySQL client/server error numbers we translate into one-line messages.
ACCESS_DENIED = (1044, 1045, 1698)
UNKNOWN_DATABASE = 1049
CANT_CONNECT = (2002, 2003, 2005, 2006, 2013)


# A Session's execute() is typed as returning a Result; for INSERT/UPDATE/DELETE it is the
# CursorResult a Connection's is typed as, which holds these two.
def new_id(result: Result[Any]) -> Any:
    """The primary key of the one row an INSERT made."""
    key = cast(CursorResult[Any], result).inserted_primary_key
    assert key is not None  # an INSERT of one row
    return key[0]


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched."""
    return cast(CursorResult[Any], result).rowcount


IDLE_PING_AFTER = 10.0  # seconds a pooled connection may rest before it is tested on checkout


def make_engine(settings: Settings, pre_ping: bool = True, **kwargs) -> Engine:
    """`pre_ping`: test a pooled MySQL connection that has rested IDLE_PING_AFTER seconds or
    more before it is used again (the API, which lives for days: a server restart or a
    wait_timeout leaves dead connections in the pool). A busy connection is not tested, which
    saves a round trip per request; a worker run lives a minute and skips testing altogether."""
    url = settings.url
    if url.drivername == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    if url.get_backend_name() == "postgresql":
        connect_args = {"options": "-c timezone=UTC", "connect_timeout": 10}
    else:
        connect_args = {"init_command": "SET time_zone = '+00:00'", "connect_timeout": 10,
                        "charset": "utf8mb4"}
    # READ COMMITTED: the claim's locking read takes record locks only, no gap or
    # next-key locks, so inserts from the API never deadlock against a claim (see README).
    engine = create_engine(url, isolation_level="READ COMMITTED", pool_recycle=3600,
                           connect_args=connect_args, **kwargs)
    if pre_ping:
        event.listen(engine, "checkin", _rested_since)
        event.listen(engine, "checkout", _pinger(engine))
    return engine


def _rested_since(_dbapi_connection, record) -> None:
    record.info["checked_in"] = time.monotonic()


def _pinger(engine: Engine):
    def ping_if_rested(dbapi_connection, record, _proxy) -> None:
        """Test a connection that rested a while; a dead one is replaced (the pool retries)."""
        if time.monotonic() - record.info.get("checked_in", 0.0) < IDLE_PING_AFTER:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"a pooled connection was dead: {exc}") from exc
    return ping_if_rested


def _sqlite_on_connect(dbapi_connection, _record):
    # Let SQLAlchemy's "begin" event emit BEGIN IMMEDIATE instead of pysqlite's lazy BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def engine_of(sessions: sessionmaker[Session]) -> Engine:
    """The engine behind a session factory, for work that wants a plain Core connection."""
    return sessions.kw["bind"]


def describe(engine: Engine) -> str:
    """The URL without its password, for messages."""
    return engine.url.render_as_string(hide_password=True)


def check_connection(engine: Engine) -> None:
    """Log in once and check the server can SKIP LOCKED; raise DatabaseUnavailable otherwise."""
    try:
        version = server_version(engine)
    except DBAPIError as exc:
        raise DatabaseUnavailable(explain_connect_error(engine, exc)) from None
    if version is not None:
        check_server_version(version, engine.dialect.name)


def server_version(engine: Engine) -> str | None:
    """The server's version string (None on SQLite, which has no server)."""
    if engine.dialect.name == "sqlite":
        with engine.connect():
            return None
    with engine.connect() as conn:
        return conn.execute(text("SELECT VERSION()")).scalar_one()


def check_server_version(version: str, dialect: str = "mysql") -> None:
    """SKIP LOCKED needs MariaDB >= 10.6, MySQL >= 8.0.1 or PostgreSQL >= 9.5; MariaDB 10.4
    accepts the clause and silently skips nothing, so an older server is refused at start-up."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if not match:
        return
    found = tuple(int(p or 0) for p in match.groups())
    if dialect == "postgresql":
        name, needed = "PostgreSQL", (9, 5, 0)
    elif "mariadb" in version.lower():
        name, needed = "MariaDB", (10, 6, 0)
    else:
        name, needed = "MySQL", (8, 0, 1)
    if found < needed:
        raise DatabaseUnavailable(
            f"{name} {'.'.join(map(str, found))} is too old: FOR UPDATE SKIP LOCKED needs {name} >= "
            f"{'.'.join(map(str, needed))}; upgrade the server or point DATABASE_URL at a newer one")


def explain_connect_error(engine: Engine, exc: DBAPIError) -> str:
    where = describe(engine)
    code = _mysql_code(exc)
    if code in ACCESS_DENIED or _pg_login_failed(exc):
        return f"database login failed for {where}: check the user and password in DATABASE_URL"
    if code == UNKNOWN_DATABASE or _pg_unknown_database(exc):
        return (f"database {engine.url.database!r} does not exist on {where}: "
                f"create it (CREATE DATABASE {engine.url.database}) and run `scheduler db init`")
    if code in CANT_CONNECT or isinstance(exc, OperationalError):
        detail = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
        return f"cannot reach the database at {where}: {detail}"
    return f"database error on {where}: {str(exc.orig or exc).splitlines()[0]}"


def _mysql_code(exc: DBAPIError) -> int | None:
    args = getattr(exc.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


# psycopg reports a failed connection without an SQLSTATE: the server's FATAL line says it.
def _pg_unknown_database(exc: DBAPIError) -> bool:
    return bool(re.search(r'FATAL:\s+database ".*" does not exist', str(exc.orig)))


def _pg_login_failed(exc: DBAPIError) -> bool:
    return bool(re.search(r'FATAL:\s+(password authentication failed|role ".*" does not exist|'
                          r'no pg_hba.conf entry)', str(exc.orig)))


def check_schema(engine: Engine) -> None:
    """Raise SchemaMissing unless the database is at the newest revision of sql/migrations."""
    from app.migrations import check_schema_is_current  # the module that owns sql/

    try:
        check_schema_is_current(engine)
    except DBAPIError as exc:
        raise DatabaseUnavailable(explain_connect_error(engine, exc)) from None
