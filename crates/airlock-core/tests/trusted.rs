//! The client's trusted state for top-level metadata, attack by attack (no network: the
//! "repository" is metadata built and signed in memory, the client is `TrustedSet`).
//!
//! Each test names the TUF client CVE class or the spec's attack it plays. Delegations are in
//! tests/delegations.rs.

mod common;

use common::repo::*;
#[test]
fn a_consistent_repository_is_accepted() {
    let mut repo = Repo::new();
    repo.add_target("targets", "top.txt");
    repo.delegate("targets", "a", &["a/*"], false);
    repo.add_target("a", "a/x.txt");
    let p = repo.publish();
    let mut t = refreshed(&p);
    assert_eq!(t.timestamp().unwrap().signed.version, 1);
    let (found, fetched) = search(&mut t, &p, "a/x.txt");
    let SearchStep::Found { role, target } = found.unwrap() else {
        panic!("not found")
    };
    assert_eq!(role, "a");
    assert!(target.verify_bytes(b"a/x.txt").is_ok());
    assert_eq!(fetched, pairs(&[("a", "targets")]));
    let (found, fetched) = search(&mut t, &p, "top.txt");
    assert!(matches!(found.unwrap(), SearchStep::Found { role, .. } if role == "targets"));
    assert!(fetched.is_empty());
    let (found, _) = search(&mut t, &p, "a/missing");
    assert_eq!(found.unwrap(), SearchStep::NotFound);
}

// ---- root ----------------------------------------------------------------------------------

#[test]
fn cve_root_version_must_be_exactly_n_plus_1() {
    let mut repo = Repo::new();
    let v1 = repo.root_bytes();
    repo.root.signed.version = 3;
    let v3 = repo.root_bytes();
    repo.root.signed.version = 1;
    let v1_again = repo.root_bytes();
    let mut t = TrustedSet::new(&v1, now()).unwrap();
    assert!(matches!(
        t.update_root(&v3),
        Err(TrustError::RootVersion {
            expected: 2,
            found: 3
        })
    ));
    assert!(matches!(
        t.update_root(&v1_again),
        Err(TrustError::RootVersion {
            expected: 2,
            found: 1
        })
    ));
    assert_eq!(t.root().signed.version, 1);
    repo.root.signed.version = 2;
    assert_eq!(t.update_root(&repo.root_bytes()).unwrap().signed.version, 2);
}

#[test]
fn root_rotation_needs_old_and_new_thresholds() {
    let mut repo = Repo::new();
    let v1 = repo.root_bytes();
    let old = repo.root_signers.remove(0);
    let new = key();
    repo.root.signed.remove_key("root", &id(&old));
    repo.root.signed.add_key("root", new.public_key().clone());
    repo.root.signed.version = 2;
    let mut t = TrustedSet::new(&v1, now()).unwrap();
    // Only the new key: the old root never approved it.
    let only_new = signed(&mut repo.root, &[&new]);
    assert!(matches!(
        t.update_root(&only_new),
        Err(TrustError::Signatures { .. })
    ));
    // Only the old key: the new root does not approve itself.
    let only_old = signed(&mut repo.root, &[&old]);
    assert!(matches!(
        t.update_root(&only_old),
        Err(TrustError::Signatures { .. })
    ));
    let both = signed(&mut repo.root, &[&old, &new]);
    t.update_root(&both).unwrap();
    // v3 must now come from the new key; the old one alone no longer counts.
    repo.root.signed.version = 3;
    let by_old = signed(&mut repo.root, &[&old]);
    assert!(matches!(
        t.update_root(&by_old),
        Err(TrustError::Signatures { .. })
    ));
    let by_new = signed(&mut repo.root, &[&new]);
    t.update_root(&by_new).unwrap();
    assert_eq!(t.root_rotations(), 2);
}

