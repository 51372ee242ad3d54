//! What an upstream sends during a request besides its answer: notifications for the call's
//! client (progress tokens restored), and requests of its own (sampling, elicitation, roots)
//! relayed to that client under a gateway id when it can answer them, else answered with an
//! error. During the gateway's own requests nothing is relayed.

use serde_json::value::RawValue;

use super::UpstreamLink;
use crate::calls::inflight::{CallState, ServerRequest, ServerRequests};
use crate::calls::pending::{restore_progress_token, rewrite_request_id};
use crate::wire::ids::UpstreamRequestId;
use crate::wire::jsonrpc::{self, Message};

impl UpstreamLink {
    /// Passes on what the upstream sent during call `parent`: notifications to its client
    /// (progress tokens restored), requests (sampling, elicitation, roots) to its client under
    /// a gateway id when the client can answer. Returns the answer to send back to the upstream
    /// when a request cannot be relayed.
    pub(super) fn relay(
        &self,
        message: &[u8],
        parent: UpstreamRequestId,
        client_token: Option<&[u8]>,
        state: &CallState,
        requests: &ServerRequests,
    ) -> Option<Vec<u8>> {
        match self.parse(message) {
            Ok(Message::Notification { method, .. }) if method == "notifications/progress" => {
                match client_token.and_then(|t| restore_progress_token(message, t).ok()) {
                    Some(restored) => {
                        state.push_event(restored);
                    }
                    None => self.count_unroutable(),
                }
                None
            }
            Ok(Message::Notification { method, .. }) if method.ends_with("/list_changed") => {
                // Clients hear of it from the gateway, once the merged lists changed.
                self.announce_lists_changed();
                None
            }
            Ok(Message::Notification { .. }) => {
                state.push_event(message.to_vec());
                None
            }
            Ok(Message::Request { id, method, .. }) => {
                let relayed = state
                    .requests_client()
                    .and_then(|client| {
                        requests.register(ServerRequest {
                            upstream: self.index,
                            upstream_id: id.to_owned(),
                            parent,
                            client,
                        })
                    })
                    .and_then(|gateway_id| rewrite_request_id(message, gateway_id.as_bytes()).ok());
                match relayed.is_some_and(|message| state.push_event(message)) {
                    true => None,
                    false => Some(self.refuse_server_request(id, &method)),
                }
            }
            _ => {
                self.count_unroutable();
                None
            }
        }
    }

    /// For the gateway's own requests: an upstream request gets an error answer, anything else
    /// is counted and dropped.
    pub(super) fn unrelayed(&self, message: &[u8]) -> Option<Vec<u8>> {
        match self.parse(message) {
            Ok(Message::Notification { method, .. }) if method.ends_with("/list_changed") => {
                self.announce_lists_changed();
                None
            }
            Ok(Message::Request { id, method, .. }) => {
                Some(self.refuse_server_request(id, &method))
            }
            _ => {
                self.count_unroutable();
                None
            }
        }
    }

    /// Counts a request the upstream sent (sampling, elicitation, roots) that cannot reach a
    /// client that answers it, and returns the error answer for it.
    pub(super) fn refuse_server_request(&self, id: &RawValue, method: &str) -> Vec<u8> {
        self.server_requests_refused_total
            .set(self.server_requests_refused_total.get() + 1);
        jsonrpc::error_bytes(
            Some(id),
            jsonrpc::METHOD_NOT_FOUND,
            &format!(
                "the gateway cannot relay {method} to a client: none that can answer it is \
                 waiting on this server (it relays requests made during a session-era client's \
                 call, over stdio only while that call is the server's only one)"
            ),
            None,
        )
    }
}
