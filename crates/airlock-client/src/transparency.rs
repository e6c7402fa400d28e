//! The updater's side of binary transparency: fetch a file's proof bundle, read the log's tiles
//! when a consistency proof is needed, persist the largest accepted checkpoint. Every decision
//! is the core's ([`ReleaseCheck`], [`check_peer_checkpoint`]).
//!
//! The client's memory of the log lives in `tlog-state` in the metadata directory: the
//! core's [`VerifierState`] per log key. It is keyed by the log's public key, so that a root
//! rotation that names another log key (a log key rotation, with the root threshold) starts a
//! fresh memory for it rather than comparing trees that two keys signed. The name has no
//! `.json` suffix, so no role's file (`<encoded role>.json`) can ever be it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use airlock_core::peer_check::{PeerStep, PeerVerdict, check_peer_checkpoint};
use airlock_core::tlog::{
    Hash, MAX_NOTE_SIZE, MerkleError, TILE_WIDTH, TileHashReader, TileId, TileReader,
    VerifierState, consistency_proof,
};
use airlock_core::transparency::{ReleaseCheck, ReleaseError, ReleaseStep, TransparencyPolicy};
use airlock_fetch::{FetchError, Fetcher};
use airlock_fs::WriteOptions;

use crate::store::StoreError;

/// File name of the client's log memory in the metadata directory.
pub const STATE_FILE: &str = "tlog-state";
/// Largest proof bundle read (a checkpoint note, cosignatures and at most 64 proof hashes fit
/// in a few kilobytes).
pub const MAX_BUNDLE_LEN: u64 = 64 * 1024;

/// Why a file was not shown to be in the log, or a checkpoint could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum LogCheckError {
    /// The core's check refused the bundle (missing, malformed, below quorum, not included,
    /// inconsistent, split view).
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error("downloading the proof bundle failed")]
    Bundle(#[source] FetchError),
    /// A consistency proof was needed and could not be computed from the log's tiles.
    #[error(
        "log {origin:?}: no consistency proof between sizes {from_size} and {to_size} from \
         the tiles at {tiles_url}"
    )]
    Tiles {
        origin: String,
        from_size: u64,
        to_size: u64,
        tiles_url: String,
        #[source]
        source: TileFailure,
    },
    /// A consistency proof was needed and no tile URL is known.
    #[error(
        "log {origin:?}: a consistency proof between sizes {from_size} and {to_size} is \
         needed, but the policy gives no log URL and none is configured (log_url)"
    )]
    NoTileUrl {
        origin: String,
        from_size: u64,
        to_size: u64,
    },
    #[error("the client's log state {}", path.display())]
    State {
        path: PathBuf,
        #[source]
        source: StateError,
    },
}

/// A tile download or the proof computed from tiles failed.
#[derive(Debug, thiserror::Error)]
pub enum TileFailure {
    #[error(transparent)]
    Fetch(FetchError),
    #[error(transparent)]
    Merkle(MerkleError),
}

/// The state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Io(#[from] StoreError),
    #[error("is not a state this client wrote: {0}")]
    Format(String),
}

/// The largest accepted checkpoint per log key, persisted in [`STATE_FILE`].
#[derive(Debug, Clone, Default)]
pub struct LogState {
    path: PathBuf,
    logs: BTreeMap<String, VerifierState>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StateFile {
    version: u32,
    /// log vkey -> the core's VerifierState JSON
    logs: BTreeMap<String, serde_json::Value>,
}

impl LogState {
    /// Load the state of the metadata directory `dir` (empty when there is none). A file that
    /// does not read is an error: forgetting the log would let a fork through.
    pub fn load(dir: &Path) -> Result<Self, LogCheckError> {
        let path = dir.join(STATE_FILE);
        let fail = |source: StateError| LogCheckError::State {
            path: path.clone(),
            source,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(LogState {
                    path,
                    logs: BTreeMap::new(),
                });
            }
            Err(source) => {
                return Err(fail(StateError::Io(StoreError::Read {
                    path: path.clone(),
                    source,
                })));
            }
        };
        let file: StateFile =
            serde_json::from_str(&text).map_err(|e| fail(StateError::Format(e.to_string())))?;
        if file.version != 1 {
            return Err(fail(StateError::Format(format!(
                "unknown version {}",
                file.version
            ))));
        }
        let mut logs = BTreeMap::new();
        for (key, value) in file.logs {
            let state = VerifierState::from_json(&value.to_string())
                .map_err(|e| fail(StateError::Format(airlock_core::error_chain(&e))))?;
            logs.insert(key, state);
        }
        Ok(LogState { path, logs })
    }

