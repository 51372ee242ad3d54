//! An `http` upstream's URL, checked and resolved once when the config is read.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

/// An `http://host[:port][/path]` upstream URL, its address resolved once when parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamUrl {
    text: String,
    authority: String,
    address: SocketAddr,
    path: String,
}

impl UpstreamUrl {
    /// Parses and resolves `url`. Name resolution blocks, so this runs at startup or reload,
    /// never on a request path; the first address is used. Refuses what [`Self::check_syntax`]
    /// refuses, and names that do not resolve.
    pub fn parse(url: &str) -> Result<UpstreamUrl, String> {
        let (authority, path) = Self::check_syntax(url)?;
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.contains(']'));
        let target = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let address = target
            .to_socket_addrs()
            .map_err(|e| format!("upstream url {url:?}: cannot resolve {target}: {e}"))?
            .next()
            .ok_or_else(|| format!("upstream url {url:?}: {target} has no address"))?;
        Ok(UpstreamUrl {
            text: url.to_string(),
            authority: authority.to_string(),
            address,
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

    /// The address connections go to.
    pub fn address(&self) -> SocketAddr {
        self.address
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
