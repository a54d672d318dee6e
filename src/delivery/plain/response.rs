//! Reading one answer off a connection: its head parsed in place, its body (by length, in
//! chunks, or to the end of the stream) read to its end so the connection can carry the next
//! request, and only what the log keeps copied out.

use std::io::Read;
use std::mem::MaybeUninit;
use std::time::Instant;

use httparse::Status;

use super::{Connection, Failure, left};
use crate::delivery::http::EXCERPT_BYTES;

/// An answer's head beyond this is not read.
const MAX_HEAD: usize = 64 * 1024;
/// A body is read up to this much; past it the connection is closed rather than drained.
const MAX_BODY: usize = 64 * 1024;
/// Header fields an answer may have.
const MAX_FIELDS: usize = 100;

/// What an answer said, as far as keyhook keeps it.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub retry_after: Option<String>,
    /// The first [`EXCERPT_BYTES`] of the body.
    pub excerpt: Vec<u8>,
}

/// Whether the connection can carry the next request.
#[derive(Debug, PartialEq, Eq)]
pub enum Framing {
    Reusable,
    Spent,
}

/// How the body's end is known.
enum Body {
    Length(usize),
    Chunked,
    UntilClose,
}

/// The head of an answer, as far as keyhook reads it.
struct Head {
    status: u16,
    location: Option<String>,
    retry_after: Option<String>,
    body: Body,
    keep_alive: bool,
}

/// The bytes read off a connection: `buf[pos..filled]` is what is not consumed yet.
struct Input<'a> {
    connection: &'a mut Connection,
    buf: &'a mut Vec<u8>,
    pos: usize,
    filled: usize,
    deadline: Instant,
}

