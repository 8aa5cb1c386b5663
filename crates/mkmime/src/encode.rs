//! Transfer encoders that take a file a chunk at a time and write as they
//! go, producing exactly what lettre's `Body` makes of the whole file at
//! once: base64 in 76-character lines joined by CRLF (no CRLF after the
//! last), and quoted-printable as the `quoted_printable` crate writes it in
//! text mode. Memory stays a few kilobytes whatever the size of the file.

use std::io::{self, Write};

use base64::Engine as _;

/// Input bytes per base64 line.
const LINE_IN: usize = 57;
/// Characters per base64 line.
const LINE_OUT: usize = 76;
/// Lines encoded per call into the base64 engine.
const BLOCK_LINES: usize = 1024;

/// A transfer encoder fed a chunk at a time.
pub trait Encoder: Default {
    /// Encodes `input`, writing what is final to `sink`.
    fn push(&mut self, input: &[u8], sink: &mut dyn Write) -> io::Result<()>;
    /// Writes the rest.
    fn finish(self, sink: &mut dyn Write) -> io::Result<()>;
}

/// The length of [`Base64Lines`]' output for `n` input bytes.
pub fn base64_len(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    n.div_ceil(3) * 4 + (n.div_ceil(LINE_IN as u64) - 1) * 2
}

/// Base64 in 76-character lines with CRLF between them.
pub struct Base64Lines {
    /// Input not yet a whole line.
    pending: Vec<u8>,
    out: Vec<u8>,
    first: bool,
}

impl Default for Base64Lines {
    fn default() -> Base64Lines {
        Base64Lines {
            pending: Vec::with_capacity(LINE_IN),
            out: vec![0; (LINE_OUT + 2) * BLOCK_LINES],
            first: true,
        }
    }
}

impl Base64Lines {
    /// Encodes whole lines of `input` (up to BLOCK_LINES of them) and writes
    /// them: each line straight into its place in the output block, with as
    /// little per-line work as possible (this loop is the cost of a large
    /// attachment, also in a debug build).
    fn lines(&mut self, input: &[u8], sink: &mut dyn Write) -> io::Result<()> {
        let engine = &base64::engine::general_purpose::STANDARD;
        let out = &mut self.out[..];
        let mut at = 0;
        for line in input.chunks(LINE_IN) {
            if !self.first {
                out[at] = b'\r';
                out[at + 1] = b'\n';
                at += 2;
            }
            self.first = false;
            at += engine
                .encode_slice(line, &mut out[at..at + LINE_OUT])
                .map_err(io::Error::other)?;
        }
        sink.write_all(&out[..at])
    }
}

impl Encoder for Base64Lines {
    fn push(&mut self, mut input: &[u8], sink: &mut dyn Write) -> io::Result<()> {
        if !self.pending.is_empty() {
            let take = (LINE_IN - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() < LINE_IN {
                return Ok(());
            }
            let line = std::mem::take(&mut self.pending);
            self.lines(&line, sink)?;
            self.pending = line;
            self.pending.clear();
        }
        let whole = input.len() - input.len() % LINE_IN;
        for block in input[..whole].chunks(LINE_IN * BLOCK_LINES) {
            self.lines(block, sink)?;
        }
        self.pending.extend_from_slice(&input[whole..]);
        Ok(())
    }

    fn finish(mut self, sink: &mut dyn Write) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.pending);
        self.lines(&line, sink)
    }
}

const QP_LIMIT: usize = 76;
/// Output held before it is written (at least one line's worth).
const QP_FLUSH: usize = 1 << 14;

/// Quoted-printable, text mode: a port of `quoted_printable::encode` that
/// holds only the current output line, which a later soft line break or
/// trailing-blank escape may still change.
#[derive(Default)]
pub struct QuotedPrintable {
    out: Vec<u8>,
    on_line: usize,
    /// Where the last thing appended starts, for a soft break put before it.
    backup_pos: usize,
    was_cr: bool,
}

fn needs_encoding(c: u8) -> bool {
    !matches!(c, b'\t' | b' '..=b'~') || c == b'='
}

impl QuotedPrintable {
    fn append(&mut self, piece: &[u8]) {
        if self.on_line + piece.len() > QP_LIMIT {
            if self.on_line == QP_LIMIT {
                // The '=' would not fit: break before the last piece instead.
                self.on_line = self.out.len() - self.backup_pos;
                let at = self.backup_pos;
                self.out.splice(at..at, *b"=\r\n");
            } else {
                self.out.extend_from_slice(b"=\r\n");
                self.on_line = 0;
            }
        }
        self.out.extend_from_slice(piece);
        self.on_line += piece.len();
        self.backup_pos = self.out.len() - piece.len();
    }

    /// A blank must not end an encoded line: escape one that does.
    fn trailing_blank(&mut self) {
        let escaped: &[u8] = match self.out.last() {
            Some(b' ') => b"=20",
            Some(b'\t') => b"=09",
            _ => return,
        };
        self.on_line = self.on_line.saturating_sub(1);
        self.out.pop();
        self.append(escaped);
    }

