//! The whole pipeline against the real stack, as a user types it:
//!
//!     mkmime ... | smtp-send --account A -t
//!     imap-dump --account A --search 'HEADER Message-ID <id>' | mail2json --headers
//!     pop3-dump --account A | mail2json --headers
//!
//! Each stage is a real process and the `|` are real pipes. For each kind of
//! message (plain UTF-8, Chinese, a Chinese attachment name, text + HTML, a
//! 5 MB attachment, Bcc) the JSON that comes back over IMAP and over POP3 must
//! say what went into mkmime: subject, addresses, text, html, every
//! attachment's name, type, size and sha256; no Bcc header anywhere, and the
//! Bcc recipient got the message. Half the messages go over SMTPS and are read
//! over IMAPS/POP3S, the other half use STARTTLS/STLS on the way in and out.
//! The last test answers a fetched message with `mail2json --extract | (a jq-like
//! transform) | mkmime --json | smtp-send`, which only works if the two tools
//! agree on field names.
//!
//! Mail accumulates in the shared stack and tests run in parallel, so every
//! message has its own Message-ID and is picked by it. Without the stack the
//! tests fail with the command that starts it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mailpipe_e2e::{Stack, Tool};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------
// Running tools as a shell pipeline

struct Stage {
    command: String,
    status: ExitStatus,
    stderr: String,
}

/// Runs `commands` connected by OS pipes, `input` on the first one's stdin
/// (none: /dev/null), and returns the last one's stdout. Panics, with every
/// stage's status and stderr, unless all of them exit 0.
fn pipe(commands: Vec<Command>, input: Option<&[u8]>) -> Vec<u8> {
    let mut children = Vec::new();
    let mut names = Vec::new();
    let mut previous: Option<std::process::ChildStdout> = None;
    for (i, mut cmd) in commands.into_iter().enumerate() {
        names.push(format!("{cmd:?}"));
        let stdin = match previous.take() {
            Some(out) => Stdio::from(out),
            None if i == 0 && input.is_some() => Stdio::piped(),
            None => Stdio::null(),
        };
        cmd.stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        previous = child.stdout.take();
        children.push(child);
    }
    // Writers and stderr readers on threads, so no stage can block another.
    let writer = children[0].stdin.take().map(|mut stdin| {
        let bytes = input.unwrap_or_default().to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        })
    });
    let readers: Vec<_> = children
        .iter_mut()
        .map(|c| {
            let mut err = c.stderr.take().expect("stderr is piped");
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = err.read_to_string(&mut text);
                text
            })
        })
        .collect();
    let mut stdout = Vec::new();
    previous
        .expect("the last stage's stdout is piped")
        .read_to_end(&mut stdout)
        .expect("reading the pipeline's output");
    let stages: Vec<Stage> = children
        .into_iter()
        .zip(readers)
        .zip(names)
        .map(|((mut child, reader), command)| Stage {
            status: child.wait().expect("stage runs to the end"),
            stderr: reader.join().expect("stderr reader"),
            command,
        })
        .collect();
    if let Some(w) = writer {
        w.join().expect("stdin writer");
    }
    if stages.iter().any(|s| !s.status.success()) {
        let report: Vec<String> = stages
            .iter()
            .map(|s| format!("{} -> {}\n{}", s.command, s.status, s.stderr))
            .collect();
        panic!("pipeline failed:\n{}", report.join("\n"));
    }
    stdout
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8(bytes.to_vec())
        .expect("mail2json writes UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A Message-ID nobody else's test uses, in the stack's domain.
fn unique_id(tag: &str, stack: &Stack) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("{tag}.{}.{nanos}@{}", std::process::id(), stack.domain)
}

// ---------------------------------------------------------------------------
// The user's setup: an accounts file, as README describes it

#[derive(Clone, Copy, Debug)]
enum Security {
    /// smtps://, imaps://, pop3s://
    Implicit,
    /// smtp:// (submission, STARTTLS), imap:// (STARTTLS), pop3:// (STLS)
    StartTls,
}

