//! The pool against real loopback servers inside one glommio executor: our own
//! `serve_connection` with a test handler where a well-behaved server will do, and raw sockets
//! writing fixed bytes where the server must misbehave. Timeouts are 100s of ms.

use super::*;
use crate::config::limits::ClientLimits;
use crate::http::{serve_connection, Handler, HttpLimits, Request, ResponseWriter};
use crate::refusal::RefusalCounters;
use crate::support::event::Event;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use std::io;

const SERVER_LIMITS: HttpLimits = HttpLimits {
    header_bytes_max: 4096,
    headers_count_max: 32,
    request_body_bytes_max: 4096,
    header_read_timeout_ms: 1000,
    body_read_timeout_ms: 1000,
    keepalive_idle_timeout_ms: 5000,
};

const LIMITS: PoolLimits = PoolLimits {
    pool_connections_max: 4,
    pool_waiters_max: 4,
    connect_timeout_ms: 1000,
    pool_idle_timeout_ms: 5000,
    pool_lifetime_ms: 60_000,
    client: ClientLimits {
        response_head_bytes_max: 4096,
        response_headers_count_max: 32,
        response_body_bytes_max: 4096,
        sse_event_bytes_max: 1024,
    },
};

/// Answers by path: `/sse` three events then the end, `/big` a body over the client's limit,
/// `/slow` after 200 ms, anything else echoes the request body as JSON.
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
                for id in ["1", "2", "3"] {
                    sse.event(Some(id), format!("{{\"n\":{id}}}").as_bytes())?;
                    sse.comment("keep-alive");
                    sse.flush().await?;
                }
                sse.finish().await
            }
            "/big" => response.json(200, &[], &[b' '; 5000]),
            path => {
                if path == "/slow" {
                    glommio::timer::sleep(Duration::from_millis(200)).await;
                }
                response.json(200, &[], request.body())
            }
        }
    }
}

/// What the test server saw: connections accepted and connections ended.
#[derive(Default)]
struct Seen {
    accepted: Cell<u32>,
    ended: Cell<u32>,
}

/// Starts our own HTTP server on a loopback port; its base URL and what it sees.
fn start_server(limits: HttpLimits) -> (String, Rc<Seen>) {
    start_server_on("127.0.0.1:0".parse().expect("an address"), limits)
}

/// Starts our own HTTP server on `address`; its base URL and what it sees.
fn start_server_on(address: std::net::SocketAddr, limits: HttpLimits) -> (String, Rc<Seen>) {
    let listener = TcpListener::bind(address).expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    let seen = Rc::new(Seen::default());
    let counts = seen.clone();
    glommio::spawn_local(async move {
        let refusals = Rc::new(RefusalCounters::default());
        let shutdown = Rc::new(Event::default());
        while let Ok(stream) = listener.accept().await {
            counts.accepted.set(counts.accepted.get() + 1);
            let (refusals, shutdown, counts) = (refusals.clone(), shutdown.clone(), counts.clone());
            glommio::spawn_local(async move {
                serve_connection(stream, &limits, &TestHandler, &refusals, &shutdown).await;
                counts.ended.set(counts.ended.get() + 1);
            })
            .detach();
        }
    })
    .detach();
    (base, seen)
}

/// Starts a server that answers each request on a connection with `reply`, then closes.
fn start_raw_server(reply: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    glommio::spawn_local(async move {
        while let Ok(mut stream) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(reply).await;
            let _ = stream.close().await;
        }
    })
    .detach();
    base
}

fn run<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(1 << 20)
        .spawn(move || async move { test().await })
        .expect("start executor")
        .join()
        .expect("test executor");
}

fn pool(url: &str, limits: &PoolLimits) -> UpstreamPool {
    UpstreamPool::new(UpstreamUrl::parse(url).expect("valid url"), limits)
}

fn post(body: &[u8]) -> RequestSpec<'_> {
    RequestSpec {
        method: "POST",
        headers: &[("Accept", "application/json, text/event-stream")],
        body: Some(body),
        timeout_ms: 2000,
    }
}

async fn buffered(pool: &UpstreamPool, body: &[u8]) -> Result<Response, UpstreamError> {
    match pool.request(&post(body)).await? {
        Reply::Buffered(response) => Ok(response),
        Reply::Stream(_) => panic!("expected a buffered response"),
    }
}

async fn failure(pool: &UpstreamPool, spec: &RequestSpec<'_>) -> UpstreamError {
    match pool.request(spec).await {
        Ok(_) => panic!("expected the request to fail"),
        Err(error) => error,
    }
}

