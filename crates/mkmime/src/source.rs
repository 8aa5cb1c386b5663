//! The bytes of an attached file, read a chunk at a time and as often as the
//! builder needs (to choose the encoding, to digest it for
//! `SOURCE_DATE_EPOCH`, to write it), so that a file of any size is never
//! held in memory. A pipe cannot be read twice: what it holds is kept in
//! memory if it ends within [`PIPE_LIMIT`], and refused otherwise.
//! A regular file must keep its size from the first pass to the last: one
//! that grows or shrinks meanwhile is an error, not a silently wrong part.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use mailpipe::exit::Exit;
use mailpipe::Error;

/// The most a pipe (`-a <(cmd)`) may hold: it is read into memory once.
pub const PIPE_LIMIT: u64 = 16 << 20;

/// Bytes read per chunk.
const CHUNK: usize = 1 << 16;

#[derive(Debug)]
enum Bytes {
    /// A regular file and its size when opened.
    File { file: File, size: u64 },
    /// Everything a pipe (or other non-seekable file) held.
    Memory(Vec<u8>),
}

/// A file's bytes, to be read in passes.
#[derive(Debug)]
pub struct Source {
    path: PathBuf,
    bytes: Bytes,
}

/// The error text of `e` without its "(os error N)" tail.
fn describe(e: &io::Error) -> String {
    let text = e.to_string();
    text.split(" (os error").next().unwrap_or(&text).to_string()
}

impl Source {
    /// Opens `path`; any failure to open or (for a pipe) read it is 66
    /// (EX_NOINPUT) naming the file.
    pub fn open(path: &Path) -> Result<Source, Error> {
        let no_input =
            |e: &io::Error| Error::no_input(format!("{}: {}", path.display(), describe(e)));
        let file = File::open(path).map_err(|e| no_input(&e))?;
        let bytes = match mailpipe::progress::regular_file_size(&file) {
            Some(size) => Bytes::File { file, size },
            None => {
                let mut held = Vec::new();
                file.take(PIPE_LIMIT + 1)
                    .read_to_end(&mut held)
                    .map_err(|e| no_input(&e))?;
                if held.len() as u64 > PIPE_LIMIT {
                    return Err(Error::no_input(format!(
                        "{}: not a regular file and over {} MiB; mkmime reads a file once to \
                         choose its encoding and again to encode it: save it to a file first",
                        path.display(),
                        PIPE_LIMIT >> 20
                    )));
                }
                Bytes::Memory(held)
            }
        };
        Ok(Source {
            path: path.to_path_buf(),
            bytes,
        })
    }

    /// A regular file already open, named `name` in errors (stdin spooled
    /// to a temporary file).
    pub fn from_file(name: &str, file: File) -> Result<Source, Error> {
        let size = file
            .metadata()
            .map_err(|e| Error::io(format!("reading {name}"), e))?
            .len();
        Ok(Source {
            path: PathBuf::from(name),
            bytes: Bytes::File { file, size },
        })
    }

    /// Bytes given directly (tests, fuzzing).
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Source {
        Source {
            path: PathBuf::from(name),
            bytes: Bytes::Memory(bytes),
        }
    }

    /// The size in bytes (of a regular file: when it was opened).
    pub fn len(&self) -> u64 {
        match &self.bytes {
            Bytes::File { size, .. } => *size,
            Bytes::Memory(held) => held.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `n` bytes from the start, for sniffing the file's type.
    pub fn prefix(&self, n: usize) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(n);
        self.pass(|chunk| {
            let take = chunk.len().min(n - out.len());
            out.extend_from_slice(&chunk[..take]);
            Ok(out.len() < n)
        })?;
        Ok(out)
    }

    /// Calls `each` with the file's bytes from the start, chunk after chunk,
    /// until the end or until `each` returns `Ok(false)`. A file that turns
    /// out longer or shorter than it was when opened is an I/O error (74).
    pub fn pass(&self, mut each: impl FnMut(&[u8]) -> Result<bool, Error>) -> Result<(), Error> {
        let (mut file, size) = match &self.bytes {
            Bytes::Memory(held) => {
                for chunk in held.chunks(CHUNK) {
                    if !each(chunk)? {
                        break;
                    }
                }
                return Ok(());
            }
            Bytes::File { file, size } => (file, *size),
        };
        let failed = |e: io::Error| Error::io(format!("reading {}", self.path.display()), e);
        file.seek(SeekFrom::Start(0)).map_err(failed)?;
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = match file.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(failed(e)),
            };
            total += n as u64;
            if total > size || (n == 0 && total < size) {
                return Err(self.changed(size, total, n == 0));
            }
            if n == 0 || !each(&buf[..n])? {
                return Ok(());
            }
        }
    }

    fn changed(&self, size: u64, total: u64, ended: bool) -> Error {
        let now = if ended {
            format!("ended after {total} bytes")
        } else {
            format!("grew past {size} bytes")
        };
        Error::new(
            Exit::Io,
            format!(
                "{}: changed while mkmime read it (it had {size} bytes, it {now}); \
                 the message is incomplete",
                self.path.display()
            ),
        )
    }

    /// The same error for a change found some other way (the content of a
    /// 7bit file that no longer is 7bit).
    pub fn changed_content(&self) -> Error {
        Error::new(
            Exit::Io,
            format!(
                "{}: changed while mkmime read it (its content is no longer 7bit text); \
                 the message is incomplete",
                self.path.display()
            ),
        )
    }

    /// True if `needle` occurs anywhere in the bytes.
    pub fn contains(&self, needle: &[u8]) -> Result<bool, Error> {
        let mut found = false;
        let mut tail: Vec<u8> = Vec::new();
        self.pass(|chunk| {
            let mut window = std::mem::take(&mut tail);
            window.extend_from_slice(chunk);
            found = window.windows(needle.len()).any(|w| w == needle);
            let keep = needle.len().saturating_sub(1).min(window.len());
            tail = window.split_off(window.len() - keep);
            Ok(!found)
        })?;
        Ok(found)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn contains_across_chunks() {
        let mut bytes = vec![b'x'; CHUNK - 3];
        bytes.extend_from_slice(b"=_needle");
        bytes.extend(vec![b'y'; 100]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, &bytes).unwrap();
        let s = Source::open(&path).unwrap();
        assert!(s.contains(b"=_needle").unwrap());
        assert!(!s.contains(b"=_needles").unwrap());
        assert!(Source::from_bytes("m", bytes)
            .contains(b"=_needle")
            .unwrap());
    }

    #[test]
    fn a_file_that_changes_size_is_74() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![1u8; 1000]).unwrap();
        let s = Source::open(&path).unwrap();
        assert_eq!(s.prefix(4).unwrap(), vec![1, 1, 1, 1]);
        std::fs::write(&path, vec![1u8; 1001]).unwrap();
        let e = s.pass(|_| Ok(true)).unwrap_err();
        assert_eq!(e.exit().code(), 74);
        assert!(
            e.message().contains("grew past 1000 bytes"),
            "{}",
            e.message()
        );
        std::fs::write(&path, vec![1u8; 10]).unwrap();
        let e = s.pass(|_| Ok(true)).unwrap_err();
        assert!(
            e.message().contains("ended after 10 bytes"),
            "{}",
            e.message()
        );
    }
}
