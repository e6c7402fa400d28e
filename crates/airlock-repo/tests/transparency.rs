//! Publishing with binary transparency, through a real log and real witnesses on 127.0.0.1
//! (airlock-testbed): every new root and targets-role version is logged, its proof bundle is
//! verified and published beside it, and a log or quorum out of reach leaves the published tree
//! exactly as it was.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use airlock_core::crypto::KeyScheme;
use airlock_core::tlog::{CosignatureSigner, VerifierState};
use airlock_core::transparency::{ReleaseCheck, ReleaseStep, TransparencyPolicy};
use airlock_core::tuf::metadata::Metadata;
use airlock_core::tuf::roles::{Root, Targets};
use airlock_fetch::{Fetcher, FetcherConfig, Trust};
use airlock_log::client::LogClient;
use airlock_repo::*;
use airlock_testbed::LocalTransparency;

fn no_progress() -> impl Fn(u64, u64) + Sync {
    |_, _| {}
}

/// The publisher's side of a testbed log, as the CLI wires it.
struct Log(LogClient);

impl ReleaseLog for Log {
    fn log(
        &self,
        policy: &TransparencyPolicy,
        statements: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, ReleaseLogError> {
        Ok(self.0.log_entries(policy.log_origin(), statements)?)
    }
    fn describe(&self, policy: &TransparencyPolicy) -> String {
        format!("log {} at {}", policy.log_origin(), self.0.url())
    }
}

/// A client that logs something else than it was asked to: the log's proofs are real, for
/// other bytes.
struct Lying(LogClient);

impl ReleaseLog for Lying {
    fn log(
        &self,
        policy: &TransparencyPolicy,
        statements: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, ReleaseLogError> {
        let other: Vec<Vec<u8>> = statements
            .iter()
            .map(|s| {
                String::from_utf8_lossy(s)
                    .replace("version ", "version 9")
                    .into_bytes()
            })
            .collect();
        Ok(self.0.log_entries(policy.log_origin(), &other)?)
    }
}

fn client(net: &LocalTransparency, url: &str, timeout: Duration) -> LogClient {
    let fetcher = Fetcher::new(FetcherConfig {
        trust: Trust::CaBundlePem(net.ca_pem.clone()),
        retries: 0,
        connect_timeout: Duration::from_secs(2),
        ..FetcherConfig::default()
    })
    .unwrap();
    let signer = airlock_core::tlog::NoteSigner::from_skey(&net.publisher.to_skey()).unwrap();
    LogClient::new(url, Arc::new(fetcher), signer, timeout)
}

fn log_of(net: &LocalTransparency) -> Log {
    Log(client(net, &net.log_url(), Duration::from_secs(30)))
}

/// A policy naming the testbed's log and requiring every one of its witnesses.
fn policy_for(net: &LocalTransparency, repository: &str) -> TransparencyPolicy {
    let mut text = format!("log {} {}\n", net.log_verifier().to_vkey(), net.log_url());
    let mut names = Vec::new();
    for (i, w) in net.witness_verifiers().iter().enumerate() {
        text.push_str(&format!("witness w{i} {}\n", w.to_vkey()));
        names.push(format!("w{i}"));
    }
    text.push_str(&format!("group all all {}\nquorum all\n", names.join(" ")));
    TransparencyPolicy::new(repository, &text).unwrap()
}

fn init(dir: &Path, root_keys: usize, root_threshold: u64) -> Repository {
    let mut opts = InitOptions::simple(Protection::PlaintextForTests);
    opts.root = RoleKeySpec::new(KeyScheme::Ed25519, root_keys, root_threshold);
    Repository::init(dir, &opts).expect("init")
}

fn add(repo: &mut Repository, src: &Path, name: &str, content: &str) {
    let p = src.join(name);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
    repo.add_targets(
        &[AddSource {
            path: p,
            target: TargetName::Exact(name.into()),
        }],
        &AddOptions::default(),
        &no_progress(),
    )
    .expect("add");
}

fn metadata_dir(repo: &Repository) -> PathBuf {
    repo.published_path().join("metadata")
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Every file and symlink under `dir` with its contents.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(dir).unwrap().to_path_buf();
        if e.path_is_symlink() {
            out.insert(
                rel,
                fs::read_link(e.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
                    .into_bytes(),
            );
        } else if e.file_type().is_file() {
            out.insert(rel, fs::read(e.path()).unwrap());
        }
    }
    out
}

/// Verify the bundle published beside `file` as a client with no log history would.
fn check_bundle(dir: &Path, file: &str, policy: &TransparencyPolicy) {
    let bytes = fs::read(dir.join(file)).unwrap();
    let bundle = fs::read(dir.join(format!("{file}.tlog-proof")))
        .unwrap_or_else(|e| panic!("no bundle beside {file}: {e}"));
    let (role, version) = role_and_version(file, &bytes);
    let check = ReleaseCheck::new(policy, &role, version, &bytes);
    match check.verify(&VerifierState::new(), Some(&bundle), None, now()) {
        Ok(ReleaseStep::Accepted(_)) => {}
        other => panic!("{file}: {other:?}"),
    }
}

fn role_and_version(file: &str, bytes: &[u8]) -> (String, u64) {
    let (v, rest) = file.split_once('.').unwrap();
    let role = rest.strip_suffix(".json").unwrap().to_string();
    let version = v.parse().unwrap();
    if role == "root" {
        assert_eq!(
            Metadata::<Root>::from_bytes(bytes).unwrap().signed.version,
            version
        );
    } else {
        assert_eq!(
            Metadata::<Targets>::from_bytes(bytes)
                .unwrap()
                .signed
                .version,
            version
        );
    }
    (role, version)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn publish_logs_every_new_root_and_targets_version_and_ships_its_bundle() {
    let net = LocalTransparency::start(2).unwrap();
    let policy = policy_for(&net, "example.com/app");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let mut repo = init(&tmp.path().join("repo"), 1, 1);
    repo.set_transparency(Some(&policy)).unwrap();
    assert_eq!(repo.root().signed.version, 1, "nothing published yet");
    repo.delegate_bins(
        &BinDelegation {
            from: "targets".into(),
            bins: 4,
            name_prefix: "bin".into(),
            keys: KeySource::Generate {
                scheme: KeyScheme::Ed25519,
                count: 1,
            },
            threshold: 1,
        },
        true,
    )
    .unwrap();
    add(&mut repo, &src, "app/a.txt", "a");

    // Without a log, a root with a policy cannot be published.
    let err = repo.publish(&no_progress()).unwrap_err();
    assert!(matches!(err, RepoError::NoReleaseLog { .. }), "{err}");
    assert!(!metadata_dir(&repo).exists());

    let log = log_of(&net);
    let report = repo
        .publish_logged(TargetFiles::Copy, Some(&log), &no_progress())
        .unwrap();
    let dir = metadata_dir(&repo);
    let files = names(&dir);
    let mut logged = vec!["1.root.json".to_string()];
    logged.extend(report.roles_written.iter().map(|r| {
        let v = repo.targets_role(r).unwrap().signed.version;
        format!("{v}.{r}.json")
    }));
    assert_eq!(
        logged.len(),
        1 + 1 + 4,
        "root, targets and 4 bins: {logged:?}"
    );
    for f in &logged {
        check_bundle(&dir, f, &policy);
    }
    // Snapshot and timestamp are not logged.
    assert!(
        !files
            .iter()
            .any(|f| f.contains("snapshot.json.tlog") || f.contains("timestamp.json.tlog"))
    );
    assert!(!files.contains(&"root.json.tlog-proof".to_string()));

    // A second release: only the changed bin is logged again; the others keep their bundle.
    let before: BTreeMap<String, Vec<u8>> = files
        .iter()
        .filter(|f| f.ends_with(".tlog-proof"))
        .map(|f| (f.clone(), fs::read(dir.join(f)).unwrap()))
        .collect();
    add(&mut repo, &src, "app/b.txt", "b");
    let report = repo
        .publish_logged(TargetFiles::Copy, Some(&log), &no_progress())
        .unwrap();
    assert_eq!(report.roles_written.len(), 1, "{:?}", report.roles_written);
    let dir = metadata_dir(&repo);
    let bin = &report.roles_written[0];
    let v = repo.targets_role(bin).unwrap().signed.version;
    check_bundle(&dir, &format!("{v}.{bin}.json"), &policy);
    for (f, bytes) in &before {
        assert_eq!(&fs::read(dir.join(f)).unwrap(), bytes, "{f} kept unchanged");
    }
    for role in repo.targets_roles().map(str::to_string).collect::<Vec<_>>() {
        let v = repo.targets_role(&role).unwrap().signed.version;
        check_bundle(&dir, &format!("{v}.{role}.json"), &policy);
    }

    // gc keeps the bundles of what it keeps and removes those of what it removes.
    let old = format!("{}.{bin}.json.tlog-proof", v - 1);
    assert!(dir.join(&old).exists());
    repo.gc(Some(1)).unwrap();
    let dir = metadata_dir(&repo);
    assert!(!dir.join(&old).exists(), "{old} outlived its metadata");
    assert!(!dir.join(old.trim_end_matches(".tlog-proof")).exists());
    for f in names(&dir).iter().filter(|f| f.ends_with(".tlog-proof")) {
        assert!(
            dir.join(f.trim_end_matches(".tlog-proof")).exists(),
            "{f} without metadata"
        );
    }
    check_bundle(&dir, &format!("{v}.{bin}.json"), &policy);
    check_bundle(&dir, "1.root.json", &policy);

    // refresh writes no new root or targets version: nothing to log, bundles carried over.
    let report = repo.refresh(true).unwrap();
    let dir = metadata_dir(&repo);
    assert!(report.roles_written.is_empty());
    check_bundle(&dir, &format!("{v}.{bin}.json"), &policy);
    check_bundle(&dir, "1.root.json", &policy);
}

#[test]
fn log_down_quorum_short_or_other_bytes_leave_the_published_tree_untouched() {
    let net = LocalTransparency::start(1).unwrap();
    let policy = policy_for(&net, "example.com/app");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let mut repo = init(&tmp.path().join("repo"), 1, 1);
    repo.set_transparency(Some(&policy)).unwrap();
    add(&mut repo, &src, "a.txt", "a");
    repo.publish_logged(TargetFiles::Copy, Some(&log_of(&net)), &no_progress())
        .unwrap();
    add(&mut repo, &src, "b.txt", "b");
    let published = repo.published_path();
    let before = tree(&published);

    // The log is down: the error names its URL.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("https://{}", l.local_addr().unwrap())
    };
    let down = Log(client(&net, &dead, Duration::from_secs(2)));
    let err = repo
        .publish_logged(TargetFiles::Copy, Some(&down), &no_progress())
        .unwrap_err();
    let chain = error_chain(&err);
    assert!(matches!(err, RepoError::ReleaseLog { .. }), "{chain}");
    assert!(chain.contains(&dead), "{chain}");
    assert_eq!(tree(&published), before, "log down: published tree changed");

    // A log that proves other bytes.
    let lying = Lying(client(&net, &net.log_url(), Duration::from_secs(30)));
    let err = repo
        .publish_logged(TargetFiles::Copy, Some(&lying), &no_progress())
        .unwrap_err();
    let chain = error_chain(&err);
    assert!(matches!(err, RepoError::ReleaseProof { .. }), "{chain}");
    assert!(chain.contains("targets.json.tlog-proof"), "{chain}");
    assert_eq!(
        tree(&published),
        before,
        "other bytes: published tree changed"
    );
    drop(repo);

    // A policy whose quorum needs a witness the log does not have: the log's checkpoint is
    // below the quorum, so the first publish fails and nothing is published at all.
    let stranger = CosignatureSigner::generate("airlock.test/stranger").unwrap();
    let text = format!(
        "{}witness stranger {}\ngroup q all w0 stranger\nquorum q\n",
        policy
            .policy_text()
            .lines()
            .filter(|l| !l.starts_with("quorum") && !l.starts_with("group"))
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
        stranger.verifier().to_vkey()
    );
    let short = TransparencyPolicy::new("example.com/app", &text).unwrap();
    let mut repo2 = init(&tmp.path().join("repo2"), 1, 1);
    repo2.set_transparency(Some(&short)).unwrap();
    add(&mut repo2, &src, "c.txt", "c");
    let err = repo2
        .publish_logged(TargetFiles::Copy, Some(&log_of(&net)), &no_progress())
        .unwrap_err();
    let chain = error_chain(&err);
    assert!(matches!(err, RepoError::ReleaseProof { .. }), "{chain}");
    assert!(chain.to_lowercase().contains("quorum"), "{chain}");
    assert!(!repo2.published_path().join("metadata").exists());
    assert_eq!(
        names(&repo2.published_path().join("targets")),
        Vec::<String>::new()
    );
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[test]
fn rotation_switches_transparency_on_changes_the_log_and_removes_it_only_with_the_threshold() {
    let net_a = LocalTransparency::start(1).unwrap();
    let net_b = LocalTransparency::start(2).unwrap();
    let policy_a = policy_for(&net_a, "example.com/app");
    let policy_b = policy_for(&net_b, "example.com/app");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let repo_dir = tmp.path().join("repo");
    let mut repo = init(&repo_dir, 2, 2);
    add(&mut repo, &src, "a.txt", "a");
    repo.publish(&no_progress()).unwrap();

    // On: root 2 is logged under its own policy (root 1 had none), and targets v1, unchanged,
    // is logged too, since clients holding root 2 check it.
    repo.set_transparency(Some(&policy_a)).unwrap();
    let err = repo.publish(&no_progress()).unwrap_err();
    assert!(matches!(err, RepoError::NoReleaseLog { .. }), "{err}");
    repo.publish_logged(TargetFiles::Copy, Some(&log_of(&net_a)), &no_progress())
        .unwrap();
    let dir = metadata_dir(&repo);
    check_bundle(&dir, "2.root.json", &policy_a);
    check_bundle(&dir, "1.targets.json", &policy_a);

    // Another log: root 3 in the old log (clients read it under root 2's policy), targets in
    // the new one.
    repo.set_transparency(Some(&policy_b)).unwrap();
    struct Both(Log, Log);
    impl ReleaseLog for Both {
        fn log(
            &self,
            policy: &TransparencyPolicy,
            statements: &[Vec<u8>],
        ) -> Result<Vec<Vec<u8>>, ReleaseLogError> {
            let l = if self.0.0.is_signed_by(&policy.policy().logs[0].verifier)? {
                &self.0
            } else {
                &self.1
            };
            l.log(policy, statements)
        }
    }
    let both = Both(log_of(&net_a), log_of(&net_b));
    repo.publish_logged(TargetFiles::Copy, Some(&both), &no_progress())
        .unwrap();
    let dir = metadata_dir(&repo);
    check_bundle(&dir, "3.root.json", &policy_a);
    check_bundle(&dir, "1.targets.json", &policy_b);
    check_bundle(&dir, "2.root.json", &policy_a);

    // Off, signed by one of two root keys: refused by the threshold check, nothing published.
    let root_keys: Vec<PathBuf> = repo
        .config()
        .keys
        .iter()
        .filter(|k| k.role == "root")
        .map(|k| repo_dir.join(k.private.as_ref().unwrap()))
        .collect();
    let away = tmp.path().join("offline.key");
    drop(repo);
    fs::rename(&root_keys[1], &away).unwrap();
    let mut repo = Repository::open(&repo_dir, None).unwrap();
    let report = repo.set_transparency(None).unwrap();
    assert_eq!(report.unsigned, vec!["root".to_string()]);
    let before = tree(&repo.published_path());
    let err = repo
        .publish_logged(TargetFiles::Copy, Some(&log_of(&net_b)), &no_progress())
        .unwrap_err();
    assert!(
        matches!(&err, RepoError::NotEnoughSignatures { role, .. } if role == "root"),
        "{err}"
    );
    assert_eq!(tree(&repo.published_path()), before);

    // With the threshold: root 4 is logged under root 3's policy; targets need no more logs.
    drop(repo);
    fs::rename(&away, &root_keys[1]).unwrap();
    let mut repo = Repository::open(&repo_dir, None).unwrap();
    repo.bump("root").unwrap();
    repo.publish_logged(TargetFiles::Copy, Some(&log_of(&net_b)), &no_progress())
        .unwrap();
    let dir = metadata_dir(&repo);
    check_bundle(&dir, "4.root.json", &policy_b);
    assert!(repo.transparency().unwrap().is_none());
    let root: Metadata<Root> =
        Metadata::from_bytes(&fs::read(dir.join("4.root.json")).unwrap()).unwrap();
    assert!(
        TransparencyPolicy::from_root(&root.signed)
            .unwrap()
            .is_none()
    );
    // From now on no log is needed.
    add(&mut repo, &src, "b.txt", "b");
    repo.publish(&no_progress()).unwrap();
}

/// A log client that checks, at the moment of submission, that every statement is already in
/// the repository's publishing record.
struct RecordChecked {
    log: Log,
    repo: PathBuf,
    seen: std::cell::RefCell<Vec<Vec<u8>>>,
}

impl ReleaseLog for RecordChecked {
    fn log(
        &self,
        policy: &TransparencyPolicy,
        statements: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, ReleaseLogError> {
        let record = read_release_record(&self.repo).expect("record readable");
        for s in statements {
            let parsed = airlock_core::transparency::ReleaseStatement::parse(s).unwrap();
            assert!(
                record.contains(&parsed),
                "submitted before it was recorded: {}",
                String::from_utf8_lossy(s)
            );
            self.seen.borrow_mut().push(s.clone());
        }
        self.log.log(policy, statements)
    }
}

#[test]
fn every_statement_is_recorded_before_it_is_submitted_and_the_record_only_grows() {
    let net = LocalTransparency::start(1).unwrap();
    let policy = policy_for(&net, "example.com/app");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dir = tmp.path().join("repo");
    let mut repo = init(&dir, 1, 1);
    repo.set_transparency(Some(&policy)).unwrap();
    let log = RecordChecked {
        log: log_of(&net),
        repo: dir.clone(),
        seen: Default::default(),
    };
    add(&mut repo, &src, "app.txt", "v1");
    repo.publish_logged(TargetFiles::Copy, Some(&log), &no_progress())
        .unwrap();
    let first = fs::read_to_string(release_record_path(&dir)).unwrap();
    add(&mut repo, &src, "app.txt", "v2");
    repo.publish_logged(TargetFiles::Copy, Some(&log), &no_progress())
        .unwrap();
    let second = fs::read_to_string(release_record_path(&dir)).unwrap();
    assert!(second.starts_with(&first), "{first}\n---\n{second}");
    let record = read_release_record(&dir).unwrap();
    let seen = log.seen.borrow();
    assert_eq!(seen.len(), 3, "root 1, targets 1, targets 2");
    assert_eq!(record.len(), 3);

    // A log that is down: the statement was (maybe) submitted, so it stays recorded.
    add(&mut repo, &src, "app.txt", "v3");
    let down = Log(client(&net, "https://127.0.0.1:1", Duration::from_secs(1)));
    repo.publish_logged(TargetFiles::Copy, Some(&down), &no_progress())
        .unwrap_err();
    assert_eq!(read_release_record(&dir).unwrap().len(), 4);
    assert_eq!(
        monitored_policy(&dir).unwrap().unwrap().repository(),
        "example.com/app"
    );
}
