//! The install decisions of the update agent, without I/O: which versions may be installed,
//! which release a rollback goes to and which ones are pruned, which archive entries may be
//! unpacked and with what mode, and what to do after a crash in each phase of an operation.
//!
//! `airlock-install` moves the bytes; every "may I" and "what now" is answered here.
//!
//! # The journal
//!
//! Every operation that moves `current` writes a [`Journal`] before each step whose
//! interruption needs a decision, and removes it when the operation is complete. Phases, in
//! order:
//!
//! - [`Phase::Preparing`]: an install unpacks into a temporary directory, renames it to
//!   `releases/<to>` and runs the pre-install hook. `current` still points at `from`.
//! - [`Phase::Switching`]: `current` may point at `from` or `to`; the post-install hook and the
//!   health check run. Nothing has vouched for `to` yet.
//! - [`Phase::Reverting`]: `to` failed; `current` goes back to `from` and `to` is marked bad.
//! - [`Phase::Committed`]: `to` passed; its state changes ([`commit_changes`]) are applied.
//!
//! After a crash, [`recovery_plan`] says what to do: an operation before `Reverting` is undone
//! (the new release never proved itself, and the old one did), `Reverting` and `Committed` are
//! finished. Every plan is idempotent, so a crash during recovery is recovered the same way.
//!
//! ```text
//! let journal = read("state/journal.json");           // None: nothing was interrupted
//! let plan = recovery_plan(journal.as_ref());
//! if let Some(plan) = plan {
//!     point `current` at plan.current (remove it when None), fsync root;
//!     if let Some(v) = plan.remove_release { move releases/v aside and delete it }
//!     apply plan.changes to the bad versions; record plan.outcome in the history;
//!     remove the journal;
//! }
//! remove temporary files and directories;
//! ```
//!
//! # Archive entries
//!
//! [`entry_path`] turns an archive name into path components inside the release (refusing
//! absolute paths, `..`, empty or NUL names); [`check_symlink_target`] and
//! [`check_hardlink_target`] keep links inside; [`file_mode`] gives the mode a file gets;
//! [`UnpackBudget`] counts entries and bytes against [`UnpackLimits`]. The unpacker must also
//! never write through a symlink (every parent of an entry is a real directory it made): then a
//! symlink target whose `..` components all come first and climb no higher than the link's own
//! directory resolves inside the release, whatever other links it passes through.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::rollout::version::{MAX_VERSION_LEN, Version};

mod entry;
pub use entry::*;

/// Why a version is not installed, or a rollback has nowhere to go.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum InstallRefusal {
    #[error(
        "version {version:?} is not a usable release name (1 to {MAX_VERSION_LEN} of A-Z a-z 0-9 . _ + -, starting with a letter or digit)"
    )]
    InvalidVersion { version: String },
    #[error("version {version} is marked bad and is not installed again")]
    MarkedBad { version: String },
    #[error(
        "version {version} is older than the installed {installed}; a downgrade must be asked for"
    )]
    Downgrade { version: String, installed: String },
    #[error(
        "version {version} cannot be ordered against the installed {installed} (not both valid versions); installing it must be asked for as a downgrade"
    )]
    Unordered { version: String, installed: String },
    #[error("no release to roll back to (no previous release that is not marked bad)")]
    NothingToRollBackTo,
    #[error("release {version} is not on disk")]
    NoSuchRelease { version: String },
    #[error("release {version} is already the current one")]
    AlreadyCurrent { version: String },
}

/// A version string that is safe as a directory name under `releases/`.
pub fn check_version_name(version: &str) -> Result<(), InstallRefusal> {
    Version::parse(version)
        .map(|_| ())
        .map_err(|_| InstallRefusal::InvalidVersion {
            version: version.to_string(),
        })
}

/// The agent's one version order ([`Version`]: SemVer-like, total over valid versions); `None`
/// when either is not a valid version. Equal strings are equal.
pub fn compare_versions(a: &str, b: &str) -> Option<Ordering> {
    if a == b {
        return Some(Ordering::Equal);
    }
    match (Version::parse(a), Version::parse(b)) {
        (Ok(x), Ok(y)) => Some(x.cmp(&y)),
        _ => None,
    }
}

/// What [`check_candidate`] allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Candidate {
    /// Install it.
    Install,
    /// It is the installed version already: nothing to do.
    AlreadyInstalled,
}

