//! Reading an HTTP/1.1 request (RFC 9112) from a buffered stream: the request line and header
//! section, what they say about framing and persistence, then the body.

use std::io::{self, BufRead, Read};

/// Largest request line plus header section accepted; more is answered with 431.
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted; more is answered with 413.
pub(super) const MAX_BODY: u64 = 64 * 1024 * 1024;
/// Longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// Why no request could be read.
#[derive(Debug, PartialEq)]
pub(super) enum Failure {
    /// The client closed, reset or stalled: there is no one to answer.
    Gone,
    /// The request is unacceptable: answer with this status and reason, then close.
    Reject(u16, &'static str),
}

impl From<io::Error> for Failure {
    fn from(_: io::Error) -> Failure {
        Failure::Gone
    }
}

/// How the body of a request is delimited.
#[derive(Debug, PartialEq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked,
}

/// A request line and header section, with what they say about the rest of the exchange.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) method: String,
    pub(super) target: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) http10: bool,
    pub(super) framing: Framing,
    pub(super) keep_alive: bool,
    pub(super) expects_continue: bool,
}

/// Reads the next request's head, or `None` if the client closed cleanly between requests.
/// `line` is scratch space, reused across calls to save allocations.
pub(super) fn read_head<R: BufRead>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> Result<Option<Head>, Failure> {
    let mut budget = MAX_HEAD;
    // Empty lines before a request line are to be ignored (RFC 9112, section 2.2).
    loop {
        let used = read_line(
            reader,
            line,
            budget,
            Failure::Reject(414, "request line too long"),
        )?;
        if used == 0 {
            return Ok(None);
        }
        budget -= used;
        if !line.is_empty() {
            break;
        }
    }
    let (method, target, http10) = parse_request_line(line)?;
    let mut headers = Vec::new();
    loop {
        let too_large = Failure::Reject(431, "header section too large");
        let used = read_line(reader, line, budget, too_large)?;
        if used == 0 {
            return Err(Failure::Gone);
        }
        budget -= used;
        if line.is_empty() {
            break;
        }
        headers.push(parse_header(line)?);
    }
    Head::new(method, target, http10, headers).map(Some)
}

/// Reads the body `framing` announces.
pub(super) fn read_body<R: BufRead>(
    reader: &mut R,
    framing: &Framing,
    line: &mut Vec<u8>,
) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    match *framing {
        Framing::Empty => {}
        Framing::Length(length) => read_exactly(reader, length, &mut body)?,
        Framing::Chunked => read_chunked(reader, line, &mut body)?,
    }
    Ok(body)
}

impl Head {
    fn new(
        method: String,
        target: String,
        http10: bool,
        headers: Vec<(String, String)>,
    ) -> Result<Head, Failure> {
        let framing = framing(&headers)?;
        let connection = |token: &str| {
            elements(&headers, "connection").any(|element| element.eq_ignore_ascii_case(token))
        };
        // HTTP/1.1 connections persist unless closed; HTTP/1.0 ones only if asked to.
        let keep_alive = !connection("close") && (!http10 || connection("keep-alive"));
        let expects_continue = expects_continue(&headers)?;
        Ok(Head {
            method,
            target,
            headers,
            http10,
            framing,
            keep_alive,
            // An HTTP/1.0 client does not know 100 Continue (RFC 9110, section 10.1.1).
            expects_continue: expects_continue && !http10,
        })
    }
}

/// Reads one line into `line` (cleared first) without its LF or CRLF, consuming at most
/// `budget` bytes. Returns the bytes consumed: 0 at the end of the stream.
fn read_line<R: BufRead>(
    reader: &mut R,
    line: &mut Vec<u8>,
    budget: usize,
    too_long: Failure,
) -> Result<usize, Failure> {
    line.clear();
    let used = reader
        .by_ref()
        .take(budget as u64)
        .read_until(b'\n', line)?;
    if line.last() != Some(&b'\n') {
        return match used {
            0 if budget > 0 => Ok(0),
            used if used == budget => Err(too_long),
            _ => Err(Failure::Gone),
        };
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(used)
}

fn parse_request_line(line: &[u8]) -> Result<(String, String, bool), Failure> {
    let line = std::str::from_utf8(line).map_err(|_| bad("request line is not UTF-8"))?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("request line is not METHOD TARGET VERSION"));
    };
    if !is_token(method.as_bytes()) {
        return Err(bad("invalid method"));
    }
    if target.is_empty() || target.bytes().any(|byte| byte.is_ascii_control()) {
        return Err(bad("invalid request target"));
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ if version.starts_with("HTTP/") => {
            return Err(Failure::Reject(
                505,
                "only HTTP/1.0 and HTTP/1.1 are supported",
            ));
        }
        _ => return Err(bad("invalid HTTP version")),
    };
    Ok((method.to_owned(), target.to_owned(), http10))
}

