//! Delegations from a targets role: which role may sign for which target paths.
//!
//! Three ways to say which paths a role covers, all as python-tuf reads them:
//! - `paths`: glob patterns matched segment by segment (split on `/`, same number of segments),
//!   each segment with `fnmatch` rules: `*` any run of characters, `?` one character, `[seq]`,
//!   `[!seq]`; since segments never contain `/`, neither `*` nor `?` can match one;
//! - `path_hash_prefixes`: the hex SHA-256 of the target path starts with one of the prefixes;
//! - TAP 15 `succinct_roles`: `2^bit_length` bins, a path goes to the bin numbered by the top
//!   `bit_length` bits of its SHA-256; bin names are `{name_prefix}-{index}` in lowercase hex,
//!   zero-padded to the width of the largest index.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::metadata::{MetadataError, non_empty, present};
use super::roles::TOP_LEVEL_ROLES;
use super::verify::Authority;
use crate::crypto::{PqPairings, PublicKey};

/// Why role names that differ only in case are refused.
pub(crate) const CASE_COLLISION: &str = "both would be one file on a case-insensitive file system";

/// A role name with case differences erased: two names with the same fold would share one
/// `<role>.json` on a case-insensitive file system (Windows, macOS by default). Upper- then
/// lower-casing also folds what those file systems fold beyond ASCII (`É`/`é`, `ß`/`SS`); it
/// may fold a little more than a given file system does, which only refuses more.
pub fn fold_case(name: &str) -> String {
    name.to_uppercase().to_lowercase()
}

/// `delegations` in a targets role: keys, and either a list of roles or succinct hash bins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delegations {
    pub keys: BTreeMap<String, PublicKey>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub roles: Option<Vec<DelegatedRole>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub succinct_roles: Option<SuccinctRoles>,
    /// `x-airlock-pq`: post-quantum keys paired with some of `keys` (docs/keys.md), as in root.
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

/// One delegated role in `delegations.roles`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegatedRole {
    pub name: String,
    pub keyids: Vec<String>,
    pub threshold: u64,
    /// Required, as in the specification and python-tuf.
    pub terminating: bool,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub paths: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub path_hash_prefixes: Option<Vec<String>>,
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// TAP 15 succinct hash-bin delegation: `2^bit_length` roles sharing one key set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuccinctRoles {
    pub keyids: Vec<String>,
    pub threshold: u64,
    pub bit_length: u32,
    pub name_prefix: String,
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// A child role that may hold a target, in delegation order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildRole {
    pub name: String,
    /// A terminating delegation ends the search when the child does not have the target.
    pub terminating: bool,
}

impl Delegations {
    /// Delegations by a list of roles.
    pub fn with_roles(keys: BTreeMap<String, PublicKey>, roles: Vec<DelegatedRole>) -> Self {
        Delegations {
            keys,
            roles: Some(roles),
            succinct_roles: None,
            pq: BTreeMap::new(),
            unrecognized: BTreeMap::new(),
        }
    }

    /// Delegations to succinct hash bins.
    pub fn with_succinct_roles(keys: BTreeMap<String, PublicKey>, bins: SuccinctRoles) -> Self {
        Delegations {
            keys,
            roles: None,
            succinct_roles: Some(bins),
            pq: BTreeMap::new(),
            unrecognized: BTreeMap::new(),
        }
    }

