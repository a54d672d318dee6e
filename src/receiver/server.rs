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
            .name("keyhook-receiver".to_owned())
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
        .name(format!("keyhook-connection-{id}"))
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
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};

    use super::super::test_client::Client;
    use super::*;

    fn ok_server() -> Server {
        Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap()
    }

    fn get(target: &str) -> String {
        format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n")
    }

    #[test]
    fn requests_are_recorded_in_order_with_their_connection() {
        let server = ok_server();
        Client::connect(&server).send(get("/1")).response();
        let mut second = Client::connect(&server);
        second.send(get("/2")).response();
        second
            .send("POST /3 HTTP/1.1\r\nX-Sig: abc\r\nContent-Length: 2\r\n\r\n{}")
            .response();
        let requests = server.requests();
        let seen: Vec<_> = requests
            .iter()
            .map(|r| (r.target.as_str(), r.connection))
            .collect();
        assert_eq!(seen, [("/1", 1), ("/2", 2), ("/3", 2)]);
        assert_eq!(
            (requests[2].method.as_str(), requests[2].body.as_slice()),
            ("POST", &b"{}"[..])
        );
        assert_eq!(requests[2].header("x-sig"), Some("abc"));
        assert_eq!((server.request_count(), server.connection_count()), (3, 2));
    }

    #[test]
    fn an_unrecorded_server_counts_but_keeps_nothing() {
        let server = Server::start_unrecorded("127.0.0.1:0", |_| Reply::ok()).unwrap();
        let mut client = Client::connect(&server);
        client.send(get("/a")).response();
        client.send(get("/b")).response();
        assert_eq!(server.request_count(), 2);
        assert!(server.requests().is_empty());
    }

    #[test]
    fn wait_for_returns_once_requests_arrive_or_time_runs_out() {
        let server = ok_server();
        assert!(!server.wait_for(1, Duration::from_millis(50)));
        let addr = server.addr();
        let sender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(get("/late").as_bytes()).unwrap();
            stream.read_exact(&mut [0; 12]).unwrap();
        });
        assert!(server.wait_for(1, Duration::from_secs(5)));
        assert!(server.wait_for(0, Duration::ZERO));
        sender.join().unwrap();
    }

    #[test]
    fn url_points_at_loopback() {
        let server = Server::start("0.0.0.0:0", |_| Reply::ok()).unwrap();
        let port = server.addr().port();
        assert_eq!(
            server.url("/hooks/qlm"),
            format!("http://127.0.0.1:{port}/hooks/qlm")
        );
    }

    #[test]
    fn shutdown_does_not_hang_on_open_connections() {
        let delay = Duration::from_secs(30);
        let server = Server::start("127.0.0.1:0", move |request| {
            match request.target.as_str() {
                "/slow" => Reply::ok().with_delay(delay),
                _ => Reply::ok(),
            }
        })
        .unwrap();
        let addr = server.addr();
        let mut idle = Client::connect(&server);
        idle.send(get("/")).response();
        let mut slow = Client::connect(&server);
        slow.send(get("/slow"));
        assert!(server.wait_for(2, Duration::from_secs(5)));
        let started = Instant::now();
        server.shutdown();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(idle.is_closed());
        assert!(TcpStream::connect(addr).is_err());
    }

    #[test]
    fn dropping_the_server_stops_it() {
        let addr = {
            let server = ok_server();
            server.addr()
        };
        assert!(TcpStream::connect(addr).is_err());
    }

    /// Reads one response, reusing buffers, and returns its status.
    fn read_response(reader: &mut impl BufRead, line: &mut Vec<u8>, body: &mut Vec<u8>) -> u16 {
        line.clear();
        reader.read_until(b'\n', line).unwrap();
        let status = std::str::from_utf8(&line[9..12]).unwrap().parse().unwrap();
        let mut length = 0;
        loop {
            line.clear();
            reader.read_until(b'\n', line).unwrap();
            if line == b"\r\n" {
                break;
            }
            let text = std::str::from_utf8(line).unwrap();
            if let Some((name, value)) = text.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        body.resize(length, 0);
        reader.read_exact(body).unwrap();
        status
    }

    #[test]
    #[ignore = "benchmark: cargo test --release --lib receiver -- --ignored --nocapture"]
    fn sequential_keep_alive_throughput() {
        const REQUESTS: usize = 20_000;
        let server = Server::start_unrecorded("127.0.0.1:0", |_| Reply::ok()).unwrap();
        let body = format!("{{\"license\":\"{}\"}}", "k".repeat(886));
        assert_eq!(body.len(), 900);
        let request = format!(
            "POST /hooks/bench HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             X-Keyhook-Signature: sha256={}\r\nContent-Length: {}\r\n\r\n{body}",
            server.addr(),
            "0".repeat(64),
            body.len(),
        );
        let stream = TcpStream::connect(server.addr()).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut reader = BufReader::new(&stream);
        let (mut line, mut reply) = (Vec::new(), Vec::new());
        let started = Instant::now();
        for _ in 0..REQUESTS {
            (&stream).write_all(request.as_bytes()).unwrap();
            assert_eq!(read_response(&mut reader, &mut line, &mut reply), 200);
        }
        let elapsed = started.elapsed();
        let rate = REQUESTS as f64 / elapsed.as_secs_f64();
        println!(
            "receiver: {REQUESTS} sequential keep-alive POSTs in {elapsed:.2?}: {rate:.0} req/s"
        );
        assert_eq!(
            (server.request_count(), server.connection_count()),
            (REQUESTS, 1)
        );
    }
}
