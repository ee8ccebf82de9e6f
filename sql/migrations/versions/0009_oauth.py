"""0009: what the OAuth connect flows and the token refresh keep.

social_accounts gains the refresh token (sealed like the access token), when it expires, the
scopes granted, per-platform facts (`auth_meta`: a Mastodon instance, a Bluesky PDS), when the
token was last refreshed, when `account.token_expiring` was raised for it and why the
account needs reconnecting. `oauth_states`
holds a connect flow between its start and its callback (single use, 10 minutes, the PKCE
verifier sealed); `oauth_apps` the client credentials registered once per Mastodon instance.

Revision ID: 0009_oauth
Revises: 0008_more_values
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0009_oauth"
down_revision = "0008_more_values"
branch_labels = None
depends_on = None

# The types as they are at this revision (a revision never imports the current models).
UUID = sa.String(36).with_variant(mysql.CHAR(36), "mysql", "mariadb")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}
ACCOUNT_COLUMNS = [
    ("refresh_token_encrypted", sa.Text()),
    ("refresh_expires_at", TIME),
    ("scopes", sa.String(1024)),
    ("auth_meta", sa.JSON()),
    ("refreshed_at", TIME),
    ("expiring_notified_at", TIME),
    ("status_reason", sa.String(1024)),
]


def upgrade() -> None:
    with op.batch_alter_table("social_accounts") as batch:
        for name, kind in ACCOUNT_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
    op.create_table(
        "oauth_states",
        sa.Column("state_hash", sa.String(64), nullable=False),  # SHA-256 of the state sent
        sa.Column("company_id", UUID, nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("verifier_encrypted", sa.Text(), nullable=True),
        sa.Column("extras", sa.JSON(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("used_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("state_hash", name="pk_oauth_states"),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE",
                                name="fk_oauth_states_company_id"), **TABLE)
    op.create_index("ix_oauth_states_company_id", "oauth_states", ["company_id"])
    op.create_index("ix_oauth_states_created_at", "oauth_states", ["created_at"])
    op.create_table(
        "oauth_apps",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("instance", sa.String(255), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("client_secret_encrypted", sa.Text(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_oauth_apps"), **TABLE)
    op.create_index("uq_oauth_apps_platform_instance", "oauth_apps", ["platform", "instance"],
                    unique=True)


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
