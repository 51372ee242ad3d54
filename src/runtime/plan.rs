//! The memory plan: the per-shard and whole-process memory ceiling a config implies.
//!
//! `shardgate plan` prints it before anything runs. Each term is one consumer's worst case in
//! bytes per shard, with the formula that produced it. This module computes the terms it can
//! derive from the config and the sizing functions of the structures it configures (glommio's
//! io memory, connection buffers, the mesh, the pending table, each `http` upstream's pool and
//! each `stdio` upstream's child); the runtime supplies the rest (the session table, forwarded
//! requests, its threads) as `PlanTerm`s, and the size of one mesh message.
//!
//! Arithmetic saturates at `u64::MAX` rather than wrapping, so an absurd term shows as absurd.

use std::borrow::Cow;
use std::fmt;

use crate::calls::inflight::{InFlight, ServerRequests};
use crate::calls::pending::{PendingLimits, PendingTable};
use crate::config::{Config, HttpUpstream, Limits, StdioUpstream, Upstream, UpstreamKind};
use crate::http::REFUSED_CONNECTION_BYTES_MAX;

/// The client route the shard's pending table keys requests by.
type PlanRoute = crate::calls::inflight::ClientRoute;

/// Output buffer an upstream connection keeps between requests (`http::client`): a larger one
/// is freed after its request is written.
const CONNECTION_OUTPUT_RETAIN_BYTES: u64 = 64 * 1024;

/// Smallest input buffer of an upstream connection: one read (`http::client`).
const CONNECTION_READ_BYTES_MIN: u64 = 4 * 1024;

/// Buffer a stdio upstream reads the child's stdout into (`upstream::stdio`).
const STDIO_READ_CHUNK_BYTES: u64 = 64 * 1024;

/// Name of the term that carries the size of one cross-shard mesh message (see
/// `PlanTerm::mesh_message`); it sizes the mesh row rather than being a row itself.
pub const MESH_MESSAGE_TERM: &str = "mesh message";

/// One consumer's memory ceiling, per shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanTerm {
    /// Short name of the consumer (`session table`, `upstream api pool`); unique within a plan.
    pub name: Cow<'static, str>,
    /// Worst-case bytes this consumer holds on one shard.
    pub per_shard_bytes: u64,
    /// How the number was derived, naming the config keys (`sessions_max 10000 × 64 bytes`).
    pub explanation: String,
}

impl PlanTerm {
    /// The size in bytes of one message on the cross-shard mesh, which the runtime owns. `plan`
    /// multiplies it by `shards × limits.mesh_messages_max`.
    pub fn mesh_message(message_bytes: u64, explanation: String) -> PlanTerm {
        PlanTerm {
            name: Cow::Borrowed(MESH_MESSAGE_TERM),
            per_shard_bytes: message_bytes,
            explanation,
        }
    }
}

/// The memory ceiling of one config on a given number of shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Shards the plan is for.
    pub shards: u16,
    /// One row per consumer, fixed terms first, then the supplied ones in the order given.
    pub terms: Vec<PlanTerm>,
    /// Rows paid once per process, not per shard (the program image); `per_shard_bytes` holds
    /// the whole amount.
    pub process_terms: Vec<PlanTerm>,
}

impl Plan {
    /// Sum of the terms: the ceiling of one shard.
    pub fn per_shard_bytes(&self) -> u64 {
        self.terms
            .iter()
            .fold(0, |sum: u64, term| sum.saturating_add(term.per_shard_bytes))
    }

    /// The ceiling of the whole process: `shards ×` the per-shard total, plus the process terms.
    pub fn total_bytes(&self) -> u64 {
        let shards = self
            .per_shard_bytes()
            .saturating_mul(u64::from(self.shards));
        self.process_terms
            .iter()
            .fold(shards, |sum, term| sum.saturating_add(term.per_shard_bytes))
    }

    /// Adds a row paid once per process.
    pub fn with_process_term(mut self, term: PlanTerm) -> Plan {
        self.process_terms.push(term);
        self
    }
}