async fn settle() {
    glommio::timer::sleep(Duration::from_millis(20)).await;
}

#[test]
fn keep_alive_reuses_one_connection_over_ten_requests() {
    run(|| async {
        let (base, seen) = start_server(SERVER_LIMITS);
        let pool = pool(&format!("{base}/json"), &LIMITS);
        for i in 0..10 {
            let body = format!("{{\"i\":{i}}}");
            let response = buffered(&pool, body.as_bytes()).await.expect("answer");
            assert_eq!(response.head.status(), 200);
            assert_eq!(
                response.head.header_str("content-type"),
                Some("application/json")
            );
            assert_eq!(response.body, body.as_bytes());
        }
        let stats = pool.stats();
        assert_eq!((stats.connects_total, stats.reuses_total), (1, 9));
        assert_eq!((stats.open, stats.idle, stats.busy), (1, 1, 0));
        assert_eq!(seen.accepted.get(), 1);
    });
}

#[test]
fn chunked_json_response_is_decoded_and_a_closing_server_is_not_reused() {
    run(|| async {
        let base = start_raw_server(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
              Connection: close\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n",
        );
        let pool = pool(&format!("{base}/mcp"), &LIMITS);
        let response = buffered(&pool, b"{}").await.expect("answer");
        assert_eq!(response.body, b"{\"a\":1}");
        assert_eq!(pool.stats().open, 0, "connection: close is honoured");
    });
}

#[test]
fn event_stream_yields_three_events_then_ends_and_returns_its_connection() {
    run(|| async {
        let (base, seen) = start_server(SERVER_LIMITS);
        let pool = pool(&format!("{base}/sse"), &LIMITS);
        let Reply::Stream(mut stream) = pool.request(&post(b"{}")).await.expect("answer") else {
            panic!("expected an event stream");
        };
        assert_eq!(stream.head().header_str("mcp-session-id"), Some("s1"));
        assert_eq!(pool.stats().busy, 1);
        for id in ["1", "2", "3"] {
            let event = stream
                .next_event()
                .await
                .expect("event")
                .expect("not the end");
            assert_eq!(event.id.as_deref(), Some(id));
            assert_eq!(event.data, format!("{{\"n\":{id}}}").as_bytes());
        }
        assert_eq!(stream.next_event().await.expect("end"), None);
        assert_eq!(stream.last_event_id(), "3");
        let stats = pool.stats();
        assert_eq!(
            (stats.open, stats.idle),
            (1, 1),
            "the connection is back in the pool"
        );
        let Reply::Stream(mut again) = pool.request(&post(b"{}")).await.expect("answer") else {
            panic!("expected an event stream");
        };
        assert!(again.next_event().await.expect("event").is_some());
        drop(again);
        settle().await;
        let stats = pool.stats();
        assert_eq!(
            stats.connects_total, 1,
            "the second stream reused the connection"
        );
        assert_eq!(
            stats.open, 0,
            "a stream dropped mid-way closes its connection"
        );
        assert_eq!(seen.ended.get(), 1);
    });
}

#[test]
fn busy_pool_queues_waiters_in_turn_and_refuses_past_pool_waiters_max() {
    run(|| async {
        let (base, _) = start_server(SERVER_LIMITS);
        let limits = PoolLimits {
            pool_connections_max: 1,
            pool_waiters_max: 1,
            ..LIMITS
        };
        let pool = pool(&format!("{base}/slow"), &limits);
        let first = glommio::spawn_local({
            let pool = pool.clone();
            async move { buffered(&pool, b"1").await.map(|r| r.body) }
        });
        settle().await;
        let second = glommio::spawn_local({
            let pool = pool.clone();
            async move { buffered(&pool, b"2").await.map(|r| r.body) }
        });
        settle().await;
        let stats = pool.stats();
        assert_eq!((stats.busy, stats.waiters), (1, 1));
        let refused = failure(&pool, &post(b"3")).await;
        assert_eq!(refused.kind, UpstreamErrorKind::PoolFull);
        assert!(refused.message.contains(&base), "{refused}");
        assert!(
            refused.message.contains("pool_connections_max 1"),
            "{refused}"
        );
        assert!(refused.message.contains("pool_waiters_max 1"), "{refused}");
        assert_eq!(first.await.expect("first"), b"1");
        assert_eq!(second.await.expect("second"), b"2");
        let stats = pool.stats();
        assert_eq!((stats.connects_total, stats.reuses_total), (1, 1));
        assert_eq!((stats.waiters, stats.refused_total), (0, 1));
    });
}

