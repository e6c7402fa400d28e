#![forbid(unsafe_code)]
//! TLS and HTTP plumbing shared by every Airlock service and test:
//!
//! - [`tls`]: a test CA generated at run time ([`TestCa`]), server identities
//!   ([`ServerIdentity`]) and rustls configurations (ring provider).
//! - [`server`]: an axum router served over HTTPS (or plain HTTP on loopback) with a
//!   [`ServerHandle`] that stops it on drop; [`static_dir_router`] serves a directory.
//! - [`fetch`]: the blocking HTTPS client ([`Fetcher`]) with byte caps, timeouts, a minimum
//!   transfer rate and bounded retries.

pub mod fetch;
pub mod server;
pub mod tls;

pub use fetch::{FetchError, Fetcher, FetcherConfig, MinRate, Progress, Trust, check_url_scheme};
pub use server::{ServeError, ServerHandle, static_dir_router};
pub use tls::{ServerIdentity, TestCa, TlsError, TlsFiles};
