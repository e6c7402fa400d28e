//! Transparency-log math and C2SP formats.
//!
//! - [`merkle`]: RFC 6962 / RFC 9162 hashing, inclusion and consistency proofs.
//! - [`keys`]: signed-note keys: key IDs, vkeys, skeys (Ed25519 0x01, cosignature/v1 0x04).
//! - [`note`]: signed notes (c2sp.org/signed-note).
//! - [`checkpoint`]: checkpoints (c2sp.org/tlog-checkpoint) and opening cosigned ones.
//! - [`cosignature`]: witness cosignatures (c2sp.org/tlog-cosignature, cosignature/v1).
pub mod checkpoint;
pub mod cosignature;
pub mod keys;
pub mod merkle;
pub mod note;

pub use checkpoint::{Checkpoint, CheckpointError, VerifiedCheckpoint, open_checkpoint};
pub use cosignature::{Cosignature, CosignatureError, CosignatureSigner};
pub use keys::{KeyAlgorithm, KeyError, NoteSigner, NoteVerifier, key_id};
pub use merkle::{
    Hash, HashReader, MemoryTree, MerkleError, MerkleHash, NodeId, consistency_proof, empty_root,
    inclusion_proof, leaf_hash, node_hash, root_from_leaf_hashes, tree_root, verify_consistency,
    verify_inclusion,
};
pub use note::{Note, NoteError, Signature, VerifiedSignature};
