//! The running log: a sequencer thread that batches submissions, a publisher thread that
//! collects witness cosignatures and publishes the checkpoint, and the HTTP API.
//!
//! - `POST /add`: body = entry, header `Airlock-Signature` (see [`crate::auth`]). Answers
//!   `200` with the entry's index (decimal, newline) once the entry is durable, `400` malformed,
//!   `401` unauthenticated, `413` too large, `503` if the log cannot write or is halted. A
//!   refused submission changes nothing. An entry the log already holds is not appended again:
//!   the answer is `200` with its existing index, a second line `already logged` and the header
//!   `Airlock-Already-Logged: true`, so a client can retry a submission whose answer it lost. The header is checked first (well formed, a publisher key of this log),
//!   so that an unauthenticated client is refused before its body is read; a publisher's body is
//!   read up to a cap, and an announced length above the entry limit is refused at once.
//! - `GET /checkpoint`, `GET /tile/<L>/<N>[.p/<W>]`, `GET /tile/entries/<N>[.p/<W>]`: as
//!   c2sp.org/tlog-tiles.
//! - `GET /proof/<index>`: a c2sp.org/tlog-proof bundle for the entry against the published
//!   (cosigned) checkpoint; `404` while the entry is not yet in a published checkpoint.
//!
//! Entries are acknowledged when durable (after the sequencer's guard is written), before the
//! checkpoint that includes them is cosigned and published; [`Log::wait_published`] waits for
//! that.
//!
//! **Halt.** A witness that answers that it holds a checkpoint of this log which the log's tree
//! does not extend (409 with a larger size, or 422) proves that another copy of this log (a
//! restored backup's original, a copied directory) signed more than this one holds: going on
//! would fork the log under its own key. The log then halts: it records the reason in its
//! store (so a restart stays halted), stops accepting entries (`503`) and publishing, and
//! signs nothing until a person clears the halt ([`crate::TileStore::clear_halt`], `airlock
//! log recover`). The first publication after start-up asks every witness in this way (the
//! witness answers a request from size 0 with its latest size), so a log started from an old
//! state halts before it accepts an entry; until every witness has answered once, `/add`
//! answers `503` and the publisher asks the silent ones again every 2 s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, mpsc as std_mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{mpsc, oneshot, watch};

use airlock_fetch::Fetcher;

use airlock_core::error_chain;
use airlock_core::tlog::tiles::{TileHashReader, TileId, TileReader, parse_hash_tile};
use airlock_core::tlog::{
    Checkpoint, Hash, MerkleError, Note, NoteSigner, NoteVerifier, ProofBundle,
};

use crate::MAX_ENTRY_SIZE;
use crate::auth::{AuthError, SIGNATURE_HEADER, check_signature_header, verify_entry};
use crate::sequencer::{CheckpointSigner, Placed, Sequencer, SequencerError, StoreTileSource};
use crate::tile_store::{StoreError, TileStore};
use crate::witness_client::{WitnessCallError, WitnessEndpoint, request_cosignature};

/// Why the log could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Sequencer(#[from] SequencerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("log key {key:?} must be an Ed25519 note key named after the origin {origin:?}")]
    Key { key: String, origin: String },
    #[error("the log is shut down or its sequencer failed")]
    Stopped,
    /// The halt's reason names the witness and the size it holds.
    #[error("{0}")]
    Halted(String),
    /// The start-up check has not heard from every witness yet; the text names them.
    #[error("{0}")]
    NotReady(String),
    #[error("entry {index} is not in the published checkpoint (size {size}) yet")]
    NotYetPublished { index: u64, size: u64 },
    #[error("building the proof: {0}")]
    Proof(String),
    #[error("entry of {len} bytes is above the limit of {max}")]
    EntryTooLarge { len: usize, max: usize },
    #[error("starting a log thread: {0}")]
    Thread(std::io::Error),
}

/// Signs checkpoints with the log's Ed25519 note key.
pub struct LogSigner(pub NoteSigner);

