//! The raw config: TOML text decoded into serde structs that mirror the file, unchecked.
//!
//! Numbers stay `i64` (TOML's integer) and addresses stay strings, so validation can name any
//! bad value with its key and its accepted range. Decoding goes section by section, so one
//! section's problems do not hide another's: every unknown key is reported with its path (and
//! dropped, so the rest of its section is still decoded and validated), then the first type
//! error of each section or upstream. Absent keys take the defaults in `bounds.rs`.

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Visitor};
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::bounds;
use super::error::{ConfigError, ConfigErrorKind, Location};

/// The whole file, one field per top-level table.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub server: RawServer,
    pub admin: RawAdmin,
    pub limits: RawLimits,
    pub sessions: RawSessions,
    pub epoch: RawEpoch,
    pub pending: RawPending,
    pub upstreams: RawUpstreams,
}

/// `[server]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: String,
    pub path: String,
    pub cores: RawCores,
    pub allowed_origins: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub drain_timeout_ms: i64,
    pub startup_timeout_ms: i64,
    pub io_memory_bytes: i64,
}

impl Default for RawServer {
    fn default() -> RawServer {
        RawServer {
            listen: "127.0.0.1:8080".to_owned(),
            path: "/mcp".to_owned(),
            cores: RawCores::Word("all".to_owned()),
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            drain_timeout_ms: bounds::DRAIN_TIMEOUT_MS.default,
            startup_timeout_ms: bounds::STARTUP_TIMEOUT_MS.default,
            io_memory_bytes: bounds::IO_MEMORY_BYTES.default,
        }
    }
}

/// `server.cores`: `"all"`, a count, or a list of core ids.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(
    untagged,
    expecting = "expected \"all\", a core count, or an array of core ids"
)]
pub(crate) enum RawCores {
    Word(String),
    Count(i64),
    List(Vec<i64>),
}

/// `[admin]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub listen: String,
    pub connections_max: i64,
}

impl Default for RawAdmin {
    fn default() -> RawAdmin {
        RawAdmin {
            listen: "127.0.0.1:9090".to_owned(),
            connections_max: bounds::ADMIN_CONNECTIONS_MAX.default,
        }
    }
}

/// `[limits]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub connections_max: i64,
    pub header_bytes_max: i64,
    pub headers_count_max: i64,
    pub request_body_bytes_max: i64,
    pub response_body_bytes_max: i64,
    pub header_read_timeout_ms: i64,
    pub body_read_timeout_ms: i64,
    pub keepalive_idle_timeout_ms: i64,
    pub mesh_messages_max: i64,
    pub forwarded_requests_max: i64,
    pub sse_keepalive_interval_ms: i64,
    pub json_depth_max: i64,
}

impl Default for RawLimits {
    fn default() -> RawLimits {
        RawLimits {
            connections_max: bounds::CONNECTIONS_MAX.default,
            header_bytes_max: bounds::HEADER_BYTES_MAX.default,
            headers_count_max: bounds::HEADERS_COUNT_MAX.default,
            request_body_bytes_max: bounds::REQUEST_BODY_BYTES_MAX.default,
            response_body_bytes_max: bounds::RESPONSE_BODY_BYTES_MAX.default,
            header_read_timeout_ms: bounds::HEADER_READ_TIMEOUT_MS.default,
            body_read_timeout_ms: bounds::BODY_READ_TIMEOUT_MS.default,
            keepalive_idle_timeout_ms: bounds::KEEPALIVE_IDLE_TIMEOUT_MS.default,
            mesh_messages_max: bounds::MESH_MESSAGES_MAX.default,
            forwarded_requests_max: bounds::FORWARDED_REQUESTS_MAX.default,
            sse_keepalive_interval_ms: bounds::SSE_KEEPALIVE_INTERVAL_MS.default,
            json_depth_max: bounds::JSON_DEPTH_MAX.default,
        }
    }
}

/// `[sessions]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawSessions {
    pub sessions_max: i64,
    pub session_idle_ttl_ms: i64,
    pub session_payload_bytes_max: i64,
    pub retry_after_s: i64,
}

