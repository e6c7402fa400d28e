//! TUF 1.0.x metadata and the client's trust decisions (spec 1.0.34), without I/O.
//!
//! # Public API
//!
//! Envelope and parsing ([`metadata`]):
//! - [`Metadata<T>`] `{ signatures, signed: T, unrecognized }`; `Metadata::new(signed)`,
//!   `Metadata::parse(bytes) -> Parsed<'_, T> { metadata, signed_bytes }` (checks `_type`,
//!   `spec_version` 1.x, version >= 1 and each role's own rules; not signatures;
//!   `signed_bytes` borrow the input when `signed` is canonical as received),
//!   `from_bytes`, `signed_bytes()` (canonical JSON of `signed`: the signed message),
//!   `to_canonical_bytes()`, `to_pretty_bytes()`, `sign(&dyn Signer, SignMode)`,
//!   `add_signature(Signature)` (offline signing: replaces one by the same key id).
//! - [`Signature`] `{ keyid, sig (hex), unrecognized }`; [`SignMode`] `ReplaceAll | Append`.
//! - [`Role`] trait (`TYPE`, `version()`, `expires()`, `spec_version()`, `is_expired(t)`,
//!   `validate()`), implemented by [`Root`], [`Timestamp`], [`Snapshot`], [`Targets`].
//! - [`MetadataError`], [`check_spec_version`], [`SPEC_VERSION`].
//!
//! Roles ([`roles`]): [`Root`] (`authority(role)`, `add_key`, `remove_key`), [`RoleKeys`],
//! [`Timestamp`] (`snapshot_meta()`), [`Snapshot`] (`role_meta(role)`), [`Targets`],
//! [`MetaFile`] `{ version, length?, hashes? }` (`with_bytes`, `verify_bytes`),
//! [`TargetFile`] `{ length, hashes, custom? }` (`from_bytes`, `verify_bytes`),
//! [`TOP_LEVEL_ROLES`]. Every struct keeps unknown fields in `unrecognized`, so parse and
//! serialize of foreign metadata keeps every field.
//!
//! Delegations ([`delegation`]): [`Delegations`] (`authority(role)`,
//! `roles_for_target(path) -> Vec<ChildRole>`), [`DelegatedRole`] (`covers(path)`),
//! [`SuccinctRoles`] (`bin_for_target`, `bin_index`, `bin_name`, `bin_names`, `is_bin_name`,
//! `number_of_bins`, `suffix_len`), [`path_matches`], [`path_hash`], [`fold_case`] (role names
//! that fold alike would share a file on a case-insensitive file system: refused as delegations
//! of one role, and by `TrustedSet` across delegators).
//!
//! Signatures ([`verify`]): [`Authority`] `{ keys, pq, keyids, threshold }` with
//! `verify(signatures, msg) -> Result<count, ThresholdError>`, `count_valid`, `verify_entry`
//! (one entry, as counted), `pq_signature_keyid`. Hybrid keys in the additive form: `Root::pq`
//! and `Delegations::pq` (the `x-airlock-pq` field: Ed25519 key id -> [`crate::crypto::PqKey`]),
//! [`sign_entries`] (a signer's entries, the SLH-DSA one included); a paired key counts only
//! with both halves (docs/keys.md).
//!
//! Hashes ([`hashes`]): [`MultiHasher`] (streaming, every listed hash must match, unknown
//! algorithms fail), [`verify_all`], [`HashError`].
//!
//! Client trust decisions ([`trusted`], [`search`]), TUF 1.0.34 section 5, no I/O:
//! - [`TrustedSet::new`]`(root_bytes, reference_time)`; `update_root(bytes)` (N+1 only, old and
//!   new thresholds, at most [`MAX_ROOT_ROTATIONS`]); `load_cached_timestamp(bytes)`,
//!   `update_timestamp(bytes) -> `[`TimestampUpdate`]` (Updated | Unchanged)`;
//!   `load_cached_snapshot(bytes) -> `[`CachedSnapshot`]` (Current | Outdated)`,
//!   `update_snapshot(bytes)`; `update_targets(bytes)`,
//!   `update_delegated_targets(bytes, role, parent)`; getters `root()`, `timestamp()`,
//!   `snapshot()`, `targets()`, `delegated(role, parent)`, `targets_role(role, parent)`,
//!   `root_rotations()`, `reference_time()`, `cached_timestamp_and_snapshot_invalid()`.
//!   Every refusal is a [`TrustError`] naming the role and the check; a refused file never
//!   changes the set.
//! - [`TargetSearch::new`]`(path)` / `with_max_delegations(path, n)`;
//!   `step(&TrustedSet) -> Result<`[`SearchStep`]`, `[`SearchError`]`>` with
//!   `NeedRole { role, parent }`, `Found { role, target }`, `NotFound`, `LimitReached`;
//!   [`MAX_DELEGATIONS`] = 32. `every_role(n)` walks every role for a listing
//!   (`visited_roles()`, `roles_not_visited()`).
//! - Size caps for downloads (python-tuf's defaults): [`DEFAULT_MAX_ROOT_BYTES`] (512 000),
//!   [`DEFAULT_MAX_TIMESTAMP_BYTES`] (16 384), [`DEFAULT_MAX_SNAPSHOT_BYTES`] (2 000 000),
//!   [`DEFAULT_MAX_TARGETS_BYTES`] (5 000 000).
//!
//! Airlock writes `expires` as `YYYY-MM-DDTHH:MM:SSZ` and reads any RFC 3339 time in UTC (`Z`).

pub mod delegation;
pub mod hashes;
pub mod metadata;
pub mod roles;
pub mod search;
pub mod trusted;
pub mod verify;

pub use delegation::{
    ChildRole, DelegatedRole, Delegations, SuccinctRoles, fold_case, path_hash, path_matches,
};
pub use hashes::{HashError, Hashes, HashesIter, MultiHasher, SUPPORTED_HASHES, verify_all};
pub use metadata::{
    Metadata, MetadataError, Parsed, Role, SPEC_VERSION, SignMode, Signature, check_spec_version,
    sign_entries,
};
pub use roles::{
    MetaFile, RoleKeys, Root, SNAPSHOT_META, Snapshot, TOP_LEVEL_ROLES, TargetFile, Targets,
    Timestamp,
};
pub use search::{MAX_DELEGATIONS, SearchError, SearchStep, TargetSearch};
pub use trusted::{
    CachedSnapshot, DEFAULT_MAX_ROOT_BYTES, DEFAULT_MAX_SNAPSHOT_BYTES, DEFAULT_MAX_TARGETS_BYTES,
    DEFAULT_MAX_TIMESTAMP_BYTES, Gated, MAX_ROOT_ROTATIONS, TargetsLoad, TimestampUpdate,
    TrustError, TrustedSet,
};
pub use verify::{Authority, ThresholdError};
