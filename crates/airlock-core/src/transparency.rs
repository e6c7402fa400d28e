//! Binary transparency for TUF metadata: the policy a root carries, the statement a publisher
//! logs for every root and targets-role version, and the client's check that a file it is about
//! to trust is in the public log. No I/O.
//!
//! # The root extension field
//!
//! A root that requires transparency carries, inside `signed`, an additive field that other TUF
//! clients keep and ignore:
//!
//! ```json
//! "x-airlock-transparency": {
//!   "version": 1,
//!   "repository": "example.com/app",
//!   "policy": [
//!     "log example.com/log+1a2b3c4d+AQ... https://log.example.com/",
//!     "witness w1 w1+...+BA... https://w1.example/",
//!     "quorum w1"
//!   ]
//! }
//! ```
//!
//! `policy` holds the lines of a c2sp.org/tlog-policy file (each without its newline: canonical
//! JSON writes control characters raw, and a raw newline inside a string is not JSON that
//! python-tuf or go-tuf can read) with exactly one `log` line (the log Airlock publishes
//! to; its URL, when given, is where the log's tiles are read), witness lines and a quorum.
//! `repository` names the repository in every statement, so one log can serve many. Unknown
//! members are refused: a later format gets a new `version`. The field rotates with root: a root
//! can switch it on, change it or remove it only with the root threshold, like any key.
//!
//! # The statement
//!
//! Each logged entry is a short text, one line per field, ending in a newline:
//!
//! ```text
//! airlock-release/v1
//! repository example.com/app
//! role targets
//! version 7
//! sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! ```
//!
//! It binds the repository, the role name (as in metadata, delegated roles included), the
//! version and the SHA-256 of the exact metadata bytes a client downloads. Its proof bundle
//! (c2sp.org/tlog-proof) is published as `<metadata file name>.tlog-proof`, e.g.
//! `7.targets.json.tlog-proof` beside `7.targets.json`.
//!
//! # The publishing record
//!
//! The publisher keeps every statement it submitted, one per line, so that a monitor can tell
//! the vendor's releases from releases signed with stolen keys ([`ReleaseRecord`],
//! [`scan_entries`]). A line holds the statement's fields, role last (a role name may hold
//! spaces); blank lines and lines starting with `#` are ignored:
//!
//! ```text
//! # airlock-release/v1 record: repository version sha256 role
//! example.com/app 7 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 targets
//! ```
//!
//! # The client's loop
//!
//! ```text
//! let check = ReleaseCheck::new(&policy, role, version, &bytes);
//! let mut consistency = None;
//! loop {
//!     match check.verify(&state, &bundle_bytes, consistency.as_deref(), now)? {
//!         ReleaseStep::Accepted(entry) => { persist(entry.state); break }
//!         ReleaseStep::NeedConsistency { from_size, to_size, .. } => {
//!             // read the log's tiles (any mirror may serve them) and compute the proof
//!             consistency = Some(proof_between(from_size, to_size)?);
//!         }
//!     }
//! }
//! ```

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::tlog::{
    Hash, LogVerifier, Policy, PolicyError, ProofBundle, ProofError, VerifiedEntry, VerifierState,
    VerifyError,
};
use crate::tuf::Root;

/// The name of the field inside a root's `signed` object.
pub const EXTENSION_FIELD: &str = "x-airlock-transparency";
/// The version of the extension field this code reads and writes.
pub const EXTENSION_VERSION: u64 = 1;
/// First line of every release statement.
pub const STATEMENT_HEADER: &str = "airlock-release/v1";
/// First line of every rebuilder attestation statement (docs/rebuild.md): another header, so
/// that no reader of release statements (client, monitor) ever takes one for a release.
pub const ATTESTATION_HEADER: &str = "airlock-attestation/v1";
/// Appended to a metadata file name to name its proof bundle.
pub const PROOF_SUFFIX: &str = ".tlog-proof";
/// Longest repository identity accepted.
pub const MAX_REPOSITORY_LEN: usize = 256;

