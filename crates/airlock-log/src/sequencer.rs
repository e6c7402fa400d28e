//! The sequencer: appends batches of entries to the tiled tree, durably, and signs checkpoints
//! only for trees the persisted guard allows.
//!
//! A batch from size `N` to `N'` is committed in this order, each step durable before the next:
//!
//! 1. the pending record `(N, N')` (so a crash leaves a note of what to discard);
//! 2. every tile and entry bundle the batch completes or changes;
//! 3. the guard `(N', root)`, written only after a consistency proof from the previous guard to
//!    the new tree, generated from the tiles now in storage, verifies;
//! 4. (by the caller) the signed checkpoint, via [`Sequencer::sign_checkpoint`], which refuses
//!    to sign any tree other than the one the guard holds.
//!
//! Entries are acknowledged after step 3, so an acknowledged entry is in storage. After a crash,
//! [`Sequencer::open`] finds the guard's tree in storage, checks its root, and deletes whatever an
//! uncommitted batch may have left behind; the log then continues from the guard. Because the
//! guard only ever moves to a consistent extension of itself, no two checkpoints this log signs
//! can be inconsistent, even across crashes and restarts.
//!
//! Submissions are deduplicated by leaf hash ([`Sequencer::add`]): an entry already in the tree
//! gets its existing index, so a client may retry a submission whose answer it never saw. The
//! index is rebuilt at open from the level-0 hash tiles, which are the leaf hashes already
//! stored durably with the entries: 32 bytes read per entry at start-up, and about 60 bytes of
//! memory per entry (a million entries: ~32 MB read, ~60 MB held).

use std::collections::HashMap;
use std::sync::Arc;

use airlock_core::tlog::tiles::{
    MAX_BUNDLE_ENTRY, TILE_WIDTH, TileHashReader, TileId, TileReader, encode_entry_bundle,
    encode_hash_tile, parse_entry_bundle_for, parse_hash_tile,
};
use airlock_core::tlog::{
    Hash, MerkleError, consistency_proof, empty_root, leaf_hash, node_hash, root_from_leaf_hashes,
    verify_consistency,
};

use crate::tile_store::{Guard, PendingBatch, StoreError, TileStore};

/// Why the sequencer could not open, append or sign.
#[derive(Debug, thiserror::Error)]
pub enum SequencerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("log storage is inconsistent: {0}")]
    Corrupt(String),
    #[error("guard refused: {0}")]
    GuardRefused(String),
    #[error("entry {index} of the batch is {len} bytes, above the limit of {max}")]
    EntryTooLarge {
        index: usize,
        len: usize,
        max: usize,
    },
    #[error("signing the checkpoint failed: {0}")]
    Signing(String),
}

/// Produces the signed checkpoint note for a tree. Implemented by the log's note key.
pub trait CheckpointSigner: Send + Sync {
    /// The log's origin line.
    fn origin(&self) -> &str;
    /// The complete signed note for a checkpoint of `size` leaves with root `root`.
    fn sign_checkpoint(&self, size: u64, root: &Hash) -> Result<Vec<u8>, String>;
}

/// A committed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Index of the batch's first entry.
    pub first_index: u64,
    /// Tree size after the batch.
    pub size: u64,
    pub root: Hash,
}

/// Where [`Sequencer::add`] put an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub index: u64,
    /// The tree already held this entry (or it came earlier in the same batch); nothing was
    /// appended for it.
    pub already_logged: bool,
}

/// The write side of a log. Single writer: it holds the right edge of the tree in memory.
pub struct Sequencer {
    store: Arc<dyn TileStore>,
    size: u64,
    root: Hash,
    /// Index of every leaf hash in the tree (the first, should the tree hold one twice).
    leaves: HashMap<Hash, u64>,
    /// The incomplete (rightmost) tile of each tile level, fewer than 256 hashes each.
    edge: Vec<Vec<Hash>>,
    /// Entries of the incomplete entry bundle (as many as `edge[0]` has hashes).
    bundle: Vec<Vec<u8>>,
}

/// A full tile or bundle (256 hashes or entries).
const FULL: u16 = 256;

