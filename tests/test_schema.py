"""sql/ and app/models.py describe one schema; these tests prove it on a real MariaDB.

The same schema is built three ways, each in a fresh database of its own:

* `sql/migrations/*` applied by `app.migrations.init_schema` (what `scheduler db init` does),
* `sql/schema.sql` split by `app.migrations.split_statements` (the file people read),
* `Base.metadata.create_all` (what SQLite gets, and what the code expects).

Each is reflected with SQLAlchemy's `inspect()` into a plain, normalized snapshot (columns,
types, nullability, defaults, auto-increment, primary keys, indexes, unique constraints,
foreign keys, check constraints, table options) and the snapshots must be equal. The
comparator is then shown to catch a set of deliberate changes, so equality is not vacuous.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import JSON, Engine, inspect, text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from app.config import Settings
from app.db import make_engine
from app.migrations import init_schema, migration_files, split_statements, sql_dir, version_of
from app.models import Base

from conftest import MYSQL_SERVER_URL, reachable_server

pytestmark = pytest.mark.mariadb

MODELS = "models (create_all)"
MIGRATIONS = "sql/migrations"
SCHEMA_SQL = "sql/schema.sql"

TABLE_ENGINE = "InnoDB"
TABLE_CHARSET = "utf8mb4"
TABLE_COLLATION = "utf8mb4_unicode_ci"
# MariaDB stores JSON as LONGTEXT in this collation (see normalize_type).
JSON_COLLATION = "utf8mb4_bin"


# -- building the three databases ------------------------------------------------------------

def apply_migrations(engine: Engine) -> None:
    init_schema(engine)


def apply_schema_sql(engine: Engine) -> None:
    statements = split_statements((sql_dir() / "schema.sql").read_text())
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def apply_models(engine: Engine) -> None:
    Base.metadata.create_all(engine)


BUILDERS: dict[str, Callable[[Engine], None]] = {
    MODELS: apply_models,
    MIGRATIONS: apply_migrations,
    SCHEMA_SQL: apply_schema_sql,
}


class Databases:
    """Creates uniquely named databases on the server and drops every one of them at close()."""

    def __init__(self, server: Engine):
        self.server = server
        self.made: list[tuple[str, Engine]] = []

    def create(self) -> Engine:
        name = f"scheduler_schema_{uuid.uuid4().hex[:8]}"
        with self.server.connect() as conn:
            # A database whose default is NOT utf8mb4: every table must declare its own
            # charset, and one relying on the database default would show up as latin1.
            conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET latin1 COLLATE latin1_swedish_ci"))
        url = make_url(MYSQL_SERVER_URL).set(database=name).render_as_string(hide_password=False)
        engine = make_engine(Settings(database_url=url))
        self.made.append((name, engine))
        return engine

    def close(self) -> None:
        errors = []
        for name, engine in self.made:
            engine.dispose()
            try:
                with self.server.connect() as conn:
                    conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
            except OperationalError as exc:  # keep dropping the others, then report
                errors.append(f"{name}: {exc.orig}")
        self.made.clear()
        if errors:
            raise RuntimeError("could not drop test databases: " + "; ".join(errors))


@pytest.fixture(scope="module")
def server() -> Iterator[Engine]:
    engine = reachable_server()
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def built(server) -> Iterator[dict[str, Engine]]:
    """The schema built three ways, one fresh database each, shared by the read-only tests."""
    databases = Databases(server)
    try:
        engines = {}
        for label, build in BUILDERS.items():
            engines[label] = databases.create()
            build(engines[label])
        yield engines
    finally:
        databases.close()


@pytest.fixture(scope="module")
def snapshots(built) -> dict[str, dict]:
    return {label: snapshot(engine) for label, engine in built.items()}


@pytest.fixture
def databases(server) -> Iterator[Databases]:
    """Fresh databases for one test (for tests that alter the schema), dropped after it."""
    made = Databases(server)
    try:
        yield made
    finally:
        made.close()


# -- reflection and normalization ------------------------------------------------------------

_INT_WITH_WIDTH = re.compile(r"^(tinyint|smallint|mediumint|int|integer|bigint)\(\d+\)")
_JSON_VALID = re.compile(r"^json_valid\(`?(\w+)`?\)$", re.IGNORECASE)


def normalize_type(type_, *, json_checked: bool) -> str:
    """A reflected column type as one lowercased string of MySQL DDL, known aliases folded."""
    compiled = re.sub(r"\s+", " ", str(type_.compile(dialect=mysql.dialect()))).strip().lower()
    # MariaDB has no JSON type: `JSON` is an alias for LONGTEXT CHARACTER SET utf8mb4 COLLATE
    # utf8mb4_bin plus a column CHECK (json_valid(col)), and reflects as that LONGTEXT.
    # (MySQL 8 reflects a native JSON.) Only the pair longtext + json_valid check is JSON: a
    # bare LONGTEXT stays longtext, so a model saying Text where the SQL says JSON is a diff.
    if json_checked and compiled.startswith("longtext"):
        return "json"
    # BOOLEAN/BOOL is an alias for TINYINT(1) in MySQL and MariaDB and reflects as TINYINT(1);
    # SQLAlchemy's Boolean emits BOOL. All three spellings are the same column.
    if compiled in ("tinyint(1)", "bool", "boolean"):
        return "boolean"
    # Integer display widths (INTEGER(11), BIGINT(20)) say nothing about the range; MariaDB
    # reports them and MySQL >= 8.0.19 does not. INT and INTEGER are the same type.
    compiled = _INT_WITH_WIDTH.sub(r"\1", compiled)
    return re.sub(r"^int\b", "integer", compiled)


def normalize_default(default: str | None) -> str | None:
    """A reflected server default: NULL means none; quotes and `()` of functions dropped.

    MariaDB reports a string default quoted ('pending') and a number bare (0); MySQL 8 and
    SQLAlchemy differ on both, and on `current_timestamp()` against `CURRENT_TIMESTAMP`.
    """
    if default is None:
        return None
    value = default.strip()
    if value.upper() == "NULL":
        return None
    if len(value) >= 2 and value[0] == value[-1] == "'":
        value = value[1:-1]
    return re.sub(r"\(\)$", "", value.lower())


def _json_checked_columns(engine: Engine) -> set[tuple[str, str]]:
    """(table, column) pairs carrying MariaDB's json_valid column check (MariaDB's JSON alias)."""
    if not getattr(engine.dialect, "is_mariadb", False):
        return set()
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = DATABASE()")).all()
    found = set()
    for table, name, clause in rows:
        match = _JSON_VALID.match(clause.strip())
        if match and match.group(1) == name:
            found.add((table, name))
    return found


def snapshot(engine: Engine) -> dict[str, dict]:
    """Everything about the database's tables that sql/ and the models must agree on."""
    insp = inspect(engine)
    json_columns = _json_checked_columns(engine)
    tables: dict[str, dict] = {}
    for table in sorted(insp.get_table_names()):
        columns = {}
        for col in insp.get_columns(table):
            columns[col["name"]] = {
                "type": normalize_type(col["type"], json_checked=(table, col["name"]) in json_columns),
                "nullable": bool(col["nullable"]),
                "default": normalize_default(col.get("default")),
                # Reflection gives the key only where it means something (integer columns).
                "autoincrement": bool(col.get("autoincrement", False)),
            }
        # MySQL names every primary key PRIMARY, so only its columns (in order) are compared.
        primary_key = list(insp.get_pk_constraint(table)["constrained_columns"])
        indexes = {ix["name"]: {"columns": list(ix["column_names"]), "unique": bool(ix["unique"])}
                   for ix in insp.get_indexes(table)}
        uniques = {uq["name"]: list(uq["column_names"]) for uq in insp.get_unique_constraints(table)}
        foreign_keys = {
            fk["name"]: {
                "columns": list(fk["constrained_columns"]),
                "referred_table": fk["referred_table"],
                "referred_columns": list(fk["referred_columns"]),
                # No ON DELETE clause and ON DELETE RESTRICT are the same rule.
                "ondelete": (fk.get("options", {}).get("ondelete") or "RESTRICT").upper(),
                "onupdate": (fk.get("options", {}).get("onupdate") or "RESTRICT").upper(),
            }
            for fk in insp.get_foreign_keys(table)
        }
        checks = {ck["name"]: re.sub(r"\s+", " ", ck["sqltext"]).strip().lower()
                  for ck in insp.get_check_constraints(table)
                  if (table, ck["name"]) not in json_columns}
        options = insp.get_table_options(table)
        tables[table] = {
            "columns": columns,
            "primary_key": primary_key,
            "indexes": indexes,
            "unique_constraints": uniques,
            "foreign_keys": foreign_keys,
            "checks": checks,
            "options": {
                "engine": options.get("mysql_engine"),
                "charset": options.get("mysql_default charset"),
                "collate": options.get("mysql_collate"),
            },
        }
    return tables


