//! One end-to-end regression test per class of vulnerability published against TUF clients
//! (python-tuf, go-tuf, tough, rust-tuf advisories): the updater meets each one through a real
//! HTTPS mirror on 127.0.0.1 and must refuse it with an error that names the role and the check,
//! leaving what it trusts on disk unchanged.
//!
//! The same classes are tested without I/O against `TrustedSet` in airlock-core's
//! `tests/trusted.rs`; here the whole client (fetching, storing, the delegation search) is under
//! test.

mod common;
mod evil;

use std::collections::BTreeMap;

use airlock_client::{UpdateError, Updater};
use airlock_core::crypto::Signer;
use airlock_core::tuf::{DelegatedRole, MetaFile, MetadataError, Signature, TrustError};
use common::{Client, TestRepo, ed25519};
use evil::{Misbehaviour, assert_says, copy_key, disk, serve, signed_bytes, stored_names};

/// The trust error inside a refusal, or a panic naming what came instead.
#[track_caller]
fn refused<'a>(err: &'a UpdateError, expected_role: &str) -> &'a TrustError {
    match err {
        UpdateError::Refused { role, source, .. } if role == expected_role => source,
        other => panic!("expected {expected_role} metadata to be refused, got: {other}"),
    }
}

fn fetch(updater: &mut Updater, client: &Client, path: &str) -> Result<bool, UpdateError> {
    let dest = Updater::local_target_path(&client.target_dir(), path);
    updater
        .fetch_target(path, &dest, &mut |_, _| {})
        .map(|(_, downloaded)| downloaded)
}

/// Root N+1 must carry exactly version N+1: a skipped version and a replayed older root (both
/// validly signed) are refused, and the trusted root.json stays as it was.
#[test]
fn cve_root_version_must_be_exactly_n_plus_1() {
    let mut repo = TestRepo::new();
    let v1 = repo.initial_root();
    // A root that jumps to version 3, published as 2.root.json, signed by the root key.
    repo.root.signed.version = 3;
    let skipping = signed_bytes(&repo.root, &[&repo.root_keys[0]]);
    repo.write_raw("metadata/2.root.json", &skipping);
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &v1);
    let before = disk(&client);

    let err = client
        .updater()
        .refresh()
        .expect_err("version 3 as 2.root.json");
    assert!(
        matches!(
            refused(&err, "root"),
            TrustError::RootVersion {
                expected: 2,
                found: 3
            }
        ),
        "{err}"
    );
    assert_says(
        &err,
        &[
            "root",
            "/metadata/2.root.json",
            "version 3",
            "next version 2",
        ],
    );
    assert_eq!(disk(&client), before);

    // The trusted root itself replayed as 2.root.json.
    evil.set("/metadata/2.root.json", Misbehaviour::Bytes(v1.clone()));
    let err = client
        .updater()
        .refresh()
        .expect_err("v1 replayed as 2.root.json");
    assert!(
        matches!(
            refused(&err, "root"),
            TrustError::RootVersion {
                expected: 2,
                found: 1
            }
        ),
        "{err}"
    );
    assert_eq!(disk(&client), before);
    // Nothing after the refused root was asked for.
    assert!(
        !evil
            .requests()
            .iter()
            .any(|p| p.contains("timestamp") || p.contains("3.root")),
        "{:?}",
        evil.requests()
    );
}

/// A terminating delegation ends the search: a later sibling that also claims the path (here
/// one whose key an attacker could hold) is never fetched nor trusted for it.
#[test]
fn cve_terminating_delegation_is_not_ignored() {
    let mut repo = TestRepo::new();
    repo.delegate("targets", "a-team", &["a/*"], true);
    repo.delegate("targets", "b-team", &["a/*", "b/*"], false);
    repo.add_target("a-team", "a/lib.bin", b"a-team's lib");
    repo.add_target("b-team", "a/app.bin", b"b-team claims a/app.bin");
    repo.add_target("b-team", "b/tool.bin", b"b-team's tool");
    repo.publish();
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let mut updater = client.updater();

    let err = fetch(&mut updater, &client, "a/app.bin").expect_err("shadowed by a-team");
    assert!(matches!(err, UpdateError::TargetNotFound { .. }), "{err}");
    assert_says(&err, &["a/app.bin"]);
    assert_eq!(
        evil.count("/metadata/1.b-team.json"),
        0,
        "b-team must not be fetched"
    );
    assert!(!stored_names(&client).contains(&"b-team.json".to_string()));
    assert!(disk(&client).targets.is_empty());

    // The terminating role's own targets, and b-team's paths outside a/*, still resolve.
    let info = updater
        .get_target_info("a/lib.bin")
        .expect("lookup")
        .expect("a/lib.bin");
    assert_eq!(info.role, "a-team");
    let info = updater
        .get_target_info("b/tool.bin")
        .expect("lookup")
        .expect("b/tool.bin");
    assert_eq!(info.role, "b-team");
    // list_targets goes through the same search: a/app.bin is not offered.
    let listed: Vec<String> = updater
        .list_targets()
        .expect("list")
        .into_iter()
        .map(|t| t.path)
        .collect();
    assert_eq!(listed, vec!["a/lib.bin", "b/tool.bin"]);
}

