#![forbid(unsafe_code)]
//! A complete transparency setup on 127.0.0.1, in-process, for the demo and tests: a test CA,
//! a log served over HTTPS from a temporary directory, and `n` witnesses (each over HTTPS, with
//! its own state directory) that the log asks to cosign every checkpoint.
//!
//! ```no_run
//! let net = airlock_testbed::LocalTransparency::start(2).unwrap();
//! let index = net.submit(b"release v1.2.3 sha256:...").unwrap();
//! let checkpoint = net.wait_cosigned(index).unwrap();
//! let proof = net.proof(index).unwrap();
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_core::tlog::{CosignatureSigner, KeyAlgorithm, NoteSigner, NoteVerifier};
use airlock_fetch::{FetchError, Fetcher, Trust};
use airlock_log::config::witness_fetcher_config;
use airlock_log::{
    FsTileStore, Log, LogOptions, SIGNATURE_HEADER, WitnessEndpoint, sign_submission,
};
use airlock_serve::{ServerHandle, TestCa};
use airlock_witness::{FollowedLog, Witness};

/// Why the local setup failed.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    #[error("local transparency setup: {0}")]
    Setup(String),
    #[error("log at {url}: HTTP {status}: {reason}")]
    Http {
        url: String,
        status: u16,
        reason: String,
    },
    #[error("talking to the log")]
    Fetch(#[from] FetchError),
    #[error(
        "entry {index} was not in a checkpoint cosigned by all {witnesses} witnesses within {secs} s"
    )]
    NotCosigned {
        index: u64,
        witnesses: usize,
        secs: u64,
    },
}

fn setup(e: impl std::fmt::Display) -> TestbedError {
    TestbedError::Setup(e.to_string())
}

/// A running witness of the local setup.
pub struct LocalWitness {
    pub witness: Arc<Witness>,
    pub server: ServerHandle,
}

/// A log plus witnesses on 127.0.0.1 (see the module docs). Everything stops on drop.
pub struct LocalTransparency {
    /// Holds every file; removed on drop.
    pub dir: tempfile::TempDir,
    pub ca_pem: Vec<u8>,
    pub log: Log,
    pub log_server: ServerHandle,
    pub witnesses: Vec<LocalWitness>,
    /// A publisher key the log accepts.
    pub publisher: NoteSigner,
    /// Two more keys the log accepts, for submitters other than the publisher (rebuilders).
    pub other_submitters: Vec<NoteSigner>,
    pub client: Arc<Fetcher>,
}

