#![forbid(unsafe_code)]
//! The one atomic, durable file writer of Airlock (see the README).
//!
//! Every write that matters goes: exclusive random temp file in the destination directory,
//! explicit mode, data, `fsync`, `rename` (or no-clobber link), `fsync` of the directory.
//! Callers that write many files into a few directories may skip the directory sync per file
//! ([`WriteOptions::sync_dir`]) and call [`sync_dir`] once per directory afterwards, or hand
//! the whole set to [`write_atomic_batch`].

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Every temporary file this crate makes starts with this, so [`remove_temporaries`] can find
/// the leftovers of a write that a crash interrupted.
pub const TEMP_PREFIX: &str = ".airlock-tmp-";

/// Directories replaced as a whole through a symbolic link (published metadata, mirrors).
pub mod generations;

/// A file-system operation that failed: what was being done, to which path, and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}", path.display())]
pub struct FsError {
    /// What was being done ("writing", "renaming into place", "syncing directory", ...).
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl FsError {
    pub fn new(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        FsError {
            op,
            path: path.into(),
            source,
        }
    }

    /// The kind of the underlying OS error (e.g. `AlreadyExists` for a no-clobber write).
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

/// How [`write_atomic`] and [`AtomicFile`] write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteOptions {
    /// Permission bits of the final file, set explicitly (the umask does not apply).
    pub mode: u32,
    /// Replace an existing destination (`rename`); when false the write fails with
    /// `AlreadyExists` if the name is taken, also when two writers race for it.
    pub replace: bool,
    /// `fsync` the destination's directory after the rename. Turn off only when the caller
    /// syncs each touched directory itself once per batch.
    pub sync_dir: bool,
    /// Create missing parent directories (mode 0755 subject to the umask); their parents are
    /// synced too when `sync_dir` is set.
    pub create_parents: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self::public()
    }
}

impl WriteOptions {
    /// 0644, replacing, directory synced: published metadata, targets, tiles, configs.
    pub const fn public() -> Self {
        WriteOptions {
            mode: 0o644,
            replace: true,
            sync_dir: true,
            create_parents: false,
        }
    }

    /// 0600, replacing, directory synced: private state and secrets.
    pub const fn private() -> Self {
        WriteOptions {
            mode: 0o600,
            ..Self::public()
        }
    }

    pub const fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Fail with `AlreadyExists` instead of replacing an existing file.
    pub const fn no_clobber(mut self) -> Self {
        self.replace = false;
        self
    }

    pub const fn sync_dir(mut self, sync: bool) -> Self {
        self.sync_dir = sync;
        self
    }

    pub const fn create_parents(mut self) -> Self {
        self.create_parents = true;
        self
    }
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `fsync` a directory so that the names created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FsError::new("syncing directory", dir, e))
}

/// Flush every dirty page of the file system holding `path` (Linux `syncfs`): one flush for a
/// batch of files instead of one `fsync` each.
pub fn sync_filesystem(path: &Path) -> Result<(), FsError> {
    let f = File::open(path).map_err(|e| FsError::new("opening", path, e))?;
    rustix::fs::syncfs(&f).map_err(|e| FsError::new("syncing file system of", path, e.into()))
}

/// Ask the kernel to start writing `len` bytes of `file` from `offset` to disk now, without
/// waiting for them, so that the `fsync` before a large file's rename has little left to do.
/// Only a hint: durability still comes from that `fsync`. It also lets the kernel drop the
/// range's pages from the cache once they are clean (a writer does not read them back).
/// Elsewhere than on Linux it does nothing.
pub fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // Linux's POSIX_FADV_DONTNEED writes back the range's dirty pages (asynchronously,
        // like `sync_file_range(SYNC_FILE_RANGE_WRITE)`, which rustix does not offer) before
        // it drops the clean ones.
        if let Some(len) = std::num::NonZeroU64::new(len) {
            rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::DontNeed)?;
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (file, offset, len);
    Ok(())
}

/// Write `bytes` to `path` atomically and durably (see the crate docs).
pub fn write_atomic(path: &Path, bytes: &[u8], options: &WriteOptions) -> Result<(), FsError> {
    let mut file = AtomicFile::create(path, options)?;
    file.write_all(bytes)
        .map_err(|e| FsError::new("writing", path, e))?;
    file.commit()
}

