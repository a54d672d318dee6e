//! A small HTTP/1.1 server on `std::net` that receives webhooks: the endpoint behind
//! `keyhook listen` and `keyhook demo`, and the one integration tests and benchmarks post to.

mod connection;
mod encode;
mod parse;
mod server;
#[cfg(test)]
mod test_client;
mod tls;

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

pub use server::Server;
pub use tls::ServerTls;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method as sent, e.g. `POST`.
    pub method: String,
    /// The request target, e.g. `/hooks/qlm`.
    pub target: String,
    /// Header fields in the order received, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, with any chunked transfer coding removed.
    pub body: Vec<u8>,
    /// 1-based sequence number of the TCP connection it came on.
    pub connection: u64,
    /// When its last byte had been read.
    pub received_at: SystemTime,
}

impl Request {
    /// The value of the first header field called `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The target without its query string.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(path, _)| path)
    }

    /// The body as text, invalid UTF-8 replaced by U+FFFD.
    pub fn body_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code. A final response needs 200 to 999: a client reads 1xx as interim.
    pub status: u16,
    /// Header fields to send. `Content-Length`, `Transfer-Encoding` and `Connection` are the
    /// server's to write and are skipped here; set `close` to close the connection.
    pub headers: Vec<(String, String)>,
    /// The body; not sent for `HEAD` requests, nor with statuses 1xx, 204 and 304.
    pub body: Vec<u8>,
    /// Sleep this long before answering (for timeouts and slow receivers).
    pub delay: Option<Duration>,
    /// Close the connection after answering.
    pub close: bool,
    /// Close the socket without writing anything (after `delay`, if any).
    pub drop_without_reply: bool,
}

impl Reply {
    /// 200 with the body `ok`.
    pub fn ok() -> Reply {
        Reply::status(200).with_body("ok")
    }

    /// `code` with no headers and an empty body.
    pub fn status(code: u16) -> Reply {
        Reply {
            status: code,
            headers: Vec::new(),
            body: Vec::new(),
            delay: None,
            close: false,
            drop_without_reply: false,
        }
    }

    /// No reply at all: the connection is closed without writing anything.
    pub fn drop_without_reply() -> Reply {
        Reply {
            drop_without_reply: true,
            ..Reply::status(200)
        }
    }

    /// Adds a header field.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = body.into();
        self
    }

    /// Sleeps for `delay` before answering.
    pub fn with_delay(mut self, delay: Duration) -> Reply {
        self.delay = Some(delay);
        self
    }

    /// Closes the connection after answering, telling the client with `Connection: close`.
    pub fn with_close(mut self) -> Reply {
        self.close = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: "POST".to_owned(),
            target: target.to_owned(),
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            body: b"caf\xc3\xa9 \xff".to_vec(),
            connection: 1,
            received_at: SystemTime::now(),
        }
    }

    #[test]
    fn header_lookup_ignores_case_and_takes_the_first() {
        let request = request("/", &[("X-Sig", "a"), ("x-sig", "b"), ("Host", "h")]);
        assert_eq!(request.header("x-SIG"), Some("a"));
        assert_eq!(request.header("HOST"), Some("h"));
        assert_eq!(request.header("X-Missing"), None);
    }

    #[test]
    fn path_drops_the_query_string() {
        assert_eq!(request("/hooks/qlm?x=1&y=2", &[]).path(), "/hooks/qlm");
        assert_eq!(request("/hooks/qlm", &[]).path(), "/hooks/qlm");
    }

    #[test]
    fn body_text_replaces_invalid_utf8() {
        assert_eq!(request("/", &[]).body_text(), "café \u{fffd}");
    }

    #[test]
    fn builders_set_what_they_name() {
        let reply = Reply::status(503)
            .with_header("Retry-After", "7")
            .with_body("busy")
            .with_delay(Duration::from_millis(5))
            .with_close();
        assert_eq!(reply.status, 503);
        assert_eq!(reply.headers, [("Retry-After".to_owned(), "7".to_owned())]);
        assert_eq!(reply.body, b"busy");
        assert_eq!(reply.delay, Some(Duration::from_millis(5)));
        assert!(reply.close && !reply.drop_without_reply);
        assert_eq!(
            (Reply::ok().status, Reply::ok().body),
            (200, b"ok".to_vec())
        );
        assert!(Reply::drop_without_reply().drop_without_reply);
    }
}
