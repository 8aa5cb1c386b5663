//! `--mbox`: every message of an mbox on stdin over one connection. A refused
//! message is reported, kept in the dead-letter file, and the session is reset
//! for the next; a lost connection is reopened once for the next message, and
//! if that fails every remaining message is kept with the reason. From a
//! file, messages go several per round trip where the server allows (see
//! `Window`).

use std::collections::VecDeque;
use std::io::BufRead;

use mailpipe::mbox::MboxReader;
use mailpipe::progress::{self, Progress};
use mailpipe::{Endpoint, Error, Exit, Outcome};

use crate::deliver::{self, Options};
use crate::reply::Transaction;
use crate::session::{Landing, Session};

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
    let mut total = 0usize;
    let mut read = || -> Result<Option<Item>, Error> {
        let message = reader
            .next_message()
            .map_err(|e| Error::new(Exit::Data, format!("reading the mbox on stdin: {e}")))?;
        Ok(message.map(|m| {
            total += 1;
            let prepared = deliver::prepare(&m.data, options, endpoint.as_ref().ok());
            Item {
                number: total,
                raw: m.data,
                prepared,
                resent: false,
                flight: 0,
            }
        }))
    };
    // From a file, one message is read ahead, so that its first commands can
    // follow the current message's data in one write (see Session::send); an
    // error reading it surfaces after the current message, as it would
    // without reading ahead. Not from a pipe: a message is whole only when
    // the next one starts, and a writer that pauses must not hold back the
    // one before. From a file too, messages go in a window (see Window).
    let read_ahead = file_size.is_some();
    let mut batch = Window {
        options,
        progress: &progress,
        open: &open,
        outcome: Outcome::default(),
        failed: 0,
        session: None,
        replacement: None,
        window: VecDeque::new(),
        bytes: 0,
        requeued: Vec::new(),
    };
    // Messages read and not yet sent (a read error in its place), oldest first.
    let mut pending: VecDeque<Result<Item, Error>> = VecDeque::new();
    let mut eof = false;
    loop {
        while pending.len() < 1 + usize::from(read_ahead) && !eof {
            match read() {
                Ok(Some(item)) => pending.push_back(Ok(item)),
                Ok(None) => eof = true,
                Err(e) => {
                    pending.push_back(Err(e));
                    eof = true;
                }
            }
        }
        if pending.is_empty() {
            // The end: the window lands, and what a 421 left goes again.
            batch.land_all()?;
            pending.extend(batch.requeued.drain(..).map(Ok));
        }
        let Some(front) = pending.pop_front() else {
            break;
        };
        let mut item = match front {
            Ok(item) => item,
            Err(e) => {
                batch.land_all()?;
                if batch.requeued.is_empty() {
                    return Err(e);
                }
                pending.push_front(Err(e));
                for item in batch.requeued.drain(..).rev() {
                    pending.push_front(Ok(item));
                }
                continue;
            }
        };
        if item.prepared.is_ok() && batch.session.is_none() && unreachable.is_none() {
            match open() {
                Ok(s) => batch.session = Some(s),
                Err(e) => unreachable = Some(e),
            }
        }
        let flight = match (&batch.session, &item.prepared) {
            (Some(s), Ok(p)) if read_ahead => s.window_flight(&p.envelope, &p.data),
            _ => None,
        };
        if let Some(flight) = flight {
            while !batch.window.is_empty()
                && (batch.window.len() >= WINDOW || batch.bytes + flight.len() > WINDOW_BYTES)
            {
                batch.land_one()?;
            }
            if batch.session.is_none() || !batch.requeued.is_empty() {
                // The session ended: the commands are for a new one.
                batch.requeue(&mut pending, item);
                continue;
            }
            item.flight = flight.len();
            let launched = batch.session.as_mut().map(|s| s.launch(&flight));
            batch.bytes += item.flight;
            batch.window.push_back(item);
            if !matches!(launched, Some(Ok(()))) {
                // What was lost shows when the replies are read.
                batch.land_all()?;
            }
            continue;
        }
        batch.land_all()?;
        if !batch.requeued.is_empty() {
            batch.requeue(&mut pending, item);
            continue;
        }
        let prepared = match &item.prepared {
            Ok(p) => p,
            Err(e) => {
                batch.finish(&item, Err(e))?;
                continue;
            }
        };
        if let Some(s) = batch.session.as_mut() {
            if s.settle().is_err() {
                // A session that refuses RSET is not reused; the next try reopens.
                batch.session = None;
                pending.push_front(Ok(item));
                continue;
            }
        }
        let next = match pending.front() {
            Some(Ok(Item {
                prepared: Ok(next), ..
            })) => Some(next),
            _ => None,
        };
        // A session that is gone (Err, or a 421) is reopened for the next message.
        let result = match (batch.session.take(), &unreachable) {
            (Some(s), _) => deliver::send(s, &open, prepared, next, options).map(|(t, s)| {
                batch.session = s;
                t
            }),
            (None, Some(e)) => Err(Error::new(e.exit(), e.message())),
            (None, None) => Err(Error::new(Exit::Software, "no session")),
        };
        batch.finish(&item, result.as_ref())?;
    }
    progress.finish();
    if let Some(s) = batch.session {
        s.quit();
    }
    if total == 0 {
        return Err(Error::no_input("no message on stdin (--mbox)"));
    }
    let failed = batch.failed;
    batch
        .outcome
        .into_result(format!("{failed} of {total} messages not delivered"))
}

