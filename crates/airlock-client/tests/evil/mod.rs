//! A misbehaving mirror for the attack and regression tests.
//!
//! [`serve`] starts a real HTTPS server on 127.0.0.1 (test CA made at test time, via
//! `common::HttpsRepo`) that serves a repository directory, with two extras the attacker
//! controls while the test runs:
//! - per-path [`Misbehaviour`] rules ([`Evil::set`]): other bytes, an endless body, a body
//!   dripped one byte at a time, a stalled head or body, an HTTP status, a redirect;
//! - a log of every path requested ([`Evil::requests`]), so a test can show what the client did
//!   *not* fetch.
//!
//! Files on disk can also be rewritten between client runs (the static server reads them per
//! request), which is how stale, replayed or foreign files are served.
//!
//! The helpers below change a `TestRepo` the way an attacker or a particular publisher would
//! (version-only listings, plain file names, hash bins) and snapshot what a client holds on disk.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_client::{UpdateError, store::encode_role_name};
use airlock_core::crypto::{Ed25519Private, PrivateKey, Signer};
use airlock_core::tuf::{Delegations, Metadata, SuccinctRoles, Targets};
use airlock_fetch::{Fetcher, FetcherConfig, MinRate, Trust};
use airlock_serve::{ServerHandle, TestCa, static_dir_router};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::common::{Client, HttpsRepo, TestRepo};

/// What the mirror does instead of serving the file at a path.
#[derive(Clone, Debug)]
pub enum Misbehaviour {
    /// Answer 200 with these bytes.
    Bytes(Vec<u8>),
    /// Answer 200 with a body that never ends (no `Content-Length`).
    Endless,
    /// Answer 200 at once, then send `bytes` one byte per `interval` (endless when `bytes` is
    /// `None`).
    Drip {
        bytes: Option<Vec<u8>>,
        interval: Duration,
    },
    /// Answer 200 (chunked), then send nothing.
    StallBody,
    /// Never answer.
    StallHead,
    /// Answer with this HTTP status and no body.
    Status(u16),
    /// Answer 302 to this URL.
    Redirect(String),
    /// Serve the file (Range requests honoured), but break the connection after the next
    /// number of bytes from the cut plan ([`Evil::plan_cuts`]); serve it whole once the plan is
    /// used up.
    Cut,
    /// Serve the whole file, as a server that does not support Range requests does.
    IgnoreRange,
    /// Answer a Range request with 206 and a range that starts at byte 0 whatever was asked.
    WrongRange,
}

#[derive(Default)]
struct State {
    rules: BTreeMap<String, Misbehaviour>,
    log: Vec<String>,
    /// The `Range` header of each request (`None`: none), in order.
    ranges: Vec<(String, Option<String>)>,
    cuts: std::collections::VecDeque<u64>,
}

/// The attacker's controls of a running mirror. Clones share state.
#[derive(Clone, Default)]
pub struct Evil {
    state: Arc<Mutex<State>>,
}

impl Evil {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Misbehave on `path` (e.g. `/metadata/timestamp.json`) from now on.
    pub fn set(&self, path: &str, m: Misbehaviour) {
        self.lock().rules.insert(path.to_string(), m);
    }

    /// Serve `path` honestly again.
    pub fn clear(&self, path: &str) {
        self.lock().rules.remove(path);
    }

    /// Every path requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    /// How many times `path` was requested.
    pub fn count(&self, path: &str) -> usize {
        self.lock().log.iter().filter(|p| *p == path).count()
    }

