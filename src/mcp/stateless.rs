//! The stateless era's rules (2026-07-28): no sessions; every request says its version and
//! the client's capabilities in `params._meta`, and mirrors version, method and routed name in
//! headers the gateway holds to the body.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::calls::client::Client;
use crate::mcp::answer;
use crate::mcp::call::{Call, Era};
use crate::mcp::conversation::Conversation;
use crate::mcp::listen::Subscription;
use crate::mcp::transport::{supported_list, Endpoint, HttpReply, McpHeaders, Refused, Reply};
use crate::refusal::RefusalReason;
use crate::wire::capabilities::InputCapabilities;
use crate::wire::jsonrpc::{self, Message, Meta, RpcError};
use crate::wire::method::Method;
use crate::wire::mirrored;
use crate::wire::params::CallParams;
use crate::wire::version::ProtocolVersion;

impl Endpoint {
    /// The 2026-07-28 rules: no sessions; each request carries its version and capabilities in
    /// `params._meta`, mirrored in the `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name`
    /// headers, which must match the body.
    pub(super) fn stateless<'m, 'a: 'm>(
        &self,
        h: &McpHeaders<'a>,
        message: &'m Message<'a>,
        method: Method,
    ) -> Result<Conversation<'m>, Refused> {
        let (id, method_name, params) = match message {
            Message::Request { id, method, params } => (*id, method.as_ref(), *params),
            Message::Notification { .. } => {
                return Ok(Conversation::Answered(HttpReply::empty(202)))
            }
            Message::Response { .. } => {
                return Err(Refused::invalid(
                    RefusalReason::InvalidJsonRpc,
                    "clients do not send JSON-RPC responses in protocol version 2026-07-28",
                ))
            }
        };
        // A routed request's params are read once, for the checks here and for the router;
        // params it cannot route by are left to the router to refuse, after the checks.
        let routed = method
            .is_routed()
            .then(|| CallParams::read(method_name, params));
        let read = match &routed {
            Some(Ok(call)) => call
                .protocol_meta()
                .map(|meta| (meta, call.mirrored_name())),
            _ => Meta::with_routing_name(method_name, params),
        };
        let (meta, body_name) = read.map_err(|error| {
            Refused::new(RefusalReason::MissingMeta, error.code, error.message).with_id(id)
        })?;
        require_stateless_meta(&meta).map_err(|r| r.with_id(id))?;
        // A header that contradicts the body is a mismatch whatever the version says.
        check_mirrored_headers(h, &meta, (method_name, method), body_name)
            .map_err(|r| r.with_id(id))?;
        check_stateless_version(&meta).map_err(|r| r.with_id(id))?;
        if method.removed_in_stateless() {
            let error = RpcError::method_not_found(method_name);
            return Ok(Conversation::Answered(answer::rpc_reply(
                id,
                Err(error),
                Era::Stateless,
            )));
        }
        if method == Method::SubscriptionsListen {
            let subscription = Subscription::parse(id, params)
                .map_err(|message| Refused::invalid_params(message, id))?;
            return Ok(Conversation::Answered(Reply::Listen(subscription)));
        }
        let route = self.router.upstreams().inflight().request_route();
        Ok(Conversation::Call(Call {
            era: Era::Stateless,
            id,
            method,
            method_name,
            params,
            routed,
            client: Client {
                route,
                id,
                log_level: None,
                takes_requests: false,
                param_headers: h.param_headers,
                input_capabilities: InputCapabilities::NONE,
            },
        }))
    }
}
/// Both `_meta` fields every 2026-07-28 request must carry.
fn require_stateless_meta(meta: &Meta<'_>) -> Result<(), Refused> {
    let missing = |key: &str| {
        Refused::new(
            RefusalReason::MissingMeta,
            jsonrpc::INVALID_PARAMS,
            format!("params._meta[{key:?}] is required in protocol version 2026-07-28"),
        )
    };
    if meta.protocol_version.is_none() {
        return Err(missing(jsonrpc::META_PROTOCOL_VERSION));
    }
    if meta.client_capabilities.is_none() {
        return Err(missing(jsonrpc::META_CLIENT_CAPABILITIES));
    }
    Ok(())
}

fn check_stateless_version(meta: &Meta<'_>) -> Result<(), Refused> {
    let requested = meta.protocol_version.as_deref().unwrap_or("");
    if ProtocolVersion::parse(requested).is_some_and(|v| v.is_stateless()) {
        return Ok(());
    }
    // Every `str` serializes.
    let requested_json = serde_json::to_string(requested).expect("a string serializes");
    let data = format!(
        r#"{{"supported":{},"requested":{requested_json}}}"#,
        ProtocolVersion::SUPPORTED_JSON
    );
    Err(Refused {
        data: RawValue::from_string(data).ok(),
        ..Refused::new(
            RefusalReason::UnsupportedProtocolVersion,
            jsonrpc::UNSUPPORTED_PROTOCOL_VERSION,
            format!(
                "unsupported protocol version {requested:?}; supported: {}",
                supported_list()
            ),
        )
    })
}

/// `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` must mirror the body exactly.
fn check_mirrored_headers(
    h: &McpHeaders<'_>,
    meta: &Meta<'_>,
    (method, known): (&str, Method),
    body_name: Option<Cow<'_, str>>,
) -> Result<(), Refused> {
    let mismatch = |message: String| {
        Refused::new(
            RefusalReason::HeaderMismatch,
            jsonrpc::HEADER_MISMATCH,
            message,
        )
    };
    let body_version = meta.protocol_version.as_deref().unwrap_or("");
    match h.protocol_version {
        Some(v) if v == body_version => {}
        Some(v) => {
            return Err(mismatch(format!(
                "header mismatch: MCP-Protocol-Version header {v:?} does not match body _meta version {body_version:?}"
            )))
        }
        None => return Err(mismatch("header mismatch: MCP-Protocol-Version header is missing".into())),
    }
    match h.mcp_method {
        Some(m) if m == method => {}
        Some(m) => {
            return Err(mismatch(format!(
                "header mismatch: Mcp-Method header {m:?} does not match body method {method:?}"
            )))
        }
        None => {
            return Err(mismatch(format!(
                "header mismatch: Mcp-Method header is missing (body method {method:?})"
            )))
        }
    }
    if !known.mirrors_name() {
        return Ok(());
    }
    let body_name = body_name.unwrap_or_default();
    let Some(header) = h.mcp_name else {
        return Err(mismatch(format!(
            "header mismatch: Mcp-Name header is missing (body name {body_name:?})"
        )));
    };
    let decoded = mirrored::decoded_header_value(header).ok_or_else(|| {
        mismatch(format!(
            "header mismatch: Mcp-Name header {header:?} has invalid base64"
        ))
    })?;
    if decoded != body_name {
        return Err(mismatch(format!(
            "header mismatch: Mcp-Name header {decoded:?} does not match body value {body_name:?}"
        )));
    }
    Ok(())
}