_ABSENT = "<absent>"


def _flatten(value, path: str = "") -> dict[str, object]:
    """{'t': {'columns': {'c': {'type': 'x'}}}} -> {'t.columns.c.type': 'x'}; lists are leaves.

    A table, column or index present on one side only also gets an entry of its own (value
    `<present>`), so the diff names it once instead of only through its attributes.
    """
    if not isinstance(value, dict):
        return {path: value}
    flat: dict[str, object] = {}
    if path:
        flat[path] = "<present>"
    for key, inner in value.items():
        flat.update(_flatten(inner, f"{path}.{key}" if path else str(key)))
    return flat


def schema_diff(left: dict, right: dict, left_name: str, right_name: str) -> list[str]:
    """One readable line per difference between two snapshots; empty when they are equal."""
    a, b = _flatten(left), _flatten(right)
    lines = []
    for path in sorted(a.keys() | b.keys()):
        va, vb = a.get(path, _ABSENT), b.get(path, _ABSENT)
        if va != vb:
            lines.append(f"{path}: {left_name}={va!r} {right_name}={vb!r}")
    return lines


def diff_message(lines: list[str], what: str) -> str:
    return f"{what}: {len(lines)} difference(s)\n  " + "\n  ".join(lines)


# -- 1. the three schemas are equal ----------------------------------------------------------

