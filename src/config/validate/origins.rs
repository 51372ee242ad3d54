//! What an origin (`server.allowed_origins`) or a `Host` (`server.allowed_hosts`) may be, and
//! whether one names this machine: the checks of the config and, at run time, of requests
//! when the lists are empty.

/// Whether `origin` is an `http`/`https` origin on `localhost`, `127.0.0.1` or `[::1]`, with or
/// without a port.
pub(crate) fn is_localhost_origin(origin: &str) -> bool {
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(is_localhost_authority)
}

/// Whether `authority` (a `Host` value, or an origin after its scheme) is `localhost`,
/// `127.0.0.1` or `[::1]`, with or without a port; the name compared without case.
pub(crate) fn is_localhost_authority(authority: &str) -> bool {
    let (host, port) = split_port(authority);
    ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .any(|name| name.eq_ignore_ascii_case(host))
        && port.is_none_or(is_port)
}

/// Splits `host[:port]` (host may be a bracketed IPv6 address).
fn split_port(authority: &str) -> (&str, Option<&str>) {
    let host_end = if authority.starts_with('[') {
        authority
            .find(']')
            .map_or(authority.len(), |close| close + 1)
    } else {
        authority.find(':').unwrap_or(authority.len())
    };
    let (host, rest) = authority.split_at(host_end);
    (
        host,
        rest.strip_prefix(':')
            .or(if rest.is_empty() { None } else { Some(rest) }),
    )
}

/// Whether `text` is a decimal TCP port, 1..=65535.
fn is_port(text: &str) -> bool {
    text.bytes().all(|byte| byte.is_ascii_digit())
        && text.parse::<u16>().is_ok_and(|port| port != 0)
}

/// Why `origin` is not a well-formed origin, or `None` if it is one.
pub(super) fn origin_problem(origin: &str) -> Option<&'static str> {
    let Some(authority) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return Some("an origin starts with http:// or https://");
    };
    authority_problem(authority)
}

/// Why `authority` is not `host[:port]` as a browser sends it (in an origin, or as `Host`),
/// or `None` if it is.
pub(super) fn authority_problem(authority: &str) -> Option<&'static str> {
    let (host, port) = split_port(authority);
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host.bytes().all(|byte| {
                byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"-.".contains(&byte)
            })
    };
    if !host_ok {
        return Some(
            "the host must be a lowercase name or ip address with no path, as browsers send it",
        );
    }
    if port.is_some_and(|port| !is_port(port)) {
        return Some("the port must be a number in 1..=65535 with nothing after it");
    }
    None
}
