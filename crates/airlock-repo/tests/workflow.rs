//! End-to-end publisher workflows through the library: init, add, delegate (paths and hash
//! bins), offline threshold signing, root rotation, publish, verify, and refused inputs that
//! leave the repository exactly as it was.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use airlock_core::crypto::KeyScheme;
use airlock_core::tuf::metadata::Metadata;
use airlock_core::tuf::roles::{Root, Targets};
use airlock_repo::*;

fn no_progress() -> impl Fn(u64, u64) + Sync {
    |_, _| {}
}

fn init(dir: &Path, root: RoleKeySpec, targets: RoleKeySpec) -> Repository {
    let mut opts = InitOptions::simple(Protection::PlaintextForTests);
    opts.root = root;
    opts.targets = targets;
    Repository::init(dir, &opts).expect("init")
}

fn ed(count: usize, threshold: u64) -> RoleKeySpec {
    RoleKeySpec::new(KeyScheme::Ed25519, count, threshold)
}

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, content) in files {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
}

fn add_dir(repo: &mut Repository, dir: &Path, prefix: &str) -> AddReport {
    repo.add_targets(
        &[AddSource {
            path: dir.to_path_buf(),
            target: TargetName::Prefix(prefix.into()),
        }],
        &AddOptions::default(),
        &no_progress(),
    )
    .expect("add")
}

/// Every file and symlink under `dir` with its contents, to show that nothing changed.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(dir).unwrap().to_path_buf();
        if rel == Path::new(".lock") {
            continue;
        }
        if e.path_is_symlink() {
            out.insert(
                rel,
                fs::read_link(e.path())
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes(),
            );
        } else if e.file_type().is_file() {
            out.insert(rel, fs::read(e.path()).unwrap());
        } else {
            out.insert(rel, b"<dir>".to_vec());
        }
    }
    out
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

#[test]
fn init_add_delegate_publish_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = init(&dir, ed(3, 2), ed(1, 1));
    let src = tmp.path().join("src");
    write_files(
        &src,
        &[
            ("a.txt", "alpha"),
            ("sub/b.bin", "beta"),
            ("docs/readme", "read me"),
        ],
    );
    repo.delegate_paths(
        &PathDelegation {
            from: "targets".into(),
            name: "docs".into(),
            paths: vec!["app/docs/*".into()],
            keys: KeySource::Generate {
                scheme: KeyScheme::EcdsaP256,
                count: 1,
            },
            threshold: 1,
            terminating: true,
        },
        true,
    )
    .unwrap();
    let report = add_dir(&mut repo, &src, "app/");
    assert_eq!(report.added, 3);
    assert!(report.unsigned.is_empty(), "{:?}", report.unsigned);
    assert_eq!(repo.role_for_target("app/docs/readme"), "docs");
    assert!(
        repo.targets_role("docs")
            .unwrap()
            .signed
            .targets
            .contains_key("app/docs/readme")
    );
    assert!(
        repo.targets_role("targets")
            .unwrap()
            .signed
            .targets
            .contains_key("app/sub/b.bin")
    );
    let p = repo.publish(&no_progress()).unwrap();
    assert_eq!(
        (p.root_version, p.snapshot_version, p.timestamp_version),
        (1, 1, 1)
    );
    assert_eq!(p.target_files_copied, 3);
    let published = dir.join("published");
    let v = verify_published(&published, now());
    assert!(v.ok, "{:#?}", v.problems);
    assert_eq!(v.roles_checked, 2);
    assert_eq!(v.targets_checked, 3);
    for f in [
        "1.root.json",
        "root.json",
        "1.targets.json",
        "1.docs.json",
        "1.snapshot.json",
        "timestamp.json",
    ] {
        assert!(published.join("metadata").join(f).exists(), "{f}");
    }
    let sha = airlock_core::tuf::hashes::sha256_map(b"beta")["sha256"].clone();
    assert_eq!(
        fs::read(published.join(format!("targets/app/sub/{sha}.b.bin"))).unwrap(),
        b"beta"
    );

    // A second publish with a changed file: new targets version, old metadata kept for
    // in-flight readers, everything verifies.
    write_files(&src, &[("a.txt", "alpha 2")]);
    add_dir(&mut repo, &src, "app/");
    let p = repo.publish(&no_progress()).unwrap();
    assert_eq!((p.snapshot_version, p.timestamp_version), (2, 2));
    assert!(published.join("metadata/2.targets.json").exists());
    assert!(published.join("metadata/1.targets.json").exists());
    assert!(verify_published(&published, now()).ok);

    // Cron refresh: new timestamp only; with `snapshot`, a new snapshot too.
    let r = repo.refresh(false).unwrap();
    assert_eq!((r.snapshot_version, r.timestamp_version), (2, 3));
    let r = repo.refresh(true).unwrap();
    assert_eq!((r.snapshot_version, r.timestamp_version), (3, 4));
    assert!(verify_published(&published, now()).ok);
    drop(repo);
    // Reopening sees the same state.
    let repo = Repository::open(&dir, None).unwrap();
    assert!(
        repo.status()
            .unwrap()
            .iter()
            .all(|s| s.signed && !s.unpublished)
    );
}

