//! Reads the whole answer of one connection as a client would, apart from the crate's own
//! codec: heads with httparse, bodies and event streams by the decoder here. Says what is
//! wrong with an answer, or what it learned from it.

use std::borrow::Cow;

/// Header fields read per response head; the shard writes far fewer.
const HEADERS_MAX: usize = 64;

/// Hex digits of a chunk size: more would overflow the size.
const CHUNK_SIZE_DIGITS_MAX: usize = 2 * std::mem::size_of::<usize>();

/// What a well-formed answer told the client.
#[derive(Default)]
pub struct Answered {
    /// Every `Mcp-Session-Id` the responses carried, in order.
    pub session_ids: Vec<String>,
}

/// Checks `answer`, what the shard sent back on a connection whose requests frame to
/// `head_only` (per request, whether it was a HEAD), and returns what it told the client.
pub fn check(answer: &[u8], head_only: &[bool]) -> Result<Answered, String> {
    let mut answered = Answered::default();
    let mut rest = answer;
    let mut finals = 0;
    while !rest.is_empty() {
        let at = answer.len() - rest.len();
        let head_only = head_only.get(finals).copied().unwrap_or(false);
        let response = read_response(rest, head_only)
            .map_err(|problem| format!("response {} at byte {at}: {problem}", finals + 1))?;
        rest = &rest[response.consumed..];
        if response.interim {
            continue;
        }
        finals += 1;
        answered.session_ids.extend(response.session_id);
        if response.ends_connection && !rest.is_empty() {
            return Err(format!(
                "response {finals} at byte {at} ends the connection, yet {} bytes follow it",
                rest.len()
            ));
        }
    }
    // One answer per request framed, plus the refusal of what could not be framed.
    if finals > head_only.len() + 1 {
        return Err(format!(
            "{finals} responses to {} framed requests",
            head_only.len()
        ));
    }
    Ok(answered)
}

/// One response read from the start of an answer.
struct Response {
    consumed: usize,
    /// A `100 Continue`: the final response follows.
    interim: bool,
    /// Nothing may follow: `Connection: close`, a close-delimited body, or a stream cut short.
    ends_connection: bool,
    session_id: Option<String>,
}

/// The header fields that frame and describe a response.
#[derive(Default)]
struct Fields<'a> {
    content_length: Option<usize>,
    chunked: bool,
    content_type: Option<&'a str>,
    close: bool,
    session_id: Option<&'a str>,
}

