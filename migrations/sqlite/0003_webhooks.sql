-- Webhooks: subscriptions, the transactional outbox, and deliveries.

-- A subscription. tenant_id 0 is the platform's own scope (platform-wide
-- subscriptions, managed by platform agents); real tenants are positive, so
-- it never collides with one, and the key still starts with tenant_id.
CREATE TABLE webhooks (
    tenant_id             INTEGER NOT NULL CHECK (tenant_id >= 0),
    id                    BLOB    NOT NULL,
    url                   TEXT    NOT NULL,
    -- Comma-separated event types, e.g. 'message.created,session.closed'.
    events                TEXT    NOT NULL,
    -- active; paused (by the server after repeated failures, see paused_reason); disabled (by a user).
    state                 TEXT    NOT NULL CHECK (state IN ('active', 'paused', 'disabled')),
    paused_reason         TEXT,
    description           TEXT,
    -- whsec_<base64>: kept in clear because every delivery is signed with it.
    secret                TEXT    NOT NULL,
    -- The secret before the last rotation, still signing until previous_secret_until.
    previous_secret       TEXT,
    previous_secret_until INTEGER,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    created_by            INTEGER NOT NULL,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- The outbox: one row per committed change that some subscription of its
-- tenant (or the platform) may want, written in the change's transaction and
-- deleted when the worker fans it out into deliveries. It only ever holds
-- what is not yet fanned out. Read in rowid order (insertion order, which is
-- commit order within a session, since a session's changes are serialised by
-- its row lock).
CREATE TABLE webhook_outbox (
    tenant_id  INTEGER NOT NULL,
    id         BLOB    NOT NULL,
    kind       TEXT    NOT NULL,
    session_id BLOB    NOT NULL,
    seq        INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- One event for one subscription: its state, attempts and last outcome.
-- tenant_id is the subscription's (0 for platform-wide ones), so a
-- subscription's log is one key range; event_tenant_id is the event's.
CREATE TABLE webhook_deliveries (
    tenant_id       INTEGER NOT NULL,
    webhook_id      BLOB    NOT NULL,
    id              BLOB    NOT NULL,
    event_id        BLOB    NOT NULL,
    event_type      TEXT    NOT NULL,
    event_tenant_id INTEGER NOT NULL,
    session_id      BLOB    NOT NULL,
    seq             INTEGER NOT NULL,
    event_at        INTEGER NOT NULL,
    -- queued: behind an earlier delivery of the same session; pending: due at
    -- next_attempt_at; inflight: claimed by a node until next_attempt_at (its
    -- lease); held: the subscription is paused or disabled; delivered; failed (given up).
    state           TEXT    NOT NULL CHECK (state IN ('queued', 'pending', 'inflight', 'held', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    last_attempt_at INTEGER,
    response_status INTEGER,
    last_error      TEXT,
    duration_ms     INTEGER,
    delivered_at    INTEGER,
    redelivery_of   TEXT,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, webhook_id, id),
    FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks (tenant_id, id) ON DELETE CASCADE
);

-- What is due: only the head of each session's chain is pending, so a
-- backlog behind a failing receiver is not in this index.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state IN ('pending', 'inflight');
-- Each subscription's per-session chain, in session order.
CREATE INDEX webhook_deliveries_chain ON webhook_deliveries (tenant_id, webhook_id, session_id, state, seq);
-- Retention.
CREATE INDEX webhook_deliveries_by_age ON webhook_deliveries (created_at);
