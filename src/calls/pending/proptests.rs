//! Property tests.
//!
//! The table against a model: random register, complete, cancel, progress lookups, ticks and
//! waits with small caps. The model holds every request registered and not yet ended (expired
//! ones included until reported). Each call's outcome must be exactly the one the model
//! predicts: never over a cap, never another request's route or id, refusals only when the
//! model says so, timeouts only past the deadline and no later than the tick after one that
//! follows the registration; and when time runs out every request has ended exactly once.
//!
//! The splice helpers: random messages (member order, whitespace, nested params, escaped
//! strings) must parse after the rewrite to the same value with only `id` and the progress
//! token changed, and keep the other members' bytes.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::wire::ids::IdForm;

const PENDING_MAX: u32 = 6;
const PER_UPSTREAM_MAX: u32 = 4;
const UPSTREAMS: u16 = 3;
const ID_BYTES_MAX: u32 = 16;
const START_MS: u64 = 1_000;

#[derive(Clone, Debug)]
enum Op {
    Register {
        upstream: u16,
        route: u32,
        client: u8,
        long: bool,
        token: Option<u8>,
        ttl_ms: u64,
    },
    Complete {
        pick: usize,
        right_upstream: bool,
        upstream: u16,
        string_form: bool,
    },
    Cancel {
        route: u32,
        client: u8,
    },
    Progress {
        pick: usize,
        upstream: u16,
    },
    Advance {
        step_ms: u64,
    },
    Wait {
        step_ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let upstream = 0..UPSTREAMS;
    prop_oneof![
        5 => (upstream.clone(), 0..3u32, 0..6u8, prop::bool::weighted(0.05),
              prop::option::of(0..4u8), 1..6u64)
            .prop_map(|(upstream, route, client, long, token, ttl_ms)| Op::Register {
                upstream, route, client, long, token, ttl_ms
            }),
        3 => (any::<usize>(), prop::bool::weighted(0.8), upstream.clone(), any::<bool>())
            .prop_map(|(pick, right_upstream, upstream, string_form)| Op::Complete {
                pick, right_upstream, upstream, string_form
            }),
        1 => (0..3u32, 0..6u8).prop_map(|(route, client)| Op::Cancel { route, client }),
        1 => (any::<usize>(), upstream)
            .prop_map(|(pick, upstream)| Op::Progress { pick, upstream }),
        2 => (0..3u64).prop_map(|step_ms| Op::Advance { step_ms }),
        1 => (0..3u64).prop_map(|step_ms| Op::Wait { step_ms }),
    ]
}

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).expect("model json is valid")
}

fn client_json(client: u8, long: bool) -> String {
    match (client % 2, long) {
        (_, true) => format!("\"{}{client}\"", "x".repeat(ID_BYTES_MAX as usize)),
        (0, false) => client.to_string(),
        _ => format!("\"c{client}\""),
    }
}

struct Request {
    upstream: u16,
    route: u32,
    client_id: String,
    token: Option<String>,
    deadline_ms: u64,
    /// Retires done before it was registered (early ones during its own registration too).
    retires_before: u64,
}

struct Model {
    table: PendingTable<u32>,
    now_ms: u64,
    advances: u64,
    in_flight: HashMap<u64, Request>,
    issued: Vec<u64>,
    ended: HashSet<u64>,
}

/// A timeout as reported, owned.
struct Reported {
    upstream: u16,
    id: u64,
    route: u32,
    client_id: Vec<u8>,
}

