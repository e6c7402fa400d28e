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

fn publish_release(tmp: &Path, r: &str, n: u32) -> String {
    let src = tmp.join(format!("release-{n}.bin"));
    fs::write(&src, format!("release {n}")).unwrap();
    let name = format!("app/release-{n}.bin");
    ok(&[
        "repo",
        "-C",
        r,
        "add",
        src.to_str().unwrap(),
        "--name",
        &name,
    ]);
    if n > 1 {
        ok(&[
            "repo",
            "-C",
            r,
            "remove",
            &format!("app/release-{}.bin", n - 1),
        ]);
    }
    ok(&["repo", "-C", r, "publish"]);
    name
}

fn target_file(r: &str, n: u32) -> std::path::PathBuf {
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(format!("release {n}").as_bytes()));
    Path::new(r).join(format!("published/targets/app/{sha}.release-{n}.bin"))
}

#[test]
fn undelegate_removes_the_role_from_the_next_snapshot() {
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
        "--plaintext-keys",
    ]);
    let src = tmp.path().join("a.txt");
    fs::write(&src, "a").unwrap();
    ok(&[
        "repo",
        "-C",
        &r,
        "add",
        src.to_str().unwrap(),
        "--name",
        "docs/a.txt",
    ]);
    ok(&["repo", "-C", &r, "publish"]);
    let err = fails(&["repo", "-C", &r, "undelegate", "nosuchrole"]);
    assert!(err.contains("nosuchrole"), "{err}");
    ok(&["repo", "-C", &r, "undelegate", "docs"]);
    assert!(staged_targets(&r).is_empty());
    ok(&["repo", "-C", &r, "publish"]);
    let snap: serde_json::Value = serde_json::from_slice(
        &fs::read(Path::new(&r).join("published/metadata/2.snapshot.json")).unwrap(),
    )
    .unwrap();
    let meta = snap["signed"]["meta"].as_object().unwrap();
    assert_eq!(meta.keys().collect::<Vec<_>>(), vec!["targets.json"]);
    let targets: serde_json::Value = serde_json::from_slice(
        &fs::read(Path::new(&r).join("published/metadata/2.targets.json")).unwrap(),
    )
    .unwrap();
    assert!(targets["signed"].get("delegations").is_none(), "{targets}");
    ok(&["repo", "-C", &r, "verify"]);
}

#[test]
fn gc_keeps_the_last_n_releases_and_never_the_current_one() {
    let tmp = tempfile::tempdir().unwrap();
    let r = new_repo(tmp.path());
    for n in 1..=4 {
        publish_release(tmp.path(), &r, n);
    }
    for n in 1..=4 {
        assert!(target_file(&r, n).exists(), "release {n} published");
    }
    let report = json(&["repo", "-C", &r, "gc", "--keep", "2", "--json"]);
    assert_eq!(report["target_files_removed"], 2, "{report}");
    assert!(!target_file(&r, 1).exists() && !target_file(&r, 2).exists());
    assert!(target_file(&r, 3).exists() && target_file(&r, 4).exists());
    let meta = Path::new(&r).join("published/metadata");
    assert!(meta.join("4.snapshot.json").exists() && meta.join("3.snapshot.json").exists());
    assert!(!meta.join("2.snapshot.json").exists());
    ok(&["repo", "-C", &r, "verify"]);
    // --keep 1: only what the current snapshot lists.
    ok(&["repo", "-C", &r, "gc", "--keep", "1"]);
    assert!(!target_file(&r, 3).exists() && target_file(&r, 4).exists());
    assert!(meta.join("4.snapshot.json").exists() && !meta.join("3.snapshot.json").exists());
    ok(&["repo", "-C", &r, "verify"]);
    let err = fails(&["repo", "-C", &r, "gc", "--keep", "0"]);
    assert!(err.contains("at least 1"), "{err}");
}

/// With `--meta-hashes` the snapshot lists each role file's length and SHA-256, and a client
/// (airlock-core's TrustedSet) refuses a role file that differs from them even when its
/// signatures still verify (here: padded with whitespace, as an endless-data attack would).
#[test]
fn meta_hashes_in_the_snapshot_are_listed_and_enforced_by_the_client() {
    use airlock_core::tuf::TrustedSet;
    for meta_hashes in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let r = repo.to_str().unwrap();
        let mut init = vec!["repo", "init", r, "--plaintext-keys"];
        if meta_hashes {
            init.push("--meta-hashes");
        }
        ok(&init);
        publish_release(tmp.path(), r, 1);
        let meta = repo.join("published/metadata");
        let snap: serde_json::Value =
            serde_json::from_slice(&fs::read(meta.join("1.snapshot.json")).unwrap()).unwrap();
        let listed = &snap["signed"]["meta"]["targets.json"];
        assert_eq!(listed.get("hashes").is_some(), meta_hashes, "{listed}");
        assert_eq!(listed.get("length").is_some(), meta_hashes, "{listed}");
        let mut trusted = TrustedSet::new(
            &fs::read(meta.join("1.root.json")).unwrap(),
            chrono::Utc::now(),
        )
        .unwrap();
        trusted
            .update_timestamp(&fs::read(meta.join("timestamp.json")).unwrap())
            .unwrap();
        trusted
            .update_snapshot(&fs::read(meta.join("1.snapshot.json")).unwrap())
            .unwrap();
        let version = snap["signed"]["meta"]["targets.json"]["version"]
            .as_u64()
            .unwrap();
        let mut padded = fs::read(meta.join(format!("{version}.targets.json"))).unwrap();
        padded.extend(std::iter::repeat_n(b' ', 4096));
        let result = trusted.update_targets(&padded);
        assert_eq!(result.is_err(), meta_hashes, "meta_hashes={meta_hashes}");
        if let Err(e) = result {
            assert!(e.to_string().contains("targets"), "{e}");
        }
    }
}

/// A staged rollout from the publisher's side: `--rollout-percent` goes into the target's
/// custom metadata, where the update agent reads it; adding the file again widens it; a share
/// outside 0-100 is a usage error.
#[test]
fn add_sets_the_staged_rollout_share_and_refuses_one_outside_0_to_100() {
    let tmp = tempfile::tempdir().unwrap();
    let r = new_repo(tmp.path());
    let src = tmp.path().join("app.tar.gz");
    fs::write(&src, "app 2.0").unwrap();
    let s = src.to_str().unwrap();
    let custom = |r: &str| {
        let t: serde_json::Value =
            serde_json::from_slice(&fs::read(Path::new(r).join("work/targets.json")).unwrap())
                .unwrap();
        t["signed"]["targets"]["app/2.0/app.tar.gz"]["custom"].clone()
    };
    let add = |extra: &[&str]| {
        let mut args = vec!["repo", "-C", &r, "add", s, "--name", "app/2.0/app.tar.gz"];
        args.extend_from_slice(extra);
        ok(&args);
    };
    add(&["--version", "2.0", "--rollout-percent", "10"]);
    assert_eq!(
        custom(&r),
        serde_json::json!({"version": "2.0", "rollout_percent": 10})
    );
    add(&["--version", "2.0", "--rollout-percent", "100"]);
    assert_eq!(custom(&r)["rollout_percent"], 100);
    let out = airlock(&[
        "repo",
        "-C",
        &r,
        "add",
        s,
        "--name",
        "app/2.0/app.tar.gz",
        "--rollout-percent",
        "101",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rollout-percent"));
}
