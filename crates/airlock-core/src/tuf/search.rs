//! Finding which targets role describes a target: the delegation search of spec 5.7.7, as a
//! state machine without I/O.
//!
//! The search walks delegations depth-first, in pre-order and in delegation order, starting at
//! top-level `targets`. When it needs a role it has not got, it says so
//! ([`SearchStep::NeedRole`]); the caller fetches the bytes and hands them to
//! [`TrustedSet::update_delegated_targets`] with that role and parent, then calls
//! [`TargetSearch::step`] again. The search reads only metadata the [`TrustedSet`] trusts, each
//! role as verified through the parent that led to it.
//!
//! - A terminating delegation ends the search after that role's subtree: no sibling after it
//!   and nothing still pending is visited.
//! - At most [`MAX_DELEGATIONS`] delegated roles are visited (top-level targets not counted).
//! - A (role, parent) pair is visited once, so cycles end; a role reached through two parents
//!   is visited (and verified) once per parent.
//!
//! [`TargetSearch::every_role`] walks the same way without a target, following every
//! delegation (paths and `terminating` only matter for a given target), so that a listing reads
//! each role exactly as a lookup would and reports what the cap left out
//! ([`TargetSearch::roles_not_visited`]). Hash bins are queued only as far as the cap can still
//! reach, so 2^32 bins are counted, not named.
//!
//! ```text
//! let mut search = TargetSearch::new("app/v2.tgz");
//! loop {
//!     match search.step(&trusted)? {
//!         SearchStep::NeedRole { role, parent } => {
//!             let bytes = fetch(&role)?;
//!             trusted.update_delegated_targets(&bytes, &role, &parent)?;
//!         }
//!         SearchStep::Found { role, target } => break Some(target),
//!         SearchStep::NotFound | SearchStep::LimitReached => break None,
//!     }
//! }
//! ```

use std::collections::BTreeSet;

use super::delegation::Delegations;
use super::roles::TargetFile;
use super::trusted::TrustedSet;

/// Default cap on delegated roles visited in one search (python-tuf's `max_delegations`).
pub const MAX_DELEGATIONS: usize = 32;

/// What the search needs or found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchStep {
    /// Load `role` as delegated by `parent` into the trusted set, then step again.
    NeedRole { role: String, parent: String },
    /// `role` lists the target.
    Found { role: String, target: TargetFile },
    /// No role that may list the target lists it.
    NotFound,
    /// The visit cap was reached before the search ended; treat as not found.
    LimitReached,
}

/// The search gave up because its caller did not keep to the protocol.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SearchError {
    #[error("role {role} (delegated by {parent}) was requested but is still not trusted")]
    RoleNotLoaded { role: String, parent: String },
}

/// One target's delegation search. See the module docs.
#[derive(Debug)]
pub struct TargetSearch {
    /// `None`: visit every role (a listing).
    target: Option<String>,
    /// Roles still to visit, as (role, parent); the next one is at the end.
    pending: Vec<(String, String)>,
    visited: BTreeSet<(String, String)>,
    delegated_visits: usize,
    /// Hash bins of a listing never queued because the cap could not reach them.
    bins_not_queued: u64,
    max_delegations: usize,
    requested: Option<(String, String)>,
    outcome: Option<SearchStep>,
}

impl TargetSearch {
    /// Search for `target_path`, visiting at most [`MAX_DELEGATIONS`] delegated roles.
    pub fn new(target_path: &str) -> Self {
        Self::with_max_delegations(target_path, MAX_DELEGATIONS)
    }

    pub fn with_max_delegations(target_path: &str, max_delegations: usize) -> Self {
        Self::start(Some(target_path.to_string()), max_delegations)
    }

    /// Visit every targets role reachable from top-level `targets`, at most `max_delegations`
    /// delegated ones, for a listing: the walk never answers `Found`; it ends with `NotFound`
    /// when every role was visited and `LimitReached` when the cap stopped it. The caller reads
    /// the roles from the [`TrustedSet`] ([`TargetSearch::visited_roles`]) and resolves each
    /// path it finds with its own search, which applies paths and `terminating`.
    pub fn every_role(max_delegations: usize) -> Self {
        Self::start(None, max_delegations)
    }

