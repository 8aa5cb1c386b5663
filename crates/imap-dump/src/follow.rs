//! `--follow`: after the dump, one thread and connection per mailbox waits
//! for new mail (IDLE, RFC 2177, else NOOP every --interval) and catches up
//! with the same `dump::dump_mailbox` the dump uses, so each new message is
//! written, flushed and committed to the state exactly as a dump does it.
//! A lost connection is retried with backoff and the catch-up resumes from
//! the state: nothing lost, nothing repeated. SIGINT and SIGTERM set a flag
//! checked between messages: the follow ends with exit 0 and the state saved.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mailpipe::exec::Target;
use mailpipe::follow::{self, Backoff, Stop};
use mailpipe::progress::Progress;
use mailpipe::wire::{self, Deadline};
use mailpipe::{Endpoint, Error, Exit};

use crate::cli::Args;
use crate::compress::Choice;
use crate::dump::{self, DumpOptions, Sessions};
use crate::output::MboxOutput;
use crate::session::{self, imap_error, Session, Wire};
use crate::sink::Sink;
use crate::state::StateFile;
use crate::when::When;

/// How long one IDLE lasts before it is ended and issued again: well within
/// the 29 minutes RFC 2177 allows (servers log out an idle client after 30),
/// and short enough that a connection a NAT box dropped in silence is found.
pub const IDLE_REFRESH: Duration = Duration::from_secs(10 * 60);

/// Where every follower writes: one output (the mbox on stdout, or
/// `--exec`'s command) and one state file, one message (or batch) at a time.
struct Shared {
    out: Output,
    state: StateFile,
}

enum Output {
    Mbox(MboxOutput),
    Exec(Target),
}

/// Follows each mailbox asked for until a signal (Ok: exit 0) or an error
/// that a reconnect would not cure.
pub fn follow(
    args: &Args,
    endpoint: &Endpoint,
    state: StateFile,
    interval: Duration,
) -> Result<(), Error> {
    let stop = Stop::on_signals()?;
    let options = crate::run::dump_options(args, endpoint, 1)?;
    let out = match &args.exec {
        Some(command) => Output::Exec(Target {
            command: command.clone(),
            account: options.account.clone(),
            server: endpoint.url.to_string(),
        }),
        None => {
            let mut out = MboxOutput::stdout()?;
            out.set_framed(true);
            Output::Mbox(out)
        }
    };
    let shared = Mutex::new(Shared { out, state });
    let names = if args.mailboxes.is_empty() {
        vec!["INBOX".to_string()]
    } else {
        args.mailboxes.clone()
    };
    let watch = Watch {
        endpoint,
        options: &options,
        shared: &shared,
        stop: &stop,
        interval,
        idle: !args.no_idle,
    };
    let results: Vec<Result<(), Error>> = std::thread::scope(|scope| {
        let followers: Vec<_> = names
            .iter()
            .map(|name| {
                let watch = &watch;
                scope.spawn(move || {
                    let result = watch.follow_mailbox(name);
                    // One follower failing for good ends the others.
                    if result.is_err() {
                        watch.stop.set();
                    }
                    result
                })
            })
            .collect();
        followers
            .into_iter()
            .map(|f| {
                f.join().unwrap_or_else(|_| {
                    Err(Error::new(Exit::Software, "a follower thread panicked"))
                })
            })
            .collect()
    });
    results.into_iter().collect()
}

/// What every follower needs.
struct Watch<'a> {
    endpoint: &'a Endpoint,
    options: &'a DumpOptions,
    shared: &'a Mutex<Shared>,
    stop: &'a Stop,
    interval: Duration,
    /// IDLE when the server offers it (not with --no-idle).
    idle: bool,
}

