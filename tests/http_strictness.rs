//! Goal: the front door's HTTP/1.1 codec is strict per RFC 9112 and enforces every limit it is
//! configured with, answering each refusal with the status the contract names and a JSON-RPC
//! error body, and closing the connection where framing can no longer be trusted.
//!
//! Method: start the real binary on one shard with small limits, speak raw bytes over a
//! `TcpStream` (malformed framing, oversized heads, a slowloris trickle, pipelined requests) and
//! assert the status, the body and whether the socket is closed afterwards.

mod common;

use std::time::{Duration, Instant};

use common::client::{chunked, CloseProbe, Conn, Request, Response};
use common::mcp::{post, stateless_body, stateless_post};
use common::{config_with, Gateway};
use serde_json::json;

const HEADER_BYTES_MAX: usize = 8192;
const HEADERS_COUNT_MAX: usize = 32;
const REQUEST_BODY_BYTES_MAX: usize = 65536;
const HEADER_READ_TIMEOUT_MS: u64 = 1500;
const KEEPALIVE_IDLE_TIMEOUT_MS: u64 = 1000;
const CONNECTIONS_MAX: usize = 4;

/// A gateway on one shard with small head/body limits and a long keep-alive.
fn strict_gateway() -> Gateway {
    Gateway::start(&config_with(&limits(30_000, 1024)), 1)
}

fn limits(keepalive_idle_timeout_ms: u64, connections_max: usize) -> String {
    format!(
        "[limits]\nheader_bytes_max = {HEADER_BYTES_MAX}\nheaders_count_max = {HEADERS_COUNT_MAX}\n\
         request_body_bytes_max = {REQUEST_BODY_BYTES_MAX}\n\
         header_read_timeout_ms = {HEADER_READ_TIMEOUT_MS}\n\
         keepalive_idle_timeout_ms = {keepalive_idle_timeout_ms}\n\
         connections_max = {connections_max}\n"
    )
}

/// A valid stateless `server/discover` request with JSON-RPC id `id`.
fn discover(gw: &Gateway, id: u64) -> Request {
    stateless_post(
        &gw.mcp_path(),
        &stateless_body(id, "server/discover", json!({})),
    )
}

/// Asserts `response` has `status` and a JSON-RPC error body with a null id.
fn assert_refused(response: &Response, status: u16) {
    assert_eq!(response.status, status, "body: {}", response.text());
    let body = response.json();
    assert_eq!(body["jsonrpc"], "2.0", "error body is JSON-RPC: {body}");
    assert!(body["id"].is_null(), "refusal carries id null: {body}");
    assert!(body["error"]["code"].is_i64(), "error.code present: {body}");
    assert!(
        body["error"]["message"].is_string(),
        "error.message present: {body}"
    );
}

fn assert_closed(conn: &mut Conn, what: &str) {
    match conn.probe_close(Duration::from_secs(3)) {
        CloseProbe::Closed(_) => {}
        other => panic!("{what}: connection not closed after the refusal: {other:?}"),
    }
}

/// The head of a POST to `path` whose framing headers are given verbatim.
fn post_head(path: &str, framing: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{framing}\r\n"
    )
}

#[test]
fn content_length_with_transfer_encoding_is_400_and_closes() {
    let gw = strict_gateway();
    let mut conn = Conn::connect(&gw.mcp_addr);
    let body = chunked(b"{}", 2);
    let mut request = post_head(
        &gw.mcp_path(),
        &format!(
            "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
            body.len()
        ),
    )
    .into_bytes();
    request.extend_from_slice(&body);
    conn.send_lossy(&request);
    let response = conn.read_response();
    assert_refused(&response, 400);
    assert_closed(&mut conn, "CL+TE");
}

#[test]
fn transfer_encoding_other_than_chunked_is_501() {
    let gw = strict_gateway();
    let mut conn = Conn::connect(&gw.mcp_addr);
    let mut request =
        post_head(&gw.mcp_path(), "Transfer-Encoding: chunked, gzip\r\n").into_bytes();
    request.extend_from_slice(&chunked(b"{}", 2));
    conn.send_lossy(&request);
    assert_refused(&conn.read_response(), 501);
}

