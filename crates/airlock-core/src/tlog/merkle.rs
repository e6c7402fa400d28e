//! RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs.
//!
//! Leaves are hashed as `SHA-256(0x00 || data)` and interior nodes as `SHA-256(0x01 || left ||
//! right)`; the two prefixes keep a leaf from ever being mistaken for a node (second preimages).
//!
//! Proof *generation* never needs the whole tree: it asks a [`HashReader`] for the hashes of a few
//! perfect subtrees, named by [`NodeId`] (level, index). That is exactly what a tiled log stores
//! (c2sp.org/tlog-tiles), so the log server backs the reader with its tiles; [`MemoryTree`] is the
//! in-memory reader used by tests and small tools.
//!
//! Proof *verification* follows RFC 9162 sections 2.1.3.2 and 2.1.4.2 and takes only hashes.

use sha2::{Digest, Sha256};

/// A SHA-256 Merkle tree hash (leaf, node or root).
pub type Hash = [u8; 32];
/// Alias of [`Hash`](type@Hash), for call sites that want to say which hash they mean.
pub type MerkleHash = Hash;

/// Errors from proof generation and verification. Each names the check that failed.
#[derive(Debug, thiserror::Error)]
pub enum MerkleError {
    #[error("inclusion proof: leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("inclusion proof: {got} hashes, expected {want} for leaf {index} in a tree of {size}")]
    InclusionProofLength {
        index: u64,
        size: u64,
        got: usize,
        want: usize,
    },
    #[error("inclusion proof: computed root does not match the expected root")]
    InclusionRootMismatch,
    #[error("consistency proof: old size {old} is larger than new size {new}")]
    SizeDecreased { old: u64, new: u64 },
    #[error(
        "consistency proof: a proof from the empty tree proves nothing (old size 0, new size {new})"
    )]
    EmptyOldTree { new: u64 },
    #[error("consistency proof: sizes are equal ({size}) but the proof is not empty")]
    ProofNotEmpty { size: u64 },
    #[error("consistency proof: sizes are equal ({size}) but the roots differ")]
    EqualSizeRootMismatch { size: u64 },
    #[error("consistency proof: {got} hashes, expected {want} from size {old} to size {new}")]
    ConsistencyProofLength {
        old: u64,
        new: u64,
        got: usize,
        want: usize,
    },
    #[error("consistency proof: computed old root does not match the old root")]
    OldRootMismatch,
    #[error("consistency proof: computed new root does not match the new root")]
    NewRootMismatch,
    #[error("proof request: {0}")]
    BadRequest(String),
    #[error("hash reader returned {got} hashes for {want} requested nodes")]
    ReaderCount { got: usize, want: usize },
    #[error("hash reader failed")]
    Reader(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Hash of a leaf: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// Hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The root of the tree whose leaves have the given leaf hashes (RFC 6962 `MTH`).
pub fn root_from_leaf_hashes(leaves: &[Hash]) -> Hash {
    // Fold perfect subtrees from the left, keeping a stack of (level, hash) like a binary
    // counter; at the end combine the remaining stack right to left.
    let mut stack: Vec<(u8, Hash)> = Vec::new();
    for leaf in leaves {
        let mut cur = (0u8, *leaf);
        while let Some(&(level, ref left)) = stack.last() {
            if level != cur.0 {
                break;
            }
            cur = (level + 1, node_hash(left, &cur.1));
            stack.pop();
        }
        stack.push(cur);
    }
    match stack.pop() {
        None => empty_root(),
        Some((_, mut acc)) => {
            while let Some((_, left)) = stack.pop() {
                acc = node_hash(&left, &acc);
            }
            acc
        }
    }
}

/// A perfect subtree of the tree: the `2^level` leaves starting at leaf `index << level`.
///
/// Level 0 nodes are leaf hashes. In a tiled log with tile height `h`, a node of level `L` with
/// `L % h == 0` sits in tile level `L / h` at position `index` (tile `index >> h`, entry
/// `index % 2^h`); other levels are hashed up from the tile below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    pub fn new(level: u8, index: u64) -> Self {
        NodeId { level, index }
    }
    /// First leaf covered by this node.
    pub fn first_leaf(&self) -> u64 {
        self.index << self.level
    }
}

/// Source of stored perfect-subtree hashes, e.g. a log's hash tiles.
///
/// `read_hashes` must return exactly one hash per requested node, in request order. Only nodes
/// that lie entirely within the tree being proven are ever requested.
pub trait HashReader {
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, MerkleError>;
}

/// Split the leaf range `[lo, hi)` (with `lo` a multiple of a power of two at least `hi - lo`,
/// as every subtree range of an RFC 6962 tree is) into perfect subtrees, left to right.
fn subtree_nodes(lo: u64, hi: u64, out: &mut Vec<NodeId>) {
    let mut start = lo;
    let mut remaining = hi - lo;
    while remaining > 0 {
        let level = 63 - remaining.leading_zeros();
        let size = 1u64 << level;
        out.push(NodeId::new(level as u8, start >> level));
        start += size;
        remaining -= size;
    }
}

