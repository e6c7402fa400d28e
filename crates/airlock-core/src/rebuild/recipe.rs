//! Where a target comes from and how to build it again: the `rebuild` member of a target's
//! custom metadata (docs/rebuild.md). Signed with the release, so a rebuilder trusts it exactly
//! as far as it trusts the targets role that lists the file.
//!
//! ```json
//! "custom": {
//!   "rebuild": {
//!     "version": 1,
//!     "source": { "type": "git", "url": "https://example.org/app.git",
//!                 "commit": "0123456789abcdef0123456789abcdef01234567" },
//!     "recipe": {
//!       "command": "make app",
//!       "builder": { "type": "toolchain", "name": "debian-13" },
//!       "env": { "SOURCE_DATE_EPOCH": "1700000000" },
//!       "artifact": "out/app"
//!     }
//!   }
//! }
//! ```
//!
//! Reading is strict: an unknown member, a missing one or a malformed value is refused with the
//! member's path, because a rebuilder that guessed at a recipe would attest to something the
//! vendor never said. A later layout gets a new `version`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The member of a target's `custom` that holds [`RebuildInfo`].
pub const CUSTOM_FIELD: &str = "rebuild";
/// The layout version this code reads and writes.
pub const RECIPE_VERSION: u64 = 1;
/// Longest URL accepted (source and tarball).
pub const MAX_URL_LEN: usize = 2048;
/// Longest build command accepted, in bytes.
pub const MAX_COMMAND_LEN: usize = 64 * 1024;
/// Most environment variables a recipe may set.
pub const MAX_ENV: usize = 256;
/// Longest environment value, in bytes.
pub const MAX_ENV_VALUE_LEN: usize = 4096;
/// Longest artifact path, in bytes.
pub const MAX_ARTIFACT_LEN: usize = 1024;

/// Variables the sandbox sets itself, so that every rebuild sees the same values; a recipe that
/// sets them would make two rebuilders disagree about what "the same environment" is.
pub const RESERVED_ENV: &[&str] = &["HOME", "PATH", "PWD", "TMPDIR", "TZ", "LANG", "LC_ALL"];

/// Why a `rebuild` member was refused: the member's path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("custom.{CUSTOM_FIELD}{field}: {reason}")]
pub struct RecipeError {
    /// The member's path below `custom.rebuild`, e.g. `.source.commit` (empty for the object).
    pub field: String,
    pub reason: String,
}

fn err(field: &str, reason: impl Into<String>) -> RecipeError {
    RecipeError {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// Where the source is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceRef {
    /// A git repository and the commit to check out (40 hex digits for SHA-1 repositories, 64
    /// for SHA-256 ones). The commit id pins the content, so any transport will do.
    Git { url: String, commit: String },
    /// A source archive over HTTPS and its SHA-256.
    Tarball { url: String, sha256: String },
}

/// The environment the build runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builder {
    /// A toolchain named by the vendor (e.g. `debian-13`): the rebuilder provides it.
    Toolchain(String),
    /// An OCI image pinned by digest, `NAME@sha256:HEX`.
    Oci(String),
}

/// How to build the artifact from the source tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// Run with `/bin/sh -c` in the source tree's root.
    pub command: String,
    pub builder: Builder,
    /// Extra environment variables (e.g. `SOURCE_DATE_EPOCH`); never one of [`RESERVED_ENV`].
    pub env: BTreeMap<String, String>,
    /// The file the build produces, relative to the source tree's root.
    pub artifact: String,
}

/// A target's source and recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildInfo {
    pub source: SourceRef,
    pub recipe: Recipe,
}

impl RebuildInfo {
    /// The rebuild information a target's `custom` carries, `None` when it has none. A present
    /// but malformed member is an error, never `None`.
    pub fn from_custom(custom: Option<&Value>) -> Result<Option<Self>, RecipeError> {
        match custom
            .and_then(Value::as_object)
            .and_then(|c| c.get(CUSTOM_FIELD))
        {
            None => Ok(None),
            Some(v) => Self::from_value(v).map(Some),
        }
    }