/// Publishes `dev` (delegated) at version 1, then version 2; returns the v1 bytes.
fn repo_with_dev_v2() -> (TestRepo, Vec<u8>) {
    let mut repo = TestRepo::new();
    repo.delegate("targets", "dev", &["dev/*"], false);
    repo.add_target("dev", "dev/tool.bin", b"tool v1");
    repo.publish();
    let dev_v1 = repo.read_raw("metadata/1.dev.json");
    repo.add_target("dev", "dev/tool.bin", b"tool v2");
    repo.publish();
    assert_eq!(repo.delegated["dev"].signed.version, 2);
    (repo, dev_v1)
}

/// A delegated role may not go back to an older version: neither through a snapshot that lists
/// the older version (snapshot rollback check), nor through old bytes served where the snapshot
/// names a newer version without hashes (version check against the snapshot).
#[test]
fn cve_rollback_of_a_delegated_role_is_refused() {
    let (mut repo, dev_v1) = repo_with_dev_v2();
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    fetch(&mut client.updater(), &client, "dev/tool.bin").expect("honest update");
    let trusted_dev = client.stored()["dev.json"].clone();
    let before = disk(&client);

    // (a) A new snapshot (validly signed) lists dev.json at version 1 again.
    let honest_snapshot = repo.snapshot.clone();
    repo.snapshot
        .signed
        .meta
        .insert("dev.json".into(), MetaFile::with_bytes(1, &dev_v1));
    repo.snapshot.signed.version += 1;
    repo.timestamp.signed.version += 1;
    repo.write_snapshot_and_timestamp();
    let err = client
        .updater()
        .refresh()
        .expect_err("dev rolled back in snapshot");
    assert!(
        matches!(
            refused(&err, "snapshot"),
            TrustError::RoleRollbackInSnapshot {
                trusted: 2,
                new: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_says(&err, &["snapshot", "dev.json", "rollback"]);
    // The new timestamp passed its own checks and is kept (TUF 5.4.5); nothing else changed.
    let mut expected = before;
    expected.metadata.insert(
        "timestamp.json".into(),
        repo.read_raw("metadata/timestamp.json"),
    );
    assert_eq!(disk(&client), expected, "the refused snapshot is not kept");
    let before = expected;

    // (b) The next snapshot honestly lists dev.json version 3 by version only (no hashes);
    // the mirror answers 3.dev.json with the old version-1 file.
    repo.snapshot = honest_snapshot;
    repo.snapshot
        .signed
        .meta
        .insert("dev.json".into(), MetaFile::new(3));
    repo.snapshot.signed.version += 2;
    repo.timestamp.signed.version += 1;
    repo.write_snapshot_and_timestamp();
    evil.set("/metadata/3.dev.json", Misbehaviour::Bytes(dev_v1));
    let err = fetch(&mut client.updater(), &client, "dev/tool.bin").expect_err("old dev bytes");
    assert!(
        matches!(
            refused(&err, "dev"),
            TrustError::VersionMismatch {
                expected: 3,
                found: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_says(
        &err,
        &["dev", "/metadata/3.dev.json", "version 1", "version 3"],
    );
    assert_eq!(client.stored()["dev.json"], trusted_dev);
    assert_eq!(disk(&client).targets, before.targets);
}

/// A timestamp that fails the rollback checks is never stored, so it can't become the baseline
/// of the next update (which would lock the client out of the honest repository).
#[test]
fn cve_timestamp_that_failed_the_rollback_check_is_not_cached() {
    let mut repo = TestRepo::new();
    let snapshot_v1 = repo.read_raw("metadata/1.snapshot.json");
    repo.publish();
    let timestamp_v2 = repo.read_raw("metadata/timestamp.json");
    repo.publish();
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    assert_eq!(
        client
            .updater()
            .refresh()
            .expect("honest")
            .timestamp_version,
        3
    );
    let before = disk(&client);

    // (a) The previous timestamp (validly signed, not expired).
    evil.set(
        "/metadata/timestamp.json",
        Misbehaviour::Bytes(timestamp_v2),
    );
    let err = client.updater().refresh().expect_err("timestamp v2");
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
    assert_says(&err, &["timestamp", "/metadata/timestamp.json", "rollback"]);
    assert_eq!(disk(&client), before);

    // (b) A higher timestamp version (validly signed) that points back at snapshot version 1.
    let mut forged = repo.timestamp.clone();
    forged.signed.version = 1000;
    forged.signed.meta.insert(
        "snapshot.json".into(),
        MetaFile::with_bytes(1, &snapshot_v1),
    );
    let forged = signed_bytes(&forged, &[&repo.timestamp_keys[0]]);
    evil.set("/metadata/timestamp.json", Misbehaviour::Bytes(forged));
    let err = client
        .updater()
        .refresh()
        .expect_err("snapshot version rollback");
    assert!(
        matches!(
            refused(&err, "timestamp"),
            TrustError::SnapshotMetaRollback { trusted: 3, new: 1 }
        ),
        "{err}"
    );
    assert_eq!(disk(&client), before, "timestamp v1000 must not be stored");

    // The honest mirror is back: had v1000 been kept, v3 would now be refused as a rollback.
    evil.clear("/metadata/timestamp.json");
    let summary = client.updater().refresh().expect("honest again");
    assert_eq!(summary.timestamp_version, 3);
}

/// Delegate `to` (an existing role, keeping its key) from `from` as well.
fn delegate_existing(repo: &mut TestRepo, from: &str, to: &str, paths: &[&str]) {
    let key = repo.delegated_keys[to][0].public_key().clone();
    let keyid = key.key_id();
    let parent = repo.delegated.get_mut(from).expect("delegator");
    let d = parent.signed.delegations.get_or_insert_with(|| {
        airlock_core::tuf::Delegations::with_roles(BTreeMap::new(), Vec::new())
    });
    d.keys.insert(keyid.clone(), key);
    d.roles
        .get_or_insert_with(Vec::new)
        .push(DelegatedRole::with_paths(
            to,
            vec![keyid],
            1,
            paths.iter().map(|p| p.to_string()).collect(),
        ));
}

/// Delegation cycles (A -> B -> A, and A -> A) end: the search finishes, each role file is
/// fetched once, and a target that nobody lists is "not found".
#[test]
fn cve_delegation_cycles_end() {
    let mut repo = TestRepo::new();
    repo.delegate("targets", "A", &["*"], false);
    repo.delegate("A", "B", &["*"], false);
    delegate_existing(&mut repo, "B", "A", &["*"]);
    delegate_existing(&mut repo, "A", "A", &["*"]);
    repo.add_target("B", "deep.bin", b"listed by B");
    repo.publish();
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let mut updater = client.updater();

    let err = fetch(&mut updater, &client, "missing.bin").expect_err("listed by nobody");
    assert!(matches!(err, UpdateError::TargetNotFound { .. }), "{err}");
    assert_eq!(evil.count("/metadata/1.A.json"), 1);
    assert_eq!(evil.count("/metadata/1.B.json"), 1);

    assert!(fetch(&mut updater, &client, "deep.bin").expect("through A and B"));
    let info = updater.get_target_info("deep.bin").expect("lookup");
    assert_eq!(info.map(|i| i.role).as_deref(), Some("B"));
    assert_eq!(evil.count("/metadata/1.A.json"), 1);
    assert_eq!(evil.count("/metadata/1.B.json"), 1);
}

/// Root v1 where the timestamp role has threshold 2 over two key ids that name the SAME key.
fn repo_with_aliased_timestamp_key() -> TestRepo {
    let mut repo = TestRepo::new();
    let key = repo.timestamp_keys[0].public_key().clone();
    repo.root.signed.keys.insert("alias".into(), key);
    let role = repo.root.signed.roles.get_mut("timestamp").expect("role");
    role.keyids.push("alias".into());
    role.threshold = 2;
    repo.write_root();
    repo
}

/// One key counts once toward a threshold: not when its signature is repeated, and not when it
/// signs under two key ids that the root maps to the same key.
#[test]
fn cve_duplicate_signatures_or_keyids_are_counted_once() {
    // (a) Threshold 2 of two distinct keys; the attacker holds one and repeats its signature.
    let mut repo = TestRepo::new();
    let second = ed25519();
    repo.root
        .signed
        .add_key("timestamp", second.public_key().clone());
    repo.root
        .signed
        .roles
        .get_mut("timestamp")
        .expect("role")
        .threshold = 2;
    repo.write_root();
    repo.timestamp_keys.push(second);
    repo.write_timestamp();
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    client.updater().refresh().expect("honest 2-of-2 timestamp");
    let before = disk(&client);

    let mut forged = repo.timestamp.clone();
    forged.signed.version += 1;
    forged.signatures.clear();
    forged
        .sign(&repo.timestamp_keys[0], airlock_core::tuf::SignMode::Append)
        .expect("sign");
    let sig = forged.signatures[0].clone();
    forged.signatures.push(sig);
    let bytes = forged.to_canonical_bytes().expect("bytes");
    evil.set("/metadata/timestamp.json", Misbehaviour::Bytes(bytes));
    let err = client
        .updater()
        .refresh()
        .expect_err("one key, two signatures");
    assert!(
        matches!(
            refused(&err, "timestamp"),
            TrustError::Metadata(MetadataError::Malformed { .. })
        ),
        "{err}"
    );
    assert_says(&err, &["timestamp", "signs more than once"]);
    assert_eq!(disk(&client), before);

    // (b) The root lists the one timestamp key under two key ids; it signs under both.
    let repo = repo_with_aliased_timestamp_key();
    let mut ts = repo.timestamp.clone();
    TestRepo::sign(&mut ts, &repo.timestamp_keys);
    let sig = ts.signatures[0].clone();
    ts.signatures.push(Signature {
        keyid: "alias".into(),
        ..sig
    });
    repo.write_raw(
        "metadata/timestamp.json",
        &ts.to_canonical_bytes().expect("bytes"),
    );
    let (https, _evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let before = disk(&client);
    let err = client
        .updater()
        .refresh()
        .expect_err("aliased key counted twice");
    assert!(
        matches!(
            refused(&err, "timestamp"),
            TrustError::Signatures { source, .. } if source.valid == 1 && source.threshold == 2
        ),
        "{err}"
    );
    assert_says(&err, &["timestamp", "1 valid signature", "threshold is 2"]);
    assert_eq!(disk(&client), before);

    // (c) The same trick on a new root's own threshold.
    let mut repo = TestRepo::new();
    let v1 = repo.initial_root();
    let key = repo.root_keys[0].public_key().clone();
    repo.root.signed.keys.insert("alias".into(), key);
    let role = repo.root.signed.roles.get_mut("root").expect("role");
    role.keyids.push("alias".into());
    role.threshold = 2;
    repo.root.signed.version = 2;
    let mut root = repo.root.clone();
    TestRepo::sign(&mut root, &repo.root_keys);
    let sig = root.signatures[0].clone();
    root.signatures.push(Signature {
        keyid: "alias".into(),
        ..sig
    });
    repo.write_raw(
        "metadata/2.root.json",
        &root.to_canonical_bytes().expect("bytes"),
    );
    let (https, _evil) = serve(repo.path());
    let client = Client::new(&https, &v1);
    let err = client.updater().refresh().expect_err("aliased root key");
    assert!(
        matches!(refused(&err, "root"), TrustError::Signatures { source, .. } if source.valid == 1),
        "{err}"
    );
    assert_says(&err, &["new root v2 itself", "/metadata/2.root.json"]);
    assert_eq!(client.stored()["root.json"], v1);
}

/// A delegated role is verified with the keys ITS delegator gives it: not with the top-level
/// targets key, not with a sibling's key, and when two delegators give it different keys, with
/// each one's keys when reached through it.
#[test]
fn cve_delegated_metadata_is_validated_against_its_delegator() {
    // (a) and (b): dev.json signed by the top-level targets key, ops.json by dev's key.
    let mut repo = TestRepo::new();
    repo.delegate("targets", "dev", &["dev/*"], false);
    repo.delegate("targets", "ops", &["ops/*"], false);
    repo.add_target("dev", "dev/tool.bin", b"tool");
    repo.add_target("ops", "ops/run.bin", b"run");
    repo.publish();
    let dev_key = copy_key(&repo.delegated_keys["dev"][0]);
    let targets_key = copy_key(&repo.targets_keys[0]);
    repo.delegated_keys.insert("dev".into(), vec![targets_key]);
    repo.delegated_keys.insert("ops".into(), vec![dev_key]);
    repo.delegated.get_mut("dev").expect("dev").signed.version += 1;
    repo.delegated.get_mut("ops").expect("ops").signed.version += 1;
    evil::write_roles(&mut repo, ["dev", "ops"]);
    let (https, _evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let mut updater = client.updater();
    updater.refresh().expect("top-level metadata is fine");
    let before = disk(&client);

    let err = fetch(&mut updater, &client, "dev/tool.bin").expect_err("signed by targets key");
    assert!(
        matches!(refused(&err, "dev"), TrustError::Signatures { delegator, .. } if delegator == "targets"),
        "{err}"
    );
    assert_says(
        &err,
        &["dev", "/metadata/2.dev.json", "keys targets gives it"],
    );
    let err = fetch(&mut updater, &client, "ops/run.bin").expect_err("signed by dev's key");
    assert!(
        matches!(refused(&err, "ops"), TrustError::Signatures { .. }),
        "{err}"
    );
    assert_eq!(disk(&client), before);

    // (c) p1 and p2 both delegate `shared`, with different keys; shared is signed by p1's.
    let mut repo = TestRepo::new();
    repo.delegate("targets", "p1", &["x/*"], false);
    repo.delegate("targets", "p2", &["x/*"], false);
    repo.delegate("p1", "shared", &["x/*"], false);
    let other = ed25519();
    let other_id = other.public_key().key_id();
    let p2 = repo.delegated.get_mut("p2").expect("p2");
    p2.signed.delegations = Some(airlock_core::tuf::Delegations::with_roles(
        BTreeMap::from([(other_id.clone(), other.public_key().clone())]),
        vec![DelegatedRole::with_paths(
            "shared",
            vec![other_id],
            1,
            vec!["x/*".into()],
        )],
    ));
    repo.add_target("shared", "x/app.bin", b"app");
    repo.publish();
    let (https, evil) = serve(repo.path());
    let client = Client::new(&https, &repo.initial_root());
    let mut updater = client.updater();
    assert!(fetch(&mut updater, &client, "x/app.bin").expect("through p1"));
    let before = disk(&client);
    // Through p2 the same file must verify with p2's key for `shared`, and it does not.
    let err = fetch(&mut updater, &client, "x/missing.bin").expect_err("shared via p2");
    assert!(
        matches!(refused(&err, "shared"), TrustError::Signatures { delegator, .. } if delegator == "p2"),
        "{err}"
    );
    assert_says(&err, &["shared", "keys p2 gives it"]);
    // p2 itself is valid and was trusted on the way; shared.json and the targets are unchanged.
    let mut expected = before;
    expected
        .metadata
        .insert("p2.json".into(), repo.read_raw("metadata/1.p2.json"));
    assert_eq!(disk(&client), expected);
    // The copy trusted through p1 is still the one used for p1's paths.
    let info = updater.get_target_info("x/app.bin").expect("lookup");
    assert_eq!(info.map(|i| i.role).as_deref(), Some("shared"));
    assert!(evil.count("/metadata/1.shared.json") >= 1);
}

/// CVE-2021-41131 (python-tuf, GHSA-wjw6-2cqr-j4qr): role names and target paths were used as
/// file names, so `../` in a name wrote outside the client's directories. Here a delegator
/// names roles `../escape`, `..`, `a/b` and `%2e%2e%2fx`, and lists a target `../../outside.bin`:
/// everything the client writes stays inside its metadata and target directories, under
/// percent-encoded names.
#[test]
fn cve_2021_41131_role_and_target_names_cannot_escape_their_directories() {
    use airlock_client::store::encode_role_name;
    let hostile = ["../escape", "..", "a/b", "%2e%2e%2fx"];
    let mut repo = TestRepo::new();
    for name in hostile {
        repo.delegate("targets", name, &["*/*/*"], false);
    }
    let data = b"outside".to_vec();
    let file = airlock_core::tuf::TargetFile::from_bytes(&data);
    let last = hostile[hostile.len() - 1];
    repo.delegated
        .get_mut(last)
        .expect("role")
        .signed
        .targets
        .insert("../../outside.bin".into(), file.clone());
    repo.publish();
    let (https, evil) = serve(repo.path());
    // Serve each role under the percent-encoded name the client asks for.
    for name in hostile {
        let bytes = repo.read_raw(&repo.metadata_name(name, 1));
        let url_path = format!("/metadata/1.{}.json", encode_role_name(name));
        evil.set(&url_path, Misbehaviour::Bytes(bytes));
    }
    // The target, under the raw path the client sends and under its normalised form.
    let hash = &file.hashes["sha256"];
    for path in [
        format!("/targets/../../{hash}.outside.bin"),
        format!("/{hash}.outside.bin"),
    ] {
        evil.set(&path, Misbehaviour::Bytes(data.clone()));
    }
    let client = Client::new(&https, &repo.initial_root());
    let mut updater = client.updater();
    let info = updater
        .get_target_info("../../outside.bin")
        .expect("lookup")
        .expect("listed");
    assert_eq!(info.role, last);
    let dest = Updater::local_target_path(&client.target_dir(), "../../outside.bin");
    assert_eq!(dest.parent(), Some(client.target_dir().as_path()));
    updater.download_target(&info, &dest).expect("download");
    // The dot segments go to the (untrusted) server as they are; the content is checked by
    // hash whatever the server makes of them.
    assert!(
        evil.requests().iter().any(|p| p.ends_with(".outside.bin")),
        "{:?}",
        evil.requests()
    );

    let mut top: Vec<String> = std::fs::read_dir(client.dir.path())
        .expect("client dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    top.sort();
    assert_eq!(
        top,
        vec!["metadata", "targets"],
        "nothing outside the two dirs"
    );
    let mut expected: Vec<String> = ["root", "timestamp", "snapshot", "targets"]
        .iter()
        .chain(hostile.iter())
        .map(|r| format!("{}.json", encode_role_name(r)))
        .collect();
    expected.sort();
    assert_eq!(stored_names(&client), expected);
    assert_eq!(
        disk(&client).targets.into_keys().collect::<Vec<_>>(),
        vec!["..%2F..%2Foutside.bin"]
    );
}

/// A new root must be signed by a threshold of the trusted root's keys AND of its own: a
/// rotation signed only by the old keys (the new keys never agreed) and one signed only by the
/// new keys (the old keys never agreed) are both refused, and root.json stays as it was.
#[test]
fn root_rotation_needs_the_old_and_the_new_threshold() {
    for signed_by in ["old keys only", "new keys only"] {
        let mut repo = TestRepo::new();
        let v1 = repo.initial_root();
        let old_key = copy_key(&repo.root_keys[0]);
        let new_key = ed25519();
        repo.rotate_root_keys(vec![copy_key(&new_key)], 1);
        let signer = if signed_by == "old keys only" {
            &old_key
        } else {
            &new_key
        };
        let bytes = signed_bytes(&repo.root, &[signer]);
        repo.write_raw("metadata/2.root.json", &bytes);
        let (https, _evil) = serve(repo.path());
        let client = Client::new(&https, &v1);
        let err = client.updater().refresh().expect_err(signed_by);
        let expected_delegator = if signed_by == "old keys only" {
            "new root v2 itself"
        } else {
            "trusted root v1"
        };
        assert!(
            matches!(refused(&err, "root"), TrustError::Signatures { delegator, .. } if delegator == expected_delegator),
            "{signed_by}: {err}"
        );
        assert_says(&err, &[expected_delegator, "/metadata/2.root.json"]);
        assert_eq!(stored_names(&client), vec!["root.json"]);
        assert!(
            client.stored()["root.json"] == v1,
            "{signed_by}: root v1 kept"
        );
    }
}
