//! The agent's configuration file (`/etc/airlock/agent.toml`); the format is documented with a
//! full example in `docs/agent.md`, which a test parses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use airlock_core::rollout::offer::check_pattern;
use airlock_core::rollout::trigger::check_app_name;
use airlock_core::rollout::{Schedule, Window};
use serde::Deserialize;

/// Why the configuration cannot be used. Each names the file and the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid agent configuration", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{}: {setting}: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        setting: String,
        reason: String,
    },
}

/// A uid or gid, by number or by name (names are looked up in /etc/passwd and /etc/group when
/// the configuration is loaded; NSS is not consulted).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum IdRef {
    Number(u32),
    Name(String),
}

/// Agent-wide settings (`[agent]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// The agent's own records, downloads and (by default) each app's metadata.
    pub state_dir: PathBuf,
    /// The trigger socket.
    pub socket: PathBuf,
    /// The machine's stable identifier for staged rollouts; default: read `machine_id_file`.
    pub machine_id: Option<String>,
    #[serde(default = "default_machine_id_file")]
    pub machine_id_file: PathBuf,
    /// Users besides root and the agent's own user who may send admin requests.
    #[serde(default)]
    pub admin_users: Vec<IdRef>,
    /// The app whose releases are this agent's own `airlock` binary (a plain file): after it is
    /// installed and passes its health check, the agent restarts into it.
    pub self_app: Option<String>,
}

fn default_machine_id_file() -> PathBuf {
    PathBuf::from("/etc/machine-id")
}

/// Where an app's releases come from (`[apps.NAME.repository]`): the settings of
/// `airlock update`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    pub metadata_url: String,
    pub targets_url: String,
    /// The root.json obtained out of band; trusted on the first run.
    pub trusted_root: PathBuf,
    /// Default: `<state_dir>/apps/<app>/metadata`.
    pub metadata_dir: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub allow_http_loopback: bool,
    pub log_url: Option<String>,
    #[serde(default)]
    pub peers: Vec<String>,
    pub peers_required: Option<usize>,
    pub proxy: Option<String>,
    /// Targets roles read per check at most.
    #[serde(default = "default_max_roles")]
    pub max_roles: u32,
    /// Further mirrors (`[[apps.NAME.repository.mirrors]]`: name, metadata_url, targets_url,
    /// target_paths), asked when the URLs above fail.
    #[serde(default)]
    pub mirrors: Vec<airlock_core::mirrors::Mirror>,
}

fn default_max_roles() -> u32 {
    1024
}

/// `[apps.NAME.schedule]`, durations as `90s`, `15m`, `6h`, `1d`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    #[serde(default = "default_interval")]
    pub interval: String,
    #[serde(default = "default_jitter")]
    pub jitter: String,
    #[serde(default = "default_retry_min")]
    pub retry_min: String,
    #[serde(default = "default_retry_max")]
    pub retry_max: String,
    /// UTC, `"[Mon,Tue,...] HH:MM-HH:MM"`.
    #[serde(default)]
    pub windows: Vec<String>,
    /// Application triggers closer together than this start no new check.
    #[serde(default = "default_trigger_min_interval")]
    pub trigger_min_interval: String,
}

fn default_interval() -> String {
    "6h".into()
}
fn default_jitter() -> String {
    "30m".into()
}
fn default_retry_min() -> String {
    "1m".into()
}
fn default_retry_max() -> String {
    "1h".into()
}
fn default_trigger_min_interval() -> String {
    "60s".into()
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            jitter: default_jitter(),
            retry_min: default_retry_min(),
            retry_max: default_retry_max(),
            windows: Vec::new(),
            trigger_min_interval: default_trigger_min_interval(),
        }
    }
}

/// Who may trigger an app (`[apps.NAME.trigger]`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerConfig {
    /// Peers whose uid is listed may send `check` and `status` on the socket.
    #[serde(default)]
    pub users: Vec<IdRef>,
    /// Peers whose primary gid is listed may too.
    #[serde(default)]
    pub groups: Vec<IdRef>,
    /// A FIFO the agent creates (mode 0620) for `check`; writable by `fifo_group`.
    pub fifo: Option<PathBuf>,
    /// Default: the first of `groups`.
    pub fifo_group: Option<IdRef>,
    /// A JSON status file (mode 0640, group `fifo_group`) rewritten after each change.
    pub status_file: Option<PathBuf>,
}

