//! The built-in `demo` upstream: a small MCP server answered in-process on each shard, so a fresh
//! install serves something without any server behind it.
//!
//! It offers three tools (`echo {text}`, `add {a, b}`, `sleep {ms}`), one text resource
//! (`demo://readme`), no resource templates and one prompt (`greet {name}`). It does not offer
//! completions, subscriptions or logging, and its lists never change (`listChanged: false`).
//!
//! State and ownership: each shard builds its own [`Demo`] from the config at startup. A `Demo` is
//! immutable: the list and read results are serialized once per protocol version in
//! [`Demo::new`] and cloned per request, so answering a list costs one copy and no JSON work.
//!
//! Limits: `sleep` waits at most `sleep_ms_max` milliseconds (config key
//! `upstreams[].sleep_ms_max`); a longer request is a tool execution error, not a wait.
//! `sleep` waits on the shard's deadline wheel (`support::deadline`), so it may answer up to one
//! tick late, never early. Dropping the future returned by [`Demo::handle`] (cancellation,
//! client gone, drain deadline) drops the wait with it.
//!
//! Errors follow the 2025-11-25 and 2026-07-28 specifications:
//! - protocol errors (JSON-RPC): unknown method -32601; unknown tool or prompt, `name`/`uri` not a
//!   string, `arguments` not an object, a cursor (this server never issues one), a missing or
//!   non-string prompt argument -32602; unknown resource -32002 in the session era, -32602 in
//!   2026-07-28 (which forbids -32002), with `data: {"uri": ...}`.
//! - tool execution errors (a result with `isError: true`, so a model can correct itself): a
//!   missing, mistyped or unknown tool argument, and `sleep` over `sleep_ms_max`, each naming the
//!   argument.
//!
//! Era differences handled here: `title` (tools, resources, prompts), `outputSchema` and
//! `structuredContent` appear from 2025-06-18 on (2025-03-26 carries the title in
//! `annotations.title` only); in 2026-07-28 the cacheable results (the four lists and
//! `resources/read`) carry `ttlMs` and `cacheScope`. Results never carry `resultType`: the router
//! adds `"resultType":"complete"` for stateless clients (`jsonrpc::write_complete_result`), the
//! same way it does for answers from session-era upstreams.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::{to_raw_value, RawValue};
use serde_json::{json, Number, Value};

use crate::support::deadline;
use crate::wire::jsonrpc::{
    json_kind, preview, raw_str, RpcError, INTERNAL_ERROR, INVALID_PARAMS, RESOURCE_NOT_FOUND,
};
use crate::wire::version::ProtocolVersion;

/// How long a 2026-07-28 client may consider the lists and the readme fresh: 5 minutes. They
/// change only when a config reload changes `sleep_ms_max`; a short TTL bounds that staleness.
pub const CATALOGUE_TTL_MS: u64 = 300_000;

/// The one resource this server offers.
pub const README_URI: &str = "demo://readme";

const README_TEXT: &str = "shardgate demo server\n\n\
This server runs inside the gateway itself, on every shard. It exists so that a fresh \
install answers MCP requests before any real server is configured.\n\n\
Tools: echo returns its text, add returns the sum of two numbers, sleep waits the given \
number of milliseconds (at most upstreams[].sleep_ms_max).\n\
Prompt: greet asks for a short greeting for a name.\n";

const INSTRUCTIONS: &str = "shardgate's built-in demo server. Use echo to check the round trip, \
add to sum two numbers (the answer is also in structuredContent.sum), and sleep to wait a \
bounded number of milliseconds. Read demo://readme for an overview; the greet prompt drafts a \
greeting.";

const CAPABILITIES_JSON: &str = concat!(
    r#"{"tools":{"listChanged":false},"#,
    r#""resources":{"subscribe":false,"listChanged":false},"#,
    r#""prompts":{"listChanged":false}}"#,
);

/// The built-in demo server of one shard.
pub struct Demo {
    sleep_ms_max: u64,
    /// One per `ProtocolVersion`, indexed by its declaration order.
    catalogues: [Catalogue; ProtocolVersion::SUPPORTED.len()],
}

/// The serialized results that do not depend on the request, for one protocol version.
struct Catalogue {
    tools: Box<RawValue>,
    resources: Box<RawValue>,
    resource_templates: Box<RawValue>,
    prompts: Box<RawValue>,
    readme: Box<RawValue>,
}

