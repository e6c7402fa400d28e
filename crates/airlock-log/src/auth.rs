//! Publisher authentication for `POST /add`.
//!
//! The request body is the entry itself (any bytes, at most [`MAX_ENTRY_SIZE`]). The publisher
//! signs, with an Ed25519 signed-note key (c2sp.org/signed-note, algorithm 0x01) that the log's
//! configuration lists, the note text
//!
//! ```text
//! airlock-log/add/v1
//! <log origin>
//! <lowercase hex SHA-256 of the entry>
//! ```
//!
//! and sends the signature in the header `Airlock-Signature: <key name> <base64(key ID ||
//! signature)>`, the same encoding as a note signature line without its em dash. Binding the
//! origin means a submission to one log cannot be replayed to another log that trusts the same
//! key; hashing the entry keeps binary entries possible (a signed note could carry only text).
//! A replayed submission to the same log only appends the same signed statement again.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use airlock_core::tlog::{NoteSigner, NoteVerifier};

use crate::MAX_ENTRY_SIZE;

/// The request header that carries the publisher's signature.
pub const SIGNATURE_HEADER: &str = "airlock-signature";

/// Why a submission was refused. Each message is one line meant for the publisher.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing Airlock-Signature header")]
    Missing,
    #[error("malformed Airlock-Signature header: {0}")]
    Malformed(&'static str),
    #[error("key {name}+{key_id:08x} is not a publisher key of this log")]
    UnknownKey { name: String, key_id: u32 },
    #[error("signature by {name} does not verify over this entry for this log")]
    BadSignature { name: String },
    #[error("entry is empty")]
    Empty,
    #[error("entry is {len} bytes, above the limit of {max}")]
    TooLarge { len: usize, max: usize },
}

/// The text a publisher signs for `entry` on the log `origin`.
pub fn submission_text(origin: &str, entry: &[u8]) -> String {
    format!(
        "airlock-log/add/v1\n{origin}\n{}\n",
        hex::encode(Sha256::digest(entry))
    )
}

/// The `Airlock-Signature` header value for `entry`, signed by a publisher key.
pub fn sign_submission(
    signer: &NoteSigner,
    origin: &str,
    entry: &[u8],
) -> Result<String, airlock_core::tlog::KeyError> {
    let sig = signer.sign_text(&submission_text(origin, entry))?;
    let mut raw = sig.key_id.to_be_bytes().to_vec();
    raw.extend_from_slice(&sig.bytes);
    Ok(format!("{} {}", sig.name, STANDARD.encode(raw)))
}

/// A submission signature whose key is a publisher key of this log, not yet checked against
/// the entry (which may not have been read yet).
#[derive(Debug)]
pub struct ClaimedSignature<'a> {
    key: &'a NoteVerifier,
    signature: Vec<u8>,
}

impl ClaimedSignature<'_> {
    /// The publisher's key name.
    pub fn name(&self) -> &str {
        self.key.name()
    }
}

/// Checks the `Airlock-Signature` header alone: well formed, and by a key in `publishers`.
/// Everything an unauthenticated client can be refused for without reading its body.
pub fn check_signature_header<'a>(
    publishers: &'a [NoteVerifier],
    header: Option<&str>,
) -> Result<ClaimedSignature<'a>, AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    let (name, b64) = header.trim().split_once(' ').ok_or(AuthError::Malformed(
        "expected '<key name> <base64 signature>'",
    ))?;
    let raw = STANDARD
        .decode(b64)
        .map_err(|_| AuthError::Malformed("signature is not standard base64"))?;
    let (Some(id), Some(signature)) = (raw.get(..4), raw.get(4..)) else {
        return Err(AuthError::Malformed("signature is shorter than a key ID"));
    };
    if signature.len() != 64 {
        return Err(AuthError::Malformed(
            "signature is not a 4-byte key ID and a 64-byte Ed25519 signature",
        ));
    }
    let key_id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
    let key = publishers
        .iter()
        .find(|k| k.name() == name && k.key_id() == key_id)
        .ok_or_else(|| AuthError::UnknownKey {
            name: name.chars().take(100).collect(),
            key_id,
        })?;
    Ok(ClaimedSignature {
        key,
        signature: signature.to_vec(),
    })
}

/// Checks the entry against a signature that passed [`check_signature_header`]: size, and the
/// signature over this entry for the log `origin`.
pub fn verify_entry(
    claim: &ClaimedSignature<'_>,
    origin: &str,
    entry: &[u8],
) -> Result<(), AuthError> {
    if entry.len() > MAX_ENTRY_SIZE {
        return Err(AuthError::TooLarge {
            len: entry.len(),
            max: MAX_ENTRY_SIZE,
        });
    }
    if entry.is_empty() {
        return Err(AuthError::Empty);
    }
    if !claim
        .key
        .verify(submission_text(origin, entry).as_bytes(), &claim.signature)
    {
        return Err(AuthError::BadSignature {
            name: claim.name().to_string(),
        });
    }
    Ok(())
}

/// Checks size and signature of a submission; returns the publisher's key name.
pub fn verify_submission(
    publishers: &[NoteVerifier],
    origin: &str,
    entry: &[u8],
    header: Option<&str>,
) -> Result<String, AuthError> {
    if entry.len() > MAX_ENTRY_SIZE {
        return Err(AuthError::TooLarge {
            len: entry.len(),
            max: MAX_ENTRY_SIZE,
        });
    }
    let claim = check_signature_header(publishers, header)?;
    verify_entry(&claim, origin, entry)?;
    Ok(claim.name().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::tlog::KeyAlgorithm;

    #[test]
    fn only_a_listed_key_signing_this_entry_for_this_log_is_accepted() {
        let good = NoteSigner::generate("publisher", KeyAlgorithm::Ed25519).unwrap();
        let other = NoteSigner::generate("publisher", KeyAlgorithm::Ed25519).unwrap();
        let keys = [good.verifier()];
        let h = sign_submission(&good, "log.example", b"entry").unwrap();
        assert_eq!(
            verify_submission(&keys, "log.example", b"entry", Some(&h)),
            Ok("publisher".into())
        );
        // Another entry, another log, another key, no header, garbage.
        assert!(matches!(
            verify_submission(&keys, "log.example", b"entrY", Some(&h)),
            Err(AuthError::BadSignature { .. })
        ));
        assert!(matches!(
            verify_submission(&keys, "other.example", b"entry", Some(&h)),
            Err(AuthError::BadSignature { .. })
        ));
        let h2 = sign_submission(&other, "log.example", b"entry").unwrap();
        assert!(matches!(
            verify_submission(&keys, "log.example", b"entry", Some(&h2)),
            Err(AuthError::UnknownKey { .. })
        ));
        assert_eq!(
            verify_submission(&keys, "log.example", b"entry", None),
            Err(AuthError::Missing)
        );
        assert!(matches!(
            verify_submission(&keys, "log.example", b"entry", Some("publisher !!!")),
            Err(AuthError::Malformed(_))
        ));
        let big = vec![0u8; MAX_ENTRY_SIZE + 1];
        assert!(matches!(
            verify_submission(&keys, "log.example", &big, Some(&h)),
            Err(AuthError::TooLarge { .. })
        ));
        // Ed25519 checkpoint keys only: a cosignature key cannot sign submissions.
        let cosigner = NoteSigner::generate("w", KeyAlgorithm::CosignatureV1).unwrap();
        assert!(sign_submission(&cosigner, "log.example", b"entry").is_err());
    }
}
