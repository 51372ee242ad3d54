//! The MCP endpoint's HTTP rules, both eras: what a request is (method, headers, body), what
//! it is answered with, and the checks made before its body is read as JSON-RPC — `Host`, then
//! `Origin`, the HTTP method, `Content-Type` and `Accept`.
//!
//! The endpoint decides; it performs no I/O. The request pipeline (`crate::pipeline`) runs its
//! phases in order — these early checks, then [`decode`](super::decode), the era's rules
//! ([`session_era`](super::session_era) or [`stateless`](super::stateless)), the router, and the
//! [`answer`](super::answer) — and writes the [`Reply`], or carries the request to the shard
//! that owns its session. State it touches (the session table) belongs to the calling shard.

use std::rc::Rc;
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::config::Config;
use crate::mcp::call::Era;
use crate::mcp::listen::Subscription;
use crate::mcp::router::Router;
use crate::refusal::{RefusalCounters, RefusalReason};
use crate::support::event::Event;
use crate::upstream::call::Relay;
use crate::wire::jsonrpc;
use crate::wire::version::ProtocolVersion;

/// The HTTP methods the endpoint distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpMethod {
    Post,
    Get,
    Delete,
    Other,
}

impl HttpMethod {
    pub fn parse(method: &str) -> HttpMethod {
        match method {
            "POST" => HttpMethod::Post,
            "GET" => HttpMethod::Get,
            "DELETE" => HttpMethod::Delete,
            _ => HttpMethod::Other,
        }
    }
}

/// The request headers the MCP rules read (already decoded to UTF-8; absent when not valid).
#[derive(Default, Clone, Copy)]
pub struct McpHeaders<'a> {
    pub host: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub protocol_version: Option<&'a str>,
    pub mcp_method: Option<&'a str>,
    pub mcp_name: Option<&'a str>,
    /// `Mcp-Param-*` fields (name as sent, value), passed on to the upstream a call goes to.
    pub param_headers: &'a [(String, String)],
}

/// One request to the MCP endpoint, independent of where it arrived (socket or mesh).
pub struct McpRequest<'a> {
    pub method: HttpMethod,
    pub headers: McpHeaders<'a>,
    pub body: &'a [u8],
}

/// Extra response headers; names are fixed strings, values are owned.
pub type ReplyHeaders = Vec<(&'static str, String)>;

/// What to send back, as the endpoint decided it.
pub enum Reply {
    /// A complete HTTP answer (`Send`, so it can cross the mesh).
    Http(HttpReply),
    /// The session's GET stream: keep it open until `ended` is set or the client leaves.
    Stream { ended: Rc<Event> },
    /// A 2026-07-28 `subscriptions/listen`: keep its stream open until the client leaves or
    /// the shard drains.
    Listen(Subscription),
    /// An upstream call under way: relay its notifications (as an event stream, once there is
    /// one), then its answer under the client's `id`.
    Relay {
        relay: Relay,
        id: Box<RawValue>,
        era: Era,
    },
}

/// A complete HTTP answer: a JSON body, or none (202 for notifications, 200 for DELETE).
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: ReplyHeaders,
    /// `None` answers with no body and no `Content-Type`.
    pub json: Option<Vec<u8>>,
}

impl HttpReply {
    pub(super) fn json(status: u16, headers: ReplyHeaders, body: Vec<u8>) -> Reply {
        Reply::Http(HttpReply {
            status,
            headers,
            json: Some(body),
        })
    }

    pub(super) fn empty(status: u16) -> Reply {
        Reply::Http(HttpReply {
            status,
            headers: ReplyHeaders::new(),
            json: None,
        })
    }
}

/// The shard-local MCP endpoint: its rules, its session table and its router.
pub struct Endpoint {
    pub(super) shard: u8,
    pub(super) shards: u8,
    pub(super) router: Router,
    pub(super) config: Arc<Config>,
}

/// A refusal: its reason (for counting and the HTTP status) and what the client is told.
pub struct Refused {
    pub reason: RefusalReason,
    pub(super) code: i32,
    pub(super) message: String,
    pub(super) id: Option<Box<RawValue>>,
    pub(super) data: Option<Box<RawValue>>,
    pub(super) allow: Option<&'static str>,
}

impl Refused {
    pub fn new(reason: RefusalReason, code: i32, message: impl Into<String>) -> Refused {
        Refused {
            reason,
            code,
            message: message.into(),
            id: None,
            data: None,
            allow: None,
        }
    }

    /// An invalid request (-32600) refused for `reason`.
    pub fn invalid(reason: RefusalReason, message: impl Into<String>) -> Refused {
        Refused::new(reason, jsonrpc::INVALID_REQUEST, message)
    }

    fn method_not_allowed(allow: &'static str, message: &str) -> Refused {
        Refused {
            allow: Some(allow),
            ..Refused::invalid(RefusalReason::MethodNotAllowed, message)
        }
    }

