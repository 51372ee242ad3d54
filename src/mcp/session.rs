//! Session-era MCP sessions: ids, the per-shard session table, idle expiry.
//!
//! A session belongs to the shard that created it; the shard number is the id's prefix, so any
//! shard can tell where to forward a request. The table is an [`EpochTable`] sized once from
//! `[sessions]` and `[epoch]`: at `sessions_max` it retires its oldest generation early, then
//! refuses. Each session keeps the client's `clientInfo` and `capabilities` as raw JSON in the
//! table's arena (at most `session_payload_bytes_max`).

use std::fmt;
use std::rc::Rc;

use crate::config::Config;
use crate::epoch::{EpochTable, Removed, TableLimits, TableRefusal, TableStats};
use crate::support::event::Event;
use crate::wire::capabilities::InputCapabilities;
use crate::wire::version::ProtocolVersion;

/// A session id: the owning shard and 128 random bits. Printed as `<shard: 2 hex>-<32 hex>`
/// (visible ASCII).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SessionId {
    pub shard: u8,
    pub secret: u128,
}

impl SessionId {
    /// A fresh id for `shard` from the operating system's secure random source.
    pub fn generate(shard: u8) -> std::io::Result<SessionId> {
        let mut bytes = [0u8; 16];
        getrandom::getrandom(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(SessionId {
            shard,
            secret: u128::from_le_bytes(bytes),
        })
    }

    /// Parses the header form; `None` for anything that is not exactly
    /// `<2 lowercase hex>-<32 lowercase hex>`.
    pub fn parse(text: &str) -> Option<SessionId> {
        let (shard, secret) = text.split_once('-')?;
        let lower_hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if shard.len() != 2 || secret.len() != 32 || !lower_hex(shard) || !lower_hex(secret) {
            return None;
        }
        Some(SessionId {
            shard: u8::from_str_radix(shard, 16).ok()?,
            secret: u128::from_str_radix(secret, 16).ok()?,
        })
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}-{:032x}", self.shard, self.secret)
    }
}

/// What the gateway remembers about one session (besides the raw client JSON in the arena).
pub struct Session {
    /// The version negotiated at `initialize`.
    pub version: ProtocolVersion,
    /// Set when the session ends (DELETE or expiry): open GET streams watch it and close.
    pub ended: Rc<Event>,
    /// The level of the client's last `logging/setLevel`, passed in `_meta` to upstreams that
    /// speak the stateless era (which have no per-connection level).
    pub log_level: Option<&'static str>,
    /// What the client declared at `initialize` that a 2026-07-28 upstream may ask it for.
    pub input_capabilities: InputCapabilities,
}

/// Why a session could not be created.
#[derive(Debug)]
pub enum SessionRefusal {
    /// The table stays full after retiring its oldest generation.
    Full { sessions_max: u32 },
    /// The current generation's arena is full even after retiring the oldest generation.
    ArenaFull { arena_bytes_max: usize },
    /// A fresh random id matched a live session (a broken random source).
    DuplicateId,
    /// The client's info and capabilities exceed `sessions.session_payload_bytes_max`.
    PayloadTooLarge {
        payload_bytes: usize,
        payload_bytes_max: u32,
    },
    /// The random source failed.
    Random(std::io::Error),
}

impl fmt::Display for SessionRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full { sessions_max } => write!(
                f,
                "session table full: {sessions_max} sessions on this shard (sessions.sessions_max); \
                 retry later or DELETE unused sessions"
            ),
            Self::PayloadTooLarge { payload_bytes, payload_bytes_max } => write!(
                f,
                "clientInfo and capabilities are {payload_bytes} bytes, over \
                 sessions.session_payload_bytes_max {payload_bytes_max}"
            ),
            Self::ArenaFull { arena_bytes_max } => write!(
                f,
                "session arena full: {arena_bytes_max} bytes in this generation \
                 (epoch.session_arena_bytes_max); retry later"
            ),
            Self::DuplicateId => f.write_str("the random source repeated a live session id"),
            Self::Random(e) => write!(f, "cannot generate a session id: {e}"),
        }
    }
}

/// The shard's session table. Shard-local: owned by one shard, never shared.
pub struct SessionTable {
    shard: u8,
    idle_ttl_ms: u64,
    table: EpochTable<u128, Session>,
    expired_total: u64,
    /// Secrets of sessions that ended (deleted, expired, evicted) since the owner last took
    /// them, so the upstream sessions they opened are closed. Reserved for `sessions_max`: a
    /// session ends once, and the owner takes the list after every call that may end one.
    ended: Vec<u128>,
    /// A full table may retire one generation early per tick; a stream of `initialize` calls
    /// against a table full of live sessions then costs O(1) each, not a generation walk each.
    early_retire_armed: bool,
}

