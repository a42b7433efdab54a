//! moto's server (AWS APIs, S3 among them) on a free loopback port, killed on drop: the launcher the
//! providers' tests use too (`providers/tests/support/emulators.rs`, included here), so there is one.

#[path = "../../../providers/tests/support/emulators.rs"]
pub mod emulators;

/// A running moto server.
pub type Moto = emulators::Emulator;

/// Starts moto and waits until it answers; returns it and its endpoint URL.
pub async fn start_moto() -> (Moto, String) {
    let moto = emulators::start_moto().await;
    let endpoint = moto.endpoint.clone();
    (moto, endpoint)
}
