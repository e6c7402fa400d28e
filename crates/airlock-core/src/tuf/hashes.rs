//! Length and hash checks of files described by metadata.
//!
//! Every listed hash must match. An algorithm airlock does not implement is a failure, never a
//! skip: otherwise an attacker could list only `{"md5-of-nothing": ...}` and pass. An empty list
//! of hashes is a failure too.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256, Sha512};

/// The hash algorithms airlock computes (TUF names).
pub const SUPPORTED_HASHES: [&str; 2] = ["sha256", "sha512"];

/// Why bytes do not match their description.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HashError {
    #[error("length is {actual} bytes, metadata says {expected}")]
    Length { expected: u64, actual: u64 },
    #[error("{algorithm} hash mismatch: metadata says {expected}, content has {actual}")]
    Mismatch {
        algorithm: String,
        expected: String,
        actual: String,
    },
    #[error("hash algorithm {0:?} is not supported, so the content cannot be checked")]
    Unsupported(String),
    #[error("metadata lists no hashes, so the content cannot be checked")]
    NoHashes,
}

/// `{"sha256": hex}` of `bytes`.
pub fn sha256_map(bytes: &[u8]) -> BTreeMap<String, String> {
    BTreeMap::from([("sha256".to_string(), hex::encode(Sha256::digest(bytes)))])
}

/// Check every listed hash over `bytes`.
pub fn verify_all(expected: &BTreeMap<String, String>, bytes: &[u8]) -> Result<(), HashError> {
    let mut hasher = MultiHasher::new(expected)?;
    hasher.update(bytes);
    hasher.finish()
}

/// Streaming check of several hashes at once, for content too large to hold in memory.
///
/// Created from the listed hashes (refusing unsupported algorithms up front, before any byte is
/// downloaded); feed it chunks; [`MultiHasher::finish`] compares. Length is the caller's job.
pub struct MultiHasher {
    pending: Vec<(String, String, Box<dyn DynHash>)>,
}

trait DynHash: Send {
    fn update(&mut self, data: &[u8]);
    fn finish_hex(self: Box<Self>) -> String;
}

impl<D: Digest + Send + 'static> DynHash for D {
    fn update(&mut self, data: &[u8]) {
        Digest::update(self, data);
    }
    fn finish_hex(self: Box<Self>) -> String {
        hex::encode(self.finalize())
    }
}

impl MultiHasher {
    pub fn new(expected: &BTreeMap<String, String>) -> Result<Self, HashError> {
        if expected.is_empty() {
            return Err(HashError::NoHashes);
        }
        let mut pending = Vec::with_capacity(expected.len());
        for (algorithm, hex_value) in expected {
            let hasher: Box<dyn DynHash> = match algorithm.as_str() {
                "sha256" => Box::new(Sha256::new()),
                "sha512" => Box::new(Sha512::new()),
                other => return Err(HashError::Unsupported(other.to_string())),
            };
            pending.push((algorithm.clone(), hex_value.clone(), hasher));
        }
        Ok(MultiHasher { pending })
    }

    pub fn update(&mut self, data: &[u8]) {
        for (_, _, h) in &mut self.pending {
            h.update(data);
        }
    }

    pub fn finish(self) -> Result<(), HashError> {
        for (algorithm, expected, h) in self.pending {
            let actual = h.finish_hex();
            // Hex case is not significant; the digest is.
            if !actual.eq_ignore_ascii_case(&expected) {
                return Err(HashError::Mismatch {
                    algorithm,
                    expected,
                    actual,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hash_must_match_and_unknown_ones_fail() {
        let data = b"hello";
        let mut good = sha256_map(data);
        assert!(verify_all(&good, data).is_ok());
        assert!(matches!(
            verify_all(&good, b"hellp"),
            Err(HashError::Mismatch { .. })
        ));
        good.insert("sha512".into(), hex::encode(Sha512::digest(data)));
        assert!(verify_all(&good, data).is_ok());
        good.insert("sha512".into(), hex::encode(Sha512::digest(b"other")));
        assert!(matches!(
            verify_all(&good, data),
            Err(HashError::Mismatch { .. })
        ));
        let unknown = BTreeMap::from([("md5".to_string(), "00".to_string())]);
        assert_eq!(
            verify_all(&unknown, data),
            Err(HashError::Unsupported("md5".into()))
        );
        assert_eq!(verify_all(&BTreeMap::new(), data), Err(HashError::NoHashes));
    }
}
