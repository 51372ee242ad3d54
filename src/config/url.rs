//! An `http` upstream's URL, checked and resolved once when the config is read.

use std::fmt;
use std::net::SocketAddr;

/// An `http://host[:port][/path]` upstream URL. An IP address is known when parsed; a host
/// name is resolved by the pool at its first connect (`upstream::pool`), so a name that does
/// not resolve yet makes the upstream down, not the gateway unable to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamUrl {
    text: String,
    authority: String,
    /// The host without IPv6 brackets, and the port (80 when the URL names none).
    host: String,
    port: u16,
    /// The host as an IP address, when it is one.
    literal: Option<SocketAddr>,
    path: String,
}

impl UpstreamUrl {
    /// Parses `url`, refusing what [`Self::check_syntax`] refuses. Resolves nothing.
    pub fn parse(url: &str) -> Result<UpstreamUrl, String> {
        let (authority, path) = Self::check_syntax(url)?;
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (host, port.parse().ok()),
            _ => (authority, Some(80)),
        };
        let port = port.ok_or_else(|| format!("upstream url {url:?} has no valid port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let literal = host
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        Ok(UpstreamUrl {
            text: url.to_string(),
            authority: authority.to_string(),
            host: host.to_string(),
            port,
            literal,
            path: path.to_string(),
        })
    }

    /// Checks the form of `url` without resolving anything (config validation uses it) and
    /// returns its authority and request target. Refuses other schemes (there is no TLS
    /// here), an empty host, user info, fragments, a port that is not 1..=65535, and a path
    /// that is not visible ASCII.
    pub fn check_syntax(url: &str) -> Result<(&str, &str), String> {
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(format!(
                "upstream url {url:?} must start with http:// (https is not supported)"
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') || url.contains('#') {
            return Err(format!(
                "upstream url {url:?} needs a host and no user info or fragment"
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (host, Some(port)),
            _ => (authority, None),
        };
        let host_ok = match host.strip_prefix('[') {
            Some(inner) => inner
                .strip_suffix(']')
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok()),
            None => !host.is_empty() && !host.contains(['[', ']', ':']),
        };
        if !host_ok {
            return Err(format!("upstream url {url:?} has no valid host"));
        }
        let port_ok = |port: &str| {
            port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p > 0)
        };
        if port.is_some_and(|port| !port_ok(port)) {
            return Err(format!(
                "upstream url {url:?} has a port that is not a number in 1..=65535"
            ));
        }
        if !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "upstream url {url:?} has a path that is not visible ascii"
            ));
        }
        Ok((authority, path))
    }

    /// The URL as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host the URL names (an IPv6 address without its brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host as an IP address with the port, when the URL names an address (no resolving).
    pub fn literal(&self) -> Option<SocketAddr> {
        self.literal
    }

    /// The port connections go to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host[:port]` as written, for the `Host` header.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The request target every request uses (`/mcp`).
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
