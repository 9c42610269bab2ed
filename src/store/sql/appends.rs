//! Group commit of messages. Sends queue for a writer task, which takes
//! every send waiting and commits them in one transaction: a handful of
//! statements for the whole batch (lock the sessions, look up retried keys,
//! one multi-row insert), one COMMIT and one fsync, then each caller gets its
//! own answer. While a batch commits the next one gathers, so the busier the
//! server, the larger the batches and the cheaper each message.
//!
//! What a single-message transaction guaranteed still holds: sequence
//! numbers are taken under the sessions' row locks in the committing
//! transaction (so sequence order is commit order), `created_at` is strictly
//! increasing along it, a known idempotency key replays (also within a
//! batch), and a caller is answered only after its batch committed.

use super::dialect::Dialect;
use super::query::{QueryBuilder, Record};
use super::rows::message_from_row;
use super::{Append, SqlStore};
use crate::domain::event::Notice;
use crate::domain::ids::{SessionId, TenantId, UserId};
use crate::domain::message::{Appended, Message, NewMessage};
use crate::domain::session::SessionStatus;
use crate::domain::time::Timestamp;
use crate::domain::webhook::{EventType, OutboxEvent};
use crate::store::StoreError;
use crate::store::commit_gate::CommitGate;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use tokio::sync::{mpsc, oneshot};

/// Most sends one transaction takes.
const MAX_BATCH: usize = 256;
/// Sends that may wait for a writer before senders wait too.
const QUEUE: usize = 4_096;

/// A session as a batch sees it, under its row lock.
struct Locked {
    open: bool,
    last_seq: i64,
    last_message_at: Option<Timestamp>,
    touched: bool,
}

type Key = (TenantId, SessionId);
type IdemKey = (TenantId, SessionId, UserId, String);

/// How one batch ended.
enum Batched {
    /// Committed (or nothing to write): every send's answer, in order.
    Done(Vec<Result<Appended, StoreError>>),
    /// Some sends were called off meanwhile: run the batch again without them.
    CalledOff,
}

/// The same error for every send of a failed batch.
fn shared(err: &StoreError) -> StoreError {
    match err {
        StoreError::CommitUnknown { transaction, cause } => {
            StoreError::CommitUnknown { transaction: *transaction, cause: anyhow::anyhow!("{cause}") }
        }
        StoreError::Unreachable(cause) => StoreError::Unreachable(anyhow::anyhow!("{cause}")),
        StoreError::CalledOff => StoreError::CalledOff,
        other => StoreError::Unavailable(anyhow::anyhow!("{other}")),
    }
}

impl<DB: Dialect> SqlStore<DB> {
    /// Starts the writer tasks; sends then go through them.
    pub fn start_writers(self: &Arc<Self>) {
        let mut senders = Vec::with_capacity(DB::WRITERS);
        for _ in 0..DB::WRITERS.max(1) {
            let (tx, rx) = mpsc::channel(QUEUE);
            senders.push(tx);
            let task = tokio::spawn(write_batches(Arc::downgrade(self), rx));
            self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(task);
        }
        let _ = self.appends.set(senders);
    }

    /// Queues a send for its writer (sessions are spread over the writers,
    /// one session always to the same one) and waits for its batch.
    pub(super) async fn append_batched(&self, new: NewMessage) -> Result<Appended, StoreError> {
        let gate = crate::store::commit_gate::current();
        let (reply, answer) = oneshot::channel();
        let append = Append { new, gate, reply };
        match self.appends.get() {
            Some(writers) if !writers.is_empty() => {
                use std::hash::{Hash, Hasher};
                let mut h = std::hash::DefaultHasher::new();
                (append.new.tenant_id, append.new.session_id).hash(&mut h);
                let writer = &writers[(h.finish() as usize) % writers.len()];
                writer.send(append).await.map_err(|_| StoreError::Unavailable(anyhow::anyhow!("writer stopped")))?;
            }
            // No writers (a store opened for one task): commit here.
            _ => self.commit_batch(vec![append]).await,
        }
        answer.await.map_err(|_| StoreError::Unavailable(anyhow::anyhow!("writer stopped")))?
    }

