//! Delta updates, without I/O: the `delta` field of a target's custom metadata, and the
//! decisions a client takes with it (which patch to try, what to do when it fails).
//!
//! A publisher lists, in the new target's signed custom metadata, patches that turn an earlier
//! version into this one. Each entry carries the patch's own length and hashes (so a patch is
//! checked like any target before it is used) and the length and hashes of the base it applies
//! to (so the client proves its local old file is that base before trusting the result of the
//! patch to be worth checking). The result is still checked against the target's own length
//! and hashes: a patch can waste time, never put other bytes in place.
//!
//! ```json
//! "custom": { "delta": { "version": 1, "patches": [ {
//!     "format": "bsdiff4",
//!     "path": "app/app.bin.delta/<base sha256>.bsdiff",
//!     "length": 1234, "hashes": { "sha256": "…" },
//!     "base": { "length": 104857600, "hashes": { "sha256": "…" } } } ] } }
//! ```
//!
//! `path` is where the patch is published, like a target path (hash-prefixed under consistent
//! snapshots). A client that does not know `version`, or finds the field malformed, ignores
//! the field and downloads the full target.
//!
//! ```text
//! let patches = delta::patches(info.custom.as_ref())?;
//! for (patch, local) in delta::candidates(&patches, target_len, &local_lengths, &policy) {
//!     if local file `local` has the base's hashes { download patch, apply, verify; done }
//! }
//! match delta::after_failure(&policy, planned) { Fallback::Full => …, Fallback::Stop => … }
//! ```

use serde_json::{Map, Value};

/// The version of the `delta` field this code writes and reads.
pub const DELTA_FIELD_VERSION: u64 = 1;

/// bsdiff 4.x (the BSDIFF40 header, bzip2-compressed control, diff and extra blocks), as made
/// by qbsdiff and the classic `bsdiff` tool.
pub const FORMAT_BSDIFF4: &str = "bsdiff4";

/// Length and hashes of a file (a patch, or the base a patch applies to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRef {
    pub length: u64,
    pub hashes: crate::tuf::Hashes,
}

/// One patch listed for a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patch {
    /// Patch format, e.g. [`FORMAT_BSDIFF4`].
    pub format: String,
    /// Where the patch is published, a target-style path.
    pub path: String,
    /// The patch file itself.
    pub file: FileRef,
    /// The earlier version the patch applies to.
    pub base: FileRef,
}

/// Why a target's `delta` field cannot be used (the client then downloads the full target).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeltaFieldError {
    #[error("custom.delta is not an object")]
    NotObject,
    #[error(
        "custom.delta version {0} is not version {DELTA_FIELD_VERSION}, the one this client reads"
    )]
    Version(String),
    #[error("custom.delta.patches[{index}]: {reason}")]
    Patch { index: usize, reason: String },
}

/// The patches listed in a target's custom metadata: empty when there is no `delta` field.
pub fn patches(custom: Option<&Value>) -> Result<Vec<Patch>, DeltaFieldError> {
    let Some(delta) = custom.and_then(|c| c.get("delta")) else {
        return Ok(Vec::new());
    };
    let obj = delta.as_object().ok_or(DeltaFieldError::NotObject)?;
    match obj.get("version") {
        Some(v) if v.as_u64() == Some(DELTA_FIELD_VERSION) => {}
        Some(v) => return Err(DeltaFieldError::Version(v.to_string())),
        None => return Err(DeltaFieldError::Version("(missing)".into())),
    }
    let list = match obj.get("patches") {
        None => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(DeltaFieldError::Patch {
                index: 0,
                reason: "patches is not an array".into(),
            });
        }
    };
    list.iter()
        .enumerate()
        .map(|(index, p)| parse_patch(p).map_err(|reason| DeltaFieldError::Patch { index, reason }))
        .collect()
}

