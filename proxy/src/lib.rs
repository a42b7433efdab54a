//! The regbridge server: the OCI distribution API over local storage and, through the routing table,
//! over cloud registries.
//!
//! # Quick start
//!
//! - [`factory`] builds any provider from the `[[routes]]` configuration the server reads
//!   ([`config_file::RouteConfig`]) or from a URL (`ecr://123456789012/us-east-1/team`,
//!   `gar://PROJECT/LOCATION/REPOSITORY`, `acr://NAME`, `local:///var/lib/regbridge`,
//!   `https://registry.example.com/prefix`): the server's own code path.
//! - [`Server`] serves the registry; [`Server::into_parts`] hands its routes and listener to an existing
//!   axum app.
//!
//! ```no_run
//! # async fn demo() -> regbridge::Result<()> {
//! let mut config = regbridge_proxy::ServeConfig::new();
//! config.listen = "127.0.0.1:0".parse().expect("an address");
//! let server = regbridge_proxy::Server::bind_async(config, None).await?;
//! let (registry, listener) = server.into_parts();
//! let app = axum::Router::new().merge(registry);
//! let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.ok();
//! # Ok(()) }
//! ```
//!
//! The examples: `cargo run -p regbridge-proxy --example embedded_proxy` and `--example cloud_from_config`.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod accounts;
pub mod api;
pub mod cli;
pub mod cloud;
pub mod config;
pub mod config_file;
pub mod connections;
pub mod factory;
pub mod forward;
pub mod keys;
pub mod limits;
pub mod login_limit;
pub mod manage;
pub mod observe;
pub mod pipeline;
pub mod ranges;
mod route_build;
pub mod router;
pub mod routing;
pub mod server;
pub mod state;
pub mod storage_config;
pub mod users;
pub mod values;

pub use config::ServeConfig;
pub use server::Server;
