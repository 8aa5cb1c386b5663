//! Mail the tests make and read back: unique tags, line ends, mbox streams,
//! and the stack's mailboxes (Maildir files, doveadm).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mailpipe::mbox::{MboxMessage, MboxReader};

use crate::Stack;

/// A tag no other test (or earlier run) uses: `label-pid-n-nanos`, where n
/// counts the calls of this process (two in the same nanosecond differ).
pub fn unique(label: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    format!("{label}-{}-{n}-{nanos}", std::process::id())
}

/// LF line ends to CRLF: what IMAP and POP3 serve for a Maildir file.
pub fn crlf(lf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lf.len() + lf.len() / 20);
    for &b in lf {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// CRLF line ends to LF: how Dovecot stores a message.
pub fn crlf_to_lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Whether `needle` occurs in `hay` (an empty needle does not).
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// The messages of an mbox stream, quoting undone, by the library's reader.
pub fn mbox(bytes: &[u8]) -> Vec<MboxMessage> {
    MboxReader::new(bytes)
        .collect::<std::io::Result<Vec<_>>>()
        .expect("output is a readable mbox")
}

/// The messages' bytes of an mbox stream.
pub fn mbox_data(bytes: &[u8]) -> Vec<Vec<u8>> {
    mbox(bytes).into_iter().map(|m| m.data).collect()
}

/// The messages' bytes of an mbox file (a dead letter, an --output-dir file).
pub fn read_mbox(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    mbox_data(&bytes)
}

/// The Message-ID header's value of a message (LF or CRLF).
pub fn message_id(message: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(message);
    text.lines()
        .take_while(|l| !l.trim_end_matches('\r').is_empty())
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("Message-ID")
                .then(|| value.trim().trim_end_matches('\r').to_string())
        })
}

/// Header and body of a stored message (LF): split at the first blank line.
pub fn split(message: &[u8]) -> (&[u8], &[u8]) {
    match message.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&message[..i + 1], &message[i + 2..]),
        None => (message, b""),
    }
}

/// The header fields (unfolded units, continuation lines kept) of a header, LF line ends.
pub fn header_fields(head: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(head);
    let mut fields: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push('\n');
                last.push_str(line);
            }
        } else if !line.is_empty() {
            fields.push(line.to_string());
        }
    }
    fields
}

impl Stack {
    /// `<maildir_root>/<user>/Maildir`.
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.maildir_root.join(user).join("Maildir")
    }

    /// The files of `user`'s Maildir (new and cur) holding `needle` (all of
    /// them for ""), sorted by path.
    pub fn find_messages(&self, user: &str, needle: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let mut found = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir(user).join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                if let Ok(bytes) = std::fs::read(entry.path()) {
                    if needle.is_empty() || contains(&bytes, needle.as_bytes()) {
                        found.push((entry.path(), bytes));
                    }
                }
            }
        }
        found.sort();
        found
    }

    /// Waits (up to 20 s) until `count` messages with `needle` are in `user`'s
    /// Maildir (Postfix delivers asynchronously); returns what is there then.
    pub fn wait_for(&self, user: &str, needle: &str, count: usize) -> Vec<Vec<u8>> {
        let start = Instant::now();
        loop {
            let found = self.find_messages(user, needle);
            if found.len() >= count || start.elapsed() > Duration::from_secs(20) {
                return found.into_iter().map(|(_, b)| b).collect();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asserts that nothing with `needle` arrives for `user` (after a moment:
    /// delivery is asynchronous).
    pub fn assert_nothing_delivered(&self, user: &str, needle: &str) {
        std::thread::sleep(Duration::from_millis(700));
        let found = self.find_messages(user, needle);
        assert!(
            found.is_empty(),
            "{user} received {} message(s) with {needle}",
            found.len()
        );
    }

    /// `user`'s Maildir files (new and cur), by Message-ID.
    pub fn maildir_messages(&self, user: &str) -> BTreeMap<String, Vec<u8>> {
        let mut found = BTreeMap::new();
        for (_, bytes) in self.find_messages(user, "") {
            if let Some(id) = message_id(&bytes) {
                found.insert(id, bytes);
            }
        }
        found
    }

    /// Stores `message` exactly as given in `mailbox` of `user` (doveadm save).
    pub fn save(&self, user: &str, mailbox: &str, message: &[u8]) {
        self.doveadm(&["save", "-u", user, "-m", mailbox], message);
    }

    /// Empties `user`'s INBOX.
    pub fn expunge_inbox(&self, user: &str) {
        self.doveadm(&["expunge", "-u", user, "mailbox", "INBOX", "all"], b"");
    }
}

/// One test at a time in a user's INBOX when tests expunge it (POP3 sees
/// only the INBOX). Per test binary; binaries that share a user must not
/// run at the same time (scripts/test runs them one after the other).
pub fn inbox_lock(user_index: usize) -> MutexGuard<'static, ()> {
    static INBOXES: [Mutex<()>; 2] = [Mutex::new(()), Mutex::new(())];
    INBOXES[user_index]
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}
