//! Header text to UTF-8: RFC 2047 encoded-words and raw 8-bit bytes.
//!
//! Adjacent encoded-words in the same charset are joined as bytes before
//! decoding, because mailers split long subjects in the middle of a multi-byte
//! character (`=?GBK?B?xOO6?= =?GBK?B?w7o=?=`). Whitespace between two
//! encoded-words is dropped (RFC 2047 section 6.2). Encoded-words are also
//! recognised inside words and quoted strings, as real mailers write them.
//! Raw 8-bit bytes outside encoded-words go through [`charset::guess`].

use super::charset::{self as decode, Charset};
use super::{base64, quoted_printable};

/// Decoding context: the message's charset hint and where defects go.
pub struct HeaderDecoder<'d> {
    pub hint: Option<Charset>,
    pub defects: &'d mut Vec<String>,
}

struct Word<'a> {
    charset: &'a str,
    bytes: Vec<u8>,
    /// Where the encoded-word(s) start and end in the input, to show them
    /// as written when they do not decode.
    span: (usize, usize),
}

/// Finds the encoded-word starting at `start` (`=?cs?e?text?=`): its end
/// index and decoded bytes.
fn parse_word(input: &[u8], start: usize) -> Option<(usize, Word<'_>)> {
    let rest = input.get(start + 2..)?;
    let q1 = rest.iter().take(76).position(|&b| b == b'?')?;
    let charset = std::str::from_utf8(&rest[..q1]).ok()?;
    if charset.is_empty() || charset.bytes().any(|b| b <= b' ' || b == b'=' || b >= 0x7f) {
        return None;
    }
    let encoding = *rest.get(q1 + 1)?;
    if rest.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let text_start = q1 + 3;
    let text_len = memchr::memmem::find(rest.get(text_start..)?, b"?=")?;
    let text = &rest[text_start..text_start + text_len];
    if text
        .iter()
        .any(|&b| b == b' ' || b == b'\t' || b == b'\n' || b == b'\r')
    {
        return None;
    }
    let bytes = match encoding {
        b'B' | b'b' => base64::decode_lenient(text),
        b'Q' | b'q' => quoted_printable::decode_word(text),
        _ => return None,
    };
    let end = start + 2 + text_start + text_len + 2;
    Some((
        end,
        Word {
            charset,
            bytes,
            span: (start, end),
        },
    ))
}

/// Words in a stateful charset (ISO-2022-JP, UTF-7) each end in the ASCII
/// state, so they are decoded one by one; joining them would put two escape
/// sequences in a row, which the WHATWG decoder rejects.
fn joinable(charset: &str) -> bool {
    decode::lookup(charset).is_none_or(|c| c.ascii_compatible())
}

impl HeaderDecoder<'_> {
    /// Decodes an unfolded header value (or a part of one, such as a
    /// display name) to text.
    pub fn decode(&mut self, raw: &[u8]) -> String {
        if raw.is_ascii() && memchr::memmem::find(raw, b"=?").is_none() {
            return String::from_utf8_lossy(raw).into_owned();
        }
        let mut out = String::with_capacity(raw.len());
        // Plain bytes waiting to be decoded, and encoded-word bytes waiting
        // for a possible continuation in the same charset.
        let mut plain: Vec<u8> = Vec::new();
        let mut pending: Option<Word<'_>> = None;
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'=' && raw.get(i + 1) == Some(&b'?') {
                if let Some((end, word)) = parse_word(raw, i) {
                    let only_space = plain
                        .iter()
                        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
                    match pending.as_mut() {
                        Some(p)
                            if only_space
                                && p.charset.eq_ignore_ascii_case(word.charset)
                                && joinable(word.charset) =>
                        {
                            p.bytes.extend_from_slice(&word.bytes);
                            p.span.1 = end;
                            plain.clear();
                        }
                        _ => {
                            if let Some(p) = pending.take() {
                                self.flush_word(&mut out, p, raw);
                                if only_space {
                                    plain.clear();
                                }
                            }
                            self.flush_plain(&mut out, &mut plain);
                            pending = Some(word);
                        }
                    }
                    i = end;
                    continue;
                }
            }
            plain.push(raw[i]);
            i += 1;
        }
        if let Some(p) = pending.take() {
            self.flush_word(&mut out, p, raw);
        }
        self.flush_plain(&mut out, &mut plain);
        out
    }

    fn flush_plain(&mut self, out: &mut String, plain: &mut Vec<u8>) {
        if plain.is_empty() {
            return;
        }
        match std::str::from_utf8(plain) {
            Ok(s) => out.push_str(s),
            Err(_) => {
                let (text, name) = decode::guess(plain, self.hint, None);
                out.push_str(&text);
                let defect = format!("raw-8bit-header: decoded as {name}");
                if !self.defects.contains(&defect) {
                    self.defects.push(defect);
                }
            }
        }
        plain.clear();
    }

    fn flush_word(&mut self, out: &mut String, word: Word<'_>, input: &[u8]) {
        if let Some(c) = decode::lookup(word.charset) {
            let (text, errors) = c.decode(&word.bytes);
            if errors && !decode::few_errors(&text) && std::str::from_utf8(&word.bytes).is_err() {
                // Bytes that are not text in the charset the word names:
                // show the word as written rather than guess (Python too).
                out.push_str(&String::from_utf8_lossy(&input[word.span.0..word.span.1]));
                self.defects.push(format!(
                    "encoded-word undecodable in {}: kept as written",
                    c.name()
                ));
                return;
            }
        }
        let (text, defect) = decode::decode_text(&word.bytes, Some(word.charset), self.hint);
        out.push_str(&text);
        if let Some(d) = defect {
            let d = format!("encoded-word {d}");
            if !self.defects.contains(&d) {
                self.defects.push(d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(raw: &[u8]) -> (String, Vec<String>) {
        let mut defects = Vec::new();
        let text = HeaderDecoder {
            hint: None,
            defects: &mut defects,
        }
        .decode(raw);
        (text, defects)
    }

    #[test]
    fn split_multibyte_character_across_words() {
        // 你好 in GBK is C4E3 BAC3; split after the first three bytes.
        let raw = b"=?GBK?B?xOO6?= =?gbk?B?ww==?=";
        assert_eq!(dec(raw).0, "你好");
        // UTF-8 split inside a character, Q encoding.
        let raw = b"=?UTF-8?Q?=E4=BD?=\r\n =?UTF-8?Q?=A0=E5=A5=BD?=";
        assert_eq!(dec(raw).0, "你好");
    }

    #[test]
    fn mixed_words_and_text() {
        assert_eq!(dec(b"Re: =?iso-8859-1?q?caf=E9?= ok").0, "Re: café ok");
        assert_eq!(dec(b"=?utf-8?q?a?= =?iso-8859-1?q?b?=").0, "ab");
        assert_eq!(dec(b"=?utf-8?q?a_b?=c").0, "a bc");
        assert_eq!(dec(b"=?bogus").0, "=?bogus");
        assert_eq!(dec(b"=?utf-8?x?abc?=").0, "=?utf-8?x?abc?=");
    }

    #[test]
    fn raw_8bit() {
        assert_eq!(dec("中文 ok".as_bytes()).0, "中文 ok");
        let (t, d) = dec(b"\xd6\xd0\xce\xc4");
        assert_eq!(t, "中文");
        assert_eq!(d, vec!["raw-8bit-header: decoded as gb18030".to_string()]);
    }
}
