//! The real `regbridge serve` binary as a child process: started on a loopback port with its log in a file,
//! waited for with a time limit, SIGKILLed and reaped on drop (a failing test leaves no process behind);
//! the real-client script run against a running registry; and the check that every tag of a registry
//! resolves to a manifest and blobs whose bytes hash to their digests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use regbridge::oci::media_types::OCI_MANIFEST;
use reqwest::Client;
use serde_json::Value;

use super::{ADMIN, PASSWORD, header, sha256};

/// A free port on 127.0.0.1 (free when asked; the caller binds it next).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("address").port()
}

/// A running `regbridge serve`.
pub struct ServeProcess {
    child: Child,
    log: PathBuf,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl ServeProcess {
    /// Starts `regbridge serve --listen 127.0.0.1:PORT --data-dir DATA_DIR` with the admin password
    /// [`PASSWORD`], `REGBRIDGE_LOG=warn`, none of the caller's `REGBRIDGE_*` variables and its standard
    /// error in `log`; `configure` adds arguments and variables (a later `env` wins).
    pub fn start(data_dir: &Path, port: u16, log: PathBuf, configure: impl FnOnce(&mut Command)) -> Self {
        let addr = format!("127.0.0.1:{port}");
        let log_file = std::fs::File::create(&log).expect("server log");
        let mut command = super::cli::command(&["serve", "--listen", &addr, "--data-dir"]);
        command.arg(data_dir).env("REGBRIDGE_ADMIN_PASSWORD", PASSWORD).env("REGBRIDGE_LOG", "warn");
        configure(&mut command);
        let child =
            command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log_file).spawn().expect("start regbridge serve");
        Self { child, log, addr }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// SIGKILL (what `Child::kill` sends on unix), then reap.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill the server");
        self.child.wait().expect("reap the server");
    }

    /// Waits (at most 30 s) until `/v2/` answers 401, the sign of a server that is up and requires auth.
    pub async fn wait_ready(&mut self, client: &Client) {
        let base = self.base();
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("regbridge exited with {status} before it was ready:\n{}", self.log());
            }
            let answer = client.get(format!("{base}/v2/")).timeout(Duration::from_secs(2)).send().await;
            if let Ok(r) = answer {
                assert_eq!(r.status().as_u16(), 401, "/v2/ without credentials");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("regbridge did not answer on {base} within 30 s:\n{}", self.log());
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `tests/clients/run.sh ADDR admin PASSWORD` (skopeo, podman and oras-py, every digest checked) and
/// asserts that it ends with 0 failures. A missing client fails with the install instruction.
pub fn run_client_script(addr: &str, password: &str) {
    for tool in ["skopeo", "podman", "jq", "curl"] {
        assert!(
            Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap().status.success(),
            "{tool} is missing: run scripts/install-test-deps.sh (as root)"
        );
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let script = root.join("tests/clients/run.sh");
    let out = Command::new("bash").arg(&script).args([addr, "admin", password]).output().expect("run run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(out.status.success() && summary.contains(" 0 failed"), "real-client run failed: {summary}\n{stderr}");
}

/// Deterministic pseudo-random bytes (xorshift), incompressible enough to be real uploads.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn get_json(client: &Client, url: &str) -> Value {
    let r = client.get(url).basic_auth(ADMIN, Some(PASSWORD)).send().await;
    let r = r.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(r.status().as_u16(), 200, "GET {url}");
    r.json().await.unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Every tag of every repository at `base` resolves to a manifest that hashes to its digest, and every blob
/// the manifest references is readable (following a redirect to storage, which reqwest does without our
/// `Authorization`) and hashes to its digest. Returns the number of tags checked.
pub async fn check_tags_and_blobs(client: &Client, base: &str) -> usize {
    let catalog = get_json(client, &format!("{base}/v2/_catalog?n=10000")).await;
    let repositories: Vec<String> = serde_json::from_value(catalog["repositories"].clone()).expect("repositories");
    let mut checked = 0;
    for repo in repositories {
        let tags = get_json(client, &format!("{base}/v2/{repo}/tags/list?n=10000")).await;
        let tags: Vec<String> = serde_json::from_value(tags["tags"].clone()).expect("tags");
        for tag in tags {
            let url = format!("{base}/v2/{repo}/manifests/{tag}");
            let r = client.get(&url).basic_auth(ADMIN, Some(PASSWORD)).header("Accept", OCI_MANIFEST).send().await;
            let r = r.expect("GET tag");
            assert_eq!(r.status().as_u16(), 200, "GET {url}");
            let digest = header(&r, "docker-content-digest").expect("Docker-Content-Digest");
            let bytes = r.bytes().await.expect("manifest body");
            assert_eq!(sha256(&bytes), digest, "{repo}:{tag} bytes do not hash to Docker-Content-Digest");
            let manifest: Value = serde_json::from_slice(&bytes).expect("manifest JSON");
            let blobs = std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().into_iter().flatten());
            for blob in blobs {
                let blob_digest = blob["digest"].as_str().expect("descriptor digest");
                let url = format!("{base}/v2/{repo}/blobs/{blob_digest}");
                let r = client.get(&url).basic_auth(ADMIN, Some(PASSWORD)).send().await.expect("GET blob");
                assert_eq!(r.status().as_u16(), 200, "GET {url} (referenced by {repo}:{tag})");
                let content = r.bytes().await.expect("blob body");
                assert_eq!(sha256(&content), blob_digest, "{url}");
                assert_eq!(Some(content.len() as u64), blob["size"].as_u64(), "{url}: size");
            }
            checked += 1;
        }
    }
    checked
}
