//! The publisher's side of the log's HTTP API: submit entries (`POST /add`, signed with a
//! publisher key as [`crate::auth`] describes), wait until a published checkpoint covers them
//! (`GET /checkpoint`), and fetch their tlog-proof bundles (`GET /proof/<index>`).
//!
//! Nothing here trusts the log: the bundles it returns are checked by the caller against the
//! policy that clients will apply (airlock-repo verifies each one before publishing it). The
//! checkpoint is read unverified, only to know when to ask for proofs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_core::tlog::{Checkpoint, Note, NoteSigner, NoteVerifier};
use airlock_fetch::{FetchError, Fetcher};

use crate::auth::{SIGNATURE_HEADER, sign_submission};

/// Largest checkpoint or proof bundle read from the log.
const MAX_RESPONSE: u64 = 1 << 20;
/// Attempts of one submission by default (the log answers a repeated identical submission with
/// the index it already gave, so a retry never appends twice).
const SUBMIT_ATTEMPTS: u32 = 3;
/// First pause between attempts by default; each later one is twice as long.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);
/// Longest pause between polls of the checkpoint and the proof endpoint.
const POLL: Duration = Duration::from_millis(100);
/// The first poll comes this soon: the log and its witnesses usually publish a covering
/// checkpoint within tens of milliseconds, so polls start short and double up to [`POLL`].
const FIRST_POLL: Duration = Duration::from_millis(5);

/// The pause before poll `n` (0-based): 5, 10, 20, 40, 80, then 100 ms.
fn poll_pause(n: u32) -> Duration {
    FIRST_POLL
        .saturating_mul(1u32.checked_shl(n.min(16)).unwrap_or(u32::MAX))
        .min(POLL)
}

/// The log's answer to a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted {
    /// The entry's index in the log.
    pub index: u64,
    /// The log held the entry already (same leaf hash) and did not append it again.
    pub already_logged: bool,
}

/// Why talking to the log failed. Each message names the URL.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("transparency log request failed")]
    Fetch(#[from] FetchError),
    #[error("{url}: the log refused the submission: HTTP {status}: {reason}")]
    Refused {
        url: String,
        status: u16,
        reason: String,
    },
    #[error(
        "{url}: {reason}; gave up after {attempts} attempts: the entry may or may not have been \
         logged; it is safe to retry (the log answers an entry it already holds with its \
         existing index)"
    )]
    GaveUp {
        url: String,
        attempts: u32,
        reason: String,
    },
    #[error("{url}: the log's answer is not an entry index: {answer:?}")]
    BadIndex { url: String, answer: String },
    #[error("{url}: not a checkpoint: {reason}")]
    BadCheckpoint { url: String, reason: String },
    #[error(
        "{url}: no published checkpoint covers entry {index} after {secs} s (the log publishes \
         once its witnesses answered)"
    )]
    NotPublished { url: String, index: u64, secs: u64 },
    #[error("signing the submission with the publisher key")]
    Sign(#[source] airlock_core::tlog::KeyError),
}

/// A client of one log, submitting with one publisher key.
#[derive(Debug)]
pub struct LogClient {
    base: String,
    fetcher: Arc<Fetcher>,
    signer: NoteSigner,
    timeout: Duration,
    attempts: u32,
    first_retry_delay: Duration,
}

impl LogClient {
    /// A client of the log at `base_url` (its `/add`, `/checkpoint` and `/proof/` live under
    /// it). `timeout` bounds each wait for a published checkpoint.
    pub fn new(
        base_url: &str,
        fetcher: Arc<Fetcher>,
        signer: NoteSigner,
        timeout: Duration,
    ) -> Self {
        LogClient {
            base: base_url.trim_end_matches('/').to_string(),
            fetcher,
            signer,
            timeout,
            attempts: SUBMIT_ATTEMPTS,
            first_retry_delay: FIRST_RETRY_DELAY,
        }
    }

    /// Make each submission up to `attempts` times (at least once), pausing `first_delay`
    /// before the second and twice as long before each later one.
    pub fn with_retries(mut self, attempts: u32, first_delay: Duration) -> Self {
        self.attempts = attempts.max(1);
        self.first_retry_delay = first_delay;
        self
    }

    /// The log's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// The checkpoint the log publishes now, as served (unverified).
    pub fn checkpoint(&self) -> Result<Vec<u8>, ClientError> {
        Ok(self
            .fetcher
            .fetch_capped(&self.endpoint("checkpoint"), MAX_RESPONSE)?)
    }

    /// The published checkpoint, parsed but unverified (its origin and size say where the log
    /// is; nothing is trusted from it).
    pub fn published_checkpoint(&self) -> Result<Checkpoint, ClientError> {
        let url = self.endpoint("checkpoint");
        let bytes = self.checkpoint()?;
        let bad = |reason: String| ClientError::BadCheckpoint {
            url: url.clone(),
            reason,
        };
        let note = Note::parse(&bytes).map_err(|e| bad(e.to_string()))?;
        Checkpoint::parse_text(note.text()).map_err(|e| bad(e.to_string()))
    }

    /// Whether the log's published checkpoint carries a valid signature by `log_key`: the way
    /// to tell which of several URLs is the log a policy names.
    pub fn is_signed_by(&self, log_key: &NoteVerifier) -> Result<bool, ClientError> {
        let bytes = self.checkpoint()?;
        let Ok(note) = Note::parse(&bytes) else {
            return Ok(false);
        };
        Ok(note.verify(std::slice::from_ref(log_key)).is_ok())
    }

