//! A receiver that is down: a port on 127.0.0.1 that refuses connections and that no one
//! else can take, and the same port brought back up later.
//!
//! Binding a listener and dropping it to get a "free" port races: between the drop and the
//! use, another test's server or an outgoing connection may be given that port. Keeping the
//! listener does not give "refused" either: the kernel completes handshakes into its backlog
//! without `accept`, so connections succeed and then hang. A TCP socket that is bound but not
//! listening does both jobs: it holds the port for as long as it lives (it sets no
//! `SO_REUSEADDR`, so no one can bind there too), and, as nothing listens, every connection
//! to it is answered with a reset: refused at once.

use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use keyhook::receiver::Server;
use rustix::net::{AddressFamily, SocketType};

/// A port held by this test where nothing listens.
pub struct ClosedPort {
    socket: OwnedFd,
    addr: SocketAddr,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        let socket = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)
            .expect("a TCP socket");
        rustix::net::bind(&socket, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let bound = rustix::net::getsockname(&socket).expect("getsockname");
        let addr = SocketAddr::try_from(bound).expect("an IPv4 address");
        ClosedPort { socket, addr }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Starts listening on the held port, so the receiver is back at the address where it was
    /// down, and passes every connection through to `server`. Stops when dropped.
    pub fn forward_to(self, server: &Server) -> Forwarder {
        rustix::net::listen(&self.socket, 128).expect("listen");
        let listener = TcpListener::from(self.socket);
        let stopping = Arc::new(AtomicBool::new(false));
        let target = server.addr();
        thread::spawn({
            let stopping = Arc::clone(&stopping);
            move || forward(&listener, target, &stopping)
        });
        Forwarder {
            addr: self.addr,
            stopping,
        }
    }
}

/// The accept loop of [`ClosedPort::forward_to`].
pub struct Forwarder {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // accept() cannot time out; a connection of our own wakes it up to see the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn forward(listener: &TcpListener, target: SocketAddr, stopping: &AtomicBool) {
    for client in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let (Ok(client), Ok(upstream)) = (client, TcpStream::connect(target)) else {
            continue;
        };
        let (Ok(client_reader), Ok(upstream_reader)) = (client.try_clone(), upstream.try_clone())
        else {
            continue;
        };
        pipe(client_reader, upstream);
        pipe(upstream_reader, client);
    }
}

/// Copies `from` into `to` on its own thread until `from` ends, then ends `to` as well.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    thread::spawn(move || {
        let _ = io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}