impl LocalTransparency {
    /// Starts a log with origin `airlock.test/log` and `n_witnesses` witnesses.
    pub fn start(n_witnesses: usize) -> Result<Self, TestbedError> {
        let log_key =
            NoteSigner::generate("airlock.test/log", KeyAlgorithm::Ed25519).map_err(setup)?;
        let witness_keys = (0..n_witnesses)
            .map(|i| CosignatureSigner::generate(&format!("airlock.test/witness{}", i + 1)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(setup)?;
        Self::start_with_keys(log_key, witness_keys)
    }

    /// Starts a log signing with `log_key` and one witness per key. Two setups given the same
    /// keys are two trees under one identity: a split view, as a compromised log and witnesses
    /// could show.
    pub fn start_with_keys(
        log_key: NoteSigner,
        witness_keys: Vec<CosignatureSigner>,
    ) -> Result<Self, TestbedError> {
        let dir = tempfile::tempdir().map_err(setup)?;
        let ca = TestCa::new().map_err(setup)?;
        let ca_pem = ca.cert_pem().as_bytes().to_vec();
        let publisher =
            NoteSigner::generate("airlock.test/publisher", KeyAlgorithm::Ed25519).map_err(setup)?;
        let other_submitters = (1..=2)
            .map(|i| {
                NoteSigner::generate(&format!("airlock.test/submitter{i}"), KeyAlgorithm::Ed25519)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(setup)?;
        let mut witnesses = Vec::new();
        let mut endpoints = Vec::new();
        for (i, key) in witness_keys.into_iter().enumerate() {
            let w = Arc::new(
                Witness::open(
                    key,
                    vec![FollowedLog {
                        origin: log_key.name().to_string(),
                        keys: vec![log_key.verifier()],
                    }],
                    &dir.path().join(format!("witness{}", i + 1)),
                )
                .map_err(setup)?,
            );
            let identity = ca.issue_server_cert(&["127.0.0.1"]).map_err(setup)?;
            let server = ServerHandle::https(w.clone().router(), &identity).map_err(setup)?;
            endpoints.push(WitnessEndpoint {
                verifier: w.verifier(),
                url: server.base_url(),
            });
            witnesses.push(LocalWitness { witness: w, server });
        }
        let client = Arc::new(
            Fetcher::new(witness_fetcher_config(
                Trust::CaBundlePem(ca_pem.clone()),
                false,
                Duration::from_secs(10),
            ))
            .map_err(setup)?,
        );
        let store = FsTileStore::open(
            &dir.path().join("log/public"),
            &dir.path().join("log/state"),
        )
        .map_err(setup)?;
        let log = Log::start(LogOptions {
            signer: log_key,
            store: Arc::new(store),
            publishers: std::iter::once(&publisher)
                .chain(&other_submitters)
                .map(NoteSigner::verifier)
                .collect(),
            witnesses: endpoints,
            witness_client: Some(client.clone()),
            max_batch: 65_536,
        })
        .map_err(setup)?;
        let identity = ca.issue_server_cert(&["127.0.0.1"]).map_err(setup)?;
        let log_server = ServerHandle::https(log.router(), &identity).map_err(setup)?;
        Ok(LocalTransparency {
            dir,
            ca_pem,
            log,
            log_server,
            witnesses,
            publisher,
            other_submitters,
            client,
        })
    }

    /// The log's base URL (`https://127.0.0.1:PORT`).
    pub fn log_url(&self) -> String {
        self.log_server.base_url()
    }

    /// The log's checkpoint verifier key.
    pub fn log_verifier(&self) -> NoteVerifier {
        self.log.verifier().clone()
    }

    /// The witnesses' cosignature verifier keys.
    pub fn witness_verifiers(&self) -> Vec<NoteVerifier> {
        self.witnesses
            .iter()
            .map(|w| w.witness.verifier())
            .collect()
    }

    /// The directory the log publishes (checkpoint and tiles).
    pub fn public_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("log/public")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Submits `entry` over HTTPS, signed by the publisher key; returns its index once durable.
    pub fn submit(&self, entry: &[u8]) -> Result<u64, TestbedError> {
        let sig = sign_submission(&self.publisher, self.log.origin(), entry).map_err(setup)?;
        let url = self.log_server.url("/add");
        let resp = self
            .client
            .post(&url, &[(SIGNATURE_HEADER, &sig)], entry, 1024)?;
        if resp.status != 200 {
            return Err(TestbedError::Http {
                url,
                status: resp.status,
                reason: resp.reason(),
            });
        }
        resp.reason()
            .trim()
            .parse()
            .map_err(|_| setup("unparsable index in the log's answer"))
    }

    /// Waits until a checkpoint containing entry `index` and cosigned by every witness is
    /// published, and returns it as served at `/checkpoint`.
    pub fn wait_cosigned(&self, index: u64) -> Result<Vec<u8>, TestbedError> {
        let timeout = Duration::from_secs(30);
        let start = Instant::now();
        loop {
            if let Some(p) = self.log.published()
                && p.size > index
                && p.cosigned_by.len() == self.witnesses.len()
            {
                let url = self.log_server.url("/checkpoint");
                return Ok(self.client.fetch_capped(&url, 1 << 20)?);
            }
            if start.elapsed() > timeout {
                return Err(TestbedError::NotCosigned {
                    index,
                    witnesses: self.witnesses.len(),
                    secs: timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fetches the tlog-proof bundle for entry `index` over HTTPS.
    pub fn proof(&self, index: u64) -> Result<Vec<u8>, TestbedError> {
        let url = self.log_server.url(&format!("/proof/{index}"));
        Ok(self.client.fetch_capped(&url, 1 << 20)?)
    }
}

impl Drop for LocalTransparency {
    fn drop(&mut self) {
        self.log.shutdown();
    }
}
