//! `[server]`: the client-facing listener, its path and cores, the origins and hosts it
//! accepts, and its timeouts.

use super::origins::{authority_problem, origin_problem};
use super::{quoted, Checker};
use crate::config::bounds;
use crate::config::raw::{RawCores, RawServer};
use crate::config::{Cores, Server};

impl Checker<'_> {
    pub(super) fn server(&mut self, raw: &RawServer) -> Server {
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
        ranged!(self, "server", raw, {
            drain_timeout_ms: u64 = bounds::DRAIN_TIMEOUT_MS,
            startup_timeout_ms: u64 = bounds::STARTUP_TIMEOUT_MS,
            io_memory_bytes: u64 = bounds::IO_MEMORY_BYTES,
        });
        Server {
            listen,
            path: raw.path.clone(),
            cores,
            allowed_origins: raw.allowed_origins.clone(),
            allowed_hosts: raw.allowed_hosts.clone(),
            drain_timeout_ms,
            startup_timeout_ms,
            io_memory_bytes,
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
}
