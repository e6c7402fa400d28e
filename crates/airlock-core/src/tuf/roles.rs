//! The four top-level roles' `signed` contents and the file descriptions they carry.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::delegation::Delegations;
use super::hashes::{self, HashError, Hashes};
use super::metadata::{
    Key, MetadataError, Role, RootType, SPEC_VERSION, SnapshotType, TargetsType, TimestampType,
    expiry, non_empty, present, required, take_once, validate_common,
};
use super::verify::Authority;
use crate::crypto::{PqPairings, PublicKey};

/// The top-level role names; a delegated role may not take one of them.
pub const TOP_LEVEL_ROLES: [&str; 4] = ["root", "timestamp", "snapshot", "targets"];

/// Key ids and threshold of one role, as root lists them for the top-level roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleKeys {
    pub keyids: Vec<String>,
    pub threshold: u64,
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl RoleKeys {
    pub fn new(keyids: Vec<String>, threshold: u64) -> Self {
        RoleKeys {
            keyids,
            threshold,
            unrecognized: BTreeMap::new(),
        }
    }
}

/// `root.json`: the keys of every top-level role, root included.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Root {
    #[serde(rename = "_type")]
    pub type_tag: RootType,
    pub spec_version: String,
    pub version: u64,
    #[serde(with = "expiry")]
    pub expires: DateTime<Utc>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub consistent_snapshot: Option<bool>,
    pub keys: BTreeMap<String, PublicKey>,
    pub roles: BTreeMap<String, RoleKeys>,
    /// `x-airlock-pq`: the post-quantum keys paired with some of `keys` (hybrid keys in their
    /// additive form, docs/keys.md). Other TUF clients keep the field and ignore it.
    #[serde(
        rename = "x-airlock-pq",
        default,
        deserialize_with = "non_empty",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub pq: PqPairings,
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl Root {
    /// Version 1, consistent snapshots on, no keys yet: every top-level role must then get keys
    /// and a threshold through `roles` before the root is valid.
    pub fn new(expires: DateTime<Utc>) -> Self {
        Root {
            type_tag: RootType,
            spec_version: SPEC_VERSION.to_string(),
            version: 1,
            expires,
            consistent_snapshot: Some(true),
            keys: BTreeMap::new(),
            roles: BTreeMap::new(),
            pq: BTreeMap::new(),
            unrecognized: BTreeMap::new(),
        }
    }

    /// Keys and threshold root gives a top-level role (`root`, `timestamp`, ...).
    pub fn authority(&self, role: &str) -> Option<Authority<'_>> {
        self.roles.get(role).map(|r| Authority {
            keys: &self.keys,
            pq: &self.pq,
            keyids: &r.keyids,
            threshold: r.threshold,
        })
    }

    /// Add `key` to the top-level `role` (its key id computed), keeping the threshold.
    pub fn add_key(&mut self, role: &str, key: PublicKey) -> String {
        let keyid = key.key_id();
        let entry = self
            .roles
            .entry(role.to_string())
            .or_insert_with(|| RoleKeys::new(Vec::new(), 1));
        if !entry.keyids.contains(&keyid) {
            entry.keyids.push(keyid.clone());
        }
        self.keys.insert(keyid.clone(), key);
        keyid
    }

    /// Remove `keyid` from `role`; the key itself goes once no role uses it.
    pub fn remove_key(&mut self, role: &str, keyid: &str) {
        if let Some(r) = self.roles.get_mut(role) {
            r.keyids.retain(|k| k != keyid);
        }
        if !self
            .roles
            .values()
            .any(|r| r.keyids.iter().any(|k| k == keyid))
        {
            self.keys.remove(keyid);
            self.pq.remove(keyid);
        }
    }
}

impl Role for Root {
    const TYPE: &'static str = "root";
    fn spec_version(&self) -> &str {
        &self.spec_version
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn expires(&self) -> DateTime<Utc> {
        self.expires
    }
    fn validate(&self) -> Result<(), MetadataError> {
        validate_common(self)?;
        for name in TOP_LEVEL_ROLES {
            let role = self.roles.get(name).ok_or_else(|| {
                MetadataError::malformed("root", format!("roles has no entry for {name:?}"))
            })?;
            if role.threshold == 0 {
                return Err(MetadataError::malformed(
                    "root",
                    format!("role {name:?} has threshold 0"),
                ));
            }
        }
        super::verify::validate_pairings(&self.keys, &self.pq)
            .map_err(|reason| MetadataError::malformed("root", reason))
    }
}

/// What a timestamp or snapshot says about another metadata file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaFile {
    pub version: u64,
    pub length: Option<u64>,
    pub hashes: Option<Hashes>,
    /// Fields this version does not know, kept for a lossless round trip.
    pub unrecognized: BTreeMap<String, Value>,
}

