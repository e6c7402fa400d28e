//! TUF 1.0.x metadata and trust logic.
