//! End-to-end: the updater against a real HTTPS server on 127.0.0.1 (test CA made at test time)
//! serving repositories written with airlock-core's metadata model.

mod common;

use std::convert::Infallible;

use airlock_client::{Limits, TargetFileError, UpdateError, Updater};
use airlock_fetch::FetchError;
use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use common::{Client, HttpsRepo, TestRepo, ed25519};

/// A route that answers with an endless body.
fn endless(path: &str) -> Router {
    Router::new().route(
        path,
        get(|| async {
            let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
            Body::from_stream(futures_util::stream::repeat_with(move || {
                Ok::<_, Infallible>(chunk.clone())
            }))
        }),
    )
}

fn names(client: &Client) -> Vec<String> {
    client.stored().into_keys().collect()
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

#[test]
fn refresh_and_download_stores_exactly_the_bytes_received() {
    let mut repo = TestRepo::new();
    let app = b"application v1".to_vec();
    let tool = b"developer tool".to_vec();
    repo.add_target("targets", "app/v1/app.bin", &app);
    repo.delegate("targets", "dev", &["dev/*"], false);
    repo.add_target("dev", "dev/tool.bin", &tool);
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());

    let mut updater = client.updater();
    let summary = updater.refresh().expect("refresh");
    assert_eq!(summary.root_version, 1);
    assert_eq!(summary.timestamp_version, 2);
    assert_eq!(summary.snapshot_version, 2);
    assert_eq!(summary.targets_version, 2);
    assert_eq!(summary.roots_rotated, 0);

    // Only the exact bytes the server sent, under non-versioned names; no delegated role yet.
    let stored = client.stored();
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        vec![
            "root.json",
            "snapshot.json",
            "targets.json",
            "timestamp.json"
        ]
    );
    assert_eq!(stored["root.json"], repo.read_raw("metadata/1.root.json"));
    assert_eq!(
        stored["timestamp.json"],
        repo.read_raw("metadata/timestamp.json")
    );
    assert_eq!(
        stored["snapshot.json"],
        repo.read_raw("metadata/2.snapshot.json")
    );
    assert_eq!(
        stored["targets.json"],
        repo.read_raw("metadata/2.targets.json")
    );

    let target_dir = client.target_dir();
    let dest = Updater::local_target_path(&target_dir, "app/v1/app.bin");
    let (info, downloaded) = updater
        .fetch_target("app/v1/app.bin", &dest, &mut |_, _| {})
        .expect("download app");
    assert!(downloaded);
    assert_eq!(info.role, "targets");
    assert_eq!(std::fs::read(&dest).expect("read app"), app);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dest).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    // The delegated role is fetched lazily, verified with the keys targets gives it.
    let dest = Updater::local_target_path(&target_dir, "dev/tool.bin");
    let (info, _) = updater
        .fetch_target("dev/tool.bin", &dest, &mut |_, _| {})
        .expect("download tool");
    assert_eq!(info.role, "dev");
    assert_eq!(std::fs::read(&dest).expect("read tool"), tool);
    assert_eq!(
        client.stored()["dev.json"],
        repo.read_raw("metadata/1.dev.json")
    );
    // Only the two targets, no temporary files left behind.
    assert_eq!(
        files_in(&target_dir),
        vec!["app%2Fv1%2Fapp.bin", "dev%2Ftool.bin"]
    );

    // A path not covered by any role is not found; one listed by nobody neither.
    let err = updater
        .fetch_target("nothing/here", &target_dir.join("x"), &mut |_, _| {})
        .expect_err("unknown target");
    assert!(matches!(err, UpdateError::TargetNotFound { .. }), "{err}");

    // list includes delegated targets.
    let listed: Vec<String> = updater
        .list_targets()
        .expect("list")
        .into_iter()
        .map(|t| t.path)
        .collect();
    assert_eq!(listed, vec!["app/v1/app.bin", "dev/tool.bin"]);
}

#[test]
fn second_run_uses_stored_metadata_and_cached_target() {
    let mut repo = TestRepo::new();
    let data = b"payload".to_vec();
    repo.add_target("targets", "payload.bin", &data);
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let dest = Updater::local_target_path(&client.target_dir(), "payload.bin");

    let mut first = client.updater();
    let (_, downloaded) = first
        .fetch_target("payload.bin", &dest, &mut |_, _| {})
        .expect("first download");
    assert!(downloaded);

    // The target disappears from the server: the cached copy with matching hashes is used,
    // it is not asked for again.
    let served = repo.targets_dir();
    std::fs::remove_dir_all(&served).expect("remove served targets");
    let mut second = client.updater();
    let before = second.fetcher().request_count();
    let (_, downloaded) = second
        .fetch_target("payload.bin", &dest, &mut |_, _| {})
        .expect("cached");
    assert!(
        !downloaded,
        "a matching file on disk must not be downloaded again"
    );
    // Nothing changed upstream: the root probe (404), timestamp; snapshot and targets come
    // from the store.
    assert_eq!(second.fetcher().request_count() - before, 2);
    let requests = https.requests();
    assert_eq!(
        requests[requests.len() - 2..],
        ["/metadata/2.root.json", "/metadata/timestamp.json"]
    );

    // A local copy that no longer matches is replaced by a verified download.
    std::fs::write(&dest, b"tampered").expect("tamper");
    repo.add_target("targets", "payload.bin", &data);
    let mut third = client.updater();
    let (_, downloaded) = third
        .fetch_target("payload.bin", &dest, &mut |_, _| {})
        .expect("re-download");
    assert!(downloaded);
    assert_eq!(std::fs::read(&dest).expect("read"), data);
}

