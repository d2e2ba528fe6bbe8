//! TLS: the libpq rules for `sslrootcert` that sqlx does not apply itself, the crypto provider,
//! and the gist of a failed handshake. The crate docs' "TLS" section says what a user sees.

use std::io;
use std::path::Path;

use rustls::CertificateError;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::error::PgError;

/// The TLS settings a URL spells, or else the environment (`PGSSLMODE`, `PGSSLROOTCERT`), as
/// sqlx reads them: the last occurrence of a key wins, under any of sqlx's spellings.
struct Spelled {
    /// Whether an sslmode was given at all (libpq's default depends on it).
    mode_given: bool,
    /// The `sslrootcert` value, as written.
    root_cert: Option<String>,
}

fn spelled(url: &url::Url) -> Spelled {
    let mut mode_given = false;
    let mut root_cert = None;
    for (key, value) in url.query_pairs() {
        match &*key {
            "sslmode" | "ssl-mode" => mode_given = true,
            "sslrootcert" | "ssl-root-cert" | "ssl-ca" => root_cert = Some(value.into_owned()),
            _ => {}
        }
    }
    let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    Spelled {
        // sqlx ignores a PGSSLMODE it cannot read.
        mode_given: mode_given
            || env("PGSSLMODE").is_some_and(|mode| mode.parse::<PgSslMode>().is_ok()),
        root_cert: root_cert.or_else(|| env("PGSSLROOTCERT")),
    }
}

/// libpq's name of `mode`.
pub(crate) fn mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// Applies libpq's rules for `sslrootcert` to `options`, which sqlx read from `url`:
///
/// - `sslrootcert=system` (libpq 16) trusts the well-known public CAs (sqlx's built-in webpki
///   roots) and means `verify-full` when no sslmode is given; any other sslmode is refused;
/// - `sslmode=require` with a root certificate that exists verifies the chain as `verify-ca`
///   does (sqlx would accept any certificate);
/// - a root certificate that `verify-ca` or `verify-full` needs must exist and hold a PEM
///   certificate (sqlx would fail only once connected, or, for a file without one, silently
///   trust the public CAs alone).
///
/// `target` is for messages. Nothing here reads or prints the password.
pub(crate) fn apply_libpq_rules(
    options: PgConnectOptions,
    url: &str,
    target: &str,
) -> Result<PgConnectOptions, PgError> {
    // sqlx parsed the same text with the same parser, so this succeeds.
    let Ok(url) = url::Url::parse(url) else {
        return Ok(options);
    };
    let spelled = spelled(&url);
    let mode = options.get_ssl_mode();
    let refuse = |reason: String| PgError::TlsConfig {
        target: target.to_owned(),
        reason,
    };
    let Some(root_cert) = spelled.root_cert else {
        return Ok(options);
    };
    if root_cert == "system" {
        if spelled.mode_given && !matches!(mode, PgSslMode::VerifyFull) {
            return Err(refuse(format!(
                "sslmode={} may not be used with sslrootcert=system (use verify-full)",
                mode_name(mode)
            )));
        }
        // An empty PEM list replaces the file name `system`, leaving sqlx's built-in roots.
        return Ok(options
            .ssl_mode(PgSslMode::VerifyFull)
            .ssl_root_cert_from_pem(Vec::new()));
    }
    // sqlx reads PGSSLROOTCERT holding PEM text as the certificates themselves.
    let inline = root_cert.trim_start().starts_with("-----BEGIN");
    match mode {
        PgSslMode::Require if inline => Ok(options.ssl_mode(PgSslMode::VerifyCa)),
        // libpq: "if a root CA file exists, the behavior of sslmode=require will be the same as
        // that of verify-ca"; without the file, require verifies nothing.
        PgSslMode::Require if Path::new(&root_cert).exists() => {
            check_root_file(&root_cert).map_err(refuse)?;
            Ok(options.ssl_mode(PgSslMode::VerifyCa))
        }
        PgSslMode::VerifyCa | PgSslMode::VerifyFull if !inline => {
            check_root_file(&root_cert).map_err(refuse)?;
            Ok(options)
        }
        _ => Ok(options),
    }
}

/// Whether the file `path` can serve as `sslrootcert`: readable, with a PEM certificate in it.
fn check_root_file(path: &str) -> Result<(), String> {
    match std::fs::read(path) {
        Ok(pem) if contains(&pem, b"-----BEGIN CERTIFICATE-----") => Ok(()),
        Ok(_) => Err(format!(
            "sslrootcert file {path:?} holds no PEM certificate"
        )),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            Err(format!("sslrootcert file {path:?} does not exist"))
        }
        Err(err) => Err(format!("cannot read sslrootcert file {path:?}: {err}")),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Makes aws-lc-rs the process's rustls provider if none is installed yet. sqlx's `verify-ca`
/// builds its verifier on the process default, which rustls picks by itself only when exactly
/// one provider is compiled in; a program that also links rustls with `ring` would panic there.
/// A provider the program installed itself is left alone.
pub(crate) fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: a provider is in place either way.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

/// The rustls error behind a failed handshake (or a TLS error later on), if `err` is one.
pub(crate) fn rustls_error(err: &sqlx::Error) -> Option<&rustls::Error> {
    match err {
        sqlx::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>(),
        sqlx::Error::Tls(tls) => tls.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

/// The gist of a TLS failure, in a few words.
pub(crate) fn reason(err: &rustls::Error) -> String {
    let rustls::Error::InvalidCertificate(cert) = err else {
        return format!("TLS handshake failed: {err}");
    };
    match cert {
        CertificateError::UnknownIssuer => {
            "TLS certificate not trusted: no trusted CA signed it (see sslrootcert)".to_owned()
        }
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "TLS certificate is not valid for host {} (it is for {})",
            expected.to_str(),
            names(presented)
        ),
        CertificateError::NotValidForName => {
            "TLS certificate is not valid for the host connected to".to_owned()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "TLS certificate has expired".to_owned()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "TLS certificate is not valid yet".to_owned()
        }
        other => format!("TLS certificate rejected: {other}"),
    }
}

/// The names a certificate presents, as `localhost, db.example.com`: rustls spells each as
/// `DnsName("…")` or `IpAddress(…)`.
fn names(presented: &[String]) -> String {
    if presented.is_empty() {
        return "no host name".to_owned();
    }
    presented
        .iter()
        .map(|name| {
            name.strip_prefix("DnsName(\"")
                .and_then(|rest| rest.strip_suffix("\")"))
                .unwrap_or(name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}
