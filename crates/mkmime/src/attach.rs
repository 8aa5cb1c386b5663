//! Files that become parts: the `FILE;type=...;name=...;cid=...` syntax of
//! `--attach` and `--inline`, opening them, and their content type: the
//! user's if given, else the file's magic number, else its name, else a look
//! at whether it is text. A file is scanned once here (see `scan`), stopping
//! early when its first bytes settle everything, and read again when written.

use std::path::{Path, PathBuf};

use lettre::message::header::ContentType;
use mailpipe::Error;

use crate::headers::check_value;
use crate::scan::{Found, Needs, Scan};
use crate::source::Source;

/// Bytes the magic numbers need (WebP's is the longest: 12).
const SNIFF: usize = 16;

/// What the user asked for: a path and optional overrides.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FileSpec {
    pub path: PathBuf,
    /// The name the recipient sees; the path's last component by default.
    pub name: Option<String>,
    pub content_type: Option<String>,
    /// For inline parts: the Content-ID the HTML refers to as `cid:...`.
    pub cid: Option<String>,
}

/// A file opened, scanned and typed, ready to become a part.
#[derive(Debug)]
pub struct FilePart {
    pub filename: String,
    pub content_type: ContentType,
    pub source: Source,
    /// What the scan found (as far as the type needed it).
    pub found: Found,
    pub cid: Option<String>,
    /// The type was given by the user, not guessed.
    pub explicit_type: bool,
    /// `type/subtype`, lower case, without parameters.
    pub essence: String,
}

const KEYS: [&str; 3] = ["type", "name", "cid"];

/// Parses `FILE[;type=TYPE][;name=NAME][;cid=ID]`. A path that exists as
/// written is taken literally, so a file whose name has `;type=` still works.
pub fn parse_spec(spec: &str) -> FileSpec {
    if Path::new(spec).exists() {
        return FileSpec {
            path: PathBuf::from(spec),
            ..FileSpec::default()
        };
    }
    let mut out = FileSpec::default();
    let mut path = spec;
    while let Some((head, option)) = path.rsplit_once(';') {
        let Some((key, value)) = option.split_once('=') else {
            break;
        };
        let key = key.trim().to_ascii_lowercase();
        if !KEYS.contains(&key.as_str()) {
            break;
        }
        let value = Some(value.trim().to_string());
        match key.as_str() {
            "type" => out.content_type = out.content_type.take().or(value),
            "name" => out.name = out.name.take().or(value),
            _ => out.cid = out.cid.take().or(value),
        }
        path = head;
    }
    out.path = PathBuf::from(path);
    out
}

/// Opens and scans the file and settles its name and type. `label` names the option.
pub fn load(label: &str, spec: FileSpec) -> Result<FilePart, Error> {
    let source = Source::open(&spec.path)?;
    let filename = match spec.name {
        Some(name) => name,
        None => spec
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "attachment".to_string()),
    };
    let filename = check_value(&format!("{label} name"), &filename)?.to_string();
    if let Some(cid) = &spec.cid {
        check_cid(label, cid)?;
    }
    let explicit_type = spec.content_type.is_some();
    let given = match spec.content_type {
        Some(given) => Some(check_value(&format!("{label} type"), &given)?.to_string()),
        None => None,
    };
    let first_guess = match &given {
        Some(_) => None,
        None => first_guess(&filename, &source.prefix(SNIFF)?),
    };
    let needs = match given.as_deref().or(first_guess.as_deref()) {
        Some(t) if t.to_ascii_lowercase().starts_with("text/") => Needs::Text,
        Some(_) => Needs::SevenBit,
        None => Needs::MaybeText,
    };
    let mut scan = Scan::default();
    source.pass(|chunk| {
        scan.feed(chunk);
        Ok(!scan.settled(needs))
    })?;
    let found = scan.finish();
    let text = match given {
        Some(given) => given,
        None => settle_type(first_guess, &found),
    };
    let content_type = ContentType::parse(&text)
        .map_err(|e| Error::data(format!("{label} type: {text:?} is not a content type: {e}")))?;
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Ok(FilePart {
        filename,
        content_type,
        source,
        found,
        cid: spec.cid,
        explicit_type,
        essence,
    })
}

/// Reads an input file; any failure is 66 (EX_NOINPUT) naming the file.
pub fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| {
        let text = e.to_string();
        let text = text.split(" (os error").next().unwrap_or(&text);
        Error::no_input(format!("{}: {text}", path.display()))
    })
}

/// A Content-ID is an id-left[@id-right] without brackets, spaces or quotes.
fn check_cid(label: &str, cid: &str) -> Result<(), Error> {
    let ok = !cid.is_empty()
        && cid
            .bytes()
            .all(|b| (33..127).contains(&b) && !b"<>\"\\()[],;:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::data(format!(
            "{label} cid: {cid:?} is not a Content-ID (printable ASCII, no spaces, <>, quotes)"
        )))
    }
}