#[test]
fn root_rotation_follows_the_chain_until_404() {
    let mut repo = TestRepo::new();
    let v1 = repo.initial_root();
    repo.rotate_root_keys(vec![ed25519()], 1);
    repo.rotate_root_keys(vec![ed25519(), ed25519()], 2);
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &v1);

    let mut updater = client.updater();
    let summary = updater.refresh().expect("refresh");
    assert_eq!(summary.root_version, 3);
    assert_eq!(summary.roots_rotated, 2);
    assert_eq!(
        client.stored()["root.json"],
        repo.read_raw("metadata/3.root.json")
    );
    assert_eq!(
        https.requests(),
        vec![
            "/metadata/2.root.json",
            "/metadata/3.root.json",
            "/metadata/4.root.json",
            "/metadata/timestamp.json",
            "/metadata/1.snapshot.json",
            "/metadata/1.targets.json",
        ]
    );
    assert_eq!(updater.fetcher().request_count(), 6);

    // Next run: only the probe for 4.root.json and the timestamp.
    let mut again = client.updater();
    assert_eq!(again.refresh().expect("refresh again").roots_rotated, 0);
    assert_eq!(again.fetcher().request_count(), 8);
}

#[test]
fn root_rotation_is_capped() {
    let mut repo = TestRepo::new();
    let v1 = repo.initial_root();
    for _ in 0..3 {
        repo.rotate_root_keys(vec![ed25519()], 1);
    }
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &v1);
    let limits = Limits {
        max_root_rotations: 2,
        ..Limits::default()
    };
    let summary = client
        .updater_with_limits(limits)
        .refresh()
        .expect("refresh");
    assert_eq!(summary.root_version, 3, "only two rotations per update");
    let summary = client.updater().refresh().expect("refresh");
    assert_eq!(summary.root_version, 4);
    assert_eq!(summary.roots_rotated, 1);
}

#[test]
fn root_not_signed_by_the_old_keys_is_refused_and_not_stored() {
    let mut repo = TestRepo::new();
    let v1 = repo.initial_root();
    // Version 2 claims new root keys but carries only the new key's signature.
    let new_key = ed25519();
    repo.rotate_root_keys(vec![new_key], 1);
    let mut forged = repo.root.clone();
    TestRepo::sign(&mut forged, &repo.root_keys);
    repo.write_raw(
        "metadata/2.root.json",
        &forged.to_canonical_bytes().expect("bytes"),
    );
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &v1);
    let err = client.updater().refresh().expect_err("must refuse");
    let msg = airlock_core::error_chain(&err);
    assert!(
        matches!(&err, UpdateError::Refused { role, .. } if role == "root"),
        "{msg}"
    );
    assert!(msg.contains("2.root.json"), "names the URL: {msg}");
    assert_eq!(client.stored()["root.json"], v1);
    assert_eq!(names(&client), vec!["root.json"]);
}

fn too_large(err: &UpdateError) -> bool {
    matches!(
        err,
        UpdateError::Fetch {
            source: FetchError::TooLarge { .. },
            ..
        }
    )
}

#[test]
fn endless_timestamp_is_cut_at_the_cap() {
    let repo = TestRepo::new();
    let https = HttpsRepo::serve_with(repo.path(), endless("/metadata/timestamp.json"));
    let client = Client::new(&https, &repo.initial_root());
    let err = client.updater().refresh().expect_err("endless data");
    assert!(too_large(&err), "{err}");
    assert!(
        airlock_core::error_chain(&err).contains("timestamp"),
        "{err}"
    );
    assert_eq!(names(&client), vec!["root.json"]);
}

#[test]
fn endless_root_is_cut_at_the_cap() {
    let repo = TestRepo::new();
    let https = HttpsRepo::serve_with(repo.path(), endless("/metadata/2.root.json"));
    let client = Client::new(&https, &repo.initial_root());
    let err = client.updater().refresh().expect_err("endless data");
    assert!(too_large(&err), "{err}");
    assert_eq!(client.stored()["root.json"], repo.initial_root());
}

#[test]
fn configured_caps_are_enforced() {
    let repo = TestRepo::new();
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let timestamp_len = repo.read_raw("metadata/timestamp.json").len() as u64;
    let limits = Limits {
        timestamp_max_len: timestamp_len - 1,
        ..Limits::default()
    };
    let err = client
        .updater_with_limits(limits)
        .refresh()
        .expect_err("over the cap");
    assert!(too_large(&err), "{err}");
    // With the cap at the exact length it passes.
    let limits = Limits {
        timestamp_max_len: timestamp_len,
        ..Limits::default()
    };
    client
        .updater_with_limits(limits)
        .refresh()
        .expect("at the cap");
}

