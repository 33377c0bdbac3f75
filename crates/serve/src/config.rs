//! What a server is told: where to listen, the bearer token, and the limits
//! that keep one client from taking the process down. A plain struct; the
//! composition root reads the environment (`STRATA_API_TOKEN`) and fills it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The shortest token accepted: a guessable token is no protection.
pub const MIN_TOKEN_LEN: usize = 16;

/// How a server listens and what it allows.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to bind. Port 0 picks a free port ([`crate::Server::local_addr`] tells which).
    pub listen: SocketAddr,
    /// When set, every route (`/health` and `/metrics` included) requires
    /// `Authorization: Bearer <token>`. Required when `listen` is not a loopback address.
    pub token: Option<ApiToken>,
    /// Bounds on concurrency and request size.
    pub limits: Limits,
    /// `/health` reports the store down (503) when its check takes longer than this.
    pub health_timeout: Duration,
    /// After the shutdown signal, how long requests in flight (a long bar
    /// stream) may run before the server stops waiting for them.
    pub shutdown_grace: Duration,
}

impl ServeConfig {
    /// Loopback-friendly defaults at `listen`: no token, [`Limits::default`],
    /// a 5 s health timeout and a 10 s shutdown grace.
    pub fn new(listen: SocketAddr) -> Self {
        ServeConfig {
            listen,
            token: None,
            limits: Limits::default(),
            health_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
        }
    }

    /// Sets the bearer token.
    pub fn with_token(mut self, token: ApiToken) -> Self {
        self.token = Some(token);
        self
    }

    /// Refuses a configuration that would be unsafe or cannot work: a
    /// non-loopback address without a token (anyone on the network could
    /// read the store), and zero limits or timeouts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.token.is_none() && !is_loopback(self.listen.ip()) {
            return Err(ConfigError(format!(
                "listening on {} (not a loopback address) requires a bearer token: set STRATA_API_TOKEN \
                 (at least {MIN_TOKEN_LEN} characters; clients send `Authorization: Bearer <token>`), \
                 or listen on 127.0.0.1",
                self.listen
            )));
        }
        self.limits.validate()?;
        if self.health_timeout.is_zero() {
            return Err(ConfigError("the health timeout must be positive".into()));
        }
        Ok(())
    }
}

/// True for 127.0.0.0/8, `::1` and `::ffff:127.x.y.z`. The unspecified
/// address (`0.0.0.0`, `::`) listens on every interface: not loopback.
pub fn is_loopback(address: IpAddr) -> bool {
    address.to_canonical().is_loopback()
}

/// Bounds that keep memory and work per request bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests served at once (a streaming response counts until its last
    /// byte is sent); beyond, 503 with `Retry-After: 1`. `/metrics` is not counted.
    pub max_concurrent_requests: usize,
    /// Symbols in one `/v1/bars` or `/v1/digest` request; beyond, 400.
    pub max_symbols: usize,
    /// Bytes of the raw query string (after `?`); beyond, 400.
    pub max_query_bytes: usize,
}

impl Default for Limits {
    /// 128 requests at once, 1,000 symbols, an 8 KiB query string.
    fn default() -> Self {
        Limits { max_concurrent_requests: 128, max_symbols: 1_000, max_query_bytes: 8 * 1024 }
    }
}

impl Limits {
    fn validate(&self) -> Result<(), ConfigError> {
        let zero = [
            ("max_concurrent_requests", self.max_concurrent_requests),
            ("max_symbols", self.max_symbols),
            ("max_query_bytes", self.max_query_bytes),
        ]
        .into_iter()
        .find(|(_, value)| *value == 0);
        match zero {
            Some((name, _)) => Err(ConfigError(format!("limit {name} must be at least 1"))),
            None => Ok(()),
        }
    }
}

/// A bearer token. Only its SHA-256 digest is kept; `Debug` never shows it.
///
/// Requests are checked by hashing the presented token and comparing the
/// two digests in constant time ([`subtle::ConstantTimeEq`]), so neither
/// the comparison's duration nor an early exit tells how much of a guess was right.
#[derive(Clone)]
pub struct ApiToken {
    digest: [u8; 32],
}

impl ApiToken {
    /// Accepts at least [`MIN_TOKEN_LEN`] visible ASCII characters (what an
    /// HTTP header carries unchanged), no spaces.
    pub fn new(token: &str) -> Result<Self, ConfigError> {
        if token.len() < MIN_TOKEN_LEN {
            return Err(ConfigError(format!(
                "the API token is {} characters long; use at least {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 32`)",
                token.len()
            )));
        }
        if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(ConfigError(
                "the API token may contain only visible ASCII characters (no spaces or control characters)".into(),
            ));
        }
        Ok(ApiToken { digest: sha256(token.as_bytes()) })
    }

    /// True when `presented` is this token (constant time in its content).
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.digest.ct_eq(&sha256(presented)).into()
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A configuration the server refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(listen: &str) -> ServeConfig {
        ServeConfig::new(listen.parse().unwrap())
    }

    #[test]
    fn a_non_loopback_address_needs_a_token() {
        assert!(config("127.0.0.1:0").validate().is_ok());
        assert!(config("[::1]:0").validate().is_ok());
        assert!(config("[::ffff:127.0.0.1]:0").validate().is_ok());
        for open in ["0.0.0.0:8080", "[::]:8080", "10.1.2.3:80"] {
            let error = config(open).validate().unwrap_err();
            assert!(error.0.contains("STRATA_API_TOKEN"), "{error}");
        }
        let token = ApiToken::new("0123456789abcdef").unwrap();
        assert!(config("0.0.0.0:8080").with_token(token).validate().is_ok());
    }

    #[test]
    fn tokens_are_checked_and_never_shown() {
        assert!(ApiToken::new("short").unwrap_err().0.contains("at least 16"));
        assert!(ApiToken::new("0123456789 abcdef").is_err());
        let token = ApiToken::new("s3cret-s3cret-s3cret").unwrap();
        assert!(token.matches(b"s3cret-s3cret-s3cret"));
        assert!(!token.matches(b"s3cret-s3cret-s3creT"));
        assert!(!token.matches(b""));
        assert!(!format!("{token:?}").contains("s3cret"));
    }

    #[test]
    fn zero_limits_are_refused() {
        let mut zero = config("127.0.0.1:0");
        zero.limits.max_symbols = 0;
        assert!(zero.validate().unwrap_err().0.contains("max_symbols"));
    }
}
