//! The four lists of one upstream (tools, prompts, resources, resource templates): fetched
//! page by page at each refresh, and for a 2026-07-28 upstream the `ttlMs` that says when they
//! go stale.

use std::cell::Cell;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::{failure_text, UpstreamLink};
use crate::wire::jsonrpc;
use crate::wire::kind::Kind;

/// Pages fetched per list before the rest is left out (a server that pages forever).
const LIST_PAGES_MAX: usize = 64;

/// The longest `ttlMs` honoured (24 h); a larger one is cut to it.
const LIST_TTL_MS_MAX: u64 = 86_400_000;

/// The `ttlMs` of a 2026-07-28 upstream's results and when its lists go stale.
#[derive(Default)]
pub(super) struct ListsTtl {
    /// The smallest `ttlMs` seen so far in the refresh under way.
    gathering: Cell<Option<u64>>,
    /// The `ttlMs` in force since the last refresh; `None` outside the 2026-07-28 era.
    ttl_ms: Cell<Option<u64>>,
    /// When the lists go stale; `None` outside the 2026-07-28 era.
    stale_at: Cell<Option<Instant>>,
    refreshes_total: Cell<u64>,
}

impl ListsTtl {
    /// Takes the `ttlMs` of one result into the refresh under way.
    pub(super) fn note(&self, result: &Value) {
        let Some(ttl) = result.get("ttlMs") else {
            return;
        };
        // A negative or fractional `ttlMs` counts as 0: immediately stale.
        let ttl_ms = ttl.as_u64().unwrap_or(0).min(LIST_TTL_MS_MAX);
        let least = self
            .gathering
            .get()
            .map_or(ttl_ms, |least| least.min(ttl_ms));
        self.gathering.set(Some(least));
    }

    /// A refresh finished: in the 2026-07-28 era the lists are fresh for the smallest `ttlMs`
    /// it saw (0 when none carried one).
    fn settle(&self, stateless: bool, now: Instant) {
        let gathered = self.gathering.take();
        self.refreshes_total.set(self.refreshes_total.get() + 1);
        let ttl_ms = stateless.then(|| gathered.unwrap_or(0));
        self.ttl_ms.set(ttl_ms);
        self.stale_at
            .set(ttl_ms.map(|ttl_ms| now + Duration::from_millis(ttl_ms)));
    }

    pub(super) fn is_stale(&self, now: Instant) -> bool {
        self.stale_at.get().is_some_and(|stale_at| now >= stale_at)
    }

    /// The smallest `ttlMs` of the last refresh (2026-07-28 era only).
    pub(super) fn ttl_ms(&self) -> Option<u64> {
        self.ttl_ms.get()
    }

    /// Refreshes that succeeded.
    pub(super) fn refreshes_total(&self) -> u64 {
        self.refreshes_total.get()
    }
}

impl UpstreamLink {
    /// [`UpstreamLink::refresh`] once it holds the refresh: handshakes when needed, then
    /// fetches every list.
    pub(super) async fn refresh_now(&self) -> Result<(), String> {
        self.lists_changed.set(false);
        self.lists_ttl.gathering.set(None);
        // Past its `ttlMs`, `server/discover` is stale too: capabilities may have changed.
        if !self.is_up() || self.lists_ttl.is_stale(Instant::now()) {
            self.connect().await?;
        }
        let mut lists: [Option<Box<RawValue>>; 4] = Default::default();
        for (slot, kind) in lists.iter_mut().zip(Kind::ALL) {
            let method = match kind {
                Kind::Tools => "tools/list",
                Kind::Prompts => "prompts/list",
                Kind::Resources => "resources/list",
                Kind::ResourceTemplates => "resources/templates/list",
            };
            let capability = match kind {
                Kind::Tools => "tools",
                Kind::Prompts => "prompts",
                Kind::Resources | Kind::ResourceTemplates => "resources",
            };
            *slot = match self.list(method, capability, kind.member()).await {
                Ok(list) => list,
                // Templates are optional even for servers with resources.
                Err(_) if kind == Kind::ResourceTemplates => None,
                Err(reason) => {
                    self.mark_down(reason.clone());
                    return Err(reason);
                }
            };
        }
        *self.lists.borrow_mut() = lists;
        self.lists_ttl
            .settle(self.speaks_stateless(), Instant::now());
        Ok(())
    }

    /// The whole list `method` (`tools/list`, …) returns, every page, as one JSON array of its
    /// `member`; `None` when the upstream lacks the capability.
    async fn list(
        &self,
        method: &str,
        capability: &str,
        member: &str,
    ) -> Result<Option<Box<RawValue>>, String> {
        if !self.has_capability(capability) {
            return Ok(None);
        }
        let mut items: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..LIST_PAGES_MAX {
            let params = cursor.as_ref().map(|c| json!({ "cursor": c }));
            let result = self
                .control_request(method, params)
                .await
                .map_err(|e| format!("upstream {} {method}: {}", self.name(), failure_text(&e)))?;
            let page: Value = serde_json::from_str(result.get())
                .map_err(|e| format!("upstream {} {method}: {e}", self.name()))?;
            self.lists_ttl.note(&page);
            if let Some(Value::Array(entries)) = page.get(member) {
                items.extend(entries.iter().cloned());
            }
            cursor = page
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        Ok(Some(jsonrpc::value_to_raw(&Value::Array(items))))
    }

    /// The upstream announced a list change (`notifications/*/list_changed`): the epoch tick
    /// refreshes its lists here, and the other shards hear of it too.
    pub(super) fn announce_lists_changed(&self) {
        self.lists_changed.set(true);
        self.announced.set(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_go_stale_after_the_smallest_ttl_of_a_stateless_refresh() {
        let ttl = ListsTtl::default();
        let now = Instant::now();
        ttl.note(&json!({"ttlMs": 5000}));
        ttl.note(&json!({"ttlMs": 200}));
        ttl.note(&json!({"tools": []}));
        ttl.settle(true, now);
        assert_eq!(ttl.ttl_ms.get(), Some(200));
        assert!(!ttl.is_stale(now + Duration::from_millis(199)));
        assert!(ttl.is_stale(now + Duration::from_millis(200)));
        // None given, or a negative one: immediately stale (the epoch tick is the floor).
        ttl.settle(true, now);
        assert_eq!(ttl.ttl_ms.get(), Some(0));
        assert!(ttl.is_stale(now));
        ttl.note(&json!({"ttlMs": -5}));
        ttl.settle(true, now);
        assert_eq!(ttl.ttl_ms.get(), Some(0));
        ttl.note(&json!({"ttlMs": u64::MAX}));
        ttl.settle(true, now);
        assert_eq!(ttl.ttl_ms.get(), Some(LIST_TTL_MS_MAX));
        // The session era announces changes instead: no ttl applies.
        ttl.note(&json!({"ttlMs": 0}));
        ttl.settle(false, now);
        assert_eq!(ttl.ttl_ms.get(), None);
        assert!(!ttl.is_stale(now + Duration::from_millis(LIST_TTL_MS_MAX)));
        assert_eq!(ttl.refreshes_total.get(), 5);
    }
}