    /// Keys and threshold this delegator gives `role`, if it delegates to it at all.
    pub fn authority(&self, role: &str) -> Option<Authority<'_>> {
        if let Some(roles) = &self.roles {
            return roles.iter().find(|r| r.name == role).map(|r| Authority {
                keys: &self.keys,
                pq: &self.pq,
                keyids: &r.keyids,
                threshold: r.threshold,
            });
        }
        match &self.succinct_roles {
            Some(bins) if bins.is_bin_name(role) => Some(Authority {
                keys: &self.keys,
                pq: &self.pq,
                keyids: &bins.keyids,
                threshold: bins.threshold,
            }),
            _ => None,
        }
    }

    /// The child roles that may sign for `target_path`, in the order they must be searched.
    ///
    /// For hash bins that is exactly one bin, and it is terminating (TAP 15: no other bin can
    /// hold the path).
    pub fn roles_for_target(&self, target_path: &str) -> Vec<ChildRole> {
        if let Some(roles) = &self.roles {
            return roles
                .iter()
                .filter(|r| r.covers(target_path))
                .map(|r| ChildRole {
                    name: r.name.clone(),
                    terminating: r.terminating,
                })
                .collect();
        }
        match &self.succinct_roles {
            Some(bins) => vec![ChildRole {
                name: bins.bin_for_target(target_path),
                terminating: true,
            }],
            None => Vec::new(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), MetadataError> {
        let bad = |reason: String| MetadataError::malformed("targets", reason);
        super::verify::validate_pairings(&self.keys, &self.pq)
            .map_err(|reason| bad(format!("delegations: {reason}")))?;
        match (&self.roles, &self.succinct_roles) {
            (Some(roles), None) => {
                let mut names = BTreeSet::new();
                let mut folded = BTreeMap::new();
                for role in roles {
                    if role.name.is_empty() || TOP_LEVEL_ROLES.contains(&role.name.as_str()) {
                        return Err(bad(format!(
                            "delegated role name {:?} is empty or reserved",
                            role.name
                        )));
                    }
                    if !names.insert(role.name.as_str()) {
                        return Err(bad(format!("role {:?} is delegated twice", role.name)));
                    }
                    let fold = fold_case(&role.name);
                    if let Some(top) = TOP_LEVEL_ROLES.iter().find(|t| **t == fold) {
                        return Err(bad(format!(
                            "delegated role name {:?} differs only in case from the top-level \
                             role {top:?} ({CASE_COLLISION})",
                            role.name
                        )));
                    }
                    if let Some(other) = folded.insert(fold, role.name.as_str()) {
                        return Err(bad(format!(
                            "delegated role names {other:?} and {:?} differ only in case \
                             ({CASE_COLLISION})",
                            role.name
                        )));
                    }
                    if role.threshold == 0 {
                        return Err(bad(format!("role {:?} has threshold 0", role.name)));
                    }
                    if role.paths.is_some() && role.path_hash_prefixes.is_some() {
                        return Err(bad(format!(
                            "role {:?} has both paths and path_hash_prefixes",
                            role.name
                        )));
                    }
                }
                Ok(())
            }
            (None, Some(bins)) => {
                if bins.threshold == 0 {
                    return Err(bad("succinct_roles has threshold 0".into()));
                }
                if !(1..=32).contains(&bins.bit_length) {
                    return Err(bad(format!(
                        "succinct_roles bit_length {} is outside 1..=32",
                        bins.bit_length
                    )));
                }
                Ok(())
            }
            _ => Err(bad(
                "delegations must have exactly one of roles and succinct_roles".into(),
            )),
        }
    }
}

impl DelegatedRole {
    /// A role covering `paths` (glob patterns).
    pub fn with_paths(name: &str, keyids: Vec<String>, threshold: u64, paths: Vec<String>) -> Self {
        DelegatedRole {
            name: name.to_string(),
            keyids,
            threshold,
            terminating: false,
            paths: Some(paths),
            path_hash_prefixes: None,
            unrecognized: BTreeMap::new(),
        }
    }

    /// A role covering targets whose path hash starts with one of `prefixes`.
    pub fn with_hash_prefixes(
        name: &str,
        keyids: Vec<String>,
        threshold: u64,
        prefixes: Vec<String>,
    ) -> Self {
        DelegatedRole {
            name: name.to_string(),
            keyids,
            threshold,
            terminating: false,
            paths: None,
            path_hash_prefixes: Some(prefixes),
            unrecognized: BTreeMap::new(),
        }
    }

    /// Whether this delegation covers `target_path`. A role with neither `paths` nor
    /// `path_hash_prefixes` covers nothing.
    pub fn covers(&self, target_path: &str) -> bool {
        if let Some(prefixes) = &self.path_hash_prefixes {
            let digest = path_hash(target_path);
            return prefixes.iter().any(|p| digest.starts_with(p.as_str()));
        }
        if let Some(patterns) = &self.paths {
            return patterns.iter().any(|p| path_matches(p, target_path));
        }
        false
    }
}

impl SuccinctRoles {
    pub fn new(keyids: Vec<String>, threshold: u64, bit_length: u32, name_prefix: &str) -> Self {
        SuccinctRoles {
            keyids,
            threshold,
            bit_length,
            name_prefix: name_prefix.to_string(),
            unrecognized: BTreeMap::new(),
        }
    }

    /// `2^bit_length` (bit_length is checked to be 1..=32 when parsing).
    pub fn number_of_bins(&self) -> u64 {
        1u64 << self.bit_length.min(32)
    }

    /// Hex digits in a bin suffix: the width of the largest bin index, as TAP 15 says.
    pub fn suffix_len(&self) -> usize {
        format!("{:x}", self.number_of_bins() - 1).len()
    }

    /// The bin with this index.
    pub fn bin_name(&self, index: u64) -> String {
        format!(
            "{}-{:0width$x}",
            self.name_prefix,
            index,
            width = self.suffix_len()
        )
    }

    /// The index of the bin that holds `target_path`.
    pub fn bin_index(&self, target_path: &str) -> u64 {
        let digest = Sha256::digest(target_path.as_bytes());
        let top = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        let shift = 32 - self.bit_length.clamp(1, 32);
        u64::from(top >> shift)
    }

    /// The name of the bin that holds `target_path`.
    pub fn bin_for_target(&self, target_path: &str) -> String {
        self.bin_name(self.bin_index(target_path))
    }

    /// Every bin name, in index order.
    pub fn bin_names(&self) -> impl Iterator<Item = String> + '_ {
        (0..self.number_of_bins()).map(|i| self.bin_name(i))
    }

    /// Whether `role` is one of these bins (prefix, `-`, lowercase hex of the exact width).
    pub fn is_bin_name(&self, role: &str) -> bool {
        let Some(rest) = role.strip_prefix(self.name_prefix.as_str()) else {
            return false;
        };
        let Some(suffix) = rest.strip_prefix('-') else {
            return false;
        };
        if suffix.len() != self.suffix_len()
            || !suffix
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return false;
        }
        u64::from_str_radix(suffix, 16).is_ok_and(|i| i < self.number_of_bins())
    }
}

