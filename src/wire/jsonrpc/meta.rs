//! The protocol members of a request's `params._meta` (progress token, and for 2026-07-28 the
//! protocol version, client capabilities, client info and log level), read and checked for
//! type; and the name a request is routed by.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::codes::RpcError;
use super::envelope::{check_id, json_kind, preview, raw_str};
use crate::wire::members::Members;

/// `_meta` key carrying the request's protocol version (2026-07-28, required).
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key carrying the request's client capabilities (2026-07-28, required).
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key carrying the client's name and version (2026-07-28, should).
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key carrying the minimum log level for this request (2026-07-28, optional).
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// `_meta` key opting a request into progress notifications (every era).
pub const META_PROGRESS_TOKEN: &str = "progressToken";

/// Log levels accepted in `_meta["io.modelcontextprotocol/logLevel"]` (RFC 5424 names).
pub const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// The protocol fields of a request's `params._meta`, validated for type, still raw where the
/// gateway only forwards them.
#[derive(Debug, Default)]
pub struct Meta<'a> {
    /// `progressToken`: a string or integer.
    pub progress_token: Option<&'a RawValue>,
    /// `io.modelcontextprotocol/protocolVersion` (not checked against the supported list here).
    pub protocol_version: Option<Cow<'a, str>>,
    /// `io.modelcontextprotocol/clientCapabilities`: an object.
    pub client_capabilities: Option<&'a RawValue>,
    /// `io.modelcontextprotocol/clientInfo`: an object.
    pub client_info: Option<&'a RawValue>,
    /// `io.modelcontextprotocol/logLevel`: one of [`LOG_LEVELS`].
    pub log_level: Option<&'static str>,
}

/// `params` as members; `None` without params, -32602 when they are not an object.
fn params_members(params: Option<&RawValue>) -> Result<Option<Members<'_>>, RpcError> {
    let Some(params) = params else {
        return Ok(None);
    };
    let not_object = || {
        RpcError::invalid_params(format!(
            "params must be an object, got {}",
            json_kind(params)
        ))
    };
    Members::read(params).ok_or_else(not_object).map(Some)
}

impl<'a> Meta<'a> {
    /// Reads `params._meta`. No `params` or no `_meta` gives an empty `Meta`; whether a field is
    /// required depends on the era and is the caller's decision. Errors (-32602) name the key:
    /// `_meta` not an object, `protocolVersion` not a string, capabilities or client info not
    /// objects, a progress token that is not a string or integer, an unknown log level. A key
    /// that repeats counts with its last value, as [`Members`] reads it.
    pub fn from_params(params: Option<&'a RawValue>) -> Result<Meta<'a>, RpcError> {
        Self::of_params(params_members(params)?.as_ref())
    }

    /// [`Meta::from_params`] and [`routing_name`] of `method` from one read of `params`.
    pub fn with_routing_name(
        method: &str,
        params: Option<&'a RawValue>,
    ) -> Result<(Meta<'a>, Option<Cow<'a, str>>), RpcError> {
        let params = params_members(params)?;
        let name = params.as_ref().and_then(|p| routing_member(method, p));
        Ok((Self::of_params(params.as_ref())?, name))
    }

    fn of_params(params: Option<&Members<'a>>) -> Result<Meta<'a>, RpcError> {
        let meta = params.and_then(|p| p.get("_meta"));
        Self::from_members(meta, meta.and_then(Members::read).as_ref())
    }

    /// [`Meta::from_params`] from members already read: `meta` is `params._meta` as sent,
    /// `members` its members when it is an object.
    pub fn from_members(
        meta: Option<&'a RawValue>,
        members: Option<&Members<'a>>,
    ) -> Result<Meta<'a>, RpcError> {
        let Some(meta) = meta else {
            return Ok(Meta::default());
        };
        check_meta_object(meta)?;
        let get = |key: &str| members.and_then(|m| m.get(key));
        Ok(Meta {
            progress_token: get(META_PROGRESS_TOKEN)
                .map(check_progress_token)
                .transpose()?,
            protocol_version: get(META_PROTOCOL_VERSION).map(meta_string).transpose()?,
            client_capabilities: get(META_CLIENT_CAPABILITIES)
                .map(|v| meta_object(META_CLIENT_CAPABILITIES, v))
                .transpose()?,
            client_info: get(META_CLIENT_INFO)
                .map(|v| meta_object(META_CLIENT_INFO, v))
                .transpose()?,
            log_level: get(META_LOG_LEVEL).map(check_log_level).transpose()?,
        })
    }
}

fn check_meta_object(meta: &RawValue) -> Result<(), RpcError> {
    if json_kind(meta) == "object" {
        return Ok(());
    }
    Err(RpcError::invalid_params(format!(
        "params._meta must be an object, got {}",
        json_kind(meta)
    )))
}

fn meta_type_error(key: &str, expected: &str, value: &RawValue) -> RpcError {
    RpcError::invalid_params(format!(
        "params._meta[\"{key}\"] must be {expected}, got {} {}",
        json_kind(value),
        preview(value)
    ))
}

fn check_progress_token(token: &RawValue) -> Result<&RawValue, RpcError> {
    match check_id(token) {
        Ok(()) => Ok(token),
        Err(_) => Err(meta_type_error(
            META_PROGRESS_TOKEN,
            "a string or integer",
            token,
        )),
    }
}

fn meta_string(value: &RawValue) -> Result<Cow<'_, str>, RpcError> {
    raw_str(value).ok_or_else(|| meta_type_error(META_PROTOCOL_VERSION, "a string", value))
}

