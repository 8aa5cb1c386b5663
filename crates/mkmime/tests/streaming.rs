//! Attachments are streamed: a 2 GiB file becomes a message in a few MB of
//! memory, read back by a checker that never holds it either (decoding the
//! base64 a line at a time into a running sha256); Python's email package
//! reads a 50 MB one back exactly; a pipe is read once or refused; a file
//! that changes while mkmime reads it is an error, never a silently wrong
//! message.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::Instant;

use base64::Engine as _;
use common::noise;
use mailpipe_e2e::Tool;
use sha2::{Digest, Sha256};

const EPOCH: &str = "1700000000";

/// What a Python script given `eml` prints (trimmed), after checking it
/// succeeded: Python's email package as the independent reader.
fn python_prints(script: &str, eml: &Path) -> String {
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(eml)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn file_sha256(path: &Path) -> String {
    let mut h = Sha256::new();
    let mut f = File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex(&h.finalize())
}

/// `=_` and 32 hex digits (a boundary mkmime made) replaced by `=_B`, so
/// that two runs without SOURCE_DATE_EPOCH compare.
fn normalize(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("=_") {
        out.push_str(&rest[..at]);
        let token = rest[at + 2..].get(..32).unwrap_or("");
        if token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
            out.push_str("=_B");
            rest = &rest[at + 34..];
        } else {
            out.push_str("=_");
            rest = &rest[at + 2..];
        }
    }
    out.push_str(rest);
    if out.starts_with("Date: ") {
        return "Date: *".to_string();
    }
    if out.starts_with("Message-ID: ") {
        return "Message-ID: *".to_string();
    }
    out
}

/// A base64 body, decoded as it streamed past.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    lines: u64,
    bytes: u64,
    sha256: String,
}

/// What the checker saw: every line outside base64 bodies (normalized),
/// with `[base64]` where a body was, and the bodies' summaries in order.
#[derive(Debug, Default)]
struct Skeleton {
    lines: Vec<String>,
    bodies: Vec<Decoded>,
}

fn read_line(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    (r.read_until(b'\n', &mut line).unwrap() > 0).then_some(line)
}

/// Decodes a base64 body of 76-character CRLF lines up to the boundary line
/// that ends it, which it returns. Full lines are taken straight from the
/// reader's buffer; nothing of the body is kept.
fn decode_body(r: &mut BufReader<impl Read>) -> (Decoded, Vec<u8>) {
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut h = Sha256::new();
    let mut decoded = vec![0u8; 57 * 4096];
    let mut filled = 0;
    let (mut lines, mut bytes) = (0u64, 0u64);
    let mut last_was_short = false;
    let boundary = loop {
        let buf = r.fill_buf().unwrap();
        let mut i = 0;
        while i + 78 <= buf.len() && buf[i] != b'-' && &buf[i + 76..i + 78] == b"\r\n" {
            assert!(!last_was_short, "a base64 line after a short one");
            if filled + 57 > decoded.len() {
                h.update(&decoded[..filled]);
                filled = 0;
            }
            filled += engine
                .decode_slice(&buf[i..i + 76], &mut decoded[filled..])
                .unwrap();
            lines += 1;
            bytes += 57;
            i += 78;
        }
        r.consume(i);
        if i > 0 {
            continue;
        }
        let line = read_line(r).expect("the body ends with a boundary");
        assert!(line.ends_with(b"\r\n"), "a line without CRLF");
        if line.starts_with(b"--") {
            break line;
        }
        let text = &line[..line.len() - 2];
        assert!(text.len() <= 76, "a base64 line of {}", text.len());
        if filled + 57 > decoded.len() {
            h.update(&decoded[..filled]);
            filled = 0;
        }
        let n = engine.decode_slice(text, &mut decoded[filled..]).unwrap();
        filled += n;
        bytes += n as u64;
        lines += 1;
        last_was_short = text.len() < 76;
    };
    h.update(&decoded[..filled]);
    let sha256 = hex(&h.finalize());
    (
        Decoded {
            lines,
            bytes,
            sha256,
        },
        boundary,
    )
}

