//! A link emulator: a TCP proxy on 127.0.0.1 that makes a loopback server
//! look far away, for benchmarks and tests of tools at a distance (kernel
//! netem is not available to us).
//!
//! In each direction, every chunk read is stamped with the time it was read;
//! it is serialised onto the emulated wire at the link's bandwidth (a token
//! bucket without burst: a chunk starts when the previous one has left, or
//! when it was read, whichever is later) and delivered `one_way_delay` after
//! it left. The wire is the link's, not a connection's: a tool's parallel
//! connections share the bandwidth, as they do on a real path. So bytes sent together arrive together, bytes sent one round trip
//! apart arrive one round trip apart, and a bulk transfer is paced at the
//! bandwidth, with up to one bandwidth-delay product in flight.
//!
//! TCP's semantics stay honest: bytes keep their order; a half-close (EOF)
//! reaches the other side after the bytes before it, one delay after it was
//! read; a reset reaches the other side as a reset (SO_LINGER 0) after the
//! bytes in flight; each direction holds at most one bandwidth-delay product
//! plus a router's queue ([`Profile::queue_bytes`]) and then stops reading,
//! so a slow reader pushes back on the sender through the kernel windows.
//! A new connection costs its handshake: the client's connect returns at
//! once (the kernel answers it), so the link holds what the client sends
//! until one round trip after the connect, when its data would arrive, and
//! what the server sends until it would reach the client (a greeting two
//! round trips after the connect, as on a real path).
//! Loopback's own ACKs are immediate, so a sender's Nagle and window growth
//! behave as on loopback, not as on a long path.
//!
//! Threads, no async runtime: two per direction of each connection, polling
//! a stop flag every [`TICK`]; dropping the [`Link`] ends everything.

use crate::fault_proxy::{accept_polling, lock, read_again, Dir};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The emulated path, the same in both directions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Added to every byte in each direction: a round trip costs twice this.
    pub one_way_delay: Duration,
    /// The bandwidth cap in each direction; 0 means no cap.
    pub bandwidth_bits_per_s: u64,
}

impl Profile {
    /// A path of `delay_ms` each way (round trip twice that) at `mbit` Mbit/s (0: no cap).
    pub fn new(delay_ms: f64, mbit: f64) -> Profile {
        Profile {
            one_way_delay: Duration::from_secs_f64(delay_ms.max(0.0) / 1000.0),
            bandwidth_bits_per_s: (mbit.max(0.0) * 1_000_000.0) as u64,
        }
    }

    /// The time `len` bytes take to leave at the bandwidth.
    fn serialisation(&self, len: usize) -> Duration {
        if self.bandwidth_bits_per_s == 0 {
            return Duration::ZERO;
        }
        let nanos = len as u128 * 8 * 1_000_000_000 / u128::from(self.bandwidth_bits_per_s);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// What one direction holds at most before it stops reading: the
    /// bandwidth-delay product (so the link can be filled) plus 256 KiB of
    /// router queue; 4 MiB plus the queue when the bandwidth is not capped.
    pub fn queue_bytes(&self) -> usize {
        const QUEUE: usize = 256 * 1024;
        if self.bandwidth_bits_per_s == 0 {
            return 4 * 1024 * 1024 + QUEUE;
        }
        let bdp = u128::from(self.bandwidth_bits_per_s) * self.one_way_delay.as_nanos()
            / 8
            / 1_000_000_000;
        usize::try_from(bdp).unwrap_or(usize::MAX / 2) + QUEUE
    }
}

/// What has passed through a link so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Bytes delivered to the server (from the client).
    pub to_server: u64,
    /// Bytes delivered to the client (from the server).
    pub to_client: u64,
    /// Connections accepted.
    pub accepted: usize,
    /// Connections over (both directions ended, or reset).
    pub closed: usize,
    /// The most bytes one direction of one connection held at once.
    pub peak_queued: usize,
}