struct Fixture {
    stack: Stack,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let stack = Stack::get();
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("accounts.toml");
        let s = &stack;
        let mut text = String::new();
        for (name, user, password_env) in [
            ("alice", &s.user1, "MAILSTACK_PASS1"),
            ("bob", &s.user2, "MAILSTACK_PASS2"),
        ] {
            text += &format!(
                "[accounts.{name}-tls]\n\
                 smtp = \"smtps://localhost:{}\"\n\
                 imap = \"imaps://localhost:{}\"\n\
                 pop3 = \"pop3s://localhost:{}\"\n\
                 user = \"{user}\"\n\
                 password_env = \"{password_env}\"\n\
                 ca_file = \"{}\"\n\n\
                 [accounts.{name}-starttls]\n\
                 smtp = \"smtp://localhost:{}\"\n\
                 imap = \"imap://localhost:{}\"\n\
                 pop3 = \"pop3://localhost:{}\"\n\
                 user = \"{user}\"\n\
                 password_env = \"{password_env}\"\n\
                 ca_file = \"{}\"\n\n",
                s.smtps_port,
                s.imaps_port,
                s.pop3s_port,
                s.ca_file.display(),
                s.submission_port,
                s.imap_port,
                s.pop3_port,
                s.ca_file.display(),
            );
        }
        std::fs::write(&config, text).expect("writing accounts.toml");
        Fixture { stack, dir, config }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A tool with the accounts file and the passwords in its environment only.
    fn command(&self, name: &str) -> Command {
        let mut cmd = Tool::named(name).command();
        cmd.env("MAILPIPE_CONFIG", &self.config)
            .env("MAILSTACK_PASS1", &self.stack.pass1)
            .env("MAILSTACK_PASS2", &self.stack.pass2)
            .env_remove("SOURCE_DATE_EPOCH");
        cmd
    }

    fn account(user: &str, security: Security) -> String {
        match security {
            Security::Implicit => format!("{user}-tls"),
            Security::StartTls => format!("{user}-starttls"),
        }
    }

    /// `mkmime ARGS < body | smtp-send --account A -t`.
    fn send(&self, mkmime_args: &[String], body: &[u8], security: Security) {
        let mut mkmime = self.command("mkmime");
        mkmime.args(mkmime_args);
        let mut send = self.command("smtp-send");
        send.args(["--account", &Self::account("alice", security), "-t"]);
        let out = pipe(vec![mkmime, send], Some(body));
        assert!(out.is_empty(), "smtp-send wrote to stdout: {out:?}");
    }

    /// `imap-dump --account U --search 'HEADER Message-ID "<id>"' | mail2json --headers`,
    /// repeated until Postfix has delivered the message (at most 30 s).
    fn imap(&self, user: &str, security: Security, message_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut dump = self.command("imap-dump");
            dump.args([
                "--account",
                &Self::account(user, security),
                "--mailbox",
                "INBOX",
                "--search",
                &format!("HEADER Message-ID \"<{message_id}>\""),
            ]);
            let mut json = self.command("mail2json");
            json.arg("--headers");
            let records = json_lines(&pipe(vec![dump, json], None));
            match records.len() {
                0 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                0 => panic!("{message_id} never reached {user}'s INBOX over IMAP"),
                1 => return records.into_iter().next().expect("one record"),
                n => panic!("{n} messages with Message-ID {message_id} in {user}'s INBOX"),
            }
        }
    }

    /// `pop3-dump --account U | mail2json --headers`, the one record with this
    /// Message-ID (the maildrop holds every test's mail).
    fn pop3(&self, user: &str, security: Security, message_id: &str) -> Value {
        let mut dump = self.command("pop3-dump");
        dump.args(["--account", &Self::account(user, security)]);
        let mut json = self.command("mail2json");
        json.arg("--headers");
        let mut found: Vec<Value> = json_lines(&pipe(vec![dump, json], None))
            .into_iter()
            .filter(|r| r["message_id"] == message_id)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "messages with Message-ID {message_id} in {user}'s POP3 maildrop"
        );
        found.remove(0)
    }
}

