//! Starting the server: storage, keys and users from the data directory, then HTTP or HTTPS.

use std::net::SocketAddr;
use std::sync::Arc;

use regbridge::{Error, Result, Secret};
use regbridge_providers::local::{FsStorage, LocalRegistry, Storage, TokenSigner};

use crate::api::{AppState, router};
use crate::config::ServeConfig;
use crate::users::{ADMIN_USER, Users};

/// A server ready to accept connections.
pub struct Server {
    state: Arc<AppState>,
    listener: std::net::TcpListener,
}

impl Server {
    /// Opens the data directory (creating storage, signing key and, on first start, the admin user) and
    /// binds the listen address. `initial_password` is the admin's password on a first start; a random one
    /// is generated when it is `None`, and printed once on stderr.
    pub fn bind(config: ServeConfig, initial_password: Option<Secret>) -> Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| Error::internal(format!("create data directory {}", config.data_dir.display()), e))?;
        let storage: Arc<dyn Storage> = Arc::new(FsStorage::open(config.data_dir.join("storage"))?);
        let signer = TokenSigner::load_or_create(&config.data_dir.join("signing.key"))?;
        let (users, first) = Users::load_or_init(&config.data_dir, initial_password)?;
        if let Some(first) = first
            && first.generated
        {
            eprintln!(
                "regbridge: created user {ADMIN_USER:?} with password {}\n          (stored in {}; shown only this once)",
                first.password.expose(),
                config.data_dir.join("admin-password").display()
            );
        }
        let listener = std::net::TcpListener::bind(config.listen)
            .map_err(|e| Error::bad_input(format!("cannot listen on {}: {e}", config.listen)))?;
        listener.set_nonblocking(true).map_err(|e| Error::internal("listener", e))?;
        Ok(Self { state: Arc::new(AppState { config, storage, signer, users }), listener })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// The local provider over this server's storage, reachable at `endpoint`.
    pub fn local_registry(&self, endpoint: &str) -> LocalRegistry {
        LocalRegistry::new(self.state.storage.clone(), self.state.signer.clone(), endpoint)
    }

    /// Serves until the process ends.
    pub async fn run(self) -> Result<()> {
        let app = router(self.state.clone());
        let addr = self.local_addr();
        let scheme = if self.state.config.tls.is_some() { "https" } else { "http" };
        tracing::info!(%addr, "regbridge listening on {scheme}://{addr}");
        match &self.state.config.tls {
            None => {
                let listener =
                    tokio::net::TcpListener::from_std(self.listener).map_err(|e| Error::internal("listener", e))?;
                axum::serve(listener, app).await.map_err(|e| Error::internal("server", e))
            }
            Some((cert, key)) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await.map_err(|e| {
                    Error::bad_input(format!(
                        "cannot load TLS certificate {} / key {}: {e}",
                        cert.display(),
                        key.display()
                    ))
                })?;
                axum_server::from_tcp_rustls(self.listener, tls)
                    .serve(app.into_make_service())
                    .await
                    .map_err(|e| Error::internal("server", e))
            }
        }
    }
}
