//! Signing through the vendor's own GnuPG: `gpg --detach-sign` with the key's fingerprint, so
//! gpg-agent, passphrase caching, smartcards and YubiKeys work as they do for every other use
//! of the key. Airlock never sees the private key; it reads the public certificate with
//! `gpg --export` and checks every signature gpg returns before using it.
//!
//! The binary is `$AIRLOCK_GPG` if set, else `gpg` from `PATH`; `GNUPGHOME` and the rest of
//! gpg's environment are passed through unchanged.

use std::ffi::OsString;
use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use airlock_core::crypto::{CryptoError, PublicKey, Signer, openpgp};

use crate::KeystoreError;

/// The environment variable naming the gpg binary.
pub const GPG_ENV: &str = "AIRLOCK_GPG";

/// Which gpg to run and with which home directory.
#[derive(Clone, Debug, Default)]
pub struct GpgConfig {
    /// The gpg binary; `None`: `$AIRLOCK_GPG`, else `gpg` from `PATH`.
    pub binary: Option<OsString>,
    /// `--homedir`; `None`: gpg's own choice (`GNUPGHOME`, else `~/.gnupg`).
    pub homedir: Option<std::path::PathBuf>,
}

/// A key in the user's GnuPG, used through `gpg`.
pub struct GpgSigner {
    gpg: OsString,
    home: Vec<OsString>,
    /// The exact (sub)key gpg signs with, 40 upper-case hex digits.
    fingerprint: String,
    public: PublicKey,
}

impl std::fmt::Debug for GpgSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpgSigner")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

fn gpg_binary() -> OsString {
    std::env::var_os(GPG_ENV)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "gpg".into())
}

/// gpg's stderr as one line: each message once, without gpg's trust-database housekeeping.
fn stderr_of(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr);
    let mut lines: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim) {
        let msg = line.strip_prefix("gpg: ").unwrap_or(line);
        let noise = msg.is_empty()
            || msg.contains("trustdb")
            || msg.starts_with("marginals needed")
            || msg.starts_with("depth:");
        if !noise && !lines.contains(&msg) {
            lines.push(msg);
        }
    }
    if lines.is_empty() {
        return format!("gpg exited with {}", out.status);
    }
    let mut joined = format!("gpg: {}", lines.join("; "));
    if joined.contains("Inappropriate ioctl for device") || joined.contains("No pinentry") {
        joined.push_str(
            " (gpg-agent could not ask for the passphrase or PIN: run from a terminal with \
             GPG_TTY=$(tty) exported, or configure a graphical pinentry)",
        );
    }
    joined
}

/// A key of a `--with-colons` listing.
#[derive(Debug)]
struct Listed {
    primary: bool,
    validity: char,
    created: u64,
    can_sign: bool,
    /// `+` secret here, `#` not here (a stub or an offline primary), `>` on a card.
    secret: String,
    fingerprint: String,
}

fn parse_listing(text: &str) -> Vec<Listed> {
    let mut keys: Vec<Listed> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        let field = |i: usize| f.get(i).copied().unwrap_or("");
        match field(0) {
            "sec" | "ssb" | "pub" | "sub" => keys.push(Listed {
                primary: matches!(field(0), "sec" | "pub"),
                validity: field(1).chars().next().unwrap_or('-'),
                created: field(5).parse().unwrap_or(0),
                // Lower-case letters are this key's own capabilities.
                can_sign: field(11).contains('s'),
                secret: field(14).to_string(),
                fingerprint: String::new(),
            }),
            "fpr" => {
                if let Some(k) = keys.last_mut()
                    && k.fingerprint.is_empty()
                {
                    k.fingerprint = field(9).to_string();
                }
            }
            _ => {}
        }
    }
    keys
}

impl GpgSigner {
    /// Find the signing key `id` names (a fingerprint, key id or user id, as gpg takes it) in
    /// the secret keyring and read its certificate.
    ///
    /// A fingerprint of a signing-capable (sub)key selects exactly that key; any other id
    /// selects, as gpg does, the newest valid signing subkey of the one certificate it names,
    /// else its primary key.
    pub fn open(id: &str) -> Result<GpgSigner, KeystoreError> {
        Self::open_with(id, &GpgConfig::default())
    }

    /// [`GpgSigner::open`] with an explicit binary or home directory.
    pub fn open_with(id: &str, config: &GpgConfig) -> Result<GpgSigner, KeystoreError> {
        Self::find(id, config, true)
    }

