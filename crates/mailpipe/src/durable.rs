//! Making output durable before state says it exists: a state file must never
//! run ahead of the output it describes (the tools promise that nothing is
//! lost), so the output is synced first and the state replaced atomically.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` so that a reader, or the next run after a
/// crash, sees the old file or the new one, never a mix: temporary file beside
/// it, fsync, rename over it, fsync of the folder (without which the rename
/// itself may not survive a power cut).
pub fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".to_string());
    let temporary = folder.join(format!(".{name}.tmp{}", std::process::id()));
    let written = File::create(&temporary)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temporary, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&temporary);
        return Err(e);
    }
    File::open(&folder)?.sync_all()
}

/// Syncs stdout to disk when it is a regular file (`> archive.mbox`), so that
/// a state file saved next cannot describe messages a crash would lose. A
/// pipe or terminal has nothing to sync.
pub fn sync_stdout() -> io::Result<()> {
    let file = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    if file.metadata()?.is_file() {
        file.sync_data()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_file_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("inbox.state");
        replace_file(&path, b"one").expect("first");
        replace_file(&path, b"two").expect("second");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("inbox.state")]);
    }

    #[test]
    fn replace_file_failure_keeps_the_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state");
        replace_file(&path, b"old").expect("first");
        // A directory where the file should go: rename fails, the old file stays.
        let blocked = dir.path().join("sub");
        fs::create_dir(&blocked).expect("mkdir");
        fs::write(blocked.join("x"), b"").expect("fill");
        assert!(replace_file(&blocked, b"new").is_err());
        assert_eq!(fs::read(&path).expect("read"), b"old");
        assert!(fs::read_dir(dir.path()).expect("list").all(|e| !e
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .contains(".tmp")));
    }
}
