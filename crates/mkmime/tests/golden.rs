//! Golden outputs: mkmime's exact bytes for a set of invocations covering
//! every encoding path (7bit, quoted-printable and base64 text; 7bit,
//! quoted-printable and base64 files; --encoding, --lf, --json, --draft),
//! recorded from the in-memory builder before attachments were streamed and
//! compared byte for byte, so streaming changed nothing but memory use.
//! `MKMIME_BLESS=1` rewrites the files in tests/golden/ (review the diff).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::noise;
use mailpipe_e2e::Tool;

const EPOCH: &str = "1700000000";

/// Mostly-ASCII UTF-8 text with CRLF line ends, long lines, trailing
/// blanks, `=` and tabs: what quoted-printable has to get exactly right.
fn qp_text() -> Vec<u8> {
    let mut text = String::new();
    for i in 0..300 {
        let line = match i % 6 {
            0 => format!("line {i}: grüße = {} end ", "x".repeat(i % 90)),
            1 => format!("{}\t", "word ".repeat(i % 40)),
            2 => String::new(),
            3 => "=".repeat(i % 80),
            4 => format!("{}é", "a".repeat(74 + i % 4)),
            _ => format!("tab\tand space {} ", "y".repeat(70 + i % 9)),
        };
        text.push_str(&line);
        text.push_str("\r\n");
    }
    text.push_str("last line without an end ");
    text.into_bytes()
}

struct Inputs {
    _dir: tempfile::TempDir,
    dir: PathBuf,
}

impl Inputs {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }
}

fn inputs() -> Inputs {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().to_path_buf();
    let write = |name: &str, bytes: &[u8]| std::fs::write(p.join(name), bytes).unwrap();
    let mut pdf = b"%PDF-1.4\n".to_vec();
    pdf.extend(noise(20_000, 7));
    write("报告 2026.pdf", &pdf);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(noise(3_000, 9));
    write("logo.png", &png);
    let mut jpeg = b"\xff\xd8\xff\xe0".to_vec();
    jpeg.extend(noise(1_000, 11));
    write("photo.bin", &jpeg);
    write("blob", &noise(4_321, 13));
    write("zeros.bin", &[0u8; 1000]);
    write("57.bin", &noise(57, 1));
    write("58.bin", &noise(58, 2));
    write("empty.dat", b"");
    write("notes.txt", "line one\nline two, ünïcödé\n".as_bytes());
    write("dos.txt", b"line one\r\nline two\r\n");
    write("dos-no-end.txt", b"line one\r\nline two");
    write("说明.txt", &qp_text());
    write("data.csv", "名前,値\r\nа,1\r\n".as_bytes());
    write("lf.eml", b"From: a\nSubject: b\n\nhi\n");
    write(
        "crlf.eml",
        b"From: a@example.org\r\nSubject: b\r\n\r\nhi\r\n",
    );
    write("long.txt", "z".repeat(5_000).as_bytes());
    write("cr-end.txt", b"text\r\nends in CR\r");
    write("bad-utf8.txt", b"caf\xe9\r\n");
    write(
        "body.html",
        "<p>你好, <b>world</b> <img src=\"cid:logo\"> <img src=\"cid:photo\"></p>\n".as_bytes(),
    );
    write("ascii.html", b"<p>hello</p>\n");
    Inputs {
        dir: p.clone(),
        _dir: dir,
    }
}

const FROM: [&str; 6] = [
    "--from",
    "张三 <zs@example.org>",
    "--to",
    "Ann Lee <ann@example.net>, bob@example.com",
    "--subject",
    "SMTP 邮件测试 — a long subject that needs folding, because it goes on past one line",
];

