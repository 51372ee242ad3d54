//! Upstream sessions kept per client session (`session_mode = "per_client"`): which upstream
//! session (its `Mcp-Session-Id` and negotiated version) a session-era client's calls to one
//! `http` upstream go under.
//!
//! This room keeps the table and its counters; it performs no I/O. The link opens a session
//! (`initialize`, `notifications/initialized`) the first time a client session calls the
//! upstream, and closes it (`DELETE`) when the router says the client session ended.
//!
//! Ownership: one [`ClientSessions`] per per_client `http` link per shard, `!Send`. Client
//! sessions live on the shard that created them, and every request of one (forwarded there if
//! it arrived elsewhere) runs there, so each client session has its upstream sessions on one
//! shard only.
//!
//! Limits: one entry per live client session, so at most `sessions.sessions_max` per shard;
//! the index is reserved for that many at start-up and never grows. An upstream's session id
//! is kept only up to [`SESSION_ID_BYTES_MAX`] bytes: a longer one is refused.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use hashbrown::HashMap;

use crate::support::event::Event;

/// Longest `Mcp-Session-Id` an upstream may give a per-client session. UUIDs and hex ids take
/// 32–36 bytes; a signed token well under this.
pub const SESSION_ID_BYTES_MAX: usize = 256;

/// One client session's upstream session.
enum Entry {
    /// `initialize` is under way; calls that arrive meanwhile wait for `done`.
    Opening { ticket: u64, done: Rc<Event> },
    /// Ready: requests carry `session` (when the upstream gave one) and `version`.
    Open {
        version: &'static str,
        session: Option<Box<str>>,
    },
}

/// The most memory one table holds: its index reserved for `entries_max` entries, the queue of
/// sessions waiting for their `DELETE` (as long), and a session id of [`SESSION_ID_BYTES_MAX`]
/// for each entry of both (`shardgate plan`).
pub fn memory_ceiling_bytes(entries_max: u32) -> u64 {
    let index = crate::epoch::index_bytes::<(u128, Entry)>(entries_max as usize);
    let queue = u64::from(entries_max) * std::mem::size_of::<Box<str>>() as u64;
    index + queue + 2 * u64::from(entries_max) * SESSION_ID_BYTES_MAX as u64
}

/// What a client session's call finds.
pub enum Lookup {
    /// Its upstream session is open.
    Open {
        version: &'static str,
        session: Option<String>,
    },
    /// Another call is opening it: wait for the signal, then look again.
    Opening(Rc<Event>),
    /// None yet: the caller opens it and reports under this ticket.
    Reserved(u64),
    /// The table holds `entries_max` sessions (a client session that ended was not removed).
    Full { entries_max: u32 },
}

/// Counters and gauges for `/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientSessionStats {
    /// Upstream sessions held or being opened, one per client session that called.
    pub open: u32,
    /// At most this many (`sessions.sessions_max`).
    pub open_max: u32,
    /// Sessions whose client session ended, waiting for or in their `DELETE`.
    pub closing: u32,
    /// Sessions the upstream opened for a client session (`initialize` answered).
    pub opened_total: u64,
    /// Sessions closed with `DELETE` after their client session ended (or the shard stopped).
    pub closed_total: u64,
    /// `DELETE`s refused (405), failed or timed out, and sessions dropped unclosed because
    /// `open_max` were already waiting; the upstream expires those on its own.
    pub close_failed_total: u64,
    /// Sessions the upstream said had expired (HTTP 404), opened again once.
    pub expired_total: u64,
}

/// The per-client upstream sessions of one upstream on one shard.
pub struct ClientSessions {
    entries: RefCell<HashMap<u128, Entry>>,
    entries_max: u32,
    /// Session ids to `DELETE`, oldest first; at most `entries_max`.
    closing: RefCell<VecDeque<Box<str>>>,
    /// Tasks sending those `DELETE`s now.
    closers: Cell<u32>,
    next_ticket: Cell<u64>,
    opened_total: Cell<u64>,
    closed_total: Cell<u64>,
    close_failed_total: Cell<u64>,
    expired_total: Cell<u64>,
}

