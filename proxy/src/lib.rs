//! The regbridge server: the OCI distribution API over local storage and, through the routing table,
//! over cloud registries.

#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod route;
pub mod server;
pub mod users;

pub use config::ServeConfig;
pub use server::Server;
