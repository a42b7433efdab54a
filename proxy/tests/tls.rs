//! HTTPS: `serve --tls-cert/--tls-key` answers over TLS with the given certificate, and the token realm
//! and upload locations it hands out are `https://` URLs.

use std::process::Command;

use regbridge::Secret;
use regbridge_proxy::{ServeConfig, Server};

#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(path("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    // A CA and a leaf certificate it signs, as a private PKI would issue them.
    let openssl = |args: &[&str]| {
        let out =
            Command::new("openssl").args(args).output().expect("openssl is missing: run scripts/install-test-deps.sh");
        assert!(out.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=regbridge test CA",
        "-keyout",
        &path("ca.key"),
        "-out",
        &path("ca.crt"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &path("tls.key"),
        "-out",
        &path("tls.csr"),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path("tls.csr"),
        "-CA",
        &path("ca.crt"),
        "-CAkey",
        &path("ca.key"),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &path("ext.cnf"),
        "-out",
        &path("tls.crt"),
    ]);

    let config = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        tls: Some((cert.clone(), key)),
        ..ServeConfig::new()
    };
    let server = Server::bind(config, Some(Secret::new("tls-pw"))).unwrap();
    let base = format!("https://{}", server.local_addr());
    tokio::spawn(server.run());

    let ca = reqwest::Certificate::from_pem(&std::fs::read(path("ca.crt")).unwrap()).unwrap();
    let client = reqwest::Client::builder().add_root_certificate(ca).no_proxy().build().unwrap();
    let mut ping = None;
    for _ in 0..100 {
        match client.get(format!("{base}/v2/")).send().await {
            Ok(r) => {
                ping = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    let ping = ping.expect("the HTTPS server answers");
    assert_eq!(ping.status().as_u16(), 401);
    let challenge = ping.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.starts_with(&format!("Bearer realm=\"{base}/token\"")), "{challenge}");

    let r = client
        .post(format!("{base}/v2/tls/app/blobs/uploads/"))
        .basic_auth("admin", Some("tls-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let location = r.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(&format!("{base}/v2/tls/app/blobs/uploads/")), "{location}");

    // A client that does not trust the certificate is refused by TLS itself.
    let untrusting = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(untrusting.get(format!("{base}/v2/")).send().await.is_err());
}
