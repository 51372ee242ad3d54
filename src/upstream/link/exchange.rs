//! One POST to an `http` upstream and its answer: the headers of its era and session, then a
//! JSON body, or an event stream read until the response to the request (what else arrives on
//! it goes to the caller's `on_event`, and an answer to that goes back under the same session).

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use serde_json::Value;

use super::{empty_result, CallOutcome, HttpLink, SessionScope, UpstreamEra, UpstreamLink};
use crate::calls::inflight::CallFailure;
use crate::support::deadline;
use crate::upstream::pool::{
    Reply, RequestSpec, Response, SseResponse, UpstreamError, UpstreamErrorKind,
};
use crate::wire::gateway_client::with_stateless_meta;
use crate::wire::jsonrpc::{self, RpcError};
use crate::wire::mirrored::header_value;
use crate::wire::version::ProtocolVersion;

/// What a POST mirrors in headers besides its body: the method and name (2026-07-28 era) and
/// the client's `Mcp-Param-*` fields, which intermediaries pass on.
#[derive(Clone, Copy)]
pub(super) struct Mirrored<'a> {
    pub(super) method: &'a str,
    pub(super) name: Option<&'a str>,
    pub(super) params: &'a [(String, String)],
}

impl<'a> Mirrored<'a> {
    /// Only the method: none of the gateway's own requests names a tool, prompt or resource.
    pub(super) fn method(method: &'a str) -> Mirrored<'a> {
        Mirrored {
            method,
            name: None,
            params: &[],
        }
    }
}

/// Why one POST brought no answer.
#[derive(Debug)]
pub(super) enum ExchangeFailure {
    /// The server answered 404 to a request under its `Mcp-Session-Id`: the session expired
    /// ([`UpstreamLink::http_send`] initializes it again once).
    SessionExpired,
    /// The request failed as a call fails.
    Call(CallFailure),
}

impl ExchangeFailure {
    /// The failure a call to upstream `upstream` ends with.
    pub(super) fn into_call(self, upstream: &str) -> CallFailure {
        match self {
            ExchangeFailure::SessionExpired => CallFailure::Unavailable(format!(
                "upstream {upstream}: its session expired (HTTP 404 to a request under its \
                 Mcp-Session-Id)"
            )),
            ExchangeFailure::Call(failure) => failure,
        }
    }
}

impl From<CallFailure> for ExchangeFailure {
    fn from(failure: CallFailure) -> ExchangeFailure {
        ExchangeFailure::Call(failure)
    }
}

/// What a POST brought back: its result, or the error the server answered with.
pub(super) type Answer = Result<Box<RawValue>, RpcError>;

impl UpstreamLink {
    /// One of the gateway's own requests over HTTP in the upstream's era, under the session
    /// `scope` names (see [`UpstreamLink::http_send`]). None of them names a tool, prompt or
    /// resource, so nothing is mirrored beyond `Mcp-Method`.
    pub(super) async fn http_request(
        &self,
        http: &HttpLink,
        id: &[u8],
        method: &str,
        params: Option<Value>,
        (timeout_ms, scope): (u64, SessionScope),
        on_event: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> CallOutcome {
        let stateless = *http.era.borrow() == UpstreamEra::Stateless;
        let mut params = params;
        if stateless {
            params = Some(with_stateless_meta(params));
        }
        let body = jsonrpc::request_value_bytes(id, method, params.as_ref());
        drop(params);
        let mirrored = Mirrored::method(method);
        self.http_send(http, id, &body, mirrored, (timeout_ms, scope), on_event)
            .await
    }

    /// POSTs a notification or response under `era`'s session; `Ok` on 202/200.
    pub(super) async fn http_post(
        &self,
        http: &HttpLink,
        era: &UpstreamEra,
        body: &[u8],
        method: &str,
        timeout_ms: u64,
        on_event: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<(), ExchangeFailure> {
        let mut session = None;
        self.http_exchange(
            http,
            era,
            body,
            Mirrored::method(method),
            timeout_ms,
            b"",
            on_event,
            &mut session,
        )
        .await
        .map(|_| ())
    }

    /// Sends one POST under `era`'s session and reads its answer: a JSON body, or an event
    /// stream read until the response whose id is `id` (other messages go to `on_event`, and
    /// answers to them go back under the same session). A notification's 202 is
    /// `Ok(Ok(empty result))`. `session` receives an `Mcp-Session-Id` the server set.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn http_exchange(
        &self,
        http: &HttpLink,
        era: &UpstreamEra,
        body: &[u8],
        mirrored: Mirrored<'_>,
        timeout_ms: u64,
        id: &[u8],
        on_event: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
        session: &mut Option<String>,
    ) -> Result<Answer, ExchangeFailure> {
        let method = mirrored.method;
        let encoded_name = mirrored.name.map(header_value);
        let headers = post_headers(era, mirrored, encoded_name.as_deref());
        let spec = RequestSpec {
            method: "POST",
            headers: &headers,
            body: Some(body),
            timeout_ms,
        };
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let reply = http
            .pool
            .request(&spec)
            .await
            .map_err(|e| self.request_failed(&e, method, timeout_ms))?;
        match reply {
            Reply::Buffered(response) => {
                if let Some(id) = response.head.header_str("mcp-session-id") {
                    *session = Some(id.to_owned());
                }
                self.answer_in_body(&response, era, method, id)
            }
            Reply::Stream(mut stream) => {
                if let Some(id) = stream.head().header_str("mcp-session-id") {
                    *session = Some(id.to_owned());
                }
                let waited = (method, timeout_ms, deadline);
                let answer = self.answer_in_stream(http, era, &mut stream, id, waited, on_event);
                Ok(answer.await?)
            }
        }
    }

    /// Why the pool could not bring an answer to `method`.
    fn request_failed(&self, e: &UpstreamError, method: &str, timeout_ms: u64) -> CallFailure {
        let upstream = self.name();
        match e.kind {
            // Waiting for a connection or for the answer past the deadline: a slow upstream,
            // not a failing one.
            UpstreamErrorKind::Timeout => CallFailure::TimedOut(format!(
                "upstream {upstream} did not answer {method} within {timeout_ms} ms \
                 (request_timeout_ms): {}",
                e.message
            )),
            UpstreamErrorKind::PoolFull => CallFailure::Busy(format!("upstream {upstream}: {e}")),
            _ => self.unavailable(e),
        }
    }

    /// The upstream failed to answer, for `reason`.
    fn unavailable(&self, reason: impl fmt::Display) -> CallFailure {
        CallFailure::Unavailable(format!("upstream {}: {reason}", self.name()))
    }

    /// The answer to request `id` (empty for a notification or response) in a buffered
    /// `response` to a POST under `era`'s session.
    fn answer_in_body(
        &self,
        response: &Response,
        era: &UpstreamEra,
        method: &str,
        id: &[u8],
    ) -> Result<Answer, ExchangeFailure> {
        let status = response.head.status();
        let session_sent = matches!(
            era,
            UpstreamEra::Session {
                session: Some(_),
                ..
            }
        );
        if status == 404 && session_sent {
            return Err(ExchangeFailure::SessionExpired);
        }
        if id.is_empty() && (status == 202 || status == 200) {
            return Ok(Ok(empty_result()));
        }
        if status >= 500 {
            let said = match jsonrpc::answer_to(&response.body, id, self.json_depth_max) {
                Ok(Some(Err(error))) => format!(": {}", error.message),
                _ => String::new(),
            };
            let reason = format!("{method} answered HTTP {status}{said}");
            return Err(self.unavailable(reason).into());
        }
        if response.body.is_empty() {
            let reason = format!("{method} answered HTTP {status} without a body");
            return Err(self.unavailable(reason).into());
        }
        match jsonrpc::answer_to(&response.body, id, self.json_depth_max) {
            Err(too_deep) => Ok(Err(self.refuse_too_deep(&too_deep))),
            Ok(Some(answer)) => Ok(answer),
            Ok(None) => Err(self
                .unavailable(self.not_an_answer(method, response))
                .into()),
        }
    }

    /// Reads the event stream of a POST under `era`'s session until the response to request
    /// `id`, before `deadline` (`timeout_ms` after it was sent). Every other message goes to
    /// `on_event`; an answer it returns is POSTed back under the same session.
    async fn answer_in_stream(
        &self,
        http: &HttpLink,
        era: &UpstreamEra,
        stream: &mut SseResponse,
        id: &[u8],
        (method, timeout_ms, deadline): (&str, u64, Instant),
        on_event: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<Answer, CallFailure> {
        loop {
            // The clock is read per event: events that are always ready never let the race
            // wait, and a stream has no size bound.
            let event = match Instant::now() < deadline {
                true => deadline::race(deadline, stream.next_event()).await,
                false => None,
            };
            let event = match event {
                None => {
                    return Err(CallFailure::TimedOut(format!(
                        "upstream {} did not answer {method} within {timeout_ms} ms",
                        self.name()
                    )))
                }
                Some(Err(e)) => return Err(self.unavailable(e)),
                Some(Ok(None)) => {
                    return Err(self.unavailable(format_args!(
                        "the event stream for {method} ended without its response"
                    )))
                }
                Some(Ok(Some(event))) => event,
            };
            if event.data.is_empty() {
                continue;
            }
            // A message too deep to read may be the answer: the request fails with it.
            match jsonrpc::answer_to(&event.data, id, self.json_depth_max) {
                Err(too_deep) => return Ok(Err(self.refuse_too_deep(&too_deep))),
                Ok(Some(answer)) => return Ok(answer),
                Ok(None) => {}
            }
            if let Some(reply) = on_event(&event.data) {
                // Answered on a connection of its own, as any client POSTs a response.
                let _ = Box::pin(self.http_post(
                    http,
                    era,
                    &reply,
                    "",
                    self.control_timeout_ms(),
                    &mut |message| self.unrelayed(message),
                ))
                .await;
            }
        }
    }

    /// Why a buffered response to `method` is no JSON-RPC answer to it: its status, media type
    /// and size, a one-line excerpt of the body, and for a 404 the key that is likely wrong.
    fn not_an_answer(&self, method: &str, response: &Response) -> String {
        let status = response.head.status();
        let media = response
            .head
            .header_str("content-type")
            .unwrap_or("no Content-Type");
        let hint = match status {
            404 => format!(
                " (is upstreams[{}].url the server's MCP endpoint?)",
                self.index
            ),
            _ => String::new(),
        };
        format!(
            "{method} answered HTTP {status} ({media}, {} bytes), not a JSON-RPC response to it: \
             {}{hint}",
            response.body.len(),
            body_excerpt(&response.body)
        )
    }
}

/// The header fields of a POST under `era`'s session: the media types it takes; the era's
/// version and session, or for 2026-07-28 the version and the mirrored method and name
/// (`encoded_name`, already in its header form); then the client's `Mcp-Param-*` fields.
fn post_headers<'a>(
    era: &'a UpstreamEra,
    mirrored: Mirrored<'a>,
    encoded_name: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut headers: Vec<(&str, &str)> = vec![("Accept", "application/json, text/event-stream")];
    match era {
        UpstreamEra::Stateless => {
            headers.push((
                "MCP-Protocol-Version",
                ProtocolVersion::V2026_07_28.as_str(),
            ));
            headers.push(("Mcp-Method", mirrored.method));
            if let Some(name) = encoded_name {
                headers.push(("Mcp-Name", name));
            }
        }
        UpstreamEra::Session { version, session } => {
            if mirrored.method != "initialize" {
                headers.push(("MCP-Protocol-Version", version));
            }
            if let Some(session) = session {
                headers.push(("Mcp-Session-Id", session));
            }
        }
        UpstreamEra::Unknown => {}
    }
    headers.extend(
        mirrored
            .params
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    );
    headers
}

/// Bytes of a response body quoted in an error message at most.
const BODY_EXCERPT_BYTES_MAX: usize = 200;

/// The start of `body` as one line: invalid UTF-8 replaced, each run of whitespace and control
/// characters (newlines too) one space, cut to [`BODY_EXCERPT_BYTES_MAX`] bytes with `...`
/// when longer.
fn body_excerpt(body: &[u8]) -> String {
    // Enough of the body for the excerpt even if every byte were a replacement character.
    let lossy = String::from_utf8_lossy(&body[..body.len().min(4 * BODY_EXCERPT_BYTES_MAX)]);
    let text: String = lossy
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut excerpt = String::with_capacity(BODY_EXCERPT_BYTES_MAX + 3);
    for word in text.split_whitespace() {
        let separator = usize::from(!excerpt.is_empty());
        if excerpt.len() + separator + word.len() > BODY_EXCERPT_BYTES_MAX {
            let room = BODY_EXCERPT_BYTES_MAX.saturating_sub(excerpt.len() + separator);
            let mut end = room.min(word.len());
            while !word.is_char_boundary(end) {
                end -= 1;
            }
            if separator == 1 && end > 0 {
                excerpt.push(' ');
            }
            excerpt.push_str(&word[..end]);
            excerpt.push_str("...");
            return excerpt;
        }
        if separator == 1 {
            excerpt.push(' ');
        }
        excerpt.push_str(word);
    }
    if body.len() > 4 * BODY_EXCERPT_BYTES_MAX {
        excerpt.push_str("...");
    }
    excerpt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_carries_its_eras_headers_then_the_clients_param_fields() {
        let params = [("Mcp-Param-Region".to_owned(), "eu".to_owned())];
        let call = Mirrored {
            method: "tools/call",
            name: Some("get_weather"),
            params: &params,
        };
        let accept = ("Accept", "application/json, text/event-stream");
        assert_eq!(
            post_headers(&UpstreamEra::Stateless, call, Some("get_weather")),
            [
                accept,
                ("MCP-Protocol-Version", "2026-07-28"),
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "get_weather"),
                ("Mcp-Param-Region", "eu"),
            ]
        );
        let session = UpstreamEra::Session {
            version: "2025-11-25",
            session: Some("s-1".to_owned()),
        };
        assert_eq!(
            post_headers(&session, call, Some("get_weather")),
            [
                accept,
                ("MCP-Protocol-Version", "2025-11-25"),
                ("Mcp-Session-Id", "s-1"),
                ("Mcp-Param-Region", "eu"),
            ]
        );
        // `initialize` names the version in its body, and opens the session.
        let opening = UpstreamEra::Session {
            version: "2025-11-25",
            session: None,
        };
        let initialize = Mirrored::method("initialize");
        assert_eq!(post_headers(&opening, initialize, None), [accept]);
    }

    #[test]
    fn a_body_excerpt_is_one_line_of_at_most_body_excerpt_bytes_max() {
        let page = format!(
            "<!DOCTYPE html>\n<html>\n  <head><title>404 Not Found</title></head>\n<body>{}</body>",
            "x ".repeat(300)
        );
        let excerpt = body_excerpt(page.as_bytes());
        assert!(excerpt.starts_with("<!DOCTYPE html> <html> <head><title>404 Not Found</title>"));
        assert!(!excerpt.contains('\n'), "{excerpt}");
        assert!(excerpt.ends_with("..."), "{excerpt}");
        assert!(
            excerpt.len() <= BODY_EXCERPT_BYTES_MAX + 3,
            "{}",
            excerpt.len()
        );
        assert_eq!(body_excerpt(b"  not\x1b found \r\n"), "not found");
        // One long word is cut on a character boundary.
        let long = "é".repeat(BODY_EXCERPT_BYTES_MAX);
        let excerpt = body_excerpt(long.as_bytes());
        assert_eq!(
            excerpt,
            format!("{}...", "é".repeat(BODY_EXCERPT_BYTES_MAX / 2))
        );
    }
}