    /// Commits a batch and answers each send; a batch that fails for one
    /// send's sake is retried one send at a time, so the others still commit.
    async fn commit_batch(&self, mut batch: Vec<Append>) {
        loop {
            batch.retain_mut(|a| {
                let off = a.gate.as_ref().is_some_and(CommitGate::called_off);
                if off {
                    let (reply, _) = oneshot::channel();
                    let _ = std::mem::replace(&mut a.reply, reply).send(Err(StoreError::CalledOff));
                }
                !off
            });
            if batch.is_empty() {
                return;
            }
            match self.append_batch(&batch).await {
                Ok(Batched::Done(answers)) => {
                    for (append, answer) in batch.into_iter().zip(answers) {
                        let _ = append.reply.send(answer);
                    }
                    return;
                }
                // Loop: the called-off sends leave at the top.
                Ok(Batched::CalledOff) => continue,
                Err(err @ StoreError::Internal(_)) if batch.len() > 1 => {
                    tracing::warn!(error = %err, sends = batch.len(), "batch failed; committing its sends one by one");
                    for append in batch {
                        Box::pin(self.commit_batch(vec![append])).await;
                    }
                    return;
                }
                Err(err) => {
                    for append in batch {
                        let _ = append.reply.send(Err(shared(&err)));
                    }
                    return;
                }
            }
        }
    }

    /// One transaction for every send of the batch.
    async fn append_batch(&self, batch: &[Append]) -> Result<Batched, StoreError> {
        let mut tx = self.db.begin().await?;
        let mut sessions = self.lock_sessions(&mut tx, batch).await?;
        let mut known = self.known_keys(&mut tx, batch).await?;
        let mut answers = Vec::with_capacity(batch.len());
        let mut created = Vec::new();
        for (i, append) in batch.iter().enumerate() {
            let new = &append.new;
            let idem_key = new
                .idempotency
                .as_ref()
                .map(|idem| (new.tenant_id, new.session_id, new.sender_id, idem.key.as_str().to_owned()));
            // A retry (of a committed send, or of one earlier in this batch).
            if let (Some(k), Some(idem)) = (&idem_key, &new.idempotency) {
                if let Some((fingerprint, original)) = known.get(k) {
                    answers.push(if *fingerprint == idem.fingerprint {
                        Ok(Appended::Replayed(original.clone()))
                    } else {
                        Err(StoreError::IdempotencyKeyReused)
                    });
                    continue;
                }
            }
            let Some(session) = sessions.get_mut(&(new.tenant_id, new.session_id)).filter(|s| s.open) else {
                answers.push(Err(StoreError::SessionNotOpen));
                continue;
            };
            session.last_seq += 1;
            let created_at = Timestamp::next_after(session.last_message_at, new.now);
            session.last_message_at = Some(created_at);
            session.touched = true;
            let message = Message {
                id: new.id,
                tenant_id: new.tenant_id,
                session_id: new.session_id,
                seq: session.last_seq,
                sender_id: new.sender_id,
                message: new.text.as_str().to_owned(),
                created_at,
            };
            if let (Some(k), Some(idem)) = (idem_key, &new.idempotency) {
                known.insert(k, (idem.fingerprint.clone(), message.clone()));
            }
            created.push(i);
            answers.push(Ok(Appended::Created(message)));
        }
        if created.is_empty() {
            return Ok(Batched::Done(answers));
        }
        self.write_batch(&mut tx, batch, &answers, &sessions).await?;
        // Webhook events, in the same transaction: one exists if and only if its message committed.
        let events: Vec<OutboxEvent> = answers
            .iter()
            .filter_map(|answer| match answer {
                Ok(Appended::Created(m)) => Some(OutboxEvent {
                    id: m.id.uuid(),
                    kind: EventType::MessageCreated,
                    tenant_id: m.tenant_id,
                    session_id: m.session_id,
                    seq: m.seq,
                    at: m.created_at,
                }),
                _ => None,
            })
            .collect();
        self.record_outbox_many(&mut tx, &events).await?;
        // The last moment a send can be left out: past its gate, it commits with the batch.
        let called_off = created.iter().filter(|&&i| batch[i].gate.as_ref().is_some_and(|gate| !gate.pass_now()));
        if called_off.count() > 0 {
            return Ok(Batched::CalledOff);
        }
        let notices: Vec<Notice> = sessions
            .iter()
            .filter(|(_, s)| s.touched)
            .map(|(&(tenant, session), s)| Notice::Committed {
                tenant,
                session,
                seq: s.last_seq,
                session_change: false,
            })
            .collect();
        self.commit_announcing(tx, &notices).await?;
        Ok(Batched::Done(answers))
    }