impl MetaFile {
    /// Version only (length and hashes are optional in TUF).
    pub fn new(version: u64) -> Self {
        MetaFile {
            version,
            length: None,
            hashes: None,
            unrecognized: BTreeMap::new(),
        }
    }

    /// Version with the length and SHA-256 of `bytes`.
    pub fn with_bytes(version: u64, bytes: &[u8]) -> Self {
        MetaFile {
            version,
            length: Some(bytes.len() as u64),
            hashes: Some(hashes::sha256_map(bytes)),
            unrecognized: BTreeMap::new(),
        }
    }

    /// Check `bytes` against the listed length and every listed hash (those that are listed).
    pub fn verify_bytes(&self, bytes: &[u8]) -> Result<(), HashError> {
        if let Some(length) = self.length
            && length != bytes.len() as u64
        {
            return Err(HashError::Length {
                expected: length,
                actual: bytes.len() as u64,
            });
        }
        if let Some(h) = &self.hashes {
            hashes::verify_all(h, bytes)?;
        }
        Ok(())
    }

    fn validate(&self, role: &'static str, name: &str) -> Result<(), MetadataError> {
        if self.version == 0 {
            return Err(MetadataError::malformed(
                role,
                format!("meta {name:?} has version 0"),
            ));
        }
        if let Some(h) = &self.hashes
            && h.is_empty()
        {
            return Err(MetadataError::malformed(
                role,
                format!("meta {name:?} has an empty hashes object"),
            ));
        }
        Ok(())
    }
}

/// `timestamp.json`: the current snapshot's version (and optionally its length and hashes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timestamp {
    #[serde(rename = "_type")]
    pub type_tag: TimestampType,
    pub spec_version: String,
    pub version: u64,
    #[serde(with = "expiry")]
    pub expires: DateTime<Utc>,
    /// Always holds `snapshot.json` (checked when parsing).
    pub meta: BTreeMap<String, MetaFile>,
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// The one key `timestamp.meta` must have.
pub const SNAPSHOT_META: &str = "snapshot.json";

impl Timestamp {
    pub fn new(version: u64, expires: DateTime<Utc>, snapshot: MetaFile) -> Self {
        Timestamp {
            type_tag: TimestampType,
            spec_version: SPEC_VERSION.to_string(),
            version,
            expires,
            meta: BTreeMap::from([(SNAPSHOT_META.to_string(), snapshot)]),
            unrecognized: BTreeMap::new(),
        }
    }

    /// The snapshot's description. Parsed metadata always has one; a hand-built value might not.
    pub fn snapshot_meta(&self) -> Option<&MetaFile> {
        self.meta.get(SNAPSHOT_META)
    }
}

impl Role for Timestamp {
    const TYPE: &'static str = "timestamp";
    fn spec_version(&self) -> &str {
        &self.spec_version
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn expires(&self) -> DateTime<Utc> {
        self.expires
    }
    fn validate(&self) -> Result<(), MetadataError> {
        validate_common(self)?;
        let meta = self.snapshot_meta().ok_or_else(|| {
            MetadataError::malformed("timestamp", "meta has no \"snapshot.json\" entry")
        })?;
        meta.validate("timestamp", SNAPSHOT_META)
    }
}

/// `snapshot.json`: the version of every targets metadata file (`targets.json`, `<role>.json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snapshot {
    #[serde(rename = "_type")]
    pub type_tag: SnapshotType,
    pub spec_version: String,
    pub version: u64,
    #[serde(with = "expiry")]
    pub expires: DateTime<Utc>,
    pub meta: BTreeMap<String, MetaFile>,
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl Snapshot {
    pub fn new(version: u64, expires: DateTime<Utc>) -> Self {
        Snapshot {
            type_tag: SnapshotType,
            spec_version: SPEC_VERSION.to_string(),
            version,
            expires,
            meta: BTreeMap::new(),
            unrecognized: BTreeMap::new(),
        }
    }

    /// The entry for a targets role (`targets` or a delegated role name).
    pub fn role_meta(&self, role: &str) -> Option<&MetaFile> {
        self.meta.get(&format!("{role}.json"))
    }
}

impl Role for Snapshot {
    const TYPE: &'static str = "snapshot";
    fn spec_version(&self) -> &str {
        &self.spec_version
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn expires(&self) -> DateTime<Utc> {
        self.expires
    }
    fn validate(&self) -> Result<(), MetadataError> {
        validate_common(self)?;
        for (name, meta) in &self.meta {
            meta.validate("snapshot", name)?;
        }
        Ok(())
    }
}

/// One target file: its length and hashes, and free-form `custom` data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetFile {
    pub length: u64,
    pub hashes: Hashes,
    /// `None` when absent; an explicit `"custom": null` is kept as `Some(Value::Null)`. Boxed:
    /// most targets have none, and a 100,000-target file holds one of these per target.
    pub custom: Option<Box<Value>>,
    /// Fields this version does not know, kept for a lossless round trip.
    pub unrecognized: BTreeMap<String, Value>,
}

impl TargetFile {
    /// Length and SHA-256 of `bytes`, no custom data.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        TargetFile {
            length: bytes.len() as u64,
            hashes: hashes::sha256_map(bytes),
            custom: None,
            unrecognized: BTreeMap::new(),
        }
    }

    /// Check `bytes` against the length and every hash (see [`hashes::verify_all`]).
    pub fn verify_bytes(&self, bytes: &[u8]) -> Result<(), HashError> {
        if self.length != bytes.len() as u64 {
            return Err(HashError::Length {
                expected: self.length,
                actual: bytes.len() as u64,
            });
        }
        hashes::verify_all(&self.hashes, bytes)
    }
}

