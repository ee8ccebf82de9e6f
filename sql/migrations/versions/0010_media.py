"""0010: the media store (files uploaded once per company) and each post's media, in order,
with alt text and the id the platform gave an upload (reused by a retry).

Revision ID: 0010_media
Revises: 0009_oauth
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0010_media"
down_revision = "0009_oauth"
branch_labels = None
depends_on = None

# The types as they are at this revision (a revision never imports the current models).
UUID = sa.String(36).with_variant(mysql.CHAR(36), "mysql", "mariadb")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("id", UUID, nullable=False),
        sa.Column("company_id", UUID, nullable=False),
        sa.Column("mime_type", sa.String(100), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("storage_key", sa.String(255), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_media"),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE",
                                name="fk_media_company_id"), **TABLE)
    op.create_index("ix_media_company_id", "media", ["company_id"])
    op.create_table(
        "post_media",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("post_detail_id", UUID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("media_id", UUID, nullable=True),
        sa.Column("url", sa.String(2048), nullable=True),
        sa.Column("alt_text", sa.Text(), nullable=True),
        sa.Column("platform_media_id", sa.String(255), nullable=True),
        sa.Column("uploaded_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_post_media"),
        sa.ForeignKeyConstraint(["post_detail_id"], ["post_details.id"], ondelete="CASCADE",
                                name="fk_post_media_post_detail_id"),
        sa.ForeignKeyConstraint(["media_id"], ["media.id"], ondelete="SET NULL",
                                name="fk_post_media_media_id"), **TABLE)
    op.create_index("uq_post_media_post_position", "post_media", ["post_detail_id", "position"],
                    unique=True)
    op.create_index("ix_post_media_media_id", "post_media", ["media_id"])


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
