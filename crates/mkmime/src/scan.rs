//! What a file's bytes say about how to send it, gathered a chunk at a time
//! so that the choice of type and transfer encoding needs one pass over the
//! file and no copy of it: whether it already is canonical 7bit text,
//! whether it is UTF-8, ASCII, free of control characters, and whether its
//! line ends are all CRLF with few enough bytes to escape for
//! quoted-printable. The rules are those of `build::choose_text_encoding`.

/// The running state; [`Scan::finish`] settles it.
#[derive(Debug, Clone)]
pub struct Scan {
    /// ASCII without NUL, CRLF line ends only, lines of at most 76 bytes.
    seven_bit: bool,
    utf8: bool,
    ascii: bool,
    /// A control character `looks_like_text` rejects (not tab, CR, LF, FF).
    control: bool,
    /// Every CR is followed by LF and every LF preceded by CR.
    crlf_only: bool,
    nul: bool,
    /// A line (between LFs, CRs not counted) of more than 76 bytes.
    long_line: bool,
    /// Bytes quoted-printable escapes, CRs of CRLF not counted.
    escaped: u64,
    /// CR bytes and all bytes, for the length of the text with LF line ends.
    crs: u64,
    total: u64,
    line_len: usize,
    after_cr: bool,
    /// The start of a UTF-8 sequence cut by the end of a chunk.
    carry: [u8; 4],
    carry_len: usize,
}

impl Default for Scan {
    fn default() -> Scan {
        Scan {
            seven_bit: true,
            utf8: true,
            ascii: true,
            control: false,
            crlf_only: true,
            nul: false,
            long_line: false,
            escaped: 0,
            crs: 0,
            total: 0,
            line_len: 0,
            after_cr: false,
            carry: [0; 4],
            carry_len: 0,
        }
    }
}

/// What a finished scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Already what a 7bit part holds: sent as it is.
    pub seven_bit: bool,
    pub utf8: bool,
    pub ascii: bool,
    /// UTF-8 without NUL or other controls than tab, CR, LF, FF.
    pub looks_like_text: bool,
    /// Mostly-ASCII UTF-8 with CRLF line ends only: quoted-printable keeps
    /// it exact (and is short enough).
    pub crlf_text: bool,
    pub nul: bool,
    /// A line (CRs not counted) of more than 76 bytes.
    pub long_line: bool,
    /// At most a third of the bytes (CRs not counted) are ones
    /// quoted-printable escapes.
    pub few_escapes: bool,
}

/// How much of the file the caller still needs to know about, so that a
/// binary file's scan can stop at its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Whether it is 7bit (type known, not text).
    SevenBit,
    /// Everything about text too (a text type).
    Text,
    /// Whether it looks like text, and if so everything (type unknown).
    MaybeText,
}

fn utf8_width(lead: u8) -> usize {
    match lead {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 0,
    }
}

impl Scan {
    /// The whole of `bytes` at once.
    pub fn of(bytes: &[u8]) -> Found {
        let mut scan = Scan::default();
        scan.feed(bytes);
        scan.finish()
    }

    /// True when nothing later in the file can change what `needs` asks.
    pub fn settled(&self, needs: Needs) -> bool {
        !self.seven_bit
            && match needs {
                Needs::SevenBit => true,
                Needs::Text => !self.utf8,
                Needs::MaybeText => !self.utf8 || self.control,
            }
    }

    /// Takes the next chunk of the file.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.feed_utf8(chunk);
        self.total += chunk.len() as u64;
        for &b in chunk {
            if self.after_cr && b != b'\n' {
                self.seven_bit = false;
                self.crlf_only = false;
            }
            match b {
                b'\n' => {
                    if !self.after_cr {
                        self.seven_bit = false;
                        self.crlf_only = false;
                    }
                    self.line_len = 0;
                }
                b'\r' => self.crs += 1,
                _ => {
                    self.line_len += 1;
                    if self.line_len > 76 {
                        self.seven_bit = false;
                        self.long_line = true;
                    }
                    if b == 0 || b >= 0x7f || (b < 0x20 && b != b'\t') {
                        self.escaped += 1;
                    }
                    if b == 0 {
                        self.nul = true;
                        self.seven_bit = false;
                    }
                    if b >= 0x80 {
                        self.ascii = false;
                        self.seven_bit = false;
                    }
                    if (b < 0x20 && !matches!(b, b'\t' | 0x0c)) || b == 0x7f {
                        self.control = true;
                    }
                }
            }
            self.after_cr = b == b'\r';
        }
    }

    fn feed_utf8(&mut self, chunk: &[u8]) {
        if !self.utf8 {
            return;
        }
        let mut data = chunk;
        if self.carry_len > 0 {
            let width = utf8_width(self.carry[0]);
            let take = (width - self.carry_len).min(data.len());
            self.carry[self.carry_len..self.carry_len + take].copy_from_slice(&data[..take]);
            self.carry_len += take;
            data = &data[take..];
            if self.carry_len < width {
                return;
            }
            self.carry_len = 0;
            if std::str::from_utf8(&self.carry[..width]).is_err() {
                self.utf8 = false;
                return;
            }
        }
        if let Err(e) = std::str::from_utf8(data) {
            let rest = &data[e.valid_up_to()..];
            if e.error_len().is_some() || utf8_width(rest[0]) == 0 {
                self.utf8 = false;
            } else {
                self.carry[..rest.len()].copy_from_slice(rest);
                self.carry_len = rest.len();
            }
        }
    }

    pub fn finish(&self) -> Found {
        let seven_bit = self.seven_bit && !self.after_cr;
        let crlf_only = self.crlf_only && !self.after_cr;
        let utf8 = self.utf8 && self.carry_len == 0;
        // choose_text_encoding on the text with LF line ends: 7bit, or
        // quoted-printable when at most a third of its bytes are escaped.
        let text_len = self.total - self.crs;
        let few_escapes = self.escaped * 3 <= text_len;
        let not_base64 = (self.ascii && !self.nul && !self.long_line) || few_escapes;
        Found {
            seven_bit,
            utf8,
            ascii: self.ascii,
            looks_like_text: utf8 && !self.control,
            crlf_text: utf8 && crlf_only && not_base64,
            nul: self.nul,
            long_line: self.long_line,
            few_escapes,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chunked(bytes: &[u8], size: usize) -> Found {
        let mut scan = Scan::default();
        for c in bytes.chunks(size) {
            scan.feed(c);
        }
        scan.finish()
    }

    #[test]
    fn chunking_never_changes_the_answer() {
        let samples: Vec<Vec<u8>> = vec![
            "中文\r\néà\r\n".into(),
            "a\r\nb\r".into(),
            "x".repeat(80).into(),
            b"caf\xe9".to_vec(),
            "😀 end".into(),
            b"\xf0\x9f\x98".to_vec(),
            b"\xe4\xb8\x41".to_vec(),
            b"ctl\x01\r\n".to_vec(),
            b"nul\x00".to_vec(),
            "ünï\r\ncödé\r\n".repeat(30).into(),
        ];
        for s in &samples {
            let whole = Scan::of(s);
            for size in 1..6 {
                assert_eq!(chunked(s, size), whole, "{s:?} in chunks of {size}");
            }
            assert_eq!(whole.utf8, std::str::from_utf8(s).is_ok(), "{s:?}");
            assert_eq!(whole.ascii, s.is_ascii(), "{s:?}");
        }
    }
}
