//! The client's trusted metadata: TUF 1.0.34 section 5 as a state that takes bytes.
//!
//! A [`TrustedSet`] starts from a root the client already trusts and one reference time taken
//! at the start of the update. Each `update_*` call takes untrusted bytes, checks them in the
//! order the specification gives, and either makes them trusted or returns a [`TrustError`]
//! leaving the set exactly as it was. Nothing here downloads, reads or writes a file: the
//! caller fetches bytes (within the size caps below), hands them in, and persists what was
//! accepted.
//!
//! The order of calls follows the workflow, and calls out of order are refused:
//!
//! 1. [`TrustedSet::new`] with the trusted `root.json`, then [`TrustedSet::update_root`] with
//!    `N+1.root.json`, `N+2.root.json`, ... until one is missing (at most
//!    [`MAX_ROOT_ROTATIONS`]).
//! 2. Optionally [`TrustedSet::load_cached_timestamp`] with the timestamp the client stored last
//!    time (a rollback baseline), then [`TrustedSet::update_timestamp`] with the remote one.
//! 3. Optionally [`TrustedSet::load_cached_snapshot`]; if it is not up to date,
//!    [`TrustedSet::update_snapshot`] with the remote one.
//! 4. [`TrustedSet::update_targets`], then delegated roles as a
//!    [`TargetSearch`](super::search::TargetSearch) asks for them through
//!    [`TrustedSet::update_delegated_targets`]. When [`TrustedSet::top_level_targets_load`]
//!    says [`TargetsLoad::OnLookup`] (nothing changed since the client's last update), the
//!    top-level targets role too is left until a search asks for it; it is then checked exactly
//!    like this.
//!
//! Two things differ from python-tuf's `TrustedMetadataSet`, on purpose:
//! - Cached and remote files go through different methods. A cached timestamp or snapshot is
//!   only a rollback baseline: it may be expired or older than what the new timestamp lists
//!   (and then it is kept, but never used as final). A remote file that fails any check is never
//!   kept, so a failed update cannot leave a half-trusted state behind.
//! - A delegated role is trusted per (role, delegator) pair: reaching it through another
//!   delegator verifies it again against that delegator's keys. All trusted copies of one role
//!   must have the same signed content, so a delegator's delegations are never ambiguous.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::convert::Infallible;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::delegation::fold_case;
use super::hashes::HashError;
use super::metadata::{Metadata, MetadataError, Role, Signature};
use super::roles::{Root, Snapshot, Targets, Timestamp};
use super::verify::{Authority, ThresholdError};
use crate::transparency::TransparencyPolicy;

/// At most this many root rotations (`N+1.root.json` files) are applied in one update.
pub const MAX_ROOT_ROTATIONS: u32 = 256;
/// Size caps for metadata downloads, as python-tuf's defaults (bytes).
pub const DEFAULT_MAX_ROOT_BYTES: u64 = 512_000;
pub const DEFAULT_MAX_TIMESTAMP_BYTES: u64 = 16_384;
pub const DEFAULT_MAX_SNAPSHOT_BYTES: u64 = 2_000_000;
pub const DEFAULT_MAX_TARGETS_BYTES: u64 = 5_000_000;

