//! One update check of one app: the same verification as `airlock update` (TUF refresh, the
//! root's transparency policy, the peer check), the core's choice of release, a verified
//! download, and the installer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlock_client::{UpdateError, Updater, UpdaterConfig};
use airlock_core::rollout::Version;
use airlock_core::rollout::offer::{OfferPolicy, choose_release};
use airlock_fetch::{FetchError, Fetcher, FetcherConfig, ProxyUrl, Trust, check_url_scheme};

use crate::config::AppConfig;
use crate::installer::{InstallOutcome, Installer, InstallerError};
use crate::state::Pending;

/// Why a check failed. Each names the app and the step.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("app {app}: repository setting {setting} is not usable")]
    Setting {
        app: String,
        setting: &'static str,
        #[source]
        source: Box<FetchError>,
    },
    #[error("app {app}: CA file {} is not usable", path.display())]
    CaFile {
        app: String,
        path: PathBuf,
        #[source]
        source: Box<airlock_fetch::TlsError>,
    },
    #[error("app {app}: cannot set up HTTPS")]
    Tls {
        app: String,
        #[source]
        source: Box<airlock_fetch::TlsError>,
    },
    #[error("app {app}: cannot read the trusted root {}", path.display())]
    TrustedRoot {
        app: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("app {app}: {step} failed")]
    Update {
        app: String,
        step: &'static str,
        #[source]
        source: Box<UpdateError>,
    },
    #[error(
        "app {app}: the target listing is incomplete ({roles} role(s) not read; raise repository.max_roles)"
    )]
    IncompleteListing { app: String, roles: usize },
    #[error("app {app}: cannot prepare {}", path.display())]
    Io {
        app: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("app {app}: the installer failed")]
    Installer {
        app: String,
        #[source]
        source: InstallerError,
    },
    #[error("app {app}: the installed version {version:?} is not a usable version")]
    InstalledVersion { app: String, version: String },
}

/// What a check found and did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct CheckReport {
    /// One line for people.
    pub summary: String,
    pub install: Option<InstallOutcome>,
    pub pending: Option<Pending>,
    /// Releases refused for their terms or version (path: reason).
    pub refused: Vec<String>,
}

/// Build the updater exactly as `airlock update` does, trusting `trusted_root` on first use.
pub fn updater(app: &AppConfig) -> Result<Updater, CheckError> {
    let repo = &app.repository;
    let setting = |setting, source| CheckError::Setting {
        app: app.name.clone(),
        setting,
        source: Box::new(source),
    };
    check_url_scheme(&repo.metadata_url, repo.allow_http_loopback)
        .map_err(|e| setting("metadata_url", e))?;
    check_url_scheme(&repo.targets_url, repo.allow_http_loopback)
        .map_err(|e| setting("targets_url", e))?;
    if let Some(url) = &repo.log_url {
        check_url_scheme(url, repo.allow_http_loopback).map_err(|e| setting("log_url", e))?;
    }
    for peer in &repo.peers {
        check_url_scheme(peer, repo.allow_http_loopback).map_err(|e| setting("peers", e))?;
    }
    for m in &repo.mirrors {
        for url in [&m.metadata_url, &m.targets_url].into_iter().flatten() {
            check_url_scheme(url, repo.allow_http_loopback).map_err(|e| setting("mirrors", e))?;
        }
    }
    let proxy = repo
        .proxy
        .as_deref()
        .map(ProxyUrl::parse)
        .transpose()
        .map_err(|e| setting("proxy", e))?;
    let trust = match &repo.ca_file {
        Some(path) => Trust::ca_bundle_file(path).map_err(|source| CheckError::CaFile {
            app: app.name.clone(),
            path: path.clone(),
            source: Box::new(source),
        })?,
        None => Trust::WebPki,
    };
    let update = |step, source| CheckError::Update {
        app: app.name.clone(),
        step,
        source: Box::new(source),
    };
    let fetcher = Fetcher::new(FetcherConfig {
        trust,
        allow_http_loopback: repo.allow_http_loopback,
        // `proxy` wins; otherwise the agent's HTTPS_PROXY / ALL_PROXY, minus NO_PROXY (e.g.
        // from the service's Environment=).
        proxy,
        use_env_proxy: true,
        ..FetcherConfig::default()
    })
    .map_err(|source| CheckError::Tls {
        app: app.name.clone(),
        source: Box::new(source),
    })?;
    if !app.metadata_dir.join("root.json").exists() {
        let root = std::fs::read(&repo.trusted_root).map_err(|source| CheckError::TrustedRoot {
            app: app.name.clone(),
            path: repo.trusted_root.clone(),
            source,
        })?;
        std::fs::create_dir_all(&app.metadata_dir).map_err(|source| CheckError::Io {
            app: app.name.clone(),
            path: app.metadata_dir.clone(),
            source,
        })?;
        Updater::init(&app.metadata_dir, &root).map_err(|e| update("trusting the root", e))?;
    }
    let mut cfg = UpdaterConfig::new(&app.metadata_dir, &repo.metadata_url, Arc::new(fetcher))
        .with_targets_base_url(&repo.targets_url);
    cfg.log_url.clone_from(&repo.log_url);
    cfg.peers.clone_from(&repo.peers);
    cfg.peers_required = repo.peers_required.unwrap_or(repo.peers.len());
    cfg.mirrors.clone_from(&repo.mirrors);
    Updater::new(cfg).map_err(|e| update("loading the trusted metadata", e))
}

