//! Starting the server: storage, keys and users from the data directory, then HTTP or HTTPS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use regbridge::{Error, Result, Secret};
use regbridge_providers::local::{LocalRegistry, Storage};

use crate::config::ServeConfig;
use crate::connections::ConnectionStore;
use crate::forward::location::LocationSigner;
use crate::limits::ConnectionLimits;
use crate::router::router;
use crate::routing::RoutingTable;
use crate::state::AppState;
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
    ///
    /// Cloud routes (`ecr`) load credentials asynchronously and need [`Server::bind_async`].
    pub fn bind(config: ServeConfig, initial_password: Option<Secret>) -> Result<Self> {
        let routes = build_routes_sync(&config.routes)?;
        Self::bind_with_routes(config, initial_password, routes, None)
    }

    /// [`Server::bind`] with the local registry on `storage` instead of `DATA_DIR/storage` (an embedder's own
    /// backend, or a test double); keys and users still live in the data directory.
    pub fn bind_with_storage(
        config: ServeConfig,
        initial_password: Option<Secret>,
        storage: Arc<dyn Storage>,
    ) -> Result<Self> {
        let routes = build_routes_sync(&config.routes)?;
        Self::bind_with_routes(config, initial_password, routes, Some(storage))
    }

    /// [`Server::bind`] for every kind of route, cloud providers included (they load credentials and may
    /// look up their account before the server starts).
    pub async fn bind_async(config: ServeConfig, initial_password: Option<Secret>) -> Result<Self> {
        let routes = build_routes(&config.routes).await?;
        Self::bind_with_routes(config, initial_password, routes, None)
    }

    fn bind_with_routes(
        config: ServeConfig,
        initial_password: Option<Secret>,
        routes: RoutingTable,
        storage: Option<Arc<dyn Storage>>,
    ) -> Result<Self> {
        // Metrics recorded before the recorder exists would be lost.
        crate::observe::prometheus();
        // The port first: a server that cannot listen (the port is busy) must leave nothing behind, not a
        // new data directory with an admin whose one-time password scrolled past with the error.
        let listener =
            listen(config.listen).map_err(|e| Error::bad_input(format!("cannot listen on {}: {e}", config.listen)))?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| Error::internal(format!("create data directory {}", config.data_dir.display()), e))?;
        let storage = match storage {
            Some(storage) => storage,
            None => crate::storage_config::open_storage(&config.storage, &config.data_dir, config.upload_expiry)?,
        };
        let signer = config.signing_key.signer(&config.data_dir, true)?;
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
        let locations = LocationSigner::new(signer.derive_key("upload-location"));
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| Error::internal("HTTP client", e))?;
        let connections = ConnectionStore::open(&config.data_dir, config.connections_key.as_ref())?;
        let accounts = crate::accounts::AccountStore::open(&config.data_dir)?;
        let state = AppState {
            config,
            storage,
            signer,
            users,
            accounts,
            routes,
            locations,
            http,
            connections,
            meters: Default::default(),
            scope_refusals: Default::default(),
            gc: Default::default(),
        };
        Ok(Self { state: Arc::new(state), listener })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// The registry's routes and the bound listener, to serve them inside an existing axum app: nest or
    /// merge the router, and serve with `into_make_service_with_connect_info::<SocketAddr>()` (the login
    /// limits key on the client's address). The connection limits of [`Server::run_until`] are then the
    /// host app's to set.
    pub fn into_parts(self) -> (axum::Router, std::net::TcpListener) {
        (router(self.state), self.listener)
    }

    /// The local provider over this server's storage, reachable at `endpoint`, presigning blob URLs as the
    /// server's blob GETs do ([`StorageConfig::blob_redirect`](crate::storage_config::StorageConfig::blob_redirect)).
    pub fn local_registry(&self, endpoint: &str) -> LocalRegistry {
        LocalRegistry::new(self.state.storage.clone(), self.state.signer.clone(), endpoint)
            .with_blob_redirect(self.state.config.storage.blob_redirect())
    }

    /// Serves until the process ends (tests abort the task).
    pub async fn run(self) -> Result<()> {
        self.run_until(std::future::pending(), Duration::ZERO).await
    }

    /// Serves until `shutdown` completes; then stops accepting connections and gives requests in flight
    /// (a blob still streaming) up to `grace` to finish before their connections are closed.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        grace: Duration,
    ) -> Result<()> {
        let app = router(self.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let addr = self.local_addr();
        let scheme = if self.state.config.tls.is_some() { "https" } else { "http" };
        if addr.ip().is_unspecified() {
            // Not a URL: 0.0.0.0 is no address a client can connect to.
            tracing::info!(%addr, "regbridge listening ({scheme}) on every address, port {}", addr.port());
        } else {
            tracing::info!(%addr, "regbridge listening on {scheme}://{addr}");
        }
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!(
                grace_secs = grace.as_secs(),
                "shutting down: no new connections; finishing requests in flight"
            );
            stopper.graceful_shutdown(Some(grace));
        });
        let config = &self.state.config;
        let connections = ConnectionLimits::new(
            connection_cap(config.max_connections),
            config.idle_timeout,
            config.body_read_timeout,
        );
        let served = match &config.tls {
            None => {
                let mut server = axum_server::from_tcp(self.listener).handle(handle).acceptor(connections);
                limits(server.http_builder());
                server.serve(app).await
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
                // Under TLS, so the handshake counts as activity and a silent client is closed all the same.
                let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls).acceptor(connections);
                let mut server = axum_server::from_tcp(self.listener).handle(handle).acceptor(acceptor);
                limits(server.http_builder());
                server.serve(app).await
            }
        };
        served.map_err(|e| Error::internal("server", e))
    }
}

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The most header fields one request may carry (HTTP/1.1), and the largest header list (HTTP/2).
const MAX_HEADERS: usize = 100;
const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;
/// The largest HTTP/1.1 request head (request line and headers), as for HTTP/2: a larger one gets 431.
/// Without it hyper buffered up to ~400 KB per connection, and 300 unfinished 300 KB heads took the
/// server to 280 MB.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Connection-level limits: a slow or oversized request head is refused before any handler runs. Bodies
/// are limited where they are buffered (manifests, token forms); blob bodies stream to disk.
fn limits(builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_headers(MAX_HEADERS)
        // hyper's `max_header_size` would bound the head alone, but hyper-util's auto builder does not
        // expose it; the read buffer's bound is the head's bound too. It also caps body reads and buffered
        // response bytes, which measured within noise: 100 MiB curl transfers, 12 interleaved runs each on
        // a loaded 2-core machine, medians 480 -> 490 MiB/s up and 1,360 -> 1,440 MiB/s down.
        .max_buf_size(MAX_HEAD_BYTES);
    builder.http2().timer(hyper_util::rt::TokioTimer::new()).max_header_list_size(MAX_HEADER_LIST_BYTES);
}

