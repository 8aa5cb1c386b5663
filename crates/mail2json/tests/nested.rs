//! Schema 2 through the binary, as `mail2json | jq` would check it: RFC 8621's
//! body model (a list footer is text, not an attachment) and attached
//! messages with their own record (digests, forwards, base64 and
//! quoted-printable message/rfc822, the depth bound, `--extract` of inner
//! attachments). Real messages from tests/fixtures/mail (SOURCES.md).

use std::path::Path;

use serde_json::Value;

mod binary;
use binary::{fixture, record, run};

fn file(name: &str) -> Value {
    let path = fixture(name);
    record(&[path.to_str().expect("UTF-8 path")], b"")
}

fn types(attachments: &Value) -> Vec<&str> {
    attachments
        .as_array()
        .expect("attachments is a list")
        .iter()
        .map(|a| a["content_type"].as_str().expect("content_type"))
        .collect()
}

#[test]
fn mailman_footer_is_in_text_and_not_an_attachment() {
    let r = file("notmuch-mailman-footer.eml");
    assert_eq!(r["schema"], 2);
    let text = r["text"].as_str().expect("text");
    assert!(
        text.starts_with("> See the patch just posted here."),
        "{text}"
    );
    assert!(text.contains("-- Lars\n"), "{text}");
    assert!(
        text.ends_with(
            "_______________________________________________\nnotmuch mailing list\n\
             notmuch@notmuchmail.org\nhttp://notmuchmail.org/mailman/listinfo/notmuch\n"
        ),
        "{text}"
    );
    // The signature is the only attachment; no text part is.
    assert_eq!(types(&r["attachments"]), ["application/pgp-signature"]);
    assert_eq!(r["html"], Value::Null);
}

#[test]
fn digest_lists_the_subjects_of_its_messages() {
    let r = file("mime4j-multi-digest.msg");
    let subjects: Vec<&str> = r["attachments"]
        .as_array()
        .expect("list")
        .iter()
        .map(|a| a["message"]["subject"].as_str().expect("inner subject"))
        .collect();
    assert_eq!(subjects, ["embedded message 1", "embedded message 2"]);
    assert_eq!(
        types(&r["attachments"]),
        ["message/rfc822", "message/rfc822"]
    );
    let first = &r["attachments"][0]["message"];
    assert_eq!(first["from"][0]["address"], "noone@nowhere.org");
    assert_eq!(
        first["text"],
        "This is implicitly-typed ASCII text.\nIt does NOT end with a linebreak."
    );
    // An inner record has no schema, source or parts of its own.
    assert!(first.get("schema").is_none() && first.get("source").is_none());
    assert_eq!(r["text"], Value::Null);
}

#[test]
fn base64_encoded_message_is_parsed() {
    let r = file("mime4j-base64-rfc822.msg");
    assert_eq!(types(&r["attachments"]), ["message/rfc822"]);
    let inner = &r["attachments"][0]["message"];
    assert_eq!(inner["text"], "Text body\n\n");
    assert_eq!(inner["attachments"], serde_json::json!([]));
    assert_eq!(inner["defects"], serde_json::json!([]));
}

#[test]
fn forwarded_message_and_its_attachment_are_extracted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("out");
    let path = fixture("webklex-embedded-email.eml");
    let r = record(
        &[
            "--extract",
            out_dir.to_str().expect("UTF-8"),
            path.to_str().expect("UTF-8"),
        ],
        b"",
    );
    assert_eq!(r["text"], "email that contains embedded message");
    let fwd = &r["attachments"][0];
    assert_eq!(fwd["filename"], "demo.eml");
    let inner = &fwd["message"];
    assert_eq!(inner["subject"], "demo");
    assert_eq!(inner["from"][0]["address"], "demo-from@cerstor.cz");
    assert_eq!(inner["text"], "demo text");
    let file = &inner["attachments"][0];
    assert_eq!(file["filename"], "testfile.txt");
    let written = Path::new(file["path"].as_str().expect("inner path"));
    assert_eq!(written, out_dir.join("testfile.txt"));
    assert_eq!(
        std::fs::read(written).expect("extracted"),
        b" this is content of test file"
    );
    assert!(out_dir.join("demo.eml").is_file());
}

