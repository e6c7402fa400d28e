//! install, rollback, recover, status: the journal written before each step, the decisions
//! taken from `airlock_core::install`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use airlock_core::install::{
    Candidate, DIR_MODE, InstallRefusal, Journal, Operation, Phase, RecoveryOutcome, RecoveryPlan,
    UnpackLimits, check_candidate, check_version_name, commit_changes, prune_list, recovery_plan,
    rollback_target,
};
use airlock_fs::{FsError, sync_dir};
use serde::Serialize;

use crate::health::{HealthCheck, Hooks, RunEnv};
use crate::layout::temp_name;
use crate::run::CommandRecord;
use crate::state::{
    BadVersion, Event, EventKind, StateFile, manifest_of, now, read_journal, remove_journal,
    write_journal, write_manifest,
};
use crate::unpack::{ArchiveFormat, UnpackError, unpack};
use crate::{AppLayout, InstallError};

/// How one application is installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallSpec {
    /// `None`: from the artifact's file name ([`ArchiveFormat::from_name`]).
    pub format: Option<ArchiveFormat>,
    pub limits: UnpackLimits,
    pub health: HealthCheck,
    pub hooks: Hooks,
    /// Previous releases kept on disk besides the current one.
    pub keep: usize,
}

impl Default for InstallSpec {
    fn default() -> Self {
        InstallSpec {
            format: None,
            limits: UnpackLimits::default(),
            health: HealthCheck::None,
            hooks: Hooks::default(),
            keep: 2,
        }
    }
}

