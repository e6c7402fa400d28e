//! Unpacking an artifact into an empty directory, refusing what could reach outside it or
//! exhaust the disk. The checks themselves are `airlock_core::install`'s; this module reads
//! archives and writes files.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use airlock_core::install::{
    DIR_MODE, EntryRefusal, UnpackBudget, UnpackLimits, check_hardlink_target,
    check_symlink_target, entry_path, file_mode,
};
use airlock_fs::{FsError, sync_dir};

/// How an artifact is unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveFormat {
    TarGz,
    TarZst,
    Zip,
    /// A single file (a binary), installed under the artifact's file name, mode 0755.
    File,
}

impl ArchiveFormat {
    /// From a target path's ending: `.tar.gz`/`.tgz`, `.tar.zst`/`.tzst`, `.zip`; anything
    /// else is a plain file.
    pub fn from_name(target_path: &str) -> Self {
        let lower = target_path.to_ascii_lowercase();
        if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
            ArchiveFormat::TarGz
        } else if lower.ends_with(".tar.zst") || lower.ends_with(".tzst") {
            ArchiveFormat::TarZst
        } else if lower.ends_with(".zip") {
            ArchiveFormat::Zip
        } else {
            ArchiveFormat::File
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ArchiveFormat::TarGz => "tar.gz",
            ArchiveFormat::TarZst => "tar.zst",
            ArchiveFormat::Zip => "zip",
            ArchiveFormat::File => "plain file",
        }
    }
}

/// Why an artifact was not unpacked.
#[derive(Debug)]
pub(crate) enum UnpackError {
    Refused(EntryRefusal),
    /// The artifact is not a readable archive of its format.
    Unreadable(Box<dyn std::error::Error + Send + Sync>),
    Fs(FsError),
}

impl From<EntryRefusal> for UnpackError {
    fn from(e: EntryRefusal) -> Self {
        UnpackError::Refused(e)
    }
}

impl From<FsError> for UnpackError {
    fn from(e: FsError) -> Self {
        UnpackError::Fs(e)
    }
}

fn unreadable(e: impl std::error::Error + Send + Sync + 'static) -> UnpackError {
    UnpackError::Unreadable(Box::new(e))
}

/// Unpack `artifact` into the empty directory `dest`; every file and directory is fsynced
/// before this returns. On error `dest` holds a partial tree the caller removes.
pub(crate) fn unpack(
    format: ArchiveFormat,
    artifact: &Path,
    dest: &Path,
    limits: UnpackLimits,
) -> Result<(), UnpackError> {
    let file = File::open(artifact).map_err(|e| FsError::new("opening", artifact, e))?;
    let mut out = ReleaseWriter::new(dest, limits);
    match format {
        ArchiveFormat::TarGz => {
            let gz = flate2::read::GzDecoder::new(BufReader::new(file));
            unpack_tar(gz, &mut out)?;
        }
        ArchiveFormat::TarZst => {
            let zst = ruzstd::decoding::StreamingDecoder::new(BufReader::new(file))
                .map_err(unreadable)?;
            unpack_tar(zst, &mut out)?;
        }
        ArchiveFormat::Zip => unpack_zip(file, &mut out)?,
        ArchiveFormat::File => {
            let name = artifact
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            out.budget.admit_entry(&name)?;
            let parts = single_component(&name)?;
            out.file(&name, &parts, 0o755, &mut BufReader::new(file))?;
        }
    }
    out.finish()
}

fn single_component(name: &str) -> Result<Vec<String>, EntryRefusal> {
    match entry_path(name)? {
        Some(parts) if parts.len() == 1 => Ok(parts),
        _ => Err(EntryRefusal::BadName {
            entry: name.to_string(),
        }),
    }
}

fn unpack_tar(reader: impl Read, out: &mut ReleaseWriter) -> Result<(), UnpackError> {
    use tar::EntryType;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        out.budget.admit_entry(&name)?;
        let Some(parts) = entry_path(&name)? else {
            if kind.is_dir() {
                continue;
            }
            return Err(EntryRefusal::BadName { entry: name }.into());
        };
        let mode = entry.header().mode().map_err(unreadable)?;
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                let mode = file_mode(&name, mode, out.limits.allow_setuid)?;
                out.file(&name, &parts, mode, &mut entry)?;
            }
            EntryType::Directory => out.dir(&name, &parts)?,
            EntryType::Symlink | EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                if kind == EntryType::Symlink {
                    out.symlink(&name, &parts, &target)?;
                } else {
                    out.hardlink(&name, &parts, &target)?;
                }
            }
            other => {
                return Err(EntryRefusal::Kind {
                    entry: name,
                    kind: tar_kind_name(other),
                }
                .into());
            }
        }
    }
    Ok(())
}

fn tar_kind_name(kind: tar::EntryType) -> String {
    use tar::EntryType;
    match kind {
        EntryType::Char => "character device".into(),
        EntryType::Block => "block device".into(),
        EntryType::Fifo => "FIFO".into(),
        EntryType::GNUSparse => "sparse file".into(),
        other => format!("tar type {:?}", other.as_byte() as char),
    }
}

/// Unix file-type bits in a zip entry's mode that are neither file, directory nor link.
fn zip_special_kind(mode: u32) -> Option<&'static str> {
    match mode & 0o170000 {
        0o010000 => Some("FIFO"),
        0o020000 => Some("character device"),
        0o060000 => Some("block device"),
        0o140000 => Some("socket"),
        _ => None,
    }
}

