//! Writing an HTTP/1.1 response: the status line with its reason phrase, header fields and body,
//! all in one buffer.

use super::Reply;

/// The interim response for a client that sent `Expect: 100-continue`.
pub(super) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Encodes `reply` into one buffer, so that it leaves in a single write. `connection` is the
/// `Connection` header to send, if any; `omit_body` is for answers to `HEAD`.
pub(super) fn response(reply: &Reply, omit_body: bool, connection: Option<&str>) -> Vec<u8> {
    // RFC 9110, sections 8.6 and 15: these statuses have no content and 1xx and 204 no length.
    let bodiless = matches!(reply.status, 100..=199 | 204 | 304);
    let fields: usize = reply
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 4)
        .sum();
    let mut out = String::with_capacity(96 + fields + reply.body.len());
    out.push_str(&format!(
        "HTTP/1.1 {} {}\r\n",
        reply.status,
        reason_phrase(reply.status)
    ));
    for (name, value) in &reply.headers {
        if !["content-length", "transfer-encoding", "connection"]
            .iter()
            .any(|framing| name.eq_ignore_ascii_case(framing))
        {
            out.extend([name, ": ", value, "\r\n"]);
        }
    }
    if !bodiless {
        out.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    if let Some(connection) = connection {
        out.extend(["Connection: ", connection, "\r\n"]);
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !bodiless && !omit_body {
        out.extend_from_slice(&reply.body);
    }
    out
}

/// The standard reason phrase for `status`, or a generic one for its class.
fn reason_phrase(status: u16) -> &'static str {
    standard_reason(status).unwrap_or(match status / 100 {
        1 => "Informational",
        2 => "Success",
        3 => "Redirection",
        4 => "Client Error",
        5 => "Server Error",
        _ => "Unknown",
    })
}

fn standard_reason(status: u16) -> Option<&'static str> {
    let phrase = match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => return None,
    };
    Some(phrase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_encoded_with_length_and_reason() {
        let reply = Reply::status(503)
            .with_header("Retry-After", "7")
            .with_header("content-length", "999")
            .with_header("Connection", "keep-alive")
            .with_body("busy");
        let encoded = response(&reply, false, Some("close"));
        let expected = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n\
                        Content-Length: 4\r\nConnection: close\r\n\r\nbusy";
        assert_eq!(String::from_utf8(encoded).unwrap(), expected);
    }

    #[test]
    fn bodies_are_left_out_where_http_forbids_them() {
        let head_reply = response(&Reply::ok(), true, None);
        assert_eq!(head_reply, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
        let no_content = response(&Reply::status(204).with_body("x"), false, None);
        assert_eq!(no_content, b"HTTP/1.1 204 No Content\r\n\r\n");
    }

    #[test]
    fn unknown_statuses_get_their_class_as_reason() {
        assert_eq!(reason_phrase(299), "Success");
        assert_eq!(reason_phrase(499), "Client Error");
        assert_eq!(reason_phrase(42), "Unknown");
    }
}
