//! Canonical JSON compared byte for byte with securesystemslib's `encode_canonical`, live.

mod common;

use airlock_core::cjson;

const SCRIPT: &str = r#"
import json, sys
from securesystemslib.formats import encode_canonical
out = []
for text in json.load(sys.stdin):
    try:
        out.append(encode_canonical(json.loads(text)).encode("utf-8").hex())
    except Exception:
        out.append(None)
print(json.dumps(out))
"#;

fn fixtures() -> Vec<String> {
    let mut cases: Vec<String> = [
        r#"{}"#,
        r#"[]"#,
        r#""""#,
        r#"null"#,
        r#"true"#,
        r#"{"b":1,"a":2,"c":{"z":[],"y":{}}}"#,
        r#"{"quote":"a\"b","backslash":"a\\b","both":"\\\"","slash":"a\/b"}"#,
        r#"["\u0000\u0001\u0002\b\f\n\r\t\u000b\u001f\u007f\u0080\u009f"]"#,
        r#"{"é":1,"e":2,"E":3,"日本語":4,"\ud83d\ude00":5,"\uffff":6,"\ue000":7,"":8}"#,
        r#"["naïve café","Ελληνικά","𝄞 music","\u2028\u2029","zero\u200bwidth"]"#,
        r#"[0,-1,1,9223372036854775807,-9223372036854775808,18446744073709551615]"#,
        r#"[123456789012,-123456789012,4294967296,-4294967296]"#,
        r#"{"a":{"b":{"c":{"d":{"e":[1,[2,[3,[4,{"f":"g"}]]]]}}}}}"#,
        r#"{"signed":{"_type":"root","keys":{"k":{"keytype":"ed25519","keyval":{"public":"ab"}}},"version":1},"signatures":[]}"#,
        r#"[true,false,null,"true","null"]"#,
        r#"{"key with spaces":" value ","tab\tkey":"x","new\nline":"y"}"#,
        r#"1.5"#,
        r#"[1.0]"#,
        r#"{"x":1e3}"#,
        r#"{"x":-2.5E-3}"#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Every key order permutation of a small object, to exercise sorting.
    for (a, b, c) in [("a", "b", "c"), ("c", "a", "b"), ("b", "c", "a")] {
        cases.push(format!(r#"{{"{a}":1,"{b}":2,"{c}":3,"{a}{b}":4}}"#));
    }
    // Every ASCII control character and the escape-worthy ones, one string each.
    for c in 0u32..0x80 {
        cases.push(format!("[\"x\\u{c:04x}y\"]"));
    }
    cases
}

#[test]
fn matches_securesystemslib_encode_canonical() {
    let Some(python) = common::python() else {
        return;
    };
    let cases = fixtures();
    let input = serde_json::to_vec(&cases).unwrap();
    let out = common::run_python(&python, SCRIPT, &input);
    let expected: Vec<Option<String>> = serde_json::from_slice(&out).unwrap();
    assert_eq!(expected.len(), cases.len());
    let mut compared = 0;
    for (case, want) in cases.iter().zip(expected) {
        let ours = cjson::canonicalize(case.as_bytes()).map(hex::encode).ok();
        assert_eq!(ours, want, "canonical form differs for input {case}");
        // The direct serializer gives the same bytes as the JSON-tree encoder.
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(case) {
            let direct = cjson::to_vec_of(&value).map(hex::encode).ok();
            assert_eq!(direct, want, "serializer differs for input {case}");
        }
        compared += 1;
    }
    assert!(compared > 100);
}