/// The session table's limits, from `[sessions]` and `[epoch]`.
pub fn table_limits(config: &Config) -> TableLimits {
    TableLimits {
        entries_max: config.sessions.sessions_max,
        generations: config.epoch.generations as u8,
        arena_bytes_max: config.epoch.session_arena_bytes_max as usize,
        payload_bytes_max: config.sessions.session_payload_bytes_max as u32,
    }
}

impl SessionTable {
    /// Shard `shard`'s table as `config` sizes it.
    pub fn for_config(shard: u8, config: &Config) -> Result<Self, String> {
        let idle_ttl_ms = config.sessions.session_idle_ttl_ms;
        SessionTable::new(shard, table_limits(config), idle_ttl_ms)
    }

    /// Reserves the whole table up front; fails only if memory cannot be reserved.
    pub fn new(shard: u8, limits: TableLimits, idle_ttl_ms: u64) -> Result<Self, String> {
        let table = EpochTable::new(limits).map_err(|e| format!("session table: {e:?}"))?;
        let mut ended = Vec::new();
        ended
            .try_reserve_exact(limits.entries_max as usize)
            .map_err(|e| format!("session table: ended list: {e}"))?;
        Ok(SessionTable {
            shard,
            idle_ttl_ms,
            table,
            expired_total: 0,
            ended,
            early_retire_armed: true,
        })
    }

    /// Creates a session, retiring the oldest generation early if the table is full.
    pub fn create(
        &mut self,
        version: ProtocolVersion,
        client_json: &[u8],
        now_ms: u64,
    ) -> Result<SessionId, SessionRefusal> {
        let id = SessionId::generate(self.shard).map_err(SessionRefusal::Random)?;
        let session = Session {
            version,
            ended: Rc::default(),
            log_level: None,
            input_capabilities: InputCapabilities::NONE,
        };
        let expires_at_ms = now_ms + self.idle_ttl_ms;
        let (expired, ended) = (&mut self.expired_total, &mut self.ended);
        let full = self.table.len() >= self.table.limits().entries_max;
        let inserted = match full && !self.early_retire_armed {
            // Already retired early this tick and still full: refuse at O(1) cost.
            true => self
                .table
                .insert(id.secret, session, client_json, expires_at_ms),
            false => {
                self.early_retire_armed &= !full;
                self.table.insert_or_retire(
                    id.secret,
                    session,
                    client_json,
                    expires_at_ms,
                    now_ms,
                    |removed| *expired += end_session(removed, ended),
                )
            }
        };
        inserted
            .map(|_| id)
            .map_err(|refused| match refused.refusal {
                TableRefusal::PayloadTooLarge {
                    payload_bytes,
                    payload_bytes_max,
                } => SessionRefusal::PayloadTooLarge {
                    payload_bytes,
                    payload_bytes_max,
                },
                TableRefusal::ArenaFull {
                    arena_bytes_max, ..
                } => SessionRefusal::ArenaFull { arena_bytes_max },
                TableRefusal::Full { entries_max } => SessionRefusal::Full {
                    sessions_max: entries_max,
                },
                TableRefusal::DuplicateKey | TableRefusal::UnknownKey => {
                    SessionRefusal::DuplicateId
                }
            })
    }

    /// Finds a live session and extends its idle deadline.
    pub fn touch(&mut self, id: SessionId, now_ms: u64) -> Option<&mut Session> {
        debug_assert_eq!(
            id.shard, self.shard,
            "sessions are looked up on their owning shard"
        );
        if !self
            .table
            .touch(&id.secret, now_ms + self.idle_ttl_ms, now_ms)
        {
            return None;
        }
        self.table
            .get_mut(&id.secret, now_ms)
            .map(|entry| entry.value)
    }

    /// Whether `id` names a live session, without extending its idle deadline.
    pub fn is_live(&self, id: SessionId, now_ms: u64) -> bool {
        id.shard == self.shard && self.table.get(&id.secret, now_ms).is_some()
    }

    /// Ends a session now (DELETE). Returns false if it was unknown or already expired.
    pub fn delete(&mut self, id: SessionId, now_ms: u64) -> bool {
        if self.table.get(&id.secret, now_ms).is_none() {
            return false;
        }
        match self.table.remove(&id.secret) {
            Some(session) => {
                session.ended.set();
                self.ended.push(id.secret);
                true
            }
            None => false,
        }
    }

    /// The epoch tick: retires the oldest generation, ending sessions idle past the TTL.
    pub fn advance(&mut self, now_ms: u64) {
        self.early_retire_armed = true;
        let (expired, ended) = (&mut self.expired_total, &mut self.ended);
        self.table
            .advance(now_ms, |removed| *expired += end_session(removed, ended));
    }

    /// Takes the secrets of the sessions that ended since the last call, for the router to
    /// close what they held upstream.
    pub fn take_ended(&mut self) -> Vec<u128> {
        match self.ended.is_empty() {
            true => Vec::new(),
            false => self.ended.drain(..).collect(),
        }
    }

