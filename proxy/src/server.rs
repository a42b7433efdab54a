//! Starting the server: storage, keys and users from the data directory, then HTTP or HTTPS.

use std::net::SocketAddr;
use std::sync::Arc;

use regbridge::{Error, Result, Secret};
use regbridge_providers::generic::GenericRegistryBuilder;
use regbridge_providers::http::ClientOptions;
use regbridge_providers::local::{FsStorage, LocalRegistry, Storage, TokenSigner};

use crate::api::{AppState, router};
use crate::config::ServeConfig;
use crate::config_file::RouteConfig;
use crate::forward::location::LocationSigner;
use crate::routing::{Route, RoutingTable, Target, Upstream};
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
        let (users, first) = if config.users.is_empty() {
            Users::load_or_init(&config.data_dir, initial_password)?
        } else {
            (Users::from_hashes(config.users.clone()), None)
        };
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
        let routes = build_routes(&config.routes)?;
        let locations = LocationSigner::new(signer.derive_key("upload-location"));
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| Error::internal("HTTP client", e))?;
        let state = AppState { config, storage, signer, users, routes, locations, http };
        Ok(Self { state: Arc::new(state), listener })
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

/// The routing table for `routes` (the local registry alone when there are none).
pub fn build_routes(routes: &[RouteConfig]) -> Result<RoutingTable> {
    if routes.is_empty() {
        return Ok(RoutingTable::local_only());
    }
    let mut out = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        let label = format!("route {} ({} {:?})", i + 1, r.provider, r.prefix);
        let named = |e: Error| Error::bad_input(format!("{label}: {e}"));
        let target = match r.provider.as_str() {
            "local" => Target::Local,
            "generic" => {
                let registry = r.registry.as_deref().ok_or_else(|| {
                    Error::bad_input(format!("{label}: a generic route needs registry = \"host[:port]\""))
                })?;
                let mut options = ClientOptions::default();
                if let Some(secs) = r.idle_timeout_secs {
                    options.idle_timeout = std::time::Duration::from_secs(secs.max(1));
                }
                let mut builder =
                    GenericRegistryBuilder::new(registry).with_prefix(&r.upstream_prefix).with_options(options);
                match (&r.username, r.upstream_password().map_err(named)?) {
                    (Some(user), Some(password)) => builder = builder.with_credentials(user, password),
                    (None, None) => {}
                    _ => return Err(Error::bad_input(format!("{label}: give both username and password, or neither"))),
                }
                let generic = builder.build().map_err(named)?;
                let client = generic.client().clone();
                Target::Upstream(Arc::new(Upstream {
                    provider: Arc::new(generic),
                    client,
                    redirect_blobs: r.redirect_blobs.unwrap_or(true),
                    download_urls: Default::default(),
                }))
            }
            other => {
                return Err(Error::bad_input(format!("{label}: unknown provider {other:?}; use local or generic")));
            }
        };
        out.push(Route { prefix: r.prefix.clone(), target, label });
    }
    RoutingTable::new(out)
}
