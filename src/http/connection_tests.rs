//! `serve_connection` over real loopback sockets: a glommio executor serves one accepted
//! connection while a std client in another thread drives it. Timeouts are short (100s of ms).

use super::*;
use crate::refusal::{RefusalCounters, RefusalReason};
use crate::support::event::Event;
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LIMITS: HttpLimits = HttpLimits {
    header_bytes_max: 4096,
    headers_count_max: 32,
    request_body_bytes_max: 4096,
    header_read_timeout_ms: 300,
    body_read_timeout_ms: 300,
    keepalive_idle_timeout_ms: 500,
};

/// Answers by path: `/sse` streams, `/watch` streams until the peer leaves, `/none` writes
/// nothing, `/slow` answers after 300 ms, anything else echoes method, path and body length.
struct TestHandler;

impl Handler for TestHandler {
    async fn handle(
        &self,
        request: &Request<'_>,
        response: &mut ResponseWriter<'_>,
    ) -> io::Result<()> {
        match request.path() {
            "/sse" => {
                let mut sse = response.sse(200, &[("Mcp-Session-Id", "s1")])?;
                sse.retry(1000);
                sse.event(Some("1"), b"one\ntwo")?;
                sse.flush().await?;
                sse.comment("ping");
                sse.event(None, b"")?;
                sse.finish().await
            }
            "/watch" => {
                let mut sse = response.sse(200, &[])?;
                sse.event(Some("0"), b"")?;
                sse.flush().await?;
                sse.peer_closed().await;
                Ok(())
            }
            "/none" => Ok(()),
            path => {
                if path == "/slow" {
                    glommio::timer::sleep(Duration::from_millis(300)).await;
                }
                let body = format!("{} {} {}", request.method(), path, request.body().len());
                response.json(200, &[("X-Path", path)], body.as_bytes())
            }
        }
    }
}

/// Serves one connection; the client runs in its own thread. Returns how the connection ended
/// and the non-zero refusal counters.
fn serve<C>(drain_after: Option<Duration>, client: C) -> (ConnectionEnd, Vec<(&'static str, u64)>)
where
    C: FnOnce(SocketAddr) + Send + 'static,
{
    let (address_tx, address_rx) = mpsc::channel();
    let client = std::thread::spawn(move || client(address_rx.recv().expect("server address")));
    let server = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(1 << 20)
        .spawn(move || async move {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
            address_tx
                .send(listener.local_addr().expect("local address"))
                .expect("send address");
            let stream = listener.accept().await.expect("accept");
            let refusals = RefusalCounters::default();
            let shutdown = Rc::new(Event::default());
            if let Some(after) = drain_after {
                let signal = shutdown.clone();
                glommio::spawn_local(async move {
                    glommio::timer::sleep(after).await;
                    signal.set();
                })
                .detach();
            }
            let end = serve_connection(stream, &LIMITS, &TestHandler, &refusals, &shutdown).await;
            (end, refusals.nonzero().collect::<Vec<_>>())
        })
        .expect("start executor");
    let served = server.join().expect("server thread");
    client.join().expect("client assertions");
    served
}

fn connect(address: SocketAddr) -> (StdStream, BufReader<StdStream>) {
    let stream = StdStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let reader = BufReader::new(stream.try_clone().expect("clone"));
    (stream, reader)
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Chunk sizes in arrival order, the terminating 0 included, when chunked.
    chunks: Vec<usize>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

fn read_line(reader: &mut BufReader<StdStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read line");
    assert!(line.ends_with("\r\n"), "line {line:?} must end with crlf");
    line.truncate(line.len() - 2);
    line
}

fn read_response(reader: &mut BufReader<StdStream>) -> Response {
    let status_line = read_line(reader);
    let status = status_line[9..12].parse().expect("status code");
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader);
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(": ").expect("field line");
        headers.push((name.to_string(), value.to_string()));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
        chunks: Vec::new(),
    };
    if response.header("transfer-encoding") == Some("chunked") {
        loop {
            let size = usize::from_str_radix(&read_line(reader), 16).expect("chunk size");
            response.chunks.push(size);
            if size == 0 {
                assert_eq!(read_line(reader), "");
                break;
            }
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk).expect("chunk data");
            response.body.extend_from_slice(&chunk);
            assert_eq!(read_line(reader), "");
        }
    } else {
        let length: usize = response
            .header("content-length")
            .expect("content-length")
            .parse()
            .expect("length");
        response.body.resize(length, 0);
        reader.read_exact(&mut response.body).expect("body");
    }
    response
}

