//! mail2json end to end, through its binary: real messages from
//! tests/fixtures/mail (see tests/fixtures/SOURCES.md) and messages built here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mailpipe_e2e::{run_with_stdin, Tool};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/mail")
        .join(name)
}

fn mail2json() -> Command {
    Command::new(Tool::Mail2json.path())
}

fn run(args: &[&str], stdin: &[u8]) -> Output {
    run_with_stdin(mail2json().args(args), stdin)
}

fn records(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .expect("output is UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

fn one(args: &[&str], file: &str) -> Value {
    let mut all: Vec<&str> = args.to_vec();
    let path = fixture(file);
    let path = path.to_str().expect("utf-8 path");
    all.push(path);
    let out = run(&all, b"");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut r = records(&out);
    assert_eq!(r.len(), 1);
    r.remove(0)
}

fn mbox_of(messages: &[Vec<u8>]) -> Vec<u8> {
    let time = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("valid time");
    let mut w = mailpipe::mbox::MboxWriter::new(Vec::new());
    for m in messages {
        w.write_message("sender@example.org", time, m)
            .expect("write to memory");
    }
    w.into_inner()
}

#[test]
fn chinese_subjects_and_bodies_from_the_list_archive() {
    let r = one(&[], "erofs-gbk-subject-split.eml");
    assert_eq!(r["schema"], 2);
    assert_eq!(
        r["subject"],
        "Re: 撤回: [PATCH 2/2] erofs-utils: support 128-bit filesystem UUID"
    );
    let r = one(&[], "erofs-gb2312-subject.eml");
    assert_eq!(
        r["subject"],
        "撤回: [PATCH 2/2] erofs-utils: support 128-bit filesystem UUID"
    );
    assert!(r["text"].as_str().expect("text").contains("将撤回邮件"));
    assert_eq!(r["from"][0]["name"], "Gaoxiang (xiang, OS Lab)");
    let r = one(&[], "erofs-gb18030.eml");
    assert_eq!(r["subject"], "Re: eros性能问题");
    assert!(r["text"]
        .as_str()
        .expect("text")
        .contains("我不清楚这个代表什么意思"));
    // Labelled gb2312, written with characters only GB18030 has.
    let r = one(&[], "erofs-gb2312-label-japanese.eml");
    assert_eq!(r["subject"], "E T Cサービスのお知らせ");
    // Labelled gbk, but the body is UTF-8.
    let r = one(&[], "erofs-gbk-label-utf8-body.eml");
    assert!(r["text"]
        .as_str()
        .expect("text")
        .contains("在 2020/6/15 15:25, Gao Xiang 写道:"));
    assert!(r["defects"].to_string().contains("charset-mismatch"));
    // GBK whose bytes were damaged before: a GBK reader's 锟斤拷, not mojibake.
    let r = one(&[], "erofs-gbk-damaged.eml");
    assert!(r["text"]
        .as_str()
        .expect("text")
        .contains("Li GuiFu 写锟斤拷"));
}

#[test]
fn other_charsets_and_filenames() {
    let r = one(&[], "mail-japanese-iso-2022.eml");
    assert_eq!(r["subject"], "まみむめも");
    let r = one(&[], "mail-ks-c-5601-1987.eml");
    assert_eq!(r["text"], "스티해\n");
    let r = one(&[], "mime4j-russian-headers.msg");
    assert_eq!(r["attachments"][0]["filename"], "Список.doc");
    let r = one(&[], "mail-japanese-attachment-long-name.eml");
    assert_eq!(
        r["attachments"][0]["filename"],
        "かきくけこかきくけこかきくけこかきくけこかきくけこ.txt"
    );
    let r = one(&[], "erofs-pdf-attachment.eml");
    let a = &r["attachments"][0];
    assert_eq!(
        a["filename"],
        "erofs internship - google summer of code.pdf"
    );
    assert_eq!(a["content_type"], "application/pdf");
    assert_eq!(a["size"], 58935);
    assert_eq!(
        a["sha256"],
        "533d8f0f20d8f1324eaf2b5002a96d2c50b3e42ea042aafb8178b212c98b3aeb"
    );
    // The address is the one in angle brackets, not the one in the name.
    let r = one(&[], "erofs-spoofed-display-name.eml");
    assert_eq!(r["from"][0]["address"], "service_1@ykd-delivery.com");
}

/// Raw 8-bit Big5 headers and a Big5 body (the body's charset is the hint
/// for the headers), RFC 2231 and RFC 2047 GBK file names.
fn built_chinese_message() -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(b"From: \xb1\x69\xa4\x54 <zhangsan@example.cn>\r\n");
    m.extend_from_slice(b"To: =?GBK?B?wO7LxA==?= <lisi@example.cn>\r\n");
    m.extend_from_slice(b"Subject: \xa4\xa4\xa4\xe5\xab\x48\xa5\xf3\r\n");
    m.extend_from_slice(b"Date: Tue, 3 Feb 2004 09:05:07 +0800\r\n");
    m.extend_from_slice(b"Message-ID: <abc@example.cn>\r\nMIME-Version: 1.0\r\n");
    m.extend_from_slice(b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n");
    m.extend_from_slice(b"--b1\r\nContent-Type: text/plain; charset=big5\r\n\r\n\xa4\xa4\xa4\xe5\xab\x48\xa5\xf3\r\n");
    m.extend_from_slice(b"--b1\r\nContent-Type: application/octet-stream\r\n");
    m.extend_from_slice(b"Content-Disposition: attachment; filename*=gbk''%D6%D0%CE%C4.txt\r\n");
    m.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n");
    m.extend_from_slice(
        b"--b1\r\nContent-Type: application/pdf; name=\"=?GB18030?B?ss6/vA==?=.pdf\"\r\n",
    );
    m.extend_from_slice(b"Content-Disposition: attachment\r\n\r\nxyz\r\n--b1--\r\n");
    m
}

#[test]
fn raw_gbk_headers_big5_body_and_encoded_filenames() {
    let out = run(&[], &built_chinese_message());
    assert_eq!(out.status.code(), Some(0));
    let r = &records(&out)[0];
    assert_eq!(r["subject"], "中文信件");
    assert_eq!(r["from"][0]["name"], "張三");
    assert_eq!(r["to"][0]["name"], "李四");
    assert_eq!(r["text"], "中文信件");
    assert_eq!(r["date"], "2004-02-03T09:05:07+08:00");
    assert_eq!(r["message_id"], "abc@example.cn");
    assert_eq!(r["attachments"][0]["filename"], "中文.txt");
    assert_eq!(r["attachments"][0]["size"], 5);
    assert_eq!(r["attachments"][1]["filename"], "参考.pdf");
    assert_eq!(r["source"]["path"], "-");
    // Raw GBK headers with no charset anywhere in the message: GB18030.
    let out = run(
        &[],
        b"From: \xd5\xc5\xc8\xfd <z@example.cn>\nSubject: \xd6\xd0\xce\xc4\xd3\xca\xbc\xfe\n\nhi\n",
    );
    let r = &records(&out)[0];
    assert_eq!(r["subject"], "中文邮件");
    assert_eq!(r["from"][0]["name"], "张三");
    assert!(r["defects"]
        .to_string()
        .contains("raw-8bit-header: decoded as gb18030"));
    // UTF-8 raw headers (RFC 6532) stay UTF-8.
    let out = run(&[], "Subject: 中文邮件\n\nhi\n".as_bytes());
    assert_eq!(records(&out)[0]["subject"], "中文邮件");
}

#[test]
fn mbox_with_from_lines_in_bodies() {
    let body = b"Subject: quoting\n\nFrom here\n>From there\nnormal\n".to_vec();
    let mbox = mbox_of(&[body.clone(), b"Subject: second\n\nx\n".to_vec()]);
    assert!(String::from_utf8_lossy(&mbox).contains("\n>From here\n>>From there\n"));
    let out = run(&[], &mbox);
    let r = records(&out);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["text"], "From here\n>From there\nnormal\n");
    assert_eq!(r[0]["size"], body.len());
    assert_eq!(r[0]["source"]["offset"], 0);
    assert_eq!(r[1]["subject"], "second");
}

#[test]
fn crlf_mbox_and_real_mbox() {
    let msg = std::fs::read(fixture("erofs-gb2312-subject.eml")).expect("fixture");
    let crlf: Vec<u8> = String::from_utf8_lossy(&msg)
        .replace('\n', "\r\n")
        .into_bytes();
    let out = run(&[], &mbox_of(&[crlf.clone(), crlf]));
    let r = records(&out);
    assert_eq!(r.len(), 2);
    for rec in &r {
        assert_eq!(
            rec["subject"],
            "撤回: [PATCH 2/2] erofs-utils: support 128-bit filesystem UUID"
        );
        assert!(!rec["text"].as_str().expect("text").contains('\r'));
    }
    let path = fixture("mime4j-rlug.mbox");
    let out = run(&[path.to_str().expect("utf-8")], b"");
    assert_eq!(out.status.code(), Some(0));
    let r = records(&out);
    assert_eq!(r.len(), 5);
    assert_eq!(
        r[0]["subject"],
        "Din windows ma pot, din LINUX NU ma pot conecta (la ZAPP)"
    );
}

#[test]
fn maildir_in_name_order_new_then_cur() {
    let dir = tempfile::tempdir().expect("tempdir");
    let md = dir.path().join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).expect("mkdir");
    }
    let copy = |from: &str, to: &str| std::fs::copy(fixture(from), md.join(to)).expect("copy");
    copy("erofs-gb18030.eml", "cur/1000.b:2,S");
    copy("erofs-gb2312-subject.eml", "cur/1000.a:2,S");
    copy("mail-japanese-iso-2022.eml", "new/2000.c");
    std::fs::write(md.join("cur/.hidden"), b"Subject: no\n\n").expect("write");
    let out = run(&[md.to_str().expect("utf-8")], b"");
    assert_eq!(out.status.code(), Some(0));
    let r = records(&out);
    let subjects: Vec<&str> = r
        .iter()
        .map(|x| x["subject"].as_str().expect("subject"))
        .collect();
    assert_eq!(
        subjects,
        [
            "まみむめも",
            "撤回: [PATCH 2/2] erofs-utils: support 128-bit filesystem UUID",
            "Re: eros性能问题"
        ]
    );
    assert!(r[1]["source"]["path"]
        .as_str()
        .expect("path")
        .ends_with("cur/1000.a:2,S"));
}

