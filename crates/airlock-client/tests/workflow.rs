//! The parts of the client workflow the conformance suite does not cover (non-consistent
//! snapshots, path_hash_prefixes, the delegation cap, role names in URLs and files) and the
//! driver's handling of stored metadata (rollback baselines, fast-forward recovery), each against
//! a real HTTPS server on 127.0.0.1.

mod common;

use airlock_client::{Limits, UpdateError, Updater};
use airlock_core::tuf::{DelegatedRole, Metadata, Timestamp, TrustError};
use common::{Client, HttpsRepo, TestRepo};

fn stored_timestamp_version(client: &Client) -> u64 {
    Metadata::<Timestamp>::from_bytes(&client.stored()["timestamp.json"])
        .expect("stored timestamp parses")
        .signed
        .version
}

#[test]
fn repository_without_consistent_snapshots() {
    let mut repo = TestRepo::with_consistent_snapshot(false);
    repo.add_target("targets", "dir/a.txt", b"plain names");
    repo.publish();
    // Only plain names exist on the server (besides N.root.json, always versioned).
    assert!(repo.path().join("metadata/snapshot.json").exists());
    assert!(!repo.path().join("metadata/2.snapshot.json").exists());
    assert!(repo.path().join("targets/dir/a.txt").exists());
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let mut updater = client.updater();
    let info = updater
        .get_target_info("dir/a.txt")
        .expect("lookup")
        .expect("listed");
    assert_eq!(
        updater.target_url(&info).expect("url"),
        format!("{}dir/a.txt", https.targets_url())
    );
    let dest = Updater::local_target_path(&client.target_dir(), "dir/a.txt");
    updater.download_target(&info, &dest).expect("download");
    assert_eq!(std::fs::read(&dest).expect("read"), b"plain names");

    // A new release is picked up from the same plain names.
    repo.add_target("targets", "dir/b.txt", b"second");
    repo.publish();
    let summary = client.updater().refresh().expect("refresh");
    assert_eq!(summary.snapshot_version, 3);
    assert_eq!(summary.targets_version, 3);
    assert_eq!(
        client.stored()["snapshot.json"],
        repo.read_raw("metadata/snapshot.json")
    );
}

#[test]
fn timestamp_rollback_is_refused_and_the_stored_one_kept() {
    let mut repo = TestRepo::new();
    repo.publish();
    let old_timestamp = repo.read_raw("metadata/timestamp.json");
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    client.updater().refresh().expect("refresh");
    let current = client.stored()["timestamp.json"].clone();
    assert_eq!(stored_timestamp_version(&client), 3);

    // A mirror replays the older (validly signed, unexpired) timestamp.
    repo.write_raw("metadata/timestamp.json", &old_timestamp);
    let err = client.updater().refresh().expect_err("rollback");
    assert!(
        matches!(
            &err,
            UpdateError::Refused { role, source, .. }
                if role == "timestamp" && matches!(**source, TrustError::Rollback { .. })
        ),
        "{err}"
    );
    assert!(
        airlock_core::error_chain(&err).contains("timestamp.json"),
        "names the URL: {err}"
    );
    assert_eq!(client.stored()["timestamp.json"], current);
}

#[test]
fn same_timestamp_version_keeps_the_stored_bytes() {
    let mut repo = TestRepo::new();
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    client.updater().refresh().expect("refresh");
    let stored = client.stored()["timestamp.json"].clone();
    // Same version, different bytes (a changed unrecognised field, re-signed).
    repo.timestamp
        .signed
        .unrecognized
        .insert("x-note".into(), serde_json::json!("re-signed"));
    repo.write_timestamp();
    assert_ne!(repo.read_raw("metadata/timestamp.json"), stored);
    client
        .updater()
        .refresh()
        .expect("equal version is not an error");
    assert_eq!(client.stored()["timestamp.json"], stored);
}

