//! Which archive entries may be unpacked, where, and with what mode (see the parent module).

use serde::{Deserialize, Serialize};

/// Limits on what an archive may unpack to. Bytes are counted as they come out of the
/// decompressor, never taken from headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpackLimits {
    pub max_total_bytes: u64,
    pub max_entries: u64,
    pub max_entry_bytes: u64,
    /// Keep setuid/setgid bits instead of refusing the archive.
    pub allow_setuid: bool,
}

impl Default for UnpackLimits {
    /// 4 GiB in all, 1 GiB per entry, 100 000 entries, no setuid/setgid.
    fn default() -> Self {
        UnpackLimits {
            max_total_bytes: 4 << 30,
            max_entries: 100_000,
            max_entry_bytes: 1 << 30,
            allow_setuid: false,
        }
    }
}

/// An archive entry that is not unpacked; the archive is refused. Each names the entry and the
/// check.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryRefusal {
    #[error("entry {entry:?}: absolute path")]
    AbsolutePath { entry: String },
    #[error("entry {entry:?}: `..` in the path")]
    ParentDir { entry: String },
    #[error("entry {entry:?}: empty name or NUL byte in the name")]
    BadName { entry: String },
    #[error("entry {entry:?}: link target {target:?} leads outside the release")]
    LinkOutside { entry: String, target: String },
    #[error("entry {entry:?}: hard link to {target:?}, which is not a file unpacked before it")]
    LinkNotFile { entry: String, target: String },
    #[error("entry {entry:?}: {kind} entries are not allowed")]
    Kind { entry: String, kind: String },
    #[error("entry {entry:?}: setuid/setgid bits (mode {mode:o}) are not allowed")]
    Setuid { entry: String, mode: u32 },
    #[error("entry {entry:?}: appears twice")]
    Duplicate { entry: String },
    #[error("entry {entry:?}: its parent {parent:?} is not a directory of the archive")]
    NotUnderDirectory { entry: String, parent: String },
    #[error("entry {entry:?}: more than the limit of {max} entries")]
    TooManyEntries { entry: String, max: u64 },
    #[error("entry {entry:?}: larger than the limit of {max} bytes per entry")]
    EntryTooLarge { entry: String, max: u64 },
    #[error("entry {entry:?}: the archive unpacks to more than the limit of {max} bytes")]
    TotalTooLarge { entry: String, max: u64 },
}

/// The path components of an archive entry inside the release; `None` for the release root
/// itself (`.` or `./`). A leading `./` and `.` components are dropped; `\` is an ordinary byte.
pub fn entry_path(name: &str) -> Result<Option<Vec<String>>, EntryRefusal> {
    let entry = || name.to_string();
    if name.is_empty() || name.contains('\0') {
        return Err(EntryRefusal::BadName { entry: entry() });
    }
    if name.starts_with('/') {
        return Err(EntryRefusal::AbsolutePath { entry: entry() });
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(EntryRefusal::ParentDir { entry: entry() }),
            p => parts.push(p.to_string()),
        }
    }
    Ok(if parts.is_empty() { None } else { Some(parts) })
}

/// A symlink at `entry` (components from [`entry_path`]) may point at `target` only if it
/// resolves inside the release: relative, its `..` components all first and no more of them
/// than the link's directory is deep. (The unpacker never writes through a link, so the
/// directories above the link are real and this holds whatever links the target passes.)
pub fn check_symlink_target(entry: &[String], target: &str) -> Result<(), EntryRefusal> {
    let outside = || EntryRefusal::LinkOutside {
        entry: entry.join("/"),
        target: target.to_string(),
    };
    if target.is_empty() || target.contains('\0') || target.starts_with('/') {
        return Err(outside());
    }
    let depth = entry.len().saturating_sub(1);
    let mut ups = 0usize;
    let mut descended = false;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." if descended => return Err(outside()),
            ".." => ups += 1,
            _ => descended = true,
        }
    }
    if ups > depth { Err(outside()) } else { Ok(()) }
}

/// A hard link's target is another entry of the archive, named from the release root.
pub fn check_hardlink_target(entry: &[String], target: &str) -> Result<Vec<String>, EntryRefusal> {
    let outside = || EntryRefusal::LinkOutside {
        entry: entry.join("/"),
        target: target.to_string(),
    };
    match entry_path(target) {
        Ok(Some(parts)) => Ok(parts),
        _ => Err(outside()),
    }
}

/// The mode a regular file gets from its archive mode: permission bits only, no group/other
/// write, no sticky bit; setuid/setgid refused unless allowed (then kept).
pub fn file_mode(entry: &str, archive_mode: u32, allow_setuid: bool) -> Result<u32, EntryRefusal> {
    let mode = archive_mode & 0o7777;
    if mode & 0o6000 != 0 && !allow_setuid {
        return Err(EntryRefusal::Setuid {
            entry: entry.to_string(),
            mode,
        });
    }
    Ok(mode & 0o6755)
}