/// May `candidate` replace `installed`? A bad version never (a person lifts the mark first); an
/// older one, or one that cannot be ordered, only when `allow_downgrade`.
pub fn check_candidate(
    installed: Option<&str>,
    candidate: &str,
    marked_bad: bool,
    allow_downgrade: bool,
) -> Result<Candidate, InstallRefusal> {
    check_version_name(candidate)?;
    if marked_bad {
        return Err(InstallRefusal::MarkedBad {
            version: candidate.to_string(),
        });
    }
    let Some(installed) = installed else {
        return Ok(Candidate::Install);
    };
    match compare_versions(candidate, installed) {
        Some(Ordering::Equal) => Ok(Candidate::AlreadyInstalled),
        Some(Ordering::Greater) => Ok(Candidate::Install),
        _ if allow_downgrade => Ok(Candidate::Install),
        Some(Ordering::Less) => Err(InstallRefusal::Downgrade {
            version: candidate.to_string(),
            installed: installed.to_string(),
        }),
        None => Err(InstallRefusal::Unordered {
            version: candidate.to_string(),
            installed: installed.to_string(),
        }),
    }
}

/// Newest first: the version order where it applies, then the string order (so the sort is total).
fn newest_first(a: &String, b: &String) -> Ordering {
    compare_versions(b, a).unwrap_or_else(|| b.cmp(a))
}

/// Which release a rollback makes current: `requested` if it is on disk and not current (a
/// person may name a bad one), else the newest release on disk that is neither current nor bad.
pub fn rollback_target(
    current: Option<&str>,
    on_disk: &[String],
    bad: &BTreeSet<String>,
    requested: Option<&str>,
) -> Result<String, InstallRefusal> {
    if let Some(v) = requested {
        check_version_name(v)?;
        if current == Some(v) {
            return Err(InstallRefusal::AlreadyCurrent {
                version: v.to_string(),
            });
        }
        if !on_disk.iter().any(|d| d == v) {
            return Err(InstallRefusal::NoSuchRelease {
                version: v.to_string(),
            });
        }
        return Ok(v.to_string());
    }
    let mut candidates: Vec<&String> = on_disk
        .iter()
        .filter(|v| Some(v.as_str()) != current && !bad.contains(*v))
        .collect();
    candidates.sort_by(|a, b| newest_first(a, b));
    candidates
        .first()
        .map(|v| v.to_string())
        .ok_or(InstallRefusal::NothingToRollBackTo)
}

/// The releases to delete so that at most `keep` releases besides the current one remain: never
/// `current` or one in `protected`; bad ones go first, then the oldest.
pub fn prune_list(
    current: Option<&str>,
    protected: &[&str],
    on_disk: &[String],
    bad: &BTreeSet<String>,
    keep: usize,
) -> Vec<String> {
    let spared = |v: &str| Some(v) == current || protected.contains(&v);
    let mut good: Vec<String> = on_disk
        .iter()
        .filter(|v| !spared(v) && !bad.contains(*v))
        .cloned()
        .collect();
    good.sort_by(newest_first);
    let kept_protected = on_disk
        .iter()
        .filter(|v| Some(v.as_str()) != current && protected.contains(&v.as_str()))
        .count();
    let room = keep.saturating_sub(kept_protected);
    let mut remove: Vec<String> = on_disk
        .iter()
        .filter(|v| !spared(v) && bad.contains(*v))
        .cloned()
        .collect();
    remove.extend(good.into_iter().skip(room));
    remove.sort();
    remove
}

// ---------------------------------------------------------------------------------------------
// The journal and recovery

/// What an operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// A new release is unpacked and made current.
    Install,
    /// A person makes a release on disk current again.
    Rollback,
}

/// Where an operation is (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "phase")]
pub enum Phase {
    Preparing,
    Switching,
    Reverting { reason: String },
    Committed,
}

/// The record of an operation in progress, written before each step that needs a decision
/// after a crash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Names the operation in the history, so an event recorded twice (a crash between
    /// recording and removing the journal) is recognised.
    pub id: String,
    pub operation: Operation,
    /// The release `current` pointed at when the operation started.
    pub from: Option<String>,
    /// The release the operation makes current.
    pub to: String,
    #[serde(flatten)]
    pub phase: Phase,
}

/// Changes to the bad-version list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BadChanges {
    /// (version, reason) to mark bad.
    pub mark: Option<(String, String)>,
    /// A version whose mark is lifted.
    pub clear: Option<String>,
}

