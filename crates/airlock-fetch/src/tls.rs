//! The client side of TLS: which certificate authorities to trust, parsed from PEM, and the one
//! crypto provider (rustls' `ring`) every configuration uses, so that no process-wide default
//! provider has to be installed and no second crypto backend is pulled in.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// What went wrong while reading TLS material. Names the file or the role of the bytes.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("parsing PEM in {what}: {detail}")]
    Pem { what: String, detail: String },
    #[error("{what} holds no certificate")]
    NoCertificate { what: String },
    #[error("{what} is not accepted as a trust anchor")]
    TrustAnchor {
        what: String,
        #[source]
        source: rustls::Error,
    },
    #[error("reading {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The crypto provider every TLS configuration of Airlock uses.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses every certificate in a PEM bundle; an empty bundle is an error.
pub fn certs_from_pem(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: what.to_string(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what: what.to_string(),
        });
    }
    Ok(certs)
}

/// A root store from a PEM bundle of CA certificates; every certificate must be usable as a
/// trust anchor (a bundle with one bad entry is refused rather than partly trusted).
pub fn root_store_from_pem(pem: &[u8], what: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(pem, what)? {
        roots.add(cert).map_err(|source| TlsError::TrustAnchor {
            what: what.to_string(),
            source,
        })?;
    }
    Ok(roots)
}

/// A root store with the Mozilla roots from `webpki-roots`.
pub fn webpki_root_store() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}