#[test]
fn threshold_below_is_refused_for_root_and_timestamp() {
    let mut repo = Repo::new();
    let extra = key();
    repo.root.signed.add_key("root", extra.public_key().clone());
    repo.root.signed.roles.get_mut("root").unwrap().threshold = 2;
    let t2 = key();
    repo.root
        .signed
        .add_key("timestamp", t2.public_key().clone());
    repo.root
        .signed
        .roles
        .get_mut("timestamp")
        .unwrap()
        .threshold = 2;
    // Root signed by one of two.
    assert!(matches!(
        TrustedSet::new(&repo.root_bytes(), now()),
        Err(TrustError::Signatures { .. })
    ));
    repo.root_signers.push(extra);
    let p = repo.publish();
    let mut t = TrustedSet::new(&p.root, now()).unwrap();
    // Timestamp signed by one of two.
    assert!(matches!(
        t.update_timestamp(&p.timestamp),
        Err(TrustError::Signatures { .. })
    ));
    repo.timestamp_signers.push(t2);
    let p = repo.publish();
    t.update_timestamp(&p.timestamp).unwrap();
}

#[test]
fn cve_duplicate_signatures_or_keyids_do_not_meet_a_threshold() {
    let mut repo = Repo::new();
    let t1_id = id(&repo.timestamp_signers[0]);
    let alias_key = repo.timestamp_signers[0].public_key().clone();
    // Root lists the same timestamp key twice: as its id and under an alias; threshold 2.
    repo.root.signed.keys.insert("alias".into(), alias_key);
    let ts_role = repo.root.signed.roles.get_mut("timestamp").unwrap();
    ts_role.keyids = vec![t1_id.clone(), t1_id.clone(), "alias".into()];
    ts_role.threshold = 2;
    let p = repo.publish();
    let mut ts = Metadata::<Timestamp>::from_bytes(&p.timestamp).unwrap();
    let sig = ts.signatures[0].clone();
    // The same key id signing twice: the envelope is malformed (python-tuf refuses it too,
    // tuf-conformance test_duplicate_sig_keyids).
    let mut twice = ts.clone();
    twice.signatures.push(sig.clone());
    let mut t = TrustedSet::new(&p.root, now()).unwrap();
    let err = t
        .update_timestamp(&twice.to_canonical_bytes().unwrap())
        .unwrap_err();
    assert!(matches!(&err, TrustError::Metadata(_)), "{err}");
    // The same key under a second key id: counted once.
    ts.signatures.push(airlock_core::tuf::Signature {
        keyid: "alias".into(),
        ..sig
    });
    let err = t
        .update_timestamp(&ts.to_canonical_bytes().unwrap())
        .unwrap_err();
    assert!(
        matches!(&err, TrustError::Signatures { source, .. } if source.valid == 1 && source.threshold == 2),
        "{err}"
    );
}

#[test]
fn root_rotations_are_capped() {
    let mut repo = Repo::new();
    let mut t = TrustedSet::new(&repo.root_bytes(), now()).unwrap();
    for v in 2..=u64::from(MAX_ROOT_ROTATIONS) + 1 {
        repo.root.signed.version = v;
        t.update_root(&repo.root_bytes()).unwrap();
    }
    repo.root.signed.version += 1;
    assert!(matches!(
        t.update_root(&repo.root_bytes()),
        Err(TrustError::TooManyRootRotations { max: 256 })
    ));
}

#[test]
fn intermediate_root_expiry_ignored_final_root_expiry_checked() {
    let mut repo = Repo::new();
    repo.root.signed.expires = earlier();
    let p1 = repo.publish();
    repo.root.signed.version = 2;
    let v2_expired = repo.root_bytes();
    repo.root.signed.version = 3;
    repo.root.signed.expires = later();
    let v3 = repo.root_bytes();
    let mut t = TrustedSet::new(&p1.root, now()).unwrap();
    t.update_root(&v2_expired).unwrap();
    t.update_root(&v3).unwrap();
    t.update_timestamp(&p1.timestamp).unwrap();

    // The same chain stopping at the expired v2 is refused at the timestamp step.
    let mut t = TrustedSet::new(&p1.root, now()).unwrap();
    t.update_root(&v2_expired).unwrap();
    assert!(matches!(
        t.update_timestamp(&p1.timestamp),
        Err(TrustError::Expired { role, .. }) if role == "root"
    ));
    assert!(t.timestamp().is_none());
}

