//! kill -9 at random moments of installs, failing installs (rolled back by their health check)
//! and manual rollbacks; after each kill, `recover` must leave `current` on a complete release
//! that passed its health check, every release on disk complete, and no temporary left.
//!
//! The engine runs in a child process: this test binary again, running only `crash_child`
//! (which does nothing unless the campaign's environment variables are set).
//! `AIRLOCK_CRASH_KILLS` sets the number of kills (default 200), `AIRLOCK_CRASH_SEED` the seed.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use airlock_install::{
    AppLayout, EventKind, HealthCheck, Hooks, InstallError, InstallSpec, Manifest, ManifestEntry,
    install, manifest_of, recover, rollback, status, verify_release,
};
use common::*;
use sha2::{Digest, Sha256};

/// The files of a release: (path, mode, content). A good release has `healthy`.
fn release_files(version: &str, good: bool) -> Vec<(String, u32, Vec<u8>)> {
    let mut files = vec![
        (
            "bin/app".to_string(),
            0o755,
            format!("#!/bin/sh\necho {version}\n").into_bytes(),
        ),
        ("VERSION".to_string(), 0o644, version.as_bytes().to_vec()),
    ];
    for i in 0..8 {
        let body = format!("{version} part {i}\n")
            .repeat(200 + i * 50)
            .into_bytes();
        files.push((format!("lib/part{i}.dat"), 0o644, body));
    }
    if good {
        files.push(("healthy".to_string(), 0o644, b"yes".to_vec()));
    }
    files
}

fn is_good(version: &str) -> bool {
    // x.j.0 with j % 4 == 2 is the failing one (see `crash_child`); 1.0.0 is the first.
    version
        .split('.')
        .nth(1)
        .and_then(|j| j.parse::<u32>().ok())
        .is_none_or(|j| j % 4 != 2)
}

fn artifact(dir: &Path, version: &str) -> std::path::PathBuf {
    let files = release_files(version, is_good(version));
    let mut entries = vec![Entry::Dir("bin/", 0o755), Entry::Dir("lib/", 0o755)];
    for (p, m, c) in &files {
        entries.push(Entry::File(p, *m, c));
    }
    entries.push(Entry::Symlink("run", "bin/app"));
    write(
        dir,
        &format!("app-{version}.tar.gz"),
        &gz(&tar_bytes(&entries)),
    )
}

fn expected_manifest(version: &str) -> Manifest {
    let mut m = BTreeMap::new();
    m.insert("bin".to_string(), ManifestEntry::Dir { mode: 0o755 });
    m.insert("lib".to_string(), ManifestEntry::Dir { mode: 0o755 });
    m.insert(
        "run".to_string(),
        ManifestEntry::Symlink {
            target: "bin/app".into(),
        },
    );
    for (p, mode, c) in release_files(version, is_good(version)) {
        m.insert(
            p,
            ManifestEntry::File {
                mode,
                size: c.len() as u64,
                sha256: hex::encode(Sha256::digest(&c)),
            },
        );
    }
    m
}

fn spec() -> InstallSpec {
    InstallSpec {
        health: HealthCheck::Command {
            argv: vec!["sh".into(), "-c".into(), "test -f current/healthy".into()],
            timeout: Duration::from_secs(10),
        },
        hooks: Hooks {
            pre_install: None,
            post_install: Some(vec![
                "sh".into(),
                "-c".into(),
                "echo restarted $AIRLOCK_VERSION".into(),
            ]),
            timeout: Duration::from_secs(10),
        },
        keep: 2,
        ..InstallSpec::default()
    }
}

/// The engine under fire: installs, failing installs and rollbacks until killed.
#[test]
fn crash_child() {
    let (Ok(root), Ok(generation)) = (
        std::env::var("AIRLOCK_CRASH_ROOT"),
        std::env::var("AIRLOCK_CRASH_GEN"),
    ) else {
        return;
    };
    let root = Path::new(&root);
    let layout = AppLayout::new(&root.join("app"));
    let artifacts = root.join(format!("artifacts-{generation}"));
    std::fs::create_dir_all(&artifacts).unwrap();
    let spec = spec();
    // Each child starts at another kind of operation, so kills land in all of them.
    let first: u32 = generation.parse::<u32>().unwrap() % 4;
    for j in first.. {
        let version = format!("{generation}.{j}.0");
        match j % 4 {
            3 => {
                let _ = rollback(&layout, &spec, None);
            }
            _ => {
                let a = artifact(&artifacts, &version);
                match install(&layout, &spec, &a, &version, false) {
                    Ok(_) => assert!(is_good(&version)),
                    Err(InstallError::RolledBack { .. }) => assert!(!is_good(&version)),
                    Err(e) => panic!("{}", airlock_core::error_chain(&e)),
                }
            }
        }
    }
}

