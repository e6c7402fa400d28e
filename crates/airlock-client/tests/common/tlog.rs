//! Transparency test support: a real log and witnesses (`airlock_testbed`), a policy for them
//! in a [`TestRepo`]'s root, and proof bundles written beside the metadata as a publisher
//! publishes them (`<metadata file>.tlog-proof`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use airlock_core::tlog::{CosignatureSigner, NoteSigner};
use airlock_core::transparency::{EXTENSION_FIELD, ReleaseStatement, TransparencyPolicy};
use airlock_fetch::{Fetcher, FetcherConfig, Trust};
use airlock_serve::static_dir_router;
use airlock_testbed::LocalTransparency;
use axum::Router;

use super::{Client, HttpsRepo, TestRepo};

pub const REPOSITORY: &str = "airlock.test/app";

/// tlog-policy text for `net`: its log (with its URL) and every witness, all required.
pub fn policy_text(net: &LocalTransparency) -> String {
    let mut text = format!("log {} {}\n", net.log_verifier().to_vkey(), net.log_url());
    let mut names = Vec::new();
    for (i, w) in net.witness_verifiers().iter().enumerate() {
        let name = format!("w{}", i + 1);
        text.push_str(&format!("witness {name} {}\n", w.to_vkey()));
        names.push(name);
    }
    if names.is_empty() {
        text.push_str("quorum none\n");
    } else {
        text.push_str(&format!("group q all {}\nquorum q\n", names.join(" ")));
    }
    text
}

/// Put `policy_text` into the repository's current root (the caller writes the root).
pub fn set_policy(repo: &mut TestRepo, policy_text: Option<&str>) {
    match policy_text {
        Some(text) => {
            let p = TransparencyPolicy::new(REPOSITORY, text).expect("policy");
            repo.root
                .signed
                .unrecognized
                .insert(EXTENSION_FIELD.to_string(), p.to_value());
        }
        None => {
            repo.root.signed.unrecognized.remove(EXTENSION_FIELD);
        }
    }
}

/// Put a policy value into the root without checking it (for refusals).
pub fn set_raw_policy(repo: &mut TestRepo, policy_text: &str) {
    repo.root.signed.unrecognized.insert(
        EXTENSION_FIELD.to_string(),
        serde_json::json!({"version": 1, "repository": REPOSITORY,
            "policy": policy_text.lines().collect::<Vec<_>>()}),
    );
}

/// The log keys of a testbed, to start a second setup with the same identity (a split view).
pub fn same_keys(
    net: &LocalTransparency,
    log_skey: &str,
    witness_skeys: &[String],
) -> LocalTransparency {
    let _ = net;
    LocalTransparency::start_with_keys(
        NoteSigner::from_skey(log_skey).expect("log key"),
        witness_skeys
            .iter()
            .map(|s| CosignatureSigner::from_skey(s).expect("witness key"))
            .collect(),
    )
    .expect("start second log")
}

/// A log and witnesses whose secret keys the test keeps (to start a fork with them).
pub struct Keys {
    pub log: String,
    pub witnesses: Vec<String>,
}

impl Keys {
    pub fn generate(n: usize) -> Self {
        let log = NoteSigner::generate(
            "airlock.test/log",
            airlock_core::tlog::KeyAlgorithm::Ed25519,
        )
        .expect("log key");
        Keys {
            log: log.to_skey().to_string(),
            witnesses: (0..n)
                .map(|i| {
                    CosignatureSigner::generate(&format!("airlock.test/witness{}", i + 1))
                        .expect("witness key")
                        .to_skey()
                        .to_string()
                })
                .collect(),
        }
    }

    pub fn start(&self) -> LocalTransparency {
        LocalTransparency::start_with_keys(
            NoteSigner::from_skey(&self.log).expect("log key"),
            self.witnesses
                .iter()
                .map(|s| CosignatureSigner::from_skey(s).expect("witness key"))
                .collect(),
        )
        .expect("start log")
    }
}