impl ClientSessions {
    /// Reserves the index and the close queue for `entries_max` client sessions
    /// (`sessions.sessions_max`).
    pub fn new(entries_max: u32) -> Result<ClientSessions, String> {
        let refused = |e: std::collections::TryReserveError| {
            format!("upstream session table for {entries_max} sessions: {e}")
        };
        let mut entries = HashMap::new();
        entries
            .try_reserve(entries_max as usize)
            .map_err(|e| format!("upstream session index for {entries_max} sessions: {e}"))?;
        let mut closing = VecDeque::new();
        closing
            .try_reserve_exact(entries_max as usize)
            .map_err(refused)?;
        Ok(ClientSessions {
            entries: RefCell::new(entries),
            entries_max,
            closing: RefCell::new(closing),
            closers: Cell::new(0),
            next_ticket: Cell::new(0),
            opened_total: Cell::new(0),
            closed_total: Cell::new(0),
            close_failed_total: Cell::new(0),
            expired_total: Cell::new(0),
        })
    }

    /// The upstream session of `client`, or a reservation to open it.
    pub fn lookup(&self, client: u128) -> Lookup {
        let mut entries = self.entries.borrow_mut();
        match entries.get(&client) {
            Some(Entry::Open { version, session }) => Lookup::Open {
                version,
                session: session.as_deref().map(str::to_owned),
            },
            Some(Entry::Opening { done, .. }) => Lookup::Opening(done.clone()),
            None if entries.len() >= self.entries_max as usize => Lookup::Full {
                entries_max: self.entries_max,
            },
            None => {
                let ticket = self.next_ticket.get();
                self.next_ticket.set(ticket + 1);
                let done = Rc::new(Event::default());
                entries.insert(client, Entry::Opening { ticket, done });
                debug_assert!(entries.len() <= self.entries_max as usize);
                Lookup::Reserved(ticket)
            }
        }
    }

    /// The open session of `client`, without opening one.
    pub fn open_session(&self, client: u128) -> Option<(&'static str, Option<String>)> {
        match self.entries.borrow().get(&client)? {
            Entry::Open { version, session } => {
                Some((version, session.as_deref().map(str::to_owned)))
            }
            Entry::Opening { .. } => None,
        }
    }

    /// Records the session opened under `ticket`. False when the client session ended (or the
    /// upstream expired it and another call reopened it) meanwhile: the caller closes it.
    pub fn opened(
        &self,
        client: u128,
        ticket: u64,
        version: &'static str,
        session: Option<&str>,
    ) -> bool {
        if session.is_some() {
            self.opened_total.set(self.opened_total.get() + 1);
        }
        let mut entries = self.entries.borrow_mut();
        let done = match entries.get(&client) {
            Some(Entry::Opening { ticket: t, done }) if *t == ticket => done.clone(),
            _ => return false,
        };
        let session = session.map(Box::from);
        entries.insert(client, Entry::Open { version, session });
        drop(entries);
        done.set();
        true
    }

    /// Drops the reservation `ticket` whose `initialize` failed; waiting calls see no session.
    pub fn open_failed(&self, client: u128, ticket: u64) {
        let mut entries = self.entries.borrow_mut();
        let reserved = matches!(
            entries.get(&client),
            Some(Entry::Opening { ticket: t, .. }) if *t == ticket
        );
        if let (true, Some(Entry::Opening { done, .. })) = (reserved, entries.remove(&client)) {
            drop(entries);
            done.set();
        }
    }

    /// The upstream said `client`'s session `stale` expired (404): forgets it, unless another
    /// call already replaced it. Counted once per expired session.
    pub fn expired(&self, client: u128, stale: Option<&str>) {
        let mut entries = self.entries.borrow_mut();
        let current = matches!(
            entries.get(&client),
            Some(Entry::Open { session, .. }) if session.as_deref() == stale
        );
        if current {
            entries.remove(&client);
            self.expired_total.set(self.expired_total.get() + 1);
        }
    }

