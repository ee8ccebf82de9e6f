"""Fixtures: a fresh database per test on SQLite, and on real MariaDB and PostgreSQL servers
wherever SQL or locking matters (`db` runs a test on all three, `server_db` on the two servers).

MariaDB comes from SCHEDULER_TEST_MYSQL_URL (default: root@127.0.0.1:3306), PostgreSQL from
SCHEDULER_TEST_POSTGRESQL_URL (default: postgres@127.0.0.1:5432). Each pytest process makes a
database of its own on each server and drops it at the end. Without a server its tests fail
with a message saying so; they never skip, because a skipped locking test proves nothing. To
run only the SQLite part on a machine without them, deselect explicitly:
`pytest -m "not mariadb and not postgresql"`.
"""
from __future__ import annotations

import io
import os
import shutil
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import make_engine, make_session_factory
from app.migrations import init_schema
from app.models import Base, PostDetail, PostSchedule
from app.services.accounts import add_account, create_company

MYSQL_SERVER_URL = os.environ.get("SCHEDULER_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/")
POSTGRESQL_SERVER_URL = os.environ.get("SCHEDULER_TEST_POSTGRESQL_URL",
                                       "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SERVERS = {"mariadb": ("MariaDB", MYSQL_SERVER_URL, "SCHEDULER_TEST_MYSQL_URL"),
           "postgresql": ("PostgreSQL", POSTGRESQL_SERVER_URL, "SCHEDULER_TEST_POSTGRESQL_URL")}
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


@dataclass
class Db:
    kind: str
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=False)

    def scalar(self, sql: str, **params):
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params):
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).mappings().all()


def reachable_server(kind: str = "mariadb") -> Engine:
    """An AUTOCOMMIT engine on the test server of `kind`; fails the test (never skips) when down."""
    label, url, variable = SERVERS[kind]
    server_url = make_url(url)
    if kind == "mariadb":
        server_url = server_url.set(database=None)
    server = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        pytest.fail(f"{label} is not reachable at {url}: {str(exc.orig).strip()}. Start it, point "
                    f"{variable} at one, or deselect with -m 'not {kind}'.", pytrace=False)
    return server


def create_database(server: Engine, name: str) -> str:
    """A new empty database on `server`; its URL."""
    drop_database(server, name)
    with server.connect() as conn:
        if server.dialect.name == "postgresql":
            conn.execute(text(f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0"))
        else:
            conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    return server.url.set(database=name).render_as_string(hide_password=False)


def drop_database(server: Engine, name: str) -> None:
    with server.connect() as conn:
        if server.dialect.name == "postgresql":  # FORCE: a connection left open must not block it
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        else:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))


def _session_database(kind: str, suffix: str):
    """A database of our own on the server, schema applied by the migrations, dropped at the end."""
    server = reachable_server(kind)
    # The pid keeps two pytest sessions on one server (two checkouts, or CI beside a developer)
    # from emptying each other's tables.
    name = f"scheduler_test_{suffix}_{os.getpid()}"
    url = create_database(server, name)
    engine = make_engine(Settings(database_url=url))
    init_schema(engine)
    engine.dispose()
    yield url
    drop_database(server, name)
    server.dispose()


@pytest.fixture(scope="session")
def mysql_database(worker_id_suffix) -> str:
    yield from _session_database("mariadb", worker_id_suffix)


@pytest.fixture(scope="session")
def postgresql_database(worker_id_suffix) -> str:
    yield from _session_database("postgresql", worker_id_suffix)


@pytest.fixture(scope="session")
def worker_id_suffix(request) -> str:
    # pytest-xdist gives each process a name; without it there is one process.
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


def _db(kind: str, url: str, **overrides) -> Db:
    settings = Settings(database_url=url, worker_id="test-worker", **overrides)
    engine = make_engine(settings)
    return Db(kind, settings, engine, make_session_factory(engine))


