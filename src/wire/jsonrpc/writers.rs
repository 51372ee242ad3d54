//! Writers of JSON-RPC messages: results, errors, requests and notifications, appended to a
//! caller's buffer (`write_*`) or as a new one (`*_bytes`), without building a
//! `serde_json::Value` tree.

use serde_json::value::RawValue;

use crate::wire::members::{member_key, write_json_str, Members};

/// Appends `{"jsonrpc":"2.0","id":<id>,"result":<result>}`.
pub fn write_result(out: &mut Vec<u8>, id: &RawValue, result: &RawValue) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.get().as_bytes());
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(result.get().as_bytes());
    out.push(b'}');
}

/// A result response as a new buffer.
pub fn result_bytes(id: &RawValue, result: &RawValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + id.get().len() + result.get().len());
    write_result(&mut out, id, result);
    out
}

/// Appends a result response for a session-era client: like [`write_result`], but a
/// stateless-era upstream's top-level `"resultType":"complete"` is left out (that era does not
/// have the member; every other member is copied as it came). `Err` (nothing written) names the
/// `resultType` when it asks for something a session-era client cannot give
/// (`input_required`).
pub fn write_session_era_result(
    out: &mut Vec<u8>,
    id: &RawValue,
    result: &RawValue,
) -> Result<(), String> {
    let members = Members::read(result);
    let result_type = members.as_ref().and_then(|m| m.get("resultType"));
    match (result_type.map(RawValue::get), members) {
        (Some("\"complete\""), Some(members)) => {
            out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
            out.extend_from_slice(id.get().as_bytes());
            out.extend_from_slice(b",\"result\":{");
            let mut first = true;
            for (key, value) in members.iter().filter(|(key, _)| *key != "resultType") {
                member_key(out, key, &mut first);
                out.extend_from_slice(value.get().as_bytes());
            }
            out.extend_from_slice(b"}}");
            Ok(())
        }
        (Some(other), _) => Err(format!(
            "the upstream answered with resultType {other}, which needs a client of protocol \
             version 2026-07-28"
        )),
        (None, _) => {
            write_result(out, id, result);
            Ok(())
        }
    }
}

/// Appends a result response for a stateless-era (2026-07-28) client: like [`write_result`], but
/// when `result` is an object without a top-level `resultType` (an answer from a session-era
/// upstream, or from the built-in server) it adds `"resultType":"complete"` as the first member.
/// A result that already has one is copied unchanged.
pub fn write_complete_result(out: &mut Vec<u8>, id: &RawValue, result: &RawValue) {
    let text = result.get();
    // A result that is not an object cannot take a member; it is copied as it is.
    let has_result_type = Members::read(result).is_none_or(|m| m.get("resultType").is_some());
    let Some(members) = text.strip_prefix('{').filter(|_| !has_result_type) else {
        write_result(out, id, result);
        return;
    };
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.get().as_bytes());
    out.extend_from_slice(b",\"result\":{\"resultType\":\"complete\"");
    if !members.trim_start().starts_with('}') {
        out.push(b',');
    }
    out.extend_from_slice(members.as_bytes());
    out.push(b'}');
}

/// Appends `{"jsonrpc":"2.0","id":<id or null>,"error":{"code":..,"message":..,"data":..}}`.
pub fn write_error(
    out: &mut Vec<u8>,
    id: Option<&RawValue>,
    code: i32,
    message: &str,
    data: Option<&RawValue>,
) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.map_or("null", RawValue::get).as_bytes());
    out.extend_from_slice(b",\"error\":{\"code\":");
    out.extend_from_slice(code.to_string().as_bytes());
    out.extend_from_slice(b",\"message\":");
    write_json_str(out, message);
    if let Some(data) = data {
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(data.get().as_bytes());
    }
    out.extend_from_slice(b"}}");
}

/// An error response as a new buffer.
pub fn error_bytes(
    id: Option<&RawValue>,
    code: i32,
    message: &str,
    data: Option<&RawValue>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + message.len());
    write_error(&mut out, id, code, message, data);
    out
}

/// Appends `{"jsonrpc":"2.0","id":<id>,"method":<method>,"params":<params>}`: `id` and
/// `params` JSON text (`params` omitted if `None`).
pub fn write_request(out: &mut Vec<u8>, id: &[u8], method: &str, params: Option<&[u8]>) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id);
    out.extend_from_slice(b",\"method\":");
    write_json_str(out, method);
    if let Some(params) = params {
        out.extend_from_slice(b",\"params\":");
        out.extend_from_slice(params);
    }
    out.push(b'}');
}

/// A request as a new buffer.
pub fn request_bytes(id: &[u8], method: &str, params: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + id.len() + method.len() + params.map_or(0, <[u8]>::len));
    write_request(&mut out, id, method, params);
    out
}

