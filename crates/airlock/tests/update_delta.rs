//! Delta updates end to end with the real binary: `airlock repo add --deltas 1` publishes a
//! patch from the previous version, `airlock repo serve` serves it over HTTPS on 127.0.0.1,
//! `airlock update download` on a machine holding the previous version moves the patch (under
//! 5% of a 100 MiB target with a small change) and ends with the new version's bytes, and
//! `airlock mirror sync` carries the patch to a mirror.

mod common;

use std::fs;
use std::path::Path;

use common::{ok, serve_repo};

/// Bytes that do not compress (a release binary's worth of entropy), from a seed.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_delta_update_of_a_100_mib_target_with_a_small_change_moves_under_5_percent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let repo = dir.join("repo");
    let r = path_str(&repo);
    ok(&["repo", "init", r, "--plaintext-keys"]);

    // Release 2: 64 KiB rewritten in three places, 10 KiB appended.
    let len = 100 << 20;
    let v1 = noise(len, 7);
    let mut v2 = v1.clone();
    for at in [len / 5, len / 2, len - 200_000] {
        v2[at..at + 65536 / 3].copy_from_slice(&noise(65536 / 3, at as u64));
    }
    v2.extend_from_slice(&noise(10 << 10, 11));
    let (f1, f2) = (dir.join("app-1.bin"), dir.join("app-2.bin"));
    fs::write(&f1, &v1).unwrap();
    fs::write(&f2, &v2).unwrap();
    ok(&["repo", "-C", r, "add", path_str(&f1), "--name", "app.bin"]);
    ok(&["repo", "-C", r, "publish"]);
    let added = common::json(&[
        "--json",
        "repo",
        "-C",
        r,
        "add",
        path_str(&f2),
        "--name",
        "app.bin",
        "--deltas",
        "1",
    ]);
    assert_eq!(
        added["patches"].as_array().map(Vec::len),
        Some(1),
        "{added}"
    );
    ok(&["repo", "-C", r, "publish"]);
    let (_server, served) = serve_repo(r, dir);
    let (metadata_url, targets_url) = (
        served["metadata_url"].as_str().unwrap(),
        served["targets_url"].as_str().unwrap(),
    );
    let root = repo.join("published/metadata/1.root.json");
    let ca = dir.join("tls/ca.pem");

    // A client holding release 1 where the download goes.
    let state = dir.join("client");
    ok(&[
        "update",
        "--dir",
        path_str(&state),
        "init",
        path_str(&root),
        "--metadata-url",
        metadata_url,
        "--targets-url",
        targets_url,
        "--ca-file",
        path_str(&ca),
    ]);
    fs::create_dir_all(state.join("targets")).unwrap();
    fs::copy(&f1, state.join("targets/app.bin")).unwrap();
    let report = common::json(&[
        "--json",
        "update",
        "--dir",
        path_str(&state),
        "download",
        "app.bin",
    ]);
    let t = &report[0];
    assert_eq!(t["method"], "delta", "{report}");
    let moved = t["bytes_moved"].as_u64().unwrap();
    assert!(
        moved * 20 < v2.len() as u64,
        "moved {moved} of {}",
        v2.len()
    );
    assert_eq!(t["bytes_saved"].as_u64().unwrap(), v2.len() as u64 - moved);
    assert!(
        fs::read(state.join("targets/app.bin")).unwrap() == v2,
        "wrong bytes"
    );

    // Text output says what was moved and saved.
    fs::copy(&f1, state.join("targets/app.bin")).unwrap();
    let text = ok(&["update", "--dir", path_str(&state), "download", "app.bin"]);
    assert!(
        text.contains("by patch from") && text.contains("saved"),
        "{text}"
    );

    // A mirror made with `mirror sync` carries the patch beside the target.
    let mirror = dir.join("mirror");
    let from = format!("{metadata_url},{targets_url}");
    ok(&[
        "mirror",
        "sync",
        "--from",
        &from,
        "--to",
        path_str(&mirror),
        "--root",
        path_str(&root),
        "--ca-file",
        path_str(&ca),
    ]);
    let patch_dir = mirror.join("public/targets/app.bin.delta");
    let patches: Vec<_> = fs::read_dir(&patch_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", patch_dir.display()))
        .collect();
    assert_eq!(patches.len(), 1, "{patches:?}");
}

