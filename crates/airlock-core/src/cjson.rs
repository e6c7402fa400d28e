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

/// Serialize any `Serialize` value straight to canonical form (no intermediate JSON tree).
///
/// Gives the same bytes as `to_vec(&serde_json::to_value(value)?)`, faster, except that an
/// object with the same key twice (possible with `#[serde(flatten)]`) is refused instead of
/// silently keeping the last one.
pub fn to_vec_of<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(4096);
    value.serialize(ser::Canonical { out: &mut out })?;
    Ok(out)
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
    // Copy runs between the two escaped bytes in bulk.
    let mut rest = s.as_bytes();
    while let Some(i) = rest.iter().position(|&b| b == b'"' || b == b'\\') {
        let (run, tail) = rest.split_at(i);
        out.extend_from_slice(run);
        out.push(b'\\');
        rest = tail;
        if let Some((&escaped, tail)) = rest.split_first() {
            out.push(escaped);
            rest = tail;
        }
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// A `serde::Serializer` that writes canonical JSON directly.
///
/// Objects are written in the order serde gives their entries, remembering where each entry
/// lies; if the keys were not already in order (struct fields usually are not, `BTreeMap`s
/// are), the object's bytes are rearranged once at its end.
mod ser {
    use std::borrow::Cow;
    use std::io::Write as _;

    use serde::ser::{self, Serialize};

    use super::{CanonicalError, write_string};

    impl ser::Error for CanonicalError {
        fn custom<T: std::fmt::Display>(msg: T) -> Self {
            CanonicalError::Serialize(msg.to_string())
        }
    }

    pub(super) struct Canonical<'a> {
        pub(super) out: &'a mut Vec<u8>,
    }

    fn number(out: &mut Vec<u8>, n: impl std::fmt::Display) {
        // Writing to a Vec cannot fail.
        let _ = write!(out, "{n}");
    }

    impl<'a> ser::Serializer for Canonical<'a> {
        type Ok = ();
        type Error = CanonicalError;
        type SerializeSeq = Seq<'a>;
        type SerializeTuple = Seq<'a>;
        type SerializeTupleStruct = Seq<'a>;
        type SerializeTupleVariant = Seq<'a>;
        type SerializeMap = Object<'a>;
        type SerializeStruct = Object<'a>;
        type SerializeStructVariant = Object<'a>;

        fn serialize_bool(self, v: bool) -> Result<(), CanonicalError> {
            self.out
                .extend_from_slice(if v { b"true" } else { b"false" });
            Ok(())
        }
        fn serialize_i8(self, v: i8) -> Result<(), CanonicalError> {
            number(self.out, v);
            Ok(())
        }
        fn serialize_i16(self, v: i16) -> Result<(), CanonicalError> {
            number(self.out, v);
            Ok(())
        }
        fn serialize_i32(self, v: i32) -> Result<(), CanonicalError> {
            number(self.out, v);
            Ok(())
        }
        fn serialize_i64(self, v: i64) -> Result<(), CanonicalError> {
            number(self.out, v);
            Ok(())
        }
        fn serialize_i128(self, v: i128) -> Result<(), CanonicalError> {
            number(self.out, v);
            Ok(())
        }
        fn serialize_u8(self, v: u8) -> Result<(), CanonicalError> {
            number(self.out, v);
            Ok(())
        }
        fn serialize_u16(self, v: u16) -> Result<(), CanonicalError> {
            number(self.out, v);
            Ok(())
        }
        fn serialize_u32(self, v: u32) -> Result<(), CanonicalError> {
            number(self.out, v);
            Ok(())
        }
        fn serialize_u64(self, v: u64) -> Result<(), CanonicalError> {
            number(self.out, v);
            Ok(())
        }
        fn serialize_u128(self, v: u128) -> Result<(), CanonicalError> {
            number(self.out, v);
            Ok(())
        }
        fn serialize_f32(self, v: f32) -> Result<(), CanonicalError> {
            Err(CanonicalError::NonInteger(v.to_string()))
        }
        fn serialize_f64(self, v: f64) -> Result<(), CanonicalError> {
            Err(CanonicalError::NonInteger(v.to_string()))
        }
        fn serialize_char(self, v: char) -> Result<(), CanonicalError> {
            write_string(v.encode_utf8(&mut [0u8; 4]), self.out);
            Ok(())
        }
        fn serialize_str(self, v: &str) -> Result<(), CanonicalError> {
            write_string(v, self.out);
            Ok(())
        }
        fn serialize_bytes(self, v: &[u8]) -> Result<(), CanonicalError> {
            // As serde_json does: an array of numbers.
            let mut seq = ser::Serializer::serialize_seq(self, Some(v.len()))?;
            for b in v {
                ser::SerializeSeq::serialize_element(&mut seq, b)?;
            }
            ser::SerializeSeq::end(seq)
        }
        fn serialize_none(self) -> Result<(), CanonicalError> {
            self.out.extend_from_slice(b"null");
            Ok(())
        }
        fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), CanonicalError> {
            value.serialize(self)
        }
        fn serialize_unit(self) -> Result<(), CanonicalError> {
            self.serialize_none()
        }
        fn serialize_unit_struct(self, _name: &'static str) -> Result<(), CanonicalError> {
            self.serialize_none()
        }
        fn serialize_unit_variant(
            self,
            _name: &'static str,
            _index: u32,
            variant: &'static str,
        ) -> Result<(), CanonicalError> {
            self.serialize_str(variant)
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _name: &'static str,
            value: &T,
        ) -> Result<(), CanonicalError> {
            value.serialize(self)
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _name: &'static str,
            _index: u32,
            variant: &'static str,
            value: &T,
        ) -> Result<(), CanonicalError> {
            self.out.push(b'{');
            write_string(variant, self.out);
            self.out.push(b':');
            value.serialize(Canonical { out: self.out })?;
            self.out.push(b'}');
            Ok(())
        }
        fn serialize_seq(self, _len: Option<usize>) -> Result<Seq<'a>, CanonicalError> {
            self.out.push(b'[');
            Ok(Seq {
                out: self.out,
                first: true,
                close: b"]",
            })
        }
        fn serialize_tuple(self, len: usize) -> Result<Seq<'a>, CanonicalError> {
            self.serialize_seq(Some(len))
        }
        fn serialize_tuple_struct(
            self,
            _name: &'static str,
            len: usize,
        ) -> Result<Seq<'a>, CanonicalError> {
            self.serialize_seq(Some(len))
        }
        fn serialize_tuple_variant(
            self,
            _name: &'static str,
            _index: u32,
            variant: &'static str,
            _len: usize,
        ) -> Result<Seq<'a>, CanonicalError> {
            self.out.push(b'{');
            write_string(variant, self.out);
            self.out.extend_from_slice(b":[");
            Ok(Seq {
                out: self.out,
                first: true,
                close: b"]}",
            })
        }
        fn serialize_map(self, _len: Option<usize>) -> Result<Object<'a>, CanonicalError> {
            Ok(Object::open(self.out, b"}"))
        }
        fn serialize_struct(
            self,
            _name: &'static str,
            _len: usize,
        ) -> Result<Object<'a>, CanonicalError> {
            Ok(Object::open(self.out, b"}"))
        }
        fn serialize_struct_variant(
            self,
            _name: &'static str,
            _index: u32,
            variant: &'static str,
            _len: usize,
        ) -> Result<Object<'a>, CanonicalError> {
            self.out.push(b'{');
            write_string(variant, self.out);
            self.out.push(b':');
            Ok(Object::open(self.out, b"}}"))
        }
    }

    pub(super) struct Seq<'a> {
        out: &'a mut Vec<u8>,
        first: bool,
        close: &'static [u8],
    }

    impl Seq<'_> {
        fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonicalError> {
            if !self.first {
                self.out.push(b',');
            }
            self.first = false;
            value.serialize(Canonical { out: self.out })
        }
        fn close(self) -> Result<(), CanonicalError> {
            self.out.extend_from_slice(self.close);
            Ok(())
        }
    }

    impl ser::SerializeSeq for Seq<'_> {
        type Ok = ();
        type Error = CanonicalError;
        fn serialize_element<T: Serialize + ?Sized>(
            &mut self,
            v: &T,
        ) -> Result<(), CanonicalError> {
            self.element(v)
        }
        fn end(self) -> Result<(), CanonicalError> {
            self.close()
        }
    }
    impl ser::SerializeTuple for Seq<'_> {
        type Ok = ();
        type Error = CanonicalError;
        fn serialize_element<T: Serialize + ?Sized>(
            &mut self,
            v: &T,
        ) -> Result<(), CanonicalError> {
            self.element(v)
        }
        fn end(self) -> Result<(), CanonicalError> {
            self.close()
        }
    }
    impl ser::SerializeTupleStruct for Seq<'_> {
        type Ok = ();
        type Error = CanonicalError;
        fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), CanonicalError> {
            self.element(v)
        }
        fn end(self) -> Result<(), CanonicalError> {
            self.close()
        }
    }
    impl ser::SerializeTupleVariant for Seq<'_> {
        type Ok = ();
        type Error = CanonicalError;
        fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), CanonicalError> {
            self.element(v)
        }
        fn end(self) -> Result<(), CanonicalError> {
            self.close()
        }
    }

    /// An object being written: entries go straight to `out`; `entries` remembers each one's
    /// key and byte range (`"key":value`, without the separating comma).
    pub(super) struct Object<'a> {
        out: &'a mut Vec<u8>,
        body_start: usize,
        entries: Vec<(Cow<'static, str>, usize, usize)>,
        in_order: bool,
        close: &'static [u8],
    }

    impl<'a> Object<'a> {
        fn open(out: &'a mut Vec<u8>, close: &'static [u8]) -> Self {
            out.push(b'{');
            let body_start = out.len();
            Object {
                out,
                body_start,
                entries: Vec::new(),
                in_order: true,
                close,
            }
        }

        fn key(&mut self, key: Cow<'static, str>) {
            if let Some((last, _, _)) = self.entries.last() {
                // Strictly increasing byte order is code-point order with no duplicates.
                if last.as_bytes() >= key.as_bytes() {
                    self.in_order = false;
                }
                self.out.push(b',');
            }
            let start = self.out.len();
            write_string(&key, self.out);
            self.out.push(b':');
            self.entries.push((key, start, start));
        }

        fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonicalError> {
            value.serialize(Canonical { out: self.out })?;
            let end = self.out.len();
            match self.entries.last_mut() {
                Some(entry) => {
                    entry.2 = end;
                    Ok(())
                }
                None => Err(CanonicalError::Serialize(
                    "object value without a key".into(),
                )),
            }
        }

        fn close(mut self) -> Result<(), CanonicalError> {
            if !self.in_order {
                self.entries
                    .sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                if let Some(w) = self.entries.windows(2).find(|w| w[0].0 == w[1].0) {
                    return Err(CanonicalError::Serialize(format!(
                        "object has the key {:?} twice",
                        w[0].0
                    )));
                }
                let body = self.out.split_off(self.body_start);
                for (i, (_, start, end)) in self.entries.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    let range = body
                        .get(start - self.body_start..end - self.body_start)
                        .ok_or_else(|| CanonicalError::Serialize("object entry lost".into()))?;
                    self.out.extend_from_slice(range);
                }
            }
            self.out.extend_from_slice(self.close);
            Ok(())
        }
    }

    impl ser::SerializeMap for Object<'_> {
        type Ok = ();
        type Error = CanonicalError;
        fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), CanonicalError> {
            let key = key.serialize(KeyString)?;
            self.key(Cow::Owned(key));
            Ok(())
        }
        fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), CanonicalError> {
            self.value(v)
        }
        fn end(self) -> Result<(), CanonicalError> {
            self.close()
        }
    }
    impl ser::SerializeStruct for Object<'_> {
        type Ok = ();
        type Error = CanonicalError;
        fn serialize_field<T: Serialize + ?Sized>(
            &mut self,
            key: &'static str,
            v: &T,
        ) -> Result<(), CanonicalError> {
            self.key(Cow::Borrowed(key));
            self.value(v)
        }
        fn end(self) -> Result<(), CanonicalError> {
            self.close()
        }
    }
    impl ser::SerializeStructVariant for Object<'_> {
        type Ok = ();
        type Error = CanonicalError;
        fn serialize_field<T: Serialize + ?Sized>(
            &mut self,
            key: &'static str,
            v: &T,
        ) -> Result<(), CanonicalError> {
            self.key(Cow::Borrowed(key));
            self.value(v)
        }
        fn end(self) -> Result<(), CanonicalError> {
            self.close()
        }
    }

    /// Object keys must be strings (as in JSON); anything else is refused.
    struct KeyString;

    fn not_a_string() -> CanonicalError {
        CanonicalError::Serialize("object keys must be strings".into())
    }

    impl ser::Serializer for KeyString {
        type Ok = String;
        type Error = CanonicalError;
        type SerializeSeq = ser::Impossible<String, CanonicalError>;
        type SerializeTuple = ser::Impossible<String, CanonicalError>;
        type SerializeTupleStruct = ser::Impossible<String, CanonicalError>;
        type SerializeTupleVariant = ser::Impossible<String, CanonicalError>;
        type SerializeMap = ser::Impossible<String, CanonicalError>;
        type SerializeStruct = ser::Impossible<String, CanonicalError>;
        type SerializeStructVariant = ser::Impossible<String, CanonicalError>;

        fn serialize_str(self, v: &str) -> Result<String, CanonicalError> {
            Ok(v.to_string())
        }
        fn serialize_char(self, v: char) -> Result<String, CanonicalError> {
            Ok(v.to_string())
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _name: &'static str,
            value: &T,
        ) -> Result<String, CanonicalError> {
            value.serialize(self)
        }
        fn serialize_unit_variant(
            self,
            _name: &'static str,
            _index: u32,
            variant: &'static str,
        ) -> Result<String, CanonicalError> {
            Ok(variant.to_string())
        }
        fn serialize_bool(self, _: bool) -> Result<String, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_i8(self, _: i8) -> Result<String, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_i16(self, _: i16) -> Result<String, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_i32(self, _: i32) -> Result<String, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_i64(self, _: i64) -> Result<String, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_u8(self, _: u8) -> Result<String, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_u16(self, _: u16) -> Result<String, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_u32(self, _: u32) -> Result<String, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_u64(self, _: u64) -> Result<String, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_f32(self, _: f32) -> Result<String, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_f64(self, _: f64) -> Result<String, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_bytes(self, _: &[u8]) -> Result<String, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_none(self) -> Result<String, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_unit(self) -> Result<String, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_unit_struct(self, _: &'static str) -> Result<String, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<String, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStruct, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, CanonicalError> {
            Err(not_a_string())
        }
    }
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
    fn serializer_matches_the_value_encoder() {
        let cases = [
            r#"{"b":[1,-2,true,null],"a":"q\"\\\n\u00e9","A":{}}"#,
            r#"{"\ud83d\ude00":1,"\uffff":2,"z":{"y":{"x":[{"b":1,"a":[]}]}},"":""}"#,
            r#"[18446744073709551615,-9223372036854775808,0]"#,
            r##"{"\"":1,"#":2,"\\":3,"]":4}"##,
            r#"[[],{},"",null]"#,
        ];
        for case in cases {
            let v: Value = serde_json::from_str(case).unwrap();
            assert_eq!(to_vec_of(&v).unwrap(), to_vec(&v).unwrap(), "{case}");
        }
        assert!(matches!(
            to_vec_of(&json!([1, 2.5])),
            Err(CanonicalError::NonInteger(_))
        ));
    }

    #[test]
    fn serializer_sorts_struct_fields_and_refuses_duplicate_keys() {
        #[derive(serde::Serialize)]
        struct S {
            zeta: u8,
            alpha: Vec<u8>,
            #[serde(flatten)]
            rest: std::collections::BTreeMap<String, Value>,
        }
        let mut rest = std::collections::BTreeMap::new();
        rest.insert("mid".to_string(), json!({"q": "\"", "b": null}));
        let s = S {
            zeta: 1,
            alpha: vec![2, 3],
            rest,
        };
        assert_eq!(
            to_vec_of(&s).unwrap(),
            br#"{"alpha":[2,3],"mid":{"b":null,"q":"\""},"zeta":1}"#
        );
        let mut dup = std::collections::BTreeMap::new();
        dup.insert("zeta".to_string(), json!(2));
        let s = S {
            zeta: 1,
            alpha: vec![],
            rest: dup,
        };
        assert!(matches!(to_vec_of(&s), Err(CanonicalError::Serialize(_))));
    }

    #[test]
    fn nested_and_empty_containers() {
        assert_eq!(
            canon(r#" { "b" : [ [ ], { } , { "y":[{"b":1,"a":2}] } ], "a" : null } "#).unwrap(),
            r#"{"a":null,"b":[[],{},{"y":[{"a":2,"b":1}]}]}"#
        );
    }
}
