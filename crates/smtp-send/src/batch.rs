//! `--mbox`: every message of an mbox on stdin over one connection. A refused
//! message is reported, kept in the dead-letter file, and the session is reset
//! for the next; a lost connection is reopened once for the next message, and
//! if that fails every remaining message is kept with the reason.

use std::io::BufRead;

use mailpipe::mbox::MboxReader;
use mailpipe::progress::{self, Progress};
use mailpipe::{Endpoint, Error, Exit, Outcome};

use crate::deliver::{self, Options};
use crate::session::Session;

/// Sends every message of `input`; the result carries the worst exit code.
pub fn send_mbox(
    input: impl BufRead,
    endpoint: Result<Endpoint, Error>,
    mechanism: Option<lettre::transport::smtp::authentication::Mechanism>,
    options: &Options,
) -> Result<(), Error> {
    let verbose = endpoint.as_ref().is_ok_and(|e| e.verbose);
    let progress = Progress::new(options.quiet, verbose).counting("sent", "refused");
    let file_size = progress::regular_file_size(std::io::stdin());
    progress.start("", None, file_size);
    let mut reader = MboxReader::new(progress.reader(input));
    let mut outcome = Outcome::default();
    let mut session: Option<Session> = None;
    // Once reopening fails, the reason every later message is kept.
    let mut unreachable: Option<Error> = endpoint
        .as_ref()
        .err()
        .map(|e| Error::new(e.exit(), e.message()));
    let config = match &endpoint {
        Ok(e) => match e.tls_config() {
            Ok(c) => Some(c),
            Err(err) => {
                unreachable = Some(err);
                None
            }
        },
        Err(_) => None,
    };
    let open = || match (&endpoint, &config) {
        (Ok(endpoint), Some(config)) => {
            Session::open(endpoint, config, mechanism).map_err(|e| e.context_once(&endpoint.url))
        }
        _ => Err(Error::new(Exit::Software, "no server to connect to")),
    };
    let (mut total, mut failed) = (0usize, 0usize);
    let mut read = || -> Result<Option<Read>, Error> {
        let message = reader
            .next_message()
            .map_err(|e| Error::new(Exit::Data, format!("reading the mbox on stdin: {e}")))?;
        Ok(message.map(|m| {
            let prepared = deliver::prepare(&m.data, options, endpoint.as_ref().ok());
            (m.data, prepared)
        }))
    };
    // From a file, one message is read ahead, so that its first commands can
    // follow the current message's data in one write (see Session::send); an
    // error reading it surfaces after the current message, as it would
    // without reading ahead. Not from a pipe: a message is whole only when
    // the next one starts, and a writer that pauses must not hold back the
    // one before.
    let read_ahead = file_size.is_some();
    let mut upcoming = None;
    loop {
        let current = match upcoming.take() {
            Some(read) => read,
            None => read(),
        };
        let Some((raw, prepared)) = current? else {
            break;
        };
        total += 1;
        if read_ahead {
            upcoming = Some(read());
        }
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                record(
                    &mut outcome,
                    &mut failed,
                    &progress,
                    deliver::finish(total, &raw, None, Err(&e), options)?,
                );
                continue;
            }
        };
        if session.is_none() && unreachable.is_none() {
            match open() {
                Ok(s) => session = Some(s),
                Err(e) => unreachable = Some(e),
            }
        }
        let next = match &upcoming {
            Some(Ok(Some((_, Ok(next))))) => Some(next),
            _ => None,
        };
        // A session that is gone (Err, or a 421) is reopened for the next message.
        let result = match (session.take(), &unreachable) {
            (Some(s), _) => deliver::send(s, &open, &prepared, next, options).map(|(t, s)| {
                session = s;
                t
            }),
            (None, Some(e)) => Err(Error::new(e.exit(), e.message())),
            (None, None) => Err(Error::new(Exit::Software, "no session")),
        };
        let error = deliver::finish(total, &raw, Some(&prepared), result.as_ref(), options)?;
        record(&mut outcome, &mut failed, &progress, error);
    }
    progress.finish();
    if let Some(s) = session {
        s.quit();
    }
    if total == 0 {
        return Err(Error::no_input("no message on stdin (--mbox)"));
    }
    outcome.into_result(format!("{failed} of {total} messages not delivered"))
}

/// A message as read from the mbox, and what preparing it gave.
type Read = (Vec<u8>, Result<deliver::Prepared, Error>);

fn record(outcome: &mut Outcome, failed: &mut usize, progress: &Progress, error: Option<Error>) {
    if let Some(e) = error {
        outcome.record(e.exit());
        *failed += 1;
        progress.fail(1);
    } else {
        progress.advance(1, 0);
    }
}
