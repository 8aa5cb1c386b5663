//! The dump: choose the messages, RETR them (pipelined when the server
//! offers PIPELINING), write each whole to the mbox on stdout, and only when
//! all of that succeeded and was flushed: advance the state file, then DELE
//! what was written (with --delete) and QUIT to commit.
//!
//! Order matters for "nothing is lost": a DELE is sent only for a message
//! already flushed to the output, only after the whole run succeeded; a run
//! that fails, or is killed, ends without QUIT, and POP3 deletes nothing
//! without QUIT.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use mailpipe::mbox::MboxWriter;
use mailpipe::progress::Progress;
use mailpipe::{Error, Exit, Outcome};

use crate::envelope::derive_envelope;
use crate::maildrop::{Entry, Maildrop};
use crate::session::Session;
use crate::sink::Sink;
use crate::state::{maildrop_key, StateFile};

/// Commands in flight at most when pipelining. Each is a dozen bytes, so the
/// server never blocks on our commands while we read its replies.
const PIPELINE_COMMANDS: usize = 512;
/// Reply bytes (by the LIST sizes) in flight at most when pipelining: enough
/// to fill a far link while we wait (100 Mbit/s with 300 ms round trips
/// holds 3.75 MB), never more than one message beyond it. A window of a
/// fixed count would leave such a link idle on small messages.
const PIPELINE_BYTES: u64 = 4 << 20;

/// What the user asked for.
#[derive(Debug, Default)]
pub struct ExportOptions {
    pub limit: Option<usize>,
    pub max_size: Option<u64>,
    /// --max-bytes: stop before the message that would take the export past it.
    pub max_bytes: Option<u64>,
    pub headers_only: bool,
    pub delete: bool,
    pub state: Option<PathBuf>,
    pub quiet: bool,
    /// `-v`: the dialogue is on stderr, so no progress display.
    pub verbose: bool,
    /// `--exec CMD`: each message to CMD instead of the mbox on stdout.
    pub exec: Option<mailpipe::exec::Target>,
    /// `--follow`: each From_ line carries the entry's length (the live
    /// framing of `mailpipe::mbox`), and a server without UIDL is refused.
    pub follow: bool,
}

/// `user@host` of the maildrop, for the state file.
pub struct MaildropName<'a> {
    pub user: &'a str,
    pub host: &'a str,
}

pub fn export(
    session: &mut Session,
    name: MaildropName<'_>,
    options: &ExportOptions,
) -> Result<(), Error> {
    let notice = |text: &str| {
        if !options.quiet {
            eprintln!("pop3-dump: {text}");
        }
    };
    let caps = &session.capabilities;
    if options.headers_only && caps.known && !caps.top {
        return Err(Error::new(
            Exit::Unavailable,
            "the server does not offer TOP, which --headers-only needs",
        ));
    }
    let pipelining = caps.pipelining;
    let maildrop = Maildrop::scan(session, options.state.is_some())?;
    if options.follow && !maildrop.has_uidl {
        return Err(Error::new(
            Exit::Unavailable,
            "the server does not support UIDL, which --follow needs to tell new messages",
        ));
    }
    let key = maildrop_key(name.user, name.host);
    let mut state = match &options.state {
        Some(path) if maildrop.has_uidl => Some(StateFile::load(path)?),
        Some(_) => {
            notice(
                "the server does not support UIDL: --state cannot tell new messages, exporting all",
            );
            None
        }
        None => None,
    };
    let chosen = choose(&maildrop, state.as_ref(), &key, options, &notice);

    let mut out = match &options.exec {
        Some(target) => Sink::Exec(target),
        None => {
            let mut mbox =
                MboxWriter::new(BufWriter::with_capacity(256 * 1024, io::stdout().lock()));
            mbox.set_framed(options.follow);
            Sink::Mbox(mbox)
        }
    };
    let mut outcome = Outcome::default();
    let progress = Progress::new(options.quiet, options.verbose);
    // TOP n 0 fetches a fraction of the sizes LIST gave.
    let bytes = (!options.headers_only).then(|| chosen.iter().map(|e| e.size).sum());
    progress.start("", Some(chosen.len() as u64), bytes);
    let mut written = Vec::with_capacity(chosen.len());
    // With --exec, the state advances past each message its command took.
    let mut advance = |written: &[&Entry]| match &mut state {
        Some(state) => save_state(state, &key, &maildrop, written),
        None => Ok(()),
    };
    // A connection cut or a server that says "not now" ([SYS/TEMP]...)
    // stops the retrieval: what was written is still flushed and saved.
    let stopped = retrieve(
        session,
        &chosen,
        options.headers_only,
        pipelining,
        &mut out,
        &mut written,
        &mut advance,
        &mut outcome,
        &progress,
    );
    progress.finish();
    // A failed output or command: without QUIT (RETRs may still be in
    // flight), POP3 deletes nothing.
    let stopped = stopped?;
    out.flush()?;
    if !out.per_message() {
        mailpipe::durable::sync_stdout().map_err(|e| Error::io("writing stdout", e))?;
        if options.delete || options.state.is_some() {
            // A pipe's reader must have taken every message before the server or
            // the state may forget them.
            mailpipe::durable::wait_stdout_read(
                "nothing was deleted and the state file was not changed",
            )?;
        }
    }

    // A stopped export that wrote nothing leaves the state as it was.
    let nothing_new = stopped.is_some() && written.is_empty();
    if let Some(state) = state.as_mut().filter(|_| !nothing_new) {
        save_state(state, &key, &maildrop, &written)?;
    }
    if let Some(e) = stopped {
        // Nothing is deleted, and the server is not waited for.
        return Err(match options.state {
            Some(_) if e.exit() == Exit::TempFail => {
                Error::new(e.exit(), format!("{}; run again to resume", e.message()))
            }
            _ => e,
        });
    }
    let failed = outcome.worst().is_some();
    if options.delete && !failed && !written.is_empty() {
        delete(session, &written, pipelining)?;
    } else if options.delete && failed {
        notice("not deleting anything: some messages could not be retrieved");
    }
    let quit = session.client.quit();
    if options.delete {
        quit.map_err(|e| e.context("deletions may not be committed; no mail was lost"))?;
    }
    let failures = chosen.len() - written.len();
    outcome.into_result(format!(
        "{failures} of {} messages could not be retrieved",
        chosen.len()
    ))
}

