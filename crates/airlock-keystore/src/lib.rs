#![forbid(unsafe_code)]
//! Key files on disk: encrypted by default (mode 0600), passphrase from a prompt, an environment
//! variable or a file descriptor.
//!
//! The byte format lives in `airlock_core::crypto::keyfile` (encrypted PKCS#8 PEM); this crate
//! adds the file system (atomic writes, permissions) and passphrase sources. Every error names
//! the file it concerns.
//!
//! ```no_run
//! use airlock_core::crypto::{KeyScheme, PrivateKey};
//! use airlock_keystore::{PassphraseSource, Protection, read_private_key, write_private_key};
//!
//! let key = PrivateKey::generate(KeyScheme::Ed25519)?;
//! let pass = PassphraseSource::Env("AIRLOCK_PASSPHRASE".into());
//! write_private_key("root.key".as_ref(), &key, &Protection::encrypted(pass.clone()))?;
//! let again = read_private_key("root.key".as_ref(), &pass)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use airlock_core::crypto::keyfile::{self, KeyFileEncoding, MAX_KEY_FILE_LEN};
use airlock_core::crypto::{CryptoError, PrivateKey, PublicKey};
use airlock_fs::WriteOptions;
use zeroize::Zeroizing;

pub mod gpg;
mod key_ref;
mod note_key;
pub mod pkcs11;
pub use key_ref::KeyRef;
pub use note_key::{generate_note_key, read_note_key};

/// Re-exported so callers need only this crate: the scrypt cost knob and the format errors.
pub use airlock_core::crypto::keyfile::{KdfCost, KeyFileError};

/// Longest passphrase read from a file descriptor or the environment.
const MAX_PASSPHRASE_LEN: usize = 4096;
/// Largest public key file read.
const MAX_PUBLIC_KEY_FILE_LEN: usize = 64 * 1024;

/// What went wrong, always naming the file (or passphrase source) concerned.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("key file {path}")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: KeyFileError,
    },
    #[error("key file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("public key file {path}: {reason}")]
    PublicKey { path: PathBuf, reason: String },
    #[error("public key file {path}")]
    PublicKeyCrypto {
        path: PathBuf,
        #[source]
        source: CryptoError,
    },
    #[error("passphrase for {path}: {reason}")]
    Passphrase { path: PathBuf, reason: String },
    #[error(transparent)]
    Fs(airlock_fs::FsError),
    #[error("{path} already exists; refusing to overwrite a key file")]
    Exists { path: PathBuf },
    #[error("note key file {path}: {reason}")]
    NoteKey { path: PathBuf, reason: String },
    /// A keystore note key file read without its key name (the caller's configuration lacks it).
    #[error("note key file {path}: the key name is needed to read it")]
    NoteKeyNameMissing { path: PathBuf },
    /// A key named by reference (`gpg:...`, `pkcs11:...`) that cannot be used.
    #[error("key {key}: {reason}")]
    KeyRef { key: String, reason: String },
    /// The key's holder is reachable but does not have the key (a token not plugged in, a
    /// GnuPG key kept on another machine): for a repository, the key is offline.
    #[error("key {key} is not available on this machine: {reason}")]
    KeyNotHere { key: String, reason: String },
}

/// Where a passphrase comes from.
#[derive(Clone, Debug)]
pub enum PassphraseSource {
    /// Ask on the terminal (rpassword); when writing, ask twice and require a match.
    Prompt,
    /// The value of this environment variable (e.g. `AIRLOCK_PASSPHRASE`), for CI.
    Env(String),
    /// Read from this already-open file descriptor until newline or EOF, for cron and CI
    /// (`airlock ... --passphrase-fd 3 3<secret`). Uses `/dev/fd/N`, so it works on Linux and
    /// macOS.
    Fd(i32),
    /// A passphrase the program already holds (tests, or a caller with its own source).
    Value(Zeroizing<String>),
}