impl CheckpointSigner for LogSigner {
    fn origin(&self) -> &str {
        self.0.name()
    }
    fn sign_checkpoint(&self, size: u64, root: &Hash) -> Result<Vec<u8>, String> {
        let cp = Checkpoint::new(self.0.name(), size, *root).map_err(|e| e.to_string())?;
        cp.sign(&self.0)
            .map(|n| n.to_bytes())
            .map_err(|e| e.to_string())
    }
}

/// Everything a log needs to run.
pub struct LogOptions {
    /// The log's checkpoint key; its name is the origin.
    pub signer: NoteSigner,
    pub store: Arc<dyn TileStore>,
    /// Keys allowed to submit entries.
    pub publishers: Vec<NoteVerifier>,
    /// Witnesses asked to cosign each new checkpoint.
    pub witnesses: Vec<WitnessEndpoint>,
    /// Client used to call witnesses (TLS trust, timeout).
    pub witness_client: Option<Arc<Fetcher>>,
    /// Largest number of entries in one batch.
    pub max_batch: usize,
}

/// The checkpoint currently published.
#[derive(Debug, Clone)]
pub struct Published {
    pub note: Arc<Vec<u8>>,
    pub size: u64,
    pub root: Hash,
    /// Names of the witnesses whose cosignatures it carries.
    pub cosigned_by: Vec<String>,
}

/// A publisher's body is read up to this size before being refused as too large (an entry is
/// at most 64 KiB; reading a little more lets a chunked upload just over the limit get a 413
/// rather than a reset connection).
const OVERSIZE_READ_LIMIT: usize = 1 << 20;

type Ack = oneshot::Sender<Result<Placed, String>>;

/// Response header marking an answer to `/add` for an entry the log already held.
pub const ALREADY_LOGGED_HEADER: &str = "Airlock-Already-Logged";

/// The halt, shared by the HTTP handlers and both threads; `None` while the log runs.
type HaltSlot = Arc<RwLock<Option<String>>>;

fn halt_reason(slot: &HaltSlot) -> Option<String> {
    match slot.read() {
        Ok(h) => h.clone(),
        // A poisoned lock fails closed.
        Err(_) => Some("log halted: its halt state is unreadable".into()),
    }
}

enum Msg {
    Entry(Vec<u8>, Ack),
    Stop,
}

struct Signed {
    note: Vec<u8>,
    checkpoint: Checkpoint,
}

struct Inner {
    origin: String,
    log_verifier: NoteVerifier,
    publishers: Vec<NoteVerifier>,
    store: Arc<dyn TileStore>,
    submit: mpsc::Sender<Msg>,
    published: RwLock<Option<Published>>,
    published_size: watch::Sender<Option<u64>>,
    tiles: TileCache,
    halt: HaltSlot,
    /// Witnesses that have not answered since start-up: until each has said which size of this
    /// log it holds, the log cannot know it is not behind, so it accepts no entry.
    unheard: RwLock<Vec<String>>,
}