fn no_temporaries(dir: &Path) {
    for name in names(dir) {
        assert!(
            !name.starts_with(".airlock-tmp"),
            "{}: {name} left",
            dir.display()
        );
    }
}

#[test]
fn kill_9_at_random_points_always_recovers_to_a_complete_healthy_release() {
    let kills: u32 = std::env::var("AIRLOCK_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut seed: u64 = std::env::var("AIRLOCK_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("AIRLOCK_CRASH_SEED={seed}");
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };

    let dir = tempfile::tempdir().unwrap();
    let layout = AppLayout::new(&dir.path().join("app"));
    let first = artifact(dir.path(), "1.0.0");
    install(&layout, &spec(), &first, "1.0.0", false).unwrap();

    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut phases: BTreeMap<String, u32> = BTreeMap::new();
    let max_delay_ms = 250u64;
    for k in 0..kills {
        let generation = k + 2;
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("AIRLOCK_CRASH_ROOT", dir.path())
            .env("AIRLOCK_CRASH_GEN", generation.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = Duration::from_micros(next() % (max_delay_ms * 1000));
        std::thread::sleep(delay);
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the child ended on its own ({status}) at kill {k}");
        }
        child.kill().unwrap();
        child.wait().unwrap();

        let journal = std::fs::read_to_string(layout.state_dir().join("journal.json")).ok();
        let phase = journal
            .and_then(|j| serde_json::from_str::<serde_json::Value>(&j).ok())
            .and_then(|v| v.get("phase").and_then(|p| p.as_str()).map(String::from))
            .unwrap_or_else(|| "none".into());
        *phases.entry(phase.clone()).or_default() += 1;

        let report = match recover(&layout) {
            Ok(r) => r,
            Err(e) => {
                panic!("kill {k} ({phase}): {}", airlock_core::error_chain(&e));
            }
        };
        let current = report
            .current
            .unwrap_or_else(|| panic!("kill {k} ({phase}): no current"));
        let found = manifest_of(&layout.release_dir(&current)).unwrap();
        assert_eq!(
            found,
            expected_manifest(&current),
            "kill {k} ({phase}): current {current} is not complete"
        );
        assert!(
            is_good(&current),
            "kill {k} ({phase}): current {current} never passed"
        );
        for v in layout.releases_on_disk().unwrap() {
            assert_eq!(
                manifest_of(&layout.release_dir(&v)).unwrap(),
                expected_manifest(&v),
                "kill {k} ({phase}): release {v} on disk is not complete"
            );
            verify_release(&layout, &v).unwrap();
        }
        no_temporaries(layout.root());
        no_temporaries(&layout.releases_dir());
        no_temporaries(&layout.state_dir());
        assert!(!layout.state_dir().join("journal.json").exists());
        assert!(status(&layout).unwrap().interrupted.is_none());
        std::fs::remove_dir_all(dir.path().join(format!("artifacts-{generation}"))).ok();
    }
    eprintln!(
        "{kills} kills in {:.1} s; journal phase at each kill: {phases:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        phases.get("preparing").copied().unwrap_or(0) > 0,
        "{phases:?}"
    );
    let kinds: Vec<EventKind> = status(&layout)
        .unwrap()
        .history
        .iter()
        .map(|e| e.kind)
        .collect();
    for kind in [
        EventKind::Installed,
        EventKind::RolledBack,
        EventKind::ManualRollback,
        EventKind::Recovered,
    ] {
        assert!(
            kinds.contains(&kind),
            "no {kind:?} in the history: {kinds:?}"
        );
    }
    assert!(
        phases.get("switching").copied().unwrap_or(0) > 0,
        "{phases:?}"
    );
}