/// A request whose `params` are a `serde_json::Value` (the gateway's own requests).
pub fn request_value_bytes(id: &[u8], method: &str, params: Option<&serde_json::Value>) -> Vec<u8> {
    let params = params.map(value_to_raw);
    request_bytes(id, method, params.as_ref().map(|p| p.get().as_bytes()))
}

/// Appends `{"jsonrpc":"2.0","method":<method>,"params":<params>}` (`params` omitted if `None`).
pub fn write_notification(out: &mut Vec<u8>, method: &str, params: Option<&RawValue>) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"method\":");
    write_json_str(out, method);
    if let Some(params) = params {
        out.extend_from_slice(b",\"params\":");
        out.extend_from_slice(params.get().as_bytes());
    }
    out.push(b'}');
}

/// A notification as a new buffer.
pub fn notification_bytes(method: &str, params: Option<&RawValue>) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + method.len() + params.map_or(0, |p| p.get().len()));
    write_notification(&mut out, method, params);
    out
}

/// `value` as JSON text. A `Value` always prints as valid JSON (it holds no NaN or infinity,
/// its keys are strings), so the check `RawValue` makes cannot fail.
pub fn value_to_raw(value: &serde_json::Value) -> Box<RawValue> {
    RawValue::from_string(value.to_string()).expect("a Value prints as valid JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::jsonrpc::test_support::{json, raw, DEPTH_MAX};
    use crate::wire::jsonrpc::{parse, Message, INVALID_PARAMS};

    #[test]
    fn result_bytes_is_a_valid_response() {
        let out = result_bytes(&raw("3"), &raw(r#"{"tools":[]}"#));
        assert_eq!(out, br#"{"jsonrpc":"2.0","id":3,"result":{"tools":[]}}"#);
        let Ok(Message::Response { .. }) = parse(&out, DEPTH_MAX) else {
            panic!("writer output does not parse");
        };
    }

    #[test]
    fn error_bytes_escapes_message_and_writes_null_id() {
        let message = "bad \"x\"\\\n\t\u{1}é";
        let out = error_bytes(None, INVALID_PARAMS, message, Some(&raw(r#"{"k":1}"#)));
        let v = json(&out);
        assert_eq!(v["jsonrpc"], "2.0");
        assert!(v["id"].is_null());
        assert_eq!(v["error"]["code"], -32602);
        assert_eq!(v["error"]["message"], message);
        assert_eq!(v["error"]["data"]["k"], 1);
        let no_data = json(&error_bytes(Some(&raw("9")), -1, "m", None));
        assert!(no_data["error"].get("data").is_none());
        assert_eq!(no_data["id"], 9);
    }

    #[test]
    fn notification_bytes_omits_absent_params() {
        let out = notification_bytes("notifications/initialized", None);
        assert_eq!(
            out,
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
        );
        let out = notification_bytes("notifications/progress", Some(&raw(r#"{"p":1}"#)));
        let Ok(Message::Notification { method, params }) = parse(&out, DEPTH_MAX) else {
            panic!("writer output does not parse");
        };
        assert_eq!(method, "notifications/progress");
        assert_eq!(params.unwrap().get(), r#"{"p":1}"#);
    }

    #[test]
    fn session_era_results_lose_a_complete_result_type_and_refuse_other_ones() {
        let id = raw("1");
        let written = |result: &str| {
            let mut out = Vec::new();
            write_session_era_result(&mut out, &id, &raw(result)).map(|()| out)
        };
        let plain = written(r#"{"content":[ ]}"#).unwrap();
        assert_eq!(
            plain,
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[ ]}}"#
        );
        let complete = written(r#"{"resultType":"complete","content":[],"n":1.50}"#).unwrap();
        assert_eq!(
            complete,
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"n":1.50}}"#
        );
        let nested = written(r#"{"inner":{"resultType":"input_required"}}"#).unwrap();
        assert_eq!(
            json(&nested)["result"]["inner"]["resultType"],
            "input_required"
        );
        let input = written(r#"{"resultType":"input_required"}"#);
        assert!(input.unwrap_err().contains("input_required"));
    }

    #[test]
    fn write_complete_result_adds_result_type_only_when_missing() {
        let id = raw("1");
        let mut out = Vec::new();
        write_complete_result(&mut out, &id, &raw(r#"{"tools":[]}"#));
        assert_eq!(json(&out)["result"]["resultType"], "complete");
        assert_eq!(json(&out)["result"]["tools"], serde_json::json!([]));

        out.clear();
        write_complete_result(&mut out, &id, &raw("{ }"));
        assert_eq!(
            json(&out)["result"],
            serde_json::json!({"resultType": "complete"})
        );

        out.clear();
        let input_required = raw(r#"{"resultType":"input_required","inputRequests":{}}"#);
        write_complete_result(&mut out, &id, &input_required);
        assert_eq!(json(&out)["result"]["resultType"], "input_required");

        out.clear();
        write_complete_result(&mut out, &id, &raw(r#"{"nested":{"resultType":"x"}}"#));
        assert_eq!(json(&out)["result"]["resultType"], "complete");
    }
}
