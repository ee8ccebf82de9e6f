"""0002: idempotency_keys, for POST /schedule-post's Idempotency-Key (old runner's 0002_api.sql).

Revision ID: 0002_api
Revises: 0001_initial
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002_api"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

UUID = sa.String(36).with_variant(mysql.CHAR(36), "mysql", "mariadb")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
                  nullable=False),
        sa.Column("company_id", UUID, nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),  # SHA-256 of the key
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.JSON(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_idempotency_keys"),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE"),
        mysql_engine="InnoDB", mysql_charset="utf8mb4", mysql_collate="utf8mb4_unicode_ci")
    op.create_index("uq_idempotency_keys_company_key", "idempotency_keys",
                    ["company_id", "key_hash"], unique=True)


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
