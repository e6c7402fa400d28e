#![forbid(unsafe_code)]
//! Airlock's updater client: the TUF 1.0.34 client workflow (section 5) over HTTPS.
//!
//! The trust decisions (signatures, thresholds, versions, expiry, hashes of metadata) are made by
//! [`airlock_core::tuf::TrustedSet`], which never does I/O. This crate is the thin driver around
//! it: it fetches bytes through [`airlock_fetch::Fetcher`] (HTTPS, size caps, timeouts, minimum
//! transfer rate, bounded retries), hands them to the core, and stores exactly the bytes the core
//! accepted in the metadata directory. Target files are streamed to disk while hashed, never read
//! past their listed length, and moved into place atomically only once every hash matched.
//!
//! ```no_run
//! use std::sync::Arc;
//! use airlock_client::{Updater, UpdaterConfig};
//! use airlock_fetch::{Fetcher, FetcherConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fetcher = Arc::new(Fetcher::new(FetcherConfig::default())?);
//! let root = std::fs::read("root.json")?; // obtained out of band
//! Updater::init("/var/lib/app/tuf".as_ref(), &root)?;
//! let config = UpdaterConfig::new("/var/lib/app/tuf", "https://example.org/metadata/", fetcher)
//!     .with_targets_base_url("https://example.org/targets/");
//! let mut updater = Updater::new(config)?;
//! updater.refresh()?;
//! let dest = Updater::local_target_path("/var/lib/app/downloads".as_ref(), "app.tar.gz");
//! let (info, downloaded) = updater.fetch_target("app.tar.gz", &dest, &mut |_, _| {})?;
//! println!("{} ({} bytes) ready, downloaded now: {downloaded}", info.path, info.file.length);
//! # Ok(()) }
//! ```

mod config;
pub mod delta;
mod error;
pub mod fallback;
pub mod mirror_sync;
pub mod rebuilds;
pub mod store;
mod target;
pub mod transparency;
mod updater;

pub use config::{Limits, UpdaterConfig};
pub use error::UpdateError;
pub use store::{MetadataStore, StoreError};
pub use target::TargetFileError;
pub use updater::{PeerReport, RefreshSummary, TargetInfo, TargetListing, Updater};
