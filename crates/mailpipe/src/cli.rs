//! Command-line plumbing every tool shares: parsing with sysexits codes, and
//! man pages and shell completions generated from the clap definitions.
//!
//! Whatever is printed here (help, version, man page, completions) ends like
//! the tools' own output: a write that fails is one line and 74 (EX_IOERR), so
//! `--help > /dev/full` is not a silent success; a closed pipe (`| head -1`)
//! ends quietly with 0.

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::exit::{Error, Exit};

/// What `main` should do after looking at the command line.
pub enum Parsed<P> {
    /// Run the tool with these arguments.
    Run(P),
    /// Already handled (help, version, man page, completions, usage error):
    /// exit with this status.
    Exit(ExitCode),
}

/// Parses the process arguments. A usage error prints clap's message and exits
/// 64 (EX_USAGE) instead of clap's 2; `--help` and `--version` exit 0, or 74
/// when stdout cannot be written; `--generate-man` and
/// `--generate-completions SHELL` write their output to stdout before any other
/// argument is checked, so that a build script needs no account or server.
pub fn parse<P: Parser>() -> Parsed<P> {
    parse_from(std::env::args_os())
}

pub fn parse_from<P: Parser, I: IntoIterator<Item = OsString>>(args: I) -> Parsed<P> {
    let args: Vec<OsString> = args.into_iter().collect();
    if let Some(status) = generate_if_asked::<P>(&args) {
        return Parsed::Exit(status);
    }
    match P::try_parse_from(&args) {
        Ok(p) => Parsed::Run(p),
        Err(e) if e.use_stderr() => {
            // Nowhere to report a failure to write to stderr.
            let _ = e.print();
            Parsed::Exit(ExitCode::from(Exit::Usage.code()))
        }
        Err(e) => {
            // Help or version on stdout; clap neither flushes nor reports.
            let written = e.print().and_then(|()| io::stdout().lock().flush());
            let cmd = P::command();
            Parsed::Exit(finish(cmd.get_name(), written))
        }
    }
}

fn generate_if_asked<P: CommandFactory>(args: &[OsString]) -> Option<ExitCode> {
    let position = |flag: &str| args.iter().position(|a| a == flag);
    let mut cmd = P::command();
    let name = cmd.get_name().to_string();
    let mut out = io::stdout().lock();
    if position("--generate-man").is_some() {
        let result = clap_mangen::Man::new(cmd).render(&mut out);
        return Some(finish(&name, result.and_then(|()| out.flush())));
    }
    let i = position("--generate-completions")?;
    let Some(shell) = args
        .get(i + 1)
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse::<clap_complete::Shell>().ok())
    else {
        let e = Error::usage("--generate-completions takes bash, elvish, fish, powershell or zsh");
        crate::exit::report(&name, &e);
        return Some(ExitCode::from(Exit::Usage.code()));
    };
    // Into memory first: clap_complete panics when its writer fails.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name.clone(), &mut script);
    Some(finish(
        &name,
        out.write_all(&script).and_then(|()| out.flush()),
    ))
}

/// The status after printing: 0, 0 for a closed pipe, else one line and 74.
fn finish(tool: &str, result: io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e = Error::io("writing stdout", e);
            if e.is_broken_pipe() {
                return ExitCode::SUCCESS;
            }
            crate::exit::report(tool, &e);
            ExitCode::from(e.exit().code())
        }
    }
}

/// The whole `main` of a tool: parse, run, map the outcome to a status.
pub fn main_with<P: Parser>(tool: &str, run: impl FnOnce(P) -> Result<(), Error>) -> ExitCode {
    match parse::<P>() {
        Parsed::Exit(status) => status,
        Parsed::Run(args) => crate::exit::run_main(tool, || run(args)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser, Debug)]
    #[command(name = "demo")]
    struct Demo {
        #[arg(long)]
        required: String,
    }

    #[test]
    fn usage_error_is_64_and_help_is_0() {
        let Parsed::Exit(status) = parse_from::<Demo, _>(["demo".into()]) else {
            panic!("missing --required must not parse");
        };
        assert_eq!(format!("{status:?}"), format!("{:?}", ExitCode::from(64)));
        let Parsed::Run(d) = parse_from::<Demo, _>(["demo".into(), "--required=x".into()]) else {
            panic!("valid arguments must parse");
        };
        assert_eq!(d.required, "x");
    }
}
