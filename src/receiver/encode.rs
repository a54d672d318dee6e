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

/// `http`'s table of reason phrases (the same crate ureq uses), for a valid status code.
fn standard_reason(status: u16) -> Option<&'static str> {
    ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
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
