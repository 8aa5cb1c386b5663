//! `--extract DIR`: attachments written under names that cannot leave DIR.
//!
//! A name from a message is only a hint: its last path component is kept
//! (both `/` and `\` separate), control characters, NUL and characters
//! Windows forbids become `_`, leading dots and trailing dots and spaces go
//! (no hidden files, no `..`), Windows device names (`CON`, `LPT1.txt`) get
//! a `_` in front, and the name is cut to 200 bytes keeping its extension.
//! Nothing is overwritten: a taken name gets `-1`, `-2`, ... before the
//! extension. Content is written to a temporary file in DIR first and then
//! hard-linked to its name, which fails rather than replace an existing file,
//! so a name never shows a half-written attachment.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const MAX_NAME_BYTES: usize = 200;

pub struct Extractor {
    dir: PathBuf,
    counter: AtomicU64,
}

impl Extractor {
    /// DIR is created if missing.
    pub fn new(dir: &Path) -> io::Result<Extractor> {
        fs::create_dir_all(dir)?;
        Ok(Extractor {
            dir: dir.to_path_buf(),
            counter: AtomicU64::new(0),
        })
    }

    /// Writes `content` under a safe name derived from `filename`, returning the path.
    pub fn write(
        &self,
        filename: Option<&str>,
        content_type: &str,
        content: &[u8],
    ) -> io::Result<PathBuf> {
        let name = safe_name(filename, content_type);
        let tmp = self.dir.join(format!(
            ".mail2json-{}-{}.tmp",
            std::process::id(),
            self.counter.fetch_add(1, Ordering::Relaxed)
        ));
        let written = write_new(&tmp, content);
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let (stem, ext) = split_extension(&name);
        let mut result = Err(io::Error::other("no free name"));
        for n in 0..100_000u32 {
            let candidate = if n == 0 {
                name.clone()
            } else {
                format!("{stem}-{n}{ext}")
            };
            let path = self.dir.join(&candidate);
            match fs::hard_link(&tmp, &path) {
                Ok(()) => {
                    result = Ok(path);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let _ = fs::remove_file(&tmp);
        result
    }
}

fn write_new(path: &Path, content: &[u8]) -> io::Result<()> {
    let mut file: File = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(content)
}

/// `name.tar.gz` -> (`name.tar`, `.gz`); no extension -> (`name`, ``).
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= 16 => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

const DEVICE_NAMES: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// A file name that stays inside the directory it is joined to.
pub fn safe_name(filename: Option<&str>, content_type: &str) -> String {
    let last = filename
        .unwrap_or("")
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("");
    let mut name: String = last
        .chars()
        .map(|c| {
            if c.is_control()
                || matches!(
                    c,
                    '<' | '>' | ':' | '"' | '|' | '?' | '*' | '\u{202e}' | '\u{202d}'
                )
            {
                '_'
            } else {
                c
            }
        })
        .collect();
    name = name
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' '])
        .to_string();
    if name.is_empty() {
        name = format!("attachment{}", default_extension(content_type));
    }
    let stem_upper = name
        .split('.')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_uppercase();
    if DEVICE_NAMES.contains(&stem_upper.as_str()) {
        name.insert(0, '_');
    }
    if name.len() > MAX_NAME_BYTES {
        let (stem, ext) = split_extension(&name);
        let keep = MAX_NAME_BYTES - ext.len();
        let mut cut = keep.min(stem.len());
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        name = format!("{}{ext}", &stem[..cut]);
    }
    name
}

fn default_extension(content_type: &str) -> &'static str {
    match content_type {
        "text/plain" => ".txt",
        "text/html" => ".html",
        "message/rfc822" => ".eml",
        "application/pdf" => ".pdf",
        "image/jpeg" => ".jpg",
        "image/png" => ".png",
        "image/gif" => ".gif",
        "application/zip" => ".zip",
        _ => ".bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_stay_inside() {
        for (hostile, safe) in [
            ("../../etc/passwd", "passwd"),
            ("/etc/shadow", "shadow"),
            ("..\\..\\win.ini", "win.ini"),
            ("..", "attachment.bin"),
            (".bashrc", "bashrc"),
            ("a\0b\r\n.txt", "a_b__.txt"),
            ("CON", "_CON"),
            ("lpt1.txt", "_lpt1.txt"),
            ("C:evil.exe", "C_evil.exe"),
            ("报告.pdf", "报告.pdf"),
        ] {
            assert_eq!(
                safe_name(Some(hostile), "application/octet-stream"),
                safe,
                "{hostile:?}"
            );
        }
        let long = format!("{}.pdf", "é".repeat(300));
        let name = safe_name(Some(&long), "x/y");
        assert!(name.len() <= MAX_NAME_BYTES && name.ends_with(".pdf"));
    }

    #[test]
    fn collisions_get_suffixes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let x = Extractor::new(dir.path()).expect("dir");
        let a = x.write(Some("a.txt"), "text/plain", b"1").expect("write");
        let b = x.write(Some("a.txt"), "text/plain", b"2").expect("write");
        assert_eq!(a.file_name().and_then(|n| n.to_str()), Some("a.txt"));
        assert_eq!(b.file_name().and_then(|n| n.to_str()), Some("a-1.txt"));
        assert_eq!(fs::read(&b).expect("read"), b"2");
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 2);
    }
}