fn parse_header(line: &[u8]) -> Result<(String, String), Failure> {
    let colon = line
        .iter()
        .position(|&byte| byte == b':')
        .ok_or(bad("header line without a colon"))?;
    // A name must be a token: this also rejects space before the colon and folded lines.
    let name = &line[..colon];
    if !is_token(name) {
        return Err(bad("invalid header name"));
    }
    let value = line[colon + 1..].trim_ascii();
    Ok((
        String::from_utf8_lossy(name).into_owned(),
        String::from_utf8_lossy(value).into_owned(),
    ))
}

fn framing(headers: &[(String, String)]) -> Result<Framing, Failure> {
    let present = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if present("transfer-encoding") {
        // Both at once is how request smuggling starts; refuse rather than pick one.
        if present("content-length") {
            return Err(bad("both Transfer-Encoding and Content-Length"));
        }
        let mut codings = elements(headers, "transfer-encoding");
        return match (codings.next(), codings.next()) {
            (Some(coding), None) if coding.eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
            _ => Err(Failure::Reject(
                501,
                "only the chunked transfer coding is supported",
            )),
        };
    }
    let mut length = None;
    for element in elements(headers, "content-length") {
        let value = parse_length(element)?;
        if length.is_some_and(|length| length != value) {
            return Err(bad("conflicting Content-Length values"));
        }
        length = Some(value);
    }
    match length {
        None if present("content-length") => Err(bad("empty Content-Length")),
        None | Some(0) => Ok(Framing::Empty),
        Some(length) if length > MAX_BODY => Err(too_large()),
        Some(length) => Ok(Framing::Length(length)),
    }
}

/// Whether the client waits for 100 Continue before sending its body.
fn expects_continue(headers: &[(String, String)]) -> Result<bool, Failure> {
    let mut expectations = elements(headers, "expect").peekable();
    let expects = expectations.peek().is_some();
    if expectations.all(|element| element.eq_ignore_ascii_case("100-continue")) {
        Ok(expects)
    } else {
        Err(Failure::Reject(
            417,
            "only Expect: 100-continue is supported",
        ))
    }
}

fn parse_length(text: &str) -> Result<u64, Failure> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(bad("invalid Content-Length"));
    }
    // Digits only, so the one possible error is overflow: far past MAX_BODY anyway.
    text.parse().map_err(|_| too_large())
}

/// Every non-empty comma-separated element of the header fields called `name`.
fn elements<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(candidate, _)| candidate.eq_ignore_ascii_case(name))
        .flat_map(|(_, value)| value.split(','))
        .map(str::trim)
        .filter(|element| !element.is_empty())
}

fn read_exactly<R: BufRead>(
    reader: &mut R,
    length: u64,
    body: &mut Vec<u8>,
) -> Result<(), Failure> {
    let wanted = body.len() as u64 + length;
    // Grow as bytes arrive rather than trusting a claimed length with a large allocation.
    body.reserve(length.min(1 << 20) as usize);
    reader.by_ref().take(length).read_to_end(body)?;
    if body.len() as u64 == wanted {
        Ok(())
    } else {
        Err(Failure::Gone)
    }
}

fn read_chunked<R: BufRead>(
    reader: &mut R,
    line: &mut Vec<u8>,
    body: &mut Vec<u8>,
) -> Result<(), Failure> {
    loop {
        let size = read_chunk_size(reader, line)?;
        if size == 0 {
            break;
        }
        if body.len() as u64 + size > MAX_BODY {
            return Err(too_large());
        }
        read_exactly(reader, size, body)?;
        let used = read_line(reader, line, 2, bad("chunk data not followed by CRLF"))?;
        if used == 0 {
            return Err(Failure::Gone);
        }
        if !line.is_empty() {
            return Err(bad("chunk data not followed by CRLF"));
        }
    }
    // Trailer fields are read and dropped: nothing downstream looks at them.
    let mut budget = MAX_HEAD;
    loop {
        let too_large = Failure::Reject(431, "trailer section too large");
        let used = read_line(reader, line, budget, too_large)?;
        if used == 0 {
            return Err(Failure::Gone);
        }
        budget -= used;
        if line.is_empty() {
            return Ok(());
        }
    }
}

fn read_chunk_size<R: BufRead>(reader: &mut R, line: &mut Vec<u8>) -> Result<u64, Failure> {
    let used = read_line(
        reader,
        line,
        MAX_CHUNK_LINE,
        bad("chunk size line too long"),
    )?;
    if used == 0 {
        return Err(Failure::Gone);
    }
    let size = line
        .split(|&byte| byte == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if size.is_empty() || !size.iter().all(u8::is_ascii_hexdigit) {
        return Err(bad("invalid chunk size"));
    }
    if size.len() > 15 {
        return Err(too_large());
    }
    let hex = std::str::from_utf8(size).map_err(|_| bad("invalid chunk size"))?;
    u64::from_str_radix(hex, 16).map_err(|_| bad("invalid chunk size"))
}

fn is_token(text: &[u8]) -> bool {
    !text.is_empty()
        && text
            .iter()
            .all(|&byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

fn bad(why: &'static str) -> Failure {
    Failure::Reject(400, why)
}

fn too_large() -> Failure {
    Failure::Reject(413, "body too large")
}

#[cfg(test)]
mod tests;
