//! `--state FILE`: the UIDLs already exported, per maildrop (`user@host`), so
//! that the next run fetches only new messages. One file may hold several
//! maildrops; a run rewrites only its own section.
//!
//! Format, plain text so that it can be read and edited by hand:
//!
//! ```text
//! # pop3-dump state: UIDLs already exported, per user@host
//! [alice@example.org@pop.example.org]
//! 000000014f1b3c5e
//! 000000024f1b3c5e
//! ```
//!
//! UIDLs are 1 to 70 printable ASCII characters (RFC 1939), so one per line
//! is unambiguous. The file is replaced atomically (write a temporary file
//! beside it, fsync, rename, fsync the folder) and only after the mbox output
//! it describes was flushed: a run killed at any moment leaves the old state,
//! and the next run exports again what may not have reached the output. A
//! duplicate is possible; a loss is not.
//!
//! A run whose output failed (connection cut, timeout, write error) leaves
//! the state as it was. A run that completed but had single messages refused
//! by the server records the ones it wrote, not the refused ones. Messages
//! exported with `--headers-only` count as exported.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use mailpipe::Error;

const HEADER: &str = "# pop3-dump state: UIDLs already exported, per user@host\n";

/// The parsed state file.
#[derive(Debug, Default)]
pub struct StateFile {
    path: PathBuf,
    /// Exported UIDLs per `user@host` key.
    maildrops: BTreeMap<String, BTreeSet<String>>,
}

/// The key of a maildrop: the login and the host (not the port: pop3:// and
/// pop3s:// reach the same maildrop).
pub fn maildrop_key(user: &str, host: &str) -> String {
    mailpipe::account::state_key(user, host)
}

impl StateFile {
    /// Reads `path`; a file that does not exist yet is an empty state.
    pub fn load(path: &Path) -> Result<StateFile, Error> {
        let text = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(format!("state file {}", path.display()), e)),
        };
        let text = String::from_utf8(text)
            .map_err(|_| Error::data(format!("state file {} is not UTF-8 text", path.display())))?;
        let mut maildrops: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut current: Option<String> = None;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(key) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                maildrops.entry(key.to_string()).or_default();
                current = Some(key.to_string());
                continue;
            }
            let Some(key) = &current else {
                return Err(Error::data(format!(
                    "state file {} line {}: a UIDL before any [user@host] line; is this \
                     a pop3-dump state file?",
                    path.display(),
                    i + 1
                )));
            };
            maildrops
                .entry(key.clone())
                .or_default()
                .insert(line.to_string());
        }
        Ok(StateFile {
            path: path.to_path_buf(),
            maildrops,
        })
    }

    /// Whether `uidl` was exported from maildrop `key`.
    pub fn contains(&self, key: &str, uidl: &str) -> bool {
        self.maildrops.get(key).is_some_and(|s| s.contains(uidl))
    }

    /// Sets the maildrop's exported UIDLs: those still on the server that were
    /// exported before, plus the ones exported now. UIDLs of messages gone
    /// from the server are dropped, so the file does not grow forever.
    pub fn update(&mut self, key: &str, on_server: &[&str], exported_now: &[&str]) {
        let old = self.maildrops.remove(key).unwrap_or_default();
        let mut kept: BTreeSet<String> = on_server
            .iter()
            .filter(|u| old.contains(**u))
            .map(|u| u.to_string())
            .collect();
        kept.extend(exported_now.iter().map(|u| u.to_string()));
        self.maildrops.insert(key.to_string(), kept);
    }

    /// Replaces the file atomically: temporary file, fsync, rename, fsync dir.
    pub fn save(&self) -> Result<(), Error> {
        let mut text = String::from(HEADER);
        for (key, uidls) in &self.maildrops {
            text.push_str(&format!("[{key}]\n"));
            for uidl in uidls {
                text.push_str(uidl);
                text.push('\n');
            }
        }
        mailpipe::durable::replace_file(&self.path, text.as_bytes())
            .map_err(|e| Error::io(format!("writing state file {}", self.path.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_update_and_other_maildrops_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pop.state");
        let mut state = StateFile::load(&path).expect("missing is empty");
        let key = maildrop_key("alice@example.org", "POP.example.org");
        assert_eq!(key, "alice@example.org@pop.example.org");
        state.update(&key, &["a", "b"], &["a", "b"]);
        state.update("bob@h", &["z"], &["z"]);
        state.save().expect("save");
        let mut state = StateFile::load(&path).expect("load");
        assert!(state.contains(&key, "a") && state.contains(&key, "b"));
        assert!(!state.contains(&key, "z"));
        // "a" left the server, "c" is new: a is forgotten, bob is untouched.
        state.update(&key, &["b", "c"], &["c"]);
        state.save().expect("save");
        let text = fs::read_to_string(&path).expect("read");
        assert_eq!(
            text,
            format!("{HEADER}[alice@example.org@pop.example.org]\nb\nc\n[bob@h]\nz\n")
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn foreign_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x");
        fs::write(&path, "uidl-without-section\n").expect("write");
        let e = StateFile::load(&path).expect_err("not a state file");
        assert_eq!(e.exit(), mailpipe::Exit::Data);
        assert!(e.message().contains("line 1"), "{e}");
        fs::write(&path, b"\xff\xfe").expect("write");
        assert!(StateFile::load(&path).is_err());
    }
}
