//! From sqlx errors to the port's error kinds, and which failures are
//! transient (worth retrying with backoff) on PostgreSQL and on Neon.
//!
//! Transient: the connection could not be made or broke (refused, reset,
//! EOF, pool timeout), `57P01`/`57P02`/`57P03` (server shutting down or
//! starting), `53300` too many connections, `08xxx` connection exceptions,
//! Neon's proxy errors (`XX000` "Couldn't connect to compute node" and
//! friends), and, for idempotent operations only, `40001` serialization
//! failures and `40P01` deadlocks. Never transient: "endpoint is disabled",
//! quota errors, authentication, TLS certificate failures, a missing
//! database.

use strata_core::StoreError;

use crate::redact::redact_text;

/// Backend name in logs and errors.
pub(crate) const BACKEND: &str = "neon";

/// A failure inside a transaction body: a driver error (classified later)
/// or a decision already expressed as a port error (`Conflict`, `NotFound`).
#[derive(Debug)]
pub(crate) enum Failure {
    /// From sqlx.
    Db(sqlx::Error),
    /// Already a port error.
    Store(StoreError),
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Failure::Db(error)
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Store(error)
    }
}

/// How a failure should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transience {
    /// Retry: nothing was done, or the server refused before doing anything.
    Always,
    /// Retry only when the operation is idempotent (the server may have done it).
    IfIdempotent,
    /// Do not retry.
    Never,
}

/// Messages of Neon's proxy that mean "try again shortly".
const NEON_TRANSIENT_MESSAGES: [&str; 6] = [
    "couldn't connect to compute node",
    "compute node is starting",
    "console request failed",
    "temporary failure",
    "connection to compute node failed",
    "could not connect to compute",
];

/// Messages that look like outages but are decisions: retrying does not help.
const NEON_PERMANENT_MESSAGES: [&str; 4] = ["endpoint is disabled", "quota", "project is disabled", "suspended for"];

/// Classifies a sqlx error for retrying.
pub(crate) fn transience(error: &sqlx::Error) -> Transience {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => Transience::Always,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            let message = db.message().to_ascii_lowercase();
            if NEON_PERMANENT_MESSAGES.iter().any(|m| message.contains(m)) {
                return Transience::Never;
            }
            match code.as_ref() {
                "57P01" | "57P02" | "57P03" | "53300" => Transience::Always,
                c if c.starts_with("08") => Transience::Always,
                "40001" | "40P01" => Transience::IfIdempotent,
                "XX000" if NEON_TRANSIENT_MESSAGES.iter().any(|m| message.contains(m)) => Transience::Always,
                _ => Transience::Never,
            }
        }
        sqlx::Error::Protocol(message) if message.to_ascii_lowercase().contains("connection") => {
            Transience::IfIdempotent
        }
        _ => Transience::Never,
    }
}

/// Why a connection attempt failed, as far as [`connect_failure_verdict`] cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectFailure {
    /// The host answered that nothing listens on the port (`ECONNREFUSED`).
    Refused,
    /// The host name does not resolve (NXDOMAIN / `EAI_NONAME`), as opposed
    /// to a resolver that could not be reached, which may pass.
    NameNotResolved,
    /// Anything else (reset, EOF, timeout, a server error).
    Other,
}

impl ConnectFailure {
    /// Reads a driver error.
    pub(crate) fn of(error: &sqlx::Error) -> Self {
        let sqlx::Error::Io(io) = error else { return ConnectFailure::Other };
        if io.kind() == std::io::ErrorKind::ConnectionRefused {
            return ConnectFailure::Refused;
        }
        let text = io.to_string().to_ascii_lowercase();
        // glibc/musl (EAI_NONAME, EAI_NODATA), macOS, Windows (WSAHOST_NOT_FOUND).
        const NOT_RESOLVED: [&str; 5] = [
            "name or service not known",
            "no address associated with hostname",
            "nodename nor servname provided",
            "no such host is known",
            "name does not resolve",
        ];
        if NOT_RESOLVED.iter().any(|m| text.contains(m)) {
            ConnectFailure::NameNotResolved
        } else {
            ConnectFailure::Other
        }
    }
}