#[test]
fn hash_bins_hold_their_targets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = init(&dir, ed(1, 1), ed(1, 1));
    repo.delegate_bins(
        &BinDelegation {
            from: "targets".into(),
            bins: 16,
            name_prefix: "bin".into(),
            keys: KeySource::Generate {
                scheme: KeyScheme::Ed25519,
                count: 1,
            },
            threshold: 1,
        },
        true,
    )
    .unwrap();
    let src = tmp.path().join("src");
    let files: Vec<(String, String)> = (0..40)
        .map(|i| (format!("f{i}.txt"), format!("content {i}")))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    write_files(&src, &refs);
    add_dir(&mut repo, &src, "");
    let bins = airlock_core::tuf::delegation::SuccinctRoles::new(vec![], 1, 4, "bin");
    for (name, _) in &files {
        let bin = bins.bin_for_target(name);
        assert!(
            repo.targets_role(&bin)
                .unwrap()
                .signed
                .targets
                .contains_key(name),
            "{name} in {bin}"
        );
    }
    assert!(
        repo.targets_role("targets")
            .unwrap()
            .signed
            .targets
            .is_empty()
    );
    repo.publish(&no_progress()).unwrap();
    let v = verify_published(&dir.join("published"), now());
    assert!(v.ok, "{:#?}", v.problems);
    assert_eq!(v.roles_checked, 17);
    assert_eq!(v.targets_checked, 40);
}

