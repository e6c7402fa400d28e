//! `airlock update` end to end: the real binary against an HTTPS repository on 127.0.0.1 with a
//! test CA (the repository helpers are airlock-client's test support).

#[path = "../../airlock-client/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{HttpsRepo, TestRepo};

fn airlock(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .arg("update")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run airlock")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "airlock failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn init_refresh_list_download() {
    let mut repo = TestRepo::new();
    repo.add_target("targets", "app/app.bin", b"the application");
    repo.delegate("targets", "plugins", &["plugins/*"], false);
    repo.add_target("plugins", "plugins/p.so", b"a plugin");
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    let work = tempfile::tempdir().expect("tempdir");
    let ca = https.ca.write_ca_pem(work.path()).expect("ca.pem");
    let root = work.path().join("root.json");
    std::fs::write(&root, repo.initial_root()).expect("root");
    let dir = work.path().join("state");

    let out = ok(&airlock(
        &dir,
        &[
            "init",
            root.to_str().unwrap(),
            "--metadata-url",
            &https.metadata_url(),
            "--targets-url",
            &https.targets_url(),
            "--ca-file",
            ca.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("Trusting root version 1"), "{out}");

    // A second init with another root is refused unless forced.
    let other_root = work.path().join("other-root.json");
    std::fs::write(&other_root, TestRepo::new().initial_root()).expect("other root");
    let out = airlock(&dir, &["init", other_root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same root again is fine (idempotent).
    ok(&airlock(&dir, &["init", root.to_str().unwrap()]));

    // URLs and CA come from client.toml from now on.
    let out = ok(&airlock(&dir, &["refresh", "--json"]));
    let summary: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(summary["targets_version"], 2);

    let out = ok(&airlock(&dir, &["list", "--json"]));
    let listed: serde_json::Value = serde_json::from_str(&out).expect("json");
    let paths: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|t| t["path"].as_str().expect("path"))
        .collect();
    assert_eq!(paths, vec!["app/app.bin", "plugins/p.so"]);

    let out = ok(&airlock(&dir, &["download", "app/app.bin", "plugins/p.so"]));
    assert!(out.contains("downloaded"), "{out}");
    assert_eq!(
        std::fs::read(dir.join("targets/app/app.bin")).expect("app"),
        b"the application"
    );
    assert_eq!(
        std::fs::read(dir.join("targets/plugins/p.so")).expect("plugin"),
        b"a plugin"
    );
    let out = ok(&airlock(&dir, &["download", "app/app.bin", "--json"]));
    let res: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(res[0]["downloaded"], false);

    // Without the CA the server is not trusted: a clear one-line error, exit status 1.
    let other = work.path().join("other");
    ok(&airlock(
        &other,
        &[
            "init",
            root.to_str().unwrap(),
            "--metadata-url",
            &https.metadata_url(),
        ],
    ));
    let out = airlock(&other, &["refresh"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: refresh failed"), "{err}");
    assert!(err.contains("TLS"), "{err}");
}

#[test]
fn tampered_target_is_refused_with_a_readable_error() {
    let mut repo = TestRepo::new();
    let file = repo.add_target("targets", "a.txt", b"good");
    repo.publish();
    repo.write_raw(&format!("targets/{}.a.txt", file.hashes["sha256"]), b"evil");
    let https = HttpsRepo::serve(repo.path());
    let work = tempfile::tempdir().expect("tempdir");
    let ca = https.ca.write_ca_pem(work.path()).expect("ca.pem");
    let root = work.path().join("root.json");
    std::fs::write(&root, repo.initial_root()).expect("root");
    let dir = work.path().join("state");
    ok(&airlock(
        &dir,
        &[
            "init",
            root.to_str().unwrap(),
            "--metadata-url",
            &https.metadata_url(),
            "--targets-url",
            &https.targets_url(),
            "--ca-file",
            ca.to_str().unwrap(),
        ],
    ));
    let out = airlock(&dir, &["download", "a.txt"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sha256 hash mismatch"), "{err}");
    assert!(!dir.join("targets/a.txt").exists());
}
