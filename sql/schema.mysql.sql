-- The whole schema for mysql, rendered from sql/migrations/ by `python sql/render_schema.py`:
-- do not edit (a test fails when it differs from the revisions). For an EMPTY database; it
-- records its revision in alembic_version, so `scheduler db init` upgrades it later.

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL, 
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> 0001_initial

CREATE TABLE companies (
    id CHAR(36) NOT NULL, 
    name VARCHAR(200) NOT NULL, 
    created_at DATETIME(6) NOT NULL, 
    CONSTRAINT pk_companies PRIMARY KEY (id)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE TABLE api_keys (
    id CHAR(36) NOT NULL, 
    company_id CHAR(36) NOT NULL, 
    prefix VARCHAR(16) NOT NULL, 
    key_hash VARCHAR(64) NOT NULL, 
    created_at DATETIME(6) NOT NULL, 
    revoked_at DATETIME(6), 
    CONSTRAINT pk_api_keys PRIMARY KEY (id), 
    CONSTRAINT uq_api_keys_key_hash UNIQUE (key_hash), 
    CONSTRAINT fk_api_keys_company_id FOREIGN KEY(company_id) REFERENCES companies (id) ON DELETE CASCADE
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_api_keys_company_id ON api_keys (company_id);

CREATE TABLE clients (
    id CHAR(36) NOT NULL, 
    company_id CHAR(36) NOT NULL, 
    name VARCHAR(200) NOT NULL, 
    created_at DATETIME(6) NOT NULL, 
    CONSTRAINT pk_clients PRIMARY KEY (id), 
    CONSTRAINT fk_clients_company_id FOREIGN KEY(company_id) REFERENCES companies (id) ON DELETE CASCADE
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_clients_company_id ON clients (company_id);

CREATE TABLE social_accounts (
    id CHAR(36) NOT NULL, 
    company_id CHAR(36) NOT NULL, 
    client_id CHAR(36), 
    platform ENUM('x','facebook','instagram','linkedin','sandbox') NOT NULL, 
    external_id VARCHAR(255) NOT NULL, 
    display_name VARCHAR(255), 
    access_token_encrypted TEXT NOT NULL, 
    token_expires_at DATETIME(6), 
    status ENUM('active','needs_reconnect') NOT NULL DEFAULT 'active', 
    created_at DATETIME(6) NOT NULL, 
    updated_at DATETIME(6) NOT NULL, 
    CONSTRAINT pk_social_accounts PRIMARY KEY (id), 
    CONSTRAINT fk_social_accounts_company_id FOREIGN KEY(company_id) REFERENCES companies (id) ON DELETE CASCADE, 
    CONSTRAINT fk_social_accounts_client_id FOREIGN KEY(client_id) REFERENCES clients (id) ON DELETE SET NULL
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE UNIQUE INDEX uq_social_accounts_external ON social_accounts (company_id, platform, external_id);

CREATE INDEX ix_social_accounts_client_id ON social_accounts (client_id);

CREATE TABLE post_details (
    id CHAR(36) NOT NULL, 
    company_id CHAR(36) NOT NULL, 
    client_id CHAR(36), 
    social_account_id CHAR(36) NOT NULL, 
    group_id CHAR(36) NOT NULL, 
    content TEXT NOT NULL, 
    media_urls JSON NOT NULL, 
    timezone VARCHAR(64), 
    status ENUM('pending','published','failed','cancelled','missed') NOT NULL DEFAULT 'pending', 
    platform_post_id VARCHAR(255), 
    error_message TEXT, 
    published_at DATETIME(6), 
    idempotency_key VARCHAR(255), 
    created_at DATETIME(6) NOT NULL, 
    updated_at DATETIME(6) NOT NULL, 
    CONSTRAINT pk_post_details PRIMARY KEY (id), 
    CONSTRAINT fk_post_details_company_id FOREIGN KEY(company_id) REFERENCES companies (id) ON DELETE CASCADE, 
    CONSTRAINT fk_post_details_client_id FOREIGN KEY(client_id) REFERENCES clients (id) ON DELETE SET NULL, 
    CONSTRAINT fk_post_details_social_account_id FOREIGN KEY(social_account_id) REFERENCES social_accounts (id) ON DELETE CASCADE
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_post_details_client_id ON post_details (client_id);

CREATE INDEX ix_post_details_company_status ON post_details (company_id, status);

CREATE INDEX ix_post_details_group_id ON post_details (group_id);

CREATE INDEX ix_post_details_idempotency ON post_details (company_id, idempotency_key);

CREATE INDEX ix_post_details_social_account_id ON post_details (social_account_id);

CREATE TABLE post_schedule (
    id BIGINT NOT NULL AUTO_INCREMENT, 
    post_detail_id CHAR(36) NOT NULL, 
    run_at DATETIME(6) NOT NULL, 
    status ENUM('pending','processing','done','failed','cancelled','missed') NOT NULL DEFAULT 'pending', 
    locked_at DATETIME(6), 
    worker_id VARCHAR(128), 
    lock_token VARCHAR(32), 
    attempts INTEGER NOT NULL DEFAULT 0, 
    max_attempts INTEGER NOT NULL DEFAULT 3, 
    deferrals INTEGER NOT NULL DEFAULT 0, 
    last_error TEXT, 
    created_at DATETIME(6) NOT NULL, 
    updated_at DATETIME(6) NOT NULL, 
    CONSTRAINT pk_post_schedule PRIMARY KEY (id), 
    CONSTRAINT uq_post_schedule_post_detail_id UNIQUE (post_detail_id), 
    CONSTRAINT fk_post_schedule_post_detail_id FOREIGN KEY(post_detail_id) REFERENCES post_details (id) ON DELETE CASCADE
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_post_schedule_due ON post_schedule (status, run_at, id);

CREATE TABLE publish_attempts (
    id BIGINT NOT NULL AUTO_INCREMENT, 
    post_schedule_id BIGINT NOT NULL, 
    attempt INTEGER NOT NULL, 
    worker_id VARCHAR(128) NOT NULL, 
    started_at DATETIME(6) NOT NULL, 
    finished_at DATETIME(6), 
    outcome ENUM('published','retry','failed','deferred','unknown'), 
    http_status INTEGER, 
    error_code VARCHAR(64), 
    error_message TEXT, 
    CONSTRAINT pk_publish_attempts PRIMARY KEY (id), 
    CONSTRAINT fk_publish_attempts_post_schedule_id FOREIGN KEY(post_schedule_id) REFERENCES post_schedule (id) ON DELETE CASCADE
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_publish_attempts_schedule ON publish_attempts (post_schedule_id, attempt);

CREATE INDEX ix_publish_attempts_started_at ON publish_attempts (started_at);

CREATE TABLE worker_runs (
    id BIGINT NOT NULL AUTO_INCREMENT, 
    worker_id VARCHAR(128) NOT NULL, 
    started_at DATETIME(6) NOT NULL, 
    finished_at DATETIME(6), 
    recovered INTEGER NOT NULL DEFAULT 0, 
    claimed INTEGER NOT NULL DEFAULT 0, 
    published INTEGER NOT NULL DEFAULT 0, 
    retried INTEGER NOT NULL DEFAULT 0, 
    failed INTEGER NOT NULL DEFAULT 0, 
    deferred INTEGER NOT NULL DEFAULT 0, 
    CONSTRAINT pk_worker_runs PRIMARY KEY (id)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_worker_runs_started_at ON worker_runs (started_at);

INSERT INTO alembic_version (version_num) VALUES ('0001_initial');

-- Running upgrade 0001_initial -> 0002_api

CREATE TABLE idempotency_keys (
    id BIGINT NOT NULL AUTO_INCREMENT, 
    company_id CHAR(36) NOT NULL, 
    key_hash VARCHAR(64) NOT NULL, 
    request_hash VARCHAR(64) NOT NULL, 
    status_code INTEGER NOT NULL, 
    response_body JSON NOT NULL, 
    created_at DATETIME(6) NOT NULL, 
    CONSTRAINT pk_idempotency_keys PRIMARY KEY (id), 
    CONSTRAINT fk_idempotency_keys_company_id FOREIGN KEY(company_id) REFERENCES companies (id) ON DELETE CASCADE
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE UNIQUE INDEX uq_idempotency_keys_company_key ON idempotency_keys (company_id, key_hash);

UPDATE alembic_version SET version_num='0002_api' WHERE alembic_version.version_num = '0001_initial';

-- Running upgrade 0002_api -> 0003_publishers

ALTER TABLE post_schedule MODIFY status ENUM('pending','processing','done','failed','cancelled','missed','waiting') NOT NULL DEFAULT 'pending';

ALTER TABLE post_schedule ADD COLUMN platform_draft_id VARCHAR(255);

ALTER TABLE post_schedule ADD COLUMN deferred_since DATETIME(6);

ALTER TABLE post_schedule ADD COLUMN unknown_since DATETIME(6);

UPDATE alembic_version SET version_num='0003_publishers' WHERE alembic_version.version_num = '0002_api';

-- Running upgrade 0003_publishers -> 0004_company_timezone

ALTER TABLE companies ADD COLUMN timezone VARCHAR(64) NOT NULL DEFAULT 'UTC';

UPDATE alembic_version SET version_num='0004_company_timezone' WHERE alembic_version.version_num = '0003_publishers';

-- Running upgrade 0004_company_timezone -> 0005_long_text

ALTER TABLE post_details MODIFY content MEDIUMTEXT NOT NULL;

ALTER TABLE post_details MODIFY error_message MEDIUMTEXT NULL;

ALTER TABLE post_schedule MODIFY last_error MEDIUMTEXT NULL;

ALTER TABLE publish_attempts MODIFY error_message MEDIUMTEXT NULL;

UPDATE alembic_version SET version_num='0005_long_text' WHERE alembic_version.version_num = '0004_company_timezone';

-- Running upgrade 0005_long_text -> 0006_jobs

CREATE TABLE jobs (
    id BIGINT NOT NULL AUTO_INCREMENT, 
    kind VARCHAR(64) NOT NULL, 
    company_id CHAR(36), 
    payload JSON NOT NULL, 
    run_at DATETIME(6) NOT NULL, 
    status ENUM('pending','processing','done','failed') NOT NULL DEFAULT 'pending', 
    locked_at DATETIME(6), 
    worker_id VARCHAR(128), 
    lock_token VARCHAR(32), 
    attempts INTEGER NOT NULL DEFAULT 0, 
    max_attempts INTEGER NOT NULL DEFAULT 3, 
    last_error TEXT, 
    dedupe_key VARCHAR(255), 
    created_at DATETIME(6) NOT NULL, 
    updated_at DATETIME(6) NOT NULL, 
    CONSTRAINT pk_jobs PRIMARY KEY (id), 
    CONSTRAINT uq_jobs_dedupe_key UNIQUE (dedupe_key), 
    CONSTRAINT fk_jobs_company_id FOREIGN KEY(company_id) REFERENCES companies (id) ON DELETE CASCADE
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_jobs_company_id ON jobs (company_id);

CREATE INDEX ix_jobs_due ON jobs (status, run_at, id);

UPDATE alembic_version SET version_num='0006_jobs' WHERE alembic_version.version_num = '0005_long_text';

-- Running upgrade 0006_jobs -> 0007_webhooks

CREATE TABLE webhooks (
    id CHAR(36) NOT NULL, 
    company_id CHAR(36) NOT NULL, 
    url VARCHAR(2048) NOT NULL, 
    events JSON NOT NULL, 
    secret_encrypted TEXT NOT NULL, 
    created_at DATETIME(6) NOT NULL, 
    disabled_at DATETIME(6), 
    CONSTRAINT pk_webhooks PRIMARY KEY (id), 
    CONSTRAINT fk_webhooks_company_id FOREIGN KEY(company_id) REFERENCES companies (id) ON DELETE CASCADE
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_webhooks_company_id ON webhooks (company_id);

CREATE TABLE webhook_deliveries (
    id CHAR(36) NOT NULL, 
    webhook_id CHAR(36) NOT NULL, 
    event VARCHAR(64) NOT NULL, 
    payload JSON NOT NULL, 
    attempt INTEGER NOT NULL DEFAULT 0, 
    status ENUM('pending','delivered','retrying','failed') NOT NULL DEFAULT 'pending', 
    http_status INTEGER, 
    error TEXT, 
    created_at DATETIME(6) NOT NULL, 
    delivered_at DATETIME(6), 
    CONSTRAINT pk_webhook_deliveries PRIMARY KEY (id), 
    CONSTRAINT fk_webhook_deliveries_webhook_id FOREIGN KEY(webhook_id) REFERENCES webhooks (id) ON DELETE CASCADE
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);

UPDATE alembic_version SET version_num='0007_webhooks' WHERE alembic_version.version_num = '0006_jobs';

-- Running upgrade 0007_webhooks -> 0008_more_values

ALTER TABLE social_accounts MODIFY platform ENUM('x','facebook','instagram','linkedin','sandbox','bluesky','mastodon','threads') NOT NULL;

ALTER TABLE post_details MODIFY status ENUM('pending','published','failed','cancelled','missed','draft') NOT NULL DEFAULT 'pending';

UPDATE alembic_version SET version_num='0008_more_values' WHERE alembic_version.version_num = '0007_webhooks';

-- Running upgrade 0008_more_values -> 0009_oauth

ALTER TABLE social_accounts ADD COLUMN refresh_token_encrypted TEXT;

ALTER TABLE social_accounts ADD COLUMN refresh_expires_at DATETIME(6);

ALTER TABLE social_accounts ADD COLUMN scopes VARCHAR(1024);

ALTER TABLE social_accounts ADD COLUMN auth_meta JSON;

ALTER TABLE social_accounts ADD COLUMN refreshed_at DATETIME(6);

ALTER TABLE social_accounts ADD COLUMN expiring_notified_at DATETIME(6);

ALTER TABLE social_accounts ADD COLUMN status_reason VARCHAR(1024);

CREATE TABLE oauth_states (
    state_hash VARCHAR(64) NOT NULL, 
    company_id CHAR(36) NOT NULL, 
    platform VARCHAR(32) NOT NULL, 
    verifier_encrypted TEXT, 
    extras JSON NOT NULL, 
    created_at DATETIME(6) NOT NULL, 
    expires_at DATETIME(6) NOT NULL, 
    used_at DATETIME(6), 
    CONSTRAINT pk_oauth_states PRIMARY KEY (state_hash), 
    CONSTRAINT fk_oauth_states_company_id FOREIGN KEY(company_id) REFERENCES companies (id) ON DELETE CASCADE
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_oauth_states_company_id ON oauth_states (company_id);

CREATE INDEX ix_oauth_states_created_at ON oauth_states (created_at);

CREATE TABLE oauth_apps (
    id BIGINT NOT NULL AUTO_INCREMENT, 
    platform VARCHAR(32) NOT NULL, 
    instance VARCHAR(255) NOT NULL, 
    client_id VARCHAR(255) NOT NULL, 
    client_secret_encrypted TEXT NOT NULL, 
    created_at DATETIME(6) NOT NULL, 
    CONSTRAINT pk_oauth_apps PRIMARY KEY (id)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE UNIQUE INDEX uq_oauth_apps_platform_instance ON oauth_apps (platform, instance);

UPDATE alembic_version SET version_num='0009_oauth' WHERE alembic_version.version_num = '0008_more_values';

-- Running upgrade 0009_oauth -> 0013_metrics

CREATE TABLE post_metrics (
    id BIGINT NOT NULL AUTO_INCREMENT, 
    post_detail_id CHAR(36) NOT NULL, 
    checkpoint VARCHAR(8) NOT NULL, 
    collected_at DATETIME(6) NOT NULL, 
    impressions BIGINT, 
    likes BIGINT, 
    comments BIGINT, 
    shares BIGINT, 
    saves BIGINT, 
    clicks BIGINT, 
    raw JSON NOT NULL, 
    CONSTRAINT pk_post_metrics PRIMARY KEY (id), 
    CONSTRAINT fk_post_metrics_post_detail_id FOREIGN KEY(post_detail_id) REFERENCES post_details (id) ON DELETE CASCADE
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE UNIQUE INDEX uq_post_metrics_checkpoint ON post_metrics (post_detail_id, checkpoint);

ALTER TABLE post_details ADD COLUMN evergreen BOOL NOT NULL DEFAULT false;

ALTER TABLE post_details ADD COLUMN evergreen_source_id CHAR(36);

CREATE INDEX ix_post_details_evergreen_source_id ON post_details (evergreen_source_id);

ALTER TABLE post_details ADD CONSTRAINT fk_post_details_evergreen_source_id FOREIGN KEY(evergreen_source_id) REFERENCES post_details (id) ON DELETE SET NULL;

CREATE TABLE evergreen_rules (
    id CHAR(36) NOT NULL, 
    company_id CHAR(36) NOT NULL, 
    account_ids JSON NOT NULL, 
    per_week INTEGER NOT NULL, 
    created_at DATETIME(6) NOT NULL, 
    CONSTRAINT pk_evergreen_rules PRIMARY KEY (id), 
    CONSTRAINT fk_evergreen_rules_company_id FOREIGN KEY(company_id) REFERENCES companies (id) ON DELETE CASCADE
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE INDEX ix_evergreen_rules_company_id ON evergreen_rules (company_id);

UPDATE alembic_version SET version_num='0013_metrics' WHERE alembic_version.version_num = '0009_oauth';

