//! The `--state` file: per account (`user@host`) and mailbox, the UIDVALIDITY,
//! the highest UID whose message is in the output, and the UIDs below it that
//! `--max-size` skipped (fetched by a later run whose limit lets them through).
//! JSON, replaced atomically (temporary file, fsync, rename, fsync of the
//! folder), and only after the output it describes was flushed, so that a run
//! killed at any moment never skips a message next time.
//!
//! ```json
//! {"version":2,"accounts":{"alice@imap.example.org":{"INBOX":
//!   {"uid_validity":1700000000,"last_uid":4711,"skipped":[4702]}}}}
//! ```
//!
//! Each message written is also remembered by a key (keys.rs) in a sidecar,
//! `FILE.keys`, whose valid length the state counts (`keys`), and each
//! mailbox says from which UID on all its written messages have keys
//! (`keyed_from`): on a changed UIDVALIDITY the mailbox is matched against
//! them. States without these (written before them) still load.
//!
//! An empty file is an empty state (as for pop3-dump). A version 1 file
//! (keyed by mailbox only, written before accounts were told apart) is read
//! as the state of the first account that runs with it: its mailboxes become
//! that account's, and the file is written back as version 2.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use mailpipe::{Error, Exit};
use serde::{Deserialize, Serialize};

/// What was written of one mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxState {
    pub uid_validity: u32,
    pub last_uid: u32,
    /// UIDs up to `last_uid` skipped for `--max-size`, ascending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<u32>,
    /// Every message written with a UID above this has its key in the
    /// sidecar; `None`: a state from before keys were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyed_from: Option<u32>,
}

/// Mailbox name as the user reads it (UTF-8) to its state.
type Mailboxes = BTreeMap<String, MailboxState>;

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateLayout {
    version: u32,
    /// Version 2: keyed by `user@host`, then mailbox.
    #[serde(default)]
    accounts: BTreeMap<String, Mailboxes>,
    /// Version 1: keyed by mailbox only; adopted by the first account.
    #[serde(default, skip_serializing)]
    mailboxes: Mailboxes,
    /// Bytes of the sidecar (`keys.rs`) that hold keys of messages written.
    #[serde(default, skip_serializing_if = "is_zero")]
    keys: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The state file and its contents.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    layout: StateLayout,
}

impl StateFile {
    /// Reads the file; a missing or empty file is an empty state (the first run).
    pub fn load(path: &Path) -> Result<StateFile, Error> {
        let mut layout = match fs::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => StateLayout::default(),
            Ok(bytes) => serde_json::from_slice::<StateLayout>(&bytes).map_err(|e| {
                Error::new(
                    Exit::Data,
                    format!(
                        "state file {} is damaged ({e}); move it away to dump everything again",
                        path.display()
                    ),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => StateLayout::default(),
            Err(e) => {
                return Err(Error::io(
                    format!("reading state file {}", path.display()),
                    e,
                ))
            }
        };
        match layout.version {
            0 | 2 => layout.mailboxes.clear(),
            1 => {}
            other => {
                return Err(Error::new(
                    Exit::Data,
                    format!(
                        "state file {} has version {other}, this imap-dump knows 1 and 2",
                        path.display(),
                    ),
                ))
            }
        }
        layout.version = 2;
        Ok(StateFile {
            path: path.to_path_buf(),
            layout,
        })
    }

    /// The state of `mailbox` of `account` (`user@host`).
    pub fn get(&self, account: &str, mailbox: &str) -> Option<MailboxState> {
        match self.layout.accounts.get(account) {
            Some(mailboxes) => mailboxes.get(mailbox).cloned(),
            None => self.layout.mailboxes.get(mailbox).cloned(),
        }
    }

    /// Appends the keys of messages of `mailbox` just written (and synced)
    /// to the sidecar, synced; the next `save` counts them.
    pub fn add_keys(&mut self, account: &str, mailbox: &str, keys: &[u64]) -> Result<(), Error> {
        if keys.is_empty() {
            return Ok(());
        }
        let path = crate::keys::sidecar(&self.path);
        let tag = crate::keys::mailbox_tag(account, mailbox);
        self.layout.keys = crate::keys::append(&path, self.layout.keys, tag, keys)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok(())
    }

    /// The keys recorded for `mailbox` of `account`, each with its count.
    pub fn keys(&self, account: &str, mailbox: &str) -> Result<HashMap<u64, u32>, Error> {
        let path = crate::keys::sidecar(&self.path);
        let tag = crate::keys::mailbox_tag(account, mailbox);
        crate::keys::read(&path, self.layout.keys, tag)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))
    }

