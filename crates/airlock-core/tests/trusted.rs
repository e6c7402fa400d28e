//! The client's trusted state and delegation search, attack by attack (no network: the
//! "repository" is metadata built and signed in memory, the client is `TrustedSet`).
//!
//! Each test names the TUF client CVE class or the spec's attack it plays.

use std::collections::BTreeMap;
use std::rc::Rc;

use airlock_core::crypto::{KeyScheme, PrivateKey, Signer};
use airlock_core::tuf::{
    CachedSnapshot, DelegatedRole, Delegations, MAX_ROOT_ROTATIONS, MetaFile, Metadata, Role, Root,
    SearchError, SearchStep, SignMode, Snapshot, SuccinctRoles, TargetFile, TargetSearch, Targets,
    Timestamp, TimestampUpdate, TrustError, TrustedSet,
};
use chrono::{DateTime, Duration, TimeZone, Utc};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}
fn later() -> DateTime<Utc> {
    now() + Duration::days(365)
}
fn earlier() -> DateTime<Utc> {
    now() - Duration::days(1)
}
type K = Rc<PrivateKey>;

fn key() -> K {
    Rc::new(PrivateKey::generate(KeyScheme::Ed25519).unwrap())
}
fn id(k: &K) -> String {
    k.public_key().key_id()
}

fn signed<T: Role>(md: &mut Metadata<T>, signers: &[&PrivateKey]) -> Vec<u8> {
    md.signatures.clear();
    for s in signers {
        md.sign(*s, SignMode::Append).unwrap();
    }
    md.to_canonical_bytes().unwrap()
}

struct DelegatedDoc {
    md: Metadata<Targets>,
    signers: Vec<K>,
}

/// An in-memory repository whose fields tests change before (re)publishing.
struct Repo {
    root: Metadata<Root>,
    root_signers: Vec<K>,
    timestamp_signers: Vec<K>,
    snapshot_signers: Vec<K>,
    targets_signers: Vec<K>,
    timestamp: Metadata<Timestamp>,
    snapshot: Metadata<Snapshot>,
    targets: Metadata<Targets>,
    roles: BTreeMap<String, DelegatedDoc>,
    /// Whether snapshot lists hashes and lengths of targets roles.
    snapshot_hashes: bool,
}

/// One published state: the bytes a mirror would serve.
#[derive(Clone)]
struct Published {
    root: Vec<u8>,
    timestamp: Vec<u8>,
    snapshot: Vec<u8>,
    targets: Vec<u8>,
    roles: BTreeMap<String, Vec<u8>>,
}

impl Repo {
    fn new() -> Repo {
        let (r, t, s, g) = (key(), key(), key(), key());
        let mut root = Root::new(later());
        root.add_key("root", r.public_key().clone());
        root.add_key("timestamp", t.public_key().clone());
        root.add_key("snapshot", s.public_key().clone());
        root.add_key("targets", g.public_key().clone());
        Repo {
            root: Metadata::new(root),
            root_signers: vec![r],
            timestamp_signers: vec![t],
            snapshot_signers: vec![s],
            targets_signers: vec![g],
            timestamp: Metadata::new(Timestamp::new(1, later(), MetaFile::new(1))),
            snapshot: Metadata::new(Snapshot::new(1, later())),
            targets: Metadata::new(Targets::new(1, later())),
            roles: BTreeMap::new(),
            snapshot_hashes: true,
        }
    }

    fn root_bytes(&mut self) -> Vec<u8> {
        let signers: Vec<&PrivateKey> = self.root_signers.iter().map(|k| &**k).collect();
        signed(&mut self.root, &signers)
    }

    fn targets_of(&mut self, role: &str) -> &mut Metadata<Targets> {
        if role == "targets" {
            &mut self.targets
        } else {
            &mut self.roles.get_mut(role).unwrap().md
        }
    }

    fn add_target(&mut self, role: &str, path: &str) {
        self.targets_of(role)
            .signed
            .targets
            .insert(path.to_string(), TargetFile::from_bytes(path.as_bytes()));
    }

