//! `airlock demo`: a whole release, end to end, on 127.0.0.1, showing every check it passes.
//!
//! Nothing here is simulated: keys are generated, metadata is signed, a transparency log and
//! witnesses run as real HTTPS servers, the repository is served over HTTPS with a CA made for
//! the run, and the publisher and updater are the same library code `airlock repo publish` and
//! `airlock update` run: publishing logs the release, updating requires its log proof. The demo
//! then plays three attacks against the same client and shows them refused: a modified release,
//! a forged timestamp, and a release signed with stolen keys but kept out of the public log.
//! The agent installs a release and rolls back one that fails its health check. Last, the root
//! requires two rebuilders: both rebuild a release from its source in bubblewrap and attest,
//! and a release built on a compromised machine does not rebuild, so the client refuses it.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use airlock_agent::{AgentConfig, AgentHandle, Engine, request as agent_request};
use airlock_client::{Updater, UpdaterConfig};
use airlock_core::crypto::KeyScheme;
use airlock_core::tlog::NoteSigner;
use airlock_core::transparency::{PROOF_SUFFIX, TransparencyPolicy};
use airlock_core::tuf::TrustedSet;
use airlock_fetch::{Fetcher, FetcherConfig, Trust};
use airlock_keystore::PassphraseSource;
use airlock_log::client::LogClient;
use airlock_repo::{
    AddOptions, AddSource, InitOptions, Protection, Repository, RoleKeySpec, TargetCustom,
    TargetFiles, TargetName, hashed_target_path,
};
use airlock_serve::{ServerHandle, TestCa, static_dir_router};
use airlock_testbed::LocalTransparency;
use anyhow::{Context, Result, bail};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::common::print_json;
use super::repo::ConfiguredLog;

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
/// The repository's name in its log statements.
const REPOSITORY: &str = "example.org/app";

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

    // 1. The public log and its witnesses.
    step(1, "A public transparency log and its witnesses start");
    let n_witnesses = args.witnesses as usize;
    let transparency =
        LocalTransparency::start(n_witnesses).context("starting log and witnesses")?;
    ok(format!(
        "log {} at {} (append-only Merkle tree, C2SP tiles)",
        transparency.log.origin(),
        transparency.log_url()
    ));
    ok(format!(
        "{n_witnesses} witness(es): each cosigns a checkpoint only if it extends what it saw before"
    ));
    let mut policy_text = format!(
        "log {} {}\n",
        transparency.log_verifier().to_vkey(),
        transparency.log_url()
    );
    let mut names = Vec::new();
    for (i, (w, lw)) in transparency
        .witness_verifiers()
        .iter()
        .zip(&transparency.witnesses)
        .enumerate()
    {
        policy_text.push_str(&format!(
            "witness w{i} {} {}\n",
            w.to_vkey(),
            lw.server.base_url()
        ));
        names.push(format!("w{i}"));
    }
    policy_text.push_str(&format!("group witnesses all {}\n", names.join(" ")));
    policy_text.push_str("quorum witnesses\n");
    let policy = TransparencyPolicy::new(REPOSITORY, &policy_text)?;

    // 2. The vendor creates a repository whose root requires the log.
    step(
        2,
        "Vendor creates a TUF repository whose root requires the log",
    );
    let repo_dir = root_dir.join("vendor-repo");
    let passphrase = PassphraseSource::Value("demo passphrase".to_string().into());
    let options = InitOptions {
        root: RoleKeySpec::new(KeyScheme::Ed25519, 3, 2),
        targets: RoleKeySpec::new(KeyScheme::EcdsaP256, 1, 1),
        ..InitOptions::simple(Protection::encrypted_fast_for_tests(passphrase.clone()))
    };
    let mut repo = Repository::init(&repo_dir, &options).context("creating the repository")?;
    repo.set_transparency(Some(&policy))?;
    ok("root: 3 Ed25519 keys, any 2 must sign (kept offline)");
    ok("targets: 1 ECDSA P-256 key (RFC 6979 deterministic signatures)");
    ok("snapshot, timestamp: 1 Ed25519 key each (online, for cron)");
    ok(format!(
        "private keys encrypted on disk (PKCS#8, scrypt + AES-256-GCM) in {}",
        repo_dir.join("keys").display()
    ));
    ok(format!(
        "root carries the transparency policy ({}): every root and targets version must be in \
         log {} with cosignatures of all {n_witnesses} witness(es)",
        airlock_core::transparency::EXTENSION_FIELD,
        policy.log_origin()
    ));

    // 3. The vendor publishes a release; publishing logs it.
    step(
        3,
        "Vendor publishes release 1.0.0: signed, logged, witnessed",
    );
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
                rollout_percent: None,
                rebuild: None,
            },
            ..AddOptions::default()
        },
        &|_, _| {},
    )?;
    let release_log = ConfiguredLog::new(vec![LogClient::new(
        &transparency.log_url(),
        transparency.client.clone(),
        NoteSigner::from_skey(&transparency.publisher.to_skey())?,
        Duration::from_secs(60),
    )]);
    let report = repo.publish_logged(TargetFiles::Copy, Some(&release_log), &|_, _| {})?;
    ok(format!(
        "{TARGET}: {} bytes, sha256 {}…",
        payload.len(),
        &sha256[..16]
    ));
    let published = repo.published_path();
    let metadata_dir = published.join("metadata");
    let mut bundles: Vec<String> = std::fs::read_dir(&metadata_dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(PROOF_SUFFIX))
        .collect();
    bundles.sort();
    ok(
        "each new root and targets version went to the log as a statement (repository, role, \
         version, SHA-256 of the exact file); publishing waited for a checkpoint cosigned by \
         the witnesses and checked every proof as a client will",
    );
    ok(format!(
        "proof bundles published beside the metadata, served by any mirror: {}",
        bundles.join(", ")
    ));
    ok(format!(
        "published with consistent snapshots: {}.root.json, targets, {}.snapshot.json, timestamp.json (v{})",
        report.root_version, report.snapshot_version, report.timestamp_version
    ));
    let verify = airlock_repo::verify_published(&published, chrono::Utc::now());
    if !verify.ok {
        bail!("the published tree does not verify: {:?}", verify.problems);
    }
    ok("`airlock repo verify`: every signature, threshold, hash and length checks out");

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
    let root_v1 = std::fs::read(metadata_dir.join("1.root.json"))?;
    Updater::init(&md_dir, &root_v1)?;
    ok("trusts root v1, shipped with the application (out of band)");
    // The mirror's CA and the log's (tiles are read from the log when checkpoints differ).
    let mut trusted_cas = ca.cert_pem().as_bytes().to_vec();
    trusted_cas.extend_from_slice(&transparency.ca_pem);
    let fetcher = Arc::new(Fetcher::new(FetcherConfig {
        trust: Trust::CaBundlePem(trusted_cas),
        ..FetcherConfig::default()
    })?);
    let new_updater = |fetcher: Arc<Fetcher>, base: &str| -> Result<Updater> {
        let config = UpdaterConfig::new(&md_dir, format!("{base}/metadata/"), fetcher)
            .with_targets_base_url(format!("{base}/targets/"));
        Ok(Updater::new(config)?)
    };
    let mut updater = new_updater(fetcher.clone(), &server.base_url())?;
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
    let note = updater.trusted_checkpoint().context(
        "the updater trusts no checkpoint after a refresh under a policy: this is a bug",
    )?;
    let size = note
        .lines()
        .nth(1)
        .and_then(|l| l.parse::<u64>().ok())
        .context("the trusted checkpoint has no size line")?;
    ok(format!(
        "targets v{}: {}.targets.json.tlog-proof verified offline (no request to the log or \
         witnesses): the log's signature, all {n_witnesses} cosignature(s), and a Merkle proof \
         that the statement for exactly these bytes is in the tree of size {size}",
        summary.targets_version, summary.targets_version
    ));
    ok(format!(
        "checkpoint of size {size} remembered in {}: a later one must be proven consistent with it",
        md_dir.join("tlog-state").display()
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

    // 6. Attacks from the mirror.
    step(6, "Attacks from the mirror: each must be refused");
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
    let ts_path = metadata_dir.join("timestamp.json");
    let genuine_ts = std::fs::read(&ts_path)?;
    let mut forged: serde_json::Value = serde_json::from_slice(&genuine_ts)?;
    forged["signed"]["version"] = serde_json::json!(7);
    std::fs::write(&ts_path, serde_json::to_vec(&forged)?)?;
    let mut second = new_updater(fetcher.clone(), &server.base_url())?;
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

    // 7. A targeted release signed with stolen keys.
    step(
        7,
        "A targeted release signed with stolen keys: refused because it is not in the public log",
    );
    let attacker = root_dir.join("attacker-mirror");
    copy_tree(
        &std::fs::canonicalize(&metadata_dir)?,
        &attacker.join("metadata"),
    )?;
    copy_tree(&published.join("targets"), &attacker.join("targets"))?;
    let evil: Vec<u8> = b"#!/bin/sh\n# backdoor\n".repeat(64);
    let evil_target = "app/app-1.0.1.tar.gz";
    forge_release(&repo, &passphrase, &attacker, evil_target, &evil)?;
    // The forgery passes every TUF check on its own: only the log check can stop it.
    let read = |name: &str| std::fs::read(attacker.join("metadata").join(name));
    let mut tuf_only = TrustedSet::new(&root_v1, chrono::Utc::now())?;
    tuf_only.update_timestamp(&read("timestamp.json")?)?;
    tuf_only.update_snapshot(&read("2.snapshot.json")?)?;
    tuf_only.update_targets(&read("2.targets.json")?)?;
    ok(format!(
        "attacker with the targets, snapshot and timestamp keys signs targets v2 listing a \
         trojan {evil_target}, and serves it from a mirror to one user only: it passes every \
         TUF check (signatures, thresholds, versions, hashes; checked here without the log)"
    ));
    let evil_server = ServerHandle::https(static_dir_router(&attacker), &identity)?;
    let targets_before = std::fs::read(md_dir.join("targets.json"))?;
    let mut victim = new_updater(fetcher.clone(), &evil_server.base_url())?;
    match victim.refresh() {
        Ok(_) => bail!("a release missing from the log was accepted: this is a bug"),
        Err(e) => refused(format!(
            "targeted release: {}",
            airlock_core::error_chain(&e)
        )),
    }
    if std::fs::read(md_dir.join("targets.json"))? != targets_before {
        bail!("a refused targets file changed the client's trusted metadata: this is a bug");
    }
    ok(
        "to be accepted it would have to be in the public log, where the vendor's monitor \
         (`airlock log monitor`) and every witness see it: no secret, targeted update",
    );
    drop(evil_server);

    // 8. The update agent installs; a failing release is rolled back.
    step(
        8,
        "The update agent installs the release; a release that fails its health check is rolled back",
    );
    let agent_dir = root_dir.join("agent");
    std::fs::create_dir_all(&agent_dir)?;
    let ca_file = agent_dir.join("ca.pem");
    let mut cas = ca.cert_pem().as_bytes().to_vec();
    cas.extend_from_slice(&transparency.ca_pem);
    std::fs::write(&ca_file, &cas)?;
    let install_root = agent_dir.join("install");
    let socket = agent_dir.join("agent.sock");
    let config_path = agent_dir.join("agent.toml");
    let config_text = format!(
        r#"[agent]
state_dir = "{state}"
socket = "{socket}"
machine_id = "0123456789abcdef0123456789abcdef"

[apps.app]
target = "app/app-{{version}}.tar.gz"
install_root = "{install}"

[apps.app.repository]
metadata_url = "{base}/metadata/"
targets_url = "{base}/targets/"
trusted_root = "{root}"
ca_file = "{ca}"

[apps.app.schedule]
trigger_min_interval = "1s"

[apps.app.install]
format = "file"

[apps.app.install.health]
command = ["sh", "-c", "! grep -rq BROKEN {install}/current/"]
timeout = "10s"
"#,
        state = agent_dir.join("state").display(),
        socket = socket.display(),
        install = install_root.display(),
        base = server.base_url(),
        root = metadata_dir.join("1.root.json").display(),
        ca = ca_file.display(),
    );
    std::fs::write(&config_path, &config_text)?;
    let agent_config = AgentConfig::parse(&config_path, &config_text)?;
    let agent = AgentHandle::start(agent_config, Arc::new(Engine))?;
    ok(format!(
        "agent started (its own state and install directory; as a service it runs as its own \
         user, and the application may only ask it to check, over {})",
        socket.display()
    ));
    let ask = |line: &str| -> Result<serde_json::Value> {
        Ok(agent_request(&socket, line, Duration::from_secs(120))?)
    };
    let answer = ask("check-now app")?;
    if answer["ok"] != true {
        bail!("the agent's check failed: {answer}");
    }
    let current = std::fs::canonicalize(install_root.join("current"))?;
    ok(format!(
        "checked through the same updater (TUF + log proofs), installed 1.0.0 into {} and \
         switched `current` to it with one rename; health check passed",
        current.display()
    ));

    // The vendor publishes 1.0.1, which is broken: its health check fails.
    let broken = root_dir.join("app-1.0.1.tar.gz");
    std::fs::write(&broken, b"BROKEN build\n".repeat(100))?;
    repo.add_targets(
        &[AddSource {
            path: broken,
            target: TargetName::Exact("app/app-1.0.1.tar.gz".into()),
        }],
        &AddOptions::default(),
        &|_, _| {},
    )?;
    repo.publish_logged(TargetFiles::Copy, Some(&release_log), &|_, _| {})?;
    ok("vendor publishes 1.0.1 (logged and witnessed like 1.0.0), which fails its health check");
    std::thread::sleep(Duration::from_millis(1100));
    let trigger = ask("check app")?;
    ok(format!(
        "the application asks for a check (the one thing it may do): {}",
        trigger["apps"]["app"].as_str().unwrap_or("sent")
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        let status = ask("status app")?;
        let bad = status["apps"]["app"]["bad_versions"]
            .as_array()
            .is_some_and(|b| b.iter().any(|v| v == "1.0.1"));
        if bad {
            break status;
        }
        if std::time::Instant::now() > deadline {
            bail!("the agent did not finish the check of 1.0.1: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if std::fs::canonicalize(install_root.join("current"))? != current {
        bail!("the failed release was left in place: this is a bug");
    }
    refused(format!(
        "1.0.1: {}",
        status["apps"]["app"]["last_check"]["result"]
            .as_str()
            .unwrap_or("health check failed")
    ));
    ok("`current` is back on 1.0.0; 1.0.1 is marked bad and never installed again on its own");
    drop(agent);

    // 9. Independent rebuilders confirm the bytes; an unconfirmed release is refused.
    step(
        9,
        "Reproducible: two independent rebuilders rebuild from source; an unconfirmed release is refused",
    );
    rebuild_step(RebuildDemo {
        root_dir: &root_dir,
        repo: &mut repo,
        release_log: &release_log,
        identity: &identity,
        fetcher: &fetcher,
        new_updater: &new_updater,
        mirror: &server.base_url(),
        transparency: &transparency,
        policy: &policy,
    })?;

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
                   all three attacks refused; the agent installed it and rolled back a release \
                   that failed its health check; two rebuilders confirmed a release from source \
                   and a release built with a backdoor was refused";
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

/// The attacker's release in `mirror` (a copy of the published metadata and targets): targets
/// v+1 listing `target`, a new snapshot and timestamp, each signed with the repository's own
/// online and targets keys, as stolen keys would sign them. No log is involved.
fn forge_release(
    repo: &Repository,
    passphrase: &PassphraseSource,
    mirror: &Path,
    target: &str,
    bytes: &[u8],
) -> Result<()> {
    let md = mirror.join("metadata");
    let root = &repo.root().signed;
    let sign = |role: &str, mut doc: serde_json::Value, file: &str| -> Result<Vec<u8>> {
        doc["signatures"] = json!([]);
        let mut out = serde_json::to_vec(&doc)?;
        let keyids = root
            .roles
            .get(role)
            .map(|r| r.keyids.clone())
            .unwrap_or_default();
        for keyid in keyids {
            let Some(private) = repo.config().key(&keyid).and_then(|k| k.private.clone()) else {
                continue;
            };
            let key = airlock_keystore::read_private_key(&repo.path().join(private), passphrase)?;
            out = airlock_repo::sign_metadata(&out, &key, file)?.0;
        }
        Ok(out)
    };
    let read = |name: &str| -> Result<serde_json::Value> {
        Ok(serde_json::from_slice(&std::fs::read(md.join(name))?)?)
    };
    let meta_for = |version: u64, bytes: &[u8]| {
        json!({"version": version, "length": bytes.len(),
               "hashes": {"sha256": hex::encode(Sha256::digest(bytes))}})
    };
    let timestamp = read("timestamp.json")?;
    let snapshot_version = timestamp["signed"]["meta"]["snapshot.json"]["version"]
        .as_u64()
        .context("timestamp lists no snapshot version")?;
    let snapshot = read(&format!("{snapshot_version}.snapshot.json"))?;
    let targets_version = snapshot["signed"]["meta"]["targets.json"]["version"]
        .as_u64()
        .context("snapshot lists no targets version")?;
    let mut targets = read(&format!("{targets_version}.targets.json"))?;

    let sha256 = hex::encode(Sha256::digest(bytes));
    let stored = mirror
        .join("targets")
        .join(hashed_target_path(target, &sha256));
    if let Some(dir) = stored.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&stored, bytes)?;
    targets["signed"]["version"] = json!(targets_version + 1);
    targets["signed"]["targets"][target] =
        json!({"length": bytes.len(), "hashes": {"sha256": sha256}});
    let name = format!("{}.targets.json", targets_version + 1);
    let targets_bytes = sign("targets", targets, &name)?;
    std::fs::write(md.join(&name), &targets_bytes)?;

    let mut snapshot = snapshot;
    snapshot["signed"]["version"] = json!(snapshot_version + 1);
    snapshot["signed"]["meta"]["targets.json"] = meta_for(targets_version + 1, &targets_bytes);
    let name = format!("{}.snapshot.json", snapshot_version + 1);
    let snapshot_bytes = sign("snapshot", snapshot, &name)?;
    std::fs::write(md.join(&name), &snapshot_bytes)?;

    let mut timestamp = timestamp;
    let ts_version = timestamp["signed"]["version"].as_u64().unwrap_or(0);
    timestamp["signed"]["version"] = json!(ts_version + 1);
    timestamp["signed"]["meta"]["snapshot.json"] = meta_for(snapshot_version + 1, &snapshot_bytes);
    let timestamp_bytes = sign("timestamp", timestamp, "timestamp.json")?;
    std::fs::write(md.join("timestamp.json"), timestamp_bytes)?;
    Ok(())
}

/// What step 9 needs from the run.
struct RebuildDemo<'a> {
    root_dir: &'a Path,
    repo: &'a mut Repository,
    release_log: &'a ConfiguredLog,
    identity: &'a airlock_serve::ServerIdentity,
    fetcher: &'a Arc<Fetcher>,
    new_updater: &'a dyn Fn(Arc<Fetcher>, &str) -> Result<Updater>,
    mirror: &'a str,
    transparency: &'a LocalTransparency,
    policy: &'a TransparencyPolicy,
}

/// The recipe's build script: a tar of `src/` that is the same wherever and whenever it runs
/// (names sorted, times from SOURCE_DATE_EPOCH, no owners, normalised modes).
const BUILD_SCRIPT: &str = "set -eu\nmkdir -p out\ntar --sort=name --mtime=\"@$SOURCE_DATE_EPOCH\" \
--owner=0 --group=0 --numeric-owner --mode=u=rwX,go=rX -cf out/app.tar src\n";

/// Step 9: the vendor publishes source and recipe with each release and a root requiring two
/// rebuilders; both rebuild 2.0.0 in bubblewrap, attest, and the client installs it; 2.0.1,
/// built on a compromised machine, does not rebuild, so nobody attests and the client refuses.
fn rebuild_step(d: RebuildDemo<'_>) -> Result<()> {
    use airlock_core::crypto::{PrivateKey, Signer};
    use airlock_core::rebuild::{Builder, RebuildInfo, RebuilderPolicy, Recipe, SourceRef};

    let dir = d.root_dir.join("rebuild");
    let sources = dir.join("sources");
    std::fs::create_dir_all(&sources)?;
    let source_server = ServerHandle::https(static_dir_router(&sources), d.identity)?;
    // The vendor's source release and its own build of it; `inject` is what a compromised
    // build machine slips into the build (the source release stays clean).
    let vendor_release = |version: &str, inject: &str| -> Result<(PathBuf, RebuildInfo)> {
        let name = format!("app-{version}");
        let tree = dir.join("vendor-src").join(&name);
        std::fs::create_dir_all(tree.join("src"))?;
        std::fs::write(tree.join("build.sh"), BUILD_SCRIPT)?;
        std::fs::write(tree.join("src/app.txt"), format!("app {version}\n"))?;
        let tarball = sources.join(format!("{name}-src.tar"));
        run_host(
            std::process::Command::new("tar")
                .args(["--sort=name", "--mtime=@0", "--owner=0", "--group=0"])
                .args(["--numeric-owner", "-cf"])
                .arg(&tarball)
                .arg("-C")
                .arg(tree.parent().unwrap_or(&dir))
                .arg(&name),
            "packing the source release",
        )?;
        let sha256 = hex::encode(Sha256::digest(std::fs::read(&tarball)?));
        let build = dir.join("vendor-build").join(&name);
        copy_tree(&tree, &build)?;
        if !inject.is_empty() {
            let app = build.join("src/app.txt");
            let mut text = std::fs::read_to_string(&app)?;
            text.push_str(inject);
            std::fs::write(&app, text)?;
        }
        run_host(
            std::process::Command::new("/bin/sh")
                .arg("build.sh")
                .current_dir(&build)
                .env("SOURCE_DATE_EPOCH", "1700000000"),
            "the vendor's build",
        )?;
        let info = RebuildInfo {
            source: SourceRef::Tarball {
                url: format!("{}/{name}-src.tar", source_server.base_url()),
                sha256,
            },
            recipe: Recipe {
                command: "sh build.sh".into(),
                builder: Builder::Toolchain("debian-13".into()),
                env: [("SOURCE_DATE_EPOCH".to_string(), "1700000000".to_string())].into(),
                artifact: "out/app.tar".into(),
            },
        };
        Ok((build.join("out/app.tar"), info))
    };
    let publish = |repo: &mut Repository, version: &str, file: PathBuf, info: RebuildInfo| {
        repo.add_targets(
            &[AddSource {
                path: file,
                target: TargetName::Exact(format!("app/app-{version}.tar")),
            }],
            &AddOptions {
                custom: TargetCustom {
                    version: Some(version.into()),
                    rebuild: Some(info),
                    ..TargetCustom::default()
                },
                ..AddOptions::default()
            },
            &|_, _| {},
        )
        .and_then(|_| repo.publish_logged(TargetFiles::Copy, Some(d.release_log), &|_, _| {}))
    };

    // Two rebuilders, each with its own key (one of them post-quantum hybrid).
    let rebuilders = [
        (
            "rebuilder-a.example",
            PrivateKey::generate(KeyScheme::Ed25519)?,
        ),
        (
            "rebuilder-b.example",
            PrivateKey::generate(KeyScheme::HybridEd25519SlhDsa)?,
        ),
    ];
    let keys: Vec<_> = rebuilders
        .iter()
        .map(|(_, k)| k.public_key().clone())
        .collect();
    let policy = RebuilderPolicy::new(2, keys.clone())?;
    d.repo.set_rebuilders(Some(&policy))?;
    let (file, info) = vendor_release("2.0.0", "")?;
    publish(&mut *d.repo, "2.0.0", file, info)?;
    ok(format!(
        "root now requires 2 of 2 rebuilders ({}): a new root version, signed by 2 of the 3 root \
         keys and logged; each release carries its source (tarball + SHA-256) and recipe \
         (`sh build.sh`, SOURCE_DATE_EPOCH) in its signed metadata",
        airlock_core::rebuild::policy::EXTENSION_FIELD
    ));
    ok("vendor publishes 2.0.0, built on its own build machine");

    let sandbox = match airlock_rebuild::Sandbox::bubblewrap(Path::new("bwrap")) {
        Ok(s) => s,
        Err(e) => {
            ok(format!(
                "bubblewrap is not usable here ({}): the rebuilds below run without a sandbox, \
                 and their attestations say so (`airlock rebuild` itself refuses unless asked)",
                airlock_core::error_chain(&e)
            ));
            airlock_rebuild::Sandbox::unsandboxed()
        }
    };
    let root_v1 = std::fs::read(d.repo.published_path().join("metadata").join("1.root.json"))?;
    // One rebuild by one rebuilder, through its own verified client of the mirror.
    let rebuild = |n: usize, version: &str| -> Result<airlock_rebuild::Outcome> {
        let (id, key) = &rebuilders[n];
        let home = dir.join(id);
        let md = home.join("metadata");
        if !md.join("root.json").exists() {
            Updater::init(&md, &root_v1)?;
        }
        let mut cfg = UpdaterConfig::new(&md, format!("{}/metadata/", d.mirror), d.fetcher.clone())
            .with_targets_base_url(format!("{}/targets/", d.mirror));
        cfg.require_rebuilds = false;
        let mut updater = Updater::new(cfg)?;
        updater.refresh()?;
        let target = format!("app/app-{version}.tar");
        let info = updater
            .get_target_info(&target)?
            .with_context(|| format!("{target} is not listed"))?;
        let job = airlock_rebuild::Job {
            target: target.clone(),
            sha256: info.file.hashes.get("sha256").cloned().unwrap_or_default(),
            length: info.file.length,
            rebuild: RebuildInfo::from_custom(info.file.custom.as_deref())?
                .with_context(|| format!("{target} has no recipe"))?,
        };
        let work = home.join(format!("build-{version}"));
        std::fs::create_dir_all(&work)?;
        let published = work.join(airlock_rebuild::PUBLISHED_FILE);
        updater.download_target(&info, &published)?;
        let outcome = airlock_rebuild::rebuild(
            &job,
            &published,
            &work,
            &sandbox,
            &airlock_rebuild::source::SourceFetcher {
                fetcher: Some(d.fetcher.clone()),
            },
        )?;
        if let airlock_rebuild::Outcome::Match { rebuilt } = &outcome {
            airlock_rebuild::attest(&job, rebuilt, &sandbox, id, key, &work)?;
        }
        Ok(outcome)
    };
    let mut attestations = Vec::new();
    for (n, (id, key)) in rebuilders.iter().enumerate() {
        match rebuild(n, "2.0.0")? {
            airlock_rebuild::Outcome::Match { rebuilt } => {
                let path = dir
                    .join(id)
                    .join("build-2.0.0")
                    .join(airlock_rebuild::ATTESTATION_FILE);
                ok(format!(
                    "{id}: fetched the source, checked its SHA-256, built it in {} (no network, \
                     fresh root and home, fixed time), got sha256 {}…, the published bytes: \
                     signed an in-toto attestation (DSSE, {} key) and logged it (witnessed, \
                     proof verified)",
                    sandbox.describe(),
                    &rebuilt.sha256[..16],
                    key.scheme()
                ));
                // Logged with the rebuilder's own submitter key: a client counts an
                // attestation only with its proof, as it does a release.
                let log = super::rebuild::AttestationLog {
                    policy: d.policy.clone(),
                    log: ConfiguredLog::new(vec![LogClient::new(
                        &d.transparency.log_url(),
                        d.transparency.client.clone(),
                        NoteSigner::from_skey(&d.transparency.other_submitters[n].to_skey())?,
                        Duration::from_secs(60),
                    )]),
                };
                let envelope = std::fs::read(&path)?;
                let parsed = airlock_core::rebuild::Envelope::parse(&envelope)?;
                let proof = super::rebuild::log_attestation(&log, &path, &parsed, &rebuilt.sha256)?;
                attestations.push(airlock_rebuild::publish::AttestationFile {
                    file: path.clone(),
                    envelope,
                    proof: Some(std::fs::read(&proof)?),
                });
            }
            airlock_rebuild::Outcome::Mismatch { headline, .. } => {
                bail!("{id}: 2.0.0 did not rebuild to the published bytes ({headline}): a bug");
            }
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |x| x.as_secs());
    let placed = airlock_rebuild::publish::publish_attestations(
        &d.repo.published_path(),
        &attestations,
        &keys,
        Some(d.policy),
        now,
    )?;
    ok(format!(
        "attestations and their log proofs published beside the repository (static files, \
         served by any mirror): {}",
        placed
            .iter()
            .map(|p| p
                .path
                .strip_prefix(d.repo.published_path())
                .unwrap_or(&p.path)
                .display()
                .to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let mut updater = (d.new_updater)(d.fetcher.clone(), d.mirror)?;
    updater.refresh()?;
    let client_dir = d.root_dir.join("client").join("downloads");
    let dest = Updater::local_target_path(&client_dir, "app/app-2.0.0.tar");
    let (info, _) = updater.fetch_target("app/app-2.0.0.tar", &dest, &mut |_, _| {})?;
    let confirmed = updater.rebuild_report(&info).into_result()?;
    ok(format!(
        "client: app/app-2.0.0.tar confirmed by {} of the 2 required rebuilders ({}), each \
         signature checked against the root's rebuilder keys, for exactly its SHA-256 and \
         length, each attestation's log proof verified offline; downloaded and verified",
        confirmed.len(),
        confirmed
            .iter()
            .map(|c| c.rebuilder.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));

    // 2.0.1: the vendor's build machine is compromised; the source release is clean.
    let (file, info) = vendor_release("2.0.1", "backdoor: send secrets to the attacker\n")?;
    publish(&mut *d.repo, "2.0.1", file, info)?;
    ok(
        "vendor publishes 2.0.1, built on a compromised build machine that added a backdoor (the \
        source release is clean); signed and logged as usual",
    );
    match rebuild(0, "2.0.1")? {
        airlock_rebuild::Outcome::Mismatch {
            headline, report, ..
        } => {
            refused(format!(
                "{}: rebuilt from source, the bytes differ: {headline}; nothing signed; report: {}",
                rebuilders[0].0,
                report.display()
            ));
            // What a person reads: airlock diff's account, the backdoor in plain sight.
            let diff = std::fs::read_to_string(
                dir.join(rebuilders[0].0)
                    .join("build-2.0.1")
                    .join(airlock_rebuild::MISMATCH_DIFF),
            )?;
            if let Some(at) = diff.find("Content differences:") {
                let lines: Vec<String> = diff[at..]
                    .trim_end()
                    .lines()
                    .map(|l| format!("       {l}"))
                    .collect();
                ok(format!(
                    "what differs (`airlock diff`; a = published, b = rebuilt from source):\n{}",
                    lines.join("\n")
                ));
            }
        }
        airlock_rebuild::Outcome::Match { .. } => {
            bail!("a release built with a backdoor rebuilt from clean source: a bug")
        }
    }
    let mut updater = (d.new_updater)(d.fetcher.clone(), d.mirror)?;
    updater.refresh()?;
    let info = updater
        .get_target_info("app/app-2.0.1.tar")?
        .context("app/app-2.0.1.tar is not listed")?;
    let dest = Updater::local_target_path(&client_dir, "app/app-2.0.1.tar");
    match updater.download_target(&info, &dest) {
        Ok(()) => bail!("a release no rebuilder confirmed was downloaded: this is a bug"),
        Err(e) => refused(format!(
            "client: app/app-2.0.1.tar: {}",
            airlock_core::error_chain(&e)
        )),
    }
    if dest.exists() {
        bail!("a refused release left a file behind: this is a bug");
    }
    ok(
        "refused before a byte of it was fetched; it is in the log for everyone to see, and no \
        independent rebuilder will vouch for it",
    );
    drop(source_server);
    Ok(())
}

/// Run a host command of the vendor's, failing with its output.
fn run_host(cmd: &mut std::process::Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: running {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
