//! `airlock-repo.toml`: expiry periods per role and the index of key files.
//!
//! The file lives in the working directory's current generation, so it changes atomically with
//! the staged metadata it describes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A length of time written as a number and a unit: `90d`, `12h`, `2w`, `30m`, `45s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    seconds: i64,
}

impl Period {
    pub fn from_secs(seconds: i64) -> Self {
        Period { seconds }
    }
    pub fn days(days: i64) -> Self {
        Period {
            seconds: days.saturating_mul(86_400),
        }
    }
    pub fn as_secs(self) -> i64 {
        self.seconds
    }
    pub fn to_duration(self) -> chrono::Duration {
        chrono::Duration::seconds(self.seconds)
    }
}

impl FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || format!("period {s:?} is not a number followed by s, m, h, d or w (e.g. 90d)");
        let unit = s.chars().last().ok_or_else(bad)?;
        let number = s.get(..s.len() - unit.len_utf8()).ok_or_else(bad)?;
        let n: i64 = number.parse().map_err(|_| bad())?;
        let mult = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        // At most 100 years: anything longer is a typo, and keeps date arithmetic in range.
        if n <= 0 || n.saturating_mul(mult) > 100 * 366 * 86_400 {
            return Err(format!(
                "period {s:?} must be positive and at most 100 years"
            ));
        }
        Ok(Period { seconds: n * mult })
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        if s % (7 * 86_400) == 0 {
            write!(f, "{}w", s / (7 * 86_400))
        } else if s % 86_400 == 0 {
            write!(f, "{}d", s / 86_400)
        } else if s % 3600 == 0 {
            write!(f, "{}h", s / 3600)
        } else if s % 60 == 0 {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

impl Serialize for Period {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// How long each role's metadata stays valid after it is signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiryConfig {
    pub root: Period,
    pub targets: Period,
    pub snapshot: Period,
    pub timestamp: Period,
    /// Delegated targets roles (hash bins included).
    pub delegated: Period,
}

impl Default for ExpiryConfig {
    fn default() -> Self {
        ExpiryConfig {
            root: Period::days(365),
            targets: Period::days(90),
            snapshot: Period::days(7),
            timestamp: Period::days(1),
            delegated: Period::days(90),
        }
    }
}

impl ExpiryConfig {
    pub fn for_role(&self, role: &str) -> Period {
        match role {
            "root" => self.root,
            "targets" => self.targets,
            "snapshot" => self.snapshot,
            "timestamp" => self.timestamp,
            _ => self.delegated,
        }
    }
}

/// One key the repository knows: its id, which role it was made for, and where its files are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub keyid: String,
    /// The role the key was created for (informational; authority comes from the metadata).
    pub role: String,
    pub scheme: String,
    /// Private key file, relative to the repository directory. Absent for keys held elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<String>,
    /// A key held outside Airlock's key files, as a key reference (`gpg:KEYID`, `pkcs11:...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<String>,
    /// Public key file (TUF JSON), relative to the repository directory.
    pub public: String,
}

/// The whole configuration file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// Format version of this file.
    pub format: u32,
    pub expiry: ExpiryConfig,
    #[serde(default)]
    pub publish: PublishConfig,
    #[serde(default)]
    pub keys: Vec<KeyEntry>,
    /// Where `publish` logs releases when a root carries a transparency policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_log: Option<ReleaseLogConfig>,
}

/// The transparency log `publish` submits release statements to (`[release_log]`).
///
/// ```toml
/// [release_log]
/// url = "https://log.example.com"   # the log's submission URL (POST /add, GET /proof/N)
/// key = "keys/publisher.key"        # note key from `airlock log keygen` (name in key.pub)
/// ca_file = "/etc/airlock/log-ca.pem"  # optional: CAs for the log's TLS (default: webpki)
/// timeout = "60s"                   # how long to wait for a cosigned checkpoint
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseLogConfig {
    pub url: String,
    /// Publisher note key file, relative to the repository directory or absolute.
    pub key: String,
    /// The key's name, when no `<key>.pub` (written by `airlock log keygen`) lies beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    /// CA certificates (PEM) trusted for the log's TLS; absent: the webpki roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Longest wait for a published checkpoint that covers the submitted statements.
    #[serde(default = "default_log_timeout")]
    pub timeout: Period,
}

