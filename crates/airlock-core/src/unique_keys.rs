//! One JSON rule serde_json does not enforce: no object may have the same key twice.
//!
//! RFC 8259 leaves duplicate keys to the reader, and readers disagree (serde_json and Python's
//! `json` keep the last copy, others the first, some refuse). Metadata with a duplicate key is
//! therefore two documents: the one a signature was checked on and the one another reader sees.
//! [`check_unique_keys`] refuses it, at every nesting level and whatever the key's spelling
//! (`"a"` and `"\u0061"` are one key).
//!
//! It is a single forward scan that only tracks strings and brackets, with no tree built: on a
//! 100 000-target `targets.json` it costs a fraction of the typed parse (see
//! `Metadata::parse`). It is meant to run beside a full JSON parser, which reports syntax errors
//! precisely; input it cannot follow is an error too ([`JsonKeyError::Syntax`]), never a pass.

use std::borrow::Cow;
use std::collections::HashSet;

/// Why [`check_unique_keys`] refused the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonKeyError {
    #[error("duplicate key {key:?} in {}", describe(.at))]
    Duplicate {
        /// The key, decoded (lossily if not UTF-8).
        key: String,
        /// Where the object is: `signed.targets`, `signatures[0]`; empty for the top level.
        at: String,
    },
    #[error("not JSON at byte {offset}")]
    Syntax { offset: usize },
}

fn describe(at: &str) -> String {
    if at.is_empty() {
        "the top-level object".into()
    } else {
        format!("the object at {at}")
    }
}

/// Objects with more keys than this are checked through a hash set; smaller ones by a scan.
const SMALL_OBJECT: usize = 16;

/// The keys seen so far in one object.
struct Keys<'a> {
    small: Vec<Cow<'a, [u8]>>,
    large: Option<HashSet<Cow<'a, [u8]>>>,
    last: Option<Cow<'a, [u8]>>,
}

impl<'a> Keys<'a> {
    fn new() -> Self {
        Keys {
            small: Vec::new(),
            large: None,
            last: None,
        }
    }

    /// False when `key` was already there.
    fn insert(&mut self, key: Cow<'a, [u8]>) -> bool {
        match &mut self.large {
            Some(set) => {
                if !set.insert(key.clone()) {
                    return false;
                }
            }
            None => {
                if self.small.contains(&key) {
                    return false;
                }
                self.small.push(key.clone());
                if self.small.len() > SMALL_OBJECT {
                    self.large = Some(self.small.drain(..).collect());
                }
            }
        }
        self.last = Some(key);
        true
    }
}

enum Frame<'a> {
    Object(Keys<'a>),
    Array(usize),
}

/// The path of the innermost container, from the frames enclosing it.
fn path(frames: &[Frame<'_>]) -> String {
    let mut out = String::new();
    for frame in frames {
        match frame {
            Frame::Object(keys) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&String::from_utf8_lossy(
                    keys.last.as_deref().unwrap_or_default(),
                ));
            }
            Frame::Array(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn syntax(&self) -> JsonKeyError {
        JsonKeyError::Syntax { offset: self.pos }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), JsonKeyError> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax())
        }
    }

    /// A string starting at the opening quote; returns its decoded bytes (borrowed when it has
    /// no escape, which is almost always).
    fn string(&mut self) -> Result<Cow<'a, [u8]>, JsonKeyError> {
        self.pos += 1;
        let start = self.pos;
        let rest = self.bytes.get(start..).unwrap_or_default();
        let stop = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\')
            .ok_or_else(|| self.syntax())?;
        self.pos = start + stop;
        if self.peek() == Some(b'"') {
            self.pos += 1;
            return Ok(Cow::Borrowed(&rest[..stop]));
        }
        let mut out = rest[..stop].to_vec();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(&mut out)?;
                }
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
                None => return Err(self.syntax()),
            }
        }
    }

    /// A string whose contents do not matter (a value).
    fn skip_string(&mut self) -> Result<(), JsonKeyError> {
        self.pos += 1;
        loop {
            let rest = self.bytes.get(self.pos..).unwrap_or_default();
            let stop = rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\')
                .ok_or_else(|| self.syntax())?;
            self.pos += stop + 1;
            if rest.get(stop) == Some(&b'"') {
                return Ok(());
            }
            // Skip the escaped byte; `\uXXXX` digits are never quotes or backslashes.
            self.pos += 1;
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonKeyError> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .ok_or_else(|| self.syntax())?;
        self.pos += 4;
        Ok(digits)
    }

    /// One escape sequence after its backslash, appended to `out` as UTF-8.
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), JsonKeyError> {
        let byte = self.peek().ok_or_else(|| self.syntax())?;
        self.pos += 1;
        let simple = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let first = self.hex4()?;
                let code = if (0xd800..0xdc00).contains(&first) {
                    if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                        return Err(self.syntax());
                    }
                    self.pos += 2;
                    let second = self.hex4()?;
                    if !(0xdc00..0xe000).contains(&second) {
                        return Err(self.syntax());
                    }
                    0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
                } else {
                    first
                };
                let c = char::from_u32(code).ok_or_else(|| self.syntax())?;
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                return Ok(());
            }
            _ => return Err(self.syntax()),
        };
        out.push(simple);
        Ok(())
    }

    /// A number, `true`, `false` or `null`: their bytes never hold a bracket, quote or comma.
    fn skip_scalar(&mut self) -> Result<(), JsonKeyError> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            if matches!(b, b'{' | b'[' | b'"' | b':') {
                return Err(self.syntax());
            }
            self.pos += 1;
        }
        if self.pos == start {
            Err(self.syntax())
        } else {
            Ok(())
        }
    }
}

