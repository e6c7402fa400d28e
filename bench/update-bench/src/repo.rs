//! The benchmark's repositories, generated at bench time with airlock-core's metadata model and
//! Ed25519 keys: consistent snapshots, one key per top-level role, one key for all bins.
//!
//! Layouts (each under its own directory, `metadata/` and `targets/` inside):
//! - `flat`: one `targets.json` listing every target (100,000 by default, about 15 MB).
//! - `succinct`: the same targets in 2^8 = 256 TAP 15 succinct hash bins (`bin-00` … `bin-ff`).
//! - `prefix`: the same targets in 256 roles delegated by `path_hash_prefixes` (`00` … `ff`).
//! - `big`: one target of `big_len` bytes (pseudo-random, 1 GiB by default).
//! - `flat-tlog`, `succinct-tlog` (transparency benchmark only): `flat` and `succinct` with a
//!   transparency policy in root (`x-airlock-transparency`), every targets role logged in a real
//!   log with witnesses, and its tlog-proof bundle written beside it (`1.targets.json.tlog-proof`).
//!
//! Only the target that the clients download is written to disk; the others are listed with the
//! real length and SHA-256 of their (deterministic) content. The snapshot lists each targets role
//! with version and length (python-tuf's repository writes only the version; a length lets every
//! client size its download); the timestamp lists the snapshot with version, length and SHA-256.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use airlock_core::crypto::{KeyScheme, PrivateKey, Signer};
use airlock_core::transparency::{
    EXTENSION_FIELD, PROOF_SUFFIX, ReleaseStatement, TransparencyPolicy,
};
use airlock_core::tuf::{
    DelegatedRole, Delegations, MetaFile, Metadata, Role, Root, SignMode, Snapshot, SuccinctRoles,
    TargetFile, Targets, Timestamp, path_hash,
};
use anyhow::{Context, Result};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use sha2::{Digest, Sha256};

/// Which shape the targets metadata has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Flat,
    Succinct,
    Prefix,
}

/// A published repository: where it is and what a client needs to start.
#[derive(Clone, Debug)]
pub struct Repo {
    /// Directory name under the served root, e.g. `flat`.
    pub name: String,
    /// Version-1 root, what clients are initialised with.
    pub root_file: PathBuf,
    /// The target the clients download.
    pub target: String,
    pub target_len: u64,
    pub target_sha256: String,
    /// Size of each metadata file written, by file name.
    pub metadata_sizes: BTreeMap<String, u64>,
}

struct Keys {
    root: PrivateKey,
    timestamp: PrivateKey,
    snapshot: PrivateKey,
    targets: PrivateKey,
    bins: PrivateKey,
}

fn ed25519() -> Result<PrivateKey> {
    PrivateKey::generate(KeyScheme::Ed25519).context("generating an Ed25519 key")
}

/// Path of target `i`: about 45 characters, so 100,000 entries make about 15 MB of JSON.
pub fn target_path(i: usize) -> String {
    format!("pkgs/package-{i:06}/package-{i:06}-1.0.0.tar.gz")
}

/// Deterministic content of target `i`: 1 to 4 KiB.
fn target_content(i: usize) -> Vec<u8> {
    let line = format!("airlock bench target {i}\n");
    let len = 1024 + (i * 7919) % 3072;
    line.as_bytes().iter().copied().cycle().take(len).collect()
}

fn sign<T: Role>(signed: T, key: &PrivateKey) -> Result<Vec<u8>> {
    let mut md = Metadata::new(signed);
    md.sign(key as &dyn Signer, SignMode::ReplaceAll)
        .context("signing metadata")?;
    md.to_canonical_bytes().context("serialising metadata")
}

/// A real log that a repository's targets roles are logged in, with the policy naming it.
pub struct ReleaseLogging<'a> {
    pub policy: &'a TransparencyPolicy,
    pub client: &'a airlock_log::client::LogClient,
}

/// Generates and publishes repositories under one served directory.
pub struct Generator {
    served: PathBuf,
    keys: Keys,
    expires: DateTime<Utc>,
    /// `(path, listing)` of every small target, in index order.
    targets: Vec<(String, TargetFile)>,
    chosen: usize,
}

impl Generator {
    /// `count` small targets; `chosen` is the index of the one clients download.
    pub fn new(served: &Path, count: usize, chosen: usize) -> Result<Self> {
        let keys = Keys {
            root: ed25519()?,
            timestamp: ed25519()?,
            snapshot: ed25519()?,
            targets: ed25519()?,
            bins: ed25519()?,
        };
        let targets = (0..count)
            .map(|i| (target_path(i), TargetFile::from_bytes(&target_content(i))))
            .collect();
        Ok(Self {
            served: served.to_path_buf(),
            keys,
            // Whole seconds: airlock-core writes a fraction when the time has one, and python-tuf
            // 7 refuses fractional `expires` (it parses with %Y-%m-%dT%H:%M:%SZ).
            expires: (Utc::now() + Duration::days(365)).trunc_subsecs(0),
            targets,
            chosen,
        })
    }