/// A running log. Cheap to clone; [`Log::shutdown`] stops its threads.
#[derive(Clone)]
pub struct Log {
    inner: Arc<Inner>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

/// Immutable tiles (full or partial: the width is in the name) cached for proof serving.
struct TileCache {
    store: Arc<dyn TileStore>,
    map: Mutex<HashMap<TileId, Arc<Vec<u8>>>>,
}

impl TileReader for TileCache {
    fn read_tile(&self, tile: &TileId) -> Result<Vec<u8>, MerkleError> {
        if let Ok(map) = self.map.lock()
            && let Some(h) = map.get(tile)
        {
            return Ok(h.as_ref().clone());
        }
        let bytes = StoreTileSource(&*self.store).read_tile(tile)?;
        if let Ok(mut map) = self.map.lock() {
            if map.len() > 16_384 {
                map.clear();
            }
            map.insert(*tile, Arc::new(bytes.clone()));
        }
        Ok(bytes)
    }
}

impl Log {
    /// Recovers the log from its store, signs the checkpoint of the recovered tree and starts the
    /// sequencer and publisher threads.
    pub fn start(opts: LogOptions) -> Result<Log, LogError> {
        let origin = opts.signer.name().to_string();
        if opts.signer.algorithm() != airlock_core::tlog::KeyAlgorithm::Ed25519 {
            return Err(LogError::Key {
                key: opts.signer.verifier().to_vkey(),
                origin,
            });
        }
        let sequencer = Sequencer::open(opts.store.clone())?;
        let recovered_size = sequencer.size();
        let signer = LogSigner(opts.signer);
        let halted = opts.store.read_halt()?;
        let (submit, rx) = mpsc::channel::<Msg>(1 << 16);
        let (published_size, _) = watch::channel(None);
        let inner = Arc::new(Inner {
            origin,
            log_verifier: signer.0.verifier(),
            publishers: opts.publishers,
            store: opts.store.clone(),
            submit,
            published: RwLock::new(None),
            published_size,
            tiles: TileCache {
                store: opts.store.clone(),
                map: Mutex::new(HashMap::new()),
            },
            halt: Arc::new(RwLock::new(halted.clone())),
            unheard: RwLock::new(if opts.witness_client.is_some() {
                opts.witnesses
                    .iter()
                    .map(|w| w.verifier.name().to_string())
                    .collect()
            } else {
                Vec::new()
            }),
        });
        if let Some(reason) = halted {
            // Halted before: sign nothing, accept nothing, ask nobody, until a person acts.
            tracing::error!("{reason} (still halted from before the restart)");
            return Ok(Log {
                inner,
                threads: Arc::new(Mutex::new(Vec::new())),
            });
        }
        let first = sequencer.sign_checkpoint(&signer)?;
        let (pub_tx, pub_rx) = std_mpsc::channel::<Signed>();
        let first_cp = Checkpoint::new(&inner.origin, sequencer.size(), sequencer.root())
            .map_err(|e| LogError::Proof(error_chain(&e)))?;
        let _ = pub_tx.send(Signed {
            note: first,
            checkpoint: first_cp,
        });
        let publisher = {
            let inner = inner.clone();
            let witnesses = opts.witnesses;
            let client = opts.witness_client;
            std::thread::Builder::new()
                .name("airlock-log publisher".into())
                .spawn(move || publisher_loop(inner, witnesses, client, pub_rx))
                .map_err(LogError::Thread)?
        };
        let seq_thread = {
            let max_batch = opts.max_batch.max(1);
            let halt = inner.halt.clone();
            std::thread::Builder::new()
                .name("airlock-log sequencer".into())
                .spawn(move || sequencer_loop(sequencer, signer, rx, pub_tx, max_batch, halt))
                .map_err(LogError::Thread)?
        };
        let log = Log {
            inner,
            threads: Arc::new(Mutex::new(vec![seq_thread, publisher])),
        };
        // Serve nothing before the recovered tree's checkpoint is published or the witnesses'
        // answers halted the log (the publisher gives up on unresponsive witnesses after their
        // timeout).
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        while log.published().is_none_or(|p| p.size < recovered_size) && log.halted().is_none() {
            if std::time::Instant::now() > deadline {
                log.shutdown();
                return Err(LogError::Stopped);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(log)
    }

    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// The log's checkpoint verifier key.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.inner.log_verifier
    }

    pub fn store(&self) -> &Arc<dyn TileStore> {
        &self.inner.store
    }

    /// Why the log halted, if it did (see the module docs).
    pub fn halted(&self) -> Option<String> {
        halt_reason(&self.inner.halt)
    }

    /// Why the log does not accept entries yet: the witnesses that have not answered since
    /// start-up, if any.
    pub fn waiting_for_witnesses(&self) -> Option<String> {
        let unheard = match self.inner.unheard.read() {
            Ok(u) => u.clone(),
            Err(_) => vec!["(unknown)".into()],
        };
        (!unheard.is_empty()).then(|| {
            format!(
                "log {} is waiting for witness {} to answer (start-up check: a witness that \
holds a larger tree of this log must be heard before the log appends); retry shortly",
                self.inner.origin,
                unheard.join(", ")
            )
        })
    }

    /// Appends an already authenticated entry; resolves with its index once it is durable. An
    /// entry the log already holds resolves with its existing index, marked as such.
    pub async fn append(&self, entry: Vec<u8>) -> Result<Placed, LogError> {
        if let Some(reason) = self.halted() {
            return Err(LogError::Halted(reason));
        }
        if let Some(reason) = self.waiting_for_witnesses() {
            return Err(LogError::NotReady(reason));
        }
        if entry.len() > MAX_ENTRY_SIZE {
            return Err(LogError::EntryTooLarge {
                len: entry.len(),
                max: MAX_ENTRY_SIZE,
            });
        }
        let (tx, rx) = oneshot::channel();
        self.inner
            .submit
            .send(Msg::Entry(entry, tx))
            .await
            .map_err(|_| LogError::Stopped)?;
        match rx.await {
            Ok(Ok(placed)) => Ok(placed),
            Ok(Err(e)) if self.halted().is_some() => Err(LogError::Halted(e)),
            Ok(Err(e)) => {
                tracing::error!("append failed: {e}");
                Err(LogError::Stopped)
            }
            Err(_) => Err(LogError::Stopped),
        }
    }

    /// The published checkpoint, if any yet.
    pub fn published(&self) -> Option<Published> {
        self.inner.published.read().ok().and_then(|p| p.clone())
    }

    /// Waits (up to `timeout`) until a checkpoint of at least `size` entries is published.
    pub async fn wait_published(&self, size: u64, timeout: Duration) -> Option<Published> {
        let mut rx = self.inner.published_size.subscribe();
        let ok = tokio::time::timeout(timeout, rx.wait_for(|s| s.is_some_and(|s| s >= size)))
            .await
            .is_ok_and(|r| r.is_ok());
        if ok { self.published() } else { None }
    }

    /// A tlog-proof bundle for entry `index` against the published checkpoint.
    pub fn proof_bundle(&self, index: u64) -> Result<Vec<u8>, LogError> {
        let p = self
            .published()
            .ok_or(LogError::NotYetPublished { index, size: 0 })?;
        if index >= p.size {
            return Err(LogError::NotYetPublished {
                index,
                size: p.size,
            });
        }
        let reader = TileHashReader::new(p.size, &self.inner.tiles);
        let bundle = ProofBundle::build(&reader, index, &p.note, None)
            .map_err(|e| LogError::Proof(error_chain(&e)))?;
        Ok(bundle.to_bytes())
    }

    /// The HTTP API.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/add", post(add_handler))
            .route("/checkpoint", get(checkpoint_handler))
            .route("/tile/{*path}", get(tile_handler))
            .route("/proof/{index}", get(proof_handler))
            // `/add` authenticates from the header, then reads at most OVERSIZE_READ_LIMIT
            // itself; other routes take no body.
            .layer(DefaultBodyLimit::max(OVERSIZE_READ_LIMIT))
            .with_state(self.clone())
    }