    /// The `Range` header of each request for `path`, in order.
    pub fn ranges(&self, path: &str) -> Vec<Option<String>> {
        self.lock()
            .ranges
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Where [`Misbehaviour::Cut`] breaks the next responses: after this many body bytes each.
    pub fn plan_cuts(&self, cuts: impl IntoIterator<Item = u64>) {
        self.lock().cuts = cuts.into_iter().collect();
    }

    fn next_cut(&self) -> Option<u64> {
        self.lock().cuts.pop_front()
    }

    /// Forget the requests seen so far.
    pub fn reset_log(&self) {
        self.lock().log.clear();
    }

    fn rule_for(&self, path: &str, range: Option<String>) -> Option<Misbehaviour> {
        let mut state = self.lock();
        state.log.push(path.to_string());
        state.ranges.push((path.to_string(), range));
        state.rules.get(path).cloned()
    }
}

fn drip(bytes: Option<Vec<u8>>, interval: Duration) -> Body {
    let stream = futures_util::stream::unfold(0usize, move |i| {
        let next = match &bytes {
            None => Some(Bytes::from_static(b"x")),
            Some(b) => b.get(i).map(|byte| Bytes::copy_from_slice(&[*byte])),
        };
        async move {
            let byte = next?;
            tokio::time::sleep(interval).await;
            Some((Ok::<_, Infallible>(byte), i + 1))
        }
    });
    Body::from_stream(stream)
}

fn respond(m: Misbehaviour) -> Response {
    match m {
        Misbehaviour::Bytes(b) => b.into_response(),
        Misbehaviour::Endless => {
            let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
            Body::from_stream(futures_util::stream::repeat_with(move || {
                Ok::<_, Infallible>(chunk.clone())
            }))
            .into_response()
        }
        Misbehaviour::Drip { bytes, interval } => drip(bytes, interval).into_response(),
        Misbehaviour::StallBody => {
            Body::from_stream(futures_util::stream::pending::<Result<Bytes, Infallible>>())
                .into_response()
        }
        // Handled before a response is built; never reached.
        Misbehaviour::StallHead
        | Misbehaviour::Cut
        | Misbehaviour::IgnoreRange
        | Misbehaviour::WrongRange => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Misbehaviour::Status(code) => StatusCode::from_u16(code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
        Misbehaviour::Redirect(to) => {
            (StatusCode::FOUND, [(header::LOCATION, to)], Body::empty()).into_response()
        }
    }
}

/// `response` with its body broken off after `after` bytes (the connection is dropped).
fn cut_after(response: Response, after: u64) -> Response {
    use futures_util::StreamExt;
    let (parts, body) = response.into_parts();
    let stream = body.into_data_stream();
    let cut = futures_util::stream::unfold(
        (stream, after, false),
        |(mut stream, left, done)| async move {
            if done {
                return None;
            }
            if left == 0 {
                // hyper buffers up to ~400 KiB before writing and drops its buffer when the
                // body fails: pausing first makes it flush, so the client gets every byte
                // counted before the cut (without this a small cut sends not even the head).
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let err = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut");
                return Some((Err(err), (stream, 0, true)));
            }
            match stream.next().await {
                None => None,
                Some(Err(e)) => Some((Err(std::io::Error::other(e)), (stream, 0, true))),
                Some(Ok(chunk)) => {
                    let take = (chunk.len() as u64).min(left) as usize;
                    Some((Ok(chunk.slice(..take)), (stream, left - take as u64, false)))
                }
            }
        },
    );
    Response::from_parts(parts, Body::from_stream(cut))
}

/// Serve `dir` over HTTPS with the attacker's controls in front of it.
pub fn serve(dir: &Path) -> (HttpsRepo, Evil) {
    let evil = Evil::default();
    let hook = evil.clone();
    let app = static_dir_router(dir.to_path_buf()).layer(middleware::from_fn(
        move |req: Request, next: Next| {
            let hook = hook.clone();
            async move {
                let range = req
                    .headers()
                    .get(header::RANGE)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from);
                match hook.rule_for(req.uri().path(), range) {
                    None => next.run(req).await,
                    Some(Misbehaviour::StallHead) => {
                        std::future::pending::<()>().await;
                        StatusCode::INTERNAL_SERVER_ERROR.into_response()
                    }
                    Some(Misbehaviour::Cut) => match hook.next_cut() {
                        Some(after) => cut_after(next.run(req).await, after),
                        None => next.run(req).await,
                    },
                    Some(Misbehaviour::IgnoreRange) => {
                        let mut req = req;
                        req.headers_mut().remove(header::RANGE);
                        next.run(req).await
                    }
                    Some(Misbehaviour::WrongRange) => {
                        let mut req = req;
                        let asked = req.headers_mut().remove(header::RANGE);
                        let whole = next.run(req).await;
                        if asked.is_none() {
                            return whole;
                        }
                        let len = whole
                            .headers()
                            .get(header::CONTENT_LENGTH)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap_or(1);
                        let (mut parts, body) = whole.into_parts();
                        parts.status = StatusCode::PARTIAL_CONTENT;
                        parts.headers.insert(
                            header::CONTENT_RANGE,
                            format!("bytes 0-{}/{len}", len.saturating_sub(1))
                                .parse()
                                .expect("header value"),
                        );
                        Response::from_parts(parts, body)
                    }
                    Some(m) => respond(m),
                }
            }
        },
    ));
    let ca = TestCa::new().expect("test CA");
    let identity = ca
        .issue_server_cert(&["127.0.0.1", "localhost"])
        .expect("server cert");
    let server = ServerHandle::https(app, &identity).expect("start HTTPS server");
    (HttpsRepo::from_parts(ca, server), evil)
}

/// A transport for slow-retrieval tests: the given per-read timeout, a minimum rate of 1000
/// bytes/s after a grace period of 200 ms, no retries. Drip-fed bodies are tested with a long
/// read timeout (so only the minimum rate can fire), stalled ones with a short one (so only the
/// timeout can); the tests assert which defence fired, never how long it took.
pub fn impatient_fetcher(https: &HttpsRepo, read_timeout: Duration) -> Arc<Fetcher> {
    Arc::new(
        Fetcher::new(FetcherConfig {
            trust: Trust::CaBundlePem(https.ca.cert_pem().as_bytes().to_vec()),
            connect_timeout: Duration::from_secs(10),
            read_timeout,
            min_rate: Some(MinRate {
                bytes_per_sec: 1000,
                grace: Duration::from_millis(200),
            }),
            retries: 0,
            ..FetcherConfig::default()
        })
        .expect("fetcher"),
    )
}

/// Everything a client keeps on disk: metadata directory and target directory, by file name.
#[derive(PartialEq, Eq)]
pub struct Disk {
    pub metadata: BTreeMap<String, Vec<u8>>,
    pub targets: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for Disk {
    /// File names with their length and the start of their SHA-256 (contents are too long to
    /// read in a failed assertion).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use sha2::{Digest, Sha256};
        let show = |files: &BTreeMap<String, Vec<u8>>| -> Vec<String> {
            files
                .iter()
                .map(|(name, bytes)| {
                    let digest = hex::encode(Sha256::digest(bytes));
                    format!("{name} ({} bytes, sha256 {})", bytes.len(), &digest[..12])
                })
                .collect()
        };
        f.debug_struct("Disk")
            .field("metadata", &show(&self.metadata))
            .field("targets", &show(&self.targets))
            .finish()
    }
}

fn read_dir_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| {
            let e = e.expect("dir entry");
            (
                e.file_name().into_string().expect("utf-8 name"),
                std::fs::read(e.path()).expect("read file"),
            )
        })
        .collect()
}