/// Why a root's transparency field or a statement was refused.
#[derive(Debug, thiserror::Error)]
pub enum TransparencyError {
    #[error("{EXTENSION_FIELD}: {0}")]
    Field(String),
    #[error("{EXTENSION_FIELD}: policy")]
    Policy(#[source] PolicyError),
    #[error("statement: {0}")]
    Statement(String),
    #[error("line {line}: {reason}")]
    RecordLine { line: usize, reason: String },
}

/// Why a root or targets file, or a rebuilder attestation, was refused by the transparency
/// check. `subject` names what was checked: `targets v7`, or `attestation by key K for sha256 S`.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{subject}: no log proof bundle was published for it")]
    MissingProof { subject: String },
    #[error("{subject}: log proof bundle")]
    Bundle {
        subject: String,
        #[source]
        source: ProofError,
    },
    #[error("{subject}: not shown to be in the transparency log")]
    Log {
        subject: String,
        #[source]
        source: VerifyError,
    },
}

/// The transparency policy a trusted root carries.
#[derive(Debug, Clone)]
pub struct TransparencyPolicy {
    repository: String,
    policy_text: String,
    policy: Policy,
}

impl PartialEq for TransparencyPolicy {
    fn eq(&self, other: &Self) -> bool {
        self.repository == other.repository && self.policy_text == other.policy_text
    }
}

fn field(reason: impl Into<String>) -> TransparencyError {
    TransparencyError::Field(reason.into())
}

/// A repository identity: printable ASCII without spaces, like a log origin.
fn check_repository(repository: &str) -> Result<(), TransparencyError> {
    if repository.is_empty()
        || repository.len() > MAX_REPOSITORY_LEN
        || !repository.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(field(format!(
            "repository {repository:?} must be 1 to {MAX_REPOSITORY_LEN} printable ASCII \
             characters without spaces"
        )));
    }
    Ok(())
}

impl TransparencyPolicy {
    /// A policy for `repository` from tlog-policy text, which must name exactly one log.
    /// The text is kept as its lines, each ended by a newline (how the field stores it).
    pub fn new(repository: &str, policy_text: &str) -> Result<Self, TransparencyError> {
        check_repository(repository)?;
        let policy_text: String = policy_text.lines().map(|l| format!("{l}\n")).collect();
        let policy_text = policy_text.as_str();
        let policy = Policy::parse(policy_text.as_bytes()).map_err(TransparencyError::Policy)?;
        if policy.logs.len() != 1 {
            return Err(field(format!(
                "the policy must name exactly one log, it names {}",
                policy.logs.len()
            )));
        }
        Ok(TransparencyPolicy {
            repository: repository.to_string(),
            policy_text: policy_text.to_string(),
            policy,
        })
    }

    /// The policy `root` carries, `None` when it carries none. A malformed field is an error:
    /// a root whose policy cannot be read must not be trusted.
    pub fn from_root(root: &Root) -> Result<Option<Self>, TransparencyError> {
        match root.unrecognized.get(EXTENSION_FIELD) {
            None => Ok(None),
            Some(value) => Self::from_value(value).map(Some),
        }
    }

    /// Parse the field's JSON value.
    pub fn from_value(value: &Value) -> Result<Self, TransparencyError> {
        let obj = value
            .as_object()
            .ok_or_else(|| field("must be a JSON object"))?;
        for key in obj.keys() {
            if !matches!(key.as_str(), "version" | "repository" | "policy") {
                return Err(field(format!("unknown member {key:?}")));
            }
        }
        match obj.get("version").and_then(Value::as_u64) {
            Some(EXTENSION_VERSION) => {}
            Some(v) => {
                return Err(field(format!(
                    "version {v} is not supported (this client reads version {EXTENSION_VERSION})"
                )));
            }
            None => return Err(field("version must be a number")),
        }
        let repository = obj
            .get("repository")
            .and_then(Value::as_str)
            .ok_or_else(|| field("repository must be a string"))?;
        let lines = obj
            .get("policy")
            .and_then(Value::as_array)
            .ok_or_else(|| field("policy must be an array of lines"))?;
        let mut policy = String::new();
        for line in lines {
            let line = line
                .as_str()
                .filter(|l| !l.chars().any(|c| c == '\n' || c == '\r'))
                .ok_or_else(|| field("policy must be an array of lines (strings, no newline)"))?;
            policy.push_str(line);
            policy.push('\n');
        }
        Self::new(repository, &policy)
    }