#[test]
fn fast_forward_recovery_after_timestamp_key_rotation() {
    let mut repo = Repo::new();
    // An attacker with the timestamp key pushed the timestamp to a huge version, and the
    // client cached it.
    repo.timestamp.signed.version = 1_000_000;
    let attacked = repo.publish();
    let cached_timestamp = attacked.timestamp.clone();
    refreshed(&attacked);

    // The repository rotates the timestamp key in root v2 and restarts at version 2.
    let old_ts = repo.timestamp_signers.remove(0);
    let new_ts = key();
    repo.root.signed.remove_key("timestamp", &id(&old_ts));
    repo.root
        .signed
        .add_key("timestamp", new_ts.public_key().clone());
    repo.timestamp_signers.push(new_ts);
    repo.root.signed.version = 2;
    repo.timestamp.signed.version = 2;
    let p = repo.publish();

    let mut client = TrustedSet::new(&attacked.root, now()).unwrap();
    client.update_root(&p.root).unwrap();
    assert!(client.cached_timestamp_and_snapshot_invalid());
    assert!(matches!(
        client.load_cached_timestamp(&cached_timestamp),
        Err(TrustError::CacheInvalidatedByKeyRotation { role: "timestamp" })
    ));
    assert_eq!(
        client.update_timestamp(&p.timestamp).unwrap(),
        TimestampUpdate::Updated
    );
    client.update_snapshot(&p.snapshot).unwrap();
    client.update_targets(&p.targets).unwrap();

    // Control: had the key not rotated, the cached version would block version 2 (rollback).
    let mut control = TrustedSet::new(&attacked.root, now()).unwrap();
    assert!(!control.cached_timestamp_and_snapshot_invalid());
    control.load_cached_timestamp(&cached_timestamp).unwrap();
    let mut lower = Metadata::<Timestamp>::from_bytes(&p.timestamp).unwrap();
    let lower = signed(&mut lower, &[&old_ts]);
    assert!(matches!(
        control.update_timestamp(&lower),
        Err(TrustError::Rollback {
            trusted: 1_000_000,
            new: 2,
            ..
        })
    ));
}

#[test]
fn snapshot_key_rotation_also_invalidates_the_cache() {
    let mut repo = Repo::new();
    let p1 = repo.publish();
    let new_sn = key();
    let old = id(&repo.snapshot_signers[0]);
    repo.root.signed.remove_key("snapshot", &old);
    repo.root
        .signed
        .add_key("snapshot", new_sn.public_key().clone());
    repo.snapshot_signers = vec![new_sn];
    repo.root.signed.version = 2;
    let p2 = repo.publish();
    let mut t = TrustedSet::new(&p1.root, now()).unwrap();
    t.update_root(&p2.root).unwrap();
    assert!(t.cached_timestamp_and_snapshot_invalid());
    assert!(matches!(
        t.load_cached_timestamp(&p1.timestamp),
        Err(TrustError::CacheInvalidatedByKeyRotation { .. })
    ));
    t.update_timestamp(&p2.timestamp).unwrap();
    assert!(matches!(
        t.load_cached_snapshot(&p1.snapshot),
        Err(TrustError::CacheInvalidatedByKeyRotation { role: "snapshot" })
    ));
    t.update_snapshot(&p2.snapshot).unwrap();
}

// ---- timestamp -----------------------------------------------------------------------------

#[test]
fn cve_timestamp_that_fails_rollback_check_is_not_kept() {
    let mut repo = Repo::new();
    repo.timestamp.signed.version = 5;
    let p5 = repo.publish();
    repo.timestamp.signed.version = 4;
    let p4 = repo.publish();
    let mut t = TrustedSet::new(&p5.root, now()).unwrap();
    t.load_cached_timestamp(&p5.timestamp).unwrap();
    assert!(matches!(
        t.update_timestamp(&p4.timestamp),
        Err(TrustError::Rollback {
            trusted: 5,
            new: 4,
            ..
        })
    ));
    // The refused timestamp left no trace: the trusted one is still v5, byte for byte.
    assert_eq!(t.timestamp().unwrap().signed.version, 5);
    assert_eq!(
        t.timestamp().unwrap().to_canonical_bytes().unwrap(),
        p5.timestamp
    );
    // Same version: kept, reported as unchanged.
    assert_eq!(
        t.update_timestamp(&p5.timestamp).unwrap(),
        TimestampUpdate::Unchanged
    );
    t.update_snapshot(&p5.snapshot).unwrap();
}