#[test]
fn dedicated_stream_opens_beside_a_full_pool_and_closes_when_dropped() {
    // A listen stream held for good must not take a slot from calls: with the only pooled
    // connection busy, a dedicated request still goes out, and it never joins the pool.
    run(|| async {
        let (base, seen) = start_server(SERVER_LIMITS);
        let limits = PoolLimits {
            pool_connections_max: 1,
            pool_waiters_max: 0,
            ..LIMITS
        };
        let slow = pool(&format!("{base}/slow"), &limits);
        let busy = glommio::spawn_local({
            let pool = slow.clone();
            async move { buffered(&pool, b"1").await.map(|r| r.body) }
        });
        settle().await;
        assert_eq!(slow.stats().busy, 1);
        let refused = failure(&slow, &post(b"2")).await;
        assert_eq!(refused.kind, UpstreamErrorKind::PoolFull);
        let sse = pool(&format!("{base}/sse"), &limits);
        let Reply::Stream(mut stream) = sse.request_dedicated(&post(b"{}")).await.expect("answer")
        else {
            panic!("expected an event stream");
        };
        assert_eq!(sse.stats().dedicated_open, 1);
        assert_eq!(
            (sse.stats().open, sse.stats().busy),
            (0, 0),
            "no slot taken"
        );
        assert!(stream.next_event().await.expect("event").is_some());
        drop(stream);
        settle().await;
        assert_eq!(sse.stats().dedicated_open, 0);
        assert_eq!(busy.await.expect("busy call"), b"1");
        // Read to its end, a dedicated stream's connection closes too instead of idling.
        let Reply::Stream(mut stream) = sse.request_dedicated(&post(b"{}")).await.expect("answer")
        else {
            panic!("expected an event stream");
        };
        while stream.next_event().await.expect("event").is_some() {}
        settle().await;
        let stats = sse.stats();
        assert_eq!(
            (stats.dedicated_open, stats.idle, stats.connects_total),
            (0, 0, 2)
        );
        assert_eq!(seen.ended.get(), 2, "both dedicated connections closed");
    });
}

#[test]
fn waiter_past_its_timeout_leaves_the_queue_with_a_timeout() {
    run(|| async {
        let (base, _) = start_server(SERVER_LIMITS);
        let limits = PoolLimits {
            pool_connections_max: 1,
            ..LIMITS
        };
        let pool = pool(&format!("{base}/slow"), &limits);
        let first = glommio::spawn_local({
            let pool = pool.clone();
            async move { buffered(&pool, b"1").await.map(|r| r.body) }
        });
        settle().await;
        let spec = RequestSpec {
            timeout_ms: 50,
            ..post(b"2")
        };
        let error = failure(&pool, &spec).await;
        assert_eq!(error.kind, UpstreamErrorKind::Timeout);
        assert!(error.message.contains("within timeout_ms 50"), "{error}");
        assert_eq!(pool.stats().waiters, 0);
        assert_eq!(first.await.expect("first"), b"1");
        assert_eq!(pool.stats().idle, 1);
    });
}

#[test]
fn response_head_past_timeout_ms_is_a_timeout_and_closes_the_connection() {
    run(|| async {
        let (base, _) = start_server(SERVER_LIMITS);
        let pool = pool(&format!("{base}/slow"), &LIMITS);
        let spec = RequestSpec {
            timeout_ms: 50,
            ..post(b"{}")
        };
        let error = failure(&pool, &spec).await;
        assert_eq!(error.kind, UpstreamErrorKind::Timeout);
        assert!(error
            .message
            .contains("response head not received within timeout_ms 50"));
        assert_eq!(pool.stats().open, 0);
    });
}

#[test]
fn idle_connection_past_pool_idle_timeout_ms_is_closed() {
    run(|| async {
        let (base, seen) = start_server(SERVER_LIMITS);
        let limits = PoolLimits {
            pool_idle_timeout_ms: 100,
            ..LIMITS
        };
        let pool = pool(&format!("{base}/json"), &limits);
        buffered(&pool, b"{}").await.expect("answer");
        assert_eq!(pool.close_expired(), 0, "not idle long enough yet");
        glommio::timer::sleep(Duration::from_millis(150)).await;
        assert_eq!(pool.close_expired(), 1);
        settle().await;
        let stats = pool.stats();
        assert_eq!((stats.open, stats.closed_idle_total), (0, 1));
        assert_eq!(seen.ended.get(), 1, "the server saw the connection close");
        buffered(&pool, b"{}")
            .await
            .expect("answer on a new connection");
        assert_eq!(pool.stats().connects_total, 2);
    });
}