    /// Locks the batch's sessions (in one order on every node, so batches
    /// never deadlock) and reads where their sequences stand.
    async fn lock_sessions(
        &self,
        tx: &mut DB::Connection,
        batch: &[Append],
    ) -> Result<BTreeMap<Key, Locked>, StoreError> {
        let keys: Vec<Key> = {
            let mut keys: Vec<Key> = batch.iter().map(|a| (a.new.tenant_id, a.new.session_id)).collect();
            keys.sort();
            keys.dedup();
            keys
        };
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT tenant_id, id, status, last_seq, last_message_at FROM sessions WHERE (tenant_id, id) IN (VALUES ",
        );
        for (i, (tenant, session)) in keys.iter().enumerate() {
            if i > 0 {
                qb.push(", ");
            }
            qb.push_values(vec![tenant.get().into(), session.uuid().into()]);
        }
        qb.push(") ORDER BY tenant_id, id").push(DB::LOCK_ROWS);
        let rows = self.tx_all(tx, &qb).await?;
        let mut sessions = BTreeMap::new();
        for row in &rows {
            let read = || -> Result<(Key, Locked), sqlx::Error> {
                let tenant = TenantId::new(row.int("tenant_id")?).map_err(|_| super::rows::corrupt("tenant_id"))?;
                let key = (tenant, SessionId::from_uuid(row.uuid("id")?));
                let locked = Locked {
                    open: row.text("status")? == SessionStatus::Open.as_str(),
                    last_seq: row.int("last_seq")?,
                    last_message_at: row.opt_int("last_message_at")?.map(Timestamp::from_micros),
                    touched: false,
                };
                Ok((key, locked))
            };
            let (key, locked) = read().map_err(StoreError::Internal)?;
            sessions.insert(key, locked);
        }
        Ok(sessions)
    }

    /// The messages already stored under the batch's idempotency keys, with
    /// the body fingerprint each key was first used with. Read under the
    /// sessions' locks: a concurrent retry has either committed (and is seen
    /// here) or waits for this batch.
    async fn known_keys(
        &self,
        tx: &mut DB::Connection,
        batch: &[Append],
    ) -> Result<HashMap<IdemKey, (String, Message)>, StoreError> {
        let keys: Vec<(TenantId, SessionId, UserId, &str)> = batch
            .iter()
            .filter_map(|a| {
                let new = &a.new;
                new.idempotency.as_ref().map(|idem| (new.tenant_id, new.session_id, new.sender_id, idem.key.as_str()))
            })
            .collect();
        let mut known = HashMap::new();
        if keys.is_empty() {
            return Ok(known);
        }
        let qb = key_lookup::<DB>(&keys);
        for row in &self.tx_all(tx, &qb).await? {
            let read = || -> Result<(IdemKey, (String, Message)), sqlx::Error> {
                let message = message_from_row(row)?;
                let key = (message.tenant_id, message.session_id, message.sender_id, row.text("idem_key")?);
                Ok((key, (row.text("fingerprint")?, message)))
            };
            let (key, value) = read().map_err(StoreError::Internal)?;
            known.insert(key, value);
        }
        Ok(known)
    }