#[test]
fn fast_forward_recovery_after_timestamp_key_rotation() {
    let mut repo = TestRepo::new();
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    client.updater().refresh().expect("refresh");

    // An attacker with the timestamp key pushes the version far ahead.
    repo.timestamp.signed.version = 1000;
    repo.write_timestamp();
    client
        .updater()
        .refresh()
        .expect("client accepts it (valid key)");
    assert_eq!(stored_timestamp_version(&client), 1000);

    // The repository rotates the timestamp key and starts again at version 2.
    repo.rotate_timestamp_key();
    repo.timestamp.signed.version = 2;
    repo.write_timestamp();
    let summary = client.updater().refresh().expect("recovers");
    assert_eq!(summary.root_version, 2);
    assert_eq!(summary.timestamp_version, 2);
    assert_eq!(stored_timestamp_version(&client), 2);
    assert_eq!(
        client.stored()["timestamp.json"],
        repo.read_raw("metadata/timestamp.json")
    );

    // Without the rotation the same rollback is refused.
    repo.timestamp.signed.version = 1;
    repo.write_timestamp();
    let err = client.updater().refresh().expect_err("timestamp rollback");
    assert!(
        matches!(
            &err,
            UpdateError::Refused { role, source, .. }
                if role == "timestamp"
                    && matches!(**source, TrustError::Rollback { trusted: 2, new: 1, .. })
        ),
        "{err}"
    );
}

#[test]
fn path_hash_prefix_delegation_loads_only_the_matching_role() {
    let mut repo = TestRepo::new();
    let target = "pkg/tool.tar.gz";
    let hash = airlock_core::tuf::path_hash(target);
    let first = &hash[..1];
    let other = if first == "0" { "1" } else { "0" };
    repo.delegate_role(
        "targets",
        DelegatedRole::with_hash_prefixes("low", Vec::new(), 1, vec![other.to_string()]),
    );
    repo.delegate_role(
        "targets",
        DelegatedRole::with_hash_prefixes("high", Vec::new(), 1, vec![first.to_string()]),
    );
    repo.add_target("high", target, b"binned");
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let dest = Updater::local_target_path(&client.target_dir(), target);
    let (info, _) = client
        .updater()
        .fetch_target(target, &dest, &mut |_, _| {})
        .expect("download");
    assert_eq!(info.role, "high");
    let requests = https.requests();
    assert!(
        requests.contains(&"/metadata/1.high.json".to_string()),
        "{requests:?}"
    );
    assert!(!requests.iter().any(|r| r.contains("low")), "{requests:?}");
    let stored = client.stored();
    assert!(stored.contains_key("high.json"));
    assert!(
        !stored.contains_key("low.json"),
        "a non-matching role is not fetched"
    );
}

#[test]
fn terminating_delegation_ends_the_search() {
    let mut repo = TestRepo::new();
    repo.delegate("targets", "first", &["*"], true);
    repo.delegate("targets", "second", &["*"], false);
    repo.add_target("second", "x.txt", b"unreachable");
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let mut updater = client.updater();
    assert!(updater.get_target_info("x.txt").expect("lookup").is_none());
    assert!(!client.stored().contains_key("second.json"));
}

#[test]
fn delegation_walk_is_capped() {
    // A chain targets -> r0 -> r1 -> ... -> r33; the target is in r33, the 34th role.
    let mut repo = TestRepo::new();
    let mut parent = "targets".to_string();
    for i in 0..34 {
        let name = format!("r{i}");
        repo.delegate(&parent, &name, &["*"], false);
        parent = name;
    }
    repo.add_target(&parent, "deep.txt", b"deep");
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    assert!(
        client
            .updater()
            .get_target_info("deep.txt")
            .expect("lookup")
            .is_none(),
        "more than 32 delegated roles are never visited"
    );
    assert_eq!(
        client
            .stored()
            .keys()
            .filter(|k| k.starts_with('r') && k != &"root.json")
            .count(),
        32
    );
    let limits = Limits {
        max_delegations: 40,
        ..Limits::default()
    };
    let info = client
        .updater_with_limits(limits)
        .get_target_info("deep.txt")
        .expect("lookup")
        .expect("found with a higher cap");
    assert_eq!(info.role, "r33");
}

#[test]
fn role_names_are_percent_encoded_in_urls_and_file_names() {
    let mut repo = TestRepo::new();
    let role = "team a/ü?";
    repo.delegate("targets", role, &["*"], false);
    repo.add_target(role, "t.txt", b"odd role");
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let dest = Updater::local_target_path(&client.target_dir(), "t.txt");
    let (info, _) = client
        .updater()
        .fetch_target("t.txt", &dest, &mut |_, _| {})
        .expect("download");
    assert_eq!(info.role, role);
    let stored = client.stored();
    assert!(
        stored.contains_key("team%20a%2F%C3%BC%3F.json"),
        "{:?}",
        stored.keys()
    );
    // Nothing was created outside the metadata directory.
    assert!(!client.metadata_dir().join("team a").exists());
}

