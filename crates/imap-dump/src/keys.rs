//! What the state keeps of each message dumped, so that a mailbox the server
//! renumbered (a new UIDVALIDITY: a ProtonMail Bridge upgrade, an Exchange
//! migration) is matched against what was written instead of dumped again:
//! per message, 8 bytes of SHA-256 over its Message-ID, RFC822.SIZE and
//! INTERNALDATE, which survive a renumbering while UIDs do not.
//!
//! They live in a sidecar next to the state file (`STATE.keys`), not in its
//! JSON: the state is replaced after every batch, and 100,000 keys in it
//! would rewrite megabytes each time. The sidecar is only appended to, 16
//! bytes a message (8 naming account and mailbox, 8 the message), synced
//! before the state that counts its valid bytes is replaced; bytes beyond
//! that count (a run killed in between) are ignored and written over.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Bytes per message in the sidecar.
const RECORD: u64 = 16;

/// The sidecar of the state file at `state`.
pub fn sidecar(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".keys");
    PathBuf::from(name)
}

fn digest(parts: &[&[u8]]) -> u64 {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    let d = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_le_bytes(first)
}

/// Names `mailbox` of `account` in the sidecar.
pub fn mailbox_tag(account: &str, mailbox: &str) -> u64 {
    digest(&[account.as_bytes(), mailbox.as_bytes()])
}

/// A message's key: its Message-ID (as `message_id` reads it), RFC822.SIZE
/// and INTERNALDATE (seconds since the epoch; 0 if the server gave none).
pub fn message_key(message_id: &[u8], size: u32, internal_date: i64) -> u64 {
    digest(&[
        message_id,
        &size.to_le_bytes(),
        &internal_date.to_le_bytes(),
    ])
}

/// The Message-ID field's value in a header block (or a whole message, or
/// `BODY[HEADER.FIELDS (MESSAGE-ID)]`), folding and white space removed;
/// empty when there is none.
pub fn message_id(message: &[u8]) -> Vec<u8> {
    let mut value = Vec::new();
    let mut in_field = false;
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let continued = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if in_field && continued {
            value.extend_from_slice(line);
            continue;
        }
        if in_field {
            break;
        }
        if line.len() >= 11 && line[..11].eq_ignore_ascii_case(b"message-id:") {
            in_field = true;
            value.extend_from_slice(&line[11..]);
        }
    }
    value.retain(|b| !b.is_ascii_whitespace());
    value
}

/// Appends `keys` of the mailbox `tag` at byte `at` of the sidecar (what
/// lies beyond `at` was never counted by a state), synced; returns the
/// sidecar's new valid length.
pub fn append(path: &Path, at: u64, tag: u64, keys: &[u64]) -> io::Result<u64> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    file.set_len(at)?;
    file.seek(SeekFrom::Start(at))?;
    let mut bytes = Vec::with_capacity(keys.len() * RECORD as usize);
    for key in keys {
        bytes.extend_from_slice(&tag.to_le_bytes());
        bytes.extend_from_slice(&key.to_le_bytes());
    }
    file.write_all(&bytes)?;
    file.sync_data()?;
    Ok(at + bytes.len() as u64)
}

/// The keys of the mailbox `tag` among the first `len` bytes of the
/// sidecar, each with how many messages had it. A missing sidecar has none.
pub fn read(path: &Path, len: u64, tag: u64) -> io::Result<HashMap<u64, u32>> {
    let mut found = HashMap::new();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(len).read_to_end(&mut bytes)?;
    for record in bytes.chunks_exact(RECORD as usize) {
        let (t, k) = record.split_at(8);
        let as_u64 = |b: &[u8]| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        };
        if as_u64(t) == tag {
            *found.entry(as_u64(k)).or_insert(0) += 1;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_read_from_headers_folded_or_not() {
        let m = b"Subject: x\r\nMessage-Id:\r\n <a.b@c>\r\nTo: y\r\n\r\nMessage-ID: <body>\r\n";
        assert_eq!(message_id(m), b"<a.b@c>");
        assert_eq!(message_id(b"MESSAGE-ID: <x@y> \r\n\r\n"), b"<x@y>");
        assert_eq!(message_id(b"Subject: none\n\nMessage-ID: <body>\n"), b"");
    }

    #[test]
    fn keys_differ_by_each_part() {
        let k = message_key(b"<a@b>", 100, 1_700_000_000);
        assert_ne!(k, message_key(b"<a@c>", 100, 1_700_000_000));
        assert_ne!(k, message_key(b"<a@b>", 101, 1_700_000_000));
        assert_ne!(k, message_key(b"<a@b>", 100, 1_700_000_001));
        assert_eq!(k, message_key(b"<a@b>", 100, 1_700_000_000));
    }

    /// Appended keys are read back per mailbox, counted; bytes beyond the
    /// valid length (a run killed before its state was saved) are not, and
    /// the next append writes over them.
    #[test]
    fn appends_are_read_back_up_to_the_valid_length() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = sidecar(&dir.path().join("s.state"));
        assert_eq!(
            path.file_name().and_then(|n| n.to_str()),
            Some("s.state.keys")
        );
        let (inbox, sent) = (mailbox_tag("a@h", "INBOX"), mailbox_tag("a@h", "Sent"));
        let len = append(&path, 0, inbox, &[1, 2, 2]).expect("append");
        let len = append(&path, len, sent, &[3]).expect("append");
        assert_eq!(len, 64);
        let stale = append(&path, len, inbox, &[9]).expect("append");
        assert_eq!(stale, 80);
        let got = read(&path, len, inbox).expect("read");
        assert_eq!(
            got,
            HashMap::from([(1, 1), (2, 2)]),
            "9 is beyond the length"
        );
        let len = append(&path, len, inbox, &[4]).expect("append");
        assert_eq!(std::fs::metadata(&path).map(|m| m.len()).ok(), Some(len));
        assert_eq!(read(&path, len, inbox).expect("read").get(&4), Some(&1));
        assert_eq!(read(&path, len, sent).expect("read").len(), 1);
        let missing = dir.path().join("none.keys");
        assert!(read(&missing, 100, inbox).expect("missing").is_empty());
    }
}
