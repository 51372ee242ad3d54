//! Validation: the raw, as-written config checked once into the immutable `Config`.
//!
//! Every check runs even after an earlier one failed, so all problems are reported together.
//! A failed check records its error and yields a placeholder (the key's default) that never
//! leaves this module: any recorded error makes `validate` return `Err`. Cross-field rules run
//! only when the keys they read were valid on their own, so one typo gives one error.

use std::net::SocketAddr;

use super::bounds::{self, Bound};
use super::error::{ConfigError, ConfigErrorKind};
use super::raw::{
    RawAdmin, RawConfig, RawCores, RawEpoch, RawLimits, RawPending, RawServer, RawSessions,
    RawUpstream,
};
use super::{
    Admin, Config, Cores, Epoch, HttpUpstream, Limits, Pending, Server, SessionMode, Sessions,
    StdioUpstream, Upstream, UpstreamKind,
};
use crate::config::limits::ClientLimits;
use crate::config::limits::PoolLimits;
use crate::config::limits::StdioLimits;
use crate::config::url::UpstreamUrl;

/// Accepted values of `upstreams[i].kind`.
const UPSTREAM_KINDS: &[&str] = &["builtin", "http", "stdio"];
/// Longest upstream name, in bytes.
const UPSTREAM_NAME_BYTES_MAX: usize = 32;
/// Longest upstream prefix, in bytes.
const UPSTREAM_PREFIX_BYTES_MAX: usize = 32;
/// Longest upstream separator, in bytes.
const UPSTREAM_SEPARATOR_BYTES_MAX: usize = 4;
/// Default separator between an upstream's prefix and a tool or prompt name.
const UPSTREAM_SEPARATOR_DEFAULT: &str = "__";

/// Checks `raw` into a `Config`, or returns every problem found; `origin` prefixes each error.
pub(crate) fn validate(raw: &RawConfig, origin: &str) -> Result<Config, Vec<ConfigError>> {
    let mut checker = Checker {
        origin,
        errors: Vec::new(),
    };
    let server = checker.server(&raw.server);
    let admin = checker.admin(&raw.admin, &server);
    let limits = checker.limits(&raw.limits);
    let sessions = checker.sessions(&raw.sessions);
    let epoch = checker.epoch(&raw.epoch, &sessions);
    let pending = checker.pending(&raw.pending);
    let upstreams = checker.upstreams(&raw.upstreams.0, &limits, &pending);
    if !checker.errors.is_empty() {
        return Err(checker.errors);
    }
    assert!(epoch.session_arena_bytes_max >= sessions.session_payload_bytes_max);
    assert!(sessions.session_idle_ttl_ms >= epoch.tick_ms);
    assert!(pending.pending_per_upstream_max <= pending.pending_max);
    assert!(!upstreams.is_empty());
    assert!(upstreams.len() <= bounds::UPSTREAMS_COUNT_MAX);
    Ok(Config {
        server,
        admin,
        limits,
        sessions,
        epoch,
        pending,
        upstreams,
    })
}

/// Whether `origin` is an `http`/`https` origin on `localhost`, `127.0.0.1` or `[::1]`, with or
/// without a port.
pub(crate) fn is_localhost_origin(origin: &str) -> bool {
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(is_localhost_authority)
}

/// Whether `authority` (a `Host` value, or an origin after its scheme) is `localhost`,
/// `127.0.0.1` or `[::1]`, with or without a port; the name compared without case.
pub(crate) fn is_localhost_authority(authority: &str) -> bool {
    let (host, port) = split_port(authority);
    ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .any(|name| name.eq_ignore_ascii_case(host))
        && port.is_none_or(is_port)
}

/// Splits `host[:port]` (host may be a bracketed IPv6 address).
fn split_port(authority: &str) -> (&str, Option<&str>) {
    let host_end = if authority.starts_with('[') {
        authority
            .find(']')
            .map_or(authority.len(), |close| close + 1)
    } else {
        authority.find(':').unwrap_or(authority.len())
    };
    let (host, rest) = authority.split_at(host_end);
    (
        host,
        rest.strip_prefix(':')
            .or(if rest.is_empty() { None } else { Some(rest) }),
    )
}

/// Whether `text` is a decimal TCP port, 1..=65535.
fn is_port(text: &str) -> bool {
    text.bytes().all(|byte| byte.is_ascii_digit())
        && text.parse::<u16>().is_ok_and(|port| port != 0)
}

