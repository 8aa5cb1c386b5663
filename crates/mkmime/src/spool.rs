//! Stdin as mkmime reads it: held in memory up to [`threshold`] bytes (all
//! of it, the usual case, and JSON always: it is parsed whole), and beyond
//! that copied to an unnamed temporary file in `$TMPDIR` (gone when mkmime
//! exits) and read from there in passes like an attached file, so that a
//! body of any size costs disk, not memory. A draft's header block stays in
//! memory; only its body is spooled.

use std::fs::File;
use std::io::{self, Read, Write};

use mailpipe::Error;

use crate::source::Source;
use crate::text::{not_utf8, TextSource};

/// Stdin above this many bytes is spooled to a temporary file. Low, because
/// the held path goes through lettre, which turns LF into CRLF one insertion
/// at a time (8 MB of short lines took 5.3 s); the streamed path is linear.
pub const THRESHOLD: u64 = 1 << 20;

/// The environment variable that overrides [`THRESHOLD`] (bytes): a test
/// knob, so that small inputs take the spooled path.
pub const THRESHOLD_VAR: &str = "MKMIME_SPOOL_THRESHOLD";

/// Text above this many bytes (stdin, an `--html` file) is read in passes.
pub fn threshold() -> Result<u64, Error> {
    match std::env::var(THRESHOLD_VAR) {
        Err(_) => Ok(THRESHOLD),
        Ok(value) => value.trim().parse().map_err(|_| {
            Error::usage(format!(
                "{THRESHOLD_VAR}={value:?}: expected a number of bytes"
            ))
        }),
    }
}

/// What stdin held.
pub enum Stdin {
    /// All of it, in memory.
    Held(Vec<u8>),
    /// A draft's header block (with the blank line that ends it; empty for
    /// plain text) and the text after it, checked UTF-8.
    Spooled { head: String, body: TextSource },
}

/// The end of the first blank line in `data` from `from` on: where a
/// draft's header block ends.
fn blank_line_end(data: &[u8], from: usize) -> Option<usize> {
    for start in [b"\n".as_slice(), b"\r\n"] {
        if from == 0 && data.starts_with(start) {
            return Some(start.len());
        }
    }
    let from = from.saturating_sub(2);
    (from..data.len()).find_map(|i| {
        let rest = &data[i..];
        if rest.starts_with(b"\n\n") {
            Some(i + 2)
        } else if rest.starts_with(b"\n\r\n") {
            Some(i + 3)
        } else {
            None
        }
    })
}

/// Reads stdin (a draft's if `draft`).
pub fn read_stdin(draft: bool) -> Result<Stdin, Error> {
    let limit = threshold()?;
    let read_error = |e| Error::io("reading stdin", e);
    let mut stdin = io::stdin().lock();
    // Room for exactly what is held, so that reading it does not double it.
    let mut held = Vec::with_capacity(limit.min(THRESHOLD).saturating_add(1) as usize);
    (&mut stdin)
        .take(limit.saturating_add(1))
        .read_to_end(&mut held)
        .map_err(read_error)?;
    if held.len() as u64 <= limit {
        return Ok(Stdin::Held(held));
    }
    let mut cut = 0;
    if draft {
        // The header block is held whole; a draft without a blank line is
        // all header, held as before.
        let mut searched = 0;
        cut = loop {
            if let Some(end) = blank_line_end(&held, searched) {
                break end;
            }
            searched = held.len();
            let n = (&mut stdin)
                .take(1 << 16)
                .read_to_end(&mut held)
                .map_err(read_error)?;
            if n == 0 {
                return Ok(Stdin::Held(held));
            }
        };
    }
    let dir = std::env::temp_dir();
    let spool_error = |e| {
        Error::io(
            format!("spooling stdin to a temporary file in {}", dir.display()),
            e,
        )
    };
    let mut file: File = tempfile::tempfile().map_err(spool_error)?;
    file.write_all(&held[cut..]).map_err(spool_error)?;
    held.truncate(cut);
    held.shrink_to_fit();
    copy(&mut stdin, &mut file).map_err(|(reading, e)| {
        if reading {
            read_error(e)
        } else {
            spool_error(e)
        }
    })?;
    let head = String::from_utf8(held)
        .map_err(|e| not_utf8("stdin", e.utf8_error().valid_up_to() as u64))?;
    let body = TextSource::scan(
        "stdin",
        head.len() as u64,
        Vec::new(),
        Source::from_file("stdin", file)?,
    )?;
    Ok(Stdin::Spooled { head, body })
}

/// Copies `from` to `to`; the error says which side failed (true: reading).
fn copy(from: &mut impl Read, to: &mut File) -> Result<(), (bool, io::Error)> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err((true, e)),
        };
        to.write_all(&buf[..n]).map_err(|e| (false, e))?;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_first_blank_line_ends_the_header_block() {
        assert_eq!(blank_line_end(b"\nbody", 0), Some(1));
        assert_eq!(blank_line_end(b"\r\nbody", 0), Some(2));
        assert_eq!(blank_line_end(b"A: 1\n\nb", 0), Some(6));
        assert_eq!(blank_line_end(b"A: 1\r\n\r\nb", 0), Some(8));
        assert_eq!(blank_line_end(b"A: 1\r\nB: 2\r\n", 0), None);
        assert_eq!(blank_line_end(b"A: 1\n\n", 5), Some(6));
    }
}