/// The install engine's settings (`[apps.NAME.install]`), handed to the installer as they are.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InstallConfig {
    /// `tar.gz`, `tar.zst`, `zip` or `file`; default: from the target's name.
    pub format: Option<String>,
    /// Previous releases kept.
    #[serde(default = "default_keep")]
    pub keep: usize,
    /// Allow setuid/setgid bits in archives.
    #[serde(default)]
    pub allow_setuid: bool,
    pub max_unpacked_bytes: Option<u64>,
    pub max_entries: Option<u64>,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub hooks: HooksConfig,
}

fn default_keep() -> usize {
    3
}

impl Default for InstallConfig {
    fn default() -> Self {
        Self {
            format: None,
            keep: default_keep(),
            allow_setuid: false,
            max_unpacked_bytes: None,
            max_entries: None,
            health: HealthConfig::default(),
            hooks: HooksConfig::default(),
        }
    }
}

/// After the switch, one of: a command, a loopback URL, a systemd unit's state.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    pub command: Option<Vec<String>>,
    pub url: Option<String>,
    pub systemd_unit: Option<String>,
    /// Default 30s.
    pub timeout: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HooksConfig {
    pub pre_install: Option<Vec<String>>,
    pub post_install: Option<Vec<String>>,
    /// Default 60s.
    pub timeout: Option<String>,
}

/// One application (`[apps.NAME]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    /// Target path pattern with one `{version}`, e.g. `myapp/{version}/myapp.tar.gz`.
    pub target: String,
    #[serde(default = "default_channel")]
    pub channel: String,
    /// Where `releases/` and `current` live; the agent's user owns it.
    pub install_root: PathBuf,
    /// Take staged releases at once on this machine.
    #[serde(default)]
    pub ignore_staging: bool,
    pub repository: RepositoryConfig,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    #[serde(default)]
    pub trigger: TriggerConfig,
    #[serde(default)]
    pub install: InstallConfig,
}

fn default_channel() -> String {
    airlock_core::rollout::offer::DEFAULT_CHANNEL.into()
}

/// The file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub agent: AgentSection,
    pub apps: BTreeMap<String, AppSection>,
}

/// An app, checked and resolved.
#[derive(Clone, Debug)]
pub struct AppConfig {
    pub name: String,
    pub target: String,
    pub channel: String,
    pub install_root: PathBuf,
    pub ignore_staging: bool,
    pub repository: RepositoryConfig,
    pub metadata_dir: PathBuf,
    pub schedule: Schedule,
    pub trigger_min_interval: Duration,
    pub trigger_uids: Vec<u32>,
    pub trigger_gids: Vec<u32>,
    pub fifo: Option<PathBuf>,
    pub fifo_gid: Option<u32>,
    pub status_file: Option<PathBuf>,
    pub install: InstallConfig,
}

/// The whole configuration, checked and resolved.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub path: PathBuf,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    /// `None`: read from `machine_id_file` when needed.
    pub machine_id: Option<String>,
    pub machine_id_file: PathBuf,
    pub admin_uids: Vec<u32>,
    pub apps: BTreeMap<String, AppConfig>,
    /// The app that updates the agent itself (see [`AgentSection::self_app`]).
    pub self_app: Option<String>,
}

/// Parse `30s`, `15m`, `6h`, `2d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits.parse().ok()?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(factor).map(Duration::from_secs)
}

/// Look a name up in an /etc/passwd- or /etc/group-format text: the third field of its line.
fn lookup_id(db: &str, name: &str) -> Option<u32> {
    db.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let n = fields.next()?;
            let id = fields.nth(1)?;
            (n == name).then(|| id.parse().ok()).flatten()
        })
        .next()
}