/// Why `origin` is not a well-formed origin, or `None` if it is one.
fn origin_problem(origin: &str) -> Option<&'static str> {
    let Some(authority) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return Some("an origin starts with http:// or https://");
    };
    authority_problem(authority)
}

/// Why `authority` is not `host[:port]` as a browser sends it (in an origin, or as `Host`),
/// or `None` if it is.
fn authority_problem(authority: &str) -> Option<&'static str> {
    let (host, port) = split_port(authority);
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host.bytes().all(|byte| {
                byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"-.".contains(&byte)
            })
    };
    if !host_ok {
        return Some(
            "the host must be a lowercase name or ip address with no path, as browsers send it",
        );
    }
    if port.is_some_and(|port| !is_port(port)) {
        return Some("the port must be a number in 1..=65535 with nothing after it");
    }
    None
}

/// Why `name` is not an acceptable upstream name, or `None` if it is one.
fn upstream_name_problem(name: &str) -> Option<&'static str> {
    let charset_ok = name
        .bytes()
        .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"_-".contains(&byte));
    let length_ok = (1..=UPSTREAM_NAME_BYTES_MAX).contains(&name.len());
    (!charset_ok || !length_ok).then_some("names are 1 to 32 characters of [a-z0-9_-]")
}

/// Why `prefix` is not an acceptable upstream prefix, or `None` if it is one.
fn prefix_problem(prefix: &str) -> Option<&'static str> {
    let charset_ok = prefix
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || b"_-".contains(&byte));
    let length_ok = prefix.len() <= UPSTREAM_PREFIX_BYTES_MAX;
    (!charset_ok || !length_ok).then_some("prefixes are 0 to 32 characters of [A-Za-z0-9_-]")
}

/// Why `separator` is not an acceptable separator, or `None` if it is one.
fn separator_problem(separator: &str) -> Option<&'static str> {
    let charset_ok = separator.bytes().all(|byte| b"_-.:/".contains(&byte));
    let length_ok = (1..=UPSTREAM_SEPARATOR_BYTES_MAX).contains(&separator.len());
    (!charset_ok || !length_ok).then_some("separators are 1 to 4 characters of _ - . : /")
}

