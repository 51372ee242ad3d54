//! The per-connection loop: read and frame a request under its deadlines, hand it to the
//! handler, write the response, repeat while keep-alive holds.
//!
//! Request path per iteration: wait for the first byte (`keepalive_idle_timeout_ms`, or until
//! draining starts) → read the head (`header_read_timeout_ms` from its first byte) → send
//! `100 Continue` if asked → read the body (`body_read_timeout_ms` from the end of the head) →
//! `Handler::handle` → flush the response → drop the consumed bytes; a pipelined request already
//! in the buffer starts its head clock now. The first request's head clock starts at accept:
//! a connection that sends nothing gets its 408 after `header_read_timeout_ms`, as a slow head
//! does, rather than holding its slot for the keep-alive timeout.
//!
//! Refusals (the codec's own, and [`refuse_connection`] for a connection its listener will not
//! serve) are written, then the connection lingers: it half-closes and reads and drops what the
//! peer still sends, for a bounded time and at most one request's bytes, before it closes, so a
//! peer still writing its request reads the refusal instead of a reset.

use super::buffer::InputBuffer;
use super::parse::{Progress, RequestParser, Waiting};
use super::response::{jsonrpc_error_body, Peer, ResponseWriter, Written};
use super::{HttpError, HttpLimits};
use crate::refusal::{RefusalCounters, RefusalReason};
use crate::support::deadline;
use crate::support::event::Event;
use futures_lite::future;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::io;
use std::net::Shutdown;
use std::time::{Duration, Instant};

/// Output capacity kept between responses; a larger one is shrunk back to this.
const OUTPUT_RETAIN_BYTES_MAX: usize = 64 * 1024;
/// After a refusal, how long at most the peer's remaining bytes are read and dropped so that
/// closing does not reset the connection before the refusal is read.
const LINGER_MS_MAX: u64 = 1000;
/// What a connection refused by [`refuse_connection`] holds while it lingers: its input
/// buffer, which stays at one read as each read's bytes are dropped before the next, and the
/// refusal it wrote (a head and a one-line JSON error, well under 1 KiB).
pub const REFUSED_CONNECTION_BYTES_MAX: u64 = super::buffer::READ_BYTES_MIN as u64 + 1024;

/// What the shard does with a request. Runs on the connection's shard; need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Handler {
    /// Answers `request` through `response`. Returning without writing a response makes the
    /// connection answer `500`; returning an error answers `500` and closes (or, mid-stream,
    /// cuts the stream).
    async fn handle(
        &self,
        request: &super::Request<'_>,
        response: &mut ResponseWriter<'_>,
    ) -> io::Result<()>;
}

/// Why a connection ended, for the shard's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionEnd {
    /// The peer closed (between requests or mid-request), or asked to close after a response.
    PeerClosed,
    /// A response closed the connection by the handler's choice (`close_after`).
    Closed,
    /// No next request began within `keepalive_idle_timeout_ms`.
    IdleTimeout,
    /// A request was refused (counted in `RefusalCounters`) and the connection closed.
    Refused(RefusalReason),
    /// The shard is draining; the connection closed at a safe point.
    EventWait,
    /// A socket error, a write that made no progress for `keepalive_idle_timeout_ms`, or a
    /// handler error.
    IoError,
}

/// Serves one accepted connection until it ends; see the module doc for the request path.
pub async fn serve_connection<H: Handler>(
    stream: TcpStream,
    limits: &HttpLimits,
    handler: &H,
    refusals: &RefusalCounters,
    shutdown: &Event,
) -> ConnectionEnd {
    if shutdown.is_set() {
        return ConnectionEnd::EventWait;
    }
    // The first request's head is due `header_read_timeout_ms` after accept.
    let mut first_head_deadline = Some(deadline_in(limits.header_read_timeout_ms));
    let write_timeout = Duration::from_millis(limits.keepalive_idle_timeout_ms);
    let Some(mut connection) = Connection::new(stream, limits, refusals, shutdown, write_timeout)
    else {
        return ConnectionEnd::IoError;
    };
    let mut parser = RequestParser::new(limits);
    loop {
        let read = connection.read_request(&mut parser, first_head_deadline.take());
        let consumed = match read.await {
            Ok(consumed) => consumed,
            Err(end) => return end,
        };
        if let Some(end) = connection.respond(&mut parser, handler).await {
            return end;
        }
        connection.input.consume(consumed as usize);
    }
}

