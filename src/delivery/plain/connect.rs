//! Where a url's requests go: its endpoint (parsed, resolved once, its request head built) and
//! the connections to it.

use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Instant;

use ureq::http::Uri;

use super::{Connection, Endpoint, Failure, left};

/// The endpoint of `url`, resolved; `None` when the url is not for this client.
pub(super) fn endpoint(url: &str, deadline: Instant) -> Option<Result<Endpoint, Failure>> {
    let uri: Uri = url.parse().ok()?;
    if !uri.scheme_str()?.eq_ignore_ascii_case("http") {
        return None;
    }
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let addresses = match resolve(host, port, deadline) {
        Ok(addresses) => addresses,
        Err(failure) => return Some(Err(failure)),
    };
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    // `http://host?x=1` has the query alone: the target is still absolute.
    let root = if path.starts_with('/') { "" } else { "/" };
    let head = format!(
        "POST {root}{path} HTTP/1.1\r\nhost: {authority}\r\nuser-agent: {}\r\naccept: */*\r\n\
         content-type: application/json\r\n",
        crate::delivery::http::USER_AGENT
    );
    Some(Ok(Endpoint {
        url: url.to_string(),
        authority: authority.as_str().to_string(),
        addresses,
        head: head.into_bytes(),
    }))
}

/// The addresses of `host`, found before `deadline`. A name is looked up on a thread of its
/// own, as the system's resolver has no timeout: past the deadline the attempt fails and the
/// lookup is left to end by itself.
pub(in crate::delivery) fn resolve(
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, Failure> {
    if let Ok(address) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(address, port)]);
    }
    let (found, arrived) = mpsc::channel();
    let name = host.to_string();
    let resolver = std::thread::Builder::new().name("keyhook-resolve".into());
    let started = resolver.spawn(move || {
        let addresses = (name.as_str(), port).to_socket_addrs();
        let _ = found.send(addresses.map(Iterator::collect::<Vec<_>>));
    });
    if started.is_err() {
        // No thread for it (a limit on threads): looked up here, without the deadline.
        return match (host, port).to_socket_addrs() {
            Ok(found) => Some(found.collect::<Vec<_>>())
                .filter(|found| !found.is_empty())
                .ok_or(Failure::HostNotFound),
            Err(error) => Err(Failure::Lookup(error)),
        };
    }
    match arrived.recv_timeout(left(deadline)?) {
        Ok(Ok(addresses)) if !addresses.is_empty() => Ok(addresses),
        Ok(Err(error)) => Err(Failure::Lookup(error)),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(Failure::Timeout),
        _ => Err(Failure::HostNotFound),
    }
}

/// Connects to the first of the endpoint's addresses that answers, before `deadline`.
pub(super) fn connect(endpoint: &Endpoint, deadline: Instant) -> Result<Connection, Failure> {
    let mut last = Failure::Refused;
    for address in &endpoint.addresses {
        match TcpStream::connect_timeout(address, left(deadline)?) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(Connection {
                    stream,
                    authority: endpoint.authority.clone(),
                    read_timeout: None,
                    write_timeout: None,
                    sent: false,
                    heard: false,
                });
            }
            Err(error) => last = error.into(),
        }
    }
    Err(last)
}

/// One non-blocking peek: nothing waiting means open; an end of stream or stray bytes mean
/// the connection must not be reused.
pub(super) fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
    matches!(
        rustix::net::recv(stream, &mut byte, flags),
        Err(rustix::io::Errno::AGAIN)
    )
}
