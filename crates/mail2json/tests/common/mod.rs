//! What the corpus oracles share: where the shared corpus is, and its files.

use std::path::{Path, PathBuf};

/// The shared corpus: `MAIL2JSON_CORPUS` when set (a worktree beside the
/// workspace root), else ../shared/corpus from the workspace root.
pub fn corpus_dir() -> PathBuf {
    std::env::var_os("MAIL2JSON_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"))
}

/// Every file below `dir` in name order, SOURCES.md left out.
pub fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("directory is readable")
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(&path, out);
        } else if path.file_name().is_some_and(|n| n != "SOURCES.md") {
            out.push(path);
        }
    }
}