#[test]
fn offline_threshold_signing_across_two_key_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = init(&dir, ed(1, 1), ed(2, 2));
    repo.publish(&no_progress()).unwrap();
    // Move both targets keys "to other machines".
    let offline = tmp.path().join("offline");
    fs::create_dir_all(&offline).unwrap();
    let mut moved = Vec::new();
    for k in repo.config().keys.iter().filter(|k| k.role == "targets") {
        let from = dir.join(k.private.as_ref().unwrap());
        let to = offline.join(from.file_name().unwrap());
        fs::rename(&from, &to).unwrap();
        moved.push(to);
    }
    drop(repo);
    let mut repo = Repository::open(&dir, None).unwrap();
    let src = tmp.path().join("src");
    write_files(&src, &[("app.tgz", "release 1")]);
    let added = add_dir(&mut repo, &src, "");
    assert_eq!(added.unsigned, vec!["targets".to_string()]);

    // Publishing now is refused and changes nothing.
    let before = tree(&dir);
    let err = repo.publish(&no_progress()).unwrap_err();
    assert!(
        matches!(
            err,
            RepoError::NotEnoughSignatures {
                valid: 0,
                threshold: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(before, tree(&dir));

    // Export, sign on "machine A" with key 1: not enough yet.
    let export = repo.export_role("targets").unwrap();
    assert_eq!(export.threshold, 2);
    let key1 = airlock_keystore::read_private_key(
        &moved[0],
        &airlock_keystore::PassphraseSource::Env("UNUSED".into()),
    )
    .unwrap();
    let key2 = airlock_keystore::read_private_key(
        &moved[1],
        &airlock_keystore::PassphraseSource::Env("UNUSED".into()),
    )
    .unwrap();
    let (signed_once, _) = sign_metadata(&export.bytes, &key1, "targets.json").unwrap();
    let imp = repo
        .import_signatures(&signed_once, "targets.json")
        .unwrap();
    assert_eq!(imp.added.len(), 1);
    assert!(!imp.signed);
    assert!(repo.publish(&no_progress()).is_err());

    // "Machine B" signs the file machine A returned; the import completes the threshold.
    let (signed_twice, _) = sign_metadata(&signed_once, &key2, "targets.json").unwrap();
    let imp = repo
        .import_signatures(&signed_twice, "targets.json")
        .unwrap();
    assert_eq!(imp.added.len(), 1);
    assert!(imp.signed);
    repo.publish(&no_progress()).unwrap();
    let v = verify_published(&dir.join("published"), now());
    assert!(v.ok, "{:#?}", v.problems);

    // A forged signature (right key id, wrong bytes) is refused and nothing changes.
    repo.bump("targets").unwrap();
    let export = repo.export_role("targets").unwrap();
    let (mut forged, _) = sign_metadata(&export.bytes, &key1, "t.json").unwrap();
    let text = String::from_utf8(forged.clone()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let sig = v["signatures"][0]["sig"].as_str().unwrap().to_string();
    let flipped = format!(
        "{}{}",
        if sig.starts_with('0') { "1" } else { "0" },
        &sig[1..]
    );
    forged = text.replace(&sig, &flipped).into_bytes();
    let before = tree(&dir);
    let err = repo.import_signatures(&forged, "t.json").unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    // A file whose signed part was changed matches no staged role.
    let changed = String::from_utf8(export.bytes.clone())
        .unwrap()
        .replace("\"version\": 3", "\"version\": 4");
    let err = repo
        .import_signatures(changed.as_bytes(), "t.json")
        .unwrap_err();
    assert!(err.to_string().contains("matches no staged role"), "{err}");
    assert_eq!(before, tree(&dir));
}

#[test]
fn root_rotation_is_signed_by_old_and_new_thresholds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = init(&dir, ed(2, 2), ed(1, 1));
    repo.publish(&no_progress()).unwrap();
    let old_ids: Vec<String> = repo.root().signed.roles["root"].keyids.clone();
    let report = repo
        .rotate(
            &Rotation {
                role: "root".into(),
                add: Some(KeySource::Generate {
                    scheme: KeyScheme::EcdsaP256,
                    count: 3,
                }),
                remove: Vec::new(),
                replace_all: true,
                threshold: Some(2),
            },
            true,
        )
        .unwrap();
    assert_eq!(report.new_keyids.len(), 3);
    let root = repo.root().clone();
    assert_eq!(root.signed.version, 2);
    // Signed by both old keys and all three new ones.
    let signers: Vec<&str> = root.signatures.iter().map(|s| s.keyid.as_str()).collect();
    for k in old_ids.iter().chain(&report.new_keyids) {
        assert!(signers.contains(&k.as_str()), "{k}");
    }
    repo.publish(&no_progress()).unwrap();
    let published = dir.join("published");
    let v = verify_published(&published, now());
    assert!(v.ok, "{:#?}", v.problems);
    assert_eq!(v.root_version, 2);

    // The new root verifies with the old root's keys: check independently.
    let r1: Metadata<Root> =
        Metadata::from_bytes(&fs::read(published.join("metadata/1.root.json")).unwrap()).unwrap();
    let r2 = fs::read(published.join("metadata/2.root.json")).unwrap();
    let parsed = Metadata::<Root>::parse(&r2).unwrap();
    r1.signed
        .authority("root")
        .unwrap()
        .verify(&parsed.metadata.signatures, &parsed.signed_bytes)
        .unwrap();
    parsed
        .metadata
        .signed
        .authority("root")
        .unwrap()
        .verify(&parsed.metadata.signatures, &parsed.signed_bytes)
        .unwrap();

    // Without the old root keys a rotation cannot be published.
    for id in &old_ids {
        let k = repo.config().key(id).unwrap();
        fs::remove_file(dir.join(k.private.as_ref().unwrap())).unwrap();
    }
    drop(repo);
    let mut repo = Repository::open(&dir, None).unwrap();
    repo.rotate(
        &Rotation {
            role: "timestamp".into(),
            add: Some(KeySource::Generate {
                scheme: KeyScheme::Ed25519,
                count: 1,
            }),
            remove: Vec::new(),
            replace_all: true,
            threshold: None,
        },
        true,
    )
    .unwrap();
    // Root 3 is signed by the new root keys (root 2's), which are here: publishable.
    repo.publish(&no_progress()).unwrap();
    assert!(verify_published(&published, now()).ok);
}

#[test]
fn verify_reports_tampering_precisely() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = init(&dir, ed(1, 1), ed(1, 1));
    let src = tmp.path().join("src");
    write_files(&src, &[("x/app.bin", "payload"), ("y.txt", "why")]);
    add_dir(&mut repo, &src, "");
    repo.publish(&no_progress()).unwrap();
    let published = dir.join("published");
    let meta = published.join("metadata");
    assert!(verify_published(&published, now()).ok);

    // Expired, as seen two years from now.
    let later = now() + chrono::Duration::days(800);
    let v = verify_published(&published, later);
    assert!(
        v.problems
            .iter()
            .any(|p| p.check == "expiry" && p.file == "metadata/timestamp.json")
    );
    assert!(
        v.problems
            .iter()
            .any(|p| p.check == "expiry" && p.file == "metadata/1.root.json")
    );

    // A target file with different content.
    let sha = airlock_core::tuf::hashes::sha256_map(b"payload")["sha256"].clone();
    let target = published.join(format!("targets/x/{sha}.app.bin"));
    fs::write(&target, "PAYLOAD").unwrap();
    let v = verify_published(&published, now());
    assert_eq!(v.problems.len(), 1, "{:#?}", v.problems);
    assert_eq!(v.problems[0].check, "hash");
    fs::write(&target, "payloadX").unwrap();
    let v = verify_published(&published, now());
    assert_eq!(v.problems[0].check, "length");
    fs::remove_file(&target).unwrap();
    let v = verify_published(&published, now());
    assert_eq!(v.problems[0].check, "missing");
    fs::write(&target, "payload").unwrap();
    assert!(verify_published(&published, now()).ok);

    // targets.json edited after signing (a changed length): the client's verdict, a signature
    // refusal naming the file; no file is checked against a role the client refuses.
    let tpath = meta.join("1.targets.json");
    let orig = fs::read(&tpath).unwrap();
    let mut md: Metadata<Targets> = Metadata::from_bytes(&orig).unwrap();
    md.signed.targets.get_mut("y.txt").unwrap().length = 4;
    // Write through a new file: the published file is a hard link shared with older generations.
    fs::remove_file(&tpath).unwrap();
    fs::write(&tpath, serde_json::to_vec(&md).unwrap()).unwrap();
    let v = verify_published(&published, now());
    let checks: Vec<&str> = v.problems.iter().map(|p| p.check.as_str()).collect();
    assert!(checks.contains(&"signature"), "{checks:?}");
    assert!(v.problems.iter().any(|p| {
        p.file == "metadata/1.targets.json"
            && p.message
                .contains("not signed by a threshold of the keys root gives it")
    }));
    assert!(!checks.contains(&"length"), "{checks:?}");
    fs::remove_file(&tpath).unwrap();
    fs::write(&tpath, &orig).unwrap();

    // Missing snapshot, garbage timestamp.
    let snap = meta.join("1.snapshot.json");
    let snap_bytes = fs::read(&snap).unwrap();
    fs::remove_file(&snap).unwrap();
    let v = verify_published(&published, now());
    assert!(
        v.problems
            .iter()
            .any(|p| p.check == "missing" && p.file == "metadata/1.snapshot.json")
    );
    fs::write(&snap, &snap_bytes).unwrap();
    let ts = meta.join("timestamp.json");
    fs::remove_file(&ts).unwrap();
    fs::write(&ts, "{not json").unwrap();
    let v = verify_published(&published, now());
    assert!(
        v.problems
            .iter()
            .any(|p| p.check == "parse" && p.file == "metadata/timestamp.json")
    );
}

#[test]
fn refused_inputs_leave_the_repository_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = init(&dir, ed(1, 1), ed(1, 1));
    let src = tmp.path().join("src");
    write_files(&src, &[("ok.txt", "fine")]);
    add_dir(&mut repo, &src, "");
    repo.publish(&no_progress()).unwrap();
    let before = tree(&dir);

    let bad_add = repo.add_targets(
        &[AddSource {
            path: src.join("ok.txt"),
            target: TargetName::Exact("../escape".into()),
        }],
        &AddOptions::default(),
        &no_progress(),
    );
    assert!(bad_add.is_err());
    let missing = repo.add_targets(
        &[AddSource {
            path: src.join("nope.txt"),
            target: TargetName::Prefix(String::new()),
        }],
        &AddOptions::default(),
        &no_progress(),
    );
    assert!(missing.is_err());
    assert!(repo.remove_targets(&["not/there".into()]).is_err());
    let bad_name = repo.delegate_paths(
        &PathDelegation {
            from: "targets".into(),
            name: "../x".into(),
            paths: vec!["*".into()],
            keys: KeySource::Generate {
                scheme: KeyScheme::Ed25519,
                count: 1,
            },
            threshold: 1,
            terminating: false,
        },
        true,
    );
    assert!(bad_name.is_err());
    let bad_threshold = repo.delegate_paths(
        &PathDelegation {
            from: "targets".into(),
            name: "ok".into(),
            paths: vec!["*".into()],
            keys: KeySource::Generate {
                scheme: KeyScheme::Ed25519,
                count: 1,
            },
            threshold: 2,
            terminating: false,
        },
        true,
    );
    assert!(bad_threshold.is_err());
    let bad_bins = repo.delegate_bins(
        &BinDelegation {
            from: "targets".into(),
            bins: 100,
            name_prefix: "bin".into(),
            keys: KeySource::Generate {
                scheme: KeyScheme::Ed25519,
                count: 1,
            },
            threshold: 1,
        },
        true,
    );
    assert!(bad_bins.is_err());
    let bad_rotation = repo.rotate(
        &Rotation {
            role: "root".into(),
            add: None,
            remove: vec!["nonexistent".into()],
            replace_all: false,
            threshold: None,
        },
        true,
    );
    assert!(bad_rotation.is_err());
    assert!(
        repo.import_signatures(b"{\"signed\": 1}", "x.json")
            .is_err()
    );
    assert!(repo.export_role("nope").is_err());
    assert_eq!(before, tree(&dir));

    // A source file changed between add and publish is refused at publish, nothing switched.
    write_files(&src, &[("new.txt", "one")]);
    add_dir(&mut repo, &src, "");
    let staged = tree(&dir);
    write_files(&src, &[("new.txt", "two")]);
    let err = repo.publish(&no_progress()).unwrap_err();
    assert!(
        err.to_string().contains("changed since it was added"),
        "{err}"
    );
    let after = tree(&dir);
    let meta_before: Vec<_> = staged
        .iter()
        .filter(|(k, _)| k.starts_with("published/metadata"))
        .collect();
    let meta_after: Vec<_> = after
        .iter()
        .filter(|(k, _)| k.starts_with("published/metadata"))
        .collect();
    assert_eq!(meta_before, meta_after);
    // Init refuses a non-empty directory and leaves it alone.
    let err =
        Repository::init(&src, &InitOptions::simple(Protection::PlaintextForTests)).unwrap_err();
    assert!(matches!(err, RepoError::AlreadyExists { .. }));
    assert!(src.join("ok.txt").exists());
    // A second command while one holds the lock is refused.
    assert!(matches!(
        Repository::open(&dir, None),
        Err(RepoError::Locked { .. })
    ));
}

