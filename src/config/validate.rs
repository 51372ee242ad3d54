//! Validation: the raw, as-written config checked once into the immutable `Config`.
//!
//! Every check runs even after an earlier one failed, so all problems are reported together.
//! A failed check records its error and yields a placeholder (the key's default) that never
//! leaves this module: any recorded error makes `validate` return `Err`. Cross-field rules run
//! only when the keys they read were valid on their own, so one typo gives one error.
//!
//! One file per TOML table: [`server`], [`admin`], [`limits`], [`sessions`], [`epoch`],
//! [`pending`] and [`upstreams`]; each declares its numeric keys once, as a table of key and
//! range (`ranged!`). What an origin or a `Host` may be is [`origins`]'.

use std::net::SocketAddr;

use super::bounds::{self, Bound};
use super::error::{ConfigError, ConfigErrorKind};
use super::raw::RawConfig;
use super::Config;

/// Checks the numeric keys of one table, declared once each as a row `field: Type = BOUND`:
/// key `<table>.<field>` (the value of `raw.field`) must lie in `BOUND`'s range, and becomes a
/// `let field: Type` of the caller; out of range, the error is recorded and the bound's default
/// stands in. A row `field: Type = BOUND | absent` gives the value a key that may be missing
/// takes when it is (else the bound's default). Rows are checked in order, so errors come in
/// the order the table lists them.
macro_rules! ranged {
    ($checker:expr, $table:expr, $raw:expr, {
        $($field:ident: $ty:ty = $bound:path $(| $absent:expr)?),+ $(,)?
    }) => {
        $(
            let $field: $ty = $checker.ranged(
                &format!("{}.{}", $table, stringify!($field)),
                $raw.$field,
                $bound,
                ranged!(@absent $bound $(, $absent)?),
            );
        )+
    };
    (@absent $bound:path) => {
        $bound.default
    };
    (@absent $bound:path, $absent:expr) => {
        $absent
    };
}

mod admin;
mod epoch;
mod limits;
mod origins;
mod pending;
mod server;
mod sessions;
mod upstreams;

pub(crate) use origins::{is_localhost_authority, is_localhost_origin};

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

/// A numeric key as the raw config holds it: always there where serde fills in its default
/// (`i64`), or maybe absent (`Option<i64>`: an upstream's key, whose default may depend on
/// other tables).
trait Written {
    /// The value, or `absent` when the key is missing.
    fn or_absent(self, absent: i64) -> i64;
}

impl Written for i64 {
    fn or_absent(self, _absent: i64) -> i64 {
        self
    }
}

impl Written for Option<i64> {
    fn or_absent(self, absent: i64) -> i64 {
        self.unwrap_or(absent)
    }
}

/// Records problems while the sections are checked.
struct Checker<'o> {
    origin: &'o str,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    /// One row of a `ranged!` table: `value` (or `absent`, when the key is missing) if
    /// `bound` accepts it, else records the error and yields the bound's default.
    fn ranged<T: TryFrom<i64>>(
        &mut self,
        key: &str,
        value: impl Written,
        bound: Bound,
        absent: i64,
    ) -> T {
        debug_assert!(
            bound.accepts(absent),
            "{key}: the value used when absent is in range"
        );
        self.number(key, value.or_absent(absent), bound)
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