/// What a tool produced: text, and for `add` the structured value it also states as JSON text.
struct ToolOutput {
    text: String,
    structured: Option<Sum>,
}

#[derive(Serialize)]
struct Sum {
    sum: Number,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CallToolResult<'a> {
    content: [TextContent<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    structured_content: Option<&'a Sum>,
    is_error: bool,
}

#[derive(Serialize)]
struct TextContent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
struct GetPromptResult<'a> {
    description: &'static str,
    messages: [PromptMessage<'a>; 1],
}

#[derive(Serialize)]
struct PromptMessage<'a> {
    role: &'static str,
    content: TextContent<'a>,
}

#[derive(Serialize)]
struct UriData<'a> {
    uri: &'a str,
}

#[derive(Deserialize, Default)]
struct ListParams<'a> {
    #[serde(borrow, default)]
    cursor: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct NamedParams<'a> {
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct ReadParams<'a> {
    #[serde(borrow, default)]
    uri: Option<&'a RawValue>,
}

/// Tool or prompt arguments by name, values raw.
type Arguments<'a> = BTreeMap<String, &'a RawValue>;

impl Demo {
    /// A demo server whose `sleep` tool waits at most `sleep_ms_max` milliseconds.
    pub fn new(sleep_ms_max: u64) -> Demo {
        let catalogues = ProtocolVersion::SUPPORTED.map(|v| Catalogue::build(v, sleep_ms_max));
        Demo {
            sleep_ms_max,
            catalogues,
        }
    }

    /// The `capabilities` object of this server (`initialize` result, `server/discover`).
    pub fn capabilities_json() -> &'static str {
        CAPABILITIES_JSON
    }

    /// The `instructions` string of this server.
    pub fn instructions() -> &'static str {
        INSTRUCTIONS
    }

    /// Answers one request. `params` is the request's `params` object, `version` the protocol
    /// version of the client it came from. Returns the `result` object (without `resultType`,
    /// see the module doc) or the JSON-RPC error to send. Must run on a glommio executor
    /// (`sleep` waits on its deadline wheel).
    pub async fn handle(
        &self,
        method: &str,
        params: Option<&RawValue>,
        version: ProtocolVersion,
    ) -> Result<Box<RawValue>, RpcError> {
        let catalogue = &self.catalogues[version as usize];
        match method {
            "tools/list" => list(method, params, &catalogue.tools),
            "resources/list" => list(method, params, &catalogue.resources),
            "resources/templates/list" => list(method, params, &catalogue.resource_templates),
            "prompts/list" => list(method, params, &catalogue.prompts),
            "tools/call" => self.call_tool(params, version).await,
            "resources/read" => read_resource(params, catalogue, version),
            "prompts/get" => get_prompt(params),
            "ping" if !version.is_stateless() => encode("ping", &json!({})),
            _ => Err(RpcError::method_not_found(method)),
        }
    }

    async fn call_tool(
        &self,
        params: Option<&RawValue>,
        version: ProtocolVersion,
    ) -> Result<Box<RawValue>, RpcError> {
        let params: NamedParams<'_> = read_params("tools/call", params)?;
        let name = required_str("tools/call", "name", params.name)?;
        let args = read_arguments("tools/call", params.arguments)?;
        let outcome = match &*name {
            "echo" => echo(&args),
            "add" => add(&args),
            "sleep" => self.sleep(&args).await,
            _ => return Err(RpcError::invalid_params(format!("unknown tool: {name}"))),
        };
        let (text, structured, is_error) = match &outcome {
            Ok(output) => (output.text.as_str(), output.structured.as_ref(), false),
            Err(message) => (message.as_str(), None, true),
        };
        let result = CallToolResult {
            content: [TextContent { kind: "text", text }],
            structured_content: structured.filter(|_| version >= ProtocolVersion::V2025_06_18),
            is_error,
        };
        encode("tools/call", &result)
    }

    async fn sleep(&self, args: &Arguments<'_>) -> Result<ToolOutput, String> {
        only_known(args, "tool sleep", &["ms"])?;
        let raw = required_arg(args, "tool sleep", "ms", "a non-negative integer")?;
        let Ok(ms) = raw.get().parse::<u64>() else {
            return Err(format!(
                "argument \"ms\" must be a non-negative integer, got {} {}",
                json_kind(raw),
                preview(raw)
            ));
        };
        if ms > self.sleep_ms_max {
            return Err(format!(
                "argument \"ms\" is {ms}, over sleep_ms_max {}: ask for less, or raise \
                 upstreams[].sleep_ms_max in the gateway config",
                self.sleep_ms_max
            ));
        }
        deadline::sleep(Duration::from_millis(ms)).await;
        Ok(plain(format!("slept {ms} ms")))
    }
}

