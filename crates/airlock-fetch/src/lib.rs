#![forbid(unsafe_code)]
//! The client side of Airlock's network: what an updater links, and no server code.
//!
//! - [`fetch`]: the blocking HTTPS client ([`Fetcher`]) with byte caps, timeouts, a minimum
//!   transfer rate, bounded retries and the scheme policy (HTTPS, plain HTTP only to loopback).
//! - [`tls`]: trust anchors from PEM or the webpki roots, and the one rustls crypto provider.

pub mod fetch;
pub mod tls;

pub use fetch::{
    FetchError, Fetcher, FetcherConfig, MAX_RESUMES, MinRate, Progress, ProxyUrl, Response,
    Resumable, Trust, check_url_scheme,
};
pub use tls::TlsError;
