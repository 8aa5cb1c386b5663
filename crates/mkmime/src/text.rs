//! The body of a text part (stdin's text, a draft's body, an `--html` file)
//! too large to hold: read from a file a chunk at a time, with its line ends
//! made CRLF on the way, exactly as `build::text_body` and lettre make them
//! of the whole text (CRLF, lone CR and lone LF all become CRLF). One scan
//! checks it (UTF-8, with the same error and byte offset as for held text)
//! and gathers what choosing its transfer encoding needs, including
//! lettre's own line-length rule, so that the part's bytes are the same as
//! if the text had been held.

use lettre::message::header::ContentTransferEncoding;
use mailpipe::Error;

use crate::scan::{Found, Scan};
use crate::source::Source;

/// The error for text that is not UTF-8: `offset` is where the first
/// invalid sequence starts, as `String::from_utf8` reports it.
pub fn not_utf8(what: &str, offset: u64) -> Error {
    Error::data(format!("{what} is not UTF-8 (byte {offset} is invalid)"))
}

/// A UTF-8 check fed a chunk at a time that knows the offset of the first
/// invalid byte.
struct Utf8Check {
    /// Bytes before the current chunk (and before the carry).
    offset: u64,
    /// The start of a sequence cut by the end of the last chunk.
    carry: Vec<u8>,
}

impl Utf8Check {
    /// Returns the offset of the first invalid sequence, if `chunk` has one.
    fn feed(&mut self, chunk: &[u8]) -> Option<u64> {
        let mut data = chunk;
        if !self.carry.is_empty() {
            let width = first_sequence_len(&self.carry);
            let take = (width - self.carry.len()).min(data.len());
            self.carry.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.carry.len() < width {
                return None;
            }
            if std::str::from_utf8(&self.carry).is_err() {
                return Some(self.offset);
            }
            self.offset += width as u64;
            self.carry.clear();
        }
        match std::str::from_utf8(data) {
            Ok(_) => {
                self.offset += data.len() as u64;
                None
            }
            Err(e) if e.error_len().is_none() => {
                self.offset += e.valid_up_to() as u64;
                self.carry = data[e.valid_up_to()..].to_vec();
                None
            }
            Err(e) => Some(self.offset + e.valid_up_to() as u64),
        }
    }

    /// The offset of a sequence cut short by the end of the input.
    fn finish(&self) -> Option<u64> {
        (!self.carry.is_empty()).then_some(self.offset)
    }
}

/// The length of the UTF-8 sequence `bytes` starts with.
fn first_sequence_len(bytes: &[u8]) -> usize {
    match bytes.first() {
        Some(0xc0..=0xdf) => 2,
        Some(0xe0..=0xef) => 3,
        Some(0xf0..=0xf7) => 4,
        _ => 1,
    }
}

/// Appends `raw` to `out` with every line end made CRLF; `after_cr` carries
/// a CR at the end of one chunk to the next.
fn crlf(raw: &[u8], after_cr: &mut bool, out: &mut Vec<u8>) {
    let mut start = 0;
    for (i, &b) in raw.iter().enumerate() {
        match b {
            b'\r' => {
                out.extend_from_slice(&raw[start..i]);
                out.extend_from_slice(b"\r\n");
                start = i + 1;
            }
            b'\n' => {
                out.extend_from_slice(&raw[start..i]);
                if !*after_cr {
                    out.extend_from_slice(b"\r\n");
                }
                start = i + 1;
            }
            _ => {}
        }
        *after_cr = b == b'\r';
    }
    out.extend_from_slice(&raw[start..]);
}

/// lettre's test of a line too long for 7bit or 8bit (email-encoding's
/// `line_too_long`, on the text with LF line ends): 76 bytes or more before
/// the first LF, 75 or more on any later line.
#[derive(Default)]
struct LettreLines {
    line: u64,
    seen_lf: bool,
    too_long: bool,
}

impl LettreLines {
    /// Takes CRLF text (its CRs are all line ends, so not counted).
    fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            match b {
                b'\n' => {
                    self.end_line();
                    self.seen_lf = true;
                    self.line = 0;
                }
                b'\r' => {}
                _ => self.line += 1,
            }
        }
    }

    fn end_line(&mut self) {
        let limit = if self.seen_lf { 75 } else { 76 };
        self.too_long |= self.line >= limit;
    }
}

/// A text part's body: held in memory, or read from a file in passes.
#[derive(Debug)]
pub enum Text {
    Held(String),
    Streamed(TextSource),
}

impl Text {
    pub fn is_empty(&self) -> bool {
        match self {
            Text::Held(text) => text.is_empty(),
            Text::Streamed(text) => text.is_empty(),
        }
    }
}