    /// Records `state` for `mailbox` of `account` and replaces the file. Call
    /// it only after the output holding those messages was flushed (and
    /// synced, if a file).
    pub fn save(&mut self, account: &str, mailbox: &str, state: MailboxState) -> Result<(), Error> {
        if !self.layout.accounts.contains_key(account) {
            let adopted = std::mem::take(&mut self.layout.mailboxes);
            self.layout.accounts.insert(account.to_string(), adopted);
        }
        self.layout
            .accounts
            .entry(account.to_string())
            .or_default()
            .insert(mailbox.to_string(), state);
        let mut text = serde_json::to_vec_pretty(&self.layout)
            .map_err(|e| Error::new(Exit::Software, format!("encoding state: {e}")))?;
        text.push(b'\n');
        mailpipe::durable::replace_file(&self.path, &text)
            .map_err(|e| Error::io(format!("writing state file {}", self.path.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "alice@example.org@imap.example.org";

    #[test]
    fn missing_file_is_empty_and_saves_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("inbox.state");
        let mut state = StateFile::load(&path).expect("missing is empty");
        assert_eq!(state.get(ALICE, "INBOX"), None);
        let s = MailboxState {
            uid_validity: 7,
            last_uid: 42,
            skipped: vec![40],
            keyed_from: Some(0),
        };
        state.save(ALICE, "INBOX", s.clone()).expect("save");
        state
            .save(
                ALICE,
                "已发送",
                MailboxState {
                    uid_validity: 8,
                    last_uid: 1,
                    skipped: Vec::new(),
                    keyed_from: None,
                },
            )
            .expect("save");
        let again = StateFile::load(&path).expect("load");
        assert_eq!(again.get(ALICE, "INBOX"), Some(s));
        assert_eq!(again.get(ALICE, "已发送").map(|s| s.last_uid), Some(1));
        assert_eq!(again.get("bob@imap.example.org", "INBOX"), None);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn empty_file_is_an_empty_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("empty.state");
        fs::write(&path, "").expect("write");
        assert_eq!(
            StateFile::load(&path).expect("empty").get(ALICE, "INBOX"),
            None
        );
    }

    #[test]
    fn version_1_is_adopted_by_the_first_account_that_saves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.state");
        fs::write(
            &path,
            r#"{"version":1,"mailboxes":{"INBOX":{"uid_validity":5,"last_uid":9}}}"#,
        )
        .expect("write");
        let mut state = StateFile::load(&path).expect("v1");
        assert_eq!(state.get(ALICE, "INBOX").map(|s| s.last_uid), Some(9));
        let s = MailboxState {
            uid_validity: 5,
            last_uid: 10,
            skipped: Vec::new(),
            keyed_from: None,
        };
        state.save(ALICE, "INBOX", s.clone()).expect("save");
        let again = StateFile::load(&path).expect("v2");
        assert_eq!(again.get(ALICE, "INBOX"), Some(s));
        assert_eq!(again.get("bob@imap.example.org", "INBOX"), None);
        assert!(fs::read_to_string(&path)
            .expect("read")
            .contains("\"version\": 2"));
    }

    #[test]
    fn damaged_file_is_a_data_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.state");
        fs::write(&path, "{not json").expect("write");
        let e = StateFile::load(&path).expect_err("damaged");
        assert_eq!(e.exit(), Exit::Data);
        assert!(e.message().contains("bad.state"), "{}", e.message());
    }

    /// Keys go to the sidecar and count only once the state says so: an old
    /// reader ignores both fields, and a state without them has no keys.
    #[test]
    fn keys_are_counted_by_the_state_saved_after_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.state");
        let mut state = StateFile::load(&path).expect("empty");
        state.add_keys(ALICE, "INBOX", &[7, 8, 8]).expect("keys");
        let s = MailboxState {
            uid_validity: 1,
            last_uid: 3,
            skipped: Vec::new(),
            keyed_from: Some(0),
        };
        state.save(ALICE, "INBOX", s.clone()).expect("save");
        state
            .add_keys(ALICE, "INBOX", &[9])
            .expect("keys, never saved");
        let again = StateFile::load(&path).expect("load");
        assert_eq!(again.get(ALICE, "INBOX"), Some(s));
        assert_eq!(
            again.keys(ALICE, "INBOX").expect("keys"),
            HashMap::from([(7, 1), (8, 2)])
        );
        assert!(again.keys(ALICE, "Sent").expect("keys").is_empty());
        let text = fs::read_to_string(&path).expect("read");
        assert!(text.contains("\"keys\": 48"), "{text}");
        fs::write(
            &path,
            r#"{"version":2,"accounts":{"a@h":{"INBOX":{"uid_validity":5,"last_uid":9}}}}"#,
        )
        .expect("write");
        let old = StateFile::load(&path).expect("an old state loads");
        assert_eq!(old.get("a@h", "INBOX").and_then(|s| s.keyed_from), None);
        assert!(old.keys("a@h", "INBOX").expect("keys").is_empty());
    }
}
