//! What `--help` promises, checked on the built tools: each lists the exit
//! codes it can return (from mailpipe::exit's one table), and a flag with a
//! closed set of values refuses another with exit 64 and clap's one line of
//! choices.

use std::process::Output;

use mailpipe_e2e::Tool;

/// The codes each tool can end with, from reading the tools: the network
/// tools share the connection, TLS and login codes; 67 is smtp-send's alone.
const CODES: [(&str, &[u8]); 5] = [
    ("mkmime", &[0, 64, 65, 66, 74]),
    (
        "smtp-send",
        &[0, 64, 65, 66, 67, 68, 69, 70, 74, 75, 76, 77, 78],
    ),
    (
        "imap-dump",
        &[0, 64, 65, 66, 68, 69, 70, 74, 75, 76, 77, 78],
    ),
    ("pop3-dump", &[0, 64, 65, 68, 69, 70, 74, 75, 76, 77, 78]),
    ("mail2json", &[0, 64, 65, 66, 70, 71, 74]),
];

fn run(name: &str, args: &[&str]) -> Output {
    Tool::named(name)
        .command()
        .args(args)
        .env("MAILPIPE_CONFIG", "/nonexistent/accounts.toml")
        .output()
        .expect("tool runs")
}

#[test]
fn each_tools_help_lists_the_exit_codes_it_can_return() {
    for (name, codes) in CODES {
        let out = run(name, &["--help"]);
        assert_eq!(out.status.code(), Some(0), "{name} --help");
        let help = String::from_utf8(out.stdout).expect("utf-8 help");
        let table = help
            .split_once("\nExit status:\n")
            .unwrap_or_else(|| panic!("{name} --help has no exit status table:\n{help}"))
            .1;
        let listed: Vec<u8> = table
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        assert_eq!(listed, codes, "{name}:\n{table}");
        assert_eq!(
            help.matches("Exit status").count(),
            1,
            "{name}: written once"
        );
    }
}

#[test]
fn closed_value_sets_refuse_others_with_64_and_the_choices() {
    let cases: [(&str, &[&str], &str); 6] = [
        (
            "smtp-send",
            &["--tls", "bogus"],
            "[possible values: tls, starttls, none]",
        ),
        (
            "imap-dump",
            &["--tls", "ssl3"],
            "[possible values: tls, starttls, none]",
        ),
        (
            "pop3-dump",
            &["--tls", "TLS1.3"],
            "[possible values: tls, starttls, none]",
        ),
        (
            "smtp-send",
            &["--auth", "cram-md5"],
            "[possible values: plain, login, xoauth2, oauthbearer]",
        ),
        (
            "pop3-dump",
            &["--oauth-mechanism", "plain"],
            "[possible values: xoauth2, oauthbearer]",
        ),
        (
            "smtp-send",
            &["--report", "xml"],
            "[possible values: text, json]",
        ),
    ];
    for (name, args, choices) in cases {
        let out = run(name, args);
        assert_eq!(out.status.code(), Some(64), "{name} {args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("error: invalid value"), "{stderr}");
        assert!(stderr.contains(choices), "{name} {args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

/// The values accepted before the flags became ValueEnums still are: a dry
/// run with each takes them and prints the envelope.
#[test]
fn closed_value_sets_accept_their_values() {
    let message = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: x\r\n\r\nhi\r\n";
    for (tls, auth, report) in [
        ("tls", "plain", "text"),
        ("starttls", "login", "json"),
        ("none", "xoauth2", "text"),
        ("tls", "oauthbearer", "json"),
    ] {
        let mut cmd = Tool::SmtpSend.command();
        cmd.args(["-n", "-t", "--server", "smtp://mail.example.org"])
            .args(["--tls", tls, "--auth", auth, "--report", report])
            .env("MAILPIPE_CONFIG", "/nonexistent/accounts.toml");
        let out = mailpipe_e2e::run_with_stdin(&mut cmd, message);
        assert_eq!(
            out.status.code(),
            Some(0),
            "--tls {tls} --auth {auth} --report {report}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out
            .stdout
            .starts_with(b"MAIL FROM:<a@example.org>\nRCPT TO:<b@example.org>\n"));
    }
}
