//! Tiled logs (c2sp.org/tlog-tiles): tile coordinates and paths, entry bundles, and a
//! [`HashReader`] over tiles so proofs can be computed from a tiled log.
//!
//! A tile at level `l`, index `n` holds up to 256 consecutive hashes of Merkle level `8 * l`,
//! i.e. the roots of the perfect subtrees of `256^l` leaves starting at leaf
//! `(n * 256 + i) * 256^l`. A partial tile (`.p/<W>`) is the rightmost tile of its level with
//! `W < 256` hashes. Levels between multiples of 8 are not stored: they are hashed up from the
//! tile below, which is what [`TileHashReader`] does.

use std::collections::HashMap;
use std::fmt;

use super::merkle::{Hash, HashReader, MerkleError, NodeId, root_from_leaf_hashes};

/// Merkle levels per tile.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes in a full tile.
pub const TILE_WIDTH: u64 = 256;
/// Largest entry an entry bundle can carry (big-endian u16 length prefix).
pub const MAX_BUNDLE_ENTRY: usize = u16::MAX as usize;

/// Why a tile, path or bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum TileError {
    #[error("tile path {0:?} is not tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]")]
    Path(String),
    #[error("entry of {0} bytes does not fit an entry bundle (at most 65535)")]
    EntryTooLarge(usize),
    #[error("entry bundle is truncated at byte {0}")]
    BundleTruncated(usize),
    #[error("hash tile {path}: {got} bytes, expected {want} (32 per hash)")]
    HashTileLength {
        path: String,
        got: usize,
        want: usize,
    },
    #[error("entry bundle {path}: {got} entries, expected {want}")]
    BundleWidth {
        path: String,
        got: usize,
        want: usize,
    },
    #[error("entry bundle {path}")]
    Bundle {
        path: String,
        #[source]
        source: Box<TileError>,
    },
}

/// One tile (or, with `level` = `None`, one entry bundle) of a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    /// Tile level (0..=7 covers every tree up to 2^64 leaves).
    pub level: u8,
    /// Index within the level.
    pub index: u64,
    /// Number of hashes (1..=256); below 256 the tile is partial.
    pub width: u16,
}

/// `x001/x234/067` encoding of a tile index.
pub fn encode_tile_index(mut n: u64) -> String {
    let mut parts = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        parts.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    parts.reverse();
    parts.join("/")
}

impl TileId {
    /// The tile at (`level`, `index`) as it exists in a tree of `tree_size` leaves, or `None`
    /// if that tree has no such tile.
    pub fn in_tree(level: u8, index: u64, tree_size: u64) -> Option<TileId> {
        let shift = u32::from(level) * u32::from(TILE_HEIGHT);
        let hashes_at_level = if shift >= 64 { 0 } else { tree_size >> shift };
        let start = index.checked_mul(TILE_WIDTH)?;
        let width = hashes_at_level.checked_sub(start)?.min(TILE_WIDTH);
        if width == 0 {
            return None;
        }
        Some(TileId {
            level,
            index,
            width: u16::try_from(width).ok()?,
        })
    }

    /// Every tile of a tree of `tree_size` leaves, level by level.
    pub fn all_in_tree(tree_size: u64) -> Vec<TileId> {
        let mut out = Vec::new();
        for level in 0..8u8 {
            let mut index = 0;
            while let Some(t) = TileId::in_tree(level, index, tree_size) {
                out.push(t);
                index += 1;
            }
        }
        out
    }

    /// Byte length of this hash tile: 32 per hash.
    pub fn hash_tile_len(&self) -> usize {
        usize::from(self.width) * 32
    }

    pub fn is_partial(&self) -> bool {
        u64::from(self.width) < TILE_WIDTH
    }

    fn suffix(&self) -> String {
        if self.is_partial() {
            format!(".p/{}", self.width)
        } else {
            String::new()
        }
    }

    /// `tile/<L>/<N>[.p/<W>]`
    pub fn path(&self) -> String {
        format!(
            "tile/{}/{}{}",
            self.level,
            encode_tile_index(self.index),
            self.suffix()
        )
    }

