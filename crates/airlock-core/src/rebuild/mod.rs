//! Reproducible builds: what a release says about its source and recipe ([`recipe`]), and
//! later the rebuilders' attestations and the client's decision over them. No I/O.
//! The formats are specified in docs/rebuild.md.

pub mod recipe;

pub use recipe::{Builder, RebuildInfo, Recipe, RecipeError, SourceRef};
