//! The rebuilder policy on the client (docs/rebuild.md): before a target is downloaded, at
//! least `threshold` distinct trusted rebuilders must have signed attestations for exactly its
//! path, SHA-256 and length, under the trusted root's `x-airlock-rebuilders` policy and under a
//! local one from the configuration (which only adds).
//!
//! The client lists nothing: for each trusted key id it fetches exactly
//! `<repository base>/rebuilds/<encoded target>/<sha256>/<key id>.dsse.json` from the mirrors
//! that serve the target, where the repository base is the parent of the mirror's targets URL.
//! A mirror can withhold an attestation (then the download is refused) but not make one count:
//! the decision is airlock-core's `decide`, over the bytes fetched.
//!
//! When the trusted root carries a transparency policy, an attestation counts only when its
//! proof bundle, `<attestation URL>.tlog-proof` from the same mirror, shows its
//! `airlock-attestation/v1` statement in the policy's log (the same check and the same
//! `tlog-state` as for releases); one that does not is left out of the decision and the refusal
//! says why.

use airlock_core::mirrors::Use;
use airlock_core::rebuild::attestation::MAX_ENVELOPE_LEN;
use airlock_core::rebuild::layout::attestation_url_path;
use airlock_core::rebuild::{Confirmation, PolicyError, RebuilderPolicy, decide, decide_logged};
use airlock_core::transparency::{PROOF_SUFFIX, ReleaseCheck, TransparencyPolicy};

use crate::config::with_trailing_slash;
use crate::error::UpdateError;
use crate::transparency::LogChecker;
use crate::updater::{TargetInfo, Updater};

/// Where a policy comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicySource {
    /// The trusted root's `x-airlock-rebuilders`.
    Root,
    /// The client's own configuration.
    Local,
}

/// One policy's verdict for one target.
#[derive(Debug)]
pub struct PolicyVerdict {
    pub source: PolicySource,
    /// `None` when the root's policy could not be read (then `result` says why).
    pub policy: Option<RebuilderPolicy>,
    /// The rebuilders counted, or why too few were.
    pub result: Result<Vec<Confirmation>, PolicyError>,
}

/// Every policy's verdict for one target (empty: no policy applies).
#[derive(Debug)]
pub struct RebuildReport {
    pub target: String,
    pub sha256: Option<String>,
    pub verdicts: Vec<PolicyVerdict>,
    /// Attestations that could not be fetched for another reason than absence.
    pub fetch_failures: Vec<String>,
    /// Attestations left out because the trusted root's transparency policy requires each to
    /// be logged and its proof bundle did not show it (`attestation by key K ...: why`).
    pub not_logged: Vec<String>,
}

impl RebuildReport {
    /// The first unmet policy as the client's refusal, `Ok` with every rebuilder counted when
    /// all are met.
    pub fn into_result(self) -> Result<Vec<Confirmation>, UpdateError> {
        let mut all: Vec<Confirmation> = Vec::new();
        for v in self.verdicts {
            match v.result {
                Ok(cs) => {
                    for c in cs {
                        if !all.contains(&c) {
                            all.push(c);
                        }
                    }
                }
                Err(source) => {
                    return Err(UpdateError::Rebuilds {
                        target: self.target,
                        fetch_failures: self.fetch_failures,
                        source: Box::new(source),
                    });
                }
            }
        }
        Ok(all)
    }
}

/// The repository's base URL (where `rebuilds/` lives) for a targets base URL: its parent.
fn repository_base(targets_url: &str) -> Option<String> {
    let url = with_trailing_slash(targets_url);
    let trimmed = url.strip_suffix('/')?;
    let (parent, _) = trimmed.rsplit_once('/')?;
    // `https://host/targets` has the parent `https://host`; `https://targets` has none.
    let (_, after_scheme) = parent.split_once("://")?;
    if after_scheme.is_empty() {
        return None;
    }
    Some(format!("{parent}/"))
}

impl Updater {
    /// The rebuilder policies that apply: the trusted root's, then the local one. A root
    /// policy that does not parse is a refusal (a client must not read it as "none").
    pub fn rebuild_policies(&self) -> Result<Vec<(PolicySource, RebuilderPolicy)>, PolicyError> {
        let mut out = Vec::new();
        if let Some(p) =
            RebuilderPolicy::from_root_fields(&self.trusted().root().signed.unrecognized)?
        {
            out.push((PolicySource::Root, p));
        }
        if let Some(p) = &self.config().rebuilders {
            out.push((PolicySource::Local, p.clone()));
        }
        Ok(out)
    }

