//! What the update agent decides, without I/O: which release a machine is offered, when it
//! checks next, and what a trigger may ask.
//!
//! The agent (`airlock-agent`) only moves bytes: it fetches verified metadata through the
//! updater, reads the clock, a random number and its own record, and hands them here.
//!
//! - [`version`]: release versions as they appear in target paths (also directory names, so the
//!   character set is narrow) and their order.
//! - [`offer`]: which listed target is this machine's next release: the app's path pattern, the
//!   release's channel, its staged rollout percentage against a stable per-machine bucket, the
//!   versions marked bad, and never a version below the installed one.
//! - [`schedule`]: the next check time from the last result, the failure count, the interval,
//!   jitter, exponential backoff and maintenance windows.
//! - [`trigger`]: the tiny request language of the trigger socket and pipe, and the token
//!   bucket that rate-limits it.

pub mod offer;
pub mod schedule;
pub mod trigger;
pub mod version;

pub use offer::{
    Offer, OfferPolicy, RefusedTarget, ReleaseTerms, TermsError, choose_release, staging_bucket,
};
pub use schedule::{LastCheck, Schedule, ScheduleError, Window, in_window, next_check};
pub use trigger::{MAX_REQUEST_LEN, Request, RequestError, TokenBucket, parse_request};
pub use version::{Version, VersionError};
