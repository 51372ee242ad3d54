//! Client codec rules, each pinned valid, invalid and at the edge. Valid responses are also
//! fed at every arrival step, the way bytes come off a socket, and must read the same.

use super::*;
use crate::config::limits::ClientLimits;

const LIMITS: ClientLimits = ClientLimits {
    response_head_bytes_max: 256,
    response_headers_count_max: 8,
    response_body_bytes_max: 64,
    sse_event_bytes_max: 32,
};

/// A whole response read as a connection would: bytes arrive `step` at a time, consumed bytes
/// are dropped. Returns the head, the body and the bytes left after the response.
fn read_in_steps(
    wire: &[u8],
    step: usize,
    method: &str,
) -> Result<(ResponseHead, Vec<u8>, Vec<u8>), ClientError> {
    let mut parser = ResponseParser::new(&LIMITS);
    let mut input: Vec<u8> = Vec::new();
    let mut arrived = 0;
    let mut arrive = |input: &mut Vec<u8>| {
        let next = (arrived + step).min(wire.len());
        input.extend_from_slice(&wire[arrived..next]);
        let more = next > arrived;
        arrived = next;
        more
    };
    let head = loop {
        if let Some(head) = parser.head(&input, method)? {
            break head;
        }
        if !arrive(&mut input) {
            parser.end_of_input()?;
        }
    };
    input.drain(..head.consumed());
    let mut body = Vec::new();
    loop {
        let progress = parser.body(&input, &mut body)?;
        input.drain(..progress.consumed);
        if progress.done {
            break;
        }
        if !arrive(&mut input) {
            parser.end_of_input()?;
            break;
        }
    }
    input.extend_from_slice(&wire[arrived..]);
    Ok((head, body, input))
}

fn read(wire: &[u8]) -> Result<(ResponseHead, Vec<u8>, Vec<u8>), ClientError> {
    read_in_steps(wire, wire.len(), "POST")
}

fn refused(wire: &[u8]) -> ClientError {
    read(wire)
        .map(|_| ())
        .expect_err("response must be refused")
}

#[test]
fn content_length_body_reads_the_same_at_every_step_and_leaves_the_next_response() {
    let wire = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}HTTP/1.1";
    for step in 1..=wire.len() {
        let (head, body, rest) = read_in_steps(wire, step, "POST").expect("valid response");
        assert_eq!(head.status(), 200);
        assert_eq!(head.header_str("content-type"), Some("application/json"));
        assert_eq!(head.framing(), BodyFraming::Length(7));
        assert!(head.keep_alive());
        assert_eq!(body, b"{\"a\":1}", "step {step}");
        assert_eq!(rest, b"HTTP/1.1", "step {step}");
    }
}

#[test]
fn chunked_body_reads_the_same_at_every_step() {
    let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
    for step in 1..=wire.len() {
        let (head, body, rest) = read_in_steps(wire, step, "POST").expect("valid response");
        assert_eq!(head.framing(), BodyFraming::Chunked);
        assert_eq!(body, b"{\"a\":1}", "step {step}");
        assert!(rest.is_empty());
    }
}

#[test]
fn body_without_framing_headers_reads_until_close_and_is_not_reused() {
    let wire = b"HTTP/1.1 200 OK\r\n\r\nuntil the end";
    let (head, body, _) = read_in_steps(wire, 3, "POST").expect("valid response");
    assert_eq!(head.framing(), BodyFraming::UntilClose);
    assert!(!head.keep_alive());
    assert_eq!(body, b"until the end");
}

#[test]
fn interim_heads_are_skipped_and_bodiless_statuses_have_no_body() {
    let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
    let (head, body, _) = read(wire).expect("valid response");
    assert_eq!(head.status(), 202);
    assert_eq!(head.consumed(), wire.len());
    assert!(body.is_empty());
    let (head, body, rest) = read(b"HTTP/1.1 204 No Content\r\n\r\nX").expect("valid");
    assert_eq!(
        (head.framing(), body.len(), rest),
        (BodyFraming::Empty, 0, b"X".to_vec())
    );
    let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    let (head, _, _) = read_in_steps(wire, wire.len(), "HEAD").expect("valid");
    assert_eq!(head.framing(), BodyFraming::Empty);
}