/// Why untrusted metadata was refused. Every variant names the role and the check.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("{role} is not signed by a threshold of the keys {delegator} gives it")]
    Signatures {
        role: String,
        delegator: String,
        source: ThresholdError,
    },
    #[error("root version {found} is not the next version {expected}")]
    RootVersion { expected: u64, found: u64 },
    #[error("more than {max} root rotations in one update")]
    TooManyRootRotations { max: u32 },
    #[error("rollback of {role}: version {new} is lower than the trusted version {trusted}")]
    Rollback {
        role: String,
        trusted: u64,
        new: u64,
    },
    #[error(
        "rollback of snapshot in timestamp: it lists snapshot version {new}, the trusted \
         timestamp listed {trusted}"
    )]
    SnapshotMetaRollback { trusted: u64, new: u64 },
    #[error("the new snapshot no longer lists {file}, which the trusted snapshot lists")]
    RoleDroppedFromSnapshot { file: String },
    #[error(
        "rollback of {file} in snapshot: the new snapshot lists version {new}, the trusted one \
         listed {trusted}"
    )]
    RoleRollbackInSnapshot {
        file: String,
        trusted: u64,
        new: u64,
    },
    #[error("{role} is version {found}, but {listed_by} lists version {expected}")]
    VersionMismatch {
        role: String,
        listed_by: &'static str,
        expected: u64,
        found: u64,
    },
    #[error("{role} does not match its description in {listed_by}")]
    Content {
        role: String,
        listed_by: &'static str,
        source: HashError,
    },
    #[error("snapshot does not list {role}.json")]
    NotInSnapshot { role: String },
    #[error("{role} expired at {expires}, before the update started at {reference_time}")]
    Expired {
        role: String,
        expires: DateTime<Utc>,
        reference_time: DateTime<Utc>,
    },
    #[error("{parent} does not delegate to {role}")]
    NotDelegated { role: String, parent: String },
    #[error(
        "delegated roles {role:?} and {other:?} differ only in case: {}",
        super::delegation::CASE_COLLISION
    )]
    RoleNameCase { role: String, other: String },
    #[error("cannot load {role}: its delegator {parent} is not trusted yet")]
    DelegatorNotLoaded { role: String, parent: String },
    #[error(
        "{role} reached through {parent} differs from the copy already trusted through another \
         delegator (one role name, one file per update)"
    )]
    ConflictingCopies { role: String, parent: String },
    #[error(
        "the cached {role} cannot be used: root rotated the timestamp or snapshot keys in this \
         update (delete the cached timestamp and snapshot)"
    )]
    CacheInvalidatedByKeyRotation { role: &'static str },
    #[error("root v{version} carries a transparency policy that cannot be read")]
    Transparency {
        version: u64,
        source: crate::transparency::TransparencyError,
    },
    #[error("{action} is not allowed now: {reason}")]
    OutOfOrder {
        action: &'static str,
        reason: &'static str,
    },
}

/// What [`TrustedSet::update_timestamp`] did with a valid timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampUpdate {
    /// The new timestamp is now trusted: persist the bytes.
    Updated,
    /// Same version as the trusted one, which is kept (nothing changed upstream; don't persist).
    Unchanged,
}

/// What [`TrustedSet::load_cached_snapshot`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CachedSnapshot {
    /// It is the snapshot the timestamp lists and it is not expired: no download needed.
    Current,
    /// Valid as a rollback baseline only: fetch the snapshot and call `update_snapshot`.
    Outdated,
}

/// When a client loads the top-level targets role ([`TrustedSet::top_level_targets_load`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetsLoad {
    /// As part of the refresh (TUF 5.6), as the workflow lists it.
    Now,
    /// When a target search first needs it: the refresh found nothing changed since the
    /// client's last update (no new root, the remote timestamp the one stored, the stored
    /// snapshot the one it lists, a stored targets role of the listed length), so the targets
    /// role is the one already stored and checked then. Deferring it changes when the checks run, not which: the search asks for
    /// `("targets", "root")` and the role goes through [`TrustedSet::update_targets`] with the
    /// same reference time, snapshot entry (version, length, hashes), signatures and expiry.
    OnLookup,
}

/// Keys-and-threshold fingerprint of a top-level role, to notice rotations.
fn role_keys_fingerprint(root: &Root, role: &str) -> Option<(u64, Vec<(String, String)>)> {
    let r = root.roles.get(role)?;
    let mut keys: Vec<(String, String)> = r
        .keyids
        .iter()
        .map(|id| {
            let key = root
                .keys
                .get(id)
                .map(|k| serde_json::to_string(&k.keyval).unwrap_or_default())
                .unwrap_or_default();
            (id.clone(), key)
        })
        .collect();
    keys.sort();
    keys.dedup();
    Some((r.threshold, keys))
}

/// Why an `update_*_admitted` call failed: a TUF check, or the caller's own admission check,
/// which runs only once every TUF check has passed.
#[derive(Debug)]
pub enum Gated<E> {
    Trust(TrustError),
    Admit(E),
}

impl Gated<Infallible> {
    fn into_trust(self) -> TrustError {
        match self {
            Gated::Trust(e) => e,
            Gated::Admit(never) => match never {},
        }
    }
}

