//! C2SP transparency-log formats: signed notes, checkpoints, cosignatures, tiles and entry
//! bundles, proof bundles, policies and the witness's add-checkpoint request.
//!
//! Every harness also checks that what parses re-encodes to something that parses to the same
//! value, and where the format is signed, re-signs the fuzzed text with the fixture keys so
//! the verification behind the signatures (Merkle proofs, quorum, witness rules) sees it.

use airlock_core::tlog::tiles::{encode_hash_tile, parse_entry_bundle_for, parse_hash_tile};
use airlock_core::tlog::{
    AddCheckpointRequest, Checkpoint, Cosignature, HashReader, LogVerifier, MerkleError, Note,
    NoteVerifier, Policy, ProofBundle, Signature, TileHashReader, TileId, TileReader,
    VerifierState, check_add_checkpoint, consistency_proof, encode_entry_bundle, inclusion_proof,
    leaf_hash, open_checkpoint, parse_entry_bundle, tree_root,
};

use crate::fixture::{Fixture, NOW_SECS, PROVEN_INDEX, entry};

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// The keys a verifier knows: the fixture log and witness.
fn known(f: &Fixture) -> [NoteVerifier; 2] {
    [f.log.verifier(), f.witness.verifier()]
}

/// A client that trusts the fixture checkpoint at [`OLD_SIZE`].
fn trusting_old(f: &Fixture) -> Option<(LogVerifier, VerifierState)> {
    let verifier = LogVerifier::new(f.policy.clone());
    let state = verifier
        .verify_checkpoint(&VerifierState::new(), &f.old_note, None, NOW_SECS)
        .ok()?
        .state;
    Some((verifier, state))
}

/// A signed note (c2sp.org/signed-note).
pub fn note(data: &[u8]) {
    let f = Fixture::get();
    let Ok(n) = Note::parse(data) else { return };
    let again = Note::parse(&n.to_bytes()).expect("re-encoded note parses");
    assert_eq!(again, n, "note changes when re-encoded");
    let _ = n.verify(&known(f));
    let _ = n.verify(&[]);
}

/// A checkpoint note (c2sp.org/tlog-checkpoint): its text, the note as a log's checkpoint, and
/// the text signed by the fixture log and witness as a client would check it against the
/// trusted fixture checkpoint.
pub fn checkpoint(data: &[u8]) {
    let f = Fixture::get();
    if let Some(t) = text(data)
        && let Ok(cp) = Checkpoint::parse_text(t)
    {
        let again = Checkpoint::parse_text(&cp.to_text()).expect("re-encoded checkpoint parses");
        assert_eq!(again, cp, "checkpoint changes when re-encoded");
    }
    let _ = open_checkpoint(data, &f.log.verifier(), &[f.witness.verifier()]);
    let Ok(n) = Note::parse(data) else { return };
    let Some(signed) = f.sign_checkpoint_text(n.text()) else {
        return;
    };
    if let Some((verifier, state)) = trusting_old(f) {
        let _ = verifier.verify_checkpoint(&state, &signed, None, NOW_SECS);
        let _ = verifier.verify_checkpoint(&state, &signed, Some(&f.consistency), NOW_SECS);
    }
}

/// A cosignature line (c2sp.org/tlog-cosignature), as a witness answers add-checkpoint: each
/// line of the body is decoded and verified over the fixture checkpoint.
pub fn cosignature(data: &[u8]) {
    let f = Fixture::get();
    let Some(body) = text(data) else { return };
    let Ok(n) = Note::parse(&f.note) else { return };
    for (i, line) in body.lines().enumerate() {
        let Ok(sig) = Signature::parse_line(line, i + 1) else {
            continue;
        };
        let again = Signature::parse_line(sig.to_line().trim_end_matches('\n'), i + 1)
            .expect("re-encoded signature line parses");
        assert_eq!(again, sig, "signature line changes when re-encoded");
        let Ok(c) = Cosignature::from_signature(&sig) else {
            continue;
        };
        assert_eq!(c.to_signature(), sig, "cosignature changes when re-encoded");
        let _ = c.verify(&f.witness.verifier(), n.text());
    }
}

/// Tiles served from one byte string (whatever tile is asked for).
struct Served<'a>(&'a [u8]);

impl TileReader for Served<'_> {
    fn read_tile(&self, _tile: &TileId) -> Result<Vec<u8>, MerkleError> {
        Ok(self.0.to_vec())
    }
}

