//! Address lists (From, To, Cc, ...) to `{name, address}` pairs.
//!
//! The structure (quotes, comments, angle brackets, groups) is parsed on the
//! raw bytes first, and only then are display names decoded (RFC 2047,
//! raw 8-bit), so that a decoded comma or quote cannot split an address.
//! Groups are flattened into their members, as Python's `.addresses` does.
//! A comment is used as the name when there is no phrase (`a@b (Ann)`).

use serde::Serialize;

use crate::message::decode::HeaderDecoder;

/// One mailbox. `name` is null when the header has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: String,
}

#[derive(Debug)]
enum Token<'a> {
    /// An atom (or several joined by dots), with whether whitespace preceded it.
    Word(&'a [u8], bool),
    Quoted(Vec<u8>, bool),
    Comment(Vec<u8>),
    /// The contents of `<...>`.
    Angle(&'a [u8]),
    Comma,
    Colon,
    Semicolon,
}

fn tokenize(raw: &[u8]) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut space = false;
    while i < raw.len() {
        let b = raw[i];
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                space = true;
                i += 1;
                continue;
            }
            b'"' => {
                let mut text = Vec::new();
                i += 1;
                while i < raw.len() && raw[i] != b'"' {
                    if raw[i] == b'\\' && i + 1 < raw.len() {
                        i += 1;
                    }
                    text.push(raw[i]);
                    i += 1;
                }
                i += 1;
                tokens.push(Token::Quoted(text, space));
            }
            b'(' => {
                let mut depth = 0usize;
                let mut text = Vec::new();
                while i < raw.len() {
                    let c = raw[i];
                    if c == b'\\' && i + 1 < raw.len() {
                        text.push(raw[i + 1]);
                        i += 2;
                        continue;
                    }
                    if c == b'(' {
                        depth += 1;
                        if depth > 1 {
                            text.push(c);
                        }
                    } else if c == b')' {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                        text.push(c);
                    } else {
                        text.push(c);
                    }
                    i += 1;
                }
                tokens.push(Token::Comment(text));
            }
            b'<' => {
                let start = i + 1;
                let mut j = start;
                while j < raw.len() && raw[j] != b'>' {
                    j += 1;
                }
                tokens.push(Token::Angle(&raw[start..j]));
                i = j + 1;
            }
            b',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            b':' => {
                tokens.push(Token::Colon);
                i += 1;
            }
            b';' => {
                tokens.push(Token::Semicolon);
                i += 1;
            }
            b'>' => i += 1,
            _ => {
                let start = i;
                while i < raw.len() && !b" \t\r\n\"(<>,:;".contains(&raw[i]) {
                    i += 1;
                }
                tokens.push(Token::Word(&raw[start..i], space));
            }
        }
        space = false;
    }
    tokens
}

/// Parses an unfolded address-list header value.
pub fn parse_list(raw: &[u8], decoder: &mut HeaderDecoder<'_>) -> Vec<Mailbox> {
    let tokens = tokenize(raw);
    let mut out = Vec::new();
    let mut current: Vec<&Token<'_>> = Vec::new();
    for (k, t) in tokens.iter().enumerate() {
        match t {
            Token::Comma | Token::Semicolon => {
                finish(&mut current, decoder, &mut out);
            }
            // A colon before any angle address starts a group: the phrase so
            // far is the group's name, not a mailbox. `a@b:c` in an addr-spec
            // without angle brackets is kept as it is.
            Token::Colon => {
                let is_group = !current.iter().any(|t| matches!(t, Token::Angle(_)))
                    && (current
                        .iter()
                        .all(|t| !matches!(t, Token::Word(w, _) if w.contains(&b'@')))
                        || matches!(tokens.get(k + 1), Some(Token::Semicolon)));
                if is_group {
                    current.clear();
                } else {
                    current.push(t);
                }
            }
            _ => current.push(t),
        }
    }
    finish(&mut current, decoder, &mut out);
    out
}

