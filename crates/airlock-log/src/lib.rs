#![forbid(unsafe_code)]
//! The Airlock transparency log: a C2SP tiled log (c2sp.org/tlog-tiles) with a durable
//! sequencer, a crash-safe signing guard, an HTTP write/read API and witness cosigning.

pub mod auth;
pub mod config;
pub mod http;
pub mod monitor;
pub mod proof;
pub mod sequencer;
pub mod service;
pub mod store;
pub mod testbed;
pub mod tile;
pub mod witnessing;

pub use auth::{AuthError, SIGNATURE_HEADER, sign_submission, submission_text, verify_submission};
pub use http::{HttpClient, HttpError, HttpResponse};
pub use proof::{BundleError, VerifiedEntry, verify_bundle};
pub use sequencer::{CheckpointSigner, Committed, Sequencer, SequencerError};
pub use service::{Log, LogError, LogOptions, LogSigner, Published};
pub use store::{FsTileStore, Guard, PendingBatch, StoreError, TileStore};
pub use tile::{MAX_ENTRY_SIZE, TileError, TileId, TileKind};
pub use witnessing::{WitnessCallError, WitnessEndpoint, request_cosignature};
