//! Client-side verification of logged entries: policy, proof bundle and entry in, accept or a
//! typed reason out.
//!
//! The client is its own witness. [`VerifierState`] holds, per log origin, the largest checkpoint
//! the client has accepted; it is a plain value the caller persists (as JSON) and hands back. A
//! checkpoint of a different size is accepted only with a valid consistency proof between it and
//! the stored one (in whichever direction: smaller to larger), so the client can never be moved
//! onto a fork. Two checkpoints of the same size with different roots are a split view: proof
//! that the log showed different trees to different parties, refused with
//! [`VerifyError::SplitView`] carrying both roots.
//!
//! The first checkpoint for an origin is accepted on the strength of the policy alone (log
//! signature plus witness quorum): that is what witnesses are for.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::checkpoint::Checkpoint;
use super::merkle::{Hash, MerkleError, leaf_hash, verify_consistency};
use super::policy::{AcceptedCheckpoint, Policy, PolicyCheckError};
use super::proof::{ProofBundle, ProofError};

/// Why an entry or checkpoint was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("proof bundle")]
    Bundle(#[from] ProofError),
    #[error("policy")]
    Policy(#[from] PolicyCheckError),
    #[error("entry is not at index {index} of the checkpoint of size {size}")]
    NotIncluded {
        index: u64,
        size: u64,
        #[source]
        source: MerkleError,
    },
    #[error(
        "log {origin:?}: a consistency proof between the trusted checkpoint (size {trusted_size}) and the new one (size {new_size}) is required"
    )]
    ConsistencyProofRequired {
        origin: String,
        trusted_size: u64,
        new_size: u64,
    },
    #[error(
        "log {origin:?}: checkpoint of size {new_size} is not consistent with the trusted checkpoint of size {trusted_size} (fork, or a bad proof)"
    )]
    Inconsistent {
        origin: String,
        trusted_size: u64,
        new_size: u64,
        #[source]
        source: MerkleError,
    },
    #[error(
        "SPLIT VIEW: log {:?} presented two different trees of size {}: trusted root {}, new root {}",
        .0.origin, .0.size, .0.trusted_root, .0.new_root
    )]
    SplitView(Box<SplitView>),
    #[error("verifier state: {0}")]
    State(String),
}

/// Evidence of a split view: two signed checkpoints of one log, same size, different roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitView {
    pub origin: String,
    pub size: u64,
    /// Base64 root hashes.
    pub trusted_root: String,
    pub new_root: String,
    /// The cosigned checkpoint note the client had accepted.
    pub trusted_note: String,
    /// The conflicting cosigned checkpoint note.
    pub new_note: String,
}

/// The client's memory: the largest accepted cosigned checkpoint per log origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifierState {
    /// origin -> (parsed checkpoint, the cosigned note exactly as accepted)
    logs: BTreeMap<String, (Checkpoint, String)>,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    /// origin -> cosigned checkpoint note
    checkpoints: BTreeMap<String, String>,
}

impl VerifierState {
    /// The empty state of a client that has accepted nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The trusted checkpoint for `origin`, if any.
    pub fn checkpoint(&self, origin: &str) -> Option<&Checkpoint> {
        self.logs.get(origin).map(|(c, _)| c)
    }

    /// The trusted cosigned checkpoint note for `origin`, as accepted.
    pub fn checkpoint_note(&self, origin: &str) -> Option<&str> {
        self.logs.get(origin).map(|(_, n)| n.as_str())
    }

    /// Serialize for storage (JSON). The caller writes it atomically.
    pub fn to_json(&self) -> String {
        let file = StateFile {
            version: 1,
            checkpoints: self
                .logs
                .iter()
                .map(|(o, (_, n))| (o.clone(), n.clone()))
                .collect(),
        };
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }

    /// Load stored state. Each note must parse as a checkpoint of its origin; signatures were
    /// checked when it was accepted and are not re-checked (the file is the client's own).
    pub fn from_json(s: &str) -> Result<Self, VerifyError> {
        let file: StateFile =
            serde_json::from_str(s).map_err(|e| VerifyError::State(e.to_string()))?;
        if file.version != 1 {
            return Err(VerifyError::State(format!(
                "unknown state version {}",
                file.version
            )));
        }
        let mut logs = BTreeMap::new();
        for (origin, note) in file.checkpoints {
            let parsed = super::note::Note::parse(note.as_bytes())
                .map_err(|e| VerifyError::State(format!("{origin}: {e}")))?;
            let cp = Checkpoint::parse_text(parsed.text())
                .map_err(|e| VerifyError::State(format!("{origin}: {e}")))?;
            if cp.origin != origin {
                return Err(VerifyError::State(format!(
                    "checkpoint stored under {origin:?} is for {:?}",
                    cp.origin
                )));
            }
            logs.insert(origin, (cp, note));
        }
        Ok(VerifierState { logs })
    }
}

/// An entry that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedEntry {
    /// The checkpoint the entry is included in.
    pub checkpoint: Checkpoint,
    /// Index of the entry in the log.
    pub index: u64,
    /// Witnesses whose cosignatures counted toward the quorum.
    pub witnesses: Vec<String>,
    /// The state to persist: advanced if the checkpoint is larger than the trusted one.
    pub state: VerifierState,
    /// Whether `state` differs from the state passed in.
    pub advanced: bool,
}

