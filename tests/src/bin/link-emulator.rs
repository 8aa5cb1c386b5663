//! `link-emulator [--counts FILE] LISTEN_PORT UPSTREAM_PORT DELAY_MS MBIT`:
//! the link emulator of `mailpipe_e2e::link` as a process, for
//! scripts/bench. It listens on 127.0.0.1:LISTEN_PORT (0: a free port),
//! prints the port it listens on as one line on stdout, and forwards to
//! 127.0.0.1:UPSTREAM_PORT with DELAY_MS each way and MBIT Mbit/s each way
//! (0: no cap) until it is killed. With `--counts FILE` (or
//! LINK_COUNTS_FILE) it keeps FILE at one line of what passed so far:
//! `to_server=N to_client=N accepted=N closed=N peak_queued=N`, rewritten
//! (atomically) within 50 ms of a change.

use mailpipe_e2e::link::{Counts, Link, Profile};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: link-emulator [--counts FILE] LISTEN_PORT UPSTREAM_PORT DELAY_MS MBIT";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("link-emulator: {msg}");
            ExitCode::from(code)
        }
    }
}

fn run() -> Result<(), (u8, String)> {
    let mut counts_file = std::env::var_os("LINK_COUNTS_FILE").map(PathBuf::from);
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--counts" => {
                let f = args
                    .next()
                    .ok_or((64, format!("--counts needs a FILE; {USAGE}")))?;
                counts_file = Some(PathBuf::from(f));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => positional.push(a),
        }
    }
    let [listen, upstream, delay, mbit] = positional.as_slice() else {
        return Err((64, USAGE.to_string()));
    };
    let port = |name: &str, v: &str| {
        v.parse::<u16>()
            .map_err(|_| (64, format!("{name} is not a port number: {v:?}")))
    };
    let number = |name: &str, v: &str| match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err((64, format!("{name} is not a non-negative number: {v:?}"))),
    };
    let (listen, upstream) = (
        port("LISTEN_PORT", listen)?,
        port("UPSTREAM_PORT", upstream)?,
    );
    let profile = Profile::new(number("DELAY_MS", delay)?, number("MBIT", mbit)?);
    let link = Link::start_on(listen, upstream, profile)
        .map_err(|e| (71, format!("cannot listen on 127.0.0.1:{listen}: {e}")))?;
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{}", link.port()).and_then(|()| out.flush());
    let mut last = None;
    loop {
        let now = link.counts();
        if last != Some(now) {
            if let Some(f) = &counts_file {
                write_counts(f, &now)
                    .map_err(|e| (73, format!("cannot write {}: {e}", f.display())))?;
            }
            last = Some(now);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Replaces `file` with one line of counts (a reader never sees half of it).
fn write_counts(file: &Path, c: &Counts) -> std::io::Result<()> {
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".tmp");
    let line = format!(
        "to_server={} to_client={} accepted={} closed={} peak_queued={}\n",
        c.to_server, c.to_client, c.accepted, c.closed, c.peak_queued
    );
    std::fs::write(&tmp, line)?;
    std::fs::rename(&tmp, file)
}