fn wrong_again() -> airlock_keystore::PassphraseSource {
    airlock_keystore::PassphraseSource::Value(zeroize::Zeroizing::new("wrong".to_string()))
}

#[test]
fn every_key_type_can_hold_a_role_and_keys_are_encrypted_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let pass = airlock_keystore::PassphraseSource::Value(zeroize::Zeroizing::new(
        "correct horse".to_string(),
    ));
    let mut opts = InitOptions::simple(Protection::encrypted_fast_for_tests(pass.clone()));
    opts.root = RoleKeySpec::new(KeyScheme::HybridEd25519SlhDsa, 1, 1);
    opts.targets = RoleKeySpec::new(KeyScheme::EcdsaP256, 1, 1);
    opts.snapshot = RoleKeySpec::new(KeyScheme::RsaPssSha256, 1, 1);
    opts.timestamp = RoleKeySpec::new(KeyScheme::Ed448, 1, 1);
    let repo = Repository::init(&dir, &opts).unwrap();
    for k in &repo.config().keys {
        let text = fs::read_to_string(dir.join(k.private.as_ref().unwrap())).unwrap();
        assert!(
            text.contains("ENCRYPTED PRIVATE KEY"),
            "{} is not encrypted",
            k.role
        );
    }
    drop(repo);
    // Wrong passphrase: a clear error naming the key file, nothing published.
    let wrong =
        airlock_keystore::PassphraseSource::Value(zeroize::Zeroizing::new("wrong".to_string()));
    let mut repo = Repository::open(&dir, Some(wrong)).unwrap();
    let staged = tmp.path().join("staged.bin");
    fs::write(&staged, "staged").unwrap();
    let before = tree(&dir);
    let err = repo
        .add_file(&staged, "staged.bin", TargetCustom::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("keys/targets-"), "{err}");
    assert_eq!(before, tree(&dir));
    // After an error the in-memory state is undefined: reopen (as the CLI does per command).
    drop(repo);
    let mut repo = Repository::open(&dir, Some(wrong_again())).unwrap();
    let err = repo.publish(&no_progress()).unwrap_err().to_string();
    assert!(
        err.contains("keys/snapshot-") || err.contains("keys/timestamp-"),
        "{err}"
    );
    assert_eq!(before, tree(&dir));
    drop(repo);
    // No passphrase source given: the library chooses none of its own (no hidden
    // AIRLOCK_PASSPHRASE), it says that an encrypted key needs one.
    let mut repo = Repository::open(&dir, None).unwrap();
    let err = repo.publish(&no_progress()).unwrap_err().to_string();
    assert!(
        err.contains("encrypted") && err.contains("no passphrase source"),
        "{err}"
    );
    assert!(!err.contains("AIRLOCK_PASSPHRASE"), "{err}");
    assert_eq!(before, tree(&dir));
    drop(repo);
    let mut repo = Repository::open(&dir, Some(pass)).unwrap();
    let src = tmp.path().join("app.bin");
    fs::write(&src, "app").unwrap();
    let custom = TargetCustom {
        version: Some("2.0".into()),
        channel: Some("beta".into()),
        rollout_percent: Some(10),
        ..TargetCustom::default()
    };
    repo.add_file(&src, "app/app.bin", custom).unwrap();
    repo.publish(&no_progress()).unwrap();
    let v = verify_published(&dir.join("published"), now());
    assert!(v.ok, "{:#?}", v.problems);
    let t = repo.targets_role("targets").unwrap();
    assert_eq!(
        t.signed.targets["app/app.bin"].custom.as_deref(),
        Some(&serde_json::json!({"version": "2.0", "channel": "beta", "rollout_percent": 10}))
    );
}

