//! Release versions.
//!
//! A version comes from a target path (the app's pattern says where) and becomes the name of a
//! release directory, so it is refused unless it is 1 to 64 characters of `A-Z a-z 0-9 . _ + -`,
//! starts with a letter or digit and is not `.`/`..`-like: no version can name a path outside
//! `releases/`.
//!
//! Order: the version is split at `-` into a release part and an optional pre-release part (as
//! in SemVer). Release parts compare field by field (`.`-separated; numeric fields as numbers,
//! other fields as text, a number before text, a missing field before a present one, so
//! `1.2 < 1.2.0 < 1.2.1`); a version with a pre-release part is older than the same release
//! without one (`2.0-rc.1 < 2.0`), pre-release parts compare like release parts. Build metadata
//! after `+` is ignored for order but kept in the name, so `1.0+a` and `1.0+b` are equal in
//! order and the agent treats a change between them as no upgrade.

use std::cmp::Ordering;
use std::fmt;

/// Longest version accepted.
pub const MAX_VERSION_LEN: usize = 64;

/// A checked release version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version(String);

/// Why a string is not a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("version is empty")]
    Empty,
    #[error("version is longer than {MAX_VERSION_LEN} characters")]
    TooLong,
    #[error("version {0:?} has a character outside A-Z a-z 0-9 . _ + -")]
    BadCharacter(String),
    #[error("version {0:?} must start with a letter or a digit")]
    BadStart(String),
    #[error("version {0:?} has an empty field")]
    EmptyField(String),
}

impl Version {
    /// Check `s` and keep it.
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        if s.is_empty() {
            return Err(VersionError::Empty);
        }
        if s.len() > MAX_VERSION_LEN {
            return Err(VersionError::TooLong);
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
        {
            return Err(VersionError::BadCharacter(s.to_string()));
        }
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(VersionError::BadStart(s.to_string()));
        }
        let ordered = s.split('+').next().unwrap_or_default();
        if ordered.split(['.', '-']).any(str::is_empty) {
            return Err(VersionError::EmptyField(s.to_string()));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// (release, pre-release) without build metadata.
    fn parts(&self) -> (&str, Option<&str>) {
        let ordered = self.0.split('+').next().unwrap_or_default();
        match ordered.split_once('-') {
            Some((release, pre)) => (release, Some(pre)),
            None => (ordered, None),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn compare_field(a: &str, b: &str) -> Ordering {
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match (numeric(a), numeric(b)) {
        // Compared as digit strings without leading zeros, so any length works.
        (true, true) => {
            let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
            a.len().cmp(&b.len()).then_with(|| a.cmp(b))
        }
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

fn compare_fields(a: &str, b: &str) -> Ordering {
    let mut a = a.split(['.', '-']);
    let mut b = b.split(['.', '-']);
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match compare_field(x, y) {
                Ordering::Equal => {}
                other => return other,
            },
        }
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let (ra, pa) = self.parts();
        let (rb, pb) = other.parts();
        compare_fields(ra, rb).then_with(|| match (pa, pb) {
            (None, None) => Ordering::Equal,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => compare_fields(a, b),
        })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn order_is_numeric_and_prereleases_come_first() {
        let ascending = [
            "0.9",
            "1.2",
            "1.2.0",
            "1.2.1",
            "1.10.0",
            "2.0-alpha",
            "2.0-rc.1",
            "2.0-rc.2",
            "2.0-rc.10",
            "2.0",
            "2.0.1",
            "10.0",
            "99999999999999999999999.0",
        ];
        for pair in ascending.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
            assert!(v(pair[1]) > v(pair[0]));
        }
        assert_eq!(v("1.0+a").cmp(&v("1.0+b")), Ordering::Equal);
        assert_eq!(v("01.2").cmp(&v("1.2")), Ordering::Equal);
    }

    #[test]
    fn a_version_cannot_name_a_path_outside_its_directory() {
        for bad in [
            "", "..", ".", "../x", "a/b", "1.0/..", ".hidden", "-1", "1..2", "1.0 ", "1\0", "é1",
            "1.0-", "+1",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Version::parse(&"1".repeat(65)).is_err());
        assert!(Version::parse(&"1".repeat(64)).is_ok());
        for good in ["1", "1.2.3", "2024.05.01_1", "1.0-rc.1+build.7", "v2"] {
            assert_eq!(v(good).as_str(), good);
        }
    }
}