    /// The field's JSON value, to store in `Root::unrecognized` under [`EXTENSION_FIELD`].
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("version".into(), Value::from(EXTENSION_VERSION));
        obj.insert("repository".into(), Value::from(self.repository.clone()));
        let lines: Vec<Value> = self.policy_text.lines().map(Value::from).collect();
        obj.insert("policy".into(), Value::Array(lines));
        Value::Object(obj)
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tlog-policy text as written in root.
    pub fn policy_text(&self) -> &str {
        &self.policy_text
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The log's origin (its key name).
    pub fn log_origin(&self) -> &str {
        self.policy
            .logs
            .first()
            .map(|l| l.verifier.name())
            .unwrap_or_default()
    }

    /// The log's URL from the policy (where its tiles and checkpoint are read), if given.
    pub fn log_url(&self) -> Option<&str> {
        self.policy.logs.first().and_then(|l| l.url.as_deref())
    }
}

/// The values of a logged statement in exactly the form its writer makes: `header`, then one
/// `key value` line per key in this order, each ending in a newline, nothing else.
fn statement_values<'a, const N: usize>(
    bytes: &'a [u8],
    header: &str,
    keys: [&str; N],
) -> Result<[&'a str; N], TransparencyError> {
    let bad = |why: String| TransparencyError::Statement(why);
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?;
    let body = text
        .strip_suffix('\n')
        .ok_or_else(|| bad("does not end in a newline".into()))?;
    let mut lines = body.split('\n');
    if lines.next() != Some(header) {
        return Err(bad(format!("not an {header} statement")));
    }
    let mut values = [""; N];
    for (slot, key) in values.iter_mut().zip(keys) {
        *slot = lines
            .next()
            .and_then(|l| l.strip_prefix(key))
            .and_then(|l| l.strip_prefix(' '))
            .ok_or_else(|| bad(format!("line {key:?} missing")))?;
    }
    if lines.next().is_some() {
        return Err(bad("extra lines".into()));
    }
    Ok(values)
}

/// What is logged for one metadata file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseStatement {
    pub repository: String,
    pub role: String,
    pub version: u64,
    pub sha256: Hash,
}

/// A role name in a statement: what TUF allows minus what would break the line format.
fn check_role(role: &str) -> Result<(), TransparencyError> {
    if role.is_empty() || role.chars().any(char::is_control) {
        return Err(TransparencyError::Statement(format!(
            "role name {role:?} is empty or holds a control character"
        )));
    }
    Ok(())
}

impl ReleaseStatement {
    /// The statement for metadata `bytes` of `role` at `version`.
    pub fn for_metadata(repository: &str, role: &str, version: u64, bytes: &[u8]) -> Self {
        ReleaseStatement {
            repository: repository.to_string(),
            role: role.to_string(),
            version,
            sha256: Sha256::digest(bytes).into(),
        }
    }

    /// The exact bytes logged.
    pub fn to_bytes(&self) -> Vec<u8> {
        format!(
            "{STATEMENT_HEADER}\nrepository {}\nrole {}\nversion {}\nsha256 {}\n",
            self.repository,
            self.role,
            self.version,
            hex::encode(self.sha256)
        )
        .into_bytes()
    }

