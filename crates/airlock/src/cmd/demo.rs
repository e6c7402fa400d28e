//! `airlock demo`: a whole release, end to end, on 127.0.0.1, showing every check it passes.
//!
//! Nothing here is simulated: keys are generated, metadata is signed, a transparency log and
//! witnesses run as real HTTPS servers, the repository is served over HTTPS with a CA made for
//! the run, and the updater is the same library `airlock update` uses. The demo then plays two
//! attacks against the same client and shows them refused.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use airlock_client::{Updater, UpdaterConfig};
use airlock_core::crypto::KeyScheme;
use airlock_core::tlog::{LogVerifier, Policy, ProofBundle, VerifierState};
use airlock_fetch::{Fetcher, FetcherConfig, Trust};
use airlock_keystore::PassphraseSource;
use airlock_repo::{
    AddOptions, AddSource, InitOptions, Protection, Repository, RoleKeySpec, TargetCustom,
    TargetName, hashed_target_path,
};
use airlock_serve::{ServerHandle, TestCa, static_dir_router};
use airlock_testbed::LocalTransparency;
use anyhow::{Context, Result, bail};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::common::print_json;

/// Walk through a release end to end on 127.0.0.1 and show every check an update passes.
///
/// Example: `airlock demo` (or `airlock demo --keep /tmp/airlock-demo` to inspect the files).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Keep every file in this directory (must not exist) instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Number of witnesses cosigning the log's checkpoints.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=8))]
    witnesses: u64,
}

const TARGET: &str = "app/app-1.0.0.tar.gz";

thread_local! {
    /// With `--json`, the steps collected for the one document printed at the end; `None`
    /// prints each line as it happens.
    static JSON_STEPS: RefCell<Option<Vec<serde_json::Value>>> = const { RefCell::new(None) };
}

/// Text to print now, or (with `--json`) a record for the final document.
fn emit(text: String, record: impl FnOnce() -> serde_json::Value) {
    let collected = JSON_STEPS.with_borrow_mut(|steps| match steps {
        Some(steps) => {
            steps.push(record());
            true
        }
        None => false,
    });
    if !collected {
        println!("{text}");
    }
}

fn step(n: u32, title: &str) {
    emit(
        format!("\n{n}. {title}"),
        || json!({"step": n, "title": title, "checks": []}),
    );
}

/// Appends a check to the last step of the JSON document, or prints it.
fn check(mark: &str, outcome: &str, msg: &str) {
    let collected = JSON_STEPS.with_borrow_mut(|steps| {
        let Some(steps) = steps else { return false };
        if let Some(checks) = steps
            .last_mut()
            .and_then(|s| s.get_mut("checks"))
            .and_then(|c| c.as_array_mut())
        {
            checks.push(json!({"outcome": outcome, "message": msg}));
        }
        true
    });
    if !collected {
        println!("   {mark} {msg}");
    }
}

fn ok(msg: impl AsRef<str>) {
    check("\u{2713}", "ok", msg.as_ref());
}

/// An attack the client refused: the check worked, so it is marked as a pass.
fn refused(msg: impl AsRef<str>) {
    check(
        "\u{2713}",
        "refused",
        &format!("refused, as it must: {}", msg.as_ref()),
    );
}

/// Copies a directory tree (the log's and witnesses' files) so `--keep` keeps them too.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// The statement a release's log entry carries: what a client can recompute from verified TUF
/// metadata alone, so the log proof binds exactly the bytes the client downloads and verifies.
fn release_statement(target: &str, length: u64, sha256: &str) -> Vec<u8> {
    format!("airlock-release/v1\ntarget {target}\nlength {length}\nsha256 {sha256}\n").into_bytes()
}

