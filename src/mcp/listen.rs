//! `subscriptions/listen` (2026-07-28): the stateless era's notification stream, its
//! replacement for the session era's GET stream.
//!
//! The gateway honours the three list-change filters (the merged lists' changes, as session-era
//! clients hear them on their GET stream). It does not honour `resourceSubscriptions`: the
//! acknowledgment leaves it out, as the revision prescribes for types a server does not support.
//! Every frame carries the listen request's id under [`SUBSCRIPTION_ID_META`]; a stream the
//! gateway ends (shutdown) ends with a `complete` result, so the client knows it was no drop.
//!
//! A stream holds one client connection, so `limits.connections_max` bounds them per shard.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::wire::jsonrpc;

/// The `_meta` key that ties a frame to the `subscriptions/listen` request that opened it.
pub const SUBSCRIPTION_ID_META: &str = "io.modelcontextprotocol/subscriptionId";

/// One client's `subscriptions/listen`: its request id and the list changes it asked for.
#[derive(Debug, Clone)]
pub struct Subscription {
    id: Box<RawValue>,
    tools: bool,
    prompts: bool,
    resources: bool,
}

/// `params.notifications` as the client sent it; fields it omits are `false`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    tools_list_changed: bool,
    #[serde(default)]
    prompts_list_changed: bool,
    #[serde(default)]
    resources_list_changed: bool,
    /// Read so a malformed one is refused; never honoured.
    #[serde(default, rename = "resourceSubscriptions")]
    _resource_subscriptions: Vec<String>,
}

#[derive(Deserialize)]
struct ListenParams {
    notifications: Option<Filter>,
}

impl Subscription {
    /// Reads `params.notifications`; the message says what is wrong with it.
    pub fn parse(id: &RawValue, params: Option<&RawValue>) -> Result<Subscription, String> {
        let params: ListenParams = match params {
            Some(params) => serde_json::from_str(params.get())
                .map_err(|e| format!("subscriptions/listen params.notifications: {e}"))?,
            None => ListenParams {
                notifications: None,
            },
        };
        let filter = params.notifications.unwrap_or_default();
        Ok(Subscription {
            id: id.to_owned(),
            tools: filter.tools_list_changed,
            prompts: filter.prompts_list_changed,
            resources: filter.resources_list_changed,
        })
    }

    /// The first frame: `notifications/subscriptions/acknowledged` with the honoured filter.
    pub fn acknowledgment(&self) -> Vec<u8> {
        let mut honoured = Vec::new();
        for (asked, field) in [
            (self.tools, "toolsListChanged"),
            (self.prompts, "promptsListChanged"),
            (self.resources, "resourcesListChanged"),
        ] {
            if asked {
                honoured.push(format!("\"{field}\":true"));
            }
        }
        let params = format!(
            r#"{{"_meta":{},"notifications":{{{}}}}}"#,
            self.meta(),
            honoured.join(",")
        );
        notification("notifications/subscriptions/acknowledged", &params)
    }

    /// `notifications/*/list_changed` for this stream, or `None` when it did not ask for it.
    pub fn list_changed(&self, method: &str) -> Option<Vec<u8>> {
        let asked = match method {
            "notifications/tools/list_changed" => self.tools,
            "notifications/prompts/list_changed" => self.prompts,
            "notifications/resources/list_changed" => self.resources,
            _ => false,
        };
        asked.then(|| notification(method, &format!(r#"{{"_meta":{}}}"#, self.meta())))
    }

    /// The last frame when the gateway ends the stream: the listen request's `complete` result.
    pub fn closing(&self) -> Vec<u8> {
        let result = format!(r#"{{"resultType":"complete","_meta":{}}}"#, self.meta());
        // Literals around the request's id, which the envelope checked is a string or integer.
        let result = RawValue::from_string(result).expect("built from valid JSON");
        jsonrpc::result_bytes(&self.id, &result)
    }

    fn meta(&self) -> String {
        format!(r#"{{"{SUBSCRIPTION_ID_META}":{}}}"#, self.id.get())
    }
}

/// `params`: literals around [`Subscription::meta`], valid JSON as `closing`'s.
fn notification(method: &str, params: &str) -> Vec<u8> {
    let params = RawValue::from_string(params.to_owned()).expect("built from valid JSON");
    jsonrpc::notification_bytes(method, Some(&params))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn subscription(id: &str, params: &str) -> Result<Subscription, String> {
        let id = RawValue::from_string(id.to_owned()).unwrap();
        let params = RawValue::from_string(params.to_owned()).unwrap();
        Subscription::parse(&id, Some(&params))
    }

    fn json(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn the_acknowledgment_honours_list_changes_and_leaves_out_resource_subscriptions() {
        let listen = subscription(
            r#""listen-1""#,
            r#"{"notifications":{"toolsListChanged":true,"resourceSubscriptions":["a://b"]}}"#,
        )
        .unwrap();
        let ack = json(&listen.acknowledgment());
        assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
        assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_ID_META], "listen-1");
        assert_eq!(
            ack["params"]["notifications"],
            serde_json::json!({"toolsListChanged": true})
        );
    }

    #[test]
    fn only_the_list_changes_asked_for_are_sent_each_tagged_with_the_subscription() {
        let listen = subscription("7", r#"{"notifications":{"promptsListChanged":true}}"#).unwrap();
        assert!(listen
            .list_changed("notifications/tools/list_changed")
            .is_none());
        let sent = json(
            &listen
                .list_changed("notifications/prompts/list_changed")
                .unwrap(),
        );
        assert_eq!(sent["method"], "notifications/prompts/list_changed");
        assert_eq!(sent["params"]["_meta"][SUBSCRIPTION_ID_META], 7);
    }

    #[test]
    fn the_closing_frame_is_the_listen_requests_complete_result() {
        let listen = subscription("7", r#"{"notifications":{}}"#).unwrap();
        let closing = json(&listen.closing());
        assert_eq!(closing["id"], 7);
        assert_eq!(closing["result"]["resultType"], "complete");
        assert_eq!(closing["result"]["_meta"][SUBSCRIPTION_ID_META], 7);
    }

    #[test]
    fn a_malformed_filter_is_refused_naming_it() {
        let error =
            subscription("1", r#"{"notifications":{"toolsListChanged":"yes"}}"#).unwrap_err();
        assert!(error.contains("params.notifications"), "{error}");
    }
}