    /// Parse a logged entry. Only the exact form [`ReleaseStatement::to_bytes`] writes is
    /// accepted, so an entry reads one way.
    pub fn parse(bytes: &[u8]) -> Result<Self, TransparencyError> {
        let bad = |why: &str| TransparencyError::Statement(why.to_string());
        let [repository, role, version_text, sha_text] = statement_values(
            bytes,
            STATEMENT_HEADER,
            ["repository", "role", "version", "sha256"],
        )?;
        let (repository, role) = (repository.to_string(), role.to_string());
        check_repository(&repository).map_err(|_| bad("bad repository"))?;
        check_role(&role)?;
        let canonical = !version_text.is_empty()
            && version_text.bytes().all(|b| b.is_ascii_digit())
            && (version_text == "0" || !version_text.starts_with('0'));
        let version = version_text
            .parse()
            .ok()
            .filter(|_| canonical)
            .ok_or_else(|| bad("version is not a canonical decimal"))?;
        let mut sha256 = [0u8; 32];
        if sha_text.len() != 64 || sha_text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("sha256 is not 64 lower-case hex digits"));
        }
        hex::decode_to_slice(sha_text, &mut sha256)
            .map_err(|_| bad("sha256 is not 64 lower-case hex digits"))?;
        Ok(ReleaseStatement {
            repository,
            role,
            version,
            sha256,
        })
    }
}

/// Parse 64 lower-case hex digits.
fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Longest key id accepted in an attestation statement (the layout's limit).
pub const MAX_KEYID_LEN: usize = 128;

/// What a rebuilder logs for one attestation it signed (docs/rebuild.md):
///
/// ```text
/// airlock-attestation/v1
/// repository example.com/app
/// keyid 4be1...
/// subject-sha256 9f86...
/// envelope-sha256 5d41...
/// ```
///
/// It binds the repository of the trusted root's policy, the key id the attestation is
/// published under, the digest of the target it attests, and the SHA-256 of the exact DSSE
/// envelope bytes a client fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationStatement {
    pub repository: String,
    /// A TUF key id: 1 to 128 lower-case hex digits.
    pub keyid: String,
    pub subject_sha256: [u8; 32],
    pub envelope_sha256: [u8; 32],
}

fn check_keyid(keyid: &str) -> Result<(), TransparencyError> {
    if keyid.is_empty()
        || keyid.len() > MAX_KEYID_LEN
        || !keyid
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(TransparencyError::Statement(format!(
            "key id {keyid:?} is not 1 to {MAX_KEYID_LEN} lower-case hex digits"
        )));
    }
    Ok(())
}

impl AttestationStatement {
    /// The statement for the envelope `envelope` published under `keyid`, attesting the target
    /// whose SHA-256 is `subject_sha256` (hex, as in targets metadata).
    pub fn for_envelope(
        repository: &str,
        keyid: &str,
        subject_sha256: &str,
        envelope: &[u8],
    ) -> Result<Self, TransparencyError> {
        check_repository(repository)?;
        check_keyid(keyid)?;
        let subject_sha256 = parse_sha256(subject_sha256).ok_or_else(|| {
            TransparencyError::Statement(format!(
                "subject sha256 {subject_sha256:?} is not 64 lower-case hex digits"
            ))
        })?;
        Ok(AttestationStatement {
            repository: repository.to_string(),
            keyid: keyid.to_string(),
            subject_sha256,
            envelope_sha256: Sha256::digest(envelope).into(),
        })
    }

    /// The exact bytes logged.
    pub fn to_bytes(&self) -> Vec<u8> {
        format!(
            "{ATTESTATION_HEADER}\nrepository {}\nkeyid {}\nsubject-sha256 {}\n\
             envelope-sha256 {}\n",
            self.repository,
            self.keyid,
            hex::encode(self.subject_sha256),
            hex::encode(self.envelope_sha256)
        )
        .into_bytes()
    }

    /// Parse a logged entry; only the exact form [`AttestationStatement::to_bytes`] writes.
    pub fn parse(bytes: &[u8]) -> Result<Self, TransparencyError> {
        let bad = |why: &str| TransparencyError::Statement(why.to_string());
        let [repository, keyid, subject, envelope] = statement_values(
            bytes,
            ATTESTATION_HEADER,
            ["repository", "keyid", "subject-sha256", "envelope-sha256"],
        )?;
        let (repository, keyid) = (repository.to_string(), keyid.to_string());
        check_repository(&repository).map_err(|_| bad("bad repository"))?;
        check_keyid(&keyid)?;
        let subject_sha256 = parse_sha256(subject)
            .ok_or_else(|| bad("subject-sha256 is not 64 lower-case hex digits"))?;
        let envelope_sha256 = parse_sha256(envelope)
            .ok_or_else(|| bad("envelope-sha256 is not 64 lower-case hex digits"))?;
        Ok(AttestationStatement {
            repository,
            keyid,
            subject_sha256,
            envelope_sha256,
        })
    }
}