impl AgentConfig {
    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parse and check `text` as the content of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |setting: &str, reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            setting: setting.to_string(),
            reason,
        };
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
        let uid = |setting: &str, id: &IdRef| match id {
            IdRef::Number(n) => Ok(*n),
            IdRef::Name(name) => lookup_id(&passwd, name)
                .ok_or_else(|| invalid(setting, format!("no user {name:?} in /etc/passwd"))),
        };
        let gid = |setting: &str, id: &IdRef| match id {
            IdRef::Number(n) => Ok(*n),
            IdRef::Name(name) => lookup_id(&group, name)
                .ok_or_else(|| invalid(setting, format!("no group {name:?} in /etc/group"))),
        };
        let duration = |setting: &str, value: &str| {
            parse_duration(value).ok_or_else(|| {
                invalid(
                    setting,
                    format!("{value:?} is not a duration like 90s, 15m, 6h, 1d"),
                )
            })
        };
        if file.apps.is_empty() {
            return Err(invalid("apps", "no [apps.NAME] section".into()));
        }
        let admin_uids = file
            .agent
            .admin_users
            .iter()
            .map(|id| uid("agent.admin_users", id))
            .collect::<Result<_, _>>()?;
        if let Some(id) = &file.agent.machine_id
            && id.trim().is_empty()
        {
            return Err(invalid("agent.machine_id", "is empty".into()));
        }
        let mut apps = BTreeMap::new();
        for (name, app) in file.apps {
            let at = |s: &str| format!("apps.{name}.{s}");
            check_app_name(&name).map_err(|e| invalid(&format!("apps.{name}"), e.to_string()))?;
            check_pattern(&app.target).map_err(|e| invalid(&at("target"), e.to_string()))?;
            if app.channel.is_empty() {
                return Err(invalid(&at("channel"), "is empty".into()));
            }
            let s = &app.schedule;
            let schedule = Schedule {
                interval: duration(&at("schedule.interval"), &s.interval)?,
                jitter: duration(&at("schedule.jitter"), &s.jitter)?,
                retry_min: duration(&at("schedule.retry_min"), &s.retry_min)?,
                retry_max: duration(&at("schedule.retry_max"), &s.retry_max)?,
                windows: s
                    .windows
                    .iter()
                    .map(|w| {
                        Window::parse(w)
                            .map_err(|e| invalid(&at("schedule.windows"), e.to_string()))
                    })
                    .collect::<Result<_, _>>()?,
            };
            schedule
                .check()
                .map_err(|e| invalid(&at("schedule"), e.to_string()))?;
            let trigger_min_interval = duration(
                &at("schedule.trigger_min_interval"),
                &s.trigger_min_interval,
            )?;
            crate::engine::install_spec(&app.install)
                .map_err(|e| invalid(&at(e.setting), e.reason))?;
            let t = &app.trigger;
            let trigger_uids: Vec<u32> = t
                .users
                .iter()
                .map(|id| uid(&at("trigger.users"), id))
                .collect::<Result<_, _>>()?;
            let trigger_gids: Vec<u32> = t
                .groups
                .iter()
                .map(|id| gid(&at("trigger.groups"), id))
                .collect::<Result<_, _>>()?;
            let fifo_gid = match &t.fifo_group {
                Some(g) => Some(gid(&at("trigger.fifo_group"), g)?),
                None => trigger_gids.first().copied(),
            };
            if t.fifo.is_some() && fifo_gid.is_none() {
                return Err(invalid(
                    &at("trigger.fifo"),
                    "needs fifo_group (or groups) to say who may write it".into(),
                ));
            }
            if t.fifo.is_some() && fifo_gid == Some(0) {
                return Err(invalid(
                    &at("trigger.fifo_group"),
                    "must not be root's group".into(),
                ));
            }
            let metadata_dir = app.repository.metadata_dir.clone().unwrap_or_else(|| {
                file.agent
                    .state_dir
                    .join("apps")
                    .join(&name)
                    .join("metadata")
            });
            apps.insert(
                name.clone(),
                AppConfig {
                    name: name.clone(),
                    target: app.target,
                    channel: app.channel,
                    install_root: app.install_root,
                    ignore_staging: app.ignore_staging,
                    repository: app.repository,
                    metadata_dir,
                    schedule,
                    trigger_min_interval,
                    trigger_uids,
                    trigger_gids,
                    fifo: t.fifo.clone(),
                    fifo_gid,
                    status_file: t.status_file.clone(),
                    install: app.install,
                },
            );
        }
        if let Some(name) = &file.agent.self_app {
            let Some(app) = apps.get(name) else {
                return Err(invalid(
                    "agent.self_app",
                    format!("names no app: there is no [apps.{name}]"),
                ));
            };
            if app.install.format.as_deref() != Some("file") {
                return Err(invalid(
                    &format!("apps.{name}.install.format"),
                    "must be \"file\" for the agent's own binary (agent.self_app)".into(),
                ));
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            self_app: file.agent.self_app,
            state_dir: file.agent.state_dir,
            socket: file.agent.socket,
            machine_id: file.agent.machine_id,
            machine_id_file: file.agent.machine_id_file,
            admin_uids,
            apps,
        })
    }

    /// The machine's identifier for staged rollouts.
    pub fn machine_id(&self) -> Result<String, ConfigError> {
        if let Some(id) = &self.machine_id {
            return Ok(id.clone());
        }
        let text =
            std::fs::read_to_string(&self.machine_id_file).map_err(|source| ConfigError::Read {
                path: self.machine_id_file.clone(),
                source,
            })?;
        let id = text.trim();
        if id.is_empty() {
            return Err(ConfigError::Invalid {
                path: self.machine_id_file.clone(),
                setting: "machine id".into(),
                reason: "the file is empty".into(),
            });
        }
        Ok(id.to_string())
    }

    /// The agent's own directory for `app`.
    pub fn app_state_dir(&self, app: &str) -> PathBuf {
        self.state_dir.join("apps").join(app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[agent]
state_dir = "/var/lib/airlock-agent"
socket = "/run/airlock/agent.sock"
machine_id = "m1"

[apps.web]
target = "web/{version}/web.tar.gz"
install_root = "/srv/web"
[apps.web.repository]
metadata_url = "https://updates.example.org/metadata/"
targets_url = "https://updates.example.org/targets/"
trusted_root = "/etc/airlock/web-root.json"
[apps.web.trigger]
users = [33, "root"]
groups = ["root", 33]
"#;

    #[test]
    fn defaults_and_names() {
        let c = AgentConfig::parse(Path::new("agent.toml"), MINIMAL).unwrap();
        let web = &c.apps["web"];
        assert_eq!(web.channel, "stable");
        assert_eq!(web.schedule.interval, Duration::from_secs(6 * 3600));
        assert_eq!(web.trigger_uids, [33, 0]);
        assert_eq!(web.trigger_gids, [0, 33]);
        assert_eq!(
            web.metadata_dir,
            Path::new("/var/lib/airlock-agent/apps/web/metadata")
        );
        assert_eq!(web.install.keep, 3);
        assert_eq!(c.machine_id().unwrap(), "m1");
    }

    #[test]
    fn settings_that_cannot_work_are_refused_by_name() {
        for (change, says) in [
            (
                ("web/{version}/web.tar.gz", "web/web.tar.gz"),
                "apps.web.target",
            ),
            (("[apps.web]", "[apps.Web]"), "apps.Web"),
            (
                ("users = [33, \"root\"]", "users = [\"no-such-user-here\"]"),
                "apps.web.trigger.users",
            ),
            (
                ("machine_id = \"m1\"", "machine_id = \"m1\"\nsurprise = 1"),
                "unknown field",
            ),
            (
                (
                    "[apps.web.trigger]",
                    "[apps.web.schedule]\ninterval = \"5x\"\n[apps.web.trigger]",
                ),
                "apps.web.schedule.interval",
            ),
            (
                (
                    "[apps.web.trigger]",
                    "[apps.web.schedule]\ninterval = \"10s\"\n[apps.web.trigger]",
                ),
                "one minute",
            ),
            (
                (
                    "[apps.web.trigger]",
                    "[apps.web.schedule]\nwindows = [\"25:00-26:00\"]\n[apps.web.trigger]",
                ),
                "windows",
            ),
            (
                (
                    "groups = [\"root\", 33]",
                    "fifo = \"/run/airlock/web.trigger\"",
                ),
                "fifo_group",
            ),
        ] {
            let text = MINIMAL.replace(change.0, change.1);
            assert_ne!(text, MINIMAL);
            let err = AgentConfig::parse(Path::new("agent.toml"), &text).expect_err(says);
            let msg = airlock_core::error_chain(&err);
            assert!(msg.contains(says), "{says}: {msg}");
            assert!(msg.contains("agent.toml"), "{msg}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        for bad in ["", "h", "1.5h", "-1s", "99999999999999999999d", "1w"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
