//! OLPC canonical JSON, exactly as securesystemslib's `encode_canonical` writes it.
//!
//! This is not RFC 8785. The rules, all taken from securesystemslib:
//! - object keys are sorted by Unicode code point (Python's `sorted` on `str`); comparing the
//!   UTF-8 bytes gives the same order, which is why we sort bytes and not UTF-16 units;
//! - no whitespace anywhere;
//! - strings escape only `\` (as `\\`) and `"` (as `\"`); every other character, control
//!   characters and non-ASCII included, is written as raw UTF-8;
//! - numbers must be integers; a float has no canonical form and is refused.
//!
//! Limits on our side, both failing closed: integers must fit `i64` or `u64` (Python has no
//! bound; we refuse larger ones rather than round them), and JSON text `-0` is refused because
//! serde_json reads it as the float `-0.0`. Neither appears in TUF metadata.
//!
//! TUF signatures are made and checked over these bytes.

use serde_json::Value;

/// Why a value has no canonical form.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CanonicalError {
    /// A number that is not an integer in the `i64`/`u64` range (floats, exponents, huge values).
    #[error("canonical JSON allows only integers (within 64 bits), found the number {0}")]
    NonInteger(String),
    /// The value could not be turned into JSON at all (a serde error).
    #[error("value could not be converted to JSON: {0}")]
    Serialize(String),
    /// The input bytes are not JSON.
    #[error("input is not valid JSON: {0}")]
    Parse(String),
}

/// Encode a JSON value in canonical form.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out)?;
    Ok(out)
}

/// Serialize any `Serialize` value and encode it in canonical form.
pub fn to_vec_of<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    let v = serde_json::to_value(value).map_err(|e| CanonicalError::Serialize(e.to_string()))?;
    to_vec(&v)
}

/// Parse JSON text and re-encode it in canonical form.
pub fn canonicalize(json: &[u8]) -> Result<Vec<u8>, CanonicalError> {
    let v: Value =
        serde_json::from_slice(json).map_err(|e| CanonicalError::Parse(e.to_string()))?;
    to_vec(&v)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            // `as_i64`/`as_u64` are None for every float, including integral ones such as 1.0
            // (Python also refuses `1.0`: it is a float there too).
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                return Err(CanonicalError::NonInteger(n.to_string()));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // serde_json's map may keep insertion order (feature `preserve_order`), so sort here.
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_value(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    for b in s.bytes() {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(text: &str) -> Result<String, CanonicalError> {
        canonicalize(text.as_bytes()).map(|b| String::from_utf8(b).unwrap())
    }

    // Expected outputs below were produced by securesystemslib 1.6 `encode_canonical` on the
    // same input (json.loads first); tests/cjson_python.rs re-checks many more against it live.

    #[test]
    fn sorts_keys_and_escapes_only_quote_and_backslash() {
        let v = json!({"b": [1, -2, true, null], "a": "q\"\\\n\u{e9}", "A": {}});
        assert_eq!(
            to_vec(&v).unwrap(),
            "{\"A\":{},\"a\":\"q\\\"\\\\\n\u{e9}\",\"b\":[1,-2,true,null]}".as_bytes()
        );
    }

    #[test]
    fn control_characters_are_written_raw() {
        assert_eq!(
            canon(r#"["\u0000\u0001\t\r\n\u001f\u007f"]"#).unwrap(),
            "[\"\u{0}\u{1}\t\r\n\u{1f}\u{7f}\"]"
        );
        // The forward slash and unicode escapes are decoded, never re-escaped.
        assert_eq!(canon(r#""a\/b\u00e9""#).unwrap(), "\"a/b\u{e9}\"");
    }

    #[test]
    fn keys_sort_by_code_point_not_utf16() {
        // U+FFFF sorts before U+1F600 by code point; UTF-16 order (RFC 8785) would reverse them.
        assert_eq!(
            canon(r#"{"\ud83d\ude00":1,"\uffff":2,"z":3,"Z":4,"é":5,"":6}"#).unwrap(),
            "{\"\":6,\"Z\":4,\"z\":3,\"\u{e9}\":5,\"\u{ffff}\":2,\"\u{1f600}\":1}"
        );
    }

    #[test]
    fn integer_range_and_refusals() {
        assert_eq!(
            canon("[18446744073709551615,-9223372036854775808,0,-1]").unwrap(),
            "[18446744073709551615,-9223372036854775808,0,-1]"
        );
        for bad in [
            "1.5",
            "1.0",
            "1e3",
            "18446744073709551616",
            "-9223372036854775809",
            "-0",
        ] {
            assert!(
                matches!(canon(bad), Err(CanonicalError::NonInteger(_))),
                "{bad} must be refused"
            );
        }
        assert!(matches!(
            to_vec(&json!({"x": 1.5})),
            Err(CanonicalError::NonInteger(_))
        ));
        assert!(matches!(canon("{"), Err(CanonicalError::Parse(_))));
    }

    #[test]
    fn nested_and_empty_containers() {
        assert_eq!(
            canon(r#" { "b" : [ [ ], { } , { "y":[{"b":1,"a":2}] } ], "a" : null } "#).unwrap(),
            r#"{"a":null,"b":[[],{},{"y":[{"a":2,"b":1}]}]}"#
        );
    }
}
