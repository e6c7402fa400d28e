//! The rebuilder policy a root carries (`x-airlock-rebuilders`, docs/rebuild.md): which
//! rebuilder keys clients trust and how many of them must have attested to a target's exact
//! digest before it is downloaded. Set like the transparency policy: a new root version, signed
//! with the root keys on this machine, published under the root thresholds.

use airlock_core::rebuild::RebuilderPolicy;
use airlock_core::rebuild::policy::EXTENSION_FIELD;

use crate::delegate::ChangeReport;
use crate::error::RepoError;
use crate::repo::Repository;

fn policy_of(
    root: &airlock_core::tuf::roles::Root,
    which: &str,
) -> Result<Option<RebuilderPolicy>, RepoError> {
    RebuilderPolicy::from_root_fields(&root.unrecognized).map_err(|e| RepoError::Rebuilders {
        what: format!("{which} root v{}", root.version),
        source: Box::new(e),
    })
}

impl Repository {
    /// The rebuilder policy of the staged root (`None`: rebuilds are not required).
    pub fn rebuilders(&self) -> Result<Option<RebuilderPolicy>, RepoError> {
        policy_of(&self.root.signed, "staged")
    }

    /// The rebuilder policy of the published root (`None`: none, or nothing published).
    pub fn published_root_rebuilders(&self) -> Result<Option<RebuilderPolicy>, RepoError> {
        match &self.published_state()?.root {
            Some(r) => policy_of(&r.signed, "published"),
            None => Ok(None),
        }
    }

    /// Set (or, with `None`, remove) the rebuilder policy in the staged root: a new root
    /// version, signed with every root key on this machine.
    pub fn set_rebuilders(
        &mut self,
        policy: Option<&RebuilderPolicy>,
    ) -> Result<ChangeReport, RepoError> {
        if self.rebuilders()?.as_ref() == policy {
            return Err(RepoError::invalid(match policy {
                Some(_) => "the staged root already carries this rebuilder policy",
                None => "the staged root carries no rebuilder policy",
            }));
        }
        self.set_root_field(EXTENSION_FIELD, policy.map(RebuilderPolicy::to_value))
    }
}