/// Walks a MIME message as it streams past: header blocks, boundaries, and
/// bodies (base64 ones decoded on the fly, others kept as lines).
fn skeleton(r: impl Read) -> Skeleton {
    let mut r = BufReader::with_capacity(1 << 20, r);
    let mut out = Skeleton::default();
    'parts: loop {
        // A header block.
        let mut base64 = false;
        loop {
            let line = read_line(&mut r).expect("a header block ends with a blank line");
            let text = String::from_utf8(line).unwrap();
            assert!(text.ends_with("\r\n"), "{text:?}");
            base64 |= text.eq_ignore_ascii_case("Content-Transfer-Encoding: base64\r\n");
            out.lines.push(normalize(text.trim_end()));
            if text == "\r\n" {
                break;
            }
        }
        let mut boundary = if base64 {
            let (decoded, boundary) = decode_body(&mut r);
            out.lines.push("[base64]".to_string());
            out.bodies.push(decoded);
            Some(boundary)
        } else {
            None
        };
        loop {
            let line = match boundary.take() {
                Some(line) => line,
                None => match read_line(&mut r) {
                    Some(line) => line,
                    None => break 'parts,
                },
            };
            let text = String::from_utf8(line).unwrap();
            out.lines.push(normalize(text.trim_end()));
            if text.starts_with("--=_") && !text.trim_end().ends_with("--") {
                continue 'parts;
            }
        }
    }
    out
}

/// mkmime with `args` under GNU time: (its output's skeleton, its peak RSS
/// in kB, seconds taken).
fn run_measured(args: &[&str], epoch: Option<&str>) -> (Skeleton, u64, f64) {
    let (seen, kb, seconds, ()) = run_measured_with(args, epoch, |mut stdin| {
        stdin.write_all(b"the file is attached\n").unwrap();
    });
    (seen, kb, seconds)
}

/// The same with stdin written by `feed` (in a thread, while the output is
/// read), which returns what it wants to tell.
fn run_measured_with<T: Send + 'static>(
    args: &[&str],
    epoch: Option<&str>,
    feed: impl FnOnce(ChildStdin) -> T + Send + 'static,
) -> (Skeleton, u64, f64, T) {
    assert!(
        Path::new("/usr/bin/time").exists(),
        "GNU time is missing: apt-get install time (scripts/test does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let rss = dir.path().join("rss");
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%M", "-o"])
        .arg(&rss)
        .arg(Tool::Mkmime.path())
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(epoch) = epoch {
        cmd.env("SOURCE_DATE_EPOCH", epoch);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || feed(stdin));
    let seen = skeleton(child.stdout.take().unwrap());
    let out = child.wait_with_output().unwrap();
    let told = writer.join().unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kb = std::fs::read_to_string(&rss).unwrap();
    let kb: u64 = kb.lines().last().unwrap().trim().parse().unwrap();
    (seen, kb, seconds, told)
}

fn sparse(dir: &Path, name: &str, len: u64) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    File::create(&path).unwrap().set_len(len).unwrap();
    path
}

#[test]
fn two_gib_sparse_attachment_streams_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let name = "大文件 2026.bin";
    let big = sparse(&dir.path().join("big"), name, 2 << 30);
    let small = sparse(&dir.path().join("small"), name, 1 << 20);
    let args = |path: &Path| -> Vec<String> {
        [
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "-s",
            "大",
            "-a",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([path.to_str().unwrap().to_string()])
        .collect()
    };
    let small_args = args(&small);
    let small_args: Vec<&str> = small_args.iter().map(String::as_str).collect();
    let (reference, _, _) = run_measured(&small_args, None);
    let big_args = args(&big);
    let big_args: Vec<&str> = big_args.iter().map(String::as_str).collect();
    let (seen, kb, seconds) = run_measured(&big_args, None);
    eprintln!("2 GiB attachment: {seconds:.1} s, peak RSS {kb} kB");

    // Same structure, line for line, as the 1 MiB run.
    assert_eq!(seen.lines, reference.lines);
    assert!(
        seen.lines
            .iter()
            .any(|l| l == "Content-Type: application/octet-stream"),
        "{:?}",
        seen.lines
    );
    assert_eq!(seen.bodies.len(), 1, "{:?}", seen.bodies);
    let sha = file_sha256(&big);
    let body = &seen.bodies[0];
    assert_eq!(body.bytes, 2 << 30);
    assert_eq!(body.lines, (2u64 << 30).div_ceil(57));
    assert_eq!(body.sha256, sha);
    assert_eq!(reference.bodies[0].sha256, file_sha256(&small));
    assert!(kb < 32 * 1024, "peak RSS {kb} kB for a 2 GiB attachment");
}

