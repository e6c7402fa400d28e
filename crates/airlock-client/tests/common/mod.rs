//! Test support for end-to-end client tests, meant to be reused by the attack tests.
//!
//! - [`TestRepo`]: a TUF repository built with airlock-core's metadata model and Ed25519 keys,
//!   written as a consistent-snapshot tree (`metadata/N.role.json`, `metadata/timestamp.json`,
//!   `targets/dir/HASH.name`). Every role's metadata and keys are public fields, so a test can
//!   tamper with anything, re-sign with [`TestRepo::sign`], write raw bytes with
//!   [`TestRepo::write_raw`], or call [`TestRepo::publish`] to bump versions the normal way.
//! - [`HttpsRepo`]: a test CA plus an HTTPS server on 127.0.0.1 serving a directory, optionally
//!   with extra routes (misbehaving endpoints) that take precedence over the files.
//! - [`client`]: an [`Updater`] for that server with a fresh metadata directory.
//! - [`python`]: the interpreter for interop tests (AIRLOCK_PYTHON, else the repo's .venv).
#![allow(dead_code)]

pub mod tlog;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_client::{Limits, Updater, UpdaterConfig};
use airlock_core::crypto::{KeyScheme, PrivateKey, Signer};
use airlock_core::tuf::{
    DelegatedRole, Delegations, MetaFile, Metadata, Role, Root, SignMode, Snapshot, TargetFile,
    Targets, Timestamp,
};
use airlock_fetch::{Fetcher, FetcherConfig, Trust};
use airlock_serve::{ServerHandle, TestCa, static_dir_router};
use axum::Router;
use chrono::{DateTime, Duration as ChronoDuration, SubsecRound, Utc};
use tempfile::TempDir;

pub fn ed25519() -> PrivateKey {
    PrivateKey::generate(KeyScheme::Ed25519).expect("generate ed25519 key")
}

/// A repository on disk, consistent snapshots on.
pub struct TestRepo {
    pub dir: TempDir,
    pub expires: DateTime<Utc>,
    pub root: Metadata<Root>,
    pub timestamp: Metadata<Timestamp>,
    pub snapshot: Metadata<Snapshot>,
    pub targets: Metadata<Targets>,
    /// Delegated roles by name.
    pub delegated: BTreeMap<String, Metadata<Targets>>,
    pub root_keys: Vec<PrivateKey>,
    pub timestamp_keys: Vec<PrivateKey>,
    pub snapshot_keys: Vec<PrivateKey>,
    pub targets_keys: Vec<PrivateKey>,
    /// Keys of delegated roles by role name.
    pub delegated_keys: BTreeMap<String, Vec<PrivateKey>>,
    /// Bytes of every root version published, index 0 = version 1.
    pub root_history: Vec<Vec<u8>>,
    /// Targets roles changed since the last publish.
    dirty: BTreeSet<String>,
    /// Consistent snapshots: version-prefixed metadata and hash-prefixed target files.
    pub consistent: bool,
}

impl TestRepo {
    /// A repository with one key per top-level role, thresholds 1, empty targets, published as
    /// version 1 of every role.
    pub fn new() -> Self {
        Self::with_consistent_snapshot(true)
    }

    /// Like [`TestRepo::new`]; with `consistent` false the root says so, snapshot and targets
    /// roles are written as plain `role.json` and target files under their plain paths.
    pub fn with_consistent_snapshot(consistent: bool) -> Self {
        // Whole seconds: python-tuf reads only `YYYY-MM-DDTHH:MM:SSZ`.
        let expires = (Utc::now() + ChronoDuration::days(30)).trunc_subsecs(0);
        let root_keys = vec![ed25519()];
        let timestamp_keys = vec![ed25519()];
        let snapshot_keys = vec![ed25519()];
        let targets_keys = vec![ed25519()];
        let mut root = Root::new(expires);
        root.add_key("root", root_keys[0].public_key().clone());
        root.add_key("timestamp", timestamp_keys[0].public_key().clone());
        root.add_key("snapshot", snapshot_keys[0].public_key().clone());
        root.add_key("targets", targets_keys[0].public_key().clone());
        root.consistent_snapshot = Some(consistent);
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("metadata")).expect("mkdir metadata");
        std::fs::create_dir_all(dir.path().join("targets")).expect("mkdir targets");
        let mut repo = TestRepo {
            dir,
            expires,
            root: Metadata::new(root),
            timestamp: Metadata::new(Timestamp::new(1, expires, MetaFile::new(1))),
            snapshot: Metadata::new(Snapshot::new(1, expires)),
            targets: Metadata::new(Targets::new(1, expires)),
            delegated: BTreeMap::new(),
            root_keys,
            timestamp_keys,
            snapshot_keys,
            targets_keys,
            delegated_keys: BTreeMap::new(),
            root_history: Vec::new(),
            dirty: BTreeSet::new(),
            consistent,
        };
        repo.write_root();
        repo.write_targets_role("targets");
        repo.write_snapshot_and_timestamp();
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn metadata_dir(&self) -> PathBuf {
        self.dir.path().join("metadata")
    }

