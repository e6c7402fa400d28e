#![forbid(unsafe_code)]
//! A C2SP transparency-log witness (c2sp.org/tlog-witness).
//!
//! It follows a set of logs (origin and checkpoint keys), remembers the latest checkpoint it
//! cosigned for each, and cosigns (c2sp.org/tlog-cosignature, cosignature/v1) a new checkpoint
//! only if it is consistent with that one. `POST /add-checkpoint` answers:
//!
//! | status | when |
//! |---|---|
//! | 400 | malformed request, or old size larger than the checkpoint's size |
//! | 403 | no signature by a known key of that log verifies |
//! | 404 | unknown origin |
//! | 409 | the old size is not the stored size; body = stored size, `text/x.tlog.size` |
//! | 422 | the consistency proof does not verify, or same size with a different root |
//! | 200 | body = the cosignature line(s) |
//!
//! (The tlog-witness text of the same-size-different-root case has varied between 409 and 422;
//! Airlock answers 422, as the project's requirements say: it is a proof failure, and a 409
//! would invite the log to retry.)
//!
//! Check and persist happen under one lock, and the new state is written atomically (temp file,
//! fsync, rename, fsync the directory) before answering, so two racing requests can never both
//! advance the stored checkpoint, and a cosigned checkpoint is never forgotten.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use sha2::{Digest, Sha256};

use airlock_core::tlog::witness::{AddCheckpointRequest, check_add_checkpoint};
use airlock_core::tlog::{Checkpoint, CosignatureSigner, Note, NoteVerifier};

pub mod config;

/// Largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;
/// Content type of a 409 answer.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// Why the witness could not start or persist.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: stored checkpoint is unreadable: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("followed log {origin:?}: {reason}")]
    Log { origin: String, reason: String },
    /// A configuration or key file problem, naming the file.
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    /// Reading or writing the key file (wrong passphrase, truncated file, ...); names the file.
    #[error("{0}")]
    Key(#[from] airlock_keystore::KeystoreError),
    #[error(transparent)]
    Fs(#[from] airlock_fs::FsError),
}

/// A log the witness follows.
#[derive(Debug, Clone)]
pub struct FollowedLog {
    pub origin: String,
    /// The log's Ed25519 checkpoint keys (any one valid signature suffices).
    pub keys: Vec<NoteVerifier>,
}

/// The answer to an add-checkpoint request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl WitnessResponse {
    fn text(status: u16, msg: impl Into<String>) -> Self {
        let mut body = msg.into().replace('\n', " ");
        body.push('\n');
        WitnessResponse {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into_bytes(),
        }
    }
}

/// A witness: key, followed logs, stored state.
pub struct Witness {
    signer: CosignatureSigner,
    logs: HashMap<String, Vec<NoteVerifier>>,
    state_dir: PathBuf,
    /// Latest cosigned checkpoint per followed origin (`None`: never cosigned). Each log has its
    /// own lock, held across check and persist.
    state: HashMap<String, Mutex<Option<Checkpoint>>>,
}

fn state_file(dir: &Path, origin: &str) -> PathBuf {
    dir.join(format!(
        "log-{}",
        hex::encode(Sha256::digest(origin.as_bytes()))
    ))
}

/// State and configuration files, written with the one atomic writer (temp file, fsync,
/// rename, fsync of the directory): a crash leaves the old or the new file, never a mix.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), WitnessError> {
    Ok(airlock_fs::write_atomic(
        path,
        data,
        &airlock_fs::WriteOptions::public(),
    )?)
}