#[test]
fn publish_with_hard_links_checks_hashes_and_makes_files_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = init(&dir, ed(1, 1), ed(1, 1));
    let src = tmp.path().join("src");
    write_files(&src, &[("a.bin", "linked"), ("b.bin", "changed later")]);
    add_dir(&mut repo, &src, "");
    // A source changed after `add` is refused in link mode too; nothing is switched in.
    write_files(&src, &[("b.bin", "changed!")]);
    let err = repo
        .publish_with(TargetFiles::HardLink, &no_progress())
        .unwrap_err();
    assert!(
        err.to_string().contains("changed since it was added"),
        "{err}"
    );
    assert!(!dir.join("published/metadata").exists());
    drop(repo);
    let mut repo = Repository::open(&dir, None).unwrap();
    add_dir(&mut repo, &src, "");
    let report = repo
        .publish_with(TargetFiles::HardLink, &no_progress())
        .unwrap();
    // a.bin may already have been linked by the refused attempt (content-addressed, unlisted).
    assert!((1..=2).contains(&report.target_files_copied));
    assert!(verify_published(&dir.join("published"), now()).ok);
    let sha = airlock_core::tuf::hashes::sha256_map(b"linked")["sha256"].clone();
    let published = dir.join(format!("published/targets/{sha}.a.bin"));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(&published).unwrap().ino(),
        fs::metadata(src.join("a.bin")).unwrap().ino()
    );
    assert!(fs::metadata(&published).unwrap().permissions().readonly());
}

