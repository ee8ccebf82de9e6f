"""0008: the values the next features need in the database's ENUMs, added once for all of them.

`platform` gains bluesky, mastodon and threads (the new platforms and their connect flows);
`post_status` gains draft (a post saved without a time: it has no schedule row until it is
scheduled). Adding an ENUM value is cheap on every engine and harmless before the code uses it.

Revision ID: 0008_more_values
Revises: 0007_webhooks
"""
import sqlalchemy as sa
from alembic import op

revision = "0008_more_values"
down_revision = "0007_webhooks"
branch_labels = None
depends_on = None

PLATFORMS = ("x", "facebook", "instagram", "linkedin", "sandbox", "bluesky", "mastodon", "threads")
POST_STATUSES = ("pending", "published", "failed", "cancelled", "missed", "draft")
# (table, column, ENUM type name, every value in order, the values this revision adds, default)
CHANGES = [
    ("social_accounts", "platform", "platform", PLATFORMS, PLATFORMS[5:], None),
    ("post_details", "status", "post_status", POST_STATUSES, POST_STATUSES[5:], "'pending'"),
]


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    for table, column, type_name, values, added, default in CHANGES:
        if dialect in ("mysql", "mariadb"):
            # Appending values at the end of a MySQL ENUM changes only the table's metadata.
            op.alter_column(table, column, existing_nullable=False,
                            type_=sa.Enum(*values, name=type_name),
                            existing_server_default=sa.text(default) if default else None)
        elif dialect == "postgresql":
            # Before PostgreSQL 12, ADD VALUE may not run inside a transaction block.
            with op.get_context().autocommit_block():
                for value in added:
                    op.execute(f"ALTER TYPE {type_name} ADD VALUE IF NOT EXISTS '{value}'")
        # SQLite keeps an enum as VARCHAR without a CHECK: nothing to change there.


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
