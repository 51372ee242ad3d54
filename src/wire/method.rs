//! The MCP methods the gateway treats by name, as one closed enum: parsed once where a request is
//! decoded, so the later phases match on variants, and a label with a fixed set of values for
//! whatever counts requests by method.

use crate::wire::kind::Kind;

/// A request method. [`Method::Other`] is every method the gateway does not know by name; it
/// is answered "method not found" in either era.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Initialize,
    Ping,
    LoggingSetLevel,
    ToolsList,
    PromptsList,
    ResourcesList,
    ResourceTemplatesList,
    ToolsCall,
    PromptsGet,
    ResourcesRead,
    CompletionComplete,
    ResourcesSubscribe,
    ResourcesUnsubscribe,
    ServerDiscover,
    SubscriptionsListen,
    Other,
}

impl Method {
    /// Every named method, with its wire name.
    const NAMES: [(Method, &'static str); 15] = [
        (Method::Initialize, "initialize"),
        (Method::Ping, "ping"),
        (Method::LoggingSetLevel, "logging/setLevel"),
        (Method::ToolsList, "tools/list"),
        (Method::PromptsList, "prompts/list"),
        (Method::ResourcesList, "resources/list"),
        (Method::ResourceTemplatesList, "resources/templates/list"),
        (Method::ToolsCall, "tools/call"),
        (Method::PromptsGet, "prompts/get"),
        (Method::ResourcesRead, "resources/read"),
        (Method::CompletionComplete, "completion/complete"),
        (Method::ResourcesSubscribe, "resources/subscribe"),
        (Method::ResourcesUnsubscribe, "resources/unsubscribe"),
        (Method::ServerDiscover, "server/discover"),
        (Method::SubscriptionsListen, "subscriptions/listen"),
    ];

    pub fn parse(name: &str) -> Method {
        Method::NAMES
            .iter()
            .find(|(_, known)| *known == name)
            .map_or(Method::Other, |(method, _)| *method)
    }

    /// The wire name; `"other"` for [`Method::Other`], whose own name is the client's text.
    pub fn as_str(self) -> &'static str {
        Method::NAMES
            .iter()
            .find(|(method, _)| *method == self)
            .map_or("other", |(_, name)| name)
    }

    /// Routed to the one upstream that owns the named tool, prompt or resource.
    pub fn is_routed(self) -> bool {
        matches!(
            self,
            Method::ToolsCall
                | Method::PromptsGet
                | Method::ResourcesRead
                | Method::CompletionComplete
        )
    }

    /// Its `params.name` or `params.uri` is mirrored in the stateless era's `Mcp-Name` header.
    pub fn mirrors_name(self) -> bool {
        matches!(
            self,
            Method::ToolsCall | Method::PromptsGet | Method::ResourcesRead
        )
    }

    /// Removed by the 2026-07-28 revision: unknown to a stateless request.
    pub fn removed_in_stateless(self) -> bool {
        matches!(
            self,
            Method::Initialize
                | Method::Ping
                | Method::LoggingSetLevel
                | Method::ResourcesSubscribe
                | Method::ResourcesUnsubscribe
        )
    }

    /// The merged list this method asks for.
    pub fn listed_kind(self) -> Option<Kind> {
        match self {
            Method::ToolsList => Some(Kind::Tools),
            Method::PromptsList => Some(Kind::Prompts),
            Method::ResourcesList => Some(Kind::Resources),
            Method::ResourceTemplatesList => Some(Kind::ResourceTemplates),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_method_parses_back_from_its_wire_name() {
        for (method, name) in Method::NAMES {
            assert_eq!(Method::parse(name), method);
            assert_eq!(method.as_str(), name);
        }
        assert_eq!(Method::parse("tools/call "), Method::Other);
        assert_eq!(Method::parse("Tools/Call"), Method::Other);
        assert_eq!(Method::Other.as_str(), "other");
    }

    #[test]
    fn the_routed_methods_are_the_four_that_name_an_upstream_thing() {
        let routed: Vec<&str> = Method::NAMES
            .iter()
            .filter(|(method, _)| method.is_routed())
            .map(|(_, name)| *name)
            .collect();
        assert_eq!(
            routed,
            [
                "tools/call",
                "prompts/get",
                "resources/read",
                "completion/complete"
            ]
        );
        assert!(Method::NAMES
            .iter()
            .all(|(method, _)| !method.mirrors_name() || method.is_routed()));
    }
}
