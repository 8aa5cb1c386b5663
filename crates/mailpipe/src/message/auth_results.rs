//! Who vouched for a message, as the header says it: `Authentication-Results`
//! (RFC 8601) and the signer of each `DKIM-Signature` (RFC 6376). Parsing
//! only: no DNS, no verification, and no judgement of which header to trust
//! (only the ones your own server added are worth anything; `authserv_id`
//! says who wrote each).
//!
//! Lenient with what servers really write: comments anywhere (dropped, even
//! with `;` inside), a missing authserv-id (Outlook starts with `spf=`),
//! missing `;` between results (a known method name starts a new result),
//! method versions (`dkim/1`), quoted values, keys that are not
//! `ptype.property` (Outlook's `action=none`, kept as properties), and the
//! `none` that means "no results".

use std::collections::BTreeMap;

use serde::Serialize;

/// Methods a result can start with; used to split results whose `;` is
/// missing. From the IANA registry, plus Microsoft's `compauth`.
const METHODS: [&str; 15] = [
    "arc",
    "auth",
    "bimi",
    "compauth",
    "dkim",
    "dkim-adsp",
    "dkim-atps",
    "dmarc",
    "domainkeys",
    "iprev",
    "rrvs",
    "sender-id",
    "smime",
    "spf",
    "vbr",
];

/// One `Authentication-Results` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthResults {
    /// The server that wrote it; `None` when the field starts with a result.
    pub authserv_id: Option<String>,
    pub results: Vec<AuthResult>,
}

/// One `method=result` with what follows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthResult {
    /// Lowercase, without its version.
    pub method: String,
    /// `1` of `dkim/1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Lowercase: `pass`, `fail`, `none`, `softfail`, ...
    pub result: String,
    pub reason: Option<String>,
    /// `ptype.property` (lowercase) to value: `{"header.d": "example.com"}`;
    /// other keys (`action`) as written, lowercase. The first of a repeated
    /// key wins.
    pub properties: BTreeMap<String, String>,
}

/// The signer of one `DKIM-Signature` field: its `d=`, `s=` and `a=` tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DkimSignature {
    pub d: Option<String>,
    pub s: Option<String>,
    pub a: Option<String>,
}

/// Parses one unfolded `Authentication-Results` value; irregularities are
/// appended to `defects`.
pub fn parse(value: &str, defects: &mut Vec<String>) -> AuthResults {
    let text = strip_comments(value);
    let mut segments = split_outside_quotes(&text, ';').into_iter();
    let mut out = AuthResults {
        authserv_id: None,
        results: Vec::new(),
    };
    let first = tokens(segments.next().unwrap_or_default());
    let mut first = first.as_slice();
    if let [Token::Word(id), rest @ ..] = first {
        if !matches!(rest.first(), Some(Token::Eq)) {
            out.authserv_id = Some(id.clone());
            first = rest;
            // An optional version number after the authserv-id.
            if let [Token::Word(v), rest @ ..] = first {
                if v.bytes().all(|b| b.is_ascii_digit()) && !matches!(rest.first(), Some(Token::Eq))
                {
                    first = rest;
                }
            }
            if !first.is_empty() {
                defects.push("auth-results-missing-semicolon".to_string());
            }
        }
    }
    results(first, &mut out.results, defects);
    for segment in segments {
        results(&tokens(segment), &mut out.results, defects);
    }
    out
}

/// The `d=`, `s=` and `a=` tags of one unfolded `DKIM-Signature` value.
pub fn dkim_signature(value: &str) -> DkimSignature {
    let mut sig = DkimSignature {
        d: None,
        s: None,
        a: None,
    };
    for tag in value.split(';') {
        let Some((name, v)) = tag.split_once('=') else {
            continue;
        };
        let v: String = v.chars().filter(|c| !c.is_whitespace()).collect();
        let slot = match name.trim() {
            "d" => &mut sig.d,
            "s" => &mut sig.s,
            "a" => &mut sig.a,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v);
        }
    }
    sig
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Eq,
}

/// The results of one `;`-separated segment (more than one when a `;` is
/// missing).
fn results(tokens: &[Token], out: &mut Vec<AuthResult>, defects: &mut Vec<String>) {
    let mut i = 0;
    let mut in_segment = 0;
    while i < tokens.len() {
        let Token::Word(key) = &tokens[i] else {
            i += 1;
            continue;
        };
        let value = match (tokens.get(i + 1), tokens.get(i + 2)) {
            (Some(Token::Eq), Some(Token::Word(v))) => {
                i += 3;
                Some(v.clone())
            }
            (Some(Token::Eq), _) => {
                i += 2;
                Some(String::new())
            }
            _ => {
                i += 1;
                None
            }
        };
        let key_lower = key.to_ascii_lowercase();
        let Some(value) = value else {
            // `none` (no results) or a stray word: nothing to record.
            continue;
        };
        let (method, version) = match key_lower.split_once('/') {
            Some((m, v)) => (m.trim().to_string(), Some(v.trim().to_string())),
            None => (key_lower.clone(), None),
        };
        let starts_result = in_segment == 0 || METHODS.contains(&method.as_str());
        if starts_result {
            if in_segment > 0 {
                defects.push("auth-results-missing-semicolon".to_string());
            }
            in_segment += 1;
            out.push(AuthResult {
                method,
                version,
                result: value.to_ascii_lowercase(),
                reason: None,
                properties: BTreeMap::new(),
            });
            continue;
        }
        let Some(current) = out.last_mut() else {
            continue;
        };
        if key_lower == "reason" {
            current.reason.get_or_insert(value);
        } else {
            current.properties.entry(key_lower).or_insert(value);
        }
    }
}

