//! Which mirror to ask next, without I/O.
//!
//! Mirrors are untrusted: TUF metadata and the target hashes decide what is accepted, so a
//! mirror can only help (deliver the right bytes) or waste time. This module keeps, for one run
//! of the client, what each mirror did, and orders the candidates for the next file:
//!
//! 1. A mirror that served bytes the client refused (a wrong hash or length, metadata with a bad
//!    signature, an older or expired version, a missing proof) is skipped for the rest of the
//!    run: it has shown it cannot be relied on, and asking it again only costs time. Only when
//!    every mirror has been skipped are they asked again (a single mirror is never locked out).
//! 2. Among the others, fewer failures in a row first (a mirror that is down or stalled drops
//!    behind as soon as it failed once, and is still asked when nothing else is left).
//! 3. Then the lower expected cost from what was measured (latency plus time to move 1 MiB at
//!    the observed rate); a mirror not measured yet comes after the measured ones, so the client
//!    stays with a mirror that works.
//! 4. Then the configured order (the vendor's preference).
//!
//! A mirror may hold only some targets (`target_paths`, the glob patterns of delegations; empty
//! means all), and a mirror without a metadata (targets) URL serves no metadata (targets).
//!
//! ```text
//! let mut set = MirrorSet::new(mirrors)?;
//! for mirror in set.candidates(Use::Target("app/2.0.tgz")) {
//!     match download(&set.mirror(mirror).targets_url, ...) {
//!         Ok(stats) if verified => { set.record_success(mirror, file, stats); break }
//!         Ok(_) => set.record_failure(mirror, file, Failure::Refused, "wrong hash".into()),
//!         Err(e) => set.record_failure(mirror, file, failure_kind(&e), e.to_string()),
//!     }
//! }
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use crate::tuf::delegation::path_matches;

/// One mirror as configured (also the form of a `[[mirrors]]` entry in configuration files).
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// Shown in reports and errors; empty: its metadata URL, else its targets URL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Base URL of the repository's metadata, if this mirror serves metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
    /// Base URL of the target files, if this mirror serves targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets_url: Option<String>,
    /// Targets this mirror holds (delegation glob patterns); empty: every target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_paths: Vec<String>,
}

/// What a file is needed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use<'a> {
    Metadata,
    Target(&'a str),
}

/// How an attempt failed, as far as the choice of mirror is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// Connection refused, DNS, TLS handshake or certificate failures.
    Unreachable,
    /// No answer in time, or a transfer below the minimum rate.
    Stalled,
    /// An HTTP error status other than 404.
    HttpError,
    /// 404: the mirror does not have the file.
    Missing,
    /// Bytes the client refused: skipped for the rest of the run.
    Refused,
}

impl Failure {
    fn name(self) -> &'static str {
        match self {
            Failure::Unreachable => "unreachable",
            Failure::Stalled => "stalled",
            Failure::HttpError => "http-error",
            Failure::Missing => "missing",
            Failure::Refused => "refused",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A successful transfer, for the mirror's score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub bytes: u64,
    pub elapsed: Duration,
}

/// One attempt, as reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub file: String,
    /// `None`: delivered and accepted.
    pub failure: Option<(Failure, String)>,
}

/// What one mirror did in this run.
#[derive(Clone, Debug, PartialEq)]
pub struct MirrorReport {
    pub name: String,
    pub attempts: Vec<Attempt>,
    /// Skipped for the rest of the run after serving refused bytes.
    pub skipped: bool,
    pub bytes: u64,
}

/// A configuration refused before any request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MirrorError {
    #[error("no mirror is configured")]
    Empty,
    #[error("mirror {0:?} is named twice")]
    DuplicateName(String),
    #[error("mirror {0:?} has neither a metadata URL nor a targets URL")]
    NoUrl(String),
    #[error("mirror {name:?}: target path pattern {pattern:?} is empty")]
    EmptyPattern { name: String, pattern: String },
}

#[derive(Clone, Debug, Default)]
struct Stats {
    failures_in_row: u32,
    refused: bool,
    /// Smoothed seconds to the first byte and bytes per second.
    latency: Option<f64>,
    rate: Option<f64>,
    bytes: u64,
    attempts: Vec<Attempt>,
}

impl Stats {
    /// Expected seconds to fetch 1 MiB; `None` until measured.
    fn cost(&self) -> Option<f64> {
        let latency = self.latency?;
        let rate = self.rate.unwrap_or(f64::INFINITY).max(1.0);
        Some(latency + (1 << 20) as f64 / rate)
    }
}

/// The mirrors of one run and what they did.
#[derive(Clone, Debug)]
pub struct MirrorSet {
    mirrors: Vec<Mirror>,
    stats: Vec<Stats>,
}

/// Weight of a new measurement in the smoothed latency and rate.
const SMOOTHING: f64 = 0.5;
/// Transfers shorter than this say nothing about the rate (they are all latency).
const RATE_MIN_BYTES: u64 = 64 * 1024;