/// Hash tiles and entry bundles (c2sp.org/tlog-tiles), and tile paths as a log server reads
/// them from a request. The first 2 bytes pick the tree size the tiles are read for, and the
/// tile (level, index, width) the rest is checked as, as a client checks what a mirror served
/// for the tile it asked for.
pub fn tile(data: &[u8]) {
    if let Ok(entries) = parse_entry_bundle(data) {
        let again = encode_entry_bundle(&entries).expect("parsed entries re-encode");
        assert_eq!(again, data, "entry bundle changes when re-encoded");
    }
    if let Some(path) = text(data)
        && let Ok((id, entries)) = TileId::parse_path(path)
    {
        let again = if entries {
            id.entries_path()
        } else {
            id.path()
        };
        assert_eq!(
            TileId::parse_path(&again).ok(),
            Some((id, entries)),
            "tile path {path:?} changes when re-encoded"
        );
    }
    let [a, b, tiles @ ..] = data else { return };
    let size = u64::from(u16::from_be_bytes([*a, *b]));
    let asked = TileId {
        level: a & 7,
        index: u64::from(a >> 3),
        width: u16::from(*b) + 1,
    };
    let width = usize::from(asked.width);
    assert_eq!(
        asked.hash_tile_len(),
        width * 32,
        "hash tile length of {asked}"
    );
    if let Ok(hashes) = parse_hash_tile(&asked, tiles) {
        assert_eq!(hashes.len(), width, "hash tile {asked} has the wrong width");
        assert_eq!(
            encode_hash_tile(&hashes),
            tiles,
            "hash tile {asked} changes"
        );
    }
    if let Ok(entries) = parse_entry_bundle_for(&asked, tiles) {
        assert_eq!(
            entries.len(),
            width,
            "entry bundle {asked} has the wrong width"
        );
        let again = encode_entry_bundle(&entries).ok();
        assert_eq!(
            again.as_deref(),
            Some(tiles),
            "entry bundle {asked} changes"
        );
    }
    if let Some(t) = TileId::in_tree(asked.level, asked.index, size) {
        assert!(
            (1..=256).contains(&t.width) && t.hash_tile_len() <= 256 * 32,
            "tile {t} of a tree of {size} leaves has width {}",
            t.width
        );
        assert_eq!(
            TileId::parse_path(&t.path()).ok(),
            Some((t, false)),
            "path of tile {t} does not read back"
        );
    }
    let served = Served(tiles);
    let reader = TileHashReader::new(size, &served);
    let _ = tree_root(&reader, size);
    if size > 0 {
        let _ = inclusion_proof(&reader, size / 2, size);
        let _ = consistency_proof(&reader, size / 2, size);
        let _ = reader.read_hashes(&[airlock_core::tlog::NodeId::new(8, 0)]);
    }
}

/// A proof bundle (c2sp.org/tlog-proof@v1), as a client verifies it for the fixture entry; then
/// with its checkpoint text re-signed, so its index and inclusion proof meet the Merkle checks.
pub fn tlog_proof(data: &[u8]) {
    let f = Fixture::get();
    let Ok(bundle) = ProofBundle::parse(data) else {
        return;
    };
    let again = ProofBundle::parse(&bundle.to_bytes()).expect("re-encoded proof parses");
    assert_eq!(again, bundle, "proof bundle changes when re-encoded");
    let leaf = leaf_hash(&entry(PROVEN_INDEX));
    let _ = bundle.verify(&leaf, &f.log.verifier(), &[f.witness.verifier()]);
    let verifier = LogVerifier::new(f.policy.clone());
    let _ = verifier.verify_leaf(&VerifierState::new(), &bundle, &leaf, None, NOW_SECS);
    let Ok(n) = Note::parse(&bundle.checkpoint) else {
        return;
    };
    let Some(signed) = f.sign_checkpoint_text(n.text()) else {
        return;
    };
    let resigned = ProofBundle {
        checkpoint: signed,
        ..bundle
    };
    let _ = verifier.verify_leaf(&VerifierState::new(), &resigned, &leaf, None, NOW_SECS);
    if let Some((verifier, state)) = trusting_old(f) {
        let _ = verifier.verify_leaf(&state, &resigned, &leaf, Some(&f.consistency), NOW_SECS);
    }
}

/// A tlog-policy file (c2sp.org/tlog-policy), then the fixture checkpoints checked against it.
pub fn tlog_policy(data: &[u8]) {
    let f = Fixture::get();
    let Ok(policy) = Policy::parse(data) else {
        return;
    };
    let _ = policy.quorum_met(&[]);
    let _ = policy.quorum_met(&vec![true; policy.witnesses.len()]);
    for note in [&f.note, &f.old_note] {
        let _ = policy.verify_checkpoint(note, NOW_SECS);
    }
    let verifier = LogVerifier::new(policy);
    if let Ok(bundle) = ProofBundle::parse(&f.proof_bundle) {
        let leaf = leaf_hash(&entry(PROVEN_INDEX));
        let _ = verifier.verify_leaf(&VerifierState::new(), &bundle, &leaf, None, NOW_SECS);
    }
}

/// The body of a witness's `POST /add-checkpoint` (c2sp.org/tlog-witness), through the rules the
/// witness applies with no stored checkpoint and with the fixture one at [`OLD_SIZE`]; then with
/// the checkpoint re-signed by the fixture log, so the old size and consistency proof meet the
/// Merkle checks.
pub fn witness_add_checkpoint(data: &[u8]) {
    let f = Fixture::get();
    let Ok(req) = AddCheckpointRequest::parse(data) else {
        return;
    };
    let again = AddCheckpointRequest::parse(&req.to_bytes()).expect("re-encoded request parses");
    assert_eq!(again, req, "add-checkpoint request changes when re-encoded");
    let log_keys = [f.log.verifier()];
    let stored = Some(&f.old_checkpoint);
    for keys in [&log_keys[..], &[]] {
        for stored in [None, stored] {
            if let Err(e) = check_add_checkpoint(&req, keys, stored) {
                let _ = (e.status(), e.conflict_body());
            }
        }
    }
    let mut note = match Note::new(req.note.text()) {
        Ok(n) => n,
        Err(_) => return,
    };
    if note.sign(&f.log).is_err() {
        return;
    }
    let Ok(resigned) = AddCheckpointRequest::new(
        req.old_size,
        req.consistency_proof.clone(),
        &note.to_bytes(),
    ) else {
        return;
    };
    for stored in [None, stored] {
        if let Err(e) = check_add_checkpoint(&resigned, &log_keys, stored) {
            let _ = (e.status(), e.conflict_body());
        }
    }
}