    /// Parse the member's JSON value.
    pub fn from_value(value: &Value) -> Result<Self, RecipeError> {
        let obj = object(value, "", &["version", "source", "recipe"])?;
        match obj.get("version") {
            Some(v) if v.as_u64() == Some(RECIPE_VERSION) => {}
            Some(v) if v.as_u64().is_some() => {
                return Err(err(
                    ".version",
                    format!("{v} is not supported (this version reads {RECIPE_VERSION})"),
                ));
            }
            _ => return Err(err(".version", "must be a number")),
        }
        Self::from_parts(required(obj, "", "source")?, required(obj, "", "recipe")?)
    }

    /// The `source` and `recipe` objects (as [`RebuildInfo::to_value`] writes them; an
    /// attestation's predicate carries the same two), parsed strictly and checked.
    pub fn from_parts(source: &Value, recipe: &Value) -> Result<Self, RecipeError> {
        let source = match string(object_any(source, ".source")?, ".source", "type")? {
            "git" => {
                let s = object(source, ".source", &["type", "url", "commit"])?;
                SourceRef::Git {
                    url: string(s, ".source", "url")?.to_string(),
                    commit: string(s, ".source", "commit")?.to_string(),
                }
            }
            "tarball" => {
                let s = object(source, ".source", &["type", "url", "sha256"])?;
                SourceRef::Tarball {
                    url: string(s, ".source", "url")?.to_string(),
                    sha256: string(s, ".source", "sha256")?.to_string(),
                }
            }
            other => {
                return Err(err(
                    ".source.type",
                    format!("{other:?} is not a source type (git or tarball)"),
                ));
            }
        };
        let recipe = object(
            recipe,
            ".recipe",
            &["command", "builder", "env", "artifact"],
        )?;
        let builder = required(recipe, ".recipe", "builder")?;
        let builder = match string(
            object_any(builder, ".recipe.builder")?,
            ".recipe.builder",
            "type",
        )? {
            "toolchain" => Builder::Toolchain(
                string(
                    object(builder, ".recipe.builder", &["type", "name"])?,
                    ".recipe.builder",
                    "name",
                )?
                .to_string(),
            ),
            "oci" => Builder::Oci(
                string(
                    object(builder, ".recipe.builder", &["type", "image"])?,
                    ".recipe.builder",
                    "image",
                )?
                .to_string(),
            ),
            other => {
                return Err(err(
                    ".recipe.builder.type",
                    format!("{other:?} is not a builder type (toolchain or oci)"),
                ));
            }
        };
        let mut env = BTreeMap::new();
        if let Some(e) = recipe.get("env") {
            let e = e
                .as_object()
                .ok_or_else(|| err(".recipe.env", "must be an object of strings"))?;
            for (k, v) in e {
                let v = v
                    .as_str()
                    .ok_or_else(|| err(&format!(".recipe.env.{k}"), "must be a string"))?;
                env.insert(k.clone(), v.to_string());
            }
        }
        let info = RebuildInfo {
            source,
            recipe: Recipe {
                command: string(recipe, ".recipe", "command")?.to_string(),
                builder,
                env,
                artifact: string(recipe, ".recipe", "artifact")?.to_string(),
            },
        };
        info.validate()?;
        Ok(info)
    }

