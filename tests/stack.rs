//! The mail stack is real: `tests/stack_proof.py` submits mail with Python's
//! smtplib (implicit TLS and STARTTLS, verified against the stack's CA), reads
//! it back with imaplib and poplib and compares bytes, and checks the negative
//! cases other tests rely on (untrusted certificate, 5xx and 4xx recipients,
//! the non-ASCII password, and the OAuth mode: each of the three tokens by
//! XOAUTH2 and OAUTHBEARER over IMAP, POP3 and SMTP, only the valid one
//! taken). Clients no one here wrote prove the stack before
//! our own tools are tested against it.

use std::path::Path;
use std::process::Command;

#[test]
fn stack_serves_real_mail() {
    // Fails, with the command to start the stack, when the environment is absent.
    let stack = mailpipe_e2e::Stack::get();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("stack_proof.py");
    let output = Command::new("python3")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} failed ({}) against the stack in {}:\n{stdout}{stderr}",
        script.display(),
        output.status,
        stack.dir.display(),
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("stack_proof: ") && last.ends_with(" passed, 0 failed"),
        "unexpected summary {last:?}:\n{stdout}{stderr}"
    );
    // Echo the per-check lines, visible with `cargo test -- --nocapture`.
    print!("{stdout}");
}
