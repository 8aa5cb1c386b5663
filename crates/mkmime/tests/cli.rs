//! mkmime end to end through its binary: exact bytes, exit codes and stderr,
//! and every kind of output read back by independent parsers, Python's
//! `email` package (policy.default, tests/check_mime.py), mailparse and the
//! shared message library (mailpipe::message).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::noise;
use mailpipe_e2e::Tool;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const SUBJECT: &str =
    "SMTP 邮件测试 — a long subject that needs folding, because it goes on past one line";
const EPOCH: &str = "1700000000";

fn mkmime(args: &[&str], stdin: &[u8]) -> Output {
    mkmime_env(args, stdin, &[("SOURCE_DATE_EPOCH", EPOCH)])
}

fn mkmime_env(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(Tool::Mkmime.path());
    cmd.args(args).env_remove("SOURCE_DATE_EPOCH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    mailpipe_e2e::run_with_stdin(&mut cmd, stdin)
}

/// Runs mkmime and insists that it succeeded.
fn ok(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let out = mkmime(args, stdin);
    assert!(
        out.status.success(),
        "mkmime {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs mkmime and insists on a failure with `code`, nothing on stdout, and
/// one stderr line `mkmime: ... (code)` containing `needle`.
fn fails(args: &[&str], stdin: &[u8], code: i32, needle: &str) {
    let out = mkmime(args, stdin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    assert!(stderr.starts_with("mkmime: "), "{stderr}");
    assert!(stderr.ends_with(&format!("({code})\n")), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: {stderr:?} lacks {needle:?}"
    );
}

/// What Python's email package makes of a message.
fn python(message: &[u8]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("message.eml");
    std::fs::write(&path, message).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_mime.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["defects"],
        json!([]),
        "Python found defects in:\n{}",
        String::from_utf8_lossy(message)
    );
    assert_eq!(v["non_ascii"], json!(false), "raw 8-bit in the output");
    assert!(
        v["max_line"].as_u64().unwrap() <= 78,
        "line over 78: {}",
        v["max_line"]
    );
    assert_eq!(v["mime_version"], json!("1.0"));
    v
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Leaf parts Python saw, without the multipart containers.
fn leaves(v: &Value) -> Vec<Value> {
    v["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            !p["content_type"]
                .as_str()
                .unwrap()
                .starts_with("multipart/")
        })
        .cloned()
        .collect()
}

fn attachment<'a>(parts: &'a [Value], filename: &str) -> &'a Value {
    parts
        .iter()
        .find(|p| p["filename"] == json!(filename))
        .unwrap_or_else(|| panic!("no part named {filename} in {parts:?}"))
}

/// What mailparse makes of a message: subject, and per leaf part its type,
/// file name and decoded bytes. The shared message library reads the message
/// too and must agree (line ends aside: it gives text LF, mailparse CRLF).
#[derive(Debug)]
struct Parsed {
    subject: String,
    leaves: Vec<(String, Option<String>, Vec<u8>)>,
}

fn mailparse(message: &[u8]) -> Parsed {
    use mailparse::MailHeaderMap;
    fn walk(part: &mailparse::ParsedMail, out: &mut Vec<(String, Option<String>, Vec<u8>)>) {
        if part.subparts.is_empty() {
            let disposition = part.get_content_disposition();
            let filename = disposition
                .params
                .get("filename")
                .cloned()
                .or_else(|| part.ctype.params.get("name").cloned());
            out.push((
                part.ctype.mimetype.clone(),
                filename,
                part.get_body_raw().unwrap(),
            ));
        }
        for sub in &part.subparts {
            walk(sub, out);
        }
    }
    let parsed = mailparse::parse_mail(message).unwrap();
    let mut leaves = Vec::new();
    walk(&parsed, &mut leaves);
    let theirs = Parsed {
        subject: parsed
            .headers
            .get_first_value("Subject")
            .unwrap_or_default(),
        leaves,
    };
    let ours = message_library(message);
    let lf = |p: &Parsed| -> Vec<(String, Option<String>, Vec<u8>)> {
        let lf = |b: &[u8]| {
            String::from_utf8_lossy(b)
                .replace("\r\n", "\n")
                .into_bytes()
        };
        p.leaves
            .iter()
            .map(|(t, n, b)| (t.clone(), n.clone(), lf(b)))
            .collect()
    };
    assert_eq!(ours.subject, theirs.subject);
    assert_eq!(lf(&ours), lf(&theirs));
    theirs
}

/// The same reading with mailpipe's message library.
fn message_library(message: &[u8]) -> Parsed {
    use mailpipe::message::decode::{transfer, HeaderDecoder, TransferEncoding};
    use mailpipe::message::parse::{params, Part, Walker};
    fn walk(
        part: &Part,
        defects: &mut Vec<String>,
        out: &mut Vec<(String, Option<String>, Vec<u8>)>,
    ) {
        if part.children.is_empty() {
            let mut decoder = HeaderDecoder {
                hint: None,
                defects,
            };
            let disposition = part
                .header
                .first("content-disposition")
                .map(|f| params::parse(&f.unfolded(), &mut decoder));
            let filename = disposition
                .as_ref()
                .and_then(|d| d.get("filename"))
                .or_else(|| part.content_type.get("name"))
                .map(str::to_string);
            let label = part
                .header
                .first("content-transfer-encoding")
                .map(|f| String::from_utf8_lossy(&f.unfolded()).into_owned())
                .unwrap_or_default();
            let (encoding, _) = TransferEncoding::from_label(&label);
            let bytes = transfer::decode(part.body, encoding, defects).into_owned();
            out.push((part.mime_type().to_string(), filename, bytes));
        }
        for child in &part.children {
            walk(child, defects, out);
        }
    }
    let mut defects = Vec::new();
    let tree = Walker::new(&mut defects, false).parse(message);
    let mut leaves = Vec::new();
    walk(&tree, &mut defects, &mut leaves);
    let subject = tree
        .header
        .first("subject")
        .map(|f| {
            HeaderDecoder {
                hint: None,
                defects: &mut defects,
            }
            .decode(&f.unfolded())
        })
        .unwrap_or_default();
    Parsed { subject, leaves }
}

struct Files {
    _dir: tempfile::TempDir,
    pdf: PathBuf,
    pdf_bytes: Vec<u8>,
    png: PathBuf,
    png_bytes: Vec<u8>,
    text_lf: PathBuf,
    text_crlf: PathBuf,
    html: PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let mut pdf_bytes = b"%PDF-1.4\n".to_vec();
    pdf_bytes.extend(noise(200_000, 7));
    let pdf = dir.path().join("报告 2026.pdf");
    std::fs::write(&pdf, &pdf_bytes).unwrap();
    let mut png_bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    png_bytes.extend(noise(5_000, 9));
    let png = dir.path().join("image.bin");
    std::fs::write(&png, &png_bytes).unwrap();
    let text_lf = dir.path().join("notes.txt");
    std::fs::write(&text_lf, "line one\nline two, ünïcödé\n").unwrap();
    let text_crlf = dir.path().join("dos.txt");
    std::fs::write(&text_crlf, "line one\r\nline two\r\n").unwrap();
    let html = dir.path().join("body.html");
    std::fs::write(&html, "<p>你好, <b>world</b> <img src=\"cid:logo\"></p>\n").unwrap();
    Files {
        _dir: dir,
        pdf,
        pdf_bytes,
        png,
        png_bytes,
        text_lf,
        text_crlf,
        html,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const BASE: [&str; 6] = [
    "--from",
    "张三 <zs@example.org>",
    "--to",
    "Ann Lee <ann@example.net>",
    "--subject",
    SUBJECT,
];

#[test]
fn plain_message_exact_bytes() {
    let out = ok(
        &[
            "--from",
            "me@example.org",
            "--to",
            "you@example.org",
            "-s",
            "Hi",
        ],
        b"Hello.\n",
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n\
         From: me@example.org\r\n\
         To: you@example.org\r\n\
         Subject: Hi\r\n\
         Message-ID: <d8b4b347485b6ff4a2c81150a5605bf9@example.org>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 7bit\r\n\
         \r\n\
         Hello.\r\n"
    );
}

#[test]
fn plain_chinese_read_back_by_python_and_mailparse() {
    let body = "你好，世界。\n第二行\n";
    let out = ok(&BASE, body.as_bytes());
    let v = python(&out);
    assert_eq!(v["subject"], json!(SUBJECT));
    assert_eq!(
        v["from"],
        json!([{"name": "张三", "address": "zs@example.org"}])
    );
    assert_eq!(
        v["to"],
        json!([{"name": "Ann Lee", "address": "ann@example.net"}])
    );
    assert_eq!(v["content_type"], json!("text/plain"));
    let parts = leaves(&v);
    assert_eq!(parts[0]["text"], json!(body));
    assert_eq!(parts[0]["charset"], json!("utf-8"));
    assert!(v["message_id"].as_str().unwrap().ends_with("@example.org>"));
    assert_eq!(v["date"], json!("Tue, 14 Nov 2023 22:13:20 +0000"));
    let m = mailparse(&out);
    assert_eq!(m.subject, SUBJECT);
    assert_eq!(m.leaves[0].2, body.replace('\n', "\r\n").as_bytes());
}

#[test]
fn mostly_ascii_is_quoted_printable_and_ascii_is_7bit() {
    let out = ok(&BASE, "Grüße from Köln, see you soon\n".as_bytes());
    assert_eq!(leaves(&python(&out))[0]["cte"], json!("quoted-printable"));
    let out = ok(&BASE, b"plain ascii\n");
    assert_eq!(leaves(&python(&out))[0]["cte"], json!("7bit"));
    let out = ok(&BASE, "全是中文的正文内容\n".as_bytes());
    assert_eq!(leaves(&python(&out))[0]["cte"], json!("base64"));
}

#[test]
fn html_alternative() {
    let f = files();
    let mut args = BASE.to_vec();
    args.extend(["--html", s(&f.html)]);
    let out = ok(&args, b"plain version\n");
    let v = python(&out);
    assert_eq!(v["content_type"], json!("multipart/alternative"));
    let parts = leaves(&v);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["content_type"], json!("text/plain"));
    assert_eq!(parts[0]["text"], json!("plain version\n"));
    assert_eq!(parts[1]["content_type"], json!("text/html"));
    assert_eq!(
        parts[1]["text"],
        json!("<p>你好, <b>world</b> <img src=\"cid:logo\"></p>\n")
    );
    let m = mailparse(&out);
    assert_eq!(m.leaves[1].0, "text/html");
}

#[test]
fn html_with_inline_image_is_related() {
    let f = files();
    let inline = format!("{};cid=logo;type=image/png", s(&f.png));
    let mut args = BASE.to_vec();
    args.extend(["--html", s(&f.html), "--inline", &inline]);
    let v = python(&ok(&args, b"text\n"));
    let kinds: Vec<&str> = v["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["content_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "multipart/alternative",
            "text/plain",
            "multipart/related",
            "text/html",
            "image/png"
        ]
    );
    let image = &leaves(&v)[2];
    assert_eq!(image["content_id"], json!("<logo>"));
    assert_eq!(image["disposition"], json!("inline"));
    assert_eq!(image["sha256"], json!(sha256(&f.png_bytes)));
}

#[test]
fn attachments_binary_and_text_byte_exact() {
    let f = files();
    let typed = format!("{};type=application/x-foo;name=数据.bin", s(&f.png));
    let mut args = BASE.to_vec();
    args.extend([
        "-a",
        s(&f.pdf),
        "--attach",
        s(&f.png),
        "-a",
        &typed,
        "-a",
        s(&f.text_lf),
        "-a",
        s(&f.text_crlf),
    ]);
    let out = ok(&args, "正文\n".as_bytes());
    let v = python(&out);
    assert_eq!(v["subject"], json!(SUBJECT));
    assert_eq!(v["content_type"], json!("multipart/mixed"));
    let parts = leaves(&v);
    assert_eq!(parts[0]["text"], json!("正文\n"));
    let pdf = attachment(&parts, "报告 2026.pdf");
    assert_eq!(pdf["content_type"], json!("application/pdf"));
    assert_eq!(pdf["disposition"], json!("attachment"));
    assert_eq!(pdf["cte"], json!("base64"));
    assert_eq!(pdf["sha256"], json!(sha256(&f.pdf_bytes)));
    // Sniffed from the content, whatever the name says.
    let png = attachment(&parts, "image.bin");
    assert_eq!(png["content_type"], json!("image/png"));
    assert_eq!(png["sha256"], json!(sha256(&f.png_bytes)));
    let typed = attachment(&parts, "数据.bin");
    assert_eq!(typed["content_type"], json!("application/x-foo"));
    assert_eq!(typed["sha256"], json!(sha256(&f.png_bytes)));
    let lf = attachment(&parts, "notes.txt");
    assert_eq!(lf["content_type"], json!("text/plain"));
    assert_eq!(lf["charset"], json!("utf-8"));
    assert_eq!(
        lf["sha256"],
        json!(sha256(&std::fs::read(&f.text_lf).unwrap()))
    );
    let crlf = attachment(&parts, "dos.txt");
    assert_eq!(crlf["cte"], json!("7bit"));
    assert_eq!(crlf["sha256"], json!(sha256(b"line one\r\nline two\r\n")));
    // The RFC 2231 form lettre would not write on one line.
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(
        text.contains("filename*=utf-8''%E6%8A%A5%E5%91%8A%202026.pdf\r\n"),
        "{text}"
    );

    let m = mailparse(&out);
    assert_eq!(m.subject, SUBJECT);
    let find = |name: &str| {
        m.leaves
            .iter()
            .find(|l| l.1.as_deref() == Some(name))
            .unwrap_or_else(|| {
                panic!(
                    "mailparse: no {name}: {:?}",
                    m.leaves.iter().map(|l| &l.1).collect::<Vec<_>>()
                )
            })
    };
    assert_eq!(find("报告 2026.pdf").2, f.pdf_bytes);
    assert_eq!(find("报告 2026.pdf").0, "application/pdf");
    assert_eq!(find("数据.bin").2, f.png_bytes);
    assert_eq!(find("notes.txt").2, std::fs::read(&f.text_lf).unwrap());
}

#[test]
fn draft_mode_with_flags_adding_and_overriding() {
    let f = files();
    let draft = format!(
        "From: 张三 <zs@example.org>\n\
         To: ann@example.net,\n  bo@example.net\n\
         Cc:\n\
         Subject: draft subject\n\
         X-Mailer-Note: 草稿\n\
         Attach: {}\n\
         \n\
         Body of the draft.\n\nSecond paragraph.\n",
        s(&f.pdf)
    );
    let out = ok(
        &["--draft", "--to", "cy@example.net", "--subject", SUBJECT],
        draft.as_bytes(),
    );
    let v = python(&out);
    assert_eq!(v["subject"], json!(SUBJECT));
    let to: Vec<&str> = v["to"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap())
        .collect();
    assert_eq!(to, ["ann@example.net", "bo@example.net", "cy@example.net"]);
    assert_eq!(v["cc"], Value::Null);
    assert_eq!(v["extra"]["X-Mailer-Note"], json!("草稿"));
    let parts = leaves(&v);
    assert_eq!(
        parts[0]["text"],
        json!("Body of the draft.\n\nSecond paragraph.\n")
    );
    assert_eq!(
        attachment(&parts, "报告 2026.pdf")["sha256"],
        json!(sha256(&f.pdf_bytes))
    );
    let m = mailparse(&out);
    assert_eq!(m.subject, SUBJECT);
}

#[test]
fn draft_errors() {
    fails(
        &["--draft"],
        b"To: a@example.org\nnot a header\n\nbody",
        65,
        "draft line 2:",
    );
    fails(
        &["--draft"],
        b"From: a@example.org\nSubject: \xff\n\nbody",
        65,
        "not UTF-8",
    );
    fails(&["--draft"], b"To: a@example.org\n\nbody", 65, "no From");
}

#[test]
fn json_mode_with_mail2json_fields() {
    let f = files();
    let input = json!({
        "from": [{"name": "张三", "address": "zs@example.org"}],
        "to": ["Ann Lee <ann@example.net>", {"name": "Bo", "address": "bo@example.net"}],
        "cc": "cy@example.net",
        "bcc": [{"address": "hidden@example.net"}],
        "reply_to": "replies@example.org",
        "subject": SUBJECT,
        "text": "JSON body 正文\n",
        "html": "<p>JSON body</p>",
        "headers": {"X-Campaign": "q3", "Content-Type": "text/plain", "Subject": "loses"},
        "in_reply_to": "<orig@example.net>",
        "references": ["<first@example.net>", "<orig@example.net>"],
        "message_id": "<fixed@example.org>",
        "date": "2026-03-01T09:30:00+08:00",
        "attachments": [{"path": s(&f.pdf)}, {"path": s(&f.png), "filename": "图.png", "content_type": "image/png"}],
        "source": "mbox", "size": 1234, "defects": [], "sha256": "00",
    });
    let out = ok(&["--json"], input.to_string().as_bytes());
    let v = python(&out);
    assert_eq!(v["subject"], json!(SUBJECT));
    assert_eq!(
        v["from"],
        json!([{"name": "张三", "address": "zs@example.org"}])
    );
    assert_eq!(v["to"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["bcc"],
        json!([{"name": "", "address": "hidden@example.net"}])
    );
    assert_eq!(
        v["reply_to"],
        json!([{"name": "", "address": "replies@example.org"}])
    );
    assert_eq!(v["message_id"], json!("<fixed@example.org>"));
    assert_eq!(v["in_reply_to"], json!("<orig@example.net>"));
    assert_eq!(
        v["references"],
        json!("<first@example.net> <orig@example.net>")
    );
    assert_eq!(v["date"], json!("Sun, 01 Mar 2026 09:30:00 +0800"));
    assert_eq!(v["extra"]["X-Campaign"], json!("q3"));
    let parts = leaves(&v);
    assert_eq!(parts[0]["text"], json!("JSON body 正文\n"));
    assert_eq!(parts[1]["content_type"], json!("text/html"));
    assert_eq!(
        attachment(&parts, "报告 2026.pdf")["sha256"],
        json!(sha256(&f.pdf_bytes))
    );
    assert_eq!(
        attachment(&parts, "图.png")["sha256"],
        json!(sha256(&f.png_bytes))
    );
    let m = mailparse(&out);
    assert_eq!(m.subject, SUBJECT);
}

#[test]
fn bcc_is_kept_for_smtp_send_t() {
    let mut args = BASE.to_vec();
    args.extend([
        "--bcc",
        "Secret <s1@example.org>, s2@example.org",
        "-b",
        "s3@example.org",
    ]);
    let v = python(&ok(&args, b"x\n"));
    let bcc: Vec<&str> = v["bcc"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap())
        .collect();
    assert_eq!(bcc, ["s1@example.org", "s2@example.org", "s3@example.org"]);
}

#[test]
fn crlf_by_default_lf_on_request() {
    let f = files();
    let mut args = BASE.to_vec();
    args.extend(["-a", s(&f.text_crlf), "--html", s(&f.html)]);
    let crlf = ok(&args, b"one\ntwo\n");
    let v = python(&crlf);
    assert_eq!(v["crlf_lines"], v["lines"]);
    args.push("--lf");
    let lf = ok(&args, b"one\ntwo\n");
    assert!(!lf.contains(&b'\r'));
    assert_eq!(
        String::from_utf8(crlf)
            .unwrap()
            .replace("\r\n", "\n")
            .into_bytes(),
        lf
    );
    assert_eq!(python(&lf)["crlf_lines"], json!(0));
}

#[test]
fn long_lines_are_folded_or_encoded() {
    let long_word = "x".repeat(2000);
    let body = format!("short\n{}\nend\n", "word ".repeat(1000));
    let subject = format!("{SUBJECT} {long_word}");
    let out = ok(
        &[
            "--from",
            "a@example.org",
            "-s",
            &subject,
            "-H",
            &format!("X-Long: {long_word}"),
        ],
        body.as_bytes(),
    );
    let v = python(&out);
    assert!(v["max_line"].as_u64().unwrap() <= 78);
    assert_eq!(v["subject"], json!(subject));
    assert_eq!(v["extra"]["X-Long"], json!(long_word));
    assert_eq!(leaves(&v)[0]["text"], json!(body));
    assert_eq!(leaves(&v)[0]["cte"], json!("quoted-printable"));
    let m = mailparse(&out);
    assert_eq!(m.subject, subject);
}

#[test]
fn many_recipients_fold() {
    let to: Vec<String> = (0..60)
        .map(|i| format!("收件人 {i} <user{i}@example.org>"))
        .collect();
    let to = to.join(", ");
    let v = python(&ok(&["--from", "a@example.org", "--to", &to], b"x\n"));
    assert_eq!(v["to"].as_array().unwrap().len(), 60);
    assert_eq!(
        v["to"][59],
        json!({"name": "收件人 59", "address": "user59@example.org"})
    );
}

#[test]
fn injection_on_every_header_flag_is_65() {
    let evil = "x@example.org\r\nBcc: victim@example.net";
    for flag in [
        "--from",
        "--to",
        "--cc",
        "--bcc",
        "--reply-to",
        "--subject",
        "--in-reply-to",
        "--references",
    ] {
        let mut args = vec!["--from", "a@example.org", flag, evil];
        if flag == "--from" {
            args.drain(..2);
        }
        fails(&args, b"body", 65, &format!("{flag}: line break"));
        let lf_only = "x@example.org\nBcc: victim@example.net";
        args.pop();
        args.push(lf_only);
        fails(&args, b"body", 65, flag);
    }
    fails(
        &[
            "--from",
            "a@example.org",
            "-H",
            "X-A: 1\r\nBcc: v@example.net",
        ],
        b"",
        65,
        "--header X-A: line break",
    );
    fails(
        &["--from", "a@example.org", "-H", "X-A\nBcc: 1"],
        b"",
        65,
        "--header",
    );
    fails(
        &["--from", "a@example.org", "-H", "X-A: bell\x07"],
        b"",
        65,
        "control character",
    );
    fails(
        &[
            "--from",
            "a@example.org",
            "-a",
            "/etc/hostname;name=a\r\nX: y",
        ],
        b"",
        65,
        "line break",
    );
}

#[test]
fn injection_in_every_json_field_is_65() {
    let evil = "x@example.org\r\nBcc: victim@example.net";
    let base = || json!({"from": "a@example.org", "to": "b@example.org"});
    let cases: Vec<(&str, Value)> = vec![
        ("from", json!(evil)),
        (
            "from",
            json!([{"name": "A\r\nB", "address": "a@example.org"}]),
        ),
        ("to", json!(evil)),
        ("to", json!([{"name": "T", "address": evil}])),
        ("cc", json!([evil])),
        ("bcc", json!(evil)),
        ("reply_to", json!(evil)),
        ("subject", json!("hi\nBcc: victim@example.net")),
        ("headers", json!({"X-A": "1\r\nBcc: v@example.net"})),
        ("headers", json!([{"name": "X-A\r\nBcc", "value": "1"}])),
        ("in_reply_to", json!("<a@b>\r\nBcc: v@example.net")),
        ("references", json!(["<a@b>", "<c@d>\nX: y"])),
        ("message_id", json!("<a@b>\r\nX: y")),
        ("date", json!("Sun, 01 Mar 2026 09:30:00 +0800\r\nX: y")),
        (
            "attachments",
            json!([{"path": "/etc/hostname", "filename": "a\r\nX: y"}]),
        ),
        (
            "attachments",
            json!([{"path": "/etc/hostname", "content_type": "text/plain\r\nX: y"}]),
        ),
    ];
    for (field, value) in cases {
        let mut input = base();
        input[field] = value;
        fails(
            &["--json"],
            input.to_string().as_bytes(),
            65,
            &format!("json field \"{field}"),
        );
    }
}

#[test]
fn bad_addresses_are_65() {
    fails(
        &["--from", "not an address"],
        b"",
        65,
        "--from: cannot parse address",
    );
    fails(
        &[
            "--from",
            "a@example.org",
            "--to",
            "a@example.org b@example.org",
        ],
        b"",
        65,
        "--to",
    );
    // A domain no IDNA form exists for (`_` is not in a host name).
    fails(
        &["--from", "a@example.org", "--to", "user@例_子.中国"],
        b"",
        65,
        "not a valid internationalized domain name",
    );
    fails(
        &["--json"],
        br#"{"from": "a@example.org", "to": [{"address": "nope"}]}"#,
        65,
        "json field \"to\"",
    );
    fails(&["--to", "b@example.org"], b"", 64, "no From");
}

/// RFC 6530-6532: an ASCII local part at a UTF-8 domain is written with the
/// domain's IDNA form (a plain ASCII header); a UTF-8 local part is written
/// raw in UTF-8, the display name still an encoded-word, the Message-ID in
/// the IDNA domain.
#[test]
fn international_addresses_idna_or_raw_utf8() {
    let out = ok(
        &[
            "--from",
            "张三 <张三@例子.中国>",
            "--to",
            "user@例子.中国",
            "-s",
            "hi",
        ],
        b"body\n",
    );
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(
        text.contains("\r\nFrom: =?utf-8?b?5byg5LiJ?= <张三@例子.中国>\r\n"),
        "{text}"
    );
    assert!(
        text.contains("\r\nTo: user@xn--fsqu00a.xn--fiqs8s\r\n"),
        "{text}"
    );
    assert!(
        text.contains("@xn--fsqu00a.xn--fiqs8s>\r\n"),
        "Message-ID in the IDNA domain: {text}"
    );
    let (block, _) = mailpipe::message::header_block(&out);
    assert_eq!(
        mailpipe::message::envelope::sender(&block),
        "张三@例子.中国"
    );
    let ascii = ok(
        &["--from", "a@example.org", "--to", "Ann <user@例子.中国>"],
        b"x\n",
    );
    assert!(ascii.is_ascii(), "{}", String::from_utf8_lossy(&ascii));
}

#[test]
fn unreadable_files_are_66_and_named() {
    fails(
        &["--from", "a@example.org", "-a", "/no/such/dir/report.pdf"],
        b"",
        66,
        "/no/such/dir/report.pdf: No such file",
    );
    fails(
        &["--from", "a@example.org", "--html", "/no/such/body.html"],
        b"",
        66,
        "/no/such/body.html",
    );
    fails(
        &["--from", "a@example.org", "--inline", "/no/such/logo.png"],
        b"",
        66,
        "/no/such/logo.png",
    );
    fails(&["--from", "a@example.org", "-a", "/"], b"", 66, "/: ");
    fails(
        &["--json"],
        br#"{"from": "a@example.org", "attachments": [{"path": "/no/such/x"}]}"#,
        66,
        "/no/such/x",
    );
}

#[test]
fn encoding_can_be_forced_or_refused() {
    let mut args = BASE.to_vec();
    args.extend(["--encoding", "base64"]);
    let v = python(&ok(&args, b"ascii text\n"));
    assert_eq!(leaves(&v)[0]["cte"], json!("base64"));
    assert_eq!(leaves(&v)[0]["text"], json!("ascii text\n"));
    let mut args = BASE.to_vec();
    args.extend(["--encoding", "quoted-printable"]);
    assert_eq!(
        leaves(&python(&ok(&args, b"ascii\n")))[0]["cte"],
        json!("quoted-printable")
    );
    let mut args = BASE.to_vec();
    args.extend(["--encoding", "7bit"]);
    fails(&args, "中文".as_bytes(), 65, "--encoding 7bit");
    fails(
        &["--from", "a@example.org", "-H", "Content-Type: text/html"],
        b"",
        64,
        "MIME headers",
    );
}

#[test]
fn source_date_epoch_makes_output_reproducible() {
    let f = files();
    let mut args = BASE.to_vec();
    args.extend(["-a", s(&f.pdf), "--html", s(&f.html)]);
    let first = ok(&args, b"same input\n");
    let second = ok(&args, b"same input\n");
    assert_eq!(first, second);
    let text = String::from_utf8(first.clone()).unwrap();
    assert!(text.starts_with("Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
    let other_input = ok(&args, b"other input\n");
    assert_ne!(first, other_input);

    let later = mkmime_env(
        &args,
        b"same input\n",
        &[("SOURCE_DATE_EPOCH", "1700000001")],
    );
    assert_ne!(first, later.stdout);
    let unset_a = mkmime_env(&args, b"same input\n", &[]);
    let unset_b = mkmime_env(&args, b"same input\n", &[]);
    assert!(unset_a.status.success() && unset_b.status.success());
    assert_ne!(unset_a.stdout, unset_b.stdout);
    python(&unset_a.stdout);
    let boundary = |out: &[u8]| {
        let t = String::from_utf8_lossy(out).into_owned();
        t.split("boundary=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string()
    };
    assert_ne!(boundary(&unset_a.stdout), boundary(&unset_b.stdout));
    let bad = mkmime_env(&args, b"x", &[("SOURCE_DATE_EPOCH", "yesterday")]);
    assert_eq!(bad.status.code(), Some(64));
    assert!(bad.stdout.is_empty());
}

#[test]
fn help_has_examples_and_man_page_mentions_attach() {
    let help = mkmime(&["--help"], b"");
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("Examples:"), "{help}");
    assert!(help.contains("mkmime --from me@example.org"));
    let man = mkmime(&["--generate-man"], b"");
    assert!(man.status.success());
    let man = String::from_utf8(man.stdout).unwrap();
    assert!(man.starts_with(".ie") || man.contains(".TH"), "{man}");
    assert!(man.contains("attach"), "{man}");
}

#[test]
fn inline_without_html_html_only_json_and_empty_body() {
    let f = files();
    let v = python(&ok(
        &["--from", "a@example.org", "--inline", s(&f.png)],
        b"see below\n",
    ));
    assert_eq!(v["content_type"], json!("multipart/mixed"));
    let image = &leaves(&v)[1];
    assert_eq!(image["disposition"], json!("inline"));
    assert_eq!(image["content_id"], json!("<image.bin>"));
    assert_eq!(image["sha256"], json!(sha256(&f.png_bytes)));

    let v = python(&ok(
        &["--json"],
        br#"{"from": "a@example.org", "html": "<p>only html</p>"}"#,
    ));
    assert_eq!(v["content_type"], json!("text/html"));
    // A single-part body always ends with a line end (SMTP needs one).
    assert_eq!(leaves(&v)[0]["text"], json!("<p>only html</p>\n"));

    let v = python(&ok(&["--from", "a@example.org"], b""));
    assert_eq!(leaves(&v)[0]["text"], json!(""));
}

/// Issue 16: a body spooled to a temporary file (`MKMIME_SPOOL_THRESHOLD`,
/// the test knob, sends these small inputs that way) and a streamed
/// `--html` file are refused exactly as held ones: same exit status, same
/// stderr line (the same byte offset for bad UTF-8), nothing on stdout. A
/// spool that cannot be created is 74 naming the directory.
#[test]
fn a_spooled_body_is_refused_as_a_held_one() {
    let dir = tempfile::tempdir().unwrap();
    let bad_html = dir.path().join("bad.html");
    std::fs::write(&bad_html, b"<p>ok</p>\n<p>caf\xe9</p>\n").unwrap();
    let mut html_args = BASE.to_vec();
    html_args.extend(["--html", s(&bad_html)]);
    let forced = |encoding: &'static str| {
        let mut args = BASE.to_vec();
        args.extend(["--encoding", encoding]);
        args
    };
    let long_line = "x".repeat(75) + "\n" + &"y".repeat(75);
    let cases: Vec<(Vec<&str>, Vec<u8>)> = vec![
        (BASE.to_vec(), b"caf\xe9\n".to_vec()),
        (
            BASE.to_vec(),
            [&"中文".repeat(9).into_bytes()[..], b"\xe4\xb8"].concat(),
        ),
        (
            BASE.to_vec(),
            [&"中文".repeat(9).into_bytes()[..], b"\xe4\xb8A"].concat(),
        ),
        (forced("7bit"), "中文\n".as_bytes().to_vec()),
        (forced("7bit"), long_line.clone().into_bytes()),
        (forced("8bit"), long_line.into_bytes()),
        (forced("8bit"), b"nul \0 here\n".to_vec()),
        (html_args, b"text\n".to_vec()),
        (
            vec!["--draft"],
            b"From: a@example.org\nSubject: \xff\n\nbody".to_vec(),
        ),
        (
            vec!["--draft"],
            b"From: a@example.org\nSubject: s\n\nbody \xff and more".to_vec(),
        ),
        (
            vec!["--draft"],
            b"To: a@example.org\nnot a header\n\nbody".to_vec(),
        ),
        (vec!["--draft"], b"To: a@example.org\n\nbody".to_vec()),
    ];
    for (args, stdin) in &cases {
        let held = mkmime(args, stdin);
        let stderr = String::from_utf8_lossy(&held.stderr).into_owned();
        assert!(!held.status.success(), "{args:?} {stdin:?}");
        assert!(held.stdout.is_empty());
        for threshold in ["0", "1", "7"] {
            let spooled = mkmime_env(
                args,
                stdin,
                &[
                    ("SOURCE_DATE_EPOCH", EPOCH),
                    ("MKMIME_SPOOL_THRESHOLD", threshold),
                ],
            );
            assert_eq!(
                (
                    spooled.status.code(),
                    String::from_utf8_lossy(&spooled.stderr)
                ),
                (held.status.code(), stderr.as_str().into()),
                "{args:?} {stdin:?} threshold {threshold}"
            );
            assert!(spooled.stdout.is_empty());
        }
    }

    let missing = dir.path().join("no such dir");
    let out = mkmime_env(
        &BASE,
        b"body\n",
        &[
            ("MKMIME_SPOOL_THRESHOLD", "0"),
            ("TMPDIR", missing.to_str().unwrap()),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(74), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.starts_with("mkmime: spooling stdin to a temporary file in ")
            && stderr.contains("no such dir"),
        "{stderr}"
    );
}