    /// Fetch the attestations the policies ask for and decide each policy.
    pub fn rebuild_report(&self, info: &TargetInfo) -> RebuildReport {
        let mut report = RebuildReport {
            target: info.path.clone(),
            sha256: info.file.hashes.get("sha256").cloned(),
            verdicts: Vec::new(),
            fetch_failures: Vec::new(),
            not_logged: Vec::new(),
        };
        let policies = match self.rebuild_policies() {
            Ok(p) => p,
            Err(e) => {
                // A root policy that does not parse refuses every download.
                report.verdicts.push(PolicyVerdict {
                    source: PolicySource::Root,
                    policy: None,
                    result: Err(e),
                });
                return report;
            }
        };
        if policies.is_empty() {
            return report;
        }
        let Some(sha256) = report.sha256.clone() else {
            for (source, policy) in policies {
                let needed = policy.threshold();
                report.verdicts.push(PolicyVerdict {
                    source,
                    policy: Some(policy),
                    result: Err(PolicyError::NotEnough {
                        target: info.path.clone(),
                        sha256: "(none listed)".into(),
                        found: 0,
                        needed,
                        from: Vec::new(),
                        refused: vec!["the targets metadata lists no sha256 for it".into()],
                    }),
                });
            }
            return report;
        };
        let mut keyids: Vec<&String> = policies.iter().flat_map(|(_, p)| p.keys().keys()).collect();
        keyids.sort();
        keyids.dedup();
        // Each attestation with the key id of the slot it was fetched from (and, under a
        // transparency policy, shown logged for).
        let mut fetched: Vec<(String, Vec<u8>)> = Vec::new();
        let transparency = self.transparency().cloned();
        for keyid in keyids {
            match self.fetch_attestation(info, &sha256, keyid) {
                Ok(Some((url, bytes))) => match &transparency {
                    None => fetched.push((keyid.clone(), bytes)),
                    Some(t) => match self.check_attestation_logged(t, keyid, &sha256, &url, &bytes)
                    {
                        Ok(_) => fetched.push((keyid.clone(), bytes)),
                        Err(why) => report.not_logged.push(why),
                    },
                },
                Ok(None) => {}
                Err(why) => report.fetch_failures.push(why),
            }
        }
        let refs: Vec<&[u8]> = fetched.iter().map(|(_, b)| b.as_slice()).collect();
        let slots: Vec<(&str, &[u8])> = fetched
            .iter()
            .map(|(k, b)| (k.as_str(), b.as_slice()))
            .collect();
        for (source, policy) in policies {
            let (path, len) = (&info.path, info.file.length);
            let mut result = match transparency {
                // A logged envelope counts only for the key it was logged for.
                Some(_) => decide_logged(&policy, path, &sha256, len, &slots),
                None => decide(&policy, path, &sha256, len, &refs),
            };
            if let Err(PolicyError::NotEnough { refused, .. }) = &mut result {
                refused.extend(report.not_logged.iter().cloned());
            }
            report.verdicts.push(PolicyVerdict {
                source,
                policy: Some(policy),
                result,
            });
        }
        report
    }

    /// Show that the attestation `envelope`, fetched from `url` for `keyid`, is in the log of
    /// the trusted root's `policy`, with the bundle beside it; returns the bundle, or why not
    /// (naming the key and the check).
    fn check_attestation_logged(
        &self,
        policy: &TransparencyPolicy,
        keyid: &str,
        sha256: &str,
        url: &str,
        envelope: &[u8],
    ) -> Result<Vec<u8>, String> {
        let not_logged = |why: String| format!("{why} (bundle {url}{PROOF_SUFFIX})");
        let check = ReleaseCheck::attestation(policy, keyid, sha256, envelope).map_err(|e| {
            not_logged(format!(
                "attestation by key {keyid}: {}",
                airlock_core::error_chain(&e)
            ))
        })?;
        let mut state = self.log_state();
        let mut checker = LogChecker {
            fetcher: &self.config().fetcher,
            state: &mut state,
            log_url: self.config().log_url.as_deref(),
            now: u64::try_from(self.reference_time().timestamp()).unwrap_or(0),
        };
        checker
            .check_statement(policy, &check, &format!("{url}{PROOF_SUFFIX}"))
            .map_err(|e| {
                // The core's refusals name the attestation; a download failure does not.
                let why = airlock_core::error_chain(&e);
                if why.starts_with(check.subject()) {
                    not_logged(why)
                } else {
                    not_logged(format!("{}: {why}", check.subject()))
                }
            })
    }