/// Submit `entries` (filler, to shape a tree) and wait until they are cosigned.
pub fn submit_filler(net: &LocalTransparency, entries: &[&[u8]]) {
    let mut last = 0;
    for e in entries {
        last = net.submit(e).expect("submit");
    }
    net.wait_cosigned(last).expect("cosigned");
}

/// Logs metadata files of a repository, as the publisher would.
pub struct Logger {
    pub logged: BTreeSet<String>,
}

impl Logger {
    pub fn new() -> Self {
        Logger {
            logged: BTreeSet::new(),
        }
    }

    /// Log every `N.role.json` under `metadata/` (root and targets roles) not logged yet,
    /// and write each one's proof bundle beside it. Returns the names logged.
    pub fn log_new(&mut self, repo: &TestRepo, net: &LocalTransparency) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(repo.metadata_dir())
            .expect("read metadata")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .filter(|n| n.ends_with(".json") && !self.logged.contains(n))
            .filter(|n| !n.contains("timestamp") && !n.contains(".snapshot."))
            .collect();
        names.sort();
        let names: Vec<String> = names
            .into_iter()
            .filter(|n| {
                n.split('.')
                    .next()
                    .is_some_and(|v| v.parse::<u64>().is_ok())
            })
            .collect();
        self.log_files(repo, net, &names);
        names
    }

    /// Log the named metadata files (`2.targets.json`) in `net` and write their bundles.
    pub fn log_files(&mut self, repo: &TestRepo, net: &LocalTransparency, names: &[String]) {
        let mut indexes = Vec::new();
        for name in names {
            let (version, rest) = name.split_once('.').expect("N.role.json");
            let role = rest.strip_suffix(".json").expect(".json");
            let bytes = repo.read_raw(&format!("metadata/{name}"));
            let statement = ReleaseStatement::for_metadata(
                REPOSITORY,
                role,
                version.parse().expect("version"),
                &bytes,
            );
            indexes.push(net.submit(&statement.to_bytes()).expect("submit"));
        }
        if let Some(last) = indexes.iter().max() {
            net.wait_cosigned(*last).expect("cosigned");
        }
        for (name, index) in names.iter().zip(indexes) {
            let proof = net.proof(index).expect("proof");
            repo.write_raw(&format!("metadata/{name}.tlog-proof"), &proof);
            self.logged.insert(name.clone());
        }
    }
}

/// Serve the repository with `log`'s public directory (checkpoint, tiles) mirrored under
/// `/log/`, as a mirror or CDN would.
pub fn serve_with_log_mirror(repo: &TestRepo, log: &LocalTransparency) -> HttpsRepo {
    HttpsRepo::serve_with(
        repo.path(),
        Router::new().nest_service("/log", static_dir_router(log.public_dir())),
    )
}

/// A transport trusting the repository's CA and every given testbed's CA.
pub fn fetcher(https: &HttpsRepo, nets: &[&LocalTransparency]) -> Arc<Fetcher> {
    Arc::new(Fetcher::new(fetcher_config(https, nets)).expect("fetcher"))
}

pub fn fetcher_config(https: &HttpsRepo, nets: &[&LocalTransparency]) -> FetcherConfig {
    let mut pem = https.ca.cert_pem().as_bytes().to_vec();
    for net in nets {
        pem.extend_from_slice(&net.ca_pem);
    }
    FetcherConfig {
        trust: Trust::CaBundlePem(pem),
        retry_backoff: Duration::from_millis(10),
        retries: 0,
        ..FetcherConfig::default()
    }
}

/// A client of `https` whose transport trusts `nets` too and whose tiles come from the
/// repository's `/log/` mirror.
pub fn client(https: &HttpsRepo, root: &[u8], nets: &[&LocalTransparency]) -> Client {
    let mut c = Client::new(https, root);
    c.config.fetcher = fetcher(https, nets);
    c.config.log_url = Some(https.server.url("/log/"));
    c
}