/// Hex SHA-256 of a target path, as `path_hash_prefixes` compares it.
pub fn path_hash(target_path: &str) -> String {
    hex::encode(Sha256::digest(target_path.as_bytes()))
}

/// Whether `target_path` matches a `paths` pattern (see the module docs).
pub fn path_matches(pattern: &str, target_path: &str) -> bool {
    let pattern_parts: Vec<&str> = pattern.split('/').collect();
    let target_parts: Vec<&str> = target_path.split('/').collect();
    pattern_parts.len() == target_parts.len()
        && pattern_parts
            .iter()
            .zip(&target_parts)
            .all(|(p, t)| fnmatch(p, t))
}

#[derive(Debug)]
enum Token {
    Literal(char),
    AnyOne,
    AnyRun,
    Set {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::AnyOne => true,
            Token::AnyRun => false,
            Token::Set { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
            }
        }
    }
}

/// Python's `fnmatch.fnmatchcase` on one path segment.
fn fnmatch(pattern: &str, text: &str) -> bool {
    let tokens = tokenize(pattern);
    let text: Vec<char> = text.chars().collect();
    // Greedy matching with one backtrack point for the last `*`: linear in practice, and
    // never exponential, whatever the pattern.
    let (mut p, mut t) = (0usize, 0usize);
    let mut backtrack: Option<(usize, usize)> = None;
    while let Some(&c) = text.get(t) {
        match tokens.get(p) {
            Some(Token::AnyRun) => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(tok) if tok.matches(c) => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star_p, star_t)) => {
                    backtrack = Some((star_p, star_t + 1));
                    p = star_p + 1;
                    t = star_t + 1;
                }
                None => return false,
            },
        }
    }
    tokens
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|tok| matches!(tok, Token::AnyRun)))
}

fn tokenize(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::with_capacity(chars.len());
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        i += 1;
        match c {
            '*' => {
                if !matches!(tokens.last(), Some(Token::AnyRun)) {
                    tokens.push(Token::AnyRun);
                }
            }
            '?' => tokens.push(Token::AnyOne),
            '[' => match parse_set(&chars, i) {
                Some((token, next)) => {
                    tokens.push(token);
                    i = next;
                }
                // No closing `]`: the `[` is an ordinary character.
                None => tokens.push(Token::Literal('[')),
            },
            other => tokens.push(Token::Literal(other)),
        }
    }
    tokens
}

