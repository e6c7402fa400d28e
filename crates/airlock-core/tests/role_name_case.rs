//! Role names become file names (`<role>.json`, on the repository and in every client's cache).
//! On a case-insensitive file system (Windows, macOS by default) `Root.json` is `root.json`, so a
//! delegated role named `Root` would overwrite the trusted root, and roles `a` and `A` would
//! overwrite each other. Such names are refused when metadata is read.

mod common;

use common::repo::*;

fn delegation_refused(names: &[&str], expect: &[&str]) {
    let mut repo = Repo::new();
    for name in names {
        repo.delegate("targets", name, &["*"], false);
    }
    let bytes = repo.publish().targets;
    let err = Metadata::<Targets>::parse(&bytes).unwrap_err();
    let msg = err.to_string();
    for name in expect {
        assert!(
            msg.contains(&format!("{name:?}")),
            "{msg} should name {name:?}"
        );
    }
    assert!(msg.contains("case"), "{msg}");
}

#[test]
fn a_delegated_role_named_like_a_top_level_role_in_another_case_is_refused() {
    delegation_refused(&["Root"], &["Root", "root"]);
    delegation_refused(&["TIMESTAMP"], &["TIMESTAMP", "timestamp"]);
    delegation_refused(&["ok", "Snapshot"], &["Snapshot", "snapshot"]);
    delegation_refused(&["tArgets"], &["tArgets", "targets"]);
}

#[test]
fn two_delegated_roles_that_differ_only_in_case_are_refused() {
    delegation_refused(&["a", "A"], &["a", "A"]);
    delegation_refused(&["Team-x", "b", "team-X"], &["Team-x", "team-X"]);
    // Non-ASCII letters fold too (NTFS and APFS fold them).
    delegation_refused(&["é", "É"], &["é", "É"]);
}

#[test]
fn distinct_names_are_still_accepted() {
    let mut repo = Repo::new();
    for name in ["a", "b", "root-1", "targets.x", "ab"] {
        repo.delegate("targets", name, &["*"], false);
    }
    Metadata::<Targets>::parse(&repo.publish().targets).unwrap();
}

#[test]
fn the_same_name_in_another_case_from_another_delegator_is_refused() {
    // targets delegates `a` and `b`; `b` delegates `A`: one client cache cannot hold `a` and `A`.
    let mut repo = Repo::new();
    repo.delegate("targets", "a", &["a/*"], false);
    repo.delegate("targets", "b", &["*"], false);
    repo.delegate("b", "A", &["*"], false);
    repo.add_target("a", "a/x");
    repo.add_target("A", "a/y");
    let p = repo.publish();
    let mut t = TrustedSet::new(&p.root, now()).unwrap();
    t.update_timestamp(&p.timestamp).unwrap();
    t.update_snapshot(&p.snapshot).unwrap();
    t.update_targets(&p.targets).unwrap();
    t.update_delegated_targets(&p.roles["a"], "a", "targets")
        .unwrap();
    t.update_delegated_targets(&p.roles["b"], "b", "targets")
        .unwrap();
    let err = t
        .update_delegated_targets(&p.roles["A"], "A", "b")
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("\"A\"") && msg.contains("\"a\"") && msg.contains("case"),
        "{msg}"
    );
}
