-- The whole schema as it stands after every file in sql/migrations/ (tests/test_schema.py
-- proves the two agree, and that both equal app/models.py). Read this; migrate with those.


CREATE TABLE companies (
    id          CHAR(36)     NOT NULL,
    name        VARCHAR(200) NOT NULL,
    timezone    VARCHAR(64)  NOT NULL DEFAULT 'UTC',  -- IANA zone the dashboard's calendar uses
    created_at  DATETIME(6)  NOT NULL,
    CONSTRAINT pk_companies PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- An API key is shown once at creation; only its SHA-256 is kept.
CREATE TABLE api_keys (
    id          CHAR(36)    NOT NULL,
    company_id  CHAR(36)    NOT NULL,
    prefix      VARCHAR(16) NOT NULL,
    key_hash    VARCHAR(64) NOT NULL,
    created_at  DATETIME(6) NOT NULL,
    revoked_at  DATETIME(6) NULL,
    CONSTRAINT pk_api_keys PRIMARY KEY (id),
    CONSTRAINT uq_api_keys_key_hash UNIQUE (key_hash),
    CONSTRAINT fk_api_keys_company_id FOREIGN KEY (company_id) REFERENCES companies (id) ON DELETE CASCADE,
    INDEX ix_api_keys_company_id (company_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- An agency's customers: optional owner of accounts and posts.
CREATE TABLE clients (
    id          CHAR(36)     NOT NULL,
    company_id  CHAR(36)     NOT NULL,
    name        VARCHAR(200) NOT NULL,
    created_at  DATETIME(6)  NOT NULL,
    CONSTRAINT pk_clients PRIMARY KEY (id),
    CONSTRAINT fk_clients_company_id FOREIGN KEY (company_id) REFERENCES companies (id) ON DELETE CASCADE,
    INDEX ix_clients_company_id (company_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE social_accounts (
    id                      CHAR(36)     NOT NULL,
    company_id              CHAR(36)     NOT NULL,
    client_id               CHAR(36)     NULL,
    platform                ENUM('x','facebook','instagram','linkedin','sandbox') NOT NULL,
    external_id             VARCHAR(255) NOT NULL,  -- page id, IG user id, person/org URN, X user id
    display_name            VARCHAR(255) NULL,
    access_token_encrypted  TEXT         NOT NULL,
    token_expires_at        DATETIME(6)  NULL,
    status                  ENUM('active','needs_reconnect') NOT NULL DEFAULT 'active',
    created_at              DATETIME(6)  NOT NULL,
    updated_at              DATETIME(6)  NOT NULL,
    CONSTRAINT pk_social_accounts PRIMARY KEY (id),
    CONSTRAINT fk_social_accounts_company_id FOREIGN KEY (company_id) REFERENCES companies (id) ON DELETE CASCADE,
    CONSTRAINT fk_social_accounts_client_id FOREIGN KEY (client_id) REFERENCES clients (id) ON DELETE SET NULL,
    UNIQUE INDEX uq_social_accounts_external (company_id, platform, external_id),
    INDEX ix_social_accounts_client_id (client_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- What to publish, and what became of it. One row per target account.
CREATE TABLE post_details (
    id                 CHAR(36)     NOT NULL,
    company_id         CHAR(36)     NOT NULL,
    client_id          CHAR(36)     NULL,
    social_account_id  CHAR(36)     NOT NULL,
    group_id           CHAR(36)     NOT NULL,  -- one per request: a post sent to several accounts
    content            TEXT         NOT NULL,
    media_urls         JSON         NOT NULL,
    timezone           VARCHAR(64)  NULL,      -- the IANA zone the user scheduled in, if any
    status             ENUM('pending','published','failed','cancelled','missed') NOT NULL DEFAULT 'pending',
    platform_post_id   VARCHAR(255) NULL,
    error_message      TEXT         NULL,
    published_at       DATETIME(6)  NULL,
    idempotency_key    VARCHAR(255) NULL,
    created_at         DATETIME(6)  NOT NULL,
    updated_at         DATETIME(6)  NOT NULL,
    CONSTRAINT pk_post_details PRIMARY KEY (id),
    CONSTRAINT fk_post_details_company_id FOREIGN KEY (company_id) REFERENCES companies (id) ON DELETE CASCADE,
    CONSTRAINT fk_post_details_client_id FOREIGN KEY (client_id) REFERENCES clients (id) ON DELETE SET NULL,
    CONSTRAINT fk_post_details_social_account_id FOREIGN KEY (social_account_id) REFERENCES social_accounts (id) ON DELETE CASCADE,
    INDEX ix_post_details_client_id (client_id),
    INDEX ix_post_details_company_status (company_id, status),
    INDEX ix_post_details_group_id (group_id),
    INDEX ix_post_details_idempotency (company_id, idempotency_key),
    INDEX ix_post_details_social_account_id (social_account_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The queue. The due query is a range scan of ix_post_schedule_due at any table size.
CREATE TABLE post_schedule (
    id              BIGINT       NOT NULL AUTO_INCREMENT,
    post_detail_id  CHAR(36)     NOT NULL,
    run_at          DATETIME(6)  NOT NULL,
    status          ENUM('pending','processing','done','failed','cancelled','missed','waiting') NOT NULL DEFAULT 'pending',
    locked_at       DATETIME(6)  NULL,
    worker_id       VARCHAR(128) NULL,
    lock_token      VARCHAR(32)  NULL,      -- fencing token: outcome writes must match it
    attempts        INTEGER      NOT NULL DEFAULT 0,  -- counted at claim time
    max_attempts    INTEGER      NOT NULL DEFAULT 3,
    deferrals       INTEGER      NOT NULL DEFAULT 0,  -- rate-limit deferrals, which spend no attempt
    last_error      TEXT         NULL,
    platform_draft_id VARCHAR(255) NULL,    -- e.g. an Instagram container a retry reuses
    deferred_since  DATETIME(6)  NULL,      -- run_at before the first rate-limit deferral
    unknown_since   DATETIME(6)  NULL,      -- an attempt ended unknown: look before posting
    created_at      DATETIME(6)  NOT NULL,
    updated_at      DATETIME(6)  NOT NULL,
    CONSTRAINT pk_post_schedule PRIMARY KEY (id),
    CONSTRAINT uq_post_schedule_post_detail_id UNIQUE (post_detail_id),
    CONSTRAINT fk_post_schedule_post_detail_id FOREIGN KEY (post_detail_id) REFERENCES post_details (id) ON DELETE CASCADE,
    INDEX ix_post_schedule_due (status, run_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per attempt; outcome NULL while in flight, 'unknown' when recovery found it orphaned.
CREATE TABLE publish_attempts (
    id                BIGINT       NOT NULL AUTO_INCREMENT,
    post_schedule_id  BIGINT       NOT NULL,
    attempt           INTEGER      NOT NULL,
    worker_id         VARCHAR(128) NOT NULL,
    started_at        DATETIME(6)  NOT NULL,
    finished_at       DATETIME(6)  NULL,
    outcome           ENUM('published','retry','failed','deferred','unknown') NULL,
    http_status       INTEGER      NULL,
    error_code        VARCHAR(64)  NULL,
    error_message     TEXT         NULL,
    CONSTRAINT pk_publish_attempts PRIMARY KEY (id),
    CONSTRAINT fk_publish_attempts_post_schedule_id FOREIGN KEY (post_schedule_id) REFERENCES post_schedule (id) ON DELETE CASCADE,
    INDEX ix_publish_attempts_schedule (post_schedule_id, attempt),
    INDEX ix_publish_attempts_started_at (started_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per worker run, for the dashboard and for "is cron still running?".
CREATE TABLE worker_runs (
    id          BIGINT       NOT NULL AUTO_INCREMENT,
    worker_id   VARCHAR(128) NOT NULL,
    started_at  DATETIME(6)  NOT NULL,
    finished_at DATETIME(6)  NULL,
    recovered   INTEGER      NOT NULL DEFAULT 0,
    claimed     INTEGER      NOT NULL DEFAULT 0,
    published   INTEGER      NOT NULL DEFAULT 0,
    retried     INTEGER      NOT NULL DEFAULT 0,
    failed      INTEGER      NOT NULL DEFAULT 0,
    deferred    INTEGER      NOT NULL DEFAULT 0,
    CONSTRAINT pk_worker_runs PRIMARY KEY (id),
    INDEX ix_worker_runs_started_at (started_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Idempotency-Key on POST /schedule-post: the first response is kept, written in the same
-- transaction as the posts it created, so a repeat returns it and creates nothing.
CREATE TABLE idempotency_keys (
    id               BIGINT       NOT NULL AUTO_INCREMENT,
    company_id       CHAR(36)     NOT NULL,
    key_hash         VARCHAR(64)  NOT NULL,  -- SHA-256 of the key: exact match, whatever the collation
    request_hash     VARCHAR(64)  NOT NULL,  -- SHA-256 of the canonical JSON body
    status_code      INTEGER      NOT NULL,
    response_body    JSON         NOT NULL,
    created_at       DATETIME(6)  NOT NULL,
    CONSTRAINT pk_idempotency_keys PRIMARY KEY (id),
    CONSTRAINT fk_idempotency_keys_company_id FOREIGN KEY (company_id) REFERENCES companies (id) ON DELETE CASCADE,
    UNIQUE INDEX uq_idempotency_keys_company_key (company_id, key_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Background jobs other than publishing, claimed like post_schedule (SKIP LOCKED, lock_token).
CREATE TABLE jobs (
    id            BIGINT       NOT NULL AUTO_INCREMENT,
    kind          VARCHAR(64)  NOT NULL,
    company_id    CHAR(36)     NULL,
    payload       JSON         NOT NULL,
    run_at        DATETIME(6)  NOT NULL,
    status        ENUM('pending','processing','done','failed') NOT NULL DEFAULT 'pending',
    locked_at     DATETIME(6)  NULL,
    worker_id     VARCHAR(128) NULL,
    lock_token    VARCHAR(32)  NULL,
    attempts      INTEGER      NOT NULL DEFAULT 0,
    max_attempts  INTEGER      NOT NULL DEFAULT 3,
    last_error    TEXT         NULL,
    dedupe_key    VARCHAR(255) NULL,       -- one job per key, e.g. prune:2026-11-23
    created_at    DATETIME(6)  NOT NULL,
    updated_at    DATETIME(6)  NOT NULL,
    CONSTRAINT pk_jobs PRIMARY KEY (id),
    CONSTRAINT uq_jobs_dedupe_key UNIQUE (dedupe_key),
    CONSTRAINT fk_jobs_company_id FOREIGN KEY (company_id) REFERENCES companies (id) ON DELETE CASCADE,
    INDEX ix_jobs_company_id (company_id),
    INDEX ix_jobs_due (status, run_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Which files of sql/migrations have been applied (written by `scheduler db init`).
CREATE TABLE webhooks (
    id                CHAR(36)      NOT NULL,
    company_id        CHAR(36)      NOT NULL,
    url               VARCHAR(2048) NOT NULL,
    events            JSON          NOT NULL,
    secret_encrypted  TEXT          NOT NULL,
    created_at        DATETIME(6)   NOT NULL,
    disabled_at       DATETIME(6)   NULL,
    CONSTRAINT pk_webhooks PRIMARY KEY (id),
    CONSTRAINT fk_webhooks_company_id FOREIGN KEY (company_id) REFERENCES companies (id) ON DELETE CASCADE,
    INDEX ix_webhooks_company_id (company_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE webhook_deliveries (
    id            CHAR(36)     NOT NULL,
    webhook_id    CHAR(36)     NOT NULL,
    event         VARCHAR(64)  NOT NULL,
    payload       JSON         NOT NULL,
    attempt       INTEGER      NOT NULL DEFAULT 0,
    status        ENUM('pending','delivered','retrying','failed') NOT NULL DEFAULT 'pending',
    http_status   INTEGER      NULL,
    error         TEXT         NULL,
    created_at    DATETIME(6)  NOT NULL,
    delivered_at  DATETIME(6)  NULL,
    CONSTRAINT pk_webhook_deliveries PRIMARY KEY (id),
    CONSTRAINT fk_webhook_deliveries_webhook_id FOREIGN KEY (webhook_id) REFERENCES webhooks (id) ON DELETE CASCADE,
    INDEX ix_webhook_deliveries_webhook (webhook_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE schema_migrations (
    version     VARCHAR(64) NOT NULL,
    applied_at  DATETIME(6) NOT NULL,
    CONSTRAINT pk_schema_migrations PRIMARY KEY (version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