/// The comment a publishing record starts with, naming its format.
pub const RECORD_HEADER: &str = "# airlock-release/v1 record: repository version sha256 role";

impl ReleaseStatement {
    /// The statement as one line of a publishing record (no newline).
    pub fn record_line(&self) -> String {
        format!(
            "{} {} {} {}",
            self.repository,
            self.version,
            hex::encode(self.sha256),
            self.role
        )
    }

    /// Parse one record line, as strictly as a logged statement.
    pub fn parse_record_line(line: &str) -> Result<Self, TransparencyError> {
        let mut fields = line.splitn(4, ' ');
        let (Some(repository), Some(version), Some(sha256), Some(role)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(TransparencyError::Statement(
                "a record line is `<repository> <version> <sha256> <role>`".into(),
            ));
        };
        // The same checks as a logged statement, so that a line reads one way.
        Self::parse(
            format!(
                "{STATEMENT_HEADER}\nrepository {repository}\nrole {role}\nversion {version}\n\
                 sha256 {sha256}\n"
            )
            .as_bytes(),
        )
    }
}

/// The statements a publisher submitted: what a monitor treats as the vendor's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseRecord {
    statements: std::collections::BTreeSet<Vec<u8>>,
}

impl ReleaseRecord {
    /// Parse a record (see the module docs). A line that is not a statement is an error naming
    /// the line: a damaged record must not silently expect less (or more) than it says.
    pub fn parse(text: &[u8]) -> Result<Self, TransparencyError> {
        let text = std::str::from_utf8(text).map_err(|_| TransparencyError::RecordLine {
            line: 0,
            reason: "the record is not UTF-8".into(),
        })?;
        let mut record = ReleaseRecord::default();
        for (n, line) in text.lines().enumerate() {
            // A role never holds a control character, so a CR is only a line end.
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let s = ReleaseStatement::parse_record_line(line).map_err(|e| {
                TransparencyError::RecordLine {
                    line: n + 1,
                    reason: match e {
                        TransparencyError::Statement(r) => r,
                        other => other.to_string(),
                    },
                }
            })?;
            record.insert(&s);
        }
        Ok(record)
    }

    /// Add a statement; `false` when it was already there.
    pub fn insert(&mut self, statement: &ReleaseStatement) -> bool {
        self.statements.insert(statement.to_bytes())
    }

    /// The statements, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = ReleaseStatement> + '_ {
        self.statements
            .iter()
            .filter_map(|b| ReleaseStatement::parse(b).ok())
    }

    pub fn contains(&self, statement: &ReleaseStatement) -> bool {
        self.statements.contains(&statement.to_bytes())
    }

    pub fn len(&self) -> usize {
        self.statements.len()
    }

    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }
}

/// A logged statement for the monitored repository that its record does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnexpectedRelease {
    /// The entry's index in the log.
    pub index: u64,
    pub statement: ReleaseStatement,
}

/// What [`scan_entries`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseScan {
    /// Statements for the repository that the record holds.
    pub expected: u64,
    /// Statements for the repository that the record does not hold, in log order.
    pub unexpected: Vec<UnexpectedRelease>,
    /// Statements for other repositories (one log serves many), ignored.
    pub other_repositories: u64,
    /// Entries that are not release statements, ignored.
    pub not_statements: u64,
}