#[test]
fn endless_target_is_cut_at_its_listed_length() {
    let mut repo = TestRepo::new();
    let file = repo.add_target("targets", "big.bin", b"0123456789");
    repo.publish();
    let hash = file.hashes["sha256"].clone();
    let https = HttpsRepo::serve_with(repo.path(), endless(&format!("/targets/{hash}.big.bin")));
    let client = Client::new(&https, &repo.initial_root());
    let dest = Updater::local_target_path(&client.target_dir(), "big.bin");
    let err = client
        .updater()
        .fetch_target("big.bin", &dest, &mut |_, _| {})
        .expect_err("endless target");
    assert!(
        matches!(
            &err,
            UpdateError::Target {
                source: TargetFileError::Fetch(FetchError::TooLarge { max_len: 10, .. }),
                ..
            }
        ),
        "{err}"
    );
    assert!(!dest.exists());
    assert_eq!(files_in(&client.target_dir()), Vec::<String>::new());
}

#[test]
fn target_with_wrong_content_is_refused_and_not_stored() {
    let mut repo = TestRepo::new();
    let file = repo.add_target("targets", "a.txt", b"good content");
    repo.publish();
    // Same length, different bytes, served under the listed hash name.
    let hash = file.hashes["sha256"].clone();
    repo.write_raw(&format!("targets/{hash}.a.txt"), b"evil content");
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let dest = Updater::local_target_path(&client.target_dir(), "a.txt");
    let err = client
        .updater()
        .fetch_target("a.txt", &dest, &mut |_, _| {})
        .expect_err("hash mismatch");
    assert!(
        matches!(
            &err,
            UpdateError::Target {
                source: TargetFileError::Hash { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(airlock_core::error_chain(&err).contains("sha256"), "{err}");
    assert!(!dest.exists());
    assert_eq!(files_in(&client.target_dir()), Vec::<String>::new());
}

#[test]
fn unknown_hash_algorithm_never_counts_as_a_pass() {
    let mut repo = TestRepo::new();
    let data = b"content".to_vec();
    let mut file = airlock_core::tuf::TargetFile::from_bytes(&data);
    file.hashes.clear();
    file.hashes.insert("md5".into(), "00".repeat(16));
    repo.add_target_file("targets", "m.txt", file, &data);
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let dest = Updater::local_target_path(&client.target_dir(), "m.txt");
    let err = client
        .updater()
        .fetch_target("m.txt", &dest, &mut |_, _| {})
        .expect_err("md5 only");
    assert!(airlock_core::error_chain(&err).contains("md5"), "{err}");
    assert!(!dest.exists());
}

#[test]
fn uninitialised_directory_is_a_clear_error() {
    let repo = TestRepo::new();
    let https = HttpsRepo::serve(repo.path());
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Updater::new(https.config(dir.path())).expect_err("no root");
    assert!(matches!(err, UpdateError::NotInitialised { .. }), "{err}");
}

/// Interop: a repository written by python-tuf's repository API (tuf.api.metadata), with a
/// terminating path delegation and TAP 15 succinct hash bins, served over HTTPS.
#[test]
fn updates_from_a_repository_written_by_python_tuf() {
    let Some(python) = common::python() else {
        return;
    };
    let repo_dir = tempfile::tempdir().expect("tempdir");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/python_tuf_repo.py"
    );
    let out = std::process::Command::new(&python)
        .arg(script)
        .arg(repo_dir.path())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python-tuf repository script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let published: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&out.stdout).expect("published targets");
    assert_eq!(published.len(), 3);

    let https = HttpsRepo::serve(repo_dir.path());
    let root = std::fs::read(repo_dir.path().join("metadata/1.root.json")).expect("root");
    let client = Client::new(&https, &root);
    let mut updater = client.updater();
    updater
        .refresh()
        .expect("refresh from python-tuf repository");
    for (path, hex_content) in &published {
        let dest = Updater::local_target_path(&client.target_dir(), path);
        let (info, downloaded) = updater
            .fetch_target(path, &dest, &mut |_, _| {})
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(downloaded);
        assert_eq!(info.file.hashes.len(), 2, "sha256 and sha512 both checked");
        assert_eq!(
            hex::encode(std::fs::read(&dest).expect("read")),
            *hex_content
        );
    }
    let stored = client.stored();
    // Exactly the bytes python-tuf wrote, and only the one hash bin the lookup needed.
    assert_eq!(
        stored["docs.json"],
        std::fs::read(repo_dir.path().join("metadata/1.docs.json")).expect("docs")
    );
    let bins: Vec<&String> = stored.keys().filter(|k| k.starts_with("bin-")).collect();
    assert_eq!(bins.len(), 1, "{bins:?}");
}
