//! The trigger language: what the application (and a person) may send the agent.
//!
//! One request is one line of printable ASCII, at most [`MAX_REQUEST_LEN`] bytes without its
//! newline, words separated by single spaces:
//!
//! | request                          | who may send it                   |
//! |----------------------------------|-----------------------------------|
//! | `check [APP]`                    | an app's allowed uid/gid, admins  |
//! | `status [APP]`                   | an app's allowed uid/gid, admins  |
//! | `check-now APP\|* [ignore-staging]` | admins (root, the agent's uid)  |
//! | `rollback APP [VERSION]`         | admins                            |
//!
//! Who may send what is the agent's decision (it knows the peer); this module only says what a
//! line means, and refuses anything else without echoing it back. [`TokenBucket`] is the rate
//! limit the agent keeps per peer.

use std::time::Duration;

use super::version::Version;

/// Longest request line, newline excluded.
pub const MAX_REQUEST_LEN: usize = 128;

/// Longest app name.
pub const MAX_APP_NAME_LEN: usize = 64;

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Ask for an update check of `app` (every app the peer may trigger when `None`).
    Check { app: Option<String> },
    /// Ask for the status of `app` (every app the peer may see when `None`).
    Status { app: Option<String> },
    /// A person's check, outside windows and rate limits (`None`: every app).
    CheckNow {
        app: Option<String>,
        ignore_staging: bool,
    },
    /// A person's rollback to the previous release or to `to`.
    Rollback { app: String, to: Option<Version> },
}

impl Request {
    /// Only root or the agent's own user may send it.
    pub fn is_admin(&self) -> bool {
        matches!(self, Self::CheckNow { .. } | Self::Rollback { .. })
    }
}

/// Why a line was refused. Messages never quote the line: it came from outside.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request longer than {MAX_REQUEST_LEN} bytes")]
    TooLong,
    #[error("request is not one line of printable ASCII words")]
    NotText,
    #[error("unknown request (known: check, status, check-now, rollback)")]
    Unknown,
    #[error("wrong arguments for {0}")]
    Arguments(&'static str),
    #[error(
        "app name must be 1 to {MAX_APP_NAME_LEN} characters of a-z 0-9 _ - starting with a letter or digit"
    )]
    AppName,
}

/// Check an app's name (config keys and requests).
pub fn check_app_name(name: &str) -> Result<(), RequestError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_APP_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(RequestError::AppName)
    }
}

fn app(word: &str) -> Result<String, RequestError> {
    check_app_name(word)?;
    Ok(word.to_string())
}

/// Parse one line (without its `\n`; a trailing `\r` is tolerated).
pub fn parse_request(line: &[u8]) -> Result<Request, RequestError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_REQUEST_LEN {
        return Err(RequestError::TooLong);
    }
    if line.is_empty() || !line.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return Err(RequestError::NotText);
    }
    let text = std::str::from_utf8(line).map_err(|_| RequestError::NotText)?;
    let words: Vec<&str> = text.split(' ').collect();
    if words.iter().any(|w| w.is_empty()) {
        return Err(RequestError::NotText);
    }
    match words.as_slice() {
        ["check"] => Ok(Request::Check { app: None }),
        ["check", a] => Ok(Request::Check { app: Some(app(a)?) }),
        ["check", ..] => Err(RequestError::Arguments("check")),
        ["status"] => Ok(Request::Status { app: None }),
        ["status", a] => Ok(Request::Status { app: Some(app(a)?) }),
        ["status", ..] => Err(RequestError::Arguments("status")),
        ["check-now", rest @ ..] => {
            let (target, flag) = match rest {
                [a] => (*a, false),
                [a, "ignore-staging"] => (*a, true),
                _ => return Err(RequestError::Arguments("check-now")),
            };
            let app = if target == "*" {
                None
            } else {
                Some(app(target)?)
            };
            Ok(Request::CheckNow {
                app,
                ignore_staging: flag,
            })
        }
        ["rollback", a] => Ok(Request::Rollback {
            app: app(a)?,
            to: None,
        }),
        ["rollback", a, v] => Ok(Request::Rollback {
            app: app(a)?,
            to: Some(Version::parse(v).map_err(|_| RequestError::Arguments("rollback"))?),
        }),
        ["rollback", ..] => Err(RequestError::Arguments("rollback")),
        _ => Err(RequestError::Unknown),
    }
}

/// A token bucket: `capacity` requests at once, refilled at `per_second`.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// A full bucket at time `now` (any monotonic clock, e.g. time since the agent started).
    pub fn new(capacity: u32, per_second: f64, now: Duration) -> Self {
        Self {
            capacity: f64::from(capacity),
            per_second: if per_second.is_finite() {
                per_second.max(0.0)
            } else {
                0.0
            },
            tokens: f64::from(capacity),
            last: now,
        }
    }

    /// Take one token at `now`: false means refuse the request.
    pub fn take(&mut self, now: Duration) -> bool {
        // A clock that went back refills nothing.
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_request_set() {
        assert_eq!(parse_request(b"check"), Ok(Request::Check { app: None }));
        assert_eq!(
            parse_request(b"status web-app\r"),
            Ok(Request::Status {
                app: Some("web-app".into())
            })
        );
        assert_eq!(
            parse_request(b"check-now * ignore-staging"),
            Ok(Request::CheckNow {
                app: None,
                ignore_staging: true
            })
        );
        assert_eq!(
            parse_request(b"rollback app 1.2"),
            Ok(Request::Rollback {
                app: "app".into(),
                to: Some(Version::parse("1.2").unwrap())
            })
        );
        assert!(parse_request(b"rollback app").unwrap().is_admin());
        assert!(!parse_request(b"check").unwrap().is_admin());
    }

    #[test]
    fn anything_else_is_refused() {
        let long = [b'a'; MAX_REQUEST_LEN + 1];
        for (line, expected) in [
            (&b""[..], RequestError::NotText),
            (b"check\0", RequestError::NotText),
            (b"check\n", RequestError::NotText),
            (b"check  app", RequestError::NotText),
            (b" check", RequestError::NotText),
            (b"\xff\xfe", RequestError::NotText),
            (b"CHECK", RequestError::Unknown),
            (b"install /tmp/x", RequestError::Unknown),
            (b"check a b", RequestError::Arguments("check")),
            (b"check ../etc", RequestError::AppName),
            (b"check App", RequestError::AppName),
            (b"check-now", RequestError::Arguments("check-now")),
            (b"check-now app force", RequestError::Arguments("check-now")),
            (b"rollback app ../../x", RequestError::Arguments("rollback")),
            (&long[..], RequestError::TooLong),
        ] {
            assert_eq!(
                parse_request(line),
                Err(expected),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        assert!(check_app_name(&"a".repeat(64)).is_ok());
        assert!(check_app_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn token_bucket_allows_a_burst_then_the_rate() {
        let t = Duration::from_secs;
        let mut b = TokenBucket::new(5, 1.0, t(100));
        let burst = (0..10_000).filter(|_| b.take(t(100))).count();
        assert_eq!(burst, 5);
        assert!(!b.take(t(100)));
        assert!(b.take(t(101)));
        assert!(!b.take(t(101)));
        // A backwards clock refills nothing; a long pause refills to capacity only.
        assert!(!b.take(t(50)));
        assert_eq!((0..100).filter(|_| b.take(t(1000))).count(), 5);
    }
}
