//! The fixed world every harness runs in: keys from fixed seeds, a small TUF repository and a
//! small transparency log signed with them.
//!
//! Deterministic on purpose: an input that crashes once crashes again on replay, on any
//! machine. Holding the private keys lets a harness re-sign what the fuzzer wrote, so mutated
//! metadata and checkpoints get past the signature checks and reach the rules behind them
//! (versions, rollback, delegations, consistency) instead of stopping at "bad signature".

use std::collections::BTreeMap;
use std::sync::OnceLock;

use airlock_core::crypto::{Ed25519Private, PrivateKey, Signer};
use airlock_core::tlog::{
    Checkpoint, CosignatureSigner, Hash, KeyAlgorithm, LogVerifier, MemoryTree, Note, NoteSigner,
    Policy, ProofBundle, VerifierState, consistency_proof, inclusion_proof,
};
use airlock_core::transparency::{ReleaseStatement, TransparencyPolicy};
use airlock_core::tuf::{
    DelegatedRole, Delegations, MetaFile, Metadata, Role, Root, SignMode, Snapshot, TargetFile,
    Targets, Timestamp, TimestampUpdate, TrustedSet,
};
use chrono::{DateTime, TimeZone, Utc};

/// The clock of every TUF update in the harnesses.
pub fn reference_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn expires() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The clock of every log verification (POSIX seconds); cosignatures are dated just before.
pub const NOW_SECS: u64 = 1_900_000_000;
pub const COSIGNED_AT: u64 = NOW_SECS - 60;
pub const LOG_ORIGIN: &str = "example.com/fuzz-log";
pub const WITNESS_NAME: &str = "witness.example/fuzz";
/// Delegated roles the fixture snapshot lists (role-a by targets, role-c by role-a).
pub const ROLE_A: &str = "role-a";
pub const ROLE_C: &str = "role-c";
/// Entries in the fixture log; the stored (witness) and trusted (client) checkpoint is at
/// [`OLD_SIZE`], the latest at [`LOG_SIZE`].
pub const LOG_SIZE: u64 = 10;
pub const OLD_SIZE: u64 = 5;
/// The entry the fixture proof bundle proves.
pub const PROVEN_INDEX: u64 = 3;
/// The release log ([`Release`]): the repository its statements name, its origin, its size,
/// the size of the checkpoint a client already trusts, and the statement its bundles prove
/// (`targets` at [`RELEASE_VERSION`], in the old tree and the latest).
pub const RELEASE_REPOSITORY: &str = "example.com/fuzz-app";
pub const RELEASE_LOG_ORIGIN: &str = "example.com/fuzz-release-log";
pub const RELEASE_LOG_SIZE: u64 = 7;
pub const RELEASE_OLD_SIZE: u64 = 4;
pub const RELEASE_ROLE: &str = "targets";
pub const RELEASE_INDEX: u64 = 3;
pub const RELEASE_VERSION: u64 = RELEASE_INDEX + 1;

pub struct Fixture {
    pub root_key: PrivateKey,
    pub timestamp_key: PrivateKey,
    pub snapshot_key: PrivateKey,
    pub targets_key: PrivateKey,
    /// Signs role-a and role-c.
    pub delegated_key: PrivateKey,
    pub root: Vec<u8>,
    pub timestamp: Vec<u8>,
    pub snapshot: Vec<u8>,
    pub targets: Vec<u8>,
    pub role_a: Vec<u8>,
    pub role_c: Vec<u8>,

    pub log: NoteSigner,
    pub witness: CosignatureSigner,
    pub tree: MemoryTree,
    /// Checkpoint notes of the tree at [`OLD_SIZE`] and [`LOG_SIZE`], log-signed and cosigned.
    pub old_note: Vec<u8>,
    pub note: Vec<u8>,
    pub old_checkpoint: Checkpoint,
    /// `log <vkey>`, `witness w1 <vkey>`, `quorum w1`.
    pub policy_text: Vec<u8>,
    pub policy: Policy,
    /// The proof bundle for [`PROVEN_INDEX`] in the tree at [`LOG_SIZE`].
    pub proof_bundle: Vec<u8>,
    /// The add-checkpoint request from [`OLD_SIZE`] to [`LOG_SIZE`].
    pub add_checkpoint: Vec<u8>,
    pub consistency: Vec<Hash>,
    pub release: Release,
}