/// `targets.json` or a delegated targets role.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Targets {
    #[serde(rename = "_type")]
    pub type_tag: TargetsType,
    pub spec_version: String,
    pub version: u64,
    #[serde(with = "expiry")]
    pub expires: DateTime<Utc>,
    pub targets: BTreeMap<String, TargetFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Delegations>,
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl Targets {
    pub fn new(version: u64, expires: DateTime<Utc>) -> Self {
        Targets {
            type_tag: TargetsType,
            spec_version: SPEC_VERSION.to_string(),
            version,
            expires,
            targets: BTreeMap::new(),
            delegations: None,
            unrecognized: BTreeMap::new(),
        }
    }
}

impl Role for Targets {
    const TYPE: &'static str = "targets";
    fn spec_version(&self) -> &str {
        &self.spec_version
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn expires(&self) -> DateTime<Utc> {
        self.expires
    }
    fn validate(&self) -> Result<(), MetadataError> {
        validate_common(self)?;
        for (path, target) in &self.targets {
            if target.hashes.is_empty() {
                return Err(MetadataError::malformed(
                    "targets",
                    format!("target {path:?} lists no hashes"),
                ));
            }
        }
        if let Some(d) = &self.delegations {
            d.validate()?;
        }
        Ok(())
    }
}

/// A known field's value, for [`serialize_sorted`].
enum Field<'a> {
    U64(u64),
    Hashes(&'a Hashes),
    Json(&'a Value),
}

impl Serialize for Field<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::U64(v) => s.serialize_u64(*v),
            Field::Hashes(h) => h.serialize(s),
            Field::Json(v) => v.serialize(s),
        }
    }
}

/// Write known fields (given sorted by name; `None` skipped) and unknown ones as one object
/// with sorted keys, so a canonical writer never has to reorder it. An unknown field that
/// shadows a known one is an error rather than a duplicate key.
fn serialize_sorted<S: serde::Serializer>(
    s: S,
    known: [(&'static str, Option<Field<'_>>); 3],
    unrecognized: &BTreeMap<String, Value>,
) -> Result<S::Ok, S::Error> {
    use serde::ser::{Error, SerializeMap};
    let mut map = s.serialize_map(None)?;
    let mut known = known
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .peekable();
    for (key, value) in unrecognized {
        while let Some((k, v)) = known.next_if(|(k, _)| *k <= key.as_str()) {
            if k == key {
                return Err(S::Error::custom(format!(
                    "unknown field {key:?} shadows a known one"
                )));
            }
            map.serialize_entry(k, &v)?;
        }
        map.serialize_entry(key, value)?;
    }
    for (k, v) in known {
        map.serialize_entry(k, &v)?;
    }
    map.end()
}

impl Serialize for TargetFile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let known = [
            ("custom", self.custom.as_deref().map(Field::Json)),
            ("hashes", Some(Field::Hashes(&self.hashes))),
            ("length", Some(Field::U64(self.length))),
        ];
        serialize_sorted(s, known, &self.unrecognized)
    }
}

impl Serialize for MetaFile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let known = [
            ("hashes", self.hashes.as_ref().map(Field::Hashes)),
            ("length", self.length.map(Field::U64)),
            ("version", Some(Field::U64(self.version))),
        ];
        serialize_sorted(s, known, &self.unrecognized)
    }
}

// Hand-written `Deserialize` for the two types that appear by the hundred thousand
// (`TargetFile` in targets, `MetaFile` in snapshots): serde's `flatten` would buffer every
// object into an intermediate tree before reading it, which tripled parse time on a 15 MB
// targets.json. These read each field once and put unknown ones in `unrecognized`.

