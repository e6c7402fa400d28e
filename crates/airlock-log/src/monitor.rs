//! A monitor: walks a whole tiled log over HTTP(S), re-derives every hash tile from the entry
//! bundles, checks each served tile and the root against the signed checkpoint, and checks that
//! the log still extends the checkpoint seen last time.

use airlock_core::tlog::{
    Hash, NoteVerifier, VerifiedCheckpoint, leaf_hash, open_checkpoint, root_from_leaf_hashes,
};

use airlock_core::tlog::tiles::{TILE_WIDTH, TileId, encode_hash_tile, parse_entry_bundle_for};
use airlock_fetch::{FetchError, Fetcher};

/// What the monitor found wrong. Each names the URL, tile or check.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The fetch error names the URL (tile, bundle or checkpoint) that failed.
    #[error(transparent)]
    Fetch(FetchError),
    #[error("checkpoint at {url}: {reason}")]
    Checkpoint { url: String, reason: String },
    #[error("{tile}: {reason}")]
    Tile { tile: String, reason: String },
    #[error("the entries hash to a root other than the checkpoint's (size {size})")]
    RootMismatch { size: u64 },
    #[error(
        "the log no longer extends the checkpoint seen before (size {old_size}): split view or rewritten history"
    )]
    Inconsistent { old_size: u64 },
    #[error("the log shrank from size {old_size} to {new_size}")]
    Shrunk { old_size: u64, new_size: u64 },
}

/// The last checkpoint a monitor verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub size: u64,
    pub root: Hash,
}

/// The result of one walk.
#[derive(Debug)]
pub struct MonitorReport {
    pub checkpoint: VerifiedCheckpoint,
    /// Entries after the previously seen size, with their indices.
    pub new_entries: Vec<(u64, Vec<u8>)>,
    /// Hash tiles and entry bundles fetched and checked.
    pub tiles_checked: u64,
}

/// Largest tile, bundle or checkpoint read (a full entry bundle of 256 entries of 64 KiB).
const MAX_OBJECT: u64 = 16 << 20;

fn fetch(client: &Fetcher, base: &str, path: &str) -> Result<Vec<u8>, MonitorError> {
    let url = format!("{}/{path}", base.trim_end_matches('/'));
    client
        .fetch_capped(&url, MAX_OBJECT)
        .map_err(MonitorError::Fetch)
}

/// Walks the log at `base` (see the module docs). `witnesses` are only used to report which
/// cosignatures verified. `seen` is the checkpoint verified last time, if any.
pub fn walk(
    client: &Fetcher,
    base: &str,
    log_key: &NoteVerifier,
    witnesses: &[NoteVerifier],
    seen: Option<Seen>,
    mut progress: impl FnMut(u64, u64),
) -> Result<MonitorReport, MonitorError> {
    let cp_bytes = fetch(client, base, "checkpoint")?;
    let checkpoint =
        open_checkpoint(&cp_bytes, log_key, witnesses).map_err(|e| MonitorError::Checkpoint {
            url: format!("{base}/checkpoint"),
            reason: e.to_string(),
        })?;
    let size = checkpoint.checkpoint.size;
    if let Some(s) = seen
        && s.size > size
    {
        return Err(MonitorError::Shrunk {
            old_size: s.size,
            new_size: size,
        });
    }
    let from = seen.map(|s| s.size).unwrap_or(0);
    // The size is the log's claim: reserve for it only up to a bound, so that a checkpoint
    // claiming 2^64 leaves ends in a fetch error, not a failed allocation.
    let mut leaves: Vec<Hash> = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 20));
    let mut new_entries = Vec::new();
    let mut checked = 0u64;
    let bundles = size.div_ceil(TILE_WIDTH);
    for index in 0..bundles {
        let width = (size - index * 256).min(256) as u16;
        let id = TileId {
            level: 0,
            index,
            width,
        };
        let data = fetch(client, base, &id.entries_path())?;
        let entries = parse_entry_bundle_for(&id, &data).map_err(|e| MonitorError::Tile {
            tile: id.entries_path(),
            reason: airlock_core::error_chain(&e),
        })?;
        for (i, e) in entries.into_iter().enumerate() {
            let n = index * 256 + i as u64;
            leaves.push(leaf_hash(&e));
            if n >= from {
                new_entries.push((n, e));
            }
        }
        checked += 1;
        progress(index + 1, bundles);
    }
    // Re-derive every hash tile, level by level, and compare with what the log serves.
    let mut level_hashes = leaves.clone();
    let mut level: u8 = 0;
    while !level_hashes.is_empty() {
        let mut next = Vec::new();
        for (t, chunk) in level_hashes.chunks(256).enumerate() {
            let id = TileId {
                level,
                index: t as u64,
                width: chunk.len() as u16,
            };
            let served = fetch(client, base, &id.path())?;
            if served != encode_hash_tile(chunk) {
                return Err(MonitorError::Tile {
                    tile: id.path(),
                    reason: "served tile differs from the one derived from the entries".into(),
                });
            }
            checked += 1;
            if chunk.len() == 256 {
                next.push(root_from_leaf_hashes(chunk));
            }
        }
        level_hashes = next;
        level += 1;
    }
    if root_from_leaf_hashes(&leaves) != checkpoint.checkpoint.root_hash {
        return Err(MonitorError::RootMismatch { size });
    }
    if let Some(s) = seen
        && leaves
            .get(..usize::try_from(s.size).unwrap_or(usize::MAX))
            .is_none_or(|old| root_from_leaf_hashes(old) != s.root)
    {
        return Err(MonitorError::Inconsistent { old_size: s.size });
    }
    Ok(MonitorReport {
        checkpoint,
        new_entries,
        tiles_checked: checked,
    })
}