/// Parse a `[...]` set whose body starts at `start`; returns the token and the index after `]`.
fn parse_set(chars: &[char], start: usize) -> Option<(Token, usize)> {
    let mut j = start;
    let negated = chars.get(j) == Some(&'!');
    if negated {
        j += 1;
    }
    let body_start = j;
    // A `]` right at the start of the body is a member, not the end.
    if chars.get(j) == Some(&']') {
        j += 1;
    }
    while chars.get(j).is_some_and(|&c| c != ']') {
        j += 1;
    }
    chars.get(j)?; // unterminated
    let body = chars.get(body_start..j)?;
    let mut ranges = Vec::new();
    let mut k = 0;
    while let Some(&lo) = body.get(k) {
        match (body.get(k + 1), body.get(k + 2)) {
            (Some('-'), Some(&hi)) => {
                // An inverted range such as `z-a` matches nothing, as in Python.
                if lo <= hi {
                    ranges.push((lo, hi));
                }
                k += 3;
            }
            _ => {
                ranges.push((lo, lo));
                k += 1;
            }
        }
    }
    Some((Token::Set { negated, ranges }, j + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_star_and_question_never_cross_slash() {
        assert!(path_matches("*", "file.txt"));
        assert!(!path_matches("*", "dir/file.txt"));
        assert!(path_matches("dir/*", "dir/file.txt"));
        assert!(!path_matches("dir/*", "dir/sub/file.txt"));
        assert!(path_matches("*/*", "dir/file.txt"));
        assert!(path_matches("dir/*.tgz", "dir/a.tgz"));
        assert!(!path_matches("dir/*.tgz", "dir/a.tgz.sig"));
        assert!(path_matches("a?c", "abc"));
        assert!(!path_matches("a?c", "a/c"));
        assert!(!path_matches("a?c", "ac"));
        assert!(path_matches("", ""));
        assert!(!path_matches("", "a"));
        assert!(path_matches("*", ""));
        assert!(path_matches("a*b*c", "aXXbYYbZc"));
        assert!(!path_matches("a*b*c", "aXXbYYbZ"));
        assert!(path_matches("**", "abc"));
        assert!(path_matches("dir/", "dir/"));
        assert!(!path_matches("dir/", "dir"));
    }

    #[test]
    fn glob_sets() {
        assert!(path_matches("file[0-9].txt", "file7.txt"));
        assert!(!path_matches("file[0-9].txt", "filea.txt"));
        assert!(path_matches("file[!0-9].txt", "filea.txt"));
        assert!(!path_matches("file[!0-9].txt", "file7.txt"));
        assert!(path_matches("[]]", "]"));
        assert!(path_matches("[!]]", "a"));
        assert!(path_matches("[a-]", "-"));
        assert!(!path_matches("[z-a]", "m"));
        assert!(path_matches("a[b", "a[b"));
        assert!(!path_matches("[/]", "/"));
        assert!(path_matches("é?", "éß"));
    }

    #[test]
    fn hash_prefixes_cover_by_sha256_of_path() {
        let h = path_hash("a/b.txt");
        let mut role = DelegatedRole::with_hash_prefixes("r", vec![], 1, vec![h[..2].to_string()]);
        assert!(role.covers("a/b.txt"));
        let other = if h.starts_with('0') { "1" } else { "0" };
        role.path_hash_prefixes = Some(vec![other.to_string()]);
        assert!(!role.covers("a/b.txt"));
        // A role with neither field covers nothing.
        role.path_hash_prefixes = None;
        assert!(!role.covers("a/b.txt"));
    }

    #[test]
    fn succinct_bins() {
        let bins = SuccinctRoles::new(vec![], 1, 8, "bin");
        assert_eq!(bins.number_of_bins(), 256);
        assert_eq!(bins.suffix_len(), 2);
        assert_eq!(bins.bin_name(10), "bin-0a");
        let names: Vec<String> = bins.bin_names().collect();
        assert_eq!(names.len(), 256);
        assert_eq!(names.first().map(String::as_str), Some("bin-00"));
        assert_eq!(names.last().map(String::as_str), Some("bin-ff"));
        assert!(bins.is_bin_name("bin-ff"));
        for bad in [
            "bin-100", "bin-f", "bin-FF", "bin_ff", "bins-ff", "bin-+f", "bin-",
        ] {
            assert!(!bins.is_bin_name(bad), "{bad}");
        }
        // The bin is the top 8 bits of sha256(path).
        let h = path_hash("some/target");
        assert_eq!(
            bins.bin_for_target("some/target"),
            format!("bin-{}", &h[..2])
        );

        let odd = SuccinctRoles::new(vec![], 1, 5, "p");
        assert_eq!(odd.suffix_len(), 2); // 31 = 0x1f
        assert_eq!(odd.bin_name(3), "p-03");
        assert!(!odd.is_bin_name("p-20"));
        let one = SuccinctRoles::new(vec![], 1, 1, "x");
        assert_eq!(one.bin_names().collect::<Vec<_>>(), vec!["x-0", "x-1"]);
        let wide = SuccinctRoles::new(vec![], 1, 32, "w");
        assert_eq!(wide.suffix_len(), 8);
        assert_eq!(
            wide.bin_index("t"),
            u64::from_str_radix(&path_hash("t")[..8], 16).unwrap()
        );
    }
}