@pytest.fixture
def mariadb(mysql_database) -> Db:
    """The session's MariaDB database, emptied before the test."""
    db = _db("mariadb", mysql_database)
    with db.engine.begin() as conn:
        conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(text(f"TRUNCATE TABLE {table.name}"))
        conn.execute(text("SET FOREIGN_KEY_CHECKS = 1"))
    yield db
    db.engine.dispose()


@pytest.fixture
def postgresql(postgresql_database) -> Db:
    """The session's PostgreSQL database, emptied before the test."""
    db = _db("postgresql", postgresql_database)
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE TABLE {tables} RESTART IDENTITY CASCADE"))
    yield db
    db.engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file the migrations brought to head once; each test gets a copy (fast)."""
    path = tmp_path_factory.mktemp("template") / "scheduler.db"
    engine = make_engine(Settings(database_url=f"sqlite:///{path}"))
    init_schema(engine)
    engine.dispose()
    return path


@pytest.fixture
def sqlite(tmp_path, sqlite_template) -> Db:
    shutil.copyfile(sqlite_template, tmp_path / "scheduler.db")
    db = _db("sqlite", f"sqlite:///{tmp_path / 'scheduler.db'}")
    yield db
    db.engine.dispose()


MARIADB = pytest.param("mariadb", marks=pytest.mark.mariadb)
POSTGRESQL = pytest.param("postgresql", marks=pytest.mark.postgresql)


@pytest.fixture(params=["sqlite", MARIADB, POSTGRESQL])
def db(request) -> Db:
    """The test runs on SQLite, on MariaDB and on PostgreSQL."""
    return request.getfixturevalue(request.param)


@pytest.fixture(params=[MARIADB, POSTGRESQL])
def server_db(request) -> Db:
    """The test runs on MariaDB and on PostgreSQL: the engines where SKIP LOCKED is real."""
    return request.getfixturevalue(request.param)


DB_FIXTURES = ("db", "server_db", "mariadb", "postgresql", "sqlite")


def pytest_collection_modifyitems(items):
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "mariadb" in names or "mysql_database" in names:
            item.add_marker(pytest.mark.mariadb)
        if "postgresql" in names or "postgresql_database" in names:
            item.add_marker(pytest.mark.postgresql)


# -- data -----------------------------------------------------------------------------------

@dataclass
class Tenant:
    company_id: str
    account_id: str
    api_key: str


def make_tenant(db: Db, platform: str = "sandbox", name: str = "Acme") -> Tenant:
    company, key = create_company(db.sessions, name, T0)
    account = add_account(db.sessions, company.id, platform, f"ext-{uuid.uuid4().hex[:8]}",
                          "secret-token-value", T0, display_name=f"{name} {platform}")
    return Tenant(company.id, account.id, key)


def add_due_posts(db: Db, tenant: Tenant, count: int, run_at: datetime = T0,
                  content: str = "hello") -> list[int]:
    """Insert `count` pending posts in bulk (fast enough for thousands); return schedule ids."""
    post_ids = [str(uuid.uuid4()) for _ in range(count)]
    group = str(uuid.uuid4())
    details = [dict(id=pid, company_id=tenant.company_id, social_account_id=tenant.account_id,
                    group_id=group, content=f"{content} {i}", media_urls=[], status="pending",
                    created_at=T0 - timedelta(hours=1), updated_at=T0 - timedelta(hours=1))
               for i, pid in enumerate(post_ids)]
    # Distinct run_at values ending at `run_at`, so all are due then and their order is known.
    schedules = [dict(post_detail_id=pid, run_at=run_at - timedelta(microseconds=count - 1 - i),
                      status="pending", attempts=0, max_attempts=3, deferrals=0,
                      created_at=T0 - timedelta(hours=1), updated_at=T0 - timedelta(hours=1))
                 for i, pid in enumerate(post_ids)]
    with db.sessions.begin() as session:
        for start in range(0, count, 1000):
            session.execute(insert(PostDetail), details[start:start + 1000])
            session.execute(insert(PostSchedule), schedules[start:start + 1000])
    with db.sessions() as session:
        return list(session.scalars(select(PostSchedule.id).where(
            PostSchedule.post_detail_id.in_(post_ids)).order_by(PostSchedule.id)))


def add_due_post(db: Db, company_id: str, account_id: str, content: str, now: datetime,
                 media_urls: list[str] | None = None) -> int:
    """One post due a second before `now`, as the API would have stored it; its schedule id."""
    with db.sessions.begin() as session:
        detail = PostDetail(id=str(uuid.uuid4()), company_id=company_id,
                            social_account_id=account_id, group_id=str(uuid.uuid4()),
                            content=content, media_urls=media_urls or [], status="pending",
                            created_at=now, updated_at=now)
        session.add(detail)
        session.flush()
        schedule = PostSchedule(post_detail_id=detail.id, run_at=now - timedelta(seconds=1),
                                status="pending", created_at=now, updated_at=now)
        session.add(schedule)
        session.flush()
        return schedule.id


@pytest.fixture
def fakes():
    """Every fake platform (tests/fakes/), on free local ports for the test."""
    from tests.fakes import running_fakes

    with running_fakes() as running:
        yield running


@pytest.fixture
def tenant(request) -> Tenant:
    """A company with one active sandbox account, in whichever database the test uses."""
    for name in DB_FIXTURES:
        if name in request.fixturenames:
            return make_tenant(request.getfixturevalue(name))
    raise LookupError(f"the tenant fixture needs one of the fixtures {', '.join(DB_FIXTURES)}")


# -- the HTTP API ---------------------------------------------------------------------------

class ApiClient:
    """The app's test client on a test database, sending `key` as the Bearer token."""

    def __init__(self, db: Db, key: str):
        from app import create_app

        self.db, self.key = db, key
        self.app = create_app({"SETTINGS": db.settings, "TESTING": True})
        self.client = self.app.test_client()

    def call(self, method: str, path: str, key: str | None = "default", headers=None, **kwargs):
        headers = dict(headers or {})
        key = self.key if key == "default" else key
        if key is not None:
            headers.setdefault("Authorization", f"Bearer {key}")
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, **kw):
        return self.call("POST", path, **kw)

    def patch(self, path, **kw):
        return self.call("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)

    def close(self) -> None:
        self.app.extensions["scheduler"]["engine"].dispose()


@pytest.fixture
def api(request, tenant) -> ApiClient:
    """The API on the test's database, authenticated as `tenant`."""
    db = next(request.getfixturevalue(n) for n in DB_FIXTURES if n in request.fixturenames)
    client = ApiClient(db, tenant.api_key)
    yield client
    client.close()


class CountingStream(io.BytesIO):
    """A request body that counts what the server read of it (`read_bytes`), to prove a body
    over a limit is refused after reading only the limit + 1 byte."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.read_bytes = 0

    def read(self, size=-1):
        data = super().read(size)
        self.read_bytes += len(data)
        return data


@contextmanager
def serving(app, port: int = 0):
    """`app` on 127.0.0.1:<port> (0: a free one), a real socket and threads, as a browser or a
    fuzzer reaches it; yields the base URL and disposes of the app's engine afterwards."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        app.extensions["scheduler"]["engine"].dispose()


# -- a real browser -------------------------------------------------------------------------

CHROMIUM = os.environ.get("SCHEDULER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parent.parent / "test-output" / "screenshots"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Debian's Chromium, headless, driven by Playwright (screenshots go to SHOTS)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does it)",
                    pytrace=False)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM,
            args=CHROMIUM_ARGS, headless=True, viewport={"width": 1280, "height": 900})
        yield context
        context.close()


@pytest.fixture
def site(mariadb):
    """The app on 127.0.0.1:<free port>, over the test's MariaDB database (the browser tests')."""
    from app import create_app

    with serving(create_app({"SETTINGS": mariadb.settings})) as url:
        yield url


def sign_in(page, site: str, key: str) -> None:
    """Sign in to the dashboard at `site` with an API key, as a user does, and wait for it."""
    from playwright.sync_api import expect

    page.goto(f"{site}/dashboard")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    expect(page.get_by_test_id("health")).to_be_visible()
