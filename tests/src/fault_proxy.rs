//! A fault-injecting TCP proxy for tests: it listens on 127.0.0.1 (any free
//! port; or another loopback address), forwards each connection to a real server on 127.0.0.1 (the mail
//! stack's ports, or a scripted peer), and at a chosen point cuts the
//! connection, stalls it (stops reading and forwarding in both directions, so
//! the windows fill as with a dead peer), or delays every chunk.
//!
//! The point is a sequence of [`Step`]s, each counted from where the one
//! before it was met: `[Step::Sent(Dir::ToServer, b"DATA\r\n"), Step::Bytes(Dir::ToClient, 0)]`
//! means "the first byte the server sends after the client sent DATA".
//! Byte counts work under TLS too (the proxy never decrypts); patterns only
//! make sense on plaintext connections.
//!
//! At the fault point the proxy can also hand the client bytes of its own
//! ([`Fault::replace`]) in place of what the server would send next: a
//! provider's `* BYE Session expired` or `NO [LIMIT]`, which a real server
//! does not produce on demand.
//!
//! The proxy also keeps every byte the client sent (see
//! [`FaultProxy::from_client`]), so that a test can check which commands
//! went out before the fault, and it can count one plan over all of a tool's
//! connections ([`Options::one_plan`]) for a tool that opens several.
//!
//! Bounded: at most `max_connections` connections are served, every thread
//! polls a stop flag, and everything is shut down when the proxy is dropped or
//! its lifetime (60 s unless set) is over, whichever comes first.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A direction of the proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// What the client (the tool) sends to the server.
    ToServer,
    /// What the server sends to the client.
    ToClient,
}

impl Dir {
    pub(crate) fn index(self) -> usize {
        match self {
            Dir::ToServer => 0,
            Dir::ToClient => 1,
        }
    }
}

/// One step towards the fault point, counted from where the previous step was met.
#[derive(Debug, Clone)]
pub enum Step {
    /// After this many more bytes in that direction (0: at once if the
    /// direction is the one being read, else before its next byte).
    Bytes(Dir, usize),
    /// Once these bytes have passed in that direction (they are forwarded).
    Sent(Dir, Vec<u8>),
    /// Just before these bytes in that direction (they are not forwarded).
    Before(Dir, Vec<u8>),
    /// After this many more reads in that direction (each forwarded whole).
    /// Under TLS a read is usually one record flight: the client's 1st is its
    /// ClientHello, its 2nd its Finished, then one per command.
    Chunks(Dir, usize),
}

/// What happens at the fault point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Shut both connections down (both directions): the tool reads EOF.
    Cut,
    /// Forward nothing more and read nothing more, in either direction, but
    /// keep the sockets open until the proxy ends: a peer that went silent.
    Stall,
}

/// What the proxy does to each connection.
#[derive(Debug, Clone)]
pub struct Fault {
    pub steps: Vec<Step>,
    /// `None`: a plain forwarder (with `delay`, a slow one).
    pub action: Option<Action>,
    /// Wait this long before forwarding each chunk read, in both directions.
    pub delay: Option<Duration>,
    /// Written to the client at the fault point, before the action.
    pub inject: Option<Vec<u8>>,
}

impl Fault {
    /// Forward everything unchanged (to measure a session, or as a control).
    pub fn none() -> Fault {
        Fault {
            steps: Vec::new(),
            action: None,
            delay: None,
            inject: None,
        }
    }

    /// Cut the connection at the point the steps describe.
    pub fn cut(steps: impl Into<Vec<Step>>) -> Fault {
        Fault {
            steps: steps.into(),
            action: Some(Action::Cut),
            delay: None,
            inject: None,
        }
    }

    /// Stall the connection at the point the steps describe.
    pub fn stall(steps: impl Into<Vec<Step>>) -> Fault {
        Fault {
            steps: steps.into(),
            action: Some(Action::Stall),
            delay: None,
            inject: None,
        }
    }