impl Default for RawSessions {
    fn default() -> RawSessions {
        RawSessions {
            sessions_max: bounds::SESSIONS_MAX.default,
            session_idle_ttl_ms: bounds::SESSION_IDLE_TTL_MS.default,
            session_payload_bytes_max: bounds::SESSION_PAYLOAD_BYTES_MAX.default,
            retry_after_s: bounds::RETRY_AFTER_S.default,
        }
    }
}

/// `[epoch]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawEpoch {
    pub tick_ms: i64,
    pub generations: i64,
    pub session_arena_bytes_max: i64,
}

impl Default for RawEpoch {
    fn default() -> RawEpoch {
        RawEpoch {
            tick_ms: bounds::TICK_MS.default,
            generations: bounds::GENERATIONS.default,
            session_arena_bytes_max: 0,
        }
    }
}

/// `[pending]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawPending {
    pub pending_max: i64,
    pub pending_per_upstream_max: i64,
    pub request_id_bytes_max: i64,
    pub request_timeout_ms: i64,
    pub stream_buffer_bytes_max: i64,
    pub input_rounds_max: i64,
}

impl Default for RawPending {
    fn default() -> RawPending {
        RawPending {
            pending_max: bounds::PENDING_MAX.default,
            pending_per_upstream_max: bounds::PENDING_PER_UPSTREAM_MAX.default,
            request_id_bytes_max: bounds::REQUEST_ID_BYTES_MAX.default,
            request_timeout_ms: bounds::REQUEST_TIMEOUT_MS.default,
            stream_buffer_bytes_max: bounds::STREAM_BUFFER_BYTES_MAX.default,
            input_rounds_max: bounds::INPUT_ROUNDS_MAX.default,
        }
    }
}

/// `[[upstreams]]`; absent means the one builtin demo upstream, so a fresh install serves
/// something. An explicit empty array is refused by validation.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RawUpstreams(pub Vec<RawUpstream>);

impl Default for RawUpstreams {
    fn default() -> RawUpstreams {
        RawUpstreams(vec![RawUpstream {
            name: "demo".to_owned(),
            kind: "builtin".to_owned(),
            ..RawUpstream::default()
        }])
    }
}

impl<'de> Deserialize<'de> for RawUpstreams {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::deserialize(deserializer).map(RawUpstreams)
    }
}

/// One `[[upstreams]]` entry: the keys of every kind, each optional but `name` and `kind`.
/// Which keys a kind accepts is `UPSTREAM_KEYS_*` below; the decoder refuses the others.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    pub name: String,
    pub kind: String,
    pub prefix: Option<String>,
    pub separator: Option<String>,
    pub required: Option<bool>,
    pub request_timeout_ms: Option<i64>,
    pub breaker_failures: Option<i64>,
    pub breaker_open_ms: Option<i64>,
    // builtin
    pub sleep_ms_max: Option<i64>,
    // http
    pub url: Option<String>,
    pub session_mode: Option<String>,
    pub pool_connections_max: Option<i64>,
    pub pool_waiters_max: Option<i64>,
    pub connect_timeout_ms: Option<i64>,
    pub pool_idle_timeout_ms: Option<i64>,
    pub pool_lifetime_ms: Option<i64>,
    pub response_head_bytes_max: Option<i64>,
    pub response_headers_count_max: Option<i64>,
    pub sse_event_bytes_max: Option<i64>,
    // stdio
    pub command: Option<String>,
    pub args: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, String>>,
    pub cwd: Option<String>,
    pub message_bytes_max: Option<i64>,
    pub stderr_line_bytes_max: Option<i64>,
    pub inbound_messages_max: Option<i64>,
    pub outbound_messages_max: Option<i64>,
    pub restart_backoff_ms: Option<i64>,
    pub restart_backoff_max_ms: Option<i64>,
    pub healthy_after_ms: Option<i64>,
    pub kill_grace_ms: Option<i64>,
    pub exit_poll_ms: Option<i64>,
}