    pub fn targets_dir(&self) -> PathBuf {
        self.dir.path().join("targets")
    }

    /// The version-1 root: what a client is initialised with.
    pub fn initial_root(&self) -> Vec<u8> {
        self.root_history.first().cloned().expect("root v1")
    }

    /// Sign `md` with `keys`, replacing its signatures.
    pub fn sign<T: Role>(md: &mut Metadata<T>, keys: &[PrivateKey]) {
        md.signatures.clear();
        for key in keys {
            md.sign(key, SignMode::Append).expect("sign");
        }
    }

    /// Write `bytes` at `rel` under the repository directory (e.g. `metadata/timestamp.json`).
    pub fn write_raw(&self, rel: &str, bytes: &[u8]) {
        let path = self.dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, bytes).expect("write");
    }

    pub fn read_raw(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(rel)).expect("read")
    }

    /// Sign and write the current root as `N.root.json`.
    pub fn write_root(&mut self) {
        let keys = std::mem::take(&mut self.root_keys);
        Self::sign(&mut self.root, &keys);
        self.root_keys = keys;
        let bytes = self.root.to_canonical_bytes().expect("root bytes");
        let version = self.root.signed.version;
        self.write_raw(&format!("metadata/{version}.root.json"), &bytes);
        self.root_history.truncate(version as usize - 1);
        self.root_history.push(bytes);
    }

    /// Rotate the root keys: the next root version lists `new_keys` (threshold 1 per key count
    /// given) and is signed by the old keys AND the new ones.
    pub fn rotate_root_keys(&mut self, new_keys: Vec<PrivateKey>, threshold: u64) {
        let old_keys = std::mem::take(&mut self.root_keys);
        let old_ids: Vec<String> = self.root.signed.roles["root"].keyids.clone();
        for id in old_ids {
            self.root.signed.remove_key("root", &id);
        }
        for key in &new_keys {
            self.root.signed.add_key("root", key.public_key().clone());
        }
        if let Some(r) = self.root.signed.roles.get_mut("root") {
            r.threshold = threshold;
        }
        self.root.signed.version += 1;
        self.root.signatures.clear();
        for key in old_keys.iter().chain(new_keys.iter()) {
            self.root.sign(key, SignMode::Append).expect("sign root");
        }
        self.root_keys = new_keys;
        let bytes = self.root.to_canonical_bytes().expect("root bytes");
        let version = self.root.signed.version;
        self.write_raw(&format!("metadata/{version}.root.json"), &bytes);
        self.root_history.push(bytes);
    }

    /// Replace the timestamp key (a new root version is written, signed by the root keys).
    pub fn rotate_timestamp_key(&mut self) {
        let old: Vec<String> = self.root.signed.roles["timestamp"].keyids.clone();
        for id in old {
            self.root.signed.remove_key("timestamp", &id);
        }
        let key = ed25519();
        self.root
            .signed
            .add_key("timestamp", key.public_key().clone());
        self.timestamp_keys = vec![key];
        self.root.signed.version += 1;
        self.write_root();
    }

    fn role_mut(&mut self, role: &str) -> &mut Metadata<Targets> {
        if role == "targets" {
            &mut self.targets
        } else {
            self.delegated
                .get_mut(role)
                .expect("no such delegated role")
        }
    }

    /// List a target in `role` and write its file under `targets/` as `dir/SHA256.name`.
    pub fn add_target(&mut self, role: &str, path: &str, data: &[u8]) -> TargetFile {
        let file = TargetFile::from_bytes(data);
        self.add_target_file(role, path, file.clone(), data);
        file
    }

    /// List `file` for `path` in `role` and serve `data` under every listed hash.
    pub fn add_target_file(&mut self, role: &str, path: &str, file: TargetFile, data: &[u8]) {
        if !self.consistent {
            self.write_raw(&format!("targets/{path}"), data);
        }
        for hash in file.hashes.values().filter(|_| self.consistent) {
            let rel = match path.rsplit_once('/') {
                Some((dir, name)) => format!("targets/{dir}/{hash}.{name}"),
                None => format!("targets/{hash}.{path}"),
            };
            self.write_raw(&rel, data);
        }
        self.role_mut(role)
            .signed
            .targets
            .insert(path.to_string(), file);
        self.dirty.insert(role.to_string());
    }

    /// Delegate `paths` from `delegator` to a new role `name` with one fresh key.
    pub fn delegate(&mut self, delegator: &str, name: &str, paths: &[&str], terminating: bool) {
        let mut role = DelegatedRole::with_paths(
            name,
            Vec::new(),
            1,
            paths.iter().map(|p| p.to_string()).collect(),
        );
        role.terminating = terminating;
        self.delegate_role(delegator, role);
    }

    /// Add `role` (its `keyids` replaced by one fresh key) to `delegator`'s delegations and
    /// create its empty metadata.
    pub fn delegate_role(&mut self, delegator: &str, mut role: DelegatedRole) {
        let key = ed25519();
        let keyid = key.public_key().key_id();
        role.keyids = vec![keyid.clone()];
        let name = role.name.clone();
        let name = name.as_str();
        let parent = self.role_mut(delegator);
        let delegations = parent
            .signed
            .delegations
            .get_or_insert_with(|| Delegations::with_roles(BTreeMap::new(), Vec::new()));
        delegations.keys.insert(keyid, key.public_key().clone());
        delegations.roles.get_or_insert_with(Vec::new).push(role);
        self.dirty.insert(delegator.to_string());
        let expires = self.expires;
        self.delegated
            .insert(name.to_string(), Metadata::new(Targets::new(1, expires)));
        self.delegated_keys.insert(name.to_string(), vec![key]);
        self.dirty.insert(name.to_string());
    }

    /// Sign and write `role` at its current version (`metadata/N.role.json`) and record it in
    /// the snapshot.
    pub fn write_targets_role(&mut self, role: &str) {
        let keys: Vec<PrivateKey> = match role {
            "targets" => std::mem::take(&mut self.targets_keys),
            other => self.delegated_keys.remove(other).expect("keys"),
        };
        let md = self.role_mut(role);
        Self::sign(md, &keys);
        let bytes = md.to_canonical_bytes().expect("targets bytes");
        let version = md.signed.version;
        match role {
            "targets" => self.targets_keys = keys,
            other => {
                self.delegated_keys.insert(other.to_string(), keys);
            }
        }
        let rel = self.metadata_name(role, version);
        self.write_raw(&rel, &bytes);
        self.snapshot.signed.meta.insert(
            format!("{role}.json"),
            MetaFile::with_bytes(version, &bytes),
        );
    }

    /// Sign and write the snapshot at its current version and a timestamp for it.
    pub fn write_snapshot_and_timestamp(&mut self) {
        let keys = std::mem::take(&mut self.snapshot_keys);
        Self::sign(&mut self.snapshot, &keys);
        self.snapshot_keys = keys;
        let bytes = self.snapshot.to_canonical_bytes().expect("snapshot bytes");
        let version = self.snapshot.signed.version;
        let rel = self.metadata_name("snapshot", version);
        self.write_raw(&rel, &bytes);
        self.timestamp.signed.meta.insert(
            "snapshot.json".into(),
            MetaFile::with_bytes(version, &bytes),
        );
        self.write_timestamp();
    }

    /// Where `role` at `version` is published: `metadata/N.role.json` with consistent
    /// snapshots, `metadata/role.json` without. The file has the role's plain name, because
    /// the static server decodes the client's percent-encoded request path (`my%20role` is
    /// served from `my role`).
    pub fn metadata_name(&self, role: &str, version: u64) -> String {
        let name = role;
        if self.consistent {
            format!("metadata/{version}.{name}.json")
        } else {
            format!("metadata/{name}.json")
        }
    }

    /// Sign and write `metadata/timestamp.json` at its current version.
    pub fn write_timestamp(&mut self) {
        let keys = std::mem::take(&mut self.timestamp_keys);
        Self::sign(&mut self.timestamp, &keys);
        self.timestamp_keys = keys;
        let bytes = self
            .timestamp
            .to_canonical_bytes()
            .expect("timestamp bytes");
        self.write_raw("metadata/timestamp.json", &bytes);
    }

    /// Publish a new repository version: every targets role changed since the last publish
    /// gets a new version, then snapshot and timestamp do.
    pub fn publish(&mut self) {
        let dirty: Vec<String> = std::mem::take(&mut self.dirty).into_iter().collect();
        for role in dirty {
            let written = self
                .snapshot
                .signed
                .meta
                .contains_key(&format!("{role}.json"));
            if written {
                self.role_mut(&role).signed.version += 1;
            }
            self.write_targets_role(&role);
        }
        self.snapshot.signed.version += 1;
        self.timestamp.signed.version += 1;
        self.write_snapshot_and_timestamp();
    }
}

