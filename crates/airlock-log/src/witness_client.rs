//! The log's side of c2sp.org/tlog-witness: asking a witness to cosign a checkpoint.

use airlock_core::tlog::tiles::{TileHashReader, TileReader};
use airlock_core::tlog::witness::AddCheckpointRequest;
use airlock_core::tlog::{Checkpoint, Cosignature, NoteVerifier, Signature, consistency_proof};

use airlock_fetch::{FetchError, Fetcher};

/// A witness the log asks for cosignatures.
#[derive(Debug, Clone)]
pub struct WitnessEndpoint {
    /// The witness's cosignature/v1 verifier key.
    pub verifier: NoteVerifier,
    /// Submission prefix; `add-checkpoint` is appended.
    pub url: String,
}

/// Why a witness did not cosign.
#[derive(Debug, thiserror::Error)]
pub enum WitnessCallError {
    #[error("witness {witness}")]
    Http {
        witness: String,
        #[source]
        source: FetchError,
    },
    #[error("witness {witness} answered HTTP {status}: {reason}")]
    Refused {
        witness: String,
        status: u16,
        reason: String,
    },
    #[error("witness {witness} has cosigned size {theirs}, larger than this checkpoint's {ours}")]
    WitnessAhead {
        witness: String,
        theirs: u64,
        ours: u64,
    },
    #[error(
        "witness {witness} (at size {theirs}) refused this log's checkpoint of size {ours} with HTTP 422: it holds a tree of this log that this one does not extend ({reason})"
    )]
    Conflict {
        witness: String,
        theirs: u64,
        ours: u64,
        reason: String,
    },
    #[error("witness {witness}: no valid cosignature by its key in the answer")]
    NoCosignature { witness: String },
    #[error("witness {witness}: building the consistency proof: {reason}")]
    Proof { witness: String, reason: String },
}

impl WitnessCallError {
    /// The witness holds a checkpoint of this log that the checkpoint offered does not extend
    /// (409 with a larger size, or 422): evidence of a fork, on which the log must halt.
    /// Returns the witness's size.
    pub fn fork_evidence(&self) -> Option<u64> {
        match self {
            WitnessCallError::WitnessAhead { theirs, .. }
            | WitnessCallError::Conflict { theirs, .. } => Some(*theirs),
            _ => None,
        }
    }
}

/// Asks `witness` to cosign `note` (the checkpoint `checkpoint`), starting from the size the
/// witness is believed to hold (`known_size`, updated on success or on a 409 answer). Tiles for
/// the consistency proof come from `tiles`. Returns the witness's valid cosignatures.
pub fn request_cosignature(
    client: &Fetcher,
    witness: &WitnessEndpoint,
    checkpoint: &Checkpoint,
    note: &[u8],
    known_size: &mut u64,
    tiles: &dyn TileReader,
) -> Result<Vec<Cosignature>, WitnessCallError> {
    let name = witness.verifier.name().to_string();
    let url = format!("{}/add-checkpoint", witness.url.trim_end_matches('/'));
    let text = checkpoint.to_text();
    for _attempt in 0..3 {
        let old = *known_size;
        if old > checkpoint.size {
            return Err(WitnessCallError::WitnessAhead {
                witness: name,
                theirs: old,
                ours: checkpoint.size,
            });
        }
        let proof = if old == 0 || old == checkpoint.size {
            Vec::new()
        } else {
            let reader = TileHashReader::new(checkpoint.size, tiles);
            consistency_proof(&reader, old, checkpoint.size).map_err(|e| {
                WitnessCallError::Proof {
                    witness: name.clone(),
                    reason: e.to_string(),
                }
            })?
        };
        let body = AddCheckpointRequest::new(old, proof, note)
            .map_err(|e| WitnessCallError::Proof {
                witness: name.clone(),
                reason: e.to_string(),
            })?
            .to_bytes();
        let resp =
            client
                .post(&url, &[], &body, 64 * 1024)
                .map_err(|source| WitnessCallError::Http {
                    witness: name.clone(),
                    source,
                })?;
        match resp.status {
            200 => {
                let text_body = String::from_utf8_lossy(&resp.body);
                let mut out = Vec::new();
                for (i, line) in text_body.lines().enumerate() {
                    let Ok(sig) = Signature::parse_line(line, i + 1) else {
                        continue;
                    };
                    if let Ok(c) = Cosignature::from_signature(&sig)
                        && c.verify(&witness.verifier, &text)
                    {
                        out.push(c);
                    }
                }
                if out.is_empty() {
                    return Err(WitnessCallError::NoCosignature { witness: name });
                }
                *known_size = checkpoint.size;
                return Ok(out);
            }
            409 if resp
                .content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("text/x.tlog.size")) =>
            {
                let theirs = String::from_utf8_lossy(&resp.body)
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| WitnessCallError::Refused {
                        witness: name.clone(),
                        status: 409,
                        reason: "unparsable size in the 409 answer".into(),
                    })?;
                if theirs == old {
                    return Err(WitnessCallError::Refused {
                        witness: name,
                        status: 409,
                        reason: format!("conflict at size {theirs}: {}", resp.reason()),
                    });
                }
                *known_size = theirs;
            }
            // The consistency proof from the witness's tree to ours failed, or the same size has
            // another root: the witness holds another tree of this log.
            422 => {
                return Err(WitnessCallError::Conflict {
                    witness: name,
                    theirs: old,
                    ours: checkpoint.size,
                    reason: resp.reason(),
                });
            }
            status => {
                return Err(WitnessCallError::Refused {
                    witness: name,
                    status,
                    reason: resp.reason(),
                });
            }
        }
    }
    Err(WitnessCallError::Refused {
        witness: name,
        status: 409,
        reason: "the witness's size kept changing".into(),
    })
}
