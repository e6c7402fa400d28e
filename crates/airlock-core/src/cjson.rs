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

use std::borrow::Cow;

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
    let mut st = ser::State::default();
    st.out.reserve(4096);
    value.serialize(ser::Canonical { st: &mut st })?;
    Ok(st.out)
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
        Value::String(s) => {
            write_string(s, out);
        }
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

/// Write `s` as a canonical JSON string; returns whether anything needed escaping.
fn write_string(s: &str, out: &mut Vec<u8>) -> bool {
    let mut escaped = false;
    out.reserve(s.len() + 2);
    out.push(b'"');
    // Copy runs between the two escaped bytes in bulk.
    let mut rest = s.as_bytes();
    while let Some(i) = rest.iter().position(|&b| b == b'"' || b == b'\\') {
        let (run, tail) = rest.split_at(i);
        out.extend_from_slice(run);
        out.push(b'\\');
        escaped = true;
        rest = tail;
        if let Some((&byte, tail)) = rest.split_first() {
            out.push(byte);
            rest = tail;
        }
    }
    out.extend_from_slice(rest);
    out.push(b'"');
    escaped
}

/// A `serde::Serializer` that writes canonical JSON directly.
///
/// Objects are written in the order serde gives their entries, remembering where each key and
/// entry lies in the output; if the keys were not already in order (`BTreeMap`s are, struct
/// fields often are not), the object's bytes are rearranged once at its end. Keys are compared
/// where they lie in the output, so writing a key allocates nothing.
mod ser {
    use std::borrow::Cow;
    use std::cmp::Ordering;
    use std::io::Write as _;

    use serde::ser::{self, Serialize};

    use super::{CanonicalError, write_string};

    impl ser::Error for CanonicalError {
        fn custom<T: std::fmt::Display>(msg: T) -> Self {
            CanonicalError::Serialize(msg.to_string())
        }
    }

    /// Output plus bookkeeping shared by every nesting level.
    #[derive(Default)]
    pub(super) struct State {
        pub(super) out: Vec<u8>,
        /// Entries of the objects currently open, innermost last.
        entries: Vec<Entry>,
        /// Reused when an object has to be reordered.
        scratch: Vec<u8>,
    }

    /// One `"key":value` of an open object, as positions in `out`.
    #[derive(Clone, Copy)]
    struct Entry {
        /// Opening quote of the key.
        start: usize,
        /// The key's bytes as written (escaped), without quotes.
        key: (usize, usize),
        /// Whether the key needed escaping (then its written form is not its raw form).
        escaped: bool,
        /// End of the value.
        end: usize,
    }

