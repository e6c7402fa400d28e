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
        "installed 1.0.0 into",
        "the application asks for a check (the one thing it may do): queued",
        "refused, as it must: 1.0.1: 1.0.1 failed (health check",
        "`current` is back on 1.0.0",
        "Done:",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // A refusal is the check working, not a failure. The updater only downloads and verifies;
    // installing is the agent's step and only said there.
    assert!(!stdout.contains('\u{2717}'), "{stdout}");
    let (before_agent, agent) = stdout
        .split_once("8. The update agent")
        .expect("the agent's step");
    assert!(!before_agent.contains("install"), "{stdout}");
    assert!(agent.contains("installed 1.0.0"), "{stdout}");
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
