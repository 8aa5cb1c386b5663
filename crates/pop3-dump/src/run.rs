//! What pop3-dump does with its parsed command line.

use std::io::{self, BufWriter};

use mailpipe::{ByteSize, Error, Protocol};

use crate::cli::Args;
use crate::export::{self, ExportOptions, MaildropName};
use crate::maildrop::{self, Maildrop};
use crate::session::Session;
use crate::state::maildrop_key;

/// Does what the command line asks; the error's kind is the exit status.
pub fn run(args: Args) -> Result<(), Error> {
    if args.exec.is_some() {
        // The command keeps the messages, not stdout.
    } else if args.delete {
        mailpipe::durable::refuse_discarded_stdout("--delete")?;
    } else if args.state.is_some() {
        mailpipe::durable::refuse_discarded_stdout("--state")?;
    }
    let endpoint = args.server.resolve(Protocol::Pop3)?;
    let interval =
        mailpipe::follow::choose_interval(args.interval.as_deref(), endpoint.interval.as_deref())?;
    let mut session = Session::open(&endpoint).map_err(|e| e.context_once(&endpoint.url))?;
    if args.list {
        let listed = Maildrop::scan(&mut session, true)
            .map_err(|e| e.context_once(&endpoint.url))
            .and_then(|maildrop| {
                let mut out = BufWriter::new(io::stdout().lock());
                maildrop::print_list(&maildrop, args.json, &mut out)
            });
        if listed.is_ok() {
            let _ = session.client.quit();
        }
        return session.finish(listed);
    }
    let options = ExportOptions {
        limit: args.limit,
        max_size: args.max_size.map(ByteSize::bytes),
        max_bytes: ByteSize::flag_or_account(
            args.max_bytes,
            "max_bytes",
            endpoint.max_bytes.as_deref(),
        )?
        .map(ByteSize::bytes),
        headers_only: args.headers_only,
        delete: args.delete,
        state: args.state,
        quiet: args.quiet,
        verbose: endpoint.verbose,
        exec: match args.exec {
            Some(command) => Some(mailpipe::exec::Target {
                command,
                account: maildrop_key(endpoint.login()?, &endpoint.url.host),
                server: endpoint.url.to_string(),
            }),
            None => None,
        },
        follow: args.follow,
    };
    if args.follow {
        // Each poll is a session of its own: a POP3 session sees the
        // maildrop as it was at login.
        let _ = session.client.quit();
        return crate::follow::follow(&endpoint, options, interval);
    }
    export_in(&mut session, &endpoint, &options)
}

/// One export over `session`, ended as `Session::finish` does.
pub(crate) fn export_in(
    session: &mut Session,
    endpoint: &mailpipe::Endpoint,
    options: &ExportOptions,
) -> Result<(), Error> {
    let name = MaildropName {
        user: endpoint.login()?,
        host: &endpoint.url.host,
    };
    let exported = export::export(session, name, options).map_err(|e| {
        if e.exit() == mailpipe::Exit::Io {
            e
        } else {
            e.context_once(&endpoint.url)
        }
    });
    session.finish(exported)
}
