//! The peer check: before installing, a client compares its own trusted checkpoint of the log
//! with the newest checkpoints its peers (witnesses, other clients, a distributor) have seen.
//! No I/O: the caller fetches each peer's checkpoint note and, when sizes differ, the
//! consistency proof from the log's tiles.
//!
//! A peer's checkpoint counts only when it satisfies the policy (log signature and witness
//! quorum): anyone can serve bytes. A checkpoint that does, but is not consistent with the
//! client's (same size and another root, or a proof that fails), is proof that the log showed
//! two trees: the update is held whatever the other peers say. Peers that do not answer, or
//! answer with something unusable, are reported and do not count toward
//! [`PeerTally::decide`]'s required number.
//!
//! ```text
//! let mut tally = PeerTally::default();
//! for peer in peers {
//!     let Ok(note) = fetch(peer) else { tally.record(peer, PeerVerdict::NoAnswer(..)); continue };
//!     let mut proof = None;
//!     let verdict = loop {
//!         match check_peer_checkpoint(&policy, &state, &note, proof.as_deref(), now) {
//!             Ok(PeerStep::Checked(update)) => { state = update.state; break PeerVerdict::Agrees(..) }
//!             Ok(PeerStep::NeedConsistency { from_size, to_size, .. }) => proof = Some(..),
//!             Err(e) => break PeerVerdict::from_error(e),
//!         }
//!     };
//!     tally.record(peer, verdict);
//! }
//! tally.decide(required)?;
//! ```

use crate::tlog::{
    Hash, LogVerifier, SplitView, VerifiedCheckpointUpdate, VerifierState, VerifyError,
};
use crate::transparency::TransparencyPolicy;

/// One step of [`check_peer_checkpoint`].
#[derive(Debug)]
pub enum PeerStep {
    /// The checkpoint satisfies the policy and is consistent with the client's (persist
    /// `state` when `advanced`).
    Checked(Box<VerifiedCheckpointUpdate>),
    /// Sizes differ: call again with the consistency proof between them (smaller first), read
    /// from the log's tiles at `to_size`.
    NeedConsistency {
        origin: String,
        from_size: u64,
        to_size: u64,
    },
}

/// Check one peer's checkpoint note against the client's state under `policy`.
pub fn check_peer_checkpoint(
    policy: &TransparencyPolicy,
    state: &VerifierState,
    note: &[u8],
    consistency: Option<&[Hash]>,
    now: u64,
) -> Result<PeerStep, VerifyError> {
    let verifier = LogVerifier::new(policy.policy().clone());
    match verifier.verify_checkpoint(state, note, consistency, now) {
        Ok(update) => Ok(PeerStep::Checked(Box::new(update))),
        Err(VerifyError::ConsistencyProofRequired {
            origin,
            trusted_size,
            new_size,
        }) if consistency.is_none() => Ok(PeerStep::NeedConsistency {
            origin,
            from_size: trusted_size.min(new_size),
            to_size: trusted_size.max(new_size),
        }),
        Err(e) => Err(e),
    }
}

/// What one peer's answer showed.
#[derive(Debug)]
pub enum PeerVerdict {
    /// A checkpoint of this size, signed as the policy requires and consistent with the
    /// client's.
    Agrees { size: u64 },
    /// A checkpoint signed as the policy requires and NOT consistent with the client's: the log
    /// showed two trees.
    Fork(VerifyError),
    /// The peer could not be asked or its answer could not be used (no answer, not a checkpoint
    /// of this log, below the witness quorum, tiles to compare it were not available).
    Unusable(String),
}

impl PeerVerdict {
    /// The verdict for a refusal of [`check_peer_checkpoint`] (or of the consistency proof).
    pub fn from_error(e: VerifyError) -> Self {
        match e {
            VerifyError::SplitView(_) | VerifyError::Inconsistent { .. } => PeerVerdict::Fork(e),
            other => PeerVerdict::Unusable(crate::error_chain(&other)),
        }
    }
}

/// Why the peer check holds the update.
#[derive(Debug, thiserror::Error)]
pub enum PeerHold {
    #[error("peer {peer} shows a different tree of the log")]
    Fork {
        peer: String,
        #[source]
        source: VerifyError,
    },
    #[error(
        "only {agreeing} of the {required} peers required agree with the client's checkpoint \
         (not usable: {unusable})"
    )]
    TooFew {
        agreeing: usize,
        required: usize,
        /// `peer: reason` for each peer that did not count.
        unusable: String,
    },
}

impl PeerHold {
    /// The split-view evidence (both checkpoints), when the fork is one of the same size.
    pub fn split_view(&self) -> Option<&SplitView> {
        match self {
            PeerHold::Fork {
                source: VerifyError::SplitView(s),
                ..
            } => Some(s),
            _ => None,
        }
    }
}

/// The answers of every configured peer.
#[derive(Debug, Default)]
pub struct PeerTally {
    pub results: Vec<(String, PeerVerdict)>,
}

impl PeerTally {
    pub fn record(&mut self, peer: &str, verdict: PeerVerdict) {
        self.results.push((peer.to_string(), verdict));
    }

    /// Peers that did not count, as `peer: reason`.
    pub fn unusable(&self) -> Vec<String> {
        self.results
            .iter()
            .filter_map(|(p, v)| match v {
                PeerVerdict::Unusable(why) => Some(format!("{p}: {why}")),
                _ => None,
            })
            .collect()
    }

    /// Hold on any fork; otherwise at least `required` peers must agree.
    pub fn decide(self, required: usize) -> Result<usize, PeerHold> {
        let unusable = self.unusable();
        let mut agreeing = 0;
        for (peer, verdict) in self.results {
            match verdict {
                PeerVerdict::Fork(source) => return Err(PeerHold::Fork { peer, source }),
                PeerVerdict::Agrees { .. } => agreeing += 1,
                PeerVerdict::Unusable(_) => {}
            }
        }
        if agreeing < required {
            return Err(PeerHold::TooFew {
                agreeing,
                required,
                unusable: if unusable.is_empty() {
                    "none".into()
                } else {
                    unusable.join("; ")
                },
            });
        }
        Ok(agreeing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fork_holds_whatever_the_others_say_and_silence_does_not_count() {
        let mut t = PeerTally::default();
        t.record("a", PeerVerdict::Agrees { size: 3 });
        t.record("b", PeerVerdict::Unusable("no answer".into()));
        assert!(matches!(
            t.decide(2),
            Err(PeerHold::TooFew { agreeing: 1, required: 2, ref unusable }) if unusable == "b: no answer"
        ));
        let mut t = PeerTally::default();
        t.record("a", PeerVerdict::Agrees { size: 3 });
        t.record(
            "b",
            PeerVerdict::from_error(VerifyError::Inconsistent {
                origin: "o".into(),
                trusted_size: 3,
                new_size: 5,
                source: crate::tlog::MerkleError::BadRequest("x".into()),
            }),
        );
        assert!(matches!(t.decide(0), Err(PeerHold::Fork { ref peer, .. }) if peer == "b"));
        let mut t = PeerTally::default();
        t.record("a", PeerVerdict::Agrees { size: 3 });
        assert_eq!(t.decide(1).unwrap(), 1);
    }
}