/// A transparency log of release statements (entry `i`: `targets` v`i + 1`), with the policy a
/// root would carry for it: that log, the fixture witness, quorum of that witness.
pub struct Release {
    pub log: NoteSigner,
    pub tree: MemoryTree,
    pub policy: TransparencyPolicy,
    /// Checkpoint notes at [`RELEASE_OLD_SIZE`] and [`RELEASE_LOG_SIZE`], cosigned.
    pub old_note: Vec<u8>,
    pub note: Vec<u8>,
    /// A client that trusts the old checkpoint, and one that trusts the latest.
    pub old_state: VerifierState,
    pub state: VerifierState,
    /// Proof bundles of entry [`RELEASE_INDEX`] at the latest and at the old size.
    pub bundle: Vec<u8>,
    pub old_bundle: Vec<u8>,
}

/// The `targets` metadata whose statement is entry `version - 1` of the release log.
pub fn release_metadata(version: u64) -> Vec<u8> {
    format!("{{\"fuzz\":\"targets v{version}\"}}").into_bytes()
}

/// Entry `i` of the release log.
pub fn release_entry(i: u64) -> Vec<u8> {
    let v = i + 1;
    ReleaseStatement::for_metadata(RELEASE_REPOSITORY, RELEASE_ROLE, v, &release_metadata(v))
        .to_bytes()
}

impl Release {
    fn build(witness: &CosignatureSigner) -> Result<Release, String> {
        let s = |e: &dyn std::fmt::Display| e.to_string();
        let log = NoteSigner::from_seed(RELEASE_LOG_ORIGIN, KeyAlgorithm::Ed25519, &[9; 32])
            .map_err(|e| s(&e))?;
        let mut tree = MemoryTree::new();
        let mut old_root = None;
        for i in 0..RELEASE_LOG_SIZE {
            tree.push(&release_entry(i));
            if tree.size() == RELEASE_OLD_SIZE {
                old_root = Some(tree.root());
            }
        }
        let old_root = old_root.ok_or("no old release root")?;
        let policy_text = format!(
            "log {} https://log.example/\nwitness w1 {}\nquorum w1\n",
            log.verifier().to_vkey(),
            witness.verifier().to_vkey()
        );
        let policy =
            TransparencyPolicy::new(RELEASE_REPOSITORY, &policy_text).map_err(|e| s(&e))?;
        let cosigned = |size: u64, root: Hash| -> Result<Vec<u8>, String> {
            let cp = Checkpoint::new(RELEASE_LOG_ORIGIN, size, root).map_err(|e| s(&e))?;
            let mut note = cp.sign(&log).map_err(|e| s(&e))?;
            witness
                .cosign_note(&mut note, COSIGNED_AT)
                .map_err(|e| s(&e))?;
            Ok(note.to_bytes())
        };
        let old_note = cosigned(RELEASE_OLD_SIZE, old_root)?;
        let note = cosigned(RELEASE_LOG_SIZE, tree.root())?;
        let verifier = LogVerifier::new(policy.policy().clone());
        let trusting = |note: &[u8]| {
            verifier
                .verify_checkpoint(&VerifierState::new(), note, None, NOW_SECS)
                .map(|u| u.state)
                .map_err(|e| s(&e))
        };
        let (old_state, state) = (trusting(&old_note)?, trusting(&note)?);
        let bundle_at = |size: u64, checkpoint: &[u8]| -> Result<Vec<u8>, String> {
            Ok(ProofBundle {
                extra: None,
                index: RELEASE_INDEX,
                inclusion_proof: inclusion_proof(&tree, RELEASE_INDEX, size).map_err(|e| s(&e))?,
                checkpoint: checkpoint.to_vec(),
            }
            .to_bytes())
        };
        let bundle = bundle_at(RELEASE_LOG_SIZE, &note)?;
        let old_bundle = bundle_at(RELEASE_OLD_SIZE, &old_note)?;
        Ok(Release {
            log,
            tree,
            policy,
            old_note,
            note,
            old_state,
            state,
            bundle,
            old_bundle,
        })
    }

