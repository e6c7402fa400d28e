//! RFC 7512 PKCS#11 URIs: `pkcs11:token=Release%20keys;object=root?module-path=/usr/lib/...`.
//!
//! Every attribute RFC 7512 defines is understood; anything else (including vendor `x-`
//! attributes, whose meaning we cannot know) is refused, because an attribute silently ignored
//! could make the URI select another key than its author meant. Values are percent-decoded;
//! a malformed escape, a character the RFC does not allow, or an attribute given twice is refused.

use std::fmt;
use std::path::PathBuf;

use zeroize::Zeroizing;

/// The kind of object a URI's `type` attribute names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectType {
    Public,
    Private,
}

/// Where a URI says the PIN is (RFC 7512 `pin-value` / `pin-source`).
#[derive(Clone)]
pub enum UriPin {
    /// `pin-value`: the PIN itself.
    Value(Zeroizing<String>),
    /// `pin-source=file:/path` or `pin-source=/path`: the first line of a file.
    File(PathBuf),
}

impl fmt::Debug for UriPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UriPin::Value(_) => f.write_str("Value(***)"),
            UriPin::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

/// A parsed PKCS#11 URI. `None` attributes match anything.
#[derive(Clone, Debug, Default)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub manufacturer: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub library_manufacturer: Option<String>,
    pub library_description: Option<String>,
    pub library_version: Option<(u8, u8)>,
    pub slot_id: Option<u64>,
    pub slot_description: Option<String>,
    pub slot_manufacturer: Option<String>,
    /// CKA_LABEL of the key.
    pub object: Option<String>,
    /// CKA_ID of the key (raw bytes).
    pub id: Option<Vec<u8>>,
    pub object_type: Option<ObjectType>,
    pub module_path: Option<PathBuf>,
    pub module_name: Option<String>,
    pub pin: Option<UriPin>,
    /// The URI as written, with a `pin-value` replaced by `***`: safe for messages.
    redacted: String,
}

/// Why a URI was refused; the message says which attribute and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UriError(String);

fn err(msg: impl Into<String>) -> UriError {
    UriError(msg.into())
}

/// Characters RFC 7512 allows unescaped in every attribute value (unreserved and
/// pk11-res-avail).
fn common_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~:[]@!$'()*+,=".contains(&c)
}

fn decode(name: &str, raw: &str, query: bool) -> Result<Vec<u8>, UriError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        if c == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| {
                    err(format!(
                        "attribute {name}: malformed percent-escape at {:?}",
                        raw.get(i..).unwrap_or("")
                    ))
                })?;
            let byte = u8::from_str_radix(hex, 16)
                .map_err(|_| err(format!("attribute {name}: malformed percent-escape")))?;
            out.push(byte);
            i += 3;
            continue;
        }
        let allowed = common_char(c)
            || if query {
                b"/?|".contains(&c)
            } else {
                c == b'&'
            };
        if !allowed {
            return Err(err(format!(
                "attribute {name}: character {:?} must be percent-encoded",
                char::from(c)
            )));
        }
        out.push(c);
        i += 1;
    }
    Ok(out)
}

fn text(name: &str, bytes: Vec<u8>) -> Result<String, UriError> {
    String::from_utf8(bytes).map_err(|_| err(format!("attribute {name}: not UTF-8")))
}

fn set<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), UriError> {
    if slot.is_some() {
        return Err(err(format!("attribute {name} is given twice")));
    }
    *slot = Some(value);
    Ok(())
}

fn digits(name: &str, s: &str) -> Result<u64, UriError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(format!("attribute {name}: {s:?} is not a number")));
    }
    s.parse()
        .map_err(|_| err(format!("attribute {name}: {s:?} is too large")))
}