/// The client's trusted metadata for one update. See the module docs for the workflow.
#[derive(Debug)]
pub struct TrustedSet {
    reference_time: DateTime<Utc>,
    root: Metadata<Root>,
    /// The trusted root's transparency policy, parsed once.
    transparency: Option<TransparencyPolicy>,
    rotations: u32,
    /// True once root rotations changed the timestamp or snapshot keys in this update.
    fast_forward_reset: bool,
    timestamp: Option<Metadata<Timestamp>>,
    snapshot: Option<Metadata<Snapshot>>,
    targets: Option<Metadata<Targets>>,
    /// A remote timestamp was the version already trusted.
    timestamp_unchanged: bool,
    /// A remote timestamp replaced the trusted one in this update (then the trusted one is not
    /// the client's stored copy any more, whatever a later call finds).
    timestamp_replaced: bool,
    /// The final snapshot is the client's stored one ([`CachedSnapshot::Current`]).
    snapshot_from_store: bool,
    /// Delegated roles by (role, delegator).
    delegated: BTreeMap<(String, String), Metadata<Targets>>,
    /// SHA-256 of the signed bytes of each trusted delegated role, by role name.
    delegated_digest: BTreeMap<String, Vec<u8>>,
    /// Each trusted delegated role name by its [`fold_case`]: one delegator's delegations are
    /// checked when parsed, this catches `a` and `A` delegated by two different roles.
    delegated_folded: BTreeMap<String, String>,
}

fn verify_with<T: Role>(
    authority: Option<Authority<'_>>,
    metadata: &Metadata<T>,
    signed_bytes: &[u8],
    role: &str,
    delegator: &str,
) -> Result<(), TrustError> {
    check_signatures(
        authority,
        &metadata.signatures,
        signed_bytes,
        role,
        delegator,
    )
}

fn check_signatures(
    authority: Option<Authority<'_>>,
    signatures: &[Signature],
    signed_bytes: &[u8],
    role: &str,
    delegator: &str,
) -> Result<(), TrustError> {
    let signatures_error = |source| TrustError::Signatures {
        role: role.to_string(),
        delegator: delegator.to_string(),
        source,
    };
    let authority = authority.ok_or_else(|| {
        signatures_error(ThresholdError {
            valid: 0,
            threshold: 0,
        })
    })?;
    authority
        .verify(signatures, signed_bytes)
        .map(|_| ())
        .map_err(signatures_error)
}

fn transparency_of(root: &Root) -> Result<Option<TransparencyPolicy>, TrustError> {
    TransparencyPolicy::from_root(root).map_err(|source| TrustError::Transparency {
        version: root.version,
        source,
    })
}

impl TrustedSet {
    /// The transparency policy of the trusted root, if it carries one: then every root and
    /// targets-role file must be shown to be in the log before it is trusted (the caller checks
    /// with [`crate::transparency::ReleaseCheck`] under the policy trusted before the file).
    pub fn transparency(&self) -> Option<&TransparencyPolicy> {
        self.transparency.as_ref()
    }

    /// Start from root bytes the client trusts (shipped or stored) and the update's start time.
    ///
    /// The root must carry a threshold of its own signatures. Its expiry is not checked here:
    /// a newer root may follow; the final root's expiry is checked before the timestamp.
    pub fn new(root_bytes: &[u8], reference_time: DateTime<Utc>) -> Result<Self, TrustError> {
        let parsed = Metadata::<Root>::parse(root_bytes)?;
        let root = parsed.metadata;
        verify_with(
            root.signed.authority("root"),
            &root,
            &parsed.signed_bytes,
            "root",
            "root",
        )?;
        let transparency = transparency_of(&root.signed)?;
        Ok(TrustedSet {
            reference_time,
            transparency,
            root,
            rotations: 0,
            fast_forward_reset: false,
            timestamp: None,
            snapshot: None,
            targets: None,
            timestamp_unchanged: false,
            timestamp_replaced: false,
            snapshot_from_store: false,
            delegated: BTreeMap::new(),
            delegated_digest: BTreeMap::new(),
            delegated_folded: BTreeMap::new(),
        })
    }

