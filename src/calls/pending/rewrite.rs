//! Swapping the ids of a JSON-RPC message without re-serialising it.
//!
//! The gateway forwards `params` and `result` as the bytes it received; only the top-level `id`
//! and the progress token change on the way through. These functions find those members with
//! serde_json (borrowed [`RawValue`]s, whose text is a sub-slice of the body, so its byte offsets
//! are known) and splice the new text in: everything else, whitespace and member order included,
//! is copied unchanged. Each call costs one pass over the message and one over `params` when the
//! message has them, plus one output `Vec` of the final size.
//!
//! Refuses ([`RewriteError`]): a body that is not one JSON object (syntax error, trailing data, a
//! top-level member named twice), and a message without the member to replace.
//!
//! State: none; pure functions of their input.

use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::wire::jsonrpc::present;

/// Why a message could not be rewritten.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RewriteError {
    /// The body, or its `params` or `params._meta`, is not a JSON object; `detail` is
    /// serde_json's description (syntax error, duplicated member, wrong type).
    NotAnObject {
        member: &'static str,
        detail: String,
    },
    /// The member to replace is absent (`id`, or `params.progressToken` of a progress
    /// notification).
    Missing { member: &'static str },
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnObject { member, detail } => {
                write!(f, "{member} is not a json object: {detail}")
            }
            Self::Missing { member } => write!(f, "message has no {member} member"),
        }
    }
}

impl std::error::Error for RewriteError {}

/// The top-level members that may be replaced; every other member is skipped.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
}

/// The members of `params` that hold a progress token: `_meta` on a request,
/// `progressToken` itself on `notifications/progress`.
#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow, default, rename = "_meta", deserialize_with = "present")]
    meta: Option<&'a RawValue>,
    #[serde(
        borrow,
        default,
        rename = "progressToken",
        deserialize_with = "present"
    )]
    progress_token: Option<&'a RawValue>,
}

/// `params._meta` of a request.
#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(
        borrow,
        default,
        rename = "progressToken",
        deserialize_with = "present"
    )]
    progress_token: Option<&'a RawValue>,
}

/// Parses `json` as an object of `T`'s members. serde would also fill a struct from a JSON
/// array, position by position, so anything but an object is refused first.
fn object<'a, T: Deserialize<'a>>(json: &'a [u8], member: &'static str) -> Result<T, RewriteError> {
    let first = json.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(RewriteError::NotAnObject {
            member,
            detail: "not an object".to_owned(),
        });
    }
    serde_json::from_slice(json).map_err(|e| RewriteError::NotAnObject {
        member,
        detail: e.to_string(),
    })
}

/// `params` as an object, if the message has an object `params` (a `null` or array `params`
/// holds no progress token).
fn params<'a>(envelope: &Envelope<'a>) -> Result<Option<Params<'a>>, RewriteError> {
    match envelope.params {
        Some(raw) if raw.get().starts_with('{') => object(raw.get().as_bytes(), "params").map(Some),
        _ => Ok(None),
    }
}

/// Where `raw`, parsed from `body`, sits in `body`.
fn range_in(body: &[u8], raw: &RawValue) -> Range<usize> {
    let text = raw.get();
    let start = (text.as_ptr() as usize)
        .checked_sub(body.as_ptr() as usize)
        .expect("a borrowed raw value starts inside the body it was parsed from");
    let end = start + text.len();
    assert!(
        end <= body.len(),
        "a borrowed raw value ends inside its body"
    );
    start..end
}

/// Copies `body` with each range replaced by its bytes. Ranges must not overlap.
fn splice(body: &[u8], edits: &mut [(Range<usize>, &[u8])]) -> Vec<u8> {
    edits.sort_unstable_by_key(|(range, _)| range.start);
    let removed: usize = edits.iter().map(|(range, _)| range.len()).sum();
    let added: usize = edits.iter().map(|(_, bytes)| bytes.len()).sum();
    let mut out = Vec::with_capacity(body.len() - removed + added);
    let mut copied = 0;
    for (range, bytes) in edits.iter() {
        assert!(range.start >= copied, "spliced members do not overlap");
        out.extend_from_slice(&body[copied..range.start]);
        out.extend_from_slice(bytes);
        copied = range.end;
    }
    out.extend_from_slice(&body[copied..]);
    debug_assert_eq!(out.len(), out.capacity());
    out
}

/// The request as the upstream gets it: the top-level `id` replaced by `new_id` and, when the
/// request carries `params._meta.progressToken`, that token replaced by `new_id` too (the
/// gateway's progress token for a request is its upstream request id, unique per shard and
/// upstream, so two clients' tokens can never collide upstream). `new_id` is JSON text.
pub fn rewrite_request_id(body: &[u8], new_id: &[u8]) -> Result<Vec<u8>, RewriteError> {
    let envelope: Envelope<'_> = object(body, "message")?;
    let id = envelope.id.ok_or(RewriteError::Missing { member: "id" })?;
    let meta = params(&envelope)?.and_then(|params| params.meta);
    let token = match meta.filter(|meta| meta.get().starts_with('{')) {
        Some(meta) => object::<Meta<'_>>(meta.get().as_bytes(), "params._meta")?.progress_token,
        None => None,
    };
    let id_edit = (range_in(body, id), new_id);
    Ok(match token {
        Some(token) => splice(body, &mut [id_edit, (range_in(body, token), new_id)]),
        None => splice(body, &mut [id_edit]),
    })
}

/// The answer as the client gets it: the top-level `id` replaced by the client's own id
/// (`client_id`, JSON text as the client sent it).
pub fn restore_response_id(body: &[u8], client_id: &[u8]) -> Result<Vec<u8>, RewriteError> {
    let envelope: Envelope<'_> = object(body, "message")?;
    let id = envelope.id.ok_or(RewriteError::Missing { member: "id" })?;
    Ok(splice(body, &mut [(range_in(body, id), client_id)]))
}

/// A `notifications/progress` as the client gets it: `params.progressToken` replaced by the
/// token the client chose (`client_token`, JSON text).
pub fn restore_progress_token(body: &[u8], client_token: &[u8]) -> Result<Vec<u8>, RewriteError> {
    let envelope: Envelope<'_> = object(body, "message")?;
    let missing = RewriteError::Missing {
        member: "params.progressToken",
    };
    let token = params(&envelope)?
        .and_then(|params| params.progress_token)
        .ok_or(missing)?;
    Ok(splice(body, &mut [(range_in(body, token), client_token)]))
}
