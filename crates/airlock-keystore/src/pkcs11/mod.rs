//! Keys on a PKCS#11 token (a smartcard, a YubiKey, an HSM, SoftHSM), named by an RFC 7512 URI.
//!
//! The private key never leaves the token: we only ask the token to sign, and never read a
//! secret attribute. The token's public key becomes exactly the TUF key Airlock's key files
//! produce for the scheme (`airlock_core::crypto::external`), so it has the same key id, and
//! every signature the token returns is verified against it before it is used: a token that
//! answers with garbage fails the command instead of producing metadata nobody can verify.
//!
//! Mechanisms: Ed25519 with CKM_EDDSA; ECDSA P-256 with CKM_ECDSA over the SHA-256 digest (the
//! mechanism every token has), the `r || s` answer turned into low-S DER; RSA with
//! CKM_SHA256_RSA_PKCS_PSS, MGF1-SHA-256, 32-byte salt (docs/keys.md).
//!
//! The module (a shared library) is loaded by the `cryptoki` crate; the unsafe FFI lives there,
//! this crate stays `forbid(unsafe_code)`. Loading a module runs its code: the URI's
//! module-path comes from the user's command line or repository configuration, never from
//! metadata.

mod list;
mod objects;
mod uri;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use airlock_core::crypto::{CryptoError, KeyScheme, PublicKey, Signer, external};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub use list::{ListedKey, ListedToken, list, public_key};
pub use uri::{ObjectType, Pkcs11Uri, UriError, UriPin};

use objects::{attrs, bool_attr, pair_public};

use crate::{KeystoreError, PassphraseSource};

/// Longest PIN read from a `pin-source` file.
const MAX_PIN_LEN: usize = 256;

/// A key on a token, ready to sign.
struct TokenSigner {
    session: Mutex<Session>,
    key: ObjectHandle,
    scheme: KeyScheme,
    public: PublicKey,
    /// The URI (PIN hidden) and token label, for messages.
    what: String,
}

impl Signer for TokenSigner {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let failed = |reason: String| CryptoError::Signing {
            scheme: self.public.scheme.clone(),
            reason,
        };
        // A poisoned lock only means another signature panicked half-way; the session itself
        // holds no state of ours between calls.
        let session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let sig = match self.scheme {
            KeyScheme::Ed25519 => session.sign(
                &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                self.key,
                msg,
            ),
            KeyScheme::EcdsaP256 => {
                let digest = Sha256::digest(msg);
                session
                    .sign(&Mechanism::Ecdsa, self.key, &digest)
                    .and_then(|raw| {
                        external::ecdsa_p256_signature_der(&raw).map_err(|_| CkError::InvalidValue)
                    })
            }
            KeyScheme::RsaPssSha256 => session.sign(
                &Mechanism::Sha256RsaPkcsPss(PkcsPssParams {
                    hash_alg: MechanismType::SHA256,
                    mgf: PkcsMgfType::MGF1_SHA256,
                    s_len: 32.into(),
                }),
                self.key,
                msg,
            ),
            other => return Err(failed(format!("{other} keys cannot live on a token"))),
        }
        .map_err(|e| failed(format!("{}: {}", self.what, ck_reason(&e))))?;
        // Fail closed: a signature that does not verify never reaches metadata.
        self.public.verify(msg, &sig).map_err(|e| {
            failed(format!(
                "{}: the token's signature does not verify with its public key ({e})",
                self.what
            ))
        })?;
        Ok(sig)
    }
}

/// A short reason for a PKCS#11 failure (cryptoki's texts quote the whole specification).
fn ck_reason(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, f) => {
            let what = match rv {
                RvError::PinIncorrect => "wrong PIN",
                RvError::PinLocked => "the PIN is locked (too many wrong tries)",
                RvError::PinExpired => "the PIN has expired",
                RvError::TokenNotPresent | RvError::DeviceRemoved => "the token was removed",
                RvError::UserNotLoggedIn => "not logged in to the token",
                RvError::KeyFunctionNotPermitted => "the key may not be used for signing",
                RvError::MechanismInvalid => "the token does not offer this signature mechanism",
                RvError::MechanismParamInvalid => "the token refused the mechanism's parameters",
                RvError::KeyTypeInconsistent => "the key does not fit the signature mechanism",
                _ => return format!("{f:?}: {rv:?}"),
            };
            format!("{what} ({f:?})")
        }
        CkError::LibraryLoading(e) => format!("cannot load the module: {e}"),
        other => other.to_string(),
    }
}