/// Builds the plan for `config` on `shards` shards from the fixed terms and the supplied `terms`.
///
/// # Panics
///
/// If `shards` is 0, if `terms` lacks exactly one `PlanTerm::mesh_message`, or if two terms
/// share a name: each is a mistake in the caller, not in the config.
pub fn plan(config: &Config, shards: u16, terms: &[PlanTerm]) -> Plan {
    assert!(shards > 0, "a plan needs at least one shard");
    let mut messages = terms.iter().filter(|term| term.name == MESH_MESSAGE_TERM);
    let message = messages
        .next()
        .expect("plan needs a PlanTerm::mesh_message term");
    assert!(
        messages.next().is_none(),
        "plan takes one PlanTerm::mesh_message term"
    );

    let limits = &config.limits;
    let io_memory_bytes = config.server.io_memory_bytes;
    // Input: the head, the chunk-framing budget (another header_bytes_max) and the raw body;
    // the decoded copy of a chunked body; the reply body and its copy in the output buffer.
    let connection_bytes = limits
        .header_bytes_max
        .saturating_add(limits.request_body_bytes_max)
        .saturating_add(limits.response_body_bytes_max)
        .saturating_mul(2);
    let mesh_slots = u64::from(shards) * u64::from(limits.mesh_messages_max);
    let mut rows = vec![
        // glommio registers this much locked memory with io_uring for each executor.
        PlanTerm {
            name: "glommio io_memory".into(),
            per_shard_bytes: io_memory_bytes,
            explanation: format!("server.io_memory_bytes {io_memory_bytes}"),
        },
        // Every connection may hold a full head, request body and response body at once.
        PlanTerm {
            name: "connection buffers".into(),
            per_shard_bytes: u64::from(limits.connections_max).saturating_mul(connection_bytes),
            explanation: format!(
                "limits.connections_max {} × 2 × (header_bytes_max {} + request_body_bytes_max {} \
                 + response_body_bytes_max {}): head and chunk framing, raw and decoded body, \
                 reply and output buffer",
                limits.connections_max,
                limits.header_bytes_max,
                limits.request_body_bytes_max,
                limits.response_body_bytes_max
            ),
        },
        // One inbound channel from every shard, each holding up to mesh_messages_max messages.
        PlanTerm {
            name: "mesh".into(),
            per_shard_bytes: mesh_slots.saturating_mul(message.per_shard_bytes),
            explanation: format!(
                "shards {shards} × limits.mesh_messages_max {} × message {} bytes ({})",
                limits.mesh_messages_max, message.per_shard_bytes, message.explanation
            ),
        },
        // A refused connection lingers until the peer has read its 503; at most as many at
        // once as the listener serves.
        PlanTerm {
            name: "refused connections".into(),
            per_shard_bytes: u64::from(limits.connections_max)
                .saturating_mul(REFUSED_CONNECTION_BYTES_MAX),
            explanation: format!(
                "limits.connections_max {} lingering refusals × {REFUSED_CONNECTION_BYTES_MAX} \
                 bytes: one read of what the peer still sends and the 503 written",
                limits.connections_max
            ),
        },
        pending_term(config),
        server_requests_term(config),
        relay_buffers_term(config),
    ];
    rows.extend(
        config
            .upstreams
            .iter()
            .filter_map(|upstream| upstream_term(upstream, limits)),
    );
    for term in terms.iter().filter(|term| term.name != MESH_MESSAGE_TERM) {
        assert!(
            rows.iter().all(|row| row.name != term.name),
            "plan term {:?} appears twice",
            term.name
        );
        rows.push(term.clone());
    }
    Plan {
        shards,
        terms: rows,
        process_terms: vec![admin_term(config, connection_bytes)],
    }
}

/// The admin listener, on shard 0 only: `admin.connections_max` connections, each with an MCP
/// connection's buffers (the codec's limits are the same), and as many refusals lingering.
fn admin_term(config: &Config, connection_bytes: u64) -> PlanTerm {
    let connections_max = config.admin.connections_max;
    let bytes = connection_bytes.saturating_add(REFUSED_CONNECTION_BYTES_MAX);
    PlanTerm {
        name: "admin connections".into(),
        per_shard_bytes: u64::from(connections_max).saturating_mul(bytes),
        explanation: format!(
            "once per process (shard 0): admin.connections_max {connections_max} × \
             ({connection_bytes} bytes of connection buffers as above + \
             {REFUSED_CONNECTION_BYTES_MAX} bytes of a lingering refusal)"
        ),
    }
}

