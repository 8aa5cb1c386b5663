//! Which parts of a message are its body and which are attachments: RFC 8621
//! (JMAP Mail) section 4.1.4's `parseStructure`, over the parsed [`Part`] tree.
//!
//! The algorithm is followed step by step, so that a reader of the RFC can
//! check it; the choices it leaves open are made here:
//!
//! - a `multipart/*` part that could not be split (no boundary, boundary not
//!   found, nesting limit) has no sub-parts; it is treated as a leaf (so it
//!   becomes an attachment) rather than as an empty multipart that would
//!   vanish with its bytes;
//! - "the part has a name" is a `filename` parameter of Content-Disposition
//!   or a `name` parameter of Content-Type, as RFC 8621's `name` property;
//! - types are compared lowercased, without parameters.
//!
//! message/rfc822 and message/global parts are leaves here (the RFC: "none
//! of these parts include subParts"); their inner message has its own body.

use super::decode::HeaderDecoder;
use super::parse::{params, Part};

/// RFC 8621's `textBody`, `htmlBody` and `attachments`, each in tree order.
#[derive(Debug, Default)]
pub struct BodyParts<'p, 'a> {
    pub text: Vec<&'p Part<'a>>,
    pub html: Vec<&'p Part<'a>>,
    pub attachments: Vec<&'p Part<'a>>,
}

impl<'p, 'a> BodyParts<'p, 'a> {
    /// `parseStructure([bodyStructure], "mixed", false, ...)`.
    pub fn of(top: &'p Part<'a>) -> BodyParts<'p, 'a> {
        let mut text = Vec::new();
        let mut html = Vec::new();
        let mut attachments = Vec::new();
        parse_structure(
            std::slice::from_ref(top),
            "mixed",
            false,
            Some(&mut html),
            Some(&mut text),
            &mut attachments,
        );
        BodyParts {
            text,
            html,
            attachments,
        }
    }

    /// Image, audio and video parts shown inline in both bodies: the RFC
    /// lists them in `textBody` and `htmlBody` and so not in `attachments`.
    pub fn inline_media(&self) -> Vec<&'p Part<'a>> {
        let mut media: Vec<&'p Part<'a>> = Vec::new();
        for p in self.text.iter().chain(&self.html) {
            if is_inline_media_type(p.mime_type())
                && !self.attachments.iter().any(|a| std::ptr::eq(*a, *p))
                && !media.iter().any(|m| std::ptr::eq(*m, *p))
            {
                media.push(p);
            }
        }
        media
    }
}

/// `isInlineMediaType`.
pub fn is_inline_media_type(t: &str) -> bool {
    t.starts_with("image/") || t.starts_with("audio/") || t.starts_with("video/")
}

/// Whether Content-Disposition's value is `attachment`.
pub fn is_attachment(part: &Part<'_>) -> bool {
    part.header.first("content-disposition").is_some_and(|f| {
        let v = f.unfolded();
        let main = v.split(|&b| b == b';').next().unwrap_or(&[]);
        String::from_utf8_lossy(main)
            .trim()
            .eq_ignore_ascii_case("attachment")
    })
}

/// RFC 8621's `name` is present: Content-Disposition `filename` or
/// Content-Type `name`.
fn has_name(part: &Part<'_>) -> bool {
    if part.content_type.get("name").is_some() {
        return true;
    }
    let Some(f) = part.header.first("content-disposition") else {
        return false;
    };
    // Only presence matters here; the caller that shows the name records
    // the parameter's defects.
    let mut scratch = Vec::new();
    let mut decoder = HeaderDecoder {
        hint: None,
        defects: &mut scratch,
    };
    params::parse(&f.unfolded(), &mut decoder)
        .get("filename")
        .is_some()
}

