-- 0006: webhooks per company and the history of their deliveries (sent by deliver_webhook jobs).
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
