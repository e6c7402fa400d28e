//! Reproducible builds: what a release says about its source and recipe ([`recipe`]), the
//! rebuilders' signed attestations ([`attestation`]), and the client's decision over them
//! ([`policy`]), and where attestations are published ([`layout`]).
//! No I/O.
//! The formats are specified in docs/rebuild.md.

pub mod attestation;
pub mod layout;
pub mod policy;
pub mod recipe;

pub use attestation::{AttestationError, Envelope, RebuildStatement, verify_attestation};
pub use policy::{Confirmation, PolicyError, RebuilderPolicy, decide, decide_all, decide_logged};
pub use recipe::{Builder, RebuildInfo, Recipe, RecipeError, SourceRef};
