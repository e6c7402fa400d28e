//! Binary transparency enforced by the updater: a real log and witnesses (airlock-testbed) and
//! a real repository over HTTPS on 127.0.0.1. The test writes the proof bundles beside the
//! metadata as the publisher does.

mod common;

use airlock_client::{UpdateError, Updater};
use airlock_core::error_chain;
use airlock_core::tlog::CosignatureSigner;
use common::tlog::{self, Keys, Logger};
use common::{TestRepo, ed25519};

fn chain(e: &UpdateError) -> String {
    error_chain(e)
}

/// A repository whose root v1 carries the policy of `net`, one target published and logged.
fn logged_repo(net: &airlock_testbed::LocalTransparency) -> (TestRepo, Logger) {
    let mut repo = TestRepo::new();
    tlog::set_policy(&mut repo, Some(&tlog::policy_text(net)));
    repo.write_root();
    repo.add_target("targets", "app.bin", b"app v1");
    repo.publish();
    let mut logger = Logger::new();
    logger.log_new(&repo, net);
    (repo, logger)
}

#[test]
fn happy_path_verifies_offline_and_reads_only_tiles_when_sizes_differ() {
    let net = airlock_testbed::LocalTransparency::start(2).expect("testbed");
    let (mut repo, mut logger) = logged_repo(&net);
    let https = tlog::serve_with_log_mirror(&repo, &net);
    let client = tlog::client(&https, &repo.initial_root(), &[&net]);

    let mut updater = client.updater();
    updater.refresh().expect("refresh");
    let dest = Updater::local_target_path(&client.target_dir(), "app.bin");
    updater
        .fetch_target("app.bin", &dest, &mut |_, _| {})
        .expect("download");
    assert_eq!(std::fs::read(&dest).unwrap(), b"app v1");
    // Every request went to the repository server (none to the log or the witnesses), and
    // none to the tile mirror: the first checkpoint needs no consistency proof.
    let requests = https.requests();
    assert_eq!(
        updater.fetcher().request_count(),
        requests.len() as u64,
        "{requests:?}"
    );
    assert!(requests.contains(&"/metadata/2.targets.json.tlog-proof".to_string()));
    assert!(
        !requests.iter().any(|r| r.starts_with("/log/")),
        "{requests:?}"
    );
    assert!(client.metadata_dir().join("tlog-state").exists());

    // A second release, logged in a larger tree: the client proves the trees consistent from
    // the mirrored tiles, and asks nothing else outside the repository.
    repo.add_target("targets", "app2.bin", b"app v2");
    repo.publish();
    logger.log_new(&repo, &net);
    https.clear_requests();
    let mut updater = client.updater();
    let before = updater.fetcher().request_count();
    updater.refresh().expect("second refresh");
    let requests = https.requests();
    assert_eq!(
        updater.fetcher().request_count() - before,
        requests.len() as u64
    );
    let outside: Vec<&String> = requests
        .iter()
        .filter(|r| !r.starts_with("/metadata/"))
        .collect();
    assert!(!outside.is_empty(), "the consistency proof needs tiles");
    assert!(
        outside.iter().all(|r| r.starts_with("/log/tile/")),
        "{outside:?}"
    );
    assert!(updater.get_target_info("app2.bin").unwrap().is_some());
}

fn refresh_err(client: &common::Client) -> UpdateError {
    client.updater().refresh().expect_err("must be refused")
}

#[test]
fn a_missing_proof_is_a_refusal_naming_role_version_url_and_check() {
    let net = airlock_testbed::LocalTransparency::start(1).expect("testbed");
    let (repo, _) = logged_repo(&net);
    std::fs::remove_file(repo.metadata_dir().join("2.targets.json.tlog-proof")).unwrap();
    let https = tlog::serve_with_log_mirror(&repo, &net);
    let client = tlog::client(&https, &repo.initial_root(), &[&net]);
    let e = refresh_err(&client);
    assert!(matches!(e, UpdateError::Transparency { .. }), "{e:?}");
    let msg = chain(&e);
    assert!(msg.contains("targets v2"), "{msg}");
    assert!(msg.contains("/metadata/2.targets.json.tlog-proof"), "{msg}");
    assert!(msg.contains("no log proof bundle"), "{msg}");
    // Not stored, and not usable from this updater either.
    assert!(!client.stored().contains_key("targets.json"));
}

