//! Tile addressing and encodings of c2sp.org/tlog-tiles, and a [`HashReader`] over tiles.
//!
//! A hash tile at level `L`, index `N` holds up to 256 consecutive Merkle tree hashes of height
//! `8 * L`; a full tile is exactly 256 hashes (8192 bytes), a partial tile has width 1..=255 and
//! is named `<N>.p/<W>`. Entry bundles (`tile/entries/<N>[.p/<W>]`) hold the entries whose leaf
//! hashes make up level-0 tile `N`, each prefixed by its big-endian `u16` length.

use std::fmt;

use airlock_core::tlog::{Hash, HashReader, MerkleError, NodeId, root_from_leaf_hashes};

/// Tile height: 8 levels of the Merkle tree per tile, 256 hashes per full tile.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes in a full tile (and entries in a full entry bundle).
pub const TILE_WIDTH: u16 = 256;
/// Largest entry an entry bundle can hold (its length prefix is a `u16`).
pub const MAX_ENTRY_SIZE: usize = u16::MAX as usize;

/// What a tile holds: hashes of one level, or the entries themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TileKind {
    /// A hash tile at this tile level (0..=63).
    Hash(u8),
    /// An entry bundle.
    Entries,
}

/// One tile or entry bundle: kind, index within its level, and width (1..=256; 256 is full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    pub kind: TileKind,
    pub index: u64,
    pub width: u16,
}

/// Why a tile path or tile content was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TileError {
    #[error("tile path {path:?}: {reason}")]
    BadPath { path: String, reason: &'static str },
    #[error("tile {tile}: {got} bytes, expected {want}")]
    BadLength {
        tile: String,
        got: usize,
        want: usize,
    },
    #[error("entry bundle {tile}: {reason}")]
    BadBundle { tile: String, reason: String },
}

impl TileId {
    pub fn hash(level: u8, index: u64, width: u16) -> Self {
        TileId {
            kind: TileKind::Hash(level),
            index,
            width,
        }
    }
    pub fn entries(index: u64, width: u16) -> Self {
        TileId {
            kind: TileKind::Entries,
            index,
            width,
        }
    }
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The path below the log prefix, e.g. `tile/0/x001/x234/067.p/5` or `tile/entries/000`.
    pub fn path(&self) -> String {
        let level = match self.kind {
            TileKind::Hash(l) => l.to_string(),
            TileKind::Entries => "entries".to_string(),
        };
        let mut p = format!("tile/{level}/{}", encode_index(self.index));
        if !self.is_full() {
            p.push_str(&format!(".p/{}", self.width));
        }
        p
    }

    /// Parses a path below the log prefix (`tile/...`), refusing anything not in canonical form
    /// (leading zeroes, levels above 63, widths outside 1..=255, stray elements).
    pub fn parse_path(path: &str) -> Result<Self, TileError> {
        let bad = |reason| TileError::BadPath {
            path: path.chars().take(200).collect(),
            reason,
        };
        let rest = path
            .strip_prefix("tile/")
            .ok_or_else(|| bad("not under tile/"))?;
        let (level, rest) = rest.split_once('/').ok_or_else(|| bad("no index"))?;
        let kind = if level == "entries" {
            TileKind::Entries
        } else {
            let l = parse_decimal(level).ok_or_else(|| bad("level is not a decimal number"))?;
            if l > 63 {
                return Err(bad("level above 63"));
            }
            TileKind::Hash(l as u8)
        };
        let (index_part, width) = match rest.split_once(".p/") {
            Some((idx, w)) => {
                let w = parse_decimal(w).ok_or_else(|| bad("width is not a decimal number"))?;
                if !(1..=255).contains(&w) {
                    return Err(bad("partial width outside 1..=255"));
                }
                (idx, w as u16)
            }
            None => (rest, TILE_WIDTH),
        };
        let index = decode_index(index_part).ok_or_else(|| bad("index not in x-prefixed form"))?;
        Ok(TileId { kind, index, width })
    }

    /// Expected byte length of a hash tile (entry bundles have no fixed length).
    pub fn hash_tile_len(&self) -> usize {
        usize::from(self.width) * 32
    }
}

