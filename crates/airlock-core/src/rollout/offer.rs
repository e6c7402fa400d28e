//! Which release this machine is offered.
//!
//! Every listed target whose path fits the app's pattern (`myapp/{version}/myapp.tar.gz`: one
//! `{version}` placeholder, the rest literal) is a release of the app. Its terms come from the
//! target's custom metadata, signed with the targets role like its hashes:
//!
//! - `channel`: a string or a list of strings, the channels the release is on (absent:
//!   `"stable"`). The machine takes releases of its one configured channel.
//! - `rollout_percent`: an integer 0..=100 (absent: 100), the share of machines offered the
//!   release. A machine belongs to the first `rollout_percent` percent when its bucket
//!   ([`staging_bucket`]: SHA-256 of the app, the version and the machine's stable identifier,
//!   reduced to 0..100) is below it. The bucket does not depend on the percentage, so raising
//!   10 to 50 keeps the first 10% and adds others; it depends on the version, so a different
//!   tenth of the machines goes first for each release.
//!
//! A release with terms that do not parse (wrong type, a percentage above 100) or a version
//! that is not a [`Version`] is refused, never guessed at: it is reported and not offered.
//! Versions the agent marked bad (a failed health check) are never offered again, and nothing
//! at or below the installed version is offered (a person asks for a downgrade explicitly).

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::version::{Version, VersionError};

/// The placeholder an app's target pattern must contain exactly once.
pub const VERSION_PLACEHOLDER: &str = "{version}";

/// The channel of a release that names none.
pub const DEFAULT_CHANNEL: &str = "stable";

/// What the machine wants, from its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferPolicy<'a> {
    /// The app's name (part of the staging hash).
    pub app: &'a str,
    /// Target path pattern with one `{version}`.
    pub pattern: &'a str,
    /// The one channel this machine follows.
    pub channel: &'a str,
    /// The machine's stable identifier (e.g. `/etc/machine-id`).
    pub machine_id: &'a str,
    /// A person asked to take staged releases now, on this machine.
    pub ignore_staging: bool,
}

/// A release's terms, from its custom metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseTerms {
    pub channels: Vec<String>,
    pub rollout_percent: u8,
}

/// Why a release's custom metadata or path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TermsError {
    #[error("custom metadata is not a JSON object")]
    CustomNotObject,
    #[error("custom \"channel\" must be a non-empty string or a non-empty list of them")]
    BadChannel,
    #[error("custom \"rollout_percent\" must be an integer from 0 to 100")]
    BadPercent,
    #[error("the version in the path is not usable")]
    BadVersion(#[source] VersionError),
}

/// Why an app's pattern cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("target pattern {0:?} must contain \"{{version}}\" exactly once")]
    Placeholder(String),
    #[error("target pattern {0:?} has a brace outside \"{{version}}\"")]
    StrayBrace(String),
}

/// Check an app's target pattern.
pub fn check_pattern(pattern: &str) -> Result<(), PatternError> {
    if pattern.matches(VERSION_PLACEHOLDER).count() != 1 {
        return Err(PatternError::Placeholder(pattern.to_string()));
    }
    if pattern
        .replacen(VERSION_PLACEHOLDER, "", 1)
        .contains(['{', '}'])
    {
        return Err(PatternError::StrayBrace(pattern.to_string()));
    }
    Ok(())
}

/// The version `path` carries under `pattern`: `None` when the path is not the app's,
/// `Some(Err)` when it is but the version is unusable.
pub fn version_in_path(pattern: &str, path: &str) -> Option<Result<Version, VersionError>> {
    let (prefix, suffix) = pattern.split_once(VERSION_PLACEHOLDER)?;
    let middle = path.strip_prefix(prefix)?.strip_suffix(suffix)?;
    // A version never spans directories; a path that would needs another pattern.
    if middle.contains('/') {
        return None;
    }
    Some(Version::parse(middle))
}

