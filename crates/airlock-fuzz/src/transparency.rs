//! Binary transparency of TUF metadata: the `x-airlock-transparency` field of root.json, the
//! release statements a monitor reads from the log, the proof bundles served beside metadata,
//! and a peer's checkpoint compared with the client's.
//!
//! The release harnesses run against the fixture release log ([`crate::fixture::Release`]);
//! as in the tlog harnesses, a fuzzed checkpoint is also re-signed by that log and the fixture
//! witness, so the Merkle and consistency checks behind the policy see fuzzed values.

use airlock_core::peer_check::{PeerHold, PeerStep, PeerTally, PeerVerdict, check_peer_checkpoint};
use airlock_core::tlog::{Checkpoint, Note, ProofBundle, VerifierState, consistency_proof};
use airlock_core::transparency::{
    EXTENSION_FIELD, ReleaseCheck, ReleaseStatement, ReleaseStep, TransparencyPolicy,
};
use airlock_core::tuf::{Metadata, Root, TrustedSet};
use serde_json::Value;

use crate::fixture::{
    Fixture, NOW_SECS, RELEASE_ROLE, RELEASE_VERSION, Release, reference_time, release_metadata,
    resign,
};

/// The fixture root at `version`, carrying `field` (if any) as its transparency field, signed
/// by the fixture root key.
fn root_with(f: &Fixture, version: u64, field: Option<&Value>) -> Option<Vec<u8>> {
    let mut root = Metadata::<Root>::parse(&f.root).ok()?.metadata;
    root.signed.version = version;
    if let Some(field) = field {
        root.signed
            .unrecognized
            .insert(EXTENSION_FIELD.into(), field.clone());
    }
    resign(&mut root, &f.root_key)
}