/// A message that forwards one whose attachment has `name` as file name.
fn forward_with_inner_file(name: &str) -> Vec<u8> {
    format!(
        "From: a@example.org\nSubject: fwd\nContent-Type: multipart/mixed; boundary=o\n\n\
         --o\n\nsee attached\n--o\nContent-Type: message/rfc822\n\n\
         From: b@example.org\nSubject: inner\nContent-Type: multipart/mixed; boundary=i\n\n\
         --i\n\nhello\n--i\nContent-Type: application/octet-stream\n\
         Content-Disposition: attachment; filename=\"{name}\"\n\nPAYLOAD\n--i--\n--o--\n"
    )
    .into_bytes()
}

#[test]
fn hostile_inner_file_names_stay_inside_the_extract_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("a").join("out");
    let mut input = Vec::new();
    for name in ["../../evil.sh", "/etc/passwd", "..\\\\..\\\\win.ini", ".."] {
        input.extend_from_slice(b"From x@example.org Mon Nov 23 11:50:01 2026\n");
        input.extend_from_slice(&forward_with_inner_file(name));
        input.push(b'\n');
    }
    let out = run(
        &["--extract", out_dir.to_str().expect("UTF-8"), "-"],
        &input,
    );
    assert_eq!(out.status.code(), Some(0));
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .expect("out dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".eml"))
        .collect();
    names.sort();
    assert_eq!(names, ["attachment.bin", "evil.sh", "passwd", "win.ini"]);
    // Nothing beside the extract directory, nothing in the tempdir root.
    let beside: Vec<_> = std::fs::read_dir(dir.path().join("a"))
        .expect("parent")
        .collect();
    assert_eq!(beside.len(), 1);
    assert_eq!(std::fs::read_dir(dir.path()).expect("root").count(), 1);
}

/// `levels` messages each attached to the one around it, the attachment
/// encoded in turn as 7bit, base64 and quoted-printable.
fn nested(levels: usize) -> Vec<u8> {
    let mut msg = b"From: core@example.org\nSubject: level 0\n\ninnermost\n".to_vec();
    for level in 1..=levels {
        let (cte, body) = match level % 3 {
            0 => ("7bit", String::from_utf8(msg).expect("ASCII")),
            1 => ("base64", base64(&msg)),
            _ => ("quoted-printable", quoted_printable(&msg)),
        };
        msg = format!(
            "From: l{level}@example.org\nSubject: level {level}\n\
             Content-Type: multipart/mixed; boundary=b{level}\n\n--b{level}\n\n\
             text {level}\n--b{level}\nContent-Type: message/rfc822\n\
             Content-Transfer-Encoding: {cte}\n\n{body}\n--b{level}--\n"
        )
        .into_bytes();
    }
    msg
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for (i, c) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            s.push('\n');
        }
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                s.push(A[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn quoted_printable(data: &[u8]) -> String {
    data.iter()
        .map(|&b| match b {
            b'=' => "=3D".to_string(),
            b'\n' => "\n".to_string(),
            _ => (b as char).to_string(),
        })
        .collect()
}

#[test]
fn nesting_is_bounded_with_a_defect_and_every_encoding_parses() {
    let r = record(&["-"], &nested(12));
    assert_eq!(r["subject"], "level 12");
    let mut inner_most = &r;
    let mut seen = Vec::new();
    while let Some(inner) = inner_most["attachments"][0].get("message") {
        inner_most = inner;
        seen.push(inner_most["subject"].as_str().expect("subject").to_string());
        assert_eq!(
            inner_most["text"].as_str().map(str::trim),
            Some(format!("text {}", 12 - seen.len()).as_str())
        );
    }
    // Eight levels below the message, each encoding among them.
    assert_eq!(seen.len(), 8, "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("level 4"));
    let defects = inner_most["defects"].as_array().expect("defects");
    assert!(
        defects
            .iter()
            .any(|d| d == "nested-message-too-deep: not parsed beyond 8 levels"),
        "{defects:?}"
    );
    // Cut, not dropped: the unparsed message is still an attachment.
    assert_eq!(
        inner_most["attachments"][0]["content_type"],
        "message/rfc822"
    );

    // Within the bound nothing is cut.
    let r = record(&["-"], &nested(8));
    let mut inner_most = &r;
    let mut depth = 0;
    while let Some(inner) = inner_most["attachments"][0].get("message") {
        inner_most = inner;
        depth += 1;
        assert_eq!(
            inner_most["defects"],
            serde_json::json!([]),
            "level {depth}"
        );
    }
    assert_eq!(depth, 8);
    assert_eq!(inner_most["text"], "innermost\n");
}