impl ReleaseTerms {
    /// Read the terms from a target's `custom` (absent or without the fields: stable, 100%).
    pub fn from_custom(custom: Option<&Value>) -> Result<Self, TermsError> {
        let mut terms = Self {
            channels: vec![DEFAULT_CHANNEL.to_string()],
            rollout_percent: 100,
        };
        let Some(custom) = custom else {
            return Ok(terms);
        };
        let Value::Object(map) = custom else {
            return Err(TermsError::CustomNotObject);
        };
        if let Some(channel) = map.get("channel") {
            terms.channels = match channel {
                Value::String(s) if !s.is_empty() => vec![s.clone()],
                Value::Array(list) if !list.is_empty() => list
                    .iter()
                    .map(|v| match v {
                        Value::String(s) if !s.is_empty() => Ok(s.clone()),
                        _ => Err(TermsError::BadChannel),
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(TermsError::BadChannel),
            };
        }
        if let Some(percent) = map.get("rollout_percent") {
            terms.rollout_percent = percent
                .as_u64()
                .filter(|p| *p <= 100)
                .and_then(|p| u8::try_from(p).ok())
                .ok_or(TermsError::BadPercent)?;
        }
        Ok(terms)
    }
}

/// The machine's bucket for one release of one app, in 0..100.
pub fn staging_bucket(app: &str, version: &str, machine_id: &str) -> u8 {
    let mut h = Sha256::new();
    // Length-prefixed fields, so no two (app, version, id) triples hash the same input.
    for field in [app, version, machine_id] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 2^64 mod 100 = 16: the bias is 16 in 2^64, far below anything measurable.
    (u64::from_be_bytes(first) % 100) as u8
}

/// A release chosen or held back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    pub path: String,
    pub version: Version,
    pub rollout_percent: u8,
}

/// A release that fit the pattern but was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedTarget {
    pub path: String,
    pub reason: TermsError,
}

/// The decision for one check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offer {
    /// The newest release for this machine, newer than the installed one.
    pub install: Option<Release>,
    /// A newer release on the channel that staging holds back from this machine, with the
    /// machine's bucket (it is offered once `rollout_percent` exceeds the bucket).
    pub pending: Option<(Release, u8)>,
    /// The person bypassed staging to get `install`.
    pub staging_bypassed: bool,
    /// Releases of the app refused for their terms or version.
    pub refused: Vec<RefusedTarget>,
}

