//! What `imap-dump --follow` and `pop3-dump --follow` share: the stop flag
//! SIGINT and SIGTERM set (the tools finish the message in hand, save the
//! state and exit 0 instead of dying mid-write), sleeps that end at once
//! when it is set, the reconnect backoff, which errors are worth a
//! reconnect, the `--interval` value, and the scratch state a follow without
//! `--state` keeps so that a reconnect neither loses nor repeats a message.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::exit::{Error, Exit};

/// The polling interval when neither `--interval` nor the account's
/// `interval` says: POP3, and IMAP servers without IDLE.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// The first wait before a reconnect; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Set by SIGINT or SIGTERM (or by a follower that failed, to end the others).
#[derive(Debug, Clone)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// A flag that SIGINT and SIGTERM set from now on, instead of killing
    /// the process: the caller checks it between messages.
    pub fn on_signals() -> Result<Stop, Error> {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&flag)).map_err(|e| {
                Error::new(
                    Exit::Software,
                    format!("cannot catch SIGINT and SIGTERM: {e}"),
                )
            })?;
        }
        Ok(Stop(flag))
    }

    /// A flag no signal sets (tests).
    pub fn new() -> Stop {
        Stop(Arc::new(AtomicBool::new(false)))
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Sleeps `wait`, or less if the flag is set meanwhile; true if it was not.
    pub fn sleep(&self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        while !self.is_set() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(STOP_TICK));
        }
        false
    }
}

impl Default for Stop {
    fn default() -> Stop {
        Stop::new()
    }
}

/// How often a wait looks at the stop flag: a signal ends the follow within this.
pub const STOP_TICK: Duration = Duration::from_millis(100);

/// Waits before reconnecting: 1 s, doubling to 60 s, back to 1 s once a
/// connection has worked.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff {
            next: FIRST_BACKOFF,
        }
    }

    /// The wait before the next attempt (and doubles the one after).
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        wait
    }

    pub fn reset(&mut self) {
        self.next = FIRST_BACKOFF;
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

/// Whether a follower should reconnect after `e` rather than stop: a lost,
/// cut or timed-out connection (75), a server that is down or restarting
/// (connection refused: 69), a name that does not resolve while offline
/// (68). Anything else (a refused login, a missing mailbox, stdout gone)
/// would fail the same way again.
pub fn worth_reconnecting(e: &Error) -> bool {
    matches!(e.exit(), Exit::TempFail | Exit::Unavailable | Exit::NoHost)
}

/// The interval from `--interval`, else the account's `interval`, else 60 s.
/// A number of seconds, or a number with `ms`, `s`, `m` or `h`; at least 100 ms.
pub fn choose_interval(flag: Option<&str>, account: Option<&str>) -> Result<Duration, Error> {
    let (text, what) = match (flag, account) {
        (Some(f), _) => (f, "--interval"),
        (None, Some(a)) => (a, "the account's interval"),
        (None, None) => return Ok(DEFAULT_INTERVAL),
    };
    let bad = |why: &str| {
        let message = format!("{what} {text:?}: {why} (e.g. 30s, 5m, 1h)");
        if flag.is_some() {
            Error::usage(message)
        } else {
            Error::config(message)
        }
    };
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad("not a duration"))?;
    let interval = match unit {
        "ms" => Duration::from_millis(number),
        "" | "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        _ => return Err(bad("unknown unit")),
    };
    if interval < Duration::from_millis(100) {
        return Err(bad("must be at least 100ms"));
    }
    Ok(interval)
}

/// A state file for a follow without `--state`, in a private temporary
/// folder removed when the returned guard is dropped: the follow resumes
/// from it after a reconnect exactly as from a user's state file.
pub fn scratch_state(name: &str) -> Result<(tempfile::TempDir, PathBuf), Error> {
    let dir = tempfile::Builder::new()
        .prefix("mailpipe-follow")
        .tempdir()
        .map_err(|e| Error::io("creating the scratch state of --follow", e))?;
    let path = dir.path().join(name);
    Ok((dir, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_with_units_and_precedence() {
        assert_eq!(choose_interval(None, None).ok(), Some(DEFAULT_INTERVAL));
        assert_eq!(
            choose_interval(Some("90"), Some("5m")).ok(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            choose_interval(None, Some("5m")).ok(),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            choose_interval(Some("250ms"), None).ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            choose_interval(Some("2h"), None).ok(),
            Some(Duration::from_secs(7200))
        );
        for bad in ["", "5x", "-1", "0", "10ms", "s"] {
            let e = choose_interval(Some(bad), None).expect_err(bad);
            assert_eq!(e.exit(), Exit::Usage, "{bad}");
        }
        let e = choose_interval(None, Some("soon")).expect_err("account");
        assert_eq!(e.exit(), Exit::Config);
    }

    #[test]
    fn backoff_doubles_to_a_minute_and_resets() {
        let mut b = Backoff::new();
        let waits: Vec<u64> = (0..8).map(|_| b.next_wait().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        b.reset();
        assert_eq!(b.next_wait(), FIRST_BACKOFF);
    }

    #[test]
    fn a_set_flag_ends_a_sleep_at_once() {
        let stop = Stop::new();
        assert!(stop.sleep(Duration::from_millis(10)));
        stop.set();
        let t = Instant::now();
        assert!(!stop.sleep(Duration::from_secs(30)));
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}
