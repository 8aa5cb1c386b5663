//! What imap-dump does with its parsed command line.

use std::collections::HashMap;

use mailpipe::progress::Progress;
use mailpipe::{ByteSize, Error, Protocol};

use crate::cap::ByteCap;
use crate::cli::Args;
use crate::compress::{self, Choice};
use crate::dump::{self, DumpOptions, Sessions};
use crate::output::{self, MboxOutput};
use crate::sink::Sink;
use crate::state::StateFile;
use crate::when::When;
use crate::{id, list, session, throttle};

/// Does what the command line asks; the error's kind is the exit status.
pub fn run(args: Args) -> Result<(), Error> {
    if let Some(search) = &args.search {
        if search.contains(['\r', '\n']) || search.trim().is_empty() {
            return Err(Error::usage(
                "--search must be IMAP SEARCH criteria on one line (no CR or LF)",
            ));
        }
    }
    if args
        .mailboxes
        .iter()
        .any(|m| m.contains(['\r', '\n']) || m.is_empty())
    {
        return Err(Error::usage(
            "--mailbox must be a non-empty name without CR or LF",
        ));
    }
    if args.batch_size.bytes() == 0 {
        return Err(Error::usage("--batch-size must be at least 1"));
    }
    if args.state.is_some() && args.output_dir.is_none() && args.exec.is_none() {
        mailpipe::durable::refuse_discarded_stdout("--state")?;
    }
    let mut endpoint = args.server.resolve(Protocol::Imap)?;
    // Every connection (the helper too) reads the mode from the endpoint.
    let id_mode = id::choose(args.id, args.no_id, endpoint.imap_id.as_deref())?;
    endpoint.imap_id = Some(id_mode.as_str().to_string());
    if args.no_sasl_ir {
        endpoint.sasl_ir = Some(false);
    }
    // A follow without --state resumes after a reconnect from a scratch one.
    let scratch = match (&args.state, args.follow) {
        (None, true) => Some(mailpipe::follow::scratch_state("imap-dump.state")?),
        _ => None,
    };
    let state_path = args
        .state
        .as_deref()
        .or(scratch.as_ref().map(|s| s.1.as_path()));
    let mut state = state_path.map(StateFile::load).transpose()?;
    let interval =
        mailpipe::follow::choose_interval(args.interval.as_deref(), endpoint.interval.as_deref())?;
    let compress_flag = if args.no_compress {
        Some(When::Never)
    } else {
        args.compress
    };
    let compress = When::choose(compress_flag, "compress", endpoint.compress.as_deref())?;
    // Two transcripts interleaved on stderr would be unreadable.
    let connections = if endpoint.verbose {
        1
    } else {
        usize::from(args.connections)
    };
    let session = session::open(&endpoint, compress)?;
    // `auto` on a far link measures before it chooses; helpers do as chosen.
    let rtt = session.link_round_trip();
    let choice = Choice::new(compress, rtt.filter(|&rtt| compress::far(rtt)));
    if let Some(note) = choice.near_note(rtt) {
        session.note(&note);
    }
    let mut sessions = Sessions::new(session, connections, choice);
    if args.list {
        let listed = list::print(
            &mut sessions.main,
            &endpoint,
            args.json,
            &mut std::io::stdout().lock(),
        );
        return sessions.finish(listed);
    }
    let dumped = dump_all(&args, &endpoint, &mut sessions, state.as_mut());
    sessions.finish(dumped)?;
    match state {
        Some(state) if args.follow => crate::follow::follow(&args, &endpoint, state, interval),
        _ => Ok(()),
    }
}

/// What the user asked for that applies to every mailbox.
pub(crate) fn dump_options(
    args: &Args,
    endpoint: &mailpipe::Endpoint,
    connections: usize,
) -> Result<DumpOptions, Error> {
    Ok(DumpOptions {
        search: args.search.clone(),
        limit: args.limit,
        max_size: args.max_size.map(ByteSize::bytes),
        batch_bytes: args.batch_size.bytes(),
        flags: args.flags,
        tag_mailbox: args.tag_mailbox,
        account: endpoint.state_key()?,
        max_bytes: ByteSize::flag_or_account(
            args.max_bytes,
            "max_bytes",
            endpoint.max_bytes.as_deref(),
        )?
        .map(|max| ByteCap::new(max.bytes())),
        connections,
    })
}

/// The dump proper, once logged in: every mailbox asked for, in order.
fn dump_all(
    args: &Args,
    endpoint: &mailpipe::Endpoint,
    sessions: &mut Sessions,
    mut state: Option<&mut StateFile>,
) -> Result<(), Error> {
    // The mailboxes to dump, with their hierarchy delimiters for --output-dir.
    let needs_list = args.all || args.output_dir.is_some();
    let known = if needs_list {
        list::mailboxes(&mut sessions.main, endpoint)?
    } else {
        Vec::new()
    };
    let names: Vec<String> = if args.all {
        known
            .iter()
            .filter(|m| m.selectable())
            .map(|m| m.name.clone())
            .collect()
    } else if args.mailboxes.is_empty() {
        vec!["INBOX".to_string()]
    } else {
        args.mailboxes.clone()
    };
    let delimiters: HashMap<&str, Option<&str>> = known
        .iter()
        .map(|m| (m.name.as_str(), m.delimiter.as_deref()))
        .collect();

    let options = dump_options(args, endpoint, sessions.connections())?;
    let progress = Progress::new(args.quiet, endpoint.verbose);
    let exec = match &args.exec {
        Some(command) => Some(mailpipe::exec::Target {
            command: command.clone(),
            account: options.account.clone(),
            server: endpoint.url.to_string(),
        }),
        None => None,
    };
    let mut stdout = match (&args.output_dir, &exec) {
        (None, None) => {
            let mut out = MboxOutput::stdout()?;
            out.set_framed(args.follow);
            Some(out)
        }
        _ => None,
    };
    let with_state = state.is_some();
    for name in &names {
        let mut file_output;
        let out = match (&exec, &args.output_dir, stdout.as_mut()) {
            (Some(target), _, _) => {
                let mut sink = Sink::Exec(target);
                dump::dump_mailbox(
                    sessions,
                    endpoint,
                    name,
                    &mut sink,
                    state.as_deref_mut(),
                    &options,
                    &progress,
                )
                .map_err(|e| throttle::resumable(e, with_state))?;
                continue;
            }
            (None, Some(root), _) => {
                let delimiter = delimiters.get(name.as_str()).copied().flatten();
                let path = output::mailbox_path(root, name, delimiter);
                file_output = MboxOutput::file(&path, state.is_some())?;
                &mut file_output
            }
            (None, None, Some(out)) => out,
            (None, None, None) => unreachable!("stdout is open when there is no --output-dir"),
        };
        dump::dump_mailbox(
            sessions,
            endpoint,
            name,
            &mut Sink::Mbox(out),
            state.as_deref_mut(),
            &options,
            &progress,
        )
        .map_err(|e| throttle::resumable(e, with_state))?;
        out.commit(with_state)?;
    }
    Ok(())
}
