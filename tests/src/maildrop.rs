//! bob's POP3 maildrop filled with numbered messages for one test at a time,
//! and what pop3-dump says of it: the fixture of the fault and limit tests.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::MutexGuard;

use crate::mail::{crlf, inbox_lock, unique};
use crate::Stack;

/// A message tagged `tag` (subject and Message-ID) for `to`, with `lines`
/// numbered body lines that each hold a `From ` (quoted in an mbox).
pub fn numbered_message(tag: &str, to: &str, lines: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Alice <alice@example.test>\nTo: {to}\nSubject: {tag}\n\
         Date: Mon, 23 Nov 2026 12:00:00 +0000\nMessage-ID: <{tag}@mailpipe.test>\n\n"
    )
    .into_bytes();
    for i in 0..lines {
        m.extend_from_slice(format!("{tag} line {i:05} From here to there .\n").as_bytes());
    }
    m
}

/// bob's INBOX, emptied and filled for this test, held (`inbox_lock`) until
/// dropped: the imap-dump and smtp-send tests use alice's.
pub struct Maildrop {
    pub stack: Stack,
    pub dir: tempfile::TempDir,
    /// The messages as POP3 serves them (CRLF), in order.
    pub held: Vec<Vec<u8>>,
    /// Dropped last: the maildrop is this test's while it lives.
    _bob: MutexGuard<'static, ()>,
}

impl Maildrop {
    /// `count` messages of `lines` body lines each, tagged after `label`.
    pub fn with(label: &str, count: usize, lines: usize) -> Maildrop {
        let bob = inbox_lock(1);
        let stack = Stack::get();
        stack.expunge_inbox(&stack.user2);
        let mut held = Vec::new();
        for i in 0..count {
            let m = numbered_message(&unique(&format!("pop-{label}-{i}")), &stack.user2, lines);
            stack.save(&stack.user2, "INBOX", &m);
            held.push(crlf(&m));
        }
        Maildrop {
            stack,
            dir: tempfile::tempdir().expect("tempdir"),
            held,
            _bob: bob,
        }
    }

    /// Where the tests keep pop3-dump's --state.
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("pop3.state")
    }

    /// The UIDLs the state file names as exported.
    pub fn saved(&self) -> BTreeSet<String> {
        std::fs::read_to_string(self.state())
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
            .map(str::to_string)
            .collect()
    }
}

/// The UIDLs of `pop3-dump --list` output (number, size, UIDL), in order.
pub fn listed_uidls(list: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(list)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect()
}
