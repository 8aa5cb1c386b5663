//! When to ask for COMPRESS=DEFLATE (RFC 4978). Deflate pays only where the
//! link is slower than the server can deflate: a text mailbox crosses it
//! 3-8x smaller, but the server's deflate runs at [`DEFLATE_RATE`] or so per
//! connection, so on a fast link it is the bottleneck (2,000 messages at 30
//! ms with no bandwidth cap: 690 msg/s compressed against 1,852 plain).
//!
//! `--compress auto` therefore decides by the link's throughput. Loopback
//! and a LAN (the ID command after login, a NOOP where no ID is sent, takes
//! under [`FAR_LINK`]) never compress. A far link starts plain, and the
//! main connection measures the rate its FETCH responses arrive at
//! ([`Meter`]) while the helpers open and wait for its verdict, which is
//! the run's ([`Choice`]): slower than
//! [`DEFLATE_RATE`], and every connection sends COMPRESS DEFLATE between
//! batches (helpers opened later, at login). The rule holds whatever limits
//! the rate: if a connection gets less than the server can deflate,
//! compressing cannot slow it down; if it gets more, deflate would.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::when::When;

/// A round trip (ID or NOOP) at least this long means a far link, worth
/// measuring (loopback and a LAN answer in well under a millisecond). Not
/// the time to the greeting: on loopback Dovecot's TLS handshake and login
/// process alone sometimes take over 10 ms.
pub const FAR_LINK: Duration = Duration::from_millis(5);

/// Bytes per second of messages one server connection deflates, a little
/// under what was measured: Dovecot 2.3's imap_zlib (level 6) gave 23 MB/s
/// on the bench's mailbox (2,000 messages, 148 MB, text and attachments),
/// `--compress always --connections 1` on loopback (docs/benchmarks.md).
/// A link slower than this gains by compressing (100 Mbit/s carries 12.5
/// MB/s); a faster one (a connection 30 ms away with no cap: 60-90 MB/s)
/// is faster plain.
pub const DEFLATE_RATE: f64 = 20e6;

/// Whether a round trip of `rtt` is a far link, for `--compress auto`.
pub fn far(rtt: Duration) -> bool {
    rtt >= FAR_LINK
}

/// What a [`Meter`] found: the rate FETCH responses arrived at, and
/// whether that is under the threshold (compress).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub bytes_per_s: f64,
    pub compress: bool,
}

/// Bytes read and the time they took to arrive, not counting the waits
/// for a response to start (`Meter::sent`); without a start, the first
/// read only starts the clock.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    bytes: u64,
    time: Duration,
    last: Option<Instant>,
}

impl Window {
    fn started(now: Instant) -> Window {
        Window {
            last: Some(now),
            ..Window::default()
        }
    }

    fn read(&mut self, n: u64, now: Instant) {
        if let Some(last) = self.last {
            self.bytes += n;
            self.time += now.saturating_duration_since(last);
        }
        self.last = Some(now);
    }

    fn rate(&self) -> f64 {
        let secs = self.time.as_secs_f64();
        if secs <= 0.0 {
            return f64::INFINITY;
        }
        self.bytes as f64 / secs
    }
}

/// The span a rate is judged over on a link of round trip `rtt`: a round
/// trip, at least [`MIN_SPAN`], so that a burst is not a rate.
fn span(rtt: Duration) -> Duration {
    rtt.max(MIN_SPAN)
}

