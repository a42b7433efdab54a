//! The live suite's proxy half: a push and a pull through a regbridge route in front of a real ECR, GAR or
//! ACR registry (feature `live`). Each cloud's test runs only when its `REGBRIDGE_LIVE_*` variable is set,
//! with that cloud's usual credentials in the environment, and prints that it was skipped otherwise; see
//! the README's "Live suite" for the variables and what a run costs.
//!
//! A run creates one repository (named `regbridge-live-<time>-<random>`), pushes a two-blob image (about
//! 1 KiB) to it through the proxy, pulls the manifest and both blobs back (following the cloud's blob
//! redirects, as clients do), compares every byte, and deletes the repository whatever the outcome.
#![cfg(feature = "live")]

mod common;
// The providers' live suites read their settings the same way.
#[path = "../../providers/tests/support/live.rs"]
mod live;

use regbridge::DynArtifactRegistry;
use regbridge::oci::media_types::OCI_MANIFEST;
use regbridge_proxy::config_file::RouteConfig;
use regbridge_proxy::routing::Target;
use serde_json::json;

const PASSWORD: &str = "live-suite-admin";

/// An optional setting as a TOML line (`key = "value"`), empty when the variable is unset.
fn optional_line(key: &str, var: &str) -> String {
    live::optional(var).map_or_else(String::new, |v| format!("{key} = {v:?}\n"))
}

/// The route's provider, built exactly as `regbridge serve` builds it.
async fn provider_of(route: &RouteConfig) -> DynArtifactRegistry {
    let table = regbridge_proxy::server::build_routes(std::slice::from_ref(route)).await.expect("the route builds");
    match &table.routes()[0].target {
        Target::Upstream(u) => u.provider.clone(),
        _ => panic!("a cloud route has an upstream provider"),
    }
}

/// Creates a repository, pushes and pulls an image through the proxy on `route`, then deletes the
/// repository (also when the round trip failed, which is reported after the cleanup).
async fn round_trip(route: RouteConfig) {
    let provider = provider_of(&route).await;
    let logical = live::run_prefix();
    let repo = provider.create_repository(&logical).await.expect("create_repository");
    eprintln!("live: created {} ({})", repo.name, repo.uri);
    let client_name = format!("{}/{logical}", route.prefix);
    let outcome = push_and_pull(route, &client_name).await;
    let cleanup = provider.delete_repository(&repo.name).await;
    outcome.unwrap_or_else(|e| panic!("round trip through the proxy failed: {e}"));
    cleanup.unwrap_or_else(|e| panic!("the repository {} was not deleted, delete it by hand: {e}", repo.name));
}

async fn push_and_pull(route: RouteConfig, name: &str) -> Result<(), String> {
    let (base, _dir) = common::start_proxy(vec![RouteConfig::local(), route], PASSWORD).await;
    let client = reqwest::Client::builder().build().map_err(|e| e.to_string())?;
    let auth = |r: reqwest::RequestBuilder| r.basic_auth(common::ADMIN, Some(PASSWORD));
    let layer = b"regbridge live suite layer\n".repeat(32);
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    for blob in [&layer, &config] {
        let digest = common::sha256(blob);
        let r =
            auth(client.post(format!("{base}/v2/{name}/blobs/uploads/"))).send().await.map_err(|e| e.to_string())?;
        if r.status() != 202 {
            return Err(format!("POST upload: {} {}", r.status(), r.text().await.unwrap_or_default()));
        }
        let location = r.headers()["location"].to_str().map_err(|e| e.to_string())?.to_owned();
        let r = auth(client.put(common::with_digest(&location, &digest)))
            .header("content-type", "application/octet-stream")
            .body(blob.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != 201 {
            return Err(format!("PUT blob {digest}: {} {}", r.status(), r.text().await.unwrap_or_default()));
        }
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": common::descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": [common::descriptor("application/vnd.oci.image.layer.v1.tar", &layer)],
    }))
    .map_err(|e| e.to_string())?;
    let r = auth(client.put(format!("{base}/v2/{name}/manifests/v1")))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 201 {
        return Err(format!("PUT manifest: {} {}", r.status(), r.text().await.unwrap_or_default()));
    }
    let r = auth(client.get(format!("{base}/v2/{name}/manifests/v1")))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let pulled = r.bytes().await.map_err(|e| e.to_string())?;
    if pulled.as_ref() != manifest.as_slice() {
        return Err("the pulled manifest differs from the pushed one".into());
    }
    for blob in [&layer, &config] {
        let digest = common::sha256(blob);
        // reqwest follows the cloud's 307 to its storage and drops the Authorization header on the way.
        let r = auth(client.get(format!("{base}/v2/{name}/blobs/{digest}"))).send().await.map_err(|e| e.to_string())?;
        let status = r.status();
        let bytes = r.bytes().await.map_err(|e| e.to_string())?;
        if bytes.as_ref() != blob.as_slice() {
            return Err(format!("blob {digest}: {status}, {} bytes that differ from the pushed ones", bytes.len()));
        }
    }
    eprintln!("live: pushed and pulled {name} through the proxy");
    Ok(())
}

fn route(toml: &str) -> RouteConfig {
    toml::from_str(toml).unwrap_or_else(|e| panic!("live route settings: {e}\n{toml}"))
}

#[tokio::test]
async fn ecr_push_and_pull_through_the_proxy() {
    let Some(s) = live::settings("ecr proxy round trip", "REGBRIDGE_LIVE_ECR", &["region", "account", "prefix"]) else {
        return;
    };
    let toml = format!(
        "prefix = \"live\"\nprovider = \"ecr\"\nregion = {:?}\naccount = {:?}\nupstream_prefix = {:?}\n{}{}",
        s[0],
        s[1],
        s[2],
        optional_line("pull_role_arn", "REGBRIDGE_LIVE_ECR_PULL_ROLE"),
        optional_line("push_role_arn", "REGBRIDGE_LIVE_ECR_PUSH_ROLE"),
    );
    round_trip(route(&toml)).await;
}

#[tokio::test]
async fn gar_push_and_pull_through_the_proxy() {
    let Some(s) = live::settings("gar proxy round trip", "REGBRIDGE_LIVE_GAR", &["project", "location", "repository"])
    else {
        return;
    };
    let toml = format!(
        "prefix = \"live\"\nprovider = \"gar\"\n[gar]\nproject = {:?}\nlocation = {:?}\nrepository = {:?}\n{}{}",
        s[0],
        s[1],
        s[2],
        optional_line("pull_service_account", "REGBRIDGE_LIVE_GAR_PULL_SA"),
        optional_line("push_service_account", "REGBRIDGE_LIVE_GAR_PUSH_SA"),
    );
    round_trip(route(&toml)).await;
}

#[tokio::test]
async fn acr_push_and_pull_through_the_proxy() {
    let Some(s) =
        live::settings("acr proxy round trip", "REGBRIDGE_LIVE_ACR", &["subscription", "resource_group", "registry"])
    else {
        return;
    };
    let toml = format!(
        "prefix = \"live\"\nprovider = \"acr\"\n[acr]\nsubscription_id = {:?}\nresource_group = {:?}\nregistry_name = {:?}\n",
        s[0], s[1], s[2],
    );
    round_trip(route(&toml)).await;
}