/// The hash tiles and entry bundles (named by their level-0 tile) a batch writes.
#[derive(Debug, Default, PartialEq, Eq)]
struct BatchTiles {
    hash_tiles: Vec<TileId>,
    entry_bundles: Vec<TileId>,
}

fn tile(level: u32, index: u64, width: u16) -> TileId {
    TileId {
        level: level as u8,
        index,
        width,
    }
}

/// Which tiles a batch from `from` to `to` writes: full tiles it completes and the partial
/// tiles of `to` that changed. Used both to write and, after a crash, to delete.
fn batch_tiles(from: u64, to: u64) -> BatchTiles {
    let mut out = BatchTiles::default();
    let mut level: u32 = 0;
    loop {
        let shift = 8 * level;
        if shift >= 64 || to >> shift == 0 {
            break;
        }
        let (f, t) = (from >> shift, to >> shift);
        let mut ids = Vec::new();
        for index in (f / 256)..(t / 256) {
            ids.push(index);
        }
        for index in ids {
            out.hash_tiles.push(tile(level, index, FULL));
            if level == 0 {
                out.entry_bundles.push(tile(0, index, FULL));
            }
        }
        let w = (t % 256) as u16;
        if w > 0 && t != f {
            out.hash_tiles.push(tile(level, t / 256, w));
            if level == 0 {
                out.entry_bundles.push(tile(0, t / 256, w));
            }
        }
        level += 1;
    }
    out
}

/// Root of a tree whose right edge is `edge` (level 0 first).
fn root_of_edge(edge: &[Vec<Hash>]) -> Hash {
    // Perfect subtrees, left to right: highest tile level first; within a level, the binary
    // decomposition of its width, largest first.
    let mut parts: Vec<Hash> = Vec::new();
    for hashes in edge.iter().rev() {
        let mut start = 0usize;
        let mut remaining = hashes.len();
        while remaining > 0 {
            let chunk = 1usize << (usize::BITS - 1 - remaining.leading_zeros());
            parts.push(root_from_leaf_hashes(&hashes[start..start + chunk]));
            start += chunk;
            remaining -= chunk;
        }
    }
    let mut iter = parts.into_iter().rev();
    let Some(mut acc) = iter.next() else {
        return empty_root();
    };
    for left in iter {
        acc = node_hash(&left, &acc);
    }
    acc
}

/// Reads hash tiles from a store for airlock-core's [`TileHashReader`].
pub struct StoreTileSource<'a>(pub &'a dyn TileStore);

impl TileReader for StoreTileSource<'_> {
    fn read_tile(&self, tile: &TileId) -> Result<Vec<u8>, MerkleError> {
        let data = self
            .0
            .read_hash_tile(tile)
            .map_err(|e| MerkleError::Reader(Box::new(e)))?
            .ok_or_else(|| {
                MerkleError::BadRequest(format!("tile {tile} is missing from storage"))
            })?;
        parse_hash_tile(tile, &data).map_err(|e| MerkleError::Reader(Box::new(e)))?;
        Ok(data)
    }
}

