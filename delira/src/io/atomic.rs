//! Writing a file so that it is never seen half-written.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path` through a temporary file beside it: the temporary file is written,
/// synced to disk and renamed over `path`, and the folder is synced so that the rename survives
/// a crash. A reader sees either the old file or the new one, never a partial one; when writing
/// fails, the temporary file is removed and `path` is untouched.
///
/// Every file delira writes for later runs (NIfTI predictions, split files, network states,
/// plots) goes through here.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("delira-atomic-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("notes.txt");
/// delira::io::write_atomically(&path, b"first").unwrap();
/// delira::io::write_atomically(&path, b"second").unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"second");
/// assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1); // no temporary file left
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = temporary_name(path);
    let written = std::fs::File::create(&temporary)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = written {
        // The temporary file is useless now; failing to remove it changes nothing for the caller.
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    sync_parent(path)
}

/// A name beside `path` that no other write of this process, or of another process, uses.
fn temporary_name(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}-{unique}.tmp", std::process::id()))
}

/// Syncs the folder that holds `path`, so that a rename into it is durable (a no-op where folders
/// cannot be opened, as on Windows).
fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::File::open(parent) {
        Ok(folder) => folder.sync_all(),
        Err(_) if cfg!(windows) => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = std::env::temp_dir().join(format!("delira-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kept.txt");
        write_atomically(&path, b"old").unwrap();
        // Renaming a file over a folder fails after the temporary file was written.
        let folder = dir.join("a-folder");
        std::fs::create_dir_all(folder.join("inside")).unwrap();
        assert!(write_atomically(&folder, b"new").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["a-folder", "kept.txt"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
