//! The agent with the real install engine (airlock-install) behind it, against a real HTTPS
//! repository: a verified tar.gz becomes `current`, a release that fails its health check is
//! switched back and never taken again, and a hostile archive is refused with nothing changed.

mod support;

use std::path::Path;
use std::sync::Arc;

use airlock_agent::Engine;
use chrono::Timelike;
use support::{Fixture, ask};

/// A tar.gz holding `VERSION` (the version) and any extra `(path, bytes)` entries, written raw
/// so that a hostile path reaches the archive as it is.
fn tar_gz(version: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut entries: Vec<(&str, &[u8])> = vec![("VERSION", version.as_bytes())];
    entries.extend_from_slice(extra);
    for (path, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        let name = &mut header.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn current_version(install: &Path) -> String {
    std::fs::read_to_string(install.join("current/VERSION")).unwrap()
}

#[test]
fn the_engine_installs_rolls_back_an_unhealthy_release_and_refuses_a_hostile_archive() {
    let mut f = Fixture::new();
    let install = f.path("install");
    // Healthy unless the release says it is 2.0.
    let health = format!(
        "[apps.myapp.install.health]\ncommand = [\"sh\", \"-c\", \"test \\\"$(cat {}/current/VERSION)\\\" != 2.0\"]\ntimeout = \"10s\"",
        install.display()
    );
    // Scheduled checks only in a window twelve hours away: every check here is a person's, so
    // none runs beside the one the test is waiting for.
    let away = (chrono::Utc::now().hour() + 12) % 24;
    let window = format!("windows = [\"{away:02}:00-{away:02}:30\"]");
    let config = f.config_with_install("", &window, &format!("keep = 2\n{health}"));
    f.release_bytes("1.0", None, &tar_gz("1.0", &[]));
    // Junk beside a download is cleared once the release is installed.
    let leftover = f.path("state/apps/myapp/downloads/myapp%2F1.0%2Fmyapp.tar.gz/.tmp-partial");
    std::fs::create_dir_all(leftover.parent().unwrap()).unwrap();
    std::fs::write(&leftover, b"half a download").unwrap();
    // So is a record or metadata file whose atomic write was cut (found by agent_kill.rs).
    let half_written = f.path("state/apps/myapp/.airlock-tmp-record");
    std::fs::write(&half_written, b"{\"chec").unwrap();
    let agent = f.start(config, Arc::new(Engine));
    assert!(!half_written.exists());
    let socket = f.socket();

    let answer = ask(&socket, "check-now myapp");
    assert_eq!(answer["ok"], true, "{answer}");
    assert!(!leftover.exists());
    assert_eq!(current_version(&install), "1.0");
    assert!(install.join("releases/1.0/VERSION").is_file());

    // 2.0 fails its health check: 1.0 is current again and 2.0 is marked bad.
    f.release_bytes("2.0", None, &tar_gz("2.0", &[]));
    let answer = ask(&socket, "check-now myapp");
    assert_eq!(current_version(&install), "1.0", "{answer}");
    let status = ask(&socket, "status myapp");
    assert!(
        status["apps"]["myapp"]["bad_versions"]
            .as_array()
            .is_some_and(|b| b.iter().any(|v| v == "2.0")),
        "{answer}\n{status}"
    );
    assert!(
        status["apps"]["myapp"]["last_check"]["result"]
            .as_str()
            .is_some_and(|r| r.contains("health check")),
        "{status}"
    );
    // It is not taken again on the next check.
    ask(&socket, "check-now myapp");
    assert_eq!(current_version(&install), "1.0");

    // A hostile archive: refused naming the entry, nothing written outside, current unchanged.
    f.release_bytes("2.1", None, &tar_gz("2.1", &[("../escaped", b"owned")]));
    let answer = ask(&socket, "check-now myapp");
    assert!(answer.to_string().contains("escaped"), "{answer}");
    assert_eq!(current_version(&install), "1.0");
    assert!(!install.join("escaped").exists());
    assert!(!install.join("releases/escaped").exists());
    assert!(!install.join("releases/2.1").exists());

    // A good release after all that.
    f.release_bytes("2.2", None, &tar_gz("2.2", &[]));
    ask(&socket, "check-now myapp");
    assert_eq!(current_version(&install), "2.2");
    drop(agent);
}