    /// The client session ended: forgets its upstream session and queues it for `DELETE`.
    /// True when one was queued. A session still opening is queued by its opener, which finds
    /// its reservation gone.
    pub fn end(&self, client: u128) -> bool {
        let removed = self.entries.borrow_mut().remove(&client);
        match removed {
            Some(Entry::Open {
                session: Some(session),
                ..
            }) => self.queue_close(session),
            Some(Entry::Opening { done, .. }) => {
                done.set();
                false
            }
            Some(Entry::Open { session: None, .. }) | None => false,
        }
    }

    /// Forgets every session (the shard stops) and queues each for `DELETE`.
    pub fn end_all(&self) {
        let clients: Vec<u128> = self.entries.borrow().keys().copied().collect();
        for client in clients {
            self.end(client);
        }
    }

    /// Queues `session` for its `DELETE`; with `entries_max` already waiting it is dropped and
    /// counted as a failed close.
    fn queue_close(&self, session: Box<str>) -> bool {
        let mut closing = self.closing.borrow_mut();
        if closing.len() >= self.entries_max as usize {
            self.count_close(false);
            return false;
        }
        closing.push_back(session);
        true
    }

    /// Starts one more closer task when fewer than `closers_max` run and sessions wait.
    pub fn start_closer(&self, closers_max: u32) -> bool {
        let start = self.closers.get() < closers_max && !self.closing.borrow().is_empty();
        if start {
            self.closers.set(self.closers.get() + 1);
        }
        start
    }

    /// The next session for a closer to `DELETE`; `None` ends that closer.
    pub fn next_to_close(&self) -> Option<Box<str>> {
        let next = self.closing.borrow_mut().pop_front();
        if next.is_none() {
            debug_assert!(self.closers.get() > 0, "only closers take from the queue");
            self.closers.set(self.closers.get() - 1);
        }
        next
    }

    /// Whether sessions wait for, or are in, their `DELETE`.
    pub fn is_closing(&self) -> bool {
        self.closers.get() > 0 || !self.closing.borrow().is_empty()
    }

    /// Counts one `DELETE` of an upstream session: closed, or failed.
    pub fn count_close(&self, closed: bool) {
        let counter = match closed {
            true => &self.closed_total,
            false => &self.close_failed_total,
        };
        counter.set(counter.get() + 1);
    }

