"""0011: threads and first comments, and room for several Instagram containers.

`post_details` gains `parts` (the replies after `content`, JSON, NULL for none) and
`first_comment`; `post_parts` holds each step's platform id as soon as the platform answers
(position 0 the post, 1.. the replies, the first comment last), so a retry resumes after the
last one published. `post_schedule.platform_draft_id` widens to hold a carousel's child
containers with its parent.

Revision ID: 0011_post_parts
Revises: 0010_media
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0011_post_parts"
down_revision = "0010_media"
branch_labels = None
depends_on = None

# The types as they are at this revision (a revision never imports the current models).
UUID = sa.String(36).with_variant(mysql.CHAR(36), "mysql", "mariadb")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade() -> None:
    with op.batch_alter_table("post_details") as batch:
        batch.add_column(sa.Column("parts", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("first_comment", LONG_TEXT, nullable=True))
    with op.batch_alter_table("post_schedule") as batch:
        batch.alter_column("platform_draft_id", type_=sa.String(1024),
                           existing_type=sa.String(255), existing_nullable=True)
    op.create_table(
        "post_parts",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("post_detail_id", UUID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("platform_post_id", sa.String(255), nullable=False),
        sa.Column("published_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_post_parts"),
        sa.ForeignKeyConstraint(["post_detail_id"], ["post_details.id"], ondelete="CASCADE",
                                name="fk_post_parts_post_detail_id"), **TABLE)
    op.create_index("uq_post_parts_post_position", "post_parts",
                    ["post_detail_id", "position"], unique=True)


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
