//! `airlock demo` is the README's first command: it must run to the end on a fresh machine and
//! show each check, including the three attacks refused.

use std::process::Command;

#[test]
fn demo_runs_end_to_end_and_refuses_the_attacks() {
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .arg("demo")
        .output()
        .expect("run airlock demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for expected in [
        "root v1 meets its threshold",
        "snapshot v1: length and hashes match the timestamp",
        "sha256 verified",
        "1.targets.json.tlog-proof verified offline",
        "a Merkle proof that the statement for exactly these bytes is in the tree",
        "refused, as it must: mirror serves a modified release",
        "sha256 hash mismatch",
        "refused, as it must: mirror serves a forged timestamp",
        "byte for byte what it was",
        "it passes every TUF check",
        "refused, as it must: targeted release",
        "targets v2: no log proof bundle was published for it",
        "Done:",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // A refusal is the check working, not a failure; and nothing is installed, only verified.
    assert!(!stdout.contains('\u{2717}'), "{stdout}");
    assert!(!stdout.contains("install"), "{stdout}");
    assert!(stdout.contains("downloaded and verified"), "{stdout}");
}

#[test]
fn demo_refuses_an_existing_keep_dir() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["demo", "--keep"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already exists"), "{stderr}");
}
