//! Health checks, hooks, version order and rollbacks as a person or the agent would see them.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use airlock_install::{
    AppLayout, EventKind, HealthCheck, Hooks, InstallError, InstallOutcome, InstallRefusal,
    InstallSpec, clear_bad, install, rollback, status,
};
use common::*;

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

struct App {
    dir: tempfile::TempDir,
    layout: AppLayout,
}

impl App {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let layout = AppLayout::new(&dir.path().join("app"));
        App { dir, layout }
    }

    fn install(
        &self,
        spec: &InstallSpec,
        version: &str,
        downgrade: bool,
    ) -> Result<airlock_install::InstallReport, InstallError> {
        let a = release_tar_gz(self.dir.path(), version);
        install(&self.layout, spec, &a, version, downgrade)
    }

    fn current(&self) -> Option<String> {
        self.layout.current_version().unwrap()
    }
}

fn refusal(e: InstallError) -> InstallRefusal {
    match e {
        InstallError::Refused { source, .. } => source,
        other => panic!("not a refusal: {other}"),
    }
}

#[test]
fn a_failing_health_check_switches_back_marks_the_version_bad_and_it_is_never_installed_again() {
    let app = App::new();
    let post = Hooks {
        post_install: Some(sh("echo restarting on $AIRLOCK_VERSION")),
        ..Hooks::default()
    };
    let good = InstallSpec {
        hooks: post.clone(),
        ..InstallSpec::default()
    };
    app.install(&good, "1.0.0", false).unwrap();
    let failing = InstallSpec {
        health: HealthCheck::Command {
            argv: sh("echo checking $AIRLOCK_VERSION; test \"$(cat current/VERSION)\" = 1.0.0"),
            timeout: Duration::from_secs(10),
        },
        hooks: post,
        ..InstallSpec::default()
    };
    let err = app.install(&failing, "2.0.0", false).unwrap_err();
    assert!(
        matches!(&err, InstallError::RolledBack { version, back_to: Some(b), .. } if version == "2.0.0" && b == "1.0.0"),
        "{err}"
    );
    assert!(err.to_string().contains("health check"), "{err}");
    assert_eq!(app.current().as_deref(), Some("1.0.0"));

    let st = status(&app.layout).unwrap();
    assert!(st.bad.contains_key("2.0.0"), "{:?}", st.bad);
    let event = st.history.last().unwrap();
    assert_eq!(event.kind, EventKind::RolledBack);
    let outputs: Vec<(&str, &str)> = event
        .commands
        .iter()
        .map(|c| (c.what.as_str(), c.stdout.trim()))
        .collect();
    assert_eq!(
        outputs,
        vec![
            ("post_install", "restarting on 2.0.0"),
            ("health", "checking 2.0.0"),
            ("post_install", "restarting on 1.0.0"),
        ]
    );

    // Never again on its own, not even as a "downgrade".
    for downgrade in [false, true] {
        let err = app.install(&good, "2.0.0", downgrade).unwrap_err();
        assert!(matches!(refusal(err), InstallRefusal::MarkedBad { .. }));
    }
    // A person lifts the mark; a fixed check passes.
    assert!(clear_bad(&app.layout, "2.0.0").unwrap());
    app.install(&good, "2.0.0", false).unwrap();
    assert_eq!(app.current().as_deref(), Some("2.0.0"));
}

#[test]
fn hooks_and_checks_that_hang_are_killed_at_their_timeout_with_their_output_kept() {
    let app = App::new();
    app.install(&InstallSpec::default(), "1.0.0", false)
        .unwrap();
    let started = Instant::now();
    let spec = InstallSpec {
        hooks: Hooks {
            pre_install: Some(sh("echo preparing; sleep 30")),
            post_install: None,
            timeout: Duration::from_millis(300),
        },
        ..InstallSpec::default()
    };
    let err = app.install(&spec, "2.0.0", false).unwrap_err();
    assert!(matches!(err, InstallError::PreInstallHook { .. }), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(names(&app.layout.releases_dir()), vec!["1.0.0"]);
    let st = status(&app.layout).unwrap();
    let event = st.history.last().unwrap();
    assert_eq!(event.kind, EventKind::InstallFailed);
    assert!(event.commands[0].timed_out);
    assert_eq!(event.commands[0].stdout.trim(), "preparing");
    // A failed pre-install hook is not the release's fault: not marked bad.
    assert!(st.bad.is_empty());

    let started = Instant::now();
    let spec = InstallSpec {
        health: HealthCheck::Command {
            argv: sh("sleep 30"),
            timeout: Duration::from_millis(300),
        },
        ..InstallSpec::default()
    };
    let err = app.install(&spec, "2.0.0", false).unwrap_err();
    assert!(matches!(err, InstallError::RolledBack { .. }), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));

    // A hook that leaves a background process behind still ends when it exits.
    let started = Instant::now();
    let spec = InstallSpec {
        hooks: Hooks {
            post_install: Some(sh("sleep 30 & echo started")),
            ..Hooks::default()
        },
        ..InstallSpec::default()
    };
    let report = app.install(&spec, "3.0.0", false).unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(report.commands[0].stdout.trim(), "started");
}

