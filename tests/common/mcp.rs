//! MCP request builders for both protocol eras, on top of the raw client.
//!
//! Session era: `initialize` mints an `Mcp-Session-Id`; later requests carry it and the
//! negotiated `MCP-Protocol-Version`. Stateless era (2026-07-28): every request carries
//! `params._meta` with the version and client capabilities, mirrored in the `MCP-Protocol-Version`,
//! `Mcp-Method` and `Mcp-Name` headers.

use std::time::Duration;

use serde_json::{json, Value};

use super::client::{oneshot, Conn, Request, Response, SseItem, SseParser};
use super::{poll_until, Gateway};

/// The session-era versions the gateway speaks, oldest first.
pub const SESSION_VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];
/// The newest session-era version: what an unknown requested version negotiates to.
pub const SESSION_VERSION_LATEST: &str = "2025-11-25";
/// The stateless-era version.
pub const STATELESS_VERSION: &str = "2026-07-28";

pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";

/// `Accept` value a conforming client sends on POST.
pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// A JSON-RPC request object.
pub fn rpc(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A JSON-RPC notification object (no id).
pub fn notification(method: &str) -> Value {
    json!({"jsonrpc": "2.0", "method": method})
}

/// A POST to `path` with the JSON body and the headers every conforming client sends.
pub fn post(path: &str, body: &Value) -> Request {
    Request::new("POST", path)
        .header("Content-Type", "application/json")
        .header("Accept", ACCEPT_BOTH)
        .body(body.to_string())
}

/// The `initialize` request for `version`.
pub fn initialize_body(id: u64, version: &str) -> Value {
    rpc(
        id,
        "initialize",
        json!({
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "shardgate-tests", "version": "0.0.0"}
        }),
    )
}

/// A live session-era session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    /// The negotiated protocol version (sent as `MCP-Protocol-Version`).
    pub version: String,
}

impl Session {
    /// A POST carrying this session's id and version headers.
    pub fn post(&self, path: &str, body: &Value) -> Request {
        post(path, body)
            .header("Mcp-Session-Id", &self.id)
            .header("MCP-Protocol-Version", &self.version)
    }

    /// A request with this session's headers and no body (GET, DELETE).
    pub fn bare(&self, method: &str, path: &str) -> Request {
        Request::new(method, path)
            .header("Mcp-Session-Id", &self.id)
            .header("MCP-Protocol-Version", &self.version)
    }
}

/// `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers mirrored from a stateless body.
pub fn stateless_post(path: &str, body: &Value) -> Request {
    let method = body["method"].as_str().expect("method in body");
    let version = body["params"]["_meta"][META_VERSION]
        .as_str()
        .unwrap_or(STATELESS_VERSION);
    let mut request = post(path, body)
        .header("MCP-Protocol-Version", version)
        .header("Mcp-Method", method);
    let params = &body["params"];
    if let Some(name) = params["name"].as_str().or_else(|| params["uri"].as_str()) {
        request = request.header("Mcp-Name", name);
    }
    request
}

/// The `_meta` every stateless request carries, for `version`.
pub fn stateless_meta(version: &str) -> Value {
    json!({
        META_VERSION: version,
        META_CAPABILITIES: {},
        META_CLIENT_INFO: {"name": "shardgate-tests", "version": "0.0.0"}
    })
}

/// A stateless-era request: `params` plus `_meta` for the stateless version.
pub fn stateless_body(id: u64, method: &str, params: Value) -> Value {
    stateless_body_for(id, method, params, STATELESS_VERSION)
}

pub fn stateless_body_for(id: u64, method: &str, mut params: Value, version: &str) -> Value {
    params
        .as_object_mut()
        .expect("params is an object")
        .insert("_meta".to_owned(), stateless_meta(version));
    rpc(id, method, params)
}

/// The upstream named `name` in the `/status` of shard `shard`.
pub fn upstream_status(status: &Value, shard: usize, name: &str) -> Value {
    status["shards"][shard]["upstreams"]
        .as_array()
        .unwrap_or_else(|| panic!("/status shard {shard} has no upstreams: {status:#}"))
        .iter()
        .find(|u| u["name"] == name)
        .unwrap_or_else(|| panic!("/status shard {shard} lacks upstream {name}: {status:#}"))
        .clone()
}

/// The concatenated `text` of every text content item in a `tools/call` result.
pub fn content_text(result: &Value) -> String {
    result["content"]
        .as_array()
        .unwrap_or_else(|| panic!("result has no content array: {result}"))
        .iter()
        .filter_map(|item| item["text"].as_str())
        .collect::<Vec<_>>()
        .join("")
}

/// Whether `id` has the session-id shape `<2 hex shard>-<32 hex random>`.
pub fn is_session_id_shape(id: &str) -> bool {
    let Some((shard, random)) = id.split_once('-') else {
        return false;
    };
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    shard.len() == 2 && hex(shard) && random.len() == 32 && hex(random)
}

impl Gateway {
    /// The MCP endpoint path, e.g. `/mcp`.
    pub fn mcp_path(&self) -> String {
        let rest = self.mcp_url.trim_start_matches("http://");
        rest.find('/')
            .map_or_else(|| "/".to_owned(), |i| rest[i..].to_owned())
    }

    /// One request to the MCP port on a fresh connection.
    pub fn call(&self, request: &Request) -> Response {
        oneshot(&self.mcp_addr, request)
    }