/// Keys every upstream kind accepts.
pub(crate) const UPSTREAM_KEYS_COMMON: &[&str] = &[
    "name",
    "kind",
    "prefix",
    "separator",
    "required",
    "request_timeout_ms",
    "breaker_failures",
    "breaker_open_ms",
];
/// Keys only `kind = "builtin"` accepts.
pub(crate) const UPSTREAM_KEYS_BUILTIN: &[&str] = &["sleep_ms_max"];
/// Keys only `kind = "http"` accepts.
pub(crate) const UPSTREAM_KEYS_HTTP: &[&str] = &[
    "url",
    "session_mode",
    "pool_connections_max",
    "pool_waiters_max",
    "connect_timeout_ms",
    "pool_idle_timeout_ms",
    "pool_lifetime_ms",
    "response_head_bytes_max",
    "response_headers_count_max",
    "sse_event_bytes_max",
];
/// Keys only `kind = "stdio"` accepts.
pub(crate) const UPSTREAM_KEYS_STDIO: &[&str] = &[
    "command",
    "args",
    "env",
    "cwd",
    "message_bytes_max",
    "stderr_line_bytes_max",
    "inbound_messages_max",
    "outbound_messages_max",
    "restart_backoff_ms",
    "restart_backoff_max_ms",
    "healthy_after_ms",
    "kill_grace_ms",
    "exit_poll_ms",
];

/// The kind-specific keys of `kind`, or `None` for a kind that does not exist (validation
/// reports that; its keys are not checked against a kind).
pub(crate) fn kind_keys(kind: &str) -> Option<(&'static str, &'static [&'static str])> {
    match kind {
        "builtin" => Some(("builtin", UPSTREAM_KEYS_BUILTIN)),
        "http" => Some(("http", UPSTREAM_KEYS_HTTP)),
        "stdio" => Some(("stdio", UPSTREAM_KEYS_STDIO)),
        _ => None,
    }
}

/// What decoding found: the raw config (a section that failed to decode keeps its defaults),
/// the problems, and the key paths whose values could not be decoded.
pub(crate) struct Decoded {
    pub raw: RawConfig,
    pub errors: Vec<ConfigError>,
    /// Sections (`server`, `upstreams`) left at their defaults because they did not decode;
    /// validation errors under them would describe defaults, not the file.
    pub undecoded: Vec<String>,
}

/// Decodes `text` into a `RawConfig`, recording every problem found on the way.
pub(crate) fn decode(text: &str, origin: &str) -> Decoded {
    let (document, syntax_errors) = DeTable::parse_recoverable(text);
    let mut decoder = Decoder {
        text,
        origin,
        errors: Vec::new(),
        undecoded: Vec::new(),
    };
    let mut raw = RawConfig::default();
    if !syntax_errors.is_empty() {
        for error in syntax_errors {
            let location = error
                .span()
                .map(|span| Location::of_offset(text, span.start));
            decoder.errors.push(ConfigError {
                origin: origin.to_owned(),
                location,
                key: String::new(),
                kind: ConfigErrorKind::Syntax {
                    message: error.message().trim_end().to_owned(),
                },
            });
        }
        decoder.undecoded.push(String::new());
        return decoder.finish(raw);
    }
    let sections = field_names::<RawConfig>();
    for (key, value) in document.get_ref().iter() {
        let name = key.get_ref().as_ref();
        match name {
            "server" => decoder.section(name, value, &mut raw.server),
            "admin" => decoder.section(name, value, &mut raw.admin),
            "limits" => decoder.section(name, value, &mut raw.limits),
            "sessions" => decoder.section(name, value, &mut raw.sessions),
            "epoch" => decoder.section(name, value, &mut raw.epoch),
            "pending" => decoder.section(name, value, &mut raw.pending),
            "upstreams" => decoder.upstreams(value, &mut raw.upstreams),
            _ => decoder.unknown_key(name.to_owned(), key.span().start, sections),
        }
    }
    decoder.finish(raw)
}

/// Decoding state: the source text (for locations) and the problems found so far.
struct Decoder<'t> {
    text: &'t str,
    origin: &'t str,
    errors: Vec<ConfigError>,
    undecoded: Vec<String>,
}