#[test]
fn timestamp_may_not_lower_the_snapshot_version() {
    let mut repo = Repo::new();
    repo.snapshot.signed.version = 3;
    let p = repo.publish();
    repo.timestamp.signed.version = 2;
    repo.snapshot.signed.version = 2;
    let lower = repo.publish();
    let mut t = TrustedSet::new(&p.root, now()).unwrap();
    t.load_cached_timestamp(&p.timestamp).unwrap();
    assert!(matches!(
        t.update_timestamp(&lower.timestamp),
        Err(TrustError::SnapshotMetaRollback { trusted: 3, new: 2 })
    ));
    assert_eq!(t.timestamp().unwrap().signed.version, 1);
}

#[test]
fn freeze_attack_expired_metadata_is_refused_and_not_kept() {
    // Timestamp.
    let mut repo = Repo::new();
    repo.timestamp.signed.expires = earlier();
    let p = repo.publish();
    let mut t = TrustedSet::new(&p.root, now()).unwrap();
    assert!(
        matches!(t.update_timestamp(&p.timestamp), Err(TrustError::Expired { role, .. }) if role == "timestamp")
    );
    assert!(t.timestamp().is_none());
    // Expiring exactly at the reference time is expired too.
    repo.timestamp.signed.expires = now();
    let p = repo.publish();
    assert!(matches!(
        t.update_timestamp(&p.timestamp),
        Err(TrustError::Expired { .. })
    ));

    // A cached expired timestamp is a baseline, but the same version again cannot be final.
    let mut t = TrustedSet::new(&p.root, now()).unwrap();
    t.load_cached_timestamp(&p.timestamp).unwrap();
    assert!(matches!(
        t.update_timestamp(&p.timestamp),
        Err(TrustError::Expired { .. })
    ));
    assert!(matches!(
        t.update_snapshot(&p.snapshot),
        Err(TrustError::Expired { .. })
    ));

    // Snapshot.
    let mut repo = Repo::new();
    repo.snapshot.signed.expires = earlier();
    let p = repo.publish();
    let mut t = TrustedSet::new(&p.root, now()).unwrap();
    t.update_timestamp(&p.timestamp).unwrap();
    assert!(
        matches!(t.update_snapshot(&p.snapshot), Err(TrustError::Expired { role, .. }) if role == "snapshot")
    );
    assert!(t.snapshot().is_none());
    // ... and as a cached one it is only a baseline.
    assert_eq!(
        t.load_cached_snapshot(&p.snapshot).unwrap(),
        CachedSnapshot::Outdated
    );
    assert!(matches!(
        t.update_targets(&p.targets),
        Err(TrustError::Expired { .. })
    ));

    // Targets and delegated targets.
    let mut repo = Repo::new();
    repo.targets.signed.expires = earlier();
    repo.delegate("targets", "a", &["*"], false);
    let p = repo.publish();
    let mut t = TrustedSet::new(&p.root, now()).unwrap();
    t.update_timestamp(&p.timestamp).unwrap();
    t.update_snapshot(&p.snapshot).unwrap();
    assert!(
        matches!(t.update_targets(&p.targets), Err(TrustError::Expired { role, .. }) if role == "targets")
    );
    assert!(t.targets().is_none());
    repo.targets.signed.expires = later();
    repo.roles.get_mut("a").unwrap().md.signed.expires = earlier();
    repo.bump();
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, _) = search(&mut t, &p, "x");
    assert!(matches!(res, Err(TrustError::Expired { role, .. }) if role == "a"));
}

