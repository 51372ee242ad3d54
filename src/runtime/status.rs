//! Per-shard gauges, gathered over the mesh for `/status`.

use serde::Serialize;

/// One shard's gauges at one instant. Built by the shard it describes, sent to shard 0, dropped
/// there after rendering.
#[derive(Serialize, Debug, Clone)]
pub struct ShardStatus {
    pub shard: u8,
    pub core: usize,
    pub draining: bool,
    /// Open MCP connections; the admin listener's are apart, in `admin_connections`.
    pub connections: u32,
    pub connections_max: u32,
    /// Open admin connections, on shard 0 (which serves the admin listener); `None` elsewhere.
    pub admin_connections: Option<u32>,
    /// Open GET and `subscriptions/listen` streams (part of `connections`).
    pub notification_streams: u32,
    pub sessions: u32,
    pub sessions_max: u32,
    pub sessions_expired_total: u64,
    pub epoch: u64,
    pub early_retires: u64,
    pub forwarded_in_flight: u32,
    pub arena: Vec<GenerationStatus>,
    pub refusals: Vec<(&'static str, u64)>,
    pub pending: PendingStatus,
    pub upstreams: Vec<UpstreamStatus>,
}

/// The shard's requests in flight to upstreams.
#[derive(Serialize, Debug, Clone)]
pub struct PendingStatus {
    pub entries: u32,
    pub pending_max: u32,
    pub completed_total: u64,
    pub cancelled_total: u64,
    pub timeouts_total: u64,
    pub late_answers_total: u64,
    pub early_retires_total: u64,
    /// Notifications dropped because a client read slower than its upstream wrote.
    pub events_dropped_total: u64,
    /// Of those, dropped on the way back from the shard that ran a forwarded call.
    pub mesh_events_dropped_total: u64,
    /// Requests from upstreams (sampling, elicitation, roots) waiting for a client's answer.
    pub relayed_requests: u32,
    /// Requests from upstreams not relayed because `pending.pending_max` were waiting.
    pub relayed_requests_refused_total: u64,
    /// Session-era clients' calls to 2026-07-28 upstreams waiting on the client's input or on
    /// the retry it feeds (their input requests count in `relayed_requests`).
    pub input_calls: u32,
    /// Rounds of input asked of session-era clients for 2026-07-28 upstreams.
    pub input_rounds_total: u64,
    /// Calls ended because their upstream asked for input again after
    /// `pending.input_rounds_max` rounds.
    pub input_rounds_exceeded_total: u64,
    #[serde(serialize_with = "pairs_as_object")]
    pub refusals: Vec<(&'static str, u64)>,
}

/// One upstream as this shard sees it.
#[derive(Serialize, Debug, Clone)]
pub struct UpstreamStatus {
    pub name: String,
    pub kind: &'static str,
    pub required: bool,
    /// Its last handshake succeeded and nothing since said it went away.
    pub up: bool,
    /// A handshake or a refresh of its lists is under way (down and connecting: an optional
    /// upstream start-up did not wait for, or a retry).
    pub connecting: bool,
    pub last_error: Option<String>,
    /// `closed`, `open` or `half_open`.
    pub breaker: &'static str,
    pub breaker_opened_total: u64,
    pub breaker_refused_total: u64,
    /// Requests in flight to it from this shard.
    pub in_flight: u32,
    /// Messages from it that no request or client could take.
    pub unroutable_total: u64,
    /// Messages from it refused for nesting deeper than `limits.json_depth_max`.
    pub messages_too_deep_total: u64,
    /// Requests it sent to clients that the gateway answered with an error.
    pub server_requests_refused_total: u64,
    pub pool: Option<crate::upstream::pool::PoolStats>,
    pub stdio: Option<crate::upstream::stdio::StdioStats>,
    /// The session era's listen stream: its state and what arrived on it.
    pub listen: crate::upstream::link::ListenStats,
    /// 2026-07-28 era: the smallest `ttlMs` of the last refresh; the lists are fetched again
    /// once it passed (at the next epoch tick).
    pub lists_ttl_ms: Option<u64>,
    /// Successful refreshes of its lists.
    pub lists_refreshes_total: u64,
    /// `session_mode = "per_client"`: the upstream sessions kept for client sessions.
    pub upstream_sessions: Option<crate::upstream::sessions::ClientSessionStats>,
}

fn pairs_as_object<S: serde::Serializer>(
    pairs: &[(&'static str, u64)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(pairs.iter().map(|(k, v)| (*k, *v)))
}

/// Bytes held by one generation's arena of the session table.
#[derive(Serialize, Debug, Clone)]
pub struct GenerationStatus {
    pub generation: u64,
    pub used_bytes: u64,
    pub allocated_bytes: u64,
}

/// Renders the `/status` document: every shard, then totals.
pub fn render(shards: &[ShardStatus]) -> String {
    let mut refusals: Vec<(&'static str, u64)> = Vec::new();
    for (reason, count) in shards.iter().flat_map(|s| s.refusals.iter()) {
        match refusals.iter_mut().find(|(r, _)| r == reason) {
            Some((_, total)) => *total += count,
            None => refusals.push((reason, *count)),
        }
    }
    let as_object = |pairs: &[(&'static str, u64)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect::<serde_json::Map<_, _>>()
    };
    let shard_docs: Vec<serde_json::Value> = shards
        .iter()
        .map(|s| {
            let mut doc = serde_json::to_value(s).expect("status serializes");
            doc["refusals"] = serde_json::Value::Object(as_object(&s.refusals));
            doc
        })
        .collect();
    serde_json::json!({
        "shards": shard_docs,
        "totals": {
            "connections": shards.iter().map(|s| u64::from(s.connections)).sum::<u64>(),
            "sessions": shards.iter().map(|s| u64::from(s.sessions)).sum::<u64>(),
            "notification_streams": shards.iter().map(|s| u64::from(s.notification_streams)).sum::<u64>(),
            "forwarded_in_flight": shards.iter().map(|s| u64::from(s.forwarded_in_flight)).sum::<u64>(),
            "pending": shards.iter().map(|s| u64::from(s.pending.entries)).sum::<u64>(),
            "events_dropped_total": shards.iter().map(|s| s.pending.events_dropped_total).sum::<u64>(),
            "refusals": as_object(&refusals),
        }
    })
    .to_string()
}