impl Sequencer {
    /// Opens the log in `store`, recovering from any crash: discards an uncommitted batch,
    /// loads the right edge of the guard's tree and checks that it hashes to the guard's root.
    pub fn open(store: Arc<dyn TileStore>) -> Result<Self, SequencerError> {
        let guard = store.read_guard()?.unwrap_or(Guard {
            size: 0,
            root: empty_root(),
        });
        if let Some(p) = store.read_pending()? {
            if p.from_size == guard.size && p.to_size > p.from_size {
                let ids = batch_tiles(p.from_size, p.to_size);
                tracing::warn!(
                    "discarding an uncommitted batch (tree size {} to {}): {} tiles and {} entry bundles",
                    p.from_size,
                    p.to_size,
                    ids.hash_tiles.len(),
                    ids.entry_bundles.len()
                );
                store.delete_tiles(&ids.hash_tiles, &ids.entry_bundles)?;
            } else if p.to_size != guard.size {
                return Err(SequencerError::Corrupt(format!(
                    "pending batch {}..{} does not start or end at the guard's size {}",
                    p.from_size, p.to_size, guard.size
                )));
            }
            store.write_pending(None)?;
        }
        let size = guard.size;
        let mut edge = Vec::new();
        let mut level: u32 = 0;
        while 8 * level < 64 && size >> (8 * level) > 0 {
            let count = size >> (8 * level);
            let width = (count % 256) as u16;
            let hashes = if width == 0 {
                Vec::new()
            } else {
                let id = tile(level, count / 256, width);
                let data = store.read_hash_tile(&id)?.ok_or_else(|| {
                    SequencerError::Corrupt(format!(
                        "tile {id} of the guarded tree (size {size}) is missing"
                    ))
                })?;
                parse_hash_tile(&id, &data).map_err(|e| SequencerError::Corrupt(e.to_string()))?
            };
            edge.push(hashes);
            level += 1;
        }
        let bundle = match edge.first() {
            Some(leaves) if !leaves.is_empty() => {
                let id = tile(0, size / 256, leaves.len() as u16);
                let data = store.read_entry_bundle(&id)?.ok_or_else(|| {
                    SequencerError::Corrupt(format!(
                        "entry bundle {} (size {size}) is missing",
                        id.entries_path()
                    ))
                })?;
                let entries = parse_entry_bundle_for(&id, &data)
                    .map_err(|e| SequencerError::Corrupt(airlock_core::error_chain(&e)))?;
                for (i, (e, h)) in entries.iter().zip(leaves).enumerate() {
                    if leaf_hash(e) != *h {
                        return Err(SequencerError::Corrupt(format!(
                            "entry {} in {} does not hash to its level-0 tile hash",
                            i,
                            id.entries_path()
                        )));
                    }
                }
                entries
            }
            _ => Vec::new(),
        };
        let root = root_of_edge(&edge);
        let leaves = index_leaves(&*store, size, edge.first().map_or(&[][..], |l| l))?;
        if root != guard.root {
            return Err(SequencerError::Corrupt(format!(
                "the tiles of tree size {size} hash to a root other than the guard's"
            )));
        }
        Ok(Self {
            store,
            size,
            root,
            leaves,
            edge,
            bundle,
        })
    }

    /// The index of the entry whose leaf hash is `leaf`, if the tree holds it.
    pub fn index_of(&self, leaf: &Hash) -> Option<u64> {
        self.leaves.get(leaf).copied()
    }