    fn write(&self, repo: &str, rel: &str, bytes: &[u8]) -> Result<()> {
        let path = self.served.join(repo).join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    }

    fn root(&self, policy: Option<&TransparencyPolicy>) -> Root {
        let mut root = Root::new(self.expires);
        if let Some(p) = policy {
            root.unrecognized
                .insert(EXTENSION_FIELD.to_string(), p.to_value());
        }
        root.consistent_snapshot = Some(true);
        root.add_key("root", self.keys.root.public_key().clone());
        root.add_key("timestamp", self.keys.timestamp.public_key().clone());
        root.add_key("snapshot", self.keys.snapshot.public_key().clone());
        root.add_key("targets", self.keys.targets.public_key().clone());
        root
    }

    /// Writes root, the given targets roles (`(name, signed, key)`), snapshot and timestamp;
    /// with `logging`, root carries its policy and every targets role is logged in one batch
    /// (one covering checkpoint, as one `publish` makes) and its bundle written beside it.
    fn publish(
        &self,
        name: &str,
        roles: Vec<(String, Targets, &PrivateKey)>,
        target: (String, u64, String),
        logging: Option<&ReleaseLogging<'_>>,
    ) -> Result<Repo> {
        let mut sizes = BTreeMap::new();
        let root = sign(self.root(logging.map(|l| l.policy)), &self.keys.root)?;
        self.write(name, "metadata/1.root.json", &root)?;
        sizes.insert("1.root.json".to_string(), root.len() as u64);
        let mut snapshot = Snapshot::new(1, self.expires);
        let mut statements = Vec::new();
        let mut files = Vec::new();
        for (role, signed, key) in roles {
            let bytes = sign(signed, key)?;
            let file = format!("1.{role}.json");
            self.write(name, &format!("metadata/{file}"), &bytes)?;
            sizes.insert(file.clone(), bytes.len() as u64);
            let mut meta = MetaFile::new(1);
            meta.length = Some(bytes.len() as u64);
            snapshot.meta.insert(format!("{role}.json"), meta);
            if let Some(l) = logging {
                statements.push(
                    ReleaseStatement::for_metadata(l.policy.repository(), &role, 1, &bytes)
                        .to_bytes(),
                );
                files.push(file);
            }
        }
        if let Some(l) = logging {
            let bundles = l
                .client
                .log_entries(l.policy.log_origin(), &statements)
                .with_context(|| format!("logging the targets roles of {name}"))?;
            for (file, bundle) in files.iter().zip(bundles) {
                let proof = format!("{file}{PROOF_SUFFIX}");
                self.write(name, &format!("metadata/{proof}"), &bundle)?;
                sizes.insert(proof, bundle.len() as u64);
            }
        }
        let snapshot = sign(snapshot, &self.keys.snapshot)?;
        self.write(name, "metadata/1.snapshot.json", &snapshot)?;
        sizes.insert("1.snapshot.json".to_string(), snapshot.len() as u64);
        let timestamp = Timestamp::new(1, self.expires, MetaFile::with_bytes(1, &snapshot));
        let timestamp = sign(timestamp, &self.keys.timestamp)?;
        self.write(name, "metadata/timestamp.json", &timestamp)?;
        sizes.insert("timestamp.json".to_string(), timestamp.len() as u64);
        let root_file = self.served.join(name).join("metadata/1.root.json");
        Ok(Repo {
            name: name.to_string(),
            root_file,
            target: target.0,
            target_len: target.1,
            target_sha256: target.2,
            metadata_sizes: sizes,
        })
    }

    /// Writes the chosen small target's file as `targets/dir/SHA256.name`.
    fn write_chosen(&self, repo: &str) -> Result<(String, u64, String)> {
        let content = target_content(self.chosen);
        let (path, file) = self
            .targets
            .get(self.chosen)
            .context("chosen target index out of range")?;
        let sha = hex::encode(Sha256::digest(&content));
        let (dir, base) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        self.write(repo, &format!("targets/{dir}/{sha}.{base}"), &content)?;
        // tough 0.24 asks for HASH.dir/name (hash before the whole path) instead of TUF's
        // dir/HASH.name; the same bytes are served there too so that it can do the same work.
        self.write(repo, &format!("targets/{sha}.{path}"), &content)?;
        Ok((path.clone(), file.length, sha))
    }

    /// A repository of the small targets in `layout`.
    pub fn small(&self, layout: Layout) -> Result<Repo> {
        self.small_logged(layout, None)
    }