#[test]
fn empty_input_is_no_output_and_success() {
    let out = run(&[], b"");
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let out = run(&["--array"], b"");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[]\n");
}

#[test]
fn binary_garbage_is_an_error_record_and_65() {
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let out = run(&[], &garbage);
    assert_eq!(out.status.code(), Some(65));
    let r = records(&out);
    assert_eq!(r.len(), 1);
    assert!(r[0]["error"]
        .as_str()
        .expect("error")
        .starts_with("not an email message"));
    assert_eq!(r[0]["source"]["path"], "-");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("mail2json: -: not an email message"));
    // A fixture that is not mail, and one bad message inside an mbox.
    let out = run(
        &[fixture("enmime-erroneous.raw").to_str().expect("utf-8")],
        b"",
    );
    assert_eq!(out.status.code(), Some(65));
    let out = run(
        &[fixture("patchwork-fuzz-name-len.mbox")
            .to_str()
            .expect("utf-8")],
        b"",
    );
    assert_eq!(out.status.code(), Some(65));
    let r = records(&out);
    assert_eq!(r.len(), 2, "the good message is still there");
    assert!(r[0]["subject"].is_string() && r[1]["error"].is_string());
}

#[test]
fn broken_messages_still_give_what_can_be_read() {
    let r = one(&[], "enmime-bad-header-start.raw");
    assert_eq!(r["from"][0]["address"], "james@makita.skynet");
    assert!(r["defects"]
        .to_string()
        .contains("first-header-line-is-continuation"));
    let r = one(&[], "imap-tools-illegal-boundary.eml");
    assert!(r["text"]
        .as_str()
        .expect("text")
        .starts_with("Hello\nThis is an outlook test\n\nSo there.\n"));
    let r = one(&[], "flanker-malformed-headers.eml");
    assert!(r["error"].is_null());
    // Nested 10,000 deep: bounded, no stack overflow.
    let mut deep = b"Subject: deep\n".to_vec();
    for i in 0..10_000 {
        deep.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n").as_bytes(),
        );
    }
    let out = run(&[], &deep);
    assert_eq!(out.status.code(), Some(0));
    assert!(records(&out)[0]["defects"]
        .to_string()
        .contains("nesting-too-deep"));
}

