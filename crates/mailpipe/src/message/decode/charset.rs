//! Bytes in some charset to UTF-8: label lookup (WHATWG labels via encoding_rs,
//! plus the aliases mail software really writes), UTF-7, and the fallbacks used
//! when a label is missing, unknown or wrong.
//!
//! The heuristic, in order, for text whose label cannot be trusted:
//! 1. bytes that are valid UTF-8 and hold at least one multi-byte sequence are
//!    UTF-8 (legacy CJK or Latin text is almost never valid UTF-8 by accident);
//! 2. the declared charset, if known and it decodes without errors;
//! 3. the message's hint charset (the first non-ASCII charset the message
//!    declares elsewhere), if it decodes without errors;
//! 4. GB18030, if it decodes without errors (raw 8-bit Chinese headers);
//! 5. windows-1252, which decodes every byte.

use std::borrow::Cow;

use encoding_rs::{Encoding, GB18030, UTF_8, WINDOWS_1252};

/// A charset the message library can decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    Encoding(&'static Encoding),
    Utf7,
}

impl Charset {
    pub fn name(self) -> &'static str {
        match self {
            Charset::Encoding(e) => e.name(),
            Charset::Utf7 => "UTF-7",
        }
    }

    /// ASCII-only bytes mean ASCII text in this charset (false for UTF-7,
    /// ISO-2022-JP and UTF-16, whose ASCII bytes are escapes or halves).
    pub fn ascii_compatible(self) -> bool {
        match self {
            Charset::Encoding(e) => e.is_ascii_compatible(),
            Charset::Utf7 => false,
        }
    }

    fn is_utf8(self) -> bool {
        self == Charset::Encoding(UTF_8)
    }

    /// Decodes; `true` when some bytes were invalid and became U+FFFD.
    pub fn decode<'a>(self, bytes: &'a [u8]) -> (Cow<'a, str>, bool) {
        match self {
            Charset::Encoding(e) => {
                let (text, had_errors) = e.decode_without_bom_handling(bytes);
                (text, had_errors)
            }
            Charset::Utf7 => {
                let (text, bad) = super::utf7::decode(bytes);
                (Cow::Owned(text), bad)
            }
        }
    }
}

/// Looks up a MIME charset label; `None` when unknown.
pub fn lookup(label: &str) -> Option<Charset> {
    let label = label.trim().trim_matches(|c| c == '"' || c == '\'').trim();
    let lower = label.to_ascii_lowercase();
    // RFC 2231 / RFC 2184 allow `charset*language`; the language is not needed.
    let lower = lower.split('*').next().unwrap_or("");
    if let Some(alias) = alias(lower) {
        return Some(alias);
    }
    if let Some(e) = Encoding::for_label_no_replacement(lower.as_bytes()) {
        return Some(Charset::Encoding(e));
    }
    let stripped = lower
        .strip_prefix("x-")
        .or_else(|| lower.strip_prefix("x_"))?;
    alias(stripped)
        .or_else(|| Encoding::for_label_no_replacement(stripped.as_bytes()).map(Charset::Encoding))
}

/// Labels seen in real mail that the WHATWG list does not have.
fn alias(lower: &str) -> Option<Charset> {
    let e = match lower {
        "utf-7" | "utf7" | "unicode-1-1-utf-7" | "unicode-2-0-utf-7" => return Some(Charset::Utf7),
        "utf8" | "utf-8" | "unicode-1-1-utf-8" | "utf_8" => UTF_8,
        // GB2312 and GBK are subsets of GB18030; decoding as the superset loses
        // nothing and saves messages whose mailer wrote characters outside GB2312.
        "gb2312" | "gbk" | "cp936" | "ms936" | "euc-cn" | "euccn" | "gb_2312-80" | "gb18030"
        | "gb18030-2000" | "gb18030-2005" | "gb-2312" | "hz-gb-2312" | "chinese" | "csgb2312"
        | "windows-936" => GB18030,
        "big5" | "big5-hkscs" | "big5hkscs" | "cp950" | "ms950" | "x-x-big5" | "cn-big5" => {
            encoding_rs::BIG5
        }
        "cp949" | "uhc" | "ks_c_5601" | "ks_c_5601-1987" | "ksc5601" | "ksc_5601" => {
            encoding_rs::EUC_KR
        }
        "cp932" | "ms932" | "windows-31j" | "sjis" | "shift-jis" | "x-sjis" => {
            encoding_rs::SHIFT_JIS
        }
        "iso-2022-jp-2" | "iso-2022-jp-1" | "iso-2022-jp-3" | "csiso2022jp" => {
            encoding_rs::ISO_2022_JP
        }
        "latin-1" | "iso-8859-1" | "iso8859-1" | "iso_8859-1" | "8859-1" | "latin1"
        | "us-ascii" | "ascii" | "ansi_x3.4-1968" | "us" | "iso646-us" | "cp819" => WINDOWS_1252,
        "iso-8859-15" | "latin-9" | "latin9" => encoding_rs::ISO_8859_15,
        "tis-620" | "cp874" => encoding_rs::WINDOWS_874,
        _ => return None,
    };
    Some(Charset::Encoding(e))
}

