//! A small blocking HTTP(S) client for the POST calls of the log protocol (`/add`,
//! tlog-witness `add-checkpoint`) and for reading a log. TLS through rustls (ring), trusting
//! either the webpki roots or a given CA bundle; plain `http://` only when explicitly allowed.

use std::time::Duration;

use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

/// A failed request, naming the URL.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("{url}: response body longer than {max} bytes")]
    TooLarge { url: String, max: usize },
    #[error("CA bundle: {0}")]
    Ca(String),
}

/// An HTTP response: status, content type, body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as one line of text (for error messages).
    pub fn reason(&self) -> String {
        let s = String::from_utf8_lossy(&self.body);
        s.lines().next().unwrap_or("").chars().take(300).collect()
    }
}

/// A reusable client (keeps connections alive).
#[derive(Clone)]
pub struct HttpClient {
    agent: ureq::Agent,
    allow_http: bool,
}

impl HttpClient {
    /// `ca_pem`: trust only these CAs (e.g. a test CA); `None` trusts the webpki roots.
    /// `allow_http`: allow plain `http://`, to 127.0.0.1, ::1 and localhost only (loopback
    /// tests); any other URL must be https, as for every airlock client.
    pub fn new(
        ca_pem: Option<&[u8]>,
        allow_http: bool,
        timeout: Duration,
    ) -> Result<Self, HttpError> {
        let roots = match ca_pem {
            None => RootCerts::WebPki,
            Some(pem) => {
                let certs = airlock_fetch::tls::certs_from_pem(pem, "CA bundle")
                    .map_err(|e| HttpError::Ca(e.to_string()))?;
                RootCerts::new_with_certs(
                    &certs
                        .iter()
                        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
                        .collect::<Vec<_>>(),
                )
            }
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(roots)
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .https_only(!allow_http)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Self { agent, allow_http })
    }

    /// The scheme policy of airlock-fetch's fetcher, checked before any connection is made.
    fn check_url(&self, url: &str) -> Result<(), HttpError> {
        airlock_fetch::check_url_scheme(url, self.allow_http).map_err(|e| HttpError::Transport {
            url: url.to_string(),
            reason: e.to_string(),
        })
    }

    /// POSTs `body` with extra `headers`; reads at most `max` bytes of the answer.
    pub fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        max: usize,
    ) -> Result<HttpResponse, HttpError> {
        self.check_url(url)?;
        let mut req = self.agent.post(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send(body).map_err(|e| HttpError::Transport {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        Self::read(url, resp, max)
    }

    /// GETs `url`; reads at most `max` bytes of the answer.
    pub fn get(&self, url: &str, max: usize) -> Result<HttpResponse, HttpError> {
        self.check_url(url)?;
        let resp = self
            .agent
            .get(url)
            .call()
            .map_err(|e| HttpError::Transport {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        Self::read(url, resp, max)
    }

    fn read(
        url: &str,
        mut resp: ureq::http::Response<ureq::Body>,
        max: usize,
    ) -> Result<HttpResponse, HttpError> {
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .body_mut()
            .with_config()
            .limit(max as u64 + 1)
            .read_to_vec()
            .map_err(|e| HttpError::Transport {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        if body.len() > max {
            return Err(HttpError::TooLarge {
                url: url.to_string(),
                max,
            });
        }
        Ok(HttpResponse {
            status,
            content_type,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_refused_unless_allowed_and_then_only_to_loopback() {
        let t = Duration::from_secs(1);
        let strict = HttpClient::new(None, false, t).unwrap();
        let loopback = HttpClient::new(None, true, t).unwrap();
        // Refused before any connection: these hosts are never contacted.
        for (client, url) in [
            (&strict, "http://127.0.0.1:9/checkpoint"),
            (&loopback, "http://log.example.org/checkpoint"),
            (&loopback, "http://10.0.0.1/add"),
            (&loopback, "ftp://127.0.0.1/x"),
        ] {
            let err = client.get(url, 10).unwrap_err().to_string();
            assert!(
                err.contains("http") || err.contains("scheme"),
                "{url}: {err}"
            );
            let err = client.post(url, &[], b"x", 10).unwrap_err().to_string();
            assert!(!err.is_empty(), "{url}");
        }
        let err = loopback
            .get("http://log.example.org/checkpoint", 10)
            .unwrap_err()
            .to_string();
        assert!(err.contains("only to 127.0.0.1"), "{err}");
    }
}