impl<'de> Deserialize<'de> for TargetFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = TargetFile;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a target file object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TargetFile, A::Error> {
                let (mut length, mut hashes, mut custom) = (None, None, None::<Box<Value>>);
                let mut unrecognized = BTreeMap::new();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    match key.as_str() {
                        "length" => take_once(&mut length, "length", &mut map)?,
                        "hashes" => take_once(&mut hashes, "hashes", &mut map)?,
                        "custom" => take_once(&mut custom, "custom", &mut map)?,
                        _ => {
                            let value: Value = map.next_value()?;
                            unrecognized.insert(key.into_string(), value);
                        }
                    }
                }
                Ok(TargetFile {
                    length: required(length, "length")?,
                    hashes: required(hashes, "hashes")?,
                    custom,
                    unrecognized,
                })
            }
        }
        d.deserialize_map(Visit)
    }
}

impl<'de> Deserialize<'de> for MetaFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = MetaFile;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a metafile object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<MetaFile, A::Error> {
                let (mut version, mut length, mut hashes) = (None, None, None);
                let mut unrecognized = BTreeMap::new();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    match key.as_str() {
                        "version" => take_once(&mut version, "version", &mut map)?,
                        "length" => take_once(&mut length, "length", &mut map)?,
                        "hashes" => take_once(&mut hashes, "hashes", &mut map)?,
                        _ => {
                            let value: Value = map.next_value()?;
                            unrecognized.insert(key.into_string(), value);
                        }
                    }
                }
                Ok(MetaFile {
                    version: required(version, "version")?,
                    length,
                    hashes,
                    unrecognized,
                })
            }
        }
        d.deserialize_map(Visit)
    }
}

// Snapshot and Targets can be megabytes: read them without serde's `flatten` buffering too.

impl<'de> Deserialize<'de> for Snapshot {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Snapshot;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("snapshot metadata")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Snapshot, A::Error> {
                let (mut type_tag, mut spec_version, mut version, mut expires, mut meta) =
                    (None, None, None, None::<expiry::Expiry>, None);
                let mut unrecognized = BTreeMap::new();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    match key.as_str() {
                        "_type" => take_once(&mut type_tag, "_type", &mut map)?,
                        "spec_version" => take_once(&mut spec_version, "spec_version", &mut map)?,
                        "version" => take_once(&mut version, "version", &mut map)?,
                        "expires" => take_once(&mut expires, "expires", &mut map)?,
                        "meta" => take_once(&mut meta, "meta", &mut map)?,
                        _ => {
                            let value: Value = map.next_value()?;
                            unrecognized.insert(key.into_string(), value);
                        }
                    }
                }
                Ok(Snapshot {
                    type_tag: required(type_tag, "_type")?,
                    spec_version: required(spec_version, "spec_version")?,
                    version: required(version, "version")?,
                    expires: required(expires, "expires")?.0,
                    meta: required(meta, "meta")?,
                    unrecognized,
                })
            }
        }
        d.deserialize_map(Visit)
    }
}

/// `targets` read into a list and built as a map in one pass: canonical files list the paths
/// in order, and a bulk build skips the search and node splits of 100,000 single inserts.
struct TargetMap(BTreeMap<String, TargetFile>);

impl<'de> Deserialize<'de> for TargetMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = TargetMap;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of target path to target file")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TargetMap, A::Error> {
                let mut entries = Vec::new();
                while let Some((path, file)) = map.next_entry::<Key<'de>, TargetFile>()? {
                    entries.push((path.into_string(), file));
                }
                Ok(TargetMap(entries.into_iter().collect()))
            }
        }
        d.deserialize_map(Visit)
    }
}

impl<'de> Deserialize<'de> for Targets {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Targets;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("targets metadata")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Targets, A::Error> {
                let (mut type_tag, mut spec_version, mut version, mut expires, mut targets) =
                    (None, None, None, None::<expiry::Expiry>, None);
                let mut delegations: Option<Delegations> = None;
                let mut unrecognized = BTreeMap::new();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    match key.as_str() {
                        "_type" => take_once(&mut type_tag, "_type", &mut map)?,
                        "spec_version" => take_once(&mut spec_version, "spec_version", &mut map)?,
                        "version" => take_once(&mut version, "version", &mut map)?,
                        "expires" => take_once(&mut expires, "expires", &mut map)?,
                        "targets" => take_once(&mut targets, "targets", &mut map)?,
                        "delegations" => take_once(&mut delegations, "delegations", &mut map)?,
                        _ => {
                            let value: Value = map.next_value()?;
                            unrecognized.insert(key.into_string(), value);
                        }
                    }
                }
                Ok(Targets {
                    type_tag: required(type_tag, "_type")?,
                    spec_version: required(spec_version, "spec_version")?,
                    version: required(version, "version")?,
                    expires: required(expires, "expires")?.0,
                    targets: required::<TargetMap, _>(targets, "targets")?.0,
                    delegations,
                    unrecognized,
                })
            }
        }
        d.deserialize_map(Visit)
    }
}
