//! Validation: the raw, as-written config checked once into the immutable `Config`.
//!
//! Every check runs even after an earlier one failed, so all problems are reported together.
//! A failed check records its error and yields a placeholder (the key's default) that never
//! leaves this module: any recorded error makes `validate` return `Err`. Cross-field rules run
//! only when the keys they read were valid on their own, so one typo gives one error.

use std::net::SocketAddr;

use super::bounds::{self, Bound};
use super::error::{ConfigError, ConfigErrorKind};
use super::raw::RawUpstream;
use super::raw::{RawAdmin, RawConfig, RawCores, RawEpoch, RawLimits, RawServer, RawSessions};
use super::{
    Admin, Config, Cores, Epoch, Limits, Pending, Server, Sessions, Upstream, UpstreamKind,
};

/// Accepted values of `upstreams[i].kind`.
const UPSTREAM_KINDS: &[&str] = &["builtin"];
/// Longest upstream name, in bytes.
const UPSTREAM_NAME_BYTES_MAX: usize = 32;

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
    let upstreams = checker.upstreams(&raw.upstreams.0);
    if !checker.errors.is_empty() {
        return Err(checker.errors);
    }
    assert!(epoch.session_arena_bytes_max >= sessions.session_payload_bytes_max);
    assert!(sessions.session_idle_ttl_ms >= epoch.tick_ms);
    assert!(!upstreams.is_empty());
    Ok(Config {
        server,
        admin,
        limits,
        sessions,
        epoch,
        pending: Pending {
            pending_max: 1000,
            pending_per_upstream_max: 500,
            request_id_bytes_max: 128,
            request_timeout_ms: 300_000,
            stream_buffer_bytes_max: 262_144,
        },
        upstreams,
    })
}

/// Whether `origin` is an `http`/`https` origin on `localhost`, `127.0.0.1` or `[::1]`, with or
/// without a port.
pub(crate) fn is_localhost_origin(origin: &str) -> bool {
    let Some(authority) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let (host, port) = split_port(authority);
    ["localhost", "127.0.0.1", "[::1]"].contains(&host) && port.is_none_or(is_port)
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
            drain_timeout_ms: self.number(
                "server.drain_timeout_ms",
                raw.drain_timeout_ms,
                bounds::DRAIN_TIMEOUT_MS,
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
        Admin { listen }
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

    fn upstreams(&mut self, raw: &[RawUpstream]) -> Vec<Upstream> {
        if raw.is_empty() {
            let reason = "is empty; add at least one [[upstreams]] entry \
                          (kind = \"builtin\" serves demo tools)";
            self.conflict("upstreams", reason.to_owned());
        }
        let mut upstreams: Vec<Upstream> = Vec::with_capacity(raw.len());
        for (index, entry) in raw.iter().enumerate() {
            let key = format!("upstreams[{index}].name");
            if let Some(reason) = upstream_name_problem(&entry.name) {
                self.invalid(&key, &quoted(&entry.name), reason);
            } else if let Some(first) = upstreams.iter().position(|seen| seen.name == entry.name) {
                let reason = format!("upstreams[{first}] already uses this name; names are unique");
                self.invalid(&key, &quoted(&entry.name), &reason);
            }
            let kind = self.upstream_kind(index, entry);
            upstreams.push(Upstream {
                name: entry.name.clone(),
                kind,
                prefix: entry.name.clone(),
                separator: "__".to_owned(),
                required: true,
                request_timeout_ms: 300_000,
                breaker_failures: 3,
                breaker_open_ms: 60_000,
            });
        }
        upstreams
    }

    fn upstream_kind(&mut self, index: usize, entry: &RawUpstream) -> UpstreamKind {
        if !UPSTREAM_KINDS.contains(&entry.kind.as_str()) {
            let reason = format!("unknown kind (accepted: {})", UPSTREAM_KINDS.join(", "));
            self.invalid(
                &format!("upstreams[{index}].kind"),
                &quoted(&entry.kind),
                &reason,
            );
        }
        let sleep_ms_max = entry.sleep_ms_max.unwrap_or(bounds::SLEEP_MS_MAX.default);
        UpstreamKind::Builtin {
            sleep_ms_max: self.number(
                &format!("upstreams[{index}].sleep_ms_max"),
                sleep_ms_max,
                bounds::SLEEP_MS_MAX,
            ),
        }
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