fn default_log_timeout() -> Period {
    Period::from_secs(60)
}

impl ReleaseLogConfig {
    pub fn new(url: &str, key: &str) -> Self {
        ReleaseLogConfig {
            url: url.to_string(),
            key: key.to_string(),
            key_name: None,
            ca_file: None,
            timeout: default_log_timeout(),
        }
    }
}

/// How `publish` writes the published tree (`[publish]` in the config file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// List the length and SHA-256 of every targets role file in the snapshot (the timestamp
    /// always lists them for the snapshot). Spec 4.4's option: a client then downloads no
    /// more than the listed length, so a compromised snapshot or timestamp key cannot feed it
    /// endless or substituted role files. Costs a bigger snapshot.
    pub meta_hashes: bool,
    /// Releases (snapshot versions) whose metadata files stay in `published/metadata`, the
    /// current one included; `airlock repo gc` removes target files none of them lists. At
    /// least 1; the default 2 keeps what a client that read the previous timestamp a moment
    /// ago still fetches.
    pub keep_releases: u64,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            meta_hashes: false,
            keep_releases: 2,
        }
    }
}

pub const CONFIG_FORMAT: u32 = 1;

impl RepoConfig {
    pub fn new(expiry: ExpiryConfig) -> Self {
        RepoConfig {
            format: CONFIG_FORMAT,
            expiry,
            publish: PublishConfig::default(),
            keys: Vec::new(),
            release_log: None,
        }
    }

    pub fn key(&self, keyid: &str) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| k.keyid == keyid)
    }

    pub fn to_toml(&self) -> Result<String, String> {
        let body = toml::to_string_pretty(self).map_err(|e| e.to_string())?;
        Ok(format!(
            "# airlock repository configuration (written by `airlock repo`).\n\
             # Periods: a number and s, m, h, d or w. Key paths are relative to the repository.\n\n{body}"
        ))
    }

    pub fn from_toml(text: &str) -> Result<Self, String> {
        let config: RepoConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        if config.format != CONFIG_FORMAT {
            return Err(format!(
                "format {} is not supported (this airlock reads format {CONFIG_FORMAT})",
                config.format
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_and_print() {
        assert_eq!("90d".parse::<Period>().unwrap().as_secs(), 90 * 86_400);
        assert_eq!("12h".parse::<Period>().unwrap().to_string(), "12h");
        assert_eq!("14d".parse::<Period>().unwrap().to_string(), "2w");
        for bad in ["", "d", "0d", "-1d", "5y", "1.5d", "999999999d"] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
    }

    #[test]
    fn config_round_trips() {
        let mut c = RepoConfig::new(ExpiryConfig::default());
        c.keys.push(KeyEntry {
            keyid: "ab".into(),
            role: "root".into(),
            scheme: "ed25519".into(),
            private: Some("keys/root-1.key".into()),
            external: Some("gpg:ABCD".into()),
            public: "keys/root-1.pub.json".into(),
        });
        let text = c.to_toml().unwrap();
        assert_eq!(RepoConfig::from_toml(&text).unwrap(), c);
        let mut log = ReleaseLogConfig::new("https://log.example", "keys/publisher.key");
        log.ca_file = Some("/etc/ca.pem".into());
        c.release_log = Some(log);
        let text = c.to_toml().unwrap();
        assert!(
            text.contains("[release_log]") && text.contains("timeout = \"1m\""),
            "{text}"
        );
        assert_eq!(RepoConfig::from_toml(&text).unwrap(), c);
        assert!(RepoConfig::from_toml("format = 2\n[expiry]\nroot='1d'").is_err());
    }
}