impl PassphraseSource {
    /// Obtain the passphrase for `path`. `confirm` asks twice on a prompt (when writing).
    pub fn obtain(&self, path: &Path, confirm: bool) -> Result<Zeroizing<String>, KeystoreError> {
        let err = |reason: String| KeystoreError::Passphrase {
            path: path.to_path_buf(),
            reason,
        };
        let pass = match self {
            PassphraseSource::Prompt => {
                let first = Zeroizing::new(
                    rpassword::prompt_password(format!("Passphrase for {}: ", path.display()))
                        .map_err(|e| err(format!("cannot read from the terminal: {e}")))?,
                );
                if confirm {
                    let again = Zeroizing::new(
                        rpassword::prompt_password("Repeat the passphrase: ")
                            .map_err(|e| err(format!("cannot read from the terminal: {e}")))?,
                    );
                    if *first != *again {
                        return Err(err("the two passphrases differ".into()));
                    }
                }
                first
            }
            PassphraseSource::Env(name) => match std::env::var(name) {
                Ok(v) => Zeroizing::new(v),
                Err(std::env::VarError::NotPresent) => {
                    return Err(err(format!("environment variable {name} is not set")));
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(err(format!("environment variable {name} is not UTF-8")));
                }
            },
            PassphraseSource::Fd(fd) => read_fd(*fd).map_err(err)?,
            PassphraseSource::Value(v) => v.clone(),
        };
        if pass.is_empty() {
            return Err(err("the passphrase is empty".into()));
        }
        if pass.len() > MAX_PASSPHRASE_LEN {
            return Err(err(format!(
                "the passphrase is longer than {MAX_PASSPHRASE_LEN} bytes"
            )));
        }
        Ok(pass)
    }
}

