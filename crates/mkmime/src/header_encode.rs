//! Header fields as they go on the wire: RFC 2047 encoded-words for non-ASCII
//! text, RFC 2231 parameters for non-ASCII file names, folding at whitespace to
//! keep lines within 78 characters where the syntax allows, never past 998.
//!
//! lettre 0.11 encodes header text too, but it never folds address lists
//! (`To:` with fifty recipients is one 2,000-character line), lets words that
//! look like encoded-words through raw, and splits every non-ASCII file name
//! into `filename*0*=` continuations; so mkmime writes its own header lines.

use lettre::message::Mailbox;

/// Where folding aims (RFC 5322 2.1.1 "SHOULD be no more than 78").
pub const SOFT_LIMIT: usize = 78;
/// The hard limit on a line, without its CRLF.
pub const HARD_LIMIT: usize = 998;

const EW_PREFIX: &str = "=?utf-8?b?";
const EW_SUFFIX: &str = "?=";
/// RFC 2047 2: an encoded-word is at most 75 characters.
const EW_MAX: usize = 75;

/// One header field being written: `Name:` followed by tokens, each preceded
/// by whitespace where a fold may go.
pub struct HeaderLine {
    out: String,
    line_len: usize,
    /// True once the current line holds a token: folding before the first
    /// token would leave an empty line (or `Name:` alone).
    has_token: bool,
}

impl HeaderLine {
    pub fn new(name: &str) -> HeaderLine {
        HeaderLine {
            out: format!("{name}:"),
            line_len: name.len() + 1,
            has_token: false,
        }
    }

    /// Appends `token` after the whitespace `sep`; folds before `sep` when the
    /// token would carry the line past 78 characters.
    pub fn push(&mut self, sep: &str, token: &str) {
        // Whitespace too long for any line cannot go out as it is (998 is a
        // MUST); one space still separates the words (found by fuzzing).
        let sep = if !sep.is_empty() && sep.len() + token.len() >= HARD_LIMIT {
            " "
        } else {
            sep
        };
        if self.has_token && !sep.is_empty() && self.line_len + sep.len() + token.len() > SOFT_LIMIT
        {
            self.out.push_str("\r\n");
            self.line_len = 0;
        }
        self.out.push_str(sep);
        self.out.push_str(token);
        self.line_len += sep.len() + token.len();
        self.has_token = true;
    }

    /// Appends text that must stick to the previous token (a comma, `;`).
    pub fn push_tight(&mut self, text: &str) {
        self.out.push_str(text);
        self.line_len += text.len();
    }

    /// Room left on the current line before the soft limit.
    fn room(&self) -> usize {
        SOFT_LIMIT.saturating_sub(self.line_len)
    }

    /// Just the value, without `Name: ` and the final CRLF: what lettre's
    /// pre-encoded header values hold.
    pub fn into_value(self, name: &str) -> String {
        self.out.get(name.len() + 2..).unwrap_or("").to_string()
    }

    /// The finished field with its CRLF.
    pub fn finish(mut self) -> String {
        self.out.push_str("\r\n");
        self.out
    }
}

/// Splits `value` into (preceding whitespace, word) pairs. The value is already
/// trimmed, so the first pair has no whitespace.
fn words(value: &str) -> Vec<(&str, &str)> {
    let mut pairs = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let ws_end = rest
            .find(|c: char| c != ' ' && c != '\t')
            .unwrap_or(rest.len());
        let (ws, after) = rest.split_at(ws_end);
        let word_end = after.find([' ', '\t']).unwrap_or(after.len());
        let (word, tail) = after.split_at(word_end);
        if !word.is_empty() {
            pairs.push((ws, word));
        }
        rest = tail;
    }
    pairs
}

/// A word that cannot go on the wire as it is: non-ASCII, a control
/// character, text a reader would take for an encoded-word, or too long for
/// any line.
fn needs_encoding(name: &str, word: &str) -> bool {
    !word.bytes().all(|b| (0x21..0x7f).contains(&b))
        || (word.starts_with("=?") && word.ends_with("?="))
        || name.len() + 2 + word.len() > HARD_LIMIT
}