impl Witness {
    /// A witness with `signer`, following `logs`, keeping its state in `state_dir` (created if
    /// needed; state of earlier runs is loaded).
    pub fn open(
        signer: CosignatureSigner,
        logs: Vec<FollowedLog>,
        state_dir: &Path,
    ) -> Result<Self, WitnessError> {
        fs::create_dir_all(state_dir).map_err(|source| WitnessError::Io {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let mut map = HashMap::new();
        let mut state: HashMap<String, Mutex<Option<Checkpoint>>> = HashMap::new();
        for log in logs {
            if log.keys.is_empty() {
                return Err(WitnessError::Log {
                    origin: log.origin,
                    reason: "no checkpoint key".into(),
                });
            }
            let path = state_file(state_dir, &log.origin);
            match fs::read(&path) {
                Ok(bytes) => {
                    let corrupt = |reason: String| WitnessError::Corrupt {
                        path: path.clone(),
                        reason,
                    };
                    let note = Note::parse(&bytes).map_err(|e| corrupt(e.to_string()))?;
                    let cp =
                        Checkpoint::parse_text(note.text()).map_err(|e| corrupt(e.to_string()))?;
                    if cp.origin != log.origin {
                        return Err(corrupt(format!("holds origin {:?}", cp.origin)));
                    }
                    state.insert(log.origin.clone(), Mutex::new(Some(cp)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    state.insert(log.origin.clone(), Mutex::new(None));
                }
                Err(source) => return Err(WitnessError::Io { path, source }),
            }
            map.insert(log.origin, log.keys);
        }
        Ok(Witness {
            signer,
            logs: map,
            state_dir: state_dir.to_path_buf(),
            state,
        })
    }

    /// The witness's cosignature verifier key.
    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    /// The size of the latest checkpoint cosigned for `origin` (0 if none).
    pub fn stored_size(&self, origin: &str) -> u64 {
        self.state
            .get(origin)
            .and_then(|m| m.lock().ok().and_then(|s| s.as_ref().map(|s| s.size)))
            .unwrap_or(0)
    }

    /// Handles an add-checkpoint request body at time `now` (POSIX seconds). The rules and
    /// their status codes are airlock-core's `check_add_checkpoint`; this adds the atomic
    /// check-and-persist around it.
    pub fn add_checkpoint(&self, body: &[u8], now: u64) -> WitnessResponse {
        let req = match AddCheckpointRequest::parse(body) {
            Ok(r) => r,
            Err(e) => return WitnessResponse::text(e.status(), e.to_string()),
        };
        let no_keys: &[NoteVerifier] = &[];
        let keys = self
            .logs
            .get(&req.checkpoint.origin)
            .map(Vec::as_slice)
            .unwrap_or(no_keys);
        let Some(slot) = self.state.get(&req.checkpoint.origin) else {
            // Unknown origin: let the core produce its 404.
            return match check_add_checkpoint(&req, no_keys, None) {
                Ok(_) => WitnessResponse::text(500, "unknown origin accepted"),
                Err(e) => WitnessResponse::text(e.status(), e.to_string()),
            };
        };
        let Ok(mut stored) = slot.lock() else {
            return WitnessResponse::text(500, "witness state lock poisoned");
        };
        let cp = match check_add_checkpoint(&req, keys, stored.as_ref()) {
            Ok(cp) => cp,
            Err(e) => {
                if e.status() == 422 {
                    tracing::warn!("log {:?}: possible split view: {e}", req.checkpoint.origin);
                }
                return match e.conflict_body() {
                    Some(body) => WitnessResponse {
                        status: e.status(),
                        content_type: SIZE_CONTENT_TYPE,
                        body: body.into_bytes(),
                    },
                    None => WitnessResponse::text(e.status(), e.to_string()),
                };
            }
        };
        let cosig = match self.signer.cosign_text(req.note.text(), now) {
            Ok(c) => c,
            Err(e) => return WitnessResponse::text(500, format!("cosigning failed: {e}")),
        };
        if let Err(e) = write_atomic(
            &state_file(&self.state_dir, &cp.origin),
            &req.note.to_bytes(),
        ) {
            tracing::error!("{e}");
            return WitnessResponse::text(500, "could not persist the checkpoint");
        }
        *stored = Some(cp);
        WitnessResponse {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: cosig.to_line().into_bytes(),
        }
    }

    /// The HTTP API: `POST /add-checkpoint`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/add-checkpoint", post(add_checkpoint_handler))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(self)
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn add_checkpoint_handler(State(w): State<Arc<Witness>>, body: Bytes) -> Response {
    let r = match tokio::task::spawn_blocking(move || w.add_checkpoint(&body, now_secs())).await {
        Ok(r) => r,
        Err(_) => WitnessResponse::text(500, "witness task failed"),
    };
    (
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, r.content_type)],
        r.body,
    )
        .into_response()
}