/// Records in the state file that `written` were exported now, and forgets
/// the UIDLs no longer on the server.
fn save_state(
    state: &mut StateFile,
    key: &str,
    maildrop: &Maildrop,
    written: &[&Entry],
) -> Result<(), Error> {
    let on_server: Vec<&str> = maildrop
        .entries
        .iter()
        .filter_map(|e| e.uidl.as_deref())
        .collect();
    let exported: Vec<&str> = written.iter().filter_map(|e| e.uidl.as_deref()).collect();
    state.update(key, &on_server, &exported);
    state.save()
}

/// The messages to fetch, in server order: not yet in the state, not over
/// --max-size, at most --limit of them.
fn choose<'a>(
    maildrop: &'a Maildrop,
    state: Option<&StateFile>,
    key: &str,
    options: &ExportOptions,
    notice: &dyn Fn(&str),
) -> Vec<&'a Entry> {
    let mut too_big = 0usize;
    let mut chosen: Vec<&Entry> = maildrop
        .entries
        .iter()
        .filter(|e| match (state, &e.uidl) {
            (Some(s), Some(uidl)) => !s.contains(key, uidl),
            _ => true,
        })
        .filter(|e| {
            let fits = options.max_size.is_none_or(|max| e.size <= max);
            too_big += usize::from(!fits);
            fits
        })
        .take(options.limit.unwrap_or(usize::MAX))
        .collect();
    if let Some(max) = options.max_bytes {
        let mut total = 0u64;
        let fit = chosen
            .iter()
            .take_while(|e| {
                total = total.saturating_add(e.size);
                total <= max
            })
            .count();
        if fit < chosen.len() {
            eprintln!(
                "pop3-dump: --max-bytes {} reached: {fit} of {} messages exported, the rest \
                 left for the next run; run again to resume",
                mailpipe::ByteSize(max),
                chosen.len()
            );
            chosen.truncate(fit);
        }
    }
    if too_big > 0 {
        notice(&format!(
            "skipped {too_big} messages larger than --max-size"
        ));
    }
    chosen
}