/// Reads one whole answer (1xx interim answers skipped) into `buf`, a buffer kept between
/// requests.
pub(super) fn read(
    connection: &mut Connection,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<(Answer, Framing), Failure> {
    if buf.is_empty() {
        buf.resize(4096, 0);
    }
    let mut input = Input {
        connection,
        buf,
        pos: 0,
        filled: 0,
        deadline,
    };
    let head = input.head()?;
    let mut excerpt = Vec::new();
    // The status is the receiver's word on the delivery: a body cut short or still dripping
    // at the deadline leaves it standing (as with ureq), and only spends the connection.
    let whole = match head.body {
        Body::Length(length) => input.exact(length, &mut excerpt),
        Body::Chunked => input.chunked(&mut excerpt),
        Body::UntilClose => input.until_close(&mut excerpt).map(|_| false),
    }
    .unwrap_or(false);
    let framing = match whole && head.keep_alive && input.pos == input.filled {
        true => Framing::Reusable,
        false => Framing::Spent,
    };
    let answer = Answer {
        status: head.status,
        location: head.location,
        retry_after: head.retry_after,
        excerpt,
    };
    Ok((answer, framing))
}

impl Input<'_> {
    /// Reads more bytes; `false` at the end of the stream.
    fn fill(&mut self) -> Result<bool, Failure> {
        if self.pos == self.filled {
            (self.pos, self.filled) = (0, 0);
        }
        if self.filled == self.buf.len() {
            if self.pos > 0 {
                self.buf.copy_within(self.pos..self.filled, 0);
                (self.pos, self.filled) = (0, self.filled - self.pos);
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        loop {
            self.connection.set_read_timeout(left(self.deadline)?)?;
            match self.connection.stream.read(&mut self.buf[self.filled..]) {
                Ok(read) => {
                    self.filled += read;
                    self.connection.heard |= read > 0;
                    return Ok(read > 0);
                }
                // A signal (SIGTERM asks to stop after this request): keep waiting.
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// The answer's head, past any 1xx interim answers.
    fn head(&mut self) -> Result<Head, Failure> {
        let config = httparse::ParserConfig::default();
        loop {
            if self.pos == self.filled && !self.fill()? {
                return Err(Failure::Closed);
            }
            // Uninitialized: a zeroed array of fields would cost more than parsing the answer.
            let mut fields = [const { MaybeUninit::uninit() }; MAX_FIELDS];
            let waiting = &self.buf[self.pos..self.filled];
            let mut parsed = parse_head(&config, waiting, &mut fields);
            if let Err(httparse::Error::TooManyHeaders) = parsed {
                // As many fields as the largest head read can hold (a field is 4 bytes or
                // more): an answer is not refused for its number of fields.
                let mut many = vec![MaybeUninit::uninit(); MAX_HEAD / 4];
                parsed = parse_head(&config, waiting, &mut many);
            }
            match parsed {
                Ok(Status::Complete((length, head))) => {
                    let head = head?;
                    self.pos += length;
                    if (100..200).contains(&head.status) && head.status != 101 {
                        continue;
                    }
                    return Ok(head);
                }
                Ok(Status::Partial) if self.filled - self.pos >= MAX_HEAD => {
                    // Not read further; its status line still says what became of the request.
                    return status_line(&self.buf[self.pos..self.filled])
                        .filter(|status| *status >= 200)
                        .map(spent_head)
                        .ok_or_else(|| Failure::Malformed("its head is over 64 KiB".into()));
                }
                Ok(Status::Partial) => {}
                Err(error) => return Err(Failure::Malformed(error.to_string())),
            }
            if !self.fill()? {
                return Err(Failure::Closed);
            }
        }
    }

    /// Consumes `length` body bytes, keeping the excerpt; `false` when the body is too long
    /// to drain (the connection is then spent).
    fn exact(&mut self, mut length: usize, excerpt: &mut Vec<u8>) -> Result<bool, Failure> {
        let mut budget = MAX_BODY;
        while length > 0 {
            if self.pos == self.filled {
                if budget == 0 {
                    return Ok(false);
                }
                if !self.fill()? {
                    return Err(Failure::Closed);
                }
            }
            let take = length.min(self.filled - self.pos);
            keep(excerpt, &self.buf[self.pos..self.pos + take]);
            self.pos += take;
            length -= take;
            budget = budget.saturating_sub(take);
        }
        Ok(true)
    }

    /// Consumes a chunked body and its trailer; `false` when it is too long to drain.
    fn chunked(&mut self, excerpt: &mut Vec<u8>) -> Result<bool, Failure> {
        let mut read = 0;
        loop {
            let size = match httparse::parse_chunk_size(&self.buf[self.pos..self.filled]) {
                Ok(Status::Complete((used, size))) => {
                    self.pos += used;
                    usize::try_from(size).unwrap_or(usize::MAX)
                }
                Ok(Status::Partial) if self.filled - self.pos >= MAX_HEAD => {
                    return Err(Failure::Malformed(
                        "a chunk size line is over 64 KiB".into(),
                    ));
                }
                Ok(Status::Partial) => {
                    if !self.fill()? {
                        return Err(Failure::Closed);
                    }
                    continue;
                }
                Err(_) => return Err(Failure::Malformed("a bad chunk size".into())),
            };
            if size == 0 {
                return self.trailer().map(|()| true);
            }
            read += size;
            if read > MAX_BODY || !self.exact(size, excerpt)? {
                return Ok(false);
            }
            self.line_end()?;
        }
    }

    /// Consumes the CRLF after a chunk's data.
    fn line_end(&mut self) -> Result<(), Failure> {
        while self.filled - self.pos < 2 {
            if !self.fill()? {
                return Err(Failure::Closed);
            }
        }
        if &self.buf[self.pos..self.pos + 2] != b"\r\n" {
            return Err(Failure::Malformed("a chunk runs past its size".into()));
        }
        self.pos += 2;
        Ok(())
    }

    /// Consumes the trailer fields after the last chunk, up to the empty line.
    fn trailer(&mut self) -> Result<(), Failure> {
        loop {
            let waiting = &self.buf[self.pos..self.filled];
            match waiting.windows(2).position(|pair| pair == b"\r\n") {
                Some(0) => {
                    self.pos += 2;
                    return Ok(());
                }
                Some(end) => self.pos += end + 2,
                None if waiting.len() >= MAX_HEAD => {
                    return Err(Failure::Malformed("its trailer is over 64 KiB".into()));
                }
                None if !self.fill()? => return Err(Failure::Closed),
                None => {}
            }
        }
    }

    /// Consumes a body that ends with the stream; `false` when it is too long to drain.
    fn until_close(&mut self, excerpt: &mut Vec<u8>) -> Result<bool, Failure> {
        let mut read = 0;
        loop {
            let waiting = &self.buf[self.pos..self.filled];
            keep(excerpt, waiting);
            read += waiting.len();
            self.pos = self.filled;
            if read > MAX_BODY {
                return Ok(false);
            }
            if !self.fill()? {
                return Ok(true);
            }
        }
    }
}

/// Adds what fits of `bytes` to the excerpt.
fn keep(excerpt: &mut Vec<u8>, bytes: &[u8]) {
    let room = EXCERPT_BYTES.saturating_sub(excerpt.len());
    excerpt.extend_from_slice(&bytes[..room.min(bytes.len())]);
}

/// The status of a head's first line, `HTTP/1.x NNN ...`, if it is one.
pub(in crate::delivery) fn status_line(head: &[u8]) -> Option<u16> {
    let line = head.split(|&byte| byte == b'\r').next()?;
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))?;
    let digits = rest.get(..3)?;
    let after = rest.get(3).copied();
    if !digits.iter().all(u8::is_ascii_digit) || after.is_some_and(|byte| byte != b' ') {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A head keyhook did not read past its status line: nothing else is known, and the
/// connection cannot carry the next request.
fn spent_head(status: u16) -> Head {
    Head {
        status,
        location: None,
        retry_after: None,
        body: Body::Length(0),
        keep_alive: false,
    }
}

/// The parts of a parsed head keyhook uses.
/// A complete head's length, and what keyhook keeps of it.
type ParsedHead = (usize, Result<Head, Failure>);

/// Parses the head in `waiting` into `fields`: its length and what keyhook keeps of it.
fn parse_head<'b>(
    config: &httparse::ParserConfig,
    waiting: &'b [u8],
    fields: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Status<ParsedHead>, httparse::Error> {
    let mut parsed = httparse::Response::new(&mut []);
    let status = config.parse_response_with_uninit_headers(&mut parsed, waiting, fields)?;
    Ok(match status {
        Status::Complete(length) => Status::Complete((length, head_of(&parsed))),
        Status::Partial => Status::Partial,
    })
}

fn head_of(parsed: &httparse::Response) -> Result<Head, Failure> {
    let status = parsed.code.unwrap_or(0);
    let mut head = Head {
        status,
        location: None,
        retry_after: None,
        body: Body::UntilClose,
        keep_alive: parsed.version == Some(1),
    };
    let mut length: Option<usize> = None;
    let mut chunked = None;
    for field in parsed.headers.iter() {
        let text = || {
            std::str::from_utf8(field.value)
                .ok()
                .map(|v| v.trim().to_string())
        };
        // `Location` and `Retry-After` are shown and logged: bytes that are not UTF-8 are
        // still the receiver's word, not a missing field.
        let lossy = || Some(String::from_utf8_lossy(field.value).trim().to_string());
        let name = field.name;
        if name.eq_ignore_ascii_case("content-length") {
            let value = text().and_then(|value| value.parse().ok());
            match (value, length) {
                (Some(value), None) => length = Some(value),
                (Some(value), Some(seen)) if value == seen => {}
                _ => return Err(Failure::Malformed("a bad Content-Length".into())),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let value = text().unwrap_or_default();
            let last = value.rsplit(',').next().unwrap_or("").trim();
            chunked = Some(last.eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            let value = text().unwrap_or_default();
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    head.keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && parsed.version == Some(0) {
                    head.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("location") {
            head.location = lossy();
        } else if name.eq_ignore_ascii_case("retry-after") {
            head.retry_after = lossy();
        }
    }
    // 101: the connection is no longer HTTP (keyhook never asks to switch).
    head.keep_alive &= status != 101;
    head.body = match (status, chunked, length) {
        (100..=199 | 204 | 304, _, _) => Body::Length(0),
        (_, Some(true), _) => Body::Chunked,
        (_, Some(false), _) => Body::UntilClose,
        (_, None, Some(length)) => Body::Length(length),
        (_, None, None) => Body::UntilClose,
    };
    Ok(head)
}