impl Watch<'_> {
    /// Follows one mailbox over a connection of its own, reconnecting
    /// after each loss until stopped.
    fn follow_mailbox(&self, mailbox: &str) -> Result<(), Error> {
        let mut backoff = Backoff::new();
        while !self.stop.is_set() {
            let error = match session::open(self.endpoint, When::Never) {
                Ok(session) => {
                    backoff.reset();
                    let mut sessions = Sessions::new(session, 1, Choice::new(When::Never, None));
                    let watched = self.watch(&mut sessions, mailbox);
                    match sessions.finish(watched) {
                        Ok(()) => return Ok(()),
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
            if !follow::worth_reconnecting(&error) {
                return Err(error);
            }
            let wait = backoff.next_wait();
            eprintln!(
                "imap-dump: {mailbox}: {}; reconnecting in {} s",
                error.message(),
                wait.as_secs()
            );
            self.stop.sleep(wait);
        }
        Ok(())
    }

    /// Catches up, then waits for news, until stopped (Ok) or the
    /// connection fails.
    fn watch(&self, sessions: &mut Sessions, mailbox: &str) -> Result<(), Error> {
        let mut idle = self.idle && sessions.main.has_capability(self.endpoint, "IDLE")?;
        loop {
            // A message that arrived while we fetched is announced in a
            // reply we read past (EXISTS): look once more before waiting.
            let mut rounds = 0;
            loop {
                sessions.main.take_all_unsolicited().for_each(drop);
                let written = self.catch_up(sessions, mailbox)?;
                let announced = sessions
                    .main
                    .take_all_unsolicited()
                    .any(|r| matches!(r, imap::types::UnsolicitedResponse::Exists(_)));
                rounds += 1;
                if self.stop.is_set() || (written == 0 && (!announced || rounds > 1)) {
                    break;
                }
            }
            if self.stop.is_set() {
                return Ok(());
            }
            if idle {
                if let Some(refusal) =
                    idle_until_news(&mut sessions.main, self.endpoint, self.stop)?
                {
                    eprintln!(
                        "imap-dump: {mailbox}: the server refused IDLE ({refusal}); polling with \
                         NOOP every {} s instead",
                        self.interval.as_secs()
                    );
                    idle = false;
                }
            } else if self.stop.sleep(self.interval) {
                sessions
                    .main
                    .noop()
                    .map_err(|e| imap_error(self.endpoint, e))?;
            }
            if self.stop.is_set() {
                return Ok(());
            }
        }
    }

    /// Writes what is new in `mailbox` since the state, as a dump does.
    fn catch_up(&self, sessions: &mut Sessions, mailbox: &str) -> Result<usize, Error> {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let Shared { out, state } = &mut *shared;
        let mut sink = match out {
            Output::Mbox(out) => Sink::Mbox(out),
            Output::Exec(target) => Sink::Exec(target),
        };
        let quiet = Progress::new(true, false);
        dump::dump_mailbox(
            sessions,
            self.endpoint,
            mailbox,
            &mut sink,
            Some(state),
            self.options,
            &quiet,
        )
    }
}

/// Longest line accepted while idling.
const MAX_IDLE_LINE: usize = 64 * 1024;

/// IDLE (the mailbox is selected) until the server announces a message
/// (EXISTS), `IDLE_REFRESH` passes or `stop` is set; then DONE and its OK.
/// A server that lists IDLE and answers it with NO or BAD: `Some(its words)`,
/// for the caller to poll instead.
fn idle_until_news(
    session: &mut Session,
    endpoint: &Endpoint,
    stop: &Stop,
) -> Result<Option<String>, Error> {
    let tag = session.next_tag();
    let url = &endpoint.url;
    let mut wire = session.wire();
    send(&mut wire, endpoint, &format!("{tag} IDLE"))?;
    let mut line = Vec::new();
    let deadline = wire.deadline();
    loop {
        wire.read_line(&mut line, MAX_IDLE_LINE, &deadline, "the reply to IDLE")
            .map_err(|e| e.context(url))?;
        if line.starts_with(b"+") {
            break;
        }
        if line.starts_with(format!("{tag} ").as_bytes()) {
            let said = String::from_utf8_lossy(&line[tag.len() + 1..]);
            return Ok(Some(said.trim_end().to_string()));
        }
        check_bye(endpoint, &line)?;
    }
    let started = Instant::now();
    let mut news = false;
    while !news && !stop.is_set() && started.elapsed() < IDLE_REFRESH {
        // Short waits, so that a signal is seen within a tick.
        let tick = Deadline::after(follow::STOP_TICK);
        match wire.peek(&tick, "waiting in IDLE") {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Error::new(
                    Exit::TempFail,
                    format!("{url}: the server closed the connection"),
                ))
            }
            Err(_) if tick.left().is_zero() => continue,
            Err(e) => return Err(e.context(url)),
        }
        let deadline = wire.deadline();
        wire.read_line(&mut line, MAX_IDLE_LINE, &deadline, "IDLE")
            .map_err(|e| e.context(url))?;
        check_bye(endpoint, &line)?;
        news = is_exists(&line);
    }
    send(&mut wire, endpoint, "DONE")?;
    let deadline = wire.deadline();
    loop {
        wire.read_line(&mut line, MAX_IDLE_LINE, &deadline, "the reply to DONE")
            .map_err(|e| e.context(url))?;
        check_bye(endpoint, &line)?;
        if line.starts_with(format!("{tag} ").as_bytes()) {
            return Ok(None);
        }
    }
}

/// Writes `command` and its CRLF, flushed.
fn send(wire: &mut Wire, endpoint: &Endpoint, command: &str) -> Result<(), Error> {
    wire.write_all(format!("{command}\r\n").as_bytes())
        .and_then(|()| wire.flush())
        .map_err(|e| {
            wire::peer_error(e, &format!("sending {command}"), endpoint.timeout)
                .context(&endpoint.url)
        })
}

/// `* N EXISTS`: a message was added to the mailbox.
fn is_exists(line: &[u8]) -> bool {
    let text = String::from_utf8_lossy(line);
    let mut words = text.split_ascii_whitespace();
    words.next() == Some("*")
        && words.next().is_some_and(|n| n.parse::<u32>().is_ok())
        && words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("EXISTS"))
}

/// `* BYE`: the server is going away (shutting down, logging us out): 75,
/// so that the follower reconnects.
fn check_bye(endpoint: &Endpoint, line: &[u8]) -> Result<(), Error> {
    if line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"* BYE") {
        return Err(Error::new(
            Exit::TempFail,
            format!(
                "{}: the server ended the session: {}",
                endpoint.url,
                String::from_utf8_lossy(&line[5..]).trim()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exists_lines_are_news_and_others_not() {
        assert!(is_exists(b"* 4 EXISTS"));
        assert!(is_exists(b"* 12 exists"));
        assert!(!is_exists(b"* 4 EXPUNGE"));
        assert!(!is_exists(b"* OK Still here"));
        assert!(!is_exists(b"* 1 RECENT"));
    }
}
