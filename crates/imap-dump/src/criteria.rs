//! `--search` criteria with non-ASCII text. IMAP atoms and quoted strings are
//! 7-bit (RFC 3501 §4), so `SUBJECT 周报` is refused ("8bit data in atom").
//! We say `CHARSET UTF-8` (unless the user named a charset) and send each
//! non-ASCII word or quoted string as a literal. The imap crate writes a
//! command in one piece and cannot wait for a `+` continuation, so literals
//! are non-synchronising (`{N+}`, RFC 7888) when the server advertises
//! LITERAL+ (or LITERAL- and the literal is at most 4096 bytes); otherwise
//! the text goes as a quoted string holding UTF-8, which Dovecot and other
//! UTF8=ACCEPT-era servers accept under `CHARSET UTF-8`.

/// How the server lets us send a literal without waiting for `+`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Literals {
    /// LITERAL+: any size.
    Plus,
    /// LITERAL-: at most 4096 bytes.
    Minus,
    /// Neither: quoted strings with UTF-8 inside.
    None,
}

const LITERAL_MINUS_MAX: usize = 4096;

/// Whether `criteria` need rewriting at all.
pub fn needs_encoding(criteria: &str) -> bool {
    !criteria.is_ascii()
}

/// `criteria` as they go on the wire: unchanged if ASCII, else with
/// `CHARSET UTF-8` in front (unless given) and each non-ASCII word or quoted
/// string as a literal (or a quoted string, see [`Literals`]).
pub fn encode(criteria: &str, literals: Literals) -> String {
    if !needs_encoding(criteria) {
        return criteria.to_string();
    }
    let mut out = String::with_capacity(criteria.len() + 32);
    let first = criteria.split_whitespace().next().unwrap_or_default();
    if !first.eq_ignore_ascii_case("CHARSET") {
        out.push_str("CHARSET UTF-8 ");
    }
    let mut rest = criteria;
    while let Some(c) = rest.chars().next() {
        let (token, text, after) = match c {
            '"' => {
                let (text, len) = quoted(rest);
                (&rest[..len], text, &rest[len..])
            }
            ' ' | '\t' | '(' | ')' => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
                continue;
            }
            _ => {
                let len = rest.find([' ', '\t', '(', ')', '"']).unwrap_or(rest.len());
                (&rest[..len], rest[..len].to_string(), &rest[len..])
            }
        };
        if token.is_ascii() {
            out.push_str(token);
        } else {
            push_string(&mut out, &text, literals);
        }
        rest = after;
    }
    out
}

/// The text of the quoted string at the start of `s` (which starts with `"`)
/// and its length in `s`, up to the closing quote or the end of `s`.
fn quoted(s: &str) -> (String, usize) {
    let mut text = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (text, i + 1),
            '\\' => match chars.next() {
                Some((_, escaped)) => text.push(escaped),
                None => return (text, s.len()),
            },
            _ => text.push(c),
        }
    }
    (text, s.len())
}

fn push_string(out: &mut String, text: &str, literals: Literals) {
    let literal = match literals {
        Literals::Plus => true,
        Literals::Minus => text.len() <= LITERAL_MINUS_MAX,
        Literals::None => false,
    };
    if literal {
        out.push_str(&format!("{{{}+}}\r\n{text}", text.len()));
    } else {
        out.push('"');
        for c in text.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_criteria_are_unchanged() {
        let c = r#"SINCE 1-Jan-2026 FROM "Bob \"B\" Smith""#;
        assert_eq!(encode(c, Literals::Plus), c);
    }

    #[test]
    fn non_ascii_words_become_literals_under_charset_utf8() {
        assert_eq!(
            encode("SUBJECT 周报", Literals::Plus),
            "CHARSET UTF-8 SUBJECT {6+}\r\n周报"
        );
        assert_eq!(
            encode(r#"OR (SUBJECT "周 报") FROM bob"#, Literals::Plus),
            "CHARSET UTF-8 OR (SUBJECT {7+}\r\n周 报) FROM bob"
        );
        assert_eq!(
            encode(r#"charset utf-8 SUBJECT "a\"é""#, Literals::Plus),
            "charset utf-8 SUBJECT {4+}\r\na\"é"
        );
    }

    #[test]
    fn without_literal_plus_quoted_strings_carry_utf8() {
        assert_eq!(
            encode(r#"SUBJECT 周报 BODY "a\\\"ü""#, Literals::None),
            r#"CHARSET UTF-8 SUBJECT "周报" BODY "a\\\"ü""#
        );
        let long = "ü".repeat(3000);
        let encoded = encode(&format!("BODY {long} SUBJECT ü"), Literals::Minus);
        assert_eq!(
            encoded,
            format!("CHARSET UTF-8 BODY \"{long}\" SUBJECT {{2+}}\r\nü")
        );
    }

    #[test]
    fn an_unclosed_quote_takes_the_rest() {
        assert_eq!(
            encode("SUBJECT \"周报", Literals::Plus),
            "CHARSET UTF-8 SUBJECT {6+}\r\n周报"
        );
    }
}
