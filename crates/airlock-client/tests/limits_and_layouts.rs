//! What the public TUF conformance suite does not cover, end to end over HTTPS: repositories
//! without consistent snapshots, TAP 15 succinct hash bins, `path_hash_prefixes` delegations,
//! the cap of 256 root rotations per update, the cap of 32 delegated roles per lookup, and each
//! metadata size cap (defaults and configured).

mod common;
mod evil;

use airlock_client::{Limits, UpdateError, Updater};
use airlock_core::tuf::{
    DEFAULT_MAX_ROOT_BYTES, DEFAULT_MAX_SNAPSHOT_BYTES, DEFAULT_MAX_TARGETS_BYTES,
    DEFAULT_MAX_TIMESTAMP_BYTES, TrustError, path_hash,
};
use airlock_fetch::FetchError;
use common::{Client, TestRepo};
use evil::{
    Misbehaviour, assert_says, delegate_bins, disk, make_non_consistent, publish_plain_names,
    serve, stored_names, version_only_snapshot, version_only_timestamp, write_roles,
};

fn fetch(updater: &mut Updater, client: &Client, path: &str) -> Result<bool, UpdateError> {
    let dest = Updater::local_target_path(&client.target_dir(), path);
    updater
        .fetch_target(path, &dest, &mut |_, _| {})
        .map(|(_, downloaded)| downloaded)
}

fn read_target(client: &Client, path: &str) -> Vec<u8> {
    std::fs::read(Updater::local_target_path(&client.target_dir(), path)).expect("read target")
}

