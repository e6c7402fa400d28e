#![forbid(unsafe_code)]
//! TLS and HTTP plumbing shared by every service: rustls configs, a test CA, an HTTPS server.