    /// Submit one entry to the log `origin` (bound into the signature); returns its index once
    /// the log holds it durably. Failures that say nothing about the entry are retried (see
    /// [`LogClient::submit_with`]); each retry is a `tracing` warning.
    pub fn submit(&self, origin: &str, entry: &[u8]) -> Result<Submitted, ClientError> {
        self.submit_with(origin, entry, &mut |reason, delay| {
            tracing::warn!(url = %self.base, "{reason}; retrying in {} ms", delay.as_millis());
        })
    }

    /// [`LogClient::submit`], calling `on_retry(reason, pause)` before each retry. Retried: the
    /// connection failed, broke or timed out, a TLS handshake was cut (a certificate problem
    /// is not retried), or the log answered 503 without being halted (it was starting or
    /// shutting down). A halted log and every other answer are final.
    pub fn submit_with(
        &self,
        origin: &str,
        entry: &[u8],
        on_retry: &mut dyn FnMut(&str, Duration),
    ) -> Result<Submitted, ClientError> {
        let sig = sign_submission(&self.signer, origin, entry).map_err(ClientError::Sign)?;
        let url = self.endpoint("add");
        let mut delay = self.first_retry_delay;
        let mut attempt = 1;
        let resp = loop {
            let result = self
                .fetcher
                .post(&url, &[(SIGNATURE_HEADER, &sig)], entry, 4096);
            let Some(reason) = retry_reason(&result) else {
                break result?;
            };
            if attempt >= self.attempts {
                return Err(ClientError::GaveUp {
                    url,
                    attempts: self.attempts,
                    reason,
                });
            }
            on_retry(&reason, delay);
            std::thread::sleep(delay);
            delay = delay.saturating_mul(2);
            attempt += 1;
        };
        if resp.status != 200 {
            return Err(ClientError::Refused {
                url,
                status: resp.status,
                reason: resp.reason(),
            });
        }
        // `<index>\n`, or `<index>\nalready logged\n` for an entry the log held already.
        let text = String::from_utf8_lossy(&resp.body);
        let mut lines = text.lines();
        let answer = lines.next().unwrap_or("");
        let index = answer.trim().parse().map_err(|_| ClientError::BadIndex {
            url,
            answer: answer.chars().take(100).collect(),
        })?;
        let already_logged = lines.next().is_some_and(|l| l.trim() == "already logged");
        Ok(Submitted {
            index,
            already_logged,
        })
    }

    /// Wait until the published checkpoint covers entry `index`; returns its size.
    pub fn wait_published(&self, index: u64) -> Result<u64, ClientError> {
        let deadline = Instant::now() + self.timeout;
        let mut polls = 0;
        loop {
            let size = self.published_checkpoint()?.size;
            if size > index {
                return Ok(size);
            }
            if Instant::now() >= deadline {
                return Err(ClientError::NotPublished {
                    url: self.endpoint("checkpoint"),
                    index,
                    secs: self.timeout.as_secs(),
                });
            }
            std::thread::sleep(poll_pause(polls));
            polls += 1;
        }
    }

    /// The tlog-proof bundle of entry `index` (waiting, within the timeout, while the log
    /// answers 404 because its published checkpoint does not cover the entry yet).
    pub fn proof(&self, index: u64) -> Result<Vec<u8>, ClientError> {
        let url = self.endpoint(&format!("proof/{index}"));
        let deadline = Instant::now() + self.timeout;
        let mut polls = 0;
        loop {
            match self.fetcher.fetch_capped(&url, MAX_RESPONSE) {
                Ok(b) => return Ok(b),
                Err(e) if e.is_not_found() && Instant::now() < deadline => {
                    std::thread::sleep(poll_pause(polls));
                    polls += 1;
                }
                Err(e) if e.is_not_found() => {
                    return Err(ClientError::NotPublished {
                        url,
                        index,
                        secs: self.timeout.as_secs(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Submit every entry, wait for one published checkpoint covering them all, and return
    /// their proof bundles in order.
    pub fn log_entries(
        &self,
        origin: &str,
        entries: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, ClientError> {
        let mut indexes = Vec::with_capacity(entries.len());
        for entry in entries {
            indexes.push(self.submit(origin, entry)?.index);
        }
        if let Some(max) = indexes.iter().max() {
            self.wait_published(*max)?;
        }
        indexes.into_iter().map(|i| self.proof(i)).collect()
    }
}

/// Why a submission's outcome says nothing about the entry and may be retried, if it does.
fn retry_reason(result: &Result<airlock_fetch::Response, FetchError>) -> Option<String> {
    match result {
        Ok(r) if r.status == 503 && !r.reason().contains("halted") => {
            Some(format!("HTTP 503: {}", r.reason()))
        }
        Err(
            e @ (FetchError::Connect { .. }
            | FetchError::Timeout { .. }
            | FetchError::Transport { .. }
            | FetchError::TooSlow { .. }),
        ) => Some(e.to_string()),
        // A connection cut during the handshake; a certificate problem is not retried.
        Err(e @ FetchError::Tls { detail, .. }) if !detail.contains("certificate") => {
            Some(e.to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod poll_tests {
    use super::*;

    #[test]
    fn polls_start_short_and_settle_at_the_longest_pause() {
        let pauses: Vec<u64> = (0..8).map(|n| poll_pause(n).as_millis() as u64).collect();
        assert_eq!(pauses, [5, 10, 20, 40, 80, 100, 100, 100]);
        assert_eq!(poll_pause(u32::MAX), POLL);
    }
}