fn parse_patch(v: &Value) -> Result<Patch, String> {
    let str_field = |name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{name} is missing or not a string"))
    };
    let format = str_field("format")?;
    let path = str_field("path")?;
    let file = parse_file_ref(v).map_err(|e| format!("patch {e}"))?;
    let base = v
        .get("base")
        .ok_or_else(|| "base is missing".to_string())
        .and_then(|b| parse_file_ref(b).map_err(|e| format!("base {e}")))?;
    Ok(Patch {
        format,
        path,
        file,
        base,
    })
}

fn parse_file_ref(v: &Value) -> Result<FileRef, String> {
    let length = v
        .get("length")
        .and_then(Value::as_u64)
        .ok_or_else(|| "length is missing or not a whole number".to_string())?;
    let hashes: crate::tuf::Hashes = v
        .get("hashes")
        .and_then(Value::as_object)
        .ok_or_else(|| "hashes is missing or not an object".to_string())?
        .iter()
        .map(|(k, h)| {
            h.as_str()
                .map(|h| (k.clone(), h.to_string()))
                .ok_or_else(|| format!("hash {k} is not a string"))
        })
        .collect::<Result<_, _>>()?;
    if hashes.is_empty() {
        return Err("lists no hash".into());
    }
    Ok(FileRef { length, hashes })
}

fn file_ref_value(f: &FileRef) -> Value {
    let hashes: Map<String, Value> = f
        .hashes
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut m = Map::new();
    m.insert("length".into(), Value::from(f.length));
    m.insert("hashes".into(), Value::Object(hashes));
    Value::Object(m)
}

/// The `delta` field for `patches` (to be put under `custom.delta`).
pub fn field_value(patches: &[Patch]) -> Value {
    let list: Vec<Value> = patches
        .iter()
        .map(|p| {
            let mut m = match file_ref_value(&p.file) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            m.insert("format".into(), Value::String(p.format.clone()));
            m.insert("path".into(), Value::String(p.path.clone()));
            m.insert("base".into(), file_ref_value(&p.base));
            Value::Object(m)
        })
        .collect();
    let mut m = Map::new();
    m.insert("version".into(), Value::from(DELTA_FIELD_VERSION));
    m.insert("patches".into(), Value::Array(list));
    Value::Object(m)
}

/// Where the patch of `target` from the base with SHA-256 `base_sha256` is published: in a
/// directory named after the target, one file per base, so patches of different targets or
/// bases never share a name.
pub fn patch_path(target: &str, base_sha256: &str) -> String {
    format!("{target}.delta/{base_sha256}.bsdiff")
}

/// What the client allows itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Try patches at all.
    pub enabled: bool,
    /// Metered: when a planned delta fails, stop and report instead of moving the full target.
    pub metered: bool,
    /// Most memory the patcher may use: the base and the patch are held in memory (the output
    /// is streamed to disk), so a patch is tried only when `base + patch <= max_memory`.
    pub max_memory: u64,
}

/// 512 MiB: patches for targets of a few hundred MiB on a small machine.
pub const DEFAULT_MAX_MEMORY: u64 = 512 * 1024 * 1024;

impl Default for Policy {
    fn default() -> Self {
        Policy {
            enabled: true,
            metered: false,
            max_memory: DEFAULT_MAX_MEMORY,
        }
    }
}

/// The (patch, local file) pairs worth trying, best first: the local file's length is the
/// base's, the format is known, the patch is smaller than the target (else the full download
/// costs less) and base plus patch fit the memory cap. Smaller patches first, then the order
/// of `local` (the caller's preference). The caller still proves the local file's hashes
/// before it downloads the patch.
pub fn candidates(
    patches: &[Patch],
    target_length: u64,
    local_lengths: &[u64],
    policy: &Policy,
) -> Vec<(usize, usize)> {
    if !policy.enabled {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (pi, p) in patches.iter().enumerate() {
        if p.format != FORMAT_BSDIFF4
            || p.file.length >= target_length
            || p.base.length.saturating_add(p.file.length) > policy.max_memory
        {
            continue;
        }
        for (li, len) in local_lengths.iter().enumerate() {
            if *len == p.base.length {
                out.push((pi, li));
            }
        }
    }
    out.sort_by_key(|&(pi, li)| (patches.get(pi).map_or(u64::MAX, |p| p.file.length), li));
    out
}

/// What to do once a planned delta did not deliver the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// Download the full target.
    Full,
    /// Metered: stop, change nothing, and report.
    Stop,
}

