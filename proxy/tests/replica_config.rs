//! The configuration replicas share: `[storage]` (a bad URL or an unreachable bucket stops `regbridge
//! serve` at start-up, naming the setting) and the token signing key (two servers given the same key accept
//! each other's tokens; a server with another key refuses them).

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::cli;
use common::{ADMIN, PASSWORD, TestServer};
use regbridge::Secret;
use regbridge_proxy::ServeConfig;
use regbridge_proxy::keys::SigningKey;

/// How long `serve` may take to give up on bad storage (the check's own bound is 10 s).
const EXIT_DEADLINE: Duration = Duration::from_secs(40);

/// Runs `regbridge serve` with `env` and a fresh data directory; waits, bounded, for it to exit, and
/// answers its exit code and stderr. A server that keeps running fails the test (and is killed).
fn serve_fails(config: Option<&str>, env: &[(&str, &str)]) -> (i32, String) {
    match serve(config, env) {
        Err(exited) => exited,
        Ok(()) => panic!("regbridge serve started: it should have refused the storage"),
    }
}

/// Runs `regbridge serve` with `env` and a fresh data directory until it answers `/v2/` (`Ok`, and it is
/// stopped) or exits (`Err` with its exit code and stderr), within [`EXIT_DEADLINE`].
fn serve(config: Option<&str>, env: &[(&str, &str)]) -> Result<(), (i32, String)> {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut command = cli::command(&["serve"]);
    command
        .env("REGBRIDGE_DATA_DIR", dir.path().join("data"))
        .env("REGBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env("REGBRIDGE_ADMIN_PASSWORD", PASSWORD)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(text) = config {
        let path = dir.path().join("regbridge.toml");
        std::fs::write(&path, text).unwrap();
        command.env("REGBRIDGE_CONFIG", path);
    }
    let mut child: Child = command.spawn().expect("run regbridge serve");
    let deadline = Instant::now() + EXIT_DEADLINE;
    while child.try_wait().unwrap().is_none() {
        if answers_v2(port) {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("regbridge serve neither exited nor answered within {EXIT_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    Err((cli::code(&out), cli::stderr(&out)))
}

/// Whether a server on `port` answers `GET /v2/` (the listener is bound before the storage is checked, so
/// a connection alone proves nothing).
fn answers_v2(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

#[test]
fn an_unknown_scheme_stops_serve_naming_the_variable() {
    let (code, stderr) = serve_fails(None, &[("REGBRIDGE_STORAGE_URL", "ftp://bucket/x")]);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("REGBRIDGE_STORAGE_URL \"ftp://bucket/x\": unknown scheme \"ftp\""), "{stderr}");
    assert!(stderr.contains("s3://BUCKET[/PREFIX]"), "the message says what to write: {stderr}");
}

#[test]
fn an_unreachable_endpoint_stops_serve_without_showing_the_secret() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = format!(
        "[storage]\nurl = \"s3://regbridge/reg\"\nendpoint = \"http://127.0.0.1:{port}\"\nallow_http = true\n\
         region = \"us-east-1\"\naccess_key_id = \"AKIDEXAMPLE\"\nsecret_access_key = \"wJalrXUtnFEMI-very-secret\"\n"
    );
    let started = Instant::now();
    let (code, stderr) = serve_fails(Some(&config), &[]);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("[storage] url s3://regbridge/reg: the bucket cannot be listed"), "{stderr}");
    assert!(stderr.contains("check that it exists, the endpoint and region"), "{stderr}");
    assert!(!stderr.contains("very-secret"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "gave up after {:?}", started.elapsed());
}

#[tokio::test]
async fn a_missing_bucket_on_moto_stops_serve() {
    let (_moto, endpoint) = common::moto::start_moto().await;
    let env = [
        ("REGBRIDGE_STORAGE_URL", "s3://no-such-bucket/reg"),
        ("REGBRIDGE_STORAGE_ENDPOINT", endpoint.as_str()),
        ("REGBRIDGE_STORAGE_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let config = "[storage]\nallow_http = true\n";
    // Blocking is fine here: moto is a process of its own.
    let (code, stderr) = serve_fails(Some(config), &env);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("REGBRIDGE_STORAGE_URL s3://no-such-bucket/reg: the bucket cannot be listed"), "{stderr}");
    assert!(stderr.contains("NoSuchBucket") || stderr.contains("404"), "moto's answer is in the message: {stderr}");
}

/// A reachable bucket passes the check and the server starts on it.
#[tokio::test]
async fn a_reachable_bucket_passes_the_start_up_check() {
    let (moto, endpoint) = common::moto::start_moto().await;
    let bucket = common::moto::emulators::s3_bucket(&moto).await;
    let url = format!("s3://{bucket}/reg");
    let config =
        format!("[storage]\nurl = \"{url}\"\nendpoint = \"{endpoint}\"\nallow_http = true\nregion = \"us-east-1\"\n");
    let env = [("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")];
    if let Err((code, stderr)) = serve(Some(&config), &env) {
        panic!("serve on a reachable bucket exited with {code}: {stderr}");
    }
}

fn key(byte: u8) -> SigningKey {
    SigningKey::Value(Secret::new(base64::engine::general_purpose::STANDARD.encode([byte; 48])))
}

/// A pull token for `repo` from `server`'s token endpoint, as the admin.
async fn pull_token(server: &TestServer, repo: &str) -> String {
    let answer = server
        .anon(reqwest::Method::GET, &format!("/token?service=regbridge&scope=repository:{repo}:pull"))
        .basic_auth(ADMIN, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    answer.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn replicas_with_the_same_key_accept_each_others_tokens() {
    let with = |k: SigningKey| move |c: ServeConfig| ServeConfig { signing_key: k, ..c };
    let a = TestServer::start_configured(with(key(1))).await;
    let b = TestServer::start_configured(with(key(1))).await;
    let other = TestServer::start_configured(with(key(2))).await;
    let image = b.push_image("team/app", "v1").await;
    other.push_image("team/app", "v1").await;
    assert!(!a.data_dir.join("signing.key").exists(), "a configured key is not written to the data directory");

    let token = pull_token(&a, "team/app").await;
    let manifest = format!("/v2/team/app/manifests/{}", image.digest);
    let pulled = b.anon(reqwest::Method::GET, &manifest).bearer_auth(&token).send().await.unwrap();
    assert_eq!(pulled.status(), 200, "b accepts a's token");
    assert_eq!(pulled.bytes().await.unwrap().as_ref(), &image.bytes[..]);

    let refused = other.anon(reqwest::Method::GET, "/v2/team/app/manifests/v1").bearer_auth(&token).send().await;
    assert_eq!(refused.unwrap().status(), 401, "a server with another key refuses the token");
    let denied = |s: reqwest::StatusCode| s == 401 || s == 403;
    // The token is for pulls of team/app only, whichever replica checks it.
    let push = b.anon(reqwest::Method::POST, "/v2/team/app/blobs/uploads/").bearer_auth(&token).send().await;
    assert!(denied(push.unwrap().status()), "a pull token does not push on the other replica");
    let elsewhere = b.anon(reqwest::Method::GET, "/v2/team/other/tags/list").bearer_auth(&token).send().await;
    assert!(denied(elsewhere.unwrap().status()), "nor reach another repository");
}

#[test]
fn a_short_signing_key_stops_serve() {
    let short = base64::engine::general_purpose::STANDARD.encode([3u8; 20]);
    let (code, stderr) = serve_fails(None, &[("REGBRIDGE_SIGNING_KEY", &short)]);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("REGBRIDGE_SIGNING_KEY: the signing key has 20 bytes; it needs at least 32"), "{stderr}");
    assert!(!stderr.contains(&short), "{stderr}");
}

/// The Azure settings reach Azurite (endpoint, account, access key): the check lists the container, and a
/// wrong key is refused at start-up without being shown.
#[tokio::test]
async fn azure_settings_reach_azurite() {
    use common::moto::emulators;
    let azurite = emulators::start_azurite().await;
    let created = emulators::azure_container(&azurite, &emulators::unique("regbridge")).await;
    let config = |key: &str| {
        format!(
            "[storage]\nurl = \"az://{created}/reg\"\nendpoint = \"{}/{}\"\nallow_http = true\naccount = \"{}\"\n\
             access_key = \"{key}\"\n",
            azurite.endpoint,
            emulators::AZURITE_ACCOUNT,
            emulators::AZURITE_ACCOUNT
        )
    };
    if let Err((code, stderr)) = serve(Some(&config(emulators::AZURITE_KEY)), &[]) {
        panic!("serve on Azurite with the right key exited with {code}: {stderr}");
    }
    let wrong = base64::engine::general_purpose::STANDARD.encode([5u8; 64]);
    let (code, stderr) = serve_fails(Some(&config(&wrong)), &[]);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("the bucket cannot be listed"), "{stderr}");
    assert!(!stderr.contains(&wrong), "{stderr}");
}