/// Refuse JSON in which any object has the same key twice (compared after unescaping).
pub fn check_unique_keys(bytes: &[u8]) -> Result<(), JsonKeyError> {
    let mut s = Scanner { bytes, pos: 0 };
    let mut frames: Vec<Frame<'_>> = Vec::new();
    // Each turn reads one value, then closes the containers that end after it.
    loop {
        s.skip_ws();
        match s.peek() {
            Some(b'{') => {
                s.pos += 1;
                s.skip_ws();
                if s.peek() == Some(b'}') {
                    s.pos += 1;
                } else {
                    frames.push(Frame::Object(Keys::new()));
                    key(&mut s, &mut frames)?;
                    continue;
                }
            }
            Some(b'[') => {
                s.pos += 1;
                s.skip_ws();
                if s.peek() == Some(b']') {
                    s.pos += 1;
                } else {
                    frames.push(Frame::Array(0));
                    continue;
                }
            }
            Some(b'"') => s.skip_string()?,
            Some(_) => s.skip_scalar()?,
            None => return Err(s.syntax()),
        }
        // After a complete value: a comma continues the innermost container, a bracket ends it.
        loop {
            s.skip_ws();
            let Some(frame) = frames.last_mut() else {
                return if s.pos == bytes.len() {
                    Ok(())
                } else {
                    Err(s.syntax())
                };
            };
            match (frame, s.peek()) {
                (Frame::Object(_), Some(b',')) => {
                    s.pos += 1;
                    key(&mut s, &mut frames)?;
                    break;
                }
                (Frame::Array(index), Some(b',')) => {
                    s.pos += 1;
                    *index += 1;
                    break;
                }
                (Frame::Object(_), Some(b'}')) | (Frame::Array(_), Some(b']')) => {
                    s.pos += 1;
                    frames.pop();
                }
                _ => return Err(s.syntax()),
            }
        }
    }
}

/// Read `"key":` into the innermost object, refusing a key it already has.
fn key<'a>(s: &mut Scanner<'a>, frames: &mut [Frame<'a>]) -> Result<(), JsonKeyError> {
    s.skip_ws();
    if s.peek() != Some(b'"') {
        return Err(s.syntax());
    }
    let key = s.string()?;
    s.expect(b':')?;
    let Some((Frame::Object(keys), outer)) = frames.split_last_mut() else {
        return Err(s.syntax());
    };
    if keys.insert(key.clone()) {
        Ok(())
    } else {
        Err(JsonKeyError::Duplicate {
            key: String::from_utf8_lossy(&key).into_owned(),
            at: path(outer),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dup(json: &str) -> (String, String) {
        match check_unique_keys(json.as_bytes()) {
            Err(JsonKeyError::Duplicate { key, at }) => (key, at),
            other => panic!("{json}: {other:?}"),
        }
    }

    #[test]
    fn duplicates_are_found_at_every_level_with_their_place() {
        assert_eq!(dup(r#"{"a":1,"a":2}"#), ("a".into(), "".into()));
        assert_eq!(
            dup(r#"{"signed":{"targets":{"x":{},"y":[],"x":null}}}"#),
            ("x".into(), "signed.targets".into())
        );
        assert_eq!(
            dup(r#"{"s":[{"k":1},{"k":1,"k":2}]}"#),
            ("k".into(), "s[1]".into())
        );
        // Escapes are decoded before comparing.
        assert_eq!(dup(r#"{"a":1,"\u0061":2}"#), ("a".into(), "".into()));
        assert_eq!(dup(r#"{"\"\/":1,"\"/":2}"#), ("\"/".into(), "".into()));
        assert_eq!(
            dup(r#"{"😀":1,"\ud83d\ude00":2}"#),
            ("😀".into(), "".into())
        );
        // A large object goes through the hash set.
        let mut big: String = (0..100).map(|i| format!("\"k{i}\":{i},")).collect();
        big.insert(0, '{');
        big.push_str("\"k57\":0}");
        assert_eq!(dup(&big), ("k57".into(), "".into()));
    }

    #[test]
    fn valid_json_without_duplicates_passes() {
        for ok in [
            r#"{}"#,
            r#"[]"#,
            r#"  {"a" : [ 1 , -2.5e3, true, false, null, "s\"}", {} , [] ] , "b":{"a":1}}  "#,
            r#"{"a":1,"A":2,"a ":3,"\u00e9":4,"é\u0301":5}"#,
            r#"[{"k":1},{"k":1}]"#,
            r#""just a string""#,
            "7",
        ] {
            assert_eq!(check_unique_keys(ok.as_bytes()), Ok(()), "{ok}");
        }
        let mut big: String = (0..1000).map(|i| format!("\"k{i}\":{i},")).collect();
        big.insert(0, '{');
        big.push_str("\"last\":0}");
        assert_eq!(check_unique_keys(big.as_bytes()), Ok(()));
    }

    #[test]
    fn what_it_cannot_follow_is_an_error_not_a_pass() {
        for bad in [
            "",
            "{",
            "}",
            r#"{"a"}"#,
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{"a":1 "b":2}"#,
            r#"[1,]"#,
            r#"{"a":1}}"#,
            r#"{"a":1} x"#,
            r#"{"a:1}"#,
            r#"{1:2}"#,
            r#"{"\ud800":1}"#,
            r#"{"\uZZZZ":1}"#,
            r#"{"\q":1}"#,
            r#"{"a":[}"#,
            r#"{"a":tr"ue"}"#,
        ] {
            assert!(
                matches!(
                    check_unique_keys(bad.as_bytes()),
                    Err(JsonKeyError::Syntax { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
