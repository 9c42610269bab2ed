//! Presence of agents holding streams on this node, and the periodic
//! upkeep every node runs (a crashed node's agents go offline when their
//! rows expire). The changes themselves are service use cases.

use super::Realtime;
use super::hub::AgentStreams;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Applies an agent's first or last stream on this node. Both re-check the
/// hub, which is the truth by the time a queued change is applied.
async fn apply(rt: &Realtime, change: AgentStreams) {
    let result = match change {
        // The stream may already be gone again.
        AgentStreams::First(agent, scope) if rt.hub.has_agent(agent) => {
            rt.chat.hold_presence(agent, &rt.node, &scope).await.map(drop)
        }
        // A stream of the same agent may have opened since (a page reload): keep it online.
        AgentStreams::Last(agent) if !rt.hub.has_agent(agent) => rt.chat.release_presence(agent, &rt.node).await,
        AgentStreams::First(..) | AgentStreams::Last(_) | AgentStreams::Unchanged => Ok(()),
    };
    if let Err(err) = result {
        tracing::warn!(error = %err, "presence change not recorded");
    }
}

/// The presence task: applies stream changes in order and, every third of
/// the presence period, refreshes this node's agents and runs the upkeep.
pub async fn maintain(rt: Arc<Realtime>, mut changes: mpsc::UnboundedReceiver<super::PresenceChange>) {
    let period = (rt.chat.limits().presence_ttl / 3).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(period);
    let mut shutdown = rt.shutdown.clone();
    loop {
        tokio::select! {
            Some((change, done)) = changes.recv() => {
                apply(&rt, change).await;
                let _ = done.send(());
                continue;
            }
            _ = tick.tick() => {}
            () = super::stopped(&mut shutdown) => break,
        }
        for (agent, scope) in rt.hub.live_agents() {
            if let Err(err) = rt.chat.hold_presence(agent, &rt.node, &scope).await {
                tracing::warn!(error = %err, "presence heartbeat failed");
            }
        }
        if let Err(err) = rt.chat.expire().await {
            tracing::warn!(error = %err, "presence and ticket upkeep failed");
        }
    }
    // Leaving: every agent held by this node goes offline now, not at expiry.
    if let Err(err) = rt.chat.release_node(&rt.node).await {
        tracing::warn!(error = %err, "presence not cleared at shutdown");
    }
}
