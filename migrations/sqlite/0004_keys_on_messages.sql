-- A send's idempotency key lives on its message row (as in the PostgreSQL
-- schema): one row, one statement; the unique index serves the lookup.
ALTER TABLE messages ADD COLUMN idem_key TEXT;
ALTER TABLE messages ADD COLUMN idem_fingerprint TEXT;

UPDATE messages SET
    idem_key = (SELECT k.idem_key FROM idempotency_keys k
                WHERE k.tenant_id = messages.tenant_id AND k.session_id = messages.session_id
                  AND k.message_seq = messages.seq),
    idem_fingerprint = (SELECT k.fingerprint FROM idempotency_keys k
                WHERE k.tenant_id = messages.tenant_id AND k.session_id = messages.session_id
                  AND k.message_seq = messages.seq)
WHERE EXISTS (SELECT 1 FROM idempotency_keys k
              WHERE k.tenant_id = messages.tenant_id AND k.session_id = messages.session_id
                AND k.message_seq = messages.seq);

CREATE UNIQUE INDEX messages_by_idem_key ON messages (tenant_id, session_id, sender_id, idem_key)
    WHERE idem_key IS NOT NULL;

DROP TABLE idempotency_keys;
