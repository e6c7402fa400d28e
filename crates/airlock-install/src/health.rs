//! Health checks and hooks as the engine runs them.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use airlock_fetch::{Fetcher, FetcherConfig};

use crate::run::{CommandRecord, run_command};

/// How the engine decides that a release it made current works.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum HealthCheck {
    /// Every release is healthy.
    #[default]
    None,
    /// Exit status 0 within `timeout`.
    Command {
        argv: Vec<String>,
        timeout: Duration,
    },
    /// A 2xx answer to GET `url` (http or https on 127.0.0.0/8, ::1 or localhost), retried until
    /// `timeout` so that a restarting service has time to come up. An https URL needs a
    /// certificate the webpki roots accept; a local service is usually checked over http.
    Http { url: String, timeout: Duration },
    /// `systemctl is-active UNIT` says `active` within `timeout` (polled; `failed` ends early).
    SystemdUnit { unit: String, timeout: Duration },
}

/// Commands run around the switch, each at most `timeout`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hooks {
    /// Runs after the release is unpacked, before the switch; failing it cancels the install.
    pub pre_install: Option<Vec<String>>,
    /// Runs after each switch (also after a switch back, for the old release), e.g. to restart
    /// the service; failing it after an install counts as a failed release.
    pub post_install: Option<Vec<String>>,
    pub timeout: Duration,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            pre_install: None,
            post_install: None,
            timeout: Duration::from_secs(60),
        }
    }
}

/// The environment of hooks and command checks.
pub(crate) struct RunEnv<'a> {
    pub root: &'a Path,
    pub version: Option<&'a str>,
    pub previous: Option<&'a str>,
    pub release_dir: Option<&'a Path>,
}

impl RunEnv<'_> {
    fn vars(&self, what: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AIRLOCK_HOOK", what.to_string()),
            ("AIRLOCK_APP_ROOT", self.root.display().to_string()),
            ("AIRLOCK_VERSION", self.version.unwrap_or("").to_string()),
            (
                "AIRLOCK_PREVIOUS_VERSION",
                self.previous.unwrap_or("").to_string(),
            ),
            (
                "AIRLOCK_RELEASE_DIR",
                self.release_dir
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
        ]
    }

    pub fn hook(&self, what: &str, argv: &[String], timeout: Duration) -> CommandRecord {
        run_command(what, argv, self.root, &self.vars(what), timeout)
    }

    pub fn health(&self, check: &HealthCheck) -> Option<CommandRecord> {
        match check {
            HealthCheck::None => None,
            HealthCheck::Command { argv, timeout } => Some(run_command(
                "health",
                argv,
                self.root,
                &self.vars("health"),
                *timeout,
            )),
            HealthCheck::Http { url, timeout } => Some(http_check(url, *timeout)),
            HealthCheck::SystemdUnit { unit, timeout } => {
                Some(systemd_check(self.root, unit, *timeout))
            }
        }
    }
}

/// Whether `url` is http(s) to a loopback address (no user info, which could hide the host).
pub fn is_loopback_url(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback() && ip != Ipv4Addr::UNSPECIFIED,
        Ok(IpAddr::V6(ip)) => ip.is_loopback(),
        Err(_) => false,
    }
}

fn http_check(url: &str, timeout: Duration) -> CommandRecord {
    let started = Instant::now();
    let mut record = CommandRecord::new("health", vec!["GET".into(), url.to_string()]);
    let finish = |mut r: CommandRecord| {
        r.millis = started.elapsed().as_millis() as u64;
        r
    };
    if !is_loopback_url(url) {
        record.result = "refused: a health URL must be on loopback".into();
        return finish(record);
    }
    let attempt_limit = timeout.clamp(Duration::from_millis(100), Duration::from_secs(10));
    let fetcher = match Fetcher::new(FetcherConfig {
        allow_http_loopback: true,
        connect_timeout: attempt_limit,
        read_timeout: attempt_limit,
        min_rate: None,
        retries: 0,
        max_redirects: 0,
        ..FetcherConfig::default()
    }) {
        Ok(f) => f,
        Err(e) => {
            record.result = airlock_core::error_chain(&e);
            return finish(record);
        }
    };
    let deadline = started + timeout;
    loop {
        match fetcher.fetch_capped(url, 64 * 1024) {
            Ok(body) => {
                record.success = true;
                record.result = "HTTP 2xx".into();
                record.stdout = String::from_utf8_lossy(&body)
                    .chars()
                    .take(crate::run::OUTPUT_CAP)
                    .collect();
                return finish(record);
            }
            Err(e) => record.result = airlock_core::error_chain(&e),
        }
        if Instant::now() + Duration::from_millis(100) >= deadline {
            record.timed_out = true;
            record.result = format!(
                "no healthy answer within {} s (last: {})",
                timeout.as_secs_f64(),
                record.result
            );
            return finish(record);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn valid_unit(unit: &str) -> bool {
    !unit.is_empty()
        && !unit.starts_with('-')
        && unit
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@._-:\\".contains(&b))
}

fn systemd_check(root: &Path, unit: &str, timeout: Duration) -> CommandRecord {
    let started = Instant::now();
    let argv = vec![
        "systemctl".to_string(),
        "is-active".to_string(),
        unit.to_string(),
    ];
    if !valid_unit(unit) {
        let mut r = CommandRecord::new("health", argv);
        r.result = format!("refused: {unit:?} is not a unit name");
        return r;
    }
    let deadline = started + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut r = run_command(
            "health",
            &argv,
            root,
            &[],
            left.max(Duration::from_millis(100)),
        );
        let state = r.stdout.trim().to_string();
        // `failed` will not become `active` on its own; anything else may still be starting.
        let final_state = state == "failed";
        if r.success && state == "active" {
            r.result = "active".into();
            r.millis = started.elapsed().as_millis() as u64;
            return r;
        }
        if final_state || r.result.starts_with("could not start") || Instant::now() >= deadline {
            r.success = false;
            r.timed_out = !final_state && Instant::now() >= deadline;
            r.result = format!("unit {unit} is {state:?} ({})", r.result);
            r.millis = started.elapsed().as_millis() as u64;
            return r;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_health_urls() {
        for ok in [
            "http://127.0.0.1:8080/health",
            "http://localhost/",
            "https://[::1]:443/x",
            "http://127.1.2.3",
        ] {
            assert!(is_loopback_url(ok), "{ok}");
        }
        for bad in [
            "http://example.com/",
            "http://127.0.0.1.example.com/",
            "http://user@127.0.0.1/",
            "ftp://127.0.0.1/",
            "http://0.0.0.0/",
            "http://10.0.0.1/",
            "127.0.0.1/health",
        ] {
            assert!(!is_loopback_url(bad), "{bad}");
        }
    }
}