/// What `client` holds on disk now.
pub fn disk(client: &Client) -> Disk {
    Disk {
        metadata: read_dir_files(&client.metadata_dir()),
        targets: read_dir_files(&client.target_dir()),
    }
}

/// The names of the metadata files `client` stores.
pub fn stored_names(client: &Client) -> Vec<String> {
    client.stored().into_keys().collect()
}

/// Assert the error's message names every one of `words` (role, check, URL, ...).
#[track_caller]
pub fn assert_says(err: &UpdateError, words: &[&str]) {
    let msg = airlock_core::error_chain(err);
    for w in words {
        assert!(msg.contains(w), "error should mention {w:?}: {msg}");
    }
}

/// A copy of an Ed25519 key (keys are not `Clone`; tests share one key among hash bins).
pub fn copy_key(key: &PrivateKey) -> PrivateKey {
    match key {
        PrivateKey::Ed25519(k) => PrivateKey::Ed25519(Ed25519Private::from_seed(&k.seed())),
        _ => panic!("copy_key handles Ed25519 keys only"),
    }
}

/// Drop `length` and `hashes` from every entry of the snapshot (TUF makes them optional: the
/// client then has only the version to check) and re-sign snapshot and timestamp in place.
pub fn version_only_snapshot(repo: &mut TestRepo) {
    for meta in repo.snapshot.signed.meta.values_mut() {
        meta.length = None;
        meta.hashes = None;
    }
    repo.write_snapshot_and_timestamp();
}

/// Drop `length` and `hashes` of `snapshot.json` from the timestamp and re-sign it in place.
pub fn version_only_timestamp(repo: &mut TestRepo) {
    for meta in repo.timestamp.signed.meta.values_mut() {
        meta.length = None;
        meta.hashes = None;
    }
    repo.write_timestamp();
}

