//! `airlock key`: standalone key files, e.g. offline root keys kept on a USB stick.

use std::path::PathBuf;

use airlock_core::crypto::{KeyScheme, PrivateKey, PublicKey, Signer};
use airlock_keystore::{Protection, read_private_key, rewrite_private_key, write_private_key};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde_json::json;

use super::common::{PassphraseArgs, passphrase_source, print_json};

#[derive(Parser, Debug)]
#[command(after_help = "Examples:
  airlock key generate --scheme ed25519 --out /media/usb/root-3.key --public-out root-3.pub.json
  airlock repo -C myrepo rotate root --public-key root-3.pub.json --threshold 2
  airlock key public /media/usb/root-3.key
  airlock key public gpg:0123456789ABCDEF0123456789ABCDEF01234567 > gpg-root.pub.json
  airlock key passwd /media/usb/root-3.key
  airlock key list 'pkcs11:token=release?module-path=/usr/lib/softhsm/libsofthsm2.so'")]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Generate(GenerateArgs),
    Public(PublicArgs),
    Passwd(PasswdArgs),
    List(ListArgs),
}

/// Make a new encrypted private key file (mode 0600, never overwriting) and print its public key
/// in the TUF form that `airlock repo rotate --public-key` and `repo init` take.
#[derive(Parser, Debug)]
#[command(after_help = "Example:
  airlock key generate --scheme hybrid --out root-1.key --public-out root-1.pub.json")]
struct GenerateArgs {
    /// ed25519, ecdsa, rsa, hybrid (Ed25519 + SLH-DSA) or ed448.
    #[arg(long, default_value = "ed25519")]
    scheme: KeyScheme,
    /// The private key file to create.
    #[arg(long)]
    out: PathBuf,
    /// Also write the public key (TUF JSON) to this file.
    #[arg(long)]
    public_out: Option<PathBuf>,
    #[command(flatten)]
    passphrase: PassphraseArgs,
}

/// Print the public key (TUF JSON) and key id of a private key file, a public key file or a key
/// on a PKCS#11 token (a pkcs11: URI).
#[derive(Parser, Debug)]
#[command(after_help = "Example:\n  airlock key public root-1.key > root-1.pub.json")]
struct PublicArgs {
    /// A private key file (asks for its passphrase), a TUF JSON public key file, gpg:KEYID
    /// (a GnuPG key, read from the public keyring) or a pkcs11: URI of a key on a token.
    file: PathBuf,
    #[command(flatten)]
    passphrase: PassphraseArgs,
}

/// Change the passphrase of a private key file, atomically (a crash leaves the old file or the
/// new one, never neither).
#[derive(Parser, Debug)]
#[command(
    after_help = "Example (old passphrase from fd 3, new one asked twice on the terminal):
  airlock key passwd --passphrase-fd 3 root-1.key 3<old-pass"
)]
struct PasswdArgs {
    /// The key file to re-encrypt in place.
    file: PathBuf,
    /// Where the current passphrase comes from.
    #[command(flatten)]
    passphrase: PassphraseArgs,
    /// Read the new passphrase from this environment variable (default: ask twice).
    #[arg(long, value_name = "VAR", conflicts_with = "new_passphrase_fd")]
    new_passphrase_env: Option<String>,
    /// Read the new passphrase from this open file descriptor.
    #[arg(long, value_name = "FD")]
    new_passphrase_fd: Option<i32>,
}

/// List the key pairs on PKCS#11 tokens: label, id, key type, the TUF scheme Airlock signs with
/// and its key id, whether the private key can leave the token, and a URI for `--key`. Logs in
/// (PIN from --passphrase-env/--passphrase-fd/AIRLOCK_PASSPHRASE, the URI's pin-source, or a
/// prompt) when the token hides private keys until then; never reads a secret.
#[derive(Parser, Debug)]
#[command(after_help = "Example:
  airlock key list --passphrase-env TOKEN_PIN \\
    'pkcs11:token=release?module-path=/usr/lib/softhsm/libsofthsm2.so'
  airlock key public 'pkcs11:token=release;object=root-1?module-path=/usr/lib/softhsm/libsofthsm2.so' > root-1.pub.json")]
struct ListArgs {
    /// A pkcs11: URI (RFC 7512) naming the module (?module-path=) and, optionally, the token
    /// and key.
    #[arg(value_parser = parse_pkcs11_uri)]
    uri: String,
    /// Do not log in: list only what the token shows without a PIN.
    #[arg(long)]
    no_login: bool,
    #[command(flatten)]
    passphrase: PassphraseArgs,
}

pub fn run(args: Args, json: bool) -> Result<()> {
    match args.command {
        Command::List(a) => list(a, json),
        Command::Generate(a) => generate(a, json),
        Command::Public(a) => public(a, json),
        Command::Passwd(a) => passwd(a, json),
    }
}

