//! The receiver's listening socket: accepts connections, gives each its own thread, and keeps
//! the record of what arrived for tests to inspect.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::connection;
use super::{Reply, Request, ServerTls};

/// What the server calls for every request.
pub(super) type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// How long `shutdown` tries to reach its own listener to wake the accept loop.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after a failed accept (out of file descriptors, say), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// A running HTTP/1.1 receiver. Stops accepting when shut down or dropped.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// What the accept thread, the connection threads and the `Server` handle share.
pub(super) struct Shared {
    handler: Box<Handler>,
    record: bool,
    tls: Option<ServerTls>,
    log: Mutex<Log>,
    arrived: Condvar,
    connections: AtomicU64,
    stopping: AtomicBool,
    /// A clone of each open connection's socket, so that stopping can close them.
    open: Mutex<HashMap<u64, TcpStream>>,
}

#[derive(Default)]
struct Log {
    requests: Vec<Request>,
    count: usize,
    /// Threads blocked in `wait_for`. Arrivals notify only when there are some, which keeps
    /// futex wake-ups off the benchmark's path.
    waiters: usize,
}

impl Server {
    /// Binds `addr` (e.g. `127.0.0.1:0`) and serves each connection on its own thread, calling
    /// `handler` for every request. Requests are recorded; see [`Server::requests`].
    pub fn start<H>(addr: &str, handler: H) -> io::Result<Server>
    where
        H: Fn(&Request) -> Reply + Send + Sync + 'static,
    {
        Server::launch(addr, Box::new(handler), true, None)
    }

    /// Like [`Server::start`], but keeps no copy of requests, so memory stays flat however
    /// many arrive; only [`Server::request_count`] is kept.
    pub fn start_unrecorded<H>(addr: &str, handler: H) -> io::Result<Server>
    where
        H: Fn(&Request) -> Reply + Send + Sync + 'static,
    {
        Server::launch(addr, Box::new(handler), false, None)
    }

    /// Like [`Server::start`], speaking TLS on every connection (`https://`).
    pub fn start_tls<H>(addr: &str, tls: ServerTls, handler: H) -> io::Result<Server>
    where
        H: Fn(&Request) -> Reply + Send + Sync + 'static,
    {
        Server::launch(addr, Box::new(handler), true, Some(tls))
    }

    /// Like [`Server::start_unrecorded`], over TLS when `tls` is given.
    pub fn start_unrecorded_with<H>(
        addr: &str,
        tls: Option<ServerTls>,
        handler: H,
    ) -> io::Result<Server>
    where
        H: Fn(&Request) -> Reply + Send + Sync + 'static,
    {
        Server::launch(addr, Box::new(handler), false, tls)
    }

    fn launch(
        addr: &str,
        handler: Box<Handler>,
        record: bool,
        tls: Option<ServerTls>,
    ) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            handler,
            record,
            tls,
            log: Mutex::default(),
            arrived: Condvar::new(),
            connections: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            open: Mutex::default(),
        });
        let acceptor = thread::Builder::new()
            .name("keyhook-listen".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || accept_loop(&listener, &shared)
            })?;
        Ok(Server {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address the server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` over TLS) followed by `path`.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.shared.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}{path}", reachable(self.addr))
    }

    /// A copy of the requests received so far, in arrival order (none if unrecorded).
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.log).requests.clone()
    }

    /// How many requests reached the handler; malformed ones answered with 4xx do not count.
    pub fn request_count(&self) -> usize {
        lock(&self.shared.log).count
    }

    /// How many TCP connections were accepted so far.
    pub fn connection_count(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Blocks until `n` requests arrived or `timeout` passed; returns whether they did.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut log = lock(&self.shared.log);
        log.waiters += 1;
        while log.count < n {
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            if left.is_zero() {
                break;
            }
            let waited = self.shared.arrived.wait_timeout(log, left);
            log = waited.unwrap_or_else(PoisonError::into_inner).0;
        }
        log.waiters -= 1;
        log.count >= n
    }

    /// Stops accepting and closes open connections without waiting for their threads: a
    /// handler still sleeping through a delay finishes on its own, unanswered.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // accept() cannot time out; a connection of our own wakes it up to see the flag.
        if TcpStream::connect_timeout(&reachable(self.addr), WAKE_TIMEOUT).is_ok() {
            let _ = acceptor.join();
        }
        for stream in lock(&self.shared.open).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("record", &self.shared.record)
            .field("requests", &self.request_count())
            .field("connections", &self.connection_count())
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(super) fn handler(&self) -> &Handler {
        &*self.handler
    }

    /// The TLS configuration connections are served with, if any.
    pub(super) fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.as_ref().map(ServerTls::config)
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub(super) fn record(&self, request: Request) {
        let mut log = lock(&self.log);
        log.count += 1;
        if self.record {
            log.requests.push(request);
        }
        if log.waiters > 0 {
            self.arrived.notify_all();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.is_stopping() {
            break;
        }
        match stream {
            Ok(stream) => admit(stream, shared),
            Err(_) => thread::sleep(ACCEPT_BACKOFF),
        }
    }
}

/// Numbers a new connection, registers it for shutdown and starts its thread.
fn admit(stream: TcpStream, shared: &Arc<Shared>) {
    let id = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
    if let Ok(clone) = stream.try_clone() {
        lock(&shared.open).insert(id, clone);
    }
    let worker = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name(format!("keyhook-conn-{id}"))
        .spawn(move || {
            connection::serve(&stream, id, &worker);
            lock(&worker.open).remove(&id);
        });
    if spawned.is_err() {
        lock(&shared.open).remove(&id);
    }
}

/// `addr`, with an unspecified IP (bound to all interfaces) replaced by loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Locks `mutex` even if a thread panicked holding it: every update under these locks is a
/// single push, insert or increment, so there is no half-done state to avoid.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