/// Whether `host` is this machine or a private network address (loopback,
/// `localhost`, a Unix socket, RFC 1918, IPv6 unique local or link-local):
/// a refusal there means no server, not a remote endpoint waking up.
pub(crate) fn is_local_or_private_host(host: &str) -> bool {
    use std::net::IpAddr;

    let host = host.trim().trim_start_matches('[').trim_end_matches(']').trim_end_matches('.');
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") || host.starts_with('/') {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified(),
        Ok(IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
            Some(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
            None => {
                let first = ip.segments()[0];
                ip.is_loopback() || ip.is_unspecified() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
            }
        },
        Err(_) => false,
    }
}

/// Decides whether a failed connection attempt to `host:port` is worth
/// waiting out: `None` to carry on as [`transience`] says, or `Some(why)`
/// to give up at once. A name that does not resolve never starts resolving
/// by waiting, and a refusal from this machine or a private address means
/// no PostgreSQL listens there; neither is a Neon compute waking up (Neon's
/// proxy accepts the connection and reports a waking compute itself). A
/// refusal from a public host, Neon's or another, is still retried.
pub(crate) fn connect_failure_verdict(host: &str, port: u16, failure: ConnectFailure) -> Option<String> {
    let address = if host.contains(':') && !host.starts_with('[') && !host.starts_with('/') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match failure {
        ConnectFailure::NameNotResolved => {
            Some(format!("host name {host} does not resolve (check the host in DATABASE_URL)"))
        }
        ConnectFailure::Refused if is_local_or_private_host(host) => {
            Some(format!("connection refused by {address}: no PostgreSQL server is listening there"))
        }
        ConnectFailure::Refused | ConnectFailure::Other => None,
    }
}

/// Whether the error means the server or the network is gone (vs. a query error).
fn is_connection_level(error: &sqlx::Error) -> bool {
    matches!(transience(error), Transience::Always)
        || matches!(error, sqlx::Error::Tls(_) | sqlx::Error::PoolClosed | sqlx::Error::Configuration(_))
}

/// Turns a driver error into the port's error, naming what was being done.
pub(crate) fn classify(error: sqlx::Error, what: &str) -> StoreError {
    let text = redact_text(&error.to_string());
    if let sqlx::Error::Database(db) = &error {
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        let message = db.message().to_ascii_lowercase();
        if NEON_PERMANENT_MESSAGES.iter().any(|m| message.contains(m)) {
            return StoreError::Unavailable {
                backend: BACKEND,
                what: format!(
                    "{what}: {text} (Neon refused: not transient; check the endpoint and the project's quotas)"
                ),
                source: None,
            };
        }
        return match code.as_str() {
            "57014" => StoreError::Timeout {
                backend: BACKEND,
                what: format!("{what}: the statement ran past statement_timeout ({text})"),
            },
            "55P03" => {
                StoreError::Timeout { backend: BACKEND, what: format!("{what}: waited past lock_timeout ({text})") }
            }
            "23505" | "40001" | "40P01" => StoreError::conflict(format!("{what}: {text}")),
            "28P01" | "28000" => StoreError::Unavailable {
                backend: BACKEND,
                what: format!("{what}: authentication failed ({text}); check the user and password in DATABASE_URL"),
                source: None,
            },
            "3D000" => StoreError::Unavailable {
                backend: BACKEND,
                what: format!("{what}: {text}; create the database or fix DATABASE_URL"),
                source: None,
            },
            "42P01" | "42703" => StoreError::internal(
                BACKEND,
                format!("{what}: {text}; the schema looks older than this binary: run `strata migrate`"),
            ),
            c if c.starts_with("22") => StoreError::invalid(format!("{what}: {text}")),
            _ if is_connection_level(&error) => {
                StoreError::Unavailable { backend: BACKEND, what: format!("{what}: {text}"), source: None }
            }
            _ => StoreError::internal(BACKEND, format!("{what}: {text} (SQLSTATE {code})")),
        };
    }
    match &error {
        sqlx::Error::PoolTimedOut => StoreError::Unavailable {
            backend: BACKEND,
            what: format!("{what}: no connection within the acquire timeout (is the server up and reachable?)"),
            source: None,
        },
        sqlx::Error::Tls(_) => StoreError::Unavailable {
            backend: BACKEND,
            what: format!(
                "{what}: TLS failed: {text} (with sslmode=verify-full the server certificate must chain to \
                 sslrootcert, or the platform roots, and name the host)"
            ),
            source: None,
        },
        _ if is_connection_level(&error) => {
            StoreError::Unavailable { backend: BACKEND, what: format!("{what}: {text}"), source: None }
        }
        sqlx::Error::Configuration(_) => StoreError::invalid(format!("{what}: {text}")),
        _ => StoreError::internal(BACKEND, format!("{what}: {text}")),
    }
}

