//! The signed envelope shared by every role: `{"signatures": [...], "signed": {...}}`.
//!
//! Signatures cover the canonical JSON of the `signed` object as received. Most metadata is
//! written canonically already (Airlock's, python-tuf's compact output): then the received bytes
//! are that message, checked by one scan ([`cjson::is_canonical`]) and used as they are, and the
//! typed model is read from those same bytes. Otherwise (indented files, other key orders) the
//! bytes are read into the typed model and the message is the model's canonical JSON, as
//! python-tuf does. The model keeps every field and refuses what it could not write back
//! (`null` for an optional field, an empty `x-airlock-pq`), so both ways give the same message
//! for the same document: what was verified is exactly what is used. Debug builds check that
//! on every canonical document they read (the test suite and the fuzz corpora run them).

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::cjson;
use crate::crypto::{CryptoError, Signer};
use crate::unique_keys::{JsonKeyError, check_unique_keys};

/// One signature in a metadata envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The key id, an opaque string chosen by whoever wrote the delegating metadata.
    pub keyid: String,
    /// The signature, hex-encoded.
    pub sig: String,
    /// Fields this version does not know, kept for a lossless round trip.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// A metadata file: signatures over the canonical form of `signed`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metadata<T> {
    pub signatures: Vec<Signature>,
    pub signed: T,
    /// Fields this version does not know, kept for a lossless round trip.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// Parsed metadata together with the canonical bytes of the `signed` object as received.
///
/// Produced by [`Metadata::parse`]; signatures are checked against `signed_bytes`, which borrow
/// the input when it was canonical already.
#[derive(Clone, Debug)]
pub struct Parsed<'a, T> {
    pub metadata: Metadata<T>,
    /// Canonical JSON of the received `signed` object: the message the signatures cover.
    pub signed_bytes: Cow<'a, [u8]>,
}

/// What every role's `signed` part offers, whatever the role.
pub trait Role: Serialize + DeserializeOwned + Clone {
    /// The `_type` value: `root`, `timestamp`, `snapshot` or `targets`.
    const TYPE: &'static str;
    fn spec_version(&self) -> &str;
    fn version(&self) -> u64;
    fn expires(&self) -> DateTime<Utc>;
    /// Checks serde cannot express (thresholds, reserved names, required entries, ...).
    fn validate(&self) -> Result<(), MetadataError>;

    /// True when `expires` is at or before `reference_time` (the spec: "expires must be higher").
    fn is_expired(&self, reference_time: DateTime<Utc>) -> bool {
        self.expires() <= reference_time
    }
}

/// How [`Metadata::sign`] treats the signatures already present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignMode {
    /// Drop every existing signature, then add this one.
    ReplaceAll,
    /// Keep the others; a signature by the same key id is replaced.
    Append,
}

