"""0005: text a user or a platform writes holds more than 64 KiB on MySQL; the old runner's table goes.

MySQL's TEXT stops at 65,535 bytes: 30,000 CJK characters (a valid Facebook post) or 20,000
emoji do not fit, and MariaDB refused them (error 1406). MEDIUMTEXT holds 16 MiB. PostgreSQL's
and SQLite's TEXT have no such limit. `schema_migrations` (the old runner's record) is replaced
by Alembic's `alembic_version`.

Revision ID: 0005_long_text
Revises: 0004_company_timezone
"""
import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

revision = "0005_long_text"
down_revision = "0004_company_timezone"
branch_labels = None
depends_on = None

WIDENED = [("post_details", "content", False), ("post_details", "error_message", True),
           ("post_schedule", "last_error", True), ("publish_attempts", "error_message", True)]


def upgrade() -> None:
    if op.get_context().dialect.name in ("mysql", "mariadb"):
        for table, column, nullable in WIDENED:
            op.alter_column(table, column, type_=mysql.MEDIUMTEXT(), existing_type=sa.Text(),
                            existing_nullable=nullable)
    if not context.is_offline_mode() and "schema_migrations" in sa.inspect(op.get_bind()).get_table_names():
        op.drop_table("schema_migrations")


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