/// The rate one connection's FETCH responses arrive at: their bytes over
/// the time from when each could first arrive (a round trip after its
/// FETCH, sent with nothing in flight) to its last read; the round trip
/// before a response, and our own waits between them, are not the link's.
/// Two windows, running across responses, so that a response shorter than
/// a round trip's worth is never judged alone:
/// - from the first byte: a rate at or above the threshold over a round
///   trip's worth of data at the threshold says "fast" (TCP slow start
///   only ever makes a link look slower);
/// - from [`WARM_UP`] bytes on, over a span of a round trip: a rate under
///   the threshold says "slow" only if the window began with at least one
///   and a half round trips' worth of bytes at that rate already read. In
///   slow start the congestion window is about the bytes sent so far and
///   doubles each round trip, so a round trip limited by it carries about
///   one and a half times that; a rate this low is the link's (or the
///   server's) own. Otherwise the window starts again once that many
///   bytes have been read.
#[derive(Debug, Clone)]
pub struct Meter {
    threshold: f64,
    rtt: Duration,
    seen: u64,
    early: Option<Window>,
    /// The late window, and the bytes read before it began...
    late: Option<(Window, u64)>,
    /// ...at least this many.
    warm_up: u64,
    verdict: Option<Verdict>,
}

/// The shortest span a rate is judged over.
pub const MIN_SPAN: Duration = Duration::from_millis(20);

/// Bytes read before a "slow" window may begin: the first ones come in
/// bursts as the first responses start.
const WARM_UP: u64 = 64 * 1024;

impl Meter {
    /// A meter for a link of round trip `rtt`, judged against `threshold`
    /// bytes per second.
    pub fn new(threshold: f64, rtt: Duration) -> Meter {
        Meter {
            threshold,
            rtt,
            seen: 0,
            early: None,
            late: None,
            warm_up: WARM_UP,
            verdict: None,
        }
    }

    /// `n` bytes were read at `now`.
    pub fn read(&mut self, n: usize, now: Instant) {
        if n == 0 || self.verdict.is_some() {
            return;
        }
        let n = n as u64;
        self.early.get_or_insert_with(Window::default).read(n, now);
        if let Some((late, _)) = self.late.as_mut() {
            late.read(n, now);
        }
        self.seen += n;
        // Late enough for the rate so far not to be slow start's (`judge`).
        let rate = self.early.as_ref().map_or(0.0, Window::rate);
        let needed = 1.5 * rate.min(self.threshold) * self.rtt.as_secs_f64();
        if self.late.is_none() && self.seen >= self.warm_up && self.seen as f64 >= needed {
            self.late = Some((Window::started(now), self.seen));
        }
        self.verdict = self.judge(now);
    }

    /// A FETCH was sent at `now` with none other in flight: its response
    /// cannot start arriving before a round trip, and the time until then
    /// (our wait, not the link's) is not counted.
    pub fn sent(&mut self, now: Instant) {
        let at = Some(now + self.rtt);
        self.early.get_or_insert_with(Window::default).last = at;
        if let Some((late, _)) = self.late.as_mut() {
            late.last = at;
        }
    }

    fn judge(&mut self, now: Instant) -> Option<Verdict> {
        let span = span(self.rtt);
        let enough = self.threshold * span.as_secs_f64();
        let fast = |window: &Window| {
            let rate = window.rate();
            (window.bytes as f64 >= enough && rate >= self.threshold).then_some(Verdict {
                bytes_per_s: rate,
                compress: false,
            })
        };
        if let Some(verdict) = self.early.as_ref().and_then(fast) {
            return Some(verdict);
        }
        let (late, before) = self.late?;
        if let Some(verdict) = fast(&late) {
            return Some(verdict);
        }
        if late.time < span {
            return None;
        }
        let rate = late.rate();
        if rate >= self.threshold {
            return Some(Verdict {
                bytes_per_s: rate,
                compress: false,
            });
        }
        let needed = 1.5 * rate * self.rtt.as_secs_f64();
        if before as f64 >= needed {
            return Some(Verdict {
                bytes_per_s: rate,
                compress: true,
            });
        }
        // Perhaps slow start: judge a span that begins late enough.
        self.late = None;
        self.warm_up = self.seen.max(needed as u64);
        if self.seen >= self.warm_up {
            self.late = Some((Window::started(now), self.seen));
        }
        None
    }