/// Why bytes are not valid metadata of the expected role.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("{role} metadata is not valid JSON: {reason}")]
    Json { role: &'static str, reason: String },
    #[error("{role} metadata: the envelope has no `signed` object or no `signatures` list")]
    Envelope { role: &'static str },
    #[error("expected {expected} metadata, but `_type` is {found:?}")]
    WrongType {
        expected: &'static str,
        found: String,
    },
    #[error("{role} metadata has unsupported spec_version {found:?} (only 1.x is accepted)")]
    SpecVersion { role: &'static str, found: String },
    #[error("{role} metadata is malformed: {reason}")]
    Malformed { role: &'static str, reason: String },
    /// JSON readers disagree on which copy of a duplicated key counts, so such a file would not
    /// read the same everywhere.
    #[error("{role} metadata is refused")]
    DuplicateKey {
        role: &'static str,
        source: JsonKeyError,
    },
    #[error("{role} metadata has no canonical form")]
    Canonical {
        role: &'static str,
        source: cjson::CanonicalError,
    },
    #[error("signing {role} metadata failed")]
    Sign {
        role: &'static str,
        source: CryptoError,
    },
}

impl MetadataError {
    pub(crate) fn malformed(role: &'static str, reason: impl Into<String>) -> Self {
        MetadataError::Malformed {
            role,
            reason: reason.into(),
        }
    }
}

/// A signed part at least this large is checked on a second thread while it is read.
const PARALLEL_CHECK_MIN: usize = 1 << 20;

/// The spec version airlock writes into new metadata.
pub const SPEC_VERSION: &str = "1.0.34";

/// Accept `1.x` and `1.x.y` (digits only), as python-tuf does; refuse every other major version.
pub fn check_spec_version(role: &'static str, found: &str) -> Result<(), MetadataError> {
    let parts: Vec<&str> = found.split('.').collect();
    let digits = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if (parts.len() == 2 || parts.len() == 3) && digits && parts.first() == Some(&"1") {
        Ok(())
    } else {
        Err(MetadataError::SpecVersion {
            role,
            found: found.to_string(),
        })
    }
}

/// As python-tuf: a key id signing twice makes the whole envelope malformed (one key must never
/// look like two toward a threshold, and a client must not pick one).
fn check_distinct_keyids(
    role: &'static str,
    signatures: &[Signature],
) -> Result<(), MetadataError> {
    let mut keyids = std::collections::BTreeSet::new();
    match signatures.iter().find(|s| !keyids.insert(s.keyid.as_str())) {
        Some(dup) => Err(MetadataError::malformed(
            role,
            format!("key id {} signs more than once", dup.keyid),
        )),
        None => Ok(()),
    }
}

/// An object key, borrowed from the input when it has no escapes (nearly always): a
/// 100,000-target `targets.json` has three keys per target, and allocating each cost more
/// than reading it.
pub(crate) enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }

    pub(crate) fn into_string(self) -> String {
        match self {
            Key::Borrowed(s) => s.to_owned(),
            Key::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v))
            }
        }
        d.deserialize_str(Visit)
    }
}

/// Read one field of a hand-written `Deserialize`, refusing a second occurrence.
pub(crate) fn take_once<'de, A: serde::de::MapAccess<'de>, V: Deserialize<'de>>(
    slot: &mut Option<V>,
    name: &'static str,
    map: &mut A,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(serde::de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

pub(crate) fn required<V, E: serde::de::Error>(
    slot: Option<V>,
    name: &'static str,
) -> Result<V, E> {
    slot.ok_or_else(|| E::missing_field(name))
}

/// For `#[serde(default, deserialize_with = "present")]` on an optional field: absent is
/// `None`, and `null` is refused rather than read as absent: the model could not write it back,
/// so a canonical file with it would not be the message the model's canonical form is.
pub(crate) fn present<'de, D: serde::Deserializer<'de>, V: Deserialize<'de>>(
    d: D,
) -> Result<Option<V>, D::Error> {
    V::deserialize(d).map(Some)
}

/// For a map field that is left out when empty: present, it must hold something (the same
/// reason as [`present`]).
pub(crate) fn non_empty<'de, D, K, V>(d: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    K: Deserialize<'de> + Ord,
    V: Deserialize<'de>,
{
    let map = BTreeMap::deserialize(d)?;
    if map.is_empty() {
        return Err(serde::de::Error::custom(
            "an empty map where the field is left out when empty",
        ));
    }
    Ok(map)
}

// Hand-written so that `signed` is read straight into `T`: with `#[serde(flatten)]` serde would
// first copy the whole envelope into an intermediate tree.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Metadata<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = Metadata<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a metadata envelope {signatures, signed}")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Metadata<T>, A::Error> {
                let (mut signatures, mut signed) = (None, None);
                let mut unrecognized = BTreeMap::new();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    match key.as_str() {
                        "signatures" => take_once(&mut signatures, "signatures", &mut map)?,
                        "signed" => take_once(&mut signed, "signed", &mut map)?,
                        _ => {
                            let value: Value = map.next_value()?;
                            unrecognized.insert(key.into_string(), value);
                        }
                    }
                }
                Ok(Metadata {
                    signatures: required(signatures, "signatures")?,
                    signed: required(signed, "signed")?,
                    unrecognized,
                })
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// An envelope's members as written, values unread: the first step of the canonical way.
struct Envelope<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Envelope<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Envelope<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a metadata envelope {signatures, signed}")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Envelope<'a>, A::Error> {
                let mut members = Vec::new();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    members.push((key.into_string(), map.next_value()?));
                }
                Ok(Envelope(members))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// The signature entries `signer` makes over `msg`: its own, and for a hybrid key in its
