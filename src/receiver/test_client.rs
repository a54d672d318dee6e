//! A raw `TcpStream` client for the receiver's tests: sends exact bytes, reads one response at
//! a time, and tells whether the server closed the connection.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::Server;

/// Long enough for any test's reply; short enough that a missing one fails instead of hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

/// A response as the client read it.
#[derive(Debug)]
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) reason: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Response {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

impl Client {
    pub(super) fn connect(server: &Server) -> Client {
        let stream = TcpStream::connect(server.addr()).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    pub(super) fn send(&mut self, bytes: impl AsRef<[u8]>) -> &mut Client {
        self.stream.write_all(bytes.as_ref()).unwrap();
        self
    }

    /// One line without its CRLF; panics if the connection closed first.
    pub(super) fn line(&mut self) -> String {
        let mut line = String::new();
        assert_ne!(
            self.reader.read_line(&mut line).unwrap(),
            0,
            "connection closed"
        );
        line.trim_end_matches(['\r', '\n']).to_owned()
    }

    /// A response's status line and header fields, with the body left unread (as for HEAD).
    pub(super) fn response_head(&mut self) -> Response {
        let status_line = self.line();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line:?}");
        let status = parts.next().and_then(|code| code.parse().ok()).unwrap();
        let reason = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let body = Vec::new();
        Response {
            status,
            reason,
            headers,
            body,
        }
    }

    /// A whole response, its body read by Content-Length.
    pub(super) fn response(&mut self) -> Response {
        let mut response = self.response_head();
        let length = response
            .header("content-length")
            .map_or(0, |n| n.parse().unwrap());
        response.body.resize(length, 0);
        self.reader.read_exact(&mut response.body).unwrap();
        response
    }

    /// Whether the server closed (or reset) the connection, without any more bytes.
    pub(super) fn is_closed(&mut self) -> bool {
        match self.reader.read(&mut [0; 1]) {
            Ok(0) => true,
            Ok(_) => false,
            Err(error) => error.kind() == ErrorKind::ConnectionReset,
        }
    }
}