    /// Stops accepting entries, finishes the batch in progress and joins the threads.
    pub fn shutdown(&self) {
        let _ = self.inner.submit.try_send(Msg::Stop);
        let threads: Vec<_> = self
            .threads
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        for t in threads {
            let _ = t.join();
        }
    }
}

fn sequencer_loop(
    mut seq: Sequencer,
    signer: LogSigner,
    mut rx: mpsc::Receiver<Msg>,
    publish: std_mpsc::Sender<Signed>,
    max_batch: usize,
    halt: HaltSlot,
) {
    let mut failed = false;
    loop {
        let Some(first) = rx.blocking_recv() else {
            return;
        };
        let mut batch: Vec<(Vec<u8>, Ack)> = Vec::new();
        let mut stop = false;
        match first {
            Msg::Entry(e, a) => batch.push((e, a)),
            Msg::Stop => stop = true,
        }
        while !stop && batch.len() < max_batch {
            match rx.try_recv() {
                Ok(Msg::Entry(e, a)) => batch.push((e, a)),
                Ok(Msg::Stop) => stop = true,
                Err(_) => break,
            }
        }
        // Checked before every batch: once halted, nothing more is appended or signed.
        let halted = halt_reason(&halt);
        if let Some(reason) = halted {
            for (_, ack) in batch {
                let _ = ack.send(Err(reason.clone()));
            }
        } else if failed {
            for (_, ack) in batch {
                let _ = ack.send(Err("the log's storage failed; restart it".into()));
            }
        } else if !batch.is_empty() {
            let entries: Vec<&[u8]> = batch.iter().map(|(e, _)| e.as_slice()).collect();
            let before = seq.size();
            let result = seq.add(&entries).and_then(|(c, placed)| {
                // A batch of duplicates only changes nothing: nothing new to sign.
                let note = if c.size > before {
                    Some(seq.sign_checkpoint(&signer)?)
                } else {
                    None
                };
                Ok((c, placed, note))
            });
            match result {
                Ok((c, placed, note)) => {
                    if let Some(note) = note
                        && let Ok(checkpoint) = Checkpoint::new(signer.origin(), c.size, c.root)
                    {
                        let _ = publish.send(Signed { note, checkpoint });
                    }
                    for ((_, ack), p) in batch.into_iter().zip(placed) {
                        let _ = ack.send(Ok(p));
                    }
                }
                Err(e) => {
                    tracing::error!(
                        "appending a batch of {} entries failed: {}",
                        batch.len(),
                        error_chain(&e)
                    );
                    for (_, ack) in batch {
                        let _ = ack.send(Err(format!(
                            "the log could not store the entry: {}",
                            error_chain(&e)
                        )));
                    }
                    // Reload from storage: the failed batch is discarded as after a crash.
                    match Sequencer::open(seq.store().clone()) {
                        Ok(s) => seq = s,
                        Err(e) => {
                            tracing::error!(
                                "the log cannot recover its storage: {}",
                                error_chain(&e)
                            );
                            failed = true;
                        }
                    }
                }
            }
        }
        if stop {
            return;
        }
    }
}

fn publisher_loop(
    inner: Arc<Inner>,
    witnesses: Vec<WitnessEndpoint>,
    client: Option<Arc<Fetcher>>,
    rx: std_mpsc::Receiver<Signed>,
) {
    let known: Vec<Mutex<u64>> = witnesses.iter().map(|_| Mutex::new(0)).collect();
    let mut last: Option<Signed> = None;
    loop {
        // Halted: ask nobody, publish nothing.
        if halt_reason(&inner.halt).is_some() {
            if rx.recv().is_err() {
                return;
            }
            continue;
        }
        // While a witness has not answered since start-up no entry comes in, so nothing new
        // arrives: ask again with the last checkpoint every few seconds.
        let waiting = inner.unheard.read().map(|u| !u.is_empty()).unwrap_or(true);
        let received = if waiting && last.is_some() {
            match rx.recv_timeout(Duration::from_secs(2)) {
                Ok(s) => Some(s),
                Err(std_mpsc::RecvTimeoutError::Timeout) => None,
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(s) => Some(s),
                Err(_) => return,
            }
        };
        let mut next = match (received, last.take()) {
            (Some(s), _) => s,
            (None, Some(s)) => s,
            (None, None) => continue,
        };
        // Only the newest checkpoint matters.
        while let Ok(newer) = rx.try_recv() {
            next = newer;
        }
        last = Some(Signed {
            note: next.note.clone(),
            checkpoint: next.checkpoint.clone(),
        });
        let mut note_bytes = next.note.clone();
        let mut cosigned_by = Vec::new();
        if let (false, Some(client)) = (witnesses.is_empty(), client.as_ref()) {
            let results: Vec<_> = std::thread::scope(|s| {
                let handles: Vec<_> = witnesses
                    .iter()
                    .zip(&known)
                    .map(|(w, k)| {
                        let next = &next;
                        let inner = &inner;
                        s.spawn(move || {
                            let mut size = k.lock().map(|g| *g).unwrap_or(0);
                            let r = request_cosignature(
                                client,
                                w,
                                &next.checkpoint,
                                &next.note,
                                &mut size,
                                &inner.tiles,
                            );
                            if let Ok(mut g) = k.lock() {
                                *g = size;
                            }
                            r
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join()).collect()
            });
            let fork = results.iter().find_map(|r| match r {
                Ok(Err(e)) => e.fork_evidence().map(|_| e),
                _ => None,
            });
            // Any answer (a cosignature, a refusal, a 409 with its size) is the witness's view;
            // only a witness that could not be reached stays unheard.
            if let Ok(mut unheard) = inner.unheard.write() {
                for (w, r) in witnesses.iter().zip(&results) {
                    if !matches!(r, Ok(Err(WitnessCallError::Http { .. })) | Err(_)) {
                        unheard.retain(|n| n != w.verifier.name());
                    }
                }
            }
            if let Some(e) = fork {
                halt_log(&inner, e);
                continue;
            }
            if let Ok(mut note) = Note::parse(&next.note) {
                for (w, r) in witnesses.iter().zip(results) {
                    match r {
                        Ok(Ok(cosigs)) => {
                            for c in cosigs {
                                let _ = note.add_signature(c.to_signature());
                            }
                            cosigned_by.push(w.verifier.name().to_string());
                        }
                        Ok(Err(e)) => tracing::warn!("{}", error_chain(&e)),
                        Err(_) => tracing::error!("witness call thread panicked"),
                    }
                }
                note_bytes = note.to_bytes();
            }
        }
        // A halt (by this thread, or read at start) stops publishing for good.
        if halt_reason(&inner.halt).is_some() {
            continue;
        }
        if let Err(e) = inner.store.write_checkpoint(&note_bytes) {
            tracing::error!("publishing the checkpoint failed: {e}");
            continue;
        }
        let p = Published {
            note: Arc::new(note_bytes),
            size: next.checkpoint.size,
            root: next.checkpoint.root_hash,
            cosigned_by,
        };
        if let Ok(mut slot) = inner.published.write() {
            *slot = Some(p);
        }
        inner
            .published_size
            .send_replace(Some(next.checkpoint.size));
    }
}

/// Halts the log on a witness's evidence of another tree: persists the reason first (a
/// restart stays halted even if this process dies now), then stops the sequencer and the
/// publisher, and says so in one line.
fn halt_log(inner: &Inner, evidence: &WitnessCallError) {
    let reason = format!(
        "log {} halted: {}; going on would fork the log, so it accepts no entries and publishes nothing until an operator restores the newest state or runs `airlock log recover` (see the airlock-log README, \"Halted log\")",
        inner.origin, evidence
    );
    if let Err(e) = inner.store.write_halt(&reason) {
        tracing::error!(
            "recording the halt failed ({}); halted until this process ends",
            error_chain(&e)
        );
    }
    if let Ok(mut h) = inner.halt.write() {
        *h = Some(reason.clone());
    }
    tracing::error!("{reason}");
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut m = msg.into();
    m = m.replace('\n', " ");
    m.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        m,
    )
        .into_response()
}

fn auth_refusal(e: AuthError) -> Response {
    let status = match e {
        AuthError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        AuthError::Malformed(_) | AuthError::Empty => StatusCode::BAD_REQUEST,
        AuthError::Missing | AuthError::UnknownKey { .. } | AuthError::BadSignature { .. } => {
            StatusCode::UNAUTHORIZED
        }
    };
    text(status, e.to_string())
}

async fn add_handler(State(log): State<Log>, headers: HeaderMap, body: Body) -> Response {
    if let Some(reason) = log.halted().or_else(|| log.waiting_for_witnesses()) {
        return text(StatusCode::SERVICE_UNAVAILABLE, reason);
    }
    let sig = headers
        .get(SIGNATURE_HEADER)
        .map(|v| v.to_str().map_err(|_| ()));
    let sig = match sig {
        Some(Err(())) => {
            return text(
                StatusCode::BAD_REQUEST,
                "malformed Airlock-Signature header: not visible ASCII",
            );
        }
        Some(Ok(s)) => Some(s),
        None => None,
    };
    // The header names the key: a client that is not a publisher is refused before one byte
    // of its body is read or buffered.
    let claim = match check_signature_header(&log.inner.publishers, sig) {
        Ok(c) => c,
        Err(e) => return auth_refusal(e),
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(len) = announced.filter(|len| *len > OVERSIZE_READ_LIMIT) {
        return auth_refusal(AuthError::TooLarge {
            len,
            max: MAX_ENTRY_SIZE,
        });
    }
    // A publisher's body is read up to a cap above the largest entry, so that a publisher's
    // upload that is too large still gets its one-line 413 rather than a reset connection.
    let body = match axum::body::to_bytes(body, OVERSIZE_READ_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "entry is above the limit of {MAX_ENTRY_SIZE} bytes (or the upload failed)"
                ),
            );
        }
    };
    if let Err(e) = verify_entry(&claim, &log.inner.origin, &body) {
        return auth_refusal(e);
    }
    match log.append(body.to_vec()).await {
        Ok(Placed {
            index,
            already_logged: false,
        }) => text(StatusCode::OK, index.to_string()),
        // The first line stays the index, so a client that reads only that line still works.
        Ok(Placed {
            index,
            already_logged: true,
        }) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (
                    header::HeaderName::from_static("airlock-already-logged"),
                    "true",
                ),
            ],
            format!("{index}\nalready logged\n"),
        )
            .into_response(),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn checkpoint_handler(State(log): State<Log>) -> Response {
    match log.published() {
        Some(p) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache, max-age=0"),
            ],
            p.note.as_ref().clone(),
        )
            .into_response(),
        None => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no checkpoint published yet",
        ),
    }
}