#[test]
fn a_proof_for_other_bytes_is_refused() {
    let net = airlock_testbed::LocalTransparency::start(1).expect("testbed");
    let (mut repo, mut logger) = logged_repo(&net);
    repo.add_target("targets", "evil.bin", b"targeted");
    repo.publish();
    // The attacker's targets v3 is not logged; it is served with the bundle of v2.
    let _ = &mut logger;
    let v2 = repo.read_raw("metadata/2.targets.json.tlog-proof");
    repo.write_raw("metadata/3.targets.json.tlog-proof", &v2);
    let https = tlog::serve_with_log_mirror(&repo, &net);
    let client = tlog::client(&https, &repo.initial_root(), &[&net]);
    let mut updater = client.updater();
    let e = updater.refresh().expect_err("refused");
    let msg = chain(&e);
    assert!(msg.contains("targets v3"), "{msg}");
    assert!(
        msg.contains("not shown to be in the transparency log"),
        "{msg}"
    );
    assert!(msg.contains("entry is not at index"), "{msg}");
    // The refused role is not trusted by this updater either (the core's admission gate).
    assert!(updater.trusted().targets().is_none());
    assert!(updater.get_target_info("evil.bin").is_err());
}

#[test]
fn a_checkpoint_below_the_witness_quorum_is_refused() {
    let net = airlock_testbed::LocalTransparency::start(1).expect("testbed");
    let absent = CosignatureSigner::generate("airlock.test/absent").unwrap();
    let policy = format!(
        "log {} {}\nwitness w1 {}\nwitness w2 {}\ngroup q all w1 w2\nquorum q\n",
        net.log_verifier().to_vkey(),
        net.log_url(),
        net.witness_verifiers()[0].to_vkey(),
        absent.verifier().to_vkey()
    );
    let mut repo = TestRepo::new();
    tlog::set_policy(&mut repo, Some(&policy));
    repo.write_root();
    repo.publish();
    Logger::new().log_new(&repo, &net);
    let https = tlog::serve_with_log_mirror(&repo, &net);
    let client = tlog::client(&https, &repo.initial_root(), &[&net]);
    let msg = chain(&refresh_err(&client));
    assert!(msg.contains("lacks the witness quorum"), "{msg}");
}

#[test]
fn a_witness_key_listed_twice_makes_the_root_unusable() {
    let net = airlock_testbed::LocalTransparency::start(1).expect("testbed");
    let (mut repo, mut logger) = logged_repo(&net);
    let w = net.witness_verifiers()[0].to_vkey();
    // Two names for one key would let one witness count twice toward "2 of 2".
    let twice = format!(
        "log {} {}\nwitness w1 {w}\nwitness w2 {w}\ngroup q 2 w1 w2\nquorum q\n",
        net.log_verifier().to_vkey(),
        net.log_url()
    );
    tlog::set_raw_policy(&mut repo, &twice);
    repo.root.signed.version += 1;
    repo.write_root();
    logger.log_new(&repo, &net);
    let https = tlog::serve_with_log_mirror(&repo, &net);
    let client = tlog::client(&https, &repo.initial_root(), &[&net]);
    let e = refresh_err(&client);
    let msg = chain(&e);
    assert!(msg.contains("root metadata from"), "{msg}");
    assert!(msg.contains("2.root.json"), "{msg}");
    assert!(msg.contains("duplicate witness key"), "{msg}");
    assert_eq!(client.stored()["root.json"], repo.initial_root());
}

#[test]
fn a_new_root_removes_the_policy_only_with_the_root_threshold_and_a_proof() {
    let net = airlock_testbed::LocalTransparency::start(1).expect("testbed");
    let (mut repo, mut logger) = logged_repo(&net);
    let https = tlog::serve_with_log_mirror(&repo, &net);
    let client = tlog::client(&https, &repo.initial_root(), &[&net]);
    client.updater().refresh().expect("first refresh");

    // Root v2 without the policy, signed only by a key root v1 does not trust.
    tlog::set_policy(&mut repo, None);
    repo.root.signed.version += 1;
    let old_keys = std::mem::replace(&mut repo.root_keys, vec![ed25519()]);
    repo.write_root();
    logger.log_new(&repo, &net);
    let msg = chain(&refresh_err(&client));
    assert!(msg.contains("2.root.json"), "{msg}");
    assert!(msg.contains("not signed by a threshold"), "{msg}");

    // Signed by the threshold but not logged: still refused.
    repo.root_keys = old_keys;
    repo.write_root();
    std::fs::remove_file(repo.metadata_dir().join("2.root.json.tlog-proof")).unwrap();
    logger.logged.remove("2.root.json");
    let msg = chain(&refresh_err(&client));
    assert!(msg.contains("root v2"), "{msg}");
    assert!(msg.contains("no log proof bundle"), "{msg}");

    // Signed and logged: accepted, and later targets need no proof.
    logger.log_new(&repo, &net);
    client.updater().refresh().expect("policy removed properly");
}

