"""0004: the time zone a company's calendar is drawn in (old runner's 0004_company_timezone.sql).

A database at 0001-0002-0004 already has the column (it met 0004 before 0003 existed).

Revision ID: 0004_company_timezone
Revises: 0003_publishers
"""
import sqlalchemy as sa
from alembic import context, op

revision = "0004_company_timezone"
down_revision = "0003_publishers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    present = set() if context.is_offline_mode() else {
        c["name"] for c in sa.inspect(op.get_bind()).get_columns("companies")}
    if "timezone" not in present:
        with op.batch_alter_table("companies") as batch:
            batch.add_column(sa.Column("timezone", sa.String(64), server_default=sa.text("'UTC'"),
                                       nullable=False))


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