    /// A plain POST of `body` on a fresh connection.
    pub fn post(&self, body: &Value) -> Response {
        self.call(&post(&self.mcp_path(), body))
    }

    /// A stateless-era POST of `body` with its mirrored headers, on a fresh connection.
    pub fn stateless(&self, body: &Value) -> Response {
        self.call(&stateless_post(&self.mcp_path(), body))
    }

    /// `GET path` on the admin port.
    pub fn admin_get(&self, path: &str) -> Response {
        oneshot(
            &self.admin_addr,
            &Request::new("GET", path).header("Connection", "close"),
        )
    }

    /// `GET /status` parsed.
    pub fn status(&self) -> Value {
        let response = self.admin_get("/status");
        assert_eq!(response.status, 200, "/status: {}", response.text());
        response.json()
    }

    /// Polls `/status` until `done` holds for it; returns that status, or panics naming `what`
    /// once `within` has passed.
    pub fn wait_status(
        &self,
        within: Duration,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let every = Duration::from_millis(50);
        poll_until(within, every, || self.status(), done)
            .unwrap_or_else(|status| panic!("{what} not reached within {within:?}: {status:#}"))
    }

    /// `totals.sessions` from `/status`.
    pub fn sessions_total(&self) -> u64 {
        let status = self.status();
        status["totals"]["sessions"]
            .as_u64()
            .unwrap_or_else(|| panic!("/status lacks totals.sessions: {status}"))
    }

    /// `initialize` for `version` on `conn`; returns the response (the session id is a header).
    pub fn initialize_on(&self, conn: &mut Conn, id: u64, version: &str) -> Response {
        conn.roundtrip(&post(&self.mcp_path(), &initialize_body(id, version)).to_bytes())
    }

    /// Opens a session: `initialize` then `notifications/initialized`, asserting both succeed.
    pub fn open_session(&self, version: &str) -> Session {
        let mut conn = Conn::connect(&self.mcp_addr);
        let response = self.initialize_on(&mut conn, 1, version);
        assert_eq!(
            response.status,
            200,
            "initialize {version}: {}",
            response.text()
        );
        let session = Session {
            id: response
                .header("Mcp-Session-Id")
                .unwrap_or_else(|| panic!("initialize answered without Mcp-Session-Id"))
                .to_owned(),
            version: response.json()["result"]["protocolVersion"]
                .as_str()
                .expect("negotiated protocolVersion")
                .to_owned(),
        };
        let ack = conn.roundtrip(
            &session
                .post(&self.mcp_path(), &notification("notifications/initialized"))
                .to_bytes(),
        );
        assert_eq!(ack.status, 202, "notifications/initialized: {}", ack.text());
        session
    }

    /// A session-era request on `session`, on a fresh connection.
    pub fn session_call(&self, session: &Session, body: &Value) -> Response {
        self.call(&session.post(&self.mcp_path(), body))
    }
}

/// A raw session-era client declaring the roots capability, which answers the gateway's
/// `roots/list` requests itself (see [`call_until_asked`]); its session.
pub fn open_roots_session(gw: &Gateway) -> Session {
    let init = rpc(
        1,
        "initialize",
        json!({
            "protocolVersion": SESSION_VERSION_LATEST,
            "capabilities": {"roots": {"listChanged": false}},
            "clientInfo": {"name": "shardgate-tests", "version": "0.0.0"}
        }),
    );
    let response = gw.call(&post(&gw.mcp_path(), &init));
    assert_eq!(response.status, 200, "{}", response.text());
    let session = Session {
        id: response
            .header("Mcp-Session-Id")
            .expect("session id")
            .to_owned(),
        version: SESSION_VERSION_LATEST.to_owned(),
    };
    let ack = gw.session_call(&session, &notification("notifications/initialized"));
    assert_eq!(ack.status, 202);
    session
}

/// Starts `tools/call tool` (id 7; a tool that asks the client for its roots) on a fresh
/// connection and reads the event stream up to the gateway's `roots/list` request; returns the
/// connection, its parser and the request.
pub fn call_until_asked(gw: &Gateway, session: &Session, tool: &str) -> (Conn, SseParser, Value) {
    let mut conn = Conn::connect(&gw.mcp_addr);
    conn.set_read_timeout(Duration::from_secs(30));
    let call = rpc(7, "tools/call", json!({"name": tool, "arguments": {}}));
    conn.send(&session.post(&gw.mcp_path(), &call).to_bytes());
    let head = conn.read_head();
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    let mut parser = SseParser::default();
    while let Some(item) = conn.next_sse(&mut parser).expect("read the event stream") {
        let SseItem::Event(event) = item else {
            continue;
        };
        let message: Value = serde_json::from_str(&event.data).expect("json event");
        assert_eq!(message["method"], "roots/list", "{message}");
        assert!(
            message["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("sgr-")),
            "{message}"
        );
        return (conn, parser, message);
    }
    panic!("the call's stream ended before the roots/list request");
}

/// The call's answer: the rest of its event stream's last event.
pub fn read_answer(conn: &mut Conn, parser: &mut SseParser) -> Value {
    let mut answer = None;
    while let Some(item) = conn.next_sse(parser).expect("read the event stream") {
        if let SseItem::Event(event) = item {
            answer = Some(serde_json::from_str::<Value>(&event.data).expect("json"));
        }
    }
    answer.expect("the stream ended without the call's answer")
}
