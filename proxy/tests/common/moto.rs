//! moto's server (AWS APIs, S3 among them) on a free loopback port, killed on drop.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server.
pub struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts moto and waits until it answers; returns it and its endpoint URL.
pub async fn start_moto() -> (Moto, String) {
    let venv = std::env::var("REGBRIDGE_TEST_VENV").unwrap_or_else(|_| "/tmp/regbridge-test-venv".into());
    let bin = format!("{venv}/bin/moto_server");
    assert!(std::path::Path::new(&bin).exists(), "{bin} is missing: run scripts/install-test-deps.sh (as root)");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let moto = Moto(child);
    let endpoint = format!("http://127.0.0.1:{port}");
    let client = super::client();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{endpoint}/moto-api/")).send().await.is_err() {
        assert!(Instant::now() < deadline, "moto_server did not come up at {endpoint}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (moto, endpoint)
}