    fn raw_key<'o>(out: &'o [u8], e: &Entry) -> Cow<'o, [u8]> {
        super::unescaped(out.get(e.key.0..e.key.1).unwrap_or_default(), e.escaped)
    }

    /// Code-point order of the raw keys (UTF-8 byte order is code-point order).
    fn key_order(out: &[u8], a: &Entry, b: &Entry) -> Ordering {
        raw_key(out, a).cmp(&raw_key(out, b))
    }

    pub(super) struct Canonical<'a> {
        pub(super) st: &'a mut State,
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
            self.st
                .out
                .extend_from_slice(if v { b"true" } else { b"false" });
            Ok(())
        }
        fn serialize_i8(self, v: i8) -> Result<(), CanonicalError> {
            number(&mut self.st.out, v);
            Ok(())
        }
        fn serialize_i16(self, v: i16) -> Result<(), CanonicalError> {
            number(&mut self.st.out, v);
            Ok(())
        }
        fn serialize_i32(self, v: i32) -> Result<(), CanonicalError> {
            number(&mut self.st.out, v);
            Ok(())
        }
        fn serialize_i64(self, v: i64) -> Result<(), CanonicalError> {
            number(&mut self.st.out, v);
            Ok(())
        }
        fn serialize_i128(self, v: i128) -> Result<(), CanonicalError> {
            number(&mut self.st.out, v);
            Ok(())
        }
        fn serialize_u8(self, v: u8) -> Result<(), CanonicalError> {
            number(&mut self.st.out, v);
            Ok(())
        }
        fn serialize_u16(self, v: u16) -> Result<(), CanonicalError> {
            number(&mut self.st.out, v);
            Ok(())
        }
        fn serialize_u32(self, v: u32) -> Result<(), CanonicalError> {
            number(&mut self.st.out, v);
            Ok(())
        }
        fn serialize_u64(self, v: u64) -> Result<(), CanonicalError> {
            number(&mut self.st.out, v);
            Ok(())
        }
        fn serialize_u128(self, v: u128) -> Result<(), CanonicalError> {
            number(&mut self.st.out, v);
            Ok(())
        }
        fn serialize_f32(self, v: f32) -> Result<(), CanonicalError> {
            Err(CanonicalError::NonInteger(v.to_string()))
        }
        fn serialize_f64(self, v: f64) -> Result<(), CanonicalError> {
            Err(CanonicalError::NonInteger(v.to_string()))
        }
        fn serialize_char(self, v: char) -> Result<(), CanonicalError> {
            write_string(v.encode_utf8(&mut [0u8; 4]), &mut self.st.out);
            Ok(())
        }
        fn serialize_str(self, v: &str) -> Result<(), CanonicalError> {
            write_string(v, &mut self.st.out);
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
            self.st.out.extend_from_slice(b"null");
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
            self.st.out.push(b'{');
            write_string(variant, &mut self.st.out);
            self.st.out.push(b':');
            value.serialize(Canonical { st: &mut *self.st })?;
            self.st.out.push(b'}');
            Ok(())
        }
        fn serialize_seq(self, _len: Option<usize>) -> Result<Seq<'a>, CanonicalError> {
            self.st.out.push(b'[');
            Ok(Seq {
                st: self.st,
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
            self.st.out.push(b'{');
            write_string(variant, &mut self.st.out);
            self.st.out.extend_from_slice(b":[");
            Ok(Seq {
                st: self.st,
                first: true,
                close: b"]}",
            })
        }
        fn serialize_map(self, _len: Option<usize>) -> Result<Object<'a>, CanonicalError> {
            Ok(Object::open(self.st, b"}"))
        }
        fn serialize_struct(
            self,
            _name: &'static str,
            _len: usize,
        ) -> Result<Object<'a>, CanonicalError> {
            Ok(Object::open(self.st, b"}"))
        }
        fn serialize_struct_variant(
            self,
            _name: &'static str,
            _index: u32,
            variant: &'static str,
            _len: usize,
        ) -> Result<Object<'a>, CanonicalError> {
            self.st.out.push(b'{');
            write_string(variant, &mut self.st.out);
            self.st.out.push(b':');
            Ok(Object::open(self.st, b"}}"))
        }
    }

    pub(super) struct Seq<'a> {
        st: &'a mut State,
        first: bool,
        close: &'static [u8],
    }

    impl Seq<'_> {
        fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonicalError> {
            if !self.first {
                self.st.out.push(b',');
            }
            self.first = false;
            value.serialize(Canonical { st: &mut *self.st })
        }
        fn close(self) -> Result<(), CanonicalError> {
            self.st.out.extend_from_slice(self.close);
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

    /// An object being written; its entries are `st.entries[base..]`.
    pub(super) struct Object<'a> {
        st: &'a mut State,
        base: usize,
        body_start: usize,
        in_order: bool,
        close: &'static [u8],
    }

    impl<'a> Object<'a> {
        fn open(st: &'a mut State, close: &'static [u8]) -> Self {
            st.out.push(b'{');
            Object {
                base: st.entries.len(),
                body_start: st.out.len(),
                st,
                in_order: true,
                close,
            }
        }

        /// Called after the key string (quotes included) was written from `start`.
        fn key_written(&mut self, start: usize, escaped: bool) {
            let st = &mut *self.st;
            let entry = Entry {
                start,
                key: (start + 1, st.out.len().saturating_sub(1)),
                escaped,
                end: 0,
            };
            st.out.push(b':');
            if st.entries.len() > self.base
                && let Some(last) = st.entries.last()
                && key_order(&st.out, last, &entry) != Ordering::Less
            {
                // Not strictly increasing: out of order, or a duplicate (found at close).
                self.in_order = false;
            }
            st.entries.push(entry);
        }

        fn begin_key(&mut self) -> usize {
            if self.st.entries.len() > self.base {
                self.st.out.push(b',');
            }
            self.st.out.len()
        }

        fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonicalError> {
            value.serialize(Canonical { st: &mut *self.st })?;
            let end = self.st.out.len();
            let has_key = self.st.entries.len() > self.base;
            match self.st.entries.last_mut() {
                Some(entry) if has_key => {
                    entry.end = end;
                    Ok(())
                }
                _ => Err(CanonicalError::Serialize(
                    "object value without a key".into(),
                )),
            }
        }

        fn close(self) -> Result<(), CanonicalError> {
            let State {
                out,
                entries,
                scratch,
            } = &mut *self.st;
            if !self.in_order {
                let mine = entries.get_mut(self.base..).unwrap_or_default();
                mine.sort_by(|a, b| key_order(out, a, b));
                if let Some(w) = mine
                    .windows(2)
                    .find(|w| key_order(out, &w[0], &w[1]) == Ordering::Equal)
                {
                    let key = String::from_utf8_lossy(&raw_key(out, &w[0])).into_owned();
                    return Err(CanonicalError::Serialize(format!(
                        "object has the key {key:?} twice"
                    )));
                }
                scratch.clear();
                scratch.extend_from_slice(out.get(self.body_start..).unwrap_or_default());
                out.truncate(self.body_start);
                for (i, e) in mine.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let range = scratch
                        .get(e.start - self.body_start..e.end - self.body_start)
                        .ok_or_else(|| CanonicalError::Serialize("object entry lost".into()))?;
                    out.extend_from_slice(range);
                }
            }
            entries.truncate(self.base);
            out.extend_from_slice(self.close);
            Ok(())
        }
    }

    impl ser::SerializeMap for Object<'_> {
        type Ok = ();
        type Error = CanonicalError;
        fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), CanonicalError> {
            let start = self.begin_key();
            let escaped = key.serialize(KeyWriter {
                out: &mut self.st.out,
            })?;
            self.key_written(start, escaped);
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
            let start = self.begin_key();
            let escaped = write_string(key, &mut self.st.out);
            self.key_written(start, escaped);
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
            ser::SerializeStruct::serialize_field(self, key, v)
        }
        fn end(self) -> Result<(), CanonicalError> {
            self.close()
        }
    }

    /// Writes an object key (which must be a string, as in JSON); returns whether it needed
    /// escaping.
    struct KeyWriter<'a> {
        out: &'a mut Vec<u8>,
    }

    fn not_a_string() -> CanonicalError {
        CanonicalError::Serialize("object keys must be strings".into())
    }

    impl ser::Serializer for KeyWriter<'_> {
        type Ok = bool;
        type Error = CanonicalError;
        type SerializeSeq = ser::Impossible<bool, CanonicalError>;
        type SerializeTuple = ser::Impossible<bool, CanonicalError>;
        type SerializeTupleStruct = ser::Impossible<bool, CanonicalError>;
        type SerializeTupleVariant = ser::Impossible<bool, CanonicalError>;
        type SerializeMap = ser::Impossible<bool, CanonicalError>;
        type SerializeStruct = ser::Impossible<bool, CanonicalError>;
        type SerializeStructVariant = ser::Impossible<bool, CanonicalError>;

        fn serialize_str(self, v: &str) -> Result<bool, CanonicalError> {
            Ok(write_string(v, self.out))
        }
        fn serialize_char(self, v: char) -> Result<bool, CanonicalError> {
            Ok(write_string(v.encode_utf8(&mut [0u8; 4]), self.out))
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _name: &'static str,
            value: &T,
        ) -> Result<bool, CanonicalError> {
            value.serialize(self)
        }
        fn serialize_unit_variant(
            self,
            _name: &'static str,
            _index: u32,
            variant: &'static str,
        ) -> Result<bool, CanonicalError> {
            Ok(write_string(variant, self.out))
        }
        fn serialize_bool(self, _: bool) -> Result<bool, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_i8(self, _: i8) -> Result<bool, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_i16(self, _: i16) -> Result<bool, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_i32(self, _: i32) -> Result<bool, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_i64(self, _: i64) -> Result<bool, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_u8(self, _: u8) -> Result<bool, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_u16(self, _: u16) -> Result<bool, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_u32(self, _: u32) -> Result<bool, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_u64(self, _: u64) -> Result<bool, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_f32(self, _: f32) -> Result<bool, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_f64(self, _: f64) -> Result<bool, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_bytes(self, _: &[u8]) -> Result<bool, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_none(self) -> Result<bool, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<bool, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_unit(self) -> Result<bool, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_unit_struct(self, _: &'static str) -> Result<bool, CanonicalError> {
            Err(not_a_string())
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<bool, CanonicalError> {
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

/// Whether `text` is JSON exactly as [`to_vec`] would write the value it spells, and JSON that
/// readers accept, so that `canonicalize(text) == text`.
///
/// A single forward scan with no tree built: metadata written by a TUF implementation is
/// usually canonical already, and then the received bytes are the signed message itself.
/// Anything this cannot vouch for is `false` (the caller canonicalises instead): whitespace,
/// keys out of order or repeated, any escape but `\\` and `\"`, raw control characters (the
/// canonical form has them, but JSON readers refuse them), numbers that are not integers within
/// 64 bits, `-0`, leading zeros, nesting deeper than serde_json reads. (A `str`, so UTF-8
/// already.)
pub fn is_canonical(text: &str) -> bool {
    let mut scan = Scan {
        b: text.as_bytes(),
        i: 0,
    };
    scan.value(0) && scan.i == text.len()
}

/// When `text` is a canonical object (as [`is_canonical`] says): its members in order, each
/// key (unescaped) with its value as written. One scan checks a whole metadata file and finds
/// its `signed` part.
pub fn canonical_members(text: &str) -> Option<Vec<(String, &str)>> {
    let mut scan = Scan {
        b: text.as_bytes(),
        i: 0,
    };
    let mut found = Vec::new();
    let whole =
        scan.peek() == Some(b'{') && scan.object(1, Some(&mut found)) && scan.i == text.len();
    if !whole {
        return None;
    }
    found
        .into_iter()
        .map(|(key, start, end)| {
            let key = String::from_utf8(scan.key(key).into_owned()).ok()?;
            Some((key, text.get(start..end)?))
        })
        .collect()
}

/// serde_json's own nesting limit: deeper input is not JSON it reads.
const MAX_DEPTH: usize = 128;

/// A string's content as written: `b[start..end]`, and whether it holds an escape.
#[derive(Clone, Copy)]
struct Written {
    start: usize,
    end: usize,
    escaped: bool,
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn value(&mut self, depth: usize) -> bool {
        match self.peek() {
            Some(b'{') => depth < MAX_DEPTH && self.object(depth + 1, None),
            Some(b'[') => depth < MAX_DEPTH && self.array(depth + 1),
            Some(b'"') => self.string().is_some(),
            Some(b'n') => self.word(b"null"),
            Some(b't') => self.word(b"true"),
            Some(b'f') => self.word(b"false"),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            _ => false,
        }
    }

    fn word(&mut self, w: &[u8]) -> bool {
        let found = self.b.get(self.i..).is_some_and(|rest| rest.starts_with(w));
        if found {
            self.i += w.len();
        }
        found
    }

    /// An integer as `to_vec` writes one; a fraction or exponent after it fails in the caller,
    /// which finds no `,`, `]`, `}` or end there.
    fn integer(&mut self) -> bool {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        let Some(text) = self
            .b
            .get(start..self.i)
            .and_then(|t| std::str::from_utf8(t).ok())
        else {
            return false;
        };
        match self.b.get(digits..self.i) {
            None | Some([]) => false,
            // `0` alone; never `-0` (serde_json reads it as a float) nor a leading zero.
            Some([b'0', ..]) => text == "0",
            Some(_) => text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok(),
        }
    }

    /// At an opening quote: the string's content, when written canonically.
    fn string(&mut self) -> Option<Written> {
        let start = self.i + 1;
        let mut j = start;
        let mut escaped = false;
        loop {
            j += next_special(self.b.get(j..)?)?;
            match self.b.get(j)? {
                b'"' => {
                    self.i = j + 1;
                    return Some(Written {
                        start,
                        end: j,
                        escaped,
                    });
                }
                b'\\' if matches!(self.b.get(j + 1), Some(b'"' | b'\\')) => {
                    escaped = true;
                    j += 2;
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: usize) -> bool {
        self.i += 1;
        if self.peek() == Some(b']') {
            self.i += 1;
            return true;
        }
        loop {
            if !self.value(depth) {
                return false;
            }
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return true;
                }
                _ => return false,
            }
        }
    }

    /// An object; with `members`, each key and where its value lies are recorded there.
    fn object(
        &mut self,
        depth: usize,
        mut members: Option<&mut Vec<(Written, usize, usize)>>,
    ) -> bool {
        self.i += 1;
        if self.peek() == Some(b'}') {
            self.i += 1;
            return true;
        }
        let mut previous: Option<Written> = None;
        loop {
            if self.peek() != Some(b'"') {
                return false;
            }
            let Some(key) = self.string() else {
                return false;
            };
            // Strictly increasing: in order, and no key twice.
            if previous.is_some_and(|p| self.key(p) >= self.key(key)) {
                return false;
            }
            previous = Some(key);
            if self.peek() != Some(b':') {
                return false;
            }
            self.i += 1;
            let start = self.i;
            if !self.value(depth) {
                return false;
            }
            if let Some(members) = members.as_deref_mut() {
                members.push((key, start, self.i));
            }
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return true;
                }
                _ => return false,
            }
        }
    }

    /// A key's raw bytes: the order `to_vec` sorts by.
    fn key(&self, w: Written) -> Cow<'_, [u8]> {
        unescaped(self.b.get(w.start..w.end).unwrap_or_default(), w.escaped)
    }
}