    /// Appends the entries the tree does not hold yet (durably, as [`Sequencer::append`]) and
    /// says where each entry is: a duplicate, of the tree or of an earlier entry of the same
    /// batch, gets the existing index.
    pub fn add<E: AsRef<[u8]>>(
        &mut self,
        entries: &[E],
    ) -> Result<(Committed, Vec<Placed>), SequencerError> {
        let mut fresh: Vec<(&[u8], Hash)> = Vec::with_capacity(entries.len());
        let mut in_batch: HashMap<Hash, u64> = HashMap::new();
        let mut placed = Vec::with_capacity(entries.len());
        for e in entries {
            let h = leaf_hash(e.as_ref());
            let existing = self.index_of(&h).or_else(|| in_batch.get(&h).copied());
            placed.push(match existing {
                Some(index) => Placed {
                    index,
                    already_logged: true,
                },
                None => {
                    let index = self.size + fresh.len() as u64;
                    in_batch.insert(h, index);
                    fresh.push((e.as_ref(), h));
                    Placed {
                        index,
                        already_logged: false,
                    }
                }
            });
        }
        // The leaf hashes computed here are the ones appended: each entry is hashed once.
        let committed = self.append_hashed(&fresh)?;
        Ok((committed, placed))
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn root(&self) -> Hash {
        self.root
    }

    pub fn store(&self) -> &Arc<dyn TileStore> {
        &self.store
    }

    /// Appends `entries` durably and advances the guard. On error nothing is acknowledged and
    /// the in-memory state is reloaded from storage by the caller (reopen).
    pub fn append<E: AsRef<[u8]>>(&mut self, entries: &[E]) -> Result<Committed, SequencerError> {
        let hashed: Vec<(&[u8], Hash)> = entries
            .iter()
            .map(|e| (e.as_ref(), leaf_hash(e.as_ref())))
            .collect();
        self.append_hashed(&hashed)
    }

    /// [`Sequencer::append`] of entries whose leaf hashes the caller computed with
    /// [`leaf_hash`] over the same bytes.
    fn append_hashed(&mut self, entries: &[(&[u8], Hash)]) -> Result<Committed, SequencerError> {
        for (index, (e, _)) in entries.iter().enumerate() {
            let len = e.len();
            if len > MAX_BUNDLE_ENTRY {
                return Err(SequencerError::EntryTooLarge {
                    index,
                    len,
                    max: MAX_BUNDLE_ENTRY,
                });
            }
        }
        let from = self.size;
        if entries.is_empty() {
            return Ok(Committed {
                first_index: from,
                size: from,
                root: self.root,
            });
        }
        let to = from + entries.len() as u64;
        self.store.write_pending(Some(&PendingBatch {
            from_size: from,
            to_size: to,
        }))?;

        let mut hash_writes: Vec<(TileId, Vec<u8>)> = Vec::new();
        let mut bundle_writes: Vec<(TileId, Vec<u8>)> = Vec::new();
        if self.edge.is_empty() {
            self.edge.push(Vec::new());
        }
        for &(e, h) in entries {
            self.leaves.entry(h).or_insert(self.size);
            self.edge[0].push(h);
            self.bundle.push(e.to_vec());
            self.size += 1;
            if self.bundle.len() == usize::from(FULL) {
                let index = (self.size - 1) / 256;
                bundle_writes.push((
                    tile(0, index, FULL),
                    encode_entry_bundle(&self.bundle)
                        .map_err(|e| SequencerError::Corrupt(e.to_string()))?,
                ));
                self.bundle.clear();
            }
            let mut level = 0usize;
            while self.edge[level].len() == usize::from(FULL) {
                let full = std::mem::take(&mut self.edge[level]);
                let count = self.size >> (8 * level as u32);
                let index = count / TILE_WIDTH - 1;
                hash_writes.push((tile(level as u32, index, FULL), encode_hash_tile(&full)));
                if self.edge.len() == level + 1 {
                    self.edge.push(Vec::new());
                }
                self.edge[level + 1].push(root_from_leaf_hashes(&full));
                level += 1;
            }
        }
        for (level, hashes) in self.edge.iter().enumerate() {
            let shift = 8 * level as u32;
            if hashes.is_empty() || from >> shift == to >> shift {
                continue;
            }
            let index = (to >> shift) / 256;
            let width = hashes.len() as u16;
            hash_writes.push((tile(level as u32, index, width), encode_hash_tile(hashes)));
            if level == 0 {
                bundle_writes.push((
                    tile(0, index, width),
                    encode_entry_bundle(&self.bundle)
                        .map_err(|e| SequencerError::Corrupt(e.to_string()))?,
                ));
            }
        }
        debug_assert_eq!(
            {
                let ids = |w: &[(TileId, Vec<u8>)]| {
                    let mut a: Vec<_> = w.iter().map(|(id, _)| *id).collect();
                    a.sort();
                    a
                };
                (ids(&hash_writes), ids(&bundle_writes))
            },
            {
                let mut b = batch_tiles(from, to);
                b.hash_tiles.sort();
                b.entry_bundles.sort();
                (b.hash_tiles, b.entry_bundles)
            }
        );
        self.store.write_tiles(&hash_writes, &bundle_writes)?;
        let root = root_of_edge(&self.edge);
        self.advance_guard(to, root)?;
        self.root = root;
        Ok(Committed {
            first_index: from,
            size: to,
            root,
        })
    }

    /// Moves the guard to `(size, root)` after checking, against the tiles in storage, that this
    /// tree extends the guarded one.
    fn advance_guard(&self, size: u64, root: Hash) -> Result<(), SequencerError> {
        let guard = self.store.read_guard()?.unwrap_or(Guard {
            size: 0,
            root: empty_root(),
        });
        check_extends(&*self.store, &guard, size, &root)?;
        self.store.write_guard(&Guard { size, root })?;
        Ok(())
    }

    /// Signs the checkpoint of the current tree. Refuses unless the persisted guard holds
    /// exactly this tree, so only guarded (mutually consistent) trees are ever signed.
    pub fn sign_checkpoint(
        &self,
        signer: &dyn CheckpointSigner,
    ) -> Result<Vec<u8>, SequencerError> {
        let guard = self.store.read_guard()?.unwrap_or(Guard {
            size: 0,
            root: empty_root(),
        });
        if guard.size != self.size || guard.root != self.root {
            return Err(SequencerError::GuardRefused(format!(
                "asked to sign size {} but the guard holds size {}",
                self.size, guard.size
            )));
        }
        signer
            .sign_checkpoint(guard.size, &guard.root)
            .map_err(SequencerError::Signing)
    }
}

/// Maps every leaf hash of the tree of `size` leaves to its index, from the full level-0 tiles
/// in `store` and the partial one already loaded (`edge`).
fn index_leaves(
    store: &dyn TileStore,
    size: u64,
    edge: &[Hash],
) -> Result<HashMap<Hash, u64>, SequencerError> {
    let mut leaves = HashMap::with_capacity(usize::try_from(size).unwrap_or(0));
    let full = size / TILE_WIDTH;
    for index in 0..full {
        let id = tile(0, index, FULL);
        let data = store.read_hash_tile(&id)?.ok_or_else(|| {
            SequencerError::Corrupt(format!("tile {id} of the tree (size {size}) is missing"))
        })?;
        let hashes =
            parse_hash_tile(&id, &data).map_err(|e| SequencerError::Corrupt(e.to_string()))?;
        for (i, h) in hashes.into_iter().enumerate() {
            leaves.entry(h).or_insert(index * TILE_WIDTH + i as u64);
        }
    }
    for (i, h) in edge.iter().enumerate() {
        leaves.entry(*h).or_insert(full * TILE_WIDTH + i as u64);
    }
    Ok(leaves)
}

/// Checks that the tree `(size, root)` in `store` is the guarded tree or extends it.
pub fn check_extends(
    store: &dyn TileStore,
    guard: &Guard,
    size: u64,
    root: &Hash,
) -> Result<(), SequencerError> {
    if size < guard.size {
        return Err(SequencerError::GuardRefused(format!(
            "tree size {size} is smaller than the guarded size {}",
            guard.size
        )));
    }
    if size == guard.size {
        if *root != guard.root {
            return Err(SequencerError::GuardRefused(format!(
                "a different root for the guarded size {size}"
            )));
        }
        return Ok(());
    }
    if guard.size == 0 {
        return Ok(());
    }
    let source = StoreTileSource(store);
    let reader = TileHashReader::new(size, &source);
    let proof = consistency_proof(&reader, guard.size, size).map_err(|e| {
        SequencerError::GuardRefused(format!(
            "consistency proof: {}",
            airlock_core::error_chain(&e)
        ))
    })?;
    verify_consistency(guard.size, size, &proof, &guard.root, root).map_err(|e| {
        SequencerError::GuardRefused(format!(
            "tree size {size} is not consistent with the guarded size {}: {e}",
            guard.size
        ))
    })
}

/// Reads the whole tiles of the tree `size` needed to list entries `[start, end)`.
pub fn read_entries(
    store: &dyn TileStore,
    size: u64,
    start: u64,
    end: u64,
) -> Result<Vec<Vec<u8>>, SequencerError> {
    let end = end.min(size);
    let mut out = Vec::new();
    let mut i = start;
    while i < end {
        let index = i / 256;
        let width = ((size - index * 256).min(256)) as u16;
        let id = tile(0, index, width);
        let data = store.read_entry_bundle(&id)?.ok_or_else(|| {
            SequencerError::Corrupt(format!("entry bundle {} is missing", id.entries_path()))
        })?;
        let entries = parse_entry_bundle_for(&id, &data)
            .map_err(|e| SequencerError::Corrupt(airlock_core::error_chain(&e)))?;
        let lo = (i - index * 256) as usize;
        let hi = ((end - index * 256).min(u64::from(width))) as usize;
        out.extend(entries.into_iter().take(hi).skip(lo));
        i = index * 256 + hi as u64;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tile_store::FsTileStore;
    use airlock_core::tlog::{MemoryTree, inclusion_proof, tree_root, verify_inclusion};

    fn open(dir: &std::path::Path) -> Arc<dyn TileStore> {
        Arc::new(FsTileStore::open(&dir.join("public"), &dir.join("state")).unwrap())
    }

    fn entry(i: u64) -> Vec<u8> {
        format!("entry {i}").into_bytes()
    }

    #[test]
    fn appends_match_an_in_memory_tree_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut mem = MemoryTree::new();
        let mut n = 0u64;
        for batch in [1u64, 254, 1, 1, 300, 65_536, 7] {
            let store = open(dir.path());
            let mut seq = Sequencer::open(store.clone()).unwrap();
            assert_eq!(seq.size(), n);
            let entries: Vec<_> = (n..n + batch).map(entry).collect();
            for e in &entries {
                mem.push(e);
            }
            let c = seq.append(&entries).unwrap();
            assert_eq!(c.first_index, n);
            n += batch;
            assert_eq!(c.size, n);
            assert_eq!(c.root, mem.root());
            let src = StoreTileSource(&*store);
            let reader = TileHashReader::new(n, &src);
            assert_eq!(tree_root(&reader, n).unwrap(), mem.root());
            let idx = n / 2;
            let proof = inclusion_proof(&reader, idx, n).unwrap();
            verify_inclusion(&leaf_hash(&entry(idx)), idx, n, &proof, &mem.root()).unwrap();
            assert_eq!(
                read_entries(&*store, n, idx, idx + 1).unwrap(),
                vec![entry(idx)]
            );
        }
        assert_eq!(
            read_entries(&*open_second(dir.path()), n, 0, n)
                .unwrap()
                .len() as u64,
            n
        );
    }

    fn open_second(dir: &std::path::Path) -> Arc<dyn TileStore> {
        open(dir)
    }

    #[test]
    fn an_uncommitted_batch_is_discarded_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut seq = Sequencer::open(store.clone()).unwrap();
        seq.append(&(0..300).map(entry).collect::<Vec<_>>())
            .unwrap();
        let guard = store.read_guard().unwrap().unwrap();
        // Simulate a crash after the tiles of the next batch were written but before the guard.
        let mut crashed = Sequencer::open(store.clone()).unwrap();
        let old_guard = guard;
        crashed
            .append(&(300..600).map(entry).collect::<Vec<_>>())
            .unwrap();
        store.write_guard(&old_guard).unwrap();
        store
            .write_pending(Some(&PendingBatch {
                from_size: 300,
                to_size: 600,
            }))
            .unwrap();
        drop(crashed);
        let seq = Sequencer::open(store.clone()).unwrap();
        assert_eq!(seq.size(), 300);
        assert_eq!(seq.root(), guard.root);
        let left = batch_tiles(300, 600);
        for id in &left.hash_tiles {
            assert_eq!(store.read_hash_tile(id).unwrap(), None, "{id} left behind");
        }
        for id in &left.entry_bundles {
            assert_eq!(
                store.read_entry_bundle(id).unwrap(),
                None,
                "{id} left behind"
            );
        }
        assert_eq!(store.read_pending().unwrap(), None);
    }

