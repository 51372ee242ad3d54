//! A routed request's `params` as raw members: read once, written once for its upstream.
//!
//! The router needs three things from a `tools/call`, `prompts/get`, `resources/read` or
//! `completion/complete`: the name it is routed by, the client's progress token, and the
//! protocol members of `_meta`. [`CallParams::read`] finds them in one pass without building a
//! tree: every member's value stays the slice of the client's text it came in.
//! [`CallParams::write`] then writes the params the upstream gets in one pass: the routing name
//! replaced by the upstream's own, the client's progress token by the gateway's id, the
//! client's per-request protocol members (`protocolVersion`, `clientInfo`) dropped, the
//! session's log level and, for a 2026-07-28 upstream, the gateway's own protocol members
//! added. Everything else is copied byte for byte.
//!
//! Members keep their order. A key that repeats counts once, with its last value, as a JSON
//! map reads it; the earlier ones are not passed on. `_meta` is dropped when nothing is left in
//! it, and added at the end when something must go in and the client sent none.
//!
//! Owns nothing: it borrows the request body of the connection that received it.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::support::decimal::push_decimal;
use crate::wire::capabilities::InputCapabilities;
use crate::wire::gateway_client::write_client_info;
use crate::wire::ids::UpstreamRequestId;
use crate::wire::jsonrpc::{
    self, META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_LOG_LEVEL, META_PROGRESS_TOKEN,
    META_PROTOCOL_VERSION,
};
use crate::wire::kind::Kind;
use crate::wire::members::{member_key, write_json_str, Members};
use crate::wire::version::ProtocolVersion;

/// Where the routing name sits in `params`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoutingField {
    /// `params.name` (`tools/call`, `prompts/get`).
    Name,
    /// `params.uri` (`resources/read`).
    Uri,
    /// `params.ref.name` (`completion/complete` of a prompt).
    RefName,
    /// `params.ref.uri` (`completion/complete` of a resource).
    RefUri,
}

impl RoutingField {
    /// The member that holds the name, in `params` or in `params.ref`.
    fn member(self) -> &'static str {
        match self {
            RoutingField::Name | RoutingField::RefName => "name",
            RoutingField::Uri | RoutingField::RefUri => "uri",
        }
    }
}

/// What a routed request names: the catalogue kind, where the name sits, the merged name.
#[derive(Debug, PartialEq, Eq)]
pub struct Routing<'a> {
    pub kind: Kind,
    pub field: RoutingField,
    pub merged: Cow<'a, str>,
}

/// How [`CallParams::write`] changes the params for the upstream.
#[derive(Clone, Copy, Debug)]
pub struct Rewrite<'r> {
    /// The upstream's own name for what the request names.
    pub original: &'r str,
    /// The gateway's id of the call, in place of the client's progress token; `None` when the
    /// client sent no token.
    pub progress: Option<UpstreamRequestId>,
    /// The session's `logging/setLevel`, for upstreams that take it per request.
    pub log_level: Option<&'static str>,
    /// The client capabilities the gateway declares for the client, in place of any the
    /// client sent (a session-era client whose input a 2026-07-28 upstream may ask for
    /// through the gateway).
    pub client_capabilities: Option<InputCapabilities>,
    /// The upstream speaks 2026-07-28: every request carries the gateway's protocol version,
    /// client info and (unless the client sent its own) client capabilities in `_meta`.
    pub stateless: bool,
}

/// A routed request's params, read.
pub struct CallParams<'a> {
    top: Members<'a>,
    /// `params._meta`, when it is an object (a session-era client may send anything there;
    /// anything else is passed on untouched).
    meta: Option<Members<'a>>,
    /// `params.ref`, for `completion/complete`: present exactly when the routing name is in it.
    reference: Option<Members<'a>>,
    routing: Routing<'a>,
    /// Bytes of the params as the client sent them.
    text_len: usize,
}