/// Whether `label` names plain ASCII (or is absent): such a label says
/// nothing about 8-bit bytes, which then go through the heuristic.
pub fn is_ascii_label(label: &str) -> bool {
    matches!(
        label.trim().trim_matches('"').to_ascii_lowercase().as_str(),
        "us-ascii" | "ascii" | "ansi_x3.4-1968" | "us" | "iso646-us" | "" | "default" | "none"
    )
}

/// Counts multi-byte sequences if `bytes` is valid UTF-8, `None` if it is not.
fn utf8_multibyte_count(bytes: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(bytes).ok()?;
    Some(text.bytes().filter(|&b| b >= 0xC0).count())
}

/// Decodes text with a label that may be missing or wrong. `hint` is the
/// message's own non-ASCII charset, tried before the blind fallbacks.
/// Returns the text and a defect when the label was not used as given.
pub fn decode_text<'a>(
    bytes: &'a [u8],
    label: Option<&str>,
    hint: Option<Charset>,
) -> (Cow<'a, str>, Option<String>) {
    let declared = label.filter(|l| !is_ascii_label(l));
    let charset = declared.and_then(lookup);
    if bytes.is_ascii() && charset.is_none_or(|c| c.ascii_compatible()) {
        // All ASCII: every charset that is ASCII-compatible agrees.
        let text = std::str::from_utf8(bytes)
            .map(Cow::Borrowed)
            .unwrap_or_default();
        return (text, None);
    }
    match (declared, charset) {
        (Some(_), Some(c)) => {
            let (text, errors) = c.decode(bytes);
            if !errors {
                // A legacy label on valid UTF-8 is a mislabel (common in Chinese
                // mail sent through webmail); decoding it as labelled gives mojibake.
                // Text that holds U+FFFD was damaged by an earlier conversion
                // and is only valid UTF-8 by accident: keep the label.
                let damaged = memchr::memmem::find(bytes, "\u{FFFD}".as_bytes()).is_some();
                if !c.is_utf8()
                    && c.ascii_compatible()
                    && !damaged
                    && utf8_multibyte_count(bytes).unwrap_or(0) > 0
                {
                    let defect = format!("charset-mismatch: labelled {} but is UTF-8", c.name());
                    return (utf8(bytes), Some(defect));
                }
                return (text, None);
            }
            if std::str::from_utf8(bytes).is_err() && few_errors(&text) {
                // A few bad bytes in text that is otherwise fine in its
                // charset: keep the charset (a GBK reader shows 锟斤拷 too).
                return (text, Some(format!("charset-invalid-bytes: {}", c.name())));
            }
            let (fallback, name) = guess(bytes, hint, Some(c));
            let defect = if name == c.name() {
                format!("charset-invalid-bytes: {}", c.name())
            } else {
                format!(
                    "charset-mismatch: labelled {} but decoded as {name}",
                    c.name()
                )
            };
            (fallback, Some(defect))
        }
        (Some(l), None) => {
            let (text, name) = guess(bytes, hint, None);
            (
                text,
                Some(format!(
                    "unknown-charset: {} (decoded as {name})",
                    one_word(l)
                )),
            )
        }
        (None, _) => {
            let (text, _) = guess(bytes, hint, None);
            (text, None)
        }
    }
}

fn one_word(label: &str) -> String {
    label.chars().filter(|c| !c.is_control()).take(40).collect()
}

