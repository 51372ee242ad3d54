//! A raw HTTP/1.1 client over `std::net::TcpStream` for tests.
//!
//! Raw on purpose: strictness tests must send malformed and ambiguous requests that a real
//! client library would refuse to build. Requests are plain bytes; responses are framed by
//! `Content-Length`, `chunked`, or connection close, and an SSE body can be read event by event.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long any single read may block before the test gives up on the server.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes read per `read` call.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// One parsed response. Header names keep the server's spelling; lookups ignore case.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of the headers named `name` (case-insensitive).
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The JSON-RPC message in the body: the body itself for `application/json`, or the last
    /// `data:` payload that parses as JSON for `text/event-stream`.
    pub fn json(&self) -> serde_json::Value {
        let is_sse = self
            .header("content-type")
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/event-stream"));
        if is_sse {
            let mut parser = SseParser::default();
            parser.push(&self.body);
            let mut last = None;
            while let Some(item) = parser.next_item() {
                if let SseItem::Event(event) = item {
                    if let Ok(value) = serde_json::from_str(&event.data) {
                        last = Some(value);
                    }
                }
            }
            return last
                .unwrap_or_else(|| panic!("sse body carries no json data event: {}", self.text()));
        }
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body of {} is not json ({e}): {:?}",
                self.status,
                self.text()
            )
        })
    }

    /// `error.code` of a JSON-RPC error body.
    pub fn error_code(&self) -> i64 {
        let value = self.json();
        value["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("no error.code in {value}"))
    }
}

/// One server-sent event, or one comment line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// The fields up to a blank line. A block with only `retry:` or `id:` is reported too.
    Event(SseEvent),
    /// A `:` comment line (keep-alives); the text after the colon, trimmed. Comments are lines,
    /// not blocks, so one is reported as soon as its line ends.
    Comment(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    /// `data:` lines joined with `\n`; empty both for `data:` with no value and for no field.
    pub data: String,
    /// Whether the block had a `data` field at all (an empty `data:` counts).
    pub has_data: bool,
    pub retry: Option<u64>,
}

/// Incremental SSE parser (line-based, as the SSE specification reads a stream): push bytes,
/// pull complete items.
#[derive(Default)]
pub struct SseParser {
    pending: Vec<u8>,
    event: SseEvent,
    has_field: bool,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The next complete item, if the buffer holds one: a comment line, or an event ended by a
    /// blank line. Lines end with `\n` or `\r\n`.
    pub fn next_item(&mut self) -> Option<SseItem> {
        loop {
            let end = self.pending.iter().position(|&b| b == b'\n')?;
            let mut line: Vec<u8> = self.pending.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                if self.has_field {
                    self.has_field = false;
                    return Some(SseItem::Event(std::mem::take(&mut self.event)));
                }
                continue;
            }
            if let Some(comment) = line.strip_prefix(':') {
                return Some(SseItem::Comment(comment.trim().to_owned()));
            }
            self.has_field = true;
            self.field(&line);
        }
    }

    fn field(&mut self, line: &str) {
        let (name, value) = match line.split_once(':') {
            Some((n, v)) => (n, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        let event = &mut self.event;
        match name {
            "id" => event.id = Some(value.to_owned()),
            "event" => event.event = Some(value.to_owned()),
            "retry" => event.retry = value.parse().ok(),
            "data" => {
                if event.has_data {
                    event.data.push('\n');
                }
                event.data.push_str(value);
                event.has_data = true;
            }
            _ => {}
        }
    }
}

/// How a response body is delimited, and how much of it is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked(ChunkState),
    UntilClose,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk with this many data bytes left, then CRLF.
    Data(usize),
    /// After the last chunk: trailers until a blank line.
    Trailers,
}

/// One client connection.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    framing: Framing,
}

/// What a closed-connection probe observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseProbe {
    /// The peer closed (EOF or reset) after this long.
    Closed(Duration),
    /// The peer sent bytes instead of closing.
    Data(Vec<u8>),
    /// Still open when the probe gave up.
    Open,
}