    /// `tile/entries/<N>[.p/<W>]`: the entry bundle matching this level-0 tile.
    pub fn entries_path(&self) -> String {
        format!(
            "tile/entries/{}{}",
            encode_tile_index(self.index),
            self.suffix()
        )
    }

    /// Parse a tile path; returns the tile and whether it is an entry bundle path.
    pub fn parse_path(path: &str) -> Result<(TileId, bool), TileError> {
        let bad = || TileError::Path(path.into());
        let rest = path.strip_prefix("tile/").ok_or_else(bad)?;
        let (level_str, rest) = rest.split_once('/').ok_or_else(bad)?;
        let (level, entries) = if level_str == "entries" {
            (0u8, true)
        } else {
            let l = parse_decimal(level_str)
                .filter(|&l| l <= 63)
                .ok_or_else(bad)?;
            (u8::try_from(l).map_err(|_| bad())?, false)
        };
        let (index_str, width) = match rest.split_once(".p/") {
            Some((i, w)) => {
                let w = parse_decimal(w)
                    .filter(|&w| (1..TILE_WIDTH).contains(&w))
                    .ok_or_else(bad)?;
                (i, u16::try_from(w).map_err(|_| bad())?)
            }
            None => (rest, 256),
        };
        let parts: Vec<&str> = index_str.split('/').collect();
        let mut index: u64 = 0;
        for (i, p) in parts.iter().enumerate() {
            let digits = if i + 1 < parts.len() {
                p.strip_prefix('x').ok_or_else(bad)?
            } else {
                p
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let d: u64 = digits.parse().map_err(|_| bad())?;
            index = index
                .checked_mul(1000)
                .and_then(|x| x.checked_add(d))
                .ok_or_else(bad)?;
        }
        let id = TileId {
            level,
            index,
            width,
        };
        // Only the canonical encoding is accepted (no extra leading "x000/" groups).
        if encode_tile_index(index) != index_str {
            return Err(bad());
        }
        Ok((id, entries))
    }
}

impl fmt::Display for TileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

fn parse_decimal(s: &str) -> Option<u64> {
    let ok =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if ok { s.parse().ok() } else { None }
}

/// Encode entries as an entry bundle: each entry prefixed by its big-endian u16 length.
pub fn encode_entry_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, TileError> {
    let mut out = Vec::new();
    for e in entries {
        let e = e.as_ref();
        let len = u16::try_from(e.len()).map_err(|_| TileError::EntryTooLarge(e.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Decode an entry bundle.
pub fn parse_entry_bundle(bytes: &[u8]) -> Result<Vec<Vec<u8>>, TileError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let len_bytes: [u8; 2] = bytes
            .get(pos..pos + 2)
            .and_then(|b| b.try_into().ok())
            .ok_or(TileError::BundleTruncated(pos))?;
        let len = usize::from(u16::from_be_bytes(len_bytes));
        let entry = bytes
            .get(pos + 2..pos + 2 + len)
            .ok_or(TileError::BundleTruncated(pos))?;
        out.push(entry.to_vec());
        pos += 2 + len;
    }
    Ok(out)
}

/// Splits the bytes of hash tile `tile` into its hashes; the length must be exactly `width`
/// hashes, since a reader that ignored extra or missing bytes would hash a different tree.
pub fn parse_hash_tile(tile: &TileId, bytes: &[u8]) -> Result<Vec<Hash>, TileError> {
    if bytes.len() != tile.hash_tile_len() {
        return Err(TileError::HashTileLength {
            path: tile.path(),
            got: bytes.len(),
            want: tile.hash_tile_len(),
        });
    }
    Ok(bytes
        .chunks_exact(32)
        .filter_map(|c| Hash::try_from(c).ok())
        .collect())
}

/// The bytes of a hash tile holding `hashes`.
pub fn encode_hash_tile(hashes: &[Hash]) -> Vec<u8> {
    hashes.concat()
}

/// Decodes the entry bundle matching level-0 tile `tile`: it must hold exactly `width`
/// entries (a bundle with more or fewer does not match the tile's leaf hashes).
pub fn parse_entry_bundle_for(tile: &TileId, bytes: &[u8]) -> Result<Vec<Vec<u8>>, TileError> {
    let entries = parse_entry_bundle(bytes).map_err(|e| TileError::Bundle {
        path: tile.entries_path(),
        source: Box::new(e),
    })?;
    if entries.len() != usize::from(tile.width) {
        return Err(TileError::BundleWidth {
            path: tile.entries_path(),
            got: entries.len(),
            want: usize::from(tile.width),
        });
    }
    Ok(entries)
}

/// Source of tile contents (a directory, an object store, an HTTP mirror).
pub trait TileReader {
    /// The bytes of `tile`: at least `tile.width * 32` bytes (a full tile may be returned for a
    /// partial request; extra bytes are ignored).
    fn read_tile(&self, tile: &TileId) -> Result<Vec<u8>, MerkleError>;
}

/// A [`HashReader`] for the tree of `tree_size` leaves, computing any node from the tiles.
///
/// It does not authenticate tiles: a wrong hash only yields proofs that fail verification
/// against a signed checkpoint. Services that serve their own storage use it as is.
pub struct TileHashReader<'a, R: TileReader + ?Sized> {
    tree_size: u64,
    tiles: &'a R,
}

impl<'a, R: TileReader + ?Sized> TileHashReader<'a, R> {
    pub fn new(tree_size: u64, tiles: &'a R) -> Self {
        TileHashReader { tree_size, tiles }
    }
}

impl<R: TileReader + ?Sized> HashReader for TileHashReader<'_, R> {
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, MerkleError> {
        let mut cache: HashMap<TileId, Vec<u8>> = HashMap::new();
        let mut out = Vec::with_capacity(nodes.len());
        for node in nodes {
            let tile_level = node.level / TILE_HEIGHT;
            let rel = node.level % TILE_HEIGHT;
            // The 2^rel hashes of tile level `tile_level` under this node.
            let first = node.index.checked_shl(u32::from(rel)).unwrap_or(u64::MAX);
            let count = 1u64 << rel;
            let tile_index = first / TILE_WIDTH;
            let offset = first % TILE_WIDTH;
            let outside = || {
                MerkleError::BadRequest(format!(
                    "node level {} index {} is outside the tree of size {}",
                    node.level, node.index, self.tree_size
                ))
            };
            let tile =
                TileId::in_tree(tile_level, tile_index, self.tree_size).ok_or_else(outside)?;
            if offset + count > u64::from(tile.width) {
                return Err(outside());
            }
            let bytes = match cache.entry(tile) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let bytes = self.tiles.read_tile(&tile)?;
                    if bytes.len() < usize::from(tile.width) * 32 {
                        return Err(MerkleError::BadRequest(format!(
                            "tile {tile} has {} bytes, expected {}",
                            bytes.len(),
                            usize::from(tile.width) * 32
                        )));
                    }
                    v.insert(bytes)
                }
            };
            let start = usize::try_from(offset * 32).map_err(|_| outside())?;
            let end = start + usize::try_from(count * 32).map_err(|_| outside())?;
            let hashes: Vec<Hash> = bytes
                .get(start..end)
                .ok_or_else(outside)?
                .chunks_exact(32)
                .filter_map(|c| c.try_into().ok())
                .collect();
            out.push(root_from_leaf_hashes(&hashes));
        }
        Ok(out)
    }
}