    /// Check every value (what [`RebuildInfo::from_value`] checks after parsing; a publisher
    /// calls it before signing).
    pub fn validate(&self) -> Result<(), RecipeError> {
        match &self.source {
            SourceRef::Git { url, commit } => {
                check_url(
                    ".source.url",
                    url,
                    &["https://", "http://", "ssh://", "git://", "file://"],
                )?;
                if !(commit.len() == 40 || commit.len() == 64) || !is_lower_hex(commit) {
                    return Err(err(
                        ".source.commit",
                        "must be a full commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits",
                    ));
                }
            }
            SourceRef::Tarball { url, sha256 } => {
                check_url(".source.url", url, &["https://"])?;
                if sha256.len() != 64 || !is_lower_hex(sha256) {
                    return Err(err(".source.sha256", "must be 64 lowercase hex digits"));
                }
            }
        }
        let r = &self.recipe;
        if r.command.trim().is_empty() || r.command.len() > MAX_COMMAND_LEN {
            return Err(err(
                ".recipe.command",
                format!("must be 1 to {MAX_COMMAND_LEN} bytes, not blank"),
            ));
        }
        if r.command.contains('\0') {
            return Err(err(".recipe.command", "contains a NUL byte"));
        }
        match &r.builder {
            Builder::Toolchain(name) => {
                if name.is_empty()
                    || name.len() > 128
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._+-:/".contains(&b))
                {
                    return Err(err(
                        ".recipe.builder.name",
                        "must be 1 to 128 characters of A-Z a-z 0-9 . _ + - : /",
                    ));
                }
            }
            Builder::Oci(image) => {
                let ok = image.len() <= 512
                    && image.bytes().all(|b| b.is_ascii_graphic())
                    && image.rsplit_once("@sha256:").is_some_and(|(name, digest)| {
                        !name.is_empty() && digest.len() == 64 && is_lower_hex(digest)
                    });
                if !ok {
                    return Err(err(
                        ".recipe.builder.image",
                        "must be an image pinned by digest: NAME@sha256:<64 lowercase hex digits>",
                    ));
                }
            }
        }
        if r.env.len() > MAX_ENV {
            return Err(err(".recipe.env", format!("more than {MAX_ENV} variables")));
        }
        for (k, v) in &r.env {
            let name_ok = k.len() <= 128
                && k.bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !name_ok {
                return Err(err(
                    &format!(".recipe.env.{k}"),
                    "is not a variable name (A-Z a-z 0-9 _, not starting with a digit, at most 128)",
                ));
            }
            if RESERVED_ENV.contains(&k.as_str()) {
                return Err(err(
                    &format!(".recipe.env.{k}"),
                    "is set by the sandbox itself and may not be given",
                ));
            }
            if v.contains('\0') || v.len() > MAX_ENV_VALUE_LEN {
                return Err(err(
                    &format!(".recipe.env.{k}"),
                    format!("value must be at most {MAX_ENV_VALUE_LEN} bytes without NUL"),
                ));
            }
            if k == "SOURCE_DATE_EPOCH"
                && (v.is_empty()
                    || !v.bytes().all(|b| b.is_ascii_digit())
                    || (v.len() > 1 && v.starts_with('0'))
                    || v.parse::<u64>().is_err())
            {
                return Err(err(
                    ".recipe.env.SOURCE_DATE_EPOCH",
                    "must be a decimal number of seconds without leading zeros",
                ));
            }
        }
        check_relative_path(".recipe.artifact", &r.artifact)?;
        Ok(())
    }

    /// `SOURCE_DATE_EPOCH` from the recipe's environment, if set.
    pub fn source_date_epoch(&self) -> Option<u64> {
        self.recipe
            .env
            .get("SOURCE_DATE_EPOCH")
            .and_then(|v| v.parse().ok())
    }

