//! A rebuilder's attestation: an in-toto Statement v1 whose predicate says what was rebuilt,
//! from which source, with which recipe and environment, and the digest obtained, in a DSSE
//! envelope signed with any Airlock signature scheme (docs/rebuild.md).
//!
//! Verification is strict: the envelope and statement must have exactly the members written
//! here (JSON with a key twice is refused), the payload type and predicate type must match, the
//! subject must be one target with one SHA-256 equal to the predicate's result, and a signature
//! by the given key must verify over the DSSE pre-authentication encoding. Anything else is
//! refused, naming the check: an attestation is counted towards a release only if it says
//! exactly one thing.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value};

use crate::crypto::{CryptoError, PublicKey, Signer};
use crate::rebuild::recipe::{RebuildInfo, RecipeError};

/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto Statement v1 type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// Airlock's rebuild predicate (a name, never fetched); a later layout gets a new version.
pub const PREDICATE_TYPE: &str = "https://example.invalid/airlock/rebuild/v1";
/// Largest envelope accepted, in bytes.
pub const MAX_ENVELOPE_LEN: usize = 1024 * 1024;
/// Most signatures one envelope may carry.
pub const MAX_SIGNATURES: usize = 16;
/// Longest rebuilder id.
pub const MAX_REBUILDER_ID_LEN: usize = 128;

/// Why an envelope or attestation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AttestationError {
    #[error("envelope: {0}")]
    Envelope(String),
    #[error("envelope: no signature by key {keyid}")]
    NoSignature { keyid: String },
    #[error("envelope: signature by key {keyid}")]
    Signature {
        keyid: String,
        #[source]
        source: CryptoError,
    },
    #[error("statement: {0}")]
    Statement(String),
    #[error("statement predicate{}: {}", .0.field, .0.reason)]
    Recipe(RecipeError),
    #[error("signing the envelope")]
    Signing(#[source] CryptoError),
}

fn envelope_err(reason: impl Into<String>) -> AttestationError {
    AttestationError::Envelope(reason.into())
}

fn statement_err(reason: impl Into<String>) -> AttestationError {
    AttestationError::Statement(reason.into())
}

/// DSSE's pre-authentication encoding: `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`,
/// lengths in ASCII decimal bytes. Signatures cover this, never the bare payload, so a
/// signature cannot be replayed under another payload type.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// One signature of an envelope: the TUF key id of the signer and the raw signature bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeSignature {
    pub keyid: String,
    pub sig: Vec<u8>,
}

/// A DSSE envelope (JSON form, standard padded base64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub payload_type: String,
    pub payload: Vec<u8>,
    pub signatures: Vec<EnvelopeSignature>,
}

impl Envelope {
    /// Sign `payload` with `signer` (its TUF key id names the signature).
    pub fn sign(
        payload_type: &str,
        payload: Vec<u8>,
        signer: &dyn Signer,
    ) -> Result<Self, AttestationError> {
        let sig = signer
            .sign(&pae(payload_type, &payload))
            .map_err(AttestationError::Signing)?;
        Ok(Envelope {
            payload_type: payload_type.to_string(),
            payload,
            signatures: vec![EnvelopeSignature {
                keyid: signer.public_key().key_id(),
                sig,
            }],
        })
    }