/// A MiB or so of Chinese text in CRLF lines (base64 in a message), the
/// same for the same `seed`.
fn chinese_block(seed: u32) -> Vec<u8> {
    const CHARS: [&str; 8] = ["邮", "件", "测", "试", "正", "文", "，", "。"];
    let mut text = format!("第 {seed} 块\r\n");
    let mut x = seed;
    while text.len() < 1 << 20 {
        for _ in 0..(x >> 27) + 10 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            text.push_str(CHARS[(x >> 29) as usize]);
        }
        text.push_str("\r\n");
    }
    text.into_bytes()
}

/// Issue 16: a body of any size on stdin is spooled to a temporary file and
/// streamed, so 1 GiB of text costs no more memory than a short one, and it
/// decodes to exactly the bytes sent (CRLF text, so nothing is normalized).
#[test]
fn one_gib_body_on_stdin_streams_in_bounded_memory() {
    // A small attachment too: the checker reads a multipart message.
    let dir = tempfile::tempdir().unwrap();
    let small = sparse(dir.path(), "small.bin", 1000);
    let args = [
        "--from",
        "a@example.org",
        "--to",
        "b@example.org",
        "-s",
        "大",
        "-a",
        small.to_str().unwrap(),
    ];
    let (seen, kb, seconds, (sent, sha)) = run_measured_with(&args, None, |mut stdin| {
        let mut h = Sha256::new();
        let mut sent = 0u64;
        for seed in 0..1024 {
            let block = chinese_block(seed);
            h.update(&block);
            sent += block.len() as u64;
            stdin.write_all(&block).unwrap();
        }
        (sent, hex(&h.finalize()))
    });
    eprintln!("1 GiB body on stdin: {seconds:.1} s, peak RSS {kb} kB");
    assert!(sent >= 1 << 30);
    assert!(
        seen.lines
            .iter()
            .any(|l| l == "Content-Type: text/plain; charset=utf-8"),
        "{:?}",
        seen.lines
    );
    assert_eq!(seen.bodies.len(), 2, "{:?}", seen.bodies);
    assert_eq!(seen.bodies[0].bytes, sent);
    assert_eq!(seen.bodies[0].sha256, sha);
    assert!(kb < 32 * 1024, "peak RSS {kb} kB for a 1 GiB body");
}

/// Python's email package reads a 50 MB spooled body (quoted-printable:
/// mostly ASCII, long lines, LF line ends) back as the same text.
#[test]
fn python_reads_a_50_mb_body_back_as_the_same_text() {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.txt");
    let mut text = String::new();
    let mut i = 0u64;
    while text.len() < 50 << 20 {
        let line = match i % 4 {
            0 => format!(
                "Zeile {i}: Grüße aus Köln = {} ",
                "lang ".repeat((i % 30) as usize)
            ),
            1 => String::new(),
            2 => format!("{}\tTab", "x".repeat((i % 200) as usize)),
            _ => "a = b; ümlaut, déjà vu".to_string(),
        };
        text.push_str(&line);
        text.push('\n');
        i += 1;
    }
    std::fs::write(&body, &text).unwrap();
    let eml = dir.path().join("out.eml");
    let status = Command::new(Tool::Mkmime.path())
        .args(["--from", "a@example.org", "--to", "b@example.org"])
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .stdin(File::open(&body).unwrap())
        .stdout(File::create(&eml).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let script = r#"
import email, hashlib, sys
from email import policy
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=policy.default)
assert not m.defects, m.defects
text = m.get_content().replace("\r\n", "\n").encode()
print(m["Content-Transfer-Encoding"], len(text), hashlib.sha256(text).hexdigest())
"#;
    assert_eq!(
        python_prints(script, &eml),
        format!(
            "quoted-printable {} {}",
            text.len(),
            hex(&Sha256::digest(text.as_bytes()))
        )
    );
}