    /// The member's JSON value, to store in a target's `custom` under [`CUSTOM_FIELD`].
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("version".into(), Value::from(RECIPE_VERSION));
        obj.insert("source".into(), self.source_value());
        obj.insert("recipe".into(), self.recipe_value());
        Value::Object(obj)
    }

    /// The `source` object.
    pub fn source_value(&self) -> Value {
        let mut source = Map::new();
        match &self.source {
            SourceRef::Git { url, commit } => {
                source.insert("type".into(), "git".into());
                source.insert("url".into(), url.as_str().into());
                source.insert("commit".into(), commit.as_str().into());
            }
            SourceRef::Tarball { url, sha256 } => {
                source.insert("type".into(), "tarball".into());
                source.insert("url".into(), url.as_str().into());
                source.insert("sha256".into(), sha256.as_str().into());
            }
        }
        Value::Object(source)
    }

    /// The `recipe` object.
    pub fn recipe_value(&self) -> Value {
        let mut builder = Map::new();
        match &self.recipe.builder {
            Builder::Toolchain(name) => {
                builder.insert("type".into(), "toolchain".into());
                builder.insert("name".into(), name.as_str().into());
            }
            Builder::Oci(image) => {
                builder.insert("type".into(), "oci".into());
                builder.insert("image".into(), image.as_str().into());
            }
        }
        let env: Map<String, Value> = self
            .recipe
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        let mut recipe = Map::new();
        recipe.insert("command".into(), self.recipe.command.as_str().into());
        recipe.insert("builder".into(), Value::Object(builder));
        recipe.insert("env".into(), Value::Object(env));
        recipe.insert("artifact".into(), self.recipe.artifact.as_str().into());
        Value::Object(recipe)
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn check_url(field: &str, url: &str, schemes: &[&str]) -> Result<(), RecipeError> {
    if url.is_empty() || url.len() > MAX_URL_LEN || !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(err(
            field,
            format!("must be 1 to {MAX_URL_LEN} printable ASCII characters without spaces"),
        ));
    }
    let lower = url.to_ascii_lowercase();
    match schemes.iter().find(|s| lower.starts_with(**s)) {
        Some(s) if url.len() > s.len() => Ok(()),
        _ => Err(err(
            field,
            format!("{url:?} must start with one of {}", schemes.join(" ")),
        )),
    }
}

/// A path inside the build tree: relative, `/`-separated, no empty, `.` or `..` segment, no
/// backslash or control character (it must not name a file outside the tree).
pub fn check_relative_path(field: &str, path: &str) -> Result<(), RecipeError> {
    if path.is_empty() || path.len() > MAX_ARTIFACT_LEN {
        return Err(err(field, format!("must be 1 to {MAX_ARTIFACT_LEN} bytes")));
    }
    if path.chars().any(char::is_control) || path.contains('\\') {
        return Err(err(field, "contains a control character or a backslash"));
    }
    if path.starts_with('/') {
        return Err(err(field, "must be relative to the source tree"));
    }
    if path
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(err(field, "has an empty, '.' or '..' segment"));
    }
    Ok(())
}

fn object_any<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>, RecipeError> {
    v.as_object()
        .ok_or_else(|| err(field, "must be a JSON object"))
}

/// `v` as an object with only the `allowed` members.
fn object<'a>(
    v: &'a Value,
    field: &str,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, RecipeError> {
    let obj = object_any(v, field)?;
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(err(&format!("{field}.{k}"), "unknown member"));
    }
    Ok(obj)
}

fn required<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    key: &str,
) -> Result<&'a Value, RecipeError> {
    obj.get(key)
        .ok_or_else(|| err(&format!("{field}.{key}"), "is missing"))
}

