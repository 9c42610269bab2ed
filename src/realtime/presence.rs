//! Presence of agents holding streams on this node, and expiry of every
//! node's presence (a crashed node's agents go offline when their rows expire).

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

/// Applies an agent's first or last stream on this node.
async fn apply(state: &AppState, rt: &Realtime, change: AgentStreams) {
    let presence = &state.chat().storage().presence;
    let now = Timestamp::now();
    match change {
        AgentStreams::First(agent, scope) => {
            match presence.touch_presence(agent, &rt.node, &scope, expiry(state, now), now).await {
                Ok(true) => state.chat().announce_presence(agent, true).await,
                Ok(false) => {}
                Err(err) => tracing::warn!(error = %err, "presence not recorded"),
            }
        }
        // A stream of the same agent may have opened since (a page reload): keep it online.
        AgentStreams::Last(agent) if !rt.hub.has_agent(agent) => {
            match presence.drop_presence(agent, &rt.node, now).await {
                Ok(true) => state.chat().announce_presence(agent, false).await,
                Ok(false) => {}
                Err(err) => tracing::warn!(error = %err, "presence not cleared"),
            }
        }
        AgentStreams::Last(_) | AgentStreams::Unchanged => {}
    }
}

/// The presence task: applies stream changes in order and, every third of
/// the presence period, refreshes this node's agents, expires everyone whose
/// rows ran out (on any node) and purges old tickets.
pub async fn maintain(state: AppState, rt: Arc<Realtime>, mut changes: mpsc::UnboundedReceiver<AgentStreams>) {
    let period = (state.chat().limits().presence_ttl / 3).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(period);
    let mut shutdown = rt.shutdown.clone();
    loop {
        tokio::select! {
            Some(change) = changes.recv() => {
                apply(&state, &rt, change).await;
                continue;
            }
            _ = tick.tick() => {}
            () = super::stopped(&mut shutdown) => break,
        }
        let presence = &state.chat().storage().presence;
        let now = Timestamp::now();
        for (agent, scope) in rt.hub.live_agents() {
            match presence.touch_presence(agent, &rt.node, &scope, expiry(&state, now), now).await {
                Ok(true) => state.chat().announce_presence(agent, true).await,
                Ok(false) => {}
                Err(err) => tracing::warn!(error = %err, "presence heartbeat failed"),
            }
        }
        match presence.expire_presence(now).await {
            Ok(gone) => {
                for agent in gone {
                    state.chat().announce_presence(agent, false).await;
                }
            }
            Err(err) => tracing::warn!(error = %err, "presence expiry failed"),
        }
        if let Err(err) = presence.purge_tickets(now).await {
            tracing::warn!(error = %err, "ticket purge failed");
        }
    }
    // Leaving: this node's agents go offline now rather than at expiry.
    let now = Timestamp::now();
    for (agent, _) in rt.hub.live_agents() {
        if let Ok(true) = state.chat().storage().presence.drop_presence(agent, &rt.node, now).await {
            state.chat().announce_presence(agent, false).await;
        }
    }
}
