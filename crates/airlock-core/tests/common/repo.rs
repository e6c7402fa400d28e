//! An in-memory TUF repository for trust-logic tests: metadata built and signed here, served
//! as bytes to a `TrustedSet` (no network).

#![allow(unused_imports)]
// Re-exported so each test file needs only `use common::repo::*`.
pub use std::collections::BTreeMap;
pub use std::rc::Rc;

pub use airlock_core::crypto::{KeyScheme, PrivateKey, Signer};
pub use airlock_core::tuf::{
    CachedSnapshot, DelegatedRole, Delegations, MAX_ROOT_ROTATIONS, MetaFile, Metadata, Role, Root,
    SearchError, SearchStep, SignMode, Snapshot, SuccinctRoles, TargetFile, TargetSearch, Targets,
    TargetsLoad, Timestamp, TimestampUpdate, TrustError, TrustedSet,
};
pub use chrono::{DateTime, Duration, TimeZone, Utc};

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}
pub fn later() -> DateTime<Utc> {
    now() + Duration::days(365)
}
pub fn earlier() -> DateTime<Utc> {
    now() - Duration::days(1)
}
pub type K = Rc<PrivateKey>;

pub fn key() -> K {
    Rc::new(PrivateKey::generate(KeyScheme::Ed25519).unwrap())
}
pub fn id(k: &K) -> String {
    k.public_key().key_id()
}

pub fn signed<T: Role>(md: &mut Metadata<T>, signers: &[&PrivateKey]) -> Vec<u8> {
    md.signatures.clear();
    for s in signers {
        md.sign(*s, SignMode::Append).unwrap();
    }
    md.to_canonical_bytes().unwrap()
}

pub struct DelegatedDoc {
    pub md: Metadata<Targets>,
    pub signers: Vec<K>,
}

/// An in-memory repository whose fields tests change before (re)publishing.
pub struct Repo {
    pub root: Metadata<Root>,
    pub root_signers: Vec<K>,
    pub timestamp_signers: Vec<K>,
    pub snapshot_signers: Vec<K>,
    pub targets_signers: Vec<K>,
    pub timestamp: Metadata<Timestamp>,
    pub snapshot: Metadata<Snapshot>,
    pub targets: Metadata<Targets>,
    pub roles: BTreeMap<String, DelegatedDoc>,
    /// Whether snapshot lists hashes and lengths of targets roles.
    pub snapshot_hashes: bool,
}

/// One published state: the bytes a mirror would serve.
#[derive(Clone)]
pub struct Published {
    pub root: Vec<u8>,
    pub timestamp: Vec<u8>,
    pub snapshot: Vec<u8>,
    pub targets: Vec<u8>,
    pub roles: BTreeMap<String, Vec<u8>>,
}

impl Repo {
    pub fn new() -> Repo {
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

    pub fn root_bytes(&mut self) -> Vec<u8> {
        let signers: Vec<&PrivateKey> = self.root_signers.iter().map(|k| &**k).collect();
        signed(&mut self.root, &signers)
    }

    pub fn targets_of(&mut self, role: &str) -> &mut Metadata<Targets> {
        if role == "targets" {
            &mut self.targets
        } else {
            &mut self.roles.get_mut(role).unwrap().md
        }
    }

    pub fn add_target(&mut self, role: &str, path: &str) {
        self.targets_of(role)
            .signed
            .targets
            .insert(path.to_string(), TargetFile::from_bytes(path.as_bytes()));
    }

    /// `parent` delegates `name` (with a fresh key) for `paths`.
    pub fn delegate(&mut self, parent: &str, name: &str, paths: &[&str], terminating: bool) {
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

    pub fn delegate_role(
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

    pub fn publish(&mut self) -> Published {
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
    pub fn bump(&mut self) {
        self.timestamp.signed.version += 1;
        self.snapshot.signed.version += 1;
        self.targets.signed.version += 1;
        for r in self.roles.values_mut() {
            r.md.signed.version += 1;
        }
    }
}

/// A client that refreshed top-level metadata from `p`.
pub fn refreshed(p: &Published) -> TrustedSet {
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
pub fn search(
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

pub fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}