fn string<'a>(obj: &'a Map<String, Value>, field: &str, key: &str) -> Result<&'a str, RecipeError> {
    required(obj, field, key)?
        .as_str()
        .ok_or_else(|| err(&format!("{field}.{key}"), "must be a string"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({
            "version": 1,
            "source": {"type": "git", "url": "https://example.org/app.git",
                       "commit": "0123456789abcdef0123456789abcdef01234567"},
            "recipe": {
                "command": "make app",
                "builder": {"type": "toolchain", "name": "debian-13"},
                "env": {"SOURCE_DATE_EPOCH": "1700000000"},
                "artifact": "out/app"
            }
        })
    }

    #[test]
    fn round_trip() {
        let info = RebuildInfo::from_value(&good()).unwrap();
        assert_eq!(info.source_date_epoch(), Some(1_700_000_000));
        assert_eq!(info.to_value(), good());
        let tar = json!({
            "version": 1,
            "source": {"type": "tarball", "url": "https://example.org/app-1.tar.gz",
                       "sha256": "a".repeat(64)},
            "recipe": {"command": "sh build.sh",
                       "builder": {"type": "oci", "image": format!("docker.io/library/debian@sha256:{}", "b".repeat(64))},
                       "env": {}, "artifact": "app"}
        });
        let info = RebuildInfo::from_value(&tar).unwrap();
        assert_eq!(info.to_value(), tar);
        assert_eq!(info.source_date_epoch(), None);
    }

    #[test]
    fn absent_member_is_none_present_bad_member_is_an_error() {
        assert_eq!(RebuildInfo::from_custom(None).unwrap(), None);
        assert_eq!(
            RebuildInfo::from_custom(Some(&json!({"version": "1.0"}))).unwrap(),
            None
        );
        let e = RebuildInfo::from_custom(Some(&json!({"rebuild": {}}))).unwrap_err();
        assert_eq!(e.field, ".version");
    }

    /// Each bad value is refused with the path of the member at fault.
    #[test]
    fn every_bad_field_is_named() {
        type Edit = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Edit)> = vec![
            (".version", Box::new(|v| v["version"] = json!(2))),
            (".version", Box::new(|v| v["version"] = json!("1"))),
            (".extra", Box::new(|v| v["extra"] = json!(1))),
            (
                ".source",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("source");
                }),
            ),
            (
                ".source.type",
                Box::new(|v| v["source"]["type"] = json!("svn")),
            ),
            (
                ".source.url",
                Box::new(|v| v["source"]["url"] = json!("ftp://x/y")),
            ),
            (
                ".source.url",
                Box::new(|v| v["source"]["url"] = json!("https://a b")),
            ),
            (
                ".source.commit",
                Box::new(|v| v["source"]["commit"] = json!("v1.2.0")),
            ),
            (
                ".source.commit",
                Box::new(|v| {
                    v["source"]["commit"] = json!("0123456789ABCDEF0123456789abcdef01234567")
                }),
            ),
            (
                ".source.sha256",
                Box::new(|v| v["source"]["sha256"] = json!("ab")),
            ),
            (".recipe", Box::new(|v| v["recipe"] = json!([]))),
            (
                ".recipe.command",
                Box::new(|v| v["recipe"]["command"] = json!("  ")),
            ),
            (
                ".recipe.command",
                Box::new(|v| v["recipe"]["command"] = json!(["make"])),
            ),
            (
                ".recipe.builder.type",
                Box::new(|v| v["recipe"]["builder"]["type"] = json!("vm")),
            ),
            (
                ".recipe.builder.name",
                Box::new(|v| v["recipe"]["builder"]["name"] = json!("a b")),
            ),
            (
                ".recipe.builder.image",
                Box::new(|v| v["recipe"]["builder"] = json!({"type": "oci", "image": "debian:13"})),
            ),
            (
                ".recipe.builder.extra",
                Box::new(|v| v["recipe"]["builder"]["extra"] = json!(1)),
            ),
            (
                ".recipe.env",
                Box::new(|v| v["recipe"]["env"] = json!(["A=1"])),
            ),
            (
                ".recipe.env.1A",
                Box::new(|v| v["recipe"]["env"]["1A"] = json!("x")),
            ),
            (
                ".recipe.env.HOME",
                Box::new(|v| v["recipe"]["env"]["HOME"] = json!("/root")),
            ),
            (
                ".recipe.env.X",
                Box::new(|v| v["recipe"]["env"]["X"] = json!(1)),
            ),
            (
                ".recipe.env.SOURCE_DATE_EPOCH",
                Box::new(|v| v["recipe"]["env"]["SOURCE_DATE_EPOCH"] = json!("yesterday")),
            ),
            (
                ".recipe.env.SOURCE_DATE_EPOCH",
                Box::new(|v| v["recipe"]["env"]["SOURCE_DATE_EPOCH"] = json!("0170")),
            ),
            (
                ".recipe.artifact",
                Box::new(|v| v["recipe"]["artifact"] = json!("../etc/passwd")),
            ),
            (
                ".recipe.artifact",
                Box::new(|v| v["recipe"]["artifact"] = json!("/bin/sh")),
            ),
            (
                ".recipe.artifact",
                Box::new(|v| {
                    v["recipe"].as_object_mut().unwrap().remove("artifact");
                }),
            ),
        ];
        for (field, edit) in cases {
            let mut v = good();
            edit(&mut v);
            let e = RebuildInfo::from_value(&v).unwrap_err();
            assert_eq!(e.field, field, "{v}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("custom.rebuild{field}: ")),
                "{e}"
            );
        }
    }
}