// ---------------------------------------------------------------------------
// What went in, and the checks a user would make on what came out

struct Attachment {
    filename: String,
    content_type: String,
    content: Vec<u8>,
}

struct Sent {
    message_id: String,
    from: Value,
    to: Value,
    cc: Value,
    subject: String,
    text: String,
    html: Option<String>,
    attachments: Vec<Attachment>,
}

/// `{name, address}` as mail2json writes it.
fn addr(name: Option<&str>, address: &str) -> Value {
    json!({ "name": name, "address": address })
}

fn assert_received(record: &Value, sent: &Sent, via: &str) {
    let id = &sent.message_id;
    assert_eq!(record["message_id"], sent.message_id.as_str(), "{via}");
    assert_eq!(
        record["subject"],
        sent.subject.as_str(),
        "subject {via} ({id})"
    );
    assert_eq!(record["from"], sent.from, "from {via} ({id})");
    assert_eq!(record["to"], sent.to, "to {via} ({id})");
    assert_eq!(record["cc"], sent.cc, "cc {via} ({id})");
    assert_eq!(record["bcc"], json!([]), "bcc {via} ({id})");
    assert_eq!(record["text"], sent.text.as_str(), "text {via} ({id})");
    assert_eq!(record["html"], json!(sent.html), "html {via} ({id})");
    assert_eq!(record["defects"], json!([]), "defects {via} ({id})");

    let got: Vec<Value> = record["attachments"]
        .as_array()
        .unwrap_or_else(|| panic!("attachments is a list {via}: {record}"))
        .iter()
        .map(|a| {
            json!({
                "filename": a["filename"],
                "content_type": a["content_type"],
                "size": a["size"],
                "sha256": a["sha256"],
            })
        })
        .collect();
    let expected: Vec<Value> = sent
        .attachments
        .iter()
        .map(|a| {
            json!({
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.content.len(),
                "sha256": sha256_hex(&a.content),
            })
        })
        .collect();
    assert_eq!(got, expected, "attachments {via} ({id})");

    let headers = record["headers"]
        .as_array()
        .unwrap_or_else(|| panic!("headers is a list {via}: {record}"));
    let bcc: Vec<&Value> = headers
        .iter()
        .filter(|h| {
            h["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case("bcc"))
        })
        .collect();
    assert!(bcc.is_empty(), "a Bcc header arrived {via} ({id}): {bcc:?}");
}

/// The same message read over IMAP and over POP3 is the same JSON, apart from
/// where mail2json read it.
fn assert_same_message(a: &Value, b: &Value, what: &str) {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("source");
        }
        v
    };
    assert_eq!(strip(a), strip(b), "{what}");
}

/// Writes each attachment to a file named `on_disk` and returns mkmime's
/// `-a FILE[OPTIONS]` arguments (`options`: "" or e.g. ";name=N").
fn attach_args(fixture: &Fixture, files: &[(&str, &str, &Attachment)]) -> Vec<String> {
    let mut args = Vec::new();
    for (on_disk, options, attachment) in files {
        let path = fixture.path(on_disk);
        std::fs::write(&path, &attachment.content).expect("writing an attachment");
        args.push("-a".to_string());
        args.push(format!("{}{options}", path.display()));
    }
    args
}