    /// The envelope as JSON (members in DSSE's order).
    pub fn to_json(&self) -> Vec<u8> {
        let sigs: Vec<Value> = self
            .signatures
            .iter()
            .map(|s| {
                let mut m = Map::new();
                m.insert("keyid".into(), s.keyid.as_str().into());
                m.insert("sig".into(), B64.encode(&s.sig).into());
                Value::Object(m)
            })
            .collect();
        let mut m = Map::new();
        m.insert("payload".into(), B64.encode(&self.payload).into());
        m.insert("payloadType".into(), self.payload_type.as_str().into());
        m.insert("signatures".into(), Value::Array(sigs));
        let mut out = serde_json::to_vec(&Value::Object(m)).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parse an envelope strictly: exactly `payload`, `payloadType` and `signatures`; each
    /// signature exactly `keyid` and `sig`; standard padded base64; at least one signature, no
    /// key id twice.
    pub fn parse(bytes: &[u8]) -> Result<Self, AttestationError> {
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(envelope_err(format!(
                "larger than {MAX_ENVELOPE_LEN} bytes"
            )));
        }
        crate::unique_keys::check_unique_keys(bytes)
            .map_err(|e| envelope_err(format!("not strict JSON: {e}")))?;
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| envelope_err(format!("not JSON: {e}")))?;
        let obj =
            exact_object(&v, &["payload", "payloadType", "signatures"]).map_err(envelope_err)?;
        let payload_type = obj
            .get("payloadType")
            .and_then(Value::as_str)
            .ok_or_else(|| envelope_err("payloadType must be a string"))?;
        let payload = obj
            .get("payload")
            .and_then(Value::as_str)
            .ok_or_else(|| envelope_err("payload must be a string"))
            .and_then(|p| {
                B64.decode(p)
                    .map_err(|e| envelope_err(format!("payload is not base64: {e}")))
            })?;
        let list = obj
            .get("signatures")
            .and_then(Value::as_array)
            .ok_or_else(|| envelope_err("signatures must be an array"))?;
        if list.is_empty() || list.len() > MAX_SIGNATURES {
            return Err(envelope_err(format!(
                "must carry 1 to {MAX_SIGNATURES} signatures, not {}",
                list.len()
            )));
        }
        let mut signatures: Vec<EnvelopeSignature> = Vec::new();
        for s in list {
            let s = exact_object(s, &["keyid", "sig"])
                .map_err(|r| envelope_err(format!("a signature: {r}")))?;
            let keyid = s
                .get("keyid")
                .and_then(Value::as_str)
                .ok_or_else(|| envelope_err("a signature's keyid must be a string"))?;
            let sig = s
                .get("sig")
                .and_then(Value::as_str)
                .ok_or_else(|| envelope_err("a signature's sig must be a string"))
                .and_then(|p| {
                    B64.decode(p)
                        .map_err(|e| envelope_err(format!("sig of {keyid} is not base64: {e}")))
                })?;
            if signatures.iter().any(|o| o.keyid == keyid) {
                return Err(envelope_err(format!("two signatures by key {keyid}")));
            }
            signatures.push(EnvelopeSignature {
                keyid: keyid.to_string(),
                sig,
            });
        }
        Ok(Envelope {
            payload_type: payload_type.to_string(),
            payload,
            signatures,
        })
    }

    /// Check that `key` signed this envelope: the signature named by its key id verifies over
    /// the pre-authentication encoding.
    pub fn verify_by(&self, key: &PublicKey) -> Result<(), AttestationError> {
        let keyid = key.key_id();
        let sig = self
            .signatures
            .iter()
            .find(|s| s.keyid == keyid)
            .ok_or_else(|| AttestationError::NoSignature {
                keyid: keyid.clone(),
            })?;
        key.verify(&pae(&self.payload_type, &self.payload), &sig.sig)
            .map_err(|source| AttestationError::Signature { keyid, source })
    }
}

/// What a rebuilder found: the predicate of a rebuild attestation and its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildStatement {
    /// The target path, as in targets metadata (the statement's subject name).
    pub target: String,
    /// SHA-256 of the rebuilt artifact, lowercase hex (the subject digest).
    pub sha256: String,
    /// Length of the rebuilt artifact.
    pub length: u64,
    /// The source and recipe the rebuilder used (from the signed metadata).
    pub rebuild: RebuildInfo,
    /// How the build was isolated and on what, e.g. `sandbox: bubblewrap 0.8.0`,
    /// `platform: x86_64-linux` (free text; strings only).
    pub environment: BTreeMap<String, String>,
    /// The rebuilder's self-chosen name (the key is what a client trusts; this is for people).
    pub rebuilder: String,
}

