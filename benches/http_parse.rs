//! Cost of framing one request with the codec's parser, reused as a connection reuses it:
//! a typical MCP `tools/call` POST (10 header fields, a 200-byte JSON body) with
//! `Content-Length`, and the same body sent chunked in two chunks with a trailer.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shardgate::http::{HttpLimits, Parsed, RequestParser};
use std::hint::black_box;

const LIMITS: HttpLimits = HttpLimits {
    header_bytes_max: 16 * 1024,
    headers_count_max: 64,
    request_body_bytes_max: 1024 * 1024,
    header_read_timeout_ms: 10_000,
    body_read_timeout_ms: 30_000,
    keepalive_idle_timeout_ms: 60_000,
};

const HEAD_FIELDS: &str = "Host: gateway.internal:8080\r\n\
User-Agent: mcp-client/1.4.2\r\n\
Accept: application/json, text/event-stream\r\n\
Content-Type: application/json\r\n\
Authorization: Bearer sk-7f3a9c2e41b84d6f9a0e5c1b2d3f4a5b\r\n\
Mcp-Session-Id: 0a1b2c3d4e5f60718293a4b5c6d7e8f9\r\n\
Mcp-Protocol-Version: 2025-11-25\r\n\
Mcp-Method: tools/call\r\n\
Mcp-Name: search_documents\r\n";

fn json_body() -> String {
    let body = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search_documents","arguments":{"query":"epoch arenas","limit":10,"filters":{"kind":"design","after":"2026-01-01"}},"_meta":{"progressToken":"p-42"}}}"#;
    format!("{body:<200}")
}

fn content_length_request() -> Vec<u8> {
    let body = json_body();
    let len = body.len();
    format!("POST /mcp HTTP/1.1\r\n{HEAD_FIELDS}Content-Length: {len}\r\n\r\n{body}").into_bytes()
}

fn chunked_request() -> Vec<u8> {
    let body = json_body();
    let (a, b) = body.split_at(120);
    format!(
        "POST /mcp HTTP/1.1\r\n{HEAD_FIELDS}Transfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\nX-Trace: 7\r\n\r\n",
        a.len(),
        b.len()
    )
    .into_bytes()
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("http_parse");
    group.throughput(Throughput::Elements(1));
    for (name, input) in [
        ("mcp_post_content_length", content_length_request()),
        ("mcp_post_chunked", chunked_request()),
    ] {
        let mut parser = RequestParser::new(&LIMITS);
        group.bench_function(name, |b| {
            b.iter(|| match parser.parse(black_box(&input)) {
                Ok(Parsed::Complete(request)) => black_box(request.body().len()),
                other => panic!("benchmark input must frame: {other:?}"),
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