/// `verify` reads trees it did not write: a targets role claiming 2^32 succinct bins is a
/// reported problem, not an attempt to list 2^32 role names.
#[test]
fn verify_reports_a_delegation_to_more_bins_than_the_snapshot_lists() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut repo = init(&dir, ed(1, 1), ed(1, 1));
    repo.delegate_bins(
        &BinDelegation {
            from: "targets".into(),
            bins: 2,
            name_prefix: "bin".into(),
            keys: KeySource::Generate {
                scheme: KeyScheme::Ed25519,
                count: 1,
            },
            threshold: 1,
        },
        true,
    )
    .unwrap();
    repo.publish(&no_progress()).unwrap();
    let published = dir.join("published");
    assert!(verify_published(&published, now()).ok);

    let metadata = published.join("metadata");
    let targets_file = fs::read_dir(&metadata)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".targets.json") && !n.starts_with("targets"))
        })
        .max()
        .expect("a versioned targets.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&fs::read(&targets_file).unwrap()).unwrap();
    v["signed"]["delegations"]["succinct_roles"]["bit_length"] = 32.into();
    let _ = fs::remove_file(&targets_file); // may be read-only or shared with older generations
    fs::write(&targets_file, serde_json::to_vec(&v).unwrap()).unwrap();

    // The verdict is the client's: the edited role no longer carries a valid signature, and
    // the walk ends there without listing (or allocating) 2^32 bin names. A validly signed
    // delegation to 2^32 bins is walked by the core's TargetSearch, which queues only the bins
    // its cap can reach (the client's listing tests cover that).
    let report = verify_published(&published, now());
    assert!(!report.ok);
    assert!(
        report.problems.iter().any(|p| p.check == "signature"
            && p.file.ends_with(".targets.json")
            && p.message.contains("targets")),
        "{:#?}",
        report.problems
    );
}

