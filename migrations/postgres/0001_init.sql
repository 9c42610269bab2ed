-- Sessions, messages and idempotency keys.
-- Ids are UUIDs, times are microseconds since the Unix epoch (BIGINT), so both
-- backends compare integers and round-trip exactly. Every primary, unique and
-- foreign key includes tenant_id so the schema can be distributed by tenant.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE sessions (
    tenant_id       BIGINT NOT NULL CHECK (tenant_id > 0),
    id              UUID   NOT NULL,
    agent_id        BIGINT CHECK (agent_id > 0),
    status          TEXT   NOT NULL CHECK (status IN ('OPEN', 'CLOSED')),
    opened_by       BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    closed_at       BIGINT,
    -- Sequence of the last message, taken under the row lock on insert.
    last_seq        BIGINT NOT NULL DEFAULT 0,
    last_message_at BIGINT,
    PRIMARY KEY (tenant_id, id)
);

-- At most one OPEN session per tenant, held by the database across nodes.
CREATE UNIQUE INDEX sessions_one_open_per_tenant ON sessions (tenant_id) WHERE status = 'OPEN';
CREATE INDEX sessions_by_tenant_created ON sessions (tenant_id, created_at, id);
CREATE INDEX sessions_by_agent ON sessions (agent_id, status) WHERE agent_id IS NOT NULL;

CREATE TABLE messages (
    tenant_id      BIGINT NOT NULL,
    session_id     UUID   NOT NULL,
    seq            BIGINT NOT NULL,
    id             UUID   NOT NULL,
    sender_id      BIGINT NOT NULL,
    message        TEXT   NOT NULL,
    -- Unicode-lowercased copy that search matches against.
    message_folded TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, session_id, seq),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions (tenant_id, id)
);

CREATE INDEX messages_by_sender ON messages (tenant_id, session_id, sender_id, seq);
CREATE INDEX messages_by_time ON messages (tenant_id, session_id, created_at);
-- Substring search (LIKE '%term%') served by a trigram index.
CREATE INDEX messages_folded_trgm ON messages USING gin (message_folded gin_trgm_ops);

CREATE TABLE idempotency_keys (
    tenant_id   BIGINT NOT NULL,
    session_id  UUID   NOT NULL,
    sender_id   BIGINT NOT NULL,
    idem_key    TEXT   NOT NULL,
    fingerprint TEXT   NOT NULL,
    message_seq BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, session_id, sender_id, idem_key),
    FOREIGN KEY (tenant_id, session_id, message_seq) REFERENCES messages (tenant_id, session_id, seq)
);