impl Decoder<'_> {
    fn finish(self, raw: RawConfig) -> Decoded {
        Decoded {
            raw,
            errors: self.errors,
            undecoded: self.undecoded,
        }
    }

    /// Decodes the table at `path` into `target`; on a type error `target` keeps its defaults.
    fn section<T: DeserializeOwned>(
        &mut self,
        path: &str,
        value: &Spanned<DeValue>,
        target: &mut T,
    ) {
        match self.table(path, value) {
            Some(decoded) => *target = decoded,
            None => self.undecoded.push(path.to_owned()),
        }
    }

    /// Decodes `[[upstreams]]`: an array of tables, each decoded on its own.
    fn upstreams(&mut self, value: &Spanned<DeValue>, target: &mut RawUpstreams) {
        let Some(array) = value.get_ref().as_array() else {
            self.wrong_type(
                "upstreams",
                value.span().start,
                "expected an array of tables",
            );
            self.undecoded.push("upstreams".to_owned());
            return;
        };
        let mut upstreams = Vec::with_capacity(array.len());
        for (index, entry) in array.iter().enumerate() {
            let path = format!("upstreams[{index}]");
            let entry = self.drop_keys_of_other_kinds(&path, entry);
            if let Some(upstream) = self.table(&path, &entry) {
                upstreams.push(upstream);
            }
        }
        if upstreams.len() == array.len() {
            *target = RawUpstreams(upstreams);
        } else {
            self.undecoded.push("upstreams".to_owned());
        }
    }

    /// Reports the keys of upstream `entry` (at `path`) that belong to a kind other than its
    /// own, and returns the entry without them.
    fn drop_keys_of_other_kinds<'v>(
        &mut self,
        path: &str,
        entry: &Spanned<DeValue<'v>>,
    ) -> Spanned<DeValue<'v>> {
        let Some(table) = entry.get_ref().as_table() else {
            return entry.clone();
        };
        let kind = table.get("kind").and_then(|kind| kind.get_ref().as_str());
        let Some((kind, own)) = kind.and_then(kind_keys) else {
            return entry.clone();
        };
        let accepted: Vec<&'static str> = UPSTREAM_KEYS_COMMON.iter().chain(own).copied().collect();
        let all = field_names::<RawUpstream>();
        let mut kept = table.clone();
        for (key, _) in table.iter() {
            let name = key.get_ref().as_ref();
            if all.contains(&name) && !accepted.contains(&name) {
                self.errors.push(ConfigError {
                    origin: self.origin.to_owned(),
                    location: Some(Location::of_offset(self.text, key.span().start)),
                    key: format!("{path}.{name}"),
                    kind: ConfigErrorKind::KeyNotForKind {
                        kind,
                        accepted: accepted.clone(),
                    },
                });
                kept.remove(name);
            }
        }
        Spanned::new(entry.span(), DeValue::Table(kept))
    }

    /// Reports the keys of the table at `path` that `T` lacks, then decodes the rest.
    fn table<T: DeserializeOwned>(&mut self, path: &str, value: &Spanned<DeValue>) -> Option<T> {
        let Some(table) = value.get_ref().as_table() else {
            self.wrong_type(path, value.span().start, "expected a table");
            return None;
        };
        let accepted = field_names::<T>();
        let mut known = table.clone();
        for (key, _) in table.iter() {
            let name = key.get_ref().as_ref();
            if !accepted.contains(&name) {
                self.unknown_key(format!("{path}.{name}"), key.span().start, accepted);
                known.remove(name);
            }
        }
        let known = Spanned::new(value.span(), DeValue::Table(known));
        match T::deserialize(ValueDeserializer::from(known)) {
            Ok(decoded) => Some(decoded),
            Err(error) => {
                let offset = error.span().map_or(value.span().start, |span| span.start);
                let key = key_at(table, offset)
                    .map_or_else(|| path.to_owned(), |name| format!("{path}.{name}"));
                self.wrong_type(&key, offset, error.message());
                None
            }
        }
    }

    fn unknown_key(&mut self, key: String, offset: usize, accepted: &[&'static str]) {
        self.errors.push(ConfigError {
            origin: self.origin.to_owned(),
            location: Some(Location::of_offset(self.text, offset)),
            key,
            kind: ConfigErrorKind::UnknownKey {
                accepted: accepted.to_vec(),
            },
        });
    }

    fn wrong_type(&mut self, key: &str, offset: usize, message: &str) {
        self.errors.push(ConfigError {
            origin: self.origin.to_owned(),
            location: Some(Location::of_offset(self.text, offset)),
            key: key.to_owned(),
            kind: ConfigErrorKind::WrongType {
                message: message.trim_end().to_owned(),
            },
        });
    }
}

