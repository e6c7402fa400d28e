//! Transparency-log policies (c2sp.org/tlog-policy): which logs are trusted, which witnesses
//! are known, and the quorum of witnesses a checkpoint needs.
//!
//! ```text
//! log <vkey> [<url>]
//! witness <name> <vkey> [<url>]
//! group <name> all|any|<k> <member>...
//! quorum <name>|none
//! ```
//!
//! Names are defined before use (so groups cannot be cyclic), each name is defined once, each
//! member is listed at most once per group, `1 <= k <= n`, exactly one quorum line. Log keys
//! must be Ed25519 note keys (0x01) named after the log's origin; witness keys must be
//! cosignature/v1 keys (0x04). Two logs or two witnesses with the same public key are refused.
//!
//! One deliberate narrowing: the spec treats high-bit octets in names and URLs as opaque bytes;
//! airlock requires them to be UTF-8 (comments may hold any octets). The spec strongly
//! recommends UTF-8, and a policy that is not is refused with a clear error, never misread.

use super::checkpoint::{Checkpoint, CheckpointError, VerifiedCheckpoint, open_checkpoint};
use super::keys::{KeyAlgorithm, KeyError, NoteVerifier};
use super::note::Note;

/// Limits well above the spec's recommended minimum of 32 of each.
pub const MAX_LOGS: usize = 256;
pub const MAX_WITNESSES: usize = 256;
pub const MAX_GROUPS: usize = 256;

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("policy line {line}")]
    Key {
        line: usize,
        #[source]
        source: KeyError,
    },
    #[error("policy: no quorum line")]
    NoQuorum,
}

/// Why a checkpoint does not satisfy a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyCheckError {
    #[error("checkpoint origin {0:?} is not a log in the policy")]
    UnknownLog(String),
    #[error("checkpoint for {origin:?} refused")]
    Checkpoint {
        origin: String,
        #[source]
        source: CheckpointError,
    },
    #[error(
        "checkpoint for {origin:?} (size {size}) lacks the witness quorum: valid cosignatures from [{have}]"
    )]
    QuorumNotMet {
        origin: String,
        size: u64,
        have: String,
    },
}

/// A trusted log.
#[derive(Debug, Clone)]
pub struct PolicyLog {
    pub verifier: NoteVerifier,
    pub url: Option<String>,
}

/// A known witness.
#[derive(Debug, Clone)]
pub struct PolicyWitness {
    pub name: String,
    pub verifier: NoteVerifier,
    pub url: Option<String>,
}

/// A group member: a witness or an earlier group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    Witness(usize),
    Group(usize),
}

/// `group <name> <k> <members>`: satisfied when at least `threshold` members are.
#[derive(Debug, Clone)]
pub struct PolicyGroup {
    pub name: String,
    pub threshold: usize,
    pub members: Vec<Member>,
}

/// The quorum rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    /// `quorum none`: no cosignature required.
    None,
    Member(Member),
}

/// A parsed tlog-policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub logs: Vec<PolicyLog>,
    pub witnesses: Vec<PolicyWitness>,
    pub groups: Vec<PolicyGroup>,
    pub quorum: Quorum,
}

/// A checkpoint that satisfies a policy.
#[derive(Debug, Clone)]
pub struct AcceptedCheckpoint {
    /// Index of the log in [`Policy::logs`] whose signature verified.
    pub log: usize,
    /// The opened checkpoint; `cosignatures` index into [`Policy::witnesses`].
    pub opened: VerifiedCheckpoint,
    /// Names of the witnesses whose cosignatures counted (valid, not from the future).
    pub counted_witnesses: Vec<String>,
}

impl AcceptedCheckpoint {
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.opened.checkpoint
    }
}

fn syntax(line: usize, reason: impl Into<String>) -> PolicyError {
    PolicyError::Syntax {
        line,
        reason: reason.into(),
    }
}

