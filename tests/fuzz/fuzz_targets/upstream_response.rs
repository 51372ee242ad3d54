//! Feeds arbitrary bytes, in reads of arbitrary sizes, to what reads an upstream's answers:
//! the HTTP client's response parser (heads, content-length, chunked and read-until-close
//! bodies, several responses on one connection) and the event-stream reader behind it, with
//! every whole body and every event's data through `jsonrpc::parse`.
//!
//! Asserts: no panic; no call consumes more than it was given; a buffered body stays within
//! `response_body_bytes_max`; an event's data within `sse_event_bytes_max`.
//!
//! The first byte picks whether the rest is a whole HTTP exchange or an event stream body on
//! its own, and seeds the read sizes. Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir
//! tests/fuzz upstream_response tests/fuzz/corpus/upstream_response
//! tests/fuzz/seeds/upstream_response -- -max_total_time=60`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shardgate::config::bounds::JSON_DEPTH_MAX;
use shardgate::config::limits::ClientLimits;
use shardgate::http::client::{ResponseParser, SseReader};
use shardgate::wire::jsonrpc;

const LIMITS: ClientLimits = ClientLimits {
    response_head_bytes_max: 512,
    response_headers_count_max: 8,
    response_body_bytes_max: 1024,
    sse_event_bytes_max: 256,
};

const DEPTH_MAX: u32 = JSON_DEPTH_MAX.default as u32;

/// Read sizes from 1 to 64 bytes, from a small generator the input seeds.
struct Reads(u32);

impl Reads {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        (self.0 % 64) as usize + 1
    }
}

/// Reads events from `stream` (decoded body bytes not yet read); false once the reader refuses.
fn read_events(reader: &mut SseReader, stream: &mut Vec<u8>) -> bool {
    loop {
        let step = match reader.next_event(stream) {
            Ok(step) => step,
            Err(_) => return false,
        };
        assert!(
            step.consumed <= stream.len(),
            "sse reader consumed past its input"
        );
        stream.drain(..step.consumed);
        let Some(event) = step.event else {
            return true;
        };
        assert!(event.data.len() <= LIMITS.sse_event_bytes_max as usize);
        let _ = jsonrpc::parse(&event.data, DEPTH_MAX);
    }
}

/// `input` as an event stream body arriving in reads of the sizes `reads` gives.
fn event_stream(input: &[u8], reads: &mut Reads) {
    let mut reader = SseReader::new(&LIMITS);
    let mut stream = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let take = reads.next().min(rest.len());
        stream.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        if !read_events(&mut reader, &mut stream) {
            return;
        }
    }
}

/// `input` as what an upstream connection receives, in reads of the sizes `reads` gives:
/// responses one after another, each body parsed as the gateway reads it.
fn exchange(input: &[u8], reads: &mut Reads) {
    let mut parser = ResponseParser::new(&LIMITS);
    let mut buffered = Vec::new();
    let mut rest = input;
    // The current response: `None` while its head is read, else whether it is a stream.
    let mut body: Option<Option<SseReader>> = None;
    let mut decoded = Vec::new();
    loop {
        let eof = rest.is_empty();
        let take = reads.next().min(rest.len());
        buffered.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        loop {
            match &mut body {
                None => match parser.head(&buffered, "POST") {
                    Err(_) => return,
                    Ok(None) => break,
                    Ok(Some(head)) => {
                        assert!(
                            head.consumed() <= buffered.len(),
                            "head consumed past input"
                        );
                        buffered.drain(..head.consumed());
                        let stream = head.is_event_stream().then(|| SseReader::new(&LIMITS));
                        body = Some(stream);
                    }
                },
                Some(stream) => {
                    let Ok(progress) = parser.body(&buffered, &mut decoded) else {
                        return;
                    };
                    assert!(
                        progress.consumed <= buffered.len(),
                        "body consumed past input"
                    );
                    buffered.drain(..progress.consumed);
                    match stream {
                        Some(reader) => {
                            if !read_events(reader, &mut decoded) {
                                return;
                            }
                        }
                        None => assert!(decoded.len() <= LIMITS.response_body_bytes_max as usize),
                    }
                    if !progress.done {
                        if progress.consumed == 0 {
                            break;
                        }
                        continue;
                    }
                    if stream.is_none() {
                        let _ = jsonrpc::parse(&decoded, DEPTH_MAX);
                    }
                    decoded.clear();
                    body = None;
                    if buffered.is_empty() {
                        break;
                    }
                }
            }
        }
        if eof {
            if parser.end_of_input().is_ok() && matches!(body, Some(None)) {
                let _ = jsonrpc::parse(&decoded, DEPTH_MAX);
            }
            return;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, input)) = data.split_first() else {
        return;
    };
    let mut reads = Reads(u32::from(choice) | 0x100);
    match choice & 1 {
        0 => exchange(input, &mut reads),
        _ => event_stream(input, &mut reads),
    }
});
