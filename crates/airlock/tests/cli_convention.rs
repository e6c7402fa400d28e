//! One convention for every command family: `--json` anywhere on the line gives one JSON
//! document on stdout (the result, or `{"error": {...}}`), and the exit status says what kind of
//! failure it was: 1 error, 2 usage, 3 refused by a security check (docs/cli.md).

#[path = "../../airlock-client/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{HttpsRepo, TestRepo};
use serde_json::Value;

const PASS: &str = "correct horse battery staple";

fn airlock(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .env("AIRLOCK_PASSPHRASE", PASS)
        .env_remove("AIRLOCK_REPO")
        .env_remove("AIRLOCK_UPDATE_DIR")
        .output()
        .expect("run airlock")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Succeeded, and stdout is exactly one JSON document.
fn json_ok(args: &[&str]) -> Value {
    let out = airlock(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not one JSON document ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Failed with `code`, stdout holding only the error object of `kind`; returns its message.
fn json_err(args: &[&str], code: i32, kind: &str) -> Value {
    let out = airlock(args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: stdout {stdout}\nstderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {stdout}"));
    let obj = v.as_object().expect("an object");
    assert_eq!(obj.len(), 1, "only the error: {v}");
    assert_eq!(v["error"]["kind"], kind, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(v["error"]["causes"].is_array(), "{v}");
    v
}

#[test]
fn key_family() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("k.key");
    let pubf = tmp.path().join("k.pub.json");
    let v = json_ok(&[
        "key",
        "generate",
        "--out",
        s(&key),
        "--public-out",
        s(&pubf),
        "--json",
    ]);
    assert!(v["keyid"].is_string(), "{v}");
    json_ok(&["--json", "key", "public", s(&key)]);
    let v = json_err(
        &["key", "public", "--json", "/nonexistent/k.key"],
        1,
        "error",
    );
    assert!(v.to_string().contains("/nonexistent/k.key"), "{v}");
}

#[test]
fn repo_family() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("r");
    json_ok(&["repo", "--json", "init", s(&repo)]);
    let v = json_ok(&["repo", "-C", s(&repo), "--json", "status"]);
    assert!(v.is_array(), "{v}");
    json_err(
        &["--json", "repo", "-C", "/nonexistent/repo", "status"],
        1,
        "error",
    );
}

#[test]
fn log_and_witness_families() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
    let v = json_ok(&[
        "--json",
        "log",
        "keygen",
        "--name",
        "pub.test",
        "--out",
        &p("pub.key"),
    ]);
    let vkey = v["verifier_key"].as_str().unwrap().to_string();
    json_ok(&[
        "log",
        "init",
        "--dir",
        &p("log"),
        "--origin",
        "log.test/one",
        "--publisher-key",
        &vkey,
        "--json",
    ]);
    // A log that exists is not overwritten.
    json_err(
        &[
            "--json",
            "log",
            "init",
            "--dir",
            &p("log"),
            "--origin",
            "log.test/one",
        ],
        1,
        "error",
    );
    let w = json_ok(&[
        "witness",
        "--json",
        "init",
        "--dir",
        &p("w1"),
        "--name",
        "witness.test/w1",
    ]);
    let wkey = w["witness_key"].as_str().unwrap().to_string();
    // A witness URL that cannot work is a usage error.
    json_err(
        &[
            "--json",
            "log",
            "add-witness",
            "--dir",
            &p("log"),
            "--key",
            &wkey,
            "--url",
            "ftp://127.0.0.1/",
        ],
        2,
        "usage",
    );

    json_err(
        &[
            "--json",
            "witness",
            "add-log",
            "--dir",
            &p("none"),
            "--log-key",
            "x",
        ],
        1,
        "error",
    );
}

#[test]
fn man_family() {
    let tmp = tempfile::tempdir().unwrap();
    let v = json_ok(&["man", "--out", s(tmp.path()), "--json"]);
    assert!(v["written"].as_array().is_some_and(|w| !w.is_empty()));
}

#[test]
fn demo_json_and_keep() {
    let tmp = tempfile::tempdir().unwrap();
    let keep = tmp.path().join("kept");
    let v = json_ok(&["--json", "demo", "--witnesses", "1", "--keep", s(&keep)]);
    let steps = v["steps"].as_array().expect("steps");
    // The attacks are checks that passed, not failures.
    assert_eq!(steps.len(), 9, "{v}");
    for attack_step in [5, 6, 7, 8] {
        let attacks = steps[attack_step]["checks"].as_array().expect("checks");
        assert!(attacks.iter().any(|c| c["outcome"] == "refused"), "{v}");
    }
    // --keep keeps the log's and the witness's files, and the proof bundles it says it published.
    assert!(keep.join("transparency/log").is_dir());
    assert!(keep.join("transparency/witness1").is_dir());
    // (Older releases' metadata went the way of `keep_releases`; the newest has its proofs.)
    let metadata = keep.join("vendor-repo/published/metadata");
    assert!(
        std::fs::read_dir(&metadata).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".targets.json.tlog-proof")),
        "{}",
        metadata.display()
    );
    assert!(keep.join("client/downloads").is_dir());
    // The rebuild step: two attestations and their log proofs published, the mismatch report
    // with its diff kept.
    let rebuilds = keep.join("vendor-repo/published/rebuilds/app%2Fapp-2.0.0.tar");
    let digest = std::fs::read_dir(&rebuilds)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut names: Vec<String> = std::fs::read_dir(digest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.len() == 4
            && names.iter().filter(|n| n.ends_with(".dsse.json")).count() == 2
            && names
                .iter()
                .filter(|n| n.ends_with(".dsse.json.tlog-proof"))
                .count()
                == 2,
        "{names:?}"
    );
    let diff = std::fs::read_to_string(
        keep.join("rebuild/rebuilder-a.example/build-2.0.1/mismatch.diff.txt"),
    )
    .unwrap();
    assert!(diff.contains("-backdoor"), "{diff}");
    assert!(!keep.join("client/downloads/app%2Fapp-2.0.1.tar").exists());
}

