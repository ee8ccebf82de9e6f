"""Alembic's entry point for this project's revisions; app/migrations.py drives it.

Online, the caller hands a Connection in `config.attributes["connection"]` (the `alembic`
command, through sql/alembic.ini, gets one made from DATABASE_URL). Offline, it renders the
DDL of one dialect (scripts/render_schema.py writes sql/schema.*.sql that way).
"""
from alembic import context

from app.models import Base

config = context.config


def run_offline() -> None:
    context.configure(dialect_name=config.get_main_option("dialect_name"), literal_binds=True,
                      target_metadata=Base.metadata, transactional_ddl=False)
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection) -> None:
    # SQLite alters a table by copying it: batch mode does that where ALTER cannot.
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True,
                      # SQLite runs DDL in transactions: the whole upgrade commits or none of it.
                      transactional_ddl=True if connection.dialect.name == "sqlite" else None)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
elif config.attributes.get("connection") is not None:
    run_online(config.attributes["connection"])
else:
    from app.migrations import with_connection  # the `alembic` command, on DATABASE_URL

    with_connection(run_online)