impl Policy {
    /// Parse a policy file.
    pub fn parse(bytes: &[u8]) -> Result<Self, PolicyError> {
        let mut logs: Vec<PolicyLog> = Vec::new();
        let mut witnesses: Vec<PolicyWitness> = Vec::new();
        let mut groups: Vec<PolicyGroup> = Vec::new();
        let mut quorum = None;
        let lookup = |witnesses: &[PolicyWitness], groups: &[PolicyGroup], name: &str| {
            witnesses
                .iter()
                .position(|w| w.name == name)
                .map(Member::Witness)
                .or_else(|| {
                    groups
                        .iter()
                        .position(|g| g.name == name)
                        .map(Member::Group)
                })
        };
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let n = i + 1;
            if let Some(b) = raw.iter().find(|&&b| b != b'\t' && (b < 0x20 || b == 0x7f)) {
                return Err(syntax(n, format!("control character 0x{b:02x}")));
            }
            let trimmed: &[u8] = {
                let start = raw.iter().position(|&b| b != b' ' && b != b'\t');
                match start {
                    None => continue,
                    Some(s) => raw.get(s..).unwrap_or_default(),
                }
            };
            if trimmed.first() == Some(&b'#') {
                continue;
            }
            let line = std::str::from_utf8(raw)
                .map_err(|_| syntax(n, "names, keys and URLs must be UTF-8"))?;
            let tokens: Vec<&str> = line.split([' ', '\t']).filter(|t| !t.is_empty()).collect();
            let key = |vkey: &str, want: KeyAlgorithm| -> Result<NoteVerifier, PolicyError> {
                let v = NoteVerifier::from_vkey(vkey)
                    .map_err(|source| PolicyError::Key { line: n, source })?;
                if v.algorithm() != want {
                    return Err(syntax(
                        n,
                        format!(
                            "key {vkey} has algorithm {}, expected {want}",
                            v.algorithm()
                        ),
                    ));
                }
                Ok(v)
            };
            match tokens.as_slice() {
                ["log", vkey, rest @ ..] if rest.len() <= 1 => {
                    let verifier = key(vkey, KeyAlgorithm::Ed25519)?;
                    if logs
                        .iter()
                        .any(|l| l.verifier.public_key() == verifier.public_key())
                    {
                        return Err(syntax(n, "duplicate log key"));
                    }
                    if logs.len() == MAX_LOGS {
                        return Err(syntax(n, "too many logs"));
                    }
                    logs.push(PolicyLog {
                        verifier,
                        url: rest.first().map(|s| s.to_string()),
                    });
                }
                ["witness", name, vkey, rest @ ..] if rest.len() <= 1 => {
                    if *name == "none" || lookup(&witnesses, &groups, name).is_some() {
                        return Err(syntax(n, format!("name {name:?} is reserved or taken")));
                    }
                    let verifier = key(vkey, KeyAlgorithm::CosignatureV1)?;
                    if witnesses
                        .iter()
                        .any(|w| w.verifier.public_key() == verifier.public_key())
                    {
                        return Err(syntax(n, "duplicate witness key"));
                    }
                    if witnesses.len() == MAX_WITNESSES {
                        return Err(syntax(n, "too many witnesses"));
                    }
                    witnesses.push(PolicyWitness {
                        name: name.to_string(),
                        verifier,
                        url: rest.first().map(|s| s.to_string()),
                    });
                }
                ["group", name, k, members @ ..] if !members.is_empty() => {
                    if *name == "none" || lookup(&witnesses, &groups, name).is_some() {
                        return Err(syntax(n, format!("name {name:?} is reserved or taken")));
                    }
                    let mut resolved = Vec::with_capacity(members.len());
                    for m in members {
                        let member = lookup(&witnesses, &groups, m)
                            .ok_or_else(|| syntax(n, format!("{m:?} is not defined above")))?;
                        if resolved.contains(&member) {
                            return Err(syntax(n, format!("{m:?} is listed twice")));
                        }
                        resolved.push(member);
                    }
                    let threshold = match *k {
                        "all" => resolved.len(),
                        "any" => 1,
                        k => {
                            let canonical = !k.is_empty()
                                && k.bytes().all(|b| b.is_ascii_digit())
                                && !k.starts_with('0');
                            k.parse::<usize>()
                                .ok()
                                .filter(|&k| canonical && k >= 1 && k <= resolved.len())
                                .ok_or_else(|| {
                                    syntax(
                                        n,
                                        format!("threshold {k:?} is not in 1..={}", resolved.len()),
                                    )
                                })?
                        }
                    };
                    if groups.len() == MAX_GROUPS {
                        return Err(syntax(n, "too many groups"));
                    }
                    groups.push(PolicyGroup {
                        name: name.to_string(),
                        threshold,
                        members: resolved,
                    });
                }
                ["quorum", name] => {
                    if quorum.is_some() {
                        return Err(syntax(n, "second quorum line"));
                    }
                    quorum =
                        Some(if *name == "none" {
                            Quorum::None
                        } else {
                            Quorum::Member(lookup(&witnesses, &groups, name).ok_or_else(|| {
                                syntax(n, format!("{name:?} is not defined above"))
                            })?)
                        });
                }
                [kw, ..] if ["log", "witness", "group", "quorum"].contains(kw) => {
                    return Err(syntax(n, format!("wrong number of fields for `{kw}`")));
                }
                [kw, ..] => return Err(syntax(n, format!("unknown keyword {kw:?}"))),
                [] => {}
            }
        }
        Ok(Policy {
            logs,
            witnesses,
            groups,
            quorum: quorum.ok_or(PolicyError::NoQuorum)?,
        })
    }

    /// Whether the quorum is met when exactly the witnesses marked `true` have cosigned
    /// (`cosigned[i]` for `witnesses[i]`; missing entries count as not cosigned).
    pub fn quorum_met(&self, cosigned: &[bool]) -> bool {
        // Groups only reference earlier groups, so one pass in order evaluates them all.
        let mut group_ok = Vec::with_capacity(self.groups.len());
        let member_ok = |m: &Member, group_ok: &[bool]| match *m {
            Member::Witness(i) => cosigned.get(i).copied().unwrap_or(false),
            Member::Group(g) => group_ok.get(g).copied().unwrap_or(false),
        };
        for g in &self.groups {
            let count = g.members.iter().filter(|m| member_ok(m, &group_ok)).count();
            group_ok.push(count >= g.threshold);
        }
        match &self.quorum {
            Quorum::None => true,
            Quorum::Member(m) => member_ok(m, &group_ok),
        }
    }

    /// Verify a cosigned checkpoint against the policy at time `now` (POSIX seconds): signed by
    /// a listed log whose key name is the origin, and cosigned by a quorum of witnesses.
    /// Cosignatures dated after `now` are not counted (a witness cannot have seen the future).
    pub fn verify_checkpoint(
        &self,
        msg: &[u8],
        now: u64,
    ) -> Result<AcceptedCheckpoint, PolicyCheckError> {
        let note = Note::parse(msg).map_err(|e| PolicyCheckError::Checkpoint {
            origin: String::new(),
            source: e.into(),
        })?;
        let origin = note
            .text()
            .split('\n')
            .next()
            .unwrap_or_default()
            .to_string();
        let witness_keys: Vec<NoteVerifier> =
            self.witnesses.iter().map(|w| w.verifier.clone()).collect();
        let mut last_err = None;
        for (log_index, log) in self.logs.iter().enumerate() {
            if log.verifier.name() != origin {
                continue;
            }
            match open_checkpoint(msg, &log.verifier, &witness_keys) {
                Ok(opened) => {
                    let mut cosigned = vec![false; self.witnesses.len()];
                    let mut counted = Vec::new();
                    for (w, c) in &opened.cosignatures {
                        if c.timestamp <= now
                            && let Some(slot) = cosigned.get_mut(*w)
                        {
                            *slot = true;
                            if let Some(pw) = self.witnesses.get(*w) {
                                counted.push(pw.name.clone());
                            }
                        }
                    }
                    if !self.quorum_met(&cosigned) {
                        return Err(PolicyCheckError::QuorumNotMet {
                            origin,
                            size: opened.checkpoint.size,
                            have: counted.join(", "),
                        });
                    }
                    return Ok(AcceptedCheckpoint {
                        log: log_index,
                        opened,
                        counted_witnesses: counted,
                    });
                }
                Err(e) => last_err = Some(e),
            }
        }
        match last_err {
            Some(source) => Err(PolicyCheckError::Checkpoint { origin, source }),
            None => Err(PolicyCheckError::UnknownLog(origin)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::cosignature::CosignatureSigner;
    use crate::tlog::keys::NoteSigner;

    struct Fixture {
        log: NoteSigner,
        x: Vec<CosignatureSigner>,
        y: Vec<CosignatureSigner>,
        text: String,
    }

    /// The spec's example: 2 of X1..X3 and any of Y1..Y3.
    fn fixture() -> Fixture {
        let log = NoteSigner::generate("example.com/log", KeyAlgorithm::Ed25519).unwrap();
        let x: Vec<_> = (1..=3)
            .map(|i| CosignatureSigner::generate(&format!("x{i}.example")).unwrap())
            .collect();
        let y: Vec<_> = (1..=3)
            .map(|i| CosignatureSigner::generate(&format!("y{i}.example")).unwrap())
            .collect();
        let mut text = format!(
            "# example policy\nlog {} https://log.example\n\n",
            log.verifier()
        );
        for (i, w) in x.iter().enumerate() {
            text.push_str(&format!("witness X{} {}\n", i + 1, w.verifier()));
        }
        text.push_str("group X-witnesses 2 X1 X2 X3\n\n");
        for (i, w) in y.iter().enumerate() {
            text.push_str(&format!("  witness\tY{} {}  \n", i + 1, w.verifier()));
        }
        text.push_str("group Y-witnesses any Y1 Y2 Y3\n\ngroup X-and-Y all X-witnesses Y-witnesses\nquorum X-and-Y\n");
        Fixture { log, x, y, text }
    }

    #[test]
    fn spec_example_quorum() {
        let f = fixture();
        let p = Policy::parse(f.text.as_bytes()).unwrap();
        assert_eq!(p.logs.len(), 1);
        assert_eq!(p.logs[0].url.as_deref(), Some("https://log.example"));
        assert_eq!(p.witnesses.len(), 6);
        let set = |on: &[usize]| {
            let mut v = vec![false; 6];
            for &i in on {
                v[i] = true;
            }
            v
        };
        assert!(p.quorum_met(&set(&[0, 1, 3])));
        assert!(p.quorum_met(&set(&[0, 2, 5])));
        assert!(!p.quorum_met(&set(&[0, 3, 4, 5])), "one X is not enough");
        assert!(!p.quorum_met(&set(&[0, 1, 2])), "no Y");
        assert!(!p.quorum_met(&[]));
    }

    #[test]
    fn checkpoint_against_policy() {
        let f = fixture();
        let p = Policy::parse(f.text.as_bytes()).unwrap();
        let cp = Checkpoint::new("example.com/log", 5, [2; 32]).unwrap();
        let mut note = cp.sign(&f.log).unwrap();
        f.x[0].cosign_note(&mut note, 100).unwrap();
        f.y[2].cosign_note(&mut note, 100).unwrap();
        // One X and one Y: not enough.
        assert!(matches!(
            p.verify_checkpoint(&note.to_bytes(), 1000),
            Err(PolicyCheckError::QuorumNotMet { .. })
        ));
        // A second X, but dated in the future: still not counted.
        let mut future = note.clone();
        f.x[1].cosign_note(&mut future, 2000).unwrap();
        assert!(p.verify_checkpoint(&future.to_bytes(), 1000).is_err());
        let accepted = p.verify_checkpoint(&future.to_bytes(), 2000).unwrap();
        assert_eq!(accepted.counted_witnesses.len(), 3);
        assert_eq!(accepted.checkpoint(), &cp);
        // An unknown origin.
        let other = NoteSigner::generate("example.com/other", KeyAlgorithm::Ed25519).unwrap();
        let n2 = Checkpoint::new("example.com/other", 5, [2; 32])
            .unwrap()
            .sign(&other)
            .unwrap();
        assert!(matches!(
            p.verify_checkpoint(&n2.to_bytes(), 1000),
            Err(PolicyCheckError::UnknownLog(_))
        ));
        // `quorum none` needs only the log.
        let none = format!("log {}\nquorum none\n", f.log.verifier());
        let pn = Policy::parse(none.as_bytes()).unwrap();
        pn.verify_checkpoint(&cp.sign(&f.log).unwrap().to_bytes(), 0)
            .unwrap();
    }

    #[test]
    fn malformed_policies_refused() {
        let f = fixture();
        let log = f.log.verifier().to_vkey();
        let w = f.x[0].verifier().to_vkey();
        let w2 = f.x[1].verifier().to_vkey();
        // The same witness key under another key name (cosignature/v1 does not sign the name).
        let w_renamed = NoteVerifier::new(
            "renamed.example",
            KeyAlgorithm::CosignatureV1,
            &f.x[0].verifier().public_key(),
        )
        .unwrap()
        .to_vkey();
        let cases = [
            format!("log {log}\n"),                                      // no quorum
            format!("log {log}\nquorum none\nquorum none\n"),            // two quorums
            format!("quorum A\nwitness A {w}\n"),                        // used before defined
            format!("witness A {w}\ngroup G 2 A\nquorum G\n"),           // k > n
            format!("witness A {w}\ngroup G 0 A\nquorum G\n"),           // k = 0
            format!("witness A {w}\ngroup G 01 A\nquorum G\n"),          // leading zero
            format!("witness A {w}\ngroup G any\nquorum G\n"),           // no members
            format!("witness A {w}\ngroup G any A A\nquorum G\n"),       // member twice
            format!("witness A {w}\nwitness A {w2}\nquorum A\n"),        // name twice
            format!("witness A {w}\nwitness B {w}\nquorum A\n"),         // duplicate key
            format!("witness A {w}\nwitness B {w_renamed}\nquorum A\n"), // same key, other name
            format!("witness none {w}\nquorum none\n"),                  // reserved name
            format!("witness A {w}\ngroup G any A none\nquorum G\n"),    // none as member
            format!("witness A {log}\nquorum A\n"),                      // 0x01 witness key
            format!("log {w}\nquorum none\n"),                           // 0x04 log key
            format!("log {log}\nlog {log}\nquorum none\n"),              // duplicate log
            format!("log {log} url extra\nquorum none\n"),               // too many fields
            format!("logg {log}\nquorum none\n"),                        // unknown keyword
            format!("log {log}\r\nquorum none\n"),                       // CR
            format!("witness A {w}x\nquorum A\n"),                       // bad key
        ];
        for c in cases {
            assert!(Policy::parse(c.as_bytes()).is_err(), "accepted {c:?}");
        }
        // The near-misses above differ from these valid policies in one point only.
        for ok in [
            format!("witness A {w}\ngroup G 1 A\nquorum G\n"),
            format!("witness A {w}\nwitness B {w2}\ngroup G all A B\nquorum G\n"),
            format!("log {log} url\nquorum none\n"),
        ] {
            Policy::parse(ok.as_bytes()).unwrap();
        }
        // Comments may hold any high-bit octets.
        let mut ok = b"# caf\xe9\n".to_vec();
        ok.extend_from_slice(format!("log {log}\nquorum none").as_bytes());
        Policy::parse(&ok).unwrap();
    }
}
