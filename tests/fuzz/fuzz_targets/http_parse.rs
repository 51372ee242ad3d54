//! Feeds arbitrary bytes to the request parser with small limits, whole and split in two at a
//! point the input picks, then parses pipelined requests until the bytes run out.
//!
//! Asserts: no panic; `consumed` never exceeds the input; no body exceeds
//! `request_body_bytes_max`; the split run frames exactly what the one-shot run frames.
//!
//! The first byte of each input picks the split point. Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run
//! --fuzz-dir tests/fuzz http_parse tests/fuzz/corpus/http_parse tests/fuzz/seeds/http_parse
//! -- -max_total_time=60`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shardgate::http::{HttpLimits, Parsed, Progress, RequestParser};

const LIMITS: HttpLimits = HttpLimits {
    header_bytes_max: 512,
    headers_count_max: 8,
    request_body_bytes_max: 256,
    header_read_timeout_ms: 1000,
    body_read_timeout_ms: 1000,
    keepalive_idle_timeout_ms: 1000,
};

/// What one request framed to, owned so two runs can be compared.
type Framed = (String, String, Vec<(Vec<u8>, Vec<u8>)>, Vec<u8>, u32);

fn frame_all(parser: &mut RequestParser, mut input: &[u8]) -> Vec<Result<Framed, String>> {
    let mut framed = Vec::new();
    while !input.is_empty() {
        let result = match parser.parse(input) {
            Err(error) => Err(error.message),
            Ok(Parsed::Incomplete(_)) => break,
            Ok(Parsed::Complete(request)) => {
                let consumed = request.consumed();
                assert!(consumed as usize <= input.len(), "consumed past the input");
                assert!(consumed > 0, "a request consumes bytes");
                assert!(request.body().len() <= LIMITS.request_body_bytes_max as usize);
                let headers = request
                    .headers()
                    .map(|(n, v)| (n.to_vec(), v.to_vec()))
                    .collect();
                Ok((
                    request.method().to_string(),
                    request.path().to_string(),
                    headers,
                    request.body().to_vec(),
                    consumed,
                ))
            }
        };
        let Ok(request) = result else {
            framed.push(result);
            break;
        };
        input = &input[request.4 as usize..];
        framed.push(Ok(request));
    }
    framed
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let whole = frame_all(&mut RequestParser::new(&LIMITS), input);

    // The first request again, its bytes arriving in two reads.
    let split = usize::from(split).min(input.len());
    let mut parser = RequestParser::new(&LIMITS);
    let first_part = parser.advance(&input[..split]);
    if let Ok(Progress::Incomplete(_)) = first_part {
        let again = frame_all(&mut parser, input);
        assert_eq!(
            again.first(),
            whole.first(),
            "split at {split} changed the first request"
        );
    }
});
