//! `airlock repo` commands as a publisher meets them: target names no client could fetch,
//! `--role` outside the role's delegation, what `add DIR` does with a directory, removing a
//! delegation, garbage collection of old releases, and what `status` shows.

use std::fs;
use std::path::Path;
use std::process::Command;

const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");

fn airlock(args: &[&str]) -> std::process::Output {
    Command::new(AIRLOCK)
        .args(args)
        .env_remove("AIRLOCK_PASSPHRASE")
        .env_remove("AIRLOCK_REPO")
        .output()
        .expect("run airlock")
}

fn ok(args: &[&str]) -> String {
    let out = airlock(args);
    assert!(
        out.status.success(),
        "airlock {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Run, require failure with a one-line `error: ` message; returns it.
fn fails(args: &[&str]) -> String {
    let out = airlock(args);
    assert!(!out.status.success(), "airlock {args:?} should have failed");
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one-line error expected: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args)).unwrap()
}

fn new_repo(tmp: &Path) -> String {
    let repo = tmp.join("repo");
    let r = repo.to_str().unwrap().to_string();
    ok(&["repo", "init", &r, "--plaintext-keys"]);
    r
}

fn staged_targets(r: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let work = Path::new(r).join("work");
    let t: serde_json::Value =
        serde_json::from_slice(&fs::read(work.join("targets.json")).unwrap()).unwrap();
    names.extend(t["signed"]["targets"].as_object().unwrap().keys().cloned());
    if let Ok(d) = fs::read(work.join("delegated.json")) {
        let d: serde_json::Value = serde_json::from_slice(&d).unwrap();
        for role in d.as_object().unwrap().values() {
            names.extend(
                role["signed"]["targets"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .cloned(),
            );
        }
    }
    names.sort();
    names
}

#[test]
fn target_names_no_client_can_fetch_are_refused_at_add() {
    let tmp = tempfile::tempdir().unwrap();
    let r = new_repo(tmp.path());
    let src = tmp.path().join("a.txt");
    fs::write(&src, "a").unwrap();
    let s = src.to_str().unwrap();
    for (name, why) in [
        ("100%.txt", "'%'"),
        ("a#b", "'#'"),
        ("what?.txt", "'?'"),
        ("a\u{7f}b", "control character"),
        ("a\tb", "control character"),
        ("a\\b", "backslash"),
        ("a//b", "empty"),
        ("a/./b", "'.'"),
        ("a/../b", "'..'"),
        ("/abs", "leading '/'"),
    ] {
        let err = fails(&["repo", "-C", &r, "add", s, "--name", name]);
        assert!(err.contains(why), "{name:?}: {err}");
        assert!(err.contains(&format!("{name:?}")), "names the path: {err}");
    }
    // A directory holding such a file is refused as a whole.
    let dir = tmp.path().join("dist");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("ok.txt"), "ok").unwrap();
    fs::write(dir.join("50%.txt"), "x").unwrap();
    let err = fails(&["repo", "-C", &r, "add", dir.to_str().unwrap()]);
    assert!(err.contains("50%.txt"), "{err}");
    assert!(staged_targets(&r).is_empty());
}

#[test]
fn add_to_a_role_whose_delegation_does_not_cover_the_path_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let r = new_repo(tmp.path());
    ok(&[
        "repo",
        "-C",
        &r,
        "delegate",
        "docs",
        "--path",
        "docs/*",
        "--terminating",
        "--plaintext-keys",
    ]);
    let src = tmp.path().join("a.txt");
    fs::write(&src, "a").unwrap();
    let s = src.to_str().unwrap();
    let err = fails(&[
        "repo",
        "-C",
        &r,
        "add",
        s,
        "--name",
        "app/a.txt",
        "--role",
        "docs",
    ]);
    assert!(
        err.contains("app/a.txt") && err.contains("docs") && err.contains("delegat"),
        "{err}"
    );
    assert!(staged_targets(&r).is_empty());
    ok(&[
        "repo",
        "-C",
        &r,
        "add",
        s,
        "--name",
        "docs/a.txt",
        "--role",
        "docs",
    ]);
    // `targets` is searched for every path.
    ok(&[
        "repo",
        "-C",
        &r,
        "add",
        s,
        "--name",
        "app/a.txt",
        "--role",
        "targets",
    ]);
    assert_eq!(staged_targets(&r), vec!["app/a.txt", "docs/a.txt"]);
    // Listed after the terminating delegation of the same paths: never searched for them.
    ok(&[
        "repo",
        "-C",
        &r,
        "delegate",
        "shadowed",
        "--path",
        "docs/*",
        "--plaintext-keys",
    ]);
    let err = fails(&[
        "repo",
        "-C",
        &r,
        "add",
        s,
        "--name",
        "docs/b.txt",
        "--role",
        "shadowed",
    ]);
    assert!(err.contains("shadowed"), "{err}");
}

#[test]
fn add_dir_says_what_it_does_and_can_keep_the_directory_name() {
    let tmp = tempfile::tempdir().unwrap();
    let r = new_repo(tmp.path());
    let dir = tmp.path().join("dist");
    fs::create_dir_all(dir.join("lib")).unwrap();
    fs::write(dir.join("app.bin"), "app").unwrap();
    fs::write(dir.join("lib/x.so"), "x").unwrap();
    let d = dir.to_str().unwrap();
    let out = ok(&["repo", "-C", &r, "add", d, "--prefix", "app/"]);
    assert!(
        out.contains("contents of") && out.contains("app/app.bin"),
        "{out}"
    );
    assert_eq!(staged_targets(&r), vec!["app/app.bin", "app/lib/x.so"]);
    let out = ok(&["repo", "-C", &r, "add", d, "--prefix", "v2/", "--dir-name"]);
    assert!(out.contains("v2/dist/app.bin"), "{out}");
    assert!(staged_targets(&r).contains(&"v2/dist/lib/x.so".to_string()));
    let help = ok(&["repo", "add", "--help"]);
    assert!(
        help.contains("--dir-name") && help.contains("contents"),
        "{help}"
    );
}

#[test]
fn status_shows_the_published_timestamp_and_snapshot_expiry() {
    let tmp = tempfile::tempdir().unwrap();
    let r = new_repo(tmp.path());
    let src = tmp.path().join("a.txt");
    fs::write(&src, "a").unwrap();
    ok(&["repo", "-C", &r, "add", src.to_str().unwrap()]);
    ok(&["repo", "-C", &r, "publish"]);
    let ts: serde_json::Value = serde_json::from_slice(
        &fs::read(Path::new(&r).join("published/metadata/timestamp.json")).unwrap(),
    )
    .unwrap();
    let ts_expires = ts["signed"]["expires"].as_str().unwrap().to_string();
    let snap: serde_json::Value = serde_json::from_slice(
        &fs::read(Path::new(&r).join("published/metadata/1.snapshot.json")).unwrap(),
    )
    .unwrap();
    let snap_expires = snap["signed"]["expires"].as_str().unwrap().to_string();
    let out = ok(&["repo", "-C", &r, "status"]);
    for (role, expires) in [("timestamp", &ts_expires), ("snapshot", &snap_expires)] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(role) && l.contains(expires.as_str())),
            "{role} {expires}: {out}"
        );
    }
    let v = json(&["repo", "-C", &r, "status", "--json"]);
    let rows = v.as_array().unwrap();
    for (role, expires) in [("timestamp", &ts_expires), ("snapshot", &snap_expires)] {
        let row = rows.iter().find(|x| x["role"] == role).unwrap();
        assert_eq!(row["expires"], expires.as_str());
        assert_eq!(row["published_version"], 1);
    }
}