#[test]
fn two_different_content_lengths_are_400() {
    let gw = strict_gateway();
    let mut conn = Conn::connect(&gw.mcp_addr);
    let mut request =
        post_head(&gw.mcp_path(), "Content-Length: 2\r\nContent-Length: 3\r\n").into_bytes();
    request.extend_from_slice(b"{} ");
    conn.send_lossy(&request);
    assert_refused(&conn.read_response(), 400);
}

#[test]
fn body_over_request_body_bytes_max_is_413_before_the_body_is_sent() {
    let gw = strict_gateway();
    let mut conn = Conn::connect(&gw.mcp_addr);
    let length = REQUEST_BODY_BYTES_MAX + 1;
    conn.send(post_head(&gw.mcp_path(), &format!("Content-Length: {length}\r\n")).as_bytes());
    // Only the head was sent: an answer proves the limit is checked against the declared length.
    conn.set_read_timeout(Duration::from_secs(5));
    let response = conn.try_read_response().unwrap_or_else(|e| {
        panic!("no answer to a {length}-byte Content-Length within 5 s of the head: {e}")
    });
    assert_refused(&response, 413);
}

#[test]
fn body_at_request_body_bytes_max_is_read_not_refused() {
    let gw = strict_gateway();
    let mut conn = Conn::connect(&gw.mcp_addr);
    // Valid JSON padded with whitespace to exactly the limit.
    let mut body = stateless_body(1, "server/discover", json!({}))
        .to_string()
        .into_bytes();
    body.resize(REQUEST_BODY_BYTES_MAX, b' ');
    let request = discover(&gw, 1).body(body);
    let response = conn.roundtrip(&request.to_bytes());
    assert_eq!(
        response.status,
        200,
        "body at the limit: {}",
        response.text()
    );
}

#[test]
fn head_over_header_bytes_max_is_431() {
    let gw = strict_gateway();
    let mut conn = Conn::connect(&gw.mcp_addr);
    let request = discover(&gw, 1).header("X-Pad", &"a".repeat(HEADER_BYTES_MAX + 1));
    conn.send_lossy(&request.to_bytes());
    assert_refused(&conn.read_response(), 431);
}

#[test]
fn headers_over_headers_count_max_is_431() {
    let gw = strict_gateway();
    let mut conn = Conn::connect(&gw.mcp_addr);
    let mut request = discover(&gw, 1);
    for index in 0..=HEADERS_COUNT_MAX {
        request = request.header(&format!("X-Pad-{index}"), "v");
    }
    conn.send_lossy(&request.to_bytes());
    assert_refused(&conn.read_response(), 431);
}

