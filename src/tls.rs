//! TLS for the tool's own sessions, with libpq's `sslmode` meanings, through rustls.
//!
//! - `disable`, `allow`: no TLS.
//! - `prefer` (the default), `require`: encrypt if the server offers it (`require`: insist),
//!   without checking the certificate, as libpq does; `require` with a root certificate file
//!   present checks the chain like `verify-ca`, as libpq does for compatibility.
//! - `verify-ca`: the certificate must chain to `sslrootcert` (default `~/.postgresql/root.crt`).
//! - `verify-full`: that, and the certificate must name the host connected to.
//!
//! The server-to-server link gets the same parameters in its foreign server; libpq on the
//! target server applies them there.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::conninfo::ConnInfo;

/// How a session's server certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Encrypt, trust any certificate.
    Nothing,
    /// The chain must lead to a trusted root.
    Chain,
    /// The chain, and the host name.
    ChainAndName,
}

/// The TLS connector for a session, or `None` when the session must not use TLS.
/// `home` is where libpq's default root certificate (`~/.postgresql/root.crt`) lives.
pub fn connector(
    info: &ConnInfo,
    home: Option<&Path>,
) -> anyhow::Result<Option<MakeRustlsConnect>> {
    let mode = info.get("sslmode").unwrap_or("prefer");
    let explicit_root = info.get("sslrootcert").map(PathBuf::from);
    let default_root = home.map(|h| h.join(".postgresql/root.crt"));
    let root = explicit_root
        .clone()
        .or_else(|| default_root.clone().filter(|p| p.is_file()));
    let check = match mode {
        "disable" | "allow" => return Ok(None),
        "prefer" => Check::Nothing,
        "require" if root.is_some() => Check::Chain,
        "require" => Check::Nothing,
        "verify-ca" => Check::Chain,
        "verify-full" => Check::ChainAndName,
        other => bail!(
            "invalid sslmode \"{other}\": use disable, allow, prefer, require, verify-ca or \
             verify-full"
        ),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("could not set up TLS")?;
    let config = if check == Check::Nothing {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let path = root
            .or(default_root)
            .unwrap_or_else(|| PathBuf::from("root.crt"));
        let roots = load_roots(&path, mode)?;
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .context("could not set up certificate verification")?;
        let builder = builder.dangerous();
        if check == Check::Chain {
            builder
                .with_custom_certificate_verifier(Arc::new(ChainOnly(verifier)))
                .with_no_client_auth()
        } else {
            builder
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        }
    };
    Ok(Some(MakeRustlsConnect::new(config)))
}

fn load_roots(path: &PathBuf, mode: &str) -> anyhow::Result<RootCertStore> {
    let pem = std::fs::read(path).map_err(|e| {
        anyhow::anyhow!(
            "root certificate file \"{}\" cannot be read ({e}); give sslrootcert=FILE with \
             the CA that signed the server's certificate, or use a weaker sslmode than {mode}",
            path.display()
        )
    })?;
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert =
            cert.with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("{} holds a certificate rustls cannot use", path.display()))?;
    }
    if roots.is_empty() {
        bail!("{} holds no certificate", path.display());
    }
    Ok(roots)
}

/// `verify-ca`: the chain is checked, the name is not.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(Error::InvalidCertificate(CertificateError::NotValidForName))
            | Err(Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require`: encrypted, the certificate not checked (libpq's meaning).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A hint for a connection that failed in TLS: the certificate errors rustls reports (found in
/// the driver's chain of causes), or a server that refused TLS (which tokio-postgres says only
/// in words).
pub fn hint(e: &tokio_postgres::Error) -> Option<&'static str> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cause {
        // rustls errors come wrapped in an io::Error, whose own source() skips them.
        let tls = err.downcast_ref::<Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<Error>())
        });
        match tls {
            Some(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {
                return Some("the server's certificate does not name the host connected to (sslmode=verify-full checks it); connect by a name the certificate holds, or use sslmode=verify-ca");
            }
            Some(Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                return Some("the server's certificate is not signed by a CA in sslrootcert");
            }
            _ => {}
        }
        if err.to_string() == "server does not support TLS" {
            return Some("the server does not accept TLS connections; use sslmode=prefer or disable, or enable ssl on the server");
        }
        cause = err.source();
    }
    None
}