impl Pkcs11Uri {
    pub fn parse(uri: &str) -> Result<Pkcs11Uri, UriError> {
        let rest = uri
            .strip_prefix("pkcs11:")
            .ok_or_else(|| err("a PKCS#11 URI starts with pkcs11:"))?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut u = Pkcs11Uri::default();
        let mut redacted_query = Vec::new();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, raw) = attr
                .split_once('=')
                .ok_or_else(|| err(format!("path attribute {attr:?} has no '='")))?;
            let v = decode(name, raw, false)?;
            match name {
                "token" => set(&mut u.token, name, text(name, v)?)?,
                "manufacturer" => set(&mut u.manufacturer, name, text(name, v)?)?,
                "serial" => set(&mut u.serial, name, text(name, v)?)?,
                "model" => set(&mut u.model, name, text(name, v)?)?,
                "library-manufacturer" => set(&mut u.library_manufacturer, name, text(name, v)?)?,
                "library-description" => set(&mut u.library_description, name, text(name, v)?)?,
                "library-version" => {
                    let s = text(name, v)?;
                    let (major, minor) = s.split_once('.').unwrap_or((&s, "0"));
                    let byte = |x: &str| {
                        u8::try_from(digits(name, x)?)
                            .map_err(|_| err(format!("attribute {name}: {s:?} is out of range")))
                    };
                    set(&mut u.library_version, name, (byte(major)?, byte(minor)?))?
                }
                "slot-id" => set(&mut u.slot_id, name, digits(name, &text(name, v)?)?)?,
                "slot-description" => set(&mut u.slot_description, name, text(name, v)?)?,
                "slot-manufacturer" => set(&mut u.slot_manufacturer, name, text(name, v)?)?,
                "object" => set(&mut u.object, name, text(name, v)?)?,
                "id" => set(&mut u.id, name, v)?,
                "type" => {
                    let t = match text(name, v)?.as_str() {
                        "private" => ObjectType::Private,
                        "public" => ObjectType::Public,
                        other @ ("cert" | "secret-key" | "data") => {
                            return Err(err(format!(
                                "type={other}: only a key pair (type=private or type=public) \
                                 can sign"
                            )));
                        }
                        other => {
                            return Err(err(format!(
                                "type={other:?} is not a PKCS#11 object type (public, private, \
                                 cert, secret-key, data)"
                            )));
                        }
                    };
                    set(&mut u.object_type, name, t)?
                }
                other => return Err(unknown(other, "path")),
            }
        }
        for attr in query.into_iter().flat_map(|q| q.split('&')) {
            if attr.is_empty() {
                continue;
            }
            let (name, raw) = attr
                .split_once('=')
                .ok_or_else(|| err(format!("query attribute {attr:?} has no '='")))?;
            let v = decode(name, raw, true)?;
            match name {
                "module-path" => {
                    let p = PathBuf::from(text(name, v)?);
                    if !p.is_absolute() {
                        return Err(err(format!(
                            "module-path={}: give the module's absolute path",
                            p.display()
                        )));
                    }
                    set(&mut u.module_path, name, p)?
                }
                "module-name" => {
                    let n = text(name, v)?;
                    if n.is_empty() || n.contains('/') {
                        return Err(err(format!(
                            "module-name={n:?}: a module name is a file name without '/' (use \
                             module-path for a path)"
                        )));
                    }
                    set(&mut u.module_name, name, n)?
                }
                "pin-value" => {
                    let pin = Zeroizing::new(text(name, v)?);
                    if u.pin.is_some() {
                        return Err(err("give pin-value or pin-source, not both or twice"));
                    }
                    u.pin = Some(UriPin::Value(pin));
                    redacted_query.push("pin-value=***".to_string());
                    continue;
                }
                "pin-source" => {
                    let src = text(name, v)?;
                    let path = if let Some(p) = src.strip_prefix("file://") {
                        PathBuf::from(p)
                    } else if let Some(p) = src.strip_prefix("file:") {
                        PathBuf::from(p)
                    } else if src.starts_with('|') {
                        return Err(err(format!(
                            "pin-source={src}: running a program for the PIN is not supported; \
                             use a file (pin-source=file:/path), a prompt, an environment \
                             variable or a file descriptor"
                        )));
                    } else {
                        PathBuf::from(&src)
                    };
                    if !path.is_absolute() {
                        return Err(err(format!("pin-source={src}: give a file:/absolute/path")));
                    }
                    if u.pin.is_some() {
                        return Err(err("give pin-value or pin-source, not both or twice"));
                    }
                    u.pin = Some(UriPin::File(path));
                }
                other => return Err(unknown(other, "query")),
            }
            redacted_query.push(attr.to_string());
        }
        u.redacted = if query.is_some() {
            format!("pkcs11:{path}?{}", redacted_query.join("&"))
        } else {
            format!("pkcs11:{path}")
        };
        Ok(u)
    }

    /// The URI as written, with a `pin-value` hidden: what error messages show.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// A URI naming the key `label`/`id` on `token` through the same module: what `airlock key
    /// list` prints for each key, ready for `--key`.
    pub fn for_key(&self, token: &str, label: Option<&str>, id: &[u8]) -> String {
        let mut path = vec![format!("token={}", encode(token.as_bytes()))];
        if let Some(l) = label.filter(|l| !l.is_empty()) {
            path.push(format!("object={}", encode(l.as_bytes())));
        }
        if !id.is_empty() {
            path.push(format!("id={}", encode_all(id)));
        }
        let mut out = format!("pkcs11:{}", path.join(";"));
        let mut query = Vec::new();
        if let Some(p) = &self.module_path {
            query.push(format!(
                "module-path={}",
                encode_query(p.to_string_lossy().as_bytes())
            ));
        } else if let Some(n) = &self.module_name {
            query.push(format!("module-name={}", encode_query(n.as_bytes())));
        }
        if let Some(UriPin::File(p)) = &self.pin {
            query.push(format!(
                "pin-source=file:{}",
                encode_query(p.to_string_lossy().as_bytes())
            ));
        }
        if !query.is_empty() {
            out.push('?');
            out.push_str(&query.join("&"));
        }
        out
    }
}