/// A published target file damaged in place (same length) is replaced at the next publish of
/// that target: the existing file is checked by hash, not by length alone.
#[test]
fn publish_replaces_a_published_target_file_of_the_right_length_but_wrong_hash() {
    for mode in [TargetFiles::Copy, TargetFiles::HardLink] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        let mut repo = init(&dir, ed(1, 1), ed(1, 1));
        let src = tmp.path().join("src");
        write_files(&src, &[("a.bin", "original")]);
        add_dir(&mut repo, &src, "");
        repo.publish_with(mode, &no_progress()).unwrap();
        let sha = airlock_core::tuf::hashes::sha256_map(b"original")["sha256"].clone();
        let published = dir.join(format!("published/targets/{sha}.a.bin"));
        // Damaged in place (a disk error, a bad rsync): same length, other bytes. In link mode
        // the damage is to a separate copy, not to the source.
        fs::remove_file(&published).unwrap();
        fs::write(&published, "0riginal").unwrap();
        add_dir(&mut repo, &src, "");
        let report = repo.publish_with(mode, &no_progress()).unwrap();
        assert_eq!(report.target_files_copied, 1, "{mode:?}");
        assert_eq!(fs::read(&published).unwrap(), b"original", "{mode:?}");
        assert!(verify_published(&dir.join("published"), now()).ok);
    }
}