impl Failure {
    /// The port error for this failure.
    pub(crate) fn into_store(self, what: &str) -> StoreError {
        match self {
            Failure::Db(error) => classify(error, what),
            Failure::Store(error) => error,
        }
    }

    /// How to handle it.
    pub(crate) fn transience(&self) -> Transience {
        match self {
            Failure::Db(error) => transience(error),
            Failure::Store(_) => Transience::Never,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_transient_and_unavailable() {
        let refused = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        assert_eq!(transience(&refused), Transience::Always);
        assert!(matches!(classify(refused, "writing bars"), StoreError::Unavailable { .. }));
        let timeout = sqlx::Error::PoolTimedOut;
        assert_eq!(transience(&timeout), Transience::Always);
        assert!(matches!(classify(timeout, "x"), StoreError::Unavailable { .. }));
        let decode = sqlx::Error::ColumnNotFound("x".into());
        assert_eq!(transience(&decode), Transience::Never);
        assert!(matches!(classify(decode, "x"), StoreError::Internal { .. }));
    }

    #[test]
    fn dead_local_servers_and_unknown_names_fail_at_once() {
        use ConnectFailure::{NameNotResolved, Other, Refused};
        let local = ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LocalHost", "db.localhost", "/tmp"];
        let private =
            ["10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.1.20", "fd12:3456::1", "fc00::1", "169.254.1.1"];
        let public = ["8.8.8.8", "172.32.0.1", "db.example.com", "2001:db8::1", "db.internal"];
        let neon = ["ep-cool-darkness-123456.us-east-2.aws.neon.tech", "ep-x-pooler.eu-central-1.aws.neon.tech"];
        for host in local.iter().chain(&private) {
            let why = connect_failure_verdict(host, 5432, Refused).unwrap_or_else(|| panic!("{host} retried"));
            assert!(why.contains("refused") && why.contains("no PostgreSQL server"), "{why}");
            assert!(connect_failure_verdict(host, 5432, NameNotResolved).unwrap().contains("does not resolve"));
            assert_eq!(connect_failure_verdict(host, 5432, Other), None, "{host}: a reset is retried");
        }
        for host in public.iter().chain(&neon) {
            assert_eq!(connect_failure_verdict(host, 5432, Refused), None, "{host}: refused is retried");
            assert!(connect_failure_verdict(host, 5432, NameNotResolved).unwrap().contains("does not resolve"));
            assert_eq!(connect_failure_verdict(host, 5432, Other), None, "{host}: a reset is retried");
        }
        assert_eq!(
            connect_failure_verdict("127.0.0.1", 1, Refused).unwrap(),
            "connection refused by 127.0.0.1:1: no PostgreSQL server is listening there"
        );
        assert!(connect_failure_verdict("::1", 1, Refused).unwrap().contains("[::1]:1"));
    }

    #[test]
    fn connect_failures_are_read_from_driver_errors() {
        use std::io::{Error, ErrorKind};
        let io = |kind, text: &str| sqlx::Error::Io(Error::new(kind, text.to_string()));
        assert_eq!(ConnectFailure::of(&io(ErrorKind::ConnectionRefused, "refused")), ConnectFailure::Refused);
        let nx = io(ErrorKind::Other, "failed to lookup address information: Name or service not known");
        assert_eq!(ConnectFailure::of(&nx), ConnectFailure::NameNotResolved);
        let again = io(ErrorKind::Other, "failed to lookup address information: Temporary failure in name resolution");
        assert_eq!(ConnectFailure::of(&again), ConnectFailure::Other);
        assert_eq!(ConnectFailure::of(&io(ErrorKind::ConnectionReset, "reset")), ConnectFailure::Other);
        assert_eq!(ConnectFailure::of(&sqlx::Error::PoolTimedOut), ConnectFailure::Other);
    }
}