/// Remove everything in `download_dir` but `keep`. Failures are logged: a file left here is
/// never trusted (a download is checked as a whole before use), only wasted space.
fn clear_downloads(download_dir: &Path, keep: Option<&Path>) {
    let Ok(entries) = std::fs::read_dir(download_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if Some(path.as_path()) == keep {
            continue;
        }
        let removed = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        if let Err(e) = removed {
            tracing::warn!("removing the old download {}: {e}", path.display());
        }
    }
}

/// Check `app` once and install what the core chooses.
pub fn check_app(
    app: &AppConfig,
    machine_id: &str,
    download_dir: &Path,
    installer: &dyn Installer,
    ignore_staging: bool,
) -> Result<CheckReport, CheckError> {
    let update = |step, source| CheckError::Update {
        app: app.name.clone(),
        step,
        source: Box::new(source),
    };
    let mut updater = updater(app)?;
    updater.refresh().map_err(|e| update("refresh", e))?;
    updater.check_peers().map_err(|e| update("peer check", e))?;
    let listing = updater
        .list_targets_within(app.repository.max_roles)
        .map_err(|e| update("listing targets", e))?;
    if listing.roles_not_visited > 0 {
        return Err(CheckError::IncompleteListing {
            app: app.name.clone(),
            roles: listing.roles_not_visited,
        });
    }
    let status = installer
        .status(app)
        .map_err(|source| CheckError::Installer {
            app: app.name.clone(),
            source,
        })?;
    let installed = status
        .current
        .as_deref()
        .map(|v| {
            Version::parse(v).map_err(|_| CheckError::InstalledVersion {
                app: app.name.clone(),
                version: v.to_string(),
            })
        })
        .transpose()?;
    // A bad version the core cannot parse can never be offered anyway.
    let bad: Vec<Version> = status
        .bad
        .iter()
        .filter_map(|v| Version::parse(v).ok())
        .collect();
    let policy = OfferPolicy {
        app: &app.name,
        pattern: &app.target,
        channel: &app.channel,
        machine_id,
        ignore_staging: ignore_staging || app.ignore_staging,
    };
    let offer = choose_release(
        listing
            .targets
            .iter()
            .map(|t| (t.path.as_str(), t.file.custom.as_deref())),
        &policy,
        installed.as_ref(),
        &bad,
    );
    let mut report = CheckReport {
        pending: offer.pending.as_ref().map(|(r, bucket)| Pending {
            version: r.version.to_string(),
            rollout_percent: r.rollout_percent,
            machine_bucket: *bucket,
        }),
        refused: offer
            .refused
            .iter()
            .map(|r| format!("{}: {}", r.path, airlock_core::error_chain(&r.reason)))
            .collect(),
        ..CheckReport::default()
    };
    for refused in &report.refused {
        tracing::warn!(app = %app.name, "release refused: {refused}");
    }
    let Some(release) = offer.install else {
        clear_downloads(download_dir, None);
        report.summary = match (&installed, &report.pending) {
            (_, Some(p)) => format!(
                "up to date; {} is staged to {}% of machines, this machine's bucket is {}",
                p.version, p.rollout_percent, p.machine_bucket
            ),
            (Some(v), None) => format!("up to date at {v}"),
            (None, None) => "nothing installed and no release offered".into(),
        };
        return Ok(report);
    };
    let Some(info) = listing.targets.iter().find(|t| t.path == release.path) else {
        // choose_release only returns listed paths.
        report.summary = "nothing to install".into();
        return Ok(report);
    };
    std::fs::create_dir_all(download_dir).map_err(|source| CheckError::Io {
        app: app.name.clone(),
        path: download_dir.to_path_buf(),
        source,
    })?;
    // One directory per target, the file under the target's own base name: a plain-file
    // release is installed under that name (`app/2.0/app` -> `current/app`).
    let dest_dir = Updater::local_target_path(download_dir, &info.path);
    std::fs::create_dir_all(&dest_dir).map_err(|source| CheckError::Io {
        app: app.name.clone(),
        path: dest_dir.clone(),
        source,
    })?;
    // Bytes of this release that a stop or a cut left go on being used (airlock-client
    // resumes from them and checks the whole file); those of other releases are not wanted.
    clear_downloads(download_dir, Some(&dest_dir));
    let dest = dest_dir.join(base_name(&info.path));
    if !updater
        .find_cached_target(info, &dest)
        .map_err(|e| update("checking the verified download on disk", e))?
    {
        updater
            .download_target(info, &dest)
            .map_err(|e| update("download", e))?;
    }
    let outcome = installer
        .install(app, &dest, release.version.as_str(), false)
        .map_err(|source| CheckError::Installer {
            app: app.name.clone(),
            source,
        })?;
    // Installed or refused by its health check: the verified copy is not needed again.
    clear_downloads(download_dir, None);
    report.summary = match &outcome {
        InstallOutcome::Installed { version } if offer.staging_bypassed => {
            format!("installed {version} (staging bypassed)")
        }
        InstallOutcome::Installed { version } => format!("installed {version}"),
        InstallOutcome::RolledBack {
            version,
            to,
            reason,
        } => format!(
            "{version} failed ({reason}); back on {}; {version} marked bad",
            to.as_deref().unwrap_or("nothing")
        ),
    };
    report.install = Some(outcome);
    Ok(report)
}

/// The last segment of a target path when it is a usable file name, else `artifact` (with the
/// path's extension kept off: the format is then taken from the configuration).
fn base_name(target_path: &str) -> String {
    match target_path.rsplit('/').next() {
        Some(b) if !b.is_empty() && b != "." && b != ".." && !b.contains('\\') => b.to_string(),
        _ => "artifact".to_string(),
    }
}
