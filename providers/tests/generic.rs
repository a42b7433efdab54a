//! The generic provider: URL validation, what is unsupported, reads through wiremock, and a real run
//! against Debian's `docker-registry` with htpasswd authentication.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Method};
use regbridge::conformance::{self, Capabilities};
use regbridge::oci::{Digest, Reference};
use regbridge::{ArtifactRegistry, Error, Permissions, Resource, Secret};
use regbridge_providers::generic::{GenericRegistry, GenericRegistryBuilder};
use regbridge_providers::http::{ClientOptions, StaticCredentials, UpstreamClient};
use url::Url;
use wiremock::matchers::{any, method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
fn registry_urls_are_normalised() {
    let cases = [
        ("ghcr.io", "https://ghcr.io", "Generic(ghcr.io)"),
        ("  GHCR.io/ ", "https://ghcr.io", "Generic(ghcr.io)"),
        ("127.0.0.1:5000", "http://127.0.0.1:5000", "Generic(127.0.0.1:5000)"),
        ("127.1.2.3:5000", "http://127.1.2.3:5000", "Generic(127.1.2.3:5000)"),
        ("localhost:5000", "http://localhost:5000", "Generic(localhost:5000)"),
        ("[::1]:5000", "http://[::1]:5000", "Generic([::1]:5000)"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000", "Generic(127.0.0.1:5000)"),
        ("https://127.0.0.1:5443/", "https://127.0.0.1:5443", "Generic(127.0.0.1:5443)"),
        ("https://myregistry.azurecr.io", "https://myregistry.azurecr.io", "Generic(myregistry.azurecr.io)"),
        ("http://registry.internal:8080", "http://registry.internal:8080", "Generic(registry.internal:8080)"),
        ("https://ghcr.io:443", "https://ghcr.io", "Generic(ghcr.io)"),
    ];
    for (input, endpoint, display) in cases {
        let reg = GenericRegistryBuilder::new(input).build().unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(reg.registry_endpoint(), endpoint, "{input:?}");
        assert_eq!(reg.to_string(), display, "{input:?}");
        assert_eq!(reg.client().base_url().as_str(), format!("{endpoint}/"), "{input:?}");
    }
}

#[test]
fn registry_urls_with_paths_and_extras_are_rejected_with_what_to_write() {
    let cases = [
        ("https://ghcr.io/my-org/", "write the registry as ghcr.io, without a path"),
        ("ghcr.io/my-org", "write the registry as ghcr.io, without a path"),
        ("https://ghcr.io/v2/", "without a path"),
        ("https://ghcr.io?x=1", "without a query"),
        ("https://ghcr.io/#frag", "without a query or fragment"),
        ("https://user:pw@ghcr.io", "without user name or password"),
        ("user@ghcr.io", "without user name or password"),
        ("", "empty"),
        ("   ", "empty"),
        ("ftp://ghcr.io", "https://host"),
        ("https://", "no host"),
    ];
    for (input, expected) in cases {
        let err = GenericRegistryBuilder::new(input).build().unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{input:?}: {err:?}");
        assert!(err.to_string().contains(expected), "{input:?}: {err}");
        assert!(!err.to_string().contains("pw@"), "{input:?}: {err}");
    }
    let err = GenericRegistryBuilder::new("ghcr.io").with_prefix("Bad Prefix").build().unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
}

#[tokio::test]
async fn repository_management_is_unsupported_and_credentials_are_the_stored_ones() {
    let reg = GenericRegistryBuilder::new("ghcr.io")
        .with_credentials("robot", Secret::new("hunter2"))
        .with_prefix("/my-org/")
        .build()
        .unwrap();
    assert_eq!(reg.upstream_repository_prefix(), "my-org");
    let outcomes = [
        reg.create_repository("app").await.map(|_| ()),
        reg.get_repository("my-org/app").await.map(|_| ()),
        reg.delete_repository("my-org/app").await,
    ];
    for outcome in outcomes {
        let err = outcome.unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
        assert!(err.to_string().contains("managed in the registry itself"), "{err}");
        assert!(err.to_string().contains("Generic(ghcr.io)"), "{err}");
    }

    // The configured robot password is static and registry-wide: it is never handed out as a short-lived,
    // scoped credential.
    let ttl = Duration::from_secs(900);
    for permissions in [Permissions::Pull, Permissions::PushPull] {
        let err = reg.generate_credentials("my-org/app", permissions, ttl).await.unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
        assert!(err.to_string().contains("never handed out"), "{err}");
        assert!(!err.to_string().contains("hunter2"));
    }
    assert!(!format!("{reg:?}").contains("hunter2"));
    let err = reg.generate_credentials("Not A Name", Permissions::Pull, ttl).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
}

#[tokio::test]
async fn missing_repositories_are_not_found() {
    let server = MockServer::start().await;
    Mock::given(path_regex("^/v2/.+/manifests/.+$"))
        .respond_with(ResponseTemplate::new(404).set_body_json(
            serde_json::json!({"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known"}]}),
        ))
        .mount(&server)
        .await;
    let reg = GenericRegistryBuilder::new(server.uri())
        .with_credentials("u", Secret::new("p"))
        .with_prefix("team")
        .build()
        .unwrap();
    let caps = Capabilities { repository_management: false, ..Capabilities::new("generic-") };
    conformance::missing_repositories_are_not_found(&reg, &caps).await.unwrap();

    let err = reg.get_manifest("team/app", &Reference::parse("v1").unwrap()).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { resource: Resource::Manifest, .. }), "{err:?}");
    assert_eq!(reg.head_manifest("team/app", &Reference::parse("v1").unwrap()).await.unwrap(), None);
}