#[test]
fn listing_reports_roles_it_did_not_read() {
    let mut repo = TestRepo::new();
    repo.add_target("targets", "top.txt", b"top");
    for i in 0..5 {
        let role = format!("team{i}");
        repo.delegate("targets", &role, &[&format!("team{i}/*")], false);
        repo.add_target(&role, &format!("team{i}/file.txt"), b"file");
    }
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let mut updater = client.updater();
    let partial = updater.list_targets_within(3).expect("list");
    assert_eq!(partial.roles_visited, 3);
    assert_eq!(partial.roles_not_visited, 3);
    let paths: Vec<&str> = partial.targets.iter().map(|t| t.path.as_str()).collect();
    assert_eq!(paths, vec!["team0/file.txt", "team1/file.txt", "top.txt"]);
    let full = updater.list_targets_within(100).expect("list");
    assert_eq!(full.roles_not_visited, 0);
    assert_eq!(full.targets.len(), 6);
    assert!(
        full.targets
            .iter()
            .all(|t| t.role == "targets" || t.path.starts_with(&t.role))
    );
}

#[test]
fn target_published_under_only_its_second_hash_is_found() {
    use sha2::{Digest, Sha512};
    let mut repo = TestRepo::new();
    let data = b"two hashes".to_vec();
    let mut file = airlock_core::tuf::TargetFile::from_bytes(&data);
    let sha512 = hex::encode(Sha512::digest(&data));
    file.hashes.insert("sha512".into(), sha512.clone());
    repo.add_target_file("targets", "d/two.bin", file.clone(), &data);
    repo.publish();
    // The server only has the sha512 name.
    std::fs::remove_file(
        repo.targets_dir()
            .join(format!("d/{}.two.bin", file.hashes["sha256"])),
    )
    .expect("remove sha256 name");
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let dest = Updater::local_target_path(&client.target_dir(), "d/two.bin");
    client
        .updater()
        .fetch_target("d/two.bin", &dest, &mut |_, _| {})
        .expect("found under the sha512 name");
    assert_eq!(std::fs::read(&dest).expect("read"), data);
    let requests = https.requests();
    let tail = &requests[requests.len() - 2..];
    assert!(tail[0].contains(&file.hashes["sha256"]), "{tail:?}");
    assert!(tail[1].contains(&sha512), "{tail:?}");
}

// ---------------------------------------------------------------------------------------------
// Warm refreshes: a refresh that finds nothing changed leaves the stored targets.json unread
// until a lookup needs it; the lookup verifies it exactly as a refresh did.

/// The attacker's edit of the client's stored targets.json, keeping its length: `app.bin`'s
/// hash swapped for that of `evil` (bytes of the same length, served beside the real file),
/// the old signatures kept.
fn tamper_stored_targets(client: &Client, repo: &TestRepo, evil: &[u8]) {
    let path = client.metadata_dir().join("targets.json");
    let stored = std::fs::read_to_string(&path).expect("stored targets");
    let genuine = airlock_core::tuf::TargetFile::from_bytes(b"genuine");
    let attacker = airlock_core::tuf::TargetFile::from_bytes(evil);
    assert_eq!(genuine.length, attacker.length);
    let tampered = stored.replace(&genuine.hashes["sha256"], &attacker.hashes["sha256"]);
    assert_ne!(tampered, stored);
    assert_eq!(tampered.len(), stored.len());
    std::fs::write(&path, tampered).expect("tamper");
    repo.write_raw(
        &format!("targets/{}.app.bin", attacker.hashes["sha256"]),
        evil,
    );
}

/// Publish `targets.json` in the snapshot by version alone (no length or hashes), so that only
/// the signatures can tell the stored copy from another.
fn list_targets_by_version_only(repo: &mut TestRepo) {
    let version = repo.targets.signed.version;
    repo.snapshot.signed.meta.insert(
        "targets.json".into(),
        airlock_core::tuf::MetaFile::new(version),
    );
    repo.snapshot.signed.version += 1;
    repo.timestamp.signed.version += 1;
    repo.write_snapshot_and_timestamp();
}

