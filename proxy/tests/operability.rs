//! Running regbridge as a service: `/healthz`, `/readyz`, Prometheus metrics, one JSON log line per
//! request with no secret in it, and a graceful stop on SIGTERM that finishes a download in flight.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestServer;
use common::token_registry::TokenRegistry;
use regbridge::Secret;
use regbridge_proxy::config_file::RouteConfig;

const PASSWORD: &str = "operability-Pw-4c1e";

#[tokio::test]
async fn health_endpoints() {
    let server = TestServer::start().await;
    let r = server.client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = server.client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn metrics_count_requests_bytes_uploads_and_credential_caches() {
    let upstream = TokenRegistry::start().await;
    upstream.allow("robot", "metrics-upstream-pw");
    let route = RouteConfig {
        prefix: "up".into(),
        provider: "generic".into(),
        registry: Some(upstream.addr.clone()),
        username: Some("robot".into()),
        password: Some(Secret::new("metrics-upstream-pw")),
        ..RouteConfig::local()
    };
    let (base, _dir) = common::start_proxy(vec![RouteConfig::local(), route], PASSWORD).await;
    let client = common::client();
    let blob = b"metrics blob".to_vec();
    for repo in ["local/app", "up/app"] {
        let r = client.post(format!("{base}/v2/{repo}/blobs/uploads/")).basic_auth("admin", Some(PASSWORD));
        let location = r.send().await.unwrap().headers()["location"].to_str().unwrap().to_owned();
        let location = common::with_digest(&location, &common::sha256(&blob));
        let r = client.put(location).basic_auth("admin", Some(PASSWORD)).body(blob.clone()).send().await.unwrap();
        assert_eq!(r.status(), 201, "{repo}");
        for _ in 0..2 {
            let r = client.get(format!("{base}/v2/{repo}/blobs/{}", common::sha256(&blob)));
            assert_eq!(r.basic_auth("admin", Some(PASSWORD)).send().await.unwrap().status(), 200);
        }
    }
    let text = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    for needle in [
        "regbridge_http_requests_total{",
        "route=\"up\"",
        "endpoint=\"blob\"",
        "status=\"201\"",
        "regbridge_http_sent_bytes_total",
        "regbridge_http_received_bytes_total",
        "regbridge_http_request_duration_seconds_bucket",
        "regbridge_active_uploads",
        "regbridge_upstream_request_duration_seconds_bucket",
        "regbridge_credential_cache_total{cache=\"registry_token\",result=\"miss\"}",
        "regbridge_credential_cache_total{cache=\"registry_token\",result=\"hit\"}",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(!text.contains("metrics-upstream-pw") && !text.contains(PASSWORD));
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `regbridge serve --log-format json` on a free port; its stderr lines are collected.
fn serve_json_logs(data: &std::path::Path) -> (Process, String, Arc<Mutex<Vec<String>>>) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_regbridge"))
        .args(["serve", "--log-format", "json", "--grace", "20", "--listen", &addr, "--data-dir"])
        .arg(data)
        .env("REGBRIDGE_ADMIN_PASSWORD", PASSWORD)
        .env("REGBRIDGE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "regbridge did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Process(child), format!("http://{addr}"), lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_logs_and_a_graceful_stop() {
    let data = tempfile::tempdir().unwrap();
    let (mut process, base, lines) = serve_json_logs(data.path());
    let client = common::client();
    // A blob large enough to be still streaming when the stop signal arrives.
    let blob: Vec<u8> = (0..32 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let digest = common::sha256(&blob);
    let r = client.post(format!("{base}/v2/ops/app/blobs/uploads/")).basic_auth("admin", Some(PASSWORD));
    let location = r.send().await.unwrap().headers()["location"].to_str().unwrap().to_owned();
    let r = client.put(common::with_digest(&location, &digest)).basic_auth("admin", Some(PASSWORD)).body(blob.clone());
    assert_eq!(r.send().await.unwrap().status(), 201);
    let wrong = client.get(format!("{base}/v2/")).basic_auth("admin", Some("not-the-password")).send().await.unwrap();
    assert_eq!(wrong.status(), 401);

    let mut download = client
        .get(format!("{base}/v2/ops/app/blobs/{digest}"))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    let mut received = download.chunk().await.unwrap().unwrap().to_vec();
    let pid = process.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = common::client().get(format!("{base}/healthz")).send().await;
    assert!(refused.is_err(), "new connections are refused while stopping: {refused:?}");
    while let Some(chunk) = download.chunk().await.unwrap() {
        received.extend_from_slice(&chunk);
    }
    assert_eq!(common::sha256(&received), digest, "the download in flight finished whole");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = process.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "regbridge did not stop within 20 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");

    std::thread::sleep(Duration::from_millis(200));
    let lines = lines.lock().unwrap();
    let access: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "regbridge::access")
        .collect();
    let blob_get = access
        .iter()
        .find(|v| v["method"] == "GET" && v["path"].as_str().is_some_and(|p| p.contains("/blobs/sha256:")))
        .unwrap_or_else(|| panic!("no access line for the blob GET in {lines:#?}"));
    assert_eq!(blob_get["status"], 200);
    assert_eq!(blob_get["bytes_out"], blob.len() as u64);
    assert_eq!(blob_get["complete"], true);
    assert!(blob_get["duration_ms"].is_u64());
    let put = access.iter().find(|v| v["method"] == "PUT").expect("the PUT is logged");
    assert_eq!(put["bytes_in"], blob.len() as u64);
    assert!(put["path"].as_str().is_some_and(|p| !p.contains('?')), "queries (signatures) stay out of logs");
    assert!(access.iter().any(|v| v["status"] == 401));
    let all = lines.join("\n");
    for secret in [PASSWORD, "not-the-password"] {
        assert!(!all.contains(secret), "a password is in the log");
    }
    let signing_key = std::fs::read(data.path().join("signing.key")).unwrap();
    assert!(!all.contains(&String::from_utf8_lossy(&signing_key).to_string()));
}