/// A refusal written before the codec reads anything: a whole response with a JSON (or, if
/// `headers` name another `Content-Type`, that) body, sent with `Connection: close`.
pub struct Refusal<'a> {
    pub status: u16,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// Answers a connection its listener will not serve (it holds its most connections) with
/// `refusal` and closes it as the codec's own refusals close: after lingering (see the module
/// doc). The caller has counted the refusal.
pub async fn refuse_connection(
    stream: TcpStream,
    limits: &HttpLimits,
    refusals: &RefusalCounters,
    shutdown: &Event,
    refusal: Refusal<'_>,
) {
    let write_timeout = Duration::from_millis(LINGER_MS_MAX);
    if let Some(mut connection) = Connection::new(stream, limits, refusals, shutdown, write_timeout)
    {
        connection.answer_and_linger(refusal).await;
    }
}

enum ReadOutcome {
    Bytes,
    Eof,
    Deadline,
    EventWait,
    Failed,
}

struct Connection<'a> {
    stream: TcpStream,
    limits: &'a HttpLimits,
    refusals: &'a RefusalCounters,
    shutdown: &'a Event,
    input: InputBuffer,
    out: Vec<u8>,
}

impl<'a> Connection<'a> {
    /// Takes on `stream`, whose writes may make no progress for `write_timeout` before the peer
    /// counts as gone; `None` if the socket refuses the option.
    fn new(
        stream: TcpStream,
        limits: &'a HttpLimits,
        refusals: &'a RefusalCounters,
        shutdown: &'a Event,
        write_timeout: Duration,
    ) -> Option<Connection<'a>> {
        stream.set_write_timeout(Some(write_timeout)).ok()?;
        Some(Connection {
            stream,
            limits,
            refusals,
            shutdown,
            input: InputBuffer::new(limits.input_buffer_bytes_max() as usize),
            out: Vec::new(),
        })
    }

    /// Reads until `parser` frames one request; its consumed byte count, or how the connection
    /// ends. `first_head_deadline` is set for the connection's first request: its head is due
    /// then, counted from accept, and waiting for its first byte is waiting for its head.
    async fn read_request(
        &mut self,
        parser: &mut RequestParser,
        first_head_deadline: Option<Instant>,
    ) -> Result<u32, ConnectionEnd> {
        if self.input.filled == 0 {
            self.wait_first_byte(first_head_deadline).await?;
        }
        // Each clock starts when the parser first waits for its part (a request that is
        // whole in its first read reads no clock), the first head's at accept.
        let mut head_deadline = first_head_deadline;
        let mut body_deadline = None;
        let mut continue_sent = false;
        loop {
            let progress = match parser.advance(self.input.filled()) {
                Ok(progress) => progress,
                Err(error) => return Err(self.refuse(error).await),
            };
            let (deadline, late) = match progress {
                Progress::Complete { consumed } => return Ok(consumed),
                Progress::Incomplete(Waiting::Head) => {
                    let limit = self.limits.header_read_timeout_ms;
                    let deadline = *head_deadline.get_or_insert_with(|| deadline_in(limit));
                    (deadline, late_head(self.limits))
                }
                Progress::Incomplete(Waiting::Body { expect_continue }) => {
                    if expect_continue && !continue_sent {
                        continue_sent = true;
                        self.send_continue().await?;
                    }
                    let limit = self.limits.body_read_timeout_ms;
                    let deadline = *body_deadline.get_or_insert_with(|| deadline_in(limit));
                    (deadline, late_body(self.limits))
                }
            };
            match self.read_until(deadline, false).await {
                ReadOutcome::Bytes => {}
                ReadOutcome::Eof => return Err(ConnectionEnd::PeerClosed),
                ReadOutcome::Deadline => return Err(self.refuse(late).await),
                ReadOutcome::EventWait | ReadOutcome::Failed => return Err(ConnectionEnd::IoError),
            }
        }
    }

    /// Waits for the first byte of a request: idle timeout, peer close and draining end it;
    /// for the first request, `first_head_deadline` in place of the idle timeout, refused as a
    /// late head.
    async fn wait_first_byte(
        &mut self,
        first_head_deadline: Option<Instant>,
    ) -> Result<(), ConnectionEnd> {
        let idle_deadline = || deadline_in(self.limits.keepalive_idle_timeout_ms);
        let deadline = first_head_deadline.unwrap_or_else(idle_deadline);
        match self.read_until(deadline, true).await {
            ReadOutcome::Bytes => Ok(()),
            ReadOutcome::Eof => Err(ConnectionEnd::PeerClosed),
            ReadOutcome::Deadline if first_head_deadline.is_some() => {
                Err(self.refuse(late_head(self.limits)).await)
            }
            ReadOutcome::Deadline => Err(ConnectionEnd::IdleTimeout),
            ReadOutcome::EventWait => Err(ConnectionEnd::EventWait),
            ReadOutcome::Failed => Err(ConnectionEnd::IoError),
        }
    }

    async fn send_continue(&mut self) -> Result<(), ConnectionEnd> {
        let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
        match self.stream.write_all(interim).await {
            Ok(()) => Ok(()),
            Err(_) => Err(ConnectionEnd::IoError),
        }
    }

    /// One read into the input buffer, raced against `deadline` (on the shard's deadline
    /// wheel) and, if `stop_on_drain`, against draining. A read that completes at once wins
    /// even past the deadline: the caller's loop is bounded by the request's size limits. A
    /// full buffer reads as `Failed`: the parser bounds every request to fit, so it cannot
    /// happen while a request is incomplete.
    async fn read_until(&mut self, deadline: Instant, stop_on_drain: bool) -> ReadOutcome {
        let shutdown = self.shutdown;
        let spare = self.input.spare();
        if spare.is_empty() {
            return ReadOutcome::Failed;
        }
        let stream = &mut self.stream;
        let read = async {
            match stream.read(spare).await {
                Ok(0) => (ReadOutcome::Eof, 0),
                Ok(n) => (ReadOutcome::Bytes, n),
                Err(_) => (ReadOutcome::Failed, 0),
            }
        };
        let drain = async {
            if stop_on_drain {
                shutdown.wait().await;
                (ReadOutcome::EventWait, 0)
            } else {
                future::pending().await
            }
        };
        let raced = deadline::race(deadline, future::or(read, drain)).await;
        let (outcome, read_bytes) = raced.unwrap_or((ReadOutcome::Deadline, 0));
        self.input.filled += read_bytes;
        outcome
    }

    /// Hands the request `parser` framed to the handler and writes its response; `Some` ends
    /// the loop.
    async fn respond<H: Handler>(
        &mut self,
        parser: &mut RequestParser,
        handler: &H,
    ) -> Option<ConnectionEnd> {
        let Some(request) = parser.request(self.input.filled()) else {
            return Some(ConnectionEnd::IoError);
        };
        let peer = Peer {
            keep_alive: request.keep_alive(),
            http11: request.minor_version() == 1,
            head_only: request.method() == "HEAD",
        };
        let mut writer = ResponseWriter::new(&mut self.stream, &mut self.out, self.shutdown, peer);
        let result = handler.handle(&request, &mut writer).await;
        let failed = complete_response(&mut writer, result).await;
        let close = writer.exchange.close;
        if self.out.capacity() > OUTPUT_RETAIN_BYTES_MAX {
            self.out.shrink_to(OUTPUT_RETAIN_BYTES_MAX);
        }
        if failed {
            Some(ConnectionEnd::IoError)
        } else if self.shutdown.is_set() {
            Some(ConnectionEnd::EventWait)
        } else if !close {
            None
        } else if !peer.keep_alive {
            Some(ConnectionEnd::PeerClosed)
        } else {
            Some(ConnectionEnd::Closed)
        }
    }

    /// Counts and answers a refusal, then closes gracefully.
    async fn refuse(&mut self, error: HttpError) -> ConnectionEnd {
        self.refusals.count(error.reason);
        let body = jsonrpc_error_body(&error.message);
        let refusal = Refusal {
            status: error.reason.http_status(),
            headers: &[],
            body: &body,
        };
        self.answer_and_linger(refusal).await;
        ConnectionEnd::Refused(error.reason)
    }

    /// Writes `refusal` with `Connection: close`, then lingers and closes.
    async fn answer_and_linger(&mut self, refusal: Refusal<'_>) {
        self.out.clear();
        let peer = Peer {
            keep_alive: false,
            http11: true,
            head_only: false,
        };
        let mut writer = ResponseWriter::new(&mut self.stream, &mut self.out, self.shutdown, peer);
        let written = writer.json(refusal.status, refusal.headers, refusal.body);
        if written.is_ok() && self.stream.write_all(&self.out).await.is_ok() {
            self.linger().await;
        }
        self.out.clear();
    }

    /// Half-closes, then reads and drops what the peer still sends, for a bounded time and at
    /// most one request's bytes, so the close does not reset the connection before the peer has
    /// read our answer.
    async fn linger(&mut self) {
        if self.stream.shutdown(Shutdown::Write).await.is_err() {
            return;
        }
        let limit = self.limits.header_read_timeout_ms.min(LINGER_MS_MAX);
        let deadline = deadline_in(limit);
        let mut dropped_bytes: usize = 0;
        let dropped_bytes_max = self.limits.input_buffer_bytes_max() as usize;
        // The clock is read each round: a peer that keeps sending never lets a read wait.
        while Instant::now() < deadline && dropped_bytes < dropped_bytes_max {
            self.input.filled = 0;
            if !matches!(self.read_until(deadline, false).await, ReadOutcome::Bytes) {
                return;
            }
            dropped_bytes += self.input.filled;
        }
    }
}