    /// `parent` delegates `name` (with a fresh key) for `paths`.
    fn delegate(&mut self, parent: &str, name: &str, paths: &[&str], terminating: bool) {
        let k = key();
        let mut role = DelegatedRole::with_paths(
            name,
            vec![id(&k)],
            1,
            paths.iter().map(|p| p.to_string()).collect(),
        );
        role.terminating = terminating;
        self.delegate_role(parent, role, k.public_key().clone());
        self.roles.insert(
            name.to_string(),
            DelegatedDoc {
                md: Metadata::new(Targets::new(1, later())),
                signers: vec![k],
            },
        );
    }

    fn delegate_role(
        &mut self,
        parent: &str,
        role: DelegatedRole,
        public: airlock_core::crypto::PublicKey,
    ) {
        let p = self.targets_of(parent);
        let d = p
            .signed
            .delegations
            .get_or_insert_with(|| Delegations::with_roles(BTreeMap::new(), vec![]));
        d.keys.insert(public.key_id(), public);
        d.roles.as_mut().unwrap().push(role);
    }

    fn publish(&mut self) -> Published {
        let root = self.root_bytes();
        let tg: Vec<&PrivateKey> = self.targets_signers.iter().map(|k| &**k).collect();
        let targets = signed(&mut self.targets, &tg);
        let mut roles = BTreeMap::new();
        for (name, r) in self.roles.iter_mut() {
            let signers: Vec<&PrivateKey> = r.signers.iter().map(|k| &**k).collect();
            roles.insert(name.clone(), signed(&mut r.md, &signers));
        }
        let meta = |version: u64, bytes: &[u8], hashes: bool| {
            if hashes {
                MetaFile::with_bytes(version, bytes)
            } else {
                MetaFile::new(version)
            }
        };
        let h = self.snapshot_hashes;
        self.snapshot.signed.meta.clear();
        self.snapshot.signed.meta.insert(
            "targets.json".into(),
            meta(self.targets.signed.version, &targets, h),
        );
        for (name, bytes) in &roles {
            let v = self.roles[name].md.signed.version;
            self.snapshot
                .signed
                .meta
                .insert(format!("{name}.json"), meta(v, bytes, h));
        }
        let sn: Vec<&PrivateKey> = self.snapshot_signers.iter().map(|k| &**k).collect();
        let snapshot = signed(&mut self.snapshot, &sn);
        self.timestamp.signed.meta.insert(
            "snapshot.json".into(),
            MetaFile::with_bytes(self.snapshot.signed.version, &snapshot),
        );
        let ts: Vec<&PrivateKey> = self.timestamp_signers.iter().map(|k| &**k).collect();
        let timestamp = signed(&mut self.timestamp, &ts);
        Published {
            root,
            timestamp,
            snapshot,
            targets,
            roles,
        }
    }

    /// Bump every version (a new release of everything but root).
    fn bump(&mut self) {
        self.timestamp.signed.version += 1;
        self.snapshot.signed.version += 1;
        self.targets.signed.version += 1;
        for r in self.roles.values_mut() {
            r.md.signed.version += 1;
        }
    }
}

/// A client that refreshed top-level metadata from `p`.
fn refreshed(p: &Published) -> TrustedSet {
    let mut t = TrustedSet::new(&p.root, now()).unwrap();
    assert_eq!(
        t.update_timestamp(&p.timestamp).unwrap(),
        TimestampUpdate::Updated
    );
    t.update_snapshot(&p.snapshot).unwrap();
    t.update_targets(&p.targets).unwrap();
    t
}