    /// Find the key as [`GpgSigner::open_with`] does, the secret part of the keyring when
    /// `secret`, else the public keyring only (for listing a key whose secret is elsewhere).
    fn find(id: &str, config: &GpgConfig, secret: bool) -> Result<GpgSigner, KeystoreError> {
        let key = format!("gpg:{id}");
        let bad = |reason: String| KeystoreError::KeyRef {
            key: key.clone(),
            reason,
        };
        let gpg = config.binary.clone().unwrap_or_else(gpg_binary);
        let home: Vec<OsString> = match &config.homedir {
            Some(h) => vec!["--homedir".into(), h.clone().into_os_string()],
            None => Vec::new(),
        };
        let run = |args: &[&str]| -> Result<Output, KeystoreError> {
            Command::new(&gpg)
                .args(&home)
                .args(args)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| {
                    bad(format!(
                        "cannot run {} ({e}); install GnuPG or set {GPG_ENV}",
                        gpg.to_string_lossy()
                    ))
                })
        };
        let list = if secret {
            "--list-secret-keys"
        } else {
            "--list-keys"
        };
        let listing = run(&[
            "--batch",
            "--with-colons",
            "--fixed-list-mode",
            list,
            "--",
            id,
        ])?;
        if !listing.status.success() {
            let err = stderr_of(&listing);
            if secret && (err.contains("No secret key") || err.contains("No public key")) {
                return Err(KeystoreError::KeyNotHere {
                    key,
                    reason: "no such secret key in the GnuPG keyring".into(),
                });
            }
            return Err(bad(format!("gpg {list} failed: {err}")));
        }
        let keys = parse_listing(&String::from_utf8_lossy(&listing.stdout));
        if keys.iter().filter(|k| k.primary).count() > 1 {
            return Err(bad(
                "names more than one GnuPG key; give the fingerprint (gpg --list-secret-keys)"
                    .into(),
            ));
        }
        let wanted: String = id
            .trim_start_matches("0x")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        let usable = |k: &&Listed| k.can_sign && !matches!(k.validity, 'e' | 'r' | 'i' | 'd' | 'n');
        let chosen = match keys.iter().find(|k| k.fingerprint == wanted) {
            Some(k) if k.can_sign => Some(k),
            _ => keys
                .iter()
                .filter(|k| !k.primary)
                .filter(usable)
                .max_by_key(|k| k.created)
                .or_else(|| keys.iter().filter(|k| k.primary).find(usable)),
        };
        let chosen = chosen.ok_or_else(|| {
            bad("has no valid key with the signing capability in the GnuPG keyring".into())
        })?;
        if secret && chosen.secret == "#" {
            return Err(KeystoreError::KeyNotHere {
                key,
                reason: format!(
                    "the secret part of {} is not in this GnuPG keyring",
                    chosen.fingerprint
                ),
            });
        }
        let fingerprint = chosen.fingerprint.clone();
        let export = run(&[
            "--batch",
            "--export",
            "--export-options",
            "export-minimal",
            "--",
            &fingerprint,
        ])?;
        if !export.status.success() || export.stdout.is_empty() {
            return Err(bad(format!("gpg --export failed: {}", stderr_of(&export))));
        }
        let public = openpgp::public_key_from_certificate(&export.stdout, &fingerprint, now())
            .map_err(|e| bad(format!("key {fingerprint} cannot sign TUF metadata: {e}")))?;
        Ok(GpgSigner {
            gpg,
            home,
            fingerprint,
            public,
        })
    }

    /// The fingerprint of the (sub)key that signs.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The TUF public key of the signing key `id` names, from the public keyring: for listing a
/// GnuPG key whose secret lives on another machine (`airlock key public gpg:KEYID`).
pub fn public_key(id: &str, config: &GpgConfig) -> Result<PublicKey, KeystoreError> {
    GpgSigner::find(id, config, false).map(|s| s.public)
}

impl Signer for GpgSigner {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let failed = |reason: String| CryptoError::Signing {
            scheme: self.public.scheme.clone(),
            reason: format!("gpg key {}: {reason}", self.fingerprint),
        };
        // `FPR!` makes gpg use exactly this (sub)key; SHA-256 is the scheme's hash.
        let local_user = format!("{}!", self.fingerprint);
        let mut child = Command::new(&self.gpg)
            .args(&self.home)
            .args([
                "--detach-sign",
                "--digest-algo",
                "SHA256",
                "--local-user",
                &local_user,
                "--output",
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("cannot run {}: {e}", self.gpg.to_string_lossy())))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| failed("no stdin".into()))?;
        let input = msg.to_vec();
        // Written from another thread: gpg may write before it has read everything.
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child
            .wait_with_output()
            .map_err(|e| failed(format!("gpg did not finish: {e}")))?;
        let written = writer.join();
        if !out.status.success() {
            return Err(failed(format!(
                "gpg --detach-sign failed: {}",
                stderr_of(&out)
            )));
        }
        if !matches!(written, Ok(Ok(()))) {
            return Err(failed("gpg did not read the whole message".into()));
        }
        let raw = openpgp::raw_from_packet(&out.stdout)
            .map_err(|e| failed(format!("gpg's output is not a signature: {e}")))?;
        // Never hand on a signature clients would refuse (another key, another hash).
        self.public.verify(msg, &raw).map_err(|e| {
            failed(format!(
                "the signature gpg made does not verify with this key: {e}"
            ))
        })?;
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colon_listing_is_read() {
        let text = "sec:u:255:22:4F735663EA9CA207:1796610337:::u:::cSC:::+::ed25519:::0:\n\
            fpr:::::::::34F0B358F31896525FFD0FDD4F735663EA9CA207:\n\
            grp:::::::::7D50532D03039CB394EE489C5434AC815D80EE79:\n\
            ssb:u:255:22:0927A704A4100F53:1796610338::::::s:::#::ed25519::\n\
            fpr:::::::::6BC7FFF60536B703D8640F9A0927A704A4100F53:\n";
        let keys = parse_listing(text);
        assert_eq!(keys.len(), 2);
        assert!(keys[0].primary && !keys[0].can_sign);
        assert_eq!(
            keys[0].fingerprint,
            "34F0B358F31896525FFD0FDD4F735663EA9CA207"
        );
        assert!(!keys[1].primary && keys[1].can_sign && keys[1].secret == "#");
        assert_eq!(keys[1].created, 1796610338);
    }
}
