//! The request path of the MCP endpoint, as phases in the order a request meets them. Each
//! phase is one call below; what it decides goes into the request's [`RequestContext`].
//!
//! 1. read — the request the HTTP codec framed, as the endpoint's [`McpRequest`] (path checked)
//! 2. early checks — `Host`, `Origin`, HTTP method, media types ([`Endpoint::early_checks`])
//! 3. authenticate — [`Hooks::authenticate`]
//! 4. decode — the body as one JSON-RPC message, and its era ([`Endpoint::decode`])
//! 5. session — the era's rules; a session another shard owns is forwarded there, with the
//!    context so far ([`Endpoint::converse`], [`Forwarding::forward`])
//! 6. authorize — [`Hooks::authorize`]
//! 7. route — a group ([`Hooks::route_group`]), the gateway itself or one upstream
//!    ([`Router::route`](crate::mcp::router::Router::route))
//! 8. admit — the upstream's state and breaker, the pending table ([`Upstreams::admit`](crate::upstream::Upstreams::admit))
//! 9. upstream request — the params rewritten for the upstream ([`Upstreams::upstream_request`](crate::upstream::Upstreams::upstream_request))
//! 10. call — sent in a task of its own, relayed as it happens ([`Upstreams::start_call`](crate::upstream::Upstreams::start_call))
//! 11. response — the answer in the request's era ([`answer::response`])
//! 12. respond — written to the client: JSON, an event stream, or a notification stream
//!     ([`respond`])
//! 13. log — [`Hooks::log`], once per request, refused or not
//!
//! Phases 4–11 decide without writing ([`Pipeline::decide`]): they run where the request
//! arrived, or, for a session another shard owns, on that shard, whose decision comes back.
//!
//! Ownership: one pipeline per shard, inside the runtime's shard; nothing here leaves it.

pub mod context;
pub mod hooks;
pub mod respond;
#[cfg(test)]
mod tests;

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use crate::config::Config;
use crate::http::{self, Request, ResponseWriter};
use crate::mcp::answer;
use crate::mcp::call::Call;
use crate::mcp::conversation::Conversation;
use crate::mcp::router::{Answer, Routed};
use crate::mcp::session::SessionTable;
use crate::mcp::transport::{
    Endpoint, HttpMethod, HttpReply, McpHeaders, McpRequest, Refused, Reply,
};
use crate::refusal::{RefusalCounters, RefusalReason};
use crate::support::clock::ShardClock;
use crate::support::event::Event;
use crate::upstream::call::NotAdmitted;
use context::RequestContext;
use hooks::{Features, Hooks};

/// One shard's request path: the endpoint and the state its phases read.
pub struct Pipeline<H: Hooks = Features> {
    pub shard: u8,
    pub config: Arc<Config>,
    pub endpoint: Endpoint,
    pub sessions: RefCell<SessionTable>,
    pub refusals: RefusalCounters,
    /// Set when the shard starts draining: notification streams end.
    pub shutdown: Event,
    pub hooks: H,
    clock: ShardClock,
    /// Open GET and `subscriptions/listen` streams; each holds one of the connections.
    notification_streams: Cell<u32>,
}

/// Where the decide phases leave a request.
pub enum Decision {
    Reply(Reply),
    /// Its session lives on shard `owner`: the request goes there.
    Forward {
        owner: u8,
    },
}

/// What runs a pipeline: its shard, which also carries a request to the shard that owns its
/// session (the runtime's mesh). Runs on that shard; its futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Forwarding {
    type Hooks: Hooks;

    fn pipeline(&self) -> &Pipeline<Self::Hooks>;

    /// Phase 5's other branch: has shard `owner` decide `request` and writes its answer.
    async fn forward(
        &self,
        owner: u8,
        request: &McpRequest<'_>,
        cx: &mut RequestContext,
        response: &mut ResponseWriter<'_>,
    ) -> io::Result<()>;
}

/// The MCP endpoint as an HTTP handler: every request through the phases.
pub struct McpFront<F> {
    pub shard: Rc<F>,
}

impl<F: Forwarding> http::Handler for McpFront<F> {
    async fn handle(
        &self,
        request: &Request<'_>,
        response: &mut ResponseWriter<'_>,
    ) -> io::Result<()> {
        let pipeline = self.shard.pipeline();
        let mut cx = RequestContext::new(pipeline.shard, pipeline.now_ms());
        let written = self.run(request, response, &mut cx).await;
        pipeline.hooks.log(&cx);
        written
    }
}

impl<F: Forwarding> McpFront<F> {
    async fn run(
        &self,
        http: &Request<'_>,
        response: &mut ResponseWriter<'_>,
        cx: &mut RequestContext,
    ) -> io::Result<()> {
        let pipeline = self.shard.pipeline();
        let param_headers = mcp_param_headers(http);
        let checked = pipeline.read(http, &param_headers).and_then(|request| {
            pipeline.endpoint.early_checks(&request)?;
            pipeline.hooks.authenticate(&request, cx)?;
            Ok(request)
        });
        let request = match checked {
            Ok(request) => request,
            Err(refused) => {
                let reply = pipeline.refuse(cx, refused);
                return pipeline.write_reply(response, reply, cx).await;
            }
        };
        match pipeline.decide(&request, cx).await {
            Decision::Reply(reply) => pipeline.respond(reply, response, cx).await,
            Decision::Forward { owner } => {
                cx.owner = Some(owner);
                self.shard.forward(owner, &request, cx, response).await
            }
        }
    }
}