impl MirrorSet {
    pub fn new(mut mirrors: Vec<Mirror>) -> Result<Self, MirrorError> {
        if mirrors.is_empty() {
            return Err(MirrorError::Empty);
        }
        for m in &mut mirrors {
            if m.name.is_empty() {
                m.name = m
                    .metadata_url
                    .clone()
                    .or_else(|| m.targets_url.clone())
                    .unwrap_or_default();
            }
        }
        let mut names = BTreeSet::new();
        for m in &mirrors {
            if !names.insert(m.name.as_str()) {
                return Err(MirrorError::DuplicateName(m.name.clone()));
            }
            if m.metadata_url.is_none() && m.targets_url.is_none() {
                return Err(MirrorError::NoUrl(m.name.clone()));
            }
            if let Some(p) = m.target_paths.iter().find(|p| p.is_empty()) {
                return Err(MirrorError::EmptyPattern {
                    name: m.name.clone(),
                    pattern: p.clone(),
                });
            }
        }
        let stats = vec![Stats::default(); mirrors.len()];
        Ok(MirrorSet { mirrors, stats })
    }

    pub fn mirror(&self, index: usize) -> &Mirror {
        &self.mirrors[index]
    }

    pub fn len(&self) -> usize {
        self.mirrors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mirrors.is_empty()
    }

    /// Whether mirror `index` serves files for `u` at all.
    fn serves(&self, index: usize, u: Use<'_>) -> bool {
        let m = &self.mirrors[index];
        match u {
            Use::Metadata => m.metadata_url.is_some(),
            Use::Target(path) => {
                m.targets_url.is_some()
                    && (m.target_paths.is_empty()
                        || m.target_paths.iter().any(|p| path_matches(p, path)))
            }
        }
    }

    /// The mirrors to try for `u`, best first (see the module documentation). When every
    /// mirror that serves `u` has been skipped, they are all tried again in the configured
    /// order: with nothing better left, a mirror that failed once may still deliver another file
    /// (and whatever it serves is checked as before).
    pub fn candidates(&self, u: Use<'_>) -> Vec<usize> {
        let serving: Vec<usize> = (0..self.mirrors.len())
            .filter(|&i| self.serves(i, u))
            .collect();
        let mut order: Vec<usize> = serving
            .iter()
            .copied()
            .filter(|&i| !self.stats[i].refused)
            .collect();
        if order.is_empty() {
            return serving;
        }
        order.sort_by(|&a, &b| {
            let (sa, sb) = (&self.stats[a], &self.stats[b]);
            sa.failures_in_row
                .cmp(&sb.failures_in_row)
                .then_with(|| match (sa.cost(), sb.cost()) {
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                })
                .then_with(|| a.cmp(&b))
        });
        order
    }

    /// Whether any mirror serves targets at all.
    pub fn has_targets(&self) -> bool {
        self.mirrors.iter().any(|m| m.targets_url.is_some())
    }

    /// `file` came from mirror `index` and was accepted.
    pub fn record_success(&mut self, index: usize, file: &str, t: Transfer) {
        let s = &mut self.stats[index];
        s.failures_in_row = 0;
        s.bytes += t.bytes;
        let secs = t.elapsed.as_secs_f64().max(1e-6);
        let (latency, rate) = if t.bytes >= RATE_MIN_BYTES {
            // Half the time is taken as latency for lack of a finer measurement.
            (secs / 2.0, Some(t.bytes as f64 / (secs / 2.0)))
        } else {
            (secs, None)
        };
        s.latency = Some(match s.latency {
            Some(old) => old * (1.0 - SMOOTHING) + latency * SMOOTHING,
            None => latency,
        });
        if let Some(rate) = rate {
            s.rate = Some(match s.rate {
                Some(old) => old * (1.0 - SMOOTHING) + rate * SMOOTHING,
                None => rate,
            });
        }
        s.attempts.push(Attempt {
            file: file.to_string(),
            failure: None,
        });
    }

    /// Mirror `index` failed to deliver `file`. A 404 is not held against a mirror that only
    /// holds some targets; any other failure moves it behind the mirrors that work.
    pub fn record_failure(&mut self, index: usize, file: &str, failure: Failure, detail: String) {
        let s = &mut self.stats[index];
        match failure {
            Failure::Refused => s.refused = true,
            Failure::Missing if !self.mirrors[index].target_paths.is_empty() => {}
            _ => s.failures_in_row = s.failures_in_row.saturating_add(1),
        }
        s.attempts.push(Attempt {
            file: file.to_string(),
            failure: Some((failure, detail)),
        });
    }