/// Sends `sent` with mkmime (extra args given) and checks it over IMAP and POP3
/// with the same security the message was submitted with.
/// Returns what mail2json said over IMAP and over POP3.
fn round_trip(
    fixture: &Fixture,
    sent: &Sent,
    mkmime_args: Vec<String>,
    security: Security,
) -> (Value, Value) {
    let mut args = mkmime_args;
    args.push("-H".into());
    args.push(format!("Message-ID: <{}>", sent.message_id));
    fixture.send(&args, sent.text.as_bytes(), security);

    let over_imap = fixture.imap("alice", security, &sent.message_id);
    assert_received(&over_imap, sent, &format!("over IMAP ({security:?})"));
    let over_pop3 = fixture.pop3("alice", security, &sent.message_id);
    assert_received(&over_pop3, sent, &format!("over POP3 ({security:?})"));
    assert_same_message(&over_imap, &over_pop3, "IMAP and POP3 disagree");
    (over_imap, over_pop3)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Bytes that look like nothing in particular (no magic number, not text).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn minimal_pdf() -> Vec<u8> {
    let mut pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    pdf.extend(noise(3000, 7));
    pdf.extend(b"\n%%EOF\n");
    pdf
}

// ---------------------------------------------------------------------------
// The messages

#[test]
fn plain_utf8_over_smtps_imaps_pop3s() {
    let f = Fixture::new();
    let s = &f.stack;
    let sent = Sent {
        message_id: unique_id("plain", s),
        from: json!([addr(Some("Alice Example"), &s.user1)]),
        to: json!([addr(None, &s.user1)]),
        cc: json!([]),
        subject: "Plain UTF-8: café, naïve, Grüße — ✓".into(),
        text: "Grüße aus Köln!\n\nThis line is plain ASCII.\nÇa va? ½ € ✓\n".into(),
        html: None,
        attachments: vec![],
    };
    let args = vec![
        "--from".into(),
        format!("Alice Example <{}>", s.user1),
        "--to".into(),
        s.user1.clone(),
        "--subject".into(),
        sent.subject.clone(),
    ];
    round_trip(&f, &sent, args, Security::Implicit);
}

#[test]
fn chinese_subject_and_body_over_starttls() {
    let f = Fixture::new();
    let s = &f.stack;
    // Long enough that the subject is folded into several encoded-words.
    let subject = "周报：第47周项目进展、风险与下周计划（请各位负责人在周五前确认并回复邮件）";
    let text =
        "各位好：\n\n本周完成了邮件管道的端到端测试，IMAP 和 POP3 读回的内容与发送的一致。\n\
                下周计划：性能测试、模糊测试，以及 QQ 邮箱、Gmail、Outlook 的配置说明。\n\n\
                此致\n敬礼\n张三\n";
    let sent = Sent {
        message_id: unique_id("chinese", s),
        from: json!([addr(Some("张三"), &s.user1)]),
        to: json!([addr(Some("李四"), &s.user1)]),
        cc: json!([]),
        subject: subject.into(),
        text: text.into(),
        html: None,
        attachments: vec![],
    };
    let args = vec![
        "--from".into(),
        format!("张三 <{}>", s.user1),
        "--to".into(),
        format!("李四 <{}>", s.user1),
        "-s".into(),
        subject.into(),
    ];
    round_trip(&f, &sent, args, Security::StartTls);
}

#[test]
fn chinese_attachment_names_over_smtps() {
    let f = Fixture::new();
    let s = &f.stack;
    let report = Attachment {
        filename: "报告 2026.pdf".into(),
        content_type: "application/pdf".into(),
        content: minimal_pdf(),
    };
    // Long enough for RFC 2231 continuations (filename*0*=, filename*1*=, ...).
    let sheet = Attachment {
        filename: "2026年第一季度华东区销售数据汇总表（最终版，请勿外传）.csv".into(),
        content_type: "text/csv".into(),
        content: "地区,销售额\n上海,1200\n杭州,980\n".as_bytes().to_vec(),
    };
    let sent = Sent {
        message_id: unique_id("gbkname", s),
        from: json!([addr(None, &s.user1)]),
        to: json!([addr(None, &s.user1)]),
        cc: json!([]),
        subject: "附件：报告 2026".into(),
        text: "见附件。\n".into(),
        html: None,
        attachments: vec![report, sheet],
    };
    let mut args = strings(&["--from", &s.user1, "--to", &s.user1, "-s", &sent.subject]);
    args.extend(attach_args(
        &f,
        &[
            ("报告 2026.pdf", "", &sent.attachments[0]),
            (&sent.attachments[1].filename, "", &sent.attachments[1]),
        ],
    ));
    round_trip(&f, &sent, args, Security::Implicit);
}

#[test]
fn text_and_html_alternative_over_starttls() {
    let f = Fixture::new();
    let s = &f.stack;
    let html = "<!doctype html>\n<html><body>\n<h1>周报</h1>\n\
                <p>Numbers are <b>up</b> 12&nbsp;% — see the <a href=\"https://example.org/r\">report</a>.</p>\n\
                </body></html>\n";
    let sent = Sent {
        message_id: unique_id("html", s),
        from: json!([addr(Some("Reports"), &s.user1)]),
        to: json!([addr(None, &s.user1)]),
        cc: json!([]),
        subject: "Weekly numbers / 周报".into(),
        text: "周报\n\nNumbers are up 12 % - see the report: https://example.org/r\n".into(),
        html: Some(html.into()),
        attachments: vec![],
    };
    let html_file = f.path("body.html");
    std::fs::write(&html_file, html).expect("writing body.html");
    let args = vec![
        "--from".into(),
        format!("Reports <{}>", s.user1),
        "--to".into(),
        s.user1.clone(),
        "-s".into(),
        sent.subject.clone(),
        "--html".into(),
        html_file.display().to_string(),
    ];
    round_trip(&f, &sent, args, Security::StartTls);
}

#[test]
fn five_megabyte_attachment_over_smtps() {
    let f = Fixture::new();
    let s = &f.stack;
    let big = Attachment {
        filename: "backup.bin".into(),
        content_type: "application/octet-stream".into(),
        content: noise(5 * 1024 * 1024, 0x5eed),
    };
    let sent = Sent {
        message_id: unique_id("big", s),
        from: json!([addr(None, &s.user1)]),
        to: json!([addr(None, &s.user1)]),
        cc: json!([]),
        subject: "5 MB attachment".into(),
        text: "The backup is attached.\n".into(),
        html: None,
        attachments: vec![big],
    };
    let mut args = strings(&["--from", &s.user1, "--to", &s.user1, "-s", &sent.subject]);
    args.extend(attach_args(&f, &[("backup.bin", "", &sent.attachments[0])]));
    round_trip(&f, &sent, args, Security::Implicit);
}

#[test]
fn bcc_reaches_its_recipient_and_nobody_sees_it() {
    let f = Fixture::new();
    let s = &f.stack;
    let sent = Sent {
        message_id: unique_id("bcc", s),
        from: json!([addr(None, &s.user1)]),
        to: json!([addr(Some("Alice"), &s.user1)]),
        cc: json!([]),
        subject: "Bcc: 秘密抄送".into(),
        text: "Bob is on Bcc; Alice must not see it.\n".into(),
        html: None,
        attachments: vec![],
    };
    let args = vec![
        "--from".into(),
        s.user1.clone(),
        "--to".into(),
        format!("Alice <{}>", s.user1),
        "--bcc".into(),
        s.user2.clone(),
        "-s".into(),
        sent.subject.clone(),
    ];
    let (alice_imap, alice_pop3) = round_trip(&f, &sent, args, Security::StartTls);
    // Nothing in Alice's copy, not even a Received line, names Bob.
    for (via, record) in [("IMAP", &alice_imap), ("POP3", &alice_pop3)] {
        let headers = record["headers"].to_string();
        assert!(
            !headers.contains(&s.user2),
            "Alice's copy over {via} names the Bcc recipient: {headers}"
        );
    }

    // Bob, who is named nowhere in the message, got it, without the Bcc line.
    let bob_imap = f.imap("bob", Security::Implicit, &sent.message_id);
    assert_received(&bob_imap, &sent, "to the Bcc recipient over IMAP");
    let bob_pop3 = f.pop3("bob", Security::StartTls, &sent.message_id);
    assert_received(&bob_pop3, &sent, "to the Bcc recipient over POP3");
    assert_same_message(&bob_imap, &bob_pop3, "Bob's copy over IMAP and POP3");
}

/// What Foxmail or Outlook 2007 send: GBK bytes in base64 under a GB2312 label
/// (with a character only GBK has), RFC 2047 `=?GBK?B?` names. Not mkmime's
/// output: smtp-send must pass it untouched and mail2json must decode it.
#[test]
fn gbk_message_from_an_old_client_over_starttls() {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;

    let f = Fixture::new();
    let s = &f.stack;
    let gbk = |text: &str| -> Vec<u8> {
        let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
        assert!(!unmappable, "{text} is GBK");
        bytes.into_owned()
    };
    let word = |text: &str| format!("=?GBK?B?{}?=", B64.encode(gbk(text)));
    let wrapped = |bytes: &[u8]| -> String {
        let line = B64.encode(bytes);
        let chunks: Vec<&str> = line
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect();
        chunks.join("\r\n")
    };
    let report = Attachment {
        filename: "报告 2026.pdf".into(),
        content_type: "application/pdf".into(),
        content: minimal_pdf(),
    };
    // 喆 is in GBK, not in GB2312; mailers label such text GB2312 anyway.
    let text = "陶喆：\n\n季度报告见附件。\n";
    let sent = Sent {
        message_id: unique_id("gbk", s),
        from: json!([addr(Some("张三"), &s.user1)]),
        to: json!([addr(Some("陶喆"), &s.user1)]),
        cc: json!([]),
        subject: "季度报告 2026".into(),
        text: text.into(),
        html: None,
        attachments: vec![report],
    };
    let boundary = "----=_NextPart_000_0012_01DA0000.5A5A5A5A";
    let subject = format!("=?GB2312?B?{}?= 2026", B64.encode(gbk("季度报告")));
    let message = format!(
        "From: {} <{user}>\r\n\
         To: {} <{user}>\r\n\
         Subject: {subject}\r\n\
         Date: Mon, 2 Mar 2026 09:30:00 +0800\r\n\
         Message-ID: <{id}>\r\n\
         MIME-Version: 1.0\r\n\
         X-Mailer: Foxmail 7.2.25.375\r\n\
         Content-Type: multipart/mixed;\r\n\tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a multi-part message in MIME format.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain;\r\n\tcharset=\"gb2312\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n\
         {body}\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: application/pdf;\r\n\tname=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment;\r\n\tfilename=\"{name}\"\r\n\
         \r\n\
         {pdf}\r\n\
         \r\n\
         --{boundary}--\r\n",
        word("张三"),
        word("陶喆"),
        user = s.user1,
        id = sent.message_id,
        body = wrapped(&gbk(&text.replace('\n', "\r\n"))),
        name = word("报告 2026.pdf"),
        pdf = wrapped(&sent.attachments[0].content),
    );
    let mut send = f.command("smtp-send");
    send.args(["--account", "alice-starttls", "-t"]);
    pipe(vec![send], Some(message.as_bytes()));

    let over_imap = f.imap("alice", Security::StartTls, &sent.message_id);
    assert_received(&over_imap, &sent, "over IMAP");
    assert_eq!(over_imap["date"], "2026-03-02T09:30:00+08:00");
    let over_pop3 = f.pop3("alice", Security::StartTls, &sent.message_id);
    assert_received(&over_pop3, &sent, "over POP3");
    assert_same_message(&over_imap, &over_pop3, "IMAP and POP3 disagree");
}

// ---------------------------------------------------------------------------
// mail2json's fields are mkmime's input

/// `{from, to, subject, ...}` of a reply, as the README's jq line builds it,
/// with the extracted attachments sent back.
fn reply_from(record: &Value, reply_id: &str) -> Value {
    let attachments: Vec<Value> = record["attachments"]
        .as_array()
        .expect("attachments is a list")
        .iter()
        .map(|a| {
            json!({
                "path": a["path"],
                "filename": a["filename"],
                "content_type": a["content_type"],
            })
        })
        .collect();
    json!({
        "from": record["to"],
        "to": record["from"],
        "subject": format!("Re: {}", record["subject"].as_str().expect("subject is a string")),
        "in_reply_to": record["message_id"],
        "references": [record["message_id"]],
        "message_id": reply_id,
        "text": format!("Thanks!\n\n> {}", record["text"].as_str().expect("text is a string")),
        "html": record["html"],
        "attachments": attachments,
    })
}

#[test]
fn mail2json_extract_transform_mkmime_json_round_trip() {
    let f = Fixture::new();
    let s = &f.stack;
    let photo = Attachment {
        filename: "照片 2026.png".into(),
        content_type: "image/png".into(),
        content: [b"\x89PNG\r\n\x1a\n".as_slice(), &noise(20_000, 3)].concat(),
    };
    let report = Attachment {
        filename: "报告 2026.pdf".into(),
        content_type: "application/pdf".into(),
        content: minimal_pdf(),
    };
    let original = Sent {
        message_id: unique_id("question", s),
        from: json!([addr(Some("王五"), &s.user2)]),
        to: json!([addr(Some("Alice"), &s.user1)]),
        cc: json!([]),
        subject: "问题：报告和照片".into(),
        text: "请看附件，谢谢。\n".into(),
        html: Some("<p>请看附件，<b>谢谢</b>。</p>\n".into()),
        attachments: vec![photo, report],
    };
    let html_file = f.path("question.html");
    std::fs::write(&html_file, original.html.as_deref().unwrap_or_default()).expect("html");
    let mut args = vec![
        "--from".into(),
        format!("王五 <{}>", s.user2),
        "--to".into(),
        format!("Alice <{}>", s.user1),
        "-s".into(),
        original.subject.clone(),
        "--html".into(),
        html_file.display().to_string(),
    ];
    args.extend(attach_args(
        &f,
        &[
            // Sent under the name given, not the file's name on disk.
            ("upload-1", ";name=照片 2026.png", &original.attachments[0]),
            ("upload-2", ";name=报告 2026.pdf", &original.attachments[1]),
        ],
    ));
    round_trip(&f, &original, args, Security::Implicit);

    // imap-dump | mail2json --extract DIR
    let extract_dir = f.path("extracted");
    let mut dump = f.command("imap-dump");
    dump.args([
        "--account",
        "alice-tls",
        "--search",
        &format!("HEADER Message-ID \"<{}>\"", original.message_id),
    ]);
    let mut to_json = f.command("mail2json");
    to_json.arg("--extract").arg(&extract_dir);
    let records = json_lines(&pipe(vec![dump, to_json], None));
    assert_eq!(records.len(), 1, "one message fetched: {records:?}");
    let record = &records[0];
    for a in record["attachments"].as_array().expect("attachments") {
        let path = Path::new(a["path"].as_str().expect("--extract adds path"));
        assert!(
            path.starts_with(&extract_dir),
            "{path:?} outside {extract_dir:?}"
        );
        let content = std::fs::read(path).expect("extracted file");
        assert_eq!(a["sha256"], sha256_hex(&content).as_str(), "{path:?}");
    }

    // The jq step, in Rust; then mkmime --json | smtp-send -t, as Alice.
    let reply_id = unique_id("reply", s);
    let reply = reply_from(record, &reply_id);
    let mut mkmime = f.command("mkmime");
    mkmime.arg("--json");
    let mut send = f.command("smtp-send");
    send.args(["--account", "alice-tls", "-t"]);
    pipe(vec![mkmime, send], Some(reply.to_string().as_bytes()));

    // Bob reads the reply over POP3 after IMAP saw it arrive.
    let over_imap = f.imap("bob", Security::StartTls, &reply_id);
    let over_pop3 = f.pop3("bob", Security::Implicit, &reply_id);
    let answered = Sent {
        message_id: reply_id,
        from: json!([addr(Some("Alice"), &s.user1)]),
        to: json!([addr(Some("王五"), &s.user2)]),
        cc: json!([]),
        subject: "Re: 问题：报告和照片".into(),
        text: "Thanks!\n\n> 请看附件，谢谢。\n".into(),
        html: original.html.clone(),
        attachments: original.attachments,
    };
    for (via, got) in [("IMAP", &over_imap), ("POP3", &over_pop3)] {
        assert_received(got, &answered, &format!("the reply over {via}"));
        assert_eq!(got["in_reply_to"], original.message_id.as_str(), "{via}");
        assert_eq!(got["references"], json!([original.message_id]), "{via}");
    }
}
