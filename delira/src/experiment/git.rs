//! The git revision of a working tree, read from `.git` without running git.

use std::path::{Path, PathBuf};

/// The commit that `HEAD` names in the git working tree holding `dir` (searched upwards), as 40
/// hexadecimal digits, or `"unknown"` when there is no repository or its files cannot be read.
///
/// Reads the files git keeps (`HEAD`, loose refs, `packed-refs`), following the `gitdir:` file of
/// a linked worktree and its `commondir`; no git binary is needed. Whether the tree has
/// uncommitted changes is not detected.
///
/// ```
/// let none = std::env::temp_dir().join(format!("delira-doc-nogit-{}", std::process::id()));
/// std::fs::create_dir_all(&none).unwrap();
/// let revision = delira::experiment::git_revision(&none);
/// // `unknown` unless the temporary folder happens to sit inside a repository
/// assert!(revision == "unknown" || revision.len() == 40);
/// # std::fs::remove_dir_all(&none).unwrap();
/// ```
pub fn git_revision(dir: &Path) -> String {
    read_revision(dir).unwrap_or_else(|| "unknown".to_owned())
}

fn read_revision(dir: &Path) -> Option<String> {
    let git_dir = find_git_dir(dir)?;
    let common = match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(text) => git_dir.join(text.trim()),
        Err(_) => git_dir.clone(),
    };
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref:") else {
        return is_object_id(head).then(|| head.to_owned());
    };
    let reference = reference.trim();
    for base in [&git_dir, &common] {
        if let Ok(text) = std::fs::read_to_string(base.join(reference)) {
            let id = text.trim();
            if is_object_id(id) {
                return Some(id.to_owned());
            }
        }
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed.lines().find_map(|line| {
        let (id, name) = line.split_once(' ')?;
        (name.trim() == reference && is_object_id(id)).then(|| id.to_owned())
    })
}

/// The `.git` folder of the tree holding `dir`: `.git` itself, or the folder a `.git` file names.
fn find_git_dir(dir: &Path) -> Option<PathBuf> {
    let start = std::fs::canonicalize(dir).ok()?;
    for folder in start.ancestors() {
        let candidate = folder.join(".git");
        if candidate.is_dir() {
            return Some(candidate);
        }
        if candidate.is_file() {
            let text = std::fs::read_to_string(&candidate).ok()?;
            let target = text.trim().strip_prefix("gitdir:")?.trim();
            return Some(folder.join(target));
        }
    }
    None
}

fn is_object_id(text: &str) -> bool {
    (text.len() == 40 || text.len() == 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("delira-git-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const A: &str = "0123456789abcdef0123456789abcdef01234567";
    const B: &str = "89abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn loose_packed_detached_and_worktree_heads() {
        let root = scratch("heads");
        let git = root.join(".git");
        std::fs::create_dir_all(git.join("refs/heads")).unwrap();
        std::fs::create_dir_all(root.join("src/deep")).unwrap();

        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(git.join("refs/heads/main"), format!("{A}\n")).unwrap();
        assert_eq!(git_revision(&root.join("src/deep")), A);

        std::fs::remove_file(git.join("refs/heads/main")).unwrap();
        std::fs::write(
            git.join("packed-refs"),
            format!("# pack-refs with: peeled\n{B} refs/heads/other\n{A} refs/heads/main\n"),
        )
        .unwrap();
        assert_eq!(git_revision(&root), A);

        std::fs::write(git.join("HEAD"), format!("{B}\n")).unwrap();
        assert_eq!(git_revision(&root), B);

        // A linked worktree: `.git` is a file naming its folder, whose `commondir` holds refs.
        let tree = scratch("worktree");
        let linked = git.join("worktrees/wt");
        std::fs::create_dir_all(&linked).unwrap();
        std::fs::write(tree.join(".git"), format!("gitdir: {}\n", linked.display())).unwrap();
        std::fs::write(linked.join("commondir"), "../..\n").unwrap();
        std::fs::write(linked.join("HEAD"), "ref: refs/heads/other\n").unwrap();
        assert_eq!(git_revision(&tree), B);

        std::fs::write(linked.join("HEAD"), "ref: refs/heads/missing\n").unwrap();
        assert_eq!(git_revision(&tree), "unknown");
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(&tree).unwrap();
    }
}