/// The pending table of one shard, sized by its own `memory_ceiling`, plus its count per
/// upstream and the scratch buffer for one payload.
fn pending_term(config: &Config) -> PlanTerm {
    let pending = &config.pending;
    let upstreams_count = u16::try_from(config.upstreams.len()).unwrap_or(u16::MAX);
    let limits = PendingLimits {
        pending_max: pending.pending_max,
        pending_per_upstream_max: pending.pending_per_upstream_max,
        upstreams_count,
        request_id_bytes_max: pending.request_id_bytes_max,
    };
    let ceiling = PendingTable::<PlanRoute>::memory_ceiling(&limits);
    let calls_bytes = InFlight::calls_memory_ceiling(pending.pending_max);
    let counts_bytes = u64::from(upstreams_count) * 4;
    let scratch_bytes = 2 * u64::from(pending.request_id_bytes_max);
    let requests = &ceiling.requests;
    PlanTerm {
        name: "pending table".into(),
        per_shard_bytes: ceiling
            .total()
            .saturating_add(calls_bytes)
            .saturating_add(counts_bytes)
            .saturating_add(scratch_bytes),
        explanation: format!(
            "pending.pending_max {} → requests slab {} + index {} + key lists {} bytes, arenas \
             {} + chunk overhead {} bytes (2 × pending_max × 2 × request_id_bytes_max {} per \
             arena); client index {} bytes; call map and call states {calls_bytes} bytes; {} \
             upstreams × 4-byte count and one payload of scratch",
            pending.pending_max,
            requests.slab_bytes,
            requests.index_bytes,
            requests.key_lists_bytes,
            requests.arenas_bytes,
            requests.arena_overhead_bytes,
            pending.request_id_bytes_max,
            ceiling.by_client.total(),
            upstreams_count,
        ),
    }
}

/// Requests from upstreams waiting for clients' answers: at most `pending.pending_max`, each
/// relayed one keeping its upstream id of at most `pending.request_id_bytes_max` bytes.
fn server_requests_term(config: &Config) -> PlanTerm {
    let pending = &config.pending;
    let bytes = ServerRequests::memory_ceiling(pending.pending_max, pending.request_id_bytes_max);
    PlanTerm {
        name: "server requests".into(),
        per_shard_bytes: bytes,
        explanation: format!(
            "pending.pending_max {} waiting requests: index and upstream ids of at most \
             pending.request_id_bytes_max {} bytes",
            pending.pending_max, pending.request_id_bytes_max
        ),
    }
}

/// Notifications of calls in flight waiting for slow clients: each call buffers at most
/// `pending.stream_buffer_bytes_max`, and at most `pending.pending_max` calls are in flight.
fn relay_buffers_term(config: &Config) -> PlanTerm {
    let pending = &config.pending;
    PlanTerm {
        name: "relayed notifications".into(),
        per_shard_bytes: u64::from(pending.pending_max)
            .saturating_mul(pending.stream_buffer_bytes_max),
        explanation: format!(
            "pending.pending_max {} × pending.stream_buffer_bytes_max {}",
            pending.pending_max, pending.stream_buffer_bytes_max
        ),
    }
}

/// The row of one upstream: an `http` upstream's pool or a `stdio` upstream's child; a builtin
/// upstream keeps nothing per request.
fn upstream_term(upstream: &Upstream, limits: &Limits) -> Option<PlanTerm> {
    let (kind, (per_shard_bytes, explanation)) = match &upstream.kind {
        UpstreamKind::Builtin { .. } => return None,
        UpstreamKind::Http(http) => ("pool", http_pool_bytes(http, limits)),
        UpstreamKind::Stdio(stdio) => ("stdio", stdio_bytes(stdio)),
    };
    Some(PlanTerm {
        name: format!("upstream {} {kind}", upstream.name).into(),
        per_shard_bytes,
        explanation,
    })
}