/// Messages in the window at most, and bytes of their commands: enough to
/// fill a 30 ms round trip at the rate Postfix takes messages, little to
/// send for nothing when the server refuses early or the connection drops.
const WINDOW: usize = 32;
const WINDOW_BYTES: usize = 4 * 1024 * 1024;

/// A message as read from the mbox: its number, its bytes, what preparing
/// it gave, whether it was sent again after a 421, and the size of its
/// commands while in the window.
struct Item {
    number: usize,
    raw: Vec<u8>,
    prepared: Result<deliver::Prepared, Error>,
    resent: bool,
    flight: usize,
}

/// Several messages per round trip: a message that `Session::window_flight`
/// takes goes without waiting for the replies to the ones before it, and
/// outcomes are judged and reported in input order as they land. When the
/// session ends with messages in flight, those after a 421 were not taken
/// and go again (once) over a new session; after a lost connection their
/// outcome is unknown, so each is reported and kept like a message whose
/// final reply was lost (a duplicate is better than a loss). Any other
/// message first lands the whole window, then goes by `deliver::send`.
struct Window<'a> {
    options: &'a Options,
    progress: &'a Progress,
    open: &'a dyn Fn() -> Result<Session, Error>,
    outcome: Outcome,
    failed: usize,
    session: Option<Session>,
    /// The session `deliver::resume` opened while the old one still had
    /// messages in flight.
    replacement: Option<Session>,
    window: VecDeque<Item>,
    bytes: usize,
    /// Messages the server did not take before its 421, to send again.
    requeued: Vec<Item>,
}

impl Window<'_> {
    /// Lands the oldest message in the window; when the session ended
    /// there, every other one too, and the session is dropped.
    fn land_one(&mut self) -> Result<(), Error> {
        let Some(mut item) = self.window.pop_front() else {
            return Ok(());
        };
        self.bytes -= item.flight;
        let (Some(session), Ok(prepared)) = (self.session.as_mut(), &item.prepared) else {
            return Err(Error::new(
                Exit::Software,
                "a message in flight without a session",
            ));
        };
        match session.land(&prepared.envelope) {
            Landing::NotSent(e) if item.resent => self.finish(&item, Err(&e))?,
            Landing::NotSent(_) => {
                item.resent = true;
                self.requeued.push(item);
            }
            Landing::Judged(Ok(t)) if t.closed.is_some() => {
                let (t, s) = deliver::resume(t, self.open, prepared, self.options);
                self.replacement = s;
                self.finish(&item, Ok(&t))?;
            }
            Landing::Judged(result) => self.finish(&item, result.as_ref())?,
        }
        if self.session.as_ref().is_some_and(Session::stopped) {
            if !self.window.is_empty() {
                return self.land_one();
            }
            self.session = self.replacement.take();
        }
        Ok(())
    }

    fn land_all(&mut self) -> Result<(), Error> {
        while !self.window.is_empty() {
            self.land_one()?;
        }
        Ok(())
    }

    /// Puts the messages to send again, then `current`, first in `pending`.
    fn requeue(&mut self, pending: &mut VecDeque<Result<Item, Error>>, current: Item) {
        pending.push_front(Ok(current));
        for item in self.requeued.drain(..).rev() {
            pending.push_front(Ok(item));
        }
    }

    /// Reports a message's outcome and keeps it when it was not delivered.
    fn finish(&mut self, item: &Item, result: Result<&Transaction, &Error>) -> Result<(), Error> {
        let error = deliver::finish(
            item.number,
            &item.raw,
            item.prepared.as_ref().ok(),
            result,
            self.options,
        )?;
        if let Some(e) = error {
            self.outcome.record(e.exit());
            self.failed += 1;
            self.progress.fail(1);
        } else {
            self.progress.advance(1, 0);
        }
        Ok(())
    }
}