/// Write several files atomically and make them durable together: every temporary file is
/// created and written first (a failure there renames nothing and leaves no temporary file),
/// then each is `fsync`ed, then each is renamed over its destination in the order given, then
/// each destination directory is `fsync`ed once (per `options.sync_dir`).
///
/// The guarantee per file is [`write_atomic`]'s: a name only ever points at complete, synced
/// bytes, because no rename happens before every file's data is on disk. What is saved is the
/// directory sync per file (one per directory instead), and the interleaving of writes and
/// waits. A crash during the renames leaves some files new and the others old, each whole: a
/// batch is not a transaction, so callers order it so that any prefix is a state they accept.
pub fn write_atomic_batch(files: &[(&Path, &[u8])], options: &WriteOptions) -> Result<(), FsError> {
    let each = options.sync_dir(false);
    let mut pending = Vec::with_capacity(files.len());
    for (path, bytes) in files {
        let mut file = AtomicFile::create(path, &each)?;
        file.write_all(bytes)
            .map_err(|e| FsError::new("writing", *path, e))?;
        pending.push(file);
    }
    for file in &pending {
        file.as_file()
            .sync_all()
            .map_err(|e| FsError::new("syncing", file.path(), e))?;
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    for file in pending {
        let dir = parent_dir(file.path()).to_path_buf();
        let created: Vec<PathBuf> = file
            .created_dirs()
            .iter()
            .map(|d| parent_dir(d).to_path_buf())
            .collect();
        file.commit_unsynced()?;
        for d in std::iter::once(dir).chain(created.into_iter().rev()) {
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    if options.sync_dir {
        for dir in &dirs {
            sync_dir(dir)?;
        }
    }
    Ok(())
}

/// Set the permission bits of an open file (Unix; a no-op elsewhere).
pub fn set_mode(file: &File, path: &Path, mode: u32) -> Result<(), FsError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| FsError::new("setting the mode of", path, e))
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path, mode);
        Ok(())
    }
}

/// A file being written that becomes visible under its name only at [`AtomicFile::commit`].
/// Dropping it without committing removes the temporary file.
#[derive(Debug)]
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
    options: WriteOptions,
    /// Directories this write created, outermost first; their parents need a sync.
    created: Vec<PathBuf>,
}