impl RebuildStatement {
    /// The in-toto Statement v1 JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut digest = Map::new();
        digest.insert("sha256".into(), self.sha256.as_str().into());
        let mut subject = Map::new();
        subject.insert("name".into(), self.target.as_str().into());
        subject.insert("digest".into(), Value::Object(digest));
        let mut result = Map::new();
        result.insert("sha256".into(), self.sha256.as_str().into());
        result.insert("length".into(), Value::from(self.length));
        let env: Map<String, Value> = self
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        let mut predicate = Map::new();
        predicate.insert("rebuilder".into(), self.rebuilder.as_str().into());
        predicate.insert("source".into(), self.rebuild.source_value());
        predicate.insert("recipe".into(), self.rebuild.recipe_value());
        predicate.insert("environment".into(), Value::Object(env));
        predicate.insert("result".into(), Value::Object(result));
        let mut st = Map::new();
        st.insert("_type".into(), STATEMENT_TYPE.into());
        st.insert("subject".into(), Value::Array(vec![Value::Object(subject)]));
        st.insert("predicateType".into(), PREDICATE_TYPE.into());
        st.insert("predicate".into(), Value::Object(predicate));
        serde_json::to_vec(&Value::Object(st)).unwrap_or_default()
    }

    /// Sign the statement into a DSSE envelope.
    pub fn sign(&self, signer: &dyn Signer) -> Result<Envelope, AttestationError> {
        self.check()?;
        Envelope::sign(PAYLOAD_TYPE, self.to_json(), signer)
    }

    fn check(&self) -> Result<(), AttestationError> {
        if self.target.is_empty() || self.target.len() > 1024 {
            return Err(statement_err("subject name must be 1 to 1024 bytes"));
        }
        if self.sha256.len() != 64
            || !self
                .sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(statement_err(
                "subject digest sha256 must be 64 lowercase hex digits",
            ));
        }
        if self.rebuilder.is_empty()
            || self.rebuilder.len() > MAX_REBUILDER_ID_LEN
            || !self.rebuilder.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(statement_err(format!(
                "predicate.rebuilder must be 1 to {MAX_REBUILDER_ID_LEN} printable ASCII \
                 characters without spaces"
            )));
        }
        self.rebuild.validate().map_err(AttestationError::Recipe)?;
        Ok(())
    }

    /// Parse a statement strictly (see the module's documentation).
    pub fn parse(payload: &[u8]) -> Result<Self, AttestationError> {
        crate::unique_keys::check_unique_keys(payload)
            .map_err(|e| statement_err(format!("not strict JSON: {e}")))?;
        let v: Value =
            serde_json::from_slice(payload).map_err(|e| statement_err(format!("not JSON: {e}")))?;
        let st = exact_object(&v, &["_type", "subject", "predicateType", "predicate"])
            .map_err(statement_err)?;
        if st.get("_type").and_then(Value::as_str) != Some(STATEMENT_TYPE) {
            return Err(statement_err(format!("_type must be {STATEMENT_TYPE}")));
        }
        if st.get("predicateType").and_then(Value::as_str) != Some(PREDICATE_TYPE) {
            return Err(statement_err(format!(
                "predicateType must be {PREDICATE_TYPE}"
            )));
        }
        let subjects = st
            .get("subject")
            .and_then(Value::as_array)
            .ok_or_else(|| statement_err("subject must be an array"))?;
        let [subject] = subjects.as_slice() else {
            return Err(statement_err(format!(
                "subject must name exactly one artifact, it names {}",
                subjects.len()
            )));
        };
        let subject = exact_object(subject, &["name", "digest"])
            .map_err(|r| statement_err(format!("subject: {r}")))?;
        let target = subject
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| statement_err("subject name must be a string"))?;
        let digest = subject
            .get("digest")
            .ok_or_else(|| statement_err("subject digest is missing"))
            .and_then(|d| {
                exact_object(d, &["sha256"])
                    .map_err(|r| statement_err(format!("subject digest: {r}")))
            })?;
        let sha256 = digest
            .get("sha256")
            .and_then(Value::as_str)
            .ok_or_else(|| statement_err("subject digest sha256 must be a string"))?;
        let p = st
            .get("predicate")
            .ok_or_else(|| statement_err("predicate is missing"))
            .and_then(|p| {
                exact_object(
                    p,
                    &["rebuilder", "source", "recipe", "environment", "result"],
                )
                .map_err(|r| statement_err(format!("predicate: {r}")))
            })?;
        let rebuilder = p
            .get("rebuilder")
            .and_then(Value::as_str)
            .ok_or_else(|| statement_err("predicate.rebuilder must be a string"))?;
        let rebuild = RebuildInfo::from_parts(
            p.get("source")
                .ok_or_else(|| statement_err("predicate.source is missing"))?,
            p.get("recipe")
                .ok_or_else(|| statement_err("predicate.recipe is missing"))?,
        )
        .map_err(AttestationError::Recipe)?;
        let mut environment = BTreeMap::new();
        let env = p
            .get("environment")
            .and_then(Value::as_object)
            .ok_or_else(|| statement_err("predicate.environment must be an object"))?;
        for (k, v) in env {
            let v = v.as_str().ok_or_else(|| {
                statement_err(format!("predicate.environment.{k} must be a string"))
            })?;
            environment.insert(k.clone(), v.to_string());
        }
        let result = p
            .get("result")
            .ok_or_else(|| statement_err("predicate.result is missing"))
            .and_then(|r| {
                exact_object(r, &["sha256", "length"])
                    .map_err(|e| statement_err(format!("predicate.result: {e}")))
            })?;
        if result.get("sha256").and_then(Value::as_str) != Some(sha256) {
            return Err(statement_err(
                "predicate.result.sha256 differs from the subject's digest",
            ));
        }
        let length = result
            .get("length")
            .and_then(json_length)
            .ok_or_else(|| statement_err("predicate.result.length must be a whole number"))?;
        let out = RebuildStatement {
            target: target.to_string(),
            sha256: sha256.to_string(),
            length,
            rebuild,
            environment,
            rebuilder: rebuilder.to_string(),
        };
        out.check()?;
        Ok(out)
    }
}