/// additive form the SLH-DSA half under its pairing's signature key id. Never empty.
pub fn sign_entries(signer: &dyn Signer, msg: &[u8]) -> Result<Vec<Signature>, CryptoError> {
    let key = signer.public_key();
    // The metadata form: `sig`, plus `other_headers` for an OpenPGP key.
    let (sig, unrecognized) = key.signature_fields(&signer.sign(msg)?)?;
    let mut out = vec![Signature {
        keyid: key.key_id(),
        sig,
        unrecognized,
    }];
    if let Some(pq) = signer.post_quantum() {
        out.push(Signature {
            keyid: pq.signature_keyid(key)?,
            sig: hex::encode(signer.sign_post_quantum(msg)?),
            unrecognized: BTreeMap::new(),
        });
    }
    Ok(out)
}

/// Checks shared by all roles, called from each role's `validate`.
pub(crate) fn validate_common<T: Role>(signed: &T) -> Result<(), MetadataError> {
    check_spec_version(T::TYPE, signed.spec_version())?;
    if signed.version() == 0 {
        return Err(MetadataError::malformed(
            T::TYPE,
            "version must be at least 1",
        ));
    }
    Ok(())
}

impl<T: Role> Metadata<T> {
    /// A new envelope with no signatures.
    pub fn new(signed: T) -> Self {
        Metadata {
            signatures: Vec::new(),
            signed,
            unrecognized: BTreeMap::new(),
        }
    }