/// Why a set of tiles does not make up the tree a checkpoint names.
#[derive(Debug, thiserror::Error)]
pub enum TileSetError {
    #[error("reading tile {path}")]
    Read {
        path: String,
        #[source]
        source: MerkleError,
    },
    #[error("tile {path}: {got} bytes, expected {want} (32 per hash)")]
    Length {
        path: String,
        got: usize,
        want: usize,
    },
    #[error("tile {path} hashes to a subtree root that its parent tile {parent} does not hold")]
    Parent { path: String, parent: String },
    #[error("the tiles give another root than the checkpoint's for tree size {size}")]
    Root { size: u64 },
}

/// Check that every tile of the tree of `tree_size` leaves, read through `tiles`, belongs to
/// the tree whose root is `root` (from a verified checkpoint): each full tile hashes to the
/// entry its parent tile holds for it, and the tiles give `root`. Every hash of every tile is
/// then bound to the checkpoint, which a proof computed from them alone does not show for the
/// hashes it does not use. Tiles are read once each, level by level.
pub fn check_tiles(
    tree_size: u64,
    root: &Hash,
    tiles: &dyn TileReader,
) -> Result<(), TileSetError> {
    let read = |tile: &TileId| -> Result<Vec<u8>, TileSetError> {
        let bytes = tiles.read_tile(tile).map_err(|source| TileSetError::Read {
            path: tile.path(),
            source,
        })?;
        // A full tile may be returned for a partial one; only the first `width` hashes count.
        match bytes.get(..tile.hash_tile_len()) {
            Some(b) => Ok(b.to_vec()),
            None => Err(TileSetError::Length {
                path: tile.path(),
                got: bytes.len(),
                want: tile.hash_tile_len(),
            }),
        }
    };
    let mut parent: Option<(TileId, Vec<u8>)> = None;
    for tile in TileId::all_in_tree(tree_size) {
        if tile.is_partial() {
            // Bound by the root below: the right edge is what the root is computed from.
            continue;
        }
        let hashes: Vec<Hash> = read(&tile)?
            .chunks_exact(32)
            .filter_map(|c| c.try_into().ok())
            .collect();
        let subtree = root_from_leaf_hashes(&hashes);
        let up = TileId::in_tree(tile.level + 1, tile.index / TILE_WIDTH, tree_size);
        let Some(up) = up else {
            // Only a full tile of the last level (a tree of 2^64 leaves) has no parent.
            if subtree != *root {
                return Err(TileSetError::Root { size: tree_size });
            }
            continue;
        };
        if parent.as_ref().is_none_or(|(id, _)| *id != up) {
            parent = Some((up, read(&up)?));
        }
        let offset = usize::try_from(tile.index % TILE_WIDTH).unwrap_or(usize::MAX) * 32;
        let held = parent
            .as_ref()
            .and_then(|(_, bytes)| bytes.get(offset..offset + 32));
        if held != Some(subtree.as_slice()) {
            return Err(TileSetError::Parent {
                path: tile.path(),
                parent: up.path(),
            });
        }
    }
    let computed = super::merkle::tree_root(&TileHashReader::new(tree_size, tiles), tree_size)
        .map_err(|source| TileSetError::Read {
            path: format!("the right edge of the tree of size {tree_size}"),
            source,
        })?;
    if computed != *root {
        return Err(TileSetError::Root { size: tree_size });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::merkle::{MemoryTree, consistency_proof, inclusion_proof, tree_root};

    #[test]
    fn index_encoding_and_paths() {
        assert_eq!(encode_tile_index(1234067), "x001/x234/067");
        assert_eq!(encode_tile_index(0), "000");
        assert_eq!(encode_tile_index(1000), "x001/000");
        let t = TileId {
            level: 1,
            index: 1234067,
            width: 17,
        };
        assert_eq!(t.path(), "tile/1/x001/x234/067.p/17");
        assert_eq!(TileId::parse_path(&t.path()).unwrap(), (t, false));
        let e = TileId {
            level: 0,
            index: 5,
            width: 256,
        };
        assert_eq!(e.entries_path(), "tile/entries/005");
        assert_eq!(TileId::parse_path("tile/entries/005").unwrap(), (e, true));
        for bad in [
            "tile/1/x001/x234/67",
            "tile/01/000",
            "tile/64/000",
            "tile/0/x000/001",
            "tile/0/001.p/256",
            "tile/0/001.p/0",
            "tile/0/001.p/07",
            "tile/0/1234",
            "tile/0/001/002",
            "tiles/0/000",
        ] {
            assert!(TileId::parse_path(bad).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn spec_example_tile_counts() {
        // "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial
        // level 0 tile of width 112, one full level 1 tile, one partial level 1 tile of width
        // 17, and one partial level 2 tile of width 1."
        let tiles = TileId::all_in_tree(70_000);
        let full0 = tiles
            .iter()
            .filter(|t| t.level == 0 && !t.is_partial())
            .count();
        assert_eq!(full0, 273);
        let partial: Vec<_> = tiles.iter().filter(|t| t.is_partial()).collect();
        assert_eq!(
            partial
                .iter()
                .map(|t| (t.level, t.width))
                .collect::<Vec<_>>(),
            vec![(0, 112), (1, 17), (2, 1)]
        );
        assert_eq!(tiles.iter().filter(|t| t.level == 1).count(), 2);
        assert_eq!(tiles.len(), 273 + 1 + 2 + 1);
        // "a tree of size 256 will be represented by a full level 0 tile and a partial level 1
        // tile of width 1."
        let t256 = TileId::all_in_tree(256);
        assert_eq!(t256.len(), 2);
        assert_eq!((t256[1].level, t256[1].width), (1, 1));
    }

    #[test]
    fn entry_bundles() {
        let entries: Vec<Vec<u8>> = vec![b"a".to_vec(), vec![], vec![7; 65535]];
        let b = encode_entry_bundle(&entries).unwrap();
        assert_eq!(parse_entry_bundle(&b).unwrap(), entries);
        assert!(encode_entry_bundle(&[vec![0u8; 65536]]).is_err());
        assert!(parse_entry_bundle(&b[..b.len() - 1]).is_err());
        assert!(parse_entry_bundle(&[0]).is_err());
        let tile = TileId {
            level: 0,
            index: 0,
            width: 3,
        };
        assert_eq!(parse_entry_bundle_for(&tile, &b).unwrap(), entries);
        let two = TileId { width: 2, ..tile };
        assert!(matches!(
            parse_entry_bundle_for(&two, &b),
            Err(TileError::BundleWidth {
                got: 3,
                want: 2,
                ..
            })
        ));
        let e = parse_entry_bundle_for(&tile, &b[..b.len() - 1]).unwrap_err();
        assert_eq!(e.to_string(), "entry bundle tile/entries/000.p/3");
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn hash_tiles_have_exactly_width_hashes() {
        let tile = TileId {
            level: 1,
            index: 2,
            width: 2,
        };
        let hashes = [[1u8; 32], [2u8; 32]];
        let bytes = encode_hash_tile(&hashes);
        assert_eq!(bytes.len(), tile.hash_tile_len());
        assert_eq!(parse_hash_tile(&tile, &bytes).unwrap(), hashes.to_vec());
        for bad in [&bytes[..63], &[bytes.as_slice(), &[0u8; 32]].concat()[..]] {
            assert!(matches!(
                parse_hash_tile(&tile, bad),
                Err(TileError::HashTileLength { want: 64, .. })
            ));
        }
    }

    /// Tiles cut from a MemoryTree give the same roots and proofs as the tree itself.
    struct Tiles(HashMap<(u8, u64), Vec<u8>>);
    impl TileReader for Tiles {
        fn read_tile(&self, tile: &TileId) -> Result<Vec<u8>, MerkleError> {
            self.0
                .get(&(tile.level, tile.index))
                .map(|b| b.get(..usize::from(tile.width) * 32).unwrap_or(b).to_vec())
                .ok_or_else(|| MerkleError::BadRequest(format!("no tile {tile}")))
        }
    }

    #[test]
    fn proofs_from_tiles_match() {
        let n = 70_000u64;
        let mut t = MemoryTree::new();
        for i in 0..n {
            t.push(&i.to_le_bytes());
        }
        let mut store = HashMap::new();
        for tile in TileId::all_in_tree(n) {
            let level = tile.level * TILE_HEIGHT;
            let nodes: Vec<NodeId> = (0..u64::from(tile.width))
                .map(|i| NodeId::new(level, tile.index * TILE_WIDTH + i))
                .collect();
            let hashes = t.read_hashes(&nodes).unwrap();
            store.insert((tile.level, tile.index), hashes.concat());
        }
        let tiles = Tiles(store);
        for size in [1, 2, 255, 256, 257, 65_535, 65_536, 65_537, 69_999, 70_000] {
            let r = TileHashReader::new(size, &tiles);
            assert_eq!(tree_root(&r, size).unwrap(), tree_root(&t, size).unwrap());
            for index in [0, size / 3, size - 1] {
                assert_eq!(
                    inclusion_proof(&r, index, size).unwrap(),
                    inclusion_proof(&t, index, size).unwrap()
                );
            }
            for old in [1, size / 2 + 1, size] {
                assert_eq!(
                    consistency_proof(&r, old, size).unwrap(),
                    consistency_proof(&t, old, size).unwrap()
                );
            }
        }
        tiles_check_against_roots(&t, tiles);
    }

    /// `check_tiles` accepts the tiles of a tree at each size and refuses any changed hash:
    /// in a full tile (its parent disagrees), in a parent, in a partial tile (the root
    /// disagrees), a short tile and a missing one.
    fn tiles_check_against_roots(t: &MemoryTree, tiles: Tiles) {
        let n = t.size();
        for size in [1, 255, 256, 257, 65_536, 65_537, n] {
            let root = tree_root(t, size).unwrap();
            check_tiles(size, &root, &tiles).unwrap();
            let other = tree_root(t, size - 1).unwrap_or_default();
            assert!(matches!(
                check_tiles(size, &other, &tiles),
                Err(TileSetError::Root { .. }) | Err(TileSetError::Parent { .. })
            ));
        }
        let root = tree_root(t, n).unwrap();
        let changed = |level: u8, index: u64, byte: usize| {
            let mut m = tiles.0.clone();
            m.get_mut(&(level, index)).unwrap()[byte] ^= 1;
            Tiles(m)
        };
        // A full level-0 tile in the middle.
        assert!(matches!(
            check_tiles(n, &root, &changed(0, 100, 32 * 7)),
            Err(TileSetError::Parent { ref path, .. }) if path == "tile/0/100"
        ));
        // The level-1 entry for that tile.
        assert!(matches!(
            check_tiles(n, &root, &changed(1, 0, 32 * 100)),
            Err(TileSetError::Parent { ref parent, .. }) if parent == "tile/1/000"
        ));
        // The partial level-0 tile at the right edge (70,000 = 273 * 256 + 112).
        assert!(matches!(
            check_tiles(n, &root, &changed(0, 273, 32 * 111)),
            Err(TileSetError::Root { .. })
        ));
        let mut short = tiles.0.clone();
        short.get_mut(&(0, 273)).unwrap().truncate(32 * 100);
        assert!(matches!(
            check_tiles(n, &root, &Tiles(short)),
            Err(TileSetError::Length { .. }) | Err(TileSetError::Read { .. })
        ));
        let mut missing = tiles.0.clone();
        missing.remove(&(0, 5));
        assert!(matches!(
            check_tiles(n, &root, &Tiles(missing)),
            Err(TileSetError::Read { ref path, .. }) if path == "tile/0/005"
        ));
    }

    #[test]
    fn tiles_of_a_tree_of_exactly_256_leaves_end_in_a_tile_of_one_hash() {
        let mut t = MemoryTree::new();
        for i in 0..256u64 {
            t.push(&i.to_le_bytes());
        }
        let nodes: Vec<NodeId> = (0..256).map(|i| NodeId::new(0, i)).collect();
        let root = tree_root(&t, 256).unwrap();
        // One full level-0 tile, and above it a level-1 tile of one hash: the root.
        assert_eq!(TileId::all_in_tree(256).len(), 2);
        let tiles = Tiles(HashMap::from([
            ((0, 0), t.read_hashes(&nodes).unwrap().concat()),
            ((1, 0), root.to_vec()),
        ]));
        check_tiles(256, &root, &tiles).unwrap();
        assert!(matches!(
            check_tiles(256, &[7u8; 32], &tiles),
            Err(TileSetError::Root { size: 256 })
        ));
    }

    #[test]
    fn nodes_outside_the_tree_are_refused() {
        let t = Tiles(HashMap::new());
        let r = TileHashReader::new(300, &t);
        assert!(r.read_hashes(&[NodeId::new(0, 300)]).is_err());
        assert!(r.read_hashes(&[NodeId::new(9, 0)]).is_err());
    }
}
