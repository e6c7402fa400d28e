//! Directories that change as a whole.
//!
//! A [`GenerationDir`] is a symbolic link (`work`, `published/metadata`, a mirror's `metadata`)
//! pointing at one of several numbered directories beside it. A change builds the next
//! directory (hard links for unchanged files, new files written), flushes it to disk
//! (`syncfs`), then replaces the link with one `rename`. A reader following the link sees the
//! old directory or the new one, never a mix, and a crash at any point leaves the old one in
//! place (a half-built directory is ignored and removed by the next change).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{FsError, set_mode, sync_dir, sync_filesystem};

fn io_err(op: &'static str, path: &Path, error: std::io::Error) -> FsError {
    FsError::new(op, path, error)
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Create `dir` and any missing parents with mode 0755 whatever the umask: a web server
/// running as its own user must be able to enter every directory of the published tree
/// (under `umask 077` they would be 0700 and every file behind them a 403). Directories that
/// exist already keep their mode.
pub fn create_public_dir_all(dir: &Path) -> Result<(), FsError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        create_public_dir_all(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        // Made by a parallel copy of another target meanwhile: its creator sets the mode.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(io_err("creating directory", dir, e)),
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .map_err(|e| io_err("setting the mode of", dir, e))?;
    }
    Ok(())
}

/// A directory replaced as a whole through a symbolic link (see the module docs).
#[derive(Clone, Debug)]
pub struct GenerationDir {
    /// The symbolic link readers use, e.g. `published/metadata`.
    link: PathBuf,
    /// Where the numbered directories live, e.g. `published/.metadata.d`.
    store: PathBuf,
}

/// What the next generation holds: files linked from the current one, and new contents.
#[derive(Default)]
pub struct NextGeneration {
    /// File name -> new contents.
    pub write: BTreeMap<String, Vec<u8>>,
    /// Names of current files to carry over unchanged (hard links).
    pub keep: Vec<String>,
}

impl GenerationDir {
    pub fn new(link: PathBuf, store: PathBuf) -> Self {
        GenerationDir { link, store }
    }

    /// The directory the link points at now, if the link exists.
    pub fn current(&self) -> Result<Option<PathBuf>, FsError> {
        match fs::read_link(&self.link) {
            Ok(target) => Ok(Some(parent_of(&self.link).join(target))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("reading the link", &self.link, e)),
        }
    }

    /// Names of the regular files in the current generation.
    pub fn current_files(&self) -> Result<Vec<String>, FsError> {
        let Some(dir) = self.current()? else {
            return Ok(Vec::new());
        };
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| io_err("listing", &dir, e))? {
            let entry = entry.map_err(|e| io_err("listing", &dir, e))?;
            if entry
                .file_type()
                .map_err(|e| io_err("inspecting", &dir, e))?
                .is_file()
                && let Some(name) = entry.file_name().to_str()
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    fn generation_number(&self) -> Result<u64, FsError> {
        let Some(cur) = self.current()? else {
            return Ok(0);
        };
        Ok(cur
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0))
    }

    /// Build the next generation and switch the link to it. Older generations except the one
    /// just replaced are removed (the replaced one stays for readers that are mid-way through).
    pub fn commit(&self, next: NextGeneration) -> Result<PathBuf, FsError> {
        create_public_dir_all(&self.store)?;
        let current = self.current()?;
        let number = self.generation_number()? + 1;
        let name = format!("{number:08}");
        let dir = self.store.join(&name);
        if dir.exists() {
            // Left over from a crash before the switch: never visible, safe to remove.
            fs::remove_dir_all(&dir)
                .map_err(|e| io_err("removing a half-built generation", &dir, e))?;
        }
        create_public_dir_all(&dir)?;
        let result = self.fill(&dir, current.as_deref(), &next);
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        // Switch: a new symlink under a temporary name, renamed over the old one.
        let link_dir = parent_of(&self.link);
        let rel = relative_to(&link_dir, &dir);
        let tmp_link = link_dir.join(format!(".airlock-link-{number}"));
        let _ = fs::remove_file(&tmp_link);
        symlink(&rel, &tmp_link).map_err(|e| io_err("creating the link", &tmp_link, e))?;
        if let Err(e) = fs::rename(&tmp_link, &self.link) {
            let _ = fs::remove_file(&tmp_link);
            let _ = fs::remove_dir_all(&dir);
            return Err(io_err("switching the link", &self.link, e));
        }
        sync_dir(&link_dir)?;
        self.prune(&dir, current.as_deref());
        Ok(dir)
    }

    fn fill(
        &self,
        dir: &Path,
        current: Option<&Path>,
        next: &NextGeneration,
    ) -> Result<(), FsError> {
        if let Some(cur) = current {
            for name in &next.keep {
                if next.write.contains_key(name) {
                    continue;
                }
                let from = cur.join(name);
                let to = dir.join(name);
                if fs::hard_link(&from, &to).is_err() {
                    fs::copy(&from, &to).map_err(|e| io_err("copying", &from, e))?;
                }
            }
        }
        for (name, bytes) in &next.write {
            let path = dir.join(name);
            // Published files must be readable by the web server's user whatever the umask.
            let mut f = File::create(&path).map_err(|e| io_err("creating", &path, e))?;
            set_mode(&f, &path, 0o644)?;
            f.write_all(bytes)
                .map_err(|e| io_err("writing", &path, e))?;
        }
        // One flush of the file system instead of an fsync per file (hundreds of hash bins
        // would otherwise cost hundreds of journal commits); then the directory itself.
        sync_filesystem(dir)?;
        sync_dir(dir)
    }

    /// Remove generations other than `new` and `previous`; failures only log (they waste space,
    /// they do not affect correctness).
    fn prune(&self, new: &Path, previous: Option<&Path>) {
        let Ok(entries) = fs::read_dir(&self.store) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path == new || Some(path.as_path()) == previous {
                continue;
            }
            if let Err(e) = fs::remove_dir_all(&path) {
                tracing::warn!("could not remove old generation {}: {e}", path.display());
            }
        }
    }
}

fn relative_to(base: &Path, target: &Path) -> PathBuf {
    match target.strip_prefix(base) {
        Ok(rel) => rel.to_path_buf(),
        Err(_) => target.to_path_buf(),
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(_target: &Path, _link: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "airlock repositories need symbolic links (Unix)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_switch_as_a_whole_and_keep_one_previous() {
        let tmp = tempfile::tempdir().unwrap();
        let g = GenerationDir::new(tmp.path().join("meta"), tmp.path().join(".meta.d"));
        assert!(g.current().unwrap().is_none());
        let mut next = NextGeneration::default();
        next.write.insert("a".into(), b"1".to_vec());
        next.write.insert("b".into(), b"2".to_vec());
        g.commit(next).unwrap();
        assert_eq!(fs::read(tmp.path().join("meta/a")).unwrap(), b"1");
        let mut next = NextGeneration::default();
        next.keep.push("a".into());
        next.write.insert("c".into(), b"3".to_vec());
        g.commit(next).unwrap();
        assert_eq!(g.current_files().unwrap(), vec!["a", "c"]);
        assert!(!tmp.path().join("meta/b").exists());
        g.commit(NextGeneration::default()).unwrap();
        // Current and the one before it remain.
        assert_eq!(fs::read_dir(tmp.path().join(".meta.d")).unwrap().count(), 2);
    }
}