    /// The batch's writes: each touched session's sequence and times, and
    /// every new message with its idempotency key, in one statement.
    async fn write_batch(
        &self,
        tx: &mut DB::Connection,
        batch: &[Append],
        answers: &[Result<Appended, StoreError>],
        sessions: &BTreeMap<Key, Locked>,
    ) -> Result<(), StoreError> {
        for ((tenant, session), s) in sessions.iter().filter(|(_, s)| s.touched) {
            let at = s.last_message_at.map_or(0, Timestamp::micros);
            let mut qb = QueryBuilder::<DB>::new("UPDATE sessions SET last_seq = ");
            qb.push_bind(s.last_seq).push(", last_message_at = ").push_bind(at).push(", updated_at = ").push_bind(at);
            qb.push(" WHERE tenant_id = ").push_bind(tenant.get()).push(" AND id = ").push_bind(session.uuid());
            self.tx_run(tx, &qb).await?;
        }
        let stored: Vec<(&Append, &Message)> = batch
            .iter()
            .zip(answers)
            .filter_map(|(a, answer)| match answer {
                Ok(Appended::Created(m)) => Some((a, m)),
                _ => None,
            })
            .collect();
        let mut qb = QueryBuilder::<DB>::new("INSERT INTO messages (");
        qb.push(super::rows::MESSAGE_COLUMNS).push(", message_folded, idem_key, idem_fingerprint) VALUES ");
        for (i, (append, m)) in stored.iter().enumerate() {
            if i > 0 {
                qb.push(", ");
            }
            qb.push_values(vec![
                m.id.uuid().into(),
                m.tenant_id.get().into(),
                m.session_id.uuid().into(),
                m.seq.into(),
                m.sender_id.get().into(),
                m.message.as_str().into(),
                m.created_at.micros().into(),
                append.new.text.folded().into(),
                append.new.idempotency.as_ref().map(|idem| idem.key.as_str().to_owned()).into(),
                append.new.idempotency.as_ref().map(|idem| idem.fingerprint.clone()).into(),
            ]);
        }
        self.tx_run(tx, &qb).await?;
        Ok(())
    }
}

/// The messages stored under these idempotency keys, with the body
/// fingerprint each key was first used with: one index probe per key,
/// whatever the statistics say, because the keys drive the join (see
/// `Dialect::LATERAL_KEY_LOOKUP`).
pub(super) fn key_lookup<DB: Dialect>(keys: &[(TenantId, SessionId, UserId, &str)]) -> QueryBuilder<DB> {
    let mut qb = QueryBuilder::<DB>::new("WITH v (t, s, u, k) AS (VALUES ");
    for (i, (tenant, session, sender, key)) in keys.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        qb.push_values(vec![tenant.get().into(), session.uuid().into(), sender.get().into(), (*key).into()]);
    }
    qb.push(") SELECT m.idem_fingerprint AS fingerprint, m.idem_key, ");
    qb.push("m.id, m.tenant_id, m.session_id, m.seq, m.sender_id, m.message, m.created_at FROM v CROSS JOIN ");
    // `idem_key IS NOT NULL` lets the engine use the partial unique index.
    let probe = "m.idem_key IS NOT NULL AND m.tenant_id = v.t AND m.session_id = v.s \
                 AND m.sender_id = v.u AND m.idem_key = v.k";
    if DB::LATERAL_KEY_LOOKUP {
        // LIMIT 1 keeps the planner from flattening the lookup into a join.
        qb.push("LATERAL (SELECT * FROM messages m WHERE ").push(probe).push(" LIMIT 1) m");
    } else {
        // SQLite keeps the left table of a CROSS JOIN as the outer loop.
        qb.push("messages m WHERE ").push(probe);
    }
    qb
}

/// A writer: takes every send waiting (up to a batch) and commits them together.
async fn write_batches<DB: Dialect>(store: Weak<SqlStore<DB>>, mut queue: mpsc::Receiver<Append>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(append) => batch.push(append),
                Err(_) => break,
            }
        }
        let Some(store) = store.upgrade() else { return };
        store.commit_batch(batch).await;
    }
}