    /// Forward everything, each chunk after `delay`.
    pub fn delay(delay: Duration) -> Fault {
        Fault {
            steps: Vec::new(),
            action: None,
            delay: Some(delay),
            inject: None,
        }
    }

    /// At the point the steps describe, send the client `bytes` instead of
    /// what the server sends from there on, then `then`: cut (a server that
    /// says BYE and closes) or stall (one that said NO and waits).
    pub fn replace(steps: impl Into<Vec<Step>>, bytes: &[u8], then: Action) -> Fault {
        Fault {
            steps: steps.into(),
            action: Some(then),
            delay: None,
            inject: Some(bytes.to_vec()),
        }
    }
}

/// How a proxy is bounded, and whether its connections share one plan.
#[derive(Debug, Clone)]
pub struct Options {
    /// Connections served at most; later ones are not accepted...
    pub max_connections: usize,
    /// ...or, if set, accepted, sent these bytes and closed: a server's
    /// "too many connections" (`* BYE ...`), counted by [`FaultProxy::refused`].
    pub refuse_beyond: Option<Vec<u8>>,
    /// Everything ends after this long.
    pub lifetime: Duration,
    /// The address to listen on (127.0.0.2 reaches a server under a name
    /// its certificate does not have).
    pub listen: Ipv4Addr,
    /// Count the steps over all connections together (bytes, patterns,
    /// reads), and at the fault point cut or stall every connection, also
    /// those opened later: for a tool that fetches on several connections.
    pub one_plan: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_connections: 4,
            refuse_beyond: None,
            lifetime: Duration::from_secs(60),
            listen: Ipv4Addr::LOCALHOST,
            one_plan: false,
        }
    }
}

/// A running proxy; dropping it ends every connection and thread.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    stop: AtomicBool,
    fired: AtomicUsize,
    connections: AtomicUsize,
    refused: AtomicUsize,
    /// Bytes forwarded, per direction, over all connections.
    forwarded: [AtomicUsize; 2],
    /// Sizes of the chunks forwarded, in order (to learn a session's shape).
    chunks: Mutex<Vec<(Dir, usize)>>,
    /// Every byte read from the client, over all connections.
    from_client: Mutex<Vec<u8>>,
    sockets: Mutex<Vec<TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    deadline: Instant,
}