    /// [`Generator::small`]; with `logging`, the transparency variant (`<layout>-tlog`).
    pub fn small_logged(
        &self,
        layout: Layout,
        logging: Option<&ReleaseLogging<'_>>,
    ) -> Result<Repo> {
        let base = match layout {
            Layout::Flat => "flat",
            Layout::Succinct => "succinct",
            Layout::Prefix => "prefix",
        };
        let name = match logging {
            Some(_) => format!("{base}-tlog"),
            None => base.to_string(),
        };
        let name = name.as_str();
        let chosen = self.write_chosen(name)?;
        let bins_id = self.keys.bins.public_key().key_id();
        let mut keys = BTreeMap::new();
        keys.insert(bins_id.clone(), self.keys.bins.public_key().clone());
        let mut top = Targets::new(1, self.expires);
        let mut roles: Vec<(String, Targets, &PrivateKey)> = Vec::new();
        match layout {
            Layout::Flat => {
                top.targets = self.targets.iter().cloned().collect();
            }
            Layout::Succinct => {
                let bins = SuccinctRoles::new(vec![bins_id], 1, 8, "bin");
                let mut by_bin: BTreeMap<String, Targets> = bins
                    .bin_names()
                    .map(|n| (n, Targets::new(1, self.expires)))
                    .collect();
                for (path, file) in &self.targets {
                    if let Some(t) = by_bin.get_mut(&bins.bin_for_target(path)) {
                        t.targets.insert(path.clone(), file.clone());
                    }
                }
                top.delegations = Some(Delegations::with_succinct_roles(keys, bins));
                roles.extend(by_bin.into_iter().map(|(n, t)| (n, t, &self.keys.bins)));
            }
            Layout::Prefix => {
                let mut delegated = Vec::new();
                let mut by_bin: BTreeMap<String, Targets> = BTreeMap::new();
                for i in 0..256u32 {
                    let prefix = format!("{i:02x}");
                    let role = format!("bin-{prefix}");
                    delegated.push(DelegatedRole::with_hash_prefixes(
                        &role,
                        vec![bins_id.clone()],
                        1,
                        vec![prefix],
                    ));
                    by_bin.insert(role, Targets::new(1, self.expires));
                }
                for (path, file) in &self.targets {
                    let role = format!("bin-{}", path_hash(path).get(..2).unwrap_or("00"));
                    if let Some(t) = by_bin.get_mut(&role) {
                        t.targets.insert(path.clone(), file.clone());
                    }
                }
                top.delegations = Some(Delegations::with_roles(keys, delegated));
                roles.extend(by_bin.into_iter().map(|(n, t)| (n, t, &self.keys.bins)));
            }
        }
        roles.insert(0, ("targets".to_string(), top, &self.keys.targets));
        self.publish(name, roles, chosen, logging)
    }

    /// A repository with one pseudo-random target of `len` bytes (`big/blob.bin`).
    pub fn big(&self, len: u64) -> Result<Repo> {
        let name = "big";
        let dir = self.served.join(name).join("targets/big");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join("blob.tmp");
        let mut out = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        );
        let mut hasher = Sha256::new();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut buf = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            for chunk in buf.chunks_exact_mut(8) {
                // xorshift64: incompressible enough, fast to make.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes());
            }
            let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let part = buf.get(..n).unwrap_or(&buf);
            hasher.update(part);
            out.write_all(part)
                .with_context(|| format!("writing {}", tmp.display()))?;
            left -= n as u64;
        }
        out.flush()
            .with_context(|| format!("writing {}", tmp.display()))?;
        drop(out);
        let sha = hex::encode(hasher.finalize());
        let served = dir.join(format!("{sha}.blob.bin"));
        std::fs::rename(&tmp, &served).with_context(|| format!("renaming {}", tmp.display()))?;
        // tough's HASH.dir/name (see write_chosen), as a hard link: no second GiB on disk.
        let tough_dir = self.served.join(name).join(format!("targets/{sha}.big"));
        std::fs::create_dir_all(&tough_dir)
            .with_context(|| format!("creating {}", tough_dir.display()))?;
        std::fs::hard_link(&served, tough_dir.join("blob.bin"))
            .with_context(|| format!("linking {}", served.display()))?;
        let mut file = TargetFile::from_bytes(&[]);
        file.length = len;
        file.hashes = airlock_core::tuf::Hashes::from([("sha256".to_string(), sha.clone())]);
        let mut top = Targets::new(1, self.expires);
        top.targets.insert("big/blob.bin".to_string(), file);
        self.publish(
            name,
            vec![("targets".to_string(), top, &self.keys.targets)],
            ("big/blob.bin".to_string(), len, sha),
            None,
        )
    }

    /// Path on disk of a repository's target file (for curl and openssl).
    pub fn target_file(&self, repo: &Repo) -> PathBuf {
        let (dir, base) = repo
            .target
            .rsplit_once('/')
            .unwrap_or(("", repo.target.as_str()));
        self.served
            .join(&repo.name)
            .join("targets")
            .join(dir)
            .join(format!("{}.{base}", repo.target_sha256))
    }
}
