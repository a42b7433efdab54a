//! The server's settings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Close a connection when no request is in flight on it and no byte has moved for this long (a client
    /// that connects and sends nothing, a keep-alive connection left open). Default 120 s: longer than the
    /// 90 s after which Go's and hyper's HTTP clients (docker, containerd, skopeo, oras) drop idle pooled
    /// connections themselves, so the client, not the server, closes them and never reuses a closing one.
    pub idle_timeout: Duration,
    /// End a request whose body sends no bytes for this long with 408 (a PATCH, a monolithic POST or PUT, a
    /// manifest PUT). Default 60 s: a push on a working link never pauses that long, and a stalled client
    /// holds an upload (and a connection) for at most a minute. The upload stays as it was before the stalled
    /// request (what earlier requests committed is kept; the stalled chunk is rolled back, like a refused one).
    pub body_read_timeout: Duration,
    /// Connections open at once. At the limit, the connection idle longest makes room for a new one; when
    /// all are busy, new ones are closed at once. Default 4096: thousands of concurrent pulls, while a
    /// flood of idle connections cannot exhaust the process's file descriptors (lowered at start to stay
    /// under the open-file limit).
    pub max_connections: usize,
    /// Where blobs, manifests, tags and upload sessions live (`[storage]`, `REGBRIDGE_STORAGE_URL`);
    /// default `DATA_DIR/storage` on local disk.
    pub storage: crate::storage_config::StorageConfig,
    /// The token signing key (`[keys] signing_key_file`, `REGBRIDGE_SIGNING_KEY[_FILE]`), which the
    /// upload-location key derives from; default `DATA_DIR/signing.key`. Replicas share it.
    pub signing_key: crate::keys::SigningKey,
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
            idle_timeout: Duration::from_secs(120),
            body_read_timeout: Duration::from_secs(60),
            max_connections: 4096,
            storage: Default::default(),
            signing_key: Default::default(),
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self::new()
    }
}
