//! The seams of the pipeline, driven over a real loopback connection on one executor: a
//! recording [`Hooks`] sees each hook run in phase order, once per request, and a hook that
//! refuses ends the request there with its refusal counted and logged.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};
use serde_json::value::RawValue;

use super::*;
use crate::mcp::call::{Call, Era};
use crate::mcp::router::Router;
use crate::wire::method::Method;

/// Stands in for the refusal a feature's hook would make.
const REFUSAL: RefusalReason = RefusalReason::OriginForbidden;

/// Records each hook as it runs; refuses at the hook named in `refuse_at`, and answers a
/// call itself at `route_group` when `group_answers`.
#[derive(Default)]
struct Recorder {
    ran: RefCell<Vec<&'static str>>,
    refuse_at: Cell<Option<&'static str>>,
    group_answers: Cell<bool>,
    logged: Cell<Option<RequestContext>>,
}

impl Recorder {
    fn phase(&self, name: &'static str) -> Result<(), Refused> {
        self.ran.borrow_mut().push(name);
        match self.refuse_at.get() == Some(name) {
            true => Err(Refused::invalid(REFUSAL, format!("refused at {name}"))),
            false => Ok(()),
        }
    }
}

impl Hooks for Recorder {
    fn authenticate(&self, _: &McpRequest<'_>, _: &mut RequestContext) -> Result<(), Refused> {
        self.phase("authenticate")
    }

    fn authorize(&self, call: &Call<'_>, cx: &mut RequestContext) -> Result<(), Refused> {
        // Authorize sees what the phases before it decided.
        assert_eq!(cx.method, Some(call.method));
        self.phase("authorize")
    }

    fn route_group(&self, _: &Call<'_>, _: &mut RequestContext) -> Option<Answer> {
        self.ran.borrow_mut().push("route_group");
        let result = RawValue::from_string(r#"{"group":true}"#.to_owned()).unwrap();
        self.group_answers.get().then_some(Answer::Now(Ok(result)))
    }

    fn log(&self, cx: &RequestContext) {
        self.ran.borrow_mut().push("log");
        self.logged.set(Some(*cx));
    }
}

/// One shard's pipeline with the recorder hooked in; it owns every session, so nothing is
/// forwarded.
struct TestShard {
    pipeline: Pipeline<Recorder>,
}

impl Forwarding for TestShard {
    type Hooks = Recorder;

    fn pipeline(&self) -> &Pipeline<Recorder> {
        &self.pipeline
    }

    async fn forward(
        &self,
        owner: u8,
        _: &McpRequest<'_>,
        _: &mut RequestContext,
        _: &mut ResponseWriter<'_>,
    ) -> io::Result<()> {
        panic!("a single shard forwarded a request to shard {owner}");
    }
}

/// What one request through the pipeline showed.
struct Seen {
    status: u16,
    body: String,
    ran: Vec<&'static str>,
    logged: RequestContext,
    refusals: Vec<(&'static str, u64)>,
}

/// Sends `request` (a whole HTTP/1.1 request) to a fresh shard with the demo upstream and
/// returns what the client and the hooks saw.
fn drive(hooks: Recorder, request: String) -> Seen {
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(1 << 20)
        .spawn(move || async move {
            let config = Arc::new(Config::default());
            let clock = ShardClock::start();
            let router = Router::new(&config, 0, clock).unwrap();
            router.start(5_000).await.unwrap();
            let endpoint = Endpoint::new(0, 1, router, config.clone());
            let sessions = SessionTable::for_config(0, &config).unwrap();
            let pipeline = Pipeline::new(0, config.clone(), endpoint, sessions, clock, hooks);
            let shard = Rc::new(TestShard { pipeline });
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let address = listener.local_addr().unwrap();
            let server = {
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    let stream = listener.accept().await.unwrap();
                    let pipeline = &shard.pipeline;
                    let limits = http::HttpLimits::from_config(&pipeline.config);
                    let front = McpFront {
                        shard: shard.clone(),
                    };
                    let (refusals, shutdown) = (&pipeline.refusals, &pipeline.shutdown);
                    http::serve_connection(stream, &limits, &front, refusals, shutdown).await;
                })
            };
            let mut client = TcpStream::connect(address).await.unwrap();
            client.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            client.read_to_string(&mut answer).await.unwrap();
            server.await;
            let (head, body) = answer.split_once("\r\n\r\n").unwrap();
            let status = head.split(' ').nth(1).unwrap().parse().unwrap();
            let pipeline = &shard.pipeline;
            let ran = pipeline.hooks.ran.borrow().clone();
            Seen {
                status,
                body: body.to_owned(),
                ran,
                logged: pipeline.hooks.logged.get().unwrap(),
                refusals: pipeline.refusals.nonzero().collect(),
            }
        })
        .unwrap()
        .join()
        .unwrap()
}

/// A 2026-07-28 `tools/call` of the demo's echo tool, on a connection that closes after it.
fn stateless_echo() -> String {
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"demo__echo","arguments":{"text":"hi"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n\
         Mcp-Method: tools/call\r\nMcp-Name: demo__echo\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn every_hook_runs_in_phase_order_and_log_sees_what_the_phases_decided() {
    let seen = drive(Recorder::default(), stateless_echo());
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert!(seen.body.contains(r#""text":"hi""#), "{}", seen.body);
    assert_eq!(
        seen.ran,
        ["authenticate", "authorize", "route_group", "log"]
    );
    let logged = seen.logged;
    assert_eq!(logged.method, Some(Method::ToolsCall));
    assert_eq!(logged.era, Some(Era::Stateless));
    assert_eq!(logged.upstream, Some(0));
    assert_eq!((logged.refusal, logged.status), (None, Some(200)));
    assert!(seen.refusals.is_empty(), "{:?}", seen.refusals);
}

#[test]
fn a_refusing_hook_ends_the_request_there_and_the_refusal_is_counted_and_logged() {
    for (hook, ran) in [
        ("authenticate", &["authenticate", "log"][..]),
        ("authorize", &["authenticate", "authorize", "log"][..]),
    ] {
        let hooks = Recorder::default();
        hooks.refuse_at.set(Some(hook));
        let seen = drive(hooks, stateless_echo());
        assert_eq!(seen.status, REFUSAL.http_status(), "{hook}: {}", seen.body);
        assert!(
            seen.body.contains(&format!("refused at {hook}")),
            "{}",
            seen.body
        );
        assert_eq!(seen.ran, ran, "{hook}");
        assert_eq!(seen.logged.refusal, Some(REFUSAL), "{hook}");
        assert_eq!(seen.logged.upstream, None, "{hook}: no upstream was called");
        assert_eq!(seen.refusals, [(REFUSAL.as_str(), 1)], "{hook}");
    }
}

#[test]
fn a_group_route_answers_the_call_instead_of_the_router() {
    let hooks = Recorder::default();
    hooks.group_answers.set(true);
    let seen = drive(hooks, stateless_echo());
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert!(seen.body.contains(r#""group":true"#), "{}", seen.body);
    assert_eq!(
        seen.ran,
        ["authenticate", "authorize", "route_group", "log"]
    );
    assert_eq!(seen.logged.upstream, None);
}

#[test]
fn a_request_refused_before_the_hooks_is_still_logged() {
    let request = stateless_echo().replace("POST /mcp", "POST /elsewhere");
    let seen = drive(Recorder::default(), request);
    assert_eq!(seen.status, 404, "{}", seen.body);
    assert_eq!(seen.ran, ["log"]);
    assert_eq!(seen.logged.refusal, Some(RefusalReason::NotFound));
    assert_eq!(seen.logged.status, Some(404));
}