/// Makes sure exactly one whole response is on the wire: finishes a stream the handler left
/// open, answers `500` for a handler that wrote nothing or failed, writes a buffered response.
/// True when the connection must end with an I/O error.
async fn complete_response(writer: &mut ResponseWriter<'_>, result: io::Result<()>) -> bool {
    let handler_failed = result.is_err();
    let answered = match (result, writer.exchange.written) {
        (_, Written::Broken | Written::Finished) | (Err(_), Written::Streaming) => {
            return handler_failed || writer.exchange.written == Written::Broken;
        }
        (Ok(()), Written::Streaming) => {
            return writer.stream_view().finish_in_place().await.is_err();
        }
        (Ok(()), Written::Buffered) => Ok(()),
        (Ok(()), Written::Nothing) => {
            let body = jsonrpc_error_body("the handler wrote no response");
            writer.json(500, &[], &body)
        }
        (Err(error), Written::Nothing | Written::Buffered) => {
            writer.discard_buffered();
            writer.close_after();
            let body = jsonrpc_error_body(&format!("internal error: {error}"));
            writer.json(500, &[], &body)
        }
    };
    let sent = match answered {
        Ok(()) => writer.send_buffered().await,
        Err(error) => Err(error),
    };
    handler_failed || sent.is_err()
}

fn deadline_in(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

fn late_head(limits: &HttpLimits) -> HttpError {
    HttpError::new(
        RefusalReason::HeaderReadTimeout,
        format!(
            "request head not received within header_read_timeout_ms {}",
            limits.header_read_timeout_ms
        ),
    )
}

fn late_body(limits: &HttpLimits) -> HttpError {
    HttpError::new(
        RefusalReason::BodyReadTimeout,
        format!(
            "request body not received within body_read_timeout_ms {}",
            limits.body_read_timeout_ms
        ),
    )
}