    /// Params the method cannot take (-32602), answered under the request's `id`.
    pub(super) fn invalid_params(message: String, id: &RawValue) -> Refused {
        Refused::new(
            RefusalReason::InvalidJsonRpc,
            jsonrpc::INVALID_PARAMS,
            message,
        )
        .with_id(id)
    }

    pub fn with_id(mut self, id: &RawValue) -> Refused {
        self.id = Some(id.to_owned());
        self
    }
}

impl Endpoint {
    pub fn new(shard: u8, shards: u8, router: Router, config: Arc<Config>) -> Endpoint {
        Endpoint {
            shard,
            shards,
            router,
            config,
        }
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The checks that need no session: `Host`, `Origin`, HTTP method, media types. Run on the
    /// shard that accepted the connection, before any forwarding.
    pub fn early_checks(&self, request: &McpRequest<'_>) -> Result<(), Refused> {
        let h = &request.headers;
        if !self.config.server.host_allowed(h.host) {
            return Err(Refused::invalid(
                RefusalReason::HostForbidden,
                format!(
                    "host {:?} is not a name of this listener (server.allowed_hosts; a loopback \
                     listener answers to localhost, 127.0.0.1 and [::1] unless it lists others)",
                    h.host.unwrap_or("")
                ),
            ));
        }
        if let Some(origin) = h.origin.filter(|o| !self.config.server.origin_allowed(o)) {
            return Err(Refused::invalid(
                RefusalReason::OriginForbidden,
                format!("origin {origin:?} is not allowed (server.allowed_origins)"),
            ));
        }
        let stateless = h.protocol_version == Some(ProtocolVersion::V2026_07_28.as_str());
        match request.method {
            HttpMethod::Post => check_post_media(h),
            HttpMethod::Get | HttpMethod::Delete if stateless => Err(Refused::method_not_allowed(
                "POST",
                "protocol version 2026-07-28 has no GET or DELETE: POST each request",
            )),
            HttpMethod::Get if !accepts(h.accept, "text/event-stream") => Err(Refused::invalid(
                RefusalReason::NotAcceptable,
                format!(
                    "GET opens an event stream: Accept must list text/event-stream, got {:?}",
                    h.accept.unwrap_or("")
                ),
            )),
            HttpMethod::Get | HttpMethod::Delete => Ok(()),
            HttpMethod::Other => Err(Refused::method_not_allowed(
                "POST, GET, DELETE",
                "the MCP endpoint accepts POST, GET and DELETE",
            )),
        }
    }

    /// Counts `refused` and words it as the HTTP answer: its status, `Allow` for a method not
    /// allowed, `Retry-After` for a 503, and the JSON-RPC error.
    pub fn refuse(&self, refused: Refused, refusals: &RefusalCounters) -> HttpReply {
        refusals.count(refused.reason);
        let mut headers = ReplyHeaders::new();
        if let Some(allow) = refused.allow {
            headers.push(("Allow", allow.to_owned()));
        }
        if matches!(refused.reason.http_status(), 503) {
            headers.push((
                "Retry-After",
                self.config.sessions.retry_after_s.to_string(),
            ));
        }
        let body = jsonrpc::error_bytes(
            refused.id.as_deref(),
            refused.code,
            &refused.message,
            refused.data.as_deref(),
        );
        HttpReply {
            status: refused.reason.http_status(),
            headers,
            json: Some(body),
        }
    }
}

fn check_post_media(h: &McpHeaders<'_>) -> Result<(), Refused> {
    let content_type = h.content_type.unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(Refused::invalid(
            RefusalReason::UnsupportedMediaType,
            format!("Content-Type must be application/json, got {content_type:?}"),
        ));
    }
    if !(accepts(h.accept, "application/json") && accepts(h.accept, "text/event-stream")) {
        return Err(Refused::invalid(
            RefusalReason::NotAcceptable,
            format!(
                "Accept must list application/json and text/event-stream, got {:?}",
                h.accept.unwrap_or("")
            ),
        ));
    }
    Ok(())
}

/// `"2025-03-26, 2025-06-18, …"` for error messages.
pub(super) fn supported_list() -> String {
    let versions: Vec<&str> = ProtocolVersion::SUPPORTED
        .iter()
        .map(|v| v.as_str())
        .collect();
    versions.join(", ")
}

fn accepts(accept: Option<&str>, media: &str) -> bool {
    accept.unwrap_or("").split(',').any(|part| {
        let range = part.split(';').next().unwrap_or("").trim();
        range.eq_ignore_ascii_case(media) || range == "*/*"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_matching_is_by_media_range() {
        assert!(accepts(
            Some("application/json, text/event-stream"),
            "text/event-stream"
        ));
        assert!(accepts(Some("*/*"), "application/json"));
        assert!(accepts(
            Some("text/event-stream;q=0.9"),
            "text/event-stream"
        ));
        assert!(!accepts(Some("application/jsonx"), "application/json"));
        assert!(!accepts(None, "application/json"));
    }
}
