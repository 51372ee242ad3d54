//! An event stream an upstream answered with, read event by event on the connection it came
//! on: the connection returns to the pool once the stream is read to its end, and closes when
//! the stream is dropped before that.

use super::{Lease, UpstreamError};
use crate::config::limits::ClientLimits;
use crate::http::client::{ResponseHead, SseEvent, SseReader};

/// An event stream being read. Read to its end, its connection returns to the pool; dropped
/// before that, the connection is closed, which the server sees as the stream cancelled.
pub struct SseResponse {
    head: ResponseHead,
    /// `None` once the stream ended or failed.
    lease: Option<Lease>,
    reader: SseReader,
    /// Decoded body bytes not yet read as events: at most one line plus one read.
    decoded: Vec<u8>,
    body_done: bool,
    timeout_ms: u64,
}

impl SseResponse {
    /// The stream whose `head` was read on `lease`'s connection, its events held to `limits`.
    pub(super) fn new(
        head: ResponseHead,
        lease: Lease,
        limits: &ClientLimits,
        timeout_ms: u64,
    ) -> SseResponse {
        SseResponse {
            head,
            lease: Some(lease),
            reader: SseReader::new(limits),
            decoded: Vec::new(),
            body_done: false,
            timeout_ms,
        }
    }

    /// Status and header fields (`Mcp-Session-Id` and the like).
    pub fn head(&self) -> &ResponseHead {
        &self.head
    }

    /// The event id in force, to resume from.
    pub fn last_event_id(&self) -> &str {
        self.reader.last_event_id()
    }

    /// The next event, waiting as long as the server takes (race it against the request's
    /// deadline); `None` once the stream ended. After an error the stream is over and its
    /// connection closed.
    pub async fn next_event(&mut self) -> Result<Option<SseEvent>, UpstreamError> {
        let result = self.read_event().await;
        if result.is_err() {
            self.lease = None;
        }
        result
    }

    async fn read_event(&mut self) -> Result<Option<SseEvent>, UpstreamError> {
        loop {
            let Some(lease) = self.lease.as_mut() else {
                return Ok(None);
            };
            let shared = lease.shared.clone();
            let failed = |error| UpstreamError::from_client(error, &shared.url, self.timeout_ms);
            let step = self.reader.next_event(&self.decoded).map_err(failed)?;
            self.decoded.drain(..step.consumed);
            if step.event.is_some() {
                return Ok(step.event);
            }
            let connection = lease.connection();
            if self.body_done {
                let reusable = connection.reusable();
                if let Some(lease) = self.lease.take() {
                    lease.release(reusable);
                }
                return Ok(None);
            }
            let read = connection.read_body_some(&mut self.decoded, None).await;
            self.body_done = read.map_err(failed)?;
        }
    }
}
