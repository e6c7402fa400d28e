//! Test support: a real HTTPS repository (airlock-client's test support) with releases of
//! `myapp`, and an agent configuration pointing at it.
#![allow(dead_code)]

#[path = "../../../airlock-client/tests/common/mod.rs"]
pub mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_agent::{AgentConfig, AgentHandle, Installer};
use airlock_core::tuf::TargetFile;
use common::{HttpsRepo, TestRepo};
use serde_json::Value;

pub const MACHINE_ID: &str = "0123456789abcdef0123456789abcdef";

pub struct Fixture {
    pub repo: TestRepo,
    pub https: HttpsRepo,
    /// Mode 0755 so that other users can reach the socket and FIFO inside.
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub root: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        let mut repo = TestRepo::new();
        repo.add_target("targets", "other/9.0/other.tar.gz", b"not ours");
        repo.publish();
        let https = HttpsRepo::serve(repo.path());
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let ca = https.ca.write_ca_pem(dir.path()).expect("ca");
        let root = dir.path().join("root.json");
        std::fs::write(&root, repo.initial_root()).unwrap();
        Self {
            repo,
            https,
            dir,
            ca,
            root,
        }
    }

    /// Publish `myapp/VERSION/myapp.tar.gz` with `custom` metadata.
    pub fn release(&mut self, version: &str, custom: Option<Value>) {
        let data = format!("release {version}");
        self.release_bytes(version, custom, data.as_bytes());
    }

    /// Publish `myapp/VERSION/myapp.tar.gz` holding exactly `bytes`.
    pub fn release_bytes(&mut self, version: &str, custom: Option<Value>, bytes: &[u8]) {
        let mut file = TargetFile::from_bytes(bytes);
        file.custom = custom.map(Box::new);
        self.repo.add_target_file(
            "targets",
            &format!("myapp/{version}/myapp.tar.gz"),
            file,
            bytes,
        );
        self.repo.publish();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn socket(&self) -> PathBuf {
        self.path("run/agent.sock")
    }

    /// The agent's configuration; `trigger` is the `[apps.myapp.trigger]` body.
    pub fn config(&self, trigger: &str, schedule: &str) -> AgentConfig {
        self.config_with_install(trigger, schedule, "")
    }

    /// As [`Fixture::config`], with `install` as the app's `[apps.myapp.install]` body (and
    /// any sub-tables after it).
    pub fn config_with_install(&self, trigger: &str, schedule: &str, install: &str) -> AgentConfig {
        let text = format!(
            r#"
[agent]
state_dir = "{state}"
socket = "{socket}"
machine_id = "{MACHINE_ID}"

[apps.myapp]
target = "myapp/{{version}}/myapp.tar.gz"
install_root = "{install}"

[apps.myapp.repository]
metadata_url = "{metadata}"
targets_url = "{targets}"
trusted_root = "{root}"
ca_file = "{ca}"

[apps.myapp.schedule]
interval = "1d"
jitter = "0s"
{schedule}

[apps.myapp.trigger]
{trigger}

[apps.myapp.install]
{install_section}
"#,
            state = self.path("state").display(),
            socket = self.socket().display(),
            install = self.path("install").display(),
            metadata = self.https.metadata_url(),
            targets = self.https.targets_url(),
            root = self.root.display(),
            ca = self.ca.display(),
            install_section = install,
        );
        let path = self.path("agent.toml");
        std::fs::write(&path, &text).unwrap();
        AgentConfig::load(&path).expect("config")
    }

    pub fn start(&self, config: AgentConfig, installer: Arc<dyn Installer>) -> AgentHandle {
        AgentHandle::start(config, installer).expect("agent starts")
    }
}

/// One request over the socket (as this process's user).
pub fn ask(socket: &Path, line: &str) -> Value {
    airlock_agent::request(socket, line, Duration::from_secs(60)).expect("agent answers")
}

/// Wait until `f` holds (checks run on the agent's worker thread).
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