#[test]
fn connection_past_pool_lifetime_ms_is_not_reused() {
    run(|| async {
        let (base, _) = start_server(SERVER_LIMITS);
        let limits = PoolLimits {
            pool_lifetime_ms: 100,
            ..LIMITS
        };
        let pool = pool(&format!("{base}/json"), &limits);
        buffered(&pool, b"{}").await.expect("answer");
        glommio::timer::sleep(Duration::from_millis(150)).await;
        buffered(&pool, b"{}").await.expect("answer");
        let stats = pool.stats();
        assert_eq!((stats.connects_total, stats.closed_lifetime_total), (2, 1));
    });
}

#[test]
fn idle_connection_the_server_closed_is_dropped_not_handed_out() {
    run(|| async {
        let server_limits = HttpLimits {
            keepalive_idle_timeout_ms: 100,
            ..SERVER_LIMITS
        };
        let (base, seen) = start_server(server_limits);
        let pool = pool(&format!("{base}/json"), &LIMITS);
        buffered(&pool, b"{}").await.expect("answer");
        glommio::timer::sleep(Duration::from_millis(200)).await;
        assert_eq!(seen.ended.get(), 1, "the server closed the idle connection");
        let response = buffered(&pool, b"{\"again\":1}").await.expect("answer");
        assert_eq!(response.body, b"{\"again\":1}");
        let stats = pool.stats();
        assert_eq!((stats.connects_total, stats.reuses_total), (2, 0));
        assert_eq!(stats.closed_idle_total, 1);
    });
}

#[test]
fn connection_back_within_the_quiet_check_window_is_reused_unchecked() {
    run(|| async {
        // Answers keep-alive, then closes: the race the window leaves open, made certain.
        let base = start_raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
        let pool = pool(&format!("{base}/mcp"), &LIMITS);
        buffered(&pool, b"{}").await.expect("answer");
        settle().await;
        let error = failure(&pool, &post(b"{}")).await;
        assert_eq!(error.kind, UpstreamErrorKind::ClosedEarly, "{error}");
        assert_eq!(pool.stats().reuses_total, 1);
        // Idle past the window, the same close is found before a request goes out on it.
        buffered(&pool, b"{}")
            .await
            .expect("answer on a new connection");
        glommio::timer::sleep(QUIET_CHECK_IDLE_MIN + Duration::from_millis(50)).await;
        buffered(&pool, b"{}")
            .await
            .expect("answer on a new connection");
        let stats = pool.stats();
        assert_eq!((stats.reuses_total, stats.closed_idle_total), (1, 1));
        assert_eq!(stats.connects_total, 3);
    });
}

#[test]
fn connect_to_a_port_without_listener_fails_naming_the_url() {
    run(|| async {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            probe.local_addr().expect("address").port()
        };
        let url = format!("http://127.0.0.1:{port}/mcp");
        let pool = pool(&url, &LIMITS);
        let error = failure(&pool, &post(b"{}")).await;
        assert_eq!(error.kind, UpstreamErrorKind::ConnectFailed);
        assert!(error
            .message
            .starts_with(&format!("upstream {url}: connect failed")));
        let stats = pool.stats();
        assert_eq!(
            (stats.open, stats.connecting, stats.connect_failures_total),
            (0, 0, 1)
        );
    });
}

#[test]
fn a_host_that_does_not_resolve_fails_the_connect_naming_the_host_once() {
    run(|| async {
        // `.invalid` never resolves (RFC 6761).
        let url = "http://no-such-host.invalid:8000/mcp";
        let pool = pool(url, &LIMITS);
        let error = failure(&pool, &post(b"{}")).await;
        assert_eq!(error.kind, UpstreamErrorKind::ResolveFailed, "{error}");
        let text = error.to_string();
        assert!(
            text.starts_with(&format!(
                "resolve_failed: upstream {url}: cannot resolve host no-such-host.invalid: "
            )),
            "{text}"
        );
        assert_eq!(text.matches(url).count(), 1, "{text}");
        assert_eq!(pool.stats().connect_failures_total, 1);
        // Tried again at the next connect.
        let again = failure(&pool, &post(b"{}")).await;
        assert_eq!(again.kind, UpstreamErrorKind::ResolveFailed);
        assert_eq!(pool.stats().connect_failures_total, 2);
    });
}

#[test]
fn a_host_name_is_resolved_at_the_first_connect() {
    run(|| async {
        // Listen where `localhost` resolves first (127.0.0.1 or ::1, as the hosts file says).
        let first = ("localhost", 0)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next());
        let (base, _seen) = start_server_on(first.expect("localhost resolves"), SERVER_LIMITS);
        let port = base.rsplit(':').next().expect("a port");
        let pool = pool(&format!("http://localhost:{port}/echo"), &LIMITS);
        let response = buffered(&pool, b"{\"ok\":1}").await.expect("answered");
        assert_eq!(response.body, b"{\"ok\":1}");
        assert_eq!(pool.stats().connects_total, 1);
    });
}

