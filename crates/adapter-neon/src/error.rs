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

use strata_core::{BoxError, StoreError};

use crate::redact::Redacted;

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
        // rustls reports a refused certificate as an I/O error: retrying does not change the certificate.
        sqlx::Error::Io(io) if is_certificate_rejection(io) => Transience::Never,
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
        // A garbled answer while the connection is being set up (TLS negotiation, startup):
        // nothing was done yet, and a new connection is the remedy.
        sqlx::Error::Protocol(message) if message.contains("SSLRequest") || message.contains("startup") => {
            Transience::Always
        }
        sqlx::Error::Protocol(message) if message.to_ascii_lowercase().contains("connection") => {
            Transience::IfIdempotent
        }
        _ => Transience::Never,
    }
}

/// Whether an I/O error is a TLS certificate the client refused (rustls
/// wraps it in an `InvalidData` I/O error, not in `sqlx::Error::Tls`).
fn is_certificate_rejection(io: &std::io::Error) -> bool {
    let text = io.to_string().to_ascii_lowercase();
    text.contains("invalid peer certificate") || text.contains("certificate verify failed")
}

/// Why a connection attempt failed, as far as [`connect_failure_verdict`] cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectFailure {
    /// The host answered that nothing listens on the port (`ECONNREFUSED`).
    Refused,
    /// The host name does not resolve (NXDOMAIN / `EAI_NONAME`), as opposed
    /// to a resolver that could not be reached, which may pass.
    NameNotResolved,
    /// The server's TLS certificate was refused (unknown issuer, wrong host).
    CertificateRejected,
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
        if is_certificate_rejection(io) {
            return ConnectFailure::CertificateRejected;
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
        ConnectFailure::CertificateRejected => Some(format!(
            "the TLS certificate of {address} was refused: with sslmode=verify-full it must chain to sslrootcert \
             (or the platform roots) and name the host"
        )),
        ConnectFailure::Refused | ConnectFailure::Other => None,
    }
}

/// Whether the error means the server or the network is gone (vs. a query error).
fn is_connection_level(error: &sqlx::Error) -> bool {
    matches!(transience(error), Transience::Always)
        || matches!(error, sqlx::Error::Tls(_) | sqlx::Error::PoolClosed | sqlx::Error::Configuration(_))
}

/// Turns a driver error into the port's error, naming what was being done.
///
/// Kinds that carry a source (`Unavailable`, `Internal`) keep the driver
/// error as a [`Redacted`] source: its text, masked, is printed by whoever
/// prints the chain, and its SQLSTATE stays readable
/// ([`sqlstate`]). Kinds without a source (`Timeout`, `Conflict`,
/// `InvalidInput`) quote the masked text in their message.
pub(crate) fn classify(error: sqlx::Error, what: &str) -> StoreError {
    let redacted = Redacted::from(&error);
    let text = redacted.to_string();
    let source = || -> Option<BoxError> { Some(Box::new(redacted.clone())) };
    if let sqlx::Error::Database(db) = &error {
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        let message = db.message().to_ascii_lowercase();
        if NEON_PERMANENT_MESSAGES.iter().any(|m| message.contains(m)) {
            return StoreError::unavailable(
                BACKEND,
                format!("{what}: Neon refused (not transient; check the endpoint and the project's quotas)"),
                source(),
            );
        }
        return match code.as_str() {
            "57014" => {
                StoreError::timeout(BACKEND, format!("{what}: the statement ran past statement_timeout ({text})"))
            }
            "55P03" => StoreError::timeout(BACKEND, format!("{what}: waited past lock_timeout ({text})")),
            "23505" | "40001" | "40P01" => StoreError::conflict(format!("{what}: {text}")),
            "28P01" | "28000" => StoreError::unavailable(
                BACKEND,
                format!("{what}: authentication failed; check the user and password in DATABASE_URL"),
                source(),
            ),
            "3D000" => StoreError::unavailable(
                BACKEND,
                format!("{what}: no such database; create the database or fix DATABASE_URL"),
                source(),
            ),
            "42P01" | "42703" => StoreError::Internal {
                backend: BACKEND.into(),
                what: format!("{what}: the schema looks older than this binary: run `strata migrate`"),
                source: source(),
            },
            c if c.starts_with("22") => StoreError::invalid(format!("{what}: {text}")),
            _ if is_connection_level(&error) => StoreError::unavailable(BACKEND, what, source()),
            _ => StoreError::Internal {
                backend: BACKEND.into(),
                what: format!("{what} (SQLSTATE {code})"),
                source: source(),
            },
        };
    }
    match &error {
        sqlx::Error::PoolTimedOut => StoreError::unavailable(
            BACKEND,
            format!("{what}: no connection within the acquire timeout (is the server up and reachable?)"),
            source(),
        ),
        sqlx::Error::Tls(_) => StoreError::unavailable(
            BACKEND,
            format!(
                "{what}: TLS failed (with sslmode=verify-full the server certificate must chain to sslrootcert, or \
                 the platform roots, and name the host)"
            ),
            source(),
        ),
        _ if is_connection_level(&error) => StoreError::unavailable(BACKEND, what, source()),
        sqlx::Error::Configuration(_) => StoreError::invalid(format!("{what}: {text}")),
        _ => StoreError::Internal { backend: BACKEND.into(), what: what.to_string(), source: source() },
    }
}

