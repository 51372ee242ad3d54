//! Feeds arbitrary bytes to what the input bridge reads: an upstream's response to a call,
//! read as a possible `input_required` result, and clients' responses to the input requests,
//! read as answers; then writes the retry's params from them.
//!
//! Asserts: no panic; whenever the result asks for input and every answer is a result, the
//! retry's params are JSON serde_json reads, carry the call's first params (less their own
//! `inputResponses` and `requestState`), an `inputResponses` member with each answer under its
//! request's key, and the upstream's `requestState` exactly.
//!
//! The input is NUL-separated (NUL never occurs in JSON text): the upstream's response first,
//! then the client's responses. Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz
//! input_answers tests/fuzz/corpus/input_answers tests/fuzz/seeds/input_answers --
//! -max_total_time=60`.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use serde_json::Value;
use shardgate::config::bounds::JSON_DEPTH_MAX;
use shardgate::upstream::input::{input_required, retry_params};
use shardgate::wire::jsonrpc::{self, Message, Outcome};

const DEPTH_MAX: u32 = JSON_DEPTH_MAX.default as u32;

/// The call's first params, as the gateway wrote them upstream.
const FIRST: &str = r#"{"name":"ask","arguments":{"q":1},"inputResponses":{"stale":{}},"_meta":{"progressToken":3,"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0);
    let Some(upstream) = parts.next() else {
        return;
    };
    let answers: Vec<_> = parts
        .filter_map(|part| match jsonrpc::parse(part, DEPTH_MAX) {
            Ok(Message::Response { outcome, .. }) => Some(outcome.answer_or_internal()),
            _ => None,
        })
        .collect();
    let Ok(Message::Response {
        outcome: Outcome::Result(result),
        ..
    }) = jsonrpc::parse(upstream, DEPTH_MAX)
    else {
        return;
    };
    let Ok(Some(asked)) = input_required(result) else {
        return;
    };
    let sent: Value = serde_json::from_str(result.get()).expect("a result parse accepted");
    let keys: Vec<String> = sent
        .get("inputRequests")
        .and_then(Value::as_object)
        .map(|requests| requests.keys().cloned().collect())
        .unwrap_or_default();
    let Ok(results) = answers
        .into_iter()
        .collect::<Result<Vec<Box<RawValue>>, _>>()
    else {
        return;
    };
    if results.len() < keys.len() {
        return;
    }
    let results = &results[..keys.len()];
    let params = retry_params(FIRST.as_bytes(), &asked, results).expect("the gateway's params");
    let written: Value = match serde_json::from_slice(&params) {
        Ok(value) => value,
        Err(e) => panic!(
            "retry params are not JSON ({e}): {}",
            String::from_utf8_lossy(&params)
        ),
    };
    let first: Value = serde_json::from_str(FIRST).expect("FIRST is JSON");
    for (key, value) in first.as_object().expect("FIRST is an object") {
        if key != "inputResponses" {
            assert_eq!(
                written.get(key),
                Some(value),
                "first params member {key:?} lost"
            );
        }
    }
    let expected: BTreeMap<&str, Value> = keys
        .iter()
        .map(String::as_str)
        .zip(
            results
                .iter()
                .map(|r| serde_json::from_str(r.get()).expect("an answer")),
        )
        .collect();
    let responses = written.get("inputResponses").and_then(Value::as_object);
    let responses: BTreeMap<&str, Value> = responses
        .expect("inputResponses is an object")
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    assert_eq!(responses, expected, "answers not under their keys");
    assert_eq!(
        written.get("requestState"),
        sent.get("requestState").filter(|s| s.is_string()),
        "requestState not echoed exactly"
    );
});
