//! Shared helpers for the proxy's integration tests: an in-process server, push helpers, OCI documents
//! as JSON values, and assertions on OCI error responses.
//!
//! Two ways to get a server:
//! * [`TestServer::start`]: a fresh server in its own temporary directory, spawned on the calling test's
//!   runtime (`tokio::spawn(server.run())`). Use it when a test needs a registry of its own (the catalog).
//! * [`TestServer::shared`]: one server per test binary, started once on a runtime of its own thread.
//!   Hashing the admin password with argon2 takes most of a second in a debug build, so most tests share
//!   it and stay apart by using [`unique`] repository names. Each call gets its own HTTP client, because a
//!   reqwest client's pooled connections belong to the runtime that opened them.

#![allow(dead_code)]

pub mod cli;
pub mod haproxy;
pub mod moto;
pub mod serve;
pub mod token_registry;
pub mod upstream;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use regbridge::Secret;
use regbridge::oci::Digest;
use regbridge::oci::media_types::{DOCKER_MANIFEST, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST};
use regbridge_providers::local::LocalRegistry;
use regbridge_proxy::{ServeConfig, Server};
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{Value, json};
use tempfile::TempDir;

/// The configured user.
pub const ADMIN: &str = "admin";
/// The admin's password, given on first start.
pub const PASSWORD: &str = "correct horse battery staple";

/// A running server and what tests need to talk to it.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base: String,
    /// A client for this test (no proxy, so 127.0.0.1 is reached directly).
    pub client: Client,
    /// The local provider over the server's storage, acting as account `local`.
    pub registry: LocalRegistry,
    /// The server's data directory.
    pub data_dir: PathBuf,
    /// The temporary directory holding `data_dir`, removed on drop (fresh servers only; the shared server's
    /// lives as long as the test process).
    pub dir: Option<TempDir>,
    task: Option<tokio::task::JoinHandle<regbridge::Result<()>>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

struct Shared {
    base: String,
    registry: LocalRegistry,
    data_dir: PathBuf,
    _dir: TempDir,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

/// The shared server's directory outlives the process (statics are never dropped); earlier runs' are
/// removed here once they are an hour old, which no run of this suite lasts.
fn remove_stale_shared_dirs() {
    let Ok(entries) = std::fs::read_dir(env!("CARGO_TARGET_TMPDIR")) else { return };
    for entry in entries.flatten() {
        let stale = entry.file_name().to_string_lossy().starts_with(SHARED_PREFIX)
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > std::time::Duration::from_secs(3600)));
        if stale {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

const SHARED_PREFIX: &str = "regbridge-api-";

/// A client that never goes through a proxy from the environment.
pub fn client() -> Client {
    Client::builder().no_proxy().timeout(std::time::Duration::from_secs(60)).build().expect("reqwest client")
}

fn bind(data_dir: PathBuf, anonymous_pull: bool) -> Server {
    bind_with(data_dir, |c| ServeConfig { anonymous_pull, ..c })
}

fn bind_with(data_dir: PathBuf, configure: impl FnOnce(ServeConfig) -> ServeConfig) -> Server {
    let config =
        configure(ServeConfig { listen: "127.0.0.1:0".parse().expect("address"), data_dir, ..ServeConfig::new() });
    Server::bind(config, Some(Secret::new(PASSWORD))).expect("server binds")
}

impl TestServer {
    /// A fresh server in a new temporary directory, running on the current runtime until dropped.
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// A fresh server like [`TestServer::start`], letting anonymous clients pull when `anonymous_pull`.
    pub async fn start_with(anonymous_pull: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = bind(dir.path().join("data"), anonymous_pull);
        Self::spawn(server, dir)
    }

    /// A server the test bound itself (with settings or a storage of its own) on the data directory
    /// `dir/data`, run like [`TestServer::start`]'s.
    pub fn spawn(server: Server, dir: TempDir) -> Self {
        let data_dir = dir.path().join("data");
        let base = format!("http://{}", server.local_addr());
        let registry = server.local_registry(&base);
        let task = tokio::spawn(server.run());
        Self { base, client: client(), registry, data_dir, dir: Some(dir), task: Some(task) }
    }

    /// A fresh server like [`TestServer::start`] with `configure` applied to its configuration.
    pub async fn start_configured(configure: impl FnOnce(ServeConfig) -> ServeConfig) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let server = bind_with(data_dir.clone(), configure);
        let base = format!("http://{}", server.local_addr());
        let registry = server.local_registry(&base);
        let task = tokio::spawn(server.run());
        Self { base, client: client(), registry, data_dir, dir: Some(dir), task: Some(task) }
    }

    /// The server shared by every test of this binary (started on first use), with a new client.
    pub fn shared() -> Self {
        let shared = SHARED.get_or_init(|| {
            remove_stale_shared_dirs();
            let dir = tempfile::Builder::new()
                .prefix(SHARED_PREFIX)
                .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
                .expect("tempdir");
            let data_dir = dir.path().join("data");
            let server = bind(data_dir.clone(), false);
            let base = format!("http://{}", server.local_addr());
            let registry = server.local_registry(&base);
            std::thread::Builder::new()
                .name("shared-regbridge".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .expect("server runtime");
                    runtime.block_on(server.run())
                })
                .expect("server thread");
            Shared { base, registry, data_dir, _dir: dir }
        });
        Self {
            base: shared.base.clone(),
            client: client(),
            registry: shared.registry.clone(),
            data_dir: shared.data_dir.clone(),
            dir: None,
            task: None,
        }
    }