fn bad(uri: &Pkcs11Uri, reason: impl Into<String>) -> KeystoreError {
    KeystoreError::KeyRef {
        key: uri.redacted().to_string(),
        reason: reason.into(),
    }
}

fn not_here(uri: &Pkcs11Uri, reason: impl Into<String>) -> KeystoreError {
    KeystoreError::KeyNotHere {
        key: uri.redacted().to_string(),
        reason: reason.into(),
    }
}

fn parse(uri: &str) -> Result<Pkcs11Uri, KeystoreError> {
    Pkcs11Uri::parse(uri).map_err(|e| KeystoreError::KeyRef {
        // The text may hold a pin-value; show none of it when it does not even parse.
        key: if uri.contains("pin-value") {
            "pkcs11:...".into()
        } else {
            uri.to_string()
        },
        reason: e.to_string(),
    })
}

/// Directories searched for `module-name=NAME` (p11-kit's module directories, then the
/// library directories).
fn module_dirs() -> Vec<PathBuf> {
    let triplet = format!("/usr/lib/{}-linux-gnu", std::env::consts::ARCH);
    [
        format!("{triplet}/pkcs11"),
        "/usr/lib64/pkcs11".into(),
        "/usr/lib/pkcs11".into(),
        "/usr/local/lib/pkcs11".into(),
        triplet,
        "/usr/lib64".into(),
        "/usr/lib".into(),
        "/usr/local/lib".into(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

/// The module file the URI names. A module that is not installed here means the key's holder
/// is not on this machine.
fn module_file(uri: &Pkcs11Uri) -> Result<PathBuf, KeystoreError> {
    if let Some(p) = &uri.module_path {
        return std::fs::canonicalize(p).map_err(|e| {
            not_here(
                uri,
                format!("PKCS#11 module {} is not here: {e}", p.display()),
            )
        });
    }
    if let Some(name) = &uri.module_name {
        let names = if name.contains(".so") {
            vec![name.clone()]
        } else {
            vec![format!("{name}.so"), name.clone()]
        };
        for dir in module_dirs() {
            for n in &names {
                if let Ok(p) = std::fs::canonicalize(dir.join(n)) {
                    return Ok(p);
                }
            }
        }
        return Err(not_here(
            uri,
            format!("no PKCS#11 module {name:?} in the module directories"),
        ));
    }
    Err(bad(
        uri,
        "the URI names no PKCS#11 module: add ?module-path=/path/to/module.so",
    ))
}

/// One initialised context per module for the whole process: PKCS#11 allows one C_Initialize
/// per library, and a token's login is shared by all sessions of the process.
fn context(uri: &Pkcs11Uri, module: &Path) -> Result<Pkcs11, KeystoreError> {
    static CONTEXTS: OnceLock<Mutex<BTreeMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut map = CONTEXTS
        .get_or_init(|| Mutex::new(BTreeMap::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = map.get(module) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(module).map_err(|e| {
        bad(
            uri,
            format!("PKCS#11 module {}: {}", module.display(), ck_reason(&e)),
        )
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(bad(
                uri,
                format!(
                    "PKCS#11 module {} does not start: {}",
                    module.display(),
                    ck_reason(&e)
                ),
            ));
        }
    }
    map.insert(module.to_path_buf(), ctx.clone());
    Ok(ctx)
}

/// A token present in a slot and matching the URI.
struct Token {
    slot: Slot,
    label: String,
    login_required: bool,
    protected_path: bool,
}

/// The tokens that match the URI's token, slot and library attributes.
fn tokens(uri: &Pkcs11Uri, ctx: &Pkcs11) -> Result<Vec<Token>, KeystoreError> {
    let fail = |what: &str, e: CkError| bad(uri, format!("{what}: {}", ck_reason(&e)));
    if uri.library_manufacturer.is_some()
        || uri.library_description.is_some()
        || uri.library_version.is_some()
    {
        let info = ctx
            .get_library_info()
            .map_err(|e| fail("module information", e))?;
        let v = info.library_version();
        let lib_matches = uri
            .library_manufacturer
            .as_deref()
            .is_none_or(|m| m == info.manufacturer_id())
            && uri
                .library_description
                .as_deref()
                .is_none_or(|d| d == info.library_description())
            && uri
                .library_version
                .is_none_or(|(major, minor)| major == v.major() && minor == v.minor());
        if !lib_matches {
            return Err(not_here(
                uri,
                format!(
                    "the module is {:?} by {:?}, version {}.{}; the URI names another library",
                    info.library_description(),
                    info.manufacturer_id(),
                    v.major(),
                    v.minor()
                ),
            ));
        }
    }
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| fail("listing the slots", e))?;
    let mut out = Vec::new();
    for slot in slots {
        if uri.slot_id.is_some_and(|id| id != slot.id()) {
            continue;
        }
        if uri.slot_description.is_some() || uri.slot_manufacturer.is_some() {
            let info = ctx
                .get_slot_info(slot)
                .map_err(|e| fail("slot information", e))?;
            if uri
                .slot_description
                .as_deref()
                .is_some_and(|d| d != info.slot_description())
                || uri
                    .slot_manufacturer
                    .as_deref()
                    .is_some_and(|m| m != info.manufacturer_id())
            {
                continue;
            }
        }
        let info = match ctx.get_token_info(slot) {
            Ok(i) => i,
            // Removed between the two calls: not present.
            Err(CkError::Pkcs11(RvError::TokenNotPresent, _)) => continue,
            Err(e) => return Err(fail("token information", e)),
        };
        // A token not initialised yet (SoftHSM2's free slot, a blank card) holds no keys.
        if !info.token_initialized() {
            continue;
        }
        let matches = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        if matches(&uri.token, info.label())
            && matches(&uri.manufacturer, info.manufacturer_id())
            && matches(&uri.model, info.model())
            && matches(&uri.serial, info.serial_number())
        {
            out.push(Token {
                slot,
                label: info.label().to_string(),
                login_required: info.login_required(),
                protected_path: info.protected_authentication_path(),
            });
        }
    }
    Ok(out)
}

fn token_name(uri: &Pkcs11Uri) -> String {
    match &uri.token {
        Some(t) => format!("token {t:?}"),
        None => "a token".into(),
    }
}

/// The one token the URI names. None present: the key is not here.
fn the_token(uri: &Pkcs11Uri, ctx: &Pkcs11) -> Result<Token, KeystoreError> {
    let mut found = tokens(uri, ctx)?;
    match found.len() {
        0 => Err(not_here(
            uri,
            format!(
                "no {} is present",
                token_name(uri).replacen("a token", "token", 1)
            ),
        )),
        1 => Ok(found.remove(0)),
        n => Err(bad(
            uri,
            format!(
                "{n} tokens match ({}); add token= or serial= to the URI",
                found
                    .iter()
                    .map(|t| format!("{:?}", t.label))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Log in to `token` with the URI's PIN, else the caller's source. A token with its own PIN
/// pad (protected authentication path) asks there.
fn login(
    uri: &Pkcs11Uri,
    token: &Token,
    session: &Session,
    secret: &PassphraseSource,
) -> Result<(), KeystoreError> {
    // A login holds for every session of the process on this token: a second key of the same
    // token costs no second PIN prompt.
    if session.get_session_info().is_ok_and(|i| {
        matches!(
            i.session_state(),
            SessionState::RoUser | SessionState::RwUser
        )
    }) {
        return Ok(());
    }
    let pin: Option<Zeroizing<String>> = match &uri.pin {
        Some(UriPin::Value(v)) => Some(v.clone()),
        Some(UriPin::File(p)) => Some(read_pin_file(uri, p)?),
        None if token.protected_path => None,
        None => Some(obtain_pin(uri, token, secret)?),
    };
    let auth = pin.map(|p| AuthPin::from(p.as_str()));
    match session.login(UserType::User, auth.as_ref()) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(bad(
            uri,
            format!(
                "wrong PIN for PKCS#11 token {:?} (the token counts failed tries and may lock \
                 the PIN)",
                token.label
            ),
        )),
        Err(e) => Err(bad(
            uri,
            format!(
                "login to PKCS#11 token {:?}: {}",
                token.label,
                ck_reason(&e)
            ),
        )),
    }
}

fn obtain_pin(
    uri: &Pkcs11Uri,
    token: &Token,
    secret: &PassphraseSource,
) -> Result<Zeroizing<String>, KeystoreError> {
    if let PassphraseSource::Prompt = secret {
        return rpassword::prompt_password(format!("PIN for PKCS#11 token {:?}: ", token.label))
            .map(Zeroizing::new)
            .map_err(|e| {
                bad(
                    uri,
                    format!(
                        "PIN for token {:?}: cannot read from the terminal: {e}",
                        token.label
                    ),
                )
            });
    }
    let what = PathBuf::from(format!("PKCS#11 token {:?}", token.label));
    secret.obtain(&what, false).map_err(|e| match e {
        KeystoreError::Passphrase { reason, .. } => bad(
            uri,
            format!(
                "PIN for token {:?}: {reason} (give it with --passphrase-env, --passphrase-fd, \
                 AIRLOCK_PASSPHRASE or pin-source=file:/path in the URI)",
                token.label
            ),
        ),
        other => other,
    })
}

fn read_pin_file(uri: &Pkcs11Uri, path: &Path) -> Result<Zeroizing<String>, KeystoreError> {
    use std::io::Read as _;
    let mut bytes = Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PIN_LEN as u64 + 2).read_to_end(&mut bytes))
        .map_err(|e| bad(uri, format!("pin-source {}: {e}", path.display())))?;
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() || line.len() > MAX_PIN_LEN {
        return Err(bad(
            uri,
            format!(
                "pin-source {}: the first line must hold the PIN (1 to {MAX_PIN_LEN} bytes)",
                path.display()
            ),
        ));
    }
    let pin = std::str::from_utf8(line)
        .map_err(|_| bad(uri, format!("pin-source {}: not UTF-8", path.display())))?;
    Ok(Zeroizing::new(pin.to_string()))
}

/// The search template for the URI's key of `class`.
fn template(uri: &Pkcs11Uri, class: ObjectClass) -> Vec<Attribute> {
    let mut t = vec![Attribute::Class(class)];
    if let Some(l) = &uri.object {
        t.push(Attribute::Label(l.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        t.push(Attribute::Id(id.clone()));
    }
    t
}

fn key_name(uri: &Pkcs11Uri) -> String {
    match (&uri.object, &uri.id) {
        (Some(l), _) => format!("object {l:?}"),
        (None, Some(id)) => format!("object with id {}", hex::encode(id)),
        (None, None) => "object".into(),
    }
}

/// Open the key a `pkcs11:` URI names, for signing.
pub fn open(uri_text: &str, secret: &PassphraseSource) -> Result<Box<dyn Signer>, KeystoreError> {
    let uri = parse(uri_text)?;
    if uri.object.is_none() && uri.id.is_none() {
        return Err(bad(
            &uri,
            "the URI names no key: add object=LABEL or id=%XX (airlock key list shows them)",
        ));
    }
    let module = module_file(&uri)?;
    let ctx = context(&uri, &module)?;
    let token = the_token(&uri, &ctx)?;
    let ck = |what: &str, e: CkError| {
        bad(
            &uri,
            format!("{what} on token {:?}: {}", token.label, ck_reason(&e)),
        )
    };
    let session = ctx
        .open_ro_session(token.slot)
        .map_err(|e| ck("opening a session", e))?;
    if token.login_required {
        login(&uri, &token, &session, secret)?;
    }
    let found = session
        .find_objects(&template(&uri, ObjectClass::PRIVATE_KEY))
        .map_err(|e| ck("searching keys", e))?;
    let private = match found.as_slice() {
        [] => {
            return Err(not_here(
                &uri,
                format!(
                    "token {:?} has no private key {}",
                    token.label,
                    key_name(&uri)
                ),
            ));
        }
        [one] => *one,
        more => {
            return Err(bad(
                &uri,
                format!(
                    "{} private keys on token {:?} match {}; add id= to the URI",
                    more.len(),
                    token.label,
                    key_name(&uri)
                ),
            ));
        }
    };
    let flags =
        attrs(&session, private, &[AttributeType::Sign]).map_err(|e| ck("reading the key", e))?;
    if bool_attr(&flags, AttributeType::Sign) == Some(false) {
        return Err(bad(
            &uri,
            format!(
                "{} on token {:?} may not sign (CKA_SIGN is false)",
                key_name(&uri),
                token.label
            ),
        ));
    }
    let (_, public) = pair_public(&session, private).map_err(|e| ck("reading the key", e))?;
    let (scheme, public) = public.map_err(|reason| {
        bad(
            &uri,
            format!("{} on token {:?}: {reason}", key_name(&uri), token.label),
        )
    })?;
    Ok(Box::new(TokenSigner {
        session: Mutex::new(session),
        key: private,
        scheme,
        public,
        what: format!("PKCS#11 token {:?}, {}", token.label, key_name(&uri)),
    }))
}