    #[test]
    fn the_guard_refuses_a_rewritten_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut seq = Sequencer::open(store.clone()).unwrap();
        seq.append(&(0..10).map(entry).collect::<Vec<_>>()).unwrap();
        let guard = store.read_guard().unwrap().unwrap();
        // Another tree of the same size, or a smaller one, is refused.
        let mut other = MemoryTree::new();
        for i in 0..10 {
            other.push(format!("forged {i}").as_bytes());
        }
        assert!(check_extends(&*store, &guard, 10, &other.root()).is_err());
        assert!(check_extends(&*store, &guard, 9, &guard.root).is_err());
        // A tree whose stored prefix was rewritten is refused: overwrite tiles with a fork.
        let dir2 = tempfile::tempdir().unwrap();
        let store2 = open(dir2.path());
        let mut fork = Sequencer::open(store2.clone()).unwrap();
        let c = fork
            .append(
                &(0..20)
                    .map(|i| format!("forged {i}").into_bytes())
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        assert!(matches!(
            check_extends(&*store2, &guard, 20, &c.root),
            Err(SequencerError::GuardRefused(_))
        ));
        // Signing is refused for anything but the guarded tree.
        struct S;
        impl CheckpointSigner for S {
            fn origin(&self) -> &str {
                "test"
            }
            fn sign_checkpoint(&self, size: u64, _: &Hash) -> Result<Vec<u8>, String> {
                Ok(size.to_string().into_bytes())
            }
        }
        assert_eq!(seq.sign_checkpoint(&S).unwrap(), b"10");
        store
            .write_guard(&Guard {
                size: 11,
                root: [0; 32],
            })
            .unwrap();
        assert!(matches!(
            seq.sign_checkpoint(&S),
            Err(SequencerError::GuardRefused(_))
        ));
    }

