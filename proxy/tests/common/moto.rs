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

/// The keys of `[storage]` for `bucket` on moto at `endpoint` (under the prefix `registry`, moto's dummy
/// credentials): what every replica of a test is configured with, in process or as `regbridge serve`.
pub fn s3_storage_keys(endpoint: &str, bucket: &str) -> String {
    format!(
        "url = \"s3://{bucket}/registry\"\nendpoint = \"{endpoint}\"\nallow_http = true\nregion = \"us-east-1\"\n\
         access_key_id = \"testing\"\nsecret_access_key = \"testing\"\n"
    )
}