/// `--deltas 2` lists patches from the two versions before (so a machine two releases behind
/// also moves only a patch), and `--delta-from` makes one from another (versioned) path.
#[test]
fn deltas_from_two_versions_back_and_from_another_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let repo = dir.join("repo");
    let r = path_str(&repo);
    ok(&["repo", "init", r, "--plaintext-keys"]);
    let len = 1 << 20;
    let mut versions = vec![noise(len, 3)];
    for v in 1..3 {
        let mut next = versions[v - 1].clone();
        let at = len / 4 * v;
        next[at..at + 4096].copy_from_slice(&noise(4096, 100 + v as u64));
        versions.push(next);
    }
    let files: Vec<_> = (0..3)
        .map(|v| {
            let f = dir.join(format!("app-{v}.bin"));
            fs::write(&f, &versions[v]).unwrap();
            f
        })
        .collect();
    let sha = |b: &[u8]| {
        airlock_core::tuf::TargetFile::from_bytes(b)
            .hashes
            .get("sha256")
            .unwrap()
            .clone()
    };
    ok(&[
        "repo",
        "-C",
        r,
        "add",
        path_str(&files[0]),
        "--name",
        "app.bin",
    ]);
    ok(&["repo", "-C", r, "publish"]);
    ok(&[
        "repo",
        "-C",
        r,
        "add",
        path_str(&files[1]),
        "--name",
        "app.bin",
        "--deltas",
        "1",
    ]);
    ok(&["repo", "-C", r, "publish"]);
    let added = common::json(&[
        "--json",
        "repo",
        "-C",
        r,
        "add",
        path_str(&files[2]),
        "--name",
        "app.bin",
        "--deltas",
        "2",
    ]);
    assert_eq!(
        added["patches"].as_array().map(Vec::len),
        Some(2),
        "{added}"
    );
    // Versioned paths: a patch from the version another path holds.
    ok(&[
        "repo",
        "-C",
        r,
        "add",
        path_str(&files[1]),
        "--name",
        "app/2/app.bin",
    ]);
    let other = common::json(&[
        "--json",
        "repo",
        "-C",
        r,
        "add",
        path_str(&files[2]),
        "--name",
        "app/3/app.bin",
        "--delta-from",
        "app/2/app.bin",
    ]);
    assert_eq!(
        other["patches"].as_array().map(Vec::len),
        Some(1),
        "{other}"
    );
    ok(&["repo", "-C", r, "publish"]);

    // The newest targets metadata (consistent snapshots: N.targets.json).
    let metadata = repo.join("published/metadata");
    let newest = fs::read_dir(&metadata)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| {
            let v = n.strip_suffix(".targets.json")?.parse::<u64>().ok()?;
            Some((v, n))
        })
        .max()
        .unwrap();
    let targets: serde_json::Value =
        serde_json::from_slice(&fs::read(metadata.join(newest.1)).unwrap()).unwrap();
    let bases = |name: &str| -> Vec<String> {
        let mut b: Vec<String> = targets["signed"]["targets"][name]["custom"]["delta"]["patches"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: {targets}"))
            .iter()
            .map(|p| p["base"]["hashes"]["sha256"].as_str().unwrap().to_string())
            .collect();
        b.sort();
        b
    };
    let mut two_back = vec![sha(&versions[0]), sha(&versions[1])];
    two_back.sort();
    assert_eq!(bases("app.bin"), two_back);
    assert_eq!(bases("app/3/app.bin"), vec![sha(&versions[1])]);

    // A machine two releases behind moves a patch and ends with the newest bytes.
    let (_server, served) = serve_repo(r, dir);
    let state = dir.join("client");
    ok(&[
        "update",
        "--dir",
        path_str(&state),
        "init",
        path_str(&repo.join("published/metadata/1.root.json")),
        "--metadata-url",
        served["metadata_url"].as_str().unwrap(),
        "--targets-url",
        served["targets_url"].as_str().unwrap(),
        "--ca-file",
        path_str(&dir.join("tls/ca.pem")),
    ]);
    fs::create_dir_all(state.join("targets")).unwrap();
    fs::copy(&files[0], state.join("targets/app.bin")).unwrap();
    let report = common::json(&[
        "--json",
        "update",
        "--dir",
        path_str(&state),
        "download",
        "app.bin",
    ]);
    assert_eq!(report[0]["method"], "delta", "{report}");
    assert_eq!(
        fs::read(state.join("targets/app.bin")).unwrap(),
        versions[2]
    );
}