fn record(reported: &mut Vec<Reported>) -> impl FnMut(Expired<'_, u32>) + '_ {
    |expired| {
        reported.push(Reported {
            upstream: expired.upstream,
            id: expired.upstream_id.0,
            route: expired.route,
            client_id: expired.client_id.to_vec(),
        })
    }
}

impl Model {
    fn new() -> Self {
        let limits = PendingLimits {
            pending_max: PENDING_MAX,
            pending_per_upstream_max: PER_UPSTREAM_MAX,
            upstreams_count: UPSTREAMS,
            request_id_bytes_max: ID_BYTES_MAX,
        };
        Self {
            table: PendingTable::new(limits).expect("model limits are valid"),
            now_ms: START_MS,
            advances: 0,
            in_flight: HashMap::new(),
            issued: Vec::new(),
            ended: HashSet::new(),
        }
    }

    fn retires(&self) -> u64 {
        self.advances + self.table.stats().early_retires_total
    }

    fn end(&mut self, id: u64) -> Request {
        assert!(self.ended.insert(id), "request {id} ended twice");
        self.in_flight
            .remove(&id)
            .expect("only requests in flight end")
    }

    fn check_timeouts(&mut self, reported: Vec<Reported>) {
        for timeout in reported {
            let request = self.end(timeout.id);
            assert!(
                request.deadline_ms <= self.now_ms,
                "timed out before its deadline"
            );
            assert_eq!(timeout.upstream, request.upstream);
            assert_eq!(timeout.route, request.route);
            assert_eq!(timeout.client_id, request.client_id.as_bytes());
        }
    }

    fn count(&self, upstream: u16) -> u32 {
        self.in_flight
            .values()
            .filter(|r| r.upstream == upstream)
            .count() as u32
    }

    fn find(&self, route: u32, client_id: &str) -> Option<u64> {
        self.in_flight
            .iter()
            .find(|(_, r)| r.route == route && r.client_id == client_id)
            .map(|(id, _)| *id)
    }

    fn expected_refusal(
        &self,
        upstream: u16,
        route: u32,
        ids: (&str, Option<&str>),
    ) -> Option<PendingRefusal> {
        let (client_id, token) = ids;
        let too_large = |kind, text: &str| {
            (text.len() > ID_BYTES_MAX as usize).then_some(PendingRefusal::IdTooLarge {
                kind,
                bytes: text.len(),
                request_id_bytes_max: ID_BYTES_MAX,
            })
        };
        too_large(IdKind::RequestId, client_id)
            .or_else(|| token.and_then(|token| too_large(IdKind::ProgressToken, token)))
            .or_else(|| {
                self.find(route, client_id)
                    .map(|_| PendingRefusal::IdInFlight)
            })
            .or_else(|| {
                (self.in_flight.len() as u32 >= PENDING_MAX).then_some(PendingRefusal::ShardFull {
                    pending_max: PENDING_MAX,
                })
            })
            .or_else(|| {
                (self.count(upstream) >= PER_UPSTREAM_MAX).then_some(PendingRefusal::UpstreamFull {
                    upstream,
                    pending_per_upstream_max: PER_UPSTREAM_MAX,
                })
            })
    }

    fn register(
        &mut self,
        upstream: u16,
        route: u32,
        client: u8,
        long: bool,
        token: Option<u8>,
        ttl_ms: u64,
    ) {
        let client_id = client_json(client, long);
        let token = token.map(|token| format!("\"t{token}\""));
        let token_raw = token.as_deref().map(raw);
        let mut reported = Vec::new();
        let deadline_ms = self.now_ms + ttl_ms;
        let registered = self.table.register(
            upstream,
            route,
            &raw(&client_id),
            token_raw.as_deref(),
            deadline_ms,
            self.now_ms,
            record(&mut reported),
        );
        self.check_timeouts(reported);
        let retires_before = self.retires();
        let expected = self.expected_refusal(upstream, route, (&client_id, token.as_deref()));
        assert_eq!(registered.err(), expected);
        if let Ok(id) = registered {
            assert!(!self.issued.contains(&id.0), "upstream id {} reused", id.0);
            self.issued.push(id.0);
            let request = Request {
                upstream,
                route,
                client_id,
                token,
                deadline_ms,
                retires_before,
            };
            self.in_flight.insert(id.0, request);
        }
    }

    fn pick(&self, pick: usize) -> u64 {
        match self.issued.len() {
            0 => 1,
            len => self.issued[pick % len] + u64::from(pick % 7 == 0),
        }
    }

    fn complete(&mut self, pick: usize, right_upstream: bool, upstream: u16, string_form: bool) {
        let id = self.pick(pick);
        let upstream = match self.in_flight.get(&id) {
            Some(request) if right_upstream => request.upstream,
            _ => upstream,
        };
        let form = if string_form {
            IdForm::String
        } else {
            IdForm::Number
        };
        let json = UpstreamRequestId(id).to_json(form);
        let text = std::str::from_utf8(json.as_bytes()).expect("ascii");
        let completed = self.table.complete(upstream, &raw(text), self.now_ms);
        let answerable = self
            .in_flight
            .get(&id)
            .filter(|r| r.upstream == upstream && r.deadline_ms > self.now_ms);
        assert_eq!(completed.is_some(), answerable.is_some(), "complete {id}");
        if let Some(completed) = completed {
            let request = self.end(id);
            assert_eq!(completed.route, request.route);
            assert_eq!(&completed.client_id[..], request.client_id.as_bytes());
        }
    }

    fn cancel(&mut self, route: u32, client: u8) {
        let client_id = client_json(client, false);
        let cancelled = self
            .table
            .cancel_by_client(route, &raw(&client_id), self.now_ms);
        let expected = self
            .find(route, &client_id)
            .filter(|id| self.in_flight[id].deadline_ms > self.now_ms);
        assert_eq!(cancelled.map(|(_, id)| id.0), expected);
        if let Some((upstream, id)) = cancelled {
            assert_eq!(self.end(id.0).upstream, upstream);
        }
    }

    fn progress(&self, pick: usize, upstream: u16) {
        let id = self.pick(pick);
        let text = id.to_string();
        let found = self
            .table
            .progress_route(upstream, &raw(&text), self.now_ms);
        let expected = self.in_flight.get(&id).and_then(|r| {
            let token = r.token.as_deref()?;
            (r.upstream == upstream && r.deadline_ms > self.now_ms)
                .then_some((r.route, token.as_bytes()))
        });
        assert_eq!(found, expected);
    }

    fn advance(&mut self, step_ms: u64) {
        self.now_ms += step_ms;
        let retires_before = self.retires();
        let mut reported = Vec::new();
        self.table.advance(self.now_ms, record(&mut reported));
        self.advances += 1;
        self.check_timeouts(reported);
        for (id, request) in &self.in_flight {
            let examined = request.retires_before < retires_before;
            assert!(
                !(examined && request.deadline_ms <= self.now_ms),
                "request {id} past its deadline survived a tick"
            );
        }
    }

    fn check_books(&self) {
        let stats = self.table.stats();
        assert_eq!(stats.entries as usize, self.in_flight.len());
        assert!(stats.entries <= PENDING_MAX);
        for upstream in 0..UPSTREAMS {
            let count = stats.per_upstream[usize::from(upstream)];
            assert_eq!(count, self.count(upstream));
            assert!(count <= PER_UPSTREAM_MAX);
        }
        assert_eq!(self.table.books.by_client.len(), stats.entries);
    }

    /// Runs time past every deadline: every request must end as a timeout.
    fn drain(&mut self) {
        let last = self.in_flight.values().map(|r| r.deadline_ms).max();
        self.now_ms = self.now_ms.max(last.unwrap_or(0));
        self.advance(0);
        self.advance(0);
        assert!(
            self.in_flight.is_empty(),
            "requests never ended: {:?}",
            self.in_flight.keys()
        );
        assert!(self.table.is_empty());
        assert_eq!(self.ended.len(), self.issued.len());
        let stats = self.table.stats();
        let ended = stats.completed_total + stats.cancelled_total + stats.timeouts_total;
        assert_eq!(ended, self.issued.len() as u64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_request_ends_once_within_caps_and_maps_to_its_own_client(
        ops in prop::collection::vec(op(), 1..120)
    ) {
        let mut model = Model::new();
        for op in ops {
            match op {
                Op::Register { upstream, route, client, long, token, ttl_ms } => {
                    model.register(upstream, route, client, long, token, ttl_ms)
                }
                Op::Complete { pick, right_upstream, upstream, string_form } => {
                    model.complete(pick, right_upstream, upstream, string_form)
                }
                Op::Cancel { route, client } => model.cancel(route, client),
                Op::Progress { pick, upstream } => model.progress(pick, upstream),
                Op::Advance { step_ms } => model.advance(step_ms),
                Op::Wait { step_ms } => model.now_ms += step_ms,
            }
            model.check_books();
        }
        model.drain();
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6..1e6f64).prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,6}|id|progressToken|_meta", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn id_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from)
    ]
}

/// A message as text: the members in the given order, each value compact or pretty,
/// separated by random whitespace.
fn message_text(members: &[(&str, Value)], pretty: bool, space: &str) -> String {
    let render = |value: &Value| {
        if pretty {
            serde_json::to_string_pretty(value)
        } else {
            serde_json::to_string(value)
        }
        .expect("values serialise")
    };
    let body: Vec<String> = members
        .iter()
        .map(|(name, value)| format!("{space}\"{name}\"{space}:{space}{}", render(value)))
        .collect();
    format!("{space}{{{}{space}}}{space}", body.join(","))
}

fn id_json_text(id: u64) -> String {
    id.to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rewrite_request_id_changes_only_id_and_meta_progress_token(
        id in id_value(),
        arguments in json_value(),
        meta_extra in json_value(),
        token in prop::option::of(id_value()),
        with_meta in any::<bool>(),
        order in any::<prop::sample::Index>(),
        pretty in any::<bool>(),
        space in "[ \t\n]{0,2}",
        new_id in any::<u64>(),
    ) {
        let mut params = json!({ "name": "tool", "arguments": arguments.clone() });
        if with_meta {
            let mut meta = json!({ "extra": meta_extra });
            if let Some(token) = &token {
                meta["progressToken"] = token.clone();
            }
            params["_meta"] = meta;
        }
        let mut members = vec![
            ("jsonrpc", json!("2.0")),
            ("method", json!("tools/call")),
            ("params", params),
        ];
        members.insert(order.index(members.len() + 1), ("id", id));
        let text = message_text(&members, pretty, &space);
        let new_id_text = id_json_text(new_id);
        let out = rewrite_request_id(text.as_bytes(), new_id_text.as_bytes()).expect("rewritable");

        let mut expected: Value = serde_json::from_str(&text).expect("valid");
        expected["id"] = json!(new_id);
        if with_meta && token.is_some() {
            expected["params"]["_meta"]["progressToken"] = json!(new_id);
        }
        let got: Value = serde_json::from_slice(&out).expect("rewritten message parses");
        prop_assert_eq!(got, expected);
        let arguments_text = if pretty {
            serde_json::to_string_pretty(&arguments)
        } else {
            serde_json::to_string(&arguments)
        }.expect("serialises");
        let out_text = String::from_utf8(out).expect("utf-8");
        let copied = pretty || out_text.contains(&arguments_text);
        prop_assert!(copied, "arguments copied byte for byte");
    }

    #[test]
    fn restore_response_id_changes_only_the_id(
        id in prop_oneof![id_value(), Just(Value::Null)],
        result in json_value(),
        id_first in any::<bool>(),
        pretty in any::<bool>(),
        space in "[ \t\n]{0,2}",
        client_id in id_value(),
    ) {
        let mut members = vec![("jsonrpc", json!("2.0")), ("result", json!({ "v": result }))];
        members.insert(if id_first { 0 } else { members.len() }, ("id", id));
        let text = message_text(&members, pretty, &space);
        let client_text = serde_json::to_string(&client_id).expect("serialises");
        let out = restore_response_id(text.as_bytes(), client_text.as_bytes()).expect("rewritable");
        let mut expected: Value = serde_json::from_str(&text).expect("valid");
        expected["id"] = client_id;
        let got: Value = serde_json::from_slice(&out).expect("restored message parses");
        prop_assert_eq!(got, expected);
        prop_assert_eq!(
            out.len() + serde_json::to_string(&members.iter().find(|m| m.0 == "id").expect("id").1)
                .expect("serialises").len(),
            text.len() + client_text.len()
        );
    }
}