#[test]
fn missing_input_is_66_and_the_rest_still_runs() {
    let good = fixture("erofs-gb18030.eml");
    let out = run(&["/nonexistent/x.mbox", good.to_str().expect("utf-8")], b"");
    assert_eq!(out.status.code(), Some(66));
    assert_eq!(records(&out).len(), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.mbox"));
}

fn hostile_attachments() -> Vec<u8> {
    let mut m = b"Subject: hostile\nContent-Type: multipart/mixed; boundary=X\n\n".to_vec();
    for (i, name) in [
        "../../evil.txt",
        "/etc/passwd",
        "..\\\\..\\\\win.ini",
        "CON",
        ".bashrc",
        "a\0b",
        "same.txt",
        "same.txt",
        "..",
    ]
    .iter()
    .enumerate()
    {
        m.extend_from_slice(
            format!("--X\nContent-Type: text/plain\nContent-Disposition: attachment; filename=\"{name}\"\n\ncontent {i}\n").as_bytes(),
        );
    }
    m.extend_from_slice(b"--X\nContent-Type: text/plain\nContent-Disposition: attachment; filename*=utf-8''%2E%2E%2F%00x\n\nnul\n--X--\n");
    m
}

#[test]
fn extract_keeps_hostile_names_inside_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("out");
    let out = run(
        &["--extract", target.to_str().expect("utf-8")],
        &hostile_attachments(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = &records(&out)[0];
    let attachments = r["attachments"].as_array().expect("list");
    assert_eq!(attachments.len(), 10);
    let canonical = target.canonicalize().expect("exists");
    for (i, a) in attachments.iter().enumerate() {
        let path = PathBuf::from(a["path"].as_str().expect("path"));
        let real = path.canonicalize().expect("written");
        assert_eq!(
            real.parent(),
            Some(canonical.as_path()),
            "{path:?} left the directory"
        );
        let name = real.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(!name.starts_with('.'), "{name}");
        if i < 9 {
            assert_eq!(
                std::fs::read(&real).expect("read"),
                format!("content {i}").as_bytes()
            );
        }
    }
    let names: Vec<String> = std::fs::read_dir(&target)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 10, "{names:?}");
    for expected in [
        "evil.txt",
        "passwd",
        "win.ini",
        "_CON",
        "bashrc",
        "same.txt",
        "same-1.txt",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
    assert!(!dir.path().join("evil.txt").exists());
}

#[test]
fn fields_keep_only_what_was_asked() {
    let r = one(&["--fields", "subject,from"], "erofs-gb18030.eml");
    let keys: Vec<&String> = r.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["from", "subject"]);
    let r = one(
        &["--fields", "body", "--headers", "--parts"],
        "erofs-pdf-attachment.eml",
    );
    assert!(r["text"].is_string() && r["headers"].is_array() && r["parts"]["parts"].is_array());
    assert!(r.get("attachments").is_none());
    let out = run(&["--fields", "subjcet"], b"");
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn array_and_pretty() {
    let msgs: Vec<Vec<u8>> = (0..3)
        .map(|i| format!("Subject: {i}\n\nbody\n").into_bytes())
        .collect();
    let out = run(&["--array", "--pretty"], &mbox_of(&msgs));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let list = v.as_array().expect("array");
    assert_eq!(list.len(), 3);
    assert_eq!(list[2]["subject"], "2");
}

#[test]
fn order_is_input_order_with_parallel_conversion() {
    // Sizes vary so that threads finish out of order.
    let msgs: Vec<Vec<u8>> = (0..3000)
        .map(|i| format!("Subject: n{i}\n\n{}\n", "x".repeat((i * 7919) % 20_000)).into_bytes())
        .collect();
    let out = run(&["-j", "4", "--fields", "subject"], &mbox_of(&msgs));
    let r = records(&out);
    assert_eq!(r.len(), 3000);
    for (i, rec) in r.iter().enumerate() {
        assert_eq!(rec["subject"], format!("n{i}"));
    }
}

#[test]
fn closed_stdout_ends_quietly() {
    let msgs: Vec<Vec<u8>> = (0..20_000)
        .map(|i| format!("Subject: {i}\n\nbody\n").into_bytes())
        .collect();
    let mbox = mbox_of(&msgs);
    let mut child = mail2json()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&mbox);
    });
    let mut stdout = child.stdout.take().expect("piped");
    let mut first = [0u8; 10];
    std::io::Read::read_exact(&mut stdout, &mut first).expect("some output");
    drop(stdout);
    let out = child.wait_with_output().expect("ends");
    writer.join().expect("writer");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
