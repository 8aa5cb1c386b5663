//! `--follow`: POP3 has no push, and a session sees the maildrop as it was
//! at login, so each poll is a session of its own every --interval: the
//! same export as a run, with the UIDL state (a scratch one without
//! --state) telling new messages from those already written. A lost or
//! refused connection is retried with backoff (1 s doubling to 60 s).
//! SIGINT and SIGTERM end it between polls: exit 0, the state saved.

use std::time::Duration;

use mailpipe::follow::{self, Backoff, Stop};
use mailpipe::{Endpoint, Error};

use crate::export::ExportOptions;
use crate::session::Session;

/// Polls until a signal (Ok: exit 0) or an error a reconnect would not cure.
pub fn follow(
    endpoint: &Endpoint,
    mut options: ExportOptions,
    interval: Duration,
) -> Result<(), Error> {
    let stop = Stop::on_signals()?;
    let _scratch = match options.state {
        Some(_) => None,
        None => {
            let (dir, path) = follow::scratch_state("pop3-dump.state")?;
            options.state = Some(path);
            Some(dir)
        }
    };
    let mut backoff = Backoff::new();
    while !stop.is_set() {
        let polled = Session::open(endpoint)
            .map_err(|e| e.context_once(&endpoint.url))
            .and_then(|mut session| crate::run::export_in(&mut session, endpoint, &options));
        let wait = match polled {
            Ok(()) => {
                backoff.reset();
                // The notices (messages skipped for size) were said once.
                options.quiet = true;
                interval
            }
            Err(e) if follow::worth_reconnecting(&e) => {
                let wait = backoff.next_wait();
                eprintln!(
                    "pop3-dump: {}; trying again in {} s",
                    e.message(),
                    wait.as_secs()
                );
                wait
            }
            Err(e) => return Err(e),
        };
        stop.sleep(wait);
    }
    Ok(())
}