/// Writes `text` as one or more encoded-words; the first after `sep`, the rest
/// after a single space (readers drop whitespace between encoded-words, so
/// the text decodes exactly, spaces inside it included).
fn push_encoded(line: &mut HeaderLine, sep: &str, text: &str) {
    use base64::Engine as _;
    let overhead = EW_PREFIX.len() + EW_SUFFIX.len();
    let mut rest = text;
    let mut sep = if sep.is_empty() { " " } else { sep };
    while !rest.is_empty() {
        let mut room = line.room().saturating_sub(sep.len()).min(EW_MAX);
        // Less room than one 4-byte character needs: start a new line.
        if line.has_token && room < overhead + 8 {
            room = SOFT_LIMIT.saturating_sub(sep.len()).min(EW_MAX);
            line.out.push_str("\r\n");
            line.line_len = 0;
            line.has_token = false;
        }
        let max_bytes = (room.saturating_sub(overhead) / 4 * 3).max(4);
        let mut take = rest.len().min(max_bytes);
        while !rest.is_char_boundary(take) {
            take -= 1;
        }
        if take == 0 {
            // A character longer than the room: it must go anyway.
            take = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let (chunk, tail) = rest.split_at(take);
        let encoded = base64::engine::general_purpose::STANDARD.encode(chunk);
        line.push(sep, &format!("{EW_PREFIX}{encoded}{EW_SUFFIX}"));
        sep = " ";
        rest = tail;
    }
}

/// An unstructured field (Subject, Comments, X-anything): ASCII words stay
/// readable, runs of words that need it become encoded-words.
pub fn unstructured(name: &str, value: &str) -> String {
    let mut line = HeaderLine::new(name);
    let pairs = words(value);
    let mut i = 0;
    while i < pairs.len() {
        let (ws, word) = pairs[i];
        let sep = if i == 0 { " " } else { ws };
        if !needs_encoding(name, word) {
            line.push(sep, word);
            i += 1;
            continue;
        }
        // Encode this word together with the following ones that also need it,
        // whitespace between them included, so the spaces survive decoding.
        let start = word.as_ptr() as usize - value.as_ptr() as usize;
        let mut end = start + word.len();
        i += 1;
        while i < pairs.len() && needs_encoding(name, pairs[i].1) {
            end = pairs[i].1.as_ptr() as usize - value.as_ptr() as usize + pairs[i].1.len();
            i += 1;
        }
        push_encoded(&mut line, sep, &value[start..end]);
    }
    line.finish()
}

/// RFC 5322 atext: what a display name may use without quotes.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// Writes a display name: atoms when it can, a quoted-string for other
/// printable ASCII, encoded-words for the rest (never inside the address).
fn push_phrase(line: &mut HeaderLine, name: &str) {
    let atoms = name
        .split(' ')
        .all(|w| !w.is_empty() && w.chars().all(is_atext));
    if atoms && !(name.starts_with("=?") && name.contains("?=")) {
        for word in name.split(' ') {
            line.push(" ", word);
        }
        return;
    }
    let printable = name.bytes().all(|b| (0x20..0x7f).contains(&b));
    if printable && name.len() < SOFT_LIMIT {
        let mut quoted = String::with_capacity(name.len() + 2);
        quoted.push('"');
        for c in name.chars() {
            if c == '"' || c == '\\' {
                quoted.push('\\');
            }
            quoted.push(c);
        }
        quoted.push('"');
        line.push(" ", &quoted);
        return;
    }
    push_encoded(line, " ", name);
}

/// An address list field (From, To, Cc, Bcc, Reply-To, Sender), folded
/// between addresses and between a display name and its `<addr-spec>`.
pub fn address_list(name: &str, mailboxes: &[Mailbox]) -> String {
    let mut line = HeaderLine::new(name);
    for (i, mailbox) in mailboxes.iter().enumerate() {
        let display = mailbox.name.as_deref().map(str::trim).unwrap_or("");
        if display.is_empty() {
            line.push(" ", mailbox.email.as_ref());
        } else {
            push_phrase(&mut line, display);
            line.push(" ", &format!("<{}>", mailbox.email));
        }
        if i + 1 < mailboxes.len() {
            line.push_tight(",");
        }
    }
    line.finish()
}

/// A list of message identifiers (Message-ID, In-Reply-To, References), each
/// already `<...>` and ASCII.
pub fn id_list(name: &str, ids: &[String]) -> String {
    let mut line = HeaderLine::new(name);
    for id in ids {
        line.push(" ", id);
    }
    line.finish()
}

/// RFC 5987 attr-char: what an RFC 2231 extended value may carry unescaped.
fn is_attr_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b)
}