/// Run a delegation search, serving roles from `p`; returns the outcome and the roles fetched.
fn search(
    t: &mut TrustedSet,
    p: &Published,
    path: &str,
) -> (Result<SearchStep, TrustError>, Vec<(String, String)>) {
    let mut s = TargetSearch::new(path);
    let mut fetched = Vec::new();
    loop {
        match s.step(t).unwrap() {
            SearchStep::NeedRole { role, parent } => {
                fetched.push((role.clone(), parent.clone()));
                let bytes = p.roles.get(&role).cloned().unwrap_or_default();
                if let Err(e) = t.update_delegated_targets(&bytes, &role, &parent) {
                    return (Err(e), fetched);
                }
            }
            done => return (Ok(done), fetched),
        }
    }
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

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

// ---- delegations ---------------------------------------------------------------------------

#[test]
fn cve_rollback_of_a_delegated_role() {
    let mut repo = Repo::new();
    repo.snapshot_hashes = false;
    repo.delegate("targets", "a", &["*"], false);
    repo.add_target("a", "file");
    let p1 = repo.publish();
    repo.bump();
    let p2 = repo.publish();
    // The mirror serves the new top-level metadata with the old a.json.
    let mut mixed = p2.clone();
    mixed.roles = p1.roles.clone();
    let mut t = refreshed(&mixed);
    let (res, _) = search(&mut t, &mixed, "file");
    assert!(matches!(
        res,
        Err(TrustError::VersionMismatch { role, expected: 2, found: 1, .. }) if role == "a"
    ));
    let mut t = refreshed(&p2);
    assert!(matches!(
        search(&mut t, &p2, "file").0,
        Ok(SearchStep::Found { .. })
    ));
}

#[test]
fn cve_terminating_delegation_stops_the_search() {
    let mut repo = Repo::new();
    repo.delegate("targets", "first", &["*"], true);
    repo.delegate("targets", "second", &["*"], false);
    repo.add_target("second", "evil");
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, "evil");
    assert_eq!(res.unwrap(), SearchStep::NotFound);
    assert_eq!(fetched, pairs(&[("first", "targets")]));

    // A terminating delegation below also ends the search above it.
    let mut repo = Repo::new();
    repo.delegate("targets", "a", &["*"], false);
    repo.delegate("a", "a1", &["*"], true);
    repo.delegate("targets", "b", &["*"], false);
    repo.add_target("b", "evil");
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, "evil");
    assert_eq!(res.unwrap(), SearchStep::NotFound);
    assert_eq!(fetched, pairs(&[("a", "targets"), ("a1", "a")]));

    // Control: not terminating, the search goes on to the second role.
    let mut repo = Repo::new();
    repo.delegate("targets", "first", &["*"], false);
    repo.delegate("targets", "second", &["*"], false);
    repo.add_target("second", "file");
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, "file");
    assert!(matches!(res.unwrap(), SearchStep::Found { role, .. } if role == "second"));
    assert_eq!(
        fetched,
        pairs(&[("first", "targets"), ("second", "targets")])
    );
}

#[test]
fn search_is_preorder_depth_first_in_delegation_order_and_respects_paths() {
    let mut repo = Repo::new();
    repo.delegate("targets", "a", &["pkg/*"], false);
    repo.delegate("a", "a1", &["pkg/*"], false);
    repo.delegate("a", "a2", &["other/*"], false);
    repo.delegate("targets", "b", &["pkg/*"], false);
    repo.delegate("targets", "c", &["pkg/x"], false);
    repo.add_target("a1", "pkg/y");
    repo.add_target("c", "pkg/x");
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, "pkg/x");
    assert!(matches!(res.unwrap(), SearchStep::Found { role, .. } if role == "c"));
    assert_eq!(
        fetched,
        pairs(&[
            ("a", "targets"),
            ("a1", "a"),
            ("b", "targets"),
            ("c", "targets")
        ])
    );
    // A role listing a target outside its paths is never asked for it.
    let (res, fetched) = search(&mut t, &p, "other/z");
    assert_eq!(res.unwrap(), SearchStep::NotFound);
    assert!(fetched.is_empty());
}