/// Verify an attestation envelope signed by `key`: strict envelope, the in-toto payload type,
/// a signature by `key` over the PAE, and a strict rebuild statement. Returns what it attests.
pub fn verify_attestation(
    envelope: &[u8],
    key: &PublicKey,
) -> Result<RebuildStatement, AttestationError> {
    let env = Envelope::parse(envelope)?;
    if env.payload_type != PAYLOAD_TYPE {
        return Err(envelope_err(format!(
            "payloadType is {:?}, not {PAYLOAD_TYPE}",
            env.payload_type
        )));
    }
    env.verify_by(key)?;
    RebuildStatement::parse(&env.payload)
}

/// A length written as a JSON integer, or as a whole double: in-toto's protobuf-based tools
/// (in_toto_attestation, Go's protojson) hold every number of a predicate as a double and write
/// `1234.0`. Only values a double represents exactly are taken.
fn json_length(v: &Value) -> Option<u64> {
    const MAX_EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=MAX_EXACT).contains(f))
            .map(|f| f as u64)
    })
}

/// `v` as an object with exactly the `members` (all present, no other).
fn exact_object<'a>(v: &'a Value, members: &[&str]) -> Result<&'a Map<String, Value>, String> {
    let obj = v.as_object().ok_or("must be a JSON object")?;
    if let Some(k) = obj.keys().find(|k| !members.contains(&k.as_str())) {
        return Err(format!("unknown member {k:?}"));
    }
    if let Some(k) = members.iter().find(|k| !obj.contains_key(**k)) {
        return Err(format!("member {k:?} is missing"));
    }
    Ok(obj)
}

#[cfg(test)]
pub(crate) mod tests;