/// (fixture name, arguments, stdin).
fn cases(i: &Inputs) -> Vec<(&'static str, Vec<String>, Vec<u8>)> {
    let base = |extra: &[String]| -> Vec<String> {
        let mut args: Vec<String> = FROM.iter().map(|s| s.to_string()).collect();
        args.extend(extra.iter().cloned());
        args
    };
    let a = |name: &str| ["-a".to_string(), i.path(name)];
    let all_files: Vec<String> = [
        "报告 2026.pdf",
        "logo.png",
        "photo.bin",
        "blob",
        "zeros.bin",
        "57.bin",
        "58.bin",
        "empty.dat",
        "notes.txt",
        "dos.txt",
        "dos-no-end.txt",
        "说明.txt",
        "data.csv",
        "lf.eml",
        "crlf.eml",
        "long.txt",
        "cr-end.txt",
        "bad-utf8.txt",
    ]
    .iter()
    .flat_map(|n| a(n))
    .collect();
    let typed = vec![
        "-a".to_string(),
        format!(
            "{};type=application/x-foo;name=数据.bin",
            i.path("logo.png")
        ),
        "-a".to_string(),
        format!("{};name=附件 说明.txt", i.path("dos.txt")),
        "-a".to_string(),
        format!("{};type=text/plain", i.path("blob")),
    ];
    let inline = vec![
        "--html".to_string(),
        i.path("body.html"),
        "--inline".to_string(),
        i.path("logo.png") + ";cid=logo",
        "--inline".to_string(),
        i.path("photo.bin") + ";cid=photo",
    ];
    let mut inline_and_attach = inline.clone();
    inline_and_attach.extend(a("说明.txt"));
    inline_and_attach.extend(a("blob"));
    let json = serde_json::json!({
        "from": {"name": "李四", "address": "ls@example.org"},
        "to": ["x@example.net", {"name": "Zoë", "address": "zoe@example.net"}],
        "subject": "JSON 输入",
        "text": "正文\n第二行\n",
        "html": "<p>正文</p>\n",
        "attachments": [
            {"path": i.path("blob"), "filename": "数据.bin"},
            {"path": i.path("dos.txt"), "content_type": "text/plain"},
            {"path": i.path("说明.txt")},
        ],
    });
    let draft = format!(
        "From: Me <me@example.org>\nTo: you@example.net\nSubject: draft\nAttach: {}\nAttach: {}\n\nHello\r\nfrom a draft\n",
        i.path("58.bin"),
        i.path("dos.txt"),
    );
    let mut lf = all_files.clone();
    lf.push("--lf".to_string());
    let mut out = vec![
        (
            "text-7bit",
            base(&[]),
            b"Hello,\n\nplain ASCII text.\n".to_vec(),
        ),
        (
            "text-chinese",
            base(&[]),
            "你好，世界\n邮件测试\n".as_bytes().to_vec(),
        ),
        (
            "text-qp",
            base(&[]),
            "Grüße aus Köln, bis bald\n".as_bytes().to_vec(),
        ),
        ("text-long-line", base(&[]), "w ".repeat(100).into_bytes()),
        (
            "html-text",
            base(&["--html".to_string(), i.path("body.html")]),
            b"plain\n".to_vec(),
        ),
        (
            "html-only",
            base(&["--html".to_string(), i.path("ascii.html")]),
            Vec::new(),
        ),
        ("inline-images", base(&inline), "看图\n".as_bytes().to_vec()),
        (
            "inline-and-attachments",
            base(&inline_and_attach),
            "看图\n".as_bytes().to_vec(),
        ),
        (
            "inline-without-html",
            base(&["--inline".to_string(), i.path("logo.png")]),
            b"see\n".to_vec(),
        ),
        (
            "attachments",
            base(&all_files),
            "正文\n".as_bytes().to_vec(),
        ),
        ("attachments-typed", base(&typed), b"typed\n".to_vec()),
        ("attachments-lf", base(&lf), "正文\n".as_bytes().to_vec()),
        (
            "json",
            vec!["--json".to_string()],
            serde_json::to_vec(&json).unwrap(),
        ),
        ("draft", vec!["--draft".to_string()], draft.into_bytes()),
    ];
    for encoding in ["7bit", "8bit", "quoted-printable", "base64"] {
        let mut extra = vec!["--encoding".to_string(), encoding.to_string()];
        extra.extend(a("说明.txt"));
        extra.extend(a("blob"));
        extra.extend(a("dos.txt"));
        let name: &'static str = match encoding {
            "7bit" => "encoding-7bit",
            "8bit" => "encoding-8bit",
            "quoted-printable" => "encoding-qp",
            _ => "encoding-base64",
        };
        let stdin: &[u8] = if encoding == "7bit" {
            b"ascii only\n"
        } else {
            "ünïcödé text\n".as_bytes()
        };
        out.push((name, base(&extra), stdin.to_vec()));
    }
    out
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Runs every case (stdin spooled above `threshold(stdin)` bytes, if
/// given) and returns how each output differs from its recorded bytes.
fn check(threshold: Option<fn(&[u8]) -> usize>) -> Vec<String> {
    let i = inputs();
    let bless = threshold.is_none() && std::env::var_os("MKMIME_BLESS").is_some();
    let mut wrong = Vec::new();
    for (name, args, stdin) in cases(&i) {
        let mut cmd = Command::new(Tool::Mkmime.path());
        cmd.args(&args).env("SOURCE_DATE_EPOCH", EPOCH);
        let name = match threshold {
            Some(threshold) => {
                let bytes = threshold(&stdin);
                cmd.env("MKMIME_SPOOL_THRESHOLD", bytes.to_string());
                format!("{name} (spool threshold {bytes}, stdin {})", stdin.len())
            }
            None => name.to_string(),
        };
        let out = mailpipe_e2e::run_with_stdin(&mut cmd, &stdin);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = golden_dir().join(format!("{}.eml", name.split(' ').next().unwrap()));
        if bless {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&path, &out.stdout).unwrap();
            continue;
        }
        let expected = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (MKMIME_BLESS=1 records it)", path.display()));
        if out.stdout != expected {
            let at = out
                .stdout
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(out.stdout.len().min(expected.len()));
            wrong.push(format!(
                "{name}: differs at byte {at} (got {} bytes, expected {})",
                out.stdout.len(),
                expected.len()
            ));
        }
    }
    wrong
}

#[test]
fn outputs_match_the_recorded_bytes() {
    let wrong = check(None);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The same bytes when stdin (and an --html file) is spooled to a file and
/// streamed (threshold 0: everything; one byte under stdin's size), and when
/// stdin is exactly at the threshold and held.
#[test]
fn spooled_stdin_gives_the_same_bytes() {
    let mut wrong = check(Some(|_| 0));
    wrong.extend(check(Some(|stdin| stdin.len().saturating_sub(1))));
    wrong.extend(check(Some(|stdin| stdin.len())));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
