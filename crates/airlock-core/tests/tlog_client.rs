//! End to end through the I/O-free core: a log (in-memory tree) signs checkpoints, witnesses
//! cosign them, proof bundles travel as bytes, and a client with a policy and persisted state
//! accepts honest growth and refuses every attack: forks, split views, missing quorum, entries
//! that are not in the tree, and stale or unproven checkpoints.

use airlock_core::tlog::{
    Checkpoint, CosignatureSigner, KeyAlgorithm, LogVerifier, MemoryTree, Note, NoteSigner, Policy,
    PolicyCheckError, ProofBundle, VerifierState, VerifyError, consistency_proof, inclusion_proof,
};

const ORIGIN: &str = "log.example/airlock";
const NOW: u64 = 1_800_000_000;

struct World {
    log_key: NoteSigner,
    witnesses: Vec<CosignatureSigner>,
    verifier: LogVerifier,
}

fn world() -> World {
    let log_key = NoteSigner::generate(ORIGIN, KeyAlgorithm::Ed25519).unwrap();
    let witnesses: Vec<_> = (1..=3)
        .map(|i| CosignatureSigner::generate(&format!("w{i}.example")).unwrap())
        .collect();
    let mut policy = format!("log {}\n", log_key.verifier());
    for (i, w) in witnesses.iter().enumerate() {
        policy.push_str(&format!("witness W{i} {}\n", w.verifier()));
    }
    policy.push_str("group two 2 W0 W1 W2\nquorum two\n");
    World {
        verifier: LogVerifier::new(Policy::parse(policy.as_bytes()).unwrap()),
        log_key,
        witnesses,
    }
}

fn entry(i: u64) -> Vec<u8> {
    format!("release {i}").into_bytes()
}

fn tree(n: u64, fork_at: Option<u64>) -> MemoryTree {
    let mut t = MemoryTree::new();
    for i in 0..n {
        if Some(i) == fork_at {
            t.push(b"evil twin");
        } else {
            t.push(&entry(i));
        }
    }
    t
}

impl World {
    /// The checkpoint of `t`, signed by the log and cosigned by the witnesses in `by`.
    fn checkpoint(&self, t: &MemoryTree, by: &[usize]) -> Vec<u8> {
        let cp = Checkpoint::new(ORIGIN, t.size(), t.root()).unwrap();
        let mut note = cp.sign(&self.log_key).unwrap();
        for &w in by {
            self.witnesses[w].cosign_note(&mut note, NOW - 10).unwrap();
        }
        note.to_bytes()
    }

    fn bundle(&self, t: &MemoryTree, index: u64, by: &[usize]) -> ProofBundle {
        let bytes = ProofBundle {
            extra: None,
            index,
            inclusion_proof: inclusion_proof(t, index, t.size()).unwrap(),
            checkpoint: self.checkpoint(t, by),
        }
        .to_bytes();
        ProofBundle::parse(&bytes).unwrap()
    }
}

#[test]
fn honest_growth_is_accepted_and_persisted() {
    let w = world();
    let t5 = tree(5, None);
    let first = w
        .verifier
        .verify_entry(
            &VerifierState::new(),
            &w.bundle(&t5, 3, &[0, 1]),
            &entry(3),
            None,
            NOW,
        )
        .unwrap();
    assert!(first.advanced);
    assert_eq!(first.checkpoint.size, 5);
    assert_eq!(first.witnesses.len(), 2);

    // The state survives a round trip through its stored form.
    let state = VerifierState::from_json(&first.state.to_json()).unwrap();
    assert_eq!(state, first.state);

    // A larger tree: refused without a consistency proof, accepted with one.
    let t9 = tree(9, None);
    let b9 = w.bundle(&t9, 7, &[1, 2]);
    let err = w
        .verifier
        .verify_entry(&state, &b9, &entry(7), None, NOW)
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::ConsistencyProofRequired { .. }),
        "{err}"
    );
    let proof = consistency_proof(&t9, 5, 9).unwrap();
    let second = w
        .verifier
        .verify_entry(&state, &b9, &entry(7), Some(&proof), NOW)
        .unwrap();
    assert!(second.advanced);
    assert_eq!(second.state.checkpoint(ORIGIN).unwrap().size, 9);

    // An older bundle (size 5) after that: needs the proof from 5 to 9, then leaves state alone.
    let old = w.bundle(&t5, 1, &[0, 2]);
    assert!(matches!(
        w.verifier
            .verify_entry(&second.state, &old, &entry(1), None, NOW),
        Err(VerifyError::ConsistencyProofRequired { .. })
    ));
    let third = w
        .verifier
        .verify_entry(&second.state, &old, &entry(1), Some(&proof), NOW)
        .unwrap();
    assert!(!third.advanced);
    assert_eq!(third.state, second.state);

    // Same checkpoint again: no proof needed.
    let again = w
        .verifier
        .verify_entry(&second.state, &b9, &entry(2), None, NOW);
    assert!(
        matches!(again, Err(VerifyError::NotIncluded { .. })),
        "entry 2 is not at index 7"
    );
    w.verifier
        .verify_entry(
            &second.state,
            &w.bundle(&t9, 2, &[0, 1]),
            &entry(2),
            None,
            NOW,
        )
        .unwrap();
}