#[test]
fn connection_close_and_http10_without_keep_alive_end_reuse() {
    let (head, _, _) =
        read(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").expect("valid");
    assert!(!head.keep_alive());
    let (head, _, _) = read(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").expect("valid");
    assert!(!head.keep_alive());
    let wire = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
    assert!(read(wire).expect("valid").0.keep_alive());
}

#[test]
fn ambiguous_or_unsupported_framing_is_malformed() {
    for wire in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let error = refused(wire);
        assert_eq!(error.kind, ClientErrorKind::Malformed, "{error}");
    }
}

#[test]
fn agreeing_content_length_values_are_one_length() {
    let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nab";
    assert_eq!(read(wire).expect("valid").1, b"ab");
}

#[test]
fn head_over_response_head_bytes_max_is_refused_at_the_limit() {
    let filler = |n: usize| format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(n));
    let at_limit = filler(256 - "HTTP/1.1 200 OK\r\nX: \r\n\r\n".len());
    assert_eq!(at_limit.len(), 256);
    assert!(read(at_limit.as_bytes()).is_ok());
    let error = refused(filler(256 - 23).as_bytes());
    assert_eq!(error.kind, ClientErrorKind::TooLarge);
    assert!(
        error.message.contains("response_head_bytes_max 256"),
        "{error}"
    );
    let many: String = (0..9).map(|i| format!("X{i}: v\r\n")).collect();
    let error = refused(format!("HTTP/1.1 200 OK\r\n{many}\r\n").as_bytes());
    assert!(
        error.message.contains("response_headers_count_max 8"),
        "{error}"
    );
}

#[test]
fn body_over_response_body_bytes_max_is_refused_by_length_chunks_or_close() {
    let body = "x".repeat(65);
    let by_length = format!("HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n{body}");
    let by_chunks = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n{body}");
    let by_close = format!("HTTP/1.1 200 OK\r\n\r\n{body}");
    for wire in [by_length, by_chunks, by_close] {
        let error = refused(wire.as_bytes());
        assert_eq!(error.kind, ClientErrorKind::TooLarge);
        assert!(
            error.message.contains("response_body_bytes_max 64"),
            "{error}"
        );
    }
    let at_limit = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n{}",
        "x".repeat(64)
    );
    assert_eq!(read(at_limit.as_bytes()).expect("at the limit").1.len(), 64);
}

#[test]
fn event_stream_body_has_no_total_bound() {
    let events = "data: 0123456789\n\n".repeat(10);
    let wire = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\r\n{events}"
    );
    let (head, body, _) = read(wire.as_bytes()).expect("stream bodies are not bounded whole");
    assert!(head.is_event_stream());
    assert_eq!(body.len(), events.len());
    let (head, _, _) =
        read(b"HTTP/1.1 400 Bad\r\nContent-Type: text/event-stream\r\n\r\n").expect("valid");
    assert!(
        !head.is_event_stream(),
        "only a successful response is a stream"
    );
}

#[test]
fn a_body_cut_short_is_closed_early() {
    for wire in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
        b"HTTP/1.1 200 OK\r\nContent-",
    ] {
        assert_eq!(refused(wire).kind, ClientErrorKind::ClosedEarly);
    }
}

/// Every event of `stream`, fed `step` bytes at a time.
fn events_in_steps(stream: &[u8], step: usize) -> Result<Vec<SseEvent>, ClientError> {
    let mut reader = SseReader::new(&LIMITS);
    let mut input = Vec::new();
    let mut events = Vec::new();
    for piece in stream.chunks(step) {
        input.extend_from_slice(piece);
        loop {
            let SseStep { consumed, event } = reader.next_event(&input)?;
            input.drain(..consumed);
            match event {
                Some(event) => events.push(event),
                None => break,
            }
        }
    }
    Ok(events)
}

fn event(id: Option<&str>, kind: Option<&str>, data: &str) -> SseEvent {
    SseEvent {
        id: id.map(str::to_string),
        event: kind.map(str::to_string),
        data: data.as_bytes().to_vec(),
        retry_ms: None,
    }
}