/// Connections the kernel queues before `accept` takes them (capped by `net.core.somaxconn`). The standard
/// library's 128 overflowed under a burst on a busy host: the kernel then dropped new connections' SYNs, and
/// clients waited for their 1 s and 3 s retransmissions (a correct login behind 300 guesses took 5.5 s).
const LISTEN_BACKLOG: i32 = 4096;

/// A non-blocking listener on `addr` with [`LISTEN_BACKLOG`] (`SO_REUSEADDR` set, as the standard library
/// does, so a restart does not wait for the old connections' TIME_WAIT).
fn listen(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Files the process keeps open besides client connections: upstream connections, blobs being read or
/// written, the database.
const RESERVED_FILES: u64 = 256;

/// `max_connections`, lowered when the open-file limit would be reached first: past that limit `accept`
/// fails, and the connections already open (silent ones too) would lock out everyone else, `/healthz`
/// included. The soft limit is raised to the hard one first, as Go's runtime does.
fn connection_cap(max_connections: usize) -> usize {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum
            && setrlimit(Resource::Nofile, rustix::process::Rlimit { current: limit.maximum, ..limit }).is_ok()
        {
            limit.current = limit.maximum;
        }
        if let Some(files) = limit.current {
            let cap = files.saturating_sub(RESERVED_FILES).max(1);
            if (max_connections as u64) > cap {
                tracing::warn!(
                    max_connections,
                    open_file_limit = files,
                    "max_connections lowered to {cap} to stay under the open-file limit (raise it, e.g. LimitNOFILE)"
                );
                return cap as usize;
            }
        }
    }
    max_connections
}

pub use crate::route_build::{build_route, build_routes, build_routes_sync, route_label};