#[test]
fn cve_delegation_cycles_end() {
    let mut repo = Repo::new();
    repo.delegate("targets", "a", &["*"], false);
    repo.delegate("a", "b", &["*"], false);
    // b delegates back to a (with a's key) and to itself.
    let a_key = repo.roles["a"].signers[0].public_key().clone();
    let back = DelegatedRole::with_paths("a", vec![a_key.key_id()], 1, vec!["*".into()]);
    repo.delegate_role("b", back, a_key);
    let b_key = repo.roles["b"].signers[0].public_key().clone();
    let own = DelegatedRole::with_paths("b", vec![b_key.key_id()], 1, vec!["*".into()]);
    repo.delegate_role("b", own, b_key);
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, "nothing");
    assert_eq!(res.unwrap(), SearchStep::NotFound);
    assert_eq!(
        fetched,
        pairs(&[("a", "targets"), ("b", "a"), ("a", "b"), ("b", "b")])
    );
}

#[test]
fn at_most_32_delegated_roles_are_visited() {
    let mut repo = Repo::new();
    let mut parent = "targets".to_string();
    for i in 0..40 {
        let name = format!("r{i}");
        repo.delegate(&parent, &name, &["*"], false);
        parent = name;
    }
    repo.add_target("r39", "deep");
    repo.add_target("r31", "reachable");
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, "deep");
    assert_eq!(res.unwrap(), SearchStep::LimitReached);
    assert_eq!(fetched.len(), 32);
    let (res, _) = search(&mut t, &p, "reachable");
    assert!(matches!(res.unwrap(), SearchStep::Found { role, .. } if role == "r31"));
}

#[test]
fn cve_delegated_metadata_is_verified_against_its_delegator() {
    for case in [
        "the top-level targets key",
        "a sibling role's key",
        "an unknown key",
    ] {
        let mut repo = Repo::new();
        repo.delegate("targets", "a", &["*"], false);
        repo.delegate("targets", "b", &["*"], false);
        repo.add_target("a", "file");
        let wrong = match case {
            "the top-level targets key" => repo.targets_signers[0].clone(),
            "a sibling role's key" => repo.roles["b"].signers[0].clone(),
            _ => key(),
        };
        repo.roles.get_mut("a").unwrap().signers = vec![wrong];
        let p = repo.publish();
        let mut t = refreshed(&p);
        let (res, _) = search(&mut t, &p, "file");
        assert!(
            matches!(&res, Err(TrustError::Signatures { role, delegator, .. })
                if role == "a" && delegator == "targets"),
            "a.json signed by {case}: {:?}",
            res.map(|_| ())
        );
        assert!(t.delegated("a", "targets").is_none());
    }
}

#[test]
fn a_role_reached_through_two_parents_is_verified_for_each() {
    let mut repo = Repo::new();
    repo.snapshot_hashes = false;
    repo.delegate("targets", "p1", &["*"], false);
    repo.delegate("targets", "p2", &["*"], false);
    repo.delegate("p1", "c", &["*"], false);
    let k2 = key();
    let via_p2 = DelegatedRole::with_paths("c", vec![id(&k2)], 1, vec!["*".into()]);
    repo.delegate_role("p2", via_p2, k2.public_key().clone());
    // c is signed only with the key p1 gave it: trusted through p1, not through p2.
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, "file");
    assert!(
        matches!(&res, Err(TrustError::Signatures { role, delegator, .. }) if role == "c" && delegator == "p2"),
        "{:?}",
        res.map(|_| ())
    );
    assert_eq!(
        fetched,
        pairs(&[
            ("p1", "targets"),
            ("c", "p1"),
            ("p2", "targets"),
            ("c", "p2")
        ])
    );
    assert!(t.delegated("c", "p1").is_some());
    assert!(t.delegated("c", "p2").is_none());

    // Signed with both keys, it is trusted through both, separately.
    repo.roles.get_mut("c").unwrap().signers.push(k2.clone());
    repo.bump();
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, "file");
    assert_eq!(res.unwrap(), SearchStep::NotFound);
    assert_eq!(fetched.len(), 4);
    assert!(t.delegated("c", "p2").is_some());

    // A different c of the same version, served for the second path, is refused.
    let mut t = refreshed(&p);
    t.update_delegated_targets(&p.roles["p1"], "p1", "targets")
        .unwrap();
    t.update_delegated_targets(&p.roles["p2"], "p2", "targets")
        .unwrap();
    t.update_delegated_targets(&p.roles["c"], "c", "p1")
        .unwrap();
    let mut other_c = Metadata::<Targets>::from_bytes(&p.roles["c"]).unwrap();
    other_c
        .signed
        .targets
        .insert("file".into(), TargetFile::from_bytes(b"other"));
    let c_signers: Vec<&PrivateKey> = repo.roles["c"].signers.iter().map(|k| &**k).collect();
    let other_bytes = signed(&mut other_c, &c_signers);
    assert!(matches!(
        t.update_delegated_targets(&other_bytes, "c", "p2"),
        Err(TrustError::ConflictingCopies { .. })
    ));
}

