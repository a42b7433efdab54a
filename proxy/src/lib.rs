//! The regbridge server: the OCI distribution API over local storage and, through the routing table,
//! over cloud registries.

#![warn(missing_docs)]

pub mod api;
pub mod cli;
pub mod cloud;
pub mod config;
pub mod config_file;
pub mod connections;
pub mod factory;
pub mod forward;
pub mod limits;
pub mod login_limit;
pub mod observe;
pub mod pipeline;
pub mod ranges;
pub mod router;
pub mod routing;
pub mod server;
pub mod state;
pub mod users;
pub mod values;

pub use config::ServeConfig;
pub use server::Server;