fn percent_encode(value: &str) -> Vec<String> {
    value
        .bytes()
        .map(|b| {
            if is_attr_char(b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Appends `; key=value` to a header with parameters: a quoted-string for
/// printable ASCII, RFC 2231 `key*=utf-8''...` otherwise, split into
/// `key*0*=`, `key*1*=` continuations only when it does not fit on a line.
pub fn push_param(line: &mut HeaderLine, key: &str, value: &str) {
    line.push_tight(";");
    let printable = value.bytes().all(|b| (0x20..0x7f).contains(&b));
    if printable {
        let mut quoted = format!("{key}=\"");
        for c in value.chars() {
            if c == '"' || c == '\\' {
                quoted.push('\\');
            }
            quoted.push(c);
        }
        quoted.push('"');
        if quoted.len() < SOFT_LIMIT {
            line.push(" ", &quoted);
            return;
        }
    }
    let pieces = percent_encode(value);
    let whole = format!("{key}*=utf-8''{}", pieces.concat());
    // +1 for the leading space of a folded line, +1 for a `;` that may follow.
    if whole.len() + 2 <= SOFT_LIMIT {
        line.push(" ", &whole);
        return;
    }
    let mut section = 0;
    let mut current = format!("{key}*0*=utf-8''");
    for piece in pieces {
        if current.len() + piece.len() + 2 > SOFT_LIMIT {
            line.push(" ", &current);
            line.push_tight(";");
            section += 1;
            current = format!("{key}*{section}*=");
        }
        current.push_str(&piece);
    }
    line.push(" ", &current);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn max_line(s: &str) -> usize {
        s.split("\r\n").map(str::len).max().unwrap_or(0)
    }

    #[test]
    fn long_whitespace_before_an_encoded_word_does_not_panic() {
        // Found by fuzz/fuzz_targets/mkmime_input.rs: a run of spaces longer
        // than a line before a word that needs encoding, after a full line.
        let value = format!("<a@{}数据", " ".repeat(300));
        let field = unstructured("X-Reply", &value);
        assert!(field.starts_with("X-Reply: <a@"), "{field}");
        assert!(field.ends_with("?=\r\n"), "{field}");
    }

    #[test]
    fn whitespace_longer_than_a_line_is_shortened_to_one_space() {
        let value = format!("a{}b", " ".repeat(1200));
        let field = unstructured("X-A", &value);
        assert!(max_line(&field) <= HARD_LIMIT, "{field}");
        assert_eq!(field, "X-A: a b\r\n");
    }

    #[test]
    fn ascii_subject_is_left_alone() {
        assert_eq!(
            unstructured("Subject", "Hello world"),
            "Subject: Hello world\r\n"
        );
    }

    #[test]
    fn non_ascii_runs_become_one_encoded_sequence() {
        let out = unstructured("Subject", "SMTP 邮件测试 — done");
        assert!(out.starts_with("Subject: SMTP =?utf-8?b?"), "{out}");
        assert!(out.ends_with("?= done\r\n"), "{out}");
        assert!(out.is_ascii());
    }

    #[test]
    fn long_subject_folds_within_78() {
        let subject = format!(
            "SMTP 邮件测试 — {}",
            "a long subject that needs folding ".repeat(6)
        );
        let out = unstructured("Subject", subject.trim());
        assert!(max_line(&out) <= SOFT_LIMIT, "{out}");
        assert!(out.contains("\r\n "));
    }

    #[test]
    fn long_chinese_text_splits_into_several_encoded_words() {
        let out = unstructured("Subject", &"邮件".repeat(60));
        assert!(max_line(&out) <= SOFT_LIMIT, "{out}");
        assert!(out.matches("=?utf-8?b?").count() > 3);
    }

    #[test]
    fn encoded_word_lookalike_is_encoded() {
        let out = unstructured("Subject", "=?utf-8?q?hi?=");
        assert!(!out.contains("=?utf-8?q?hi?="), "{out}");
    }

    #[test]
    fn giant_word_is_split_below_998() {
        let out = unstructured("X-Long", &"x".repeat(3000));
        assert!(max_line(&out) <= SOFT_LIMIT, "{out}");
    }

    #[test]
    fn address_list_folds_and_never_encodes_addr_spec() {
        let boxes: Vec<Mailbox> = (0..40)
            .map(|i| format!("张三 {i} <user{i}@example.org>").parse().unwrap())
            .collect();
        let out = address_list("To", &boxes);
        assert!(max_line(&out) <= SOFT_LIMIT, "{out}");
        for i in 0..40 {
            assert!(out.contains(&format!("<user{i}@example.org>")));
        }
        assert!(out.is_ascii());
    }

    #[test]
    fn display_names_atom_quoted_encoded() {
        let m = |s: &str| s.parse::<Mailbox>().unwrap();
        assert_eq!(
            address_list("From", &[m("Ann Lee <a@x.org>")]),
            "From: Ann Lee <a@x.org>\r\n"
        );
        assert_eq!(
            address_list("From", &[m("\"Lee, Ann\" <a@x.org>")]),
            "From: \"Lee, Ann\" <a@x.org>\r\n"
        );
        assert_eq!(
            address_list("From", &[m("李 <a@x.org>"), m("b@x.org")]),
            "From: =?utf-8?b?5p2O?= <a@x.org>, b@x.org\r\n"
        );
    }

    #[test]
    fn params_quoted_single_rfc2231_or_continued() {
        let mut line = HeaderLine::new("Content-Disposition");
        line.push(" ", "attachment");
        push_param(&mut line, "filename", "a \"b\".txt");
        assert_eq!(
            line.finish(),
            "Content-Disposition: attachment; filename=\"a \\\"b\\\".txt\"\r\n"
        );

        let mut line = HeaderLine::new("Content-Disposition");
        line.push(" ", "attachment");
        push_param(&mut line, "filename", "报告 2026.pdf");
        assert_eq!(
            line.finish(),
            "Content-Disposition: attachment;\r\n filename*=utf-8''%E6%8A%A5%E5%91%8A%202026.pdf\r\n"
        );

        let mut line = HeaderLine::new("Content-Disposition");
        line.push(" ", "attachment");
        push_param(&mut line, "filename", &"报告".repeat(20));
        let out = line.finish();
        assert!(out.contains(" filename*0*=utf-8''%E6"), "{out}");
        assert!(out.contains(";\r\n filename*1*=%"), "{out}");
        assert!(max_line(&out) <= SOFT_LIMIT, "{out}");
    }
}