/// The key of the entry of `table` whose key or value spans byte `offset`.
fn key_at<'a>(table: &'a DeTable<'_>, offset: usize) -> Option<&'a str> {
    table.iter().find_map(|(key, value)| {
        let start = key.span().start;
        let end = value.span().end;
        (start..end)
            .contains(&offset)
            .then(|| key.get_ref().as_ref())
    })
}

/// The field names serde's derive declares for `T`, read without decoding any data, so the
/// unknown-key check and the structs cannot drift apart.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // The probe always fails once it has seen the struct's field list; only the list matters.
    let _ = T::deserialize(FieldProbe(&mut fields));
    assert!(
        !fields.is_empty(),
        "field_names needs a struct with named fields"
    );
    fields
}

/// A deserializer that records the field list a derived struct asks for, then stops.
struct FieldProbe<'f>(&'f mut &'static [&'static str]);

impl<'de> serde::Deserializer<'de> for FieldProbe<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom(
            "field probe reads struct field names only",
        ))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(serde::de::Error::custom(
            "field probe stops after reading field names",
        ))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_lists_the_derived_fields() {
        assert_eq!(field_names::<RawAdmin>(), &["listen", "connections_max"]);
        assert_eq!(
            &field_names::<RawUpstream>()[..3],
            &["name", "kind", "prefix"]
        );
        assert_eq!(field_names::<RawConfig>().len(), 7);
    }

    #[test]
    fn every_upstream_key_belongs_to_all_kinds_or_exactly_one() {
        let mut listed: Vec<&str> = [
            UPSTREAM_KEYS_COMMON,
            UPSTREAM_KEYS_BUILTIN,
            UPSTREAM_KEYS_HTTP,
            UPSTREAM_KEYS_STDIO,
        ]
        .concat();
        let count = listed.len();
        listed.sort_unstable();
        listed.dedup();
        assert_eq!(listed.len(), count, "a key is listed twice");
        let mut fields = field_names::<RawUpstream>().to_vec();
        fields.sort_unstable();
        assert_eq!(listed, fields);
    }

    #[test]
    fn absent_sections_take_their_defaults() {
        let decoded = decode("", "empty.toml");
        assert_eq!(decoded.raw, RawConfig::default());
        assert!(decoded.errors.is_empty() && decoded.undecoded.is_empty());
    }

    #[test]
    fn unknown_keys_are_dropped_and_the_rest_of_the_section_decoded() {
        let decoded = decode("[limits]\nfoo = 1\nconnections_max = 7\n", "t.toml");
        assert_eq!(decoded.errors.len(), 1);
        assert_eq!(decoded.errors[0].key, "limits.foo");
        assert!(decoded.undecoded.is_empty());
        assert_eq!(decoded.raw.limits.connections_max, 7);
    }

    #[test]
    fn wrong_type_names_key_and_location() {
        let decoded = decode("[limits]\nconnections_max = \"many\"\n", "t.toml");
        assert_eq!(decoded.undecoded, ["limits"]);
        let errors = decoded.errors;
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].key, "limits.connections_max");
        assert_eq!(
            errors[0].location,
            Some(Location {
                line: 2,
                column: 19
            })
        );
        assert!(matches!(errors[0].kind, ConfigErrorKind::WrongType { .. }));
    }

    #[test]
    fn missing_upstream_name_is_reported_with_its_index() {
        let text =
            "[[upstreams]]\nname = \"a\"\nkind = \"builtin\"\n[[upstreams]]\nkind = \"builtin\"\n";
        let errors = decode(text, "t.toml").errors;
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].key, "upstreams[1]");
        assert!(
            errors[0].to_string().contains("missing field `name`"),
            "{}",
            errors[0]
        );
    }
}
