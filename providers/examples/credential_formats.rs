//! Minted credentials in the formats clients take: a Docker config (`~/.docker/config.json`), the
//! `X-Registry-Auth` header of the Docker Engine API, and a Kubernetes `kubernetes.io/dockerconfigjson`
//! Secret (for `imagePullSecrets`).
//!
//! `cargo run -p regbridge-providers --example credential_formats`

use std::sync::Arc;
use std::time::Duration;

use regbridge::auth::docker_config::{AuthEntry, DockerConfig};
use regbridge::auth::kubernetes::DockerConfigSecret;
use regbridge::auth::server::ServerAddress;
use regbridge::auth::x_registry_auth::XRegistryAuth;
use regbridge::{ArtifactRegistry, Permissions};
use regbridge_providers::local::{FsStorage, LocalRegistry, TokenSigner};

#[tokio::main]
async fn main() -> regbridge::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| regbridge::Error::internal("temp dir", e))?;
    let storage = Arc::new(FsStorage::open(dir.path().join("storage"))?);
    let signer = TokenSigner::load_or_create(&dir.path().join("signing.key"))?;
    let registry = LocalRegistry::new(storage, signer, "http://127.0.0.1:5000");
    registry.create_repository("app").await?;
    let creds = registry.generate_credentials("app", Permissions::Pull, Duration::from_secs(600)).await?;
    let server = ServerAddress::parse(&registry.registry_endpoint())?;

    // Docker config: merge into an existing file with `DockerConfig::parse` + `set` instead of overwriting.
    let config = DockerConfig::with_login(&server, AuthEntry::basic(&creds.username, &creds.password));
    let json = config.to_json();
    assert!(DockerConfig::parse(&json)?.get(&server).is_some());
    println!("docker config: {} bytes for {server}", json.len());

    // X-Registry-Auth: what `docker pull` sends the engine; decodes back to the same login.
    let header = XRegistryAuth::basic(&creds.username, creds.password.clone(), &server.to_string()).encode();
    let decoded = XRegistryAuth::decode(&header)?.credentials()?.expect("basic credentials");
    assert_eq!(decoded.0, creds.username);
    println!("X-Registry-Auth: {} characters", header.len());

    // Kubernetes: a Secret to apply, holding the same Docker config.
    let secret = DockerConfigSecret::new("regbridge-pull", Some("default"), &config)?;
    assert!(secret.docker_config()?.get(&server).is_some());
    println!(
        "{}",
        secret.to_yaml().lines().filter(|l| !l.contains(".dockerconfigjson")).collect::<Vec<_>>().join("\n")
    );
    Ok(())
}