/// `parseStructure`; `None` is the RFC's `null` list.
fn parse_structure<'p, 'a>(
    parts: &'p [Part<'a>],
    multipart_type: &str,
    in_alternative: bool,
    mut html_body: Option<&mut Vec<&'p Part<'a>>>,
    mut text_body: Option<&mut Vec<&'p Part<'a>>>,
    attachments: &mut Vec<&'p Part<'a>>,
) {
    // For multipartType == alternative.
    let text_length = text_body.as_ref().map(|b| b.len());
    let html_length = html_body.as_ref().map(|b| b.len());

    for (i, part) in parts.iter().enumerate() {
        let t = part.mime_type();
        let is_multipart = part.is_multipart();
        let is_inline = !is_attachment(part)
            && (t == "text/plain" || t == "text/html" || is_inline_media_type(t))
            && (i == 0
                || (multipart_type != "related" && (is_inline_media_type(t) || !has_name(part))));

        if is_multipart {
            let sub = t.split_once('/').map_or("", |(_, s)| s);
            parse_structure(
                &part.children,
                sub,
                in_alternative || sub == "alternative",
                html_body.as_deref_mut(),
                text_body.as_deref_mut(),
                attachments,
            );
        } else if is_inline {
            if multipart_type == "alternative" {
                match t {
                    "text/plain" => {
                        if let Some(b) = text_body.as_deref_mut() {
                            b.push(part);
                        }
                    }
                    "text/html" => {
                        if let Some(b) = html_body.as_deref_mut() {
                            b.push(part);
                        }
                    }
                    _ => attachments.push(part),
                }
                continue;
            } else if in_alternative {
                if t == "text/plain" {
                    html_body = None;
                }
                if t == "text/html" {
                    text_body = None;
                }
            }
            if let Some(b) = text_body.as_deref_mut() {
                b.push(part);
            }
            if let Some(b) = html_body.as_deref_mut() {
                b.push(part);
            }
            if (text_body.is_none() || html_body.is_none()) && is_inline_media_type(t) {
                attachments.push(part);
            }
        } else {
            attachments.push(part);
        }
    }

    if multipart_type == "alternative" {
        if let (Some(text), Some(html)) = (text_body, html_body) {
            // Found HTML part only.
            if text_length == Some(text.len()) && html_length != Some(html.len()) {
                let from = html_length.unwrap_or(0);
                text.extend_from_slice(&html[from..]);
            }
            // Found plaintext part only.
            if html_length == Some(html.len()) && text_length != Some(text.len()) {
                let from = text_length.unwrap_or(0);
                html.extend_from_slice(&text[from..]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::parse::Walker;

    fn types(list: &[&Part<'_>]) -> Vec<String> {
        list.iter()
            .map(|p| {
                let body = String::from_utf8_lossy(p.body);
                format!("{}:{}", p.mime_type(), body.trim())
            })
            .collect()
    }

    fn classify(msg: &[u8]) -> [Vec<String>; 3] {
        let mut defects = Vec::new();
        let top = Walker::new(&mut defects, false).parse(msg);
        let b = BodyParts::of(&top);
        [types(&b.text), types(&b.html), types(&b.attachments)]
    }

    #[test]
    fn list_footer_is_body() {
        let [text, html, att] = classify(
            b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nhello\n--b\n\
              Content-Type: text/plain\n\nfooter\n--b--\n",
        );
        assert_eq!(text, ["text/plain:hello", "text/plain:footer"]);
        assert_eq!(html, text);
        assert!(att.is_empty());
    }

    #[test]
    fn alternative_with_footer_and_related_image() {
        let [text, html, att] = classify(
            b"Content-Type: multipart/mixed; boundary=m\n\n--m\n\
              Content-Type: multipart/alternative; boundary=a\n\n--a\n\nplain\n--a\n\
              Content-Type: multipart/related; boundary=r\n\n--r\n\
              Content-Type: text/html\n\n<p>html</p>\n--r\n\
              Content-Type: image/png\nContent-ID: <i@x>\n\nPNG\n--r--\n--a--\n--m\n\
              Content-Type: text/plain\n\nfooter\n--m\n\
              Content-Type: application/pdf; name=a.pdf\n\nPDF\n--m--\n",
        );
        assert_eq!(text, ["text/plain:plain", "text/plain:footer"]);
        assert_eq!(html, ["text/html:<p>html</p>", "text/plain:footer"]);
        assert_eq!(att, ["image/png:PNG", "application/pdf:PDF"]);
    }

    #[test]
    fn html_only_alternative_fills_text_body() {
        let [text, html, att] = classify(
            b"Content-Type: multipart/alternative; boundary=a\n\n--a\n\
              Content-Type: text/html\n\n<b>x</b>\n--a--\n",
        );
        assert_eq!(text, ["text/html:<b>x</b>"]);
        assert_eq!(html, text);
        assert!(att.is_empty());
    }

    #[test]
    fn named_text_after_first_and_messages_are_attachments() {
        let [text, _, att] = classify(
            b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nbody\n--b\n\
              Content-Type: text/plain; name=notes.txt\n\nnotes\n--b\n\
              Content-Type: message/rfc822\n\nSubject: inner\n\ninner\n--b--\n",
        );
        assert_eq!(text, ["text/plain:body"]);
        assert_eq!(att.len(), 2);
        assert!(att[1].starts_with("message/rfc822:"));
    }

    #[test]
    fn image_in_mixed_is_in_both_bodies_and_listed_as_inline_media() {
        let msg = b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nbody\n--b\n\
              Content-Type: image/gif\n\nGIF\n--b--\n";
        let mut defects = Vec::new();
        let top = Walker::new(&mut defects, false).parse(msg);
        let b = BodyParts::of(&top);
        assert!(b.attachments.is_empty());
        assert_eq!(types(&b.inline_media()), ["image/gif:GIF"]);
    }
}
