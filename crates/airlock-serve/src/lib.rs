#![forbid(unsafe_code)]
//! The server side of Airlock's network, for `repo serve`, `log serve`, `witness serve`, the demo
//! and tests. An updater never links it (see airlock-fetch for the client side).
//!
//! - [`tls`]: a test CA generated at run time ([`TestCa`]), server identities
//!   ([`ServerIdentity`]) and rustls server configurations (ring provider).
//! - [`server`]: an axum router served over HTTPS (or plain HTTP on loopback) with a
//!   [`ServerHandle`] that stops it on drop, under [`ServerLimits`] (timeouts for every phase of
//!   a connection and a connection cap, so idle and slow clients cannot hold it open);
//!   [`static_dir_router`] serves a directory.

mod conn;
pub mod server;
pub mod tls;

pub use server::{ServeError, ServerHandle, ServerLimits, static_dir_router};
pub use tls::{IdentityError, ServerIdentity, TestCa, TlsFiles};
