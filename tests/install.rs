//! scripts/install into a temporary PREFIX, staged under DESTDIR as a package
//! build does it: the five tools run from PREFIX/bin, each has a man page
//! with its exit statuses, and completions are where bash, zsh and fish look.
//! The tools come from `target/debug` (MAILPIPE_BIN): cargo test holds the
//! build lock, so the script cannot build them here.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use mailpipe_e2e::{target_dir, Tool};

const TOOLS: [&str; 5] = ["mkmime", "smtp-send", "imap-dump", "pop3-dump", "mail2json"];

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install")
}

/// Every file under `dir`, relative to it.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path.strip_prefix(dir).expect("under dir").to_path_buf());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn install_stages_binaries_man_pages_and_completions_under_destdir() {
    for t in TOOLS {
        Tool::named(t).path();
    }
    let stage = tempfile::tempdir().expect("tempdir");
    let out = Command::new(script())
        .arg("/opt/mailpipe")
        .env("DESTDIR", stage.path())
        .env("MAILPIPE_BIN", target_dir().join("debug"))
        .output()
        .expect("scripts/install runs");
    assert!(
        out.status.success(),
        "scripts/install failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = stage.path().join("opt/mailpipe");
    let mut expected = Vec::new();
    for t in TOOLS {
        expected.extend([
            format!("bin/{t}"),
            format!("share/bash-completion/completions/{t}"),
            format!("share/fish/vendor_completions.d/{t}.fish"),
            format!("share/man/man1/{t}.1"),
            format!("share/zsh/site-functions/_{t}"),
        ]);
    }
    expected.sort();
    let got: Vec<String> = files(stage.path())
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let expected: Vec<String> = expected
        .iter()
        .map(|p| format!("opt/mailpipe/{p}"))
        .collect();
    assert_eq!(
        got, expected,
        "exactly these files, nothing outside DESTDIR/PREFIX"
    );

    for t in TOOLS {
        let bin = root.join("bin").join(t);
        let mode = fs::metadata(&bin).expect("binary").permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{t}");
        let version = Command::new(&bin).arg("--version").output().expect("runs");
        assert!(version.status.success(), "{t} --version");
        assert!(String::from_utf8_lossy(&version.stdout).starts_with(t));

        let man = fs::read_to_string(root.join(format!("share/man/man1/{t}.1"))).expect("man");
        assert!(man.lines().any(|l| l.starts_with(".TH")), "{t}: no .TH");
        assert!(
            man.contains("Exit status:"),
            "{t}: man page lacks the exit statuses"
        );
        let read = |p: String| fs::read_to_string(root.join(p)).expect("completion");
        let bash = read(format!("share/bash-completion/completions/{t}"));
        assert!(
            bash.contains("complete -F ") && bash.contains(t),
            "{t} bash"
        );
        let zsh = read(format!("share/zsh/site-functions/_{t}"));
        assert!(zsh.starts_with(&format!("#compdef {t}")), "{t} zsh");
        let fish = read(format!("share/fish/vendor_completions.d/{t}.fish"));
        assert!(fish.contains(&format!("complete -c {t} ")), "{t} fish");
    }
}

#[test]
fn install_refuses_a_relative_prefix_and_a_missing_build() {
    let out = Command::new(script())
        .arg("relative/prefix")
        .output()
        .expect("scripts/install runs");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("absolute"));

    let empty = tempfile::tempdir().expect("tempdir");
    let prefix = tempfile::tempdir().expect("tempdir");
    let out = Command::new(script())
        .arg(prefix.path())
        .env("MAILPIPE_BIN", empty.path())
        .output()
        .expect("scripts/install runs");
    assert_eq!(out.status.code(), Some(66));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not built"));
    assert!(files(prefix.path()).is_empty(), "nothing installed");
}
