//! The proxy in front of a misbehaving upstream: transient failures of GET/HEAD are retried, bodies that
//! break off are fetched again (manifests) or resumed with a range (blobs), persistent failures reach the
//! client as OCI errors (502) quickly, and nothing hangs.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use regbridge_proxy::config_file::RouteConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORD: &str = "faults-pw";
/// A blob large enough to arrive in several chunks.
static BLOB: std::sync::LazyLock<Vec<u8>> =
    std::sync::LazyLock::new(|| (0..1_000_003u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect());
const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

/// What the scripted upstream does with its n-th connection.
#[derive(Clone, Copy)]
enum Act {
    /// Answer 503.
    Unavailable,
    /// Close the connection without answering.
    Reset,
    /// Answer 200 with the manifest or the blob (206 and the rest, for a `Range: bytes=N-` request).
    Serve,
    /// Like `Serve`, but ignore `Range`.
    ServeWhole,
    /// Like `Serve` (a 206 with the right `Content-Range` for a resume), but with other bytes.
    ServeWrong,
    /// Announce the whole manifest or blob, send part of it and close the connection.
    Truncate,
    /// Read the request, then say nothing for 30 s.
    Silent,
}

/// A one-request-per-connection HTTP upstream following `script` (the last act repeats). Returns its
/// address, the connection counter and the request lines it saw.
async fn scripted_upstream(script: Vec<Act>) -> (String, Arc<AtomicUsize>) {
    let (addr, count, _) = scripted_upstream_logged(script).await;
    (addr, count)
}

async fn scripted_upstream_logged(script: Vec<Act>) -> (String, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = lines.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let act = script[n.min(script.len() - 1)];
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                log.lock().unwrap().push(request.clone());
                let body: &[u8] = if request.contains("/manifests/") { MANIFEST.as_bytes() } else { &BLOB };
                let range = request
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("range: bytes=")?.strip_suffix('-')?.parse().ok())
                    .filter(|_| matches!(act, Act::Serve | Act::ServeWrong));
                let response = match act {
                    Act::Reset => return,
                    Act::Silent => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    Act::Unavailable => {
                        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                    }
                    Act::Serve | Act::ServeWhole | Act::Truncate | Act::ServeWrong => {
                        let start: usize = range.unwrap_or(0);
                        let status = if range.is_some() { "206 Partial Content" } else { "200 OK" };
                        let head = format!(
                            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\n\
                             Docker-Content-Digest: {}\r\nConnection: close\r\n\r\n",
                            body.len() - start,
                            body.len() - 1,
                            body.len(),
                            common::sha256(body)
                        );
                        let end = if matches!(act, Act::Truncate) { body.len() / 3 } else { body.len() };
                        let _ = socket.write_all(head.as_bytes()).await;
                        let mut bytes = body[start..end].to_vec();
                        if matches!(act, Act::ServeWrong) {
                            bytes.iter_mut().for_each(|b| *b = b.wrapping_add(1));
                        }
                        let _ = socket.write_all(&bytes).await;
                        let _ = socket.shutdown().await;
                        return;
                    }
                };
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (addr, count, lines)
}

async fn proxy_to(upstream: &str) -> (String, tempfile::TempDir) {
    let route = RouteConfig {
        prefix: "up".into(),
        provider: "generic".into(),
        registry: Some(upstream.to_owned()),
        idle_timeout: Some(std::time::Duration::from_secs(1)),
        ..RouteConfig::local()
    };
    common::start_proxy(vec![route], PASSWORD).await
}

async fn get_manifest(base: &str) -> reqwest::Response {
    common::client()
        .get(format!("{base}/v2/up/app/manifests/v1"))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn transient_failures_of_a_get_are_retried() {
    let (upstream, count) = scripted_upstream(vec![Act::Unavailable, Act::Reset, Act::Serve]).await;
    let (base, _dir) = proxy_to(&upstream).await;
    let r = get_manifest(&base).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), MANIFEST);
    assert_eq!(count.load(Ordering::SeqCst), 3, "503, then a reset, then success");
}

