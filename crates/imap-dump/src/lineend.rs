//! Bare LF line ends while logging in. GNU Mailutils imap4d (3.15) ends its
//! tagged reply to AUTHENTICATE with `\n` alone, which the imap crate's
//! parser refuses ("does not parse", 76) although every client that reads
//! lines accepts it. Login replies carry no literals, so reading a bare LF
//! there as CRLF changes no data; message bytes are never repaired.

use std::io::{self, Read};

/// Reads with every LF not preceded by CR given one, across reads.
#[derive(Debug, Default)]
pub struct BareLf {
    /// The last byte read was a CR.
    after_cr: bool,
    /// An LF still owed to the reader, when its CR filled a one-byte buffer.
    owed_lf: bool,
}

impl BareLf {
    /// Reads from `inner` into `buf`: at most half of `buf` from `inner`, so
    /// that every repaired line end fits.
    pub fn read(&mut self, inner: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
        let Some(first) = buf.first_mut() else {
            return Ok(0);
        };
        if self.owed_lf {
            *first = b'\n';
            self.owed_lf = false;
            return Ok(1);
        }
        let mut raw = vec![0u8; (buf.len() / 2).max(1)];
        let n = inner.read(&mut raw)?;
        let mut out = 0;
        for &b in raw.get(..n).unwrap_or_default() {
            if b == b'\n' && !self.after_cr {
                if let Some(slot) = buf.get_mut(out) {
                    *slot = b'\r';
                    out += 1;
                }
                match buf.get_mut(out) {
                    Some(slot) => {
                        *slot = b'\n';
                        out += 1;
                    }
                    None => self.owed_lf = true,
                }
            } else if let Some(slot) = buf.get_mut(out) {
                *slot = b;
                out += 1;
            }
            self.after_cr = b == b'\r';
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything `BareLf` yields from `input`, read `chunk` bytes at a time.
    fn repaired(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut inner = input;
        let mut lf = BareLf::default();
        let mut out = Vec::new();
        let mut buf = vec![0u8; chunk];
        loop {
            let n = lf.read(&mut inner, &mut buf).expect("read");
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn bare_lf_becomes_crlf_and_crlf_stays() {
        let input = b"+ \r\na1 OK AUTHENTICATE PLAIN authentication successful\n* x\r\n\n";
        let want = b"+ \r\na1 OK AUTHENTICATE PLAIN authentication successful\r\n* x\r\n\r\n";
        for chunk in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(repaired(input, chunk), want, "chunk {chunk}");
        }
    }
}