fn describe(key: &PublicKey) -> serde_json::Value {
    let mut v = json!({ "keyid": key.key_id(), "public_key": key });
    if let Some(listed) = listed_keyid(key) {
        v["listed_keyid"] = json!(listed);
    }
    v
}

/// A hybrid key is listed in roles by its Ed25519 half's key id (the additive form,
/// docs/keys.md); `None` for every other key, whose key id is the listed one.
fn listed_keyid(key: &PublicKey) -> Option<String> {
    let (ed, _) = airlock_core::crypto::paired::split_hybrid(key).ok()?;
    Some(ed.key_id())
}

fn print_keyid(key: &PublicKey) {
    match listed_keyid(key) {
        Some(listed) => eprintln!(
            "key id {} (roles list it as {listed}, its Ed25519 half)",
            key.key_id()
        ),
        None => eprintln!("key id {}", key.key_id()),
    }
}

fn generate(a: GenerateArgs, as_json: bool) -> Result<()> {
    let key = PrivateKey::generate(a.scheme)?;
    write_private_key(&a.out, &key, &Protection::encrypted(a.passphrase.source()))?;
    let public = key.public_key().clone();
    if let Some(p) = &a.public_out {
        airlock_keystore::write_public_key(p, &public)?;
    }
    if as_json {
        let mut v = describe(&public);
        v["key_file"] = json!(a.out);
        v["public_key_file"] = json!(a.public_out);
        print_json(&v)
    } else {
        eprintln!(
            "wrote {} (encrypted, mode 0600); key id {}",
            a.out.display(),
            public.key_id()
        );
        println!("{}", serde_json::to_string_pretty(&public)?);
        Ok(())
    }
}

fn public(a: PublicArgs, as_json: bool) -> Result<()> {
    let gpg_id = a.file.to_str().and_then(|f| f.strip_prefix("gpg:"));
    let token_uri = a.file.to_str().filter(|s| s.starts_with("pkcs11:"));
    let public = if let Some(id) = gpg_id {
        // From the public keyring: the secret may live on another machine or a card.
        airlock_keystore::gpg::public_key(id, &Default::default())?
    } else if let Some(uri) = token_uri {
        airlock_keystore::pkcs11::public_key(uri, &a.passphrase.source())?
    } else {
        file_public_key(&a)?
    };
    if as_json {
        print_json(&describe(&public))
    } else {
        print_keyid(&public);
        println!("{}", serde_json::to_string_pretty(&public)?);
        Ok(())
    }
}

fn file_public_key(a: &PublicArgs) -> Result<PublicKey> {
    Ok(match airlock_keystore::read_public_key(&a.file) {
        Ok(k) => k,
        Err(_) => read_private_key(&a.file, &a.passphrase.source())
            .with_context(|| {
                format!(
                    "{} is neither a TUF public key nor a readable private key file",
                    a.file.display()
                )
            })?
            .public_key()
            .clone(),
    })
}

fn passwd(a: PasswdArgs, as_json: bool) -> Result<()> {
    let key = read_private_key(&a.file, &a.passphrase.source())?;
    // Never the default environment variable: it holds the old passphrase.
    let new = passphrase_source(a.new_passphrase_fd, a.new_passphrase_env.as_deref(), false);
    rewrite_private_key(&a.file, &key, &Protection::encrypted(new))?;
    if as_json {
        print_json(&json!({"key_file": a.file, "keyid": key.public_key().key_id()}))
    } else {
        println!("changed the passphrase of {}", a.file.display());
        Ok(())
    }
}

fn parse_pkcs11_uri(s: &str) -> Result<String, String> {
    airlock_keystore::pkcs11::Pkcs11Uri::parse(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

fn list(a: ListArgs, as_json: bool) -> Result<()> {
    let secret = a.passphrase.source();
    let tokens = airlock_keystore::pkcs11::list(&a.uri, (!a.no_login).then_some(&secret))?;
    if as_json {
        return print_json(&json!({ "tokens": tokens }));
    }
    for t in &tokens {
        let state = if t.logged_in {
            ""
        } else {
            " (not logged in: private keys hidden)"
        };
        println!("token {:?} in slot {}{state}", t.label, t.slot);
        if t.keys.is_empty() {
            println!("  no keys");
        }
        for k in &t.keys {
            println!("  {:?} id {} {}", k.label, k.id, k.key_type);
            if let (Some(s), Some(id)) = (&k.scheme, &k.keyid) {
                println!("    scheme {s}, key id {id}");
            }
            if let Some(why) = &k.unusable {
                println!("    not usable: {why}");
            }
            if k.private_key {
                let yes_no = |b: Option<bool>| match b {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "unknown",
                };
                println!(
                    "    private key on the token: sensitive {}, extractable {}, never extractable {}",
                    yes_no(k.sensitive),
                    yes_no(k.extractable),
                    yes_no(k.never_extractable)
                );
            }
            println!("    {}", k.uri);
        }
    }
    Ok(())
}