#[tokio::test]
async fn persistent_failures_are_oci_errors_not_hangs() {
    for act in [Act::Unavailable, Act::Reset, Act::Silent] {
        let (upstream, count) = scripted_upstream(vec![act]).await;
        let (base, _dir) = proxy_to(&upstream).await;
        let started = Instant::now();
        let r = get_manifest(&base).await;
        let status = r.status().as_u16();
        assert!(matches!(status, 502..=504), "got {status}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["errors"][0]["code"].is_string(), "{body}");
        assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
        let attempts = count.load(Ordering::SeqCst);
        assert!((2..=5).contains(&attempts), "{attempts} attempts: retried, but bounded");
    }
}

#[tokio::test]
async fn a_failed_push_is_not_retried() {
    let (upstream, _, lines) = scripted_upstream_logged(vec![Act::Unavailable]).await;
    let (base, _dir) = proxy_to(&upstream).await;
    let r = common::client()
        .put(format!("{base}/v2/up/app/manifests/v1"))
        .basic_auth("admin", Some(PASSWORD))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(MANIFEST)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_server_error(), "{}", r.status());
    let puts = lines.lock().unwrap().iter().filter(|l| l.starts_with("PUT ")).count();
    assert_eq!(puts, 1, "a PUT with a body goes upstream once: {:?}", lines.lock().unwrap());
}

#[tokio::test]
async fn a_manifest_whose_body_breaks_off_is_fetched_again() {
    let (upstream, count) = scripted_upstream(vec![Act::Truncate, Act::Serve]).await;
    let (base, _dir) = proxy_to(&upstream).await;
    let r = get_manifest(&base).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), MANIFEST, "the whole manifest, not the broken first answer");
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

async fn get_blob(base: &str) -> reqwest::Result<bytes::Bytes> {
    let digest = common::sha256(&BLOB);
    let r = common::client()
        .get(format!("{base}/v2/up/app/blobs/{digest}"))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.content_length(), Some(BLOB.len() as u64));
    r.bytes().await
}

#[tokio::test]
async fn a_blob_whose_body_breaks_off_is_resumed_with_a_range() {
    let (upstream, _, requests) = scripted_upstream_logged(vec![Act::Truncate, Act::Serve]).await;
    let (base, _dir) = proxy_to(&upstream).await;
    let body = get_blob(&base).await.unwrap();
    assert!(body[..] == BLOB[..], "{} bytes arrived, digest {}", body.len(), common::sha256(&body));
    let requests = requests.lock().unwrap();
    assert_eq!(requests.len(), 2);
    let resumed = requests[1].to_ascii_lowercase();
    assert!(resumed.contains(&format!("range: bytes={}-", BLOB.len() / 3)), "{resumed}");
}

#[tokio::test]
async fn a_blob_resume_answered_with_the_whole_blob_fails_rather_than_splicing() {
    let (upstream, count) = scripted_upstream(vec![Act::Truncate, Act::ServeWhole]).await;
    let (base, _dir) = proxy_to(&upstream).await;
    let started = Instant::now();
    match get_blob(&base).await {
        Ok(body) => panic!("{} bytes arrived as if complete", body.len()),
        Err(err) => assert!(err.is_body() || err.is_decode() || err.is_request(), "{err:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(count.load(Ordering::SeqCst), 2, "one resume attempt, refused for its missing range");
}

#[tokio::test]
async fn a_blob_resumed_with_wrong_bytes_is_a_broken_transfer_never_a_complete_one() {
    // The resume is a 206 with exactly the Content-Range asked for, but other bytes: only the digest can
    // tell, so the proxy hashes what it relays and withholds the last chunk of a body that does not match.
    let (upstream, count) = scripted_upstream(vec![Act::Truncate, Act::ServeWrong]).await;
    let (base, _dir) = proxy_to(&upstream).await;
    match get_blob(&base).await {
        Ok(body) => panic!("{} bytes arrived as if complete (digest {})", body.len(), common::sha256(&body)),
        Err(err) => assert!(err.is_body() || err.is_decode() || err.is_request(), "{err:?}"),
    }
    assert_eq!(count.load(Ordering::SeqCst), 2, "the resume was accepted by its range, refused by its digest");
    let metrics = common::client().get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let line = metrics.lines().find(|l| l.starts_with("regbridge_proxy_digest_mismatches_total")).unwrap_or_default();
    assert!(line.split_whitespace().last().and_then(|n| n.parse::<f64>().ok()).is_some_and(|n| n >= 1.0), "{line}");
}
