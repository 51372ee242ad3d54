//! Unit tests: ids on the wire, the splice helpers, and each way a request ends or is refused.

use crate::wire::ids::IdForm;
use serde_json::Value;

use super::*;

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).expect("test json is valid")
}

fn limits() -> PendingLimits {
    PendingLimits {
        pending_max: 8,
        pending_per_upstream_max: 4,
        upstreams_count: 3,
        request_id_bytes_max: 32,
    }
}

fn table() -> PendingTable<u32> {
    PendingTable::new(limits()).expect("test limits are valid")
}

/// Records every timeout as (upstream, upstream id, route, client id, timeout).
#[derive(Default)]
struct Timeouts(Vec<(u16, u64, u32, Vec<u8>, u64)>);

impl Timeouts {
    fn record(&mut self) -> impl FnMut(Expired<'_, u32>) + '_ {
        |expired| {
            self.0.push((
                expired.upstream,
                expired.upstream_id.0,
                expired.route,
                expired.client_id.to_vec(),
                expired.timeout_ms,
            ))
        }
    }
}

fn no_timeout(expired: Expired<'_, u32>) {
    panic!("unexpected timeout of {:?}", expired.upstream_id);
}

fn register(
    table: &mut PendingTable<u32>,
    upstream: u16,
    route: u32,
    client_id: &str,
    now_ms: u64,
) -> Result<UpstreamRequestId, PendingRefusal> {
    table.register(
        upstream,
        route,
        &raw(client_id),
        None,
        now_ms + 100,
        now_ms,
        no_timeout,
    )
}

fn id_json(id: UpstreamRequestId) -> Box<RawValue> {
    raw(std::str::from_utf8(id.to_json(IdForm::Number).as_bytes()).expect("digits"))
}

#[test]
fn upstream_id_round_trips_in_both_forms() {
    for id in [0, 1, 9, 10, 12345, u64::MAX] {
        let id = UpstreamRequestId(id);
        let number = id.to_json(IdForm::Number);
        let string = id.to_json(IdForm::String);
        assert_eq!(number.as_bytes(), id.0.to_string().as_bytes());
        assert_eq!(string.as_bytes(), format!("\"{}\"", id.0).as_bytes());
        for json in [number, string] {
            let text = std::str::from_utf8(json.as_bytes()).expect("ascii");
            assert_eq!(UpstreamRequestId::parse(&raw(text)), Some(id), "{text}");
        }
    }
}

#[test]
fn upstream_id_parse_refuses_other_spellings() {
    for text in [
        "-1",
        "1.0",
        "1e3",
        "\"01\"",
        "\"\"",
        "\"\\u0031\"",
        "\"1 \"",
        "18446744073709551616",
        "null",
        "true",
        "{}",
    ] {
        assert_eq!(UpstreamRequestId::parse(&raw(text)), None, "{text}");
    }
}

#[test]
fn rewrite_request_id_replaces_id_and_progress_token_only() {
    let body =
        br#"{ "jsonrpc" : "2.0", "params": {"name":"t","arguments":{"id":5,"progressToken":1},
        "_meta": {"progressToken": "client-tok", "x": 1}}, "method":"tools/call", "id" : "abc" }"#;
    let out = rewrite_request_id(body, b"42").expect("rewritable");
    let text = String::from_utf8(out).expect("utf-8");
    assert!(text.contains(r#""id" : 42 }"#), "{text}");
    assert!(
        text.contains(r#""_meta": {"progressToken": 42, "x": 1}"#),
        "{text}"
    );
    assert!(
        text.contains(r#""arguments":{"id":5,"progressToken":1}"#),
        "{text}"
    );
    assert!(
        text.starts_with(r#"{ "jsonrpc" : "2.0", "params""#),
        "{text}"
    );
}

#[test]
fn rewrite_request_id_without_progress_token_changes_only_the_id() {
    let body = br#"{"jsonrpc":"2.0","id":7,"method":"ping","params":{"_meta":{"a":1}}}"#;
    let out = rewrite_request_id(body, b"\"9\"").expect("rewritable");
    assert_eq!(
        out,
        br#"{"jsonrpc":"2.0","id":"9","method":"ping","params":{"_meta":{"a":1}}}"#
    );
}

#[test]
fn restore_response_id_replaces_a_null_id_too() {
    let body = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"m"}}"#;
    let out = restore_response_id(body, b"\"c-1\"").expect("rewritable");
    assert_eq!(
        out,
        br#"{"jsonrpc":"2.0","id":"c-1","error":{"code":-1,"message":"m"}}"#
    );
}

#[test]
fn restore_progress_token_replaces_the_params_token() {
    let body = br#"{"jsonrpc":"2.0","method":"notifications/progress",
        "params":{"progressToken":17,"progress":0.5}}"#;
    let out = restore_progress_token(body, b"\"mine\"").expect("rewritable");
    let value: Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(value["params"]["progressToken"], "mine");
    assert_eq!(value["params"]["progress"], 0.5);
}

#[test]
fn rewrite_refuses_what_is_not_one_object_with_the_member() {
    let refusals = [
        (&br#"[{"id":1}]"#[..], "message"),
        (br#"{"id":1"#, "message"),
        (br#"{"id":1} x"#, "message"),
        (br#"{"id":1,"id":2}"#, "message"),
        (br#"{"id":1,"params":{"_meta":[1]},"x":{"_meta":1}}"#, ""),
    ];
    for (body, member) in refusals {
        match rewrite_request_id(body, b"1") {
            Err(RewriteError::NotAnObject { member: m, .. }) => assert_eq!(m, member),
            Ok(_) if member.is_empty() => {}
            other => panic!("{other:?} for {}", String::from_utf8_lossy(body)),
        }
    }
    assert_eq!(
        restore_response_id(br#"{"method":"x"}"#, b"1"),
        Err(RewriteError::Missing { member: "id" })
    );
    assert_eq!(
        restore_progress_token(br#"{"method":"x","params":[17]}"#, b"1"),
        Err(RewriteError::Missing {
            member: "params.progressToken"
        })
    );
    let err = rewrite_request_id(
        br#"{"id":1,"params":{"_meta":{"progressToken":1,"progressToken":2}}}"#,
        b"1",
    );
    assert!(
        matches!(
            err,
            Err(RewriteError::NotAnObject {
                member: "params._meta",
                ..
            })
        ),
        "{err:?}"
    );
}

#[test]
fn complete_returns_route_and_client_id_once() {
    let mut table = table();
    let id = register(&mut table, 1, 77, r#""req-1""#, 0).expect("room");
    let done = table.complete(1, &id_json(id), 10).expect("in flight");
    assert_eq!(done.route, 77);
    assert_eq!(&done.client_id[..], br#""req-1""#);
    assert_eq!(table.complete(1, &id_json(id), 10), None, "ended once");
    let stats = table.stats();
    assert_eq!((stats.entries, stats.completed_total), (0, 1));
    assert_eq!(stats.late_answers_total, 1);
    assert_eq!(stats.per_upstream, vec![0, 0, 0]);
}

#[test]
fn complete_accepts_the_string_form_of_the_id() {
    let mut table = table();
    let id = register(&mut table, 0, 1, "5", 0).expect("room");
    let text = format!("\"{}\"", id.0);
    assert!(table.complete(0, &raw(&text), 0).is_some());
}

#[test]
fn answer_from_another_upstream_is_late_and_leaves_the_request() {
    let mut table = table();
    let id = register(&mut table, 1, 7, "1", 0).expect("room");
    assert_eq!(table.complete(2, &id_json(id), 0), None);
    assert_eq!(table.complete(1, &raw("999"), 0), None);
    assert_eq!(table.complete(1, &raw("\"nope\""), 0), None);
    assert_eq!(table.stats().late_answers_total, 3);
    assert!(table.complete(1, &id_json(id), 0).is_some());
}

#[test]
fn deadline_ends_a_request_as_a_timeout_not_an_answer() {
    let mut table = table();
    let mut timeouts = Timeouts::default();
    let id = table
        .register(2, 9, &raw("\"x\""), None, 150, 100, no_timeout)
        .expect("room");
    assert_eq!(table.complete(2, &id_json(id), 150), None, "past deadline");
    table.advance(150, timeouts.record());
    table.advance(150, timeouts.record());
    assert_eq!(timeouts.0, vec![(2, id.0, 9, b"\"x\"".to_vec(), 50)]);
    assert_eq!(table.complete(2, &id_json(id), 150), None);
    let stats = table.stats();
    assert_eq!((stats.entries, stats.timeouts_total), (0, 1));
    assert_eq!((stats.completed_total, stats.late_answers_total), (0, 2));
}

#[test]
fn advance_keeps_requests_before_their_deadline() {
    let mut table = table();
    let id = register(&mut table, 0, 1, "1", 0).expect("room");
    for now in 0..5 {
        table.advance(now, no_timeout);
    }
    assert!(table.complete(0, &id_json(id), 5).is_some());
}

#[test]
fn expired_message_names_upstream_and_timeout() {
    let expired = Expired {
        upstream: 0,
        upstream_id: UpstreamRequestId(3),
        route: 1u32,
        client_id: b"1",
        timeout_ms: 300_000,
    };
    assert_eq!(
        expired.message("search"),
        "upstream search did not answer within 300000 ms; the request was cancelled"
    );
}

#[test]
fn cancel_by_client_names_the_owning_upstream_and_drops_the_answer() {
    let mut table = table();
    let first = register(&mut table, 0, 5, "1", 0).expect("room");
    let second = register(&mut table, 2, 5, "2", 0).expect("room");
    assert_eq!(table.cancel_by_client(5, &raw("2"), 0), Some((2, second)));
    assert_eq!(table.cancel_by_client(5, &raw("2"), 0), None, "ended once");
    assert_eq!(
        table.cancel_by_client(6, &raw("1"), 0),
        None,
        "another route"
    );
    assert_eq!(
        table.cancel_by_client(5, &raw("\"1\""), 0),
        None,
        "another id"
    );
    assert_eq!(table.complete(2, &id_json(second), 0), None, "late");
    assert!(table.complete(0, &id_json(first), 0).is_some());
    assert_eq!(table.stats().cancelled_total, 1);
}

#[test]
fn same_client_id_is_refused_on_one_route_and_allowed_on_another() {
    let mut table = table();
    register(&mut table, 0, 1, "7", 0).expect("room");
    assert_eq!(
        register(&mut table, 1, 1, "7", 0),
        Err(PendingRefusal::IdInFlight)
    );
    register(&mut table, 0, 2, "7", 0).expect("another route");
    assert_eq!(table.stats().refusals[3], ("request_id_in_flight", 1));
}

#[test]
fn client_id_is_free_again_once_its_request_ended() {
    let mut table = table();
    let id = register(&mut table, 0, 1, "7", 0).expect("room");
    table.complete(0, &id_json(id), 0).expect("in flight");
    let again = register(&mut table, 0, 1, "7", 0).expect("id reusable");
    assert_ne!(again, id, "upstream ids are never reused");
}

#[test]
fn progress_route_maps_the_gateway_token_back_to_the_client_token() {
    let mut table = table();
    let token = raw(r#""tok-1""#);
    let with = table
        .register(1, 4, &raw("1"), Some(&token), 100, 0, no_timeout)
        .expect("room");
    let without = register(&mut table, 1, 4, "2", 0).expect("room");
    let gateway_token = id_json(with);
    assert_eq!(
        table.progress_route(1, &gateway_token, 0),
        Some((4, &br#""tok-1""#[..]))
    );
    assert_eq!(table.progress_route(0, &gateway_token, 0), None);
    assert_eq!(table.progress_route(1, &id_json(without), 0), None);
    assert_eq!(table.progress_route(1, &gateway_token, 100), None);
}

#[test]
fn register_refuses_ids_over_request_id_bytes_max() {
    let mut table = table();
    let long = format!("\"{}\"", "a".repeat(31));
    let refused = register(&mut table, 0, 1, &long, 0).expect_err("33 bytes");
    assert_eq!(
        refused,
        PendingRefusal::IdTooLarge {
            kind: IdKind::RequestId,
            bytes: 33,
            request_id_bytes_max: 32
        }
    );
    assert_eq!(
        refused.message("beta"),
        "request id of 33 bytes exceeds pending.request_id_bytes_max 32"
    );
    let refused = table
        .register(0, 1, &raw("1"), Some(&raw(&long)), 9, 0, no_timeout)
        .expect_err("33 bytes");
    assert!(matches!(
        refused,
        PendingRefusal::IdTooLarge {
            kind: IdKind::ProgressToken,
            ..
        }
    ));
    assert_eq!(table.stats().refusals[2], ("request_id_bytes_max", 2));
    assert!(table.is_empty());
}

#[test]
fn register_refuses_at_pending_per_upstream_max_naming_the_key() {
    let mut table = table();
    for client in 0..4 {
        register(&mut table, 1, 1, &client.to_string(), 0).expect("room");
    }
    let refused = register(&mut table, 1, 1, "9", 0).expect_err("upstream full");
    assert_eq!(
        refused,
        PendingRefusal::UpstreamFull {
            upstream: 1,
            pending_per_upstream_max: 4
        }
    );
    assert_eq!(
        refused.config_key(),
        Some("pending.pending_per_upstream_max")
    );
    assert_eq!(refused.reason(), RefusalReason::PendingFull);
    let message = refused.message("beta");
    assert!(
        message.contains("upstream beta:") && message.contains("pending.pending_per_upstream_max"),
        "{message}"
    );
    register(&mut table, 0, 1, "9", 0).expect("other upstreams keep working");
    assert_eq!(table.stats().per_upstream, vec![1, 4, 0]);
}

#[test]
fn register_refuses_at_pending_max_naming_the_key() {
    let mut table = table();
    for client in 0..8 {
        register(&mut table, (client % 3) as u16, 1, &client.to_string(), 0).expect("room");
    }
    let refused = register(&mut table, 2, 1, "99", 0).expect_err("shard full");
    assert_eq!(refused, PendingRefusal::ShardFull { pending_max: 8 });
    assert!(refused.message("beta").contains("pending.pending_max"));
    assert_eq!(table.stats().refusals[0], ("pending_max", 1));
    assert_eq!(table.len(), 8);
}

#[test]
fn full_table_retires_early_reporting_timeouts_then_admits() {
    let mut table = table();
    let mut timeouts = Timeouts::default();
    for client in 0..4 {
        table
            .register(1, 1, &raw(&client.to_string()), None, 10, 0, no_timeout)
            .expect("room");
    }
    let admitted = table.register(1, 2, &raw("1"), None, 100, 20, timeouts.record());
    assert!(admitted.is_ok(), "{admitted:?}");
    assert_eq!(
        timeouts.0.len(),
        4,
        "expired requests reported, not dropped"
    );
    assert_eq!(table.stats().early_retires_total, 2);
    assert_eq!(table.stats().per_upstream, vec![0, 1, 0]);
}

#[test]
fn futile_early_retire_is_not_repeated_before_the_next_tick() {
    let mut table = table();
    for client in 0..4 {
        register(&mut table, 0, 1, &client.to_string(), 0).expect("room");
    }
    for _ in 0..5 {
        register(&mut table, 0, 1, "9", 0).expect_err("upstream full");
    }
    assert_eq!(
        table.stats().early_retires_total,
        2,
        "one sweep of two generations"
    );
    table.advance(0, no_timeout);
    register(&mut table, 0, 1, "9", 0).expect_err("upstream full");
    assert_eq!(table.stats().early_retires_total, 4);
}

#[test]
fn churn_within_one_tick_never_evicts_a_live_request() {
    let mut table = table();
    let long = format!("\"{}\"", "b".repeat(30));
    let survivor = table
        .register(
            0,
            1,
            &raw(&long),
            Some(&raw(&long)),
            u64::MAX,
            0,
            no_timeout,
        )
        .expect("room");
    for round in 0..1_000u32 {
        let client = format!("\"{round:030}\"");
        let id = table
            .register(
                1,
                2,
                &raw(&client),
                Some(&raw(&client)),
                u64::MAX,
                0,
                no_timeout,
            )
            .expect("room");
        table.complete(1, &id_json(id), 0).expect("in flight");
    }
    assert!(table.stats().early_retires_total > 0, "churn filled terms");
    let done = table
        .complete(0, &id_json(survivor), 0)
        .expect("still in flight");
    assert_eq!(&done.client_id[..], long.as_bytes());
}

#[test]
fn limits_outside_their_range_are_refused_naming_the_key() {
    let cases = [
        (
            PendingLimits {
                pending_max: 0,
                ..limits()
            },
            "pending.pending_max",
        ),
        (
            PendingLimits {
                pending_per_upstream_max: 9,
                ..limits()
            },
            "pending.pending_per_upstream_max",
        ),
        (
            PendingLimits {
                request_id_bytes_max: 8,
                ..limits()
            },
            "pending.request_id_bytes_max",
        ),
        (
            PendingLimits {
                upstreams_count: 0,
                ..limits()
            },
            "upstreams",
        ),
    ];
    for (limits, key) in cases {
        match PendingTable::<u32>::new(limits) {
            Err(PendingError::Limit { key: k, .. }) => assert_eq!(k, key),
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("{key} accepted"),
        }
    }
    let error = PendingTable::<u32>::new(PendingLimits {
        pending_max: 0,
        ..limits()
    });
    assert_eq!(
        error.err().map(|e| e.to_string()),
        Some("pending.pending_max 0 is outside 1..=1000000".to_owned())
    );
}

#[test]
fn memory_ceiling_counts_both_tables_and_two_arenas_of_twice_the_term() {
    let defaults = PendingLimits {
        pending_max: 1000,
        pending_per_upstream_max: 500,
        upstreams_count: 4,
        request_id_bytes_max: 128,
    };
    let ceiling = PendingTable::<u64>::memory_ceiling(&defaults);
    assert_eq!(ceiling.requests.arenas_bytes, 2 * 2 * 1000 * 256);
    assert_eq!(ceiling.by_client.arenas_bytes, 0);
    assert!(ceiling.by_client.index_bytes > 0);
    assert_eq!(
        ceiling.total(),
        ceiling.requests.total() + ceiling.by_client.total()
    );
    assert!(ceiling.total() < 2 << 20, "{}", ceiling.total());
}

#[test]
fn pending_ranges_are_the_pending_tables_own() {
    use crate::calls::pending::PendingError;
    use crate::config::bounds;
    let range_of = |limits: PendingLimits| match PendingTable::<u64>::new(limits) {
        Err(PendingError::Limit { key, min, max, .. }) => (key, i64::from(min), i64::from(max)),
        Err(error) => panic!("expected a limit error, got {error}"),
        Ok(_) => panic!("expected a limit error"),
    };
    let limits = PendingLimits {
        pending_max: 0,
        pending_per_upstream_max: 1,
        upstreams_count: 1,
        request_id_bytes_max: 128,
    };
    let pending_max = bounds::PENDING_MAX;
    assert_eq!(
        range_of(limits),
        ("pending.pending_max", pending_max.min, pending_max.max)
    );
    let limits = PendingLimits {
        pending_max: 1,
        request_id_bytes_max: 0,
        ..limits
    };
    let id_bytes = bounds::REQUEST_ID_BYTES_MAX;
    assert_eq!(
        range_of(limits),
        ("pending.request_id_bytes_max", id_bytes.min, id_bytes.max)
    );
}
