//! How a command ends: its exit status and, with `--json`, its error as one JSON object.
//!
//! The one classification of errors lives here, so that every command family exits alike:
//! 0 success, 1 error (I/O, network, configuration, anything else), 2 usage (a bad flag or flag
//! value), 3 refused by a security check, 141 standard output closed (see main.rs).

use airlock_client::{TargetFileError, UpdateError};
use airlock_core::tlog::{
    CheckpointError, CosignatureError, MerkleError, PolicyCheckError, ProofError, VerifyError,
};
use airlock_core::tuf::{HashError, ThresholdError, TrustError};
use airlock_fetch::FetchError;
use airlock_log::monitor::MonitorError;
use airlock_log::proof_bundle::BundleError;

/// Exit status of a failure not covered by the others.
pub const EXIT_ERROR: i32 = 1;
/// Exit status of a command line that is wrong (clap's own status for bad flags).
pub const EXIT_USAGE: i32 = 2;
/// Exit status when a security check refused what was received or asked for.
pub const EXIT_REFUSED: i32 = 3;

/// The text of `airlock --help`'s exit status section (docs/cli.md says the same).
pub const EXIT_HELP: &str = "\
Exit status:
  0    success
  1    error: I/O, network, configuration, anything else
  2    usage: unknown flag, missing argument, a flag value that cannot work
  3    refused by a security check: signatures or threshold, hash or length mismatch,
       rollback, freeze or expiry, a log proof or witness quorum that does not verify,
       an input beyond `airlock diff`'s caps
  141  standard output was closed early (e.g. `| head -1`)

With --json, standard output holds one JSON document: the command's result, or on failure
{\"error\": {\"message\": ..., \"causes\": [...], \"kind\": \"refused\"|\"usage\"|\"error\"}}.";

/// What kind of failure an error is, deciding the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Error,
    Usage,
    Refused,
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Error => EXIT_ERROR,
            Kind::Usage => EXIT_USAGE,
            Kind::Refused => EXIT_REFUSED,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Error => "error",
            Kind::Usage => "usage",
            Kind::Refused => "refused",
        }
    }
}

/// A command line that cannot work (a bad URL given to a flag, flags that contradict each
/// other); commands return it through [`usage`].
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A failure whose result the command already printed (e.g. `repo verify`'s report, which
/// lists the problems): with `--json` nothing more is printed, so stdout stays one document.
#[derive(Debug)]
pub struct Reported {
    pub kind: Kind,
    pub message: String,
}

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Reported {}

/// A usage error (exit status 2) with this message.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// The kind of an error: the first cause in its chain that decides one, outermost first (a
/// download that failed for being too large is refused even though wrapped in an update error).
pub fn classify(err: &anyhow::Error) -> Kind {
    err.chain().find_map(classify_one).unwrap_or(Kind::Error)
}

fn classify_one(e: &(dyn std::error::Error + 'static)) -> Option<Kind> {
    if e.is::<UsageError>() {
        return Some(Kind::Usage);
    }
    if let Some(r) = e.downcast_ref::<Reported>() {
        return Some(r.kind);
    }
    // Every refusal of the TUF trust logic, the log verifier and the monitor: the data received
    // (or a local file claiming to be trusted) failed a check.
    if e.is::<TrustError>()
        || e.is::<ThresholdError>()
        || e.is::<HashError>()
        || e.is::<VerifyError>()
        || e.is::<ProofError>()
        || e.is::<PolicyCheckError>()
        || e.is::<MerkleError>()
        || e.is::<CosignatureError>()
        || e.is::<BundleError>()
    {
        return Some(Kind::Refused);
    }
    if let Some(c) = e.downcast_ref::<CheckpointError>() {
        // A log key of the wrong algorithm is a configuration error, not received data.
        return Some(match c {
            CheckpointError::LogKeyAlgorithm(_) => Kind::Error,
            _ => Kind::Refused,
        });
    }
    if let Some(u) = e.downcast_ref::<UpdateError>() {
        return match u {
            UpdateError::BadInitialRoot { .. }
            | UpdateError::CorruptTrustedRoot { .. }
            | UpdateError::ListedLengthTooLarge { .. }
            | UpdateError::Refused { .. }
            | UpdateError::Transparency { .. }
            | UpdateError::Rebuilds { .. }
            | UpdateError::PeerCheck { .. } => Some(Kind::Refused),
            UpdateError::BadUrl { .. } => Some(Kind::Usage),
            // The transport error or target check below decides.
            UpdateError::Fetch { .. } | UpdateError::Target { .. } => None,
            _ => Some(Kind::Error),
        };
    }
    if let Some(t) = e.downcast_ref::<TargetFileError>() {
        return match t {
            TargetFileError::Length { .. } | TargetFileError::Hash { .. } => Some(Kind::Refused),
            TargetFileError::Fetch(_) => None,
            TargetFileError::Io { .. } | TargetFileError::Source { .. } => Some(Kind::Error),
        };
    }
    if let Some(f) = e.downcast_ref::<FetchError>() {
        // A body above its cap is a server sending more than the metadata allows (an endless
        // data attack); the rest, a slow download included, can be the network's fault.
        return Some(match f {
            FetchError::TooLarge { .. } => Kind::Refused,
            _ => Kind::Error,
        });
    }
    if let Some(d) = e.downcast_ref::<airlock_diff::DiffError>() {
        // A cap refusing a hostile or oversized input; a file that cannot be read is an error.
        return Some(if d.is_limit() {
            Kind::Refused
        } else {
            Kind::Error
        });
    }
    if let Some(m) = e.downcast_ref::<MonitorError>() {
        return match m {
            MonitorError::Fetch(_) => None,
            _ => Some(Kind::Refused),
        };
    }
    None
}

/// The error as `--json` prints it: the outermost message and each cause once.
pub fn error_json(err: &anyhow::Error, kind: Kind) -> serde_json::Value {
    let causes: Vec<String> = err.chain().skip(1).map(|c| c.to_string()).collect();
    serde_json::json!({
        "error": {
            "message": err.to_string(),
            "causes": causes,
            "kind": kind.name(),
        }
    })
}