@pytest.mark.parametrize("label", [MODELS, MIGRATIONS, SCHEMA_SQL])
def test_each_build_has_exactly_the_model_tables(snapshots, label):
    # Guards the comparison against a vacuous pass: an empty or partial reflection.
    assert sorted(snapshots[label]) == sorted(Base.metadata.tables), label
    for name, table in Base.metadata.tables.items():
        assert sorted(snapshots[label][name]["columns"]) == sorted(table.columns.keys()), (label, name)


@pytest.mark.parametrize("left, right", [(MODELS, MIGRATIONS), (MODELS, SCHEMA_SQL),
                                         (MIGRATIONS, SCHEMA_SQL)],
                         ids=["models-vs-migrations", "models-vs-schema.sql",
                              "migrations-vs-schema.sql"])
def test_schemas_are_equal(snapshots, left, right):
    lines = schema_diff(snapshots[left], snapshots[right], left, right)
    assert not lines, diff_message(lines, f"{right} has drifted from {left}")


def test_known_aliases_are_normalized_not_ignored(snapshots):
    # The JSON fold fires (so media_urls is compared as json, not left out) in every build,
    # and integer widths are gone while bigint/integer stay distinct.
    for label, snap in snapshots.items():
        assert snap["post_details"]["columns"]["media_urls"]["type"] == "json", label
        assert snap["post_schedule"]["columns"]["id"] == {
            "type": "bigint", "nullable": False, "default": None, "autoincrement": True}, label
        assert snap["post_schedule"]["columns"]["attempts"]["type"] == "integer", label
        assert snap["post_schedule"]["columns"]["status"]["default"] == "pending", label