pub fn run(args: Args, json_out: bool) -> Result<()> {
    JSON_STEPS.with_borrow_mut(|steps| *steps = json_out.then(Vec::new));
    let (_tmp, root_dir) = match &args.keep {
        Some(dir) => {
            if dir.exists() {
                bail!("--keep {}: already exists", dir.display());
            }
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            (None, dir.clone())
        }
        None => {
            let t = tempfile::Builder::new().prefix("airlock-demo-").tempdir()?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    if !json_out {
        println!(
            "Airlock demo: everything runs on 127.0.0.1, files in {}",
            root_dir.display()
        );
    }

    // 1. The vendor creates a repository.
    step(1, "Vendor creates a TUF repository");
    let repo_dir = root_dir.join("vendor-repo");
    let passphrase = PassphraseSource::Value("demo passphrase".to_string().into());
    let options = InitOptions {
        root: RoleKeySpec::new(KeyScheme::Ed25519, 3, 2),
        targets: RoleKeySpec::new(KeyScheme::EcdsaP256, 1, 1),
        ..InitOptions::simple(Protection::encrypted_fast_for_tests(passphrase))
    };
    let mut repo = Repository::init(&repo_dir, &options).context("creating the repository")?;
    ok("root: 3 Ed25519 keys, any 2 must sign (kept offline)");
    ok("targets: 1 ECDSA P-256 key (RFC 6979 deterministic signatures)");
    ok("snapshot, timestamp: 1 Ed25519 key each (online, for cron)");
    ok(format!(
        "private keys encrypted on disk (PKCS#8, scrypt + AES-256-GCM) in {}",
        repo_dir.join("keys").display()
    ));

    // 2. The vendor publishes a release.
    step(2, "Vendor publishes release 1.0.0");
    let artifact = root_dir.join("app-1.0.0.tar.gz");
    let payload: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&artifact, &payload)?;
    let sha256 = hex::encode(Sha256::digest(&payload));
    repo.add_targets(
        &[AddSource {
            path: artifact.clone(),
            target: TargetName::Exact(TARGET.into()),
        }],
        &AddOptions {
            custom: TargetCustom {
                version: Some("1.0.0".into()),
                channel: Some("stable".into()),
                source_ref: Some("git+https://example.org/app@v1.0.0".into()),
            },
            role: None,
        },
        &|_, _| {},
    )?;
    let report = repo.publish(&|_, _| {})?;
    ok(format!(
        "{TARGET}: {} bytes, sha256 {}…",
        payload.len(),
        &sha256[..16]
    ));
    ok(format!(
        "published with consistent snapshots: {}.root.json, targets, {}.snapshot.json, timestamp.json (v{})",
        report.root_version, report.snapshot_version, report.timestamp_version
    ));
    let published = repo.published_path();
    let verify = airlock_repo::verify_published(&published, chrono::Utc::now());
    if !verify.ok {
        bail!("the published tree does not verify: {:?}", verify.problems);
    }
    ok("`airlock repo verify`: every signature, threshold, hash and length checks out");

    // 3. The release is logged and the checkpoint cosigned by witnesses.
    step(
        3,
        "Release logged in a transparency log, checkpoint cosigned by witnesses",
    );
    let n_witnesses = args.witnesses as usize;
    let transparency =
        LocalTransparency::start(n_witnesses).context("starting log and witnesses")?;
    let statement = release_statement(TARGET, payload.len() as u64, &sha256);
    let index = transparency.submit(&statement)?;
    ok(format!(
        "entry #{index} accepted by the log at {} once fsynced",
        transparency.log_url()
    ));
    let cosigned = transparency.wait_cosigned(index)?;
    ok(format!(
        "checkpoint cosigned by {n_witnesses} witness(es), each checking it extends what it saw before"
    ));
    let proof = transparency.proof(index)?;
    let proof_file = root_dir.join("app-1.0.0.tar.gz.tlog-proof");
    std::fs::write(&proof_file, &proof)
        .with_context(|| format!("writing {}", proof_file.display()))?;
    ok(format!(
        "proof bundle for entry #{index}: {} bytes, written beside the release at {} (a \
         vendor ships it with the download; here step 6 reads it back)",
        proof.len(),
        proof_file.display()
    ));
    let mut policy_text = format!("log {}\n", transparency.log_verifier());
    let mut names = Vec::new();
    for (i, w) in transparency.witness_verifiers().iter().enumerate() {
        policy_text.push_str(&format!("witness w{i} {w}\n"));
        names.push(format!("w{i}"));
    }
    policy_text.push_str(&format!("group witnesses all {}\n", names.join(" ")));
    policy_text.push_str("quorum witnesses\n");
    drop(cosigned);

    // 4. A mirror serves the repository.
    step(4, "An untrusted mirror serves the repository over HTTPS");
    let ca = TestCa::new()?;
    let identity = ca.issue_server_cert(&["127.0.0.1", "localhost"])?;
    let server = ServerHandle::https(static_dir_router(&published), &identity)?;
    ok(format!(
        "{} (TLS 1.3 via rustls; certificate from a CA made for this run)",
        server.base_url()
    ));

    // 5. The user's machine updates.
    step(
        5,
        "User's machine: the updater checks everything before keeping a byte",
    );
    let client_dir = root_dir.join("client");
    let md_dir = client_dir.join("metadata");
    let root_v1 = std::fs::read(published.join("metadata/1.root.json"))?;
    Updater::init(&md_dir, &root_v1)?;
    ok("trusts root v1, shipped with the application (out of band)");
    let fetcher = Arc::new(Fetcher::new(FetcherConfig {
        trust: Trust::CaBundlePem(ca.cert_pem().as_bytes().to_vec()),
        ..FetcherConfig::default()
    })?);
    let new_updater = |fetcher: Arc<Fetcher>, md: &Path| -> Result<Updater> {
        let config = UpdaterConfig::new(md, server.url("/metadata/"), fetcher)
            .with_targets_base_url(server.url("/targets/"));
        Ok(Updater::new(config)?)
    };
    let mut updater = new_updater(fetcher.clone(), &md_dir)?;
    let summary = updater.refresh()?;
    ok(format!(
        "root: asked for {}.root.json, none newer; root v{} meets its threshold (2 of 3 keys), not expired",
        summary.root_version + 1,
        summary.root_version
    ));
    ok(format!(
        "timestamp v{}: threshold of timestamp keys, not expired, version not lower than before",
        summary.timestamp_version
    ));
    ok(format!(
        "snapshot v{}: length and hashes match the timestamp, signed, no role rolled back",
        summary.snapshot_version
    ));
    ok(format!(
        "targets v{}: version matches the snapshot, signed by the targets key, not expired",
        summary.targets_version
    ));
    let dest = Updater::local_target_path(&client_dir.join("downloads"), TARGET);
    let (info, _) = updater.fetch_target(TARGET, &dest, &mut |_, _| {})?;
    ok(format!(
        "{TARGET}: streamed to disk, never past {} bytes; {} verified; stored at {}",
        info.file.length,
        info.file
            .hashes
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(" and "),
        dest.display()
    ));

    // 6. The client checks the log proof offline.
    step(
        6,
        "Log proof verified offline (no request to the log or witnesses)",
    );
    let verified_sha = info
        .file
        .hashes
        .get("sha256")
        .context("the verified target lists no sha256")?;
    let entry = release_statement(&info.path, info.file.length, verified_sha);
    let verifier = LogVerifier::new(Policy::parse(policy_text.as_bytes())?);
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let verified = verifier.verify_entry(
        &VerifierState::new(),
        &ProofBundle::parse(&std::fs::read(&proof_file)?)?,
        &entry,
        None,
        now,
    )?;
    ok(format!(
        "policy: log key + all {n_witnesses} witnesses; checkpoint size {} signed by the log",
        verified.checkpoint.size
    ));
    ok(format!(
        "cosigned by {}: everyone sees this same log",
        verified.witnesses.join(", ")
    ));
    ok(format!(
        "entry #{} (recomputed from the verified target) is included: Merkle proof checks out",
        verified.index
    ));
    if verified
        .state
        .checkpoint(&verified.checkpoint.origin)
        .is_none()
    {
        bail!("the verifier state does not hold the accepted checkpoint: this is a bug");
    }
    ok(
        "the verifier state now holds this checkpoint: a later one must be proven consistent with it",
    );

    // 7. Attacks against the same client, refused.
    step(7, "Attacks from the mirror: each must be refused");
    let on_mirror = published
        .join("targets")
        .join(hashed_target_path(TARGET, &sha256));
    let mut trojan = payload.clone();
    trojan[100] ^= 0xff;
    std::fs::write(&on_mirror, &trojan)?;
    let trojan_dest = client_dir.join("attack").join("app.tar.gz");
    match updater.download_target(&info, &trojan_dest) {
        Ok(()) => bail!("a modified release was accepted: this is a bug"),
        Err(e) => refused(format!(
            "mirror serves a modified release: {}",
            airlock_core::error_chain(&e)
        )),
    }
    if trojan_dest.exists() {
        bail!("a refused download left a file behind: this is a bug");
    }
    ok("nothing was written where the release would go");
    std::fs::write(&on_mirror, &payload)?;

    let trusted_before = std::fs::read(md_dir.join("timestamp.json"))?;
    let ts_path = published.join("metadata/timestamp.json");
    let genuine_ts = std::fs::read(&ts_path)?;
    let mut forged: serde_json::Value = serde_json::from_slice(&genuine_ts)?;
    forged["signed"]["version"] = serde_json::json!(7);
    std::fs::write(&ts_path, serde_json::to_vec(&forged)?)?;
    let mut second = new_updater(fetcher, &md_dir)?;
    match second.refresh() {
        Ok(_) => bail!("a forged timestamp was accepted: this is a bug"),
        Err(e) => refused(format!(
            "mirror serves a forged timestamp: {}",
            airlock_core::error_chain(&e)
        )),
    }
    std::fs::write(&ts_path, &genuine_ts)?;
    if std::fs::read(md_dir.join("timestamp.json"))? != trusted_before {
        bail!("a refused timestamp changed the client's trusted metadata: this is a bug");
    }
    ok("the client's trusted timestamp.json is byte for byte what it was");

    if args.keep.is_some() {
        // The log and witnesses keep their files in a directory of their own, removed when
        // they stop: copied so that `--keep` keeps the whole run.
        let kept = root_dir.join("transparency");
        copy_tree(transparency.dir.path(), &kept)?;
        ok(format!(
            "log and witness files copied to {}",
            kept.display()
        ));
    }
    drop(server);
    drop(transparency);
    let summary = "one release signed, logged, witnessed, mirrored, downloaded and verified; \
                   both attacks refused";
    match JSON_STEPS.with_borrow_mut(Option::take) {
        Some(steps) => print_json(&json!({
            "dir": root_dir,
            "kept": args.keep.is_some(),
            "steps": steps,
            "result": summary,
        })),
        None => {
            println!("\nDone: {summary}.");
            Ok(())
        }
    }
}