#[test]
fn split_view_is_refused_loudly() {
    let w = world();
    let honest = tree(6, None);
    let forked = tree(6, Some(4));
    let ok = w
        .verifier
        .verify_entry(
            &VerifierState::new(),
            &w.bundle(&honest, 0, &[0, 1]),
            &entry(0),
            None,
            NOW,
        )
        .unwrap();
    // The log (with two colluding witnesses) shows this client a different tree of the same size.
    let err = w
        .verifier
        .verify_entry(
            &ok.state,
            &w.bundle(&forked, 0, &[1, 2]),
            &entry(0),
            None,
            NOW,
        )
        .unwrap_err();
    match &err {
        VerifyError::SplitView(evidence) => {
            assert_eq!(evidence.size, 6);
            assert_ne!(evidence.trusted_root, evidence.new_root);
            // Both notes are signed evidence: each still verifies under the policy.
            for n in [&evidence.trusted_note, &evidence.new_note] {
                w.verifier
                    .policy()
                    .verify_checkpoint(n.as_bytes(), NOW)
                    .unwrap();
            }
        }
        other => panic!("expected a split view, got {other}"),
    }
    assert!(err.to_string().starts_with("SPLIT VIEW"));
}

#[test]
fn fork_that_grows_is_refused() {
    let w = world();
    let honest = tree(5, None);
    let state = w
        .verifier
        .verify_entry(
            &VerifierState::new(),
            &w.bundle(&honest, 2, &[0, 1]),
            &entry(2),
            None,
            NOW,
        )
        .unwrap()
        .state;
    // A larger tree that rewrote entry 3: no consistency proof can connect it; the honest
    // proof shape from the fork's own tree does not verify against the trusted root.
    let forked = tree(8, Some(3));
    let fake_proof = consistency_proof(&forked, 5, 8).unwrap();
    let err = w
        .verifier
        .verify_entry(
            &state,
            &w.bundle(&forked, 6, &[0, 1]),
            &entry(6),
            Some(&fake_proof),
            NOW,
        )
        .unwrap_err();
    assert!(matches!(err, VerifyError::Inconsistent { .. }), "{err}");
    // An honest proof from the real log does not help the fork either.
    let honest8 = tree(8, None);
    let real_proof = consistency_proof(&honest8, 5, 8).unwrap();
    assert!(
        w.verifier
            .verify_entry(
                &state,
                &w.bundle(&forked, 6, &[0, 1]),
                &entry(6),
                Some(&real_proof),
                NOW
            )
            .is_err()
    );
}

#[test]
fn policy_failures_are_refused() {
    let w = world();
    let t = tree(4, None);
    let s = VerifierState::new();
    // One witness is below the quorum of two.
    let err = w
        .verifier
        .verify_entry(&s, &w.bundle(&t, 1, &[2]), &entry(1), None, NOW)
        .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Policy(PolicyCheckError::QuorumNotMet { .. })
        ),
        "{err}"
    );
    // A checkpoint signed by a key the policy does not list, under the right origin.
    let impostor = NoteSigner::generate(ORIGIN, KeyAlgorithm::Ed25519).unwrap();
    let cp = Checkpoint::new(ORIGIN, t.size(), t.root()).unwrap();
    let mut note = cp.sign(&impostor).unwrap();
    for wk in &w.witnesses {
        wk.cosign_note(&mut note, NOW).unwrap();
    }
    let b = ProofBundle {
        extra: None,
        index: 1,
        inclusion_proof: inclusion_proof(&t, 1, 4).unwrap(),
        checkpoint: note.to_bytes(),
    };
    assert!(matches!(
        w.verifier.verify_entry(&s, &b, &entry(1), None, NOW),
        Err(VerifyError::Policy(PolicyCheckError::Checkpoint { .. }))
    ));
    // A cosignature tampered in transit refuses the whole checkpoint.
    let good = w.bundle(&t, 1, &[0, 1]);
    let mut n = Note::parse(&good.checkpoint).unwrap();
    let mut sig = n.signatures()[2].clone();
    sig.bytes[10] ^= 0x40;
    n.add_signature(sig).unwrap();
    let tampered = ProofBundle {
        checkpoint: n.to_bytes(),
        ..good.clone()
    };
    assert!(
        w.verifier
            .verify_entry(&s, &tampered, &entry(1), None, NOW)
            .is_err()
    );
    // Wrong entry bytes.
    assert!(matches!(
        w.verifier
            .verify_entry(&s, &good, b"release 1 (trojaned)", None, NOW),
        Err(VerifyError::NotIncluded { .. })
    ));
    // Cosignatures from the future do not count.
    assert!(
        w.verifier
            .verify_entry(&s, &good, &entry(1), None, NOW - 11)
            .is_err()
    );
    // A refusal never changes the caller's state: it is a value the caller still holds.
    assert_eq!(s, VerifierState::new());
}

#[test]
fn corrupt_state_is_refused() {
    assert!(VerifierState::from_json("{").is_err());
    assert!(VerifierState::from_json(r#"{"version":2,"checkpoints":{}}"#).is_err());
    let w = world();
    let t = tree(3, None);
    let note = String::from_utf8(w.checkpoint(&t, &[0, 1])).unwrap();
    let wrong_origin = serde_json::json!({"version": 1, "checkpoints": {"other.example": note}});
    assert!(VerifierState::from_json(&wrong_origin.to_string()).is_err());
    let right = serde_json::json!({"version": 1, "checkpoints": {ORIGIN: note}});
    let s = VerifierState::from_json(&right.to_string()).unwrap();
    assert_eq!(s.checkpoint(ORIGIN).unwrap().size, 3);
}