#[test]
fn sse_events_read_the_same_at_every_step() {
    let stream = "\u{feff}id: 1\ndata:\n\n: keep-alive\n\nevent: message\r\ndata: {\"a\":\r\ndata:1}\r\n\r\nid: 3\rdata: x\r\rdata: cut";
    let expected = [
        event(Some("1"), None, ""),
        event(None, Some("message"), "{\"a\":\n1}"),
        event(Some("3"), None, "x"),
    ];
    for step in 1..=stream.len() {
        let events = events_in_steps(stream.as_bytes(), step).expect("valid stream");
        assert_eq!(events, expected, "step {step}");
    }
}

#[test]
fn sse_blocks_without_data_are_not_dispatched_but_set_the_id() {
    let mut reader = SseReader::new(&LIMITS);
    let step = reader
        .next_event(b"id: 7\nretry: 10\nunknown: x\n\n")
        .expect("valid");
    assert_eq!(step.event, None);
    assert_eq!(reader.last_event_id(), "7");
    let step = reader.next_event(b"retry: 5\ndata\n\n").expect("valid");
    let expected = SseEvent {
        retry_ms: Some(5),
        ..event(None, None, "")
    };
    assert_eq!(step.event, Some(expected));
    assert_eq!(reader.last_event_id(), "7", "the id stays in force");
}

#[test]
fn sse_event_or_line_over_sse_event_bytes_max_is_refused() {
    let at_limit = format!("data: {}\n\n", "x".repeat(31));
    assert_eq!(
        events_in_steps(at_limit.as_bytes(), 4)
            .expect("at the limit")
            .len(),
        1
    );
    let over = format!("data: {}\ndata: {}\n\n", "x".repeat(20), "y".repeat(20));
    let error = events_in_steps(over.as_bytes(), 4).expect_err("event too large");
    assert_eq!(error.kind, ClientErrorKind::TooLarge);
    assert!(error.message.contains("sse_event_bytes_max 32"), "{error}");
    let comment_at_limit = format!(": {}\n", "c".repeat(38));
    assert!(events_in_steps(comment_at_limit.as_bytes(), 4).is_ok());
    let long_line = format!(": {}", "c".repeat(39));
    let error = events_in_steps(long_line.as_bytes(), 4).expect_err("line too long");
    assert!(
        error.message.contains("line exceeds sse_event_bytes_max"),
        "{error}"
    );
}

#[test]
fn request_writer_frames_a_json_body_and_owns_host_and_length() {
    let mut out = Vec::new();
    let headers = [("Accept", "application/json, text/event-stream")];
    write_request(
        &mut out,
        "POST",
        "/mcp",
        "127.0.0.1:8000",
        &headers,
        Some(b"{}"),
    )
    .expect("valid request");
    let expected = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\
        Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n\
        Content-Length: 2\r\n\r\n{}";
    assert_eq!(String::from_utf8(out).expect("ascii"), expected);
    let mut out = Vec::new();
    write_request(&mut out, "DELETE", "/mcp", "h", &[], None).expect("valid");
    assert_eq!(out, b"DELETE /mcp HTTP/1.1\r\nHost: h\r\n\r\n");
}

#[test]
fn request_writer_refuses_owned_headers_and_head_splitting() {
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let refusals: [(&str, &str, Headers<'_>); 6] = [
        ("POST", "/mcp", &[("Host", "x")]),
        ("POST", "/mcp", &[("Content-Length", "1")]),
        ("POST", "/mcp", &[("X-A", "a\r\nInjected: 1")]),
        ("PO ST", "/mcp", &[]),
        ("POST", "mcp", &[]),
        ("POST", "/m cp", &[]),
    ];
    for (method, target, headers) in refusals {
        let mut out = b"kept".to_vec();
        let error = write_request(&mut out, method, target, "h", headers, None)
            .expect_err("request must be refused");
        assert_eq!(error.kind, ClientErrorKind::InvalidRequest);
        assert_eq!(out, b"kept", "{method} {target}");
    }
}
