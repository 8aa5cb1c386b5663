//! What smtp-send does with its parsed command line.

use std::io::{Read, Write};

use lettre::transport::smtp::authentication::Mechanism;
use mailpipe::{Endpoint, Error, Protocol};

use crate::batch;
use crate::cli::{Args, Auth, Report};
use crate::deliver::{self, Options};
use crate::envelope::EnvelopeArgs;
use crate::flush;
use crate::queue::{self, Meta, Queue};
use crate::reply::Transaction;
use crate::session::Session;

/// Does what the command line asks; the error's kind is the exit status.
pub fn run(mut args: Args) -> Result<(), Error> {
    let mechanism = args.auth.map(Auth::mechanism);
    if let Some(m) = args.auth.and_then(Auth::oauth) {
        args.server.oauth_mechanism = Some(m);
    }
    if let Some(dir) = &args.list {
        return queue::list(dir, &mut std::io::stdout().lock());
    }
    if let Some(dir) = &args.flush {
        let endpoint = args.server.resolve(Protocol::Smtp);
        return flush::flush(&Queue::new(dir), endpoint.as_ref(), mechanism, args.quiet)
            .into_result();
    }
    if args.check {
        let endpoint = args.server.resolve(Protocol::Smtp)?;
        return check(&endpoint, mechanism, args.report == Report::Json);
    }
    let options = Options {
        envelope: EnvelopeArgs {
            from: args.from.clone(),
            recipients: args.recipients.clone(),
            read_recipients: args.read_recipients,
            dsn: crate::dsn::DsnArgs {
                notify: args.dsn_notify.clone(),
                ret: args.dsn_ret,
                envid: args.envid.clone(),
                require: args.require_dsn,
            },
        },
        partial: args.partial,
        dead_letter: args.dead_letter.clone(),
        json: args.report == Report::Json,
        quiet: args.quiet,
        batch: args.mbox,
    };
    let endpoint = args.server.resolve(Protocol::Smtp);
    if args.mbox {
        if args.dry_run {
            return Err(Error::usage("--dry-run does not take --mbox"));
        }
        let stdin = std::io::stdin().lock();
        return batch::send_mbox(stdin, endpoint, mechanism, &options);
    }
    let outbox = args.queue.as_deref().map(Queue::new);
    // What waits goes first. A server it could not reach is not tried again
    // for the new message (twice the --timeout of a silent network).
    let unreachable = match &outbox {
        Some(queue) => match flush::flush(queue, endpoint.as_ref(), mechanism, args.quiet) {
            flush::Flushed::Unreachable(e) => Some(e),
            flush::Flushed::Tried(Err(e)) => {
                mailpipe::exit::report(deliver::TOOL, &e);
                None
            }
            flush::Flushed::Tried(Ok(())) => None,
        },
        None => None,
    };
    let mut raw = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut raw)
        .map_err(|e| Error::io("reading stdin", e))?;
    if raw.is_empty() {
        return Err(Error::no_input("no message on stdin"));
    }
    if args.dry_run {
        let prepared = deliver::prepare(&raw, &options, endpoint.as_ref().ok())?;
        return dry_run(&prepared);
    }
    let prepared = match deliver::prepare(&raw, &options, endpoint.as_ref().ok()) {
        Ok(p) => p,
        Err(e) => return fail(&raw, None, &e, &options),
    };
    let endpoint = match endpoint {
        Ok(e) => e,
        Err(e) => return fail(&raw, Some(&prepared), &e, &options),
    };
    if let (Some(queue), Some(e)) = (&outbox, &unreachable) {
        let first = e.message().split("; ").next().unwrap_or_default();
        let why = Error::new(e.exit(), first);
        return enqueue(queue, &prepared, &[], &why);
    }
    let sent = endpoint.tls_config().and_then(|config| {
        let open = || Session::open(&endpoint, &config, mechanism);
        let (transaction, session) = deliver::send(open()?, &open, &prepared, None, &options)?;
        if let Some(session) = session {
            session.quit();
        }
        Ok(transaction)
    });
    let sent = sent.map_err(|e| e.context_once(&endpoint.url));
    if let Some(queue) = &outbox {
        if let Some(why) = queue_reason(&sent) {
            let done: Vec<&str> = match &sent {
                Ok(t) => t.delivered_to().map(|r| r.address.as_str()).collect(),
                Err(_) => Vec::new(),
            };
            return enqueue(queue, &prepared, &done, &why);
        }
    }
    match deliver::finish(1, &raw, Some(&prepared), sent.as_ref(), &options)? {
        None => Ok(()),
        Some(e) if sent.is_ok() => Err(e.context_once(&endpoint.url)),
        Some(e) => Err(e),
    }
}