    pub fn stats(&self) -> ClientSessionStats {
        ClientSessionStats {
            open: self.entries.borrow().len() as u32,
            open_max: self.entries_max,
            closing: self.closing.borrow().len() as u32 + self.closers.get(),
            opened_total: self.opened_total.get(),
            closed_total: self.closed_total.get(),
            close_failed_total: self.close_failed_total.get(),
            expired_total: self.expired_total.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reserve(sessions: &ClientSessions, client: u128) -> u64 {
        match sessions.lookup(client) {
            Lookup::Reserved(ticket) => ticket,
            _ => panic!("client {client} should get a reservation"),
        }
    }

    fn drain_closing(sessions: &ClientSessions) -> Vec<String> {
        let mut ids = Vec::new();
        assert!(sessions.start_closer(1));
        while let Some(id) = sessions.next_to_close() {
            ids.push(id.into());
        }
        assert!(!sessions.is_closing());
        ids
    }

    #[test]
    fn a_client_session_opens_once_and_later_calls_reuse_it() {
        let sessions = ClientSessions::new(4).unwrap();
        let ticket = reserve(&sessions, 1);
        let Lookup::Opening(done) = sessions.lookup(1) else {
            panic!("a second call waits for the first one's initialize");
        };
        assert!(!done.is_set());
        assert!(sessions.opened(1, ticket, "2025-11-25", Some("abc")));
        assert!(done.is_set(), "waiting calls are woken");
        let Lookup::Open { version, session } = sessions.lookup(1) else {
            panic!("open after initialize");
        };
        assert_eq!((version, session.as_deref()), ("2025-11-25", Some("abc")));
        assert_eq!(sessions.stats().open, 1);
        assert_eq!(sessions.stats().opened_total, 1);
        assert!(sessions.end(1));
        assert_eq!(sessions.stats().open, 0);
        assert_eq!(sessions.stats().closing, 1);
        assert!(!sessions.end(1), "ended once");
        assert_eq!(drain_closing(&sessions), ["abc"]);
    }

    #[test]
    fn a_session_opened_after_its_client_ended_is_not_kept() {
        let sessions = ClientSessions::new(4).unwrap();
        let ticket = reserve(&sessions, 7);
        assert!(!sessions.end(7), "nothing to close yet");
        assert!(!sessions.opened(7, ticket, "2025-11-25", Some("late")));
        assert_eq!(sessions.stats().open, 0);
        // A reservation made after the end is not taken by the old opener.
        let fresh = reserve(&sessions, 7);
        assert!(!sessions.opened(7, ticket, "2025-11-25", Some("old")));
        assert!(sessions.opened(7, fresh, "2025-11-25", Some("new")));
        assert!(
            !sessions.is_closing(),
            "the opener closes what it opened too late"
        );
        assert!(sessions.end(7));
        assert_eq!(drain_closing(&sessions), ["new"]);
    }

    #[test]
    fn the_table_refuses_past_entries_max_and_a_failed_open_frees_its_slot() {
        let sessions = ClientSessions::new(2).unwrap();
        let first = reserve(&sessions, 1);
        reserve(&sessions, 2);
        assert!(matches!(
            sessions.lookup(3),
            Lookup::Full { entries_max: 2 }
        ));
        sessions.open_failed(1, first);
        assert_eq!(sessions.stats().open, 1);
        reserve(&sessions, 3);
    }

    #[test]
    fn an_expired_session_is_forgotten_only_while_it_is_the_current_one() {
        let sessions = ClientSessions::new(2).unwrap();
        let ticket = reserve(&sessions, 1);
        sessions.opened(1, ticket, "2025-06-18", Some("s1"));
        sessions.expired(1, Some("s0"));
        assert!(
            sessions.open_session(1).is_some(),
            "a stale report changes nothing"
        );
        sessions.expired(1, Some("s1"));
        assert!(sessions.open_session(1).is_none());
        assert_eq!(sessions.stats().expired_total, 1);
        let again = reserve(&sessions, 1);
        sessions.opened(1, again, "2025-06-18", Some("s2"));
        assert_eq!(sessions.stats().opened_total, 2);
        assert!(!sessions.is_closing(), "an expired session is not deleted");
    }

    #[test]
    fn the_close_queue_holds_at_most_entries_max_and_counts_what_it_drops() {
        let sessions = ClientSessions::new(2).unwrap();
        for round in 0..2u128 {
            for client in 0..2u128 {
                let ticket = reserve(&sessions, client);
                let id = format!("r{round}c{client}");
                sessions.opened(client, ticket, "2025-11-25", Some(&id));
            }
            sessions.end_all();
        }
        let stats = sessions.stats();
        assert_eq!((stats.open, stats.closing), (0, 2));
        assert_eq!(
            stats.close_failed_total, 2,
            "the second round found the queue full"
        );
        assert!(sessions.start_closer(2));
        assert!(sessions.start_closer(2));
        assert!(!sessions.start_closer(2), "at most closers_max");
        let mut ids = Vec::new();
        while let Some(id) = sessions.next_to_close() {
            ids.push(String::from(id));
        }
        assert!(sessions.next_to_close().is_none());
        assert!(!sessions.is_closing());
        ids.sort();
        assert_eq!(ids, ["r0c0", "r0c1"]);
    }
}
