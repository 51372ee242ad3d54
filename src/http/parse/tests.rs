//! Parser rules, each pinned valid, invalid and at the edge; every split point of the valid
//! inputs must first read as incomplete, then frame the same request.

use super::*;

const LIMITS: HttpLimits = HttpLimits {
    header_bytes_max: 256,
    headers_count_max: 8,
    request_body_bytes_max: 64,
    header_read_timeout_ms: 1000,
    body_read_timeout_ms: 1000,
    keepalive_idle_timeout_ms: 1000,
};

/// What a framed request looked like, owned, to compare runs.
#[derive(Debug, PartialEq, Eq)]
struct Framed {
    method: String,
    path: String,
    minor_version: u8,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
    keep_alive: bool,
    consumed: u32,
}

fn framed(request: &Request<'_>) -> Framed {
    Framed {
        method: request.method().to_string(),
        path: request.path().to_string(),
        minor_version: request.minor_version(),
        headers: request
            .headers()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect(),
        body: request.body().to_vec(),
        keep_alive: request.keep_alive(),
        consumed: request.consumed(),
    }
}

fn parse_with(limits: &HttpLimits, input: &[u8]) -> Result<Option<Framed>, HttpError> {
    let mut parser = RequestParser::new(limits);
    match parser.parse(input)? {
        Parsed::Incomplete(_) => Ok(None),
        Parsed::Complete(request) => Ok(Some(framed(&request))),
    }
}

fn parse(input: &[u8]) -> Result<Option<Framed>, HttpError> {
    parse_with(&LIMITS, input)
}

fn complete(input: &[u8]) -> Framed {
    parse(input)
        .expect("valid request")
        .expect("complete request")
}

fn refused(input: &[u8]) -> HttpError {
    parse(input).expect_err("request must be refused")
}

const POST: &[u8] = b"POST /mcp HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n\
Content-Length: 13\r\n\r\n{\"jsonrpc\":1}";

const CHUNKED: &[u8] = b"POST /mcp HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n\
5;name=value;flag\r\nhello\r\n7 ; q=\"x y\"\r\n, world\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n";

#[test]
fn content_length_request_is_framed_with_its_fields() {
    let request = complete(POST);
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/mcp");
    assert_eq!(request.minor_version, 1);
    assert_eq!(request.body, b"{\"jsonrpc\":1}");
    assert_eq!(request.consumed as usize, POST.len());
    assert_eq!(request.headers.len(), 3);
    assert!(request.keep_alive);
}

#[test]
fn header_lookup_is_case_insensitive_and_returns_the_first() {
    let input = b"GET / HTTP/1.1\r\nhost: gw\r\nX-Tag: one\r\nx-tag: two\r\n\r\n";
    let mut parser = RequestParser::new(&LIMITS);
    let Ok(Parsed::Complete(request)) = parser.parse(input) else {
        panic!("complete request expected");
    };
    assert_eq!(request.header("X-TAG"), Some(&b"one"[..]));
    assert_eq!(request.header_str("HOST"), Some("gw"));
    assert_eq!(request.header("absent"), None);
    assert!(request.body().is_empty());
}