/// How often blocked threads look at the stop flag.
const TICK: Duration = Duration::from_millis(50);
/// The most read at once: a chunk is delivered whole, so this is the
/// granularity of the pacing (1.3 ms at 100 Mbit/s).
const CHUNK: usize = 16 * 1024;

/// A running link; dropping it ends every connection and thread.
pub struct Link {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    profile: Profile,
    stop: AtomicBool,
    delivered: [AtomicU64; 2],
    accepted: AtomicUsize,
    closed: AtomicUsize,
    peak_queued: AtomicUsize,
    /// When the emulated wire is free again, to the server and to the
    /// client: every connection's chunks take turns on it.
    wire_free: [Mutex<Instant>; 2],
    /// The live connections, to shut them down when the link stops.
    conns: Mutex<Vec<Weak<Conn>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Link {
    /// A link to 127.0.0.1:`upstream` on a free port of 127.0.0.1.
    pub fn start(upstream: u16, profile: Profile) -> io::Result<Link> {
        Link::start_on(0, upstream, profile)
    }

    /// A link to 127.0.0.1:`upstream` listening on 127.0.0.1:`listen` (0: any free port).
    pub fn start_on(listen: u16, upstream: u16, profile: Profile) -> io::Result<Link> {
        let listener = TcpListener::bind(("127.0.0.1", listen))?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            profile,
            stop: AtomicBool::new(false),
            delivered: [AtomicU64::new(0), AtomicU64::new(0)],
            accepted: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            peak_queued: AtomicUsize::new(0),
            wire_free: [Mutex::new(Instant::now()), Mutex::new(Instant::now())],
            conns: Mutex::new(Vec::new()),
            workers: Mutex::new(Vec::new()),
        });
        let sh = Arc::clone(&shared);
        let acceptor = thread::spawn(move || accept_loop(&listener, upstream, &sh));
        Ok(Link {
            port,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The port to give the tool, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Bytes delivered in `dir` so far, over all connections.
    pub fn delivered(&self, dir: Dir) -> u64 {
        self.shared.delivered[dir.index()].load(Ordering::SeqCst)
    }

    /// Everything counted so far.
    pub fn counts(&self) -> Counts {
        let s = &self.shared;
        Counts {
            to_server: self.delivered(Dir::ToServer),
            to_client: self.delivered(Dir::ToClient),
            accepted: s.accepted.load(Ordering::SeqCst),
            closed: s.closed.load(Ordering::SeqCst),
            peak_queued: s.peak_queued.load(Ordering::SeqCst),
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for c in lock(&self.shared.conns).iter().filter_map(Weak::upgrade) {
            c.shut();
        }
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let workers: Vec<_> = lock(&self.shared.workers).drain(..).collect();
        for w in workers {
            let _ = w.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, upstream: u16, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let client = match accept_polling(listener) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(_) => return,
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
            // As a refused connection: the client sees a reset.
            let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
            shared.closed.fetch_add(1, Ordering::SeqCst);
            continue;
        };
        let _ = client.set_nonblocking(false);
        for s in [&client, &server] {
            // The link paces the writes; Nagle must not hold them back.
            let _ = s.set_nodelay(true);
            let _ = s.set_read_timeout(Some(TICK));
        }
        let conn = Arc::new(Conn {
            opened: Instant::now(),
            sockets: [client, server],
            pipes: [Pipe::default(), Pipe::default()],
            dead: AtomicBool::new(false),
            ended: AtomicUsize::new(0),
            shared: Arc::clone(shared),
        });
        let mut conns = lock(&shared.conns);
        conns.retain(|w| w.strong_count() > 0);
        conns.push(Arc::downgrade(&conn));
        drop(conns);
        let mut workers = lock(&shared.workers);
        workers.retain(|w| !w.is_finished());
        for dir in [Dir::ToServer, Dir::ToClient] {
            let c = Arc::clone(&conn);
            workers.push(thread::spawn(move || read_side(dir, &c)));
            let c = Arc::clone(&conn);
            workers.push(thread::spawn(move || write_side(dir, &c)));
        }
    }
}

/// One proxied connection; its sockets close when the last of its four
/// threads lets go of it.
struct Conn {
    /// When the client's connect was accepted.
    opened: Instant,
    /// The client's socket, then the server's.
    sockets: [TcpStream; 2],
    /// What is in flight to the server, then to the client.
    pipes: [Pipe; 2],
    /// Reset: every thread of the connection stops.
    dead: AtomicBool,
    /// Directions whose end (EOF or reset) was delivered.
    ended: AtomicUsize,
    shared: Arc<Shared>,
}

impl Conn {
    /// The socket read from, and the one written to, in `dir`.
    fn ends(&self, dir: Dir) -> (&TcpStream, &TcpStream) {
        let [client, server] = &self.sockets;
        match dir {
            Dir::ToServer => (client, server),
            Dir::ToClient => (server, client),
        }
    }

    /// The earliest a byte read in `dir` may count as sent: a real client's
    /// data leaves when its SYN-ACK is back (one round trip after the
    /// connect), a real server's when the client's ACK reaches it (one and a
    /// half), so they arrive at 1.5 and 2 round trips.
    fn earliest_send(&self, dir: Dir) -> Instant {
        let d = self.shared.profile.one_way_delay;
        match dir {
            Dir::ToServer => self.opened + d * 2,
            Dir::ToClient => self.opened + d * 3,
        }
    }

    fn over(&self) -> bool {
        self.dead.load(Ordering::SeqCst) || self.shared.stop.load(Ordering::SeqCst)
    }

    fn shut(&self) {
        for s in &self.sockets {
            let _ = s.shutdown(Shutdown::Both);
        }
        for p in &self.pipes {
            p.wake.notify_all();
        }
    }

    /// Resets `to` (its close sends RST, not FIN) and ends the connection.
    /// Only the read side of `to` is shut: that wakes its reader without
    /// sending anything, and the RST goes out when the last thread lets go.
    fn reset(&self, from: &TcpStream, to: &TcpStream) {
        let _ = socket2::SockRef::from(to).set_linger(Some(Duration::ZERO));
        self.dead.store(true, Ordering::SeqCst);
        let _ = to.shutdown(Shutdown::Read);
        let _ = from.shutdown(Shutdown::Both);
        for p in &self.pipes {
            p.wake.notify_all();
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.closed.fetch_add(1, Ordering::SeqCst);
    }
}

/// What one reader thread hands its writer thread, stamped with when it was read.
enum Item {
    Data(Instant, Vec<u8>),
    Eof(Instant),
    Reset(Instant),
}

/// One direction's bytes in flight: bounded, so a slow reader pushes back.
#[derive(Default)]
struct Pipe {
    state: Mutex<PipeState>,
    wake: Condvar,
}

#[derive(Default)]
struct PipeState {
    items: VecDeque<Item>,
    bytes: usize,
}

impl Pipe {
    /// Queues `item`, waiting while the pipe is full; false when the connection is over.
    fn push(&self, item: Item, conn: &Conn) -> bool {
        let len = match &item {
            Item::Data(_, d) => d.len(),
            Item::Eof(_) | Item::Reset(_) => 0,
        };
        let cap = conn.shared.profile.queue_bytes();
        let mut st = lock(&self.state);
        while st.bytes > 0 && st.bytes + len > cap {
            if conn.over() {
                return false;
            }
            st = self.wait(st);
        }
        st.bytes += len;
        conn.shared
            .peak_queued
            .fetch_max(st.bytes, Ordering::SeqCst);
        st.items.push_back(item);
        self.wake.notify_all();
        true
    }

    /// The oldest item (it stays counted until [`Pipe::done`]); None when the connection is over.
    fn pop(&self, conn: &Conn) -> Option<Item> {
        let mut st = lock(&self.state);
        loop {
            if let Some(item) = st.items.pop_front() {
                return Some(item);
            }
            if conn.over() {
                return None;
            }
            st = self.wait(st);
        }
    }

    /// Waits for the other side of the pipe, at most a [`TICK`].
    fn wait<'a>(&self, st: MutexGuard<'a, PipeState>) -> MutexGuard<'a, PipeState> {
        self.wake
            .wait_timeout(st, TICK)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0)
    }

    /// `len` bytes were delivered (or dropped): room for the reader.
    fn done(&self, len: usize) {
        let mut st = lock(&self.state);
        st.bytes = st.bytes.saturating_sub(len);
        self.wake.notify_all();
    }
}

/// Reads `dir`'s source and queues what it read, stamped, then its end.
fn read_side(dir: Dir, conn: &Conn) {
    let (mut from, _) = conn.ends(dir);
    let pipe = &conn.pipes[dir.index()];
    let mut buf = vec![0u8; CHUNK];
    let earliest = conn.earliest_send(dir);
    loop {
        if conn.over() {
            return;
        }
        let read = from.read(&mut buf);
        let at = Instant::now().max(earliest);
        let item = match read {
            Ok(0) => Item::Eof(at),
            Ok(n) => Item::Data(at, buf[..n].to_vec()),
            Err(e) if read_again(&e) => continue,
            Err(_) => Item::Reset(at),
        };
        let last = !matches!(item, Item::Data(..));
        // A connection reset elsewhere shuts this read side: not an end to forward.
        if !pipe.push(item, conn) || last {
            return;
        }
    }
}

/// Delivers `dir`'s queued items at their time: serialised at the
/// bandwidth from when they were read, then one delay later.
fn write_side(dir: Dir, conn: &Conn) {
    let (from, mut to) = conn.ends(dir);
    let pipe = &conn.pipes[dir.index()];
    let profile = conn.shared.profile;
    // The destination is gone: drop what comes, so the reader never blocks.
    let mut discard = false;
    while let Some(item) = pipe.pop(conn) {
        let (read_at, len) = match &item {
            Item::Data(t, d) => (*t, d.len()),
            Item::Eof(t) | Item::Reset(t) => (*t, 0),
        };
        let left = {
            let mut free = lock(&conn.shared.wire_free[dir.index()]);
            *free = (*free).max(read_at) + profile.serialisation(len);
            *free
        };
        if !sleep_until(left + profile.one_way_delay, conn) {
            return;
        }
        match item {
            Item::Data(_, data) => {
                if !discard {
                    if to.write_all(&data).is_ok() {
                        conn.shared.delivered[dir.index()]
                            .fetch_add(data.len() as u64, Ordering::SeqCst);
                    } else {
                        discard = true;
                    }
                }
                pipe.done(len);
            }
            Item::Eof(_) => {
                let _ = to.shutdown(Shutdown::Write);
                if conn.ended.fetch_add(1, Ordering::SeqCst) == 1 {
                    // Both directions ended: nothing more will be read.
                    conn.shut();
                }
                return;
            }
            Item::Reset(_) => {
                conn.reset(from, to);
                return;
            }
        }
    }
}

/// Sleeps until `t`; false if the connection ended first.
fn sleep_until(t: Instant, conn: &Conn) -> bool {
    loop {
        if conn.over() {
            return false;
        }
        let now = Instant::now();
        if now >= t {
            return true;
        }
        thread::sleep((t - now).min(TICK));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> (TcpListener, u16) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("address").port();
        (l, port)
    }

    fn connect(link: &Link) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", link.port())).expect("connect to the link");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        s
    }

