"""`scheduler db init`: bring a database up to the schema, safely, as often as it is run.

MySQL/MariaDB get the SQL files of sql/migrations/ in order, each recorded in
`schema_migrations`. SQLite, which cannot run MySQL DDL, gets the same tables from the
models (tests prove models and SQL agree) and the same records.
"""
from __future__ import annotations

import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Engine, inspect, insert, select, text

from app.db import is_mysql
from app.errors import ConfigError
from app.models import Base, SchemaMigration


def sql_dir() -> Path:
    """sql/ beside the code (a checkout or an editable install), else where `pip install .` put it."""
    candidates = [Path(os.environ["SCHEDULER_SQL_DIR"])] if os.environ.get("SCHEDULER_SQL_DIR") else []
    candidates += [Path(__file__).resolve().parent.parent / "sql",
                   Path(sys.prefix) / "share" / "post-scheduler" / "sql"]
    for path in candidates:
        if (path / "migrations").is_dir():
            return path
    raise ConfigError("cannot find the sql/ folder: set SCHEDULER_SQL_DIR to the project's sql/")


def migration_files() -> list[Path]:
    return sorted(sql_dir().glob("migrations/[0-9][0-9][0-9][0-9]_*.sql"))


def version_of(path: Path) -> str:
    return path.stem


def split_statements(sql: str) -> list[str]:
    """The statements of a migration file: `--` comments dropped, split on a `;` ending a line."""
    body = "\n".join(re.sub(r"--.*$", "", line) for line in sql.splitlines())
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


def applied_versions(engine: Engine) -> set[str]:
    if "schema_migrations" not in inspect(engine).get_table_names():
        return set()
    with engine.connect() as conn:
        return set(conn.execute(select(SchemaMigration.version)).scalars())


def pending_migrations(engine: Engine) -> list[str]:
    done = applied_versions(engine)
    return [version_of(p) for p in migration_files() if version_of(p) not in done]


def init_schema(engine: Engine) -> list[str]:
    """Apply what is missing; return the versions applied now (empty when already up to date)."""
    if is_mysql(engine):
        return _migrate_mysql(engine)
    return _create_sqlite(engine)


def _migrate_mysql(engine: Engine) -> list[str]:
    applied = []
    with engine.connect() as conn:
        # Two `db init` at once (say, two deploys) take turns instead of racing the DDL.
        conn.execute(text("SELECT GET_LOCK('scheduler_db_init', 60)"))
        try:
            for path in migration_files():
                if version_of(path) in applied_versions(engine):
                    continue
                for statement in split_statements(path.read_text()):
                    conn.exec_driver_sql(statement)
                conn.execute(insert(SchemaMigration).values(
                    version=version_of(path), applied_at=datetime.now(timezone.utc)))
                conn.commit()
                applied.append(version_of(path))
        finally:
            conn.execute(text("SELECT RELEASE_LOCK('scheduler_db_init')"))
    return applied


def _create_sqlite(engine: Engine) -> list[str]:
    missing = pending_migrations(engine)
    Base.metadata.create_all(engine)
    if missing:
        now = datetime.now(timezone.utc)
        with engine.begin() as conn:
            conn.execute(insert(SchemaMigration), [{"version": v, "applied_at": now} for v in missing])
    return missing
