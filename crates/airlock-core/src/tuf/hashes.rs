//! Length and hash checks of files described by metadata.
//!
//! Every listed hash must match. An algorithm airlock does not implement is a failure, never a
//! skip: otherwise an attacker could list only `{"md5-of-nothing": ...}` and pass. An empty list
//! of hashes is a failure too.

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

/// A file's listed hashes: algorithm name -> hex digest, in name order.
///
/// A map's interface over one small vector: a 100,000-target `targets.json` holds one of these
/// per target, and a `BTreeMap` node for each would cost about half a KiB.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hashes(Vec<(String, String)>);

impl Hashes {
    pub fn new() -> Self {
        Hashes(Vec::new())
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&String> {
        self.find(name)
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|(_, v)| v)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Set `name`'s digest; the one it replaces, if any.
    pub fn insert(&mut self, name: String, digest: String) -> Option<String> {
        match self.find(&name) {
            Ok(i) => self.0.get_mut(i).map(|(_, v)| std::mem::replace(v, digest)),
            Err(i) => {
                self.0.insert(i, (name, digest));
                None
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.find(name).ok().map(|i| self.0.remove(i).1)
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(name, digest)` in name order.
    pub fn iter(&self) -> HashesIter<'_> {
        HashesIter(self.0.iter())
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(_, v)| v)
    }
}

/// Iterator over [`Hashes`], as a map's `iter()`.
pub struct HashesIter<'a>(std::slice::Iter<'a, (String, String)>);

impl<'a> Iterator for HashesIter<'a> {
    type Item = (&'a String, &'a String);
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k, v))
    }
}

impl<'a> IntoIterator for &'a Hashes {
    type Item = (&'a String, &'a String);
    type IntoIter = HashesIter<'a>;
    fn into_iter(self) -> HashesIter<'a> {
        self.iter()
    }
}

/// As a map's: panics when `name` is not listed (use [`Hashes::get`] on outside input).
impl std::ops::Index<&str> for Hashes {
    type Output = String;
    fn index(&self, name: &str) -> &String {
        match self.get(name) {
            Some(digest) => digest,
            None => panic!("no {name} hash listed"),
        }
    }
}

impl FromIterator<(String, String)> for Hashes {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let mut hashes = Hashes::new();
        for (k, v) in iter {
            hashes.insert(k, v);
        }
        hashes
    }
}

impl<const N: usize> From<[(String, String); N]> for Hashes {
    fn from(pairs: [(String, String); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl serde::Serialize for Hashes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Hashes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Hashes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of hash algorithm to hex digest")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Hashes, A::Error> {
                let mut hashes = Hashes(Vec::with_capacity(map.size_hint().unwrap_or(1)));
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    if hashes.insert(k, v).is_some() {
                        return Err(serde::de::Error::custom("a hash algorithm is listed twice"));
                    }
                }
                Ok(hashes)
            }
        }
        d.deserialize_map(Visit)
    }
}

/// `{"sha256": hex}` of `bytes`.
pub fn sha256_map(bytes: &[u8]) -> Hashes {
    Hashes::from([("sha256".to_string(), hex::encode(Sha256::digest(bytes)))])
}

/// Check every listed hash over `bytes`.
pub fn verify_all(expected: &Hashes, bytes: &[u8]) -> Result<(), HashError> {
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
    pub fn new(expected: &Hashes) -> Result<Self, HashError> {
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
        let unknown = Hashes::from([("md5".to_string(), "00".to_string())]);
        assert_eq!(
            verify_all(&unknown, data),
            Err(HashError::Unsupported("md5".into()))
        );
        assert_eq!(verify_all(&Hashes::new(), data), Err(HashError::NoHashes));
    }
}
