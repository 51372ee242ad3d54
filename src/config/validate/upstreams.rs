//! `[[upstreams]]`: each entry's name, prefix and separator, the keys every kind has, and the
//! keys of its kind (`builtin`, `http`, `stdio`); names must not repeat, nor non-empty
//! prefixes with their separator.

use super::{quoted, Checker};
use crate::config::bounds as b;
use crate::config::limits::{ClientLimits, PoolLimits, StdioLimits};
use crate::config::raw::RawUpstream;
use crate::config::url::UpstreamUrl;
use crate::config::{
    HttpUpstream, Limits, Pending, SessionMode, StdioUpstream, Upstream, UpstreamKind,
};

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

impl Checker<'_> {
    pub(super) fn upstreams(
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
        if raw.len() > b::UPSTREAMS_COUNT_MAX {
            let reason = format!(
                "has {} entries; at most {} upstreams are accepted",
                raw.len(),
                b::UPSTREAMS_COUNT_MAX
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
        let kind = self.upstream_kind(key, entry, limits);
        let timeout_default = i64::try_from(pending.request_timeout_ms).unwrap_or(i64::MAX);
        ranged!(self, key, entry, {
            request_timeout_ms: u64 = b::REQUEST_TIMEOUT_MS | timeout_default,
            breaker_failures: u32 = b::BREAKER_FAILURES,
            breaker_open_ms: u64 = b::BREAKER_OPEN_MS,
        });
        Upstream {
            name: entry.name.clone(),
            kind,
            prefix: entry.prefix.clone().unwrap_or_else(|| entry.name.clone()),
            separator: entry
                .separator
                .clone()
                .unwrap_or_else(|| UPSTREAM_SEPARATOR_DEFAULT.to_owned()),
            required: entry.required.unwrap_or(true),
            request_timeout_ms,
            breaker_failures,
            breaker_open_ms,
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
        match entry.kind.as_str() {
            "builtin" => {
                ranged!(self, key, entry, {
                    sleep_ms_max: u64 = b::SLEEP_MS_MAX,
                });
                UpstreamKind::Builtin { sleep_ms_max }
            }
            "http" => UpstreamKind::Http(self.http_upstream(key, entry, limits)),
            "stdio" => UpstreamKind::Stdio(self.stdio_upstream(key, entry, limits)),
            _ => {
                let reason = format!("unknown kind (accepted: {})", UPSTREAM_KINDS.join(", "));
                self.invalid(&format!("{key}.kind"), &quoted(&entry.kind), &reason);
                UpstreamKind::Builtin {
                    sleep_ms_max: b::SLEEP_MS_MAX.default.unsigned_abs(),
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
        let (url, session_mode) = self.http_target(key, entry);
        let body_default = i64::try_from(limits.response_body_bytes_max).unwrap_or(i64::MAX);
        ranged!(self, key, entry, {
            pool_connections_max: u32 = b::POOL_CONNECTIONS_MAX,
            pool_waiters_max: u32 = b::POOL_WAITERS_MAX,
            connect_timeout_ms: u64 = b::CONNECT_TIMEOUT_MS,
            pool_idle_timeout_ms: u64 = b::POOL_IDLE_TIMEOUT_MS,
            pool_lifetime_ms: u64 = b::POOL_LIFETIME_MS,
            response_head_bytes_max: u32 = b::RESPONSE_HEAD_BYTES_MAX,
            response_headers_count_max: u16 = b::RESPONSE_HEADERS_COUNT_MAX,
            sse_event_bytes_max: u32 = b::SSE_EVENT_BYTES_MAX | body_default,
        });
        HttpUpstream {
            url,
            session_mode,
            pool: PoolLimits {
                pool_connections_max,
                pool_waiters_max,
                connect_timeout_ms,
                pool_idle_timeout_ms,
                pool_lifetime_ms,
                client: ClientLimits {
                    response_head_bytes_max,
                    response_headers_count_max,
                    // The codec buffers a body up to the gateway's own response limit.
                    response_body_bytes_max: u32::try_from(limits.response_body_bytes_max)
                        .unwrap_or(u32::MAX),
                    sse_event_bytes_max,
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
        ranged!(self, key, entry, {
            stderr_line_bytes_max: u32 = b::STDERR_LINE_BYTES_MAX,
            inbound_messages_max: u32 = b::INBOUND_MESSAGES_MAX,
            outbound_messages_max: u32 = b::OUTBOUND_MESSAGES_MAX,
            restart_backoff_ms: u32 = b::RESTART_BACKOFF_MS,
            restart_backoff_max_ms: u32 = b::RESTART_BACKOFF_MAX_MS,
            healthy_after_ms: u32 = b::HEALTHY_AFTER_MS,
            kill_grace_ms: u32 = b::KILL_GRACE_MS,
            exit_poll_ms: u32 = b::EXIT_POLL_MS,
        });
        let at = |name: &str| format!("{key}.{name}");
        let both_valid = !self.has_error(&at("restart_backoff_ms"))
            && !self.has_error(&at("restart_backoff_max_ms"));
        if both_valid && restart_backoff_ms > restart_backoff_max_ms {
            let reason = format!(
                "{restart_backoff_ms} is more than {key}.restart_backoff_max_ms \
                 {restart_backoff_max_ms}; the first wait before a restart cannot exceed the \
                 longest"
            );
            self.conflict(&at("restart_backoff_ms"), reason);
        }
        let body_default = i64::try_from(limits.response_body_bytes_max).unwrap_or(i64::MAX);
        ranged!(self, key, entry, {
            message_bytes_max: u32 = b::MESSAGE_BYTES_MAX | body_default,
        });
        StdioLimits {
            message_bytes_max,
            stderr_line_bytes_max,
            inbound_messages_max,
            outbound_messages_max,
            restart_backoff_ms: restart_backoff_ms.min(restart_backoff_max_ms),
            restart_backoff_max_ms,
            healthy_after_ms,
            kill_grace_ms,
            exit_poll_ms,
        }
    }
}
