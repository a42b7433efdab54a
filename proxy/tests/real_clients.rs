//! Real clients against a real `regbridge serve`: skopeo, podman and oras-py push, pull, inspect, list,
//! mount and delete through `tests/clients/run.sh`, which checks every digest.
//!
//! The clients are installed by `scripts/install-test-deps.sh` (which `scripts/test.sh` runs first). A
//! missing client fails the test with that instruction rather than skipping it.

mod common;

use common::serve::{ServeProcess, free_port, run_client_script};
use common::{PASSWORD, client};

#[tokio::test]
async fn skopeo_podman_oras_round_trip_with_auth() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServeProcess::start(&dir.path().join("data"), free_port(), dir.path().join("serve.log"), |_| {});
    server.wait_ready(&client()).await;
    let addr = server.addr.clone();
    tokio::task::spawn_blocking(move || run_client_script(&addr, PASSWORD)).await.unwrap();
}
