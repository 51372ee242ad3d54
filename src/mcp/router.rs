//! Routes an MCP request to the server that answers it, and builds the gateway's own answers
//! (`initialize`, `server/discover`, `ping`). Today the only upstream is the built-in demo,
//! served in-process on every shard; the router is where the merged catalogue of many
//! upstreams will be consulted.

use serde_json::value::RawValue;

use crate::mcp::jsonrpc::RpcError;
use crate::mcp::version::ProtocolVersion;
use crate::upstream::builtin::Demo;

/// Which protocol era a request belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    /// 2025-03-26 … 2025-11-25, with the version negotiated for the session.
    Session(ProtocolVersion),
    /// 2026-07-28: per-request `_meta`, no sessions; results carry `resultType`.
    Stateless,
}

/// How long a client may cache `server/discover` (and the lists) in the stateless era.
const DISCOVER_TTL_MS: u64 = 60_000;

/// Shard-local router. Built once per shard from the config.
pub struct Router {
    demo: Demo,
    /// `{"name":"shardgate","version":"…"}`, rendered once.
    server_info: String,
}

impl Router {
    pub fn new(demo: Demo) -> Router {
        let server_info = serde_json::json!({
            "name": "shardgate",
            "title": "shardgate MCP gateway",
            "version": env!("CARGO_PKG_VERSION"),
        })
        .to_string();
        Router { demo, server_info }
    }

    /// The `initialize` result for a session-era client at the negotiated `version`.
    pub fn initialize_result(&self, version: ProtocolVersion) -> Box<RawValue> {
        raw(format!(
            r#"{{"protocolVersion":"{}","capabilities":{},"serverInfo":{},"instructions":{}}}"#,
            version.as_str(),
            Demo::capabilities_json(),
            self.server_info,
            serde_json::to_string(Demo::instructions()).expect("a string serializes"),
        ))
    }

    /// Answers one request. The caller writes stateless-era results with `resultType`.
    pub async fn call(
        &self,
        era: Era,
        method: &str,
        params: Option<&RawValue>,
    ) -> Result<Box<RawValue>, RpcError> {
        match (era, method) {
            (Era::Stateless, "server/discover") => Ok(self.discover()),
            (Era::Session(_), "server/discover") => Err(RpcError::method_not_found(method)),
            (Era::Session(version), _) => self.demo.handle(method, params, version).await,
            (Era::Stateless, _) => {
                self.demo
                    .handle(method, params, ProtocolVersion::V2026_07_28)
                    .await
            }
        }
    }

    fn discover(&self) -> Box<RawValue> {
        let supported = ProtocolVersion::SUPPORTED_JSON;
        let capabilities = Demo::capabilities_json();
        let info = &self.server_info;
        let instructions =
            serde_json::to_string(Demo::instructions()).expect("a string serializes");
        raw(format!(
            r#"{{"supportedVersions":{supported},"capabilities":{capabilities},"serverInfo":{info},"instructions":{instructions},"ttlMs":{DISCOVER_TTL_MS},"cacheScope":"public","_meta":{{"io.modelcontextprotocol/serverInfo":{info}}}}}"#
        ))
    }
}

fn raw(json: String) -> Box<RawValue> {
    RawValue::from_string(json).expect("the router renders valid JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &RawValue) -> serde_json::Value {
        serde_json::from_str(raw.get()).unwrap()
    }

    #[test]
    fn initialize_result_names_the_negotiated_version_and_the_gateway() {
        let router = Router::new(Demo::new(1000));
        let result = parse(&router.initialize_result(ProtocolVersion::V2025_06_18));
        assert_eq!(result["protocolVersion"], "2025-06-18");
        assert_eq!(result["serverInfo"]["name"], "shardgate");
        assert!(result["capabilities"]["tools"].is_object());
    }

    #[test]
    fn discover_lists_every_supported_version_with_caching_hints() {
        let router = Router::new(Demo::new(1000));
        let result = parse(&router.discover());
        let versions = result["supportedVersions"].as_array().unwrap();
        assert_eq!(versions.len(), ProtocolVersion::SUPPORTED.len());
        assert!(versions.iter().any(|v| v == "2026-07-28"));
        assert_eq!(result["cacheScope"], "public");
        assert!(result["ttlMs"].as_u64().unwrap() > 0);
        assert!(result["instructions"].is_string());
        assert_eq!(result["serverInfo"]["name"], "shardgate");
        assert_eq!(
            result["_meta"]["io.modelcontextprotocol/serverInfo"],
            result["serverInfo"]
        );
    }
}