/// Read one line (without its line ending) from file descriptor `fd`.
fn read_fd(fd: i32) -> Result<Zeroizing<String>, String> {
    if fd < 0 {
        return Err(format!("invalid file descriptor {fd}"));
    }
    let file = File::open(format!("/dev/fd/{fd}"))
        .map_err(|e| format!("cannot open file descriptor {fd}: {e}"))?;
    let mut buf = Zeroizing::new(Vec::new());
    // Read byte-wise up to the first newline, so that a pipe carrying more than the passphrase
    // is not consumed past it.
    let mut byte = [0u8; 1];
    let mut reader = file;
    loop {
        match reader.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => {
                if byte[0] == b'\n' {
                    break;
                }
                if buf.len() >= MAX_PASSPHRASE_LEN {
                    return Err(format!(
                        "more than {MAX_PASSPHRASE_LEN} bytes on file descriptor {fd}"
                    ));
                }
                buf.push(byte[0]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read file descriptor {fd}: {e}")),
        }
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    let s =
        String::from_utf8(buf.to_vec()).map_err(|_| "the passphrase is not UTF-8".to_string())?;
    Ok(Zeroizing::new(s))
}

/// How a private key file is protected.
#[derive(Clone, Debug)]
pub enum Protection {
    /// Encrypted PKCS#8 (PBES2, scrypt + AES-256-GCM). The default.
    Encrypted {
        passphrase: PassphraseSource,
        cost: KdfCost,
    },
    /// No encryption at all. Only for tests and throw-away demos; never for real keys.
    PlaintextForTests,
}

impl Protection {
    /// Encrypted with the interactive-strength scrypt cost.
    pub fn encrypted(passphrase: PassphraseSource) -> Self {
        Protection::Encrypted {
            passphrase,
            cost: KdfCost::Interactive,
        }
    }

    /// Encrypted with a cheap scrypt cost: keeps test suites fast. Never for real keys.
    pub fn encrypted_fast_for_tests(passphrase: PassphraseSource) -> Self {
        Protection::Encrypted {
            passphrase,
            cost: KdfCost::InsecureFastForTests,
        }
    }
}

/// Shortest passphrase accepted for a new key with the interactive scrypt cost.
pub const MIN_PASSPHRASE_CHARS: usize = 12;
/// Fewest distinct characters in such a passphrase (refuses `aaaaaaaaaaaa`, `121212121212`).
pub const MIN_PASSPHRASE_DISTINCT: usize = 5;

/// The strength rule for a passphrase that protects a new key: at least
/// [`MIN_PASSPHRASE_CHARS`] characters, of which [`MIN_PASSPHRASE_DISTINCT`] differ. A few
/// words (`correct horse battery staple`) pass; a short or repetitive one does not.
pub fn check_passphrase_strength(pass: &str) -> Result<(), String> {
    let chars = pass.chars().count();
    if chars < MIN_PASSPHRASE_CHARS {
        return Err(format!(
            "the passphrase is too weak: {chars} characters, at least {MIN_PASSPHRASE_CHARS} are \
             needed (a few words make a good one)"
        ));
    }
    let distinct = pass
        .chars()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if distinct < MIN_PASSPHRASE_DISTINCT {
        return Err(format!(
            "the passphrase is too weak: only {distinct} different characters, at least \
             {MIN_PASSPHRASE_DISTINCT} are needed"
        ));
    }
    Ok(())
}

/// Passphrases typed at a prompt during this run, so that keys sharing a passphrase cost one
/// prompt per run, not one per key. Only prompted values are kept (environment and file
/// descriptor sources are read again each time, which costs nothing).
static PROMPTED: std::sync::Mutex<Vec<Zeroizing<String>>> = std::sync::Mutex::new(Vec::new());

fn prompted() -> std::sync::MutexGuard<'static, Vec<Zeroizing<String>>> {
    // A panic while holding the lock cannot leave the list half-updated (push is the only
    // mutation), so a poisoned lock is still usable.
    PROMPTED.lock().unwrap_or_else(|p| p.into_inner())
}

fn remember_prompted(pass: &Zeroizing<String>) {
    let mut list = prompted();
    if !list.iter().any(|p| **p == **pass) {
        list.push(pass.clone());
    }
}

/// Write `key` to `path` (atomically, mode 0600). Refuses to overwrite an existing file, so a
/// key is never lost by accident. A passphrase for a real (interactive-cost) key must pass
/// [`check_passphrase_strength`]. With [`PassphraseSource::Prompt`], the passphrase typed for
/// the previous key of this run is reused instead of asking again.
pub fn write_private_key(
    path: &Path,
    key: &PrivateKey,
    protection: &Protection,
) -> Result<(), KeystoreError> {
    if path.exists() {
        return Err(KeystoreError::Exists {
            path: path.to_path_buf(),
        });
    }
    let pem = encode_key(path, key, protection, true)?;
    write_atomic(path, pem.as_bytes(), WriteOptions::private().no_clobber())
}

/// Replace the key file at `path` with `key` under a new protection (a passphrase change),
/// atomically: a crash leaves the old file or the new one. The same strength rule applies; a
/// prompt always asks anew (the passphrase typed to read the key is the old one).
pub fn rewrite_private_key(
    path: &Path,
    key: &PrivateKey,
    protection: &Protection,
) -> Result<(), KeystoreError> {
    let pem = encode_key(path, key, protection, false)?;
    write_atomic(path, pem.as_bytes(), WriteOptions::private())
}

fn encode_key(
    path: &Path,
    key: &PrivateKey,
    protection: &Protection,
    reuse_prompted: bool,
) -> Result<Zeroizing<String>, KeystoreError> {
    let kf = |source| KeystoreError::KeyFile {
        path: path.to_path_buf(),
        source,
    };
    let pem = match protection {
        Protection::PlaintextForTests => {
            keyfile::encode_private_key(key, KeyFileEncoding::PlaintextForTests).map_err(kf)?
        }
        Protection::Encrypted { passphrase, cost } => {
            let reused = match passphrase {
                PassphraseSource::Prompt if reuse_prompted => prompted().last().cloned(),
                _ => None,
            };
            let pass = match reused {
                Some(p) => p,
                None => passphrase.obtain(path, true)?,
            };
            if *cost == KdfCost::Interactive {
                check_passphrase_strength(&pass).map_err(|reason| KeystoreError::Passphrase {
                    path: path.to_path_buf(),
                    reason,
                })?;
            }
            if matches!(passphrase, PassphraseSource::Prompt) {
                remember_prompted(&pass);
            }
            keyfile::encode_private_key(
                key,
                KeyFileEncoding::Encrypted {
                    passphrase: pass.as_bytes(),
                    cost: *cost,
                },
            )
            .map_err(kf)?
        }
    };
    Ok(pem)
}

/// Read a private key file. The passphrase is obtained only if the file is encrypted. With
/// [`PassphraseSource::Prompt`], passphrases already typed in this run are tried first.
pub fn read_private_key(
    path: &Path,
    passphrase: &PassphraseSource,
) -> Result<PrivateKey, KeystoreError> {
    let kf = |source| KeystoreError::KeyFile {
        path: path.to_path_buf(),
        source,
    };
    let bytes = read_capped(path, MAX_KEY_FILE_LEN)?;
    if !keyfile::is_encrypted(&bytes).map_err(kf)? {
        return keyfile::decode_private_key(&bytes, None).map_err(kf);
    }
    if matches!(passphrase, PassphraseSource::Prompt) {
        let known: Vec<Zeroizing<String>> = prompted().clone();
        for pass in known.iter().rev() {
            match keyfile::decode_private_key(&bytes, Some(pass.as_bytes())) {
                Ok(key) => return Ok(key),
                Err(KeyFileError::WrongPassphrase) => continue,
                Err(e) => return Err(kf(e)),
            }
        }
    }
    let pass = passphrase.obtain(path, false)?;
    let key = keyfile::decode_private_key(&bytes, Some(pass.as_bytes())).map_err(kf)?;
    if matches!(passphrase, PassphraseSource::Prompt) {
        remember_prompted(&pass);
    }
    Ok(key)
}

/// Write a public key as TUF JSON (`{"keytype", "scheme", "keyval"}` plus any extra fields),
/// atomically, mode 0644, replacing an existing file.
pub fn write_public_key(path: &Path, key: &PublicKey) -> Result<(), KeystoreError> {
    let mut json = serde_json::to_vec_pretty(key).map_err(|e| KeystoreError::PublicKey {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    json.push(b'\n');
    write_atomic(path, &json, WriteOptions::public())
}

/// Read a TUF JSON public key and check its key material parses for its scheme.
pub fn read_public_key(path: &Path) -> Result<PublicKey, KeystoreError> {
    let bytes = read_capped(path, MAX_PUBLIC_KEY_FILE_LEN)?;
    let key: PublicKey = serde_json::from_slice(&bytes).map_err(|e| KeystoreError::PublicKey {
        path: path.to_path_buf(),
        reason: format!("not a TUF public key JSON object: {e}"),
    })?;
    key.validate()
        .map_err(|source| KeystoreError::PublicKeyCrypto {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(key)
}

fn read_capped(path: &Path, cap: usize) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
    let io = |source| KeystoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut buf = Zeroizing::new(Vec::new());
    let cap_u64 = u64::try_from(cap).unwrap_or(u64::MAX);
    file.take(cap_u64.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() > cap {
        return Err(KeystoreError::KeyFile {
            path: path.to_path_buf(),
            source: KeyFileError::TooLarge,
        });
    }
    Ok(buf)
}

/// Write through the one atomic writer; a taken name becomes [`KeystoreError::Exists`].
fn write_atomic(path: &Path, bytes: &[u8], options: WriteOptions) -> Result<(), KeystoreError> {
    airlock_fs::write_atomic(path, bytes, &options).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeystoreError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            KeystoreError::Fs(e)
        }
    })
}
