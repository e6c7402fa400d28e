//! Transparency-log math and C2SP formats.
//!
//! - [`merkle`]: RFC 6962 / RFC 9162 hashing, inclusion and consistency proofs.
pub mod merkle;

pub use merkle::{
    Hash, HashReader, MemoryTree, MerkleError, MerkleHash, NodeId, consistency_proof, empty_root,
    inclusion_proof, leaf_hash, node_hash, root_from_leaf_hashes, tree_root, verify_consistency,
    verify_inclusion,
};
