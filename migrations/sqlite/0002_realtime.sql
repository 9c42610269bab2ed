-- Real time: persisted session events, read state, presence, stream tickets.

-- Session changes (opened, assigned, closed) share the session's sequence
-- with its messages, so one number orders everything a subscriber replays.
CREATE TABLE session_events (
    tenant_id  INTEGER NOT NULL,
    session_id BLOB    NOT NULL,
    seq        INTEGER NOT NULL,
    id         BLOB    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('opened', 'assigned', 'closed')),
    agent_id   INTEGER,
    status     TEXT    NOT NULL CHECK (status IN ('OPEN', 'CLOSED')),
    at         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, session_id, seq),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions (tenant_id, id)
);

-- Each participant's last read message per session.
CREATE TABLE read_state (
    tenant_id  INTEGER NOT NULL,
    session_id BLOB    NOT NULL,
    user_id    INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    message_id BLOB    NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, session_id, user_id),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions (tenant_id, id)
);

-- Inbox: open sessions across tenants, newest activity first.
CREATE INDEX sessions_open_by_activity ON sessions (updated_at, tenant_id, id) WHERE status = 'OPEN';

-- Presence is platform-wide (an agent is one person across tenants), so these
-- tables are keyed by agent; on a sharded cluster they are reference tables.
-- One row per source keeping an agent online: a node's live streams, or the agent's own PUT.
CREATE TABLE agent_presence (
    agent_id   INTEGER NOT NULL,
    source     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (agent_id, source)
);

-- The last announced state, so exactly one node announces each change.
CREATE TABLE agent_status (
    agent_id   INTEGER NOT NULL PRIMARY KEY,
    online     INTEGER NOT NULL CHECK (online IN (0, 1)),
    -- Tenants the agent may serve: '*' for a platform agent, else ',12,13,'.
    scope      TEXT    NOT NULL,
    changed_at INTEGER NOT NULL
);

-- Single-use stream tickets, stored hashed.
CREATE TABLE realtime_tickets (
    tenant_id   INTEGER NOT NULL,
    ticket_hash TEXT    NOT NULL,
    identity    TEXT    NOT NULL,
    token_exp   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, ticket_hash)
);