/// A text body read from a file in passes.
#[derive(Debug)]
pub struct TextSource {
    /// Text before the file's (a draft's body that began in the held header block).
    prefix: Vec<u8>,
    source: Source,
    /// Of the text with CRLF line ends.
    found: Found,
    len: u64,
    lettre_too_long: bool,
}

impl TextSource {
    /// Scans `prefix` and then `source` once; `what` names the text and
    /// `offset` is where it starts in it, for the UTF-8 error.
    pub fn scan(
        what: &str,
        offset: u64,
        prefix: Vec<u8>,
        source: Source,
    ) -> Result<TextSource, Error> {
        let mut text = TextSource {
            prefix,
            source,
            found: Scan::of(b""),
            len: 0,
            lettre_too_long: false,
        };
        let mut utf8 = Utf8Check {
            offset,
            carry: Vec::new(),
        };
        let mut bad = None;
        let mut scan = Scan::default();
        let mut lines = LettreLines::default();
        let mut len = 0u64;
        text.raw_pass(|raw, crlf_text| {
            bad = utf8.feed(raw);
            scan.feed(crlf_text);
            lines.feed(crlf_text);
            len += crlf_text.len() as u64;
            Ok(bad.is_none())
        })?;
        if let Some(at) = bad.or_else(|| utf8.finish()) {
            return Err(not_utf8(what, at));
        }
        lines.end_line();
        text.found = scan.finish();
        text.len = len;
        text.lettre_too_long = lines.too_long;
        Ok(text)
    }

    /// The same file after `prefix` (a draft's body that began in its held
    /// header block, `offset` bytes into stdin), scanned again.
    pub fn with_prefix(
        self,
        what: &str,
        offset: u64,
        prefix: Vec<u8>,
    ) -> Result<TextSource, Error> {
        TextSource::scan(what, offset, prefix, self.source)
    }

    /// Calls `each` with the raw bytes and the same with CRLF line ends.
    fn raw_pass(
        &self,
        mut each: impl FnMut(&[u8], &[u8]) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        let mut after_cr = false;
        let mut out = Vec::new();
        let mut step = |raw: &[u8]| {
            out.clear();
            crlf(raw, &mut after_cr, &mut out);
            each(raw, &out)
        };
        if !self.prefix.is_empty() && !step(&self.prefix)? {
            return Ok(());
        }
        self.source.pass(step)
    }

    /// Calls `each` with the text (CRLF line ends) chunk after chunk, until
    /// the end or until `each` returns `Ok(false)`.
    pub fn pass(&self, mut each: impl FnMut(&[u8]) -> Result<bool, Error>) -> Result<(), Error> {
        self.raw_pass(|_, text| each(text))
    }

    /// The length of the text with CRLF line ends.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What the scan found (of the text with CRLF line ends).
    pub fn found(&self) -> Found {
        self.found
    }

    /// True if `needle` (without CR or LF) occurs in the text: the same in
    /// the raw bytes, as only line ends differ.
    pub fn contains(&self, needle: &[u8]) -> Result<bool, Error> {
        if self.prefix.windows(needle.len()).any(|w| w == needle) {
            return Ok(true);
        }
        // A needle across the prefix's end: look at the joint.
        let keep = needle.len().saturating_sub(1).min(self.prefix.len());
        let mut joint = self.prefix[self.prefix.len() - keep..].to_vec();
        self.source.pass(|chunk| {
            let take = chunk.len().min(needle.len().saturating_sub(1));
            joint.extend_from_slice(&chunk[..take]);
            Ok(false)
        })?;
        if joint.windows(needle.len()).any(|w| w == needle) {
            return Ok(true);
        }
        self.source.contains(needle)
    }

    /// The error for a file that changed between the scan and the writing.
    pub fn changed_content(&self) -> Error {
        self.source.changed_content()
    }