    /// Table gauges for `/status`.
    pub fn stats(&self) -> TableStats {
        self.table.stats()
    }

    /// Sessions removed because they idled past `session_idle_ttl_ms` (or were evicted).
    pub fn expired_total(&self) -> u64 {
        self.expired_total
    }
}

/// Signals a removed session's streams to close and lists it as ended; returns 1 so callers
/// can count.
fn end_session(removed: Removed<'_, u128, Session>, ended: &mut Vec<u128>) -> u64 {
    removed.value.ended.set();
    debug_assert!(
        ended.len() < ended.capacity(),
        "ended sessions are taken after each call"
    );
    ended.push(removed.key);
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(sessions_max: u32) -> SessionTable {
        let limits = TableLimits {
            entries_max: sessions_max,
            generations: 4,
            arena_bytes_max: sessions_max as usize * 256,
            payload_bytes_max: 256,
        };
        SessionTable::new(3, limits, 1000).unwrap()
    }

    #[test]
    fn session_id_round_trips_and_encodes_the_owner_shard() {
        let id = SessionId::generate(3).unwrap();
        let text = id.to_string();
        assert_eq!(text.len(), 35);
        assert!(text.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        assert!(text.starts_with("03-"));
        assert_eq!(SessionId::parse(&text), Some(id));
    }

    #[test]
    fn session_id_parse_rejects_other_shapes() {
        for bad in [
            "",
            "03",
            "03-abc",
            "3-0123456789abcdef0123456789abcdef",
            "03-0123456789ABCDEF0123456789abcdef",
            "03-0123456789abcdef0123456789abcdeg",
        ] {
            assert_eq!(SessionId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn session_table_refuses_create_at_sessions_max_until_sessions_expire() {
        let mut sessions = table(2);
        sessions
            .create(ProtocolVersion::V2025_11_25, b"{}", 0)
            .unwrap();
        sessions
            .create(ProtocolVersion::V2025_11_25, b"{}", 0)
            .unwrap();
        let refusal = sessions
            .create(ProtocolVersion::V2025_11_25, b"{}", 10)
            .unwrap_err();
        assert!(matches!(refusal, SessionRefusal::Full { sessions_max: 2 }));
        // Past the idle TTL the early retire of a full table reclaims them.
        for tick in 1..=4 {
            sessions.advance(1000 + tick);
        }
        assert_eq!(sessions.stats().entries, 0);
        assert_eq!(sessions.expired_total(), 2);
        assert_eq!(
            sessions.take_ended().len(),
            2,
            "expired sessions are listed as ended"
        );
        assert!(sessions.take_ended().is_empty(), "taken once");
        sessions
            .create(ProtocolVersion::V2025_11_25, b"{}", 1100)
            .unwrap();
    }

    #[test]
    fn a_full_table_of_live_sessions_retires_early_at_most_once_per_tick() {
        let mut sessions = table(8);
        for _ in 0..8 {
            sessions
                .create(ProtocolVersion::V2025_11_25, b"{}", 0)
                .unwrap();
        }
        for attempt in 0..100 {
            let refusal = sessions.create(ProtocolVersion::V2025_11_25, b"{}", 10 + attempt);
            assert!(matches!(
                refusal,
                Err(SessionRefusal::Full { sessions_max: 8 })
            ));
        }
        assert_eq!(
            sessions.stats().early_retires,
            1,
            "one walk, then O(1) refusals"
        );
        assert_eq!(
            sessions.stats().entries,
            8,
            "live sessions survive the early retire"
        );
        sessions.advance(200);
        assert!(sessions
            .create(ProtocolVersion::V2025_11_25, b"{}", 201)
            .is_err());
        assert_eq!(sessions.stats().early_retires, 2, "re-armed by the tick");
    }

    #[test]
    fn deleted_session_is_gone_and_its_streams_are_told() {
        let mut sessions = table(4);
        let id = sessions
            .create(ProtocolVersion::V2025_06_18, b"{}", 0)
            .unwrap();
        let ended = sessions.touch(id, 1).unwrap().ended.clone();
        assert!(sessions.delete(id, 2));
        assert!(ended.is_set());
        assert_eq!(sessions.take_ended(), [id.secret]);
        assert!(sessions.touch(id, 3).is_none());
        assert!(!sessions.delete(id, 4));
    }

    #[test]
    fn touch_keeps_a_busy_session_alive_past_the_ttl() {
        let mut sessions = table(4);
        let id = sessions
            .create(ProtocolVersion::V2025_11_25, b"{}", 0)
            .unwrap();
        for now in (500..5000).step_by(500) {
            assert!(sessions.touch(id, now).is_some(), "alive at {now}");
            sessions.advance(now);
        }
        assert!(
            sessions.touch(id, 7000).is_none(),
            "expired after idling past the TTL"
        );
    }
}