fn bin_repo(bits: u32) -> (Repo, SuccinctRoles) {
    let mut repo = Repo::new();
    let k = key();
    let bins = SuccinctRoles::new(vec![id(&k)], 1, bits, "bin");
    repo.targets.signed.delegations = Some(Delegations::with_succinct_roles(
        BTreeMap::from([(id(&k), k.public_key().clone())]),
        bins.clone(),
    ));
    for name in bins.bin_names() {
        repo.roles.insert(
            name,
            DelegatedDoc {
                md: Metadata::new(Targets::new(1, later())),
                signers: vec![k.clone()],
            },
        );
    }
    (repo, bins)
}

#[test]
fn succinct_hash_bins_fetch_only_the_bin_of_the_target() {
    let (mut repo, bins) = bin_repo(4);
    let path = "releases/app-1.0.tgz";
    let bin = bins.bin_for_target(path);
    repo.add_target(&bin, path);
    // Another bin also claims the path; it is not the path's bin, so it is never consulted.
    let other = bins.bin_names().find(|n| *n != bin).unwrap();
    repo.targets_of(&other)
        .signed
        .targets
        .insert(path.into(), TargetFile::from_bytes(b"evil"));
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, path);
    let SearchStep::Found { role, target } = res.unwrap() else {
        panic!()
    };
    assert_eq!(role, bin);
    assert!(target.verify_bytes(path.as_bytes()).is_ok());
    assert_eq!(fetched, vec![(bin, "targets".to_string())]);
    // A missing path costs one bin and ends there (bins are terminating).
    let (res, fetched) = search(&mut t, &p, "missing");
    assert_eq!(res.unwrap(), SearchStep::NotFound);
    assert_eq!(fetched.len(), 1);
    // A name that is not one of the bins is not delegated.
    assert!(matches!(
        t.update_delegated_targets(&p.roles[&other], "bin-zz", "targets"),
        Err(TrustError::NotDelegated { .. })
    ));
    // The wrong bin's bytes under the right bin's name fail the snapshot's hashes.
    let mut t = refreshed(&p);
    let right = bins.bin_for_target(path);
    assert!(matches!(
        t.update_delegated_targets(&p.roles[&other], &right, "targets"),
        Err(TrustError::Content { .. })
    ));
}

#[test]
fn path_hash_prefix_delegations_route_by_hash() {
    let mut repo = Repo::new();
    let lo: Vec<String> = "01234567".chars().map(String::from).collect();
    let hi: Vec<String> = "89abcdef".chars().map(String::from).collect();
    for (name, prefixes) in [("lo", lo), ("hi", hi)] {
        let k = key();
        let role = DelegatedRole::with_hash_prefixes(name, vec![id(&k)], 1, prefixes);
        repo.delegate_role("targets", role, k.public_key().clone());
        repo.roles.insert(
            name.into(),
            DelegatedDoc {
                md: Metadata::new(Targets::new(1, later())),
                signers: vec![k],
            },
        );
    }
    let path = "x/y.bin";
    let owner = if airlock_core::tuf::path_hash(path).as_str() < "8" {
        "lo"
    } else {
        "hi"
    };
    let not_owner = if owner == "lo" { "hi" } else { "lo" };
    repo.add_target(owner, path);
    repo.targets_of(not_owner)
        .signed
        .targets
        .insert(path.into(), TargetFile::from_bytes(b"evil"));
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, path);
    assert!(matches!(res.unwrap(), SearchStep::Found { role, .. } if role == owner));
    assert_eq!(fetched, pairs(&[(owner, "targets")]));
}