#[tokio::test]
async fn reads_go_through_the_client_with_the_stored_credentials() {
    let server = MockServer::start().await;
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#;
    let digest = Digest::sha256(manifest);
    let basic = format!("Basic {}", regbridge::auth::encode_basic("u", &Secret::new("p")));
    Mock::given(wiremock::matchers::header("authorization", basic.as_str()))
        .and(path_regex("^/v2/team/app/manifests/"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("docker-content-digest", digest.to_string().as_str())
                .set_body_raw(manifest.to_vec(), OCI_MANIFEST),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(401).insert_header("www-authenticate", r#"Basic realm="r""#))
        .with_priority(10)
        .mount(&server)
        .await;
    Mock::given(method("HEAD"))
        .and(path_regex("^/v2/team/app/blobs/"))
        .respond_with(ResponseTemplate::new(200).insert_header("content-length", "42"))
        .with_priority(1)
        .mount(&server)
        .await;
    let reg = GenericRegistryBuilder::new(server.uri())
        .with_credentials("u", Secret::new("p"))
        .with_prefix("team")
        .build()
        .unwrap();
    let caps = Capabilities {
        repository_management: false,
        existing_manifest: Some(("team/app".into(), Reference::parse("v1").unwrap())),
        ..Capabilities::new("generic-")
    };
    conformance::head_and_get_agree(&reg, &caps).await.unwrap();
    let got = reg.get_manifest("team/app", &Reference::Digest(digest.clone())).await.unwrap();
    assert_eq!(got.bytes, manifest);
    assert_eq!(reg.head_blob("team/app", &Digest::sha256(b"x")).await.unwrap(), Some(42));
}

// ---------------------------------------------------------------------------------------------------------
// Against Debian's docker-registry (CNCF distribution 2.8) with htpasswd authentication.

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const USER: &str = "pusher";
const PASSWORD: &str = "Reg1stry-Pa55";

/// A docker-registry process and its directory, killed and removed on drop.
struct RunningRegistry {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Drop for RunningRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl RunningRegistry {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_registry() -> RunningRegistry {
    assert!(
        Path::new(REGISTRY_BIN).exists(),
        "{REGISTRY_BIN} is missing: run scripts/install-test-deps.sh (as root) to install docker-registry and \
         apache2-utils"
    );
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("regbridge-generic-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(dir.join("storage")).unwrap();
    let htpasswd = Command::new("htpasswd")
        .args(["-Bbn", USER, PASSWORD])
        .output()
        .expect("htpasswd is missing: run scripts/install-test-deps.sh (apache2-utils)");
    assert!(htpasswd.status.success(), "htpasswd failed: {}", String::from_utf8_lossy(&htpasswd.stderr));
    std::fs::write(dir.join("htpasswd"), &htpasswd.stdout).unwrap();
    let port = free_port();
    let config = format!(
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    \
         enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: regbridge-test-secret\nauth:\n  htpasswd:\n    \
         realm: regbridge-test\n    path: {htpasswd}\n",
        storage = dir.join("storage").display(),
        htpasswd = dir.join("htpasswd").display(),
    );
    std::fs::write(dir.join("config.yml"), config).unwrap();
    let log = std::fs::File::create(dir.join("registry.log")).unwrap();
    let child = Command::new(REGISTRY_BIN)
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start docker-registry");
    let mut registry = RunningRegistry { child, dir, url: format!("http://127.0.0.1:{port}") };
    let probe = reqwest::Client::builder().timeout(Duration::from_secs(1)).build().unwrap();
    for _ in 0..100 {
        if let Ok(Some(status)) = registry.child.try_wait() {
            panic!("docker-registry exited with {status}:\n{}", registry.log());
        }
        if let Ok(r) = probe.get(format!("{}/v2/", registry.url)).send().await
            && r.status() == 401
        {
            return registry;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("docker-registry did not answer on {} within 10 s:\n{}", registry.url, registry.log());
}

/// The path and query of an upload `Location` (absolute or relative), with `digest=` appended.
fn location_with_digest(base: &str, response: &reqwest::Response, digest: &Digest) -> String {
    let location = response.headers()["location"].to_str().unwrap();
    let url = Url::parse(base).unwrap().join(location).unwrap();
    let sep = if url.query().is_some() { "&" } else { "?" };
    format!("{}?{}{sep}digest={digest}", url.path(), url.query().unwrap_or_default()).replace("?&", "?")
}

async fn start_upload(client: &UpstreamClient, base: &str, repo: &str, digest: &Digest) -> String {
    let response = client
        .send(Method::POST, &format!("/v2/{repo}/blobs/uploads/"), HeaderMap::new(), None, &push_scope(repo))
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "POST upload");
    location_with_digest(base, &response, digest)
}

fn push_scope(repo: &str) -> Vec<regbridge::auth::Scope> {
    regbridge::auth::Scope::parse_list([format!("repository:{repo}:pull,push").as_str()])
}

fn octet_stream() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/octet-stream"));
    h
}

#[tokio::test]
async fn push_and_read_against_docker_registry() {
    let registry = start_registry().await;
    let base = registry.url.clone();
    let repo = "team/app";
    let client = UpstreamClient::new(
        Url::parse(&base).unwrap(),
        "docker-registry",
        Arc::new(StaticCredentials::new(USER, Secret::new(PASSWORD))),
        ClientOptions::default(),
    )
    .unwrap();

    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let layer: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let (config_digest, layer_digest) = (Digest::sha256(&config), Digest::sha256(&layer));

    // The config: a buffered body, through the Basic challenge learnt on the POST.
    let put = start_upload(&client, &base, repo, &config_digest).await;
    let response =
        client.send(Method::PUT, &put, octet_stream(), Some(config.clone().into()), &push_scope(repo)).await.unwrap();
    assert_eq!(response.status(), 201, "PUT config: {}", response.text().await.unwrap_or_default());

    // The layer: a streaming body sent by a fresh client, which must settle authentication (GET /v2/
    // probe) before sending the body, since it cannot be sent twice.
    let put = start_upload(&client, &base, repo, &layer_digest).await;
    let fresh = UpstreamClient::new(
        Url::parse(&base).unwrap(),
        "docker-registry",
        Arc::new(StaticCredentials::new(USER, Secret::new(PASSWORD))),
        ClientOptions::default(),
    )
    .unwrap();
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
        layer.chunks(16 * 1024).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = fresh.send(Method::PUT, &put, octet_stream(), Some(body), &push_scope(repo)).await.unwrap();
    assert_eq!(response.status(), 201, "PUT layer: {}", response.text().await.unwrap_or_default());

    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest.to_string(),
            "size": layer.len(),
        }],
    }))
    .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static(OCI_MANIFEST));
    let response = client
        .send(
            Method::PUT,
            &format!("/v2/{repo}/manifests/v1"),
            headers,
            Some(manifest.clone().into()),
            &push_scope(repo),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "PUT manifest: {}", response.text().await.unwrap_or_default());

    // Reads through the provider.
    let reg = GenericRegistryBuilder::new(base.as_str())
        .with_credentials(USER, Secret::new(PASSWORD))
        .with_prefix("team")
        .build()
        .unwrap();
    let v1 = Reference::parse("v1").unwrap();
    let got = reg.get_manifest(repo, &v1).await.unwrap();
    assert_eq!(got.bytes, manifest);
    assert_eq!(got.digest, Digest::sha256(&manifest));
    assert_eq!(got.media_type, OCI_MANIFEST);
    let head = reg.head_manifest(repo, &v1).await.unwrap().unwrap();
    assert_eq!((head.digest.clone(), head.size), (got.digest.clone(), manifest.len() as u64));
    let by_digest = reg.get_manifest(repo, &Reference::Digest(got.digest.clone())).await.unwrap();
    assert_eq!(by_digest.bytes, manifest);
    assert_eq!(reg.head_blob(repo, &layer_digest).await.unwrap(), Some(layer.len() as u64));
    assert_eq!(reg.head_blob(repo, &config_digest).await.unwrap(), Some(config.len() as u64));
    assert_eq!(reg.head_blob(repo, &Digest::sha256(b"absent")).await.unwrap(), None);

    let caps = Capabilities {
        repository_management: false,
        existing_manifest: Some((repo.into(), v1.clone())),
        ..Capabilities::new("generic-")
    };
    conformance::missing_repositories_are_not_found(&reg, &caps).await.unwrap();
    conformance::head_and_get_agree(&reg, &caps).await.unwrap();

    // A wrong password: refused, and the error shows neither password.
    let wrong: GenericRegistry =
        GenericRegistryBuilder::new(base.as_str()).with_credentials(USER, Secret::new("wrong-Pa55")).build().unwrap();
    let err = wrong.get_manifest(repo, &v1).await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated { .. }), "{err:?}");
    for text in [format!("{err}"), format!("{err:?}")] {
        assert!(!text.contains("wrong-Pa55") && !text.contains(PASSWORD) && !text.contains("realm"), "{text}");
    }
    drop(registry);
}
