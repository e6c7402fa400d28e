//! The agent against a real HTTPS repository, with the recording installer (it unpacks
//! nothing): what it installs, what staging holds back, what a failed health check leaves, and
//! what a person can do over the socket. Run as root (admin on the socket).

mod support;

use std::sync::Arc;

use airlock_agent::{Call, RecordingInstaller};
use serde_json::json;
use support::{Fixture, ask};

fn installs(installer: &RecordingInstaller) -> Vec<(String, Vec<u8>)> {
    installer
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Install { version, bytes, .. } => Some((version, bytes)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_person_checks_installs_bypasses_staging_and_rolls_back() {
    let mut f = Fixture::new();
    f.release("1.0", None);
    f.release("1.1", Some(json!({"channel": "beta"})));
    // Staged to no machine yet.
    f.release(
        "2.0",
        Some(json!({"rollout_percent": 0, "channel": ["stable", "beta"]})),
    );
    let installer = Arc::new(RecordingInstaller::new());
    let agent = f.start(f.config("", ""), installer.clone());
    let socket = f.socket();

    let answer = ask(&socket, "check-now myapp");
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(
        installs(&installer),
        [("1.0".into(), b"release 1.0".to_vec())]
    );
    let status = ask(&socket, "status myapp");
    let app = &status["apps"]["myapp"];
    assert_eq!(app["installed"], "1.0");
    assert_eq!(app["pending"]["version"], "2.0");
    assert_eq!(app["pending"]["rollout_percent"], 0);
    assert_eq!(app["last_check"]["ok"], true);
    assert_eq!(app["last_check"]["by"], "person");

    // Nothing new: no install.
    ask(&socket, "check-now myapp");
    assert_eq!(installs(&installer).len(), 1);

    // A person takes the staged release on this machine.
    let answer = ask(&socket, "check-now myapp ignore-staging");
    assert_eq!(
        answer["results"][0]["check"]["install"]["version"], "2.0",
        "{answer}"
    );
    assert_eq!(installs(&installer).last().unwrap().0, "2.0");

    // 3.0 fails its health check: rolled back, marked bad, never installed again on its own.
    f.release("3.0", None);
    installer.fail_health_of("3.0");
    let answer = ask(&socket, "check-now myapp");
    assert_eq!(
        answer["results"][0]["check"]["install"]["result"], "rolled-back",
        "{answer}"
    );
    ask(&socket, "check-now myapp");
    assert_eq!(
        installs(&installer)
            .iter()
            .filter(|(v, _)| v == "3.0")
            .count(),
        1
    );
    let status = ask(&socket, "status");
    assert_eq!(status["apps"]["myapp"]["bad_versions"], json!(["3.0"]));
    assert_eq!(status["apps"]["myapp"]["installed"], "2.0");

    // A release whose served bytes do not match its metadata never reaches the installer.
    let file = f
        .repo
        .add_target("targets", "myapp/4.0/myapp.tar.gz", b"release 4.0");
    f.repo.publish();
    let served = format!("targets/myapp/4.0/{}.myapp.tar.gz", file.hashes["sha256"]);
    f.repo.write_raw(&served, b"release 4.0 with a backdoor");
    let answer = ask(&socket, "check-now myapp");
    assert_eq!(answer["ok"], false, "{answer}");
    assert!(
        answer["results"][0]["error"]
            .as_str()
            .unwrap()
            .contains("download"),
        "{answer}"
    );
    assert!(installs(&installer).iter().all(|(v, _)| v != "4.0"));
    let status = ask(&socket, "status myapp");
    assert_eq!(status["apps"]["myapp"]["failures"], 1);
    assert_eq!(status["apps"]["myapp"]["last_check"]["ok"], false);

    // Rollback by a person goes to the installer.
    let answer = ask(&socket, "rollback myapp 1.0");
    assert_eq!(answer["ok"], true, "{answer}");
    assert!(installer.calls().contains(&Call::Rollback {
        app: "myapp".into(),
        to: Some("1.0".into())
    }));
    agent.stop();
}

#[test]
fn the_record_survives_a_restart_and_a_second_agent_is_refused() {
    let mut f = Fixture::new();
    f.release("1.0", None);
    let installer = Arc::new(RecordingInstaller::new());
    let config = f.config("", "");
    let agent = f.start(config.clone(), installer.clone());
    ask(&f.socket(), "check-now *");
    // The scheduled first check (due at start, no jitter here) may have run too.
    let before = ask(&f.socket(), "status myapp")["apps"]["myapp"].clone();
    let err = airlock_agent::AgentHandle::start(config.clone(), installer.clone())
        .err()
        .expect("second agent refused");
    assert!(err.to_string().contains("another agent"), "{err}");
    agent.stop();

    let agent = f.start(config, installer.clone());
    let status = ask(&f.socket(), "status myapp");
    // Remembered, and the next scheduled check is a day after the last one, not at start.
    assert_eq!(status["apps"]["myapp"]["checks"], before["checks"]);
    assert_eq!(status["apps"]["myapp"]["last_check"], before["last_check"]);
    assert_eq!(status["apps"]["myapp"]["next_check"], before["next_check"]);
    // The restart asked the installer to finish what a crash might have left.
    assert!(
        installer
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::Recover { .. }))
            .count()
            == 2
    );
    agent.stop();
}