    /// A note with `text`, signed by the release log and cosigned by the fixture witness.
    pub fn sign_checkpoint_text(&self, witness: &CosignatureSigner, text: &str) -> Option<Vec<u8>> {
        let mut note = Note::new(text).ok()?;
        note.sign(&self.log).ok()?;
        witness.cosign_note(&mut note, COSIGNED_AT).ok()?;
        Some(note.to_bytes())
    }
}

fn key(seed: u8) -> PrivateKey {
    PrivateKey::Ed25519(Ed25519Private::from_seed(&[seed; 32]))
}

/// Replace every signature by one from `key`, as compact JSON (what a publisher serves);
/// `None` when the value has no canonical form to sign.
pub fn resign<T: Role>(md: &mut Metadata<T>, key: &PrivateKey) -> Option<Vec<u8>> {
    md.sign(key, SignMode::ReplaceAll).ok()?;
    serde_json::to_vec(md).ok()
}

/// The entry at `i` of the fixture log.
pub fn entry(i: u64) -> Vec<u8> {
    format!("fuzz entry {i}\n").into_bytes()
}

impl Fixture {
    /// The fixture, built once per process.
    pub fn get() -> &'static Fixture {
        static F: OnceLock<Fixture> = OnceLock::new();
        F.get_or_init(|| Fixture::build().unwrap_or_else(|e| panic!("fuzz fixture: {e}")))
    }

    fn build() -> Result<Fixture, String> {
        let (root_key, timestamp_key, snapshot_key, targets_key, delegated_key) =
            (key(1), key(2), key(3), key(4), key(5));
        let mut root = Root::new(expires());
        root.add_key("root", root_key.public_key().clone());
        root.add_key("timestamp", timestamp_key.public_key().clone());
        root.add_key("snapshot", snapshot_key.public_key().clone());
        root.add_key("targets", targets_key.public_key().clone());
        let sign_err = |e: &str| format!("signing the {e}");
        let root = resign(&mut Metadata::new(root), &root_key).ok_or_else(|| sign_err("root"))?;

        let timestamp = Timestamp::new(1, expires(), MetaFile::new(1));
        let timestamp = resign(&mut Metadata::new(timestamp), &timestamp_key)
            .ok_or_else(|| sign_err("timestamp"))?;

        let mut snapshot = Snapshot::new(1, expires());
        for role in ["targets", ROLE_A, ROLE_C] {
            snapshot
                .meta
                .insert(format!("{role}.json"), MetaFile::new(1));
        }
        let snapshot = resign(&mut Metadata::new(snapshot), &snapshot_key)
            .ok_or_else(|| sign_err("snapshot"))?;

        let delegated_public = delegated_key.public_key().clone();
        let delegated_id = delegated_public.key_id();
        let delegation = |name: &str, paths: &[&str]| {
            let paths = paths.iter().map(|p| p.to_string()).collect();
            let role = DelegatedRole::with_paths(name, vec![delegated_id.clone()], 1, paths);
            let keys = BTreeMap::from([(delegated_id.clone(), delegated_public.clone())]);
            Delegations::with_roles(keys, vec![role])
        };
        let with_target = |mut t: Targets, path: &str| {
            t.targets
                .insert(path.into(), TargetFile::from_bytes(path.as_bytes()));
            t
        };
        let mut targets = with_target(Targets::new(1, expires()), "file.txt");
        targets.delegations = Some(delegation(ROLE_A, &["a/*"]));
        let targets =
            resign(&mut Metadata::new(targets), &targets_key).ok_or_else(|| sign_err("targets"))?;
        let mut role_a = with_target(Targets::new(1, expires()), "a/file.txt");
        role_a.delegations = Some(delegation(ROLE_C, &["a/c/*"]));
        let role_a =
            resign(&mut Metadata::new(role_a), &delegated_key).ok_or_else(|| sign_err("role-a"))?;
        let role_c = with_target(Targets::new(1, expires()), "a/c/file.txt");
        let role_c =
            resign(&mut Metadata::new(role_c), &delegated_key).ok_or_else(|| sign_err("role-c"))?;

        let log = NoteSigner::from_seed(LOG_ORIGIN, KeyAlgorithm::Ed25519, &[6; 32])
            .map_err(|e| e.to_string())?;
        let witness =
            CosignatureSigner::from_seed(WITNESS_NAME, &[7; 32]).map_err(|e| e.to_string())?;
        let mut tree = MemoryTree::new();
        let mut old_root = None;
        for i in 0..LOG_SIZE {
            tree.push(&entry(i));
            if tree.size() == OLD_SIZE {
                old_root = Some(tree.root());
            }
        }
        let old_root = old_root.ok_or("no old root")?;
        let old_checkpoint =
            Checkpoint::new(LOG_ORIGIN, OLD_SIZE, old_root).map_err(|e| e.to_string())?;
        let checkpoint =
            Checkpoint::new(LOG_ORIGIN, LOG_SIZE, tree.root()).map_err(|e| e.to_string())?;
        let cosigned = |cp: &Checkpoint| -> Result<Note, String> {
            let mut note = cp.sign(&log).map_err(|e| e.to_string())?;
            witness
                .cosign_note(&mut note, COSIGNED_AT)
                .map_err(|e| e.to_string())?;
            Ok(note)
        };
        let old_note = cosigned(&old_checkpoint)?.to_bytes();
        let note = cosigned(&checkpoint)?.to_bytes();

        let policy_text = format!(
            "log {}\nwitness w1 {}\nquorum w1\n",
            log.verifier().to_vkey(),
            witness.verifier().to_vkey()
        )
        .into_bytes();
        let policy = Policy::parse(&policy_text).map_err(|e| e.to_string())?;

        let proof = inclusion_proof(&tree, PROVEN_INDEX, LOG_SIZE).map_err(|e| e.to_string())?;
        let proof_bundle = airlock_core::tlog::ProofBundle {
            extra: None,
            index: PROVEN_INDEX,
            inclusion_proof: proof,
            checkpoint: note.clone(),
        }
        .to_bytes();
        let consistency =
            consistency_proof(&tree, OLD_SIZE, LOG_SIZE).map_err(|e| e.to_string())?;
        let log_signed = checkpoint.sign(&log).map_err(|e| e.to_string())?.to_bytes();
        let add_checkpoint = airlock_core::tlog::AddCheckpointRequest::new(
            OLD_SIZE,
            consistency.clone(),
            &log_signed,
        )
        .map_err(|e| e.to_string())?
        .to_bytes();
        let release = Release::build(&witness)?;

        Ok(Fixture {
            root_key,
            timestamp_key,
            snapshot_key,
            targets_key,
            delegated_key,
            root,
            timestamp,
            snapshot,
            targets,
            role_a,
            role_c,
            log,
            witness,
            tree,
            old_note,
            note,
            old_checkpoint,
            policy_text,
            policy,
            proof_bundle,
            add_checkpoint,
            consistency,
            release,
        })
    }

    /// A trusted set holding only the fixture root.
    pub fn at_root(&self) -> Option<TrustedSet> {
        TrustedSet::new(&self.root, reference_time()).ok()
    }

    /// ... plus the fixture timestamp.
    pub fn at_timestamp(&self) -> Option<TrustedSet> {
        let mut t = self.at_root()?;
        (t.update_timestamp(&self.timestamp).ok()? == TimestampUpdate::Updated).then_some(t)
    }

    /// ... plus the fixture snapshot.
    pub fn at_snapshot(&self) -> Option<TrustedSet> {
        let mut t = self.at_timestamp()?;
        t.update_snapshot(&self.snapshot).ok()?;
        Some(t)
    }

    /// ... plus the fixture top-level targets (which delegates role-a).
    pub fn at_targets(&self) -> Option<TrustedSet> {
        let mut t = self.at_snapshot()?;
        t.update_targets(&self.targets).ok()?;
        Some(t)
    }

    /// A note with `text`, signed by the fixture log and cosigned by the fixture witness.
    pub fn sign_checkpoint_text(&self, text: &str) -> Option<Vec<u8>> {
        let mut note = Note::new(text).ok()?;
        note.sign(&self.log).ok()?;
        self.witness.cosign_note(&mut note, COSIGNED_AT).ok()?;
        Some(note.to_bytes())
    }
}