impl fmt::Display for TileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// Decimal without leading zeroes (except "0"), at most 20 digits.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// `1234067` → `x001/x234/067`.
pub fn encode_index(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

fn decode_index(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split('/').collect();
    let (last, init) = parts.split_last()?;
    let mut n: u64 = 0;
    let digits3 = |p: &str| -> Option<u64> {
        if p.len() == 3 && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse().ok()
        } else {
            None
        }
    };
    for (i, p) in init.iter().enumerate() {
        let d = digits3(p.strip_prefix('x')?)?;
        // No leading all-zero group: the encoding is unique.
        if i == 0 && d == 0 {
            return None;
        }
        n = n.checked_mul(1000)?.checked_add(d)?;
    }
    n = n.checked_mul(1000)?.checked_add(digits3(last)?)?;
    Some(n)
}

/// Splits a hash tile into hashes, checking its length against the tile's width.
pub fn parse_hash_tile(id: &TileId, data: &[u8]) -> Result<Vec<Hash>, TileError> {
    if data.len() != id.hash_tile_len() {
        return Err(TileError::BadLength {
            tile: id.path(),
            got: data.len(),
            want: id.hash_tile_len(),
        });
    }
    Ok(data
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        })
        .collect())
}

/// Concatenates hashes into tile bytes.
pub fn hash_tile_bytes(hashes: &[Hash]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hashes.len() * 32);
    for h in hashes {
        out.extend_from_slice(h);
    }
    out
}

/// Encodes entries as an entry bundle. Entries must be at most [`MAX_ENTRY_SIZE`] bytes (the
/// sequencer refuses larger ones before they get here).
pub fn bundle_bytes<E: AsRef<[u8]>>(entries: &[E]) -> Vec<u8> {
    let total: usize = entries.iter().map(|e| e.as_ref().len() + 2).sum();
    let mut out = Vec::with_capacity(total);
    for e in entries {
        let e = e.as_ref();
        let len = u16::try_from(e.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&e[..usize::from(len)]);
    }
    out
}

/// Decodes an entry bundle, which must hold exactly `id.width` entries.
pub fn parse_bundle(id: &TileId, data: &[u8]) -> Result<Vec<Vec<u8>>, TileError> {
    let mut out = Vec::with_capacity(usize::from(id.width));
    let mut rest = data;
    while !rest.is_empty() {
        let bad = |reason: &str| TileError::BadBundle {
            tile: id.path(),
            reason: reason.to_string(),
        };
        let (len, tail) = rest
            .split_first_chunk::<2>()
            .ok_or_else(|| bad("truncated length prefix"))?;
        let len = usize::from(u16::from_be_bytes(*len));
        let entry = tail.get(..len).ok_or_else(|| bad("truncated entry"))?;
        out.push(entry.to_vec());
        rest = &tail[len..];
    }
    if out.len() != usize::from(id.width) {
        return Err(TileError::BadBundle {
            tile: id.path(),
            reason: format!("{} entries, expected {}", out.len(), id.width),
        });
    }
    Ok(out)
}

/// The tile (level, index, width) that holds hash `index` of tile level `level` in a tree of
/// `size` leaves, i.e. the widest tile of that index the tree has.
pub fn tile_for(level: u8, tile_index: u64, size: u64) -> Option<TileId> {
    let shift = u32::from(level) * u32::from(TILE_HEIGHT);
    let hashes_at_level = if shift >= 64 { 0 } else { size >> shift };
    let start = tile_index.checked_mul(u64::from(TILE_WIDTH))?;
    if hashes_at_level <= start {
        return None;
    }
    let width = (hashes_at_level - start).min(u64::from(TILE_WIDTH)) as u16;
    Some(TileId::hash(level, tile_index, width))
}

/// Reads tiles for a tile-backed [`HashReader`].
pub trait TileSource {
    /// The hashes of the given hash tile, exactly `id.width` of them.
    fn tile_hashes(&self, id: TileId) -> Result<Vec<Hash>, MerkleError>;
}

/// A [`HashReader`] over the tiles of one tree size: every node is read from, or hashed up
/// from, the tiles that a checkpoint of that size makes available.
pub struct TileHashReader<'a> {
    pub size: u64,
    pub source: &'a dyn TileSource,
}

