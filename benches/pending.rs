//! Costs of the pending table and the id splicing on the request path.
//!
//! `register_complete` and `register_cancel` report one request per iteration (registered,
//! then answered or cancelled by its client) with 100 other requests in flight.
//! `advance_<N>_live` reports one tick over N requests in flight, none due (each one's ids are
//! copied into the current generation); `advance_<N>_expired` one tick that times out N
//! requests (each reported to the callback). `rewrite_request_id` and `restore_response_id`
//! report one message of a `tools/call` size. Run with `cargo bench --bench pending`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::value::RawValue;
use shardgate::calls::pending::{
    restore_response_id, rewrite_request_id, Expired, PendingLimits, PendingTable,
};
use shardgate::wire::ids::{IdForm, UpstreamRequestId};

const IN_FLIGHT: u32 = 100;
const CLIENT_ID: &str = r#""3f2b8c1e-9a4d-4e7b-b1c2-5d6e7f8a9b0c""#;
const REQUEST: &[u8] = concat!(
    r#"{"jsonrpc":"2.0","id":"3f2b8c1e-9a4d-4e7b-b1c2-5d6e7f8a9b0c","method":"tools/call","#,
    r#""params":{"name":"search__query","arguments":{"q":"thread-per-core gateways","#,
    r#""limit":10},"_meta":{"progressToken":"p-17"}}}"#
)
.as_bytes();
const RESPONSE: &[u8] = concat!(
    r#"{"jsonrpc":"2.0","id":1234567,"result":{"content":[{"type":"text","#,
    r#""text":"ten results about thread-per-core gateways"}],"isError":false}}"#
)
.as_bytes();

fn limits(pending_max: u32) -> PendingLimits {
    PendingLimits {
        pending_max,
        pending_per_upstream_max: pending_max,
        upstreams_count: 4,
        request_id_bytes_max: 128,
    }
}

fn raw(json: &str) -> &RawValue {
    serde_json::from_str(json).expect("bench json is valid")
}

fn no_timeout(expired: Expired<'_, u64>) {
    panic!("unexpected timeout of {:?}", expired.upstream_id);
}

/// A table with `count` requests in flight until `deadline_ms`, on routes `0..count`.
fn filled(pending_max: u32, count: u32, deadline_ms: u64) -> PendingTable<u64> {
    let mut table = PendingTable::new(limits(pending_max)).expect("bench limits are valid");
    let token = raw(r#""p-17""#);
    for route in 0..u64::from(count) {
        table
            .register(
                (route % 4) as u16,
                route,
                raw(CLIENT_ID),
                Some(token),
                deadline_ms,
                0,
                no_timeout,
            )
            .expect("room for every request");
    }
    table
}

fn bench_register_complete(c: &mut Criterion) {
    let mut table = filled(1000, IN_FLIGHT, u64::MAX);
    let route = u64::from(IN_FLIGHT);
    c.bench_function("register_complete", |b| {
        b.iter(|| {
            let id = table
                .register(
                    1,
                    route,
                    raw(black_box(CLIENT_ID)),
                    None,
                    u64::MAX,
                    0,
                    no_timeout,
                )
                .expect("room");
            let echoed = id.to_json(IdForm::Number);
            let echoed = std::str::from_utf8(echoed.as_bytes()).expect("digits");
            black_box(table.complete(1, raw(echoed), 0).expect("in flight"))
        })
    });
}

fn bench_register_cancel(c: &mut Criterion) {
    let mut table = filled(1000, IN_FLIGHT, u64::MAX);
    let route = u64::from(IN_FLIGHT);
    c.bench_function("register_cancel", |b| {
        b.iter(|| {
            table
                .register(
                    2,
                    route,
                    raw(black_box(CLIENT_ID)),
                    None,
                    u64::MAX,
                    0,
                    no_timeout,
                )
                .expect("room");
            black_box(
                table
                    .cancel_by_client(route, raw(CLIENT_ID), 0)
                    .expect("in flight"),
            )
        })
    });
}

fn bench_advance_live(c: &mut Criterion) {
    for count in [1_000u32, 10_000] {
        let mut table = filled(count, count, u64::MAX);
        table.advance(0, no_timeout);
        c.bench_function(&format!("advance_{count}_live"), |b| {
            b.iter(|| table.advance(black_box(0), no_timeout))
        });
    }
}

fn bench_advance_expired(c: &mut Criterion) {
    for count in [1_000u32, 10_000] {
        c.bench_function(&format!("advance_{count}_expired"), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let mut table = filled(count, count, 1);
                    table.advance(0, no_timeout);
                    let mut timeouts = 0u32;
                    let start = Instant::now();
                    table.advance(1, |expired| {
                        black_box(expired.client_id);
                        timeouts += 1;
                    });
                    elapsed += start.elapsed();
                    assert_eq!(timeouts, count);
                }
                elapsed
            })
        });
    }
}

fn bench_rewrite(c: &mut Criterion) {
    let upstream_id = UpstreamRequestId(1_234_567).to_json(IdForm::Number);
    c.bench_function("rewrite_request_id", |b| {
        b.iter(|| rewrite_request_id(black_box(REQUEST), upstream_id.as_bytes()).expect("valid"))
    });
    c.bench_function("restore_response_id", |b| {
        b.iter(|| restore_response_id(black_box(RESPONSE), CLIENT_ID.as_bytes()).expect("valid"))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_register_complete, bench_register_cancel, bench_advance_live,
        bench_advance_expired, bench_rewrite
}
criterion_main!(benches);