/// A checkpoint that passed the policy and the consistency rules.
#[derive(Debug, Clone)]
pub struct VerifiedCheckpointUpdate {
    pub accepted: AcceptedCheckpoint,
    pub state: VerifierState,
    pub advanced: bool,
}

/// Verifies proof bundles and checkpoints against a [`Policy`] and a [`VerifierState`].
#[derive(Debug, Clone)]
pub struct LogVerifier {
    policy: Policy,
}

impl LogVerifier {
    pub fn new(policy: Policy) -> Self {
        LogVerifier { policy }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Accept a cosigned checkpoint: it must satisfy the policy at `now` and be consistent
    /// with the trusted checkpoint for its origin. `consistency` is the proof between the two
    /// sizes (from the smaller to the larger); it is needed only when the sizes differ.
    pub fn verify_checkpoint(
        &self,
        state: &VerifierState,
        checkpoint_note: &[u8],
        consistency: Option<&[Hash]>,
        now: u64,
    ) -> Result<VerifiedCheckpointUpdate, VerifyError> {
        let accepted = self.policy.verify_checkpoint(checkpoint_note, now)?;
        apply(state, accepted, consistency)
    }

    /// Verify that `entry` is logged: the bundle's checkpoint satisfies the policy and is
    /// consistent with the trusted state, and the entry's RFC 6962 leaf hash is included at the
    /// bundle's index.
    pub fn verify_entry(
        &self,
        state: &VerifierState,
        bundle: &ProofBundle,
        entry: &[u8],
        consistency: Option<&[Hash]>,
        now: u64,
    ) -> Result<VerifiedEntry, VerifyError> {
        self.verify_leaf(state, bundle, &leaf_hash(entry), consistency, now)
    }

    /// As [`LogVerifier::verify_entry`], given the leaf hash instead of the entry.
    pub fn verify_leaf(
        &self,
        state: &VerifierState,
        bundle: &ProofBundle,
        leaf: &Hash,
        consistency: Option<&[Hash]>,
        now: u64,
    ) -> Result<VerifiedEntry, VerifyError> {
        let accepted = self.policy.verify_checkpoint(&bundle.checkpoint, now)?;
        // Inclusion before the state: a bundle that fails it must not move the state.
        bundle
            .verify_inclusion_in(leaf, &accepted.opened)
            .map_err(|e| match e {
                ProofError::Inclusion {
                    index,
                    size,
                    source,
                } => VerifyError::NotIncluded {
                    index,
                    size,
                    source,
                },
                other => VerifyError::Bundle(other),
            })?;
        let update = apply(state, accepted, consistency)?;
        Ok(VerifiedEntry {
            checkpoint: update.accepted.opened.checkpoint,
            index: bundle.index,
            witnesses: update.accepted.counted_witnesses,
            state: update.state,
            advanced: update.advanced,
        })
    }
}

/// Check a policy-accepted checkpoint against the trusted state and compute the next state.
fn apply(
    state: &VerifierState,
    accepted: AcceptedCheckpoint,
    consistency: Option<&[Hash]>,
) -> Result<VerifiedCheckpointUpdate, VerifyError> {
    let new = &accepted.opened.checkpoint;
    let new_note = accepted.opened.note.to_string();
    let mut next = state.clone();
    let advanced = match state.logs.get(&new.origin) {
        None => true,
        Some((trusted, trusted_note)) => {
            check_consistent(trusted, trusted_note, new, &new_note, consistency)?;
            new.size > trusted.size
        }
    };
    if advanced {
        next.logs
            .insert(new.origin.clone(), (new.clone(), new_note));
    }
    Ok(VerifiedCheckpointUpdate {
        accepted,
        state: next,
        advanced,
    })
}

fn check_consistent(
    trusted: &Checkpoint,
    trusted_note: &str,
    new: &Checkpoint,
    new_note: &str,
    consistency: Option<&[Hash]>,
) -> Result<(), VerifyError> {
    if trusted.size == new.size {
        if trusted.root_hash != new.root_hash {
            return Err(VerifyError::SplitView(Box::new(SplitView {
                origin: new.origin.clone(),
                size: new.size,
                trusted_root: STANDARD.encode(trusted.root_hash),
                new_root: STANDARD.encode(new.root_hash),
                trusted_note: trusted_note.into(),
                new_note: new_note.into(),
            })));
        }
        return Ok(());
    }
    // Any tree extends the empty tree.
    if trusted.size == 0 {
        return Ok(());
    }
    let Some(proof) = consistency else {
        return Err(VerifyError::ConsistencyProofRequired {
            origin: new.origin.clone(),
            trusted_size: trusted.size,
            new_size: new.size,
        });
    };
    let (small, large) = if trusted.size < new.size {
        (trusted, new)
    } else {
        (new, trusted)
    };
    let result = if small.size == 0 {
        Ok(())
    } else {
        verify_consistency(
            small.size,
            large.size,
            proof,
            &small.root_hash,
            &large.root_hash,
        )
    };
    result.map_err(|source| VerifyError::Inconsistent {
        origin: new.origin.clone(),
        trusted_size: trusted.size,
        new_size: new.size,
        source,
    })
}