/// Every connection at once holding its input buffer, the largest request the gateway forwards
/// and the largest response it buffers (`upstream::pool`, `http::client`): the pool's
/// `pool_connections_max` and the listen stream's own connection beside them (a session-era
/// upstream's standalone GET stream, `upstream::link`), counted as one more of the same.
fn http_pool_bytes(http: &HttpUpstream, limits: &Limits) -> (u64, String) {
    let input = u64::from(http.pool.client.response_head_bytes_max).max(CONNECTION_READ_BYTES_MIN);
    let output = limits
        .header_bytes_max
        .saturating_add(limits.request_body_bytes_max)
        .max(CONNECTION_OUTPUT_RETAIN_BYTES);
    // A buffered body, or an event stream's decoded line and the event being built.
    let body = limits
        .response_body_bytes_max
        .max(2 * u64::from(http.pool.client.sse_event_bytes_max));
    let connection = input.saturating_add(output).saturating_add(body);
    let connections = u64::from(http.pool.pool_connections_max) + 1;
    let bytes = connections.saturating_mul(connection);
    let explanation = format!(
        "(pool_connections_max {} + 1 listen stream) × (response_head_bytes_max {} input + max(64 KiB, \
         limits.header_bytes_max + request_body_bytes_max) {output} output + max(\
         limits.response_body_bytes_max, 2 × sse_event_bytes_max {}) {body} body)",
        http.pool.pool_connections_max,
        http.pool.client.response_head_bytes_max,
        http.pool.client.sse_event_bytes_max
    );
    (bytes, explanation)
}

/// Both message queues full plus the line being read, a stderr line and the read buffer
/// (`upstream::stdio`).
fn stdio_bytes(stdio: &StdioUpstream) -> (u64, String) {
    let messages = u64::from(stdio.limits.inbound_messages_max)
        + u64::from(stdio.limits.outbound_messages_max)
        + 1;
    let bytes = messages
        .saturating_mul(u64::from(stdio.limits.message_bytes_max))
        .saturating_add(u64::from(stdio.limits.stderr_line_bytes_max))
        .saturating_add(STDIO_READ_CHUNK_BYTES);
    let explanation = format!(
        "(inbound_messages_max {} + outbound_messages_max {} + 1) × message_bytes_max {} + \
         stderr_line_bytes_max {} + 64 KiB read buffer",
        stdio.limits.inbound_messages_max,
        stdio.limits.outbound_messages_max,
        stdio.limits.message_bytes_max,
        stdio.limits.stderr_line_bytes_max
    );
    (bytes, explanation)
}