#[track_caller]
fn too_large(err: &UpdateError, expected_role: &str) -> u64 {
    match err {
        UpdateError::Fetch {
            role,
            source: FetchError::TooLarge { max_len, .. },
        } if role == expected_role => *max_len,
        other => panic!("expected {expected_role} to be cut off as too large, got: {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// consistent_snapshot: false

#[test]
fn non_consistent_snapshot_repository_is_read_by_plain_names() {
    let mut repo = TestRepo::new();
    make_non_consistent(&mut repo);
    repo.delegate("targets", "dev", &["dev/*"], false);
    repo.add_target("targets", "app.bin", b"app v1");
    repo.add_target("dev", "dev/tool.bin", b"tool");
    repo.publish();
    publish_plain_names(&repo);
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());

    let mut updater = client.updater();
    assert!(fetch(&mut updater, &client, "app.bin").expect("app"));
    assert!(fetch(&mut updater, &client, "dev/tool.bin").expect("tool"));
    assert_eq!(read_target(&client, "app.bin"), b"app v1");
    assert_eq!(read_target(&client, "dev/tool.bin"), b"tool");
    // Root stays versioned; everything else is asked for by its plain name.
    assert_eq!(
        evil.requests(),
        vec![
            "/metadata/2.root.json",
            "/metadata/timestamp.json",
            "/metadata/snapshot.json",
            "/metadata/targets.json",
            "/targets/app.bin",
            "/metadata/dev.json",
            "/targets/dev/tool.bin",
        ]
    );
    assert_eq!(
        client.stored()["snapshot.json"],
        repo.read_raw("metadata/snapshot.json")
    );
    assert_eq!(
        client.stored()["dev.json"],
        repo.read_raw("metadata/dev.json")
    );

    // The next release replaces the files in place.
    let targets_v2 = repo.read_raw("metadata/targets.json");
    repo.add_target("targets", "app.bin", b"app v2");
    repo.publish();
    publish_plain_names(&repo);
    assert!(fetch(&mut client.updater(), &client, "app.bin").expect("app v2"));
    assert_eq!(read_target(&client, "app.bin"), b"app v2");
    let before = disk(&client);

    // A stale mirror still has the old targets.json under the plain name: with the snapshot's
    // hashes it is refused on content, with a version-only snapshot on its version.
    repo.add_target("targets", "app.bin", b"app v3");
    repo.publish();
    publish_plain_names(&repo);
    evil.set(
        "/metadata/targets.json",
        Misbehaviour::Bytes(targets_v2.clone()),
    );
    let err = fetch(&mut client.updater(), &client, "app.bin").expect_err("stale targets.json");
    let on_content = matches!(
        &err,
        UpdateError::Refused { role, source, .. }
            if role == "targets" && matches!(**source, TrustError::Content { .. })
    );
    let on_length = matches!(
        &err,
        UpdateError::Fetch { role, source: FetchError::TooLarge { .. } } if role == "targets"
    );
    assert!(on_content || on_length, "{err}");
    assert_says(&err, &["targets", "/metadata/targets.json"]);
    assert_eq!(disk(&client).targets, before.targets);
    assert_eq!(
        client.stored()["targets.json"],
        before.metadata["targets.json"]
    );

    version_only_snapshot(&mut repo);
    publish_plain_names(&repo);
    let client = Client::new(&https, &repo.initial_root());
    let err = fetch(&mut client.updater(), &client, "app.bin").expect_err("stale targets.json");
    assert!(
        matches!(
            &err,
            UpdateError::Refused { role, source, .. }
                if role == "targets"
                    && matches!(**source, TrustError::VersionMismatch { expected: 4, found: 2, .. })
        ),
        "{err}"
    );
    assert!(!stored_names(&client).contains(&"targets.json".to_string()));
    assert!(disk(&client).targets.is_empty());
}

// ---------------------------------------------------------------------------------------------
// TAP 15 succinct hash bins

#[test]
fn succinct_hash_bins_fetch_only_the_bin_that_holds_the_target() {
    let mut repo = TestRepo::new();
    let bins = delegate_bins(&mut repo, "targets", 8, "bins");
    assert_eq!(bins.bin_name(0), "bins-00");
    let paths = ["a.txt", "dir/b.txt", "c/d/e.bin"];
    for p in paths {
        repo.add_target(&bins.bin_for_target(p), p, p.as_bytes());
    }
    // One bin lists a path that belongs to another bin.
    let home = bins.bin_index("stray.bin");
    let wrong_bin = bins.bin_name((home + 1) % bins.number_of_bins());
    repo.add_target(&wrong_bin, "stray.bin", b"stray");
    let roles: Vec<String> = std::iter::once("targets".to_string())
        .chain(bins.bin_names())
        .collect();
    write_roles(&mut repo, roles.iter().map(String::as_str));
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let mut updater = client.updater();
    let bin_requests = |evil: &evil::Evil| -> Vec<String> {
        evil.requests()
            .into_iter()
            .filter(|p| p.contains("bins-"))
            .collect()
    };

    for p in paths {
        evil.reset_log();
        assert!(fetch(&mut updater, &client, p).expect(p));
        assert_eq!(read_target(&client, p), p.as_bytes());
        let info = updater.get_target_info(p).expect("lookup").expect("found");
        assert_eq!(info.role, bins.bin_for_target(p));
        // Exactly the one bin, fetched once, of 256.
        assert_eq!(
            bin_requests(&evil),
            vec![format!("/metadata/1.{}.json", bins.bin_for_target(p))]
        );
    }
    evil.reset_log();
    let err = fetch(&mut updater, &client, "stray.bin").expect_err("in the wrong bin");
    assert!(matches!(err, UpdateError::TargetNotFound { .. }), "{err}");
    assert_eq!(
        bin_requests(&evil),
        vec![format!("/metadata/1.{}.json", bins.bin_name(home))]
    );
    assert!(!stored_names(&client).contains(&format!("{wrong_bin}.json")));
}

#[test]
fn succinct_hash_bins_list_every_target_in_its_own_bin() {
    let mut repo = TestRepo::new();
    let bins = delegate_bins(&mut repo, "targets", 3, "b");
    assert_eq!(bins.bin_names().count(), 8);
    let paths = ["one", "two/2", "three/3/3"];
    for p in paths {
        repo.add_target(&bins.bin_for_target(p), p, p.as_bytes());
    }
    let home = bins.bin_index("stray");
    repo.add_target(&bins.bin_name((home + 3) % 8), "stray", b"stray");
    let roles: Vec<String> = std::iter::once("targets".to_string())
        .chain(bins.bin_names())
        .collect();
    write_roles(&mut repo, roles.iter().map(String::as_str));
    let (https, _evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let mut listed: Vec<String> = client
        .updater()
        .list_targets()
        .expect("list")
        .into_iter()
        .map(|t| t.path)
        .collect();
    listed.sort();
    assert_eq!(listed, vec!["one", "three/3/3", "two/2"]);
}

// ---------------------------------------------------------------------------------------------
// path_hash_prefixes

/// A path whose SHA-256 (hex) starts with a character in `range`.
fn path_in(range: std::ops::RangeInclusive<char>, stem: &str) -> String {
    (0..)
        .map(|i| format!("{stem}-{i}.bin"))
        .find(|p| {
            path_hash(p)
                .chars()
                .next()
                .is_some_and(|c| range.contains(&c))
        })
        .expect("some path hashes into the range")
}

#[test]
fn path_hash_prefix_delegations_route_by_the_hash_of_the_path() {
    let mut repo = TestRepo::new();
    repo.delegate("targets", "lo", &[], false);
    repo.delegate("targets", "hi", &[], false);
    let lo_prefixes: Vec<String> = "01234567".chars().map(String::from).collect();
    let hi_prefixes: Vec<String> = "89abcdef".chars().map(String::from).collect();
    for role in repo
        .targets
        .signed
        .delegations
        .as_mut()
        .expect("delegations")
        .roles
        .as_mut()
        .expect("roles")
    {
        role.paths = None;
        role.path_hash_prefixes = Some(if role.name == "lo" {
            lo_prefixes.clone()
        } else {
            hi_prefixes.clone()
        });
    }
    let lo_path = path_in('0'..='7', "lo");
    let hi_path = path_in('8'..='f', "hi");
    let stray = path_in('0'..='7', "stray");
    repo.add_target("lo", &lo_path, b"lo");
    repo.add_target("hi", &hi_path, b"hi");
    // hi lists a path whose hash is in lo's range.
    repo.add_target("hi", &stray, b"stray");
    repo.publish();
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let mut updater = client.updater();

    assert!(fetch(&mut updater, &client, &lo_path).expect("lo path"));
    assert_eq!(evil.count("/metadata/1.lo.json"), 1);
    assert_eq!(
        evil.count("/metadata/1.hi.json"),
        0,
        "hi does not cover lo's hashes"
    );
    let err = fetch(&mut updater, &client, &stray).expect_err("listed by the wrong role");
    assert!(matches!(err, UpdateError::TargetNotFound { .. }), "{err}");
    assert_eq!(evil.count("/metadata/1.hi.json"), 0);
    assert!(fetch(&mut updater, &client, &hi_path).expect("hi path"));
    assert_eq!(evil.count("/metadata/1.hi.json"), 1);
    let info = updater
        .get_target_info(&hi_path)
        .expect("lookup")
        .expect("found");
    assert_eq!(info.role, "hi");
}

// ---------------------------------------------------------------------------------------------
// Root rotation cap: 256 per update

#[test]
fn at_most_256_root_rotations_per_update() {
    let mut repo = TestRepo::new();
    let v1 = repo.initial_root();
    for _ in 0..257 {
        repo.root.signed.version += 1;
        repo.write_root();
    }
    assert_eq!(repo.root.signed.version, 258);
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &v1);

    // A configured cap above the core's hard limit is treated as 256: the refresh stops at
    // the cap instead of failing at the 257th rotation.
    let limits = Limits {
        max_root_rotations: 300,
        ..Limits::default()
    };
    let summary = client
        .updater_with_limits(limits)
        .refresh()
        .expect("refresh");
    assert_eq!(summary.roots_rotated, 256);
    assert_eq!(summary.root_version, 257);
    assert_eq!(evil.count("/metadata/257.root.json"), 1);
    assert_eq!(evil.count("/metadata/258.root.json"), 0, "stops at the cap");
    assert_eq!(
        client.stored()["root.json"],
        repo.read_raw("metadata/257.root.json")
    );

    let summary = client.updater().refresh().expect("next update");
    assert_eq!(summary.roots_rotated, 1);
    assert_eq!(summary.root_version, 258);
    assert_eq!(evil.count("/metadata/259.root.json"), 1);
}

// ---------------------------------------------------------------------------------------------
// Delegation cap: 32 delegated roles per lookup

#[test]
fn at_most_32_delegated_roles_are_visited_per_lookup() {
    // Wide: targets delegates "*" to r01..r40 in order; t{N} is listed by rN.
    let mut repo = TestRepo::new();
    for i in 1..=40 {
        repo.delegate("targets", &format!("r{i:02}"), &["*"], false);
    }
    repo.add_target("r32", "t32", b"32");
    repo.add_target("r33", "t33", b"33");
    repo.publish();
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let mut updater = client.updater();
    assert!(fetch(&mut updater, &client, "t32").expect("the 32nd role is visited"));
    let err = fetch(&mut updater, &client, "t33").expect_err("the 33rd is not");
    assert!(matches!(err, UpdateError::TargetNotFound { .. }), "{err}");
    assert_eq!(evil.count("/metadata/1.r32.json"), 1);
    assert_eq!(evil.count("/metadata/1.r33.json"), 0);

    // Deep: targets -> d01 -> d02 -> ... -> d35.
    let mut repo = TestRepo::new();
    repo.delegate("targets", "d01", &["*"], false);
    for i in 2..=35 {
        repo.delegate(
            &format!("d{:02}", i - 1),
            &format!("d{i:02}"),
            &["*"],
            false,
        );
    }
    repo.add_target("d32", "c32", b"32");
    repo.add_target("d33", "c33", b"33");
    repo.publish();
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let mut updater = client.updater();
    assert!(fetch(&mut updater, &client, "c32").expect("32 levels down"));
    let err = fetch(&mut updater, &client, "c33").expect_err("33 levels down");
    assert!(matches!(err, UpdateError::TargetNotFound { .. }), "{err}");
    assert_eq!(evil.count("/metadata/1.d33.json"), 0);

    // The cap is configurable.
    let client = Client::new(&https, &repo.initial_root());
    let limits = Limits {
        max_delegations: 31,
        ..Limits::default()
    };
    let mut updater = client.updater_with_limits(limits);
    let err = fetch(&mut updater, &client, "c32").expect_err("cap 31");
    assert!(matches!(err, UpdateError::TargetNotFound { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Metadata size caps

/// A repository with a delegated role, a second root, and listings without lengths, so that
/// every metadata download is bounded only by the client's caps.
fn repo_without_lengths() -> TestRepo {
    let mut repo = TestRepo::new();
    repo.delegate("targets", "dev", &["dev/*"], false);
    repo.add_target("dev", "dev/tool.bin", b"tool");
    repo.publish();
    repo.root.signed.version = 2;
    repo.write_root();
    version_only_snapshot(&mut repo);
    version_only_timestamp(&mut repo);
    repo
}

#[test]
fn default_size_caps_bound_metadata_whose_length_is_not_listed() {
    let repo = repo_without_lengths();
    let (https, evil) = serve(repo.path());
    let cases = [
        ("/metadata/2.root.json", "root", DEFAULT_MAX_ROOT_BYTES),
        (
            "/metadata/timestamp.json",
            "timestamp",
            DEFAULT_MAX_TIMESTAMP_BYTES,
        ),
        (
            "/metadata/2.snapshot.json",
            "snapshot",
            DEFAULT_MAX_SNAPSHOT_BYTES,
        ),
        (
            "/metadata/2.targets.json",
            "targets",
            DEFAULT_MAX_TARGETS_BYTES,
        ),
        ("/metadata/1.dev.json", "dev", DEFAULT_MAX_TARGETS_BYTES),
    ];
    assert_eq!(
        (
            DEFAULT_MAX_ROOT_BYTES,
            DEFAULT_MAX_TIMESTAMP_BYTES,
            DEFAULT_MAX_SNAPSHOT_BYTES,
            DEFAULT_MAX_TARGETS_BYTES
        ),
        (512_000, 16_384, 2_000_000, 5_000_000),
        "python-tuf's defaults"
    );
    for (path, role, cap) in cases {
        evil.set(path, Misbehaviour::Endless);
        let client = Client::new(&https, &repo.initial_root());
        let err = fetch(&mut client.updater(), &client, "dev/tool.bin").expect_err(role);
        assert_eq!(too_large(&err, role), cap, "{role}");
        assert_says(&err, &[role, path, &format!("limit of {cap} bytes")]);
        if role == "root" {
            assert!(
                client.stored()["root.json"] == repo.initial_root(),
                "root v1 kept"
            );
        } else {
            assert!(!stored_names(&client).contains(&format!("{role}.json")));
        }
        evil.clear(path);
    }
}

#[test]
fn configured_size_caps_are_enforced_for_every_role() {
    let repo = repo_without_lengths();
    let (https, _evil) = serve(repo.path());
    let files = [
        ("root", "metadata/2.root.json"),
        ("timestamp", "metadata/timestamp.json"),
        ("snapshot", "metadata/2.snapshot.json"),
        ("targets", "metadata/2.targets.json"),
        ("dev", "metadata/1.dev.json"),
    ];
    for (role, file) in files {
        let len = repo.read_raw(file).len() as u64;
        let with_cap = |cap: u64| {
            let mut limits = Limits::default();
            match role {
                "root" => limits.root_max_len = cap,
                "timestamp" => limits.timestamp_max_len = cap,
                "snapshot" => limits.snapshot_max_len = cap,
                "targets" => limits.targets_max_len = cap,
                _ => limits.delegated_targets_max_len = cap,
            }
            limits
        };
        let client = Client::new(&https, &repo.initial_root());
        let err = fetch(
            &mut client.updater_with_limits(with_cap(len - 1)),
            &client,
            "dev/tool.bin",
        )
        .expect_err(role);
        assert_eq!(too_large(&err, role), len - 1, "{role}");
        assert!(!stored_names(&client).contains(&format!("{role}.json")) || role == "root");
        // Exactly at the cap it passes.
        let client = Client::new(&https, &repo.initial_root());
        fetch(
            &mut client.updater_with_limits(with_cap(len)),
            &client,
            "dev/tool.bin",
        )
        .unwrap_or_else(|e| panic!("{role} at its exact length: {e}"));
    }
}

/// A role (the top-level targets here, but any delegated role can do the same) that delegates to
/// 2^32 succinct bins must not make a listing build 2^32 role names: only the roles the listing
/// may still visit are queued, the rest are counted as not visited.
#[test]
fn listing_a_delegation_to_2_pow_32_bins_visits_only_the_budget() {
    use airlock_core::crypto::Signer as _;
    use airlock_core::tuf::{Delegations, Metadata, SuccinctRoles, Targets};
    use std::collections::BTreeMap;

    let mut repo = TestRepo::new();
    let key = common::ed25519();
    let keyid = key.public_key().key_id();
    let bins = SuccinctRoles::new(vec![keyid.clone()], 1, 32, "huge");
    let keys = BTreeMap::from([(keyid, key.public_key().clone())]);
    repo.targets.signed.delegations = Some(Delegations::with_succinct_roles(keys, bins.clone()));
    // Only the first two bins exist: the listing below may visit the top-level role and two more.
    let first_two: Vec<String> = (0..2).map(|i| bins.bin_name(i)).collect();
    for name in &first_two {
        repo.delegated
            .insert(name.clone(), Metadata::new(Targets::new(1, repo.expires)));
        repo.delegated_keys
            .insert(name.clone(), vec![evil::copy_key(&key)]);
    }
    let roles: Vec<&str> = std::iter::once("targets")
        .chain(first_two.iter().map(String::as_str))
        .collect();
    write_roles(&mut repo, roles);
    let (https, _evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let listing = client
        .updater()
        .list_targets_within(3)
        .expect("listing within the budget");
    assert_eq!(listing.roles_visited, 3);
    assert_eq!(listing.roles_not_visited as u64, (1u64 << 32) - 2);
}
