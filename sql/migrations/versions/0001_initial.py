"""0001: the tables of DESIGN.md, as the old runner's sql/migrations/0001_initial.sql made them.

Revision ID: 0001_initial
Revises:
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

# The types as they were at this revision (a revision never imports the current models).
UUID = sa.String(36).with_variant(mysql.CHAR(36), "mysql", "mariadb")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def fk(column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [target], ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "companies",
        sa.Column("id", UUID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_companies"), **TABLE)
    op.create_table(
        "api_keys",
        sa.Column("id", UUID, nullable=False),
        sa.Column("company_id", UUID, nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("revoked_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
        fk("company_id", "companies.id", "CASCADE"), **TABLE)
    op.create_index("ix_api_keys_company_id", "api_keys", ["company_id"])
    op.create_table(
        "clients",
        sa.Column("id", UUID, nullable=False),
        sa.Column("company_id", UUID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_clients"),
        fk("company_id", "companies.id", "CASCADE"), **TABLE)
    op.create_index("ix_clients_company_id", "clients", ["company_id"])
    op.create_table(
        "social_accounts",
        sa.Column("id", UUID, nullable=False),
        sa.Column("company_id", UUID, nullable=False),
        sa.Column("client_id", UUID, nullable=True),
        sa.Column("platform", sa.Enum("x", "facebook", "instagram", "linkedin", "sandbox",
                                      name="platform"), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=True),
        sa.Column("access_token_encrypted", sa.Text(), nullable=False),
        sa.Column("token_expires_at", TIME, nullable=True),
        sa.Column("status", sa.Enum("active", "needs_reconnect", name="account_status"),
                  server_default=sa.text("'active'"), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_social_accounts"),
        fk("company_id", "companies.id", "CASCADE"),
        fk("client_id", "clients.id", "SET NULL"), **TABLE)
    op.create_index("uq_social_accounts_external", "social_accounts",
                    ["company_id", "platform", "external_id"], unique=True)
    op.create_index("ix_social_accounts_client_id", "social_accounts", ["client_id"])
    op.create_table(
        "post_details",
        sa.Column("id", UUID, nullable=False),
        sa.Column("company_id", UUID, nullable=False),
        sa.Column("client_id", UUID, nullable=True),
        sa.Column("social_account_id", UUID, nullable=False),
        sa.Column("group_id", UUID, nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("media_urls", sa.JSON(), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("status", sa.Enum("pending", "published", "failed", "cancelled", "missed",
                                    name="post_status"),
                  server_default=sa.text("'pending'"), nullable=False),
        sa.Column("platform_post_id", sa.String(255), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("published_at", TIME, nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_post_details"),
        fk("company_id", "companies.id", "CASCADE"),
        fk("client_id", "clients.id", "SET NULL"),
        fk("social_account_id", "social_accounts.id", "CASCADE"), **TABLE)
    op.create_index("ix_post_details_client_id", "post_details", ["client_id"])
    op.create_index("ix_post_details_company_status", "post_details", ["company_id", "status"])
    op.create_index("ix_post_details_group_id", "post_details", ["group_id"])
    op.create_index("ix_post_details_idempotency", "post_details", ["company_id", "idempotency_key"])
    op.create_index("ix_post_details_social_account_id", "post_details", ["social_account_id"])
    op.create_table(
        "post_schedule",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("post_detail_id", UUID, nullable=False),
        sa.Column("run_at", TIME, nullable=False),
        sa.Column("status", sa.Enum("pending", "processing", "done", "failed", "cancelled", "missed",
                                    name="schedule_status"),
                  server_default=sa.text("'pending'"), nullable=False),
        sa.Column("locked_at", TIME, nullable=True),
        sa.Column("worker_id", sa.String(128), nullable=True),
        sa.Column("lock_token", sa.String(32), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("max_attempts", sa.Integer(), server_default=sa.text("3"), nullable=False),
        sa.Column("deferrals", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_post_schedule"),
        sa.UniqueConstraint("post_detail_id", name="uq_post_schedule_post_detail_id"),
        fk("post_detail_id", "post_details.id", "CASCADE"), **TABLE)
    # The due query is a range scan of this index, with no sort, at any table size.
    op.create_index("ix_post_schedule_due", "post_schedule", ["status", "run_at", "id"])
    op.create_table(
        "publish_attempts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("post_schedule_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(128), nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("finished_at", TIME, nullable=True),
        sa.Column("outcome", sa.Enum("published", "retry", "failed", "deferred", "unknown",
                                     name="attempt_outcome"), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_publish_attempts"),
        fk("post_schedule_id", "post_schedule.id", "CASCADE"), **TABLE)
    op.create_index("ix_publish_attempts_schedule", "publish_attempts", ["post_schedule_id", "attempt"])
    op.create_index("ix_publish_attempts_started_at", "publish_attempts", ["started_at"])
    op.create_table(
        "worker_runs",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("worker_id", sa.String(128), nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("finished_at", TIME, nullable=True),
        *[sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False)
          for name in ("recovered", "claimed", "published", "retried", "failed", "deferred")],
        sa.PrimaryKeyConstraint("id", name="pk_worker_runs"), **TABLE)
    op.create_index("ix_worker_runs_started_at", "worker_runs", ["started_at"])


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