/// Words, quoted strings (unquoted) and `=`, split at whitespace.
fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut chars = text.chars();
    let flush = |word: &mut String, out: &mut Vec<Token>| {
        if !word.is_empty() {
            out.push(Token::Word(std::mem::take(word)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        _ => word.push(q),
                    }
                }
                // An empty quoted string is still a value.
                out.push(Token::Word(std::mem::take(&mut word)));
            }
            '=' => {
                flush(&mut word, &mut out);
                out.push(Token::Eq);
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    out
}

/// `text` without its (nested) comments, each replaced by a space; quoted
/// strings are kept as they are.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    let mut quoted = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted || depth > 0 => {
                let next = chars.next();
                if depth == 0 {
                    out.push(c);
                    out.extend(next);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push(' ');
                }
            }
            _ if depth > 0 => {}
            c => out.push(c),
        }
    }
    out
}

fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(value: &str) -> (AuthResults, Vec<String>) {
        let mut d = Vec::new();
        (parse(value, &mut d), d)
    }

    fn props(r: &AuthResult) -> Vec<(&str, &str)> {
        r.properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn rfc_8601_example() {
        // RFC 8601 appendix B.4, unfolded.
        let (a, d) = one("example.com; spf=pass smtp.mailfrom=example.net \
             header.from=example.net; sender-id=pass header.from=example.net");
        assert!(d.is_empty());
        assert_eq!(a.authserv_id.as_deref(), Some("example.com"));
        assert_eq!(a.results.len(), 2);
        assert_eq!(a.results[0].method, "spf");
        assert_eq!(a.results[0].result, "pass");
        assert_eq!(
            props(&a.results[0]),
            [
                ("header.from", "example.net"),
                ("smtp.mailfrom", "example.net")
            ]
        );
        assert_eq!(a.results[1].method, "sender-id");
    }

    #[test]
    fn comments_versions_reasons_quotes() {
        let (a, d) = one(
            "mail.example.org 1; dkim/1=PASS (2048-bit key; unprotected) \
             reason=\"signature ok\" header.d=example.com header.s=\"sel 1\"; \
             dmarc=fail (p=reject dis=none) header.from=example.com",
        );
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(a.authserv_id.as_deref(), Some("mail.example.org"));
        let dkim = &a.results[0];
        assert_eq!(
            (
                dkim.method.as_str(),
                dkim.version.as_deref(),
                dkim.result.as_str()
            ),
            ("dkim", Some("1"), "pass")
        );
        assert_eq!(dkim.reason.as_deref(), Some("signature ok"));
        assert_eq!(
            props(dkim),
            [("header.d", "example.com"), ("header.s", "sel 1")]
        );
        assert_eq!(a.results[1].result, "fail");
    }

    #[test]
    fn outlook_without_authserv_id_or_semicolons() {
        let (a, d) = one(
            "dkim=none (message not signed) header.d=none;dmarc=none action=none \
             header.from=example.com;",
        );
        assert!(d.is_empty());
        assert_eq!(a.authserv_id, None);
        assert_eq!(a.results.len(), 2);
        assert_eq!(
            props(&a.results[1]),
            [("action", "none"), ("header.from", "example.com")]
        );
        let (a, d) = one("spf=pass smtp.mailfrom=a.example dkim=pass header.d=a.example");
        assert_eq!(a.results.len(), 2);
        assert_eq!(d, ["auth-results-missing-semicolon"]);
    }

    #[test]
    fn none_and_garbage() {
        let (a, _) = one("example.org; none");
        assert_eq!(a.authserv_id.as_deref(), Some("example.org"));
        assert!(a.results.is_empty());
        for junk in ["", ";;;", "(((", "\"", "= = =", "a=\"", "x; =y; (z"] {
            one(junk);
        }
    }

    #[test]
    fn dkim_signature_tags() {
        let s = dkim_signature(
            "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=2024\n a;\r\n h=from:to; bh=x; b=AbC d",
        );
        assert_eq!(s.d.as_deref(), Some("example.com"));
        assert_eq!(s.s.as_deref(), Some("2024a"));
        assert_eq!(s.a.as_deref(), Some("rsa-sha256"));
    }
}