/// Records problems while the sections are checked.
struct Checker<'o> {
    origin: &'o str,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn server(&mut self, raw: &RawServer) -> Server {
        let listen = self.address("server.listen", &raw.listen);
        if !raw.path.starts_with('/')
            || raw
                .path
                .bytes()
                .any(|byte| !byte.is_ascii_graphic() || b"?#".contains(&byte))
        {
            let reason = "the path starts with '/' and holds visible ascii without '?' or '#'";
            self.invalid("server.path", &quoted(&raw.path), reason);
        }
        let cores = self.cores(&raw.cores);
        for (index, origin) in raw.allowed_origins.iter().enumerate() {
            if let Some(reason) = origin_problem(origin) {
                self.invalid(
                    &format!("server.allowed_origins[{index}]"),
                    &quoted(origin),
                    reason,
                );
            }
        }
        for (index, host) in raw.allowed_hosts.iter().enumerate() {
            if let Some(reason) = authority_problem(host) {
                self.invalid(
                    &format!("server.allowed_hosts[{index}]"),
                    &quoted(host),
                    reason,
                );
            }
        }
        let listen_valid = !self.has_error("server.listen");
        if listen_valid && raw.allowed_origins.is_empty() && !listen.ip().is_loopback() {
            let reason = format!(
                "is empty but server.listen {listen} is not loopback; an empty list accepts \
                 localhost origins only, which a web page can spoof by DNS rebinding once the \
                 gateway is reachable, so list the exact origins your clients send \
                 (e.g. [\"https://app.example.com\"])"
            );
            self.conflict("server.allowed_origins", reason);
        }
        Server {
            listen,
            path: raw.path.clone(),
            cores,
            allowed_origins: raw.allowed_origins.clone(),
            allowed_hosts: raw.allowed_hosts.clone(),
            drain_timeout_ms: self.number(
                "server.drain_timeout_ms",
                raw.drain_timeout_ms,
                bounds::DRAIN_TIMEOUT_MS,
            ),
            startup_timeout_ms: self.number(
                "server.startup_timeout_ms",
                raw.startup_timeout_ms,
                bounds::STARTUP_TIMEOUT_MS,
            ),
            io_memory_bytes: self.number(
                "server.io_memory_bytes",
                raw.io_memory_bytes,
                bounds::IO_MEMORY_BYTES,
            ),
        }
    }

    fn cores(&mut self, raw: &RawCores) -> Cores {
        match raw {
            RawCores::Word(word) if word == "all" => Cores::All,
            RawCores::Word(word) => {
                let reason = "accepted: \"all\", a core count, or an array of core ids";
                self.invalid("server.cores", &quoted(word), reason);
                Cores::All
            }
            RawCores::Count(count) => {
                Cores::Count(self.number("server.cores", *count, bounds::CORES_COUNT))
            }
            RawCores::List(ids) if ids.is_empty() => {
                self.invalid(
                    "server.cores",
                    "[]",
                    "the core list names at least one core",
                );
                Cores::All
            }
            RawCores::List(ids) if ids.len() > bounds::CORES_COUNT.max as usize => {
                let reason = format!(
                    "at most {} cores (one byte of shard number)",
                    bounds::CORES_COUNT.max
                );
                self.invalid("server.cores", &format!("{} cores", ids.len()), &reason);
                Cores::All
            }
            RawCores::List(ids) => {
                let mut checked: Vec<u16> = Vec::with_capacity(ids.len());
                for (index, &id) in ids.iter().enumerate() {
                    let key = format!("server.cores[{index}]");
                    let id: u16 = self.number(&key, id, bounds::CORE_ID);
                    if checked.contains(&id) && !self.has_error(&key) {
                        self.invalid(&key, &id.to_string(), "core ids must not repeat");
                    }
                    checked.push(id);
                }
                Cores::List(checked)
            }
        }
    }

    fn admin(&mut self, raw: &RawAdmin, server: &Server) -> Admin {
        let listen = self.address("admin.listen", &raw.listen);
        let both_valid = !self.has_error("admin.listen") && !self.has_error("server.listen");
        if both_valid && listen.port() != 0 && listen == server.listen {
            let reason =
                format!("{listen} is also server.listen; give the admin listener its own port");
            self.conflict("admin.listen", reason);
        }
        Admin {
            listen,
            connections_max: self.number(
                "admin.connections_max",
                raw.connections_max,
                bounds::ADMIN_CONNECTIONS_MAX,
            ),
        }
    }

    fn limits(&mut self, raw: &RawLimits) -> Limits {
        use bounds as b;
        Limits {
            connections_max: self.number(
                "limits.connections_max",
                raw.connections_max,
                b::CONNECTIONS_MAX,
            ),
            header_bytes_max: self.number(
                "limits.header_bytes_max",
                raw.header_bytes_max,
                b::HEADER_BYTES_MAX,
            ),
            headers_count_max: self.number(
                "limits.headers_count_max",
                raw.headers_count_max,
                b::HEADERS_COUNT_MAX,
            ),
            request_body_bytes_max: self.number(
                "limits.request_body_bytes_max",
                raw.request_body_bytes_max,
                b::REQUEST_BODY_BYTES_MAX,
            ),
            response_body_bytes_max: self.number(
                "limits.response_body_bytes_max",
                raw.response_body_bytes_max,
                b::RESPONSE_BODY_BYTES_MAX,
            ),
            header_read_timeout_ms: self.number(
                "limits.header_read_timeout_ms",
                raw.header_read_timeout_ms,
                b::HEADER_READ_TIMEOUT_MS,
            ),
            body_read_timeout_ms: self.number(
                "limits.body_read_timeout_ms",
                raw.body_read_timeout_ms,
                b::BODY_READ_TIMEOUT_MS,
            ),
            keepalive_idle_timeout_ms: self.number(
                "limits.keepalive_idle_timeout_ms",
                raw.keepalive_idle_timeout_ms,
                b::KEEPALIVE_IDLE_TIMEOUT_MS,
            ),
            mesh_messages_max: self.number(
                "limits.mesh_messages_max",
                raw.mesh_messages_max,
                b::MESH_MESSAGES_MAX,
            ),
            forwarded_requests_max: self.number(
                "limits.forwarded_requests_max",
                raw.forwarded_requests_max,
                b::FORWARDED_REQUESTS_MAX,
            ),
            sse_keepalive_interval_ms: self.number(
                "limits.sse_keepalive_interval_ms",
                raw.sse_keepalive_interval_ms,
                b::SSE_KEEPALIVE_INTERVAL_MS,
            ),
            json_depth_max: self.number(
                "limits.json_depth_max",
                raw.json_depth_max,
                b::JSON_DEPTH_MAX,
            ),
        }
    }

    fn sessions(&mut self, raw: &RawSessions) -> Sessions {
        use bounds as b;
        Sessions {
            sessions_max: self.number("sessions.sessions_max", raw.sessions_max, b::SESSIONS_MAX),
            session_idle_ttl_ms: self.number(
                "sessions.session_idle_ttl_ms",
                raw.session_idle_ttl_ms,
                b::SESSION_IDLE_TTL_MS,
            ),
            session_payload_bytes_max: self.number(
                "sessions.session_payload_bytes_max",
                raw.session_payload_bytes_max,
                b::SESSION_PAYLOAD_BYTES_MAX,
            ),
            retry_after_s: self.number(
                "sessions.retry_after_s",
                raw.retry_after_s,
                b::RETRY_AFTER_S,
            ),
        }
    }

    /// `[epoch]`, plus the rules tying it to `[sessions]`.
    fn epoch(&mut self, raw: &RawEpoch, sessions: &Sessions) -> Epoch {
        let tick_ms: u64 = self.number("epoch.tick_ms", raw.tick_ms, bounds::TICK_MS);
        let generations = self.number("epoch.generations", raw.generations, bounds::GENERATIONS);
        let ttl_valid = !self.has_error("sessions.session_idle_ttl_ms");
        if ttl_valid && !self.has_error("epoch.tick_ms") && sessions.session_idle_ttl_ms < tick_ms {
            let reason = format!(
                "{} is shorter than epoch.tick_ms {tick_ms}; sessions expire only on a tick, so \
                 the ttl must span at least one",
                sessions.session_idle_ttl_ms
            );
            self.conflict("sessions.session_idle_ttl_ms", reason);
        }
        let derived = raw.session_arena_bytes_max == 0;
        let session_arena_bytes_max = if derived {
            self.derived_session_arena(sessions)
        } else {
            self.number(
                "epoch.session_arena_bytes_max",
                raw.session_arena_bytes_max,
                bounds::SESSION_ARENA_BYTES_MAX,
            )
        };
        Epoch {
            tick_ms,
            generations,
            session_arena_bytes_max,
            session_arena_bytes_derived: derived,
        }
    }

    /// `sessions_max × session_payload_bytes_max`: evacuating every live session always fits.
    /// Never below `session_payload_bytes_max`, since `sessions_max` is at least 1.
    fn derived_session_arena(&mut self, sessions: &Sessions) -> u64 {
        let derived = u64::from(sessions.sessions_max) * sessions.session_payload_bytes_max;
        let limit = bounds::SESSION_ARENA_BYTES_MAX.max.unsigned_abs();
        let inputs_valid = !self.has_error("sessions.sessions_max")
            && !self.has_error("sessions.session_payload_bytes_max");
        if inputs_valid && derived > limit {
            let reason = format!(
                "0 derives sessions.sessions_max {} × sessions.session_payload_bytes_max {} = \
                 {derived} bytes, over the {limit} byte limit; lower either, or set \
                 epoch.session_arena_bytes_max explicitly",
                sessions.sessions_max, sessions.session_payload_bytes_max
            );
            self.conflict("epoch.session_arena_bytes_max", reason);
        }
        derived.max(sessions.session_payload_bytes_max)
    }

    /// `[pending]`, plus the rule tying its two caps together.
    fn pending(&mut self, raw: &RawPending) -> Pending {
        use bounds as b;
        let pending_max: u32 = self.number("pending.pending_max", raw.pending_max, b::PENDING_MAX);
        let per_upstream: u32 = self.number(
            "pending.pending_per_upstream_max",
            raw.pending_per_upstream_max,
            b::PENDING_PER_UPSTREAM_MAX,
        );
        let both_valid = !self.has_error("pending.pending_max")
            && !self.has_error("pending.pending_per_upstream_max");
        if both_valid && per_upstream > pending_max {
            let reason = format!(
                "{per_upstream} is more than pending.pending_max {pending_max}; one upstream's \
                 share of the shard's requests in flight cannot exceed the whole"
            );
            self.conflict("pending.pending_per_upstream_max", reason);
        }
        Pending {
            pending_max,
            pending_per_upstream_max: per_upstream.min(pending_max),
            request_id_bytes_max: self.number(
                "pending.request_id_bytes_max",
                raw.request_id_bytes_max,
                b::REQUEST_ID_BYTES_MAX,
            ),
            request_timeout_ms: self.number(
                "pending.request_timeout_ms",
                raw.request_timeout_ms,
                b::REQUEST_TIMEOUT_MS,
            ),
            stream_buffer_bytes_max: self.number(
                "pending.stream_buffer_bytes_max",
                raw.stream_buffer_bytes_max,
                b::STREAM_BUFFER_BYTES_MAX,
            ),
            input_rounds_max: self.number(
                "pending.input_rounds_max",
                raw.input_rounds_max,
                b::INPUT_ROUNDS_MAX,
            ),
        }
    }

    fn upstreams(
        &mut self,
        raw: &[RawUpstream],
        limits: &Limits,
        pending: &Pending,
    ) -> Vec<Upstream> {
        if raw.is_empty() {
            let reason = "is empty; add at least one [[upstreams]] entry \
                          (kind = \"builtin\" serves demo tools)";
            self.conflict("upstreams", reason.to_owned());
        }
        if raw.len() > bounds::UPSTREAMS_COUNT_MAX {
            let reason = format!(
                "has {} entries; at most {} upstreams are accepted",
                raw.len(),
                bounds::UPSTREAMS_COUNT_MAX
            );
            self.conflict("upstreams", reason);
        }
        let mut upstreams: Vec<Upstream> = Vec::with_capacity(raw.len());
        for (index, entry) in raw.iter().enumerate() {
            let key = format!("upstreams[{index}]");
            self.upstream_name(&key, entry, &upstreams);
            let upstream = self.upstream(&key, entry, limits, pending);
            self.prefix_collision(&key, &upstream, &upstreams);
            upstreams.push(upstream);
        }
        upstreams
    }

    fn upstream_name(&mut self, key: &str, entry: &RawUpstream, seen: &[Upstream]) {
        let key = format!("{key}.name");
        if let Some(reason) = upstream_name_problem(&entry.name) {
            self.invalid(&key, &quoted(&entry.name), reason);
        } else if let Some(first) = seen.iter().position(|seen| seen.name == entry.name) {
            let reason = format!("upstreams[{first}] already uses this name; names are unique");
            self.invalid(&key, &quoted(&entry.name), &reason);
        }
    }

    /// The keys every kind has, then the kind's own.
    fn upstream(
        &mut self,
        key: &str,
        entry: &RawUpstream,
        limits: &Limits,
        pending: &Pending,
    ) -> Upstream {
        use bounds as b;
        let at = |name: &str| format!("{key}.{name}");
        if let Some(prefix) = &entry.prefix {
            if let Some(reason) = prefix_problem(prefix) {
                self.invalid(&at("prefix"), &quoted(prefix), reason);
            }
        }
        if let Some(separator) = &entry.separator {
            if let Some(reason) = separator_problem(separator) {
                self.invalid(&at("separator"), &quoted(separator), reason);
            }
        }
        let timeout_default = i64::try_from(pending.request_timeout_ms).unwrap_or(i64::MAX);
        Upstream {
            name: entry.name.clone(),
            kind: self.upstream_kind(key, entry, limits),
            prefix: entry.prefix.clone().unwrap_or_else(|| entry.name.clone()),
            separator: entry
                .separator
                .clone()
                .unwrap_or_else(|| UPSTREAM_SEPARATOR_DEFAULT.to_owned()),
            required: entry.required.unwrap_or(true),
            request_timeout_ms: self.optional(
                &at("request_timeout_ms"),
                entry.request_timeout_ms,
                b::REQUEST_TIMEOUT_MS,
                timeout_default,
            ),
            breaker_failures: self.optional(
                &at("breaker_failures"),
                entry.breaker_failures,
                b::BREAKER_FAILURES,
                b::BREAKER_FAILURES.default,
            ),
            breaker_open_ms: self.optional(
                &at("breaker_open_ms"),
                entry.breaker_open_ms,
                b::BREAKER_OPEN_MS,
                b::BREAKER_OPEN_MS.default,
            ),
        }
    }

    /// Refuses a non-empty (prefix, separator) that an earlier upstream already has: their
    /// merged tool names would collide. Empty prefixes merge names as the upstreams give them,
    /// so whether those collide is known only from the upstreams' lists, at start-up.
    fn prefix_collision(&mut self, key: &str, upstream: &Upstream, seen: &[Upstream]) {
        let prefix_key = format!("{key}.prefix");
        let own_keys_valid = !self.has_error(&prefix_key)
            && !self.has_error(&format!("{key}.separator"))
            && !self.has_error(&format!("{key}.name"));
        if upstream.prefix.is_empty() || !own_keys_valid {
            return;
        }
        let same = |other: &Upstream| {
            other.prefix == upstream.prefix && other.separator == upstream.separator
        };
        if let Some(first) = seen.iter().position(same) {
            let reason = format!(
                "{:?} is also upstreams[{first}]'s prefix (upstream {:?}, separator {:?}): \
                 merged names would collide; give {:?} or {:?} another prefix or separator",
                upstream.prefix,
                seen[first].name,
                upstream.separator,
                upstream.name,
                seen[first].name
            );
            self.conflict(&prefix_key, reason);
        }
    }

    fn upstream_kind(&mut self, key: &str, entry: &RawUpstream, limits: &Limits) -> UpstreamKind {
        let sleep_ms_max = |checker: &mut Self| {
            checker.optional(
                &format!("{key}.sleep_ms_max"),
                entry.sleep_ms_max,
                bounds::SLEEP_MS_MAX,
                bounds::SLEEP_MS_MAX.default,
            )
        };
        match entry.kind.as_str() {
            "builtin" => UpstreamKind::Builtin {
                sleep_ms_max: sleep_ms_max(self),
            },
            "http" => UpstreamKind::Http(self.http_upstream(key, entry, limits)),
            "stdio" => UpstreamKind::Stdio(self.stdio_upstream(key, entry, limits)),
            _ => {
                let reason = format!("unknown kind (accepted: {})", UPSTREAM_KINDS.join(", "));
                self.invalid(&format!("{key}.kind"), &quoted(&entry.kind), &reason);
                UpstreamKind::Builtin {
                    sleep_ms_max: bounds::SLEEP_MS_MAX.default.unsigned_abs(),
                }
            }
        }
    }

    /// Where a `kind = "http"` upstream is and how its sessions are kept: `url` (form only;
    /// the host resolves at start-up) and `session_mode`.
    fn http_target(&mut self, key: &str, entry: &RawUpstream) -> (String, SessionMode) {
        let at = |name: &str| format!("{key}.{name}");
        let url = match &entry.url {
            None => {
                self.missing(&at("url"), "kind = \"http\"", "http://host[:port][/path]");
                String::new()
            }
            Some(url) => {
                if let Err(reason) = UpstreamUrl::check_syntax(url) {
                    self.invalid(&at("url"), &quoted(url), &reason);
                }
                url.clone()
            }
        };
        let session_mode = match entry.session_mode.as_deref() {
            None | Some("shared") => SessionMode::Shared,
            Some("per_client") => SessionMode::PerClient,
            Some(other) => {
                let reason = "accepted: \"shared\" (one upstream session per shard, which \
                              every client's calls use) or \"per_client\" (one upstream \
                              session per client session)";
                self.invalid(&at("session_mode"), &quoted(other), reason);
                SessionMode::Shared
            }
        };
        (url, session_mode)
    }

    /// The keys of a `kind = "http"` upstream.
    fn http_upstream(&mut self, key: &str, entry: &RawUpstream, limits: &Limits) -> HttpUpstream {
        use bounds as b;
        let at = |name: &str| format!("{key}.{name}");
        let (url, session_mode) = self.http_target(key, entry);
        let body_default = i64::try_from(limits.response_body_bytes_max).unwrap_or(i64::MAX);
        HttpUpstream {
            url,
            session_mode,
            pool: PoolLimits {
                pool_connections_max: self.optional(
                    &at("pool_connections_max"),
                    entry.pool_connections_max,
                    b::POOL_CONNECTIONS_MAX,
                    b::POOL_CONNECTIONS_MAX.default,
                ),
                pool_waiters_max: self.optional(
                    &at("pool_waiters_max"),
                    entry.pool_waiters_max,
                    b::POOL_WAITERS_MAX,
                    b::POOL_WAITERS_MAX.default,
                ),
                connect_timeout_ms: self.optional(
                    &at("connect_timeout_ms"),
                    entry.connect_timeout_ms,
                    b::CONNECT_TIMEOUT_MS,
                    b::CONNECT_TIMEOUT_MS.default,
                ),
                pool_idle_timeout_ms: self.optional(
                    &at("pool_idle_timeout_ms"),
                    entry.pool_idle_timeout_ms,
                    b::POOL_IDLE_TIMEOUT_MS,
                    b::POOL_IDLE_TIMEOUT_MS.default,
                ),
                pool_lifetime_ms: self.optional(
                    &at("pool_lifetime_ms"),
                    entry.pool_lifetime_ms,
                    b::POOL_LIFETIME_MS,
                    b::POOL_LIFETIME_MS.default,
                ),
                client: ClientLimits {
                    response_head_bytes_max: self.optional(
                        &at("response_head_bytes_max"),
                        entry.response_head_bytes_max,
                        b::RESPONSE_HEAD_BYTES_MAX,
                        b::RESPONSE_HEAD_BYTES_MAX.default,
                    ),
                    response_headers_count_max: self.optional(
                        &at("response_headers_count_max"),
                        entry.response_headers_count_max,
                        b::RESPONSE_HEADERS_COUNT_MAX,
                        b::RESPONSE_HEADERS_COUNT_MAX.default,
                    ),
                    // The codec buffers a body up to the gateway's own response limit.
                    response_body_bytes_max: u32::try_from(limits.response_body_bytes_max)
                        .unwrap_or(u32::MAX),
                    sse_event_bytes_max: self.optional(
                        &at("sse_event_bytes_max"),
                        entry.sse_event_bytes_max,
                        b::SSE_EVENT_BYTES_MAX,
                        body_default,
                    ),
                },
            },
        }
    }

    /// The keys of a `kind = "stdio"` upstream: what to run, then its limits.
    fn stdio_upstream(&mut self, key: &str, entry: &RawUpstream, limits: &Limits) -> StdioUpstream {
        let at = |name: &str| format!("{key}.{name}");
        let command = match &entry.command {
            None => {
                let expected = "the program to run, looked up in PATH when it has no slash";
                self.missing(&at("command"), "kind = \"stdio\"", expected);
                String::new()
            }
            Some(command) => {
                if command.is_empty() || command.contains('\0') {
                    let reason = "a command is a non-empty program name or path without NUL";
                    self.invalid(&at("command"), &quoted(command), reason);
                }
                command.clone()
            }
        };
        let args = entry.args.clone().unwrap_or_default();
        for (index, arg) in args.iter().enumerate() {
            if arg.contains('\0') {
                self.invalid(&at(&format!("args[{index}]")), &quoted(arg), "contains NUL");
            }
        }
        let env: Vec<(String, String)> =
            entry.env.clone().unwrap_or_default().into_iter().collect();
        for (name, value) in &env {
            let env_key = at(&format!("env.{name}"));
            if name.is_empty() || name.contains(['=', '\0']) {
                let reason = "variable names are non-empty, without '=' or NUL";
                self.invalid(&env_key, &quoted(name), reason);
            } else if value.contains('\0') {
                self.invalid(&env_key, &quoted(value), "contains NUL");
            }
        }
        let cwd = entry.cwd.as_ref().map(|cwd| {
            if cwd.is_empty() || cwd.contains('\0') {
                let reason = "a directory path is non-empty and without NUL";
                self.invalid(&at("cwd"), &quoted(cwd), reason);
            }
            std::path::PathBuf::from(cwd)
        });
        StdioUpstream {
            command,
            args,
            env,
            cwd,
            limits: self.stdio_limits(key, entry, limits),
        }
    }

    /// The numeric keys of a `kind = "stdio"` upstream, plus the rule tying the two backoff
    /// keys together.
    fn stdio_limits(&mut self, key: &str, entry: &RawUpstream, limits: &Limits) -> StdioLimits {
        use bounds as b;
        let at = |name: &str| format!("{key}.{name}");
        let body_default = i64::try_from(limits.response_body_bytes_max).unwrap_or(i64::MAX);
        let mut number = |name: &str, value: Option<i64>, bound: Bound| -> u32 {
            self.optional(&at(name), value, bound, bound.default)
        };
        let stderr_line_bytes_max = number(
            "stderr_line_bytes_max",
            entry.stderr_line_bytes_max,
            b::STDERR_LINE_BYTES_MAX,
        );
        let inbound = number(
            "inbound_messages_max",
            entry.inbound_messages_max,
            b::INBOUND_MESSAGES_MAX,
        );
        let outbound = number(
            "outbound_messages_max",
            entry.outbound_messages_max,
            b::OUTBOUND_MESSAGES_MAX,
        );
        let backoff = number(
            "restart_backoff_ms",
            entry.restart_backoff_ms,
            b::RESTART_BACKOFF_MS,
        );
        let backoff_max = number(
            "restart_backoff_max_ms",
            entry.restart_backoff_max_ms,
            b::RESTART_BACKOFF_MAX_MS,
        );
        let healthy_after_ms = number(
            "healthy_after_ms",
            entry.healthy_after_ms,
            b::HEALTHY_AFTER_MS,
        );
        let kill_grace_ms = number("kill_grace_ms", entry.kill_grace_ms, b::KILL_GRACE_MS);
        let exit_poll_ms = number("exit_poll_ms", entry.exit_poll_ms, b::EXIT_POLL_MS);
        let both_valid = !self.has_error(&at("restart_backoff_ms"))
            && !self.has_error(&at("restart_backoff_max_ms"));
        if both_valid && backoff > backoff_max {
            let reason = format!(
                "{backoff} is more than {key}.restart_backoff_max_ms {backoff_max}; the first \
                 wait before a restart cannot exceed the longest"
            );
            self.conflict(&at("restart_backoff_ms"), reason);
        }
        StdioLimits {
            message_bytes_max: self.optional(
                &at("message_bytes_max"),
                entry.message_bytes_max,
                b::MESSAGE_BYTES_MAX,
                body_default,
            ),
            stderr_line_bytes_max,
            inbound_messages_max: inbound,
            outbound_messages_max: outbound,
            restart_backoff_ms: backoff.min(backoff_max),
            restart_backoff_max_ms: backoff_max,
            healthy_after_ms,
            kill_grace_ms,
            exit_poll_ms,
        }
    }

    /// `value`, or `absent` when the key is absent, if `bound` accepts it; else records the
    /// error and yields the bound's default.
    fn optional<T: TryFrom<i64>>(
        &mut self,
        key: &str,
        value: Option<i64>,
        bound: Bound,
        absent: i64,
    ) -> T {
        debug_assert!(
            bound.accepts(absent),
            "{key}: the value used when absent is in range"
        );
        self.number(key, value.unwrap_or(absent), bound)
    }

    /// `value` if `bound` accepts it, else records the error and yields the default.
    fn number<T: TryFrom<i64>>(&mut self, key: &str, value: i64, bound: Bound) -> T {
        let checked = if bound.accepts(value) {
            value
        } else {
            self.push(
                key,
                ConfigErrorKind::OutOfRange {
                    value: value.to_string(),
                    accepted: format!("{}..={}", bound.min, bound.max),
                },
            );
            bound.default
        };
        match T::try_from(checked) {
            Ok(number) => number,
            Err(_) => unreachable!("bounds.rs asserts that every range fits its field's type"),
        }
    }

    fn address(&mut self, key: &str, value: &str) -> SocketAddr {
        value.parse().unwrap_or_else(|_| {
            let reason = "expected ip:port, such as 127.0.0.1:8080 or [::1]:8080";
            self.invalid(key, &quoted(value), reason);
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }

    fn invalid(&mut self, key: &str, value: &str, reason: &str) {
        let kind = ConfigErrorKind::Invalid {
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        self.push(key, kind);
    }

    fn missing(&mut self, key: &str, required_by: &str, expected: &str) {
        let kind = ConfigErrorKind::Missing {
            required_by: required_by.to_owned(),
            expected: expected.to_owned(),
        };
        self.push(key, kind);
    }

    fn conflict(&mut self, key: &str, reason: String) {
        self.push(key, ConfigErrorKind::Conflict { reason });
    }

    fn push(&mut self, key: &str, kind: ConfigErrorKind) {
        self.errors.push(ConfigError {
            origin: self.origin.to_owned(),
            location: None,
            key: key.to_owned(),
            kind,
        });
    }

    /// Whether `key` (or an element of it, `key[i]`) already has an error.
    fn has_error(&self, key: &str) -> bool {
        self.errors.iter().any(|error| {
            error.key == key
                || error
                    .key
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.starts_with('['))
        })
    }
}

/// `value` as a TOML string literal, for error messages.
fn quoted(value: &str) -> String {
    format!("{value:?}")
}