fn meta_object<'v>(key: &str, value: &'v RawValue) -> Result<&'v RawValue, RpcError> {
    if json_kind(value) == "object" {
        return Ok(value);
    }
    Err(meta_type_error(key, "an object", value))
}

fn check_log_level(value: &RawValue) -> Result<&'static str, RpcError> {
    let level = raw_str(value).and_then(|s| LOG_LEVELS.into_iter().find(|l| *l == s));
    level.ok_or_else(|| {
        meta_type_error(
            META_LOG_LEVEL,
            "one of debug, info, notice, warning, error, critical, alert, emergency",
            value,
        )
    })
}

/// The name a request is routed by, as the stateless era mirrors it in `Mcp-Name`:
/// `params.name` for `tools/call` and `prompts/get`, `params.uri` for `resources/read`.
/// `None` for other methods, or when the member is missing or not a string.
pub fn routing_name<'a>(method: &str, params: Option<&'a RawValue>) -> Option<Cow<'a, str>> {
    routing_member(method, &params_members(params).ok()??)
}

fn routing_member<'a>(method: &str, params: &Members<'a>) -> Option<Cow<'a, str>> {
    let member = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return None,
    };
    params.get(member).and_then(raw_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::jsonrpc::test_support::raw;
    use crate::wire::jsonrpc::INVALID_PARAMS;

    #[test]
    fn meta_reads_protocol_fields() {
        let params = raw(r#"{"name":"echo","_meta":{"progressToken":"p1",
            "io.modelcontextprotocol/protocolVersion":"2026-07-28",
            "io.modelcontextprotocol/clientCapabilities":{"sampling":{}},
            "io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"},
            "io.modelcontextprotocol/logLevel":"warning","com.example/x":[1]}}"#);
        let meta = Meta::from_params(Some(&params)).unwrap();
        assert_eq!(meta.progress_token.unwrap().get(), r#""p1""#);
        assert_eq!(meta.protocol_version.as_deref(), Some("2026-07-28"));
        assert_eq!(
            meta.client_capabilities.unwrap().get(),
            r#"{"sampling":{}}"#
        );
        assert_eq!(
            meta.client_info.unwrap().get(),
            r#"{"name":"c","version":"1"}"#
        );
        assert_eq!(meta.log_level, Some("warning"));
    }

    #[test]
    fn meta_is_empty_without_params_or_meta() {
        let meta = Meta::from_params(None).unwrap();
        assert!(meta.protocol_version.is_none() && meta.client_capabilities.is_none());
        let params = raw(r#"{"cursor":"c"}"#);
        let meta = Meta::from_params(Some(&params)).unwrap();
        assert!(meta.progress_token.is_none() && meta.log_level.is_none());
    }

    #[test]
    fn meta_refuses_wrong_types_naming_the_key() {
        let cases = [
            (
                r#"{"_meta":[]}"#,
                "params._meta must be an object, got array",
            ),
            (
                r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":20260728}}"#,
                "protocolVersion\"] must be a string, got number 20260728",
            ),
            (
                r#"{"_meta":{"io.modelcontextprotocol/clientCapabilities":null}}"#,
                "clientCapabilities\"] must be an object, got null",
            ),
            (
                r#"{"_meta":{"progressToken":1.5}}"#,
                "progressToken\"] must be a string or integer, got number 1.5",
            ),
            (
                r#"{"_meta":{"io.modelcontextprotocol/logLevel":"loud"}}"#,
                "logLevel\"] must be one of debug",
            ),
        ];
        for (params, expected) in cases {
            let err = Meta::from_params(Some(&raw(params))).unwrap_err();
            assert_eq!(err.code, INVALID_PARAMS);
            assert!(err.message.contains(expected), "{params}: {}", err.message);
        }
    }

    #[test]
    fn routing_name_reads_name_or_uri_by_method() {
        let params = raw(r#"{"name":"echo","uri":"demo://readme","arguments":{"name":"x"}}"#);
        assert_eq!(
            routing_name("tools/call", Some(&params)).as_deref(),
            Some("echo")
        );
        assert_eq!(
            routing_name("prompts/get", Some(&params)).as_deref(),
            Some("echo")
        );
        assert_eq!(
            routing_name("resources/read", Some(&params)).as_deref(),
            Some("demo://readme")
        );
        assert_eq!(routing_name("tools/list", Some(&params)), None);
        assert_eq!(routing_name("tools/call", None), None);
        assert_eq!(
            routing_name("tools/call", Some(&raw(r#"{"name":3}"#))),
            None
        );
        let escaped = raw(r#"{"name":"a\u00e9"}"#);
        assert_eq!(
            routing_name("tools/call", Some(&escaped)).as_deref(),
            Some("aé")
        );
    }
}
