//! Goal: the raw test client frames responses correctly, so a failing gateway test means the
//! gateway is wrong, not the client: chunked and Content-Length bodies back to back on one
//! connection, SSE events read one by one as they arrive, close detection, request rendering.
//!
//! Method: a loopback `TcpListener` plays a server that writes canned bytes; the client reads.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::Duration;

use common::client::{chunked, CloseProbe, Conn, Request, SseItem, SseParser};

/// A server that accepts one connection, writes `parts` with `pause` between them, then closes.
fn canned_server(parts: Vec<Vec<u8>>, pause: Duration) -> (String, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut received = vec![0u8; 4096];
        let n = stream.read(&mut received).unwrap_or(0);
        received.truncate(n);
        for part in parts {
            stream.write_all(&part).unwrap();
            std::thread::sleep(pause);
        }
        received
    });
    (addr, handle)
}

/// `data` as one HTTP chunk (size line, data, CRLF) without the terminating zero chunk.
fn one_chunk(data: &[u8]) -> Vec<u8> {
    let mut encoded = chunked(data, data.len());
    encoded.truncate(encoded.len() - b"0\r\n\r\n".len());
    encoded
}

#[test]
fn chunked_then_content_length_responses_frame_back_to_back() {
    let (addr, server) = canned_server(
        vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n".to_vec(),
            b"2;ext=1\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n".to_vec(),
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"
                .to_vec(),
        ],
        Duration::from_millis(20),
    );
    let mut conn = Conn::connect(&addr);
    conn.send(b"GET / HTTP/1.1\r\n\r\n");
    let first = conn.read_response();
    assert_eq!(
        (first.status, first.body.as_slice()),
        (200, b"abcde".as_slice())
    );
    let second = conn.read_response();
    assert_eq!((second.status, second.text().as_str()), (404, "no"));
    assert!(matches!(
        conn.probe_close(Duration::from_secs(2)),
        CloseProbe::Closed(_)
    ));
    assert_eq!(server.join().unwrap(), b"GET / HTTP/1.1\r\n\r\n");
}

#[test]
fn sse_items_arrive_one_by_one_and_end_with_the_stream() {
    let (addr, _server) = canned_server(
        vec![
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec(),
            one_chunk(b"id: 0-1\ndata:\n\n"),
            // A comment line split across two chunks, with no blank line after it.
            one_chunk(b": keepalive"),
            one_chunk(b"\n"),
            // CRLF line endings inside the event.
            one_chunk(b"event: m\ndata: {\"a\":\r\ndata: 1}\r\n\r\n"),
            b"0\r\n\r\n".to_vec(),
        ],
        Duration::from_millis(20),
    );
    let mut conn = Conn::connect(&addr);
    conn.send(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(conn.read_head().status, 200);
    let mut parser = SseParser::default();
    let Some(SseItem::Event(priming)) = conn.next_sse(&mut parser).unwrap() else {
        panic!("priming event first")
    };
    assert_eq!(priming.id.as_deref(), Some("0-1"));
    assert!(priming.has_data && priming.data.is_empty());
    assert_eq!(
        conn.next_sse(&mut parser).unwrap(),
        Some(SseItem::Comment("keepalive".into()))
    );
    let Some(SseItem::Event(message)) = conn.next_sse(&mut parser).unwrap() else {
        panic!("message event third")
    };
    assert_eq!(message.event.as_deref(), Some("m"));
    assert_eq!(message.data, "{\"a\":\n1}");
    assert_eq!(conn.next_sse(&mut parser).unwrap(), None);
}

#[test]
fn sse_response_json_is_the_last_data_event() {
    let (addr, _server) = canned_server(
        vec![b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nid: 1\ndata:\n\ndata: {\"id\":3}\n\n"
            .to_vec()],
        Duration::ZERO,
    );
    let response = Conn::connect(&addr).roundtrip(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(response.json()["id"], 3);
}

#[test]
fn request_renders_content_length_unless_framing_is_given() {
    let plain = Request::new("POST", "/mcp").body("{}").to_bytes();
    let text = String::from_utf8(plain).unwrap();
    assert!(text.starts_with("POST /mcp HTTP/1.1\r\n"));
    assert!(text.ends_with("Content-Length: 2\r\n\r\n{}"), "{text}");
    let framed = Request::new("POST", "/mcp")
        .header("Transfer-Encoding", "chunked")
        .body(chunked(b"abc", 2))
        .to_bytes();
    let text = String::from_utf8(framed).unwrap();
    assert!(!text.contains("Content-Length"), "{text}");
    assert!(
        text.ends_with("\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"),
        "{text}"
    );
}