/// The `x-airlock-transparency` field of root.json, as JSON: parsed directly (what parses
/// re-encodes to the same policy), then inside a root signed by the fixture key, as the first
/// trusted root and as a rotation. A root whose field is refused must not be trusted; one
/// whose field parses carries exactly that policy.
pub fn transparency(data: &[u8]) {
    let f = Fixture::get();
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let direct = TransparencyPolicy::from_value(&value);
    match &direct {
        Ok(p) => {
            let again = p.to_value();
            let reparsed =
                TransparencyPolicy::from_value(&again).expect("re-encoded transparency field");
            assert_eq!(&reparsed, p, "transparency field changes when re-encoded");
            assert_eq!(reparsed.to_value(), again, "to_value is not stable");
            let _ = (p.log_origin(), p.log_url(), p.policy().quorum_met(&[]));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let expect = |set: &TrustedSet, how: &str| match &direct {
        Ok(p) => assert_eq!(set.transparency(), Some(p), "{how}: another policy"),
        Err(e) => panic!("{how}: a root whose transparency field is refused ({e}) is trusted"),
    };
    if let Some(v1) = root_with(f, 1, Some(&value))
        && let Ok(mut t) = TrustedSet::new(&v1, reference_time())
    {
        expect(&t, "initial root");
        // Rotating to a root without the field switches transparency off.
        if let Some(v2) = root_with(f, 2, None)
            && t.update_root(&v2).is_ok()
        {
            assert!(t.transparency().is_none(), "policy survives its removal");
        }
    }
    if let Some(v2) = root_with(f, 2, Some(&value))
        && let Some(mut t) = f.at_root()
        && t.update_root(&v2).is_ok()
    {
        expect(&t, "rotated root");
    }
}

/// One client step of the release check, asking for the consistency proof from the release
/// log when told to.
fn verify_release(r: &Release, check: &ReleaseCheck<'_>, state: &VerifierState, bundle: &[u8]) {
    match check.verify(state, Some(bundle), None, NOW_SECS) {
        Ok(ReleaseStep::NeedConsistency {
            from_size, to_size, ..
        }) => {
            let proof = consistency_proof(&r.tree, from_size, to_size).unwrap_or_default();
            let again = check.verify(state, Some(bundle), Some(&proof), NOW_SECS);
            assert!(
                !matches!(again, Ok(ReleaseStep::NeedConsistency { .. })),
                "asks for a consistency proof again after getting one"
            );
            if let Err(e) = again {
                let _ = airlock_core::error_chain(&e);
            }
        }
        Ok(ReleaseStep::Accepted(_)) => {}
        Err(e) => {
            let _ = airlock_core::error_chain(&e);
        }
    }
}

/// A release statement as a monitor reads it from the log (only the exact encoding parses),
/// and a proof bundle as served beside `targets` metadata, checked under the fixture policy
/// by a client that trusts nothing yet, the old checkpoint, or the latest; then with its
/// checkpoint re-signed.
pub fn release(data: &[u8]) {
    let f = Fixture::get();
    let r = &f.release;
    if let Ok(s) = ReleaseStatement::parse(data) {
        assert_eq!(s.to_bytes(), data, "statement changes when re-encoded");
    }
    let metadata = release_metadata(RELEASE_VERSION);
    let check = ReleaseCheck::new(&r.policy, RELEASE_ROLE, RELEASE_VERSION, &metadata);
    let states = [VerifierState::new(), r.old_state.clone(), r.state.clone()];
    for state in &states {
        verify_release(r, &check, state, data);
    }
    let Ok(bundle) = ProofBundle::parse(data) else {
        return;
    };
    let Ok(n) = Note::parse(&bundle.checkpoint) else {
        return;
    };
    let Some(signed) = r.sign_checkpoint_text(&f.witness, n.text()) else {
        return;
    };
    let resigned = ProofBundle {
        checkpoint: signed,
        ..bundle
    }
    .to_bytes();
    for state in &states {
        verify_release(r, &check, state, &resigned);
    }
}

/// A client's loop for one peer: check, fetch the consistency proof when asked, check again.
fn peer_verdict(r: &Release, state: &VerifierState, note: &[u8]) -> PeerVerdict {
    let mut proof = None;
    loop {
        match check_peer_checkpoint(&r.policy, state, note, proof.as_deref(), NOW_SECS) {
            Ok(PeerStep::Checked(u)) => {
                return PeerVerdict::Agrees {
                    size: u.accepted.opened.checkpoint.size,
                };
            }
            Ok(PeerStep::NeedConsistency {
                from_size, to_size, ..
            }) => {
                assert!(proof.is_none(), "asks for a consistency proof again");
                proof = Some(consistency_proof(&r.tree, from_size, to_size).unwrap_or_default());
            }
            Err(e) => return PeerVerdict::from_error(e),
        }
    }
}

/// The tally of the fuzzed peer and one that agrees: a fork holds the update whatever else.
fn tally(verdict: PeerVerdict) {
    let fork = matches!(verdict, PeerVerdict::Fork(_));
    let mut t = PeerTally::default();
    t.record("fuzzed", verdict);
    t.record("fixture", PeerVerdict::Agrees { size: 0 });
    let _ = t.unusable();
    match t.decide(1) {
        Err(hold @ PeerHold::Fork { .. }) => {
            let _ = (hold.split_view(), airlock_core::error_chain(&hold));
        }
        Err(hold) => panic!("one agreeing peer of one required is held: {hold}"),
        Ok(_) => assert!(!fork, "a fork did not hold the update"),
    }
}

/// A peer's checkpoint note (as a witness, another client or a distributor serves it), checked
/// against a client that trusts nothing yet, the old and the latest release-log checkpoint;
/// then its text re-signed by the release log and witness. A re-signed checkpoint of the same
/// size as the client's and another root must never agree.
pub fn peer_checkpoint(data: &[u8]) {
    let f = Fixture::get();
    let r = &f.release;
    let states = [VerifierState::new(), r.old_state.clone(), r.state.clone()];
    for state in &states {
        tally(peer_verdict(r, state, data));
    }
    let Ok(n) = Note::parse(data) else { return };
    let Some(signed) = r.sign_checkpoint_text(&f.witness, n.text()) else {
        return;
    };
    let cp = Checkpoint::parse_text(n.text()).ok();
    for state in &states {
        let verdict = peer_verdict(r, state, &signed);
        if let Some(cp) = &cp
            && let Some(trusted) = state.checkpoint(&cp.origin)
            && trusted.size == cp.size
            && trusted.root_hash != cp.root_hash
        {
            assert!(
                !matches!(verdict, PeerVerdict::Agrees { .. }),
                "a checkpoint of size {} with another root agrees",
                cp.size
            );
        }
        tally(verdict);
    }
}
