-- Webhooks: subscriptions, the transactional outbox, and deliveries (as in the SQLite schema).

-- A subscription. tenant_id 0 is the platform's own scope (platform-wide
-- subscriptions, managed by platform agents); real tenants are positive, so
-- it never collides with one, and the key still starts with tenant_id.
CREATE TABLE webhooks (
    tenant_id             BIGINT  NOT NULL CHECK (tenant_id >= 0),
    id                    UUID    NOT NULL,
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
    previous_secret_until BIGINT,
    consecutive_failures  BIGINT  NOT NULL DEFAULT 0,
    created_by            BIGINT  NOT NULL,
    created_at            BIGINT  NOT NULL,
    updated_at            BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- The outbox: one row per committed change that some subscription of its
-- tenant (or the platform) may want, written in the change's transaction and
-- deleted when the worker fans it out into deliveries. It only ever holds
-- what is not yet fanned out. Read in pos order (taken at insert, which is
-- commit order within a session, since a session's changes are serialised by
-- its row lock).
CREATE TABLE webhook_outbox (
    tenant_id  BIGINT  NOT NULL,
    id         UUID    NOT NULL,
    kind       TEXT    NOT NULL,
    session_id UUID    NOT NULL,
    seq        BIGINT  NOT NULL,
    at         BIGINT  NOT NULL,
    pos        BIGINT  GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (tenant_id, id)
);

CREATE INDEX webhook_outbox_by_pos ON webhook_outbox (pos);

-- One event for one subscription: its state, attempts and last outcome.
-- tenant_id is the subscription's (0 for platform-wide ones), so a
-- subscription's log is one key range; event_tenant_id is the event's.
CREATE TABLE webhook_deliveries (
    tenant_id       BIGINT  NOT NULL,
    webhook_id      UUID    NOT NULL,
    id              UUID    NOT NULL,
    event_id        UUID    NOT NULL,
    event_type      TEXT    NOT NULL,
    event_tenant_id BIGINT  NOT NULL,
    session_id      UUID    NOT NULL,
    seq             BIGINT  NOT NULL,
    event_at        BIGINT  NOT NULL,
    -- queued: behind an earlier delivery of the same session; pending: due at
    -- next_attempt_at; inflight: claimed by a node until next_attempt_at (its
    -- lease); held: the subscription is paused or disabled; delivered; failed (given up).
    state           TEXT    NOT NULL CHECK (state IN ('queued', 'pending', 'inflight', 'held', 'delivered', 'failed')),
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    last_attempt_at BIGINT,
    response_status BIGINT,
    last_error      TEXT,
    duration_ms     BIGINT,
    delivered_at    BIGINT,
    redelivery_of   TEXT,
    created_at      BIGINT  NOT NULL,
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