/// The state changes of a committed operation: a manual rollback marks the release it left bad
/// (else the agent would install it again at its next check) and lifts the mark of the release
/// a person chose.
pub fn commit_changes(journal: &Journal) -> BadChanges {
    match journal.operation {
        Operation::Install => BadChanges::default(),
        Operation::Rollback => BadChanges {
            mark: journal
                .from
                .clone()
                .map(|v| (v, "rolled back by a person".to_string())),
            clear: Some(journal.to.clone()),
        },
    }
}

/// How an interrupted operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryOutcome {
    /// Back to `from`, as if the operation had not started.
    Undone,
    /// `to` failed before the crash; back to `from`, `to` marked bad.
    RolledBack,
    /// `to` had passed; it stays current.
    Finished,
}

/// What [`recovery_plan`] asks the caller to do, in this order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryPlan {
    /// The release `current` must point at; `None`: there must be no `current`.
    pub current: Option<String>,
    /// A release directory to delete (an install that is undone).
    pub remove_release: Option<String>,
    pub changes: BadChanges,
    pub outcome: RecoveryOutcome,
}

/// What to do about an interrupted operation (see the module docs).
pub fn recovery_plan(journal: &Journal) -> RecoveryPlan {
    let undo_release = match journal.operation {
        Operation::Install if journal.from.as_deref() != Some(journal.to.as_str()) => {
            Some(journal.to.clone())
        }
        _ => None,
    };
    match &journal.phase {
        Phase::Preparing | Phase::Switching => RecoveryPlan {
            current: journal.from.clone(),
            remove_release: undo_release,
            changes: BadChanges::default(),
            outcome: RecoveryOutcome::Undone,
        },
        Phase::Reverting { reason } => RecoveryPlan {
            current: journal.from.clone(),
            remove_release: None,
            changes: BadChanges {
                mark: Some((journal.to.clone(), reason.clone())),
                clear: None,
            },
            outcome: RecoveryOutcome::RolledBack,
        },
        Phase::Committed => RecoveryPlan {
            current: Some(journal.to.clone()),
            remove_release: None,
            changes: commit_changes(journal),
            outcome: RecoveryOutcome::Finished,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }
    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn version_names_must_be_plain_directory_names() {
        for ok in ["1.2.3", "v2.0.0-rc.1+build.5", "2024_01_01"] {
            assert!(check_version_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "1.0 beta",
            "x\0",
            &"9".repeat(129),
        ] {
            assert!(check_version_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn downgrades_and_unordered_versions_need_the_person_bad_ones_never() {
        assert_eq!(
            check_candidate(None, "1.0.0", false, false),
            Ok(Candidate::Install)
        );
        assert_eq!(
            check_candidate(Some("1.0.0"), "1.10.0", false, false),
            Ok(Candidate::Install)
        );
        assert_eq!(
            check_candidate(Some("1.0.0"), "1.0.0", false, false),
            Ok(Candidate::AlreadyInstalled)
        );
        assert!(matches!(
            check_candidate(Some("1.10.0"), "1.9.0", false, false),
            Err(InstallRefusal::Downgrade { .. })
        ));
        assert_eq!(
            check_candidate(Some("1.10.0"), "1.9.0", false, true),
            Ok(Candidate::Install)
        );
        // The agent's one version order (rollout::version): a text field sorts after a number,
        // so the engine and the agent's offer never disagree about what is newer.
        assert_eq!(
            check_candidate(Some("1.0.0"), "nightly-2", false, false),
            Ok(Candidate::Install)
        );
        assert!(matches!(
            check_candidate(Some("nightly-2"), "1.0.0", false, false),
            Err(InstallRefusal::Downgrade { .. })
        ));
        assert_eq!(
            check_candidate(Some("1.0"), "2.0", false, false),
            Ok(Candidate::Install)
        );
        // A prerelease is older than its release.
        assert!(check_candidate(Some("2.0.0"), "2.0.0-rc.1", false, false).is_err());
        for downgrade in [false, true] {
            assert!(matches!(
                check_candidate(Some("1.0.0"), "2.0.0", true, downgrade),
                Err(InstallRefusal::MarkedBad { .. })
            ));
        }
    }

    #[test]
    fn rollback_goes_to_the_newest_good_release_or_the_one_asked_for() {
        let disk = list(&["1.0.0", "1.1.0", "1.2.0", "1.3.0"]);
        assert_eq!(
            rollback_target(Some("1.3.0"), &disk, &set(&["1.2.0"]), None),
            Ok("1.1.0".into())
        );
        assert_eq!(
            rollback_target(Some("1.3.0"), &disk, &set(&["1.2.0"]), Some("1.2.0")),
            Ok("1.2.0".into())
        );
        assert!(matches!(
            rollback_target(Some("1.3.0"), &disk, &set(&[]), Some("0.9.0")),
            Err(InstallRefusal::NoSuchRelease { .. })
        ));
        assert!(matches!(
            rollback_target(Some("1.3.0"), &disk, &set(&[]), Some("1.3.0")),
            Err(InstallRefusal::AlreadyCurrent { .. })
        ));
        assert_eq!(
            rollback_target(Some("1.0.0"), &list(&["1.0.0"]), &set(&[]), None),
            Err(InstallRefusal::NothingToRollBackTo)
        );
    }

    #[test]
    fn pruning_spares_current_and_protected_and_drops_bad_first() {
        let disk = list(&["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"]);
        // current 1.4.0, keep 2: 1.3.0 and 1.2.0 stay.
        assert_eq!(
            prune_list(Some("1.4.0"), &[], &disk, &set(&[]), 2),
            list(&["1.0.0", "1.1.0"])
        );
        // 1.3.0 bad goes first and does not take a place.
        assert_eq!(
            prune_list(Some("1.4.0"), &[], &disk, &set(&["1.3.0"]), 2),
            list(&["1.0.0", "1.3.0"])
        );
        // The release rolled back to is never pruned and takes one of the places.
        assert_eq!(
            prune_list(Some("1.2.0"), &["1.2.0"], &disk, &set(&["1.4.0"]), 1),
            list(&["1.0.0", "1.1.0", "1.4.0"])
        );
        assert_eq!(
            prune_list(Some("1.4.0"), &["1.0.0"], &disk, &set(&[]), 0),
            list(&["1.1.0", "1.2.0", "1.3.0"])
        );
    }

    fn journal(operation: Operation, phase: Phase) -> Journal {
        Journal {
            id: "op1".into(),
            operation,
            from: Some("1.0.0".into()),
            to: "2.0.0".into(),
            phase,
        }
    }

    #[test]
    fn a_crash_before_the_health_check_passed_is_undone() {
        for phase in [Phase::Preparing, Phase::Switching] {
            let plan = recovery_plan(&journal(Operation::Install, phase.clone()));
            assert_eq!(plan.current.as_deref(), Some("1.0.0"));
            assert_eq!(plan.remove_release.as_deref(), Some("2.0.0"));
            assert_eq!(plan.changes, BadChanges::default());
            assert_eq!(plan.outcome, RecoveryOutcome::Undone);
            // A rollback is undone too, but the release it went to stays on disk.
            let plan = recovery_plan(&journal(Operation::Rollback, phase));
            assert_eq!(plan.current.as_deref(), Some("1.0.0"));
            assert_eq!(plan.remove_release, None);
        }
        let mut first = journal(Operation::Install, Phase::Switching);
        first.from = None;
        assert_eq!(recovery_plan(&first).current, None);
    }

    #[test]
    fn a_crash_while_reverting_finishes_the_rollback_and_marks_the_version_bad() {
        let plan = recovery_plan(&journal(
            Operation::Install,
            Phase::Reverting {
                reason: "health check failed".into(),
            },
        ));
        assert_eq!(plan.current.as_deref(), Some("1.0.0"));
        assert_eq!(
            plan.changes.mark,
            Some(("2.0.0".into(), "health check failed".into()))
        );
        assert_eq!(plan.outcome, RecoveryOutcome::RolledBack);
    }

    #[test]
    fn a_crash_after_commit_keeps_the_new_release_and_applies_its_changes() {
        let plan = recovery_plan(&journal(Operation::Install, Phase::Committed));
        assert_eq!(plan.current.as_deref(), Some("2.0.0"));
        assert_eq!(plan.remove_release, None);
        assert_eq!(plan.outcome, RecoveryOutcome::Finished);
        let plan = recovery_plan(&journal(Operation::Rollback, Phase::Committed));
        assert_eq!(
            plan.changes.mark,
            Some(("1.0.0".into(), "rolled back by a person".into()))
        );
        assert_eq!(plan.changes.clear.as_deref(), Some("2.0.0"));
    }

    #[test]
    fn the_journal_reads_back_as_written() {
        let j = journal(Operation::Install, Phase::Reverting { reason: "x".into() });
        let text = serde_json::to_string(&j).unwrap();
        assert!(text.contains(r#""phase":"reverting""#), "{text}");
        assert_eq!(serde_json::from_str::<Journal>(&text).unwrap(), j);
    }
}
