//! Tile addressing and encodings of c2sp.org/tlog-tiles, and a [`HashReader`] over tiles.
//!
//! A hash tile at level `L`, index `N` holds up to 256 consecutive Merkle tree hashes of height
//! `8 * L`; a full tile is exactly 256 hashes (8192 bytes), a partial tile has width 1..=255 and
//! is named `<N>.p/<W>`. Entry bundles (`tile/entries/<N>[.p/<W>]`) hold the entries whose leaf
//! hashes make up level-0 tile `N`, each prefixed by its big-endian `u16` length.

use std::fmt;

use airlock_core::tlog::Hash;
use airlock_core::tlog::tiles::{self as core_tiles, encode_entry_bundle, parse_entry_bundle};

/// Tile height: 8 levels of the Merkle tree per tile, 256 hashes per full tile.
pub const TILE_HEIGHT: u8 = core_tiles::TILE_HEIGHT;
/// Hashes in a full tile (and entries in a full entry bundle).
pub const TILE_WIDTH: u16 = 256;
/// Largest entry an entry bundle can hold (its length prefix is a `u16`).
pub const MAX_ENTRY_SIZE: usize = core_tiles::MAX_BUNDLE_ENTRY;

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

    /// The same tile as airlock-core names it (its `level` is 0 for entry bundles).
    pub fn core(&self) -> core_tiles::TileId {
        core_tiles::TileId {
            level: match self.kind {
                TileKind::Hash(l) => l,
                TileKind::Entries => 0,
            },
            index: self.index,
            width: self.width,
        }
    }

    /// The path below the log prefix, e.g. `tile/0/x001/x234/067.p/5` or `tile/entries/000`.
    pub fn path(&self) -> String {
        match self.kind {
            TileKind::Hash(_) => self.core().path(),
            TileKind::Entries => self.core().entries_path(),
        }
    }

    /// Parses a path below the log prefix (`tile/...`), refusing anything not in canonical form.
    pub fn parse_path(path: &str) -> Result<Self, TileError> {
        let (id, entries) =
            core_tiles::TileId::parse_path(path).map_err(|_| TileError::BadPath {
                path: path.chars().take(200).collect(),
                reason: "not tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>] in canonical form",
            })?;
        Ok(TileId {
            kind: if entries {
                TileKind::Entries
            } else {
                TileKind::Hash(id.level)
            },
            index: id.index,
            width: id.width,
        })
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

/// Encodes entries as an entry bundle (airlock-core's encoding).
pub fn bundle_bytes<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, TileError> {
    encode_entry_bundle(entries).map_err(|e| TileError::BadBundle {
        tile: "new entry bundle".into(),
        reason: e.to_string(),
    })
}

/// Decodes an entry bundle, which must hold exactly `id.width` entries.
pub fn parse_bundle(id: &TileId, data: &[u8]) -> Result<Vec<Vec<u8>>, TileError> {
    let out = parse_entry_bundle(data).map_err(|e| TileError::BadBundle {
        tile: id.path(),
        reason: e.to_string(),
    })?;
    if out.len() != usize::from(id.width) {
        return Err(TileError::BadBundle {
            tile: id.path(),
            reason: format!("{} entries, expected {}", out.len(), id.width),
        });
    }
    Ok(out)
}

/// The widest hash tile `(level, tile_index)` a tree of `size` leaves has, if any.
pub fn tile_for(level: u8, tile_index: u64, size: u64) -> Option<TileId> {
    core_tiles::TileId::in_tree(level, tile_index, size)
        .map(|t| TileId::hash(level, t.index, t.width))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_paths_match_the_spec_example() {
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
        let data = bundle_bytes(&entries).unwrap();
        assert_eq!(parse_bundle(&id, &data).unwrap(), entries);
        assert!(parse_bundle(&id, &data[..data.len() - 1]).is_err());
        assert!(parse_bundle(&TileId::entries(0, 2), &data).is_err());
    }
}