    fn encode_byte(&mut self, b: u8) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        match b {
            b'=' => self.append(b"=3D"),
            b'\t' | b' '..=b'~' => self.append(&[b]),
            _ => self.append(&[b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]),
        }
    }

    /// Writes everything up to the last line break, which nothing can change.
    fn flush_lines(&mut self, sink: &mut dyn Write) -> io::Result<()> {
        if let Some(last) = self.out.iter().rposition(|&b| b == b'\n') {
            sink.write_all(&self.out[..=last])?;
            self.out.drain(..=last);
            self.backup_pos = self.backup_pos.saturating_sub(last + 1);
        }
        Ok(())
    }
}

impl Encoder for QuotedPrintable {
    fn push(&mut self, input: &[u8], sink: &mut dyn Write) -> io::Result<()> {
        let mut i = 0;
        while i < input.len() {
            let byte = input[i];
            i += 1;
            if self.was_cr {
                self.was_cr = false;
                if byte == b'\n' {
                    self.trailing_blank();
                    self.out.extend_from_slice(b"\r\n");
                    self.on_line = 0;
                    continue;
                }
                self.append(b"=0D");
            }
            if byte == b'\r' {
                self.was_cr = true;
                continue;
            }
            if QP_LIMIT.saturating_sub(self.on_line) >= 3 && !needs_encoding(byte) {
                // A run that needs no escaping, up to two short of the limit.
                let max_run = QP_LIMIT - self.on_line - 2;
                let start = i - 1;
                while i - start < max_run && i < input.len() && !needs_encoding(input[i]) {
                    i += 1;
                }
                self.out.extend_from_slice(&input[start..i]);
                self.on_line += i - start;
                self.backup_pos = self.out.len();
                continue;
            }
            self.encode_byte(byte);
        }
        if self.out.len() >= QP_FLUSH {
            self.flush_lines(sink)?;
        }
        Ok(())
    }

    fn finish(mut self, sink: &mut dyn Write) -> io::Result<()> {
        if self.was_cr {
            self.append(b"=0D");
        } else {
            self.trailing_blank();
        }
        sink.write_all(&self.out)
    }
}

/// Counts what is written through it: the length of an encoded body
/// without keeping it.
#[derive(Default)]
pub struct Counter(pub u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use lettre::message::header::ContentTransferEncoding;
    use lettre::message::Body;

    use super::*;

    fn lettre(bytes: &[u8], encoding: ContentTransferEncoding) -> Vec<u8> {
        Body::new_with_encoding(bytes.to_vec(), encoding)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    /// Bytes that depend on `seed`, all 256 values.
    fn noise(len: usize, seed: u32) -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed) as u8)
            .collect()
    }

    /// Text full of what quoted-printable must handle: blanks before line
    /// ends, '=', CR alone, long runs, non-ASCII.
    fn tricky_text(len: usize, seed: u32) -> Vec<u8> {
        const PIECES: [&[u8]; 10] = [
            b" ",
            b"\t",
            b"=",
            b"\r\n",
            b"\r",
            b"\n",
            b"abc",
            "é".as_bytes(),
            b"x",
            b"  \r\n",
        ];
        noise(len, seed)
            .iter()
            .flat_map(|&b| {
                let piece = PIECES[usize::from(b) % PIECES.len()];
                if b > 200 {
                    [b"word".as_slice(); 20].concat()
                } else {
                    piece.to_vec()
                }
            })
            .collect()
    }

    /// `bytes` through encoder `E` in chunks of `chunk` bytes.
    fn ours<E: Encoder>(bytes: &[u8], chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = E::default();
        for c in bytes.chunks(chunk.max(1)) {
            enc.push(c, &mut out).unwrap();
        }
        enc.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn base64_matches_lettre_in_any_chunks() {
        for len in [
            0,
            1,
            56,
            57,
            58,
            114,
            1000,
            57 * 1024,
            57 * 1024 + 1,
            200_000,
        ] {
            let bytes = noise(len, len as u32);
            let theirs = lettre(&bytes, ContentTransferEncoding::Base64);
            assert_eq!(base64_len(len as u64), theirs.len() as u64, "length {len}");
            for chunk in [1, 7, 57, 100, 65_536, len] {
                assert_eq!(
                    ours::<Base64Lines>(&bytes, chunk),
                    theirs,
                    "length {len} chunk {chunk}"
                );
            }
        }
    }

    #[test]
    fn quoted_printable_matches_lettre_in_any_chunks() {
        let mut samples = vec![
            Vec::new(),
            b"a \r\n".to_vec(),
            b"end with blank ".to_vec(),
            b"end with CR\r".to_vec(),
            "=".repeat(200).into_bytes(),
            "x".repeat(75).into_bytes(),
            format!("{}é", "x".repeat(74)).into_bytes(),
            format!("{} \r\n", "x".repeat(75)).into_bytes(),
        ];
        for seed in 0..20 {
            samples.push(tricky_text(3_000, seed));
        }
        samples.push(tricky_text(60_000, 99));
        for bytes in &samples {
            let theirs = lettre(bytes, ContentTransferEncoding::QuotedPrintable);
            for chunk in [1, 2, 3, 5, 76, 1000, bytes.len()] {
                assert_eq!(
                    ours::<QuotedPrintable>(bytes, chunk),
                    theirs,
                    "{:?} chunk {chunk}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
                );
            }
        }
    }
}
