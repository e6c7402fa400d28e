//! TLS material: a test certificate authority made at run time, server identities (certificate
//! chain + private key) and the rustls configurations built from them.
//!
//! Everything here uses rustls' `ring` provider explicitly, so that no process-wide default
//! provider has to be installed and no second crypto backend is pulled in.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlock_fetch::tls::{TlsError, certs_from_pem, crypto_provider};
use airlock_fs::WriteOptions;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// What went wrong while making, reading or writing a server's TLS material.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("generating {what}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("parsing PEM in {what}: {detail}")]
    Pem { what: String, detail: String },
    #[error("building the TLS server configuration")]
    ServerConfig {
        #[source]
        source: rustls::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Fs(#[from] airlock_fs::FsError),
}

/// A certificate chain (leaf first) and its private key: what an HTTPS server presents.
#[derive(Debug)]
pub struct ServerIdentity {
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for ServerIdentity {
    fn clone(&self) -> Self {
        Self {
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl ServerIdentity {
    /// Wraps an already parsed chain (leaf first) and key.
    pub fn new(cert_chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        Self { cert_chain, key }
    }

    /// Parses a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, IdentityError> {
        let cert_chain = certs_from_pem(cert_chain_pem, "certificate chain")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| IdentityError::Pem {
            what: "private key".into(),
            detail: e.to_string(),
        })?;
        Ok(Self { cert_chain, key })
    }

    /// Reads [`ServerIdentity::from_pem`] input from two files (e.g. `cert.pem`, `key.pem`).
    pub fn from_pem_files(cert_chain: &Path, key: &Path) -> Result<Self, IdentityError> {
        let certs = read(cert_chain)?;
        let key_bytes = read(key)?;
        let cert_chain_v = certs_from_pem(&certs, &cert_chain.display().to_string())?;
        let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| IdentityError::Pem {
            what: key.display().to_string(),
            detail: e.to_string(),
        })?;
        Ok(Self {
            cert_chain: cert_chain_v,
            key,
        })
    }

    /// The chain, leaf first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.cert_chain
    }

    /// The private key.
    pub fn key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }

    /// The chain as PEM, leaf first.
    pub fn cert_chain_pem(&self) -> String {
        self.cert_chain
            .iter()
            .map(|c| pem_encode("CERTIFICATE", c.as_ref()))
            .collect()
    }

    /// The private key as PEM (PKCS#8 for keys this crate generates).
    pub fn key_pem(&self) -> String {
        let label = match &self.key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        pem_encode(label, self.key.secret_der())
    }

    /// A rustls server configuration (TLS 1.2 and 1.3, ring provider, ALPN h2 and http/1.1).
    pub fn rustls_server_config(&self) -> Result<Arc<rustls::ServerConfig>, IdentityError> {
        let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| IdentityError::ServerConfig { source })?
            .with_no_client_auth()
            .with_single_cert(self.cert_chain.clone(), self.key.clone_key())
            .map_err(|source| IdentityError::ServerConfig { source })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A certificate authority generated at run time, for tests, the demo and `repo serve`.
///
/// Its key lives only in memory; the CA certificate can be handed to rustls ([`TestCa::root_store`])
/// or to other programs as a PEM file ([`TestCa::write_ca_pem`], e.g. for Python's
/// `REQUESTS_CA_BUNDLE`). Keys are ECDSA P-256.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// Paths written by [`TestCa::write_files`].
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA certificate (`ca.pem`): what a client trusts.
    pub ca_cert: PathBuf,
    /// The server certificate chain (`cert.pem`), leaf first.
    pub cert_chain: PathBuf,
    /// The server private key (`key.pem`), mode 0600.
    pub key: PathBuf,
}

impl TestCa {
    /// Generates a fresh CA key and self-signed CA certificate.
    pub fn new() -> Result<Self, IdentityError> {
        let key = KeyPair::generate().map_err(|source| IdentityError::Generate {
            what: "test CA key",
            source,
        })?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        // A distinct name per CA, so that a certificate from another test CA is reported as
        // "unknown issuer" rather than as a bad signature from a namesake.
        let id: String = params
            .key_identifier(&key)
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        dn.push(DnType::CommonName, format!("Airlock test CA {id}"));
        dn.push(DnType::OrganizationName, "Airlock tests");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(|source| IdentityError::Generate {
                what: "test CA certificate",
                source,
            })?;
        Ok(Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate in PEM form.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate in DER form.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// A rustls root store holding only this CA.
    pub fn root_store(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        // Our own freshly generated certificate: adding it cannot fail unless rcgen produced
        // garbage, in which case an empty store (trusting nothing) fails closed.
        if let Err(e) = roots.add(self.cert_der.clone()) {
            tracing::error!("test CA certificate not accepted by rustls: {e}");
        }
        roots
    }

    /// Issues a server certificate for `names` (IP addresses become IP SANs, anything else DNS
    /// SANs), valid for TLS server authentication, with a fresh key. The chain holds the leaf only;
    /// clients must trust the CA.
    pub fn issue_server_cert(&self, names: &[&str]) -> Result<ServerIdentity, IdentityError> {
        let key = KeyPair::generate().map_err(|source| IdentityError::Generate {
            what: "server key",
            source,
        })?;
        let sans: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params =
            CertificateParams::new(sans).map_err(|source| IdentityError::Generate {
                what: "server certificate parameters",
                source,
            })?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("airlock test server"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert =
            params
                .signed_by(&key, &self.issuer)
                .map_err(|source| IdentityError::Generate {
                    what: "server certificate",
                    source,
                })?;
        let key_der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        Ok(ServerIdentity::new(vec![cert.der().clone()], key_der))
    }

    /// Writes the CA certificate to `dir/ca.pem` and returns the path.
    pub fn write_ca_pem(&self, dir: &Path) -> Result<PathBuf, IdentityError> {
        let path = dir.join("ca.pem");
        write_atomic(&path, self.cert_pem.as_bytes(), false)?;
        Ok(path)
    }

    /// Issues a server certificate for `names` and writes `ca.pem`, `cert.pem` and `key.pem`
    /// (mode 0600) into `dir`, which must exist.
    pub fn write_files(&self, dir: &Path, names: &[&str]) -> Result<TlsFiles, IdentityError> {
        let identity = self.issue_server_cert(names)?;
        let ca_cert = self.write_ca_pem(dir)?;
        let cert_chain = dir.join("cert.pem");
        write_atomic(&cert_chain, identity.cert_chain_pem().as_bytes(), false)?;
        let key = dir.join("key.pem");
        write_atomic(&key, identity.key_pem().as_bytes(), true)?;
        Ok(TlsFiles {
            ca_cert,
            cert_chain,
            key,
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, IdentityError> {
    fs::read(path).map_err(|source| {
        IdentityError::Tls(TlsError::Io {
            path: path.to_path_buf(),
            source,
        })
    })
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Write with the one atomic writer; `private` makes the file mode 0600 from the start.
fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), IdentityError> {
    let options = if private {
        WriteOptions::private()
    } else {
        WriteOptions::public()
    };
    Ok(airlock_fs::write_atomic(path, bytes, &options)?)
}
