-- 0002: what the HTTP API needs beyond DESIGN.md's tables.

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