fn init_client(https: &HttpsRepo, repo: &TestRepo, work: &Path) -> std::path::PathBuf {
    let ca = https.ca.write_ca_pem(work).expect("ca.pem");
    let root = work.join("root.json");
    std::fs::write(&root, repo.initial_root()).expect("root");
    let dir = work.join("state");
    let v = json_ok(&[
        "update",
        "--dir",
        s(&dir),
        "init",
        s(&root),
        "--metadata-url",
        &https.metadata_url(),
        "--targets-url",
        &https.targets_url(),
        "--ca-file",
        s(&ca),
        "--json",
    ]);
    assert!(v.is_object(), "{v}");
    dir
}

#[test]
fn update_exit_codes() {
    let mut repo = TestRepo::new();
    repo.add_target("targets", "a.txt", b"good");
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    let work = tempfile::tempdir().unwrap();
    let dir = init_client(&https, &repo, work.path());
    json_ok(&["update", "--dir", s(&dir), "--json", "refresh"]);
    json_ok(&["update", "--dir", s(&dir), "--json", "list"]);

    // A timestamp modified after signing: refused by the signature check, status 3.
    let mut ts: Value =
        serde_json::from_slice(&repo.read_raw("metadata/timestamp.json")).expect("timestamp");
    ts["signed"]["version"] = serde_json::json!(99);
    repo.write_raw(
        "metadata/timestamp.json",
        &serde_json::to_vec(&ts).expect("encode"),
    );
    let v = json_err(
        &["update", "--dir", s(&dir), "refresh", "--json"],
        3,
        "refused",
    );
    assert!(v.to_string().contains("timestamp"), "{v}");
    // Without --json: the same status, one line on stderr, nothing on stdout.
    let out = airlock(&["update", "--dir", s(&dir), "refresh"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn missing_file_bad_value_and_unknown_flag() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("state");
    // A file that does not exist: status 1.
    let out = airlock(&["update", "--dir", s(&dir), "init", "/nonexistent/root.json"]);
    assert_eq!(out.status.code(), Some(1));
    json_err(
        &[
            "update",
            "--dir",
            s(&dir),
            "--json",
            "init",
            "/nonexistent/root.json",
        ],
        1,
        "error",
    );
    // A flag value that cannot work: status 2, as for flags clap refuses.
    let v = json_err(
        &[
            "update",
            "--dir",
            s(&dir),
            "--json",
            "init",
            "/nonexistent/root.json",
            "--metadata-url",
            "http://updates.example.org/",
        ],
        2,
        "usage",
    );
    assert!(v.to_string().contains("--metadata-url"), "{v}");
    // An unknown flag: clap's status 2, text on stderr, or the error object with --json.
    let out = airlock(&["update", "--no-such-flag", "refresh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let v = json_err(&["--json", "log", "init", "--no-such-flag"], 2, "usage");
    assert!(v.to_string().contains("--no-such-flag"), "{v}");
    // Help is not an error.
    let out = airlock(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Exit status:") && help.contains("refused"),
        "{help}"
    );
}

#[test]
fn old_flag_names_still_parse() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("r");
    json_ok(&["repo", "--json", "init", s(&repo)]);
    // --repo is -C, as --dir is.
    json_ok(&["repo", "--repo", s(&repo), "--json", "status"]);
    json_ok(&["repo", "--dir", s(&repo), "--json", "status"]);
    // `log` client flags: --ca and --allow-http are the old names of --ca-file and
    // --allow-http-loopback; parsed, the missing CA file is then an ordinary error (1, not 2).
    json_err(
        &[
            "--json",
            "log",
            "proof",
            "--url",
            "http://127.0.0.1:9",
            "--allow-http",
            "--ca",
            "/nonexistent/ca.pem",
            "--index",
            "0",
        ],
        1,
        "error",
    );
    // `repo serve`: --addr, --cert, --key are the old names of --listen, --tls-cert, --tls-key.
    json_err(
        &[
            "--json",
            "repo",
            "-C",
            s(&repo),
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--cert",
            "/nonexistent/c.pem",
            "--key",
            "/nonexistent/k.pem",
        ],
        1,
        "error",
    );
}

#[test]
fn key_list_of_a_token() {
    // A URI that is not RFC 7512 is a usage error; a module not installed here is an error
    // naming it.
    let v = json_err(&["--json", "key", "list", "pkcs11:tokn=x"], 2, "usage");
    assert!(v.to_string().contains("tokn"), "{v}");
    let v = json_err(
        &[
            "key",
            "list",
            "--json",
            "pkcs11:token=x?module-path=/nonexistent/module.so",
        ],
        1,
        "error",
    );
    assert!(v.to_string().contains("/nonexistent/module.so"), "{v}");
}