fn assert_closed(reader: &mut BufReader<StdStream>) {
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).expect("read to eof");
    assert!(
        rest.is_empty(),
        "unexpected bytes {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn keep_alive_connection_answers_two_requests() {
    let (end, refusals) = serve(None, |address| {
        let (mut stream, mut reader) = connect(address);
        for path in ["/first", "/second"] {
            let request =
                format!("POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
            stream.write_all(request.as_bytes()).expect("write");
            let response = read_response(&mut reader);
            assert_eq!(response.status, 200);
            assert_eq!(response.header("connection"), Some("keep-alive"));
            assert_eq!(response.body, format!("POST {path} 3").as_bytes());
        }
    });
    assert_eq!(end, ConnectionEnd::PeerClosed);
    assert!(refusals.is_empty());
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (end, _) = serve(None, |address| {
        let (mut stream, mut reader) = connect(address);
        let pipelined = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n\
            POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n\
            GET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
        stream.write_all(pipelined.as_bytes()).expect("write");
        let paths: Vec<_> = (0..3)
            .map(|_| read_response(&mut reader))
            .map(|r| (r.header("x-path").map(str::to_string), r.body))
            .collect();
        assert_eq!(paths[0], (Some("/1".to_string()), b"GET /1 0".to_vec()));
        assert_eq!(paths[1], (Some("/2".to_string()), b"POST /2 2".to_vec()));
        assert_eq!(paths[2], (Some("/3".to_string()), b"GET /3 0".to_vec()));
        assert_closed(&mut reader);
    });
    assert_eq!(end, ConnectionEnd::PeerClosed);
}

#[test]
fn trickled_head_gets_408_at_header_read_timeout() {
    let (end, refusals) = serve(None, |address| {
        let (stream, mut reader) = connect(address);
        let mut trickle = stream.try_clone().expect("clone");
        let started = Instant::now();
        let writer = std::thread::spawn(move || {
            for byte in b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaa" {
                if trickle.write_all(&[*byte]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let response = read_response(&mut reader);
        let elapsed = started.elapsed();
        assert_eq!(response.status, 408);
        assert_eq!(response.header("connection"), Some("close"));
        assert_eq!(
            response.json()["error"]["message"],
            "request head not received within header_read_timeout_ms 300"
        );
        assert!(elapsed >= Duration::from_millis(290), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
        drop(stream);
        writer.join().expect("writer");
    });
    assert_eq!(
        end,
        ConnectionEnd::Refused(RefusalReason::HeaderReadTimeout)
    );
    assert_eq!(refusals, [("header_read_timeout", 1)]);
}

#[test]
fn slow_body_gets_408_at_body_read_timeout() {
    let (end, _) = serve(None, |address| {
        let (mut stream, mut reader) = connect(address);
        let head = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab";
        stream.write_all(head.as_bytes()).expect("write");
        let response = read_response(&mut reader);
        assert_eq!(response.status, 408);
        assert_eq!(
            response.json()["error"]["message"],
            "request body not received within body_read_timeout_ms 300"
        );
    });
    assert_eq!(end, ConnectionEnd::Refused(RefusalReason::BodyReadTimeout));
}

#[test]
fn idle_keep_alive_connection_closes_silently() {
    let (end, refusals) = serve(None, |address| {
        let (mut stream, mut reader) = connect(address);
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .expect("write");
        assert_eq!(read_response(&mut reader).status, 200);
        let idle_from = Instant::now();
        assert_closed(&mut reader);
        let idle = idle_from.elapsed();
        assert!(idle >= Duration::from_millis(450), "{idle:?}");
        assert!(idle < Duration::from_millis(2000), "{idle:?}");
    });
    assert_eq!(end, ConnectionEnd::IdleTimeout);
    assert!(refusals.is_empty());
}

#[test]
fn sse_stream_is_chunked_and_parses_back() {
    serve(None, |address| {
        let (mut stream, mut reader) = connect(address);
        stream
            .write_all(b"GET /sse HTTP/1.1\r\nHost: a\r\n\r\n")
            .expect("write");
        let response = read_response(&mut reader);
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some("text/event-stream"));
        assert_eq!(response.header("cache-control"), Some("no-cache"));
        assert_eq!(response.header("x-accel-buffering"), Some("no"));
        assert_eq!(response.header("mcp-session-id"), Some("s1"));
        assert_eq!(response.header("content-length"), None);
        let text = String::from_utf8(response.body.clone()).expect("utf-8");
        assert_eq!(
            text,
            "retry: 1000\n\nid: 1\ndata: one\ndata: two\n\n: ping\n\ndata:\n\n"
        );
        // One chunk per flush, then the terminating zero chunk.
        assert_eq!(response.chunks.len(), 3);
        assert_eq!(response.chunks.last(), Some(&0));
        stream
            .write_all(b"GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .expect("write");
        assert_eq!(read_response(&mut reader).body, b"GET /after 0");
    });
}

#[test]
fn sse_handler_learns_when_the_peer_goes_away() {
    let started = Instant::now();
    let (end, _) = serve(None, |address| {
        let (mut stream, mut reader) = connect(address);
        stream
            .write_all(b"GET /watch HTTP/1.1\r\nHost: a\r\n\r\n")
            .expect("write");
        assert_eq!(read_line(&mut reader), "HTTP/1.1 200 OK");
        drop(reader);
        drop(stream);
    });
    assert!(
        matches!(end, ConnectionEnd::PeerClosed | ConnectionEnd::IoError),
        "{end:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn draining_closes_an_idle_connection_at_once() {
    let (end, _) = serve(Some(Duration::from_millis(200)), |address| {
        let (mut stream, mut reader) = connect(address);
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .expect("write");
        assert_eq!(
            read_response(&mut reader).header("connection"),
            Some("keep-alive")
        );
        let waited = Instant::now();
        assert_closed(&mut reader);
        // Well before keepalive_idle_timeout_ms (500 ms) would have closed it.
        assert!(
            waited.elapsed() < Duration::from_millis(400),
            "{:?}",
            waited.elapsed()
        );
    });
    assert_eq!(end, ConnectionEnd::EventWait);
}

#[test]
fn draining_finishes_the_in_flight_response_with_connection_close() {
    let (end, _) = serve(Some(Duration::from_millis(100)), |address| {
        let (mut stream, mut reader) = connect(address);
        stream
            .write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
            .expect("write");
        let response = read_response(&mut reader);
        assert_eq!(response.status, 200);
        assert_eq!(response.header("connection"), Some("close"));
        assert_closed(&mut reader);
    });
    assert_eq!(end, ConnectionEnd::EventWait);
}

#[test]
fn refusal_is_answered_with_its_status_a_jsonrpc_error_and_close() {
    let (end, refusals) = serve(None, |address| {
        let (mut stream, mut reader) = connect(address);
        let smuggle =
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        stream.write_all(smuggle.as_bytes()).expect("write");
        let response = read_response(&mut reader);
        assert_eq!(response.status, 400);
        assert_eq!(response.header("connection"), Some("close"));
        assert_eq!(response.header("content-type"), Some("application/json"));
        let body = response.json();
        assert_eq!(body["jsonrpc"], "2.0");
        assert!(body["id"].is_null());
        assert_eq!(body["error"]["code"], -32600);
        assert_eq!(
            body["error"]["message"],
            "both content-length and transfer-encoding are present"
        );
        assert_closed(&mut reader);
    });
    assert_eq!(end, ConnectionEnd::Refused(RefusalReason::AmbiguousFraming));
    assert_eq!(refusals, [("ambiguous_framing", 1)]);
}

#[test]
fn body_over_limit_is_refused_before_the_client_sends_it() {
    let (end, _) = serve(None, |address| {
        let (mut stream, mut reader) = connect(address);
        let head = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2097152\r\n\r\n";
        stream.write_all(head.as_bytes()).expect("write");
        let response = read_response(&mut reader);
        assert_eq!(response.status, 413);
        assert_eq!(
            response.json()["error"]["message"],
            "request body 2097152 bytes exceeds request_body_bytes_max 4096"
        );
    });
    assert_eq!(end, ConnectionEnd::Refused(RefusalReason::BodyTooLarge));
}

#[test]
fn expect_continue_gets_100_before_the_body() {
    serve(None, |address| {
        let (mut stream, mut reader) = connect(address);
        let head =
            "POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
        stream.write_all(head.as_bytes()).expect("write");
        assert_eq!(read_line(&mut reader), "HTTP/1.1 100 Continue");
        assert_eq!(read_line(&mut reader), "");
        stream.write_all(b"data").expect("write body");
        assert_eq!(read_response(&mut reader).body, b"POST /up 4");
    });
}

#[test]
fn handler_that_writes_nothing_gets_a_500_and_the_connection_goes_on() {
    serve(None, |address| {
        let (mut stream, mut reader) = connect(address);
        stream
            .write_all(
                b"GET /none HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
            )
            .expect("write");
        let response = read_response(&mut reader);
        assert_eq!(response.status, 500);
        assert_eq!(
            response.json()["error"]["message"],
            "the handler wrote no response"
        );
        assert_eq!(read_response(&mut reader).body, b"GET /next 0");
    });
}

#[test]
fn http10_request_without_keep_alive_is_answered_then_closed() {
    let (end, _) = serve(None, |address| {
        let (mut stream, mut reader) = connect(address);
        stream
            .write_all(b"GET /old HTTP/1.0\r\n\r\n")
            .expect("write");
        let response = read_response(&mut reader);
        assert_eq!(response.header("connection"), Some("close"));
        assert_closed(&mut reader);
    });
    assert_eq!(end, ConnectionEnd::PeerClosed);
}