async fn tile_handler(State(log): State<Log>, Path(path): Path<String>) -> Response {
    let full_path = format!("tile/{path}");
    let (id, is_bundle) = match TileId::parse_path(&full_path) {
        Ok(parsed) => parsed,
        Err(e) => return text(StatusCode::NOT_FOUND, e.to_string()),
    };
    // Only serve what a published checkpoint makes available (nothing an uncommitted batch
    // might have left behind).
    let size = log.published().map(|p| p.size).unwrap_or(0);
    let needed = TileId::in_tree(id.level, id.index, size);
    if needed.is_none_or(|n| id.width > n.width) {
        return text(
            StatusCode::NOT_FOUND,
            format!("{full_path} is not in the published tree"),
        );
    }
    let store = log.inner.store.clone();
    let read = tokio::task::spawn_blocking(move || {
        if is_bundle {
            store.read_entry_bundle(&id)
        } else {
            store.read_hash_tile(&id)
        }
    })
    .await;
    match read {
        Ok(Ok(Some(data))) => {
            if !is_bundle && parse_hash_tile(&id, &data).is_err() {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{full_path} is corrupt"),
                );
            }
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/octet-stream"),
                    (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                ],
                data,
            )
                .into_response()
        }
        Ok(Ok(None)) => text(StatusCode::NOT_FOUND, format!("{full_path} not found")),
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, error_chain(&e)),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "tile read task failed"),
    }
}

async fn proof_handler(State(log): State<Log>, Path(index): Path<String>) -> Response {
    let Some(index) = index
        .parse::<u64>()
        .ok()
        .filter(|_| index == "0" || !index.starts_with('0'))
    else {
        return text(StatusCode::BAD_REQUEST, "index is not a decimal number");
    };
    let l = log.clone();
    match tokio::task::spawn_blocking(move || l.proof_bundle(index)).await {
        Ok(Ok(bytes)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            bytes,
        )
            .into_response(),
        Ok(Err(e @ LogError::NotYetPublished { .. })) => text(StatusCode::NOT_FOUND, e.to_string()),
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, error_chain(&e)),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "proof task failed"),
    }
}
