#![forbid(unsafe_code)]
//! The Airlock transparency log: a C2SP tiled log (c2sp.org/tlog-tiles) with a durable
//! sequencer, a crash-safe signing guard, an HTTP write/read API and witness cosigning.

pub mod auth;
pub mod client;
pub mod config;
pub mod monitor;
pub mod proof_bundle;
pub mod sequencer;
pub mod service;
pub mod tile_codec;
pub mod tile_store;
pub mod witness_client;

pub use auth::{
    AuthError, ClaimedSignature, SIGNATURE_HEADER, check_signature_header, sign_submission,
    submission_text, verify_entry, verify_submission,
};
pub use proof_bundle::{BundleError, VerifiedEntry, verify_bundle};
pub use sequencer::{CheckpointSigner, Committed, Sequencer, SequencerError};
pub use service::{Log, LogError, LogOptions, LogSigner, Published};
pub use tile_codec::{MAX_ENTRY_SIZE, TileError, TileId, TileKind};
pub use tile_store::{FsTileStore, Guard, PendingBatch, StoreError, TileStore};
pub use witness_client::{WitnessCallError, WitnessEndpoint, request_cosignature};