    /// The memory for `policy`'s log (empty for a key not seen before).
    pub fn for_policy(&self, policy: &TransparencyPolicy) -> VerifierState {
        self.logs.get(&log_key(policy)).cloned().unwrap_or_default()
    }

    /// The trusted cosigned checkpoint note of `policy`'s log, if any.
    pub fn checkpoint_note(&self, policy: &TransparencyPolicy) -> Option<String> {
        self.logs
            .get(&log_key(policy))
            .and_then(|s| s.checkpoint_note(policy.log_origin()))
            .map(str::to_string)
    }

    /// Remember `state` for `policy`'s log and write the file atomically.
    pub fn save(
        &mut self,
        policy: &TransparencyPolicy,
        state: VerifierState,
    ) -> Result<(), LogCheckError> {
        self.logs.insert(log_key(policy), state);
        let file = StateFile {
            version: 1,
            logs: self
                .logs
                .iter()
                .map(|(k, s)| {
                    let v = serde_json::from_str(&s.to_json()).unwrap_or(serde_json::Value::Null);
                    (k.clone(), v)
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&file).unwrap_or_default();
        airlock_fs::write_atomic(&self.path, text.as_bytes(), &WriteOptions::public()).map_err(
            |e| LogCheckError::State {
                path: self.path.clone(),
                source: StateError::Io(StoreError::Write {
                    path: self.path.clone(),
                    source: e.source,
                }),
            },
        )
    }
}

fn log_key(policy: &TransparencyPolicy) -> String {
    policy
        .policy()
        .logs
        .first()
        .map(|l| l.verifier.to_vkey())
        .unwrap_or_default()
}

/// Where the log's tiles are read: the configured override (a mirror), else the policy's URL.
pub fn tiles_base(policy: &TransparencyPolicy, override_url: Option<&str>) -> Option<String> {
    override_url.or(policy.log_url()).map(|u| {
        if u.ends_with('/') {
            u.to_string()
        } else {
            format!("{u}/")
        }
    })
}

/// Tiles over HTTP(S). A partial tile that is gone (the log grew) is read from the full tile
/// that replaced it: the first hashes are the same.
pub(crate) struct HttpTiles<'a> {
    fetcher: &'a Fetcher,
    base: &'a str,
    failure: RefCell<Option<FetchError>>,
}

impl<'a> HttpTiles<'a> {
    pub(crate) fn new(fetcher: &'a Fetcher, base: &'a str) -> Self {
        HttpTiles {
            fetcher,
            base,
            failure: RefCell::new(None),
        }
    }

    /// The download failure behind the last tile that could not be read.
    pub(crate) fn take_failure(&self) -> Option<FetchError> {
        self.failure.borrow_mut().take()
    }
}

impl TileReader for HttpTiles<'_> {
    fn read_tile(&self, tile: &TileId) -> Result<Vec<u8>, MerkleError> {
        let max = TILE_WIDTH * 32;
        let url = format!("{}{}", self.base, tile.path());
        let result = match self.fetcher.fetch_capped(&url, max) {
            Err(e) if e.is_not_found() && tile.is_partial() => {
                let full = TileId {
                    width: TILE_WIDTH as u16,
                    ..*tile
                };
                self.fetcher
                    .fetch_capped(&format!("{}{}", self.base, full.path()), max)
            }
            other => other,
        };
        result.map_err(|e| {
            let msg = e.to_string();
            *self.failure.borrow_mut() = Some(e);
            MerkleError::BadRequest(msg)
        })
    }
}

/// The consistency proof between `from_size` and `to_size`, computed from the tiles under
/// `base` (unauthenticated: a wrong hash only yields a proof the core refuses).
fn proof_from_tiles(
    fetcher: &Fetcher,
    base: Option<&str>,
    origin: &str,
    from_size: u64,
    to_size: u64,
) -> Result<Vec<Hash>, LogCheckError> {
    let Some(base) = base else {
        return Err(LogCheckError::NoTileUrl {
            origin: origin.to_string(),
            from_size,
            to_size,
        });
    };
    let tiles = HttpTiles::new(fetcher, base);
    let reader = TileHashReader::new(to_size, &tiles);
    consistency_proof(&reader, from_size, to_size).map_err(|e| LogCheckError::Tiles {
        origin: origin.to_string(),
        from_size,
        to_size,
        tiles_url: base.to_string(),
        source: match tiles.failure.into_inner() {
            Some(f) => TileFailure::Fetch(f),
            None => TileFailure::Merkle(e),
        },
    })
}