/// The SQLSTATE behind a port error made by [`classify`], read from its
/// [`Redacted`] source: `None` when the error did not come from the server.
pub(crate) fn sqlstate(error: &StoreError) -> Option<&str> {
    Redacted::sqlstate_in(std::error::Error::source(error)?)
}

/// A port error and every cause, `: `-separated, as `{:#}` prints an
/// `anyhow` chain: for reports that keep only a string.
pub(crate) fn describe(error: &StoreError) -> String {
    let mut text = error.to_string();
    let mut next = std::error::Error::source(error);
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
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
    fn a_garbled_answer_while_connecting_is_transient() {
        let garbled = sqlx::Error::Protocol("unexpected response from SSLRequest: 0x00".into());
        assert_eq!(transience(&garbled), Transience::Always);
        assert!(matches!(classify(garbled, "writing bars"), StoreError::Unavailable { .. }));
    }

    #[test]
    fn a_refused_certificate_is_not_retried() {
        let rejected = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "invalid peer certificate: UnknownIssuer",
        ));
        assert_eq!(transience(&rejected), Transience::Never);
        assert_eq!(ConnectFailure::of(&rejected), ConnectFailure::CertificateRejected);
        let verdict = connect_failure_verdict("db.example.com", 5432, ConnectFailure::CertificateRejected);
        assert!(verdict.is_some_and(|text| text.contains("certificate of db.example.com:5432 was refused")));
    }

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

    /// A server error as sqlx hands it over, with any code and text.
    #[derive(Debug)]
    struct ServerError {
        code: &'static str,
        message: String,
    }

    impl std::fmt::Display for ServerError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.message)
        }
    }

    impl std::error::Error for ServerError {}

    impl sqlx::error::DatabaseError for ServerError {
        fn message(&self) -> &str {
            &self.message
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.code.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn server_error(code: &'static str, message: &str) -> sqlx::Error {
        sqlx::Error::Database(Box::new(ServerError { code, message: message.to_string() }))
    }

    /// An error that names its cause only through `source()`.
    #[derive(Debug)]
    struct Wrapper(&'static str, Box<dyn std::error::Error + Send + Sync>);

    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&*self.1)
        }
    }

    /// Every link of `error`'s chain as printed, `Debug` included.
    fn chain_texts(error: &StoreError) -> Vec<String> {
        let mut texts = vec![error.to_string(), format!("{error:?}")];
        let mut next = std::error::Error::source(error);
        while let Some(cause) = next {
            texts.push(cause.to_string());
            texts.push(format!("{cause:?}"));
            next = cause.source();
        }
        texts
    }

    const URL: &str = "postgres://u:secret@h/db";

    #[test]
    fn classified_errors_keep_a_masked_source_chain() {
        let io = |text: String| std::io::Error::new(std::io::ErrorKind::ConnectionReset, text);
        let errors = [
            server_error("XX000", &format!("could not reach {URL} for now")),
            server_error("28P01", &format!("password authentication failed for {URL}")),
            sqlx::Error::Io(io(format!("reset while talking to {URL}"))),
            sqlx::Error::Tls(Box::new(Wrapper("handshake failed", Box::new(io(format!("at {URL}")))))),
            sqlx::Error::Protocol(format!("unexpected message from {URL}")),
            sqlx::Error::Configuration(Box::new(io(format!("bad {URL}")))),
        ];
        for error in errors {
            let mut shown = error.to_string();
            let mut next = std::error::Error::source(&error);
            while let Some(cause) = next {
                shown = format!("{shown}: {cause}");
                next = cause.source();
            }
            assert!(shown.contains("secret"), "the test needs a secret in the driver's chain: {shown}");
            let classified = classify(error, "writing bars");
            let texts = chain_texts(&classified);
            for text in &texts {
                assert!(!text.contains("secret"), "{text}");
            }
            // The driver's text is printed once, masked, by whoever prints the chain.
            let described = describe(&classified);
            assert!(described.contains("postgres://u:***@h/db"), "{described}");
            if matches!(classified, StoreError::Unavailable { .. } | StoreError::Internal { .. }) {
                let source = std::error::Error::source(&classified).expect("a source");
                assert!(source.downcast_ref::<Redacted>().is_some(), "{source:?}");
                assert_eq!(described.matches("postgres://u:***@h/db").count(), 1, "{described}");
            }
        }
    }

    #[test]
    fn a_cause_not_quoted_by_its_parent_stays_in_the_chain_masked() {
        let inner = std::io::Error::other(format!("refused by {URL}"));
        let tls = sqlx::Error::Tls(Box::new(Wrapper("certificate rejected", Box::new(inner))));
        let classified = classify(tls, "connecting");
        assert!(matches!(classified, StoreError::Unavailable { .. }), "{classified:?}");
        let described = describe(&classified);
        assert!(described.contains("certificate rejected") && described.contains("refused by postgres://u:***@h/db"));
        assert!(!described.contains("secret") && !chain_texts(&classified).iter().any(|t| t.contains("secret")));
    }

    #[test]
    fn the_sqlstate_is_read_from_the_chain_not_from_messages() {
        let missing_partition =
            server_error("23514", &format!("no partition of relation \"ohlcv_bars\" found for row ({URL})"));
        let classified = classify(missing_partition, "writing bars");
        assert!(matches!(classified, StoreError::Internal { .. }), "{classified:?}");
        assert_eq!(sqlstate(&classified), Some("23514"));
        let source = std::error::Error::source(&classified).expect("a source");
        assert_eq!(source.downcast_ref::<Redacted>().and_then(Redacted::sqlstate), Some("23514"));
        // Also through a Failure, after the adapter's own retries are spent.
        let failure = Failure::Db(server_error("42P01", "relation \"s.strata_meta\" does not exist"));
        let classified = failure.into_store("reading the schema").after_retries();
        assert_eq!(sqlstate(&classified), Some("42P01"));
        assert!(describe(&classified).contains("strata_meta\" does not exist"), "{}", describe(&classified));
        // Errors that never reached a server have none, and port errors made here have no chain.
        let refused = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        assert_eq!(sqlstate(&classify(refused, "x")), None);
        assert_eq!(sqlstate(&StoreError::internal(BACKEND, "SQLSTATE 23514")), None);
        assert_eq!(sqlstate(&Failure::Store(StoreError::conflict("23514")).into_store("x")), None);
    }
}