    /// Parse bytes as metadata of role type `T`, with the canonical bytes of `signed` that
    /// signatures must cover. Checks that no JSON object has a key twice (at any depth), `_type`,
    /// spec version, the role's own rules and that no key id signs twice; not signatures.
    ///
    /// When `signed` is canonical JSON as received, `signed_bytes` are those bytes and the model
    /// is read from them; otherwise the bytes are read straight into the typed model and
    /// `signed_bytes` is the canonical form of that model (python-tuf does the same). Either
    /// way a signature covers exactly the values the caller will use: the model keeps every
    /// field and refuses values it could not write back, so the two agree (checked in debug
    /// builds). A file whose re-encoding differs (say `1.0` for `1`, escaped characters)
    /// fails verification, never passes it.
    pub fn parse(bytes: &[u8]) -> Result<Parsed<'_, T>, MetadataError> {
        Self::parse_checked(bytes, &|_: &[Signature], _: &[u8]| ()).map(|(parsed, ())| parsed)
    }

    /// [`Metadata::parse`], and `check` (a signature check) over the signatures and the message
    /// they must cover, whose result comes back beside the parsed metadata; a file that does
    /// not parse gives the parse error. For a large canonical document, `check` runs on a
    /// second thread while the model is read: on two cores the signature check of a 15 MB
    /// `targets.json` then costs no time of its own.
    pub fn parse_checked<'a, R: Send>(
        bytes: &'a [u8],
        check: &(dyn Fn(&[Signature], &[u8]) -> R + Sync),
    ) -> Result<(Parsed<'a, T>, R), MetadataError> {
        if let Some(parsed) = Self::parse_canonical(bytes, check) {
            return parsed;
        }
        let role = T::TYPE;
        // serde keeps the last copy of a duplicated key; refuse them first, at every level.
        let keys = check_unique_keys(bytes);
        if let Err(source @ JsonKeyError::Duplicate { .. }) = keys {
            return Err(MetadataError::DuplicateKey { role, source });
        }
        let metadata: Metadata<T> = match serde_json::from_slice(bytes) {
            Ok(m) => m,
            // The fast path says only "invalid"; the slow path says which rule was broken.
            Err(typed) => {
                return Err(match Self::parse_via_value(bytes) {
                    Err(precise) => precise,
                    Ok(_) => MetadataError::malformed(role, typed.to_string()),
                });
            }
        };
        // Valid JSON the key check could not follow: refuse rather than let it pass unchecked.
        if let Err(e) = keys {
            return Err(MetadataError::Json {
                role,
                reason: e.to_string(),
            });
        }
        let signed_bytes = metadata.signed_bytes()?;
        let parsed = Self::checked(metadata, Cow::Owned(signed_bytes))?;
        let verdict = check(&parsed.metadata.signatures, &parsed.signed_bytes);
        Ok((parsed, verdict))
    }

    /// The checks after reading, shared by both ways of reading.
    fn checked(
        metadata: Metadata<T>,
        signed_bytes: Cow<'_, [u8]>,
    ) -> Result<Parsed<'_, T>, MetadataError> {
        metadata.signed.validate()?;
        check_distinct_keyids(T::TYPE, &metadata.signatures)?;
        Ok(Parsed {
            metadata,
            signed_bytes,
        })
    }

    /// The way for an envelope whose `signed` object is canonical as received: that object's
    /// bytes are the message, and its keys are known to be sorted and distinct at every depth
    /// without a separate scan. `None` when this does not apply or anything is wrong: the
    /// general way then reads the file again and names the fault.
    fn parse_canonical<'a, R: Send>(
        bytes: &'a [u8],
        check: &(dyn Fn(&[Signature], &[u8]) -> R + Sync),
    ) -> Option<Result<(Parsed<'a, T>, R), MetadataError>> {
        let file = std::str::from_utf8(bytes).ok()?;
        // A file canonical as a whole (Airlock writes them so) is checked by one scan, which
        // also finds its members; otherwise serde finds them and `signed` is checked alone.
        let whole = cjson::canonical_members(file);
        let checked_whole = whole.is_some();
        let members = match whole {
            Some(members) => members,
            None => {
                let Envelope(members) = serde_json::from_str(file).ok()?;
                members.into_iter().map(|(k, v)| (k, v.get())).collect()
            }
        };
        let (mut signed, mut signatures) = (None, None);
        let mut others = BTreeMap::new();
        for (key, value) in members {
            let slot = match key.as_str() {
                "signed" => signed.replace(value),
                "signatures" => signatures.replace(value),
                _ => others.insert(key, value),
            };
            if slot.is_some() {
                return None;
            }
        }
        let (text, signatures) = (signed?, signatures?);
        if !checked_whole {
            if !cjson::is_canonical(text) {
                return None;
            }
            let outside = std::iter::once(signatures).chain(others.values().copied());
            for value in outside {
                check_unique_keys(value.as_bytes()).ok()?;
            }
        }
        let raw = text.as_bytes();
        let signatures: Vec<Signature> = serde_json::from_str(signatures).ok()?;
        let (signed, verdict) = if raw.len() >= PARALLEL_CHECK_MIN {
            std::thread::scope(|scope| {
                let checking = scope.spawn(|| check(&signatures, raw));
                let signed = serde_json::from_str::<T>(text);
                match checking.join() {
                    Ok(verdict) => (signed, verdict),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            })
        } else {
            (serde_json::from_str::<T>(text), check(&signatures, raw))
        };
        let metadata = Metadata {
            signatures,
            signed: signed.ok()?,
            unrecognized: others
                .into_iter()
                .map(|(k, v)| serde_json::from_str(v).map(|v| (k, v)))
                .collect::<Result<_, _>>()
                .ok()?,
        };
        debug_assert_eq!(
            metadata.signed_bytes().ok().as_deref(),
            Some(raw),
            "the {} model does not write back the canonical document it was read from",
            T::TYPE
        );
        Some(Self::checked(metadata, Cow::Borrowed(raw)).map(|parsed| (parsed, verdict)))
    }

    /// The same checks through a JSON tree: slower, but it can name what is wrong (`_type`
    /// first, so a timestamp fed where a root belongs is reported as such).
    fn parse_via_value(bytes: &[u8]) -> Result<Parsed<'static, T>, MetadataError> {
        let role = T::TYPE;
        let value: Value = serde_json::from_slice(bytes).map_err(|e| MetadataError::Json {
            role,
            reason: e.to_string(),
        })?;
        let Value::Object(mut envelope) = value else {
            return Err(MetadataError::Envelope { role });
        };
        let signed_value = envelope
            .remove("signed")
            .ok_or(MetadataError::Envelope { role })?;
        let signatures_value = envelope
            .remove("signatures")
            .ok_or(MetadataError::Envelope { role })?;
        // Check `_type` first, so feeding a timestamp where a root is expected names the mix-up.
        match signed_value.get("_type") {
            Some(Value::String(t)) if t == role => {}
            Some(Value::String(t)) => {
                return Err(MetadataError::WrongType {
                    expected: role,
                    found: t.clone(),
                });
            }
            _ => {
                return Err(MetadataError::WrongType {
                    expected: role,
                    found: String::new(),
                });
            }
        }
        let signed_bytes = cjson::to_vec(&signed_value)
            .map_err(|source| MetadataError::Canonical { role, source })?;
        let signed: T = serde_json::from_value(signed_value)
            .map_err(|e| MetadataError::malformed(role, e.to_string()))?;
        signed.validate()?;
        let signatures: Vec<Signature> = serde_json::from_value(signatures_value)
            .map_err(|e| MetadataError::malformed(role, format!("signatures: {e}")))?;
        check_distinct_keyids(role, &signatures)?;
        let unrecognized = envelope.into_iter().collect();
        Ok(Parsed {
            metadata: Metadata {
                signatures,
                signed,
                unrecognized,
            },
            signed_bytes: Cow::Owned(signed_bytes),
        })
    }

    /// Parse bytes as metadata of role type `T` (see [`Metadata::parse`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MetadataError> {
        Ok(Self::parse(bytes)?.metadata)
    }

    /// The canonical JSON of `signed`: the exact message a signature covers.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, MetadataError> {
        cjson::to_vec_of(&self.signed).map_err(|source| MetadataError::Canonical {
            role: T::TYPE,
            source,
        })
    }

    /// The whole envelope as canonical JSON (compact, deterministic).
    pub fn to_canonical_bytes(&self) -> Result<Vec<u8>, MetadataError> {
        cjson::to_vec_of(self).map_err(|source| MetadataError::Canonical {
            role: T::TYPE,
            source,
        })
    }

    /// The whole envelope as indented JSON with sorted keys, for files people may read.
    pub fn to_pretty_bytes(&self) -> Result<Vec<u8>, MetadataError> {
        let value = serde_json::to_value(self)
            .map_err(|e| MetadataError::malformed(T::TYPE, e.to_string()))?;
        serde_json::to_vec_pretty(&value)
            .map_err(|e| MetadataError::malformed(T::TYPE, e.to_string()))
    }

    /// Sign the canonical form of `signed` with `signer` and add the signature. A hybrid key
    /// in its additive form ([`Signer::post_quantum`]) adds its post-quantum half too, as a
    /// second entry (see [`sign_entries`]).
    pub fn sign(
        &mut self,
        signer: &dyn Signer,
        mode: SignMode,
    ) -> Result<&Signature, MetadataError> {
        let msg = self.signed_bytes()?;
        let entries = sign_entries(signer, &msg).map_err(|source| MetadataError::Sign {
            role: T::TYPE,
            source,
        })?;
        if mode == SignMode::ReplaceAll {
            self.signatures.clear();
        }
        let keyid = signer.public_key().key_id();
        for entry in entries {
            self.add_signature(entry);
        }
        let index = self
            .signatures
            .iter()
            .position(|s| s.keyid == keyid)
            .unwrap_or_default();
        Ok(&self.signatures[index])
    }

    /// Add a signature made elsewhere (offline signing); one by the same key id is replaced.
    pub fn add_signature(&mut self, signature: Signature) -> &Signature {
        let index = match self
            .signatures
            .iter()
            .position(|s| s.keyid == signature.keyid)
        {
            Some(i) => {
                self.signatures[i] = signature;
                i
            }
            None => {
                self.signatures.push(signature);
                self.signatures.len() - 1
            }
        };
        &self.signatures[index]
    }
}

