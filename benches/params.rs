//! Cost of the routed params rewrite on the proxied call path.
//!
//! `read_write`: the params of a stateless-era `tools/call` (a `_meta` with the client's
//! protocol members and a progress token, 270 bytes) read by `CallParams::read` and written for
//! a 2026-07-28 upstream by `CallParams::write` (name, token and `_meta` replaced).
//! `value_tree`: the same params parsed into a `serde_json::Value` and serialised again, with
//! no edit, as a floor for doing the rewrite on a tree. Run with `cargo bench --bench params`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::value::RawValue;
use shardgate::wire::ids::UpstreamRequestId;
use shardgate::wire::params::{CallParams, Rewrite};

const PARAMS: &str = concat!(
    r#"{"name":"search__query","arguments":{"q":"thread-per-core gateways","limit":10},"#,
    r#""_meta":{"progressToken":"p-17","io.modelcontextprotocol/protocolVersion":"2026-07-28","#,
    r#""io.modelcontextprotocol/clientCapabilities":{},"#,
    r#""io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"}}}"#
);

fn bench(c: &mut Criterion) {
    let params = RawValue::from_string(PARAMS.to_owned()).expect("valid JSON");
    let rewrite = Rewrite {
        original: "query",
        progress: Some(UpstreamRequestId(1_234_567)),
        log_level: None,
        client_capabilities: None,
        stateless: true,
    };
    let mut out = Vec::with_capacity(512);
    c.bench_function("read_write", |b| {
        b.iter(|| {
            out.clear();
            let read = CallParams::read("tools/call", Some(black_box(&params))).expect("routed");
            read.write(&mut out, &rewrite);
            black_box(out.len())
        })
    });
    c.bench_function("value_tree", |b| {
        b.iter(|| {
            out.clear();
            let tree: serde_json::Value =
                serde_json::from_str(black_box(PARAMS)).expect("valid JSON");
            serde_json::to_writer(&mut out, &tree).expect("serialises");
            black_box(out.len())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
