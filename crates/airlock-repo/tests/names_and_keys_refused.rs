//! The publisher refuses to make metadata that clients refuse or that would not mean what it
//! says: role names that differ only in case (one file on a case-insensitive file system), and
//! one key listed twice for a role (it counts once toward the threshold).

use airlock_core::crypto::{KeyScheme, PrivateKey, PublicKey, Signer};
use airlock_repo::*;
use serde_json::Value;

fn repo(dir: &std::path::Path) -> Repository {
    let mut opts = InitOptions::simple(KeyProtection::PlaintextForTests);
    opts.root = RoleKeySpec::new(KeyScheme::Ed25519, 1, 1);
    opts.targets = RoleKeySpec::new(KeyScheme::Ed25519, 1, 1);
    Repository::init(dir, &opts).expect("init")
}

fn delegation(name: &str, keys: KeySource, threshold: u64) -> PathDelegation {
    PathDelegation {
        from: "targets".into(),
        name: name.into(),
        paths: vec![format!("{name}/*")],
        keys,
        threshold,
        terminating: false,
    }
}

fn generated() -> KeySource {
    KeySource::Generate {
        scheme: KeyScheme::Ed25519,
        count: 1,
    }
}

fn upper_case_hex(key: &PublicKey) -> PublicKey {
    let mut other = key.clone();
    let upper = key.public_str().unwrap().to_ascii_uppercase();
    other.keyval.insert("public".into(), Value::String(upper));
    other
}

#[test]
fn role_names_differing_only_in_case_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = repo(tmp.path());
    for top in ["Root", "TIMESTAMP", "Targets", "snapShot"] {
        let err = repo
            .delegate_paths(&delegation(top, generated(), 1), true)
            .unwrap_err();
        assert!(err.to_string().contains("top-level role name"), "{err}");
    }
    repo.delegate_paths(&delegation("team", generated(), 1), true)
        .unwrap();
    let err = repo
        .delegate_paths(&delegation("Team", generated(), 1), true)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("\"Team\"") && msg.contains("\"team\"") && msg.contains("case"),
        "{msg}"
    );
    // Hash bins whose names fold onto an existing role.
    repo.delegate_paths(&delegation("bins-0", generated(), 1), true)
        .unwrap();
    let bins = BinDelegation {
        from: "team".into(),
        bins: 2,
        name_prefix: "BINS".into(),
        keys: generated(),
        threshold: 1,
    };
    let err = repo.delegate_bins(&bins, true).unwrap_err();
    assert!(err.to_string().contains("\"bins-0\""), "{err}");
}

#[test]
fn one_key_listed_twice_for_a_role_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = repo(tmp.path());
    let key = PrivateKey::generate(KeyScheme::Ed25519).unwrap();
    let public = key.public_key().clone();
    let twice = KeySource::Public(vec![public.clone(), upper_case_hex(&public)]);
    let err = repo
        .delegate_paths(&delegation("team", twice, 2), true)
        .unwrap_err();
    assert!(err.to_string().contains("same public key"), "{err}");

    repo.delegate_paths(
        &delegation("team", KeySource::Public(vec![public.clone()]), 1),
        true,
    )
    .unwrap();
    let rotation = Rotation {
        role: "team".into(),
        add: Some(KeySource::Public(vec![upper_case_hex(&public)])),
        remove: Vec::new(),
        replace_all: false,
        threshold: Some(2),
    };
    let err = repo.rotate(&rotation, true).unwrap_err();
    assert!(err.to_string().contains("same public key"), "{err}");
    // A genuinely second key is fine.
    let other = PrivateKey::generate(KeyScheme::Ed25519).unwrap();
    let rotation = Rotation {
        add: Some(KeySource::Public(vec![other.public_key().clone()])),
        ..rotation
    };
    repo.rotate(&rotation, true).unwrap();
}