/// `expires` as RFC 3339 in UTC with a `Z` suffix (`2030-01-01T00:00:00Z`).
///
/// Exactly the shape the specification gives, `YYYY-MM-DDTHH:MM:SSZ`: fractional seconds and
/// offsets other than `Z` are refused on reading (python-tuf 7 refuses them too), so a timestamp
/// always means one instant written one way. Writing truncates to whole seconds, so metadata
/// made from a clock reading is still readable by every TUF client.
pub(crate) mod expiry {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn parse(text: &str) -> Result<DateTime<Utc>, String> {
        let shaped =
            text.len() == 20 && text.as_bytes().get(10) == Some(&b'T') && text.ends_with('Z');
        if !shaped {
            return Err(format!(
                "expires {text:?} is not RFC 3339 UTC (YYYY-MM-DDTHH:MM:SSZ)"
            ));
        }
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| format!("expires {text:?} is not RFC 3339: {e}"))
    }

    pub fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(D::Error::custom)
    }

    /// `expires` as a standalone value, for hand-written `Deserialize` impls.
    pub struct Expiry(pub DateTime<Utc>);

    impl<'de> Deserialize<'de> for Expiry {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let text = String::deserialize(d)?;
            parse(&text).map(Expiry).map_err(D::Error::custom)
        }
    }
}

