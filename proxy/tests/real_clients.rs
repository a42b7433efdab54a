//! Real clients against a real `regbridge serve`: skopeo, podman and oras-py push, pull, inspect, list,
//! mount and delete through `tests/clients/run.sh`, which checks every digest.
//!
//! The clients are installed by `scripts/install-test-deps.sh` (which `scripts/test.sh` runs first). A
//! missing client fails the test with that instruction rather than skipping it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "real-clients-pw";

struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_server(data: &Path) -> (ServerProcess, String) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_regbridge"))
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(data)
        .env("REGBRIDGE_ADMIN_PASSWORD", PASSWORD)
        .env("REGBRIDGE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start regbridge");
    let server = ServerProcess(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "regbridge did not listen on {addr} within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, addr)
}

#[test]
fn skopeo_podman_oras_round_trip_with_auth() {
    for tool in ["skopeo", "podman", "jq", "curl"] {
        assert!(
            Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap().status.success(),
            "{tool} is missing: run scripts/install-test-deps.sh (as root)"
        );
    }
    let data = tempfile::tempdir().unwrap();
    let (_server, addr) = start_server(data.path());
    let script = repo_root().join("tests/clients/run.sh");
    let out =
        Command::new("bash").arg(&script).args([&addr, "admin", PASSWORD]).output().expect("run tests/clients/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(out.status.success() && summary.contains(" 0 failed"), "real-client run failed: {summary}\n{stderr}");
}