/// A download cut by a stop of the agent goes on from its bytes when the agent runs again. The
/// server here serves the release's first half damaged, so only a resume from the good half on
/// disk gives the listed hashes. Partial downloads of other releases are removed.
#[test]
fn a_download_cut_by_a_restart_goes_on_from_the_bytes_on_disk() {
    let mut f = Fixture::new();
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    f.release_bytes("1.0", None, &bytes);
    let half = bytes.len() / 2;
    let mut served = Vec::new();
    for entry in std::fs::read_dir(f.repo.path().join("targets/myapp/1.0")).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with("myapp.tar.gz") {
            served.push(path);
        }
    }
    assert!(!served.is_empty());
    for path in &served {
        let mut damaged = bytes.clone();
        for b in &mut damaged[..half] {
            *b ^= 0xff;
        }
        std::fs::remove_file(path).unwrap();
        std::fs::write(path, &damaged).unwrap();
    }
    // What a stopped agent left: the first half, under the name the download keeps it in.
    let file = airlock_core::tuf::TargetFile::from_bytes(&bytes);
    let tag: String = file
        .hashes
        .values()
        .next()
        .unwrap()
        .chars()
        .take(16)
        .collect();
    let downloads = f.path("state/apps/myapp/downloads");
    let dir = downloads.join("myapp%2F1.0%2Fmyapp.tar.gz");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!(".myapp.tar.gz.{tag}.partial")),
        &bytes[..half],
    )
    .unwrap();
    let stale = downloads.join("myapp%2F0.9%2Fmyapp.tar.gz/.myapp.tar.gz.0123456789abcdef.partial");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, b"an older release").unwrap();

    let installer = Arc::new(RecordingInstaller::new());
    let agent = f.start(f.config("", ""), installer.clone());
    let answer = ask(&f.socket(), "check-now myapp");
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(installs(&installer), [("1.0".into(), bytes)]);
    assert!(!stale.exists());
    assert_eq!(std::fs::read_dir(&downloads).unwrap().count(), 0);
    drop(agent);
}

/// A root requiring one rebuilder: the attested release is installed; the next one, which no
/// rebuilder attested, is refused with the count in the answer, even when a verified copy of it
/// is already on disk (what a crash between download and install leaves).
#[test]
fn a_release_no_rebuilder_attested_is_not_installed_even_from_disk() {
    use airlock_core::crypto::{KeyScheme, PrivateKey, Signer};
    use airlock_core::rebuild::attestation::RebuildStatement;
    use airlock_core::rebuild::layout::attestation_path;
    use airlock_core::rebuild::{RebuildInfo, RebuilderPolicy};

    let mut f = Fixture::new();
    let rebuilder = PrivateKey::generate(KeyScheme::Ed25519).unwrap();
    let policy = RebuilderPolicy::new(1, vec![rebuilder.public_key().clone()]).unwrap();
    f.repo.root.signed.unrecognized.insert(
        airlock_core::rebuild::policy::EXTENSION_FIELD.into(),
        policy.to_value(),
    );
    f.repo.root.signed.version += 1;
    f.repo.write_root();
    let recipe = serde_json::json!({
        "version": 1,
        "source": {"type": "git", "url": "https://example.org/app.git",
                   "commit": "0123456789abcdef0123456789abcdef01234567"},
        "recipe": {"command": "make", "builder": {"type": "toolchain", "name": "debian-13"},
                   "artifact": "app.tar.gz"}
    });
    let rebuild = RebuildInfo::from_value(&recipe).unwrap();
    let attest = |f: &Fixture, version: &str, bytes: &[u8]| {
        let target = format!("myapp/{version}/myapp.tar.gz");
        let file = airlock_core::tuf::TargetFile::from_bytes(bytes);
        let sha256 = file.hashes["sha256"].clone();
        let envelope = RebuildStatement {
            target: target.clone(),
            sha256: sha256.clone(),
            length: file.length,
            rebuild: rebuild.clone(),
            environment: Default::default(),
            rebuilder: "rebuilder-a".into(),
        }
        .sign(&rebuilder)
        .unwrap();
        let keyid = rebuilder.public_key().key_id();
        let rel = attestation_path(&target, &sha256, &keyid).unwrap();
        let path = rel
            .iter()
            .fold(f.repo.path().to_path_buf(), |p, s| p.join(s));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, envelope.to_json()).unwrap();
    };
    f.release("1.0", None);
    attest(&f, "1.0", b"release 1.0");
    let installer = Arc::new(RecordingInstaller::new());
    let agent = f.start(f.config("", ""), installer.clone());
    let socket = f.socket();
    let answer = ask(&socket, "check-now myapp");
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(
        installs(&installer),
        [("1.0".into(), b"release 1.0".to_vec())]
    );

    f.release("2.0", None);
    // Not even requested: refused before a byte of it is fetched.
    f.https.clear_requests();
    let answer = ask(&socket, "check-now myapp");
    assert_eq!(answer["ok"], false, "{answer}");
    let error = answer["results"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("myapp/2.0/myapp.tar.gz") && error.contains("0 of the 1 required"),
        "{error}"
    );
    assert!(
        !f.https
            .requests()
            .iter()
            .any(|r| r.starts_with("/targets/myapp/2.0")),
        "{:?}",
        f.https.requests()
    );
    // A verified copy on disk is not a way around the policy.
    let dest = f.path("state/apps/myapp/downloads/myapp%2F2.0%2Fmyapp.tar.gz/myapp.tar.gz");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::write(&dest, b"release 2.0").unwrap();
    let answer = ask(&socket, "check-now myapp");
    assert_eq!(answer["ok"], false, "{answer}");
    assert!(installs(&installer).iter().all(|(v, _)| v != "2.0"));

    // Once attested, it is installed.
    attest(&f, "2.0", b"release 2.0");
    let answer = ask(&socket, "check-now myapp");
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(installs(&installer).last().unwrap().0, "2.0");
    agent.stop();
}
