//! What tokens hold (`airlock key list`) and the public key of one key (`airlock key public`),
//! read without any secret attribute.

use std::collections::BTreeMap;

use airlock_core::crypto::PublicKey;
use cryptoki::error::Error as CkError;
use cryptoki::object::{AttributeType, ObjectClass};

use super::objects::{attrs, bool_attr, key_info, pair_public};
use super::{
    bad, ck_reason, context, key_name, login, module_file, not_here, parse, template, token_name,
    tokens,
};
use crate::{KeystoreError, PassphraseSource};

/// One key pair on a token, as `airlock key list` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ListedKey {
    pub label: String,
    /// CKA_ID in hex.
    pub id: String,
    /// `EC P-256`, `EC Ed25519`, `RSA 3072`, ...
    pub key_type: String,
    /// The TUF scheme it signs with, if Airlock can use it.
    pub scheme: Option<String>,
    pub keyid: Option<String>,
    /// Why Airlock cannot sign with it, when it cannot.
    pub unusable: Option<String>,
    /// The private key is on the token (seen after login, or public).
    pub private_key: bool,
    /// CKA_SENSITIVE / CKA_EXTRACTABLE / CKA_NEVER_EXTRACTABLE of the private key, if seen.
    pub sensitive: Option<bool>,
    pub extractable: Option<bool>,
    pub never_extractable: Option<bool>,
    /// A URI for `--key` (module and pin-source carried over from the listed URI).
    pub uri: String,
    #[serde(skip)]
    pub public_key: Option<PublicKey>,
}

/// A token and the key pairs it holds.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ListedToken {
    pub label: String,
    pub slot: u64,
    pub logged_in: bool,
    pub keys: Vec<ListedKey>,
}

/// What the tokens matching `uri` hold. Logs in (PIN from the URI or `secret`) when the token
/// wants a login and `secret` is given, so that private keys are seen; the listing reads no
/// secret attribute. An object=/id= in the URI narrows the list to that key.
pub fn list(
    uri_text: &str,
    secret: Option<&PassphraseSource>,
) -> Result<Vec<ListedToken>, KeystoreError> {
    let uri = parse(uri_text)?;
    let module = module_file(&uri)?;
    let ctx = context(&uri, &module)?;
    let mut out = Vec::new();
    let found = tokens(&uri, &ctx)?;
    if found.is_empty() {
        return Err(not_here(
            &uri,
            format!(
                "no {} is present",
                token_name(&uri).replacen("a token", "token", 1)
            ),
        ));
    }
    for token in found {
        let ck = |what: &str, e: CkError| {
            bad(
                &uri,
                format!("{what} on token {:?}: {}", token.label, ck_reason(&e)),
            )
        };
        let session = ctx
            .open_ro_session(token.slot)
            .map_err(|e| ck("opening a session", e))?;
        let logged_in = match secret {
            Some(s) if token.login_required => {
                login(&uri, &token, &session, s)?;
                true
            }
            _ => !token.login_required,
        };
        let mut keys: BTreeMap<(Vec<u8>, String), ListedKey> = BTreeMap::new();
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
            let objs = session
                .find_objects(&template(&uri, class))
                .map_err(|e| ck("searching keys", e))?;
            for obj in objs {
                let is_private = class == ObjectClass::PRIVATE_KEY;
                let (info, public) = if is_private {
                    pair_public(&session, obj)
                } else {
                    key_info(&session, obj).map(|i| {
                        let p = i.public.clone();
                        (i, p)
                    })
                }
                .map_err(|e| ck("reading a key", e))?;
                let entry_key = (
                    info.id.clone(),
                    if info.id.is_empty() {
                        info.label.clone()
                    } else {
                        String::new()
                    },
                );
                if keys.contains_key(&entry_key) {
                    continue;
                }
                let mut listed = ListedKey {
                    uri: uri.for_key(&token.label, Some(&info.label), &info.id),
                    label: info.label,
                    id: hex::encode(&info.id),
                    key_type: info.key_type,
                    scheme: public
                        .as_ref()
                        .ok()
                        .map(|(s, _)| s.scheme_name().to_string()),
                    keyid: public.as_ref().ok().map(|(_, k)| k.key_id()),
                    unusable: public.as_ref().err().cloned(),
                    private_key: is_private,
                    sensitive: None,
                    extractable: None,
                    never_extractable: None,
                    public_key: public.ok().map(|(_, k)| k),
                };
                if is_private {
                    use AttributeType as A;
                    let flags = attrs(
                        &session,
                        obj,
                        &[A::Sensitive, A::Extractable, A::NeverExtractable],
                    )
                    .map_err(|e| ck("reading a key", e))?;
                    listed.sensitive = bool_attr(&flags, A::Sensitive);
                    listed.extractable = bool_attr(&flags, A::Extractable);
                    listed.never_extractable = bool_attr(&flags, A::NeverExtractable);
                } else if !logged_in {
                    listed
                        .unusable
                        .get_or_insert_with(|| "private key not seen: log in to list it".into());
                }
                keys.insert(entry_key, listed);
            }
        }
        out.push(ListedToken {
            label: token.label.clone(),
            slot: token.slot.id(),
            logged_in,
            keys: keys.into_values().collect(),
        });
    }
    Ok(out)
}

/// The TUF public key of the key a `pkcs11:` URI names, without logging in when the token shows
/// its public key objects to anyone (most do); with a login (PIN from the URI or `secret`)
/// otherwise.
pub fn public_key(uri_text: &str, secret: &PassphraseSource) -> Result<PublicKey, KeystoreError> {
    let uri = parse(uri_text)?;
    if uri.object.is_none() && uri.id.is_none() {
        return Err(bad(
            &uri,
            "the URI names no key: add object=LABEL or id=%XX (airlock key list shows them)",
        ));
    }
    let pick = |tokens: Vec<ListedToken>| -> Result<Option<PublicKey>, KeystoreError> {
        let mut keys: Vec<ListedKey> = tokens.into_iter().flat_map(|t| t.keys).collect();
        match keys.len() {
            0 => Ok(None),
            1 => {
                let k = keys.remove(0);
                match k.public_key {
                    Some(p) => Ok(Some(p)),
                    None => Err(bad(
                        &uri,
                        format!(
                            "{}: {}",
                            key_name(&uri),
                            k.unusable.unwrap_or_else(|| "no usable public key".into())
                        ),
                    )),
                }
            }
            n => Err(bad(
                &uri,
                format!(
                    "{n} keys match {}; add id= or token= to the URI",
                    key_name(&uri)
                ),
            )),
        }
    };
    if let Some(k) = pick(list(uri_text, None)?)? {
        return Ok(k);
    }
    pick(list(uri_text, Some(secret))?)?.ok_or_else(|| {
        not_here(
            &uri,
            format!("{} has no key {}", token_name(&uri), key_name(&uri)),
        )
    })
}