/// Choose among `targets` (path, custom metadata) for the machine. See the module docs.
pub fn choose_release<'a>(
    targets: impl IntoIterator<Item = (&'a str, Option<&'a Value>)>,
    policy: &OfferPolicy<'_>,
    installed: Option<&Version>,
    bad: &[Version],
) -> Offer {
    let mut offer = Offer::default();
    // The newest eligible and the newest on the channel, staged or not.
    let mut eligible: Option<Release> = None;
    let mut newest: Option<(Release, u8)> = None;
    for (path, custom) in targets {
        let version = match version_in_path(policy.pattern, path) {
            None => continue,
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                offer.refused.push(RefusedTarget {
                    path: path.to_string(),
                    reason: TermsError::BadVersion(e),
                });
                continue;
            }
        };
        let terms = match ReleaseTerms::from_custom(custom) {
            Ok(t) => t,
            Err(reason) => {
                offer.refused.push(RefusedTarget {
                    path: path.to_string(),
                    reason,
                });
                continue;
            }
        };
        if !terms.channels.iter().any(|c| c == policy.channel)
            || bad.contains(&version)
            || installed.is_some_and(|i| version <= *i)
        {
            continue;
        }
        let release = Release {
            path: path.to_string(),
            version,
            rollout_percent: terms.rollout_percent,
        };
        let bucket = staging_bucket(policy.app, release.version.as_str(), policy.machine_id);
        // Ties in order (1.0+a, 1.0+b) go to the smaller path, whatever the listing order.
        let better = |current: Option<&Release>| {
            current.is_none_or(|c| {
                release.version > c.version
                    || (release.version == c.version && release.path < c.path)
            })
        };
        if bucket < terms.rollout_percent && better(eligible.as_ref()) {
            eligible = Some(release.clone());
        }
        if better(newest.as_ref().map(|(r, _)| r)) {
            newest = Some((release, bucket));
        }
    }
    match (newest, policy.ignore_staging) {
        (Some((newest, _)), true) => {
            offer.staging_bypassed = eligible.as_ref() != Some(&newest);
            offer.install = Some(newest);
        }
        (Some((newest, bucket)), false) => {
            if eligible.as_ref() != Some(&newest) {
                offer.pending = Some((newest, bucket));
            }
            offer.install = eligible;
        }
        (None, _) => {}
    }
    offer
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PATTERN: &str = "myapp/{version}/myapp.tar.gz";

    fn policy<'a>(machine_id: &'a str) -> OfferPolicy<'a> {
        OfferPolicy {
            app: "myapp",
            pattern: PATTERN,
            channel: "stable",
            machine_id,
            ignore_staging: false,
        }
    }

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn path(version: &str) -> String {
        PATTERN.replace("{version}", version)
    }

    #[test]
    fn staged_share_over_ten_thousand_machines_is_the_percentage() {
        // Deterministic: the same ids give the same count on every run.
        let ids: Vec<String> = (0..10_000u32)
            .map(|i| format!("{:032x}", u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        for (version, percent) in [("2.0.0", 10u8), ("2.0.0", 50), ("3.1.4", 10), ("3.1.4", 1)] {
            let taking = ids
                .iter()
                .filter(|id| staging_bucket("myapp", version, id) < percent)
                .count();
            let expected = usize::from(percent) * 100;
            // Binomial sd at 10,000 machines is at most 50: 4 sd either side.
            assert!(
                taking.abs_diff(expected) <= 200,
                "{version} at {percent}%: {taking} of 10000 machines"
            );
        }
        // Another release picks another first tenth: the two sets overlap about 10%.
        let first = |version: &str| -> Vec<bool> {
            ids.iter()
                .map(|id| staging_bucket("myapp", version, id) < 10)
                .collect()
        };
        let (a, b) = (first("2.0.0"), first("3.1.4"));
        let both = a.iter().zip(&b).filter(|(x, y)| **x && **y).count();
        assert!(both < 250, "{both} machines are first for both releases");
    }

    #[test]
    fn a_staged_release_reaches_this_machine_only_at_its_bucket() {
        let id = "0123456789abcdef0123456789abcdef";
        let bucket = staging_bucket("myapp", "2.0", id);
        let p = path("2.0");
        for percent in 0..=100u8 {
            let custom = json!({"rollout_percent": percent});
            let offer = choose_release(
                [(p.as_str(), Some(&custom))],
                &policy(id),
                Some(&v("1.0")),
                &[],
            );
            if percent > bucket {
                assert_eq!(
                    offer.install.map(|r| r.version),
                    Some(v("2.0")),
                    "{percent}%"
                );
                assert_eq!(offer.pending, None);
            } else {
                assert_eq!(offer.install, None, "{percent}% with bucket {bucket}");
                let (held, b) = offer.pending.expect("pending");
                assert_eq!((held.version, b), (v("2.0"), bucket));
            }
        }
        // A person bypasses staging for this machine.
        let custom = json!({"rollout_percent": 0});
        let offer = choose_release(
            [(p.as_str(), Some(&custom))],
            &OfferPolicy {
                ignore_staging: true,
                ..policy(id)
            },
            Some(&v("1.0")),
            &[],
        );
        assert_eq!(offer.install.map(|r| r.version), Some(v("2.0")));
        assert!(offer.staging_bypassed);
    }

    #[test]
    fn the_newest_eligible_release_is_installed_while_a_newer_one_is_staged() {
        let id = (0..)
            .map(|i| format!("machine-{i}"))
            .find(|id| staging_bucket("myapp", "3.0", id) >= 10)
            .unwrap();
        let staged = json!({"rollout_percent": 10});
        let (p2, p3) = (path("2.0"), path("3.0"));
        let offer = choose_release(
            [(p3.as_str(), Some(&staged)), (p2.as_str(), None)],
            &policy(&id),
            Some(&v("1.0")),
            &[],
        );
        assert_eq!(offer.install.map(|r| r.path), Some(p2));
        assert_eq!(offer.pending.map(|(r, _)| r.version), Some(v("3.0")));
    }

    #[test]
    fn channels_bad_versions_and_downgrades() {
        let id = "m";
        let beta = json!({"channel": "beta"});
        let both = json!({"channel": ["beta", "stable"]});
        let (p2, p3, p4) = (path("2.0"), path("3.0-rc.1"), path("1.5"));
        let targets = || {
            [
                (p2.as_str(), Some(&both)),
                (p3.as_str(), Some(&beta)),
                (p4.as_str(), None),
                ("other/3.0/myapp.tar.gz", None),
                ("myapp/9.0/extra/myapp.tar.gz", None),
            ]
        };
        let installed = v("1.0");
        let pick = |channel: &str, bad: &[Version], installed: Option<&Version>| {
            choose_release(
                targets(),
                &OfferPolicy {
                    channel,
                    ..policy(id)
                },
                installed,
                bad,
            )
            .install
            .map(|r| r.version.to_string())
        };
        assert_eq!(
            pick("stable", &[], Some(&installed)).as_deref(),
            Some("2.0")
        );
        assert_eq!(
            pick("beta", &[], Some(&installed)).as_deref(),
            Some("3.0-rc.1")
        );
        assert_eq!(pick("nightly", &[], Some(&installed)), None);
        // A version marked bad is never offered; the next one down is.
        assert_eq!(
            pick("stable", &[v("2.0")], Some(&installed)).as_deref(),
            Some("1.5")
        );
        // Nothing at or below the installed version.
        assert_eq!(pick("stable", &[], Some(&v("2.0"))), None);
        assert_eq!(pick("stable", &[], Some(&v("5"))), None);
        assert_eq!(pick("stable", &[], None).as_deref(), Some("2.0"));
    }

    #[test]
    fn terms_that_do_not_parse_refuse_the_release() {
        let p = path("2.0");
        for custom in [
            json!({"rollout_percent": 101}),
            json!({"rollout_percent": -1}),
            json!({"rollout_percent": 10.5}),
            json!({"rollout_percent": "10"}),
            json!({"channel": 1}),
            json!({"channel": ""}),
            json!({"channel": []}),
            json!({"channel": ["stable", 2]}),
            json!("stable"),
        ] {
            let offer = choose_release([(p.as_str(), Some(&custom))], &policy("m"), None, &[]);
            assert_eq!(offer.install, None, "{custom}");
            assert_eq!(offer.refused.len(), 1, "{custom}");
        }
        let bad_version = "myapp/..%2f/myapp.tar.gz";
        let offer = choose_release([(bad_version, None)], &policy("m"), None, &[]);
        assert!(matches!(offer.refused[0].reason, TermsError::BadVersion(_)));
        // Other custom fields are the vendor's business.
        let custom = json!({"channel": "stable", "notes": {"x": 1}});
        let offer = choose_release([(p.as_str(), Some(&custom))], &policy("m"), None, &[]);
        assert!(offer.install.is_some());
    }

    #[test]
    fn patterns() {
        check_pattern(PATTERN).unwrap();
        check_pattern("app-{version}.zip").unwrap();
        for bad in [
            "app.zip",
            "{version}/{version}",
            "app-{version}-{x}.zip",
            "{versio}",
        ] {
            assert!(check_pattern(bad).is_err(), "{bad}");
        }
        assert_eq!(
            version_in_path("app-{version}.zip", "app-1.2.zip"),
            Some(Ok(v("1.2")))
        );
        assert_eq!(
            version_in_path("app-{version}.zip", "app-.zip"),
            Some(Err(VersionError::Empty))
        );
        assert_eq!(version_in_path("app-{version}.zip", "lib-1.2.zip"), None);
    }
}