impl AtomicFile {
    /// Start writing `dest`: the temporary file exists (mode already set) when this returns.
    pub fn create(dest: &Path, options: &WriteOptions) -> Result<Self, FsError> {
        let dir = parent_dir(dest);
        let mut created = Vec::new();
        if options.create_parents && !dir.is_dir() {
            let mut d = Some(dir);
            while let Some(x) = d {
                if x.as_os_str().is_empty() || x.is_dir() {
                    break;
                }
                created.push(x.to_path_buf());
                d = x.parent();
            }
            created.reverse();
            fs::create_dir_all(dir).map_err(|e| FsError::new("creating directory", dir, e))?;
        }
        // tempfile creates with O_EXCL and mode 0600; the final mode is set before any byte.
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)
            .map_err(|e| FsError::new("creating a temporary file in", dir, e))?;
        set_mode(tmp.as_file(), dest, options.mode)?;
        Ok(AtomicFile {
            tmp,
            dest: dest.to_path_buf(),
            options: *options,
            created,
        })
    }

    /// Start or continue a write whose temporary file outlives the process, for downloads
    /// that resume: `partial_name` (a plain file name, in `dest`'s directory, which must exist)
    /// names it, so that a later run finds the bytes an interrupted one left. It is opened
    /// without following a symbolic link and used only if it is a regular file; its bytes are
    /// the caller's to check. Returns the file positioned at its end, and its length. Dropped
    /// without [`commit`](Self::commit), the file stays ([`discard`](Self::discard) removes it).
    #[cfg(unix)]
    pub fn resume(
        dest: &Path,
        partial_name: &str,
        options: &WriteOptions,
    ) -> Result<(Self, u64), FsError> {
        use std::io::Seek;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = parent_dir(dest);
        if partial_name.is_empty()
            || partial_name.contains('/')
            || partial_name == "."
            || partial_name == ".."
        {
            return Err(FsError::new(
                "naming a partial file for",
                dest,
                io::Error::new(io::ErrorKind::InvalidInput, "not a plain file name"),
            ));
        }
        let path = dir.join(partial_name);
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(options.mode)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
            .map_err(|e| FsError::new("opening", &path, e))?;
        let meta = file
            .metadata()
            .map_err(|e| FsError::new("inspecting", &path, e))?;
        if !meta.is_file() {
            return Err(FsError::new(
                "opening",
                &path,
                io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
        // A file someone else made (or a second name of another file) would become the
        // destination by rename while its owner (or the other name) could still change it.
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != rustix::process::geteuid().as_raw() || meta.nlink() != 1 {
            return Err(FsError::new(
                "opening",
                &path,
                io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "not a file of this user's own with one name",
                ),
            ));
        }
        set_mode(&file, dest, options.mode)?;
        let len = file
            .seek(io::SeekFrom::End(0))
            .map_err(|e| FsError::new("reading", &path, e))?;
        let temp_path = tempfile::TempPath::try_from_path(&path)
            .map_err(|e| FsError::new("opening", &path, e))?;
        let mut tmp = tempfile::NamedTempFile::from_parts(file, temp_path);
        tmp.disable_cleanup(true);
        Ok((
            AtomicFile {
                tmp,
                dest: dest.to_path_buf(),
                options: *options,
                created: Vec::new(),
            },
            len,
        ))
    }

    /// Drop what was written, keeping the file open and empty (a resumed download whose server
    /// sent the whole file again, or whose earlier bytes turned out wrong).
    pub fn truncate(&mut self) -> Result<(), FsError> {
        use std::io::Seek;
        let f = self.tmp.as_file_mut();
        f.set_len(0)
            .and_then(|()| f.seek(io::SeekFrom::Start(0)).map(|_| ()))
            .map_err(|e| FsError::new("truncating the temporary file for", &self.dest, e))
    }

    /// Remove the temporary file, whatever kind it is.
    pub fn discard(self) -> Result<(), FsError> {
        let path = self.tmp.path().to_path_buf();
        drop(self.tmp);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(FsError::new("removing", &path, e))
            }
            _ => Ok(()),
        }
    }

    /// The destination path.
    pub fn path(&self) -> &Path {
        &self.dest
    }

    /// The open temporary file (for `sync_data`, `metadata`, or reading back).
    pub fn as_file(&self) -> &File {
        self.tmp.as_file()
    }

    pub fn as_file_mut(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// `fsync` the data, move it under its name, `fsync` the directory (per the options).
    pub fn commit(self) -> Result<(), FsError> {
        self.commit_with(true)
    }

    /// Like [`commit`](Self::commit) without the file's own `fsync`: for batches made durable
    /// by one [`sync_filesystem`] before anything refers to them.
    pub fn commit_unsynced(self) -> Result<(), FsError> {
        self.commit_with(false)
    }

    fn commit_with(self, sync_file: bool) -> Result<(), FsError> {
        let AtomicFile {
            tmp,
            dest,
            options,
            created,
        } = self;
        if sync_file {
            tmp.as_file()
                .sync_all()
                .map_err(|e| FsError::new("syncing", &dest, e))?;
        }
        if options.replace {
            tmp.persist(&dest)
                .map_err(|e| FsError::new("renaming into place", &dest, e.error))?;
        } else {
            tmp.persist_noclobber(&dest)
                .map_err(|e| FsError::new("creating", &dest, e.error))?;
        }
        if options.sync_dir {
            sync_dir(parent_dir(&dest))?;
            for d in created.iter().rev() {
                sync_dir(parent_dir(d))?;
            }
        }
        Ok(())
    }

    /// Directories created for this write (outermost first), for callers syncing per batch.
    pub fn created_dirs(&self) -> &[PathBuf] {
        &self.created
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.tmp.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

/// Delete every file named with [`TEMP_PREFIX`] in `dir` (and below it when `recursive`):
/// leftovers of writes a crash interrupted, never renamed into place. A missing `dir` is fine.
pub fn remove_temporaries(dir: &Path, recursive: bool) -> Result<(), FsError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(FsError::new("listing", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| FsError::new("listing", dir, e))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| FsError::new("inspecting", &path, e))?;
        if kind.is_dir() {
            if recursive {
                remove_temporaries(&path, true)?;
            }
        } else if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            fs::remove_file(&path).map_err(|e| FsError::new("removing", &path, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(unix)]
    use std::os::unix::fs::PermissionsExt;

    fn mode_of(p: &Path) -> u32 {
        #[cfg(unix)]
        {
            fs::metadata(p).unwrap().permissions().mode() & 0o7777
        }
        #[cfg(not(unix))]
        {
            let _ = p;
            0
        }
    }

    #[test]
    fn replaces_with_the_requested_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one", &WriteOptions::private()).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        #[cfg(unix)]
        assert_eq!(mode_of(&p), 0o600);
        write_atomic(&p, b"two", &WriteOptions::public()).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        assert_eq!(mode_of(&p), 0o644);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_batch_renames_nothing_until_every_file_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::write(&a, b"old a").unwrap();
        // The second file cannot be written: the first is not replaced either.
        let missing = dir.path().join("missing/c");
        let err = write_atomic_batch(&[(&a, b"new a"), (&missing, b"c")], &WriteOptions::public())
            .unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        assert_eq!(fs::read(&a).unwrap(), b"old a");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

        write_atomic_batch(&[(&a, b"new a"), (&b, b"b")], &WriteOptions::public()).unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"new a");
        assert_eq!(fs::read(&b).unwrap(), b"b");
        #[cfg(unix)]
        assert_eq!(mode_of(&b), 0o644);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
        write_atomic_batch(&[], &WriteOptions::public()).unwrap();
    }

    #[test]
    fn no_clobber_refuses_an_existing_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        write_atomic(&p, b"first", &WriteOptions::private().no_clobber()).unwrap();
        let err = write_atomic(&p, b"second", &WriteOptions::private().no_clobber()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"first");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_planted_symlink_at_the_destination_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        let p = dir.path().join("out");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&victim, &p).unwrap();
            write_atomic(&p, b"new", &WriteOptions::public()).unwrap();
            assert_eq!(fs::read(&victim).unwrap(), b"keep");
            assert!(!fs::symlink_metadata(&p).unwrap().file_type().is_symlink());
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_mode_does_not_depend_on_the_umask_or_the_tempfile_default() {
        // 0644 must come out 0644 even though temporary files are created 0600.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pub");
        let mut f = AtomicFile::create(&p, &WriteOptions::public().mode(0o640)).unwrap();
        assert_eq!(
            f.as_file().metadata().unwrap().permissions().mode() & 0o777,
            0o640
        );
        f.write_all(b"x").unwrap();
        f.commit().unwrap();
        assert_eq!(mode_of(&p), 0o640);
    }

    #[test]
    fn a_dropped_writer_leaves_nothing_and_parents_are_made_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/c");
        assert!(AtomicFile::create(&p, &WriteOptions::public()).is_err());
        {
            let mut f = AtomicFile::create(&p, &WriteOptions::public().create_parents()).unwrap();
            f.write_all(b"partial").unwrap();
        }
        assert_eq!(fs::read_dir(dir.path().join("a/b")).unwrap().count(), 0);
        let mut f = AtomicFile::create(&p, &WriteOptions::public().create_parents()).unwrap();
        f.write_all(b"whole").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"whole");
    }

    #[test]
    fn leftover_temporaries_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join(format!("{TEMP_PREFIX}x")), b"").unwrap();
        fs::write(dir.path().join(format!("sub/{TEMP_PREFIX}y")), b"").unwrap();
        fs::write(dir.path().join("keep"), b"").unwrap();
        remove_temporaries(dir.path(), true).unwrap();
        assert!(dir.path().join("keep").exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
        assert_eq!(fs::read_dir(dir.path().join("sub")).unwrap().count(), 0);
    }

    #[test]
    fn errors_name_the_operation_and_path_once() {
        let err = write_atomic(
            Path::new("/nonexistent-dir-airlock/x"),
            b"",
            &WriteOptions::public(),
        )
        .unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("/nonexistent-dir-airlock"), "{shown}");
        assert!(!shown.contains("os error"), "{shown}");
    }

    #[cfg(unix)]
    #[test]
    fn a_resumed_write_keeps_its_bytes_across_drops_and_commits_like_any_other() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.bin");
        let opts = WriteOptions::public();
        let (mut f, len) = AtomicFile::resume(&dest, ".app.bin.partial", &opts).unwrap();
        assert_eq!(len, 0);
        f.write_all(b"hello ").unwrap();
        drop(f); // a run that stops: the bytes stay
        let (mut f, len) = AtomicFile::resume(&dest, ".app.bin.partial", &opts).unwrap();
        assert_eq!(len, 6);
        f.write_all(b"world").unwrap();
        assert!(!dest.exists());
        f.commit().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"hello world");
        assert!(!dir.path().join(".app.bin.partial").exists());
        assert_eq!(mode_of(&dest), 0o644);

        let (mut f, _) = AtomicFile::resume(&dest, ".p", &opts).unwrap();
        f.write_all(b"junk").unwrap();
        f.truncate().unwrap();
        f.write_all(b"ok").unwrap();
        f.discard().unwrap();
        assert!(!dir.path().join(".p").exists());
        assert_eq!(fs::read(&dest).unwrap(), b"hello world");
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_or_directory_is_not_resumed_through() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.bin");
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(".link")).unwrap();
        assert!(AtomicFile::resume(&dest, ".link", &WriteOptions::public()).is_err());
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        fs::create_dir(dir.path().join(".dir")).unwrap();
        assert!(AtomicFile::resume(&dest, ".dir", &WriteOptions::public()).is_err());
        // A second name of another file (a hard link) is not written through either.
        fs::hard_link(&victim, dir.path().join(".hard")).unwrap();
        assert!(AtomicFile::resume(&dest, ".hard", &WriteOptions::public()).is_err());
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        // Another user's file under the partial name (run as root, as CI does: chown works).
        if rustix::process::geteuid().is_root() {
            let planted = dir.path().join(".planted");
            fs::write(&planted, b"bytes of someone else").unwrap();
            std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
            assert!(AtomicFile::resume(&dest, ".planted", &WriteOptions::public()).is_err());
        }
        for bad in ["", "a/b", ".."] {
            assert!(AtomicFile::resume(&dest, bad, &WriteOptions::public()).is_err());
        }
    }
}