#[test]
fn slowloris_head_is_408_and_closed_after_header_read_timeout() {
    let gw = strict_gateway();
    let mut conn = Conn::connect(&gw.mcp_addr);
    let mut writer = conn.stream.try_clone().unwrap();
    let started = Instant::now();
    let trickle = std::thread::spawn(move || {
        use std::io::Write;
        for byte in b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa" {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let response = conn.read_response();
    let answered_after = started.elapsed();
    assert_refused(&response, 408);
    assert!(
        answered_after > Duration::from_millis(1000),
        "408 came before header_read_timeout_ms={HEADER_READ_TIMEOUT_MS}: {answered_after:?}"
    );
    assert!(
        answered_after < Duration::from_secs(6),
        "408 came long after header_read_timeout_ms={HEADER_READ_TIMEOUT_MS}: {answered_after:?}"
    );
    assert_closed(&mut conn, "slowloris");
    drop(conn);
    trickle.join().unwrap();
}

#[test]
fn keep_alive_serves_three_requests_on_one_connection() {
    let gw = strict_gateway();
    let mut conn = Conn::connect(&gw.mcp_addr);
    for id in 1..=3 {
        let response = conn.roundtrip(&discover(&gw, id).to_bytes());
        assert_eq!(response.status, 200, "request {id}: {}", response.text());
        assert_eq!(
            response.json()["id"],
            id,
            "response {id} answers request {id}"
        );
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let gw = strict_gateway();
    let mut conn = Conn::connect(&gw.mcp_addr);
    let mut batch = Vec::new();
    for id in [11, 12, 13] {
        batch.extend_from_slice(&discover(&gw, id).to_bytes());
    }
    conn.send(&batch);
    for id in [11, 12, 13] {
        let response = conn.read_response();
        assert_eq!(response.status, 200, "pipelined {id}: {}", response.text());
        assert_eq!(
            response.json()["id"],
            id,
            "pipelined responses keep request order"
        );
    }
}

#[test]
fn chunked_request_body_is_accepted() {
    let gw = strict_gateway();
    let body = stateless_body(7, "server/discover", json!({})).to_string();
    let request = discover(&gw, 7)
        .header("Transfer-Encoding", "chunked")
        .body(chunked(body.as_bytes(), 9));
    let mut conn = Conn::connect(&gw.mcp_addr);
    let response = conn.roundtrip(&request.to_bytes());
    assert_eq!(response.status, 200, "chunked body: {}", response.text());
    assert_eq!(response.json()["id"], 7);
    // The connection stays usable: the chunked body was consumed exactly.
    let again = conn.roundtrip(&discover(&gw, 8).to_bytes());
    assert_eq!(again.json()["id"], 8);
}

#[test]
fn idle_keep_alive_connection_closes_after_keepalive_idle_timeout() {
    let gw = Gateway::start(&config_with(&limits(KEEPALIVE_IDLE_TIMEOUT_MS, 1024)), 1);
    let mut conn = Conn::connect(&gw.mcp_addr);
    let response = conn.roundtrip(&discover(&gw, 1).to_bytes());
    assert_eq!(response.status, 200);
    match conn.probe_close(Duration::from_millis(KEEPALIVE_IDLE_TIMEOUT_MS + 4000)) {
        CloseProbe::Closed(after) => {
            assert!(
                after >= Duration::from_millis(KEEPALIVE_IDLE_TIMEOUT_MS * 7 / 10),
                "closed before keepalive_idle_timeout_ms={KEEPALIVE_IDLE_TIMEOUT_MS}: {after:?}"
            );
        }
        other => panic!(
            "idle connection not closed within keepalive_idle_timeout_ms=\
             {KEEPALIVE_IDLE_TIMEOUT_MS} + 4 s: {other:?}"
        ),
    }
}

#[test]
fn connection_over_connections_max_is_503_and_closed() {
    let gw = Gateway::start(&config_with(&limits(30_000, CONNECTIONS_MAX)), 1);
    let mut held: Vec<Conn> = (0..CONNECTIONS_MAX)
        .map(|index| {
            let mut conn = Conn::connect(&gw.mcp_addr);
            let response = conn.roundtrip(&discover(&gw, index as u64).to_bytes());
            assert_eq!(
                response.status, 200,
                "connection {index} within connections_max"
            );
            conn
        })
        .collect();
    let mut extra = Conn::connect(&gw.mcp_addr);
    extra.send_lossy(&discover(&gw, 99).to_bytes());
    let response = extra.read_response();
    assert_refused(&response, 503);
    assert!(
        response.header("Retry-After").is_some(),
        "503 carries Retry-After"
    );
    assert!(
        response.text().contains("limits.connections_max"),
        "names the limit: {}",
        response.text()
    );
    assert_closed(&mut extra, "over connections_max");

    // Freeing a slot makes room again (the edge on the other side of the limit).
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut conn = Conn::connect(&gw.mcp_addr);
        conn.send_lossy(&discover(&gw, 100).to_bytes());
        let status = conn.try_read_response().map(|r| r.status).unwrap_or(0);
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a freed connection slot was not reused within 3 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_refused_connection_reads_its_503_when_it_writes_head_and_body_apart() {
    // Goal: a client that sends its head, then its body (as Python's http.client does for a
    // body it streams), reads the 503 and its Retry-After rather than a reset or a broken pipe.
    let gw = Gateway::start(&config_with(&limits(30_000, CONNECTIONS_MAX)), 1);
    let _held: Vec<Conn> = (0..CONNECTIONS_MAX)
        .map(|index| {
            let mut conn = Conn::connect(&gw.mcp_addr);
            let response = conn.roundtrip(&discover(&gw, index as u64).to_bytes());
            assert_eq!(response.status, 200, "connection {index}");
            conn
        })
        .collect();
    let request = discover(&gw, 99).to_bytes();
    let head_end = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let (head, body) = request.split_at(head_end);
    let mut extra = Conn::connect(&gw.mcp_addr);
    extra.send(head);
    // The refusal is written at accept; the body follows once it has arrived.
    std::thread::sleep(Duration::from_millis(200));
    use std::io::Write;
    extra
        .stream
        .write_all(body)
        .expect("the body is read and dropped, not answered with a reset");
    let response = extra
        .try_read_response()
        .expect("the 503 reaches a client that wrote its body after the refusal");
    assert_refused(&response, 503);
    assert!(
        response.header("Retry-After").is_some(),
        "503 carries Retry-After"
    );
    assert!(
        response.text().contains("limits.connections_max"),
        "{}",
        response.text()
    );
    assert_closed(&mut extra, "refused at connections_max");
    let status = gw.status();
    assert_eq!(
        status["totals"]["refusals"]["connections_full"], 1,
        "{status}"
    );
}

#[test]
fn a_connection_that_sends_nothing_gets_408_at_header_read_timeout_from_accept() {
    // Goal: an idle new connection does not hold its slot for keepalive_idle_timeout_ms
    // (30 s here): its first head is due header_read_timeout_ms after accept, refused with 408
    // and counted as a late head.
    let gw = strict_gateway();
    let mut idle = Conn::connect(&gw.mcp_addr);
    let response = idle
        .try_read_response()
        .expect("a 408 within the client's read timeout, long before the keep-alive timeout");
    assert_refused(&response, 408);
    assert!(
        response.text().contains("header_read_timeout_ms"),
        "{}",
        response.text()
    );
    assert_closed(&mut idle, "idle since accept");
    drop(idle);
    let status = gw.wait_status(Duration::from_secs(5), "the slot given back", |status| {
        status["totals"]["connections"] == 0
    });
    assert_eq!(
        status["totals"]["refusals"]["header_read_timeout"], 1,
        "{status}"
    );
}

#[test]
fn a_host_that_is_not_the_loopback_listeners_is_refused_without_an_origin() {
    // Goal: against DNS rebinding, a loopback listener answers only to its own names, even to
    // a request that carries no Origin (as a rebound page's fetch may not).
    let gw = strict_gateway();
    let port = gw.mcp_addr.rsplit(':').next().expect("a port");
    let with_host = |host: &str| discover(&gw, 1).without("Host").header("Host", host);
    let rebound = format!("evil.example:{port}");
    let refused = gw.call(&with_host(&rebound));
    assert_refused(&refused, 421);
    assert!(
        refused.text().contains(&rebound) && refused.text().contains("server.allowed_hosts"),
        "the refusal names the Host and the key: {}",
        refused.text()
    );
    for host in [
        format!("localhost:{port}"),
        "127.0.0.1".to_owned(),
        format!("[::1]:{port}"),
    ] {
        let response = gw.call(&with_host(&host));
        assert_eq!(response.status, 200, "Host {host}: {}", response.text());
    }
    let status = gw.status();
    assert_eq!(
        status["totals"]["refusals"]["host_forbidden"], 1,
        "{status}"
    );
}

#[test]
fn other_path_is_404() {
    let gw = strict_gateway();
    let request = post("/not-mcp", &stateless_body(1, "server/discover", json!({})));
    assert_refused(&gw.call(&request), 404);
}

#[test]
fn other_method_is_405_with_allow() {
    let gw = strict_gateway();
    let response = gw.call(&Request::new("PUT", &gw.mcp_path()).body("{}"));
    assert_refused(&response, 405);
    let allow = response
        .header("Allow")
        .expect("405 carries Allow")
        .to_ascii_uppercase();
    assert!(allow.contains("POST"), "Allow lists POST: {allow}");
}

#[test]
fn body_that_is_not_json_is_400_parse_error() {
    let gw = strict_gateway();
    let request = discover(&gw, 1).body("{not json");
    let response = gw.call(&request);
    assert_refused(&response, 400);
    assert_eq!(response.error_code(), -32700);
}

#[test]
fn json_array_body_is_400_invalid_request() {
    let gw = strict_gateway();
    let batch = json!([stateless_body(1, "server/discover", json!({}))]);
    let response = gw.call(&post(&gw.mcp_path(), &batch));
    assert_refused(&response, 400);
    assert_eq!(response.error_code(), -32600);
}

#[test]
fn json_that_is_not_jsonrpc_is_400_invalid_request() {
    let gw = strict_gateway();
    let response = gw.call(&post(&gw.mcp_path(), &json!({"hello": "world"})));
    assert_refused(&response, 400);
    assert_eq!(response.error_code(), -32600);
}
