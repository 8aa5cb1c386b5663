//! When to ask for COMPRESS=DEFLATE (RFC 4978). Deflate pays only where the
//! link is slower than the server can deflate: a text mailbox crosses it
//! 3-8x smaller, but the server's deflate runs at [`DEFLATE_RATE`] or so per
//! connection, so on a fast link it is the bottleneck (2,000 messages at 30
//! ms with no bandwidth cap: 690 msg/s compressed against 1,852 plain).
//!
//! `--compress auto` therefore decides by the link's throughput. Loopback
//! and a LAN (the ID command after login, a NOOP where no ID is sent, takes
//! under [`FAR_LINK`]) never compress. A far link starts plain, and each
//! fetching connection measures the rate its FETCH responses arrive at
//! ([`Meter`]); the first verdict is the run's ([`Choice`]): slower than
//! [`DEFLATE_RATE`], and every connection sends COMPRESS DEFLATE between
//! batches (helpers opened later, at login). The rule holds whatever limits
//! the rate: if a connection gets less than the server can deflate,
//! compressing cannot slow it down; if it gets more, deflate would.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::when::When;

/// A round trip (ID or NOOP) at least this long means a far link, worth
/// measuring (loopback and a LAN answer in well under a millisecond). Not
/// the time to the greeting: on loopback Dovecot's TLS handshake and login
/// process alone sometimes take over 10 ms.
pub const FAR_LINK: Duration = Duration::from_millis(5);

/// Bytes per second of messages one server connection deflates: Dovecot's
/// imap_zlib (level 6) on the bench's mailbox, measured on loopback with
/// `--compress always --connections 1` (see docs/benchmarks.md): below
/// this a link gains by compressing, above it the link is faster plain.
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

/// Bytes read since `from`.
#[derive(Debug, Clone, Copy)]
struct Window {
    from: Instant,
    bytes: u64,
}

impl Window {
    fn rate(&self, now: Instant) -> f64 {
        let secs = now.saturating_duration_since(self.from).as_secs_f64();
        if secs <= 0.0 {
            return f64::INFINITY;
        }
        self.bytes as f64 / secs
    }
}

/// The rate one connection's FETCH responses arrive at, by the wall clock
/// (whatever holds them up, the link, the server or our writer, is what
/// compression would have to beat). Two windows, both starting at a read
/// so that the round trip before the first byte is not counted:
/// - from the first byte: a rate at or above the threshold over a round
///   trip's worth of data at the threshold (at least [`MIN_SPAN`]) says
///   "fast" (slow start only ever makes a link look slower);
/// - from `warm_up` bytes on (the threshold's bandwidth-delay product: TCP
///   slow start has by then opened the window that far, so a fast link
///   shows its speed): a rate under the threshold for a span of two round
///   trips says "slow". A response shorter than a round trip's worth is
///   never judged alone: the windows run across responses.
#[derive(Debug, Clone)]
pub struct Meter {
    threshold: f64,
    span: Duration,
    warm_up: u64,
    seen: u64,
    early: Option<Window>,
    late: Option<Window>,
    verdict: Option<Verdict>,
}

/// The shortest span a rate is judged over, so that a burst is not a rate.
pub const MIN_SPAN: Duration = Duration::from_millis(50);

/// The least warm-up: the first responses' bytes come in bursts.
const MIN_WARM_UP: u64 = 256 * 1024;

impl Meter {
    /// A meter for a link of round trip `rtt`, judged against `threshold`
    /// bytes per second.
    pub fn new(threshold: f64, rtt: Duration) -> Meter {
        let span = (rtt * 2).max(MIN_SPAN);
        let warm_up = ((threshold * rtt.as_secs_f64()) as u64).max(MIN_WARM_UP);
        Meter {
            threshold,
            span,
            warm_up,
            seen: 0,
            early: None,
            late: None,
            verdict: None,
        }
    }

    /// `n` bytes were read at `now`.
    pub fn read(&mut self, n: usize, now: Instant) {
        if n == 0 || self.verdict.is_some() {
            return;
        }
        for window in [&mut self.early, &mut self.late].into_iter().flatten() {
            window.bytes += n as u64;
        }
        self.seen += n as u64;
        let start = Window {
            from: now,
            bytes: 0,
        };
        self.early.get_or_insert(start);
        if self.seen >= self.warm_up {
            self.late.get_or_insert(start);
        }
        self.verdict = self.judge(now);
    }

