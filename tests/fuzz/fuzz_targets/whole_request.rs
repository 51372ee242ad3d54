//! Drives one in-process shard with whole requests: client bytes over loopback through the
//! real HTTP codec, the request pipeline (MCP endpoint, router) to the builtin demo upstream,
//! and the answer back.
//!
//! Input: the bytes of up to 8 connections, separated by `\n###\n` (the 8th takes the rest).
//! The connections run one after another; each writes its bytes whole, shuts its write half
//! and reads the whole answer. `@session@` in a connection's bytes is replaced by the first
//! `Mcp-Session-Id` an earlier connection's answer carried (left as is until one did), so an
//! input can `initialize` on one connection and use the session on the next. After the last
//! connection every session the input minted is deleted, so the table stays small however
//! many inputs run.
//!
//! Asserts: no panic, and every answer is well-formed HTTP/1.1: responses one after another
//! whose heads parse with httparse, `100 Continue` only as an interim response, at most one
//! final response more than the requests the shard's own parser frames in the bytes (the
//! refusal of the rest), `Content-Length` bodies exact, chunked bodies well framed (an event
//! stream may stop at a chunk boundary at the end of the answer: the shard takes the half
//! close for the client leaving), nothing after a response that ends the connection, a JSON
//! body and every event's data valid JSON.
//!
//! The shard is the default config's, its demo `sleep` capped at 20 ms, started once per
//! process and kept across inputs (glommio runs under ASan as it is). `tests/fuzz/run` runs
//! it with the others; alone, with its dictionary of the markers and the tokens the shard
//! branches on: `RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz whole_request
//! tests/fuzz/corpus/whole_request tests/fuzz/seeds/whole_request --
//! -dict=tests/fuzz/dicts/whole_request.dict -max_total_time=60`.

#![no_main]

#[path = "whole_request/answer.rs"]
mod answer;
#[path = "whole_request/gateway.rs"]
mod gateway;

use std::borrow::Cow;
use std::net::Shutdown;

use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use gateway::Gateway;
use glommio::net::TcpStream;
use libfuzzer_sys::fuzz_target;
use shardgate::http::{HttpLimits, Parsed, RequestParser};

/// Between two connections' bytes.
const NEXT_CONNECTION: &[u8] = b"\n###\n";
/// Stands for the session the input's first `initialize` minted.
const SESSION_PLACEHOLDER: &[u8] = b"@session@";
/// Connections per input: enough for a session's whole life.
const CONNECTIONS_MAX: usize = 8;

thread_local! {
    static GATEWAY: Gateway = Gateway::start();
}

/// `data` cut into the bytes of each connection.
fn connections(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() + 1 < CONNECTIONS_MAX {
        let Some(at) = find(rest, NEXT_CONNECTION) else {
            break;
        };
        parts.push(&rest[..at]);
        rest = &rest[at + NEXT_CONNECTION.len()..];
    }
    parts.push(rest);
    parts
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// `bytes` with each placeholder replaced by `session`, when there is one.
fn substitute<'a>(bytes: &'a [u8], session: Option<&str>) -> Cow<'a, [u8]> {
    let Some(session) = session else {
        return Cow::Borrowed(bytes);
    };
    if find(bytes, SESSION_PLACEHOLDER).is_none() {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() + session.len());
    let mut rest = bytes;
    while let Some(at) = find(rest, SESSION_PLACEHOLDER) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(session.as_bytes());
        rest = &rest[at + SESSION_PLACEHOLDER.len()..];
    }
    out.extend_from_slice(rest);
    Cow::Owned(out)
}

/// For each request the shard's parser frames in `bytes`, whether it is a HEAD (its response
/// has no body).
fn head_only(limits: &HttpLimits, mut bytes: &[u8]) -> Vec<bool> {
    let mut parser = RequestParser::new(limits);
    let mut heads = Vec::new();
    while let Ok(Parsed::Complete(request)) = parser.parse(bytes) {
        heads.push(request.method() == "HEAD");
        bytes = &bytes[request.consumed() as usize..];
    }
    heads
}

/// Sends `bytes` on a new connection and checks the whole answer.
async fn exchange(gateway: &Gateway, bytes: &[u8]) -> answer::Answered {
    let mut stream = TcpStream::connect(gateway.addr)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the shard at {}: {e}", gateway.addr));
    // A shard that refused a request closes without reading the rest: writing may fail, and
    // what it answered is checked all the same.
    if stream.write_all(bytes).await.is_ok() {
        let _ = stream.shutdown(Shutdown::Write).await;
    }
    let mut answer = Vec::new();
    if let Err(e) = stream.read_to_end(&mut answer).await {
        panic!(
            "reading the answer failed after {} bytes: {e}\nsent: {:?}",
            answer.len(),
            answer::lossy(bytes)
        );
    }
    let heads = head_only(&gateway.http_limits, bytes);
    answer::check(&answer, &heads).unwrap_or_else(|problem| {
        panic!(
            "{problem}\nsent: {:?}\nanswer: {:?}",
            answer::lossy(bytes),
            answer::lossy(&answer)
        )
    })
}

async fn run_input(gateway: &Gateway, data: &[u8]) {
    let mut minted: Vec<String> = Vec::new();
    for bytes in connections(data) {
        let bytes = substitute(bytes, minted.first().map(String::as_str));
        for id in exchange(gateway, &bytes).await.session_ids {
            if !minted.contains(&id) {
                minted.push(id);
            }
        }
    }
    for id in &minted {
        let delete = format!(
            "DELETE {} HTTP/1.1\r\nHost: 127.0.0.1\r\nMcp-Session-Id: {id}\r\n\r\n",
            gateway.path
        );
        exchange(gateway, delete.as_bytes()).await;
    }
}

fuzz_target!(|data: &[u8]| {
    GATEWAY.with(|gateway| gateway.run(run_input(gateway, data)));
});