    #[test]
    fn a_corrupted_tile_stops_the_log_from_opening() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut seq = Sequencer::open(store.clone()).unwrap();
        seq.append(&(0..5).map(entry).collect::<Vec<_>>()).unwrap();
        drop(seq);
        store
            .write_tiles(&[(tile(0, 0, 5), vec![0u8; 160])], &[])
            .unwrap();
        assert!(matches!(
            Sequencer::open(store),
            Err(SequencerError::Corrupt(_))
        ));
    }

    #[test]
    fn a_duplicate_gets_its_existing_index_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut seq = Sequencer::open(open(dir.path())).unwrap();
        seq.append(&(0..300).map(entry).collect::<Vec<_>>())
            .unwrap();
        drop(seq);
        let mut seq = Sequencer::open(open(dir.path())).unwrap();
        let batch = [
            entry(5),
            entry(299),
            b"new".to_vec(),
            b"new".to_vec(),
            entry(0),
        ];
        let (c, placed) = seq.add(&batch).unwrap();
        assert_eq!((c.first_index, c.size), (300, 301));
        let got: Vec<_> = placed.iter().map(|p| (p.index, p.already_logged)).collect();
        assert_eq!(
            got,
            [(5, true), (299, true), (300, false), (300, true), (0, true)]
        );
        let (c, placed) = seq.add(&[b"new".to_vec()]).unwrap();
        assert_eq!(c.size, 301);
        assert_eq!(placed[0].index, 300);
    }

    #[test]
    fn batch_tiles_lists_what_a_batch_writes() {
        let ids = batch_tiles(255, 257);
        assert!(ids.hash_tiles.contains(&tile(0, 0, 256)));
        assert!(ids.entry_bundles.contains(&tile(0, 0, 256)));
        assert!(ids.hash_tiles.contains(&tile(0, 1, 1)));
        assert!(ids.entry_bundles.contains(&tile(0, 1, 1)));
        assert!(ids.hash_tiles.contains(&tile(1, 0, 1)));
        assert!(!ids.hash_tiles.contains(&tile(0, 0, 255)));
        assert_eq!(ids.entry_bundles.len(), 2);
    }
}

