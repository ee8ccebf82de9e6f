"""0003: what the platform publishers need from the queue (old runner's 0003_publishers.sql).

`waiting` joins the schedule statuses; platform_draft_id, deferred_since and unknown_since
are added. A column already there is left alone: a SQLite database the old runner "upgraded"
may lack them while recording 0003, and one at 0001-0002-0004 meets this revision after 0004.

Revision ID: 0003_publishers
Revises: 0002_api
"""
import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

revision = "0003_publishers"
down_revision = "0002_api"
branch_labels = None
depends_on = None

STATUSES = ("pending", "processing", "done", "failed", "cancelled", "missed", "waiting")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect in ("mysql", "mariadb"):
        op.alter_column("post_schedule", "status", existing_nullable=False,
                        type_=sa.Enum(*STATUSES, name="schedule_status"),
                        existing_server_default=sa.text("'pending'"))
    elif dialect == "postgresql":
        # Before PostgreSQL 12, ADD VALUE may not run inside a transaction block.
        with op.get_context().autocommit_block():
            op.execute("ALTER TYPE schedule_status ADD VALUE IF NOT EXISTS 'waiting'")
    # SQLite keeps an enum as VARCHAR without a CHECK: nothing to change there.
    present = set() if context.is_offline_mode() else {
        c["name"] for c in sa.inspect(op.get_bind()).get_columns("post_schedule")}
    new = [sa.Column("platform_draft_id", sa.String(255), nullable=True),
           sa.Column("deferred_since", TIME, nullable=True),
           sa.Column("unknown_since", TIME, nullable=True)]
    with op.batch_alter_table("post_schedule") as batch:
        for column in new:
            if column.name not in present:
                batch.add_column(column)


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
