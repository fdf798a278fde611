//! TLS (feature `tls`, on by default): HTTPS and `wss://` on the server,
//! `wss://` in the client, with [rustls](https://docs.rs/rustls) and its
//! ring provider.
//!
//! Server: Tornado's
//!
//! ```python
//! app.listen(443, ssl_options={"certfile": "cert.pem", "keyfile": "key.pem"})
//! ```
//!
//! is
//!
//! ```no_run
//! # let app = cyclone::web::Application::builder().build();
//! use cyclone::tls::ServerTls;
//! let tls = ServerTls::from_pem_files("cert.pem", "key.pem")?;
//! app.listen_tls(443, tls)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Client: `websocket_connect("wss://…")` verifies the server against
//! Mozilla's root certificates (compiled in); extra roots (Tornado's
//! `ssl_options={"ca_certs": …}`, e.g. a self-signed certificate) go in
//! [`ConnectOptions::ca_certs`](crate::websocket::client::ConnectOptions::ca_certs),
//! or a whole [`rustls::ClientConfig`] (see [`client_config`]) in
//! [`ConnectOptions::tls_config`](crate::websocket::client::ConnectOptions::tls_config).
//!
//! A self-signed pair for trying it out:
//!
//! ```text
//! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
//!     -keyout key.pem -out cert.pem -days 30 -subj /CN=localhost \
//!     -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
//!     -addext basicConstraints=critical,CA:FALSE
//! ```

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

pub use rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The ALPN protocol the server offers: HTTP/1.1 (WebSocket upgrades
/// included).
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The crypto provider every configuration built here uses (ring).
///
/// rustls 0.23.48 deprecates ring's provider because it has no
/// post-quantum key exchange (aws-lc-rs has); ring is chosen anyway for
/// its build (aws-lc needs cmake and a long C build). A configuration with
/// another provider can be passed whole: [`ServerTls::from_config`],
/// `ConnectOptions::tls_config`.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's TLS settings (Tornado's `ssl_options`): a certificate chain
/// and its private key, or any [`rustls::ServerConfig`]. Cheap to clone and
/// `Send`, so [`crate::run_workers_tls`] can give one to every worker.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
}

impl ServerTls {
    /// Tornado's `ssl_options={"certfile": certfile, "keyfile": keyfile}`:
    /// the PEM certificate chain (leaf first) in `certfile`, and its
    /// private key (PKCS#8, RSA/PKCS#1 or SEC1 EC, PEM) in `keyfile`,
    /// which may be the same file. TLS 1.2 and 1.3, ALPN `http/1.1`.
    ///
    /// # Errors
    /// A file cannot be read, holds no certificate or no private key, or
    /// the key does not suit the certificate; the message names the file.
    pub fn from_pem_files(
        certfile: impl AsRef<Path>,
        keyfile: impl AsRef<Path>,
    ) -> io::Result<ServerTls> {
        let (certfile, keyfile) = (certfile.as_ref(), keyfile.as_ref());
        let read = |p: &Path, what: &str| {
            std::fs::read(p)
                .map_err(|e| io::Error::new(e.kind(), format!("{what} {}: {e}", p.display())))
        };
        let certs = parse_certs(&read(certfile, "certfile")?)
            .map_err(|e| named(e, "certfile", certfile))?;
        let key =
            parse_key(&read(keyfile, "keyfile")?).map_err(|e| named(e, "keyfile", keyfile))?;
        ServerTls::from_der(certs, key).map_err(|e| {
            let what = format!("keyfile {} for certfile", keyfile.display());
            named(e, &what, certfile)
        })
    }

    /// Like [`from_pem_files`](Self::from_pem_files), from PEM text in
    /// memory.
    ///
    /// # Errors
    /// No certificate in `cert_pem`, no private key in `key_pem`, or a key
    /// that does not suit the certificate.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> io::Result<ServerTls> {
        ServerTls::from_der(parse_certs(cert_pem)?, parse_key(key_pem)?)
    }

    /// From a certificate chain (leaf first) and its private key, DER.
    ///
    /// # Errors
    /// The key does not suit the certificate, or is of a kind rustls
    /// cannot sign with.
    pub fn from_der(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> io::Result<ServerTls> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(invalid)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(invalid)?;
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        Ok(ServerTls {
            config: Arc::new(config),
        })
    }

    /// Any rustls server configuration (client certificates, several
    /// certificates by SNI, session resumption…), used as it is: set its
    /// `alpn_protocols` to `http/1.1` (or leave them empty) yourself.
    pub fn from_config(config: Arc<rustls::ServerConfig>) -> ServerTls {
        ServerTls { config }
    }

    /// The rustls configuration connections are served with.
    pub fn config(&self) -> &Arc<rustls::ServerConfig> {
        &self.config
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("alpn_protocols", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

/// The certificates in `pem` (at least one).
///
/// # Errors
/// `InvalidData` when there is none or the PEM is malformed.
pub fn parse_certs(pem: &[u8]) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(
            "no certificate (-----BEGIN CERTIFICATE-----) found",
        ));
    }
    Ok(certs)
}

/// The first private key in `pem`: PKCS#8 (`BEGIN PRIVATE KEY`), RSA
/// (`BEGIN RSA PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`).
///
/// # Errors
/// `InvalidData` when there is none or the PEM is malformed.
pub fn parse_key(pem: &[u8]) -> io::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            invalid("no private key (PKCS#8, RSA or EC, PEM) found")
        }
        e => invalid(format!("bad PEM: {e}")),
    })
}

/// The client configuration for `wss://` by default: Mozilla's roots
/// (webpki-roots) and the certificates in `extra_roots_pem`, ALPN
/// `http/1.1`.
///
/// # Errors
/// `extra_roots_pem` holds no certificate, a malformed one, or one that
/// is not a usable trust anchor.
pub fn client_config(extra_roots_pem: Option<&[u8]>) -> io::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = extra_roots_pem {
        for cert in parse_certs(pem)? {
            roots
                .add(cert)
                .map_err(|e| invalid(format!("CA certificate refused: {e}")))?;
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(invalid)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// The default client configuration (Mozilla's roots), built once per
/// thread.
pub(crate) fn default_client_config() -> Arc<rustls::ClientConfig> {
    thread_local! {
        static DEFAULT: Arc<rustls::ClientConfig> =
            client_config(None).expect("the built-in roots are valid");
    }
    DEFAULT.with(Arc::clone)
}

fn invalid(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn named(e: io::Error, what: &str, file: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_key_and_certificate_are_clear_errors() {
        let e = parse_key(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("no private key"), "{e}");
        let e = parse_certs(b"nothing here").unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
        let e =
            ServerTls::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");
    }

    #[test]
    fn client_config_trusts_the_web_pki() {
        let c = client_config(None).unwrap();
        assert!(c.alpn_protocols.len() == 1);
        assert_eq!(c.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(client_config(Some(b"junk")).is_err());
    }
}