/// Sort logged entries (index, bytes) for `repository` into those its `record` holds and
/// those it does not. Only the exact statement form counts: a client accepts a file only with
/// an entry in that form, so an entry in any other form cannot vouch for a release.
pub fn scan_entries<'a>(
    repository: &str,
    record: &ReleaseRecord,
    entries: impl IntoIterator<Item = (u64, &'a [u8])>,
) -> ReleaseScan {
    let mut scan = ReleaseScan::default();
    for (index, bytes) in entries {
        match ReleaseStatement::parse(bytes) {
            Err(_) => scan.not_statements += 1,
            Ok(s) if s.repository != repository => scan.other_repositories += 1,
            Ok(s) if record.contains(&s) => scan.expected += 1,
            Ok(statement) => scan.unexpected.push(UnexpectedRelease { index, statement }),
        }
    }
    scan
}

/// The proof bundle's file name for a metadata file name (`7.targets.json` ->
/// `7.targets.json.tlog-proof`).
pub fn proof_file_name(metadata_file_name: &str) -> String {
    format!("{metadata_file_name}{PROOF_SUFFIX}")
}

/// One step of [`ReleaseCheck::verify`].
#[derive(Debug)]
pub enum ReleaseStep {
    /// In the log: persist `entry.state` (when `entry.advanced`).
    Accepted(Box<VerifiedEntry>),
    /// The bundle's checkpoint and the trusted one differ in size: call again with the
    /// consistency proof between the two sizes (smaller first), read from the log's tiles at
    /// `to_size`.
    NeedConsistency {
        origin: String,
        from_size: u64,
        to_size: u64,
    },
}

/// Checks that one logged statement (a root or targets-role file's, or a rebuilder
/// attestation's) is in the log.
#[derive(Debug)]
pub struct ReleaseCheck<'a> {
    policy: &'a TransparencyPolicy,
    /// What errors name: `targets v7`, `attestation by key K for sha256 S`.
    subject: String,
    statement: Vec<u8>,
}

impl<'a> ReleaseCheck<'a> {
    /// Check `bytes`, the exact metadata of `role` at `version`, against `policy` (the policy of
    /// the root trusted before this file: for a new root, the previous root's).
    pub fn new(policy: &'a TransparencyPolicy, role: &str, version: u64, bytes: &[u8]) -> Self {
        let statement =
            ReleaseStatement::for_metadata(&policy.repository, role, version, bytes).to_bytes();
        ReleaseCheck {
            policy,
            subject: format!("{role} v{version}"),
            statement,
        }
    }

    /// Check that the rebuilder attestation `envelope` (the exact DSSE bytes), published under
    /// `keyid` for the target with SHA-256 `subject_sha256`, was logged under the trusted
    /// root's `policy`. Refused when the key id or digest cannot be in a statement.
    pub fn attestation(
        policy: &'a TransparencyPolicy,
        keyid: &str,
        subject_sha256: &str,
        envelope: &[u8],
    ) -> Result<Self, TransparencyError> {
        let statement = AttestationStatement::for_envelope(
            &policy.repository,
            keyid,
            subject_sha256,
            envelope,
        )?
        .to_bytes();
        Ok(ReleaseCheck {
            policy,
            subject: format!("attestation by key {keyid} for sha256 {subject_sha256}"),
            statement,
        })
    }

    /// What errors name.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The statement the log must hold.
    pub fn statement(&self) -> &[u8] {
        &self.statement
    }