impl Conn {
    pub fn connect(addr: &str) -> Conn {
        Self::try_connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
    }

    pub fn try_connect(addr: &str) -> std::io::Result<Conn> {
        Self::from_stream(TcpStream::connect(addr)?)
    }

    /// A client on a stream connected elsewhere (e.g. with socket options set before connect).
    pub fn from_stream(stream: TcpStream) -> std::io::Result<Conn> {
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
            framing: Framing::Done,
        })
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
    }

    /// Writes, ignoring errors: for requests the server may refuse before reading them.
    pub fn send_lossy(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    /// Sends `request` and reads one whole response.
    pub fn roundtrip(&mut self, request: &[u8]) -> Response {
        self.send(request);
        self.read_response()
    }

    /// Reads one whole response (head and body).
    pub fn read_response(&mut self) -> Response {
        self.try_read_response()
            .unwrap_or_else(|e| panic!("read response: {e}"))
    }

    pub fn try_read_response(&mut self) -> std::io::Result<Response> {
        let mut response = self.try_read_head()?;
        while let Some(bytes) = self.read_body_piece()? {
            response.body.extend_from_slice(&bytes);
        }
        Ok(response)
    }

    /// Reads a status line and headers only; the body is then read with `read_body_piece` or
    /// `next_sse`. Interim 1xx responses are skipped.
    pub fn read_head(&mut self) -> Response {
        self.try_read_head()
            .unwrap_or_else(|e| panic!("read response head: {e}"))
    }

    pub fn try_read_head(&mut self) -> std::io::Result<Response> {
        loop {
            let end = loop {
                if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                    break end;
                }
                if self.fill()? == 0 {
                    return Err(std::io::Error::new(
                        ErrorKind::UnexpectedEof,
                        format!(
                            "connection closed before a complete response head ({} bytes: {:?})",
                            self.buf.len(),
                            String::from_utf8_lossy(&self.buf)
                        ),
                    ));
                }
            };
            let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            self.buf.drain(..end + 4);
            let response = parse_head(&head)?;
            if (100..200).contains(&response.status) {
                continue;
            }
            self.framing = framing_of(&response);
            return Ok(response);
        }
    }

    /// The next piece of body bytes, or `None` at the end of the body.
    pub fn read_body_piece(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            match self.framing {
                Framing::Done => return Ok(None),
                Framing::Length(0) => {
                    self.framing = Framing::Done;
                    return Ok(None);
                }
                Framing::Length(left) => {
                    if self.buf.is_empty() && self.fill()? == 0 {
                        return Err(eof("content-length body"));
                    }
                    let take = left.min(self.buf.len());
                    self.framing = Framing::Length(left - take);
                    return Ok(Some(self.buf.drain(..take).collect()));
                }
                Framing::UntilClose => {
                    if self.buf.is_empty() && self.fill()? == 0 {
                        self.framing = Framing::Done;
                        return Ok(None);
                    }
                    return Ok(Some(std::mem::take(&mut self.buf)));
                }
                Framing::Chunked(state) => {
                    if let Some(piece) = self.step_chunked(state)? {
                        return Ok(Some(piece));
                    }
                }
            }
        }
    }

    /// Advances the chunked decoder by one step; returns data when a step yields some.
    fn step_chunked(&mut self, state: ChunkState) -> std::io::Result<Option<Vec<u8>>> {
        match state {
            ChunkState::Size => {
                let line = self.take_line("chunk size")?;
                let size_text = line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size_text, 16).map_err(|e| {
                    std::io::Error::new(ErrorKind::InvalidData, format!("chunk size {line:?}: {e}"))
                })?;
                self.framing = Framing::Chunked(if size == 0 {
                    ChunkState::Trailers
                } else {
                    ChunkState::Data(size)
                });
                Ok(None)
            }
            ChunkState::Data(0) => {
                let line = self.take_line("chunk end")?;
                if !line.is_empty() {
                    return Err(std::io::Error::new(
                        ErrorKind::InvalidData,
                        format!("chunk not followed by crlf: {line:?}"),
                    ));
                }
                self.framing = Framing::Chunked(ChunkState::Size);
                Ok(None)
            }
            ChunkState::Data(left) => {
                if self.buf.is_empty() && self.fill()? == 0 {
                    return Err(eof("chunk data"));
                }
                let take = left.min(self.buf.len());
                self.framing = Framing::Chunked(ChunkState::Data(left - take));
                Ok(Some(self.buf.drain(..take).collect()))
            }
            ChunkState::Trailers => {
                if self.take_line("trailer")?.is_empty() {
                    self.framing = Framing::Done;
                }
                Ok(None)
            }
        }
    }

    fn take_line(&mut self, what: &str) -> std::io::Result<String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            if self.fill()? == 0 {
                return Err(eof(what));
            }
        }
    }

    /// The next SSE block of a streaming body, or `None` when the stream ended.
    pub fn next_sse(&mut self, parser: &mut SseParser) -> std::io::Result<Option<SseItem>> {
        loop {
            if let Some(item) = parser.next_item() {
                return Ok(Some(item));
            }
            match self.read_body_piece()? {
                Some(bytes) => parser.push(&bytes),
                None => return Ok(None),
            }
        }
    }

    /// Waits up to `within` for the peer to close; bytes or a still-open socket are reported.
    pub fn probe_close(&mut self, within: Duration) -> CloseProbe {
        if !self.buf.is_empty() {
            return CloseProbe::Data(std::mem::take(&mut self.buf));
        }
        let start = Instant::now();
        let mut byte = [0u8; READ_CHUNK_BYTES];
        loop {
            let left = within.saturating_sub(start.elapsed());
            if left.is_zero() {
                return CloseProbe::Open;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut byte) {
                Ok(0) => return CloseProbe::Closed(start.elapsed()),
                Ok(n) => return CloseProbe::Data(byte[..n].to_vec()),
                Err(e) if is_timeout(&e) => return CloseProbe::Open,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return CloseProbe::Closed(start.elapsed()),
            }
        }
    }

    fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; READ_CHUNK_BYTES];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