// ---- snapshot ------------------------------------------------------------------------------

#[test]
fn mix_and_match_snapshot_must_match_timestamp_hashes() {
    let mut repo = Repo::new();
    let p1 = repo.publish();
    repo.bump();
    let p2 = repo.publish();
    let mut t = TrustedSet::new(&p2.root, now()).unwrap();
    t.update_timestamp(&p2.timestamp).unwrap();
    // An old, validly signed snapshot served with the new timestamp.
    assert!(matches!(
        t.update_snapshot(&p1.snapshot),
        Err(TrustError::Content {
            listed_by: "timestamp",
            ..
        })
    ));
    // One flipped byte: refused before parsing or signatures.
    let mut bad = p2.snapshot.clone();
    bad[10] ^= 1;
    assert!(matches!(
        t.update_snapshot(&bad),
        Err(TrustError::Content { .. })
    ));
    assert!(t.snapshot().is_none());
    t.update_snapshot(&p2.snapshot).unwrap();
}

#[test]
fn mix_and_match_targets_must_match_snapshot_hashes_and_versions() {
    let mut repo = Repo::new();
    let p1 = repo.publish();
    repo.bump();
    let p2 = repo.publish();
    let mut t = TrustedSet::new(&p2.root, now()).unwrap();
    t.update_timestamp(&p2.timestamp).unwrap();
    t.update_snapshot(&p2.snapshot).unwrap();
    assert!(matches!(
        t.update_targets(&p1.targets),
        Err(TrustError::Content {
            listed_by: "snapshot",
            ..
        })
    ));
    // Without hashes in snapshot, the version check catches the old file.
    repo.snapshot_hashes = false;
    repo.bump();
    let p3 = repo.publish();
    let mut t = TrustedSet::new(&p3.root, now()).unwrap();
    t.update_timestamp(&p3.timestamp).unwrap();
    t.update_snapshot(&p3.snapshot).unwrap();
    assert!(matches!(
        t.update_targets(&p2.targets),
        Err(TrustError::VersionMismatch {
            listed_by: "snapshot",
            expected: 3,
            found: 2,
            ..
        })
    ));
    t.update_targets(&p3.targets).unwrap();
}

#[test]
fn snapshot_version_must_be_the_one_timestamp_lists() {
    let mut repo = Repo::new();
    let p = repo.publish();
    // Timestamp v2 lists snapshot v2, but the repository still serves the v1 snapshot and the
    // timestamp carries no hashes for it.
    repo.timestamp.signed.version = 2;
    repo.snapshot.signed.version = 2;
    let mut p2 = repo.publish();
    let mut ts = Metadata::<Timestamp>::from_bytes(&p2.timestamp).unwrap();
    ts.signed
        .meta
        .insert("snapshot.json".into(), MetaFile::new(2));
    p2.timestamp = signed(&mut ts, &[&repo.timestamp_signers[0]]);
    let mut t = TrustedSet::new(&p.root, now()).unwrap();
    t.update_timestamp(&p2.timestamp).unwrap();
    assert!(matches!(
        t.update_snapshot(&p.snapshot),
        Err(TrustError::VersionMismatch {
            listed_by: "timestamp",
            expected: 2,
            found: 1,
            ..
        })
    ));
    t.update_snapshot(&p2.snapshot).unwrap();
}