/// Largest power of two strictly below `n` (n >= 2).
fn split_point(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Leaf ranges whose hashes, in order, form the RFC 6962 PATH(m, D[lo:hi]).
fn inclusion_ranges(m: u64, lo: u64, hi: u64, out: &mut Vec<(u64, u64)>) {
    if hi - lo <= 1 {
        return;
    }
    let k = split_point(hi - lo);
    if m < k {
        inclusion_ranges(m, lo, lo + k, out);
        out.push((lo + k, hi));
    } else {
        inclusion_ranges(m - k, lo + k, hi, out);
        out.push((lo, lo + k));
    }
}

/// Leaf ranges whose hashes, in order, form the RFC 6962 SUBPROOF(m, D[lo:hi], b).
fn consistency_ranges(m: u64, lo: u64, hi: u64, whole: bool, out: &mut Vec<(u64, u64)>) {
    let n = hi - lo;
    if m == n {
        if !whole {
            out.push((lo, hi));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        consistency_ranges(m, lo, lo + k, whole, out);
        out.push((lo + k, hi));
    } else {
        consistency_ranges(m - k, lo + k, hi, false, out);
        out.push((lo, lo + k));
    }
}

/// Hash each range through the reader with one batched read.
fn hash_ranges(reader: &dyn HashReader, ranges: &[(u64, u64)]) -> Result<Vec<Hash>, MerkleError> {
    let mut nodes = Vec::new();
    let mut counts = Vec::with_capacity(ranges.len());
    for &(lo, hi) in ranges {
        let before = nodes.len();
        subtree_nodes(lo, hi, &mut nodes);
        counts.push(nodes.len() - before);
    }
    let hashes = reader.read_hashes(&nodes)?;
    if hashes.len() != nodes.len() {
        return Err(MerkleError::ReaderCount {
            got: hashes.len(),
            want: nodes.len(),
        });
    }
    let mut out = Vec::with_capacity(ranges.len());
    let mut pos = 0;
    for count in counts {
        let part = hashes.get(pos..pos + count).unwrap_or(&[]);
        pos += count;
        // Perfect subtrees of decreasing size: the range hash combines them right to left.
        let mut iter = part.iter().rev();
        let Some(last) = iter.next() else {
            return Err(MerkleError::BadRequest("empty subtree range".into()));
        };
        let mut acc = *last;
        for left in iter {
            acc = node_hash(left, &acc);
        }
        out.push(acc);
    }
    Ok(out)
}

/// Root hash of the first `size` leaves, read through `reader`.
pub fn tree_root(reader: &dyn HashReader, size: u64) -> Result<Hash, MerkleError> {
    if size == 0 {
        return Ok(empty_root());
    }
    let mut hashes = hash_ranges(reader, &[(0, size)])?;
    hashes
        .pop()
        .ok_or_else(|| MerkleError::BadRequest("no root".into()))
}

/// Inclusion proof for leaf `index` in the tree of `size` leaves (RFC 6962 PATH), leaf's sibling
/// first.
pub fn inclusion_proof(
    reader: &dyn HashReader,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let mut ranges = Vec::new();
    inclusion_ranges(index, 0, size, &mut ranges);
    hash_ranges(reader, &ranges)
}

/// Consistency proof from the tree of `old_size` leaves to the tree of `new_size` leaves (RFC
/// 6962 PROOF). `old_size` must be at least 1 and at most `new_size`; equal sizes give an empty
/// proof.
pub fn consistency_proof(
    reader: &dyn HashReader,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, MerkleError> {
    if old_size > new_size {
        return Err(MerkleError::SizeDecreased {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 {
        return Err(MerkleError::EmptyOldTree { new: new_size });
    }
    let mut ranges = Vec::new();
    consistency_ranges(old_size, 0, new_size, true, &mut ranges);
    hash_ranges(reader, &ranges)
}

/// Verify that `leaf` is the leaf hash at `index` in the tree of `size` leaves with root `root`
/// (RFC 9162 2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let want = inclusion_proof_len(index, size);
    if proof.len() != want {
        return Err(MerkleError::InclusionProofLength {
            index,
            size,
            got: proof.len(),
            want,
        });
    }
    let mut f_n = index;
    let mut s_n = size - 1;
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(MerkleError::InclusionRootMismatch);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 || r != *root {
        return Err(MerkleError::InclusionRootMismatch);
    }
    Ok(())
}

/// Number of hashes in an inclusion proof for `index` in a tree of `size` (index < size).
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let mut ranges = Vec::new();
    inclusion_ranges(index, 0, size, &mut ranges);
    ranges.len()
}

/// Verify that the tree of `new_size` leaves with root `new_root` extends the tree of
/// `old_size` leaves with root `old_root` (RFC 9162 2.1.4.2).
///
/// A proof from the empty tree is refused: it proves nothing, and a verifier with no trusted
/// tree has nothing to check consistency against.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), MerkleError> {
    if old_size > new_size {
        return Err(MerkleError::SizeDecreased {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 {
        return Err(MerkleError::EmptyOldTree { new: new_size });
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(MerkleError::ProofNotEmpty { size: old_size });
        }
        if old_root != new_root {
            return Err(MerkleError::EqualSizeRootMismatch { size: old_size });
        }
        return Ok(());
    }
    let mut ranges = Vec::new();
    consistency_ranges(old_size, 0, new_size, true, &mut ranges);
    if proof.len() != ranges.len() {
        return Err(MerkleError::ConsistencyProofLength {
            old: old_size,
            new: new_size,
            got: proof.len(),
            want: ranges.len(),
        });
    }
    // When the old tree is a perfect subtree its root is the implicit first proof element.
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(old_root);
    }
    path.extend(proof.iter());
    let mut f_n = old_size - 1;
    let mut s_n = new_size - 1;
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let Some((first, rest)) = path.split_first() else {
        return Err(MerkleError::ConsistencyProofLength {
            old: old_size,
            new: new_size,
            got: 0,
            want: ranges.len(),
        });
    };
    let mut fr = **first;
    let mut sr = **first;
    for c in rest {
        if s_n == 0 {
            return Err(MerkleError::NewRootMismatch);
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if fr != *old_root {
        return Err(MerkleError::OldRootMismatch);
    }
    if s_n != 0 || sr != *new_root {
        return Err(MerkleError::NewRootMismatch);
    }
    Ok(())
}

/// An in-memory tree that keeps every perfect-subtree hash, level by level. Appending is
/// amortised O(1); it is a [`HashReader`] for its own current size.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Append the leaf hash of `data`; returns its index.
    pub fn push(&mut self, data: &[u8]) -> u64 {
        self.push_hash(leaf_hash(data))
    }

    /// Append a leaf by its leaf hash; returns its index.
    pub fn push_hash(&mut self, leaf: Hash) -> u64 {
        let index = self.size();
        let mut level = 0;
        let mut cur = leaf;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(cur);
            if row.len() % 2 == 1 {
                break;
            }
            let n = row.len();
            cur = node_hash(&row[n - 2], &row[n - 1]);
            level += 1;
        }
        index
    }

    /// Current root.
    pub fn root(&self) -> Hash {
        tree_root(self, self.size()).unwrap_or_else(|_| empty_root())
    }
}

impl HashReader for MemoryTree {
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, MerkleError> {
        nodes
            .iter()
            .map(|n| {
                self.levels
                    .get(usize::from(n.level))
                    .and_then(|row| usize::try_from(n.index).ok().and_then(|i| row.get(i)))
                    .copied()
                    .ok_or_else(|| {
                        MerkleError::BadRequest(format!(
                            "node level {} index {} is not stored",
                            n.level, n.index
                        ))
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(n: u64) -> (MemoryTree, Vec<Hash>) {
        let mut t = MemoryTree::new();
        let mut leaves = Vec::new();
        for i in 0..n {
            let d = i.to_be_bytes();
            t.push(&d);
            leaves.push(leaf_hash(&d));
        }
        (t, leaves)
    }

    #[test]
    fn generated_proofs_verify_and_tampering_is_refused() {
        let (t, leaves) = tree(37);
        for size in 1..=37u64 {
            let root = tree_root(&t, size).unwrap();
            let slice: Vec<Hash> = leaves.iter().take(size as usize).copied().collect();
            assert_eq!(root, root_from_leaf_hashes(&slice));
            for index in 0..size {
                let p = inclusion_proof(&t, index, size).unwrap();
                verify_inclusion(&leaves[index as usize], index, size, &p, &root).unwrap();
                let wrong_leaf = leaf_hash(b"other");
                assert!(verify_inclusion(&wrong_leaf, index, size, &p, &root).is_err());
                if let Some(first) = p.first() {
                    let mut bad = p.clone();
                    bad[0] = node_hash(first, first);
                    assert!(
                        verify_inclusion(&leaves[index as usize], index, size, &bad, &root)
                            .is_err()
                    );
                }
            }
            for old in 1..=size {
                let old_root = tree_root(&t, old).unwrap();
                let p = consistency_proof(&t, old, size).unwrap();
                verify_consistency(old, size, &p, &old_root, &root).unwrap();
                if old < size {
                    let fake_old = leaf_hash(b"fork");
                    assert!(verify_consistency(old, size, &p, &fake_old, &root).is_err());
                    assert!(verify_consistency(old, size, &p, &old_root, &fake_old).is_err());
                    let mut short = p.clone();
                    short.pop();
                    assert!(verify_consistency(old, size, &short, &old_root, &root).is_err());
                }
            }
        }
    }

    #[test]
    fn requests_outside_the_tree_are_refused() {
        let (t, _) = tree(5);
        assert!(inclusion_proof(&t, 5, 5).is_err());
        assert!(consistency_proof(&t, 0, 5).is_err());
        assert!(consistency_proof(&t, 6, 5).is_err());
        // The reader refuses nodes beyond what it stores.
        assert!(inclusion_proof(&t, 0, 9).is_err());
    }
}