    /// The reference time every expiry is compared with.
    pub fn reference_time(&self) -> DateTime<Utc> {
        self.reference_time
    }
    pub fn root(&self) -> &Metadata<Root> {
        &self.root
    }
    pub fn timestamp(&self) -> Option<&Metadata<Timestamp>> {
        self.timestamp.as_ref()
    }
    pub fn snapshot(&self) -> Option<&Metadata<Snapshot>> {
        self.snapshot.as_ref()
    }
    pub fn targets(&self) -> Option<&Metadata<Targets>> {
        self.targets.as_ref()
    }
    /// A delegated role as trusted through `parent` (`targets` for top-level delegations).
    pub fn delegated(&self, role: &str, parent: &str) -> Option<&Metadata<Targets>> {
        self.delegated.get(&(role.to_string(), parent.to_string()))
    }
    /// The targets metadata of `role` trusted through `parent`, top-level targets included
    /// (as `("targets", "root")`).
    pub fn targets_role(&self, role: &str, parent: &str) -> Option<&Metadata<Targets>> {
        if role == "targets" && parent == "root" {
            self.targets.as_ref()
        } else {
            self.delegated(role, parent)
        }
    }
    /// The trusted snapshot's entry for targets role `role`: what a client fetches it by
    /// (version, and length when listed). Refused when no snapshot is trusted or it does not
    /// list the role, so that nothing unlisted is requested.
    pub fn snapshot_entry(&self, role: &str) -> Result<&super::roles::MetaFile, TrustError> {
        let snapshot = self.snapshot.as_ref().ok_or(TrustError::OutOfOrder {
            action: "loading a targets role",
            reason: "no snapshot is trusted yet",
        })?;
        snapshot
            .signed
            .role_meta(role)
            .ok_or_else(|| TrustError::NotInSnapshot {
                role: role.to_string(),
            })
    }
    /// Root rotations applied so far.
    pub fn root_rotations(&self) -> u32 {
        self.rotations
    }
    /// True when a root rotation in this update changed the timestamp or snapshot keys: the
    /// client must delete its cached timestamp and snapshot (fast-forward attack recovery).
    pub fn cached_timestamp_and_snapshot_invalid(&self) -> bool {
        self.fast_forward_reset
    }

    fn expired<T: Role>(&self, role: &str, signed: &T) -> Result<(), TrustError> {
        if signed.is_expired(self.reference_time) {
            Err(TrustError::Expired {
                role: role.to_string(),
                expires: signed.expires(),
                reference_time: self.reference_time,
            })
        } else {
            Ok(())
        }
    }