#[test]
fn snapshot_rollback_checks_against_the_trusted_snapshot() {
    let mut repo = Repo::new();
    repo.delegate("targets", "a", &["*"], false);
    repo.roles.get_mut("a").unwrap().md.signed.version = 5;
    repo.snapshot.signed.version = 4;
    let p_old = repo.publish();

    // New snapshot: role a went down to version 4.
    repo.timestamp.signed.version = 2;
    repo.snapshot.signed.version = 5;
    repo.roles.get_mut("a").unwrap().md.signed.version = 4;
    let p_lower = repo.publish();
    let mut t = TrustedSet::new(&p_old.root, now()).unwrap();
    t.load_cached_timestamp(&p_old.timestamp).unwrap();
    t.update_timestamp(&p_lower.timestamp).unwrap();
    assert_eq!(
        t.load_cached_snapshot(&p_old.snapshot).unwrap(),
        CachedSnapshot::Outdated
    );
    assert!(matches!(
        t.update_snapshot(&p_lower.snapshot),
        Err(TrustError::RoleRollbackInSnapshot {
            trusted: 5,
            new: 4,
            ..
        })
    ));

    // New snapshot no longer lists role a at all.
    let a = repo.roles.remove("a").unwrap();
    repo.targets.signed.delegations = None;
    let p_dropped = repo.publish();
    let mut t = TrustedSet::new(&p_old.root, now()).unwrap();
    t.update_timestamp(&p_dropped.timestamp).unwrap();
    t.load_cached_snapshot(&p_old.snapshot).unwrap();
    assert!(matches!(
        t.update_snapshot(&p_dropped.snapshot),
        Err(TrustError::RoleDroppedFromSnapshot { file }) if file == "a.json"
    ));
    repo.roles.insert("a".into(), a);

    // Snapshot version lower than the trusted snapshot's (timestamp and snapshot both signed
    // by compromised online keys, the cached snapshot remembers better).
    repo.timestamp.signed.version = 3;
    repo.snapshot.signed.version = 3;
    repo.roles.get_mut("a").unwrap().md.signed.version = 6;
    let p_snap_lower = repo.publish();
    let mut t = TrustedSet::new(&p_old.root, now()).unwrap();
    t.update_timestamp(&p_snap_lower.timestamp).unwrap();
    t.load_cached_snapshot(&p_old.snapshot).unwrap();
    assert!(matches!(
        t.update_snapshot(&p_snap_lower.snapshot),
        Err(TrustError::Rollback { role, trusted: 4, new: 3 }) if role == "snapshot"
    ));
}

#[test]
fn cached_snapshot_current_needs_no_download() {
    let mut repo = Repo::new();
    let p = repo.publish();
    let mut t = TrustedSet::new(&p.root, now()).unwrap();
    t.load_cached_timestamp(&p.timestamp).unwrap();
    assert_eq!(
        t.update_timestamp(&p.timestamp).unwrap(),
        TimestampUpdate::Unchanged
    );
    assert_eq!(
        t.load_cached_snapshot(&p.snapshot).unwrap(),
        CachedSnapshot::Current
    );
    t.update_targets(&p.targets).unwrap();
}

/// A client whose stored timestamp and snapshot are what the repository serves, at `reference`.
fn warm(p: &Published, reference: DateTime<Utc>) -> TrustedSet {
    let mut t = TrustedSet::new(&p.root, reference).unwrap();
    t.load_cached_timestamp(&p.timestamp).unwrap();
    assert_eq!(
        t.update_timestamp(&p.timestamp).unwrap(),
        TimestampUpdate::Unchanged
    );
    assert_eq!(
        t.load_cached_snapshot(&p.snapshot).unwrap(),
        CachedSnapshot::Current
    );
    t
}

/// Drive a search for `path`, handing it `targets` when it asks for the top-level role.
fn lookup(t: &mut TrustedSet, targets: &[u8], path: &str) -> Result<SearchStep, TrustError> {
    let mut s = TargetSearch::new(path);
    loop {
        match s.step(t).unwrap() {
            SearchStep::NeedRole { role, parent } => {
                assert_eq!((role.as_str(), parent.as_str()), ("targets", "root"));
                t.update_targets(targets)?;
            }
            done => return Ok(done),
        }
    }
}