fn unknown(name: &str, part: &str) -> UriError {
    if name.starts_with("x-") {
        err(format!(
            "vendor attribute {name} is not supported (its meaning is the vendor's; ignoring it \
             could select another key)"
        ))
    } else {
        err(format!(
            "unknown {part} attribute {name:?} (RFC 7512 defines token, manufacturer, serial, \
             model, library-manufacturer, library-description, library-version, slot-id, \
             slot-description, slot-manufacturer, object, id, type; and in the query \
             module-path, module-name, pin-source, pin-value)"
        ))
    }
}

fn encode(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        if common_char(b) && b != b'=' {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn encode_query(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        if common_char(b) || b == b'/' {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// Key ids are bytes: every one escaped, as RFC 7512's examples write them.
fn encode_all(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc7512_examples_and_decodes() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;\
             model=1.0;object=my-certificate;type=private;id=%01%02;serial=\
             ?pin-source=file:/etc/token_pin&module-path=/usr/lib/softhsm/libsofthsm2.so",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("The Software PKCS#11 Softtoken"));
        assert_eq!(u.manufacturer.as_deref(), Some("Snake Oil, Inc."));
        assert_eq!(u.object.as_deref(), Some("my-certificate"));
        assert_eq!(u.id.as_deref(), Some(&[1u8, 2][..]));
        assert_eq!(u.serial.as_deref(), Some(""));
        assert_eq!(u.object_type, Some(ObjectType::Private));
        assert!(
            matches!(&u.pin, Some(UriPin::File(p)) if p == std::path::Path::new("/etc/token_pin"))
        );
        assert_eq!(
            u.module_path.as_deref(),
            Some(std::path::Path::new("/usr/lib/softhsm/libsofthsm2.so"))
        );
        let u = Pkcs11Uri::parse("pkcs11:slot-id=7;library-version=2.6;object=a&b").unwrap();
        assert_eq!(u.slot_id, Some(7));
        assert_eq!(u.library_version, Some((2, 6)));
        assert_eq!(u.object.as_deref(), Some("a&b"));
        assert!(Pkcs11Uri::parse("pkcs11:").is_ok());
    }

    #[test]
    fn refuses_unknown_and_malformed() {
        for (uri, says) in [
            ("pkcs11:tokn=x", "unknown path attribute \"tokn\""),
            ("pkcs11:x-vendor=1", "vendor attribute x-vendor"),
            (
                "pkcs11:token=a?modul-path=/x",
                "unknown query attribute \"modul-path\"",
            ),
            ("pkcs11:token=a%2", "malformed percent-escape"),
            ("pkcs11:token=a%zz", "malformed percent-escape"),
            ("pkcs11:token=a b", "must be percent-encoded"),
            ("pkcs11:token=a/b", "must be percent-encoded"),
            ("pkcs11:token=a;token=b", "token is given twice"),
            ("pkcs11:token", "has no '='"),
            ("pkcs11:type=cert", "only a key pair"),
            ("pkcs11:type=key", "not a PKCS#11 object type"),
            ("pkcs11:slot-id=x", "not a number"),
            ("pkcs11:token=%ff", "not UTF-8"),
            ("pkcs11:?module-path=lib.so", "absolute path"),
            ("pkcs11:?module-name=/lib.so", "module-path"),
            ("pkcs11:?pin-source=|/bin/askpass", "running a program"),
            ("pkcs11:?pin-value=1&pin-source=/p", "not both"),
            ("pkcs11:?pin-value=1&pin-value=2", "not both"),
            ("gpg:x", "starts with pkcs11:"),
        ] {
            let e = Pkcs11Uri::parse(uri).unwrap_err().to_string();
            assert!(e.contains(says), "{uri}: {e}");
        }
    }

    #[test]
    fn pin_value_never_shown() {
        let u = Pkcs11Uri::parse("pkcs11:token=t?pin-value=123456&module-path=/m.so").unwrap();
        assert_eq!(
            u.redacted(),
            "pkcs11:token=t?pin-value=***&module-path=/m.so"
        );
        assert!(!format!("{u:?}").contains("123456"));
    }

    #[test]
    fn key_uris_round_trip() {
        let base = Pkcs11Uri::parse("pkcs11:?module-path=/usr/lib/x%20y/m.so").unwrap();
        let s = base.for_key("Release keys", Some("root;1"), &[0xa1, 0x02]);
        assert_eq!(
            s,
            "pkcs11:token=Release%20keys;object=root%3B1;id=%A1%02?module-path=/usr/lib/x%20y/m.so"
        );
        let u = Pkcs11Uri::parse(&s).unwrap();
        assert_eq!(u.token.as_deref(), Some("Release keys"));
        assert_eq!(u.object.as_deref(), Some("root;1"));
        assert_eq!(u.id.as_deref(), Some(&[0xa1u8, 2][..]));
        assert_eq!(
            u.module_path.as_deref(),
            Some(std::path::Path::new("/usr/lib/x y/m.so"))
        );
    }
}