/// Sign `md` with `keys` and return its canonical bytes (a forged or hand-made file).
pub fn signed_bytes<T: airlock_core::tuf::Role>(md: &Metadata<T>, keys: &[&PrivateKey]) -> Vec<u8> {
    let mut md = md.clone();
    md.signatures.clear();
    for key in keys {
        md.sign(*key, airlock_core::tuf::SignMode::Append)
            .expect("sign");
    }
    md.to_canonical_bytes().expect("canonical bytes")
}

/// Switch the repository to `consistent_snapshot: false` (root v1 is rewritten, so call this
/// before a client is initialised).
pub fn make_non_consistent(repo: &mut TestRepo) {
    repo.root.signed.consistent_snapshot = Some(false);
    repo.write_root();
}

/// Lay out the current repository version the way a non-consistent-snapshot repository is
/// served: `metadata/ROLE.json` for snapshot and every targets role (root keeps its versioned
/// names, timestamp is never versioned), `targets/dir/name` for target files. The versioned
/// copies are removed, so a client asking for them gets 404.
pub fn publish_plain_names(repo: &TestRepo) {
    let meta_dir = repo.metadata_dir();
    let move_file = |from: &Path, to: &Path| {
        std::fs::rename(from, to)
            .unwrap_or_else(|e| panic!("rename {} to {}: {e}", from.display(), to.display()))
    };
    for (file, meta) in &repo.snapshot.signed.meta {
        let role = file.trim_end_matches(".json");
        let name = format!("{}.json", encode_role_name(role));
        let from = meta_dir.join(format!("{}.{name}", meta.version));
        if from.exists() {
            move_file(&from, &meta_dir.join(&name));
        }
    }
    let version = repo.snapshot.signed.version;
    let from = meta_dir.join(format!("{version}.snapshot.json"));
    if from.exists() {
        move_file(&from, &meta_dir.join("snapshot.json"));
    }
    let all_targets = std::iter::once(&repo.targets).chain(repo.delegated.values());
    for md in all_targets {
        for (path, file) in &md.signed.targets {
            let (dir, name) = match path.rsplit_once('/') {
                Some((d, n)) => (format!("{d}/"), n.to_string()),
                None => (String::new(), path.clone()),
            };
            let plain = repo.targets_dir().join(path);
            for hash in file.hashes.values() {
                let hashed = repo.targets_dir().join(format!("{dir}{hash}.{name}"));
                if hashed.exists() {
                    move_file(&hashed, &plain);
                }
            }
        }
    }
}

/// Delegate from `delegator` to `2^bits` TAP 15 succinct hash bins named `{prefix}-{index}`,
/// all signed by one new key. The bins are empty metadata at version 1; call
/// `repo.add_target(&bin, ...)` with `SuccinctRoles::bin_for_target` to fill them, then
/// [`write_roles`] (or `repo.publish()` for the bins that got targets).
pub fn delegate_bins(
    repo: &mut TestRepo,
    delegator: &str,
    bits: u32,
    prefix: &str,
) -> SuccinctRoles {
    let key = crate::common::ed25519();
    let keyid = key.public_key().key_id();
    let bins = SuccinctRoles::new(vec![keyid.clone()], 1, bits, prefix);
    let keys = BTreeMap::from([(keyid, key.public_key().clone())]);
    let parent = if delegator == "targets" {
        &mut repo.targets
    } else {
        repo.delegated.get_mut(delegator).expect("delegator")
    };
    parent.signed.delegations = Some(Delegations::with_succinct_roles(keys, bins.clone()));
    for name in bins.bin_names() {
        repo.delegated
            .insert(name.clone(), Metadata::new(Targets::new(1, repo.expires)));
        repo.delegated_keys.insert(name, vec![copy_key(&key)]);
    }
    bins
}

/// Sign and write each of `roles` at its current version (recording it in the snapshot), then
/// a new snapshot and timestamp version.
pub fn write_roles<'a>(repo: &mut TestRepo, roles: impl IntoIterator<Item = &'a str>) {
    for role in roles {
        repo.write_targets_role(role);
    }
    repo.snapshot.signed.version += 1;
    repo.timestamp.signed.version += 1;
    repo.write_snapshot_and_timestamp();
}