/// Magic numbers that name a type outright, whatever the file is called.
fn sniff_strong(bytes: &[u8]) -> Option<&'static str> {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"%PDF-", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"\x1f\x8b", "application/gzip"),
        (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
        (b"%!PS", "application/postscript"),
    ];
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    MAGIC
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
        .map(|(_, mime)| *mime)
}

/// Container formats (docx, xlsx, odt, epub, jar are ZIP files; doc and xls
/// are OLE): the name says more than the magic number, so these come second.
fn sniff_container(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return Some("application/zip");
    }
    if bytes.starts_with(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1") {
        return Some("application/x-ole-storage");
    }
    None
}

/// The type the first bytes and the name give, if they give one.
fn first_guess(name: &str, prefix: &[u8]) -> Option<String> {
    let by_name = mime_guess::from_path(name)
        .first()
        .map(|m| m.essence_str().to_string());
    sniff_strong(prefix)
        .map(str::to_string)
        .or(by_name)
        .or_else(|| sniff_container(prefix).map(str::to_string))
}

/// The type of a file whose first guess was `first` and whose scan found
/// `found`; text types get `charset=utf-8` when the text is not plain ASCII.
fn settle_type(first: Option<String>, found: &Found) -> String {
    let mut guess = first.unwrap_or_else(|| {
        if found.looks_like_text {
            "text/plain".to_string()
        } else {
            "application/octet-stream".to_string()
        }
    });
    // message/* and multipart/* must not be base64-encoded (RFC 2046 5.2.1,
    // 5.1): a guessed one that is not already 7bit goes as opaque bytes.
    if (guess.starts_with("message/") || guess.starts_with("multipart/")) && !found.seven_bit {
        guess = "application/octet-stream".to_string();
    }
    if guess.starts_with("text/") && !found.ascii && found.utf8 {
        guess.push_str("; charset=utf-8");
    }
    guess
}

/// The content type of a file named `name` holding `bytes`.
pub fn guess_type(name: &str, bytes: &[u8]) -> String {
    settle_type(first_guess(name, bytes), &Scan::of(bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn spec_options_from_the_end() {
        let s = parse_spec("/no/such/a;b.bin;type=application/x-foo;name=报告.bin");
        assert_eq!(s.path, PathBuf::from("/no/such/a;b.bin"));
        assert_eq!(s.content_type.as_deref(), Some("application/x-foo"));
        assert_eq!(s.name.as_deref(), Some("报告.bin"));
        let s = parse_spec("/no/such/logo.png;cid=logo@x");
        assert_eq!(s.cid.as_deref(), Some("logo@x"));
        assert_eq!(
            parse_spec("/no/such/plain").path,
            PathBuf::from("/no/such/plain")
        );
    }

    #[test]
    fn existing_path_is_literal() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("x;type=text");
        std::fs::write(&odd, b"hi").unwrap();
        let s = parse_spec(odd.to_str().unwrap());
        assert_eq!(s.path, odd);
        assert_eq!(s.content_type, None);
    }

    #[test]
    fn magic_beats_name_name_beats_container() {
        assert_eq!(
            guess_type("photo.jpg", b"\x89PNG\r\n\x1a\n...."),
            "image/png"
        );
        assert_eq!(guess_type("x.bin", b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(guess_type("noext", b"\xff\xd8\xff\xe0"), "image/jpeg");
        assert_eq!(guess_type("noext", b"GIF89a...."), "image/gif");
        assert_eq!(guess_type("noext", b"PK\x03\x04...."), "application/zip");
        assert_eq!(
            guess_type("r.docx", b"PK\x03\x04...."),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        );
        assert_eq!(guess_type("notes", b"plain words\n"), "text/plain");
        assert_eq!(
            guess_type("notes", "中文\n".as_bytes()),
            "text/plain; charset=utf-8"
        );
        assert_eq!(guess_type("data.csv", b"a,b\n"), "text/csv");
        assert_eq!(
            guess_type("blob", b"\x00\x01\x02"),
            "application/octet-stream"
        );
        assert_eq!(
            guess_type("m.eml", b"From: a\nSubject: b\n\nhi\n"),
            "application/octet-stream"
        );
        assert_eq!(
            guess_type("m.eml", b"From: a\r\n\r\nhi\r\n"),
            "message/rfc822"
        );
    }

    #[test]
    fn missing_file_is_66_and_named() {
        let e = load("--attach", parse_spec("/no/such/file.pdf")).unwrap_err();
        assert_eq!(e.exit().code(), 66);
        assert!(
            e.message().starts_with("/no/such/file.pdf:"),
            "{}",
            e.message()
        );
    }
}
