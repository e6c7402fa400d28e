//! airlock-core: everything that decides "trust or refuse", with no I/O and no async.
//!
//! It takes bytes and a clock value and returns verified values or a typed error. It never opens a
//! file or a socket: services around it fetch bytes, hand them in and store what it accepted.
//!
//! - [`cjson`]: OLPC canonical JSON, byte-compatible with securesystemslib.
//! - [`unique_keys`]: refuses JSON objects with a key twice (metadata must read one way).
//! - [`crypto`]: keys, signers and verifiers for every signature scheme airlock supports.
//! - [`tuf`]: TUF 1.0.x metadata model and the client's trusted-metadata state.
//! - [`tlog`]: transparency-log math and formats (Merkle proofs, signed notes, checkpoints,
//!   cosignatures, proof bundles, policies).
//! - [`transparency`]: the policy a root carries, the statement logged for every root and
//!   targets-role version, and the client's check that a file is in the log.
//! - [`install`]: the update agent's install decisions (versions, archive entries, modes, what
//!   to do after a crash).
//! - [`peer_check`]: a client's check of its peers' checkpoints against its own (split views).
//! - [`rollout`]: the update agent's decisions: which release a machine is offered (channels,
//!   staged rollouts), when it checks next, what a trigger may ask.
//! - [`rebuild`]: reproducible builds: a target's source and recipe, rebuilder attestations,
//!   and the client's rebuilder policy.
#![forbid(unsafe_code)]

pub mod cjson;
pub mod crypto;
pub mod delta;
pub mod install;
pub mod mirrors;
pub mod peer_check;
pub mod rebuild;
pub mod rollout;
pub mod tlog;
pub mod transparency;
pub mod tuf;
pub mod unique_keys;

/// An error and its causes on one line (`a: b: c`), for the places that must carry an error as
/// text (an HTTP answer, a report line). Errors here print their cause once: a message leaves its
/// source's text to `source()`, so `to_string()` alone would drop the cause.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}
