//! Where the mbox goes: stdout, or with `--output-dir` one `<mailbox>.mbox`
//! per mailbox (nested names as folders, unsafe characters %-escaped).
//! Messages go through mailpipe's `MboxWriter`; `commit` flushes and, for
//! regular files, syncs, and only then may the state file advance.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use mailpipe::mbox::MboxWriter;
use mailpipe::Error;

const BUFFER: usize = 256 * 1024;

/// An open mbox being appended to.
pub struct MboxOutput {
    writer: MboxWriter<BufWriter<File>>,
    /// What errors name: "stdout" or the file's path.
    name: String,
    /// How `commit` makes the output durable.
    durability: Durability,
}

enum Durability {
    /// stdout: `mailpipe::durable::sync_stdout` (only a regular file is synced).
    Stdout,
    /// An `--output-dir` file, synced if it is a regular file.
    File { regular: bool },
}

impl MboxOutput {
    /// stdout, as a `File` on a duplicate descriptor so it can be synced.
    pub fn stdout() -> Result<MboxOutput, Error> {
        let fd = io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io("stdout", e))?;
        let mut file = File::from(fd);
        // A file we append to may end in a message a killed run left half
        // written; its reader must still see our first From_ line.
        if let Ok(mut readable) = File::open("/proc/self/fd/1") {
            separate_from_tail(&mut file, &mut readable)
                .map_err(|e| Error::io("writing stdout", e))?;
        }
        Ok(MboxOutput::new(
            file,
            "stdout".to_string(),
            Durability::Stdout,
        ))
    }

    /// `path`, created with its folders; appended to if `append`, else replaced.
    pub fn file(path: &Path, append: bool) -> Result<MboxOutput, Error> {
        let name = path.display().to_string();
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        let mut options = OpenOptions::new();
        options.create(true);
        if append {
            options.append(true).read(true);
        } else {
            options.write(true).truncate(true);
        }
        let mut file = options
            .open(path)
            .map_err(|e| Error::io(format!("opening {name}"), e))?;
        if append {
            let mut readable = file
                .try_clone()
                .map_err(|e| Error::io(format!("opening {name}"), e))?;
            separate_from_tail(&mut file, &mut readable)
                .map_err(|e| Error::io(format!("writing {name}"), e))?;
        }
        let regular = file
            .metadata()
            .map(|m| m.file_type().is_file())
            .unwrap_or(false);
        Ok(MboxOutput::new(file, name, Durability::File { regular }))
    }

    fn new(file: File, name: String, durability: Durability) -> MboxOutput {
        MboxOutput {
            writer: MboxWriter::new(BufWriter::with_capacity(BUFFER, file)),
            name,
            durability,
        }
    }

    /// From now on each From_ line carries the entry's length (the live
    /// framing of `mailpipe::mbox`), for `--follow`.
    pub fn set_framed(&mut self, framed: bool) {
        self.writer.set_framed(framed);
    }

    pub fn write_message(
        &mut self,
        sender: &str,
        time: DateTime<Utc>,
        message: &[u8],
    ) -> Result<(), Error> {
        self.writer
            .write_message(sender, time, message)
            .map_err(|e| Error::io(format!("writing {}", self.name), e))
    }

    /// Flushes what was written and, with `sync`, syncs a regular file to
    /// disk or waits until a pipe's reader took it all: after this the state
    /// file may say these messages are saved.
    pub fn commit(&mut self, sync: bool) -> Result<(), Error> {
        self.writer
            .flush()
            .map_err(|e| Error::io(format!("writing {}", self.name), e))?;
        if !sync {
            return Ok(());
        }
        let synced = match self.durability {
            Durability::Stdout => {
                mailpipe::durable::sync_stdout()
                    .map_err(|e| Error::io(format!("syncing {}", self.name), e))?;
                // A pipe: the state may advance only past what was read.
                return mailpipe::durable::wait_stdout_read("the state file was not advanced");
            }
            Durability::File { regular: true } => self.writer.get_ref().get_ref().sync_data(),
            Durability::File { regular: false } => Ok(()),
        };
        synced.map_err(|e| Error::io(format!("syncing {}", self.name), e))
    }
}

