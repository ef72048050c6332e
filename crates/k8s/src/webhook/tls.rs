//! HTTPS for the webhook: the certificate and key come from PEM files (a mounted
//! `kubernetes.io/tls` Secret, `tls.crt` and `tls.key`), and are re-read periodically; when the
//! files change (cert-manager renewed the certificate and the kubelet updated the volume), new
//! connections get the new certificate without a restart. A pair that does not load (say, read
//! half-way through an update) is reported and the previous certificate kept until the next
//! check.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// File names in a `kubernetes.io/tls` Secret.
pub const CERT_FILE: &str = "tls.crt";
/// See [`CERT_FILE`].
pub const KEY_FILE: &str = "tls.key";

/// How often the files are checked for a new certificate by default. The kubelet takes up to
/// about a minute to update a mounted Secret, and cert-manager renews weeks ahead of expiry, so
/// this only needs to be well below a day.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(30);

/// How long requests in flight may take to finish on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Where the certificate chain and private key are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// `tls.crt` and `tls.key` in `dir` (a mounted `kubernetes.io/tls` Secret).
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        Self {
            cert: dir.as_ref().join(CERT_FILE),
            key: dir.as_ref().join(KEY_FILE),
        }
    }
}

/// The webhook's certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error(
        "could not read the webhook's TLS file {path}: {source}; mount the certificate Secret \
         there (tls.crt and tls.key)"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no certificate, or one that does not parse.
    #[error(
        "{path} holds no readable PEM certificate ({reason}); it must start with -----BEGIN CERTIFICATE-----"
    )]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        reason: String,
    },
    /// The key file holds no private key, or one that does not parse.
    #[error("{path} holds no readable PEM private key ({reason})")]
    Key {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        reason: String,
    },
    /// Certificate and key do not make a TLS configuration (e.g. the key is not the
    /// certificate's).
    #[error("the certificate {cert} and key {key} cannot be served: {source}")]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
}

/// Builds a server configuration from PEM bytes. The crypto provider is named explicitly so the
/// result does not depend on which providers other crates compiled in.
fn server_config(
    files: &TlsFiles,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<ServerConfig, TlsError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate {
            path: files.cert.clone(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Certificate {
            path: files.cert.clone(),
            reason: "no CERTIFICATE block".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key {
        path: files.key.clone(),
        reason: e.to_string(),
    })?;
    let config_err = |source| TlsError::Config {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(config_err)?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(config_err)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

async fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// The webhook's TLS configuration, reloadable from its files.
#[derive(Debug)]
pub struct WebhookTls {
    files: TlsFiles,
    config: RustlsConfig,
    /// The PEM bytes currently served, to notice a change.
    loaded: Mutex<(Vec<u8>, Vec<u8>)>,
}

impl WebhookTls {
    /// Loads the certificate and key; fails when they cannot be served.
    pub async fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let cert = read(&files.cert).await?;
        let key = read(&files.key).await?;
        let config = server_config(&files, &cert, &key)?;
        Ok(Self {
            config: RustlsConfig::from_config(Arc::new(config)),
            loaded: Mutex::new((cert, key)),
            files,
        })
    }

    /// Re-reads the files and, when they changed, serves the new certificate to new
    /// connections. Returns whether it switched. On error the current certificate stays.
    pub async fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let cert = read(&self.files.cert).await?;
        let key = read(&self.files.key).await?;
        {
            let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            if loaded.0 == cert && loaded.1 == key {
                return Ok(false);
            }
        }
        let config = server_config(&self.files, &cert, &key)?;
        self.config.reload_from_config(Arc::new(config));
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = (cert, key);
        Ok(true)
    }

    /// Checks the files every `interval`, forever; run it next to the server.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate; the files were just loaded
        loop {
            ticks.tick().await;
            match self.reload_if_changed().await {
                Ok(true) => {
                    tracing::info!(cert = %self.files.cert.display(), "webhook certificate reloaded")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "webhook certificate not reloaded; serving the previous one")
                }
            }
        }
    }
}

/// The webhook server failed.
#[derive(Debug, thiserror::Error)]
#[error("the admission webhook server on {addr} failed: {source}")]
pub struct ServeError {
    /// Address it listened on.
    pub addr: String,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// Serves `router` (see [`super::app`]) over HTTPS on `listener` until `shutdown` completes,
/// checking the certificate files for changes every `reload_interval`. Requests in flight get
/// a few seconds to finish on shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<WebhookTls>,
    router: Router,
    reload_interval: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a: SocketAddr| a.to_string());
    let err = |source| ServeError {
        addr: addr.clone(),
        source,
    };
    let listener = listener.into_std().map_err(err)?;
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(listener, tls.config.clone())
        .map_err(err)?
        .handle(handle.clone());
    let stopper = tokio::spawn(async move {
        shutdown.await;
        handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
    });
    let watcher = tokio::spawn(tls.clone().watch(reload_interval));
    tracing::info!(%addr, "serving the admission webhook over HTTPS");
    let result = server.serve(router.into_make_service()).await;
    watcher.abort();
    stopper.abort();
    result.map_err(err)
}