/// RETRs (or TOP n 0) the chosen messages and delivers each whole, adding
/// it to `written` (and, with `--exec`, calling `advance` after each).
/// Returns what stopped the retrieval early: a broken connection, or a
/// refusal that means "not now" (RFC 2449/3206: `[SYS/TEMP]`, `[IN-USE]`,
/// `[LOGIN-DELAY]`). Any other refusal of a message is reported and recorded
/// in `outcome`; a failed output or command ends the run with an error.
#[allow(clippy::too_many_arguments)]
fn retrieve<'a, W: Write>(
    session: &mut Session,
    chosen: &[&'a Entry],
    headers_only: bool,
    pipelining: bool,
    out: &mut Sink<'_, W>,
    written: &mut Vec<&'a Entry>,
    advance: &mut dyn FnMut(&[&'a Entry]) -> Result<(), Error>,
    outcome: &mut Outcome,
    progress: &Progress,
) -> Result<Option<Error>, Error> {
    let client = &mut session.client;
    let command = |e: &Entry| match headers_only {
        true => format!("TOP {} 0", e.number),
        false => format!("RETR {}", e.number),
    };
    // What a reply costs the window: TOP n 0 answers with the header only.
    let cost = |e: &Entry| match headers_only {
        true => e.size.min(4096),
        false => e.size,
    };
    let mut window = Window::new(pipelining);
    let mut message = Vec::new();
    let mut sent = 0usize;
    for (i, entry) in chosen.iter().enumerate() {
        // Refill the window when half of it has been answered.
        if sent == i || (sent < chosen.len() && window.half_empty()) {
            while sent < chosen.len() && (sent == i || window.has_room()) {
                client.send(&command(chosen[sent]));
                window.sent(cost(chosen[sent]));
                sent += 1;
            }
            if let Err(e) = client.flush() {
                return Ok(Some(e));
            }
        }
        window.answered(cost(entry));
        let what = command(entry);
        let status = match client.read_message(&mut message, entry.size, &what) {
            Ok(status) => status,
            Err(e) => return Ok(Some(e)),
        };
        if !status.ok && status.auth_failure_exit() == Exit::TempFail {
            let e = Error::new(Exit::TempFail, format!("{what}: {}", status.describe()));
            return Ok(Some(e));
        }
        if !status.ok {
            let e = Error::protocol(format!("{what}: {}", status.describe()));
            mailpipe::exit::report("pop3-dump", &e);
            outcome.record(e.exit());
            progress.fail(1);
            continue;
        }
        let (sender, time) = derive_envelope(&message);
        out.deliver(entry, &sender, time, &message)?;
        written.push(*entry);
        progress.advance(1, message.len() as u64);
        if out.per_message() {
            advance(written)?;
        }
    }
    Ok(None)
}

/// DELE for every written message; if the server refuses any, RSET so that
/// the session deletes nothing, and fail.
fn delete(session: &mut Session, written: &[&Entry], pipelining: bool) -> Result<(), Error> {
    let client = &mut session.client;
    let window = if pipelining { PIPELINE_COMMANDS } else { 1 };
    let mut refused = None;
    for batch in written.chunks(window) {
        for entry in batch {
            client.send(&format!("DELE {}", entry.number));
        }
        client.flush()?;
        for entry in batch {
            let status = client.read_status(&format!("reply to DELE {}", entry.number))?;
            if !status.ok && refused.is_none() {
                refused = Some(format!("DELE {}: {}", entry.number, status.describe()));
            }
        }
    }
    let Some(refused) = refused else {
        return Ok(());
    };
    let reset = client.command("RSET", "reply to RSET")?;
    let _ = client.quit();
    let outcome = if reset.ok {
        "nothing was deleted"
    } else {
        "RSET failed too, some messages may have been deleted (all of them were written)"
    };
    Err(Error::protocol(format!(
        "the server refused {refused}; {outcome}"
    )))
}

/// The RETRs in flight: at most `PIPELINE_COMMANDS` of them and
/// `PIPELINE_BYTES` of replies (one, when the server does not pipeline).
struct Window {
    commands: usize,
    bytes: u64,
    max_commands: usize,
}

impl Window {
    fn new(pipelining: bool) -> Window {
        Window {
            commands: 0,
            bytes: 0,
            max_commands: if pipelining { PIPELINE_COMMANDS } else { 1 },
        }
    }

    fn has_room(&self) -> bool {
        self.commands < self.max_commands && self.bytes < PIPELINE_BYTES
    }

    /// Half the commands or half the bytes have been answered: time to
    /// refill, in one write, while the other half keeps the link busy.
    fn half_empty(&self) -> bool {
        self.commands <= self.max_commands / 2 && self.bytes <= PIPELINE_BYTES / 2
    }

    fn sent(&mut self, size: u64) {
        self.commands += 1;
        self.bytes += size;
    }

    fn answered(&mut self, size: u64) {
        self.commands = self.commands.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(size);
    }
}