#[test]
fn python_reads_a_50_mb_attachment_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("数据 50.bin");
    std::fs::write(&path, noise(50 << 20, 7)).unwrap();
    let eml = dir.path().join("out.eml");
    let status = Command::new(Tool::Mkmime.path())
        .args(["--from", "a@example.org", "--to", "b@example.org", "-a"])
        .arg(&path)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .stdin(Stdio::null())
        .stdout(File::create(&eml).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let script = r#"
import email, hashlib, sys
from email import policy
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=policy.default)
assert not m.defects, m.defects
(a,) = list(m.iter_attachments())
data = a.get_payload(decode=True)
print(a.get_filename(), len(data), hashlib.sha256(data).hexdigest())
"#;
    assert_eq!(
        python_prints(script, &eml),
        format!("数据 50.bin {} {}", 50 << 20, file_sha256(&path))
    );
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// Runs mkmime attaching `path` (SOURCE_DATE_EPOCH set) while a thread
/// writes `bytes` into it if it is a FIFO.
fn attach_output(path: &Path, fifo_bytes: Option<Vec<u8>>) -> std::process::Output {
    let writer = fifo_bytes.map(|bytes| {
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            let mut f = File::options().write(true).open(path).unwrap();
            // mkmime stops reading a pipe that holds too much: that is fine.
            let _ = f.write_all(&bytes);
        })
    });
    let out = Command::new(Tool::Mkmime.path())
        .args(["--from", "a@example.org", "-a"])
        .arg(path)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if let Some(w) = writer {
        w.join().unwrap();
    }
    out
}

#[test]
fn a_fifo_is_read_once_when_small_and_refused_when_large() {
    let dir = tempfile::tempdir().unwrap();
    // A small pipe gives the bytes a regular file with the same name gives.
    let content: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 253) as u8).collect();
    let regular = dir.path().join("file").join("数据.bin");
    std::fs::create_dir_all(regular.parent().unwrap()).unwrap();
    std::fs::write(&regular, &content).unwrap();
    let fifo = dir.path().join("fifo").join("数据.bin");
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    mkfifo(&fifo);
    let from_file = attach_output(&regular, None);
    let from_fifo = attach_output(&fifo, Some(content));
    assert!(from_fifo.status.success());
    assert_eq!(from_fifo.stdout, from_file.stdout);

    // A large one is refused: one line, 66, nothing on stdout.
    let big = dir.path().join("big.bin");
    mkfifo(&big);
    let out = attach_output(&big, Some(vec![7u8; 17 << 20]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(66), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("big.bin: not a regular file and over 16 MiB"),
        "{stderr}"
    );
}

/// Starts mkmime on `path`, reads the first bytes of its output (so every
/// pass before writing is over and the write pass has begun, then stalls on
/// the full pipe), lets `change` alter the file, and reads the rest.
fn change_while_written(path: &Path, change: impl FnOnce(&Path)) -> (Vec<u8>, String, Option<i32>) {
    let mut child = Command::new(Tool::Mkmime.path())
        .args(["--from", "a@example.org", "-a"])
        .arg(path)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 5];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"Date:");
    change(path);
    let mut rest = first.to_vec();
    stdout.read_to_end(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        rest,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

/// What a test does to a file while mkmime writes it.
type Change = Box<dyn FnOnce(&Path)>;

#[test]
fn a_file_that_changes_while_read_fails_74_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let size = 8u64 << 20;
    let binary: Vec<u8> = (0..size as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let text: Vec<u8> = b"a 7bit line of text\r\n".repeat(size as usize / 21);
    let cases: [(&str, &Vec<u8>, Change, &str); 3] = [
        (
            "shrinks.bin",
            &binary,
            Box::new(|p: &Path| {
                File::options()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_len(1 << 20)
                    .unwrap()
            }),
            "ended after 1048576 bytes",
        ),
        (
            "grows.bin",
            &binary,
            Box::new(|p: &Path| {
                let mut f = File::options().append(true).open(p).unwrap();
                f.write_all(b"more").unwrap();
            }),
            "grew past",
        ),
        (
            "text.txt",
            &text,
            Box::new(|p: &Path| {
                let mut f = File::options().write(true).open(p).unwrap();
                f.seek(SeekFrom::End(-10)).unwrap();
                f.write_all(b"\xff\x00").unwrap();
            }),
            "no longer 7bit",
        ),
    ];
    for (name, bytes, change, needle) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let (stdout, stderr, code) = change_while_written(&path, change);
        assert_eq!(code, Some(74), "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{name}: changed while mkmime read it"))
                && stderr.contains(needle),
            "{name}: {stderr}"
        );
        // What was written is visibly incomplete: no closing boundary.
        let tail =
            String::from_utf8_lossy(&stdout[stdout.len().saturating_sub(200)..]).into_owned();
        assert!(!tail.trim_end().ends_with("--"), "{name}: {tail:?}");
    }
}