/// How often blocked threads look at the stop flag.
const TICK: Duration = Duration::from_millis(50);

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || Instant::now() >= self.deadline
    }

    fn shut_all(&self) {
        for s in lock(&self.sockets).iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl FaultProxy {
    /// A proxy to 127.0.0.1:`upstream` serving at most 4 connections for at most 60 s.
    pub fn start(upstream: u16, fault: Fault) -> FaultProxy {
        FaultProxy::start_opts(upstream, fault, Options::default())
    }

    pub fn start_with(
        upstream: u16,
        fault: Fault,
        max_connections: usize,
        lifetime: Duration,
    ) -> FaultProxy {
        let options = Options {
            max_connections,
            lifetime,
            ..Options::default()
        };
        FaultProxy::start_opts(upstream, fault, options)
    }

    /// A proxy to 127.0.0.1:`upstream` bounded and planned as `options` says.
    pub fn start_opts(upstream: u16, fault: Fault, options: Options) -> FaultProxy {
        let listener = TcpListener::bind((options.listen, 0))
            .unwrap_or_else(|e| panic!("fault proxy: bind {}: {e}", options.listen));
        let port = listener
            .local_addr()
            .expect("fault proxy: local address")
            .port();
        listener
            .set_nonblocking(true)
            .expect("fault proxy: non-blocking listener");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            fired: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            forwarded: [AtomicUsize::new(0), AtomicUsize::new(0)],
            chunks: Mutex::new(Vec::new()),
            from_client: Mutex::new(Vec::new()),
            sockets: Mutex::new(Vec::new()),
            workers: Mutex::new(Vec::new()),
            deadline: Instant::now() + options.lifetime,
        });
        let sh = Arc::clone(&shared);
        let acceptor = thread::spawn(move || accept_loop(listener, upstream, fault, &options, sh));
        FaultProxy {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The port to give the tool (on 127.0.0.1 / localhost, or [`Options::listen`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many connections reached the fault point.
    pub fn fired(&self) -> usize {
        self.shared.fired.load(Ordering::SeqCst)
    }

    /// Every byte the client sent so far (all connections, in the order
    /// read), including what was held back at the fault point.
    pub fn from_client(&self) -> Vec<u8> {
        lock(&self.shared.from_client).clone()
    }

    /// Waits until a connection reached the fault point; false if it did not within `within`.
    pub fn wait_fired(&self, within: Duration) -> bool {
        let until = Instant::now() + within;
        while self.fired() == 0 {
            if Instant::now() >= until {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections refused beyond `max_connections` ([`Options::refuse_beyond`]).
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Bytes forwarded in `dir` so far, over all connections.
    pub fn forwarded(&self, dir: Dir) -> usize {
        self.shared.forwarded[dir.index()].load(Ordering::SeqCst)
    }

    /// The sizes of the chunks forwarded so far, in order.
    pub fn chunks(&self) -> Vec<(Dir, usize)> {
        lock(&self.shared.chunks).clone()
    }

    /// Ends every connection now (the server sees its client go away).
    pub fn close(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.shut_all();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.close();
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let workers: Vec<_> = lock(&self.shared.workers).drain(..).collect();
        for w in workers {
            let _ = w.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    upstream: u16,
    fault: Fault,
    options: &Options,
    shared: Arc<Shared>,
) {
    // With one plan, every connection shares it and its fired flag.
    let one_plan = options.one_plan.then(|| {
        (
            Arc::new(Mutex::new(Plan::new(fault.steps.clone()))),
            Arc::new(AtomicBool::new(false)),
        )
    });
    while !shared.stopping() {
        let full = shared.connections.load(Ordering::SeqCst) >= options.max_connections;
        if full && options.refuse_beyond.is_none() {
            return;
        }
        let client = match accept_polling(&listener) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(_) => return,
        };
        if let (true, Some(bytes)) = (full, &options.refuse_beyond) {
            let _ = client.set_nonblocking(false);
            let _ = (&client).write_all(bytes);
            let _ = client.shutdown(Shutdown::Both);
            shared.refused.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nonblocking(false);
        for s in [&client, &server] {
            let _ = s.set_nodelay(true);
            let _ = s.set_read_timeout(Some(TICK));
        }
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        ) else {
            continue;
        };
        lock(&shared.sockets).extend([c3, s3]);
        let (plan, fired) = match &one_plan {
            Some((plan, fired)) => (Arc::clone(plan), Arc::clone(fired)),
            None => (
                Arc::new(Mutex::new(Plan::new(fault.steps.clone()))),
                Arc::new(AtomicBool::new(false)),
            ),
        };
        let conn = Arc::new(Connection {
            plan,
            action: fault.action,
            delay: fault.delay,
            inject: fault.inject.clone(),
            fired,
            shared_plan: one_plan.is_some(),
            sockets: [client.try_clone().ok(), server.try_clone().ok()],
        });
        let mut workers = lock(&shared.workers);
        for (dir, from, to) in [(Dir::ToServer, client, s2), (Dir::ToClient, server, c2)] {
            let (conn, shared) = (Arc::clone(&conn), Arc::clone(&shared));
            workers.push(thread::spawn(move || pump(dir, from, to, &conn, &shared)));
        }
    }
}

/// A read that only timed out (the proxies poll) or was interrupted: try again.
pub(crate) fn read_again(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// One connection from a non-blocking listener, or `None` after a short
/// sleep when none is waiting (the caller looks at its stop flag).
pub(crate) fn accept_polling(listener: &TcpListener) -> io::Result<Option<TcpStream>> {
    match listener.accept() {
        Ok((c, _)) => Ok(Some(c)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            thread::sleep(Duration::from_millis(2));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// One proxied connection: where it is on the way to the fault point.
struct Connection {
    plan: Arc<Mutex<Plan>>,
    action: Option<Action>,
    delay: Option<Duration>,
    inject: Option<Vec<u8>>,
    fired: Arc<AtomicBool>,
    /// The plan (and the fault) is the proxy's, not this connection's.
    shared_plan: bool,
    sockets: [Option<TcpStream>; 2],
}

impl Connection {
    /// At the fault point: this connection's sockets, or with one plan all of them.
    fn shut_at_fault(&self, shared: &Shared) {
        if self.shared_plan {
            shared.shut_all();
        }
        self.shut();
    }

    fn shut(&self) {
        for s in self.sockets.iter().flatten() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

struct Plan {
    steps: Vec<Step>,
    /// Index of the step being waited for.
    at: usize,
    /// Bytes seen in each direction since the current step began.
    counted: [usize; 2],
    /// The tail of each direction since the current step began (patterns across chunks).
    tail: [Vec<u8>; 2],
    /// Reads in each direction since the current step began.
    reads: [usize; 2],
}

impl Plan {
    fn new(steps: Vec<Step>) -> Plan {
        Plan {
            steps,
            at: 0,
            counted: [0, 0],
            tail: [Vec::new(), Vec::new()],
            reads: [0, 0],
        }
    }

    fn next_step(&mut self) {
        self.at += 1;
        self.counted = [0, 0];
        self.tail = [Vec::new(), Vec::new()];
        self.reads = [0, 0];
    }

    /// How much of `chunk` (read in `dir`) may be forwarded: `Ok(n)` all of it
    /// when n == len and the point is not reached, else `Err(n)`: forward n
    /// bytes, then the fault happens.
    fn advance(&mut self, dir: Dir, chunk: &[u8], armed: bool) -> Result<usize, usize> {
        let mut offset = 0;
        loop {
            if !armed {
                return Ok(chunk.len());
            }
            let Some(step) = self.steps.get(self.at).cloned() else {
                return Err(offset);
            };
            let rest = &chunk[offset..];
            let met = match &step {
                Step::Bytes(d, n) if *d == dir => {
                    let left = n.saturating_sub(self.counted[dir.index()]);
                    (left <= rest.len()).then_some(left)
                }
                Step::Sent(d, p) | Step::Before(d, p) if *d == dir => {
                    let tail = &self.tail[dir.index()];
                    let mut hay = tail.clone();
                    hay.extend_from_slice(rest);
                    find(&hay, p).map(|at| {
                        let end = if matches!(step, Step::Sent(..)) {
                            at + p.len()
                        } else {
                            at
                        };
                        end.saturating_sub(tail.len())
                    })
                }
                Step::Chunks(d, n) if *d == dir => {
                    if *n == 0 {
                        Some(0)
                    } else if !rest.is_empty() && self.reads[dir.index()] + 1 >= *n {
                        Some(rest.len())
                    } else {
                        None
                    }
                }
                _ => None,
            };
            match met {
                Some(used) => {
                    offset += used;
                    self.next_step();
                    if self.at == self.steps.len() {
                        return Err(offset);
                    }
                }
                None => {
                    if !rest.is_empty() {
                        self.reads[dir.index()] += 1;
                    }
                    self.counted[dir.index()] += rest.len();
                    let t = &mut self.tail[dir.index()];
                    t.extend_from_slice(rest);
                    let keep = match &step {
                        Step::Sent(_, p) | Step::Before(_, p) => p.len().saturating_sub(1),
                        Step::Bytes(..) | Step::Chunks(..) => 0,
                    };
                    let drop = t.len().saturating_sub(keep);
                    t.drain(..drop);
                    return Ok(chunk.len());
                }
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn pump(dir: Dir, mut from: TcpStream, mut to: TcpStream, conn: &Connection, shared: &Shared) {
    let armed = conn.action.is_some();
    // A fault with no steps happens before the first byte.
    if armed && lock(&conn.plan).steps.is_empty() {
        fire(conn, shared);
    }
    // A connection opened after a shared plan's cut is cut at once.
    if conn.fired.load(Ordering::SeqCst) && conn.action == Some(Action::Cut) {
        conn.shut();
    }
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if shared.stopping() {
            break;
        }
        if conn.fired.load(Ordering::SeqCst) {
            // Cut: the sockets are shut. Stall: read nothing, forward nothing.
            thread::sleep(TICK);
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if read_again(&e) => continue,
            Err(_) => break,
        };
        if dir == Dir::ToServer {
            lock(&shared.from_client).extend_from_slice(&buf[..n]);
        }
        let decision = {
            let mut plan = lock(&conn.plan);
            if conn.fired.load(Ordering::SeqCst) {
                Err(0)
            } else {
                plan.advance(dir, &buf[..n], armed)
            }
        };
        let forward = match decision {
            Ok(n) | Err(n) => n,
        };
        if let Some(d) = conn.delay {
            thread::sleep(d);
        }
        if forward > 0 {
            if to.write_all(&buf[..forward]).is_err() {
                break;
            }
            shared.forwarded[dir.index()].fetch_add(forward, Ordering::SeqCst);
            lock(&shared.chunks).push((dir, forward));
        }
        if decision.is_err() {
            fire(conn, shared);
        }
    }
    // This direction ended (EOF, error, stop): pass the end on.
    if !conn.fired.load(Ordering::SeqCst) || conn.action == Some(Action::Cut) {
        let _ = to.shutdown(Shutdown::Write);
    }
    if shared.stopping() {
        conn.shut();
    }
}

fn fire(conn: &Connection, shared: &Shared) {
    if conn.fired.swap(true, Ordering::SeqCst) {
        return;
    }
    shared.fired.fetch_add(1, Ordering::SeqCst);
    if let (Some(bytes), Some(mut client)) = (&conn.inject, conn.sockets[0].as_ref()) {
        let _ = client.write_all(bytes);
    }
    if conn.action == Some(Action::Cut) {
        conn.shut_at_fault(shared);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(dir: Dir, n: usize) -> Step {
        Step::Bytes(dir, n)
    }

    #[test]
    fn plan_counts_bytes_and_patterns_across_chunks() {
        let mut p = Plan::new(vec![bytes(Dir::ToClient, 5)]);
        assert_eq!(p.advance(Dir::ToClient, b"abc", true), Ok(3));
        assert_eq!(p.advance(Dir::ToServer, b"zzzzzz", true), Ok(6));
        assert_eq!(p.advance(Dir::ToClient, b"defg", true), Err(2));

        let mut p = Plan::new(vec![
            Step::Sent(Dir::ToServer, b"DATA\r\n".to_vec()),
            bytes(Dir::ToClient, 0),
        ]);
        assert_eq!(p.advance(Dir::ToServer, b"MAIL\r\nDA", true), Ok(8));
        assert_eq!(p.advance(Dir::ToClient, b"250 ok\r\n", true), Ok(8));
        assert_eq!(p.advance(Dir::ToServer, b"TA\r\nxx", true), Ok(6));
        assert_eq!(p.advance(Dir::ToClient, b"354 go\r\n", true), Err(0));

        let mut p = Plan::new(vec![
            Step::Chunks(Dir::ToServer, 2),
            bytes(Dir::ToClient, 0),
        ]);
        assert_eq!(p.advance(Dir::ToServer, b"hello", true), Ok(5));
        assert_eq!(p.advance(Dir::ToClient, b"reply", true), Ok(5));
        assert_eq!(p.advance(Dir::ToServer, b"finished", true), Ok(8));
        assert_eq!(p.advance(Dir::ToClient, b"greeting", true), Err(0));

        let mut p = Plan::new(vec![Step::Before(Dir::ToServer, b"AUTH".to_vec())]);
        assert_eq!(
            p.advance(Dir::ToServer, b"EHLO x\r\nAUTH PLAIN", true),
            Err(8)
        );
        let mut p = Plan::new(vec![Step::Sent(Dir::ToServer, b"AUTH".to_vec())]);
        assert_eq!(
            p.advance(Dir::ToServer, b"EHLO x\r\nAUTH PLAIN", true),
            Err(12)
        );
    }

    /// An echo server behind a proxy that cuts after 10 bytes from the server.
    #[test]
    fn cuts_after_n_bytes_and_forwards_before() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let echo = thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let _ = s.write_all(b"0123456789abcdefghij");
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut b = [0u8; 64];
                let _ = s.read(&mut b);
            }
        });
        let proxy = FaultProxy::start(port, Fault::cut([bytes(Dir::ToClient, 10)]));
        let mut c = TcpStream::connect(("127.0.0.1", proxy.port())).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        assert_eq!(got, b"0123456789");
        assert!(proxy.wait_fired(Duration::from_secs(1)));
        drop(c);
        drop(proxy);
        echo.join().expect("echo");
    }

    /// A server that sends 8 bytes to each of two connections, behind a proxy
    /// whose one plan cuts after 12 bytes over both: the first connection
    /// gets its 8, the second 4, and a third is cut at once. The client's
    /// bytes are kept, also those held back.
    #[test]
    fn one_plan_counts_over_all_connections_and_the_client_is_recorded() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = thread::spawn(move || {
            let mut held = Vec::new();
            for _ in 0..2 {
                if let Ok((mut s, _)) = listener.accept() {
                    let _ = s.write_all(b"01234567");
                    held.push(s);
                }
            }
            thread::sleep(Duration::from_millis(500));
        });
        let options = Options {
            one_plan: true,
            ..Options::default()
        };
        let proxy = FaultProxy::start_opts(port, Fault::cut([bytes(Dir::ToClient, 12)]), options);
        let read_all = |hello: &[u8]| {
            let mut c = TcpStream::connect(("127.0.0.1", proxy.port())).expect("connect");
            c.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let _ = c.write_all(hello);
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while got.len() < 8 {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            got
        };
        assert_eq!(read_all(b"one"), b"01234567");
        assert_eq!(read_all(b"two"), b"0123");
        assert!(proxy.wait_fired(Duration::from_secs(1)));
        assert_eq!(proxy.fired(), 1);
        assert_eq!(read_all(b""), b"", "a later connection is cut at once");
        let sent = proxy.from_client();
        assert!(
            sent.starts_with(b"one") && proxy.connections() == 3,
            "{sent:?}"
        );
        drop(proxy);
        server.join().expect("server");
    }

    /// `Fault::replace` hands the client its own bytes at the fault point
    /// instead of the server's; `refuse_beyond` answers connections past the
    /// limit with its bytes and counts them.
    #[test]
    fn replaces_the_server_and_refuses_beyond_the_limit() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let _ = s.write_all(b"0123456789");
                thread::sleep(Duration::from_millis(300));
            }
        });
        let options = Options {
            max_connections: 1,
            refuse_beyond: Some(b"* BYE too many\r\n".to_vec()),
            ..Options::default()
        };
        let fault = Fault::replace([bytes(Dir::ToClient, 4)], b"* BYE done\r\n", Action::Cut);
        let proxy = FaultProxy::start_opts(port, fault, options);
        let read_all = || {
            let mut c = TcpStream::connect(("127.0.0.1", proxy.port())).expect("connect");
            c.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let mut got = Vec::new();
            let _ = c.read_to_end(&mut got);
            got
        };
        assert_eq!(read_all(), b"0123* BYE done\r\n");
        assert_eq!(read_all(), b"* BYE too many\r\n");
        assert_eq!((proxy.connections(), proxy.refused()), (1, 1));
        drop(proxy);
        server.join().expect("server");
    }
}