impl<H: Hooks> Pipeline<H> {
    pub fn new(
        shard: u8,
        config: Arc<Config>,
        endpoint: Endpoint,
        sessions: SessionTable,
        clock: ShardClock,
        hooks: H,
    ) -> Pipeline<H> {
        Pipeline {
            shard,
            config,
            endpoint,
            sessions: RefCell::new(sessions),
            refusals: RefusalCounters::default(),
            shutdown: Event::default(),
            hooks,
            clock,
            notification_streams: Cell::new(0),
        }
    }

    /// Milliseconds on the process-wide monotonic clock (the same origin on every shard).
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Open GET and `subscriptions/listen` streams.
    pub fn notification_streams(&self) -> u32 {
        self.notification_streams.get()
    }

    /// Phase 1: the framed request as the endpoint reads it, at the endpoint's path.
    fn read<'a>(
        &self,
        http: &'a Request<'_>,
        param_headers: &'a [(String, String)],
    ) -> Result<McpRequest<'a>, Refused> {
        let path = http.path().split('?').next().unwrap_or("");
        if path != self.config.server.path {
            return Err(Refused::invalid(
                RefusalReason::NotFound,
                format!(
                    "no MCP endpoint at {path:?}; it is at {:?}",
                    self.config.server.path
                ),
            ));
        }
        Ok(McpRequest {
            method: HttpMethod::parse(http.method()),
            headers: McpHeaders {
                param_headers,
                host: http.header_str("host"),
                origin: http.header_str("origin"),
                accept: http.header_str("accept"),
                content_type: http.header_str("content-type"),
                session_id: http.header_str("mcp-session-id"),
                protocol_version: http.header_str("mcp-protocol-version"),
                mcp_method: http.header_str("mcp-method"),
                mcp_name: http.header_str("mcp-name"),
            },
            body: http.body(),
        })
    }

    /// Phases 4–11, which decide without writing: a request that arrived here, or one another
    /// shard forwarded because its session is this shard's.
    pub async fn decide(&self, request: &McpRequest<'_>, cx: &mut RequestContext) -> Decision {
        match self.decide_or_refuse(request, cx).await {
            Ok(decision) => decision,
            Err(refused) => Decision::Reply(Reply::Http(self.refuse(cx, refused))),
        }
    }

    async fn decide_or_refuse(
        &self,
        request: &McpRequest<'_>,
        cx: &mut RequestContext,
    ) -> Result<Decision, Refused> {
        let endpoint = &self.endpoint;
        let router = endpoint.router();
        // 4. decode
        let decoded = endpoint.decode(request);
        cx.method = decoded.method();
        // 5. session
        let sessions = &self.sessions;
        let call = match endpoint.converse(request, &decoded, sessions, self.now_ms())? {
            Conversation::Call(call) => call,
            Conversation::Answered(reply) => return Ok(Decision::Reply(reply)),
            Conversation::Forward { owner } => return Ok(Decision::Forward { owner }),
        };
        cx.era = Some(call.era);
        // 6. authorize
        self.hooks.authorize(&call, cx)?;
        // 7. route
        if let Some(answer) = self.hooks.route_group(&call, cx) {
            return answer::response(&call, answer).map(Decision::Reply);
        }
        let target = match router.route(&call).await {
            Routed::Answered(answer) => {
                return answer::response(&call, Answer::Now(answer)).map(Decision::Reply)
            }
            Routed::Upstream(target) => target,
            Routed::Unavailable(refused) => return self.not_admitted(cx, &call, refused),
        };
        cx.upstream = Some(target.upstream);
        let upstreams = router.upstreams();
        // 8. admit
        let admitted = match upstreams.admit(&target, &call.client) {
            Ok(admitted) => admitted,
            Err(refused) => return self.not_admitted(cx, &call, refused),
        };
        // 9. upstream request
        let upstream_request = upstreams.upstream_request(target, admitted, &call.client);
        // 10. call
        let relay = upstreams.start_call(upstream_request, &call.client);
        // 11. response
        answer::response(&call, Answer::Relay(relay)).map(Decision::Reply)
    }

    /// The answer to a call the upstream side turned away, counted (a full pending table is
    /// counted as the refusal it becomes).
    fn not_admitted(
        &self,
        cx: &mut RequestContext,
        call: &Call<'_>,
        refused: NotAdmitted,
    ) -> Result<Decision, Refused> {
        if let NotAdmitted::Unavailable { reason, .. } = &refused {
            self.count(cx, *reason);
        }
        answer::response(call, refused.into()).map(Decision::Reply)
    }

    /// Counts `refused`, notes it in the request's context, and words its answer.
    pub fn refuse(&self, cx: &mut RequestContext, refused: Refused) -> HttpReply {
        cx.refusal = Some(refused.reason);
        self.endpoint.refuse(refused, &self.refusals)
    }

    /// Counts a refusal answered inside the call (the upstream side's), and notes it.
    pub fn count(&self, cx: &mut RequestContext, reason: RefusalReason) {
        cx.refusal = Some(reason);
        self.refusals.count(reason);
    }
}

/// The request's `Mcp-Param-*` fields, which an intermediary passes on to the server.
fn mcp_param_headers(request: &Request<'_>) -> Vec<(String, String)> {
    request
        .headers()
        .filter(|(name, _)| name.len() > 10 && name[..10].eq_ignore_ascii_case(b"mcp-param-"))
        .filter_map(|(name, value)| {
            let name = std::str::from_utf8(name).ok()?;
            let value = std::str::from_utf8(value).ok()?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}