impl<'a> CallParams<'a> {
    /// Reads `params` of routed `method`. `Err` is the `invalid_params` message: not an
    /// object, or the routing name missing or not a string.
    pub fn read(method: &str, params: Option<&'a RawValue>) -> Result<CallParams<'a>, String> {
        let top = params
            .and_then(Members::read)
            .ok_or_else(|| format!("{method} needs a params object"))?;
        let meta = top.get("_meta").and_then(Members::read);
        let name = |value: Option<&'a RawValue>, what: &str| {
            value
                .and_then(jsonrpc::raw_str)
                .ok_or_else(|| format!("{method} needs {what} as a string"))
        };
        let (routing, reference) = match method {
            "tools/call" | "prompts/get" => {
                let kind = match method {
                    "tools/call" => Kind::Tools,
                    _ => Kind::Prompts,
                };
                let merged = name(top.get("name"), "params.name")?;
                let field = RoutingField::Name;
                (
                    Routing {
                        kind,
                        field,
                        merged,
                    },
                    None,
                )
            }
            "resources/read" => {
                let merged = name(top.get("uri"), "params.uri")?;
                let (kind, field) = (Kind::Resources, RoutingField::Uri);
                (
                    Routing {
                        kind,
                        field,
                        merged,
                    },
                    None,
                )
            }
            _ => {
                let reference = top.get("ref").and_then(Members::read);
                let ref_type = reference.as_ref().and_then(|r| r.get("type"));
                let (kind, field, what) = match ref_type.and_then(jsonrpc::raw_str).as_deref() {
                    Some("ref/prompt") => (Kind::Prompts, RoutingField::RefName, "params.ref.name"),
                    Some("ref/resource") => {
                        (Kind::Resources, RoutingField::RefUri, "params.ref.uri")
                    }
                    _ => {
                        let got = ref_type.map(|t| t.get());
                        return Err(format!(
                            "completion/complete needs params.ref.type \"ref/prompt\" or \
                             \"ref/resource\", got {got:?}"
                        ));
                    }
                };
                let merged = name(reference.as_ref().and_then(|r| r.get(field.member())), what)?;
                (
                    Routing {
                        kind,
                        field,
                        merged,
                    },
                    reference,
                )
            }
        };
        Ok(CallParams {
            top,
            meta,
            reference,
            routing,
            text_len: params.map_or(0, |p| p.get().len()),
        })
    }

    /// What the request is routed by.
    pub fn routing(&self) -> &Routing<'a> {
        &self.routing
    }

    /// Bytes of the params as the client sent them.
    pub fn text_len(&self) -> usize {
        self.text_len
    }

    /// The name the stateless era mirrors in `Mcp-Name`: `params.name` or `params.uri`
    /// (see [`jsonrpc::routing_name`]); `None` for `completion/complete`.
    pub fn mirrored_name(&self) -> Option<Cow<'a, str>> {
        match self.routing.field {
            RoutingField::Name | RoutingField::Uri => Some(self.routing.merged.clone()),
            RoutingField::RefName | RoutingField::RefUri => None,
        }
    }

    /// The protocol members of `_meta`, checked as [`jsonrpc::Meta::from_params`] checks them.
    pub fn protocol_meta(&self) -> Result<jsonrpc::Meta<'a>, jsonrpc::RpcError> {
        jsonrpc::Meta::from_members(self.top.get("_meta"), self.meta.as_ref())
    }

    /// The client's `_meta.progressToken`, as it sent it.
    pub fn progress_token(&self) -> Option<&'a RawValue> {
        self.meta.as_ref()?.get(META_PROGRESS_TOKEN)
    }

    /// Appends the params for the upstream (see the module doc).
    pub fn write(&self, out: &mut Vec<u8>, rewrite: &Rewrite<'_>) {
        let field = self.routing.field;
        let mut first = true;
        let mut meta_written = false;
        out.push(b'{');
        for (key, value) in self.top.iter() {
            if key == "_meta" {
                meta_written = true;
                if let Some(meta) = &self.meta {
                    self.write_meta(out, Some(meta), rewrite, &mut first);
                    continue;
                }
            }
            member_key(out, key, &mut first);
            match (&self.reference, key) {
                (None, _) if key == field.member() => write_json_str(out, rewrite.original),
                (Some(reference), "ref") => {
                    write_replacing(out, reference, field.member(), rewrite.original)
                }
                _ => out.extend_from_slice(value.get().as_bytes()),
            }
        }
        if !meta_written {
            self.write_meta(out, None, rewrite, &mut first);
        }
        out.push(b'}');
    }

    /// `"_meta":{…}` as the upstream gets it; nothing when it would be empty.
    fn write_meta(
        &self,
        out: &mut Vec<u8>,
        meta: Option<&Members<'_>>,
        rewrite: &Rewrite<'_>,
        first: &mut bool,
    ) {
        let replaced = |key: &str| {
            key == META_PROGRESS_TOKEN
                || key == META_PROTOCOL_VERSION
                || key == META_CLIENT_INFO
                || (key == META_LOG_LEVEL && rewrite.log_level.is_some())
                || (key == META_CLIENT_CAPABILITIES && rewrite.client_capabilities.is_some())
        };
        let kept = meta.map_or(0, |m| m.iter().filter(|(k, _)| !replaced(k)).count());
        let added = rewrite.progress.is_some()
            || rewrite.log_level.is_some()
            || rewrite.client_capabilities.is_some()
            || rewrite.stateless;
        if kept == 0 && !added {
            return;
        }
        member_key(out, "_meta", first);
        out.push(b'{');
        let mut inner_first = true;
        let mut capabilities = false;
        for (key, value) in meta.iter().flat_map(|m| m.iter()) {
            if replaced(key) {
                continue;
            }
            capabilities |= key == META_CLIENT_CAPABILITIES;
            member_key(out, key, &mut inner_first);
            out.extend_from_slice(value.get().as_bytes());
        }
        if let Some(id) = rewrite.progress {
            member_key(out, META_PROGRESS_TOKEN, &mut inner_first);
            push_decimal(out, id.0);
        }
        if let Some(level) = rewrite.log_level {
            member_key(out, META_LOG_LEVEL, &mut inner_first);
            write_json_str(out, level);
        }
        if let Some(declared) = rewrite.client_capabilities {
            member_key(out, META_CLIENT_CAPABILITIES, &mut inner_first);
            declared.write_json(out);
            capabilities = true;
        }
        if rewrite.stateless {
            member_key(out, META_PROTOCOL_VERSION, &mut inner_first);
            write_json_str(out, ProtocolVersion::V2026_07_28.as_str());
            if !capabilities {
                // A stateless client's own capabilities pass through, so an upstream may ask
                // it for input (an `input_required` result the client answers by retrying).
                member_key(out, META_CLIENT_CAPABILITIES, &mut inner_first);
                out.extend_from_slice(b"{}");
            }
            member_key(out, META_CLIENT_INFO, &mut inner_first);
            write_client_info(out);
        }
        out.push(b'}');
    }
}

