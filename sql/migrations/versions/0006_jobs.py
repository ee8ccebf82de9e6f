"""0006: jobs, background work other than publishing (prune first; refresh_token,
deliver_webhook later), claimed with the same SKIP LOCKED / lock_token code as post_schedule.

Revision ID: 0006_jobs
Revises: 0005_long_text
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006_jobs"
down_revision = "0005_long_text"
branch_labels = None
depends_on = None

UUID = sa.String(36).with_variant(mysql.CHAR(36), "mysql", "mariadb")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("company_id", UUID, nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("run_at", TIME, nullable=False),
        sa.Column("status", sa.Enum("pending", "processing", "done", "failed", name="job_status"),
                  server_default=sa.text("'pending'"), nullable=False),
        sa.Column("locked_at", TIME, nullable=True),
        sa.Column("worker_id", sa.String(128), nullable=True),
        sa.Column("lock_token", sa.String(32), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("max_attempts", sa.Integer(), server_default=sa.text("3"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("dedupe_key", sa.String(255), nullable=True),  # one job per key: prune:2026-11-23
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("dedupe_key", name="uq_jobs_dedupe_key"),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE"),
        mysql_engine="InnoDB", mysql_charset="utf8mb4", mysql_collate="utf8mb4_unicode_ci")
    op.create_index("ix_jobs_company_id", "jobs", ["company_id"])
    # The due query walks this index in order, as ix_post_schedule_due for posts.
    op.create_index("ix_jobs_due", "jobs", ["status", "run_at", "id"])


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
