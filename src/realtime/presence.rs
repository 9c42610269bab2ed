//! Presence of agents holding streams on this node, and expiry of every
//! node's presence (a crashed node's agents go offline when their rows
//! expire). The store announces every change in the transaction that makes it.

use super::Realtime;
use super::hub::AgentStreams;
use crate::domain::time::Timestamp;
use crate::http::AppState;
use crate::service::realtime_micros;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

fn expiry(state: &AppState, now: Timestamp) -> Timestamp {
    Timestamp::from_micros(now.micros().saturating_add(realtime_micros(state.chat().limits().presence_ttl)))
}

/// Applies an agent's first or last stream on this node. Both re-check the
/// hub, which is the truth by the time a queued change is applied.
async fn apply(state: &AppState, rt: &Realtime, change: AgentStreams) {
    let presence = &state.chat().storage().presence;
    let now = Timestamp::now();
    let result = match change {
        // The stream may already be gone again.
        AgentStreams::First(agent, scope) if rt.hub.has_agent(agent) => {
            presence.touch_presence(agent, &rt.node, &scope, expiry(state, now), now).await.map(drop)
        }
        // A stream of the same agent may have opened since (a page reload): keep it online.
        AgentStreams::Last(agent) if !rt.hub.has_agent(agent) => {
            presence.drop_presence(agent, &rt.node, now).await.map(drop)
        }
        AgentStreams::First(..) | AgentStreams::Last(_) | AgentStreams::Unchanged => Ok(()),
    };
    if let Err(err) = result {
        tracing::warn!(error = %err, "presence change not recorded");
    }
}

/// The presence task: applies stream changes in order and, every third of
/// the presence period, refreshes this node's agents, expires everyone whose
/// rows ran out (on any node) and purges old tickets.
pub async fn maintain(state: AppState, rt: Arc<Realtime>, mut changes: mpsc::UnboundedReceiver<AgentStreams>) {
    let period = (state.chat().limits().presence_ttl / 3).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(period);
    let mut shutdown = rt.shutdown.clone();
    let presence = state.chat().storage().presence.clone();
    loop {
        tokio::select! {
            Some(change) = changes.recv() => {
                apply(&state, &rt, change).await;
                continue;
            }
            _ = tick.tick() => {}
            () = super::stopped(&mut shutdown) => break,
        }
        let now = Timestamp::now();
        for (agent, scope) in rt.hub.live_agents() {
            if let Err(err) = presence.touch_presence(agent, &rt.node, &scope, expiry(&state, now), now).await {
                tracing::warn!(error = %err, "presence heartbeat failed");
            }
        }
        if let Err(err) = presence.expire_presence(now).await {
            tracing::warn!(error = %err, "presence expiry failed");
        }
        if let Err(err) = presence.purge_tickets(now).await {
            tracing::warn!(error = %err, "ticket purge failed");
        }
    }
    // Leaving: every agent held by this node goes offline now, not at expiry.
    if let Err(err) = presence.drop_node(&rt.node, Timestamp::now()).await {
        tracing::warn!(error = %err, "presence not cleared at shutdown");
    }
}