#[test]
fn keep_alive_follows_version_and_connection_header() {
    let cases: [(&[u8], bool); 5] = [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n",
            false,
        ),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        (
            b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
            false,
        ),
    ];
    for (input, keep_alive) in cases {
        assert_eq!(
            complete(input).keep_alive,
            keep_alive,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn content_length_with_transfer_encoding_is_ambiguous_framing() {
    let error = refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert_eq!(error.reason, RefusalReason::AmbiguousFraming);
    assert_eq!(error.reason.http_status(), 400);
}

#[test]
fn transfer_encoding_other_than_exactly_chunked_is_501() {
    let inputs: [&[u8]; 4] = [
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    ];
    for input in inputs {
        let error = refused(input);
        assert_eq!(error.reason, RefusalReason::UnsupportedTransferEncoding);
        assert_eq!(error.reason.http_status(), 501);
    }
    let upper = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n";
    assert!(complete(upper).body.is_empty());
}

#[test]
fn differing_content_lengths_are_refused_and_equal_ones_accepted() {
    let error =
        refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
    assert_eq!(error.reason, RefusalReason::AmbiguousFraming);
    assert_eq!(error.reason.http_status(), 400);
    assert_eq!(error.message, "conflicting content-length values 5 and 6");
    let list = refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n");
    assert_eq!(list.reason, RefusalReason::AmbiguousFraming);
    let same = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\nok";
    assert_eq!(complete(same).body, b"ok");
}

#[test]
fn content_length_that_is_not_digits_is_malformed() {
    for value in ["+5", "-1", "0x5", "5 5", "", "5;"] {
        let input = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {value}\r\n\r\n");
        let error = refused(input.as_bytes());
        assert_eq!(error.reason, RefusalReason::MalformedHttp, "{value:?}");
        assert_eq!(error.reason.http_status(), 400);
    }
}

#[test]
fn head_over_header_bytes_max_is_431_before_it_ends() {
    let mut input = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ".to_vec();
    input.resize(LIMITS.header_bytes_max as usize, b'p');
    let error = refused(&input);
    assert_eq!(error.reason, RefusalReason::HeadersTooLarge);
    assert_eq!(error.reason.http_status(), 431);
    assert_eq!(error.message, "request head exceeds header_bytes_max 256");
    // One byte less is still waiting for the end of the head.
    assert!(parse(&input[..input.len() - 1])
        .expect("within limit")
        .is_none());
}

#[test]
fn head_of_exactly_header_bytes_max_is_accepted() {
    let mut input = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ".to_vec();
    input.resize(LIMITS.header_bytes_max as usize - 4, b'p');
    input.extend_from_slice(b"\r\n\r\n");
    assert_eq!(complete(&input).consumed, LIMITS.header_bytes_max);
    input.insert(30, b'p');
    assert_eq!(refused(&input).reason, RefusalReason::HeadersTooLarge);
}

#[test]
fn more_fields_than_headers_count_max_is_431() {
    let mut input = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..LIMITS.headers_count_max {
        input.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    input.extend_from_slice(b"\r\n");
    let error = refused(&input);
    assert_eq!(error.reason, RefusalReason::HeadersTooLarge);
    assert_eq!(
        error.message,
        "request has more than headers_count_max 8 header fields"
    );
    let mut exact = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 1..LIMITS.headers_count_max {
        exact.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    exact.extend_from_slice(b"\r\n");
    assert_eq!(complete(&exact).headers.len(), 8);
}

#[test]
fn content_length_over_limit_is_413_from_the_head_alone() {
    let error = refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65\r\n\r\n");
    assert_eq!(error.reason, RefusalReason::BodyTooLarge);
    assert_eq!(error.reason.http_status(), 413);
    assert_eq!(
        error.message,
        "request body 65 bytes exceeds request_body_bytes_max 64"
    );
    let huge =
        refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n");
    assert_eq!(huge.reason, RefusalReason::BodyTooLarge);
    let at_limit = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 64\r\n\r\n";
    assert!(parse(at_limit).expect("at the limit").is_none());
}

#[test]
fn chunked_body_over_limit_is_413_at_the_size_line_before_its_data() {
    let head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut input = head.to_vec();
    input.extend_from_slice(b"20\r\n");
    input.extend_from_slice(&[b'x'; 32]);
    input.extend_from_slice(b"\r\n21\r\n");
    let error = refused(&input);
    assert_eq!(error.reason, RefusalReason::BodyTooLarge);
    assert_eq!(
        error.message,
        "request body 65 bytes exceeds request_body_bytes_max 64"
    );
    let mut exact = head.to_vec();
    exact.extend_from_slice(b"40\r\n");
    exact.extend_from_slice(&[b'x'; 64]);
    exact.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(complete(&exact).body.len(), 64);
}

#[test]
fn chunked_body_with_extensions_and_trailers_is_decoded() {
    let request = complete(CHUNKED);
    assert_eq!(request.body, b"hello, world");
    assert_eq!(request.consumed as usize, CHUNKED.len());
    // Trailers are read and dropped, never merged into the header fields.
    assert_eq!(request.headers.len(), 2);
}

#[test]
fn chunk_size_line_longer_than_its_limit_is_malformed() {
    let mut input = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;".to_vec();
    input.resize(input.len() + CHUNK_LINE_BYTES_MAX as usize, b'e');
    let error = refused(&input);
    assert_eq!(error.reason, RefusalReason::MalformedHttp);
    assert_eq!(error.message, "chunk size line exceeds 256 bytes");
}

#[test]
fn invalid_chunk_framing_is_malformed() {
    let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    for body in [
        "z\r\n",
        "1\nx\r\n0\r\n\r\n",
        "1\rx",
        "1\r\nxy\r\n",
        "12345678901234567\r\n",
        "1 2\r\n",
        "1;\x01\r\n",
        "0\r\nbad trailer\r\n\r\n",
    ] {
        let error = refused(format!("{head}{body}").as_bytes());
        assert_eq!(error.reason, RefusalReason::MalformedHttp, "{body:?}");
    }
}

#[test]
fn chunk_framing_beyond_header_bytes_max_is_413() {
    let mut input = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    // 60 one-byte chunks: 60 bytes of data, 300 bytes of framing against a 256-byte budget.
    for _ in 0..60 {
        input.extend_from_slice(b"1\r\nx\r\n");
    }
    let error = refused(&input);
    assert_eq!(error.reason, RefusalReason::BodyTooLarge);
    assert!(
        error.message.contains("exceed header_bytes_max 256"),
        "{}",
        error.message
    );
}

#[test]
fn trailers_beyond_header_bytes_max_are_refused() {
    let mut input =
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: ".to_vec();
    input.resize(input.len() + LIMITS.header_bytes_max as usize, b't');
    assert_eq!(refused(&input).reason, RefusalReason::BodyTooLarge);
}

#[test]
fn obs_fold_and_malformed_heads_are_400() {
    let inputs: [&[u8]; 5] = [
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
        b"GET  HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    for input in inputs {
        let error = refused(input);
        assert_eq!(
            error.reason,
            RefusalReason::MalformedHttp,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn http11_needs_exactly_one_host_and_http10_none() {
    let missing = refused(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(
        missing.message,
        "http/1.1 request needs exactly one host header, got 0"
    );
    let twice = refused(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    assert_eq!(twice.reason, RefusalReason::MalformedHttp);
    assert_eq!(complete(b"GET / HTTP/1.0\r\n\r\n").minor_version, 0);
}

#[test]
fn transfer_encoding_on_http10_is_malformed() {
    let error = refused(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(error.reason, RefusalReason::MalformedHttp);
}

#[test]
fn bare_lf_line_endings_are_accepted_in_the_head_as_httparse_does() {
    let request = complete(b"GET /x HTTP/1.1\nHost: a\n\n");
    assert_eq!(request.path, "/x");
}

#[test]
fn expect_continue_is_reported_while_waiting_for_the_body() {
    let mut parser = RequestParser::new(&LIMITS);
    let head = b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    let waiting = parser.advance(head).expect("valid head");
    assert_eq!(
        waiting,
        Progress::Incomplete(Waiting::Body {
            expect_continue: true
        })
    );
    let mut whole = head.to_vec();
    whole.extend_from_slice(b"ok");
    assert_eq!(
        parser.advance(&whole).expect("valid"),
        Progress::Complete {
            consumed: whole.len() as u32
        }
    );
    let old = b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    let mut parser = RequestParser::new(&LIMITS);
    assert_eq!(
        parser.advance(old).expect("valid head"),
        Progress::Incomplete(Waiting::Body {
            expect_continue: false
        })
    );
}

#[test]
fn pipelined_requests_follow_the_consumed_count() {
    let mut input = POST.to_vec();
    input.extend_from_slice(CHUNKED);
    input.extend_from_slice(b"GET /last HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut parser = RequestParser::new(&LIMITS);
    let mut at = 0;
    let mut bodies = Vec::new();
    while at < input.len() {
        let Ok(Parsed::Complete(request)) = parser.parse(&input[at..]) else {
            panic!("complete request expected at {at}");
        };
        bodies.push(request.body().to_vec());
        at += request.consumed() as usize;
    }
    assert_eq!(at, input.len());
    assert_eq!(bodies, [&b"{\"jsonrpc\":1}"[..], b"hello, world", b""]);
}

/// Feeds `input` one growing prefix at a time to one parser, and each prefix to a fresh one:
/// every proper prefix must be incomplete, the whole must frame as in one shot.
fn assert_every_split_point_agrees(input: &[u8]) {
    let whole = parse(input);
    let mut incremental = RequestParser::new(&LIMITS);
    for split in 0..input.len() {
        let prefix = &input[..split];
        let fresh = parse(prefix);
        let step = incremental.advance(prefix);
        match &whole {
            Ok(Some(_)) => {
                assert_eq!(fresh, Ok(None), "fresh parser at split {split}");
                assert!(
                    matches!(step, Ok(Progress::Incomplete(_))),
                    "split {split}: {step:?}"
                );
            }
            Ok(None) => unreachable!("inputs under test are whole"),
            Err(error) => {
                // An invalid request may be refused early, and then with the same reason.
                if let Err(early) = &fresh {
                    assert_eq!(early.reason, error.reason, "split {split}");
                    return;
                }
            }
        }
    }
    let last = match incremental.advance(input) {
        Ok(Progress::Complete { .. }) => incremental.request(input).map(|r| framed(&r)),
        Ok(Progress::Incomplete(_)) => None,
        Err(error) => {
            assert_eq!(Err(error), whole.map(|_| ()));
            return;
        }
    };
    assert_eq!(Ok(last), whole);
}

#[test]
fn every_split_point_reads_incomplete_then_the_same_request() {
    let mut pipelined = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    pipelined.extend_from_slice(POST);
    let inputs: [&[u8]; 6] = [
        POST,
        CHUNKED,
        b"GET / HTTP/1.0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcdX\r\n",
    ];
    for input in inputs {
        assert_every_split_point_agrees(input);
    }
    let first = complete(&pipelined);
    assert_eq!(first.path, "/a");
    let second = complete(&pipelined[first.consumed as usize..]);
    assert_eq!(second, complete(POST));
}
