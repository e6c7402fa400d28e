//! Transparency-log math and C2SP formats, with no I/O.
//!
//! Every format here is a C2SP specification, implemented to interoperate byte for byte with
//! the Go ecosystem (golang.org/x/mod/sumdb/note, transparency-dev); the Go and C2SP note
//! vectors in `tests/vectors/notes` are reproduced exactly.
//!
//! | module | what | main items |
//! |---|---|---|
//! | [`merkle`] | RFC 6962 / 9162 hashing and proofs | [`leaf_hash`], [`node_hash`], [`inclusion_proof`], [`consistency_proof`], [`verify_inclusion`], [`verify_consistency`], [`tree_root`], [`HashReader`], [`NodeId`], [`MemoryTree`] |
//! | [`keys`] | signed-note keys (c2sp.org/signed-note) | [`NoteVerifier`] (vkey), [`NoteSigner`] (skey), [`KeyAlgorithm`], [`key_id`] |
//! | [`note`] | signed notes | [`Note`], [`Signature`], [`VerifiedSignature`] |
//! | [`checkpoint`] | c2sp.org/tlog-checkpoint | [`Checkpoint`], [`open_checkpoint`], [`VerifiedCheckpoint`] |
//! | [`cosignature`] | c2sp.org/tlog-cosignature (cosignature/v1, Ed25519) | [`Cosignature`], [`CosignatureSigner`] |
//! | [`proof`] | c2sp.org/tlog-proof@v1 | [`ProofBundle`] |
//! | [`policy`] | c2sp.org/tlog-policy | [`Policy`], [`AcceptedCheckpoint`] |
//! | [`tiles`] | c2sp.org/tlog-tiles coordinates, paths, entry bundles | [`TileId`], [`TileReader`], [`TileHashReader`], [`encode_entry_bundle`], [`parse_entry_bundle`] |
//! | [`witness`] | c2sp.org/tlog-witness add-checkpoint request and rules | [`AddCheckpointRequest`], [`check_add_checkpoint`], [`AddCheckpointError::status`] |
//! | [`verifier`] | client verification with persisted state | [`LogVerifier`], [`VerifierState`], [`VerifyError`], [`SplitView`] |
//!
//! Who uses what:
//! - **Log server**: stores tiles ([`TileId::path`], [`TileId::all_in_tree`]) and entry
//!   bundles, and reads them back through [`TileHashReader`] (over any [`TileReader`]), a
//!   [`HashReader`]; [`tree_root`], [`inclusion_proof`] and [`consistency_proof`] then read
//!   only the nodes they need. It signs with [`Checkpoint::sign`] (a [`NoteSigner`]
//!   of [`KeyAlgorithm::Ed25519`] named after the origin), adds witness cosignatures with
//!   [`Note::add_signature`], and serves [`ProofBundle::to_bytes`].
//! - **Witness**: [`AddCheckpointRequest::parse`], then [`check_add_checkpoint`] with the
//!   keys trusted for the origin and its stored checkpoint (atomically with storing the result),
//!   then [`CosignatureSigner::cosign_text`] and [`Cosignature::to_line`] for the 200 body; on
//!   refusal, [`AddCheckpointError::status`] and [`AddCheckpointError::conflict_body`].
//! - **Log, as witness client**: [`AddCheckpointRequest::new`] / [`AddCheckpointRequest::to_bytes`];
//!   the response lines parse with [`Signature::parse_line`] and [`Cosignature::from_signature`].
//! - **Client**: [`Policy::parse`], [`ProofBundle::parse`], then
//!   [`LogVerifier::verify_entry`] with its stored [`VerifierState`]; persist the returned state.
//!
//! Hashes are [`Hash`](type@Hash) = `[u8; 32]` throughout; a byte string of another length is
//! refused wherever text is parsed, so it never reaches the math.
pub mod checkpoint;
pub mod cosignature;
pub mod keys;
pub mod merkle;
pub mod note;
pub mod policy;
pub mod proof;
pub mod tiles;
pub mod verifier;
pub mod witness;

pub use checkpoint::{Checkpoint, CheckpointError, VerifiedCheckpoint, open_checkpoint};
pub use cosignature::{Cosignature, CosignatureError, CosignatureSigner, MAX_TIMESTAMP};
pub use keys::{
    KeyAlgorithm, KeyError, NoteSigner, NoteVerifier, cosignature_message, is_valid_key_name,
    key_id,
};
pub use merkle::{
    Hash, HashReader, MemoryTree, MerkleError, MerkleHash, NodeId, consistency_proof, empty_root,
    inclusion_proof, leaf_hash, node_hash, root_from_leaf_hashes, tree_root, verify_consistency,
    verify_inclusion,
};
pub use note::{MAX_NOTE_SIZE, MAX_SIGNATURES, Note, NoteError, Signature, VerifiedSignature};
pub use policy::{
    AcceptedCheckpoint, Member, Policy, PolicyCheckError, PolicyError, PolicyGroup, PolicyLog,
    PolicyWitness, Quorum,
};
pub use proof::{PROOF_HEADER, ProofBundle, ProofError};
pub use tiles::{
    MAX_BUNDLE_ENTRY, TILE_HEIGHT, TILE_WIDTH, TileError, TileHashReader, TileId, TileReader,
    TileSetError, check_tiles, encode_entry_bundle, encode_tile_index, parse_entry_bundle,
};
pub use verifier::{
    LogVerifier, SplitView, VerifiedCheckpointUpdate, VerifiedEntry, VerifierState, VerifyError,
};
pub use witness::{
    AddCheckpointError, AddCheckpointRequest, MAX_CONSISTENCY_LINES, check_add_checkpoint,
};