impl<'a> Fields<'a> {
    fn read(headers: &[httparse::Header<'a>]) -> Result<Fields<'a>, String> {
        let mut fields = Fields::default();
        for header in headers {
            let value = std::str::from_utf8(header.value)
                .map_err(|_| format!("field {} is not UTF-8", header.name))?;
            let name = header.name.to_ascii_lowercase();
            let once = |seen: bool| match seen {
                true => Err(format!("field {name} appears twice")),
                false => Ok(()),
            };
            match name.as_str() {
                "content-length" => {
                    once(fields.content_length.is_some())?;
                    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
                    let length = value.parse().ok().filter(|_| digits);
                    fields.content_length = Some(
                        length.ok_or_else(|| format!("content-length {value:?} is no length"))?,
                    );
                }
                "transfer-encoding" => {
                    once(fields.chunked)?;
                    if !value.eq_ignore_ascii_case("chunked") {
                        return Err(format!("transfer-encoding {value:?} is not chunked"));
                    }
                    fields.chunked = true;
                }
                "content-type" => {
                    once(fields.content_type.is_some())?;
                    fields.content_type = Some(value);
                }
                "connection" => {
                    let token = |t: &str| t.trim().eq_ignore_ascii_case("close");
                    fields.close |= value.split(',').any(token);
                }
                "mcp-session-id" => {
                    once(fields.session_id.is_some())?;
                    fields.session_id = Some(value);
                }
                _ => {}
            }
        }
        if fields.chunked && fields.content_length.is_some() {
            return Err("both content-length and transfer-encoding".into());
        }
        Ok(fields)
    }
}

fn read_response(bytes: &[u8], head_only: bool) -> Result<Response, String> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut head = httparse::Response::new(&mut headers);
    let head_bytes = match head.parse(bytes) {
        Ok(httparse::Status::Complete(head_bytes)) => head_bytes,
        Ok(httparse::Status::Partial) => return Err(format!("head cut short: {:?}", lossy(bytes))),
        Err(e) => return Err(format!("head does not parse ({e}): {:?}", lossy(bytes))),
    };
    let version = head.version.ok_or("a complete head without a version")?;
    if version != 1 {
        return Err(format!("version HTTP/1.{version}, not HTTP/1.1"));
    }
    let status = head.code.ok_or("a complete head without a status")?;
    let fields = Fields::read(head.headers)?;
    let framed = fields.chunked || fields.content_length.is_some();
    if (100..200).contains(&status) {
        if status != 100 || framed {
            return Err(format!("interim status {status}, framed {framed}"));
        }
        return Ok(Response {
            consumed: head_bytes,
            interim: true,
            ends_connection: false,
            session_id: None,
        });
    }
    let after_head = &bytes[head_bytes..];
    let mut ends_connection = fields.close;
    let (body, body_bytes): (Cow<[u8]>, usize) = if status == 204 && framed {
        return Err("a 204 with a framed body".into());
    } else if head_only || status == 204 || status == 304 {
        (Cow::Borrowed(&[]), 0)
    } else if fields.chunked {
        let chunked = decode_chunked(after_head)?;
        if !chunked.ended && !is_event_stream(&fields) {
            return Err(format!(
                "a chunked {:?} body ends without its last chunk",
                fields.content_type
            ));
        }
        ends_connection |= !chunked.ended;
        (Cow::Owned(chunked.body), chunked.consumed)
    } else if let Some(length) = fields.content_length {
        let body = after_head.get(..length).ok_or_else(|| {
            format!(
                "content-length {length}, {} bytes follow: {:?}",
                after_head.len(),
                lossy(bytes)
            )
        })?;
        (Cow::Borrowed(body), length)
    } else {
        ends_connection = true;
        (Cow::Borrowed(after_head), after_head.len())
    };
    if !head_only {
        check_body(&fields, &body)
            .map_err(|problem| format!("status {status}: {problem}: {:?}", lossy(&body)))?;
    }
    Ok(Response {
        consumed: head_bytes + body_bytes,
        interim: false,
        ends_connection,
        session_id: fields.session_id.map(str::to_owned),
    })
}

/// The media type of `Content-Type`, without parameters, lowercased.
fn media_type(fields: &Fields<'_>) -> Option<String> {
    let value = fields.content_type?;
    let media = value.split(';').next().unwrap_or(value);
    Some(media.trim().to_ascii_lowercase())
}

fn is_event_stream(fields: &Fields<'_>) -> bool {
    media_type(fields).as_deref() == Some("text/event-stream")
}

fn check_body(fields: &Fields<'_>, body: &[u8]) -> Result<(), String> {
    match media_type(fields).as_deref() {
        Some("application/json") => serde_json::from_slice::<serde_json::Value>(body)
            .map(drop)
            .map_err(|e| format!("JSON body does not parse: {e}")),
        Some("text/event-stream") => check_events(body),
        _ => Ok(()),
    }
}

/// An event stream of whole lines and whole events, each event's data empty or JSON.
fn check_events(body: &[u8]) -> Result<(), String> {
    let mut lines = body.split(|&b| b == b'\n');
    // `split` yields what follows the last newline: empty when the stream ends with a line.
    let partial = lines.next_back().unwrap_or_default();
    if !partial.is_empty() {
        return Err(format!("event stream ends mid-line: {:?}", lossy(partial)));
    }
    let mut data: Option<Vec<u8>> = None;
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            match data.take() {
                Some(data) if !data.is_empty() => {
                    serde_json::from_slice::<serde_json::Value>(&data)
                        .map_err(|e| format!("event data is not JSON ({e}): {:?}", lossy(&data)))?;
                }
                _ => {}
            }
            continue;
        }
        if line.starts_with(b":") {
            continue;
        }
        let colon = line.iter().position(|&b| b == b':').unwrap_or(line.len());
        let value = line.get(colon + 1..).unwrap_or_default();
        let value = value.strip_prefix(b" ").unwrap_or(value);
        match &line[..colon] {
            b"data" => {
                let data = data.get_or_insert_with(Vec::new);
                if !data.is_empty() {
                    data.push(b'\n');
                }
                data.extend_from_slice(value);
            }
            b"id" | b"event" | b"retry" => {}
            field => return Err(format!("unknown event field {:?}", lossy(field))),
        }
    }
    match data {
        Some(_) => Err("event stream ends inside an event".into()),
        None => Ok(()),
    }
}

/// A chunked body decoded from the start of `bytes`.
struct Chunked {
    body: Vec<u8>,
    consumed: usize,
    /// The last chunk and the trailers came; else the bytes ran out at a chunk boundary.
    ended: bool,
}

fn decode_chunked(bytes: &[u8]) -> Result<Chunked, String> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        if at == bytes.len() {
            return Ok(Chunked {
                body,
                consumed: at,
                ended: false,
            });
        }
        let line = crlf_line(&bytes[at..]).ok_or("bytes run out inside a chunk size line")?;
        at += line.len() + 2;
        let digits = line.split(|&b| b == b';').next().unwrap_or(line);
        let hex = !digits.is_empty()
            && digits.len() <= CHUNK_SIZE_DIGITS_MAX
            && digits.iter().all(u8::is_ascii_hexdigit);
        let size = std::str::from_utf8(digits)
            .ok()
            .filter(|_| hex)
            .and_then(|digits| usize::from_str_radix(digits, 16).ok())
            .ok_or_else(|| format!("chunk size line {:?}", lossy(line)))?;
        if size == 0 {
            loop {
                let trailer = crlf_line(&bytes[at..]).ok_or("bytes run out inside the trailers")?;
                at += trailer.len() + 2;
                if trailer.is_empty() {
                    return Ok(Chunked {
                        body,
                        consumed: at,
                        ended: true,
                    });
                }
            }
        }
        let chunk = bytes
            .get(at..)
            .and_then(|rest| rest.get(..size))
            .ok_or_else(|| format!("a chunk of {size} bytes cut short"))?;
        body.extend_from_slice(chunk);
        at += size;
        if bytes.get(at..at + 2) != Some(b"\r\n") {
            return Err(format!("chunk of {size} bytes not ended by CRLF"));
        }
        at += 2;
    }
}

/// The line at the start of `bytes`, without its CRLF; `None` if no CRLF ends it.
fn crlf_line(bytes: &[u8]) -> Option<&[u8]> {
    let end = bytes.windows(2).position(|pair| pair == b"\r\n")?;
    Some(&bytes[..end])
}

pub fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}
