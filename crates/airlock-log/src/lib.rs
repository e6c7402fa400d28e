#![forbid(unsafe_code)]
//! The Airlock transparency log: a C2SP tiled log (c2sp.org/tlog-tiles) with a durable
//! sequencer, a crash-safe signing guard, an HTTP write/read API and witness cosigning.

pub mod sequencer;
pub mod store;
pub mod tile;

pub use sequencer::{CheckpointSigner, Committed, Sequencer, SequencerError};
pub use store::{FsTileStore, Guard, PendingBatch, StoreError, TileStore};
pub use tile::{MAX_ENTRY_SIZE, TileError, TileId, TileKind};