    /// Verify the proof bundle (`None`: none was published) offline: the log's signature, the
    /// witness quorum, inclusion of exactly this statement, and consistency with the trusted
    /// checkpoint in `state`. `now` is POSIX seconds (cosignatures from the future do not count).
    pub fn verify(
        &self,
        state: &VerifierState,
        bundle: Option<&[u8]>,
        consistency: Option<&[Hash]>,
        now: u64,
    ) -> Result<ReleaseStep, ReleaseError> {
        let subject = || self.subject.clone();
        let bundle = bundle.ok_or_else(|| ReleaseError::MissingProof { subject: subject() })?;
        let bundle = ProofBundle::parse(bundle).map_err(|source| ReleaseError::Bundle {
            subject: subject(),
            source,
        })?;
        let verifier = LogVerifier::new(self.policy.policy.clone());
        match verifier.verify_entry(state, &bundle, &self.statement, consistency, now) {
            Ok(entry) => Ok(ReleaseStep::Accepted(Box::new(entry))),
            Err(VerifyError::ConsistencyProofRequired {
                origin,
                trusted_size,
                new_size,
            }) if consistency.is_none() => Ok(ReleaseStep::NeedConsistency {
                origin,
                from_size: trusted_size.min(new_size),
                to_size: trusted_size.max(new_size),
            }),
            Err(source) => Err(ReleaseError::Log {
                subject: subject(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_round_trip_and_strictness() {
        let s = ReleaseStatement::for_metadata("example.com/app", "bins-0a", 7, b"{}");
        let bytes = s.to_bytes();
        assert_eq!(ReleaseStatement::parse(&bytes).unwrap(), s);
        let text = String::from_utf8(bytes).unwrap();
        for bad in [
            text.replace("version 7", "version 07"),
            text.replace("airlock-release/v1", "airlock-release/v2"),
            text.trim_end().to_string(),
            format!("{text}extra\n"),
            text.replace("sha256 ", "sha256  "),
            text.to_uppercase(),
            text.replace("repository example.com/app", "repository a b"),
        ] {
            assert!(ReleaseStatement::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn record_lines_round_trip_and_the_scan_sorts_entries() {
        let ours = ReleaseStatement::for_metadata("example.com/app", "bin 0a", 3, b"{}");
        let line = ours.record_line();
        assert_eq!(ReleaseStatement::parse_record_line(&line).unwrap(), ours);
        let text = format!("{RECORD_HEADER}\n\n{line}\r\n");
        let record = ReleaseRecord::parse(text.as_bytes()).unwrap();
        assert!(record.contains(&ours) && record.len() == 1);
        for bad in [
            "example.com/app 03 abc targets".to_string(),
            line.replace(" 3 ", " x "),
            line.to_uppercase(),
            "example.com/app 3".to_string(),
        ] {
            let err = ReleaseRecord::parse(format!("# c\n{bad}\n").as_bytes()).unwrap_err();
            assert!(err.to_string().starts_with("line 2: "), "{err}");
        }
        let theirs = ReleaseStatement::for_metadata("example.com/app", "targets", 4, b"x");
        let other = ReleaseStatement::for_metadata("other.example", "targets", 4, b"x");
        let entries = [
            (0, ours.to_bytes()),
            (1, b"hello".to_vec()),
            (2, other.to_bytes()),
            (3, theirs.to_bytes()),
        ];
        let scan = scan_entries(
            "example.com/app",
            &record,
            entries.iter().map(|(i, e)| (*i, e.as_slice())),
        );
        assert_eq!(
            scan,
            ReleaseScan {
                expected: 1,
                unexpected: vec![UnexpectedRelease {
                    index: 3,
                    statement: theirs
                }],
                other_repositories: 1,
                not_statements: 1,
            }
        );
    }

    const KEYID: &str = "4be1";

    #[test]
    fn attestation_statement_round_trip_and_strictness() {
        let sha = "9f".repeat(32);
        let s = AttestationStatement::for_envelope("example.com/app", KEYID, &sha, b"{}").unwrap();
        let bytes = s.to_bytes();
        assert_eq!(AttestationStatement::parse(&bytes).unwrap(), s);
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.starts_with("airlock-attestation/v1\nrepository example.com/app\nkeyid 4be1\n")
        );
        for bad in [
            text.replace("airlock-attestation/v1", "airlock-attestation/v2"),
            text.trim_end().to_string(),
            format!("{text}extra\n"),
            text.replace("keyid ", "keyid  "),
            text.replace("keyid 4be1", "keyid 4BE1"),
            text.replace("keyid 4be1", "keyid "),
            text.replace(&sha, &sha[2..]),
            text.replace("subject-sha256", "sha256"),
            text.replace("repository example.com/app", "repository a b"),
        ] {
            assert!(
                AttestationStatement::parse(bad.as_bytes()).is_err(),
                "{bad:?}"
            );
        }
        assert!(AttestationStatement::for_envelope("example.com/app", "../x", &sha, b"").is_err());
        assert!(AttestationStatement::for_envelope("example.com/app", KEYID, "9F", b"").is_err());
        // Never a release: the monitor counts it among the entries that are not statements.
        let scan = scan_entries(
            "example.com/app",
            &ReleaseRecord::default(),
            [(0, text.as_bytes())],
        );
        assert_eq!(scan.not_statements, 1);
        assert!(scan.unexpected.is_empty());
    }

    /// A log holding the attestation statement of `logged`; its bundle proves exactly that
    /// envelope, not another one, and not the same envelope under another key id.
    #[test]
    fn an_attestation_bundle_proves_only_its_own_envelope() {
        use crate::tlog::{Checkpoint, KeyAlgorithm, MemoryTree, NoteSigner, inclusion_proof};
        let log = NoteSigner::generate("example.com/log", KeyAlgorithm::Ed25519).unwrap();
        let policy = TransparencyPolicy::new(
            "example.com/app",
            &format!("log {}\nquorum none\n", log.verifier().to_vkey()),
        )
        .unwrap();
        let sha = "9f".repeat(32);
        let (logged, other) = (b"envelope one".as_slice(), b"envelope two".as_slice());
        let statement =
            AttestationStatement::for_envelope("example.com/app", KEYID, &sha, logged).unwrap();
        let mut tree = MemoryTree::new();
        tree.push(b"an earlier entry");
        tree.push(&statement.to_bytes());
        let note = Checkpoint::new("example.com/log", tree.size(), tree.root())
            .unwrap()
            .sign(&log)
            .unwrap()
            .to_bytes();
        let bundle = ProofBundle {
            extra: None,
            index: 1,
            inclusion_proof: inclusion_proof(&tree, 1, tree.size()).unwrap(),
            checkpoint: note,
        }
        .to_bytes();
        let verify = |keyid: &str, envelope: &[u8], bundle: Option<&[u8]>| {
            ReleaseCheck::attestation(&policy, keyid, &sha, envelope)
                .unwrap()
                .verify(&VerifierState::new(), bundle, None, 1)
        };
        assert!(matches!(
            verify(KEYID, logged, Some(&bundle)),
            Ok(ReleaseStep::Accepted(_))
        ));
        let err = verify(KEYID, other, Some(&bundle)).unwrap_err();
        assert!(matches!(err, ReleaseError::Log { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "attestation by key {KEYID} for sha256 {sha}: not shown to be in the transparency log"
            )
        );
        assert!(verify("77aa", logged, Some(&bundle)).is_err());
        let err = verify(KEYID, logged, None).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("no log proof bundle was published for it")
        );
        // A release check reads as before.
        let err = ReleaseCheck::new(&policy, "targets", 7, b"{}")
            .verify(&VerifierState::new(), Some(&bundle), None, 1)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "targets v7: not shown to be in the transparency log"
        );
    }

    #[test]
    fn field_refuses_unknown_members_and_versions() {
        let vkey = crate::tlog::NoteSigner::generate(
            "example.com/log",
            crate::tlog::KeyAlgorithm::Ed25519,
        )
        .unwrap()
        .verifier()
        .to_vkey();
        let policy = format!("log {vkey}\nquorum none\n");
        let p = TransparencyPolicy::new("example.com/app", &policy).unwrap();
        let v = p.to_value();
        assert_eq!(TransparencyPolicy::from_value(&v).unwrap(), p);
        assert_eq!(p.log_origin(), "example.com/log");
        let mut extra = v.clone();
        extra["peers"] = Value::from(1);
        assert!(TransparencyPolicy::from_value(&extra).is_err());
        let mut v2 = v.clone();
        v2["version"] = Value::from(2);
        assert!(TransparencyPolicy::from_value(&v2).is_err());
        let two_logs = format!("log {vkey}\nlog {vkey}\nquorum none\n");
        assert!(TransparencyPolicy::new("example.com/app", &two_logs).is_err());
        assert!(TransparencyPolicy::new("", &policy).is_err());
    }
}
