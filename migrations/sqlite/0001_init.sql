-- Sessions, messages and idempotency keys.
-- Ids are UUIDs (16-byte BLOBs), times are microseconds since the Unix epoch.
-- Every key starts with tenant_id, as on PostgreSQL (see docs/DESIGN.md).

CREATE TABLE sessions (
    tenant_id       INTEGER NOT NULL CHECK (tenant_id > 0),
    id              BLOB    NOT NULL,
    agent_id        INTEGER CHECK (agent_id > 0),
    status          TEXT    NOT NULL CHECK (status IN ('OPEN', 'CLOSED')),
    opened_by       INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    closed_at       INTEGER,
    -- Sequence of the last message, taken under the row lock on insert.
    last_seq        INTEGER NOT NULL DEFAULT 0,
    last_message_at INTEGER,
    PRIMARY KEY (tenant_id, id)
);

-- At most one OPEN session per tenant, held by the database under concurrency.
CREATE UNIQUE INDEX sessions_one_open_per_tenant ON sessions (tenant_id) WHERE status = 'OPEN';
CREATE INDEX sessions_by_tenant_created ON sessions (tenant_id, created_at, id);
CREATE INDEX sessions_by_agent ON sessions (agent_id, status) WHERE agent_id IS NOT NULL;

CREATE TABLE messages (
    tenant_id      INTEGER NOT NULL,
    session_id     BLOB    NOT NULL,
    seq            INTEGER NOT NULL,
    id             BLOB    NOT NULL,
    sender_id      INTEGER NOT NULL,
    message        TEXT    NOT NULL,
    -- Unicode-lowercased copy that search matches against.
    message_folded TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, session_id, seq),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions (tenant_id, id)
);

CREATE INDEX messages_by_sender ON messages (tenant_id, session_id, sender_id, seq);
CREATE INDEX messages_by_time ON messages (tenant_id, session_id, created_at);

-- Substring search: a trigram index over the folded text, kept in step by triggers.
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    message_folded,
    content = 'messages',
    content_rowid = 'rowid',
    tokenize = 'trigram case_sensitive 1'
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, message_folded) VALUES (new.rowid, new.message_folded);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, message_folded) VALUES ('delete', old.rowid, old.message_folded);
END;

CREATE TABLE idempotency_keys (
    tenant_id   INTEGER NOT NULL,
    session_id  BLOB    NOT NULL,
    sender_id   INTEGER NOT NULL,
    idem_key    TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    message_seq INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, session_id, sender_id, idem_key),
    FOREIGN KEY (tenant_id, session_id, message_seq) REFERENCES messages (tenant_id, session_id, seq)
);
