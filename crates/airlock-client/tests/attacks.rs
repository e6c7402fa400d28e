//! Each attack the TUF specification names (1.0.34, section 1.5.2), played against the updater
//! by a misbehaving HTTPS mirror on 127.0.0.1 (see `evil`). Every test shows the attack refused
//! with an error that names the role, the check or the URL, and that nothing untrusted reached
//! the metadata directory or the target directory.

mod common;
mod evil;

use std::sync::Arc;

use airlock_client::{TargetFileError, UpdateError, Updater, UpdaterConfig};
use airlock_core::crypto::Signer;
use airlock_core::tuf::{HashError, MetaFile, TrustError};
use airlock_fetch::{FetchError, Fetcher, FetcherConfig, Trust};
use chrono::{Duration as ChronoDuration, Utc};
use common::{Client, HttpsRepo, TestRepo, ed25519};
use evil::{
    Misbehaviour, assert_says, disk, impatient_fetcher, serve, signed_bytes, stored_names,
    version_only_snapshot, version_only_timestamp,
};

#[track_caller]
fn refused<'a>(err: &'a UpdateError, expected_role: &str) -> &'a TrustError {
    match err {
        UpdateError::Refused { role, source, .. } if role == expected_role => source,
        other => panic!("expected {expected_role} metadata to be refused, got: {other}"),
    }
}

#[track_caller]
fn fetch_failure<'a>(err: &'a UpdateError, expected_role: &str) -> &'a FetchError {
    match err {
        UpdateError::Fetch { role, source } if role == expected_role => source,
        other => panic!("expected downloading {expected_role} to fail, got: {other}"),
    }
}

#[track_caller]
fn target_failure(err: &UpdateError) -> &TargetFileError {
    match err {
        UpdateError::Target { source, .. } => source,
        other => panic!("expected a target download failure, got: {other}"),
    }
}

fn fetch(updater: &mut Updater, client: &Client, path: &str) -> Result<bool, UpdateError> {
    let dest = Updater::local_target_path(&client.target_dir(), path);
    updater
        .fetch_target(path, &dest, &mut |_, _| {})
        .map(|(_, downloaded)| downloaded)
}

