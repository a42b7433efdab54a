//! Debian's `docker-registry` (CNCF distribution 2.8) as an upstream for proxy tests: started on a free
//! loopback port with filesystem storage in a temporary directory and htpasswd (bcrypt) auth (or the auth
//! section a caller gives, as [`super::token_registry`] does), killed on drop.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running reference registry.
pub struct ReferenceRegistry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for ReferenceRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn require(tool: &str) {
    let found =
        Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success());
    assert!(found, "{tool} is missing: run scripts/install-test-deps.sh (as root)");
}

impl ReferenceRegistry {
    /// Starts one that accepts `user`/`password` (HTTP Basic), storing on the filesystem.
    pub fn start(user: &str, password: &str) -> Self {
        Self::start_with_storage(user, password, None)
    }

    /// Starts one with `storage` as its `storage:` section (YAML indented by two spaces), or filesystem
    /// storage in its temporary directory when `None`.
    pub fn start_with_storage(user: &str, password: &str, storage: Option<&str>) -> Self {
        require("htpasswd");
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = Command::new("htpasswd").args(["-Bbn", user, password]).output().unwrap();
        assert!(htpasswd.status.success());
        std::fs::write(dir.path().join("htpasswd"), &htpasswd.stdout).unwrap();
        let auth = format!("  htpasswd:\n    realm: upstream\n    path: {}\n", dir.path().join("htpasswd").display());
        Self::launch(dir, &auth, storage)
    }

    /// Starts one in `dir` with `auth` as its `auth:` section (YAML indented by two spaces).
    pub fn launch(dir: tempfile::TempDir, auth: &str, storage: Option<&str>) -> Self {
        require("docker-registry");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let config = config_yaml(dir.path(), &addr, auth, storage);
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let mut command = Command::new("docker-registry");
        command.arg("serve").arg(dir.path().join("config.yml")).stdout(Stdio::null()).stderr(Stdio::null());
        // distribution reads every REGISTRY_* variable as configuration; none of ours may leak in.
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("REGISTRY_")) {
            command.env_remove(key);
        }
        // The AWS SDK inside would try to load a CA bundle named here; the S3 endpoint in tests is plain HTTP.
        command.env_remove("AWS_CA_BUNDLE");
        let child = command.spawn().expect("start docker-registry");
        let registry = Self { child, addr, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&registry.addr).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not listen on {} within 20 s", registry.addr);
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }
}

fn config_yaml(dir: &Path, addr: &str, auth: &str, storage: Option<&str>) -> String {
    let storage = match storage {
        Some(s) => s.to_owned(),
        None => format!("  filesystem:\n    rootdirectory: {}\n", dir.join("storage").display()),
    };
    format!(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n{storage}  delete:\n    \
         enabled: true\nhttp:\n  addr: {addr}\n  secret: regbridge-test-secret\nauth:\n{auth}"
    )
}

/// regbridge with the local registry as its default route and `hub/...` forwarded to `upstream` as
/// `mirror/...` with the upstream's `user` and `password`, running on the calling test's runtime. Returns its
/// base URL, the local provider over its storage (to mint credentials), and its directory.
pub fn start_hub_proxy(
    upstream: &ReferenceRegistry,
    user: &str,
    password: &str,
    admin_password: &str,
) -> (String, regbridge_providers::local::LocalRegistry, tempfile::TempDir) {
    use regbridge::Secret;
    use regbridge_proxy::config_file::RouteConfig;
    use regbridge_proxy::{ServeConfig, Server};
    let dir = tempfile::tempdir().unwrap();
    let hub = RouteConfig {
        prefix: "hub".into(),
        provider: "generic".into(),
        registry: Some(upstream.addr.clone()),
        username: Some(user.into()),
        password: Some(Secret::new(password)),
        upstream_prefix: "mirror".into(),
        ..RouteConfig::local()
    };
    let config = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        routes: vec![RouteConfig::local(), hub],
        ..ServeConfig::new()
    };
    let server = Server::bind(config, Some(Secret::new(admin_password))).unwrap();
    let base = format!("http://{}", server.local_addr());
    let registry = server.local_registry(&base);
    tokio::spawn(server.run());
    (base, registry, dir)
}