impl Catalogue {
    fn build(version: ProtocolVersion, sleep_ms_max: u64) -> Catalogue {
        let titled = version >= ProtocolVersion::V2025_06_18;
        let cacheable = |mut list: Value| {
            if version.is_stateless() {
                list["ttlMs"] = json!(CATALOGUE_TTL_MS);
                list["cacheScope"] = json!("public");
            }
            startup_raw(&list)
        };
        let tools = tool_definitions(sleep_ms_max)
            .into_iter()
            .map(|tool| shape_tool(tool, titled))
            .collect::<Vec<_>>();
        let mut readme = json!({
            "uri": README_URI,
            "name": "readme",
            "title": "shardgate demo readme",
            "description": "What the built-in demo server offers",
            "mimeType": "text/plain",
        });
        let mut greet = json!({
            "name": "greet",
            "title": "Greet someone",
            "description": "Drafts a short, friendly greeting for a person",
            "arguments": [
                {"name": "name", "description": "Who to greet", "required": true}
            ],
        });
        if !titled {
            drop_member(&mut readme, "title");
            drop_member(&mut greet, "title");
        }
        let contents = json!([{"uri": README_URI, "mimeType": "text/plain", "text": README_TEXT}]);
        Catalogue {
            tools: cacheable(json!({ "tools": tools })),
            resources: cacheable(json!({ "resources": [readme] })),
            resource_templates: cacheable(json!({ "resourceTemplates": [] })),
            prompts: cacheable(json!({ "prompts": [greet] })),
            readme: cacheable(json!({ "contents": contents })),
        }
    }
}

/// The three tools in their newest shape (2025-06-18 and later), in a fixed order.
fn tool_definitions(sleep_ms_max: u64) -> [Value; 3] {
    let safe = |title: &str| {
        json!({
            "title": title,
            "readOnlyHint": true,
            "destructiveHint": false,
            "idempotentHint": true,
            "openWorldHint": false,
        })
    };
    [
        json!({
            "name": "echo",
            "title": "Echo",
            "description": "Returns the given text unchanged",
            "inputSchema": object_schema(json!({
                "text": {"type": "string", "description": "Text to return"}
            }), &["text"]),
            "annotations": safe("Echo"),
        }),
        json!({
            "name": "add",
            "title": "Add two numbers",
            "description": "Returns a + b, as text and as structuredContent.sum",
            "inputSchema": object_schema(json!({
                "a": {"type": "number", "description": "First addend"},
                "b": {"type": "number", "description": "Second addend"}
            }), &["a", "b"]),
            "outputSchema": object_schema(json!({
                "sum": {"type": "number", "description": "a + b"}
            }), &["sum"]),
            "annotations": safe("Add two numbers"),
        }),
        json!({
            "name": "sleep",
            "title": "Sleep",
            "description": format!(
                "Waits ms milliseconds, then answers; ms is at most {sleep_ms_max}"
            ),
            "inputSchema": object_schema(json!({
                "ms": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": sleep_ms_max,
                    "description": "How long to wait, in milliseconds"
                }
            }), &["ms"]),
            "annotations": safe("Sleep"),
        }),
    ]
}