    fn start(target: Option<String>, max_delegations: usize) -> Self {
        TargetSearch {
            target,
            pending: vec![("targets".to_string(), "root".to_string())],
            visited: BTreeSet::new(),
            delegated_visits: 0,
            bins_not_queued: 0,
            max_delegations,
            requested: None,
            outcome: None,
        }
    }

    /// The (role, parent) pairs visited so far.
    pub fn visited_roles(&self) -> impl Iterator<Item = &(String, String)> {
        self.visited.iter()
    }

    /// Roles reachable but not visited (still pending, or hash bins beyond the cap); 0 once the
    /// walk visited everything.
    pub fn roles_not_visited(&self) -> u64 {
        let pending: BTreeSet<&(String, String)> = self
            .pending
            .iter()
            .filter(|r| !self.visited.contains(*r))
            .collect();
        (pending.len() as u64).saturating_add(self.bins_not_queued)
    }

    /// The number of delegated roles visited so far.
    pub fn delegated_visits(&self) -> usize {
        self.delegated_visits
    }

    /// Advance as far as trusted metadata allows. Once the search has ended, every further call
    /// returns the same outcome.
    pub fn step(&mut self, trusted: &TrustedSet) -> Result<SearchStep, SearchError> {
        if let Some(done) = &self.outcome {
            return Ok(done.clone());
        }
        let step = self.advance(trusted)?;
        if !matches!(step, SearchStep::NeedRole { .. }) {
            self.outcome = Some(step.clone());
        }
        Ok(step)
    }

    fn advance(&mut self, trusted: &TrustedSet) -> Result<SearchStep, SearchError> {
        while let Some(next) = self.pending.last().cloned() {
            if self.visited.contains(&next) {
                self.pending.pop();
                continue;
            }
            let (role, parent) = &next;
            let top_level = role == "targets" && parent == "root";
            if !top_level && self.delegated_visits >= self.max_delegations {
                return Ok(SearchStep::LimitReached);
            }
            let Some(metadata) = trusted.targets_role(role, parent) else {
                if self.requested.as_ref() == Some(&next) {
                    return Err(SearchError::RoleNotLoaded {
                        role: role.clone(),
                        parent: parent.clone(),
                    });
                }
                self.requested = Some(next.clone());
                return Ok(SearchStep::NeedRole {
                    role: role.clone(),
                    parent: parent.clone(),
                });
            };
            self.requested = None;
            self.pending.pop();
            self.visited.insert(next.clone());
            if !top_level {
                self.delegated_visits += 1;
            }
            let Some(target_path) = &self.target else {
                let children = self.every_child(metadata.signed.delegations.as_ref(), role);
                self.pending.extend(children.into_iter().rev());
                continue;
            };
            if let Some(target) = metadata.signed.targets.get(target_path) {
                return Ok(SearchStep::Found {
                    role: role.clone(),
                    target: target.clone(),
                });
            }
            let Some(delegations) = &metadata.signed.delegations else {
                continue;
            };
            let mut children = Vec::new();
            for child in delegations.roles_for_target(target_path) {
                let terminating = child.terminating;
                children.push((child.name, role.clone()));
                if terminating {
                    // Nothing after a terminating delegation is searched: not its later
                    // siblings, not what was pending before.
                    self.pending.clear();
                    break;
                }
            }
            self.pending.extend(children.into_iter().rev());
        }
        Ok(SearchStep::NotFound)
    }

    /// Every role `delegations` names, in delegation order, as (role, `parent`); hash bins only
    /// as many as the cap can still visit (the walk is depth-first, so later bins would come
    /// after those anyway), the rest counted.
    fn every_child(
        &mut self,
        delegations: Option<&Delegations>,
        parent: &str,
    ) -> Vec<(String, String)> {
        let Some(delegations) = delegations else {
            return Vec::new();
        };
        let mut children: Vec<(String, String)> = delegations
            .roles
            .iter()
            .flatten()
            .map(|r| (r.name.clone(), parent.to_string()))
            .collect();
        if let Some(bins) = &delegations.succinct_roles {
            let budget = self.max_delegations.saturating_sub(self.delegated_visits) as u64;
            let queued = bins.number_of_bins().min(budget);
            self.bins_not_queued = self
                .bins_not_queued
                .saturating_add(bins.number_of_bins() - queued);
            children.extend((0..queued).map(|i| (bins.bin_name(i), parent.to_string())));
        }
        children
    }
}