#[test]
fn a_warm_refresh_that_finds_nothing_changed_reads_targets_at_the_first_lookup() {
    let mut repo = TestRepo::new();
    repo.add_target("targets", "app.bin", b"genuine");
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    client.updater().refresh().expect("cold refresh");

    https.clear_requests();
    let mut updater = client.updater();
    let summary = updater.refresh().expect("warm refresh");
    assert_eq!(summary.targets_version, 2, "the version the snapshot lists");
    assert_eq!(
        https.requests(),
        vec!["/metadata/2.root.json", "/metadata/timestamp.json"]
    );
    assert!(
        updater.trusted().targets().is_none(),
        "targets.json is not read by a refresh that found nothing changed"
    );
    let info = updater
        .get_target_info("app.bin")
        .expect("lookup")
        .expect("listed");
    assert_eq!(info.file.length, 7);
    assert_eq!(
        updater.trusted().targets().map(|t| t.signed.version),
        Some(2)
    );
    // Read from the store, not downloaded again, and the lookup did not refresh again.
    assert_eq!(https.requests().len(), 2, "{:?}", https.requests());
}

#[test]
fn a_tampered_stored_targets_is_refused_at_the_lookup_after_a_warm_refresh() {
    // With the snapshot listing hashes (checked first) and listing only the version (then the
    // signatures refuse the edited file).
    for hashes_listed in [true, false] {
        let mut repo = TestRepo::new();
        repo.add_target("targets", "app.bin", b"genuine");
        repo.publish();
        if !hashes_listed {
            list_targets_by_version_only(&mut repo);
        }
        let https = HttpsRepo::serve(repo.path());
        let client = Client::new(&https, &repo.initial_root());
        let dest = Updater::local_target_path(&client.target_dir(), "app.bin");
        client
            .updater()
            .fetch_target("app.bin", &dest, &mut |_, _| {})
            .expect("cold run");
        std::fs::remove_file(&dest).expect("remove the installed copy");
        let genuine = client.stored()["targets.json"].clone();
        tamper_stored_targets(&client, &repo, b"EVIL!!!");

        // The repository cannot serve targets.json now: only the stored copy is at hand.
        let remote = repo.metadata_dir().join("2.targets.json");
        let kept = std::fs::read(&remote).expect("remote targets");
        std::fs::remove_file(&remote).expect("remove remote targets");
        https.clear_requests();
        let mut updater = client.updater();
        updater
            .refresh()
            .expect("the warm refresh leaves targets.json to the lookup");
        let found = updater.get_target_info("app.bin");
        assert!(found.is_err(), "{hashes_listed}: {found:?}");
        let mut updater = client.updater();
        let fetched = updater.fetch_target("app.bin", &dest, &mut |_, _| {});
        assert!(fetched.is_err(), "{hashes_listed}: {fetched:?}");
        assert!(!dest.exists(), "{hashes_listed}");
        assert!(
            https.requests().iter().all(|r| !r.starts_with("/targets/")),
            "{hashes_listed}: nothing downloaded: {:?}",
            https.requests()
        );

        // With the repository back, the lookup fetches the genuine targets.json instead.
        std::fs::write(&remote, &kept).expect("restore");
        let mut updater = client.updater();
        updater.refresh().expect("warm refresh");
        updater
            .fetch_target("app.bin", &dest, &mut |_, _| {})
            .expect("genuine download");
        assert_eq!(std::fs::read(&dest).expect("read"), b"genuine");
        assert_eq!(client.stored()["targets.json"], genuine, "{hashes_listed}");
    }
}

#[test]
fn a_warm_refresh_after_a_new_timestamp_verifies_targets_as_before() {
    let mut repo = TestRepo::new();
    repo.add_target("targets", "app.bin", b"genuine");
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    client.updater().refresh().expect("cold refresh");
    let genuine = client.stored()["targets.json"].clone();

    // A new timestamp and snapshot, targets unchanged; the stored copy tampered with.
    repo.publish();
    tamper_stored_targets(&client, &repo, b"EVIL!!!");
    let remote = repo.metadata_dir().join("2.targets.json");
    let kept = std::fs::read(&remote).expect("remote targets");
    std::fs::remove_file(&remote).expect("remove remote targets");
    let err = client.updater().refresh().expect_err("nothing verifies");
    assert!(airlock_core::error_chain(&err).contains("targets"), "{err}");

    // That refresh stored the new timestamp and snapshot. The next release comes with the
    // repository's targets.json back: the refresh verifies targets itself again.
    std::fs::write(&remote, &kept).expect("restore");
    repo.publish();
    let mut updater = client.updater();
    let summary = updater.refresh().expect("refresh");
    assert_eq!(summary.snapshot_version, 4);
    assert_eq!(
        updater.trusted().targets().map(|t| t.signed.version),
        Some(2),
        "verified during the refresh"
    );
    assert_eq!(client.stored()["targets.json"], genuine);
}