fn object_schema(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// Removes what 2025-03-26 does not define: the top-level `title` and `outputSchema`.
fn shape_tool(mut tool: Value, titled: bool) -> Value {
    if !titled {
        drop_member(&mut tool, "title");
        drop_member(&mut tool, "outputSchema");
    }
    tool
}

fn drop_member(value: &mut Value, key: &str) {
    if let Some(object) = value.as_object_mut() {
        object.remove(key);
    }
}

/// Serializes a catalogue value built at startup from literals.
fn startup_raw(value: &Value) -> Box<RawValue> {
    to_raw_value(value).expect("a json! value built from literals always serializes")
}

/// Serializes a per-request result; a failure is an internal error, never a panic.
fn encode<T: Serialize>(method: &str, result: &T) -> Result<Box<RawValue>, RpcError> {
    to_raw_value(result).map_err(|e| {
        RpcError::new(
            INTERNAL_ERROR,
            format!("could not encode {method} result: {e}"),
        )
    })
}

fn read_params<'a, T: Deserialize<'a> + Default>(
    method: &str,
    params: Option<&'a RawValue>,
) -> Result<T, RpcError> {
    let Some(params) = params else {
        return Ok(T::default());
    };
    if json_kind(params) != "object" {
        return Err(RpcError::invalid_params(format!(
            "{method} params must be an object, got {}",
            json_kind(params)
        )));
    }
    serde_json::from_str(params.get())
        .map_err(|e| RpcError::invalid_params(format!("invalid {method} params: {e}")))
}

fn required_str<'a>(
    method: &str,
    member: &str,
    value: Option<&'a RawValue>,
) -> Result<Cow<'a, str>, RpcError> {
    let Some(value) = value else {
        return Err(RpcError::invalid_params(format!(
            "{method} params.{member} is missing; it must be a string"
        )));
    };
    raw_str(value).ok_or_else(|| {
        RpcError::invalid_params(format!(
            "{method} params.{member} must be a string, got {} {}",
            json_kind(value),
            preview(value)
        ))
    })
}

/// `arguments` of `tools/call` or `prompts/get`: absent means none; anything but an object fails
/// the request schema (a protocol error, -32602).
fn read_arguments<'a>(
    method: &str,
    arguments: Option<&'a RawValue>,
) -> Result<Arguments<'a>, RpcError> {
    let Some(arguments) = arguments else {
        return Ok(Arguments::new());
    };
    if json_kind(arguments) != "object" {
        return Err(RpcError::invalid_params(format!(
            "{method} params.arguments must be an object, got {}",
            json_kind(arguments)
        )));
    }
    serde_json::from_str(arguments.get())
        .map_err(|e| RpcError::invalid_params(format!("invalid {method} params.arguments: {e}")))
}

/// The schemas say `additionalProperties: false`; an unexpected name is an error naming it.
fn only_known(args: &Arguments<'_>, owner: &str, known: &[&str]) -> Result<(), String> {
    match args.keys().find(|name| !known.contains(&name.as_str())) {
        None => Ok(()),
        Some(name) => Err(format!(
            "unknown argument \"{name}\" for {owner}; it takes: {}",
            known.join(", ")
        )),
    }
}

fn required_arg<'a>(
    args: &Arguments<'a>,
    owner: &str,
    name: &str,
    expected: &str,
) -> Result<&'a RawValue, String> {
    args.get(name)
        .copied()
        .ok_or_else(|| format!("missing required argument \"{name}\" ({expected}) for {owner}"))
}

fn string_arg<'a>(args: &Arguments<'a>, owner: &str, name: &str) -> Result<Cow<'a, str>, String> {
    let raw = required_arg(args, owner, name, "a string")?;
    raw_str(raw).ok_or_else(|| {
        format!(
            "argument \"{name}\" must be a string, got {} {}",
            json_kind(raw),
            preview(raw)
        )
    })
}

fn number_arg(args: &Arguments<'_>, owner: &str, name: &str) -> Result<Number, String> {
    let raw = required_arg(args, owner, name, "a number")?;
    serde_json::from_str::<Number>(raw.get()).map_err(|_| {
        format!(
            "argument \"{name}\" must be a number, got {} {}",
            json_kind(raw),
            preview(raw)
        )
    })
}

fn plain(text: String) -> ToolOutput {
    ToolOutput {
        text,
        structured: None,
    }
}

fn echo(args: &Arguments<'_>) -> Result<ToolOutput, String> {
    only_known(args, "tool echo", &["text"])?;
    let text = string_arg(args, "tool echo", "text")?;
    Ok(plain(text.into_owned()))
}

/// Integers add exactly while the sum fits in an `i64`; anything else adds as `f64`.
fn add(args: &Arguments<'_>) -> Result<ToolOutput, String> {
    only_known(args, "tool add", &["a", "b"])?;
    let a = number_arg(args, "tool add", "a")?;
    let b = number_arg(args, "tool add", "b")?;
    let exact = match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x.checked_add(y).map(Number::from),
        _ => None,
    };
    let float = || {
        let (x, y) = (a.as_f64()?, b.as_f64()?);
        Number::from_f64(x + y)
    };
    let Some(sum) = exact.or_else(float) else {
        return Err(format!("the sum of {a} and {b} is not a finite number"));
    };
    let structured = Sum { sum };
    let text = serde_json::to_string(&structured).map_err(|e| e.to_string())?;
    Ok(ToolOutput {
        text,
        structured: Some(structured),
    })
}