/// Why the message goes to the outbox, if it does: the server could not be
/// reached, or its answer was temporary (not a refusal for good).
fn queue_reason(sent: &Result<Transaction, Error>) -> Option<Error> {
    match sent {
        Err(e) if queue::worth_queueing(e) => Some(Error::new(e.exit(), e.message())),
        Err(_) => None,
        Ok(t) => match flush::judge(t) {
            flush::Verdict::Keep(e) => Some(e),
            _ => None,
        },
    }
}

/// Stores the message in the outbox for the recipients not `done` (after
/// a 452, some may have been), and says so on one line.
fn enqueue(
    queue: &Queue,
    prepared: &deliver::Prepared,
    done: &[&str],
    why: &Error,
) -> Result<(), Error> {
    let mut envelope = prepared.envelope.clone();
    envelope
        .recipients
        .retain(|a| !done.contains(&a.to_string().as_str()));
    let path = queue.add(&prepared.data, &Meta::new(&envelope, why.message()))?;
    eprintln!(
        "{}: queued as {} ({}); smtp-send --flush {} sends it",
        deliver::TOOL,
        path.display(),
        why.message(),
        queue.root().display()
    );
    Ok(())
}

/// A message that could not even be tried: report it, and keep it.
fn fail(
    raw: &[u8],
    prepared: Option<&deliver::Prepared>,
    e: &Error,
    options: &Options,
) -> Result<(), Error> {
    match deliver::finish(1, raw, prepared, Err(e), options)? {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `--dry-run`: the envelope as SMTP commands, a blank line, the message.
fn dry_run(prepared: &deliver::Prepared) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    let sender = prepared
        .envelope
        .sender
        .as_ref()
        .map_or(String::new(), |a| a.to_string());
    let mut text = format!("MAIL FROM:<{sender}>\n");
    for r in &prepared.envelope.recipients {
        text.push_str(&format!("RCPT TO:<{r}>\n"));
    }
    text.push('\n');
    out.write_all(text.as_bytes())
        .and_then(|()| out.write_all(&prepared.data))
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("writing stdout", e))
}

/// `--check`: what the server offers, and whether we can log in.
fn check(endpoint: &Endpoint, mechanism: Option<Mechanism>, json: bool) -> Result<(), Error> {
    let config = endpoint.tls_config()?;
    let with_url = |e: Error| e.context_once(&endpoint.url);
    let mut session = Session::open(endpoint, &config, mechanism).map_err(with_url)?;
    let noop = session.noop().map_err(with_url)?;
    let tls = session.tls_description();
    let extensions = session.extensions();
    let auth = session.offered_auth();
    let authenticated = session
        .authenticated
        .as_ref()
        .map(|(login, m)| format!("{login} ({m})"));
    let text = if json {
        serde_json::json!({
            "server": endpoint.url.to_string(),
            "greeting": session.greeting.summary(),
            "tls": tls,
            "extensions": extensions,
            "auth": auth.as_deref().map(|a| a.split_whitespace().collect::<Vec<_>>()),
            "size": session.size_limit,
            "authenticated": authenticated,
            "noop": noop.summary(),
        })
        .to_string()
            + "\n"
    } else {
        let mut text = format!("server: {}\n", endpoint.url);
        text.push_str(&format!("greeting: {}\n", session.greeting.summary()));
        text.push_str(&format!(
            "tls: {}\n",
            tls.as_deref().unwrap_or("none (plaintext)")
        ));
        text.push_str(&format!("extensions: {}\n", extensions.join(", ")));
        text.push_str(&format!(
            "auth: {}\n",
            auth.as_deref().unwrap_or("none offered")
        ));
        text.push_str(&format!(
            "size: {}\n",
            session
                .size_limit
                .map_or("no limit given".to_string(), |n| n.to_string())
        ));
        text.push_str(&format!(
            "authenticated: {}\n",
            authenticated
                .as_deref()
                .unwrap_or("no (no user configured)")
        ));
        text.push_str(&format!("noop: {}\n", noop.summary()));
        text
    };
    session.quit();
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("writing stdout", e))
}
