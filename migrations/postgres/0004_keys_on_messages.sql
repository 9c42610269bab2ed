-- A send's idempotency key lives on its message row: the message and its
-- key are one row written by one statement, so a keyed send costs what a
-- plain one does (the separate table cost a statement per batch). The
-- unique index is what the batch's key lookup reads.
ALTER TABLE messages ADD COLUMN idem_key TEXT;
ALTER TABLE messages ADD COLUMN idem_fingerprint TEXT;

UPDATE messages m SET idem_key = k.idem_key, idem_fingerprint = k.fingerprint
FROM idempotency_keys k
WHERE m.tenant_id = k.tenant_id AND m.session_id = k.session_id AND m.seq = k.message_seq;

CREATE UNIQUE INDEX messages_by_idem_key ON messages (tenant_id, session_id, sender_id, idem_key)
    WHERE idem_key IS NOT NULL;

DROP TABLE idempotency_keys;