    #[test]
    fn a_ping_pong_round_trip_takes_twice_the_delay() {
        let (l, port) = listener();
        let echo = thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let _ = s.set_nodelay(true);
            let mut b = [0u8; 64];
            while let Ok(n) = s.read(&mut b) {
                if n == 0 || s.write_all(&b[..n]).is_err() {
                    break;
                }
            }
        });
        let link = Link::start(port, Profile::new(25.0, 100.0)).expect("link");
        let mut c = connect(&link);
        let mut rtts = Vec::new();
        for i in 0..8u8 {
            let t = Instant::now();
            c.write_all(&[i]).expect("write");
            let mut b = [0u8; 1];
            c.read_exact(&mut b).expect("echo");
            assert_eq!(b[0], i);
            rtts.push(t.elapsed());
        }
        drop(c);
        let _ = echo.join();
        rtts.sort();
        let (min, median) = (rtts[0], rtts[rtts.len() / 2]);
        assert!(min >= Duration::from_millis(49), "RTTs {rtts:?}");
        assert!(median <= Duration::from_millis(90), "RTTs {rtts:?}");
    }

    #[test]
    fn a_new_connection_costs_its_handshake() {
        // A server that speaks first, as SMTP, POP3 and IMAP servers do.
        let (l, port) = listener();
        let server = thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            s.write_all(b"+OK hello\r\n").expect("greeting");
            let mut b = [0u8; 4];
            s.read_exact(&mut b).expect("command");
            s.write_all(b"+OK\r\n").expect("reply");
        });
        let link = Link::start(port, Profile::new(25.0, 0.0)).expect("link");
        let t = Instant::now();
        let mut c = connect(&link);
        let mut b = [0u8; 11];
        c.read_exact(&mut b).expect("greeting");
        let greeting = t.elapsed();
        c.write_all(b"CAPA").expect("command");
        let mut r = [0u8; 5];
        c.read_exact(&mut r).expect("reply");
        let reply = t.elapsed();
        let _ = server.join();
        // SYN, SYN-ACK, ACK, then the greeting: two round trips; then one more.
        assert!(
            greeting >= Duration::from_millis(99),
            "greeting after {greeting:?}"
        );
        assert!(
            greeting <= Duration::from_millis(140),
            "greeting after {greeting:?}"
        );
        assert!(reply >= Duration::from_millis(149), "reply after {reply:?}");
        assert!(reply <= Duration::from_millis(220), "reply after {reply:?}");
    }

    #[test]
    fn five_megabytes_at_20_mbit_take_two_seconds_and_arrive_intact() {
        let (l, port) = listener();
        let data: Vec<u8> = (0..5_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let sink = thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut got = Vec::new();
            s.read_to_end(&mut got).expect("read all");
            got
        });
        let link = Link::start(port, Profile::new(20.0, 20.0)).expect("link");
        let mut c = connect(&link);
        let t = Instant::now();
        c.write_all(&data).expect("write");
        c.shutdown(Shutdown::Write).expect("half-close");
        let got = sink.join().expect("sink");
        let took = t.elapsed();
        assert!(
            got == data,
            "{} bytes arrived, not the 5 MB sent",
            got.len()
        );
        // 40 Mbit at 20 Mbit/s: 2 s, plus the delay.
        assert!(
            took >= Duration::from_millis(1900) && took <= Duration::from_millis(3500),
            "took {took:?}"
        );
        assert_eq!(link.delivered(Dir::ToServer), 5_000_000);
        assert!(link.counts().peak_queued <= Profile::new(20.0, 20.0).queue_bytes());
    }

    #[test]
    fn parallel_connections_share_the_bandwidth() {
        let (l, port) = listener();
        let sink = thread::spawn(move || {
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    let (mut s, _) = l.accept().expect("accept");
                    thread::spawn(move || {
                        let mut got = Vec::new();
                        s.read_to_end(&mut got).expect("read all");
                        got.len()
                    })
                })
                .collect();
            readers
                .into_iter()
                .map(|r| r.join().expect("reader"))
                .sum::<usize>()
        });
        let link = Link::start(port, Profile::new(10.0, 20.0)).expect("link");
        let t = Instant::now();
        let senders: Vec<_> = (0..2)
            .map(|_| {
                let mut c = connect(&link);
                thread::spawn(move || {
                    c.write_all(&vec![1u8; 2_500_000]).expect("write");
                    c.shutdown(Shutdown::Write).expect("half-close");
                })
            })
            .collect();
        for s in senders {
            s.join().expect("sender");
        }
        assert_eq!(sink.join().expect("sink"), 5_000_000);
        let took = t.elapsed();
        // Two times 20 Mbit at 20 Mbit/s together: 2 s, not 1.
        assert!(took >= Duration::from_millis(1900), "took {took:?}");
    }

    #[test]
    fn a_half_close_arrives_after_the_bytes_and_the_other_way_stays_open() {
        let (l, port) = listener();
        let server = thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut got = Vec::new();
            s.read_to_end(&mut got).expect("read to EOF");
            let eof_at = Instant::now();
            s.write_all(b"reply after your EOF")
                .expect("write after EOF");
            (got, eof_at)
        });
        let link = Link::start(port, Profile::new(40.0, 0.0)).expect("link");
        let mut c = connect(&link);
        let sent = Instant::now();
        c.write_all(b"request").expect("write");
        c.shutdown(Shutdown::Write).expect("half-close");
        let mut reply = Vec::new();
        c.read_to_end(&mut reply).expect("read the reply");
        let (got, eof_at) = server.join().expect("server");
        assert_eq!(got, b"request");
        assert!(eof_at - sent >= Duration::from_millis(39), "EOF too soon");
        assert_eq!(reply, b"reply after your EOF");
        assert!(sent.elapsed() >= Duration::from_millis(79));
        // Both directions ended: the connection is over.
        let until = Instant::now() + Duration::from_secs(5);
        while link.counts().closed < 1 && Instant::now() < until {
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(link.counts().closed, 1);
    }

    #[test]
    fn a_reset_arrives_as_a_reset_after_the_bytes_in_flight() {
        let (l, port) = listener();
        let server = thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            // Read only after the reset has surely arrived.
            thread::sleep(Duration::from_millis(300));
            let mut got = vec![0u8; 5];
            let first = s.read_exact(&mut got).map(|()| got);
            let mut b = [0u8; 1];
            (first, s.read(&mut b).map_err(|e| e.kind()))
        });
        let link = Link::start(port, Profile::new(30.0, 10.0)).expect("link");
        let mut c = connect(&link);
        c.write_all(b"hello").expect("write");
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .expect("linger");
        drop(c);
        let (first, then) = server.join().expect("server");
        assert_eq!(first.expect("the bytes sent before the reset"), b"hello");
        assert_eq!(then, Err(io::ErrorKind::ConnectionReset));
    }

    #[test]
    fn a_slow_reader_holds_the_sender_back_and_the_link_stays_bounded() {
        let (l, port) = listener();
        let profile = Profile::new(10.0, 50.0);
        let link = Link::start(port, profile).expect("link");
        let mut c = connect(&link);
        let (mut s, _) = l.accept().expect("accept");
        // The server reads nothing yet: the sender must block.
        c.set_write_timeout(Some(Duration::from_millis(1500)))
            .expect("write timeout");
        let chunk = vec![7u8; 64 * 1024];
        let mut written = 0usize;
        while written < 256 * 1024 * 1024 && c.write_all(&chunk).is_ok() {
            written += chunk.len();
        }
        assert!(written < 256 * 1024 * 1024, "never blocked");
        assert!(link.counts().peak_queued <= profile.queue_bytes());
        // Then everything written arrives.
        c.shutdown(Shutdown::Write).expect("half-close");
        let mut got = 0usize;
        let mut b = vec![0u8; 256 * 1024];
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        loop {
            match s.read(&mut b) {
                Ok(0) => break,
                Ok(n) => {
                    assert!(b[..n].iter().all(|&x| x == 7));
                    got += n;
                }
                Err(e) => panic!("read: {e}"),
            }
        }
        assert!(got >= written, "{got} of {written} bytes arrived");
    }
}
