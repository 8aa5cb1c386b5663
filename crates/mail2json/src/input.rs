//! Inputs to messages: each argument (or stdin) is detected as an mbox (it
//! starts with `From `), a maildir (a directory with cur/ and new/) or a
//! single message, unless `--input` says which. Messages are handed out one
//! at a time, so memory holds one message per input, never a whole mbox (a
//! regular-file mbox is read in blocks of a few MiB instead: chunked.rs).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use mailpipe::mbox::MboxReader;
use mailpipe::Error;

use crate::chunked::{self, Bytes};
use crate::schema::Source;

/// What an input holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputKind {
    Mbox,
    Maildir,
    Message,
}

/// One message read from an input, or an input that could not be read.
pub enum Item {
    Message {
        source: Source,
        data: Bytes,
        /// A defect of the container (an mbox's live framing), for the record.
        defect: Option<&'static str>,
    },
    Failed(Error),
}

/// Whether any input is a stream (a pipe, a fifo, a terminal, a socket)
/// rather than a regular file or a maildir: then each record is written and
/// flushed as soon as its message is read (`imap-dump --follow | mail2json`).
pub fn is_live(inputs: &[PathBuf]) -> bool {
    use std::os::fd::AsFd;
    let stream =
        |meta: std::io::Result<std::fs::Metadata>| meta.is_ok_and(|m| !m.is_file() && !m.is_dir());
    let stdin = || {
        io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map(File::from)
            .and_then(|f| f.metadata())
    };
    if inputs.is_empty() {
        return stream(stdin());
    }
    inputs.iter().any(|p| {
        if p.as_os_str() == "-" {
            stream(stdin())
        } else {
            stream(std::fs::metadata(p))
        }
    })
}

/// Bytes read ahead to detect the kind; large so that the mbox reader works
/// on big blocks.
const READ_BUFFER: usize = 1 << 20;

/// Reads every input in order and hands each message to `sink`; stops early
/// when `sink` returns false (the consumer went away).
pub fn read_all(inputs: &[PathBuf], forced: Option<InputKind>, sink: &mut dyn FnMut(Item) -> bool) {
    if inputs.is_empty() {
        let stdin = io::stdin();
        read_stream("-", Box::new(stdin.lock()), forced, sink);
        return;
    }
    for path in inputs {
        let keep_going = if path.as_os_str() == "-" {
            let stdin = io::stdin();
            read_stream("-", Box::new(stdin.lock()), forced, sink)
        } else {
            read_path(path, forced, sink)
        };
        if !keep_going {
            return;
        }
    }
}

fn read_path(path: &Path, forced: Option<InputKind>, sink: &mut dyn FnMut(Item) -> bool) -> bool {
    let name = path.display().to_string();
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return sink(Item::Failed(no_input(&name, e))),
    };
    let is_maildir = metadata.is_dir() && path.join("cur").is_dir() && path.join("new").is_dir();
    if metadata.is_dir() || forced == Some(InputKind::Maildir) {
        if !is_maildir {
            return sink(Item::Failed(Error::no_input(format!(
                "{name}: not a maildir (a maildir is a directory with cur/ and new/)"
            ))));
        }
        return read_maildir(path, sink);
    }
    match File::open(path) {
        Ok(file) if metadata.is_file() => chunked::read_file(&name, file, forced, sink),
        Ok(file) => read_stream(&name, Box::new(file), forced, sink),
        Err(e) => sink(Item::Failed(no_input(&name, e))),
    }
}

fn no_input(name: &str, e: io::Error) -> Error {
    let mut err = Error::io(name, e);
    if !err.is_broken_pipe() {
        err = Error::no_input(err.message().to_string());
    }
    err
}

