//! `--key-type hybrid` in the publisher: roles list the Ed25519 half as a plain `ed25519` key,
//! the delegator pairs it with its SLH-DSA key in `x-airlock-pq`, every signature comes with
//! its SLH-DSA half, and offline signing keeps both halves (docs/keys.md).
//!
//! SLH-DSA signing takes seconds: one repository, one test.

use std::fs;
use std::path::Path;

use airlock_core::crypto::KeyScheme;
use airlock_repo::*;
use serde_json::Value;

fn no_progress() -> impl Fn(u64, u64) + Sync {
    |_, _| {}
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// Each signature by a paired key comes with an SLH-DSA entry.
fn assert_both_halves(md: &Value, pairings: &Value) {
    let sigs = md["signatures"].as_array().unwrap();
    let ids: Vec<&str> = sigs.iter().map(|s| s["keyid"].as_str().unwrap()).collect();
    let classical: Vec<&&str> = ids
        .iter()
        .filter(|id| !id.starts_with("slh-dsa-sha2-128s:"))
        .collect();
    assert!(!classical.is_empty());
    for id in classical {
        assert!(pairings.get(*id).is_some(), "{id} is not paired");
    }
    assert_eq!(ids.len(), 2 * (ids.len() / 2), "{ids:?}");
}

#[test]
fn hybrid_repository_in_additive_form_publishes_signs_offline_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let hybrid = RoleKeySpec::new(KeyScheme::HybridEd25519SlhDsa, 1, 1);
    let mut opts = InitOptions::simple(Protection::PlaintextForTests);
    opts.root = hybrid;
    opts.targets = hybrid;
    opts.snapshot = hybrid;
    opts.timestamp = hybrid;
    let mut repo = Repository::init(&dir, &opts).unwrap();
    let src = tmp.path().join("app.bin");
    fs::write(&src, "app").unwrap();
    repo.add_file(&src, "app/app.bin", TargetCustom::default())
        .unwrap();
    repo.publish(&no_progress()).unwrap();
    let published = dir.join("published");
    let v = verify_published(&published, chrono::Utc::now());
    assert!(v.ok, "{:#?}", v.problems);

    let root = json(&published.join("metadata/1.root.json"));
    let keys = root["signed"]["keys"].as_object().unwrap();
    assert_eq!(keys.len(), 4);
    for key in keys.values() {
        assert_eq!(key["keytype"], "ed25519");
        assert_eq!(key["scheme"], "ed25519");
    }
    let pairings = &root["signed"]["x-airlock-pq"];
    assert_eq!(pairings.as_object().unwrap().len(), 4);
    for (id, p) in pairings.as_object().unwrap() {
        assert!(keys.contains_key(id));
        assert_eq!(p["scheme"], "slh-dsa-sha2-128s");
    }
    for file in [
        "1.root.json",
        "1.targets.json",
        "1.snapshot.json",
        "timestamp.json",
    ] {
        assert_both_halves(&json(&published.join("metadata").join(file)), pairings);
    }
    // One hybrid timestamp key fits the 16 KiB timestamp cap of python-tuf (and Airlock).
    let ts_len = fs::metadata(published.join("metadata/timestamp.json"))
        .unwrap()
        .len();
    assert!(ts_len <= 16_384, "timestamp.json is {ts_len} bytes");
    eprintln!("timestamp.json: {ts_len} bytes");
    // The key files describe the whole hybrid key (what `--public-key` takes).
    let entry = &repo.config().keys[0];
    let described = json(&dir.join(&entry.public));
    assert_eq!(described["keytype"], "ed25519-slh-dsa-sha2-128s");

    // A delegated role with a new hybrid key: the delegator's `delegations` pairs it.
    let report = repo
        .delegate_paths(
            &PathDelegation {
                from: "targets".into(),
                name: "app".into(),
                paths: vec!["app/*".into()],
                keys: KeySource::Generate {
                    scheme: KeyScheme::HybridEd25519SlhDsa,
                    count: 1,
                },
                threshold: 1,
                terminating: false,
            },
            true,
        )
        .unwrap();
    let app_key = report.new_keyids[0].clone();
    let targets = repo.targets_role("targets").unwrap();
    let d = targets.signed.delegations.as_ref().unwrap();
    assert!(d.pq.contains_key(&app_key));
    assert_eq!(d.keys[&app_key].keytype, "ed25519");

    // Offline: the targets key leaves the machine; export, sign with the key file, import.
    let targets_entry = repo
        .config()
        .keys
        .iter()
        .find(|k| k.role == "targets")
        .unwrap()
        .clone();
    let key_file = dir.join(targets_entry.private.as_ref().unwrap());
    let offline = tmp.path().join("targets.key");
    fs::rename(&key_file, &offline).unwrap();
    drop(repo);
    let mut repo = Repository::open(&dir, None).unwrap();
    repo.bump("targets").unwrap();
    assert!(repo.publish(&no_progress()).is_err());
    let export = repo.export_role("targets").unwrap();
    let key = airlock_keystore::read_private_key(
        &offline,
        &airlock_keystore::PassphraseSource::Env("UNUSED".into()),
    )
    .unwrap();
    let signer = offline_signer(key, &export.bytes).unwrap();
    let (signed, keyid) = sign_metadata(&export.bytes, signer.as_ref(), "targets.json").unwrap();
    assert_eq!(keyid, targets_entry.keyid);
    // The Ed25519 half alone is not enough for the publisher either.
    let mut only_ed: Value = serde_json::from_slice(&signed).unwrap();
    only_ed["signatures"]
        .as_array_mut()
        .unwrap()
        .retain(|s| !s["keyid"].as_str().unwrap().starts_with("slh-dsa"));
    let imp = repo
        .import_signatures(&serde_json::to_vec(&only_ed).unwrap(), "targets.json")
        .unwrap();
    assert!(!imp.signed);
    let status = repo.status().unwrap();
    let targets_status = status.iter().find(|s| s.role == "targets").unwrap();
    assert_eq!(
        targets_status.missing,
        vec![format!("{} (its SLH-DSA half)", targets_entry.keyid)]
    );
    let err = repo.publish(&no_progress()).unwrap_err().to_string();
    assert!(err.contains("SLH-DSA half"), "{err}");
    let imp = repo.import_signatures(&signed, "targets.json").unwrap();
    assert_eq!(imp.added.len(), 1, "{:?}", imp.added);
    assert!(imp.added[0].starts_with("slh-dsa-sha2-128s:"));
    assert!(imp.signed);
    repo.publish(&no_progress()).unwrap();
    let v = verify_published(&published, chrono::Utc::now());
    assert!(v.ok, "{:#?}", v.problems);

    // Rotating the delegated role away removes its pairing with its key.
    repo.undelegate("app").unwrap();
    let d = repo
        .targets_role("targets")
        .unwrap()
        .signed
        .delegations
        .as_ref();
    assert!(d.is_none_or(|d| !d.pq.contains_key(&app_key)));
}

#[test]
fn timestamp_gets_at_most_one_hybrid_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let mut opts = InitOptions::simple(Protection::PlaintextForTests);
    opts.timestamp = RoleKeySpec::new(KeyScheme::HybridEd25519SlhDsa, 2, 1);
    let err = Repository::init(&dir, &opts).unwrap_err().to_string();
    assert!(err.contains("at most one hybrid key"), "{err}");
    assert!(!dir.exists());
    // Rotating a second hybrid key in is refused too, and changes nothing.
    opts.timestamp = RoleKeySpec::new(KeyScheme::HybridEd25519SlhDsa, 1, 1);
    let mut repo = Repository::init(&dir, &opts).unwrap();
    let before = repo.root().clone();
    let err = repo
        .rotate(
            &Rotation {
                role: "timestamp".into(),
                add: Some(KeySource::Generate {
                    scheme: KeyScheme::HybridEd25519SlhDsa,
                    count: 1,
                }),
                remove: Vec::new(),
                replace_all: false,
                threshold: None,
            },
            true,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most one hybrid key"), "{err}");
    drop(repo);
    let repo = Repository::open(&dir, None).unwrap();
    assert_eq!(repo.root(), &before);
}