/// `bytes` as `1.50 MiB (1572864 bytes)`; below 1 KiB just `512 bytes`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut scaled = bytes as f64 / 1024.0;
    let mut unit = 0;
    while scaled >= 1024.0 && unit + 1 < UNITS.len() {
        scaled /= 1024.0;
        unit += 1;
    }
    format!("{scaled:.2} {} ({bytes} bytes)", UNITS[unit])
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_shard_label = "per shard total";
        let total_label = format!("total for {} shards", self.shards);
        let mut lines: Vec<(&str, String, &str)> = self
            .terms
            .iter()
            .map(|term| {
                (
                    term.name.as_ref(),
                    human_bytes(term.per_shard_bytes),
                    term.explanation.as_str(),
                )
            })
            .collect();
        lines.push((
            per_shard_label,
            human_bytes(self.per_shard_bytes()),
            "sum of the terms above",
        ));
        for term in &self.process_terms {
            lines.push((
                term.name.as_ref(),
                human_bytes(term.per_shard_bytes),
                term.explanation.as_str(),
            ));
        }
        let total_bytes = human_bytes(self.total_bytes());
        let name_width = lines
            .iter()
            .map(|line| line.0.chars().count())
            .chain([total_label.chars().count(), "term".len()])
            .max()
            .unwrap_or(0);
        let bytes_width = lines
            .iter()
            .map(|line| line.1.len())
            .chain([total_bytes.len(), "bytes per shard".len()])
            .max()
            .unwrap_or(0);
        writeln!(
            f,
            "memory plan for {} shards (worst case, bytes per shard)",
            self.shards
        )?;
        writeln!(
            f,
            "{:<name_width$}  {:<bytes_width$}  derivation",
            "term", "bytes per shard"
        )?;
        for (name, bytes, explanation) in &lines {
            writeln!(
                f,
                "{name:<name_width$}  {bytes:<bytes_width$}  {explanation}"
            )?;
        }
        let shards = self.shards;
        writeln!(
            f,
            "{total_label:<name_width$}  {total_bytes:<bytes_width$}  {shards} × per shard total{}",
            match self.process_terms.is_empty() {
                true => "",
                false => " + the once-per-process rows",
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session_term() -> PlanTerm {
        PlanTerm {
            name: "session table".into(),
            per_shard_bytes: 1000,
            explanation: "sessions_max 10 × 100 bytes".to_owned(),
        }
    }

    fn message_term() -> PlanTerm {
        PlanTerm::mesh_message(64, "size_of::<MeshMessage>()".to_owned())
    }

    #[test]
    fn plan_sums_fixed_and_supplied_terms_per_shard_and_in_total() {
        let config = Config::default();
        let plan = plan(&config, 2, &[message_term(), session_term()]);
        let limits = &config.limits;
        let connections = 256 * 2 * (16_384 + 262_144 + 1_048_576);
        let mesh = 2 * u64::from(limits.mesh_messages_max) * 64;
        let refused = 256 * REFUSED_CONNECTION_BYTES_MAX;
        let pending = plan.terms[4].per_shard_bytes;
        let server_requests = ServerRequests::memory_ceiling(1000, 128);
        let relayed = 1000 * 65_536;
        let per_shard =
            1_048_576 + connections + refused + mesh + pending + server_requests + relayed + 1000;
        assert_eq!(plan.per_shard_bytes(), per_shard);
        // The admin listener's connections, once: 16 of an MCP connection's buffers and refusal.
        let admin = 16 * (connections / 256 + REFUSED_CONNECTION_BYTES_MAX);
        assert_eq!(plan.total_bytes(), 2 * per_shard + admin);
        let names: Vec<&str> = plan.terms.iter().map(|term| term.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "glommio io_memory",
                "connection buffers",
                "mesh",
                "refused connections",
                "pending table",
                "server requests",
                "relayed notifications",
                "session table"
            ]
        );
    }

    #[test]
    fn mesh_term_grows_with_the_shard_count() {
        let config = Config::default();
        let mesh_bytes = |shards| plan(&config, shards, &[message_term()]).terms[2].per_shard_bytes;
        assert_eq!(mesh_bytes(1) * 16, mesh_bytes(16));
        assert_eq!(mesh_bytes(1), 256 * 64);
    }

    #[test]
    #[should_panic(expected = "mesh_message")]
    fn plan_without_a_mesh_message_term_panics() {
        plan(&Config::default(), 2, &[session_term()]);
    }

    #[test]
    #[should_panic(expected = "appears twice")]
    fn plan_with_a_duplicate_term_name_panics() {
        plan(
            &Config::default(),
            2,
            &[message_term(), session_term(), session_term()],
        );
    }

    #[test]
    fn pending_term_is_the_tables_ceiling_and_grows_with_pending_max() {
        let config = Config::default();
        let term = pending_term(&config);
        let limits = PendingLimits {
            pending_max: 1000,
            pending_per_upstream_max: 500,
            upstreams_count: 1,
            request_id_bytes_max: 128,
        };
        let ceiling = PendingTable::<PlanRoute>::memory_ceiling(&limits).total();
        let calls = InFlight::calls_memory_ceiling(1000);
        assert_eq!(term.per_shard_bytes, ceiling + calls + 4 + 256);
        // The table's docs: about 1.4 MiB at the defaults, 1 MiB of it arenas.
        assert!(
            (1 << 20..2 << 20).contains(&term.per_shard_bytes),
            "{term:?}"
        );
        assert!(
            term.explanation.contains("pending.pending_max 1000"),
            "{term:?}"
        );
        let text = "[pending]\npending_max = 2000\n";
        let larger = Config::from_toml_str(text, "t.toml").unwrap();
        assert!(pending_term(&larger).per_shard_bytes > term.per_shard_bytes);
    }

    fn upstream_rows(text: &str) -> Vec<PlanTerm> {
        let config = Config::from_toml_str(text, "t.toml").unwrap();
        plan(&config, 1, &[message_term()])
            .terms
            .into_iter()
            .filter(|term| term.name.starts_with("upstream "))
            .collect()
    }

    #[test]
    fn each_http_and_stdio_upstream_has_a_row_and_builtin_none() {
        let text = "[limits]\nheader_bytes_max = 16384\nrequest_body_bytes_max = 262144\n\
                    response_body_bytes_max = 1048576\n\
                    [[upstreams]]\nname = \"demo\"\nkind = \"builtin\"\n\
                    [[upstreams]]\nname = \"api\"\nkind = \"http\"\nurl = \"http://x/mcp\"\n\
                    pool_connections_max = 4\nresponse_head_bytes_max = 8192\n\
                    [[upstreams]]\nname = \"tools\"\nkind = \"stdio\"\ncommand = \"t\"\n\
                    message_bytes_max = 65536\ninbound_messages_max = 8\n\
                    outbound_messages_max = 7\nstderr_line_bytes_max = 1024\n";
        let rows = upstream_rows(text);
        let names: Vec<&str> = rows.iter().map(|term| term.name.as_ref()).collect();
        assert_eq!(names, ["upstream api pool", "upstream tools stdio"]);
        // (4 + 1) × (8192 input + (16384 + 262144) output + max(1048576, 2 × 1048576) body).
        assert_eq!(
            rows[0].per_shard_bytes,
            5 * (8192 + 16_384 + 262_144 + 2 * 1_048_576)
        );
        assert!(
            rows[0].explanation.contains("pool_connections_max 4"),
            "{:?}",
            rows[0]
        );
        // (8 + 7 + 1) × 65536 + 1024 + 64 KiB.
        assert_eq!(rows[1].per_shard_bytes, 16 * 65_536 + 1024 + 65_536);
        assert!(
            rows[1].explanation.contains("message_bytes_max 65536"),
            "{:?}",
            rows[1]
        );
    }

    #[test]
    fn http_pool_row_keeps_the_retained_output_buffer_for_small_requests() {
        let text = "[limits]\nrequest_body_bytes_max = 1024\nheader_bytes_max = 1024\n\
                    response_body_bytes_max = 4096\n\
                    [[upstreams]]\nname = \"api\"\nkind = \"http\"\nurl = \"http://x\"\n\
                    pool_connections_max = 1\nresponse_head_bytes_max = 1024\n\
                    sse_event_bytes_max = 1024\n";
        let rows = upstream_rows(text);
        // A 4 KiB read at least, 64 KiB of output kept, the 4 KiB body; for the pooled
        // connection and the listen stream's.
        assert_eq!(rows[0].per_shard_bytes, 2 * (4096 + 65_536 + 4096));
    }

    #[test]
    fn human_bytes_gives_the_unit_and_the_exact_number() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(1024), "1.00 KiB (1024 bytes)");
        assert_eq!(human_bytes(1_572_864), "1.50 MiB (1572864 bytes)");
        assert_eq!(human_bytes(5 << 30), "5.00 GiB (5368709120 bytes)");
    }

    #[test]
    fn rendered_plan_has_a_row_per_term_and_both_totals() {
        let plan = plan(&Config::default(), 2, &[message_term(), session_term()]);
        let text = plan.to_string();
        // Header lines, eight terms, the per-shard total, the admin row and the total.
        assert_eq!(text.lines().count(), 2 + 8 + 1 + 1 + 1, "{text}");
        assert!(text.contains("session table"), "{text}");
        assert!(text.contains("sessions_max 10 × 100 bytes"), "{text}");
        let total = format!("({} bytes)", plan.total_bytes());
        assert!(text.lines().last().unwrap().contains(&total), "{text}");
    }
}
