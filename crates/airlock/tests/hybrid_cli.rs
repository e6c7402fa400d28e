//! `--key-type hybrid` through the binary: a repository whose every role is hybrid (the
//! additive form, docs/keys.md), its targets key moved offline and used with `repo sign`,
//! and `airlock key public` naming the key id roles list a hybrid key under.

mod common;

use std::fs;

use common::{fails, json, ok};

#[test]
fn hybrid_repository_signed_offline_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    ok(&[
        "repo",
        "init",
        r,
        "--key-type",
        "hybrid",
        "--plaintext-keys",
    ]);
    ok(&["repo", "-C", r, "publish"]);
    assert_eq!(json(&["repo", "-C", r, "--json", "verify"])["ok"], true);
    let root: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.join("published/metadata/1.root.json")).unwrap())
            .unwrap();
    assert_eq!(root["signed"]["x-airlock-pq"].as_object().unwrap().len(), 4);

    // The targets key leaves for an offline machine.
    let config = fs::read_to_string(repo.join("work/airlock-repo.toml")).unwrap();
    let key_rel = config
        .lines()
        .find_map(|l| l.strip_prefix("private = \"keys/targets-"))
        .map(|rest| format!("keys/targets-{}", rest.trim_end_matches('"')))
        .unwrap();
    let offline = tmp.path().join("targets.key");
    fs::rename(repo.join(&key_rel), &offline).unwrap();
    let described = json(&["--json", "key", "public", offline.to_str().unwrap()]);
    let listed = described["listed_keyid"].as_str().unwrap().to_string();
    assert!(
        root["signed"]["roles"]["targets"]["keyids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == listed.as_str())
    );

    let src = tmp.path().join("release.bin");
    fs::write(&src, "release 1").unwrap();
    ok(&["repo", "-C", r, "add", src.to_str().unwrap()]);
    let err = fails(&["repo", "-C", r, "publish"]);
    assert!(err.contains(&listed), "{err}");
    let file = tmp.path().join("targets.json");
    let f = file.to_str().unwrap();
    ok(&["repo", "-C", r, "export", "targets", "-o", f]);
    let signed = json(&[
        "repo",
        "-C",
        "/nonexistent",
        "--json",
        "sign",
        "--key",
        offline.to_str().unwrap(),
        f,
    ]);
    assert_eq!(signed["keyid"], listed.as_str());
    let imported = json(&["repo", "-C", r, "--json", "import", f]);
    assert_eq!(imported[0]["signed"], true);
    // Both halves: the Ed25519 signature and its SLH-DSA entry.
    assert_eq!(imported[0]["added"].as_array().unwrap().len(), 2);
    ok(&["repo", "-C", r, "publish"]);
    assert_eq!(json(&["repo", "-C", r, "--json", "verify"])["ok"], true);
}
