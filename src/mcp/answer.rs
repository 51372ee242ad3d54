//! The response phase: what the router answered, as the client's message in the request's
//! era — a JSON reply now, a refusal, or a call to relay as it happens.

use serde_json::value::RawValue;

use crate::mcp::call::{Call, Era};
use crate::mcp::router::Answer;
use crate::mcp::transport::{HttpReply, Refused, Reply, ReplyHeaders};
use crate::wire::jsonrpc::{self, RpcError};

/// `answer` to `call`, in its era: written now, refused for a full table, or relayed.
pub fn response(call: &Call<'_>, answer: Answer) -> Result<Reply, Refused> {
    match answer {
        Answer::Now(answer) => Ok(rpc_reply(call.id, answer, call.era)),
        Answer::Full { refusal, message } => {
            Err(Refused::invalid(refusal.reason(), message).with_id(call.id))
        }
        Answer::Relay(relay) => Ok(Reply::Relay {
            relay,
            id: call.id.to_owned(),
            era: call.era,
        }),
    }
}

/// A router answer as a JSON reply; stateless results carry `resultType` and an unknown method
/// is a 404 there.
pub(super) fn rpc_reply(id: &RawValue, answer: Result<Box<RawValue>, RpcError>, era: Era) -> Reply {
    let (status, body) = answer_message(id, answer, era);
    HttpReply::json(status, ReplyHeaders::new(), body)
}

/// The HTTP status and JSON-RPC message that answer request `id` with `answer` in `era`.
pub fn answer_message(
    id: &RawValue,
    answer: Result<Box<RawValue>, RpcError>,
    era: Era,
) -> (u16, Vec<u8>) {
    let written = answer.and_then(|result| {
        let mut body = Vec::with_capacity(result.get().len() + 64);
        match era {
            Era::Session(_) => jsonrpc::write_session_era_result(&mut body, id, &result)
                .map_err(|message| RpcError::new(jsonrpc::INTERNAL_ERROR, message))?,
            Era::Stateless => jsonrpc::write_complete_result(&mut body, id, &result),
        }
        Ok(body)
    });
    match written {
        Ok(body) => (200, body),
        Err(error) => {
            // The 2026-07-28 era gives some errors their own HTTP status, whoever raised them
            // (the gateway, or an upstream whose status the relay does not carry).
            let status = match (era, error.code) {
                (Era::Stateless, jsonrpc::METHOD_NOT_FOUND) => 404,
                (
                    Era::Stateless,
                    jsonrpc::HEADER_MISMATCH
                    | jsonrpc::MISSING_REQUIRED_CLIENT_CAPABILITY
                    | jsonrpc::UNSUPPORTED_PROTOCOL_VERSION,
                ) => 400,
                _ => 200,
            };
            let body =
                jsonrpc::error_bytes(Some(id), error.code, &error.message, error.data.as_deref());
            (status, body)
        }
    }
}