    /// What each mirror did, in the configured order.
    pub fn report(&self) -> Vec<MirrorReport> {
        self.mirrors
            .iter()
            .zip(&self.stats)
            .map(|(m, s)| MirrorReport {
                name: m.name.clone(),
                attempts: s.attempts.clone(),
                skipped: s.refused,
                bytes: s.bytes,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror(name: &str) -> Mirror {
        Mirror {
            name: name.into(),
            metadata_url: Some(format!("https://{name}/metadata/")),
            targets_url: Some(format!("https://{name}/targets/")),
            target_paths: Vec::new(),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn untried_mirrors_go_in_the_configured_order() {
        let set = MirrorSet::new(vec![mirror("a"), mirror("b"), mirror("c")]).unwrap();
        assert_eq!(set.candidates(Use::Metadata), [0, 1, 2]);
    }

    #[test]
    fn a_failing_mirror_drops_behind_and_is_still_tried_last() {
        let mut set = MirrorSet::new(vec![mirror("a"), mirror("b"), mirror("c")]).unwrap();
        set.record_failure(0, "timestamp.json", Failure::Stalled, "timed out".into());
        assert_eq!(set.candidates(Use::Metadata), [1, 2, 0]);
        set.record_failure(1, "timestamp.json", Failure::Unreachable, "refused".into());
        set.record_failure(1, "timestamp.json", Failure::HttpError, "500".into());
        assert_eq!(set.candidates(Use::Metadata), [2, 0, 1]);
        // Working again: back in front.
        set.record_success(
            0,
            "1.snapshot.json",
            Transfer {
                bytes: 10,
                elapsed: ms(5),
            },
        );
        assert_eq!(set.candidates(Use::Metadata)[0], 0);
    }

    #[test]
    fn a_mirror_that_served_refused_bytes_is_skipped_for_the_run() {
        let mut set = MirrorSet::new(vec![mirror("a"), mirror("b")]).unwrap();
        set.record_failure(0, "app.tgz", Failure::Refused, "wrong sha256".into());
        assert_eq!(set.candidates(Use::Target("app.tgz")), [1]);
        assert_eq!(set.candidates(Use::Metadata), [1]);
        set.record_failure(1, "app.tgz", Failure::Refused, "wrong length".into());
        // Nothing better left: both are asked again, in the configured order.
        assert_eq!(set.candidates(Use::Metadata), [0, 1]);
        let report = set.report();
        assert!(report.iter().all(|r| r.skipped));
        assert_eq!(
            report[0].attempts[0].failure,
            Some((Failure::Refused, "wrong sha256".into()))
        );
    }

    #[test]
    fn a_measured_mirror_comes_before_an_unmeasured_one_and_the_faster_first() {
        let mut set = MirrorSet::new(vec![mirror("a"), mirror("b"), mirror("c")]).unwrap();
        let big = |elapsed| Transfer {
            bytes: 1 << 20,
            elapsed,
        };
        set.record_success(2, "x", big(ms(400)));
        assert_eq!(set.candidates(Use::Metadata), [2, 0, 1]);
        set.record_success(1, "x", big(ms(40)));
        assert_eq!(set.candidates(Use::Metadata), [1, 2, 0]);
    }

    #[test]
    fn partial_mirrors_serve_only_their_paths_and_a_404_there_is_not_a_fault() {
        let mut partial = mirror("p");
        partial.target_paths = vec!["app/*".into()];
        let mut meta_only = mirror("m");
        meta_only.targets_url = None;
        let mut set = MirrorSet::new(vec![partial, meta_only, mirror("all")]).unwrap();
        assert_eq!(set.candidates(Use::Target("app/1.tgz")), [0, 2]);
        assert_eq!(set.candidates(Use::Target("other/1.tgz")), [2]);
        assert_eq!(set.candidates(Use::Metadata), [0, 1, 2]);
        set.record_failure(0, "app/1.tgz", Failure::Missing, "404".into());
        assert_eq!(set.candidates(Use::Target("app/2.tgz")), [0, 2]);
        set.record_failure(2, "app/1.tgz", Failure::Missing, "404".into());
        assert_eq!(set.candidates(Use::Target("app/2.tgz")), [0, 2]);
        assert_eq!(set.candidates(Use::Metadata), [0, 1, 2]);
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert_eq!(MirrorSet::new(vec![]).unwrap_err(), MirrorError::Empty);
        assert_eq!(
            MirrorSet::new(vec![mirror("a"), mirror("a")]).unwrap_err(),
            MirrorError::DuplicateName("a".into())
        );
        let mut none = mirror("n");
        none.metadata_url = None;
        none.targets_url = None;
        assert_eq!(
            MirrorSet::new(vec![none]).unwrap_err(),
            MirrorError::NoUrl("n".into())
        );
        let mut empty = mirror("e");
        empty.target_paths = vec![String::new()];
        assert!(matches!(
            MirrorSet::new(vec![empty]).unwrap_err(),
            MirrorError::EmptyPattern { .. }
        ));
    }
}
