//! A JSON object with the same key twice is refused wherever metadata is read. Readers differ on
//! which copy wins (serde_json and Python's json keep the last, others the first or refuse), so
//! accepting one would let another reader see a different document than the one verified.

mod common;

use common::repo::*;

/// `bytes` with `insert` put right after the first occurrence of `after`.
fn inject(bytes: &[u8], after: &str, insert: &str) -> Vec<u8> {
    let text = std::str::from_utf8(bytes).unwrap();
    let at = text
        .find(after)
        .unwrap_or_else(|| panic!("{after:?} not in {text}"))
        + after.len();
    format!("{}{insert}{}", &text[..at], &text[at..]).into_bytes()
}

fn assert_refused_naming(err: impl std::error::Error, key: &str) {
    let msg = airlock_core::error_chain(&err);
    assert!(
        msg.contains("duplicate") && msg.contains(&format!("{key:?}")),
        "error does not name the duplicated key {key:?}: {msg}"
    );
}

fn published() -> (Repo, Published) {
    let mut repo = Repo::new();
    repo.add_target("targets", "a.txt");
    repo.targets_of("targets")
        .signed
        .targets
        .get_mut("a.txt")
        .unwrap()
        .custom = Some(Box::new(serde_json::json!({"x": {"y": 1}})));
    // Without hashes in snapshot, a changed targets file reaches the signature check.
    repo.snapshot_hashes = false;
    let p = repo.publish();
    (repo, p)
}

#[test]
fn a_target_listed_twice_is_refused_by_the_trusted_set() {
    let (_, p) = published();
    // The copy a first-wins reader would take comes first; the signed one last.
    let twice = inject(
        &p.targets,
        r#""targets":{"#,
        r#""a.txt":{"hashes":{"sha256":"00"},"length":1},"#,
    );
    let mut t = TrustedSet::new(&p.root, now()).unwrap();
    t.update_timestamp(&p.timestamp).unwrap();
    t.update_snapshot(&p.snapshot).unwrap();
    assert_refused_naming(t.update_targets(&twice).unwrap_err(), "a.txt");
    t.update_targets(&p.targets).unwrap();
}

#[test]
fn a_root_key_listed_twice_is_refused_by_the_trusted_set() {
    let (repo, p) = published();
    let keyid = id(&repo.root_signers[0]);
    let other = key();
    let twice = inject(
        &p.root,
        r#""keys":{"#,
        &format!(
            r#""{keyid}":{},"#,
            serde_json::to_string(other.public_key()).unwrap()
        ),
    );
    assert_refused_naming(TrustedSet::new(&twice, now()).unwrap_err(), &keyid);
    TrustedSet::new(&p.root, now()).unwrap();
}

#[test]
fn duplicates_at_every_level_are_refused_by_the_parser() {
    let (_, p) = published();
    let root = |b: &[u8]| Metadata::<Root>::parse(b).map(|_| ());
    let snapshot = |b: &[u8]| Metadata::<Snapshot>::parse(b).map(|_| ());
    let targets = |b: &[u8]| Metadata::<Targets>::parse(b).map(|_| ());
    type Check<'a> = &'a dyn Fn(&[u8]) -> Result<(), airlock_core::tuf::MetadataError>;
    let cases: [(&str, Check, &[u8], &str, &str); 10] = [
        (
            "root",
            &root,
            &p.root,
            r#""roles":{"#,
            r#""root":{"keyids":[],"threshold":1},"#,
        ),
        (
            "targets.json",
            &snapshot,
            &p.snapshot,
            r#""meta":{"#,
            r#""targets.json":{"version":9},"#,
        ),
        ("signed", &targets, &p.targets, r#"{"#, r#""signed":{},"#),
        (
            "signatures",
            &targets,
            &p.targets,
            r#"{"#,
            r#""signatures":[],"#,
        ),
        ("x", &targets, &p.targets, r#""custom":{"#, r#""x":2,"#),
        ("y", &targets, &p.targets, r#""custom":{"x":{"#, r#""y":2,"#),
        (
            "sha256",
            &targets,
            &p.targets,
            r#""hashes":{"#,
            r#""sha256":"00","#,
        ),
        (
            "version",
            &targets,
            &p.targets,
            r#""signed":{"#,
            r#""version":7,"#,
        ),
        // An unknown field twice, and one key spelled once with an escape.
        (
            "x-extra",
            &targets,
            &p.targets,
            r#""signed":{"#,
            r#""x-extra":1,"x-extra":2,"#,
        ),
        (
            "a.txt",
            &targets,
            &p.targets,
            r#""targets":{"#,
            r#""\u0061.txt":{"hashes":{"sha256":"00"},"length":1},"#,
        ),
    ];
    for (key, parse, bytes, after, insert) in cases {
        parse(bytes).unwrap();
        let twice = inject(bytes, after, insert);
        assert_refused_naming(parse(&twice).unwrap_err(), key);
    }
    // A key that only differs from another one is not a duplicate.
    let near = inject(&p.targets, r#""custom":{"#, r#""X":2,"x ":3,"#);
    targets(&near).unwrap();
}