    /// Apply the next root (`N+1.root.json`): it must be signed by a threshold of the trusted
    /// root's root keys AND of its own, and be exactly version N+1. Its expiry is not checked
    /// (a later root may follow). Allowed only before any timestamp is loaded.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<&Metadata<Root>, TrustError> {
        self.update_root_admitted(bytes, |_| Ok::<(), Infallible>(()))
            .map_err(Gated::into_trust)
    }

    /// [`TrustedSet::update_root`] with the caller's own check (e.g. that the exact bytes are
    /// in the transparency log) run after every TUF check passed and before the root is
    /// trusted: when `admit` refuses, the set is left exactly as it was.
    pub fn update_root_admitted<E>(
        &mut self,
        bytes: &[u8],
        admit: impl FnOnce(&Metadata<Root>) -> Result<(), E>,
    ) -> Result<&Metadata<Root>, Gated<E>> {
        let (new, rotated, transparency) = self.check_root(bytes).map_err(Gated::Trust)?;
        admit(&new).map_err(Gated::Admit)?;
        self.transparency = transparency;
        self.fast_forward_reset |= rotated;
        self.rotations += 1;
        self.root = new;
        Ok(&self.root)
    }

    /// Every check of [`TrustedSet::update_root`]; returns the new root, whether it rotated
    /// the timestamp or snapshot keys, and its transparency policy.
    fn check_root(
        &self,
        bytes: &[u8],
    ) -> Result<(Metadata<Root>, bool, Option<TransparencyPolicy>), TrustError> {
        if self.timestamp.is_some() {
            return Err(TrustError::OutOfOrder {
                action: "updating root",
                reason: "a timestamp is already loaded",
            });
        }
        if self.rotations >= MAX_ROOT_ROTATIONS {
            return Err(TrustError::TooManyRootRotations {
                max: MAX_ROOT_ROTATIONS,
            });
        }
        let parsed = Metadata::<Root>::parse(bytes)?;
        let new = parsed.metadata;
        verify_with(
            self.root.signed.authority("root"),
            &new,
            &parsed.signed_bytes,
            "new root",
            &format!("trusted root v{}", self.root.signed.version),
        )?;
        let expected = self.root.signed.version.saturating_add(1);
        if new.signed.version != expected {
            return Err(TrustError::RootVersion {
                expected,
                found: new.signed.version,
            });
        }
        verify_with(
            new.signed.authority("root"),
            &new,
            &parsed.signed_bytes,
            "new root",
            &format!("new root v{} itself", new.signed.version),
        )?;
        let rotated = ["timestamp", "snapshot"].iter().any(|role| {
            role_keys_fingerprint(&self.root.signed, role)
                != role_keys_fingerprint(&new.signed, role)
        });
        let transparency = transparency_of(&new.signed)?;
        Ok((new, rotated, transparency))
    }

    /// TUF 5.3.10: the final root must not be expired. `update_timestamp` checks it too; a
    /// client asks first so that its error names the root, not the timestamp.
    pub fn check_final_root(&self) -> Result<(), TrustError> {
        self.expired("root", &self.root.signed)
    }

    fn parse_timestamp(&self, bytes: &[u8]) -> Result<Metadata<Timestamp>, TrustError> {
        let parsed = Metadata::<Timestamp>::parse(bytes)?;
        verify_with(
            self.root.signed.authority("timestamp"),
            &parsed.metadata,
            &parsed.signed_bytes,
            "timestamp",
            "root",
        )?;
        Ok(parsed.metadata)
    }

    /// Load the timestamp this client stored in an earlier update, as a rollback baseline.
    ///
    /// Its signatures must verify against the current root; its expiry is not checked (it only
    /// bounds what may come next). Refused when this update rotated timestamp or snapshot keys.
    pub fn load_cached_timestamp(
        &mut self,
        bytes: &[u8],
    ) -> Result<&Metadata<Timestamp>, TrustError> {
        if self.timestamp.is_some() {
            return Err(TrustError::OutOfOrder {
                action: "loading the cached timestamp",
                reason: "a timestamp is already loaded",
            });
        }
        self.check_final_root()?;
        if self.fast_forward_reset {
            return Err(TrustError::CacheInvalidatedByKeyRotation { role: "timestamp" });
        }
        let new = self.parse_timestamp(bytes)?;
        Ok(self.timestamp.insert(new))
    }

    /// Check a timestamp fetched from the repository (spec 5.4).
    ///
    /// Order: final root not expired; signatures by root's timestamp keys; version not lower than
    /// the trusted timestamp's (equal keeps the trusted one: [`TimestampUpdate::Unchanged`]);
    /// snapshot version it lists not lower; not expired.
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<TimestampUpdate, TrustError> {
        if self.snapshot.is_some() {
            return Err(TrustError::OutOfOrder {
                action: "updating the timestamp",
                reason: "a snapshot is already loaded",
            });
        }
        self.check_final_root()?;
        let new = self.parse_timestamp(bytes)?;
        if let Some(trusted) = &self.timestamp {
            if new.signed.version < trusted.signed.version {
                return Err(TrustError::Rollback {
                    role: "timestamp".into(),
                    trusted: trusted.signed.version,
                    new: new.signed.version,
                });
            }
            if new.signed.version == trusted.signed.version {
                self.expired("timestamp", &trusted.signed)?;
                self.timestamp_unchanged = true;
                return Ok(TimestampUpdate::Unchanged);
            }
            let old_snap = trusted.signed.snapshot_meta().map_or(0, |m| m.version);
            let new_snap = new.signed.snapshot_meta().map_or(0, |m| m.version);
            if new_snap < old_snap {
                return Err(TrustError::SnapshotMetaRollback {
                    trusted: old_snap,
                    new: new_snap,
                });
            }
        }
        self.expired("timestamp", &new.signed)?;
        self.timestamp = Some(new);
        self.timestamp_replaced = true;
        Ok(TimestampUpdate::Updated)
    }

    /// The final timestamp: loaded, not expired, listing a snapshot version.
    fn final_timestamp(&self, action: &'static str) -> Result<&Timestamp, TrustError> {
        let ts = self.timestamp.as_ref().ok_or(TrustError::OutOfOrder {
            action,
            reason: "no timestamp is loaded",
        })?;
        self.expired("timestamp", &ts.signed)?;
        Ok(&ts.signed)
    }

    fn snapshot_meta_version(&self, action: &'static str) -> Result<u64, TrustError> {
        let ts = self.final_timestamp(action)?;
        ts.snapshot_meta()
            .map(|m| m.version)
            .ok_or(TrustError::OutOfOrder {
                action,
                reason: "the timestamp lists no snapshot",
            })
    }

    fn parse_snapshot(&self, bytes: &[u8]) -> Result<Metadata<Snapshot>, TrustError> {
        let parsed = Metadata::<Snapshot>::parse(bytes)?;
        verify_with(
            self.root.signed.authority("snapshot"),
            &parsed.metadata,
            &parsed.signed_bytes,
            "snapshot",
            "root",
        )?;
        Ok(parsed.metadata)
    }

    /// Rollback checks of a new snapshot against the trusted one (if any).
    fn check_snapshot_rollback(&self, new: &Snapshot) -> Result<(), TrustError> {
        let Some(trusted) = &self.snapshot else {
            return Ok(());
        };
        if new.version < trusted.signed.version {
            return Err(TrustError::Rollback {
                role: "snapshot".into(),
                trusted: trusted.signed.version,
                new: new.version,
            });
        }
        for (file, old) in &trusted.signed.meta {
            let Some(current) = new.meta.get(file) else {
                return Err(TrustError::RoleDroppedFromSnapshot { file: file.clone() });
            };
            if current.version < old.version {
                return Err(TrustError::RoleRollbackInSnapshot {
                    file: file.clone(),
                    trusted: old.version,
                    new: current.version,
                });
            }
        }
        Ok(())
    }

    fn check_targets_not_loaded(&self, action: &'static str) -> Result<(), TrustError> {
        if self.targets.is_some() {
            return Err(TrustError::OutOfOrder {
                action,
                reason: "targets metadata is already loaded",
            });
        }
        Ok(())
    }

    /// Load the snapshot this client stored earlier. Signatures must verify against the current
    /// root; the timestamp's hashes are not required to match (it may describe a newer
    /// snapshot). It becomes the rollback baseline; it is also final when it is the version the
    /// timestamp lists and not expired ([`CachedSnapshot::Current`]).
    pub fn load_cached_snapshot(&mut self, bytes: &[u8]) -> Result<CachedSnapshot, TrustError> {
        const ACTION: &str = "loading the cached snapshot";
        self.check_targets_not_loaded(ACTION)?;
        if self.snapshot.is_some() {
            return Err(TrustError::OutOfOrder {
                action: ACTION,
                reason: "a snapshot is already loaded",
            });
        }
        let listed = self.snapshot_meta_version(ACTION)?;
        if self.fast_forward_reset {
            return Err(TrustError::CacheInvalidatedByKeyRotation { role: "snapshot" });
        }
        let new = self.parse_snapshot(bytes)?;
        let current = new.signed.version == listed && !new.signed.is_expired(self.reference_time);
        self.snapshot = Some(new);
        self.snapshot_from_store = current;
        Ok(if current {
            CachedSnapshot::Current
        } else {
            CachedSnapshot::Outdated
        })
    }

    /// Check a snapshot fetched from the repository (spec 5.5).
    ///
    /// Order: final timestamp not expired; length and hashes the timestamp lists (before any
    /// parsing or signature check); signatures by root's snapshot keys; version and every
    /// role's version not lower than the trusted snapshot's, and no role dropped; version equal
    /// to the one the timestamp lists; not expired.
    pub fn update_snapshot(&mut self, bytes: &[u8]) -> Result<&Metadata<Snapshot>, TrustError> {
        const ACTION: &str = "updating the snapshot";
        self.check_targets_not_loaded(ACTION)?;
        let listed = self.snapshot_meta_version(ACTION)?;
        if let Some(meta) = self
            .timestamp
            .as_ref()
            .and_then(|t| t.signed.snapshot_meta())
        {
            meta.verify_bytes(bytes)
                .map_err(|source| TrustError::Content {
                    role: "snapshot".into(),
                    listed_by: "timestamp",
                    source,
                })?;
        }
        let new = self.parse_snapshot(bytes)?;
        self.check_snapshot_rollback(&new.signed)?;
        if new.signed.version != listed {
            return Err(TrustError::VersionMismatch {
                role: "snapshot".into(),
                listed_by: "timestamp",
                expected: listed,
                found: new.signed.version,
            });
        }
        self.expired("snapshot", &new.signed)?;
        self.snapshot_from_store = false;
        Ok(self.snapshot.insert(new))
    }

    /// The final snapshot: loaded, the version the timestamp lists, and not expired.
    fn final_snapshot(&self, action: &'static str) -> Result<&Snapshot, TrustError> {
        let listed = self.snapshot_meta_version(action)?;
        let snap = self.snapshot.as_ref().ok_or(TrustError::OutOfOrder {
            action,
            reason: "no snapshot is loaded",
        })?;
        if snap.signed.version != listed {
            return Err(TrustError::VersionMismatch {
                role: "snapshot".into(),
                listed_by: "timestamp",
                expected: listed,
                found: snap.signed.version,
            });
        }
        self.expired("snapshot", &snap.signed)?;
        Ok(&snap.signed)
    }

    /// Whether the refresh loads the top-level targets role now or leaves it to the first
    /// target search. `stored_len` is the length of the client's stored `targets.json`, `None`
    /// when it has none.
    ///
    /// [`TargetsLoad::OnLookup`] only when this update rotated no root, the remote timestamp
    /// was the trusted (stored) version ([`TimestampUpdate::Unchanged`]), the final snapshot is
    /// the stored one, current and unexpired ([`CachedSnapshot::Current`]), and a stored
    /// targets role is there with the length that snapshot lists (if it lists one): then the
    /// repository has published nothing since the client's last update, and that update got as
    /// far as storing targets (one that stopped after the snapshot, e.g. because targets were
    /// refused, left no copy or another version, nearly always of another length). Anything
    /// else, a new timestamp included, is [`TargetsLoad::Now`], the workflow as written. The
    /// length is only a hint for when to load: the checks run in full either way.
    pub fn top_level_targets_load(&self, stored_len: Option<u64>) -> TargetsLoad {
        let listed_len = self
            .snapshot
            .as_ref()
            .and_then(|s| s.signed.role_meta("targets"))
            .map(|m| m.length);
        let stored_matches = match (stored_len, listed_len) {
            (Some(stored), Some(Some(listed))) => stored == listed,
            (Some(_), Some(None)) => true,
            _ => false,
        };
        let nothing_changed = self.rotations == 0
            && self.timestamp_unchanged
            && !self.timestamp_replaced
            && self.snapshot_from_store
            && stored_matches
            && self.targets.is_none()
            && self.final_snapshot("deferring targets").is_ok();
        if nothing_changed {
            TargetsLoad::OnLookup
        } else {
            TargetsLoad::Now
        }
    }

    /// Check top-level `targets.json` (spec 5.6); the same checks as delegated roles, with root
    /// as the delegator. May be called again (cached, then remote) until a delegated role is
    /// loaded.
    pub fn update_targets(&mut self, bytes: &[u8]) -> Result<&Metadata<Targets>, TrustError> {
        self.update_delegated_targets(bytes, "targets", "root")
    }

    /// Check the targets metadata of `role`, delegated by `parent` (spec 5.6 and 5.7).
    ///
    /// Order: final snapshot; `parent` trusted and delegating to `role`; snapshot lists
    /// `role.json`; length and hashes it lists (before parsing); signatures by the keys
    /// `parent` gives `role`; version equal to the snapshot's; not expired; same signed content
    /// as any copy trusted through another delegator.
    pub fn update_delegated_targets(
        &mut self,
        bytes: &[u8],
        role: &str,
        parent: &str,
    ) -> Result<&Metadata<Targets>, TrustError> {
        self.update_delegated_targets_admitted(bytes, role, parent, |_| Ok::<(), Infallible>(()))
            .map_err(Gated::into_trust)
    }

    /// [`TrustedSet::update_delegated_targets`] with the caller's own check run after every
    /// TUF check passed and before the role is trusted (see
    /// [`TrustedSet::update_root_admitted`]).
    pub fn update_delegated_targets_admitted<E>(
        &mut self,
        bytes: &[u8],
        role: &str,
        parent: &str,
        admit: impl FnOnce(&Metadata<Targets>) -> Result<(), E>,
    ) -> Result<&Metadata<Targets>, Gated<E>> {
        let (new, digest, fold) = self
            .check_delegated_targets(bytes, role, parent)
            .map_err(Gated::Trust)?;
        admit(&new).map_err(Gated::Admit)?;
        if role == "targets" && parent == "root" {
            return Ok(self.targets.insert(new));
        }
        if let Some(digest) = digest {
            self.delegated_digest.insert(role.to_string(), digest);
        }
        if let Some(fold) = fold {
            self.delegated_folded.insert(fold, role.to_string());
        }
        Ok(
            match self.delegated.entry((role.to_string(), parent.to_string())) {
                Entry::Occupied(mut slot) => {
                    slot.insert(new);
                    slot.into_mut()
                }
                Entry::Vacant(slot) => slot.insert(new),
            },
        )
    }

    /// Every check of [`TrustedSet::update_delegated_targets`]; returns the role, the digest
    /// to remember for a role trusted for the first time, and its folded name.
    #[allow(clippy::type_complexity)]
    fn check_delegated_targets(
        &self,
        bytes: &[u8],
        role: &str,
        parent: &str,
    ) -> Result<(Metadata<Targets>, Option<Vec<u8>>, Option<String>), TrustError> {
        const ACTION: &str = "updating targets metadata";
        let snapshot = self.final_snapshot(ACTION)?;
        let top_level = role == "targets" && parent == "root";
        if top_level && !self.delegated.is_empty() {
            return Err(TrustError::OutOfOrder {
                action: ACTION,
                reason: "delegated roles are already loaded from the trusted targets",
            });
        }
        let not_delegated = || TrustError::NotDelegated {
            role: role.to_string(),
            parent: parent.to_string(),
        };
        let authority = if top_level {
            self.root.signed.authority("targets")
        } else if parent == "root" {
            return Err(not_delegated());
        } else {
            let delegator = if parent == "targets" {
                self.targets.as_ref()
            } else {
                self.delegated
                    .iter()
                    .find(|((r, _), _)| r == parent)
                    .map(|(_, m)| m)
            };
            let delegator = delegator.ok_or_else(|| TrustError::DelegatorNotLoaded {
                role: role.to_string(),
                parent: parent.to_string(),
            })?;
            let authority = delegator
                .signed
                .delegations
                .as_ref()
                .and_then(|d| d.authority(role))
                .ok_or_else(not_delegated)?;
            Some(authority)
        };
        let fold = (!top_level).then(|| fold_case(role));
        if let Some(other) = fold.as_ref().and_then(|f| self.delegated_folded.get(f))
            && other != role
        {
            return Err(TrustError::RoleNameCase {
                role: role.to_string(),
                other: other.clone(),
            });
        }
        let meta = snapshot
            .role_meta(role)
            .ok_or_else(|| TrustError::NotInSnapshot {
                role: role.to_string(),
            })?;
        meta.verify_bytes(bytes)
            .map_err(|source| TrustError::Content {
                role: role.to_string(),
                listed_by: "snapshot",
                source,
            })?;
        let expected_version = meta.version;
        // The signatures of a large targets file are checked while it is read.
        let check = |signatures: &[Signature], msg: &[u8]| {
            check_signatures(authority, signatures, msg, role, parent)
        };
        let (parsed, verdict) = Metadata::<Targets>::parse_checked(bytes, &check)?;
        verdict?;
        let new = parsed.metadata;
        if new.signed.version != expected_version {
            return Err(TrustError::VersionMismatch {
                role: role.to_string(),
                listed_by: "snapshot",
                expected: expected_version,
                found: new.signed.version,
            });
        }
        self.expired(role, &new.signed)?;
        if top_level {
            return Ok((new, None, None));
        }
        let digest = Sha256::digest(&parsed.signed_bytes).to_vec();
        let digest = match self.delegated_digest.get(role) {
            Some(existing) if *existing != digest => {
                return Err(TrustError::ConflictingCopies {
                    role: role.to_string(),
                    parent: parent.to_string(),
                });
            }
            Some(_) => None,
            None => Some(digest),
        };
        Ok((new, digest, fold))
    }
}
