//! The install engine behind the agent: [`airlock_install`], configured from an app's
//! `[apps.NAME.install]` section. The section is turned into an [`InstallSpec`] when the
//! configuration is loaded, so a bad setting is refused at start, naming it.

use std::path::Path;
use std::time::Duration;

use airlock_install::{
    AppLayout, ArchiveFormat, HealthCheck, Hooks, InstallError, InstallSpec, UnpackLimits,
    is_loopback_url,
};

use crate::config::{AppConfig, InstallConfig, parse_duration};
use crate::installer::{InstallOutcome, Installer, InstallerError, InstallerStatus};

const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an `[install]` section cannot be used; the message names the setting.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {reason}")]
pub struct SpecError {
    pub setting: &'static str,
    pub reason: String,
}

fn spec_error(setting: &'static str, reason: impl Into<String>) -> SpecError {
    SpecError {
        setting,
        reason: reason.into(),
    }
}

fn timeout(
    setting: &'static str,
    value: &Option<String>,
    default: Duration,
) -> Result<Duration, SpecError> {
    match value {
        None => Ok(default),
        Some(v) => parse_duration(v)
            .ok_or_else(|| spec_error(setting, format!("{v:?} is not a duration like 30s or 5m"))),
    }
}

/// The engine's settings for an app's `[install]` section.
pub fn install_spec(install: &InstallConfig) -> Result<InstallSpec, SpecError> {
    let format = match install.format.as_deref() {
        None => None,
        Some("tar.gz") => Some(ArchiveFormat::TarGz),
        Some("tar.zst") => Some(ArchiveFormat::TarZst),
        Some("zip") => Some(ArchiveFormat::Zip),
        Some("file") => Some(ArchiveFormat::File),
        Some(other) => {
            return Err(spec_error(
                "install.format",
                format!("{other:?} is not one of tar.gz, tar.zst, zip, file"),
            ));
        }
    };
    let mut limits = UnpackLimits {
        allow_setuid: install.allow_setuid,
        ..UnpackLimits::default()
    };
    if let Some(n) = install.max_unpacked_bytes {
        limits.max_total_bytes = n;
        limits.max_entry_bytes = limits.max_entry_bytes.min(n);
    }
    if let Some(n) = install.max_entries {
        limits.max_entries = n;
    }
    let h = &install.health;
    let health_timeout = timeout("install.health.timeout", &h.timeout, DEFAULT_HEALTH_TIMEOUT)?;
    let health = match (&h.command, &h.url, &h.systemd_unit) {
        (None, None, None) => HealthCheck::None,
        (Some(argv), None, None) => {
            if argv.is_empty() {
                return Err(spec_error("install.health.command", "is empty"));
            }
            HealthCheck::Command {
                argv: argv.clone(),
                timeout: health_timeout,
            }
        }
        (None, Some(url), None) => {
            if !is_loopback_url(url) {
                return Err(spec_error(
                    "install.health.url",
                    format!("{url:?} is not an http(s) URL on 127.0.0.1, [::1] or localhost"),
                ));
            }
            HealthCheck::Http {
                url: url.clone(),
                timeout: health_timeout,
            }
        }
        (None, None, Some(unit)) => HealthCheck::SystemdUnit {
            unit: unit.clone(),
            timeout: health_timeout,
        },
        _ => {
            return Err(spec_error(
                "install.health",
                "give one of command, url and systemd_unit",
            ));
        }
    };
    for (setting, hook) in [
        ("install.hooks.pre_install", &install.hooks.pre_install),
        ("install.hooks.post_install", &install.hooks.post_install),
    ] {
        if hook.as_ref().is_some_and(Vec::is_empty) {
            return Err(spec_error(setting, "is empty"));
        }
    }
    let hooks = Hooks {
        pre_install: install.hooks.pre_install.clone(),
        post_install: install.hooks.post_install.clone(),
        timeout: timeout(
            "install.hooks.timeout",
            &install.hooks.timeout,
            Hooks::default().timeout,
        )?,
    };
    Ok(InstallSpec {
        format,
        limits,
        health,
        hooks,
        keep: install.keep,
    })
}

/// airlock-install as the agent's [`Installer`].
#[derive(Debug, Default)]
pub struct Engine;

fn layout_and_spec(app: &AppConfig) -> Result<(AppLayout, InstallSpec), InstallerError> {
    Ok((
        AppLayout::new(&app.install_root),
        install_spec(&app.install)
            .map_err(|e| format!("apps.{}.{e}", app.name))
            .map_err(InstallerError::from)?,
    ))
}

impl Installer for Engine {
    fn install(
        &self,
        app: &AppConfig,
        artifact: &Path,
        version: &str,
        allow_downgrade: bool,
    ) -> Result<InstallOutcome, InstallerError> {
        let (layout, spec) = layout_and_spec(app)?;
        match airlock_install::install(&layout, &spec, artifact, version, allow_downgrade) {
            Ok(report) => Ok(InstallOutcome::Installed {
                version: report.version,
            }),
            Err(InstallError::RolledBack {
                version,
                back_to,
                reason,
            }) => Ok(InstallOutcome::RolledBack {
                version,
                to: back_to,
                reason,
            }),
            Err(e) => Err(Box::new(e)),
        }
    }

    fn rollback(
        &self,
        app: &AppConfig,
        to: Option<&str>,
    ) -> Result<InstallOutcome, InstallerError> {
        let (layout, spec) = layout_and_spec(app)?;
        let report = airlock_install::rollback(&layout, &spec, to)?;
        Ok(InstallOutcome::Installed {
            version: report.version,
        })
    }

    fn recover(&self, app: &AppConfig) -> Result<(), InstallerError> {
        airlock_install::recover(&AppLayout::new(&app.install_root))?;
        Ok(())
    }

    fn status(&self, app: &AppConfig) -> Result<InstallerStatus, InstallerError> {
        let status = airlock_install::status(&AppLayout::new(&app.install_root))?;
        Ok(InstallerStatus {
            current: status.installed.clone(),
            bad: status.bad.keys().cloned().collect(),
            detail: serde_json::to_value(&status)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HealthConfig, HooksConfig};

    #[test]
    fn install_sections_are_checked_naming_the_setting() {
        let ok = InstallConfig::default();
        assert_eq!(install_spec(&ok).unwrap().health, HealthCheck::None);
        let bad = |c: InstallConfig| install_spec(&c).unwrap_err().to_string();
        let with_health = |h: HealthConfig| InstallConfig {
            health: h,
            ..InstallConfig::default()
        };
        assert!(
            bad(InstallConfig {
                format: Some("rar".into()),
                ..InstallConfig::default()
            })
            .starts_with("install.format:")
        );
        assert!(
            bad(with_health(HealthConfig {
                command: Some(vec!["true".into()]),
                url: Some("http://127.0.0.1:1/".into()),
                ..HealthConfig::default()
            }))
            .starts_with("install.health:")
        );
        assert!(
            bad(with_health(HealthConfig {
                url: Some("http://example.org/health".into()),
                ..HealthConfig::default()
            }))
            .starts_with("install.health.url:")
        );
        assert!(
            bad(with_health(HealthConfig {
                command: Some(vec!["true".into()]),
                timeout: Some("soon".into()),
                ..HealthConfig::default()
            }))
            .starts_with("install.health.timeout:")
        );
        assert!(
            bad(InstallConfig {
                hooks: HooksConfig {
                    post_install: Some(vec![]),
                    ..HooksConfig::default()
                },
                ..InstallConfig::default()
            })
            .starts_with("install.hooks.post_install:")
        );
    }
}