/// After a planned delta failed (patch on no mirror, wrong patch bytes, wrong result): a
/// metered client stops rather than silently moving the full size; any other falls back.
/// A client for which no patch was planned (none listed, none matching a local file) was
/// never going to save anything and downloads the full target without asking.
pub fn after_failure(policy: &Policy) -> Fallback {
    if policy.metered {
        Fallback::Stop
    } else {
        Fallback::Full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fref(len: u64, h: &str) -> FileRef {
        FileRef {
            length: len,
            hashes: crate::tuf::Hashes::from([("sha256".to_string(), h.to_string())]),
        }
    }

    fn patch(len: u64, base_len: u64, base: &str) -> Patch {
        Patch {
            format: FORMAT_BSDIFF4.into(),
            path: patch_path("app.bin", base),
            file: fref(len, "aa"),
            base: fref(base_len, base),
        }
    }

    #[test]
    fn field_round_trips() {
        let list = vec![patch(10, 100, "b1"), patch(20, 90, "b2")];
        let custom = serde_json::json!({ "version": "1.2", "delta": field_value(&list) });
        assert_eq!(patches(Some(&custom)).unwrap(), list);
        assert_eq!(patches(None).unwrap(), vec![]);
        assert_eq!(
            patches(Some(&serde_json::json!({"version": "1"}))).unwrap(),
            vec![]
        );
    }

    #[test]
    fn unknown_version_and_malformed_entries_are_refused() {
        let mut v = field_value(&[patch(10, 100, "b1")]);
        v["version"] = Value::from(2);
        let err = patches(Some(&serde_json::json!({ "delta": v }))).unwrap_err();
        assert_eq!(err, DeltaFieldError::Version("2".into()));
        let mut v = field_value(&[patch(10, 100, "b1")]);
        v["patches"][0]["base"]["hashes"] = serde_json::json!({});
        let err = patches(Some(&serde_json::json!({ "delta": v }))).unwrap_err();
        assert!(
            err.to_string().contains("patches[0]: base lists no hash"),
            "{err}"
        );
        let mut v = field_value(&[patch(10, 100, "b1")]);
        v["patches"][0]["length"] = Value::from(-1);
        assert!(patches(Some(&serde_json::json!({ "delta": v }))).is_err());
    }

    #[test]
    fn candidates_match_length_skip_useless_and_oversized_and_prefer_small() {
        let list = vec![
            patch(50, 100, "b1"),   // matches local 0
            patch(10, 100, "b2"),   // same length: smaller patch first
            patch(5, 77, "b3"),     // no local file of that length
            patch(1000, 100, "b4"), // not smaller than the target
            Patch {
                format: "vcdiff".into(),
                ..patch(1, 100, "b5")
            },
        ];
        let p = Policy::default();
        assert_eq!(candidates(&list, 1000, &[100, 3], &p), vec![(1, 0), (0, 0)]);
        let small = Policy {
            max_memory: 140,
            ..Policy::default()
        };
        assert_eq!(candidates(&list, 1000, &[100], &small), vec![(1, 0)]);
        let off = Policy {
            enabled: false,
            ..Policy::default()
        };
        assert!(candidates(&list, 1000, &[100], &off).is_empty());
    }

    #[test]
    fn metered_stops_others_fall_back() {
        assert_eq!(after_failure(&Policy::default()), Fallback::Full);
        let metered = Policy {
            metered: true,
            ..Policy::default()
        };
        assert_eq!(after_failure(&metered), Fallback::Stop);
    }
}