#[test]
fn targets_wait_for_a_lookup_only_when_nothing_changed_and_are_then_checked_in_full() {
    for snapshot_hashes in [true, false] {
        let mut repo = Repo::new();
        repo.snapshot_hashes = snapshot_hashes;
        repo.add_target("targets", "top.txt");
        repo.targets.signed.expires = now() + Duration::hours(1);
        let p = repo.publish();

        let stored = Some(p.targets.len() as u64);
        let mut t = warm(&p, now());
        assert_eq!(t.top_level_targets_load(stored), TargetsLoad::OnLookup);
        // No stored copy, or one of another length than the snapshot lists: the last update
        // did not get as far as storing this targets role.
        assert_eq!(t.top_level_targets_load(None), TargetsLoad::Now);
        let other_len = Some(p.targets.len() as u64 + 1);
        let expected = if snapshot_hashes {
            TargetsLoad::Now
        } else {
            TargetsLoad::OnLookup
        };
        assert_eq!(t.top_level_targets_load(other_len), expected);
        assert!(t.targets().is_none());
        // The stored copy tampered with (one listed path renamed) is refused at the lookup:
        // by the snapshot's hashes when listed, else by the signatures.
        let tampered = String::from_utf8(p.targets.clone())
            .unwrap()
            .replace("top.txt", "evl.txt")
            .into_bytes();
        let err = lookup(&mut t, &tampered, "evl.txt").unwrap_err();
        if snapshot_hashes {
            assert!(matches!(err, TrustError::Content { .. }), "{err}");
        } else {
            assert!(matches!(err, TrustError::Signatures { .. }), "{err}");
        }
        assert!(t.targets().is_none());
        // The genuine copy is accepted and found.
        assert!(matches!(
            lookup(&mut t, &p.targets, "top.txt").unwrap(),
            SearchStep::Found { role, .. } if role == "targets"
        ));

        // Expiry against the update's reference time: timestamp and snapshot still valid,
        // targets expired.
        let mut t = warm(&p, now() + Duration::hours(2));
        assert_eq!(t.top_level_targets_load(stored), TargetsLoad::OnLookup);
        let err = lookup(&mut t, &p.targets, "top.txt").unwrap_err();
        assert!(
            matches!(&err, TrustError::Expired { role, .. } if role == "targets"),
            "{err}"
        );

        // Version against the snapshot: a stored targets of another version is refused.
        repo.targets.signed.version += 1;
        let other = repo.publish();
        repo.targets.signed.version -= 1;
        let p = repo.publish();
        let mut t = warm(&p, now());
        assert!(lookup(&mut t, &other.targets, "top.txt").is_err());
    }

    // Anything changed: loaded by the refresh, as the workflow lists it.
    let mut repo = Repo::new();
    let old = repo.publish();
    repo.timestamp.signed.version += 1;
    let p = repo.publish();
    let stored = Some(p.targets.len() as u64);
    // A new timestamp listing the same snapshot.
    let mut t = TrustedSet::new(&p.root, now()).unwrap();
    t.load_cached_timestamp(&old.timestamp).unwrap();
    assert_eq!(
        t.update_timestamp(&p.timestamp).unwrap(),
        TimestampUpdate::Updated
    );
    assert_eq!(
        t.load_cached_snapshot(&p.snapshot).unwrap(),
        CachedSnapshot::Current
    );
    assert_eq!(t.top_level_targets_load(stored), TargetsLoad::Now);
    // No stored timestamp (a first update), or a snapshot fetched in this update.
    assert_eq!(
        refreshed(&p).top_level_targets_load(stored),
        TargetsLoad::Now
    );
    let mut t = TrustedSet::new(&p.root, now()).unwrap();
    t.update_timestamp(&p.timestamp).unwrap();
    t.load_cached_snapshot(&p.snapshot).unwrap();
    assert_eq!(t.top_level_targets_load(stored), TargetsLoad::Now);
    // A root rotation in this update.
    let v1 = repo.root_bytes();
    repo.root.signed.version = 2;
    let v2 = repo.root_bytes();
    let mut t = TrustedSet::new(&v1, now()).unwrap();
    t.update_root(&v2).unwrap();
    t.load_cached_timestamp(&p.timestamp).unwrap();
    t.update_timestamp(&p.timestamp).unwrap();
    t.load_cached_snapshot(&p.snapshot).unwrap();
    assert_eq!(t.top_level_targets_load(stored), TargetsLoad::Now);
    // Before anything is loaded.
    assert_eq!(
        TrustedSet::new(&v1, now())
            .unwrap()
            .top_level_targets_load(stored),
        TargetsLoad::Now
    );
}