/// `object` with member `key` given the string `value`.
fn write_replacing(out: &mut Vec<u8>, object: &Members<'_>, key: &str, value: &str) {
    let mut first = true;
    out.push(b'{');
    for (k, v) in object.iter() {
        member_key(out, k, &mut first);
        if k == key {
            write_json_str(out, value);
        } else {
            out.extend_from_slice(v.get().as_bytes());
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn raw(value: Value) -> Box<RawValue> {
        RawValue::from_string(value.to_string()).unwrap()
    }

    fn written(method: &str, params: &str, rewrite: &Rewrite<'_>) -> Value {
        let params = RawValue::from_string(params.to_owned()).unwrap();
        let read = CallParams::read(method, Some(&params)).unwrap();
        let mut out = Vec::new();
        read.write(&mut out, rewrite);
        serde_json::from_slice(&out).expect("the rewrite is valid JSON")
    }

    fn plain(original: &str) -> Rewrite<'_> {
        Rewrite {
            original,
            progress: None,
            log_level: None,
            client_capabilities: None,
            stateless: false,
        }
    }

    #[test]
    fn routing_names_come_from_the_member_each_method_names() {
        let read = |method: &str, params: Value| {
            let params = raw(params);
            let read = CallParams::read(method, Some(&params)).map(|p| {
                let r = p.routing();
                (r.kind, r.field, r.merged.to_string())
            });
            read
        };
        assert_eq!(
            read("tools/call", json!({"name": "a__x"})),
            Ok((Kind::Tools, RoutingField::Name, "a__x".into()))
        );
        assert_eq!(
            read("resources/read", json!({"uri": "f://x"})),
            Ok((Kind::Resources, RoutingField::Uri, "f://x".into()))
        );
        let completion = json!({"ref": {"type": "ref/prompt", "name": "a__greet"}});
        assert_eq!(
            read("completion/complete", completion),
            Ok((Kind::Prompts, RoutingField::RefName, "a__greet".into()))
        );
        assert!(read("tools/call", json!({"name": 3})).is_err());
        assert!(read("tools/call", json!(["name"])).is_err());
        assert!(read("completion/complete", json!({"ref": {}})).is_err());
        assert!(read(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt"}})
        )
        .is_err());
        assert!(CallParams::read("tools/call", None).is_err());
    }

    #[test]
    fn the_routing_name_is_replaced_and_every_other_member_copied_as_sent() {
        let params = r#"{"name":"a__x","arguments":{"text":"hi  there","n":1.50}}"#;
        let params = RawValue::from_string(params.to_owned()).unwrap();
        let read = CallParams::read("tools/call", Some(&params)).unwrap();
        let mut out = Vec::new();
        read.write(&mut out, &plain("x"));
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"name":"x","arguments":{"text":"hi  there","n":1.50}}"#
        );
        let completion = r#"{"ref":{"type":"ref/resource","uri":"a__f://x"},"argument":{}}"#;
        let out = written("completion/complete", completion, &plain("f://x"));
        assert_eq!(out["ref"], json!({"type": "ref/resource", "uri": "f://x"}));
        assert_eq!(out["argument"], json!({}));
    }

    #[test]
    fn a_repeated_key_counts_once_with_its_last_value() {
        let params = r#"{"name":"a__old","name":"a__x","arguments":{},"arguments":{"k":2}}"#;
        let params = RawValue::from_string(params.to_owned()).unwrap();
        let read = CallParams::read("tools/call", Some(&params)).unwrap();
        assert_eq!(read.routing().merged, "a__x");
        let mut out = Vec::new();
        read.write(&mut out, &plain("x"));
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"name":"x","arguments":{"k":2}}"#
        );
        // Past the pairwise bound, the hash map finds repeats the same way.
        let many: String = (0..40).map(|i| format!(r#""k{}":{i},"#, i % 20)).collect();
        let params = format!(r#"{{{many}"name":"a__x"}}"#);
        let out = written("tools/call", &params, &plain("x"));
        let object = out.as_object().unwrap();
        assert_eq!(object.len(), 21);
        assert_eq!(object["k3"], 23);
    }

    #[test]
    fn keys_with_escapes_are_read_decoded_and_written_escaped() {
        let params = r#"{"na\u006de":"a__x","q\"k":1}"#;
        let out = written("tools/call", params, &plain("x\ty"));
        assert_eq!(out, json!({"name": "x\ty", "q\"k": 1}));
    }

    #[test]
    fn the_progress_token_is_taken_and_replaced_by_the_upstream_id() {
        let params = json!({"name": "a__x", "_meta": {"progressToken": "abc",
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "c"}, "trace": 5}})
        .to_string();
        let raw_params = RawValue::from_string(params.clone()).unwrap();
        let read = CallParams::read("tools/call", Some(&raw_params)).unwrap();
        assert_eq!(read.progress_token().unwrap().get(), "\"abc\"");
        let rewrite = Rewrite {
            progress: Some(UpstreamRequestId(41)),
            ..plain("x")
        };
        let out = written("tools/call", &params, &rewrite);
        assert_eq!(out["_meta"], json!({"trace": 5, "progressToken": 41}));
    }

    #[test]
    fn meta_left_empty_is_dropped_and_meta_needed_is_added() {
        let only_protocol = json!({"name": "a__x", "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28"}})
        .to_string();
        let out = written("tools/call", &only_protocol, &plain("x"));
        assert_eq!(out, json!({"name": "x"}));
        let rewrite = Rewrite {
            log_level: Some("debug"),
            ..plain("x")
        };
        let out = written("tools/call", r#"{"name":"a__x"}"#, &rewrite);
        assert_eq!(out["_meta"], json!({ META_LOG_LEVEL: "debug" }));
        // A `_meta` that is not an object is passed on as it came.
        let out = written("tools/call", r#"{"_meta":7,"name":"a__x"}"#, &rewrite);
        assert_eq!(out, json!({"_meta": 7, "name": "x"}));
    }

    #[test]
    fn a_stateless_upstream_gets_the_gateways_protocol_members() {
        let params = json!({"name": "a__x", "_meta": {"progressToken": 7,
            "io.modelcontextprotocol/clientInfo": {"name": "client"}}})
        .to_string();
        let rewrite = Rewrite {
            progress: Some(UpstreamRequestId(9)),
            stateless: true,
            ..plain("x")
        };
        let out = written("tools/call", &params, &rewrite);
        let meta = &out["_meta"];
        assert_eq!(meta[META_PROGRESS_TOKEN], 9);
        assert_eq!(meta[META_PROTOCOL_VERSION], "2026-07-28");
        assert_eq!(meta[META_CLIENT_CAPABILITIES], json!({}));
        assert_eq!(meta[META_CLIENT_INFO]["name"], "shardgate");
        // The client's own capabilities stay.
        let params = json!({"name": "a__x", "_meta": {
            META_CLIENT_CAPABILITIES: {"elicitation": {}}}})
        .to_string();
        let out = written("tools/call", &params, &rewrite);
        assert_eq!(
            out["_meta"][META_CLIENT_CAPABILITIES],
            json!({"elicitation": {}})
        );
    }
}