/// Where `s` first has a `"`, a `\` or a control character: eight bytes per step, since
/// strings (paths and hex digests) are most of a large metadata file.
fn next_special(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte that is zero in `v`. Only the lowest flagged byte is exact (a
    // borrow can flag bytes above a true one), and the lowest is all that is used.
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut chunks = s.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        // Always eight bytes; zeros would only make a false hit, which the caller refuses.
        let word = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or([0; 8]));
        let hits = zero_bytes(word ^ (ONES * u64::from(b'"')))
            | zero_bytes(word ^ (ONES * u64::from(b'\\')))
            | (word.wrapping_sub(ONES * 0x20) & !word & HIGH);
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|i| at + i)
}

/// A string's raw bytes from its canonical written form (`\x` stands for `x`).
fn unescaped(written: &[u8], escaped: bool) -> Cow<'_, [u8]> {
    if !escaped {
        return Cow::Borrowed(written);
    }
    let mut raw = Vec::with_capacity(written.len());
    let mut bytes = written.iter();
    while let Some(&b) = bytes.next() {
        if b == b'\\' {
            raw.extend(bytes.next());
        } else {
            raw.push(b);
        }
    }
    Cow::Owned(raw)
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

        // Reordering with keys whose escaped form sorts differently from their raw form
        // (`"` < `#` raw, but `\"` > `#` escaped): the raw order must win.
        let mut tricky = std::collections::BTreeMap::new();
        for (k, v) in [("\"", 1), ("#", 2), ("\\", 3), ("]", 4), ("zz", 5)] {
            tricky.insert(k.to_string(), json!({"n": v, "\"k": [k]}));
        }
        let s = S {
            zeta: 1,
            alpha: vec![],
            rest: tricky,
        };
        let via_value = to_vec(&serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(to_vec_of(&s).unwrap(), via_value);
    }

    /// The promise callers rely on: whatever `is_canonical` accepts re-encodes to itself.
    fn holds(text: &[u8]) {
        let Ok(text) = std::str::from_utf8(text) else {
            return;
        };
        if is_canonical(text) {
            assert_eq!(
                canonicalize(text.as_bytes()).as_deref().ok(),
                Some(text.as_bytes()),
                "{text:?} passed as canonical but re-encodes differently"
            );
        }
    }

    #[test]
    fn canonical_output_is_recognised_and_everything_else_is_not() {
        let written = [
            r#"{"A":{},"a":"q\"\\é","b":[1,-2,true,null]}"#,
            r#"{"":6,"Z":4,"z":3,"é":5,"😀":1}"#,
            "[18446744073709551615,-9223372036854775808,0,-1]",
            r##"{"\"":1,"#":2,"\\":3,"]":4}"##,
            r#"[[],{},"",null,false]"#,
            "0",
            "\"\"",
        ];
        for text in written {
            assert!(is_canonical(text), "{text}");
            holds(text.as_bytes());
        }
        let not = [
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,"\u0061":2}"#,
            r#"{"a": 1}"#,
            " {}",
            "{}\n",
            r#"["\u00e9"]"#,
            r#"["a\/b"]"#,
            r#"["\n"]"#,
            "[\"\u{1}\"]",
            "[1.0]",
            "[1e3]",
            "[-0]",
            "[01]",
            "[18446744073709551616]",
            "[-9223372036854775809]",
            "[1,]",
            "[,1]",
            "{\"a\":1,}",
            "[nul]",
            "[truex]",
            "\"unterminated",
            "{\"a\"}",
            "",
        ];
        for text in not {
            assert!(!is_canonical(text), "{text}");
        }
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(is_canonical(&deep(128)));
        assert!(!is_canonical(&deep(129)));
    }

    #[test]
    fn the_first_quote_backslash_or_control_character_is_found_at_every_offset() {
        for len in 0..40 {
            for at in 0..len {
                for special in [b'"', b'\\', 0x00, 0x1f] {
                    let mut s = vec![b'a'; len];
                    s[at] = special;
                    // Later specials and bytes just above the range must not hide the first.
                    if at + 1 < len {
                        s[at + 1] = b'"';
                    }
                    if at > 0 {
                        s[at - 1] = 0x20;
                    }
                    assert_eq!(next_special(&s), Some(at), "{len} {at} {special}");
                }
            }
            let plain: Vec<u8> = (0..len).map(|i| b' ' + (i % 90) as u8).collect();
            let expected = plain.iter().position(|&c| c == b'"' || c == b'\\');
            assert_eq!(next_special(&plain), expected);
            assert_eq!(next_special(&"é".repeat(len).into_bytes()), None);
        }
    }

    #[test]
    fn members_of_a_canonical_object() {
        let text = r#"{"\"q":[1,{"a":2}],"signatures":[],"signed":{"x":"y\\"}}"#;
        assert_eq!(
            canonical_members(text),
            Some(vec![
                ("\"q".to_string(), r#"[1,{"a":2}]"#),
                ("signatures".to_string(), "[]"),
                ("signed".to_string(), r#"{"x":"y\\"}"#),
            ])
        );
        assert_eq!(canonical_members("{}"), Some(vec![]));
        for not in [r#"{"b":1,"a":2}"#, r#"{"a":1} "#, "[1]", r#"{"a":1.5}"#, ""] {
            assert_eq!(canonical_members(not), None, "{not}");
        }
    }

    #[test]
    fn anything_accepted_as_canonical_re_encodes_to_itself() {
        use rand::{RngExt, SeedableRng};
        let seeds: [&[u8]; 3] = [
            br#"{"\"k":[1,-2,"x\\y"],"a":{"b":null,"c":true},"signed":{"_type":"targets","version":18446744073709551615}}"#,
            br#"[0,-1,"",{},[],{"":{"\\":"\""}}]"#,
            b"{\"a\":\"\xc3\xa9\xf0\x9f\x98\x80\",\"b\":[false,true,null]}",
        ];
        let alphabet = b"{}[]\",:\\-0123456789.eEabnulltruefalse \n\xc3\xa9\x01";
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        for _ in 0..20_000 {
            let mut text = seeds[rng.random_range(0..seeds.len())].to_vec();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..=text.len());
                let byte = alphabet[rng.random_range(0..alphabet.len())];
                match rng.random_range(0..3) {
                    0 => text.insert(at, byte),
                    1 if at < text.len() => {
                        text.remove(at);
                    }
                    _ if at < text.len() => text[at] = byte,
                    _ => {}
                }
            }
            holds(&text);
        }
    }

    #[test]
    fn nested_and_empty_containers() {
        assert_eq!(
            canon(r#" { "b" : [ [ ], { } , { "y":[{"b":1,"a":2}] } ], "a" : null } "#).unwrap(),
            r#"{"a":null,"b":[[],{},{"y":[{"a":2,"b":1}]}]}"#
        );
    }
}