    /// The transfer encoding, chosen as `build::text_body` chooses it for
    /// held text: `forced` if lettre takes it, else 7bit, quoted-printable
    /// or base64 by `choose_text_encoding`'s rules.
    pub fn encoding(
        &self,
        forced: Option<ContentTransferEncoding>,
    ) -> Result<ContentTransferEncoding, ContentTransferEncoding> {
        let f = self.found;
        match forced {
            Some(encoding) => {
                let ok = match encoding {
                    ContentTransferEncoding::SevenBit => !f.nul && f.ascii && !self.lettre_too_long,
                    ContentTransferEncoding::EightBit => !f.nul && !self.lettre_too_long,
                    _ => true,
                };
                if ok {
                    Ok(encoding)
                } else {
                    Err(encoding)
                }
            }
            None => Ok(if f.ascii && !f.nul && !f.long_line {
                if self.lettre_too_long {
                    // lettre's 7bit line limit is a little stricter than ours.
                    ContentTransferEncoding::QuotedPrintable
                } else {
                    ContentTransferEncoding::SevenBit
                }
            } else if f.few_escapes {
                ContentTransferEncoding::QuotedPrintable
            } else {
                ContentTransferEncoding::Base64
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::build::choose_text_encoding;

    fn utf8_offset(bytes: &[u8], chunk: usize) -> Option<u64> {
        let mut check = Utf8Check {
            offset: 0,
            carry: Vec::new(),
        };
        for c in bytes.chunks(chunk) {
            if let Some(at) = check.feed(c) {
                return Some(at);
            }
        }
        check.finish()
    }

    #[test]
    fn utf8_offset_is_from_utf8s_in_any_chunks() {
        let samples: Vec<Vec<u8>> = vec![
            "中文 ok".into(),
            b"caf\xe9 x".to_vec(),
            b"ab\xe4\xb8".to_vec(),
            b"ab\xe4\xb8\x41zz".to_vec(),
            "😀😀".into(),
            b"\xf0\x9f\x98\x80\xf0\x9f".to_vec(),
            b"\xff".to_vec(),
            b"x\xc3".to_vec(),
            "é".repeat(40).into(),
            [&"é".repeat(20).into_bytes()[..], b"\xe9\xe9"].concat(),
        ];
        for s in &samples {
            let expected = std::str::from_utf8(s).err().map(|e| e.valid_up_to() as u64);
            for size in 1..8 {
                assert_eq!(utf8_offset(s, size), expected, "{s:?} in chunks of {size}");
            }
        }
    }

    fn crlf_chunked(raw: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut after_cr = false;
        for c in raw.chunks(size) {
            crlf(c, &mut after_cr, &mut out);
        }
        out
    }

    #[test]
    fn line_ends_as_lettre_makes_them() {
        for s in ["a\nb\r\nc\rd\r\r\n\n", "\n\r", "\r", "x", "\r\n\r\n", ""] {
            // normalize_newlines, then lettre's LF to CRLF.
            let expected = s
                .replace("\r\n", "\n")
                .replace('\r', "\n")
                .replace('\n', "\r\n");
            for size in 1..4 {
                assert_eq!(
                    crlf_chunked(s.as_bytes(), size),
                    expected.as_bytes(),
                    "{s:?}"
                );
            }
        }
    }

    fn streamed(text: &[u8]) -> TextSource {
        TextSource::scan("t", 0, Vec::new(), Source::from_bytes("t", text.to_vec())).unwrap()
    }

    #[test]
    fn encoding_is_the_held_texts() {
        use ContentTransferEncoding::*;
        let samples: Vec<String> = vec![
            "hello\nworld\n".into(),
            "x".repeat(75),
            "x".repeat(76),
            "x".repeat(77),
            format!("a\n{}", "x".repeat(74)),
            format!("a\n{}", "x".repeat(75)),
            format!("a\r\n{}\r\n", "x".repeat(75)),
            "Grüße aus Köln\n".into(),
            "邮件测试邮件测试\n".into(),
            "nul\0here".into(),
            format!("{}é\n", "y".repeat(80)),
            "a\rb\r".into(),
        ];
        for s in &samples {
            let text = streamed(s.as_bytes());
            let held = s.replace("\r\n", "\n").replace('\r', "\n");
            let mut expected = choose_text_encoding(&held);
            if lettre::message::Body::new_with_encoding(held.clone(), expected).is_err() {
                expected = QuotedPrintable;
            }
            assert_eq!(text.encoding(None), Ok(expected), "{s:?}");
            for forced in [SevenBit, EightBit, QuotedPrintable, Base64] {
                let lettre_ok = lettre::message::Body::new_with_encoding(held.clone(), forced)
                    .is_ok()
                    && (!matches!(forced, SevenBit | EightBit) || !held.contains('\0'));
                assert_eq!(
                    text.encoding(Some(forced)).is_ok(),
                    lettre_ok,
                    "{s:?} {forced}"
                );
            }
        }
    }

    #[test]
    fn contains_across_the_prefix() {
        let t = TextSource::scan(
            "t",
            0,
            b"abc=_ne".to_vec(),
            Source::from_bytes("t", b"edle xyz".to_vec()),
        )
        .unwrap();
        assert!(t.contains(b"=_needle").unwrap());
        assert!(!t.contains(b"=_needles").unwrap());
        assert!(t.contains(b"xyz").unwrap());
    }
}