/// Zero-sized `_type` markers: each serializes as its role's name and refuses any other.
macro_rules! type_tag {
    ($name:ident, $text:literal) => {
        #[doc = concat!("The `_type` marker `\"", $text, "\"`.")]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub struct $name;

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($text)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let found = String::deserialize(d)?;
                if found == $text {
                    Ok($name)
                } else {
                    Err(serde::de::Error::custom(format!(
                        "_type is {found:?}, expected {:?}",
                        $text
                    )))
                }
            }
        }
    };
}

type_tag!(RootType, "root");
type_tag!(TimestampType, "timestamp");
type_tag!(SnapshotType, "snapshot");
type_tag!(TargetsType, "targets");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyid_signing_twice_is_malformed() {
        use crate::tuf::Targets;
        let expires = expiry::parse("2030-01-01T00:00:00Z").unwrap();
        let mut md = Metadata::new(Targets::new(1, expires));
        let sig = |keyid: &str| Signature {
            keyid: keyid.into(),
            sig: "00".into(),
            unrecognized: BTreeMap::new(),
        };
        md.signatures = vec![sig("a"), sig("b")];
        let ok = md.to_canonical_bytes().unwrap();
        assert!(Metadata::<Targets>::parse(&ok).is_ok());
        md.signatures.push(sig("a"));
        let dup = md.to_canonical_bytes().unwrap();
        let err = Metadata::<Targets>::parse(&dup).unwrap_err();
        assert!(err.to_string().contains("signs more than once"), "{err}");
    }

    #[test]
    fn spec_versions() {
        for ok in ["1.0", "1.0.34", "1.99.0", "1.0.31"] {
            assert!(check_spec_version("root", ok).is_ok(), "{ok}");
        }
        for bad in [
            "2.0.0", "0.9", "1", "1.0.0.0", "1.x", "", "1..0", " 1.0", "١.0",
        ] {
            assert!(check_spec_version("root", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expiry_format() {
        let t = expiry::parse("2030-01-02T03:04:05Z").unwrap();
        assert_eq!(expiry::format(&t), "2030-01-02T03:04:05Z");
        // A clock reading with a fraction is written in whole seconds, which every client reads.
        let with_fraction = t + chrono::Duration::milliseconds(500);
        assert_eq!(expiry::format(&with_fraction), "2030-01-02T03:04:05Z");
        for bad in [
            "2030-01-02T03:04:05.5Z",
            "2030-01-02T03:04:05.000Z",
            "2030-01-02T03:04:05+01:00",
            "2030-01-02 03:04:05Z",
            "2030-01-02",
            "2030-13-02T03:04:05Z",
            "garbage",
        ] {
            assert!(expiry::parse(bad).is_err(), "{bad}");
        }
    }
}