/// Reads up to 5 bytes to tell an mbox from a message, then reads on.
pub(crate) fn read_stream(
    name: &str,
    mut reader: Box<dyn Read + '_>,
    forced: Option<InputKind>,
    sink: &mut dyn FnMut(Item) -> bool,
) -> bool {
    let mut prefix = Vec::with_capacity(5);
    while prefix.len() < 5 {
        let mut byte = [0u8; 5];
        match reader.read(&mut byte[..5 - prefix.len()]) {
            Ok(0) => break,
            Ok(n) => prefix.extend_from_slice(&byte[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return sink(Item::Failed(Error::io(format!("reading {name}"), e))),
        }
    }
    let kind = forced.unwrap_or(if prefix == b"From " {
        InputKind::Mbox
    } else {
        InputKind::Message
    });
    let chained = BufReader::with_capacity(READ_BUFFER, io::Cursor::new(prefix).chain(reader));
    match kind {
        InputKind::Mbox => read_mbox(name, 0, chained, sink),
        _ => read_single(name, chained, sink),
    }
}

/// An mbox; `base` is the offset of its first byte in the input, for `source`.
pub(crate) fn read_mbox(
    name: &str,
    base: u64,
    input: impl BufRead,
    sink: &mut dyn FnMut(Item) -> bool,
) -> bool {
    let mut reader = MboxReader::new(input);
    loop {
        match reader.next_message() {
            Ok(Some(m)) => {
                let source = Source {
                    path: name.to_string(),
                    offset: Some(base + m.offset),
                };
                if !sink(Item::Message {
                    source,
                    data: m.data.into(),
                    defect: m.defect,
                }) {
                    return false;
                }
            }
            Ok(None) => return true,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return sink(Item::Failed(Error::data(format!("{name}: {e}"))));
            }
            Err(e) => return sink(Item::Failed(Error::io(format!("reading {name}"), e))),
        }
    }
}

/// A single message; an empty input is no message at all.
fn read_single(name: &str, mut input: impl BufRead, sink: &mut dyn FnMut(Item) -> bool) -> bool {
    let mut data = Vec::new();
    if let Err(e) = input.read_to_end(&mut data) {
        return sink(Item::Failed(Error::io(format!("reading {name}"), e)));
    }
    if data.is_empty() {
        return true;
    }
    let source = Source {
        path: name.to_string(),
        offset: None,
    };
    sink(Item::Message {
        source,
        data: data.into(),
        defect: None,
    })
}

/// new/ then cur/, each in file-name order (readdir order is arbitrary);
/// dot files are skipped, as maildir readers do.
fn read_maildir(dir: &Path, sink: &mut dyn FnMut(Item) -> bool) -> bool {
    for sub in ["new", "cur"] {
        let folder = dir.join(sub);
        let entries = match std::fs::read_dir(&folder) {
            Ok(e) => e,
            Err(e) => {
                if !sink(Item::Failed(no_input(&folder.display().to_string(), e))) {
                    return false;
                }
                continue;
            }
        };
        let mut found: Vec<(PathBuf, Option<Error>)> =
            entries.filter_map(|e| message_entry(&folder, e)).collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, failed) in found {
            let name = path.display().to_string();
            let item = match failed {
                Some(e) => Item::Failed(e),
                None => match std::fs::read(&path) {
                    Ok(data) if data.is_empty() => continue,
                    Ok(data) => Item::Message {
                        source: Source {
                            path: name,
                            offset: None,
                        },
                        data: data.into(),
                        defect: None,
                    },
                    Err(e) => Item::Failed(no_input(&name, e)),
                },
            };
            if !sink(item) {
                return false;
            }
        }
    }
    true
}

/// Whether a directory entry of cur/ or new/ is a message: a regular file, or
/// a symlink to one (mairix and notmuch search folders are made of links).
/// A link that leads nowhere (dangling, a loop) is input that cannot be read:
/// the path and the error, reported in order. Directories, links to them and
/// other file types are not messages and are skipped; nothing is walked into,
/// so no link can make the reading loop.
fn message_entry(
    folder: &Path,
    entry: io::Result<std::fs::DirEntry>,
) -> Option<(PathBuf, Option<Error>)> {
    let entry = match entry {
        Ok(e) => e,
        Err(e) => {
            let err = no_input(&folder.display().to_string(), e);
            return Some((folder.to_path_buf(), Some(err)));
        }
    };
    if entry.file_name().as_encoded_bytes().starts_with(b".") {
        return None;
    }
    let path = entry.path();
    let name = path.display().to_string();
    match entry.file_type() {
        Ok(t) if t.is_file() => Some((path, None)),
        Ok(t) if t.is_symlink() => match std::fs::metadata(&path) {
            Ok(target) if target.is_file() => Some((path, None)),
            Ok(_) => None,
            Err(e) => {
                let err = no_input(&format!("{name}: symbolic link to nothing readable"), e);
                Some((path, Some(err)))
            }
        },
        Ok(_) => None,
        Err(e) => {
            let err = no_input(&name, e);
            Some((path, Some(err)))
        }
    }
}