/// How an [`install`] or [`rollback`] ended when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallOutcome {
    /// `version` is current and passed its checks.
    Installed,
    /// `version` was current already; nothing was done.
    AlreadyInstalled,
    /// A person's rollback: the older `version` is current and passed its checks.
    RolledBackTo,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InstallReport {
    pub version: String,
    /// What was current before.
    pub previous: Option<String>,
    pub outcome: InstallOutcome,
    /// Releases deleted to keep `keep`.
    pub pruned: Vec<String>,
    /// Hooks and the health check, with their output.
    pub commands: Vec<CommandRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// The operation a crash interrupted, as its journal said.
    pub interrupted: Option<Journal>,
    pub outcome: Option<RecoveryOutcome>,
    pub current: Option<String>,
    /// `current` was moved: the service may need a restart (recovery runs no hooks).
    pub current_changed: bool,
    /// Temporary files and directories removed.
    pub temporaries_removed: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppStatus {
    pub root: PathBuf,
    pub installed: Option<String>,
    /// Other releases on disk, newest first.
    pub previous: Vec<String>,
    pub bad: BTreeMap<String, BadVersion>,
    pub history: Vec<crate::Event>,
    /// An operation in progress, or interrupted and not yet recovered.
    pub interrupted: Option<Journal>,
}

fn refused(layout: &AppLayout, source: InstallRefusal) -> InstallError {
    InstallError::Refused {
        root: layout.root().to_path_buf(),
        source,
    }
}

fn new_id() -> String {
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    format!("{nanos}-{}", std::process::id())
}

fn event(
    journal: &Journal,
    kind: EventKind,
    detail: String,
    commands: Vec<CommandRecord>,
) -> Event {
    Event {
        id: journal.id.clone(),
        at: now(),
        kind,
        version: journal.to.clone(),
        from: journal.from.clone(),
        detail,
        commands,
    }
}

/// Install `artifact` (already verified) as `version`; see the crate README for the steps.
/// A release that fails after the switch is rolled back, marked bad and reported as
/// [`InstallError::RolledBack`].
pub fn install(
    layout: &AppLayout,
    spec: &InstallSpec,
    artifact: &Path,
    version: &str,
    allow_downgrade: bool,
) -> Result<InstallReport, InstallError> {
    check_version_name(version).map_err(|e| refused(layout, e))?;
    layout.ensure_dirs()?;
    let _lock = layout.lock()?;
    recover_locked(layout)?;
    let mut state = StateFile::load(layout)?;
    let from = layout.current_version()?;
    let candidate = check_candidate(
        from.as_deref(),
        version,
        state.bad.contains_key(version),
        allow_downgrade,
    )
    .map_err(|e| refused(layout, e))?;
    if candidate == Candidate::AlreadyInstalled {
        return Ok(InstallReport {
            version: version.to_string(),
            previous: from,
            outcome: InstallOutcome::AlreadyInstalled,
            pruned: Vec::new(),
            commands: Vec::new(),
        });
    }
    let format = spec.format.unwrap_or_else(|| {
        ArchiveFormat::from_name(&artifact.file_name().unwrap_or_default().to_string_lossy())
    });
    let journal = Journal {
        id: new_id(),
        operation: Operation::Install,
        from: from.clone(),
        to: version.to_string(),
        phase: Phase::Preparing,
    };
    write_journal(layout, &journal)?;
    if let Err(e) = prepare(layout, spec, format, artifact, version) {
        undo(layout, &journal)?;
        state.record(event(
            &journal,
            EventKind::InstallFailed,
            airlock_core::error_chain(&e),
            Vec::new(),
        ));
        state.save(layout)?;
        return Err(e);
    }
    let mut commands = Vec::new();
    if let Some(argv) = &spec.hooks.pre_install {
        let release_dir = layout.release_dir(version);
        let env = RunEnv {
            root: layout.root(),
            version: Some(version),
            previous: from.as_deref(),
            release_dir: Some(&release_dir),
        };
        let record = env.hook("pre_install", argv, spec.hooks.timeout);
        let (ok, result) = (record.success, record.result.clone());
        commands.push(record);
        if !ok {
            undo(layout, &journal)?;
            state.record(event(
                &journal,
                EventKind::InstallFailed,
                format!("pre-install hook failed: {result}"),
                commands,
            ));
            state.save(layout)?;
            return Err(InstallError::PreInstallHook {
                version: version.to_string(),
                result,
            });
        }
    }
    activate_or_recover(layout, spec, &mut state, journal, commands)
}

/// Unpack into a temporary directory, fsync it all, write the manifest, rename into place.
fn prepare(
    layout: &AppLayout,
    spec: &InstallSpec,
    format: ArchiveFormat,
    artifact: &Path,
    version: &str,
) -> Result<(), InstallError> {
    // A release of this version left from earlier (not current: that was checked) is replaced
    // by what the artifact holds now.
    layout.remove_release(version)?;
    let releases = layout.releases_dir();
    let tmp = releases.join(temp_name("unpack"));
    fs::DirBuilder::new()
        .mode(DIR_MODE)
        .create(&tmp)
        .map_err(|e| FsError::new("creating directory", &tmp, e))?;
    let result = unpack(format, artifact, &tmp, spec.limits)
        .map_err(|e| match e {
            UnpackError::Refused(source) => InstallError::ArchiveRefused {
                artifact: artifact.to_path_buf(),
                source,
            },
            UnpackError::Unreadable(source) => InstallError::Unreadable {
                artifact: artifact.to_path_buf(),
                format: format.name(),
                source,
            },
            UnpackError::Fs(e) => e.into(),
        })
        .and_then(|()| manifest_of(&tmp))
        .and_then(|m| write_manifest(layout, version, &m));
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let dest = layout.release_dir(version);
    fs::rename(&tmp, &dest).map_err(|e| FsError::new("renaming into place", &dest, e))?;
    sync_dir(&releases)?;
    Ok(())
}

/// [`activate`], and if it fails on the way (I/O, not a failed release) the journal's recovery
/// right away, so that an error never leaves an unchecked release current.
fn activate_or_recover(
    layout: &AppLayout,
    spec: &InstallSpec,
    state: &mut StateFile,
    journal: Journal,
    commands: Vec<CommandRecord>,
) -> Result<InstallReport, InstallError> {
    match activate(layout, spec, state, journal, commands) {
        Err(e) if !matches!(e, InstallError::RolledBack { .. }) => {
            if let Err(again) = recover_locked(layout) {
                tracing::error!(error = %airlock_core::error_chain(&again), "recovery after a failed operation failed too");
            }
            Err(e)
        }
        other => other,
    }
}

/// Switch to `journal.to`, run the post-install hook and the health check; commit, or switch
/// back and mark the release bad.
fn activate(
    layout: &AppLayout,
    spec: &InstallSpec,
    state: &mut StateFile,
    mut journal: Journal,
    mut commands: Vec<CommandRecord>,
) -> Result<InstallReport, InstallError> {
    journal.phase = Phase::Switching;
    write_journal(layout, &journal)?;
    layout.switch_current(Some(&journal.to))?;
    let release_dir = layout.release_dir(&journal.to);
    let env = RunEnv {
        root: layout.root(),
        version: Some(&journal.to),
        previous: journal.from.as_deref(),
        release_dir: Some(&release_dir),
    };
    let mut failure = None;
    if let Some(argv) = &spec.hooks.post_install {
        let record = env.hook("post_install", argv, spec.hooks.timeout);
        if !record.success {
            failure = Some(format!("post-install hook: {}", record.result));
        }
        commands.push(record);
    }
    if failure.is_none()
        && let Some(record) = env.health(&spec.health)
    {
        if !record.success {
            failure = Some(format!("health check: {}", record.result));
        }
        commands.push(record);
    }
    if let Some(reason) = failure {
        journal.phase = Phase::Reverting {
            reason: reason.clone(),
        };
        write_journal(layout, &journal)?;
        layout.switch_current(journal.from.as_deref())?;
        if let (Some(argv), Some(from)) = (&spec.hooks.post_install, journal.from.as_deref()) {
            let back_dir = layout.release_dir(from);
            let env = RunEnv {
                root: layout.root(),
                version: Some(from),
                previous: Some(&journal.to),
                release_dir: Some(&back_dir),
            };
            commands.push(env.hook("post_install", argv, spec.hooks.timeout));
        }
        state.apply(&recovery_plan(&journal).changes);
        state.record(event(
            &journal,
            EventKind::RolledBack,
            reason.clone(),
            commands,
        ));
        state.save(layout)?;
        remove_journal(layout)?;
        let protect: Vec<&str> = journal.from.as_deref().into_iter().collect();
        prune(layout, spec.keep, state, &protect);
        return Err(InstallError::RolledBack {
            version: journal.to.clone(),
            back_to: journal.from.clone(),
            reason,
        });
    }
    journal.phase = Phase::Committed;
    write_journal(layout, &journal)?;
    state.apply(&commit_changes(&journal));
    let (kind, outcome) = match journal.operation {
        Operation::Install => (EventKind::Installed, InstallOutcome::Installed),
        Operation::Rollback => (EventKind::ManualRollback, InstallOutcome::RolledBackTo),
    };
    state.record(event(
        &journal,
        kind,
        "passed its checks".into(),
        commands.clone(),
    ));
    state.save(layout)?;
    remove_journal(layout)?;
    // A person who rolled back may want to go forward again: the release left stays.
    let protect: Vec<&str> = match journal.operation {
        Operation::Rollback => journal.from.as_deref().into_iter().collect(),
        Operation::Install => Vec::new(),
    };
    let pruned = prune(layout, spec.keep, state, &protect);
    Ok(InstallReport {
        version: journal.to,
        previous: journal.from,
        outcome,
        pruned,
        commands,
    })
}

/// Delete releases beyond `keep`; a failure here is logged, not returned (the operation itself
/// succeeded, and the next one prunes again).
fn prune(layout: &AppLayout, keep: usize, state: &StateFile, protect: &[&str]) -> Vec<String> {
    let listed = layout.current_version().and_then(|current| {
        let on_disk = layout.releases_on_disk()?;
        let bad: BTreeSet<String> = state.bad.keys().cloned().collect();
        Ok(prune_list(
            current.as_deref(),
            protect,
            &on_disk,
            &bad,
            keep,
        ))
    });
    let mut pruned = Vec::new();
    match listed {
        Ok(list) => {
            for v in list {
                match layout.remove_release(&v) {
                    Ok(()) => pruned.push(v),
                    Err(e) => {
                        tracing::warn!(version = %v, error = %airlock_core::error_chain(&e), "pruning failed")
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %airlock_core::error_chain(&e), "pruning failed"),
    }
    pruned
}

/// Make the file system what `plan` says; returns whether `current` moved.
fn apply_plan(layout: &AppLayout, plan: &RecoveryPlan) -> Result<bool, InstallError> {
    if let Some(v) = &plan.current
        && !layout.release_dir(v).is_dir()
    {
        return Err(InstallError::ReleaseChanged {
            version: v.clone(),
            detail: "the release to return to is missing".into(),
        });
    }
    let moved = layout.current_version()? != plan.current;
    if moved {
        layout.switch_current(plan.current.as_deref())?;
    }
    if let Some(v) = &plan.remove_release
        && plan.current.as_ref() != Some(v)
    {
        layout.remove_release(v)?;
    }
    Ok(moved)
}

/// Undo an operation that failed before the switch: release removed, journal gone.
fn undo(layout: &AppLayout, journal: &Journal) -> Result<(), InstallError> {
    apply_plan(layout, &recovery_plan(journal))?;
    remove_journal(layout)?;
    layout.remove_temporaries()?;
    Ok(())
}

/// Make an older release current again, for people: the newest release that is not bad, or
/// `to`. The same post-install hook and health check run; the release left is marked bad so
/// that the agent does not install it again on its own ([`clear_bad`] lifts that).
pub fn rollback(
    layout: &AppLayout,
    spec: &InstallSpec,
    to: Option<&str>,
) -> Result<InstallReport, InstallError> {
    layout.ensure_dirs()?;
    let _lock = layout.lock()?;
    recover_locked(layout)?;
    let mut state = StateFile::load(layout)?;
    let current = layout.current_version()?;
    let on_disk = layout.releases_on_disk()?;
    let bad: BTreeSet<String> = state.bad.keys().cloned().collect();
    let target =
        rollback_target(current.as_deref(), &on_disk, &bad, to).map_err(|e| refused(layout, e))?;
    let journal = Journal {
        id: new_id(),
        operation: Operation::Rollback,
        from: current,
        to: target,
        phase: Phase::Switching,
    };
    activate_or_recover(layout, spec, &mut state, journal, Vec::new())
}

/// At agent start: finish or undo the operation a crash interrupted (as
/// `airlock_core::install::recovery_plan` decides) and remove temporary files. Runs no hooks:
/// [`RecoveryReport::current_changed`] says whether the service needs a restart.
pub fn recover(layout: &AppLayout) -> Result<RecoveryReport, InstallError> {
    layout.ensure_dirs()?;
    let _lock = layout.lock()?;
    recover_locked(layout)
}

fn recover_locked(layout: &AppLayout) -> Result<RecoveryReport, InstallError> {
    let journal = read_journal(layout)?;
    let mut report = RecoveryReport {
        interrupted: journal.clone(),
        outcome: None,
        current: None,
        current_changed: false,
        temporaries_removed: 0,
    };
    if let Some(journal) = journal {
        let plan = recovery_plan(&journal);
        report.current_changed = apply_plan(layout, &plan)?;
        report.outcome = Some(plan.outcome);
        let mut state = StateFile::load(layout)?;
        state.apply(&plan.changes);
        let phase = match &journal.phase {
            Phase::Preparing => "preparing",
            Phase::Switching => "switching",
            Phase::Reverting { .. } => "reverting",
            Phase::Committed => "committed",
        };
        let outcome = match plan.outcome {
            RecoveryOutcome::Undone => "undone",
            RecoveryOutcome::RolledBack => "rolled back",
            RecoveryOutcome::Finished => "finished",
        };
        state.record(event(
            &journal,
            EventKind::Recovered,
            format!("interrupted while {phase}; {outcome}"),
            Vec::new(),
        ));
        state.save(layout)?;
        remove_journal(layout)?;
    }
    report.temporaries_removed = layout.remove_temporaries()?;
    report.current = layout.current_version()?;
    Ok(report)
}

/// What is installed, what else is on disk, what is bad, what happened. Reads only.
pub fn status(layout: &AppLayout) -> Result<AppStatus, InstallError> {
    let installed = layout.current_version()?;
    let mut previous: Vec<String> = layout
        .releases_on_disk()?
        .into_iter()
        .filter(|v| Some(v) != installed.as_ref())
        .collect();
    previous
        .sort_by(|a, b| airlock_core::install::compare_versions(b, a).unwrap_or_else(|| b.cmp(a)));
    let state = StateFile::load(layout)?;
    Ok(AppStatus {
        root: layout.root().to_path_buf(),
        installed,
        previous,
        bad: state.bad,
        history: state.history,
        interrupted: read_journal(layout)?,
    })
}

/// Lift the bad mark of `version` (a person decided it may be installed again). Returns
/// whether it was marked.
pub fn clear_bad(layout: &AppLayout, version: &str) -> Result<bool, InstallError> {
    layout.ensure_dirs()?;
    let _lock = layout.lock()?;
    let mut state = StateFile::load(layout)?;
    let was = state.bad.remove(version).is_some();
    if was {
        let journal = Journal {
            id: new_id(),
            operation: Operation::Install,
            from: None,
            to: version.to_string(),
            phase: Phase::Committed,
        };
        state.record(event(
            &journal,
            EventKind::BadCleared,
            "bad mark lifted by a person".into(),
            Vec::new(),
        ));
        state.save(layout)?;
    }
    Ok(was)
}
