//! MCP protocol revisions shardgate speaks downstream, and how `initialize` picks one.
//!
//! Two eras share one endpoint. The session era (2025-03-26, 2025-06-18, 2025-11-25) negotiates a
//! version once, in `initialize`, and keeps it for the session. The stateless era (2026-07-28)
//! carries the version on every request, in
//! `params._meta["io.modelcontextprotocol/protocolVersion"]`, and has no `initialize` at all.
//!
//! This module owns no state: versions are plain `Copy` values, shared by every shard. It refuses
//! nothing itself; `parse` returns `None` for a version it does not know and the caller answers
//! with HTTP 400 (`MCP-Protocol-Version`) or -32022 `UnsupportedProtocolVersion` (stateless era).

use std::fmt;

/// One MCP protocol revision. Variants are declared oldest first, so `Ord` follows release order
/// and `version >= ProtocolVersion::V2025_06_18` reads as "has the 2025-06-18 features".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    /// 2025-03-26: Streamable HTTP, sessions, JSON-RPC batches (shardgate refuses batches anyway).
    V2025_03_26,
    /// 2025-06-18: no batches; titles, `outputSchema` and `structuredContent` on tools.
    V2025_06_18,
    /// 2025-11-25: icons, tasks (experimental), SSE polling; the newest session-era revision.
    V2025_11_25,
    /// 2026-07-28: stateless; per-request `_meta`, `server/discover`, `resultType`, caching hints.
    V2026_07_28,
}

impl ProtocolVersion {
    /// Every revision shardgate accepts, oldest first.
    pub const SUPPORTED: [ProtocolVersion; 4] = [
        Self::V2025_03_26,
        Self::V2025_06_18,
        Self::V2025_11_25,
        Self::V2026_07_28,
    ];

    /// `SUPPORTED` as a JSON array, for `server/discover` `supportedVersions` and the `supported`
    /// list in an `UnsupportedProtocolVersion` error's `data`.
    pub const SUPPORTED_JSON: &'static str =
        r#"["2025-03-26","2025-06-18","2025-11-25","2026-07-28"]"#;

    /// The newest session-era revision: what `initialize` answers when it cannot echo the request.
    pub const LATEST_SESSION: ProtocolVersion = Self::V2025_11_25;

    /// The newest revision of all.
    pub const LATEST: ProtocolVersion = Self::V2026_07_28;

    /// The revision a session-era HTTP request is assumed to speak when it carries no
    /// `MCP-Protocol-Version` header and nothing else says otherwise (2025-11-25 transports).
    pub const ASSUMED_WITHOUT_HEADER: ProtocolVersion = Self::V2025_03_26;

    /// The revision named by `text` (`"2025-11-25"`), or `None` if shardgate does not speak it.
    /// Matching is exact: no trimming, no case folding.
    pub fn parse(text: &str) -> Option<ProtocolVersion> {
        Self::SUPPORTED.into_iter().find(|v| v.as_str() == text)
    }

    /// The wire form, `YYYY-MM-DD`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2025_03_26 => "2025-03-26",
            Self::V2025_06_18 => "2025-06-18",
            Self::V2025_11_25 => "2025-11-25",
            Self::V2026_07_28 => "2026-07-28",
        }
    }

    /// True for the stateless era (2026-07-28): no `initialize`, no sessions, `_meta` on every
    /// request, `resultType` on every result.
    pub fn is_stateless(self) -> bool {
        self == Self::V2026_07_28
    }

    /// The version an `initialize` answer carries for a client that asked for `requested`:
    /// the same version when it is a supported session-era one, else `LATEST_SESSION`
    /// (2025-11-25 lifecycle: "respond with another protocol version it supports ... SHOULD be
    /// the latest"). A stateless version is never the answer, since `initialize` does not exist
    /// there.
    pub fn negotiate(requested: &str) -> ProtocolVersion {
        match Self::parse(requested) {
            Some(version) if !version.is_stateless() => version,
            _ => Self::LATEST_SESSION,
        }
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_every_supported_version() {
        for version in ProtocolVersion::SUPPORTED {
            assert_eq!(ProtocolVersion::parse(version.as_str()), Some(version));
            assert_eq!(version.to_string(), version.as_str());
        }
    }

    #[test]
    fn parse_rejects_unknown_and_near_miss_versions() {
        for text in [
            "",
            "2024-11-05",
            "2025-11-26",
            "1900-01-01",
            " 2025-11-25",
            "2025-11-25 ",
        ] {
            assert_eq!(ProtocolVersion::parse(text), None, "{text:?}");
        }
        assert_eq!(
            ProtocolVersion::parse("2026-07-28"),
            Some(ProtocolVersion::V2026_07_28)
        );
    }

    #[test]
    fn only_2026_07_28_is_stateless() {
        let stateless: Vec<_> = ProtocolVersion::SUPPORTED
            .into_iter()
            .filter(|v| v.is_stateless())
            .collect();
        assert_eq!(stateless, [ProtocolVersion::V2026_07_28]);
        assert!(!ProtocolVersion::LATEST_SESSION.is_stateless());
        assert!(ProtocolVersion::LATEST.is_stateless());
    }

    #[test]
    fn order_follows_release_dates() {
        let mut sorted = ProtocolVersion::SUPPORTED;
        sorted.sort_by_key(|v| v.as_str());
        assert_eq!(sorted, ProtocolVersion::SUPPORTED);
        assert!(ProtocolVersion::V2025_06_18 > ProtocolVersion::V2025_03_26);
        assert_eq!(
            ProtocolVersion::SUPPORTED.last(),
            Some(&ProtocolVersion::LATEST)
        );
    }

    #[test]
    fn negotiate_echoes_a_supported_session_version() {
        for version in ["2025-03-26", "2025-06-18", "2025-11-25"] {
            assert_eq!(ProtocolVersion::negotiate(version).as_str(), version);
        }
    }

    #[test]
    fn negotiate_answers_latest_session_version_otherwise() {
        for requested in ["2024-11-05", "2099-01-01", "", "garbage", "2026-07-28"] {
            assert_eq!(
                ProtocolVersion::negotiate(requested),
                ProtocolVersion::LATEST_SESSION,
                "{requested:?}"
            );
        }
    }

    #[test]
    fn supported_json_lists_supported_in_order() {
        let listed: Vec<String> = serde_json::from_str(ProtocolVersion::SUPPORTED_JSON).unwrap();
        let expected: Vec<&str> = ProtocolVersion::SUPPORTED
            .iter()
            .map(|v| v.as_str())
            .collect();
        assert_eq!(listed, expected);
    }
}