fn unpack_zip(file: File, out: &mut ReleaseWriter) -> Result<(), UnpackError> {
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(unreadable)?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(unreadable)?;
        let name = entry.name().map_err(unreadable)?.into_owned();
        out.budget.admit_entry(&name)?;
        let Some(parts) = entry_path(&name)? else {
            if entry.is_dir() {
                continue;
            }
            return Err(EntryRefusal::BadName { entry: name }.into());
        };
        let mode = entry.unix_mode();
        if let Some(kind) = mode.and_then(zip_special_kind) {
            return Err(EntryRefusal::Kind {
                entry: name,
                kind: kind.into(),
            }
            .into());
        }
        if entry.is_dir() {
            out.dir(&name, &parts)?;
        } else if entry.is_symlink() {
            let mut target = String::new();
            (&mut entry)
                .take(4096)
                .read_to_string(&mut target)
                .map_err(unreadable)?;
            out.symlink(&name, &parts, &target)?;
        } else {
            let mode = file_mode(&name, mode.unwrap_or(0o644), out.limits.allow_setuid)?;
            out.file(&name, &parts, mode, &mut entry)?;
        }
    }
    Ok(())
}

/// Writes a release tree: never through a symlink, never over an existing name, counting
/// bytes against the budget.
struct ReleaseWriter {
    root: PathBuf,
    limits: UnpackLimits,
    budget: UnpackBudget,
    /// Directories made, to be fsynced at the end.
    dirs: BTreeSet<PathBuf>,
}

impl ReleaseWriter {
    fn new(root: &Path, limits: UnpackLimits) -> Self {
        ReleaseWriter {
            root: root.to_path_buf(),
            limits,
            budget: UnpackBudget::new(limits),
            dirs: BTreeSet::new(),
        }
    }

    fn path_of(&self, parts: &[String]) -> PathBuf {
        parts.iter().fold(self.root.clone(), |p, c| p.join(c))
    }

    /// Every parent of `parts` is a real directory of this tree (made here when missing).
    fn parents(&mut self, entry: &str, parts: &[String]) -> Result<(), UnpackError> {
        for n in 1..parts.len() {
            let prefix = parts.get(..n).unwrap_or_default();
            let path = self.path_of(prefix);
            self.real_dir(entry, &prefix.join("/"), &path)?;
        }
        Ok(())
    }

    fn real_dir(&mut self, entry: &str, shown: &str, path: &Path) -> Result<(), UnpackError> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_dir() => Ok(()),
            Ok(_) => Err(EntryRefusal::NotUnderDirectory {
                entry: entry.to_string(),
                parent: shown.to_string(),
            }
            .into()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(DIR_MODE)
                    .create(path)
                    .map_err(|e| FsError::new("creating directory", path, e))?;
                self.dirs.insert(path.to_path_buf());
                Ok(())
            }
            Err(e) => Err(FsError::new("inspecting", path, e).into()),
        }
    }

    fn dir(&mut self, entry: &str, parts: &[String]) -> Result<(), UnpackError> {
        self.parents(entry, parts)?;
        let path = self.path_of(parts);
        self.real_dir(entry, entry, &path)
    }

    fn created(&self, entry: &str, path: &Path, e: io::Error) -> UnpackError {
        if e.kind() == io::ErrorKind::AlreadyExists {
            EntryRefusal::Duplicate {
                entry: entry.to_string(),
            }
            .into()
        } else {
            FsError::new("creating", path, e).into()
        }
    }

    fn file(
        &mut self,
        entry: &str,
        parts: &[String],
        mode: u32,
        data: &mut dyn Read,
    ) -> Result<(), UnpackError> {
        self.parents(entry, parts)?;
        let path = self.path_of(parts);
        // O_EXCL: never through a planted link, never over an earlier entry.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| self.created(entry, &path, e))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            let n = data.read(&mut buf).map_err(unreadable)?;
            if n == 0 {
                break;
            }
            self.budget.admit_bytes(entry, written, n as u64)?;
            file.write_all(buf.get(..n).unwrap_or_default())
                .map_err(|e| FsError::new("writing", &path, e))?;
            written += n as u64;
        }
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| FsError::new("setting the mode of", &path, e))?;
        file.sync_all()
            .map_err(|e| FsError::new("syncing", &path, e))?;
        Ok(())
    }

    fn symlink(&mut self, entry: &str, parts: &[String], target: &str) -> Result<(), UnpackError> {
        check_symlink_target(parts, target)?;
        self.parents(entry, parts)?;
        let path = self.path_of(parts);
        symlink(target, &path).map_err(|e| self.created(entry, &path, e))
    }

    fn hardlink(&mut self, entry: &str, parts: &[String], target: &str) -> Result<(), UnpackError> {
        let target_parts = check_hardlink_target(parts, target)?;
        let not_file = || EntryRefusal::LinkNotFile {
            entry: entry.to_string(),
            target: target.to_string(),
        };
        // The target and every directory above it must be real, so the link cannot reach a
        // file outside through a symlink.
        for n in 1..=target_parts.len() {
            let path = self.path_of(target_parts.get(..n).unwrap_or_default());
            let meta = fs::symlink_metadata(&path).map_err(|_| not_file())?;
            let last = n == target_parts.len();
            let ok = if last {
                meta.file_type().is_file()
            } else {
                meta.file_type().is_dir()
            };
            if !ok {
                return Err(not_file().into());
            }
        }
        self.parents(entry, parts)?;
        let path = self.path_of(parts);
        fs::hard_link(self.path_of(&target_parts), &path).map_err(|e| self.created(entry, &path, e))
    }

    /// Directories 0755 (an archive's own modes do not count), then every directory fsynced,
    /// deepest first, so that every name is durable.
    fn finish(self) -> Result<(), UnpackError> {
        let mut dirs: Vec<&PathBuf> = self.dirs.iter().collect();
        dirs.push(&self.root);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in dirs {
            fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
                .map_err(|e| FsError::new("setting the mode of", dir, e))?;
            sync_dir(dir)?;
        }
        Ok(())
    }
}
