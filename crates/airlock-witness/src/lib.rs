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
//! | 403 | no signature by a known key of that log, or a line whose key name and ID match a known key does not verify |
//! | 404 | unknown origin |
//! | 409 | the old size is not the stored size; body = stored size, `text/x.tlog.size` |
//! | 422 | the consistency proof does not verify, or same size with a different root |
//! | 200 | body = the cosignature line(s) |
//!
//! Both follow the current c2sp.org/tlog-witness text. A note with a bad line by a trusted key
//! is malformed (c2sp.org/signed-note) even when another line by that key verifies, so it is
//! refused whole. The same-size-different-root case was once a 409 in that text; it is a 422
//! now: a proof failure, not a stale size the log should retry from.
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
    #[error("{path}")]
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
    #[error(transparent)]
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
                    let note =
                        Note::parse(&bytes).map_err(|e| corrupt(airlock_core::error_chain(&e)))?;
                    let cp = Checkpoint::parse_text(note.text())
                        .map_err(|e| corrupt(airlock_core::error_chain(&e)))?;
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
            Err(e) => return WitnessResponse::text(e.status(), airlock_core::error_chain(&e)),
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
                Err(e) => WitnessResponse::text(e.status(), airlock_core::error_chain(&e)),
            };
        };
        if let Some(refusal) = bad_trusted_line(&req.note, keys) {
            return refusal;
        }
        let Ok(mut stored) = slot.lock() else {
            return WitnessResponse::text(500, "witness state lock poisoned");
        };
        let cp = match check_add_checkpoint(&req, keys, stored.as_ref()) {
            Ok(cp) => cp,
            Err(e) => {
                if e.status() == 422 {
                    tracing::warn!(
                        "log {:?}: possible split view: {}",
                        req.checkpoint.origin,
                        airlock_core::error_chain(&e)
                    );
                }
                return match e.conflict_body() {
                    Some(body) => WitnessResponse {
                        status: e.status(),
                        content_type: SIZE_CONTENT_TYPE,
                        body: body.into_bytes(),
                    },
                    None => WitnessResponse::text(e.status(), airlock_core::error_chain(&e)),
                };
            }
        };
        let cosig = match self.signer.cosign_text(req.note.text(), now) {
            Ok(c) => c,
            Err(e) => {
                return WitnessResponse::text(
                    500,
                    format!("cosigning failed: {}", airlock_core::error_chain(&e)),
                );
            }
        };
        if let Err(e) = write_atomic(
            &state_file(&self.state_dir, &cp.origin),
            &req.note.to_bytes(),
        ) {
            tracing::error!("{}", airlock_core::error_chain(&e));
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

/// The 403 for a note carrying a signature line whose key name and ID match a trusted key but
/// which does not verify. Checked on every line: the core's note verification stops looking at a
/// key once one of its lines verified, which the tlog-witness text does not allow here.
fn bad_trusted_line(note: &Note, keys: &[NoteVerifier]) -> Option<WitnessResponse> {
    note.signatures().iter().find_map(|sig| {
        let key = keys
            .iter()
            .find(|k| k.name() == sig.name && k.key_id() == sig.key_id)?;
        if key.verify(note.text().as_bytes(), &sig.bytes) {
            None
        } else {
            Some(WitnessResponse::text(
                403,
                format!(
                    "add-checkpoint: the signature line of trusted key {}+{:08x} does not verify",
                    sig.name, sig.key_id
                ),
            ))
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::tlog::{KeyAlgorithm, MemoryTree, NoteSigner, Signature, consistency_proof};

    const ORIGIN: &str = "airlock.test/log";

    fn tree(n: u64, tag: &str) -> MemoryTree {
        let mut t = MemoryTree::new();
        for i in 0..n {
            t.push(format!("{tag} {i}").as_bytes());
        }
        t
    }

    fn witness(dir: &Path, log: &NoteSigner) -> Witness {
        Witness::open(
            CosignatureSigner::generate("airlock.test/witness").unwrap(),
            vec![FollowedLog {
                origin: ORIGIN.into(),
                keys: vec![log.verifier()],
            }],
            dir,
        )
        .unwrap()
    }

    fn request(old: u64, proof: Vec<[u8; 32]>, note: &Note) -> Vec<u8> {
        AddCheckpointRequest::new(old, proof, &note.to_bytes())
            .unwrap()
            .to_bytes()
    }

    /// c2sp.org/tlog-witness: 403 when a signature line whose key name and ID match a trusted
    /// key fails to verify, even if another line from that key verifies (such a note is
    /// malformed per signed-note), whichever order the lines come in.
    #[test]
    fn a_bad_line_from_a_trusted_key_is_403_even_next_to_a_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = NoteSigner::generate(ORIGIN, KeyAlgorithm::Ed25519).unwrap();
        let w = witness(dir.path(), &log);
        let t = tree(3, "a");
        let good = Checkpoint::new(ORIGIN, 3, t.root())
            .unwrap()
            .sign(&log)
            .unwrap();
        let mut bad_sig = good.signatures()[0].clone();
        bad_sig.bytes[0] ^= 1;
        // Built by hand: `Note::add_signature` keeps one line per key.
        let with_lines = |lines: [&Signature; 2]| {
            let mut text = format!("{}\n", good.text());
            for l in lines {
                text.push_str(&l.to_line());
            }
            Note::parse(text.as_bytes()).unwrap()
        };
        let good_sig = &good.signatures()[0];
        for note in [
            with_lines([good_sig, &bad_sig]),
            with_lines([&bad_sig, good_sig]),
        ] {
            assert_eq!(note.signatures().len(), 2);
            let r = w.add_checkpoint(&request(0, vec![], &note), 1);
            assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
            assert_eq!(w.stored_size(ORIGIN), 0, "nothing stored on a refusal");
        }
        // A line by an unknown key (another name or ID) is still ignored.
        let stranger = NoteSigner::generate("someone.else", KeyAlgorithm::Ed25519).unwrap();
        let mut with_stranger = good.clone();
        with_stranger.sign(&stranger).unwrap();
        let r = w.add_checkpoint(&request(0, vec![], &with_stranger), 1);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(w.stored_size(ORIGIN), 3);
    }

    /// Same size, different root: 422 (the current tlog-witness text), not 409.
    #[test]
    fn same_size_with_another_root_is_422() {
        let dir = tempfile::tempdir().unwrap();
        let log = NoteSigner::generate(ORIGIN, KeyAlgorithm::Ed25519).unwrap();
        let w = witness(dir.path(), &log);
        let a = tree(4, "a");
        let b = tree(4, "b");
        let sign = |t: &MemoryTree| {
            Checkpoint::new(ORIGIN, t.size(), t.root())
                .unwrap()
                .sign(&log)
                .unwrap()
        };
        assert_eq!(
            w.add_checkpoint(&request(0, vec![], &sign(&a)), 1).status,
            200
        );
        let r = w.add_checkpoint(&request(4, vec![], &sign(&b)), 1);
        assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
        // And a consistent extension still works afterwards.
        let mut c = tree(4, "a");
        c.push(b"next");
        let proof = consistency_proof(&c, 4, 5).unwrap();
        assert_eq!(
            w.add_checkpoint(&request(4, proof, &sign(&c)), 1).status,
            200
        );
    }
}