def test_type_normalization_folds_only_known_aliases():
    assert normalize_type(mysql.TINYINT(display_width=1), json_checked=False) == "boolean"
    assert normalize_type(mysql.BOOLEAN(), json_checked=False) == "boolean"
    assert normalize_type(mysql.TINYINT(display_width=4), json_checked=False) == "tinyint"
    assert normalize_type(mysql.INTEGER(display_width=11), json_checked=False) == "integer"
    assert normalize_type(mysql.BIGINT(display_width=20, unsigned=True),
                          json_checked=False) == "bigint unsigned"
    longtext = mysql.LONGTEXT(charset="utf8mb4", collation="utf8mb4_bin")
    assert normalize_type(longtext, json_checked=True) == "json"
    assert normalize_type(longtext, json_checked=False) == \
        "longtext character set utf8mb4 collate utf8mb4_bin"
    assert normalize_type(mysql.JSON(), json_checked=False) == "json"
    assert normalize_default("'pending'") == "pending"
    assert normalize_default("NULL") is None
    assert normalize_default("current_timestamp()") == normalize_default("CURRENT_TIMESTAMP")


# -- 2. the comparator catches drift ---------------------------------------------------------

MUTATIONS = {
    "column-type": (["ALTER TABLE post_schedule MODIFY last_error VARCHAR(10) NULL"],
                    "post_schedule.columns.last_error.type"),
    "column-nullability": (["ALTER TABLE post_schedule MODIFY worker_id VARCHAR(128) NOT NULL"],
                           "post_schedule.columns.worker_id.nullable"),
    "column-default": (["ALTER TABLE post_schedule ALTER max_attempts SET DEFAULT 5"],
                       "post_schedule.columns.max_attempts.default"),
    "column-enum-values": (["ALTER TABLE post_schedule MODIFY status ENUM('pending','processing',"
                            "'done','failed','cancelled') NOT NULL DEFAULT 'pending'"],
                           "post_schedule.columns.status.type"),
    "column-json-to-longtext": (["ALTER TABLE post_details MODIFY media_urls LONGTEXT "
                                 "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"],
                                "post_details.columns.media_urls.type"),
    "column-autoincrement": (["ALTER TABLE worker_runs MODIFY id BIGINT NOT NULL"],
                             "worker_runs.columns.id.autoincrement"),
    "column-added": (["ALTER TABLE companies ADD COLUMN extra INTEGER NULL"],
                     "companies.columns.extra"),
    "index-columns": (["DROP INDEX ix_post_schedule_due ON post_schedule",
                       "CREATE INDEX ix_post_schedule_due ON post_schedule (status, run_at)"],
                      "post_schedule.indexes.ix_post_schedule_due.columns"),
    "index-dropped": (["DROP INDEX ix_worker_runs_started_at ON worker_runs"],
                      "worker_runs.indexes.ix_worker_runs_started_at"),
    "index-no-longer-unique": (["DROP INDEX uq_api_keys_key_hash ON api_keys",
                                "CREATE INDEX uq_api_keys_key_hash ON api_keys (key_hash)"],
                               "api_keys.indexes.uq_api_keys_key_hash.unique"),
    "foreign-key-ondelete": (["ALTER TABLE post_details DROP FOREIGN KEY fk_post_details_client_id",
                              "ALTER TABLE post_details ADD CONSTRAINT fk_post_details_client_id "
                              "FOREIGN KEY (client_id) REFERENCES clients (id) ON DELETE CASCADE"],
                             "post_details.foreign_keys.fk_post_details_client_id.ondelete"),
    "table-collation": (["ALTER TABLE worker_runs CONVERT TO CHARACTER SET utf8mb4 "
                         "COLLATE utf8mb4_general_ci"],
                        "worker_runs.options.collate"),
    "table-engine": (["ALTER TABLE worker_runs ENGINE=MyISAM"], "worker_runs.options.engine"),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_comparator_reports_a_changed_schema(databases, snapshots, mutation):
    statements, expected = MUTATIONS[mutation]
    engine = databases.create()
    apply_migrations(engine)
    before = schema_diff(snapshots[MODELS], snapshot(engine), MODELS, MIGRATIONS)
    assert not before, diff_message(before, "fresh migrations already differ from the models")

    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    lines = schema_diff(snapshots[MODELS], snapshot(engine), MODELS, f"{MIGRATIONS} + {mutation}")

    assert any(line.startswith(expected + ":") for line in lines), \
        diff_message(lines, f"expected a difference at {expected}")
    table = expected.split(".")[0]
    assert all(line.startswith(table + ".") for line in lines), \
        diff_message(lines, f"only {table} was changed")


def test_schema_diff_reads_well():
    left = {"t": {"columns": {"a": {"type": "text"}}, "indexes": {"ix": {"columns": ["a"]}}}}
    right = {"t": {"columns": {"a": {"type": "varchar(10)"}}, "indexes": {}}}
    assert schema_diff(left, right, "L", "R") == [
        "t.columns.a.type: L='text' R='varchar(10)'",
        "t.indexes.ix: L='<present>' R='<absent>'",
        "t.indexes.ix.columns: L=['a'] R='<absent>'",
    ]


# -- 3. init_schema is idempotent ------------------------------------------------------------

def _recorded_versions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT version FROM schema_migrations ORDER BY version")).scalars())


def test_init_schema_twice_on_mariadb(databases, snapshots):
    versions = [version_of(p) for p in migration_files()]
    assert versions, "no files in sql/migrations"
    engine = databases.create()

    assert init_schema(engine) == versions
    first = snapshot(engine)
    assert init_schema(engine) == []

    assert _recorded_versions(engine) == sorted(versions)
    lines = schema_diff(first, snapshot(engine), "after run 1", "after run 2")
    assert not lines, diff_message(lines, "a second init_schema changed the schema")
    lines = schema_diff(snapshots[MODELS], snapshot(engine), MODELS, "init_schema twice")
    assert not lines, diff_message(lines, "init_schema twice differs from the models")


def test_init_schema_twice_on_sqlite(tmp_path: Path):
    versions = [version_of(p) for p in migration_files()]
    engine = make_engine(Settings(database_url=f"sqlite:///{tmp_path / 'scheduler.db'}"))
    try:
        assert init_schema(engine) == versions
        assert init_schema(engine) == []
        assert _recorded_versions(engine) == sorted(versions)
        assert sorted(inspect(engine).get_table_names()) == sorted(Base.metadata.tables)
    finally:
        engine.dispose()


# -- 4. InnoDB and utf8mb4 -------------------------------------------------------------------

def test_models_declare_innodb_utf8mb4():
    for table in Base.metadata.sorted_tables:
        assert table.dialect_options["mysql"]["engine"] == TABLE_ENGINE, table.name
        assert table.dialect_options["mysql"]["charset"] == TABLE_CHARSET, table.name
        assert table.dialect_options["mysql"]["collate"] == TABLE_COLLATION, table.name


@pytest.mark.parametrize("label", [MODELS, MIGRATIONS, SCHEMA_SQL])
def test_applied_tables_are_innodb_utf8mb4(built, label):
    with built[label].connect() as conn:
        tables = conn.execute(text(
            "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME")).all()
        columns = conn.execute(text(
            "SELECT TABLE_NAME, COLUMN_NAME, CHARACTER_SET_NAME, COLLATION_NAME "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            "AND CHARACTER_SET_NAME IS NOT NULL")).all()

    assert sorted(t.TABLE_NAME for t in tables) == sorted(Base.metadata.tables)
    wrong = [tuple(t) for t in tables if (t.ENGINE, t.TABLE_COLLATION) != (TABLE_ENGINE, TABLE_COLLATION)]
    assert not wrong, f"{label}: tables not {TABLE_ENGINE}/{TABLE_COLLATION}: {wrong}"

    json_columns = {(t, c) for t, table in Base.metadata.tables.items()
                    for c, column in table.columns.items() if isinstance(column.type, JSON)}
    assert columns, f"{label}: no character columns found"
    wrong = [tuple(c) for c in columns
             if (c.CHARACTER_SET_NAME, c.COLLATION_NAME) != (
                 TABLE_CHARSET,
                 JSON_COLLATION if (c.TABLE_NAME, c.COLUMN_NAME) in json_columns else TABLE_COLLATION)]
    assert not wrong, f"{label}: character columns not {TABLE_CHARSET}: {wrong}"
