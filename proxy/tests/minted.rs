//! Upstream credentials minted per repository by a provider (`MintedCredentials`), against a real upstream:
//! another regbridge whose local provider mints them. Pull credentials pull, push credentials push, a
//! credential is minted once and reused until near its expiry, concurrent requests share one mint.

mod common;

use std::sync::Arc;
use std::time::Duration;

use regbridge::oci::Digest;
use regbridge::{ArtifactRegistry, Secret};
use regbridge_providers::http::{ClientOptions, CredentialSource, MintedCredentials, UpstreamClient};
use regbridge_proxy::{ServeConfig, Server};
use reqwest::Method;

/// Scopes from their text.
fn sc(text: &str) -> Vec<regbridge::auth::Scope> {
    regbridge::auth::Scope::parse_list([text])
}

#[tokio::test]
async fn minted_credentials_reach_an_upstream_scoped_to_one_repository() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        ServeConfig { listen: "127.0.0.1:0".parse().unwrap(), data_dir: dir.path().join("data"), ..ServeConfig::new() };
    let server = Server::bind(config, Some(Secret::new("upstream-admin"))).unwrap();
    let base = format!("http://{}", server.local_addr());
    let provider = Arc::new(server.local_registry(&base));
    tokio::spawn(server.run());
    provider.create_repository("team/app").await.unwrap();

    let minted = Arc::new(MintedCredentials::new(provider.clone(), Duration::from_secs(3600)));
    let client =
        UpstreamClient::new(base.parse().unwrap(), "upstream", minted.clone(), ClientOptions::default()).unwrap();

    // One mint per repository and permission level, shared by concurrent callers.
    let scope = "repository:team/app:pull,push";
    let scopes = sc(scope);
    let logins = futures_util::future::join_all((0..8).map(|_| minted.credentials(&scopes))).await;
    let first = logins[0].as_ref().unwrap().clone().unwrap();
    assert!(logins.iter().all(|l| l.as_ref().unwrap().as_ref().unwrap().1 == first.1), "one credential, reused");
    let pull = minted.credentials(&sc("repository:team/app:pull")).await.unwrap().unwrap();
    assert_ne!(pull.1, first.1, "pull and push credentials are minted separately");

    // Push a blob with the minted push credentials, read it with the pull ones.
    let blob = b"minted".to_vec();
    let digest = Digest::sha256(&blob);
    let r = client
        .send(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?digest={digest}"),
            Default::default(),
            Some(blob.clone().into()),
            &sc(scope),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    assert_eq!(client.head_blob("team/app", &digest).await.unwrap(), Some(blob.len() as u64));

    // The credentials are the repository's own: another repository's scope gets another mint, which
    // fails for a repository that does not exist.
    let err = minted.credentials(&sc("repository:team/other:pull")).await.unwrap_err();
    assert_eq!(err.code(), regbridge::OciErrorCode::NameUnknown, "{err}");
    // The catalog names no repository: no credentials.
    assert!(minted.credentials(&sc("registry:catalog:*")).await.unwrap().is_none());
}
