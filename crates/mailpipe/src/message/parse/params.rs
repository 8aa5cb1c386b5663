//! Content-Type and Content-Disposition values: `token; name=value; ...` with
//! quoted strings, RFC 2231 continuations (`name*0=`, `name*1*=`) and charsets
//! (`name*=gb2312''%C4%E3`), and the RFC 2047 or raw 8-bit filenames that
//! mailers write instead (`name="=?GBK?B?...?="`).

use crate::message::decode::charset as decode;
use crate::message::decode::{hex_pair, HeaderDecoder};

/// A parsed `value; params` header.
#[derive(Debug, Default, Clone)]
pub struct ParamValue {
    /// The main value, lowercased (`multipart/mixed`, `attachment`).
    pub value: String,
    /// Parameters in order, names lowercased, values decoded.
    pub params: Vec<(String, String)>,
}

impl ParamValue {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct RawParam<'a> {
    name: String,
    section: Option<u32>,
    extended: bool,
    value: &'a [u8],
    quoted: bool,
}

/// Splits `raw` (an unfolded header value) into the main value and raw
/// parameters. Semicolons inside quoted strings do not split.
fn split(raw: &[u8]) -> (String, Vec<RawParam<'_>>) {
    let mut i = 0;
    let main_end = raw.iter().position(|&b| b == b';').unwrap_or(raw.len());
    let value = String::from_utf8_lossy(&raw[..main_end]);
    let value: String = value
        .split('(')
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches('"')
        .to_ascii_lowercase();
    i += main_end;
    let mut params = Vec::new();
    while i < raw.len() {
        // At a ';' (or garbage); skip it and whitespace.
        i += 1;
        while i < raw.len() && matches!(raw[i], b' ' | b'\t' | b'\r' | b'\n' | b';') {
            i += 1;
        }
        let name_start = i;
        while i < raw.len() && !matches!(raw[i], b'=' | b';') {
            i += 1;
        }
        let name_raw = String::from_utf8_lossy(&raw[name_start..i])
            .trim()
            .to_ascii_lowercase();
        if i >= raw.len() || raw[i] == b';' {
            continue;
        }
        i += 1; // '='
        while i < raw.len() && matches!(raw[i], b' ' | b'\t') {
            i += 1;
        }
        let (value, quoted);
        if raw.get(i) == Some(&b'"') {
            let start = i + 1;
            let mut j = start;
            while j < raw.len() && raw[j] != b'"' {
                if raw[j] == b'\\' {
                    j += 1;
                }
                j += 1;
            }
            let end = j.min(raw.len());
            value = &raw[start..end];
            quoted = true;
            i = end + 1;
            while i < raw.len() && raw[i] != b';' {
                i += 1;
            }
        } else {
            let start = i;
            while i < raw.len() && raw[i] != b';' {
                i += 1;
            }
            let mut v = raw[start..i].trim_ascii();
            // `charset=utf-8 (comment)`: a comment is not part of a token.
            if let Some(c) = memchr::memmem::find(v, b" (") {
                v = v[..c].trim_ascii();
            }
            value = v;
            quoted = false;
        }
        if name_raw.is_empty() {
            continue;
        }
        let (name, section, extended) = parse_name(&name_raw);
        params.push(RawParam {
            name,
            section,
            extended,
            value,
            quoted,
        });
    }
    (value, params)
}

/// `filename*1*` -> (`filename`, Some(1), true).
fn parse_name(name: &str) -> (String, Option<u32>, bool) {
    let (base, extended) = match name.strip_suffix('*') {
        Some(b) => (b, true),
        None => (name, false),
    };
    if let Some((head, number)) = base.rsplit_once('*') {
        if let Ok(n) = number.parse::<u32>() {
            return (head.to_string(), Some(n), extended);
        }
    }
    (base.to_string(), None, extended)
}

fn unquote(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if value[i] == b'\\' && i + 1 < value.len() {
            i += 1;
        }
        out.push(value[i]);
        i += 1;
    }
    out
}

fn percent_decode(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if value[i] == b'%' {
            if let Some(v) = value.get(i + 1..i + 3).and_then(hex_pair) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(value[i]);
        i += 1;
    }
    out
}