#[test]
fn calls_out_of_order_and_unknown_roles_are_refused() {
    let mut repo = Repo::new();
    repo.delegate("targets", "a", &["*"], false);
    let p = repo.publish();
    let mut t = TrustedSet::new(&p.root, now()).unwrap();
    assert!(matches!(
        t.update_snapshot(&p.snapshot),
        Err(TrustError::OutOfOrder { .. })
    ));
    assert!(matches!(
        t.update_targets(&p.targets),
        Err(TrustError::OutOfOrder { .. })
    ));
    // A timestamp where a root belongs names the mix-up.
    assert!(matches!(
        t.update_root(&p.timestamp),
        Err(TrustError::Metadata(
            airlock_core::tuf::MetadataError::WrongType {
                expected: "root",
                ..
            }
        ))
    ));
    t.update_timestamp(&p.timestamp).unwrap();
    assert!(matches!(
        t.update_root(&p.root),
        Err(TrustError::OutOfOrder { .. })
    ));
    assert!(matches!(
        t.update_targets(&p.targets),
        Err(TrustError::OutOfOrder { .. })
    ));
    t.update_snapshot(&p.snapshot).unwrap();
    assert!(matches!(
        t.update_timestamp(&p.timestamp),
        Err(TrustError::OutOfOrder { .. })
    ));
    assert!(matches!(
        t.update_delegated_targets(&p.roles["a"], "a", "targets"),
        Err(TrustError::DelegatorNotLoaded { .. })
    ));
    t.update_targets(&p.targets).unwrap();
    assert!(matches!(
        t.update_snapshot(&p.snapshot),
        Err(TrustError::OutOfOrder { .. })
    ));
    assert!(matches!(
        t.update_delegated_targets(&p.roles["a"], "nobody", "targets"),
        Err(TrustError::NotDelegated { .. })
    ));
    assert!(matches!(
        t.update_delegated_targets(&p.roles["a"], "a", "root"),
        Err(TrustError::NotDelegated { .. })
    ));
    assert!(matches!(
        t.update_delegated_targets(&p.roles["a"], "b", "a"),
        Err(TrustError::DelegatorNotLoaded { .. })
    ));
    // The search refuses to go on if its caller skipped the role it asked for.
    let mut s = TargetSearch::new("file");
    assert_eq!(
        s.step(&t).unwrap(),
        SearchStep::NeedRole {
            role: "a".into(),
            parent: "targets".into()
        }
    );
    assert_eq!(
        s.step(&t),
        Err(SearchError::RoleNotLoaded {
            role: "a".into(),
            parent: "targets".into()
        })
    );
}

#[test]
fn a_role_missing_from_snapshot_is_refused() {
    let mut repo = Repo::new();
    repo.delegate("targets", "a", &["*"], false);
    let mut p = repo.publish();
    let mut snap = Metadata::<Snapshot>::from_bytes(&p.snapshot).unwrap();
    snap.signed.meta.remove("a.json");
    p.snapshot = signed(&mut snap, &[&repo.snapshot_signers[0]]);
    let mut ts = Metadata::<Timestamp>::from_bytes(&p.timestamp).unwrap();
    ts.signed
        .meta
        .insert("snapshot.json".into(), MetaFile::with_bytes(1, &p.snapshot));
    p.timestamp = signed(&mut ts, &[&repo.timestamp_signers[0]]);
    let mut t = refreshed(&p);
    let (res, _) = search(&mut t, &p, "x");
    assert!(matches!(res, Err(TrustError::NotInSnapshot { role }) if role == "a"));
}