/// Crash at every point of a batch: a store that "loses power" after a given number of write
/// steps (each tile, the pending record, the guard) refuses every later write; reopening the
/// log from what was written must always give the old tree or the new one, never anything else,
/// and never a state the guard would refuse to extend.
#[cfg(test)]
mod crash_points {
    use super::*;
    use crate::tile_store::FsTileStore;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct PowerCut {
        inner: FsTileStore,
        /// Write steps left before the cut.
        left: AtomicUsize,
    }

    impl PowerCut {
        fn step(&self) -> Result<(), StoreError> {
            let ok = self
                .left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if ok {
                Ok(())
            } else {
                Err(StoreError::Malformed {
                    path: "power".into(),
                    reason: "cut".into(),
                })
            }
        }
    }

    impl TileStore for PowerCut {
        fn read_hash_tile(&self, id: &TileId) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.read_hash_tile(id)
        }
        fn read_entry_bundle(&self, id: &TileId) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.read_entry_bundle(id)
        }
        fn write_tiles(
            &self,
            hash_tiles: &[(TileId, Vec<u8>)],
            entry_bundles: &[(TileId, Vec<u8>)],
        ) -> Result<(), StoreError> {
            // One tile or bundle at a time, so the cut can fall between any two of them.
            for t in hash_tiles {
                self.step()?;
                self.inner.write_tiles(std::slice::from_ref(t), &[])?;
            }
            for b in entry_bundles {
                self.step()?;
                self.inner.write_tiles(&[], std::slice::from_ref(b))?;
            }
            Ok(())
        }
        fn delete_tiles(
            &self,
            hash_tiles: &[TileId],
            entry_bundles: &[TileId],
        ) -> Result<(), StoreError> {
            self.step()?;
            self.inner.delete_tiles(hash_tiles, entry_bundles)
        }
        fn read_checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.read_checkpoint()
        }
        fn write_checkpoint(&self, note: &[u8]) -> Result<(), StoreError> {
            self.step()?;
            self.inner.write_checkpoint(note)
        }
        fn read_guard(&self) -> Result<Option<Guard>, StoreError> {
            self.inner.read_guard()
        }
        fn write_guard(&self, guard: &Guard) -> Result<(), StoreError> {
            self.step()?;
            self.inner.write_guard(guard)
        }
        fn read_pending(&self) -> Result<Option<PendingBatch>, StoreError> {
            self.inner.read_pending()
        }
        fn write_pending(&self, pending: Option<&PendingBatch>) -> Result<(), StoreError> {
            self.step()?;
            self.inner.write_pending(pending)
        }
        fn read_halt(&self) -> Result<Option<String>, StoreError> {
            self.inner.read_halt()
        }
        fn write_halt(&self, reason: &str) -> Result<(), StoreError> {
            self.step()?;
            self.inner.write_halt(reason)
        }
        fn clear_halt(&self, record: &str) -> Result<(), StoreError> {
            self.step()?;
            self.inner.clear_halt(record)
        }
    }

    fn entries(from: u64, to: u64, tag: &str) -> Vec<Vec<u8>> {
        (from..to)
            .map(|i| format!("{tag} {i}").into_bytes())
            .collect()
    }

    #[test]
    fn reopening_after_a_cut_at_any_step_gives_the_old_or_the_new_tree() {
        use airlock_core::tlog::MemoryTree;
        // A batch that completes two level-0 tiles and bundles and changes the partial tiles
        // of levels 0 and 1.
        let (first, second) = (250u64, 300u64);
        let mut steps = 0usize;
        loop {
            let dir = tempfile::tempdir().unwrap();
            let (public, state) = (dir.path().join("public"), dir.path().join("state"));
            let mut mem = MemoryTree::new();
            for e in entries(0, first, "a") {
                mem.push(&e);
            }
            let old_root = mem.root();
            {
                let store: Arc<dyn TileStore> =
                    Arc::new(FsTileStore::open(&public, &state).unwrap());
                let mut seq = Sequencer::open(store.clone()).unwrap();
                seq.append(&entries(0, first, "a")).unwrap();
                drop(seq);
                // A clean reopen clears the committed batch's pending record.
                Sequencer::open(store).unwrap();
            }
            for e in entries(first, first + second, "b") {
                mem.push(&e);
            }
            let new_root = mem.root();
            // The batch that is cut.
            let cut = {
                let store = Arc::new(PowerCut {
                    inner: FsTileStore::open(&public, &state).unwrap(),
                    left: AtomicUsize::new(steps),
                });
                let mut seq = Sequencer::open(store.clone()).unwrap();
                seq.append(&entries(first, first + second, "b")).is_err()
            };
            // Power back: reopen from disk.
            let store: Arc<dyn TileStore> = Arc::new(FsTileStore::open(&public, &state).unwrap());
            let mut seq = Sequencer::open(store.clone()).unwrap();
            if seq.size() == first {
                assert!(cut, "step {steps}: a completed batch was lost");
                assert_eq!(seq.root(), old_root, "step {steps}");
                let left = batch_tiles(first, first + second);
                for id in &left.hash_tiles {
                    let found = store.read_hash_tile(id).unwrap();
                    assert_eq!(found, None, "step {steps}: {id} left");
                }
                for id in &left.entry_bundles {
                    let found = store.read_entry_bundle(id).unwrap();
                    assert_eq!(found, None, "step {steps}: bundle {id} left");
                }
            } else {
                assert_eq!(seq.size(), first + second, "step {steps}");
                assert_eq!(seq.root(), new_root, "step {steps}");
            }
            // Either way the log goes on, and a different continuation is accepted only if the
            // batch had not been committed.
            let c = seq.append(&entries(first + second, first + second + 3, "c"));
            assert!(c.is_ok(), "step {steps}: {c:?}");
            if !cut {
                break;
            }
            steps += 1;
            assert!(steps < 100, "the batch never completed");
        }
        assert!(steps > 5, "too few cut points exercised: {steps}");
    }
}