/// The URL path a target is served under in a consistent-snapshot repository.
fn hashed_target_path(file: &airlock_core::tuf::TargetFile, path: &str) -> String {
    let hash = file.hashes.get("sha256").unwrap();
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("/targets/{dir}/{hash}.{name}"),
        None => format!("/targets/{hash}.{path}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Arbitrary installation: the mirror answers with files of its choosing.

#[test]
fn arbitrary_installation_altered_target_bytes_are_refused() {
    let mut repo = TestRepo::new();
    let file = repo.add_target("targets", "app/app.bin", b"genuine app");
    repo.publish();
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let url_path = hashed_target_path(&file, "app/app.bin");

    // Same length, other content.
    evil.set(&url_path, Misbehaviour::Bytes(b"evil app!!!".to_vec()));
    let err = fetch(&mut client.updater(), &client, "app/app.bin").expect_err("altered");
    assert!(
        matches!(
            target_failure(&err),
            TargetFileError::Hash {
                source: HashError::Mismatch { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_says(&err, &["app/app.bin", &url_path, "sha256 hash mismatch"]);
    // Shorter content: cut off before hashing finishes, refused on its length.
    evil.set(&url_path, Misbehaviour::Bytes(b"short".to_vec()));
    let err = fetch(&mut client.updater(), &client, "app/app.bin").expect_err("short");
    assert!(
        matches!(
            target_failure(&err),
            TargetFileError::Length {
                expected: 11,
                actual: 5,
                ..
            }
        ),
        "{err}"
    );
    assert!(disk(&client).targets.is_empty(), "{:?}", disk(&client));
}

#[test]
fn arbitrary_installation_metadata_signed_by_the_attacker_is_refused() {
    let mut repo = TestRepo::new();
    repo.add_target("targets", "app.bin", b"genuine");
    repo.publish();
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let before = disk(&client);
    let attacker = ed25519();

    // (a) A whole new timestamp signed by the attacker's key.
    let mut ts = repo.timestamp.clone();
    ts.signed.version += 1;
    evil.set(
        "/metadata/timestamp.json",
        Misbehaviour::Bytes(signed_bytes(&ts, &[&attacker])),
    );
    let err = client
        .updater()
        .refresh()
        .expect_err("attacker's timestamp");
    assert!(
        matches!(refused(&err, "timestamp"), TrustError::Signatures { .. }),
        "{err}"
    );
    assert_says(
        &err,
        &["timestamp", "/metadata/timestamp.json", "threshold"],
    );
    assert_eq!(disk(&client), before);
    evil.clear("/metadata/timestamp.json");

    // (b) targets.json listing the attacker's file, signed by the attacker: the snapshot's
    // listed length stops the download, and with a version-only snapshot the signature check
    // refuses it.
    let mut forged = repo.targets.clone();
    forged.signed.targets.insert(
        "evil.bin".into(),
        airlock_core::tuf::TargetFile::from_bytes(b"evil"),
    );
    let forged = signed_bytes(&forged, &[&attacker]);
    let targets_url = format!("/metadata/{}.targets.json", repo.targets.signed.version);
    evil.set(&targets_url, Misbehaviour::Bytes(forged.clone()));
    let err = fetch(&mut client.updater(), &client, "evil.bin").expect_err("forged targets");
    let listed = repo.snapshot.signed.meta["targets.json"].length;
    assert!(
        matches!(fetch_failure(&err, "targets"), FetchError::TooLarge { max_len, .. } if Some(*max_len) == listed),
        "{err}"
    );
    assert_says(&err, &["targets", &targets_url]);
    assert!(!stored_names(&client).contains(&"targets.json".to_string()));

    version_only_snapshot(&mut repo);
    let client = Client::new(&https, &repo.initial_root());
    let err = fetch(&mut client.updater(), &client, "evil.bin").expect_err("forged targets");
    assert!(
        matches!(refused(&err, "targets"), TrustError::Signatures { .. }),
        "{err}"
    );
    assert!(!stored_names(&client).contains(&"targets.json".to_string()));
    assert!(disk(&client).targets.is_empty());
    assert!(!evil.requests().iter().any(|p| p.contains("evil.bin")));
}

// ---------------------------------------------------------------------------------------------
// Endless data: every download stops at the length the trusted metadata gives (or the cap).

#[test]
fn endless_data_is_cut_at_the_listed_length_for_every_file() {
    let mut repo = TestRepo::new();
    repo.delegate("targets", "dev", &["dev/*"], false);
    let file = repo.add_target("dev", "dev/tool.bin", b"0123456789");
    repo.publish();
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let before = disk(&client);
    let listed = |name: &str| repo.snapshot.signed.meta[name].length.expect("length");
    let snapshot_len = repo.timestamp.signed.meta["snapshot.json"]
        .length
        .expect("length");
    let cases: Vec<(String, &str, u64)> = vec![
        ("/metadata/2.snapshot.json".into(), "snapshot", snapshot_len),
        (
            "/metadata/2.targets.json".into(),
            "targets",
            listed("targets.json"),
        ),
        ("/metadata/1.dev.json".into(), "dev", listed("dev.json")),
    ];
    for (path, role, max) in cases {
        evil.set(&path, Misbehaviour::Endless);
        let c = Client::new(&https, &repo.initial_root());
        let err = fetch(&mut c.updater(), &c, "dev/tool.bin").expect_err("endless");
        assert!(
            matches!(fetch_failure(&err, role), FetchError::TooLarge { max_len, .. } if *max_len == max),
            "{role}: {err}"
        );
        assert_says(&err, &[role, &path]);
        assert!(!stored_names(&c).contains(&format!("{role}.json")));
        evil.clear(&path);
    }
    // The target itself: at most its listed 10 bytes.
    let url_path = hashed_target_path(&file, "dev/tool.bin");
    evil.set(&url_path, Misbehaviour::Endless);
    let err = fetch(&mut client.updater(), &client, "dev/tool.bin").expect_err("endless");
    assert!(
        matches!(
            target_failure(&err),
            TargetFileError::Fetch(FetchError::TooLarge { max_len: 10, .. })
        ),
        "{err}"
    );
    assert_eq!(disk(&client).targets, before.targets);
}

// ---------------------------------------------------------------------------------------------
// Extraneous dependencies: the mirror (or a role) adds software the client did not ask for.

/// A compromised timestamp or snapshot key can list any length. Every metadata file is held in
/// memory, so a listed length above the role's cap is refused before a single byte of that file
/// is requested, and the error says which role, what was listed and what the cap is.
#[test]
fn endless_data_a_listed_length_above_the_cap_is_refused_before_the_download() {
    const HUGE: u64 = 100_000_000_000; // 100 GB
    let limits = airlock_client::Limits::default();
    let cases: [(&str, &str, &str, u64); 3] = [
        (
            "snapshot",
            "timestamp",
            "/metadata/2.snapshot.json",
            limits.snapshot_max_len,
        ),
        (
            "targets",
            "snapshot",
            "/metadata/2.targets.json",
            limits.targets_max_len,
        ),
        (
            "dev",
            "snapshot",
            "/metadata/1.dev.json",
            limits.delegated_targets_max_len,
        ),
    ];
    for (role, listed_by, path, cap) in cases {
        let mut repo = TestRepo::new();
        repo.delegate("targets", "dev", &["dev/*"], false);
        repo.add_target("dev", "dev/tool.bin", b"0123456789");
        repo.publish();
        // Signed with the role's real key: what a thief of that key can publish.
        if role == "snapshot" {
            let meta = repo
                .timestamp
                .signed
                .meta
                .get_mut("snapshot.json")
                .expect("meta");
            meta.length = Some(HUGE);
            repo.write_timestamp();
        } else {
            let meta = repo
                .snapshot
                .signed
                .meta
                .get_mut(&format!("{role}.json"))
                .expect("meta");
            meta.length = Some(HUGE);
            repo.write_snapshot_and_timestamp();
        }
        let (https, evil) = serve(repo.path());
        let client = Client::new(&https, &repo.initial_root());
        let err = fetch(&mut client.updater(), &client, "dev/tool.bin").expect_err(role);
        assert!(
            matches!(
                &err,
                UpdateError::ListedLengthTooLarge { role: r, listed_by: by, listed, max }
                    if r == role && by == listed_by && *listed == HUGE && *max == cap
            ),
            "{role}: {err}"
        );
        assert_says(&err, &[role, listed_by, "100000000000", &cap.to_string()]);
        assert_eq!(evil.count(path), 0, "{role} must not be requested");
        assert!(!stored_names(&client).contains(&format!("{role}.json")));
        assert!(disk(&client).targets.is_empty());
    }
}

#[test]
fn extraneous_dependencies_cannot_be_added() {
    let mut repo = TestRepo::new();
    repo.delegate("targets", "app", &["app/*"], false);
    repo.add_target("app", "app/app.bin", b"app");
    // The app role tries to vouch for a library outside its paths.
    repo.add_target("app", "lib/evil.so", b"evil library");
    repo.publish();
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let mut updater = client.updater();
    let err = fetch(&mut updater, &client, "lib/evil.so").expect_err("outside app's paths");
    assert!(matches!(err, UpdateError::TargetNotFound { .. }), "{err}");
    let listed: Vec<String> = updater
        .list_targets()
        .expect("list")
        .into_iter()
        .map(|t| t.path)
        .collect();
    assert_eq!(listed, vec!["app/app.bin"]);

    // The mirror adds a dependency to the app's custom data in app.json.
    let mut altered = repo.delegated["app"].clone();
    altered
        .signed
        .targets
        .get_mut("app/app.bin")
        .expect("listed")
        .custom = Some(Box::new(serde_json::json!({"depends": ["lib/evil.so"]})));
    let altered = altered.to_canonical_bytes().expect("bytes");
    evil.set("/metadata/1.app.json", Misbehaviour::Bytes(altered));
    let client = Client::new(&https, &repo.initial_root());
    // The snapshot lists app.json's length: the longer file is cut off there.
    let err = fetch(&mut client.updater(), &client, "app/app.bin").expect_err("altered app.json");
    assert!(
        matches!(fetch_failure(&err, "app"), FetchError::TooLarge { .. }),
        "{err}"
    );
    version_only_snapshot(&mut repo);
    let client = Client::new(&https, &repo.initial_root());
    let err = fetch(&mut client.updater(), &client, "app/app.bin").expect_err("altered app.json");
    assert!(
        matches!(refused(&err, "app"), TrustError::Signatures { .. }),
        "{err}"
    );
    assert_says(
        &err,
        &["app", "/metadata/1.app.json", "keys targets gives it"],
    );
    assert!(!stored_names(&client).contains(&"app.json".to_string()));
    assert!(disk(&client).targets.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Fast-forward: a compromised online key pushes versions up so that the honest repository's
// next versions look like rollbacks; rotating that key must let the client recover.

fn rotate_snapshot_key(repo: &mut TestRepo) {
    let old: Vec<String> = repo.root.signed.roles["snapshot"].keyids.clone();
    for id in old {
        repo.root.signed.remove_key("snapshot", &id);
    }
    let key = ed25519();
    repo.root
        .signed
        .add_key("snapshot", key.public_key().clone());
    repo.snapshot_keys = vec![key];
    repo.root.signed.version += 1;
    repo.write_root();
}

#[test]
fn fast_forward_timestamp_is_recovered_from_by_rotating_the_timestamp_key() {
    let mut repo = TestRepo::new();
    repo.publish();
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    client.updater().refresh().expect("honest");

    // The attacker holds the timestamp key and pushes its version far ahead.
    let mut ahead = repo.timestamp.clone();
    ahead.signed.version = 1_000_000;
    ahead
        .signed
        .meta
        .insert("snapshot.json".into(), MetaFile::new(1_000_000));
    let ahead = signed_bytes(&ahead, &[&repo.timestamp_keys[0]]);
    evil.set(
        "/metadata/timestamp.json",
        Misbehaviour::Bytes(ahead.clone()),
    );
    let err = client.updater().refresh().expect_err("no such snapshot");
    assert!(fetch_failure(&err, "snapshot").is_not_found(), "{err}");
    // Validly signed, so it was trusted: this is the state fast-forward leaves behind.
    assert_eq!(client.stored()["timestamp.json"], ahead);
    evil.clear("/metadata/timestamp.json");

    // The honest repository's next timestamp now looks like a rollback.
    repo.publish();
    let err = client.updater().refresh().expect_err("locked out");
    assert!(
        matches!(
            refused(&err, "timestamp"),
            TrustError::Rollback {
                trusted: 1_000_000,
                ..
            }
        ),
        "{err}"
    );

    // Recovery: the repository rotates the timestamp key; the client drops its cached
    // timestamp and snapshot and accepts the honest one.
    repo.rotate_timestamp_key();
    repo.timestamp.signed.version += 1;
    repo.write_timestamp();
    let summary = client.updater().refresh().expect("recovered");
    assert_eq!(summary.root_version, 2);
    assert_eq!(summary.timestamp_version, repo.timestamp.signed.version);
    assert_eq!(
        client.stored()["timestamp.json"],
        repo.read_raw("metadata/timestamp.json")
    );
}

#[test]
fn fast_forward_snapshot_is_recovered_from_by_rotating_the_snapshot_key() {
    let mut repo = TestRepo::new();
    repo.publish();
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    client.updater().refresh().expect("honest");

    // The attacker holds the online keys and lists targets.json at version 1,000,000.
    let mut snap = repo.snapshot.clone();
    snap.signed.version = 50;
    snap.signed
        .meta
        .insert("targets.json".into(), MetaFile::new(1_000_000));
    let snap = signed_bytes(&snap, &[&repo.snapshot_keys[0]]);
    let mut ts = repo.timestamp.clone();
    ts.signed.version = 50;
    ts.signed
        .meta
        .insert("snapshot.json".into(), MetaFile::with_bytes(50, &snap));
    evil.set(
        "/metadata/50.snapshot.json",
        Misbehaviour::Bytes(snap.clone()),
    );
    evil.set(
        "/metadata/timestamp.json",
        Misbehaviour::Bytes(signed_bytes(&ts, &[&repo.timestamp_keys[0]])),
    );
    let err = client.updater().refresh().expect_err("no such targets");
    assert!(fetch_failure(&err, "targets").is_not_found(), "{err}");
    assert_eq!(client.stored()["snapshot.json"], snap);
    evil.clear("/metadata/timestamp.json");

    // Honest snapshot 51 lists targets.json at its real version: refused as a rollback...
    repo.snapshot.signed.version = 50;
    repo.timestamp.signed.version = 50;
    repo.publish();
    let err = client.updater().refresh().expect_err("locked out");
    assert!(
        matches!(
            refused(&err, "snapshot"),
            TrustError::RoleRollbackInSnapshot {
                trusted: 1_000_000,
                ..
            }
        ),
        "{err}"
    );
    assert_says(&err, &["targets.json", "rollback"]);

    // ... until the snapshot key is rotated.
    rotate_snapshot_key(&mut repo);
    repo.publish();
    let summary = client.updater().refresh().expect("recovered");
    assert_eq!(summary.root_version, 2);
    assert_eq!(summary.snapshot_version, repo.snapshot.signed.version);
}

// ---------------------------------------------------------------------------------------------
// Indefinite freeze: the mirror serves metadata that is no longer fresh.

#[test]
fn indefinite_freeze_expired_metadata_is_refused_for_every_role() {
    let past = Utc::now() - ChronoDuration::days(1);
    for role in ["timestamp", "snapshot", "targets", "dev", "root"] {
        let mut repo = TestRepo::new();
        repo.delegate("targets", "dev", &["dev/*"], false);
        repo.add_target("dev", "dev/tool.bin", b"tool");
        repo.publish();
        let v1 = repo.initial_root();
        let (https, _evil) = serve(repo.path());
        let client = Client::new(&https, &v1);
        fetch(&mut client.updater(), &client, "dev/tool.bin").expect("fresh");
        let before = disk(&client);
        match role {
            "timestamp" => {
                repo.timestamp.signed.expires = past;
                repo.timestamp.signed.version += 1;
                repo.write_timestamp();
            }
            "snapshot" => {
                repo.snapshot.signed.expires = past;
                repo.publish();
            }
            "targets" => {
                repo.targets.signed.expires = past;
                repo.add_target("targets", "x.bin", b"x");
                repo.publish();
            }
            "dev" => {
                repo.delegated.get_mut("dev").expect("dev").signed.expires = past;
                repo.add_target("dev", "dev/tool.bin", b"tool v2");
                repo.publish();
            }
            _ => {
                repo.root.signed.expires = past;
                repo.root.signed.version += 1;
                repo.write_root();
            }
        }
        let err = fetch(&mut client.updater(), &client, "dev/tool.bin").expect_err(role);
        let trust = match &err {
            UpdateError::Refused { source, .. } => source,
            other => panic!("{role}: expected a refusal, got {other}"),
        };
        assert!(
            matches!(&**trust, TrustError::Expired { role: r, .. } if r == role),
            "{role}: {err}"
        );
        assert_says(&err, &[role, "expired"]);
        if role == "root" {
            // The refusal names the expired root, not the timestamp fetched after it.
            assert!(
                matches!(&err, UpdateError::Refused { role: r, url, .. }
                    if r == "root" && url.ends_with("/2.root.json")),
                "{err}"
            );
        }
        // Nothing expired is kept, except a new root: TUF 5.3.8 stores each verified root
        // before the final root's expiry is checked (5.3.10).
        let now = disk(&client);
        assert_eq!(now.targets, before.targets, "{role}");
        for (name, bytes) in &now.metadata {
            match name.as_str() {
                "root.json" if role == "root" => {
                    assert_eq!(*bytes, repo.read_raw("metadata/2.root.json"))
                }
                // A fresh timestamp (or snapshot) that came before the expired file is valid.
                "timestamp.json" if role != "timestamp" && role != "root" => {
                    assert_eq!(*bytes, repo.read_raw("metadata/timestamp.json"))
                }
                "snapshot.json" if role == "targets" || role == "dev" => {}
                _ => assert_eq!(Some(bytes), before.metadata.get(name), "{role}: {name}"),
            }
        }
        if role != "root" {
            assert_eq!(
                now.metadata.get(&format!("{role}.json")),
                before.metadata.get(&format!("{role}.json")),
                "{role}: the expired file replaced the trusted one"
            );
        }
    }
}

/// The classic freeze: the mirror keeps serving the same files, which were valid when the
/// client last updated, after they expired. The test waits until the timestamp's expiry has
/// passed (a wait for a condition, not a timing threshold).
#[test]
fn indefinite_freeze_the_same_files_replayed_after_expiry_are_refused() {
    use chrono::SubsecRound;
    let mut repo = TestRepo::new();
    let (https, _evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    // A timestamp valid for a few more seconds (more, if this machine is too busy to update
    // within that).
    let mut fresh = false;
    for seconds in [3, 10, 30] {
        repo.timestamp.signed.expires =
            (Utc::now() + ChronoDuration::seconds(seconds)).trunc_subsecs(0);
        repo.publish();
        match client.updater().refresh() {
            Ok(_) => {
                fresh = true;
                break;
            }
            Err(e) => eprintln!("not fresh any more after {seconds} s, retrying: {e}"),
        }
    }
    assert!(fresh, "could not update while the timestamp was fresh");
    let before = disk(&client);
    while Utc::now() <= repo.timestamp.signed.expires {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let err = client.updater().refresh().expect_err("frozen");
    assert!(
        matches!(refused(&err, "timestamp"), TrustError::Expired { role, .. } if role == "timestamp"),
        "{err}"
    );
    assert_says(&err, &["timestamp", "expired"]);
    assert_eq!(disk(&client), before);
}

// ---------------------------------------------------------------------------------------------
// Malicious mirrors: one mirror's misbehaviour must not stop the client from using a good one.

fn fetcher_trusting(mirrors: &[&HttpsRepo]) -> Arc<Fetcher> {
    let pem: Vec<u8> = mirrors
        .iter()
        .flat_map(|m| m.ca.cert_pem().as_bytes().to_vec())
        .collect();
    Arc::new(
        Fetcher::new(FetcherConfig {
            trust: Trust::CaBundlePem(pem),
            retries: 0,
            ..FetcherConfig::default()
        })
        .expect("fetcher"),
    )
}

#[test]
fn malicious_mirrors_cannot_block_updates_from_a_good_mirror() {
    let mut repo = TestRepo::new();
    let file = repo.add_target("targets", "app.bin", b"genuine app");
    repo.publish();
    // Another repository (another vendor, or the attacker's) with a file of the same name.
    let mut other = TestRepo::new();
    other.add_target("targets", "app.bin", b"other's app");
    other.publish();
    let (good, _good_evil) = serve(repo.path());
    let (foreign, _) = serve(other.path());
    let (bad, evil) = serve(repo.path());
    let client = Client::new(&good, &repo.initial_root());
    let fetcher = fetcher_trusting(&[&good, &foreign, &bad]);
    let via = |m: &HttpsRepo| {
        Updater::new(UpdaterConfig {
            metadata_base_url: m.metadata_url(),
            targets_base_url: Some(m.targets_url()),
            fetcher: fetcher.clone(),
            ..client.config.clone()
        })
        .expect("updater")
    };
    let before = disk(&client);

    // A mirror of another repository: its metadata is signed by keys our root does not know.
    let err = fetch(&mut via(&foreign), &client, "app.bin").expect_err("foreign metadata");
    assert!(
        matches!(refused(&err, "timestamp"), TrustError::Signatures { .. }),
        "{err}"
    );
    assert_eq!(disk(&client), before);

    // A mirror serving our metadata but the other repository's file under our file's name.
    let url_path = hashed_target_path(&file, "app.bin");
    evil.set(&url_path, Misbehaviour::Bytes(b"other's app".to_vec()));
    let err = fetch(&mut via(&bad), &client, "app.bin").expect_err("other's file");
    assert!(
        matches!(target_failure(&err), TargetFileError::Hash { .. }),
        "{err}"
    );
    assert!(disk(&client).targets.is_empty());

    // A mirror redirecting to plain http, or to a host the client does not trust.
    evil.set(
        "/metadata/timestamp.json",
        Misbehaviour::Redirect(format!(
            "http://127.0.0.1:{}/metadata/timestamp.json",
            bad.server.addr().port()
        )),
    );
    let c = Client::new(&bad, &repo.initial_root());
    let err = c.updater().refresh().expect_err("http redirect");
    assert!(
        matches!(
            fetch_failure(&err, "timestamp"),
            FetchError::InsecureUrl { .. }
        ),
        "{err}"
    );
    let untrusted = HttpsRepo::serve(repo.path());
    evil.set(
        "/metadata/timestamp.json",
        Misbehaviour::Redirect(untrusted.server.url("/metadata/timestamp.json")),
    );
    let err = c
        .updater()
        .refresh()
        .expect_err("untrusted redirect target");
    assert!(
        matches!(fetch_failure(&err, "timestamp"), FetchError::Tls { .. }),
        "{err}"
    );
    // A redirect loop ends at the redirect limit.
    evil.set(
        "/metadata/timestamp.json",
        Misbehaviour::Redirect("/metadata/timestamp.json".into()),
    );
    let err = c.updater().refresh().expect_err("redirect loop");
    assert!(
        matches!(
            fetch_failure(&err, "timestamp"),
            FetchError::Redirect { .. }
        ),
        "{err}"
    );
    evil.clear("/metadata/timestamp.json");
    // A server error for the next root stops the update: it is not read as "no new root"
    // (which would let a mirror hide a key rotation). 404 and 403 do mean "no new root".
    evil.set("/metadata/2.root.json", Misbehaviour::Status(500));
    let err = c.updater().refresh().expect_err("500 for 2.root.json");
    assert!(
        matches!(
            fetch_failure(&err, "root"),
            FetchError::HttpStatus { status: 500, .. }
        ),
        "{err}"
    );
    assert_eq!(stored_names(&c), vec!["root.json"]);
    evil.set("/metadata/2.root.json", Misbehaviour::Status(403));
    c.updater().refresh().expect("403 ends the root chain");

    // The good mirror still works for the same client.
    assert!(fetch(&mut via(&good), &client, "app.bin").expect("good mirror"));
    let dest = Updater::local_target_path(&client.target_dir(), "app.bin");
    assert_eq!(std::fs::read(dest).expect("read"), b"genuine app");
}

// ---------------------------------------------------------------------------------------------
// Mix-and-match: files from different repository versions served together.

#[test]
fn mix_and_match_of_metadata_versions_is_refused() {
    let mut repo = TestRepo::new();
    repo.add_target("targets", "a.bin", b"a v1");
    repo.publish();
    let snapshot_v2 = repo.read_raw("metadata/2.snapshot.json");
    let targets_v2 = repo.read_raw("metadata/2.targets.json");
    repo.add_target("targets", "a.bin", b"a v2");
    repo.publish();
    let (https, evil) = serve(repo.path());

    // The current timestamp (snapshot v3 with hashes) with the older snapshot.
    evil.set(
        "/metadata/3.snapshot.json",
        Misbehaviour::Bytes(snapshot_v2.clone()),
    );
    let client = Client::new(&https, &repo.initial_root());
    let err = client.updater().refresh().expect_err("old snapshot");
    assert!(
        matches!(
            refused(&err, "snapshot"),
            TrustError::Content {
                listed_by: "timestamp",
                ..
            }
        ),
        "{err}"
    );
    assert_says(
        &err,
        &["snapshot", "/metadata/3.snapshot.json", "timestamp"],
    );
    assert!(!stored_names(&client).contains(&"snapshot.json".to_string()));
    evil.clear("/metadata/3.snapshot.json");

    // The current snapshot with the older targets.
    evil.set(
        "/metadata/3.targets.json",
        Misbehaviour::Bytes(targets_v2.clone()),
    );
    let err = client.updater().refresh().expect_err("old targets");
    assert!(
        matches!(
            refused(&err, "targets"),
            TrustError::Content {
                listed_by: "snapshot",
                ..
            }
        ),
        "{err}"
    );
    assert!(!stored_names(&client).contains(&"targets.json".to_string()));

    // Without hashes in the listings, the versions still have to match.
    version_only_snapshot(&mut repo);
    version_only_timestamp(&mut repo);
    let client = Client::new(&https, &repo.initial_root());
    let err = client
        .updater()
        .refresh()
        .expect_err("old targets, version only");
    assert!(
        matches!(
            refused(&err, "targets"),
            TrustError::VersionMismatch {
                expected: 3,
                found: 2,
                ..
            }
        ),
        "{err}"
    );
    evil.clear("/metadata/3.targets.json");
    evil.set(
        "/metadata/3.snapshot.json",
        Misbehaviour::Bytes(snapshot_v2),
    );
    let client = Client::new(&https, &repo.initial_root());
    let err = client
        .updater()
        .refresh()
        .expect_err("old snapshot, version only");
    assert!(
        matches!(
            refused(&err, "snapshot"),
            TrustError::VersionMismatch {
                expected: 3,
                found: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(!stored_names(&client).contains(&"snapshot.json".to_string()));
    assert!(disk(&client).targets.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Rollback: older, once valid, files.

#[test]
fn rollback_to_older_metadata_is_refused() {
    let mut repo = TestRepo::new();
    repo.delegate("targets", "dev", &["dev/*"], false);
    repo.add_target("dev", "dev/tool.bin", b"tool v1");
    repo.publish();
    let timestamp_v2 = repo.read_raw("metadata/timestamp.json");
    let targets_v2 = repo.read_raw("metadata/2.targets.json");
    repo.add_target("targets", "a.bin", b"a");
    repo.publish();
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    fetch(&mut client.updater(), &client, "dev/tool.bin").expect("honest v3");
    let before = disk(&client);

    // The mirror goes back to the previous release.
    evil.set(
        "/metadata/timestamp.json",
        Misbehaviour::Bytes(timestamp_v2),
    );
    let err = client.updater().refresh().expect_err("old timestamp");
    assert!(
        matches!(
            refused(&err, "timestamp"),
            TrustError::Rollback {
                trusted: 3,
                new: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(disk(&client), before);
    evil.clear("/metadata/timestamp.json");

    // With the snapshot key: a newer snapshot listing the older targets.json, and one that
    // drops dev.json altogether.
    let honest = repo.snapshot.clone();
    repo.snapshot
        .signed
        .meta
        .insert("targets.json".into(), MetaFile::with_bytes(2, &targets_v2));
    repo.snapshot.signed.version += 1;
    repo.timestamp.signed.version += 1;
    repo.write_snapshot_and_timestamp();
    let err = client.updater().refresh().expect_err("targets rolled back");
    assert!(
        matches!(
            refused(&err, "snapshot"),
            TrustError::RoleRollbackInSnapshot {
                trusted: 3,
                new: 2,
                ..
            }
        ),
        "{err}"
    );
    repo.snapshot = honest;
    repo.snapshot.signed.meta.remove("dev.json");
    repo.snapshot.signed.version += 2;
    repo.timestamp.signed.version += 1;
    repo.write_snapshot_and_timestamp();
    let err = client.updater().refresh().expect_err("dev dropped");
    assert!(
        matches!(
            refused(&err, "snapshot"),
            TrustError::RoleDroppedFromSnapshot { file } if file == "dev.json"
        ),
        "{err}"
    );
    let now = disk(&client);
    assert_eq!(now.targets, before.targets);
    for name in ["snapshot.json", "targets.json", "dev.json", "root.json"] {
        assert_eq!(now.metadata[name], before.metadata[name], "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Slow retrieval: the mirror sends slowly or not at all. The client runs with a short read
// timeout and a minimum rate; the tests check which defence fired, never how long it took.

#[test]
fn slow_retrieval_of_metadata_and_targets_is_cut_off() {
    let mut repo = TestRepo::new();
    let data = vec![b'a'; 4096];
    let file = repo.add_target("targets", "big.bin", &data);
    repo.publish();
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let impatient = |read_timeout_ms: u64| {
        let read_timeout = std::time::Duration::from_millis(read_timeout_ms);
        Updater::new(UpdaterConfig {
            fetcher: impatient_fetcher(&https, read_timeout),
            ..client.config.clone()
        })
        .expect("updater")
    };
    // Drip-fed: a byte every 20 ms never trips a 30 s read timeout, only the minimum rate.
    const DRIP: u64 = 30_000;
    // Stalled: nothing ever arrives, only the read timeout can end it.
    const STALL: u64 = 300;
    let before = disk(&client);

    // A timestamp dripped one byte at a time, forever: below the minimum rate.
    let drip = Misbehaviour::Drip {
        bytes: None,
        interval: std::time::Duration::from_millis(20),
    };
    evil.set("/metadata/timestamp.json", drip);
    let err = impatient(DRIP).refresh().expect_err("dripped timestamp");
    assert!(
        matches!(fetch_failure(&err, "timestamp"), FetchError::TooSlow { .. }),
        "{err}"
    );
    assert_says(&err, &["timestamp", "/metadata/timestamp.json", "too slow"]);
    evil.clear("/metadata/timestamp.json");

    // A snapshot whose head arrives but whose body never does.
    evil.set("/metadata/2.snapshot.json", Misbehaviour::StallBody);
    let err = impatient(STALL).refresh().expect_err("stalled snapshot");
    assert!(
        matches!(fetch_failure(&err, "snapshot"), FetchError::Timeout { .. }),
        "{err}"
    );
    evil.clear("/metadata/2.snapshot.json");
    // The next root, never answered at all: not taken for "no new root".
    evil.set("/metadata/2.root.json", Misbehaviour::StallHead);
    let err = impatient(STALL).refresh().expect_err("stalled root");
    assert!(
        matches!(fetch_failure(&err, "root"), FetchError::Timeout { .. }),
        "{err}"
    );
    evil.clear("/metadata/2.root.json");
    assert_eq!(
        disk(&client).metadata["root.json"],
        before.metadata["root.json"]
    );
    assert!(!stored_names(&client).contains(&"snapshot.json".to_string()));

    // The real target content, dripped: the transfer is abandoned and nothing is installed.
    let url_path = hashed_target_path(&file, "big.bin");
    evil.set(
        &url_path,
        Misbehaviour::Drip {
            bytes: Some(data),
            interval: std::time::Duration::from_millis(20),
        },
    );
    let err = fetch(&mut impatient(DRIP), &client, "big.bin").expect_err("dripped target");
    assert!(
        matches!(
            target_failure(&err),
            TargetFileError::Fetch(FetchError::TooSlow { .. })
        ),
        "{err}"
    );
    assert_says(&err, &["big.bin", &url_path]);
    // Nothing is installed; what arrived waits in a partial file for the next run to go on
    // from (checked as a whole when complete).
    let left = disk(&client).targets;
    assert!(
        left.keys()
            .all(|n| n.starts_with(".big.bin.") && n.ends_with(".partial")),
        "{left:?}"
    );
    let received: &Vec<u8> = left.values().next().expect("a partial file");
    assert!(!received.is_empty() && received.len() < 4096);
    assert!(received.iter().all(|b| *b == b'a'));
    evil.clear(&url_path);
    fetch(&mut impatient(DRIP), &client, "big.bin").expect("resumed download");
    let left = disk(&client).targets;
    assert_eq!(left.keys().collect::<Vec<_>>(), ["big.bin"]);
}

// ---------------------------------------------------------------------------------------------
// Compromise of keys below the threshold.

#[test]
fn keys_compromised_below_the_threshold_sign_nothing() {
    let mut repo = TestRepo::new();
    // Every role gets a second key and threshold 2; root gets 2 of 3.
    let mut extra = Vec::new();
    for role in ["root", "root", "timestamp", "snapshot", "targets"] {
        let key = ed25519();
        repo.root.signed.add_key(role, key.public_key().clone());
        extra.push((role, key));
    }
    for role in ["root", "timestamp", "snapshot", "targets"] {
        repo.root
            .signed
            .roles
            .get_mut(role)
            .expect("role")
            .threshold = 2;
    }
    for (role, key) in extra {
        match role {
            "root" => repo.root_keys.push(key),
            "timestamp" => repo.timestamp_keys.push(key),
            "snapshot" => repo.snapshot_keys.push(key),
            _ => repo.targets_keys.push(key),
        }
    }
    repo.write_root();
    repo.delegate("targets", "dev", &["dev/*"], false);
    let dev_second = ed25519();
    {
        let targets = &mut repo.targets.signed;
        let d = targets.delegations.as_mut().expect("delegations");
        let id = dev_second.public_key().key_id();
        d.keys.insert(id.clone(), dev_second.public_key().clone());
        let role = d.roles.as_mut().expect("roles").get_mut(0).expect("dev");
        role.keyids.push(id);
        role.threshold = 2;
    }
    repo.delegated_keys
        .get_mut("dev")
        .expect("dev keys")
        .push(dev_second);
    repo.add_target("dev", "dev/tool.bin", b"tool");
    repo.publish();
    let v1 = repo.initial_root();
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &v1);
    fetch(&mut client.updater(), &client, "dev/tool.bin").expect("honest 2-of-n");
    let before = disk(&client);
    let below = |err: &UpdateError, role: &str| {
        assert!(
            matches!(refused(err, role), TrustError::Signatures { source, .. } if source.valid == 1 && source.threshold == 2),
            "{role}: {err}"
        );
    };

    // One root key: a new root handing everything to the attacker.
    let attacker = ed25519();
    let mut root = repo.root.clone();
    root.signed.version = 2;
    for role in ["root", "timestamp", "snapshot", "targets"] {
        let ids = root.signed.roles[role].keyids.clone();
        for id in ids {
            root.signed.remove_key(role, &id);
        }
        root.signed.add_key(role, attacker.public_key().clone());
        root.signed.roles.get_mut(role).expect("role").threshold = 1;
    }
    let forged = signed_bytes(&root, &[&repo.root_keys[0], &attacker]);
    evil.set("/metadata/2.root.json", Misbehaviour::Bytes(forged));
    let err = client.updater().refresh().expect_err("1 of 3 root keys");
    below(&err, "root");
    assert_says(&err, &["trusted root v1", "/metadata/2.root.json"]);
    evil.clear("/metadata/2.root.json");

    // One timestamp key.
    let mut ts = repo.timestamp.clone();
    ts.signed.version += 1;
    let one = signed_bytes(&ts, &[&repo.timestamp_keys[0]]);
    evil.set("/metadata/timestamp.json", Misbehaviour::Bytes(one));
    let err = client
        .updater()
        .refresh()
        .expect_err("1 of 2 timestamp keys");
    below(&err, "timestamp");
    evil.clear("/metadata/timestamp.json");
    assert_eq!(disk(&client), before);

    // One snapshot key, one targets key, one dev key (each published by otherwise honest
    // timestamp and snapshot keys, so that only the threshold stands in the way).
    for role in ["snapshot", "targets", "dev"] {
        let mut repo_keys = match role {
            "snapshot" => std::mem::take(&mut repo.snapshot_keys),
            "targets" => std::mem::take(&mut repo.targets_keys),
            _ => repo.delegated_keys.remove("dev").expect("dev keys"),
        };
        let spare = repo_keys.pop().expect("second key");
        match role {
            "snapshot" => repo.snapshot_keys = repo_keys,
            "targets" => repo.targets_keys = repo_keys,
            _ => {
                repo.delegated_keys.insert("dev".into(), repo_keys);
            }
        }
        repo.add_target(
            if role == "dev" { "dev" } else { "targets" },
            if role == "dev" {
                "dev/new.bin"
            } else {
                "new.bin"
            },
            role.as_bytes(),
        );
        repo.publish();
        let c = Client::new(&https, &v1);
        let err = fetch(&mut c.updater(), &c, "dev/tool.bin").expect_err(role);
        below(&err, role);
        assert!(!stored_names(&c).contains(&format!("{role}.json")));
        assert!(disk(&c).targets.is_empty());
        // Put the key back and publish the role with both keys again for the next round.
        match role {
            "snapshot" => repo.snapshot_keys.push(spare),
            "targets" => repo.targets_keys.push(spare),
            _ => repo.delegated_keys.get_mut("dev").expect("dev").push(spare),
        }
        repo.add_target(
            if role == "dev" { "dev" } else { "targets" },
            if role == "dev" {
                "dev/again.bin"
            } else {
                "again.bin"
            },
            role.as_bytes(),
        );
        repo.publish();
    }
}

// ---------------------------------------------------------------------------------------------
// Wrong software installation: a genuine, signed file that is not the one asked for.

#[test]
fn wrong_software_installation_is_refused() {
    let mut repo = TestRepo::new();
    repo.delegate("targets", "app-team", &["app/*"], false);
    repo.delegate("targets", "web-team", &["web/*"], false);
    let v1 = repo.add_target("app-team", "app/v1.bin", b"app version 1");
    let v2 = repo.add_target("app-team", "app/v2.bin", b"app version 2");
    repo.add_target("web-team", "web/site.tgz", b"site");
    // web-team lists an app build it has no authority over.
    repo.add_target("web-team", "app/v3.bin", b"web-team's app build");
    repo.publish();
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let mut updater = client.updater();

    // Asked for v2, the mirror sends genuine v1 (same length).
    let url_v2 = hashed_target_path(&v2, "app/v2.bin");
    evil.set(&url_v2, Misbehaviour::Bytes(b"app version 1".to_vec()));
    let err = fetch(&mut updater, &client, "app/v2.bin").expect_err("v1 for v2");
    assert!(
        matches!(target_failure(&err), TargetFileError::Hash { .. }),
        "{err}"
    );
    assert_says(&err, &["app/v2.bin", &url_v2, "hash mismatch"]);
    assert!(disk(&client).targets.is_empty());

    // A role signing for paths outside its delegation is not believed.
    let err = fetch(&mut updater, &client, "app/v3.bin").expect_err("web-team's app");
    assert!(matches!(err, UpdateError::TargetNotFound { .. }), "{err}");
    assert!(!evil.requests().iter().any(|p| p.ends_with(".v3.bin")));

    // The genuine v1 is still installable under its own name.
    assert!(fetch(&mut updater, &client, "app/v1.bin").expect("v1"));
    let dest = Updater::local_target_path(&client.target_dir(), "app/v1.bin");
    assert_eq!(std::fs::read(dest).expect("read").len() as u64, v1.length);
}