/// A test CA and an HTTPS server on 127.0.0.1 serving a directory. Every request path is
/// recorded (see [`HttpsRepo::requests`]).
pub struct HttpsRepo {
    pub ca: TestCa,
    pub server: ServerHandle,
    log: Arc<Mutex<Vec<String>>>,
}

impl HttpsRepo {
    /// Serve `dir` over HTTPS.
    pub fn serve(dir: &Path) -> Self {
        Self::serve_with(dir, Router::new())
    }

    /// Serve `dir` over HTTPS; routes in `extra` win over the files.
    pub fn serve_with(dir: &Path, extra: Router) -> Self {
        let ca = TestCa::new().expect("test CA");
        let identity = ca
            .issue_server_cert(&["127.0.0.1", "localhost"])
            .expect("server cert");
        let log = Arc::new(Mutex::new(Vec::new()));
        let recorder = log.clone();
        let app = extra
            .fallback_service(static_dir_router(dir.to_path_buf()))
            .layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    let recorder = recorder.clone();
                    async move {
                        if let Ok(mut log) = recorder.lock() {
                            log.push(req.uri().path().to_string());
                        }
                        next.run(req).await
                    }
                },
            ));
        let server = ServerHandle::https(app, &identity).expect("start HTTPS server");
        HttpsRepo { ca, server, log }
    }

    /// Wrap a server started elsewhere (its requests are not recorded).
    pub fn from_parts(ca: TestCa, server: ServerHandle) -> Self {
        HttpsRepo {
            ca,
            server,
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The paths requested so far, in order (e.g. `/metadata/2.root.json`).
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Forget the recorded requests.
    pub fn clear_requests(&self) {
        if let Ok(mut log) = self.log.lock() {
            log.clear();
        }
    }

    pub fn metadata_url(&self) -> String {
        self.server.url("/metadata/")
    }

    pub fn targets_url(&self) -> String {
        self.server.url("/targets/")
    }

    /// A transport trusting only the test CA, quick retries.
    pub fn fetcher(&self) -> Arc<Fetcher> {
        Arc::new(
            Fetcher::new(FetcherConfig {
                trust: Trust::CaBundlePem(self.ca.cert_pem().as_bytes().to_vec()),
                retry_backoff: Duration::from_millis(10),
                ..FetcherConfig::default()
            })
            .expect("fetcher"),
        )
    }

    /// Updater settings for this server with `metadata_dir`.
    pub fn config(&self, metadata_dir: &Path) -> UpdaterConfig {
        UpdaterConfig::new(metadata_dir, self.metadata_url(), self.fetcher())
            .with_targets_base_url(self.targets_url())
    }
}

/// A client: a fresh metadata directory initialised with `root`, and an updater for `https`.
pub struct Client {
    pub dir: TempDir,
    pub config: UpdaterConfig,
}

impl Client {
    pub fn new(https: &HttpsRepo, root: &[u8]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Updater::init(&dir.path().join("metadata"), root).expect("init client");
        let config = https.config(&dir.path().join("metadata"));
        Client { dir, config }
    }

    pub fn metadata_dir(&self) -> PathBuf {
        self.dir.path().join("metadata")
    }

    pub fn target_dir(&self) -> PathBuf {
        self.dir.path().join("targets")
    }

    /// A new updater, as each run of a client program would make.
    pub fn updater(&self) -> Updater {
        Updater::new(self.config.clone()).expect("updater")
    }

    pub fn updater_with_limits(&self, limits: Limits) -> Updater {
        Updater::new(self.config.clone().with_limits(limits)).expect("updater")
    }

    /// The files in the metadata directory, by name.
    pub fn stored(&self) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(self.metadata_dir())
            .expect("read metadata dir")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.file_name().into_string().expect("utf-8 name"),
                    std::fs::read(e.path()).expect("read"),
                )
            })
            .collect()
    }
}

/// The Python interpreter for interop tests: `AIRLOCK_PYTHON`, else `<repo>/.venv/bin/python`.
/// `None` (with a notice) only when neither is there.
pub fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AIRLOCK_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if venv.exists() {
        return Some(venv);
    }
    eprintln!("NOTICE: skipping python-tuf interop: AIRLOCK_PYTHON unset and no .venv");
    None
}