fn finish(tokens: &mut Vec<&Token<'_>>, decoder: &mut HeaderDecoder<'_>, out: &mut Vec<Mailbox>) {
    if tokens.is_empty() {
        return;
    }
    let angle = tokens.iter().find_map(|t| match t {
        Token::Angle(a) => Some(*a),
        _ => None,
    });
    let comment = tokens.iter().find_map(|t| match t {
        Token::Comment(c) if !c.iter().all(u8::is_ascii_whitespace) => Some(c.clone()),
        _ => None,
    });
    let (name_bytes, address) = match angle {
        Some(a) => {
            let mut phrase = Vec::new();
            for t in tokens.iter().take_while(|t| !matches!(t, Token::Angle(_))) {
                let (bytes, space): (&[u8], bool) = match t {
                    Token::Word(w, s) => (w, *s),
                    Token::Quoted(q, s) => (q, *s),
                    Token::Colon => (b":", false),
                    _ => continue,
                };
                if !phrase.is_empty() && space {
                    phrase.push(b' ');
                }
                phrase.extend_from_slice(bytes);
            }
            let mut addr = clean_addr_spec(a);
            // `<junk user@host>`: the last word with an `@` is the address.
            if !addr.contains(&b'"') {
                if let Some(last) = addr.split(|&b| b == b' ').rfind(|w| w.contains(&b'@')) {
                    addr = last.to_vec();
                }
                addr.retain(|&b| b != b' ');
            }
            let addr = match addr.iter().rposition(|&b| b == b':') {
                // `<@route1,@route2:user@host>`: the obsolete route goes.
                Some(i) if addr.starts_with(b"@") => addr[i + 1..].to_vec(),
                _ => addr,
            };
            (
                if phrase.is_empty() {
                    comment
                } else {
                    Some(phrase)
                },
                addr,
            )
        }
        None => {
            // `a@x b@y`: addresses without the comma between them.
            let words: Vec<&[u8]> = tokens
                .iter()
                .filter_map(|t| match t {
                    Token::Word(w, _) => Some(*w),
                    _ => None,
                })
                .collect();
            if words.len() > 1
                && tokens.len() == words.len()
                && words.iter().all(|w| w.contains(&b'@'))
            {
                for w in words {
                    out.push(Mailbox {
                        name: None,
                        address: decoder.decode(w),
                    });
                }
                tokens.clear();
                return;
            }
            // `Big Bug bb@bug.com`: words, then one address at the end.
            if words.len() > 1
                && tokens.len() == words.len()
                && words.last().is_some_and(|w| w.contains(&b'@'))
                && words[..words.len() - 1].iter().all(|w| !w.contains(&b'@'))
            {
                let name = words[..words.len() - 1].join(&b' ');
                let address = words.last().map(|w| decoder.decode(w)).unwrap_or_default();
                out.push(Mailbox {
                    name: Some(decoder.decode(&name)),
                    address,
                });
                tokens.clear();
                return;
            }
            let mut addr = Vec::new();
            for t in tokens.iter() {
                match t {
                    Token::Word(w, _) => addr.extend_from_slice(w),
                    Token::Quoted(q, _) => {
                        addr.push(b'"');
                        addr.extend_from_slice(q);
                        addr.push(b'"');
                    }
                    Token::Colon => addr.push(b':'),
                    _ => {}
                }
            }
            (comment, addr)
        }
    };
    tokens.clear();
    let name = name_bytes
        .map(|n| decoder.decode(&n).trim().to_string())
        .filter(|n| !n.is_empty());
    let address = decoder.decode(&address);
    let address = address
        .trim_matches(|c: char| c.is_whitespace() || c == ';')
        .to_string();
    if address.is_empty() {
        return;
    }
    out.push(Mailbox { name, address });
}

/// The inside of `<...>` without comments and whitespace; quoted local
/// parts keep their quotes (`"john doe"@x`), as in the message.
fn clean_addr_spec(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    let mut depth = 0usize;
    let mut quoted = false;
    while i < raw.len() {
        let b = raw[i];
        if quoted {
            out.push(b);
            if b == b'\\' && i + 1 < raw.len() {
                out.push(raw[i + 1]);
                i += 1;
            } else if b == b'"' {
                quoted = false;
            }
        } else if depth > 0 {
            match b {
                b'(' => depth += 1,
                b')' => depth -= 1,
                b'\\' => i += 1,
                _ => {}
            }
        } else {
            match b {
                b'(' => depth = 1,
                b'"' => {
                    quoted = true;
                    out.push(b);
                }
                b' ' | b'\t' | b'\r' | b'\n' => {
                    if !out.is_empty() && out.last() != Some(&b' ') {
                        out.push(b' ');
                    }
                }
                _ => out.push(b),
            }
        }
        i += 1;
    }
    while out.last() == Some(&b' ') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Vec<(Option<String>, String)> {
        let mut defects = Vec::new();
        let mut d = HeaderDecoder {
            hint: None,
            defects: &mut defects,
        };
        parse_list(raw, &mut d)
            .into_iter()
            .map(|m| (m.name, m.address))
            .collect()
    }

    fn mb(name: Option<&str>, addr: &str) -> (Option<String>, String) {
        (name.map(str::to_string), addr.to_string())
    }

    #[test]
    fn forms() {
        assert_eq!(
            parse(b"\"Doe, John\" <j@x.org>, ann@y.org (Ann B), Bob <b@z>"),
            [
                mb(Some("Doe, John"), "j@x.org"),
                mb(Some("Ann B"), "ann@y.org"),
                mb(Some("Bob"), "b@z")
            ]
        );
        assert_eq!(parse(b"undisclosed-recipients:;"), []);
        assert_eq!(
            parse(b"team: a@x, b@y;, c@z"),
            [mb(None, "a@x"), mb(None, "b@y"), mb(None, "c@z")]
        );
        assert_eq!(parse(b"<@route:a@b>"), [mb(None, "a@b")]);
        assert_eq!(
            parse(b"Pete(A wonderful \\) chap) <pete(his account)@silly.test(his host)>"),
            [mb(Some("Pete"), "pete@silly.test")]
        );
        assert_eq!(parse(b"<\"big bug\"@x>"), [mb(None, "\"big bug\"@x")]);
        assert_eq!(parse(b"a@x b@y"), [mb(None, "a@x"), mb(None, "b@y")]);
        assert_eq!(
            parse(b"Big Bug bb@bug.com"),
            [mb(Some("Big Bug"), "bb@bug.com")]
        );
        assert_eq!(
            parse(b"\"p@\" <dom.tld postmaster@dom.tld>"),
            [mb(Some("p@"), "postmaster@dom.tld")]
        );
    }

    #[test]
    fn encoded_names() {
        // A decoded comma must not split.
        assert_eq!(
            parse(b"=?utf-8?q?Doe=2C_J?= <j@x>"),
            [mb(Some("Doe, J"), "j@x")]
        );
        assert_eq!(
            parse(b"\"=?GBK?B?xOO6w8PD?=\" <a@qq.com>"),
            [mb(Some("你好妹"), "a@qq.com")]
        );
        assert_eq!(
            parse(b"\xd5\xc5\xc8\xfd <z@x.cn>"),
            [mb(Some("张三"), "z@x.cn")]
        );
    }
}
