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
pub mod tile_store;
pub mod witness_client;

/// Largest entry the log accepts: an entry bundle's length prefix is a `u16`.
pub use airlock_core::tlog::tiles::MAX_BUNDLE_ENTRY as MAX_ENTRY_SIZE;
pub use auth::{
    AuthError, ClaimedSignature, SIGNATURE_HEADER, check_signature_header, sign_submission,
    submission_text, verify_entry, verify_submission,
};
pub use proof_bundle::{BundleError, VerifiedEntry, verify_bundle};
pub use sequencer::{CheckpointSigner, Committed, Placed, Sequencer, SequencerError};
pub use service::{ALREADY_LOGGED_HEADER, Log, LogError, LogOptions, LogSigner, Published};
pub use tile_store::{FsTileStore, Guard, PendingBatch, StoreError, TileStore};
pub use witness_client::{WitnessCallError, WitnessEndpoint, request_cosignature};