/// Everything a log check needs from the updater.
pub struct LogChecker<'a> {
    pub fetcher: &'a Fetcher,
    pub state: &'a mut LogState,
    /// Configured tile URL (overrides the policy's log URL).
    pub log_url: Option<&'a str>,
    /// POSIX seconds of the update's reference time.
    pub now: u64,
}

impl LogChecker<'_> {
    /// Show that `bytes` (`role` at `version`) are in `policy`'s log, with the bundle at
    /// `bundle_url`; persist the advanced checkpoint.
    pub fn check_release(
        &mut self,
        policy: &TransparencyPolicy,
        role: &str,
        version: u64,
        bytes: &[u8],
        bundle_url: &str,
    ) -> Result<Vec<u8>, LogCheckError> {
        let check = ReleaseCheck::new(policy, role, version, bytes);
        self.check_statement(policy, &check, bundle_url)
    }

    /// Show that the statement of `check` (a release's or a rebuilder attestation's) is in
    /// `policy`'s log, with the bundle at `bundle_url`; persist the advanced checkpoint.
    /// Returns the bundle.
    pub fn check_statement(
        &mut self,
        policy: &TransparencyPolicy,
        check: &ReleaseCheck<'_>,
        bundle_url: &str,
    ) -> Result<Vec<u8>, LogCheckError> {
        let bundle = match self.fetcher.fetch_capped(bundle_url, MAX_BUNDLE_LEN) {
            Ok(b) => Some(b),
            // A bundle that is not there is a refusal (by the core), never a skip.
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(LogCheckError::Bundle(e)),
        };
        let state = self.state.for_policy(policy);
        let base = tiles_base(policy, self.log_url);
        let mut consistency = None;
        loop {
            match check.verify(&state, bundle.as_deref(), consistency.as_deref(), self.now)? {
                ReleaseStep::Accepted(entry) => {
                    if entry.advanced {
                        self.state.save(policy, entry.state)?;
                    }
                    // Accepted only with a bundle.
                    return Ok(bundle.unwrap_or_default());
                }
                ReleaseStep::NeedConsistency {
                    origin,
                    from_size,
                    to_size,
                } => {
                    consistency = Some(proof_from_tiles(
                        self.fetcher,
                        base.as_deref(),
                        &origin,
                        from_size,
                        to_size,
                    )?);
                }
            }
        }
    }

    /// Compare one peer's checkpoint with the client's; persist an advanced checkpoint.
    pub fn check_peer(&mut self, policy: &TransparencyPolicy, peer_url: &str) -> PeerVerdict {
        let note = match self.fetcher.fetch_capped(peer_url, MAX_NOTE_SIZE as u64) {
            Ok(n) => n,
            Err(e) => return PeerVerdict::Unusable(format!("no answer: {e}")),
        };
        let state = self.state.for_policy(policy);
        let base = tiles_base(policy, self.log_url);
        let mut consistency = None;
        loop {
            match check_peer_checkpoint(policy, &state, &note, consistency.as_deref(), self.now) {
                Ok(PeerStep::Checked(update)) => {
                    let size = update.accepted.opened.checkpoint.size;
                    if update.advanced
                        && let Err(e) = self.state.save(policy, update.state)
                    {
                        return PeerVerdict::Unusable(airlock_core::error_chain(&e));
                    }
                    return PeerVerdict::Agrees { size };
                }
                Ok(PeerStep::NeedConsistency {
                    origin,
                    from_size,
                    to_size,
                }) => match proof_from_tiles(
                    self.fetcher,
                    base.as_deref(),
                    &origin,
                    from_size,
                    to_size,
                ) {
                    Ok(p) => consistency = Some(p),
                    Err(e) => return PeerVerdict::Unusable(airlock_core::error_chain(&e)),
                },
                Err(e) => return PeerVerdict::from_error(e),
            }
        }
    }
}