    /// The verdict, once the windows say enough.
    pub fn verdict(&self) -> Option<Verdict> {
        self.verdict
    }
}

/// The smallest batch while measuring.
const MIN_PROBE: u64 = 256 * 1024;

/// The run's choice, shared by its connections.
#[derive(Debug)]
pub struct Choice {
    when: When,
    state: Mutex<State>,
    /// Signalled when the run's verdict is in.
    decided: Condvar,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// `auto` on a far link, nothing measured yet: round trip.
    Measuring(Duration),
    /// Every connection compresses (`always`, or `auto` measured a slow link).
    Compress,
    /// None compresses.
    Plain,
}

impl Choice {
    /// The choice for `when`; `far_rtt`: the round trip of a far link whose
    /// server offers COMPRESS=DEFLATE, under `auto`.
    pub fn new(when: When, far_rtt: Option<Duration>) -> Choice {
        let state = match (when, far_rtt) {
            (When::Always, _) => State::Compress,
            (When::Auto, Some(rtt)) => State::Measuring(rtt),
            _ => State::Plain,
        };
        Choice {
            when,
            state: Mutex::new(state),
            decided: Condvar::new(),
        }
    }

    fn state(&self) -> State {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How a connection opened now asks for COMPRESS at login.
    pub fn at_login(&self) -> When {
        match self.state() {
            State::Compress => When::Always,
            _ => When::Never,
        }
    }

    /// A meter for a connection to measure with, while `auto` is undecided.
    pub fn meter(&self) -> Option<Meter> {
        match self.state() {
            State::Measuring(rtt) => Some(Meter::new(DEFLATE_RATE, rtt)),
            _ => None,
        }
    }

    /// The largest batch a connection fetches while `auto` measures: half
    /// what says "fast" (two responses), so that on a slow link the
    /// verdict comes within the first and little crosses it uncompressed.
    pub fn probe_bytes(&self) -> u64 {
        match self.state() {
            State::Measuring(rtt) => {
                ((DEFLATE_RATE * span(rtt).as_secs_f64() / 2.0) as u64).max(MIN_PROBE)
            }
            _ => u64::MAX,
        }
    }

    /// Whether connections still plain should switch COMPRESS on now.
    pub fn switch(&self) -> bool {
        self.when == When::Auto && self.state() == State::Compress
    }

    /// Whether `auto` is still measuring.
    pub fn measuring(&self) -> bool {
        matches!(self.state(), State::Measuring(_))
    }

    /// Waits while `auto` measures, or until `give_up` (checked every few
    /// milliseconds) says there is nothing left to wait for. A helper
    /// connection waits so: the main one measures alone, and the helpers
    /// start as the verdict says, rather than each fetching plain what a
    /// slow link would have carried compressed.
    pub fn wait_while_measuring(&self, give_up: impl Fn() -> bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while matches!(*state, State::Measuring(_)) && !give_up() {
            state = self
                .decided
                .wait_timeout(state, Duration::from_millis(5))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Takes `verdict` as the run's, unless one came first; the `-v` note
    /// saying what was chosen and why, if this was the one.
    pub fn decide(&self, verdict: Verdict) -> Option<String> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(*state, State::Measuring(_)) {
            return None;
        }
        *state = if verdict.compress {
            State::Compress
        } else {
            State::Plain
        };
        self.decided.notify_all();
        let (word, then) = if verdict.compress {
            ("under", "COMPRESS=DEFLATE from the next batch on")
        } else {
            ("at or over", "no compression")
        };
        Some(format!(
            "--compress auto: FETCH responses arrived at {:.1} MB/s, {word} the {:.0} MB/s \
             a server connection deflates: {then}",
            verdict.bytes_per_s / 1e6,
            DEFLATE_RATE / 1e6
        ))
    }

    /// The `-v` note for `auto` on a near link (round trip `rtt`, timed at
    /// login): no compression, and why.
    pub fn near_note(&self, rtt: Option<Duration>) -> Option<String> {
        let rtt = rtt.filter(|&rtt| self.when == When::Auto && !far(rtt))?;
        Some(format!(
            "--compress auto: a round trip of {:.1} ms, under {} ms (this machine or a LAN, \
             faster than the server deflates): no compression",
            rtt.as_secs_f64() * 1e3,
            FAR_LINK.as_millis()
        ))
    }

    /// The `-v` note at the end when `auto` never had enough to judge by.
    pub fn unmeasured_note(&self) -> Option<String> {
        self.measuring().then(|| {
            "--compress auto: too little mail to measure the link's rate: no compression"
                .to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn a_far_link_is_5_ms_or_more() {
        assert!(!far(Duration::from_micros(300)));
        assert!(far(Duration::from_millis(30)));
    }

    /// Feeds bytes `from..to` of a response arriving at `rate` bytes/s
    /// `delay` after `start`, in reads of 16 KiB, until a verdict.
    fn feed(meter: &mut Meter, start: Instant, delay: Duration, rate: f64, (from, to): (u64, u64)) {
        let mut read = from;
        while read < to && meter.verdict().is_none() {
            read += 16 * 1024;
            let at = start + delay + Duration::from_secs_f64(read as f64 / rate);
            meter.read(16 * 1024, at);
        }
    }

    #[test]
    fn a_fast_link_is_fast_soon_and_the_round_trip_does_not_count() {
        let mut meter = Meter::new(20e6, Duration::from_millis(30));
        let start = Instant::now();
        // 80 MB/s after a 30 ms wait for the first byte.
        feed(
            &mut meter,
            start,
            Duration::from_millis(30),
            80e6,
            (0, 4 << 20),
        );
        let verdict = meter.verdict().expect("a verdict within 4 MiB");
        assert!(!verdict.compress);
        assert!(verdict.bytes_per_s > 60e6, "{verdict:?}");
    }

    #[test]
    fn a_slow_link_is_slow_once_slow_start_is_ruled_out() {
        let rtt = Duration::from_millis(30);
        let mut meter = Meter::new(20e6, rtt);
        let start = Instant::now();
        // 12.5 MB/s (100 Mbit/s): 64 KiB, then 30 ms (375 kB) too early
        // to tell from slow start, then 30 ms from 560 kB on.
        feed(&mut meter, start, rtt, 12.5e6, (0, 512 << 10));
        assert!(meter.verdict().is_none(), "judged within 512 KiB");
        feed(&mut meter, start, rtt, 12.5e6, (512 << 10, 1 << 20));
        let verdict = meter.verdict().expect("a verdict within 1 MiB");
        assert!(verdict.compress);
        assert!((verdict.bytes_per_s - 12.5e6).abs() < 1e6, "{verdict:?}");
    }

    /// Slow start on a fast link (80 MB/s) 30 or 100 ms away: the first
    /// round trips carry 14.6 kB, 29 kB, ...; no "slow" verdict comes
    /// while the window opens, then the link shows it is fast.
    #[test]
    fn slow_start_on_a_fast_link_is_not_a_slow_link() {
        for rtt in [30, 100].map(Duration::from_millis) {
            let mut meter = Meter::new(20e6, rtt);
            let start = Instant::now();
            let mut at = start + rtt;
            let mut window = 14_600u64;
            while meter.verdict().is_none() {
                // One round trip: `window` bytes, in reads of 16 KiB at most.
                let bytes = window.min((80e6 * rtt.as_secs_f64()) as u64);
                let reads = bytes.div_ceil(16 * 1024);
                for i in 0..reads {
                    let read = (bytes / reads) as usize;
                    meter.read(read, at + rtt.mul_f64((i + 1) as f64 / reads as f64));
                }
                at += rtt;
                window *= 2;
                assert!(at < start + Duration::from_secs(3), "no verdict");
            }
            assert_eq!(meter.verdict().map(|v| v.compress), Some(false), "{rtt:?}");
        }
    }

    /// Responses of 256 KiB at 80 MB/s, each a round trip after its FETCH
    /// (one in flight): the waits are not the link's.
    #[test]
    fn the_waits_between_responses_do_not_count() {
        let rtt = Duration::from_millis(100);
        let mut meter = Meter::new(20e6, rtt);
        let mut at = Instant::now();
        for _ in 0..20 {
            meter.sent(at);
            at += rtt;
            for _ in 0..16 {
                at += Duration::from_secs_f64(16384.0 / 80e6);
                meter.read(16 * 1024, at);
            }
            // The writer takes the batch before the next FETCH goes.
            at += Duration::from_millis(5);
        }
        let verdict = meter.verdict().expect("a verdict in 5 MiB");
        assert!(
            !verdict.compress && verdict.bytes_per_s > 60e6,
            "{verdict:?}"
        );
    }

    /// A helper waits for the main connection's verdict, or until there is
    /// nothing left to fetch; never longer.
    #[test]
    fn helpers_wait_for_the_verdict_or_for_the_end() {
        let choice = Choice::new(When::Auto, Some(Duration::from_millis(30)));
        // Timed from before the waiter starts: the verdict comes at least
        // 50 ms after this, and the waiter cannot return before it.
        let start = Instant::now();
        let waited = std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                choice.wait_while_measuring(|| false);
                start.elapsed()
            });
            std::thread::sleep(Duration::from_millis(50));
            assert!(!waiter.is_finished(), "a helper went on before the verdict");
            choice.decide(Verdict {
                bytes_per_s: 2e6,
                compress: true,
            });
            waiter.join().expect("waiter")
        });
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(choice.switch());

        let undecided = Choice::new(When::Auto, Some(Duration::from_millis(30)));
        let ends = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let waiter =
                scope.spawn(|| undecided.wait_while_measuring(|| ends.load(Ordering::SeqCst)));
            std::thread::sleep(Duration::from_millis(20));
            assert!(!waiter.is_finished());
            ends.store(true, Ordering::SeqCst);
            waiter.join().expect("waiter");
        });
        assert!(undecided.measuring());
        // Nothing to wait for when the choice is made at the start.
        Choice::new(When::Auto, None).wait_while_measuring(|| false);
        Choice::new(When::Always, None).wait_while_measuring(|| false);
    }

    #[test]
    fn the_first_verdict_is_the_runs() {
        let choice = Choice::new(When::Auto, Some(Duration::from_millis(30)));
        assert!(choice.measuring() && choice.meter().is_some());
        assert_eq!(choice.at_login(), When::Never);
        let slow = Verdict {
            bytes_per_s: 2e6,
            compress: true,
        };
        let note = choice.decide(slow).expect("decided");
        assert!(note.contains("2.0 MB/s, under the 20 MB/s"), "{note}");
        assert!(choice.switch());
        assert_eq!(choice.at_login(), When::Always);
        assert_eq!(
            choice.decide(Verdict {
                bytes_per_s: 90e6,
                compress: false
            }),
            None
        );
        assert!(choice.switch());
        assert_eq!(choice.unmeasured_note(), None);
        let near = Choice::new(When::Auto, None);
        assert!(!near.measuring() && !near.switch());
        let note = near.near_note(Some(Duration::from_micros(300)));
        assert!(note.is_some_and(|n| n.contains("0.3 ms, under 5 ms")));
        let far = Choice::new(When::Auto, Some(Duration::from_millis(30)));
        assert_eq!(far.near_note(Some(Duration::from_millis(30))), None);
        assert!(far.unmeasured_note().is_some());
        let always = Choice::new(When::Always, None);
        assert_eq!(always.at_login(), When::Always);
        assert!(
            !always.switch(),
            "always compresses at login, not by switching"
        );
    }
}