/// Two trees under one log identity (a compromised log and witnesses). The client holds one;
/// an older or a newer checkpoint of the other is refused.
#[test]
fn checkpoints_of_another_tree_are_refused_older_or_newer() {
    let keys = Keys::generate(1);
    let a = keys.start();
    let b = keys.start();
    tlog::submit_filler(&a, &[b"a1", b"a2", b"a3", b"a4"]);
    let (mut repo, mut logger) = logged_repo(&a);
    let https = tlog::serve_with_log_mirror(&repo, &a);
    let client = tlog::client(&https, &repo.initial_root(), &[&a, &b]);
    client.updater().refresh().expect("refresh from tree A");

    // Older: targets v3 is logged only in tree B, which is smaller than the client's.
    repo.add_target("targets", "b.bin", b"only in B");
    repo.publish();
    let names = logger.log_new(&repo, &b);
    assert!(names.contains(&"3.targets.json".to_string()));
    let e = refresh_err(&client);
    let msg = chain(&e);
    assert!(msg.contains("targets v3"), "{msg}");
    assert!(
        msg.contains("is not consistent with the trusted checkpoint"),
        "{msg}"
    );

    // Newer: tree B grows past the client's, and its own tiles are mirrored: the proof computed
    // from them does not match the client's trusted root.
    tlog::submit_filler(&b, &[b"b1", b"b2", b"b3", b"b4", b"b5", b"b6"]);
    let https_b = tlog::serve_with_log_mirror(&repo, &b);
    logger.logged.remove("3.targets.json");
    logger.log_new(&repo, &b);
    // The same client state, now reading the other mirror.
    let mut config = client.config.clone();
    config.metadata_base_url = https_b.metadata_url();
    config.log_url = Some(https_b.server.url("/log/"));
    config.fetcher = tlog::fetcher(&https_b, &[&a, &b]);
    let e = Updater::new(config)
        .unwrap()
        .refresh()
        .expect_err("refused");
    let msg = chain(&e);
    // Tree B's checkpoint may land on the client's size (a split view) or above it (no
    // consistency proof from B's tiles matches the trusted root): both refuse the other tree.
    assert!(
        msg.contains("is not consistent with the trusted checkpoint") || msg.contains("SPLIT VIEW"),
        "{msg}"
    );
}

#[test]
fn switching_the_policy_on_drops_stored_targets_until_they_are_logged() {
    let net = airlock_testbed::LocalTransparency::start(1).expect("testbed");
    let mut repo = TestRepo::new();
    repo.add_target("targets", "app.bin", b"app v1");
    repo.publish();
    let https = tlog::serve_with_log_mirror(&repo, &net);
    let client = tlog::client(&https, &repo.initial_root(), &[&net]);
    client.updater().refresh().expect("refresh without policy");
    assert!(client.stored().contains_key("targets.json"));

    // Root v2 switches transparency on; root v2 itself needs no proof (v1 has no policy),
    // but the stored targets were never shown to be logged.
    tlog::set_policy(&mut repo, Some(&tlog::policy_text(&net)));
    repo.root.signed.version += 1;
    repo.write_root();
    let msg = chain(&refresh_err(&client));
    assert!(msg.contains("targets v2"), "{msg}");
    assert!(msg.contains("no log proof bundle"), "{msg}");
    // A second run does not fall back on the stored copy.
    assert!(!client.stored().contains_key("targets.json"));
    let msg = chain(&refresh_err(&client));
    assert!(msg.contains("no log proof bundle"), "{msg}");

    let mut logger = Logger::new();
    logger.log_files(&repo, &net, &["2.targets.json".to_string()]);
    client.updater().refresh().expect("logged now");
}