/// If the regular file we write at the end of does not end in a blank line
/// (a killed run left a message half written), writes line ends so that our
/// first From_ line starts a message of its own. Nothing is ever cut off.
fn separate_from_tail(file: &mut File, readable: &mut File) -> io::Result<()> {
    let meta = file.metadata()?;
    let len = meta.len();
    if !meta.file_type().is_file() || len == 0 {
        return Ok(());
    }
    if (&*file).stream_position()? < len && !appends(file) {
        return Ok(());
    }
    let start = len.saturating_sub(3);
    let mut tail = vec![0u8; (len - start) as usize];
    readable.seek(SeekFrom::Start(start))?;
    readable.read_exact(&mut tail)?;
    if tail.ends_with(b"\n\n") || tail.ends_with(b"\n\r\n") {
        return Ok(());
    }
    let separator: &[u8] = if tail.ends_with(b"\n") {
        b"\n"
    } else {
        b"\n\n"
    };
    file.write_all(separator)
}

/// Whether the descriptor was opened with O_APPEND (`>>`), read from
/// /proc/self/fdinfo: such a descriptor's offset says nothing before the first write.
fn appends(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    const O_APPEND: u32 = 0o2000;
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", file.as_raw_fd()));
    info.ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
        })
        .is_some_and(|flags| flags & O_APPEND != 0)
}

/// The file `--output-dir` uses for a mailbox: its name split at the
/// hierarchy delimiter into folders, each part escaped, `.mbox` appended.
pub fn mailbox_path(root: &Path, mailbox: &str, delimiter: Option<&str>) -> PathBuf {
    let parts: Vec<&str> = match delimiter {
        Some(d) if !d.is_empty() => mailbox.split(d).collect(),
        _ => vec![mailbox],
    };
    let mut path = root.to_path_buf();
    let last = parts.len() - 1;
    for (i, part) in parts.iter().enumerate() {
        let safe = safe_file_name(part);
        if i == last {
            path.push(format!("{safe}.mbox"));
        } else {
            path.push(safe);
        }
    }
    path
}

/// A path component that is never empty, `.`, `..`, hidden, or holding `/`,
/// NUL, control characters or `%`: those are written `%XX`.
fn safe_file_name(part: &str) -> String {
    if part.is_empty() {
        return "%".to_string();
    }
    let mut out = String::with_capacity(part.len());
    for (i, c) in part.chars().enumerate() {
        let unsafe_char =
            c == '/' || c == '\\' || c == '%' || c.is_control() || (i == 0 && c == '.');
        if unsafe_char {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_paths_are_nested_and_safe() {
        let root = Path::new("/out");
        assert_eq!(
            mailbox_path(root, "INBOX", Some("/")),
            Path::new("/out/INBOX.mbox")
        );
        assert_eq!(
            mailbox_path(root, "Archive/2024/已发送", Some("/")),
            Path::new("/out/Archive/2024/已发送.mbox")
        );
        assert_eq!(
            mailbox_path(root, "INBOX.Sent", Some(".")),
            Path::new("/out/INBOX/Sent.mbox")
        );
        assert_eq!(
            mailbox_path(root, "../../etc/passwd", Some("/")),
            Path::new("/out/%2E./%2E./etc/passwd.mbox")
        );
        assert_eq!(
            mailbox_path(root, "a/b", None),
            Path::new("/out/a%2Fb.mbox")
        );
        assert_eq!(
            mailbox_path(root, ".hidden\u{1}%", Some("/")),
            Path::new("/out/%2Ehidden%01%25.mbox")
        );
        assert_eq!(
            mailbox_path(root, "a//b", Some("/")),
            Path::new("/out/a/%/b.mbox")
        );
    }

    #[test]
    fn appending_after_a_cut_message_separates_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.mbox");
        for (before, expected) in [
            (
                &b"From a Mon Jan  1 00:00:00 2024\nSubject: cut\n\nhalf a li"[..],
                &b"\n\n"[..],
            ),
            (b"From a Mon Jan  1 00:00:00 2024\nSubject: cut\n", b"\n"),
            (
                b"From a Mon Jan  1 00:00:00 2024\nSubject: whole\n\nbody\n\n",
                b"",
            ),
            (
                b"From a Mon Jan  1 00:00:00 2024\r\nSubject: whole\r\n\r\nbody\r\n\r\n",
                b"",
            ),
        ] {
            fs::write(&path, before).expect("write");
            let mut out = MboxOutput::file(&path, true).expect("open");
            out.commit(true).expect("commit");
            let after = fs::read(&path).expect("read");
            assert_eq!(&after[before.len()..], expected);
        }
        let mut out = MboxOutput::file(&path, false).expect("replace");
        out.commit(false).expect("commit");
        assert_eq!(fs::read(&path).expect("read"), b"");
    }
}
