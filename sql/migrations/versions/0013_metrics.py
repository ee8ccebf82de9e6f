"""0013: engagement metrics per published post, the evergreen flag, and the rotation's rules.

`post_metrics` holds one row per post and checkpoint (1h, 24h, 7d after publishing), written by
collect_metrics jobs. `post_details.evergreen` marks a post to publish again; the copies a
rotation schedules name it in `evergreen_source_id`. `evergreen_rules` is a company's standing
rotation ("N evergreen posts a week on these accounts"), run by weekly evergreen jobs.

Revision ID: 0013_metrics
Revises: 0009_oauth
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0013_metrics"
down_revision = "0009_oauth"
branch_labels = None
depends_on = None

# The types as they are at this revision (a revision never imports the current models).
UUID = sa.String(36).with_variant(mysql.CHAR(36), "mysql", "mariadb")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}
COUNTS = ("impressions", "likes", "comments", "shares", "saves", "clicks")


def upgrade() -> None:
    op.create_table(
        "post_metrics",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("post_detail_id", UUID, nullable=False),
        sa.Column("checkpoint", sa.String(8), nullable=False),
        sa.Column("collected_at", TIME, nullable=False),
        *[sa.Column(name, sa.BigInteger(), nullable=True) for name in COUNTS],
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_post_metrics"),
        sa.ForeignKeyConstraint(["post_detail_id"], ["post_details.id"], ondelete="CASCADE",
                                name="fk_post_metrics_post_detail_id"), **TABLE)
    op.create_index("uq_post_metrics_checkpoint", "post_metrics",
                    ["post_detail_id", "checkpoint"], unique=True)
    with op.batch_alter_table("post_details") as batch:
        batch.add_column(sa.Column("evergreen", sa.Boolean(), server_default=sa.false(),
                                   nullable=False))
        batch.add_column(sa.Column("evergreen_source_id", UUID, nullable=True))
        batch.create_index("ix_post_details_evergreen_source_id", ["evergreen_source_id"])
        batch.create_foreign_key("fk_post_details_evergreen_source_id", "post_details",
                                 ["evergreen_source_id"], ["id"], ondelete="SET NULL")
    op.create_table(
        "evergreen_rules",
        sa.Column("id", UUID, nullable=False),
        sa.Column("company_id", UUID, nullable=False),
        sa.Column("account_ids", sa.JSON(), nullable=False),
        sa.Column("per_week", sa.Integer(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_evergreen_rules"),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE",
                                name="fk_evergreen_rules_company_id"), **TABLE)
    op.create_index("ix_evergreen_rules_company_id", "evergreen_rules", ["company_id"])


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