fn list(
    method: &str,
    params: Option<&RawValue>,
    result: &RawValue,
) -> Result<Box<RawValue>, RpcError> {
    let params: ListParams<'_> = read_params(method, params)?;
    if let Some(cursor) = params.cursor {
        return Err(RpcError::invalid_params(format!(
            "invalid cursor {}: {method} has a single page and never issues a cursor",
            preview(cursor)
        )));
    }
    Ok(result.to_owned())
}

fn read_resource(
    params: Option<&RawValue>,
    catalogue: &Catalogue,
    version: ProtocolVersion,
) -> Result<Box<RawValue>, RpcError> {
    let params: ReadParams<'_> = read_params("resources/read", params)?;
    let uri = required_str("resources/read", "uri", params.uri)?;
    if uri == README_URI {
        return Ok(catalogue.readme.clone());
    }
    let code = if version.is_stateless() {
        INVALID_PARAMS
    } else {
        RESOURCE_NOT_FOUND
    };
    let data = encode("resources/read", &UriData { uri: &uri })?;
    Err(RpcError::new(code, format!("resource not found: {uri}")).with_data(data))
}

fn get_prompt(params: Option<&RawValue>) -> Result<Box<RawValue>, RpcError> {
    let params: NamedParams<'_> = read_params("prompts/get", params)?;
    let name = required_str("prompts/get", "name", params.name)?;
    if name != "greet" {
        return Err(RpcError::invalid_params(format!("unknown prompt: {name}")));
    }
    let args = read_arguments("prompts/get", params.arguments)?;
    only_known(&args, "prompt greet", &["name"]).map_err(RpcError::invalid_params)?;
    let who = string_arg(&args, "prompt greet", "name").map_err(RpcError::invalid_params)?;
    let text = format!("Write a short, friendly greeting for {who}.");
    let result = GetPromptResult {
        description: "A greeting for one person",
        messages: [PromptMessage {
            role: "user",
            content: TextContent {
                kind: "text",
                text: &text,
            },
        }],
    };
    encode("prompts/get", &result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::jsonrpc::METHOD_NOT_FOUND;
    use futures_lite::future::block_on;
    use glommio::LocalExecutorBuilder;
    use std::time::Instant;

    const SESSION: ProtocolVersion = ProtocolVersion::V2025_11_25;
    const STATELESS: ProtocolVersion = ProtocolVersion::V2026_07_28;

    /// Answers a request that never reaches the timer, outside any executor.
    fn call(method: &str, params: &str, version: ProtocolVersion) -> Result<Value, RpcError> {
        let demo = Demo::new(1000);
        let params = (!params.is_empty()).then(|| RawValue::from_string(params.into()).unwrap());
        block_on(demo.handle(method, params.as_deref(), version))
            .map(|raw| serde_json::from_str(raw.get()).unwrap())
    }

    fn ok(method: &str, params: &str) -> Value {
        call(method, params, SESSION).unwrap()
    }

    fn err(method: &str, params: &str, version: ProtocolVersion) -> RpcError {
        call(method, params, version).unwrap_err()
    }

    fn tool(name: &str, arguments: &str) -> Value {
        ok(
            "tools/call",
            &format!(r#"{{"name":"{name}","arguments":{arguments}}}"#),
        )
    }

    fn tool_error_text(name: &str, arguments: &str) -> String {
        let result = tool(name, arguments);
        assert_eq!(result["isError"], true, "{result}");
        assert!(result.get("structuredContent").is_none());
        result["content"][0]["text"].as_str().unwrap().to_owned()
    }

    /// Runs `future` to completion on a real glommio executor on this thread, as a shard would.
    fn on_executor<T>(future: impl std::future::Future<Output = T>) -> T {
        LocalExecutorBuilder::default()
            .io_memory(512 * 1024)
            .make()
            .expect("glommio executor starts")
            .run(future)
    }

    #[test]
    fn tools_list_names_three_tools_in_fixed_order() {
        let result = ok("tools/list", "");
        let names: Vec<_> = result["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["echo", "add", "sleep"]);
        assert!(result.get("nextCursor").is_none());
    }

    #[test]
    fn tools_list_schemas_are_objects_of_type_object_with_declared_required() {
        for version in ProtocolVersion::SUPPORTED {
            let result = call("tools/list", "", version).unwrap();
            for tool in result["tools"].as_array().unwrap() {
                assert!(tool["description"].is_string(), "{tool}");
                for key in ["inputSchema", "outputSchema"] {
                    let Some(schema) = tool.get(key) else {
                        continue;
                    };
                    assert_eq!(schema["type"], "object", "{key} of {tool}");
                    let properties = schema["properties"].as_object().unwrap();
                    for required in schema["required"].as_array().unwrap() {
                        assert!(properties.contains_key(required.as_str().unwrap()));
                    }
                    for property in properties.values() {
                        assert!(property["type"].is_string(), "{property}");
                    }
                }
            }
        }
    }

    #[test]
    fn titles_and_output_schema_appear_from_2025_06_18() {
        let old = call("tools/list", "", ProtocolVersion::V2025_03_26).unwrap();
        for tool in old["tools"].as_array().unwrap() {
            assert!(tool.get("title").is_none() && tool.get("outputSchema").is_none());
            assert!(tool["annotations"]["title"].is_string());
        }
        let prompts = call("prompts/list", "", ProtocolVersion::V2025_03_26).unwrap();
        assert!(prompts["prompts"][0].get("title").is_none());
        for version in [ProtocolVersion::V2025_06_18, SESSION, STATELESS] {
            let tools = call("tools/list", "", version).unwrap();
            assert_eq!(
                tools["tools"][1]["outputSchema"]["required"],
                json!(["sum"])
            );
            assert!(tools["tools"][0]["title"].is_string());
        }
    }

    #[test]
    fn sleep_schema_maximum_is_sleep_ms_max() {
        let demo = Demo::new(250);
        let raw = block_on(demo.handle("tools/list", None, SESSION)).unwrap();
        let result: Value = serde_json::from_str(raw.get()).unwrap();
        assert_eq!(
            result["tools"][2]["inputSchema"]["properties"]["ms"]["maximum"],
            250
        );
    }

    #[test]
    fn cacheable_results_carry_ttl_and_scope_only_when_stateless() {
        let cacheable = [
            ("tools/list", ""),
            ("resources/list", ""),
            ("resources/templates/list", ""),
            ("prompts/list", ""),
            ("resources/read", r#"{"uri":"demo://readme"}"#),
        ];
        for (method, params) in cacheable {
            let modern = call(method, params, STATELESS).unwrap();
            assert_eq!(modern["ttlMs"], CATALOGUE_TTL_MS, "{method}");
            assert_eq!(modern["cacheScope"], "public", "{method}");
            assert!(
                modern.get("resultType").is_none(),
                "the router adds resultType"
            );
            let legacy = call(method, params, SESSION).unwrap();
            assert!(legacy.get("ttlMs").is_none() && legacy.get("cacheScope").is_none());
        }
    }

    #[test]
    fn echo_returns_its_text() {
        let result = tool("echo", r#"{"text":"héllo \"x\""}"#);
        assert_eq!(result["isError"], false);
        assert_eq!(
            result["content"],
            json!([{"type": "text", "text": "héllo \"x\""}])
        );
    }

    #[test]
    fn add_returns_sum_as_json_text_and_structured_content() {
        let result = tool("add", r#"{"a":2,"b":3}"#);
        assert_eq!(result["isError"], false);
        assert_eq!(result["structuredContent"], json!({"sum": 5}));
        assert_eq!(result["content"][0]["text"], r#"{"sum":5}"#);
        let result = tool("add", r#"{"a":0.5,"b":-2}"#);
        assert_eq!(result["structuredContent"]["sum"], -1.5);
        let result = tool("add", &format!(r#"{{"a":{},"b":1}}"#, i64::MAX));
        assert_eq!(result["structuredContent"]["sum"], i64::MAX as f64 + 1.0);
    }

    #[test]
    fn add_omits_structured_content_for_2025_03_26() {
        let params = r#"{"name":"add","arguments":{"a":1,"b":1}}"#;
        let result = call("tools/call", params, ProtocolVersion::V2025_03_26).unwrap();
        assert!(result.get("structuredContent").is_none());
        assert_eq!(result["content"][0]["text"], r#"{"sum":2}"#);
    }

    #[test]
    fn add_refuses_a_non_finite_sum_as_tool_error() {
        let text = tool_error_text("add", r#"{"a":1.7e308,"b":1.7e308}"#);
        assert!(text.contains("not a finite number"), "{text}");
    }

    #[test]
    fn bad_tool_arguments_are_tool_errors_naming_the_argument() {
        let cases = [
            (
                "echo",
                "{}",
                "missing required argument \"text\" (a string) for tool echo",
            ),
            (
                "echo",
                r#"{"text":5}"#,
                "argument \"text\" must be a string, got number 5",
            ),
            (
                "echo",
                r#"{"text":"a","loud":true}"#,
                "unknown argument \"loud\" for tool echo",
            ),
            (
                "add",
                r#"{"a":1}"#,
                "missing required argument \"b\" (a number) for tool add",
            ),
            (
                "add",
                r#"{"a":"1","b":2}"#,
                "argument \"a\" must be a number, got string \"1\"",
            ),
            (
                "sleep",
                r#"{"ms":-5}"#,
                "argument \"ms\" must be a non-negative integer",
            ),
            (
                "sleep",
                r#"{"ms":1.5}"#,
                "argument \"ms\" must be a non-negative integer",
            ),
            ("sleep", r#"{"ms":"10"}"#, "got string \"10\""),
        ];
        for (name, arguments, expected) in cases {
            let text = tool_error_text(name, arguments);
            assert!(text.contains(expected), "{name} {arguments}: {text}");
        }
        let text = ok("tools/call", r#"{"name":"echo"}"#)["content"][0]["text"].clone();
        assert!(text
            .as_str()
            .unwrap()
            .contains("missing required argument \"text\""));
    }

    #[test]
    fn sleep_over_sleep_ms_max_is_a_tool_error_naming_the_cap_and_config_key() {
        let text = tool_error_text("sleep", r#"{"ms":1001}"#);
        assert!(text.contains("1001"), "{text}");
        assert!(text.contains("sleep_ms_max 1000"), "{text}");
        assert!(text.contains("upstreams[].sleep_ms_max"), "{text}");
    }

    #[test]
    fn malformed_tools_call_is_a_protocol_error() {
        let cases = [
            (
                r#"{"arguments":{}}"#,
                "tools/call params.name is missing; it must be a string",
            ),
            (
                r#"{"name":7}"#,
                "tools/call params.name must be a string, got number 7",
            ),
            (
                r#"{"name":"echo","arguments":[1]}"#,
                "tools/call params.arguments must be an object, got array",
            ),
            (r#"{"name":"nope"}"#, "unknown tool: nope"),
        ];
        for (params, expected) in cases {
            let e = err("tools/call", params, SESSION);
            assert_eq!(e.code, INVALID_PARAMS, "{params}");
            assert_eq!(e.message, expected);
        }
        assert_eq!(err("tools/call", "", SESSION).code, INVALID_PARAMS);
    }

    #[test]
    fn sleep_waits_at_least_the_requested_time_on_a_shard() {
        let demo = Demo::new(1000);
        let params = RawValue::from_string(r#"{"name":"sleep","arguments":{"ms":30}}"#.into());
        let params = params.unwrap();
        let start = Instant::now();
        let raw = on_executor(demo.handle("tools/call", Some(&params), SESSION)).unwrap();
        let elapsed = start.elapsed();
        let result = raw.get();
        assert!(elapsed >= Duration::from_millis(30), "{elapsed:?}");
        let result: Value = serde_json::from_str(result).unwrap();
        assert_eq!(result["content"][0]["text"], "slept 30 ms");
        assert_eq!(result["isError"], false);
    }

    #[test]
    fn resources_list_offers_the_readme_and_read_returns_its_text() {
        let listed = ok("resources/list", "");
        assert_eq!(listed["resources"][0]["uri"], README_URI);
        assert_eq!(listed["resources"][0]["mimeType"], "text/plain");
        assert_eq!(
            ok("resources/templates/list", "")["resourceTemplates"],
            json!([])
        );
        let read = ok("resources/read", r#"{"uri":"demo://readme"}"#);
        assert_eq!(read["contents"][0]["uri"], README_URI);
        assert_eq!(read["contents"][0]["text"], README_TEXT);
    }

    #[test]
    fn unknown_resource_is_32002_in_session_era_and_32602_when_stateless() {
        let params = r#"{"uri":"demo://nope"}"#;
        for (version, code) in [(SESSION, RESOURCE_NOT_FOUND), (STATELESS, INVALID_PARAMS)] {
            let e = err("resources/read", params, version);
            assert_eq!(e.code, code, "{version}");
            assert_eq!(e.message, "resource not found: demo://nope");
            let data: Value = serde_json::from_str(e.data.unwrap().get()).unwrap();
            assert_eq!(data, json!({"uri": "demo://nope"}));
        }
        let e = err("resources/read", "{}", SESSION);
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                INVALID_PARAMS,
                "resources/read params.uri is missing; it must be a string"
            )
        );
    }

    #[test]
    fn prompts_list_offers_greet_with_a_required_name() {
        let prompt = &ok("prompts/list", "")["prompts"][0];
        assert_eq!(prompt["name"], "greet");
        assert_eq!(prompt["arguments"][0]["name"], "name");
        assert_eq!(prompt["arguments"][0]["required"], true);
    }

    #[test]
    fn prompts_get_greet_returns_a_user_message_naming_the_person() {
        let result = ok(
            "prompts/get",
            r#"{"name":"greet","arguments":{"name":"Ada"}}"#,
        );
        let message = &result["messages"][0];
        assert_eq!(message["role"], "user");
        assert_eq!(message["content"]["type"], "text");
        assert!(message["content"]["text"].as_str().unwrap().contains("Ada"));
    }

    #[test]
    fn prompts_get_refuses_unknown_prompt_and_bad_arguments_with_32602() {
        let cases = [
            (r#"{"name":"nope"}"#, "unknown prompt: nope"),
            (
                r#"{"name":"greet"}"#,
                "missing required argument \"name\" (a string) for prompt greet",
            ),
            (
                r#"{"name":"greet","arguments":{"name":1}}"#,
                "argument \"name\" must be a string, got number 1",
            ),
            (
                r#"{"name":"greet","arguments":{"name":"a","x":"b"}}"#,
                "unknown argument \"x\" for prompt greet; it takes: name",
            ),
        ];
        for (params, expected) in cases {
            let e = err("prompts/get", params, SESSION);
            assert_eq!(e.code, INVALID_PARAMS, "{params}");
            assert_eq!(e.message, expected);
        }
    }

    #[test]
    fn lists_refuse_a_cursor_they_never_issued() {
        for method in [
            "tools/list",
            "resources/list",
            "resources/templates/list",
            "prompts/list",
        ] {
            let e = err(method, r#"{"cursor":"abc"}"#, SESSION);
            assert_eq!(e.code, INVALID_PARAMS, "{method}");
            assert!(
                e.message.starts_with("invalid cursor \"abc\""),
                "{}",
                e.message
            );
            assert!(call(method, r#"{"cursor":null,"_meta":{}}"#, SESSION).is_ok());
        }
    }

    #[test]
    fn unknown_and_unadvertised_methods_are_32601() {
        for method in [
            "nope",
            "completion/complete",
            "resources/subscribe",
            "logging/setLevel",
        ] {
            let e = err(method, "", SESSION);
            assert_eq!(e.code, METHOD_NOT_FOUND);
            assert_eq!(e.message, format!("method not found: {method}"));
        }
        let capabilities: Value = serde_json::from_str(Demo::capabilities_json()).unwrap();
        assert!(capabilities.get("completions").is_none());
    }

    #[test]
    fn ping_answers_empty_in_session_era_and_is_unknown_when_stateless() {
        assert_eq!(ok("ping", ""), json!({}));
        assert_eq!(err("ping", "", STATELESS).code, METHOD_NOT_FOUND);
    }

    #[test]
    fn capabilities_advertise_tools_resources_prompts_without_list_changes() {
        let capabilities: Value = serde_json::from_str(Demo::capabilities_json()).unwrap();
        for feature in ["tools", "resources", "prompts"] {
            assert_eq!(capabilities[feature]["listChanged"], false, "{feature}");
        }
        assert_eq!(capabilities.as_object().unwrap().len(), 3);
        assert!(!Demo::instructions().is_empty());
    }

    #[test]
    fn catalogues_are_indexed_by_version_declaration_order() {
        for (index, version) in ProtocolVersion::SUPPORTED.into_iter().enumerate() {
            assert_eq!(version as usize, index);
        }
    }
}