    /// `base` + `path` (`path` starts with `/`, or is an absolute URL, returned as is).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// A request without credentials.
    pub fn anon(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// A request as the admin (Basic).
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.anon(method, path).basic_auth(ADMIN, Some(PASSWORD))
    }

    /// Pushes `bytes` to `repo` in one `POST ?digest=` and returns the sha256 digest.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let r = self
            .admin(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={digest}"))
            .header("Content-Type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("push blob");
        let status = r.status().as_u16();
        assert_eq!(status, 201, "push blob to {repo}: {}", r.text().await.unwrap_or_default());
        digest
    }

    /// Pushes a manifest's exact bytes under `reference` with `Content-Type: media_type`; asserts 201 and
    /// that the returned digest is the sha256 of the bytes, and returns it.
    pub async fn push_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> String {
        let r = self.put_manifest(repo, reference, media_type, bytes).await;
        let status = r.status().as_u16();
        let digest = header(&r, "docker-content-digest");
        assert_eq!(status, 201, "push manifest {repo}:{reference}: {}", r.text().await.unwrap_or_default());
        assert_eq!(digest.as_deref(), Some(sha256(bytes).as_str()), "digest of manifest {repo}:{reference}");
        sha256(bytes)
    }

    /// `PUT /v2/<repo>/manifests/<reference>`, whatever the answer.
    pub async fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> Response {
        self.admin(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("Content-Type", media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .expect("put manifest")
    }

    /// Pushes a small OCI image (a config and one layer, both unique) tagged `tag`.
    pub async fn push_image(&self, repo: &str, tag: &str) -> Image {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let config = format!(r#"{{"architecture":"amd64","os":"linux","n":{n},"repo":"{repo}"}}"#).into_bytes();
        let layer = format!("layer {n} of {repo}:{tag}").repeat(7).into_bytes();
        self.push_blob(repo, &config).await;
        self.push_blob(repo, &layer).await;
        let manifest = image_manifest(&descriptor(OCI_CONFIG, &config), &[descriptor(OCI_LAYER, &layer)]);
        let bytes = serde_json::to_vec(&manifest).expect("json");
        let digest = self.push_manifest(repo, tag, OCI_MANIFEST, &bytes).await;
        Image { digest, bytes, config, layer }
    }

    /// Sends one request over a raw connection as the admin, writing the body while reading the answer.
    /// For what reqwest cannot do: unnormalised paths (it resolves `..`), and reading a response the
    /// server sends before it has read the whole body.
    pub async fn raw(&self, method: Method, path: &str, headers: &[(&str, &str)], body: RawBody) -> RawResponse {
        let auth = format!("Basic {}", regbridge::auth::encode_basic(ADMIN, &Secret::new(PASSWORD)));
        let mut all = vec![("Authorization", auth.as_str())];
        all.extend_from_slice(headers);
        raw_request(&self.base, method, path, &all, body).await
    }
}

/// Sends one request to `base` over a raw connection with exactly `headers` (a `Host` is added unless one
/// is given), writing the body while reading the answer. For what reqwest cannot do: unnormalised paths
/// (it resolves `..`), hostile headers, and reading a response sent before the whole body was read.
pub async fn raw_request(
    base: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: RawBody,
) -> RawResponse {
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = base.trim_start_matches("http://").to_owned();
        let stream = tokio::net::TcpStream::connect(&host).await.expect("connect");
        let (mut reader, mut writer) = stream.into_split();
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("Host: {host}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        match &body {
            RawBody::None => {}
            RawBody::Length(b) => head.push_str(&format!("Content-Length: {}\r\n", b.len())),
            RawBody::Chunked(_) => head.push_str("Transfer-Encoding: chunked\r\n"),
        }
        head.push_str("Connection: close\r\n\r\n");
        let write = tokio::spawn(async move {
            writer.write_all(head.as_bytes()).await?;
            match body {
                RawBody::None => {}
                RawBody::Length(b) => writer.write_all(&b).await?,
                RawBody::Chunked(b) => {
                    for chunk in b.chunks(64 * 1024) {
                        writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
                        writer.write_all(chunk).await?;
                        writer.write_all(b"\r\n").await?;
                    }
                    writer.write_all(b"0\r\n\r\n").await?;
                }
            }
            writer.flush().await?;
            // Returned, not dropped: dropping the write half would half-close the connection, and the
            // server (hyper without half-close support) would then drop the request unanswered.
            Ok::<_, std::io::Error>(writer)
        });
        let mut response = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(30), reader.read_to_end(&mut response))
            .await
            .expect("raw response in time")
            .expect("read raw response");
        // The write may fail once the server has answered and closed; the answer is what counts.
        let _ = write.await;
        let text = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{text:?}"));
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        RawResponse { status, headers, body: body.to_owned() }
    }
}

/// The body of a [`TestServer::raw`] request.
pub enum RawBody {
    /// No body.
    None,
    /// With `Content-Length`.
    Length(Vec<u8>),
    /// With `Transfer-Encoding: chunked`, in 64 KiB chunks.
    Chunked(Vec<u8>),
}

/// The answer to a [`TestServer::raw`] request (responses with `Content-Length` only).
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

/// A pushed image.
pub struct Image {
    /// The manifest's digest.
    pub digest: String,
    /// The manifest's bytes.
    pub bytes: Vec<u8>,
    /// The config blob.
    pub config: Vec<u8>,
    /// The layer blob.
    pub layer: Vec<u8>,
}

impl Image {
    /// The descriptor of this image's manifest.
    pub fn descriptor(&self) -> Value {
        json!({ "mediaType": OCI_MANIFEST, "digest": self.digest, "size": self.bytes.len() })
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A repository name no other test of this process uses: `prefix-N`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    Digest::sha256(bytes).to_string()
}

/// `sha512:<hex>` of `bytes`.
pub fn sha512(bytes: &[u8]) -> String {
    Digest::of(regbridge::oci::Algorithm::Sha512, bytes).to_string()
}

/// The value of header `name`, when present and text.
pub fn header(r: &Response, name: &str) -> Option<String> {
    r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Asserts an OCI error response: `status`, a JSON envelope whose first error has `code`. Returns the body.
pub async fn assert_error(r: Response, status: u16, code: &str) -> Value {
    let got = r.status().as_u16();
    let url = r.url().to_string();
    let content_type = header(&r, "content-type");
    let text = r.text().await.expect("error body");
    assert_eq!(got, status, "status of {url}: body {text}");
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("error body of {url} is not JSON ({e}): {text:?}"));
    assert_eq!(body["errors"][0]["code"], code, "OCI error code of {url}: {text}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "Content-Type of the error of {url}");
    body
}

/// The body of a successful JSON response.
pub async fn json_body(r: Response) -> Value {
    let url = r.url().to_string();
    let text = r.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body of {url} is not JSON ({e}): {text:?}"))
}

/// An upload `Location` with `?digest=` (or `&digest=`) appended.
pub fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

/// OCI config media type.
pub const OCI_CONFIG: &str = regbridge::oci::media_types::OCI_CONFIG;
/// OCI gzip layer media type.
pub const OCI_LAYER: &str = regbridge::oci::media_types::OCI_LAYER_GZIP;
/// The empty JSON blob, config of artifacts.
pub const EMPTY_JSON: &[u8] = b"{}";

/// A descriptor of `bytes` (sha256).
pub fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256(bytes), "size": bytes.len() })
}

/// The empty config descriptor artifacts use: `application/vnd.oci.empty.v1+json`, digest of `{}`, size 2.
pub fn empty_config() -> Value {
    descriptor(OCI_EMPTY, EMPTY_JSON)
}

/// An OCI image manifest.
pub fn image_manifest(config: &Value, layers: &[Value]) -> Value {
    json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers })
}