#[test]
fn connect_to_a_full_backlog_times_out_at_connect_timeout_ms() {
    run(|| async {
        // std listens with a backlog of 128; once its accept queue is full the kernel drops
        // further SYNs, so a connect hangs like one to a blackhole.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let mut parked = Vec::new();
        let short = Duration::from_millis(50);
        while let Ok(stream) = std::net::TcpStream::connect_timeout(&address, short) {
            parked.push(stream);
            assert!(parked.len() < 4096, "the accept queue never filled");
        }
        let limits = PoolLimits {
            connect_timeout_ms: 200,
            ..LIMITS
        };
        let pool = pool(&format!("http://{address}/mcp"), &limits);
        let started = Instant::now();
        let error = failure(&pool, &post(b"{}")).await;
        assert_eq!(error.kind, UpstreamErrorKind::ConnectTimeout, "{error}");
        assert!(error.message.contains("connect_timeout_ms 200"), "{error}");
        assert!(started.elapsed() >= Duration::from_millis(190));
        assert_eq!(pool.stats().connect_failures_total, 1);
    });
}

#[test]
fn body_over_response_body_bytes_max_is_refused_and_the_connection_closed() {
    run(|| async {
        let (base, _) = start_server(SERVER_LIMITS);
        let pool = pool(&format!("{base}/big"), &LIMITS);
        let error = failure(&pool, &post(b"{}")).await;
        assert_eq!(error.kind, UpstreamErrorKind::ResponseTooLarge);
        assert!(
            error.message.contains("response_body_bytes_max 4096"),
            "{error}"
        );
        assert!(error.message.contains(&base), "{error}");
        assert_eq!(pool.stats().open, 0);
    });
}

#[test]
fn malformed_response_is_refused() {
    run(|| async {
        let base = start_raw_server(b"HTTP/1.1 abc OK\r\n\r\n");
        let pool = pool(&format!("{base}/mcp"), &LIMITS);
        let error = failure(&pool, &post(b"{}")).await;
        assert_eq!(error.kind, UpstreamErrorKind::MalformedResponse, "{error}");
        assert_eq!(pool.stats().open, 0);
    });
}

#[test]
fn body_cut_short_by_the_server_is_closed_early() {
    run(|| async {
        let base = start_raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
        let pool = pool(&format!("{base}/mcp"), &LIMITS);
        let error = failure(&pool, &post(b"{}")).await;
        assert_eq!(error.kind, UpstreamErrorKind::ClosedEarly, "{error}");
        assert!(error
            .message
            .contains("7 bytes of the content-length body missing"));
    });
}

#[test]
fn refused_request_keeps_its_connection() {
    run(|| async {
        let (base, _) = start_server(SERVER_LIMITS);
        let pool = pool(&format!("{base}/json"), &LIMITS);
        buffered(&pool, b"{}").await.expect("answer");
        let spec = RequestSpec {
            headers: &[("Content-Length", "1")],
            ..post(b"{}")
        };
        let error = failure(&pool, &spec).await;
        assert_eq!(error.kind, UpstreamErrorKind::InvalidRequest);
        assert_eq!(pool.stats().idle, 1);
    });
}

#[test]
fn upstream_urls_are_plain_http_with_a_host() {
    let url = UpstreamUrl::parse("http://127.0.0.1:8000/mcp").expect("valid");
    assert_eq!(
        (url.path(), url.host(), url.port()),
        ("/mcp", "127.0.0.1", 8000)
    );
    let url = UpstreamUrl::parse("http://127.0.0.1").expect("valid");
    assert_eq!((url.path(), url.port()), ("/", 80));
    let url = UpstreamUrl::parse("http://[::1]:9/").expect("valid");
    assert_eq!((url.host(), url.port()), ("::1", 9));
    // A name is resolved at the first connect, not here.
    let url = UpstreamUrl::parse("http://no-such-host.invalid:8000/mcp").expect("valid");
    assert_eq!(url.host(), "no-such-host.invalid");
    for bad in [
        "https://127.0.0.1/mcp",
        "http:///mcp",
        "http://u@127.0.0.1/",
        "ftp://x",
    ] {
        let error = UpstreamUrl::parse(bad).expect_err("refused");
        assert!(error.contains(bad), "{error}");
    }
}