/// A loopback HTTP server answering every request with the status in `status`.
fn health_server(status: Arc<AtomicU16>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let code = status.load(Ordering::SeqCst);
            let body = if code == 200 { "ok" } else { "down" };
            let _ = write!(
                s,
                "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn the_http_check_asks_a_loopback_url_and_only_a_loopback_url() {
    let app = App::new();
    let code = Arc::new(AtomicU16::new(200));
    let url = health_server(code.clone());
    let spec = |url: &str| InstallSpec {
        health: HealthCheck::Http {
            url: url.to_string(),
            timeout: Duration::from_millis(800),
        },
        ..InstallSpec::default()
    };
    let report = app.install(&spec(&url), "1.0.0", false).unwrap();
    assert_eq!(report.outcome, InstallOutcome::Installed);
    assert_eq!(report.commands[0].stdout, "ok");

    code.store(503, Ordering::SeqCst);
    let err = app.install(&spec(&url), "2.0.0", false).unwrap_err();
    assert!(matches!(err, InstallError::RolledBack { .. }), "{err}");
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(app.current().as_deref(), Some("1.0.0"));

    code.store(200, Ordering::SeqCst);
    let err = app
        .install(&spec("http://192.0.2.1/health"), "3.0.0", false)
        .unwrap_err();
    assert!(err.to_string().contains("loopback"), "{err}");
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
}

#[test]
fn a_systemd_unit_that_is_not_active_fails_the_check() {
    // Without systemd (as in these tests) `systemctl` is missing or answers "inactive"; either
    // way the release is rolled back within the timeout.
    let app = App::new();
    app.install(&InstallSpec::default(), "1.0.0", false)
        .unwrap();
    let spec = InstallSpec {
        health: HealthCheck::SystemdUnit {
            unit: "airlock-test-no-such-unit.service".into(),
            timeout: Duration::from_millis(500),
        },
        ..InstallSpec::default()
    };
    let started = Instant::now();
    let err = app.install(&spec, "2.0.0", false).unwrap_err();
    assert!(matches!(err, InstallError::RolledBack { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
}

#[test]
fn older_versions_need_the_person_to_ask() {
    let app = App::new();
    let spec = InstallSpec::default();
    app.install(&spec, "2.0.0", false).unwrap();
    let err = app.install(&spec, "1.9.0", false).unwrap_err();
    assert!(matches!(refusal(err), InstallRefusal::Downgrade { .. }));
    // A pre-release is older than its release.
    let err = app.install(&spec, "2.0.0-rc.1", false).unwrap_err();
    assert!(matches!(refusal(err), InstallRefusal::Downgrade { .. }));
    assert_eq!(app.current().as_deref(), Some("2.0.0"));
    app.install(&spec, "1.9.0", true).unwrap();
    assert_eq!(app.current().as_deref(), Some("1.9.0"));
    let again = app.install(&spec, "1.9.0", false).unwrap();
    assert_eq!(again.outcome, InstallOutcome::AlreadyInstalled);
    let a = release_tar_gz(app.dir.path(), "3.0.0");
    let err = install(&app.layout, &spec, &a, "../../etc", true).unwrap_err();
    assert!(matches!(
        refusal(err),
        InstallRefusal::InvalidVersion { .. }
    ));
}

#[test]
fn a_person_rolls_back_and_the_release_left_is_not_reinstalled_on_its_own() {
    let app = App::new();
    let spec = InstallSpec {
        keep: 5,
        ..InstallSpec::default()
    };
    for v in ["1.0.0", "2.0.0", "3.0.0"] {
        app.install(&spec, v, false).unwrap();
    }
    let report = rollback(&app.layout, &spec, None).unwrap();
    assert_eq!(report.outcome, InstallOutcome::RolledBackTo);
    assert_eq!(app.current().as_deref(), Some("2.0.0"));
    let st = status(&app.layout).unwrap();
    assert_eq!(st.bad["3.0.0"].reason, "rolled back by a person");
    assert_eq!(st.previous, vec!["3.0.0", "1.0.0"]);
    assert_eq!(st.history.last().unwrap().kind, EventKind::ManualRollback);
    let err = app.install(&spec, "3.0.0", false).unwrap_err();
    assert!(matches!(refusal(err), InstallRefusal::MarkedBad { .. }));

    rollback(&app.layout, &spec, Some("1.0.0")).unwrap();
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    let err = rollback(&app.layout, &spec, Some("0.1.0")).unwrap_err();
    assert!(matches!(refusal(err), InstallRefusal::NoSuchRelease { .. }));
    // The status is JSON for `airlock agent status --json`.
    let json = serde_json::to_value(status(&app.layout).unwrap()).unwrap();
    assert_eq!(json["installed"], "1.0.0");
}