/// A Docker schema 2 image manifest.
pub fn docker_manifest(config: &Value, layers: &[Value]) -> Value {
    json!({ "schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": config, "layers": layers })
}

/// An index (OCI image index or Docker manifest list, by `media_type`) of `manifests`.
pub fn index(media_type: &str, manifests: &[Value]) -> Value {
    json!({ "schemaVersion": 2, "mediaType": media_type, "manifests": manifests })
}

/// An OCI index of `manifests`.
pub fn oci_index(manifests: &[Value]) -> Value {
    index(OCI_INDEX, manifests)
}

/// An artifact manifest: `artifactType`, the empty config, `layers`, and optionally a `subject`.
pub fn artifact(artifact_type: &str, layers: &[Value], subject: Option<&Value>) -> Value {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty_config(),
        "layers": layers,
    });
    if let Some(subject) = subject {
        m["subject"] = subject.clone();
    }
    m
}

/// Adds `platform` to an index entry.
pub fn with_platform(mut descriptor: Value, arch: &str) -> Value {
    descriptor["platform"] = json!({ "architecture": arch, "os": "linux" });
    descriptor
}

/// A server with `routes` and the admin password `password`, in a new temporary directory, running on the
/// calling test's runtime. Returns its base URL and the directory (removed when dropped).
pub async fn start_proxy(routes: Vec<regbridge_proxy::config_file::RouteConfig>, password: &str) -> (String, TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = format!("http://{}", serve_routes(dir.path().join("data"), routes, password).await);
    (base, dir)
}

/// A server with `routes` and the admin password `password` on `data_dir`, running on the calling test's
/// runtime. Returns its `host:port`.
pub async fn serve_routes(
    data_dir: PathBuf,
    routes: Vec<regbridge_proxy::config_file::RouteConfig>,
    password: &str,
) -> String {
    let config = ServeConfig { listen: "127.0.0.1:0".parse().unwrap(), data_dir, routes, ..ServeConfig::new() };
    let server = Server::bind_async(config, Some(Secret::new(password))).await.expect("server binds");
    let host = server.local_addr().to_string();
    tokio::spawn(server.run());
    host
}
