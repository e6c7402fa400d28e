//! The vendor's alarm (`airlock log monitor --repo` / `--expect`), from the command line: a real
//! `airlock log serve` and `airlock witness serve` over HTTPS on 127.0.0.1. The vendor publishes
//! with logging and the monitor finds nothing to report; an attacker holding the targets key
//! signs a targets version the vendor never published and logs it with a valid publisher key;
//! the monitor names exactly that statement and exits 3, from the repository's own record or
//! from a copy of it.

use std::fs;
use std::path::Path;
use std::process::Command;

use airlock_core::transparency::ReleaseStatement;

mod common;
use common::*;

const REPOSITORY: &str = "example.com/app";

/// `airlock log monitor` against `t`'s log with `extra` flags: its exit status and stdout.
fn monitor(t: &Transparency, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "log",
        "monitor",
        "--url",
        &t.log_url,
        "--ca-file",
        t.ca.to_str().unwrap(),
        "--log-key",
        &t.log_key,
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn unexpected(report: &serde_json::Value) -> &Vec<serde_json::Value> {
    report["releases"]["unexpected"]
        .as_array()
        .unwrap_or_else(|| panic!("no releases.unexpected in {report}"))
}

#[test]
fn monitor_reports_a_release_the_vendor_did_not_record_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let t = start_transparency(&tmp.path().join("t"), "log.test/monitor");
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    ok(&[
        "repo",
        "init",
        r,
        "--plaintext-keys",
        "--tlog-policy",
        t.policy_file.to_str().unwrap(),
        "--tlog-repository",
        REPOSITORY,
        "--log-url",
        &t.log_url,
        "--log-key",
        t.publisher_key.to_str().unwrap(),
        "--log-ca-file",
        t.ca.to_str().unwrap(),
        "--log-timeout",
        "20s",
    ]);
    // Two releases by the vendor: root 1 + targets 1, then targets 2 (entries 0, 1, 2).
    let src = tmp.path().join("app.txt");
    for content in ["v1", "v2"] {
        fs::write(&src, content).unwrap();
        ok(&["repo", "-C", r, "add", src.to_str().unwrap()]);
        ok(&["repo", "-C", r, "publish"]);
    }
    let record = fs::read_to_string(repo.join("transparency/logged")).unwrap();
    assert_eq!(
        record.lines().filter(|l| !l.starts_with('#')).count(),
        3,
        "{record}"
    );

    let state = tmp.path().join("monitor.state");
    let s = state.to_str().unwrap();
    let (code, stdout, stderr) = monitor(&t, &["--json", "--repo", r, "--state", s]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["releases"]["repository"], REPOSITORY, "{report}");
    assert_eq!(report["releases"]["expected"], 3, "{report}");
    assert!(unexpected(&report).is_empty(), "{report}");
    let (code, stdout, stderr) = monitor(&t, &["--repo", r]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout, "", "nothing to report: {stderr}");
    // Without --log-key, the log key comes from the repository's policy.
    let out = run(&[
        "log",
        "monitor",
        "--url",
        &t.log_url,
        "--ca-file",
        t.ca.to_str().unwrap(),
        "--repo",
        r,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The attacker holds the targets key (a copy of the repository's keys) and a publisher key
    // the log accepts: targets v3, signed, logged, never published by the vendor.
    let evil = tmp.path().join("evil");
    let copied = Command::new("cp")
        .args(["-a", r, evil.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(copied.success());
    let e = evil.to_str().unwrap();
    fs::write(&src, "backdoor").unwrap();
    ok(&["repo", "-C", e, "add", src.to_str().unwrap()]);
    let evil_targets = tmp.path().join("3.targets.json");
    ok(&[
        "repo",
        "-C",
        e,
        "export",
        "targets",
        "-o",
        evil_targets.to_str().unwrap(),
    ]);
    let bytes = fs::read(&evil_targets).unwrap();
    let md: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(md["signed"]["version"], 3);
    assert!(!md["signatures"].as_array().unwrap().is_empty());
    let statement = ReleaseStatement::for_metadata(REPOSITORY, "targets", 3, &bytes);
    let statement_file = tmp.path().join("statement.txt");
    fs::write(&statement_file, statement.to_bytes()).unwrap();
    let add = |file: Option<&Path>, data: Option<&str>| -> serde_json::Value {
        let mut args = vec![
            "log".to_string(),
            "add".into(),
            "--json".into(),
            "--url".into(),
            t.log_url.clone(),
            "--ca-file".into(),
            t.ca.to_str().unwrap().into(),
            "--key".into(),
            t.publisher_key.to_str().unwrap().into(),
            "--wait".into(),
            "20".into(),
        ];
        if let Some(f) = file {
            args.extend(["--file".into(), f.to_str().unwrap().into()]);
        }
        if let Some(d) = data {
            args.extend(["--data".into(), d.into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        json(&args)
    };
    let logged = add(Some(&statement_file), None);
    let evil_index = logged["index"].as_u64().unwrap();
    assert_eq!(evil_index, 3, "{logged}");
    // Entries that are not this repository's statements are counted, never reported.
    let other = ReleaseStatement::for_metadata("other.example/app", "targets", 9, b"{}");
    let other_file = tmp.path().join("other.txt");
    fs::write(&other_file, other.to_bytes()).unwrap();
    add(Some(&other_file), None);
    add(None, Some("not a release statement"));

    // The monitor with its state walks on from entry 3 and names the statement.
    let (code, stdout, stderr) = monitor(&t, &["--json", "--repo", r, "--state", s]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let found = unexpected(&report);
    assert_eq!(found.len(), 1, "{report}");
    assert_eq!(found[0]["role"], "targets", "{report}");
    assert_eq!(found[0]["version"], 3, "{report}");
    assert_eq!(
        found[0]["sha256"],
        hex::encode(statement.sha256),
        "{report}"
    );
    assert_eq!(found[0]["index"], evil_index, "{report}");
    assert_eq!(report["releases"]["other_repositories"], 1, "{report}");
    assert_eq!(report["releases"]["not_statements"], 1, "{report}");

    // Human output: one line per unexpected statement on stdout, exit 3.
    let (code, stdout, stderr) = monitor(&t, &["--repo", r]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let line = stdout.lines().next().unwrap();
    for want in [
        "targets",
        "3",
        &hex::encode(statement.sha256),
        &evil_index.to_string(),
    ] {
        assert!(line.contains(want), "{want} not in {line:?}");
    }

    // The same from a copy of the record taken off the publishing machine.
    let expect = tmp.path().join("expected.txt");
    fs::copy(repo.join("transparency/logged"), &expect).unwrap();
    let x = expect.to_str().unwrap();
    let (code, stdout, stderr) =
        monitor(&t, &["--json", "--expect", x, "--repository", REPOSITORY]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let found = unexpected(&report);
    assert_eq!(found.len(), 1, "{report}");
    assert_eq!(found[0]["role"], "targets", "{report}");
    assert_eq!(found[0]["version"], 3, "{report}");
    assert_eq!(
        found[0]["sha256"],
        hex::encode(statement.sha256),
        "{report}"
    );
    assert_eq!(found[0]["index"], evil_index, "{report}");
    assert_eq!(report["releases"]["expected"], 3, "{report}");

    // Once the vendor's list holds the statement (say it was theirs after all), all is quiet.
    let mut listed = fs::read_to_string(&expect).unwrap();
    listed.push_str(&format!(
        "{REPOSITORY} 3 {} targets\n",
        hex::encode(statement.sha256)
    ));
    fs::write(&expect, listed).unwrap();
    let (code, stdout, stderr) = monitor(&t, &["--expect", x, "--repository", REPOSITORY]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn monitor_refuses_an_unreadable_expect_list_and_a_repository_without_a_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let t = start_transparency(&tmp.path().join("t"), "log.test/monitor2");
    let expect = tmp.path().join("expected.txt");
    fs::write(&expect, "example.com/app three abc targets\n").unwrap();
    let x = expect.to_str().unwrap();
    let (code, _, stderr) = monitor(&t, &["--expect", x, "--repository", REPOSITORY]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("expected.txt") && stderr.contains("line 1"),
        "{stderr}"
    );
    let (code, _, stderr) = monitor(&t, &["--expect", x]);
    assert_eq!(code, 2, "--expect needs --repository: {stderr}");

    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    ok(&["repo", "init", r, "--plaintext-keys"]);
    let (code, _, stderr) = monitor(&t, &["--repo", r]);
    assert_ne!(code, 0);
    assert!(stderr.contains("no transparency policy"), "{stderr}");
}