/// Parses a Content-Type or Content-Disposition value.
pub fn parse(raw: &[u8], decoder: &mut HeaderDecoder<'_>) -> ParamValue {
    let (value, raw_params) = split(raw);
    let mut params: Vec<(String, String)> = Vec::new();
    let mut done: Vec<&str> = Vec::new();
    for p in &raw_params {
        if done.contains(&p.name.as_str()) {
            continue;
        }
        if p.section.is_none() && !p.extended {
            // A plain parameter loses to an RFC 2231 one of the same name.
            if raw_params
                .iter()
                .any(|q| q.name == p.name && (q.extended || q.section.is_some()))
            {
                continue;
            }
            let bytes = if p.quoted {
                unquote(p.value)
            } else {
                p.value.to_vec()
            };
            params.push((p.name.clone(), decoder.decode(&bytes)));
            done.push(&p.name);
            continue;
        }
        // RFC 2231: gather the sections of this name, in section order.
        let mut sections: Vec<&RawParam<'_>> = raw_params
            .iter()
            .filter(|q| q.name == p.name && (q.extended || q.section.is_some()))
            .collect();
        sections.sort_by_key(|q| q.section.unwrap_or(0));
        let mut charset: Option<String> = None;
        let mut bytes = Vec::new();
        for (k, s) in sections.iter().enumerate() {
            let mut v = if s.quoted {
                unquote(s.value)
            } else {
                s.value.to_vec()
            };
            if s.extended {
                if k == 0 {
                    // charset'language'value
                    let mut parts = v.splitn(3, |&b| b == b'\'');
                    let first = parts.next().unwrap_or(&[]).to_vec();
                    let lang = parts.next();
                    if let (Some(_), Some(rest)) = (lang, parts.next()) {
                        charset = Some(String::from_utf8_lossy(&first).into_owned());
                        v = rest.to_vec();
                    }
                }
                bytes.extend_from_slice(&percent_decode(&v));
            } else {
                bytes.extend_from_slice(&v);
            }
        }
        let text = match charset.as_deref().filter(|c| !c.is_empty()) {
            Some(label) => {
                let (text, defect) = decode::decode_text(&bytes, Some(label), decoder.hint);
                if let Some(d) = defect {
                    decoder.defects.push(format!("parameter {d}"));
                }
                text.into_owned()
            }
            None => decoder.decode(&bytes),
        };
        params.push((p.name.clone(), text));
        done.push(&p.name);
    }
    ParamValue { value, params }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(raw: &str) -> ParamValue {
        let mut defects = Vec::new();
        let mut d = HeaderDecoder {
            hint: None,
            defects: &mut defects,
        };
        parse(raw.as_bytes(), &mut d)
    }

    #[test]
    fn simple_and_quoted() {
        let v = p("Multipart/Mixed; boundary=\"a;b\\\"c\"; charset=utf-8 (comment)");
        assert_eq!(v.value, "multipart/mixed");
        assert_eq!(v.get("boundary"), Some("a;b\"c"));
        assert_eq!(v.get("charset"), Some("utf-8"));
    }

    #[test]
    fn rfc2231_continuations_and_charset() {
        let v =
            p("attachment; filename*0*=gb2312''%C4%E3; filename*1*=%BA%C3; filename*2=\".txt\"");
        assert_eq!(v.get("filename"), Some("你好.txt"));
        let v = p("attachment; filename*=UTF-8''%E4%B8%AD%E6%96%87.pdf; filename=\"fallback.pdf\"");
        assert_eq!(v.get("filename"), Some("中文.pdf"));
        let v = p("attachment; filename*1=\"b.txt\"; filename*0=\"a\"");
        assert_eq!(v.get("filename"), Some("ab.txt"));
    }

    #[test]
    fn rfc2047_and_raw_filenames() {
        let v = p("attachment; filename=\"=?GBK?B?xOO6wy50eHQ=?=\"");
        assert_eq!(v.get("filename"), Some("你好.txt"));
        let mut defects = Vec::new();
        let mut d = HeaderDecoder {
            hint: None,
            defects: &mut defects,
        };
        let v = parse(b"attachment; filename=\"\xc4\xe3\xba\xc3.doc\"", &mut d);
        assert_eq!(v.get("filename"), Some("你好.doc"));
    }
}
