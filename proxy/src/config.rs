//! The server's settings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config_file::RouteConfig;

/// Everything `regbridge serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The URL clients reach the server at (for token realms and upload locations). When `None`, it is
    /// taken from each request's `Host` header.
    pub public_url: Option<String>,
    /// Where storage, keys and users live.
    pub data_dir: PathBuf,
    /// Let unauthenticated clients pull.
    pub anonymous_pull: bool,
    /// TLS certificate and key (PEM files); plain HTTP when `None`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The `service` named in token challenges.
    pub service: String,
    /// Users (name to argon2 hash). When empty, users come from the data directory, where the first start
    /// creates `admin`.
    pub users: BTreeMap<String, String>,
    /// The routing table; empty means the local registry serves every name.
    pub routes: Vec<RouteConfig>,
    /// The key encrypting registry connections' secrets (`[connections] key`); when `None`, the key in
    /// `DATA_DIR/connections.key`, generated on first use.
    pub connections_key: Option<regbridge::Secret>,
    /// URL prefixes foreign layers of pushed manifests may point at (`[manifests] allowed_urls`); empty
    /// refuses every manifest with `urls`.
    pub manifest_url_prefixes: Vec<String>,
    /// Upload sessions that receive nothing for this long expire (`BLOB_UPLOAD_UNKNOWN`), and `gc` removes
    /// them; default a day ([`regbridge_providers::local::fs::DEFAULT_UPLOAD_EXPIRY`]).
    pub upload_expiry: std::time::Duration,
}

impl ServeConfig {
    /// Defaults: 127.0.0.1:5000, `./regbridge-data`, authentication required, plain HTTP.
    pub fn new() -> Self {
        Self {
            listen: "127.0.0.1:5000".parse().expect("valid address"),
            public_url: None,
            data_dir: PathBuf::from("regbridge-data"),
            anonymous_pull: false,
            tls: None,
            service: "regbridge".into(),
            users: BTreeMap::new(),
            routes: Vec::new(),
            connections_key: None,
            manifest_url_prefixes: Vec::new(),
            upload_expiry: regbridge_providers::local::fs::DEFAULT_UPLOAD_EXPIRY,
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self::new()
    }
}