    fn judge(&self, now: Instant) -> Option<Verdict> {
        let enough = self.threshold * self.span.as_secs_f64();
        for window in [self.early, self.late].into_iter().flatten() {
            let rate = window.rate(now);
            if window.bytes as f64 >= enough && rate >= self.threshold {
                return Some(Verdict {
                    bytes_per_s: rate,
                    compress: false,
                });
            }
        }
        let late = self.late?;
        (now.saturating_duration_since(late.from) >= self.span).then(|| {
            let rate = late.rate(now);
            Verdict {
                bytes_per_s: rate,
                compress: rate < self.threshold,
            }
        })
    }

    /// The verdict, once the windows say enough.
    pub fn verdict(&self) -> Option<Verdict> {
        self.verdict
    }
}

/// The run's choice, shared by its connections.
#[derive(Debug)]
pub struct Choice {
    when: When,
    state: Mutex<State>,
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

    /// Whether connections still plain should switch COMPRESS on now.
    pub fn switch(&self) -> bool {
        self.when == When::Auto && self.state() == State::Compress
    }

    /// Whether `auto` is still measuring.
    pub fn measuring(&self) -> bool {
        matches!(self.state(), State::Measuring(_))
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

    /// The `-v` note for a choice made without measuring (near link), or
    /// never made (too little mail); `None` for `always`, `never`, or a
    /// measured choice (already noted).
    pub fn unmeasured_note(&self, rtt: Option<Duration>) -> Option<String> {
        if self.when != When::Auto {
            return None;
        }
        match (self.state(), rtt) {
            (State::Measuring(_), _) => Some(
                "--compress auto: too little mail to measure the link's rate: no compression"
                    .to_string(),
            ),
            (State::Plain, Some(rtt)) if !far(rtt) => Some(format!(
                "--compress auto: a round trip of {:.1} ms, under {} ms (this machine or a \
                 LAN, faster than the server deflates): no compression",
                rtt.as_secs_f64() * 1e3,
                FAR_LINK.as_millis()
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_slow_link_is_slow_after_the_warm_up_and_two_round_trips() {
        let rtt = Duration::from_millis(30);
        let mut meter = Meter::new(20e6, rtt);
        let start = Instant::now();
        // 12.5 MB/s (100 Mbit/s): the warm-up is 600 kB, then 60 ms.
        feed(&mut meter, start, rtt, 12.5e6, (0, 1 << 20));
        assert!(meter.verdict().is_none(), "judged within 1 MiB");
        feed(&mut meter, start, rtt, 12.5e6, (1 << 20, 4 << 20));
        let verdict = meter.verdict().expect("a verdict within 4 MiB");
        assert!(verdict.compress);
        assert!((verdict.bytes_per_s - 12.5e6).abs() < 1e6, "{verdict:?}");
    }

    /// Slow start on a fast link: the first round trips carry 14 kB, 28 kB,
    /// ...; the early window's average is low, but no "slow" verdict comes
    /// before the window has opened, and then the link shows it is fast.
    #[test]
    fn slow_start_on_a_fast_link_is_not_a_slow_link() {
        let rtt = Duration::from_millis(30);
        let mut meter = Meter::new(20e6, rtt);
        let start = Instant::now();
        let mut at = start + rtt;
        let mut window = 14_600u64;
        while meter.verdict().is_none() {
            // One round trip: `window` bytes (up to 80 MB/s), in reads of 16 KiB.
            let bytes = window.min((80e6 * rtt.as_secs_f64()) as u64);
            let reads = bytes.div_ceil(16 * 1024);
            for i in 0..reads {
                meter.read(16 * 1024, at + rtt.mul_f64((i + 1) as f64 / reads as f64));
            }
            at += rtt;
            window *= 2;
            assert!(at < start + Duration::from_secs(2), "no verdict");
        }
        assert_eq!(meter.verdict().map(|v| v.compress), Some(false));
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
        let near = Choice::new(When::Auto, None);
        assert!(!near.measuring() && !near.switch());
        let always = Choice::new(When::Always, None);
        assert_eq!(always.at_login(), When::Always);
        assert!(
            !always.switch(),
            "always compresses at login, not by switching"
        );
    }
}
