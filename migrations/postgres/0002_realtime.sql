-- Real time: persisted session events, read state, presence, stream tickets.

-- Session changes (opened, assigned, closed) share the session's sequence
-- with its messages, so one number orders everything a subscriber replays.
CREATE TABLE session_events (
    tenant_id  BIGINT NOT NULL,
    session_id UUID    NOT NULL,
    seq        BIGINT NOT NULL,
    id         UUID    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('opened', 'assigned', 'closed')),
    agent_id   BIGINT,
    status     TEXT    NOT NULL CHECK (status IN ('OPEN', 'CLOSED')),
    at         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, session_id, seq),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions (tenant_id, id)
);

-- Each participant's last read message per session.
CREATE TABLE read_state (
    tenant_id  BIGINT NOT NULL,
    session_id UUID    NOT NULL,
    user_id    BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    message_id UUID    NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, session_id, user_id),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions (tenant_id, id)
);

-- Inbox: open sessions across tenants, newest activity first.
CREATE INDEX sessions_open_by_activity ON sessions (updated_at, tenant_id, id) WHERE status = 'OPEN';

-- Presence is platform-wide (an agent is one person across tenants), so these
-- tables are keyed by agent; on a sharded cluster they are reference tables.
-- One row per source keeping an agent online: a node's live streams, or the agent's own PUT.
CREATE TABLE agent_presence (
    agent_id   BIGINT NOT NULL,
    source     TEXT    NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (agent_id, source)
);

-- The last announced state, so exactly one node announces each change.
CREATE TABLE agent_status (
    agent_id   BIGINT NOT NULL PRIMARY KEY,
    online     BIGINT NOT NULL CHECK (online IN (0, 1)),
    -- Tenants the agent may serve: '*' for a platform agent, else ',12,13,'.
    scope      TEXT    NOT NULL,
    changed_at BIGINT NOT NULL
);

-- Single-use stream tickets, stored hashed.
CREATE TABLE realtime_tickets (
    tenant_id   BIGINT NOT NULL,
    ticket_hash TEXT    NOT NULL,
    identity    TEXT    NOT NULL,
    token_exp   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, ticket_hash)
);