    /// One key's attestation from the first mirror serving the target that has it, with the
    /// URL it was read from: `None` when every mirror answers 404 (not attested by this key),
    /// `Err` naming the failures when none answered either way.
    pub(crate) fn fetch_attestation(
        &self,
        info: &TargetInfo,
        sha256: &str,
        keyid: &str,
    ) -> Result<Option<(String, Vec<u8>)>, String> {
        let Some(path) = attestation_url_path(&info.path, sha256, keyid) else {
            return Ok(None);
        };
        let bases: Vec<String> = {
            let set = self.mirror_set();
            set.candidates(Use::Target(&info.path))
                .into_iter()
                .filter_map(|m| set.mirror(m).targets_url.clone())
                .filter_map(|t| repository_base(&t))
                .collect()
        };
        let mut failures = Vec::new();
        let mut absent = false;
        for base in bases {
            let url = format!("{base}{path}");
            let cap = u64::try_from(MAX_ENVELOPE_LEN).unwrap_or(u64::MAX);
            match self.config().fetcher.fetch_capped(&url, cap) {
                Ok(bytes) => return Ok(Some((url, bytes))),
                Err(e) if e.is_not_found() => absent = true,
                Err(e) => failures.push(format!("{url}: {}", airlock_core::error_chain(&e))),
            }
        }
        if absent || failures.is_empty() {
            Ok(None)
        } else {
            Err(failures.join("; "))
        }
    }

    /// Refuse the download of `info` unless every rebuilder policy is met (nothing to do when
    /// none applies or the configuration turned the check off).
    pub(crate) fn check_rebuilds(&self, info: &TargetInfo) -> Result<(), UpdateError> {
        if !self.config().require_rebuilds {
            return Ok(());
        }
        let report = self.rebuild_report(info);
        if report.verdicts.is_empty() {
            return Ok(());
        }
        let confirmations = report.into_result()?;
        tracing::info!(
            "{}: confirmed by {} rebuilder(s)",
            info.path,
            confirmations.len()
        );
        Ok(())
    }
}

impl Updater {
    /// Place every attestation of `targets` by a key of the root's policy under `public` (a
    /// mirror's document root) that it lacks, each verified first; returns how many were
    /// placed. Absent or unverifiable ones are skipped: a client decides with what is there.
    pub(crate) fn mirror_attestations(
        &self,
        targets: &[TargetInfo],
        public: &std::path::Path,
    ) -> Result<usize, airlock_fs::FsError> {
        let Ok(Some(policy)) =
            RebuilderPolicy::from_root_fields(&self.trusted().root().signed.unrecognized)
        else {
            return Ok(0);
        };
        // With a transparency policy an attestation is served only with a bundle that shows it
        // logged: without one no client counts it.
        let transparency = self.transparency().cloned();
        let mut placed = 0;
        for info in targets {
            let Some(sha256) = info.file.hashes.get("sha256") else {
                continue;
            };
            for (keyid, key) in policy.keys() {
                let Some(rel) =
                    airlock_core::rebuild::layout::attestation_path(&info.path, sha256, keyid)
                else {
                    continue;
                };
                let dest = rel.iter().fold(public.to_path_buf(), |p, s| p.join(s));
                let mut proof_dest = dest.clone().into_os_string();
                proof_dest.push(PROOF_SUFFIX);
                let proof_dest = std::path::PathBuf::from(proof_dest);
                if dest.is_file() && (transparency.is_none() || proof_dest.is_file()) {
                    continue;
                }
                let Ok(Some((url, bytes))) = self.fetch_attestation(info, sha256, keyid) else {
                    continue;
                };
                let Ok(one) = RebuilderPolicy::new(1, vec![key.clone()]) else {
                    continue;
                };
                if let Err(e) = decide(&one, &info.path, sha256, info.file.length, &[&bytes]) {
                    tracing::warn!(
                        "not mirroring an attestation of {} by {keyid}: {}",
                        info.path,
                        airlock_core::error_chain(&e)
                    );
                    continue;
                }
                let proof = match &transparency {
                    None => None,
                    Some(t) => {
                        match self.check_attestation_logged(t, keyid, sha256, &url, &bytes) {
                            Ok(p) => Some(p),
                            Err(why) => {
                                tracing::warn!(
                                    "not mirroring an attestation of {}: {why}",
                                    info.path
                                );
                                continue;
                            }
                        }
                    }
                };
                airlock_fs::generations::create_public_dir_all(airlock_fs::parent_dir(&dest))?;
                // The bundle first: a client that finds the attestation finds its bundle.
                if let Some(p) = proof {
                    airlock_fs::write_atomic(&proof_dest, &p, &airlock_fs::WriteOptions::public())?;
                }
                airlock_fs::write_atomic(&dest, &bytes, &airlock_fs::WriteOptions::public())?;
                placed += 1;
            }
        }
        Ok(placed)
    }
}

#[cfg(test)]
mod tests {
    use super::repository_base;

    #[test]
    fn attestations_live_beside_targets() {
        assert_eq!(
            repository_base("https://h/repo/targets/").as_deref(),
            Some("https://h/repo/")
        );
        assert_eq!(
            repository_base("https://h/targets").as_deref(),
            Some("https://h/")
        );
        assert_eq!(repository_base("https://targets/"), None);
    }
}