fn utf8(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Bytes of unknown charset to text, with the name of the charset used.
pub fn guess<'a>(
    bytes: &'a [u8],
    hint: Option<Charset>,
    declared: Option<Charset>,
) -> (Cow<'a, str>, &'static str) {
    match utf8_multibyte_count(bytes) {
        Some(_) => return (utf8(bytes), "UTF-8"),
        None => {
            if looks_mostly_utf8(bytes) {
                return (utf8(bytes), "UTF-8");
            }
        }
    }
    for c in [declared, hint].into_iter().flatten() {
        if c.ascii_compatible() && !c.is_utf8() {
            let (text, errors) = c.decode(bytes);
            if !errors {
                return (text, c.name());
            }
        }
    }
    if looks_like_gbk(bytes) {
        let (text, errors) = GB18030.decode_without_bom_handling(bytes);
        if !errors {
            return (text, GB18030.name());
        }
    }
    let (text, _) = WINDOWS_1252.decode_without_bom_handling(bytes);
    (text, WINDOWS_1252.name())
}

/// GBK/GB18030 text has its high bytes in pairs whose second byte is also
/// high in the vast majority of characters (always, within GB2312); Latin-1
/// text has lone high bytes followed by ASCII letters (`M\xfcller`), which
/// GBK would also accept. Four-byte GB18030 sequences count as pairs.
fn looks_like_gbk(bytes: &[u8]) -> bool {
    let (mut high_trail, mut low_trail) = (0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] < 0x81 {
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(t) if *t >= 0x80 => high_trail += 1,
            Some(t) if t.is_ascii_digit() => {
                high_trail += 1;
                i += 2;
            }
            Some(_) => low_trail += 1,
            None => low_trail += 1,
        }
        i += 2;
    }
    high_trail > 0 && low_trail * 4 <= high_trail
}

/// At most one character in fifty of the non-ASCII ones is U+FFFD.
pub fn few_errors(text: &str) -> bool {
    let mut bad = 0usize;
    let mut non_ascii = 0usize;
    for c in text.chars().filter(|c| !c.is_ascii()) {
        non_ascii += 1;
        if c == '\u{FFFD}' {
            bad += 1;
        }
    }
    bad * 50 <= non_ascii
}

/// Valid UTF-8 sequences outnumber broken ones: UTF-8 text with a stray bad
/// byte (a truncated line, a bad splice), not text in another charset.
fn looks_mostly_utf8(bytes: &[u8]) -> bool {
    let mut valid = 0usize;
    let mut invalid = 0usize;
    for chunk in bytes.utf8_chunks() {
        valid += chunk.valid().bytes().filter(|&b| b >= 0xC0).count();
        if !chunk.invalid().is_empty() {
            invalid += 1;
        }
    }
    valid >= 4 && valid > invalid * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(lookup("GB2312").map(Charset::name), Some("gb18030"));
        assert_eq!(lookup("\"gbk\"").map(Charset::name), Some("gb18030"));
        assert_eq!(lookup("big5").map(Charset::name), Some("Big5"));
        assert_eq!(lookup("x-unknown"), None);
        assert_eq!(lookup("utf-8*en").map(Charset::name), Some("UTF-8"));
        assert_eq!(lookup("ks_c_5601-1987").map(Charset::name), Some("EUC-KR"));
        assert_eq!(lookup("unicode-1-1-utf-7"), Some(Charset::Utf7));
    }

    #[test]
    fn gbk_and_mislabels() {
        let gbk = b"\xc4\xe3\xba\xc3";
        assert_eq!(decode_text(gbk, Some("gb2312"), None).0, "你好");
        assert_eq!(decode_text(gbk, None, None).0, "你好");
        // Labelled UTF-8 but GBK.
        let (t, d) = decode_text(gbk, Some("utf-8"), None);
        assert_eq!(t, "你好");
        assert!(d.is_some_and(|d| d.starts_with("charset-mismatch")));
        // Labelled GBK but UTF-8.
        let (t, _) = decode_text("你好".as_bytes(), Some("gbk"), None);
        assert_eq!(t, "你好");
        // Latin-1 stays Latin-1.
        assert_eq!(
            decode_text(b"caf\xe9 au lait", Some("iso-8859-1"), None).0,
            "café au lait"
        );
        assert_eq!(
            decode_text(b"caf\xe9 au lait", None, None).0,
            "café au lait"
        );
        // ISO-2022-JP is all ASCII bytes but not ASCII text.
        let jis = b"\x1b$B$3$s$K$A$O\x1b(B";
        assert_eq!(decode_text(jis, Some("iso-2022-jp"), None).0, "こんにちは");
        assert_eq!(guess(b"M\xfcller", None, None).0, "Müller");
        let (t, d) = decode_text(b"\xc4\xe3", Some("x-foo"), None);
        assert_eq!(t, "你");
        assert!(d.is_some_and(|d| d.starts_with("unknown-charset: x-foo")));
    }
}
