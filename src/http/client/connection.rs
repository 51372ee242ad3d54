//! One upstream connection's exchanges: write a request, read its response head, then its body
//! whole or piece by piece, each under a deadline. Exchanges on one connection are sequential
//! (no pipelining); the pool hands a connection to one caller at a time.
//!
//! The input buffer holds at most `response_head_bytes_max` bytes (and at least one 4 KiB
//! read): every element that must be whole before it is used (a head, a chunk size line, a
//! trailer section) fits in it, and body bytes leave it as soon as they are decoded.

use super::{write_request, ClientError, ClientErrorKind, ResponseHead, ResponseParser};
use crate::config::limits::ClientLimits;
use crate::http::buffer::InputBuffer;
use crate::support::deadline;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// Bytes of output capacity kept between requests; a larger buffer is shrunk back to this.
const OUTPUT_RETAIN_BYTES_MAX: usize = 64 * 1024;

/// One open connection to an upstream server.
pub struct ClientConnection {
    stream: TcpStream,
    input: InputBuffer,
    out: Vec<u8>,
    parser: ResponseParser,
    head_bytes_max: u32,
    /// The exchange so far leaves the connection fit for another one.
    reusable: bool,
}

enum Filled {
    Bytes,
    Eof,
}

impl ClientConnection {
    /// Wraps a connected stream.
    pub fn new(stream: TcpStream, limits: &ClientLimits) -> ClientConnection {
        ClientConnection {
            stream,
            input: InputBuffer::new(limits.response_head_bytes_max as usize),
            out: Vec::new(),
            parser: ResponseParser::new(limits),
            head_bytes_max: limits.response_head_bytes_max,
            reusable: false,
        }
    }

    /// True when the server has neither closed this idle connection nor sent bytes nobody
    /// asked for: one non-blocking peek, never a wait.
    pub fn peer_quiet(&self) -> bool {
        let mut probe = [0u8; 1];
        let mut peek = pin!(self.stream.peek(&mut probe));
        let mut cx = Context::from_waker(Waker::noop());
        // Pending means the socket had nothing to read; dropping the peek cancels it before
        // it is submitted.
        matches!(peek.as_mut().poll(&mut cx), Poll::Pending)
    }

    /// Writes one request (see [`write_request`]) before `deadline`. A refused request leaves
    /// the connection as it was.
    pub async fn send(
        &mut self,
        method: &str,
        target: &str,
        host: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        deadline: Instant,
    ) -> Result<(), ClientError> {
        debug_assert_eq!(self.input.filled, 0, "a response is still unread");
        self.out.clear();
        write_request(&mut self.out, method, target, host, headers, body)?;
        self.reusable = false;
        let written = deadline::race(deadline, self.stream.write_all(&self.out)).await;
        if self.out.capacity() > OUTPUT_RETAIN_BYTES_MAX {
            self.out = Vec::new();
        }
        match written {
            None => Err(timeout("request not written")),
            Some(Err(error)) => Err(io_closed("writing the request", &error)),
            Some(Ok(())) => Ok(()),
        }
    }

    /// Reads the response head (skipping interim `1xx` heads) before `deadline`.
    /// `request_method` is the method of the request it answers.
    pub async fn read_head(
        &mut self,
        request_method: &str,
        deadline: Instant,
    ) -> Result<ResponseHead, ClientError> {
        loop {
            if let Some(head) = self.parser.head(self.input.filled(), request_method)? {
                self.input.consume(head.consumed());
                self.reusable = head.keep_alive();
                return Ok(head);
            }
            if let Filled::Eof = self.fill(Some(deadline), "response head").await? {
                self.parser.end_of_input()?;
            }
        }
    }

    /// Reads the rest of a buffered body before `deadline`.
    pub async fn read_body(&mut self, deadline: Instant) -> Result<Vec<u8>, ClientError> {
        let mut body = Vec::new();
        while !self.read_body_some(&mut body, Some(deadline)).await? {}
        Ok(body)
    }

    /// Appends decoded body bytes to `out`, reading the socket at most until some arrive;
    /// true once the body is complete. Without a deadline it waits as long as the server
    /// does (an event stream's pace is the server's; the caller races its own deadline).
    pub async fn read_body_some(
        &mut self,
        out: &mut Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<bool, ClientError> {
        let before = out.len();
        loop {
            let progress = self.parser.body(self.input.filled(), out)?;
            self.input.consume(progress.consumed);
            if progress.done {
                self.reusable &= self.input.filled == 0;
                return Ok(true);
            }
            if out.len() > before {
                return Ok(false);
            }
            if let Filled::Eof = self.fill(deadline, "response body").await? {
                self.parser.end_of_input()?;
                self.reusable = false;
                return Ok(true);
            }
        }
    }

    /// After a whole response: the server allows another exchange and sent nothing extra.
    pub fn reusable(&self) -> bool {
        self.reusable
    }

    /// One read into the input buffer, raced against `deadline`.
    async fn fill(&mut self, deadline: Option<Instant>, what: &str) -> Result<Filled, ClientError> {
        let spare = self.input.spare();
        if spare.is_empty() {
            return Err(ClientError::too_large(format!(
                "{what} framing element exceeds response_head_bytes_max {}",
                self.head_bytes_max
            )));
        }
        let read = self.stream.read(spare);
        let outcome = match deadline {
            Some(deadline) => deadline::race(deadline, read).await,
            None => Some(read.await),
        };
        match outcome {
            None => Err(timeout(&format!("{what} not received"))),
            Some(Err(error)) => Err(io_closed(&format!("reading the {what}"), &error)),
            Some(Ok(0)) => Ok(Filled::Eof),
            Some(Ok(n)) => {
                self.input.filled += n;
                Ok(Filled::Bytes)
            }
        }
    }
}

fn timeout(what: &str) -> ClientError {
    ClientError::new(ClientErrorKind::Timeout, what.to_string())
}

fn io_closed(doing: &str, error: &std::io::Error) -> ClientError {
    let detail = error.to_string().to_lowercase();
    ClientError::new(ClientErrorKind::ClosedEarly, format!("{doing}: {detail}"))
}
