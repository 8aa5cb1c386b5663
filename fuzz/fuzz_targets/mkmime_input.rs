//! mkmime's `--draft` and `--json` input, parsed and built into a message as
//! `run.rs` does it, without the command-line flags. The first byte chooses
//! the input kind, `--lf` and `--encoding`; the rest is stdin.
//!
//! Attachments named in the input are not read from the paths given (the
//! fuzzer must not read arbitrary files): every one reads one small fixed
//! file instead, keeping the name, type and cid the input gave.
//!
//! Property checked beyond "no panic": the header block of the output is
//! well formed (fields or continuations, no bare CR or LF, lines of at most
//! 998 bytes), so that no input can inject a header line or a body.
#![no_main]

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use lettre::message::header::ContentTransferEncoding;
use libfuzzer_sys::fuzz_target;
use mkmime::attach::{self, FileSpec};
use mkmime::build::{self, Content};
use mkmime::headers::Fields;
use mkmime::text::Text;
use mkmime::{draft, headers, json_input};

fn attachment_file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("mkmime-fuzz-{}.bin", std::process::id()));
        std::fs::write(&path, b"%PDF-1.4\r\nline\nFrom x\r\n\x00\xff\xfe").expect("temp file");
        path
    })
}

fn stand_in(spec: FileSpec) -> FileSpec {
    let name = spec.name.or_else(|| {
        spec.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    });
    FileSpec {
        path: attachment_file().clone(),
        name,
        ..spec
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let encoding = match (mode >> 2) % 5 {
        0 => None,
        1 => Some(ContentTransferEncoding::SevenBit),
        2 => Some(ContentTransferEncoding::EightBit),
        3 => Some(ContentTransferEncoding::QuotedPrintable),
        _ => Some(ContentTransferEncoding::Base64),
    };
    let lf = mode & 2 != 0;
    let mut fields = Fields::default();
    let mut content = Content::default();
    let mut specs = Vec::new();
    if mode & 1 == 0 {
        let Ok(text) = std::str::from_utf8(input) else {
            return;
        };
        let Ok(parsed) = draft::parse(text) else {
            return;
        };
        for (line, name, value) in &parsed.headers {
            let label = format!("draft line {line}:");
            if name.trim().eq_ignore_ascii_case("attach") {
                let Ok(value) = headers::check_value(&label, value) else {
                    return;
                };
                specs.push(attach::parse_spec(value));
            } else if fields.apply(&label, name.trim_end(), value).is_err() {
                return;
            }
        }
        content.text = Some(Text::Held(parsed.body));
    } else {
        let Ok(json) = json_input::apply(input, &mut fields) else {
            return;
        };
        content.text = json.text.map(Text::Held);
        content.html = json.html.map(Text::Held);
        specs = json.attachments;
    }
    if fields.from.is_empty() || fields.check().is_err() {
        return;
    }
    for spec in specs {
        let Ok(part) = attach::load("fuzz", stand_in(spec)) else {
            return;
        };
        content.attachments.push(part);
    }
    let Ok(message) = build::compose(&fields, content, encoding, Some(1_700_000_000)) else {
        return;
    };
    let mut out = Vec::new();
    if lf {
        let mut writer = build::LfWriter::new(&mut out);
        message.write_to(&mut writer).expect("writing to a Vec");
        writer.flush().expect("flushing a Vec");
    } else {
        message.write_to(&mut out).expect("writing to a Vec");
    }
    check_head(&out, if lf { b"\n" } else { b"\r\n" });
});

/// Every line of the header block ends in `eol` and is a `Name:` field or
/// its continuation; the block ends with a blank line.
fn check_head(message: &[u8], eol: &[u8]) {
    let mut rest = message;
    let mut first = true;
    loop {
        let end = rest
            .windows(eol.len())
            .position(|w| w == eol)
            .expect("every header line ends in a line end");
        let line = &rest[..end];
        rest = &rest[end + eol.len()..];
        assert!(line.len() <= 998, "a header line of {} bytes", line.len());
        if line.is_empty() {
            assert!(!first, "no header block");
            return;
        }
        assert!(
            !line.contains(&b'\r') && !line.contains(&b'\n'),
            "bare CR or LF in {line:?}"
        );
        if !first && (line[0] == b' ' || line[0] == b'\t') {
            continue;
        }
        let colon = line.iter().position(|&b| b == b':').expect("a field name");
        assert!(colon > 0, "empty field name in {line:?}");
        assert!(
            line[..colon].iter().all(|&b| (33..=126).contains(&b)),
            "bad field name in {line:?}"
        );
        first = false;
    }
}