/// The mode of every directory of a release.
pub const DIR_MODE: u32 = 0o755;

/// Counts entries and bytes of one archive against its limits.
#[derive(Clone, Debug)]
pub struct UnpackBudget {
    limits: UnpackLimits,
    entries: u64,
    total: u64,
}

impl UnpackBudget {
    pub fn new(limits: UnpackLimits) -> Self {
        UnpackBudget {
            limits,
            entries: 0,
            total: 0,
        }
    }

    /// One more entry.
    pub fn admit_entry(&mut self, entry: &str) -> Result<(), EntryRefusal> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(EntryRefusal::TooManyEntries {
                entry: entry.to_string(),
                max: self.limits.max_entries,
            });
        }
        Ok(())
    }

    /// `n` more bytes of `entry`, which has produced `entry_so_far` bytes before them.
    pub fn admit_bytes(
        &mut self,
        entry: &str,
        entry_so_far: u64,
        n: u64,
    ) -> Result<(), EntryRefusal> {
        if entry_so_far.saturating_add(n) > self.limits.max_entry_bytes {
            return Err(EntryRefusal::EntryTooLarge {
                entry: entry.to_string(),
                max: self.limits.max_entry_bytes,
            });
        }
        self.total = self.total.saturating_add(n);
        if self.total > self.limits.max_total_bytes {
            return Err(EntryRefusal::TotalTooLarge {
                entry: entry.to_string(),
                max: self.limits.max_total_bytes,
            });
        }
        Ok(())
    }

    /// Entries admitted so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Bytes admitted so far.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_stay_inside() {
        assert_eq!(
            entry_path("./bin//app").unwrap(),
            Some(vec!["bin".to_string(), "app".to_string()])
        );
        assert_eq!(entry_path("./").unwrap(), None);
        assert!(matches!(
            entry_path("/etc/passwd"),
            Err(EntryRefusal::AbsolutePath { .. })
        ));
        assert!(matches!(
            entry_path("a/../../x"),
            Err(EntryRefusal::ParentDir { .. })
        ));
        assert!(matches!(entry_path(""), Err(EntryRefusal::BadName { .. })));
    }

    #[test]
    fn symlinks_may_only_climb_as_high_as_their_directory() {
        let at = |p: &str| entry_path(p).unwrap().unwrap();
        assert!(check_symlink_target(&at("bin/app-link"), "app").is_ok());
        assert!(check_symlink_target(&at("bin/lib"), "../lib/x").is_ok());
        assert!(check_symlink_target(&at("a/b/c"), "../../d").is_ok());
        for (entry, target) in [
            ("link", "/etc/passwd"),
            ("link", ".."),
            ("bin/lib", "../../etc"),
            // `x/..` lexically stays, but x may be a link to somewhere deeper or higher.
            ("link", "x/../.."),
            ("bin/l", "sub/../../.."),
            ("link", ""),
        ] {
            assert!(
                matches!(
                    check_symlink_target(&at(entry), target),
                    Err(EntryRefusal::LinkOutside { .. })
                ),
                "{entry} -> {target}"
            );
        }
        assert!(check_hardlink_target(&at("a"), "/etc/shadow").is_err());
        assert!(check_hardlink_target(&at("a"), "../x").is_err());
        assert_eq!(check_hardlink_target(&at("a"), "./b/c").unwrap(), at("b/c"));
    }

    #[test]
    fn file_modes_lose_group_and_other_write_and_setuid_needs_permission() {
        assert_eq!(file_mode("f", 0o100777, false), Ok(0o755));
        assert_eq!(file_mode("f", 0o664, false), Ok(0o644));
        assert_eq!(file_mode("f", 0o1755, false), Ok(0o755));
        assert!(matches!(
            file_mode("f", 0o4755, false),
            Err(EntryRefusal::Setuid { .. })
        ));
        assert!(matches!(
            file_mode("f", 0o2755, false),
            Err(EntryRefusal::Setuid { .. })
        ));
        assert_eq!(file_mode("f", 0o4775, true), Ok(0o4755));
    }

    #[test]
    fn the_budget_counts_entries_and_bytes() {
        let mut b = UnpackBudget::new(UnpackLimits {
            max_total_bytes: 100,
            max_entries: 2,
            max_entry_bytes: 60,
            allow_setuid: false,
        });
        b.admit_entry("a").unwrap();
        b.admit_bytes("a", 0, 50).unwrap();
        assert!(matches!(
            b.admit_bytes("a", 50, 11),
            Err(EntryRefusal::EntryTooLarge { .. })
        ));
        b.admit_entry("b").unwrap();
        b.admit_bytes("b", 0, 50).unwrap();
        assert!(matches!(
            b.admit_bytes("b", 50, 1),
            Err(EntryRefusal::TotalTooLarge { .. })
        ));
        assert!(matches!(
            b.admit_entry("c"),
            Err(EntryRefusal::TooManyEntries { .. })
        ));
    }
}
