//! The `--state` file: per mailbox, the UIDVALIDITY and the highest UID whose
//! message is in the output. JSON, replaced atomically (temporary file, fsync,
//! rename, fsync of the folder), and only after the output it describes was
//! flushed, so that a run killed at any moment never skips a message next time.
//!
//! ```json
//! {"version":1,"mailboxes":{"INBOX":{"uid_validity":1700000000,"last_uid":4711}}}
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use mailpipe::{Error, Exit};
use serde::{Deserialize, Serialize};

/// What was written of one mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxState {
    pub uid_validity: u32,
    pub last_uid: u32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateLayout {
    version: u32,
    /// Keyed by the mailbox name as the user reads it (UTF-8).
    mailboxes: BTreeMap<String, MailboxState>,
}

/// The state file and its contents.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    layout: StateLayout,
}

impl StateFile {
    /// Reads the file; a missing file is an empty state (the first run).
    pub fn load(path: &Path) -> Result<StateFile, Error> {
        let layout = match fs::read(path) {
            Ok(bytes) => serde_json::from_slice::<StateLayout>(&bytes).map_err(|e| {
                Error::new(
                    Exit::Data,
                    format!(
                        "state file {} is damaged ({e}); move it away to dump everything again",
                        path.display()
                    ),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => StateLayout {
                version: 1,
                mailboxes: BTreeMap::new(),
            },
            Err(e) => {
                return Err(Error::io(
                    format!("reading state file {}", path.display()),
                    e,
                ))
            }
        };
        if layout.version != 1 {
            return Err(Error::new(
                Exit::Data,
                format!(
                    "state file {} has version {}, this imap-dump knows 1",
                    path.display(),
                    layout.version
                ),
            ));
        }
        Ok(StateFile {
            path: path.to_path_buf(),
            layout,
        })
    }

    pub fn get(&self, mailbox: &str) -> Option<MailboxState> {
        self.layout.mailboxes.get(mailbox).copied()
    }

    /// Records `state` for `mailbox` and replaces the file. Call it only after
    /// the output holding those messages was flushed (and synced, if a file).
    pub fn save(&mut self, mailbox: &str, state: MailboxState) -> Result<(), Error> {
        self.layout.mailboxes.insert(mailbox.to_string(), state);
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

    #[test]
    fn missing_file_is_empty_and_saves_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("inbox.state");
        let mut state = StateFile::load(&path).expect("missing is empty");
        assert_eq!(state.get("INBOX"), None);
        let s = MailboxState {
            uid_validity: 7,
            last_uid: 42,
        };
        state.save("INBOX", s).expect("save");
        state
            .save(
                "已发送",
                MailboxState {
                    uid_validity: 8,
                    last_uid: 1,
                },
            )
            .expect("save");
        let again = StateFile::load(&path).expect("load");
        assert_eq!(again.get("INBOX"), Some(s));
        assert_eq!(again.get("已发送").map(|s| s.last_uid), Some(1));
        let leftovers: Vec<_> = fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
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
}