#[test]
fn a_log_key_rotated_by_a_root_rotation_keeps_the_client_updating() {
    let old = airlock_testbed::LocalTransparency::start(1).expect("old log");
    let new = airlock_testbed::LocalTransparency::start(1).expect("new log");
    let (mut repo, mut logger) = logged_repo(&old);
    let https = tlog::serve_with_log_mirror(&repo, &new);
    let mut client = tlog::client(&https, &repo.initial_root(), &[&old, &new]);
    // Tiles from the URL each root's policy names.
    client.config.log_url = None;
    client
        .updater()
        .refresh()
        .expect("refresh under the old log");

    // Root v2 names the new log (same origin, new key): logged in the old log (root v1's
    // policy), and every later release in the new one.
    tlog::set_policy(&mut repo, Some(&tlog::policy_text(&new)));
    repo.root.signed.version += 1;
    repo.write_root();
    logger.log_files(&repo, &old, &["2.root.json".to_string()]);
    repo.add_target("targets", "app2.bin", b"app v2");
    repo.publish();
    logger.log_new(&repo, &new);
    let summary = client
        .updater()
        .refresh()
        .expect("refresh under the new log");
    assert_eq!(summary.root_version, 2);
    assert_eq!(summary.targets_version, 3);
}

/// A SOCKS5 proxy (microsocks, from Debian) on 127.0.0.1; killed on drop.
struct Socks {
    child: std::process::Child,
    port: u16,
}

impl Socks {
    fn start() -> Socks {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new("microsocks")
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("microsocks (scripts/setup installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Socks { child, port };
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("microsocks did not listen on {port}");
    }
}

impl Drop for Socks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_peer_check_catches_a_split_view_and_reports_silent_peers_through_socks5() {
    let keys = Keys::generate(1);
    let a = keys.start();
    let b = keys.start();
    let (repo, _) = logged_repo(&a);
    // Tree B has the same size as tree A and other entries: a split view.
    tlog::submit_filler(&b, &[b"other 1", b"other 2", b"other 3"]);
    let https = tlog::serve_with_log_mirror(&repo, &a);
    let mut client = tlog::client(&https, &repo.initial_root(), &[&a, &b]);
    client.updater().refresh().expect("refresh from tree A");

    let honest = a.log_server.url("/checkpoint");
    let forked = b.log_server.url("/checkpoint");
    let silent = "https://127.0.0.1:9/checkpoint".to_string();
    let socks = Socks::start();
    let mut config = tlog::fetcher_config(&https, &[&a, &b]);
    config.proxy = Some(
        airlock_fetch::ProxyUrl::parse(&format!("socks5://127.0.0.1:{}", socks.port)).unwrap(),
    );
    client.config.fetcher =
        std::sync::Arc::new(airlock_fetch::Fetcher::new(config.clone()).unwrap());

    // One honest peer and one that does not answer: with one required, the update goes on
    // and the silent peer is reported.
    client.config.peers = vec![honest.clone(), silent.clone()];
    client.config.peers_required = 1;
    let report = client.updater().check_peers().expect("one agrees");
    assert_eq!(report.agreeing, 1);
    assert!(
        report.peers[1].1.starts_with("not counted: no answer"),
        "{report:?}"
    );
    // Two required: held, naming the silent peer.
    client.config.peers_required = 2;
    let e = client.updater().check_peers().expect_err("too few");
    let msg = chain(&e);
    assert!(
        msg.contains("only 1 of the 2 peers required agree"),
        "{msg}"
    );
    assert!(msg.contains("127.0.0.1:9/checkpoint"), "{msg}");

    // A peer showing tree B: held, with both checkpoints as evidence.
    client.config.peers = vec![honest.clone(), forked.clone()];
    client.config.peers_required = 1;
    let e = client.updater().check_peers().expect_err("split view");
    let UpdateError::PeerCheck { source, .. } = &e else {
        panic!("{e:?}")
    };
    let split = source
        .split_view()
        .unwrap_or_else(|| panic!("{}", chain(&e)));
    assert_ne!(split.trusted_root, split.new_root);
    assert!(split.trusted_note.contains("airlock.test/log"));
    assert!(chain(&e).contains("SPLIT VIEW"), "{}", chain(&e));

    // The requests really go through the proxy: with it gone, no peer answers.
    drop(socks);
    client.config.peers = vec![honest];
    let e = client.updater().check_peers().expect_err("no proxy");
    assert!(chain(&e).contains("no answer"), "{}", chain(&e));
}