pub fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn eof(what: &str) -> std::io::Error {
    std::io::Error::new(
        ErrorKind::UnexpectedEof,
        format!("connection closed inside {what}"),
    )
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(head: &str) -> std::io::Result<Response> {
    let bad = |msg: String| std::io::Error::new(ErrorKind::InvalidData, msg);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(bad(format!("not an http/1.x status line: {status_line:?}")));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("no status code in {status_line:?}")))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("header line without colon: {line:?}")))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(Response {
        status,
        headers,
        body: Vec::new(),
    })
}

fn framing_of(response: &Response) -> Framing {
    if response.status == 204 || response.status == 304 {
        return Framing::Done;
    }
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        return Framing::Chunked(ChunkState::Size);
    }
    match response.header("content-length") {
        Some(len) => Framing::Length(len.parse().expect("numeric content-length")),
        None => Framing::UntilClose,
    }
}

/// A request built field by field, then rendered to raw bytes.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Request {
        Request {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: vec![("Host".to_owned(), "127.0.0.1".to_owned())],
            body: Vec::new(),
        }
    }

    /// Adds a header (repeats allowed).
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Removes every header named `name` (case-insensitive).
    pub fn without(mut self, name: &str) -> Request {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self
    }

    /// Sets the body; `Content-Length` is added when rendering unless a framing header is set.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.path).into_bytes();
        let framed = self.headers.iter().any(|(k, _)| {
            k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
        });
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if !framed && (!self.body.is_empty() || self.method == "POST") {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// `body` encoded as one chunk per `piece_bytes`, with the terminating zero chunk.
pub fn chunked(body: &[u8], piece_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in body.chunks(piece_bytes) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// One request on a fresh connection.
pub fn oneshot(addr: &str, request: &Request) -> Response {
    Conn::connect(addr).roundtrip(&request.to_bytes())
}