impl HashReader for TileHashReader<'_> {
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, MerkleError> {
        let mut cache: std::collections::HashMap<TileId, Vec<Hash>> = Default::default();
        let mut out = Vec::with_capacity(nodes.len());
        for node in nodes {
            let tile_level = node.level / TILE_HEIGHT;
            let sub = u32::from(node.level % TILE_HEIGHT);
            // Position of the node's first hash within its tile level.
            let first = node
                .index
                .checked_shl(sub)
                .filter(|v| v >> sub == node.index)
                .ok_or_else(|| MerkleError::BadRequest(format!("node {node:?} out of range")))?;
            let count = 1u64 << sub;
            let tile_index = first / u64::from(TILE_WIDTH);
            let start = (first % u64::from(TILE_WIDTH)) as usize;
            let id = tile_for(tile_level, tile_index, self.size).ok_or_else(|| {
                MerkleError::BadRequest(format!(
                    "node {node:?} is not inside the tree of size {}",
                    self.size
                ))
            })?;
            if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(id) {
                let hashes = self.source.tile_hashes(id)?;
                if hashes.len() != usize::from(id.width) {
                    return Err(MerkleError::BadRequest(format!(
                        "tile {id}: {} hashes, expected {}",
                        hashes.len(),
                        id.width
                    )));
                }
                slot.insert(hashes);
            }
            let hashes = cache.get(&id).map(Vec::as_slice).unwrap_or(&[]);
            let slice = hashes.get(start..start + count as usize).ok_or_else(|| {
                MerkleError::BadRequest(format!("node {node:?} not complete in tile {id}"))
            })?;
            out.push(root_from_leaf_hashes(slice));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::tlog::{
        MemoryTree, consistency_proof, inclusion_proof, leaf_hash, tree_root,
    };

    #[test]
    fn index_paths_match_the_spec_example() {
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(1000), "x001/000");
        assert_eq!(TileId::hash(0, 1234067, 256).path(), "tile/0/x001/x234/067");
        assert_eq!(TileId::entries(5, 17).path(), "tile/entries/005.p/17");
        for id in [
            TileId::hash(0, 1234067, 256),
            TileId::hash(2, 0, 1),
            TileId::entries(999_999_999, 255),
        ] {
            assert_eq!(TileId::parse_path(&id.path()), Ok(id));
        }
        for bad in [
            "tile/00/000",
            "tile/64/000",
            "tile/0/x000/001",
            "tile/0/1",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/07",
            "tile/0/001/002",
            "tile/0/x1/002",
            "checkpoint",
            "tile/0/000/../x",
        ] {
            assert!(TileId::parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bundles_round_trip_and_refuse_truncation() {
        let entries = vec![b"a".to_vec(), vec![], vec![7u8; 300]];
        let id = TileId::entries(0, 3);
        let data = bundle_bytes(&entries);
        assert_eq!(parse_bundle(&id, &data).unwrap(), entries);
        assert!(parse_bundle(&id, &data[..data.len() - 1]).is_err());
        assert!(parse_bundle(&TileId::entries(0, 2), &data).is_err());
    }

    struct MemTiles(Vec<Hash>);
    impl TileSource for MemTiles {
        fn tile_hashes(&self, id: TileId) -> Result<Vec<Hash>, MerkleError> {
            let TileKind::Hash(level) = id.kind else {
                unreachable!()
            };
            let span = 1u64 << (8 * u32::from(level));
            Ok((0..u64::from(id.width))
                .map(|i| {
                    let first = ((id.index * 256 + i) * span) as usize;
                    root_from_leaf_hashes(&self.0[first..first + span as usize])
                })
                .collect())
        }
    }

    #[test]
    fn tile_reader_gives_the_same_proofs_as_memory() {
        let leaves: Vec<Hash> = (0..70_000u32)
            .map(|i| leaf_hash(&i.to_be_bytes()))
            .collect();
        let mut mem = MemoryTree::new();
        for l in &leaves {
            mem.push_hash(*l);
        }
        let src = MemTiles(leaves);
        for size in [1u64, 255, 256, 257, 65_536, 65_537, 70_000] {
            let reader = TileHashReader { size, source: &src };
            assert_eq!(
                tree_root(&reader, size).unwrap(),
                tree_root(&mem, size).unwrap()
            );
            let idx = size / 3;
            assert_eq!(
                inclusion_proof(&reader, idx, size).unwrap(),
                inclusion_proof(&mem, idx, size).unwrap()
            );
            if size > 1 {
                assert_eq!(
                    consistency_proof(&reader, size / 2, size).unwrap(),
                    consistency_proof(&mem, size / 2, size).unwrap()
                );
            }
        }
    }
}
