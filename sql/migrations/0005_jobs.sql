-- 0005: background jobs other than publishing (prune first; refresh_token, deliver_webhook
-- later), claimed with the same SKIP LOCKED / lock_token discipline as post_schedule.
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
    dedupe_key    VARCHAR(255) NULL,
    created_at    DATETIME(6)  NOT NULL,
    updated_at    DATETIME(6)  NOT NULL,
    CONSTRAINT pk_jobs PRIMARY KEY (id),
    CONSTRAINT uq_jobs_dedupe_key UNIQUE (dedupe_key),
    CONSTRAINT fk_jobs_company_id FOREIGN KEY (company_id) REFERENCES companies (id) ON DELETE CASCADE,
    INDEX ix_jobs_company_id (company_id),
    INDEX ix_jobs_due (status, run_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
